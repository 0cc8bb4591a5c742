//! The in-memory profile: one per image (repository + tag). Entries live in
//! sorted maps, so iteration, export and diffs are deterministic and every
//! lookup the matcher does is a map lookup without allocation.

use crate::ProfileError;
use falco_learn_event::L4Proto;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

/// Version of the profile format (YAML files and stored values). Version 2
/// added exec lineage (`parents`), drift evidence, the `review` section and
/// coverage (`starts_observed`, `running_at_start`); version 1 files are read
/// as they are (no lineage: any parent, nothing to review). Version 3 added
/// the inbound dimension (`network.inbound`); versions 1 and 2 are read
/// without it (not learned: not enforced, no rule; learn again to add it).
/// Version 4 tells an executable on another filesystem than the container's
/// root (`other_fs`: a volume) from the root's; the exec entries of older
/// versions are read with `other_fs` set, allowed from either as before.
pub const SCHEMA_VERSION: u32 = 4;

/// Oldest profile format this version reads.
pub const MIN_SCHEMA_VERSION: u32 = 1;

/// A profile dimension (one generated rule each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    Exec,
    Outbound,
    /// The ports served (`dimension::inbound`).
    Inbound,
    FileWrite,
}

impl Dimension {
    pub const ALL: [Dimension; 4] = [
        Dimension::Exec,
        Dimension::Outbound,
        Dimension::Inbound,
        Dimension::FileWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Exec => "exec",
            Dimension::Outbound => "outbound",
            Dimension::Inbound => "inbound",
            Dimension::FileWrite => "file_write",
        }
    }

    /// Dense index (position in [`Dimension::ALL`]), for per-dimension tables.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ports a profile's containers served: (protocol, port) → when
/// (`dimension::inbound`).
pub type InboundPorts = BTreeMap<(Proto, u16), Seen>;

/// The image a profile describes (one home: the event crate).
pub use falco_learn_event::image::ImageRef;

/// How often, and when first and last, something was seen (ns since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seen {
    pub count: u64,
    pub first_seen: u64,
    pub last_seen: u64,
}

impl Seen {
    pub fn at(ts: u64) -> Seen {
        Seen {
            count: 1,
            first_seen: ts,
            last_seen: ts,
        }
    }

    pub fn hit(&mut self, ts: u64) {
        self.absorb(&Seen::at(ts));
    }

    /// Union of two observations: counts add, the window widens. A zero time
    /// means "unknown" (hand-written entries) and never wins.
    pub fn absorb(&mut self, o: &Seen) {
        self.count = self.count.saturating_add(o.count);
        self.first_seen = min_known(self.first_seen, o.first_seen);
        self.last_seen = self.last_seen.max(o.last_seen);
    }
}

pub(crate) fn min_known(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (x, y) => x.min(y),
    }
}

/// An executable seen running, by kernel-resolved path. The same entry
/// describes drift under `review.drift` (with its evidence), so accepting a
/// drift entry is moving it to `exec:` as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecEntry {
    pub seen: Seen,
    /// The executable lived on a tmpfs (`/dev`, `/dev/shm`, `/run`, …).
    pub tmpfs: bool,
    /// The executable was a memfd (`memfd_create` + `fexecve`).
    pub memfd: bool,
    /// The executable was on the overlay upper layer (created or modified
    /// after the container started).
    pub upper_layer: bool,
    /// Run from another root than its container's home, the root of the container's
    /// first exec, that is not the host's (the kernel's `exe_flags.other_root`: a chroot
    /// into a neighbour's `/proc/<pid>/root`, a `setns` into another container, a root the
    /// container built). Allowed from such a root only when learned so; drift evidence, so
    /// it is learned under `review.drift` unless drift is accepted.
    pub other_root: bool,
    /// Run from the host's root, the root of the host's init (the kernel's
    /// `exe_flags.host_root`: a hostPID pod entering the host with `nsenter -m -t 1` or
    /// `chroot /proc/1/root`). A root apart from `other_root`: allowed from the host's root
    /// only when learned so; drift evidence like it.
    pub host_root: bool,
    /// The executable lived on another filesystem than the container's root, and not on a
    /// tmpfs (the kernel's `exe_flags.other_fs`): a volume (a disk-backed `emptyDir`, a
    /// `hostPath`, a PVC), a file bound in from the host (`docker-init`, NVIDIA's tools).
    /// Where the file lives, like `upper_layer`: enforce-kill allows it from there only when
    /// learned so. Not drift by itself. Profiles of schema 3 and older could not say it, so
    /// their entries are read with it set (allowed from there as before); so is this
    /// serde form without the key (the store's review records of an earlier falco-learn).
    #[serde(default = "other_fs_unknown")]
    pub other_fs: bool,
    /// A process of the container wrote this file during the window before
    /// it ran.
    pub written: bool,
    /// Executable of the process that wrote it, when `written` (and seen).
    pub writer: String,
    /// Lineage: parent executables (`proc.pexepath`) seen starting this one
    /// (not as a container's init). With `init` false and no parents: any
    /// parent (profiles of schema 1, hand-written entries).
    pub parents: BTreeSet<String>,
    /// Seen started by the runtime as a container's init (pid 1 of its pid
    /// namespace; its parent is the runtime's shim, outside the container).
    pub init: bool,
}

/// An exec entry written before `other_fs` existed could not tell a volume's file from the
/// root's: read as allowed from either, as it was.
fn other_fs_unknown() -> bool {
    true
}

impl ExecEntry {
    /// Whether the exec is drift: its executable was born in the container
    /// ([`ExecEntry::born_here`]), or it ran from another root than the container's (a
    /// neighbour's, or the host's).
    pub fn is_drift(&self) -> bool {
        self.born_here() || self.other_root || self.host_root
    }

    /// Whether the executable was born in the container (a tmpfs, a memfd, the overlay's
    /// upper layer, or written in the window): what such a program does is not learned.
    pub fn born_here(&self) -> bool {
        self.tmpfs || self.memfd || self.upper_layer || self.written
    }

