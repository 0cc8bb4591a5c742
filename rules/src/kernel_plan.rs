//! What the kernel must report for the loaded rules: the path prefixes of opens.
//!
//! Two plans are derived the same way: one for read-only opens ([`Ruleset::read_open_plan`]:
//! the kernel drops the others), one for opens for writing ([`Ruleset::write_open_plan`]:
//! in the enforce modes the kernel drops a write-open outside them when the container's
//! profile allows it; see the probe's `filter` module).
//!
//! The probe drops read-only opens in the kernel unless the opened file's path falls under
//! one of a set of prefixes (an LPM trie, decided on the resolved path). Those prefixes are
//! derived here from the compiled conditions, never kept by hand, so that a rule about reads
//! of `/opt/app/secret.key` makes the kernel report exactly those reads.
//!
//! For each enabled rule that can see an open, [`necessary`] computes a set of path prefixes
//! such that the condition can only be true for a read-only open whose `fd.name` starts with
//! one of them:
//! - a test on `fd.name` with `=`, `in`, `startswith`, `pmatch`, `glob` (its literal part
//!   before the first `*`, `?` or `[`), or on `fd.directory` with `=`/`in`, gives its values;
//! - `and` takes the intersection of its constrained children (a path under a prefix of each);
//!   `or` the union, unconstrained if one child is;
//! - `evt.type` tests that exclude every open type, `evt.is_open_write = true` and `false`
//!   constants make a branch impossible for a read-only open;
//! - everything else (negations, `contains`, `endswith`, regexes, transformers, other fields)
//!   constrains nothing.
//!
//! The kernel compares bytes, `fd.name` is rendered (`falco_learn_event::path`): a literal is
//! cut before its first backslash (an escape: `\\`, `\xNN`), a file name with one is not
//! compared, an ending is cut after a possible escape's tail, and a value without a leading
//! `/` (a memfd's `memfd:x`, `<truncated>/…`) asks nothing: the kernel reports those opens.
//!
//! A test on `fd.nameraw` that only a passed path the kernel counts as not canonical can
//! pass (one holding `//`, `/.` or `./`, or relative: `contains "../"`, `glob "*../*"`,
//! `startswith "."`; not `contains ".."`, which `/a..b` passes) needs the opens whose passed
//! path is not canonical: the kernel reports those whatever their prefix. A rule whose condition
//! leaves reads unconstrained turns the filter off: the plan then has no prefixes (every
//! read-only open is reported) and names the rules that did it.

use crate::compile::{Cond, Lit, Node, TypeMask};
use crate::Ruleset;
use falco_learn_event::fields::{FieldArg, FieldId, FieldRef};
use falco_learn_event::EventType;

/// Which opens a plan is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read-only: access mode `O_RDONLY`, neither `O_CREAT` nor `O_TRUNC`.
    Read,
    /// Every other open (and `creat`).
    Write,
}

/// Open types a rule may see for `access` (creat always writes).
fn open_types(access: Access) -> TypeMask {
    let t: &[EventType] = match access {
        Access::Read => &[EventType::Open, EventType::Openat, EventType::Openat2],
        Access::Write => &[
            EventType::Open,
            EventType::Openat,
            EventType::Openat2,
            EventType::Creat,
        ],
    };
    t.iter().fold(0, |m, t| m | (1u64 << t.index()))
}

/// The kernel's prefix keys hold at most this many bytes: a longer prefix is cut there
/// (which only widens what is reported).
pub const MAX_PREFIX_BYTES: usize = 64;

/// What the loaded rules need of read-only opens.
pub type ReadOpenPlan = OpenPlan;

/// What the loaded rules need of one kind of open ([`Access`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPlan {
    /// Path prefixes whose opens the kernel must report, sorted, none covered by
    /// another; `None`: every open of the kind (the filter is off).
    pub prefixes: Option<Vec<String>>,
    /// Per prefix, the rules that need it (same order as `prefixes`).
    pub needed_by: Vec<Vec<String>>,
    /// File names (`fd.filename`) whose opens the kernel must report wherever they are,
    /// sorted, with the rules that need each (empty when the filter is off).
    pub names: Vec<(String, Vec<String>)>,
    /// File-name endings (`fd.name endswith x`, x without `/`) whose opens the kernel must
    /// report, with the rules that need each.
    pub suffixes: Vec<(String, Vec<String>)>,
    /// Rules that need opens whose passed path is not canonical (relative, or holding
    /// `//`, `/.` or `./`: they test `fd.nameraw` for those): the kernel reports those too.
    pub noncanonical: Vec<String>,
    /// Rules whose condition could not be reduced to path prefixes (they turn the filter off).
    pub unconstrained: Vec<String>,
}

