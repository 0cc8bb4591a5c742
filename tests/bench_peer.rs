//! `falco-learn bench probe --peer CMD`: every loop also runs under another agent started
//! as a command, and that agent's whole process group is stopped after each run. Falco is
//! not available here, so the peer is a stand-in that records its pid and waits; what is
//! tested is the harness: the peer's line, its start, settle and stop, and a clear error
//! when the peer does not stay up.

mod common;

use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_falco-learn"))
        .args(["--log", "warn", "bench", "probe", "--loop", "getppid"])
        .args(["--rounds", "1", "--scale", "0.01"])
        .args(args)
        .output()
        .expect("run falco-learn bench probe")
}

#[test]
fn every_loop_also_runs_under_the_peer_which_is_stopped_after() {
    if common::skip_without_root("bench probe --peer") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let pids = dir.path().join("peer.pids");
    // the peer's shell forks a child and waits: both are in the group the bench stops
    let peer = format!(
        "echo $$ >> {0}; sleep 300 & echo $! >> {0}; wait",
        pids.display()
    );
    let out = bench(&["--peer", &peer, "--peer-settle", "300ms"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header = format!("the same loops under the peer ({peer}), alone");
    let after: Vec<&str> = stdout
        .split(header.as_str())
        .nth(1)
        .unwrap_or_else(|| panic!("no peer section:\n{stdout}"))
        .lines()
        .filter(|l| l.starts_with("getppid (no handler)"))
        .collect();
    assert_eq!(after.len(), 1, "{stdout}");
    // label, ns/op off, ns/op under the peer, ratio
    let cols: Vec<&str> = after[0]
        .trim_start_matches("getppid (no handler)")
        .split_whitespace()
        .collect();
    assert!(cols.len() >= 3 && cols[2].ends_with('x'), "{}", after[0]);
    let ratio: f64 = cols[2].trim_end_matches('x').parse().expect("ratio");
    assert!(ratio > 0.0, "{}", after[0]);
    // the peer ran once (one round) and none of its processes is left
    let recorded = std::fs::read_to_string(&pids).expect("the peer ran");
    let recorded: Vec<&str> = recorded.lines().collect();
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    for pid in recorded {
        assert!(
            !std::path::Path::new("/proc").join(pid).exists(),
            "peer process {pid} still runs"
        );
    }
}

#[test]
fn a_peer_that_exits_at_once_is_a_clear_error() {
    if common::skip_without_root("bench probe --peer") {
        return;
    }
    let out = bench(&["--peer", "exit 3", "--peer-settle", "200ms"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--peer \"exit 3\" exited during its settle time (exit status: 3)"),
        "{stderr}"
    );
}
