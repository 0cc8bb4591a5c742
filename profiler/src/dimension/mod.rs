//! One home per profile dimension (issue 9 §9).
//!
//! A dimension is everything a profile says about one kind of behaviour: which
//! events teach it (the [`Behaviour`] it recognises), how it is learned and
//! merged, whether a profile allows an event, its YAML section, its generated
//! Falco rule, its lines in `profiles diff`, its records in the store and its
//! contribution to the kernel filter. A dimension that implements [`Dim`] keeps
//! all of that in its own module under `dimension/`; the rest of the crate (and
//! the store and the enforcer) reach it only through [`DIMS`]:
//!
//! | where | what it does with [`DIMS`] |
//! |---|---|
//! | `matcher::behaviour` | asks each dimension first ([`Dim::behaviour`]) |
//! | `Profile::check` | [`Dim::allows`] |
//! | `Learner::observe` | [`Dim::learn`] (deltas, changed store keys) |
//! | `Profile::merge`, `Profile::size` | [`Dim::merge`], [`Dim::entries`] |
//! | `yaml::to_yaml` / `from_yaml` | [`Dim::write_yaml`] / the section's typed entries (`yaml.rs`: one field) |
//! | `generate::generate_rules` | [`Dim::generate`] |
//! | `diff::diff` | [`Dim::diff`] |
//! | the store's `dims` tree | [`Dim::store_entries`], [`Dim::store_entry`], [`Dim::load_store_entry`], [`Dim::is_learned`] |
//! | the enforcer | [`Dimension::ALL`] (alert rules, size metrics) |
//!
//! Adding a dimension: a module here implementing [`Dim`], its entry in
//! [`DIMS`], a [`Dimension`] variant, a [`Behaviour`] variant, and (when it has
//! a YAML section) one field in `yaml.rs`'s file structs.
//!
//! Inbound (the ports a container serves) is built this way. exec (with
//! lineage and drift), outbound and file writes predate the trait and are still
//! spelled across `matcher.rs`, `model.rs`, `yaml.rs`, `generate.rs`,
//! `diff.rs`, `kernel.rs`, the store's per-dimension trees and the enforcer;
//! moving them behind [`Dim`] is the next step (profiler/README.md).

pub mod inbound;

pub use crate::model::Dimension;
use crate::model::{Delta, ImageRef, Limits, Profile, Proto};
use crate::text::GenerateError;
use crate::ProfileError;
use falco_learn_event::{Event, ExeFlags};
use std::fmt;
use std::net::IpAddr;

/// What an event does, in the profile's terms. Values may be missing
/// (empty path, unknown port or peer): such an event cannot be learned and
/// never matches a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour<'a> {
    /// A successful execve/execveat, by kernel-resolved `proc.exepath`, with
    /// the parent's (`proc.pexepath`, empty when unknown) and where the
    /// executable came from.
    Exec {
        path: &'a str,
        parent: &'a str,
        /// The process is pid 1 of its pid namespace (`proc.vpid = 1`).
        init: bool,
        flags: ExeFlags,
    },
    /// connect (succeeded or `EINPROGRESS`) or a successful sendto/sendmsg
    /// on an IPv4/IPv6 socket, by `fd.l4proto`, `fd.sport`, `fd.sip`.
    /// Loopback peers count like any other (documented in the README).
    Outbound {
        proto: Proto,
        port: Option<u16>,
        peer: Option<IpAddr>,
    },
    /// A successful open of a regular file with write intent: `O_WRONLY` or
    /// `O_RDWR` access, `O_CREAT`, `O_TRUNC`, or `creat`; by `fd.name`.
    Write { path: &'a str },
    /// Server traffic: an accepted connection or a UDP reply from the server's
    /// end, by `fd.l4proto` and the served port `fd.sport`
    /// (`dimension::inbound`).
    Inbound { proto: Proto, port: Option<u16> },
}

impl Behaviour<'_> {
    /// The dimension this behaviour belongs to.
    pub fn dimension(&self) -> Dimension {
        match self {
            Behaviour::Exec { .. } => Dimension::Exec,
            Behaviour::Outbound { .. } => Dimension::Outbound,
            Behaviour::Write { .. } => Dimension::FileWrite,
            Behaviour::Inbound { .. } => Dimension::Inbound,
        }
    }

    /// Human form of the value (`/usr/sbin/nginx`, `tcp/443 198.51.100.10`).
    pub fn value(&self) -> String {
        match self {
            Behaviour::Exec { path, .. } | Behaviour::Write { path } => na(path).to_string(),
            Behaviour::Outbound { proto, port, peer } => format!(
                "{proto}/{} {}",
                port.map_or("<NA>".to_string(), |p| p.to_string()),
                peer.map_or("<NA>".to_string(), |p| p.to_string())
            ),
            Behaviour::Inbound { proto, port } => format!(
                "{proto}/{}",
                port.map_or("<NA>".to_string(), |p| p.to_string())
            ),
        }
    }
}

pub(crate) fn na(s: &str) -> &str {
    if s.is_empty() {
        "<NA>"
    } else {
        s
    }
}

