//! Per-rule fixtures: for every stable rule (and a dozen incubating/sandbox
//! rules) a hand-written event that fires it and a near miss that does not;
//! the seed scenarios; and the same stable fixtures against our own default
//! ruleset.
//!
//! Fixture lines are ordinary event JSON lines (replayable with
//! `falco-learn replay`) carrying an extra `expect` object, which the event
//! model ignores. The alerts of firing events are compared in full (output
//! line and output fields) with the golden files `*.alerts.jsonl`; set
//! `FALCO_LEARN_UPDATE_GOLDEN=1` to rewrite them after an intended change and
//! review the diff.

use falco_learn_event::Event;
use falco_learn_rules::{Alert, Ruleset};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn upstream(file: &str) -> PathBuf {
    manifest().join("../../shared/falco-rules").join(file)
}

fn default_rules() -> PathBuf {
    manifest().join("default/falco-learn_rules.yaml")
}

fn fixture(name: &str) -> PathBuf {
    manifest().join("tests/fixtures").join(name)
}

struct Case {
    line: usize,
    expect: serde_json::Value,
    event: Event,
}

fn cases(name: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(fixture(name)).expect("fixture readable");
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: serde_json::Value = serde_json::from_str(l).expect("fixture line is JSON");
            let event: Event = serde_json::from_value(v.clone()).expect("fixture line is an event");
            Case {
                line: i + 1,
                expect: v["expect"].clone(),
                event,
            }
        })
        .collect()
}

fn load(paths: &[PathBuf]) -> Ruleset {
    let (rs, report) = Ruleset::load_files(paths);
    assert!(report.errors.is_empty(), "{report}");
    rs
}

