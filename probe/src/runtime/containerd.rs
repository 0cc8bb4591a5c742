//! containerd's gRPC API (the `containerd-client` crate: tonic + prost, protos
//! compiled with `protoc`).
//!
//! `Containers/Get` in the container's namespace (the `containerd-namespace`
//! request header) gives the image reference, labels and the OCI spec (JSON in
//! a protobuf `Any`); `Tasks/Get` the pid of the container's init (its start
//! time is the container's, see [`super::ContainerMeta::start_ts`]); `Images/Get` of that reference gives the
//! digest (the image's target descriptor: manifest or index digest, what
//! `ctr images ls` shows). Containers made by the CRI plugin (`k8s.io`) carry the
//! pod in their spec annotations; the pod's labels are the labels of its
//! sandbox container, minus the CRI plugin's own.
//!
//! A container can be gone before its lookup runs (`ctr run --rm` of a quick
//! command). The resolver also follows containerd's `/containers/create` events
//! ([`watch_creates`]), which carry the id and image of every new container, so
//! such a container still gets its image ([`meta_from_create`]).
//!
//! Privileged: containerd has no flag for it. `ctr run --privileged` and CRI's
//! privileged mode both grant `CAP_SYS_ADMIN` in the bounding set and clear
//! `linux.maskedPaths`; no unprivileged default spec does both, so that is the test.