/// How one entry differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sign {
    /// Only in the second profile.
    Added,
    /// Only in the first profile.
    Removed,
    /// In both, with different peers or flags.
    Changed,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub dimension: Dimension,
    pub sign: Sign,
    /// The entry (`/usr/sbin/nginx`, `udp/53 [10.96.0.10/32]`, `/var/log/**`).
    pub value: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.sign {
            Sign::Added => '+',
            Sign::Removed => '-',
            Sign::Changed => '~',
        };
        write!(f, "{s} {} {}", self.dimension, self.value)
    }
}

impl Profile {
    /// Union with another profile of the same image (replicas, nodes):
    /// counts add, time windows widen, peers and paths are re-aggregated
    /// with `limits`; every dimension of [`DIMS`] merges its own.
    pub fn merge(&mut self, other: &Profile, limits: &Limits) -> Result<(), ProfileError> {
        self.merge_core(other, limits)?;
        for d in DIMS {
            d.merge(self, other, limits);
        }
        Ok(())
    }

    /// Number of learned entries (execs + outbound ports + write paths + the
    /// entries of the dimensions of [`DIMS`]).
    pub fn size(&self) -> usize {
        self.size_core() + DIMS.iter().map(|d| d.entries(self)).sum::<usize>()
    }
}

/// What a dimension learned from one behaviour: the deltas, and the store keys
/// ([`Dim::store_entry`]) of the entries that changed.
#[derive(Debug, Default)]
pub struct Learned {
    pub deltas: Vec<Delta>,
    pub changed: Vec<Vec<u8>>,
}

/// What generated rules share across dimensions (see `generate::generate_rules`).
pub struct RuleContext<'a> {
    pub image: &'a ImageRef,
    /// `fl_learned_<image>`: the prefix of every list and macro.
    pub prefix: &'a str,
    /// The image macro and the runtime-setup exclusion, ANDed.
    pub image_macro: &'a str,
    /// `container=%container.id …`, the end of every output.
    pub output_tail: &'a str,
}

/// One profile dimension, in one module. Object safe: [`DIMS`] lists them.
pub trait Dim: Sync {
    fn dimension(&self) -> Dimension;

    /// The event's behaviour in this dimension, if it has one. Asked before the
    /// older dimensions' definitions, so a dimension may claim events they would
    /// otherwise take (inbound takes a server's UDP replies from outbound).
    fn behaviour<'a>(&self, ev: &'a Event) -> Option<Behaviour<'a>>;

    /// Whether the profile allows `b` (a behaviour of this dimension). A profile
    /// that never learned the dimension (an older schema) allows everything of it.
    fn allows(&self, p: &Profile, b: &Behaviour) -> bool;

    /// Learn `b` (a behaviour of this dimension) at `ts`.
    fn learn(&self, p: &mut Profile, b: &Behaviour, ts: u64, limits: &Limits) -> Learned;

    /// Whether the profile holds this dimension at all (profiles of an older
    /// schema were learned without it: not enforced, no rule generated).
    fn is_learned(&self, p: &Profile) -> bool;

    /// Mark the dimension learned (an empty set) or not learned.
    fn set_learned(&self, p: &mut Profile, learned: bool);

    /// Number of entries.
    fn entries(&self, p: &Profile) -> usize;

    /// Union `other`'s entries into `p` (replicas, nodes). Learned if either was.
    fn merge(&self, p: &mut Profile, other: &Profile, limits: &Limits);

    /// The dimension's YAML lines, at the place of its section (nothing when the
    /// profile never learned it, so an old profile round-trips as it was).
    fn write_yaml(&self, p: &Profile, out: &mut String);

    /// The dimension's lists, macros and rule; nothing when not learned.
    fn generate(
        &self,
        p: &Profile,
        cx: &RuleContext<'_>,
        out: &mut String,
    ) -> Result<(), GenerateError>;

    /// What changed from `a` to `b`.
    fn diff(&self, a: &Profile, b: &Profile, out: &mut Vec<Change>);

    /// Every entry as (store key, JSON value); the key is the entry's own part
    /// (the store prefixes image and dimension).
    fn store_entries(&self, p: &Profile) -> Vec<(Vec<u8>, serde_json::Value)>;

    /// The entry under `key`, or None when it is no longer in the profile.
    fn store_entry(&self, p: &Profile, key: &[u8]) -> Option<serde_json::Value>;

    /// Put a stored entry back into `p`.
    fn load_store_entry(
        &self,
        p: &mut Profile,
        key: &[u8],
        value: serde_json::Value,
    ) -> Result<(), String>;
}

/// Every dimension that lives in its own module, in the order of YAML
/// sections, generated rules and diffs.
pub static DIMS: &[&dyn Dim] = &[&inbound::Inbound];

/// The [`Dim`] of a dimension, when it has one.
pub fn dim(d: Dimension) -> Option<&'static dyn Dim> {
    DIMS.iter().copied().find(|x| x.dimension() == d)
}

/// The [`Dim`] named `name` ([`Dimension::as_str`]), for the store.
pub fn dim_named(name: &str) -> Option<&'static dyn Dim> {
    DIMS.iter()
        .copied()
        .find(|x| x.dimension().as_str() == name)
}
