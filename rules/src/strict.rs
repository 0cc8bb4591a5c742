//! `rules check --strict`: what stock Falco would reject or warn about.
//!
//! Falco validates every rules file against its rules JSON schema
//! (`userspace/engine/rule_json_schema.h` in falcosecurity/falco) after turning the YAML
//! into JSON the way its `yaml_helper.h` does (`convert<nlohmann::json>`): a scalar that
//! yaml-cpp decodes as an `int` becomes a number, else one it decodes as a `double`, else a
//! `bool`, else a string — quoted or not, so `desc: "2024"` is a number there and fails
//! `"type": "string"`. A failed validation does not stop Falco's load, but it is reported
//! beside it; here it is a failure. [`schema`] applies that schema to the nodes of a file
//! (every key of every item kind and sub-item, types, required keys, enums,
//! `additionalProperties: false`, `minProperties`), with positions.
//!
//! [`check`] is what `--strict` fails on: every load error, every schema problem, and
//! every load warning Falco itself gives ([`falco_warns`]); warnings about falco-learn's
//! own limits (an event type it does not capture, a field it never fills, a rule skipped
//! for another source) are not Falco's and stay warnings.

use crate::report::{Code, Diagnostic, LoadReport, Pos, Severity};
use crate::yaml::{self, Node, NodeKind};
use std::sync::Arc;

/// Whether Falco's own loader gives this warning (so `--strict` fails on it).
pub fn falco_warns(code: Code) -> bool {
    matches!(
        code,
        Code::Schema
            | Code::NoEvtType
            | Code::UnusedList
            | Code::UnusedMacro
            | Code::Deprecated
            | Code::AppendNoValues
    )
}

/// The problems `--strict` fails on, for files loaded into `report`: the load's errors,
/// the warnings Falco gives too, and every schema problem of each source. A schema
/// problem the loader already reported at the same place is listed once.
pub fn check<N: AsRef<str>, T: AsRef<str>>(
    sources: &[(N, T)],
    report: &LoadReport,
) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = report.errors.clone();
    let mut from_schema = Vec::new();
    for (name, text) in sources {
        // a file that is not YAML is already a load error
        if let Ok(docs) = yaml::parse(text.as_ref()) {
            from_schema.extend(schema(name.as_ref(), &docs));
        }
    }
    for w in report.warnings.iter().filter(|w| falco_warns(w.code)) {
        let dup = w.code == Code::Schema && from_schema.iter().any(|s| s.pos == w.pos);
        if !dup {
            let mut d = w.clone();
            d.severity = Severity::Error;
            out.push(d);
        }
    }
    out.extend(from_schema);
    out
}

/// JSON type of a YAML node as Falco's `yaml_helper` converts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonType {
    Null,
    Integer,
    Number,
    Boolean,
    String,
    Array,
    Object,
}

impl JsonType {
    fn as_str(self) -> &'static str {
        match self {
            JsonType::Null => "null",
            JsonType::Integer => "an integer",
            JsonType::Number => "a number",
            JsonType::Boolean => "a boolean",
            JsonType::String => "a string",
            JsonType::Array => "an array",
            JsonType::Object => "an object",
        }
    }
}

/// yaml-cpp's `convert<int>`: optional sign, decimal digits, or `0x` hex / `0o` octal,
/// within `int`.
fn yaml_cpp_int(s: &str) -> bool {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let v = if let Some(h) = body.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = body.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
        body.parse::<i64>().ok()
    } else {
        None
    };
    match v {
        Some(v) => {
            let v = if neg { -v } else { v };
            i32::try_from(v).is_ok()
        }
        None => false,
    }
}

/// yaml-cpp's `convert<double>`: `.inf`/`.nan` spellings, or what a C++ stream reads
/// whole as a floating-point number.
fn yaml_cpp_double(s: &str) -> bool {
    const SPECIAL: &[&str] = &[
        ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
        ".NaN", ".NAN",
    ];
    if SPECIAL.contains(&s) {
        return true;
    }
    !s.is_empty()
        && s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
        && s.parse::<f64>().is_ok()
}

/// yaml-cpp's `convert<bool>`.
fn yaml_cpp_bool(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "true"
            | "True"
            | "TRUE"
            | "on"
            | "On"
            | "ON"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "false"
            | "False"
            | "FALSE"
            | "off"
            | "Off"
            | "OFF"
    )
}

