//! Condition parser: Falco's filter language → [`Expr`] with spans.
//!
//! Precedence, loosest first: `or`, `and`, `not`. Parentheses group; a bare
//! identifier (no dot) is a macro reference. Values are quoted strings (with
//! backslash escapes) or bare words; `in`/`intersects`/`pmatch` take a
//! parenthesised list. The grammar is context-sensitive (a bare value may hold
//! `:`, `/`, `[`…), so this is a hand-written scanner over the text.

use crate::ast::*;
use crate::limits::{MAX_CONDITION_BYTES, MAX_PARSE_DEPTH};

/// Nesting bound: deeper conditions are rejected instead of overflowing the stack.
const MAX_DEPTH: usize = MAX_PARSE_DEPTH;

/// What kind of problem a [`ParseError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// The text is not a condition.
    Syntax,
    /// Nested deeper than [`MAX_PARSE_DEPTH`].
    TooDeep,
    /// Longer than [`MAX_CONDITION_BYTES`].
    TooLong,
}

/// A syntax error (or a parser limit hit) at a byte offset of the condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub kind: ParseErrorKind,
    pub message: String,
    pub offset: usize,
}

struct P<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    depth: usize,
}

/// Parse a whole condition.
pub fn parse_condition(src: &str) -> Result<Expr, ParseError> {
    if src.len() > MAX_CONDITION_BYTES {
        return Err(ParseError {
            kind: ParseErrorKind::TooLong,
            message: format!(
                "condition is {} bytes long, more than the limit of {MAX_CONDITION_BYTES}",
                src.len()
            ),
            offset: 0,
        });
    }
    let mut p = P {
        src,
        b: src.as_bytes(),
        pos: 0,
        depth: 0,
    };
    p.ws();
    if p.pos >= p.b.len() {
        return Err(p.err("empty condition"));
    }
    let e = p.or()?;
    p.ws();
    if p.pos < p.b.len() {
        return Err(p.err(&format!("unexpected '{}'", p.rest_token())));
    }
    Ok(e)
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn is_field_char(c: u8) -> bool {
    is_ident(c) || c == b'.'
}

fn is_bare_stop(c: u8) -> bool {
    c.is_ascii_whitespace() || matches!(c, b'(' | b')' | b',' | b'"' | b'\'' | b'=')
}

impl<'a> P<'a> {
    fn err(&self, msg: &str) -> ParseError {
        ParseError {
            kind: ParseErrorKind::Syntax,
            message: msg.to_string(),
            offset: self.pos.min(self.src.len()),
        }
    }

    fn rest_token(&self) -> String {
        self.src[self.pos..].chars().take(20).collect()
    }

    fn ws(&mut self) {
        while self.pos < self.b.len() && self.b[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// A keyword (`and`, `or`, `not`, operator words) at the cursor, ending at
    /// a word boundary.
    fn keyword(&self, kw: &str) -> bool {
        let end = self.pos + kw.len();
        self.src.get(self.pos..end) == Some(kw) && self.b.get(end).is_none_or(|c| !is_ident(*c))
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError {
                kind: ParseErrorKind::TooDeep,
                ..self.err(&format!(
                    "condition nested more than {MAX_DEPTH} levels deep (parentheses, 'not', transformers)"
                ))
            });
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let mut items = vec![self.and()?];
        loop {
            self.ws();
            if self.keyword("or") {
                self.pos += 2;
                items.push(self.and()?);
            } else {
                break;
            }
        }
        self.depth -= 1;
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Expr::And(Vec::new()))
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.not()?];
        loop {
            self.ws();
            if self.keyword("and") {
                self.pos += 3;
                items.push(self.not()?);
            } else {
                break;
            }
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Expr::And(Vec::new()))
        } else {
            Expr::And(items)
        })
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        self.ws();
        if self.keyword("not") {
            self.pos += 3;
            self.enter()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        self.ws();
        match self.peek() {
            None => Err(self.err("unexpected end of condition")),
            Some(b'(') => {
                self.pos += 1;
                let e = self.or()?;
                self.ws();
                if self.peek() != Some(b')') {
                    return Err(self.err("expected ')'"));
                }
                self.pos += 1;
                Ok(e)
            }
            Some(c) if is_ident_start(c) => self.check_or_macro(),
            Some(_) => Err(self.err(&format!(
                "expected a field, macro or '(' but found '{}'",
                self.rest_token()
            ))),
        }
    }

    fn word(&mut self, pred: fn(u8) -> bool) -> (String, Span) {
        let start = self.pos;
        while self.pos < self.b.len() && pred(self.b[self.pos]) {
            self.pos += 1;
        }
        (
            self.src[start..self.pos].to_string(),
            Span {
                start,
                end: self.pos,
            },
        )
    }

    /// A field name with an optional `[arg]`.
    fn field_name(&mut self) -> Result<(String, Span), ParseError> {
        let start = self.pos;
        let (mut name, _) = self.word(is_field_char);
        if name.is_empty() {
            return Err(self.err("expected a field name"));
        }
        if self.peek() == Some(b'[') {
            let close = self.src[self.pos..]
                .find(']')
                .ok_or_else(|| self.err("unclosed '[' in field argument"))?;
            name.push_str(&self.src[self.pos..self.pos + close + 1]);
            self.pos += close + 1;
        }
        Ok((
            name,
            Span {
                start,
                end: self.pos,
            },
        ))
    }

    /// `field`, `tr(operand)`; on the right-hand side also `val(field)`.
    fn operand(&mut self, rhs: bool) -> Result<Operand, ParseError> {
        let start = self.pos;
        let save = self.pos;
        let (w, _) = self.word(is_ident);
        if self.peek() == Some(b'(') {
            if let Some(tr) = Transformer::from_name(&w) {
                self.pos += 1;
                self.ws();
                self.enter()?;
                let inner = self.operand(rhs)?;
                self.depth -= 1;
                self.ws();
                if self.peek() != Some(b')') {
                    return Err(self.err("expected ')' after transformer argument"));
                }
                self.pos += 1;
                return Ok(Operand::Transform {
                    tr,
                    inner: Box::new(inner),
                    span: Span {
                        start,
                        end: self.pos,
                    },
                });
            }
            if rhs && w == "val" {
                self.pos += 1;
                self.ws();
                let (name, span) = self.field_name()?;
                self.ws();
                if self.peek() != Some(b')') {
                    return Err(self.err("expected ')' after val(field"));
                }
                self.pos += 1;
                return Ok(Operand::Field { name, span });
            }
        }
        self.pos = save;
        let (name, span) = self.field_name()?;
        Ok(Operand::Field { name, span })
    }

    fn check_or_macro(&mut self) -> Result<Expr, ParseError> {
        let start = self.pos;
        // Identifier followed by '(' → transformer; contains '.' → field;
        // otherwise a macro.
        let save = self.pos;
        let (w, wspan) = self.word(is_field_char);
        let is_transformer = self.peek() == Some(b'(') && Transformer::from_name(&w).is_some();
        if !w.contains('.') && !is_transformer && self.peek() != Some(b'[') {
            // A bare identifier: macro, unless an operator follows.
            let after = self.pos;
            self.ws();
            if self.op_ahead() {
                return Err(ParseError {
                    kind: ParseErrorKind::Syntax,
                    message: format!("'{w}' is not a field (fields look like 'proc.name')"),
                    offset: wspan.start,
                });
            }
            self.pos = after;
            return Ok(Expr::Macro {
                name: w,
                span: wspan,
            });
        }
        self.pos = save;
        let lhs = self.operand(false)?;
        self.ws();
        let op_start = self.pos;
        let op = self.op()?;
        let op_span = Span {
            start: op_start,
            end: self.pos,
        };
        let rhs = if op == Op::Exists {
            Rhs::None
        } else {
            self.ws();
            self.rhs(op)?
        };
        Ok(Expr::Check(Box::new(Check {
            lhs,
            op,
            op_span,
            rhs,
            span: Span {
                start,
                end: self.pos,
            },
        })))
    }

    fn op_ahead(&self) -> bool {
        match self.peek() {
            Some(b'=' | b'<' | b'>') => true,
            Some(b'!') => self.b.get(self.pos + 1) == Some(&b'='),
            Some(c) if is_ident_start(c) => {
                let end = self.b[self.pos..]
                    .iter()
                    .position(|c| !is_ident(*c))
                    .map_or(self.b.len(), |n| self.pos + n);
                Op::from_keyword(&self.src[self.pos..end]).is_some()
            }
            _ => false,
        }
    }

    fn op(&mut self) -> Result<Op, ParseError> {
        let two = self.src.get(self.pos..self.pos + 2);
        let op = match two {
            Some("==") => Some((Op::Eq, 2)),
            Some("!=") => Some((Op::Ne, 2)),
            Some("<=") => Some((Op::Le, 2)),
            Some(">=") => Some((Op::Ge, 2)),
            _ => match self.peek() {
                Some(b'=') => Some((Op::Eq, 1)),
                Some(b'<') => Some((Op::Lt, 1)),
                Some(b'>') => Some((Op::Gt, 1)),
                _ => None,
            },
        };
        if let Some((op, n)) = op {
            self.pos += n;
            return Ok(op);
        }
        let save = self.pos;
        let (w, _) = self.word(is_ident);
        match Op::from_keyword(&w) {
            Some(op) => Ok(op),
            None => {
                self.pos = save;
                Err(self.err(&format!(
                    "expected an operator but found '{}'",
                    if w.is_empty() { self.rest_token() } else { w }
                )))
            }
        }
    }

    fn rhs(&mut self, op: Op) -> Result<Rhs, ParseError> {
        if op.takes_list() {
            if self.peek() == Some(b'(') {
                return Ok(Rhs::List(self.list()?));
            }
            return Ok(Rhs::List(vec![self.value()?]));
        }
        // val(...) or transformer(...) on the right.
        if let Some(c) = self.peek() {
            if is_ident_start(c) {
                let end = self.b[self.pos..]
                    .iter()
                    .position(|c| !is_ident(*c))
                    .map_or(self.b.len(), |n| self.pos + n);
                let w = &self.src[self.pos..end];
                if self.b.get(end) == Some(&b'(')
                    && (w == "val" || Transformer::from_name(w).is_some())
                {
                    return Ok(Rhs::Field(self.operand(true)?));
                }
            }
        }
        Ok(Rhs::Value(self.value()?))
    }

    fn list(&mut self) -> Result<Vec<Val>, ParseError> {
        // at '('
        self.pos += 1;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b')') {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            self.ws();
            items.push(self.value()?);
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                }
                Some(b')') => {
                    self.pos += 1;
                    return Ok(items);
                }
                None => return Err(self.err("unclosed list: expected ')'")),
                Some(_) => return Err(self.err("expected ',' or ')' in list")),
            }
        }
    }

    fn value(&mut self) -> Result<Val, ParseError> {
        let start = self.pos;
        match self.peek() {
            Some(q @ (b'"' | b'\'')) => {
                // libsinsp's lexer: the string ends at the first quote of its kind whose
                // preceding character is not a backslash (so `"a\\"` does not end there),
                // then `unescape_str` decodes it.
                let body = self.pos + 1;
                let mut k = body;
                loop {
                    match self.b.get(k) {
                        None => {
                            return Err(ParseError {
                                kind: ParseErrorKind::Syntax,
                                message: "unterminated string".into(),
                                offset: start,
                            })
                        }
                        Some(&c) if c == q && self.b[k - 1] != b'\\' => break,
                        Some(_) => k += 1,
                    }
                }
                self.pos = k + 1;
                let text = unescape(&self.src[body..k], q, body)?;
                Ok(Val {
                    text,
                    quoted: true,
                    span: Span {
                        start,
                        end: self.pos,
                    },
                })
            }
            Some(c) if !is_bare_stop(c) => {
                while self.pos < self.b.len() && !is_bare_stop(self.b[self.pos]) {
                    self.pos += 1;
                }
                Ok(Val {
                    text: self.src[start..self.pos].to_string(),
                    quoted: false,
                    span: Span {
                        start,
                        end: self.pos,
                    },
                })
            }
            _ => Err(self.err("expected a value")),
        }
    }
}

