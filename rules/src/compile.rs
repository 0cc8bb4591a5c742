//! Compiler and evaluator: condition AST → a tree of typed tests.
//!
//! Macros are inlined, list names inside `(…)` lists expanded, fields resolved
//! against the catalogue and operators type-checked. Lists compile to hash
//! sets, `pmatch` to a prefix set, `regex` to one anchored [`regex::Regex`],
//! `evt.type` tests to a bit mask. Evaluation extracts each tested field once
//! per test and never allocates for the common string tests.

use crate::ast::{Check, Expr, Op, Operand, Rhs, Transformer, Val};
use crate::collector::{Collected, CondSrc, ExcValue, ExceptionDef};
use crate::limits::{
    MAX_CONDITION_DEPTH, MAX_CONDITION_NODES, MAX_LIST_DEPTH, MAX_LIST_ITEMS, MAX_MACRO_DEPTH,
    MAX_REGEXES, MAX_REGEX_BYTES, MAX_REGEX_DFA_BYTES, MAX_RULESET_NODES,
};
use crate::parser::parse_condition;
use crate::parser::ParseErrorKind;
use crate::report::{Code, Diagnostic, LoadReport, Pos, Severity};
use ahash::{AHashMap, AHashSet};
use base64::Engine as _;
use falco_learn_event::fields::{self, FieldId, FieldRef, FieldType, Value};
use falco_learn_event::{Event, EventType};
use ipnet::IpNet;
use std::borrow::Cow;
use std::cell::Cell;
use std::net::IpAddr;
use std::rc::Rc;

/// Set of event types as a bit mask over [`EventType::index`].
pub type TypeMask = u64;

/// Every event type falco-learn captures.
pub const ALL_TYPES: TypeMask = (1u64 << EventType::ALL.len()) - 1;

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Node {
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    Const(bool),
    /// `evt.type` membership.
    Types(TypeMask),
    Test(Box<Test>),
}

/// The value side of a compiled test: a field with transformers.
#[derive(Debug, Clone)]
pub struct Lhs {
    pub field: FieldRef,
    /// Applied in order (innermost first).
    pub transforms: Vec<Transformer>,
    /// Ruleset-wide id of (field, transforms): the key of the per-event cache.
    pub slot: u32,
    /// Whether extraction builds a value (worth caching) rather than borrowing one.
    pub costly: bool,
}

/// Fields whose extraction allocates (joined, rendered or collected values).
fn costly(f: &FieldRef, transforms: &[Transformer]) -> bool {
    use FieldId as F;
    !transforms.is_empty()
        || matches!(
            f.id,
            F::ProcCmdline
                | F::ProcPcmdline
                | F::ProcArgs
                | F::ProcEnv
                | F::EvtArgs
                | F::EvtArg
                | F::EvtTime
                | F::ThreadCapEffective
                | F::ThreadCapPermitted
                | F::ContainerImage
                | F::ContainerMounts
                | F::ContainerInfo
                | F::FdName
                | F::FdNameRaw
                | F::FdIp
                | F::FdNet
                | F::FdPort
        )
        || (matches!(
            f.id,
            F::ProcAname | F::ProcAexe | F::ProcAexePath | F::ProcApid
        ) && f.arg == fields::FieldArg::None)
}

/// Values extracted while evaluating one event, so each field is extracted
/// once per event however many rules test it.
#[derive(Debug, Default)]
pub struct EvalCache<'a> {
    entries: Vec<(u32, Option<Value<'a>>)>,
}

impl<'a> EvalCache<'a> {
    pub fn new() -> Self {
        EvalCache {
            entries: Vec::with_capacity(16),
        }
    }

    fn index(&mut self, ev: &'a Event, lhs: &Lhs) -> usize {
        if let Some(i) = self.entries.iter().position(|(s, _)| *s == lhs.slot) {
            return i;
        }
        self.entries.push((lhs.slot, lhs.extract(ev)));
        self.entries.len() - 1
    }
}

/// A literal with the forms it may be compared in.
#[derive(Debug, Clone)]
pub struct Lit {
    pub text: String,
    pub num: Option<i64>,
    pub boolean: Option<bool>,
    pub net: Option<IpNet>,
}

#[derive(Debug, Clone)]
pub enum Cond {
    Exists,
    Eq(Lit),
    Ne(Lit),
    Ord(Op, Lit),
    In {
        strs: AHashSet<String>,
        nums: AHashSet<i64>,
        bools: Vec<bool>,
        nets: Vec<IpNet>,
    },
    Pmatch(crate::pmatch::PathSet),
    Contains(String),
    IContains(String),
    StartsWith(String),
    EndsWith(String),
    BContains(Vec<u8>),
    BStartsWith(Vec<u8>),
    Glob(Vec<char>),
    IGlob(Vec<char>),
    Regex(regex::Regex),
    /// Comparison with another field's value (`val(field)`).
    Field(Op, Lhs),
}

#[derive(Debug, Clone)]
pub struct Test {
    pub lhs: Lhs,
    pub cond: Cond,
}

/// A compile failure at a byte offset of a condition text.
///
/// Shared (`Rc`): a problem in a macro or list is found once and every
/// condition using that item gets the same error, reported once.
#[derive(Debug)]
pub(crate) struct CErr {
    pub code: Code,
    pub message: String,
    pub offset: usize,
    /// Token to find in the file for an exact position.
    pub token: String,
    /// The condition source the offset refers to.
    pub src: CondSrc,
    /// The item the problem belongs to, when not the one being compiled
    /// (a macro or list whose limit was hit while compiling a rule).
    pub item: Option<String>,
    /// The position, when the problem is not in a condition text (a list).
    pub at: Option<Pos>,
    /// Set once reported.
    reported: Cell<bool>,
}

pub(crate) type CResult<T> = Result<T, Rc<CErr>>;

/// What a condition costs once its macros are inlined and lists expanded,
/// computed from the sizes of its macros and lists (never by expanding).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Extent {
    /// Compiled nodes: tests, `and`/`or`/`not`, and one per list value.
    pub nodes: u64,
    /// Nesting of the compiled tree (a single test is 1).
    pub depth: u32,
    /// Macros nested inside each other (0 when no macro is used).
    pub macros: u32,
}

/// What a list costs once the lists it names are expanded.
#[derive(Debug, Clone, Copy, Default)]
struct ListExtent {
    items: u64,
    depth: u32,
}

// ---------------------------------------------------------------- evaluation

fn transform<'a>(v: Value<'a>, tr: Transformer) -> Option<Value<'a>> {
    Some(match v {
        Value::Any(vs) => Value::Any(vs.into_iter().filter_map(|x| transform(x, tr)).collect()),
        Value::Str(s) => match tr {
            Transformer::ToLower => Value::Str(Cow::Owned(s.to_ascii_lowercase())),
            Transformer::ToUpper => Value::Str(Cow::Owned(s.to_ascii_uppercase())),
            Transformer::B64 => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s.as_bytes())
                    .ok()?;
                Value::Str(Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()))
            }
            Transformer::Basename => {
                let b = match s.rfind('/') {
                    Some(i) => s[i + 1..].to_string(),
                    None => s.into_owned(),
                };
                Value::Str(Cow::Owned(b))
            }
            Transformer::Len => Value::Num(s.len() as i64),
        },
        other => match tr {
            Transformer::Len => Value::Num(other.render().len() as i64),
            _ => other,
        },
    })
}

