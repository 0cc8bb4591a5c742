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
//! | `Learner::observe` | [`Dim::learn`] (deltas, dirty store keys) |
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

use crate::diff::Change;
use crate::generate::GenerateError;
use crate::learn::Dirty;
pub use crate::matcher::{Behaviour, Dimension};
use crate::model::{Delta, ImageRef, Limits, Profile};
use falco_learn_event::Event;

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

    /// Learn `b` (a behaviour of this dimension) at `ts`: the deltas, and the
    /// store keys ([`Dim::store_entry`]) that changed into `dirty`.
    fn learn(
        &self,
        p: &mut Profile,
        b: &Behaviour,
        ts: u64,
        limits: &Limits,
        dirty: &mut Dirty,
    ) -> Vec<Delta>;

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
