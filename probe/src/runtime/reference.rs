//! Image references as runtimes report them, normalised the way Falco and the
//! Docker distribution library do: `nginx` → `docker.io/library/nginx:latest`.
//!
//! Rules (the distribution `reference` package's `ParseNormalizedNamed`):
//! - the first path component is a registry when it contains `.` or `:` or is
//!   `localhost`; otherwise the registry is `docker.io`;
//! - on `docker.io` a single-component path gets the `library/` prefix, and
//!   `index.docker.io` is written `docker.io`;
//! - `@<algo>:<hex>` is the digest, a `:` after the last `/` starts the tag;
//! - no tag and no digest means the tag `latest`.
//!
//! A bare image id (`sha256:<hex>` or 64 hex) is not a reference: [`ImageRef::parse`]
//! returns `None` for it, and the caller keeps looking (image store, RepoTags).

/// A normalised image reference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry and path, e.g. `docker.io/library/nginx`, `localhost/fl-busybox`.
    pub repository: String,
    /// Tag, e.g. `1.27`; empty when the reference had only a digest.
    pub tag: String,
    /// Digest from the reference itself (`sha256:…`), if it had one.
    pub digest: String,
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `s` is an image id rather than a name (`sha256:<64hex>` or `<64hex>`).
pub fn is_image_id(s: &str) -> bool {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    hex.len() == 64 && is_hex(hex)
}

impl ImageRef {
    /// Parse and normalise a reference; `None` for an empty string, an image id or
    /// a malformed reference (empty path component, bad digest).
    pub fn parse(s: &str) -> Option<ImageRef> {
        let s = s.trim();
        if s.is_empty() || is_image_id(s) {
            return None;
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => {
                let (algo, hex) = d.split_once(':')?;
                if algo.is_empty() || !is_hex(hex) {
                    return None;
                }
                (n, d.to_string())
            }
            None => (s, String::new()),
        };
        let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (path, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (
                &name[..last_slash + i],
                name[last_slash + i + 1..].to_string(),
            ),
            None => (name, String::new()),
        };
        if path.is_empty() || path.split('/').any(str::is_empty) {
            return None;
        }
        if tag.is_empty() && name.ends_with(':') {
            return None;
        }
        if !tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return None;
        }
        let (domain, rest) = match path.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first, rest.to_string())
            }
            _ => ("docker.io", path.to_string()),
        };
        let path_ok = rest.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'/')
        });
        let domain_ok = domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
        if !path_ok || !domain_ok {
            return None;
        }
        let domain = if domain == "index.docker.io" {
            "docker.io"
        } else {
            domain
        };
        let rest = if domain == "docker.io" && !rest.contains('/') {
            format!("library/{rest}")
        } else {
            rest
        };
        let tag = if tag.is_empty() && digest.is_empty() {
            "latest".to_string()
        } else {
            tag
        };
        Some(ImageRef {
            repository: format!("{domain}/{rest}"),
            tag,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> (String, String, String) {
        let r = ImageRef::parse(s).unwrap_or_else(|| panic!("{s} did not parse"));
        (r.repository, r.tag, r.digest)
    }

    fn t(a: &str, b: &str, c: &str) -> (String, String, String) {
        (a.into(), b.into(), c.into())
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_hub_short_forms() {
        assert_eq!(p("nginx"), t("docker.io/library/nginx", "latest", ""));
        assert_eq!(p("nginx:1.27"), t("docker.io/library/nginx", "1.27", ""));
        assert_eq!(
            p("library/nginx:1.27"),
            t("docker.io/library/nginx", "1.27", "")
        );
        assert_eq!(
            p("docker.io/nginx"),
            t("docker.io/library/nginx", "latest", "")
        );
        assert_eq!(
            p("index.docker.io/library/nginx:1"),
            t("docker.io/library/nginx", "1", "")
        );
        assert_eq!(p("bitnami/redis:7"), t("docker.io/bitnami/redis", "7", ""));
    }

    #[test]
    fn registries_and_localhost() {
        assert_eq!(
            p("localhost/fl-busybox:test"),
            t("localhost/fl-busybox", "test", "")
        );
        assert_eq!(
            p("localhost:5000/team/app:v2"),
            t("localhost:5000/team/app", "v2", "")
        );
        assert_eq!(
            p("registry.k8s.io/pause:3.9"),
            t("registry.k8s.io/pause", "3.9", "")
        );
        assert_eq!(
            p("quay.io/prometheus/node-exporter"),
            t("quay.io/prometheus/node-exporter", "latest", "")
        );
        // a port alone is not a tag
        assert_eq!(p("myreg:5000/app"), t("myreg:5000/app", "latest", ""));
    }

    #[test]
    fn digests() {
        assert_eq!(
            p(&format!("nginx@{D}")),
            t("docker.io/library/nginx", "", D)
        );
        assert_eq!(
            p(&format!("docker.io/library/nginx:1.27@{D}")),
            t("docker.io/library/nginx", "1.27", D)
        );
    }

    #[test]
    fn ids_and_garbage_are_not_references() {
        assert!(ImageRef::parse(D).is_none());
        assert!(ImageRef::parse(&D[7..]).is_none());
        assert!(is_image_id(D));
        for bad in [
            "",
            "  ",
            "nginx@sha256:xyz",
            "a//b",
            "/nginx",
            "nginx:",
            "nginx@",
            "<none>:<none>",
            "Nginx",
        ] {
            assert!(ImageRef::parse(bad).is_none(), "{bad:?}");
        }
    }
}
