//! The kernel's open plans are sound: a generative test.
//!
//! The probe drops in the kernel every open its plan (`Ruleset::open_plan`) says no rule
//! needs, so a rule that could fire on a dropped open would silently never fire. For many
//! generated (rule, open) pairs where the rule fires on the open, this checks that the
//! open is reported, under two oracles:
//! - **kernel**: an independent model of the kernel's decision on raw bytes (probe.bpf.c
//!   `exit_open`, probe/src/filter.rs): the plan's strings installed as they are
//!   (`as_bytes`), prefixes compared with the first 64 bytes of the resolved path, names
//!   and endings with the raw leaf (`d_name`, cut to 63 bytes), a passed path
//!   *canonical* when it starts with `/`, is shorter than 256 bytes and holds none of `//`,
//!   `/.`, `./`; truncated and pseudo paths always reported, detached ones for writes, failed
//!   opens decided on the passed string (reads, canonical, no names or endings in the
//!   plan) or reported (writes);
//! - **reports**: `OpenPlan::reports(fd.name, fd.nameraw)`, the plan's own account of it.
//!
//! Rules combine (`and`/`or`/`not`, macros, lists, exceptions) tests of every path field
//! with every string operator and transformers; literals and event paths are drawn from
//! one pool of pieces (`..`, `//`, `\xff`, backslashes, `memfd:` names, long paths…) so
//! that they match often. Deterministic: `KERNEL_PLAN_SEEDS` seeds (default 4) of
//! `KERNEL_PLAN_CASES` rules each (default 1500), every rule against 256 opens;
//! `KERNEL_PLAN_FIRST_SEED` moves the seeds. A failure is shrunk (condition parts,
//! exceptions, list items, literal characters removed while it still fails) and printed
//! with the rule's YAML, the open and the plan.

mod common;

use common::{
    boundaries, env_num, load, seed_range, shrink, shrink_groups, Atom, Bytes, Exc, ExcVal, Rhs,
    RngExt, RuleSpec, Spec, C,
};
use falco_learn_event::fields::{extract, parse_field_ref};
use falco_learn_event::path::{render, render_raw, PathFlags};
use falco_learn_event::{Args, Event, EventType, EventTypeField, Fd, FdType};
use falco_learn_rules::kernel_plan::{Access, OpenPlan};
use fastrand::Rng;
use std::collections::BTreeSet;
use std::fmt::Write as _;

// ------------------------------------------------------------------ opens

const O_WRONLY: u32 = 0o1;
const O_RDWR: u32 = 0o2;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;
const O_DIRECTORY: u32 = 0o200000;
const O_CLOEXEC: u32 = 0o2000000;

/// One open as the kernel sees it, and the event userspace makes of it.
#[derive(Debug, Clone)]
struct Open {
    typ: EventType,
    flags: u32,
    /// The opened file's path bytes and flags (`None`: the open failed).
    resolved: Option<(Vec<u8>, PathFlags)>,
    /// The path as the process passed it.
    passed: Vec<u8>,
    /// The process's working directory (rendered), for a failed relative open.
    cwd: String,
    event: Event,
}

/// `probe/src/enrich/file.rs` `normalize`: how a failed open's `fd.name` is made.
fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    let mut s = String::with_capacity(path.len());
    for c in out {
        s.push('/');
        s.push_str(c);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

impl Open {
    fn new(
        typ: EventType,
        flags: u32,
        resolved: Option<(Vec<u8>, PathFlags)>,
        passed: Vec<u8>,
        cwd: String,
    ) -> Open {
        let nameraw = render_raw(&passed);
        let name = match &resolved {
            Some((b, f)) => render(b, *f),
            None if nameraw.starts_with('/') => normalize(&nameraw),
            None => normalize(&format!("{cwd}/{nameraw}")),
        };
        let res = if resolved.is_some() { 3 } else { -2 };
        let fd = Fd {
            num: res,
            typ: if flags & O_DIRECTORY != 0 {
                FdType::Directory
            } else {
                FdType::File
            },
            name,
            nameraw: nameraw.clone(),
            ..Default::default()
        };
        let event = Event {
            ts: 1,
            typ: EventTypeField(typ),
            res,
            fd: Some(fd),
            args: Args::Open {
                name: nameraw,
                flags,
                mode: 0o644,
                dirfd: -100,
            },
            ..Default::default()
        };
        Open {
            typ,
            flags,
            resolved,
            passed,
            cwd,
            event,
        }
    }

    fn access(&self) -> Access {
        if self.typ != EventType::Creat
            && self.flags & 3 == 0
            && self.flags & (O_CREAT | O_TRUNC) == 0
        {
            Access::Read
        } else {
            Access::Write
        }
    }

    fn field(&self, name: &str) -> Option<String> {
        let f = parse_field_ref(name).ok()?;
        extract(&self.event, &f).map(|v| v.render().into_owned())
    }

    fn fd_name(&self) -> String {
        self.field("fd.name").unwrap_or_default()
    }

    fn fd_nameraw(&self) -> String {
        self.field("fd.nameraw").unwrap_or_default()
    }

    fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "  evt.type: {}, flags: {:#o}, access: {:?}",
            self.typ.as_str(),
            self.flags,
            self.access()
        );
        match &self.resolved {
            Some((b, f)) => {
                let _ = writeln!(s, "  opened: raw {:?} {:?}", Bytes(b), f);
            }
            None => {
                let _ = writeln!(s, "  failed (ENOENT), cwd {:?}", self.cwd);
            }
        }
        let _ = writeln!(s, "  passed: raw {:?}", Bytes(&self.passed));
        for f in ["fd.name", "fd.nameraw", "fd.directory", "fd.filename"] {
            let _ = writeln!(s, "  {f}: {:?}", self.field(f));
        }
        s
    }

    /// What kind of open this is, for grouping failures.
    fn category(&self) -> String {
        let mut c = Vec::new();
        match &self.resolved {
            None => c.push("failed"),
            Some((b, f)) => {
                if f.truncated {
                    c.push("truncated");
                }
                if f.pseudo {
                    c.push("pseudo");
                } else if f.deleted {
                    c.push("deleted");
                }
                if render_raw(b).contains('\\') {
                    c.push("escaped");
                }
                if b.len() > 64 {
                    c.push("long");
                }
            }
        }
        if !canonical(&self.passed) {
            c.push("noncanonical-passed");
        }
        if c.is_empty() {
            c.push("plain");
        }
        c.join("+")
    }
}

