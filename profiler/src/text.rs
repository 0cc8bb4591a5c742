//! Text shared by the YAML and the generated rules of every dimension: times,
//! rule blocks, rule names. Below the dimensions (`dimension/`) and the files
//! that list them (`yaml.rs`, `generate.rs`), so both use it.

use crate::model::{Dimension, ImageRef, Proto, Seen};
use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

/// RFC 3339 UTC with nanoseconds (`2025-11-22T00:07:57.000000000Z`).
pub fn format_ts(ns: u64) -> String {
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

/// Parse an RFC 3339 time back to ns since the epoch.
pub fn parse_ts(s: &str) -> Result<u64, String> {
    let t = humantime::parse_rfc3339_weak(s).map_err(|e| format!("bad time '{s}': {e}"))?;
    let d = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| format!("time '{s}' is before 1970"))?;
    u64::try_from(d.as_nanos()).map_err(|_| format!("time '{s}' is out of range"))
}

/// Why a profile cannot be turned into rules.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GenerateError {
    #[error("image {image}: '{value}' cannot be written in a Falco condition ({why})")]
    Unrepresentable {
        image: String,
        value: String,
        why: &'static str,
    },
}

/// Name of the generated rule for a dimension of an image.
pub fn rule_name(image: &ImageRef, dim: Dimension) -> String {
    let what = match dim {
        Dimension::Exec => "process",
        Dimension::Outbound => "outbound connection",
        Dimension::Inbound => "inbound connection",
        Dimension::FileWrite => "file write",
    };
    format!("Unexpected {what} in {image} (falco-learn)")
}

pub(crate) fn yaml_scalar(s: &str) -> String {
    falco_learn_rules::emit::yaml_scalar(s)
}

pub(crate) fn rule(o: &mut String, name: &str, desc: &str, cond: &str, output: &str, tag: &str) {
    rule_with(o, name, desc, cond, output, tag, "");
}

pub(crate) fn rule_with(
    o: &mut String,
    name: &str,
    desc: &str,
    cond: &str,
    output: &str,
    tag: &str,
    exceptions: &str,
) {
    let _ = writeln!(
        o,
        "- rule: {}\n  desc: {}\n  condition: >\n    {cond}\n  output: {}\n  priority: WARNING\n  tags: [falco_learn, container, {tag}]\n{exceptions}",
        yaml_scalar(name),
        yaml_scalar(desc),
        yaml_scalar(output),
    );
}

/// `, count: …, first_seen: …, last_seen: …` of a YAML entry (what is known).
pub(crate) fn seen_fields(out: &mut String, s: &Seen) {
    if s.count != 0 {
        let _ = write!(out, ", count: {}", s.count);
    }
    if s.first_seen != 0 {
        let _ = write!(out, ", first_seen: {}", format_ts(s.first_seen));
    }
    if s.last_seen != 0 {
        let _ = write!(out, ", last_seen: {}", format_ts(s.last_seen));
    }
}

/// A protocol as `fd.l4proto` compares it: an inet socket of no known
/// protocol reads `<NA>` in Falco (and in our field table).
pub(crate) fn l4_literal(p: Proto) -> &'static str {
    match p {
        Proto::Unknown => "\"<NA>\"",
        p => p.as_str(),
    }
}

/// `- macro: NAME` ORing the allowed alternatives, and the ` and not NAME` a
/// rule's condition ends with ("" when nothing is allowed: no macro).
pub(crate) fn allowed_macro(o: &mut String, name: &str, alts: &[String]) -> String {
    if alts.is_empty() {
        return String::new();
    }
    let _ = writeln!(
        o,
        "- macro: {name}\n  condition: >\n    {}\n",
        alts.join("\n    or ")
    );
    format!(" and not {name}")
}
