// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * falco-learn kernel probe.
 *
 * Process lifecycle comes from BTF tracepoints (tp_btf/sched_process_{exec,fork,exit});
 * syscalls from one BTF raw tracepoint on sys_exit (fl_sys_exit) that tail-calls the
 * handler of the syscall's number (SYSCALL_EXIT, filled by userspace with the syscalls
 * the loaded rules and profiles need). A handler reads the arguments from the user
 * registers, which hold them until the syscall returns, so there is no enter program and
 * no per-thread stash. Handlers read the result, the user memory and the kernel objects,
 * and emit one record per completed syscall into one BPF ring buffer. Every kernel struct access is a CO-RE relocation
 * (see kernel.h); nothing depends on the layout of the build machine's kernel.
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by the loader before load. */
const volatile u32 self_tgid = 0;        /* our own process: never traced */
const volatile u32 cgroup_use_memory = 0; /* 1: report the v1 memory cgroup path, 0: the v2 one */
const volatile u64 wakeup_bytes = 0;      /* wake the reader only past this much unread data (0: always) */
const volatile u32 kill_enabled = 0;      /* 1: enforce-kill (KILL_CGROUPS / KILL_ALLOW below) */
const volatile u64 kill_hash_key0 = 0;    /* enforce-kill: SipHash key, random per start (kill.rs, path_hash) */
const volatile u64 kill_hash_key1 = 0;
const volatile u32 ia32_dispatch = 0;     /* 1: the sys_exit dispatcher reports 32-bit syscalls */
const volatile u32 ia32_handled = 0;      /* 1: 32-bit syscalls reach the handlers (compat_exit) */
const volatile u32 io_uring_opcode_offset = 0; /* the `opcode` field's offset in io_uring's submit record (its tracefs format) */

/* BTF anchor of the record structs (events.h), never read. clang emits BTF only for the types
 * that a program's signature, a global or a CO-RE relocation reaches; records written through
 * casts into the ring buffer or the scratch buffer would be missing. The parameters of this
 * pointer's type bring every fl_* record into the object's BTF (8 bytes of .rodata), where
 * probe/tests/abi_layout.rs compares them with the Rust mirror (probe/common/src/lib.rs).
 * A record struct added to events.h belongs here too. `enum fl_kind` (generated from the table
 * of event kinds) is anchored the same way for probe/tests/kind_table.rs. */
void (*const volatile fl_abi_types)(struct fl_hdr *, struct fl_sock *, struct fl_addr *, struct fl_exec *,
				   struct fl_fork *, struct fl_exit *, struct fl_net *, struct fl_open *,
				   struct fl_socket *, struct fl_dup *, struct fl_link *, struct fl_ptrace *,
				   struct fl_module *, struct fl_ia32 *, enum fl_kind) = NULL;

#define TMPFS_MAGIC 0x01021994
#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#define SCRATCH_SIZE 65536
#define HDR_RESERVE 256
#define DATA_MASK 0x7fff
#define MAX_DEPTH 64
#define MAX_CGROUP_DEPTH 12

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024);
} EVENTS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FL_KIND_MAX * FL_STAT_N);
	__type(key, u32);
	__type(value, u64);
} STATS SEC(".maps");

/* One scratch buffer per CPU (an ARRAY sized to the CPU count by the loader:
 * per-CPU arrays cap values at 32 KiB). */
struct scratch {
	u8 buf[SCRATCH_SIZE];
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct scratch);
} SCRATCH SEC(".maps");

struct walk {
	const unsigned char *names[MAX_DEPTH];
	/* put_path's running length: kept in map memory, which the verifier does not
	 * track, so paths of different lengths do not multiply its states */
	u32 total;
	u32 flags;
	/* how many slots of names[] the walk filled (put_path's write loop stops there) */
	u32 depth;
	/* exit_open: whether a profile or a rules-only mark applies to the writer */
	u32 write_scope;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct walk);
} WALK SEC(".maps");

/* Handler program per syscall number (x86_64 numbers): a slot holds a program only while a
 * loaded rule or profile needs that syscall (probe/src/lib.rs, Probe::set_syscalls). */
#define FL_SYSCALL_SLOTS 512
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, FL_SYSCALL_SLOTS);
	__type(key, u32);
	__type(value, u32);
} SYSCALL_EXIT SEC(".maps");

/* Handler program per 32-bit syscall (compat_exit): the same fl_exit_<name> programs as
 * SYSCALL_EXIT's, in the slots of their ia32 numbers (below FL_X32_SLOTS) and of their x32
 * numbers (FL_X32_SLOTS + the number without its bit 30), set and cleared with the 64-bit
 * slot (kind table: COMPAT_SLOTS); ia32 socketcall (102) holds fl_exit_socketcall. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, FL_COMPAT_SLOTS);
	__type(key, u32);
	__type(value, u32);
} SYSCALL_EXIT_COMPAT SEC(".maps");

/* The kinds whose handler is attached now, by kind id (1 = attached): what
 * fl_exit_socketcall may hand a multiplexed socket call to. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FL_KIND_MAX);
	__type(key, u32);
	__type(value, u32);
} KINDS_ATTACHED SEC(".maps");

/* The read-only open filter, set (and changed on reload) by userspace from what the
 * loaded rules need (rules/src/kernel_plan.rs). */
struct read_filter {
	u32 on;              /* 0: every read-only open is reported */
	u32 noncanonical;    /* 1: also every one whose passed path is not canonical */
	u32 names;           /* 1: also every one whose file name is in LEAF_NAMES (this bit) */
	u32 suffix_lens;     /* up to 4 lengths (a byte each, 0: none) of the LEAF_SUFFIXES: also
				every one whose file name ends with one of them */
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct read_filter);
} READ_FILTER SEC(".maps");

/* Path prefixes whose read-only opens are reported when the filter is on. */
struct prefix_key {
	u32 prefixlen;
	u8 data[64];
};
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct prefix_key);
	__type(value, u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} OPEN_PREFIXES SEC(".maps");

/* File names (`fd.filename`) whose opens some rule may match wherever they are: value bit
 * 1 for read-only opens, 2 for the others. */
#define FL_NAME_MAX 64
struct name_key {
	u8 name[FL_NAME_MAX];
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct name_key);
	__type(value, u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} LEAF_NAMES SEC(".maps");

/* File-name endings (`fd.name endswith x`, x without `/`): same bits, keyed by the
 * ending alone. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct name_key);
	__type(value, u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} LEAF_SUFFIXES SEC(".maps");
/* The file name and the ending being looked up (per CPU; map memory, where a variable
 * index is fine on every kernel, unlike the stack before 5.12). */
struct leaf_scratch {
	struct name_key name;
	struct name_key end;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct leaf_scratch);
} LEAF_SCRATCH SEC(".maps");

/* Whether the file whose path the last walk (fl_put_path, WALK) reported has a name in
 * LEAF_NAMES, or one ending with one of LEAF_SUFFIXES, for `bit` (the filter's switches say
 * which maps hold anything). The name is the walk's leaf, the last component of `fd.name`:
 * not the opened dentry's own name, which for a file bind-mounted over another (a
 * single-file volume, a Kubernetes subPath) is the source file's. A path of no component
 * (`/`) has no name. A global function: the verifier checks it once, on its own, instead
 * of once per state of every caller (the loops below would exceed 5.10's budget inlined). */
__attribute__((noinline)) int fl_leaf_named(u32 bit, u32 names, u32 suffix_lens)
{
	u32 zero = 0;
	struct leaf_scratch *ls = bpf_map_lookup_elem(&LEAF_SCRATCH, &zero);
	struct walk *w = bpf_map_lookup_elem(&WALK, &zero);
	const unsigned char *name = NULL;
	long n;
	u8 *v;
	if (!ls || !w)
		return 1; /* cannot tell: reported */
	/* slot 0 is the leaf, unless the walk crossed a mount there (NULL slots) */
	for (int i = 0; i < MAX_DEPTH; i++) {
		if ((u32)i >= *(volatile u32 *)&w->depth)
			break;
		name = w->names[i];
		if (name)
			break;
	}
	if (!name)
		return 0;
	/* keys are compared whole: what follows the name's NUL must be zero */
	__builtin_memset(ls->name.name, 0, sizeof(ls->name.name));
	/* a longer name is cut to 63 bytes and its NUL: it equals no key (keys are shorter) */
	n = bpf_probe_read_kernel_str(ls->name.name, sizeof(ls->name.name), name);
	if (n <= 0)
		return 0;
	n -= 1;
	if (names) {
		v = bpf_map_lookup_elem(&LEAF_NAMES, &ls->name);
		if (v && (*v & bit))
			return 1;
	}
	if (!suffix_lens)
		return 0;
	/* a name cut to the key: its ending is not known, so it is reported */
	if (n >= FL_NAME_MAX - 1)
		return 1;
	for (int i = 0; i < 4; i++) {
		u32 len = (suffix_lens >> (8 * i)) & 0xff;
		u32 start = (u32)n - len;
		if (len == 0 || len > (u32)n)
			continue; /* none, or longer than the name */
		/* branch-free: the last `len` bytes of the name, then zeros */
		for (int j = 0; j < FL_NAME_MAX; j++) {
			u8 keep = (u8)((s32)((u32)j - len) >> 31);
			ls->end.name[j] = ls->name.name[(start + j) & (FL_NAME_MAX - 1)] & keep;
		}
		v = bpf_map_lookup_elem(&LEAF_SUFFIXES, &ls->end);
		if (v && (*v & bit))
			return 1;
	}
	return 0;
}

/* Opens for writing (enforce modes with engine.kernel_filter): WRITE_FILTER.on says the
 * loaded rules reduce to the path prefixes in WRITE_PREFIXES (Ruleset::write_open_plan);
 * a write-open outside them that the container's profile allows (PROFILE_WRITES) is
 * counted (FL_STAT_PROFILE_FILTERED) and dropped. Everything else is reported. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct read_filter);
} WRITE_FILTER SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct prefix_key);
	__type(value, u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} WRITE_PREFIXES SEC(".maps");

/* Containers whose image has a profile, by cgroup v2 id (as KILL_CGROUPS), mapped to the
 * profile's number in PROFILE_WRITES. Filled by userspace (profile_filter.rs). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, u64);
	__type(value, u32);
} FILTER_CGROUPS SEC(".maps");

/* Processes no profile applies to (the host without a host profile, containers whose image
 * has none), by tgid, as userspace attributed them (enforce modes with engine.kernel_filter):
 * what they do that no loaded rule can match is dropped (FL_STAT_UNPROFILED_FILTERED). A mark
 * holds for one exec of one process: the exec id the process ran when userspace decided, and
 * its start in clock ticks (as /proc shows it), so an exec since, or a reused pid, is never
 * filtered by a stale mark. Userspace adds and removes marks; the kernel removes a process's
 * at its exit. */
struct task_mark {
	u32 exec_id;
	u32 _pad;
	u64 start_ticks;
};
#define FL_TICK_NS 10000000ULL /* 1e9 / USER_HZ (100): /proc's clock tick */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, u32);
	__type(value, struct task_mark);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} RULES_ONLY SEC(".maps");

/* What each profile allows to be opened for writing: a file, as its path and a NUL; a
 * directory, as its path and a `/` (it covers everything below it). The key holds the
 * profile number first, so a longest-prefix match never crosses profiles. Paths longer
 * than the key are matched only by their directory entries. */
#define FL_PROFILE_PATH 248
struct profile_path_key {
	u32 prefixlen;
	u32 profile;
	u8 data[FL_PROFILE_PATH];
};
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__type(key, struct profile_path_key);
	__type(value, u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} PROFILE_WRITES SEC(".maps");
/* the lookup key, too large for the stack next to exit_open's locals */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct profile_path_key);
} PROFILE_KEY SEC(".maps");

/* Network traffic (enforce modes with engine.kernel_filter). NET_FILTER says, per side and
 * protocol (bit 0 TCP out, bit 1 UDP out, bit 2 TCP in, bit 3 UDP in), that the loaded rules
 * bound it to the (side, protocol, port) triples in RULE_PORTS (Ruleset::net_plan). An event of
 * a bounded side and protocol outside RULE_PORTS that the container's profile allows is counted
 * (FL_STAT_PROFILE_FILTERED) and dropped:
 * - outbound (the client's side): a successful connect, or a sendto/sendmsg to an explicit
 *   address from a client's UDP socket; port = the remote one; PROFILE_OUTBOUND must allow the
 *   protocol, port and peer;
 * - inbound (the server's side): an accepted connection, or a UDP reply from the server's port;
 *   port = the local one; PROFILE_INBOUND must hold the protocol and port.
 * Everything else is reported. */
#define FL_NET_SERVER (1u << 24)
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u32);
} NET_FILTER SEC(".maps");
/* key: FL_NET_SERVER for the server's side | IPPROTO_* << 16 | port */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, u32);
	__type(value, u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} RULE_PORTS SEC(".maps");
/* The ports each profile serves: profile number, IPPROTO_*, port. */
struct profile_port_key {
	u32 profile;
	u8 proto;
	u8 _pad;
	u16 port;
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct profile_port_key);
	__type(value, u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} PROFILE_INBOUND SEC(".maps");
/* What each profile allows out: profile number, IPPROTO_*, family (4 or 6), remote port, then
 * the peer network's address bits; prefixlen = 64 + the network's prefix length. */
struct profile_net_key {
	u32 prefixlen;
	u32 profile;
	u8 proto;
	u8 family;
	u16 port;
	u8 addr[16];
};
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__type(key, struct profile_net_key);
	__type(value, u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} PROFILE_OUTBOUND SEC(".maps");

