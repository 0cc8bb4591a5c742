//! The kernel's filters, live. A failed update of a plan or a profile drops nothing (the
//! maps then hold neither the old nor the new one whole). Outbound traffic on IPv6: a process in a cgroup of the
//! test's own, under a profile that allows TCP to `[::1]:P` and to `127.0.0.1:Q`, connects
//! to `[::1]:P` (dropped in the kernel), to `[::1]:R` (outside the profile: reported) and,
//! from an IPv6 socket, to `[::ffff:127.0.0.1]:Q` (an IPv4-mapped peer, which userspace may
//! render as IPv4: always reported). The IPv4 cases run on every kernel of the matrix in
//! `falco-learn selftest` (`kernel-filter-net`).
//!
//! Needs root; elsewhere a loud SKIP (a failure in CI).

use falco_learn_event::{Args, EventType};
use falco_learn_probe::filter::{
    NetFilterPlan, NetSidePlan, OutboundAllow, WriteAllow, IPPROTO_TCP,
};
use falco_learn_probe::ProbeConfig;
use falco_learn_test_support::{may_run, LiveProbe};
use std::ffi::CString;
use std::net::{Ipv6Addr, TcpListener};
use std::os::unix::fs::MetadataExt;

fn sockaddr6(addr: Ipv6Addr, port: u16) -> libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain data; all zeroes is valid.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_port = port.to_be();
    sa.sin6_addr.s6_addr = addr.octets();
    sa
}

#[test]
fn ipv6_connects_the_profile_allows_are_dropped_and_mapped_peers_reported() {
    if !may_run("the IPv6 kernel filter test", &[]) {
        return;
    }
    let live = LiveProbe::start(ProbeConfig::default());
    let root = falco_learn_probe::kill::cgroup2_mount().expect("cgroup v2 mounted");
    let cg = root.join(format!("fl-test-net6-{}", std::process::id()));
    std::fs::create_dir(&cg).expect("create the test's cgroup");
    let id = std::fs::metadata(&cg).expect("cgroup").ino();
    let listen = |addr: &str| {
        let l = TcpListener::bind(addr).expect("bind");
        let port = l.local_addr().expect("addr").port();
        (l, port)
    };
    let (_allowed_l, allowed) = listen("[::1]:0");
    let (_other_l, other) = listen("[::1]:0");
    let (_v4_l, v4) = listen("127.0.0.1:0");
    live.probe
        .set_net_filter(&NetFilterPlan {
            outbound: NetSidePlan {
                protocols: vec![IPPROTO_TCP],
                needed: Vec::new(),
            },
            ..NetFilterPlan::off()
        })
        .expect("net filter");
    let pf = live.probe.profile_filter();
    const PROFILE: u32 = 0x7e57;
    pf.set_profile(PROFILE, &WriteAllow::default())
        .expect("profile");
    let entry = |addr: std::net::IpAddr, port, prefix| OutboundAllow {
        proto: IPPROTO_TCP,
        port,
        addr,
        prefix,
    };
    pf.set_outbound(
        PROFILE,
        &[
            entry(Ipv6Addr::LOCALHOST.into(), allowed, 128),
            entry([127, 0, 0, 1].into(), v4, 32),
        ],
    )
    .expect("outbound entries");
    pf.bind(id, PROFILE).expect("bind the cgroup");
    let procs = CString::new(cg.join("cgroup.procs").to_string_lossy().as_bytes()).expect("path");
    let targets = [
        sockaddr6(Ipv6Addr::LOCALHOST, allowed),
        sockaddr6(Ipv6Addr::LOCALHOST, other),
        sockaddr6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x7f00, 1), v4),
    ];
    let before: u64 = live
        .probe
        .kernel_stats()
        .iter()
        .map(|(_, s)| s.profile_filtered)
        .sum();
    let pid = in_cgroup(&procs, || {
        targets.iter().all(|sa| connect_raw(libc::AF_INET6, sa))
    });
    pf.release(id);
    let to = |port: u16| {
        move |e: &falco_learn_event::Event| {
            e.process.pid == pid
                && e.event_type() == EventType::Connect
                && e.fd.as_ref().is_some_and(|f| f.sport == Some(port))
        }
    };
    live.wait_for("the connect outside the profile", 10, to(other));
    let mapped = live.wait_for("the connect to an IPv4-mapped peer", 10, to(v4));
    match &mapped.args {
        Args::Connect { addr, .. } => assert_eq!(addr, &format!("::ffff:127.0.0.1:{v4}")),
        a => panic!("{a:?}"),
    }
    let after: u64 = live
        .probe
        .kernel_stats()
        .iter()
        .map(|(_, s)| s.profile_filtered)
        .sum();
    assert_eq!(after - before, 1, "one connect dropped in the kernel");
    assert!(
        live.matching(to(allowed)).is_empty(),
        "the allowed connect was reported"
    );
    pf.drop_profile(PROFILE);
    let _ = std::fs::remove_dir(&cg);
}