    /// The drift evidence as words (`tmpfs, written by /bin/busybox`).
    pub fn evidence(&self) -> String {
        let mut v: Vec<String> = Vec::new();
        for (on, w) in [
            (self.tmpfs, "tmpfs"),
            (self.memfd, "memfd"),
            (self.upper_layer, "overlay upper layer"),
            (self.other_root, "another root than the container's"),
            (self.host_root, "the host's root"),
        ] {
            if on {
                v.push(w.to_string());
            }
        }
        if self.written {
            v.push(if self.writer.is_empty() {
                "written in the window".to_string()
            } else {
                format!("written by {}", self.writer)
            });
        }
        v.join(", ")
    }

    /// Union with another observation: counts add, flags and parents join.
    pub fn absorb(&mut self, o: &ExecEntry) {
        self.seen.absorb(&o.seen);
        self.tmpfs |= o.tmpfs;
        self.memfd |= o.memfd;
        self.upper_layer |= o.upper_layer;
        self.other_root |= o.other_root;
        self.host_root |= o.host_root;
        self.other_fs |= o.other_fs;
        self.written |= o.written;
        self.init |= o.init;
        if self.writer.is_empty() {
            self.writer = o.writer.clone();
        }
        self.parents.extend(o.parents.iter().cloned());
    }
}

/// A write that produced an executable that later ran (review evidence).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReviewWrite {
    pub seen: Seen,
    /// Executable of the writing process.
    pub writer: String,
}

/// An exec session: a process that entered the container from outside its
/// process tree (runtime exec) and its descendants, not learned.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionEntry {
    /// `container.id`.
    pub container: String,
    /// The session's first process: host pid and start time (ns).
    pub pid: u32,
    pub time: u64,
    /// Its command line (`proc.exepath` and arguments).
    pub command: String,
    /// Events of the session's processes.
    pub events: u64,
    /// What it did, as `exec /bin/busybox`, `write /dev/xupd`,
    /// `outbound tcp/443 198.51.100.10` (the first [`Limits::review_max`]).
    pub did: BTreeMap<String, Seen>,
}

/// Behaviour kept out of the profile for a reviewer: drift (executables born
/// in the container), the writes that produced them, and exec sessions.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Review {
    pub drift: BTreeMap<String, ExecEntry>,
    pub writes: BTreeMap<String, ReviewWrite>,
    pub sessions: Vec<SessionEntry>,
}

impl Review {
    pub fn is_empty(&self) -> bool {
        self.drift.is_empty() && self.writes.is_empty() && self.sessions.is_empty()
    }

    /// Number of entries (drift, writes, sessions).
    pub fn len(&self) -> usize {
        self.drift.len() + self.writes.len() + self.sessions.len()
    }
}

/// Layer-4 protocol of an outbound entry (Falco's `fd.l4proto` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    Raw,
    Unknown,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Raw => "raw",
            Proto::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Proto> {
        Some(match s {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "icmp" => Proto::Icmp,
            "raw" => Proto::Raw,
            "unknown" => Proto::Unknown,
            _ => return None,
        })
    }
}

impl From<L4Proto> for Proto {
    fn from(p: L4Proto) -> Proto {
        match p {
            L4Proto::Tcp => Proto::Tcp,
            L4Proto::Udp => Proto::Udp,
            L4Proto::Icmp => Proto::Icmp,
            L4Proto::Raw => Proto::Raw,
            L4Proto::Unknown => Proto::Unknown,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Outbound traffic to one protocol + remote port.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboundEntry {
    pub seen: Seen,
    /// Remote peers, aggregated to CIDRs past [`Limits::peers_max`].
    pub peers: BTreeSet<IpNet>,
}

impl OutboundEntry {
    pub fn allows(&self, ip: &IpAddr) -> bool {
        self.peers.iter().any(|n| n.contains(ip))
    }
}

/// Something a loaded default rule flagged during learning (not learned).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct TaintEntry {
    /// Event time, ns since the epoch.
    pub time: u64,
    /// Name of the rule that fired.
    pub rule: String,
    /// `evt.type` of the event.
    pub event: String,
    /// `proc.exepath` of the process.
    pub process: String,
    /// The behaviour it would have taught (exec path, `proto/port peer`,
    /// written path), or `-` when the event teaches nothing.
    pub value: String,
    /// `container.id`.
    pub container: String,
}

/// The learning section: when and from how much the profile was learned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Learning {
    /// Time of the first and last event learned from (ns since the epoch).
    pub started: u64,
    pub ended: u64,
    /// Distinct containers of the image seen.
    pub containers: u64,
    /// Events of the image seen (learned, flagged or of no learnable kind).
    pub events: u64,
    /// Time of the last event that taught something new (convergence).
    pub last_new_behaviour: u64,
    /// A default rule fired during learning.
    pub tainted: bool,
    /// Events a default rule flagged (none of them learned).
    pub flagged_events: u64,
    /// Events of processes descending from a flagged process (not learned).
    pub flagged_descendant_events: u64,
    /// The first [`Limits::taint_list_max`] flagged events, sorted.
    pub taint: Vec<TaintEntry>,
    /// Why the profile is tainted besides flagged events (drift), sorted.
    pub taint_reasons: BTreeSet<String>,
    /// Container starts seen during the window (a container's init exec).
    pub starts_observed: u64,
    /// Containers already running when first seen (start-up not observed).
    pub running_at_start: u64,
}

/// What one image was seen doing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Profile {
    pub image: ImageRef,
    /// Image digests seen (`sha256:…`).
    pub digests: BTreeSet<String>,
    pub learning: Learning,
    /// Executables by kernel-resolved path (`proc.exepath`).
    pub exec: BTreeMap<String, ExecEntry>,
    /// Outbound connections by protocol and remote port.
    pub outbound: BTreeMap<(Proto, u16), OutboundEntry>,
    /// Ports served, by protocol (`dimension::inbound`); None when the profile
    /// was learned without this dimension (schema 1 and 2).
    pub inbound: Option<InboundPorts>,
    /// Files opened for writing, exact paths (`fd.name`).
    pub write_files: BTreeMap<String, Seen>,
    /// Directories below which every write is allowed (`dir/**` in YAML).
    pub write_dirs: BTreeMap<String, Seen>,
    /// Written paths learned as globs (Falco `glob` syntax, `glob: true` in
    /// YAML): `/proc/<pid>/…` ([`proc_pattern`]) and volatile names
    /// ([`crate::glob::volatile_pattern`]).
    pub write_globs: BTreeMap<String, Seen>,
    /// Not learned, for a reviewer (`review:` in YAML).
    pub review: Review,
}

