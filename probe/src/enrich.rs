//! Turns decoded records into enriched [`Event`]s: process table upkeep,
//! wall-clock time, fd/socket details, container attribution, user names.

use crate::decode::Raw;
use crate::proctable::ProcessTable;
use crate::users::Users;
use falco_learn_event::{
    Args, Container, Event, EventType, EventTypeField, ExeFlags, Fd, FdType, L4Proto, Process,
};
use falco_learn_probe_common as abi;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const AF_NETLINK: u16 = 16;
const AF_PACKET: u16 = 17;
const EINPROGRESS: i64 = 115;
const O_DIRECTORY: u32 = 0o200000;

/// Turns [`Raw`] records into [`Event`]s, keeping the process table current.
pub struct Enricher {
    pub procs: ProcessTable,
    users: Users,
    boot_epoch_ns: u64,
    hostname: Arc<str>,
    /// Events produced so far (`evt.num`).
    num: u64,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn comm(h: &abi::Hdr) -> String {
    let end = h.comm.iter().position(|b| *b == 0).unwrap_or(h.comm.len());
    lossy(&h.comm[..end])
}

fn ip(family: u16, a: &[u8; 16]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(*a))),
        _ => None,
    }
}

fn fd_type(family: u16) -> FdType {
    match family {
        AF_INET => FdType::Ipv4,
        AF_INET6 => FdType::Ipv6,
        AF_UNIX => FdType::Unix,
        AF_NETLINK => FdType::Netlink,
        AF_PACKET => FdType::Packet,
        _ => FdType::Other,
    }
}

fn l4(protocol: u16, typ: u16) -> L4Proto {
    match (protocol, typ) {
        (6, _) => L4Proto::Tcp,
        (17, _) => L4Proto::Udp,
        (1, _) | (58, _) => L4Proto::Icmp,
        (_, 1) => L4Proto::Tcp,
        (_, 2) => L4Proto::Udp,
        (_, 3) => L4Proto::Raw,
        _ => L4Proto::Unknown,
    }
}

fn sockfamily(family: u16) -> &'static str {
    match family {
        AF_INET | AF_INET6 => "ip",
        AF_UNIX => "unix",
        AF_NETLINK => "netlink",
        AF_PACKET => "packet",
        _ => "",
    }
}

