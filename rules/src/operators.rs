//! Falco's comparison operators: one row per operator, saying how it is written, which
//! field types it applies to, whether its right-hand side is a list and whether it may
//! compare with another field (`val(f)`). The parser and the compiler's checks read this
//! table; building and evaluating an operator's test is `compile::Cond`.
//!
//! Sources: libsinsp `filter_compare.cpp` (`flt_is_comparable*`: which types each
//! operator compares), `filter/parser.cpp` (list operators, `val()`), and Falco's
//! "Conditions" documentation.

use crate::ast::Op;
use falco_learn_event::fields::FieldType;

/// One operator.
#[derive(Debug, Clone, Copy)]
pub struct Operator {
    pub op: Op,
    /// How it is written (`=`, `in`, `pmatch`, …).
    pub keyword: &'static str,
    /// Its right-hand side is a list (`(a, b)`; a list name or one value reads as one).
    pub list: bool,
    /// Its right-hand side may be another field (`val(proc.pname)`).
    pub field_rhs: bool,
    /// The field types it applies to.
    pub accepts: fn(FieldType) -> bool,
}

fn text(t: FieldType) -> bool {
    t.is_text() || t == FieldType::Dynamic
}

fn any(_: FieldType) -> bool {
    true
}

fn ordered(t: FieldType) -> bool {
    text(t) || t.is_numeric()
}

fn sets(t: FieldType) -> bool {
    text(t) || t.is_numeric() || matches!(t, FieldType::IpAddr | FieldType::IpNet)
}

/// Paths and strings; not byte buffers (libsinsp: `pmatch` on `PT_CHARBUF`/`PT_FSPATH`).
fn paths(t: FieldType) -> bool {
    matches!(t, FieldType::Path | FieldType::String | FieldType::Dynamic)
}

/// Every operator falco-learn knows, Falco's set.
pub static OPERATORS: &[Operator] = &[
    row(Op::Eq, "=", false, true, any),
    row(Op::Ne, "!=", false, true, any),
    row(Op::Lt, "<", false, true, ordered),
    row(Op::Le, "<=", false, true, ordered),
    row(Op::Gt, ">", false, true, ordered),
    row(Op::Ge, ">=", false, true, ordered),
    row(Op::In, "in", true, false, any),
    row(Op::Intersects, "intersects", true, false, sets),
    row(Op::Pmatch, "pmatch", true, false, paths),
    row(Op::Contains, "contains", false, true, text),
    row(Op::IContains, "icontains", false, true, text),
    row(Op::BContains, "bcontains", false, true, text),
    row(Op::StartsWith, "startswith", false, true, text),
    row(Op::BStartsWith, "bstartswith", false, true, text),
    row(Op::EndsWith, "endswith", false, true, text),
    row(Op::Glob, "glob", false, false, text),
    row(Op::IGlob, "iglob", false, false, text),
    row(Op::Regex, "regex", false, false, text),
    row(Op::Exists, "exists", false, false, any),
];

const fn row(
    op: Op,
    keyword: &'static str,
    list: bool,
    field_rhs: bool,
    accepts: fn(FieldType) -> bool,
) -> Operator {
    Operator {
        op,
        keyword,
        list,
        field_rhs,
        accepts,
    }
}

/// The row of `op`.
pub fn info(op: Op) -> &'static Operator {
    // every Op has a row (tested)
    OPERATORS
        .iter()
        .find(|o| o.op == op)
        .unwrap_or(&OPERATORS[0])
}

/// A word operator (`in`, `contains`, …) by its keyword.
pub fn by_keyword(word: &str) -> Option<Op> {
    OPERATORS
        .iter()
        .find(|o| o.keyword == word && o.keyword.chars().all(|c| c.is_ascii_alphabetic()))
        .map(|o| o.op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ruleset;

    const TYPES: &[(FieldType, &str, &str)] = &[
        (FieldType::String, "proc.name", "bash"),
        (FieldType::Path, "fd.name", "/etc"),
        (FieldType::Int, "fd.num", "3"),
        (FieldType::Uint, "proc.pid", "1"),
        (FieldType::Port, "fd.sport", "80"),
        (FieldType::Bool, "evt.failed", "true"),
        (FieldType::IpAddr, "fd.sip", "10.0.0.1"),
        (FieldType::IpNet, "fd.snet", "10.0.0.0/8"),
        (FieldType::RelTime, "proc.duration", "5"),
        (FieldType::AbsTime, "evt.rawtime", "5"),
        (FieldType::Bytes, "evt.buffer", "41"),
        (FieldType::Dynamic, "evt.arg.flags", "1"),
    ];

    #[test]
    fn every_operator_has_one_row_and_reads_back() {
        for o in OPERATORS {
            assert_eq!(info(o.op).keyword, o.keyword);
            assert_eq!(o.op.as_str(), o.keyword);
            if o.keyword.chars().all(|c| c.is_ascii_alphabetic()) {
                assert_eq!(by_keyword(o.keyword), Some(o.op));
            }
        }
        assert_eq!(OPERATORS.len(), 19);
    }

    /// The table decides: a condition compiles exactly when its operator accepts the
    /// field's type, for every operator and every field type.
    #[test]
    fn the_table_decides_which_types_each_operator_compiles_for() {
        for o in OPERATORS {
            for (typ, field, value) in TYPES {
                let rhs = match o.op {
                    Op::Exists => String::new(),
                    _ if o.list => format!(" ({value})"),
                    _ => format!(" {value}"),
                };
                let cond = format!("evt.type = execve and {field} {}{rhs}", o.keyword);
                let rules = format!(
                    "- rule: R\n  desc: d\n  condition: {cond}\n  output: o\n  priority: INFO\n"
                );
                let (_, rep) = Ruleset::load_sources(&[("r.yaml", rules.as_str())]);
                let bad_op = rep
                    .errors
                    .iter()
                    .any(|d| d.message.contains("not supported for field"));
                assert_eq!(!bad_op, (o.accepts)(*typ), "{cond}: {rep}");
            }
        }
    }
}