fn json_type(n: &Node) -> JsonType {
    match &n.kind {
        NodeKind::Null => JsonType::Null,
        NodeKind::Seq(_) => JsonType::Array,
        NodeKind::Map(_) => JsonType::Object,
        NodeKind::Scalar(s, _) => {
            if yaml_cpp_int(s) {
                JsonType::Integer
            } else if yaml_cpp_double(s) {
                JsonType::Number
            } else if yaml_cpp_bool(s) {
                JsonType::Boolean
            } else {
                JsonType::String
            }
        }
    }
}

/// One property's schema.
#[derive(Clone, Copy)]
enum Ty {
    String,
    Boolean,
    Integer,
    /// Array of integers or strings (`Item`).
    Items,
    /// Array of strings.
    Strings,
    Priority,
    Exceptions,
    Override,
    PluginVersions,
    /// `{}`: anything.
    Any,
}

/// `FalcoRule`'s properties (`additionalProperties: false`, nothing required).
const RULE_PROPS: &[(&str, Ty)] = &[
    ("required_engine_version", Ty::String),
    ("required_plugin_versions", Ty::PluginVersions),
    ("macro", Ty::String),
    ("condition", Ty::String),
    ("list", Ty::String),
    ("items", Ty::Items),
    ("rule", Ty::String),
    ("desc", Ty::String),
    ("enabled", Ty::Boolean),
    ("output", Ty::String),
    ("append", Ty::Boolean),
    ("priority", Ty::Priority),
    ("capture", Ty::Boolean),
    ("capture_duration", Ty::Integer),
    ("source", Ty::String),
    ("exceptions", Ty::Exceptions),
    ("override", Ty::Override),
    ("tags", Ty::Strings),
    ("warn_evttypes", Ty::Boolean),
    ("skip-if-unknown-filter", Ty::Boolean),
];

/// `Exception`: `name` (a string, required), `fields`, `comps`, `values` (anything).
const EXCEPTION_PROPS: &[(&str, Ty)] = &[
    ("name", Ty::String),
    ("fields", Ty::Any),
    ("comps", Ty::Any),
    ("values", Ty::Any),
];

/// `Override`'s keys; each value is `append` or `replace`; at least one key.
const OVERRIDE_KEYS: &[&str] = &[
    "items",
    "desc",
    "condition",
    "output",
    "priority",
    "enabled",
    "exceptions",
    "capture",
    "capture_duration",
    "tags",
    "warn_evttypes",
    "skip-if-unknown-filter",
];

/// `Priority`: case-sensitive.
const PRIORITIES: &[&str] = &[
    "EMERGENCY",
    "ALERT",
    "CRITICAL",
    "ERROR",
    "WARNING",
    "NOTICE",
    "INFO",
    "INFORMATIONAL",
    "DEBUG",
];

struct Walk<'a> {
    file: Arc<str>,
    out: &'a mut Vec<Diagnostic>,
}

