//! Kernel → user ABI of the falco-learn probe.
//!
//! These `#[repr(C)]` structs mirror `probe/ebpf/src/events.h` field for field
//! (the kernel side is C, see the README's design section). Every record in the
//! ring buffer starts with [`Hdr`]; `Hdr::kind` says which struct follows and
//! `Hdr::size` how many bytes the record has in all (variable-length records carry
//! their strings after the struct, lengths in `lens`). A test in `probe/` compares
//! these layouts with the BTF of the compiled object so the two cannot drift.
//!
//! Record kinds come from the one table of event kinds (`kind_table.rs`, expanded in
//! `kinds.rs`: ids, names, records, hooks); kind numbers are never reused.
#![no_std]

use bytemuck::{Pod, Zeroable};

mod kinds;
pub use kinds::{
    Kind, Record, COMPAT_SLOTS, COMPAT_SLOT_COUNT, KIND_MAX, PATHS_CHANGED, RETIRED, SYSCALLS,
    X32_SLOTS,
};

/// Counter slots per kind in the `STATS` map (`enum fl_stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Stat {
    Emitted = 0,
    Dropped = 1,
    /// Dropped in the kernel: no loaded rule needs it (the read-only open filter).
    Filtered = 2,
    /// An ia32 `socketcall` whose argument array was unreadable at exit: reported without
    /// them.
    LostArgs = 3,
    /// Dropped in the kernel: the container's profile allows it and no loaded rule can
    /// match it (enforce modes with `engine.kernel_filter`).
    ProfileFiltered = 4,
    /// Dropped in the kernel: no profile applies to the process (the host without a host
    /// profile, a container whose image has none) and no loaded rule can match it (enforce
    /// modes with `engine.kernel_filter`; events.h `RULES_ONLY`).
    UnprofiledFiltered = 5,
    /// An exec whose cgroup's home (the root its processes exec from, events.h `HOMES`)
    /// could not be remembered: the map was full. Execs there are judged without one.
    NoHome = 6,
}
pub const STAT_N: u32 = 7;

pub const EXE_TMPFS: u32 = 1;
pub const EXE_MEMFD: u32 = 2;
pub const EXE_UPPER: u32 = 4;
pub const EXE_OVERLAY: u32 = 8;
/// A path (exe, cwd, opened file) longer than [`MAX_PATH`]` - 1` bytes or deeper than the
/// kernel walk: only its leaf-side components were reported.
pub const PATH_TRUNCATED: u32 = 16;
/// A memfd or unlinked file (`/proc/<pid>/exe` would show ` (deleted)`; Falco does not).
pub const PATH_DETACHED: u32 = 32;
/// enforce-kill sent SIGKILL at this exec (events.h `FL_EXE_KILLED`).
pub const EXE_KILLED: u32 = 64;
/// A pseudo file with no parent dentry (memfd, pipe, anon inode): the path is its own
/// name only (events.h `FL_PATH_PSEUDO`); always with [`PATH_DETACHED`].
pub const PATH_PSEUDO: u32 = 128;
/// The new image runs as a 32-bit (ia32) process (events.h `FL_EXE_IA32`): the kernel's
/// syscall tracepoints, and so this probe, do not see its syscalls.
pub const EXE_IA32: u32 = 256;
/// The container runtime's own child (events.h `FL_EXE_RUNTIME`): `runc init` before it
/// enters the container; enforce-kill spares it.
pub const EXE_RUNTIME: u32 = 512;
/// Run inside a chroot into a directory, or reached through another mount of the task
/// root's filesystem (events.h `FL_EXE_RELOCATED`): the path is not where the file lives;
/// enforce-kill kills it whatever the profile allows.
pub const EXE_RELOCATED: u32 = 1024;
/// Run from another root than its cgroup's home (events.h `FL_EXE_OTHER_ROOT`: the root of
/// the cgroup's first exec) that is not the host's: a neighbour's `/proc/<pid>/root`, a
/// `setns` into another container. enforce-kill allows it only where the profile learned it
/// so.
pub const EXE_OTHER_ROOT: u32 = 4096;
/// Run from the host's root (the root of global pid 1) in a cgroup whose home is another
/// (events.h `FL_EXE_HOST_ROOT`): a hostPID pod entering the host (`nsenter -m -t 1`,
/// `chroot /proc/1/root`). A layer apart from [`EXE_OTHER_ROOT`], allowed only where the
/// profile learned it so.
pub const EXE_HOST_ROOT: u32 = 8192;
/// The file lives on another filesystem than the process's root, and not on a tmpfs or a
/// memfd (events.h `FL_EXE_OTHER_FS`): a volume (a disk-backed `emptyDir`, a `hostPath`, a
/// PVC) or a file bound in from the host (`docker-init`, NVIDIA's tools). A place of its
/// own, like the upper layer: enforce-kill allows it only where the profile learned it so.
pub const EXE_OTHER_FS: u32 = 16384;
/// The bit [`EXE_OTHER_FS`] takes in enforce-kill's second hash byte (probe.bpf.c).
pub const KILL_BYTE2_OTHER_FS: u8 = 1;
/// The bit [`EXE_OTHER_ROOT`] takes in enforce-kill's hash byte (probe.bpf.c).
pub const KILL_BYTE_OTHER_ROOT: u8 = 8;
/// The bit [`EXE_HOST_ROOT`] takes in enforce-kill's hash byte (probe.bpf.c).
pub const KILL_BYTE_HOST_ROOT: u8 = 16;
/// enforce-kill hashes at most this many 8-byte words of an exe path (`FL_KILL_HASH_WORDS`):
/// all of it (more than the longest path).
pub const KILL_HASH_WORDS: usize = (MAX_PATH + 32) / 8;