impl Lhs {
    pub fn extract<'a>(&self, ev: &'a Event) -> Option<Value<'a>> {
        let mut v = fields::extract(ev, &self.field)?;
        for tr in &self.transforms {
            v = transform(v, *tr)?;
        }
        Some(v)
    }

    /// Type after transformers.
    pub fn typ(&self) -> FieldType {
        let mut t = self.field.typ();
        for tr in &self.transforms {
            t = match tr {
                Transformer::Len => FieldType::Uint,
                _ => t,
            };
        }
        t
    }
}

fn lit_eq(l: &Lit, v: &Value<'_>) -> bool {
    match v {
        Value::Str(s) => s.as_ref() == l.text,
        Value::Num(n) => l.num == Some(*n),
        Value::Bool(b) => l.boolean == Some(*b),
        Value::Ip(ip) => l.net.is_some_and(|n| n.contains(ip)),
        Value::Any(vs) => vs.iter().any(|x| lit_eq(l, x)),
    }
}

fn ord(op: Op, o: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Op::Lt => o == Less,
        Op::Le => o != Greater,
        Op::Gt => o == Greater,
        Op::Ge => o != Less,
        Op::Eq => o == Equal,
        Op::Ne => o != Equal,
        _ => false,
    }
}

/// Falco's `glob` operator: the one fnmatch of the workspace ([`crate::glob`]).
fn glob(p: &[char], t: &str) -> bool {
    crate::glob::glob_chars_str(p, t)
}

/// libsinsp's `icontains` is `strcasestr` and its case folding (`iglob`'s
/// `FNM_CASEFOLD`, `tolower()`, `toupper()`) is C's `tolower` in the C locale
/// Falco runs in: ASCII letters only, byte by byte (`É` and `é` differ).
fn contains_ci(hay: &str, needle_lower: &str) -> bool {
    let n = needle_lower.as_bytes();
    if n.is_empty() {
        return true;
    }
    hay.as_bytes()
        .windows(n.len())
        .any(|w| w.eq_ignore_ascii_case(n))
}

impl Test {
    fn eval<'a>(&self, ev: &'a Event, cache: &mut EvalCache<'a>) -> bool {
        if let Cond::Field(op, other) = &self.cond {
            // `val(field)` comparisons are rare: no caching.
            return match (self.lhs.extract(ev), other.extract(ev)) {
                (Some(a), Some(b)) => field_cmp(*op, &a, &b),
                _ => false,
            };
        }
        if !self.lhs.costly {
            return match self.lhs.extract(ev) {
                Some(v) => self.check(&v),
                None => false,
            };
        }
        let i = cache.index(ev, &self.lhs);
        match &cache.entries[i].1 {
            Some(v) => self.check(v),
            None => false,
        }
    }

    fn check(&self, v: &Value<'_>) -> bool {
        if let Value::Any(vs) = v {
            return match &self.cond {
                Cond::Ne(l) => !vs.iter().any(|x| lit_eq(l, x)),
                _ => vs.iter().any(|x| self.check(x)),
            };
        }
        match &self.cond {
            Cond::Exists => true,
            Cond::Eq(l) => lit_eq(l, v),
            Cond::Ne(l) => !lit_eq(l, v),
            Cond::Ord(op, l) => match (v, l.num) {
                (Value::Num(n), Some(m)) => ord(*op, n.cmp(&m)),
                (Value::Str(s), _) => ord(*op, s.as_ref().cmp(l.text.as_str())),
                _ => false,
            },
            Cond::In {
                strs,
                nums,
                bools,
                nets,
            } => match v {
                Value::Str(s) => strs.contains(s.as_ref()),
                Value::Num(n) => nums.contains(n),
                Value::Bool(b) => bools.contains(b),
                Value::Ip(ip) => nets.iter().any(|n| n.contains(ip)),
                Value::Any(_) => false,
            },
            Cond::Pmatch(p) => matches!(v, Value::Str(s) if p.matches(s)),
            Cond::Contains(n) => v.render().contains(n.as_str()),
            Cond::IContains(n) => contains_ci(&v.render(), n),
            Cond::StartsWith(n) => v.render().starts_with(n.as_str()),
            Cond::EndsWith(n) => v.render().ends_with(n.as_str()),
            Cond::BContains(n) => {
                let r = v.render();
                let h = r.as_bytes();
                n.is_empty() || h.windows(n.len()).any(|w| w == n.as_slice())
            }
            Cond::BStartsWith(n) => v.render().as_bytes().starts_with(n),
            Cond::Glob(p) => glob(p, &v.render()),
            Cond::IGlob(p) => glob(p, &v.render().to_ascii_lowercase()),
            Cond::Regex(r) => r.is_match(&v.render()),
            // Evaluated in `eval`, which has both values.
            Cond::Field(..) => false,
        }
    }
}

