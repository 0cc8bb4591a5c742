//! `falco-learn record`: capture live events with the eBPF probe and write them
//! as JSON lines (the format `replay` and `--from` read back).

use anyhow::Context;
use clap::Args;
use falco_learn_event::{write_jsonl, Event};
use falco_learn_probe::{Probe, ProbeConfig};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    falco-learn record --duration 5s -o events.jsonl\n  \
    falco-learn record --container 3f2a1b9c0d4e --duration 1m\n  \
    falco-learn record --all-opens --duration 10s | head\n\n\
Ends after --duration, or on Ctrl-C / SIGTERM; either way everything captured is written.")]
pub struct RecordArgs {
    /// Output file (default: standard output).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// How long to record, e.g. `5s`, `2m`, `1h` (default: until Ctrl-C).
    #[arg(short, long, value_parser = crate::cmd::duration_flag)]
    pub duration: Option<Duration>,
    /// Only events of this container id (Falco's 12-character id, a full id, or a ctr name).
    #[arg(long, conflicts_with = "image")]
    pub container: Option<String>,
    /// Only events of containers whose image repository matches NAME
    /// (`nginx` matches `docker.io/library/nginx`); needs the runtime resolver.
    #[arg(long)]
    pub image: Option<String>,
    /// Report every open; by default read-only opens are reported only where the
    /// default rules can match them (`rules check --explain-kernel
    /// rules/default/falco-learn_rules.yaml` lists them) and writes always.
    #[arg(long)]
    pub all_opens: bool,
    /// Ring buffer size in MiB (a power of two).
    #[arg(long, default_value_t = 16, value_parser = crate::cmd::int_in(1u32, 1024))]
    pub ring_mib: u32,
}

fn matches(ev: &Event, args: &RecordArgs) -> bool {
    if let Some(id) = &args.container {
        let cid = &ev.container.id;
        return !cid.is_empty() && cid != "host" && (cid == id || id.starts_with(cid.as_str()));
    }
    if let Some(image) = &args.image {
        return falco_learn_event::image::matches(
            image,
            &ev.container.image_repository,
            &ev.container.image_tag,
        );
    }
    true
}

/// Create (or truncate) a recording, mode 0600 whatever the umask: it holds
/// the behaviour of every process recorded. An existing regular file loses
/// group and other access; a device or a pipe (`-o /dev/stdout`) is left as
/// it is.
pub fn create_private(path: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let meta = f
        .metadata()
        .with_context(|| format!("cannot create {}", path.display()))?;
    if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private (mode 0600)", path.display()))?;
    }
    Ok(f)
}

pub fn run(args: RecordArgs) -> anyhow::Result<ExitCode> {
    if !args.ring_mib.is_power_of_two() {
        anyhow::bail!("--ring-mib must be a power of two (got {})", args.ring_mib);
    }
    // the read-only opens our default rules can match (a recording replays them)
    let (rules, _) = falco_learn_rules::Ruleset::load_sources(&[(
        falco_learn_rules::DEFAULT_RULES_NAME,
        falco_learn_rules::DEFAULT_RULES,
    )]);
    let plan = rules.read_open_plan();
    let mut cfg = ProbeConfig {
        ring_bytes: args.ring_mib * 1024 * 1024,
        read: falco_learn_enforcer::agent::open_filter(&plan),
        ..ProbeConfig::default()
    };
    if args.all_opens {
        cfg.read = falco_learn_probe::filter::OpenFilterPlan::off();
    }
    // The output first: a bad path fails before the probe loads.
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(BufWriter::new(create_private(p)?)),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    crate::cmd::signals::install(false);
    let (probe, rx) = Probe::start(cfg)?;
    tracing::info!(
        duration = ?args.duration,
        "recording live events{}",
        args.output.as_ref().map(|p| format!(" to {}", p.display())).unwrap_or_default()
    );
    let started = Instant::now();
    let mut written = 0u64;
    loop {
        if crate::cmd::signals::stop_requested() {
            break;
        }
        if args.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => {
                if matches(&ev, &args) {
                    if let Err(e) = write_jsonl(&mut out, &ev) {
                        if e.kind() == std::io::ErrorKind::BrokenPipe {
                            break;
                        }
                        return Err(e).context("cannot write events");
                    }
                    written += 1;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let recorded_for = started.elapsed();
    // stop the probe first (detaching ~40 programs takes a moment), then write
    // what the ring buffer still holds
    let stats = probe.kernel_stats();
    // read after the last records: the consumer decodes them (until the drain
    // below, malformed ones are not counted yet)
    let counters = probe.counters.clone();
    // the stop releases the events held for metadata (`hold_timeouts`): read after
    let resolver = probe.resolver().cloned();
    probe.stop();
    for ev in rx.try_iter() {
        if matches(&ev, &args) && write_jsonl(&mut out, &ev).is_ok() {
            written += 1;
        }
    }
    let _ = out.flush();
    let malformed = counters.decode_errors.load(Ordering::Relaxed);
    let runtime = resolver.map(|r| r.stats());
    let dropped: u64 = stats.iter().map(|(_, s)| s.dropped).sum();
    let filtered: u64 = stats.iter().map(|(_, s)| s.filtered).sum();
    let lost: u64 = stats.iter().map(|(_, s)| s.lost_args).sum();
    eprintln!(
        "falco-learn: wrote {written} events in {:.1}s; kernel drops {dropped}, filtered in kernel {filtered}, \
         arguments the kernel could not read {lost}, malformed records {malformed}",
        recorded_for.as_secs_f64(),
    );
    if let Some(r) = runtime {
        eprintln!(
            "falco-learn: container metadata: {} lookups, {} resolved (mean {} µs, max {} µs), \
             {} failed ({} unknown to the runtime, {} unreachable, {} timed out), {} cached, \
             {} evicted, {} events sent before their metadata arrived",
            r.lookups,
            r.resolved,
            r.lookup_ns_total / r.resolved.max(1) / 1000,
            r.lookup_ns_max / 1000,
            r.failures,
            r.not_found,
            r.unreachable,
            r.timeouts,
            r.cache_entries,
            r.evicted,
            r.hold_timeouts + r.hold_overflow
        );
    }
    for (k, s) in stats.iter().filter(|(_, s)| s.dropped > 0) {
        eprintln!(
            "falco-learn:   dropped {} {} events (ring buffer full)",
            s.dropped,
            k.name()
        );
    }
    Ok(ExitCode::SUCCESS)
}
