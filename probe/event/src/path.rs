//! Paths as the kernel reported them, rendered into strings without losing or forging
//! anything.
//!
//! Linux paths are bytes. Rendering them with a lossy UTF-8 conversion would map
//! `/usr/bin/\xff` and `/usr/bin/\xfe` to the same string, so a profile entry learned for
//! one would allow the other. [`render`] is injective instead:
//! - a path that is valid UTF-8 and holds no backslash is kept as it is (nearly all paths,
//!   newlines and quotes included: outputs escape them for their own formats);
//! - otherwise every backslash becomes `\\` and every byte that is not part of valid UTF-8
//!   becomes `\xNN` (two lower-case hex digits). [`raw_bytes`] turns such a string back.
//!
//! The kernel's path flags decide the rendering, which is the value Falco's modern eBPF
//! probe and libsinsp give (`proc.exepath`, `proc.cwd`, a file's `fd.name`):
//! - a path the kernel could not report whole (longer than 4095 bytes or deeper than its
//!   walk) starts with [`TRUNCATED`] (`<truncated>`), followed by the leaf-side components
//!   that fit. No kernel path starts with `<`, so such a value never equals or matches a
//!   learned path, and it is never learned ([`is_truncated`]). (Falco keeps the leaf side
//!   without a marker; a value that looks whole but is not is what we refuse to give.)
//! - an unlinked file reads as the path it had, with no ` (deleted)`: libsinsp's
//!   `sinsp_threadinfo::set_exepath` strips the suffix the kmod's `d_path` adds, and the
//!   modern probe's walk (`auxmap__store_d_path_approx`) never adds it;
//! - a pseudo file with no parent (a memfd, a pipe, an anonymous inode) reads as its own
//!   name without a leading `/`: `memfd:name`, as the modern probe stores `d_name` when its
//!   walk wrote no component (libs `test/drivers/.../sched_process_exec.cpp`: a memfd exec's
//!   `trusted_exepath` is `memfd:malware` under the eBPF drivers).
//!
//! enforce-kill hashes the kernel's own form of an exe path: its bytes (the leading `/`
//! kept), and apart from them whether the file was detached (unlinked, a memfd) and
//! parentless (a memfd). [`kernel_forms`] lists the forms a rendered allowed path stands
//! for. (An earlier hash appended ` (deleted)` to a detached file's bytes, as
//! `/proc/<pid>/exe` does: a file actually named `<allowed> (deleted)` then hashed as the
//! allowed file unlinked.)

/// Prefix of a path the kernel could only report in part.
pub const TRUNCATED: &str = "<truncated>";

/// Suffix `d_path` (`/proc/<pid>/exe`) gives a memfd's or unlinked file's path.
pub const DELETED: &str = " (deleted)";

/// How a kernel path was reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathFlags {
    /// Only the leaf-side components were reported.
    pub truncated: bool,
    /// The file is a memfd or was unlinked (not part of the rendered value).
    pub deleted: bool,
    /// A pseudo file with no parent: the bytes are `/` and its own name.
    pub pseudo: bool,
}

/// Render path bytes (see the module docs).
pub fn render(bytes: &[u8], flags: PathFlags) -> String {
    let mut out = String::with_capacity(bytes.len() + 16);
    if flags.truncated {
        out.push_str(TRUNCATED);
    }
    let bytes = match bytes {
        [b'/', name @ ..] if flags.pseudo && !flags.truncated => name,
        b => b,
    };
    escape_into(bytes, &mut out);
    out
}

/// Render a `/proc/<pid>/exe` or `/cwd` link read at start: ` (deleted)` dropped, as
/// libsinsp's `set_exepath` drops it from the same link (a memfd's link reads
/// `/memfd:name (deleted)`, so such a process seen before start reads `/memfd:name`, as
/// in Falco), the bytes escaped as [`render_raw`] does.
pub fn render_proc_link(bytes: &[u8]) -> String {
    let b = bytes.strip_suffix(DELETED.as_bytes()).unwrap_or(bytes);
    render_raw(b)
}

/// Render bytes that are not a kernel-resolved path (a path as a process passed it):
/// the same escaping, no flags.
pub fn render_raw(bytes: &[u8]) -> String {
    render(bytes, PathFlags::default())
}

