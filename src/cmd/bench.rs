//! `falco-learn bench probe`: the cost of the probe on real syscall loops.
//!
//! Each loop runs in a child process (the probe never traces its own process),
//! alternately without and with the probe attached, several rounds; the median
//! per-operation times give the slowdown ratios. With the probe attached, a
//! consumer thread drains events like `record` does, so the figures include
//! the userspace side (decode, process table, enrichment).

use clap::{Args, Subcommand, ValueEnum};
use falco_learn_probe::{Probe, ProbeConfig};
use std::ffi::CString;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Syscall loops with and without the probe: slowdown ratios, events/s, drops (root).
    Probe(ProbeBenchArgs),
    /// Where the agent's memory goes: the real agent with N profiles, after load, a
    /// write-open flood and an exec burst (root).
    Memory(crate::cmd::bench_memory::MemoryBenchArgs),
    /// (internal) run one loop and print nanoseconds per operation.
    #[command(hide = true)]
    Worker(WorkerArgs),
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  sudo falco-learn bench probe --rounds 5\n  \
    sudo falco-learn bench probe --agent   # full pipeline: default rules + 10 profiles\n  \
    sudo falco-learn bench probe --kill    # workers in a cgroup under enforce-kill\n  \
    sudo falco-learn bench probe --syscall-hook tracepoints   # per-syscall tracepoints instead of the sys_exit dispatcher\n  \
    sudo falco-learn bench probe --no-ia32-watch   # without the 32-bit syscall watch (what it costs)\n  \
    sudo falco-learn bench probe --peer 'falco -o engine.kind=modern_ebpf' --peer-settle 10s\n\n\
