//! Turns decoded records into enriched [`Event`]s: process table upkeep,
//! wall-clock time, fd/socket details, container attribution, user names, and
//! container metadata (name, image, pod) from the runtime [`Resolver`].
//!
//! The event type of a record is its kind's (`EventType::of_kind`, the table of event
//! kinds); what each record adds is built per hook family: `process.rs` (exec, fork,
//! exit), `file.rs` (opens, dup, links), `net.rs` (connect, send, accept, socket),
//! `other.rs` (ptrace, modules). This module assembles the event (process, ancestors,
//! container, users) and holds events for their container's metadata.
//!
//! With a resolver, [`Enricher::push`] is the entry point: an event of a
//! container whose metadata is still being looked up is *held* (in arrival
//! order, at most [`RuntimeConfig::hold`] and [`RuntimeConfig::hold_max_events`])
//! and released by [`Enricher::release`] as soon as the metadata arrives, or
//! when its hold runs out with what is known (cgroup id and runtime). Events of
//! one container keep their order; events of different containers (and of the
//! host) may overtake held ones.
//!
//! [`RuntimeConfig::hold`]: crate::runtime::RuntimeConfig::hold
//! [`RuntimeConfig::hold_max_events`]: crate::runtime::RuntimeConfig::hold_max_events

mod file;
mod net;
mod other;
mod process;

pub use file::normalize;

/// What a `socket(domain, …)` record becomes, as far as the kernel's filter knows it
/// before the record exists: the event type, the domain argument and the descriptor's kind
/// (everything else default). Built with the real enrichment, for
/// [`crate::filter::EventFilterPlan`].
pub fn socket_shape(domain: u32) -> Event {
    use bytemuck::Zeroable;
    let mut e = abi::Socket::zeroed();
    e.domain = domain;
    e.h.kind = abi::Kind::Socket as u32;
    let (fd, args) = net::socket(&e.h, &e);
    Event {
        typ: EventTypeField(EventType::Socket),
        fd,
        args,
        ..Event::default()
    }
}

/// What a `dup`/`dup2`/`dup3` record (`typ`) whose new descriptor is `newfd` (≥ 0, the
/// call's result) and is the socket `sock` (family 0: not a socket) becomes, as far as the
/// kernel's filter knows it: the event type, result, new descriptor and its kind. Built
/// with the real enrichment, for [`crate::filter::EventFilterPlan`].
pub fn dup_shape(typ: EventType, newfd: i64, sock: abi::Sock) -> Event {
    use bytemuck::Zeroable;
    let mut e = abi::Dup::zeroed();
    e.h.res = newfd;
    e.newfd = newfd;
    e.sock = sock;
    let (fd, args) = file::dup(&e.h, &e);
    Event {
        typ: EventTypeField(typ),
        res: newfd,
        fd,
        args,
        ..Event::default()
    }
}

use crate::container::CgroupContainer;
use crate::decode::Raw;
use crate::proctable::{ProcInfo, ProcessTable};
use crate::runtime::{cache_key, ContainerMeta, Lookup, Resolver};
use crate::users::Users;
use ahash::{AHashMap, AHashSet};
use falco_learn_event::path;
use falco_learn_event::{Container, Event, EventType, EventTypeField, Process};
use falco_learn_probe_common as abi;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Turns [`Raw`] records into [`Event`]s, keeping the process table current.
pub struct Enricher {
    pub procs: ProcessTable,
    users: Users,
    boot_epoch_ns: u64,
    hostname: Arc<str>,
    /// Events produced so far (`evt.num`).
    num: u64,
    resolver: Option<Arc<Resolver>>,
    held: VecDeque<Held>,
    /// Each container's event value, with the metadata it was built from.
    containers: AHashMap<CgroupContainer, (Option<Arc<ContainerMeta>>, Arc<Container>)>,
    /// The container value of host processes.
    host: Arc<Container>,
}