/// Lexically normalise an absolute path: `//`, `.` and `..` removed.
pub fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    let mut s = String::with_capacity(path.len());
    for c in out {
        s.push('/');
        s.push_str(c);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

fn sock_fd(num: i64, s: &abi::Sock) -> Fd {
    Fd {
        num,
        typ: fd_type(s.family),
        l4proto: l4(s.protocol, s.typ),
        cip: ip(s.family, &s.laddr),
        cport: (s.family == AF_INET || s.family == AF_INET6).then_some(s.lport),
        sip: ip(s.family, &s.raddr),
        sport: (s.family == AF_INET || s.family == AF_INET6).then_some(s.rport),
        is_client: true,
        connected: s.rport != 0,
        sockfamily: sockfamily(s.family).to_string(),
        ..Default::default()
    }
}

impl Enricher {
    pub fn new(procs: ProcessTable, boot_epoch_ns: u64) -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Enricher {
            procs,
            users: Users::default(),
            boot_epoch_ns,
            hostname: hostname.into(),
            num: 0,
        }
    }

    /// Apply one record; `None` for records that only update state (none today:
    /// fork and exit are events too).
    pub fn enrich(&mut self, raw: &Raw) -> Option<Event> {
        let h = *raw.hdr();
        let c = comm(&h);
        let ts = self.boot_epoch_ns + h.ts_boot_ns;
        let typ: EventType;
        let mut fd = None;
        let args: Args;
        match raw {
            Raw::Exec {
                e,
                exepath,
                args: argv,
                cwd,
                cgroup,
                filename,
            } => {
                typ = if e.h.kind == abi::Kind::Execveat as u32 {
                    EventType::Execveat
                } else {
                    EventType::Execve
                };
                let mut parts: Vec<String> = argv.split(|b| *b == 0).map(lossy).collect();
                // argv ends with a NUL: drop the empty tail
                if parts.last().is_some_and(|s| s.is_empty()) {
                    parts.pop();
                }
                let exe = if parts.is_empty() {
                    String::new()
                } else {
                    parts.remove(0)
                };
                let cgroup = lossy(cgroup);
                let container = self.procs.container_for_cgroup(&cgroup).map(Arc::new);
                let boot = self.boot_epoch_ns;
                let p = self.procs.entry(h.pid, h.ppid, &c);
                p.ppid = h.ppid;
                p.comm = c.clone();
                p.exe = exe;
                p.exepath = lossy(exepath);
                if e.flags & abi::PATH_DETACHED != 0 {
                    // what /proc/<pid>/exe shows for a memfd or deleted file
                    p.exepath.push_str(" (deleted)");
                }
                p.args = parts;
                p.cwd = lossy(cwd);
                p.tty = e.tty;
                p.uid = h.uid;
                p.gid = h.gid;
                p.loginuid = e.loginuid;
                p.cap_effective = e.cap_effective;
                p.cap_permitted = e.cap_permitted;
                p.vpid = e.vpid;
                p.sid = e.sid;
                p.pgid = e.pgid;
                p.start_ts = boot + e.start_boot_ns;
                p.exe_ino = e.exe_ino;
                p.exe_ino_ctime = e.exe_ctime_ns;
                p.exe_ino_mtime = e.exe_mtime_ns;
                p.exe_flags = ExeFlags {
                    tmpfs: e.flags & abi::EXE_TMPFS != 0,
                    memfd: e.flags & abi::EXE_MEMFD != 0,
                    upper_layer: e.flags & abi::EXE_UPPER != 0,
                    writable: exe_writable(e.exe_mode, e.exe_uid, e.exe_gid, h.uid, h.gid),
                };
                p.container = container;
                args = Args::Exec {
                    filename: lossy(filename),
                };
            }
            Raw::Fork(e) => {
                typ = EventType::Clone;
                self.procs.on_fork(
                    h.pid,
                    h.ppid,
                    e.vpid,
                    self.boot_epoch_ns + e.start_boot_ns,
                    &c,
                );
                args = Args::Clone {
                    child_pid: h.pid,
                    flags: 0,
                };
            }
            Raw::Exit(e) => {
                typ = EventType::Procexit;
                args = Args::Exit {
                    status: e.exit_code,
                };
            }
            Raw::Net(e) => {
                typ = match raw.kind() {
                    abi::Kind::Sendto => EventType::Sendto,
                    abi::Kind::Sendmsg => EventType::Sendmsg,
                    _ => EventType::Connect,
                };
                let mut f = sock_fd(e.fd, &e.sock);
                if e.sock.family == 0 {
                    f.typ = fd_type(e.addr.family);
                    f.sockfamily = sockfamily(e.addr.family).to_string();
                }
                // the peer as passed is authoritative for the server side
                if let Some(peer) = ip(e.addr.family, &e.addr.addr) {
                    f.sip = Some(peer);
                    f.sport = Some(e.addr.port);
                }
                f.connected = typ == EventType::Connect && (h.res == 0 || h.res == -EINPROGRESS);
                let addr = match ip(e.addr.family, &e.addr.addr) {
                    Some(IpAddr::V6(a)) => format!("[{a}]:{}", e.addr.port),
                    Some(a) => format!("{a}:{}", e.addr.port),
                    None => String::new(),
                };
                args = if typ == EventType::Connect {
                    Args::Connect { fd: e.fd, addr }
                } else {
                    Args::Send {
                        fd: e.fd,
                        size: e.size,
                        addr,
                    }
                };
                fd = Some(f);
            }
            Raw::Open { e, path, resolved } => {
                typ = match raw.kind() {
                    abi::Kind::Open => EventType::Open,
                    abi::Kind::Openat2 => EventType::Openat2,
                    abi::Kind::Creat => EventType::Creat,
                    _ => EventType::Openat,
                };
                let raw_path = lossy(path);
                let name = if !resolved.is_empty() {
                    lossy(resolved)
                } else if raw_path.starts_with('/') {
                    normalize(&raw_path)
                } else {
                    let cwd = self
                        .procs
                        .get(h.pid)
                        .map(|p| p.cwd.clone())
                        .unwrap_or_default();
                    normalize(&format!("{cwd}/{raw_path}"))
                };
                fd = Some(Fd {
                    num: h.res,
                    typ: if e.flags & O_DIRECTORY != 0 {
                        FdType::Directory
                    } else {
                        FdType::File
                    },
                    name,
                    nameraw: raw_path.clone(),
                    ..Default::default()
                });
                args = Args::Open {
                    name: raw_path,
                    flags: e.flags,
                    mode: e.mode,
                    dirfd: e.dirfd,
                };
            }
            Raw::Socket(e) => {
                typ = EventType::Socket;
                fd = Some(Fd {
                    num: h.res,
                    typ: fd_type(e.domain as u16),
                    l4proto: l4(e.protocol as u16, (e.typ & 0xf) as u16),
                    sockfamily: sockfamily(e.domain as u16).to_string(),
                    ..Default::default()
                });
                args = Args::Socket {
                    domain: e.domain,
                    typ: e.typ,
                    proto: e.protocol,
                };
            }
            Raw::Dup(e) => {
                typ = match raw.kind() {
                    abi::Kind::Dup => EventType::Dup,
                    abi::Kind::Dup3 => EventType::Dup3,
                    _ => EventType::Dup2,
                };
                if e.sock.family != 0 {
                    fd = Some(sock_fd(h.res, &e.sock));
                } else {
                    fd = Some(Fd {
                        num: h.res,
                        typ: FdType::File,
                        ..Default::default()
                    });
                }
                args = Args::Dup {
                    oldfd: e.oldfd,
                    newfd: e.newfd,
                    flags: e.flags,
                };
            }
            Raw::Link { e, p1, p2 } => {
                let kind = raw.kind();
                typ = match kind {
                    abi::Kind::Symlink => EventType::Symlink,
                    abi::Kind::Symlinkat => EventType::Symlinkat,
                    abi::Kind::Link => EventType::Link,
                    _ => EventType::Linkat,
                };
                args = if matches!(kind, abi::Kind::Symlink | abi::Kind::Symlinkat) {
                    Args::Symlink {
                        target: lossy(p1),
                        linkpath: lossy(p2),
                        newdirfd: e.newdirfd,
                    }
                } else {
                    Args::Link {
                        oldpath: lossy(p1),
                        newpath: lossy(p2),
                        olddir: e.olddirfd,
                        newdir: e.newdirfd,
                        flags: e.flags,
                    }
                };
            }
            Raw::Ptrace(e) => {
                typ = EventType::Ptrace;
                args = Args::Ptrace {
                    request: e.request as u32,
                    pid: e.target_pid as u32,
                };
            }
            Raw::Module { e, uargs } => {
                typ = if raw.kind() == abi::Kind::InitModule {
                    EventType::InitModule
                } else {
                    EventType::FinitModule
                };
                args = Args::Module {
                    len_or_fd: e.len_or_fd,
                    uargs: lossy(uargs),
                    flags: e.flags,
                };
            }
        }

        let p = self.procs.entry(h.pid, h.ppid, &c).clone();
        let ancestors = self.procs.ancestors(h.pid);
        if matches!(raw, Raw::Exit(_)) {
            self.procs.on_exit(h.pid);
        }
        let container = match &p.container {
            Some(cc) => Container {
                id: cc.short_id(),
                runtime: cc.runtime.as_str().to_string(),
                ..Default::default()
            },
            None => Container::host(),
        };
        let root = p.container.as_ref().map(|_| (container.id.as_str(), h.pid));
        let user = self.users.user_name(root, h.uid);
        let group = self.users.group_name(root, h.gid);
        let loginname = if p.loginuid == u32::MAX {
            String::new()
        } else {
            self.users.user_name(root, p.loginuid)
        };
        self.num += 1;
        let leader = |pid: u32| self.procs.get(pid).filter(|_| pid != 0);
        let sname = leader(p.sid).map(|l| l.comm.clone()).unwrap_or_default();
        let (vpgid_name, vpgid_exe) = leader(p.pgid)
            .map(|l| (l.comm.clone(), l.exe.clone()))
            .unwrap_or_default();
        Some(Event {
            num: self.num,
            ts,
            typ: EventTypeField(typ),
            res: h.res,
            hostname: self.hostname.to_string(),
            cgroup_id: h.cgroup_id,
            process: Process {
                pid: h.pid,
                tid: h.tid,
                ppid: p.ppid,
                vpid: p.vpid,
                sid: p.sid,
                vpgid: p.pgid,
                comm: c,
                exe: p.exe,
                exepath: p.exepath,
                args: p.args,
                cwd: p.cwd,
                tty: p.tty,
                uid: h.uid,
                gid: h.gid,
                loginuid: p.loginuid,
                user,
                group,
                loginname,
                cap_effective: p.cap_effective,
                cap_permitted: p.cap_permitted,
                start_ts: p.start_ts,
                exe_flags: p.exe_flags,
                exe_ino: p.exe_ino,
                exe_ino_ctime: p.exe_ino_ctime,
                exe_ino_mtime: p.exe_ino_mtime,
                env: Vec::new(),
                sname,
                vpgid_name,
                vpgid_exe,
            },
            ancestors,
            container,
            fd,
            args,
        })
    }
}

