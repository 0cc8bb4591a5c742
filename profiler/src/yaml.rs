//! Profiles as YAML files: deterministic output for git, strict input.
//!
//! Output is written by hand rather than by a serializer so that it is
//! stable and diff-friendly: sections in a fixed order, entries sorted, one
//! line per entry (a flow mapping), scalars quoted only when YAML needs it.
//! Input is read with serde_yaml into structs with `deny_unknown_fields`,
//! then checked (schema version, protocols, CIDRs, duplicates); every error
//! names the file, the line and the key.

use crate::glob::approx_globs;
use crate::model::{
    dir_key, dir_of_key, is_proc_pattern, ExecEntry, ImageRef, Learning, OutboundEntry, Profile,
    Proto, ReviewWrite, Seen, SessionEntry, TaintEntry, MIN_SCHEMA_VERSION, SCHEMA_VERSION,
};
use crate::text::seen_fields;
pub use crate::text::{format_ts, parse_ts};
use crate::ProfileError;
use ipnet::IpNet;
use serde::Deserialize;
use std::fmt::Write;
use std::net::IpAddr;

// ------------------------------------------------------------------ output

/// A scalar as it may appear inside a flow collection (the rules crate's quoting, shared
/// with generated rules).
fn scalar(s: &str) -> String {
    falco_learn_rules::emit::yaml_scalar(s)
}

/// A YAML double-quoted scalar holding exactly `s` (see
/// [`falco_learn_rules::emit::yaml_double_quoted`]).
pub fn double_quoted(s: &str) -> String {
    falco_learn_rules::emit::yaml_double_quoted(s)
}

/// The profile as YAML, deterministic byte for byte.
pub fn to_yaml(p: &Profile) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# falco-learn profile of {} (schema {SCHEMA_VERSION}).",
        p.image
    );
    o.push_str("# Written by `falco-learn profiles export`; review, then commit. Times are UTC.\n");
    let _ = writeln!(o, "schema_version: {SCHEMA_VERSION}");
    o.push_str("image:\n");
    let _ = writeln!(o, "  repository: {}", scalar(&p.image.repository));
    if !p.image.tag.is_empty() {
        let _ = writeln!(o, "  tag: {}", scalar(&p.image.tag));
    }
    let digests: Vec<String> = p.digests.iter().map(|d| scalar(d)).collect();
    let _ = writeln!(o, "  digests: [{}]", digests.join(", "));
    let l = &p.learning;
    o.push_str("learning:\n");
    for (k, v) in [
        ("started", l.started),
        ("ended", l.ended),
        ("last_new_behaviour", l.last_new_behaviour),
    ] {
        let _ = writeln!(o, "  {k}: {}", format_ts(v));
    }
    let _ = writeln!(o, "  containers: {}", l.containers);
    let _ = writeln!(o, "  starts_observed: {}", l.starts_observed);
    let _ = writeln!(o, "  running_at_start: {}", l.running_at_start);
    let _ = writeln!(o, "  events: {}", l.events);
    let _ = writeln!(o, "  tainted: {}", l.tainted);
    if l.taint_reasons.is_empty() {
        o.push_str("  taint_reasons: []\n");
    } else {
        o.push_str("  taint_reasons:\n");
        for r in &l.taint_reasons {
            let _ = writeln!(o, "    - {}", scalar(r));
        }
    }
    let _ = writeln!(o, "  flagged_events: {}", l.flagged_events);
    let _ = writeln!(
        o,
        "  flagged_descendant_events: {}",
        l.flagged_descendant_events
    );
    if l.taint.is_empty() {
        o.push_str("  taint: []\n");
    } else {
        o.push_str("  taint:\n");
        for t in &l.taint {
            let _ = writeln!(
                o,
                "    - {{ time: {}, rule: {}, event: {}, process: {}, value: {}, container: {} }}",
                format_ts(t.time),
                scalar(&t.rule),
                scalar(&t.event),
                scalar(&t.process),
                scalar(&t.value),
                scalar(&t.container)
            );
        }
    }
    if p.exec.is_empty() {
        o.push_str("exec: []\n");
    } else {
        o.push_str("exec:\n");
        for (path, e) in &p.exec {
            exec_line(&mut o, "  ", path, e);
        }
    }
    o.push_str("network:\n");
    if p.outbound.is_empty() {
        o.push_str("  outbound: []\n");
    } else {
        o.push_str("  outbound:\n");
        for ((proto, port), e) in &p.outbound {
            let _ = write!(o, "    - {{ proto: {proto}, port: {port}");
            seen_fields(&mut o, &e.seen);
            let peers: Vec<String> = e.peers.iter().map(|n| n.to_string()).collect();
            let _ = writeln!(o, ", peers: [{}] }}", peers.join(", "));
        }
    }
    // the dimensions with a home of their own (dimension::DIMS) under `network:`
    for d in crate::dimension::DIMS {
        d.write_yaml(p, &mut o);
    }
    o.push_str("files:\n");
    // (key, seen, glob, approximated as this glob in Falco rules)
    let mut writes: Vec<(String, &Seen, bool, Vec<String>)> = p
        .write_files
        .iter()
        .map(|(k, s)| (k.clone(), s, false, approx_globs(k)))
        .chain(p.write_dirs.iter().map(|(d, s)| {
            let g = approx_globs(d).iter().map(|g| dir_key(g)).collect();
            (dir_key(d), s, false, g)
        }))
        .chain(
            p.write_globs
                .iter()
                .map(|(g, s)| (g.clone(), s, true, Vec::new())),
        )
        .collect();
    writes.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.cmp(&b.2)));
    if writes.is_empty() {
        o.push_str("  write: []\n");
    } else {
        o.push_str("  write:\n");
        for (path, s, glob, approx) in writes {
            let _ = write!(o, "    - {{ path: {}", scalar(&path));
            seen_fields(&mut o, s);
            if glob {
                o.push_str(", glob: true");
            }
            o.push_str(" }");
            approx_comment(&mut o, &approx);
            o.push('\n');
        }
    }
    review_section(&mut o, p);
    o
}

