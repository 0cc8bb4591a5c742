//! The enriched `Event` model that flows one way through falco-learn:
//! probe → (profiler | enforcer).
//!
//! An [`Event`] is one completed syscall (or process lifecycle step) with
//! everything a Falco rule may ask about it already attached: the calling
//! process and its ancestors, the container and image it runs in, the file
//! descriptor it touched and the syscall's own arguments. Events serialise to
//! JSON lines (`record` / `replay`), so every stage after the kernel probe can
//! run, be tested and be benchmarked without root.
//!
//! The Falco field catalogue (`proc.name`, `fd.sport`, …) that reads these
//! structures lives in [`fields`]: one table drives rule parsing, the
//! `falco-learn fields` listing and extraction.

pub mod errno;
pub mod fields;
pub mod glob;
pub mod image;
mod jsonl;
pub mod path;
pub mod time;

pub use jsonl::{read_jsonl, write_jsonl, JsonlError, JsonlReader};

use falco_learn_probe_common::Kind;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Kind of an event, named after the syscall (or scheduler step) it reports.
/// The string form is Falco's `evt.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Execve,
    Execveat,
    Clone,
    Fork,
    Vfork,
    Clone3,
    Procexit,
    Connect,
    Sendto,
    Sendmsg,
    Accept,
    Accept4,
    Open,
    Openat,
    Openat2,
    Creat,
    Socket,
    Dup,
    Dup2,
    Dup3,
    Symlink,
    Symlinkat,
    Link,
    Linkat,
    Ptrace,
    #[serde(rename = "init_module", alias = "initmodule")]
    InitModule,
    #[serde(rename = "finit_module", alias = "finitmodule")]
    FinitModule,
    /// A 32-bit (ia32) syscall, which no syscall tracepoint reports (falco-learn's own
    /// type: Falco has none; `evt.arg.ID` is the syscall's number in the ia32 table).
    #[serde(rename = "ia32_syscall")]
    Ia32Syscall,
}

impl EventType {
    /// Every event type, in `evt.type` order of declaration.
    pub const ALL: &'static [EventType] = &[
        EventType::Execve,
        EventType::Execveat,
        EventType::Clone,
        EventType::Fork,
        EventType::Vfork,
        EventType::Clone3,
        EventType::Procexit,
        EventType::Connect,
        EventType::Sendto,
        EventType::Sendmsg,
        EventType::Accept,
        EventType::Accept4,
        EventType::Open,
        EventType::Openat,
        EventType::Openat2,
        EventType::Creat,
        EventType::Socket,
        EventType::Dup,
        EventType::Dup2,
        EventType::Dup3,
        EventType::Symlink,
        EventType::Symlinkat,
        EventType::Link,
        EventType::Linkat,
        EventType::Ptrace,
        EventType::InitModule,
        EventType::FinitModule,
        EventType::Ia32Syscall,
    ];

    /// Falco's name for this type (`evt.type`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Execve => "execve",
            EventType::Execveat => "execveat",
            EventType::Clone => "clone",
            EventType::Fork => "fork",
            EventType::Vfork => "vfork",
            EventType::Clone3 => "clone3",
            EventType::Procexit => "procexit",
            EventType::Connect => "connect",
            EventType::Sendto => "sendto",
            EventType::Sendmsg => "sendmsg",
            EventType::Accept => "accept",
            EventType::Accept4 => "accept4",
            EventType::Open => "open",
            EventType::Openat => "openat",
            EventType::Openat2 => "openat2",
            EventType::Creat => "creat",
            EventType::Socket => "socket",
            EventType::Dup => "dup",
            EventType::Dup2 => "dup2",
            EventType::Dup3 => "dup3",
            EventType::Symlink => "symlink",
            EventType::Symlinkat => "symlinkat",
            EventType::Link => "link",
            EventType::Linkat => "linkat",
            EventType::Ptrace => "ptrace",
            EventType::InitModule => "init_module",
            EventType::FinitModule => "finit_module",
            EventType::Ia32Syscall => "ia32_syscall",
        }
    }

    /// Parse Falco's `evt.type` name.
    pub fn from_name(s: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|t| t.as_str() == s)
    }

    /// Dense index, for per-type tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The event type records of `kind` become (the table of event kinds,
    /// `probe/common/src/kind_table.rs`).
    pub const fn of_kind(kind: Kind) -> EventType {
        kind_event_type(kind)
    }

    /// The probe record kind that yields this type, if any (`fork`, `vfork`, `clone3`
    /// are Falco names the probe never reports: forks are `clone`).
    pub fn kind(self) -> Option<Kind> {
        Kind::ALL
            .iter()
            .copied()
            .find(|k| EventType::of_kind(*k) == self)
    }

    /// The syscall whose tracepoints report this type, or `None` for the process
    /// lifecycle (execve, execveat, fork, exit: scheduler tracepoints the probe always
    /// attaches). From the table of event kinds: the first syscall its kind hooks.
    pub fn syscall(self) -> Option<&'static str> {
        self.kind()
            .and_then(|k| k.syscalls().first())
            .map(|(sc, _)| *sc)
    }
}

