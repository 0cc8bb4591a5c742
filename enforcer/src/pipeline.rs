//! The agent: `source → engine → outputs + telemetry`.
//!
//! One loop for the live probe (`run`) and for a recording (`replay`):
//! receive an event, evaluate it ([`Engine::evaluate`]), keep enforce-kill's
//! containers in step (enforce-kill's and the kernel filter's [`Binder`]s), hand the alerts to the [`AlertSink`],
//! count. Once a second on the source's clock: losses (and a drop alert past
//! the threshold), enforce-kill's sweep, resolver and process metrics. A
//! reload (SIGHUP) builds the next engine on a thread of its own while the
//! running one keeps evaluating.

use crate::binding::Binder;
use crate::outputs::Outputs;
use crate::source::{Next, Source};
use crate::telemetry::Telemetry;
use crate::unprofiled::Unprofiled;
use crate::{Action, Cause, Engine, Raised};
use falco_learn_rules::{Alert, Priority};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where alerts go.
pub trait AlertSink {
    /// Deliver one alert. An error stops the pipeline (e.g. a closed pipe).
    fn emit(&mut self, raised: &Raised) -> std::io::Result<()>;
    /// Reopen files (SIGHUP, for logrotate).
    fn reopen(&mut self) {}
    /// Deliver what is queued, waiting at most `deadline`.
    fn close(&mut self, _deadline: Duration) -> std::io::Result<()> {
        Ok(())
    }
}

impl AlertSink for Outputs {
    fn emit(&mut self, raised: &Raised) -> std::io::Result<()> {
        Outputs::emit(self, &raised.alert);
        Ok(())
    }
    fn reopen(&mut self) {
        Outputs::reopen(self)
    }
    fn close(&mut self, deadline: Duration) -> std::io::Result<()> {
        Outputs::close(self, deadline);
        Ok(())
    }
}

/// Falco JSON alerts, one a line (`replay`).
pub struct JsonLines<W: Write>(pub W);

impl<W: Write> AlertSink for JsonLines<W> {
    fn emit(&mut self, raised: &Raised) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.0, &raised.alert)?;
        self.0.write_all(b"\n")
    }
    fn close(&mut self, _deadline: Duration) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Alerts kept in memory (tests).
#[derive(Debug, Default)]
pub struct Collect(pub Vec<Raised>);

impl AlertSink for Collect {
    fn emit(&mut self, raised: &Raised) -> std::io::Result<()> {
        self.0.push(raised.clone());
        Ok(())
    }
}

/// Requests from outside the loop (signals, for `run`).
pub trait Control {
    /// Stop now (SIGINT, SIGTERM): what the source has queued is still evaluated.
    fn stop_requested(&self) -> bool {
        false
    }
    /// Reload rules and profiles (SIGHUP), true once per request.
    fn take_reload(&self) -> bool {
        false
    }
}

/// No requests: run until the source ends.
pub struct NoControl;
impl Control for NoControl {}

/// Builds the next engine on a reload (reads the configuration and files again).
pub type Rebuild = Arc<dyn Fn() -> Result<Engine, String> + Send + Sync>;

/// Drop alerts (Falco's "syscall event drop").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropAlerts {
    /// Alert when this fraction of a second's events was lost; 0 disables.
    pub threshold: f64,
    /// At most one drop alert per this long.
    pub rate_limit: Duration,
}

/// How the pipeline runs.
#[derive(Clone)]
pub struct Options {
    pub drops: DropAlerts,
    /// Stop after this long (wall time); `None`: until the source ends or a stop request.
    pub until: Option<Duration>,
    /// Bound on delivering queued alerts at the end.
    pub shutdown_timeout: Duration,
    /// Rebuilds the engine on a reload request; `None`: reloads are ignored.
    pub rebuild: Option<Rebuild>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            drops: DropAlerts {
                threshold: 0.0,
                rate_limit: Duration::from_secs(30),
            },
            until: None,
            shutdown_timeout: Duration::from_secs(5),
            rebuild: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub events: u64,
    pub alerts: u64,
    pub anomalies: u64,
    pub kills: u64,
    pub drop_alerts: u64,
}

/// A running pipeline's state.
pub struct Pipeline<'a> {
    pub engine: Engine,
    source: &'a mut dyn Source,
    sink: &'a mut dyn AlertSink,
    control: &'a dyn Control,
    opts: Options,
    /// Every event evaluated is also written here (JSON lines), e.g. `run --record`.
    record: Option<Box<dyn Write + 'a>>,
    killer: Option<Binder>,
    /// The kernel filter's containers (`engine.kernel_filter` in an enforce mode).
    filterer: Option<Binder>,
    /// The kernel filter's processes no profile applies to.
    unprofiled: Option<Unprofiled>,
    telemetry: Telemetry,
    summary: Summary,
    ia32: Ia32Alerts,
    /// Containers whose kill from userspace failed (said once each).
    late_kill_failed: ahash::AHashSet<String>,
}

const TICK_NS: u64 = 1_000_000_000;

/// The runtime setting a container up, as a kill from userspace tells it: the matcher's
/// test (`runc init`'s stages in the host's pid namespace: named `runc…`, running `/`,
/// runc's memfd copy or a `…/runc`) with a parent that runs `…/runc` in the host's pid
/// namespace and outside the exec's container (`runc create`, `run` or `exec`, in the
/// runtime's cgroup: the host's, or an outer container's for a nested runtime). A hostPID
/// container's process can give itself runc's name and run a copy called `runc` under a
/// parent that runs one too, but that parent is in the container (a process's container is
/// what its cgroup names, and a cgroup made below the container's names it too).
fn runc_setup(ev: &falco_learn_event::Event) -> bool {
    falco_learn_profiler::matcher::is_runtime_setup(ev)
        && ev.ancestors.first().is_some_and(|a| {
            a.vpid == a.pid
                && a.exepath.ends_with("/runc")
                && !a.container_id.is_empty()
                && a.container_id != ev.container.id
        })
}

/// enforce-kill from userspace: an exec of an executable outside its image's profile (the
/// kernel's rule, which the verdict follows: [`crate::Engine::evaluate_judged`]; an allowed
/// executable from an unexpected parent is alerted only) that the kernel could not judge (the event's cgroup was not under the profile when it happened: a new
/// container's first processes, before its image was known; a cgroup shared with others
/// or refused by the map) is killed now, and its alert says `action=killed_late`. The
/// program has run until then. `None` when there was nothing to kill; the kill's error when
/// it failed.
fn kill_late(
    verdict: &mut crate::Verdict,
    ev: &falco_learn_event::Event,
) -> Option<std::io::Result<()>> {
    use falco_learn_probe::kill::{kill_process, LateKill};
    use falco_learn_profiler::Dimension;
    let a = verdict.anomaly.as_mut()?;
    let c = &ev.container;
    if a.dimension != Dimension::Exec
        || a.parent.is_some()
        || a.action != Action::Alerted
        || ev.process.exe_flags.killed
        || c.id.is_empty()
        || c.id == "host"
    {
        return None;
    }
    let p = &ev.process;
    match kill_process(p.pid, p.start_ts, ev.ts) {
        Ok(LateKill::Killed { descendants }) => {
            a.action = Action::KilledLate;
            for r in verdict
                .alerts
                .iter_mut()
                .filter(|r| r.cause == Cause::Anomaly(Dimension::Exec))
            {
                r.action = Action::KilledLate;
                crate::mark_action(&mut r.alert, Action::KilledLate);
            }
            tracing::info!(
                "enforce-kill: killed {} (pid {}) in container {} from userspace, with {} \
                 process(es) it started since its exec: it ran before its cgroup was under \
                 the profile in the kernel",
                p.exepath,
                p.pid,
                c.id,
                descendants
            );
            Some(Ok(()))
        }
        Ok(LateKill::Gone) => None,
        Err(e) => Some(Err(e)),
    }
}

