//! The falco-learn eBPF probe, userspace half.
//!
//! [`Probe::start`] checks the machine (root / CAP_BPF, BTF, kernel version,
//! tracefs), loads the CO-RE object compiled from `probe/ebpf/src/probe.bpf.c`
//! (embedded at build time), attaches its BTF tracepoints and syscall
//! tracepoints, and returns [`reader::Events`], which reads the ring buffer on
//! the consumer's own thread (no reader thread, no queue): it decodes every
//! record ([`decode`]), keeps the process table ([`proctable`]) and attributes
//! events to containers ([`container`]), handing out enriched
//! [`falco_learn_event::Event`]s. Container metadata (name, image, digest, pod)
//! comes from the runtimes ([`runtime`]), looked up on a background thread and
//! cached: reading never waits on a runtime.
//!
//! Nothing is lost silently: kernel drops (the ring buffer full while the
//! consumer is behind) are counted per kind in a BPF map
//! ([`Probe::kernel_stats`]); malformed records are counted in [`ProbeCounters`].

mod cgroup_map;
pub mod container;
pub mod decode;
pub mod enrich;
pub mod filter;
pub mod hooks;
pub mod kill;
pub mod preflight;
pub mod proctable;
pub mod reader;
pub mod runtime;
pub mod selftest;
pub mod users;

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf, EbpfLoader};
use falco_learn_probe_common as abi;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub mod procfs;
pub use hooks::SyscallHook;
pub use preflight::{preflight, PreflightError};

/// The compiled kernel object (CO-RE, built by build.rs).
pub static PROBE_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe.bpf.o"));

/// Everything that can stop the probe from starting.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error("cannot read the kernel's BTF: {0}")]
    Btf(String),
    #[error("cannot load the eBPF object: {0}")]
    Load(String),
    #[error("eBPF program {program} did not load or attach to {hook}: {err}")]
    Program {
        program: String,
        hook: String,
        err: String,
    },
    #[error("eBPF map {map}: {err}")]
    Map { map: &'static str, err: String },
    #[error("cannot start the container metadata thread: {0}")]
    Thread(std::io::Error),
}

/// Every record kind the probe reports (for per-kind metrics).
pub const KINDS: &[abi::Kind] = &abi::Kind::ALL;

/// The syscalls the probe handles, with their x86_64 numbers: the slot of each one's
/// handler (`fl_exit_<name>`) in the kernel's `SYSCALL_EXIT` program array, which the
/// `sys_exit` raw tracepoint program tail-calls by syscall number. From the table of event
/// kinds (`probe/common/src/kind_table.rs`: each kind's `exit` column).
#[cfg(target_arch = "x86_64")]
const SYSCALLS: &[(&str, u32)] = abi::SYSCALLS;
/// Syscalls that change the paths of existing dentries (renames, mount changes): their
/// exits end a generation of the kernel's verdict cache of opens ([`filter`]). Always in
/// their slots; they report nothing. From the table of event kinds (`paths_changed`).
#[cfg(target_arch = "x86_64")]
const PATHS_CHANGED: &[(&str, u32)] = abi::PATHS_CHANGED;
#[cfg(not(target_arch = "x86_64"))]
compile_error!(
    "falco-learn's probe reads syscall arguments from x86_64 registers and numbers its \
     syscalls by the x86_64 table (probe/ebpf/src/probe.bpf.c sc_read, probe/common/src/kind_table.rs)"
);

/// The BTF tracepoints always attached, `(program, tp_btf tracepoint)`: `cgroup_rmdir`,
/// then the scheduler's the kinds need, each once in the table's order (the table of event
/// kinds: each kind's `sched` column).
fn sched_tracepoints() -> Vec<(&'static str, &'static str)> {
    // not a kind's: forgets a removed cgroup's home (the exec program's HOMES)
    let mut v: Vec<(&'static str, &'static str)> = vec![("fl_cgroup_rmdir", "cgroup_rmdir")];
    for t in abi::Kind::ALL.iter().flat_map(|k| k.sched()) {
        if !v.contains(t) {
            v.push(*t);
        }
    }
    v
}

