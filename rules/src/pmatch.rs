//! Falco's `pmatch` operator with libsinsp's path-component semantics.
//!
//! libsinsp (`prefix_search.h`, `path_prefix_map`) splits every list item and
//! every tested value on `/`, drops empty components (so `//a/`, `/a` and `a`
//! are the same path) and matches when the item's components are a prefix of
//! the value's: `/usr` matches `/usr` and `/usr/bin/ls`, not `/usrx` nor `/`.
//! A component holding `*`, `?` or `[` is an fnmatch pattern (flags 0: `*`
//! never has to cross a `/` since components hold none, and `\` escapes the
//! next character), so `/srv/*/private` matches `/srv/shop/private/key.pem`.
//! An item with no component (`/` or the empty string) matches every value.

use ahash::AHashSet;

/// The compiled items of one `pmatch` test.
#[derive(Debug, Clone)]
pub struct PathSet {
    /// The items as written (the kernel plan derives its prefixes from them).
    pub items: Vec<String>,
    /// Items without glob components, normalised (`/a/b`; `/` for the root).
    literal: AHashSet<String>,
    /// Items with at least one glob component, split into components.
    globs: Vec<Vec<Component>>,
}

#[derive(Debug, Clone)]
enum Component {
    Literal(String),
    Glob(Vec<char>),
}

/// Whether a path component is a glob in libsinsp (`find_first_of("?*[")`).
pub fn is_glob_component(c: &str) -> bool {
    c.contains(['*', '?', '['])
}

/// The non-empty `/`-separated components of `path`.
pub fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

/// `path` as libsinsp compares it: `/` followed by its components joined with `/`.
pub fn normalise(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 1);
    for c in components(path) {
        out.push('/');
        out.push_str(c);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Whether `path` is already in the form [`normalise`] gives.
fn is_normal(path: &str) -> bool {
    path == "/" || (path.starts_with('/') && !path.ends_with('/') && !path.contains("//"))
}

impl PathSet {
    pub fn new(items: Vec<String>) -> PathSet {
        let mut literal = AHashSet::new();
        let mut globs = Vec::new();
        for it in &items {
            if components(it).any(is_glob_component) {
                globs.push(
                    components(it)
                        .map(|c| {
                            if is_glob_component(c) {
                                Component::Glob(c.chars().collect())
                            } else {
                                Component::Literal(c.to_string())
                            }
                        })
                        .collect(),
                );
            } else {
                literal.insert(normalise(it));
            }
        }
        PathSet {
            items,
            literal,
            globs,
        }
    }

    /// Does `value` lie at or below one of the items?
    pub fn matches(&self, value: &str) -> bool {
        if !self.literal.is_empty() {
            if self.literal.contains("/") {
                return true;
            }
            let owned;
            let v = if is_normal(value) {
                value
            } else {
                owned = normalise(value);
                &owned
            };
            // every component boundary of the normalised value, longest last
            let b = v.as_bytes();
            for i in 1..=b.len() {
                if (i == b.len() || b[i] == b'/') && self.literal.contains(&v[..i]) {
                    return true;
                }
            }
        }
        if !self.globs.is_empty() {
            let vc: Vec<&str> = components(value).collect();
            for g in &self.globs {
                if g.len() <= vc.len()
                    && g.iter().zip(&vc).all(|(p, c)| match p {
                        Component::Literal(l) => l == c,
                        Component::Glob(p) => crate::glob::glob_chars_str(p, c),
                    })
                {
                    return true;
                }
            }
        }
        false
    }
}

/// Falco's `pmatch` of one value against `items` (compiles them each call: for
/// tests and tools; the engine compiles a [`PathSet`] once).
pub fn pmatch_match(items: &[&str], value: &str) -> bool {
    PathSet::new(items.iter().map(|s| s.to_string()).collect()).matches(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(items: &[&str], v: &str) -> bool {
        pmatch_match(items, v)
    }

    #[test]
    fn items_match_themselves_and_paths_below() {
        assert!(m(&["/etc"], "/etc"));
        assert!(m(&["/etc"], "/etc/passwd"));
        assert!(!m(&["/etc"], "/etcx/passwd"));
        assert!(!m(&["/etc/ssh"], "/etc"));
        assert!(m(&["/etc", "/usr"], "/usr/bin/ls"));
    }

    #[test]
    fn empty_components_are_dropped_on_both_sides() {
        assert!(m(&["/etc/"], "/etc"));
        assert!(m(&["//etc//ssh/"], "/etc/ssh/sshd_config"));
        assert!(m(&["etc"], "/etc/passwd"));
        assert!(m(&["/etc"], "/etc//passwd"));
        assert!(m(&["/etc/ssh"], "//etc///ssh/"));
        assert!(!m(&["/etc/"], "/etcx"));
    }

    #[test]
    fn the_root_item_matches_everything() {
        assert!(m(&["/"], "/anything/at/all"));
        assert!(m(&["/"], "/"));
        assert!(m(&["/"], ""));
        assert!(!m(&["/a"], "/"));
        assert!(!m(&["/a"], ""));
    }

    #[test]
    fn components_with_glob_characters_are_fnmatch_patterns() {
        assert!(m(&["/srv/*/private"], "/srv/shop/private/key.pem"));
        assert!(m(&["/srv/*/private"], "/srv/shop/private"));
        assert!(!m(&["/srv/*/private"], "/srv/shop/public/key.pem"));
        // `*` stays within one component
        assert!(!m(&["/srv/*/private"], "/srv/a/b/private"));
        assert!(m(&["/home/user?"], "/home/user1/x"));
        assert!(!m(&["/home/user?"], "/home/user12/x"));
        assert!(m(&["/var/log/[ab]*"], "/var/log/audit/x"));
        assert!(!m(&["/var/log/[ab]*"], "/var/log/cron"));
        // a glob component does not make the rest of the item a glob
        assert!(m(&["/srv/*/private", "/opt"], "/opt/x"));
        // backslash escapes as in fnmatch
        assert!(m(&["/d/a\\*b"], "/d/a*b/f"));
        assert!(!m(&["/d/a\\*b"], "/d/axb/f"));
    }
}
