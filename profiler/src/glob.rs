//! Glob entries and how profile values are written in Falco conditions.
//!
//! Globs use Falco's `glob` operator syntax (libsinsp calls `fnmatch` without
//! flags: `*` and `?` also cross `/`, `[…]` is a class, `\` escapes), matched and
//! escaped by the rules crate (`falco_learn_rules::glob`), quoted by
//! `falco_learn_rules::emit`: the profiler keeps only its volatile-name heuristics. The
//! patterns falco-learn learns never use `*` or `?`: a volatile component
//! becomes one class per character (`[0-9]`, `[A-Za-z0-9]`, …), so a pattern
//! matches names of exactly the learned shape and never crosses a `/`.
//!
//! Values are rendered paths (`falco_learn_event::path`): valid UTF-8 without
//! backslash as they are, otherwise `\\` for a backslash and `\xNN` for a byte
//! that is not UTF-8. Our engine compares rendered strings, stock Falco the raw
//! bytes, so [`falco_form`] says how one value is written for both.

// Falco's glob syntax and quoting live in the rules crate (one home for what emitted
// rules mean); re-exported for the profiler's own users.
pub use falco_learn_rules::emit::falco_quote;
pub use falco_learn_rules::glob::{escape, escape_char};

/// How a rendered value is written in generated rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FalcoForm {
    /// No backslash: the value itself, for both engines.
    Exact,
    /// Backslashes only (valid UTF-8): stock Falco sees `raw` (one backslash
    /// each), our engine the rendered value: both are listed, each exact.
    Dual { raw: String },
    /// Not expressible in one Falco string for both engines: a byte that is
    /// not UTF-8 (stock Falco rules cannot spell one), or a trailing backslash
    /// (libsinsp mis-reads a string ending in `\\"`). Allowed as globs: the
    /// raw form for Falco, each such byte as `?` (the covering glob: the
    /// entry is marked in the profile), and the rendered value exactly, for
    /// our engine. The matcher allows what these globs match, too.
    Approx { globs: Vec<String> },
}

/// See [`FalcoForm`].
pub fn falco_form(v: &str) -> FalcoForm {
    if !v.contains('\\') {
        return FalcoForm::Exact;
    }
    let mut raw = String::new();
    let mut raw_glob = String::new();
    let mut inexpressible = false;
    let mut it = v.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            raw.push(c);
            escape_char(c, &mut raw_glob);
            continue;
        }
        match it.peek() {
            Some('\\') => {
                it.next();
                raw.push('\\');
                escape_char('\\', &mut raw_glob);
            }
            Some('x') => {
                it.next();
                it.next();
                it.next();
                raw_glob.push('?');
                inexpressible = true;
            }
            // not a rendering (hand-written): a backslash
            _ => {
                raw.push('\\');
                escape_char('\\', &mut raw_glob);
            }
        }
    }
    // A raw form that could itself be a rendering (`\\` or `\x` in it) would
    // allow another file in our engine; one ending in a backslash cannot be
    // quoted for libsinsp's lexer.
    let ambiguous = raw.ends_with('\\') || raw.contains("\\\\") || raw.contains("\\x");
    if inexpressible || ambiguous {
        FalcoForm::Approx {
            globs: vec![raw_glob, escape(v)],
        }
    } else {
        FalcoForm::Dual { raw }
    }
}

/// The globs an entry is allowed as when it is not expressible exactly
/// (empty otherwise).
pub fn approx_globs(v: &str) -> Vec<String> {
    match falco_form(v) {
        FalcoForm::Approx { globs } => globs,
        _ => Vec::new(),
    }
}

// ------------------------------------------------------------ volatile names

const DIGIT: &str = "[0-9]";
const ALNUM: &str = "[A-Za-z0-9]";
const PYRAND: &str = "[a-z0-9_]";

/// Compression suffixes logrotate adds after a rotation number.
const COMPRESSED: &[&str] = &["gz", "bz2", "xz", "zst", "lz4", "z", "Z", "zip", "lzma"];

/// The glob a written path is learned as when one of its components is
/// volatile (random or a counter; see the README for the rules), `None` when
/// every component is stable. Paths holding a backslash (rendered escapes)
/// are left alone.
pub fn volatile_pattern(path: &str) -> Option<String> {
    if !path.starts_with('/') || path.contains('\\') {
        return None;
    }
    let mut out = String::with_capacity(path.len() + 32);
    let mut any = false;
    for (i, comp) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        match component(comp) {
            Some(p) => {
                any = true;
                out.push_str(&p);
            }
            None => out.push_str(&escape(comp)),
        }
    }
    any.then_some(out)
}

