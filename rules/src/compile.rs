//! Compiler and evaluator: condition AST → a tree of typed tests.
//!
//! Macros are inlined, list names inside `(…)` lists expanded, fields resolved
//! against the catalogue and operators type-checked. Lists compile to hash
//! sets, `pmatch` to a prefix set, `regex` to one anchored [`regex::Regex`],
//! `evt.type` tests to a bit mask. Evaluation extracts each tested field once
//! per test and never allocates for the common string tests.

use crate::ast::{Check, Expr, Op, Operand, Rhs, Transformer, Val};
use crate::collector::{Collected, CondSrc, ExcValue, ExceptionDef};
use crate::parser::parse_condition;
use crate::report::{Code, Diagnostic, LoadReport, Pos, Severity};
use ahash::{AHashMap, AHashSet};
use base64::Engine as _;
use falco_learn_event::fields::{self, FieldId, FieldRef, FieldType, Value};
use falco_learn_event::{Event, EventType};
use ipnet::IpNet;
use std::borrow::Cow;
use std::net::IpAddr;

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
    Pmatch(Vec<String>),
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
#[derive(Debug, Clone)]
pub(crate) struct CErr {
    pub code: Code,
    pub message: String,
    pub offset: usize,
    /// Token to find in the file for an exact position.
    pub token: String,
    /// The condition source the offset refers to.
    pub src: CondSrc,
}

// ---------------------------------------------------------------- evaluation