/* Kinds the loaded rules need only some of (Probe::set_event_filter, from the rules' plan:
 * falco_learn_probe::filter::EventFilterPlan). A set bit drops, in every mode; zero (the
 * default) reports everything. SOCKET_DROP: bit d drops a successful socket() call of domain
 * d < 64.
 * DUP_DROP[k * 8 + c]: for dup (k 0), dup2 (1) and dup3 (2), and the class c of what the new
 * descriptor is (fl_dup_class), bit r drops a call whose new descriptor is r < 64. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} SOCKET_DROP SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 24);
	__type(key, u32);
	__type(value, u64);
} DUP_DROP SEC(".maps");

/* One SipHash round (Aumasson & Bernstein; enforce-kill's path hash, kill.rs path_hash). */
#define FL_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND(v0, v1, v2, v3)                                              \
	do {                                                                  \
		v0 += v1; v1 = FL_ROTL(v1, 13); v1 ^= v0; v0 = FL_ROTL(v0, 32); \
		v2 += v3; v3 = FL_ROTL(v3, 16); v3 ^= v2;                        \
		v0 += v3; v3 = FL_ROTL(v3, 21); v3 ^= v0;                        \
		v2 += v1; v1 = FL_ROTL(v1, 17); v1 ^= v2; v2 = FL_ROTL(v2, 32); \
	} while (0)

/* enforce-kill. Containers under enforcement, by the id of their cgroup v2
 * (bpf_get_current_cgroup_id(): 64-bit kernfs ids are never reused, and every
 * process of a container is in it, `ctr task exec` included), mapped to a
 * profile number; the executables each profile allows, by the keyed SipHash of
 * their path and where the file lives. Userspace fills both. An exec in an enforced
 * cgroup whose path is not allowed gets SIGKILL before it returns to user space. A
 * kill whose exec record finds the ring buffer full is counted per cgroup in
 * KILLS_UNREPORTED, so that userspace still says it happened. */
struct kill_key {
	u32 profile;
	u32 _pad;
	u64 hash;
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, u64);
	__type(value, u32);
} KILL_CGROUPS SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct kill_key);
	__type(value, u8);
} KILL_ALLOW SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, u64);
	__type(value, u64);
} KILLS_UNREPORTED SEC(".maps");

/* Each cgroup's home: the root (filesystem and directory) its processes exec from, taken
 * from the first exec judged in it (not the runtime's own child, not relocated otherwise,
 * not from the host's root) unless an ancestor cgroup has one (cgroup_home), by cgroup v2
 * id; removed when the cgroup is (fl_cgroup_rmdir). A later exec in the cgroup
 * from another root is flagged FL_EXE_OTHER_ROOT, or FL_EXE_HOST_ROOT when that root is the
 * host's (a layer of its own each in the kill hash, which a profile entry allows only as
 * learned): a chroot into a neighbour's /proc/<pid>/root (hostPID,
 * shareProcessNamespace), a setns into another container's mount namespace, a mount stacked
 * on "/" and `chroot .`, a pivot_root into a directory of the container's own files all give
 * the task another root, while exec sessions (runc exec's setns), `unshare -m` and bind
 * mounts of the root keep it (a copied namespace's root mount has the same filesystem and
 * directory). A full map remembers nothing more (FL_STAT_NO_HOME, counted under the exec
 * kind): those cgroups are judged without a home. */
struct home {
	u64 sb;
	u64 dentry;
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, u64);
	__type(value, struct home);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} HOMES SEC(".maps");

/* A cgroup's parent directory (NULL at the hierarchy's root). */
static __always_inline struct kernfs_node *kn_parent(struct kernfs_node *kn)
{
	if (bpf_core_field_exists(kn->__parent)) /* 6.15+ */
		return BPF_CORE_READ(kn, __parent);
	if (bpf_core_field_exists(((struct kernfs_node___old *)kn)->parent))
		return BPF_CORE_READ((struct kernfs_node___old *)kn, parent);
	return NULL;
}

#define FL_HOME_DEPTH 32
/* The home of the task's cgroup, or else of its nearest ancestor that has one: a cgroup a
 * container makes below its own (systemd in it, or a process that can write its cgroup tree
 * and moves into a new cgroup to take a new home there) lives in the container's home.
 * 1: found (*out), 0: none up to the hierarchy's root, -1: deeper than the walk. */
static __always_inline int cgroup_home(struct task_struct *task, struct home *out)
{
	struct kernfs_node *kn = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn);
	for (int i = 0; i < FL_HOME_DEPTH; i++) {
		u64 id;
		struct home *h;
		if (!kn)
			return 0;
		id = BPF_CORE_READ(kn, id);
		h = bpf_map_lookup_elem(&HOMES, &id);
		if (h) {
			*out = *h;
			return 1;
		}
		kn = kn_parent(kn);
	}
	return -1;
}

/* The profile enforce-kill judges the task's execs by: its cgroup's (KILL_CGROUPS), or else
 * its nearest ancestor cgroup's. A cgroup made below a container's is the container's
 * whatever it is called: one named like another container (`docker-<64 hex>.scope`) is
 * attributed to that container in userspace, whose image is not known, and was never bound
 * to a profile, so a container that can write its cgroup tree ran anything there. A cgroup
 * nested deeper than the walk under no bound cgroup is judged by no profile's entries
 * (profile 0 is none): killed. NULL: no profile applies. */
static __always_inline u32 *kill_profile(struct task_struct *task, u64 cgid, u32 *none)
{
	u32 *p = bpf_map_lookup_elem(&KILL_CGROUPS, &cgid);
	struct kernfs_node *kn;
	if (p)
		return p;
	kn = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn);
	for (int i = 0; i < FL_HOME_DEPTH; i++) {
		u64 id;
		if (!kn)
			return NULL;
		kn = kn_parent(kn);
		if (!kn)
			return NULL;
		id = BPF_CORE_READ(kn, id);
		p = bpf_map_lookup_elem(&KILL_CGROUPS, &id);
		if (p)
			return p;
	}
	return none;
}

/* The host's init (global pid 1) once found (host_root), its group leader, so that the walk
 * up an ancestry to it is made once, not on every exec of a host process in a cgroup
 * without a home (each systemd service's). Checked at each use (still pid 1's leader: an
 * exec by another thread of init makes that thread the leader and frees the old one, whose
 * memory may hold another task by then; found again if not), and its root read then (a
 * switch-root changes it). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} HOST_INIT SEC(".maps");

/* The root of the host's init (global pid 1): from HOST_INIT, else found up the task's
 * ancestry (every process descends from it: orphans are adopted by it or a subreaper below
 * it) and kept there. False when the walk ends first. */
static __always_inline bool host_root(struct task_struct *t, struct home *out)
{
	u32 zero = 0;
	u64 *init = bpf_map_lookup_elem(&HOST_INIT, &zero);
	if (!init)
		return false;
	if (*init) {
		struct task_struct *c = (struct task_struct *)*init;
		if (BPF_CORE_READ(c, tgid) != 1 || (u64)BPF_CORE_READ(c, group_leader) != *init)
			*init = 0;
	}
	if (!*init) {
		for (int i = 0; i < 64; i++) {
			struct task_struct *p;
			if (BPF_CORE_READ(t, tgid) == 1) {
				/* its leader: a thread of init that forked may end */
				*init = (u64)BPF_CORE_READ(t, group_leader);
				break;
			}
			p = BPF_CORE_READ(t, real_parent);
			if (!p || p == t)
				return false;
			t = p;
		}
		if (!*init)
			return false;
	}
	struct path r = BPF_CORE_READ((struct task_struct *)*init, fs, root);
	/* no fs: init's leader thread has ended (the process lives on in other threads) */
	if (!r.mnt || !r.dentry)
		return false;
	out->sb = (u64)BPF_CORE_READ(r.mnt, mnt_sb);
	out->dentry = (u64)r.dentry;
	return true;
}

SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(fl_cgroup_rmdir, struct cgroup *cgrp, const char *path)
{
	u64 id;
	/* the default (v2) hierarchy's: a v1 hierarchy numbers its cgroups on its own */
	if (BPF_CORE_READ(cgrp, root, hierarchy_id) != 0)
		return 0;
	id = BPF_CORE_READ(cgrp, kn, id);
	bpf_map_delete_elem(&HOMES, &id);
	return 0;
}

/* One more kill in cgroup `cgid` whose record was lost (running totals, never evicted). When
 * the map is full the kill counts under cgroup 0, which userspace creates at start. */
static __always_inline void kill_unreported(u64 cgid)
{
	u64 one = 1, none = 0;
	u64 *n = bpf_map_lookup_elem(&KILLS_UNREPORTED, &cgid);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return;
	}
	if (!bpf_map_update_elem(&KILLS_UNREPORTED, &cgid, &one, BPF_NOEXIST))
		return;
	/* another CPU made the entry meanwhile (add to it), or the map is full (cgroup 0) */
	n = bpf_map_lookup_elem(&KILLS_UNREPORTED, &cgid);
	if (!n)
		n = bpf_map_lookup_elem(&KILLS_UNREPORTED, &none);
	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline void stat_inc(u32 kind, u32 stat)
{
	u32 idx = (kind & (FL_KIND_MAX - 1)) * FL_STAT_N + stat;
	u64 *v = bpf_map_lookup_elem(&STATS, &idx);
	if (v)
		*v += 1;
}

static __always_inline u8 *scratch_buf(void)
{
	u32 cpu = bpf_get_smp_processor_id();
	struct scratch *s = bpf_map_lookup_elem(&SCRATCH, &cpu);
	return s ? s->buf : NULL;
}

static __always_inline bool skip_self(void)
{
	return (u32)(bpf_get_current_pid_tgid() >> 32) == self_tgid;
}

/* The current task as a BTF pointer (5.11+: bpf_get_current_task_btf) lets the hot paths read
 * task fields with plain loads instead of a bpf_probe_read_kernel call each. The check is a
 * CO-RE constant: on 5.10 the verifier never sees the other branch. */
static __always_inline bool task_btf(void)
{
	return bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf);
}

#define TS_COMPAT 0x0002

/* thread_info.status of the current task (x86_64: TS_COMPAT). */
static __always_inline u32 current_status(void)
{
	if (task_btf())
		return bpf_get_current_task_btf()->thread_info.status;
	return BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), thread_info.status);
}

/* Which exec of its process the current task runs: the low 32 bits of self_exec_id, which
 * every exec increments (before sched_process_exec) and a fork or new thread inherits. */
static __always_inline u32 current_exec_id(void)
{
	if (task_btf())
		return (u32)bpf_get_current_task_btf()->self_exec_id;
	return (u32)BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), self_exec_id);
}

/* Whether no profile applies to the current process (see RULES_ONLY). A global function:
 * the verifier checks it once, on its own; inlined, its branches multiplied the states of
 * the open programs, which are close to the verifier's limit of 1M instructions. */
__attribute__((noinline)) int fl_rules_only(void)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_mark *m = bpf_map_lookup_elem(&RULES_ONLY, &tgid);
	if (!m || m->exec_id != current_exec_id())
		return 0;
	return m->start_ticks == BPF_CORE_READ(task, group_leader, start_boottime) / FL_TICK_NS;
}

/* The current task's root (fs->root). */
static __always_inline struct path current_root(void)
{
	struct path root;
	if (task_btf()) {
		/* plain loads: one through a NULL pointer reads 0 (no branch, which would
		 * double the verifier's states of every caller) */
		struct fs_struct *fs = bpf_get_current_task_btf()->fs;
		root.dentry = fs->root.dentry;
		root.mnt = fs->root.mnt;
		return root;
	}
	return BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), fs, root);
}

static __always_inline void fill_hdr(struct fl_hdr *h, u32 kind, s64 res)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	u64 pid_tgid = bpf_get_current_pid_tgid();
	u64 uid_gid = bpf_get_current_uid_gid();
	h->ts_boot_ns = bpf_ktime_get_boot_ns();
	h->cgroup_id = bpf_get_current_cgroup_id();
	h->kind = kind;
	h->pid = pid_tgid >> 32;
	h->tid = (u32)pid_tgid;
	if (task_btf())
		h->ppid = bpf_get_current_task_btf()->real_parent->tgid; /* plain loads */
	else
		h->ppid = BPF_CORE_READ(task, real_parent, tgid);
	h->uid = (u32)uid_gid;
	h->gid = uid_gid >> 32;
	h->exec_id = current_exec_id();
	h->res = res;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/*
 * Waking the reader for every record costs an IPI per event (a VM exit under
 * virtualisation: microseconds). Records are submitted without a wakeup; the reader
 * polls on a short timer, so a quiet stream is still delivered within that period, and
 * once awake it drains until the ring is empty. A wakeup is forced only while the unread
 * data crosses `wakeup_bytes` (a window of WAKEUP_WINDOW bytes above it), so a burst wakes
 * the reader early, a few times per crossing. Forcing it for every record past the mark
 * made an IPI storm exactly when the reader was behind (bench: 35 % of all CPU time in
 * the APIC write of the wakeup, at 200 k events/s).
 */
#define WAKEUP_WINDOW 16384
static __always_inline u64 rb_flags(void)
{
	u64 avail;
	if (!wakeup_bytes)
		return 0;
	avail = bpf_ringbuf_query(&EVENTS, BPF_RB_AVAIL_DATA);
	return avail >= wakeup_bytes && avail < wakeup_bytes + WAKEUP_WINDOW ? BPF_RB_FORCE_WAKEUP
									  : BPF_RB_NO_WAKEUP;
}

