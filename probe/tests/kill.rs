//! enforce-kill in the kernel, on a real containerd container: once the
//! container's cgroup is under a profile that allows only
//! `/bin/busybox`, a binary copied into the container and run is killed by
//! SIGKILL at exec (exit status 137, none of its output), its exec event is
//! marked killed, busybox applets keep working, and processes outside the
//! cgroup are never touched.
//!
//! Needs root, containerd and ctr (CI: `.ci/setup`); elsewhere a loud SKIP.

use falco_learn_test_support as support;

use falco_learn_event::EventType;
use falco_learn_probe::kill::{cgroup_of, AllowedExec};
use falco_learn_probe::ProbeConfig;
use std::process::Command;
use support::*;

#[test]
fn exec_outside_the_profile_is_killed_in_the_kernel() {
    if !may_run("enforce-kill test", &["containerd", "ctr"]) {
        return;
    }
    let _daemon = Containerd::start();
    let rootfs = busybox_rootfs("kill");
    let image = CtrImage::import("docker.io/library/fl-kill-busybox:test", &rootfs);
    let live = LiveProbe::start(ProbeConfig {
        kill: true,
        ..ProbeConfig::default()
    });
    let policy = live.probe.kill_policy().expect("kill policy");

    let name = format!("fl-kill-{}", std::process::id());
    // a volume: a host directory on a disk filesystem (not the container's root, not a
    // tmpfs), as a disk-backed emptyDir or a hostPath is
    let volume = tempfile::tempdir_in("/var/tmp").expect("a volume directory");
    let mount = format!(
        "type=bind,src={},dst=/data,options=rbind:rw",
        volume.path().display()
    );
    let _c = CtrContainer::run(
        &image.reference,
        &name,
        &["--mount", &mount],
        &["/bin/sleep", "60"],
    );
    let task_pid = ctr_task_pid(&name);
    let cg = cgroup_of(task_pid).expect("container cgroup");
    assert_eq!(cg.path, format!("/default/{name}"));
    // the id every event of the container carries is that cgroup's
    let first = live.wait_for("an event of the container", 10, |e| e.container.id == name);
    assert_eq!(first.cgroup_id, cg.id);
    // that cgroup is the container's own (its directory kept for the sweep); a cgroup
    // id the process is not in is not decided; the host's cgroup is no container's
    use falco_learn_probe::kill::{container_cgroup, CgroupClaim, CgroupOwner};
    let ns = ["default".to_string()];
    let claim = |pid, cgroup_id, container_id| CgroupClaim {
        pid,
        start_ts: first.process.start_ts,
        cgroup_id,
        container_id,
    };
    match container_cgroup(claim(task_pid, cg.id, &name), &ns) {
        // the container's own cgroup: nothing above it to bind
        CgroupOwner::Container { dir: Some(d), top } => {
            assert!(d.ends_with(format!("default/{name}")), "{}", d.display());
            assert_eq!(top, None);
        }
        other => panic!("the container's cgroup: {other:?}"),
    }
    assert!(matches!(
        container_cgroup(claim(task_pid, cg.id + 1, &name), &ns),
        CgroupOwner::Unknown(_)
    ));
    assert!(matches!(
        container_cgroup(claim(task_pid, cg.id, "default"), &ns),
        CgroupOwner::Shared(_)
    ));
    let ours = cgroup_of(std::process::id()).expect("own cgroup");
    assert!(matches!(
        container_cgroup(claim(std::process::id(), ours.id, &name), &ns),
        CgroupOwner::Shared(_)
    ));
    // a cgroup below the container's (its process moved there, as systemd in a container
    // or a dind entrypoint does): the container's, and its own cgroup above is told too,
    // to be bound with it
    {
        let root = falco_learn_probe::kill::cgroup2_mount().expect("cgroup v2");
        let own_dir = root.join(format!("default/{name}"));
        let sub = own_dir.join("init.scope");
        std::fs::create_dir(&sub).expect("mkdir a sub-cgroup");
        std::fs::write(sub.join("cgroup.procs"), task_pid.to_string()).expect("move");
        let sub_id = cgroup_of(task_pid).expect("moved").id;
        let got = container_cgroup(claim(task_pid, sub_id, &name), &ns);
        std::fs::write(own_dir.join("cgroup.procs"), task_pid.to_string()).expect("move back");
        let _ = std::fs::remove_dir(&sub);
        match got {
            CgroupOwner::Container { dir: Some(d), top } => {
                assert!(
                    d.ends_with(format!("default/{name}/init.scope")),
                    "{}",
                    d.display()
                );
                assert_eq!(top, Some((cg.id, own_dir)));
            }
            other => panic!("the sub-cgroup: {other:?}"),
        }
    }

    // the host is never put under a profile
    let own = cgroup_of(std::process::id()).expect("own cgroup");
    assert_eq!(policy.set_profile(7, ["/bin/busybox"]).expect("allow"), 1);
    assert!(
        policy.enforce(own.id, 7).is_err(),
        "our own cgroup was accepted"
    );
    assert!(
        policy.enforce(1, 7).is_err(),
        "the root cgroup was accepted"
    );
    assert!(
        policy.enforce(cg.id, 8).is_err(),
        "a profile without allow-list was accepted"
    );
    policy.enforce(first.cgroup_id, 7).expect("enforce");
    assert_eq!(policy.enforced(), vec![(cg.id, 7)]);

    // busybox applets are allowed; the copy is not
    let (out, code) = ctr_sh(&name, "allowed", "cp /bin/busybox /tmp/echo && echo copied");
    assert_eq!((out.as_str(), code), ("copied", 0));
    let (out, code) = ctr_sh(&name, "denied", "/tmp/echo SURVIVED; echo rc=$?");
    assert_eq!((out.as_str(), code), ("rc=137", 0), "the copied binary ran");

    let killed = live.wait_for("the killed exec", 10, |e| {
        e.event_type() == EventType::Execve && e.process.exepath == "/tmp/echo"
    });
    assert!(
        killed.process.exe_flags.killed,
        "{:?}",
        killed.process.exe_flags
    );
    assert_eq!(killed.container.id, name);
    // (busybox sh runs cp in-process: the allowed exec is the shell's own)
    let sh = live.wait_for("the allowed shell", 10, |e| {
        e.event_type() == EventType::Execve
            && e.container.id == name
            && e.process.exepath == "/bin/busybox"
            && e.process.args.get(1).is_some_and(|a| a.starts_with("cp "))
    });
    assert!(!sh.process.exe_flags.killed);

    // the same binary outside the container's cgroup runs
    // (busybox picks its applet by the name it runs under: the copy is `echo`)
    let host_copy = rootfs.join("echo");
    std::fs::copy("/bin/busybox", &host_copy).expect("copy on the host");
    let out = stdout(Command::new(&host_copy).arg("host-ok"));
    assert_eq!(out, "host-ok");

    // allowing /tmp/echo from the image's lower layer does not allow the copy: it lives on
    // the overlay's upper layer (written in the container)
    policy
        .set_profile(7, ["/bin/busybox", "/tmp/echo"])
        .expect("widen to the image's file");
    let (out, code) = ctr_sh(&name, "lower-only", "/tmp/echo SURVIVED; echo rc=$?");
    assert_eq!(
        (out.as_str(), code),
        ("rc=137", 0),
        "an upper-layer file ran"
    );
    // widening the profile to the upper layer's file lets the copy run; releasing the
    // cgroup too
    let upper = AllowedExec {
        upper_layer: true,
        ..AllowedExec::from("/tmp/echo")
    };
    policy
        .set_profile(7, [AllowedExec::from("/bin/busybox"), upper])
        .expect("widen");
    let (out, _) = ctr_sh(&name, "widened", "/tmp/echo SURVIVED");
    assert_eq!(out, "SURVIVED");
    // a file on a tmpfs (the container's /dev) at a path allowed from the image is killed;
    // allowed as learned from a tmpfs, it runs
    policy
        .set_profile(7, ["/bin/busybox", "/dev/echo"])
        .expect("allow /dev/echo from the image");
    let (out, code) = ctr_sh(
        &name,
        "tmpfs",
        "cp /bin/busybox /dev/echo && /dev/echo SURVIVED; echo rc=$?",
    );
    assert_eq!((out.as_str(), code), ("rc=137", 0), "a tmpfs file ran");
    let tmpfs = AllowedExec {
        tmpfs: true,
        ..AllowedExec::from("/dev/echo")
    };
    policy
        .set_profile(7, [AllowedExec::from("/bin/busybox"), tmpfs])
        .expect("allow /dev/echo from a tmpfs");
    let (out, _) = ctr_sh(&name, "tmpfs-allowed", "/dev/echo SURVIVED");
    assert_eq!(out, "SURVIVED");
    // a file of the volume (another filesystem than the container's root) at a path
    // allowed from the image is killed, and so is one bound onto such a path (a process
    // with mount rights, in a user namespace of its own: `unshare -Urm`); allowed as
    // learned from another filesystem, both run
    std::fs::copy("/bin/busybox", volume.path().join("echo")).expect("copy to the volume");
    let (out, code) = ctr_sh(
        &name,
        "vol-point",
        "mkdir -p /tmp/vp && touch /tmp/vp/echo && echo made",
    );
    assert_eq!((out.as_str(), code), ("made", 0));
    mount_in(
        task_pid,
        &["--bind", "/data/echo", "/tmp/vp/echo"],
        "bind mount",
    );
    policy
        .set_profile(7, ["/bin/busybox", "/data/echo", "/tmp/vp/echo"])
        .expect("allow the volume's paths from the image");
    for (i, path) in ["/data/echo", "/tmp/vp/echo"].into_iter().enumerate() {
        let (out, code) = ctr_sh(
            &name,
            &format!("volume-{i}"),
            &format!("{path} SURVIVED; echo rc=$?"),
        );
        assert_eq!(
            (out.as_str(), code),
            ("rc=137", 0),
            "{path}: a volume's file ran as the image's"
        );
        let ev = live.wait_for("the volume's exec", 10, |e| {
            e.event_type() == EventType::Execve
                && e.container.id == name
                && e.process.exepath == path
                && e.process.exe_flags.killed
        });
        let f = ev.process.exe_flags;
        assert!(
            f.on_other_fs() && !f.tmpfs && !f.upper_layer && !f.relocated && !f.other_root,
            "{path}: {f:?}"
        );
    }
    let volume_file = |path| AllowedExec {
        other_fs: true,
        ..AllowedExec::from(path)
    };
    policy
        .set_profile(
            7,
            [
                AllowedExec::from("/bin/busybox"),
                volume_file("/data/echo"),
                volume_file("/tmp/vp/echo"),
            ],
        )
        .expect("allow the volume's files");
    for (i, path) in ["/data/echo", "/tmp/vp/echo"].into_iter().enumerate() {
        let (out, _) = ctr_sh(
            &name,
            &format!("volume-allowed-{i}"),
            &format!("{path} SURVIVED"),
        );
        assert_eq!(out, "SURVIVED", "{path}");
    }
    // the image's own files are not on another filesystem
    let own = live.wait_for("the image's busybox", 10, |e| {
        e.event_type() == EventType::Execve
            && e.container.id == name
            && e.process.exepath == "/bin/busybox"
    });
    assert!(
        own.process.exe_flags.other_fs == Some(false),
        "{:?}",
        own.process.exe_flags
    );

    // relocated: the image's busybox bind-mounted onto an allowed path (a mount in the
    // container's mount namespace, made from the host: nsenter), and an allowed path run
    // inside a chroot into one of the image's directories. Both name another file than the
    // path says: killed whatever the profile allows (here: both paths, from anywhere).
    let anywhere = |path| AllowedExec {
        upper_layer: true,
        tmpfs: true,
        ..AllowedExec::from(path)
    };
    let relocated_allowed = [
        AllowedExec::from("/bin/busybox"),
        anywhere("/tmp/point"),
        anywhere("/busybox"),
    ];
    policy
        .set_profile(7, relocated_allowed)
        .expect("allow the relocated paths");
    let (out, code) = ctr_sh(&name, "point", "touch /tmp/point && echo made");
    assert_eq!((out.as_str(), code), ("made", 0));
    mount_in(
        task_pid,
        &["--bind", "/bin/busybox", "/tmp/point"],
        "bind mount",
    );
    let (out, code) = ctr_sh(&name, "bound", "/tmp/point SURVIVED; echo rc=$?");
    assert_eq!(
        (out.as_str(), code),
        ("rc=137", 0),
        "a bind-mounted image file ran"
    );
    let (out, code) = ctr_sh(
        &name,
        "chroot",
        "busybox chroot /bin /busybox echo SURVIVED; echo rc=$?",
    );
    assert_eq!(
        (out.as_str(), code),
        ("rc=137", 0),
        "an exec in a chroot ran"
    );
    // a chroot into a volume's root (a mount, not mounted at "/"): the same
    let (out, code) = ctr_sh(&name, "mkvol", "mkdir -p /tmp/vol && echo made");
    assert_eq!((out.as_str(), code), ("made", 0));
    mount_in(task_pid, &["-t", "tmpfs", "vol", "/tmp/vol"], "tmpfs");
    let (out, code) = ctr_sh(
        &name,
        "chroot-vol",
        "cp /bin/busybox /tmp/vol/busybox && busybox chroot /tmp/vol /busybox echo SURVIVED; \
         echo rc=$?",
    );
    assert_eq!(
        (out.as_str(), code),
        ("rc=137", 0),
        "an exec in a chroot into a volume ran"
    );
    for path in ["/tmp/point", "/busybox"] {
        let ev = live.wait_for(&format!("the relocated exec of {path}"), 10, |e| {
            e.event_type() == EventType::Execve && e.process.exepath == path
        });
        let f = ev.process.exe_flags;
        assert!(f.relocated && f.killed, "{path}: {f:?}");
    }
    // an executable outside the task's root, reached through another process's root
    // (`/proc/<pid>/root`, as a hostPID or shareProcessNamespace neighbour can): its path
    // reads `/bin/busybox` from the container's namespace root, an allowed path; it is
    // relocated and killed (a host process put into the container's cgroup runs it)
    let procs = std::ffi::CString::new(
        falco_learn_probe::kill::cgroup2_mount()
            .expect("cgroup v2")
            .join(cg.path.trim_start_matches('/'))
            .join("cgroup.procs")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .expect("path");
    let mut beyond = Command::new(format!("/proc/{task_pid}/root/bin/busybox"));
    beyond.arg("true");
    let beyond_procs = procs.clone();
    // SAFETY: between fork and exec only open/write/close on a path prepared before.
    unsafe {
        use std::os::unix::process::CommandExt as _;
        beyond.pre_exec(move || {
            join_cgroup(&beyond_procs)?;
            Ok(())
        });
    }
    let st = beyond.status().expect("run through /proc/<pid>/root");
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        st.signal(),
        Some(libc::SIGKILL),
        "ran beyond its root: {st:?}"
    );
    let ev = live.wait_for("the exec beyond its root", 10, |e| {
        e.event_type() == EventType::Execve
            && e.cgroup_id == cg.id
            && e.process.exepath == "/bin/busybox"
            && e.process.exe_flags.killed
    });
    assert!(ev.process.exe_flags.relocated, "{:?}", ev.process.exe_flags);

    // Another container's root: the container's cgroup remembers the root its first exec
    // ran from (its home). A process of the cgroup that chroots into a neighbour's root
    // (`/proc/<pid>/root`, as a hostPID container can) or joins the neighbour's mount
    // namespace (setns) runs the neighbour's `/bin/busybox`, an allowed path, from
    // another root: relocated and killed.
    assert!(
        live.probe.cgroup_homes().expect("homes").contains(&cg.id),
        "the container's home is not remembered"
    );
    let neighbour = format!("fl-kill-n-{}", std::process::id());
    let _n = CtrContainer::run(&image.reference, &neighbour, &[], &["/bin/sleep", "60"]);
    let n_pid = ctr_task_pid(&neighbour);
    for how in ["chroot", "setns"] {
        let st = in_cgroup_of_neighbour(&procs, n_pid, how);
        assert_eq!(
            st.signal(),
            Some(libc::SIGKILL),
            "{how}: ran from a neighbour's root: {st:?}"
        );
    }
    let from_neighbour = live.wait_for("the execs from the neighbour's root", 10, |e| {
        e.event_type() == EventType::Execve
            && e.cgroup_id == cg.id
            && e.process.exepath == "/bin/busybox"
            && e.process.exe == "fl-neighbour-setns"
    });
    assert!(
        from_neighbour.process.exe_flags.other_root
            && !from_neighbour.process.exe_flags.host_root
            && from_neighbour.process.exe_flags.on_other_fs()
            && !from_neighbour.process.exe_flags.relocated
            && from_neighbour.process.exe_flags.killed,
        "{:?}",
        from_neighbour.process.exe_flags
    );
    let chrooted = live.matching(|e| {
        e.event_type() == EventType::Execve
            && e.cgroup_id == cg.id
            && e.process.exe == "fl-neighbour-chroot"
    });
    assert_eq!(chrooted.len(), 1, "the chrooted exec's event");
    assert!(
        chrooted[0].process.exe_flags.other_root && chrooted[0].process.exe_flags.killed,
        "{:?}",
        chrooted[0].process.exe_flags
    );
    // learned from the host's root only (a hostPID pod entering the host), the neighbour's
    // root is still another: killed
    let from_host = AllowedExec {
        host_root: true,
        ..AllowedExec::from("/bin/busybox")
    };
    policy
        .set_profile(7, [from_host])
        .expect("allow from the host's root");
    let st = in_cgroup_of_neighbour(&procs, n_pid, "setns");
    assert_eq!(
        st.signal(),
        Some(libc::SIGKILL),
        "learned from the host's root, run from a neighbour's: {st:?}"
    );
    // a profile that learned busybox from another root allows it from there: it runs
    // (exit 127: busybox has no applet of that name). The neighbour's file is on another
    // filesystem than the home's (its own root's is not the reference: a volume stacked on
    // "/" and entered is not the container's own filesystem), so learned so too
    let from_anywhere = AllowedExec {
        other_root: true,
        other_fs: true,
        ..AllowedExec::from("/bin/busybox")
    };
    policy
        .set_profile(7, [from_anywhere])
        .expect("allow from another root");
    let st = in_cgroup_of_neighbour(&procs, n_pid, "setns");
    assert_eq!(st.code(), Some(127), "learned from another root: {st:?}");
    // the host's root (a hostPID pod entering the host; here the test's own root, as
    // /proc/1/root may be refused to it) is a root apart: killed when learned from another
    // root only, run when learned from the host's (the host's busybox is /usr/bin/busybox
    // on a merged-/usr host)
    let st = in_cgroup_of_neighbour(&procs, n_pid, "host");
    assert_eq!(
        st.signal(),
        Some(libc::SIGKILL),
        "learned from another root, run from the host's: {st:?}"
    );
    let host_busybox = std::fs::canonicalize("/bin/busybox").expect("the host's busybox");
    let host_busybox = host_busybox.to_str().expect("a UTF-8 path");
    policy
        .set_profile(
            7,
            [AllowedExec {
                host_root: true,
                ..AllowedExec::from(host_busybox)
            }],
        )
        .expect("allow from the host's root");
    let st = in_cgroup_of_neighbour(&procs, n_pid, "host");
    assert_eq!(st.code(), Some(127), "learned from the host's root: {st:?}");
    let from_host = |e: &falco_learn_event::Event| {
        e.event_type() == EventType::Execve
            && e.cgroup_id == cg.id
            && e.process.exe == "fl-neighbour-host"
    };
    live.wait_for("the execs from the host's root", 10, |e| {
        from_host(e) && !e.process.exe_flags.killed
    });
    let entered = live.matching(from_host);
    assert_eq!(
        entered.len(),
        2,
        "the execs from the host's root: {entered:?}"
    );
    for e in &entered {
        let f = e.process.exe_flags;
        assert!(
            f.host_root && !f.other_root && f.other_fs == Some(false) && !f.relocated,
            "{f:?}"
        );
        assert_eq!(e.process.exepath, host_busybox);
    }
    policy
        .set_profile(7, relocated_allowed)
        .expect("back to the home only");
    // the neighbour's own execs, from its own root, are never from another root
    let (out, _) = ctr_sh(&neighbour, "own", "echo fine");
    assert_eq!(out, "fine");
    let own = live.wait_for("the neighbour's exec session", 10, |e| {
        e.event_type() == EventType::Execve
            && e.container.id == neighbour
            && e.process.args.iter().any(|a| a == "echo fine")
    });
    let f = own.process.exe_flags;
    assert!(!f.relocated && !f.other_root && !f.host_root, "{f:?}");

    // the container's own busybox, neither chrooted nor bind-mounted, is never relocated
    let own = live.matching(|e| {
        e.event_type() == EventType::Execve
            && e.container.id == name
            && e.process.exepath == "/bin/busybox"
            && !e.process.exe_flags.killed
    });
    assert!(!own.is_empty());
    assert!(
        own.iter().all(|e| !e.process.exe_flags.relocated),
        "{:?}",
        own.iter().map(|e| e.process.exe_flags).collect::<Vec<_>>()
    );
    policy.set_profile(7, ["/bin/busybox"]).expect("narrow");
    policy.release(cg.id);
    assert_eq!(policy.enforced(), vec![]);
    let (out, _) = ctr_sh(&name, "released", "/tmp/echo SURVIVED");
    assert_eq!(out, "SURVIVED");
}

