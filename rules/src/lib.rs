//! Falco's rules language for falco-learn.
//!
//! A load runs four passes, each reporting problems as data instead of
//! stopping at the first:
//!
//! 1. **reader** ([`yaml`]): YAML → nodes with line and column;
//! 2. **collector** ([`collector`]): lists, macros and rules of several files in
//!    order, with `append`, `override`, `enabled`-only entries, engine and
//!    plugin version checks;
//! 3. **parser** ([`parser`]): each condition → an AST with byte spans
//!    (precedence `not` > `and` > `or`);
//! 4. **compiler** ([`compile`]): macros inlined, lists expanded, exceptions
//!    appended as Falco does, fields resolved against the catalogue of
//!    `falco_learn_event::fields`, operators type-checked, sets/regexes built.
//!
//! The result is a [`Ruleset`] whose rules are indexed by the event types
//! their condition can match, plus a [`LoadReport`] of numbered errors and
//! warnings with `file:line:col` and the offending snippet. Evaluation only
//! visits the rules indexed under the event's type; [`Rule::alert`] builds a
//! Falco JSON alert.
//!
//! falco-learn sees exit events only (`evt.dir` is always `<`): a condition
//! that requires `evt.dir = >` never matches.

pub mod ast;
pub mod collector;
/// The ruleset falco-learn ships (`rules/default/falco-learn_rules.yaml`: our own text,
/// covering the 25 stable Falco rules' detections). The one copy every crate uses.
pub const DEFAULT_RULES: &str = include_str!("../default/falco-learn_rules.yaml");
/// The name [`DEFAULT_RULES`] goes by in load reports and logs.
pub const DEFAULT_RULES_NAME: &str = "<embedded>/falco-learn_rules.yaml";

pub mod compile;
pub mod emit;
pub mod event_plan;
pub mod glob;
pub mod kernel_plan;
pub mod limits;
pub mod net_plan;
pub mod operators;
pub mod output;
pub mod parser;
pub mod pmatch;
pub mod report;
pub mod strict;
pub mod yaml;

use collector::{Collected, Ctx};
use compile::{Compiler, EvalCache, Node, TypeMask, ALL_TYPES};
use falco_learn_event::{Event, EventType};
pub use glob::glob_match;
pub use output::{Alert, OutputFormat};
pub use pmatch::pmatch_match;
pub use report::{Code, Diagnostic, FileCounts, LoadReport, Pos, Severity, Source};
use std::path::Path;
use std::sync::Arc;

/// Rule priority (Falco's severities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    Emergency,
    Alert,
    Critical,
    Error,
    Warning,
    Notice,
    Informational,
    Debug,
}

impl Priority {
    /// Parse a priority as rules files write it (case-insensitive; `INFO` accepted).
    pub fn parse(s: &str) -> Option<Priority> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "emergency" => Priority::Emergency,
            "alert" => Priority::Alert,
            "critical" => Priority::Critical,
            "error" => Priority::Error,
            "warning" | "warn" => Priority::Warning,
            "notice" => Priority::Notice,
            "informational" | "info" => Priority::Informational,
            "debug" => Priority::Debug,
            _ => return None,
        })
    }

    /// The form Falco prints in alerts ("Warning", "Informational"…).
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Emergency => "Emergency",
            Priority::Alert => "Alert",
            Priority::Critical => "Critical",
            Priority::Error => "Error",
            Priority::Warning => "Warning",
            Priority::Notice => "Notice",
            Priority::Informational => "Informational",
            Priority::Debug => "Debug",
        }
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub desc: String,
    pub priority: Priority,
    pub tags: Vec<String>,
    pub source: String,
    pub enabled: bool,
    /// Event types the condition can match.
    pub evttypes: TypeMask,
    cond: Node,
    output: OutputFormat,
}

impl Rule {
    /// The compiled condition (macros inlined, lists expanded, exceptions applied).
    pub fn condition(&self) -> &Node {
        &self.cond
    }

    /// Whether the event satisfies the rule's condition (ignores `enabled`).
    pub fn matches(&self, ev: &Event) -> bool {
        self.evttypes & (1u64 << ev.event_type().index()) != 0
            && self.cond.eval(ev, &mut EvalCache::new())
    }

