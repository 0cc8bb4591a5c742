//! What the generative plan tests (`kernel_plan_soundness`, `net_plan_soundness`, and the
//! probe's `event_filter_soundness` and the profiler's `kernel_entries_soundness`, which
//! include this file by path) share:
//! randomness on top of `fastrand`, the rules' AST and its printing to YAML, loading,
//! shrinking a failing ruleset and grouping shrunk failures. Each test keeps its own
//! generators and oracles.

use falco_learn_rules::Ruleset;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

// ------------------------------------------------------------------ randomness

/// A number from the environment, or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The seeds to run: `{prefix}_SEEDS` of them (default `n`) from `{prefix}_FIRST_SEED`
/// (default 0).
pub fn seed_range(prefix: &str, n: u64) -> std::ops::Range<u64> {
    let first = env_num(&format!("{prefix}_FIRST_SEED"), 0);
    first..first + env_num(&format!("{prefix}_SEEDS"), n)
}

/// The choices the generators make, on a seeded `fastrand::Rng`.
pub trait RngExt {
    /// True `p` percent of the time.
    fn pct(&mut self, p: usize) -> bool;

    /// One element of a non-empty slice.
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T;

    /// One value, by weight.
    fn weighted<'a, T>(&mut self, v: &'a [(T, usize)]) -> &'a T;
}

impl RngExt for fastrand::Rng {
    fn pct(&mut self, p: usize) -> bool {
        self.usize(..100) < p
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        self.choice(v).expect("a non-empty slice")
    }

    fn weighted<'a, T>(&mut self, v: &'a [(T, usize)]) -> &'a T {
        let mut r = self.usize(..v.iter().map(|(_, w)| w).sum::<usize>());
        for (x, w) in v {
            if r < *w {
                return x;
            }
            r -= w;
        }
        unreachable!("below the sum of the weights")
    }
}

/// Bytes shown as a byte-string literal (`b"a\xff"`) in failure reports (the net test
/// prints none).
#[allow(dead_code)]
pub struct Bytes<'a>(pub &'a [u8]);

impl std::fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

// ------------------------------------------------------------------ rules

