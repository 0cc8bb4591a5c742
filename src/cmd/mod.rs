//! One module per subcommand, plus helpers they share.
pub mod bench;
pub mod kill;
pub mod learn;
pub mod profiles;
pub mod record;
pub mod replay;
pub mod rules;
pub mod run;
pub mod selftest;
pub mod signals;

/// Does image reference `pattern` (as a user types it: `nginx`, `nginx:1.27`,
/// `library/nginx`, `docker.io/library/nginx@sha256:…`) match a container's image?
///
/// The repository matches when it equals the pattern's repository or ends with
/// `/` + it (whole path components: `nginx` matches `docker.io/library/nginx`
/// and `localhost/nginx`, not `my-nginx`). A tag in the pattern must equal the
/// container's tag; a digest must equal its digest.
pub fn image_matches(pattern: &str, repository: &str, tag: &str) -> bool {
    image_matches_digest(pattern, repository, tag, "")
}

pub fn image_matches_digest(pattern: &str, repository: &str, tag: &str, digest: &str) -> bool {
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

    #[test]
    fn image_patterns() {
        assert!(image_matches("nginx", "docker.io/library/nginx", "1.27"));
        assert!(image_matches("nginx", "localhost/nginx", "latest"));
        assert!(image_matches(
            "nginx:1.27",
            "docker.io/library/nginx",
            "1.27"
        ));
        assert!(!image_matches(
            "nginx:1.26",
            "docker.io/library/nginx",
            "1.27"
        ));
        assert!(image_matches(
            "library/nginx",
            "docker.io/library/nginx",
            ""
        ));
        assert!(image_matches(
            "docker.io/library/nginx",
            "docker.io/library/nginx",
            ""
        ));
        assert!(!image_matches("nginx", "docker.io/library/my-nginx", ""));
        assert!(!image_matches("nginx", "", ""));
        assert!(image_matches(
            "localhost:5000/nginx:1",
            "localhost:5000/nginx",
            "1"
        ));
        assert!(image_matches_digest(
            "nginx@sha256:ab",
            "docker.io/library/nginx",
            "x",
            "sha256:ab"
        ));
        assert!(!image_matches_digest(
            "nginx@sha256:ab",
            "docker.io/library/nginx",
            "x",
            "sha256:cd"
        ));
    }
}
