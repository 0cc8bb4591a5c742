//! Bounds on what one load may cost, whatever the rules files say.
//!
//! Every bound is checked *before* the work it guards is done (sizes of
//! macros and lists are computed once each and summed, never by expanding),
//! and hitting one is a load error naming the item, never a truncation. The
//! values leave a wide margin over the upstream Falco rules files; see the
//! "Limits" section of the crate README for each value's reasoning.

/// Largest rules file read (bytes).
pub const MAX_FILE_BYTES: usize = 8 << 20;

/// Most YAML nodes one file may produce, counting every node an alias
/// (`*name`) repeats.
pub const MAX_YAML_NODES: usize = 500_000;

/// Longest condition text (bytes, after `append`s are joined).
pub const MAX_CONDITION_BYTES: usize = 256 << 10;

/// Deepest nesting of parentheses, `not` and transformers in one condition text.
pub const MAX_PARSE_DEPTH: usize = 200;

/// Deepest chain of macros using macros (a macro that uses none has depth 1).
pub const MAX_MACRO_DEPTH: u32 = 64;

/// Deepest nesting of the compiled condition tree once macros are inlined
/// (`and`/`or`/`not` levels; a single test is 1).
pub const MAX_CONDITION_DEPTH: u32 = 200;

/// Most nodes one condition may compile to once macros are inlined and lists
/// expanded (each test, `and`/`or`/`not` and list value counts one).
pub const MAX_CONDITION_NODES: u64 = 100_000;

/// Most nodes all the rules of a load may compile to together.
pub const MAX_RULESET_NODES: u64 = 500_000;

/// Deepest chain of lists naming lists (a list of plain values has depth 1).
pub const MAX_LIST_DEPTH: u32 = 32;

/// Most values one list may expand to (values of the lists it names included).
pub const MAX_LIST_ITEMS: u64 = 100_000;

/// Largest compiled program of one `regex` (the `regex` crate's size limit).
pub const MAX_REGEX_BYTES: usize = 1 << 20;

/// Lazy DFA cache of one `regex` (the `regex` crate's DFA size limit).
pub const MAX_REGEX_DFA_BYTES: usize = 512 << 10;

/// Most distinct `regex` patterns in one load (identical patterns are compiled once).
pub const MAX_REGEXES: usize = 128;

/// Longest rule output format (bytes, after `%container.info` is expanded).
pub const MAX_OUTPUT_BYTES: usize = 16 << 10;

/// Most errors, and most warnings, a report keeps (the rest are counted).
pub const MAX_DIAGNOSTICS: usize = 1000;

#[cfg(test)]
mod tests {
    //! Each limit is hit by a small file, which loads quickly with one error
    //! naming the item and line where the limit is crossed; the work done is
    //! counted to show it stays bounded (no timing is asserted).

    use super::*;
    use crate::{load_counting, Code, Diagnostic, LoadReport, Ruleset};

    fn load(text: &str) -> (Ruleset, LoadReport, u64) {
        load_counting(&[("f.yaml", text)])
    }

    /// The only error of a report.
    fn only_error(rep: &LoadReport) -> &Diagnostic {
        assert_eq!(rep.errors.len(), 1, "{rep}");
        &rep.errors[0]
    }

    fn assert_error(d: &Diagnostic, code: Code, item: &str, line: usize) {
        assert_eq!(d.code, code, "{d}");
        assert_eq!(d.item.as_deref(), Some(item), "{d}");
        assert_eq!(d.pos.file.as_ref(), "f.yaml", "{d}");
        assert_eq!(d.pos.line, line, "{d}");
    }

    const RULE_TAIL: &str = "  output: o\n  priority: INFO\n";

    fn rule(cond: &str) -> String {
        format!("- rule: r\n  desc: d\n  condition: {cond}\n{RULE_TAIL}")
    }

    /// `m0` is one test; `m{i}` uses `m{i-1}` twice. Macro `m{i}` is defined
    /// at line 2i+1, its condition at line 2i+2.
    fn macro_doubling(levels: usize) -> String {
        let mut y = String::from("- macro: m0\n  condition: proc.name = x\n");
        for i in 1..=levels {
            y.push_str(&format!(
                "- macro: m{i}\n  condition: m{} or m{}\n",
                i - 1,
                i - 1
            ));
        }
        y + &rule(&format!("evt.type = execve and m{levels}"))
    }