/// What a cached [`Process`] was built for (with its `comm`): the table's generation
/// (bumped by every exec and removal, which is when a process's own fields or its
/// session and group leaders' names change), the thread's identity and the user
/// tables' epoch (a container's passwd read again once its root is ready).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessKey {
    generation: u64,
    tid: u32,
    uid: u32,
    gid: u32,
    /// [`Users::epoch`]: a container's passwd read later renames its users.
    users: u64,
}

/// An event waiting for its container's metadata.
struct Held {
    ev: Event,
    container: Arc<CgroupContainer>,
    until: Instant,
}

pub(super) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The kernel's `PATH_*` bits of one path.
pub(super) fn path_flags(bits: u32) -> path::PathFlags {
    path::PathFlags {
        truncated: bits & abi::PATH_TRUNCATED != 0,
        deleted: bits & abi::PATH_DETACHED != 0,
        pseudo: bits & abi::PATH_PSEUDO != 0,
    }
}

fn comm(h: &abi::Hdr) -> String {
    let end = h.comm.iter().position(|b| *b == 0).unwrap_or(h.comm.len());
    lossy(&h.comm[..end])
}

impl Enricher {
    pub fn new(procs: ProcessTable, boot_epoch_ns: u64) -> Self {
        let hostname = crate::procfs::hostname();
        Enricher {
            procs,
            users: Users::default(),
            boot_epoch_ns,
            hostname: hostname.into(),
            num: 0,
            resolver: None,
            held: VecDeque::new(),
            containers: AHashMap::new(),
            host: Arc::new(Container::host()),
        }
    }

