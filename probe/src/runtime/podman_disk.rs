//! Podman's on-disk state, for when no Podman API service runs (the usual case:
//! podman is daemonless).
//!
//! `<storage>/overlay-containers/containers.json` lists containers: `id`,
//! `names`, `image` (the image id) and `metadata`, a JSON *string* holding
//! `image-name` (the reference as given), `name` and `created-at` (seconds).
//! `<storage>/overlay-images/images.json` maps image ids to their `digest`.
//! The container's init pid is in its run directory, written by conmon:
//! `<run root>/overlay-containers/<id>/userdata/pidfile` (run root
//! `/run/containers/storage`); its start is the container's (see
//! [`super::ContainerMeta::start_ts`]), not `created`.
//! The privileged flag is not stored there: it stays unknown.

use super::reference::Reference;
use super::{ContainerMeta, LookupError, Source};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Largest state file read (containers.json grows with every container).
const MAX_FILE: u64 = 64 << 20;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StoredContainer {
    id: String,
    names: Vec<String>,
    image: String,
    metadata: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct Metadata {
    image_name: String,
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StoredImage {
    id: String,
    digest: String,
}

fn read_limited(path: &Path) -> Result<Option<Vec<u8>>, LookupError> {
    let io = |e: std::io::Error| LookupError::Io {
        path: path.display().to_string(),
        err: e.to_string(),
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if meta.len() > MAX_FILE {
        return Err(LookupError::Protocol(format!(
            "{} is {} bytes, over the {MAX_FILE}-byte limit",
            path.display(),
            meta.len()
        )));
    }
    std::fs::read(path).map(Some).map_err(io)
}

/// Find `id` in the text of containers.json (and its image digest in
/// images.json's); `pid` is its init's, from its pidfile (0: none).
pub(crate) fn meta_from_files(
    containers_json: &[u8],
    images_json: Option<&[u8]>,
    id: &str,
    pid: u32,
) -> Result<ContainerMeta, LookupError> {
    let list: Vec<StoredContainer> = serde_json::from_slice(containers_json)
        .map_err(|e| LookupError::Protocol(format!("containers.json: {e}")))?;
    let c = list
        .into_iter()
        .find(|c| c.id == id)
        .ok_or(LookupError::NotFound)?;
    let md: Metadata = if c.metadata.is_empty() {
        Metadata::default()
    } else {
        serde_json::from_str(&c.metadata)
            .map_err(|e| LookupError::Protocol(format!("containers.json metadata of {id}: {e}")))?
    };
    let mut image = Reference::parse(&md.image_name).unwrap_or_default();
    if image.digest.is_empty() {
        if let Some(images) = images_json {
            let imgs: Vec<StoredImage> = serde_json::from_slice(images)
                .map_err(|e| LookupError::Protocol(format!("images.json: {e}")))?;
            if let Some(i) = imgs.into_iter().find(|i| i.id == c.image) {
                image.digest = i.digest;
            }
        }
    }
    let name = if md.name.is_empty() {
        c.names.first().cloned().unwrap_or_default()
    } else {
        md.name
    };
    Ok(ContainerMeta {
        id: c.id,
        name,
        image,
        image_id: if c.image.is_empty() {
            String::new()
        } else {
            format!("sha256:{}", c.image)
        },
        privileged: None,
        init_pid: pid,
        start_ts: 0,
        runtime: "podman",
        k8s_ns: String::new(),
        k8s_pod: String::new(),
        k8s_pod_uid: String::new(),
        k8s_pod_labels: BTreeMap::new(),
        mounts: Vec::new(),
        source: Source::PodmanStorage,
    })
}

/// The pid in `<run_root>/overlay-containers/<id>/userdata/pidfile`, 0 when
/// there is none (not running) or it holds no pid.
pub(crate) fn init_pid(run_root: &Path, id: &str) -> u32 {
    if id.contains('/') || id.contains("..") {
        return 0;
    }
    std::fs::read_to_string(
        run_root
            .join("overlay-containers")
            .join(id)
            .join("userdata/pidfile"),
    )
    .ok()
    .and_then(|t| t.trim().parse().ok())
    .unwrap_or(0)
}

/// Look `id` up in the podman storage directory (`/var/lib/containers/storage`)
/// and its run root (`/run/containers/storage`, for the init's pid).
pub(crate) fn lookup(
    storage: &Path,
    run_root: Option<&Path>,
    id: &str,
) -> Result<ContainerMeta, LookupError> {
    let containers = read_limited(&storage.join("overlay-containers/containers.json"))?
        .ok_or(LookupError::NotFound)?;
    let images = read_limited(&storage.join("overlay-images/images.json"))?;
    let pid = run_root.map_or(0, |r| init_pid(r, id));
    meta_from_files(&containers, images.as_deref(), id, pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real files written by podman 4.3 (`podman run -d --name flexp localhost/fl-busybox:exp`).
    const CONTAINERS: &str = r#"[{"id":"88a148dd4bbac87a7dfbf153792143c04b26093e51a9e14dbcd9590ec31b13a7","names":["flexp"],"image":"cb6a2caa65afb52c4961e36026a1cefe9307ee9d23101aefd1459cbdeabadd04","layer":"e0d5ae2b65d05cd8d85a12f8fd4c1d2945b17acd6f49151aa5b3341d129cd000","metadata":"{\"image-name\":\"localhost/fl-busybox:exp\",\"image-id\":\"cb6a2caa65afb52c4961e36026a1cefe9307ee9d23101aefd1459cbdeabadd04\",\"name\":\"flexp\",\"created-at\":1795311853}","created":"2026-11-22T01:44:13.398048639Z","flags":{"MountLabel":"","ProcessLabel":""}}]"#;
    const IMAGES: &str = r#"[{"id":"cb6a2caa65afb52c4961e36026a1cefe9307ee9d23101aefd1459cbdeabadd04","digest":"sha256:37aff5d8f33659a3b3bbd58ca64e52bbea88e4ce6177db62be03ebb2ddcdf842","names":["localhost/fl-busybox:exp"],"layer":"7ffe2fa20960cdf985770e0b6f2b8ac86b8f5ca71740fcb4ee5f8082bf76a616"}]"#;
    const ID: &str = "88a148dd4bbac87a7dfbf153792143c04b26093e51a9e14dbcd9590ec31b13a7";

    #[test]
    fn finds_the_container_and_its_digest() {
        let m = meta_from_files(CONTAINERS.as_bytes(), Some(IMAGES.as_bytes()), ID, 21753).unwrap();
        assert_eq!(m.id, ID);
        assert_eq!(m.name, "flexp");
        assert_eq!(m.image.repository, "localhost/fl-busybox");
        assert_eq!(m.image.tag, "exp");
        assert_eq!(
            m.image.digest,
            "sha256:37aff5d8f33659a3b3bbd58ca64e52bbea88e4ce6177db62be03ebb2ddcdf842"
        );
        // the init's start is read by the resolver; "created" is not the start
        assert_eq!((m.init_pid, m.start_ts), (21753, 0));
        assert_eq!(m.privileged, None);
        assert_eq!(m.source, Source::PodmanStorage);
    }

    #[test]
    fn unknown_id_missing_images_and_bad_json() {
        assert!(matches!(
            meta_from_files(CONTAINERS.as_bytes(), None, "nope", 0),
            Err(LookupError::NotFound)
        ));
        let m = meta_from_files(CONTAINERS.as_bytes(), None, ID, 0).unwrap();
        assert_eq!(m.image.digest, "");
        assert!(matches!(
            meta_from_files(b"{not json", None, ID, 0),
            Err(LookupError::Protocol(_))
        ));
        let bad_md = r#"[{"id":"x","metadata":"{oops"}]"#;
        assert!(matches!(
            meta_from_files(bad_md.as_bytes(), None, "x", 0),
            Err(LookupError::Protocol(_))
        ));
    }

    #[test]
    fn missing_storage_is_not_found() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            lookup(d.path(), None, ID),
            Err(LookupError::NotFound)
        ));
        std::fs::create_dir_all(d.path().join("overlay-containers")).unwrap();
        std::fs::write(
            d.path().join("overlay-containers/containers.json"),
            CONTAINERS,
        )
        .unwrap();
        assert_eq!(lookup(d.path(), None, ID).unwrap().init_pid, 0);
        // conmon's pidfile in the run root
        let run = d.path().join("run");
        let userdata = run.join("overlay-containers").join(ID).join("userdata");
        std::fs::create_dir_all(&userdata).unwrap();
        std::fs::write(userdata.join("pidfile"), "21753").unwrap();
        let m = lookup(d.path(), Some(&run), ID).unwrap();
        assert_eq!((m.name.as_str(), m.init_pid), ("flexp", 21753));
        assert_eq!(init_pid(&run, "../x"), 0);
    }
}
