//! `engine.kernel_filter` end to end, as root, on a real containerd container: the same
//! scenario runs under `run --mode enforce-alert` with the kernel filter on and off, and
//! both runs raise exactly the same alerts, while the filtered run drops the profile-allowed
//! writes in the kernel (`falco_learn_kernel_filtered_total{reason="profile"}`).
//!
//! The scenario, in a container whose image's profile allows writes below `/tmp/ok`, to
//! `/tmp/file.txt` and to `/var/log/app.log`: 300 writes below `/tmp/ok` and one to
//! `/tmp/file.txt` (allowed, no rule can match them: dropped in the kernel), one to
//! `/tmp/notallowed` (the profile's write anomaly), and a truncation of `/var/log/app.log`
//! (allowed by the profile, but under `/var/log`, where the default rule "Clear Log
//! Activities" looks: reported, and it alerts).
//!
//! Network traffic too: the profile allows TCP to one loopback port, where the container
//! connects 100 times (allowed, no rule needs the port: dropped in the kernel,
//! `falco_learn_kernel_filtered_total{kind="connect",reason="profile"}` = 100), and it
//! connects once to another port (the profile's outbound anomaly, in both runs). The
//! container serves one TCP port of its profile and one outside it, and the test connects
//! to each once: the first accept is dropped in the kernel, the second is the profile's
//! inbound anomaly. Last, `nc -e` puts a connection on its stdin and stdout: the default rule
//! about that shape alerts, while the shell's own dups of files are dropped in the kernel
//! (no rule can match them).
//!
//! A second container, of an image without a profile, writes 200 files no rule looks at,
//! connects to a port no rule looks at and truncates a log: with the filter on, the writes
//! and the connect die in the kernel (`reason="unprofiled"`: no profile applies to the
//! process), and "Clear Log Activities" alerts in both runs.
//!
//! Needs root, containerd and ctr (CI: `.ci/setup`); elsewhere a loud SKIP.

mod common;
use falco_learn_test_support as support;

use common::{free_port, scrape, Agent};
use falco_learn_profiler::{rule_name, Dimension, ImageRef, Profile};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::{busybox_rootfs, ctr_sh, may_run, Containerd, CtrContainer, CtrImage};

const REPO: &str = "docker.io/library/fl-kfilter";
const IMAGE: &str = "docker.io/library/fl-kfilter:test";
/// An image without a profile: only the rules apply to its containers.
const OPEN_IMAGE: &str = "docker.io/library/fl-kfilter-open:test";

/// Writes outside every rule's paths in the container without a profile.
const FREE_WRITES: u64 = 200;

/// The scenario of the container without a profile: once its shell is known to the agent
/// (the sleep), [`FREE_WRITES`] writes no rule looks at and a connect to a port no rule
/// looks at (`other`), both dropped in the kernel with the filter on, and a truncation of a
/// log, which the default rule "Clear Log Activities" alerts on in both runs.
fn open_script(other: u16) -> String {
    format!(
        "busybox sleep 1; busybox mkdir -p /tmp/free /var/log; i=0; \
         while [ $i -lt {FREE_WRITES} ]; do echo x > /tmp/free/f$i; i=$((i+1)); done; \
         : > /var/log/app.log; busybox nc 127.0.0.1 {other} </dev/null || exit 1; echo done"
    )
}

const WRITES: &str = "busybox mkdir -p /tmp/ok /var/log; i=0; \
    while [ $i -lt 300 ]; do echo x > /tmp/ok/f$i; i=$((i+1)); done; \
    echo x > /tmp/file.txt; echo x > /tmp/notallowed; : > /var/log/app.log";

/// The default rule a reverse shell's dup of a socket onto stdin raises.
const REDIRECT: &str = "Redirect STDOUT/STDIN to Network Connection in Container";

/// Allowed connects to the profile's port.
const CONNECTS: u64 = 100;

