//! `falco-learn run --mode enforce-alert`: the node agent. Live probe → one
//! engine (default rules + learned profiles) → Falco JSON alerts on every
//! configured output, Prometheus metrics on loopback.

use crate::cmd::{kill, signals};
use anyhow::Context;
use clap::{Args, ValueEnum};
use falco_learn_enforcer::config::Config;
use falco_learn_enforcer::metrics as m;
use falco_learn_enforcer::outputs::Outputs;
use falco_learn_enforcer::{Engine, ProfilesFrom};
use falco_learn_probe::runtime::RuntimeConfig;
use falco_learn_probe::{Probe, ProbeConfig};
use falco_learn_rules::{Alert, Priority};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Alert on default-rule matches and profile anomalies.
    EnforceAlert,
    /// (opt-in) enforce-alert, and also kill, in the kernel, every exec in a
    /// profiled container whose executable is not in its image's profile.
    EnforceKill,
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    falco-learn run --mode enforce-alert\n  \
    falco-learn run -r /etc/falco/falco_rules.yaml --profiles profiles/\n  \
    falco-learn run -c deploy/falco-learn.yaml -o outputs.http.enabled=true -o outputs.http.url=http://127.0.0.1:2801/\n  \
    falco-learn run --mode enforce-kill --profiles profiles/   (opt-in: kills unprofiled execs)\n\n\
Profiles: a profile file that does not load is logged (file:line), counted\n\
(falco_learn_profiles_failed_total) and skipped; every other profile is enforced.\n\
Signals: SIGHUP reloads rules and profiles (a bad rules file keeps the running set; a profile\n\
that no longer loads keeps its running version) and reopens the alert file; SIGTERM/SIGINT\n\
drain queued alerts for at most outputs.shutdown_timeout_ms and exit.\n\
Metrics: http://127.0.0.1:8765/metrics.")]
pub struct RunArgs {
    #[arg(long, value_enum, default_value = "enforce-alert")]
    pub mode: Mode,
    /// Rules files in load order (repeatable); default: the embedded ruleset.
    #[arg(short = 'r', long = "rules")]
    pub rules: Vec<PathBuf>,
    /// Directory of reviewed profiles (YAML); it must exist and hold profiles
    /// (unless `-o profiles.allow_empty=true`). Without it: the rules only.
    #[arg(long)]
    pub profiles: Option<PathBuf>,
    /// Configuration file (YAML, like falco.yaml; see deploy/falco-learn.yaml).
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    /// Override a configuration key: `-o outputs.file.enabled=true` (repeatable).
    #[arg(short = 'o', value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Stop after this long (tests, benchmarks); default: until SIGTERM.
    #[arg(long, value_parser = crate::cmd::duration_flag)]
    pub duration: Option<Duration>,
}