    /// `a0` holds one value; `a{i}` names `a{i-1}` twice. List `a{i}` is at line 2i+1.
    fn list_doubling(levels: usize) -> String {
        let mut y = String::from("- list: a0\n  items: [x]\n");
        for i in 1..=levels {
            y.push_str(&format!(
                "- list: a{i}\n  items: [a{}, a{}]\n",
                i - 1,
                i - 1
            ));
        }
        y + &rule(&format!("evt.type = execve and proc.name in (a{levels})"))
    }

    #[test]
    fn exponential_macros_stop_at_the_macro_crossing_the_limit() {
        for levels in [24, 64] {
            let (rs, rep, work) = load(&macro_doubling(levels));
            // m{i} expands to 2^(i+1) - 1 nodes: m16 is the first above the limit.
            let e = only_error(&rep);
            assert_error(e, Code::TooLarge, "macro 'm16'", 34);
            assert_eq!(e.code.as_str(), "LOAD_ERR_LIMIT_EXPANSION");
            assert!(e.message.contains("131071 nodes"), "{e}");
            assert!(rs.rules().is_empty());
            // Each macro is sized once: work grows with the file, not 2^levels.
            assert!(work < 100 * levels as u64, "{work}");
            // The rule uses every macro, even though it was not expanded.
            assert_eq!(rep.warnings_of(Code::UnusedMacro).count(), 0, "{rep}");
        }
        // Below the limit the same shape loads and works.
        let (rs, rep, _) = load(&macro_doubling(12));
        assert!(!rep.has_errors(), "{rep}");
        assert_eq!(rs.rules().len(), 1);
    }

    #[test]
    fn exponential_lists_stop_at_the_list_crossing_the_limit() {
        for levels in [40, 64] {
            let (rs, rep, work) = load(&list_doubling(levels));
            // a{i} expands to 2^i values: a17 is the first above the limit.
            let e = only_error(&rep);
            assert_error(e, Code::TooLarge, "list 'a17'", 35);
            assert!(e.message.contains("131072 values"), "{e}");
            assert!(rs.rules().is_empty());
            assert!(work < 100 * levels as u64, "{work}");
            assert_eq!(rep.warnings_of(Code::UnusedList).count(), 0, "{rep}");
        }
    }

    /// `a0` holds `x`; `a{i}` names `a{i-1}` and holds `y{i}`.
    fn list_chain(levels: usize) -> String {
        let mut y = String::from("- list: a0\n  items: [x]\n");
        for i in 1..=levels {
            y.push_str(&format!("- list: a{i}\n  items: [a{}, y{i}]\n", i - 1));
        }
        y + &rule(&format!("evt.type = execve and proc.name in (a{levels})"))
    }

    #[test]
    fn lists_nested_too_deep_are_an_error_not_a_truncation() {
        // 40 levels: a32 is the first nested 33 deep.
        let (rs, rep, _) = load(&list_chain(40));
        let e = only_error(&rep);
        assert_error(e, Code::TooDeep, "list 'a32'", 65);
        assert_eq!(e.code.as_str(), "LOAD_ERR_LIMIT_DEPTH");
        assert!(rs.rules().is_empty());
        // At the limit, every value is there (the deepest included).
        let (rs, rep, _) = load(&list_chain(MAX_LIST_DEPTH as usize - 1));
        assert!(!rep.has_errors(), "{rep}");
        let r = &rs.rules()[0];
        for comm in ["x", "y1", "y31"] {
            let ev = falco_learn_event::Event {
                typ: falco_learn_event::EventTypeField(falco_learn_event::EventType::Execve),
                process: falco_learn_event::Process {
                    comm: comm.into(),
                    ..Default::default()
                }
                .into(),
                ..Default::default()
            };
            assert!(r.matches(&ev), "{comm}");
        }
    }

    #[test]
    fn lists_naming_each_other_are_an_error() {
        let y =
            "- list: a\n  items: [b, x]\n- list: b\n  items: [y, a]\n- list: s\n  items: [s, t]\n"
                .to_string()
                + &rule("evt.type = execve and proc.name in (a, s)");
        let (rs, rep, _) = load(&y);
        let e = only_error(&rep);
        assert_error(e, Code::TooDeep, "list 'b'", 4);
        assert!(e.message.contains("cannot contain themselves"), "{e}");
        assert!(rs.rules().is_empty());
        // A list naming only itself holds its name (unchanged behaviour).
        let y = "- list: s\n  items: [s, t]\n".to_string()
            + &rule("evt.type = execve and proc.name in (s)");
        let (rs, rep, _) = load(&y);
        assert!(!rep.has_errors(), "{rep}");
        assert_eq!(rs.rules().len(), 1);
    }