/// Tunables of learning. The defaults are documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// More than this many learned entries (files or generalised
    /// subdirectories) directly in one directory collapse into `dir/**`.
    pub file_dir_threshold: usize,
    /// A directory is generalised only when it has at least this many path
    /// components (`/var/log` has 2), so `/**` or `/etc/**` never appear with
    /// the default of 2.
    pub file_min_depth: usize,
    /// More than this many peer CIDRs for one protocol + port widen the most
    /// specific ones (IPv4 /32 → /24 → /16 → /8 → /0, IPv6 /128 → /64 → /48
    /// → /32 → /0) until they fit.
    pub peers_max: usize,
    /// How many flagged events the profile lists (all are counted).
    pub taint_list_max: usize,
    /// How many drift entries, reviewed writes, exec sessions (and actions
    /// per session) the review section keeps.
    pub review_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            file_dir_threshold: 8,
            file_min_depth: 2,
            peers_max: 8,
            taint_list_max: 50,
            review_max: 100,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<(), ProfileError> {
        if self.file_dir_threshold == 0 {
            return Err(ProfileError::Limits(
                "file_dir_threshold must be at least 1".into(),
            ));
        }
        if self.file_min_depth == 0 {
            return Err(ProfileError::Limits(
                "file_min_depth must be at least 1 (0 would allow /**)".into(),
            ));
        }
        if self.peers_max < 2 {
            return Err(ProfileError::Limits(
                "peers_max must be at least 2 (one IPv4 and one IPv6 /0)".into(),
            ));
        }
        Ok(())
    }
}

/// Something new a profile learned (progress, logs and the store's
/// incremental writes use these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    NewExec {
        path: String,
        tmpfs: bool,
    },
    /// `parent` was seen starting `exe` for the first time.
    NewLineage {
        parent: String,
        exe: String,
    },
    NewOutbound {
        proto: Proto,
        port: u16,
    },
    /// A peer not covered before; `peers` is the entry's set afterwards.
    NewPeer {
        proto: Proto,
        port: u16,
        peers: Vec<IpNet>,
    },
    NewFileWrite {
        path: String,
    },
    /// Entries below `dir` collapsed into `dir/**`; `files` and `dirs` are
    /// the exact paths and generalised directories it replaced.
    Generalised {
        dir: String,
        files: Vec<String>,
        dirs: Vec<String>,
    },
    /// A new entry of a dimension with a home of its own (`dimension::DIMS`):
    /// `inbound tcp/80`.
    NewEntry {
        dimension: Dimension,
        value: String,
    },
    NewContainer {
        id: String,
    },
    NewDigest {
        digest: String,
    },
}

impl Delta {
    /// Whether this is new behaviour (what convergence tracks), as opposed
    /// to bookkeeping (containers, digests).
    pub fn is_behaviour(&self) -> bool {
        !matches!(self, Delta::NewContainer { .. } | Delta::NewDigest { .. })
    }
}

impl fmt::Display for Delta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Delta::NewExec { path, tmpfs } => {
                write!(f, "exec {path}{}", if *tmpfs { " (tmpfs)" } else { "" })
            }
            Delta::NewLineage { parent, exe } => write!(f, "exec {exe} from {parent}"),
            Delta::NewOutbound { proto, port } => write!(f, "outbound {proto}/{port}"),
            Delta::NewPeer { proto, port, peers } => {
                let p: Vec<String> = peers.iter().map(|n| n.to_string()).collect();
                write!(f, "outbound {proto}/{port} peers [{}]", p.join(", "))
            }
            Delta::NewFileWrite { path } => write!(f, "write {path}"),
            Delta::Generalised { dir, files, dirs } => write!(
                f,
                "write {} (generalised {} paths)",
                dir_key(dir),
                files.len() + dirs.len()
            ),
            Delta::NewEntry { dimension, value } => write!(f, "{dimension} {value}"),
            Delta::NewContainer { id } => write!(f, "container {id}"),
            Delta::NewDigest { digest } => write!(f, "digest {digest}"),
        }
    }
}

/// `dir/**` as profiles write a generalised directory (`/` → `/**`).
pub fn dir_key(dir: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}**")
    } else {
        format!("{dir}/**")
    }
}

/// Directory a generalised key stands for (`/var/log/**` → `/var/log`),
/// `None` for an exact path.
pub fn dir_of_key(key: &str) -> Option<&str> {
    let d = key.strip_suffix("/**")?;
    Some(if d.is_empty() { "/" } else { d })
}

/// Parent directory of an absolute path (`/a/b` → `/a`, `/a` → `/`, `/` → none).
/// What a `/proc/<pid>` component becomes in a learned write path.
pub const PROC_PID: &str = "[0-9]*";