/// Read-only open prefixes of a probe started without rules ([`ProbeConfig::default`]:
/// tests, `selftest`, `bench`). The agent, `record` and `learn` never use this list: they
/// derive theirs from the rules they load (`Ruleset::read_open_plan`, shown by
/// `falco-learn rules check --explain-kernel`).
pub const DEFAULT_READ_PREFIXES: &[&str] = &[
    "/etc/shadow",
    "/etc/sudoers",
    "/etc/pam",
    "/etc/security",
    "/etc/gshadow",
    "/etc/passwd",
    "/etc/group",
    "/root/",
    "/home/",
    "/proc/",
    "/var/run/secrets",
    "/run/secrets",
    "/sys/fs/cgroup",
    "/dev/",
];

/// Probe settings.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// Ring buffer size in bytes (power of two, ≥ page size).
    pub ring_bytes: u32,
    /// The read-only opens reported: under the prefixes, with the file names or endings,
    /// or passed non-canonically (see [`filter`]; `prefixes: None`: all opens). The agent
    /// derives it from its rules (`Ruleset::read_open_plan`); [`Probe::set_read_filter`]
    /// changes it later.
    pub read: filter::OpenFilterPlan,
    /// containerd namespaces recognised in `/<namespace>/<id>` cgroup paths.
    pub containerd_namespaces: Vec<String>,
    /// Mount tracefs at /sys/kernel/tracing when it is missing.
    pub mount_tracefs: bool,
    /// The reader drains the ring buffer at least this often; the kernel wakes it
    /// earlier only when an eighth of the ring is full. Zero: a wakeup per record
    /// (lowest latency, an inter-processor interrupt per event).
    pub poll_interval: Duration,
    /// Syscalls whose programs attach (`None`: every one this kernel has). The agent
    /// derives them from its rules and profiles; [`Probe::set_syscalls`] changes them.
    pub syscalls: Option<Vec<String>>,
    /// How syscall handlers are hooked ([`SyscallHook`]; `Auto`: the `sys_exit` dispatcher,
    /// or per-syscall tracepoints from 5.15 when `ia32_syscalls` is off).
    pub syscall_hook: SyscallHook,
    /// Container runtime metadata: sockets, cache, how long events wait for it.
    pub runtime: runtime::RuntimeConfig,
    /// enforce-kill: the exec program kills execs that [`Probe::kill_policy`]
    /// does not allow (nothing is killed until namespaces are put under it).
    pub kill: bool,
    /// Handle 32-bit (ia32, x32) syscalls, which the kernel's syscall tracepoints never
    /// report (a 32-bit program's, a 64-bit one's `int 0x80`): each goes to the handler of
    /// its 64-bit twin (the kind table's `ia32`/`x32` columns; ia32 `socketcall` to
    /// `fl_exit_socketcall`), and the first of each process exec is reported
    /// ([`abi::Kind::Ia32Syscall`]). Every syscall of the machine then passes a program
    /// (a load and a compare), so `SyscallHook::Auto` picks the `sys_exit` dispatcher, which
    /// does it; with `Tracepoints` a second program on `sys_exit` does, and the dispatcher's
    /// handlers are loaded for it. Not attached on a kernel without 32-bit syscalls
    /// ([`Probe::ia32_watched`]).
    pub ia32_syscalls: bool,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            // sized by `bench probe --ring-mib`: past the consumer's rate no ring size
            // avoids drops, and below it 4 MiB (~16 k records) absorbs ~70 ms of a burst;
            // the ring is mapped twice into the agent (8 MiB of its RSS)
            ring_bytes: 4 * 1024 * 1024,
            read: filter::OpenFilterPlan {
                prefixes: Some(
                    DEFAULT_READ_PREFIXES
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                ),
                noncanonical: true,
                ..filter::OpenFilterPlan::off()
            },
            containerd_namespaces: container::DEFAULT_CONTAINERD_NAMESPACES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            mount_tracefs: true,
            poll_interval: Duration::from_millis(10),
            syscalls: None,
            syscall_hook: SyscallHook::Auto,
            runtime: runtime::RuntimeConfig::default(),
            kill: false,
            ia32_syscalls: true,
        }
    }
}

/// The program that watches for 32-bit syscalls ([`ProbeConfig::ia32_syscalls`]).
const IA32_PROGRAM: &str = "fl_sys_exit_ia32";

