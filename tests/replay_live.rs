//! Offline enforcement equals the live agent (issue 12), as root, with the
//! real probe and a real containerd container:
//!
//! 1. `falco-learn run --mode enforce-alert --profiles DIR --record rec.jsonl`
//!    runs (default rules + a profile that allows only `/bin/busybox`) while a
//!    busybox container writes and reads `/etc/shadow`, runs a copied binary
//!    and connects to a loopback listener;
//! 2. `falco-learn replay --profiles DIR rec.jsonl` with the same configuration
//!    prints exactly the alerts the live agent printed (rule, priority, output
//!    fields, output, tags, and the time, which comes from the event), default
//!    rules and profile anomalies alike, in the same order.
//!
//! Needs root, containerd and ctr (CI: `.ci/setup`); elsewhere a loud SKIP.

mod common;
use falco_learn_test_support as support;

use common::Agent;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{busybox_rootfs, ctr_sh, may_run, Containerd, CtrContainer, CtrImage};

const IMAGE: &str = "docker.io/library/fl-replay:test";

/// The JSON alerts in `lines` (drop alerts, which a recording cannot
/// reproduce, are none here: asserted).
fn alerts(lines: &[String]) -> Vec<serde_json::Value> {
    let v: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON alert: {l}: {e}")))
        .collect();
    assert!(
        v.iter().all(|a| a["source"] != "internal"),
        "the live run dropped events: {v:#?}"
    );
    v
}

#[test]
fn replaying_a_live_recording_raises_the_live_alerts() {
    if !may_run("the live-vs-replay test", &["containerd", "ctr"]) {
        return;
    }
    let _daemon = Containerd::start();
    let rootfs = busybox_rootfs("replay-live");
    let image = CtrImage::import(IMAGE, &rootfs);

    let dir = tempfile::tempdir().expect("tmp");
    let profiles = dir.path().join("profiles");
    std::fs::create_dir_all(&profiles).expect("mkdir");
    support::write_profile(
        &profiles,
        "docker.io/library/fl-replay",
        "test",
        &["/bin/busybox"],
    );
    let rec = dir.path().join("rec.jsonl");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            drop(c);
        }
    });

    let profiles_s = profiles.display().to_string();
    let rec_s = rec.display().to_string();
    let mut agent = Agent::run(
        "run: ",
        &[
            "--mode",
            "enforce-alert",
            "--profiles",
            &profiles_s,
            "--record",
            &rec_s,
            "-o",
            "metrics.enabled=false",
        ],
    );
    let name = format!("fl-replay-{}", std::process::id());
    let _c = CtrContainer::run(&image.reference, &name, &[], &["/bin/sleep", "60"]);
    for (id, script) in [
        ("shadow", "echo x > /etc/shadow; cat /etc/shadow"),
        (
            "drop",
            "/bin/busybox cp /bin/busybox /tmp/true && /tmp/true && echo ran",
        ),
        (
            "connect",
            &format!("/bin/busybox nc -w 1 127.0.0.1 {port} </dev/null; echo done"),
        ),
    ] {
        let (out, code) = ctr_sh(&name, id, script);
        assert_eq!(code, 0, "{id}: {out}");
    }
    // the agent evaluates asynchronously: wait for the last scenario's anomaly
    let deadline = Instant::now() + Duration::from_secs(20);
    while !agent
        .stdout_lines()
        .iter()
        .any(|l| l.contains("Unexpected outbound connection in docker.io/library/fl-replay:test"))
    {
        assert!(
            Instant::now() < deadline,
            "no outbound anomaly alert:\n{}\n{}",
            agent.stdout_lines().join("\n"),
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    agent.terminate(30);
    let live = alerts(&agent.stdout_lines());

    let out = Command::new(env!("CARGO_BIN_EXE_falco-learn"))
        .args([
            "replay",
            "--profiles",
            &profiles_s,
            "-o",
            "metrics.enabled=false",
            &rec_s,
        ])
        .env_remove("FALCO_LEARN_LOG")
        .output()
        .expect("replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed = alerts(
        &String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>(),
    );
    // equal times too: the replay, run later, times each alert by its event
    assert_eq!(live, replayed);

    // and they are the scenario's: each of the container's expected alerts is there
    let of_container: Vec<(String, String)> = live
        .iter()
        .filter(|a| a["output_fields"]["container.id"] == name.as_str())
        .map(|a| {
            (
                a["rule"].as_str().unwrap_or_default().to_string(),
                a["priority"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for want in [
        ("Read sensitive file untrusted", "Warning"),
        ("Drop and execute new binary in container", "Critical"),
        (
            "Unexpected process in docker.io/library/fl-replay:test (falco-learn)",
            "Warning",
        ),
        (
            "Unexpected file write in docker.io/library/fl-replay:test (falco-learn)",
            "Warning",
        ),
        (
            "Unexpected outbound connection in docker.io/library/fl-replay:test (falco-learn)",
            "Warning",
        ),
    ] {
        assert!(
            of_container
                .iter()
                .any(|(r, p)| (r.as_str(), p.as_str()) == want),
            "no {want:?} in {of_container:#?}"
        );
    }
}