fn build_engine(cfg: &Config, mode: Mode) -> anyhow::Result<Engine> {
    let min = Priority::parse(&cfg.priority).unwrap_or(Priority::Debug);
    let anomaly = Priority::parse(&cfg.profiles.priority).unwrap_or(Priority::Warning);
    let from = ProfilesFrom::configured(&cfg.profiles.dir, cfg.profiles.allow_empty);
    let (mut engine, report) = Engine::build(
        &cfg.rules_files,
        min,
        from,
        anomaly,
        &cfg.profiles.host_image,
    )?;
    // validated by Config::load
    engine.set_rule_matching(
        falco_learn_rules::RuleMatching::parse(&cfg.rule_matching).unwrap_or_default(),
    );
    if from != ProfilesFrom::Nowhere && engine.profile_count() == 0 {
        tracing::warn!(
            "profiles directory {} holds no profiles (profiles.allow_empty): only the rules \
             apply{} until profiles appear there and SIGHUP loads them",
            cfg.profiles.dir.display(),
            if mode == Mode::EnforceKill {
                " and enforce-kill kills nothing"
            } else {
                ""
            }
        );
    }
    if !report.warnings.is_empty() {
        tracing::info!(
            "rules loaded with {} warning(s) (see `falco-learn rules check`)",
            report.warnings.len()
        );
    }
    let s = &engine.summary;
    tracing::info!(
        "rules: {} ({} rules, {} enabled); profiles from {}: {}",
        s.rules_files.join(", "),
        s.rules,
        s.enabled_rules,
        if from == ProfilesFrom::Nowhere {
            "nowhere (no --profiles or profiles.dir)".to_string()
        } else {
            cfg.profiles.dir.display().to_string()
        },
        if s.profiles.is_empty() {
            "none".to_string()
        } else {
            s.profiles
                .iter()
                .map(|(i, e, o, w)| format!("{i} ({e} execs, {o} outbound, {w} writes)"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    Ok(engine)
}

fn publish_profile_gauges(engine: &Engine) {
    metrics::gauge!(m::PROFILES_LOADED).set(engine.profile_count() as f64);
    // after each load (start, SIGHUP): the files that were skipped
    for f in engine.failed_profiles() {
        metrics::counter!(m::PROFILES_FAILED, "file" => f.file.clone()).increment(1);
    }
    for (img, dim, n) in engine.profile_sizes() {
        metrics::gauge!(m::PROFILE_ENTRIES, "image" => img, "dimension" => dim.as_str())
            .set(n as f64);
    }
    for (img, last_new, events, _tainted) in engine.profile_learning() {
        metrics::gauge!(m::PROFILE_LAST_NEW, "image" => img.clone()).set(last_new as f64 / 1e9);
        metrics::gauge!(m::PROFILE_LEARNED_EVENTS, "image" => img).set(events as f64);
    }
}

fn drop_alert(hostname: &str, dropped: u64, total: u64, secs: f64) -> Alert {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut fields = serde_json::Map::new();
    fields.insert("n_drops".into(), dropped.into());
    fields.insert("n_evts".into(), total.into());
    let msg = format!(
        "Falco internal: syscall event drop. {dropped} system calls dropped in last {secs:.0} second(s) ({:.2}% of {total})",
        100.0 * dropped as f64 / total.max(1) as f64
    );
    Alert {
        hostname: hostname.to_string(),
        output: format!(
            "{}: Critical {msg}",
            falco_learn_event::fields::clock_time(now)
        ),
        output_fields: fields,
        priority: "Critical".into(),
        rule: "Falco internal: syscall event drop".into(),
        source: "internal".into(),
        tags: vec!["falco_learn".into(), "internal".into()],
        time: falco_learn_rules::output::rfc3339(now),
    }
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut overrides = args.overrides.clone();
    if !args.rules.is_empty() {
        let list: Vec<String> = args
            .rules
            .iter()
            .map(|p| format!("{:?}", p.display().to_string()))
            .collect();
        overrides.push(format!("rules_files=[{}]", list.join(", ")));
    }
    if let Some(p) = &args.profiles {
        overrides.push(format!("profiles.dir={:?}", p.display().to_string()));
    }
    let cfg = Config::load(args.config.as_deref(), &overrides)?;
    if args.mode == Mode::EnforceKill && cfg.profiles.dir.as_os_str().is_empty() {
        anyhow::bail!(
            "--mode enforce-kill kills execs outside their image's profile, and no profiles are \
             configured: give --profiles DIR (or profiles.dir)"
        );
    }
    if args.mode == Mode::EnforceKill && falco_learn_probe::kill::cgroup2_mount().is_none() {
        anyhow::bail!(
            "--mode enforce-kill needs the cgroup v2 hierarchy (containers are recognised in the \
             kernel by their cgroup v2 id) and none is mounted here; use --mode enforce-alert"
        );
    }
    // Rules and profiles first: a bad file or a missing profiles directory
    // fails before anything is started.
    let mut engine = build_engine(&cfg, args.mode)?;
    signals::install(true);

    if cfg.metrics.enabled {
        let addr: std::net::SocketAddr = cfg.metrics.listen.parse().context("metrics.listen")?;
        PrometheusBuilder::new()
            .with_http_listener(addr)
            .set_buckets_for_metric(
                Matcher::Full(m::EVAL_LATENCY.into()),
                &[
                    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2,
                ],
            )
            .context("histogram buckets")?
            .install()
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        m::describe();
        tracing::info!("metrics on http://{addr}/metrics");
    }
    metrics::gauge!(m::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);

    // drop counters exist (at 0) from the start, so dashboards and alerts see them
    for kind in falco_learn_probe_common_kinds() {
        metrics::counter!(m::DROPS, "kind" => kind, "stage" => "kernel_ringbuf").increment(0);
    }
    for stage in ["probe_queue", "decode"] {
        metrics::counter!(m::DROPS, "kind" => "any", "stage" => stage).increment(0);
    }
    publish_profile_gauges(&engine);
    // each enabled output's delivery and failure counters exist (at 0) from the start
    let mut outputs = Outputs::new(&cfg.outputs)?;
    // the kernel reports the read-only opens the loaded rules can match, nothing else
    let plan = engine.read_open_plan();
    log_read_plan(&plan);
    let syscalls = engine.needed_syscalls();
    let probe_cfg = ProbeConfig {
        syscalls: Some(syscalls.iter().map(|s| s.to_string()).collect()),
        read_prefixes: plan.prefixes.clone(),
        read_noncanonical: !plan.noncanonical.is_empty(),
        read_names: plan.name_list(),
        read_suffixes: plan.suffix_list(),
        ring_bytes: cfg.engine.ring_mib * 1024 * 1024,
        queue_len: cfg.engine.queue,
        runtime: runtime_config(&cfg.container_runtimes),
        kill: args.mode == Mode::EnforceKill,
        ..ProbeConfig::default()
    };
    let (mut probe, rx) = Probe::start(probe_cfg)?;
    log_attached(&probe, &[], &[]);
    let mut killer = match probe.kill_policy() {
        Some(policy) => {
            let mut k = kill::Killer::new();
            k.sync(policy, &engine);
            tracing::warn!(
                "enforce-kill mode running: execs outside their image's profile are killed \
                 in profiled containers"
            );
            Some(k)
        }
        None => {
            tracing::info!("enforce-alert mode running");
            None
        }
    };

    // per-event metric handles, registered once (no label hashing per event)
    let event_counters: Vec<metrics::Counter> = falco_learn_event::EventType::ALL
        .iter()
        .map(|t| metrics::counter!(m::EVENTS, "kind" => t.as_str()))
        .collect();
    let latency = metrics::histogram!(m::EVAL_LATENCY);
    let started = Instant::now();
    let mut last_tick = Instant::now();
    let mut last_drop_alert: Option<Instant> = None;
    let mut prev_kernel: Vec<u64> = Vec::new();
    let mut prev_queue_full = 0u64;
    let mut prev_decode = 0u64;
    let mut events_in_tick = 0u64;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let mut stopping = false;
    // A SIGHUP reload compiles rules and loads profiles on a thread of its
    // own while this loop keeps evaluating with the running engine.
    let mut reloading: Option<std::thread::JoinHandle<anyhow::Result<Engine>>> = None;
    let mut reload_again = false;
    loop {
        if signals::stop_requested() || args.duration.is_some_and(|d| started.elapsed() >= d) {
            stopping = true;
        }
        if signals::take_reload() {
            outputs.reopen();
            if reloading.is_some() {
                // One reload at a time; the files are read again after it.
                reload_again = true;
            } else {
                reloading = start_reload(cfg_reloaded(&args, &overrides, &cfg), args.mode);
            }
        }
        if reloading.as_ref().is_some_and(|h| h.is_finished()) {
            if let Some(h) = reloading.take() {
                match h.join() {
                    Ok(Ok(mut e)) => {
                        for img in e.keep_running_profiles(&engine) {
                            tracing::warn!(
                                "SIGHUP: the profile of {img} no longer loads (see above); \
                                 keeping the running version"
                            );
                        }
                        engine = e;
                        publish_profile_gauges(&engine);
                        let plan = engine.read_open_plan();
                        log_read_plan(&plan);
                        if let Err(e) =
                            probe.set_read_filter(&falco_learn_probe::filter::OpenFilterPlan {
                                prefixes: plan.prefixes.clone(),
                                names: plan.name_list(),
                                suffixes: plan.suffix_list(),
                                noncanonical: !plan.noncanonical.is_empty(),
                            })
                        {
                            tracing::error!("SIGHUP: the kernel read filter was not updated: {e}");
                        }
                        match probe.set_syscalls(Some(&engine.needed_syscalls())) {
                            Ok((attached, detached)) => log_attached(&probe, &attached, &detached),
                            Err(e) => tracing::error!(
                                "SIGHUP: the syscall programs were not updated: {e}"
                            ),
                        }
                        if let (Some(k), Some(p)) = (killer.as_mut(), probe.kill_policy()) {
                            k.sync(p, &engine);
                        }
                        metrics::counter!(m::RELOADS, "result" => "ok").increment(1);
                        tracing::info!("SIGHUP: rules and profiles reloaded");
                    }
                    Ok(Err(e)) => {
                        metrics::counter!(m::RELOADS, "result" => "error").increment(1);
                        tracing::error!(
                            "SIGHUP: reload failed, keeping the running rules and profiles: {e:#}"
                        );
                    }
                    Err(_) => {
                        metrics::counter!(m::RELOADS, "result" => "error").increment(1);
                        tracing::error!(
                            "SIGHUP: reload crashed, keeping the running rules and profiles"
                        );
                    }
                }
            }
            if std::mem::take(&mut reload_again) {
                reloading = start_reload(cfg_reloaded(&args, &overrides, &cfg), args.mode);
            }
        }
        let got = if stopping {
            rx.try_recv().ok()
        } else {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(ev) => Some(ev),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    tracing::error!("the probe stopped delivering events");
                    stopping = true;
                    None
                }
            }
        };
        if let Some(ev) = got {
            events_in_tick += 1;
            event_counters[ev.event_type().index()].increment(1);
            let t0 = Instant::now();
            let mut verdict = engine.evaluate(&ev);
            latency.record(t0.elapsed().as_secs_f64());
            if let (Some(k), Some(p)) = (killer.as_mut(), probe.kill_policy()) {
                k.observe(p, &engine, &ev);
                if kill::killed_exec(&ev) && !kill::mark_killed(&ev, &mut verdict.alerts) {
                    tracing::warn!(
                        "enforce-kill killed {} in container {} but no profile alert matched it \
                         (profiles reloaded meanwhile?)",
                        ev.process.exepath,
                        ev.container.id
                    );
                }
            }
            for a in &verdict.alerts {
                metrics::counter!(m::RULE_MATCHES, "rule_name" => a.rule.clone(), "priority" => a.priority.clone(), "source" => a.source.clone())
                    .increment(1);
                outputs.emit(a);
            }
            if let Some((img, dim)) = verdict.anomaly {
                metrics::counter!(m::ANOMALIES, "image" => img, "dimension" => dim.as_str())
                    .increment(1);
            }
            if let Some(img) = verdict.new_unprofiled {
                tracing::info!("image {img} has no profile: only the default rules apply to it");
                metrics::counter!(m::UNPROFILED, "image" => img).increment(1);
            }
        } else if stopping {
            break;
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            let secs = last_tick.elapsed().as_secs_f64();
            last_tick = Instant::now();
            // kernel drops per kind, userspace queue drops, malformed records
            let stats = probe.kernel_stats();
            prev_kernel.resize(stats.len(), 0);
            let mut dropped = 0u64;
            for (i, (kind, s)) in stats.iter().enumerate() {
                let d = s.dropped.saturating_sub(prev_kernel[i]);
                if d > 0 {
                    metrics::counter!(m::DROPS, "kind" => kind.name(), "stage" => "kernel_ringbuf")
                        .increment(d);
                    dropped += d;
                }
                prev_kernel[i] = s.dropped;
            }
            let qf = probe.counters.queue_full.load(Ordering::Relaxed);
            if qf > prev_queue_full {
                metrics::counter!(m::DROPS, "kind" => "any", "stage" => "probe_queue")
                    .increment(qf - prev_queue_full);
                dropped += qf - prev_queue_full;
            }
            prev_queue_full = qf;
            let de = probe.counters.decode_errors.load(Ordering::Relaxed);
            if de > prev_decode {
                metrics::counter!(m::DROPS, "kind" => "any", "stage" => "decode")
                    .increment(de - prev_decode);
            }
            prev_decode = de;
            let total = events_in_tick + dropped;
            if cfg.drops.threshold > 0.0
                && dropped > 0
                && dropped as f64 / total.max(1) as f64 >= cfg.drops.threshold
                && last_drop_alert
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(cfg.drops.rate_limit_secs))
            {
                last_drop_alert = Some(Instant::now());
                let a = drop_alert(&hostname, dropped, total, secs);
                metrics::counter!(m::RULE_MATCHES, "rule_name" => a.rule.clone(), "priority" => a.priority.clone(), "source" => a.source.clone())
                    .increment(1);
                outputs.emit(&a);
            }
            events_in_tick = 0;
            if let (Some(k), Some(p)) = (killer.as_mut(), probe.kill_policy()) {
                k.sweep(p);
            }
            if let Some(rs) = probe.runtime_stats() {
                metrics::gauge!(m::CONTAINER_CACHE).set(rs.cache_entries as f64);
                for (result, v) in [
                    ("resolved", rs.resolved),
                    ("not_found", rs.not_found),
                    ("unreachable", rs.unreachable),
                    ("timeout", rs.timeouts),
                    ("failed", rs.failures),
                ] {
                    metrics::counter!(m::RUNTIME_LOOKUPS, "result" => result).absolute(v);
                }
            }
            if let Some((cpu, rss)) = m::process_usage() {
                metrics::gauge!(m::CPU_SECONDS).set(cpu);
                metrics::gauge!(m::RSS_BYTES).set(rss as f64);
            }
        }
    }
    tracing::info!("stopping: draining alerts");
    probe.stop();
    for ev in rx.try_iter() {
        for a in engine.evaluate(&ev).alerts {
            outputs.emit(&a);
        }
    }
    // bounded: what an output has not taken by then is counted and left behind
    outputs.close(Duration::from_millis(cfg.outputs.shutdown_timeout_ms));
    Ok(ExitCode::SUCCESS)
}

fn falco_learn_probe_common_kinds() -> Vec<&'static str> {
    falco_learn_probe::KINDS.iter().map(|k| k.name()).collect()
}

