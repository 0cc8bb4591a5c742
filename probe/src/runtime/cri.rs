//! The Kubernetes Container Runtime Interface (CRI `runtime.v1`, the `k8s-cri`
//! crate: tonic + prost), spoken by CRI-O and by containerd's CRI plugin.
//!
//! One lookup is two or three calls on the runtime's socket:
//! 1. `ContainerStatus` (verbose) gives the container name (its name in the pod),
//!    the image as a tag reference and as a digest reference (`image_ref`),
//!    mounts, the labels kubelet set (`io.kubernetes.pod.*`), and a
//!    runtime-specific `info` JSON with the sandbox id, the privileged flag and
//!    the pid of the container's init (whose start is the container's: see
//!    [`super::ContainerMeta::start_ts`]; not `started_at`, which the runtime
//!    records after the start returns, nor `created_at`);
//! 2. `ListContainers` filtered by id, only when `info` has no sandbox id;
//! 3. `PodSandboxStatus` gives the pod's name, namespace, uid and labels.
//!
//! The `info` JSON differs by runtime: CRI-O puts `privileged` and `sandboxID`
//! at the top; containerd has `sandboxID`, the CRI `config`
//! (`linux.security_context.privileged`) and the OCI `runtimeSpec`. Each is read
//! when present; a runtime that sends neither leaves `privileged` unknown.

use super::containerd::{spec_privileged, OciSpec};
use super::reference::{is_image_id, Reference};
use super::{ContainerMeta, LookupError, Source};
use falco_learn_event::Mount;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerFilter, ContainerStatusRequest, ListContainersRequest, PodSandboxStatusRequest,
    VersionRequest,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use tonic::transport::Channel;
use tonic::Code;

/// The runtime-specific part of a verbose `ContainerStatus` (`info["info"]`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct VerboseInfo {
    #[serde(rename = "sandboxID")]
    pub sandbox_id: String,
    /// The container's init (containerd and CRI-O), 0 before its task exists.
    pub pid: u32,
    /// CRI-O.
    pub privileged: Option<bool>,
    /// containerd: the CRI `ContainerConfig` the container was created with.
    pub config: Option<CriConfig>,
    /// containerd and CRI-O: the OCI runtime spec.
    #[serde(rename = "runtimeSpec")]
    pub runtime_spec: Option<OciSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CriConfig {
    pub linux: Option<CriLinux>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CriLinux {
    pub security_context: Option<CriSecurityContext>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CriSecurityContext {
    pub privileged: bool,
}

impl VerboseInfo {
    pub(crate) fn parse(info: &std::collections::HashMap<String, String>) -> VerboseInfo {
        // a runtime that answers without verbose info, or with a shape we do
        // not know, just leaves these fields unknown
        info.get("info")
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default()
    }

    fn privileged(&self) -> Option<bool> {
        if let Some(p) = self.privileged {
            return Some(p);
        }
        if let Some(sc) = self
            .config
            .as_ref()
            .and_then(|c| c.linux.as_ref())
            .and_then(|l| l.security_context.as_ref())
        {
            return Some(sc.privileged);
        }
        self.runtime_spec.as_ref().map(spec_privileged)
    }
}

/// A pod as `PodSandboxStatus` describes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Pod {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
}

/// Build the metadata from a container's status, its verbose info and its pod.
pub(crate) fn meta_from_status(
    s: &k8s_cri::v1::ContainerStatus,
    info: &VerboseInfo,
    pod: Option<&Pod>,
    runtime: &'static str,
) -> ContainerMeta {
    let label = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
    let spec = s.image.as_ref();
    // the tag reference the runtime reports, else the one the user gave
    // (kubelet may create containers by image id), else the digest reference
    let mut image = spec
        .and_then(|i| Reference::parse(&i.image))
        .or_else(|| spec.and_then(|i| Reference::parse(&i.user_specified_image)))
        .or_else(|| Reference::parse(&s.image_ref))
        .unwrap_or_default();
    if image.digest.is_empty() {
        if let Some(d) = Reference::parse(&s.image_ref).filter(|d| !d.digest.is_empty()) {
            image.digest = d.digest;
        }
    }
    let image_id = [
        s.image_id.as_str(),
        s.image_ref.as_str(),
        spec.map(|i| i.image.as_str()).unwrap_or(""),
    ]
    .into_iter()
    .find(|i| is_image_id(i))
    .unwrap_or("")
    .to_string();
    let name = s
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| label("io.kubernetes.container.name"));
    let (k8s_ns, k8s_pod, k8s_pod_uid, k8s_pod_labels) = match pod {
        Some(p) => (
            p.namespace.clone(),
            p.name.clone(),
            p.uid.clone(),
            p.labels.clone(),
        ),
        None => (
            label("io.kubernetes.pod.namespace"),
            label("io.kubernetes.pod.name"),
            label("io.kubernetes.pod.uid"),
            BTreeMap::new(),
        ),
    };
    ContainerMeta {
        id: s.id.clone(),
        name: if name.is_empty() { s.id.clone() } else { name },
        image,
        image_id,
        privileged: info.privileged(),
        init_pid: info.pid,
        start_ts: 0,
        runtime,
        k8s_ns,
        k8s_pod,
        k8s_pod_uid,
        k8s_pod_labels,
        mounts: s.mounts.iter().map(mount).collect(),
        source: Source::Cri,
    }
}

