//! Collector: YAML documents of several files, in order → the final set of
//! lists, macros and rules after `append`, `override`, redefinitions and
//! `enabled`-only entries, with every item's position kept for diagnostics.

use crate::report::{Code, Diagnostic, FileCounts, LoadReport, Pos, Severity, Source};
use crate::yaml::{Node, NodeKind};
use ahash::AHashMap;
use std::sync::Arc;

/// Engine version falco-learn's rules language matches (Falco's `required_engine_version`).
pub const ENGINE_VERSION: &str = "0.57.0";

/// Plugins whose fields falco-learn provides natively, with the version it matches.
pub const PROVIDED_PLUGINS: &[(&str, &str)] = &[("container", "0.4.0"), ("k8smeta", "0.3.0")];

/// A piece of condition text and where it came from.
#[derive(Debug, Clone)]
pub struct Fragment {
    /// Offset of this fragment in the combined condition text.
    pub start: usize,
    pub pos: Pos,
    /// Byte offset of the YAML scalar in its file.
    pub file_offset: usize,
    pub file_index: usize,
}

/// A condition: text (possibly several appended pieces) and its origins.
#[derive(Debug, Clone, Default)]
pub struct CondSrc {
    pub text: String,
    pub fragments: Vec<Fragment>,
}

impl CondSrc {
    fn new(text: &str, node: &Node, pos: Pos, file_index: usize) -> CondSrc {
        CondSrc {
            text: text.to_string(),
            fragments: vec![Fragment {
                start: 0,
                pos,
                file_offset: node.offset,
                file_index,
            }],
        }
    }

    fn append(&mut self, other: CondSrc) {
        self.text.push(' ');
        let base = self.text.len();
        self.text.push_str(&other.text);
        for mut f in other.fragments {
            f.start += base;
            self.fragments.push(f);
        }
    }

    /// The fragment holding byte `offset` of the text.
    pub fn fragment_at(&self, offset: usize) -> Option<&Fragment> {
        self.fragments.iter().rev().find(|f| f.start <= offset)
    }
}