fn field_cmp(op: Op, a: &Value<'_>, b: &Value<'_>) -> bool {
    if let Value::Any(bs) = b {
        return bs.iter().any(|x| field_cmp(op, a, x));
    }
    match (a, b) {
        (Value::Num(x), Value::Num(y)) => ord(op, x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => ord(op, x.cmp(y)),
        (Value::Ip(x), Value::Ip(y)) => ord(op, x.cmp(y)),
        _ => {
            let (x, y) = (a.render(), b.render());
            match op {
                Op::Contains => x.contains(y.as_ref()),
                Op::IContains => contains_ci(&x, &y.to_ascii_lowercase()),
                Op::StartsWith | Op::BStartsWith => x.starts_with(y.as_ref()),
                Op::EndsWith => x.ends_with(y.as_ref()),
                Op::BContains => x.contains(y.as_ref()),
                _ => ord(op, x.as_ref().cmp(y.as_ref())),
            }
        }
    }
}

impl Node {
    pub fn eval<'a>(&self, ev: &'a Event, cache: &mut EvalCache<'a>) -> bool {
        match self {
            Node::And(v) => v.iter().all(|n| n.eval(ev, cache)),
            Node::Or(v) => v.iter().any(|n| n.eval(ev, cache)),
            Node::Not(n) => !n.eval(ev, cache),
            Node::Const(b) => *b,
            Node::Types(m) => m & (1u64 << ev.event_type().index()) != 0,
            Node::Test(t) => t.eval(ev, cache),
        }
    }

    /// The condition's value on `ev` when only the fields `known` accepts are known (the
    /// others could have any value): `Some` when it is decided, `None` when it depends on an
    /// unknown field (Kleene's three-valued logic). Used to prove, at load, that no rule can
    /// match a class of events the kernel can recognise (`Ruleset::may_match`).
    pub fn eval_known(&self, ev: &Event, known: &dyn Fn(&FieldRef) -> bool) -> Option<bool> {
        match self {
            Node::And(v) => {
                let mut all = Some(true);
                for n in v.iter() {
                    match n.eval_known(ev, known) {
                        Some(false) => return Some(false),
                        Some(true) => {}
                        None => all = None,
                    }
                }
                all
            }
            Node::Or(v) => {
                let mut any = Some(false);
                for n in v.iter() {
                    match n.eval_known(ev, known) {
                        Some(true) => return Some(true),
                        Some(false) => {}
                        None => any = None,
                    }
                }
                any
            }
            Node::Not(n) => n.eval_known(ev, known).map(|b| !b),
            Node::Const(b) => Some(*b),
            Node::Types(m) => Some(m & (1u64 << ev.event_type().index()) != 0),
            Node::Test(t) => {
                let decided = known(&t.lhs.field)
                    && match &t.cond {
                        Cond::Field(_, other) => known(&other.field),
                        _ => true,
                    };
                decided.then(|| t.eval(ev, &mut EvalCache::new()))
            }
        }
    }

    /// Event types for which the condition may be true.
    pub fn types(&self) -> TypeMask {
        match self {
            Node::And(v) => v.iter().fold(ALL_TYPES, |m, n| m & n.types()),
            Node::Or(v) => v.iter().fold(0, |m, n| m | n.types()),
            Node::Not(n) => n.types_negated(),
            Node::Const(true) => ALL_TYPES,
            Node::Const(false) => 0,
            Node::Types(m) => *m,
            Node::Test(_) => ALL_TYPES,
        }
    }

    /// Event types for which the negation of the condition may be true.
    fn types_negated(&self) -> TypeMask {
        match self {
            Node::And(v) => v.iter().fold(0, |m, n| m | n.types_negated()),
            Node::Or(v) => v.iter().fold(ALL_TYPES, |m, n| m & n.types_negated()),
            Node::Not(n) => n.types(),
            Node::Const(true) => 0,
            Node::Const(false) => ALL_TYPES,
            Node::Types(m) => ALL_TYPES & !m,
            Node::Test(_) => ALL_TYPES,
        }
    }
}

// ---------------------------------------------------------------- compilation

pub(crate) struct Compiler<'c> {
    pub col: &'c Collected,
    /// Parsed macro conditions, by macro index.
    macro_asts: Vec<Option<CResult<Rc<Expr>>>>,
    /// Extent of each macro's condition, computed once (see [`Extent`]).
    macro_ext: Vec<Option<CResult<Extent>>>,
    /// Macros whose extent is being computed (a use of one is a cycle).
    macro_open: Vec<bool>,
    /// Extent of each list, computed once.
    list_ext: Vec<Option<CResult<ListExtent>>>,
    list_open: Vec<bool>,
    pub used_lists: AHashSet<usize>,
    pub used_macros: AHashSet<usize>,
    /// Event type names used that falco-learn never captures.
    pub uncaptured: Vec<String>,
    /// What conditions compiled so far ask for that the probe never gives (see
    /// [`fields::unavailable`]), one text each; drained per rule like `uncaptured`.
    pub unavailable: Vec<String>,
    emitted: AHashSet<(String, usize, usize, String)>,
    slots: AHashMap<(FieldRef, Vec<Transformer>), u32>,
    /// Compiled regexes by pattern (a pattern used by many rules is compiled once).
    regexes: AHashMap<String, regex::Regex>,
    /// While compiling a macro on its own: macros it uses are checked, not inlined.
    shallow: bool,
    /// Nodes of the rules compiled so far (bounded by [`MAX_RULESET_NODES`]).
    pub total_nodes: u64,
    /// Units of work done (AST nodes sized, nodes built, list values
    /// expanded): what tests use to show a load's work is bounded.
    pub work: u64,
}

fn is_list_op(op: Op) -> bool {
    op.takes_list()
}

fn parse_lit(text: &str) -> Lit {
    let num = parse_num(text);
    let boolean = match text {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    };
    let net = text
        .parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from));
    Lit {
        text: text.to_string(),
        num,
        boolean,
        net,
    }
}

fn parse_num(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return i64::from_str_radix(h, 16).ok();
    }
    t.parse::<i64>().ok()
}

fn unquote_item(text: &str) -> String {
    let t = text.trim();
    if t.len() >= 2
        && ((t.starts_with('"') && t.ends_with('"')) || (t.starts_with('\'') && t.ends_with('\'')))
    {
        // Parse with the condition value syntax (backslash escapes).
        if let Ok(Expr::Check(c)) = parse_condition(&format!("x.x = {t}")) {
            if let Rhs::Value(v) = c.rhs {
                return v.text;
            }
        }
        return t[1..t.len() - 1].to_string();
    }
    if t.contains(' ') {
        // Falco wraps it in `"…"` (see `paste_item`): its backslashes are escapes
        // (checked when the list's extent is computed)
        if let Ok(u) = crate::parser::unescape(t, b'"', 0) {
            return u;
        }
    }
    t.to_string()
}

/// How Falco pastes an exception value into the condition text
/// (`quote_item` in rule_loader_compiler.cpp): as written when it starts with a
/// quote (a quoted string, with libsinsp's escapes) or holds no space (a bare
/// string, or a list name), else wrapped in `"…"` without escaping.
fn paste_item(s: &str) -> String {
    if s.contains(' ') && !s.starts_with(['"', '\'']) {
        format!("\"{s}\"")
    } else {
        s.to_string()
    }
}

/// Falco's `paren_item`: a value for a list operator, in parentheses unless it starts with one.
fn paren_item(s: &str) -> String {
    if s.starts_with('(') {
        s.to_string()
    } else {
        format!("({s})")
    }
}

impl<'c> Compiler<'c> {
    pub fn new(col: &'c Collected) -> Self {
        Compiler {
            col,
            macro_asts: vec![None; col.macros.len()],
            macro_ext: vec![None; col.macros.len()],
            macro_open: vec![false; col.macros.len()],
            list_ext: vec![None; col.lists.len()],
            list_open: vec![false; col.lists.len()],
            used_lists: AHashSet::new(),
            used_macros: AHashSet::new(),
            uncaptured: Vec::new(),
            unavailable: Vec::new(),
            emitted: AHashSet::new(),
            slots: AHashMap::new(),
            regexes: AHashMap::new(),
            shallow: false,
            total_nodes: 0,
            work: 0,
        }
    }