impl<'a> Pipeline<'a> {
    /// Wire `engine` between `source` and `sink`, and tell the source what the
    /// engine needs (syscalls, read filter, enforce-kill's allow-lists).
    pub fn new(
        engine: Engine,
        source: &'a mut dyn Source,
        sink: &'a mut dyn AlertSink,
        control: &'a dyn Control,
        opts: Options,
    ) -> Pipeline<'a> {
        let mut telemetry = Telemetry::new();
        source.configure(&engine);
        telemetry.profiles(&engine);
        // every loss counter exists (at 0) from the start, so dashboards see it
        telemetry.losses(&source.losses());
        let killer = source.kill_maps().map(|maps| {
            let mut k = Binder::new();
            k.sync(maps, &engine);
            telemetry.kill_containers(k.enforced());
            k
        });
        let filterer = source.filter_maps().map(|maps| {
            let mut k = Binder::new();
            k.sync(maps, &engine);
            telemetry.filter_containers(k.enforced());
            k
        });
        let unprofiled = source.process_marks().map(|_| {
            tracing::info!(
                "kernel filter: processes no profile applies to (the host without a host \
                 profile, containers of images without one) are filtered by the rules alone: \
                 what no loaded rule can match is dropped in the kernel"
            );
            Unprofiled::new()
        });
        let ia32 = Ia32Alerts::new(source.ia32_unwatched());
        Pipeline {
            engine,
            source,
            sink,
            control,
            opts,
            record: None,
            killer,
            filterer,
            unprofiled,
            telemetry,
            summary: Summary::default(),
            ia32,
            late_kill_failed: ahash::AHashSet::new(),
        }
    }

    /// Also write every event evaluated to `out` (JSON lines). A recording is meant to hold
    /// what happened: the processes no profile applies to are not filtered in the kernel
    /// while it is made (they are what one learns from a recording next); what a
    /// container's profile allows still is (`-o engine.kernel_filter=false` keeps it all).
    pub fn record_to(&mut self, out: Box<dyn Write + 'a>) {
        if self.unprofiled.take().is_some() {
            tracing::info!(
                "--record: processes no profile applies to are not filtered in the kernel, \
                 so that the recording holds what they do"
            );
        }
        self.record = Some(out);
    }

    /// Whether enforce-kill is on (the source has kill maps).
    pub fn kills(&self) -> bool {
        self.killer.is_some()
    }

    /// enforce-kill's kills whose events were lost since the last call: one internal alert
    /// per cgroup ([`unreported_kills_alert`]), counted as kills.
    fn report_unreported_kills(&mut self, now: u64) -> std::io::Result<()> {
        let (Some(k), Some(maps)) = (self.killer.as_mut(), self.source.kill_maps()) else {
            return Ok(());
        };
        for u in k.unreported_kills(maps) {
            let r = Raised {
                cause: Cause::Internal,
                action: Action::Killed,
                alert: unreported_kills_alert(&self.source.hostname(), &u, now),
            };
            self.telemetry.unreported_kills(u.image.as_deref(), u.kills);
            self.telemetry.raised(&r);
            self.sink.emit(&r)?;
        }
        Ok(())
    }

    /// Run until the source ends, a stop request, or `until`. Errors: the
    /// sink's or the recording's (the pipeline stops at the first).
    pub fn run(mut self) -> std::io::Result<Summary> {
        let started = Instant::now();
        let mut last_tick = 0u64;
        let mut events_in_tick = 0u64;
        let mut last_drop_alert: Option<u64> = None;
        let mut reloading: Option<std::thread::JoinHandle<Result<Engine, String>>> = None;
        let mut reload_again = false;
        let mut stopping = false;
        loop {
            if !stopping
                && (self.control.stop_requested()
                    || self.opts.until.is_some_and(|d| started.elapsed() >= d))
            {
                stopping = true;
                self.source.stop();
            }
            if self.control.take_reload() {
                self.sink.reopen();
                if reloading.is_some() {
                    // One reload at a time; the files are read again after it.
                    reload_again = true;
                } else {
                    reloading = self.start_reload();
                }
            }
            if reloading.as_ref().is_some_and(|h| h.is_finished()) {
                if let Some(h) = reloading.take() {
                    self.finish_reload(h);
                }
                if std::mem::take(&mut reload_again) {
                    reloading = self.start_reload();
                }
            }
            let ev = match self.source.next(Duration::from_millis(100)) {
                Next::Event(ev) => Some(ev),
                Next::Idle => None,
                Next::End => break,
            };
            if let Some(ev) = ev {
                events_in_tick += 1;
                self.event(&ev)?;
            }
            let now = self.source.now();
            if last_tick == 0 {
                last_tick = now;
            }
            if now.saturating_sub(last_tick) >= TICK_NS {
                let secs = (now - last_tick) as f64 / 1e9;
                last_tick = now;
                let dropped = self.telemetry.losses(&self.source.losses());
                let total = events_in_tick + dropped;
                events_in_tick = 0;
                let d = self.opts.drops;
                if d.threshold > 0.0
                    && dropped > 0
                    && dropped as f64 / total.max(1) as f64 >= d.threshold
                    && last_drop_alert
                        .is_none_or(|t| now.saturating_sub(t) >= d.rate_limit.as_nanos() as u64)
                {
                    last_drop_alert = Some(now);
                    let r = Raised {
                        cause: Cause::Internal,
                        action: Action::Alerted,
                        alert: drop_alert(&self.source.hostname(), dropped, total, secs, now),
                    };
                    self.telemetry.raised(&r);
                    self.summary.drop_alerts += 1;
                    self.sink.emit(&r)?;
                }
                // before the sweep, which may release their cgroups
                self.report_unreported_kills(now)?;
                if let (Some(k), Some(maps)) = (self.killer.as_mut(), self.source.kill_maps()) {
                    k.sweep(maps);
                    self.telemetry.kill_containers(k.enforced());
                }
                if let (Some(k), Some(maps)) = (self.filterer.as_mut(), self.source.filter_maps()) {
                    k.sweep(maps);
                    self.telemetry.filter_containers(k.enforced());
                }
                if let (Some(u), Some(marks)) =
                    (self.unprofiled.as_mut(), self.source.process_marks())
                {
                    u.sweep(marks, &crate::unprofiled::process_alive);
                }
                self.telemetry
                    .kernel_filtered(&self.source.kernel_filtered());
                self.telemetry.tick(self.source.runtime_stats());
            }
        }
        if let Some(h) = reloading.take() {
            // a reload asked for is finished (and counted) before the end
            self.finish_reload(h);
        }
        self.telemetry.losses(&self.source.losses());
        // kills of the last tick whose events were lost
        self.report_unreported_kills(self.source.now())?;
        if let Some(r) = self.record.as_mut() {
            r.flush()?;
        }
        // bounded: what an output has not taken by then is counted and left behind
        self.sink.close(self.opts.shutdown_timeout)?;
        Ok(self.summary)
    }

    fn event(&mut self, ev: &falco_learn_event::Event) -> std::io::Result<()> {
        self.summary.events += 1;
        self.telemetry.event(ev);
        if let Some(r) = self.record.as_mut() {
            falco_learn_event::write_jsonl(r, ev)?;
        }
        // the binders first: this event may put its cgroup under its profile
        if let (Some(k), Some(maps)) = (self.killer.as_mut(), self.source.kill_maps()) {
            let before = k.enforced();
            k.observe(maps, &self.engine, ev);
            if k.enforced() != before {
                self.telemetry.kill_containers(k.enforced());
            }
        }
        if let (Some(k), Some(maps)) = (self.filterer.as_mut(), self.source.filter_maps()) {
            let before = k.enforced();
            k.observe(maps, &self.engine, ev);
            if k.enforced() != before {
                self.telemetry.filter_containers(k.enforced());
            }
        }
        if let (Some(u), Some(marks)) = (self.unprofiled.as_mut(), self.source.process_marks()) {
            u.observe(marks, &self.engine, ev);
        }
        let unjudged = self
            .killer
            .as_ref()
            .is_some_and(|k| !k.judged_in_kernel(ev))
            && self
                .source
                .kill_maps()
                .is_some_and(|m| !m.never_enforced(ev.cgroup_id));
        // an exec the kernel did not judge is judged as the kernel would have (its file's
        // place included). The kernel spares the runtime's own child (`exe_flags.runtime`,
        // in `would_kill`); from here, so is the runtime setting a container up that the
        // kernel never judges (a cgroup shared with the host's runc, a runc that does not
        // run from the host's root) when its parent runs runc ([`runc_setup`])
        let kernel_kills = unjudged
            && matches!(
                ev.event_type(),
                falco_learn_event::EventType::Execve | falco_learn_event::EventType::Execveat
            )
            && !runc_setup(ev)
            && match (self.killer.as_ref(), self.source.kill_maps()) {
                (Some(k), Some(maps)) => k.would_kill(maps, &self.engine, ev),
                _ => false,
            };
        // one event in EVAL_TIMED_EVERY is timed: the histogram's samples are buffered
        // until the exporter's upkeep, so timing every event cost 8 bytes each (16 MiB
        // of RSS between two upkeeps at 400 k events/s) and two clock reads
        let t0 = self
            .summary
            .events
            .is_multiple_of(crate::metrics::EVAL_TIMED_EVERY)
            .then(Instant::now);
        let mut verdict = self.engine.evaluate_judged(ev, kernel_kills);
        if let Some(t0) = t0 {
            self.telemetry.evaluated(t0.elapsed().as_secs_f64());
        }
        if unjudged {
            match kill_late(&mut verdict, ev) {
                None => {}
                Some(Ok(())) => {
                    self.summary.kills += 1;
                    self.telemetry.late_kill(ev, true);
                }
                Some(Err(e)) => {
                    self.telemetry.late_kill(ev, false);
                    // said once per container (a flood of refused kills is counted)
                    if self.late_kill_failed.len() >= 4096 {
                        self.late_kill_failed.clear();
                    }
                    if self.late_kill_failed.insert(ev.container.id.clone()) {
                        tracing::warn!(
                            "enforce-kill: cannot kill {} (pid {}) in container {} from \
                             userspace: {e} (without CAP_KILL, or refused by a security \
                             module; said once per container, counted in \
                             falco_learn_late_kills_total{{result=\"failed\"}})",
                            ev.process.exepath,
                            ev.process.pid,
                            ev.container.id
                        );
                    }
                }
            }
        }
        if verdict.killed {
            self.summary.kills += 1;
            if verdict
                .anomaly
                .as_ref()
                .is_none_or(|a| a.action != Action::Killed)
            {
                // the kernel judged the exec by a profile its event's container does not
                // name (a cgroup below a profiled container's named like another container,
                // a nested runtime's container) or one reloaded meanwhile: said all the same
                let r = Raised {
                    cause: Cause::Internal,
                    action: Action::Killed,
                    alert: unmatched_kill_alert(ev),
                };
                self.summary.alerts += 1;
                self.telemetry.raised(&r);
                self.sink.emit(&r)?;
            }
        }
        if let Some(img) = &verdict.new_unprofiled {
            tracing::info!("image {img} has no profile: only the default rules apply to it");
        }
        if verdict.anomaly.is_some() {
            self.summary.anomalies += 1;
        }
        self.telemetry.verdict(&verdict, ev);
        for r in &verdict.alerts {
            self.summary.alerts += 1;
            self.telemetry.raised(r);
            self.sink.emit(r)?;
        }
        if let Some(r) = self.ia32.raise(ev) {
            self.summary.alerts += 1;
            self.telemetry.raised(&r);
            self.sink.emit(&r)?;
        }
        Ok(())
    }

    fn start_reload(&self) -> Option<std::thread::JoinHandle<Result<Engine, String>>> {
        let rebuild = self.opts.rebuild.clone()?;
        let spawned = std::thread::Builder::new()
            .name("reload".into())
            // Compiling recurses on conditions (bounded by the rules limits);
            // room to spare over the default 2 MiB.
            .stack_size(8 << 20)
            .spawn(move || rebuild());
        match spawned {
            Ok(h) => Some(h),
            Err(e) => {
                self.telemetry.reload(false);
                tracing::error!("SIGHUP: cannot start the reload ({e}); keeping the running rules");
                None
            }
        }
    }

    fn finish_reload(&mut self, h: std::thread::JoinHandle<Result<Engine, String>>) {
        match h.join() {
            Ok(Ok(mut e)) => {
                for img in e.keep_running_profiles(&self.engine) {
                    tracing::warn!(
                        "SIGHUP: the profile of {img} no longer loads (see above); keeping the \
                         running version"
                    );
                }
                // first, before the new plans and profiles reach the kernel: the marked
                // processes may have a profile now
                if let (Some(u), Some(marks)) =
                    (self.unprofiled.as_mut(), self.source.process_marks())
                {
                    u.reset(marks);
                }
                self.engine = e;
                self.telemetry.profiles(&self.engine);
                self.source.configure(&self.engine);
                if let (Some(k), Some(maps)) = (self.killer.as_mut(), self.source.kill_maps()) {
                    k.sync(maps, &self.engine);
                    self.telemetry.kill_containers(k.enforced());
                }
                if let (Some(k), Some(maps)) = (self.filterer.as_mut(), self.source.filter_maps()) {
                    k.sync(maps, &self.engine);
                    self.telemetry.filter_containers(k.enforced());
                }
                self.telemetry.reload(true);
                tracing::info!("SIGHUP: rules and profiles reloaded");
            }
            Ok(Err(e)) => {
                self.telemetry.reload(false);
                tracing::error!(
                    "SIGHUP: reload failed, keeping the running rules and profiles: {e}"
                );
            }
            Err(_) => {
                self.telemetry.reload(false);
                tracing::error!("SIGHUP: reload crashed, keeping the running rules and profiles");
            }
        }
    }
}