    /// The rule's formatted output for an event.
    pub fn format_output(&self, ev: &Event) -> String {
        self.output.format(ev)
    }

    /// Event types the rule is evaluated on.
    pub fn event_types(&self) -> Vec<EventType> {
        EventType::ALL
            .iter()
            .copied()
            .filter(|t| self.evttypes & (1u64 << t.index()) != 0)
            .collect()
    }

    /// The Falco JSON alert for an event this rule matched.
    pub fn alert(&self, ev: &Event) -> Alert {
        let msg = self.output.format(ev);
        Alert {
            hostname: output::na_if_empty(&ev.hostname).to_string(),
            output: format!(
                "{}: {} {}",
                falco_learn_event::fields::clock_time(ev.ts),
                self.priority.as_str(),
                msg
            ),
            output_fields: self.output.fields_json(ev),
            priority: self.priority.as_str().to_string(),
            rule: self.name.clone(),
            source: self.source.clone(),
            tags: self.tags.clone(),
            time: output::rfc3339(ev.ts),
        }
    }
}

/// Compiled rules indexed by event type.
#[derive(Debug, Clone, Default)]
pub struct Ruleset {
    rules: Vec<Rule>,
    by_type: Vec<Vec<u32>>,
}

impl Ruleset {
    /// Load rules files in order (later files modify earlier ones).
    /// Always returns the rules that compiled, with a report of every problem.
    pub fn load_files<P: AsRef<Path>>(paths: &[P]) -> (Ruleset, LoadReport) {
        let mut sources = Vec::new();
        let mut report = LoadReport::default();
        for p in paths {
            let p = p.as_ref();
            let (code, message) = match read_bounded(p) {
                Ok(Some(t)) => {
                    sources.push((p.display().to_string(), t));
                    continue;
                }
                Ok(None) => (
                    Code::TooLong,
                    format!(
                        "file is larger than the limit of {} bytes",
                        limits::MAX_FILE_BYTES
                    ),
                ),
                Err(e) => (Code::FileRead, format!("cannot read file: {e}")),
            };
            report.push(Diagnostic {
                severity: Severity::Error,
                code,
                message,
                pos: Pos {
                    file: Arc::from(p.display().to_string()),
                    line: 0,
                    col: 0,
                },
                item: None,
                snippet: None,
            });
        }
        let (rs, r2) = Ruleset::load_sources(&sources);
        report.files = r2.files.clone();
        report.append(r2);
        (rs, report)
    }

    /// Load rules from (name, text) pairs in order.
    pub fn load_sources<N: AsRef<str>, T: AsRef<str>>(sources: &[(N, T)]) -> (Ruleset, LoadReport) {
        let (rs, report, _) = load_counting(sources);
        (rs, report)
    }

    /// All rules (enabled or not), in load order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Number of enabled rules.
    pub fn enabled_count(&self) -> usize {
        self.rules.iter().filter(|r| r.enabled).count()
    }

    /// Enable or disable rules by name; returns how many matched.
    pub fn set_enabled(&mut self, name: &str, enabled: bool) -> usize {
        let mut n = 0;
        for r in self.rules.iter_mut().filter(|r| r.name == name) {
            r.enabled = enabled;
            n += 1;
        }
        self.reindex();
        n
    }

    /// Set the priority of every rule named `name`; returns how many.
    pub fn set_priority(&mut self, name: &str, priority: Priority) -> usize {
        let mut n = 0;
        for r in self.rules.iter_mut().filter(|r| r.name == name) {
            r.priority = priority;
            n += 1;
        }
        n
    }

    fn reindex(&mut self) {
        let mut by_type = vec![Vec::new(); EventType::ALL.len()];
        for (i, r) in self.rules.iter().enumerate() {
            if !r.enabled || r.source != "syscall" {
                continue;
            }
            for t in EventType::ALL {
                if r.evttypes & (1u64 << t.index()) != 0 {
                    by_type[t.index()].push(i as u32);
                }
            }
        }
        self.by_type = by_type;
    }