/// Raw path components: plain names, names the rendering escapes (a backslash, bytes
/// that are not UTF-8) and names that look like escapes (`ff`, `xff`, a literal `\xff`).
const COMPONENTS: &[&[u8]] = &[
    b"etc",
    b"etc",
    b"tmp",
    b"tmp",
    b"a",
    b"a",
    b"b",
    b"ssh",
    b"shadow",
    b"id_rsa",
    b"x.pem",
    b"a.",
    b".a",
    b"a..b",
    b"..a",
    b"a\\b",
    b"\\",
    b"\xff",
    b"a\xff",
    b"ff",
    b"xff",
    b"\\xff",
    b"x\\xff",
    b"\\\\",
    b"\xc3\xa9",
    b"\xe6\x97\xa5\xe6\x9c\xac",
    b"\xc3",
    b"\xfe\xff",
    b"a b",
    b"ETC",
    b"A",
    b"memfd:x",
    b"*",
    b"[a]",
    b"?",
    b"x0",
];

fn component(rng: &mut Rng, dots: bool) -> Vec<u8> {
    if dots && rng.pct(12) {
        return rng.pick(&[&b"."[..], b".."]).to_vec();
    }
    if rng.pct(4) {
        // a long name: past the kernel's 63-byte name key, or an escape near byte 64
        let n = *rng.pick(&[40usize, 57, 58, 59, 60, 61, 62, 63, 64, 70]);
        let mut c = vec![b'l'; n];
        match rng.usize(..4) {
            0 => c.push(0xff),
            1 => c.push(b'\\'),
            _ => {}
        }
        return c;
    }
    rng.pick(COMPONENTS).to_vec()
}

fn join(comps: &[Vec<u8>], absolute: bool) -> Vec<u8> {
    let mut p = Vec::new();
    for (i, c) in comps.iter().enumerate() {
        if absolute || i > 0 {
            p.push(b'/');
        }
        p.extend_from_slice(c);
    }
    if p.is_empty() {
        p.push(if absolute { b'/' } else { b'.' });
    }
    p
}

fn path_comps(rng: &mut Rng, dots: bool) -> Vec<Vec<u8>> {
    let k = *rng.weighted(&[(0usize, 4), (1, 20), (2, 35), (3, 25), (4, 16)]);
    let mut comps: Vec<Vec<u8>> = (0..k).map(|_| component(rng, dots)).collect();
    if rng.pct(8) {
        // longer than the kernel's prefix key, or than a canonical passed path
        let target = if rng.pct(60) { 70 } else { 270 };
        while join(&comps, true).len() < target {
            comps.push(component(rng, false));
        }
    }
    comps
}

fn resolved_path(rng: &mut Rng) -> (Vec<u8>, PathFlags) {
    let mut f = PathFlags::default();
    if rng.pct(9) {
        // a pseudo file: `/` and its own name
        f.pseudo = true;
        f.deleted = true;
        let names: &[&[u8]] = &[
            b"memfd:x",
            b"memfd:x",
            b"memfd:a\xff",
            b"memfd:a\\b",
            b"memfd:x.pem",
            b"memfd:",
            b"memfd:a/b",
            b"anon_inode:[eventfd]",
            b"memfd:etc",
        ];
        let name = *rng.pick(names);
        let mut b = vec![b'/'];
        b.extend_from_slice(name);
        return (b, f);
    }
    let b = join(&path_comps(rng, false), true);
    if rng.pct(3) {
        f.truncated = true;
    } else if rng.pct(5) {
        f.deleted = true;
    }
    (b, f)
}