impl Walk<'_> {
    fn fail(&mut self, n: &Node, item: Option<&str>, message: String) {
        self.out.push(Diagnostic {
            severity: Severity::Error,
            code: Code::Schema,
            message: format!("schema: {message}"),
            pos: Pos {
                file: self.file.clone(),
                line: n.line,
                col: n.col,
            },
            item: item.map(str::to_string),
            snippet: None,
        });
    }

    fn want(&mut self, n: &Node, item: Option<&str>, what: &str, want: JsonType) -> bool {
        let got = json_type(n);
        // JSON schema: an integer is also a number
        let ok = got == want || (want == JsonType::Number && got == JsonType::Integer);
        if !ok {
            self.fail(
                n,
                item,
                format!("'{what}' must be {}, not {}", want.as_str(), got.as_str()),
            );
        }
        ok
    }

    /// An object against its properties (`additionalProperties: false`).
    fn object(
        &mut self,
        n: &Node,
        item: Option<&str>,
        what: &str,
        props: &[(&str, Ty)],
        required: &[&str],
    ) {
        if !self.want(n, item, what, JsonType::Object) {
            return;
        }
        let NodeKind::Map(m) = &n.kind else { return };
        for (k, v) in m {
            let key = k.as_str().unwrap_or_default();
            match props.iter().find(|(p, _)| *p == key) {
                Some((_, ty)) => self.value(v, item, key, *ty),
                None => self.fail(
                    k,
                    item,
                    format!(
                        "unknown key '{key}' in {what} (allowed: {})",
                        props.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", ")
                    ),
                ),
            }
        }
        for r in required {
            if n.get(r).is_none() {
                self.fail(n, item, format!("{what} without the required key '{r}'"));
            }
        }
    }

    fn value(&mut self, v: &Node, item: Option<&str>, key: &str, ty: Ty) {
        match ty {
            Ty::Any => {}
            Ty::String => {
                self.want(v, item, key, JsonType::String);
            }
            Ty::Boolean => {
                self.want(v, item, key, JsonType::Boolean);
            }
            Ty::Integer => {
                self.want(v, item, key, JsonType::Integer);
            }
            Ty::Priority => {
                if self.want(v, item, key, JsonType::String) {
                    let p = v.as_str().unwrap_or_default();
                    if !PRIORITIES.contains(&p) {
                        self.fail(
                            v,
                            item,
                            format!(
                                "priority '{p}' is not one of {} (the schema is case-sensitive)",
                                PRIORITIES.join(", ")
                            ),
                        );
                    }
                }
            }
            Ty::Items | Ty::Strings => {
                if !self.want(v, item, key, JsonType::Array) {
                    return;
                }
                for e in v.as_seq().unwrap_or_default() {
                    let t = json_type(e);
                    let ok = match ty {
                        Ty::Items => matches!(t, JsonType::Integer | JsonType::String),
                        _ => t == JsonType::String,
                    };
                    if !ok {
                        let want = match ty {
                            Ty::Items => "an integer or a string",
                            _ => "a string",
                        };
                        self.fail(
                            e,
                            item,
                            format!("each of '{key}' must be {want}, not {}", t.as_str()),
                        );
                    }
                }
            }
            Ty::Exceptions => {
                if !self.want(v, item, key, JsonType::Array) {
                    return;
                }
                for e in v.as_seq().unwrap_or_default() {
                    self.object(e, item, "an exception", EXCEPTION_PROPS, &["name"]);
                }
            }
            Ty::Override => {
                if !self.want(v, item, key, JsonType::Object) {
                    return;
                }
                let NodeKind::Map(m) = &v.kind else { return };
                if m.is_empty() {
                    self.fail(v, item, "'override' needs at least one key".into());
                }
                for (k, mode) in m {
                    let ks = k.as_str().unwrap_or_default();
                    if !OVERRIDE_KEYS.contains(&ks) {
                        self.fail(
                            k,
                            item,
                            format!(
                                "unknown key '{ks}' in 'override' (allowed: {})",
                                OVERRIDE_KEYS.join(", ")
                            ),
                        );
                    } else if !matches!(mode.as_str(), Some("append" | "replace"))
                        || json_type(mode) != JsonType::String
                    {
                        self.fail(
                            mode,
                            item,
                            format!("override of '{ks}' must be 'append' or 'replace'"),
                        );
                    }
                }
            }
            Ty::PluginVersions => {
                if !self.want(v, item, key, JsonType::Array) {
                    return;
                }
                const PV: &[(&str, Ty)] = &[
                    ("name", Ty::String),
                    ("version", Ty::String),
                    ("alternatives", Ty::Any),
                ];
                const ALT: &[(&str, Ty)] = &[("name", Ty::String), ("version", Ty::String)];
                for e in v.as_seq().unwrap_or_default() {
                    self.object(
                        e,
                        item,
                        "a required plugin version",
                        PV,
                        &["name", "version"],
                    );
                    if let Some(alts) = e.get("alternatives") {
                        if self.want(alts, item, "alternatives", JsonType::Array) {
                            for a in alts.as_seq().unwrap_or_default() {
                                self.object(
                                    a,
                                    item,
                                    "an alternative plugin version",
                                    ALT,
                                    &["name", "version"],
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Every way `docs` (one file's YAML documents) breaks Falco's rules schema.
pub fn schema(file: &str, docs: &[Node]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut w = Walk {
        file: Arc::from(file),
        out: &mut out,
    };
    for doc in docs {
        if doc.is_null() {
            continue;
        }
        if !w.want(doc, None, "a rules file", JsonType::Array) {
            continue;
        }
        for item in doc.as_seq().unwrap_or_default() {
            let label = ["rule", "macro", "list"].iter().find_map(|k| {
                item.get(k)
                    .and_then(|n| n.as_str())
                    .map(|name| format!("{k} '{name}'"))
            });
            w.object(item, label.as_deref(), "an item", RULE_PROPS, &[]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let docs = yaml::parse(text).expect("yaml");
        schema("f.yaml", &docs)
            .into_iter()
            .map(|d| format!("{}:{} {}", d.pos.line, d.pos.col, d.message))
            .collect()
    }

    /// Source: Falco's `rule_json_schema.h` and `yaml_helper.h` (`convert<nlohmann::json>`
    /// decodes a scalar as int, then double, then bool, then string, quoted or not).
    #[test]
    fn scalars_are_typed_as_falcos_yaml_helper_types_them() {
        for (s, t) in [
            ("123", JsonType::Integer),
            ("-7", JsonType::Integer),
            ("0x1f", JsonType::Integer),
            ("99999999999", JsonType::Number), // beyond int: a double
            ("1.5", JsonType::Number),
            (".inf", JsonType::Number),
            ("1e3", JsonType::Number),
            ("yes", JsonType::Boolean),
            ("Off", JsonType::Boolean),
            ("true", JsonType::Boolean),
            ("nginx", JsonType::String),
            ("1.2.3", JsonType::String),
            ("inf", JsonType::String),
            ("", JsonType::String),
        ] {
            let n = Node {
                kind: NodeKind::Scalar(s.into(), true),
                line: 1,
                col: 1,
                offset: 0,
            };
            assert_eq!(json_type(&n), t, "{s:?}");
        }
    }

    #[test]
    fn every_item_kind_and_sub_item_is_checked() {
        let text = r#"
- required_engine_version: 0.50.0
- required_plugin_versions:
    - name: container
      version: 0.2.0
      alternatives: [{name: x, version: 1.0.0, extra: 1}]
    - name: k8smeta
- list: l
  items: [a, 1, [x]]
- macro: m
  condition: evt.type = open
  descr: typo
- rule: R
  desc: "2024"
  condition: evt.type = execve
  output: o
  priority: Warning
  enabled: maybe
  tags: [a, 12]
  exceptions:
    - name: e
      fields: [proc.name]
      value: [x]
    - fields: [proc.name]
  override:
    condition: prepend
    source: replace
- rule: S
  override: {}
"#;
        assert_eq!(
            problems(text),
            [
                "6:48 schema: unknown key 'extra' in an alternative plugin version (allowed: name, version)",
                "7:7 schema: a required plugin version without the required key 'version'",
                "9:17 schema: each of 'items' must be an integer or a string, not an array",
                "12:3 schema: unknown key 'descr' in an item (allowed: required_engine_version, required_plugin_versions, macro, condition, list, items, rule, desc, enabled, output, append, priority, capture, capture_duration, source, exceptions, override, tags, warn_evttypes, skip-if-unknown-filter)",
                "14:9 schema: 'desc' must be a string, not an integer",
                "17:13 schema: priority 'Warning' is not one of EMERGENCY, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFO, INFORMATIONAL, DEBUG (the schema is case-sensitive)",
                "18:12 schema: 'enabled' must be a boolean, not a string",
                "19:13 schema: each of 'tags' must be a string, not an integer",
                "23:7 schema: unknown key 'value' in an exception (allowed: name, fields, comps, values)",
                "24:7 schema: an exception without the required key 'name'",
                "26:16 schema: override of 'condition' must be 'append' or 'replace'",
                "27:5 schema: unknown key 'source' in 'override' (allowed: items, desc, condition, output, priority, enabled, exceptions, capture, capture_duration, tags, warn_evttypes, skip-if-unknown-filter)",
                "29:13 schema: 'override' needs at least one key",
            ]
        );
    }

    #[test]
    fn a_file_that_is_not_a_list_of_items_is_a_schema_problem() {
        assert_eq!(
            problems("rule: R\n"),
            ["1:1 schema: 'a rules file' must be an array, not an object"]
        );
        assert_eq!(
            problems("- 5\n"),
            ["1:3 schema: 'an item' must be an object, not an integer"]
        );
        assert!(problems("# nothing\n").is_empty());
    }
}
