//! A bad rules file never crashes the loader: deterministic mutations of the
//! upstream files (truncation, byte deletion and insertion, line shuffles)
//! and of conditions are loaded and must come back as a report.
//! (`fuzz/` holds the cargo-fuzz targets for open-ended runs on nightly.)

use falco_learn_rules::parser::parse_condition;
use falco_learn_rules::Ruleset;
use std::path::PathBuf;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn upstream_stable() -> String {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/falco-rules/falco_rules.yaml");
    std::fs::read_to_string(p).expect("upstream stable rules readable")
}

fn char_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i.min(s.len())
}

const NOISE: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    ":",
    "- ",
    "\n",
    "'",
    "\"",
    " and ",
    " or not ",
    "%",
    "{",
    "}",
    "&a",
    "*a",
    "\t",
    "evt.type",
    " in (",
    ",",
    "\\",
    "proc.aname[",
    ">=",
    "!",
    "\u{e9}",
];

fn mutate(rng: &mut Rng, base: &str) -> String {
    let mut s = base.to_string();
    for _ in 0..1 + rng.below(4) {
        match rng.below(4) {
            0 => {
                let at = char_boundary(&s, rng.below(s.len()));
                s.truncate(at);
            }
            1 => {
                let a = char_boundary(&s, rng.below(s.len()));
                let b = char_boundary(&s, a + rng.below(40));
                s.replace_range(a..b, "");
            }
            2 => {
                let at = char_boundary(&s, rng.below(s.len()));
                let noise = NOISE[rng.below(NOISE.len())];
                s.insert_str(at, noise);
            }
            _ => {
                let mut lines: Vec<&str> = s.lines().collect();
                if lines.len() > 2 {
                    let i = rng.below(lines.len());
                    let j = rng.below(lines.len());
                    lines.swap(i, j);
                }
                s = lines.join("\n");
            }
        }
    }
    s
}

#[test]
fn mutated_rules_files_never_panic() {
    let base = upstream_stable();
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
    let mut with_errors = 0;
    for i in 0..150 {
        let text = mutate(&mut rng, &base);
        let (_, report) = Ruleset::load_sources(&[(format!("mutant{i}.yaml"), text)]);
        if report.has_errors() {
            with_errors += 1;
            // Every error names a position in the file it came from.
            assert!(report
                .errors
                .iter()
                .all(|e| e.pos.file.starts_with("mutant")));
        }
    }
    // Mutations must actually break files, or this test proves nothing.
    assert!(with_errors > 30, "{with_errors}");
}

#[test]
fn mutated_conditions_never_panic() {
    let conds = [
        "evt.type in (open, openat) and fd.name startswith /etc and not proc.name in (a, \"b c\")",
        "(proc.aname[2]=runc:[1:CHILD] or tolower(proc.args) icontains \"X\") and fd.sport in (80, 443)",
        "proc.name = val(proc.pname) and len(proc.cmdline) > 10 and fd.snet in (\"10.0.0.0/8\")",
    ];
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let base = conds[rng.below(conds.len())];
        let text = mutate(&mut rng, base);
        let _ = parse_condition(&text);
        let yaml = format!(
            "- rule: r\n  desc: d\n  condition: {}\n  output: o %proc.name\n  priority: INFO\n",
            serde_json::to_string(&text).unwrap_or_default()
        );
        let _ = Ruleset::load_sources(&[("c.yaml", yaml)]);
    }
}

#[test]
fn regression_inputs_from_fuzzing() {
    // Inputs that once misbehaved, kept as regression tests.
    for input in [
        "",
        "(",
        "not",
        "a and",
        "proc.name in (",
        "proc.name = \"",
        "proc.aname[",
        "tolower(",
        "val(proc.name) = x",
        "proc.name exists exists",
        "\u{e9}\u{e9}",
    ] {
        assert!(parse_condition(input).is_err(), "{input:?}");
    }
    let deep = format!("{}proc.name = x{}", "(".repeat(5000), ")".repeat(5000));
    assert!(parse_condition(&deep).is_err());
    let nots = format!("{}proc.name = x", "not ".repeat(5000));
    assert!(parse_condition(&nots).is_err());
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for text in [
        "[".repeat(10_000),
        "- ".repeat(10_000),
        "{a: ".repeat(5_000),
    ] {
        let (_, report) = Ruleset::load_sources(&[("deep.yaml", text)]);
        assert!(report.has_errors());
    }
    // A chain of macros each using the previous one.
    let mut y = String::from("- macro: m0\n  condition: proc.name = x\n");
    for i in 1..500 {
        y.push_str(&format!(
            "- macro: m{i}\n  condition: m{} and proc.pid > 0\n",
            i - 1
        ));
    }
    y.push_str("- rule: r\n  desc: d\n  condition: evt.type = execve and m499\n  output: o\n  priority: INFO\n");
    let (_, report) = Ruleset::load_sources(&[("chain.yaml", y)]);
    assert!(
        report.errors.iter().any(|e| e.message.contains("nested")),
        "{report}"
    );
}