/// The passed path of an open that resolved to `resolved`.
fn passed_for(rng: &mut Rng, resolved: &[u8], flags: PathFlags) -> Vec<u8> {
    match rng.usize(..100) {
        0..=49 => {
            if flags.pseudo || flags.truncated {
                b"/proc/self/fd/3".to_vec()
            } else {
                resolved.to_vec()
            }
        }
        50..=64 => {
            // the same file, spelt non-canonically
            let mut p = resolved.to_vec();
            let slashes: Vec<usize> = p
                .iter()
                .enumerate()
                .filter(|(_, c)| **c == b'/')
                .map(|(i, _)| i)
                .collect();
            let at = *rng.pick(&slashes);
            let all: &[&[u8]] = &[b"/", b"/.", b"/a/..", b"/./", b"/a./..", b"/."];
            let ins = *rng.pick(all);
            p.splice(at..at, ins.iter().copied());
            p
        }
        65..=74 => {
            // relative
            let rel = resolved.strip_prefix(b"/").unwrap_or(resolved).to_vec();
            let all: &[&[u8]] = &[b"", b"./", b"../", b"a/../"];
            let pre = *rng.pick(all);
            let mut p = pre.to_vec();
            p.extend(rel);
            if p.is_empty() {
                p.push(b'.');
            }
            p
        }
        75..=92 => {
            // through a symlink: another path
            let abs = rng.pct(80);
            join(&path_comps(rng, true), abs)
        }
        _ => {
            // long
            let mut p = b"/".to_vec();
            while p.len() < 260 {
                p.extend_from_slice(b"d/");
            }
            p.extend_from_slice(resolved.strip_prefix(b"/").unwrap_or(resolved));
            p
        }
    }
}

fn gen_open(rng: &mut Rng) -> Open {
    let typ = *rng.weighted(&[
        (EventType::Openat, 50),
        (EventType::Open, 20),
        (EventType::Openat2, 15),
        (EventType::Creat, 15),
    ]);
    let flags = if typ == EventType::Creat {
        O_WRONLY | O_CREAT | O_TRUNC
    } else {
        *rng.weighted(&[
            (0, 45),
            (O_CLOEXEC, 5),
            (O_DIRECTORY, 5),
            (O_WRONLY, 10),
            (O_RDWR, 8),
            (O_WRONLY | O_CREAT | O_TRUNC, 8),
            (O_CREAT, 5),
            (O_TRUNC, 3),
            (O_RDWR | O_CREAT, 5),
            (3, 2),
            (O_WRONLY | O_DIRECTORY, 2),
        ])
    };
    let cwd = render_raw(&join(&path_comps(rng, false), true));
    if rng.pct(22) {
        let passed = if rng.pct(3) {
            Vec::new()
        } else {
            let abs = rng.pct(75);
            join(&path_comps(rng, true), abs)
        };
        return Open::new(typ, flags, None, passed, cwd);
    }
    let (r, f) = resolved_path(rng);
    let passed = passed_for(rng, &r, f);
    Open::new(typ, flags, Some((r, f)), passed, cwd)
}

// ------------------------------------------------------------------ the oracles

fn has(h: &[u8], n: &[u8]) -> bool {
    h.windows(n.len()).any(|w| w == n)
}

/// The kernel's canonical passed path (see the module docs).
fn canonical(p: &[u8]) -> bool {
    p.first() == Some(&b'/') && p.len() < 256 && !has(p, b"//") && !has(p, b"/.") && !has(p, b"./")
}

/// Bytes of a prefix key, of a name key (NUL excluded).
const KEY_BYTES: usize = 64;
const NAME_KEY_BYTES: usize = 63;