fn mount(m: &k8s_cri::v1::Mount) -> Mount {
    use k8s_cri::v1::MountPropagation;
    let propagation = match MountPropagation::try_from(m.propagation) {
        Ok(MountPropagation::PropagationHostToContainer) => "rslave",
        Ok(MountPropagation::PropagationBidirectional) => "rshared",
        _ => "rprivate",
    };
    Mount {
        source: m.host_path.clone(),
        dest: m.container_path.clone(),
        mode: if m.readonly { "ro".into() } else { "rw".into() },
        rw: !m.readonly,
        propagation: propagation.into(),
    }
}

fn status_err(socket: &Path, s: tonic::Status) -> LookupError {
    match s.code() {
        Code::NotFound => LookupError::NotFound,
        Code::Unavailable => LookupError::Unreachable {
            socket: socket.display().to_string(),
            err: s.to_string(),
        },
        // a socket that is not a CRI server (an old runtime without runtime.v1)
        Code::Unimplemented => LookupError::Protocol(format!(
            "{} does not serve CRI runtime.v1: {}",
            socket.display(),
            s.message()
        )),
        _ => LookupError::Protocol(format!("CRI at {}: {s}", socket.display())),
    }
}

/// Whether a CRI error means "no such container" (CRI-O and containerd word it
/// differently and do not always use the NotFound code).
fn not_found(e: &LookupError) -> bool {
    match e {
        LookupError::NotFound => true,
        LookupError::Protocol(m) => {
            let m = m.to_ascii_lowercase();
            m.contains("not found") || m.contains("does not exist")
        }
        _ => false,
    }
}

/// Connect to a CRI socket (the channel multiplexes every later call) and ask
/// the runtime's name (CRI `Version`): `containerd`, `cri-o`, else `cri`.
pub(crate) async fn connect(socket: &Path) -> Result<(Channel, &'static str), LookupError> {
    // the same unix-socket gRPC channel as containerd's API
    let channel = super::containerd::connect(socket).await?;
    let version = RuntimeServiceClient::new(channel.clone())
        .version(VersionRequest {
            version: String::new(),
        })
        .await
        .map_err(|s| status_err(socket, s))?
        .into_inner();
    Ok((channel, runtime_name(&version.runtime_name)))
}

/// Our name for a CRI runtime's `runtime_name`.
pub(crate) fn runtime_name(n: &str) -> &'static str {
    match n {
        "containerd" => "containerd",
        "cri-o" | "crio" => "cri-o",
        _ => "cri",
    }
}

