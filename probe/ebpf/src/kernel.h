/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Minimal kernel type declarations for falco-learn's probe.
 *
 * Every struct carries preserve_access_index: clang records each field
 * access as a CO-RE relocation in .BTF.ext, and the loader (aya) rewrites
 * the offsets at load time against the running kernel's BTF
 * (/sys/kernel/btf/vmlinux). Only the fields we read are declared; their
 * order and the struct sizes here are irrelevant to the final offsets.
 * Nothing in this file bakes a kernel layout into the object.
 */
#pragma once

typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef short __s16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef _Bool bool;
#define true 1
#define false 0
#define NULL ((void *)0)

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PROG_ARRAY = 3,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_LPM_TRIE = 11,
	BPF_MAP_TYPE_RINGBUF = 27,
};
enum { BPF_ANY = 0, BPF_NOEXIST = 1 };
/* Helper ids this probe tests for with CO-RE (bpf_core_enum_value_exists against the
 * kernel's own enum): present from the kernel version in the comment. */
enum bpf_func_id { BPF_FUNC_get_current_task_btf = 158 /* 5.11 */, BPF_FUNC_task_pt_regs = 175 /* 5.15 */ };
enum { BPF_RB_NO_WAKEUP = 1, BPF_RB_FORCE_WAKEUP = 2 };
enum { BPF_RB_AVAIL_DATA = 0 };
enum { BPF_F_NO_PREALLOC = 1 };

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

/* `len` sits in an anonymous struct inside an anonymous union in the kernel; CO-RE finds
 * members through anonymous ones by name. */
struct qstr { u32 hash; u32 len; const unsigned char *name; };
struct hlist_bl_node { struct hlist_bl_node *next, **pprev; };
struct super_block { unsigned long s_magic; struct dentry *s_root; };
struct timespec64 { s64 tv_sec; long tv_nsec; };
struct inode {
	unsigned short i_mode;
	struct { unsigned int val; } i_uid; /* kuid_t */
	struct { unsigned int val; } i_gid; /* kgid_t */
	unsigned long i_ino;
	struct super_block *i_sb;
	/* 6.7+: split seconds/nanoseconds; older: struct timespec64 */
	s64 i_ctime_sec;
	u32 i_ctime_nsec;
	s64 i_mtime_sec;
	u32 i_mtime_nsec;
};
/* Inode times before 6.11, as struct timespec64: `i_ctime`/`i_mtime` up to 6.5,
 * `__i_ctime` with `i_mtime` in 6.6, `__i_ctime`/`__i_mtime` in 6.7 – 6.10. Each member is
 * read only behind its own bpf_core_field_exists() check (probe.bpf.c, inode_time). */
struct inode___timespec {
	struct timespec64 i_ctime;
	struct timespec64 i_mtime;
	struct timespec64 __i_ctime;
	struct timespec64 __i_mtime;
};
struct dentry {
	struct hlist_bl_node d_hash; /* pprev NULL: unhashed (deleted, unless it is a root) */
	struct dentry *d_parent;
	struct qstr d_name;
	struct inode *d_inode;
	struct super_block *d_sb;
};
struct vfsmount { struct dentry *mnt_root; struct super_block *mnt_sb; };
struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
};
struct path { struct vfsmount *mnt; struct dentry *dentry; };
struct file {
	struct path f_path;
	struct inode *f_inode;
	void *private_data;
	unsigned int f_flags;
};
struct fdtable { unsigned int max_fds; struct file **fd; };
struct files_struct { struct fdtable *fdt; };
struct fs_struct { struct path root; struct path pwd; };
struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
	unsigned long env_start;
	unsigned long env_end;
	struct file *exe_file;
};
/* kernel_cap_t is `{ u64 val; }` since 6.3 and `{ __u32 cap[2]; }` before: both are 8
 * bytes, little-endian the same value, so the probe reads the 8 bytes at the relocated
 * field's address and never names the inner member. */
typedef struct { u64 val; } kernel_cap_t;
struct cred {
	kernel_cap_t cap_permitted;
	kernel_cap_t cap_effective;
};
struct tty_driver { int major; int minor_start; };
struct tty_struct { struct tty_driver *driver; int index; };
struct pid_namespace { unsigned int level; };
struct upid { int nr; struct pid_namespace *ns; };
struct pid { unsigned int level; struct upid numbers[1]; };
enum pid_type { PIDTYPE_PID, PIDTYPE_TGID, PIDTYPE_PGID, PIDTYPE_SID, PIDTYPE_MAX };
typedef struct { int counter; } atomic_t;
struct signal_struct { atomic_t live; struct tty_struct *tty; struct pid *pids[4]; };
struct kernfs_node { struct kernfs_node *__parent; const char *name; u64 id; /* u64 since 5.5 */ };
struct kernfs_node___old { struct kernfs_node *parent; };
struct cgroup_root { int hierarchy_id; /* 0: the default (v2) hierarchy */ };
struct cgroup { struct kernfs_node *kn; struct cgroup_root *root; };
struct cgroup_subsys_state { struct cgroup *cgroup; };
enum cgroup_subsys_id { memory_cgrp_id = 4 };
struct css_set { struct cgroup_subsys_state *subsys[16]; struct cgroup *dfl_cgrp; };
typedef struct { unsigned int val; } kuid_t;
/* x86_64: TS_COMPAT in status marks a task inside a 32-bit (ia32) syscall */
struct thread_info { u32 status; };
struct nsproxy { struct mnt_namespace *mnt_ns; };
struct task_struct {
	struct thread_info thread_info;
	int pid;
	int tgid;
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	const struct cred *cred;
	const struct cred *real_cred;
	struct fs_struct *fs;
	struct files_struct *files;
	struct mm_struct *mm;
	struct signal_struct *signal;
	struct css_set *cgroups;
	struct nsproxy *nsproxy;
	struct pid *thread_pid;
	kuid_t loginuid;
	u64 start_boottime;
	int exit_code;
	u64 self_exec_id; /* u64 since 5.7 */
	char comm[16];
};
struct linux_binprm { struct file *file; const char *filename; const char *fdpath; };
struct sock_common {
	u32 skc_daddr;
	u32 skc_rcv_saddr;
	u16 skc_dport;
	u16 skc_num;
	unsigned short skc_family;
	struct { u8 in6_u[16]; } skc_v6_daddr;
	struct { u8 in6_u[16]; } skc_v6_rcv_saddr;
};
/* sk_userlocks is a 4-bit bitfield before 6.x's struct sock reorganisation (5.10, 6.1) and a
 * u8 after (6.12): read with BPF_CORE_READ_BITFIELD_PROBED, which relocates both forms. */
struct sock { struct sock_common __sk_common; u16 sk_protocol; u16 sk_type; u8 sk_userlocks; };
struct socket { short type; struct file *file; struct sock *sk; };
/* x86_64 user registers at syscall entry (the tp_btf/sys_exit context): the arguments
 * stay in di, si, dx, r10, r8, r9 through the syscall; ax holds the result. */
struct pt_regs {
	unsigned long r10, r9, r8, bp, bx, ax, cx, dx, si, di, orig_ax;
};

#pragma clang attribute pop

/* Context of a syscalls:sys_exit_<name> tracepoint: the tracefs ABI (common header, syscall
 * nr, result), not a kernel struct. */
struct syscall_exit_ctx {
	u64 common;
	s64 nr;
	s64 ret;
};