/// libsinsp's `unescape_str` (filter/escaping.cpp) on the inside of a string quoted
/// with `q`, starting at byte `at` of the condition: `\b \f \n \r \t \\ \/`,
/// the string's own quote, `\xHH` (one byte; bytes that do not form UTF-8 are an
/// error here, libsinsp keeps them), and `\ ` which libsinsp reads as a backslash
/// (the space is dropped) for old rules. Any other escape is an error at its offset.
pub fn unescape(body: &str, q: u8, at: usize) -> Result<String, ParseError> {
    let err = |off: usize, message: String| ParseError {
        kind: ParseErrorKind::Syntax,
        message,
        offset: at + off,
    };
    if !body.contains('\\') {
        return Ok(body.to_string());
    }
    let b = body.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let Some(&e) = b.get(i + 1) else {
            // unreachable from the lexer (the closing quote would be escaped)
            return Err(err(i, "unterminated escape sequence".into()));
        };
        match e {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b' ' | b'\\' => out.push(b'\\'),
            b'/' => out.push(b'/'),
            b'"' | b'\'' if e == q => out.push(e),
            b'"' => return Err(err(i, "invalid \\\" escape in '-quoted string".into())),
            b'\'' => return Err(err(i, "invalid \\' escape in \"-quoted string".into())),
            b'x' => {
                let hex = b.get(i + 2..i + 4).filter(|_| i + 4 <= b.len());
                let Some(hex) = hex else {
                    return Err(err(i, "truncated hex char escape sequence".into()));
                };
                let v = std::str::from_utf8(hex)
                    .ok()
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match v {
                    Some(v) => out.push(v),
                    None => {
                        return Err(err(
                            i,
                            format!(
                                "invalid hex char escape sequence: {}",
                                String::from_utf8_lossy(hex)
                            ),
                        ))
                    }
                }
                i += 4;
                continue;
            }
            _ => {
                let c = body[i + 1..].chars().next().unwrap_or('?');
                return Err(err(i, format!("unsupported string escape sequence: \\{c}")));
            }
        }
        i += 2;
    }
    String::from_utf8(out).map_err(|_| {
        err(
            0,
            "\\x escapes that do not form UTF-8 are not supported by falco-learn".into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_unescape_as_libsinsp() {
        let v = |c: &str| match parse_condition(&format!("x.y = {c}")) {
            Ok(Expr::Check(c)) => match c.rhs {
                Rhs::Value(v) => Ok(v.text),
                other => panic!("{other:?}"),
            },
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err((e.offset, e.message)),
        };
        assert_eq!(v(r#""\x41""#), Ok("A".into()));
        assert_eq!(v(r#""a\tb""#), Ok("a\tb".into()));
        assert_eq!(v(r#""a\\b""#), Ok("a\\b".into()));
        assert_eq!(v(r#""a\/b""#), Ok("a/b".into()));
        assert_eq!(v(r#""say \"hi\"""#), Ok("say \"hi\"".into()));
        assert_eq!(v(r#"'it\'s'"#), Ok("it's".into()));
        assert_eq!(v(r#""a\ b""#), Ok("a\\b".into()));
        assert_eq!(v(r#""\xc3\xa9""#), Ok("é".into()));
        assert_eq!(v("'single \"inner\"'"), Ok("single \"inner\"".into()));
        let e = v(r#""\d""#).unwrap_err();
        assert_eq!(e.0, 7);
        assert!(
            e.1.contains("unsupported string escape sequence: \\d"),
            "{e:?}"
        );
        assert!(v(r#""v\d+""#).is_err());
        assert!(v(r#"'\"'"#).unwrap_err().1.contains("'-quoted"));
        assert!(v(r#""\'""#).unwrap_err().1.contains("\"-quoted"));
        assert!(v(r#""\x4""#).unwrap_err().1.contains("truncated"));
        assert!(v(r#""\x4g""#).unwrap_err().1.contains("invalid hex"));
        assert!(v(r#""\xff""#).is_err());
        // a quote after a backslash never closes the string, even after `\\`
        assert!(v(r#""a\\""#).is_err());
        // bare values keep their backslashes (libsinsp's bare strings have no escapes)
        assert_eq!(v(r"v\d+"), Ok(r"v\d+".into()));
    }

    fn check(e: &Expr) -> &Check {
        match e {
            Expr::Check(c) => c,
            other => panic!("not a check: {other:?}"),
        }
    }

    #[test]
    fn precedence_not_and_or() {
        // not a and b or c  ==  ((not a) and b) or c
        let e = parse_condition("not a and b or c").unwrap();
        let Expr::Or(items) = e else { panic!() };
        let Expr::And(inner) = &items[0] else {
            panic!()
        };
        assert!(matches!(&inner[0], Expr::Not(x) if matches!(**x, Expr::Macro{..})));
        assert!(matches!(&items[1], Expr::Macro { name, .. } if name == "c"));
    }

    #[test]
    fn checks_values_and_lists() {
        let e = parse_condition("proc.name in (bash, \"my sh\", 'x\\'y') and fd.num>=0").unwrap();
        let Expr::And(items) = e else { panic!() };
        let c = check(&items[0]);
        assert_eq!(c.op, Op::In);
        let Rhs::List(l) = &c.rhs else { panic!() };
        let texts: Vec<_> = l.iter().map(|v| v.text.as_str()).collect();
        assert_eq!(texts, ["bash", "my sh", "x'y"]);
        let c = check(&items[1]);
        assert_eq!(c.op, Op::Ge);
        assert!(matches!(&c.rhs, Rhs::Value(v) if v.text == "0"));
    }

    #[test]
    fn field_args_and_bare_values() {
        let e = parse_condition(
            "proc.aname[2]=runc:[1:CHILD] and container.mount.dest[/proc*] in (\"<NA>\",\"N/A\")",
        )
        .unwrap();
        let Expr::And(items) = e else { panic!() };
        let c = check(&items[0]);
        assert!(matches!(&c.lhs, Operand::Field { name, .. } if name == "proc.aname[2]"));
        assert!(matches!(&c.rhs, Rhs::Value(v) if v.text == "runc:[1:CHILD]"));
        let c = check(&items[1]);
        assert!(
            matches!(&c.lhs, Operand::Field { name, .. } if name == "container.mount.dest[/proc*]")
        );
    }

    #[test]
    fn transformers_and_val() {
        let e = parse_condition(
            "tolower(proc.name) = bash and proc.name != val(proc.pname) and len(proc.args) > 3",
        )
        .unwrap();
        let Expr::And(items) = e else { panic!() };
        assert!(matches!(
            &check(&items[0]).lhs,
            Operand::Transform {
                tr: Transformer::ToLower,
                ..
            }
        ));
        assert!(
            matches!(&check(&items[1]).rhs, Rhs::Field(Operand::Field { name, .. }) if name == "proc.pname")
        );
        assert!(matches!(
            &check(&items[2]).lhs,
            Operand::Transform {
                tr: Transformer::Len,
                ..
            }
        ));
    }

    #[test]
    fn exists_and_keyword_boundaries() {
        let e = parse_condition("proc.pname exists and not android_proc").unwrap();
        let Expr::And(items) = e else { panic!() };
        assert_eq!(check(&items[0]).op, Op::Exists);
        assert!(matches!(&items[1], Expr::Not(_)));
        // 'order' starts with 'or' but is a macro name
        let e = parse_condition("a and order").unwrap();
        assert!(matches!(e, Expr::And(ref v) if v.len() == 2));
    }

    #[test]
    fn errors_have_offsets() {
        let e = parse_condition("proc.name = bash and (").unwrap_err();
        assert_eq!(e.offset, 22);
        let e = parse_condition("proc.name bogus x").unwrap_err();
        assert!(e.message.contains("operator"), "{e:?}");
        assert_eq!(e.offset, 10);
        assert!(parse_condition("proc.name in (a, b").is_err());
        assert!(parse_condition("").is_err());
        assert!(parse_condition("proc.name = \"abc").is_err());
        let deep = "(".repeat(10_000);
        assert!(parse_condition(&deep).is_err());
    }

    /// 100k parentheses (and as many `not`s or transformers as fit in the
    /// length limit) are rejected at the depth limit, on a thread with a
    /// small stack (a reload runs on such a thread).
    #[test]
    fn deep_nesting_is_a_limit_not_a_stack_overflow() {
        let inputs = [
            format!(
                "{}proc.name = x{}",
                "(".repeat(100_000),
                ")".repeat(100_000)
            ),
            format!("{}proc.name = x", "not ".repeat(60_000)),
            format!(
                "{}proc.name{} = 3",
                "len(".repeat(50_000),
                ")".repeat(50_000)
            ),
        ];
        let errs = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                inputs
                    .iter()
                    .map(|t| parse_condition(t).unwrap_err())
                    .collect::<Vec<_>>()
            })
            .unwrap()
            .join()
            .unwrap();
        for e in errs {
            assert_eq!(e.kind, ParseErrorKind::TooDeep, "{e:?}");
        }
        // At the limit itself the condition parses.
        let ok = format!(
            "{}proc.name = x{}",
            "(".repeat(MAX_DEPTH - 1),
            ")".repeat(MAX_DEPTH - 1)
        );
        assert!(parse_condition(&ok).is_ok());
    }

    #[test]
    fn long_conditions_are_a_limit() {
        let long = format!("proc.name = {}", "x".repeat(MAX_CONDITION_BYTES));
        let e = parse_condition(&long).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::TooLong);
        let fits = format!("proc.name = {}", "x".repeat(MAX_CONDITION_BYTES - 12));
        assert!(parse_condition(&fits).is_ok());
    }
}
