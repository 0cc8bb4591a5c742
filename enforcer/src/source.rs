//! Where the agent's events come from: the live probe ([`LiveSource`], `run`)
//! or a JSON-lines recording ([`RecordingSource`], `replay`). The
//! [`crate::pipeline::Pipeline`] is the same for both; a source also keeps the
//! clock (wall time live, the events' own time in a recording), counts what it
//! lost, and tells the kernel what the engine needs.

use crate::binding::ContainerMaps;
use crate::unprofiled::ProcessMarks;
use crate::Engine;
use falco_learn_event::{Event, JsonlReader};
use falco_learn_probe::{Probe, ProbeConfig};
use std::io::BufRead;
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

/// Wall time, ns since the epoch.
fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// What [`Source::next`] produced.
#[derive(Debug)]
pub enum Next {
    /// One event.
    Event(Box<Event>),
    /// Nothing within the wait (a live source only).
    Idle,
    /// No more events: the recording ended, or the probe stopped.
    End,
}

/// Where events were lost, for `falco_learn_drops_total` and drop alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LossStage {
    /// The kernel's ring buffer was full (per record kind).
    KernelRingbuf,
    /// The kernel could not read a syscall's arguments (per record kind): a 32-bit `socketcall` whose
    /// argument array was unmapped before its exit (reported without them; a `sendto` or
    /// `sendmsg` not at all). Not a drop of the ring buffer: no drop alert.
    KernelArgs,
    /// A record (or a recording's line) could not be decoded.
    Decode,
}

impl LossStage {
    /// The `stage` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            LossStage::KernelRingbuf => "kernel_ringbuf",
            LossStage::KernelArgs => "kernel_args",
            LossStage::Decode => "decode",
        }
    }

    /// Whether losses at this stage count towards the drop alert (Falco's
    /// "syscall event drop": events the kernel produced and the agent never
    /// saw; undecodable records are counted but not alerted on).
    pub fn alerts(self) -> bool {
        matches!(self, LossStage::KernelRingbuf)
    }
}

/// A running total of events lost at one stage, for one record kind (`any`
/// when the stage does not know it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    pub kind: &'static str,
    pub stage: LossStage,
    /// Since the source started (the pipeline takes differences).
    pub total: u64,
}

/// A running total of events dropped in the kernel on purpose ([`Source::kernel_filtered`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filtered {
    pub kind: &'static str,
    /// `rules` or `profile`.
    pub reason: &'static str,
    /// Since the source started (telemetry takes differences).
    pub total: u64,
}

/// Container runtime resolver counters, for the runtime metrics.
pub type RuntimeStats = falco_learn_probe::runtime::RuntimeStats;

/// A stream of events for the pipeline.
pub trait Source {
    /// The next event, waiting at most `wait` for one.
    fn next(&mut self, wait: Duration) -> Next;
    /// Now on this source's clock (ns since the epoch): wall time live, the
    /// last event's time in a recording. Ticks and drop alerts use it.
    fn now(&self) -> u64;
    /// Running totals of lost events; every (kind, stage) the source can
    /// lose is listed from the start (at 0).
    fn losses(&self) -> Vec<Loss>;
    /// The host name drop alerts carry.
    fn hostname(&self) -> String;
    /// After the engine was (re)built: make the kernel report what it needs.
    fn configure(&mut self, _engine: &Engine) {}
    /// Whether 32-bit syscalls go unseen on this source's kernel (a live source whose
    /// probe does not watch them: `engine.ia32_syscalls` off). A recording: false, as
    /// the probe's default.
    fn ia32_unwatched(&self) -> bool {
        false
    }
    /// enforce-kill's kernel maps (a live source in `enforce-kill` mode).
    fn kill_maps(&self) -> Option<&dyn ContainerMaps> {
        None
    }
    /// The kernel filter's maps (a live source in an enforce mode with
    /// `engine.kernel_filter`).
    fn filter_maps(&self) -> Option<&dyn ContainerMaps> {
        None
    }
    /// The kernel filter's marks of processes no profile applies to (with
    /// [`Source::filter_maps`]).
    fn process_marks(&self) -> Option<&dyn ProcessMarks> {
        None
    }
    /// Running totals of events dropped in the kernel on purpose, by record kind and
    /// reason (`rules`: no loaded rule needs it; `profile`: its container's profile allows
    /// it and no loaded rule can match it; `unprofiled`: no profile applies to the process
    /// and no loaded rule can match it).
    fn kernel_filtered(&self) -> Vec<Filtered> {
        Vec::new()
    }
    /// Container runtime counters (a live source with metadata resolution).
    fn runtime_stats(&self) -> Option<RuntimeStats> {
        None
    }
    /// Stop producing: what is already queued still comes out of
    /// [`Source::next`], then [`Next::End`].
    fn stop(&mut self) {}
}