/// One exec entry (under `exec:` or `review.drift:`, the same form).
fn exec_line(o: &mut String, indent: &str, path: &str, e: &ExecEntry) {
    let _ = write!(o, "{indent}- {{ path: {}", scalar(path));
    seen_fields(o, &e.seen);
    for (on, k) in [
        (e.tmpfs, "tmpfs"),
        (e.memfd, "memfd"),
        (e.upper_layer, "upper_layer"),
        (e.other_root, "other_root"),
        (e.host_root, "host_root"),
        (e.other_fs, "other_fs"),
        (e.written, "written"),
        (e.init, "init"),
    ] {
        if on {
            let _ = write!(o, ", {k}: true");
        }
    }
    if !e.writer.is_empty() {
        let _ = write!(o, ", writer: {}", scalar(&e.writer));
    }
    if !e.parents.is_empty() {
        let v: Vec<String> = e.parents.iter().map(|p| scalar(p)).collect();
        let _ = write!(o, ", parents: [{}]", v.join(", "));
    }
    o.push_str(" }");
    approx_comment(o, &approx_globs(path));
    o.push('\n');
}

/// The `review:` section (always written, empty lists included).
fn review_section(o: &mut String, p: &Profile) {
    let r = &p.review;
    o.push_str("review:\n");
    if r.drift.is_empty() {
        o.push_str("  drift: []\n");
    } else {
        o.push_str("  drift:\n");
        for (path, e) in &r.drift {
            exec_line(o, "    ", path, e);
        }
    }
    if r.writes.is_empty() {
        o.push_str("  writes: []\n");
    } else {
        o.push_str("  writes:\n");
        for (path, w) in &r.writes {
            let _ = write!(o, "    - {{ path: {}", scalar(path));
            seen_fields(o, &w.seen);
            if !w.writer.is_empty() {
                let _ = write!(o, ", writer: {}", scalar(&w.writer));
            }
            o.push_str(" }\n");
        }
    }
    if r.sessions.is_empty() {
        o.push_str("  sessions: []\n");
    } else {
        o.push_str("  sessions:\n");
        for s in &r.sessions {
            let _ = writeln!(o, "    - container: {}", scalar(&s.container));
            let _ = writeln!(o, "      pid: {}", s.pid);
            let _ = writeln!(o, "      time: {}", format_ts(s.time));
            let _ = writeln!(o, "      command: {}", scalar(&s.command));
            let _ = writeln!(o, "      events: {}", s.events);
            if s.did.is_empty() {
                o.push_str("      did: []\n");
            } else {
                o.push_str("      did:\n");
                for (what, seen) in &s.did {
                    let _ = write!(o, "        - {{ what: {}", scalar(what));
                    seen_fields(o, seen);
                    o.push_str(" }\n");
                }
            }
        }
    }
}

