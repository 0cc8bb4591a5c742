//! Load problems as data: numbered errors and warnings with file:line:col and
//! the offending snippet, collected over the whole load so the CLI can print
//! every problem rather than the first.

use crate::limits::MAX_DIAGNOSTICS;
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
        // line 0: the file as a whole (it could not be read)
        if self.line == 0 {
            return write!(f, "{}", self.file);
        }
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
    /// The file cannot be read (missing, a directory, no permission).
    FileRead,
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
    /// Nesting beyond a limit: parentheses, macros using macros, lists naming
    /// lists, the compiled condition tree (see [`crate::limits`]).
    TooDeep,
    /// Expansion beyond a limit: nodes a condition or the whole ruleset
    /// compiles to, values a list expands to, YAML nodes after aliases.
    TooLarge,
    /// Size beyond a limit: file, condition text, output format, compiled regex.
    TooLong,
    /// An exception appended or overridden with `append` that has no `values`.
    AppendNoValues,
    /// A condition asks for a value falco-learn's probe never gives (an enter event's
    /// `evt.dir = >`, a field never filled): the test is always false there.
    UnavailableField,
    /// A rule whose condition cannot be reduced to what the kernel's open filter compares
    /// (path prefixes, file names, endings): with it loaded, every open of that kind is
    /// reported to userspace ([`crate::kernel_plan`]).
    KernelFilterOff,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::FileRead => "LOAD_ERR_FILE_READ",
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
            Code::TooDeep => "LOAD_ERR_LIMIT_DEPTH",
            Code::TooLarge => "LOAD_ERR_LIMIT_EXPANSION",
            Code::TooLong => "LOAD_ERR_LIMIT_SIZE",
            Code::AppendNoValues => "LOAD_APPEND_NO_VALUES",
            Code::UnavailableField => "LOAD_UNAVAILABLE_FIELD",
            Code::KernelFilterOff => "LOAD_KERNEL_FILTER_OFF",
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
///
/// At most [`MAX_DIAGNOSTICS`] errors and as many warnings are kept; the
/// rest are only counted, so a file with a million broken items costs no
/// more to report than one with a thousand.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub files: Vec<FileCounts>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    /// Errors found beyond the first [`MAX_DIAGNOSTICS`].
    pub errors_not_kept: usize,
    /// Warnings found beyond the first [`MAX_DIAGNOSTICS`].
    pub warnings_not_kept: usize,
}

impl LoadReport {
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty() || self.errors_not_kept > 0
    }

    /// Whether a problem of this severity would only be counted (so its
    /// message and snippet need not be built).
    pub(crate) fn is_full(&self, sev: Severity) -> bool {
        match sev {
            Severity::Error => self.errors.len() >= MAX_DIAGNOSTICS,
            Severity::Warning => self.warnings.len() >= MAX_DIAGNOSTICS,
        }
    }

    pub(crate) fn push(&mut self, d: Diagnostic) {
        match d.severity {
            Severity::Error if self.errors.len() >= MAX_DIAGNOSTICS => self.errors_not_kept += 1,
            Severity::Warning if self.warnings.len() >= MAX_DIAGNOSTICS => {
                self.warnings_not_kept += 1
            }
            Severity::Error => self.errors.push(d),
            Severity::Warning => self.warnings.push(d),
        }
    }

    /// Add another report's problems after this one's (files are not merged).
    pub(crate) fn append(&mut self, other: LoadReport) {
        for d in other.errors.into_iter().chain(other.warnings) {
            self.push(d);
        }
        self.errors_not_kept += other.errors_not_kept;
        self.warnings_not_kept += other.warnings_not_kept;
    }

    /// Warnings of one kind.
    pub fn warnings_of(&self, code: Code) -> impl Iterator<Item = &Diagnostic> {
        self.warnings.iter().filter(move |d| d.code == code)
    }

    /// Warnings of every kind but one.
    pub fn warnings_but(&self, code: Code) -> impl Iterator<Item = &Diagnostic> {
        self.warnings.iter().filter(move |d| d.code != code)
    }

    /// Errors of one kind.
    pub fn errors_of(&self, code: Code) -> impl Iterator<Item = &Diagnostic> {
        self.errors.iter().filter(move |d| d.code == code)
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
        if self.errors_not_kept + self.warnings_not_kept > 0 {
            writeln!(
                f,
                "... and {} more errors and {} more warnings (only the first {MAX_DIAGNOSTICS} of each are kept)",
                self.errors_not_kept, self.warnings_not_kept
            )?;
        }
        Ok(())
    }
}

