//! Conformance with Falco: per operator and field class, a condition, an event
//! and the verdict Falco gives, with where that expectation comes from.
//! Run alone: `cargo test -p falco-learn-rules --test conformance`.
//!
//! Sources, read with the search tools and never copied:
//! - [docs]   falco.org/docs/concepts/rules/conditions (operators, `pmatch`, `glob`).
//! - [cmp]    libsinsp `filter_compare.cpp` (`flt_compare_string`: `strcmp`, `strstr`,
//!   `strcasestr`, `strncmp`, `fnmatch` via `sinsp_utils::glob_match`).
//! - [pfx]    libsinsp `prefix_search.h` (`path_prefix_map`: `pmatch`).
//! - [esc]    libsinsp `filter/escaping.cpp` (`unescape_str`) and `filter/parser.cpp`
//!   (`lex_quoted_str`, `RGX_BARESTR`).
//! - [xform]  libsinsp `sinsp_filter_transformer_tolower.cpp` (byte-wise `tolower`).
//! - [locale] Falco never calls `setlocale`: C's case functions fold ASCII only.
//! - [na]     libsinsp `sinsp_filter_check::compare`: a field that extracts no value
//!   makes the comparison false, whatever the operator (`!=` included).
//! - [multi]  libsinsp multi-valued extraction (`proc.aname`, `fd.ip`): the comparison
//!   holds if it holds for one value.
//! - [regex]  libsinsp `regex` operator: RE2, full match.
//! - [match]  Falco's `rule_matching` (falco.yaml): `first` is the default.

use falco_learn_event::{
    Ancestor, Args, Container, Event, EventType, EventTypeField, Fd, FdType, L4Proto, Process,
};
use falco_learn_rules::{RuleMatching, Ruleset};

