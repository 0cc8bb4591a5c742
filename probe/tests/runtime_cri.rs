//! Issue 6: attribution over the Kubernetes CRI API, against a real CRI server:
//! containerd's CRI plugin. The test plays kubelet: it runs a pod sandbox
//! (host network, so no CNI is needed) with an unprivileged and a privileged
//! container, in the cgroupfs layout kubelet uses (`/kubepods/besteffort/pod<uid>/<id>`).
//!
//! The live probe is configured with **no containerd gRPC socket** and the
//! containerd socket as its only CRI socket, so every field must come over CRI:
//! container name, image tag and digest, start time (its init's: see
//! `ContainerMeta::start_ts`), privileged flag, pod name,
//! namespace, uid and labels. The same lookup is then asked as if the container
//! were CRI-O's (`crio-<id>` cgroups), which goes to the CRI sockets only.
//!
//! The test runs its **own** containerd (own root, state and socket under a
//! scratch directory), so it neither needs nor disturbs a containerd on the
//! machine, and configures its CRI plugin: a local pause image name, and
//! `restrict_oom_score_adj` (kubelet's -998 for sandboxes cannot be set inside
//! a VM sandbox like CI's). Images are local (no registry): a busybox image and
//! the pause image, both imported with `ctr`.
//!
//! Needs root, containerd and ctr (CI: `.ci/setup`); elsewhere a loud SKIP.

use falco_learn_test_support as support;

use falco_learn_event::Event;
use falco_learn_probe::container::{CgroupContainer, RuntimeKind};
use falco_learn_probe::runtime::{Lookup, Resolver, RuntimeConfig, Source};
use falco_learn_probe::ProbeConfig;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;
use tonic::transport::Channel;

const IMAGE: &str = "docker.io/library/fl-cri-busybox:test";
const PAUSE: &str = "localhost/fl-pause:test";

/// A containerd of this test's own, stopped and its directory removed on drop.
struct PrivateContainerd {
    dir: PathBuf,
    socket: PathBuf,
    daemon: std::process::Child,
}