fn escape_into(bytes: &[u8], out: &mut String) {
    if let Ok(s) = std::str::from_utf8(bytes) {
        if !s.contains('\\') {
            out.push_str(s);
            return;
        }
    }
    let mut rest = bytes;
    while !rest.is_empty() {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(s) => (s, 0),
            Err(e) => {
                let (ok, _) = rest.split_at(e.valid_up_to());
                // the first `valid_up_to` bytes are valid UTF-8 by definition
                let s = std::str::from_utf8(ok).unwrap_or_default();
                (s, e.error_len().unwrap_or(rest.len() - e.valid_up_to()))
            }
        };
        for c in valid.chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        let start = valid.len();
        for b in &rest[start..start + bad] {
            out.push_str(&format!("\\x{b:02x}"));
        }
        rest = &rest[start + bad..];
    }
}

/// Whether a rendered path is one the kernel could only report in part.
pub fn is_truncated(path: &str) -> bool {
    path.starts_with(TRUNCATED)
}

/// The bytes a rendered path stands for, or `None` for a truncated path (it stands for no
/// single path) or a malformed escape.
pub fn raw_bytes(path: &str) -> Option<Vec<u8>> {
    if is_truncated(path) {
        return None;
    }
    if !path.contains('\\') {
        return Some(path.as_bytes().to_vec());
    }
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let hex = path.get(i + 2..i + 4)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 4;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// One form in which the kernel may hash an exe path (enforce-kill): the path's bytes and
/// the path flags it mixes in apart from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelForm {
    /// The bytes the kernel's walk writes (a pseudo file's name with a leading `/`).
    pub bytes: Vec<u8>,
    /// Unlinked, or a memfd (events.h `FL_PATH_DETACHED`).
    pub detached: bool,
    /// A file with no parent dentry: a memfd (`FL_PATH_PSEUDO`).
    pub pseudo: bool,
}