/* Emit a record that sits at buf[HDR_RESERVE - hdr_size .. HDR_RESERVE + data_len].
 * Returns whether it was written. */
static __always_inline bool emit_scratch(u8 *buf, u32 kind, u32 hdr_size, u32 data_len)
{
	u32 start = HDR_RESERVE - hdr_size;
	u32 size = hdr_size + (data_len & DATA_MASK);
	struct fl_hdr *h;
	if (start >= HDR_RESERVE)
		return false;
	h = (struct fl_hdr *)&buf[start & (HDR_RESERVE - 1)];
	h->size = size;
	if (size > SCRATCH_SIZE - HDR_RESERVE || size < sizeof(struct fl_hdr))
		return false;
	if (bpf_ringbuf_output(&EVENTS, &buf[start & (HDR_RESERVE - 1)], size, rb_flags()) == 0) {
		stat_inc(kind, FL_STAT_EMITTED);
		return true;
	}
	stat_inc(kind, FL_STAT_DROPPED);
	return false;
}

/* Fixed-size records: reserve/submit straight into the ring buffer. */
#define RESERVE(type, var, kindv)                                       \
	type *var = bpf_ringbuf_reserve(&EVENTS, sizeof(type), 0);      \
	if (!var) {                                                     \
		stat_inc(kindv, FL_STAT_DROPPED);                       \
		return 0;                                               \
	}                                                               \
	__builtin_memset(var, 0, sizeof(type));                         \
	var->h.size = sizeof(type);

#define SUBMIT(var, kindv)                                              \
	bpf_ringbuf_submit(var, rb_flags());                            \
	stat_inc(kindv, FL_STAT_EMITTED);

/*
 * Write the absolute path of (dentry, vfsmnt) at data[off..], walking dentries
 * up to the task's root and crossing mount points. Returns the length written
 * (no NUL). Components are collected leaf → root with their lengths (qstr.len),
 * then written root → leaf.
 *
 * Never a plausible wrong path: a path longer than FL_MAX_PATH - 1 bytes or
 * deeper than MAX_DEPTH components keeps only the leaf-side components that
 * fit and sets FL_PATH_TRUNCATED (userspace renders it "<truncated>/…", which
 * matches no profile entry, and enforce-kill kills such an exec). An unlinked
 * file (d_unlinked: unhashed and not a root) or a detached one (memfd) sets
 * FL_PATH_DETACHED (the kill hash mixes it in apart from the bytes); a pseudo file
 * with no parent (memfd) also sets FL_PATH_PSEUDO.
 */
/* A dentry's parent and name. Every kernel keeps d_parent right before d_name ({hash, len,
 * name}): one read then fetches all three (the hot loop of the path walk); another layout
 * gets three reads. The offsets are CO-RE constants: the verifier keeps one branch. */
struct dentry_head {
	struct dentry *parent;
	u32 len;
	u64 hash_len; /* the qstr's hash (low half) and len (high half) */
	const unsigned char *name;
};
static __always_inline void dentry_head(struct dentry *d, struct dentry_head *h)
{
	u32 op = bpf_core_field_offset(struct dentry, d_parent);
	u32 on = bpf_core_field_offset(struct dentry, d_name);
	u32 ol = bpf_core_field_offset(struct qstr, len);
	u32 onm = bpf_core_field_offset(struct qstr, name);
	if (on == op + 8 && ol == 4 && onm == 8) {
		u64 buf[3] = {};
		bpf_probe_read_kernel(buf, sizeof(buf), (u8 *)d + op);
		h->parent = (struct dentry *)buf[0];
		h->len = buf[1] >> 32;
		h->hash_len = buf[1];
		h->name = (const unsigned char *)buf[2];
	} else {
		h->parent = BPF_CORE_READ(d, d_parent);
		h->len = BPF_CORE_READ(d, d_name.len);
		h->hash_len = ((u64)h->len << 32) | BPF_CORE_READ(d, d_name.hash);
		h->name = BPF_CORE_READ(d, d_name.name);
	}
}

__attribute__((noinline)) int fl_put_path(u64 dentry_p, u64 vfsmnt_p, u32 off)
{
	u32 zero = 0, pos = 0, ovf = 0;
	bool complete = false;
	struct walk *w = bpf_map_lookup_elem(&WALK, &zero);
	struct dentry *dentry = (struct dentry *)dentry_p;
	struct vfsmount *vfsmnt = (struct vfsmount *)vfsmnt_p;
	struct path root = current_root();
	u8 *buf = scratch_buf();
	u8 *data;
	struct mount *mnt;
	struct dentry *mnt_root;
	struct dentry_head h;
	if (!w)
		return 0;
	w->flags = 0;
	if (!buf || !dentry || !vfsmnt)
		return 0;
	data = &buf[HDR_RESERVE];
	off &= DATA_MASK;
	/* The running length, the depth and the flags live in map memory, which the verifier
	 * does not track: paths of different shapes then do not multiply its states. */
	w->total = 0;
	w->depth = 0;
	mnt = container_of(vfsmnt, struct mount, mnt);
	/* unlinked (d_unlinked: unhashed and not a root); a hashed dentry, the common case,
	 * costs one read */
	if (!BPF_CORE_READ(dentry, d_hash.pprev) && dentry != BPF_CORE_READ(dentry, d_parent))
		w->flags |= FL_PATH_DETACHED;

	/* Slot i holds the i-th component from the leaf, or NULL where the walk crossed a
	 * mount; w->depth counts the slots used. Both loops stop where the path does (a
	 * loop that ran on to MAX_DEPTH was half of the program's own time on a short
	 * path). */
	/* the current mount's root, read again only when the walk crosses a mount */
	mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
	for (int i = 0; i < MAX_DEPTH; i++) {
		struct dentry *parent;
		if (dentry == root.dentry && vfsmnt == root.mnt) {
			complete = true;
			break;
		}
		if (dentry == mnt_root) {
			struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
			if (mnt_parent == mnt) {
				complete = true; /* the namespace root */
				w->flags |= FL_PATH_BEYOND_ROOT;
				break;
			}
			w->names[i] = NULL;
			w->depth = i + 1;
			dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = mnt_parent;
			vfsmnt = (struct vfsmount *)((u8 *)mnt + bpf_core_field_offset(struct mount, mnt));
			mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
			continue;
		}
		dentry_head(dentry, &h);
		parent = h.parent;
		w->total += 1 + (h.len & (FL_MAX_NAME - 1));
		if (w->total > FL_MAX_PATH - 1) {
			/* this component no longer fits: keep the leaf side */
			w->flags |= FL_PATH_TRUNCATED;
			complete = true;
			break;
		}
		w->names[i] = h.name;
		w->depth = i + 1;
		if (dentry == parent) {
			/* detached (memfd, unlinked pseudo file): its own name, like d_path */
			w->flags |= FL_PATH_DETACHED | FL_PATH_PSEUDO;
			complete = true;
			break;
		}
		dentry = parent;
	}
	if (!complete)
		w->flags |= FL_PATH_TRUNCATED; /* deeper than MAX_DEPTH */
	for (int j = MAX_DEPTH - 1; j >= 0; j--) {
		s64 r;
		const unsigned char *name;
		/* slots from depth on hold an earlier walk's names */
		if ((u32)j >= *(volatile u32 *)&w->depth)
			continue;
		name = w->names[j];
		if (!name)
			continue;
		/* no branch on pos (a branch per component makes the verifier's state
		 * space exponential). The budget above keeps pos below FL_MAX_PATH; a
		 * name that grew since (a concurrent rename) is caught as an overflow. */
		ovf |= pos & ~(u32)(FL_MAX_PATH - 1);
		pos &= FL_MAX_PATH - 1;
		data[(off + pos) & DATA_MASK] = '/';
		r = bpf_probe_read_kernel_str(&data[(off + pos + 1) & DATA_MASK], FL_MAX_NAME, name);
		/* branch-free: pos += 1 + max(r - 1, 0) */
		r -= 1;
		r &= ~(r >> 63);
		pos += 1 + (r & (FL_MAX_NAME - 1));
	}
	ovf |= pos & ~(u32)(FL_MAX_PATH - 1);
	if (ovf) {
		/* the text wrapped: report no component rather than a mix */
		w->flags |= FL_PATH_TRUNCATED;
		data[off & DATA_MASK] = '/';
		return 1;
	}
	pos &= FL_MAX_PATH - 1;
	if (pos == 0) {
		data[off & DATA_MASK] = '/';
		return 1;
	}
	return pos;
}

/* put_path's body is a global function: the verifier checks it once, on its own, instead of
 * once per state of every caller (it was most of the open programs' 870 k of the 1 M
 * instructions the verifier allows). It writes into the scratch buffer every caller's `data`
 * points into (scratch + HDR_RESERVE), walks up to the current task's root (every caller's)
 * and leaves the flags in WALK. */
static __always_inline u32 put_path(u32 off, struct dentry *dentry, struct vfsmount *vfsmnt, u32 *flags)
{
	u32 zero = 0;
	struct walk *w;
	u64 ret = fl_put_path((u64)dentry, (u64)vfsmnt, off);
	u32 len;
	/* clang knows the function's range and would drop the mask; the verifier, which
	 * checks the function on its own, knows nothing of it */
	asm volatile("" : "+r"(ret));
	len = ret & (FL_MAX_PATH - 1);
	w = bpf_map_lookup_elem(&WALK, &zero);
	if (w)
		*flags |= w->flags;
	return len;
}

/* ---------------------------------------------------------------- verdict cache of opens
 *
 * An open the filters drop is decided on the opened file's path, which costs a walk of its
 * dentries (~300 ns). The verdict "dropped" is kept per opened file: keyed by the file's
 * dentry and mount, the task's root (the path depends on it), whether it was a write, and
 * for writes the container's profile. A hit skips the walk. Only drops are kept: a reported
 * open needs its path anyway.
 *
 * A kept verdict is used only while
 * - neither generation moved: VERDICT_GEN[0] is bumped by the kernel when a rename or a mount
 *   change ends (fl_exit_rename*, ...: they change the paths of existing dentries),
 *   VERDICT_GEN[1] by userspace after any change to the filters or the profiles;
 * - no io_uring rename was ever submitted (VERDICT_GEN[2], set by fl_io_uring_submit: such a
 *   rename is made by an io-wq worker, no syscall ends a generation after it, and its
 *   completion is not always traced: from then on the cache is off);
 * - the dentry still has the parent and the name (hash and length) it had: a dentry freed and
 *   reused for another file misses;
 * - for writes, the file is not unlinked (an unlinked file's write-open is reported).
 * A walk stores the generations it read before walking, so a rename that ends during it
 * leaves its verdict stale. The passed path's canonical check (rf->noncanonical) is
 * per call and is made again on a hit. Verdicts are kept only for files on local
 * filesystems (stable_fs): the client of a network or FUSE filesystem moves a dentry when
 * it finds a directory under a new name (d_splice_alias), a rename no syscall here made.
 */
struct verdict_key {
	u64 dentry;
	u64 mnt;
	u64 root_dentry;
	u64 root_mnt;
	u32 profile; /* writes: the container's profile number; reads: 0 */
	u32 write;
};
struct verdict {
	u64 kgen;
	u64 ugen;
	u64 parent;
	u64 hash_len;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct verdict_key);
	__type(value, struct verdict);
} OPEN_VERDICTS SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, u32);
	__type(value, u64);
} VERDICT_GEN SEC(".maps");

struct verdict_ctx {
	struct verdict_key k;
	u64 kgen;
	u64 ugen;
};

/* Fill the key and read the generations (before any walk). */
static __always_inline bool verdict_prepare(struct task_struct *task, struct file *f, u32 profile, u32 write,
					    struct verdict_ctx *v)
{
	u32 zero = 0, one = 1, two = 2;
	u64 *kg = bpf_map_lookup_elem(&VERDICT_GEN, &zero);
	u64 *ug = bpf_map_lookup_elem(&VERDICT_GEN, &one);
	u64 *off = bpf_map_lookup_elem(&VERDICT_GEN, &two);
	struct path p, root;
	if (!kg || !ug || !off || *off)
		return false;
	v->kgen = *kg;
	v->ugen = *ug;
	p = BPF_CORE_READ(f, f_path);
	root = current_root();
	v->k.dentry = (u64)p.dentry;
	v->k.mnt = (u64)p.mnt;
	v->k.root_dentry = (u64)root.dentry;
	v->k.root_mnt = (u64)root.mnt;
	v->k.profile = profile;
	v->k.write = write;
	return p.dentry != NULL;
}

static __always_inline bool verdict_hit(struct verdict_ctx *v)
{
	struct verdict *c = bpf_map_lookup_elem(&OPEN_VERDICTS, &v->k);
	struct dentry *d = (struct dentry *)v->k.dentry;
	struct dentry_head h;
	if (!c || c->kgen != v->kgen || c->ugen != v->ugen)
		return false;
	dentry_head(d, &h);
	if (c->parent != (u64)h.parent || c->hash_len != h.hash_len)
		return false;
	/* unlinked (d_unlinked): a write-open of it is reported */
	return !v->k.write || BPF_CORE_READ(d, d_hash.pprev);
}

/* Filesystems whose dentries move only by a rename made on this machine (a syscall here, or
 * io_uring's: see VERDICT_GEN[2]); not network, cluster or FUSE ones, whose client moves a
 * dentry when the server says a directory is now elsewhere, nor sysfs/kernfs (renamed by the
 * kernel: a network interface). Magic numbers from include/uapi/linux/magic.h. */