fn transform<'a>(v: Value<'a>, tr: Transformer) -> Option<Value<'a>> {
    Some(match v {
        Value::Any(vs) => Value::Any(vs.into_iter().filter_map(|x| transform(x, tr)).collect()),
        Value::Str(s) => match tr {
            Transformer::ToLower => Value::Str(Cow::Owned(s.to_lowercase())),
            Transformer::ToUpper => Value::Str(Cow::Owned(s.to_uppercase())),
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

/// Falco's `glob` operator: does `text` match `pattern` (fnmatch without
/// FNM_PATHNAME: `*` also matches `/`)?
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    glob(&p, text)
}

fn glob(p: &[char], t: &str) -> bool {
    let t: Vec<char> = t.chars().collect();
    glob_chars(p, &t)
}

/// fnmatch-style glob without FNM_PATHNAME: `*` (also across `/`), `?`, `[…]`, `[!…]`.
fn glob_chars(p: &[char], t: &[char]) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut back: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = if pi < p.len() {
            match p[pi] {
                '*' => {
                    back = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => Some(pi + 1),
                '[' => class(p, pi, t[ti]),
                '\\' if pi + 1 < p.len() => (p[pi + 1] == t[ti]).then_some(pi + 2),
                c => (c == t[ti]).then_some(pi + 1),
            }
        } else {
            None
        };
        match step {
            Some(np) => {
                pi = np;
                ti += 1;
            }
            None => match back {
                Some((bp, bt)) => {
                    pi = bp + 1;
                    ti = bt + 1;
                    back = Some((bp, bt + 1));
                }
                None => return false,
            },
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Match a `[…]` class at `p[start]`; returns the index after it on a match.
fn class(p: &[char], start: usize, c: char) -> Option<usize> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() && (p[i] != ']' || first) {
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    if i >= p.len() {
        // Unclosed: treat '[' literally.
        return (c == '[').then_some(start + 1);
    }
    (matched != negate).then_some(i + 1)
}

fn contains_ci(hay: &str, needle_lower: &str) -> bool {
    if hay.is_ascii() {
        let n = needle_lower.as_bytes();
        if n.is_empty() {
            return true;
        }
        hay.as_bytes()
            .windows(n.len())
            .any(|w| w.eq_ignore_ascii_case(n))
    } else {
        hay.to_lowercase().contains(needle_lower)
    }
}

fn pmatch(prefixes: &[String], v: &str) -> bool {
    prefixes.iter().any(|p| {
        v == p
            || (v.starts_with(p.as_str())
                && (p.ends_with('/') || v.as_bytes().get(p.len()) == Some(&b'/')))
    })
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
            Cond::Pmatch(p) => matches!(v, Value::Str(s) if pmatch(p, s)),
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
            Cond::IGlob(p) => glob(p, &v.render().to_lowercase()),
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
                Op::IContains => contains_ci(&x, &y.to_lowercase()),
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
    macro_asts: Vec<Option<Result<Expr, CErr>>>,
    pub used_lists: AHashSet<usize>,
    pub used_macros: AHashSet<usize>,
    /// Event type names used that falco-learn never captures.
    pub uncaptured: Vec<String>,
    emitted: AHashSet<(String, usize, usize, String)>,
    slots: AHashMap<(FieldRef, Vec<Transformer>), u32>,
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
    t.to_string()
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl<'c> Compiler<'c> {
    pub fn new(col: &'c Collected) -> Self {
        Compiler {
            col,
            macro_asts: vec![None; col.macros.len()],
            used_lists: AHashSet::new(),
            used_macros: AHashSet::new(),
            uncaptured: Vec::new(),
            emitted: AHashSet::new(),
            slots: AHashMap::new(),
        }
    }

    /// Turn a compile error into a diagnostic with the best position we can find.
    pub fn diag(&mut self, e: &CErr, sev: Severity, item: String) -> Option<Diagnostic> {
        let frag = e.src.fragment_at(e.offset)?;
        let (file, text) = self.col.sources.get(frag.file_index)?.clone();
        let mut pos = frag.pos.clone();
        let mut line_col = None;
        if !e.token.is_empty() {
            if let Some(rel) = text.get(frag.file_offset..).and_then(|t| t.find(&e.token)) {
                let at = frag.file_offset + rel;
                let before = &text[..at];
                let line = before.matches('\n').count() + 1;
                let col = at - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                line_col = Some((line, col));
            }
        }
        if let Some((l, c)) = line_col {
            pos = Pos {
                file,
                line: l,
                col: c,
            };
        }
        let key = (pos.file.to_string(), pos.line, pos.col, e.message.clone());
        if !self.emitted.insert(key) {
            return None;
        }
        let snippet = crate::report::snippet(&text, pos.line, pos.col);
        Some(Diagnostic {
            severity: sev,
            code: e.code,
            message: e.message.clone(),
            pos,
            item: Some(item),
            snippet,
        })
    }

    fn cerr(src: &CondSrc, code: Code, offset: usize, token: &str, message: String) -> CErr {
        CErr {
            code,
            message,
            offset,
            token: token.to_string(),
            src: src.clone(),
        }
    }

    fn macro_ast(&mut self, i: usize) -> Result<Expr, CErr> {
        if let Some(r) = &self.macro_asts[i] {
            return r.clone();
        }
        let src = &self.col.macros[i].cond;
        let r = parse_condition(&src.text).map_err(|e| {
            let tok: String = src.text[e.offset.min(src.text.len())..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string();
            Self::cerr(
                src,
                Code::ConditionSyntax,
                e.offset,
                &tok,
                format!("syntax error: {}", e.message),
            )
        });
        self.macro_asts[i] = Some(r.clone());
        r
    }

    /// Parse and compile a condition source.
    pub fn compile_src(&mut self, src: &CondSrc) -> Result<Node, CErr> {
        let ast = parse_condition(&src.text).map_err(|e| {
            let tok: String = src.text[e.offset.min(src.text.len())..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string();
            Self::cerr(
                src,
                Code::ConditionSyntax,
                e.offset,
                &tok,
                format!("syntax error: {}", e.message),
            )
        })?;
        let mut stack = Vec::new();
        self.expr(&ast, src, &mut stack)
    }

    /// Compile a macro on its own (to report its problems even when unused).
    pub fn compile_macro(&mut self, i: usize) -> Result<Node, CErr> {
        let ast = self.macro_ast(i)?;
        let src = self.col.macros[i].cond.clone();
        let mut stack = vec![i];
        self.expr(&ast, &src, &mut stack)
    }

    fn expr(&mut self, e: &Expr, src: &CondSrc, stack: &mut Vec<usize>) -> Result<Node, CErr> {
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
                if stack.len() > 64 {
                    return Err(Self::cerr(
                        src,
                        Code::UnknownMacro,
                        span.start,
                        name,
                        format!("macro '{name}' nested more than 64 macros deep"),
                    ));
                }
                if stack.contains(&i) {
                    return Err(Self::cerr(
                        src,
                        Code::UnknownMacro,
                        span.start,
                        name,
                        format!("macro '{name}' refers to itself"),
                    ));
                }
                let ast = self.macro_ast(i)?;
                let msrc = self.col.macros[i].cond.clone();
                stack.push(i);
                let r = self.expr(&ast, &msrc, stack);
                stack.pop();
                r?
            }
            Expr::Check(c) => self.check(c, src)?,
        })
    }

    fn operand(&mut self, o: &Operand, src: &CondSrc) -> Result<Lhs, CErr> {
        match o {
            Operand::Field { name, span } => {
                let field = fields::parse_field_ref(name).map_err(|e| {
                    Self::cerr(src, Code::UnknownField, span.start, name, e.to_string())
                })?;
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

    /// Expand list names among list values.
    fn expand(&mut self, items: &[Val], out: &mut Vec<String>, depth: usize) {
        for v in items {
            if !v.quoted {
                if let Some(&li) = self.col.list_index.get(&v.text) {
                    self.used_lists.insert(li);
                    self.expand_list(li, out, depth + 1);
                    continue;
                }
            }
            out.push(v.text.clone());
        }
    }

    fn expand_list(&mut self, li: usize, out: &mut Vec<String>, depth: usize) {
        if depth > 32 {
            return;
        }
        let items = &self.col.lists[li].items;
        for it in items {
            let t = it.text.trim();
            if let Some(&lj) = self.col.list_index.get(t) {
                if lj != li {
                    self.used_lists.insert(lj);
                    self.expand_list(lj, out, depth + 1);
                    continue;
                }
            }
            out.push(unquote_item(t));
        }
    }

    fn slot_of(&mut self, lhs: &mut Lhs) {
        let key = (lhs.field.clone(), lhs.transforms.clone());
        let next = self.slots.len() as u32;
        lhs.slot = *self.slots.entry(key).or_insert(next);
        lhs.costly = costly(&lhs.field, &lhs.transforms);
    }

    fn check(&mut self, c: &Check, src: &CondSrc) -> Result<Node, CErr> {
        let mut lhs = self.operand(&c.lhs, src)?;
        self.slot_of(&mut lhs);
        let typ = lhs.typ();
        let op = c.op;
        let bad_op = |this: &Self| -> CErr {
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
        // Which operators each type accepts.
        let allowed = match typ {
            FieldType::String | FieldType::Path | FieldType::Dynamic | FieldType::Bytes => true,
            FieldType::Int
            | FieldType::Uint
            | FieldType::Port
            | FieldType::RelTime
            | FieldType::AbsTime => matches!(
                op,
                Op::Eq
                    | Op::Ne
                    | Op::Lt
                    | Op::Le
                    | Op::Gt
                    | Op::Ge
                    | Op::In
                    | Op::Intersects
                    | Op::Exists
            ),
            FieldType::Bool => matches!(op, Op::Eq | Op::Ne | Op::In | Op::Exists),
            FieldType::IpAddr | FieldType::IpNet => {
                matches!(op, Op::Eq | Op::Ne | Op::In | Op::Intersects | Op::Exists)
            }
        };
        let pmatch_ok = op != Op::Pmatch
            || matches!(
                typ,
                FieldType::Path | FieldType::String | FieldType::Dynamic
            );
        if !allowed || !pmatch_ok {
            return Err(bad_op(self));
        }
        if op == Op::Exists {
            return Ok(Node::Test(Box::new(Test {
                lhs,
                cond: Cond::Exists,
            })));
        }
        // Right-hand side.
        let value_err = |this: &Self, v: &Val, what: &str| -> CErr {
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
        let check_lit = |this: &Self, v: &Val| -> Result<Lit, CErr> {
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
                if is_list_op(op) || matches!(op, Op::Glob | Op::IGlob | Op::Regex | Op::Pmatch) {
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
                self.expand(items, &mut texts, 0);
                // evt.type lists compile to a mask.
                if lhs.field.id == FieldId::EvtType && lhs.transforms.is_empty() && op != Op::Pmatch
                {
                    return Ok(Node::Types(self.type_mask(&texts)));
                }
                if op == Op::Pmatch {
                    return Ok(Node::Test(Box::new(Test {
                        lhs,
                        cond: Cond::Pmatch(texts),
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
                    Op::IContains => Cond::IContains(v.text.to_lowercase()),
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
                    Op::IGlob => Cond::IGlob(v.text.to_lowercase().chars().collect()),
                    Op::Regex => {
                        let r = regex::Regex::new(&format!("^(?:{})$", v.text)).map_err(|e| {
                            Self::cerr(
                                src,
                                Code::BadOperator,
                                v.span.start,
                                &v.text,
                                format!("bad regular expression: {e}"),
                            )
                        })?;
                        Cond::Regex(r)
                    }
                    Op::In | Op::Intersects | Op::Pmatch | Op::Exists => return Err(bad_op(self)),
                };
                Ok(Node::Test(Box::new(Test { lhs, cond })))
            }
        }
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
                            let parts: Vec<String> = items
                                .iter()
                                .map(|s| {
                                    if self.col.list_index.contains_key(s.as_str()) {
                                        s.clone()
                                    } else {
                                        quote(s)
                                    }
                                })
                                .collect();
                            format!("({})", parts.join(", "))
                        }
                        (ExcValue::One(s), true) => {
                            if self.col.list_index.contains_key(s.as_str()) {
                                format!("({s})")
                            } else {
                                format!("({})", quote(s))
                            }
                        }
                        (ExcValue::One(s), false) => quote(s),
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
    let pos = e
        .src
        .fragments
        .first()
        .map(|f| f.pos.clone())
        .unwrap_or_default();
    report.push(Diagnostic {
        severity: sev,
        code: e.code,
        message: e.message.clone(),
        pos,
        item: Some(item),
        snippet: Some(format!("  in: {}", e.src.text)),
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
    fn pmatch_is_path_prefix() {
        let p = vec!["/etc".to_string(), "/usr/bin/".to_string()];
        assert!(pmatch(&p, "/etc"));
        assert!(pmatch(&p, "/etc/passwd"));
        assert!(!pmatch(&p, "/etcx/passwd"));
        assert!(pmatch(&p, "/usr/bin/ls"));
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