The `open/close (write, profile-allows)` loop runs in a cgroup of its own under a profile that\n\
allows its file, with the write filter of the default rules (engine.kernel_filter): its opens\n\
are dropped in the kernel. With --peer, every loop also runs under the peer agent alone\n\
(started in the foreground before the loop, stopped with SIGTERM after), so both ratios come\n\
from one interleaved run."
)]
pub struct ProbeBenchArgs {
    /// Consume events with the full agent pipeline (default rules + 10 profiles,
    /// one of them applied to host processes) instead of only counting them;
    /// also reports the agent's CPU and peak RSS.
    #[arg(long)]
    pub agent: bool,
    /// Rounds per loop (each: one run without, one with the probe); medians are reported.
    #[arg(long, default_value_t = 3, value_parser = crate::cmd::int_in(1usize, 1000))]
    pub rounds: usize,
    /// Scale the iteration counts (1.0 = 200k open/close, 2k fork+exec, 10k connects).
    #[arg(long, default_value_t = 1.0, value_parser = crate::cmd::float_in(0.001, 1000.0))]
    pub scale: f64,
    /// Run every worker (both sides) in a cgroup of its own, and with the probe
    /// put that cgroup under enforce-kill with a profile allowing the worker and
    /// /bin/true: each exec is then checked against the allow-list in the kernel.
    #[arg(long)]
    pub kill: bool,
    /// Another agent to compare with: a command (run by `sh -c`) that stays in the
    /// foreground and stops on SIGTERM. Every loop also runs under it, alone.
    #[arg(long, value_name = "CMD")]
    pub peer: Option<String>,
    /// How long the peer gets to load before a loop starts.
    #[arg(long, default_value = "5s", value_parser = crate::cmd::duration_in(Duration::ZERO, Duration::from_secs(600)))]
    pub peer_settle: Duration,
    /// Kernel ring buffer size in MiB (a power of two; default: the agent's
    /// `engine.ring_mib` default). The drops column says whether it is enough.
    #[arg(long, value_parser = crate::cmd::int_in(1u32, 1024))]
    pub ring_mib: Option<u32>,
    /// How the probe hooks syscalls: `auto` (the `sys_exit` dispatcher; per-syscall
    /// tracepoints from Linux 5.15 with `--no-ia32-watch`), `dispatch` or `tracepoints`
    /// (5.15+). Run the bench once with each to compare them on this machine.
    #[arg(long, default_value = "auto", value_parser = ["auto", "dispatch", "tracepoints"])]
    pub syscall_hook: String,
    /// Leave 32-bit (ia32) syscalls unwatched (`engine.ia32_syscalls=false`): no program on
    /// every syscall's entry. Run the bench with and without to see what the watch costs.
    #[arg(long)]
    pub no_ia32_watch: bool,
    /// Only these loops (repeatable; default: all).
    #[arg(long = "loop", value_enum)]
    pub loops: Vec<LoopKind>,
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[arg(value_enum)]
    pub kind: LoopKind,
    #[arg(value_parser = crate::cmd::int_in(1u64, 1_000_000_000))]
    pub iters: u64,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopKind {
    /// open(O_RDONLY)+close of a file outside the watched prefixes (filtered in the kernel)
    OpenRead,
    /// open(O_WRONLY)+close (reported: every write open is an event)
    OpenWrite,
    /// open(O_WRONLY)+close in a cgroup whose profile allows the file (dropped in the kernel)
    OpenWriteAllowed,
    /// open(O_WRONLY)+close by a process no profile applies to, of a file no rule watches
    /// (dropped in the kernel: the worker is marked as `run` marks such processes)
    OpenWriteUnprofiled,
    /// fork + exec of /bin/true, waited for
    ForkExec,
    /// TCP connect to a loopback listener + close
    Connect,
    /// TCP connect + accept + close in a cgroup whose profile allows the port and peer and
    /// serves the port (both dropped in the kernel)
    ConnectAllowed,
    /// getppid(): a syscall no program handles (what every syscall pays for the sys_exit hook)
    Getppid,
}

impl LoopKind {
    fn label(self) -> &'static str {
        match self {
            LoopKind::OpenRead => "open/close (read, kernel-filtered)",
            LoopKind::OpenWrite => "open/close (write, reported)",
            LoopKind::OpenWriteAllowed => "open/close (write, profile-allows)",
            LoopKind::OpenWriteUnprofiled => "open/close (write, no profile/rule)",
            LoopKind::ForkExec => "fork+exec /bin/true",
            LoopKind::Connect => "TCP connect loopback",
            LoopKind::ConnectAllowed => "TCP connect (profile-allows)",
            LoopKind::Getppid => "getppid (no handler)",
        }
    }
    fn iters(self) -> f64 {
        match self {
            LoopKind::OpenRead
            | LoopKind::OpenWrite
            | LoopKind::OpenWriteAllowed
            | LoopKind::OpenWriteUnprofiled => 200_000.0,
            LoopKind::ForkExec => 2_000.0,
            LoopKind::Connect | LoopKind::ConnectAllowed => 10_000.0,
            LoopKind::Getppid => 2_000_000.0,
        }
    }
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Worker(w) => {
            let ns = worker(w.kind, w.iters)?;
            println!("{ns}");
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Probe(a) => probe_bench(a),
        BenchCommand::Memory(a) => crate::cmd::bench_memory::run(a),
    }
}