/// The kernel's decision on `o` under `plan` (see the module docs): true when reported.
fn kernel_reports(plan: &OpenPlan, o: &Open) -> bool {
    let Some(prefixes) = &plan.prefixes else {
        return true;
    };
    // what the probe cannot install turns the filter off (probe/src/filter.rs)
    let bad_leaf = |n: &str| n.is_empty() || n.len() > NAME_KEY_BYTES || n.contains(['/', '\0']);
    let lens: BTreeSet<usize> = plan.suffixes.iter().map(|(x, _)| x.len()).collect();
    if plan.names.iter().any(|(n, _)| bad_leaf(n))
        || plan.suffixes.iter().any(|(n, _)| bad_leaf(n))
        || lens.len() > 4
    {
        return true;
    }
    let lpm = |key: &[u8]| {
        let key = &key[..key.len().min(KEY_BYTES)];
        prefixes.iter().any(|p| {
            let p = p.as_bytes();
            key.starts_with(&p[..p.len().min(KEY_BYTES)])
        })
    };
    let leafy = !plan.names.is_empty() || !plan.suffixes.is_empty();
    let canon = canonical(&o.passed);
    let Some((raw, f)) = &o.resolved else {
        // failed: nothing opened
        return o.access() == Access::Write || !canon || leafy || lpm(&o.passed);
    };
    // a truncated path, a pseudo file's (read-only opens too: probe.bpf.c `exit_open`)
    if f.truncated || f.pseudo {
        return true;
    }
    if o.access() == Access::Write && f.deleted {
        return true;
    }
    if !plan.noncanonical.is_empty() && !canon {
        return true;
    }
    if lpm(raw) {
        return true;
    }
    // the leaf's `d_name`
    let leaf: &[u8] = if raw.as_slice() == b"/" {
        b"/"
    } else {
        raw.rsplit(|c| *c == b'/').next().unwrap_or(raw)
    };
    let cut = &leaf[..leaf.len().min(NAME_KEY_BYTES)];
    if plan.names.iter().any(|(n, _)| n.as_bytes() == cut) {
        return true;
    }
    if plan.suffixes.is_empty() {
        return false;
    }
    if cut.len() >= NAME_KEY_BYTES {
        return true;
    }
    plan.suffixes
        .iter()
        .any(|(x, _)| x.len() <= cut.len() && cut.ends_with(x.as_bytes()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Oracle {
    /// The kernel model drops it.
    Kernel,
    /// `OpenPlan::reports` says it is dropped.
    Reports,
}

fn dropped_by(plan: &OpenPlan, o: &Open) -> Vec<Oracle> {
    let mut v = Vec::new();
    if !kernel_reports(plan, o) {
        v.push(Oracle::Kernel);
    }
    if !plan.reports(&o.fd_name(), &o.fd_nameraw()) {
        v.push(Oracle::Reports);
    }
    v
}

// ------------------------------------------------------------------ rules

/// A literal value as a Falco quoted string: every backslash and quote as `\xNN`.
pub fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '\\' | '"' | '\'' => {
                let _ = write!(o, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(o, "\\x{:02x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// One rule, its literals printed as Falco quoted strings.
fn spec(cond: C, exceptions: Vec<Exc>) -> Spec {
    Spec {
        rules: vec![RuleSpec { cond, exceptions }],
        lit: quote,
    }
}

/// Pieces of literal text (as rendered values hold them).
const PIECES: &[&str] = &[
    "/",
    "/etc",
    "/etc/",
    "/tmp/a",
    "/tmp",
    "..",
    ".",
    "./",
    "//",
    "/.",
    "/..",
    "../",
    "a.",
    ".a",
    "a..b",
    "\\xff",
    "\\\\",
    "\\",
    "ff",
    "xff",
    "f",
    "x",
    "memfd:",
    "memfd:x",
    "memfd",
    "<truncated>",
    "a",
    "b",
    "id_rsa",
    ".pem",
    "x.pem",
    "shadow",
    "ETC",
    "é",
    "/proc/self/fd/3",
    "a b",
    "a\\\\b",
    "\\xfe\\xff",
    "\\xc3",
    "",
];

#[derive(Clone, Copy, PartialEq)]
enum Derive {
    Whole,
    Prefix,
    Suffix,
    Sub,
    Piece,
}

/// A literal for a test of `field`: mostly a part of some open's value of it.
fn literal(rng: &mut Rng, pool: &[Open], field: &str, how: Derive) -> String {
    let how = if rng.pct(12) { Derive::Piece } else { how };
    if how == Derive::Piece {
        return rng.pick(PIECES).to_string();
    }
    let src = if rng.pct(80) {
        field
    } else {
        rng.pick(&["fd.name", "fd.nameraw", "fd.directory", "fd.filename"])
    };
    let o = rng.pick(pool);
    let v = o.field(src).unwrap_or_else(|| o.fd_name());
    let b = boundaries(&v);
    let s = match how {
        Derive::Whole => v.clone(),
        Derive::Prefix => {
            // at a component boundary half the time
            let slashes: Vec<usize> = v.match_indices('/').map(|(i, _)| i + 1).collect();
            let end = if !slashes.is_empty() && rng.pct(50) {
                *rng.pick(&slashes)
            } else {
                *rng.pick(&b)
            };
            v[..end].to_string()
        }
        Derive::Suffix => v[*rng.pick(&b)..].to_string(),
        Derive::Sub => {
            let i = rng.usize(..b.len());
            let j = i + rng.usize(..b.len() - i);
            v[b[i]..b[j]].to_string()
        }
        Derive::Piece => unreachable!(),
    };
    if rng.pct(4) {
        s.to_ascii_uppercase()
    } else {
        s
    }
}

/// A glob matching some of the values `lit` was drawn from.
fn globify(rng: &mut Rng, lit: &str) -> String {
    let b = boundaries(lit);
    match rng.usize(..6) {
        0 => format!("*{lit}"),
        1 => format!("{lit}*"),
        2 => format!("*{lit}*"),
        3 => {
            let at = *rng.pick(&b);
            format!("{}*{}", &lit[..at], &lit[at..])
        }
        4 if b.len() > 1 => {
            // one character as `?`
            let i = rng.usize(..b.len() - 1);
            format!("{}?{}", &lit[..b[i]], &lit[b[i + 1]..])
        }
        _ => rng
            .pick(&[
                "*..*", "*/.*", "*./*", "*//*", "*?.*", "/*./*", "*/*.", "*.?/*", "/?.", "*",
                "/etc/*", "memfd:*", "*\\xff*", "*[.]*",
            ])
            .to_string(),
    }
}

fn regex_escape(s: &str) -> String {
    let mut o = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

const PATH_FIELDS: &[(&str, usize)] = &[
    ("fd.name", 40),
    ("fd.nameraw", 20),
    ("fd.directory", 15),
    ("fd.filename", 20),
    ("evt.arg.name", 4),
];

const OPS: &[(&str, usize)] = &[
    ("=", 14),
    ("!=", 3),
    ("in", 12),
    ("intersects", 2),
    ("startswith", 15),
    ("endswith", 12),
    ("contains", 10),
    ("icontains", 3),
    ("bcontains", 2),
    ("bstartswith", 3),
    ("pmatch", 9),
    ("glob", 12),
    ("iglob", 2),
    ("regex", 2),
    ("exists", 1),
    ("<", 1),
    (">", 1),
];

fn path_atom(rng: &mut Rng, pool: &[Open], field: &'static str, op: &'static str) -> Atom {
    let transform = if rng.pct(8) {
        Some(*rng.pick(&["tolower", "toupper", "basename"]))
    } else {
        None
    };
    let lit = |rng: &mut Rng, how| literal(rng, pool, field, how);
    let rhs = match op {
        "exists" => Rhs::None,
        "=" | "!=" | "<" | ">" => {
            if rng.pct(3) {
                Rhs::Bare(format!(
                    "val({})",
                    rng.pick(&["fd.name", "fd.nameraw", "fd.directory"])
                ))
            } else {
                Rhs::One(lit(rng, Derive::Whole))
            }
        }
        "in" | "intersects" | "pmatch" => {
            let n = 1 + rng.usize(..3);
            let items = (0..n)
                .map(|_| {
                    let how = if op == "pmatch" && rng.pct(60) {
                        Derive::Prefix
                    } else {
                        Derive::Whole
                    };
                    let l = lit(rng, how);
                    if op == "pmatch" && rng.pct(15) {
                        globify(rng, &l)
                    } else {
                        l
                    }
                })
                .collect();
            Rhs::List {
                items,
                named: rng.pct(30),
            }
        }
        "startswith" | "bstartswith" => {
            let l = if field == "fd.nameraw" && rng.pct(30) {
                rng.pick(&["../", "./", "//", "/.", ".."]).to_string()
            } else {
                lit(rng, Derive::Prefix)
            };
            if op == "bstartswith" {
                Rhs::Bare(hex(&l))
            } else {
                Rhs::One(l)
            }
        }
        "endswith" => {
            if field == "fd.nameraw" && rng.pct(30) {
                Rhs::One(rng.pick(&["/..", "/.", "..", "/", "./"]).to_string())
            } else {
                Rhs::One(lit(rng, Derive::Suffix))
            }
        }
        "contains" | "icontains" | "bcontains" => {
            let l = if field == "fd.nameraw" && rng.pct(40) {
                rng.pick(&[
                    "..", "/..", "../", "./", "/./", "//", "/.", "a./", ".a", "a..",
                ])
                .to_string()
            } else {
                lit(rng, Derive::Sub)
            };
            if op == "bcontains" {
                Rhs::Bare(hex(&l))
            } else {
                Rhs::One(l)
            }
        }
        "glob" | "iglob" => {
            let how = *rng.pick(&[Derive::Whole, Derive::Prefix, Derive::Suffix, Derive::Sub]);
            let l = lit(rng, how);
            Rhs::One(globify(rng, &l))
        }
        "regex" => {
            let l = lit(rng, Derive::Sub);
            Rhs::One(format!(".*{}.*", regex_escape(&l)))
        }
        _ => unreachable!("{op}"),
    };
    Atom {
        field,
        transform,
        op,
        rhs,
    }
}

/// Tests of other fields: event types, open flags, the result.
const OTHER: &[(&str, &str, &str)] = &[
    ("evt.type", "=", "openat"),
    ("evt.type", "=", "creat"),
    ("evt.type", "!=", "creat"),
    ("evt.type", "in", "(open, openat, openat2)"),
    ("evt.type", "in", "(openat, execve)"),
    ("evt.is_open_read", "=", "true"),
    ("evt.is_open_read", "=", "false"),
    ("evt.is_open_write", "=", "true"),
    ("evt.is_open_write", "=", "false"),
    ("evt.is_open_exec", "=", "false"),
    ("evt.failed", "=", "true"),
    ("evt.failed", "=", "false"),
    ("fd.num", ">=", "0"),
    ("fd.type", "=", "directory"),
    ("fd.typechar", "=", "f"),
    ("evt.res", "=", "ENOENT"),
    ("proc.name", "=", "cat"),
];

fn other_atom(rng: &mut Rng) -> Atom {
    let (field, op, rhs) = *rng.pick(OTHER);
    Atom {
        field,
        transform: None,
        op,
        rhs: Rhs::Bare(rhs.to_string()),
    }
}

fn atom(rng: &mut Rng, pool: &[Open]) -> C {
    if rng.pct(15) {
        return C::Atom(other_atom(rng));
    }
    let field = *rng.weighted(PATH_FIELDS);
    let op = *rng.weighted(OPS);
    C::Atom(path_atom(rng, pool, field, op))
}

fn tree(rng: &mut Rng, pool: &[Open], depth: usize) -> C {
    if depth == 0 || rng.pct(45) {
        return atom(rng, pool);
    }
    match rng.usize(..100) {
        0..=39 => C::And(
            (0..2 + rng.usize(..2))
                .map(|_| tree(rng, pool, depth - 1))
                .collect(),
        ),
        40..=79 => C::Or(
            (0..2 + rng.usize(..2))
                .map(|_| tree(rng, pool, depth - 1))
                .collect(),
        ),
        80..=89 => C::Not(Box::new(tree(rng, pool, depth - 1))),
        _ => C::Macro(Box::new(tree(rng, pool, depth - 1))),
    }
}

const TYPES: &[&str] = &[
    "(open, openat, openat2)",
    "(open, openat, openat2, creat)",
    "(openat)",
    "(creat)",
    "(openat, openat2, execve)",
];

fn gen_spec(rng: &mut Rng, pool: &[Open]) -> Spec {
    let core = tree(rng, pool, 3);
    let mut parts = Vec::new();
    if rng.pct(75) {
        parts.push(C::Atom(Atom {
            field: "evt.type",
            transform: None,
            op: "in",
            rhs: Rhs::Bare(rng.pick(TYPES).to_string()),
        }));
        if rng.pct(30) {
            let field = *rng.pick(&["evt.is_open_read", "evt.is_open_write"]);
            parts.push(C::Atom(Atom {
                field,
                transform: None,
                op: "=",
                rhs: Rhs::Bare(rng.pick(&["true", "false"]).to_string()),
            }));
        }
    }
    if rng.pct(55) {
        // a test the plan can reduce, so that it filters
        let (field, op) = *rng.pick(&[
            ("fd.name", "="),
            ("fd.name", "in"),
            ("fd.name", "startswith"),
            ("fd.name", "pmatch"),
            ("fd.name", "glob"),
            ("fd.name", "endswith"),
            ("fd.directory", "="),
            ("fd.directory", "in"),
            ("fd.directory", "startswith"),
            ("fd.filename", "="),
            ("fd.filename", "in"),
            ("fd.filename", "endswith"),
            ("fd.nameraw", "contains"),
            ("fd.nameraw", "startswith"),
            ("fd.nameraw", "endswith"),
            ("fd.nameraw", "glob"),
            ("fd.nameraw", "="),
            ("fd.nameraw", "in"),
        ]);
        let mut a = path_atom(rng, pool, field, op);
        a.transform = None;
        parts.push(C::Atom(a));
    }
    parts.push(core);
    let cond = if parts.len() == 1 {
        parts.pop().unwrap_or(C::And(Vec::new()))
    } else {
        C::And(parts)
    };
    let mut exceptions = Vec::new();
    if rng.pct(20) {
        let n = 1 + rng.usize(..2);
        let fields: Vec<&'static str> = (0..n)
            .map(|_| *rng.pick(&["fd.name", "fd.nameraw", "fd.directory", "fd.filename"]))
            .collect();
        let comps: Vec<&'static str> = (0..n)
            .map(|_| {
                *rng.pick(&[
                    "=",
                    "!=",
                    "in",
                    "startswith",
                    "endswith",
                    "contains",
                    "pmatch",
                    "glob",
                ])
            })
            .collect();
        let rows = (0..1 + rng.usize(..2))
            .map(|_| {
                fields
                    .iter()
                    .zip(&comps)
                    .map(|(f, c)| {
                        let how = match *c {
                            "startswith" | "pmatch" => Derive::Prefix,
                            "endswith" => Derive::Suffix,
                            "contains" => Derive::Sub,
                            _ => Derive::Whole,
                        };
                        if matches!(*c, "in" | "pmatch") && rng.pct(50) {
                            ExcVal::Many(
                                (0..1 + rng.usize(..2))
                                    .map(|_| literal(rng, pool, f, how))
                                    .collect(),
                            )
                        } else {
                            let l = literal(rng, pool, f, how);
                            ExcVal::One(if *c == "glob" { globify(rng, &l) } else { l })
                        }
                    })
                    .collect()
            })
            .collect();
        exceptions.push(Exc {
            fields,
            comps,
            rows,
        });
    }
    spec(cond, exceptions)
}

// ------------------------------------------------------------------ checking

/// Whether `spec` fires on `o` and `oracle` says the open is dropped.
fn fails(spec: &Spec, o: &Open, oracle: Oracle) -> bool {
    let Ok(rs) = load(spec) else {
        return false;
    };
    rs.rules()[0].matches(&o.event) && dropped_by(&rs.open_plan(o.access()), o).contains(&oracle)
}

#[derive(Clone)]
struct Failure {
    seed: u64,
    case: u64,
    spec: Spec,
    open: Open,
    /// The oracles that drop it.
    oracles: Vec<Oracle>,
}

fn report(f: &Failure, count: usize) -> String {
    let rs = load(&f.spec).expect("a failing spec loads");
    let plan = rs.open_plan(f.open.access());
    format!(
        "--- dropped by {:?} ({count} shrunk failures alike; seed {}, case {}, open: {})\n{}{}  plan: {:?}\n",
        dropped_by(&plan, &f.open),
        f.seed,
        f.case,
        f.open.category(),
        f.spec.yaml(),
        f.open.describe(),
        plan
    )
}

#[derive(Default)]
struct Stats {
    rules: u64,
    skipped: u64,
    pairs: u64,
    fired: u64,
    /// Fired under a plan that filters (the check is not vacuous).
    filtered: u64,
}

fn run(seeds: std::ops::Range<u64>, cases: u64, events: usize) -> (Stats, Vec<Failure>) {
    let mut st = Stats::default();
    let mut failures = Vec::new();
    for seed in seeds {
        let mut rng = Rng::with_seed(seed);
        let pool: Vec<Open> = (0..events).map(|_| gen_open(&mut rng)).collect();
        for case in 0..cases {
            let spec = gen_spec(&mut rng, &pool);
            st.rules += 1;
            let Ok(rs) = load(&spec) else {
                st.skipped += 1;
                continue;
            };
            let plans = [rs.open_plan(Access::Read), rs.open_plan(Access::Write)];
            let rule = &rs.rules()[0];
            for o in &pool {
                st.pairs += 1;
                if !rule.matches(&o.event) {
                    continue;
                }
                st.fired += 1;
                let plan = &plans[usize::from(o.access() == Access::Write)];
                if plan.prefixes.is_some() {
                    st.filtered += 1;
                }
                let oracles = dropped_by(plan, o);
                if !oracles.is_empty() {
                    failures.push(Failure {
                        seed,
                        case,
                        spec: spec.clone(),
                        open: o.clone(),
                        oracles,
                    });
                }
            }
        }
    }
    (st, failures)
}

#[test]
fn generated_rules_never_fire_on_an_open_the_kernel_drops() {
    let seeds = seed_range("KERNEL_PLAN", 4);
    let cases = env_num("KERNEL_PLAN_CASES", 1500);
    let t0 = std::time::Instant::now();
    let (st, failures) = run(seeds, cases, 256);
    eprintln!(
        "kernel plan soundness: {} rules ({} did not load), {} pairs, {} fired ({:.1} %), \
         {} of them under a filtering plan; {} failures; {:.1?}",
        st.rules,
        st.skipped,
        st.pairs,
        st.fired,
        100.0 * st.fired as f64 / st.pairs.max(1) as f64,
        st.filtered,
        failures.len(),
        t0.elapsed()
    );
    assert!(
        st.skipped * 10 <= st.rules,
        "too many generated rules did not load: {} of {}",
        st.skipped,
        st.rules
    );
    if failures.is_empty() {
        return;
    }
    // shrink one failure per (oracles, kind of open, tests used), then group by the shrunk
    // shape
    let groups = shrink_groups(
        &failures,
        80,
        |f| (f.oracles.clone(), f.open.category(), f.spec.shape()),
        |f| Failure {
            spec: shrink(&f.spec, |s| fails(s, &f.open, f.oracles[0])),
            ..f.clone()
        },
        |f| (f.oracles.clone(), f.spec.shape()),
    );
    let by = |o: Oracle| failures.iter().filter(|f| f.oracles.contains(&o)).count();
    let mut msg = format!(
        "{} firing opens dropped ({} by the kernel model, {} by OpenPlan::reports); \
         {} distinct shrunk shapes:\n",
        failures.len(),
        by(Oracle::Kernel),
        by(Oracle::Reports),
        groups.len()
    );
    for (f, n) in groups.values() {
        msg.push_str(&report(f, *n));
    }
    panic!("{msg}");
}

// ------------------------------------------------------------------ regressions

fn rule(cond: &str) -> Spec {
    spec(C::Raw(cond.to_string()), Vec::new())
}

fn opened(typ: EventType, flags: u32, raw: &[u8], pflags: PathFlags, passed: &[u8]) -> Open {
    Open::new(
        typ,
        flags,
        Some((raw.to_vec(), pflags)),
        passed.to_vec(),
        "/".into(),
    )
}

fn read(raw: &[u8]) -> Open {
    opened(EventType::Openat, 0, raw, PathFlags::default(), raw)
}

/// The open fires the rule, and both oracles say it is reported.
fn assert_sound(cond: &str, o: &Open) {
    let spec = rule(cond);
    let rs = load(&spec).unwrap_or_else(|e| panic!("does not load: {e}\n{}", spec.yaml()));
    assert!(
        rs.rules()[0].matches(&o.event),
        "the rule does not fire:\n{}{}",
        spec.yaml(),
        o.describe()
    );
    let plan = rs.open_plan(o.access());
    let dropped = dropped_by(&plan, o);
    assert!(
        dropped.is_empty(),
        "dropped by {dropped:?}:\n{}{}  plan: {plan:?}",
        spec.yaml(),
        o.describe()
    );
}

const RD: &str = "evt.type in (open, openat, openat2) and evt.is_open_write = false";

#[test]
fn the_printer_prints_a_verbatim_condition() {
    let y = rule("evt.type = openat").yaml();
    assert!(y.contains("condition: |-\n    evt.type = openat\n"), "{y}");
    assert!(load(&rule(&format!("{RD} and fd.name = {}", quote("/a\\b\"'")))).is_ok());
    let o = read(b"/a\\b\"'");
    let rs = load(&rule(&format!(
        "{RD} and fd.name = {}",
        quote("/a\\\\b\"'")
    )))
    .unwrap();
    assert!(rs.rules()[0].matches(&o.event));
}

/// A rendered value escapes the bytes the kernel compares raw: a prefix holding `\xNN` or
/// `\\` matches no raw path. Sound: the prefix cut before its first backslash.
#[test]
fn prefixes_with_escapes_are_cut_before_the_backslash() {
    let o = read(b"/tmp/a\xff/x");
    assert_sound(
        &format!("{RD} and fd.name startswith {}", quote("/tmp/a\\xff")),
        &o,
    );
    assert_sound(
        &format!("{RD} and fd.name = {}", quote("/tmp/a\\xff/x")),
        &o,
    );
    assert_sound(
        &format!("{RD} and fd.directory = {}", quote("/tmp/a\\xff")),
        &o,
    );
    assert_sound(
        &format!("{RD} and fd.name pmatch ({})", quote("/tmp/a\\xff")),
        &o,
    );
    assert_sound(
        &format!("{RD} and fd.name glob {}", quote("/tmp/a\\\\xff/*")),
        &o,
    );
    let o = read(b"/tmp/a\\b");
    assert_sound(&format!("{RD} and fd.name = {}", quote("/tmp/a\\\\b")), &o);
}

/// A pseudo file renders `memfd:x` but the kernel's key is `/memfd:x`. Sound: such a
/// value as `/` + it (or no prefix at all).
#[test]
fn pseudo_files_are_keyed_with_their_slash() {
    let pseudo = PathFlags {
        pseudo: true,
        deleted: true,
        truncated: false,
    };
    let o = opened(
        EventType::Openat,
        0,
        b"/memfd:x",
        pseudo,
        b"/proc/self/fd/3",
    );
    assert_sound(&format!("{RD} and fd.name = memfd:x"), &o);
    assert_sound(&format!("{RD} and fd.name startswith memfd:"), &o);
    assert_sound(&format!("{RD} and fd.name glob 'memfd:*'"), &o);
    assert_sound(&format!("{RD} and fd.name in (memfd:x, /etc)"), &o);
}

/// An ending or a name of the rendered leaf may end inside an escape (`\xff` of the byte
/// 0xff) or hold `\\`: the kernel compares the raw leaf. Sound: endings trimmed of any
/// possible `\xNN` tail (and of backslashes); names with a backslash constrain nothing.
#[test]
fn endings_and_names_of_escaped_leaves() {
    let o = read(b"/tmp/a\xff");
    assert_sound(&format!("{RD} and fd.name endswith ff"), &o);
    assert_sound(&format!("{RD} and fd.name endswith xff"), &o);
    assert_sound(
        &format!("{RD} and fd.filename endswith {}", quote("\\xff")),
        &o,
    );
    assert_sound(&format!("{RD} and fd.filename = {}", quote("a\\xff")), &o);
    let o = read(b"/tmp/a\\b");
    assert_sound(&format!("{RD} and fd.filename = {}", quote("a\\\\b")), &o);
    assert_sound(&format!("{RD} and fd.name endswith {}", quote("\\\\b")), &o);
}

/// `..` inside a component (`/a..b`) is canonical: `fd.nameraw contains ".."` does not
/// need non-canonical opens only. Sound: only `/..`, `../` (and `/.`, `./`, `//`) do.
#[test]
fn two_dots_in_a_name_are_canonical() {
    let o = read(b"/tmp/a..b");
    assert_sound(&format!("{RD} and fd.nameraw contains .."), &o);
    assert_sound(
        &format!("{RD} and fd.nameraw endswith .."),
        &read(b"/tmp/a.."),
    );
}

/// A glob's literal runs are separate: `*/*.` needs no `/.` in the passed path
/// (`/a/b.`), nor `/?.` (`/x.`). Sound: look for `/.`, `./`, `//` within one run.
#[test]
fn glob_literal_runs_are_not_joined() {
    assert_sound(
        &format!("{RD} and fd.nameraw glob '*/*.'"),
        &read(b"/tmp/b."),
    );
    assert_sound(&format!("{RD} and fd.nameraw glob '/?.'"), &read(b"/x."));
}

/// `a./b` holds `./`: the kernel counts such a passed path as not canonical, since
/// `fd.nameraw contains "./"` (or `"../"`) holds for it.
#[test]
fn a_dot_before_a_slash_is_not_canonical() {
    assert_sound(
        &format!("{RD} and fd.nameraw contains ./"),
        &read(b"/tmp/a./b"),
    );
    assert_sound(
        &format!("{RD} and fd.nameraw contains ../"),
        &read(b"/tmp/a../b"),
    );
}

/// A literal whose part before its first wildcard or escape is empty (a glob opening with
/// `*`, `?`, `[…]` or `\`; `startswith ""`) bounds nothing: every path starts with it.
/// Sound: the prefix `/` (every path), not no prefix at all (which drops every open).
#[test]
fn an_empty_literal_prefix_bounds_nothing() {
    let o = read(b"/home/u/key.pem");
    assert_sound(&format!("{RD} and fd.name glob '*.pem'"), &o);
    assert_sound(&format!("{RD} and fd.name glob '?home/*'"), &o);
    assert_sound(&format!("{RD} and fd.name glob '[/]home/*'"), &o);
    assert_sound(&format!("{RD} and fd.name glob {}", quote("\\/home/*")), &o);
    assert_sound(&format!("{RD} and fd.name startswith ''"), &o);
    assert_sound(&format!("{RD} and fd.directory startswith ''"), &o);
    // a write-open and a failed one alike
    let w = opened(
        EventType::Openat,
        O_WRONLY,
        b"/home/u/key.pem",
        PathFlags::default(),
        b"/home/u/key.pem",
    );
    assert_sound("evt.type = openat and fd.name glob '*.pem'", &w);
    let f = Open::new(
        EventType::Openat,
        0,
        None,
        b"/home/u/key.pem".to_vec(),
        "/".into(),
    );
    assert_sound(&format!("{RD} and fd.name glob '*.pem'"), &f);
}