/// Marks an entry that generated Falco rules allow as a wider glob.
fn approx_comment(o: &mut String, approx: &[String]) {
    if let Some(g) = approx.first() {
        let _ = write!(
            o,
            "  # not exact in Falco rules (a byte that is not UTF-8, or a backslash \
             spelled differently for Falco): allowed as glob {}",
            double_quoted(g)
        );
    }
}

// ------------------------------------------------------------------- input

/// Time that deserialises from RFC 3339 (errors carry serde_yaml's position).
#[derive(Debug, Clone, Copy, Default)]
struct Ts(u64);

impl<'de> Deserialize<'de> for Ts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Ts, D::Error> {
        let s = String::deserialize(d)?;
        parse_ts(&s).map(Ts).map_err(serde::de::Error::custom)
    }
}

/// A peer: CIDR, or a bare address meaning /32 or /128.
#[derive(Debug, Clone, Copy)]
struct Net(IpNet);

impl<'de> Deserialize<'de> for Net {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Net, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<IpNet>()
            .map(|n| n.trunc())
            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
            .map(Net)
            .map_err(|_| serde::de::Error::custom(format!("'{s}' is not an IP address or CIDR")))
    }
}

#[derive(Debug, Clone, Copy)]
struct ProtoField(Proto);

impl<'de> Deserialize<'de> for ProtoField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ProtoField, D::Error> {
        let s = String::deserialize(d)?;
        Proto::parse(&s).map(ProtoField).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown protocol '{s}', expected tcp, udp, icmp, raw or unknown"
            ))
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    schema_version: u32,
    image: ImageFile,
    #[serde(default)]
    learning: LearningFile,
    #[serde(default)]
    exec: Vec<ExecFile>,
    #[serde(default)]
    network: NetworkFile,
    #[serde(default)]
    files: FilesFile,
    #[serde(default)]
    review: ReviewFile,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReviewFile {
    #[serde(default)]
    drift: Vec<ExecFile>,
    #[serde(default)]
    writes: Vec<ReviewWriteFile>,
    #[serde(default)]
    sessions: Vec<SessionFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewWriteFile {
    path: String,
    #[serde(default)]
    count: u64,
    #[serde(default)]
    first_seen: Ts,
    #[serde(default)]
    last_seen: Ts,
    #[serde(default)]
    writer: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionFile {
    #[serde(default)]
    container: String,
    #[serde(default)]
    pid: u32,
    #[serde(default)]
    time: Ts,
    #[serde(default)]
    command: String,
    #[serde(default)]
    events: u64,
    #[serde(default)]
    did: Vec<DidFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DidFile {
    what: String,
    #[serde(default)]
    count: u64,
    #[serde(default)]
    first_seen: Ts,
    #[serde(default)]
    last_seen: Ts,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageFile {
    repository: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    digests: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LearningFile {
    #[serde(default)]
    started: Ts,
    #[serde(default)]
    ended: Ts,
    #[serde(default)]
    last_new_behaviour: Ts,
    #[serde(default)]
    containers: u64,
    #[serde(default)]
    starts_observed: u64,
    #[serde(default)]
    running_at_start: u64,
    #[serde(default)]
    events: u64,
    #[serde(default)]
    tainted: bool,
    #[serde(default)]
    taint_reasons: Vec<String>,
    #[serde(default)]
    flagged_events: u64,
    #[serde(default)]
    flagged_descendant_events: u64,
    #[serde(default)]
    taint: Vec<TaintFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaintFile {
    time: Ts,
    rule: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    process: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    container: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecFile {
    path: String,
    #[serde(default)]
    count: u64,
    #[serde(default)]
    first_seen: Ts,
    #[serde(default)]
    last_seen: Ts,
    #[serde(default)]
    tmpfs: bool,
    #[serde(default)]
    memfd: bool,
    #[serde(default)]
    upper_layer: bool,
    #[serde(default)]
    other_root: bool,
    #[serde(default)]
    host_root: bool,
    /// absent: false from schema 4; before, true (those could not tell a volume's file)
    #[serde(default)]
    other_fs: Option<bool>,
    #[serde(default)]
    written: bool,
    #[serde(default)]
    writer: String,
    #[serde(default)]
    parents: Vec<String>,
    #[serde(default)]
    init: bool,
}

impl ExecFile {
    /// The entry, read from a file of `schema` (before 4, `other_fs` defaults to set).
    fn entry(self, schema: u32) -> (String, ExecEntry) {
        let e = ExecEntry {
            seen: seen(self.count, self.first_seen, self.last_seen),
            tmpfs: self.tmpfs,
            memfd: self.memfd,
            upper_layer: self.upper_layer,
            other_root: self.other_root,
            host_root: self.host_root,
            other_fs: self.other_fs.unwrap_or(schema < 4),
            written: self.written,
            writer: self.writer,
            parents: self.parents.into_iter().filter(|p| !p.is_empty()).collect(),
            init: self.init,
        };
        (self.path, e)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NetworkFile {
    #[serde(default)]
    outbound: Vec<OutboundFile>,
    /// `dimension::inbound` (absent: not learned).
    #[serde(default)]
    inbound: Option<Vec<crate::dimension::inbound::EntryFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboundFile {
    proto: ProtoField,
    port: u16,
    #[serde(default)]
    count: u64,
    #[serde(default)]
    first_seen: Ts,
    #[serde(default)]
    last_seen: Ts,
    peers: Vec<Net>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FilesFile {
    #[serde(default)]
    write: Vec<WriteFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteFile {
    path: String,
    #[serde(default)]
    count: u64,
    #[serde(default)]
    first_seen: Ts,
    #[serde(default)]
    last_seen: Ts,
    /// The path is a glob (Falco `glob` syntax).
    #[serde(default)]
    glob: bool,
}

fn seen(count: u64, first: Ts, last: Ts) -> Seen {
    Seen {
        count,
        first_seen: first.0,
        last_seen: last.0,
    }
}

/// Line (1-based) of the first line at or after `from_line` that contains
/// `needle`, for errors found after parsing.
fn line_of(text: &str, needle: &str, from_line: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(from_line.saturating_sub(1))
        .find(|(_, l)| l.contains(needle))
        .map_or(0, |(i, _)| i + 1)
}

/// Parse a profile file. `file` names it in errors.
pub fn from_yaml(text: &str, file: &str) -> Result<Profile, ProfileError> {
    let pf: ProfileFile = serde_yaml::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        ProfileError::Parse {
            file: file.to_string(),
            line,
            column,
            message: e.to_string(),
        }
    })?;
    let invalid = |key: String, needle: &str, section: &str, message: String| {
        let from = line_of(text, section, 1).max(1);
        ProfileError::Invalid {
            file: file.to_string(),
            line: line_of(text, needle, from),
            key,
            message,
        }
    };
    if !(MIN_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&pf.schema_version) {
        return Err(invalid(
            "schema_version".into(),
            "schema_version",
            "schema_version",
            format!(
                "unsupported schema_version {} (this falco-learn reads {MIN_SCHEMA_VERSION} to \
                 {SCHEMA_VERSION}; a newer falco-learn wrote it)",
                pf.schema_version
            ),
        ));
    }
    if pf.image.repository.is_empty() {
        return Err(invalid(
            "image.repository".into(),
            "repository",
            "image:",
            "must not be empty".into(),
        ));
    }
    let mut p = Profile::new(ImageRef::new(pf.image.repository, pf.image.tag));
    p.digests = pf.image.digests.into_iter().collect();
    let lf = pf.learning;
    p.learning = Learning {
        started: lf.started.0,
        ended: lf.ended.0,
        containers: lf.containers,
        starts_observed: lf.starts_observed,
        running_at_start: lf.running_at_start,
        taint_reasons: lf.taint_reasons.into_iter().collect(),
        events: lf.events,
        last_new_behaviour: lf.last_new_behaviour.0,
        tainted: lf.tainted,
        flagged_events: lf.flagged_events,
        flagged_descendant_events: lf.flagged_descendant_events,
        taint: lf
            .taint
            .into_iter()
            .map(|t| TaintEntry {
                time: t.time.0,
                rule: t.rule,
                event: t.event,
                process: t.process,
                value: t.value,
                container: t.container,
            })
            .collect(),
    };
    p.learning.taint.sort();
    for (i, e) in pf.exec.into_iter().enumerate() {
        let key = format!("exec[{i}].path");
        if e.path.is_empty() {
            return Err(invalid(
                key,
                "path: \"\"",
                "exec:",
                "must not be empty".into(),
            ));
        }
        if p.exec.contains_key(&e.path) {
            let msg = format!("duplicate entry '{}'", e.path);
            return Err(invalid(key, &e.path, "exec:", msg));
        }
        let (path, entry) = e.entry(pf.schema_version);
        p.exec.insert(path, entry);
    }
    let r = pf.review;
    for (i, e) in r.drift.into_iter().enumerate() {
        let key = format!("review.drift[{i}].path");
        if e.path.is_empty() {
            return Err(invalid(
                key,
                "path: \"\"",
                "review:",
                "must not be empty".into(),
            ));
        }
        if p.review.drift.contains_key(&e.path) {
            let msg = format!("duplicate entry '{}'", e.path);
            return Err(invalid(key, &e.path, "review:", msg));
        }
        let (path, entry) = e.entry(pf.schema_version);
        p.review.drift.insert(path, entry);
    }
    for (i, w) in r.writes.into_iter().enumerate() {
        let key = format!("review.writes[{i}].path");
        if p.review.writes.contains_key(&w.path) {
            let msg = format!("duplicate entry '{}'", w.path);
            return Err(invalid(key, &w.path, "writes:", msg));
        }
        p.review.writes.insert(
            w.path,
            ReviewWrite {
                seen: seen(w.count, w.first_seen, w.last_seen),
                writer: w.writer,
            },
        );
    }
    for s in r.sessions {
        p.review.sessions.push(SessionEntry {
            container: s.container,
            pid: s.pid,
            time: s.time.0,
            command: s.command,
            events: s.events,
            did: s
                .did
                .into_iter()
                .map(|d| (d.what, seen(d.count, d.first_seen, d.last_seen)))
                .collect(),
        });
    }
    for (i, e) in pf.network.outbound.into_iter().enumerate() {
        let k = (e.proto.0, e.port);
        if p.outbound.contains_key(&k) {
            return Err(invalid(
                format!("network.outbound[{i}]"),
                &format!("port: {}", e.port),
                "outbound:",
                format!("duplicate entry {}/{}", e.proto.0, e.port),
            ));
        }
        p.outbound.insert(
            k,
            OutboundEntry {
                seen: seen(e.count, e.first_seen, e.last_seen),
                peers: e.peers.into_iter().map(|n| n.0).collect(),
            },
        );
    }
    // absent: learned without the dimension (schema 1 and 2 never have it)
    p.inbound = match pf.network.inbound {
        None => None,
        Some(_) if pf.schema_version < 3 => {
            return Err(invalid(
                "network.inbound".into(),
                "inbound:",
                "network:",
                format!(
                    "schema_version {} has no inbound section (schema 3 added it)",
                    pf.schema_version
                ),
            ))
        }
        Some(v) => Some(
            crate::dimension::inbound::from_file(v).map_err(|(i, message)| {
                invalid(
                    format!("network.inbound[{i}]"),
                    "port:",
                    "inbound:",
                    message,
                )
            })?,
        ),
    };
    for (i, w) in pf.files.write.into_iter().enumerate() {
        let key = format!("files.write[{i}].path");
        if w.path.is_empty() {
            return Err(invalid(
                key,
                "path: \"\"",
                "write:",
                "must not be empty".into(),
            ));
        }
        let s = seen(w.count, w.first_seen, w.last_seen);
        // `/proc/[0-9]*/…` without `glob:` is how profiles wrote these before
        let dup = if w.glob || is_proc_pattern(&w.path) {
            p.write_globs.insert(w.path.clone(), s).is_some()
        } else {
            match dir_of_key(&w.path) {
                Some(d) => p.write_dirs.insert(d.to_string(), s).is_some(),
                None => p.write_files.insert(w.path.clone(), s).is_some(),
            }
        };
        if dup {
            let msg = format!("duplicate entry '{}'", w.path);
            return Err(invalid(key, &w.path, "write:", msg));
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Limits;

    fn sample() -> Profile {
        let l = Limits::default();
        let mut p = Profile::new(ImageRef::new("docker.io/library/nginx", "1.27"));
        p.digests.insert("sha256:0123".into());
        p.learning.started = 1_763_770_000_000_000_000;
        p.learning.ended = 1_763_770_060_000_000_000;
        p.learning.containers = 2;
        p.learning.events = 10;
        p.learn_exec("/usr/sbin/nginx", false, 1_763_770_001_000_000_000);
        p.learn_exec(
            "/dev/odd name, with: [flow]",
            true,
            1_763_770_002_000_000_000,
        );
        p.learn_outbound(
            Proto::Udp,
            53,
            "10.96.0.10".parse().expect("ip"),
            1_763_770_003_000_000_000,
            &l,
        );
        p.learn_write("/var/log/nginx/access.log", 1_763_770_004_000_000_000, &l);
        // learned from the host's root, and from another root
        for (path, host) in [("/usr/bin/nsenter", true), ("/usr/bin/env", false)] {
            p.learn_exec(path, false, 1_763_770_005_000_000_000);
            if let Some(e) = p.exec.get_mut(path) {
                e.host_root = host;
                e.other_root = !host;
            }
        }
        // a volume's executable
        p.learn_exec("/data/tool", false, 1_763_770_005_000_000_000);
        if let Some(e) = p.exec.get_mut("/data/tool") {
            e.other_fs = true;
        }
        p.write_dirs.insert("/var/cache/nginx".into(), Seen::at(5));
        p.learning.taint.push(TaintEntry {
            time: 7,
            rule: "Terminal shell in container".into(),
            event: "execve".into(),
            process: "/usr/bin/bash".into(),
            value: "/usr/bin/bash".into(),
            container: "3f2a9c1d7e5b".into(),
        });
        p.learning.tainted = true;
        p
    }

    #[test]
    fn round_trip_is_exact() {
        let p = sample();
        let y = to_yaml(&p);
        let back = from_yaml(&y, "t.yaml").expect("parses");
        assert_eq!(back, p);
        assert_eq!(to_yaml(&back), y);
        assert!(
            y.contains("  - { path: \"/dev/odd name, with: [flow]\", count: 1, first_seen: 2025-11-22T00:06:42.000000000Z, last_seen: 2025-11-22T00:06:42.000000000Z, tmpfs: true }\n"),
            "{y}"
        );
        assert!(y.contains("    - { path: /var/cache/nginx/**, count: 1, first_seen: 1970-01-01T00:00:00.000000005Z, last_seen: 1970-01-01T00:00:00.000000005Z }\n"), "{y}");
        assert!(y.contains("  tag: \"1.27\"\n"), "{y}");
        assert!(y.contains("  - { path: /usr/bin/nsenter, count: 1, first_seen: 2025-11-22T00:06:45.000000000Z, last_seen: 2025-11-22T00:06:45.000000000Z, host_root: true }\n"), "{y}");
        assert!(y.contains("  - { path: /usr/bin/env, count: 1, first_seen: 2025-11-22T00:06:45.000000000Z, last_seen: 2025-11-22T00:06:45.000000000Z, other_root: true }\n"), "{y}");
        assert!(y.contains("  - { path: /data/tool, count: 1, first_seen: 2025-11-22T00:06:45.000000000Z, last_seen: 2025-11-22T00:06:45.000000000Z, other_fs: true }\n"), "{y}");
    }

    /// Schema 3 and older could not tell an executable on another filesystem than the
    /// root's (a volume): their exec entries are read with `other_fs` set, so what ran
    /// before an upgrade still runs; from schema 4 an absent key is false. A key given by
    /// hand is taken as given.
    #[test]
    fn older_schemas_allow_executables_from_another_filesystem() {
        let entries = "exec:\n  - { path: /usr/sbin/nginx }\n  - { path: /data/tool, other_fs: false }\nreview:\n  drift:\n    - { path: /tmp/x, upper_layer: true }\n";
        for (schema, read_as) in [(1, true), (2, true), (3, true), (4, false)] {
            let y = format!("schema_version: {schema}\nimage: {{ repository: nginx }}\n{entries}");
            let p = from_yaml(&y, "p.yaml").expect("parses");
            assert_eq!(
                p.exec["/usr/sbin/nginx"].other_fs, read_as,
                "schema {schema}"
            );
            assert_eq!(
                p.review.drift["/tmp/x"].other_fs, read_as,
                "schema {schema}"
            );
            assert!(
                !p.exec["/data/tool"].other_fs,
                "schema {schema}: given by hand"
            );
            // written back as schema 4, saying so where it is set
            let out = to_yaml(&p);
            assert!(out.contains("schema_version: 4\n"), "{out}");
            assert_eq!(
                out.contains("  - { path: /usr/sbin/nginx, other_fs: true }\n"),
                read_as,
                "{out}"
            );
        }
    }

    #[test]
    fn scalars_quote_only_when_needed() {
        assert_eq!(scalar("/usr/sbin/nginx"), "/usr/sbin/nginx");
        assert_eq!(scalar("1.27"), "\"1.27\"");
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("null"), "\"null\"");
        assert_eq!(scalar(""), "\"\"");
        assert_eq!(scalar("a b"), "\"a b\"");
        assert_eq!(scalar("-x"), "\"-x\"");
        assert_eq!(scalar("a\"b"), "\"a\\\"b\"");
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let y =
            to_yaml(&sample()).replace("  - { path: /usr/sbin/nginx", "  - { pth: /usr/sbin/nginx");
        let err = from_yaml(&y, "profiles/nginx.yaml").expect_err("unknown key");
        let line = y.lines().position(|l| l.contains("pth:")).expect("line") + 1;
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("profiles/nginx.yaml:{line}:")),
            "{msg}"
        );
        assert!(msg.contains("unknown field `pth`"), "{msg}");
    }

    #[test]
    fn bad_values_are_errors_with_positions() {
        let y = to_yaml(&sample()).replace("10.96.0.10/32", "10.96.0.999");
        let msg = from_yaml(&y, "p.yaml").expect_err("bad cidr").to_string();
        let line = y
            .lines()
            .position(|l| l.contains("10.96.0.999"))
            .expect("l")
            + 1;
        assert!(msg.starts_with(&format!("p.yaml:{line}:")), "{msg}");
        assert!(
            msg.contains("'10.96.0.999' is not an IP address or CIDR"),
            "{msg}"
        );

        let y = to_yaml(&sample()).replace("schema_version: 4", "schema_version: 5");
        let msg = from_yaml(&y, "p.yaml").expect_err("schema").to_string();
        assert_eq!(
            msg,
            "p.yaml:3: schema_version: unsupported schema_version 5 (this falco-learn reads 1 to \
             4; a newer falco-learn wrote it)"
        );

        let mut y = to_yaml(&sample());
        y = y.replace(
            "  - { path: /usr/sbin/nginx",
            "  - { path: /usr/sbin/nginx }\n  - { path: /usr/sbin/nginx",
        );
        let msg = from_yaml(&y, "p.yaml").expect_err("dup").to_string();
        assert!(
            msg.contains("exec[5].path: duplicate entry '/usr/sbin/nginx'"),
            "{msg}"
        );

        let msg = from_yaml("schema_version: [", "p.yaml")
            .expect_err("yaml")
            .to_string();
        assert!(msg.starts_with("p.yaml:1:"), "{msg}");
    }

    #[test]
    fn hand_written_minimal_profile_reads() {
        let y = "schema_version: 1\nimage: { repository: nginx }\nexec:\n  - path: /usr/sbin/nginx\nfiles:\n  write: [{ path: /var/log/nginx/** }]\n";
        let p = from_yaml(y, "p.yaml").expect("minimal");
        assert!(p.exec.contains_key("/usr/sbin/nginx"));
        assert!(p.write_dirs.contains_key("/var/log/nginx"));
        let y = "schema_version: 1\nimage: { repository: nginx }\nfiles:\n  write: [/var/log/nginx/**]\n";
        // a bare string where a mapping is expected is an error, not ignored
        assert!(from_yaml(y, "p.yaml").is_err());
    }

    #[test]
    fn a_drift_entry_is_accepted_by_moving_its_line_to_exec() {
        let mut p = Profile::new(ImageRef::new("docker.io/library/nginx", "1.27"));
        let e = ExecEntry {
            seen: Seen::at(5),
            tmpfs: true,
            written: true,
            writer: "/bin/busybox".into(),
            parents: ["/bin/busybox".to_string()].into_iter().collect(),
            ..ExecEntry::default()
        };
        p.review.drift.insert("/dev/xupd".into(), e.clone());
        p.review.writes.insert(
            "/dev/xupd".into(),
            ReviewWrite {
                seen: Seen::at(4),
                writer: "/bin/busybox".into(),
            },
        );
        let y = to_yaml(&p);
        let line = y
            .lines()
            .find(|l| l.contains("path: /dev/xupd") && l.contains("tmpfs"))
            .expect("drift line")
            .to_string();
        let moved = y
            .replace(&format!("{line}\n"), "")
            .replace("  drift:\n", "  drift: []\n")
            .replace("exec: []\n", &format!("exec:\n  {}\n", line.trim_start()));
        let q = from_yaml(&moved, "p.yaml").expect("the moved line loads");
        assert_eq!(q.exec.get("/dev/xupd"), Some(&e));
        assert!(q.review.drift.is_empty());
        assert_eq!(to_yaml(&q), moved);
    }
}