static __always_inline bool stable_fs(struct dentry *d)
{
	switch (BPF_CORE_READ(d, d_sb, s_magic)) {
	case 0xEF53:     /* ext2, ext3, ext4 */
	case 0x58465342: /* xfs */
	case 0x9123683E: /* btrfs */
	case 0xF2F52010: /* f2fs */
	case 0xca451a4e: /* bcachefs */
	case 0x2fc12fc1: /* zfs */
	case TMPFS_MAGIC:
	case 0x858458f6: /* ramfs */
	case OVERLAYFS_SUPER_MAGIC:
	case 0x73717368: /* squashfs */
	case 0xE0F5E1E2: /* erofs */
	case 0x9fa0:     /* proc */
		return true;
	default:
		return false;
	}
}

static __always_inline void verdict_store(struct verdict_ctx *v)
{
	struct verdict c = {.kgen = v->kgen, .ugen = v->ugen};
	struct dentry_head h;
	if (!stable_fs((struct dentry *)v->k.dentry))
		return;
	dentry_head((struct dentry *)v->k.dentry, &h);
	c.parent = (u64)h.parent;
	c.hash_len = h.hash_len;
	bpf_map_update_elem(&OPEN_VERDICTS, &v->k, &c, BPF_ANY);
}

/* 0x80 in every byte of x equal to c, 0 elsewhere (exact: no borrow between bytes). */
static __always_inline u64 bytes_equal(u64 x, u8 c)
{
	u64 y = x ^ (0x0101010101010101ULL * c);
	u64 t = (y & 0x7f7f7f7f7f7f7f7fULL) + 0x7f7f7f7f7f7f7f7fULL;
	return ~(t | y | 0x7f7f7f7f7f7f7f7fULL);
}

/* Canonical: absolute, under 256 bytes, none of `//`, `/.` (so no `.` or `..` component)
 * and `./` (`a./b`: a rule's `fd.nameraw contains "../"` holds for `/a../b`, so such a path
 * must count as not canonical too: rules/src/kernel_plan.rs). Eight bytes a step: byte j of
 * `w` is a `/` followed (byte j of `n`, read one byte further on) by `/` or `.`, or a `.`
 * followed by `/`. `data` is the scratch buffer, so reading past the string's NUL stays
 * inside it; bytes past `len` are masked out. */
static __always_inline bool canonical_path(const u8 *data, u32 len)
{
	if (len == 0 || len >= 256 || data[0] != '/')
		return false;
	for (u32 i = 0; i < 32; i++) {
		u32 at = i * 8;
		u64 w, n, hit;
		if (at >= len)
			break;
		w = *(const u64 *)&data[at & 0xff];
		n = *(const u64 *)&data[(at + 1) & 0x1ff];
		hit = (bytes_equal(w, '/') & (bytes_equal(n, '/') | bytes_equal(n, '.'))) |
		      (bytes_equal(w, '.') & bytes_equal(n, '/'));
		if (len - at < 8)
			hit &= (1ULL << ((len - at) * 8)) - 1;
		if (hit)
			return false;
	}
	return true;
}

/* The path of an open file as the current task sees it (its root). One read for the file's
 * path; the root is plain loads from 5.11. */
static __always_inline u32 put_file_path(u32 off, struct file *f, u32 *flags)
{
	struct path p = BPF_CORE_READ(f, f_path);
	return put_path(off, p.dentry, p.mnt, flags);
}

/* Path of the task's cgroup (v1 memory hierarchy or v2), e.g. /default/web. */
static __always_inline u32 put_cgroup(u8 *data, u32 off, struct task_struct *task)
{
	u32 zero = 0, n = 0, pos = 0;
	struct walk *w = bpf_map_lookup_elem(&WALK, &zero);
	struct cgroup *cg;
	struct kernfs_node *kn;
	if (!w)
		return 0;
	if (cgroup_use_memory) {
		int idx = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
		cg = BPF_CORE_READ(task, cgroups, subsys[idx & 15], cgroup);
	} else {
		cg = BPF_CORE_READ(task, cgroups, dfl_cgrp);
	}
	kn = BPF_CORE_READ(cg, kn);
	for (int i = 0; i < MAX_CGROUP_DEPTH; i++) {
		struct kernfs_node *parent;
		if (!kn)
			break;
		parent = kn_parent(kn);
		if (!parent)
			break; /* the hierarchy root has no name of its own */
		w->names[n & (MAX_DEPTH - 1)] = (const unsigned char *)BPF_CORE_READ(kn, name);
		n++;
		kn = parent;
	}
	if (n == 0) {
		data[off & DATA_MASK] = '/';
		return 1;
	}
	for (int i = 0; i < MAX_CGROUP_DEPTH; i++) {
		s64 r;
		if (i >= n)
			break;
		pos &= FL_MAX_CGROUP - 1;
		data[(off + pos) & DATA_MASK] = '/';
		r = bpf_probe_read_kernel_str(&data[(off + pos + 1) & DATA_MASK], FL_MAX_NAME / 2,
					      w->names[(n - 1 - i) & (MAX_DEPTH - 1)]);
		r -= 1;
		r &= ~(r >> 63);
		pos += 1 + (r & (FL_MAX_NAME / 2 - 1));
	}
	return pos & (FL_MAX_CGROUP - 1);
}

static __always_inline u32 pid_vnr(struct pid *p)
{
	unsigned int level;
	u8 *base;
	int nr = 0;
	if (!p)
		return 0;
	level = BPF_CORE_READ(p, level);
	/* levels run 0..32 (MAX_PID_NS_LEVEL): a mask of 31 would read level 32 as the
	 * host's (numbers[0]) and make a deeply nested process look like a host one */
	if (level > 32)
		level = 32;
	base = (u8 *)p + bpf_core_field_offset(struct pid, numbers) + level * bpf_core_type_size(struct upid);
	bpf_probe_read_kernel(&nr, sizeof(nr), base + bpf_core_field_offset(struct upid, nr));
	return nr;
}

static __always_inline u64 inode_time(struct inode *ino, bool ctime)
{
	struct timespec64 ts = {};
	s64 sec;
	u32 nsec;
	/* Four layouts (kernel.h). Each member is read only behind its own existence
	 * check, so the relocations of the members this kernel lacks are never reached
	 * (tests/core_relocation.rs checks this against every layout). 6.13+ keeps a
	 * multigrain flag in the top bits of i_ctime_nsec, hence the mask. */
	if (ctime) {
		if (bpf_core_field_exists(ino->i_ctime_sec) && bpf_core_field_exists(ino->i_ctime_nsec)) {
			sec = BPF_CORE_READ(ino, i_ctime_sec); /* 6.11+ */
			nsec = BPF_CORE_READ(ino, i_ctime_nsec);
			return (u64)sec * 1000000000ULL + (nsec & 0x3fffffff);
		}
		if (bpf_core_field_exists(((struct inode___timespec *)ino)->__i_ctime))
			ts = BPF_CORE_READ((struct inode___timespec *)ino, __i_ctime);
		else if (bpf_core_field_exists(((struct inode___timespec *)ino)->i_ctime))
			ts = BPF_CORE_READ((struct inode___timespec *)ino, i_ctime);
	} else {
		if (bpf_core_field_exists(ino->i_mtime_sec) && bpf_core_field_exists(ino->i_mtime_nsec)) {
			sec = BPF_CORE_READ(ino, i_mtime_sec);
			nsec = BPF_CORE_READ(ino, i_mtime_nsec);
			return (u64)sec * 1000000000ULL + (nsec & 0x3fffffff);
		}
		if (bpf_core_field_exists(((struct inode___timespec *)ino)->__i_mtime))
			ts = BPF_CORE_READ((struct inode___timespec *)ino, __i_mtime);
		else if (bpf_core_field_exists(((struct inode___timespec *)ino)->i_mtime))
			ts = BPF_CORE_READ((struct inode___timespec *)ino, i_mtime);
	}
	return (u64)ts.tv_sec * 1000000000ULL + ((u64)ts.tv_nsec & 0x3fffffff);
}

static __always_inline struct file *fd_file(struct task_struct *task, s64 fd)
{
	struct file **fds;
	struct file *f = NULL;
	unsigned int max;
	if (fd < 0)
		return NULL;
	if (task_btf()) {
		/* plain loads (a NULL pointer on the way reads 0, so max is 0); the task is
		 * the current one (every caller passes it) */
		struct fdtable *fdt = bpf_get_current_task_btf()->files->fdt;
		max = fdt->max_fds;
		fds = fdt->fd;
	} else {
		struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
		if (!fdt)
			return NULL;
		max = BPF_CORE_READ(fdt, max_fds);
		fds = BPF_CORE_READ(fdt, fd);
	}
	if ((u64)fd >= max)
		return NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd & 0xfffff]);
	return f;
}

#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define AF_INET 2
#define AF_INET6 10
#define SOCK_BINDPORT_LOCK 8 /* include/net/sock.h: bind() set the local port */

static __always_inline void sock_info(struct file *f, struct fl_sock *out)
{
	struct inode *ino;
	struct socket *sock;
	struct sock *sk;
	unsigned short mode;
	if (!f)
		return;
	ino = BPF_CORE_READ(f, f_inode);
	mode = BPF_CORE_READ(ino, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return;
	sock = BPF_CORE_READ(f, private_data);
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return;
	out->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	out->type = BPF_CORE_READ(sk, sk_type);
	out->protocol = BPF_CORE_READ(sk, sk_protocol);
	out->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	out->rport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	out->flags = FL_SOCK_FLAGS_KNOWN;
	if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_userlocks) & SOCK_BINDPORT_LOCK)
		out->flags |= FL_SOCK_BOUND;
	if (out->family == AF_INET) {
		u32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		u32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(out->laddr, &l, 4);
		__builtin_memcpy(out->raddr, &r, 4);
	} else if (out->family == AF_INET6) {
		BPF_CORE_READ_INTO(&out->laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&out->raddr, sk, __sk_common.skc_v6_daddr);
	}
}

/* Read a user sockaddr (AF_INET/AF_INET6/AF_UNIX family only; unix paths not kept). */
static __always_inline void read_sockaddr(const void *uaddr, u64 len, struct fl_addr *out)
{
	u16 family = 0;
	if (!uaddr || len < 2)
		return;
	bpf_probe_read_user(&family, sizeof(family), uaddr);
	out->family = family;
	if (family == AF_INET && len >= 8) {
		u16 port;
		bpf_probe_read_user(&port, 2, (u8 *)uaddr + 2);
		out->port = __builtin_bswap16(port);
		bpf_probe_read_user(out->addr, 4, (u8 *)uaddr + 4);
	} else if (family == AF_INET6 && len >= 24) {
		u16 port;
		bpf_probe_read_user(&port, 2, (u8 *)uaddr + 2);
		out->port = __builtin_bswap16(port);
		bpf_probe_read_user(out->addr, 16, (u8 *)uaddr + 8);
	}
}

/* ---------------------------------------------------------------- process lifecycle */

/* The container runtime's own child: a task in the host's pid namespace whose parent, also
 * there, in the same mount namespace, outside the task's cgroup and running from the host's
 * root, is named runc… (runc create, runc exec). That is `runc init` before it enters the container: runc 1.4's exec
 * starts it right in the container's cgroup (CLONE_INTO_CGROUP), runc create moves it there
 * while it starts, and it execs runc (or a copy) there before it joins any namespace.
 * enforce-kill spares it (judged, it would be killed and the container's start or exec
 * session with it), and the exec event says so (FL_EXE_RUNTIME) for userspace, which keeps
 * it out of profiles and alerts. Judged: a container's own processes (their pid namespace);
 * a hostPID container's, whose parent is in the cgroup, or is runc but in the host's mount
 * namespace while they are in the container's (an exec session's command, CLONE_PARENT of
 * runc exec; an orphan adopted by a subreaping runc run), or a reaper that is not runc. */