/// `EventType::of_kind`, expanded from the table of event kinds: a kind naming an
/// `EventType` variant that does not exist does not compile.
macro_rules! kind_event_types {
    (
        kinds {
            $(
                $(#[$doc:meta])*
                $kind:ident = $id:literal, $c:ident, $ev:ident $name:literal, record $rec:ident,
                    sched [$($prog:ident = $tp:ident),* $(,)?],
                    exit [$($sc:ident = $nr:literal, ia32 [$($ia:literal),*], x32 $x32:literal => $handler:ident),* $(,)?];
            )*
        }
        retired { $($rid:literal => $rname:literal),* $(,)? }
        kind_max $max:literal;
        x32_slots $x32base:literal;
        paths_changed [$($pc:ident = $pcnr:literal, ia32 [$($pia:literal),*], x32 $px:literal),* $(,)?];
    ) => {
        const fn kind_event_type(kind: Kind) -> EventType {
            match kind {
                $(Kind::$kind => EventType::$ev,)*
            }
        }
    };
}
falco_learn_probe_common::kinds!(kind_event_types);

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One process as seen at the time of the event (`proc.*`, `user.*`, `thread.*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Process {
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    /// Process id inside its pid namespace (`proc.vpid`).
    pub vpid: u32,
    /// Session id and process group id as seen in the process's namespace.
    pub sid: u32,
    pub vpgid: u32,
    /// `comm` (≤ 15 bytes) — Falco's `proc.name` when no exe is known.
    pub comm: String,
    /// argv[0] (`proc.exe`).
    pub exe: String,
    /// Kernel-resolved absolute path of the executable (`proc.exepath`).
    pub exepath: String,
    /// argv[1..] (`proc.args` joins them with spaces).
    pub args: Vec<String>,
    pub cwd: String,
    /// Controlling terminal device number; 0 without a terminal (`proc.tty`).
    pub tty: u32,
    pub uid: u32,
    pub gid: u32,
    /// Audit login uid; `u32::MAX` when unset (Falco shows -1).
    pub loginuid: u32,
    pub user: String,
    pub group: String,
    pub loginname: String,
    pub cap_effective: u64,
    pub cap_permitted: u64,
    /// Process start, ns since the Unix epoch.
    pub start_ts: u64,
    pub exe_flags: ExeFlags,
    pub exe_ino: u64,
    pub exe_ino_ctime: u64,
    pub exe_ino_mtime: u64,
    /// Environment variables as `KEY=value` (captured only when rules need them).
    pub env: Vec<String>,
    /// Name of the session leader (`proc.sname`); empty when unknown.
    pub sname: String,
    /// Name and argv[0] of the process group leader (`proc.vpgid.name`, `proc.vpgid.exe`).
    pub vpgid_name: String,
    pub vpgid_exe: String,
}

/// Where the executable came from (kernel-derived, see the probe). The default is a file of
/// the root's own filesystem with no flag set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExeFlags {
    /// The executable lives on a tmpfs (`/dev`, `/dev/shm`, `/run`, …).
    pub tmpfs: bool,
    /// The executable is a memfd (`memfd_create` + `fexecve`).
    pub memfd: bool,
    /// The executable lives on an overlay filesystem's upper layer, i.e. it was
    /// written after the container started (`proc.is_exe_upper_layer`).
    pub upper_layer: bool,
    /// The executable is writable by the user running it (`proc.is_exe_writable`).
    pub writable: bool,
    /// The executable lives on an overlay filesystem (upper or lower layer): with
    /// `upper_layer` false it is a lower-layer (image) file, Falco's `EXE_LOWER_LAYER`.
    pub overlay: bool,
    /// enforce-kill mode killed this exec in the kernel (its exe is not in the
    /// container image's profile); the process never ran its own code.
    pub killed: bool,
    /// The program is a 32-bit one: an ia32 process (flagged at its exec), or an x32 one
    /// (flagged at its exec's return, an x32 call), or one whose stack lies below 4 GiB
    /// (seeded from /proc). Its 32-bit syscalls are handled as their 64-bit twins where
    /// they are watched, and are then what it is expected to make; unwatched, the kernel's
    /// syscall tracepoints skip them and nothing it does is seen.
    pub ia32: bool,
    /// The container runtime's own child, as the kernel saw it at the exec: `runc init`
    /// before it enters the container (host pid namespace, its parent named `runc…` in
    /// the same mount namespace and outside its cgroup). enforce-kill spares it; the
    /// profiler leaves it out (`matcher::is_runtime_setup`).
    pub runtime: bool,
    /// The path is not where the file lives, as the kernel saw it at the exec: the process
    /// runs inside a chroot into a directory, or reached the executable through another
    /// mount of its root's filesystem (a bind mount of a container's own file onto another
    /// path). No profile entry allows it; enforce-kill kills it.
    pub relocated: bool,
    /// Run from another root than its cgroup's home, the root of the cgroup's first exec,
    /// that is not the host's (a chroot into a neighbour's `/proc/<pid>/root`, a `setns`
    /// into another container's mount namespace, a root the container built). A profile
    /// entry allows it only when it was learned so (`ExecEntry::other_root`); enforce-kill
    /// kills it otherwise.
    pub other_root: bool,
    /// Run from the host's root (the root of global pid 1) in a cgroup whose home is
    /// another: a hostPID pod entering the host (`nsenter -m -t 1`, `chroot /proc/1/root`).
    /// A root apart from [`ExeFlags::other_root`]: a profile entry allows it only when it
    /// was learned so (`ExecEntry::host_root`); enforce-kill kills it otherwise.
    pub host_root: bool,
    /// The executable lives on another filesystem than the process's root, and not on a
    /// tmpfs or a memfd: a volume (a disk-backed `emptyDir`, a `hostPath`, a PVC), or a
    /// file bound in from the host (`docker-init`, NVIDIA's tools). A place of its own,
    /// like the upper layer: enforce-kill allows it only where the profile learned it so
    /// (`ExecEntry::other_fs`), so a volume's file bound onto an image executable's path is
    /// not the image's file. `None`: not known, in a recording made before the flag existed
    /// (its `exe_flags` have no `other_fs` key): learned as allowed from either place, and
    /// not judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_fs: Option<bool>,
}

impl Default for ExeFlags {
    fn default() -> Self {
        ExeFlags {
            tmpfs: false,
            memfd: false,
            upper_layer: false,
            writable: false,
            overlay: false,
            killed: false,
            ia32: false,
            runtime: false,
            relocated: false,
            other_root: false,
            host_root: false,
            other_fs: Some(false),
        }
    }
}

impl ExeFlags {
    /// On another filesystem than the root's, as the kernel saw it (`other_fs` known and set).
    pub fn on_other_fs(&self) -> bool {
        self.other_fs == Some(true)
    }
}

/// An ancestor of the event's process (parent first) for `proc.pname`,
/// `proc.aname[N]`, `proc.pcmdline`, `proc.sname`, ….
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ancestor {
    pub pid: u32,
    /// Process id in its own pid namespace (0: unknown). A container's
    /// process has vpid ≠ pid, its init vpid 1; host processes vpid = pid.
    pub vpid: u32,
    pub comm: String,
    pub exe: String,
    pub exepath: String,
    pub args: Vec<String>,
    pub start_ts: u64,
    /// The container the ancestor runs in, as its cgroup names it (Falco's short
    /// `container.id`; `host` outside any container; empty when not known, as in a
    /// recording made before the field). Not a Falco field: enforce-kill tells the
    /// runtime's own processes from a container's by it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container_id: String,
}

/// The container (and image) the process runs in; `id == "host"` for host processes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Container {
    pub id: String,
    pub name: String,
    /// Image repository without tag or digest, e.g. `docker.io/library/nginx`.
    pub image_repository: String,
    pub image_tag: String,
    pub image_digest: String,
    pub privileged: Option<bool>,
    /// Container start, ns since the Unix epoch (0 when unknown).
    pub start_ts: u64,
    /// Container runtime that reported it (`containerd`, `cri-o`, `docker`, `podman`).
    pub runtime: String,
    pub k8s_ns: String,
    pub k8s_pod: String,
    /// Kubernetes pod uid (empty outside Kubernetes).
    pub k8s_pod_uid: String,
    /// Kubernetes pod labels, when the runtime has them.
    pub k8s_pod_labels: std::collections::BTreeMap<String, String>,
    /// Mounts of the container (`container.mounts`, `container.mount.dest[…]`).
    pub mounts: Vec<Mount>,
}

/// One mount of a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mount {
    pub source: String,
    pub dest: String,
    /// Mount mode as the runtime reports it (e.g. `rw`, `ro,z`).
    pub mode: String,
    pub rw: bool,
    /// Propagation (`rprivate`, `rshared`, …).
    pub propagation: String,
}

impl Container {
    /// The container every host process belongs to.
    pub fn host() -> Container {
        Container {
            id: "host".into(),
            name: "host".into(),
            ..Container::default()
        }
    }

    /// Full image reference `repository[:tag]`.
    pub fn image(&self) -> String {
        if self.image_tag.is_empty() {
            self.image_repository.clone()
        } else {
            format!("{}:{}", self.image_repository, self.image_tag)
        }
    }

    /// [`Container::image`], or `<NA>` when the image is not known (as Falco renders a
    /// missing value).
    pub fn image_or_na(&self) -> String {
        if self.image_repository.is_empty() {
            fields::NA.to_string()
        } else {
            self.image()
        }
    }
}

/// Kind of file descriptor (`fd.type` / `fd.typechar`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FdType {
    #[default]
    File,
    Directory,
    Ipv4,
    Ipv6,
    Unix,
    Netlink,
    Packet,
    Pipe,
    Event,
    Signalfd,
    Eventpoll,
    Inotify,
    Timerfd,
    Memfd,
    Other,
}

impl FdType {
    /// Falco's `fd.type` string (libsinsp `sinsp_fdinfo::get_typestring`). A packet
    /// socket is `SCAP_FD_UNKNOWN` in libsinsp (`sinsp_parser::add_socket` gives only
    /// unix, inet and netlink a kind), which reads `<NA>`, as does any other unknown kind.
    pub fn as_str(self) -> &'static str {
        match self {
            FdType::File => "file",
            FdType::Directory => "directory",
            FdType::Ipv4 => "ipv4",
            FdType::Ipv6 => "ipv6",
            FdType::Unix => "unix",
            FdType::Netlink => "netlink",
            FdType::Pipe => "pipe",
            FdType::Event => "event",
            FdType::Signalfd => "signalfd",
            FdType::Eventpoll => "eventpoll",
            FdType::Inotify => "inotify",
            FdType::Timerfd => "timerfd",
            FdType::Memfd => "memfd",
            FdType::Packet | FdType::Other => "<NA>",
        }
    }

    /// [`FdType::typechar`] as a string (what `fd.typechar` extracts, no allocation).
    pub fn typechar_str(self) -> &'static str {
        match self {
            FdType::File => "f",
            FdType::Directory => "d",
            FdType::Ipv4 => "4",
            FdType::Ipv6 => "6",
            FdType::Unix => "u",
            FdType::Netlink => "n",
            FdType::Pipe => "p",
            FdType::Event => "e",
            FdType::Signalfd => "s",
            FdType::Eventpoll => "l",
            FdType::Inotify => "i",
            FdType::Timerfd => "t",
            FdType::Memfd => "m",
            FdType::Packet | FdType::Other => "o",
        }
    }

    /// Falco's `fd.typechar` (libsinsp `fdinfo.h` `CHAR_FD_*`; unknown kinds `o`).
    pub fn typechar(self) -> char {
        match self {
            FdType::File => 'f',
            FdType::Directory => 'd',
            FdType::Ipv4 => '4',
            FdType::Ipv6 => '6',
            FdType::Unix => 'u',
            FdType::Netlink => 'n',
            FdType::Pipe => 'p',
            FdType::Event => 'e',
            FdType::Signalfd => 's',
            FdType::Eventpoll => 'l',
            FdType::Inotify => 'i',
            FdType::Timerfd => 't',
            FdType::Memfd => 'm',
            FdType::Packet | FdType::Other => 'o',
        }
    }
}

/// Layer-4 protocol of a socket (`fd.l4proto`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L4Proto {
    #[default]
    Unknown,
    Tcp,
    Udp,
    Icmp,
    Raw,
}

impl L4Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            L4Proto::Unknown => "unknown",
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
            L4Proto::Icmp => "icmp",
            L4Proto::Raw => "raw",
        }
    }
}

/// The file descriptor an event acted on or produced (`fd.*`).
///
/// A failed open still carries an `Fd` with `num: -1` and the path in `name`
/// (Falco's `open_file_failed` macro relies on `fd.num=-1`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Fd {
    pub num: i64,
    #[serde(rename = "type")]
    pub typ: FdType,
    /// Resolved name: absolute path for files, `client:port->server:port` for
    /// sockets (built by the field extractor when empty).
    pub name: String,
    /// Name exactly as the process passed it (`fd.nameraw`).
    pub nameraw: String,
    pub l4proto: L4Proto,
    /// Client (local, for outbound) address and port.
    pub cip: Option<IpAddr>,
    pub cport: Option<u16>,
    /// Server (remote, for outbound) address and port.
    pub sip: Option<IpAddr>,
    pub sport: Option<u16>,
    /// Whether this process initiated the connection (true for connect/sendto).
    pub is_client: bool,
    pub connected: bool,
    /// The socket's local port was bound explicitly (`bind()`, or accepted from a
    /// listener that was): a server's socket. `None` when the source did not say
    /// (recordings made before the probe reported it). A UDP datagram sent from a
    /// bound socket is a server's reply: the probe reports it with the server role
    /// (`is_client` false: `fd.sport` = the local port, `fd.cip`/`fd.cport` the client).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound: Option<bool>,
    /// Socket family for `fd.sockfamily` (`ip`, `unix`, …) when a socket.
    pub sockfamily: String,
    /// Domain names of the client / server addresses when known (`fd.cip.name`,
    /// `fd.sip.name`), e.g. from a DNS cache.
    pub cip_name: String,
    pub sip_name: String,
}

impl Fd {
    /// An IPv6 socket whose both ends are IPv4-mapped (`::ffff:a.b.c.d`, a dual-stack
    /// socket talking IPv4) becomes the IPv4 socket libsinsp makes of it
    /// (`sinsp_parser` on connect: `is_ipv4_mapped_ipv6(sip) && …(dip)` →
    /// `SCAP_FD_IPV4_SOCK` with the mapped addresses): `fd.type` `ipv4`, `fd.typechar`
    /// `4`, `fd.sip` `a.b.c.d`. One end only mapped (the other `::` or a real IPv6
    /// address) stays IPv6, as there.
    pub fn unmap_ipv4(&mut self) {
        let mapped = |ip: Option<IpAddr>| match ip {
            Some(IpAddr::V6(a)) => a.to_ipv4_mapped(),
            _ => None,
        };
        if self.typ != FdType::Ipv6 {
            return;
        }
        if let (Some(c), Some(s)) = (mapped(self.cip), mapped(self.sip)) {
            self.typ = FdType::Ipv4;
            self.cip = Some(IpAddr::V4(c));
            self.sip = Some(IpAddr::V4(s));
        }
    }
}

/// Per-kind syscall arguments (`evt.arg.*`), named as Falco names them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[derive(Default)]
pub enum Args {
    #[default]
    None,
    Exec {
        /// Path as passed to execve (`evt.arg.filename`).
        filename: String,
    },
    Clone {
        child_pid: u32,
        flags: u64,
    },
    Exit {
        status: i32,
    },
    Open {
        /// Path as passed (`evt.arg.name` / `evt.arg.path`).
        name: String,
        /// Raw `O_*` flags.
        flags: u32,
        mode: u32,
        dirfd: i64,
    },
    Connect {
        fd: i64,
        /// The peer, rendered `addr:port` (`evt.arg.addr`): the socket's once connected (what
        /// the kernel connected to), else as passed.
        addr: String,
    },
    Send {
        fd: i64,
        size: u64,
        /// Destination (`evt.arg.addr`), for unconnected sockets: as passed, or the socket's
        /// peer when the send connected it (TCP `MSG_FASTOPEN`).
        addr: String,
    },
    Socket {
        domain: u32,
        #[serde(rename = "type")]
        typ: u32,
        proto: u32,
    },
    Dup {
        oldfd: i64,
        newfd: i64,
        flags: u32,
    },
    Symlink {
        target: String,
        linkpath: String,
        newdirfd: i64,
    },
    Link {
        oldpath: String,
        newpath: String,
        olddir: i64,
        newdir: i64,
        flags: u32,
    },
    Ptrace {
        request: u32,
        pid: u32,
    },
    /// A 32-bit (ia32) syscall: its number in the ia32 table (`evt.arg.ID`).
    Ia32Syscall {
        id: i64,
    },
    Module {
        /// Module image length (init_module) or fd (finit_module).
        len_or_fd: i64,
        uargs: String,
        flags: u32,
    },
}

/// One completed syscall (exit event) enriched with process, container and fd context.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Event {
    /// Event number in its stream, 1-based (`evt.num`); 0 when not numbered.
    #[serde(skip_serializing_if = "is_zero")]
    pub num: u64,
    /// Event time, ns since the Unix epoch.
    pub ts: u64,
    #[serde(rename = "type")]
    pub typ: EventTypeField,
    /// Syscall return value (`evt.rawres`); negative errno on failure.
    pub res: i64,
    /// Host name of the machine the event happened on (`evt.hostname`).
    pub hostname: std::sync::Arc<str>,
    /// cgroup v2 id of the thread, as the kernel reports it.
    pub cgroup_id: u64,
    /// Which exec of its process the thread runs: the low 32 bits of the kernel's
    /// `self_exec_id` (every exec increments it; forks and threads inherit it). With
    /// `proc.pid` and `proc.start_ts` it names one program run of one process, what the
    /// kernel filter's per-process marks are keyed by (0 in recordings made before it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exec_id: u32,
    /// The thread that made the syscall. Shared between the events of a thread
    /// while nothing about it changes (the probe caches it: an event costs no copy
    /// of its strings); change one with `Arc::make_mut`.
    pub process: std::sync::Arc<Process>,
    /// Ancestors, parent first (bounded by the process table's depth).
    /// Shared between the events of a process (the probe caches it per process).
    pub ancestors: std::sync::Arc<[Ancestor]>,
    /// Shared between the events of a container (the probe caches it per container
    /// and metadata); change one with `Arc::make_mut`.
    pub container: std::sync::Arc<Container>,
    pub fd: Option<Fd>,
    pub args: Args,
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Wrapper so `Event` can derive `Default` (defaults to `execve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventTypeField(pub EventType);

impl Default for EventTypeField {
    fn default() -> Self {
        EventTypeField(EventType::Execve)
    }
}

impl Event {
    pub fn event_type(&self) -> EventType {
        self.typ.0
    }

    /// Falco's `proc.name`: the task's `comm` (≤ 15 bytes, as the kernel keeps it).
    pub fn proc_name(&self) -> &str {
        &self.process.comm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recording made before `other_fs` existed (its `exe_flags` lack the key) does not
    /// say where the file lived: `None`, never "the root's"; a new one always says.
    #[test]
    fn other_fs_is_unknown_in_older_recordings() {
        let old: ExeFlags = serde_json::from_str(r#"{"tmpfs":false,"overlay":true}"#)
            .expect("an older recording's flags");
        assert_eq!(old.other_fs, None);
        assert!(!old.on_other_fs());
        assert_eq!(ExeFlags::default().other_fs, Some(false));
        let json = serde_json::to_string(&ExeFlags::default()).expect("json");
        assert!(json.contains(r#""other_fs":false"#), "{json}");
        let back: ExeFlags = serde_json::from_str(&json).expect("round trip");
        assert_eq!(back, ExeFlags::default());
        let unknown = serde_json::to_string(&old).expect("json");
        assert!(!unknown.contains("other_fs"), "{unknown}");
    }

    #[test]
    fn event_type_names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::from_name(t.as_str()), Some(*t));
            // The JSON name is Falco's evt.type.
            let json = serde_json::to_string(t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        assert_eq!(EventType::from_name("nope"), None);
        assert_eq!(EventType::ALL.len(), EventType::Ia32Syscall.index() + 1);
    }

    /// One vocabulary: a kind's name (the `kind` label of kernel counters) is the
    /// `evt.type` of the events it becomes (fork records are `clone`, in metrics and
    /// events alike), and each event type comes from at most one kind.
    #[test]
    fn kinds_are_named_as_the_event_types_they_yield() {
        for k in Kind::ALL {
            let t = EventType::of_kind(k);
            assert_eq!(t.as_str(), k.name(), "{k:?}");
            assert_eq!(EventType::from_name(k.name()), Some(t));
            assert_eq!(t.kind(), Some(k));
        }
        assert_eq!(EventType::of_kind(Kind::Fork), EventType::Clone);
        for t in [EventType::Fork, EventType::Vfork, EventType::Clone3] {
            assert_eq!(t.kind(), None);
        }
    }

    /// `syscall()` is the table's: the hooked syscall of the type's kind, none for the
    /// process lifecycle; what it was before the table.
    #[test]
    fn syscalls_come_from_the_kind_table() {
        use EventType as T;
        for t in [
            T::Execve,
            T::Execveat,
            T::Clone,
            T::Fork,
            T::Vfork,
            T::Clone3,
            T::Procexit,
        ] {
            assert_eq!(t.syscall(), None, "{t}");
        }
        for t in EventType::ALL {
            if let Some(sc) = t.syscall() {
                assert_eq!(sc, t.as_str());
                let k = t.kind().unwrap();
                assert!(falco_learn_probe_common::SYSCALLS.contains(&k.syscalls()[0]));
            }
        }
        assert_eq!(
            EventType::ALL.iter().filter_map(|t| t.syscall()).count(),
            20
        );
    }

    #[test]
    fn event_json_round_trip() {
        let ev = Event {
            ts: 1,
            typ: EventTypeField(EventType::Openat),
            res: 3,
            process: Process {
                pid: 10,
                comm: "cat".into(),
                ..Default::default()
            }
            .into(),
            container: Container::host().into(),
            fd: Some(Fd {
                num: 3,
                name: "/etc/shadow".into(),
                ..Default::default()
            }),
            args: Args::Open {
                name: "/etc/shadow".into(),
                flags: 0,
                mode: 0,
                dirfd: -100,
            },
            ..Default::default()
        };
        let s = serde_json::to_string(&ev).unwrap();
        let back: Event = serde_json::from_str(&s).unwrap();
        assert_eq!(back, ev);
        assert!(s.contains("\"type\":\"openat\""), "{s}");
    }
}