/// Whether this kernel runs 32-bit syscalls at all (CONFIG_IA32_EMULATION or
/// CONFIG_X86_X32_ABI): one of its 32-bit syscall functions is in the kernel's BTF. The
/// wrappers (`__ia32_sys_read`, …) are there from 5.10 on (the entry functions only from
/// 6.1 in Debian's kernels); selftest `exec-ia32` fails when a 32-bit program runs and this
/// said no.
fn kernel_has_ia32_syscalls(btf: &Btf) -> bool {
    [
        "__ia32_sys_read",
        "__ia32_compat_sys_ioctl",
        "__x32_compat_sys_ioctl",
        "__do_fast_syscall_32",
        "ia32_sys_call",
    ]
    .iter()
    .any(|f| {
        btf.id_by_type_name_kind(f, aya_obj::btf::BtfKind::Func)
            .is_ok()
    })
}

/// Userspace counters (kernel counters are in [`Probe::kernel_stats`]).
#[derive(Debug, Default)]
pub struct ProbeCounters {
    /// Records read from the ring buffer.
    pub records: AtomicU64,
    /// Records that failed to decode (each one logged at debug level).
    pub decode_errors: AtomicU64,
}

/// Kernel-side counters of one record kind, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindStats {
    pub emitted: u64,
    pub dropped: u64,
    /// Dropped in the kernel because no loaded rule needs it (read-only opens, and the
    /// `socket` and `dup` calls of [`filter::EventFilterPlan`]).
    pub filtered: u64,
    /// ia32 `socketcall`s whose argument array was unreadable at exit (unmapped by
    /// another thread): reported without a descriptor or an address.
    pub lost_args: u64,
    /// Dropped in the kernel because the container's profile allows it and no loaded rule
    /// can match it ([`Probe::profile_filter`]).
    pub profile_filtered: u64,
    /// Dropped in the kernel because no profile applies to the process and no loaded rule
    /// can match it ([`filter::ProfileFilter::mark_unprofiled`]).
    pub unprofiled_filtered: u64,
    /// Execs whose cgroup's home (the root they exec from) the kernel could not remember,
    /// its map being full: they are judged without it (only the exec kind counts these).
    pub no_home: u64,
}

/// Run count and time of one eBPF program ([`Probe::program_stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramStats {
    pub name: String,
    pub runs: u64,
    /// Nanoseconds spent in the program, all runs together.
    pub ns: u64,
}

/// `kernel.bpf_stats_enabled` switched on (or off) while this lives, restored on drop. The
/// kernel then times every program run (two clock reads each, tens of ns on a VM): for
/// benchmarks, not for the agent.
pub struct BpfStats {
    before: Option<String>,
}

const BPF_STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    /// Switch the statistics on (needs root; an error says why it could not).
    pub fn enable() -> std::io::Result<BpfStats> {
        BpfStats::set(true)
    }

    /// Switch the statistics on or off (needs root; an error says why it could not).
    pub fn set(on: bool) -> std::io::Result<BpfStats> {
        let before = std::fs::read_to_string(BPF_STATS_SYSCTL)?;
        std::fs::write(BPF_STATS_SYSCTL, if on { "1" } else { "0" })?;
        Ok(BpfStats {
            before: Some(before.trim().to_string()),
        })
    }

    /// Whether the statistics were on before this guard set them.
    pub fn was_on(&self) -> bool {
        self.before.as_deref().is_some_and(|b| b != "0")
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Some(b) = self.before.take() {
            let _ = std::fs::write(BPF_STATS_SYSCTL, b);
        }
    }
}

