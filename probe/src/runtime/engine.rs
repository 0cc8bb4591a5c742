//! Docker and Podman Engine API over a unix socket (hyper HTTP/1 client).
//!
//! `GET /v1.40/containers/<id>/json` gives the name, the image reference as the
//! user gave it (`.Config.Image`), the image id (`.Image`), the pid of the
//! container's init (`.State.Pid`, whose start is the container's: see
//! [`super::ContainerMeta::start_ts`]; not `.State.StartedAt` nor `.Created`),
//! `HostConfig.Privileged`, labels (dockershim/cri-dockerd's `io.kubernetes.*`)
//! and mounts. The digest comes from `GET /v1.40/images/<image id>/json`
//! (`RepoDigests`, the one of the container's repository). Podman serves the
//! same Docker-compatible paths.

use super::reference::{is_image_id, Reference};
use super::{ContainerMeta, LookupError, Source};
use bytes::Bytes;
use falco_learn_event::Mount;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Largest response body read (an inspect document is a few KiB).
const MAX_BODY: usize = 4 << 20;

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct Inspect {
    pub id: String,
    pub name: String,
    pub state: State,
    pub image: String,
    pub config: Config,
    pub host_config: HostConfig,
    pub mounts: Option<Vec<EngineMount>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct State {
    /// The container's init; 0 when it does not run.
    pub pid: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct Config {
    pub image: String,
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct HostConfig {
    pub privileged: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct EngineMount {
    pub source: String,
    pub destination: String,
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    pub propagation: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct ImageInspect {
    pub id: String,
    pub repo_tags: Option<Vec<String>>,
    pub repo_digests: Option<Vec<String>>,
}

/// Build the metadata from an inspect document (and the image's, when fetched).
pub(crate) fn meta_from_inspect(
    c: &Inspect,
    image: Option<&ImageInspect>,
    runtime: &'static str,
    source: Source,
) -> ContainerMeta {
    let labels = c.config.labels.clone().unwrap_or_default();
    // the reference as given; when the user ran an image id, the image's first tag
    let mut reference = Reference::parse(&c.config.image);
    if reference.is_none() {
        reference = image
            .and_then(|i| i.repo_tags.as_ref())
            .and_then(|t| t.iter().find_map(|t| Reference::parse(t)));
    }
    let mut image_ref = reference.unwrap_or_default();
    if image_ref.digest.is_empty() {
        if let Some(digests) = image.and_then(|i| i.repo_digests.as_ref()) {
            let parsed: Vec<Reference> =
                digests.iter().filter_map(|d| Reference::parse(d)).collect();
            let same_repo = parsed
                .iter()
                .find(|d| d.repository == image_ref.repository)
                .or_else(|| parsed.first());
            if let Some(d) = same_repo {
                image_ref.digest = d.digest.clone();
            }
        }
    }
    let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
    let name = match labels.get("io.kubernetes.container.name") {
        Some(n) => n.clone(),
        None => c.name.trim_start_matches('/').to_string(),
    };
    ContainerMeta {
        id: c.id.clone(),
        name,
        image: image_ref,
        image_id: if is_image_id(&c.image) {
            c.image.clone()
        } else {
            String::new()
        },
        privileged: Some(c.host_config.privileged),
        init_pid: c.state.pid,
        start_ts: 0,
        runtime,
        k8s_ns: label("io.kubernetes.pod.namespace"),
        k8s_pod: label("io.kubernetes.pod.name"),
        k8s_pod_uid: label("io.kubernetes.pod.uid"),
        k8s_pod_labels: BTreeMap::new(),
        mounts: c
            .mounts
            .iter()
            .flatten()
            .map(|m| Mount {
                source: m.source.clone(),
                dest: m.destination.clone(),
                mode: m.mode.clone(),
                rw: m.rw,
                propagation: m.propagation.clone(),
            })
            .collect(),
        source,
    }
}

/// One GET on the Engine API socket; `Ok(None)` for 404.
async fn get(socket: &Path, path: &str) -> Result<Option<Bytes>, LookupError> {
    let unreachable = |e: String| LookupError::Unreachable {
        socket: socket.display().to_string(),
        err: e,
    };
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let conn = tokio::spawn(conn);
    let req = Request::get(path)
        .header(hyper::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .map_err(|e| LookupError::Protocol(format!("request {path}: {e}")))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| LookupError::Protocol(format!("GET {path}: {e}")))?
        .to_bytes();
    drop(sender);
    conn.abort();
    match status {
        StatusCode::OK => Ok(Some(body)),
        StatusCode::NOT_FOUND => Ok(None),
        s => Err(LookupError::Protocol(format!(
            "GET {path}: HTTP {s}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))),
    }
}

/// Look a container up over the Engine API at `socket`.
pub(crate) async fn lookup(
    socket: &Path,
    id: &str,
    runtime: &'static str,
) -> Result<ContainerMeta, LookupError> {
    let body = get(socket, &format!("/v1.40/containers/{id}/json"))
        .await?
        .ok_or(LookupError::NotFound)?;
    let c: Inspect = serde_json::from_slice(&body)
        .map_err(|e| LookupError::Protocol(format!("container inspect JSON: {e}")))?;
    let image = if is_image_id(&c.image) {
        match get(socket, &format!("/v1.40/images/{}/json", c.image)).await? {
            Some(b) => Some(
                serde_json::from_slice::<ImageInspect>(&b)
                    .map_err(|e| LookupError::Protocol(format!("image inspect JSON: {e}")))?,
            ),
            None => None,
        }
    } else {
        None
    };
    Ok(meta_from_inspect(
        &c,
        image.as_ref(),
        runtime,
        Source::EngineApi,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real `podman` inspect document (podman 4.3, `podman run -d --network host`).
    const PODMAN: &str = include_str!("testdata/podman-inspect.json");

    #[test]
    fn podman_inspect_document() {
        let c: Inspect = serde_json::from_str(PODMAN).unwrap();
        let img = ImageInspect {
            id: c.image.clone(),
            repo_tags: Some(vec!["localhost/fl-busybox:exp".into()]),
            repo_digests: Some(vec![
                "localhost/fl-busybox@sha256:37aff5d8f33659a3b3bbd58ca64e52bbea88e4ce6177db62be03ebb2ddcdf842".into(),
            ]),
        };
        let m = meta_from_inspect(&c, Some(&img), "podman", Source::EngineApi);
        assert_eq!(
            m.id,
            "88a148dd4bbac87a7dfbf153792143c04b26093e51a9e14dbcd9590ec31b13a7"
        );
        assert_eq!(m.name, "flexp");
        assert_eq!(m.image.repository, "localhost/fl-busybox");
        assert_eq!(m.image.tag, "exp");
        assert_eq!(
            m.image.digest,
            "sha256:37aff5d8f33659a3b3bbd58ca64e52bbea88e4ce6177db62be03ebb2ddcdf842"
        );
        assert_eq!(
            m.image_id,
            "sha256:cb6a2caa65afb52c4961e36026a1cefe9307ee9d23101aefd1459cbdeabadd04"
        );
        assert_eq!(m.privileged, Some(false));
        // "Pid": 21753; its start is read by the resolver
        assert_eq!((m.init_pid, m.start_ts), (21753, 0));
        assert!(m.mounts.is_empty());
        assert_eq!(m.k8s_pod, "");
    }

    #[test]
    fn docker_style_document_with_kubernetes_labels_and_mounts() {
        let doc = r#"{
            "Id": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "Name": "/k8s_web_nginx-7d_default_1111_0",
            "Created": "2024-01-02T03:04:05.5Z",
            "State": {"StartedAt": "0001-01-01T00:00:00Z"},
            "Image": "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
            "Config": {"Image": "nginx:1.27", "Labels": {
                "io.kubernetes.container.name": "web",
                "io.kubernetes.pod.name": "nginx-7d",
                "io.kubernetes.pod.namespace": "default",
                "io.kubernetes.pod.uid": "1111"}},
            "HostConfig": {"Privileged": true},
            "Mounts": [{"Type": "bind", "Source": "/var/log", "Destination": "/host/log",
                        "Mode": "ro", "RW": false, "Propagation": "rprivate"}],
            "Unknown": {"ignored": [1, 2]}
        }"#;
        let c: Inspect = serde_json::from_str(doc).unwrap();
        let img = ImageInspect {
            repo_digests: Some(vec![
                "quay.io/other/nginx@sha256:1111111111111111111111111111111111111111111111111111111111111111".into(),
                "nginx@sha256:2222222222222222222222222222222222222222222222222222222222222222".into(),
            ]),
            ..ImageInspect::default()
        };
        let m = meta_from_inspect(&c, Some(&img), "docker", Source::EngineApi);
        assert_eq!(m.name, "web");
        assert_eq!(m.image.repository, "docker.io/library/nginx");
        assert_eq!(m.image.tag, "1.27");
        // the digest of the container's own repository, not the first one
        assert_eq!(
            m.image.digest,
            "sha256:2222222222222222222222222222222222222222222222222222222222222222"
        );
        assert_eq!(m.privileged, Some(true));
        // not running: no init, no start (the creation time is not the start)
        assert_eq!((m.init_pid, m.start_ts), (0, 0));
        assert_eq!(
            (m.k8s_ns.as_str(), m.k8s_pod.as_str()),
            ("default", "nginx-7d")
        );
        assert_eq!(m.k8s_pod_uid, "1111");
        assert_eq!(
            m.mounts,
            vec![Mount {
                source: "/var/log".into(),
                dest: "/host/log".into(),
                mode: "ro".into(),
                rw: false,
                propagation: "rprivate".into(),
            }]
        );
    }

    #[test]
    fn image_id_as_reference_uses_the_first_tag() {
        let doc = r#"{"Id": "x", "Name": "/n",
            "Image": "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
            "Config": {"Image": "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"}}"#;
        let c: Inspect = serde_json::from_str(doc).unwrap();
        let img = ImageInspect {
            repo_tags: Some(vec!["<none>:<none>".into(), "redis:7".into()]),
            ..ImageInspect::default()
        };
        let m = meta_from_inspect(&c, Some(&img), "docker", Source::EngineApi);
        assert_eq!(m.image.repository, "docker.io/library/redis");
        assert_eq!(m.image.tag, "7");
        assert_eq!(m.start_ts, 0);
    }
}