    /// Call `f` for every enabled rule the event matches, in load order.
    pub fn for_each_match<'a>(&'a self, ev: &Event, mut f: impl FnMut(&'a Rule)) {
        let Some(cands) = self.by_type.get(ev.event_type().index()) else {
            return;
        };
        let mut cache = EvalCache::new();
        for &i in cands {
            let r = &self.rules[i as usize];
            if r.cond.eval(ev, &mut cache) {
                f(r);
            }
        }
    }

    /// The rules that alert for `ev` under `mode` (Falco's `rule_matching`), in load
    /// order: with [`RuleMatching::First`] the first enabled rule that matches and that
    /// `loaded` accepts, and no other; with [`RuleMatching::All`] every such rule.
    /// `loaded` plays the part of Falco's load-time filters (its `priority`): a rule it
    /// refuses is not there in Falco, so it never hides a later rule.
    pub fn for_each_alerting<'a>(
        &'a self,
        ev: &Event,
        mode: RuleMatching,
        loaded: impl Fn(&Rule) -> bool,
        mut f: impl FnMut(&'a Rule),
    ) {
        let Some(cands) = self.by_type.get(ev.event_type().index()) else {
            return;
        };
        let mut cache = EvalCache::new();
        for &i in cands {
            let r = &self.rules[i as usize];
            if loaded(r) && r.cond.eval(ev, &mut cache) {
                f(r);
                if mode == RuleMatching::First {
                    return;
                }
            }
        }
    }

    /// Enabled rules the event matches (all of them: [`RuleMatching::All`]).
    pub fn matching<'a>(&'a self, ev: &Event) -> Vec<&'a Rule> {
        let mut v = Vec::new();
        self.for_each_match(ev, |r| v.push(r));
        v
    }

    /// Number of rules evaluated for events of this type.
    pub fn candidates(&self, t: EventType) -> usize {
        self.by_type.get(t.index()).map_or(0, Vec::len)
    }
}

/// Falco's `rule_matching`: which of the rules matching one event alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuleMatching {
    /// Only the first matching rule in load order (Falco's default).
    #[default]
    First,
    /// Every matching rule.
    All,
}

impl RuleMatching {
    /// `first` or `all`, as in falco.yaml.
    pub fn parse(s: &str) -> Option<RuleMatching> {
        match s {
            "first" => Some(RuleMatching::First),
            "all" => Some(RuleMatching::All),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RuleMatching::First => "first",
            RuleMatching::All => "all",
        }
    }
}

