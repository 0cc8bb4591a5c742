//! A volume's executable, learned then enforced, end to end, as root, on real containerd
//! containers: `falco-learn --image … --duration …` learns a container that runs a tool
//! from a volume (a host directory on a disk filesystem, as a disk-backed `emptyDir` or a
//! `hostPath` is) and the image's own `/opt/tool`; the exported profile says the volume's
//! tool lives on another filesystem (`other_fs: true`) and the image's files do not; under
//! `run --mode enforce-kill` with that profile the volume's tool runs, and the same volume
//! file bound onto `/opt/tool` (a process with mount rights; here made from the host with
//! `nsenter`) is killed in the kernel: it is not the image's file.
//!
//! Needs root, containerd and ctr (CI: `.ci/setup`); elsewhere a loud SKIP.

mod common;
use falco_learn_test_support as support;

use common::Agent;
use std::process::Command;
use support::{
    busybox_rootfs, ctr_sh, may_run, mount_in, stdout, Containerd, CtrContainer, CtrImage,
};

const IMAGE: &str = "docker.io/library/fl-volume-tool:test";

#[test]
fn a_learned_volume_executable_runs_and_one_bound_over_an_image_file_is_killed() {
    if !may_run("the volume enforce-kill test", &["containerd", "ctr"]) {
        return;
    }
    let _daemon = Containerd::start();
    let rootfs = busybox_rootfs("volume-tool");
    std::fs::create_dir_all(rootfs.join("opt")).expect("mkdir opt");
    // the image's own tool (busybox knows no applet `tool`: it exits 127)
    std::fs::copy("/bin/busybox", rootfs.join("opt/tool")).expect("copy busybox");
    let image = CtrImage::import(IMAGE, &rootfs);
    // the volume: busybox as `echo` (it runs the applet of its name)
    let volume = tempfile::tempdir_in("/var/tmp").expect("a volume directory");
    std::fs::copy("/bin/busybox", volume.path().join("echo")).expect("copy to the volume");
    let mount = format!(
        "type=bind,src={},dst=/data,options=rbind:rw",
        volume.path().display()
    );
    let work = tempfile::tempdir().expect("tmp");
    let store = work.path().join("store");
    let profiles = work.path().join("profiles");
    let s = |p: &std::path::Path| p.display().to_string();

    // 1. learning: the container starts inside the window and runs both tools
    let pid = std::process::id();
    let mut learner = Agent::spawn(
        "[learn] ",
        &[
            "--image",
            "fl-volume-tool",
            "--duration",
            "10s",
            "--store",
            &s(&store),
        ],
    );
    learner.wait_log("learning from live events", 60);
    let learned = format!("fl-vol-learn-{pid}");
    let learned_c = CtrContainer::run(
        &image.reference,
        &learned,
        &["--mount", &mount],
        &[
            "/bin/sh",
            "-c",
            "while true; do /data/echo tick > /dev/null; /opt/tool; sleep 1; done",
        ],
    );
    learner.wait_success(60);
    drop(learned_c);
    let exported = stdout(
        Command::new(env!("CARGO_BIN_EXE_falco-learn"))
            .args(["profiles", "export", "--store", &s(&store), "--dir"])
            .arg(&profiles)
            .env_remove("FALCO_LEARN_STORE"),
    );
    assert!(exported.starts_with(IMAGE), "{exported}");
    let path = std::fs::read_dir(&profiles)
        .expect("profiles dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "yaml"))
        .expect("an exported profile");
    let text = std::fs::read_to_string(&path).expect("read the profile");
    let profile = falco_learn_profiler::from_yaml(&text, "exported").expect("the profile loads");
    let entry = |p: &str| {
        profile
            .exec
            .get(p)
            .unwrap_or_else(|| panic!("{p} was not learned:\n{text}"))
    };
    assert!(entry("/data/echo").other_fs, "{text}");
    assert!(!entry("/data/echo").is_drift(), "{text}");
    for own in ["/bin/busybox", "/opt/tool"] {
        assert!(!entry(own).other_fs, "{own}: {text}");
    }
    assert!(!profile.learning.tainted, "{text}");

    // 2. enforcing that profile on a new container of the image with the same volume
    let mut agent = Agent::spawn(
        "[enforce] ",
        &["run", "--mode", "enforce-kill", "--profiles", &s(&profiles)],
    );
    agent.wait_log("enforce-kill mode running", 60);
    let guarded = format!("fl-vol-guarded-{pid}");
    let guarded_c = CtrContainer::run(
        &image.reference,
        &guarded,
        &["--mount", &mount],
        &["/bin/sleep", "60"],
    );
    agent.wait_log(&format!("enforce-kill: container {guarded} ("), 20);
    agent.wait_log("is under its profile", 20);
    // the volume's tool, learned from there, runs; so does the image's tool (127: no applet)
    let (out, code) = ctr_sh(&guarded, "volume-tool", "/data/echo RAN; echo rc=$?");
    assert_eq!((out.as_str(), code), ("RAN\nrc=0", 0));
    let (out, code) = ctr_sh(&guarded, "image-tool", "/opt/tool; echo rc=$?");
    assert_eq!((out.as_str(), code), ("rc=127", 0));
    // the volume's file bound onto the image's /opt/tool: another file at that path, killed
    mount_in(
        guarded_c.task_pid(),
        &["--bind", "/data/echo", "/opt/tool"],
        "bind mount",
    );
    let (out, code) = ctr_sh(&guarded, "bound", "/opt/tool SURVIVED; echo rc=$?");
    assert_eq!(
        (out.as_str(), code),
        ("rc=137", 0),
        "a volume's file bound onto an image executable ran"
    );
    agent.terminate(30);
    drop(guarded_c);
}