/// A write under `/proc/<pid>/` (or `/proc/<pid>/task/<tid>/`) as the pattern
/// it is learned as: the pid and tid become `[0-9]*`, so a program writing its
/// own `/proc/self/…` (which the kernel resolves to its pid) learns one entry,
/// not one per run. `None` for every other path.
pub fn proc_pattern(path: &str) -> Option<String> {
    let digits = |c: &str| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit());
    let rest = path.strip_prefix("/proc/")?;
    let mut comps: Vec<&str> = rest.split('/').collect();
    if !digits(comps[0]) || comps.len() < 2 {
        return None;
    }
    comps[0] = PROC_PID;
    if comps.len() >= 4 && comps[1] == "task" && digits(comps[2]) {
        comps[2] = PROC_PID;
    }
    Some(format!("/proc/{}", comps.join("/")))
}

/// Whether a write path is a [`proc_pattern`] (profiles written before
/// `glob: true` existed hold these as plain entries; they are read as globs).
pub fn is_proc_pattern(path: &str) -> bool {
    path.starts_with("/proc/[0-9]*/")
}

/// The glob a written path is learned as, if any: [`proc_pattern`] first,
/// then the volatile-name heuristic.
pub fn write_pattern(path: &str) -> Option<String> {
    proc_pattern(path).or_else(|| crate::glob::volatile_pattern(path))
}

/// Where a learned write goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteKey {
    /// Covered by this generalised directory.
    Dir(String),
    /// Learned as this glob.
    Glob(String),
    /// Learned as the exact path.
    File,
}

pub(crate) fn parent(path: &str) -> Option<&str> {
    let t = path.strip_suffix('/').unwrap_or(path);
    if t.is_empty() || !t.starts_with('/') {
        return None;
    }
    let i = t.rfind('/')?;
    Some(if i == 0 { "/" } else { &t[..i] })
}

/// Number of path components (`/var/log` → 2, `/` → 0).
pub(crate) fn depth(dir: &str) -> usize {
    dir.split('/').filter(|c| !c.is_empty()).count()
}