/// A kill whose exec record finds the ring buffer full is not lost with it: the kernel
/// counts it per cgroup (`KillPolicy::unreported_kills`), for the agent's internal alert.
/// Here the probe's ring (one page) is filled by a shell's write-opens that nobody reads,
/// then an exec outside the profile in a cgroup of the test's own is killed.
#[test]
fn a_kill_whose_record_is_lost_is_counted() {
    if !may_run("the unreported-kill test", &[]) {
        return;
    }
    use std::os::unix::process::CommandExt as _;
    let root = falco_learn_probe::kill::cgroup2_mount().expect("a cgroup v2 hierarchy");
    let cg = root.join(format!("fl-kill-lost-{}", std::process::id()));
    let _ = std::fs::remove_dir(&cg);
    std::fs::create_dir(&cg).expect("mkdir the cgroup");
    let id = std::fs::metadata(&cg)
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .expect("cgroup id");
    let (probe, _rx) = falco_learn_probe::Probe::start(ProbeConfig {
        kill: true,
        // one page, the smallest ring there is
        // SAFETY: sysconf has no preconditions.
        ring_bytes: u32::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096),
        ..ProbeConfig::default()
    })
    .unwrap_or_else(|e| panic!("the probe did not start: {e}"));
    let policy = probe.kill_policy().expect("kill policy");
    policy.set_profile(9, ["/fl-nothing"]).expect("profile");
    policy.enforce(id, 9).expect("enforce");
    // fill the ring: write-opens are reported (no write filter), nobody reads
    let scratch = tempfile::tempdir().expect("tmp");
    let target = scratch.path().join("w");
    let st = Command::new("/bin/busybox")
        .args([
            "sh",
            "-c",
            "i=0; while [ $i -lt 400 ]; do : > \"$1\"; i=$((i+1)); done",
        ])
        .arg("sh")
        .arg(&target)
        .status()
        .expect("shell");
    assert!(st.success());
    let dropped: u64 = probe.kernel_stats().iter().map(|(_, s)| s.dropped).sum();
    assert!(dropped > 0, "the ring did not fill");
    // an exec outside the profile in the cgroup: killed, its record lost
    let procs = std::ffi::CString::new(
        cg.join("cgroup.procs")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .expect("path");
    let mut cmd = Command::new("/bin/true");
    // SAFETY: between fork and exec only open/write/close on a path prepared before.
    unsafe {
        cmd.pre_exec(move || {
            join_cgroup(&procs)?;
            Ok(())
        });
    }
    let st = cmd.status().expect("run in the cgroup");
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(st.signal(), Some(libc::SIGKILL), "not killed: {st:?}");
    // the exec's own record was among the dropped (a full ring, not a lost race)
    let exec_dropped = probe
        .kernel_stats()
        .iter()
        .find(|(k, _)| k.name() == "execve")
        .map(|(_, s)| s.dropped)
        .unwrap_or(0);
    assert!(exec_dropped > 0, "the killed exec's record was written");
    assert_eq!(policy.unreported_kills(), vec![(id, 1)]);
    policy.release(id);
    drop(probe);
    let _ = std::fs::remove_dir(&cg);
}