/// A running probe. Dropping it (or [`Probe::stop`]) detaches the programs.
pub struct Probe {
    stop: Arc<AtomicBool>,
    stats: PerCpuArray<MapData, u64>,
    pub counters: Arc<ProbeCounters>,
    resolver: Option<Arc<runtime::Resolver>>,
    kill: Option<kill::KillPolicy>,
    /// The syscall handlers' hook family and what is attached ([`hooks`]).
    hooks: hooks::Hooks,
    read_filter: std::sync::Mutex<filter::OpenFilter>,
    write_filter: std::sync::Mutex<filter::OpenFilter>,
    leaf_names: std::sync::Mutex<filter::LeafNames>,
    net_filter: std::sync::Mutex<filter::NetFilter>,
    event_filter: std::sync::Mutex<filter::EventFilter>,
    profile_filter: filter::ProfileFilter,
    /// The kernel's verdict cache of opens: its generation and off switch.
    verdicts: Arc<filter::VerdictGen>,
    /// The ia32 syscall watch is attached ([`Probe::ia32_watched`]).
    ia32_watched: bool,
    /// Dropped first in [`Probe`]'s `drop` (the programs detach), before the stop
    /// flag is set: a consumer on another thread that sees the flag reads the ring
    /// to its end, and nothing is written there after it.
    /// `None` only inside `drop`.
    ebpf: Option<Ebpf>,
}

/// Watch io_uring's submissions for renames (`fl_io_uring_submit`), or, where io_uring is
/// there but cannot be watched, turn the verdict cache of opens off from the start.
fn watch_io_uring(ebpf: &mut Ebpf, watch: &hooks::IoUringWatch, gen: &filter::VerdictGen) {
    let why = match watch {
        hooks::IoUringWatch::Absent => {
            tracing::debug!(
                "this kernel has no io_uring tracepoints: no io_uring renames to watch"
            );
            return;
        }
        hooks::IoUringWatch::Submit { tracepoint, .. } => {
            match hooks::attach_io_uring(ebpf, tracepoint) {
                Ok(()) => {
                    // watched from now on; an instance made before may hold a rename queued
                    // behind a request that waits, which would run unseen
                    if let Some(pid) = io_uring_holder(std::process::id()) {
                        let off = filter::VerdictCacheOff::IoUringBeforeStart { pid };
                        tracing::warn!(
                            "the kernel's verdict cache of opens is off: {off}; each open the \
                             filters drop walks its path (~300 ns) until the agent restarts"
                        );
                        if let Err(e) = gen.turn_off_before_start(pid) {
                            tracing::error!(
                                "the verdict cache of opens could not be turned off: {e}"
                            );
                        }
                    }
                    return;
                }
                Err(e) => e.to_string(),
            }
        }
        hooks::IoUringWatch::Unwatchable(why) => why.clone(),
    };
    tracing::warn!(
        "io_uring renames cannot be watched ({why}): the kernel's verdict cache of opens is off \
         (each open the filters drop walks its path, ~300 ns)"
    );
    if let Err(e) = gen.turn_off_unwatched() {
        tracing::error!("the verdict cache of opens could not be turned off: {e}");
    }
}

/// A process other than `skip` that holds an io_uring instance (a descriptor reading
/// `anon_inode:[io_uring]` in `/proc/<pid>/fd`), if any.
fn io_uring_holder(skip: u32) -> Option<u32> {
    let procs = std::fs::read_dir("/proc").ok()?;
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == skip {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == "anon_inode:[io_uring]")
            {
                return Some(pid);
            }
        }
    }
    None
}

fn possible_cpus() -> u32 {
    aya::util::nr_cpus().map(|n| n as u32).unwrap_or(1).max(1)
}

/// Whether the v1 memory controller is mounted (hybrid/legacy cgroups): then the
/// probe reports the memory cgroup path, where runtimes put containers.
fn cgroup_v1_memory() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            m.lines().any(|l| {
                l.contains(" - cgroup ")
                    && l.split_whitespace()
                        .last()
                        .is_some_and(|o| o.split(',').any(|x| x == "memory"))
            })
        })
        .unwrap_or(false)
}