#[derive(Debug, Clone)]
pub struct ListItem {
    pub text: String,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub struct ListDef {
    pub name: String,
    pub items: Vec<ListItem>,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub struct MacroDef {
    pub name: String,
    pub cond: CondSrc,
    pub pos: Pos,
}

/// One exception entry of a rule, already validated for shape.
#[derive(Debug, Clone)]
pub struct ExceptionDef {
    pub name: String,
    /// Fields; `single` when given as one string (comps default to `in`).
    pub fields: Vec<String>,
    pub single: bool,
    pub comps: Vec<String>,
    /// Each value: one entry per field; an entry is one or several strings.
    pub values: Vec<Vec<ExcValue>>,
    /// Values given without `fields` (an append to an existing exception):
    /// shaped once the exception they extend is known.
    pub raw_values: Vec<Node>,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub enum ExcValue {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct RuleDef {
    pub name: String,
    pub desc: String,
    pub cond: CondSrc,
    pub output: String,
    pub output_pos: Pos,
    pub priority: crate::Priority,
    pub enabled: bool,
    pub tags: Vec<String>,
    pub source: String,
    pub exceptions: Vec<ExceptionDef>,
    pub warn_evttypes: bool,
    pub skip_if_unknown_filter: bool,
    pub pos: Pos,
    pub file_index: usize,
}

/// Everything collected from the files, in definition order.
#[derive(Debug, Default)]
pub struct Collected {
    pub lists: Vec<ListDef>,
    pub macros: Vec<MacroDef>,
    pub rules: Vec<RuleDef>,
    pub list_index: AHashMap<String, usize>,
    pub macro_index: AHashMap<String, usize>,
    pub rule_index: AHashMap<String, usize>,
    /// File texts, for snippets and positions inside conditions.
    pub sources: Vec<Arc<Source>>,
}

pub(crate) struct Ctx<'r> {
    pub report: &'r mut LoadReport,
    pub src: Arc<Source>,
}

impl Ctx<'_> {
    pub fn pos(&self, n: &Node) -> Pos {
        Pos {
            file: self.src.name.clone(),
            line: n.line,
            col: n.col,
        }
    }

    pub fn diag(&mut self, sev: Severity, code: Code, n: &Node, item: Option<String>, msg: String) {
        if self.report.is_full(sev) {
            // Only counted: no need for a snippet.
            self.report.push(Diagnostic {
                severity: sev,
                code,
                message: String::new(),
                pos: Pos::default(),
                item: None,
                snippet: None,
            });
            return;
        }
        let snip = self.src.snippet(n.line, n.col);
        self.report.push(Diagnostic {
            severity: sev,
            code,
            message: msg,
            pos: self.pos(n),
            item,
            snippet: snip,
        });
    }

    fn err(&mut self, code: Code, n: &Node, item: Option<String>, msg: String) {
        self.diag(Severity::Error, code, n, item, msg);
    }

    fn warn(&mut self, code: Code, n: &Node, item: Option<String>, msg: String) {
        self.diag(Severity::Warning, code, n, item, msg);
    }
}

fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let v = v.trim();
    let mut it = v.split('.');
    let a = it.next()?.trim().parse().ok()?;
    let b = it.next().map_or(Some(0), |x| x.trim().parse().ok())?;
    let c = it
        .next()
        .map_or(Some(0), |x| x.split(['-', '+']).next()?.trim().parse().ok())?;
    Some((a, b, c))
}

/// Scalar or list of scalars as strings.
fn strings(n: &Node) -> Option<Vec<(String, &Node)>> {
    match &n.kind {
        NodeKind::Seq(v) => v
            .iter()
            .map(|x| x.as_str().map(|s| (s.to_string(), x)))
            .collect(),
        NodeKind::Null => Some(Vec::new()),
        _ => None,
    }
}

const LIST_KEYS: &[&str] = &["list", "items", "append", "override"];
const MACRO_KEYS: &[&str] = &["macro", "condition", "append", "override"];
const RULE_KEYS: &[&str] = &[
    "rule",
    "desc",
    "condition",
    "output",
    "priority",
    "enabled",
    "tags",
    "source",
    "exceptions",
    "warn_evttypes",
    "skip-if-unknown-filter",
    "append",
    "override",
    "capture",
    "capture_duration",
];

impl Collected {
    /// Collect one file's documents into the set (later files modify earlier ones).
    pub(crate) fn add_file(&mut self, docs: &[Node], cx: &mut Ctx<'_>) -> FileCounts {
        let file_index = self.sources.len();
        self.sources.push(cx.src.clone());
        let mut counts = FileCounts {
            name: cx.src.name.to_string(),
            ..Default::default()
        };
        let mut seen_here: AHashMap<(u8, String), ()> = AHashMap::new();
        for doc in docs {
            let items = match &doc.kind {
                NodeKind::Seq(v) => v,
                NodeKind::Null => continue,
                _ => {
                    cx.err(
                        Code::Schema,
                        doc,
                        None,
                        "a rules file must be a YAML sequence of list/macro/rule items".into(),
                    );
                    continue;
                }
            };
            for item in items {
                if !matches!(item.kind, NodeKind::Map(_)) {
                    cx.err(
                        Code::Schema,
                        item,
                        None,
                        "expected a mapping (list, macro, rule, required_engine_version…)".into(),
                    );
                    continue;
                }
                if let Some(v) = item.get("required_engine_version") {
                    self.engine_version(v, cx);
                } else if let Some(v) = item.get("required_plugin_versions") {
                    self.plugin_versions(v, cx);
                } else if let Some(n) = item.get("list") {
                    if self.list(item, n, cx, &mut seen_here) {
                        counts.lists += 1;
                    }
                } else if let Some(n) = item.get("macro") {
                    if self.macro_(item, n, cx, file_index, &mut seen_here) {
                        counts.macros += 1;
                    }
                } else if let Some(n) = item.get("rule") {
                    if self.rule(item, n, cx, file_index, &mut seen_here) {
                        counts.rules += 1;
                    }
                } else {
                    let keys: Vec<_> = item.keys().iter().filter_map(|k| k.as_str()).collect();
                    cx.err(
                        Code::Schema,
                        item,
                        None,
                        format!("unknown item (keys: {})", keys.join(", ")),
                    );
                }
            }
        }
        counts
    }