    /// Fill container metadata from `resolver` (lookups start on first sight).
    pub fn with_resolver(mut self, resolver: Arc<Resolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    pub fn resolver(&self) -> Option<&Arc<Resolver>> {
        self.resolver.as_ref()
    }

    /// Events held for metadata now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Apply one record and hand every event that is ready to `out`: this one
    /// (unless it waits for its container's metadata) and held ones whose
    /// metadata arrived or whose hold ran out.
    pub fn push(&mut self, raw: &Raw, now: Instant, out: &mut impl FnMut(Event)) {
        let Some((ev, pending)) = self.enrich_inner(raw) else {
            return;
        };
        let Some(r) = &self.resolver else {
            out(ev);
            return;
        };
        match pending {
            Some(container) => {
                if self.held.len() >= r.config().hold_max_events.max(1) {
                    if let Some(h) = self.held.pop_front() {
                        r.counters().hold_overflow.fetch_add(1, Ordering::Relaxed);
                        out(h.ev);
                    }
                }
                let until = now + r.config().hold;
                self.held.push_back(Held {
                    ev,
                    container,
                    until,
                });
            }
            None => {
                // this container's held events (if any) are resolved now: they go first
                if !self.held.is_empty() {
                    self.release(now, out);
                }
                out(ev);
            }
        }
    }

    /// Hand held events whose metadata arrived (filled) or whose hold ran out
    /// (as they are) to `out`, in arrival order.
    pub fn release(&mut self, now: Instant, out: &mut impl FnMut(Event)) {
        let Some(r) = &self.resolver else {
            return;
        };
        let mut keep = VecDeque::new();
        // containers with an event kept in this pass: their later events stay behind it,
        // even when the lookup completes meanwhile (another thread fills the cache), so
        // a container's events leave in their order
        let mut waiting: AHashSet<Arc<CgroupContainer>> = AHashSet::new();
        while let Some(mut h) = self.held.pop_front() {
            if waiting.contains(&h.container) {
                keep.push_back(h);
                continue;
            }
            match r.peek(&h.container) {
                Lookup::Ready(meta) => {
                    meta.fill(Arc::make_mut(&mut h.ev.container));
                    out(h.ev);
                }
                Lookup::Pending if now < h.until => {
                    waiting.insert(h.container.clone());
                    keep.push_back(h);
                }
                Lookup::Pending => {
                    r.counters().hold_timeouts.fetch_add(1, Ordering::Relaxed);
                    out(h.ev);
                }
                Lookup::Unavailable => out(h.ev),
            }
        }
        self.held = keep;
    }

    /// Release every held event now, with whatever metadata is known.
    pub fn flush(&mut self, out: &mut impl FnMut(Event)) {
        let far = Instant::now() + std::time::Duration::from_secs(3600);
        self.release(far, out);
        for h in self.held.drain(..) {
            out(h.ev);
        }
    }

    /// Evict the metadata of containers that have no process left in the table.
    pub fn sweep_containers(&mut self) -> usize {
        let running: AHashSet<String> = self.procs.containers().map(|c| c.short_id()).collect();
        self.users.retain(|id| running.contains(id));
        self.users.retry_unread();
        let in_table: AHashSet<&CgroupContainer> = self.procs.containers().map(|c| &**c).collect();
        self.containers.retain(|c, _| in_table.contains(c));
        let Some(r) = &self.resolver else {
            return 0;
        };
        let live: AHashSet<String> = self
            .procs
            .containers()
            .map(|c| cache_key(c))
            .chain(self.held.iter().map(|h| cache_key(&h.container)))
            .collect();
        r.retain_live(&live)
    }

    /// Apply one record; `None` for records that only update state (none today:
    /// fork and exit are events too). Container metadata is filled when the
    /// resolver has it already; this never holds an event (see [`Enricher::push`]).
    pub fn enrich(&mut self, raw: &Raw) -> Option<Event> {
        self.enrich_inner(raw).map(|(ev, _)| ev)
    }

    /// The event, and its container when that container's metadata is pending.
    fn enrich_inner(&mut self, raw: &Raw) -> Option<(Event, Option<Arc<CgroupContainer>>)> {
        let h = *raw.hdr();
        let c = comm(&h);
        let ts = self.boot_epoch_ns + h.ts_boot_ns;
        // the table of event kinds: each kind yields one event type
        let typ = EventType::of_kind(raw.kind());
        let (fd, args) = match raw {
            Raw::Exec {
                e,
                exepath,
                args,
                cwd,
                cgroup,
                filename,
            } => {
                let strings = process::ExecStrings {
                    exepath,
                    argv: args,
                    cwd,
                    cgroup,
                    filename,
                };
                (
                    None,
                    process::exec(&mut self.procs, self.boot_epoch_ns, &h, &c, e, strings),
                )
            }
            Raw::Fork(e) => (
                None,
                process::fork(&mut self.procs, self.boot_epoch_ns, &h, &c, e),
            ),
            Raw::Exit(e) => (None, process::exit(e)),
            Raw::Net(e) => net::net(typ, &h, e),
            Raw::Socket(e) => net::socket(&h, e),
            Raw::Open { e, path, resolved } => file::open(&self.procs, &h, e, path, resolved),
            Raw::Dup(e) => file::dup(&h, e),
            Raw::Link { e, p1, p2 } => (None, file::link(typ, e, p1, p2)),
            Raw::Ptrace(e) => (None, other::ptrace(e)),
            Raw::Ia32(e) => (None, other::ia32(e)),
            Raw::Module { e, uargs } => (None, other::module(e, uargs)),
        };

        let gen = self.procs.generation();
        let p = self.procs.entry(h.pid, h.ppid, &c);
        // an exec returns in the new program's ABI (the kernel renumbers the call): an x32
        // execve returning 0 is the start of an x32 program, a 32-bit program as an ia32 one
        // is (its exec record cannot say: x32 leaves TS_COMPAT clear)
        if matches!(raw, Raw::Ia32(e) if e.id == other::X32_EXECVE && h.res == 0)
            && !p.exe_flags.ia32
        {
            p.exe_flags.ia32 = true;
            p.process_cache = None;
        }
        let key = ProcessKey {
            generation: gen,
            tid: h.tid,
            uid: h.uid,
            gid: h.gid,
            users: self.users.epoch(),
        };
        let cached = p
            .process_cache
            .as_ref()
            .filter(|(k, pr)| *k == key && pr.comm == c)
            .map(|(_, pr)| pr.clone());
        let cc = p.container.clone();
        let ancestors = self.procs.ancestors(h.pid);
        let mut pending = None;
        let container = match &cc {
            Some(cc) => {
                let meta = self.resolver.as_ref().map(|r| r.lookup_for(cc, h.pid));
                if let Some(Lookup::Pending) = meta {
                    pending = Some(cc.clone());
                }
                let ready = match meta {
                    Some(Lookup::Ready(m)) => Some(m),
                    _ => None,
                };
                self.container_of(cc, ready)
            }
            None => self.host.clone(),
        };
        let process = match cached {
            Some(pr) => pr,
            None => {
                let pr = self.build_process(&h, c, &container);
                if let Some(p) = self.procs.get_mut(h.pid) {
                    p.process_cache = Some((key, pr.clone()));
                }
                pr
            }
        };
        if matches!(raw, Raw::Exit(_)) {
            self.procs.on_exit(h.pid);
        }
        self.num += 1;
        let ev = Event {
            num: self.num,
            ts,
            typ: EventTypeField(typ),
            res: h.res,
            hostname: self.hostname.clone(),
            cgroup_id: h.cgroup_id,
            exec_id: h.exec_id,
            process,
            ancestors,
            container,
            fd,
            args,
        };
        Some((ev, pending))
    }

    /// The event's process, built from the table's entry for `h.pid` (the caller
    /// caches it there until the entry or the thread's credentials change).
    fn build_process(&mut self, h: &abi::Hdr, comm: String, container: &Container) -> Arc<Process> {
        let Some(p) = self.procs.get(h.pid) else {
            return Arc::new(Process {
                pid: h.pid,
                tid: h.tid,
                comm,
                ..Default::default()
            });
        };
        let root = p.container.as_ref().map(|_| (container.id.as_str(), h.pid));
        let loginuid = p.loginuid;
        let user = self.users.user_name(root, h.uid);
        let group = self.users.group_name(root, h.gid);
        let loginname = if loginuid == u32::MAX {
            String::new()
        } else {
            self.users.user_name(root, loginuid)
        };
        // `users` borrowed the table mutably above: look the entry up again
        let Some(p) = self.procs.get(h.pid) else {
            return Arc::new(Process::default());
        };
        let sname = leader(&self.procs, p, |q| q.sid)
            .map(|l| l.comm.clone())
            .unwrap_or_default();
        let (vpgid_name, vpgid_exe) = leader(&self.procs, p, |q| q.pgid)
            .map(|l| (l.comm.clone(), l.exe.clone()))
            .unwrap_or_default();
        Arc::new(Process {
            pid: h.pid,
            tid: h.tid,
            ppid: p.ppid,
            vpid: p.vpid,
            sid: p.sid,
            vpgid: p.pgid,
            comm,
            exe: p.exe.clone(),
            exepath: p.exepath.clone(),
            args: p.args.clone(),
            cwd: p.cwd.clone(),
            tty: p.tty,
            uid: h.uid,
            gid: h.gid,
            loginuid,
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
        })
    }

    /// The event's container: one shared value per container and metadata version
    /// (rebuilt when the resolver's metadata for it changes or arrives).
    fn container_of(
        &mut self,
        cc: &Arc<CgroupContainer>,
        meta: Option<Arc<ContainerMeta>>,
    ) -> Arc<Container> {
        if let Some((m, c)) = self.containers.get(&**cc) {
            let same = match (m, &meta) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if same {
                return c.clone();
            }
        }
        let mut c = Container {
            id: cc.short_id(),
            runtime: cc.runtime.as_str().to_string(),
            ..Default::default()
        };
        if let Some(m) = &meta {
            m.fill(&mut c);
        }
        let c = Arc::new(c);
        self.containers.insert((**cc).clone(), (meta, c.clone()));
        c
    }
}

/// The session or process-group leader of `p` (`id` picks `sid` or `pgid`), as
/// libsinsp finds it for `proc.sname` / `proc.vpgid.name` / `proc.vpgid.exe`. On
/// the host the id is the leader's pid. In a pid namespace (a container) the id
/// is the namespace's number, so looking it up among host pids finds an
/// unrelated process (pid 1, a kernel thread): there, and when the leader is
/// gone, the leader is the highest ancestor with the same id, or `p` itself.
fn leader<'a>(
    procs: &'a ProcessTable,
    p: &'a ProcInfo,
    id: impl Fn(&ProcInfo) -> u32,
) -> Option<&'a ProcInfo> {
    let want = id(p);
    if want == 0 {
        return None;
    }
    let in_pid_ns = p.vpid != 0 && p.vpid != p.pid;
    if !in_pid_ns {
        if let Some(l) = procs.get(want) {
            return Some(l);
        }
    }
    let mut leader = p;
    // bounded: a corrupt table must not loop
    for _ in 0..256 {
        match procs.get(leader.ppid) {
            Some(parent) if parent.pid != leader.pid && id(parent) == want => leader = parent,
            _ => break,
        }
    }
    Some(leader)
}

