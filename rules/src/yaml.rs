//! Reader: YAML text → a small tree whose every node knows its line and
//! column, so later passes can point at the exact item they complain about.

use crate::limits::MAX_YAML_NODES;
use crate::report::Code;
use std::cell::Cell;
use std::fmt;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A YAML node with its position (1-based line and column, byte offset).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub line: usize,
    pub col: usize,
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar and whether it was quoted or a block scalar (i.e. a string for sure).
    Scalar(String, bool),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Null,
}

impl Node {
    /// Text of a scalar (numbers and booleans included, as written).
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar(s, _) => Some(s),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match &self.kind {
            NodeKind::Scalar(s, false) => match s.as_str() {
                "true" | "True" | "TRUE" | "yes" | "on" => Some(true),
                "false" | "False" | "FALSE" | "no" | "off" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// Value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(m) => m
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Keys of a mapping, in order.
    pub fn keys(&self) -> Vec<&Node> {
        match &self.kind {
            NodeKind::Map(m) => m.iter().map(|(k, _)| k).collect(),
            _ => Vec::new(),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, NodeKind::Null)
    }
}

/// A YAML syntax error (or a YAML limit hit) with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// [`Code::YamlParse`], or [`Code::TooLarge`] for too many nodes.
    pub code: Code,
    pub message: String,
    pub line: usize,
    pub col: usize,
}

fn too_many_nodes() -> String {
    format!(
        "the file expands to more than {MAX_YAML_NODES} YAML nodes (aliases count every node they repeat)"
    )
}

enum Frame {
    Seq(Vec<Node>, Marker, usize),
    Map(Vec<(Node, Node)>, Option<Node>, Marker, usize),
}

/// Deeper YAML nesting is rejected (rules files nest 4 levels or so).
const MAX_DEPTH: usize = 256;

struct Builder {
    /// Levels entered beyond [`MAX_DEPTH`], ignored until they close.
    skipped: usize,
    stack: Vec<Frame>,
    docs: Vec<Node>,
    /// Anchored nodes and how many nodes each holds.
    anchors: std::collections::HashMap<usize, (Node, usize)>,
    /// Nodes built so far, aliased ones included.
    nodes: usize,
    /// Value of `nodes` when each open collection started.
    starts: Vec<usize>,
    error: Option<YamlError>,
}

fn node(kind: NodeKind, m: Marker) -> Node {
    Node {
        kind,
        line: m.line(),
        col: m.col() + 1,
        offset: m.index(),
    }
}

impl Builder {
    /// Insert a node that holds `size` nodes (itself included).
    fn insert(&mut self, n: Node, anchor: usize, size: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (n.clone(), size));
        }
        match self.stack.last_mut() {
            None => self.docs.push(n),
            Some(Frame::Seq(v, _, _)) => v.push(n),
            Some(Frame::Map(m, key, _, _)) => match key.take() {
                None => *key = Some(n),
                Some(k) => m.push((k, n)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let opens = matches!(ev, Event::SequenceStart(..) | Event::MappingStart(..));
        let closes = matches!(ev, Event::SequenceEnd | Event::MappingEnd);
        if self.error.is_some() {
            // Only the first problem is reported: build nothing more.
            return;
        }
        if self.skipped > 0 {
            if opens {
                self.skipped += 1;
            } else if closes {
                self.skipped -= 1;
            }
            return;
        }
        if opens && self.stack.len() >= MAX_DEPTH {
            self.skipped = 1;
            if self.error.is_none() {
                self.error = Some(YamlError {
                    code: Code::YamlParse,
                    message: format!("nesting deeper than {MAX_DEPTH} levels"),
                    line: mark.line(),
                    col: mark.col() + 1,
                });
            }
            return;
        }
        let added = match &ev {
            Event::Scalar(..) | Event::SequenceStart(..) | Event::MappingStart(..) => 1,
            Event::Alias(id) => self.anchors.get(id).map_or(1, |(_, size)| *size),
            _ => 0,
        };
        self.nodes = self.nodes.saturating_add(added);
        if self.nodes > MAX_YAML_NODES {
            self.error = Some(YamlError {
                code: Code::TooLarge,
                message: too_many_nodes(),
                line: mark.line(),
                col: mark.col() + 1,
            });
            return;
        }
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let quoted = !matches!(style, TScalarStyle::Plain);
                let kind =
                    if !quoted && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") {
                        NodeKind::Null
                    } else {
                        NodeKind::Scalar(text, quoted)
                    };
                self.insert(node(kind, mark), anchor, 1);
            }
            Event::SequenceStart(anchor, _) => {
                self.starts.push(self.nodes - 1);
                self.stack.push(Frame::Seq(Vec::new(), mark, anchor))
            }
            Event::MappingStart(anchor, _) => {
                self.starts.push(self.nodes - 1);
                self.stack.push(Frame::Map(Vec::new(), None, mark, anchor))
            }
            Event::SequenceEnd => {
                let size = self.nodes - self.starts.pop().unwrap_or(0);
                if let Some(Frame::Seq(v, m, anchor)) = self.stack.pop() {
                    self.insert(node(NodeKind::Seq(v), m), anchor, size);
                }
            }
            Event::MappingEnd => {
                let size = self.nodes - self.starts.pop().unwrap_or(0);
                if let Some(Frame::Map(v, _, m, anchor)) = self.stack.pop() {
                    // The parser marks a block mapping at its first ':'; point at the first key.
                    let mut n = node(NodeKind::Map(Vec::new()), m);
                    if let Some((k, _)) = v.first() {
                        (n.line, n.col, n.offset) = (k.line, k.col, k.offset);
                    }
                    n.kind = NodeKind::Map(v);
                    self.insert(n, anchor, size);
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some((n, size)) => self.insert(n, 0, size),
                None => {
                    if self.error.is_none() {
                        self.error = Some(YamlError {
                            code: Code::YamlParse,
                            message: "unknown alias".into(),
                            line: mark.line(),
                            col: mark.col() + 1,
                        });
                    }
                    self.insert(node(NodeKind::Null, mark), 0, 1);
                }
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// Parse a YAML text into its documents.
///
/// The precise parser (exact positions) is strict about flow-collection
/// indentation that libyaml — which Falco's loader and most YAML tools use —
/// accepts (upstream files close `items: [` lists at the key's column). When it
/// rejects a text libyaml accepts, the libyaml tree is used with positions
/// located by searching the text; when both reject it, libyaml's error is
/// reported.
pub fn parse(text: &str) -> Result<Vec<Node>, YamlError> {
    // libyaml first: it bounds nesting (the precise parser recurses without
    // limit on inputs like `- - - - …`), and its verdict is the one Falco's
    // users know.
    let values = lenient_values(text)?;
    match parse_precise(text) {
        Ok(docs) => Ok(docs),
        Err(_) => {
            let mut loc = Locator::new(text);
            Ok(values.iter().map(|d| loc.top(d)).collect())
        }
    }
}

fn lenient_values(text: &str) -> Result<Vec<serde_yaml::Value>, YamlError> {
    use serde::de::DeserializeSeed;
    let budget = Budget {
        left: Cell::new(MAX_YAML_NODES),
        exceeded: Cell::new(false),
    };
    let mut docs = Vec::new();
    for de in serde_yaml::Deserializer::from_str(text) {
        match (Budgeted(&budget)).deserialize(de) {
            Ok(v) => docs.push(v),
            Err(e) => {
                let (line, col) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
                let mut message = e.to_string();
                // serde_yaml appends " at line L column C"; the position is reported separately.
                if let Some(i) = message.find(" at line ") {
                    message.truncate(i);
                }
                let code = if budget.exceeded.get() {
                    Code::TooLarge
                } else {
                    Code::YamlParse
                };
                return Err(YamlError {
                    code,
                    message,
                    line,
                    col,
                });
            }
        }
    }
    Ok(docs)
}

/// Nodes a file may still produce while libyaml reads it.
struct Budget {
    left: Cell<usize>,
    exceeded: Cell<bool>,
}

impl Budget {
    fn take<E: serde::de::Error>(&self) -> Result<(), E> {
        match self.left.get().checked_sub(1) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.exceeded.set(true);
                Err(E::custom(too_many_nodes()))
            }
        }
    }
}

/// Builds a `serde_yaml::Value` as its own `Deserialize` does, counting every
/// node (aliases are replayed node by node, so they are counted too) and
/// stopping at [`MAX_YAML_NODES`] instead of building an exponential tree.
#[derive(Clone, Copy)]
struct Budgeted<'b>(&'b Budget);

impl<'de> serde::de::DeserializeSeed<'de> for Budgeted<'_> {
    type Value = serde_yaml::Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Budgeted<'_> {
    type Value = serde_yaml::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Self::Value, E> {
        self.0.take()?;
        Ok(serde_yaml::Value::Bool(b))
    }