    /// Turn a compile error into a diagnostic with the best position we can
    /// find; `None` when it was reported already.
    pub fn diag(&mut self, e: &CErr, sev: Severity, item: String) -> Option<Diagnostic> {
        if e.reported.get() {
            return None;
        }
        let item = e.item.clone().unwrap_or(item);
        let (pos, source) = match &e.at {
            Some(pos) => {
                let source = self.col.sources.iter().find(|s| s.name == pos.file);
                (pos.clone(), source.cloned())
            }
            None => {
                let frag = e.src.fragment_at(e.offset)?;
                let source = self.col.sources.get(frag.file_index)?.clone();
                let mut pos = frag.pos.clone();
                if !e.token.is_empty() && frag.file_offset <= source.text.len() {
                    // The token is searched in the condition's own text (a
                    // window proportional to it), never in the rest of the file.
                    let frag_len = e.src.text.len().saturating_sub(frag.start);
                    let window = frag_len.saturating_mul(4).saturating_add(4096);
                    if let Some(at) = source.find_from(frag.file_offset, window, &e.token) {
                        pos = source.pos(at);
                    }
                }
                (pos, Some(source))
            }
        };
        let key = (pos.file.to_string(), pos.line, pos.col, e.message.clone());
        if !self.emitted.insert(key) {
            return None;
        }
        e.reported.set(true);
        let snippet = source.and_then(|s| s.snippet(pos.line, pos.col));
        Some(Diagnostic {
            severity: sev,
            code: e.code,
            message: e.message.clone(),
            pos,
            item: Some(item),
            snippet,
        })
    }

    fn cerr(src: &CondSrc, code: Code, offset: usize, token: &str, message: String) -> Rc<CErr> {
        Rc::new(CErr {
            code,
            message,
            offset,
            token: token.to_string(),
            src: src.clone(),
            item: None,
            at: None,
            reported: Cell::new(false),
        })
    }

    /// A limit hit by a whole macro, list or condition: reported at the
    /// start of its condition (or at `at`), naming `item`.
    fn limit_err(
        src: &CondSrc,
        at: Option<Pos>,
        item: Option<String>,
        code: Code,
        message: String,
    ) -> Rc<CErr> {
        Rc::new(CErr {
            code,
            message,
            offset: 0,
            token: String::new(),
            src: src.clone(),
            item,
            at,
            reported: Cell::new(false),
        })
    }

    fn parse_err(src: &CondSrc, e: &crate::parser::ParseError) -> Rc<CErr> {
        let tok: String = src
            .text
            .get(e.offset.min(src.text.len())..)
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        let (code, message) = match e.kind {
            ParseErrorKind::Syntax => (
                Code::ConditionSyntax,
                format!("syntax error: {}", e.message),
            ),
            ParseErrorKind::TooDeep => (Code::TooDeep, e.message.clone()),
            ParseErrorKind::TooLong => (Code::TooLong, e.message.clone()),
        };
        let tok = if e.kind == ParseErrorKind::TooLong {
            String::new()
        } else {
            tok
        };
        Self::cerr(src, code, e.offset, &tok, message)
    }

    fn macro_ast(&mut self, i: usize) -> CResult<Rc<Expr>> {
        if let Some(r) = &self.macro_asts[i] {
            return r.clone();
        }
        let src = &self.col.macros[i].cond;
        let r = parse_condition(&src.text)
            .map(Rc::new)
            .map_err(|e| Self::parse_err(src, &e));
        self.macro_asts[i] = Some(r.clone());
        r
    }

    // ------------------------------------------------------------ extents

    /// Compute the extent of macro `root` and of every macro it uses, each
    /// once, walking the graph of macro uses with an explicit stack (a
    /// chain of a million macros costs no native stack).
    fn ensure_macro(&mut self, root: usize) {
        let mut frames: Vec<(usize, Vec<usize>, usize)> = Vec::new();
        self.open_macro(root, &mut frames);
        while let Some((i, refs, next)) = frames.last_mut() {
            if let Some(&j) = refs.get(*next) {
                *next += 1;
                if self.macro_ext[j].is_none() && !self.macro_open[j] {
                    self.open_macro(j, &mut frames);
                }
                continue;
            }
            let i = *i;
            frames.pop();
            let r = self.macro_extent_now(i);
            self.macro_open[i] = false;
            self.macro_ext[i] = Some(r);
        }
    }

    fn open_macro(&mut self, i: usize, frames: &mut Vec<(usize, Vec<usize>, usize)>) {
        if self.macro_ext[i].is_some() {
            return;
        }
        match self.macro_ast(i) {
            Err(e) => self.macro_ext[i] = Some(Err(e)),
            Ok(ast) => {
                let mut names = Vec::new();
                ast.macro_refs(&mut names);
                let refs = names
                    .iter()
                    .filter_map(|n| self.col.macro_index.get(*n).copied())
                    .collect();
                self.macro_open[i] = true;
                frames.push((i, refs, 0));
            }
        }
    }

    /// Extent of macro `i`, the macros it uses being known (or open: a cycle).
    fn macro_extent_now(&mut self, i: usize) -> CResult<Extent> {
        let ast = self.macro_ast(i)?;
        let col = self.col;
        let m = &col.macros[i];
        let mut ext = self.extent(&ast, &m.cond)?;
        ext.macros = ext.macros.saturating_add(1);
        let item = Some(format!("macro '{}'", m.name));
        if ext.macros > MAX_MACRO_DEPTH {
            return Err(Self::limit_err(
                &m.cond,
                None,
                item,
                Code::TooDeep,
                format!(
                    "macro '{}' has macros nested {} deep, more than the limit of {MAX_MACRO_DEPTH}",
                    m.name, ext.macros
                ),
            ));
        }
        Self::check_extent(ext, &m.cond, item, &format!("macro '{}'", m.name))?;
        Ok(ext)
    }

    /// The per-condition limits, for a macro or a rule's condition.
    fn check_extent(ext: Extent, src: &CondSrc, item: Option<String>, what: &str) -> CResult<()> {
        if ext.depth > MAX_CONDITION_DEPTH {
            return Err(Self::limit_err(
                src,
                None,
                item,
                Code::TooDeep,
                format!(
                    "{what} is nested {} levels deep once macros are inlined, more than the limit of {MAX_CONDITION_DEPTH}",
                    ext.depth
                ),
            ));
        }
        if ext.nodes > MAX_CONDITION_NODES {
            return Err(Self::limit_err(
                src,
                None,
                item,
                Code::TooLarge,
                format!(
                    "{what} expands to {} nodes once macros are inlined and lists expanded, more than the limit of {MAX_CONDITION_NODES} (a macro or list used several times counts each time)",
                    ext.nodes
                ),
            ));
        }
        Ok(())
    }