fn worker(kind: LoopKind, iters: u64) -> anyhow::Result<f64> {
    let dir = std::env::temp_dir()
        .join("fl-bench")
        .join(std::process::id().to_string());
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("f");
    std::fs::write(&file, b"x")?;
    let cpath = CString::new(file.to_string_lossy().as_bytes())?;
    let start;
    match kind {
        LoopKind::OpenRead
        | LoopKind::OpenWrite
        | LoopKind::OpenWriteAllowed
        | LoopKind::OpenWriteUnprofiled => {
            if kind == LoopKind::OpenWriteUnprofiled {
                // one event that names this process (its exec id and start), then wait
                // for the bench to mark it
                std::fs::write(dir.join(HELLO), b"x")?;
                let mut go = [0u8; 1];
                std::io::Read::read_exact(&mut std::io::stdin(), &mut go)?;
            }
            let flags = if kind == LoopKind::OpenRead {
                libc::O_RDONLY
            } else {
                libc::O_WRONLY
            };
            start = Instant::now();
            for _ in 0..iters {
                // SAFETY: valid NUL-terminated path; the fd is closed right away.
                unsafe {
                    let fd = libc::open(cpath.as_ptr(), flags);
                    if fd >= 0 {
                        libc::close(fd);
                    }
                }
            }
        }
        LoopKind::Getppid => {
            start = Instant::now();
            for _ in 0..iters {
                // SAFETY: getppid has no arguments and cannot fail.
                std::hint::black_box(unsafe { libc::getppid() });
            }
        }
        LoopKind::ForkExec => {
            start = Instant::now();
            for _ in 0..iters {
                let st = Command::new("/bin/true").status()?;
                // (under --kill, a killed exec must not pass for a fast one)
                anyhow::ensure!(st.success(), "/bin/true: {st}");
            }
        }
        LoopKind::Connect | LoopKind::ConnectAllowed => {
            // one thread does connect and accept: on loopback the handshake
            // completes inside connect(), so no cross-thread wakeups (whose
            // idle-CPU latency would swamp the measurement on a VM)
            let listener = std::net::TcpListener::bind(("127.0.0.1", BENCH_PORT))
                .map_err(|e| anyhow::anyhow!("bench listener on 127.0.0.1:{BENCH_PORT}: {e}"))?;
            let addr = listener.local_addr()?;
            start = Instant::now();
            for _ in 0..iters {
                let s = std::net::TcpStream::connect(addr)?;
                let (peer, _) = listener.accept()?;
                // close with RST: no TIME_WAIT, so later rounds do not run out of ports
                let linger = libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                };
                // SAFETY: setting a plain-old-data option on a socket we own.
                unsafe {
                    libc::setsockopt(
                        std::os::fd::AsRawFd::as_raw_fd(&s),
                        libc::SOL_SOCKET,
                        libc::SO_LINGER,
                        (&linger as *const libc::linger).cast(),
                        std::mem::size_of::<libc::linger>() as libc::socklen_t,
                    );
                }
                drop(s);
                drop(peer);
            }
        }
    }
    let el = start.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(el.as_nanos() as f64 / iters as f64)
}

/// A cgroup v2 directory for the workers (`bench probe --kill`), removed on drop.
struct BenchCgroup {
    dir: std::path::PathBuf,
    procs: std::ffi::CString,
    id: u64,
}

