//! Output strings (`%proc.name`, `%proc.aname[2]`, `%container.info`) and
//! Falco JSON alerts.

use crate::limits::MAX_OUTPUT_BYTES;
use crate::report::Code;
use falco_learn_event::fields::{self, FieldRef, NA};
use falco_learn_event::Event;
use serde::Serialize;

#[derive(Debug, Clone)]
enum Seg {
    Lit(String),
    Field(usize),
}

/// A compiled output format.
#[derive(Debug, Clone, Default)]
pub struct OutputFormat {
    segs: Vec<Seg>,
    /// Distinct fields in order of first use (keys of `output_fields`).
    fields: Vec<(String, FieldRef)>,
}

/// An output string problem: byte offset, message and the offending token.
#[derive(Debug, Clone)]
pub struct OutputError {
    /// [`Code::BadOutput`], or [`Code::TooLong`] past [`MAX_OUTPUT_BYTES`].
    pub code: Code,
    pub offset: usize,
    pub message: String,
    pub token: String,
}

const CONTAINER_INFO: &str =
    "container_id=%container.id container_name=%container.name container_image_repository=%container.image.repository";

/// Fields Falco JSON alerts always carry in `output_fields` for syscall rules.
const EXTRA_FIELDS: &[&str] = &[
    "container.id",
    "container.name",
    "container.image.repository",
    "container.image.tag",
    "k8s.ns.name",
    "k8s.pod.name",
];

fn is_field_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.'
}

impl OutputFormat {
    pub fn compile(text: &str) -> Result<OutputFormat, OutputError> {
        let text = text.trim_end();
        let too_long = |len: usize| OutputError {
            code: Code::TooLong,
            offset: 0,
            message: format!(
                "output is {len} bytes long, more than the limit of {MAX_OUTPUT_BYTES}"
            ),
            token: String::new(),
        };
        if text.len() > MAX_OUTPUT_BYTES {
            return Err(too_long(text.len()));
        }
        let expanded;
        let text = if text.contains("%container.info") {
            expanded = text.replace("%container.info", CONTAINER_INFO);
            expanded.as_str()
        } else {
            text
        };
        if text.len() > MAX_OUTPUT_BYTES {
            // `%container.info` expanded.
            return Err(too_long(text.len()));
        }
        let b = text.as_bytes();
        let mut out = OutputFormat::default();
        let mut lit = String::new();
        let mut i = 0;
        let mut last = 0;
        while i < b.len() {
            if b[i] != b'%' {
                i += 1;
                continue;
            }
            lit.push_str(&text[last..i]);
            if b.get(i + 1) == Some(&b'%') {
                lit.push('%');
                i += 2;
                last = i;
                continue;
            }
            let start = i + 1;
            let mut j = start;
            while j < b.len() && is_field_char(b[j]) {
                j += 1;
            }
            if j < b.len() && b[j] == b'[' {
                if let Some(close) = text[j..].find(']') {
                    j += close + 1;
                }
            }
            let mut name = &text[start..j];
            // A sentence-ending dot is not part of the field name.
            while name.ends_with('.') {
                name = &name[..name.len() - 1];
            }
            let end = start + name.len();
            if name.is_empty() {
                // A lone '%' is literal.
                lit.push('%');
                i += 1;
                last = i;
                continue;
            }
            let fref = fields::parse_field_ref(name).map_err(|e| OutputError {
                code: Code::BadOutput,
                offset: i,
                message: e.to_string(),
                token: format!("%{name}"),
            })?;
            if !lit.is_empty() {
                out.segs.push(Seg::Lit(std::mem::take(&mut lit)));
            }
            let idx = match out.fields.iter().position(|(n, _)| n == name) {
                Some(k) => k,
                None => {
                    out.fields.push((name.to_string(), fref));
                    out.fields.len() - 1
                }
            };
            out.segs.push(Seg::Field(idx));
            i = end;
            last = i;
        }
        lit.push_str(&text[last..]);
        if !lit.is_empty() {
            out.segs.push(Seg::Lit(lit));
        }
        Ok(out)
    }

    /// The formatted message (missing values as `<NA>`).
    pub fn format(&self, ev: &Event) -> String {
        let vals: Vec<String> = self
            .fields
            .iter()
            .map(|(_, f)| fields::render_field(ev, f))
            .collect();
        let mut s = String::new();
        for seg in &self.segs {
            match seg {
                Seg::Lit(l) => s.push_str(l),
                Seg::Field(i) => s.push_str(&vals[*i]),
            }
        }
        s
    }

    /// `output_fields`: every field of the output plus container context.
    pub fn fields_json(&self, ev: &Event) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        for (name, f) in &self.fields {
            m.insert(name.clone(), json_of(ev, f));
        }
        for name in EXTRA_FIELDS {
            if !m.contains_key(*name) {
                if let Ok(f) = fields::parse_field_ref(name) {
                    m.insert((*name).to_string(), json_of(ev, &f));
                }
            }
        }
        m
    }
}

fn json_of(ev: &Event, f: &FieldRef) -> serde_json::Value {
    match fields::extract(ev, f) {
        Some(v) => v.to_json(),
        None => serde_json::Value::Null,
    }
}

/// A Falco JSON alert.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alert {
    pub hostname: String,
    pub output: String,
    pub output_fields: serde_json::Map<String, serde_json::Value>,
    pub priority: String,
    pub rule: String,
    pub source: String,
    pub tags: Vec<String>,
    pub time: String,
}

/// RFC 3339 time with nanoseconds and `Z` (the event crate's, re-exported).
pub use falco_learn_event::time::rfc3339;

/// Falco's `<NA>` for a field with no value; the value itself otherwise.
pub fn na_if_empty(s: &str) -> &str {
    if s.is_empty() {
        NA
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_fields_and_na() {
        let f = OutputFormat::compile("shell %proc.name (gp=%proc.aname[2] x=100%% %evt.type.)")
            .unwrap();
        let ev = Event {
            process: falco_learn_event::Process {
                comm: "bash".into(),
                ..Default::default()
            }
            .into(),
            ..Default::default()
        };
        assert_eq!(f.format(&ev), "shell bash (gp=<NA> x=100% execve.)");
        let j = f.fields_json(&ev);
        assert_eq!(j["proc.name"], "bash");
        assert_eq!(j["proc.aname[2]"], serde_json::Value::Null);
        assert!(j.contains_key("container.id"));
    }

    #[test]
    fn unknown_output_field_is_an_error() {
        let e = OutputFormat::compile("x=%proc.nmae").unwrap_err();
        assert_eq!(e.offset, 2);
        assert_eq!(e.token, "%proc.nmae");
    }

    #[test]
    fn container_info_expands() {
        let f = OutputFormat::compile("a %container.info").unwrap();
        let ev = Event {
            container: falco_learn_event::Container {
                id: "c1".into(),
                name: "web".into(),
                ..Default::default()
            }
            .into(),
            ..Default::default()
        };
        assert_eq!(
            f.format(&ev),
            "a container_id=c1 container_name=web container_image_repository=<NA>"
        );
    }

    #[test]
    fn time_format() {
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
    }
}