/// The live probe.
pub struct LiveSource {
    probe: Option<Probe>,
    rx: falco_learn_probe::reader::Events,
    hostname: String,
    kinds: Vec<&'static str>,
    /// `engine.kernel_filter` in an enforce mode ([`LiveSource::kernel_filter`]).
    kernel_filter: bool,
    /// Execs whose cgroup's home the kernel could not remember (`KindStats::no_home`), as
    /// last read: the warning is given once, when it first is not 0.
    no_home_warned: std::sync::atomic::AtomicU64,
}

impl LiveSource {
    /// Drop in the kernel the write-opens a container's profile allows and no loaded rule
    /// can match (`engine.kernel_filter`; off by default, `run` turns it on).
    pub fn kernel_filter(mut self, on: bool) -> LiveSource {
        self.kernel_filter = on;
        self
    }

    /// Load and attach the probe.
    pub fn start(cfg: ProbeConfig) -> Result<LiveSource, falco_learn_probe::ProbeError> {
        let (probe, rx) = Probe::start(cfg)?;
        let hostname = falco_learn_probe::procfs::hostname();
        let kinds = falco_learn_probe::KINDS.iter().map(|k| k.name()).collect();
        Ok(LiveSource {
            probe: Some(probe),
            rx,
            hostname,
            kinds,
            kernel_filter: false,
            no_home_warned: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The probe (until stopped).
    pub fn probe(&self) -> Option<&Probe> {
        self.probe.as_ref()
    }

    /// The probe's kernel filter maps, when `engine.kernel_filter` is on.
    fn profile_filter(&self) -> Option<&falco_learn_probe::filter::ProfileFilter> {
        self.probe
            .as_ref()
            .filter(|_| self.kernel_filter)
            .map(|p| p.profile_filter())
    }

    fn log_attached(&self, attached: &[&str], detached: &[&str]) {
        let Some(probe) = &self.probe else { return };
        let now = probe.attached_syscalls();
        let mut changes = String::new();
        if !attached.is_empty() {
            changes.push_str(&format!("; attached {}", attached.join(", ")));
        }
        if !detached.is_empty() {
            changes.push_str(&format!(
                "; detached {} (no loaded rule or profile needs them)",
                detached.join(", ")
            ));
        }
        let ia32 = match (probe.ia32_watched(), probe.syscall_hook()) {
            (false, _) => "not watched",
            (true, falco_learn_probe::SyscallHook::Dispatch) => "watched (sys_exit dispatcher)",
            (true, _) => "watched (sys_exit)",
        };
        tracing::info!(
            "kernel: syscall programs attached for {}{changes}; 32-bit (ia32) syscalls {ia32}",
            if now.is_empty() {
                "no syscall (execs, forks and exits: the scheduler's tracepoints)".to_string()
            } else {
                now.join(", ")
            }
        );
    }
}

impl Source for LiveSource {
    fn next(&mut self, wait: Duration) -> Next {
        if self.probe.is_none() {
            return match self.rx.try_recv() {
                Ok(ev) => Next::Event(Box::new(ev)),
                Err(_) => Next::End,
            };
        }
        match self.rx.recv_timeout(wait) {
            Ok(ev) => Next::Event(Box::new(ev)),
            Err(RecvTimeoutError::Timeout) => Next::Idle,
            Err(RecvTimeoutError::Disconnected) => {
                tracing::error!("the probe stopped delivering events");
                Next::End
            }
        }
    }

    fn now(&self) -> u64 {
        now_ns()
    }

    fn losses(&self) -> Vec<Loss> {
        let Some(probe) = &self.probe else {
            return Vec::new();
        };
        // one read of the kernel's counters for all three uses below
        let stats = probe.kernel_stats();
        let mut out: Vec<Loss> = stats
            .iter()
            .map(|(kind, s)| Loss {
                kind: kind.name(),
                stage: LossStage::KernelRingbuf,
                total: s.dropped,
            })
            .collect();
        debug_assert_eq!(out.len(), self.kinds.len());
        let no_home: u64 = stats.iter().map(|(_, s)| s.no_home).sum();
        // once: the count goes on growing while the map stays full
        if no_home > 0 && self.no_home_warned.swap(no_home, Ordering::Relaxed) == 0 {
            tracing::warn!(
                execs = no_home,
                "the kernel's map of cgroup homes is full (65 536 cgroups that took one): \
                 execs in new cgroups are judged without the root they should exec from \
                 (a chroot into a neighbour's root, a setns or entering the host is not flagged \
                 other_root or host_root there)"
            );
        }
        // the kinds whose arguments the kernel may fail to read (ia32 socketcall's array)
        for (kind, s) in &stats {
            if matches!(
                kind.name(),
                "socket" | "connect" | "accept" | "accept4" | "sendto" | "sendmsg"
            ) {
                out.push(Loss {
                    kind: kind.name(),
                    stage: LossStage::KernelArgs,
                    total: s.lost_args,
                });
            }
        }
        out.push(Loss {
            kind: "any",
            stage: LossStage::Decode,
            total: probe.counters.decode_errors.load(Ordering::Relaxed),
        });
        out
    }

    fn hostname(&self) -> String {
        self.hostname.clone()
    }

    fn configure(&mut self, engine: &Engine) {
        let Some(probe) = self.probe.as_mut() else {
            return;
        };
        let plan = engine.read_open_plan();
        crate::agent::log_open_plan("read-only opens", &plan);
        if let Err(e) = probe.set_read_filter(&crate::agent::open_filter(&plan)) {
            tracing::error!("the kernel read filter was not updated: {e}");
        }
        let write = if self.kernel_filter {
            let plan = engine.write_open_plan();
            crate::agent::log_open_plan("write-opens", &plan);
            crate::agent::open_filter(&plan)
        } else {
            falco_learn_probe::filter::OpenFilterPlan::off()
        };
        if let Err(e) = probe.set_write_filter(&write) {
            tracing::error!("the kernel write filter was not updated: {e}");
        }
        let net = if self.kernel_filter {
            let (outbound, inbound) = (engine.outbound_plan(), engine.inbound_plan());
            crate::agent::log_net_plan(&outbound);
            crate::agent::log_net_plan(&inbound);
            crate::agent::net_filter(&outbound, &inbound)
        } else {
            falco_learn_probe::filter::NetFilterPlan::off()
        };
        if let Err(e) = probe.set_net_filter(&net) {
            tracing::error!("the kernel network filter was not updated: {e}");
        }
        let events = engine.event_filter_plan();
        crate::agent::log_event_filter(&events);
        if let Err(e) = probe.set_event_filter(&events) {
            tracing::error!("the kernel filter of socket and dup calls was not updated: {e}");
        }
        match probe.set_syscalls(Some(&engine.needed_syscalls())) {
            Ok((attached, detached)) => self.log_attached(&attached, &detached),
            Err(e) => tracing::error!("the syscall programs were not updated: {e}"),
        }
    }

    fn ia32_unwatched(&self) -> bool {
        self.probe.as_ref().is_some_and(|p| !p.ia32_watched())
    }

    fn kill_maps(&self) -> Option<&dyn ContainerMaps> {
        self.probe
            .as_ref()
            .and_then(|p| p.kill_policy())
            .map(|k| k as &dyn ContainerMaps)
    }

    fn filter_maps(&self) -> Option<&dyn ContainerMaps> {
        self.profile_filter().map(|f| f as &dyn ContainerMaps)
    }

    fn process_marks(&self) -> Option<&dyn ProcessMarks> {
        self.profile_filter().map(|f| f as &dyn ProcessMarks)
    }

    fn kernel_filtered(&self) -> Vec<Filtered> {
        let Some(probe) = self.probe.as_ref() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (kind, s) in probe.kernel_stats() {
            if s.filtered > 0 {
                out.push(Filtered {
                    kind: kind.name(),
                    reason: "rules",
                    total: s.filtered,
                });
            }
            if s.profile_filtered > 0 {
                out.push(Filtered {
                    kind: kind.name(),
                    reason: "profile",
                    total: s.profile_filtered,
                });
            }
            if s.unprofiled_filtered > 0 {
                out.push(Filtered {
                    kind: kind.name(),
                    reason: "unprofiled",
                    total: s.unprofiled_filtered,
                });
            }
        }
        out
    }

    fn runtime_stats(&self) -> Option<RuntimeStats> {
        self.probe.as_ref().and_then(|p| p.runtime_stats())
    }

    fn stop(&mut self) {
        if let Some(p) = self.probe.take() {
            p.stop();
        }
    }
}

/// A JSON-lines recording (`record -o`, `run --record`). Unreadable lines
/// are logged with their line number and counted as decode losses.
pub struct RecordingSource<R> {
    reader: JsonlReader<R>,
    /// Events read (numbers events that carry none, like the live probe).
    events: u64,
    bad: u64,
    last_ts: u64,
    hostname: String,
}

impl<R: BufRead> RecordingSource<R> {
    /// Read `input`, named `name` in messages (a path, or `-`).
    pub fn new(input: R, name: &str) -> RecordingSource<R> {
        RecordingSource {
            reader: JsonlReader::new(input, name),
            events: 0,
            bad: 0,
            last_ts: 0,
            hostname: String::new(),
        }
    }

    /// Events read so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Lines that were not events.
    pub fn unreadable(&self) -> u64 {
        self.bad
    }
}

impl<R: BufRead> Source for RecordingSource<R> {
    fn next(&mut self, _wait: Duration) -> Next {
        for item in self.reader.by_ref() {
            match item {
                Ok(mut ev) => {
                    self.events += 1;
                    if ev.num == 0 {
                        ev.num = self.events;
                    }
                    self.last_ts = self.last_ts.max(ev.ts);
                    if self.hostname.is_empty() {
                        self.hostname = ev.hostname.to_string();
                    }
                    return Next::Event(Box::new(ev));
                }
                Err(e) => {
                    self.bad += 1;
                    tracing::error!("{e}");
                }
            }
        }
        Next::End
    }

    fn now(&self) -> u64 {
        self.last_ts
    }

    fn losses(&self) -> Vec<Loss> {
        vec![Loss {
            kind: "any",
            stage: LossStage::Decode,
            total: self.bad,
        }]
    }

    fn hostname(&self) -> String {
        self.hostname.clone()
    }
}