/// The rule name of [`Ia32Alerts`]' alert for a 32-bit program's exec, on a node where
/// 32-bit syscalls are not watched (`engine.ia32_syscalls: false`).
pub const IA32_RULE: &str = "falco-learn internal: 32-bit program not monitored";

/// The rule name of [`Ia32Alerts`]' alert for a 32-bit syscall of a program not known to be
/// 32-bit: a 64-bit program's `int 0x80`, or an x32 call.
pub const IA32_SYSCALL_RULE: &str = "falco-learn internal: 32-bit system call by a 64-bit program";

/// The rule name of [`Ia32Alerts`]' alert for a connect whose arguments were hidden: a
/// 32-bit `socketcall` connect that ran, whose argument array another thread unmapped before
/// the call's exit (the probe reports it with descriptor -1 and no peer).
pub const HIDDEN_ARGS_RULE: &str = "falco-learn internal: system call arguments hidden";

/// The alerts of 32-bit (ia32 and x32) syscalls, which the kernel's syscall tracepoints skip.
/// Where they are watched (the default), the probe hands each to the handler of its 64-bit
/// twin, so the rules and the profiles judge the files and connections a process opens
/// through them like any other; and a 64-bit program that makes one anyway is doing what
/// exploits and evasions do (e.g. to slip past tools that watch 64-bit syscalls only), which
/// a user should hear of:
/// - A 32-bit syscall (the kernel reports the first of each process exec,
///   `evt.type=ia32_syscall`) of a process whose executable is not 32-bit (its exec seen as
///   one, or its ELF header at the agent's start) raises [`IA32_SYSCALL_RULE`].
/// - Where they are not watched, a 32-bit program runs unseen after its exec: its
///   successful exec raises [`IA32_RULE`].
/// - A connect that ran with descriptor -1 (only the probe's report of a 32-bit
///   `socketcall` whose arguments were unmapped meanwhile: the kernel refuses fd -1) raises
///   [`HIDDEN_ARGS_RULE`]: its peer is unknown, and hiding it is what an evasion does.
///
/// Each is raised once per (container, executable) per agent run (the memory of which is
/// bounded: forgotten, and so raised again, past [`Ia32Alerts::REMEMBERED`] pairs).
struct Ia32Alerts {
    program: falco_learn_rules::output::OutputFormat,
    syscall: falco_learn_rules::output::OutputFormat,
    hidden: falco_learn_rules::output::OutputFormat,
    /// 32-bit syscalls are not watched: a 32-bit program's exec raises [`IA32_RULE`].
    unwatched: bool,
    seen: std::collections::HashSet<(&'static str, String, String)>,
}

impl Ia32Alerts {
    const REMEMBERED: usize = 4096;
    const PROGRAM_OUTPUT: &'static str = "32-bit (ia32) program run: falco-learn does not see its \
        system calls on this node (engine.ia32_syscalls is off: files, network, writes; rules \
        and profiles cannot judge what it does) \
        (proc.exepath=%proc.exepath proc.cmdline=%proc.cmdline proc.pid=%proc.pid \
        proc.pname=%proc.pname user.name=%user.name container.id=%container.id \
        container.image.repository=%container.image.repository)";
    const SYSCALL_OUTPUT: &'static str = "32-bit system call by a 64-bit program (int 0x80 \
        or an x32 call: rare outside exploits and attempts to evade syscall monitoring; its \
        files and connections are judged as their 64-bit twins') \
        (evt.arg.ID=%evt.arg.ID proc.exepath=%proc.exepath proc.cmdline=%proc.cmdline \
        proc.pid=%proc.pid proc.pname=%proc.pname user.name=%user.name \
        container.id=%container.id container.image.repository=%container.image.repository)";
    const HIDDEN_OUTPUT: &'static str = "Connect whose arguments were hidden: a 32-bit \
        socketcall connect ran, and another thread of the process unmapped its arguments \
        before the call returned (the peer is unknown; an evasion) (evt.res=%evt.res \
        proc.exepath=%proc.exepath proc.cmdline=%proc.cmdline proc.pid=%proc.pid \
        proc.pname=%proc.pname user.name=%user.name container.id=%container.id \
        container.image.repository=%container.image.repository)";

