/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Kernel → user ABI of falco-learn's probe. Mirrored field for field by
 * probe/common/src/lib.rs (`#[repr(C)]`); a test in probe/ checks the two
 * agree by reading these structs' BTF out of the compiled object.
 * Event kinds are numbered and a number is never reused.
 */
#pragma once

#define FL_MAX_PATH 4096
#define FL_MAX_ARGS 4096
#define FL_MAX_CGROUP 512
#define FL_MAX_NAME 256

enum fl_kind {
	FL_EXEC = 1,
	FL_FORK = 2,
	FL_EXIT = 3,
	FL_CONNECT = 4,
	FL_SENDTO = 5,
	FL_SENDMSG = 6,
	FL_OPEN = 7,
	FL_OPENAT = 8,
	FL_OPENAT2 = 9,
	FL_CREAT = 10,
	FL_SOCKET = 11,
	FL_DUP = 12,
	FL_DUP2 = 13,
	FL_DUP3 = 14,
	FL_SYMLINK = 15,
	FL_SYMLINKAT = 16,
	FL_LINK = 17,
	FL_LINKAT = 18,
	FL_PTRACE = 19,
	FL_INIT_MODULE = 20,
	FL_FINIT_MODULE = 21,
	FL_EXECVEAT = 22,
	FL_ACCEPT = 23,
	FL_ACCEPT4 = 24,
	FL_KIND_MAX = 32,
};

/* Counter slots (per kind) in the `STATS` per-CPU array: index = kind * FL_STAT_N + stat. */
enum fl_stat {
	FL_STAT_EMITTED = 0,   /* written to the ring buffer */
	FL_STAT_DROPPED = 1,   /* ring buffer full: lost */
	FL_STAT_FILTERED = 2,  /* filtered in the kernel (no loaded rule or profile can use it) */
	FL_STAT_LOST_ARGS = 3, /* execveat whose enter mark was not stored (map full): reported as execve */
	FL_STAT_PROFILE_FILTERED = 4, /* filtered in the kernel: its container's profile allows it and no
					 loaded rule can match it (enforce modes, engine.kernel_filter) */
	FL_STAT_N = 5,
};

/* exe flags */
#define FL_EXE_TMPFS 1
#define FL_EXE_MEMFD 2
#define FL_EXE_UPPER 4
#define FL_EXE_OVERLAY 8
/* Path flags (exe, cwd, opened file): */
#define FL_PATH_TRUNCATED 16 /* longer than FL_MAX_PATH - 1 bytes or deeper than the walk: only the
				 leaf-side components are reported (never a plausible whole path) */
#define FL_PATH_DETACHED 32 /* memfd, or unlinked: d_path would add " (deleted)" */
#define FL_EXE_KILLED 64     /* enforce-kill: SIGKILL sent at exec (the exe is not in the profile) */
#define FL_PATH_PSEUDO 128   /* a pseudo file with no parent (memfd, pipe, anon inode): only its own
				 name; userspace renders it without a leading "/" as Falco's modern eBPF does */

/* enforce-kill: the exe path hash covers the whole path as userspace renders it (the path,
 * then " (deleted)" for a detached file), 8 bytes a round. A truncated path is never allowed. */
#define FL_KILL_HASH_WORDS ((FL_MAX_PATH + 32) / 8) /* even: two a round */

/* Every record starts with this header. */
struct fl_hdr {
	u64 ts_boot_ns;   /* bpf_ktime_get_boot_ns() */
	u64 cgroup_id;    /* cgroup v2 id */
	u32 kind;         /* enum fl_kind */
	u32 size;         /* bytes of the whole record */
	u32 pid;          /* tgid */
	u32 tid;
	u32 ppid;         /* real parent's tgid */
	u32 uid;
	u32 gid;
	u32 _pad;
	s64 res;          /* syscall return value */
	char comm[16];
};

/* fl_sock.flags */
#define FL_SOCK_BOUND 1 /* the local port was bound explicitly (bind() set it: the kernel keeps
			   SOCK_BINDPORT_LOCK in sk_userlocks): a server's socket; an autobound
			   (client) port lacks it. On FL_ACCEPT(4): the listener's */