/// Fork a child that joins the cgroup (`procs`: its `cgroup.procs`, "0" moves the writer),
/// runs `work` (raw syscalls only) and exits; returns its pid once it has exited
/// successfully.
fn in_cgroup(procs: &CString, work: impl FnOnce() -> bool) -> u32 {
    // SAFETY: the child makes raw syscalls on memory prepared before the fork, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: as above.
        unsafe {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, c"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(2);
            }
            libc::close(fd);
            libc::_exit(if work() { 0 } else { 3 });
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child {status:#x}"
    );
    pid as u32
}

/// A TCP connect to the sockaddr `sa` (a `sockaddr_in` or `sockaddr_in6` of `family`), raw
/// syscalls only; the socket is closed.
fn connect_raw<T>(family: libc::c_int, sa: &T) -> bool {
    let len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: socket/connect/close on a sockaddr the caller built for `family`.
    unsafe {
        let s = libc::socket(family, libc::SOCK_STREAM, 0);
        let ok = s >= 0 && libc::connect(s, (sa as *const T).cast(), len) == 0;
        if s >= 0 {
            libc::close(s);
        }
        ok
    }
}

/// Fork a child that joins the cgroup and connects to the IPv4 loopback `port` over TCP;
/// returns its pid.
fn connect_from_cgroup(procs: &CString, port: u16) -> u32 {
    // SAFETY: sockaddr_in is plain data; all zeroes is valid.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = port.to_be();
    sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    in_cgroup(procs, || connect_raw(libc::AF_INET, &sa))
}