/// Say which syscall programs are attached (and what a reload changed).
fn log_attached(probe: &Probe, attached: &[&str], detached: &[&str]) {
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
    tracing::info!(
        "kernel: syscall programs attached for {}{changes}",
        now.join(", ")
    );
}

/// Say what the kernel will report of read-only opens (and warn when a rule turns the
/// in-kernel filter off).
fn log_read_plan(plan: &falco_learn_rules::kernel_plan::ReadOpenPlan) {
    let mut text = Vec::new();
    let _ = crate::cmd::rules::explain(&mut text, "read-only opens", plan);
    let text = String::from_utf8_lossy(&text);
    if plan.prefixes.is_none() {
        tracing::warn!("{}", text.trim_end());
    } else {
        tracing::info!("{}", text.trim_end());
    }
}

/// Build an engine from `cfg` on a thread of its own (`None`, logged and
/// counted, when no thread can be started).
fn start_reload(
    cfg: Config,
    mode: Mode,
) -> Option<std::thread::JoinHandle<anyhow::Result<Engine>>> {
    let spawned = std::thread::Builder::new()
        .name("reload".into())
        // Compiling recurses on conditions (bounded by the rules limits);
        // room to spare over the default 2 MiB.
        .stack_size(8 << 20)
        .spawn(move || build_engine(&cfg, mode));
    match spawned {
        Ok(h) => Some(h),
        Err(e) => {
            metrics::counter!(m::RELOADS, "result" => "error").increment(1);
            tracing::error!("SIGHUP: cannot start the reload ({e}); keeping the running rules");
            None
        }
    }
}

