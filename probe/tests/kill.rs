//! enforce-kill in the kernel, on a real containerd container: once the
//! container's cgroup is under a profile that allows only
//! `/bin/busybox`, a binary copied into the container and run is killed by
//! SIGKILL at exec (exit status 137, none of its output), its exec event is
//! marked killed, busybox applets keep working, and processes outside the
//! cgroup are never touched.
//!
//! Needs root, containerd and ctr (CI: `.ci/setup`); elsewhere a loud SKIP.

use falco_learn_test_support as support;

use falco_learn_event::EventType;
use falco_learn_probe::kill::cgroup_of;
use falco_learn_probe::ProbeConfig;
use std::process::Command;
use support::*;

#[test]
fn exec_outside_the_profile_is_killed_in_the_kernel() {
    if !may_run("enforce-kill test", &["containerd", "ctr"]) {
        return;
    }
    let _daemon = Containerd::start();
    let rootfs = busybox_rootfs("kill");
    let image = CtrImage::import("docker.io/library/fl-kill-busybox:test", &rootfs);
    let live = LiveProbe::start(ProbeConfig {
        kill: true,
        ..ProbeConfig::default()
    });
    let policy = live.probe.kill_policy().expect("kill policy");

    let name = format!("fl-kill-{}", std::process::id());
    let _c = CtrContainer::run(&image.reference, &name, &[], &["/bin/sleep", "60"]);
    let task_pid: u32 = stdout(Command::new("ctr").args(["task", "ls"]))
        .lines()
        .find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.first() == Some(&name.as_str()))
                .then(|| cols.get(1).and_then(|p| p.parse().ok()))
                .flatten()
        })
        .expect("container task pid");
    let cg = cgroup_of(task_pid).expect("container cgroup");
    assert_eq!(cg.path, format!("/default/{name}"));
    // the id every event of the container carries is that cgroup's
    let first = live.wait_for("an event of the container", 10, |e| e.container.id == name);
    assert_eq!(first.cgroup_id, cg.id);
    // that cgroup is the container's own (its directory kept for the sweep); a cgroup
    // id the process is not in is not decided; the host's cgroup is no container's
    use falco_learn_probe::kill::{container_cgroup, CgroupClaim, CgroupOwner};
    let ns = ["default".to_string()];
    let claim = |pid, cgroup_id, container_id| CgroupClaim {
        pid,
        start_ts: first.process.start_ts,
        cgroup_id,
        container_id,
    };
    match container_cgroup(claim(task_pid, cg.id, &name), &ns) {
        CgroupOwner::Container { dir: Some(d) } => {
            assert!(d.ends_with(format!("default/{name}")), "{}", d.display())
        }
        other => panic!("the container's cgroup: {other:?}"),
    }
    assert!(matches!(
        container_cgroup(claim(task_pid, cg.id + 1, &name), &ns),
        CgroupOwner::Unknown(_)
    ));
    assert!(matches!(
        container_cgroup(claim(task_pid, cg.id, "default"), &ns),
        CgroupOwner::Shared(_)
    ));
    let ours = cgroup_of(std::process::id()).expect("own cgroup");
    assert!(matches!(
        container_cgroup(claim(std::process::id(), ours.id, &name), &ns),
        CgroupOwner::Shared(_)
    ));

    // the host is never put under a profile
    let own = cgroup_of(std::process::id()).expect("own cgroup");
    assert_eq!(policy.set_profile(7, ["/bin/busybox"]).expect("allow"), 1);
    assert!(
        policy.enforce(own.id, 7).is_err(),
        "our own cgroup was accepted"
    );
    assert!(
        policy.enforce(1, 7).is_err(),
        "the root cgroup was accepted"
    );
    assert!(
        policy.enforce(cg.id, 8).is_err(),
        "a profile without allow-list was accepted"
    );
    policy.enforce(first.cgroup_id, 7).expect("enforce");
    assert_eq!(policy.enforced(), vec![(cg.id, 7)]);

    // busybox applets are allowed; the copy is not
    let (out, code) = ctr_sh(&name, "allowed", "cp /bin/busybox /tmp/echo && echo copied");
    assert_eq!((out.as_str(), code), ("copied", 0));
    let (out, code) = ctr_sh(&name, "denied", "/tmp/echo SURVIVED; echo rc=$?");
    assert_eq!((out.as_str(), code), ("rc=137", 0), "the copied binary ran");

    let killed = live.wait_for("the killed exec", 10, |e| {
        e.event_type() == EventType::Execve && e.process.exepath == "/tmp/echo"
    });
    assert!(
        killed.process.exe_flags.killed,
        "{:?}",
        killed.process.exe_flags
    );
    assert_eq!(killed.container.id, name);
    // (busybox sh runs cp in-process: the allowed exec is the shell's own)
    let sh = live.wait_for("the allowed shell", 10, |e| {
        e.event_type() == EventType::Execve
            && e.container.id == name
            && e.process.exepath == "/bin/busybox"
            && e.process.args.get(1).is_some_and(|a| a.starts_with("cp "))
    });
    assert!(!sh.process.exe_flags.killed);

    // the same binary outside the container's cgroup runs
    // (busybox picks its applet by the name it runs under: the copy is `echo`)
    let host_copy = rootfs.join("echo");
    std::fs::copy("/bin/busybox", &host_copy).expect("copy on the host");
    let out = stdout(Command::new(&host_copy).arg("host-ok"));
    assert_eq!(out, "host-ok");

    // allowing /tmp/echo from the image's lower layer does not allow the copy: it lives on
    // the overlay's upper layer (written in the container)
    policy
        .set_profile(7, ["/bin/busybox", "/tmp/echo"])
        .expect("widen to the image's file");
    let (out, code) = ctr_sh(&name, "lower-only", "/tmp/echo SURVIVED; echo rc=$?");
    assert_eq!(
        (out.as_str(), code),
        ("rc=137", 0),
        "an upper-layer file ran"
    );
    // widening the profile to the upper layer's file lets the copy run; releasing the
    // cgroup too
    let upper = falco_learn_probe::kill::AllowedExec {
        upper_layer: true,
        ..falco_learn_probe::kill::AllowedExec::from("/tmp/echo")
    };
    policy
        .set_profile(
            7,
            [
                falco_learn_probe::kill::AllowedExec::from("/bin/busybox"),
                upper,
            ],
        )
        .expect("widen");
    let (out, _) = ctr_sh(&name, "widened", "/tmp/echo SURVIVED");
    assert_eq!(out, "SURVIVED");
    // a file on a tmpfs (the container's /dev) at a path allowed from the image is killed;
    // allowed as learned from a tmpfs, it runs
    policy
        .set_profile(7, ["/bin/busybox", "/dev/echo"])
        .expect("allow /dev/echo from the image");
    let (out, code) = ctr_sh(
        &name,
        "tmpfs",
        "cp /bin/busybox /dev/echo && /dev/echo SURVIVED; echo rc=$?",
    );
    assert_eq!((out.as_str(), code), ("rc=137", 0), "a tmpfs file ran");
    let tmpfs = falco_learn_probe::kill::AllowedExec {
        tmpfs: true,
        ..falco_learn_probe::kill::AllowedExec::from("/dev/echo")
    };
    policy
        .set_profile(
            7,
            [
                falco_learn_probe::kill::AllowedExec::from("/bin/busybox"),
                tmpfs,
            ],
        )
        .expect("allow /dev/echo from a tmpfs");
    let (out, _) = ctr_sh(&name, "tmpfs-allowed", "/dev/echo SURVIVED");
    assert_eq!(out, "SURVIVED");
    policy.set_profile(7, ["/bin/busybox"]).expect("narrow");
    policy.release(cg.id);
    assert_eq!(policy.enforced(), vec![]);
    let (out, _) = ctr_sh(&name, "released", "/tmp/echo SURVIVED");
    assert_eq!(out, "SURVIVED");
}
