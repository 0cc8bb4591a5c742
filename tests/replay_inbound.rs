//! Issue 9 §6 through the CLI: learn the servers' replay fixtures
//! (`profiler/tests/fixtures/{udp,tcp}_server.jsonl`: a UDP server answering
//! 100 client ports, a TCP server accepting 60 clients over IPv4 and IPv6),
//! export, generate rules (stock Falco takes them: `rules check --strict`), and
//! replay with the agent: zero alerts for the recordings, exactly one
//! "Unexpected inbound connection" for an accept on a port never served.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_falco-learn"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("profiler/tests/fixtures")
        .join(name)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("falco-learn runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn servers_learned_from_replay_raise_only_unexpected_inbound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    for f in ["udp_server.jsonl", "tcp_server.jsonl"] {
        run(bin()
            .args(["--log", "warn", "learn", "--image", "nginx", "--from"])
            .arg(fixture(f))
            .arg("--store")
            .arg(&store));
    }
    run(bin()
        .current_dir(dir.path())
        .args([
            "--log", "warn", "profiles", "export", "--dir", "profiles", "--store",
        ])
        .arg(&store));
    let yaml = std::fs::read_to_string(dir.path().join("profiles/nginx_1.27.yaml"))
        .expect("exported profile");
    assert!(yaml.contains("  outbound: []\n"), "{yaml}");
    assert!(
        yaml.contains("\n    - { proto: tcp, port: 80, count: 30,")
            && yaml.contains("\n    - { proto: tcp, port: 443, count: 30,")
            && yaml.contains("\n    - { proto: udp, port: 53, count: 100,"),
        "{yaml}"
    );
    run(bin()
        .current_dir(dir.path())
        .args(["--log", "warn", "rules", "generate", "--all", "--store"])
        .arg(&store));
    let rules = dir.path().join("rules/learned/nginx_1.27.yaml");
    let check = run(bin()
        .args(["--log", "warn", "rules", "check", "--strict"])
        .arg(&rules));
    assert!(
        check.contains("strict: 0 problem(s) stock Falco would reject or warn about"),
        "{check}"
    );

    let replay = |events: &Path| {
        run(bin()
            .args(["--log", "warn", "replay", "--profiles"])
            .arg(dir.path().join("profiles"))
            .arg("-r")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/default/falco-learn_rules.yaml"))
            .arg(events))
    };
    for f in ["udp_server.jsonl", "tcp_server.jsonl"] {
        let out = replay(&fixture(f));
        assert!(out.trim().lines().all(|l| !l.starts_with('{')), "{out}");
    }
    // the same server accepting on a port it never served
    let first = std::fs::read_to_string(fixture("tcp_server.jsonl")).expect("fixture");
    let line = first.lines().next().expect("an event");
    assert!(line.contains("\"sport\":80,"), "{line}");
    let other = dir.path().join("other.jsonl");
    std::fs::write(
        &other,
        line.replace("\"sport\":80,", "\"sport\":8443,") + "\n",
    )
    .expect("write");
    let out = replay(&other);
    let alerts: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("alert JSON"))
        .collect();
    assert_eq!(alerts.len(), 1, "{out}");
    assert_eq!(
        alerts[0]["rule"],
        "Unexpected inbound connection in docker.io/library/nginx:1.27 (falco-learn)"
    );
    assert_eq!(
        alerts[0]["output"],
        "00:06:40.000000000: Warning Unexpected inbound connection to learned image \
         (connection=198.51.100.1:33000->192.0.2.10:8443 proto=tcp port=8443 \
         client=198.51.100.1 exe=/usr/sbin/nginx cmdline=<NA> container=c1 name=<NA> \
         image=docker.io/library/nginx tag=1.27)"
    );
}
