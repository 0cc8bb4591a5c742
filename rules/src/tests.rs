//! Unit tests of the collector, compiler and evaluator working together.

use super::*;
use falco_learn_event::{Ancestor, Args, Container, EventTypeField, Fd, FdType, L4Proto, Process};

fn load(files: &[&str]) -> (Ruleset, LoadReport) {
    let srcs: Vec<(String, String)> = files
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("f{i}.yaml"), t.to_string()))
        .collect();
    Ruleset::load_sources(&srcs)
}

fn exec(comm: &str, args: &[&str]) -> Event {
    Event {
        ts: 1_000,
        typ: EventTypeField(EventType::Execve),
        process: Process {
            pid: 100,
            comm: comm.into(),
            exe: comm.into(),
            exepath: format!("/usr/bin/{comm}"),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
        .into(),
        ancestors: vec![Ancestor {
            pid: 99,
            comm: "bash".into(),
            ..Default::default()
        }]
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

fn names(rs: &Ruleset, ev: &Event) -> Vec<String> {
    rs.matching(ev).iter().map(|r| r.name.clone()).collect()
}

const BASE: &str = r#"
- list: shells
  items: [bash, sh]
- macro: spawned
  condition: evt.type in (execve, execveat)
- macro: shell
  condition: proc.name in (shells)
- rule: Shell
  desc: a shell
  condition: spawned and shell
  output: shell %proc.name parent=%proc.pname
  priority: WARNING
  tags: [t1]
"#;

#[test]
fn basic_rule_fires_and_formats() {
    let (rs, rep) = load(&[BASE]);
    assert!(!rep.has_errors(), "{rep}");
    let ev = exec("bash", &[]);
    let m = rs.matching(&ev);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].format_output(&ev), "shell bash parent=bash");
    let a = m[0].alert(&ev);
    assert_eq!(a.priority, "Warning");
    assert_eq!(a.source, "syscall");
    assert_eq!(a.time, "1970-01-01T00:00:00.000001000Z");
    assert_eq!(
        a.output,
        "00:00:00.000001000: Warning shell bash parent=bash"
    );
    assert!(names(&rs, &exec("ls", &[])).is_empty());
    // indexed by event type
    assert_eq!(rs.candidates(EventType::Execve), 1);
    assert_eq!(rs.candidates(EventType::Openat), 0);
}

#[test]
fn append_and_override_across_files() {
    let f2 = r#"
- list: shells
  items: [zsh]
  append: true
- macro: shell
  condition: or proc.name = fish
  append: true
- rule: Shell
  condition: and not proc.args contains safe
  append: true
"#;
    let (rs, rep) = load(&[BASE, f2]);
    assert!(!rep.has_errors(), "{rep}");
    assert_eq!(names(&rs, &exec("zsh", &[])), ["Shell"]);
    assert_eq!(names(&rs, &exec("fish", &[])), ["Shell"]);
    assert!(names(&rs, &exec("bash", &["safe"])).is_empty());

    let f3 = r#"
- list: shells
  items: [dash]
  override:
    items: replace
- rule: Shell
  priority: ERROR
  output: changed %proc.name
  override:
    priority: replace
    output: replace
"#;
    let (rs, rep) = load(&[BASE, f3]);
    assert!(!rep.has_errors(), "{rep}");
    assert!(names(&rs, &exec("bash", &[])).is_empty());
    let ev = exec("dash", &[]);
    let m = rs.matching(&ev);
    assert_eq!(m[0].priority, Priority::Error);
    assert_eq!(m[0].format_output(&ev), "changed dash");
}

#[test]
fn enabled_only_entry_disables() {
    let (rs, rep) = load(&[BASE, "- rule: Shell\n  enabled: false\n"]);
    assert!(!rep.has_errors(), "{rep}");
    assert!(names(&rs, &exec("bash", &[])).is_empty());
    assert_eq!(rs.enabled_count(), 0);
}

#[test]
fn exceptions_expand_like_falco() {
    let f = r#"
- list: allowed_parents
  items: [sshd]
- rule: Shell
  desc: x
  condition: evt.type = execve and proc.name = bash
  output: x
  priority: INFO
  exceptions:
    - name: by_parent
      fields: [proc.pname, proc.args]
      comps: [in, startswith]
      values:
        - [allowed_parents, "-c safe"]
    - name: by_name
      fields: proc.exepath
      values: [/usr/bin/bash]
"#;
    let (rs, rep) = load(&[f]);
    assert!(!rep.has_errors(), "{rep}");
    let mut ev = exec("bash", &["-c", "safe", "x"]);
    std::sync::Arc::make_mut(&mut ev.process).exepath = "/bin/bash".into();
    assert_eq!(names(&rs, &ev), ["Shell"]); // parent is bash, not sshd
    std::sync::Arc::make_mut(&mut ev.ancestors)[0].comm = "sshd".into();
    assert!(names(&rs, &ev).is_empty());
    let mut ev2 = exec("bash", &[]);
    std::sync::Arc::make_mut(&mut ev2.process).exepath = "/usr/bin/bash".into();
    assert!(names(&rs, &ev2).is_empty());

    // appended exception values
    let f2 = r#"
- rule: Shell
  exceptions:
    - name: by_name
      values: [/bin/bash]
  append: true
"#;
    let (rs, rep) = load(&[f, f2]);
    assert!(!rep.has_errors(), "{rep}");
    std::sync::Arc::make_mut(&mut ev.ancestors)[0].comm = "init".into();
    assert!(names(&rs, &ev).is_empty());
}

#[test]
fn errors_are_reported_with_positions() {
    let bad = "- rule: R\n  desc: d\n  condition: evt.type = execve and proc.nmae = x\n  output: o\n  priority: INFO\n- rule: S\n  desc: d\n  condition: evt.type = execve and proc.tty contains 3\n  output: o %fd.nope\n  priority: INFO\n- macro: m\n  condition: undefined_macro and\n";
    let (rs, rep) = load(&[bad]);
    assert_eq!(rs.rules().len(), 0);
    let text = rep.to_string();
    assert_eq!(rep.errors.len(), 3, "{text}");
    let e0 = &rep.errors[0];
    assert_eq!(e0.code, Code::ConditionSyntax, "{text}");
    let unknown = rep
        .errors
        .iter()
        .find(|e| e.code == Code::UnknownField)
        .expect("unknown field");
    assert_eq!((unknown.pos.line, unknown.pos.col), (3, 36), "{text}");
    assert!(unknown
        .snippet
        .as_deref()
        .unwrap_or("")
        .contains("proc.nmae"));
    let badop = rep
        .errors
        .iter()
        .find(|e| e.code == Code::BadOperator)
        .expect("bad op");
    assert_eq!(badop.pos.line, 8, "{text}");
    assert!(text.contains("[E1]"), "{text}");
}

/// A file that cannot be read is Falco's `LOAD_ERR_FILE_READ`, named without a position.
#[test]
fn an_unreadable_file_is_a_file_read_error() {
    let (_, rep) = Ruleset::load_files(&["/nonexistent/falco-learn-rules.yaml"]);
    assert_eq!(rep.errors.len(), 1);
    assert_eq!(rep.errors[0].code, Code::FileRead);
    let text = rep.errors[0].to_string();
    assert!(
        text.starts_with(
            "/nonexistent/falco-learn-rules.yaml: error LOAD_ERR_FILE_READ: cannot read file: "
        ),
        "{text}"
    );
}

#[test]
fn bad_yaml_is_an_error_not_a_panic() {
    let (_, rep) = load(&["- rule: x\n  condition: [oops\n"]);
    assert_eq!(rep.errors.len(), 1);
    assert_eq!(rep.errors[0].code, Code::YamlParse);
    assert!(rep.errors[0].pos.line >= 2);
    let (_, rep) = load(&["just a string"]);
    assert_eq!(rep.errors[0].code, Code::Schema);
}

#[test]
fn warnings_unused_duplicates_no_evttype() {
    let f = r#"
- list: l1
  items: [a, b, a]
- list: unused_list
  items: [x]
- macro: unused_macro
  condition: proc.name = x
- rule: Everything
  desc: d
  condition: proc.name in (l1)
  output: o
  priority: INFO
"#;
    let (_, rep) = load(&[f]);
    assert!(!rep.has_errors(), "{rep}");
    assert_eq!(rep.warnings_of(Code::UnusedList).count(), 1);
    assert_eq!(rep.warnings_of(Code::UnusedMacro).count(), 1);
    assert_eq!(rep.warnings_of(Code::Duplicate).count(), 1);
    assert_eq!(rep.warnings_of(Code::NoEvtType).count(), 1);
}

#[test]
fn skip_if_unknown_filter_and_versions() {
    let f = r#"
- required_engine_version: 0.10.0
- required_plugin_versions:
    - name: container
      version: 0.1.0
- rule: R
  desc: d
  condition: evt.type = execve and foo.bar = 1
  output: o
  priority: INFO
  skip-if-unknown-filter: true
"#;
    let (rs, rep) = load(&[f]);
    assert!(!rep.has_errors(), "{rep}");
    assert_eq!(rs.rules().len(), 0);
    assert_eq!(rep.warnings_of(Code::Skipped).count(), 1);
    let (_, rep) = load(&["- required_engine_version: 99.0.0\n- required_plugin_versions:\n    - name: k8saudit\n      version: 0.1.0\n"]);
    assert_eq!(rep.errors.len(), 2, "{rep}");
}

#[test]
fn operators_and_types() {
    let f = r#"
- rule: Net
  desc: d
  condition: >
    evt.type = connect and fd.snet in ("10.0.0.0/8", "192.168.0.0/16") and not fd.net = "127.0.0.0/8"
    and fd.sport in (80, 443) and fd.l4proto = tcp and fd.sip != 10.1.1.1 and evt.rawres >= 0
  output: o %fd.name
  priority: INFO
- rule: Str
  desc: d
  condition: >
    evt.type = execve and proc.cmdline regex "bash -c [a-z]+" and proc.exepath pmatch (/usr/bin)
    and tolower(proc.args) icontains "ABC" and proc.name glob "ba?h" and proc.pname = val(proc.name)
    and len(proc.name) = 4 and not proc.name startswith x and proc.name endswith sh
  output: o
  priority: INFO
"#;
    let (rs, rep) = load(&[f]);
    assert!(!rep.has_errors(), "{rep}");
    let mut ev = Event {
        typ: EventTypeField(EventType::Connect),
        res: -115,
        fd: Some(Fd {
            num: 3,
            typ: FdType::Ipv4,
            l4proto: L4Proto::Tcp,
            cip: Some("10.0.0.2".parse().unwrap()),
            cport: Some(5555),
            sip: Some("10.2.3.4".parse().unwrap()),
            sport: Some(443),
            is_client: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(names(&rs, &ev).is_empty()); // rawres < 0
    ev.res = 0;
    assert_eq!(names(&rs, &ev), ["Net"]);
    if let Some(fd) = ev.fd.as_mut() {
        fd.sip = Some("10.1.1.1".parse().unwrap());
    }
    assert!(names(&rs, &ev).is_empty());

    let ev = exec("bash", &["-c", "xabcx"]);
    assert_eq!(names(&rs, &ev), ["Str"]);
    let ev = exec("bash", &["-c", "XYZ"]);
    assert!(names(&rs, &ev).is_empty());
}

#[test]
fn type_errors_are_rejected() {
    for cond in [
        "evt.type = execve and proc.tty = abc",
        "evt.type = execve and fd.snet = notanet",
        "evt.type = execve and proc.is_exe_upper_layer = maybe",
        "evt.type = execve and proc.pid contains 1",
        "evt.type = execve and proc.name regex \"(\"",
        "evt.type = execve and proc.name = (a, b)",
    ] {
        let f =
            format!("- rule: R\n  desc: d\n  condition: {cond}\n  output: o\n  priority: INFO\n");
        let (_, rep) = load(&[&f]);
        assert_eq!(rep.errors.len(), 1, "{cond}: {rep}");
    }
}

#[test]
fn missing_values_never_match() {
    let f = r#"
- rule: R
  desc: d
  condition: evt.type = execve and proc.aname[3] != foo
  output: o
  priority: INFO
- rule: S
  desc: d
  condition: evt.type = execve and not proc.aname[3] in (foo)
  output: o
  priority: INFO
"#;
    let (rs, rep) = load(&[f]);
    assert!(!rep.has_errors(), "{rep}");
    assert_eq!(names(&rs, &exec("bash", &[])), ["S"]);
}

#[test]
fn evttype_index_handles_negation() {
    let f = r#"
- rule: NotOpen
  desc: d
  condition: not evt.type in (open, openat) and proc.name = bash
  output: o
  priority: INFO
- rule: Never
  desc: d
  condition: evt.type = setns
  output: o
  priority: INFO
"#;
    let (rs, rep) = load(&[f]);
    assert!(!rep.has_errors(), "{rep}");
    let r = &rs.rules()[0];
    assert!(!r.event_types().contains(&EventType::Openat));
    assert!(r.event_types().contains(&EventType::Execve));
    assert_eq!(rs.rules()[1].evttypes, 0);
    assert!(rep.warnings_of(Code::UncapturedEvtType).count() >= 1);
}

#[test]
fn enter_direction_never_matches_and_exit_always_does() {
    let f = r#"
- rule: Enter
  desc: d
  condition: evt.type = execve and evt.dir = >
  output: o
  priority: INFO
- rule: Exit
  desc: d
  condition: evt.type = execve and evt.dir = <
  output: o
  priority: INFO
"#;
    let (rs, rep) = load(&[f]);
    assert!(!rep.has_errors(), "{rep}");
    assert_eq!(names(&rs, &exec("bash", &[])), ["Exit"]);
    // the enter rule is named, not silently dead
    let w: Vec<_> = rep.warnings_of(Code::UnavailableField).collect();
    assert_eq!(w.len(), 1, "{rep}");
    assert_eq!(w[0].item.as_deref(), Some("rule 'Enter'"));
    assert_eq!(
        w[0].message,
        "'evt.dir' compared with '>' asks for enter events: falco-learn sees exit events only, \
         evt.dir is always '<'"
    );
}

#[test]
fn fields_the_probe_never_fills_are_named_per_rule() {
    let f = r#"
- macro: has_env
  condition: proc.env contains SECRET
- rule: Env
  desc: d
  condition: evt.type = execve and has_env
  output: o
  priority: INFO
- rule: Names
  desc: d
  condition: evt.type = connect and (fd.sip.name = example.com or evt.buffer contains x)
  output: o
  priority: INFO
- rule: Fine
  desc: d
  condition: evt.type = execve and proc.name = bash
  output: o
  priority: INFO
"#;
    let (rs, rep) = load(&[f]);
    assert!(!rep.has_errors(), "{rep}");
    let got: Vec<(String, String)> = rep
        .warnings_of(Code::UnavailableField)
        .map(|d| (d.item.clone().unwrap_or_default(), d.message.clone()))
        .collect();
    let msg = |f: &str, why: &str| {
        format!(
            "field '{f}' never has a value in falco-learn ({why}): every comparison on it is \
             false, 'exists' too"
        )
    };
    assert_eq!(
        got,
        vec![
            (
                "rule 'Env'".to_string(),
                msg("proc.env", "the probe does not read process environments")
            ),
            (
                "rule 'Names'".to_string(),
                msg("evt.buffer", "the probe captures no data buffers")
            ),
            (
                "rule 'Names'".to_string(),
                msg("fd.sip.name", "falco-learn resolves no domain names")
            ),
        ]
    );
    // the verdicts stay defined: a missing value makes every comparison false
    assert_eq!(names(&rs, &exec("bash", &[])), ["Fine"]);
}

#[test]
fn exception_without_fields_is_an_error() {
    let f = "- rule: R\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n  exceptions:\n    - name: e\n      values: [x]\n";
    let (_, rep) = load(&[f]);
    assert_eq!(rep.errors.len(), 1, "{rep}");
    assert!(rep.errors[0].message.contains("no 'fields'"));
}

#[test]
fn later_files_and_later_definitions_resolve() {
    // A macro used before it is defined, and a list redefined by a later file.
    let f1 = "- rule: R\n  desc: d\n  condition: evt.type = execve and later_macro\n  output: o\n  priority: INFO\n- macro: later_macro\n  condition: proc.name in (names)\n- list: names\n  items: [a]\n";
    let f2 = "- list: names\n  items: [bash]\n";
    let (rs, rep) = load(&[f1, f2]);
    assert!(!rep.has_errors(), "{rep}");
    assert_eq!(names(&rs, &exec("bash", &[])), ["R"]);
}

/// libsinsp's `unescape_str`: an unknown escape in a quoted value is a load error at
/// the escape; `\x41` is `A`; a regex needs `\\d` in a quoted string (or a bare value).
#[test]
fn quoted_values_unescape_as_libsinsp_and_unknown_escapes_are_load_errors() {
    let rule = |cond: &str| {
        format!("- rule: R\n  desc: d\n  condition: {cond}\n  output: o\n  priority: INFO\n")
    };
    let (rs, rep) = load(&[&rule(r#"evt.type = execve and proc.args = "\d""#)]);
    assert_eq!(rs.rules().len(), 0);
    assert_eq!(rep.errors.len(), 1, "{rep}");
    let e = &rep.errors[0];
    assert_eq!(e.code, Code::ConditionSyntax, "{rep}");
    assert_eq!((e.pos.line, e.pos.col), (3, 49), "{rep}"); // the backslash
    assert!(
        rep.to_string()
            .contains("unsupported string escape sequence: \\d"),
        "{rep}"
    );

    let (_, rep) = load(&[&rule(r#"evt.type = execve and proc.args regex "v\d+""#)]);
    assert!(rep.has_errors(), "{rep}");

    let f = [
        rule(r#"evt.type = execve and proc.args regex "v\\d+""#).replace("R\n", "Quoted\n"),
        rule(r#"evt.type = execve and proc.args regex v\d+"#).replace("R\n", "Bare\n"),
        rule(r#"evt.type = execve and proc.name = "\x41""#).replace("R\n", "Hex\n"),
    ]
    .concat();
    let (rs, rep) = load(&[&f]);
    assert!(!rep.has_errors(), "{rep}");
    assert_eq!(names(&rs, &exec("x", &["v12"])), ["Quoted", "Bare"]);
    assert!(names(&rs, &exec("x", &["vddd"])).is_empty());
    assert_eq!(names(&rs, &exec("A", &[])), ["Hex"]);
    assert!(names(&rs, &exec("x41", &[])).is_empty());
}

/// Falco (rule_loader_reader.cpp) warns LOAD_APPEND_NO_VALUES when an exception is
/// appended (`append: true`, `override: {exceptions: append}`) without `values`, and
/// its rules schema allows only name/fields/comps/values in an exception.
#[test]
fn exception_appends_without_values_and_unknown_exception_keys_are_warned() {
    let base = "- rule: R\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n  exceptions:\n    - name: by_name\n      fields: proc.name\n      values: [a]\n";
    for app in [
        "- rule: R\n  exceptions:\n    - name: by_name\n      value: [bash]\n  override:\n    exceptions: append\n",
        "- rule: R\n  append: true\n  exceptions:\n    - name: by_name\n      value: [bash]\n",
    ] {
        let (rs, rep) = load(&[base, app]);
        assert!(!rep.has_errors(), "{rep}");
        let codes: Vec<&str> = rep.warnings.iter().map(|w| w.code.as_str()).collect();
        assert_eq!(
            codes,
            ["LOAD_ERR_YAML_VALIDATE", "LOAD_APPEND_NO_VALUES"],
            "{rep}"
        );
        let text = rep.to_string();
        assert!(text.contains("unknown key 'value'"), "{text}");
        assert!(text.contains("f1.yaml:4:7"), "{text}");
        // nothing was appended: bash still alerts
        assert_eq!(names(&rs, &exec("bash", &[])), ["R"]);
        assert!(names(&rs, &exec("a", &[])).is_empty());
    }
    // a replacing override or a new rule without values is not an append: no warning
    let (_, rep) = load(&[
        "- rule: R\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n  exceptions:\n    - name: by_name\n      fields: proc.name\n",
    ]);
    assert!(
        rep.warnings.iter().all(|w| w.code != Code::AppendNoValues),
        "{rep}"
    );
}

/// A quoted list item is a quoted string once Falco pastes it into the condition:
/// libsinsp's escapes apply, and an escape it refuses fails the rules using the list.
#[test]
fn quoted_list_items_follow_the_escape_rules() {
    let f = "- list: l\n  items: ['\"a\\x41\"', '\"b\\d\"']\n- rule: R\n  desc: d\n  condition: evt.type = execve and proc.name in (l)\n  output: o\n  priority: INFO\n";
    let (rs, rep) = load(&[f]);
    assert_eq!(rs.rules().len(), 0);
    let text = rep.to_string();
    assert!(
        text.contains("unsupported string escape sequence: \\d") && text.contains("f0.yaml:2:"),
        "{text}"
    );
    let f = "- list: l\n  items: ['\"a\\x41\"']\n- rule: R\n  desc: d\n  condition: evt.type = execve and proc.name in (l)\n  output: o\n  priority: INFO\n";
    let (rs, rep) = load(&[f]);
    assert!(!rep.has_errors(), "{rep}");
    assert_eq!(names(&rs, &exec("aA", &[])), ["R"]);
}
