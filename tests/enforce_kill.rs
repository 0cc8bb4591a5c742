//! `falco-learn run --mode enforce-kill` end to end, as root, on real containerd
//! containers: a profiled container whose profile allows only `/bin/busybox`
//! comes under enforcement on its first event, and again after a restart (the same
//! container id in a new cgroup); a binary copied into it and run
//! is killed in the kernel (exit 137, none of its output) and raises the
//! profile's process alert marked `action=killed`, before and after the restart and from a
//! cgroup made below the container's (its first event there binds it); busybox applets keep
//! working without alerts; the same attack in a container of an image without a
//! profile runs (alerted by nothing here, killed by nothing). A container of the profiled
//! image whose own entrypoint is outside the profile (its first exec, before the agent
//! knows the container and can put its cgroup under the profile in the kernel) is killed
//! from userspace once judged, its alert marked `action=killed_late`, and so is one whose
//! entrypoint is a tmpfs file bound onto an allowed path (judged as the kernel would). A
//! copy run in a cgroup below the container's named like another container is killed in
//! the kernel (by the profile of the bound cgroup above it) and said by the internal alert.
//!
//! Needs root, containerd and ctr (CI: `.ci/setup`); elsewhere a loud SKIP.

mod common;
use falco_learn_test_support as support;

use common::{free_port, scrape, Agent};
use falco_learn_profiler::{ImageRef, Profile};
use std::time::Duration;
use support::{busybox_rootfs, ctr_sh, may_run, Containerd, CtrContainer, CtrImage};

const PROFILED: &str = "docker.io/library/fl-kill-profiled:test";
const UNPROFILED: &str = "docker.io/library/fl-kill-open:test";