#[cfg(test)]
mod tests {
    use super::net::AF_INET;
    use super::process::exe_writable;
    use super::*;
    use crate::decode::decode;
    use bytemuck::Zeroable;
    use falco_learn_event::errno::EINPROGRESS;
    use falco_learn_event::{Args, FdType, L4Proto};

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

    /// In a container, sid/pgid are the pid namespace's numbers: the leader is
    /// the highest ancestor with the same id (libsinsp), never the host process
    /// that has that pid (here pid 1 and pid 7 on the host).
    #[test]
    fn session_and_group_leaders_inside_a_pid_namespace() {
        let mut t = ProcessTable::new(vec![], 0);
        let proc = |pid, ppid, vpid, sid, pgid, comm: &str| ProcInfo {
            pid,
            ppid,
            vpid,
            sid,
            pgid,
            comm: comm.into(),
            exe: format!("/bin/{comm}"),
            ..Default::default()
        };
        t.insert(proc(1, 0, 1, 1, 1, "process_api"));
        t.insert(proc(7, 2, 7, 0, 0, "kworker/0"));
        t.insert(proc(500, 1, 500, 500, 500, "containerd-shim"));
        // the container's session leader (its pid 1) and a child in its own group
        t.insert(proc(600, 500, 1, 1, 1, "sh"));
        t.insert(proc(601, 600, 7, 1, 7, "dropped"));
        // a host shell's child whose session leader is in the table
        t.insert(proc(700, 1, 700, 700, 700, "bash"));
        t.insert(proc(701, 700, 701, 700, 701, "cat"));
        let mut en = Enricher::new(t, 1_000);
        let ev = |en: &mut Enricher, pid: u32| {
            let mut s = abi::Socket::zeroed();
            s.h = crate::decode::tests::hdr(abi::Kind::Socket, std::mem::size_of::<abi::Socket>());
            s.h.pid = pid;
            s.h.tid = pid;
            en.enrich(&decode(bytemuck::bytes_of(&s)).unwrap()).unwrap()
        };
        let e = ev(&mut en, 601);
        assert_eq!(e.process.sname, "sh");
        assert_eq!(e.process.vpgid_name, "dropped");
        assert_eq!(e.process.vpgid_exe, "/bin/dropped");
        let e = ev(&mut en, 600);
        assert_eq!(e.process.sname, "sh");
        assert_eq!(e.process.vpgid_name, "sh");
        let e = ev(&mut en, 701);
        assert_eq!(e.process.sname, "bash");
        assert_eq!(e.process.vpgid_name, "cat");
    }