    fn engine_version(&mut self, v: &Node, cx: &mut Ctx<'_>) {
        let text = v.as_str().unwrap_or_default();
        // Old files give an integer engine version; those are all satisfied.
        if !text.contains('.') && text.parse::<u64>().is_ok() {
            return;
        }
        match (parse_version(text), parse_version(ENGINE_VERSION)) {
            (Some(want), Some(have)) if want > have => cx.err(
                Code::Version,
                v,
                None,
                format!(
                    "rules require engine version {text}, falco-learn provides {ENGINE_VERSION}"
                ),
            ),
            (Some(_), _) => {}
            (None, _) => cx.err(
                Code::Schema,
                v,
                None,
                format!("required_engine_version '{text}' is not a version"),
            ),
        }
    }

    fn plugin_versions(&mut self, v: &Node, cx: &mut Ctx<'_>) {
        let Some(entries) = v.as_seq() else {
            cx.err(
                Code::Schema,
                v,
                None,
                "required_plugin_versions must be a list".into(),
            );
            return;
        };
        for e in entries {
            let mut candidates = vec![e];
            if let Some(alts) = e.get("alternatives").and_then(|a| a.as_seq()) {
                candidates.extend(alts.iter());
            }
            let mut ok = false;
            let mut wanted = Vec::new();
            for c in candidates {
                let (Some(name), Some(ver)) = (
                    c.get("name").and_then(|n| n.as_str()),
                    c.get("version").and_then(|n| n.as_str()),
                ) else {
                    continue;
                };
                wanted.push(format!("{name} {ver}"));
                if let Some((_, have)) = PROVIDED_PLUGINS.iter().find(|(n, _)| *n == name) {
                    if let (Some(w), Some(h)) = (parse_version(ver), parse_version(have)) {
                        // Same major, and not newer than what we match.
                        if w.0 == h.0 && w <= h {
                            ok = true;
                        }
                    }
                }
            }
            if !ok {
                cx.err(
                    Code::Version,
                    e,
                    None,
                    format!(
                        "required plugin not available: {} (falco-learn provides {})",
                        wanted.join(" or "),
                        PROVIDED_PLUGINS
                            .iter()
                            .map(|(n, v)| format!("{n} {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
    }

    fn check_keys(&self, item: &Node, allowed: &[&str], what: &str, cx: &mut Ctx<'_>, name: &str) {
        for k in item.keys() {
            if let Some(ks) = k.as_str() {
                if !allowed.contains(&ks) {
                    cx.warn(
                        Code::Schema,
                        k,
                        Some(format!("{what} '{name}'")),
                        format!("unknown key '{ks}' ignored"),
                    );
                }
            }
        }
    }

    /// `override:` map → (key → append?) ; also validates values.
    fn overrides(
        &self,
        item: &Node,
        allowed: &[(&str, bool, bool)],
        what: &str,
        name: &str,
        cx: &mut Ctx<'_>,
    ) -> Option<Vec<(String, bool)>> {
        let ov = item.get("override")?;
        let NodeKind::Map(m) = &ov.kind else {
            cx.err(
                Code::Schema,
                ov,
                Some(format!("{what} '{name}'")),
                "override must be a mapping".into(),
            );
            return Some(Vec::new());
        };
        let mut out = Vec::new();
        for (k, v) in m {
            let key = k.as_str().unwrap_or_default();
            let mode = v.as_str().unwrap_or_default();
            let Some((_, can_append, can_replace)) = allowed.iter().find(|(n, _, _)| *n == key)
            else {
                cx.err(
                    Code::Schema,
                    k,
                    Some(format!("{what} '{name}'")),
                    format!("key '{key}' cannot be overridden"),
                );
                continue;
            };
            match mode {
                "append" if *can_append => out.push((key.to_string(), true)),
                "replace" if *can_replace => out.push((key.to_string(), false)),
                _ => cx.err(
                    Code::Schema,
                    v,
                    Some(format!("{what} '{name}'")),
                    format!(
                        "override of '{key}' must be {}",
                        match (can_append, can_replace) {
                            (true, true) => "append or replace",
                            (true, false) => "append",
                            _ => "replace",
                        }
                    ),
                ),
            }
            if item.get(key).is_none() {
                cx.err(
                    Code::Schema,
                    k,
                    Some(format!("{what} '{name}'")),
                    format!("override of '{key}' without a '{key}' key"),
                );
            }
        }
        Some(out)
    }

    fn list(
        &mut self,
        item: &Node,
        name_node: &Node,
        cx: &mut Ctx<'_>,
        seen: &mut AHashMap<(u8, String), ()>,
    ) -> bool {
        let Some(name) = name_node.as_str().map(str::to_string) else {
            cx.err(
                Code::Schema,
                name_node,
                None,
                "list name must be a string".into(),
            );
            return false;
        };
        self.check_keys(item, LIST_KEYS, "list", cx, &name);
        let what = Some(format!("list '{name}'"));
        let Some(items_node) = item.get("items") else {
            cx.err(Code::Schema, item, what, "list without 'items'".into());
            return false;
        };
        let Some(items) = strings(items_node) else {
            cx.err(
                Code::Schema,
                items_node,
                what,
                "'items' must be a list of strings".into(),
            );
            return false;
        };
        let items: Vec<ListItem> = items
            .into_iter()
            .map(|(text, n)| ListItem {
                text,
                pos: cx.pos(n),
            })
            .collect();
        let append = item.get("append").and_then(Node::as_bool).unwrap_or(false);
        let ov = self.overrides(item, &[("items", true, true)], "list", &name, cx);
        let mode = match &ov {
            Some(o) => o.iter().find(|(k, _)| k == "items").map(|(_, a)| *a),
            None if append => Some(true),
            None => None,
        };
        match (mode, self.list_index.get(&name).copied()) {
            (Some(append), Some(i)) => {
                if append {
                    self.lists[i].items.extend(items);
                } else {
                    self.lists[i].items = items;
                }
            }
            (Some(_), None) => {
                cx.err(
                    Code::UnknownItem,
                    item,
                    what,
                    "list has append/override but no earlier definition".into(),
                );
                return false;
            }
            (None, existing) => {
                if seen.insert((0, name.clone()), ()).is_some() {
                    cx.warn(
                        Code::Duplicate,
                        item,
                        what,
                        "list defined twice in this file; the later definition wins".into(),
                    );
                }
                let def = ListDef {
                    name: name.clone(),
                    items,
                    pos: cx.pos(item),
                };
                match existing {
                    Some(i) => self.lists[i] = def,
                    None => {
                        self.list_index.insert(name, self.lists.len());
                        self.lists.push(def);
                    }
                }
            }
        }
        true
    }

    fn macro_(
        &mut self,
        item: &Node,
        name_node: &Node,
        cx: &mut Ctx<'_>,
        file_index: usize,
        seen: &mut AHashMap<(u8, String), ()>,
    ) -> bool {
        let Some(name) = name_node.as_str().map(str::to_string) else {
            cx.err(
                Code::Schema,
                name_node,
                None,
                "macro name must be a string".into(),
            );
            return false;
        };
        self.check_keys(item, MACRO_KEYS, "macro", cx, &name);
        let what = Some(format!("macro '{name}'"));
        let Some(cnode) = item.get("condition") else {
            cx.err(Code::Schema, item, what, "macro without 'condition'".into());
            return false;
        };
        let Some(ctext) = cnode.as_str() else {
            cx.err(
                Code::Schema,
                cnode,
                what,
                "'condition' must be a string".into(),
            );
            return false;
        };
        let cond = CondSrc::new(ctext, cnode, cx.pos(cnode), file_index);
        let append = item.get("append").and_then(Node::as_bool).unwrap_or(false);
        let ov = self.overrides(item, &[("condition", true, true)], "macro", &name, cx);
        let mode = match &ov {
            Some(o) => o.iter().find(|(k, _)| k == "condition").map(|(_, a)| *a),
            None if append => Some(true),
            None => None,
        };
        match (mode, self.macro_index.get(&name).copied()) {
            (Some(append), Some(i)) => {
                if append {
                    self.macros[i].cond.append(cond);
                } else {
                    self.macros[i].cond = cond;
                }
            }
            (Some(_), None) => {
                cx.err(
                    Code::UnknownItem,
                    item,
                    what,
                    "macro has append/override but no earlier definition".into(),
                );
                return false;
            }
            (None, existing) => {
                if seen.insert((1, name.clone()), ()).is_some() {
                    cx.warn(
                        Code::Duplicate,
                        item,
                        what,
                        "macro defined twice in this file; the later definition wins".into(),
                    );
                }
                let def = MacroDef {
                    name: name.clone(),
                    cond,
                    pos: cx.pos(item),
                };
                match existing {
                    Some(i) => self.macros[i] = def,
                    None => {
                        self.macro_index.insert(name, self.macros.len());
                        self.macros.push(def);
                    }
                }
            }
        }
        true
    }

    fn exceptions(
        &self,
        n: &Node,
        rule: &str,
        append: bool,
        cx: &mut Ctx<'_>,
    ) -> Vec<ExceptionDef> {
        let what = Some(format!("rule '{rule}'"));
        let Some(list) = n.as_seq() else {
            if !n.is_null() {
                cx.err(Code::Schema, n, what, "'exceptions' must be a list".into());
            }
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in list {
            let Some(name) = e.get("name").and_then(Node::as_str) else {
                cx.err(
                    Code::Schema,
                    e,
                    what.clone(),
                    "exception without a 'name'".into(),
                );
                continue;
            };
            let ewhat = Some(format!("rule '{rule}' exception '{name}'"));
            // Falco's rules schema: an exception has only these keys (additionalProperties:
            // false); Falco reports a schema failure and loads, so a warning here.
            for k in e.keys() {
                if let Some(ks) = k.as_str() {
                    if !matches!(ks, "name" | "fields" | "comps" | "values") {
                        cx.warn(
                            Code::Schema,
                            k,
                            ewhat.clone(),
                            format!(
                                "unknown key '{ks}' ignored (an exception has name, fields, \
                                 comps, values)"
                            ),
                        );
                    }
                }
            }
            if append && e.get("values").is_none() {
                cx.warn(
                    Code::AppendNoValues,
                    e,
                    ewhat.clone(),
                    "Overriding/appending exception with no values".into(),
                );
            }
            let (fields, single) = match e.get("fields") {
                Some(f) => match &f.kind {
                    NodeKind::Scalar(s, _) => (vec![s.clone()], true),
                    NodeKind::Seq(_) => match strings(f) {
                        Some(v) => (v.into_iter().map(|(s, _)| s).collect(), false),
                        None => {
                            cx.err(Code::Schema, f, ewhat, "'fields' must be strings".into());
                            continue;
                        }
                    },
                    _ => {
                        cx.err(
                            Code::Schema,
                            f,
                            ewhat,
                            "'fields' must be a string or a list".into(),
                        );
                        continue;
                    }
                },
                None => (Vec::new(), false),
            };
            let comps: Vec<String> = match e.get("comps") {
                Some(c) => match &c.kind {
                    NodeKind::Scalar(s, _) => vec![s.clone()],
                    _ => match strings(c) {
                        Some(v) => v.into_iter().map(|(s, _)| s).collect(),
                        None => {
                            cx.err(Code::Schema, c, ewhat, "'comps' must be strings".into());
                            continue;
                        }
                    },
                },
                None if single => vec!["in".into()],
                None => vec!["=".into(); fields.len()],
            };
            if comps.len() != fields.len() {
                cx.err(
                    Code::Schema,
                    e,
                    ewhat,
                    format!("{} fields but {} comps", fields.len(), comps.len()),
                );
                continue;
            }
            let mut values = Vec::new();
            let mut raw_values = Vec::new();
            if fields.is_empty() {
                if let Some(vs) = e.get("values").and_then(Node::as_seq) {
                    raw_values = vs.to_vec();
                }
            } else if let Some(vn) = e.get("values") {
                let Some(vs) = vn.as_seq() else {
                    if !vn.is_null() {
                        cx.err(Code::Schema, vn, ewhat, "'values' must be a list".into());
                    }
                    continue;
                };
                if single {
                    // One field: the values form the list compared with `comp`.
                    let mut many = Vec::new();
                    for v in vs {
                        match v.as_str() {
                            Some(s) => many.push(s.to_string()),
                            None => cx.err(
                                Code::Schema,
                                v,
                                ewhat.clone(),
                                "value must be a string".into(),
                            ),
                        }
                    }
                    if !many.is_empty() {
                        values.push(vec![ExcValue::Many(many)]);
                    }
                } else {
                    for v in vs {
                        let Some(tuple) = v.as_seq() else {
                            cx.err(
                                Code::Schema,
                                v,
                                ewhat.clone(),
                                "each value must be a list with one entry per field".into(),
                            );
                            continue;
                        };
                        if tuple.len() != fields.len() {
                            cx.err(
                                Code::Schema,
                                v,
                                ewhat.clone(),
                                format!(
                                    "value has {} entries for {} fields",
                                    tuple.len(),
                                    fields.len()
                                ),
                            );
                            continue;
                        }
                        let mut row = Vec::new();
                        for x in tuple {
                            match &x.kind {
                                NodeKind::Scalar(s, _) => row.push(ExcValue::One(s.clone())),
                                NodeKind::Seq(_) => match strings(x) {
                                    Some(v) => row.push(ExcValue::Many(
                                        v.into_iter().map(|(s, _)| s).collect(),
                                    )),
                                    None => cx.err(
                                        Code::Schema,
                                        x,
                                        ewhat.clone(),
                                        "value entries must be strings".into(),
                                    ),
                                },
                                NodeKind::Null => row.push(ExcValue::One(String::new())),
                                NodeKind::Map(_) => cx.err(
                                    Code::Schema,
                                    x,
                                    ewhat.clone(),
                                    "value entries must be strings".into(),
                                ),
                            }
                        }
                        if row.len() == fields.len() {
                            values.push(row);
                        }
                    }
                }
            }
            out.push(ExceptionDef {
                name: name.to_string(),
                fields,
                single,
                comps,
                values,
                raw_values,
                pos: cx.pos(e),
            });
        }
        out
    }

    fn rule(
        &mut self,
        item: &Node,
        name_node: &Node,
        cx: &mut Ctx<'_>,
        file_index: usize,
        seen: &mut AHashMap<(u8, String), ()>,
    ) -> bool {
        let Some(name) = name_node.as_str().map(str::to_string) else {
            cx.err(
                Code::Schema,
                name_node,
                None,
                "rule name must be a string".into(),
            );
            return false;
        };
        self.check_keys(item, RULE_KEYS, "rule", cx, &name);
        let what = Some(format!("rule '{name}'"));
        let str_key = |k: &str, cx: &mut Ctx<'_>| -> Option<(String, &Node)> {
            let n = item.get(k)?;
            match n.as_str() {
                Some(s) => Some((s.to_string(), n)),
                None => {
                    cx.err(
                        Code::Schema,
                        n,
                        Some(format!("rule '{name}'")),
                        format!("'{k}' must be a string"),
                    );
                    None
                }
            }
        };
        let bool_key = |k: &str, cx: &mut Ctx<'_>| -> Option<bool> {
            let n = item.get(k)?;
            match n.as_bool() {
                Some(b) => Some(b),
                None => {
                    cx.err(
                        Code::Schema,
                        n,
                        Some(format!("rule '{name}'")),
                        format!("'{k}' must be true or false"),
                    );
                    None
                }
            }
        };
        let cond =
            str_key("condition", cx).map(|(s, n)| CondSrc::new(&s, n, cx.pos(n), file_index));
        let output = str_key("output", cx);
        let desc = str_key("desc", cx).map(|(s, _)| s);
        let priority = match str_key("priority", cx) {
            Some((p, n)) => match crate::Priority::parse(&p) {
                Some(p) => Some(p),
                None => {
                    cx.err(
                        Code::Schema,
                        n,
                        what.clone(),
                        format!("unknown priority '{p}'"),
                    );
                    return false;
                }
            },
            None => None,
        };
        let enabled = bool_key("enabled", cx);
        let tags = item.get("tags").and_then(|t| match strings(t) {
            Some(v) => Some(v.into_iter().map(|(s, _)| s).collect::<Vec<_>>()),
            None => {
                cx.err(
                    Code::Schema,
                    t,
                    what.clone(),
                    "'tags' must be a list of strings".into(),
                );
                None
            }
        });
        let source = str_key("source", cx).map(|(s, _)| s);
        // Falco reads exceptions "in append mode" for `append: true` and for
        // `override: {exceptions: append}` (rule_loader_reader.cpp)
        let exc_append = item.get("append").and_then(Node::as_bool) == Some(true)
            || item
                .get("override")
                .and_then(|o| o.get("exceptions"))
                .and_then(Node::as_str)
                == Some("append");
        let exceptions = item
            .get("exceptions")
            .map(|e| self.exceptions(e, &name, exc_append, cx));
        let warn_evttypes = bool_key("warn_evttypes", cx);
        let skip = bool_key("skip-if-unknown-filter", cx);
        let append = item.get("append").and_then(Node::as_bool).unwrap_or(false);
        let ov = self.overrides(
            item,
            &[
                ("condition", true, true),
                ("output", true, true),
                ("desc", true, true),
                ("priority", false, true),
                ("tags", true, true),
                ("exceptions", true, true),
                ("enabled", false, true),
                ("warn_evttypes", false, true),
                ("skip-if-unknown-filter", false, true),
            ],
            "rule",
            &name,
            cx,
        );
        let existing = self.rule_index.get(&name).copied();

        // Modification of an existing rule: override, append, or enabled-only.
        let only_enabled = item
            .keys()
            .iter()
            .all(|k| matches!(k.as_str(), Some("rule" | "enabled")))
            && enabled.is_some();
        if ov.is_some() || append || only_enabled {
            let Some(i) = existing else {
                cx.err(
                    Code::UnknownItem,
                    item,
                    what,
                    "rule has append/override but no earlier definition".into(),
                );
                return false;
            };
            let r = &mut self.rules[i];
            if only_enabled && ov.is_none() && !append {
                if let Some(e) = enabled {
                    r.enabled = e;
                }
                return true;
            }
            let modes: Vec<(String, bool)> = match ov {
                Some(o) => o,
                None => {
                    // Legacy `append: true`: condition and exceptions append.
                    let mut m = Vec::new();
                    if cond.is_some() {
                        m.push(("condition".to_string(), true));
                    }
                    if exceptions.is_some() {
                        m.push(("exceptions".to_string(), true));
                    }
                    for k in ["output", "desc", "priority", "tags"] {
                        if let Some(n) = item.get(k) {
                            cx.err(
                                Code::Schema,
                                n,
                                what.clone(),
                                format!(
                                    "'{k}' cannot be appended with 'append: true' (use override)"
                                ),
                            );
                        }
                    }
                    if let Some(e) = enabled {
                        r.enabled = e;
                    }
                    m
                }
            };
            let mut cond = cond;
            let mut exceptions = exceptions;
            let mut tags = tags;
            for (key, app) in modes {
                match key.as_str() {
                    "condition" => {
                        if let Some(c) = cond.take() {
                            if app {
                                r.cond.append(c);
                            } else {
                                r.cond = c;
                            }
                        }
                    }
                    "output" => {
                        if let Some((o, n)) = &output {
                            if app {
                                r.output.push(' ');
                                r.output.push_str(o);
                            } else {
                                r.output = o.clone();
                                r.output_pos = cx.pos(n);
                            }
                        }
                    }
                    "desc" => {
                        if let Some(d) = &desc {
                            if app {
                                r.desc.push(' ');
                                r.desc.push_str(d);
                            } else {
                                r.desc = d.clone();
                            }
                        }
                    }
                    "priority" => {
                        if let Some(p) = priority {
                            r.priority = p;
                        }
                    }
                    "tags" => {
                        if let Some(t) = tags.take() {
                            if app {
                                r.tags.extend(t);
                            } else {
                                r.tags = t;
                            }
                        }
                    }
                    "exceptions" => {
                        if let Some(ex) = exceptions.take() {
                            if app {
                                for e in ex {
                                    match r.exceptions.iter_mut().find(|x| x.name == e.name) {
                                        Some(x) => {
                                            x.values.extend(e.values);
                                            shape_raw_values(x, &e.raw_values, cx, &name);
                                        }
                                        None => r.exceptions.push(e),
                                    }
                                }
                            } else {
                                r.exceptions = ex;
                            }
                        }
                    }
                    "enabled" => {
                        if let Some(e) = enabled {
                            r.enabled = e;
                        }
                    }
                    "warn_evttypes" => {
                        if let Some(w) = warn_evttypes {
                            r.warn_evttypes = w;
                        }
                    }
                    "skip-if-unknown-filter" => {
                        if let Some(s) = skip {
                            r.skip_if_unknown_filter = s;
                        }
                    }
                    _ => {}
                }
            }
            return true;
        }

        // A new definition (or a full redefinition).
        let mut missing = Vec::new();
        if cond.is_none() {
            missing.push("condition");
        }
        if output.is_none() {
            missing.push("output");
        }
        if priority.is_none() {
            missing.push("priority");
        }
        if !missing.is_empty() {
            cx.err(
                Code::Schema,
                item,
                what,
                format!("rule without {}", missing.join(", ")),
            );
            return false;
        }
        if desc.is_none() {
            cx.warn(
                Code::Schema,
                item,
                what.clone(),
                "rule without 'desc'".into(),
            );
        }
        if let Some(e) = exceptions.iter().flatten().find(|e| e.fields.is_empty()) {
            let n = item.get("exceptions").unwrap_or(item);
            cx.err(
                Code::Schema,
                n,
                what,
                format!("exception '{}' has no 'fields'", e.name),
            );
            return false;
        }
        if seen.insert((2, name.clone()), ()).is_some() {
            cx.warn(
                Code::Duplicate,
                item,
                what,
                "rule defined twice in this file; the later definition wins".into(),
            );
        }
        let (output, onode) = output.unwrap_or_default_pair(item);
        let def = RuleDef {
            name: name.clone(),
            desc: desc.unwrap_or_default(),
            cond: cond.unwrap_or_default(),
            output_pos: cx.pos(onode),
            output,
            priority: priority.unwrap_or(crate::Priority::Debug),
            enabled: enabled.unwrap_or(true),
            tags: tags.unwrap_or_default(),
            source: source.unwrap_or_else(|| "syscall".into()),
            exceptions: exceptions.unwrap_or_default(),
            warn_evttypes: warn_evttypes.unwrap_or(true),
            skip_if_unknown_filter: skip.unwrap_or(false),
            pos: cx.pos(item),
            file_index,
        };
        match existing {
            Some(i) => self.rules[i] = def,
            None => {
                self.rule_index.insert(name, self.rules.len());
                self.rules.push(def);
            }
        }
        true
    }
}

/// Add values given without `fields` to an existing exception, in its shape.
fn shape_raw_values(x: &mut ExceptionDef, raw: &[Node], cx: &mut Ctx<'_>, rule: &str) {
    let what = Some(format!("rule '{rule}' exception '{}'", x.name));
    for v in raw {
        if x.single {
            match v.as_str() {
                Some(s) => match x.values.first_mut().and_then(|r| r.first_mut()) {
                    Some(ExcValue::Many(m)) => m.push(s.to_string()),
                    _ => x.values.push(vec![ExcValue::Many(vec![s.to_string()])]),
                },
                None => cx.err(
                    Code::Schema,
                    v,
                    what.clone(),
                    "value must be a string".into(),
                ),
            }
            continue;
        }
        let Some(tuple) = v.as_seq().filter(|t| t.len() == x.fields.len()) else {
            cx.err(
                Code::Schema,
                v,
                what.clone(),
                format!("each value must be a list with {} entries", x.fields.len()),
            );
            continue;
        };
        let mut row = Vec::new();
        for t in tuple {
            match (&t.kind, strings(t)) {
                (NodeKind::Scalar(s, _), _) => row.push(ExcValue::One(s.clone())),
                (NodeKind::Seq(_), Some(list)) => {
                    row.push(ExcValue::Many(list.into_iter().map(|(s, _)| s).collect()))
                }
                _ => {}
            }
        }
        if row.len() == x.fields.len() {
            x.values.push(row);
        } else {
            cx.err(
                Code::Schema,
                v,
                what.clone(),
                "value entries must be strings".into(),
            );
        }
    }
}

trait PairDefault<'n> {
    fn unwrap_or_default_pair(self, fallback: &'n Node) -> (String, &'n Node);
}

impl<'n> PairDefault<'n> for Option<(String, &'n Node)> {
    fn unwrap_or_default_pair(self, fallback: &'n Node) -> (String, &'n Node) {
        self.unwrap_or((String::new(), fallback))
    }
}

/// Record a YAML error for a file.
pub(crate) fn yaml_error(report: &mut LoadReport, src: &Source, e: &crate::yaml::YamlError) {
    report.push(Diagnostic {
        severity: Severity::Error,
        code: e.code,
        message: e.message.clone(),
        pos: Pos {
            file: src.name.clone(),
            line: e.line,
            col: e.col,
        },
        item: None,
        snippet: src.snippet(e.line, e.col),
    });
}