/// Whether `path` holds a character Falco's `pmatch` reads as a glob.
pub(crate) fn has_glob_char(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

fn under_prefix(dir: &str) -> String {
    if dir.ends_with('/') {
        dir.to_string()
    } else {
        format!("{dir}/")
    }
}

impl Profile {
    pub fn new(image: ImageRef) -> Profile {
        Profile {
            image,
            inbound: Some(Default::default()),
            ..Profile::default()
        }
    }

    /// Whether a write to `path` is allowed: an exact entry, or a generalised
    /// directory equal to or above it (Falco's `pmatch`).
    pub fn write_allowed(&self, path: &str) -> bool {
        self.covering_write_dir(path).is_some()
            || self.write_files.contains_key(path)
            || self
                .write_globs
                .keys()
                .any(|k| falco_learn_rules::glob_match(k, path))
            || self.approx_write_allowed(path)
    }

    /// Entries that generated rules can only spell as a glob
    /// ([`crate::glob::FalcoForm::Approx`]) allow what that glob matches, in
    /// the matcher too, so both agree. Scanned only on a miss.
    fn approx_write_allowed(&self, path: &str) -> bool {
        use crate::glob::approx_globs;
        let m = |g: &String| falco_learn_rules::glob_match(g, path);
        self.write_files
            .keys()
            .filter(|k| k.contains('\\'))
            .any(|k| approx_globs(k).iter().any(m))
            || self
                .write_dirs
                .keys()
                .filter(|k| k.contains('\\'))
                .any(|k| approx_globs(k).iter().any(|g| m(g) || m(&format!("{g}/*"))))
    }

    /// Whether an exec of `path` is allowed whatever its parent (an exact
    /// entry, or the globs of an entry Falco rules cannot spell exactly).
    pub fn exec_allowed(&self, path: &str) -> bool {
        self.exec.contains_key(path) || self.exec_glob_allowed(path)
    }

    fn exec_glob_allowed(&self, path: &str) -> bool {
        self.exec.keys().filter(|k| k.contains('\\')).any(|k| {
            crate::glob::approx_globs(k)
                .iter()
                .any(|g| falco_learn_rules::glob_match(g, path))
        })
    }

    /// Whether `parent` may start `path` (`init`: the process is pid 1 of its
    /// pid namespace). The entry of `path` allows any parent when its lineage
    /// is not checked ([`lineage_checked`]). Otherwise a parent that is one
    /// of the profile's executables (inside the container) must be listed; a
    /// parent that is not (the runtime's shim or runc, unknown, or a process
    /// that started before the window) is accepted for the container's init
    /// when the entry was seen started as an init, and for other processes
    /// when the entry lists such a parent. A glob of an entry Falco cannot
    /// spell exactly that matches `path` allows it too.
    pub fn exec_allowed_from(&self, path: &str, parent: &str, init: bool) -> bool {
        match self.exec.get(path) {
            Some(e) if !lineage_checked(path, e) => true,
            Some(e) if self.exec_allowed(parent) && e.parents.contains(parent) => true,
            Some(e) if !self.exec_allowed(parent) && init && e.init => true,
            Some(e) if !self.exec_allowed(parent) && !init && self.outside_started(e) => true,
            _ => self.exec_glob_allowed(path),
        }
    }

    /// Whether an entry was seen started by a parent outside the profile's
    /// executables, other than as an init.
    pub fn outside_started(&self, e: &ExecEntry) -> bool {
        e.parents.iter().any(|p| !self.exec_allowed(p))
    }

    /// Where a write of `path` would be learned.
    pub fn write_key(&self, path: &str) -> WriteKey {
        if let Some(d) = self.covering_write_dir(path) {
            return WriteKey::Dir(d.to_string());
        }
        match write_pattern(path) {
            Some(g) => WriteKey::Glob(g),
            None => WriteKey::File,
        }
    }

    /// The generalised directory that covers `path`, if any: Falco's `pmatch`
    /// (libsinsp compares `/`-separated components, empty ones dropped, so
    /// `/a/` covers `/a` and `/a//b`). Directories are learned without glob
    /// characters (see `generalise_from`), so every key is literal here as in Falco.
    pub(crate) fn covering_write_dir(&self, path: &str) -> Option<&str> {
        if self.write_dirs.is_empty() {
            return None;
        }
        if let Some((k, _)) = self.write_dirs.get_key_value(path) {
            return Some(k);
        }
        let norm = falco_learn_rules::pmatch::normalise(path);
        if norm != path {
            if let Some((k, _)) = self.write_dirs.get_key_value(norm.as_str()) {
                return Some(k);
            }
        }
        let b = norm.as_bytes();
        for i in (0..b.len()).rev() {
            if b[i] != b'/' {
                continue;
            }
            let d = if i == 0 { "/" } else { &norm[..i] };
            if let Some((k, _)) = self.write_dirs.get_key_value(d) {
                return Some(k);
            }
        }
        // keys not in normal form (`/a/`, `//a`): compared as Falco does, slower and rare
        self.write_dirs
            .keys()
            .find(|k| {
                falco_learn_rules::pmatch::normalise(k) != k.as_str()
                    && falco_learn_rules::pmatch_match(&[k.as_str()], &norm)
            })
            .map(String::as_str)
    }

    /// Number of entries directly in `dir` (exact files and generalised subdirectories).
    fn children(&self, dir: &str) -> usize {
        let prefix = under_prefix(dir);
        let f = self
            .write_files
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| parent(k) == Some(dir))
            .count();
        let d = self
            .write_dirs
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| parent(k) == Some(dir))
            .count();
        f + d
    }

    /// Replace everything below `dir` with `dir/**`.
    fn collapse(&mut self, dir: &str) -> Delta {
        let prefix = under_prefix(dir);
        let files: Vec<String> = self
            .write_files
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        let dirs: Vec<String> = self
            .write_dirs
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        let mut seen = self.write_dirs.remove(dir).unwrap_or_default();
        for k in &files {
            if let Some(s) = self.write_files.remove(k) {
                seen.absorb(&s);
            }
        }
        for k in &dirs {
            if let Some(s) = self.write_dirs.remove(k) {
                seen.absorb(&s);
            }
        }
        // A file with the directory's own name is covered by `pmatch` too.
        if let Some(s) = self.write_files.remove(dir) {
            seen.absorb(&s);
        }
        self.write_dirs.insert(dir.to_string(), seen);
        Delta::Generalised {
            dir: dir.to_string(),
            files,
            dirs,
        }
    }

    /// Collapse upward from the directory holding `key` while thresholds are exceeded.
    fn generalise_from(&mut self, mut child: String, limits: &Limits, out: &mut Vec<Delta>) {
        while let Some(dir) = parent(&child).map(str::to_string) {
            if depth(&dir) < limits.file_min_depth
                || self.children(&dir) <= limits.file_dir_threshold
            {
                break;
            }
            // Falco's `pmatch` reads a component holding `*`, `?` or `[` as a glob: such a
            // directory would cover more in Falco than here, so it is never generalised (its
            // files stay exact entries; an ancestor without glob characters still may be).
            if has_glob_char(&dir) {
                child = dir;
                continue;
            }
            out.push(self.collapse(&dir));
            child = dir;
        }
    }

    /// Learn one exec.
    pub fn learn_exec(&mut self, path: &str, tmpfs: bool, ts: u64) -> Option<Delta> {
        if let Some(e) = self.exec.get_mut(path) {
            e.seen.hit(ts);
            e.tmpfs |= tmpfs;
            return None;
        }
        self.exec.insert(
            path.to_string(),
            ExecEntry {
                seen: Seen::at(ts),
                tmpfs,
                ..ExecEntry::default()
            },
        );
        Some(Delta::NewExec {
            path: path.to_string(),
            tmpfs,
        })
    }

    /// Learn that `parent` started `exe` (after [`Profile::learn_exec`] of
    /// `exe`); `init`: as a container's init. An empty parent (unknown)
    /// teaches nothing, except for an init.
    pub fn learn_parent(&mut self, exe: &str, parent: &str, init: bool) -> Option<Delta> {
        let e = self.exec.get_mut(exe)?;
        if init {
            if e.init {
                return None;
            }
            e.init = true;
            return Some(Delta::NewLineage {
                parent: "(container init)".into(),
                exe: exe.to_string(),
            });
        }
        if parent.is_empty() || falco_learn_event::path::is_truncated(parent) {
            return None;
        }
        if !e.parents.insert(parent.to_string()) {
            return None;
        }
        Some(Delta::NewLineage {
            parent: parent.to_string(),
            exe: exe.to_string(),
        })
    }

    /// Learn one outbound connection or datagram.
    pub fn learn_outbound(
        &mut self,
        proto: Proto,
        port: u16,
        peer: IpAddr,
        ts: u64,
        limits: &Limits,
    ) -> Vec<Delta> {
        let mut out = Vec::new();
        let e = self.outbound.entry((proto, port)).or_insert_with(|| {
            out.push(Delta::NewOutbound { proto, port });
            OutboundEntry::default()
        });
        e.seen.hit(ts);
        if !e.allows(&peer) {
            e.peers.insert(IpNet::from(peer));
            e.peers = canonical_peers(&e.peers, limits.peers_max);
            out.push(Delta::NewPeer {
                proto,
                port,
                peers: e.peers.iter().copied().collect(),
            });
        }
        out
    }

    /// Learn one file opened for writing.
    pub fn learn_write(&mut self, path: &str, ts: u64, limits: &Limits) -> Vec<Delta> {
        match self.write_key(path) {
            WriteKey::Dir(d) => {
                if let Some(s) = self.write_dirs.get_mut(&d) {
                    s.hit(ts);
                }
                return Vec::new();
            }
            // patterns are never generalised into directories
            WriteKey::Glob(p) => {
                if let Some(s) = self.write_globs.get_mut(&p) {
                    s.hit(ts);
                    return Vec::new();
                }
                self.write_globs.insert(p.clone(), Seen::at(ts));
                return vec![Delta::NewFileWrite { path: p }];
            }
            WriteKey::File => {}
        }
        if let Some(s) = self.write_files.get_mut(path) {
            s.hit(ts);
            return Vec::new();
        }
        self.write_files.insert(path.to_string(), Seen::at(ts));
        let mut out = vec![Delta::NewFileWrite {
            path: path.to_string(),
        }];
        self.generalise_from(path.to_string(), limits, &mut out);
        out
    }

    /// [`Profile::merge`] of everything but the dimensions of
    /// `dimension::DIMS` (which merges those).
    pub(crate) fn merge_core(
        &mut self,
        other: &Profile,
        limits: &Limits,
    ) -> Result<(), ProfileError> {
        if self.image != other.image {
            return Err(ProfileError::MergeImages {
                a: self.image.to_string(),
                b: other.image.to_string(),
            });
        }
        self.digests.extend(other.digests.iter().cloned());
        let (a, b) = (&mut self.learning, &other.learning);
        a.started = min_known(a.started, b.started);
        a.ended = a.ended.max(b.ended);
        a.containers = a.containers.saturating_add(b.containers);
        a.events = a.events.saturating_add(b.events);
        a.last_new_behaviour = a.last_new_behaviour.max(b.last_new_behaviour);
        a.tainted |= b.tainted;
        a.flagged_events = a.flagged_events.saturating_add(b.flagged_events);
        a.flagged_descendant_events = a
            .flagged_descendant_events
            .saturating_add(b.flagged_descendant_events);
        let taint: BTreeSet<TaintEntry> =
            a.taint.drain(..).chain(b.taint.iter().cloned()).collect();
        a.taint = taint.into_iter().take(limits.taint_list_max).collect();
        a.taint_reasons.extend(b.taint_reasons.iter().cloned());
        a.starts_observed = a.starts_observed.saturating_add(b.starts_observed);
        a.running_at_start = a.running_at_start.saturating_add(b.running_at_start);
        for (path, e) in &other.exec {
            self.exec.entry(path.clone()).or_default().absorb(e);
        }
        let r = &mut self.review;
        for (path, e) in &other.review.drift {
            r.drift.entry(path.clone()).or_default().absorb(e);
        }
        for (path, w) in &other.review.writes {
            let m = r.writes.entry(path.clone()).or_default();
            m.seen.absorb(&w.seen);
            if m.writer.is_empty() {
                m.writer = w.writer.clone();
            }
        }
        for s in &other.review.sessions {
            if !r.sessions.contains(s) {
                r.sessions.push(s.clone());
            }
        }
        r.sessions
            .sort_by(|x, y| (x.time, &x.container, x.pid).cmp(&(y.time, &y.container, y.pid)));
        r.sessions.truncate(limits.review_max);
        for (k, e) in &other.outbound {
            let m = self.outbound.entry(*k).or_default();
            m.seen.absorb(&e.seen);
            m.peers.extend(e.peers.iter().copied());
            m.peers = canonical_peers(&m.peers, limits.peers_max);
        }
        for (d, s) in &other.write_dirs {
            self.write_dirs.entry(d.clone()).or_default().absorb(s);
        }
        for (p, s) in &other.write_files {
            self.write_files.entry(p.clone()).or_default().absorb(s);
        }
        for (p, s) in &other.write_globs {
            self.write_globs.entry(p.clone()).or_default().absorb(s);
        }
        self.normalise_writes(limits);
        Ok(())
    }

    /// Re-establish the write invariants after bulk changes: nothing is
    /// listed below a generalised directory, and no directory holds more
    /// entries than the threshold allows.
    pub fn normalise_writes(&mut self, limits: &Limits) {
        // exact entries that are learned as globs today (volatile names learned
        // verbatim by older versions, /proc/<pid> patterns held as plain entries)
        let as_globs: Vec<(String, String)> = self
            .write_files
            .keys()
            .filter_map(|k| {
                let g = if is_proc_pattern(k) {
                    Some(k.clone())
                } else {
                    write_pattern(k)
                };
                g.map(|g| (k.clone(), g))
            })
            .collect();
        for (k, g) in as_globs {
            if let Some(s) = self.write_files.remove(&k) {
                self.write_globs.entry(g).or_default().absorb(&s);
            }
        }
        // Outermost directories first, so nested ones are absorbed once.
        let dirs: Vec<String> = self.write_dirs.keys().cloned().collect();
        for d in dirs {
            if self.write_dirs.contains_key(&d) && self.has_below(&d) {
                self.collapse(&d);
            }
        }
        let files: Vec<String> = self.write_files.keys().cloned().collect();
        let mut sink = Vec::new();
        for f in files {
            if self.write_files.contains_key(&f) {
                self.generalise_from(f, limits, &mut sink);
            }
        }
    }

    fn has_below(&self, dir: &str) -> bool {
        let prefix = under_prefix(dir);
        let below = |m: &BTreeMap<String, Seen>| {
            m.range(prefix.clone()..)
                .next()
                .is_some_and(|(k, _)| k.starts_with(&prefix))
        };
        below(&self.write_files) || below(&self.write_dirs) || self.write_files.contains_key(dir)
    }

    /// [`Profile::size`] of everything but the dimensions of `dimension::DIMS`.
    pub(crate) fn size_core(&self) -> usize {
        self.exec.len() + self.outbound.len() + self.write_entries()
    }

    /// Number of file-write entries (exact, globs, directories).
    pub fn write_entries(&self) -> usize {
        self.write_files.len() + self.write_dirs.len() + self.write_globs.len()
    }
}

