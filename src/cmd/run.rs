//! `falco-learn run`: the node agent's arguments, wired to the enforcer's
//! pipeline (live probe → engine → outputs + telemetry; see
//! `enforcer/src/pipeline.rs`).

use crate::cmd::signals;
use anyhow::Context;
use clap::{Args, ValueEnum};
use falco_learn_enforcer::agent::{self, Mode as AgentMode};
use falco_learn_enforcer::outputs::Outputs;
use falco_learn_enforcer::pipeline::{DropAlerts, Options, Pipeline};
use falco_learn_enforcer::source::LiveSource;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

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
drain queued alerts for at most outputs.shutdown_timeout and exit.\n\
Metrics: http://127.0.0.1:8765/metrics.")]
pub struct RunArgs {
    #[arg(long, value_enum, default_value = "enforce-alert")]
    pub mode: Mode,
    #[command(flatten)]
    pub config: crate::cmd::AgentConfigArgs,
    /// Stop after this long (tests, benchmarks); default: until SIGTERM.
    #[arg(long, value_parser = crate::cmd::duration_flag)]
    pub duration: Option<Duration>,
    /// Also write every event the agent evaluates to FILE (JSON lines, 0600),
    /// for `replay` with the same rules and profiles.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}

impl From<Mode> for AgentMode {
    fn from(m: Mode) -> AgentMode {
        match m {
            Mode::EnforceAlert => AgentMode::EnforceAlert,
            Mode::EnforceKill => AgentMode::EnforceKill,
        }
    }
}

/// SIGINT/SIGTERM and SIGHUP, as the pipeline asks for them.
struct Signals;
impl falco_learn_enforcer::pipeline::Control for Signals {
    fn stop_requested(&self) -> bool {
        signals::stop_requested()
    }
    fn take_reload(&self) -> bool {
        signals::take_reload()
    }
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mode = AgentMode::from(args.mode);
    let from = args.config.source(None);
    let cfg = from.load()?;
    agent::check_mode(&cfg, mode)?;
    // Rules and profiles first: a bad file or a missing profiles directory
    // fails before anything is started.
    let engine = agent::build_engine(&cfg, mode)?;
    signals::install(true);
    if cfg.metrics.enabled {
        let addr = falco_learn_enforcer::telemetry::serve(&cfg.metrics.listen)?;
        tracing::info!("metrics on http://{addr}/metrics");
    }
    // each enabled output's delivery and failure counters exist (at 0) from the start
    let mut outputs = Outputs::new(&cfg.outputs)?;
    let record = match &args.record {
        Some(p) => Some(crate::cmd::record::create_private(p)?),
        None => None,
    };
    // both run modes enforce: the kernel filter applies unless engine.kernel_filter is off
    let mut source = LiveSource::start(agent::probe_config(&cfg, &engine, mode))?
        .kernel_filter(agent::kernel_filter_on(&cfg));
    let running = cfg.clone();
    let rebuild = Arc::new(move || {
        // the file is read again; a bad one keeps the running configuration
        let cfg = from.load().unwrap_or_else(|e| {
            tracing::error!(
                "SIGHUP: configuration not reloaded ({e}); reloading rules and profiles only"
            );
            running.clone()
        });
        agent::build_engine(&cfg, mode).map_err(|e| e.to_string())
    });
    let opts = Options {
        drops: DropAlerts {
            threshold: cfg.drops.threshold,
            rate_limit: cfg.drops.rate_limit,
        },
        until: args.duration,
        shutdown_timeout: cfg.outputs.shutdown_timeout,
        rebuild: Some(rebuild),
    };
    let mut pipeline = Pipeline::new(engine, &mut source, &mut outputs, &Signals, opts);
    if let Some(f) = record {
        pipeline.record_to(Box::new(std::io::BufWriter::new(f)));
    }
    if pipeline.kills() {
        tracing::warn!(
            "enforce-kill mode running: execs outside their image's profile are killed in \
             profiled containers"
        );
    } else {
        tracing::info!("enforce-alert mode running");
    }
    let summary = pipeline.run().context("the agent stopped")?;
    tracing::info!(
        "stopped: {} events, {} alerts ({} anomalies, {} kills, {} drop alerts)",
        summary.events,
        summary.alerts,
        summary.anomalies,
        summary.kills,
        summary.drop_alerts
    );
    Ok(ExitCode::SUCCESS)
}