#define FL_SOCK_FLAGS_KNOWN 2 /* the probe reported flags (always set by this probe) */

/* Socket endpoint as the kernel sees it (ports host order; addresses network order). */
struct fl_sock {
	u16 family;       /* AF_*; 0 = not a socket */
	u16 type;         /* SOCK_* */
	u16 protocol;     /* IPPROTO_* */
	u16 lport;
	u16 rport;
	u16 flags;        /* FL_SOCK_* */
	u16 _pad[2];
	u8 laddr[16];
	u8 raddr[16];
};

/* A sockaddr as passed by the process (connect, sendto, sendmsg). */
struct fl_addr {
	u16 family;
	u16 port;         /* host order */
	u32 _pad;
	u8 addr[16];
};

/* FL_EXEC / FL_EXECVEAT, followed by the strings of `lens` in order:
 * exepath, args (NUL-separated argv), cwd, cgroup path, filename as passed. */
struct fl_exec {
	struct fl_hdr h;
	u64 cap_effective;
	u64 cap_permitted;
	u64 start_boot_ns;
	u64 exe_ino;
	u64 exe_ctime_ns;
	u64 exe_mtime_ns;
	u32 exe_mode;
	u32 exe_uid;
	u32 exe_gid;
	u32 flags;        /* FL_EXE_* */
	u32 loginuid;
	u32 tty;
	u32 vpid;
	u32 sid;
	u32 pgid;
	u32 cwd_flags;    /* FL_PATH_* of the cwd */
	u16 lens[5];
	u16 _pad2[3];
};

/* FL_FORK: h.pid = child tgid, h.ppid = parent tgid. */
struct fl_fork {
	struct fl_hdr h;
	u64 start_boot_ns;
	u32 vpid;
	u32 _pad;
};

/* FL_EXIT */
struct fl_exit {
	struct fl_hdr h;
	s32 exit_code;
	u32 _pad;
};

/* FL_CONNECT / FL_SENDTO / FL_SENDMSG; FL_ACCEPT / FL_ACCEPT4 (fd = the accepted socket, addr
 * unused, sock = the accepted socket: lport the listening port, raddr/rport the client) */
struct fl_net {
	struct fl_hdr h;
	s64 fd;
	u64 size;         /* bytes (sendto/sendmsg) */
	struct fl_addr addr;
	struct fl_sock sock;
};

/* FL_OPEN / FL_OPENAT / FL_OPENAT2 / FL_CREAT, followed by the path as
 * passed and (when the open succeeded) the path of the file the kernel opened. */
struct fl_open {
	struct fl_hdr h;
	s64 dirfd;
	u32 flags;
	u32 mode;
	u64 ino;
	u32 dev_magic;    /* superblock magic of the opened file (0 if failed) */
	u16 lens[2];
	u32 path_flags;   /* FL_PATH_* of the opened file's path */
	u32 _pad;
};

/* FL_SOCKET */
struct fl_socket {
	struct fl_hdr h;
	u32 domain;
	u32 type;
	u32 protocol;
	u32 _pad;
};

/* FL_DUP / FL_DUP2 / FL_DUP3 */
struct fl_dup {
	struct fl_hdr h;
	s64 oldfd;
	s64 newfd;
	u32 flags;
	u32 _pad;
	struct fl_sock sock; /* what the duplicated fd is, when a socket */
};

/* FL_SYMLINK(AT) / FL_LINK(AT), followed by two strings (target/oldpath, linkpath/newpath). */
struct fl_link {
	struct fl_hdr h;
	s64 olddirfd;
	s64 newdirfd;
	u32 flags;
	u16 lens[2];
};

/* FL_PTRACE */
struct fl_ptrace {
	struct fl_hdr h;
	s64 request;
	s64 target_pid;
};

/* FL_INIT_MODULE / FL_FINIT_MODULE, followed by the uargs string. */
struct fl_module {
	struct fl_hdr h;
	s64 len_or_fd;
	u32 flags;
	u16 lens[1];
	u16 _pad;
};