    fn new(unwatched: bool) -> Ia32Alerts {
        // constant formats of known fields: a failure is a bug, caught by the tests
        let compile = |f: &str| {
            falco_learn_rules::output::OutputFormat::compile(f)
                .unwrap_or_else(|e| panic!("the ia32 alert's output: {e:?}"))
        };
        Ia32Alerts {
            program: compile(Self::PROGRAM_OUTPUT),
            syscall: compile(Self::SYSCALL_OUTPUT),
            hidden: compile(Self::HIDDEN_OUTPUT),
            unwatched,
            seen: std::collections::HashSet::new(),
        }
    }

    /// The alert for `ev` when it is a successful exec of a 32-bit program where 32-bit
    /// syscalls are not watched, or a 32-bit syscall of a process not known as a 32-bit
    /// program, not alerted on yet for its container and executable.
    fn raise(&mut self, ev: &falco_learn_event::Event) -> Option<Raised> {
        use falco_learn_event::EventType;
        let (rule, output) = match ev.event_type() {
            EventType::Execve | EventType::Execveat
                if self.unwatched && ev.process.exe_flags.ia32 && ev.res >= 0 =>
            {
                (IA32_RULE, &self.program)
            }
            EventType::Ia32Syscall if !ev.process.exe_flags.ia32 => {
                (IA32_SYSCALL_RULE, &self.syscall)
            }
            EventType::Connect
                if matches!(ev.args, falco_learn_event::Args::Connect { fd: -1, .. })
                    && (ev.res == 0 || ev.res == -falco_learn_event::errno::EINPROGRESS) =>
            {
                (HIDDEN_ARGS_RULE, &self.hidden)
            }
            _ => return None,
        };
        let key = (rule, ev.container.id.clone(), ev.process.exepath.clone());
        if self.seen.contains(&key) {
            return None;
        }
        if self.seen.len() >= Self::REMEMBERED {
            self.seen.clear();
        }
        self.seen.insert(key);
        let priority = Priority::Warning;
        Some(Raised {
            cause: Cause::Internal,
            action: Action::Alerted,
            alert: Alert {
                hostname: falco_learn_rules::output::na_if_empty(&ev.hostname).to_string(),
                output: format!(
                    "{}: {} {}",
                    falco_learn_event::fields::clock_time(ev.ts),
                    priority.as_str(),
                    output.format(ev)
                ),
                output_fields: output.fields_json(ev),
                priority: priority.as_str().into(),
                rule: rule.into(),
                source: "syscall".into(),
                tags: vec!["falco_learn".into(), "internal".into(), "ia32".into()],
                time: falco_learn_event::time::rfc3339(ev.ts),
            },
        })
    }
}

/// The rule of [`unreported_kills_alert`].
pub const UNREPORTED_KILLS_RULE: &str = "falco-learn internal: enforce-kill kills not reported";

/// enforce-kill killed execs in the kernel whose events were lost (the ring buffer was
/// full): no profile alert says which; this says how many and where, so that a kill is
/// never silent.
pub fn unreported_kills_alert(
    hostname: &str,
    u: &crate::binding::UnreportedKills,
    now: u64,
) -> Alert {
    let container = u.container.as_deref().unwrap_or("<NA>");
    let image = u.image.as_deref().unwrap_or("<NA>");
    let mut fields = serde_json::Map::new();
    fields.insert("container.id".into(), container.into());
    fields.insert("container.image".into(), image.into());
    fields.insert("falco_learn.action".into(), Action::Killed.as_str().into());
    fields.insert("falco_learn.cgroup_id".into(), u.cgroup.into());
    fields.insert("n_kills".into(), u.kills.into());
    let msg = format!(
        "{UNREPORTED_KILLS_RULE}: {} exec(s) outside the profile killed in the kernel whose \
         events were lost (ring buffer full) (container={container} image={image} cgroup={}) \
         action=killed",
        u.kills, u.cgroup
    );
    internal_alert(
        hostname,
        UNREPORTED_KILLS_RULE,
        &msg,
        fields,
        &["killed"],
        now,
    )
}

/// The rule of [`unmatched_kill_alert`].
pub const UNMATCHED_KILL_RULE: &str =
    "falco-learn internal: enforce-kill kill no profile alert names";

/// enforce-kill killed an exec in the kernel that no profile alert names: the kernel
/// judged it by the profile of the cgroup it ran in or of the nearest ancestor cgroup
/// under one (a cgroup made below a profiled container's and named like another container,
/// whose image is not known; an inner container of a nested runtime), while its event names
/// another container, or the profiles were reloaded meanwhile. Said so that a kill is never
/// silent.
pub fn unmatched_kill_alert(ev: &falco_learn_event::Event) -> Alert {
    let c = &ev.container;
    let p = &ev.process;
    let image = c.image_or_na();
    let mut fields = serde_json::Map::new();
    fields.insert("container.id".into(), c.id.clone().into());
    fields.insert("container.image".into(), image.clone().into());
    fields.insert("proc.exepath".into(), p.exepath.clone().into());
    fields.insert("proc.pid".into(), p.pid.into());
    fields.insert("proc.name".into(), p.comm.clone().into());
    fields.insert("falco_learn.action".into(), Action::Killed.as_str().into());
    fields.insert("falco_learn.cgroup_id".into(), ev.cgroup_id.into());
    let msg = format!(
        "{UNMATCHED_KILL_RULE}: an exec outside the profile of the container whose cgroup it \
         ran in, or below, was killed in the kernel (exe={} pid={} container={} image={} \
         cgroup={}) action=killed",
        p.exepath, p.pid, c.id, image, ev.cgroup_id
    );
    internal_alert(
        &ev.hostname,
        UNMATCHED_KILL_RULE,
        &msg,
        fields,
        &["killed"],
        ev.ts,
    )
}