    /// An x32 program's exec returns as x32 execve (result 0): the process is flagged a
    /// 32-bit program from that event on, its forks too; a failed x32 execve, or another
    /// 32-bit call, flags nothing.
    #[test]
    fn an_x32_execs_return_flags_the_process_32_bit() {
        let mut t = ProcessTable::new(vec![], 0);
        for pid in [900, 901] {
            t.insert(ProcInfo {
                pid,
                ppid: 1,
                comm: "prog".into(),
                ..Default::default()
            });
        }
        let mut en = Enricher::new(t, 1_000);
        let ia32 = |en: &mut Enricher, pid: u32, id: i64, res: i64| {
            let mut r = abi::Ia32::zeroed();
            r.h =
                crate::decode::tests::hdr(abi::Kind::Ia32Syscall, std::mem::size_of::<abi::Ia32>());
            r.h.pid = pid;
            r.h.tid = pid;
            r.h.res = res;
            r.id = id;
            en.enrich(&decode(bytemuck::bytes_of(&r)).unwrap()).unwrap()
        };
        let x32_execve = 0x4000_0000 | 520;
        assert!(!ia32(&mut en, 900, x32_execve, -2).process.exe_flags.ia32);
        assert!(
            !ia32(&mut en, 900, 0x4000_0000 | 39, 900)
                .process
                .exe_flags
                .ia32
        );
        assert!(!ia32(&mut en, 901, 20, 901).process.exe_flags.ia32);
        assert!(ia32(&mut en, 900, x32_execve, 0).process.exe_flags.ia32);
        en.procs.on_fork(902, 900, 902, 0, "prog");
        assert!(
            ia32(&mut en, 902, 0x4000_0000 | 39, 902)
                .process
                .exe_flags
                .ia32
        );
    }

