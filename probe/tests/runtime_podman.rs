//! Issue 6: events from inside a real podman container carry its name, image
//! (`localhost/fl-busybox:test`), digest, start time and privileged flag,
//! resolved over the Podman (Docker-compatible) Engine API that this test starts
//! (`podman system service`) on its own socket; the on-disk fallback
//! (`containers.json`) resolves the same container to the same image.
//!
//! Needs root, podman and runc with /etc/containers/containers.conf from
//! `.ci/setup`; elsewhere a loud SKIP.

use falco_learn_test_support as support;

use falco_learn_probe::runtime::{Lookup, Resolver, RuntimeConfig, Source};
use falco_learn_probe::ProbeConfig;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// `podman system service` on a socket of our own, stopped on drop.
struct Service {
    child: Child,
    socket: PathBuf,
}

impl Service {
    fn start() -> Service {
        let socket = PathBuf::from(format!("/run/fl-test-podman-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&socket);
        let log = std::fs::File::create(std::env::temp_dir().join("fl-podman-service.log"))
            .expect("service log");
        let child = Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start podman system service");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "podman system service did not listen in 15 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Service { child, socket }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: signalling the service we started, by its own pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The imported image, removed on drop.
struct PodmanImage(String);

impl Drop for PodmanImage {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rmi", "-f", &self.0]).output();
    }
}

/// A `podman run -d` container, removed on drop.
struct PodmanContainer(String);

impl Drop for PodmanContainer {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.0])
            .output();
    }
}

fn resolve_directly(
    cfg: RuntimeConfig,
    id: &str,
) -> Arc<falco_learn_probe::runtime::ContainerMeta> {
    let r = Resolver::start(cfg).expect("resolver");
    let c = Arc::new(falco_learn_probe::container::CgroupContainer {
        full_id: id.into(),
        namespace: None,
        runtime: falco_learn_probe::container::RuntimeKind::Podman,
    });
    r.lookup(&c);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match r.peek(&c) {
            Lookup::Ready(m) => return m,
            Lookup::Pending if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            other => panic!("{id} not resolved: {other:?} {:?}", r.stats()),
        }
    }
}

#[test]
fn podman_container_events_carry_image_metadata() {
    if !may_run("podman attribution test", &["podman", "runc"]) {
        return;
    }
    let rootfs = busybox_rootfs("podman");
    let tar = rootfs.with_extension("tar");
    must(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    );
    must(
        Command::new("podman")
            .arg("import")
            .arg(&tar)
            .arg("fl-busybox:test"),
    );
    let _ = std::fs::remove_file(&tar);
    let image = PodmanImage("localhost/fl-busybox:test".into());
    let digest = stdout(Command::new("podman").args([
        "image",
        "inspect",
        "--format",
        "{{.Digest}}",
        &image.0,
    ]));
    assert!(digest.starts_with("sha256:"), "{digest}");

    let service = Service::start();
    let mut cfg = ProbeConfig::default();
    cfg.runtime.podman_sockets = vec![service.socket.clone()];
    let live = LiveProbe::start(cfg);

    let name = format!("fl-rt-pm-{}", std::process::id());
    let marker = "/tmp/fl-rt-marker";
    let id = stdout(Command::new("podman").args([
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        &image.0,
        "/bin/sh",
        "-c",
        &format!("touch {marker}; exec sleep 60"),
    ]));
    let container = PodmanContainer(id.clone());
    assert_eq!(id.len(), 64, "{id}");
    let inspect = stdout(Command::new("podman").args(["inspect", &id]));
    let v: serde_json::Value = serde_json::from_str(&inspect).expect("podman inspect JSON");
    let started = falco_learn_probe::runtime::parse_rfc3339_ns(
        v[0]["State"]["StartedAt"].as_str().expect("StartedAt"),
    );
    // container.start_ts is the init's (State.Pid) start, before the StartedAt
    // podman records once it started
    let init = v[0]["State"]["Pid"].as_u64().expect("State.Pid") as u32;
    let start = init_start_ns(init, &id);
    assert!(start > 0 && start <= started, "{start} {started}");

    let ev = live.wait_for("open of the marker in the podman container", 15, |e| {
        e.container.id == id[..12] && e.fd.as_ref().is_some_and(|f| f.name == marker)
    });
    let c = &ev.container;
    assert_eq!(c.name, name);
    assert_eq!(c.runtime, "podman");
    assert_eq!(c.image_repository, "localhost/fl-busybox");
    assert_eq!(c.image_tag, "test");
    assert_eq!(c.image_digest, digest);
    assert_eq!(c.privileged, Some(false));
    assert_eq!(c.start_ts, start);
    assert_eq!(ev.process.comm, "touch");
    let ours = live.matching(|e| e.container.id == id[..12]);
    assert!(
        ours.iter().all(|e| e.container == ev.container),
        "an event of the container differs in its metadata"
    );
    let stats = live.probe.runtime_stats().expect("resolver on");
    assert_eq!(
        (stats.unreachable, stats.hold_timeouts),
        (0, 0),
        "{stats:?}"
    );
    eprintln!(
        "podman via Engine API: {} events; mean lookup {} us, max {} us over {} lookups",
        ours.len(),
        stats.lookup_ns_total / stats.resolved.max(1) / 1000,
        stats.lookup_ns_max / 1000,
        stats.resolved
    );

    // the same container through each source on its own
    let none = RuntimeConfig {
        containerd_sockets: vec![],
        docker_sockets: vec![],
        podman_sockets: vec![],
        podman_storage: None,
        ..RuntimeConfig::default()
    };
    let api = resolve_directly(
        RuntimeConfig {
            podman_sockets: vec![service.socket.clone()],
            ..none.clone()
        },
        &id,
    );
    assert_eq!(api.source, Source::EngineApi);
    let disk = resolve_directly(
        RuntimeConfig {
            podman_storage: Some(Path::new("/var/lib/containers/storage").into()),
            ..none.clone()
        },
        &id,
    );
    assert_eq!(disk.source, Source::PodmanStorage);
    for m in [&api, &disk] {
        assert_eq!(m.id, id);
        assert_eq!(m.name, name);
        assert_eq!(m.image.repository, "localhost/fl-busybox");
        assert_eq!(m.image.tag, "test");
        assert_eq!(m.image.digest, digest);
        // the same init (State.Pid, conmon's pidfile), the same start
        assert_eq!((m.init_pid, m.start_ts), (init, start));
    }
    assert_eq!(api.privileged, Some(false));
    // containers.json has no privileged flag
    assert_eq!(disk.privileged, None);

    drop(container);
    drop(live);
    drop(service);
    drop(image);
}