    fn visit_i64<E: serde::de::Error>(self, i: i64) -> Result<Self::Value, E> {
        self.0.take()?;
        Ok(serde_yaml::Value::Number(i.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, u: u64) -> Result<Self::Value, E> {
        self.0.take()?;
        Ok(serde_yaml::Value::Number(u.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<Self::Value, E> {
        self.0.take()?;
        Ok(serde_yaml::Value::Number(f.into()))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
        self.0.take()?;
        Ok(serde_yaml::Value::String(s.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Self::Value, E> {
        self.0.take()?;
        Ok(serde_yaml::Value::String(s))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        self.0.take()?;
        Ok(serde_yaml::Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        serde::de::DeserializeSeed::deserialize(self, d)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        self.0.take()?;
        let mut v = Vec::new();
        while let Some(x) = a.next_element_seed(self)? {
            v.push(x);
        }
        Ok(serde_yaml::Value::Sequence(v))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error as _;
        self.0.take()?;
        let mut m = serde_yaml::Mapping::new();
        while let Some(k) = a.next_key_seed(self)? {
            if m.contains_key(&k) {
                // The message serde_yaml's own `Mapping` gives.
                let which = match &k {
                    serde_yaml::Value::Null => "with null key".to_string(),
                    serde_yaml::Value::Bool(b) => format!("with key `{b}`"),
                    serde_yaml::Value::Number(n) => format!("with key {n}"),
                    serde_yaml::Value::String(s) => format!("with key {s:?}"),
                    _ => "in YAML map".to_string(),
                };
                return Err(A::Error::custom(format!("duplicate entry {which}")));
            }
            let v = a.next_value_seed(self)?;
            m.insert(k, v);
        }
        Ok(serde_yaml::Value::Mapping(m))
    }

    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
        use serde::de::VariantAccess;
        // A tagged value (`!tag x`): the tag is not used by rules files.
        let (_tag, contents): (String, _) = a.variant()?;
        contents.newtype_variant_seed(self)
    }
}

/// How far past the previous scalar the next one is searched for.
const LOCATE_WINDOW: usize = 4096;

/// Assigns positions to a libyaml tree by searching the text in order.
struct Locator<'t> {
    text: &'t str,
    /// Line starts, so a position costs a binary search.
    lines: crate::report::Source,
    /// Offsets of top-level sequence items (`- ` at column 1).
    items: Vec<usize>,
    next_item: usize,
}

impl<'t> Locator<'t> {
    fn new(text: &'t str) -> Self {
        let mut items = Vec::new();
        let mut off = 0;
        for line in text.split_inclusive('\n') {
            if line.starts_with("- ") || line.trim_end() == "-" {
                items.push(off + 2.min(line.len()));
            }
            off += line.len();
        }
        Locator {
            text,
            lines: crate::report::Source::new(std::sync::Arc::from(""), std::sync::Arc::from(text)),
            items,
            next_item: 0,
        }
    }

    fn at(&self, offset: usize) -> (usize, usize) {
        self.lines.line_col(offset)
    }

    fn mk(&self, kind: NodeKind, offset: usize) -> Node {
        let (line, col) = self.at(offset);
        Node {
            kind,
            line,
            col,
            offset,
        }
    }

    fn top(&mut self, v: &serde_yaml::Value) -> Node {
        match v {
            serde_yaml::Value::Sequence(items) => {
                let nodes = items
                    .iter()
                    .map(|it| {
                        let start = self.items.get(self.next_item).copied().unwrap_or(0);
                        self.next_item += 1;
                        let mut cursor = start;
                        self.node(it, &mut cursor, start)
                    })
                    .collect();
                self.mk(NodeKind::Seq(nodes), 0)
            }
            other => {
                let mut c = 0;
                self.node(other, &mut c, 0)
            }
        }
    }

    /// Offset of a scalar's first line, searched from `cursor` within
    /// [`LOCATE_WINDOW`] bytes: a scalar that is not found (its text differs
    /// from its value: escapes, folding) costs a bounded search, not a scan
    /// of the rest of the file.
    fn find(&self, needle: &str, cursor: &mut usize) -> usize {
        let first_line = needle.lines().next().unwrap_or("").trim();
        if first_line.is_empty() {
            return *cursor;
        }
        let mut end = cursor
            .saturating_add(LOCATE_WINDOW + first_line.len())
            .min(self.text.len());
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        match self.text.get(*cursor..end).and_then(|t| t.find(first_line)) {
            Some(rel) => {
                let at = *cursor + rel;
                *cursor = at + first_line.len();
                at
            }
            None => *cursor,
        }
    }

    fn node(&self, v: &serde_yaml::Value, cursor: &mut usize, start: usize) -> Node {
        use serde_yaml::Value as V;
        let scalar = |s: String, quoted: bool, this: &Self, cursor: &mut usize| {
            let at = this.find(&s, cursor);
            this.mk(NodeKind::Scalar(s, quoted), at)
        };
        match v {
            V::Null => self.mk(NodeKind::Null, *cursor),
            V::Bool(b) => scalar(b.to_string(), false, self, cursor),
            V::Number(n) => scalar(n.to_string(), false, self, cursor),
            V::String(s) => scalar(s.clone(), true, self, cursor),
            V::Sequence(items) => {
                let at = *cursor;
                let nodes = items.iter().map(|i| self.node(i, cursor, start)).collect();
                self.mk(NodeKind::Seq(nodes), at)
            }
            V::Mapping(m) => {
                let at = start.max(*cursor);
                let mut pairs = Vec::new();
                for (k, val) in m {
                    let key = self.node(k, cursor, start);
                    let value = self.node(val, cursor, start);
                    pairs.push((key, value));
                }
                let (line, col) = pairs.first().map_or(self.at(at), |(k, _)| (k.line, k.col));
                let offset = pairs.first().map_or(at, |(k, _)| k.offset);
                Node {
                    kind: NodeKind::Map(pairs),
                    line,
                    col,
                    offset,
                }
            }
            V::Tagged(t) => self.node(&t.value, cursor, start),
        }
    }
}

fn parse_precise(text: &str) -> Result<Vec<Node>, YamlError> {
    let mut b = Builder {
        skipped: 0,
        stack: Vec::new(),
        docs: Vec::new(),
        anchors: Default::default(),
        nodes: 0,
        starts: Vec::new(),
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut b, true).map_err(|e| YamlError {
        code: Code::YamlParse,
        message: e.info().to_string(),
        line: e.marker().line(),
        col: e.marker().col() + 1,
    })?;
    if let Some(e) = b.error {
        return Err(e);
    }
    Ok(b.docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let docs = parse("- rule: a\n  condition: >\n    x and y\n- list: l\n  items: [a, 'b']\n")
            .unwrap();
        let seq = docs[0].as_seq().unwrap();
        assert_eq!((seq[0].line, seq[0].col), (1, 3));
        let cond = seq[0].get("condition").unwrap();
        assert_eq!(cond.as_str(), Some("x and y\n"));
        let items = seq[1].get("items").unwrap().as_seq().unwrap();
        assert_eq!(items[1].kind, NodeKind::Scalar("b".into(), true));
        assert_eq!((items[1].line, items[1].col), (5, 14));
    }

    #[test]
    fn syntax_error_has_position() {
        let e = parse("- rule: a\n  condition: [unclosed\n- x").unwrap_err();
        assert!(e.line >= 2, "{e:?}");
    }

    #[test]
    fn libyaml_leniency_with_positions() {
        // A flow list closed at the key's column: accepted as libyaml does.
        let text = "- list: l\n  items: [\n    a, b\n  ]\n\n- rule: r\n  condition: x\n";
        let docs = parse(text).unwrap();
        let seq = docs[0].as_seq().unwrap();
        assert_eq!(seq[0].get("items").unwrap().as_seq().unwrap().len(), 2);
        assert_eq!(seq[1].line, 6);
        let c = seq[1].get("condition").unwrap();
        assert_eq!((c.line, c.col), (7, 14));
    }

    #[test]
    fn unlocatable_scalars_cost_a_bounded_search() {
        // libyaml-only text (the precise parser rejects this flow list); the
        // escaped value is not found as written, and the text matching it lies
        // beyond the search window: the scalar keeps the cursor's position
        // instead of jumping there, and the next scalar is still found.
        let far = "#".repeat(LOCATE_WINDOW * 2);
        let text = format!("- list: l\n  items: [\n    \"a\\tb\", \"zz\"\n  ]\n{far}\n# a\tb zz\n");
        assert!(parse_precise(&text).is_err());
        let docs = parse(&text).unwrap();
        let items = docs[0].as_seq().unwrap()[0].get("items").unwrap();
        let items = items.as_seq().unwrap();
        assert_eq!(items[0].as_str(), Some("a\tb"));
        assert!(items[0].line <= 3, "{:?}", items[0]);
        assert_eq!((items[1].line, items[1].col), (3, 14));
    }

    #[test]
    fn alias_nodes_are_counted() {
        // Each alias repeats 3 nodes (the list and its 2 values).
        let mut text = String::from("a: &x [p, q]\n");
        for i in 0..MAX_YAML_NODES / 3 + 1 {
            text.push_str(&format!("b{i}: *x\n"));
        }
        let e = parse(&text).unwrap_err();
        assert_eq!(e.code, Code::TooLarge, "{e:?}");
    }

    #[test]
    fn aliases_resolve() {
        let docs = parse("a: &x [1, 2]\nb: *x\n").unwrap();
        assert_eq!(docs[0].get("b").unwrap().as_seq().unwrap().len(), 2);
    }
}