fn rep(class: &str, n: usize, out: &mut String) {
    for _ in 0..n {
        out.push_str(class);
    }
}

fn is_alnum(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A whole component made by a known mkstemp/mkdtemp template.
fn template(c: &str) -> Option<String> {
    let mut o = String::new();
    // GNU sed -i: `sedXXXXXX` next to the file
    if let Some(r) = c.strip_prefix("sed") {
        if r.len() == 6 && is_alnum(r) {
            o.push_str("sed");
            rep(ALNUM, 6, &mut o);
            return Some(o);
        }
    }
    // mktemp(1) default: `tmp.XXXXXXXXXX`
    if let Some(r) = c.strip_prefix("tmp.") {
        if r.len() == 10 && is_alnum(r) {
            o.push_str("tmp.");
            rep(ALNUM, 10, &mut o);
            return Some(o);
        }
    }
    // Python tempfile: prefix (default `tmp`) + 8 of [a-z0-9_]; with a prefix
    // ending in `-` or `_` (pip-install-…), or `tmp`, and at least one digit
    // or `_` among the 8
    let b = c.as_bytes();
    if b.len() > 8 && c.is_char_boundary(c.len() - 8) {
        let (pre, r) = c.split_at(c.len() - 8);
        let py = r
            .bytes()
            .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == b'_');
        let mixed = r.bytes().any(|x| x.is_ascii_digit() || x == b'_');
        if py && mixed && (pre == "tmp" || (pre.len() > 1 && pre.ends_with(['-', '_']))) {
            o.push_str(&escape(pre));
            rep(PYRAND, 8, &mut o);
            return Some(o);
        }
    }
    None
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Lower,
    Upper,
    Digit,
}

fn class(b: u8) -> Class {
    if b.is_ascii_digit() {
        Class::Digit
    } else if b.is_ascii_uppercase() {
        Class::Upper
    } else {
        Class::Lower
    }
}

/// A mkstemp-style random run: digits and letters mixed, not a word with a
/// number (`utf8mb4`, `log4j2`, `python3` stay literal).
fn looks_random(t: &str) -> bool {
    let b = t.as_bytes();
    if b.len() < 6 || !is_alnum(t) {
        return false;
    }
    let has = |k: Class| b.iter().any(|&x| class(x) == k);
    if !has(Class::Digit) || !(has(Class::Lower) || has(Class::Upper)) {
        return false;
    }
    let transitions = b.windows(2).filter(|w| class(w[0]) != class(w[1])).count();
    let all3 = has(Class::Lower) && has(Class::Upper) && has(Class::Digit);
    (all3 && transitions >= 3) || transitions >= 4
}

/// Hex of at least 8 digits, one case, with digits and letters (hashes, ids).
fn looks_hex(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() >= 8
        && (b
            .iter()
            .all(|x| x.is_ascii_digit() || (b'a'..=b'f').contains(x))
            || b.iter()
                .all(|x| x.is_ascii_digit() || (b'A'..=b'F').contains(x)))
        && b.iter().any(u8::is_ascii_digit)
        && b.iter().any(u8::is_ascii_alphabetic)
}

/// Byte ranges of UUIDs (8-4-4-4-12 hex) in a component.
fn uuids(c: &str) -> Vec<(usize, usize)> {
    let b = c.as_bytes();
    let mut v = Vec::new();
    let mut i = 0;
    while i + 36 <= b.len() {
        let ok = (0..36).all(|k| match k {
            8 | 13 | 18 | 23 => b[i + k] == b'-',
            _ => b[i + k].is_ascii_hexdigit(),
        });
        let bounded = (i == 0 || !b[i - 1].is_ascii_alphanumeric())
            && b.get(i + 36).is_none_or(|x| !x.is_ascii_alphanumeric());
        if ok && bounded {
            v.push((i, i + 36));
            i += 36;
        } else {
            i += 1;
        }
    }
    v
}