use super::reference::Reference;
use super::{ContainerMeta, LookupError, Source};
use containerd_client::events::ContainerCreate;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::events_client::EventsClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    GetContainerRequest, GetImageRequest, GetRequest, SubscribeRequest,
};
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request};
use falco_learn_event::Mount;
use prost::Message;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct OciSpec {
    pub process: Option<OciProcess>,
    pub linux: Option<OciLinux>,
    pub annotations: BTreeMap<String, String>,
    pub mounts: Vec<OciMount>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct OciProcess {
    pub capabilities: Option<OciCaps>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct OciCaps {
    pub bounding: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct OciLinux {
    pub masked_paths: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct OciMount {
    pub destination: String,
    #[serde(rename = "type")]
    pub typ: String,
    pub source: String,
    pub options: Vec<String>,
}

/// What `Containers/Get` returned, in plain types (so the mapping is testable).
#[derive(Debug, Default)]
pub(crate) struct Raw {
    pub id: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// The pid of the task's init (`Tasks/Get`), 0 when there is no task yet.
    pub pid: u32,
    pub spec: Option<OciSpec>,
}

/// Whether a spec is privileged (see the module notes).
pub(crate) fn spec_privileged(spec: &OciSpec) -> bool {
    let sys_admin = spec
        .process
        .as_ref()
        .and_then(|p| p.capabilities.as_ref())
        .is_some_and(|c| c.bounding.iter().any(|c| c == "CAP_SYS_ADMIN"));
    let masked = spec
        .linux
        .as_ref()
        .and_then(|l| l.masked_paths.as_ref())
        .is_some_and(|m| !m.is_empty());
    sys_admin && !masked
}

fn bind_mounts(spec: &OciSpec) -> Vec<Mount> {
    const PROPAGATIONS: &[&str] = &[
        "rprivate", "private", "rshared", "shared", "rslave", "slave",
    ];
    spec.mounts
        .iter()
        .filter(|m| m.typ == "bind" || m.options.iter().any(|o| o == "bind" || o == "rbind"))
        .map(|m| {
            let ro = m.options.iter().any(|o| o == "ro");
            Mount {
                source: m.source.clone(),
                dest: m.destination.clone(),
                mode: if ro { "ro".into() } else { "rw".into() },
                rw: !ro,
                propagation: m
                    .options
                    .iter()
                    .find(|o| PROPAGATIONS.contains(&o.as_str()))
                    .cloned()
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// Labels of a pod from its sandbox container's labels (the CRI plugin's removed).
pub(crate) fn pod_labels(sandbox: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    sandbox
        .iter()
        .filter(|(k, _)| !k.starts_with("io.cri-containerd."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Build the metadata from the container, its image digest and its pod's labels.
pub(crate) fn meta_from_raw(
    c: &Raw,
    digest: Option<String>,
    pod_labels: BTreeMap<String, String>,
) -> ContainerMeta {
    let ann = c.spec.as_ref().map(|s| &s.annotations);
    let get = |k: &str| {
        ann.and_then(|a| a.get(k))
            .or_else(|| c.labels.get(k))
            .cloned()
            .unwrap_or_default()
    };
    let first = |keys: &[&str]| {
        keys.iter()
            .map(|k| get(k))
            .find(|v| !v.is_empty())
            .unwrap_or_default()
    };
    let name = first(&[
        "io.kubernetes.cri.container-name",
        "io.kubernetes.container.name",
        "nerdctl/name",
    ]);
    // CRI keeps the name the user asked for in an annotation; the container's
    // image field may be an image id there
    let reference = first(&["io.kubernetes.cri.image-name"]);
    let mut image = Reference::parse(&reference)
        .or_else(|| Reference::parse(&c.image))
        .unwrap_or_default();
    if image.digest.is_empty() {
        image.digest = digest.unwrap_or_default();
    }
    ContainerMeta {
        id: c.id.clone(),
        name: if name.is_empty() { c.id.clone() } else { name },
        image,
        image_id: String::new(),
        privileged: c.spec.as_ref().map(spec_privileged),
        init_pid: c.pid,
        start_ts: 0,
        runtime: "containerd",
        k8s_ns: first(&[
            "io.kubernetes.cri.sandbox-namespace",
            "io.kubernetes.pod.namespace",
        ]),
        k8s_pod: first(&["io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"]),
        k8s_pod_uid: first(&["io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"]),
        k8s_pod_labels: pod_labels,
        mounts: c.spec.as_ref().map(bind_mounts).unwrap_or_default(),
        source: Source::Containerd,
    }
}

fn status_err(socket: &Path, s: containerd_client::tonic::Status) -> LookupError {
    match s.code() {
        Code::NotFound => LookupError::NotFound,
        Code::Unavailable => LookupError::Unreachable {
            socket: socket.display().to_string(),
            err: s.to_string(),
        },
        _ => LookupError::Protocol(format!("containerd: {s}")),
    }
}

fn with_ns<T>(msg: T, ns: &str) -> Result<Request<T>, LookupError> {
    let mut req = Request::new(msg);
    let v = ns
        .parse()
        .map_err(|_| LookupError::Protocol(format!("namespace {ns:?} is not a header value")))?;
    req.metadata_mut().insert("containerd-namespace", v);
    Ok(req)
}

/// Connect to containerd's socket (the channel multiplexes every later call).
pub(crate) async fn connect(socket: &Path) -> Result<Channel, LookupError> {
    containerd_client::connect(socket)
        .await
        .map_err(|e| LookupError::Unreachable {
            socket: socket.display().to_string(),
            err: format!("{e:?}"),
        })
}

async fn get_container(
    channel: &Channel,
    socket: &Path,
    ns: &str,
    id: &str,
) -> Result<containerd_client::services::v1::Container, LookupError> {
    ContainersClient::new(channel.clone())
        .get(with_ns(GetContainerRequest { id: id.into() }, ns)?)
        .await
        .map_err(|s| status_err(socket, s))?
        .into_inner()
        .container
        .ok_or_else(|| LookupError::Protocol("containerd: Get without container".into()))
}

/// The digest of image `name` in namespace `ns` (`None` when it was removed).
pub(crate) async fn image_digest(
    channel: &Channel,
    socket: &Path,
    ns: &str,
    name: &str,
) -> Result<Option<String>, LookupError> {
    let req = with_ns(GetImageRequest { name: name.into() }, ns)?;
    match ImagesClient::new(channel.clone()).get(req).await {
        Ok(r) => Ok(r
            .into_inner()
            .image
            .and_then(|i| i.target)
            .map(|t| t.digest)),
        Err(s) if s.code() == Code::NotFound => Ok(None),
        Err(s) => Err(status_err(socket, s)),
    }
}

/// One `/containers/create` event: namespace, id, image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Created {
    pub namespace: String,
    pub id: String,
    pub image: String,
}

/// Follow containerd's `/containers/create` events (every namespace) and hand
/// each to `on_create` until the stream ends or fails. `on_subscribed` runs when
/// the request is sent (containerd answers a subscription only with its first
/// event, so there is no earlier acknowledgement to wait for).
pub(crate) async fn watch_creates(
    channel: Channel,
    socket: &Path,
    on_subscribed: impl FnOnce(),
    mut on_create: impl FnMut(Created),
) -> Result<(), LookupError> {
    let req = SubscribeRequest {
        filters: vec![r#"topic=="/containers/create""#.into()],
    };
    let mut client = EventsClient::new(channel);
    let pending = client.subscribe(req);
    on_subscribed();
    let mut stream = pending
        .await
        .map_err(|s| status_err(socket, s))?
        .into_inner();
    while let Some(env) = stream.message().await.map_err(|s| status_err(socket, s))? {
        let Some(any) = env.event else { continue };
        let Ok(c) = ContainerCreate::decode(any.value.as_slice()) else {
            tracing::debug!(type_url = %any.type_url, "undecodable containerd create event");
            continue;
        };
        on_create(Created {
            namespace: env.namespace,
            id: c.id,
            image: c.image,
        });
    }
    Ok(())
}

/// Metadata of a container known only from its create event (it was deleted
/// before it could be looked up): name = id, image from the event. Its start
/// time is unknown (0): the event's time is its creation, not its start.
pub(crate) fn meta_from_create(c: &Created, digest: Option<String>) -> ContainerMeta {
    let mut image = Reference::parse(&c.image).unwrap_or_default();
    if image.digest.is_empty() {
        image.digest = digest.unwrap_or_default();
    }
    ContainerMeta {
        id: c.id.clone(),
        name: c.id.clone(),
        image,
        runtime: "containerd",
        source: Source::ContainerdEvent,
        ..ContainerMeta::default()
    }
}

/// The pid of container `id`'s task (its init), 0 when it has no task (not
/// started yet, or ended and deleted).
async fn task_pid(
    channel: &Channel,
    socket: &Path,
    ns: &str,
    id: &str,
) -> Result<u32, LookupError> {
    let req = with_ns(
        GetRequest {
            container_id: id.into(),
            exec_id: String::new(),
        },
        ns,
    )?;
    match TasksClient::new(channel.clone()).get(req).await {
        Ok(r) => Ok(r.into_inner().process.map_or(0, |p| p.pid)),
        Err(s) if s.code() == Code::NotFound => Ok(0),
        Err(s) => Err(status_err(socket, s)),
    }
}

/// Look `id` up in namespace `ns`.
pub(crate) async fn lookup(
    channel: Channel,
    socket: &Path,
    ns: &str,
    id: &str,
) -> Result<ContainerMeta, LookupError> {
    let c = get_container(&channel, socket, ns, id).await?;
    let spec = match &c.spec {
        Some(any) if !any.value.is_empty() => Some(
            serde_json::from_slice::<OciSpec>(&any.value)
                .map_err(|e| LookupError::Protocol(format!("OCI spec of {id}: {e}")))?,
        ),
        _ => None,
    };
    let raw = Raw {
        id: c.id.clone(),
        image: c.image.clone(),
        labels: c.labels.into_iter().collect(),
        pid: task_pid(&channel, socket, ns, id).await?,
        spec,
    };
    let digest = if raw.image.is_empty() {
        None
    } else {
        image_digest(&channel, socket, ns, &raw.image).await?
    };
    let sandbox = raw
        .spec
        .as_ref()
        .and_then(|s| s.annotations.get("io.kubernetes.cri.sandbox-id"))
        .filter(|sid| **sid != raw.id)
        .cloned();
    let labels = match sandbox {
        Some(sid) => match get_container(&channel, socket, ns, &sid).await {
            Ok(sb) => pod_labels(&sb.labels.into_iter().collect()),
            Err(LookupError::NotFound) => BTreeMap::new(),
            Err(e) => return Err(e),
        },
        None => BTreeMap::new(),
    };
    Ok(meta_from_raw(&raw, digest, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> OciSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn ctr_container_with_image() {
        let raw = Raw {
            id: "web".into(),
            image: "docker.io/library/fl-busybox:test".into(),
            labels: BTreeMap::new(),
            pid: 4242,
            spec: Some(spec(
                r#"{"process": {"capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"]}},
                    "linux": {"maskedPaths": ["/proc/kcore"]},
                    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                               {"destination": "/data", "type": "bind", "source": "/srv",
                                "options": ["rbind", "ro", "rprivate"]}]}"#,
            )),
        };
        let m = meta_from_raw(&raw, Some("sha256:ab".into()), BTreeMap::new());
        assert_eq!(m.name, "web");
        assert_eq!(m.image.repository, "docker.io/library/fl-busybox");
        assert_eq!(m.image.tag, "test");
        assert_eq!(m.image.digest, "sha256:ab");
        assert_eq!(m.privileged, Some(false));
        // the start is the init's, read by the resolver
        assert_eq!((m.init_pid, m.start_ts), (4242, 0));
        assert_eq!(
            m.mounts,
            vec![Mount {
                source: "/srv".into(),
                dest: "/data".into(),
                mode: "ro".into(),
                rw: false,
                propagation: "rprivate".into(),
            }]
        );
    }

    #[test]
    fn privileged_needs_sys_admin_and_no_masked_paths() {
        let p = |j: &str| spec_privileged(&spec(j));
        assert!(p(
            r#"{"process": {"capabilities": {"bounding": ["CAP_SYS_ADMIN"]}}, "linux": {}}"#
        ));
        assert!(p(
            r#"{"process": {"capabilities": {"bounding": ["CAP_SYS_ADMIN"]}}, "linux": {"maskedPaths": []}}"#
        ));
        assert!(!p(
            r#"{"process": {"capabilities": {"bounding": ["CAP_SYS_ADMIN"]}}, "linux": {"maskedPaths": ["/proc/kcore"]}}"#
        ));
        assert!(!p(
            r#"{"process": {"capabilities": {"bounding": ["CAP_KILL"]}}}"#
        ));
        assert!(!p("{}"));
    }

    #[test]
    fn cri_container_in_a_pod() {
        let mut ann = BTreeMap::new();
        for (k, v) in [
            ("io.kubernetes.cri.container-name", "nginx"),
            ("io.kubernetes.cri.image-name", "nginx:1.27"),
            ("io.kubernetes.cri.sandbox-name", "web-5d8f"),
            ("io.kubernetes.cri.sandbox-namespace", "shop"),
            ("io.kubernetes.cri.sandbox-uid", "u-1"),
            ("io.kubernetes.cri.sandbox-id", "sb"),
        ] {
            ann.insert(k.to_string(), v.to_string());
        }
        let raw = Raw {
            id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
            image: "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210".into(),
            labels: BTreeMap::new(),
            pid: 7,
            spec: Some(OciSpec {
                annotations: ann,
                ..OciSpec::default()
            }),
        };
        let sandbox: BTreeMap<String, String> = [
            ("app", "web"),
            ("io.cri-containerd.kind", "sandbox"),
            ("io.kubernetes.pod.name", "web-5d8f"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let m = meta_from_raw(&raw, Some("sha256:cd".into()), pod_labels(&sandbox));
        assert_eq!(m.name, "nginx");
        assert_eq!(m.image.repository, "docker.io/library/nginx");
        assert_eq!(m.image.tag, "1.27");
        assert_eq!(m.image.digest, "sha256:cd");
        assert_eq!(m.k8s_ns, "shop");
        assert_eq!(m.k8s_pod, "web-5d8f");
        assert_eq!(m.k8s_pod_uid, "u-1");
        assert_eq!(
            m.k8s_pod_labels.keys().collect::<Vec<_>>(),
            ["app", "io.kubernetes.pod.name"]
        );
        let created = Created {
            namespace: "default".into(),
            id: "quick".into(),
            image: "docker.io/library/fl-busybox:test".into(),
        };
        let m = meta_from_create(&created, Some("sha256:ef".into()));
        // the creation time is not the start: unknown
        assert_eq!((m.name.as_str(), m.init_pid, m.start_ts), ("quick", 0, 0));
        assert_eq!(m.image.repository, "docker.io/library/fl-busybox");
        assert_eq!(m.image.digest, "sha256:ef");
        assert_eq!(m.source, Source::ContainerdEvent);
        assert_eq!(m.privileged, None);
        // no spec at all: privileged unknown
        let bare = Raw {
            id: "x".into(),
            ..Raw::default()
        };
        let m = meta_from_raw(&bare, None, BTreeMap::new());
        assert_eq!(m.privileged, None);
        assert_eq!(m.image, Reference::default());
        assert_eq!(m.name, "x");
    }
}
