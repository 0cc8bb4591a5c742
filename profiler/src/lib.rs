//! Per-image behaviour profiles for falco-learn.
//!
//! A [`Profile`] says what containers of one image (repository + tag) were
//! seen doing while learning: executables by kernel-resolved path, outbound
//! connections by protocol + remote port (peers aggregated to CIDRs), the
//! ports it serves (inbound), and files opened for writing (generalised to
//! `dir/**` past a threshold). Each dimension's home: [`dimension`].
//!
//! - [`learn`]: a [`Learner`] turns events into profiles and deltas. Events a
//!   loaded default rule flags are not learned (poison resistance): they are
//!   counted and listed, and the profile is marked tainted.
//! - [`matcher`]: [`behaviour`] defines which events count, for learning and
//!   matching alike; [`Profile::matches`] answers with map lookups whether an
//!   event departs from a profile ([`Anomaly`]).
//! - [`yaml`]: deterministic YAML for git review, strict parsing with
//!   positions in every error.
//! - [`generate`]: self-contained Falco allowlist rules, one per dimension,
//!   whose verdicts equal [`Profile::matches`].
//! - [`diff`]: what changed between two profiles of an image.
//!
//! Merging profiles of the same image (replicas, nodes) is a union:
//! [`Profile::merge`].

pub mod diff;
pub mod dimension;
pub mod generate;
pub mod glob;
pub mod kernel;
pub mod learn;
pub mod matcher;
pub mod model;
pub mod text;
pub mod yaml;

pub use dimension::{Behaviour, Dim, DIMS};
pub use generate::{generate_rules, rule_name, GenerateError};
pub use learn::{
    tree_position, Dirty, LearnStats, Learner, Outcome, Policy, ProcKey, TreePos, WindowMemory,
};
pub use matcher::{behaviour, Anomaly};
pub use model::{
    canonical_peers, dir_key, dir_of_key, is_proc_pattern, lineage_checked, write_pattern, Delta,
    Dimension, ExecEntry, ImageRef, InboundPorts, Learning, Limits, OutboundEntry, Profile, Proto,
    Review, ReviewWrite, Seen, SessionEntry, TaintEntry, WriteKey, MIN_SCHEMA_VERSION,
    SCHEMA_VERSION,
};
pub use yaml::{from_yaml, to_yaml};

/// Errors of the profiler.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Not YAML, or not a profile (unknown key, wrong type, bad value).
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// Parsed, but inconsistent (duplicate entry, unsupported schema).
    #[error("{file}:{line}: {key}: {message}")]
    Invalid {
        file: String,
        line: usize,
        key: String,
        message: String,
    },
    #[error("cannot merge profiles of different images: {a} and {b}")]
    MergeImages { a: String, b: String },
    #[error("bad learning limits: {0}")]
    Limits(String),
}