/// A loaded file: its name, its text and where its lines start, so a
/// position or a snippet costs a binary search rather than a scan of the text.
#[derive(Debug)]
pub struct Source {
    pub name: Arc<str>,
    pub text: Arc<str>,
    line_starts: Vec<usize>,
}

impl Source {
    pub fn new(name: Arc<str>, text: Arc<str>) -> Source {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source {
            name,
            text,
            line_starts,
        }
    }

    /// 1-based line and column (in bytes) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        // The first start is 0, so at least one start is <= offset.
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        (line, offset - start + 1)
    }

    /// The position of a byte offset.
    pub fn pos(&self, offset: usize) -> Pos {
        let (line, col) = self.line_col(offset);
        Pos {
            file: self.name.clone(),
            line,
            col,
        }
    }

    /// Byte offset of a 1-based line and column (clamped to the text).
    pub fn offset(&self, line: usize, col: usize) -> usize {
        let start = line
            .checked_sub(1)
            .and_then(|l| self.line_starts.get(l))
            .copied()
            .unwrap_or(0);
        start
            .saturating_add(col.saturating_sub(1))
            .min(self.text.len())
    }

    /// Offset of the first `needle` in the `window` bytes from `start`.
    pub fn find_from(&self, start: usize, window: usize, needle: &str) -> Option<usize> {
        let text = &self.text;
        let mut start = start.min(text.len());
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = start.saturating_add(window).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.get(start..end)?.find(needle).map(|rel| start + rel)
    }

    /// Text of a 1-based line, without its line ending.
    pub fn line(&self, line: usize) -> Option<&str> {
        let start = *self.line_starts.get(line.checked_sub(1)?)?;
        if start >= self.text.len() {
            // Past the last line (as `str::lines` sees them).
            return None;
        }
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |&next| next - 1);
        let text = self.text.get(start..end)?;
        Some(text.strip_suffix('\r').unwrap_or(text))
    }

    /// A snippet line with a caret under `col` (1-based) of line `line`.
    pub fn snippet(&self, line: usize, col: usize) -> Option<String> {
        let text = self.line(line)?;
        let shown: String = text.chars().take(160).collect();
        let caret_col = col.saturating_sub(1).min(shown.chars().count());
        Some(format!(
            "  {line:>5} | {shown}\n        | {}^",
            " ".repeat(caret_col)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_positions_match_a_scan() {
        for text in ["ab\r\ncd\n\nlast", "", "a\n", "a\n\n"] {
            let src = Source::new(Arc::from("f"), Arc::from(text));
            for off in 0..=text.len() {
                let before = &text[..off];
                let line = before.matches('\n').count() + 1;
                let col = off - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                assert_eq!(src.line_col(off), (line, col), "offset {off}");
            }
            let lines: Vec<&str> = text.lines().collect();
            for (i, l) in lines.iter().enumerate() {
                assert_eq!(src.line(i + 1), Some(*l));
            }
            assert_eq!(src.line(0), None);
            assert_eq!(src.line(lines.len() + 1), None);
        }
    }

    #[test]
    fn report_keeps_a_bounded_number_of_problems() {
        let mut r = LoadReport::default();
        for _ in 0..MAX_DIAGNOSTICS + 5 {
            r.push(Diagnostic {
                severity: Severity::Error,
                code: Code::Schema,
                message: "m".into(),
                pos: Pos::default(),
                item: None,
                snippet: None,
            });
        }
        assert_eq!(r.errors.len(), MAX_DIAGNOSTICS);
        assert_eq!(r.errors_not_kept, 5);
        assert!(r.has_errors());
        assert!(r.to_string().contains("5 more errors"));
    }
}
