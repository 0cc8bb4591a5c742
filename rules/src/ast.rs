//! Condition syntax tree. Every node carries the byte span it was parsed
//! from, so the compiler can point at the exact token it rejects.

/// Byte range in the condition text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// A bare identifier: a macro to expand.
    Macro {
        name: String,
        span: Span,
    },
    Check(Box<Check>),
}

/// `lhs op rhs` (or `lhs exists`).
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub lhs: Operand,
    pub op: Op,
    pub op_span: Span,
    pub rhs: Rhs,
    pub span: Span,
}

/// Field transformers (`tolower(proc.name)`…).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transformer {
    ToLower,
    ToUpper,
    B64,
    Basename,
    Len,
}

impl Transformer {
    pub fn from_name(s: &str) -> Option<Transformer> {
        Some(match s {
            "tolower" => Transformer::ToLower,
            "toupper" => Transformer::ToUpper,
            "b64" => Transformer::B64,
            "basename" => Transformer::Basename,
            "len" => Transformer::Len,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Transformer::ToLower => "tolower",
            Transformer::ToUpper => "toupper",
            Transformer::B64 => "b64",
            Transformer::Basename => "basename",
            Transformer::Len => "len",
        }
    }
}

/// A field reference, possibly wrapped in transformers.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Field {
        name: String,
        span: Span,
    },
    Transform {
        tr: Transformer,
        inner: Box<Operand>,
        span: Span,
    },
}

impl Operand {
    pub fn span(&self) -> Span {
        match self {
            Operand::Field { span, .. } | Operand::Transform { span, .. } => *span,
        }
    }
}

/// A literal value as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Val {
    pub text: String,
    pub quoted: bool,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rhs {
    /// Unary operator (`exists`).
    None,
    Value(Val),
    List(Vec<Val>),
    /// `val(field)` or a transformer over it.
    Field(Operand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Intersects,
    Pmatch,
    Contains,
    IContains,
    BContains,
    StartsWith,
    BStartsWith,
    EndsWith,
    Glob,
    IGlob,
    Regex,
    Exists,
}

impl Op {
    /// A word operator by its keyword (the table in [`crate::operators`]).
    pub fn from_keyword(s: &str) -> Option<Op> {
        crate::operators::by_keyword(s)
    }

    pub fn as_str(self) -> &'static str {
        crate::operators::info(self).keyword
    }

    /// Operators whose right-hand side is a list.
    pub fn takes_list(self) -> bool {
        crate::operators::info(self).list
    }
}

impl Expr {
    /// Visit every macro name referenced (not expanded).
    pub fn macro_refs<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| e.macro_refs(out)),
            Expr::Not(e) => e.macro_refs(out),
            Expr::Macro { name, .. } => out.push(name),
            Expr::Check(_) => {}
        }
    }

    /// Visit every list value (items of `in (…)` lists), for list expansion.
    pub fn list_values<'a>(&'a self, out: &mut Vec<&'a Val>) {
        match self {
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| e.list_values(out)),
            Expr::Not(e) => e.list_values(out),
            Expr::Macro { .. } => {}
            Expr::Check(c) => {
                if let Rhs::List(items) = &c.rhs {
                    out.extend(items.iter());
                }
            }
        }
    }
}