pub const MAX_PATH: usize = 4096;

/// [`Sock::flags`]: the local port was bound explicitly (`bind()`: the kernel keeps
/// `SOCK_BINDPORT_LOCK` in `sk_userlocks`), a server's socket; an
/// autobound client port lacks it (events.h `FL_SOCK_BOUND`). On accept records: the
/// listening socket's (the kernel does not copy it into the accepted socket).
pub const SOCK_BOUND: u16 = 1;
/// [`Sock::flags`]: the probe reported the flags (events.h `FL_SOCK_FLAGS_KNOWN`).
pub const SOCK_FLAGS_KNOWN: u16 = 2;

#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct Hdr {
    pub ts_boot_ns: u64,
    pub cgroup_id: u64,
    pub kind: u32,
    pub size: u32,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Low 32 bits of the task's `self_exec_id` (events.h `exec_id`): which exec of its
    /// process the task runs (every exec increments it; forks and threads inherit it).
    pub exec_id: u32,
    pub res: i64,
    pub comm: [u8; 16],
}

#[derive(Debug, Clone, Copy, Pod, Zeroable, Default)]
#[repr(C)]
pub struct Sock {
    pub family: u16,
    pub typ: u16,
    pub protocol: u16,
    pub lport: u16,
    pub rport: u16,
    /// `SOCK_*` flags ([`SOCK_BOUND`], [`SOCK_FLAGS_KNOWN`]).
    pub flags: u16,
    pub _pad: [u16; 2],
    pub laddr: [u8; 16],
    pub raddr: [u8; 16],
}

/// The destination of a connect, sendto or sendmsg (`struct fl_addr`): the connected
/// socket's peer once a connection is made (a connect that succeeded or is in progress, a
/// TCP send), else the sockaddr the process passed, read at the syscall's exit.
#[derive(Debug, Clone, Copy, Pod, Zeroable, Default)]
#[repr(C)]
pub struct Addr {
    pub family: u16,
    pub port: u16,
    pub _pad: u32,
    pub addr: [u8; 16],
}