/// Char boundaries of `s`, both ends included.
pub fn boundaries(s: &str) -> Vec<usize> {
    let mut v: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
    v.push(s.len());
    v
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rhs {
    None,
    /// A literal, printed by the spec's `lit`.
    One(String),
    /// Printed as is (hex bytes, event types, booleans, `val(...)`).
    Bare(String),
    /// A list of literals, in a named list when `named`.
    List {
        items: Vec<String>,
        named: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Atom {
    pub field: &'static str,
    pub transform: Option<&'static str>,
    pub op: &'static str,
    pub rhs: Rhs,
}

#[derive(Debug, Clone, PartialEq)]
pub enum C {
    And(Vec<C>),
    Or(Vec<C>),
    Not(Box<C>),
    Atom(Atom),
    /// Through a macro.
    Macro(Box<C>),
    /// Condition text, printed as is.
    Raw(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExcVal {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Exc {
    pub fields: Vec<&'static str>,
    pub comps: Vec<&'static str>,
    pub rows: Vec<Vec<ExcVal>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub cond: C,
    pub exceptions: Vec<Exc>,
}

/// A ruleset: rules `r0`, `r1`, … and the lists and macros they use.
#[derive(Debug, Clone)]
pub struct Spec {
    pub rules: Vec<RuleSpec>,
    /// How literals print (`Rhs::One`, list items, exception values): quoted and
    /// escaped, or as they are.
    pub lit: fn(&str) -> String,
}

struct Printer {
    lit: fn(&str) -> String,
    /// YAML of lists and macros, in definition order.
    defs: String,
    lists: usize,
    macros: usize,
}

impl Printer {
    fn lit(&self, s: &str) -> String {
        (self.lit)(s)
    }

    /// Items of a YAML list: `['a', 'b']`.
    fn yaml_items(&self, items: &[String]) -> String {
        let v: Vec<String> = items.iter().map(|s| format!("'{}'", self.lit(s))).collect();
        format!("[{}]", v.join(", "))
    }

    fn cond(&mut self, c: &C) -> String {
        match c {
            C::And(v) | C::Or(v) => {
                let op = if matches!(c, C::And(_)) {
                    " and "
                } else {
                    " or "
                };
                let parts: Vec<String> = v.iter().map(|x| self.cond(x)).collect();
                format!("({})", parts.join(op))
            }
            C::Not(x) => format!("not {}", self.cond(x)),
            C::Raw(t) => t.clone(),
            C::Macro(x) => {
                let body = self.cond(x);
                let name = format!("m{}", self.macros);
                self.macros += 1;
                let _ = write!(self.defs, "- macro: {name}\n  condition: |-\n    {body}\n");
                name
            }
            C::Atom(a) => {
                let lhs = match a.transform {
                    Some(t) => format!("{t}({})", a.field),
                    None => a.field.to_string(),
                };
                let rhs = match &a.rhs {
                    Rhs::None => String::new(),
                    Rhs::One(s) => format!(" {}", self.lit(s)),
                    Rhs::Bare(s) => format!(" {s}"),
                    Rhs::List {
                        items,
                        named: false,
                    } => {
                        let v: Vec<String> = items.iter().map(|s| self.lit(s)).collect();
                        format!(" ({})", v.join(", "))
                    }
                    Rhs::List { items, named: true } => {
                        let name = format!("l{}", self.lists);
                        self.lists += 1;
                        let items = self.yaml_items(items);
                        let _ = writeln!(self.defs, "- list: {name}\n  items: {items}");
                        format!(" ({name})")
                    }
                };
                format!("{lhs} {}{rhs}", a.op)
            }
        }
    }
}

impl Spec {
    pub fn yaml(&self) -> String {
        let mut p = Printer {
            lit: self.lit,
            defs: String::new(),
            lists: 0,
            macros: 0,
        };
        let mut rules = String::new();
        for (i, r) in self.rules.iter().enumerate() {
            let cond = p.cond(&r.cond);
            let _ = write!(
                rules,
                "- rule: r{i}\n  desc: d\n  condition: |-\n    {cond}\n  output: o\n  priority: WARNING\n"
            );
            if r.exceptions.is_empty() {
                continue;
            }
            rules.push_str("  exceptions:\n");
            for (j, e) in r.exceptions.iter().enumerate() {
                let comps: Vec<String> = e.comps.iter().map(|c| format!("\"{c}\"")).collect();
                let _ = writeln!(
                    rules,
                    "    - name: e{j}\n      fields: [{}]\n      comps: [{}]\n      values:",
                    e.fields.join(", "),
                    comps.join(", ")
                );
                for row in &e.rows {
                    let vals: Vec<String> = row
                        .iter()
                        .map(|v| match v {
                            ExcVal::One(s) => format!("'{}'", p.lit(s)),
                            ExcVal::Many(items) => p.yaml_items(items),
                        })
                        .collect();
                    let _ = writeln!(rules, "        - [{}]", vals.join(", "));
                }
            }
        }
        p.defs + &rules
    }

    /// The tests used (field, transform, operator; not those of `evt.*` fields but
    /// `evt.arg.*`, which every rule has), for grouping failures.
    pub fn shape(&self) -> String {
        fn walk(c: &C, out: &mut BTreeSet<String>) {
            match c {
                C::And(v) | C::Or(v) => v.iter().for_each(|x| walk(x, out)),
                C::Not(x) => {
                    out.insert("not".into());
                    walk(x, out)
                }
                C::Macro(x) => walk(x, out),
                C::Raw(_) => {
                    out.insert("raw".into());
                }
                C::Atom(a) => {
                    let f = match a.transform {
                        Some(t) => format!("{t}({})", a.field),
                        None => a.field.to_string(),
                    };
                    if !a.field.starts_with("evt.") || a.field.starts_with("evt.arg.") {
                        out.insert(format!("{f} {}", a.op));
                    }
                }
            }
        }
        let mut s = BTreeSet::new();
        for r in &self.rules {
            walk(&r.cond, &mut s);
            for e in &r.exceptions {
                for (f, c) in e.fields.iter().zip(&e.comps) {
                    s.insert(format!("exception {f} {c}"));
                }
            }
        }
        s.into_iter().collect::<Vec<_>>().join(", ")
    }
}

// ------------------------------------------------------------------ checking

/// The spec's ruleset, or its load errors (every rule must load).
pub fn load(spec: &Spec) -> Result<Ruleset, String> {
    let y = spec.yaml();
    let (rs, report) = Ruleset::load_sources(&[("t.yaml", y.as_str())]);
    if !report.errors.is_empty() {
        return Err(report.to_string());
    }
    if rs.rules().len() != spec.rules.len() {
        return Err(format!("{} rules loaded", rs.rules().len()));
    }
    Ok(rs)
}

/// Every one-step simplification of `c` (literals shortened by a character when `chars`).
fn simpler(c: &C, chars: bool) -> Vec<C> {
    let mut out = Vec::new();
    match c {
        C::And(v) | C::Or(v) => {
            let rebuild = |v: Vec<C>| match c {
                C::And(_) => C::And(v),
                _ => C::Or(v),
            };
            out.extend(v.iter().cloned());
            if v.len() > 2 {
                for i in 0..v.len() {
                    let mut w = v.clone();
                    w.remove(i);
                    out.push(rebuild(w));
                }
            }
            for i in 0..v.len() {
                for s in simpler(&v[i], chars) {
                    let mut w = v.clone();
                    w[i] = s;
                    out.push(rebuild(w));
                }
            }
        }
        C::Not(x) => {
            out.push((**x).clone());
            out.extend(simpler(x, chars).into_iter().map(|s| C::Not(Box::new(s))));
        }
        C::Macro(x) => {
            out.push((**x).clone());
            out.extend(simpler(x, chars).into_iter().map(|s| C::Macro(Box::new(s))));
        }
        C::Raw(_) => {}
        C::Atom(a) => {
            let with = |rhs: Rhs| C::Atom(Atom { rhs, ..a.clone() });
            if a.transform.is_some() {
                out.push(C::Atom(Atom {
                    transform: None,
                    ..a.clone()
                }));
            }
            // without its first or last character, or (short ones) without any one
            let shorter = |s: &str| {
                let b = boundaries(s);
                let mut v = Vec::new();
                if !chars {
                    return v;
                }
                if b.len() > 1 {
                    v.push(s[b[1]..].to_string());
                    v.push(s[..b[b.len() - 2]].to_string());
                }
                if b.len() <= 24 {
                    for i in 1..b.len().saturating_sub(2) {
                        v.push(format!("{}{}", &s[..b[i]], &s[b[i + 1]..]));
                    }
                }
                v
            };
            match &a.rhs {
                Rhs::List { items, named } => {
                    if *named {
                        out.push(with(Rhs::List {
                            items: items.clone(),
                            named: false,
                        }));
                    }
                    for i in 0..items.len() {
                        let mut cands: Vec<Vec<String>> = Vec::new();
                        if items.len() > 1 {
                            let mut w = items.clone();
                            w.remove(i);
                            cands.push(w);
                        }
                        for s in shorter(&items[i]) {
                            let mut w = items.clone();
                            w[i] = s;
                            cands.push(w);
                        }
                        for w in cands {
                            out.push(with(Rhs::List {
                                items: w,
                                named: *named,
                            }));
                        }
                    }
                }
                Rhs::One(s) => out.extend(shorter(s).into_iter().map(|t| with(Rhs::One(t)))),
                _ => {}
            }
        }
    }
    out
}

/// Every one-step simplification of `s`: a rule, an exception, an exception's row less,
/// or a simpler condition.
fn simpler_specs(s: &Spec, chars: bool) -> Vec<Spec> {
    let mut out = Vec::new();
    if s.rules.len() > 1 {
        for i in 0..s.rules.len() {
            let mut t = s.clone();
            t.rules.remove(i);
            out.push(t);
        }
    }
    for (ri, r) in s.rules.iter().enumerate() {
        for i in 0..r.exceptions.len() {
            let mut t = s.clone();
            t.rules[ri].exceptions.remove(i);
            out.push(t);
        }
        for (i, e) in r.exceptions.iter().enumerate() {
            if e.rows.len() > 1 {
                for row in 0..e.rows.len() {
                    let mut t = s.clone();
                    t.rules[ri].exceptions[i].rows.remove(row);
                    out.push(t);
                }
            }
        }
        for c in simpler(&r.cond, chars) {
            let mut t = s.clone();
            t.rules[ri].cond = c;
            out.push(t);
        }
    }
    out
}

/// Greedy shrinking: take the first simplification that still `fails`, until none does
/// (or 3000 tries); parts of the ruleset first, then literals' characters too.
pub fn shrink(spec: &Spec, fails: impl Fn(&Spec) -> bool) -> Spec {
    let mut cur = spec.clone();
    let mut budget = 3000;
    for chars in [false, true] {
        'outer: loop {
            for cand in simpler_specs(&cur, chars) {
                budget -= 1;
                if budget == 0 {
                    return cur;
                }
                if fails(&cand) {
                    cur = cand;
                    continue 'outer;
                }
            }
            break;
        }
    }
    cur
}

/// Shrinks one failure of each `kind` (at most `limit` kinds), then groups the shrunk
/// failures by `group`: one of each, and how many shrank to it.
pub fn shrink_groups<F, K: Ord, G: Ord>(
    failures: &[F],
    limit: usize,
    kind: impl Fn(&F) -> K,
    shrink: impl Fn(&F) -> F,
    group: impl Fn(&F) -> G,
) -> BTreeMap<G, (F, usize)> {
    let mut tried = BTreeSet::new();
    let mut groups = BTreeMap::new();
    for f in failures {
        if tried.len() >= limit || !tried.insert(kind(f)) {
            continue;
        }
        let s = shrink(f);
        groups.entry(group(&s)).or_insert((s, 0)).1 += 1;
    }
    groups
}