/// The scenario: the writes, then [`CONNECTS`] connects to `allowed`, one to `other`
/// (loopback ports the test listens on; the container shares the host's network), and a
/// reverse shell's shape: `nc -e` puts its connection to `allowed` on stdin and stdout.
fn script(allowed: u16, other: u16) -> String {
    format!(
        "{WRITES}; i=0; while [ $i -lt {CONNECTS} ]; do \
         busybox nc 127.0.0.1 {allowed} </dev/null || exit 1; i=$((i+1)); done; \
         busybox nc 127.0.0.1 {other} </dev/null || exit 1; \
         busybox nc 127.0.0.1 {allowed} -e /bin/true </dev/null || exit 1; echo done"
    )
}

/// A loopback TCP port that accepts and closes every connection, for the test's life.
fn listener() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = l.local_addr().expect("local addr").port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            drop(c);
        }
    });
    port
}

/// Serve `ports` one after the other in the container (`nc -l`, one connection each) while
/// the test connects to each from the host (retrying until the container listens).
fn serve(container: &str, ports: &[u16]) {
    let script = ports
        .iter()
        .map(|p| format!("busybox nc -l -p {p} </dev/null >/dev/null || exit 1; "))
        .collect::<String>()
        + "echo served";
    let name = container.to_string();
    let server = std::thread::spawn(move || ctr_sh(&name, "serve", &script));
    for port in ports {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match std::net::TcpStream::connect(("127.0.0.1", *port)) {
                Ok(c) => {
                    drop(c);
                    break;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "port {port} never served: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
    let (out, code) = server.join().expect("serving thread");
    assert_eq!((out.as_str(), code), ("served", 0));
}

/// A socket's `fd.name` without the client's (ephemeral) end: `127.0.0.1:80`.
fn server_end(name: &str) -> String {
    name.rsplit("->").next().unwrap_or(name).to_string()
}

/// (rule, fd.name, proc.exepath) of every alert about the test's container.
type AlertSet = BTreeSet<(String, String, String)>;

struct Run {
    alerts: AlertSet,
    /// `falco_learn_kernel_filtered_total{reason="profile"}` of the opens, summed over kinds.
    profile_filtered: u64,
    /// The same, of connects and accepts.
    connects_filtered: u64,
    /// `falco_learn_kernel_filtered_total{reason="rules"}` of dup, dup2 and dup3.
    dups_filtered: u64,
    /// (rule, fd.name, proc.exepath) of every alert about the container without a profile.
    open_alerts: AlertSet,
    /// `falco_learn_kernel_filtered_total{reason="unprofiled"}` of the opens, and of the
    /// connects and accepts.
    unprofiled: (u64, u64),
}

/// Loopback ports of the scenario: (connect allowed, connect not allowed, served, not served).
type Ports = (u16, u16, u16, u16);

fn run_scenario(
    profiles: &str,
    kernel_filter: bool,
    (image, open_image): (&CtrImage, &CtrImage),
    ports: Ports,
) -> Run {
    let metrics_port = free_port();
    let metrics_o = format!("metrics.listen=127.0.0.1:{metrics_port}");
    let filter_o = format!("engine.kernel_filter={kernel_filter}");
    let mut agent = Agent::spawn(
        "run: ",
        &[
            "run",
            "--mode",
            "enforce-alert",
            "--profiles",
            profiles,
            "-o",
            &metrics_o,
            "-o",
            &filter_o,
        ],
    );
    agent.wait_log("enforce-alert mode running", 60);
    let name = format!("fl-kf-{}-{kernel_filter}", std::process::id());
    let _c = CtrContainer::run(&image.reference, &name, &[], &["/bin/sleep", "60"]);
    if kernel_filter {
        // two files, the six benign sinks, the directory itself and below it
        assert!(
            agent.stderr_has(&format!(
                "kernel filter: {IMAGE} 10 kernel entries of its writes, 1 of its \
                 outbound connections and 1 of its served ports"
            )),
            "{}",
            agent.stderr()
        );
        agent.wait_log(
            &format!("kernel filter: container {name} ({IMAGE}, cgroup id "),
            20,
        );
    } else {
        // the container's first events reach the agent (its image resolved)
        std::thread::sleep(Duration::from_secs(2));
    }
    let (out, code) = ctr_sh(&name, "scenario", &script(ports.0, ports.1));
    assert_eq!((out.as_str(), code), ("done", 0));
    let open_name = format!("fl-kfo-{}-{kernel_filter}", std::process::id());
    let _o = CtrContainer::run(
        &open_image.reference,
        &open_name,
        &[],
        &["/bin/sleep", "60"],
    );
    let (out, code) = ctr_sh(&open_name, "open", &open_script(ports.1));
    assert_eq!((out.as_str(), code), ("done", 0));
    serve(&name, &[ports.2, ports.3]);
    // both expected alerts arrive, then a little more time for anything else
    let anomaly = rule_name(&ImageRef::new(REPO, "test"), Dimension::FileWrite);
    let outbound = rule_name(&ImageRef::new(REPO, "test"), Dimension::Outbound);
    let inbound = rule_name(&ImageRef::new(REPO, "test"), Dimension::Inbound);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = agent.stdout_lines();
        let have =
            |rule: &str, file: &str| lines.iter().any(|l| l.contains(rule) && l.contains(file));
        if have(&anomaly, "/tmp/notallowed")
            && have("Clear Log Activities", "/var/log/app.log")
            && have(&outbound, &format!("->127.0.0.1:{}", ports.1))
            && have(&inbound, &format!("->127.0.0.1:{}", ports.3))
            && have(REDIRECT, &format!("->127.0.0.1:{}", ports.0))
            && lines
                .iter()
                .any(|l| l.contains(&open_name) && l.contains("Clear Log Activities"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kernel_filter={kernel_filter}: the expected alerts did not come:\n{}\n{}",
            lines.join("\n"),
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let metrics = scrape(metrics_port);
    // falco_learn_kernel_filtered_total{reason=`reason`} summed over the kinds `kind` takes
    let filtered = |reason: &str, kind: &dyn Fn(&str) -> bool| -> u64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("falco_learn_kernel_filtered_total{")
                    && l.contains(&format!("reason=\"{reason}\""))
                    && kind(l)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let net = |l: &str| l.contains("kind=\"connect\"") || l.contains("kind=\"accept");
    let opens = |l: &str| !net(l);
    let profile_filtered = filtered("profile", &opens);
    let connects_filtered = filtered("profile", &net);
    let dups_filtered = filtered("rules", &|l| l.contains("kind=\"dup"));
    let unprofiled = (filtered("unprofiled", &opens), filtered("unprofiled", &net));
    agent.terminate(30);
    let lines = agent.stdout_lines();
    let alerts_of = |container: &str| -> AlertSet {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|a| a["output_fields"]["container.id"] == container)
            .map(|a| {
                let f = |k: &str| a["output_fields"][k].as_str().unwrap_or("").to_string();
                (
                    a["rule"].as_str().unwrap_or("").to_string(),
                    server_end(&f("fd.name")),
                    f("proc.exepath"),
                )
            })
            .collect()
    };
    Run {
        alerts: alerts_of(&name),
        profile_filtered,
        connects_filtered,
        dups_filtered,
        open_alerts: alerts_of(&open_name),
        unprofiled,
    }
}

#[test]
fn alerts_are_the_same_with_and_without_the_kernel_filter() {
    if !may_run("the kernel filter end-to-end test", &["containerd", "ctr"]) {
        return;
    }
    let _daemon = Containerd::start();
    let rootfs = busybox_rootfs("kernel-filter");
    let image = CtrImage::import(IMAGE, &rootfs);
    let open_image = CtrImage::import(OPEN_IMAGE, &rootfs);

    let dir = tempfile::tempdir().expect("tmp");
    let profiles = dir.path().join("profiles");
    std::fs::create_dir_all(&profiles).expect("mkdir");
    let mut p = Profile::new(ImageRef::new(REPO, "test"));
    p.learn_exec("/bin/busybox", false, 1);
    p.write_dirs.insert("/tmp/ok".into(), Default::default());
    p.write_files
        .insert("/tmp/file.txt".into(), Default::default());
    p.write_files
        .insert("/var/log/app.log".into(), Default::default());
    let ports = (
        listener(),
        listener(),
        common::free_port(),
        common::free_port(),
    );
    p.inbound.get_or_insert_with(Default::default).insert(
        (falco_learn_profiler::model::Proto::Tcp, ports.2),
        Default::default(),
    );
    let mut out = falco_learn_profiler::model::OutboundEntry::default();
    out.peers.insert("127.0.0.1/32".parse().expect("net"));
    p.outbound
        .insert((falco_learn_profiler::model::Proto::Tcp, ports.0), out);
    std::fs::write(
        profiles.join("kfilter.yaml"),
        falco_learn_profiler::to_yaml(&p),
    )
    .expect("write profile");
    let profiles_s = profiles.display().to_string();

    let on = run_scenario(&profiles_s, true, (&image, &open_image), ports);
    let off = run_scenario(&profiles_s, false, (&image, &open_image), ports);
    let anomaly = rule_name(&ImageRef::new(REPO, "test"), Dimension::FileWrite);
    let outbound = rule_name(&ImageRef::new(REPO, "test"), Dimension::Outbound);
    let other = format!("127.0.0.1:{}", ports.1);
    let inbound = rule_name(&ImageRef::new(REPO, "test"), Dimension::Inbound);
    let unserved = format!("127.0.0.1:{}", ports.3);
    let allowed = format!("127.0.0.1:{}", ports.0);
    let expected: AlertSet = [
        (anomaly.as_str(), "/tmp/notallowed"),
        ("Clear Log Activities", "/var/log/app.log"),
        (outbound.as_str(), other.as_str()),
        (inbound.as_str(), unserved.as_str()),
    ]
    .iter()
    .map(|(r, f)| (r.to_string(), f.to_string(), "/bin/busybox".to_string()))
    // (its output names no proc.exepath)
    .chain([(REDIRECT.to_string(), allowed, String::new())])
    .collect();
    let writes = |s: &AlertSet| -> AlertSet {
        s.iter()
            .filter(|(_, f, _)| !f.is_empty())
            .cloned()
            .collect()
    };
    assert_eq!(writes(&on.alerts), expected, "filter on: {:#?}", on.alerts);
    assert_eq!(
        on.alerts, off.alerts,
        "the kernel filter changed the alerts"
    );
    // the 301 allowed writes (and nothing a rule or the profile needed) died in the kernel
    assert!(
        on.profile_filtered >= 301,
        "filter on: only {} write-opens dropped in the kernel",
        on.profile_filtered
    );
    assert_eq!(off.profile_filtered, 0, "filter off dropped write-opens");
    // exactly the allowed connects and the accept on the served port died in the kernel,
    // and only with the filter on
    assert_eq!(
        on.connects_filtered,
        CONNECTS + 2,
        "filter on: connects and accepts dropped"
    );
    assert_eq!(off.connects_filtered, 0, "filter off dropped connects");
    // the shell's redirections dup files onto its descriptors: no rule needs those, in
    // either run (the rules' filter of dup calls does not depend on engine.kernel_filter),
    // while nc's dup of its socket onto stdin raised its alert above
    for run in [&on, &off] {
        assert!(run.dups_filtered > 0, "no dup call dropped in the kernel");
    }
    // the container without a profile: the same alert in both runs, its writes and its
    // connect no rule looks at dropped in the kernel only with the filter on (at least
    // them: host processes have no profile either)
    let clear_log: AlertSet = [(
        "Clear Log Activities".to_string(),
        "/var/log/app.log".to_string(),
        "/bin/busybox".to_string(),
    )]
    .into_iter()
    .collect();
    assert_eq!(on.open_alerts, clear_log, "filter on");
    assert_eq!(off.open_alerts, clear_log, "filter off");
    assert!(
        on.unprofiled.0 >= FREE_WRITES,
        "filter on: only {} write-opens of processes without a profile dropped",
        on.unprofiled.0
    );
    assert!(
        on.unprofiled.1 >= 1,
        "filter on: the connect was not dropped"
    );
    assert_eq!(off.unprofiled, (0, 0), "filter off dropped events");
}