static __always_inline bool runtime_child(struct task_struct *task, u64 cgid)
{
	struct task_struct *parent;
	struct mnt_namespace *mnt;
	char comm[4] = {};
	if (BPF_CORE_READ(task, thread_pid, level) != 0)
		return false;
	/* the parent process's main thread: the thread that forked may have exited already
	 * (runc locks its forking thread to set the CPU affinity, and the thread then ends),
	 * its namespaces gone before its children are handed to another thread */
	parent = BPF_CORE_READ(task, real_parent, group_leader);
	if (!parent || BPF_CORE_READ(parent, thread_pid, level) != 0)
		return false;
	mnt = BPF_CORE_READ(task, nsproxy, mnt_ns);
	if (!mnt || BPF_CORE_READ(parent, nsproxy, mnt_ns) != mnt)
		return false;
	if (BPF_CORE_READ(parent, cgroups, dfl_cgrp, kn, id) == cgid)
		return false;
	bpf_core_read(comm, sizeof(comm), &parent->comm);
	if (!(comm[0] == 'r' && comm[1] == 'u' && comm[2] == 'n' && comm[3] == 'c'))
		return false;
	/* and the runtime runs from the host's root (it has not pivoted: that is its child's
	 * work), while a process of a hostPID container that names itself runc and moves its
	 * child to a cgroup of its own has the container's root */
	{
		struct path proot = BPF_CORE_READ(parent, fs, root);
		struct home host;
		if (!proot.mnt || !host_root(task, &host))
			return false;
		return (u64)BPF_CORE_READ(proot.mnt, mnt_sb) == host.sb && (u64)proot.dentry == host.dentry;
	}
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(fl_sched_exec, struct task_struct *p, int old_pid, struct linux_binprm *bprm)
{
	u8 *buf;
	struct fl_exec *e;
	u8 *data;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file *exe;
	struct inode *ino;
	struct super_block *sb;
	unsigned long magic;
	u32 flags = 0, off = 0, len;
	unsigned long arg_start, arg_end;
	struct tty_struct *tty;
	u32 kind = FL_EXEC;

	if (skip_self())
		return 0;
	/* An execveat of a descriptor (fexecve, a memfd's AT_EMPTY_PATH, a path relative to a
	 * directory descriptor): the kernel names the file "/dev/fd/<fd>[/<path>]" in
	 * bprm->fdpath, in every ABI (ia32, x32 too). This needs no program on the syscall's
	 * entry, which would run (as the perf syscall tracepoints are one hook on sys_enter)
	 * on every syscall of the node. execveat(AT_FDCWD, path) — an execve by another
	 * name — and execveat(dirfd, "/absolute/path") read as execve. bprm->fdpath is 5.9+:
	 * before, every exec reads as execve. */
	if (bpf_core_field_exists(bprm->fdpath) && BPF_CORE_READ(bprm, fdpath))
		kind = FL_EXECVEAT;
	buf = scratch_buf();
	if (!buf)
		return 0;
	e = (struct fl_exec *)&buf[HDR_RESERVE - sizeof(struct fl_exec)];
	data = &buf[HDR_RESERVE];
	fill_hdr(&e->h, kind, 0);

	{
		/* 8 bytes at the field, whichever kernel_cap_t layout (kernel.h) */
		const struct cred *cred = BPF_CORE_READ(task, cred);
		bpf_core_read(&e->cap_effective, sizeof(e->cap_effective), &cred->cap_effective);
		bpf_core_read(&e->cap_permitted, sizeof(e->cap_permitted), &cred->cap_permitted);
	}
	e->start_boot_ns = BPF_CORE_READ(task, start_boottime);
	e->loginuid = bpf_core_field_exists(task->loginuid) ? BPF_CORE_READ(task, loginuid.val) : (u32)-1;
	e->vpid = pid_vnr(BPF_CORE_READ(task, thread_pid));
	e->sid = pid_vnr(BPF_CORE_READ(task, signal, pids[PIDTYPE_SID]));
	e->pgid = pid_vnr(BPF_CORE_READ(task, signal, pids[PIDTYPE_PGID]));
	e->cwd_flags = 0;
	e->tty = 0;
	tty = BPF_CORE_READ(task, signal, tty);
	if (tty) {
		int major = BPF_CORE_READ(tty, driver, major);
		int minor = BPF_CORE_READ(tty, driver, minor_start) + BPF_CORE_READ(tty, index);
		/* the kernel's new_encode_dev(), as in /proc/<pid>/stat tty_nr */
		e->tty = (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12);
	}

	/* exepath: mm->exe_file, what /proc/<pid>/exe shows (the interpreter for scripts) */
	exe = BPF_CORE_READ(task, mm, exe_file);
	if (!exe)
		exe = BPF_CORE_READ(bprm, file);
	ino = BPF_CORE_READ(exe, f_inode);
	sb = BPF_CORE_READ(ino, i_sb);
	magic = BPF_CORE_READ(sb, s_magic);
	e->exe_ino = BPF_CORE_READ(ino, i_ino);
	e->exe_mode = BPF_CORE_READ(ino, i_mode);
	e->exe_uid = BPF_CORE_READ(ino, i_uid.val);
	e->exe_gid = BPF_CORE_READ(ino, i_gid.val);
	e->exe_ctime_ns = inode_time(ino, true);
	e->exe_mtime_ns = inode_time(ino, false);
	/* A 32-bit image: the loader set TS_COMPAT for the exec's return (x86_64
	 * __set_personality_ia32; a 64-bit image clears it), and from now on the syscall
	 * tracepoints skip this process's syscalls. Userspace says so. */
	if (current_status() & TS_COMPAT)
		flags |= FL_EXE_IA32;
	if (magic == TMPFS_MAGIC) {
		char name[6] = {};
		bpf_probe_read_kernel(name, sizeof(name), BPF_CORE_READ(exe, f_path.dentry, d_name.name));
		if (name[0] == 'm' && name[1] == 'e' && name[2] == 'm' && name[3] == 'f' && name[4] == 'd' &&
		    name[5] == ':')
			flags |= FL_EXE_MEMFD;
		else
			flags |= FL_EXE_TMPFS;
	} else if (magic == OVERLAYFS_SUPER_MAGIC) {
		/* struct ovl_inode { …; struct inode vfs_inode; struct dentry *__upperdentry; …}:
		 * the upper dentry pointer follows the embedded VFS inode. */
		struct dentry *upper = NULL;
		flags |= FL_EXE_OVERLAY;
		bpf_probe_read_kernel(&upper, sizeof(upper), (u8 *)ino + bpf_core_type_size(struct inode));
		if (upper)
			flags |= FL_EXE_UPPER;
	}

	len = put_file_path(off, exe, &flags);
	e->lens[0] = len;
	off += len;
	{
		/* Relocated: the path is not where the file lives, so an allowed path names
		 * another file. The task's root is not a "/": a directory rather than its mount's
		 * root, or a mount that is not mounted at its parent mount's root (a chroot,
		 * CAP_SYS_CHROOT is granted by default, into a directory or a volume; the
		 * runtime's root, pivoted or moved onto "/" with --no-pivot, and a mount
		 * namespace's own root are); or the exe is reached through another mount of the
		 * root mount's whole filesystem (a bind mount of the container's own files; a
		 * root that is itself a bind mount of a directory is skipped: volumes of the same
		 * host filesystem would look alike); or it lies outside the task's root
		 * (/proc/<pid>/root/..., a descriptor kept from before a chroot). */
		struct path root = current_root();
		struct vfsmount *exe_mnt = BPF_CORE_READ(exe, f_path.mnt);
		struct dentry *root_top = BPF_CORE_READ(root.mnt, mnt_root);
		struct super_block *root_sb = BPF_CORE_READ(root.mnt, mnt_sb);
		struct super_block *exe_sb = BPF_CORE_READ(exe_mnt, mnt_sb);
		struct mount *rm = (struct mount *)((u8 *)root.mnt - bpf_core_field_offset(struct mount, mnt));
		struct mount *rp = BPF_CORE_READ(rm, mnt_parent);
		if (root.mnt && rp != rm &&
		    BPF_CORE_READ(rm, mnt_mountpoint) != BPF_CORE_READ(rp, mnt.mnt_root))
			flags |= FL_EXE_RELOCATED;
		if (flags & FL_PATH_BEYOND_ROOT)
			flags |= FL_EXE_RELOCATED;
		if (root.mnt && root.dentry != root_top)
			flags |= FL_EXE_RELOCATED;
		else if (root.mnt && exe_mnt != root.mnt && exe_sb == root_sb &&
			 root_top == BPF_CORE_READ(root_sb, s_root))
			flags |= FL_EXE_RELOCATED;
		/* the filesystem the file should be on (FL_EXE_OTHER_FS, below): the root's, or
		 * the home's when the task runs from another root than the home that is not the
		 * host's (a volume stacked on "/" and entered with `chroot .` is that root's own
		 * filesystem, not the container's) */
		u64 fs_ref = (u64)root_sb;
		/* the header's cgroup id (fill_hdr: the current task's) */
		if (runtime_child(task, e->h.cgroup_id))
			flags |= FL_EXE_RUNTIME;
		/* another root than the cgroup's home (HOMES), by v2 cgroup; not the v2 root
		 * cgroup (the host's kernel helpers; every task, where v2 has no hierarchy of
		 * its own) */
		if (root.mnt && e->h.cgroup_id > 1 && !(flags & FL_EXE_RUNTIME)) {
			u64 cgid = e->h.cgroup_id;
			struct home here = {.sb = (u64)root_sb, .dentry = (u64)root.dentry}, home, host;
			int found = cgroup_home(task, &home);
			if (found < 0) {
				/* nested deeper than the walk: no home can be told */
				flags |= FL_EXE_RELOCATED;
			} else if (found) {
				/* another root: the host's (a hostPID pod entering the host) is a
				 * layer apart from a neighbour's */
				if (home.sb != here.sb || home.dentry != here.dentry) {
					if (host_root(task, &host) && host.sb == here.sb && host.dentry == here.dentry) {
						flags |= FL_EXE_HOST_ROOT;
					} else {
						flags |= FL_EXE_OTHER_ROOT;
						fs_ref = home.sb;
					}
				}
			} else if (!(flags & FL_EXE_RELOCATED) &&
				   /* the host's root is no container's home: an OCI createContainer
				    * hook runs there, in the cgroup, before the runtime pivots */
				   !(host_root(task, &host) && host.sb == here.sb && host.dentry == here.dentry)) {
				long err = bpf_map_update_elem(&HOMES, &cgid, &here, BPF_NOEXIST);
				if (err == -17 /* EEXIST: another CPU's first exec made it */) {
					struct home *h = bpf_map_lookup_elem(&HOMES, &cgid);
					if (h && (h->sb != here.sb || h->dentry != here.dentry)) {
						flags |= FL_EXE_OTHER_ROOT;
						fs_ref = h->sb;
					}
				} else if (err) {
					stat_inc(kind, FL_STAT_NO_HOME);
				}
			}
		}
		/* where the file lives, continued: another filesystem than the root's (a volume,
		 * a file bound in from the host), when not a tmpfs or a memfd (flagged above) */
		if (root.mnt && (u64)exe_sb != fs_ref && !(flags & (FL_EXE_TMPFS | FL_EXE_MEMFD)))
			flags |= FL_EXE_OTHER_FS;
	}
	if (kill_enabled) {
		u32 none = 0;
		u32 *profile = kill_profile(task, e->h.cgroup_id, &none);
		if (profile && !(flags & FL_EXE_RUNTIME)) {
			/* SipHash-1-3 (kill.rs, path_hash), keyed with 128 random bits per
			 * start, of the path's bytes followed by two bytes of its flags that
			 * tell a detached file (unlinked, memfd) and a parentless one (memfd)
			 * from a linked file of the same bytes, and where the file lives (tmpfs,
			 * memfd, an overlay's upper layer, another filesystem than the root's)
			 * and which root it ran from: a file written in the container and
			 * copied, renamed or bind-mounted onto an image executable's path is not
			 * the image's file. A keyed PRF: without the key a
			 * container can neither compute nor construct a path whose hash equals
			 * an allowed one (an earlier ad-hoc multiply-xor hash had collisions
			 * that held for every seed), and a file named "<allowed> (deleted)" is
			 * not the allowed one unlinked. A truncated path is never allowed. */
			struct kill_key k = {.profile = *profile, ._pad = 0, .hash = 0};
			u32 mlen = len + 2;
			u64 v0 = kill_hash_key0 ^ 0x736f6d6570736575ULL;
			u64 v1 = kill_hash_key1 ^ 0x646f72616e646f6dULL;
			u64 v2 = kill_hash_key0 ^ 0x6c7967656e657261ULL;
			u64 v3 = kill_hash_key1 ^ 0x7465646279746573ULL;
			u64 m;
			/* a relocated exe as bit 64 (FL_EXE_KILLED's, never set here): no profile
			 * entry allows it; one from another root than the cgroup's home as bit 8
			 * (FL_EXE_OVERLAY's, not hashed otherwise), from the host's root there as
			 * bit 16 (FL_PATH_TRUNCATED's: a truncated path is never allowed, below):
			 * an entry allows each as learned */
			data[len & DATA_MASK] =
				(u8)(flags & (FL_PATH_DETACHED | FL_PATH_PSEUDO | FL_EXE_TMPFS | FL_EXE_MEMFD | FL_EXE_UPPER)) |
				((flags & FL_EXE_RELOCATED) ? 64 : 0) | ((flags & FL_EXE_OTHER_ROOT) ? 8 : 0) |
				((flags & FL_EXE_HOST_ROOT) ? 16 : 0);
			/* the second byte: another filesystem than the root's as bit 1 */
			data[(len + 1) & DATA_MASK] = (flags & FL_EXE_OTHER_FS) ? 1 : 0;
			/* zero padding for the last word (argv overwrites it below) */
#pragma unroll
			for (u32 j = 2; j < 10; j++)
				data[(len + j) & DATA_MASK] = 0;
			u32 nw = mlen >> 3;
			for (u32 i = 0; i < FL_KILL_HASH_WORDS; i++) {
				u32 at = i * 8;
				if (i >= nw)
					break;
				/* keep the mask: the verifier bounds the read by it (the
				 * compiler would otherwise turn the index into a pointer
				 * walking past the buffer in the verifier's eyes) */
				asm volatile("" : "+r"(at));
				m = *(u64 *)&data[at & (DATA_MASK & ~7)];
				v3 ^= m;
				SIPROUND(v0, v1, v2, v3);
				v0 ^= m;
			}
			/* the last 0..7 bytes, zero-padded, and the length in the top byte */
			m = *(u64 *)&data[mlen & (DATA_MASK & ~7)] | ((u64)mlen << 56);
			v3 ^= m;
			SIPROUND(v0, v1, v2, v3);
			v0 ^= m;
			v2 ^= 0xff;
			SIPROUND(v0, v1, v2, v3);
			SIPROUND(v0, v1, v2, v3);
			SIPROUND(v0, v1, v2, v3);
			k.hash = v0 ^ v1 ^ v2 ^ v3;
			if ((flags & FL_PATH_TRUNCATED) || !bpf_map_lookup_elem(&KILL_ALLOW, &k)) {
				bpf_send_signal(9 /* SIGKILL */);
				flags |= FL_EXE_KILLED;
			}
		}
	}

	/* argv */
	arg_start = BPF_CORE_READ(task, mm, arg_start);
	arg_end = BPF_CORE_READ(task, mm, arg_end);
	len = 0;
	if (arg_end > arg_start) {
		len = arg_end - arg_start;
		if (len > FL_MAX_ARGS - 1)
			len = FL_MAX_ARGS - 1;
		if (bpf_probe_read_user(&data[off & DATA_MASK], len & (FL_MAX_ARGS - 1), (void *)arg_start) != 0)
			len = 0;
	}
	e->lens[1] = len;
	off = (off + len) & DATA_MASK;

	{
		struct path pwd = BPF_CORE_READ(task, fs, pwd);
		u32 cwd_flags = 0;
		len = put_path(off, pwd.dentry, pwd.mnt, &cwd_flags);
		e->cwd_flags = cwd_flags;
	}
	e->lens[2] = len;
	off = (off + len) & DATA_MASK;

	len = put_cgroup(data, off, task);
	e->lens[3] = len;
	off = (off + len) & DATA_MASK;

	{
		long r = bpf_probe_read_kernel_str(&data[off & DATA_MASK], FL_MAX_PATH, BPF_CORE_READ(bprm, filename));
		len = r > 1 ? r - 1 : 0;
	}
	e->lens[4] = len;
	off = (off + len) & DATA_MASK;
	e->flags = flags;

	if (!emit_scratch(buf, kind, sizeof(struct fl_exec), off) && (flags & FL_EXE_KILLED))
		kill_unreported(e->h.cgroup_id);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(fl_sched_fork, struct task_struct *parent, struct task_struct *child)
{
	int pid = BPF_CORE_READ(child, pid), tgid = BPF_CORE_READ(child, tgid);
	if (pid != tgid)
		return 0; /* a new thread, not a new process */
	if (skip_self())
		return 0;
	RESERVE(struct fl_fork, e, FL_FORK);
	fill_hdr(&e->h, FL_FORK, tgid);
	e->h.size = sizeof(struct fl_fork);
	e->h.pid = tgid;
	e->h.tid = pid;
	e->h.ppid = BPF_CORE_READ(parent, tgid);
	e->start_boot_ns = BPF_CORE_READ(child, start_boottime);
	e->vpid = pid_vnr(BPF_CORE_READ(child, thread_pid));
	SUBMIT(e, FL_FORK);
	return 0;
}

/* The processes whose 32-bit syscall was reported, by tgid: the exec id and start
 * they had, so one is reported once per exec of a process (an exec since, or a reused pid,
 * reports again). LRU: a forgotten process is reported again, never missed. */
struct ia32_seen {
	u32 exec_id;
	u32 _pad;
	u64 start_ns;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, u32);
	__type(value, struct ia32_seen);
} IA32_SEEN SEC(".maps");

/* Syscalls that change the paths of existing dentries end a generation of the verdict cache
 * of opens (see OPEN_VERDICTS). Every caller counts, the agent too. */
static __always_inline int paths_changed(long ret)
{
	u32 zero = 0;
	u64 *g;
	if (ret < 0)
		return 0;
	g = bpf_map_lookup_elem(&VERDICT_GEN, &zero);
	if (g)
		__sync_fetch_and_add(g, 1);
	return 0;
}
/* io_uring's submission of a request (tracepoint io_uring:io_uring_submit_req, before 6.0
 * io_uring_submit_sqe: userspace attaches whichever the kernel has and sets the `opcode`
 * field's offset from its tracefs format, which differs between versions). A rename
 * (IORING_OP_RENAMEAT, 5.11+) is made later by an io-wq worker, where no syscall exit ends a
 * generation, and its completion may not be traced (IOSQE_CQE_SKIP_SUCCESS): the verdict cache
 * of opens turns off, for good, before the rename can run. VERDICT_GEN[2] keeps who did it
 * (tgid | 1 << 32) for userspace to say. Submission is traced for every request, linked ones
 * included, from io_uring_enter and from the SQPOLL thread alike. */
#define IORING_OP_RENAMEAT 35
struct io_uring_rec {
	u8 b[64];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct io_uring_rec);
} IO_URING_REC SEC(".maps");

