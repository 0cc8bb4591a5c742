//! Podman's on-disk state, for when no Podman API service runs (the usual case:
//! podman is daemonless).
//!
//! `<storage>/overlay-containers/containers.json` lists containers: `id`,
//! `names`, `image` (the image id) and `metadata`, a JSON *string* holding
//! `image-name` (the reference as given), `name` and `created-at` (seconds).
//! `<storage>/overlay-images/images.json` maps image ids to their `digest`.
//! The privileged flag is not stored there: it stays unknown.

use super::reference::Reference;
use super::{parse_rfc3339_ns, ContainerMeta, LookupError, Source};
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
    created: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct Metadata {
    image_name: String,
    name: String,
    created_at: u64,
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

/// Find `id` in the text of containers.json (and its image digest in images.json's).
pub(crate) fn meta_from_files(
    containers_json: &[u8],
    images_json: Option<&[u8]>,
    id: &str,
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
    let created = parse_rfc3339_ns(&c.created);
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
        start_ts: if created > 0 {
            created
        } else {
            md.created_at.saturating_mul(1_000_000_000)
        },
        runtime: "podman",
        k8s_ns: String::new(),
        k8s_pod: String::new(),
        k8s_pod_uid: String::new(),
        k8s_pod_labels: BTreeMap::new(),
        mounts: Vec::new(),
        source: Source::PodmanStorage,
    })
}

/// Look `id` up in the podman storage directory (`/var/lib/containers/storage`).
pub(crate) fn lookup(storage: &Path, id: &str) -> Result<ContainerMeta, LookupError> {
    let containers = read_limited(&storage.join("overlay-containers/containers.json"))?
        .ok_or(LookupError::NotFound)?;
    let images = read_limited(&storage.join("overlay-images/images.json"))?;
    meta_from_files(&containers, images.as_deref(), id)
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
        let m = meta_from_files(CONTAINERS.as_bytes(), Some(IMAGES.as_bytes()), ID).unwrap();
        assert_eq!(m.id, ID);
        assert_eq!(m.name, "flexp");
        assert_eq!(m.image.repository, "localhost/fl-busybox");
        assert_eq!(m.image.tag, "exp");
        assert_eq!(
            m.image.digest,
            "sha256:37aff5d8f33659a3b3bbd58ca64e52bbea88e4ce6177db62be03ebb2ddcdf842"
        );
        assert_eq!(m.start_ts, 1_795_311_853_398_048_639);
        assert_eq!(m.privileged, None);
        assert_eq!(m.source, Source::PodmanStorage);
    }

    #[test]
    fn unknown_id_missing_images_and_bad_json() {
        assert!(matches!(
            meta_from_files(CONTAINERS.as_bytes(), None, "nope"),
            Err(LookupError::NotFound)
        ));
        let m = meta_from_files(CONTAINERS.as_bytes(), None, ID).unwrap();
        assert_eq!(m.image.digest, "");
        assert!(matches!(
            meta_from_files(b"{not json", None, ID),
            Err(LookupError::Protocol(_))
        ));
        let bad_md = r#"[{"id":"x","metadata":"{oops"}]"#;
        assert!(matches!(
            meta_from_files(bad_md.as_bytes(), None, "x"),
            Err(LookupError::Protocol(_))
        ));
    }

    #[test]
    fn missing_storage_is_not_found() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(lookup(d.path(), ID), Err(LookupError::NotFound)));
        std::fs::create_dir_all(d.path().join("overlay-containers")).unwrap();
        std::fs::write(
            d.path().join("overlay-containers/containers.json"),
            CONTAINERS,
        )
        .unwrap();
        assert_eq!(lookup(d.path(), ID).unwrap().name, "flexp");
    }
}