    /// Extent of a condition: its own nodes plus the (known) extents of the
    /// macros and lists it uses. Recursion is bounded by the parser's depth.
    fn extent(&mut self, e: &Expr, src: &CondSrc) -> CResult<Extent> {
        self.work += 1;
        Ok(match e {
            Expr::And(v) | Expr::Or(v) => {
                let mut x = Extent {
                    nodes: 1,
                    depth: 0,
                    macros: 0,
                };
                for c in v {
                    let y = self.extent(c, src)?;
                    x.nodes = x.nodes.saturating_add(y.nodes);
                    x.depth = x.depth.max(y.depth);
                    x.macros = x.macros.max(y.macros);
                }
                x.depth = x.depth.saturating_add(1);
                x
            }
            Expr::Not(c) => {
                let y = self.extent(c, src)?;
                Extent {
                    nodes: y.nodes.saturating_add(1),
                    depth: y.depth.saturating_add(1),
                    macros: y.macros,
                }
            }
            Expr::Macro { name, span } => {
                let Some(&j) = self.col.macro_index.get(name) else {
                    // Undefined: reported when the condition is compiled.
                    return Ok(Extent {
                        nodes: 1,
                        depth: 1,
                        macros: 0,
                    });
                };
                if self.macro_ext[j].is_none() {
                    if self.macro_open[j] {
                        return Err(Self::cerr(
                            src,
                            Code::UnknownMacro,
                            span.start,
                            name,
                            format!("macro '{name}' refers to itself"),
                        ));
                    }
                    self.ensure_macro(j);
                }
                match &self.macro_ext[j] {
                    Some(r) => r.clone()?,
                    None => Extent::default(),
                }
            }
            Expr::Check(c) => {
                let values = match &c.rhs {
                    Rhs::List(items) => self.values_extent(items)?,
                    Rhs::Value(v) if c.op.takes_list() => {
                        self.values_extent(std::slice::from_ref(v))?
                    }
                    _ => 0,
                };
                Extent {
                    nodes: values.saturating_add(1),
                    depth: 1,
                    macros: 0,
                }
            }
        })
    }

    /// Values a list operand expands to.
    fn values_extent(&mut self, items: &[Val]) -> CResult<u64> {
        let mut n: u64 = 0;
        for v in items {
            let one = match self.list_named(v) {
                Some(li) => self.list_extent(li)?.items,
                None => 1,
            };
            n = n.saturating_add(one);
        }
        Ok(n)
    }

    /// The list a value of a list operand names, if any.
    fn list_named(&self, v: &Val) -> Option<usize> {
        if v.quoted {
            return None;
        }
        self.col.list_index.get(&v.text).copied()
    }

    /// Extent of list `li` (and of the lists it names), computed once.
    fn list_extent(&mut self, li: usize) -> CResult<ListExtent> {
        if self.list_ext[li].is_none() {
            self.ensure_list(li);
        }
        match &self.list_ext[li] {
            Some(r) => r.clone(),
            None => Ok(ListExtent::default()),
        }
    }

    /// Like [`Self::ensure_macro`], for the graph of lists naming lists.
    fn ensure_list(&mut self, root: usize) {
        let col = self.col;
        let mut frames: Vec<(usize, usize)> = Vec::new();
        if self.list_ext[root].is_none() {
            self.list_open[root] = true;
            frames.push((root, 0));
        }
        while let Some((li, next)) = frames.last_mut() {
            let li = *li;
            if let Some(it) = col.lists[li].items.get(*next) {
                *next += 1;
                self.work += 1;
                if let Some(&lj) = col.list_index.get(it.text.trim()) {
                    if lj != li && self.list_ext[lj].is_none() && !self.list_open[lj] {
                        self.list_open[lj] = true;
                        frames.push((lj, 0));
                    }
                }
                continue;
            }
            frames.pop();
            let r = self.list_extent_now(li);
            self.list_open[li] = false;
            self.list_ext[li] = Some(r);
        }
    }

    fn list_extent_now(&mut self, li: usize) -> CResult<ListExtent> {
        let col = self.col;
        let l = &col.lists[li];
        let item = Some(format!("list '{}'", l.name));
        let none = CondSrc::default();
        let mut ext = ListExtent { items: 0, depth: 1 };
        for it in &l.items {
            let t = it.text.trim();
            match col.list_index.get(t) {
                // A list naming itself holds its name as a value.
                Some(&lj) if lj != li => match &self.list_ext[lj] {
                    Some(Ok(x)) => {
                        ext.items = ext.items.saturating_add(x.items);
                        ext.depth = ext.depth.max(x.depth.saturating_add(1));
                    }
                    Some(Err(e)) => return Err(e.clone()),
                    None => {
                        return Err(Self::limit_err(
                            &none,
                            Some(it.pos.clone()),
                            item,
                            Code::TooDeep,
                            format!(
                                "list '{}' names list '{t}', which names '{}' again (directly or through other lists): lists cannot contain themselves",
                                l.name, l.name
                            ),
                        ))
                    }
                },
                _ => {
                    // Falco pastes list items into the condition: a quoted item is a quoted
                    // string there, with libsinsp's escapes (`'"a\\d"'` does not load).
                    if !t.contains(' ')
                        && !t.starts_with(['"', '\''])
                        && t.contains(['=', '(', ')', ',', '"', '\''])
                    {
                        // pasted bare by Falco: libsinsp's bare strings stop at these
                        return Err(Self::limit_err(
                            &none,
                            Some(it.pos.clone()),
                            item,
                            Code::ConditionSyntax,
                            format!(
                                "list '{}' item {t}: a bare value cannot hold = ( ) , \" or ' \
                                 (Falco pastes it into the condition as is); quote it",
                                l.name
                            ),
                        ));
                    }
                    if t.contains(' ') && !t.starts_with(['"', '\'']) {
                        // pasted as `"…"` by Falco (`paste_item`)
                        let bad = if t.contains('"') {
                            Some("a '\"' in an item holding a space ends the quotes Falco adds around it".to_string())
                        } else {
                            crate::parser::unescape(t, b'"', 0).err().map(|e| e.message)
                        };
                        if let Some(m) = bad {
                            return Err(Self::limit_err(
                                &none,
                                Some(it.pos.clone()),
                                item,
                                Code::ConditionSyntax,
                                format!("list '{}' item {t}: {m}", l.name),
                            ));
                        }
                    }
                    if let Some(q @ (b'"' | b'\'')) = t.bytes().next() {
                        if t.len() >= 2 && t.as_bytes()[t.len() - 1] == q {
                            if let Err(e) = crate::parser::unescape(&t[1..t.len() - 1], q, 0) {
                                return Err(Self::limit_err(
                                    &none,
                                    Some(it.pos.clone()),
                                    item,
                                    Code::ConditionSyntax,
                                    format!("list '{}' item {t}: {}", l.name, e.message),
                                ));
                            }
                        }
                    }
                    ext.items = ext.items.saturating_add(1)
                }
            }
        }
        if ext.depth > MAX_LIST_DEPTH {
            return Err(Self::limit_err(
                &none,
                Some(l.pos.clone()),
                item,
                Code::TooDeep,
                format!(
                    "list '{}' has lists nested {} deep, more than the limit of {MAX_LIST_DEPTH}",
                    l.name, ext.depth
                ),
            ));
        }
        if ext.items > MAX_LIST_ITEMS {
            return Err(Self::limit_err(
                &none,
                Some(l.pos.clone()),
                item,
                Code::TooLarge,
                format!(
                    "list '{}' expands to {} values, more than the limit of {MAX_LIST_ITEMS} (a list named several times counts each time)",
                    l.name, ext.items
                ),
            ));
        }
        Ok(ext)
    }