/// The pid of a running ctr task.
fn ctr_task_pid(name: &str) -> u32 {
    stdout(Command::new("ctr").args(["task", "ls"]))
        .lines()
        .find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.first() == Some(&name))
                .then(|| cols.get(1).and_then(|p| p.parse().ok()))
                .flatten()
        })
        .unwrap_or_else(|| panic!("no task pid for {name}"))
}

/// Run `/bin/busybox true` (argv[0] `fl-neighbour-<how>`) from a host process put into the
/// cgroup whose `cgroup.procs` is `procs`, after it took the root of the process `n_pid` by
/// `chroot` into its `/proc/<pid>/root`, or by `setns` into its mount namespace.
fn in_cgroup_of_neighbour(
    procs: &std::ffi::CString,
    n_pid: u32,
    how: &'static str,
) -> std::process::ExitStatus {
    use std::os::unix::process::CommandExt as _;
    let procs = procs.clone();
    let root = std::ffi::CString::new(format!("/proc/{n_pid}/root")).expect("path");
    let ns = std::ffi::CString::new(format!("/proc/{n_pid}/ns/mnt")).expect("path");
    let mut cmd = Command::new("/bin/busybox");
    cmd.arg0(format!("fl-neighbour-{how}")).arg("true");
    // SAFETY: between fork and exec only open/write/close/chroot/chdir/setns on paths
    // prepared before.
    unsafe {
        cmd.pre_exec(move || {
            join_cgroup(&procs)?;
            let ok = if how == "host" {
                true // the test's own root, the host's
            } else if how == "chroot" {
                libc::chroot(root.as_ptr()) == 0 && libc::chdir(c"/".as_ptr()) == 0
            } else {
                let fd = libc::open(ns.as_ptr(), libc::O_RDONLY);
                fd >= 0 && libc::setns(fd, libc::CLONE_NEWNS) == 0
            };
            if !ok {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.status().expect("run from the neighbour's root")
}

/// A cgroup's home: not taken from the host's root (an OCI `createContainer` hook runs
/// there, in the container's cgroup, before the runtime pivots), taken at the first exec
/// from a root of its own (here a tmpfs a child pivots into, as a runtime does), then
/// inherited by a cgroup made below it (an exec there from the host's root is flagged
/// `host_root`, not `other_root`), and forgotten when the cgroup is removed (`fl_cgroup_rmdir`).
#[test]
fn a_cgroups_home_lives_as_long_as_the_cgroup() {
    if !may_run("the cgroup home test", &[]) {
        return;
    }
    let root = falco_learn_probe::kill::cgroup2_mount().expect("a cgroup v2 hierarchy");
    let cg = root.join(format!("fl-home-{}", std::process::id()));
    let sub = cg.join("sub");
    let _ = std::fs::remove_dir(&sub);
    let _ = std::fs::remove_dir(&cg);
    std::fs::create_dir(&cg).expect("mkdir the cgroup");
    let ino = |p: &std::path::Path| {
        std::fs::metadata(p)
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .expect("cgroup id")
    };
    let id = ino(&cg);
    // a root of its own: a tmpfs holding busybox
    let newroot = tempfile::tempdir().expect("tmp");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "fl-home"])
        .arg(newroot.path())
        .status()
        .expect("mount");
    assert!(mounted.success());
    // whatever fails below: the tmpfs unmounted, the cgroups removed (children first)
    struct Cleanup<'a>(&'a std::path::Path, [&'a std::path::Path; 2]);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
            for cg in self.1 {
                let _ = std::fs::remove_dir(cg);
            }
        }
    }
    let _cleanup = Cleanup(newroot.path(), [&sub, &cg]);
    std::fs::copy("/bin/busybox", newroot.path().join("busybox")).expect("copy busybox");
    let live = LiveProbe::start(ProbeConfig::default());
    let homes = || live.probe.cgroup_homes().expect("homes");
    assert!(!homes().contains(&id));

    let st = in_cgroup(&cg, None, "fl-home-host-1");
    assert!(st.code().is_some(), "{st:?}");
    assert!(
        !homes().contains(&id),
        "a home was taken from the host's root"
    );
    let st = in_cgroup(&cg, Some(newroot.path()), "fl-home-own");
    assert!(st.code().is_some(), "{st:?}");
    assert!(
        homes().contains(&id),
        "no home after an exec from its own root"
    );
    let st = in_cgroup(&cg, None, "fl-home-host-2");
    assert!(st.code().is_some(), "{st:?}");
    std::fs::create_dir(&sub).expect("mkdir the sub-cgroup");
    let st = in_cgroup(&sub, None, "fl-home-sub");
    assert!(st.code().is_some(), "{st:?}");
    assert!(!homes().contains(&ino(&sub)), "the sub-cgroup took a home");
    for (argv0, host_root) in [
        ("fl-home-host-1", false),
        ("fl-home-own", false),
        ("fl-home-host-2", true),
        ("fl-home-sub", true),
    ] {
        let ev = live.wait_for(argv0, 10, |e| {
            e.event_type() == EventType::Execve && e.process.exe == argv0
        });
        let f = ev.process.exe_flags;
        assert_eq!(
            (f.host_root, f.other_root, f.relocated),
            (host_root, false, false),
            "{argv0}: {f:?}"
        );
    }
    std::fs::remove_dir(&sub).expect("rmdir the sub-cgroup");
    std::fs::remove_dir(&cg).expect("rmdir the cgroup");
    assert!(!homes().contains(&id), "the removed cgroup's home is kept");
}

/// Run busybox `true` as `argv0` from a child put into the cgroup `cg`: from the host's
/// root, or after it pivoted into `newroot` (a mount holding `busybox`) in a mount
/// namespace of its own, as a container runtime does.
fn in_cgroup(
    cg: &std::path::Path,
    newroot: Option<&std::path::Path>,
    argv0: &str,
) -> std::process::ExitStatus {
    use std::os::unix::process::CommandExt as _;
    let cstr = |p: &std::path::Path| {
        std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("path")
    };
    let procs = cstr(&cg.join("cgroup.procs"));
    let newroot = newroot.map(cstr);
    let mut cmd = Command::new(if newroot.is_some() {
        "/busybox"
    } else {
        "/bin/busybox"
    });
    // (busybox picks its applet by argv[0]: this one has none and exits 127; the exec is
    // what counts)
    cmd.arg0(argv0).arg("true");
    // SAFETY: between fork and exec only syscalls on paths prepared before.
    unsafe {
        cmd.pre_exec(move || {
            join_cgroup(&procs)?;
            if let Some(r) = &newroot {
                let none = std::ptr::null();
                let dot = c".".as_ptr();
                if libc::unshare(libc::CLONE_NEWNS) != 0
                    || libc::mount(
                        none,
                        c"/".as_ptr(),
                        none,
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    ) != 0
                    || libc::chdir(r.as_ptr()) != 0
                    || libc::syscall(libc::SYS_pivot_root, dot, dot) != 0
                    || libc::umount2(dot, libc::MNT_DETACH) != 0
                    || libc::chdir(c"/".as_ptr()) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.status().expect("run in the cgroup")
}

/// Move the calling process into the cgroup whose `cgroup.procs` is `procs` (writing "0"
/// moves the writer). Raw syscalls only: for `pre_exec`, between fork and exec.
fn join_cgroup(procs: &std::ffi::CStr) -> std::io::Result<()> {
    // SAFETY: open/write/close on a NUL-terminated path prepared before the fork.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
        if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
            return Err(std::io::Error::last_os_error());
        }
        libc::close(fd);
    }
    Ok(())
}