/// The configuration as a reload sees it: the file is read again.
fn cfg_reloaded(args: &RunArgs, overrides: &[String], running: &Config) -> Config {
    match Config::load(args.config.as_deref(), overrides) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(
                "SIGHUP: configuration not reloaded ({e}); reloading rules and profiles only"
            );
            running.clone()
        }
    }
}

/// The probe's runtime resolver settings from the `container_runtimes` section.
fn runtime_config(c: &falco_learn_enforcer::config::ContainerRuntimes) -> RuntimeConfig {
    RuntimeConfig {
        enabled: c.enabled,
        containerd_sockets: c.containerd_sockets.clone(),
        cri_sockets: c.cri_sockets.clone(),
        docker_sockets: c.docker_sockets.clone(),
        podman_sockets: c.podman_sockets.clone(),
        podman_storage: c
            .podman_storage
            .clone()
            .filter(|p| !p.as_os_str().is_empty()),
        lookup_timeout: Duration::from_millis(c.lookup_timeout_ms),
        hold: Duration::from_millis(c.hold_ms),
        ..RuntimeConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config file's defaults are the probe's: one place to read them.
    #[test]
    fn container_runtime_defaults_match_the_probe() {
        let ours = runtime_config(&Config::default().container_runtimes);
        let probe = RuntimeConfig::default();
        assert_eq!(ours.enabled, probe.enabled);
        assert_eq!(ours.containerd_sockets, probe.containerd_sockets);
        assert_eq!(ours.cri_sockets, probe.cri_sockets);
        assert_eq!(ours.docker_sockets, probe.docker_sockets);
        assert_eq!(ours.podman_sockets, probe.podman_sockets);
        assert_eq!(ours.podman_storage, probe.podman_storage);
        assert_eq!(ours.lookup_timeout, probe.lookup_timeout);
        assert_eq!(ours.hold, probe.hold);
    }

    #[test]
    fn empty_podman_storage_turns_the_fallback_off() {
        for o in [
            "container_runtimes.podman_storage=",
            "container_runtimes.podman_storage=''",
        ] {
            let cfg = Config::load(None, &[o.into()]).expect("config");
            assert_eq!(
                runtime_config(&cfg.container_runtimes).podman_storage,
                None,
                "{o}"
            );
        }
        let err = Config::load(None, &["container_runtimes.hold_ms=60000".into()])
            .expect_err("a minute-long hold is refused");
        assert!(
            err.to_string().contains("container_runtimes.hold_ms"),
            "{err}"
        );
    }
}