/// Falco's "syscall event drop" alert: `dropped` of `total` events in the
/// last `secs`, at `now` (ns since the epoch).
pub fn drop_alert(hostname: &str, dropped: u64, total: u64, secs: f64, now: u64) -> Alert {
    let mut fields = serde_json::Map::new();
    fields.insert("n_drops".into(), dropped.into());
    fields.insert("n_evts".into(), total.into());
    let msg = format!(
        "Falco internal: syscall event drop. {dropped} system calls dropped in last {secs:.0} \
         second(s) ({:.2}% of {total})",
        100.0 * dropped as f64 / total.max(1) as f64
    );
    internal_alert(
        hostname,
        "Falco internal: syscall event drop",
        &msg,
        fields,
        &[],
        now,
    )
}

/// A Critical alert of source `internal` (tags `falco_learn`, `internal` and `tags`) at
/// `now`, its output the time, the priority and `msg`.
fn internal_alert(
    hostname: &str,
    rule: &str,
    msg: &str,
    fields: serde_json::Map<String, serde_json::Value>,
    tags: &[&str],
    now: u64,
) -> Alert {
    let priority = Priority::Critical;
    Alert {
        hostname: hostname.to_string(),
        output: format!(
            "{}: {} {msg}",
            falco_learn_event::fields::clock_time(now),
            priority.as_str()
        ),
        output_fields: fields,
        priority: priority.as_str().into(),
        rule: rule.into(),
        source: "internal".into(),
        tags: ["falco_learn", "internal"]
            .iter()
            .chain(tags)
            .map(|t| t.to_string())
            .collect(),
        time: falco_learn_event::time::rfc3339(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Loss, LossStage, RecordingSource};
    use crate::ProfilesFrom;
    use falco_learn_event::Event;
    use falco_learn_profiler::Dimension;
    use falco_learn_test_support::write_profile;

    const SEED: &str = include_str!("../../rules/tests/fixtures/seed.jsonl");

    /// enforce-kill's kill from userspace follows the kernel's rule: an allowed executable
    /// from an unexpected parent, an exec the kernel killed, the host and other dimensions
    /// are never killed; an executable outside the profile is. The events name a real
    /// process of ours (`sleep`), alive after each spared case.
    #[test]
    fn a_late_kill_spares_what_the_kernel_would() {
        use falco_learn_test_support::events::in_container;
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("spawn sleep");
        let start = falco_learn_probe::procfs::Stat::read(child.id())
            .map(|s| falco_learn_probe::procfs::ticks_to_epoch_ns(s.starttime))
            .expect("the child's start");
        let verdict = |dimension, parent: Option<&str>| crate::Verdict {
            anomaly: Some(crate::Anomaly {
                image: "docker.io/library/nginx:latest".into(),
                dimension,
                action: Action::Alerted,
                parent: parent.map(Into::into),
            }),
            ..crate::Verdict::default()
        };
        let of_child = |mut e: Event| {
            let p = std::sync::Arc::make_mut(&mut e.process);
            p.pid = child.id();
            p.start_ts = start;
            e
        };
        let web = of_child(in_container("web", "docker.io/library/nginx", 77));
        let mut killed = web.clone();
        std::sync::Arc::make_mut(&mut killed.process)
            .exe_flags
            .killed = true;
        let host = of_child(in_container("host", "", 1));
        for (v, ev) in [
            (verdict(Dimension::Exec, Some("/bin/sh")), &web),
            (verdict(Dimension::Exec, None), &killed),
            (verdict(Dimension::Exec, None), &host),
            (verdict(Dimension::FileWrite, None), &web),
        ] {
            let mut v = v;
            assert!(kill_late(&mut v, ev).is_none(), "{v:?}");
            assert_eq!(v.anomaly.map(|a| a.action), Some(Action::Alerted));
            assert!(
                matches!(child.try_wait(), Ok(None)),
                "killed by a spared case"
            );
        }
        // the executable outside the profile, in a container: killed
        let mut v = verdict(Dimension::Exec, None);
        assert!(matches!(kill_late(&mut v, &web), Some(Ok(()))), "{v:?}");
        assert_eq!(v.anomaly.map(|a| a.action), Some(Action::KilledLate));
        let st = child.wait().expect("wait");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&st),
            Some(libc::SIGKILL)
        );
    }

    /// A container whose cgroup never comes under its profile in the kernel (undecidable
    /// here), with enforce-kill's decision as the kernel makes it: an exec of the upper
    /// layer is not allowed.
    struct NeverBound;
    impl crate::binding::ContainerMaps for NeverBound {
        fn what(&self) -> &'static str {
            "enforce-kill"
        }
        fn set_profile(&self, _: u32, _: &falco_learn_profiler::Profile) -> Result<String, String> {
            Ok(String::new())
        }
        fn drop_profile(&self, _: u32) {}
        fn enforce(&self, _: u64, _: u32) -> Result<(), String> {
            Ok(())
        }
        fn release(&self, _: u64) {}
        fn owner(
            &self,
            _: falco_learn_probe::kill::CgroupClaim<'_>,
        ) -> falco_learn_probe::kill::CgroupOwner {
            falco_learn_probe::kill::CgroupOwner::Unknown("a test's".into())
        }
        fn would_kill(&self, _: u32, p: &falco_learn_event::Process) -> Option<bool> {
            Some(p.exepath != "/usr/sbin/nginx" || p.exe_flags.upper_layer)
        }
    }

    /// Events, then the end.
    struct Events(Vec<Event>);
    impl Source for Events {
        fn next(&mut self, _: std::time::Duration) -> crate::source::Next {
            if self.0.is_empty() {
                return crate::source::Next::End;
            }
            crate::source::Next::Event(Box::new(self.0.remove(0)))
        }
        fn now(&self) -> u64 {
            falco_learn_test_support::events::TS
        }
        fn losses(&self) -> Vec<Loss> {
            Vec::new()
        }
        fn hostname(&self) -> String {
            "node1".into()
        }
        fn kill_maps(&self) -> Option<&dyn crate::binding::ContainerMaps> {
            Some(&NeverBound)
        }
    }

    /// An exec the kernel did not judge is decided as the kernel would have decided it: a
    /// file of the container's upper layer at the path the profile allows from the image
    /// (which the profile's matcher leaves to the default rules' *Drop and execute new
    /// binary in container*) is killed from userspace and raises the profile's alert,
    /// marked `killed_late`, and so is a hostPID process that names itself `runc`, under
    /// no parent known or under a parent of its container that runs a copy called runc;
    /// the image's own file at that path runs, and so does `runc init` under the host's
    /// runc. Each event names a real process of ours (`sleep`).
    #[test]
    fn a_late_kill_judges_where_the_file_lives_as_the_kernel_does() {
        let sleeper = || {
            let child = std::process::Command::new("sleep")
                .arg("60")
                .spawn()
                .expect("spawn sleep");
            let start = falco_learn_probe::procfs::Stat::read(child.id())
                .map(|s| falco_learn_probe::procfs::ticks_to_epoch_ns(s.starttime))
                .expect("the child's start");
            (child, start)
        };
        let (mut image, image_start) = sleeper();
        let (mut copy, copy_start) = sleeper();
        let (mut runc, runc_start) = sleeper();
        let (mut setup, setup_start) = sleeper();
        let exec = |pid: u32, start: u64, upper: bool| {
            let mut e = falco_learn_test_support::events::exec(
                "/usr/sbin/nginx",
                "docker.io/library/nginx",
            );
            e.container = std::sync::Arc::new(falco_learn_event::Container {
                image_tag: "1.27".into(),
                ..(*e.container).clone()
            });
            e.cgroup_id = 4242;
            let p = std::sync::Arc::make_mut(&mut e.process);
            p.pid = pid;
            p.start_ts = start;
            p.exe_flags.upper_layer = upper;
            p.exe_flags.overlay = true;
            e
        };
        let dir = profiles();
        // a hostPID container's copy named as the runtime (the matcher's test of the runtime
        // setting a container up takes it for runc; the kernel spares only its own
        // `runtime` flag)
        let mut runc_named = exec(runc.id(), runc_start, true);
        let p = std::sync::Arc::make_mut(&mut runc_named.process);
        p.comm = "runc".into();
        p.exepath = "/tmp/runc".into();
        p.vpid = runc.id();
        p.exe_flags.upper_layer = true;
        // runc's own setup, which the kernel did not flag (its cgroup shared with the
        // runtime, or runc not at the host's root): `runc init` re-running runc, its parent
        // runc
        let mut runc_init = exec(setup.id(), setup_start, false);
        let p = std::sync::Arc::make_mut(&mut runc_init.process);
        p.comm = "runc:[0:PARENT]".into();
        p.exepath = "/usr/sbin/runc".into();
        p.vpid = setup.id();
        let runc_parent = |container: &str| {
            vec![falco_learn_event::Ancestor {
                pid: 4000,
                vpid: 4000,
                comm: "runc".into(),
                exepath: "/usr/sbin/runc".into(),
                container_id: container.into(),
                ..Default::default()
            }]
            .into()
        };
        runc_init.ancestors = runc_parent("host");
        // the same under a parent of the container's own that runs a copy called runc (a
        // hostPID container's chain: each exec in a cgroup of its own, not yet bound)
        let (mut chain, chain_start) = sleeper();
        let mut chained = runc_named.clone();
        let p = std::sync::Arc::make_mut(&mut chained.process);
        p.pid = chain.id();
        p.vpid = chain.id();
        p.start_ts = chain_start;
        chained.ancestors = runc_parent("abc");
        let (summary, sink) = run_source(
            engine(&dir),
            &mut Events(vec![
                exec(image.id(), image_start, false),
                exec(copy.id(), copy_start, true),
                runc_named,
                runc_init,
                chained,
            ]),
        );
        let rule = "Unexpected process in docker.io/library/nginx:1.27 (falco-learn)";
        // the three copies' alerts only (neither the image's file nor runc's setup raises one)
        let profile_alerts: Vec<Action> = sink
            .0
            .iter()
            .filter(|r| r.alert.rule == rule)
            .map(|r| r.action)
            .collect();
        assert_eq!(profile_alerts, vec![Action::KilledLate; 3]);
        assert_eq!(summary.kills, 3);
        for child in [&mut copy, &mut runc, &mut chain] {
            let st = child.wait().expect("wait");
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&st),
                Some(libc::SIGKILL)
            );
        }
        for (child, what) in [
            (&mut image, "the image's file"),
            (&mut setup, "runc's setup"),
        ] {
            assert!(matches!(child.try_wait(), Ok(None)), "{what} was killed");
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A kill the kernel made that no profile alert names (the kernel judged it by the
    /// profile of a container's cgroup above the one it ran in, named like a container
    /// whose image is not known) raises the internal alert saying so, once, with the
    /// process and the cgroup.
    #[test]
    fn a_kill_no_profile_alert_names_is_said() {
        let mut ev = falco_learn_test_support::events::exec("/tmp/echo", "");
        ev.container = std::sync::Arc::new(falco_learn_event::Container {
            id: "0123456789ab".into(),
            ..Default::default()
        });
        ev.cgroup_id = 4343;
        let p = std::sync::Arc::make_mut(&mut ev.process);
        p.pid = 77;
        p.exe_flags.killed = true;
        let dir = profiles();
        let (summary, sink) = run_source(engine(&dir), &mut Events(vec![ev]));
        assert_eq!(summary.kills, 1);
        let internal: Vec<&Raised> = sink
            .0
            .iter()
            .filter(|r| r.cause == Cause::Internal)
            .collect();
        assert_eq!(internal.len(), 1, "{:#?}", sink.0);
        let a = &internal[0].alert;
        assert_eq!(internal[0].action, Action::Killed);
        assert_eq!(a.rule, UNMATCHED_KILL_RULE);
        assert_eq!(a.priority, "Critical");
        let f = |k: &str| a.output_fields.get(k).cloned().unwrap_or_default();
        assert_eq!(f("container.id"), "0123456789ab");
        assert_eq!(f("container.image"), "<NA>");
        assert_eq!(f("proc.exepath"), "/tmp/echo");
        assert_eq!(f("proc.pid"), 77);
        assert_eq!(f("falco_learn.cgroup_id"), 4343);
        assert_eq!(f("falco_learn.action"), "killed");
        assert!(a.tags.iter().any(|t| t == "killed"), "{:?}", a.tags);
        assert!(
            a.output.ends_with(
                "(exe=/tmp/echo pid=77 container=0123456789ab image=<NA> cgroup=4343) \
                 action=killed"
            ),
            "{}",
            a.output
        );
    }

    /// The seed's image profiled: nginx itself, nothing outbound.
    fn profiles() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tmp");
        write_profile(
            dir.path(),
            "docker.io/library/nginx",
            "1.27",
            &["/usr/sbin/nginx"],
        );
        dir
    }

    /// The default rules and no profile.
    fn rules_only() -> Engine {
        Engine::build(
            &[],
            falco_learn_rules::Priority::Debug,
            ProfilesFrom::Nowhere,
            falco_learn_rules::Priority::Warning,
            "",
        )
        .expect("engine")
        .0
    }

    /// Run `engine` over the recording `text` (named `name`), with no control and the default
    /// options: what it counted, every alert it raised, and the source (its counts of lines).
    fn run_recording<'t>(
        engine: Engine,
        text: &'t str,
        name: &str,
    ) -> (Summary, Collect, RecordingSource<&'t [u8]>) {
        let mut source = RecordingSource::new(text.as_bytes(), name);
        let (summary, sink) = run_source(engine, &mut source);
        (summary, sink, source)
    }

    /// Run `engine` over `source` with no control and the default options: what it
    /// counted, and every alert it raised.
    fn run_source(engine: Engine, source: &mut dyn Source) -> (Summary, Collect) {
        let mut sink = Collect::default();
        let summary = Pipeline::new(engine, source, &mut sink, &NoControl, Options::default())
            .run()
            .expect("run");
        (summary, sink)
    }

    fn engine(dir: &tempfile::TempDir) -> Engine {
        let from = ProfilesFrom::Dir {
            path: dir.path(),
            allow_empty: false,
        };
        Engine::build(
            &[],
            falco_learn_rules::Priority::Debug,
            from,
            falco_learn_rules::Priority::Warning,
            "",
        )
        .expect("engine")
        .0
    }

    /// The seed recording (its last exec marked killed by the kernel) and a
    /// line that is not an event, replayed through the pipeline: the default
    /// rules' alerts and the profile's anomalies, in event order, each timed
    /// by its event; the killed exec's anomaly carries the kill.
    #[test]
    fn a_recording_raises_rule_and_profile_alerts_timed_by_its_events() {
        let mut lines: Vec<String> = SEED.lines().map(str::to_string).collect();
        let mut dev_vi: Event = serde_json::from_str(&lines[3]).expect("event");
        std::sync::Arc::make_mut(&mut dev_vi.process)
            .exe_flags
            .killed = true;
        lines[3] = serde_json::to_string(&dev_vi).expect("json");
        lines.insert(2, "{\"type\": 7}".into());
        let text = lines.join("\n");
        let dir = profiles();
        let (summary, sink, source) = run_recording(engine(&dir), &text, "seed.jsonl");
        let anomaly = |d| Cause::Anomaly(d);
        let img = "docker.io/library/nginx:1.27";
        let exec = format!("Unexpected process in {img} (falco-learn)");
        let net = format!("Unexpected outbound connection in {img} (falco-learn)");
        let got: Vec<(Cause, Action, String, String, String)> = sink
            .0
            .iter()
            .map(|r| {
                (
                    r.cause,
                    r.action,
                    r.alert.rule.clone(),
                    r.alert.time.clone(),
                    r.alert
                        .output_fields
                        .get("proc.exepath")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        let t = |s: u64| {
            falco_learn_event::time::rfc3339(1_763_770_000_000_000_000 + s * 1_000_000_000)
        };
        let want = vec![
            // (the default rules' outputs do not all carry proc.exepath)
            (
                Cause::Rule,
                Action::Alerted,
                "Terminal shell in container".to_string(),
                t(77),
                String::new(),
            ),
            (
                anomaly(Dimension::Exec),
                Action::Alerted,
                exec.clone(),
                t(77),
                "/usr/bin/bash".into(),
            ),
            (
                Cause::Rule,
                Action::Alerted,
                "Drop and execute new binary in container".into(),
                t(78),
                "/usr/local/bin/vi".into(),
            ),
            (
                anomaly(Dimension::Exec),
                Action::Alerted,
                exec.clone(),
                t(78),
                "/usr/local/bin/vi".into(),
            ),
            (
                Cause::Rule,
                Action::Alerted,
                "Disallowed SSH Connection Non Standard Port".into(),
                t(79),
                String::new(),
            ),
            (
                anomaly(Dimension::Outbound),
                Action::Alerted,
                net.clone(),
                t(79),
                "/usr/bin/ssh".into(),
            ),
            (
                anomaly(Dimension::Exec),
                Action::Killed,
                exec.clone(),
                t(80),
                "/dev/vi".into(),
            ),
            (
                anomaly(Dimension::Outbound),
                Action::Alerted,
                net.clone(),
                t(81),
                "/usr/bin/ssh".into(),
            ),
        ];
        assert_eq!(got, want);
        let killed = &sink.0[6].alert;
        assert_eq!(killed.output_fields["falco_learn.action"], "killed");
        assert!(
            killed.output.ends_with(" action=killed"),
            "{}",
            killed.output
        );
        assert_eq!(killed.tags.last().map(String::as_str), Some("killed"));
        assert_eq!(
            summary,
            Summary {
                events: 5,
                alerts: 8,
                anomalies: 5,
                kills: 1,
                drop_alerts: 0
            }
        );
        assert_eq!(source.unreadable(), 1);
    }

    /// A source that loses events: a drop alert when a second's losses pass
    /// the threshold, timed by the source's clock, at most once per rate limit.
    /// An ia32 alert's (rule, container.id, proc.exepath), once its fields every ia32 alert
    /// shares are checked: internal, Warning, the ia32 tags.
    fn ia32_alert(r: &Raised) -> (&str, &str, &str) {
        assert_eq!(r.cause, Cause::Internal);
        assert_eq!(r.alert.priority, "Warning");
        assert_eq!(r.alert.tags, ["falco_learn", "internal", "ia32"]);
        let field = |k: &str| r.alert.output_fields[k].as_str().unwrap_or("");
        (
            r.alert.rule.as_str(),
            field("container.id"),
            field("proc.exepath"),
        )
    }

    /// Where 32-bit syscalls are not watched, a 32-bit program's successful exec raises the
    /// ia32 alert once per container and executable, with the process's fields; a failed
    /// exec, a 64-bit one and a non-exec event do not. Where they are watched (a recording,
    /// as the probe's default), its syscalls are judged as any others: no alert.
    #[test]
    fn a_32_bit_exec_raises_the_ia32_alert_once_per_container_and_exe_where_unwatched() {
        let bash: Event = serde_json::from_str(SEED.lines().next().expect("seed")).expect("event");
        let with = |ia32: bool, res: i64, container: &str| {
            let mut ev = bash.clone();
            std::sync::Arc::make_mut(&mut ev.process).exe_flags.ia32 = ia32;
            std::sync::Arc::make_mut(&mut ev.container).id = container.into();
            ev.res = res;
            ev
        };
        let mut connect: Event =
            serde_json::from_str(SEED.lines().nth(2).expect("seed")).expect("event");
        std::sync::Arc::make_mut(&mut connect.process)
            .exe_flags
            .ia32 = true;
        let events = [
            with(false, 0, "c1"),
            with(true, -2, "c1"),
            with(true, 0, "c1"),
            with(true, 0, "c1"),
            connect,
            with(true, 0, "c2"),
        ];
        let mut unwatched = Ia32Alerts::new(true);
        let raised: Vec<Raised> = events.iter().filter_map(|e| unwatched.raise(e)).collect();
        let got: Vec<(&str, &str, &str, &str)> = raised
            .iter()
            .map(|r| {
                let (rule, container, exe) = ia32_alert(r);
                let cmdline = r.alert.output_fields["proc.cmdline"].as_str();
                (rule, container, exe, cmdline.unwrap_or(""))
            })
            .collect();
        assert_eq!(
            got,
            [
                (IA32_RULE, "c1", "/usr/bin/bash", "bash"),
                (IA32_RULE, "c2", "/usr/bin/bash", "bash")
            ]
        );
        assert!(
            raised[0].alert.output.contains(
                "Warning 32-bit (ia32) program run: falco-learn does not see its system calls \
                 on this node (engine.ia32_syscalls is off"
            ),
            "{}",
            raised[0].alert.output
        );
        // watched (a recording, the probe's default): the same events raise no ia32 alert
        let text: Vec<String> = events
            .iter()
            .map(|e| serde_json::to_string(e).expect("json"))
            .collect();
        let (summary, sink, _) = run_recording(rules_only(), &text.join("\n"), "ia32.jsonl");
        assert_eq!(summary.alerts as usize, sink.0.len());
        // (the default rules alert on these)
        assert!(!sink.0.is_empty());
        assert!(sink
            .0
            .iter()
            .all(|r| !r.alert.tags.iter().any(|t| t == "ia32")));
    }

    /// A connect that ran with descriptor -1 (the probe's report of a 32-bit socketcall
    /// whose arguments were unmapped before its exit) raises the hidden-arguments alert once
    /// per container and executable; a connect with its descriptor, and a failed one, do
    /// not.
    #[test]
    fn a_connect_with_hidden_arguments_raises_its_alert() {
        use falco_learn_event::Args;
        let seed: Event = serde_json::from_str(SEED.lines().nth(2).expect("seed")).expect("event");
        let with = |fd: i64, res: i64, container: &str| {
            let mut ev = seed.clone();
            ev.args = Args::Connect {
                fd,
                addr: String::new(),
            };
            ev.res = res;
            std::sync::Arc::make_mut(&mut ev.container).id = container.into();
            ev
        };
        assert_eq!(seed.event_type(), falco_learn_event::EventType::Connect);
        let events = [
            with(3, 0, "c1"),
            with(-1, -111, "c1"),
            with(-1, 0, "c1"),
            with(-1, 0, "c1"),
            with(-1, -115, "c2"),
        ];
        let mut alerts = Ia32Alerts::new(false);
        let raised: Vec<Raised> = events.iter().filter_map(|e| alerts.raise(e)).collect();
        let got: Vec<(&str, &str, &str)> = raised.iter().map(ia32_alert).collect();
        let exe = seed.process.exepath.as_str();
        assert_eq!(
            got,
            [(HIDDEN_ARGS_RULE, "c1", exe), (HIDDEN_ARGS_RULE, "c2", exe)]
        );
        assert_eq!(raised[1].alert.output_fields["evt.res"], "EINPROGRESS");
    }

    /// A 32-bit syscall (`ia32_syscall`) of a process not known as 32-bit raises the ia32
    /// syscall alert once per container and executable, with the call's number; one of a
    /// 32-bit program (its exec's alert says it all) does not.
    #[test]
    fn a_32_bit_syscall_of_a_64_bit_program_raises_its_alert_once_per_container_and_exe() {
        use falco_learn_event::{Args, EventType, EventTypeField};
        let bash: Event = serde_json::from_str(SEED.lines().next().expect("seed")).expect("event");
        let with = |ia32: bool, id: i64, container: &str| {
            let mut ev = bash.clone();
            ev.typ = EventTypeField(EventType::Ia32Syscall);
            ev.args = Args::Ia32Syscall { id };
            ev.res = 0;
            std::sync::Arc::make_mut(&mut ev.process).exe_flags.ia32 = ia32;
            std::sync::Arc::make_mut(&mut ev.container).id = container.into();
            serde_json::to_string(&ev).expect("json")
        };
        let lines = [
            with(false, 5, "c1"),
            with(false, 362, "c1"),
            with(true, 1, "c1"),
            with(true, 1, "c3"),
            with(false, 102, "c2"),
        ];
        let (summary, sink, _) = run_recording(rules_only(), &lines.join("\n"), "int80.jsonl");
        assert_eq!(summary.alerts as usize, sink.0.len());
        let got: Vec<(&str, &str, &str, i64)> = sink
            .0
            .iter()
            .map(|r| {
                let (rule, container, exe) = ia32_alert(r);
                let id = r.alert.output_fields["evt.arg.ID"].as_i64();
                (rule, container, exe, id.unwrap_or(-1))
            })
            .collect();
        assert_eq!(
            got,
            [
                (IA32_SYSCALL_RULE, "c1", "/usr/bin/bash", 5),
                (IA32_SYSCALL_RULE, "c2", "/usr/bin/bash", 102)
            ]
        );
        assert!(
            sink.0[0].alert.output.contains(
                "Warning 32-bit system call by a 64-bit program (int 0x80 or an x32 call: rare \
                 outside exploits and attempts to evade syscall monitoring"
            ),
            "{}",
            sink.0[0].alert.output
        );
    }

    /// With the kernel filter, a host process (no host profile) is marked on its first
    /// event and unmarked at its exit; while `--record` writes, nothing is marked.
    #[test]
    fn processes_without_a_profile_are_marked_unless_recording() {
        use crate::unprofiled::ProcessMarks;
        #[derive(Default)]
        struct Marks(std::cell::RefCell<Vec<String>>);
        impl ProcessMarks for Marks {
            fn mark(&self, pid: u32, exec_id: u32, _: u64) -> Result<(), String> {
                self.0.borrow_mut().push(format!("mark {pid} {exec_id}"));
                Ok(())
            }
            fn unmark(&self, pid: u32) {
                self.0.borrow_mut().push(format!("unmark {pid}"));
            }
        }
        struct Host {
            events: Vec<Event>,
            marks: Marks,
        }
        impl Source for Host {
            fn next(&mut self, _: Duration) -> Next {
                match self.events.pop() {
                    Some(e) => Next::Event(Box::new(e)),
                    None => Next::End,
                }
            }
            fn now(&self) -> u64 {
                0
            }
            fn losses(&self) -> Vec<Loss> {
                Vec::new()
            }
            fn hostname(&self) -> String {
                "node-1".into()
            }
            fn process_marks(&self) -> Option<&dyn ProcessMarks> {
                Some(&self.marks)
            }
        }
        let host_event = |typ| {
            let mut ev = falco_learn_test_support::events::in_container("host", "", 1);
            let p = std::sync::Arc::make_mut(&mut ev.process);
            p.pid = 42;
            p.start_ts = 1_000;
            ev.exec_id = 3;
            ev.typ = falco_learn_event::EventTypeField(typ);
            ev
        };
        let run = |record: bool| -> Vec<String> {
            let mut source = Host {
                // popped from the end: an open, another, the exit
                events: vec![
                    host_event(falco_learn_event::EventType::Procexit),
                    host_event(falco_learn_event::EventType::Openat),
                    host_event(falco_learn_event::EventType::Openat),
                ],
                marks: Marks::default(),
            };
            let engine = rules_only();
            let mut sink = Collect::default();
            let mut p = Pipeline::new(
                engine,
                &mut source,
                &mut sink,
                &NoControl,
                Options::default(),
            );
            if record {
                p.record_to(Box::new(std::io::sink()));
            }
            p.run().expect("run");
            source.marks.0.take()
        };
        assert_eq!(run(false), ["mark 42 3", "unmark 42"]);
        assert_eq!(run(true), Vec::<String>::new());
    }

    /// The alert for kills whose events were lost: how many, where, marked killed.
    #[test]
    fn unreported_kills_alert_says_how_many_and_where() {
        let u = crate::binding::UnreportedKills {
            cgroup: 4242,
            kills: 3,
            container: Some("abc123".into()),
            image: Some("docker.io/library/nginx:1.27".into()),
        };
        let now = 1_700_000_000_000_000_000;
        let a = unreported_kills_alert("node1", &u, now);
        assert_eq!(a.rule, UNREPORTED_KILLS_RULE);
        assert_eq!(a.priority, "Critical");
        assert_eq!(a.source, "internal");
        assert_eq!(a.hostname, "node1");
        assert_eq!(a.tags, vec!["falco_learn", "internal", "killed"]);
        let f = &a.output_fields;
        assert_eq!(f["container.id"], "abc123");
        assert_eq!(f["container.image"], "docker.io/library/nginx:1.27");
        assert_eq!(f["falco_learn.action"], "killed");
        assert_eq!(f["falco_learn.cgroup_id"], 4242);
        assert_eq!(f["n_kills"], 3);
        assert!(
            a.output.ends_with(
                "Critical falco-learn internal: enforce-kill kills not reported: 3 exec(s) \
                 outside the profile killed in the kernel whose events were lost (ring buffer \
                 full) (container=abc123 image=docker.io/library/nginx:1.27 cgroup=4242) \
                 action=killed"
            ),
            "{}",
            a.output
        );
        let gone = crate::binding::UnreportedKills {
            container: None,
            image: None,
            ..u
        };
        let a = unreported_kills_alert("node1", &gone, now);
        assert_eq!(a.output_fields["container.id"], "<NA>");
        assert!(a.output.contains("(container=<NA> image=<NA> cgroup=4242)"));
    }

    #[test]
    fn losses_past_the_threshold_raise_a_rate_limited_drop_alert() {
        struct Lossy {
            t: u64,
            lost: u64,
            left: u32,
        }
        impl Source for Lossy {
            fn next(&mut self, _: Duration) -> Next {
                if self.left == 0 {
                    return Next::End;
                }
                self.left -= 1;
                // one event and 3 losses every half second
                self.t += 500_000_000;
                self.lost += 3;
                Next::Event(Box::new(Event {
                    ts: self.t,
                    ..Default::default()
                }))
            }
            fn now(&self) -> u64 {
                self.t
            }
            fn losses(&self) -> Vec<Loss> {
                vec![
                    Loss {
                        kind: "execve",
                        stage: LossStage::KernelRingbuf,
                        total: self.lost,
                    },
                    Loss {
                        kind: "any",
                        stage: LossStage::Decode,
                        total: 1000 * self.lost,
                    },
                ]
            }
            fn hostname(&self) -> String {
                "node-1".into()
            }
        }
        let start = 1_700_000_000_000_000_000u64;
        let mut src = Lossy {
            t: start,
            lost: 0,
            left: 12,
        };
        let mut sink = Collect::default();
        let opts = Options {
            drops: DropAlerts {
                threshold: 0.5,
                rate_limit: Duration::from_secs(3),
            },
            ..Options::default()
        };
        let s = Pipeline::new(rules_only(), &mut src, &mut sink, &NoControl, opts)
            .run()
            .expect("run");
        // events at 0.5 s, 1 s, … 6 s; ticks from the first event's time: at
        // 1.5 s, 2.5 s, …; alerts at 1.5 s and (3 s later) 4.5 s
        let times: Vec<String> = sink.0.iter().map(|r| r.alert.time.clone()).collect();
        let at = |ms: u64| falco_learn_event::time::rfc3339(start + ms * 1_000_000);
        assert_eq!(times, [at(1500), at(4500)]);
        let a = &sink.0[0];
        assert_eq!(a.cause, Cause::Internal);
        assert_eq!(a.alert.rule, "Falco internal: syscall event drop");
        assert_eq!(a.alert.priority, "Critical");
        assert_eq!(a.alert.hostname, "node-1");
        // decode losses are counted, not alerted on: 9 lost and 3 seen by 1.5 s
        assert_eq!(a.alert.output_fields["n_drops"], 9);
        assert_eq!(a.alert.output_fields["n_evts"], 12);
        assert_eq!(s.drop_alerts, 2);
    }
}
