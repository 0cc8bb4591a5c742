//! Test-only helpers shared by the crates' tests (a dev-dependency, never
//! published): root/CI gating, a live probe collecting events, a containerd
//! daemon (started only when none runs, stopped after), the busybox test image
//! for ctr and podman, commands that must succeed ([`may_run`],
//! [`Containerd`], [`CtrImage`], [`CtrContainer`], [`ctr_sh`], …), and event
//! builders ([`events`]).

pub mod events;

/// Write `DIR/<name>.yaml`, the profile of `repository:tag` allowing exactly
/// `execs` (nothing outbound, no writes): a reviewed profile as `run
/// --profiles DIR` loads it. Returns the file.
pub fn write_profile(dir: &Path, repository: &str, tag: &str, execs: &[&str]) -> PathBuf {
    let mut p =
        falco_learn_profiler::Profile::new(falco_learn_profiler::ImageRef::new(repository, tag));
    for e in execs {
        p.learn_exec(e, false, 1);
    }
    let name = repository.rsplit('/').next().unwrap_or(repository);
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, falco_learn_profiler::to_yaml(&p))
        .unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    file
}

use falco_learn_event::Event;
use falco_learn_probe::{Probe, ProbeConfig};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn privileged() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

pub fn have(bin: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `true` when the test may run; otherwise a loud SKIP (or a failure in CI).
pub fn may_run(what: &str, bins: &[&str]) -> bool {
    if !privileged() {
        assert!(!in_ci(), "CI is set but the tests are not running as root");
        eprintln!("\n!!!!! SKIPPED: {what} needs root (run as root or in CI) !!!!!\n");
        return false;
    }
    let missing: Vec<&&str> = bins.iter().filter(|b| !have(b)).collect();
    if !missing.is_empty() || !Path::new("/bin/busybox").exists() {
        assert!(
            !in_ci(),
            "{what}: {missing:?} or /bin/busybox missing in CI (.ci/setup installs them)"
        );
        eprintln!("\n!!!!! SKIPPED: {what}: {missing:?} or /bin/busybox not installed !!!!!\n");
        return false;
    }
    true
}

/// Run a command that must succeed; its output.
pub fn must(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Spawn `cmd`, retrying (every 10 ms, 100 times at most) while it fails with
/// ETXTBSY: tests run in parallel threads, and another test's fork may briefly
/// hold the write descriptor of an executable just written. Panics on any other
/// error, naming the command.
pub fn spawn_retrying(cmd: &mut Command) -> Child {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Ok(c) => return c,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("spawn {cmd:?}: {e}"),
        }
    }
}

pub fn stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&must(cmd).stdout)
        .trim()
        .to_string()
}

/// A live probe whose events are collected in the background.
pub struct LiveProbe {
    pub probe: Probe,
    pub events: Arc<Mutex<Vec<Event>>>,
}