SEC("tracepoint/io_uring/io_uring_submit_req")
int fl_io_uring_submit(void *ctx)
{
	u32 zero = 0, two = 2;
	u32 at = io_uring_opcode_offset;
	struct io_uring_rec *r = bpf_map_lookup_elem(&IO_URING_REC, &zero);
	u64 *off, *g;
	if (!r || !at)
		return 0;
	/* the whole record's head (the perf buffer behind it is larger): a fixed-size read, then
	 * the byte at the format's offset, masked into the map value */
	if (bpf_probe_read_kernel(r->b, sizeof(r->b), ctx))
		return 0;
	if (r->b[at & 63] != IORING_OP_RENAMEAT)
		return 0;
	off = bpf_map_lookup_elem(&VERDICT_GEN, &two);
	if (off && !*off)
		*off = (bpf_get_current_pid_tgid() >> 32) | (1ULL << 32);
	g = bpf_map_lookup_elem(&VERDICT_GEN, &zero);
	if (g)
		__sync_fetch_and_add(g, 1);
	return 0;
}

/* Report the current 32-bit syscall `id` (its number in the ia32 table, or an x32 number
 * with X32_SYSCALL_BIT), once per process exec; userspace says what it means. */
static __always_inline int report_ia32(long id, long ret)
{
	if (skip_self())
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct ia32_seen now = {
		.exec_id = current_exec_id(),
		.start_ns = BPF_CORE_READ(task, group_leader, start_boottime),
	};
	struct ia32_seen *seen = bpf_map_lookup_elem(&IA32_SEEN, &tgid);
	if (seen && seen->exec_id == now.exec_id && seen->start_ns == now.start_ns)
		return 0;
	/* remembered only once its record has a place: a full ring buffer (counted as a drop)
	 * leaves the next 32-bit syscall of the process to be reported */
	RESERVE(struct fl_ia32, e, FL_IA32_SYSCALL);
	bpf_map_update_elem(&IA32_SEEN, &tgid, &now, BPF_ANY);
	fill_hdr(&e->h, FL_IA32_SYSCALL, ret);
	e->h.size = sizeof(struct fl_ia32);
	e->id = id;
	SUBMIT(e, FL_IA32_SYSCALL);
	return 0;
}

#define X32_SYSCALL_BIT 0x40000000
#define ENOSYS 38

/* At a syscall's exit: a 32-bit one — ia32 (TS_COMPAT: set by the entry code for the call,
 * cleared on the way back to user mode; a 32-bit program's, or a 64-bit one's `int 0x80`) or
 * x32 (the number's X32_SYSCALL_BIT, from a plain 64-bit process) — is reported (the first of
 * each process exec) and handed to the handler of its 64-bit twin, if one is attached
 * (SYSCALL_EXIT_COMPAT: its slot by ABI and number; sc_read reads the arguments as the
 * kernel's entry code passed them). The kernel's syscall tracepoints skip these calls, and
 * their numbers are other tables. 1 when the syscall was one (its handler, if any, has run
 * instead: a tail call does not return). */
static __always_inline int compat_exit(void *ctx, struct pt_regs *regs, long ret)
{
	/* the kernel runs the low 32 bits as an int (do_syscall_64's `int nr`): an x32 number
	 * is one with bit 30 set and bit 31 clear; orig_ax is -1 where no syscall is restarted
	 * (rt_sigreturn), which is nothing of the kind */
	s32 nr = (s32)regs->orig_ax;
	bool x32 = nr >= 0 && (nr & X32_SYSCALL_BIT);
	u32 slot;
	if (!x32 && !(current_status() & TS_COMPAT))
		return 0;
	/* refused as unknown (every x32 call where the kernel runs none): nothing ran (a call
	 * that ran and failed with ENOSYS itself is not reported either: none hooked does) */
	if (ret == -ENOSYS)
		return 1;
	report_ia32(nr, ret);
	slot = x32 ? FL_X32_SLOTS + (u32)(nr & ~X32_SYSCALL_BIT) : (u32)nr;
	if (slot < FL_COMPAT_SLOTS)
		bpf_tail_call(ctx, &SYSCALL_EXIT_COMPAT, slot);
	return 1;
}

/* Every syscall's exit, for 32-bit syscalls only (compat_exit), with the per-syscall
 * tracepoint hooks (the dispatcher, fl_sys_exit, does it itself). */