#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct Exec {
    pub h: Hdr,
    pub cap_effective: u64,
    pub cap_permitted: u64,
    pub start_boot_ns: u64,
    pub exe_ino: u64,
    pub exe_ctime_ns: u64,
    pub exe_mtime_ns: u64,
    pub exe_mode: u32,
    pub exe_uid: u32,
    pub exe_gid: u32,
    pub flags: u32,
    pub loginuid: u32,
    pub tty: u32,
    pub vpid: u32,
    pub sid: u32,
    pub pgid: u32,
    /// `PATH_*` flags of the cwd.
    pub cwd_flags: u32,
    /// exepath, args (NUL-separated), cwd, cgroup path, filename as passed.
    pub lens: [u16; 5],
    pub _pad2: [u16; 3],
}

#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct Fork {
    pub h: Hdr,
    pub start_boot_ns: u64,
    pub vpid: u32,
    pub _pad: u32,
}

#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct Exit {
    pub h: Hdr,
    pub exit_code: i32,
    pub _pad: u32,
}

#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct Net {
    pub h: Hdr,
    pub fd: i64,
    pub size: u64,
    pub addr: Addr,
    pub sock: Sock,
}

#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct Open {
    pub h: Hdr,
    pub dirfd: i64,
    pub flags: u32,
    pub mode: u32,
    pub ino: u64,
    pub dev_magic: u32,
    /// path as passed, path of the opened file (0 when the open failed).
    pub lens: [u16; 2],
    /// `PATH_*` flags of the opened file's path.
    pub path_flags: u32,
    pub _pad: u32,
}

#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct Socket {
    pub h: Hdr,
    pub domain: u32,
    pub typ: u32,
    pub protocol: u32,
    pub _pad: u32,
}

#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct Dup {
    pub h: Hdr,
    pub oldfd: i64,
    pub newfd: i64,
    pub flags: u32,
    pub _pad: u32,
    pub sock: Sock,
}

#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct Link {
    pub h: Hdr,
    pub olddirfd: i64,
    pub newdirfd: i64,
    pub flags: u32,
    /// target/oldpath, linkpath/newpath.
    pub lens: [u16; 2],
}

#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct Ptrace {
    pub h: Hdr,
    pub request: i64,
    pub target_pid: i64,
}

/// A 32-bit (ia32) syscall (`fl_ia32`): `id` is its number in the ia32 table.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct Ia32 {
    pub h: Hdr,
    pub id: i64,
}

#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct Module {
    pub h: Hdr,
    pub len_or_fd: i64,
    pub flags: u32,
    pub lens: [u16; 1],
    pub _pad: u16,
}

/// (C struct name, Rust size) of every ABI struct, for the layout test.
pub const LAYOUTS: [(&str, usize); 14] = [
    ("fl_hdr", core::mem::size_of::<Hdr>()),
    ("fl_sock", core::mem::size_of::<Sock>()),
    ("fl_addr", core::mem::size_of::<Addr>()),
    ("fl_exec", core::mem::size_of::<Exec>()),
    ("fl_fork", core::mem::size_of::<Fork>()),
    ("fl_exit", core::mem::size_of::<Exit>()),
    ("fl_net", core::mem::size_of::<Net>()),
    ("fl_open", core::mem::size_of::<Open>()),
    ("fl_socket", core::mem::size_of::<Socket>()),
    ("fl_dup", core::mem::size_of::<Dup>()),
    ("fl_link", core::mem::size_of::<Link>()),
    ("fl_ptrace", core::mem::size_of::<Ptrace>()),
    ("fl_module", core::mem::size_of::<Module>()),
    ("fl_ia32", core::mem::size_of::<Ia32>()),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_c_header() {
        // Hand-computed from events.h; the BTF-based test in probe/ checks the object itself.
        assert_eq!(core::mem::size_of::<Hdr>(), 72);
        assert_eq!(core::mem::size_of::<Sock>(), 48);
        assert_eq!(core::mem::size_of::<Exec>(), 176);
        assert_eq!(core::mem::size_of::<Net>(), 160);
        assert_eq!(core::mem::size_of::<Open>(), 112);
        assert_eq!(core::mem::size_of::<Module>(), 88);
    }
}