/// Check fire / no-fire for each case, and compare the alerts of firing
/// cases with the golden file.
fn check_cases(rs: &Ruleset, fixture_name: &str, golden: &str) -> usize {
    let mut alerts: Vec<Alert> = Vec::new();
    let mut failures = Vec::new();
    for c in cases(fixture_name) {
        let rule = c.expect["rule"].as_str().expect("expect.rule");
        let fires = c.expect["fires"].as_bool().expect("expect.fires");
        assert!(
            rs.rules().iter().any(|r| r.name == rule),
            "{fixture_name}:{}: no rule named '{rule}' loaded",
            c.line
        );
        let matched: Vec<_> = rs.matching(&c.event);
        let hit = matched.iter().find(|r| r.name == rule);
        match (fires, hit) {
            (true, Some(r)) => alerts.push(r.alert(&c.event)),
            (false, None) => {}
            (true, None) => {
                failures.push(format!("{fixture_name}:{}: '{rule}' did not fire", c.line))
            }
            (false, Some(_)) => failures.push(format!(
                "{fixture_name}:{}: '{rule}' fired on its near miss",
                c.line
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    compare_golden(&fixture(golden), &alerts);
    alerts.len()
}

fn compare_golden(path: &Path, alerts: &[Alert]) {
    let actual: Vec<String> = alerts
        .iter()
        .map(|a| serde_json::to_string(a).expect("alert serialises"))
        .collect();
    if std::env::var_os("FALCO_LEARN_UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual.join("\n") + "\n").expect("golden writable");
        return;
    }
    let text = std::fs::read_to_string(path)
        .expect("golden file present (FALCO_LEARN_UPDATE_GOLDEN=1 creates it)");
    let expected: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        expected.len(),
        actual.len(),
        "{}: alert count",
        path.display()
    );
    for (e, a) in expected.iter().zip(&actual) {
        let ev: serde_json::Value = serde_json::from_str(e).expect("golden JSON");
        let av: serde_json::Value = serde_json::from_str(a).expect("alert JSON");
        assert_eq!(ev["rule"], av["rule"]);
        assert_eq!(
            ev["output"], av["output"],
            "output line of '{}'",
            av["rule"]
        );
        assert_eq!(
            ev["output_fields"], av["output_fields"],
            "fields of '{}'",
            av["rule"]
        );
        assert_eq!(ev, av);
    }
}

#[test]
fn every_stable_rule_has_a_firing_fixture_and_a_near_miss() {
    let rs = load(&[upstream("falco_rules.yaml")]);
    let stable: BTreeSet<String> = rs.rules().iter().map(|r| r.name.clone()).collect();
    assert_eq!(stable.len(), 25);
    let mut fired = BTreeSet::new();
    let mut missed = BTreeSet::new();
    for c in cases("stable.jsonl") {
        let rule = c.expect["rule"].as_str().unwrap_or_default().to_string();
        if c.expect["fires"].as_bool() == Some(true) {
            fired.insert(rule);
        } else {
            missed.insert(rule);
        }
    }
    assert_eq!(fired, stable, "every stable rule has a firing fixture");
    assert_eq!(missed, stable, "every stable rule has a near miss");
    let n = check_cases(&rs, "stable.jsonl", "stable.alerts.jsonl");
    assert_eq!(n, 25);
}

#[test]
fn incubating_and_sandbox_rules_fire_on_their_fixtures() {
    let rs = load(&[
        upstream("falco_rules.yaml"),
        upstream("falco-incubating_rules.yaml"),
        upstream("falco-sandbox_rules.yaml"),
    ]);
    let n = check_cases(
        &rs,
        "incubating_sandbox.jsonl",
        "incubating_sandbox.alerts.jsonl",
    );
    assert!(n >= 12, "{n}");
}

#[test]
fn seed_scenarios_against_the_stable_rules() {
    let rs = load(&[upstream("falco_rules.yaml")]);
    let mut alerts = Vec::new();
    for c in cases("seed.jsonl") {
        let want: BTreeSet<String> = c.expect["stable_rules"]
            .as_array()
            .expect("stable_rules")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let got: BTreeSet<String> = rs
            .matching(&c.event)
            .iter()
            .map(|r| r.name.clone())
            .collect();
        assert_eq!(got, want, "scenario {}", c.expect["scenario"]);
        for r in rs.matching(&c.event) {
            alerts.push(r.alert(&c.event));
        }
    }
    assert_eq!(alerts.len(), 3);
    compare_golden(&fixture("seed.alerts.jsonl"), &alerts);
}

#[test]
fn default_ruleset_passes_the_stable_fixtures() {
    let rs = load(&[default_rules()]);
    let n = check_cases(&rs, "stable.jsonl", "stable.default_alerts.jsonl");
    assert_eq!(n, 25);
    // The seed scenarios behave the same with our ruleset.
    for c in cases("seed.jsonl") {
        let want: BTreeSet<String> = c.expect["stable_rules"]
            .as_array()
            .expect("stable_rules")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let got: BTreeSet<String> = rs
            .matching(&c.event)
            .iter()
            .map(|r| r.name.clone())
            .collect();
        assert_eq!(got, want, "scenario {}", c.expect["scenario"]);
    }
}

/// The kernel's open filters never hide an event a rule fires on: for every firing fixture
/// that is an open, the plan of its kind (read-only or write) reports it, under Falco's
/// stable rules, the incubating and sandbox ones, and our default ruleset.
#[test]
fn the_kernel_open_plans_report_every_open_a_rule_fires_on() {
    use falco_learn_event::{Args, EventType};
    use falco_learn_rules::kernel_plan::Access;
    let sets: Vec<(Vec<PathBuf>, &str)> = vec![
        (vec![upstream("falco_rules.yaml")], "stable.jsonl"),
        (vec![default_rules()], "stable.jsonl"),
        (
            vec![
                upstream("falco_rules.yaml"),
                upstream("falco-incubating_rules.yaml"),
                upstream("falco-sandbox_rules.yaml"),
            ],
            "incubating_sandbox.jsonl",
        ),
        (vec![upstream("falco_rules.yaml")], "seed.jsonl"),
    ];
    let mut checked = 0;
    for (files, fixture_name) in sets {
        let rs = load(&files);
        for c in cases(fixture_name) {
            let t = c.event.event_type();
            if !matches!(
                t,
                EventType::Open | EventType::Openat | EventType::Openat2 | EventType::Creat
            ) || rs.matching(&c.event).is_empty()
            {
                continue;
            }
            let read_only = match (&c.event.args, t) {
                (_, EventType::Creat) => false,
                (Args::Open { flags, .. }, _) => flags & 3 == 0 && flags & 0o1100 == 0,
                _ => false,
            };
            let access = if read_only {
                Access::Read
            } else {
                Access::Write
            };
            let fd = c.event.fd.clone().unwrap_or_default();
            let passed = match &c.event.args {
                Args::Open { name, .. } if !name.is_empty() => name.clone(),
                _ => fd.name.clone(),
            };
            let plan = rs.open_plan(access);
            assert!(
                plan.reports(&fd.name, &passed),
                "{fixture_name}:{}: {access:?} open of {} (passed {passed}) fires {:?} but the \
                 kernel plan drops it: {plan:?}",
                c.line,
                fd.name,
                rs.matching(&c.event)
                    .iter()
                    .map(|r| r.name.clone())
                    .collect::<Vec<_>>()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "only {checked} firing opens among the fixtures"
    );
}