/// Whether an exec entry's parents are enforced: it lists parents, and the
/// executable and every parent are spelled exactly in Falco rules (one
/// string for both; see `glob::falco_form`). Otherwise the entry allows any
/// parent, in the matcher and in the generated rules alike.
pub fn lineage_checked(path: &str, e: &ExecEntry) -> bool {
    use crate::glob::{falco_form, FalcoForm};
    (e.init || !e.parents.is_empty())
        && falco_form(path) == FalcoForm::Exact
        && e.parents.iter().all(|p| falco_form(p) == FalcoForm::Exact)
}

/// Canonical peer set: aggregated (covered nets dropped, adjacent merged),
/// then widened level by level while there are more than `max`.
pub fn canonical_peers(peers: &BTreeSet<IpNet>, max: usize) -> BTreeSet<IpNet> {
    const V4: [u8; 5] = [32, 24, 16, 8, 0];
    const V6: [u8; 5] = [128, 64, 48, 32, 0];
    let levels = |n: &IpNet| if matches!(n, IpNet::V4(_)) { V4 } else { V6 };
    // How many coarser levels a net can still be widened to.
    let tier = |n: &IpNet| levels(n).iter().filter(|&&l| l < n.prefix_len()).count();
    let mut v = IpNet::aggregate(&peers.iter().copied().collect::<Vec<_>>());
    while v.len() > max.max(2) {
        let Some(top) = v.iter().map(tier).max() else {
            break;
        };
        if top == 0 {
            break;
        }
        v = v
            .iter()
            .map(|n| {
                if tier(n) != top {
                    return *n;
                }
                let next = levels(n)
                    .iter()
                    .copied()
                    .find(|&l| l < n.prefix_len())
                    .unwrap_or(0);
                n.supernet_at(next)
            })
            .collect();
        v = IpNet::aggregate(&v);
    }
    v.into_iter().collect()
}

