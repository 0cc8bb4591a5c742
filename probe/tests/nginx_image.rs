//! The nginx image of the end-to-end scenario (issue 6), built by
//! `tests/e2e/build-nginx-image.sh` (no registry), served from real containers on
//! free loopback ports while the probe runs:
//! - containerd (`ctr run --net-host`): a page is fetched, and nginx's exec and
//!   its log opens carry `docker.io/library/nginx:latest` and the image digest;
//! - podman (`--network host`, no API service running): the same image name,
//!   resolved from podman's on-disk `containers.json`.
//!
//! Needs root, containerd, ctr, podman and apt access to Debian's packages;
//! elsewhere a loud SKIP.

use falco_learn_test_support as support;

use falco_learn_event::{Event, EventType};
use falco_learn_probe::ProbeConfig;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const REF: &str = "docker.io/library/nginx:latest";

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// GET / on loopback with busybox wget until nginx answers (10 s at most).
fn fetch(port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("/bin/busybox")
            .args(["wget", "-q", "-O", "-", &url])
            .output()
            .expect("busybox wget");
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(Instant::now() < deadline, "nginx did not answer on {url}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn nginx_exec(id: String) -> impl Fn(&Event) -> bool {
    move |e| {
        e.container.id == id
            && e.event_type() == EventType::Execve
            && e.process.exepath == "/usr/sbin/nginx"
    }
}

fn log_open(id: String) -> impl Fn(&Event) -> bool {
    move |e| {
        e.container.id == id
            && e.fd
                .as_ref()
                .is_some_and(|f| f.name == "/var/log/nginx/access.log")
    }
}

struct PodmanContainer(String);

impl Drop for PodmanContainer {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.0])
            .output();
    }
}

struct PodmanImage;

impl Drop for PodmanImage {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rmi", "-f", REF]).output();
    }
}

#[test]
fn nginx_image_serves_and_its_events_carry_the_image() {
    if !may_run(
        "nginx image test",
        &["containerd", "ctr", "podman", "apt-get", "dpkg", "ldd"],
    ) {
        return;
    }
    let _daemon = Containerd::start();
    let out = Scratch(std::env::temp_dir().join(format!("fl-nginx-image-{}", std::process::id())));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/build-nginx-image.sh");
    let t = Instant::now();
    must(
        Command::new("bash")
            .arg(&script)
            .arg("--podman")
            .arg("--out")
            .arg(&out),
    );
    let _podman_image = PodmanImage;
    let built = t.elapsed();
    let image = CtrImage::import_tar(REF, &out.join("nginx-image.tar"));

    // nothing answers on the podman API: containers.json must do
    let mut cfg = ProbeConfig::default();
    cfg.runtime.podman_sockets = vec![];
    let live = LiveProbe::start(cfg);

    // containerd
    let name = format!("fl-nginx-{}", std::process::id());
    let port = free_port();
    let ctr = CtrContainer::run(
        REF,
        &name,
        &["--env", &format!("NGINX_PORT={port}")],
        &["/docker-entrypoint.sh"],
    );
    let page = fetch(port);
    assert!(page.contains("Welcome to nginx!"), "{page}");
    let exec = live.wait_for("nginx exec (ctr)", 15, nginx_exec(name.clone()));
    let c = &exec.container;
    assert_eq!(c.name, name);
    assert_eq!(c.runtime, "containerd");
    assert_eq!(c.image_repository, "docker.io/library/nginx");
    assert_eq!(c.image_tag, "latest");
    assert_eq!(c.image_digest, image.digest);
    assert_eq!(c.start_ts, ctr.start_ns());
    let log = live.wait_for("access.log open (ctr)", 15, log_open(name.clone()));
    assert_eq!(log.container, exec.container);

    // podman
    let pname = format!("fl-nginx-pm-{}", std::process::id());
    let pport = free_port();
    let id = stdout(
        Command::new("podman")
            .args(["run", "-d", "--name", &pname, "--network", "host"])
            .args(["-e", &format!("NGINX_PORT={pport}"), REF])
            .stdin(Stdio::null()),
    );
    let _pc = PodmanContainer(id.clone());
    let page = fetch(pport);
    assert!(page.contains("Welcome to nginx!"), "{page}");
    let pdigest =
        stdout(Command::new("podman").args(["image", "inspect", "--format", "{{.Digest}}", REF]));
    let pexec = live.wait_for("nginx exec (podman)", 15, nginx_exec(id[..12].to_string()));
    let c = &pexec.container;
    assert_eq!(c.name, pname);
    assert_eq!(c.runtime, "podman");
    assert_eq!(c.image_repository, "docker.io/library/nginx");
    assert_eq!(c.image_tag, "latest");
    assert_eq!(c.image_digest, pdigest);
    let plog = live.wait_for(
        "access.log open (podman)",
        15,
        log_open(id[..12].to_string()),
    );
    assert_eq!(plog.container, pexec.container);

    let stats = live.probe.runtime_stats().expect("resolver on");
    eprintln!(
        "nginx image built in {built:?} ({}); runtime stats {stats:?}",
        out.display()
    );
    drop(ctr);
    drop(image);
}