impl OpenPlan {
    /// The file names of [`OpenPlan::names`], without the rules.
    pub fn name_list(&self) -> Vec<String> {
        self.names.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Whether the kernel reports an open of the file at `path` (the resolved path, as
    /// `fd.name` holds it) passed as `passed` (`fd.nameraw`) under this plan: the
    /// kernel's decision in userspace terms, for tests and tools. Prefixes are compared on
    /// their first [`MAX_PREFIX_BYTES`] bytes, like the kernel's key.
    pub fn reports(&self, path: &str, passed: &str) -> bool {
        use falco_learn_event::path::raw_bytes;
        let Some(prefixes) = &self.prefixes else {
            return true;
        };
        // the kernel compares bytes: a pseudo file's or a truncated path (rendered without
        // a leading `/`) is always reported
        let Some(path) = raw_bytes(path).filter(|p| p.first() == Some(&b'/')) else {
            return true;
        };
        let canonical = raw_bytes(passed)
            .is_some_and(|p| p.first() == Some(&b'/') && p.len() < 256 && !holds_noncanonical(&p));
        if !self.noncanonical.is_empty() && !canonical {
            return true;
        }
        let key = &path[..path.len().min(MAX_PREFIX_BYTES)];
        let leaf = path.rsplit(|&c| c == b'/').next().unwrap_or(&path);
        prefixes.iter().any(|p| key.starts_with(p.as_bytes()))
            || self.names.iter().any(|(n, _)| n.as_bytes() == leaf)
            || self
                .suffixes
                .iter()
                .any(|(x, _)| leaf.ends_with(x.as_bytes()))
    }

    /// The endings of [`OpenPlan::suffixes`], without the rules.
    pub fn suffix_list(&self) -> Vec<String> {
        self.suffixes.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// A necessary condition on a read-only open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// The condition is never true for a read-only open.
    Never,
    /// True only when `fd.name` starts with one of `prefixes`, or `fd.filename` is one of
    /// `names`, or (with `noncanonical`) when the path the process passed is not canonical
    /// (relative, `.`/`..`, `//`).
    Constraint {
        prefixes: Vec<String>,
        names: Vec<String>,
        /// File-name endings: true only when the file's name ends with one of them.
        suffixes: Vec<String>,
        noncanonical: bool,
    },
    /// No constraint could be derived.
    Any,
}

fn prefixes(p: Vec<String>) -> Need {
    Need::Constraint {
        prefixes: p,
        names: Vec::new(),
        suffixes: Vec::new(),
        noncanonical: false,
    }
}

/// The kernel compares a file name of at most this many bytes (`struct name_key`); a
/// rule naming a longer one constrains nothing.
pub const MAX_NAME_BYTES: usize = 63;

/// The kernel's maps hold at most this many path prefixes, file names and file-name endings
/// each (probe.bpf.c `OPEN_PREFIXES`, `WRITE_PREFIXES`, `LEAF_NAMES`, `LEAF_SUFFIXES`); the
/// rules that ask for more turn the filter off and are named as unconstrained.
pub const MAX_ENTRIES: usize = 1024;

/// The kernel compares file-name endings of at most this many distinct lengths; more turn
/// the filter off (the rules that asked are named as unconstrained).
pub const MAX_SUFFIX_LENGTHS: usize = 4;

fn suffixes(x: &str) -> Need {
    let Some(x) = raw_ending(x) else {
        return Need::Any;
    };
    if x.is_empty() || x.len() > MAX_NAME_BYTES || x.contains('/') {
        return Need::Any;
    }
    Need::Constraint {
        prefixes: Vec::new(),
        names: Vec::new(),
        suffixes: vec![x.to_string()],
        noncanonical: false,
    }
}

/// An ending of a rendered file name as an ending of the name's bytes, which the kernel
/// compares. The rendering (`falco_learn_event::path`) keeps the bytes except inside its
/// escapes (`\\`, `\xNN`): an ending with a backslash is no byte ending (`None`), and one
/// that may start inside an escape (`xNN…`, `NN…`, `N…` with hex `N`) is cut after that part
/// (a shorter ending only widens what is reported).
fn raw_ending(x: &str) -> Option<&str> {
    if x.contains('\\') {
        return None;
    }
    let b = x.as_bytes();
    let hex = |i: usize| b.get(i).is_some_and(u8::is_ascii_hexdigit);
    let skip = if b.first() == Some(&b'x') && hex(1) && hex(2) {
        3
    } else if hex(0) && hex(1) {
        2
    } else {
        usize::from(hex(0))
    };
    // the skipped bytes are ASCII
    Some(&x[skip.min(x.len())..])
}

fn names(v: Vec<String>) -> Need {
    // a rendered name with a backslash is escaped: the kernel compares other bytes
    if v.iter()
        .any(|n| n.is_empty() || n.len() > MAX_NAME_BYTES || n.contains('/') || n.contains('\\'))
    {
        return Need::Any;
    }
    let mut v = v;
    v.sort();
    v.dedup();
    Need::Constraint {
        prefixes: Vec::new(),
        names: v,
        suffixes: Vec::new(),
        noncanonical: false,
    }
}

/// Path prefixes of rendered `fd.name` values as the kernel compares them (the resolved
/// path's bytes, on at most [`MAX_PREFIX_BYTES`]):
/// - the rendering keeps the bytes up to its first escape (`\\`, `\xNN`): a prefix is cut
///   before its first backslash;
/// - an empty prefix (a glob starting with a wildcard) is every path;
/// - any other value not starting with `/` is a pseudo file's (`memfd:x`: the kernel's bytes are
///   `/memfd:x`) or a truncated path (`<truncated>/…`): the kernel reports every open of
///   those, so such a prefix asks nothing of the filter and is left out.
fn path_prefixes(v: Vec<String>) -> Need {
    prefixes(normalise(
        v.iter()
            .map(|p| p.split('\\').next().unwrap_or_default())
            // an empty cut (`glob '*.pem'`, `startswith ""`) bounds nothing: every path
            .filter(|p| p.is_empty() || p.starts_with('/'))
            .map(cut)
            .collect(),
    ))
}

/// Whether a passed path holding `x` is one the kernel counts as not canonical (its
/// `canonical_path`: absolute, under 256 bytes, without `//`, `/.` and `./`). The rendering
/// keeps `/` and `.` as they are, so the rendered text tells as the bytes do.
fn holds_noncanonical(x: impl AsRef<[u8]>) -> bool {
    let x = x.as_ref();
    [b"//", b"/.", b"./"]
        .iter()
        .any(|p| x.windows(2).any(|w| w == *p))
}

/// Whether a passed path equal to `x` (not empty) is not canonical: relative, or holding
/// `//`, `/.`, `./` (the length apart).
fn only_noncanonical_equal(x: impl AsRef<[u8]>) -> bool {
    let x = x.as_ref();
    !x.is_empty() && (x[0] != b'/' || holds_noncanonical(x))
}

/// Whether every passed path a glob (`fnmatch(3)` without flags) matches is not canonical:
/// one of its literal runs (between `*`, `?`, `[…]`; `\c` is `c`) holds `//`, `/.` or
/// `./`, or it starts with a literal character other than `/` (a relative path).
fn glob_needs_noncanonical(g: &[char]) -> bool {
    let mut run = String::new();
    let mut i = 0;
    while i < g.len() {
        match g[i] {
            '*' | '?' => {
                if holds_noncanonical(&run) {
                    return true;
                }
                run.clear();
                i += 1;
            }
            '[' => {
                if holds_noncanonical(&run) {
                    return true;
                }
                run.clear();
                // a bracket expression ends at the first `]` after its first member (`[]]`,
                // `[!]]`); without one the rest is not looked at (`[` alone is literal)
                let first = if matches!(g.get(i + 1), Some('!' | '^')) {
                    i + 2
                } else {
                    i + 1
                };
                match g.iter().skip(first + 1).position(|&c| c == ']') {
                    Some(k) => i = first + 1 + k + 1,
                    None => return false,
                }
            }
            '\\' => {
                match g.get(i + 1) {
                    Some(&c) => run.push(c),
                    None => run.push('\\'),
                }
                i += 2;
            }
            c => {
                if i == 0 && c != '/' {
                    return true;
                }
                run.push(c);
                i += 1;
            }
        }
    }
    holds_noncanonical(&run)
}

fn literal_prefix(glob: &[char]) -> String {
    glob.iter()
        .take_while(|c| !matches!(c, '*' | '?' | '[' | '\\'))
        .collect()
}

/// What every path a `pmatch` item matches starts with: its components up to the
/// first glob one (`/srv/*/private` → `/srv/`, `etc//` → `/etc`, `/` → `/`).
fn pmatch_prefix(item: &str) -> String {
    let mut out = String::new();
    for c in crate::pmatch::components(item) {
        out.push('/');
        if crate::pmatch::is_glob_component(c) {
            out.push_str(&literal_prefix(&c.chars().collect::<Vec<_>>()));
            return out;
        }
        out.push_str(c);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn cut(s: &str) -> String {
    if s.len() <= MAX_PREFIX_BYTES {
        return s.to_string();
    }
    let mut end = MAX_PREFIX_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Strings that start with a prefix of `a` and one of `b`: the longer of each compatible pair.
fn intersect(a: &[String], b: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for x in a {
        for y in b {
            if x.starts_with(y.as_str()) {
                out.push(x.clone());
            } else if y.starts_with(x.as_str()) {
                out.push(y.clone());
            }
        }
    }
    normalise(out)
}

/// Sorted, deduplicated, and without prefixes covered by a shorter one.
fn normalise(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    let mut out: Vec<String> = Vec::with_capacity(v.len());
    for p in v {
        // sorted: a covering prefix sorts right before what it covers
        if out.last().is_some_and(|q| p.starts_with(q.as_str())) {
            continue;
        }
        out.push(p);
    }
    out
}

/// Open flags a read-only open ([`Access::Read`]) never shows in `evt.arg.flags`.
const NOT_READ_ONLY_FLAGS: [&str; 4] = ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"];

fn test_need(field: &FieldRef, transformed: bool, cond: &Cond, access: Access) -> Need {
    if transformed {
        return Need::Any;
    }
    match field.id {
        // `evt.arg.flags contains O_CREAT` (generated allowlists, Falco's open_write-like
        // macros): a read-only open's rendered flags hold none of these names
        FieldId::EvtArg
            if access == Access::Read && matches!(&field.arg, FieldArg::Key(k) if k == "flags") =>
        {
            match cond {
                Cond::Contains(x) | Cond::Eq(Lit { text: x, .. })
                    if NOT_READ_ONLY_FLAGS.iter().any(|f| x.contains(f)) =>
                {
                    Need::Never
                }
                _ => Need::Any,
            }
        }
        FieldId::FdName => match cond {
            Cond::Eq(l) => path_prefixes(vec![l.text.clone()]),
            Cond::In { strs, .. } => path_prefixes(strs.iter().cloned().collect()),
            Cond::StartsWith(s) => path_prefixes(vec![s.clone()]),
            Cond::Pmatch(set) => {
                path_prefixes(set.items.iter().map(|d| pmatch_prefix(d)).collect())
            }
            Cond::Glob(g) => path_prefixes(vec![literal_prefix(g)]),
            // an ending without `/` is the file name's ending
            Cond::EndsWith(x) => suffixes(x),
            _ => Need::Any,
        },
        FieldId::FdDirectory => match cond {
            Cond::Eq(l) => path_prefixes(vec![l.text.clone()]),
            Cond::In { strs, .. } => path_prefixes(strs.iter().cloned().collect()),
            Cond::StartsWith(s) => path_prefixes(vec![s.clone()]),
            _ => Need::Any,
        },
        // the leaf's name, compared whole by the kernel
        FieldId::FdFilename => match cond {
            Cond::Eq(l) => names(vec![l.text.clone()]),
            Cond::In { strs, .. } => names(strs.iter().cloned().collect()),
            Cond::EndsWith(x) => suffixes(x),
            _ => Need::Any,
        },
        // tests only a passed path the kernel counts as not canonical can pass
        FieldId::FdNameRaw => {
            let needs = match cond {
                Cond::Contains(x) | Cond::EndsWith(x) => holds_noncanonical(x),
                Cond::StartsWith(x) => {
                    holds_noncanonical(x) || x.chars().next().is_some_and(|c| c != '/')
                }
                Cond::Eq(l) => only_noncanonical_equal(&l.text),
                Cond::In { strs, nums, .. } => {
                    nums.is_empty() && !strs.is_empty() && strs.iter().all(only_noncanonical_equal)
                }
                Cond::Glob(g) => glob_needs_noncanonical(g),
                _ => false,
            };
            if needs {
                Need::Constraint {
                    prefixes: Vec::new(),
                    names: Vec::new(),
                    suffixes: Vec::new(),
                    noncanonical: true,
                }
            } else {
                Need::Any
            }
        }
        // a write-open may read too (O_RDWR) and an O_CREAT|O_RDONLY one is no
        // `is_open_write`: for writes these tests constrain nothing
        FieldId::EvtIsOpenWrite if access == Access::Read => match cond {
            Cond::Eq(l) if l.boolean == Some(true) => Need::Never,
            _ => Need::Any,
        },
        _ => Need::Any,
    }
}

/// The necessary path condition of `node` for a read-only open (see the module docs).
pub fn necessary(node: &Node) -> Need {
    necessary_for(node, Access::Read)
}

/// The necessary path condition of `node` for an open of kind `access`.
pub fn necessary_for(node: &Node, access: Access) -> Need {
    let types = || open_types(access);
    match node {
        Node::Const(false) => Need::Never,
        Node::Const(true) => Need::Any,
        Node::Types(mask) => {
            if mask & types() == 0 {
                Need::Never
            } else {
                Need::Any
            }
        }
        Node::Not(inner) => match inner.as_ref() {
            Node::Types(mask) if mask & types() == types() => Need::Never,
            Node::Const(true) => Need::Never,
            _ => Need::Any,
        },
        Node::Test(t) => test_need(&t.lhs.field, !t.lhs.transforms.is_empty(), &t.cond, access),
        Node::And(children) => {
            // any constrained child is a valid necessary condition; path prefixes are
            // intersected (a path under a prefix of each), and preferred to the
            // non-canonical one when both exist
            let mut acc: Option<Vec<String>> = None;
            let mut other: Option<Need> = None;
            for c in children.iter() {
                match necessary_for(c, access) {
                    Need::Never => return Need::Never,
                    Need::Any => {}
                    Need::Constraint {
                        prefixes: p,
                        names,
                        suffixes,
                        noncanonical: false,
                    } if names.is_empty() && suffixes.is_empty() => {
                        acc = Some(match acc {
                            None => p,
                            Some(a) => intersect(&a, &p),
                        });
                    }
                    n => {
                        if other.is_none() {
                            other = Some(n);
                        }
                    }
                }
            }
            match (acc, other) {
                (Some(p), _) if p.is_empty() => Need::Never,
                (Some(p), _) => prefixes(p),
                (None, Some(n)) => n,
                (None, None) => Need::Any,
            }
        }
        Node::Or(children) => {
            let mut all = Vec::new();
            let mut all_names = Vec::new();
            let mut all_suffixes = Vec::new();
            let mut noncanon = false;
            let mut possible = false;
            for c in children.iter() {
                match necessary_for(c, access) {
                    Need::Never => {}
                    Need::Any => return Need::Any,
                    Need::Constraint {
                        prefixes: p,
                        names: n,
                        suffixes: x,
                        noncanonical,
                    } => {
                        possible = true;
                        noncanon |= noncanonical;
                        all.extend(p);
                        all_names.extend(n);
                        all_suffixes.extend(x);
                    }
                }
            }
            if possible {
                all_names.sort();
                all_names.dedup();
                all_suffixes.sort();
                all_suffixes.dedup();
                Need::Constraint {
                    prefixes: normalise(all),
                    names: all_names,
                    suffixes: all_suffixes,
                    noncanonical: noncanon,
                }
            } else {
                Need::Never
            }
        }
    }
}

/// The rules to name when the entries of `by_key` (entry → the rules that need it), counted
/// by `count`, are more than the kernel's map holds ([`MAX_ENTRIES`]): those asking for the
/// most, taken until what the others ask for fits. Empty when everything fits.
fn over_capacity(
    by_key: &std::collections::BTreeMap<String, Vec<String>>,
    count: impl Fn(Vec<String>) -> usize,
) -> Vec<String> {
    let mut per_rule: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in by_key.values().flatten() {
        *per_rule.entry(r).or_default() += 1;
    }
    let mut order: Vec<(&str, usize)> = per_rule.into_iter().collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut out: Vec<String> = Vec::new();
    for (r, _) in order {
        let rest: Vec<String> = by_key
            .iter()
            .filter(|(_, v)| v.iter().any(|x| !out.contains(x)))
            .map(|(k, _)| k.clone())
            .collect();
        if count(rest) <= MAX_ENTRIES {
            break;
        }
        out.push(r.to_string());
    }
    out
}

/// The syscalls whose events the loaded rules and profiles need, sorted; every other
/// syscall program stays detached. `types` is a mask over [`EventType::index`]. Execs
/// (`execve`, `execveat`), forks and exits come from the scheduler's tracepoints, always
/// attached: no syscall of theirs is hooked.
pub fn syscalls_for(types: TypeMask) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = EventType::ALL
        .iter()
        .filter(|t| types & (1u64 << t.index()) != 0)
        .filter_map(|t| t.syscall())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

impl Ruleset {
    /// The event types the enabled rules can match (a mask over [`EventType::index`]).
    pub fn event_types_needed(&self) -> TypeMask {
        self.rules()
            .iter()
            .filter(|r| r.enabled)
            .fold(0, |m, r| m | r.evttypes)
    }

    /// The read-only open prefixes the enabled rules need (see the module docs).
    pub fn read_open_plan(&self) -> OpenPlan {
        self.open_plan(Access::Read)
    }

    /// The write-open prefixes the enabled rules need: a write-open outside them can match
    /// no enabled rule.
    pub fn write_open_plan(&self) -> OpenPlan {
        self.open_plan(Access::Write)
    }

    /// The prefixes of opens of kind `access` the enabled rules need.
    pub fn open_plan(&self, access: Access) -> OpenPlan {
        let mut by_prefix: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        let mut unconstrained = Vec::new();
        let mut noncanonical = Vec::new();
        let mut by_name: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        let mut by_suffix: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for r in self.rules().iter().filter(|r| r.enabled) {
            if r.evttypes & open_types(access) == 0 {
                continue;
            }
            match necessary_for(r.condition(), access) {
                Need::Never => {}
                Need::Any => unconstrained.push(r.name.clone()),
                Need::Constraint {
                    prefixes: p,
                    names,
                    suffixes,
                    noncanonical: n,
                } => {
                    for x in suffixes {
                        by_suffix.entry(x).or_default().push(r.name.clone());
                    }
                    if n {
                        noncanonical.push(r.name.clone());
                    }
                    for x in names {
                        by_name.entry(x).or_default().push(r.name.clone());
                    }
                    for x in p {
                        by_prefix.entry(x).or_default().push(r.name.clone());
                    }
                }
            }
        }
        // the kernel compares endings of at most MAX_SUFFIX_LENGTHS distinct lengths
        let lengths: std::collections::BTreeSet<usize> =
            by_suffix.keys().map(String::len).collect();
        if lengths.len() > MAX_SUFFIX_LENGTHS {
            unconstrained.extend(by_suffix.values().flatten().cloned());
        }
        // and holds at most MAX_ENTRIES prefixes, names and endings of each kind
        unconstrained.extend(over_capacity(&by_suffix, |v| v.len()));
        unconstrained.extend(over_capacity(&by_name, |v| v.len()));
        unconstrained.extend(over_capacity(&by_prefix, |v| normalise(v).len()));
        unconstrained.sort();
        unconstrained.dedup();
        if !unconstrained.is_empty() {
            return OpenPlan {
                prefixes: None,
                needed_by: Vec::new(),
                names: Vec::new(),
                suffixes: Vec::new(),
                noncanonical,
                unconstrained,
            };
        }
        let prefixes = normalise(by_prefix.keys().cloned().collect());
        let needed_by = prefixes
            .iter()
            .map(|p| {
                let mut names: Vec<String> = by_prefix
                    .iter()
                    .filter(|(k, _)| k.starts_with(p.as_str()))
                    .flat_map(|(_, v)| v.iter().cloned())
                    .collect();
                names.sort();
                names.dedup();
                names
            })
            .collect();
        OpenPlan {
            prefixes: Some(prefixes),
            needed_by,
            names: by_name.into_iter().collect(),
            suffixes: by_suffix.into_iter().collect(),
            noncanonical,
            unconstrained,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rules: &str) -> ReadOpenPlan {
        let (rs, report) = Ruleset::load_sources(&[("t.yaml", rules)]);
        assert!(report.errors.is_empty(), "{report}");
        rs.read_open_plan()
    }

    fn rule(name: &str, cond: &str) -> String {
        format!("- rule: {name}\n  desc: d\n  condition: {cond}\n  output: o %fd.name\n  priority: WARNING\n")
    }

    const OPEN_READ: &str = "evt.type in (open, openat, openat2) and evt.is_open_read = true";

    /// `pmatch` compares components (src/pmatch.rs): the prefix is the item's
    /// normalised components up to the first glob one, so every path it matches
    /// starts with it.
    #[test]
    fn pmatch_prefixes_follow_component_matching() {
        let p = plan(&rule(
            "a",
            &format!("{OPEN_READ} and fd.name pmatch (etc//ssh/, /srv/a\\*b/x, /var/lib/db[0-9])"),
        ));
        assert_eq!(
            p.prefixes,
            Some(vec![
                "/etc/ssh".to_string(),
                "/srv/a".to_string(),
                "/var/lib/db".to_string()
            ])
        );
        let p = plan(&rule("r", &format!("{OPEN_READ} and fd.name pmatch (/)")));
        assert_eq!(p.prefixes, Some(vec!["/".to_string()]));
    }

    #[test]
    fn a_custom_read_rule_adds_its_path() {
        let p = plan(&rule(
            "Secret read",
            &format!("{OPEN_READ} and fd.name = /opt/app/secret.key"),
        ));
        assert_eq!(p.prefixes, Some(vec!["/opt/app/secret.key".to_string()]));
        assert_eq!(p.needed_by, vec![vec!["Secret read".to_string()]]);
    }

    #[test]
    fn every_operator_that_bounds_a_path() {
        let r = [
            rule(
                "a",
                &format!("{OPEN_READ} and fd.name in (/etc/shadow, /etc/gshadow)"),
            ),
            rule("b", &format!("{OPEN_READ} and fd.name startswith /root/")),
            rule(
                "c",
                &format!("{OPEN_READ} and fd.name pmatch (/srv/*/private, /var/lib/x)"),
            ),
            rule(
                "d",
                &format!("{OPEN_READ} and fd.name glob '/home/*/.ssh/*'"),
            ),
            rule(
                "e",
                &format!("{OPEN_READ} and fd.directory in (/etc/pam.d)"),
            ),
            rule(
                "f",
                &format!("{OPEN_READ} and (fd.name startswith /proc/ or fd.name = /dev/mem)"),
            ),
        ]
        .concat();
        assert_eq!(
            plan(&r).prefixes,
            Some(
                [
                    "/dev/mem",
                    "/etc/gshadow",
                    "/etc/pam.d",
                    "/etc/shadow",
                    "/home/",
                    "/proc/",
                    "/root/",
                    "/srv/",
                    "/var/lib/x"
                ]
                .map(String::from)
                .to_vec()
            )
        );
    }

    #[test]
    fn and_intersects_and_impossible_branches_drop() {
        let r = rule(
            "narrow",
            &format!(
                "{OPEN_READ} and fd.name startswith /etc and fd.name in (/etc/shadow, /usr/x)"
            ),
        );
        assert_eq!(plan(&r).prefixes, Some(vec!["/etc/shadow".to_string()]));
        // a write-only rule and a rule about other events need no read
        let r = [
            rule(
                "w",
                "evt.type = openat and evt.is_open_write = true and proc.name = x",
            ),
            rule("x", "evt.type = execve and proc.name = bash"),
            rule("y", &format!("{OPEN_READ} and fd.name = /etc/passwd")),
        ]
        .concat();
        assert_eq!(plan(&r).prefixes, Some(vec!["/etc/passwd".to_string()]));
    }

    /// `fd.filename` equality and `fd.name`/`fd.filename` endings without `/` bound the
    /// file's name wherever it is; an ending holding `/` bounds nothing.
    #[test]
    fn file_names_and_endings_bound_opens_anywhere() {
        let r = [
            rule("key", &format!("{OPEN_READ} and fd.name endswith .pem")),
            rule(
                "named",
                &format!("{OPEN_READ} and fd.filename in (id_rsa, id_ed25519)"),
            ),
            rule(
                "ending",
                &format!("{OPEN_READ} and fd.filename endswith .kdbx"),
            ),
        ]
        .concat();
        let p = plan(&r);
        assert_eq!(p.prefixes, Some(Vec::new()));
        assert_eq!(p.name_list(), vec!["id_ed25519", "id_rsa"]);
        assert_eq!(p.suffix_list(), vec![".kdbx", ".pem"]);
        assert!(p.reports("/home/a/site.pem", "/home/a/site.pem"));
        assert!(p.reports("/root/.ssh/id_rsa", "/root/.ssh/id_rsa"));
        assert!(!p.reports("/root/.ssh/id_rsa.pub", "/root/.ssh/id_rsa.pub"));
        let p = plan(&rule(
            "dir",
            &format!("{OPEN_READ} and fd.name endswith /x.pem"),
        ));
        assert_eq!(p.prefixes, None);
        // more than four distinct ending lengths cannot be compared in the kernel
        let p = plan(&rule(
            "many",
            &format!("{OPEN_READ} and (fd.name endswith .a or fd.name endswith .bb or fd.name endswith .ccc or fd.name endswith .dddd or fd.name endswith .eeeee)"),
        ));
        assert_eq!(p.prefixes, None);
        assert_eq!(p.unconstrained, vec!["many".to_string()]);
    }

    #[test]
    fn an_unbounded_read_rule_turns_the_filter_off_and_is_named() {
        let r = [
            rule("bounded", &format!("{OPEN_READ} and fd.name = /etc/shadow")),
            rule("by name", &format!("{OPEN_READ} and fd.name contains .pem")),
            rule(
                "negated",
                &format!("{OPEN_READ} and not fd.name startswith /usr"),
            ),
        ]
        .concat();
        let p = plan(&r);
        assert_eq!(p.prefixes, None);
        assert_eq!(
            p.unconstrained,
            vec!["by name".to_string(), "negated".to_string()]
        );
    }

    #[test]
    fn a_rule_on_the_passed_path_needs_non_canonical_reads() {
        let r = [
            rule(
                "Traversal",
                &format!(
                    "{OPEN_READ} and (fd.name startswith /etc/ or fd.name contains id_rsa) \
                     and fd.nameraw glob \"*../*../*\""
                ),
            ),
            rule("shadow", &format!("{OPEN_READ} and fd.name = /etc/shadow")),
        ]
        .concat();
        let p = plan(&r);
        assert_eq!(p.prefixes, Some(vec!["/etc/shadow".to_string()]));
        assert_eq!(p.noncanonical, vec!["Traversal".to_string()]);
        assert!(p.unconstrained.is_empty());
    }

    /// `fd.name` is rendered (a backslash `\\`, a byte that is not UTF-8 `\xNN`, a memfd
    /// without its leading `/`); the kernel compares the bytes.
    #[test]
    fn literals_are_compared_as_the_kernel_s_bytes() {
        // the literal "/srv/a\\\\b" is the rendering of the bytes `/srv/a\b`
        let p = plan(&rule(
            "esc",
            &format!(r#"{OPEN_READ} and fd.name startswith "/srv/a\\\\b""#),
        ));
        assert_eq!(p.prefixes, Some(vec!["/srv/a".to_string()]));
        assert!(p.reports(r"/srv/a\\b/x", r"/srv/a\\b/x"));
        let p = plan(&rule(
            "pm",
            &format!(r#"{OPEN_READ} and fd.name pmatch (/srv/q\\\\r/s, /opt/\\xff/k)"#),
        ));
        assert_eq!(p.prefixes, Some(vec!["/opt/".into(), "/srv/q".into()]));
        // a memfd's open is always reported: its literal asks nothing of the filter
        let p = plan(&rule("mem", &format!("{OPEN_READ} and fd.name = memfd:x")));
        assert_eq!(p.prefixes, Some(Vec::new()));
        assert!(p.unconstrained.is_empty());
        assert!(p.reports("memfd:x", "/proc/self/fd/3"));
        assert!(p.reports("<truncated>/a/b", "/a/b"));
        // a name with an escape is not the kernel's leaf: unbounded
        let p = plan(&rule(
            "name",
            &format!(r#"{OPEN_READ} and fd.filename = "a\\\\b""#),
        ));
        assert_eq!(p.prefixes, None);
        // an ending that may start inside `\xNN` keeps what follows it
        for (x, want) in [
            ("ffab", "ab"),
            ("xffab", "ab"),
            ("fz", "z"),
            (".pem", ".pem"),
        ] {
            let p = plan(&rule(
                "end",
                &format!("{OPEN_READ} and fd.name endswith {x}"),
            ));
            assert_eq!(p.suffix_list(), vec![want], "{x}");
        }
        let p = plan(&rule(
            "end",
            &format!("{OPEN_READ} and fd.name endswith ffab"),
        ));
        assert!(p.reports(r"/tmp/\xffab", r"/tmp/\xffab"));
        for x in ["ff", "f", r#""a\\\\b""#] {
            let p = plan(&rule(
                "end",
                &format!("{OPEN_READ} and fd.name endswith {x}"),
            ));
            assert_eq!(p.prefixes, None, "{x}");
        }
    }

    /// A test on `fd.nameraw` reduces to the non-canonical switch only when no canonical
    /// passed path (absolute, without `//`, `/.`, `./`) can pass it.
    #[test]
    fn passed_path_tests_reduce_only_when_no_canonical_path_passes() {
        let noncanonical = [
            r#"fd.nameraw contains "../""#,
            r#"fd.nameraw contains "a./""#,
            r#"fd.nameraw contains "//""#,
            r#"fd.nameraw endswith "/..""#,
            r#"fd.nameraw startswith ".""#,
            r#"fd.nameraw startswith "etc""#,
            r#"fd.nameraw glob "*../*../*""#,
            r#"fd.nameraw glob "x*""#,
            r#"fd.nameraw glob "*[ab]./*""#,
            r#"fd.nameraw = "../etc/shadow""#,
            r#"fd.nameraw in ("a/b", "/x/./y")"#,
        ];
        for c in noncanonical {
            let p = plan(&rule("t", &format!("{OPEN_READ} and {c}")));
            assert_eq!(p.noncanonical, vec!["t".to_string()], "{c}");
            assert_eq!(p.prefixes, Some(Vec::new()), "{c}");
            assert!(p.reports("/a../b", "/a../b"), "{c}");
            assert!(!p.reports("/a/b", "/a/b"), "{c}");
        }
        let unbounded = [
            // `/a..b` holds `..` and is canonical
            r#"fd.nameraw contains "..""#,
            r#"fd.nameraw endswith "..""#,
            // runs are not joined across a wildcard: `/a.b` matches
            r#"fd.nameraw glob "*/*.*""#,
            r#"fd.nameraw glob "*/[.]*""#,
            r#"fd.nameraw glob "[.]*""#,
            r#"fd.nameraw = "/etc/shadow""#,
            r#"fd.nameraw in ("../a", "/b")"#,
        ];
        for c in unbounded {
            let p = plan(&rule("t", &format!("{OPEN_READ} and {c}")));
            assert_eq!(p.prefixes, None, "{c}");
        }
    }

    /// A read-only open's `evt.arg.flags` names none of O_WRONLY, O_RDWR, O_CREAT,
    /// O_TRUNC: a branch asking for one cannot see it (a generated allowlist of writes
    /// keeps the read filter on).
    #[test]
    fn open_flags_of_writes_exclude_read_only_opens() {
        let p = plan(&rule(
            "w",
            "evt.type in (open, openat, openat2) and (evt.is_open_write = true or \
             evt.arg.flags contains O_CREAT or evt.arg.flags contains \"O_TRUNC\") and \
             not fd.name in (/a)",
        ));
        assert_eq!(
            (p.prefixes, p.unconstrained),
            (Some(Vec::new()), Vec::new())
        );
        // O_RDONLY is what a read-only open shows: no bound
        let p = plan(&rule(
            "r",
            "evt.type = openat and evt.arg.flags contains O_RDONLY and not fd.name in (/a)",
        ));
        assert_eq!(p.unconstrained, vec!["r".to_string()]);
    }

    /// More prefixes or names than the kernel's maps hold turn the filter off, naming
    /// the rules, instead of failing when the agent installs them.
    #[test]
    fn more_entries_than_the_kernel_holds_turn_the_filter_off() {
        let items =
            |f: &dyn Fn(usize) -> String| (0..=MAX_ENTRIES).map(f).collect::<Vec<_>>().join(", ");
        let r = [
            rule(
                "many paths",
                &format!(
                    "{OPEN_READ} and fd.name in ({})",
                    items(&|i| format!("/opt/p{i}/key"))
                ),
            ),
            rule("shadow", &format!("{OPEN_READ} and fd.name = /etc/shadow")),
        ]
        .concat();
        let p = plan(&r);
        assert_eq!(p.prefixes, None);
        assert_eq!(p.unconstrained, vec!["many paths".to_string()]);
        let r = rule(
            "many names",
            &format!(
                "{OPEN_READ} and fd.filename in ({})",
                items(&|i| format!("n{i}"))
            ),
        );
        assert_eq!(plan(&r).unconstrained, vec!["many names".to_string()]);
        // exactly as many as the kernel holds: kept
        let r = rule(
            "enough",
            &format!(
                "{OPEN_READ} and fd.filename in ({})",
                (1..=MAX_ENTRIES)
                    .map(|i| format!("n{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        assert_eq!(plan(&r).names.len(), MAX_ENTRIES);
    }

    #[test]
    fn syscalls_follow_the_rules_event_types() {
        let (rs, _) = Ruleset::load_sources(&[(
            "t.yaml",
            rule("p", "evt.type = ptrace and proc.name = x").as_str(),
        )]);
        assert_eq!(syscalls_for(rs.event_types_needed()), ["ptrace"]);
        let (rs, _) = Ruleset::load_sources(&[(
            "t.yaml",
            rule("e", "evt.type in (execve, execveat) and proc.name = x").as_str(),
        )]);
        assert!(syscalls_for(rs.event_types_needed()).is_empty());
        // a rule without an event type needs every syscall
        let (rs, _) = Ruleset::load_sources(&[("t.yaml", rule("any", "proc.name = x").as_str())]);
        assert_eq!(
            syscalls_for(rs.event_types_needed()).len(),
            EventType::ALL.iter().filter_map(|t| t.syscall()).count()
        );
        let (rs, _) = Ruleset::load_sources(&[("default", crate::DEFAULT_RULES)]);
        let s = syscalls_for(rs.event_types_needed());
        assert!(
            s.contains(&"openat") && s.contains(&"connect") && s.contains(&"ptrace"),
            "{s:?}"
        );
    }

    #[test]
    fn long_prefixes_are_cut_to_the_kernel_key() {
        let long = format!("/{}", "a".repeat(100));
        let p = plan(&rule("long", &format!("{OPEN_READ} and fd.name = {long}")));
        assert_eq!(p.prefixes, Some(vec![long[..MAX_PREFIX_BYTES].to_string()]));
    }

    #[test]
    fn the_default_ruleset_needs_only_bounded_reads() {
        let (rs, report) = Ruleset::load_sources(&[("default", crate::DEFAULT_RULES)]);
        assert!(report.errors.is_empty(), "{report}");
        let p = rs.read_open_plan();
        assert!(p.unconstrained.is_empty(), "{:?}", p.unconstrained);
        let prefixes = p.prefixes.expect("bounded");
        assert!(
            prefixes
                .iter()
                .any(|x| "/etc/shadow".starts_with(x.as_str())),
            "{prefixes:?}"
        );
        assert!(
            !prefixes.iter().any(|x| x.is_empty() || x == "/"),
            "{prefixes:?}"
        );
    }
}

#[cfg(test)]
mod write_tests {
    use super::*;

    fn plan(rules: &str) -> OpenPlan {
        let (rs, report) = Ruleset::load_sources(&[("t.yaml", rules)]);
        assert!(report.errors.is_empty(), "{report}");
        rs.write_open_plan()
    }

    fn rule(name: &str, cond: &str) -> String {
        format!("- rule: {name}\n  desc: d\n  condition: {cond}\n  output: o %fd.name\n  priority: WARNING\n")
    }

    #[test]
    fn write_rules_give_their_prefixes_and_read_rules_none() {
        let p = plan(&format!(
            "{}{}{}",
            rule(
                "etc",
                "evt.type in (open, openat, openat2) and evt.is_open_write = true and fd.name startswith /etc/"
            ),
            rule(
                "bin",
                "evt.type = creat and fd.directory in (/bin, /usr/bin)"
            ),
            rule(
                "reads only",
                "evt.type = openat and evt.is_open_write = false and fd.name startswith /root/"
            ),
        ));
        // `is_open_write = false` does not exclude write-opens here: an O_CREAT|O_RDONLY
        // open is one the kernel treats as a write and libsinsp as no write
        assert_eq!(
            p.prefixes,
            Some(vec![
                "/bin".to_string(),
                "/etc/".to_string(),
                "/root/".to_string(),
                "/usr/bin".to_string()
            ])
        );
        assert!(p.unconstrained.is_empty());
    }

    #[test]
    fn a_write_rule_without_a_path_turns_the_write_filter_off() {
        let p = plan(&rule(
            "any write by nc",
            "evt.type = openat and evt.is_open_write = true and proc.name = nc",
        ));
        assert_eq!(p.prefixes, None);
        assert_eq!(p.unconstrained, vec!["any write by nc".to_string()]);
        // the same rule leaves read-only opens constrained (it can never see one)
        let (rs, _) = Ruleset::load_sources(&[(
            "t.yaml",
            rule(
                "any write by nc",
                "evt.type = openat and evt.is_open_write = true and proc.name = nc",
            )
            .as_str(),
        )]);
        assert_eq!(rs.read_open_plan().prefixes, Some(Vec::new()));
    }

    #[test]
    fn creat_counts_only_for_writes() {
        let r = rule("c", "evt.type = creat and proc.name = x");
        assert_eq!(plan(&r).prefixes, None);
        let (rs, _) = Ruleset::load_sources(&[("t.yaml", r.as_str())]);
        assert_eq!(rs.read_open_plan().prefixes, Some(Vec::new()));
    }

    /// Our default ruleset reduces writes to these prefixes and file names, so the profile
    /// filter works under it (Falco's stable rules: `rules/tests/fixtures.rs`).
    #[test]
    fn the_default_rules_reduce_writes_to_prefixes_and_names() {
        let (rs, report) = Ruleset::load_sources(&[("default", crate::DEFAULT_RULES)]);
        assert!(report.errors.is_empty(), "{report}");
        let p = rs.write_open_plan();
        assert!(p.unconstrained.is_empty(), "{:?}", p.unconstrained);
        assert_eq!(
            p.prefixes,
            Some(
                [
                    "/dev/log",
                    "/etc/gshadow",
                    "/etc/pam.conf",
                    "/etc/pam.d",
                    "/etc/security/pwquality.conf",
                    "/etc/shadow",
                    "/etc/sudoers",
                    "/var/log"
                ]
                .map(String::from)
                .to_vec()
            )
        );
        let names: Vec<&str> = p.names.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"release_agent"), "{names:?}");
        // a profile-allowed write the rules cannot match
        let under = |path: &str| {
            p.prefixes
                .iter()
                .flatten()
                .any(|x| path.starts_with(x.as_str()))
                || names.iter().any(|n| path.rsplit('/').next() == Some(*n))
        };
        assert!(!under("/run/nginx.pid"));
        assert!(under("/var/log/nginx/access.log"));
    }
}
