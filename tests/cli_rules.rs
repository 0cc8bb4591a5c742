//! `falco-learn rules check`, `fields` and `replay --rules` end to end on the
//! committed fixtures (no root, no eBPF).

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_falco-learn"))
}

fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn rules_check_reports_every_problem_and_fails() {
    let dir = std::env::temp_dir().join(format!("fl-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "- rule: R\n  desc: d\n  condition: evt.type = execve and proc.nmae = x\n  output: o\n  priority: INFO\n- rule: S\n  desc: d\n  condition: evt.type = execve and (\n  output: o\n  priority: INFO\n",
    )
    .expect("write");
    let out = bin()
        .args(["rules", "check"])
        .arg(&bad)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("[E1]") && text.contains("[E2]"), "{text}");
    assert!(text.contains("bad.yaml:3:36"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);

    let out = bin()
        .args([
            "rules",
            "check",
            &repo("rules/default/falco-learn_rules.yaml"),
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn replay_with_rules_prints_falco_json_alerts() {
    let out = bin()
        .args([
            "replay",
            "-r",
            &repo("rules/default/falco-learn_rules.yaml"),
            &repo("rules/tests/fixtures/seed.jsonl"),
        ])
        .output()
        .expect("run");
    assert!(out.status.success());
    let alerts: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON alert"))
        .collect();
    let rules: Vec<&str> = alerts.iter().filter_map(|a| a["rule"].as_str()).collect();
    assert_eq!(
        rules,
        [
            "Terminal shell in container",
            "Drop and execute new binary in container",
            "Disallowed SSH Connection Non Standard Port"
        ]
    );
    for a in &alerts {
        for key in [
            "time",
            "priority",
            "source",
            "hostname",
            "output",
            "output_fields",
            "tags",
        ] {
            assert!(a.get(key).is_some(), "{key} missing in {a}");
        }
        assert_eq!(a["source"], "syscall");
        assert!(a["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}

#[test]
fn replay_without_rules_echoes_or_counts() {
    let out = bin()
        .args([
            "replay",
            "--count",
            &repo("rules/tests/fixtures/seed.jsonl"),
        ])
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");
    let out = bin()
        .args(["replay", &repo("rules/tests/fixtures/seed.jsonl")])
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 5);
}

#[test]
fn fields_lists_the_catalogue() {
    let out = bin()
        .args(["fields", "--prefix", "fd."])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.starts_with("fd.sport")), "{text}");
    assert!(text.lines().all(|l| l.starts_with("fd.")), "{text}");
}

/// Falco's `rule_matching`: replay alerts only the first matching rule per event unless
/// `--rule-matching all`.
#[test]
fn replay_alerts_the_first_matching_rule_unless_all() {
    let dir = tempfile::tempdir().expect("tmp");
    let rules = dir.path().join("two.yaml");
    std::fs::write(
        &rules,
        concat!(
            "- rule: A\n  desc: d\n  condition: evt.type in (execve, connect, openat)\n",
            "  output: a\n  priority: INFO\n",
            "- rule: B\n  desc: d\n  condition: evt.type in (execve, connect, openat)\n",
            "  output: b\n  priority: INFO\n",
        ),
    )
    .expect("write");
    let seed = repo("rules/tests/fixtures/seed.jsonl");
    let rules_of = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["replay", "-r", rules.to_str().expect("utf-8")];
        args.extend_from_slice(extra);
        args.push(&seed);
        let out = bin().args(&args).output().expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("alert");
                v["rule"].as_str().unwrap_or_default().to_string()
            })
            .collect()
    };
    let first = rules_of(&[]);
    assert!(
        !first.is_empty() && first.iter().all(|r| r == "A"),
        "{first:?}"
    );
    let all = rules_of(&["--rule-matching", "all"]);
    assert_eq!(all.len(), 2 * first.len(), "{all:?}");
    assert_eq!(rules_of(&["--rule-matching", "first"]), first);
}
