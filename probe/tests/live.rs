//! End-to-end probe tests: the real eBPF programs, loaded in this process,
//! observing real syscalls of child processes (and of a real container).
//!
//! They need root. In CI (`CI` set) a missing privilege is a failure; elsewhere
//! the tests print a loud SKIPPED line and pass.

use falco_learn_event::{Args, Event, EventType, FdType, L4Proto};
use falco_learn_probe::{Probe, ProbeConfig};
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use falco_learn_test_support as support;
use std::time::{Duration, Instant};
use support::spawn_retrying;

struct Shared {
    events: Mutex<Vec<Event>>,
    _probe: Mutex<Probe>,
}

static SHARED: OnceLock<Option<Shared>> = OnceLock::new();

/// The probe shared by every test in this binary, or None (skip) outside CI without root.
fn shared() -> Option<&'static Shared> {
    SHARED
        .get_or_init(|| {
            if !support::privileged() {
                if std::env::var_os("CI").is_some() {
                    panic!("CI is set but the tests are not running as root: the eBPF tests must run in CI");
                }
                eprintln!("\n!!!!! SKIPPED: probe live tests need root (run as root or in CI) !!!!!\n");
                return None;
            }
            // the default read filter: every open these tests make is a write open
            // (always reported), and the machine's own read traffic stays out
            let cfg = ProbeConfig::default();
            let (probe, rx) = Probe::start(cfg).unwrap_or_else(|e| panic!("probe did not start: {e}"));
            let shared = Shared {
                events: Mutex::new(Vec::new()),
                _probe: Mutex::new(probe),
            };
            std::thread::spawn(move || {
                for ev in rx {
                    let s = SHARED.get().and_then(|s| s.as_ref());
                    if let Some(s) = s {
                        s.events.lock().unwrap_or_else(|p| p.into_inner()).push(ev);
                    }
                }
            });
            Some(shared)
        })
        .as_ref()
}