    /// A connect record of fd 3 from 198.51.100.1:`lport` to 198.51.100.10:`port` over
    /// `protocol` (6 TCP, 17 UDP).
    fn connect_record(protocol: u16, lport: u16, port: u16) -> abi::Net {
        let mut n = abi::Net::zeroed();
        n.h = crate::decode::tests::hdr(abi::Kind::Connect, std::mem::size_of::<abi::Net>());
        n.fd = 3;
        n.addr.family = AF_INET;
        n.addr.port = port;
        n.addr.addr[..4].copy_from_slice(&[198, 51, 100, 10]);
        n.sock.family = AF_INET;
        n.sock.typ = if protocol == 6 { 1 } else { 2 };
        n.sock.protocol = protocol;
        n.sock.lport = lport;
        n.sock.laddr[..4].copy_from_slice(&[198, 51, 100, 1]);
        n
    }

    #[test]
    fn connect_record_becomes_tcp_event() {
        let mut n = connect_record(6, 40000, 2222);
        n.h.res = -EINPROGRESS;
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

    /// A connect from a UDP socket bound to an explicit port is still the client's: the
    /// server's port is the one connected to (what the kernel's outbound filter and the
    /// profile's outbound dimension both decide on), the bound port is the client's.
    #[test]
    fn a_connect_from_a_bound_udp_socket_is_the_clients() {
        let mut n = connect_record(17, 5353, 53);
        n.sock.flags = abi::SOCK_FLAGS_KNOWN | abi::SOCK_BOUND;
        let raw = decode(bytemuck::bytes_of(&n)).unwrap();
        let mut en = Enricher::new(ProcessTable::new(vec![], 0), 1_000);
        let fd = en.enrich(&raw).unwrap().fd.unwrap();
        assert!(fd.is_client);
        assert_eq!(fd.sport, Some(53));
        assert_eq!(fd.sip, Some("198.51.100.10".parse().unwrap()));
        assert_eq!(fd.cport, Some(5353));
        assert_eq!(fd.bound, Some(true));
    }
}

#[cfg(test)]
pub(crate) mod hold_tests {
    //! Events of a container wait for its metadata (bounded), then carry it.
    use super::net::AF_INET;
    use super::*;
    use crate::container::RuntimeKind;
    use crate::decode::decode;
    use crate::proctable::ProcInfo;
    use crate::runtime::RuntimeConfig;
    use bytemuck::Zeroable;
    use std::time::Duration;