/// The glob of a volatile component, `None` when it is stable.
fn component(c: &str) -> Option<String> {
    if c.is_empty() {
        return None;
    }
    if let Some(t) = template(c) {
        return Some(t);
    }
    let b = c.as_bytes();
    // classes per byte; None = literal
    let mut cls: Vec<Option<&str>> = vec![None; b.len()];
    for (s, e) in uuids(c) {
        for k in s..e {
            if b[k] != b'-' {
                cls[k] = Some("[0-9A-Fa-f]");
            }
        }
    }
    // tokens: maximal ASCII alphanumeric runs
    let mut toks: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphanumeric() {
            let s = i;
            while i < b.len() && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            toks.push((s, i));
        } else {
            i += 1;
        }
    }
    for (n, &(s, e)) in toks.iter().enumerate() {
        if cls[s].is_some() {
            continue;
        }
        let t = &c[s..e];
        let digits = t.bytes().all(|x| x.is_ascii_digit());
        let rotation = digits
            && t.len() <= 3
            && n > 0
            && s > 0
            && b[s - 1] == b'.'
            && toks[n - 1].1 == s - 1
            && {
                let prev = &c[toks[n - 1].0..toks[n - 1].1];
                prev.bytes().all(|x| x.is_ascii_alphabetic()) && prev != "so"
            }
            && toks[n + 1..]
                .iter()
                .all(|&(s2, e2)| b[s2 - 1] == b'.' && COMPRESSED.contains(&&c[s2..e2]))
            && toks.last().is_some_and(|&(_, le)| le == b.len());
        let class = if digits && (t.len() >= 5 || rotation) {
            Some(DIGIT)
        } else if looks_hex(t) {
            Some(if t.bytes().any(|x| x.is_ascii_uppercase()) {
                "[0-9A-F]"
            } else {
                "[0-9a-f]"
            })
        } else if looks_random(t) {
            Some(ALNUM)
        } else {
            None
        };
        if let Some(k) = class {
            for x in cls.iter_mut().take(e).skip(s) {
                *x = Some(k);
            }
        }
    }
    if cls.iter().all(Option::is_none) {
        return None;
    }
    let mut o = String::new();
    for (k, ch) in c.char_indices() {
        match cls[k] {
            Some(class) => o.push_str(class),
            None => escape_char(ch, &mut o),
        }
    }
    Some(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use falco_learn_rules::glob_match;

    fn vp(p: &str) -> Option<String> {
        volatile_pattern(p)
    }

    #[test]
    fn quoting() {
        assert_eq!(falco_quote("/a b"), "\"/a b\"");
        assert_eq!(falco_quote("/a\"b'\\\n\t"), "\"/a\\\"b'\\\\\\n\\t\"");
    }

    #[test]
    fn forms() {
        assert_eq!(falco_form("/a\nb"), FalcoForm::Exact);
        assert_eq!(
            falco_form("/a\\\\b"),
            FalcoForm::Dual {
                raw: "/a\\b".into()
            }
        );
        assert_eq!(
            falco_form("/a\\xffb*"),
            FalcoForm::Approx {
                globs: vec!["/a?b[*]".into(), "/a[\\\\]xffb[*]".into()]
            }
        );
        // trailing backslash, or a raw form that reads as a rendering
        assert!(matches!(falco_form("/a\\\\"), FalcoForm::Approx { .. }));
        assert!(matches!(falco_form("/a\\\\xff"), FalcoForm::Approx { .. }));
        assert!(matches!(
            falco_form("/a\\\\\\\\b"),
            FalcoForm::Approx { .. }
        ));
        let v = "/tmp/\\xff\\xfe\\\\x";
        let g = approx_globs(v);
        assert_eq!(g[0], "/tmp/??[\\\\]x");
        assert!(glob_match(&g[1], v));
        assert!(!glob_match(&g[1], "/tmp/x"));
    }

    #[test]
    fn escaped_globs_match_only_themselves() {
        for s in ["/a*b", "/a?b", "/a[b]", "/a\\b", "/[!x]", "/a]", "/ü*"] {
            let g = escape(s);
            assert!(glob_match(&g, s), "{s} {g}");
            assert!(!glob_match(&g, &format!("{s}x")), "{s}");
        }
        assert!(!glob_match(&escape("/a*b"), "/axb"));
        assert!(!glob_match(&escape("/a?b"), "/axb"));
    }

    /// (real-looking name, whether it must match the pattern of its sibling)
    #[test]
    fn volatile_names_become_patterns() {
        let cases = [
            // sed -i
            ("/etc/nginx/conf.d/sedAbC123", "/etc/nginx/conf.d/sedxkqpaz"),
            ("/etc/nginx/sed9Zk2Lq", "/etc/nginx/sedQQQQQQ"),
            // mktemp
            ("/tmp/tmp.AbC123XyZ0", "/tmp/tmp.qwertyuiop"),
            ("/tmp/tmp.Xa9bQ2kLmn/out", "/tmp/tmp.0000000000/out"),
            // logrotate
            ("/var/log/nginx/access.log.1", "/var/log/nginx/access.log.7"),
            (
                "/var/log/nginx/access.log.2.gz",
                "/var/log/nginx/access.log.3.gz",
            ),
            ("/var/log/app-20251122.log", "/var/log/app-20251123.log"),
            // nginx temp/spool files
            (
                "/var/cache/nginx/client_body_temp/0000000001",
                "/var/cache/nginx/client_body_temp/0000000042",
            ),
            (
                "/var/cache/nginx/proxy_temp/1/00/0000000001",
                "/var/cache/nginx/proxy_temp/1/00/0000000123",
            ),
            // JVM hsperfdata
            ("/tmp/hsperfdata_root/12345", "/tmp/hsperfdata_root/54321"),
            // pip caches and build dirs
            (
                "/root/.cache/pip/http-v2/a/b/c/d/e/0123456789abcdef0123456789abcdef0123456789abcdef01234567",
                "/root/.cache/pip/http-v2/a/b/c/d/e/f123456789abcdef0123456789abcdef0123456789abcdef0123456a",
            ),
            ("/tmp/pip-install-k3j9x2_a/x", "/tmp/pip-install-zz9_qq01/x"),
            ("/tmp/tmpab_12cde", "/tmp/tmp9xk2ab_c"),
            // ids, pids, timestamps
            (
                "/run/app/3f2a9c1d-7e5b-4c2a-9d1e-0a1b2c3d4e5f.lock",
                "/run/app/00000000-0000-4000-8000-000000000000.lock",
            ),
            ("/tmp/app.4242242.pid", "/tmp/app.1234567.pid"),
            ("/var/run/x/1732233600.sock", "/var/run/x/1732233601.sock"),
            ("/tmp/cache-5d41402abc4b2a76", "/tmp/cache-7d793037a0760186"),
            ("/tmp/foo.a8Kq2Z", "/tmp/foo.Zz9xYy"),
        ];
        for (a, b) in cases {
            let p = vp(a).unwrap_or_else(|| panic!("{a} stays literal"));
            assert!(glob_match(&p, a), "{a} !~ {p}");
            assert!(glob_match(&p, b), "{b} !~ {p}");
            assert_eq!(vp(b).as_deref(), Some(p.as_str()), "{b}");
            // never across a directory
            assert!(!glob_match(&p, &format!("{a}/x")), "{p}");
        }
        assert_eq!(
            vp("/etc/sedAbC123").as_deref(),
            Some("/etc/sed[A-Za-z0-9][A-Za-z0-9][A-Za-z0-9][A-Za-z0-9][A-Za-z0-9][A-Za-z0-9]")
        );
        assert_eq!(
            vp("/var/log/nginx/access.log.2.gz").as_deref(),
            Some("/var/log/nginx/access.log.[0-9].gz")
        );
        assert_eq!(
            vp("/tmp/hsperfdata_root/12345").as_deref(),
            Some("/tmp/hsperfdata_root/[0-9][0-9][0-9][0-9][0-9]")
        );
    }

    #[test]
    fn stable_names_stay_literal() {
        for p in [
            "/var/log/nginx/access.log",
            "/etc/nginx/nginx.conf",
            "/data/2025.csv",
            "/usr/share/nginx/html/index.html",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/libfoo.so.1.2.3",
            "/app/__pycache__/x.cpython-311.pyc",
            "/usr/lib/python3.11/site-packages/pip/__init__.py",
            "/var/lib/mysql/utf8mb4.cnf",
            "/opt/log4j2.xml",
            "/opt/app/MyConfigFile.json",
            "/run/nginx.pid",
            "/tmp/hsperfdata_root/1",
            "/var/cache/nginx/client_body_temp",
            "/etc/sedation",
            "/etc/passwd",
            "/var/lib/dpkg/status-old",
            "/tmp/tmp.file",
            "/a\\\\b/12345",
        ] {
            assert_eq!(vp(p), None, "{p}");
        }
    }
}