    /// Mark the macros and lists a condition uses (transitively) as used,
    /// when it is rejected before being expanded.
    fn mark_used(&mut self, ast: &Expr) {
        let mut names = Vec::new();
        ast.macro_refs(&mut names);
        let mut todo: Vec<usize> = names
            .iter()
            .filter_map(|n| self.col.macro_index.get(*n).copied())
            .collect();
        let mut vals = Vec::new();
        ast.list_values(&mut vals);
        let lists: Vec<usize> = vals.iter().filter_map(|v| self.list_named(v)).collect();
        self.used_lists.extend(lists);
        while let Some(i) = todo.pop() {
            if !self.used_macros.insert(i) {
                continue;
            }
            if let Some(Ok(ast)) = self.macro_asts[i].clone() {
                let mut names = Vec::new();
                ast.macro_refs(&mut names);
                todo.extend(
                    names
                        .iter()
                        .filter_map(|n| self.col.macro_index.get(*n).copied()),
                );
                let mut vals = Vec::new();
                ast.list_values(&mut vals);
                let lists: Vec<usize> = vals.iter().filter_map(|v| self.list_named(v)).collect();
                self.used_lists.extend(lists);
            }
        }
    }

    // ------------------------------------------------------------ compile

    /// Parse and compile a rule's condition (or exceptions): its size is
    /// checked against the per-condition and whole-ruleset limits before
    /// anything is expanded.
    pub fn compile_src(&mut self, src: &CondSrc) -> CResult<Node> {
        let ast = parse_condition(&src.text).map_err(|e| Self::parse_err(src, &e))?;
        let ext = match self.extent(&ast, src) {
            Ok(ext) => ext,
            Err(e) => {
                self.mark_used(&ast);
                return Err(e);
            }
        };
        if let Err(e) = Self::check_extent(ext, src, None, "the condition") {
            self.mark_used(&ast);
            return Err(e);
        }
        if self.total_nodes.saturating_add(ext.nodes) > MAX_RULESET_NODES {
            self.mark_used(&ast);
            return Err(Self::limit_err(
                src,
                None,
                None,
                Code::TooLarge,
                format!(
                    "the rules loaded so far and this condition expand to more than {MAX_RULESET_NODES} nodes together; not loaded"
                ),
            ));
        }
        self.total_nodes += ext.nodes;
        let mut stack = Vec::new();
        self.expr(&ast, src, &mut stack)
    }

    /// Compile a macro on its own (to report its problems even when unused):
    /// its size is checked, and the macros it uses are checked, not inlined
    /// (each is compiled on its own too).
    pub fn compile_macro(&mut self, i: usize) -> CResult<Node> {
        self.ensure_macro(i);
        if let Some(Err(e)) = &self.macro_ext[i] {
            return Err(e.clone());
        }
        let ast = self.macro_ast(i)?;
        let col = self.col;
        let src = &col.macros[i].cond;
        let mut stack = vec![i];
        self.shallow = true;
        let r = self.expr(&ast, src, &mut stack);
        self.shallow = false;
        r
    }

    /// Check every list (to report its problems even when unused).
    pub fn check_list(&mut self, li: usize) -> CResult<()> {
        self.list_extent(li).map(|_| ())
    }

    fn expr(&mut self, e: &Expr, src: &CondSrc, stack: &mut Vec<usize>) -> CResult<Node> {
        self.work += 1;
        Ok(match e {
            Expr::And(v) => {
                let mut out = Vec::with_capacity(v.len());
                for x in v {
                    out.push(self.expr(x, src, stack)?);
                }
                Node::And(out.into())
            }
            Expr::Or(v) => {
                let mut out = Vec::with_capacity(v.len());
                for x in v {
                    out.push(self.expr(x, src, stack)?);
                }
                Node::Or(out.into())
            }
            Expr::Not(x) => Node::Not(Box::new(self.expr(x, src, stack)?)),
            Expr::Macro { name, span } => {
                let Some(&i) = self.col.macro_index.get(name) else {
                    return Err(Self::cerr(
                        src,
                        Code::UnknownMacro,
                        span.start,
                        name,
                        format!("undefined macro '{name}'"),
                    ));
                };
                self.used_macros.insert(i);
                if stack.contains(&i) {
                    return Err(Self::cerr(
                        src,
                        Code::UnknownMacro,
                        span.start,
                        name,
                        format!("macro '{name}' refers to itself"),
                    ));
                }
                if stack.len() > MAX_MACRO_DEPTH as usize {
                    // Not reached: extents are checked before expanding.
                    return Err(Self::cerr(
                        src,
                        Code::TooDeep,
                        span.start,
                        name,
                        format!("macro '{name}' nested more than {MAX_MACRO_DEPTH} macros deep"),
                    ));
                }
                if self.shallow {
                    // Checked on its own; its extent is known to be within limits.
                    return Ok(Node::Const(true));
                }
                let ast = self.macro_ast(i)?;
                let col = self.col;
                let msrc = &col.macros[i].cond;
                stack.push(i);
                let r = self.expr(&ast, msrc, stack);
                stack.pop();
                r?
            }
            Expr::Check(c) => self.check(c, src)?,
        })
    }

    fn operand(&mut self, o: &Operand, src: &CondSrc) -> CResult<Lhs> {
        match o {
            Operand::Field { name, span } => {
                let field = fields::parse_field_ref(name).map_err(|e| {
                    Self::cerr(src, Code::UnknownField, span.start, name, e.to_string())
                })?;
                if let Some(why) = fields::unavailable(&field) {
                    self.unavailable.push(format!(
                        "field '{field}' never has a value in falco-learn ({why}): \
                             every comparison on it is false, 'exists' too"
                    ));
                }
                Ok(Lhs {
                    field,
                    transforms: Vec::new(),
                    slot: 0,
                    costly: false,
                })
            }
            Operand::Transform { tr, inner, span } => {
                let mut l = self.operand(inner, src)?;
                let t = l.typ();
                let ok = match tr {
                    Transformer::Len => true,
                    _ => t.is_text() || t == FieldType::Dynamic,
                };
                if !ok {
                    return Err(Self::cerr(
                        src,
                        Code::BadOperator,
                        span.start,
                        tr.as_str(),
                        format!(
                            "transformer {}() needs a text field, not {}",
                            tr.as_str(),
                            t.as_str()
                        ),
                    ));
                }
                l.transforms.push(*tr);
                Ok(l)
            }
        }
    }

    /// Expand list names among list values (their extents are known to be
    /// within limits: checked before the condition is compiled).
    fn expand(&mut self, items: &[Val], out: &mut Vec<String>) -> CResult<()> {
        for v in items {
            if let Some(li) = self.list_named(v) {
                self.used_lists.insert(li);
                self.expand_list(li, out)?;
                continue;
            }
            self.work += 1;
            out.push(v.text.clone());
        }
        Ok(())
    }

