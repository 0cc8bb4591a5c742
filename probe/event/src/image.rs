//! Container images, in one place: the image a profile describes
//! ([`ImageRef`]: repository and tag), a reference as runtimes report it
//! ([`Reference`], with its digest), and the patterns users type
//! (`--image nginx`: [`matches`]).
//!
//! References are normalised the way Falco and the Docker distribution
//! library do (`nginx` → `docker.io/library/nginx:latest`; the distribution
//! `reference` package's `ParseNormalizedNamed`):
//! - the first path component is a registry when it contains `.` or `:` or is
//!   `localhost`; otherwise the registry is `docker.io`;
//! - on `docker.io` a single-component path gets the `library/` prefix, and
//!   `index.docker.io` is written `docker.io`;
//! - `@<algo>:<hex>` is the digest, a `:` after the last `/` starts the tag;
//! - no tag and no digest means the tag `latest`.
//!
//! A bare image id (`sha256:<hex>` or 64 hex) is not a reference: [`Reference::parse`]
//! returns `None` for it, and the caller keeps looking (image store, RepoTags).

use crate::Event;
use std::fmt;

/// The image a profile describes: repository without tag or digest, and the
/// tag ("" when the runtime reported none). One profile per pair; digests of
/// the same tag (rebuilds, architectures) accumulate in the profile's `digests`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ImageRef {
    pub repository: String,
    pub tag: String,
}

impl ImageRef {
    pub fn new(repository: impl Into<String>, tag: impl Into<String>) -> ImageRef {
        ImageRef {
            repository: repository.into(),
            tag: tag.into(),
        }
    }

    /// The image of the event's container; `None` when the event carries no
    /// image repository (host processes, or events not attributed yet).
    pub fn of_event(ev: &Event) -> Option<ImageRef> {
        let c = &ev.container;
        (!c.image_repository.is_empty())
            .then(|| ImageRef::new(c.image_repository.clone(), c.image_tag.clone()))
    }

    /// Whether the event comes from a container of exactly this image.
    pub fn is_event(&self, ev: &Event) -> bool {
        !self.repository.is_empty()
            && ev.container.image_repository == self.repository
            && ev.container.image_tag == self.tag
    }

    /// Short file stem: the repository's last path component, plus `_<tag>`
    /// unless the tag is empty or `latest` (`docker.io/library/nginx:latest`
    /// → `nginx`, `nginx:1.27` → `nginx_1.27`).
    pub fn short_stem(&self) -> String {
        let last = self
            .repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository);
        let base = if self.tag.is_empty() || self.tag == "latest" {
            last.to_string()
        } else {
            format!("{last}_{}", self.tag)
        };
        sanitize_stem(&base)
    }

    /// Long file stem, unique per image: the whole repository with `/`
    /// replaced by `_`, plus `_<tag>` when there is a tag.
    pub fn full_stem(&self) -> String {
        let base = if self.tag.is_empty() {
            self.repository.clone()
        } else {
            format!("{}_{}", self.repository, self.tag)
        };
        sanitize_stem(&base.replace('/', "_"))
    }
}

fn sanitize_stem(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tag.is_empty() {
            f.write_str(&self.repository)
        } else {
            write!(f, "{}:{}", self.repository, self.tag)
        }
    }
}

impl Reference {
    /// The image (repository and tag) this reference names.
    pub fn image(&self) -> ImageRef {
        ImageRef::new(self.repository.clone(), self.tag.clone())
    }
}

/// A normalised image reference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reference {
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

impl Reference {
    /// Parse and normalise a reference; `None` for an empty string, an image id or
    /// a malformed reference (empty path component, bad digest).
    pub fn parse(s: &str) -> Option<Reference> {
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
        Some(Reference {
            repository: format!("{domain}/{rest}"),
            tag,
            digest,
        })
    }
}

/// Does image reference `pattern` (as a user types it: `nginx`, `nginx:1.27`,
/// `library/nginx`, `docker.io/library/nginx@sha256:…`) match a container's image?
///
/// The repository matches when it equals the pattern's repository or ends with
/// `/` + it (whole path components: `nginx` matches `docker.io/library/nginx`
/// and `localhost/nginx`, not `my-nginx`). A tag in the pattern must equal the
/// container's tag; a digest must equal its digest.
pub fn matches(pattern: &str, repository: &str, tag: &str) -> bool {
    matches_digest(pattern, repository, tag, "")
}

pub fn matches_digest(pattern: &str, repository: &str, tag: &str, digest: &str) -> bool {
    if repository.is_empty() {
        return false;
    }
    let (rest, want_digest) = match pattern.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (pattern, None),
    };
    // a ':' after the last '/' is a tag (a ':' before it is a registry port)
    let (repo, want_tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    let repo_ok = repository == repo
        || (repository.len() > repo.len()
            && repository.ends_with(repo)
            && repository.as_bytes()[repository.len() - repo.len() - 1] == b'/');
    repo_ok && want_tag.is_none_or(|t| t == tag) && want_digest.is_none_or(|d| d == digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> (String, String, String) {
        let r = Reference::parse(s).unwrap_or_else(|| panic!("{s} did not parse"));
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
        assert!(Reference::parse(D).is_none());
        assert!(Reference::parse(&D[7..]).is_none());
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
            assert!(Reference::parse(bad).is_none(), "{bad:?}");
        }
    }
    #[test]
    fn image_patterns() {
        assert!(matches("nginx", "docker.io/library/nginx", "1.27"));
        assert!(matches("nginx", "localhost/nginx", "latest"));
        assert!(matches("nginx:1.27", "docker.io/library/nginx", "1.27"));
        assert!(!matches("nginx:1.26", "docker.io/library/nginx", "1.27"));
        assert!(matches("library/nginx", "docker.io/library/nginx", ""));
        assert!(matches(
            "docker.io/library/nginx",
            "docker.io/library/nginx",
            ""
        ));
        assert!(!matches("nginx", "docker.io/library/my-nginx", ""));
        assert!(!matches("nginx", "", ""));
        assert!(matches(
            "localhost:5000/nginx:1",
            "localhost:5000/nginx",
            "1"
        ));
        assert!(matches_digest(
            "nginx@sha256:ab",
            "docker.io/library/nginx",
            "x",
            "sha256:ab"
        ));
        assert!(!matches_digest(
            "nginx@sha256:ab",
            "docker.io/library/nginx",
            "x",
            "sha256:cd"
        ));
    }
}
