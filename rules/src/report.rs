//! Load problems as data: numbered errors and warnings with file:line:col and
//! the offending snippet, collected over the whole load so the CLI can print
//! every problem rather than the first.

use std::fmt;
use std::sync::Arc;

/// A position in a rules file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pos {
    pub file: Arc<str>,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// Error or warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// Kind of a problem; the string form is stable (used in tests and tooling)
/// and follows Falco's `LOAD_*` naming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// The file is not valid YAML.
    YamlParse,
    /// A YAML item has the wrong shape (missing key, wrong type…).
    Schema,
    /// A condition does not parse.
    ConditionSyntax,
    /// A field that falco-learn does not know.
    UnknownField,
    /// An operator the field's type does not support, or a value that does not fit.
    BadOperator,
    /// A macro referred to but never defined, or a cycle of macros.
    UnknownMacro,
    /// `append`/`override` of an item not defined before.
    UnknownItem,
    /// An output string that cannot be formatted.
    BadOutput,
    /// Engine or plugin version requirement not met.
    Version,
    /// A rule that can match every event type (so is evaluated on every event).
    NoEvtType,
    /// A list never referred to.
    UnusedList,
    /// A macro never referred to.
    UnusedMacro,
    /// The same item twice in a list, or the same name defined twice in one file.
    Duplicate,
    /// A rule whose event types falco-learn never captures.
    UncapturedEvtType,
    /// A rule skipped because of `skip-if-unknown-filter`, or for a source other than syscall.
    Skipped,
    /// A deprecated construct.
    Deprecated,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::YamlParse => "LOAD_ERR_YAML_PARSE",
            Code::Schema => "LOAD_ERR_YAML_VALIDATE",
            Code::ConditionSyntax => "LOAD_ERR_COMPILE_CONDITION",
            Code::UnknownField => "LOAD_ERR_UNKNOWN_FIELD",
            Code::BadOperator => "LOAD_ERR_BAD_OPERATOR",
            Code::UnknownMacro => "LOAD_ERR_UNKNOWN_MACRO",
            Code::UnknownItem => "LOAD_ERR_UNKNOWN_ITEM",
            Code::BadOutput => "LOAD_ERR_COMPILE_OUTPUT",
            Code::Version => "LOAD_ERR_VERSION",
            Code::NoEvtType => "LOAD_NO_EVTTYPE",
            Code::UnusedList => "LOAD_UNUSED_LIST",
            Code::UnusedMacro => "LOAD_UNUSED_MACRO",
            Code::Duplicate => "LOAD_DUPLICATE",
            Code::UncapturedEvtType => "LOAD_UNCAPTURED_EVTTYPE",
            Code::Skipped => "LOAD_SKIPPED",
            Code::Deprecated => "LOAD_DEPRECATED_ITEM",
        }
    }
}

/// One problem found while loading.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    pub pos: Pos,
    /// The item the problem belongs to, e.g. `rule 'Terminal shell in container'`.
    pub item: Option<String>,
    /// The offending source text (one line, trimmed) and a caret column in it.
    pub snippet: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}: {sev} {}: {}",
            self.pos,
            self.code.as_str(),
            self.message
        )?;
        if let Some(item) = &self.item {
            write!(f, " (in {item})")?;
        }
        if let Some(snip) = &self.snippet {
            write!(f, "\n{snip}")?;
        }
        Ok(())
    }
}

/// Number of items found in one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileCounts {
    pub name: String,
    pub lists: usize,
    pub macros: usize,
    pub rules: usize,
}

/// Everything a load found: per-file counts, errors and warnings.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub files: Vec<FileCounts>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl LoadReport {
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    pub(crate) fn push(&mut self, d: Diagnostic) {
        match d.severity {
            Severity::Error => self.errors.push(d),
            Severity::Warning => self.warnings.push(d),
        }
    }

    /// Warnings of one kind.
    pub fn warnings_of(&self, code: Code) -> impl Iterator<Item = &Diagnostic> {
        self.warnings.iter().filter(move |d| d.code == code)
    }
}

impl fmt::Display for LoadReport {
    /// Every problem, numbered: errors first, then warnings.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.errors.iter().enumerate() {
            writeln!(f, "[E{}] {d}", i + 1)?;
        }
        for (i, d) in self.warnings.iter().enumerate() {
            writeln!(f, "[W{}] {d}", i + 1)?;
        }
        Ok(())
    }
}

/// A snippet line with a caret under `col` (1-based) of line `line` of `src`.
pub(crate) fn snippet(src: &str, line: usize, col: usize) -> Option<String> {
    let text = src.lines().nth(line.checked_sub(1)?)?;
    let shown: String = text.chars().take(160).collect();
    let caret_col = col.saturating_sub(1).min(shown.chars().count());
    Some(format!(
        "  {line:>5} | {shown}\n        | {}^",
        " ".repeat(caret_col)
    ))
}