impl BenchCgroup {
    fn create(name: &str) -> anyhow::Result<BenchCgroup> {
        use std::os::unix::fs::MetadataExt;
        let root = falco_learn_probe::kill::cgroup2_mount().ok_or_else(|| {
            anyhow::anyhow!("the bench's cgroups need the cgroup v2 hierarchy mounted")
        })?;
        let dir = root.join(format!("fl-bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("create {}: {e}", dir.display()))?;
        let id = std::fs::metadata(&dir)?.ino();
        let procs = std::ffi::CString::new(dir.join("cgroup.procs").to_string_lossy().as_bytes())?;
        Ok(BenchCgroup { dir, procs, id })
    }
}

impl Drop for BenchCgroup {
    fn drop(&mut self) {
        // the workers have exited: the cgroup is empty
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The file an `open-write-unprofiled` worker writes first, so that its event names it.
const HELLO: &str = "fl-bench-hello";

fn run_worker(kind: LoopKind, iters: u64, cgroup: Option<&BenchCgroup>) -> anyhow::Result<f64> {
    run_worker_then(kind, iters, cgroup, &|_| Ok(()))
}

/// [`run_worker`]; an `open-write-unprofiled` worker starts its loop once `ready` (given
/// its pid) returns.
fn run_worker_then(
    kind: LoopKind,
    iters: u64,
    cgroup: Option<&BenchCgroup>,
    ready: &dyn Fn(u32) -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let name = kind
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    let mut cmd = Command::new(exe);
    cmd.args(["bench", "worker", &name, &iters.to_string()]);
    if let Some(cg) = cgroup {
        let procs = cg.procs.clone();
        // SAFETY: between fork and exec only async-signal-safe calls (open,
        // write, close) on memory prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
                if n != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let out = if kind == LoopKind::OpenWriteUnprofiled {
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        let go = ready(child.id());
        if let Some(mut stdin) = child.stdin.take() {
            if go.is_ok() {
                std::io::Write::write_all(&mut stdin, b"g")?;
            }
        }
        let out = child.wait_with_output()?;
        go?;
        out
    } else {
        cmd.output()?
    };
    if !out.status.success() {
        anyhow::bail!(
            "bench worker {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Ten synthetic profiles (one for host processes) in a temporary directory.
/// Loopback port of the connect loop (fixed, so the host profile can hold it).
const BENCH_PORT: u16 = 39871;

fn bench_profiles() -> anyhow::Result<std::path::PathBuf> {
    use falco_learn_profiler::{to_yaml, ImageRef, Profile};
    let dir = std::env::temp_dir().join(format!("fl-bench-profiles-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for i in 0..10 {
        let repo = if i == 0 {
            "host".to_string()
        } else {
            format!("docker.io/library/app{i}")
        };
        let mut p = Profile::new(ImageRef::new(repo, if i == 0 { "" } else { "latest" }));
        for e in [
            "/usr/bin/true",
            "/usr/bin/bash",
            "/usr/bin/dash",
            "/usr/sbin/nginx",
        ] {
            p.learn_exec(e, false, 1);
        }
        if i == 0 {
            // the benchmark's own behaviour is normal for the host profile: its
            // events are evaluated against the profile but are not anomalies
            if let Ok(exe) = std::env::current_exe() {
                p.learn_exec(&exe.to_string_lossy(), false, 1);
            }
            let base = std::env::temp_dir().join("fl-bench");
            let limits = falco_learn_profiler::Limits::default();
            for f in 0..=limits.file_dir_threshold {
                p.learn_write(&base.join(format!("f{f}")).to_string_lossy(), 1, &limits);
            }
            p.learn_outbound(
                falco_learn_profiler::Proto::Tcp,
                BENCH_PORT,
                "127.0.0.1".parse()?,
                1,
                &limits,
            );
        }
        std::fs::write(dir.join(format!("p{i}.yaml")), to_yaml(&p))?;
    }
    Ok(dir)
}

/// Run `work` under the peer agent: start `sh -c cmd` (its own process group), give it
/// `settle` to load, run, then SIGTERM the group and wait until every process of it is gone
/// (SIGKILL after 10 s). Returns the work's
/// result, the peer's CPU share during the work and its peak RSS in MiB.
fn under_peer(
    cmd: &str,
    settle: Duration,
    work: impl FnOnce() -> anyhow::Result<f64>,
) -> anyhow::Result<(f64, f64, f64)> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("sh")
        .args(["-c", cmd])
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("--peer {cmd:?}: {e}"))?;
    let pid = child.id();
    std::thread::sleep(settle);
    if let Some(st) = child.try_wait()? {
        anyhow::bail!("--peer {cmd:?} exited during its settle time ({st})");
    }
    let cpu0 = group_cpu_seconds(pid);
    let t0 = Instant::now();
    let result = work();
    let cpu = (group_cpu_seconds(pid) - cpu0) / t0.elapsed().as_secs_f64();
    let rss = group_peak_rss_mib(pid);
    // SAFETY: signalling the process group we created.
    unsafe { libc::kill(-(pid as i32), libc::SIGTERM) };
    // the whole group must be gone (not only `sh`): the next round's peer would find
    // the ports, the kernel programs and the CPU of a peer still shutting down
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait()?.is_none() || !group_pids(pid).is_empty() {
        if Instant::now() > deadline {
            eprintln!("bench: --peer did not stop within 10 s of SIGTERM: SIGKILL");
            // SAFETY: as above.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((result?, cpu, rss))
}

/// Processes of process group `pgid` (from /proc).
fn group_pids(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| falco_learn_probe::procfs::Stat::read(*pid).is_some_and(|s| s.pgrp == pgid))
        .collect()
}

/// User + system CPU seconds of the processes in group `pgid`.
fn group_cpu_seconds(pgid: u32) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    group_pids(pgid)
        .iter()
        .filter_map(|pid| falco_learn_probe::procfs::Stat::read(*pid))
        .map(|s| (s.utime + s.stime) as f64)
        .sum::<f64>()
        / hz
}

/// The largest peak RSS (VmHWM) among the processes in group `pgid`, MiB.
fn group_peak_rss_mib(pgid: u32) -> f64 {
    group_pids(pgid)
        .iter()
        .filter_map(|pid| falco_learn_probe::procfs::status_kib(*pid, "VmHWM:"))
        .map(|kib| kib as f64 / 1024.0)
        .fold(0.0, f64::max)
}

fn cpu_seconds() -> f64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct we own.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) } != 0 {
        return 0.0;
    }
    // SAFETY: initialised by the successful call above.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

fn status_mib(key: &str) -> f64 {
    falco_learn_probe::procfs::self_status_kib(key).map_or(0.0, |kb| kb as f64 / 1024.0)
}

fn probe_bench(a: ProbeBenchArgs) -> anyhow::Result<ExitCode> {
    if a.ring_mib.is_some_and(|m| !m.is_power_of_two()) {
        anyhow::bail!("--ring-mib must be a power of two");
    }
    let profiles = if a.agent {
        Some(bench_profiles()?)
    } else {
        None
    };
    let cgroup = if a.kill {
        Some(BenchCgroup::create("kill")?)
    } else {
        None
    };
    let filter_cgroup = BenchCgroup::create("filter")?;
    // what the profile of the filter cgroup allows: the worker's file (worker() writes
    // <tmp>/fl-bench/<pid>/f, so the whole fl-bench directory)
    let allow = falco_learn_probe::filter::WriteAllow {
        files: Vec::new(),
        dirs: vec![std::env::temp_dir()
            .join("fl-bench")
            .to_string_lossy()
            .into_owned()
            .into_bytes()],
    };
    let (default_rules, _) =
        falco_learn_rules::Ruleset::load_sources(&[("default", falco_learn_rules::DEFAULT_RULES)]);
    let write_plan = default_rules.write_open_plan();
    let write_filter = falco_learn_enforcer::agent::open_filter(&write_plan);
    let event_filter = falco_learn_enforcer::agent::event_filter(&default_rules);
    let net_filter = falco_learn_enforcer::agent::net_filter(
        &default_rules.outbound_plan(),
        &default_rules.inbound_plan(),
    );
    // and the connect loop's port and peer
    let allow_out = [falco_learn_probe::filter::OutboundAllow {
        proto: falco_learn_probe::filter::IPPROTO_TCP,
        port: BENCH_PORT,
        addr: std::net::Ipv4Addr::LOCALHOST.into(),
        prefix: 32,
    }];
    // what the workers exec: themselves, then /bin/true (fork+exec loop)
    let allowed: Vec<String> = [std::env::current_exe()?, "/bin/true".into()]
        .iter()
        .map(|p| std::fs::canonicalize(p).map(|p| p.display().to_string()))
        .collect::<Result<_, _>>()?;
    // per-program run counts and times from the kernel, for every loop: counted in one
    // extra run after the timed ones (counting costs two clock reads per program run,
    // which would inflate the ratios). The timed runs need the counting off: a setting
    // left on (by another tool, or a bench that was killed) is switched off until the end.
    let timing_off = match falco_learn_probe::BpfStats::set(false) {
        Ok(g) => {
            if g.was_on() {
                eprintln!(
                    "bench: kernel.bpf_stats_enabled was 1 (every program run timed, two clock \
                     reads each): off for the timed runs, restored at the end"
                );
            }
            Some(g)
        }
        Err(e) => {
            eprintln!(
                "bench: kernel.bpf_stats_enabled could not be set ({e}): no per-program figures"
            );
            None
        }
    };
    let program_stats = timing_off.is_some();
    let kinds: Vec<LoopKind> = if a.loops.is_empty() {
        vec![
            LoopKind::OpenRead,
            LoopKind::OpenWrite,
            LoopKind::OpenWriteAllowed,
            LoopKind::OpenWriteUnprofiled,
            LoopKind::ForkExec,
            LoopKind::Connect,
            LoopKind::ConnectAllowed,
            LoopKind::Getppid,
        ]
    } else {
        a.loops.clone()
    };
    println!(
        "{:<36} {:>12} {:>12} {:>8} {:>12} {:>8} {:>9} {:>9}",
        "loop", "ns/op off", "ns/op on", "ratio", "events/s", "drops", "agent cpu", "RSS MiB"
    );
    let mut peer_lines = Vec::new();
    for kind in kinds {
        let cgroup = if matches!(kind, LoopKind::OpenWriteAllowed | LoopKind::ConnectAllowed) {
            Some(&filter_cgroup)
        } else {
            cgroup.as_ref()
        };
        let mut peer_on = Vec::new();
        let mut peer_cpu = Vec::new();
        let mut peer_rss = Vec::new();
        let iters = ((kind.iters() * a.scale) as u64).max(10);
        let mut off = Vec::new();
        let mut on = Vec::new();
        let mut rates = Vec::new();
        let mut cpus = Vec::new();
        let mut rss = Vec::new();
        let mut drops = 0u64;
        let mut alerts_total = 0u64;
        let mut programs: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
        for round in 0..a.rounds {
            // alternate which run goes first, so warm-up and drift hit both sides
            if round % 2 == 0 {
                off.push(run_worker(kind, iters, cgroup)?);
            }
            let engine = match &profiles {
                Some(dir) => Some(
                    falco_learn_enforcer::Engine::build(
                        &[],
                        falco_learn_rules::Priority::Debug,
                        falco_learn_enforcer::ProfilesFrom::Dir {
                            path: dir,
                            allow_empty: false,
                        },
                        falco_learn_rules::Priority::Warning,
                        "host",
                    )
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .0,
                ),
                None => None,
            };
            let defaults = ProbeConfig::default();
            let (probe, rx) = Probe::start(ProbeConfig {
                kill: a.kill,
                syscall_hook: a
                    .syscall_hook
                    .parse()
                    .map_err(|e: String| anyhow::anyhow!(e))?,
                ring_bytes: a.ring_mib.map_or(defaults.ring_bytes, |m| m * 1024 * 1024),
                ia32_syscalls: !a.no_ia32_watch,
                ..defaults
            })?;
            if let (Some(policy), Some(cg)) = (probe.kill_policy(), cgroup) {
                policy.set_profile(
                    1,
                    allowed
                        .iter()
                        .map(|p| falco_learn_probe::kill::AllowedExec::host_file(p)),
                )?;
                policy.enforce(cg.id, 1)?;
            }
            // engine.kernel_filter as `run` sets it: the default rules' write plan, and
            // the filter cgroup under a profile allowing the worker's file
            probe.set_write_filter(&write_filter)?;
            probe.set_net_filter(&net_filter)?;
            // and, as in every mode, the default rules' filter of socket and dup calls
            probe.set_event_filter(&event_filter)?;
            probe.profile_filter().set_profile(2, &allow)?;
            probe.profile_filter().set_outbound(2, &allow_out)?;
            probe
                .profile_filter()
                .set_inbound(2, &[(falco_learn_probe::filter::IPPROTO_TCP, BENCH_PORT)])?;
            probe.profile_filter().bind(filter_cgroup.id, 2)?;
            let count = Arc::new(AtomicU64::new(0));
            let c2 = count.clone();
            // open-write-unprofiled: (pid → exec id, start) of the workers' first writes
            let hellos: Arc<std::sync::Mutex<std::collections::HashMap<u32, (u32, u64)>>> =
                Arc::default();
            let h2 = hellos.clone();
            let consumer = std::thread::spawn(move || {
                let mut engine = engine;
                let mut alerts = 0u64;
                for ev in rx {
                    if ev.fd.as_ref().is_some_and(|f| f.name.ends_with(HELLO)) {
                        if let Ok(mut h) = h2.lock() {
                            h.insert(ev.process.pid, (ev.exec_id, ev.process.start_ts));
                        }
                    }
                    if let Some(e) = engine.as_mut() {
                        let v = e.evaluate(&ev);
                        for a in v.alerts() {
                            // what an output does: render the JSON alert
                            std::hint::black_box(serde_json::to_string(a).ok());
                            alerts += 1;
                        }
                    }
                    std::hint::black_box(&ev);
                    c2.fetch_add(1, Ordering::Relaxed);
                }
                alerts
            });
            // mark a worker as `run` marks a process no profile applies to, once its first
            // event has named it
            let mark = |pid: u32| -> anyhow::Result<()> {
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let seen = hellos.lock().ok().and_then(|h| h.get(&pid).copied());
                    if let Some((exec_id, start)) = seen {
                        probe
                            .profile_filter()
                            .mark_unprofiled(pid, exec_id, start)
                            .map_err(|e| anyhow::anyhow!("{e}"))?;
                        return Ok(());
                    }
                    anyhow::ensure!(
                        Instant::now() < deadline,
                        "the worker's first event did not arrive"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
            };
            let cpu0 = cpu_seconds();
            let t0 = Instant::now();
            on.push(run_worker_then(kind, iters, cgroup, &mark)?);
            // let the consumer catch up before reading the counters
            std::thread::sleep(Duration::from_millis(200));
            let el = t0.elapsed().as_secs_f64();
            cpus.push((cpu_seconds() - cpu0) / el);
            rss.push(rss_mib());
            let stats = probe.kernel_stats();
            drops += stats.iter().map(|(_, s)| s.dropped).sum::<u64>();
            if program_stats && round + 1 == a.rounds {
                // the untimed run with the kernel counting per program
                let before = probe.program_stats();
                let guard = falco_learn_probe::BpfStats::enable().ok();
                run_worker_then(kind, iters, cgroup, &mark)?;
                drop(guard);
                for p in probe.program_stats() {
                    let (r0, n0) = before
                        .iter()
                        .find(|b| b.name == p.name)
                        .map_or((0, 0), |b| (b.runs, b.ns));
                    let e = programs.entry(p.name).or_default();
                    e.0 += p.runs.saturating_sub(r0);
                    e.1 += p.ns.saturating_sub(n0);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            probe.stop();
            alerts_total += consumer.join().unwrap_or(0);
            rates.push(count.load(Ordering::Relaxed) as f64 / el);
            if round % 2 == 1 {
                off.push(run_worker(kind, iters, cgroup)?);
            }
            if let Some(cmd) = &a.peer {
                let (ns, cpu, rss) =
                    under_peer(cmd, a.peer_settle, || run_worker(kind, iters, cgroup))?;
                peer_on.push(ns);
                peer_cpu.push(cpu);
                peer_rss.push(rss);
            }
        }
        if !peer_on.is_empty() {
            let off = median(&mut off.clone());
            let p = median(&mut peer_on);
            peer_lines.push(format!(
                "{:<36} {:>12.0} {:>12.0} {:>7.3}x {:>12} {:>8} {:>8.0}% {:>9.1}",
                kind.label(),
                off,
                p,
                p / off,
                "-",
                "-",
                100.0 * median(&mut peer_cpu),
                median(&mut peer_rss)
            ));
        }
        let (off, on) = (median(&mut off), median(&mut on));
        println!(
            "{:<36} {:>12.0} {:>12.0} {:>7.3}x {:>12.0} {:>8} {:>8.0}% {:>9.1}",
            kind.label(),
            off,
            on,
            on / off,
            median(&mut rates),
            drops,
            100.0 * median(&mut cpus),
            median(&mut rss)
        );
        if a.agent {
            println!("{:<36} alerts raised in all rounds: {alerts_total}", "");
        }
        // the programs that ran per loop iteration, most expensive first
        let per_op = |(runs, ns): (u64, u64)| {
            (
                runs as f64 / iters as f64,
                if runs == 0 {
                    0.0
                } else {
                    ns as f64 / runs as f64
                },
            )
        };
        let mut hot: Vec<(&String, f64, f64)> = programs
            .iter()
            .map(|(n, v)| {
                let (runs, ns) = per_op(*v);
                (n, runs, ns)
            })
            .filter(|(_, runs, _)| *runs >= 0.5)
            .collect();
        hot.sort_by(|x, y| (y.1 * y.2).total_cmp(&(x.1 * x.2)));
        for (name, runs, ns) in hot {
            println!(
                "{:<36}   {name:<22} {runs:>6.2} runs/op {ns:>7.0} ns/run {:>7.0} ns/op",
                "",
                runs * ns
            );
        }
    }
    if let Some(cmd) = &a.peer {
        println!("\nthe same loops under the peer ({cmd}), alone (agent cpu: its own process, RSS: its peak):");
        for l in &peer_lines {
            println!("{l}");
        }
    }
    println!(
        "peak RSS of this process (probe + consumer{}): {:.1} MiB",
        if a.agent { " + engine" } else { "" },
        peak_rss_mib()
    );
    if let Some(dir) = profiles {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(ExitCode::SUCCESS)
}