/// The forms the kernel may hash for an exe whose rendered path is `path` (enforce-kill):
/// an absolute path linked and unlinked (the same bytes, detached or not); a pseudo file's
/// name (no leading `/`, `memfd:name`) as `/memfd:name`, detached and parentless. Empty for
/// a truncated path or a malformed escape: such a path is never allowed. A file whose name
/// ends in ` (deleted)` is a form of that name only.
pub fn kernel_forms(path: &str) -> Vec<KernelForm> {
    let Some(b) = raw_bytes(path) else {
        return Vec::new();
    };
    if b.is_empty() {
        return Vec::new();
    }
    if b[0] != b'/' {
        let mut bytes = Vec::with_capacity(b.len() + 1);
        bytes.push(b'/');
        bytes.extend_from_slice(&b);
        return vec![KernelForm {
            bytes,
            detached: true,
            pseudo: true,
        }];
    }
    vec![
        KernelForm {
            bytes: b.clone(),
            detached: false,
            pseudo: false,
        },
        KernelForm {
            bytes: b,
            detached: true,
            pseudo: false,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: PathFlags = PathFlags {
        truncated: false,
        deleted: false,
        pseudo: false,
    };

    #[test]
    fn plain_paths_are_kept_as_they_are() {
        for p in [
            "/usr/sbin/nginx",
            "/tmp/a\nb",
            "/tmp/quote\"'",
            "/tmp/tab\t",
            "/ü/日本",
        ] {
            assert_eq!(render(p.as_bytes(), NONE), p);
            assert_eq!(raw_bytes(p).as_deref(), Some(p.as_bytes()));
        }
    }

    #[test]
    fn invalid_utf8_and_backslashes_are_escaped_injectively() {
        assert_eq!(render(b"/usr/bin/\xff", NONE), "/usr/bin/\\xff");
        assert_eq!(render(b"/usr/bin/\xfe", NONE), "/usr/bin/\\xfe");
        assert_eq!(render(b"/a\\b", NONE), "/a\\\\b");
        // a literal `\xff` in a valid name is not the byte 0xff
        assert_eq!(render(b"/usr/bin/\\xff", NONE), "/usr/bin/\\\\xff");
        assert_ne!(
            render(b"/usr/bin/\\xff", NONE),
            render(b"/usr/bin/\xff", NONE)
        );
        // valid multi-byte characters around invalid bytes survive
        assert_eq!(render("/é\u{80}".as_bytes(), NONE), "/é\u{80}");
        assert_eq!(render(b"/\xc3\xa9\xc3/x", NONE), "/é\\xc3/x");
        for raw in [
            &b"/usr/bin/\xff"[..],
            b"/a\\b",
            b"/usr/bin/\\xff",
            b"/\xc3\xa9\xc3/x",
            b"\x80\x81\\",
        ] {
            assert_eq!(
                raw_bytes(&render(raw, NONE)).as_deref(),
                Some(raw),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn every_byte_string_round_trips() {
        // all two-byte strings: render is injective and raw_bytes inverts it
        let mut seen = std::collections::HashSet::new();
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let r = render(&[a, b], NONE);
                assert_eq!(raw_bytes(&r).as_deref(), Some(&[a, b][..]), "{r}");
                assert!(seen.insert(r));
            }
        }
    }

    #[test]
    fn truncation_marks_the_value() {
        let t = PathFlags {
            truncated: true,
            ..NONE
        };
        assert_eq!(render(b"/usr/sbin/nginx", t), "<truncated>/usr/sbin/nginx");
        assert!(is_truncated(&render(b"/usr/sbin/nginx", t)));
        assert_eq!(raw_bytes("<truncated>/usr/sbin/nginx"), None);
        assert!(kernel_forms("<truncated>/usr/sbin/nginx").is_empty());
        assert!(!is_truncated("/usr/sbin/nginx"));
    }

    /// Source: libsinsp `sinsp_threadinfo::set_exepath` strips a trailing ` (deleted)`
    /// (test `sinsp_threadinfo.cpp`, "Truncate it": `no_suffix (deleted)` → `no_suffix`;
    /// `filterchecks/proc.cpp` PROC_FILTER_exepath: `/usr/bin/bad-exe (deleted)` reads
    /// `/usr/bin/bad-exe`); the modern probe's path walk never appends it.
    #[test]
    fn an_unlinked_file_reads_as_the_path_it_had() {
        let d = PathFlags {
            deleted: true,
            ..NONE
        };
        assert_eq!(render(b"/tmp/x", d), "/tmp/x");
        assert_eq!(render(b"/usr/bin/bad-exe", d), "/usr/bin/bad-exe");
        // the kill hash covers the kernel's form: both the linked and the unlinked one,
        // the same bytes told apart by the flag (a file named `/tmp/x (deleted)` is a form
        // of that name only)
        let form = |b: &[u8], detached, pseudo| KernelForm {
            bytes: b.to_vec(),
            detached,
            pseudo,
        };
        assert_eq!(
            kernel_forms("/tmp/x"),
            vec![form(b"/tmp/x", false, false), form(b"/tmp/x", true, false)]
        );
        assert_eq!(
            kernel_forms("/tmp/x (deleted)"),
            vec![
                form(b"/tmp/x (deleted)", false, false),
                form(b"/tmp/x (deleted)", true, false)
            ]
        );
    }

    /// Source: libs `test/drivers/test_suites/generic_tracepoints_suite/sched_process_exec.cpp`
    /// (a memfd exec's `trusted_exepath` is `memfd:malware` under the eBPF drivers) and
    /// `auxmap__store_d_path_approx`, which stores a parentless dentry's `d_name` alone.
    #[test]
    fn a_pseudo_file_reads_as_its_own_name() {
        let m = PathFlags {
            deleted: true,
            pseudo: true,
            ..NONE
        };
        assert_eq!(render(b"/memfd:malware", m), "memfd:malware");
        assert_eq!(render(b"/memfd:a\\b", m), "memfd:a\\\\b");
        assert_eq!(
            kernel_forms("memfd:malware"),
            vec![KernelForm {
                bytes: b"/memfd:malware".to_vec(),
                detached: true,
                pseudo: true
            }]
        );
        // a truncated pseudo path keeps its marker and slash
        let t = PathFlags {
            truncated: true,
            ..m
        };
        assert_eq!(render(b"/x", t), "<truncated>/x");
    }

    #[test]
    fn malformed_escapes_are_refused() {
        assert_eq!(raw_bytes("/a\\"), None);
        assert_eq!(raw_bytes("/a\\q"), None);
        assert_eq!(raw_bytes("/a\\xg1"), None);
        assert_eq!(raw_bytes("/a\\x1"), None);
    }

    /// Source: libsinsp `sinsp_threadinfo::set_exepath` (strips ` (deleted)`; tests in
    /// `test/classes/sinsp_threadinfo.cpp`).
    #[test]
    fn proc_links_read_at_start_drop_the_deleted_suffix() {
        assert_eq!(render_proc_link(b"/usr/bin/x (deleted)"), "/usr/bin/x");
        assert_eq!(render_proc_link(b"/memfd:m (deleted)"), "/memfd:m");
        assert_eq!(render_proc_link(b"/usr/bin/x"), "/usr/bin/x");
        assert_eq!(render_proc_link(b"/a\\b"), "/a\\\\b");
        assert_eq!(render_proc_link(b"/\xff"), "/\\xff");
    }
}
