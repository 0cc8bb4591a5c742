//! The Grafana dashboard (dashboards/falco-learn.json) against the real agent:
//! every metric it queries is one falco-learn exports, and — as root, with the
//! Debian `prometheus` package — a real Prometheus scraping a running
//! `falco-learn run` on loopback answers every query of the dashboard with data.

mod common;

use common::{free_port, Agent};
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn dashboard() -> serde_json::Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dashboards/falco-learn.json"
    ))
    .expect("read dashboards/falco-learn.json");
    serde_json::from_str(&text).expect("dashboard is JSON")
}

fn exprs(d: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            out.push((
                p["title"].as_str().unwrap_or_default().to_string(),
                t["expr"].as_str().expect("expr").to_string(),
            ));
        }
    }
    out
}

fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("falco_learn_") {
        let start = i + pos;
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        let mut n = &expr[start..end];
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(s) = n.strip_suffix(suffix) {
                n = s;
            }
        }
        names.push(n.to_string());
        i = end;
    }
    names
}

#[test]
fn every_queried_metric_is_exported() {
    let d = dashboard();
    let all = exprs(&d);
    assert!(all.len() >= 12, "dashboard has {} queries", all.len());
    for (title, e) in &all {
        let names = metric_names(e);
        assert!(
            !names.is_empty(),
            "panel {title:?}: no falco_learn metric in {e}"
        );
        for n in names {
            assert!(
                falco_learn_enforcer::metrics::find(&n).is_some(),
                "panel {title:?} queries {n}, which falco-learn does not export"
            );
        }
    }
}

fn http_get(port: u16, path_and_query: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "GET {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn prometheus_answers_every_dashboard_query() {
    // SAFETY: no preconditions.
    let root = unsafe { libc::geteuid() == 0 };
    let have_prom = Command::new("prometheus")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !root || !have_prom {
        if std::env::var_os("CI").is_some() {
            panic!("CI must run the Prometheus dashboard test (root: {root}, prometheus installed: {have_prom})");
        }
        eprintln!("\n!!!!! SKIPPED: the Prometheus dashboard test needs root and the prometheus package !!!!!\n");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let profiles = dir.path().join("profiles");
    std::fs::create_dir_all(&profiles).expect("mkdir");
    let mut p = falco_learn_profiler::Profile::new(falco_learn_profiler::ImageRef::new("host", ""));
    p.learn_exec("/usr/bin/cat", false, 1_000_000_000);
    p.learning.started = 1_000_000_000;
    p.learning.ended = 2_000_000_000;
    p.learning.last_new_behaviour = 1_000_000_000;
    p.learning.events = 1;
    p.learning.containers = 1;
    std::fs::write(
        profiles.join("host.yaml"),
        falco_learn_profiler::to_yaml(&p),
    )
    .expect("profile");

    let metrics_port = free_port();
    let profiles_s = profiles.display().to_string();
    let metrics_o = format!("metrics.listen=127.0.0.1:{metrics_port}");
    let file_o = format!(
        "outputs.file.filename={}",
        dir.path().join("alerts.jsonl").display()
    );
    let agent = Agent::run(
        "run: ",
        &[
            "--profiles",
            &profiles_s,
            "-o",
            "profiles.host_image=host",
            "-o",
            "outputs.stdout.enabled=false",
            "-o",
            &metrics_o,
            "-o",
            "outputs.file.enabled=true",
            "-o",
            &file_o,
        ],
    );

    let prom_port = free_port();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: falco-learn\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .expect("prometheus.yml");
    let prom = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let _prom = Kill(prom);

    // behaviour for every panel: a default-rule hit, a profile anomaly, plain events
    for _ in 0..3 {
        let _ = Command::new("/usr/bin/cat")
            .arg("/etc/shadow")
            .stdout(Stdio::null())
            .status();
        let _ = Command::new("/bin/true").status();
        std::thread::sleep(Duration::from_secs(2));
    }
    // wait until Prometheus has a few scrapes of the agent
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = http_get(
            prom_port,
            &format!(
                "/api/v1/query?query={}",
                urlencode("count_over_time(up{job=\"falco-learn\"}[1m])")
            ),
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let n = v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
        if n >= 5.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape the agent: {body}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut failures = Vec::new();
    for (title, e) in exprs(&dashboard()) {
        let body = http_get(prom_port, &format!("/api/v1/query?query={}", urlencode(&e)));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let ok = v["status"] == "success"
            && v["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty());
        if !ok {
            failures.push(format!("{title}: {e} → {body}"));
        }
    }
    drop(agent);
    assert!(
        failures.is_empty(),
        "queries without data:\n{}",
        failures.join("\n")
    );
}