    /// Recursion is bounded by [`MAX_LIST_DEPTH`] (checked first).
    fn expand_list(&mut self, li: usize, out: &mut Vec<String>) -> CResult<()> {
        self.list_extent(li)?;
        let col = self.col;
        for it in &col.lists[li].items {
            let t = it.text.trim();
            if let Some(&lj) = col.list_index.get(t) {
                if lj != li {
                    self.used_lists.insert(lj);
                    self.expand_list(lj, out)?;
                    continue;
                }
            }
            self.work += 1;
            out.push(unquote_item(t));
        }
        Ok(())
    }

    fn slot_of(&mut self, lhs: &mut Lhs) {
        let key = (lhs.field.clone(), lhs.transforms.clone());
        let next = self.slots.len() as u32;
        lhs.slot = *self.slots.entry(key).or_insert(next);
        lhs.costly = costly(&lhs.field, &lhs.transforms);
    }

    fn check(&mut self, c: &Check, src: &CondSrc) -> CResult<Node> {
        let mut lhs = self.operand(&c.lhs, src)?;
        if lhs.field.id == fields::FieldId::EvtDir {
            let asks_enter = match &c.rhs {
                Rhs::Value(v) => v.text == ">",
                Rhs::List(vs) => vs.iter().any(|v| v.text == ">"),
                _ => false,
            };
            if asks_enter {
                self.unavailable.push(
                    "'evt.dir' compared with '>' asks for enter events: falco-learn sees \
                     exit events only, evt.dir is always '<'"
                        .to_string(),
                );
            }
        }
        self.slot_of(&mut lhs);
        let typ = lhs.typ();
        let op = c.op;
        let bad_op = |this: &Self| -> Rc<CErr> {
            let _ = this;
            Self::cerr(
                src,
                Code::BadOperator,
                c.op_span.start,
                op.as_str(),
                format!(
                    "operator '{}' not supported for field '{}' of type {}",
                    op.as_str(),
                    lhs.field,
                    typ.as_str()
                ),
            )
        };
        // Which operators each type accepts: the operator table.
        if !(crate::operators::info(op).accepts)(typ) {
            return Err(bad_op(self));
        }
        if op == Op::Exists {
            return Ok(Node::Test(Box::new(Test {
                lhs,
                cond: Cond::Exists,
            })));
        }
        // Right-hand side.
        let value_err = |this: &Self, v: &Val, what: &str| -> Rc<CErr> {
            let _ = this;
            Self::cerr(
                src,
                Code::BadOperator,
                v.span.start,
                &v.text,
                format!(
                    "'{}' is not {what} (field '{}' is {})",
                    v.text,
                    lhs.field,
                    typ.as_str()
                ),
            )
        };
        let check_lit = |this: &Self, v: &Val| -> CResult<Lit> {
            let l = parse_lit(&v.text);
            match typ {
                t if t.is_numeric() && l.num.is_none() => Err(value_err(this, v, "a number")),
                FieldType::Bool if l.boolean.is_none() => Err(value_err(this, v, "true or false")),
                FieldType::IpAddr | FieldType::IpNet if l.net.is_none() => {
                    Err(value_err(this, v, "an IP address or CIDR network"))
                }
                _ => Ok(l),
            }
        };
        match &c.rhs {
            Rhs::None => Err(Self::cerr(
                src,
                Code::ConditionSyntax,
                c.op_span.end,
                "",
                format!("operator '{}' needs a value", op.as_str()),
            )),
            Rhs::Field(o) => {
                let mut other = self.operand(o, src)?;
                self.slot_of(&mut other);
                if !crate::operators::info(op).field_rhs {
                    return Err(bad_op(self));
                }
                Ok(Node::Test(Box::new(Test {
                    lhs,
                    cond: Cond::Field(op, other),
                })))
            }
            Rhs::List(items) => {
                if !is_list_op(op) {
                    return Err(bad_op(self));
                }
                let mut texts = Vec::new();
                self.expand(items, &mut texts)?;
                // evt.type lists compile to a mask.
                if lhs.field.id == FieldId::EvtType && lhs.transforms.is_empty() && op != Op::Pmatch
                {
                    return Ok(Node::Types(self.type_mask(&texts)));
                }
                if op == Op::Pmatch {
                    return Ok(Node::Test(Box::new(Test {
                        lhs,
                        cond: Cond::Pmatch(crate::pmatch::PathSet::new(texts)),
                    })));
                }
                let mut strs = AHashSet::new();
                let mut nums = AHashSet::new();
                let mut bools = Vec::new();
                let mut nets = Vec::new();
                for t in &texts {
                    let l = parse_lit(t);
                    let fake = Val {
                        text: t.clone(),
                        quoted: false,
                        span: c.op_span,
                    };
                    match typ {
                        ty if ty.is_numeric() => {
                            nums.insert(l.num.ok_or_else(|| value_err(self, &fake, "a number"))?)
                        }
                        FieldType::Bool => {
                            bools.push(
                                l.boolean
                                    .ok_or_else(|| value_err(self, &fake, "true or false"))?,
                            );
                            true
                        }
                        FieldType::IpAddr | FieldType::IpNet => {
                            nets.push(l.net.ok_or_else(|| {
                                value_err(self, &fake, "an IP address or CIDR network")
                            })?);
                            true
                        }
                        _ => {
                            if let Some(n) = l.num {
                                nums.insert(n);
                            }
                            strs.insert(t.clone())
                        }
                    };
                }
                Ok(Node::Test(Box::new(Test {
                    lhs,
                    cond: Cond::In {
                        strs,
                        nums,
                        bools,
                        nets,
                    },
                })))
            }
            Rhs::Value(v) => {
                if is_list_op(op) {
                    // `x in value`: one-element list.
                    let c2 = Check {
                        rhs: Rhs::List(vec![v.clone()]),
                        ..c.clone()
                    };
                    return self.check(&c2, src);
                }
                if lhs.field.id == FieldId::EvtType
                    && lhs.transforms.is_empty()
                    && matches!(op, Op::Eq | Op::Ne)
                {
                    let m = self.type_mask(std::slice::from_ref(&v.text));
                    return Ok(if op == Op::Eq {
                        Node::Types(m)
                    } else {
                        Node::Types(ALL_TYPES & !m)
                    });
                }
                let cond = match op {
                    Op::Eq => Cond::Eq(check_lit(self, v)?),
                    Op::Ne => Cond::Ne(check_lit(self, v)?),
                    Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                        let l = check_lit(self, v)?;
                        if typ == FieldType::Dynamic && l.num.is_none() {
                            return Err(value_err(self, v, "a number"));
                        }
                        Cond::Ord(op, l)
                    }
                    Op::Contains => Cond::Contains(v.text.clone()),
                    Op::IContains => Cond::IContains(v.text.to_ascii_lowercase()),
                    Op::StartsWith => Cond::StartsWith(v.text.clone()),
                    Op::EndsWith => Cond::EndsWith(v.text.clone()),
                    Op::BContains | Op::BStartsWith => {
                        let bytes =
                            hex_bytes(&v.text).ok_or_else(|| value_err(self, v, "hex bytes"))?;
                        if op == Op::BContains {
                            Cond::BContains(bytes)
                        } else {
                            Cond::BStartsWith(bytes)
                        }
                    }
                    Op::Glob => Cond::Glob(v.text.chars().collect()),
                    Op::IGlob => Cond::IGlob(v.text.to_ascii_lowercase().chars().collect()),
                    Op::Regex => Cond::Regex(self.regex(v, src)?),
                    Op::In | Op::Intersects | Op::Pmatch | Op::Exists => return Err(bad_op(self)),
                };
                Ok(Node::Test(Box::new(Test { lhs, cond })))
            }
        }
    }

    /// A `regex` value compiled (once per distinct pattern) within the size limits.
    fn regex(&mut self, v: &Val, src: &CondSrc) -> CResult<regex::Regex> {
        if let Some(r) = self.regexes.get(&v.text) {
            return Ok(r.clone());
        }
        if self.regexes.len() >= MAX_REGEXES {
            return Err(Self::cerr(
                src,
                Code::TooLarge,
                v.span.start,
                &v.text,
                format!("more than {MAX_REGEXES} distinct regular expressions"),
            ));
        }
        let r = regex::RegexBuilder::new(&format!("^(?:{})$", v.text))
            .size_limit(MAX_REGEX_BYTES)
            .dfa_size_limit(MAX_REGEX_DFA_BYTES)
            .build()
            .map_err(|e| match e {
                regex::Error::CompiledTooBig(_) => Self::cerr(
                    src,
                    Code::TooLong,
                    v.span.start,
                    &v.text,
                    format!(
                        "regular expression compiles to more than the limit of {MAX_REGEX_BYTES} bytes"
                    ),
                ),
                e => Self::cerr(
                    src,
                    Code::BadOperator,
                    v.span.start,
                    &v.text,
                    format!("bad regular expression: {e}"),
                ),
            })?;
        self.regexes.insert(v.text.clone(), r.clone());
        Ok(r)
    }

    fn type_mask(&mut self, names: &[String]) -> TypeMask {
        let mut m = 0;
        for n in names {
            match EventType::from_name(n) {
                Some(t) => m |= 1u64 << t.index(),
                None => self.uncaptured.push(n.clone()),
            }
        }
        m
    }

    /// A rule's exceptions as a condition source (`None` when there are no values).
    pub fn exceptions_src(
        &self,
        rule_name: &str,
        exc: &[ExceptionDef],
    ) -> Option<(CondSrc, Vec<String>)> {
        let mut ors = Vec::new();
        for e in exc {
            for row in &e.values {
                let mut ands = Vec::new();
                for ((f, comp), v) in e.fields.iter().zip(&e.comps).zip(row) {
                    let list_comp = matches!(comp.as_str(), "in" | "intersects" | "pmatch");
                    let rhs = match (v, list_comp) {
                        (ExcValue::Many(items), _) => {
                            let parts: Vec<String> = items.iter().map(|s| paste_item(s)).collect();
                            format!("({})", parts.join(", "))
                        }
                        (ExcValue::One(s), true) => paren_item(s),
                        (ExcValue::One(s), false) => paste_item(s),
                    };
                    ands.push(format!("{f} {comp} {rhs}"));
                }
                if !ands.is_empty() {
                    ors.push(format!("({})", ands.join(" and ")));
                }
            }
        }
        let _ = rule_name;
        if ors.is_empty() {
            return None;
        }
        let text = ors.join(" or ");
        let first = exc.first()?;
        let src = CondSrc {
            text,
            fragments: vec![crate::collector::Fragment {
                start: 0,
                pos: first.pos.clone(),
                file_offset: usize::MAX,
                file_index: usize::MAX,
            }],
        };
        Some((src, ors))
    }
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Report a compile error whose source has no file offset (exceptions).
pub(crate) fn fallback_diag(e: &CErr, sev: Severity, item: String, report: &mut LoadReport) {
    if e.reported.replace(true) {
        return;
    }
    let pos = match &e.at {
        Some(p) => p.clone(),
        None => e
            .src
            .fragments
            .first()
            .map(|f| f.pos.clone())
            .unwrap_or_default(),
    };
    let shown: String = e.src.text.chars().take(160).collect();
    let more = if shown.len() < e.src.text.len() {
        "…"
    } else {
        ""
    };
    report.push(Diagnostic {
        severity: sev,
        code: e.code,
        message: e.message.clone(),
        pos,
        item: Some(e.item.clone().unwrap_or(item)),
        snippet: Some(format!("  in: {shown}{more}")),
    });
}