trait SupernetAt {
    fn supernet_at(&self, len: u8) -> IpNet;
}

impl SupernetAt for IpNet {
    fn supernet_at(&self, len: u8) -> IpNet {
        let net = match self {
            IpNet::V4(n) => ipnet::Ipv4Net::new(n.addr(), len).map(IpNet::V4),
            IpNet::V6(n) => ipnet::Ipv6Net::new(n.addr(), len).map(IpNet::V6),
        };
        // `len` comes from the level tables and is always valid for the family.
        net.map(|n| n.trunc()).unwrap_or(*self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_patterns() {
        let p = |s: &str| proc_pattern(s);
        assert_eq!(
            p("/proc/12/oom_score_adj").as_deref(),
            Some("/proc/[0-9]*/oom_score_adj")
        );
        assert_eq!(
            p("/proc/12/task/13/comm").as_deref(),
            Some("/proc/[0-9]*/task/[0-9]*/comm")
        );
        assert_eq!(p("/proc/12/task/x").as_deref(), Some("/proc/[0-9]*/task/x"));
        assert_eq!(
            p("/proc/12/task/13").as_deref(),
            Some("/proc/[0-9]*/task/13")
        );
        for none in [
            "/proc/12",
            "/proc/self/comm",
            "/proc/sys/kernel/x",
            "/proc/1a/x",
            "/etc/12/x",
            "/proc//x",
        ] {
            assert_eq!(p(none), None, "{none}");
        }
        assert!(is_proc_pattern("/proc/[0-9]*/comm"));
        assert!(!is_proc_pattern("/proc/12/comm"));
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("test net")
    }

    #[test]
    fn paths() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(parent("rel"), None);
        assert_eq!(depth("/var/log"), 2);
        assert_eq!(depth("/"), 0);
        assert_eq!(dir_key("/var/log"), "/var/log/**");
        assert_eq!(dir_key("/"), "/**");
        assert_eq!(dir_of_key("/var/log/**"), Some("/var/log"));
        assert_eq!(dir_of_key("/**"), Some("/"));
        assert_eq!(dir_of_key("/var/log/x"), None);
    }

    #[test]
    fn many_files_in_one_dir_generalise_past_the_threshold() {
        let limits = Limits {
            file_dir_threshold: 3,
            ..Limits::default()
        };
        let mut p = Profile::new(ImageRef::new("nginx", ""));
        for i in 0..3 {
            let d = p.learn_write(&format!("/var/cache/nginx/f{i}"), 10 + i, &limits);
            assert_eq!(d.len(), 1, "{d:?}");
        }
        assert_eq!(p.write_files.len(), 3);
        let d = p.learn_write("/var/cache/nginx/f3", 20, &limits);
        assert_eq!(
            d,
            vec![
                Delta::NewFileWrite {
                    path: "/var/cache/nginx/f3".into()
                },
                Delta::Generalised {
                    dir: "/var/cache/nginx".into(),
                    files: (0..4).map(|i| format!("/var/cache/nginx/f{i}")).collect(),
                    dirs: vec![],
                }
            ]
        );
        assert!(p.write_files.is_empty());
        assert_eq!(
            p.write_dirs.get("/var/cache/nginx"),
            Some(&Seen {
                count: 4,
                first_seen: 10,
                last_seen: 20
            })
        );
        // Covered from now on: no delta, the directory's count moves.
        assert!(p
            .learn_write("/var/cache/nginx/sub/x", 30, &limits)
            .is_empty());
        assert_eq!(p.write_dirs["/var/cache/nginx"].count, 5);
        assert!(p.write_allowed("/var/cache/nginx"));
        assert!(p.write_allowed("/var/cache/nginx/a/b"));
        assert!(!p.write_allowed("/var/cache/nginxx/a"));
        assert!(!p.write_allowed("/var/cache"));
    }

    #[test]
    fn shallow_directories_never_generalise() {
        let limits = Limits {
            file_dir_threshold: 1,
            ..Limits::default()
        };
        let mut p = Profile::new(ImageRef::new("x", ""));
        for i in 0..5 {
            p.learn_write(&format!("/tmp/f{i}"), 1, &limits);
        }
        assert_eq!(p.write_files.len(), 5);
        assert!(p.write_dirs.is_empty());
    }

    #[test]
    fn generalisation_cascades_upward() {
        let limits = Limits {
            file_dir_threshold: 2,
            ..Limits::default()
        };
        let mut p = Profile::new(ImageRef::new("x", ""));
        for d in ["a", "b", "c"] {
            for f in 0..3 {
                p.learn_write(&format!("/srv/data/{d}/{f}"), 1, &limits);
            }
        }
        // a/**, b/** and c/** are three children of /srv/data: > 2.
        assert!(p.write_files.is_empty());
        assert_eq!(p.write_dirs.keys().collect::<Vec<_>>(), vec!["/srv/data"]);
        assert_eq!(p.write_dirs["/srv/data"].count, 9);
    }

    #[test]
    fn peers_aggregate_and_widen() {
        let mut s = BTreeSet::new();
        s.insert(net("10.0.0.1/32"));
        s.insert(net("10.0.0.0/24"));
        assert_eq!(
            canonical_peers(&s, 8),
            [net("10.0.0.0/24")].into_iter().collect()
        );
        let s: BTreeSet<IpNet> = (1..=9).map(|i| net(&format!("10.0.{i}.1/32"))).collect();
        // 9 /32s > 8 → nine /24s, which aggregate (adjacent ones merge) to 4.
        assert_eq!(
            canonical_peers(&s, 8),
            ["10.0.1.0/24", "10.0.2.0/23", "10.0.4.0/22", "10.0.8.0/23"]
                .into_iter()
                .map(net)
                .collect()
        );
        // With room for 3 only, the /22../24 tier widens again, to one /16.
        assert_eq!(
            canonical_peers(&s, 3),
            [net("10.0.0.0/16")].into_iter().collect()
        );
        // adjacent addresses aggregate exactly, without widening
        let s: BTreeSet<IpNet> = (1..=9).map(|i| net(&format!("10.0.0.{i}/32"))).collect();
        assert_eq!(canonical_peers(&s, 8).len(), 4);
        let s: BTreeSet<IpNet> = (0..9)
            .map(|i| net(&format!("10.0.0.{}/32", 2 * i + 1)))
            .collect();
        assert_eq!(
            canonical_peers(&s, 8),
            [net("10.0.0.0/24")].into_iter().collect()
        );
        let mut s: BTreeSet<IpNet> = (0..9)
            .map(|i| net(&format!("10.0.0.{}/32", 2 * i + 1)))
            .collect();
        s.insert(net("2001:db8::1/128"));
        // Both families sit at their most specific tier and widen together:
        // the IPv4 /32s to one /24, the IPv6 /128 to a /64.
        assert_eq!(
            canonical_peers(&s, 8),
            [net("10.0.0.0/24"), net("2001:db8::/64")]
                .into_iter()
                .collect()
        );
    }

    #[test]
    fn outbound_learning_reports_new_ports_and_peers() {
        let l = Limits::default();
        let mut p = Profile::new(ImageRef::new("x", ""));
        let ip: IpAddr = "10.96.0.10".parse().expect("ip");
        let d = p.learn_outbound(Proto::Udp, 53, ip, 5, &l);
        assert_eq!(
            d,
            vec![
                Delta::NewOutbound {
                    proto: Proto::Udp,
                    port: 53
                },
                Delta::NewPeer {
                    proto: Proto::Udp,
                    port: 53,
                    peers: vec![net("10.96.0.10/32")]
                }
            ]
        );
        assert!(p.learn_outbound(Proto::Udp, 53, ip, 6, &l).is_empty());
        assert_eq!(p.outbound[&(Proto::Udp, 53)].seen.count, 2);
    }

    #[test]
    fn merge_is_a_union() {
        let l = Limits::default();
        let img = ImageRef::new("docker.io/library/nginx", "1.27");
        let mut a = Profile::new(img.clone());
        a.learn_exec("/usr/sbin/nginx", false, 10);
        a.learning.containers = 1;
        a.learning.started = 10;
        a.learning.ended = 10;
        let mut b = Profile::new(img.clone());
        b.learn_exec("/usr/sbin/nginx", false, 5);
        b.learn_exec("/docker-entrypoint.sh", false, 6);
        b.learning.containers = 2;
        b.learning.started = 5;
        b.learning.ended = 6;
        b.learning.tainted = true;
        a.merge(&b, &l).expect("same image");
        assert_eq!(a.exec.len(), 2);
        assert_eq!(
            a.exec["/usr/sbin/nginx"].seen,
            Seen {
                count: 2,
                first_seen: 5,
                last_seen: 10
            }
        );
        assert_eq!(a.learning.containers, 3);
        assert_eq!((a.learning.started, a.learning.ended), (5, 10));
        assert!(a.learning.tainted);
        let other = Profile::new(ImageRef::new("redis", ""));
        let err = a.merge(&other, &l).expect_err("different images");
        assert_eq!(
            err.to_string(),
            "cannot merge profiles of different images: docker.io/library/nginx:1.27 and redis"
        );
    }

    #[test]
    fn merge_regeneralises_writes() {
        let l = Limits {
            file_dir_threshold: 2,
            ..Limits::default()
        };
        let img = ImageRef::new("x", "");
        let mut a = Profile::new(img.clone());
        a.learn_write("/var/log/app/a", 1, &l);
        a.learn_write("/var/log/app/b", 1, &l);
        let mut b = Profile::new(img.clone());
        b.learn_write("/var/log/app/c", 2, &l);
        a.merge(&b, &l).expect("merge");
        assert!(a.write_files.is_empty());
        assert_eq!(
            a.write_dirs.keys().collect::<Vec<_>>(),
            vec!["/var/log/app"]
        );
        assert_eq!(a.write_dirs["/var/log/app"].count, 3);
    }

    #[test]
    fn stems() {
        let i = ImageRef::new("docker.io/library/nginx", "latest");
        assert_eq!(i.short_stem(), "nginx");
        assert_eq!(i.full_stem(), "docker.io_library_nginx_latest");
        assert_eq!(ImageRef::new("nginx", "1.27").short_stem(), "nginx_1.27");
        assert_eq!(ImageRef::new("a/b c", "").short_stem(), "b_c");
    }
}