SEC("tp_btf/sys_exit")
int BPF_PROG(fl_sys_exit_ia32, struct pt_regs *regs, long ret)
{
	compat_exit(ctx, regs, ret);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(fl_sched_exit, struct task_struct *p)
{
	int pid = BPF_CORE_READ(p, pid), tgid = BPF_CORE_READ(p, tgid);
	/* a process's mark, if any, ends with it: with its leader (userspace forgets it at the
	 * exit event), or with its last thread (signal->live is 0 once the group is dead) */
	if (pid == tgid || BPF_CORE_READ(p, signal, live.counter) == 0)
		bpf_map_delete_elem(&RULES_ONLY, &tgid);
	if (pid != tgid)
		return 0; /* a thread: the process lives on */
	if (skip_self())
		return 0;
	RESERVE(struct fl_exit, e, FL_EXIT);
	fill_hdr(&e->h, FL_EXIT, 0);
	e->h.size = sizeof(struct fl_exit);
	e->exit_code = BPF_CORE_READ(p, exit_code);
	SUBMIT(e, FL_EXIT);
	return 0;
}

/* ---------------------------------------------------------------- syscalls */

#define O_ACCMODE 3
#define O_RDONLY 0
#define O_CREAT 0100
#define O_TRUNC 01000

/* A completed syscall: its six arguments (as the kernel's entry code passed them) and its
 * result; `compat`: a 32-bit call whose pointers are to compat structures (ia32, and x32's
 * own numbers from 512: sendmsg's `struct compat_msghdr`). */
struct sc_args {
	u64 args[6];
	s64 ret;
	u32 compat;
};

/* The arguments of the syscall now returning, from the user registers saved at entry, as
 * the kernel's entry code passes them to the syscall (none of the syscalls handled here
 * changes them): x86_64 and x32 di, si, dx, r10, r8, r9; ia32 (TS_COMPAT) ebx, ecx, edx,
 * esi, edi, ebp, each cut to its 32 bits as the ia32 entry does (a 64-bit program's
 * `int 0x80` may leave anything in the upper halves). False for our own process. */
static __always_inline bool sc_read(struct pt_regs *regs, long ret, struct sc_args *a)
{
	s32 nr;
	if (skip_self())
		return false;
	a->ret = ret;
	if (current_status() & TS_COMPAT) {
		/* unwatched, a 32-bit call's number may still pick a 64-bit slot (the dispatcher
		 * indexes by it): ia32 41, dup, is x86_64's socket */
		if (!ia32_handled)
			return false;
		a->args[0] = (u32)regs->bx;
		a->args[1] = (u32)regs->cx;
		a->args[2] = (u32)regs->dx;
		a->args[3] = (u32)regs->si;
		a->args[4] = (u32)regs->di;
		a->args[5] = (u32)regs->bp;
		a->compat = 1;
		return true;
	}
	a->args[0] = regs->di;
	a->args[1] = regs->si;
	a->args[2] = regs->dx;
	a->args[3] = regs->r10;
	a->args[4] = regs->r8;
	a->args[5] = regs->r9;
	nr = (s32)regs->orig_ax;
	a->compat = nr >= 0 && (nr & X32_SYSCALL_BIT) && (nr & ~X32_SYSCALL_BIT) >= 512;
	return true;
}

/* Every syscall's exit passes here: one tail call to its handler, or nothing. A 32-bit
 * syscall's number is another table's: with ia32_dispatch it goes through compat_exit (its
 * own table of handlers). */
SEC("tp_btf/sys_exit")
int BPF_PROG(fl_sys_exit, struct pt_regs *regs, long ret)
{
	if (ia32_dispatch && compat_exit(ctx, regs, ret))
		return 0;
	bpf_tail_call(ctx, &SYSCALL_EXIT, (u32)regs->orig_ax);
	return 0;
}

/* Two hooks per handler; the loader attaches one family (probe/src/lib.rs, SyscallHook):
 * - fl_exit_<name>: a tail-call target of fl_sys_exit (every kernel from 5.8);
 * - fl_tp_exit_<name>: the syscall's own syscalls:sys_exit_<name> tracepoint, which runs
 *   only for that syscall, with the registers from bpf_task_pt_regs (5.15+; never loaded
 *   on older kernels). */
#define EXIT(name, handler, kind)                                           \
	SEC("tp_btf/sys_exit")                                              \
	int BPF_PROG(fl_exit_##name, struct pt_regs *regs, long ret)        \
	{                                                                   \
		struct sc_args a;                                           \
		if (!sc_read(regs, ret, &a))                                \
			return 0;                                           \
		return handler(&a, kind);                                   \
	}                                                                   \
	SEC("tracepoint/syscalls/sys_exit_" #name)                          \
	int fl_tp_exit_##name(struct syscall_exit_ctx *ctx)                 \
	{                                                                   \
		struct sc_args a;                                           \
		struct pt_regs *regs =                                      \
			(struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf()); \
		if (!sc_read(regs, ctx->ret, &a))                           \
			return 0;                                           \
		return handler(&a, kind);                                   \
	}

#define PATHS_CHANGED(name)                                                 \
	SEC("tp_btf/sys_exit")                                              \
	int BPF_PROG(fl_exit_##name, struct pt_regs *regs, long ret)        \
	{                                                                   \
		return paths_changed(ret);                                  \
	}                                                                   \
	SEC("tracepoint/syscalls/sys_exit_" #name)                          \
	int fl_tp_exit_##name(struct syscall_exit_ctx *ctx)                 \
	{                                                                   \
		return paths_changed(ctx->ret);                             \
	}

/* Opens are filtered at exit (exit_open), on the path of the file the kernel
 * opened: a decision on the string the process passed could be evaded
 * (`/etc/./shadow`, `//etc/shadow`, a symlink). */

#define FL_EINPROGRESS 115

/* Who decides a network event when the filter of `bit` (see NET_FILTER) is on and no loaded
 * rule needs (side, proto, port): NET_PROFILE, the profile of the current task's container
 * (its number in *profile); NET_UNPROFILED, nobody (no profile applies to the process,
 * RULES_ONLY: dropped); NET_REPORT otherwise. */
enum { NET_REPORT = 0, NET_PROFILE = 1, NET_UNPROFILED = 2 };
static __always_inline int net_scope(u32 bit, u32 side, u8 proto, u16 port, u32 *profile)
{
	u32 zero = 0, rk, *on, *p;
	u64 cgid;
	on = bpf_map_lookup_elem(&NET_FILTER, &zero);
	if (!on || !(*on & bit))
		return NET_REPORT;
	rk = side | (u32)proto << 16 | port;
	if (bpf_map_lookup_elem(&RULE_PORTS, &rk))
		return NET_REPORT;
	cgid = bpf_get_current_cgroup_id();
	p = bpf_map_lookup_elem(&FILTER_CGROUPS, &cgid);
	if (p) {
		*profile = *p;
		return NET_PROFILE;
	}
	return fl_rules_only() ? NET_UNPROFILED : NET_REPORT;
}

/* Whether the inbound event (an accepted connection, a UDP reply from the server's port) is
 * one the kernel filter drops, as the FL_STAT_* it counts in (0: reported): the profile's
 * inbound dimension (profiler/src/dimension/inbound.rs: the protocol and the local port) on
 * what the event would report, or no profile and no rule. */
static __always_inline u32 inbound_dropped(const struct fl_sock *sock)
{
	u32 profile = 0;
	int scope;
	struct profile_port_key k = {};
	if (sock->family != AF_INET && sock->family != AF_INET6)
		return 0;
	if (sock->protocol != 6 && sock->protocol != 17)
		return 0;
	scope = net_scope(sock->protocol == 6 ? 4 : 8, FL_NET_SERVER, sock->protocol, sock->lport,
			  &profile);
	if (scope == NET_UNPROFILED)
		return FL_STAT_UNPROFILED_FILTERED;
	if (scope != NET_PROFILE)
		return 0;
	k.profile = profile;
	k.proto = sock->protocol;
	k.port = sock->lport;
	return bpf_map_lookup_elem(&PROFILE_INBOUND, &k) ? FL_STAT_PROFILE_FILTERED : 0;
}

/* Whether the event of a connect/sendto/sendmsg is one the kernel filter drops (see
 * NET_FILTER): the same decision as the profile's userspace matcher (profiler/src/matcher.rs:
 * a client's outbound behaviour, `(fd.l4proto, fd.sport)` and the peer `fd.sip`; a UDP send
 * from the server's end is inbound), on what the event would report. Anything it is not sure
 * of is reported: another protocol or family, an IPv4-mapped peer. */
static __always_inline u32 net_dropped(u32 kind, s64 ret, const struct fl_addr *addr,
				       const struct fl_sock *sock)
{
	u32 profile = 0;
	int scope;
	u8 proto;
	struct profile_net_key k = {};
	if (ret < 0 && !(kind == FL_CONNECT && ret == -FL_EINPROGRESS))
		return 0;
	if ((addr->family != AF_INET && addr->family != AF_INET6) || sock->family != addr->family)
		return 0;
	if (sock->protocol != 6 && sock->protocol != 17)
		return 0;
	proto = sock->protocol;
	if (kind != FL_CONNECT) {
		/* sends matter on UDP sockets; a datagram sent from the port the process bound, or
		 * from the port it sends to, is a server's reply (the profile's inbound dimension) */
		if (proto != 17 || !(sock->flags & FL_SOCK_FLAGS_KNOWN))
			return 0;
		if ((sock->flags & FL_SOCK_BOUND) || sock->lport == addr->port)
			return inbound_dropped(sock);
	}
	/* ::ffff:a.b.c.d: userspace may render it as IPv4 */
	if (addr->family == AF_INET6) {
		u64 hi;
		u32 mid;
		__builtin_memcpy(&hi, addr->addr, 8);
		__builtin_memcpy(&mid, addr->addr + 8, 4);
		if (hi == 0 && mid == 0xffff0000)
			return 0;
	}
	scope = net_scope(proto == 6 ? 1 : 2, 0, proto, addr->port, &profile);
	if (scope == NET_UNPROFILED)
		return FL_STAT_UNPROFILED_FILTERED;
	if (scope != NET_PROFILE)
		return 0;
	k.prefixlen = 64 + 128;
	k.profile = profile;
	k.proto = proto;
	k.family = addr->family == AF_INET ? 4 : 6;
	k.port = addr->port;
	__builtin_memcpy(k.addr, addr->addr, 16);
	return bpf_map_lookup_elem(&PROFILE_OUTBOUND, &k) ? FL_STAT_PROFILE_FILTERED : 0;
}

static __always_inline int exit_net(const struct sc_args *a, u32 kind)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fl_net *e;
	struct fl_addr addr = {};
	struct fl_sock sock = {};
	const void *name = NULL;
	u32 namelen = 0, dropped;
	/* sendto/sendmsg matter only on unconnected sockets (a destination is passed) */
	if (kind == FL_CONNECT) {
		name = (const void *)a->args[1];
		namelen = a->args[2];
	} else if (kind == FL_SENDTO) {
		name = (const void *)a->args[4];
		namelen = a->args[5];
		if (!name)
			return 0;
	} else if (a->compat) {
		/* struct compat_msghdr: a 32-bit msg_name, then msg_namelen */
		const u8 *msg = (const u8 *)a->args[1];
		u32 name32 = 0;
		if (!msg || bpf_probe_read_user(&name32, sizeof(name32), msg) != 0 || !name32)
			return 0;
		name = (const void *)(u64)name32;
		bpf_probe_read_user(&namelen, sizeof(namelen), msg + 4);
	} else {
		const u8 *msg = (const u8 *)a->args[1];
		if (!msg || bpf_probe_read_user(&name, sizeof(name), msg) != 0 || !name)
			return 0;
		bpf_probe_read_user(&namelen, sizeof(namelen), msg + 8);
	}
	read_sockaddr(name, namelen, &addr);
	/* an int, as the kernel takes it (the upper half of the register is ignored) */
	sock_info(fd_file(task, (s32)a->args[0]), &sock);
	/* a connection made (a connect, or a TCP send that connects: MSG_FASTOPEN): its peer is
	 * the socket's, what the kernel connected to (as Falco reads it: connecting to 0.0.0.0
	 * reaches 127.0.0.1), not the sockaddr read back from user memory, which another
	 * thread of the caller may have rewritten since the kernel copied it (to pass for a
	 * peer the profile allows); an unconnected UDP send has no peer but the one passed */
	if ((kind == FL_CONNECT ? a->ret == 0 || a->ret == -FL_EINPROGRESS
				: a->ret >= 0 && sock.protocol == 6) &&
	    sock.rport && (sock.family == AF_INET || sock.family == AF_INET6)) {
		addr.family = sock.family;
		addr.port = sock.rport;
		__builtin_memcpy(addr.addr, sock.raddr, 16);
	}
	dropped = net_dropped(kind, a->ret, &addr, &sock);
	if (dropped) {
		stat_inc(kind, dropped);
		return 0;
	}
	e = bpf_ringbuf_reserve(&EVENTS, sizeof(struct fl_net), 0);
	if (!e) {
		stat_inc(kind, FL_STAT_DROPPED);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	fill_hdr(&e->h, kind, a->ret);
	e->h.size = sizeof(struct fl_net);
	e->fd = (s32)a->args[0];
	if (kind == FL_SENDTO)
		e->size = a->args[2];
	e->addr = addr;
	e->sock = sock;
	bpf_ringbuf_submit(e, rb_flags());
	stat_inc(kind, FL_STAT_EMITTED);
	return 0;
}


/* accept/accept4 (issue 9 §6, inbound traffic): one record per accepted connection, the accepted
 * socket's endpoints (lport = the port the server listens on, raddr/rport = the client), and
 * FL_SOCK_BOUND as the listening socket has it (the kernel does not copy SOCK_BINDPORT_LOCK into
 * the accepted socket). Failed accepts (EAGAIN of a non-blocking listener, the common case) are
 * not reported. Self-contained: `args` are the syscall's arguments (fd = the listener,
 * upeer_sockaddr, upeer_addrlen[, flags]), `ret` its result; any hook that has both can call it. */
static __always_inline void emit_accept(u32 kind, const u64 *args, s64 ret)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fl_sock listener = {};
	struct fl_net *e;
	struct fl_sock sock = {};
	u32 dropped;
	if (ret < 0)
		return;
	sock_info(fd_file(task, ret), &sock);
	dropped = inbound_dropped(&sock);
	if (dropped) {
		stat_inc(kind, dropped);
		return;
	}
	sock_info(fd_file(task, (s32)args[0]), &listener);
	sock.flags = (sock.flags & ~FL_SOCK_BOUND) | (listener.flags & FL_SOCK_BOUND);
	e = bpf_ringbuf_reserve(&EVENTS, sizeof(struct fl_net), 0);
	if (!e) {
		stat_inc(kind, FL_STAT_DROPPED);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	fill_hdr(&e->h, kind, ret);
	e->h.size = sizeof(struct fl_net);
	e->fd = ret;
	e->sock = sock;
	bpf_ringbuf_submit(e, rb_flags());
	stat_inc(kind, FL_STAT_EMITTED);
}

static __always_inline int exit_accept(const struct sc_args *a, u32 kind)
{
	emit_accept(kind, a->args, a->ret);
	return 0;
}


static __always_inline int exit_open(const struct sc_args *a, u32 kind)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	u8 *buf, *data;
	struct fl_open *e;
	const char *upath;
	u32 flags, mode, len, off = 0, pflags = 0, resolved = 0, zero = 0;
	struct file *opened = NULL;
	struct read_filter *rf;
	struct verdict_ctx vc = {};
	struct walk *w;
	bool readonly, cached = false;
	s64 dirfd;
	long r;
	switch (kind) {
	case FL_OPEN:
		upath = (const char *)a->args[0];
		flags = a->args[1];
		mode = a->args[2];
		dirfd = -100;
		break;
	case FL_CREAT:
		upath = (const char *)a->args[0];
		flags = 01 | O_CREAT | O_TRUNC;
		mode = a->args[1];
		dirfd = -100;
		break;
	case FL_OPENAT2: {
		/* struct open_how { u64 flags; u64 mode; u64 resolve; } */
		u64 how[2] = {};
		bpf_probe_read_user(how, sizeof(how), (const void *)a->args[2]);
		upath = (const char *)a->args[1];
		flags = how[0];
		mode = how[1];
		dirfd = (s32)a->args[0];
		break;
	}
	default:
		upath = (const char *)a->args[1];
		flags = a->args[2];
		mode = a->args[3];
		dirfd = (s32)a->args[0];
	}
	buf = scratch_buf();
	w = bpf_map_lookup_elem(&WALK, &zero);
	if (!buf || !w)
		return 0;
	w->write_scope = 0;
	e = (struct fl_open *)&buf[HDR_RESERVE - sizeof(struct fl_open)];
	data = &buf[HDR_RESERVE];
	if (a->ret >= 0)
		opened = fd_file(task, a->ret);
	readonly = (flags & O_ACCMODE) == O_RDONLY && !(flags & (O_CREAT | O_TRUNC));
	if (kind == FL_OPENAT2) {
		/* open_how is read back from the caller's memory at exit, after the kernel used
		 * its own copy: another thread may have rewritten it since. The access mode
		 * reported is the opened file's (f_flags), and no openat2 is dropped as
		 * read-only (O_TRUNC, used and cleared by the open, leaves no trace on the file) */
		if (opened)
			flags = (flags & ~(u64)O_ACCMODE) | (BPF_CORE_READ(opened, f_flags) & O_ACCMODE);
		readonly = false;
	}
	rf = readonly ? bpf_map_lookup_elem(&READ_FILTER, &zero) : bpf_map_lookup_elem(&WRITE_FILTER, &zero);
	if (opened && rf && rf->on) {
		/* a write is cached only under a profile, or for a process no profile applies to
		 * (profile 0: no rule can match it); else it is reported */
		u32 *profile = NULL;
		bool unprofiled = false;
		if (!readonly) {
			u64 cgid = bpf_get_current_cgroup_id();
			profile = bpf_map_lookup_elem(&FILTER_CGROUPS, &cgid);
			if (!profile)
				unprofiled = fl_rules_only();
			/* kept in map memory (not a state the verifier tells apart) for the
			 * decision below: without either, the write-open is reported whatever
			 * the rules' prefixes and names say */
			w->write_scope = profile || unprofiled;
		}
		if ((readonly || profile || unprofiled) &&
		    verdict_prepare(task, opened, profile ? *profile : 0, !readonly, &vc)) {
			cached = true;
			if (verdict_hit(&vc)) {
				bool drop = true;
				if (rf->noncanonical) {
					r = bpf_probe_read_user_str(data, FL_MAX_PATH, upath);
					drop = canonical_path(data, r > 1 ? r - 1 : 0);
				}
				if (drop) {
					stat_inc(kind, readonly ? FL_STAT_FILTERED
							: profile ? FL_STAT_PROFILE_FILTERED
								  : FL_STAT_UNPROFILED_FILTERED);
					return 0;
				}
			}
		}
	}
	r = bpf_probe_read_user_str(data, FL_MAX_PATH, upath);
	len = r > 1 ? r - 1 : 0;
	/* the header and the inode are filled only once the open is reported (below) */
	e->ino = 0;
	e->dev_magic = 0;
	e->lens[0] = len;
	e->lens[1] = 0;
	e->path_flags = 0;
	e->_pad = 0;
	off = len;
	if (opened) {
		u32 rlen;
		/* what the kernel opened: symlinks, `..`, `//`, relative and
		 * /proc/self/fd/N paths resolved; fd.name comes from here */
		off = (off + 1) & DATA_MASK; /* after the passed path and its NUL */
		rlen = put_file_path(off, opened, &pflags);
		e->lens[1] = rlen;
		e->path_flags = pflags;
		resolved = off;
		off = off + rlen;
	}
	if (rf && rf->on) {
		struct prefix_key k = {.prefixlen = 64 * 8};
		bool canonical = canonical_path(data, len);
		bool decide;
		if (e->lens[1]) {
			/* opened: decided on the resolved path; a truncated one, a pseudo
			 * file's (rendered without its leading `/`: the rules' literals for
			 * it are not the bytes here), or a non-canonical passed path when a
			 * rule looks at that, is reported */
			decide = !(pflags & (FL_PATH_TRUNCATED | FL_PATH_PSEUDO)) &&
				 (canonical || !rf->noncanonical);
			if (decide)
				bpf_probe_read_kernel(k.data, sizeof(k.data), &data[resolved & DATA_MASK]);
		} else {
			/* failed, so nothing was read: the string decides, but only when it
			 * is canonical */
			decide = canonical;
			if (decide)
				bpf_probe_read_kernel(k.data, sizeof(k.data), data);
		}
		if (readonly) {
			if (decide && !bpf_map_lookup_elem(&OPEN_PREFIXES, &k) &&
			    /* a failed open has no file: its name is not looked at */
			    !((rf->names || rf->suffix_lens) &&
			      (!opened || fl_leaf_named(1, rf->names, rf->suffix_lens)))) {
				if (cached && e->lens[1])
					verdict_store(&vc);
				stat_inc(kind, FL_STAT_FILTERED);
				return 0;
			}
		} else if (decide && opened && !pflags && w->write_scope && !bpf_map_lookup_elem(&WRITE_PREFIXES, &k) &&
			   !((rf->names || rf->suffix_lens) &&
			     fl_leaf_named(2, rf->names, rf->suffix_lens))) {
			/* no loaded rule can match this write-open: it is dropped when no profile
			 * applies to the process, or the container's profile allows it (an opened
			 * file, reported whole) */
			u64 cgid = bpf_get_current_cgroup_id();
			u32 *profile = bpf_map_lookup_elem(&FILTER_CGROUPS, &cgid);
			struct profile_path_key *pk = bpf_map_lookup_elem(&PROFILE_KEY, &zero);
			if (!profile && fl_rules_only()) {
				if (cached && vc.k.profile == 0)
					verdict_store(&vc);
				stat_inc(kind, FL_STAT_UNPROFILED_FILTERED);
				return 0;
			}
			if (profile && pk) {
				pk->prefixlen = (4 + FL_PROFILE_PATH) * 8;
				pk->profile = *profile;
				bpf_probe_read_kernel(pk->data, sizeof(pk->data), &data[resolved & DATA_MASK]);
				if (bpf_map_lookup_elem(&PROFILE_WRITES, pk)) {
					if (cached && vc.k.profile == *profile)
						verdict_store(&vc);
					stat_inc(kind, FL_STAT_PROFILE_FILTERED);
					return 0;
				}
			}
		}
	}
	fill_hdr(&e->h, kind, a->ret);
	e->dirfd = dirfd;
	e->flags = flags;
	e->mode = mode;
	if (opened) {
		struct inode *ino = BPF_CORE_READ(opened, f_inode);
		e->ino = BPF_CORE_READ(ino, i_ino);
		e->dev_magic = BPF_CORE_READ(ino, i_sb, s_magic);
	}
	emit_scratch(buf, kind, sizeof(struct fl_open), off);
	return 0;
}


static __always_inline int exit_socket(const struct sc_args *a, u32 kind)
{
	u32 zero = 0, domain = a->args[0];
	/* the family the socket has, not the one asked for: socket(AF_INET, SOCK_PACKET) is a
	 * packet socket (PF_PACKET: __sock_create's one rewrite); the type and protocol are
	 * reported as passed. A 32-bit call's family is read from the new socket itself
	 * (socketcall's array, read back at exit, may have been rewritten since); a 64-bit
	 * one's comes from a register, so the rewrite is applied without reading anything. */
	if (a->compat && a->ret >= 0) {
		struct fl_sock sock = {};
		sock_info(fd_file((struct task_struct *)bpf_get_current_task(), a->ret), &sock);
		if (sock.family)
			domain = sock.family;
	} else if (domain == AF_INET && (a->args[1] & 0xf) == 10 /* SOCK_PACKET */) {
		domain = 17; /* AF_PACKET */
	}
	u64 *drop = bpf_map_lookup_elem(&SOCKET_DROP, &zero);
	if (drop && a->ret >= 0 && domain < 64 && ((*drop >> domain) & 1)) {
		stat_inc(kind, FL_STAT_FILTERED);
		return 0;
	}
	RESERVE(struct fl_socket, e, kind);
	fill_hdr(&e->h, kind, a->ret);
	e->h.size = sizeof(struct fl_socket);
	e->domain = domain;
	e->type = a->args[1];
	e->protocol = a->args[2];
	SUBMIT(e, kind);
	return 0;
}

/* What a duplicated descriptor is, for DUP_DROP: 0 not a socket, 1 AF_UNIX, 2 AF_INET,
 * 3 AF_INET6, 4 AF_NETLINK, 5 AF_PACKET, 6 another family (filter.rs: DUP_CLASSES). */
static __always_inline u32 fl_dup_class(u16 family)
{
	switch (family) {
	case 0:
		return 0;
	case 1:
		return 1;
	case AF_INET:
		return 2;
	case AF_INET6:
		return 3;
	case 16:
		return 4;
	case 17:
		return 5;
	default:
		return 6;
	}
}

static __always_inline int exit_dup(const struct sc_args *a, u32 kind)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	u64 args[3];
	struct fl_sock sock = {};
	s64 ret = a->ret;
	args[0] = a->args[0];
	args[1] = a->args[1];
	args[2] = a->args[2];
	if (ret >= 0)
		sock_info(fd_file(task, ret), &sock);
	if (ret >= 0 && ret < 64) {
		u32 k = kind == FL_DUP ? 0 : kind == FL_DUP2 ? 1 : 2;
		u32 idx = k * 8 + fl_dup_class(sock.family);
		u64 *drop = bpf_map_lookup_elem(&DUP_DROP, &idx);
		if (drop && ((*drop >> ret) & 1)) {
			stat_inc(kind, FL_STAT_FILTERED);
			return 0;
		}
	}
	RESERVE(struct fl_dup, e, kind);
	fill_hdr(&e->h, kind, ret);
	e->h.size = sizeof(struct fl_dup);
	e->oldfd = (s32)args[0];
	e->newfd = kind == FL_DUP ? ret : (s64)(s32)args[1];
	e->flags = kind == FL_DUP3 ? args[2] : 0;
	e->sock = sock;
	SUBMIT(e, kind);
	return 0;
}


static __always_inline int exit_link(const struct sc_args *a, u32 kind)
{
	u8 *buf, *data;
	struct fl_link *e;
	const char *p1, *p2;
	s64 d1 = -100, d2 = -100;
	u32 flags = 0, off;
	long r;
	switch (kind) {
	case FL_SYMLINK:
	case FL_LINK:
		p1 = (const char *)a->args[0];
		p2 = (const char *)a->args[1];
		break;
	case FL_SYMLINKAT:
		p1 = (const char *)a->args[0];
		d2 = (s32)a->args[1];
		p2 = (const char *)a->args[2];
		break;
	default: /* linkat */
		d1 = (s32)a->args[0];
		p1 = (const char *)a->args[1];
		d2 = (s32)a->args[2];
		p2 = (const char *)a->args[3];
		flags = a->args[4];
	}
	buf = scratch_buf();
	if (!buf)
		return 0;
	e = (struct fl_link *)&buf[HDR_RESERVE - sizeof(struct fl_link)];
	data = &buf[HDR_RESERVE];
	fill_hdr(&e->h, kind, a->ret);
	e->olddirfd = d1;
	e->newdirfd = d2;
	e->flags = flags;
	r = bpf_probe_read_user_str(data, FL_MAX_PATH, p1);
	e->lens[0] = r > 1 ? r - 1 : 0;
	off = e->lens[0] & (FL_MAX_PATH - 1);
	r = bpf_probe_read_user_str(&data[off], FL_MAX_PATH, p2);
	e->lens[1] = r > 1 ? r - 1 : 0;
	off += e->lens[1] & (FL_MAX_PATH - 1);
	emit_scratch(buf, kind, sizeof(struct fl_link), off);
	return 0;
}


static __always_inline int exit_ptrace(const struct sc_args *a, u32 kind)
{
	RESERVE(struct fl_ptrace, e, kind);
	fill_hdr(&e->h, kind, a->ret);
	e->h.size = sizeof(struct fl_ptrace);
	e->request = a->args[0];
	e->target_pid = a->args[1];
	SUBMIT(e, kind);
	return 0;
}

static __always_inline int exit_module(const struct sc_args *a, u32 kind)
{
	u8 *buf, *data;
	struct fl_module *e;
	const char *uargs;
	long r;
	s64 lf;
	u32 flags = 0;
	if (kind == FL_INIT_MODULE) {
		lf = a->args[1];
		uargs = (const char *)a->args[2];
	} else {
		lf = (s32)a->args[0];
		uargs = (const char *)a->args[1];
		flags = a->args[2];
	}
	buf = scratch_buf();
	if (!buf)
		return 0;
	e = (struct fl_module *)&buf[HDR_RESERVE - sizeof(struct fl_module)];
	data = &buf[HDR_RESERVE];
	fill_hdr(&e->h, kind, a->ret);
	e->len_or_fd = lf;
	e->flags = flags;
	r = bpf_probe_read_user_str(data, FL_MAX_NAME, uargs);
	e->lens[0] = r > 1 ? r - 1 : 0;
	e->_pad = 0;
	emit_scratch(buf, kind, sizeof(struct fl_module), e->lens[0]);
	return 0;
}

/* ia32 socketcall (102): the socket calls of 32-bit programs multiplexed through one
 * number (the only way before Linux 4.3 gave them their own; accept has no other). The call
 * is in ebx, its arguments an array of 32-bit words at ecx; each call goes to its 64-bit
 * twin's handler when that kind is attached (KINDS_ATTACHED), with compat structures
 * (sendmsg's msghdr). The kernel copied the array at entry: read again here, it may have
 * been unmapped or rewritten since by another thread of the caller. Unreadable (counted in
 * FL_STAT_LOST_ARGS), a socket, connect or accept that ran is still reported, without what
 * the array said (fd -1; a connect without its address); a sendto or sendmsg is not (its
 * destination was in the array). A new socket's family is the socket's, as in every ABI. */
#define SYS_SOCKET 1
#define SYS_CONNECT 3
#define SYS_ACCEPT 5
#define SYS_SENDTO 11
#define SYS_SENDMSG 16
#define SYS_ACCEPT4 18
SEC("tp_btf/sys_exit")
int BPF_PROG(fl_exit_socketcall, struct pt_regs *regs, long ret)
{
	u32 words[6] = {}, kind, n, *on;
	struct sc_args a = {};
	if (skip_self())
		return 0;
	switch ((u32)regs->bx) {
	case SYS_SOCKET:
		kind = FL_SOCKET, n = 3;
		break;
	case SYS_CONNECT:
		kind = FL_CONNECT, n = 3;
		break;
	case SYS_ACCEPT:
		kind = FL_ACCEPT, n = 3;
		break;
	case SYS_SENDTO:
		kind = FL_SENDTO, n = 6;
		break;
	case SYS_SENDMSG:
		kind = FL_SENDMSG, n = 3;
		break;
	case SYS_ACCEPT4:
		kind = FL_ACCEPT4, n = 4;
		break;
	default:
		return 0;
	}
	on = bpf_map_lookup_elem(&KINDS_ATTACHED, &kind);
	if (!on || !*on)
		return 0;
	if (bpf_probe_read_user(words, n * sizeof(u32), (const void *)(u64)(u32)regs->cx) != 0) {
		/* EFAULT: the kernel could not read them either, nothing ran */
		if (ret == -14)
			return 0;
		stat_inc(kind, FL_STAT_LOST_ARGS);
		__builtin_memset(words, 0, sizeof(words));
		words[0] = (u32)-1;
	}
	for (int i = 0; i < 6; i++)
		a.args[i] = words[i];
	a.ret = ret;
	a.compat = 1;
	if (kind == FL_SOCKET)
		return exit_socket(&a, kind); /* its family from the new socket */
	if (kind == FL_ACCEPT || kind == FL_ACCEPT4)
		return exit_accept(&a, kind);
	return exit_net(&a, kind);
}

/* Every syscall hook: one EXIT(syscall, handler, kind) per syscall a kind hooks and one
 * PATHS_CHANGED(syscall) per path-changing syscall, generated by probe/build.rs from the
 * table of event kinds (probe/common/src/kind_table.rs). */
#include "fl_hooks.h"