/// The pod of sandbox `id` (`None` when the runtime no longer knows it).
async fn pod(
    client: &mut RuntimeServiceClient<Channel>,
    socket: &Path,
    id: &str,
) -> Result<Option<Pod>, LookupError> {
    let req = PodSandboxStatusRequest {
        pod_sandbox_id: id.into(),
        verbose: false,
    };
    let status = match client.pod_sandbox_status(req).await {
        Ok(r) => r.into_inner().status,
        Err(s) => {
            let e = status_err(socket, s);
            return if not_found(&e) { Ok(None) } else { Err(e) };
        }
    };
    Ok(status.map(|s| {
        let md = s.metadata.unwrap_or_default();
        Pod {
            name: md.name,
            namespace: md.namespace,
            uid: md.uid,
            labels: s.labels.into_iter().collect(),
        }
    }))
}

/// Metadata of container `id` from the CRI runtime at `socket`.
pub(crate) async fn lookup(
    channel: Channel,
    socket: &Path,
    id: &str,
    runtime: &'static str,
) -> Result<ContainerMeta, LookupError> {
    let mut client = RuntimeServiceClient::new(channel);
    let req = ContainerStatusRequest {
        container_id: id.into(),
        verbose: true,
    };
    let resp = client
        .container_status(req)
        .await
        .map_err(|s| status_err(socket, s))
        .map_err(|e| {
            if not_found(&e) {
                LookupError::NotFound
            } else {
                e
            }
        })?
        .into_inner();
    let status = resp.status.ok_or_else(|| {
        LookupError::Protocol(format!("CRI ContainerStatus of {id} without status"))
    })?;
    let info = VerboseInfo::parse(&resp.info);
    let mut sandbox = info.sandbox_id.clone();
    if sandbox.is_empty() {
        let req = ListContainersRequest {
            filter: Some(ContainerFilter {
                id: id.into(),
                ..Default::default()
            }),
        };
        let list = client
            .list_containers(req)
            .await
            .map_err(|s| status_err(socket, s))?
            .into_inner();
        if let Some(c) = list.containers.into_iter().find(|c| c.id == status.id) {
            sandbox = c.pod_sandbox_id;
        }
    }
    let pod = if sandbox.is_empty() {
        None
    } else {
        pod(&mut client, socket, &sandbox).await?
    };
    Ok(meta_from_status(&status, &info, pod.as_ref(), runtime))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::{ContainerMetadata, ContainerStatus, ImageSpec, MountPropagation};
    use std::collections::HashMap;

    fn status() -> ContainerStatus {
        ContainerStatus {
            id: "c".repeat(64),
            metadata: Some(ContainerMetadata {
                name: "web".into(),
                attempt: 0,
            }),
            created_at: 10,
            started_at: 20,
            image: Some(ImageSpec {
                image: "docker.io/library/nginx:1.27".into(),
                ..Default::default()
            }),
            image_ref: format!("docker.io/library/nginx@sha256:{}", "a".repeat(64)),
            labels: [
                ("io.kubernetes.pod.name", "web-5d8f"),
                ("io.kubernetes.pod.namespace", "shop"),
                ("io.kubernetes.pod.uid", "u-1"),
                ("io.kubernetes.container.name", "web"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            mounts: vec![k8s_cri::v1::Mount {
                container_path: "/data".into(),
                host_path: "/srv/data".into(),
                readonly: true,
                propagation: MountPropagation::PropagationHostToContainer as i32,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn info(json: &str) -> VerboseInfo {
        VerboseInfo::parse(&HashMap::from([("info".to_string(), json.to_string())]))
    }

    #[test]
    fn cri_o_status_with_pod() {
        let i = info(&format!(
            r#"{{"sandboxID": "{}", "pid": 42, "privileged": true}}"#,
            "b".repeat(64)
        ));
        assert_eq!(i.sandbox_id, "b".repeat(64));
        let pod = Pod {
            name: "web-5d8f".into(),
            namespace: "shop".into(),
            uid: "u-1".into(),
            labels: [("app".to_string(), "web".to_string())].into(),
        };
        let m = meta_from_status(&status(), &i, Some(&pod), "cri-o");
        assert_eq!(m.name, "web");
        assert_eq!(m.image.repository, "docker.io/library/nginx");
        assert_eq!(m.image.tag, "1.27");
        assert_eq!(m.image.digest, format!("sha256:{}", "a".repeat(64)));
        assert_eq!(m.privileged, Some(true));
        // neither created_at nor started_at: the init's start, read by the resolver
        assert_eq!((m.init_pid, m.start_ts), (42, 0));
        assert_eq!(m.runtime, "cri-o");
        assert_eq!(m.source, Source::Cri);
        assert_eq!(
            (
                m.k8s_ns.as_str(),
                m.k8s_pod.as_str(),
                m.k8s_pod_uid.as_str()
            ),
            ("shop", "web-5d8f", "u-1")
        );
        assert_eq!(m.k8s_pod_labels, pod.labels);
        assert_eq!(
            m.mounts,
            vec![Mount {
                source: "/srv/data".into(),
                dest: "/data".into(),
                mode: "ro".into(),
                rw: false,
                propagation: "rslave".into(),
            }]
        );
    }

    #[test]
    fn containerd_info_and_image_id_spec() {
        // kubelet created the container by image id; the user's reference is kept
        let mut s = status();
        s.image = Some(ImageSpec {
            image: format!("sha256:{}", "d".repeat(64)),
            user_specified_image: "nginx:1.27".into(),
            ..Default::default()
        });
        s.image_ref = format!("sha256:{}", "d".repeat(64));
        s.started_at = 0;
        let i = info(
            r#"{"sandboxID": "sb", "config": {"linux": {"security_context": {"privileged": false}}}}"#,
        );
        let m = meta_from_status(&s, &i, None, "containerd");
        assert_eq!(m.image.repository, "docker.io/library/nginx");
        assert_eq!(m.image.tag, "1.27");
        // no digest reference: the digest stays unknown, the id is kept apart
        assert_eq!(m.image.digest, "");
        assert_eq!(m.image_id, format!("sha256:{}", "d".repeat(64)));
        assert_eq!(m.privileged, Some(false));
        // no task yet: no init, no start
        assert_eq!((m.init_pid, m.start_ts), (0, 0));
        // without a pod answer, kubelet's labels on the container
        assert_eq!(
            (m.k8s_ns.as_str(), m.k8s_pod.as_str()),
            ("shop", "web-5d8f")
        );
    }

    #[test]
    fn runtime_spec_decides_privileged_and_garbage_info_is_unknown() {
        let i = info(
            r#"{"runtimeSpec": {"process": {"capabilities": {"bounding": ["CAP_SYS_ADMIN"]}},
                                "linux": {}}}"#,
        );
        assert_eq!(i.privileged(), Some(true));
        assert_eq!(info("not json").privileged(), None);
        assert_eq!(info("[1,2]").sandbox_id, "");
        assert_eq!(VerboseInfo::parse(&HashMap::new()).privileged(), None);
    }

    #[test]
    fn errors_are_classified() {
        let sock = Path::new("/run/crio/crio.sock");
        assert_eq!(
            status_err(sock, tonic::Status::not_found("x")),
            LookupError::NotFound
        );
        assert!(matches!(
            status_err(sock, tonic::Status::unavailable("down")),
            LookupError::Unreachable { .. }
        ));
        let e = status_err(sock, tonic::Status::unknown("container \"abc\" not found"));
        assert!(not_found(&e), "{e}");
        let e = status_err(sock, tonic::Status::unimplemented("runtime.v1"));
        assert!(
            e.to_string().contains("does not serve CRI runtime.v1"),
            "{e}"
        );
        assert!(!not_found(&e));
    }
}