/// A file's text, or `None` when it is larger than [`limits::MAX_FILE_BYTES`]
/// (never read further than that).
fn read_bounded(p: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let f = std::fs::File::open(p)?;
    let mut buf = Vec::new();
    f.take(limits::MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut buf)?;
    if buf.len() > limits::MAX_FILE_BYTES {
        return Ok(None);
    }
    String::from_utf8(buf).map(Some).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// [`Ruleset::load_sources`], also returning the compiler's units of work
/// (what tests use to show that a load's work is bounded).
pub(crate) fn load_counting<N: AsRef<str>, T: AsRef<str>>(
    sources: &[(N, T)],
) -> (Ruleset, LoadReport, u64) {
    let mut report = LoadReport::default();
    let mut col = Collected::default();
    for (name, text) in sources {
        let text = text.as_ref();
        let too_large = text.len() > limits::MAX_FILE_BYTES;
        let kept = if too_large { "" } else { text };
        let src = Arc::new(Source::new(Arc::from(name.as_ref()), Arc::from(kept)));
        let parsed = if too_large {
            Err(yaml::YamlError {
                code: Code::TooLong,
                message: format!(
                    "file is larger than the limit of {} bytes",
                    limits::MAX_FILE_BYTES
                ),
                line: 1,
                col: 1,
            })
        } else {
            yaml::parse(text)
        };
        match parsed {
            Ok(docs) => {
                let mut cx = Ctx {
                    report: &mut report,
                    src,
                };
                let counts = col.add_file(&docs, &mut cx);
                report.files.push(counts);
            }
            Err(e) => {
                collector::yaml_error(&mut report, &src, &e);
                report.files.push(FileCounts {
                    name: name.as_ref().to_string(),
                    ..Default::default()
                });
            }
        }
    }
    let (rs, work) = compile_all(&col, &mut report);
    (rs, report, work)
}

fn compile_all(col: &Collected, report: &mut LoadReport) -> (Ruleset, u64) {
    let mut c = Compiler::new(col);
    // Lists on their own: a list too deep, too large or naming itself is an
    // error even when no rule uses it.
    for i in 0..col.lists.len() {
        if let Err(e) = c.check_list(i) {
            let item = format!("list '{}'", col.lists[i].name);
            if let Some(d) = c.diag(&e, Severity::Error, item) {
                report.push(d);
            }
        }
    }
    // Macros on their own, so problems in unused macros are reported too.
    for i in 0..col.macros.len() {
        if let Err(e) = c.compile_macro(i) {
            let item = format!("macro '{}'", col.macros[i].name);
            if let Some(d) = c.diag(&e, Severity::Error, item) {
                report.push(d);
            }
        }
    }
    // Macros compiled standalone are not "used" by that.
    c.used_macros.clear();
    c.used_lists.clear();
    c.unavailable.clear();

    let mut rules = Vec::new();
    for r in &col.rules {
        let item = format!("rule '{}'", r.name);
        if r.source != "syscall" {
            report.push(Diagnostic {
                severity: Severity::Warning,
                code: Code::Skipped,
                message: format!(
                    "rule for source '{}' skipped (falco-learn evaluates syscall rules)",
                    r.source
                ),
                pos: r.pos.clone(),
                item: Some(item),
                snippet: None,
            });
            continue;
        }
        let before = c.uncaptured.len();
        let before_unavailable = c.unavailable.len();
        let cond = match c.compile_src(&r.cond) {
            Ok(n) => n,
            Err(e) => {
                let sev = if r.skip_if_unknown_filter && e.code == Code::UnknownField {
                    Severity::Warning
                } else {
                    Severity::Error
                };
                if let Some(mut d) = c.diag(&e, sev, item.clone()) {
                    if sev == Severity::Warning {
                        d.code = Code::Skipped;
                        d.message = format!("{} (rule skipped: skip-if-unknown-filter)", d.message);
                    }
                    report.push(d);
                }
                continue;
            }
        };
        // Exceptions: `cond and not (exc1 or exc2 …)`.
        let cond = match c.exceptions_src(&r.name, &r.exceptions) {
            None => cond,
            Some((src, _)) => match c.compile_src(&src) {
                Ok(exc) => Node::And(vec![cond, Node::Not(Box::new(exc))].into()),
                Err(e) => {
                    compile::fallback_diag(
                        &e,
                        Severity::Error,
                        format!("{item} exceptions"),
                        report,
                    );
                    continue;
                }
            },
        };
        let mut unavailable: Vec<String> = c.unavailable.drain(before_unavailable..).collect();
        unavailable.sort();
        unavailable.dedup();
        for what in unavailable {
            report.push(Diagnostic {
                severity: Severity::Warning,
                code: Code::UnavailableField,
                message: what,
                pos: r.pos.clone(),
                item: Some(item.clone()),
                snippet: None,
            });
        }
        let mut uncaptured: Vec<String> = c.uncaptured.drain(before..).collect();
        uncaptured.sort();
        uncaptured.dedup();
        for name in &uncaptured {
            report.push(Diagnostic {
                severity: Severity::Warning,
                code: Code::UncapturedEvtType,
                message: format!(
                    "event type '{name}' is not captured by falco-learn; the rule never sees it"
                ),
                pos: r.pos.clone(),
                item: Some(item.clone()),
                snippet: None,
            });
        }
        let output = match OutputFormat::compile(&r.output) {
            Ok(o) => o,
            Err(e) => {
                let src = &col.sources[r.file_index];
                let mut pos = r.output_pos.clone();
                if !e.token.is_empty() && !report.is_full(Severity::Error) {
                    // Searched in the output's own text, not the whole file.
                    let start = src.offset(pos.line, pos.col);
                    let window = r.output.len().saturating_mul(4).saturating_add(4096);
                    if let Some(at) = src.find_from(start, window, &e.token) {
                        pos = src.pos(at);
                    }
                }
                let snippet = src.snippet(pos.line, pos.col);
                report.push(Diagnostic {
                    severity: Severity::Error,
                    code: e.code,
                    message: e.message,
                    pos,
                    item: Some(item),
                    snippet,
                });
                continue;
            }
        };
        let evttypes = cond.types();
        if evttypes == ALL_TYPES && r.warn_evttypes {
            report.push(Diagnostic {
                severity: Severity::Warning,
                code: Code::NoEvtType,
                message:
                    "condition does not restrict evt.type: the rule is evaluated on every event"
                        .into(),
                pos: r.pos.clone(),
                item: Some(item.clone()),
                snippet: None,
            });
        }
        if evttypes == 0 && r.enabled {
            report.push(Diagnostic {
                severity: Severity::Warning,
                code: Code::UncapturedEvtType,
                message: "the rule matches no event type falco-learn captures; it never fires"
                    .into(),
                pos: r.pos.clone(),
                item: Some(item.clone()),
                snippet: None,
            });
        }
        rules.push(Rule {
            name: r.name.clone(),
            desc: r.desc.clone(),
            priority: r.priority,
            tags: r.tags.clone(),
            source: r.source.clone(),
            enabled: r.enabled,
            evttypes,
            cond,
            output,
        });
    }

    // Unused lists/macros: referenced by no rule (through macros) and no other item.
    // Lists referred to only from macros that no rule uses are also reported.
    let mut list_refs = c.used_lists.clone();
    for l in &col.lists {
        for it in &l.items {
            if let Some(&j) = col.list_index.get(it.text.trim()) {
                list_refs.insert(j);
            }
        }
    }
    for (name, pos) in compile::unused(
        col.macros
            .iter()
            .enumerate()
            .map(|(i, m)| (i, m.name.as_str(), &m.pos)),
        &c.used_macros,
    ) {
        report.push(Diagnostic {
            severity: Severity::Warning,
            code: Code::UnusedMacro,
            message: format!("macro '{name}' is not used by any rule"),
            pos,
            item: None,
            snippet: None,
        });
    }
    for (name, pos) in compile::unused(
        col.lists
            .iter()
            .enumerate()
            .map(|(i, l)| (i, l.name.as_str(), &l.pos)),
        &list_refs,
    ) {
        report.push(Diagnostic {
            severity: Severity::Warning,
            code: Code::UnusedList,
            message: format!("list '{name}' is not used by any rule"),
            pos,
            item: None,
            snippet: None,
        });
    }
    for (list, item, pos) in compile::duplicate_items(col) {
        report.push(Diagnostic {
            severity: Severity::Warning,
            code: Code::Duplicate,
            message: format!("item '{item}' appears more than once in list '{list}'"),
            pos,
            item: None,
            snippet: None,
        });
    }

    let mut rs = Ruleset {
        rules,
        by_type: Vec::new(),
    };
    rs.reindex();
    // the rules that keep a kernel filter of opens off
    for (access, what) in [
        (kernel_plan::Access::Read, "every read-only open"),
        (
            kernel_plan::Access::Write,
            "in the enforce modes every write-open",
        ),
    ] {
        for name in rs.open_plan(access).unconstrained {
            let Some(r) = col.rule_index.get(&name).and_then(|&i| col.rules.get(i)) else {
                continue;
            };
            report.push(Diagnostic {
                severity: Severity::Warning,
                code: Code::KernelFilterOff,
                message: format!(
                    "the condition cannot be reduced to the path prefixes, file names and \
                     file-name endings the kernel compares, so {what} is reported to userspace \
                     (a cost on every one; `rules check --explain-kernel` shows the plan)"
                ),
                pos: r.pos.clone(),
                item: Some(format!("rule '{name}'")),
                snippet: None,
            });
        }
    }
    (rs, c.work)
}

#[cfg(test)]
mod tests;