impl Probe {
    /// Check the machine, load and attach everything. Events are read from the
    /// returned [`reader::Events`] (on the caller's thread) until the probe stops.
    pub fn start(cfg: ProbeConfig) -> Result<(Probe, reader::Events), ProbeError> {
        preflight(cfg.mount_tracefs)?;
        // `EbpfLoader::new` parses the kernel's BTF for itself: drop that copy before
        // parsing the one kept here for the tracepoints (two parsed copies alive at once
        // were ~12 MiB of the agent's peak RSS, heaptrack)
        let mut loader = EbpfLoader::new();
        loader.btf(None);
        let btf = Btf::from_sys_fs().map_err(|e| ProbeError::Btf(e.to_string()))?;
        let self_tgid = std::process::id();
        let use_memory: u32 = cgroup_v1_memory().into();
        // wake the reader when an eighth of the ring is waiting; otherwise it
        // polls every `poll_interval`
        let wakeup_bytes: u64 = if cfg.poll_interval.is_zero() {
            0
        } else {
            u64::from(cfg.ring_bytes / 8)
        };
        let kill_key =
            match kill::random_key() {
                Some(k) => k,
                None if cfg.kill => return Err(ProbeError::Load(
                    "enforce-kill needs a random key for its path hash and getrandom(2) gave none"
                        .into(),
                )),
                None => [0, 0],
            };
        let ia32_watched = cfg.ia32_syscalls && kernel_has_ia32_syscalls(&btf);
        if cfg.ia32_syscalls && !ia32_watched {
            tracing::info!(
                "this kernel runs no 32-bit (ia32) syscalls (no IA32 emulation): none to watch"
            );
        }
        let io_uring = hooks::io_uring_watch();
        let opcode_offset = match &io_uring {
            hooks::IoUringWatch::Submit { opcode_offset, .. } => *opcode_offset,
            _ => 0,
        };
        let hook = cfg.syscall_hook.resolve(ia32_watched)?;
        // the dispatcher reports 32-bit syscalls itself; with per-syscall tracepoints a
        // second program on sys_exit does (IA32_PROGRAM)
        let ia32_dispatch = u32::from(ia32_watched && hook == SyscallHook::Dispatch);
        let mut ebpf = loader
            .btf(Some(&btf))
            .override_global("self_tgid", &self_tgid, true)
            .override_global("cgroup_use_memory", &use_memory, true)
            .override_global("wakeup_bytes", &wakeup_bytes, true)
            .override_global("kill_enabled", &u32::from(cfg.kill), true)
            .override_global("kill_hash_key0", &kill_key[0], true)
            .override_global("kill_hash_key1", &kill_key[1], true)
            .override_global("ia32_dispatch", &ia32_dispatch, true)
            .override_global("ia32_handled", &u32::from(ia32_watched), true)
            .override_global("io_uring_opcode_offset", &opcode_offset, true)
            .map_max_entries("EVENTS", cfg.ring_bytes)
            .map_max_entries("SCRATCH", possible_cpus())
            .load(PROBE_OBJECT)
            .map_err(|e| ProbeError::Load(format!("{e:#}")))?;

        let leaf_names = std::sync::Mutex::new(filter::LeafNames::new(&mut ebpf)?);
        let gen = filter::VerdictGen::new(&mut ebpf)?;
        watch_io_uring(&mut ebpf, &io_uring, &gen);
        let read_filter =
            filter::OpenFilter::new(&mut ebpf, "OPEN_PREFIXES", "READ_FILTER", 1, gen.clone())?;
        let mut write_filter =
            filter::OpenFilter::new(&mut ebpf, "WRITE_PREFIXES", "WRITE_FILTER", 2, gen.clone())?;
        // off until the agent sets it (only the enforce modes drop write-opens)
        write_filter.set(&filter::OpenFilterPlan::off(), &leaf_names)?;
        let write_filter = std::sync::Mutex::new(write_filter);
        let profile_filter =
            filter::ProfileFilter::new(&mut ebpf, gen.clone(), cfg.containerd_namespaces.clone())?;
        // off until the agent sets it, like the write filter
        let mut net_filter = filter::NetFilter::new(&mut ebpf)?;
        net_filter.set(&filter::NetFilterPlan::off())?;
        let net_filter = std::sync::Mutex::new(net_filter);
        // every socket and dup call reported until the agent sets the rules' plan
        let mut event_filter = filter::EventFilter::new(&mut ebpf)?;
        event_filter.set(&filter::EventFilterPlan::off())?;
        let event_filter = std::sync::Mutex::new(event_filter);
        let read_filter = std::sync::Mutex::new(read_filter);
        if let Err(e) = read_filter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set(&cfg.read, &leaf_names)
        {
            // `set` turned the filter off: every read-only open is reported, as on a
            // reload that fails the same way
            tracing::error!(
                "the kernel read filter is off (every read-only open is reported): {e}"
            );
        }

        for (prog, tp) in sched_tracepoints() {
            if prog == IA32_PROGRAM && !(ia32_watched && hook == SyscallHook::Tracepoints) {
                continue;
            }
            let err = |e: String| ProbeError::Program {
                program: prog.into(),
                hook: format!("tp_btf/{tp}"),
                err: e,
            };
            let p: &mut BtfTracePoint = ebpf
                .program_mut(prog)
                .ok_or_else(|| err("not in the object".into()))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| err(e.to_string()))?;
            p.load(tp, &btf).map_err(|e| err(format!("{e:#}")))?;
            p.attach().map_err(|e| err(format!("{e:#}")))?;
        }
        // every handler is loaded (verified) now; attached only while wanted
        let mut hooks =
            hooks::Hooks::load(&mut ebpf, &btf, hook, SYSCALLS, PATHS_CHANGED, ia32_watched)?;
        tracing::debug!(hook = hooks.hook().name(), "syscall hooks loaded");
        for &(sc, _) in SYSCALLS {
            if cfg
                .syscalls
                .as_ref()
                .is_none_or(|w| w.iter().any(|x| x == sc))
            {
                hooks.attach(&mut ebpf, sc)?;
            }
        }