fn exec(name: &str, args: &[&str], ancestors: &[&str]) -> Event {
    Event {
        ts: 1_000,
        typ: EventTypeField(EventType::Execve),
        process: Process {
            pid: 100,
            comm: name.into(),
            exe: name.into(),
            exepath: format!("/usr/bin/{name}"),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
        .into(),
        ancestors: ancestors
            .iter()
            .enumerate()
            .map(|(i, c)| Ancestor {
                pid: 99 - i as u32,
                comm: c.to_string(),
                ..Default::default()
            })
            .collect::<Vec<_>>()
            .into(),
        container: Container {
            id: "c0ffee".into(),
            ..Default::default()
        }
        .into(),
        args: Args::Exec {
            filename: String::new(),
        },
        ..Default::default()
    }
}

fn open(path: &str) -> Event {
    Event {
        ts: 1_000,
        typ: EventTypeField(EventType::Openat),
        res: 3,
        process: Process {
            pid: 10,
            comm: "cat".into(),
            ..Default::default()
        }
        .into(),
        container: Container::host().into(),
        fd: Some(Fd {
            num: 3,
            typ: FdType::File,
            name: path.into(),
            ..Default::default()
        }),
        args: Args::Open {
            name: path.into(),
            flags: 0,
            mode: 0,
            dirfd: -100,
        },
        ..Default::default()
    }
}

fn connect(sip: &str, sport: u16) -> Event {
    Event {
        ts: 1_000,
        typ: EventTypeField(EventType::Connect),
        res: 0,
        fd: Some(Fd {
            num: 3,
            typ: FdType::Ipv4,
            l4proto: L4Proto::Tcp,
            cip: Some("10.0.0.2".parse().expect("ip")),
            cport: Some(5555),
            sip: Some(sip.parse().expect("ip")),
            sport: Some(sport),
            is_client: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn rule(cond: &str) -> String {
    let mut out = String::from("- rule: R\n  desc: d\n  condition: >\n");
    for l in cond.lines() {
        out.push_str("    ");
        out.push_str(l);
        out.push('\n');
    }
    out.push_str("  output: o\n  priority: INFO\n");
    out
}

/// Does `cond` (evaluated as a rule) match `ev`? Panics on load errors.
fn verdict(cond: &str, ev: &Event) -> bool {
    let text = rule(cond);
    let (rs, rep) = Ruleset::load_sources(&[("c.yaml", text.as_str())]);
    assert!(!rep.has_errors(), "{cond}: {rep}");
    !rs.matching(ev).is_empty()
}

/// Whether `cond` loads without errors.
fn loads(cond: &str) -> Result<(), String> {
    let text = rule(cond);
    let (_, rep) = Ruleset::load_sources(&[("c.yaml", text.as_str())]);
    if rep.has_errors() {
        Err(rep.to_string())
    } else {
        Ok(())
    }
}

/// A table of (condition, event, expected verdict, source) rows.
fn table(rows: &[(&str, &Event, bool, &str)]) {
    let mut bad = Vec::new();
    for (cond, ev, want, why) in rows {
        if verdict(cond, ev) != *want {
            bad.push(format!("{cond}: expected {want} ({why})"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

const EX: &str = "evt.type = execve and ";
const OP: &str = "evt.type = openat and ";

fn ex(c: &str) -> String {
    format!("{EX}{c}")
}
fn op(c: &str) -> String {
    format!("{OP}{c}")
}

#[test]
fn string_comparisons_are_byte_exact_and_case_sensitive() {
    let bash = exec("bash", &["-c", "echo hi"], &["sshd"]);
    let c = |s: &str| ex(s);
    table(&[
        (&c("proc.name = bash"), &bash, true, "[cmp] strcmp"),
        (
            &c("proc.name = Bash"),
            &bash,
            false,
            "[cmp] strcmp is case-sensitive",
        ),
        (
            &c("proc.name = \"bash \""),
            &bash,
            false,
            "[cmp] trailing space counts",
        ),
        (&c("proc.name != sh"), &bash, true, "[cmp]"),
        (&c("proc.name contains as"), &bash, true, "[cmp] strstr"),
        (
            &c("proc.name contains \"\""),
            &bash,
            true,
            "[cmp] strstr of an empty needle",
        ),
        (&c("proc.name startswith ba"), &bash, true, "[cmp] strncmp"),
        (
            &c("proc.name startswith \"\""),
            &bash,
            true,
            "[cmp] strncmp of length 0",
        ),
        (&c("proc.name endswith sh"), &bash, true, "[cmp] endswith"),
        (
            &c("proc.name endswith Sh"),
            &bash,
            false,
            "[cmp] case-sensitive",
        ),
        (
            &c("proc.name icontains ASH"),
            &bash,
            true,
            "[cmp] strcasestr",
        ),
        (
            &c("proc.name > basg"),
            &bash,
            true,
            "[cmp] strcmp order on strings",
        ),
        (
            &c("proc.name < bash"),
            &bash,
            false,
            "[cmp] strcmp order on strings",
        ),
        (&c("proc.name in (sh, bash)"), &bash, true, "[docs] in"),
        (
            &c("proc.name in (sh, \"bash\")"),
            &bash,
            true,
            "[esc] quoted items",
        ),
        (
            &c("proc.name intersects (zsh, bash)"),
            &bash,
            true,
            "[docs] intersects",
        ),
        (
            &c("proc.cmdline = \"bash -c echo hi\""),
            &bash,
            true,
            "[docs] proc.cmdline",
        ),
    ]);
}

#[test]
fn case_folding_is_ascii_only() {
    let e = exec("ÉClair", &[], &[]);
    table(&[
        (
            &ex("proc.name icontains éclair"),
            &e,
            false,
            "[cmp][locale] strcasestr folds ASCII only",
        ),
        (
            &ex("proc.name icontains ÉCLAIR"),
            &e,
            true,
            "[cmp][locale] ASCII letters fold",
        ),
        (
            &ex("tolower(proc.name) = Éclair"),
            &e,
            true,
            "[xform][locale] `É` stays, `C` folds",
        ),
        (
            &ex("tolower(proc.name) = éclair"),
            &e,
            false,
            "[xform][locale] `É` is not folded",
        ),
        (
            &ex("toupper(proc.name) = ÉCLAIR"),
            &e,
            true,
            "[xform][locale]",
        ),
        (
            &ex("proc.name iglob é*"),
            &e,
            false,
            "[cmp][locale] FNM_CASEFOLD folds ASCII only",
        ),
        (&ex("proc.name iglob Écl*"), &e, true, "[cmp][locale]"),
        (
            &ex("proc.name = ÉClair"),
            &e,
            true,
            "[cmp] non-ASCII compares bytes",
        ),
        (&ex("proc.name startswith É"), &e, true, "[cmp] bytes"),
    ]);
}

#[test]
fn glob_is_fnmatch_without_pathname() {
    let f = open("/home/bob/.ssh/id_rsa");
    table(&[
        (
            &op("fd.name glob /home/*/.ssh/*"),
            &f,
            true,
            "[cmp] fnmatch flags 0",
        ),
        (
            &op("fd.name glob /home/*"),
            &f,
            true,
            "[cmp] no FNM_PATHNAME: * crosses /",
        ),
        (
            &op("fd.name glob /home/???/.ssh/id_rsa"),
            &f,
            true,
            "[cmp] ? one character",
        ),
        (
            &op("fd.name glob /home/[a-c]ob/*"),
            &f,
            true,
            "[cmp] bracket class",
        ),
        (
            &op("fd.name glob /home/[!b]ob/*"),
            &f,
            false,
            "[cmp] negated class",
        ),
        (
            &op("fd.name glob /HOME/*"),
            &f,
            false,
            "[cmp] glob is case-sensitive",
        ),
        (
            &op("fd.name iglob /HOME/*"),
            &f,
            true,
            "[cmp] iglob FNM_CASEFOLD",
        ),
        (
            &op("fd.name glob \"*id_rsa\""),
            &f,
            true,
            "[docs] quoted pattern",
        ),
    ]);
}

#[test]
fn pmatch_compares_path_components() {
    let key = open("/srv/shop/private/key.pem");
    table(&[
        (
            &op("fd.name pmatch (/srv/*/private)"),
            &key,
            true,
            "[pfx] glob component",
        ),
        (&op("fd.name pmatch (/srv/*/public)"), &key, false, "[pfx]"),
        (
            &op("fd.name pmatch (/srv)"),
            &key,
            true,
            "[pfx] component prefix",
        ),
        (
            &op("fd.name pmatch (/sr)"),
            &key,
            false,
            "[pfx] not a string prefix",
        ),
        (
            &op("fd.name pmatch (/srv/shop/private/key.pem)"),
            &key,
            true,
            "[pfx] the path itself",
        ),
        (
            &op("fd.name pmatch (/srv/shop/private/key.pem/x)"),
            &key,
            false,
            "[pfx] longer item",
        ),
        (
            &op("fd.name pmatch (//srv//shop/)"),
            &key,
            true,
            "[pfx] empty components dropped",
        ),
        (
            &op("fd.name pmatch (srv/shop)"),
            &key,
            true,
            "[pfx] a relative item is the same components",
        ),
        (
            &op("fd.name pmatch (/)"),
            &key,
            true,
            "[pfx] root: no component",
        ),
        (
            &op("fd.name pmatch (/srv/s?op)"),
            &key,
            true,
            "[pfx] ? in a component",
        ),
        (
            &op("fd.name pmatch (/srv/[st]hop)"),
            &key,
            true,
            "[pfx] class in a component",
        ),
        (
            &op("fd.name pmatch (/srv/*)"),
            &key,
            true,
            "[pfx] * is one component",
        ),
        (
            &op("fd.name pmatch (/*/private)"),
            &key,
            false,
            "[pfx] * does not span components",
        ),
    ]);
    table(&[(
        &op("fd.name pmatch (/srv/shop)"),
        &open("/srv//shop"),
        true,
        "[pfx] value components",
    )]);
}

#[test]
fn regex_is_re2_full_match_and_escapes_follow_libsinsp() {
    let v = exec("app", &["v12"], &[]);
    table(&[
        (
            &ex(r#"proc.args regex "v\\d+""#),
            &v,
            true,
            "[esc] \\\\ is a backslash; [regex] RE2",
        ),
        (
            &ex(r"proc.args regex v\d+"),
            &v,
            true,
            "[esc] bare strings keep backslashes",
        ),
        (
            &ex(r#"proc.args regex "v\\d""#),
            &v,
            false,
            "[regex] full match, not a search",
        ),
        (
            &ex(r#"proc.args regex "v1.""#),
            &v,
            true,
            "[regex] . any character",
        ),
        (&ex(r#"proc.args = "\x76\x312""#), &v, true, "[esc] \\xHH"),
        (
            &ex(r#"proc.args = 'v\x312'"#),
            &v,
            true,
            "[esc] escapes in '-quoted strings too",
        ),
    ]);
    // [esc] unsupported escapes and the other quote's escape are errors
    for bad in [
        r#"proc.args = "\d""#,
        r#"proc.args regex "v\d+""#,
        r#"proc.args = "\'""#,
        r#"proc.args = '\"'"#,
        r#"proc.args = "\x7""#,
        r#"proc.args = "\xZZ""#,
    ] {
        let e = loads(&ex(bad)).expect_err(bad);
        assert!(e.contains("c.yaml:"), "{e}");
    }
}

#[test]
fn missing_values_make_every_comparison_false() {
    let shallow = exec("bash", &[], &["sshd"]);
    table(&[
        (&ex("proc.aname[3] = init"), &shallow, false, "[na]"),
        (&ex("proc.aname[3] != init"), &shallow, false, "[na] != too"),
        (
            &ex("not proc.aname[3] = init"),
            &shallow,
            true,
            "[na] negation of false",
        ),
        (&ex("proc.aname[3] exists"), &shallow, false, "[na] exists"),
        (&ex("proc.aname[1] exists"), &shallow, true, "[na]"),
        (
            &ex("proc.aname[3] in (init, sshd)"),
            &shallow,
            false,
            "[na]",
        ),
        (
            &ex("proc.aname[3] contains \"\""),
            &shallow,
            false,
            "[na] even an empty needle",
        ),
    ]);
}

#[test]
fn empty_values_compare_as_empty_strings() {
    let noargs = exec("bash", &[], &[]);
    table(&[
        (
            &ex("proc.args = \"\""),
            &noargs,
            true,
            "[cmp] strcmp of empty strings",
        ),
        (&ex("proc.args != \"\""), &noargs, false, "[cmp]"),
        (
            &ex("proc.args contains \"\""),
            &noargs,
            true,
            "[cmp] strstr(\"\", \"\")",
        ),
        (&ex("proc.args startswith \"\""), &noargs, true, "[cmp]"),
        (
            &ex("proc.args in (\"\", x)"),
            &noargs,
            true,
            "[cmp] in holds equal",
        ),
        (
            &ex("proc.args glob \"*\""),
            &noargs,
            true,
            "[cmp] fnmatch(*, \"\")",
        ),
        (
            &ex("proc.args glob \"?\""),
            &noargs,
            false,
            "[cmp] fnmatch(?, \"\")",
        ),
    ]);
}

#[test]
fn multi_valued_fields_match_when_one_value_does() {
    let deep = exec("bash", &[], &["sshd", "systemd"]);
    table(&[
        (&ex("proc.aname = systemd"), &deep, true, "[multi]"),
        (&ex("proc.aname = sshd"), &deep, true, "[multi]"),
        (&ex("proc.aname in (cron, systemd)"), &deep, true, "[multi]"),
        (&ex("proc.aname startswith sys"), &deep, true, "[multi]"),
        (&ex("proc.aname = cron"), &deep, false, "[multi]"),
        (
            &ex("proc.aname[1] = systemd"),
            &deep,
            false,
            "[docs] index 1 is the parent",
        ),
        (
            &ex("proc.aname[2] = systemd"),
            &deep,
            true,
            "[docs] index 2 the grandparent",
        ),
    ]);
}

#[test]
fn numbers_and_addresses_compare_by_value() {
    let c = connect("192.168.1.20", 443);
    let k = |s: &str| format!("evt.type = connect and {s}");
    table(&[
        (&k("fd.sport = 443"), &c, true, "[cmp] numeric"),
        (
            &k("fd.sport > 80"),
            &c,
            true,
            "[cmp] numeric order, not text",
        ),
        (&k("fd.sport >= 443 and fd.sport <= 443"), &c, true, "[cmp]"),
        (&k("fd.sport in (80, 443)"), &c, true, "[cmp]"),
        (&k("fd.sip = 192.168.1.20"), &c, true, "[cmp] ip"),
        (&k("fd.sip != 192.168.1.21"), &c, true, "[cmp] ip"),
        (
            &k("fd.snet in (\"192.168.0.0/16\")"),
            &c,
            true,
            "[cmp] net contains",
        ),
        (
            &k("fd.snet in (\"10.0.0.0/8\")"),
            &c,
            false,
            "[cmp] net contains",
        ),
        (
            &k("fd.ip = 10.0.0.2"),
            &c,
            true,
            "[multi] fd.ip is client or server",
        ),
        (&k("fd.ip = 192.168.1.20"), &c, true, "[multi]"),
    ]);
    for bad in ["fd.sport = https", "fd.sip = 300.1.1.1"] {
        loads(&k(bad)).expect_err(bad);
    }
}

#[test]
fn whitespace_inside_conditions_is_insignificant_outside_strings() {
    let bash = exec("bash", &[], &[]);
    table(&[
        (&ex("proc.name   =   bash"), &bash, true, "[docs] tokens"),
        (
            &ex("proc.name in (  sh ,bash  )"),
            &bash,
            true,
            "[docs] list items trimmed",
        ),
        (
            &ex("proc.name in (sh,\nbash)"),
            &bash,
            true,
            "[docs] newlines are whitespace",
        ),
        (
            &ex("proc.name=bash"),
            &bash,
            true,
            "[esc] `=` ends a bare string",
        ),
    ]);
    // [esc] RGX_BARESTR: a bare value stops at `=`, so `a=b` is not one value
    loads(&ex("proc.name = a=b")).expect_err("a=b");
}

#[test]
fn very_long_values_compare_whole() {
    let long = "a".repeat(10_000);
    let e = exec(&long, &[], &[]);
    table(&[
        (
            &ex(&format!("proc.name = {long}")),
            &e,
            true,
            "[cmp] no truncation",
        ),
        (&ex(&format!("proc.name = {long}b")), &e, false, "[cmp]"),
        (&ex("proc.name endswith aaa"), &e, true, "[cmp]"),
    ]);
}

#[test]
fn lists_of_lists_and_macros_shadowing_lists() {
    let bash = exec("bash", &[], &[]);
    let f = "- list: inner\n  items: [bash]\n- list: outer\n  items: [sh, inner]\n\
             - rule: R\n  desc: d\n  condition: evt.type = execve and proc.name in (outer)\n  output: o\n  priority: INFO\n";
    let (rs, rep) = Ruleset::load_sources(&[("c.yaml", f)]);
    assert!(!rep.has_errors(), "{rep}");
    // [docs] a list named inside a list expands to its items
    assert_eq!(rs.matching(&bash).len(), 1);
    // a list and a macro of the same name: inside `in (…)` the name is the list
    let f = "- list: shells\n  items: [bash]\n- macro: shells\n  condition: proc.name = nothing\n\
             - rule: R\n  desc: d\n  condition: evt.type = execve and proc.name in (shells)\n  output: o\n  priority: INFO\n";
    let (rs, rep) = Ruleset::load_sources(&[("c.yaml", f)]);
    assert!(!rep.has_errors(), "{rep}");
    assert_eq!(
        rs.matching(&bash).len(),
        1,
        "[docs] list names in value lists"
    );
}

#[test]
fn override_of_an_append_and_disabled_then_enabled_rules() {
    let bash = exec("bash", &[], &[]);
    let base = "- list: l\n  items: [zsh]\n- rule: R\n  desc: d\n  condition: evt.type = execve and proc.name in (l)\n  output: o\n  priority: INFO\n  enabled: false\n";
    let app = "- list: l\n  items: [sh]\n  override:\n    items: append\n";
    let repl = "- list: l\n  items: [bash]\n  override:\n    items: replace\n";
    let on = "- rule: R\n  enabled: true\n";
    let (rs, rep) = Ruleset::load_sources(&[("a.yaml", base), ("b.yaml", app), ("c.yaml", repl)]);
    assert!(!rep.has_errors(), "{rep}");
    assert!(
        rs.matching(&bash).is_empty(),
        "[docs] disabled rule never alerts"
    );
    let (rs, rep) = Ruleset::load_sources(&[
        ("a.yaml", base),
        ("b.yaml", app),
        ("c.yaml", repl),
        ("d.yaml", on),
    ]);
    assert!(!rep.has_errors(), "{rep}");
    assert_eq!(
        rs.matching(&bash).len(),
        1,
        "[docs] replace after append wins; enabled later"
    );
    assert!(
        rs.matching(&exec("sh", &[], &[])).is_empty(),
        "[docs] replaced"
    );
}

#[test]
fn only_the_first_matching_rule_alerts_by_default() {
    let f = "- rule: A\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n\
             - rule: B\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n";
    let (rs, rep) = Ruleset::load_sources(&[("c.yaml", f)]);
    assert!(!rep.has_errors(), "{rep}");
    let ev = exec("x", &[], &[]);
    let collect = |m: RuleMatching| {
        let mut v = Vec::new();
        rs.for_each_alerting(&ev, m, |_| true, |r| v.push(r.name.clone()));
        v
    };
    assert_eq!(RuleMatching::default(), RuleMatching::First, "[match]");
    assert_eq!(collect(RuleMatching::First), ["A"], "[match]");
    assert_eq!(collect(RuleMatching::All), ["A", "B"], "[match]");
}

/// Falco pastes list items and exception values into the condition text
/// (rule_loader_compiler.cpp `quote_item`): quoted ones are quoted strings, ones with a
/// space are wrapped in `"…"` without escaping, others are bare strings.
#[test]
fn list_items_and_exception_values_are_pasted_as_falco_does() {
    let load = |f: &str| Ruleset::load_sources(&[("c.yaml", f)]);
    let r = "- rule: R\n  desc: d\n  condition: evt.type = execve and proc.cmdline in (l)\n  output: o\n  priority: INFO\n";
    // a spaced item: "…" added, `\t` is then a tab; a quoted item is unescaped
    let f = format!("- list: l\n  items: ['a\\tb c', '\"x\\x41 y\"', 'p\\q']\n{r}");
    let (rs, rep) = load(&f);
    assert!(!rep.has_errors(), "{rep}");
    let cmd = |c: &str| {
        let mut e = exec(c, &[], &[]);
        let mut parts = c.splitn(2, ' ');
        std::sync::Arc::make_mut(&mut e.process).comm = parts.next().unwrap_or("").into();
        std::sync::Arc::make_mut(&mut e.process).args = parts
            .next()
            .map(|a| vec![a.to_string()])
            .unwrap_or_default();
        e
    };
    assert_eq!(
        rs.matching(&cmd("a\tb c")).len(),
        1,
        "[esc] spaced item unescaped"
    );
    assert_eq!(
        rs.matching(&cmd("xA y")).len(),
        1,
        "[esc] quoted item unescaped"
    );
    assert_eq!(
        rs.matching(&cmd("p\\q")).len(),
        1,
        "[esc] bare item keeps \\"
    );
    // a spaced item with an escape libsinsp refuses, or a `"`, fails its rules
    // (and a bare item holding a character libsinsp's bare strings stop at: RGX_BARESTR)
    for bad in ["'a\\d c'", "'say \"hi\" now'", "k=v", "'f(x)'"] {
        let (rs, rep) = load(&format!("- list: l\n  items: [{bad}]\n{r}"));
        assert!(rep.has_errors() && rs.rules().is_empty(), "{bad}: {rep}");
    }
    // exception values: the same pasting
    let f = "- rule: R\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n  exceptions:\n    - name: e\n      fields: [proc.cmdline]\n      comps: [in]\n      values:\n        - [[\"a\\tb c\", '\"xA y\"', 'p\\q']]\n";
    let (rs, rep) = load(f);
    assert!(!rep.has_errors(), "{rep}");
    assert!(rs.matching(&cmd("a\tb c")).is_empty(), "[esc] excepted");
    assert!(rs.matching(&cmd("xA y")).is_empty(), "[esc] excepted");
    assert!(rs.matching(&cmd("p\\q")).is_empty(), "[esc] excepted");
    assert_eq!(rs.matching(&cmd("other")).len(), 1);
}
