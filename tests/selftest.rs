//! `falco-learn selftest` on this machine's kernel: the probe loads and every check passes
//! (the same checks the kernel matrix, `tests/kernels/matrix.sh`, runs on other kernels).

mod common;

use std::process::Command;

const CHECKS: &[&str] = &[
    "verifier-margin",
    "exec",
    "exec-tmpfs",
    "exec-other-fs",
    "exec-memfd",
    "exec-execveat",
    "exec-ia32",
    "ia32-syscall",
    "ia32-handled",
    "exec-x32",
    "exec-deleted",
    "exec-long-path",
    "open-write",
    "connect-tcp",
    "server-tcp",
    "server-udp",
    "symlink",
    "ptrace",
    "fork-exit",
    "kernel-filter",
    "kernel-filter-net",
    "kernel-filter-unprofiled",
    "event-filter",
    "cgroup-home",
    "io-uring-rename",
    "enforce-kill",
];

#[test]
fn selftest_passes_every_check_on_this_kernel() {
    if common::skip_without_root("the probe self-test") {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_falco-learn"))
        .args(["--log", "warn", "selftest"])
        .output()
        .expect("run falco-learn selftest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "selftest failed ({:?}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for check in CHECKS {
        let line = format!("selftest: ok   {check:<17} ");
        assert!(
            stdout.contains(&line),
            "no passing `{check}` line in:\n{stdout}"
        );
    }
    assert!(
        stdout.contains(&format!(
            "selftest: all {} checks passed on Linux ",
            CHECKS.len()
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

#[test]
fn selftest_without_kill_skips_only_that_check() {
    if common::skip_without_root("the probe self-test") {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_falco-learn"))
        .args(["--log", "warn", "selftest", "--no-kill"])
        .output()
        .expect("run falco-learn selftest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains("enforce-kill"), "{stdout}");
    assert!(
        stdout.contains(&format!("selftest: all {} checks passed", CHECKS.len() - 1)),
        "{stdout}"
    );
}