impl PrivateContainerd {
    fn start() -> PrivateContainerd {
        let dir = std::env::temp_dir().join(format!("fl-cri-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("containerd dir");
        let socket = dir.join("containerd.sock");
        let d = dir.display();
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE}"
  restrict_oom_score_adj = true
"#
        );
        std::fs::write(dir.join("config.toml"), config).expect("containerd config");
        let log = std::fs::File::create(dir.join("containerd.log")).expect("containerd log");
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = PrivateContainerd {
            dir,
            socket,
            daemon,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !(c.socket.exists() && c.ctr(&["version"]).status.success()) {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up in 15 s; its log:\n{}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["-n", "k8s.io"])
            .args(args)
            .output()
            .expect("run ctr")
    }

    /// `ctr -n k8s.io …` that must succeed; its stdout.
    fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    async fn channel(&self) -> Channel {
        containerd_client::connect(&self.socket)
            .await
            .unwrap_or_else(|e| panic!("connect {}: {e:?}", self.socket.display()))
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        stop_child(&mut self.daemon, Duration::from_secs(5));
        unmount_below(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Import `rootfs` as image `reference` (default command `cmd`) into `k8s.io`,
/// also under the repository@digest name a CRI pull records; the digest.
fn import(ctrd: &PrivateContainerd, reference: &str, rootfs: &Path, cmd: &[&str]) -> String {
    let tar = image_tar_with(rootfs, reference, cmd);
    ctrd.ctr_ok(&["images", "import", tar.to_str().unwrap_or_default()]);
    let _ = std::fs::remove_file(&tar);
    let ls = ctrd.ctr_ok(&["images", "ls"]);
    let digest = ls_digest(&ls, reference)
        .unwrap_or_else(|| panic!("{reference} not in `ctr -n k8s.io images ls`:\n{ls}"));
    let repo = reference
        .rsplit_once(':')
        .map(|(r, _)| r)
        .unwrap_or(reference);
    ctrd.ctr_ok(&["images", "tag", reference, &format!("{repo}@{digest}")]);
    digest
}

/// Wait until the CRI image service sees `image` (it follows containerd's image events).
async fn wait_image(ch: Channel, image: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = ImageServiceClient::new(ch.clone())
            .image_status(cri::ImageStatusRequest {
                image: Some(cri::ImageSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                verbose: false,
            })
            .await
            .expect("CRI ImageStatus");
        if r.into_inner().image.is_some() {
            return;
        }
        assert!(Instant::now() < deadline, "CRI never saw image {image}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A pod sandbox, stopped and removed (with its containers) on drop.
struct Pod<'a> {
    id: String,
    config: cri::PodSandboxConfig,
    ctrd: &'a PrivateContainerd,
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        let id = self.id.clone();
        rt().block_on(async move {
            let mut c = RuntimeServiceClient::new(self.ctrd.channel().await);
            let _ = c
                .stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await;
            let _ = c
                .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id })
                .await;
        });
    }
}

fn pod_config(uid: &str, logs: &Path) -> cri::PodSandboxConfig {
    let node = cri::NamespaceMode::Node as i32;
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: format!("fl-cri-pod-{}", std::process::id()),
            uid: uid.into(),
            namespace: "fl-test".into(),
            attempt: 0,
        }),
        log_directory: logs.display().to_string(),
        labels: HashMap::from([
            ("app".to_string(), "fl-cri".to_string()),
            ("tier".to_string(), "test".to_string()),
        ]),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: format!("/kubepods/besteffort/pod{uid}"),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: node,
                    ..Default::default()
                }),
                // a pod may hold privileged containers only when it is privileged
                privileged: true,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn run_container(
    c: &mut RuntimeServiceClient<Channel>,
    pod: &Pod<'_>,
    name: &str,
    privileged: bool,
    marker: &str,
) -> String {
    let config = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: IMAGE.into(),
            ..Default::default()
        }),
        command: vec!["/bin/sh".into()],
        args: vec!["-c".into(), format!("touch {marker}; exec sleep 60")],
        log_path: format!("{name}.log"),
        linux: Some(cri::LinuxContainerConfig {
            security_context: Some(cri::LinuxContainerSecurityContext {
                privileged,
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = c
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        })
        .await
        .unwrap_or_else(|s| panic!("CRI CreateContainer {name}: {s}"))
        .into_inner()
        .container_id;
    c.start_container(cri::StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap_or_else(|s| panic!("CRI StartContainer {name}: {s}"));
    id
}

/// `container.start_ts` of a CRI container: its init's start (the pid in the
/// verbose status's `info`), which lies between the container's `created_at`
/// and the `started_at` the runtime records once the start returned.
async fn start_ns(c: &mut RuntimeServiceClient<Channel>, id: &str) -> u64 {
    let r = c
        .container_status(cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        })
        .await
        .expect("CRI ContainerStatus")
        .into_inner();
    let s = r.status.expect("status");
    let info: serde_json::Value =
        serde_json::from_str(r.info.get("info").expect("verbose info")).expect("info JSON");
    let pid = info["pid"].as_u64().expect("info.pid") as u32;
    let start = init_start_ns(pid, id);
    let (created, started) = (
        u64::try_from(s.created_at).unwrap_or(0),
        u64::try_from(s.started_at).unwrap_or(0),
    );
    assert!(
        created <= start + TICK_NS && start <= started,
        "init start {start} not within created_at {created} .. started_at {started}"
    );
    start
}

fn in_container<'a>(short: &'a str, marker: &'a str) -> impl Fn(&Event) -> bool + 'a {
    move |e| e.container.id == short && e.fd.as_ref().is_some_and(|f| f.name == marker)
}

/// Only CRI: no containerd gRPC socket, the test's containerd as the CRI socket.
fn cri_only(socket: &Path) -> RuntimeConfig {
    RuntimeConfig {
        containerd_sockets: vec![PathBuf::from("/nonexistent/containerd.sock")],
        cri_sockets: vec![socket.to_path_buf()],
        docker_sockets: vec![],
        podman_sockets: vec![],
        podman_storage: None,
        podman_run_root: None,
        ..RuntimeConfig::default()
    }
}

#[test]
fn cri_pod_containers_carry_pod_and_image_metadata() {
    if !may_run("CRI attribution test", &["containerd", "ctr"]) {
        return;
    }
    let ctrd = PrivateContainerd::start();
    let rt = rt();
    let rootfs = busybox_rootfs("cri");
    import(&ctrd, PAUSE, &rootfs, &["/bin/sleep", "100000"]);
    let digest = import(&ctrd, IMAGE, &rootfs, &["/bin/sh"]);
    rt.block_on(async {
        wait_image(ctrd.channel().await, PAUSE).await;
        wait_image(ctrd.channel().await, IMAGE).await;
    });

    let live = LiveProbe::start(ProbeConfig {
        runtime: cri_only(&ctrd.socket),
        ..ProbeConfig::default()
    });

    let pid = std::process::id();
    let uid = format!("fl-cri-uid-{pid}");
    let logs = Scratch(std::env::temp_dir().join(format!("fl-cri-logs-{pid}")));
    std::fs::create_dir_all(&logs.0).expect("log dir");
    let config = pod_config(&uid, &logs);
    let marker = "/tmp/fl-cri-marker";
    let (pod, plain, privileged, plain_started) = rt.block_on(async {
        let mut c = RuntimeServiceClient::new(ctrd.channel().await);
        let id = c
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .unwrap_or_else(|s| panic!("CRI RunPodSandbox: {s}; containerd:\n{}", ctrd.log()))
            .into_inner()
            .pod_sandbox_id;
        let pod = Pod {
            id,
            config,
            ctrd: &ctrd,
        };
        let plain = run_container(&mut c, &pod, "app", false, marker).await;
        let privileged = run_container(&mut c, &pod, "admin", true, marker).await;
        let started = start_ns(&mut c, &plain).await;
        (pod, plain, privileged, started)
    });

    let short = &plain[..12];
    let ev = live.wait_for(
        "open of the marker in the CRI container",
        15,
        in_container(short, marker),
    );
    let c = &ev.container;
    assert_eq!(c.id, short);
    assert_eq!(c.name, "app");
    assert_eq!(c.runtime, "containerd");
    assert_eq!(c.image_repository, "docker.io/library/fl-cri-busybox");
    assert_eq!(c.image_tag, "test");
    assert_eq!(c.image_digest, digest);
    assert_eq!(c.privileged, Some(false));
    assert_eq!(c.start_ts, plain_started);
    assert_eq!(c.k8s_ns, "fl-test");
    assert_eq!(c.k8s_pod, format!("fl-cri-pod-{pid}"));
    assert_eq!(c.k8s_pod_uid, uid);
    let labels: BTreeMap<String, String> = [("app", "fl-cri"), ("tier", "test")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(c.k8s_pod_labels, labels);
    assert_eq!(ev.process.comm, "touch");
    // every event of the container's own processes carries the same start,
    // whichever came first (runc's set-up stages, before the init exists, may
    // carry none: 0, never another time)
    let starts: std::collections::BTreeSet<u64> = live
        .matching(|e| {
            e.container.id == short
                && !e.container.image_repository.is_empty()
                && !e.process.comm.starts_with("runc")
        })
        .iter()
        .map(|e| e.container.start_ts)
        .collect();
    assert_eq!(
        starts,
        [plain_started].into(),
        "start_ts of the container's events"
    );

    let pev = live.wait_for(
        "open of the marker in the privileged CRI container",
        15,
        in_container(&privileged[..12], marker),
    );
    assert_eq!(pev.container.name, "admin");
    assert_eq!(pev.container.privileged, Some(true));
    assert_eq!(pev.container.k8s_pod, c.k8s_pod);

    let stats = live.probe.runtime_stats().expect("resolver runs");
    assert_eq!(stats.unreachable, 0, "{stats:?}");
    assert!(stats.resolved >= 2, "{stats:?}");

    // the same container asked as CRI-O's: CRI sockets only, same answer
    let resolver = Resolver::start(cri_only(&ctrd.socket)).expect("resolver");
    let as_crio = Arc::new(CgroupContainer {
        full_id: plain.clone(),
        namespace: None,
        runtime: RuntimeKind::Crio,
    });
    assert!(matches!(resolver.lookup(&as_crio), Lookup::Pending));
    let deadline = Instant::now() + Duration::from_secs(5);
    let meta = loop {
        match resolver.peek(&as_crio) {
            Lookup::Ready(m) => break m,
            Lookup::Pending if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            other => panic!("CRI lookup of {plain}: {other:?} ({:?})", resolver.stats()),
        }
    };
    assert_eq!(meta.source, Source::Cri);
    assert_eq!(meta.id, plain);
    assert_eq!(meta.name, "app");
    assert_eq!(meta.image.digest, digest);
    assert_eq!(meta.k8s_pod_uid, uid);

    // a container the runtime does not know is "not found", not an error
    let unknown = Arc::new(CgroupContainer {
        full_id: "f".repeat(64),
        namespace: None,
        runtime: RuntimeKind::Crio,
    });
    resolver.lookup(&unknown);
    let deadline = Instant::now() + Duration::from_secs(5);
    while matches!(resolver.peek(&unknown), Lookup::Pending) {
        assert!(Instant::now() < deadline, "lookup never finished");
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = resolver.stats();
    assert_eq!((s.resolved, s.not_found, s.unreachable), (1, 1, 0), "{s:?}");
    drop(pod);
}