/// Wait until an event satisfying `pred` arrives (10 s at most).
fn wait_for(s: &Shared, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        {
            let evs = s.events.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = evs.iter().find(|e| pred(e)) {
                return e.clone();
            }
        }
        if Instant::now() > deadline {
            let evs = s.events.lock().unwrap_or_else(|p| p.into_inner());
            panic!("no event for {what} among {} captured events", evs.len());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fl-probe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn run(cmd: &mut Command) -> u32 {
    let child = spawn_retrying(cmd);
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{cmd:?} failed: {:?}", out.status);
    pid
}

/// Fork a child that runs `f` (raw syscalls only: we are multi-threaded) and `_exit`s.
fn in_child(f: impl FnOnce() -> i32) -> u32 {
    // SAFETY: the child only makes async-signal-safe raw syscalls, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = f();
        // SAFETY: terminating the forked child without running destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status), "child killed");
    assert_eq!(libc::WEXITSTATUS(status), 0, "child reported failure");
    pid as u32
}

fn exec_of(pid: u32) -> impl Fn(&Event) -> bool {
    move |e| {
        e.process.pid == pid && matches!(e.event_type(), EventType::Execve | EventType::Execveat)
    }
}

#[test]
fn exec_by_relative_path_and_symlink_is_resolved() {
    let Some(s) = shared() else { return };
    let d = tmpdir("rel");
    std::fs::copy("/bin/true", d.join("true")).expect("copy");
    std::os::unix::fs::symlink(d.join("true"), d.join("link-to-true")).expect("symlink");
    let pid = run(Command::new("./true").current_dir(&d));
    let ev = wait_for(s, "relative exec", exec_of(pid));
    assert_eq!(
        ev.process.exepath,
        d.join("true").to_str().unwrap_or_default()
    );
    assert_eq!(ev.process.exe, "./true");
    assert_eq!(ev.process.cwd, d.to_str().unwrap_or_default());
    assert_eq!(
        ev.args,
        Args::Exec {
            filename: "./true".into()
        }
    );
    assert_eq!(ev.container.id, "host");
    assert!(
        !ev.process.exe_flags.tmpfs
            && !ev.process.exe_flags.memfd
            && !ev.process.exe_flags.upper_layer
    );

    std::fs::create_dir_all(d.join("sub")).expect("mkdir");
    let pid = run(Command::new("sub/../link-to-true")
        .current_dir(&d)
        .arg("a b")
        .arg("c"));
    let ev = wait_for(s, "exec through symlink", exec_of(pid));
    assert_eq!(
        ev.process.exepath,
        d.join("true").to_str().unwrap_or_default()
    );
    assert_eq!(ev.process.comm, "link-to-true");
    assert_eq!(ev.process.exe, "sub/../link-to-true");
    assert_eq!(ev.process.args, ["a b", "c"]);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn exec_from_tmpfs_is_flagged() {
    let Some(s) = shared() else { return };
    let target = Path::new("/dev/shm").join(format!("fl-x-{}", std::process::id()));
    std::fs::copy("/bin/true", &target).expect("copy to /dev/shm");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let pid = run(&mut Command::new(&target));
    let ev = wait_for(s, "tmpfs exec", exec_of(pid));
    assert_eq!(ev.process.exepath, target.to_str().unwrap_or_default());
    assert!(ev.process.exe_flags.tmpfs, "{:?}", ev.process.exe_flags);
    assert!(!ev.process.exe_flags.memfd && !ev.process.exe_flags.upper_layer);
    assert!(ev.process.exe_flags.writable, "root can write its exe");
    let _ = std::fs::remove_file(&target);
}

#[test]
fn exec_from_memfd_is_flagged() {
    let Some(s) = shared() else { return };
    let bin = std::fs::read("/bin/true").expect("read /bin/true");
    let name = CString::new("fl-memfd-test").unwrap_or_default();
    // SAFETY: valid NUL-terminated name; the fd is ours.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create");
    // SAFETY: writing our own buffer to our own fd.
    let n = unsafe { libc::write(fd, bin.as_ptr().cast(), bin.len()) };
    assert_eq!(n as usize, bin.len());
    let path = format!("/proc/self/fd/{fd}");
    let pid = run(&mut Command::new(&path));
    // SAFETY: closing our own fd.
    unsafe { libc::close(fd) };
    let ev = wait_for(s, "memfd exec", exec_of(pid));
    assert!(ev.process.exe_flags.memfd, "{:?}", ev.process.exe_flags);
    assert!(!ev.process.exe_flags.tmpfs);
    // Falco's modern eBPF value (libs sched_process_exec.cpp: `memfd:malware`)
    assert_eq!(ev.process.exepath, "memfd:fl-memfd-test");
}

#[test]
fn tcp_connect_to_loopback() {
    let Some(s) = shared() else { return };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let pid = run(Command::new("bash")
        .arg("-c")
        .arg(format!("exec 3<>/dev/tcp/127.0.0.1/{port}")));
    // the connect to our port: bash's NSS lookups may connect a unix socket
    // first (nscd, systemd-userdb), which fails with ENOENT on many machines
    let want = format!("127.0.0.1:{port}");
    let ev = wait_for(s, "connect", |e| {
        e.process.pid == pid
            && e.event_type() == EventType::Connect
            && matches!(&e.args, Args::Connect { addr, .. } if *addr == want)
    });
    let fd = ev.fd.clone().expect("fd");
    assert_eq!(ev.res, 0, "{ev:?}");
    assert_eq!(fd.typ, FdType::Ipv4);
    assert_eq!(fd.l4proto, L4Proto::Tcp);
    assert_eq!(fd.sip, Some("127.0.0.1".parse().expect("ip")));
    assert_eq!(fd.sport, Some(port));
    assert_eq!(fd.cip, Some("127.0.0.1".parse().expect("ip")));
    assert!(fd.cport.is_some_and(|p| p != 0 && p != port), "{fd:?}");
    assert!(fd.connected);
    assert_eq!(
        ev.args,
        Args::Connect {
            fd: fd.num,
            addr: format!("127.0.0.1:{port}")
        }
    );
    drop(listener);
}

/// A child's TCP socket, connected to 0.0.0.0:`port` of a loopback listener by `connect`
/// (given the socket, the address and its length; true on success), and the child's
/// event of `kind`, with the listener's port.
fn connected_to_any_address(
    s: &Shared,
    kind: EventType,
    connect: impl FnOnce(i32, *const libc::sockaddr, libc::socklen_t) -> bool,
) -> (Event, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let pid = in_child(|| {
        // SAFETY: a raw socket call; the sockaddr (all zeroes is valid: 0.0.0.0) lives on
        // the stack through the call.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_port = port.to_be();
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            i32::from(!connect(fd, (&sa as *const libc::sockaddr_in).cast(), len))
        }
    });
    let ev = wait_for(s, kind.as_str(), |e| {
        e.process.pid == pid && e.event_type() == kind
    });
    drop(listener);
    (ev, port)
}

/// A connection's peer is the one the kernel connected to, read from the socket (as Falco
/// does), not the sockaddr read back from the caller's memory at exit (which another thread
/// could rewrite meanwhile): a connect to 0.0.0.0 reaches, and reads as, 127.0.0.1.
#[test]
fn a_connections_peer_is_the_sockets_not_the_passed_address() {
    let Some(s) = shared() else { return };
    let (ev, port) = connected_to_any_address(s, EventType::Connect, |fd, sa, len| {
        // SAFETY: a raw connect on the helper's socket and address.
        unsafe { libc::connect(fd, sa, len) == 0 }
    });
    assert_eq!(ev.res, 0, "{ev:?}");
    assert!(
        matches!(&ev.args, Args::Connect { addr, .. } if *addr == format!("127.0.0.1:{port}")),
        "{:?}",
        ev.args
    );
    let fd = ev.fd.expect("fd");
    assert_eq!(fd.sip, Some("127.0.0.1".parse().expect("ip")));
    assert_eq!(fd.sport, Some(port));
}

/// A TCP send that connects (`MSG_FASTOPEN`, client side on by default) is judged and
/// reported with the peer the kernel connected to, like a connect: to 0.0.0.0 reads as
/// 127.0.0.1.
#[test]
fn a_fastopen_sends_peer_is_the_sockets() {
    let Some(s) = shared() else { return };
    let (ev, port) = connected_to_any_address(s, EventType::Sendto, |fd, sa, len| {
        // SAFETY: a raw sendto of a static byte on the helper's socket and address.
        unsafe { libc::sendto(fd, b"x".as_ptr().cast(), 1, libc::MSG_FASTOPEN, sa, len) == 1 }
    });
    assert_eq!(ev.res, 1, "{ev:?}");
    assert!(
        matches!(&ev.args, Args::Send { addr, .. } if *addr == format!("127.0.0.1:{port}")),
        "{:?}",
        ev.args
    );
}

/// A socket's family is the one the kernel made it: `socket(AF_INET, SOCK_PACKET)` is a
/// packet socket (PF_PACKET), which the rules about packet sockets must see (and which the
/// event filter must not drop as an inet socket); its type is reported as passed.
#[test]
fn an_inet_sock_packet_socket_is_reported_as_the_packet_socket_it_is() {
    let Some(s) = shared() else { return };
    const SOCK_PACKET: i32 = 10;
    let pid = in_child(|| {
        // SAFETY: one raw socket call (CAP_NET_RAW: the tests run as root).
        let fd = unsafe { libc::socket(libc::AF_INET, SOCK_PACKET, 0x0300) };
        i32::from(fd < 0)
    });
    let ev = wait_for(s, "socket", |e| {
        e.process.pid == pid && e.event_type() == EventType::Socket
    });
    assert!(ev.res >= 0, "{ev:?}");
    assert!(
        matches!(
            ev.args,
            Args::Socket {
                domain: 17,
                typ: 10,
                ..
            }
        ),
        "{:?}",
        ev.args
    );
}

/// A dual-stack (IPv6) socket connecting to an IPv4-mapped address reads as the IPv4
/// socket libsinsp makes of it (`sinsp_parser`: both ends mapped → `SCAP_FD_IPV4_SOCK`).
#[test]
fn dual_stack_connect_to_a_mapped_ipv4_address_reads_as_ipv4() {
    let Some(s) = shared() else { return };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let pid = run(Command::new("bash")
        .arg("-c")
        .arg(format!("exec 3<>/dev/tcp/::ffff:127.0.0.1/{port}")));
    let ev = wait_for(s, "dual-stack connect", |e| {
        e.process.pid == pid
            && e.event_type() == EventType::Connect
            && e.fd.as_ref().is_some_and(|f| f.sport == Some(port))
    });
    let fd = ev.fd.clone().expect("fd");
    assert_eq!(ev.res, 0, "{ev:?}");
    assert_eq!(fd.typ, FdType::Ipv4, "{fd:?}");
    assert_eq!(fd.sip, Some("127.0.0.1".parse().expect("ip")));
    assert_eq!(fd.cip, Some("127.0.0.1".parse().expect("ip")));
    // the sockaddr the process passed, as libsinsp renders it: `address:port`, no brackets
    assert_eq!(
        ev.args,
        Args::Connect {
            fd: fd.num,
            addr: format!("::ffff:127.0.0.1:{port}")
        }
    );
    drop(listener);
}

#[test]
fn write_open_has_flags_path_and_fd() {
    let Some(s) = shared() else { return };
    let d = tmpdir("open");
    let path = d.join("written.txt");
    let cpath = CString::new(path.to_str().unwrap_or_default()).unwrap_or_default();
    let flags = libc::O_WRONLY | libc::O_TRUNC | libc::O_CREAT;
    let pid = in_child(|| {
        // SAFETY: valid path; raw syscalls only.
        let fd = unsafe { libc::open(cpath.as_ptr(), flags, 0o640) };
        if fd == 7 {
            return 0;
        }
        // SAFETY: as above.
        if fd < 0 || unsafe { libc::dup2(fd, 7) } != 7 {
            return 1;
        }
        0
    });
    let ev = wait_for(s, "open", |e| {
        e.process.pid == pid
            && e.event_type() == EventType::Openat
            && e.fd
                .as_ref()
                .is_some_and(|f| f.name == path.to_str().unwrap_or_default())
    });
    let fd = ev.fd.clone().expect("fd");
    assert!(ev.res >= 0);
    assert_eq!(fd.num, ev.res);
    assert_eq!(fd.typ, FdType::File);
    match ev.args {
        Args::Open {
            name,
            flags: f,
            mode,
            dirfd,
        } => {
            assert_eq!(name, path.to_str().unwrap_or_default());
            assert_eq!(
                f & (libc::O_ACCMODE | libc::O_TRUNC | libc::O_CREAT) as u32,
                flags as u32
            );
            assert_eq!(mode, 0o640);
            assert_eq!(dirfd, libc::AT_FDCWD as i64);
        }
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// The kernel's path walk keeps its components in per-CPU slots and stops where the path does:
/// a short path, or one crossing mounts, walked on the CPU right after a deep one must have
/// only its own components. One child, pinned to one CPU, opens the three for writing.
#[test]
fn paths_walked_after_a_deeper_one_on_the_same_cpu_are_exact() {
    let Some(s) = shared() else { return };
    let d = tmpdir("walk-slots");
    let deep_dir = (0..50).fold(d.clone(), |p, i| p.join(format!("level{i}")));
    std::fs::create_dir_all(&deep_dir).expect("deep dir");
    let deep = deep_dir.join("deep.txt");
    let short = d.join("short.txt");
    // /dev/shm: a tmpfs mounted below /dev (another mount): the walk crosses two mounts
    let shm = PathBuf::from(format!(
        "/dev/shm/fl-probe-walk-slots-{}",
        std::process::id()
    ));
    let paths = [deep.clone(), short.clone(), shm.clone(), short.clone()];
    let cpaths: Vec<CString> = paths
        .iter()
        .map(|p| CString::new(p.to_str().unwrap_or_default()).unwrap_or_default())
        .collect();
    let pid = in_child(|| {
        // SAFETY: a zeroed cpu_set_t with CPU 0 set; raw syscalls only.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return 2;
            }
        }
        for c in &cpaths {
            // SAFETY: valid paths.
            let fd = unsafe { libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_CREAT, 0o600) };
            if fd < 0 {
                return 1;
            }
            // SAFETY: our own fd.
            unsafe { libc::close(fd) };
        }
        0
    });
    for (i, want) in paths.iter().enumerate() {
        let want = want.to_str().unwrap_or_default();
        // the i-th write-open of the child: its resolved name is exactly the path
        let deadline = Instant::now() + Duration::from_secs(10);
        let names = loop {
            let names: Vec<String> = {
                let evs = s.events.lock().unwrap_or_else(|p| p.into_inner());
                evs.iter()
                    .filter(|e| e.process.pid == pid && e.event_type() == EventType::Openat)
                    .filter_map(|e| e.fd.as_ref().map(|f| f.name.clone()))
                    .collect()
            };
            if names.len() >= paths.len() || Instant::now() > deadline {
                break names;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            names.get(i).map(String::as_str),
            Some(want),
            "open {i} of {names:?}"
        );
    }
    let _ = std::fs::remove_file(&shm);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn relative_open_is_resolved_by_the_kernel() {
    let Some(s) = shared() else { return };
    let d = tmpdir("relopen");
    let pid = run(Command::new("sh")
        .arg("-c")
        .arg("mkdir -p a && echo x > a/../f.txt")
        .current_dir(&d));
    let want = d.join("f.txt");
    let ev = wait_for(s, "relative open", |e| {
        e.process.pid >= pid && e.fd.as_ref().is_some_and(|f| f.nameraw == "a/../f.txt")
    });
    assert_eq!(ev.fd.expect("fd").name, want.to_str().unwrap_or_default());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn packet_socket_dup2_symlink_link_ptrace() {
    let Some(s) = shared() else { return };
    let d = tmpdir("misc");
    let target = CString::new("/etc/shadow").unwrap_or_default();
    let linkpath = CString::new(d.join("sym").to_str().unwrap_or_default()).unwrap_or_default();
    let src = d.join("src");
    std::fs::write(&src, b"x").expect("write");
    let csrc = CString::new(src.to_str().unwrap_or_default()).unwrap_or_default();
    let hard = CString::new(d.join("hard").to_str().unwrap_or_default()).unwrap_or_default();
    let devnull = CString::new("/dev/null").unwrap_or_default();

    let pid = in_child(|| {
        // SAFETY: raw syscalls on values prepared before fork.
        unsafe {
            let ps = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            if ps < 0 {
                return 2;
            }
            let ts = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            // keep stdout usable for the test runner: redirect our own fd 1 only
            if libc::dup2(ts, 1) != 1 {
                return 3;
            }
            let nul = libc::open(devnull.as_ptr(), libc::O_WRONLY);
            libc::dup2(nul, 1);
            if libc::symlink(target.as_ptr(), linkpath.as_ptr()) != 0 {
                return 4;
            }
            if libc::link(csrc.as_ptr(), hard.as_ptr()) != 0 {
                return 5;
            }
        }
        0
    });
    let sock = wait_for(s, "packet socket", |e| {
        e.process.pid == pid
            && e.event_type() == EventType::Socket
            && matches!(e.args, Args::Socket { domain: 17, .. })
    });
    assert_eq!(sock.fd.as_ref().map(|f| f.typ), Some(FdType::Packet));
    assert!(sock.res >= 0);
    let dup = wait_for(s, "dup2 onto 1", |e| {
        e.process.pid == pid
            && e.event_type() == EventType::Dup2
            && e.fd.as_ref().is_some_and(|f| f.typ == FdType::Ipv4)
    });
    assert_eq!(dup.res, 1);
    assert!(
        matches!(dup.args, Args::Dup { newfd: 1, .. }),
        "{:?}",
        dup.args
    );
    assert_eq!(dup.fd.as_ref().map(|f| f.l4proto), Some(L4Proto::Tcp));
    let sym = wait_for(s, "symlink", |e| {
        e.process.pid == pid && e.event_type() == EventType::Symlink
    });
    assert_eq!(
        sym.args,
        Args::Symlink {
            target: "/etc/shadow".into(),
            linkpath: d.join("sym").to_str().unwrap_or_default().into(),
            newdirfd: libc::AT_FDCWD as i64
        }
    );
    assert_eq!(sym.res, 0);
    let link = wait_for(s, "link", |e| {
        e.process.pid == pid && e.event_type() == EventType::Link
    });
    match &link.args {
        Args::Link {
            oldpath, newpath, ..
        } => {
            assert_eq!(oldpath, src.to_str().unwrap_or_default());
            assert_eq!(newpath, d.join("hard").to_str().unwrap_or_default());
        }
        other => panic!("{other:?}"),
    }

    // PTRACE_ATTACH to a sleeping child of ours
    let mut sleeper = Command::new("sleep").arg("5").spawn().expect("sleep");
    let victim = sleeper.id() as libc::pid_t;
    let tracer = in_child(|| {
        // SAFETY: raw ptrace syscalls on a pid we know.
        unsafe {
            if libc::ptrace(libc::PTRACE_ATTACH, victim, 0, 0) != 0 {
                return 6;
            }
            let mut st = 0;
            libc::waitpid(victim, &mut st, 0);
            libc::ptrace(libc::PTRACE_DETACH, victim, 0, 0);
        }
        0
    });
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let pt = wait_for(s, "ptrace attach", |e| {
        e.process.pid == tracer
            && e.event_type() == EventType::Ptrace
            && matches!(e.args, Args::Ptrace { request: 16, .. })
    });
    assert_eq!(pt.res, 0);
    assert_eq!(
        pt.args,
        Args::Ptrace {
            request: 16,
            pid: victim as u32
        }
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn fork_exit_and_ancestors() {
    let Some(s) = shared() else { return };
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("/bin/true; exit 3")
        .spawn()
        .expect("sh");
    let sh = child.id();
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(3));
    let fork = wait_for(s, "fork of sh", |e| {
        e.event_type() == EventType::Clone && e.process.ppid == sh
    });
    let kid = fork.process.pid;
    assert_eq!(
        fork.args,
        Args::Clone {
            child_pid: kid,
            flags: 0
        }
    );
    let exec = wait_for(s, "exec of /bin/true", exec_of(kid));
    assert_eq!(exec.process.exepath, "/usr/bin/true");
    assert_eq!(
        exec.ancestors.first().map(|a| (a.pid, a.comm.as_str())),
        Some((sh, "sh"))
    );
    assert_eq!(
        exec.ancestors.get(1).map(|a| a.pid),
        Some(std::process::id())
    );
    let exit = wait_for(s, "exit of sh", |e| {
        e.process.pid == sh && e.event_type() == EventType::Procexit
    });
    assert_eq!(exit.args, Args::Exit { status: 3 << 8 });
}

#[test]
fn process_in_a_real_container_carries_its_id() {
    let Some(s) = shared() else { return };
    if !support::may_run("the container id test", &["containerd", "ctr"]) {
        return;
    }
    let _containerd = support::Containerd::start();
    let rootfs = support::busybox_rootfs("live");
    let name = format!("fl-probe-{}", std::process::id());
    let marker = format!("/tmp/fl-marker-{}", std::process::id());
    support::must(
        Command::new("ctr")
            .args(["run", "--rm", "--net-host", "--rootfs"])
            .arg(&*rootfs)
            .arg(&name)
            .args(["/bin/sh", "-c", &format!("touch {marker}; /bin/true")]),
    );
    let ev = wait_for(s, "container open", |e| {
        e.fd.as_ref().is_some_and(|f| f.name == marker) && e.container.id != "host"
    });
    assert_eq!(ev.container.id, name);
    assert_eq!(ev.container.runtime, "containerd");
    assert_eq!(ev.process.comm, "touch");
    assert_eq!(ev.process.exepath, "/bin/busybox");
}

/// Create `names` as nested directories below `base` (openat, so the whole may be longer
/// than PATH_MAX) and copy /bin/true into the deepest as `exe`; returns the deepest
/// directory, open.
fn deep_tree(base: &Path, names: &[String], exe: &str) -> std::os::fd::OwnedFd {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let open_dir = |at: libc::c_int, name: &CString| -> OwnedFd {
        // SAFETY: NUL-terminated name; the fd is ours.
        let fd = unsafe {
            libc::openat(
                at,
                name.as_ptr(),
                libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        assert!(fd >= 0, "openat: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh fd we own.
        unsafe { OwnedFd::from_raw_fd(fd) }
    };
    let mut fd = open_dir(
        libc::AT_FDCWD,
        &CString::new(base.to_str().unwrap_or_default()).unwrap_or_default(),
    );
    for n in names {
        let c = CString::new(n.as_str()).unwrap_or_default();
        // SAFETY: NUL-terminated name, directory fd we own.
        let rc = unsafe { libc::mkdirat(fd.as_raw_fd(), c.as_ptr(), 0o755) };
        assert_eq!(rc, 0, "mkdirat: {}", std::io::Error::last_os_error());
        fd = open_dir(fd.as_raw_fd(), &c);
    }
    let bin = std::fs::read("/bin/true").expect("read /bin/true");
    let c = CString::new(exe).unwrap_or_default();
    // SAFETY: as above; File takes the fd.
    let f = unsafe {
        libc::openat(
            fd.as_raw_fd(),
            c.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
            0o755,
        )
    };
    assert!(f >= 0, "create {exe}");
    // SAFETY: a fresh fd we own.
    let mut file = unsafe { std::fs::File::from_raw_fd(f) };
    std::io::Write::write_all(&mut file, &bin).expect("write");
    fd
}

/// Run `./exe` from directory `dir` in a child; its pid.
fn exec_in(dir: &std::os::fd::OwnedFd, exe: &str) -> u32 {
    use std::os::fd::AsRawFd;
    let d = dir.as_raw_fd();
    let path = CString::new(format!("./{exe}")).unwrap_or_default();
    in_child(|| {
        // SAFETY: raw syscalls on values prepared before fork.
        unsafe {
            if libc::fchdir(d) != 0 {
                return 9;
            }
            let argv = [path.as_ptr(), std::ptr::null()];
            libc::execv(path.as_ptr(), argv.as_ptr());
        }
        8
    })
}

/// What the kernel reports of a path it cannot report whole: `<truncated>`, then the
/// leaf-side components (leaf first in `leaf_first`) that fit in 4095 bytes, at most 64.
fn truncated_form(leaf_first: &[&str]) -> String {
    let mut kept = Vec::new();
    let mut total = 0;
    for c in leaf_first.iter().take(64) {
        total += 1 + c.len();
        if total > 4095 {
            break;
        }
        kept.push(*c);
    }
    kept.reverse();
    format!("<truncated>/{}", kept.join("/"))
}

#[test]
fn exec_below_a_prefix_of_exactly_4096_bytes_is_never_reported_as_a_short_path() {
    let Some(s) = shared() else { return };
    let base = tmpdir("w4096");
    let base_s = base.to_str().unwrap_or_default().to_string();
    // dirs so that base + dirs is exactly 4096 bytes; the shallowest takes the odd length
    let remaining = 4096 - base_s.len();
    let full = (remaining - 2) / 256;
    let mut names = vec!["w".repeat(remaining - full * 256 - 1)];
    names.extend(std::iter::repeat_n("w".repeat(255), full));
    let prefix_len = base_s.len() + names.iter().map(|n| n.len() + 1).sum::<usize>();
    assert_eq!(prefix_len, 4096);
    names.extend(["usr".to_string(), "sbin".to_string()]);
    let dir = deep_tree(&base, &names, "nginx");
    let pid = exec_in(&dir, "nginx");
    let ev = wait_for(s, "exec below 4096 bytes", exec_of(pid));
    let mut leaf_first: Vec<&str> = vec!["nginx"];
    leaf_first.extend(names.iter().rev().map(String::as_str));
    leaf_first.extend(base_s.rsplit('/').filter(|c| !c.is_empty()));
    let want = truncated_form(&leaf_first);
    assert_eq!(ev.process.exepath, want);
    assert!(ev.process.exepath.ends_with("/usr/sbin/nginx"));
    assert_ne!(ev.process.exepath, "/usr/sbin/nginx");
    assert_eq!(ev.process.cwd, truncated_form(&leaf_first[1..]));
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn exec_deeper_than_the_kernel_walk_is_truncated() {
    let Some(s) = shared() else { return };
    let base = tmpdir("deep70");
    let names = vec!["d".to_string(); 70];
    let dir = deep_tree(&base, &names, "x");
    let pid = exec_in(&dir, "x");
    let ev = wait_for(s, "exec 70 deep", exec_of(pid));
    assert_eq!(
        ev.process.exepath,
        format!("<truncated>{}/x", "/d".repeat(63))
    );
    assert_eq!(ev.process.cwd, format!("<truncated>{}", "/d".repeat(64)));
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn names_with_a_newline_or_invalid_utf8_are_reported_exactly() {
    use std::os::unix::ffi::OsStrExt;
    let Some(s) = shared() else { return };
    let d = tmpdir("names");
    let ds = d.to_str().unwrap_or_default().to_string();
    for (raw, rendered) in [
        (&b"a\nb"[..], "a\nb".to_string()),
        (&b"x\xff"[..], "x\\xff".to_string()),
        (&b"back\\slash"[..], "back\\\\slash".to_string()),
    ] {
        let p = d.join(std::ffi::OsStr::from_bytes(raw));
        std::fs::copy("/bin/true", &p).expect("copy");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let pid = run(&mut Command::new(&p));
        let ev = wait_for(s, "exec of an odd name", exec_of(pid));
        assert_eq!(ev.process.exepath, format!("{ds}/{rendered}"));
        assert_eq!(
            falco_learn_event::path::raw_bytes(&ev.process.exepath),
            Some(p.as_os_str().as_bytes().to_vec())
        );
        // the file write of the same name
        let c = CString::new(p.as_os_str().as_bytes()).unwrap_or_default();
        let wpid = in_child(|| {
            // SAFETY: raw syscall on a path prepared before fork.
            i32::from(unsafe { libc::open(c.as_ptr(), libc::O_WRONLY) } < 0)
        });
        let want = format!("{ds}/{rendered}");
        let ev = wait_for(s, "open of an odd name", |e| {
            e.process.pid == wpid && e.fd.as_ref().is_some_and(|f| f.name == want)
        });
        assert_eq!(ev.fd.map(|f| f.nameraw), Some(want));
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn non_canonical_and_symlinked_reads_are_decided_on_the_opened_file() {
    // the default read filter reports read-only opens under /etc/shadow only: every
    // spelling of it must get through, and fd.name is the file the kernel opened
    let Some(s) = shared() else { return };
    let d = tmpdir("noncanon");
    std::os::unix::fs::symlink("/etc/shadow", d.join("link")).expect("symlink");
    std::os::unix::fs::symlink("/etc", d.join("etcdir")).expect("symlink");
    let link = d.join("link").to_str().unwrap_or_default().to_string();
    let via_dir = d
        .join("etcdir/shadow")
        .to_str()
        .unwrap_or_default()
        .to_string();
    for spelling in [
        "/etc/./shadow",
        "//etc/shadow",
        "/etc/../etc/shadow",
        "/etc//shadow",
        link.as_str(),
        via_dir.as_str(),
    ] {
        let c = CString::new(spelling).unwrap_or_default();
        let pid = in_child(|| {
            // SAFETY: raw syscall on a path prepared before fork.
            i32::from(unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) } < 0)
        });
        let ev = wait_for(s, spelling, |e| {
            e.process.pid == pid && e.event_type() == EventType::Openat
        });
        let fd = ev.fd.expect("fd");
        assert_eq!(fd.name, "/etc/shadow", "{spelling}");
        assert_eq!(fd.nameraw, spelling);
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// An execveat of a descriptor is told from execve by the kernel's name for the file
/// (`bprm->fdpath`: no program on the syscall's entry); `execveat(AT_FDCWD, path)`, an
/// execve by another name, reads as execve, and so does an execve after a failed execveat.
#[test]
fn execveat_of_a_descriptor_is_told_from_execve() {
    let Some(s) = shared() else { return };
    let true_path = CString::new("/bin/true").unwrap_or_default();
    let missing = CString::new("/nonexistent/fl-no-such-exe").unwrap_or_default();
    let empty = CString::new("").unwrap_or_default();
    let argv: [*const libc::c_char; 2] = [true_path.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: opening a path we own the string of; the fd is closed below.
    let dirfd = unsafe { libc::open(true_path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    assert!(dirfd >= 0, "open /bin/true O_PATH");
    let by_fd = in_child(|| {
        // SAFETY: raw execveat with NUL-terminated arrays prepared before the fork.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                dirfd,
                empty.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
        1
    });
    let at_cwd = in_child(|| {
        // SAFETY: as above.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                libc::AT_FDCWD,
                true_path.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
                0,
            )
        };
        1
    });
    let after_failure = in_child(|| {
        // SAFETY: as above; the first call fails (ENOENT), the second replaces the image.
        unsafe {
            let r = libc::syscall(
                libc::SYS_execveat,
                libc::AT_FDCWD,
                missing.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
                0,
            );
            if r != -1 {
                return 2;
            }
            libc::execve(true_path.as_ptr(), argv.as_ptr(), envp.as_ptr());
        }
        1
    });
    // SAFETY: closing our own fd.
    unsafe { libc::close(dirfd) };
    let ev = wait_for(s, "execveat by fd", exec_of(by_fd));
    assert_eq!(ev.event_type(), EventType::Execveat, "{ev:?}");
    assert_eq!(ev.process.exepath, "/usr/bin/true");
    let ev = wait_for(s, "execveat(AT_FDCWD, path)", exec_of(at_cwd));
    assert_eq!(ev.event_type(), EventType::Execve, "{ev:?}");
    assert_eq!(ev.process.exepath, "/usr/bin/true");
    let ev = wait_for(s, "execve after a failed execveat", exec_of(after_failure));
    assert_eq!(ev.event_type(), EventType::Execve, "{ev:?}");
}

/// sendto/sendmsg are reported only with a destination (an unconnected socket); the
/// destination and size are read from the registers at exit.
#[test]
fn sendto_and_sendmsg_with_a_destination_are_reported_and_without_one_are_not() {
    let Some(s) = shared() else { return };
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = rx.local_addr().expect("addr").port();
    let dest = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
        },
        sin_zero: [0; 8],
    };
    let payload = *b"fl-probe-udp-7";
    let pid = in_child(|| {
        // SAFETY: raw socket calls on our own buffers and fds.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            if fd < 0 {
                return 1;
            }
            let dp = (&dest as *const libc::sockaddr_in).cast::<libc::sockaddr>();
            let dl = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            // with a destination: reported (7 bytes)
            if libc::sendto(fd, payload.as_ptr().cast(), 7, 0, dp, dl) != 7 {
                return 2;
            }
            // sendmsg with msg_name: reported (9 bytes)
            let mut iov = libc::iovec {
                iov_base: payload.as_ptr() as *mut libc::c_void,
                iov_len: 9,
            };
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_name = dp as *mut libc::c_void;
            msg.msg_namelen = dl;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            if libc::sendmsg(fd, &msg, 0) != 9 {
                return 3;
            }
            // connected, no destination: neither is reported
            if libc::connect(fd, dp, dl) != 0 {
                return 4;
            }
            if libc::sendto(fd, payload.as_ptr().cast(), 11, 0, std::ptr::null(), 0) != 11 {
                return 5;
            }
            msg.msg_name = std::ptr::null_mut();
            msg.msg_namelen = 0;
            (*msg.msg_iov).iov_len = 13;
            if libc::sendmsg(fd, &msg, 0) != 13 {
                return 6;
            }
            libc::close(fd);
        }
        0
    });
    let want = format!("127.0.0.1:{port}");
    let sent = |t: EventType, n: u64| {
        let want = want.clone();
        move |e: &Event| {
            e.process.pid == pid
                && e.event_type() == t
                && matches!(&e.args, Args::Send { size, addr, .. } if *size == n && *addr == want)
        }
    };
    let ev = wait_for(s, "sendto with a destination", sent(EventType::Sendto, 7));
    assert_eq!(ev.res, 7);
    // sendmsg's size is not captured (0); its destination is
    let ev = wait_for(s, "sendmsg with a destination", |e| {
        e.process.pid == pid
            && e.event_type() == EventType::Sendmsg
            && matches!(&e.args, Args::Send { addr, .. } if *addr == want)
    });
    assert_eq!(ev.res, 9);
    // the connect comes after both; once it is seen, nothing else of the child's is
    wait_for(s, "connect", |e| {
        e.process.pid == pid && e.event_type() == EventType::Connect
    });
    std::thread::sleep(Duration::from_millis(300));
    let evs = s.events.lock().unwrap_or_else(|p| p.into_inner());
    let sends: Vec<i64> = evs
        .iter()
        .filter(|e| {
            e.process.pid == pid && matches!(e.event_type(), EventType::Sendto | EventType::Sendmsg)
        })
        .map(|e| e.res)
        .collect();
    assert_eq!(sends, [7, 9], "only the sends with a destination");
}

/// Read-only opens in `dir` by a child, `n` times; the child's pid.
fn read_opens(path: &Path, n: usize) -> u32 {
    let c = CString::new(path.to_str().unwrap_or_default()).unwrap_or_default();
    in_child(|| {
        for _ in 0..n {
            // SAFETY: raw syscalls on a path prepared before fork.
            let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
            if fd < 0 {
                return 1;
            }
            // SAFETY: closing the fd just opened.
            unsafe { libc::close(fd) };
        }
        0
    })
}

fn read_events_of(s: &Shared, pid: u32) -> usize {
    s.events
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|e| e.process.pid == pid && e.event_type() == EventType::Openat)
        .count()
}

/// The kernel keeps "dropped" verdicts of read-only opens per opened file (the verdict
/// cache). A rename that moves the file under a watched prefix, and a filter change that
/// starts watching it, must both end those verdicts: the next open is reported.
#[test]
fn dropped_open_verdicts_end_with_a_rename_and_with_a_filter_change() {
    let Some(s) = shared() else { return };
    // /var/tmp and /root share a filesystem here (rename needs that); /root/ is watched by
    // the default read filter, /var/tmp is not
    let base = PathBuf::from(format!("/var/tmp/fl-probe-vc-{}", std::process::id()));
    let watched = PathBuf::from(format!("/root/fl-probe-vc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&watched);
    std::fs::create_dir_all(base.join("a")).expect("mkdir");
    std::fs::write(base.join("a/f"), b"x").expect("write");
    std::fs::write(base.join("b"), b"y").expect("write");

    // unwatched: dropped, the later opens from the cache
    let quiet = read_opens(&base.join("a/f"), 3);
    let quiet_b = read_opens(&base.join("b"), 2);

    // the same dentries, now under /root/
    std::fs::rename(base.join("a"), &watched).expect("rename into /root");
    let loud = read_opens(&watched.join("f"), 1);
    let want = watched.join("f").to_str().unwrap_or_default().to_string();
    let ev = wait_for(s, "read-open after the rename", |e| {
        e.process.pid == loud && e.event_type() == EventType::Openat
    });
    assert_eq!(ev.fd.expect("fd").name, want);

    // a filter change: the default prefixes plus `b`
    let mut plan = ProbeConfig::default().read;
    let b = base.join("b").to_str().unwrap_or_default().to_string();
    if let Some(p) = plan.prefixes.as_mut() {
        p.push(b.clone());
    }
    let probe = s._probe.lock().unwrap_or_else(|p| p.into_inner());
    probe.set_read_filter(&plan).expect("set the read filter");
    let loud_b = read_opens(&base.join("b"), 1);
    probe
        .set_read_filter(&ProbeConfig::default().read)
        .expect("restore the read filter");
    drop(probe);
    let ev = wait_for(s, "read-open after the filter change", |e| {
        e.process.pid == loud_b && e.event_type() == EventType::Openat
    });
    assert_eq!(ev.fd.expect("fd").name, b);

    // the opens before either change stayed in the kernel
    assert_eq!(read_events_of(s, quiet), 0);
    assert_eq!(read_events_of(s, quiet_b), 0);
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&watched);
}

/// A 32-bit rename (`int 0x80` from a 64-bit program: no syscall tracepoint sees it) that
/// moves a file under a watched prefix ends the "dropped" verdicts too: the next open is
/// reported. (The probe's 32-bit watch ends the generation at the call's exit.)
#[test]
fn dropped_open_verdicts_end_with_a_32_bit_rename() {
    let Some(s) = shared() else { return };
    {
        let probe = s._probe.lock().unwrap_or_else(|p| p.into_inner());
        if !probe.ia32_watched() {
            eprintln!("!!!!! this kernel runs no 32-bit syscalls: nothing to test !!!!!");
            return;
        }
    }
    // as above: /var/tmp unwatched, /root/ watched, one filesystem
    let base = PathBuf::from(format!("/var/tmp/fl-probe-vc32-{}", std::process::id()));
    let watched = PathBuf::from(format!("/root/fl-probe-vc32-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&watched);
    std::fs::create_dir_all(base.join("a")).expect("mkdir");
    std::fs::write(base.join("a/f"), b"x").expect("write");
    let quiet = read_opens(&base.join("a/f"), 3);

    let exe = base.join("rename32");
    let prog = falco_learn_probe::selftest::int80_rename_program(
        base.join("a").to_str().unwrap_or_default(),
        watched.to_str().unwrap_or_default(),
    )
    .expect("program");
    std::fs::write(&exe, prog).expect("write");
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let st = spawn_retrying(&mut Command::new(&exe))
        .wait()
        .expect("run the 32-bit rename");
    assert_eq!(st.code(), Some(0), "the int 0x80 rename failed");
    assert!(watched.join("f").exists(), "not renamed");

    let loud = read_opens(&watched.join("f"), 1);
    let want = watched.join("f").to_str().unwrap_or_default().to_string();
    let ev = wait_for(s, "read-open after the 32-bit rename", |e| {
        e.process.pid == loud && e.event_type() == EventType::Openat
    });
    assert_eq!(ev.fd.expect("fd").name, want);
    assert_eq!(read_events_of(s, quiet), 0);
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&watched);
}

/// An io_uring rename (`IORING_OP_RENAMEAT`: an io-wq worker makes it, where no syscall hook
/// ends a generation of the verdict cache) that moves a directory under a watched prefix.
/// The kernel turns its verdict cache of opens off when the rename is submitted, so a file
/// whose "dropped" verdict was kept under the old path is reported under the new one. (Before,
/// it stayed dropped until some rename or mount syscall ran on the node.) The probe is the
/// test's own: the cache stays off for as long as it runs.
#[test]
fn an_io_uring_rename_turns_the_verdict_cache_off() {
    if shared().is_none() {
        return;
    }
    let dir = tmpdir("io-uring-rename");
    let watched = dir.join("watched");
    let read = falco_learn_probe::filter::OpenFilterPlan {
        prefixes: Some(vec![format!("{}/", watched.display())]),
        ..Default::default()
    };
    let live = support::LiveProbe::start(ProbeConfig {
        read,
        ..ProbeConfig::default()
    });
    if let Some(off) = live.probe.open_verdict_cache_off() {
        // another process on this machine holds an io_uring instance
        assert!(
            !support::in_ci(),
            "the verdict cache is off at the start in CI: {off}"
        );
        eprintln!("!!!!! the verdict cache is off from the start ({off}): not tested !!!!!");
        return;
    }
    std::fs::create_dir_all(dir.join("a")).expect("mkdir");
    std::fs::write(dir.join("a/f"), b"x").expect("write");
    // unwatched: dropped, the later opens from the cache
    let quiet = read_opens(&dir.join("a/f"), 3);

    let mut ring = match io_uring::IoUring::new(4) {
        Ok(r) => r,
        Err(e) if support::in_ci() => panic!("io_uring_setup failed in CI: {e}"),
        Err(e) => {
            eprintln!("!!!!! io_uring_setup failed ({e}): the io_uring rename is not tested !!!!!");
            return;
        }
    };
    let from = CString::new(dir.join("a").to_str().unwrap_or_default()).unwrap_or_default();
    let to = CString::new(watched.to_str().unwrap_or_default()).unwrap_or_default();
    let at = io_uring::types::Fd(libc::AT_FDCWD);
    let sqe = io_uring::opcode::RenameAt::new(at, from.as_ptr(), at, to.as_ptr()).build();
    // SAFETY: both paths outlive the submission, which is waited for below.
    unsafe { ring.submission().push(&sqe) }.expect("queue the rename");
    ring.submit_and_wait(1).expect("io_uring_enter");
    let res = ring.completion().next().map(|c| c.result());
    assert_eq!(res, Some(0), "the io_uring rename failed");
    assert!(watched.join("f").exists(), "not renamed");

    let loud = read_opens(&watched.join("f"), 1);
    let want = watched.join("f").to_str().unwrap_or_default().to_string();
    let ev = live.wait_for("read-open after the io_uring rename", 10, |e| {
        e.process.pid == loud && e.event_type() == EventType::Openat
    });
    assert_eq!(ev.fd.expect("fd").name, want);
    assert_eq!(
        live.probe.open_verdict_cache_off(),
        Some(falco_learn_probe::filter::VerdictCacheOff::IoUringRename {
            tgid: std::process::id()
        })
    );
    // the opens before the rename stayed in the kernel
    assert!(live
        .matching(|e| e.process.pid == quiet && e.event_type() == EventType::Openat)
        .is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A FUSE filesystem whose server moves directory `a` (node 2, holding file `f`, node 3) to
/// `watched` without a rename on this machine: the kernel learns it at the next lookup of
/// `watched`, which returns node 2, and moves the cached dentry (`d_splice_alias`). Entries
/// and attributes are never cached (TTL 0), so every lookup asks the server.
struct MovingFs {
    moved: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl MovingFs {
    fn attr(ino: u64) -> fuser::FileAttr {
        let dir = ino != 3;
        fuser::FileAttr {
            ino,
            size: if dir { 0 } else { 1 },
            blocks: 0,
            atime: std::time::UNIX_EPOCH,
            mtime: std::time::UNIX_EPOCH,
            ctime: std::time::UNIX_EPOCH,
            crtime: std::time::UNIX_EPOCH,
            kind: if dir {
                fuser::FileType::Directory
            } else {
                fuser::FileType::RegularFile
            },
            perm: if dir { 0o755 } else { 0o644 },
            nlink: if dir { 2 } else { 1 },
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }
}

impl fuser::Filesystem for MovingFs {
    fn lookup(
        &mut self,
        _req: &fuser::Request<'_>,
        parent: u64,
        name: &std::ffi::OsStr,
        reply: fuser::ReplyEntry,
    ) {
        let moved = self.moved.load(std::sync::atomic::Ordering::SeqCst);
        let dir_name = if moved { "watched" } else { "a" };
        match (parent, name.to_str()) {
            (1, Some(n)) if n == dir_name => reply.entry(&Duration::ZERO, &Self::attr(2), 0),
            (2, Some("f")) => reply.entry(&Duration::ZERO, &Self::attr(3), 0),
            _ => reply.error(libc::ENOENT),
        }
    }

    fn getattr(
        &mut self,
        _req: &fuser::Request<'_>,
        ino: u64,
        _fh: Option<u64>,
        reply: fuser::ReplyAttr,
    ) {
        match ino {
            1..=3 => reply.attr(&Duration::ZERO, &Self::attr(ino)),
            _ => reply.error(libc::ENOENT),
        }
    }
}

/// The same class on a FUSE filesystem: its server moves a directory (no rename syscall on
/// this machine; the kernel moves the cached dentry when a lookup finds the directory under
/// its new name). Verdicts are kept only on local filesystems, so a file read-opened
/// (dropped) under the old path is reported under the new, watched one.
#[test]
fn a_directory_moved_by_a_fuse_server_keeps_no_dropped_verdict() {
    if shared().is_none() {
        return;
    }
    if !Path::new("/dev/fuse").exists() {
        assert!(!support::in_ci(), "no /dev/fuse in CI");
        eprintln!("!!!!! no /dev/fuse: the FUSE server's move is not tested !!!!!");
        return;
    }
    let dir = tmpdir("fuse-move");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let moved = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let session = fuser::spawn_mount2(
        MovingFs {
            moved: moved.clone(),
        },
        &mnt,
        &[
            fuser::MountOption::RO,
            fuser::MountOption::FSName("fl-probe-test".into()),
        ],
    )
    .unwrap_or_else(|e| panic!("mount FUSE at {}: {e}", mnt.display()));
    let read = falco_learn_probe::filter::OpenFilterPlan {
        prefixes: Some(vec![format!("{}/", mnt.join("watched").display())]),
        ..Default::default()
    };
    let live = support::LiveProbe::start(ProbeConfig {
        read,
        ..ProbeConfig::default()
    });
    // unwatched: dropped (and, on a local filesystem, the later opens from the cache)
    let quiet = read_opens(&mnt.join("a/f"), 3);
    moved.store(true, std::sync::atomic::Ordering::SeqCst);
    let loud = read_opens(&mnt.join("watched/f"), 1);
    let want = mnt
        .join("watched/f")
        .to_str()
        .unwrap_or_default()
        .to_string();
    let ev = live.wait_for("read-open after the server's move", 10, |e| {
        e.process.pid == loud && e.event_type() == EventType::Openat
    });
    assert_eq!(ev.fd.expect("fd").name, want);
    assert!(live
        .matching(|e| e.process.pid == quiet && e.event_type() == EventType::Openat)
        .is_empty());
    // no rename happened here: nothing turned the cache off for it (only its verdicts were
    // not kept; another process's io_uring instance may keep it off from the start)
    assert!(
        !matches!(
            live.probe.open_verdict_cache_off(),
            Some(falco_learn_probe::filter::VerdictCacheOff::IoUringRename { .. })
        ),
        "{:?}",
        live.probe.open_verdict_cache_off()
    );
    drop(live);
    drop(session);
    let _ = std::fs::remove_dir_all(&dir);
}

/// With a rule on `fd.nameraw` loaded (the `noncanonical` switch), a read-only open of an
/// unwatched file is reported exactly when the passed path is not canonical (`//`, `/./`,
/// `/../`, and `./` ending a name: `fd.nameraw contains "../"` holds for `/a../f`),
/// wherever the pair falls in the kernel's 8-byte steps, and also when the file's
/// "dropped" verdict is already cached. A memfd's read-open (rendered `memfd:…`, whose
/// bytes no rule's literal names) is reported whatever the filter.
#[test]
fn non_canonical_passed_paths_are_reported_at_every_alignment() {
    let Some(s) = shared() else { return };
    let base = format!("/var/tmp/fl-probe-canon-{}", std::process::id());
    let _ = std::fs::remove_dir_all(&base);
    let dirs: Vec<String> = (1..=8).map(|k| "a".repeat(k)).collect();
    for d in &dirs {
        std::fs::create_dir_all(format!("{base}/{d}")).expect("mkdir");
        std::fs::write(format!("{base}/{d}/f"), b"x").expect("write");
        std::fs::write(format!("{base}/{d}/f.x"), b"x").expect("write");
        std::fs::create_dir_all(format!("{base}/{d}.")).expect("mkdir");
        std::fs::write(format!("{base}/{d}./f"), b"x").expect("write");
    }
    let mut plan = ProbeConfig::default().read;
    plan.noncanonical = true;
    let probe = s._probe.lock().unwrap_or_else(|p| p.into_inner());
    probe.set_read_filter(&plan).expect("set the read filter");
    let mut quiet = Vec::new();
    let mut loud = Vec::new();
    for d in &dirs {
        // canonical (a dot inside a name is fine): dropped, and cached
        for p in [format!("{base}/{d}/f"), format!("{base}/{d}/f.x")] {
            quiet.push((p.clone(), read_opens(Path::new(&p), 2)));
        }
        for p in [
            format!("{base}/{d}//f"),
            format!("{base}/{d}/./f"),
            format!("{base}/{d}/../{d}/f"),
            format!("{base}//{d}/f"),
            format!("{base}/{d}./f"),
        ] {
            loud.push((p.clone(), read_opens(Path::new(&p), 1)));
        }
    }
    let name = CString::new("fl-canon-memfd").unwrap_or_default();
    // SAFETY: creating a memfd from a valid C string; closed below.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create");
    // the child inherits the memfd and opens it again through its /proc link
    let memfd = read_opens(Path::new(&format!("/proc/self/fd/{fd}")), 1);
    // SAFETY: closing the memfd made above.
    unsafe { libc::close(fd) };
    probe
        .set_read_filter(&ProbeConfig::default().read)
        .expect("restore the read filter");
    drop(probe);
    for (p, pid) in &loud {
        let ev = wait_for(s, p, |e| {
            e.process.pid == *pid && e.event_type() == EventType::Openat
        });
        let fd = ev.fd.expect("fd");
        assert_eq!(&fd.nameraw, p);
        assert!(fd.name.ends_with("/f"), "{}", fd.name);
    }
    for (p, pid) in &quiet {
        assert_eq!(read_events_of(s, *pid), 0, "{p} is canonical and unwatched");
    }
    let ev = wait_for(s, "the memfd's read-open", |e| {
        e.process.pid == memfd && e.event_type() == EventType::Openat
    });
    assert_eq!(ev.fd.expect("fd").name, "memfd:fl-canon-memfd");
    let _ = std::fs::remove_dir_all(&base);
}

/// File names and endings are the names `fd.name` ends with: for a file bind-mounted over
/// another (a single-file volume, a Kubernetes subPath) that is the mount point's name, not
/// the source file's (the opened dentry's own). A read of `id_rsa` and `y.pem`, both
/// `plain` mounted there, is reported; `plain` itself, and `other` (a mount of a file named
/// `id_rsa`), are not.
#[test]
fn file_names_are_the_mount_point_s_for_a_bind_mounted_file() {
    let Some(s) = shared() else { return };
    let base = format!("/var/tmp/fl-probe-leaf-{}", std::process::id());
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(format!("{base}/src")).expect("mkdir");
    for f in ["src/plain", "src/id_rsa", "id_rsa", "y.pem", "other"] {
        std::fs::write(format!("{base}/{f}"), b"x").expect("write");
    }
    let bind = |from: &str, to: &str| {
        let (from, to) = (
            CString::new(format!("{base}/{from}")).unwrap_or_default(),
            CString::new(format!("{base}/{to}")).unwrap_or_default(),
        );
        // SAFETY: valid C strings; a bind mount of one file over another, undone below.
        let r = unsafe {
            libc::mount(
                from.as_ptr(),
                to.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        assert_eq!(r, 0, "bind mount: {}", std::io::Error::last_os_error());
        to
    };
    let mounts = [
        bind("src/plain", "id_rsa"),
        bind("src/plain", "y.pem"),
        bind("src/id_rsa", "other"),
    ];
    let mut plan = ProbeConfig::default().read;
    plan.names = vec!["id_rsa".into()];
    plan.suffixes = vec![".pem".into()];
    let probe = s._probe.lock().unwrap_or_else(|p| p.into_inner());
    probe.set_read_filter(&plan).expect("set the read filter");
    let loud: Vec<(String, u32)> = ["id_rsa", "y.pem"]
        .iter()
        .map(|f| {
            let p = format!("{base}/{f}");
            let pid = read_opens(Path::new(&p), 1);
            (p, pid)
        })
        .collect();
    let quiet: Vec<(String, u32)> = ["src/plain", "other"]
        .iter()
        .map(|f| {
            let p = format!("{base}/{f}");
            let pid = read_opens(Path::new(&p), 2);
            (p, pid)
        })
        .collect();
    probe
        .set_read_filter(&ProbeConfig::default().read)
        .expect("restore the read filter");
    drop(probe);
    for m in &mounts {
        // SAFETY: unmounting what this test mounted.
        unsafe { libc::umount2(m.as_ptr(), libc::MNT_DETACH) };
    }
    for (p, pid) in &loud {
        let ev = wait_for(s, p, |e| {
            e.process.pid == *pid && e.event_type() == EventType::Openat
        });
        assert_eq!(&ev.fd.expect("fd").name, p);
    }
    for (p, pid) in &quiet {
        assert_eq!(
            read_events_of(s, *pid),
            0,
            "{p}: its name is watched nowhere"
        );
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// `openat2`'s flags live in the caller's memory (`struct open_how`), read back at exit
/// after the kernel used its own copy: another thread may have rewritten them. So no
/// `openat2` is dropped as read-only: a read-only one of an unwatched file is reported
/// (its `openat` twin is dropped), with the access mode the file was opened with.
#[test]
fn openat2_is_never_dropped_as_read_only() {
    let Some(s) = shared() else { return };
    let dir = PathBuf::from(format!("/var/tmp/fl-probe-openat2-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let f = dir.join("unwatched");
    std::fs::write(&f, b"x").expect("write");
    // the default read filter, held while the opens run (other tests change it)
    let probe = s._probe.lock().unwrap_or_else(|p| p.into_inner());
    probe
        .set_read_filter(&ProbeConfig::default().read)
        .expect("set the read filter");
    let c = CString::new(f.to_str().unwrap_or_default()).unwrap_or_default();
    // struct open_how { flags, mode, resolve }: O_RDONLY
    let how: [u64; 3] = [0, 0, 0];
    let pid = in_child(|| {
        // SAFETY: raw syscalls on values prepared before fork.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                libc::AT_FDCWD,
                c.as_ptr(),
                how.as_ptr(),
                std::mem::size_of_val(&how),
            )
        };
        if fd < 0 {
            return 1;
        }
        // SAFETY: closing the descriptor just opened.
        unsafe { libc::close(fd as i32) };
        0
    });
    let twin = read_opens(&f, 1);
    drop(probe);
    let ev = wait_for(s, "the openat2", |e| {
        e.process.pid == pid && e.event_type() == EventType::Openat2
    });
    assert_eq!(ev.fd.expect("fd").name, f.display().to_string());
    match ev.args {
        Args::Open { flags, .. } => assert_eq!(flags & 3, 0, "O_RDONLY"),
        ref a => panic!("{a:?}"),
    }
    assert_eq!(read_events_of(s, twin), 0, "the openat twin is filtered");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A read filter the kernel's maps cannot hold (more file names than `LEAF_NAMES` takes)
/// does not stop the probe: the filter is off, so a read-only open of an unwatched file is
/// reported (as on a reload that fails the same way).
#[test]
fn a_read_filter_too_large_for_the_kernel_starts_off() {
    if shared().is_none() {
        return;
    }
    let read = falco_learn_probe::filter::OpenFilterPlan {
        prefixes: Some(vec!["/etc/shadow".into()]),
        names: (0..1100).map(|i| format!("n{i}")).collect(),
        ..Default::default()
    };
    let (_probe, rx) = Probe::start(ProbeConfig {
        read,
        ..ProbeConfig::default()
    })
    .unwrap_or_else(|e| panic!("the probe did not start: {e}"));
    let dir = tmpdir("filter-too-large");
    let f = dir.join("unwatched");
    std::fs::write(&f, b"x").expect("write");
    let pid = read_opens(&f, 1);
    let want = f.display().to_string();
    let ev = recv_event(&rx, "the unwatched read", |e| {
        e.process.pid == pid && e.event_type() == EventType::Openat
    });
    assert_eq!(ev.fd.expect("fd").name, want);
}

/// The first event from a probe of a test's own that `pred` accepts, within 10 s.
fn recv_event(
    rx: &falco_learn_probe::reader::Events,
    what: &str,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(ev) = rx
            .recv_timeout(Duration::from_millis(200))
            .ok()
            .filter(|e| pred(e))
        {
            return ev;
        }
        assert!(Instant::now() < deadline, "no {what}");
    }
}

/// With 32-bit syscalls not handled (`ia32_syscalls: false`), the dispatcher still runs at
/// their exit, indexed by their number: an `int 0x80` `dup` (ia32 41) must not reach
/// x86_64's `socket` handler (41) as a fake socket event; the 64-bit `socket` right after it
/// is reported, once.
#[test]
fn unhandled_32_bit_calls_reach_no_64_bit_handler() {
    if shared().is_none() {
        return;
    }
    let (probe, rx) = Probe::start(ProbeConfig {
        syscall_hook: falco_learn_probe::SyscallHook::Dispatch,
        ia32_syscalls: false,
        syscalls: Some(vec!["socket".into()]),
        ..ProbeConfig::default()
    })
    .unwrap_or_else(|e| panic!("probe did not start: {e}"));
    assert!(!probe.ia32_watched());
    let exe = tmpdir("unhandled-ia32").join("int80-dup");
    std::fs::write(
        &exe,
        falco_learn_probe::selftest::int80_dup_then_socket_program(),
    )
    .expect("write");
    std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let child = spawn_retrying(&mut std::process::Command::new(&exe));
    let pid = child.id();
    let st = child.wait_with_output().expect("wait");
    if st.status.code() != Some(7) {
        // a kernel booted with 32-bit syscalls off faults int 0x80
        eprintln!(
            "!!!!! int 0x80 refused by this kernel ({:?}): nothing to check !!!!!",
            st.status
        );
        return;
    }
    let mut sockets = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no exit of {pid}");
        let Ok(ev) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if ev.process.pid != pid {
            continue;
        }
        match ev.event_type() {
            EventType::Socket => sockets.push(ev.args.clone()),
            EventType::Procexit => break,
            _ => {}
        }
    }
    assert_eq!(sockets.len(), 1, "{sockets:?}");
    assert!(
        matches!(sockets[0], Args::Socket { domain: 2, .. }),
        "{sockets:?}"
    );
    probe.stop();
}

/// The other hook family on this kernel: per-syscall tracepoints (what `Auto` picks from 5.15
/// when 32-bit syscalls are not watched; the shared probe above, watching them, uses the
/// `sys_exit` dispatcher). Its handlers report the same records, detaching a syscall
/// detaches its tracepoint, and with the watch on, a second program on `sys_exit` reports a
/// 64-bit program's `int 0x80` once per exec.
#[test]
fn the_tracepoint_hook_family_reports_and_detaches() {
    if shared().is_none() {
        return;
    }
    let (mut probe, rx) = Probe::start(ProbeConfig {
        syscall_hook: falco_learn_probe::SyscallHook::Tracepoints,
        syscalls: Some(vec!["openat".into()]),
        ..ProbeConfig::default()
    })
    .unwrap_or_else(|e| panic!("tracepoint probe did not start: {e}"));
    assert_eq!(
        probe.syscall_hook(),
        falco_learn_probe::SyscallHook::Tracepoints
    );
    assert_eq!(probe.attached_syscalls(), ["openat"]);
    let d = tmpdir("tracepoints");
    if probe.ia32_watched() {
        // int 0x80 from a 64-bit program: reported, as getpid (20)
        let exe = d.join("int80");
        std::fs::write(&exe, falco_learn_probe::selftest::int80_program()).expect("write");
        std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let child = spawn_retrying(&mut std::process::Command::new(&exe));
        let int80 = child.id();
        let st = child.wait_with_output().expect("wait");
        assert_eq!(st.status.code(), Some(7));
        let ev = recv_event(&rx, "ia32_syscall from fl_sys_exit_ia32", |e| {
            e.process.pid == int80 && e.event_type() == EventType::Ia32Syscall
        });
        assert_eq!(ev.args, Args::Ia32Syscall { id: 20 });
        assert_eq!(ev.process.exepath, exe.to_string_lossy());
        assert!(!ev.process.exe_flags.ia32);
    } else {
        eprintln!("!!!!! this kernel runs no 32-bit syscalls: the ia32 part of this test is skipped !!!!!");
    }
    let path = d.join("w");
    let c = CString::new(path.to_str().unwrap_or_default()).unwrap_or_default();
    let write_open = || {
        in_child(|| {
            // SAFETY: raw syscalls on a path prepared before fork.
            let fd = unsafe { libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_CREAT, 0o600) };
            if fd < 0 {
                return 1;
            }
            // SAFETY: closing the fd just opened.
            unsafe { libc::close(fd) };
            0
        })
    };
    let pid = write_open();
    let want = path.to_str().unwrap_or_default().to_string();
    let ev = recv_event(&rx, "openat from the tracepoint probe", |e| {
        e.process.pid == pid && e.event_type() == EventType::Openat
    });
    let fd = ev.fd.expect("fd");
    assert_eq!(fd.name, want);
    assert_eq!(fd.nameraw, want);

    let (attached, detached) = probe.set_syscalls(Some(&[])).expect("detach");
    assert!(attached.is_empty());
    assert_eq!(detached, ["openat"]);
    let pid = write_open();
    std::thread::sleep(Duration::from_millis(300));
    let late: Vec<Event> = rx
        .try_iter()
        .filter(|e| e.process.pid == pid && e.event_type() == EventType::Openat)
        .collect();
    assert!(late.is_empty(), "detached openat still reported: {late:?}");
    probe.stop();
    let _ = std::fs::remove_dir_all(&d);
}

/// A process 32 pid namespaces deep (the kernel's limit, `MAX_PID_NS_LEVEL`) reports its
/// own namespace's pid, not the host's: read with a mask of 31, level 32 was level 0, and
/// such a process looked like one of the host's pid namespace (`vpid = pid`), which the
/// profiler reads as the container runtime's.
#[test]
fn the_deepest_pid_namespace_is_not_the_hosts() {
    let Some(s) = shared() else { return };
    let marker = format!("fl-pidns-32-{}", std::process::id());
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork"]);
    for _ in 1..32 {
        cmd.args(["unshare", "--pid", "--fork"]);
    }
    cmd.args(["/bin/true", &marker]);
    run(&mut cmd);
    let ev = wait_for(s, "the exec 32 pid namespaces deep", |e| {
        matches!(e.event_type(), EventType::Execve | EventType::Execveat)
            && e.process.args == [marker.clone()]
    });
    assert_eq!(
        (ev.process.vpid, ev.process.pid != 1),
        (1, true),
        "{:?}",
        ev.process
    );
}