impl LiveProbe {
    pub fn start(cfg: ProbeConfig) -> LiveProbe {
        let (probe, rx) = Probe::start(cfg).unwrap_or_else(|e| panic!("probe did not start: {e}"));
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            for ev in rx.iter() {
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(ev);
            }
        });
        falco_learn_probe::settle();
        LiveProbe { probe, events }
    }

    /// Every event so far matching `pred`.
    pub fn matching(&self, pred: impl Fn(&Event) -> bool) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|e| pred(e))
            .cloned()
            .collect()
    }

    /// The first event matching `pred` (waits up to `secs`).
    pub fn wait_for(&self, what: &str, secs: u64, pred: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(e) = self.matching(&pred).into_iter().next() {
                return e;
            }
            if Instant::now() > deadline {
                let n = self.events.lock().map(|e| e.len()).unwrap_or(0);
                panic!("no event for {what} among {n} captured events");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// containerd for tests: the running one, or one started here and stopped on drop.
pub struct Containerd {
    daemon: Option<Child>,
}

fn ctr_ok() -> bool {
    Path::new("/run/containerd/containerd.sock").exists()
        && Command::new("ctr")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
}

impl Containerd {
    pub fn start() -> Containerd {
        if ctr_ok() {
            return Containerd { daemon: None };
        }
        let log = std::fs::File::create(std::env::temp_dir().join("fl-runtime-containerd.log"))
            .expect("containerd log file");
        let child = Command::new("containerd")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ctr_ok() {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up in 10 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Containerd {
            daemon: Some(child),
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            stop_child(&mut d, Duration::from_secs(5));
        }
    }
}

/// A scratch directory, removed on drop (also when a test fails).
pub struct Scratch(pub PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for Scratch {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A busybox root filesystem (static busybox and a few applet links).
pub fn busybox_rootfs(tag: &str) -> Scratch {
    let root = std::env::temp_dir().join(format!("fl-rootfs-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for d in ["bin", "tmp", "proc", "sys", "dev", "etc"] {
        std::fs::create_dir_all(root.join(d)).expect("rootfs dir");
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy busybox");
    for applet in ["sh", "true", "touch", "sleep", "cat", "ls"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("applet link");
    }
    Scratch(root)
}

/// tests/e2e/make-image-tar.sh: docker-save archive of `rootfs` named `reference`.
/// The image's default command names the reference, so two references of one
/// root filesystem are two images with two digests.
pub fn image_tar(rootfs: &Path, reference: &str) -> PathBuf {
    image_tar_with(
        rootfs,
        reference,
        &["/bin/sh", "-c", &format!("echo {reference}")],
    )
}

/// [`image_tar`] with `cmd` as the image's default command.
pub fn image_tar_with(rootfs: &Path, reference: &str, cmd: &[&str]) -> PathBuf {
    // from the probe crate or, when the root crate's tests include this module, from the root
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = [
        "tests/e2e/make-image-tar.sh",
        "../tests/e2e/make-image-tar.sh",
    ]
    .iter()
    .map(|p| manifest.join(p))
    .find(|p| p.exists())
    .expect("tests/e2e/make-image-tar.sh");
    let out = rootfs.with_extension(format!("{}.tar", reference.replace(['/', ':'], "_")));
    must(
        Command::new("bash")
            .arg(&script)
            .arg(rootfs)
            .arg(reference)
            .arg(&out)
            .args(cmd),
    );
    out
}

/// The digest `ctr images ls` output shows for `reference`.
pub fn ls_digest(ls: &str, reference: &str) -> Option<String> {
    ls.lines().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        (cols.first() == Some(&reference))
            .then(|| cols.get(2).map(|s| s.to_string()))
            .flatten()
    })
}

/// `/proc`'s start times are in clock ticks (10 ms at USER_HZ 100): what a
/// start time read there may lie before the instant it stands for.
pub const TICK_NS: u64 = 10_000_000;

/// The one definition of `container.start_ts` (`probe::runtime::ContainerMeta`):
/// the start of the container's init, host pid `pid`, which must be a process
/// of container `id`'s cgroup. Read the same way as the probe reads it, in this
/// process (one boot-clock offset), so tests compare exactly.
pub fn init_start_ns(pid: u32, id: &str) -> u64 {
    falco_learn_probe::procfs::start_ts_in_cgroup(pid, id)
        .unwrap_or_else(|| panic!("pid {pid} is not a live process of container {id}"))
}

/// SIGTERM a daemon we started, wait up to `grace`, then SIGKILL and reap it.
pub fn stop_child(child: &mut Child, grace: Duration) {
    // SAFETY: signalling a child we started, by its own pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Lazily unmount everything mounted below `dir`, innermost first (snapshots a
/// failed run left behind would make removing `dir` fail).
pub fn unmount_below(dir: &Path) {
    if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
        let mut ours: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| Path::new(m).starts_with(dir))
            .collect();
        ours.reverse();
        for m in ours {
            let _ = Command::new("umount").arg("-l").arg(m).output();
        }
    }
}

/// `mount ARGS…` (busybox's) in the mount namespace of process `pid` (a container's task),
/// run from the host with `nsenter`: what a process with mount rights in the container
/// (in a user namespace of its own) can do. Panics, saying `what`, when it fails.
pub fn mount_in(pid: u32, args: &[&str], what: &str) {
    let status = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "/bin/busybox", "mount"])
        .args(args)
        .status()
        .expect("nsenter");
    assert!(status.success(), "{what} in the container: {status:?}");
}

/// `ctr task exec` of a shell script in `container`: (trimmed stdout, ctr's exit code).
pub fn ctr_sh(container: &str, exec_id: &str, script: &str) -> (String, i32) {
    let out = Command::new("ctr")
        .args([
            "task",
            "exec",
            "--exec-id",
            exec_id,
            container,
            "/bin/sh",
            "-c",
            script,
        ])
        .output()
        .expect("ctr task exec");
    if !out.stderr.is_empty() {
        // for the test's log: what the script said when it failed
        eprintln!(
            "ctr task exec {exec_id} in {container}: stderr: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        out.status.code().unwrap_or(-1),
    )
}

/// An image imported into containerd's `default` namespace, removed on drop.
pub struct CtrImage {
    pub reference: String,
    /// The digest `ctr images ls` shows (the manifest's).
    pub digest: String,
}

impl CtrImage {
    pub fn import(reference: &str, rootfs: &Path) -> CtrImage {
        let tar = image_tar(rootfs, reference);
        let image = CtrImage::import_tar(reference, &tar);
        let _ = std::fs::remove_file(&tar);
        image
    }

    /// Import an archive whose manifest names `reference`.
    pub fn import_tar(reference: &str, tar: &Path) -> CtrImage {
        must(Command::new("ctr").args(["images", "import"]).arg(tar));
        let ls = stdout(Command::new("ctr").args(["images", "ls"]));
        let digest = ls_digest(&ls, reference)
            .unwrap_or_else(|| panic!("{reference} not in `ctr images ls`:\n{ls}"));
        assert!(digest.starts_with("sha256:"), "{digest}");
        CtrImage {
            reference: reference.into(),
            digest,
        }
    }
}

impl Drop for CtrImage {
    fn drop(&mut self) {
        let _ = Command::new("ctr")
            .args(["images", "rm", &self.reference])
            .output();
    }
}

/// A `ctr run -d` container, killed and deleted on drop.
pub struct CtrContainer {
    pub name: String,
}

impl CtrContainer {
    pub fn run(image: &str, name: &str, extra: &[&str], cmd: &[&str]) -> CtrContainer {
        must(
            Command::new("ctr")
                .args(["run", "-d", "--net-host"])
                .args(extra)
                .arg(image)
                .arg(name)
                .args(cmd)
                .stdin(Stdio::null()),
        );
        CtrContainer { name: name.into() }
    }

    /// `CreatedAt` from `ctr containers info`, ns since the epoch.
    pub fn created_ns(&self) -> u64 {
        let info = stdout(Command::new("ctr").args(["containers", "info", &self.name]));
        let v: serde_json::Value = serde_json::from_str(&info).expect("ctr containers info JSON");
        let s = v["CreatedAt"].as_str().expect("CreatedAt");
        falco_learn_probe::runtime::parse_rfc3339_ns(s)
    }

    /// The pid of the container's task (its init), from `ctr task ls`.
    pub fn task_pid(&self) -> u32 {
        let ls = stdout(Command::new("ctr").args(["task", "ls"]));
        ls.lines()
            .find_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                (cols.first() == Some(&self.name.as_str()))
                    .then(|| cols.get(1).and_then(|p| p.parse().ok()))
                    .flatten()
            })
            .unwrap_or_else(|| panic!("{} not in `ctr task ls`:\n{ls}", self.name))
    }

    /// `container.start_ts` of this container: its init's start, checked to lie
    /// between the container's creation and now.
    pub fn start_ns(&self) -> u64 {
        let start = init_start_ns(self.task_pid(), &self.name);
        assert!(
            start + TICK_NS >= self.created_ns(),
            "init of {} started before the container was created",
            self.name
        );
        start
    }
}

impl CtrContainer {
    /// Restart the container: its task is killed and deleted and a new one started (the
    /// same container id and snapshot, a new cgroup, as a restart policy would).
    pub fn restart(&self) {
        assert!(
            self.stop_task(),
            "the task of {} did not go away",
            self.name
        );
        must(
            Command::new("ctr")
                .args(["task", "start", "-d", &self.name])
                .stdin(Stdio::null()),
        );
    }

    /// Kill and delete the container's task; whether it is gone within 5 s.
    fn stop_task(&self) -> bool {
        let _ = Command::new("ctr")
            .args(["task", "kill", "-s", "SIGKILL", &self.name])
            .output();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let ok = Command::new("ctr")
                .args(["task", "delete", &self.name])
                .output()
                .is_ok_and(|o| o.status.success());
            let gone = !Command::new("ctr")
                .args(["task", "ls", "-q"])
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .any(|l| l == self.name)
                })
                .unwrap_or(false);
            if ok || gone {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for CtrContainer {
    fn drop(&mut self) {
        self.stop_task();
        let _ = Command::new("ctr")
            .args(["containers", "delete", &self.name])
            .output();
    }
}