    #[test]
    fn long_macro_chains_stop_at_the_depth_limit_without_recursing() {
        // 20 000 macros each using the previous one: sized with an explicit
        // stack, on a thread with a small native stack.
        let mut y = String::from("- macro: m0\n  condition: proc.name = x\n");
        for i in 1..20_000 {
            y.push_str(&format!("- macro: m{i}\n  condition: m{}\n", i - 1));
        }
        y += &rule("evt.type = execve and m19999");
        let (rep, work) = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                let (_, rep, work) = load(&y);
                (rep, work)
            })
            .unwrap()
            .join()
            .unwrap();
        // m0 has depth 1, so m64 is the first nested 65 deep.
        let e = only_error(&rep);
        assert_error(e, Code::TooDeep, "macro 'm64'", 130);
        assert!(e.message.contains("nested 65 deep"), "{e}");
        assert!(work < 1_000_000, "{work}");
    }

    #[test]
    fn conditions_nested_too_deep_once_inlined_are_an_error() {
        // Each macro adds five `not` levels: m40 is the first 201 deep.
        let mut y = String::from("- macro: m0\n  condition: proc.name = x\n");
        for i in 1..=60 {
            y.push_str(&format!(
                "- macro: m{i}\n  condition: not not not not not m{}\n",
                i - 1
            ));
        }
        y += &rule("evt.type = execve and m60");
        let (_, rep, _) = load(&y);
        let e = only_error(&rep);
        assert_error(e, Code::TooDeep, "macro 'm40'", 82);
        assert!(e.message.contains("201 levels"), "{e}");
    }

    #[test]
    fn a_condition_at_the_depth_limit_compiles_and_evaluates_on_a_small_stack() {
        // 39 macros of five `not`s over one test: 196 levels, plus the rule's
        // `and`: within the limit. Compiled, evaluated and dropped on a
        // thread with the default stack of a spawned thread.
        let mut y = String::from("- macro: m0\n  condition: proc.name = x\n");
        for i in 1..=39 {
            y.push_str(&format!(
                "- macro: m{i}\n  condition: not not not not not m{}\n",
                i - 1
            ));
        }
        y += &rule("evt.type = execve and m39");
        let matched = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let (rs, rep, _) = load(&y);
                assert!(!rep.has_errors(), "{rep}");
                let ev = falco_learn_event::Event {
                    typ: falco_learn_event::EventTypeField(falco_learn_event::EventType::Execve),
                    ..Default::default()
                };
                rs.matching(&ev).len()
            })
            .unwrap()
            .join()
            .unwrap();
        // 39 x 5 `not`s (odd) over `proc.name = x`, which is false.
        assert_eq!(matched, 1);
    }

    #[test]
    fn deeply_nested_parentheses_are_an_error() {
        let n = 100_000;
        let cond = format!("{}proc.name = x{}", "(".repeat(n), ")".repeat(n));
        let (_, rep, _) = load(&rule(&format!("evt.type = execve and {cond}")));
        let e = only_error(&rep);
        assert_error(e, Code::TooDeep, "rule 'r'", 3);
        assert!(e.message.contains("nested more than 200 levels"), "{e}");
    }

    #[test]
    fn long_conditions_are_an_error() {
        let cond = format!("proc.name = {}", "x".repeat(MAX_CONDITION_BYTES));
        let (_, rep, _) = load(&rule(&format!("evt.type = execve and {cond}")));
        let e = only_error(&rep);
        assert_error(e, Code::TooLong, "rule 'r'", 3);
        assert_eq!(e.code.as_str(), "LOAD_ERR_LIMIT_SIZE");
    }

    #[test]
    fn regexes_are_bounded_in_size_and_number() {
        let (rs, rep, _) = load(&rule(
            r#"evt.type = execve and proc.name regex "[a-z]{1,8}" and not proc.name regex "\\w{1000}""#,
        ));
        let e = only_error(&rep);
        assert_error(e, Code::TooLong, "rule 'r'", 3);
        assert!(e.message.contains("regular expression"), "{e}");
        assert!(rs.rules().is_empty());
        // A pattern used by many rules is compiled once; distinct ones are
        // counted: with "same", rule r{MAX_REGEXES - 1} has one too many.
        let mut y = String::new();
        for i in 0..MAX_REGEXES {
            y.push_str(&format!(
                "- rule: r{i}\n  desc: d\n  condition: evt.type = execve and proc.name regex \"x{i}\" and proc.pname regex \"same\"\n{RULE_TAIL}"
            ));
        }
        let (rs, rep, _) = load(&y);
        let e = only_error(&rep);
        let last = MAX_REGEXES - 1;
        assert_error(e, Code::TooLarge, &format!("rule 'r{last}'"), 5 * last + 3);
        assert_eq!(rs.rules().len(), MAX_REGEXES - 1);
    }

    #[test]
    fn long_outputs_are_an_error() {
        let y = format!(
            "- rule: r\n  desc: d\n  condition: evt.type = execve\n  output: o {}\n  priority: INFO\n",
            "%proc.name ".repeat(MAX_OUTPUT_BYTES / 10)
        );
        let (rs, rep, _) = load(&y);
        let e = only_error(&rep);
        assert_error(e, Code::TooLong, "rule 'r'", 4);
        assert!(rs.rules().is_empty());
    }

    #[test]
    fn the_whole_ruleset_is_bounded() {
        // A list of 60 000 values; each rule names it twice (120 001 nodes,
        // above the per-condition limit) or once (60 001 nodes).
        let items: Vec<String> = (0..60_000).map(|i| format!("v{i}")).collect();
        let mut y = format!("- list: big\n  items: [{}]\n", items.join(", "));
        y += "- rule: twice\n  desc: d\n  condition: evt.type = execve and proc.name in (big, big)\n  output: o\n  priority: INFO\n";
        let per_rule = 60_000 + 1 + 2 + 1;
        let fit = (MAX_RULESET_NODES / per_rule) as usize;
        for i in 0..=fit {
            y.push_str(&format!(
                "- rule: r{i}\n  desc: d\n  condition: evt.type = execve and proc.name in (big)\n{RULE_TAIL}"
            ));
        }
        let (rs, rep, _) = load(&y);
        assert_eq!(rep.errors.len(), 2, "{rep}");
        assert_error(&rep.errors[0], Code::TooLarge, "rule 'twice'", 5);
        assert!(
            rep.errors[0].message.contains("120003 nodes"),
            "{}",
            rep.errors[0]
        );
        let line = 8 + 5 * fit + 2;
        assert_error(
            &rep.errors[1],
            Code::TooLarge,
            &format!("rule 'r{fit}'"),
            line,
        );
        assert!(
            rep.errors[1].message.contains("together"),
            "{}",
            rep.errors[1]
        );
        assert_eq!(rs.rules().len(), fit);
    }

    #[test]
    fn yaml_aliases_are_counted() {
        // 97 KB: one anchored list of 3 000 values, aliased 3 000 times (9 M nodes).
        let items: Vec<String> = (0..3000).map(|i| format!("x{i}")).collect();
        let mut y = format!("- list: l0\n  items: &a [{}]\n", items.join(", "));
        for i in 1..3000 {
            y.push_str(&format!("- list: l{i}\n  items: *a\n"));
        }
        let (rs, rep, _) = load(&y);
        let e = only_error(&rep);
        assert_eq!(e.code, Code::TooLarge, "{e}");
        assert!(e.message.contains("YAML nodes"), "{e}");
        assert!(rs.rules().is_empty());
        // A few aliases are fine.
        let (_, rep, _) = load("- list: a\n  items: &x [p, q]\n- list: b\n  items: *x\n");
        assert!(!rep.has_errors(), "{rep}");
    }

    #[test]
    fn large_files_are_an_error() {
        let big = format!("# {}\n", "x".repeat(MAX_FILE_BYTES));
        let (_, rep, _) = load(&big);
        let e = only_error(&rep);
        assert_eq!(e.code, Code::TooLong, "{e}");
        let dir = std::env::temp_dir().join(format!("fl-rules-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big.yaml");
        std::fs::write(&path, &big).unwrap();
        let (_, rep) = Ruleset::load_files(&[&path]);
        std::fs::remove_dir_all(&dir).unwrap();
        let e = only_error(&rep);
        assert_eq!(e.code, Code::TooLong, "{e}");
    }

    #[test]
    fn reports_keep_a_bounded_number_of_problems() {
        let mut y = String::new();
        for i in 0..3 * MAX_DIAGNOSTICS {
            y.push_str(&format!(
                "- rule: r{i}\n  desc: d\n  condition: evt.type = execve and proc.nmae = x\n{RULE_TAIL}"
            ));
        }
        let (_, rep, _) = load(&y);
        assert_eq!(rep.errors.len(), MAX_DIAGNOSTICS);
        assert_eq!(rep.errors_not_kept, 2 * MAX_DIAGNOSTICS);
        assert!(rep.has_errors());
    }
}