/// `ctr task exec` of a shell script; (stdout, exit code of ctr).
#[test]
fn enforce_kill_kills_unprofiled_execs_in_profiled_containers_only() {
    if !may_run("the enforce-kill end-to-end test", &["containerd", "ctr"]) {
        return;
    }
    let _daemon = Containerd::start();
    let rootfs = busybox_rootfs("enforce-kill");
    // an executable the profile does not allow, there from the start (busybox runs the
    // applet of its name)
    std::fs::create_dir_all(rootfs.join("opt")).expect("mkdir opt");
    std::fs::copy("/bin/busybox", rootfs.join("opt/sleep")).expect("copy busybox");
    // an executable the profile allows from the image (its lower layer)
    std::fs::copy("/bin/busybox", rootfs.join("opt/tool")).expect("copy busybox");
    // another, that runs busybox's `sleep` (the applet of its name)
    std::fs::create_dir_all(rootfs.join("opt/nap")).expect("mkdir opt/nap");
    std::fs::copy("/bin/busybox", rootfs.join("opt/nap/sleep")).expect("copy busybox");
    let profiled = CtrImage::import(PROFILED, &rootfs);
    let open = CtrImage::import(UNPROFILED, &rootfs);

    let dir = tempfile::tempdir().expect("tmp");
    let profiles = dir.path().join("profiles");
    std::fs::create_dir_all(&profiles).expect("mkdir");
    let mut p = Profile::new(ImageRef::new("docker.io/library/fl-kill-profiled", "test"));
    p.learn_exec("/bin/busybox", false, 1);
    p.learn_exec("/opt/tool", false, 1);
    p.learn_exec("/opt/nap/sleep", false, 1);
    std::fs::write(
        profiles.join("profiled.yaml"),
        falco_learn_profiler::to_yaml(&p),
    )
    .expect("write profile");

    let metrics_port = free_port();
    let metrics_o = format!("metrics.listen=127.0.0.1:{metrics_port}");
    let profiles_s = profiles.display().to_string();
    let mut agent = Agent::spawn(
        "run: ",
        &[
            "run",
            "--mode",
            "enforce-kill",
            "--profiles",
            &profiles_s,
            "-o",
            &metrics_o,
        ],
    );
    agent.wait_log("enforce-kill mode running", 60);
    assert!(agent.stderr_has(
        "enforce-kill: docker.io/library/fl-kill-profiled:test allows 3 executable(s)"
    ));

    let pid = std::process::id();
    let guarded = format!("fl-ek-guarded-{pid}");
    let free = format!("fl-ek-free-{pid}");
    let guarded_c = CtrContainer::run(&profiled.reference, &guarded, &[], &["/bin/sleep", "60"]);
    let _f = CtrContainer::run(&open.reference, &free, &[], &["/bin/sleep", "60"]);
    agent.wait_log(
        &format!("enforce-kill: container {guarded} (docker.io/library/fl-kill-profiled:test, cgroup id "),
        20,
    );

    // allowed: the shell and its applets are /bin/busybox
    let (out, code) = ctr_sh(&guarded, "ok", "cp /bin/busybox /tmp/echo && echo copied");
    assert_eq!((out.as_str(), code), ("copied", 0));
    // denied: the copy is killed before it runs
    let (out, code) = ctr_sh(&guarded, "attack", "/tmp/echo SURVIVED; echo rc=$?");
    assert_eq!((out.as_str(), code), ("rc=137", 0), "the copied binary ran");
    // the agent evaluates events asynchronously: let it alert on the kill
    // before the profile changes under it
    wait_kills(&agent, 1);
    // the image's /opt/tool runs (busybox knows no applet `tool`: 127); a file written over
    // it in the container (the overlay's upper layer) is another executable at the same
    // path, killed
    let (out, code) = ctr_sh(&guarded, "tool", "/opt/tool; echo rc=$?");
    assert_eq!((out.as_str(), code), ("rc=127", 0), "the image's /opt/tool");
    let (out, code) = ctr_sh(
        &guarded,
        "overwrite",
        "cp /bin/busybox /opt/tool && /opt/tool; echo rc=$?",
    );
    assert_eq!(
        (out.as_str(), code),
        ("rc=137", 0),
        "the overwritten /opt/tool ran"
    );
    wait_kills(&agent, 2);
    // a restart (same container, a new cgroup) is put under the profile again: the
    // attack is killed there too
    let cgroup_of = |line: &str| -> u64 {
        line.split("cgroup id ")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no cgroup id in {line}"))
    };
    let bound = format!("enforce-kill: container {guarded} ({PROFILED}, cgroup id ");
    let first = agent
        .stderr()
        .lines()
        .find(|l| l.contains(&bound))
        .map(cgroup_of)
        .expect("the first binding");
    guarded_c.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let second = loop {
        let ids: Vec<u64> = agent
            .stderr()
            .lines()
            .filter(|l| l.contains(&bound) && l.contains("is under its profile"))
            .map(cgroup_of)
            .collect();
        if let Some(&id) = ids.iter().find(|&&id| id != first) {
            break id;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the restarted container was not put under its profile:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_ne!(first, second);
    let (out, code) = ctr_sh(
        &guarded,
        "attack2",
        "cp /bin/busybox /tmp/echo && /tmp/echo SURVIVED; echo rc=$?",
    );
    assert_eq!((out.as_str(), code), ("rc=137", 0), "ran after a restart");
    wait_kills(&agent, 3);
    // a process moved into a cgroup below its container's (as a workload with a writable
    // cgroup tree can do) is still the container's: its cgroup is bound on its first event
    // there, and the attack is killed
    let task = guarded_c.task_pid();
    let cg_dir = falco_learn_probe::kill::cgroup2_mount()
        .expect("cgroup v2")
        .join(format!("default/{guarded}"));
    let sub = cg_dir.join("fl-sub");
    let nested = {
        let guarded = guarded.clone();
        std::thread::spawn(move || {
            ctr_sh(
                &guarded,
                "nested",
                "echo $$ > /tmp/shpid; while [ ! -e /tmp/moved ]; do busybox sleep 1; \
                 done; /bin/busybox true; busybox sleep 2; /tmp/echo SURVIVED; echo rc=$?",
            )
        })
    };
    let root = std::path::PathBuf::from(format!("/proc/{task}/root"));
    let host_pid = host_pid_of(&root, "tmp/shpid", &cg_dir);
    std::fs::create_dir(&sub).expect("mkdir the sub-cgroup");
    std::fs::write(sub.join("cgroup.procs"), host_pid.to_string()).expect("move the shell");
    std::fs::write(root.join("tmp/moved"), b"").expect("tell the shell");
    let (out, code) = nested.join().expect("nested shell");
    let _ = std::fs::remove_dir(&sub);
    assert_eq!((out.as_str(), code), ("rc=137", 0), "ran in a sub-cgroup");
    assert!(
        agent.stderr().lines().any(|l| l.contains(&bound)
            && l.contains("is under its profile")
            && cgroup_of(l) != first
            && cgroup_of(l) != second),
        "the sub-cgroup was not put under the profile:\n{}",
        agent.stderr()
    );
    wait_kills(&agent, 4);
    // a cgroup below the container's named like another container (a Docker scope): its
    // events name that container, whose image is not known, so userspace never binds it;
    // the kernel judges it by the profile of the nearest cgroup above it that is bound.
    // The copy is killed in the kernel, and the internal alert names the kill
    let spoof = cg_dir.join(format!("docker-{}.scope", "ab".repeat(32)));
    let nested3 = {
        let guarded = guarded.clone();
        std::thread::spawn(move || {
            ctr_sh(
                &guarded,
                "nested3",
                "mkfifo /tmp/go3 && echo $$ > /tmp/shpid3 && read x < /tmp/go3; \
                 /tmp/echo SURVIVED; echo rc=$?",
            )
        })
    };
    let host_pid3 = host_pid_of(&root, "tmp/shpid3", &cg_dir);
    std::fs::create_dir(&spoof).expect("mkdir the spoofing sub-cgroup");
    std::fs::write(spoof.join("cgroup.procs"), host_pid3.to_string()).expect("move the shell");
    // on a hybrid host the probe names containers by the v1 memory hierarchy's path: the
    // same move there
    let spoof_v1 = std::path::Path::new("/sys/fs/cgroup/memory/default")
        .join(&guarded)
        .join(spoof.file_name().expect("a name"));
    let v1 = spoof_v1.parent().is_some_and(|d| d.is_dir());
    if v1 {
        std::fs::create_dir(&spoof_v1).expect("mkdir the v1 spoofing cgroup");
        std::fs::write(spoof_v1.join("cgroup.procs"), host_pid3.to_string())
            .expect("move the shell (v1)");
    }
    std::fs::write(root.join("tmp/go3"), b"go\n").expect("tell the shell");
    let (out, code) = nested3.join().expect("third nested shell");
    let _ = std::fs::remove_dir(&spoof);
    if v1 {
        let _ = std::fs::remove_dir(&spoof_v1);
    }
    assert_eq!(
        (out.as_str(), code),
        ("rc=137", 0),
        "ran in a sub-cgroup named like another container"
    );
    // a reviewed profile that allows the copy, reloaded with SIGHUP, lets it run (learned,
    // it was on the overlay's upper layer: written in the container)
    p.learn_exec("/tmp/echo", false, 2);
    if let Some(e) = p.exec.get_mut("/tmp/echo") {
        e.upper_layer = true;
    }
    std::fs::write(
        profiles.join("profiled.yaml"),
        falco_learn_profiler::to_yaml(&p),
    )
    .expect("rewrite profile");
    agent.signal(libc::SIGHUP);
    agent.wait_log(
        "enforce-kill: docker.io/library/fl-kill-profiled:test allows 4 executable(s)",
        20,
    );
    let (out, code) = ctr_sh(&guarded, "reviewed", "/tmp/echo ALLOWED-NOW");
    assert_eq!((out.as_str(), code), ("ALLOWED-NOW", 0));
    // the image without a profile is not enforced
    let (out, code) = ctr_sh(
        &free,
        "attack",
        "cp /bin/busybox /tmp/echo && /tmp/echo RAN",
    );
    assert_eq!((out.as_str(), code), ("RAN", 0));

    std::thread::sleep(Duration::from_secs(2));
    let metrics = scrape(metrics_port);
    for line in [
        "falco_learn_kills_total{image=\"docker.io/library/fl-kill-profiled:test\"} 4",
        "falco_learn_kill_enforced_containers 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in:\n{metrics}"
        );
    }

    // a new container whose entrypoint is outside the profile: its first exec comes before
    // the agent knows the container, so the kernel cannot judge it; the agent kills it
    // once it has
    let late = format!("fl-ek-late-{pid}");
    let _late_c = CtrContainer::run(&profiled.reference, &late, &[], &["/opt/sleep", "60"]);
    wait_task_stopped(&agent, &late, "whose entrypoint is outside the profile");
    // the same with an entrypoint the kernel would have killed for where its file lives: a
    // tmpfs file bound onto the image's /opt/nap/sleep (the profile's matcher leaves a
    // tmpfs to the default rules; the kill from userspace decides as the kernel does)
    let shm = tempfile::tempdir_in("/dev/shm").expect("a tmpfs directory");
    std::fs::copy("/bin/busybox", shm.path().join("sleep")).expect("copy to the tmpfs");
    let bind = format!(
        "type=bind,src={},dst=/opt/nap/sleep,options=rbind:ro",
        shm.path().join("sleep").display()
    );
    let late2 = format!("fl-ek-late2-{pid}");
    let _late2_c = CtrContainer::run(
        &profiled.reference,
        &late2,
        &["--mount", &bind],
        &["/opt/nap/sleep", "60"],
    );
    wait_task_stopped(
        &agent,
        &late2,
        "whose entrypoint is a tmpfs file at an allowed path",
    );
    let metrics = scrape(metrics_port);
    let line = "falco_learn_late_kills_total{image=\"docker.io/library/fl-kill-profiled:test\",result=\"killed\"} 2";
    assert!(
        metrics.lines().any(|l| l == line),
        "no `{line}` in:\n{metrics}"
    );
    agent.terminate(30);
    let alerts: Vec<serde_json::Value> = agent
        .stdout_lines()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let rule = "Unexpected process in docker.io/library/fl-kill-profiled:test (falco-learn)";
    let killed: Vec<&serde_json::Value> = alerts
        .iter()
        .filter(|a| a["rule"] == rule && a["output_fields"]["proc.exepath"] == "/tmp/echo")
        .collect();
    // before and after the restart, and in the sub-cgroup
    assert_eq!(killed.len(), 3, "alerts: {alerts:#?}");
    let a = killed[0];
    assert_eq!(a["output_fields"]["falco_learn.action"], "killed");
    assert_eq!(a["output_fields"]["container.id"], guarded.as_str());
    assert_eq!(a["priority"], "Warning");
    assert!(
        a["output"]
            .as_str()
            .is_some_and(|o| o.ends_with(" action=killed")),
        "{}",
        a["output"]
    );
    let tags: Vec<&str> = a["tags"]
        .as_array()
        .map(|t| t.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    assert!(
        tags.contains(&"falco_learn") && tags.contains(&"killed"),
        "{tags:?}"
    );
    // the entrypoint outside the profile: killed from userspace, once
    let late_alerts: Vec<&serde_json::Value> = alerts
        .iter()
        .filter(|a| a["rule"] == rule && a["output_fields"]["container.id"] == late.as_str())
        .collect();
    assert_eq!(late_alerts.len(), 1, "{late_alerts:#?}");
    let a = late_alerts[0];
    assert_eq!(a["output_fields"]["proc.exepath"], "/opt/sleep");
    assert_eq!(a["output_fields"]["falco_learn.action"], "killed_late");
    assert!(
        a["output"]
            .as_str()
            .is_some_and(|o| o.ends_with(" action=killed_late")),
        "{}",
        a["output"]
    );
    // the copy run in the cgroup named like another container: killed in the kernel, said
    // by the internal alert (its event names that container, which has no profile)
    let unmatched: Vec<&serde_json::Value> = alerts
        .iter()
        .filter(|a| a["rule"] == falco_learn_enforcer::pipeline::UNMATCHED_KILL_RULE)
        .collect();
    assert_eq!(unmatched.len(), 1, "{unmatched:#?}");
    let u = unmatched[0];
    assert_eq!(u["output_fields"]["proc.exepath"], "/tmp/echo");
    assert_eq!(u["output_fields"]["container.id"], "abababababab");
    assert_eq!(u["output_fields"]["falco_learn.action"], "killed");
    assert_eq!(u["priority"], "Critical");
    // the tmpfs file bound onto /opt/nap/sleep, a new container's entrypoint: killed from
    // userspace, once
    let nap: Vec<&serde_json::Value> = alerts
        .iter()
        .filter(|a| a["rule"] == rule && a["output_fields"]["proc.exepath"] == "/opt/nap/sleep")
        .collect();
    assert_eq!(nap.len(), 1, "{nap:#?}");
    assert_eq!(nap[0]["output_fields"]["falco_learn.action"], "killed_late");
    assert_eq!(nap[0]["output_fields"]["container.id"], late2.as_str());
    // the overwritten /opt/tool: killed in the kernel, once (the image's ran unalerted)
    let tool: Vec<&serde_json::Value> = alerts
        .iter()
        .filter(|a| a["rule"] == rule && a["output_fields"]["proc.exepath"] == "/opt/tool")
        .collect();
    assert_eq!(tool.len(), 1, "{tool:#?}");
    assert_eq!(tool[0]["output_fields"]["falco_learn.action"], "killed");
    // nothing else from the profiled containers is a profile alert: busybox is learned
    let others: Vec<&serde_json::Value> = alerts
        .iter()
        .filter(|a| {
            a["rule"] == rule
                && a["output_fields"]["proc.exepath"] != "/tmp/echo"
                && a["output_fields"]["proc.exepath"] != "/opt/tool"
                && a["output_fields"]["proc.exepath"] != "/opt/nap/sleep"
                && a["output_fields"]["container.id"] != late.as_str()
                && a["output_fields"]["container.id"] != late2.as_str()
        })
        .collect();
    assert!(others.is_empty(), "{others:#?}");
    // the unprofiled container's copy ran and was not killed
    assert!(
        !alerts
            .iter()
            .any(|a| a["output_fields"]["container.id"] == free.as_str()
                && a["output_fields"]["falco_learn.action"]
                    .as_str()
                    .is_some_and(|x| x.starts_with("killed"))),
        "{alerts:#?}"
    );
}

/// The host pid of the shell that wrote its pid (in the container's pid namespace) to `file`
/// under the container's `root`: the process of the container's cgroup (`cg_dir`) whose
/// innermost pid it is (waits 20 s at most for the file).
fn host_pid_of(root: &std::path::Path, file: &str, cg_dir: &std::path::Path) -> u32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let in_ns: u32 = loop {
        if let Some(p) = std::fs::read_to_string(root.join(file))
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the shell did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::fs::read_to_string(cg_dir.join("cgroup.procs"))
        .expect("cgroup.procs")
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/status")).is_ok_and(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))
                    .and_then(|v| v.split_whitespace().last()?.parse::<u32>().ok())
                    == Some(in_ns)
            })
        })
        .expect("the shell's host pid")
}

/// Wait (20 s at most) until the task of container `name` (the one `what`) has stopped.
fn wait_task_stopped(agent: &Agent, name: &str, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !task_stopped(name) {
        assert!(
            std::time::Instant::now() < deadline,
            "the container {what} still runs:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the task of container `name` has stopped (`ctr task ls`: STOPPED).
fn task_stopped(name: &str) -> bool {
    let out = std::process::Command::new("ctr")
        .args(["task", "ls"])
        .output()
        .expect("ctr task ls");
    String::from_utf8_lossy(&out.stdout).lines().any(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        cols.first() == Some(&name) && cols.last() == Some(&"STOPPED")
    })
}

/// Wait (20 s at most) until the agent has printed `n` alerts marked `action=killed` (in
/// the kernel): it evaluates events asynchronously, and the profile must not change under
/// a kill.
fn wait_kills(agent: &Agent, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = agent
            .stdout_lines()
            .iter()
            .filter(|l| l.contains("\"falco_learn.action\":\"killed\""))
            .count();
        if got >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{got} action=killed alert(s), want {n}:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