/// Macro use counts for unused-item warnings.
pub(crate) fn unused<'a>(
    names: impl Iterator<Item = (usize, &'a str, &'a Pos)>,
    used: &AHashSet<usize>,
) -> Vec<(String, Pos)> {
    names
        .filter(|(i, _, _)| !used.contains(i))
        .map(|(_, n, p)| (n.to_string(), p.clone()))
        .collect()
}

/// Duplicate items of each list.
pub(crate) fn duplicate_items(col: &Collected) -> Vec<(String, String, Pos)> {
    let mut out = Vec::new();
    for l in &col.lists {
        let mut seen: AHashMap<&str, ()> = AHashMap::new();
        for it in &l.items {
            if seen.insert(it.text.as_str(), ()).is_some() {
                out.push((l.name.clone(), it.text.clone(), it.pos.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_semantics() {
        let g = |p: &str, t: &str| glob(&p.chars().collect::<Vec<_>>(), t);
        assert!(g("/home/*/.ssh/*", "/home/bob/.ssh/id_rsa"));
        assert!(g("*../*../*", "/var/www/../../etc/passwd"));
        assert!(!g("*../*../*", "/var/www/../etc/passwd"));
        assert!(g("/etc/[ps]*", "/etc/passwd"));
        assert!(!g("/etc/[!ps]*", "/etc/passwd"));
        assert!(g("a?c", "abc"));
        assert!(!g("a?c", "ac"));
    }

    #[test]
    fn list_items_unquote() {
        assert_eq!(unquote_item("\"(systemd)\""), "(systemd)");
        assert_eq!(
            unquote_item(r#""sh -c node -e \"require('nan')\"""#),
            r#"sh -c node -e "require('nan')""#
        );
        assert_eq!(unquote_item("bash"), "bash");
    }

    #[test]
    fn hex() {
        assert_eq!(hex_bytes("cafebabe"), Some(vec![0xca, 0xfe, 0xba, 0xbe]));
        assert_eq!(hex_bytes("abc"), None);
    }
}
