//! An io_uring instance made before the probe starts may hold a rename queued behind a
//! request that waits: when it runs, no submission is traced and no syscall ends a
//! generation of the verdict cache of opens. A probe that starts while another process
//! holds an instance keeps the cache off, naming that process.
//!
//! A test binary of its own: the instance is a child's, and the other live tests' probes
//! must not see it.

use falco_learn_probe::filter::VerdictCacheOff;
use falco_learn_probe::{Probe, ProbeConfig};
use falco_learn_test_support as support;
use std::time::{Duration, Instant};

#[test]
fn an_io_uring_instance_from_before_the_start_keeps_the_cache_off() {
    if !support::may_run("the io_uring-before-start test", &[]) {
        return;
    }
    // the child: io_uring_setup, then wait to be killed (raw syscalls only after fork)
    let mut params = [0u8; 120];
    // SAFETY: fork; the child makes raw syscalls on memory prepared before and _exits.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork");
    if child == 0 {
        // SAFETY: io_uring_setup(4 entries, params) on a zeroed struct io_uring_params.
        let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4, params.as_mut_ptr()) };
        if fd < 0 {
            // SAFETY: leaving the child.
            unsafe { libc::_exit(3) };
        }
        loop {
            // SAFETY: waiting for SIGKILL.
            unsafe { libc::pause() };
        }
    }
    let child = child as u32;
    let has_ring = || {
        std::fs::read_dir(format!("/proc/{child}/fd")).is_ok_and(|d| {
            d.flatten().any(|f| {
                std::fs::read_link(f.path()).is_ok_and(|l| l.as_os_str() == "anon_inode:[io_uring]")
            })
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !has_ring() {
        let mut st = 0;
        // SAFETY: non-blocking wait on our own child.
        if unsafe { libc::waitpid(child as i32, &mut st, libc::WNOHANG) } == child as i32 {
            assert!(
                !support::in_ci(),
                "io_uring_setup failed in CI (status {st:#x})"
            );
            eprintln!("!!!!! io_uring_setup failed here: not tested !!!!!");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the child made no io_uring instance"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (probe, _rx) =
        Probe::start(ProbeConfig::default()).unwrap_or_else(|e| panic!("probe: {e}"));
    let off = probe.open_verdict_cache_off();
    // SAFETY: ending our own child.
    unsafe {
        libc::kill(child as i32, libc::SIGKILL);
        libc::waitpid(child as i32, std::ptr::null_mut(), 0);
    }
    assert_eq!(
        off,
        Some(VerdictCacheOff::IoUringBeforeStart { pid: child })
    );
    drop(probe);
    // with no instance left, a new probe keeps it on (unless another process of this
    // machine holds one: never in CI)
    let (probe, _rx) =
        Probe::start(ProbeConfig::default()).unwrap_or_else(|e| panic!("probe: {e}"));
    match probe.open_verdict_cache_off() {
        None => {}
        Some(VerdictCacheOff::IoUringBeforeStart { pid }) if !support::in_ci() => {
            eprintln!("!!!!! process {pid} holds an io_uring instance: the cache stays off !!!!!");
        }
        other => panic!("the cache after the instance is gone: {other:?}"),
    }
}