/// A plan or a profile the kernel maps cannot take whole leaves neither the old nor the new
/// one in force: the filter turns off (a plan) or the profile's containers are released (a
/// profile), so the events go to userspace instead of being dropped on stale entries.
#[test]
fn a_failed_update_drops_nothing() {
    use falco_learn_probe::filter::IPPROTO_UDP;
    if !may_run("the kernel filter's failed-update test", &[]) {
        return;
    }
    let live = LiveProbe::start(ProbeConfig::default());
    let root = falco_learn_probe::kill::cgroup2_mount().expect("cgroup v2 mounted");
    let cg = root.join(format!("fl-test-netfail-{}", std::process::id()));
    std::fs::create_dir(&cg).expect("create the test's cgroup");
    let id = std::fs::metadata(&cg).expect("cgroup").ino();
    let procs = CString::new(cg.join("cgroup.procs").to_string_lossy().as_bytes()).expect("path");
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let tcp_on = NetFilterPlan {
        outbound: NetSidePlan {
            protocols: vec![IPPROTO_TCP],
            needed: Vec::new(),
        },
        ..NetFilterPlan::off()
    };
    live.probe.set_net_filter(&tcp_on).expect("plan");
    let pf = live.probe.profile_filter();
    const PROFILE: u32 = 0x7e5a;
    let allowed = OutboundAllow {
        proto: IPPROTO_TCP,
        port,
        addr: [127, 0, 0, 1].into(),
        prefix: 32,
    };
    pf.set_profile(PROFILE, &WriteAllow::default())
        .expect("profile");
    pf.set_outbound(PROFILE, &[allowed])
        .expect("outbound entries");
    pf.bind(id, PROFILE).expect("bind the cgroup");
    let connects = |pid: u32| {
        live.matching(|e| e.process.pid == pid && e.event_type() == EventType::Connect)
            .len()
    };
    // the filter works: the allowed connect is dropped
    let dropped = connect_from_cgroup(&procs, port);

    // 1. a profile update the kernel refuses (a prefix longer than the address) drops the
    //    profile: its cgroup is released, and binding it again is refused
    let bad = OutboundAllow {
        prefix: 33,
        ..allowed
    };
    let err = pf
        .set_outbound(PROFILE, &[allowed, bad])
        .expect_err("refused");
    assert!(
        err.to_string().contains("no longer filtered in the kernel"),
        "{err}"
    );
    assert!(
        pf.bind(id, PROFILE).is_err(),
        "a dropped profile took a cgroup"
    );
    let after_profile = connect_from_cgroup(&procs, port);
    live.wait_for("the connect after the failed profile update", 10, |e| {
        e.process.pid == after_profile && e.event_type() == EventType::Connect
    });

    // 2. a plan RULE_PORTS cannot hold (more pairs than its 8192 entries) turns the filter
    //    off: the profile, loaded again and bound, drops nothing
    pf.set_profile(PROFILE, &WriteAllow::default())
        .expect("profile");
    pf.set_outbound(PROFILE, &[allowed])
        .expect("outbound entries");
    pf.bind(id, PROFILE).expect("bind the cgroup");
    let too_many = NetFilterPlan {
        outbound: NetSidePlan {
            protocols: vec![IPPROTO_TCP, IPPROTO_UDP],
            needed: (1..=9000u16).map(|p| (IPPROTO_UDP, p)).collect(),
        },
        ..NetFilterPlan::off()
    };
    assert!(live.probe.set_net_filter(&too_many).is_err());
    let after_plan = connect_from_cgroup(&procs, port);
    live.wait_for("the connect after the failed plan update", 10, |e| {
        e.process.pid == after_plan && e.event_type() == EventType::Connect
    });
    // and the first one, before any failure, was dropped (both later ones are here)
    assert_eq!(connects(dropped), 0, "the allowed connect was reported");
    // a good plan afterwards works again
    live.probe.set_net_filter(&tcp_on).expect("plan");
    let again = connect_from_cgroup(&procs, port);
    let last = connect_from_cgroup(&procs, port);
    pf.release(id);
    let outside = connect_from_cgroup(&procs, port);
    live.wait_for("a connect after the release", 10, |e| {
        e.process.pid == outside && e.event_type() == EventType::Connect
    });
    assert_eq!(
        connects(again) + connects(last),
        0,
        "the filter did not work again"
    );
    pf.drop_profile(PROFILE);
    live.probe
        .set_net_filter(&NetFilterPlan::off())
        .expect("off");
    let _ = std::fs::remove_dir(&cg);
}

/// The open filters fail the same way: a read plan the prefix map cannot hold (more than
/// its 1024 entries) turns the read filter off, so a read-only open outside every prefix is
/// reported instead of being dropped under a half-loaded plan.
#[test]
fn a_failed_read_plan_reports_every_read() {
    use falco_learn_probe::filter::OpenFilterPlan;
    if !may_run("the read filter's failed-update test", &[]) {
        return;
    }
    let live = LiveProbe::start(ProbeConfig::default());
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("read-me");
    std::fs::write(&file, b"x").expect("write");
    let too_many = OpenFilterPlan {
        prefixes: Some((0..2000).map(|i| format!("/fl-no-such-dir/{i}/")).collect()),
        ..OpenFilterPlan::off()
    };
    assert!(live.probe.set_read_filter(&too_many).is_err());
    let path = file.to_string_lossy().into_owned();
    // in a child: the probe never reports its own process
    let st = std::process::Command::new("cat")
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("cat");
    assert!(st.success());
    live.wait_for("the read-only open after the failed plan", 10, |e| {
        matches!(e.event_type(), EventType::Open | EventType::Openat)
            && e.fd.as_ref().is_some_and(|f| f.name == path)
    });
}
