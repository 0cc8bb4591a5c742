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

/// A profile whose every dimension holds awkward values: spaces, both quote kinds,
/// backslashes, glob characters, non-ASCII, newline and tab, a trailing `:`, IPv6 peers.
const AWKWARD_PROFILE: &str = r#"schema_version: 1
image:
  repository: example.org/awk-ward
  tag: "1.0"
learning:
  started: 2026-11-22T02:13:25.073060980Z
  ended: 2026-11-22T02:13:25.087216353Z
  containers: 1
  events: 9
exec:
  - { path: "/usr/bin/with space", count: 1 }
  - { path: "/usr/bin/q'uote", count: 1 }
  - { path: "/usr/bin/d\"quote", count: 1 }
  - { path: "/usr/bin/back\\\\slash", count: 1 }
  - { path: "/usr/bin/[x]*?", count: 1 }
  - { path: "/opt/ünï/日本", count: 1 }
  - { path: "/tmp/a\nb\tc", count: 1 }
  - { path: "memfd:payload", count: 1 }
  - { path: "memfd:", count: 1 }
network:
  outbound:
    - { proto: tcp, port: 443, peers: ["2001:db8::1", "::1", 10.0.0.0/8] }
    - { proto: udp, port: 53, peers: ["fe80::/10"] }
files:
  write:
    - { path: "/var/a dir/with, comma", count: 1 }
    - { path: "/srv/[a]/x*", count: 1 }
    - { path: "/srv/quote'n\"both", count: 1 }
    - { path: "/data/ü/\\\\x/tab\there", count: 1 }
"#;

/// Every generated rules file passes `rules check --strict` (Falco's schema and Falco's
/// own load warnings), alone and after the upstream stable rules: the committed profiles
/// and a profile of awkward values.
#[test]
fn generated_rules_pass_the_strict_check() {
    let dir = std::env::temp_dir().join(format!("fl-cli-strict-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let awkward = dir.join("awkward.yaml");
    std::fs::write(&awkward, AWKWARD_PROFILE).expect("write profile");
    let mut profiles: Vec<std::path::PathBuf> = std::fs::read_dir(repo("profiles"))
        .expect("profiles/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    profiles.sort();
    assert!(!profiles.is_empty(), "no committed profiles");
    profiles.push(awkward);
    let out_dir = dir.join("rules");
    let stable = repo("../shared/falco-rules/falco_rules.yaml");
    for p in &profiles {
        let out = bin()
            .args(["rules", "generate"])
            .arg(p)
            .arg("-o")
            .arg(&out_dir)
            .output()
            .expect("run generate");
        assert!(
            out.status.success(),
            "generate {}: {}{}",
            p.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut generated: Vec<std::path::PathBuf> = std::fs::read_dir(&out_dir)
        .expect("generated dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    generated.sort();
    assert_eq!(generated.len(), profiles.len(), "{generated:?}");
    for g in &generated {
        let mut sets = vec![vec![g.display().to_string()]];
        if std::path::Path::new(&stable).exists() {
            sets.push(vec![stable.clone(), g.display().to_string()]);
        } else {
            assert!(std::env::var_os("CI").is_none(), "{stable} missing in CI");
            eprintln!("SKIPPED: {stable} missing: generated rules checked alone only");
        }
        for files in sets {
            let out = bin()
                .args(["rules", "check", "--strict"])
                .args(&files)
                .output()
                .expect("run check");
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(0), "{files:?}:\n{text}");
            // after the stable rules, one warning is theirs: fd.sip.name, never filled; the
            // write allowlist keeps the kernel's write filter off (by design: it is about
            // every write outside the list), and that is the only other warning
            let off: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("LOAD_KERNEL_FILTER_OFF"))
                .collect();
            assert!(
                off.len() == 1
                    && off[0].contains("every write-open")
                    && off[0].contains("(in rule 'Unexpected file write in "),
                "{files:?}:\n{text}"
            );
            let load = format!("; 0 errors, {} warnings", files.len() - 1 + off.len());
            assert!(
                text.contains(&load)
                    && text.contains("strict: 0 problem(s) stock Falco would reject or warn about"),
                "{files:?}:\n{text}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn strict_check_fails_on_what_falco_rejects_and_names_it() {
    let dir = std::env::temp_dir().join(format!("fl-cli-strict-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let f = dir.join("r.yaml");
    std::fs::write(
        &f,
        "- rule: R\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n  \
         exceptions:\n    - name: e\n      fields: [proc.name]\n      value: [x]\n",
    )
    .expect("write");
    // without --strict: the load warns and succeeds
    let out = bin()
        .args(["rules", "check"])
        .arg(&f)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let out = bin()
        .args(["rules", "check", "--strict"])
        .arg(&f)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let strict: Vec<&str> = text.lines().filter(|l| l.starts_with("[S")).collect();
    assert_eq!(
        strict,
        [format!(
            "[S1] {}:9:7: error LOAD_ERR_YAML_VALIDATE: schema: unknown key 'value' in an \
             exception (allowed: name, fields, comps, values) (in rule 'R')",
            f.display()
        )],
        "{text}"
    );
    assert!(
        text.contains("strict: 1 problem(s) stock Falco would reject or warn about"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