    pub(crate) const ID: &str = "4444444444444444444444444444444444444444444444444444444444444444";

    /// A socket record of `pid`.
    pub(crate) fn socket_record(pid: u32) -> Raw {
        let mut s = abi::Socket::zeroed();
        s.h = crate::decode::tests::hdr(abi::Kind::Socket, std::mem::size_of::<abi::Socket>());
        s.h.pid = pid;
        s.h.tid = pid;
        s.domain = AF_INET as u32;
        decode(bytemuck::bytes_of(&s)).unwrap()
    }

    /// An enricher whose table holds pid 4242, a process of podman container [`ID`].
    pub(crate) fn enricher(cfg: RuntimeConfig) -> Enricher {
        let mut t = ProcessTable::new(vec![], 0);
        t.insert(ProcInfo {
            pid: 4242,
            ppid: 1,
            comm: "nginx".into(),
            container: Some(Arc::new(CgroupContainer {
                full_id: ID.into(),
                namespace: None,
                runtime: RuntimeKind::Podman,
            })),
            ..Default::default()
        });
        let r = Resolver::start(cfg).unwrap();
        Enricher::new(t, 0).with_resolver(r)
    }

    /// No runtime sockets and no podman storage: every source is off.
    pub(crate) fn base() -> RuntimeConfig {
        RuntimeConfig {
            containerd_sockets: vec![],
            docker_sockets: vec![],
            podman_sockets: vec![],
            podman_storage: None,
            podman_run_root: None,
            ..RuntimeConfig::default()
        }
    }

