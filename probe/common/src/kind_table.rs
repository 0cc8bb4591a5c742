// THE table of event kinds: the one place an event kind is declared.
//
// Included twice, by `kinds.rs` (this crate: `Kind`, its ids, names, records and hooks)
// and by `probe/build.rs` (the C side: `enum fl_kind` in the generated `fl_kinds.h`, and the
// `EXIT(...)`/`PATHS_CHANGED(...)` hook programs in the generated `fl_hooks.h`). Other
// crates expand it with their own macro through `falco_learn_probe_common::kinds!`
// (`falco-learn-event`: the `EventType` each kind yields). Plain data, no `//!` (it is
// `include!`d).
//
// A row:
//   Variant = id, C_ENUMERATOR, EventType "evt.type", record R,
//       sched [program = tp_btf tracepoint, …],
//       exit [syscall = x86_64 nr, ia32 [ia32 nr, …], x32 x32 nr => C handler, …];
// - id: the record's `fl_hdr.kind`, never reused: a kind removed moves to `retired`;
// - EventType "evt.type": the Falco event type the records become (`Kind::name`, the
//   `kind` label of every per-kind metric);
// - record R: the ABI struct (`Record`) the kernel writes, which picks the decoder;
// - sched: the BTF tracepoints (`tp_btf/<tp>`: the scheduler's, and `sys_exit` for 32-bit
//   syscalls) whose program emits the kind;
// - exit: the syscalls hooked for the kind (`fl_exit_<name>` in the `sys_exit` dispatcher's
//   slot `nr`, `fl_tp_exit_<name>` on `syscalls:sys_exit_<name>`), each calling its C
//   handler with the kind. The same handler program also takes the syscall's 32-bit
//   twins, which the kernel's syscall tracepoints never report: its ia32 numbers (the
//   `int 0x80` table: none for accept, which ia32 reaches through socketcall only) and its
//   x32 number (the 64-bit one, or x32's own where the call takes compat structures), in
//   the slots of the compat dispatcher (`SYSCALL_EXIT_COMPAT`, `COMPAT_SLOTS`).
// `paths_changed`: syscalls hooked for the verdict cache of opens, with no kind of their own
// (with their 32-bit twins, as `exit`'s).
// No syscall has an enter program: `syscalls:sys_enter_<name>` (a perf tracepoint) is one
// hook on the raw `sys_enter` for all of them, which every syscall of the node would pay.
#[macro_export]
macro_rules! kinds {
    ($callback:ident) => {
        $callback! {
            kinds {
                Exec = 1, FL_EXEC, Execve "execve", record Exec,
                    sched [fl_sched_exec = sched_process_exec], exit [];
                /// Fork records become `clone` events (one name for both in metrics).
                Fork = 2, FL_FORK, Clone "clone", record Fork,
                    sched [fl_sched_fork = sched_process_fork], exit [];
                Exit = 3, FL_EXIT, Procexit "procexit", record Exit,
                    sched [fl_sched_exit = sched_process_exit], exit [];
                Connect = 4, FL_CONNECT, Connect "connect", record Net,
                    sched [], exit [connect = 42, ia32 [362], x32 42 => exit_net];
                Sendto = 5, FL_SENDTO, Sendto "sendto", record Net,
                    sched [], exit [sendto = 44, ia32 [369], x32 44 => exit_net];
                Sendmsg = 6, FL_SENDMSG, Sendmsg "sendmsg", record Net,
                    sched [], exit [sendmsg = 46, ia32 [370], x32 518 => exit_net];
                Open = 7, FL_OPEN, Open "open", record Open,
                    sched [], exit [open = 2, ia32 [5], x32 2 => exit_open];
                Openat = 8, FL_OPENAT, Openat "openat", record Open,
                    sched [], exit [openat = 257, ia32 [295], x32 257 => exit_open];
                Openat2 = 9, FL_OPENAT2, Openat2 "openat2", record Open,
                    sched [], exit [openat2 = 437, ia32 [437], x32 437 => exit_open];
                Creat = 10, FL_CREAT, Creat "creat", record Open,
                    sched [], exit [creat = 85, ia32 [8], x32 85 => exit_open];
                Socket = 11, FL_SOCKET, Socket "socket", record Socket,
                    sched [], exit [socket = 41, ia32 [359], x32 41 => exit_socket];
                Dup = 12, FL_DUP, Dup "dup", record Dup,
                    sched [], exit [dup = 32, ia32 [41], x32 32 => exit_dup];
                Dup2 = 13, FL_DUP2, Dup2 "dup2", record Dup,
                    sched [], exit [dup2 = 33, ia32 [63], x32 33 => exit_dup];
                Dup3 = 14, FL_DUP3, Dup3 "dup3", record Dup,
                    sched [], exit [dup3 = 292, ia32 [330], x32 292 => exit_dup];
                Symlink = 15, FL_SYMLINK, Symlink "symlink", record Link,
                    sched [], exit [symlink = 88, ia32 [83], x32 88 => exit_link];
                Symlinkat = 16, FL_SYMLINKAT, Symlinkat "symlinkat", record Link,
                    sched [], exit [symlinkat = 266, ia32 [304], x32 266 => exit_link];
                Link = 17, FL_LINK, Link "link", record Link,
                    sched [], exit [link = 86, ia32 [9], x32 86 => exit_link];
                Linkat = 18, FL_LINKAT, Linkat "linkat", record Link,
                    sched [], exit [linkat = 265, ia32 [303], x32 265 => exit_link];
                Ptrace = 19, FL_PTRACE, Ptrace "ptrace", record Ptrace,
                    sched [], exit [ptrace = 101, ia32 [26], x32 521 => exit_ptrace];
                InitModule = 20, FL_INIT_MODULE, InitModule "init_module", record Module,
                    sched [], exit [init_module = 175, ia32 [128], x32 175 => exit_module];
                FinitModule = 21, FL_FINIT_MODULE, FinitModule "finit_module", record Module,
                    sched [], exit [finit_module = 313, ia32 [350], x32 313 => exit_module];
                /// The exec record of an `execveat` of a descriptor (sched_process_exec: the
                /// kernel's `bprm->fdpath`, 5.9+, in every ABI; an absolute path is an
                /// `execve`). No syscall hook: a program on execveat's entry would run on
                /// every syscall.
                Execveat = 22, FL_EXECVEAT, Execveat "execveat", record Exec,
                    sched [fl_sched_exec = sched_process_exec], exit [];
                /// accept/accept4: the accepted socket in a `Net` record (issue 9 §6).
                Accept = 23, FL_ACCEPT, Accept "accept", record Net,
                    sched [], exit [accept = 43, ia32 [], x32 43 => exit_accept];
                Accept4 = 24, FL_ACCEPT4, Accept4 "accept4", record Net,
                    sched [], exit [accept4 = 288, ia32 [364], x32 288 => exit_accept];
                /// A 32-bit (ia32) syscall, which no syscall tracepoint reports: a 32-bit
                /// program's, or a 64-bit program's `int 0x80`. One record per process exec
                /// (falco-learn's own event type, not Falco's).
                Ia32Syscall = 25, FL_IA32_SYSCALL, Ia32Syscall "ia32_syscall", record Ia32,
                    sched [fl_sys_exit_ia32 = sys_exit], exit [];
            }
            // Ids of removed kinds, with the name they had: never given to another kind.
            retired {}
            // Size of the per-kind counter table (`FL_KIND_MAX`): every id is below it.
            kind_max 32;
            // The compat dispatcher's program array (`SYSCALL_EXIT_COMPAT`) holds ia32 numbers as
            // they are and x32 numbers (bit 30 cleared) from this slot; twice this is its size.
            x32_slots 1024;
            paths_changed [
                rename = 82, ia32 [38], x32 82,
                renameat = 264, ia32 [302], x32 264,
                renameat2 = 316, ia32 [353], x32 316,
                mount = 165, ia32 [21], x32 165,
                umount2 = 166, ia32 [52, 22], x32 166,
                move_mount = 429, ia32 [429], x32 429,
                pivot_root = 155, ia32 [217], x32 155,
            ];
        }
    };
}