/// Falco's `proc.is_exe_writable`: the running user may write the executable.
fn exe_writable(mode: u32, owner: u32, group: u32, uid: u32, gid: u32) -> bool {
    uid == 0
        || (owner == uid && mode & 0o200 != 0)
        || (group == gid && mode & 0o020 != 0)
        || mode & 0o002 != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode;
    use bytemuck::Zeroable;

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize("/a/./b//../c"), "/a/c");
        assert_eq!(normalize("/../.."), "/");
        assert_eq!(normalize("/etc/shadow"), "/etc/shadow");
    }

    #[test]
    fn writable_rules() {
        assert!(exe_writable(0o755, 0, 0, 0, 0));
        assert!(!exe_writable(0o755, 0, 0, 1000, 1000));
        assert!(exe_writable(0o755, 1000, 0, 1000, 1000));
        assert!(exe_writable(0o757, 0, 0, 1000, 1000));
    }

    #[test]
    fn connect_record_becomes_tcp_event() {
        let mut n = abi::Net::zeroed();
        n.h = crate::decode::tests::hdr(abi::Kind::Connect, std::mem::size_of::<abi::Net>());
        n.h.res = -EINPROGRESS;
        n.fd = 3;
        n.addr.family = AF_INET;
        n.addr.port = 2222;
        n.addr.addr[..4].copy_from_slice(&[198, 51, 100, 10]);
        n.sock.family = AF_INET;
        n.sock.typ = 1;
        n.sock.protocol = 6;
        n.sock.lport = 40000;
        n.sock.laddr[..4].copy_from_slice(&[198, 51, 100, 1]);
        let raw = decode(bytemuck::bytes_of(&n)).unwrap();
        let mut en = Enricher::new(ProcessTable::new(vec![], 0), 1_000);
        let ev = en.enrich(&raw).unwrap();
        assert_eq!(ev.event_type(), EventType::Connect);
        let fd = ev.fd.unwrap();
        assert_eq!(fd.typ, FdType::Ipv4);
        assert_eq!(fd.l4proto, L4Proto::Tcp);
        assert_eq!(fd.sip, Some("198.51.100.10".parse().unwrap()));
        assert_eq!(fd.sport, Some(2222));
        assert_eq!(fd.cport, Some(40000));
        assert!(fd.connected);
        assert_eq!(ev.res, -EINPROGRESS);
        assert_eq!(
            ev.args,
            Args::Connect {
                fd: 3,
                addr: "198.51.100.10:2222".into()
            }
        );
    }
}
