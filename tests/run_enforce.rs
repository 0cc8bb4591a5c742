//! End to end, as root: `falco-learn run --mode enforce-alert` with the real
//! probe, every output enabled (stdout, file, HTTP to a local listener,
//! program) and a host profile. Triggers a default-rule hit (`cat /etc/shadow`)
//! and an exec from /dev/shm (a default-rule hit *and* a profile anomaly), then
//! checks the exact alerts on every output and that the metrics endpoint
//! exports its families and they move.

mod common;

use common::{free_port, lock, scrape, skip_without_root as skip, Agent};
use falco_learn_test_support::spawn_retrying;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A tiny HTTP sink: records every POST body, answers 200 and closes.
fn http_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let b2 = bodies.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let mut r = BufReader::new(match s.try_clone() {
                Ok(c) => c,
                Err(_) => continue,
            });
            let mut first = String::new();
            if r.read_line(&mut first).is_err() {
                continue;
            }
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_ok() && first.starts_with("POST ") {
                lock(&b2).push(String::from_utf8_lossy(&body).into_owned());
            }
            let mut s = s;
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (port, bodies)
}

/// A syslog daemon stand-in: a datagram socket at `path`, every message kept.
fn syslog_sink(path: &Path) -> Arc<Mutex<Vec<String>>> {
    let sock = std::os::unix::net::UnixDatagram::bind(path).expect("bind syslog socket");
    let msgs = Arc::new(Mutex::new(Vec::new()));
    let m2 = msgs.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = sock.recv(&mut buf) {
            lock(&m2).push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    msgs
}

/// `<PRI>Mmm dd hh:mm:ss falco-learn[PID]: {json}` → (PRI, PID, alert).
fn parse_syslog(msg: &str) -> Option<(u32, u32, serde_json::Value)> {
    let rest = msg.strip_prefix('<')?;
    let (pri, rest) = rest.split_once('>')?;
    let (_, rest) = rest.split_once(" falco-learn[")?;
    let (pid, json) = rest.split_once("]: ")?;
    Some((
        pri.parse().ok()?,
        pid.parse().ok()?,
        serde_json::from_str(json).ok()?,
    ))
}

/// Sum of all samples of a metric family (all label sets).
fn family_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn alerts_in(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn find<'a>(
    alerts: &'a [serde_json::Value],
    rule: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Option<&'a serde_json::Value> {
    alerts.iter().find(|a| a["rule"] == rule && pred(a))
}

#[test]
fn enforce_alert_on_every_output_with_metrics() {
    if skip("the enforce-alert end-to-end test") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    // a host profile: cat and sh are known, nothing else
    let profiles = dir.path().join("profiles");
    std::fs::create_dir_all(&profiles).expect("mkdir");
    let mut p = falco_learn_profiler::Profile::new(falco_learn_profiler::ImageRef::new("host", ""));
    for exe in ["/usr/bin/cat", "/usr/bin/dash", "/usr/bin/bash"] {
        p.learn_exec(exe, false, 1);
    }
    std::fs::write(
        profiles.join("host.yaml"),
        falco_learn_profiler::to_yaml(&p),
    )
    .expect("write profile");

    let (http_port, bodies) = http_sink();
    let metrics_port = free_port();
    let file_out = dir.path().join("alerts.jsonl");
    let prog_out = dir.path().join("program.jsonl");
    let profiles_s = profiles.display().to_string();
    let metrics_o = format!("metrics.listen=127.0.0.1:{metrics_port}");
    let file_o = format!("outputs.file.filename={}", file_out.display());
    let http_o = format!("outputs.http.url=http://127.0.0.1:{http_port}/");
    let prog_o = format!("outputs.program.program=cat >> {}", prog_out.display());
    let syslog_path = dir.path().join("log.sock");
    let syslog_msgs = syslog_sink(&syslog_path);
    let syslog_o = format!("outputs.syslog.socket={}", syslog_path.display());
    let mut agent = Agent::run(
        "run: ",
        &[
            "--mode",
            "enforce-alert",
            "--profiles",
            &profiles_s,
            "-o",
            "profiles.host_image=host",
            "-o",
            &metrics_o,
            "-o",
            "outputs.file.enabled=true",
            "-o",
            &file_o,
            "-o",
            "outputs.http.enabled=true",
            "-o",
            &http_o,
            "-o",
            "outputs.program.enabled=true",
            "-o",
            "outputs.program.keep_alive=true",
            "-o",
            &prog_o,
            "-o",
            "outputs.syslog.enabled=true",
            "-o",
            &syslog_o,
        ],
    );
    let agent_pid = agent.child.id();
    let m1 = scrape(metrics_port);

    // (1) a default-rule hit: an untrusted program reads /etc/shadow
    let cat = Command::new("/usr/bin/cat")
        .arg("/etc/shadow")
        .stdout(Stdio::null())
        .spawn()
        .expect("cat");
    let cat_pid = cat.id();
    let _ = cat.wait_with_output();
    // (2) exec from /dev/shm: a default-rule hit and a host-profile anomaly
    let shm = Path::new("/dev/shm").join(format!("fl-e2e-{}", std::process::id()));
    std::fs::copy("/bin/true", &shm).expect("copy");
    let shm_pid = {
        let mut c = spawn_retrying(&mut Command::new(&shm));
        let _ = c.wait();
        c.id()
    };
    let _ = std::fs::remove_file(&shm);
    std::thread::sleep(Duration::from_secs(2));
    let m2 = scrape(metrics_port);

    // SIGTERM drains
    agent.terminate(30);

    let shm_path = shm.display().to_string();
    let outputs: Vec<(&str, Vec<serde_json::Value>)> = vec![
        (
            "stdout",
            agent
                .stdout_lines()
                .iter()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect(),
        ),
        (
            "file",
            alerts_in(&std::fs::read_to_string(&file_out).unwrap_or_default()),
        ),
        (
            "program",
            alerts_in(&std::fs::read_to_string(&prog_out).unwrap_or_default()),
        ),
        (
            "http",
            lock(&bodies)
                .iter()
                .filter_map(|b| serde_json::from_str(b).ok())
                .collect(),
        ),
        ("syslog", {
            let msgs = lock(&syslog_msgs).clone();
            let parsed: Vec<(u32, u32, serde_json::Value)> =
                msgs.iter().filter_map(|m| parse_syslog(m)).collect();
            assert_eq!(parsed.len(), msgs.len(), "malformed syslog lines: {msgs:?}");
            for (pri, pid, a) in &parsed {
                assert_eq!(*pid, agent_pid, "syslog ident pid");
                // facility user (1 << 3) + the alert priority's severity
                let sev = match a["priority"].as_str() {
                    Some("Emergency") => 0,
                    Some("Alert") => 1,
                    Some("Critical") => 2,
                    Some("Error") => 3,
                    Some("Warning") => 4,
                    Some("Notice") => 5,
                    Some("Informational") => 6,
                    _ => 7,
                };
                assert_eq!(*pri, 8 + sev, "{a}");
            }
            parsed.into_iter().map(|(_, _, a)| a).collect()
        }),
    ];
    for (name, alerts) in &outputs {
        let shadow = find(alerts, "Read sensitive file untrusted", |a| {
            a["output_fields"]["fd.name"] == "/etc/shadow" && a["output_fields"]["proc.cmdline"] == "cat /etc/shadow"
        })
        .unwrap_or_else(|| panic!("{name}: no 'Read sensitive file untrusted' alert for cat /etc/shadow (pid {cat_pid}) among {} alerts", alerts.len()));
        assert_eq!(shadow["priority"], "Warning", "{name}");
        assert_eq!(shadow["source"], "syscall", "{name}");
        assert_eq!(shadow["output_fields"]["proc.name"], "cat", "{name}");
        assert_eq!(shadow["output_fields"]["user.name"], "root", "{name}");
        assert_eq!(shadow["output_fields"]["container.id"], "host", "{name}");
        assert!(
            shadow["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == "mitre_credential_access")),
            "{name}"
        );
        assert!(shadow["output"].as_str().is_some_and(|o| o.contains("Warning Credential file read by untrusted program (file=/etc/shadow process=cat exe=/usr/bin/cat cmdline=cat /etc/shadow")), "{name}: {}", shadow["output"]);

        let dev_shm = find(alerts, "Execution from /dev/shm", |a| {
            a["output_fields"]["proc.exepath"] == shm_path.as_str()
        })
        .unwrap_or_else(|| {
            panic!("{name}: no 'Execution from /dev/shm' alert for {shm_path} (pid {shm_pid})")
        });
        assert_eq!(dev_shm["priority"], "Warning", "{name}");
        assert_eq!(dev_shm["output_fields"]["container.id"], "host", "{name}");

        let anomaly_rule = falco_learn_profiler::rule_name(
            &falco_learn_profiler::ImageRef::new("host", ""),
            falco_learn_profiler::Dimension::Exec,
        );
        let anomaly = find(alerts, &anomaly_rule, |a| {
            a["output_fields"]["proc.exepath"] == shm_path.as_str()
        })
        .unwrap_or_else(|| panic!("{name}: no '{anomaly_rule}' anomaly for {shm_path}"));
        assert_eq!(anomaly["priority"], "Warning", "{name}");
        assert!(
            anomaly["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == "falco_learn")),
            "{name}"
        );
        // cat is in the profile: no anomaly for it
        assert!(
            find(alerts, &anomaly_rule, |a| a["output_fields"]
                ["proc.exepath"]
                == "/usr/bin/cat")
            .is_none(),
            "{name}: cat is learned"
        );
    }

    // metrics: families present, and they moved while we triggered things
    for fam in [
        "falco_learn_events_total",
        "falco_learn_rule_matches_total",
        "falco_learn_anomalies_total",
        "falco_learn_profiles_loaded",
        "falco_learn_evaluation_latency_seconds_bucket",
        "falco_learn_process_resident_memory_bytes",
        "falco_learn_build_info",
        "falco_learn_alerts_output_total",
    ] {
        assert!(
            m2.lines().any(|l| l.starts_with(fam)),
            "metric family {fam} missing:\n{m2}"
        );
    }
    assert!(
        family_sum(&m2, "falco_learn_events_total") > family_sum(&m1, "falco_learn_events_total"),
        "events did not move"
    );
    assert!(
        m2.contains("rule_name=\"Read sensitive file untrusted\""),
        "no rule_name label for the shadow read"
    );
    assert_eq!(family_sum(&m2, "falco_learn_profiles_loaded"), 1.0);
    // arguments the kernel could not read (a 32-bit socketcall's unmapped array): listed at 0
    assert!(
        m2.lines().any(|l| l.starts_with("falco_learn_drops_total{")
            && l.contains("kind=\"connect\"")
            && l.contains("stage=\"kernel_args\"")
            && l.ends_with(" 0")),
        "no kernel_args series for connect:\n{m2}"
    );
}

fn write_profile(dir: &Path, file: &str, repo: &str) {
    let mut p =
        falco_learn_profiler::Profile::new(falco_learn_profiler::ImageRef::new(repo, "latest"));
    p.learn_exec("/usr/sbin/nginx", false, 1);
    std::fs::write(dir.join(file), falco_learn_profiler::to_yaml(&p)).expect("write profile");
}

#[test]
fn sighup_reloads_and_a_bad_file_keeps_the_running_set() {
    if skip("the SIGHUP reload test") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let profiles = dir.path().join("profiles");
    std::fs::create_dir_all(&profiles).expect("mkdir");
    write_profile(&profiles, "nginx.yaml", "docker.io/library/nginx");
    let metrics_port = free_port();
    let profiles_s = profiles.display().to_string();
    let metrics_o = format!("metrics.listen=127.0.0.1:{metrics_port}");
    let mut agent = Agent::run(
        "run: ",
        &[
            "--profiles",
            &profiles_s,
            "-o",
            "outputs.stdout.enabled=false",
            "-o",
            &metrics_o,
        ],
    );
    assert_eq!(
        family_sum(&scrape(metrics_port), "falco_learn_profiles_loaded"),
        1.0
    );

    // a broken profile (issue 9 §7): reported with its file and skipped, the
    // others stay enforced
    std::fs::write(
        profiles.join("redis.yaml"),
        "schema_version: 1\nimage: {repository: redis\nexec: [",
    )
    .expect("write bad");
    agent.signal(libc::SIGHUP);
    agent.wait_log("SIGHUP: rules and profiles reloaded", 30);
    let m = scrape(metrics_port);
    assert!(
        m.contains("falco_learn_reloads_total{result=\"ok\"} 1"),
        "{m}"
    );
    assert_eq!(family_sum(&m, "falco_learn_profiles_loaded"), 1.0);
    assert_eq!(family_sum(&m, "falco_learn_profiles_failed_total"), 1.0);
    assert!(agent.stderr_has("redis.yaml"), "the error names the file");

    // fixed: the reload loads both profiles
    write_profile(&profiles, "redis.yaml", "docker.io/library/redis");
    agent.signal(libc::SIGHUP);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let m = loop {
        let m = scrape(metrics_port);
        if m.contains("falco_learn_reloads_total{result=\"ok\"} 2") {
            break m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no second reload: {m}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(family_sum(&m, "falco_learn_profiles_loaded"), 2.0);

    // a loaded profile that breaks keeps its running version
    std::fs::write(profiles.join("redis.yaml"), "schema_version: [").expect("write bad");
    agent.signal(libc::SIGHUP);
    agent.wait_log("keeping the running version", 30);
    assert_eq!(
        family_sum(&scrape(metrics_port), "falco_learn_profiles_loaded"),
        2.0
    );

    agent.terminate(30);
}

/// Run `exe` to its end, retrying on ETXTBSY (see [`spawn_retrying`]).
fn status_retrying(exe: &Path) -> std::process::ExitStatus {
    spawn_retrying(&mut Command::new(exe))
        .wait()
        .unwrap_or_else(|e| panic!("wait for {}: {e}", exe.display()))
}

/// Run a copy of /bin/true named `name` from `dir` (retrying while the copy
/// is still open for writing).
fn run_copy_of_true(dir: &Path, name: &str) {
    let exe = dir.join(name);
    if !exe.exists() {
        std::fs::copy("/bin/true", &exe).expect("copy");
    }
    let _ = spawn_retrying(&mut Command::new(&exe)).wait();
}

/// Alerts of `rule` the agent printed so far.
/// An agent on the rules file `rules` (written by the test, which may rewrite it and
/// SIGHUP) with an empty profiles directory beside it (`profiles.allow_empty`), alerts on
/// stdout, and `metrics` (an `-o` setting: its own port, or `metrics.enabled=false`: other
/// agents on this machine may hold the default port).
fn agent_on_rules(rules: &Path, metrics: &str) -> Agent {
    let dir = rules.parent().expect("the rules file's directory");
    let profiles = dir.join("profiles");
    std::fs::create_dir_all(&profiles).expect("mkdir");
    Agent::run(
        "run: ",
        &[
            "-r",
            &rules.display().to_string(),
            "--profiles",
            &profiles.display().to_string(),
            "-o",
            "profiles.allow_empty=true",
            "-o",
            "outputs.stdout.enabled=true",
            "-o",
            metrics,
        ],
    )
}

fn alerts_of(agent: &Agent, rule: &str) -> usize {
    alerts_in(&agent.stdout_lines().join("\n"))
        .iter()
        .filter(|a| a["rule"] == rule)
        .count()
}

fn wait_alerts(agent: &Agent, rule: &str, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while alerts_of(agent, rule) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "fewer than {n} '{rule}' alerts:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Issue 13 §3: a SIGHUP reload of a rules file whose macros each use the
/// previous one twice (64 levels, 2.5 KB) stopped evaluation for 18 s and
/// took 500 MB. The reload is now refused at once with a limit error naming
/// the macro, the running rules stay, and evaluation goes on.
#[test]
fn sighup_with_an_exploding_rules_file_keeps_the_running_rules() {
    if skip("the SIGHUP exploding-rules test") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let marker_rule = "- rule: Reload marker\n  desc: an exec of the test's marker\n  \
        condition: evt.type in (execve, execveat) and proc.name = fl-hup-mark\n  \
        output: marker ran (%proc.exepath)\n  priority: WARNING\n";
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, marker_rule).expect("write rules");
    let profiles_s = dir.path().join("profiles").display().to_string();
    let metrics_port = free_port();
    let metrics_o = format!("metrics.listen=127.0.0.1:{metrics_port}");
    let mut agent = agent_on_rules(&rules, &metrics_o);
    // an empty profiles directory runs only where allowed, and says so
    assert!(
        agent.stderr_has(&format!(
            "profiles directory {profiles_s} holds no profiles (profiles.allow_empty): only the \
             rules apply until profiles appear there and SIGHUP loads them"
        )),
        "{}",
        agent.stderr()
    );
    run_copy_of_true(dir.path(), "fl-hup-mark");
    wait_alerts(&agent, "Reload marker", 1);

    // the exploding file: m{i} = m{i-1} or m{i-1}, 64 levels
    let mut bomb = String::from("- macro: m0\n  condition: proc.name = x\n");
    for i in 1..=64 {
        bomb.push_str(&format!(
            "- macro: m{i}\n  condition: m{} or m{}\n",
            i - 1,
            i - 1
        ));
    }
    bomb.push_str(
        &marker_rule.replace("proc.name = fl-hup-mark", "proc.name = fl-hup-mark and m64"),
    );
    std::fs::write(&rules, bomb).expect("write bomb");
    agent.signal(libc::SIGHUP);
    agent.wait_log("reload failed, keeping the running rules and profiles", 10);
    assert!(
        agent.stderr_has("LOAD_ERR_LIMIT_EXPANSION") && agent.stderr_has("macro 'm16'"),
        "the error names the limit and the macro:\n{}",
        agent.stderr()
    );
    let m = scrape(metrics_port);
    assert!(
        m.contains("falco_learn_reloads_total{result=\"error\"} 1"),
        "{m}"
    );
    // the running rules still evaluate
    run_copy_of_true(dir.path(), "fl-hup-mark");
    wait_alerts(&agent, "Reload marker", 2);
    agent.terminate(30);
}

/// A reload is compiled off the evaluation thread: while it is under way the
/// running rules keep evaluating. The reload is made to last as long as the
/// test wants by replacing the rules file with a FIFO, which the reload
/// blocks reading until the test writes the new rules into it.
#[test]
fn sighup_reload_runs_beside_evaluation() {
    if skip("the SIGHUP reload-beside-evaluation test") {
        return;
    }
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let rule = |name: &str, comm: &str| {
        format!(
            "- rule: {name}\n  desc: an exec of a marker\n  \
             condition: evt.type in (execve, execveat) and proc.name = {comm}\n  \
             output: marker ran (%proc.exepath)\n  priority: WARNING\n"
        )
    };
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, rule("Old marker", "fl-hup-old")).expect("write rules");
    let rules_s = rules.display().to_string();
    let metrics_o = format!("metrics.listen=127.0.0.1:{}", free_port());
    let mut agent = agent_on_rules(&rules, &metrics_o);
    run_copy_of_true(dir.path(), "fl-hup-old");
    wait_alerts(&agent, "Old marker", 1);

    std::fs::remove_file(&rules).expect("rm rules");
    let c = std::ffi::CString::new(rules_s.clone()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    agent.signal(libc::SIGHUP);
    // the reload waits on the FIFO; the running rules still evaluate
    run_copy_of_true(dir.path(), "fl-hup-old");
    wait_alerts(&agent, "Old marker", 2);
    assert!(!agent.stderr_has("SIGHUP: rules and profiles reloaded"));

    // the new rules go in (the reload has the FIFO open for reading by now,
    // else opening it for writing without blocking fails: retried)
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut fifo = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&rules)
        {
            Ok(f) => break f,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the reload never read the rules:\n{}",
                    agent.stderr()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("open the FIFO: {e}"),
        }
    };
    fifo.write_all(rule("New marker", "fl-hup-new").as_bytes())
        .expect("write new rules");
    drop(fifo);
    agent.wait_log("SIGHUP: rules and profiles reloaded", 20);
    run_copy_of_true(dir.path(), "fl-hup-new");
    wait_alerts(&agent, "New marker", 1);
    agent.terminate(30);
}

/// One sample of a metric: the line of `name` holding every `k="v"` label.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Live processes (pid, ppid, pgid, cmdline) from /proc; zombies left out.
fn live_processes() -> Vec<(u32, u32, u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() < 3 || f[0] == "Z" || f[0] == "X" {
            continue;
        }
        let (Ok(ppid), Ok(pgid)) = (f[1].parse(), f[2].parse()) else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        out.push((pid, ppid, pgid, cmd.trim_end().to_string()));
    }
    out
}

/// Issue 13 §2 on the live agent: a `program` that never reads (`sleep 600`)
/// and an HTTP receiver that accepts and never answers. Alert floods keep being
/// evaluated (rule matches keep moving after the pipe is full, drops are
/// counted per output and reason), SIGTERM exits within the shutdown deadline
/// and the program's process group does not outlive the agent.
#[test]
fn stuck_outputs_stall_neither_evaluation_nor_shutdown() {
    if skip("the stuck-outputs test") {
        return;
    }
    // accepts and holds every connection, never reads or answers
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let http_port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let metrics_port = free_port();
    let metrics_o = format!("metrics.listen=127.0.0.1:{metrics_port}");
    let http_o = format!("outputs.http.url=http://127.0.0.1:{http_port}/");
    let mut agent = Agent::run(
        "run: ",
        &[
            "-o",
            &metrics_o,
            "-o",
            "outputs.stdout.enabled=false",
            "-o",
            "outputs.program.enabled=true",
            "-o",
            "outputs.program.program=sleep 600",
            "-o",
            "outputs.program.queue=10",
            "-o",
            "outputs.http.enabled=true",
            "-o",
            &http_o,
            "-o",
            "outputs.http.timeout=10m",
            "-o",
            "outputs.http.queue=10",
            "-o",
            "outputs.shutdown_timeout=2s",
        ],
    );
    let agent_pid = agent.child.id();
    let groups: Vec<u32> = live_processes()
        .into_iter()
        .filter(|p| p.1 == agent_pid && p.3 == "sh -c sleep 600")
        .map(|p| p.2)
        .collect();
    assert_eq!(groups.len(), 1, "one program process");

    let rule = "Read sensitive file untrusted";
    let matches = |m: &str| sample(m, "falco_learn_rule_matches_total", &[("rule_name", rule)]);
    let flood = |n: u32| {
        let st = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "i=0; while [ $i -lt {n} ]; do cat /etc/shadow; i=$((i+1)); done"
            ))
            .stdout(Stdio::null())
            .status()
            .expect("flood");
        assert!(st.success());
    };
    let wait_for = |what: &str, ok: &dyn Fn(&str) -> bool| -> String {
        let until = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let m = scrape(metrics_port);
            if ok(&m) {
                return m;
            }
            assert!(std::time::Instant::now() < until, "{what}:\n{m}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let before = matches(&scrape(metrics_port));
    // 600 alerts: ~64 KiB of JSON fill the pipe, the queues hold 10
    flood(600);
    let m = wait_for("the flood was not evaluated", &|m| {
        matches(m) >= before + 600.0
    });
    let full = |m: &str, o: &str| {
        sample(
            m,
            "falco_learn_alerts_output_failed_total",
            &[("output", o), ("reason", "queue_full")],
        )
    };
    assert!(full(&m, "program") > 0.0, "{m}");
    assert!(full(&m, "http") > 0.0, "{m}");
    // still evaluating with both outputs stuck
    let mid = matches(&m);
    flood(100);
    wait_for("evaluation stopped behind the stuck outputs", &|m| {
        matches(m) >= mid + 100.0
    });
    let t0 = std::time::Instant::now();
    agent.terminate(30);
    eprintln!("SIGTERM to exit: {:?}", t0.elapsed());
    assert!(
        agent
            .stderr()
            .contains("not delivered by the shutdown deadline"),
        "{}",
        agent.stderr()
    );
    let until = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left: Vec<_> = live_processes()
            .into_iter()
            .filter(|p| groups.contains(&p.2))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "the program outlived the agent: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Issue 11: the kernel reports the read-only opens the loaded rules can match. A rule
/// about reads of a file outside every prefix the stable rules name fires live, through
/// every spelling of the path (the filter decides on the file the kernel opened); and a
/// SIGHUP with a rule on another file moves the filter.
#[test]
fn a_custom_read_rule_fires_on_any_spelling_and_follows_a_reload() {
    if skip("the custom read rule test") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let app = dir.path().join("opt-app");
    std::fs::create_dir_all(&app).expect("mkdir");
    let secret = app.join("secret.key");
    let other = app.join("other.key");
    std::fs::write(&secret, b"s").expect("write");
    std::fs::write(&other, b"o").expect("write");
    std::os::unix::fs::symlink(&secret, dir.path().join("link")).expect("symlink");
    let rule = |name: &str, path: &Path| {
        format!(
            "- rule: {name}\n  desc: a read of the test's file\n  \
             condition: evt.type in (open, openat, openat2) and evt.is_open_read = true \
             and fd.name = {}\n  output: read (file=%fd.name raw=%fd.nameraw)\n  priority: WARNING\n",
            path.display()
        )
    };
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, rule("Secret read", &secret)).expect("write rules");
    let mut agent = agent_on_rules(&rules, "metrics.enabled=false");
    assert!(
        agent.stderr_has(&format!("{}", secret.display())),
        "the kernel plan names the file:\n{}",
        agent.stderr()
    );
    let spellings = [
        secret.display().to_string(),
        format!("{}/./secret.key", app.display()),
        format!("{}/../opt-app/secret.key", app.display()),
        dir.path().join("link").display().to_string(),
    ];
    for s in &spellings {
        let st = Command::new("cat")
            .arg(s)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("cat");
        assert!(st.success(), "cat {s}");
    }
    wait_alerts(&agent, "Secret read", spellings.len());
    let alerts = alerts_in(&agent.stdout_lines().join("\n"));
    let mut raws: Vec<String> = alerts
        .iter()
        .filter(|a| a["rule"] == "Secret read")
        .map(|a| {
            assert_eq!(
                a["output_fields"]["fd.name"],
                secret.display().to_string(),
                "{a}"
            );
            a["output_fields"]["fd.nameraw"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    raws.sort();
    let mut want = spellings.to_vec();
    want.sort();
    assert_eq!(raws, want);

    // the reloaded rules watch another file: its reads are reported now
    std::fs::write(&rules, rule("Other read", &other)).expect("write rules");
    agent.signal(libc::SIGHUP);
    agent.wait_log("SIGHUP: rules and profiles reloaded", 20);
    let st = Command::new("cat")
        .arg(&other)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("cat");
    assert!(st.success());
    wait_alerts(&agent, "Other read", 1);
    agent.terminate(30);
}

/// Issue 11: the probe attaches only the syscall programs the loaded rules and profiles
/// need. With a ptrace rule loaded, ptrace is attached and its events arrive; a SIGHUP
/// that removes the only rule about ptrace detaches it (its events stop), and putting
/// the rule back attaches it again.
#[test]
fn removing_the_only_ptrace_rule_detaches_its_program() {
    if skip("the syscall attach plan test") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let ptrace_rule = "- rule: Test ptrace\n  desc: a ptrace by the test\n  \
        condition: evt.type = ptrace and proc.name = fl-ptrace-test\n  \
        output: ptrace (%proc.name)\n  priority: WARNING\n";
    let marker_rule = "- rule: Test marker\n  desc: the test's marker exec\n  \
        condition: evt.type = execve and proc.name = fl-attach-mark\n  \
        output: marker (%proc.exepath)\n  priority: WARNING\n";
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, format!("{ptrace_rule}{marker_rule}")).expect("write rules");
    let metrics_port = free_port();
    let metrics_o = format!("metrics.listen=127.0.0.1:{metrics_port}");
    let mut agent = agent_on_rules(&rules, &metrics_o);
    assert!(
        agent.stderr_has("kernel: syscall programs attached for ptrace;"),
        "only what the rules need:\n{}",
        agent.stderr()
    );
    // a ptrace (PTRACE_TRACEME) by a child named fl-ptrace-test
    let tracee = || {
        // SAFETY: the child only sets its name, makes one raw ptrace call and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: see above.
            unsafe {
                libc::prctl(libc::PR_SET_NAME, c"fl-ptrace-test".as_ptr(), 0, 0, 0);
                libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
                libc::_exit(0);
            }
        }
        let mut st = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut st, 0) };
    };
    tracee();
    wait_alerts(&agent, "Test ptrace", 1);
    let ptraces = |m: &str| sample(m, "falco_learn_events_total", &[("kind", "ptrace")]);
    let before = ptraces(&scrape(metrics_port));
    assert!(before >= 1.0, "ptrace events were received");

    // the only ptrace rule removed: detached, its events stop
    std::fs::write(&rules, marker_rule).expect("write rules");
    agent.signal(libc::SIGHUP);
    agent.wait_log("detached ptrace (no loaded rule or profile needs them)", 20);
    let after_detach = ptraces(&scrape(metrics_port));
    for _ in 0..3 {
        tracee();
    }
    run_copy_of_true(dir.path(), "fl-attach-mark");
    wait_alerts(&agent, "Test marker", 1);
    assert_eq!(
        ptraces(&scrape(metrics_port)),
        after_detach,
        "no ptrace event after the detach"
    );

    // back again: attached, and it alerts
    std::fs::write(&rules, format!("{ptrace_rule}{marker_rule}")).expect("write rules");
    agent.signal(libc::SIGHUP);
    agent.wait_log("; attached ptrace", 20);
    tracee();
    wait_alerts(&agent, "Test ptrace", 2);
    agent.terminate(30);
}

/// 32-bit syscalls are judged as their 64-bit twins. A 64-bit program's `int 0x80` calls
/// and a 32-bit program's (each: an open for writing, a connect through `socketcall` and
/// one through `socket`/`connect`) raise a user's rules exactly as 64-bit calls would, with
/// the 64-bit event types and fields; the 64-bit program also raises the ia32 syscall alert
/// (with the number of its first 32-bit call, ia32 open: 5), once however often it runs,
/// and the 32-bit program nothing else.
#[test]
fn rules_judge_32_bit_syscalls_as_their_64_bit_twins() {
    if skip("the 32-bit syscall test") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: Test 32-bit write\n  desc: a write-open of the test's files\n  \
             condition: evt.type in (open, openat) and evt.is_open_write = true and \
             fd.name startswith {dir}/out-\n  output: write (file=%fd.name exe=%proc.exepath)\n  priority: NOTICE\n\
             - rule: Test 32-bit connect\n  desc: a connect to the test's listener\n  \
             condition: evt.type = connect and fd.sport = {port}\n  \
             output: connect (connection=%fd.name exe=%proc.exepath)\n  priority: NOTICE\n",
            dir = dir.path().display()
        ),
    )
    .expect("write rules");
    let mut agent = agent_on_rules(&rules, "metrics.enabled=false");
    assert!(
        agent.stderr_has("32-bit (ia32) syscalls watched (sys_exit dispatcher)"),
        "32-bit syscalls are watched:\n{}",
        agent.stderr()
    );
    let mut programs = Vec::new();
    for (bits64, name) in [(true, "fl-int80-io"), (false, "fl-ia32-io")] {
        let out = dir.path().join(format!("out-{name}"));
        let prog =
            falco_learn_probe::selftest::int80_io_program(&out.display().to_string(), port, bits64)
                .expect("program");
        let exe = dir.path().join(name);
        std::fs::write(&exe, prog).expect("write");
        std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        // twice: the ia32 syscall alert is raised once per executable
        for _ in 0..2 {
            let st = status_retrying(&exe);
            assert_eq!(st.code(), Some(0), "{name}");
        }
        programs.push((bits64, exe.display().to_string(), out.display().to_string()));
    }
    wait_alerts(&agent, "Test 32-bit write", 4);
    wait_alerts(&agent, "Test 32-bit connect", 8);
    wait_alerts(&agent, falco_learn_enforcer::pipeline::IA32_SYSCALL_RULE, 1);
    std::thread::sleep(Duration::from_secs(1));
    agent.terminate(30);
    drop(listener);
    let alerts = alerts_in(&agent.stdout_lines().join("\n"));
    for (bits64, exe, out) in &programs {
        let of = |rule: &str| -> Vec<&serde_json::Value> {
            alerts
                .iter()
                .filter(|a| a["rule"] == rule && a["output_fields"]["proc.exepath"] == exe.as_str())
                .collect()
        };
        let writes = of("Test 32-bit write");
        assert_eq!(writes.len(), 2, "{exe}: {writes:#?}");
        for w in &writes {
            assert_eq!(w["output_fields"]["fd.name"], out.as_str());
        }
        let connects = of("Test 32-bit connect");
        assert_eq!(connects.len(), 4, "{exe}: two per run: {connects:#?}");
        for c in &connects {
            let conn = c["output_fields"]["fd.name"].as_str().unwrap_or("");
            assert!(conn.ends_with(&format!("->127.0.0.1:{port}")), "{conn}");
        }
        let ia32 = of(falco_learn_enforcer::pipeline::IA32_SYSCALL_RULE);
        if *bits64 {
            assert_eq!(ia32.len(), 1, "{exe}: {ia32:#?}");
            assert_eq!(ia32[0]["priority"], "Warning");
            assert_eq!(ia32[0]["output_fields"]["evt.arg.ID"], 5);
            assert_eq!(ia32[0]["output_fields"]["container.id"], "host");
        } else {
            assert!(ia32.is_empty(), "{exe}: a 32-bit program: {ia32:#?}");
        }
        assert!(
            alerts
                .iter()
                .filter(|a| a["output_fields"]["proc.exepath"] == exe.as_str())
                .all(|a| a["rule"] != falco_learn_enforcer::pipeline::IA32_RULE),
            "32-bit syscalls are watched: no unmonitored-program alert"
        );
    }
}
