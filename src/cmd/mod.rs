//! One module per subcommand, plus helpers they share.
pub mod bench;
pub mod learn;
pub mod profiles;
pub mod record;
pub mod replay;
pub mod rules;
pub mod run;
pub mod selftest;
pub mod signals;

/// A clap value parser for an integer flag that must lie in `min..=max`.
pub fn int_in<T>(min: T, max: T) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy + Send + Sync + 'static,
{
    move |s: &str| match s.trim().parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        Ok(v) => Err(format!("must be between {min} and {max}, got {v}")),
        Err(_) => Err(format!(
            "must be an integer between {min} and {max}, got {s:?}"
        )),
    }
}

/// A clap value parser for a number flag that must lie in `min..=max`.
pub fn float_in(min: f64, max: f64) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync {
    move |s: &str| match s.trim().parse::<f64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!(
            "must be a number between {min} and {max}, got {s:?}"
        )),
    }
}

/// A clap value parser for a duration flag (`90s`, `15m`) within `min..=max`.
pub fn duration_in(
    min: std::time::Duration,
    max: std::time::Duration,
) -> impl Fn(&str) -> Result<std::time::Duration, String> + Clone + Send + Sync {
    move |s: &str| {
        let range = || {
            format!(
                "between {} and {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            )
        };
        match humantime::parse_duration(s.trim()) {
            Ok(d) if d >= min && d <= max => Ok(d),
            Ok(d) => Err(format!(
                "must be {}, got {}",
                range(),
                humantime::format_duration(d)
            )),
            Err(e) => Err(format!("{e} (a duration {}: 90s, 15m, 1h)", range())),
        }
    }
}

/// One year (365.25 days, as humantime counts it): the longest duration any
/// flag takes.
pub const YEAR: std::time::Duration = std::time::Duration::from_secs(31_557_600);

/// `--duration` of `learn`, `record` and `run`: 1 ms to a year (0 would
/// silently mean "no limit" to one and "stop at once" to another).
pub fn duration_flag(s: &str) -> Result<std::time::Duration, String> {
    duration_in(std::time::Duration::from_millis(1), YEAR)(s)
}

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