    #[test]
    fn held_until_metadata_arrives_then_filled_in_order() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("overlay-containers")).unwrap();
        std::fs::write(
            d.path().join("overlay-containers/containers.json"),
            format!(
                r#"[{{"id":"{ID}","names":["web"],"metadata":"{{\"image-name\":\"nginx:1.27\"}}"}}]"#
            ),
        )
        .unwrap();
        let mut en = enricher(RuntimeConfig {
            podman_storage: Some(d.path().to_path_buf()),
            hold: Duration::from_secs(5),
            ..base()
        });
        let mut out = Vec::new();
        let now = Instant::now();
        en.push(&socket_record(4242), now, &mut |e| out.push(e));
        en.push(&socket_record(4242), now, &mut |e| out.push(e));
        // the second event's lookup was already pending: both wait
        assert_eq!((out.len(), en.held()), (0, 2));
        let deadline = Instant::now() + Duration::from_secs(5);
        while out.len() < 2 {
            assert!(Instant::now() < deadline, "never released");
            std::thread::sleep(Duration::from_millis(2));
            en.release(Instant::now(), &mut |e| out.push(e));
        }
        assert_eq!(out.len(), 2);
        // in their order, though the lookup may complete between the two peeks of a pass
        assert_eq!(out[0].num + 1, out[1].num);
        for ev in &out {
            assert_eq!(ev.container.id, &ID[..12]);
            assert_eq!(ev.container.name, "web");
            assert_eq!(ev.container.image_repository, "docker.io/library/nginx");
            assert_eq!(ev.container.image_tag, "1.27");
            assert_eq!(ev.container.runtime, "podman");
        }
        // later events are filled at once, never held
        en.push(&socket_record(4242), Instant::now(), &mut |e| out.push(e));
        assert_eq!((out.len(), en.held()), (3, 0));
        assert_eq!(out[2].container.name, "web");
        let s = en.resolver().unwrap().stats();
        assert_eq!((s.lookups, s.resolved, s.hold_timeouts), (1, 1, 0));
    }

    #[test]
    fn hold_is_bounded_in_time_and_events_keep_what_is_known() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("podman.sock");
        // a service that accepts and never answers
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let mut en = enricher(RuntimeConfig {
            podman_sockets: vec![sock],
            hold: Duration::from_millis(30),
            lookup_timeout: Duration::from_secs(10),
            ..base()
        });
        let mut out = Vec::new();
        let t0 = Instant::now();
        en.push(&socket_record(4242), t0, &mut |e| out.push(e));
        // a host process event is not held behind it
        en.push(&socket_record(1), t0, &mut |e| out.push(e));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].container.id, "host");
        en.release(t0 + Duration::from_millis(10), &mut |e| out.push(e));
        assert_eq!(out.len(), 1);
        en.release(t0 + Duration::from_millis(31), &mut |e| out.push(e));
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].container.id, &ID[..12]);
        assert_eq!(out[1].container.runtime, "podman");
        assert_eq!(out[1].container.image_repository, "");
        assert_eq!(en.resolver().unwrap().stats().hold_timeouts, 1);
    }

    /// A container whose /etc/passwd could not be read at its first event (its root
    /// not ready yet) is read again later: a process cached meanwhile gets the
    /// container's names then, as every event got them before processes were
    /// cached (it kept `<NA>` until some exec or removal anywhere on the host).
    #[test]
    fn cached_processes_follow_a_container_passwd_read_later() {
        use std::os::unix::ffi::OsStrExt;
        if !falco_learn_test_support::may_run("a chrooted container process", &[]) {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        let root = std::ffi::CString::new(d.path().as_os_str().as_bytes()).unwrap();
        // SAFETY: the child only calls async-signal-safe functions
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe {
                if libc::chroot(root.as_ptr()) != 0 {
                    libc::_exit(1);
                }
                loop {
                    libc::pause();
                }
            }
        }
        assert!(pid > 0);
        struct Child(i32);
        impl Drop for Child {
            fn drop(&mut self) {
                unsafe {
                    libc::kill(self.0, libc::SIGKILL);
                    libc::waitpid(self.0, std::ptr::null_mut(), 0);
                }
            }
        }
        let _child = Child(pid);
        let pid = pid as u32;
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_link(format!("/proc/{pid}/root"))
            .ok()
            .as_deref()
            != Some(d.path())
        {
            assert!(
                Instant::now() < deadline,
                "the child did not chroot to {}",
                d.path().display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut t = ProcessTable::new(vec![], 0);
        t.insert(ProcInfo {
            pid,
            ppid: 1,
            comm: "app".into(),
            container: Some(Arc::new(CgroupContainer {
                full_id: ID.into(),
                namespace: None,
                runtime: RuntimeKind::Podman,
            })),
            ..Default::default()
        });
        let mut en = Enricher::new(t, 0);
        en.users.retry = Duration::ZERO;
        let record = || {
            let mut s = abi::Socket::zeroed();
            s.h = crate::decode::tests::hdr(abi::Kind::Socket, std::mem::size_of::<abi::Socket>());
            s.h.pid = pid;
            s.h.tid = pid;
            s.h.uid = 43210;
            s.h.gid = 43210;
            s.domain = AF_INET as u32;
            bytemuck::bytes_of(&s).to_vec()
        };
        let ev = en.enrich(&decode(&record()).unwrap()).unwrap();
        assert_eq!(
            (ev.process.user.as_str(), ev.process.group.as_str()),
            ("<NA>", "<NA>")
        );
        // the root is ready now
        std::fs::write(
            d.path().join("etc/passwd"),
            "app:x:43210:43210::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(d.path().join("etc/group"), "apps:x:43210:\n").unwrap();
        // the periodic sweep (every second)
        en.sweep_containers();
        let ev = en.enrich(&decode(&record()).unwrap()).unwrap();
        assert_eq!(
            (ev.process.user.as_str(), ev.process.group.as_str()),
            ("app", "apps")
        );
        // and cached again
        let again = en.enrich(&decode(&record()).unwrap()).unwrap();
        assert!(Arc::ptr_eq(&ev.process, &again.process));
    }
}
