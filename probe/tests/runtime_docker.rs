//! Issue 6: events from inside real Docker containers carry their name, image,
//! start time, privileged flag, bind mounts and (for cri-dockerd-style labels)
//! their pod, resolved over the Docker Engine API.
//!
//! The test runs its **own** dockerd (Debian's `docker.io`; own socket, data
//! root and exec root under a scratch directory, no iptables, no bridge), so it
//! neither needs nor disturbs a Docker on the machine. The image is loaded from
//! a local archive (no registry), so Docker knows no repository digest for it:
//! `container.image.digest` is empty, as it is for Falco.
//!
//! Needs root, dockerd and docker (CI: `.ci/setup`); elsewhere a loud SKIP.

use falco_learn_test_support as support;

use falco_learn_event::{Event, Mount};
use falco_learn_probe::runtime::{parse_rfc3339_ns, RuntimeConfig};
use falco_learn_probe::ProbeConfig;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

const IMAGE: &str = "docker.io/library/fl-docker-busybox:test";

/// A dockerd of this test's own, stopped and its directory removed on drop.
struct PrivateDocker {
    dir: PathBuf,
    socket: PathBuf,
    daemon: Child,
}

impl PrivateDocker {
    fn start() -> PrivateDocker {
        let dir = std::env::temp_dir().join(format!("fl-docker-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("docker dir");
        let socket = dir.join("docker.sock");
        let log = std::fs::File::create(dir.join("dockerd.log")).expect("dockerd log");
        let daemon = Command::new("dockerd")
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .arg("--data-root")
            .arg(dir.join("root"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .args(["--iptables=false", "--ip-masq=false", "--bridge=none"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let d = PrivateDocker {
            dir,
            socket,
            daemon,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(d.socket.exists() && d.docker(&["version"]).status.success()) {
            assert!(
                Instant::now() < deadline,
                "dockerd did not come up in 30 s; its log:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    /// `docker …` that must succeed; its trimmed stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}{}\ndockerd:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// `container.start_ts` of a container: its init's (`State.Pid`) start,
    /// which lies before the `State.StartedAt` dockerd records once it started.
    fn start_ns(&self, id: &str) -> u64 {
        let pid: u32 = self
            .ok(&["inspect", "-f", "{{.State.Pid}}", id])
            .parse()
            .expect("State.Pid");
        let start = init_start_ns(pid, id);
        let started = parse_rfc3339_ns(&self.ok(&["inspect", "-f", "{{.State.StartedAt}}", id]));
        assert!(start <= started, "init of {id} started after StartedAt");
        start
    }
}

impl Drop for PrivateDocker {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        stop_child(&mut self.daemon, Duration::from_secs(15));
        unmount_below(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn in_container<'a>(short: &'a str, marker: &'a str) -> impl Fn(&Event) -> bool + 'a {
    move |e| e.container.id == short && e.fd.as_ref().is_some_and(|f| f.name == marker)
}

#[test]
fn docker_container_events_carry_engine_api_metadata() {
    if !may_run("Docker attribution test", &["dockerd", "docker"]) {
        return;
    }
    let docker = PrivateDocker::start();
    let rootfs = busybox_rootfs("docker");
    let tar = image_tar(&rootfs, IMAGE);
    docker.ok(&["load", "-i", tar.to_str().unwrap_or_default()]);
    let _ = std::fs::remove_file(&tar);

    let live = LiveProbe::start(ProbeConfig {
        runtime: RuntimeConfig {
            containerd_sockets: vec![PathBuf::from("/nonexistent/containerd.sock")],
            cri_sockets: vec![],
            docker_sockets: vec![docker.socket.clone()],
            podman_sockets: vec![],
            podman_storage: None,
            ..RuntimeConfig::default()
        },
        ..ProbeConfig::default()
    });

    let pid = std::process::id();
    let name = format!("fl-dk-{pid}");
    let data = Scratch(std::env::temp_dir().join(format!("fl-dk-data-{pid}")));
    std::fs::create_dir_all(&data.0).expect("data dir");
    let marker = "/tmp/fl-dk-marker";
    let script = format!("touch {marker}; exec sleep 60");
    let volume = format!("{}:/data:ro", data.0.display());
    let plain = docker.ok(&[
        "run",
        "-d",
        "--network",
        "host",
        "--name",
        &name,
        "-v",
        &volume,
        IMAGE,
        "/bin/sh",
        "-c",
        &script,
    ]);
    // cri-dockerd (Kubernetes on Docker) names containers k8s_… and labels them.
    // (Not --privileged: Docker grants every capability it knows, and CI's VM
    // sandbox withholds CAP_SYS_RESOURCE from root itself, so runc refuses; the
    // HostConfig.Privileged reading is covered by the engine unit tests.)
    let pod = docker.ok(&[
        "run",
        "-d",
        "--network",
        "host",
        "--name",
        &format!("k8s_app_web-1_shop_{pid}_0"),
        "--label",
        "io.kubernetes.container.name=app",
        "--label",
        "io.kubernetes.pod.name=web-1",
        "--label",
        "io.kubernetes.pod.namespace=shop",
        "--label",
        &format!("io.kubernetes.pod.uid=uid-{pid}"),
        IMAGE,
        "/bin/sh",
        "-c",
        &script,
    ]);
    assert_eq!(plain.len(), 64, "docker run -d prints the full id: {plain}");

    let ev = live.wait_for(
        "open of the marker in the Docker container",
        20,
        in_container(&plain[..12], marker),
    );
    let c = &ev.container;
    assert_eq!(c.name, name);
    assert_eq!(c.runtime, "docker");
    assert_eq!(c.image_repository, "docker.io/library/fl-docker-busybox");
    assert_eq!(c.image_tag, "test");
    assert_eq!(
        c.image_digest, "",
        "a loaded image has no repository digest"
    );
    assert_eq!(c.privileged, Some(false));
    assert_eq!(c.start_ts, docker.start_ns(&plain));
    assert_eq!((c.k8s_ns.as_str(), c.k8s_pod.as_str()), ("", ""));
    assert_eq!(
        c.mounts,
        vec![Mount {
            source: data.0.display().to_string(),
            dest: "/data".into(),
            mode: "ro".into(),
            rw: false,
            propagation: "rprivate".into(),
        }]
    );
    assert_eq!(ev.process.comm, "touch");

    let pev = live.wait_for(
        "open of the marker in the Kubernetes-labelled Docker container",
        20,
        in_container(&pod[..12], marker),
    );
    let p = &pev.container;
    assert_eq!(p.name, "app");
    assert_eq!(p.privileged, Some(false));
    assert_eq!(p.start_ts, docker.start_ns(&pod));
    assert_eq!(
        (
            p.k8s_ns.as_str(),
            p.k8s_pod.as_str(),
            p.k8s_pod_uid.as_str()
        ),
        ("shop", "web-1", format!("uid-{pid}").as_str())
    );
    assert_eq!(p.k8s_pod_labels, BTreeMap::new());
    assert_eq!(p.image_repository, c.image_repository);

    let stats = live.probe.runtime_stats().expect("resolver runs");
    assert_eq!((stats.unreachable, stats.timeouts), (0, 0), "{stats:?}");
    assert!(stats.resolved >= 2, "{stats:?}");
}