        let kill = if cfg.kill {
            Some(kill::KillPolicy::new(
                &mut ebpf,
                kill_key,
                cfg.containerd_namespaces.clone(),
            )?)
        } else {
            None
        };
        let stats = PerCpuArray::try_from(ebpf.take_map("STATS").ok_or(ProbeError::Map {
            map: "STATS",
            err: "missing".into(),
        })?)
        .map_err(|e| ProbeError::Map {
            map: "STATS",
            err: e.to_string(),
        })?;
        let ring = RingBuf::try_from(ebpf.take_map("EVENTS").ok_or(ProbeError::Map {
            map: "EVENTS",
            err: "missing".into(),
        })?)
        .map_err(|e| ProbeError::Map {
            map: "EVENTS",
            err: e.to_string(),
        })?;

        // Loading parsed the kernel's BTF (tens of MiB of short-lived
        // allocations): hand that memory back to the OS now.
        drop(btf);
        release_free_memory();
        let boot = procfs::boot_epoch_ns();
        let mut table = proctable::ProcessTable::new(cfg.containerd_namespaces.clone(), boot);
        let seeded = table.seed_from_proc();
        tracing::debug!(seeded, "process table seeded from /proc");
        let mut enricher = enrich::Enricher::new(table, boot);
        let resolver = if cfg.runtime.enabled {
            let r = runtime::Resolver::start(cfg.runtime.clone()).map_err(ProbeError::Thread)?;
            enricher = enricher.with_resolver(r.clone());
            Some(r)
        } else {
            None
        };

        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(ProbeCounters::default());
        let poll_ms: i32 = if cfg.poll_interval.is_zero() {
            50
        } else {
            cfg.poll_interval.as_millis().clamp(1, 1000) as i32
        };
        let events = reader::Events::new(ring, enricher, stop.clone(), counters.clone(), poll_ms)
            .with_verdict_cache(gen.clone());
        Ok((
            Probe {
                stop,
                stats,
                counters,
                resolver,
                kill,
                hooks,
                read_filter,
                write_filter,
                leaf_names,
                net_filter,
                event_filter,
                profile_filter,
                verdicts: gen,
                ia32_watched,
                ebpf: Some(ebpf),
            },
            events,
        ))
    }

    /// Whether 32-bit (ia32) syscalls are watched ([`ProbeConfig::ia32_syscalls`] on a
    /// kernel that runs them).
    pub fn ia32_watched(&self) -> bool {
        self.ia32_watched
    }

    /// The cgroups (v2 ids) whose home the kernel remembers: the root their processes exec
    /// from, taken at the first exec judged in each, forgotten when the cgroup is removed.
    /// An exec there from another root is flagged (`exe_flags.other_root`, or
    /// `exe_flags.host_root` when that root is the host's).
    pub fn cgroup_homes(&self) -> Result<Vec<u64>, ProbeError> {
        let err = |e: String| ProbeError::Map {
            map: "HOMES",
            err: e,
        };
        let map = self
            .ebpf
            .as_ref()
            .and_then(|e| e.map("HOMES"))
            .ok_or_else(|| err("missing".into()))?;
        let homes: aya::maps::HashMap<&aya::maps::MapData, u64, [u64; 2]> =
            aya::maps::HashMap::try_from(map).map_err(|e| err(e.to_string()))?;
        Ok(homes.keys().filter_map(Result::ok).collect())
    }

    /// Whether the kernel's verdict cache of opens is off, and why (`None`: on). The reader
    /// also logs it, once, when it happens.
    pub fn open_verdict_cache_off(&self) -> Option<filter::VerdictCacheOff> {
        self.verdicts.off()
    }

    /// Kernel counters per record kind (emitted, dropped for a full ring buffer,
    /// filtered in the kernel, exits without their enter).
    pub fn kernel_stats(&self) -> Vec<(abi::Kind, KindStats)> {
        let mut out = Vec::new();
        for k in abi::Kind::ALL {
            let mut s = KindStats::default();
            for (stat, slot) in [
                (abi::Stat::Emitted, &mut s.emitted),
                (abi::Stat::Dropped, &mut s.dropped),
                (abi::Stat::Filtered, &mut s.filtered),
                (abi::Stat::LostArgs, &mut s.lost_args),
                (abi::Stat::ProfileFiltered, &mut s.profile_filtered),
                (abi::Stat::UnprofiledFiltered, &mut s.unprofiled_filtered),
                (abi::Stat::NoHome, &mut s.no_home),
            ] {
                let idx = k as u32 * abi::STAT_N + stat as u32;
                if let Ok(v) = self.stats.get(&idx, 0) {
                    *slot = v.iter().sum();
                }
            }
            out.push((k, s));
        }
        out
    }

    /// Per attached program: (name, runs, nanoseconds spent in it), from the kernel's
    /// BPF statistics. The kernel counts only while `kernel.bpf_stats_enabled` is 1
    /// (see [`BpfStats`]); otherwise every figure is 0.
    pub fn program_stats(&self) -> Vec<ProgramStats> {
        let mut out: Vec<ProgramStats> = self
            .ebpf
            .iter()
            .flat_map(|e| e.programs())
            .filter_map(|(name, p)| {
                let info = p.info().ok()?;
                Some(ProgramStats {
                    name: name.to_string(),
                    runs: info.run_count(),
                    ns: info.run_time().as_nanos() as u64,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Per loaded program: (name, instructions the verifier processed to load it), largest
    /// first. Empty before Linux 5.16, which does not report it. The verifier gives up at
    /// 1 000 000: the margin left is how much a change (or an older kernel's verifier, which
    /// prunes less) can add before a program stops loading.
    pub fn verified_instructions(&self) -> Vec<(String, u32)> {
        let mut out: Vec<(String, u32)> = self
            .ebpf
            .iter()
            .flat_map(|e| e.programs())
            .filter_map(|(name, p)| {
                let n = p.info().ok()?.verified_instruction_count()?;
                Some((name.to_string(), n))
            })
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }

    /// Syscalls whose programs are attached now (the others' events are not captured).
    pub fn attached_syscalls(&self) -> Vec<&'static str> {
        self.hooks.attached()
    }

    /// Attach exactly the programs of `wanted` syscalls (`None`: every one this kernel
    /// has), detaching the others: a rules reload. Returns (attached, detached) names.
    pub fn set_syscalls(
        &mut self,
        wanted: Option<&[&str]>,
    ) -> Result<(Vec<&'static str>, Vec<&'static str>), ProbeError> {
        let want = |sc: &str| wanted.is_none_or(|w| w.contains(&sc));
        let Some(ebpf) = self.ebpf.as_mut() else {
            return Ok((Vec::new(), Vec::new()));
        };
        let now = self.hooks.attached();
        let available: Vec<&'static str> = self.hooks.available().collect();
        let mut attached = Vec::new();
        let mut detached = Vec::new();
        for sc in available {
            match (want(sc), now.contains(&sc)) {
                (true, false) => {
                    self.hooks.attach(ebpf, sc)?;
                    attached.push(sc);
                }
                (false, true) => {
                    self.hooks.detach(ebpf, sc)?;
                    detached.push(sc);
                }
                _ => {}
            }
        }
        Ok((attached, detached))
    }

    /// The syscall hook family attached on this kernel ([`SyscallHook`]).
    pub fn syscall_hook(&self) -> SyscallHook {
        self.hooks.hook()
    }

    /// Change the read-only open filter (a rules reload; see [`filter`]).
    pub fn set_read_filter(&self, plan: &filter::OpenFilterPlan) -> Result<(), ProbeError> {
        self.read_filter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set(plan, &self.leaf_names)
    }

    /// Change the write-open filter of the loaded rules (enforce modes): `prefixes` are
    /// the paths some rule about opens for writing may match
    /// (`Ruleset::write_open_plan`); `None` turns it off, and then no write-open is dropped
    /// in the kernel. With it on, a write-open outside `prefixes` that the container's
    /// profile allows ([`Probe::profile_filter`]) is dropped and counted
    /// ([`KindStats::profile_filtered`]).
    pub fn set_write_filter(&self, plan: &filter::OpenFilterPlan) -> Result<(), ProbeError> {
        self.write_filter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set(plan, &self.leaf_names)
    }

    /// Change the network filter of the loaded rules (enforce modes): per side, the
    /// protocols the rules bound and the (protocol, port) pairs they need
    /// (`Ruleset::net_plan`); [`filter::NetFilterPlan::off`] drops nothing. With a side's
    /// protocol on, an event of it to a pair outside `needed` that the container's profile
    /// allows ([`filter::ProfileFilter::set_outbound`], [`filter::ProfileFilter::set_inbound`])
    /// is dropped and counted ([`KindStats::profile_filtered`]).
    pub fn set_net_filter(&self, plan: &filter::NetFilterPlan) -> Result<(), ProbeError> {
        self.net_filter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set(plan)
    }

    /// Change which `socket` and `dup` calls are dropped in the kernel because no loaded
    /// rule can match them ([`filter::EventFilterPlan::derive`]); counted as
    /// [`KindStats::filtered`]. [`filter::EventFilterPlan::off`] reports every one.
    pub fn set_event_filter(&self, plan: &filter::EventFilterPlan) -> Result<(), ProbeError> {
        self.event_filter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set(plan)
    }

    /// Which containers run under which profile, and what each profile allows (the kernel
    /// side of `engine.kernel_filter`; see [`filter`]).
    pub fn profile_filter(&self) -> &filter::ProfileFilter {
        &self.profile_filter
    }

    /// The enforce-kill policy (`None` unless [`ProbeConfig::kill`]).
    pub fn kill_policy(&self) -> Option<&kill::KillPolicy> {
        self.kill.as_ref()
    }

    /// The container metadata resolver (`None` when resolution is off).
    pub fn resolver(&self) -> Option<&Arc<runtime::Resolver>> {
        self.resolver.as_ref()
    }

    /// Container metadata counters and cache size (`None` when resolution is off).
    pub fn runtime_stats(&self) -> Option<runtime::RuntimeStats> {
        self.resolver.as_ref().map(|r| r.stats())
    }

    /// Detach and stop: the [`reader::Events`] deliver what the ring buffer still
    /// holds, then report the disconnection.
    pub fn stop(self) {}
}

impl Drop for Probe {
    fn drop(&mut self) {
        // detach first: records written between the flag and the detach were lost
        // when the consumer, on another thread, saw the flag and an empty ring
        drop(self.ebpf.take());
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Return the allocator's free pages to the OS (glibc: `malloc_trim`, which also
/// releases free pages inside the heap, not only at its top). Called after the load
/// and after sweeps that removed many processes: process churn leaves the heap
/// fragmented, and without it the agent's RSS kept the peak of every burst of execs
/// (+10 MiB per 3 000 processes in the table, heaptrack: live heap back to 6 MiB).
pub(crate) fn release_free_memory() {
    // SAFETY: malloc_trim only releases free heap pages.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Give a probe that was just started a moment to settle (attach is synchronous,
/// and records wait in the ring buffer until the consumer reads them: this only
/// lets a consumer thread that was just spawned reach its first read).
pub fn settle() {
    std::thread::sleep(Duration::from_millis(50));
}
