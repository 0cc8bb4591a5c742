//! `falco-learn --image nginx --duration 1h` (also `falco-learn learn …`):
//! learn per-image profiles from live events or a recording into the store.
//!
//! The window (image pattern + source + duration) is kept in the store and
//! checkpointed with the profiles; running the same command again after an
//! interruption or a crash resumes it: a recording continues after the last
//! checkpointed event, a live window runs for the time it still had left.
//! A window that ran to its end is done. A recording is learned once: the
//! window keeps the CRC-32 of the bytes it read, and running the same command
//! again over the same file (or a copy of it) says so and learns nothing; a
//! file that grew is learned from where the window stopped, a different file
//! at the same path as a new window; `--fresh` learns it again. A live
//! window that ran to its end is followed by a new one that adds to the same
//! profiles.

use anyhow::{bail, Context};
use clap::Args;
use falco_learn_event::Event;
use falco_learn_profiler::{Learner, Limits, Outcome, Policy, ProcKey, Profile};
use falco_learn_rules::Ruleset;
use falco_learn_store::{FlaggedProc, Store, WindowState};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{BufRead, BufReader, IsTerminal, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Our default ruleset, used for poison resistance unless `-r` is given.
use falco_learn_rules::{DEFAULT_RULES, DEFAULT_RULES_NAME};

/// Where the store lives unless `--store` or `FALCO_LEARN_STORE` says otherwise.
pub const DEFAULT_STORE: &str = "/var/lib/falco-learn/store";

#[derive(Args, Debug, Clone, Default)]
pub struct LearnArgs {
    /// Image to learn, as you would type it: `nginx` matches
    /// docker.io/library/nginx, localhost/nginx and nginx:<any tag> (whole
    /// path components from the right); `nginx:1.27` also needs that tag;
    /// `…@sha256:…` that digest. Each repository:tag gets its own profile.
    #[arg(long, value_name = "NAME")]
    pub image: Option<String>,
    /// How long to learn: `90s`, `15m`, `1h`. Live: wall-clock time (default:
    /// until Ctrl-C). With --from: event time from the window's first event
    /// (default: the whole recording).
    #[arg(short, long, value_parser = crate::cmd::duration_flag)]
    pub duration: Option<Duration>,
    /// Learn from a JSON-lines recording (`falco-learn record`) instead of
    /// the live probe.
    #[arg(long, value_name = "EVENTS.jsonl")]
    pub from: Option<PathBuf>,
    /// Store directory (sled).
    #[arg(long, env = "FALCO_LEARN_STORE", default_value = DEFAULT_STORE)]
    pub store: PathBuf,
    /// How often learned state is written to disk.
    #[arg(
        long,
        value_parser = crate::cmd::duration_in(Duration::ZERO, Duration::from_secs(3600)),
        default_value = "5s"
    )]
    pub flush_interval: Duration,
    /// Start a new window even if this command's last window did not finish,
    /// or learn a recording again that was learned completely (counts add up).
    #[arg(long)]
    pub fresh: bool,
    /// Rules whose alerts keep events out of the profile (repeatable; default:
    /// the embedded falco-learn default ruleset).
    #[arg(short = 'r', long = "rules", value_name = "FILE")]
    pub rules: Vec<PathBuf>,
    /// Entries directly in one directory past which it becomes `dir/**`.
    #[arg(
        long,
        default_value_t = Limits::default().file_dir_threshold,
        value_parser = crate::cmd::int_in(1usize, 100_000)
    )]
    pub file_dir_threshold: usize,
    /// Minimum path components of a generalised directory (2: /var/log/** but never /tmp/**).
    #[arg(
        long,
        default_value_t = Limits::default().file_min_depth,
        value_parser = crate::cmd::int_in(1usize, 64)
    )]
    pub file_min_depth: usize,
    /// Peer CIDRs per protocol+port past which peers are widened.
    #[arg(
        long,
        default_value_t = Limits::default().peers_max,
        value_parser = crate::cmd::int_in(2usize, 4096)
    )]
    pub peers_max: usize,
    /// Learn executables born in the container (tmpfs, memfd, overlay upper
    /// layer, written during the window) into `exec:` instead of listing them
    /// under `review.drift` and tainting the profile.
    #[arg(long)]
    pub accept_drift: bool,
    /// Learn what exec sessions (`kubectl`/`docker`/`podman`/`ctr task exec`)
    /// do, like the container's own processes, instead of listing them under
    /// `review.sessions`.
    #[arg(long)]
    pub learn_exec_sessions: bool,
    /// Keep a live window open past --duration until a container of the
    /// image was seen starting (its start-up behaviour is then learned).
    #[arg(long)]
    pub require_start: bool,
    /// Serve the learning metrics (`falco_learn_learning_*`, per image) for
    /// Prometheus on this address while learning, e.g. 127.0.0.1:9377.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Load the poison ruleset: `-r` files, or the embedded default rules.
pub fn poison_rules(files: &[PathBuf]) -> anyhow::Result<Ruleset> {
    let (rs, report) = if files.is_empty() {
        Ruleset::load_sources(&[(DEFAULT_RULES_NAME, DEFAULT_RULES)])
    } else {
        Ruleset::load_files(files)
    };
    if report.has_errors() {
        eprint!("{report}");
        bail!(
            "{} error(s) in the rules used against poisoning; nothing learned",
            report.errors.len()
        );
    }
    Ok(rs)
}

fn window_id(image: &str, source: &str, duration: Option<Duration>) -> String {
    let d = duration.map_or("none".to_string(), |d| {
        humantime::format_duration(d).to_string()
    });
    format!("image={image} source={source} duration={d}")
}

/// What the loop counts for progress and the summary.
#[derive(Default)]
struct Counts {
    seen: u64,
    matched: u64,
    unattributed_container: u64,
    flagged: u64,
    new: u64,
    /// Drift execs and exec sessions put under review.
    review: u64,
}

struct Session<'a> {
    store: &'a Store,
    learner: Learner,
    window: WindowState,
    pattern: String,
    started: Instant,
    elapsed_base: u64,
    last_flush: Instant,
    flush_every: Duration,
    bar: Option<ProgressBar>,
    counts: Counts,
    /// CRC-32 of the recording's bytes read so far (recordings only).
    crc: Option<crc32fast::Hasher>,
    /// Live: keep the window open until a start was observed.
    require_start: bool,
    /// Per image: (events, new behaviour) already added to the counters.
    reported: std::collections::BTreeMap<String, (u64, u64)>,
    /// Per image: events that taught something new in this run.
    new_by_image: std::collections::BTreeMap<String, u64>,
}

impl Session<'_> {
    fn observe(&mut self, ev: &Event) {
        self.window.consumed += 1;
        self.counts.seen += 1;
        let c = &ev.container;
        if !falco_learn_event::image::matches_digest(
            &self.pattern,
            &c.image_repository,
            &c.image_tag,
            &c.image_digest,
        ) {
            if c.image_repository.is_empty() && !c.id.is_empty() && c.id != "host" {
                self.counts.unattributed_container += 1;
            }
            return;
        }
        self.counts.matched += 1;
        if self.window.first_ts == 0 {
            self.window.first_ts = ev.ts;
        }
        match self.learner.observe(ev) {
            Outcome::Learned { deltas } => {
                if deltas.iter().any(|d| d.is_behaviour()) {
                    *self.new_by_image.entry(c.image()).or_default() += 1;
                }
                for d in deltas.iter().filter(|d| d.is_behaviour()) {
                    self.counts.new += 1;
                    self.say(&format!("learned {} {d}", c.image()));
                }
            }
            Outcome::Drift { path, evidence } => {
                self.counts.review += 1;
                self.say(&format!(
                    "NOT learned (drift: {evidence}): exec {path} in {}; listed under review.drift, \
                     profile marked tainted (accept it by moving the entry to exec:, or learn with \
                     --accept-drift)",
                    c.image()
                ));
            }
            Outcome::Session { new: true } => {
                self.counts.review += 1;
                self.say(&format!(
                    "NOT learned (exec session from outside the container's process tree): {} in \
                     {} (container {}); listed under review.sessions (--learn-exec-sessions learns \
                     them)",
                    ev.process.exepath,
                    c.image(),
                    c.id
                ));
            }
            Outcome::Flagged { rules } => {
                self.counts.flagged += 1;
                self.say(&format!(
                    "NOT learned ({}): {} {} in {}; profile marked tainted",
                    rules.join(", "),
                    ev.event_type(),
                    ev.process.exepath,
                    c.image()
                ));
            }
            _ => {}
        }
    }

    fn say(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None => tracing::info!("{msg}"),
        }
    }

    fn elapsed_ns(&self) -> u64 {
        self.elapsed_base + self.started.elapsed().as_nanos() as u64
    }

    fn checkpoint(&mut self) -> anyhow::Result<()> {
        self.window.elapsed_ns = self.elapsed_ns();
        self.window.flagged_procs = self
            .learner
            .flagged_procs()
            .iter()
            .map(FlaggedProc::from)
            .collect();
        let m = self.learner.window_state();
        self.window.covered = m.covered;
        self.window.inits = m.inits.iter().map(FlaggedProc::from).collect();
        self.window.sessions = m
            .sessions
            .iter()
            .map(|(k, r)| (FlaggedProc::from(k), FlaggedProc::from(r)))
            .collect();
        self.window.window_start = m.window_start;
        self.window.crc = self.crc.as_ref().map(|h| h.clone().finalize());
        let changes = self.learner.take_changes();
        self.store
            .checkpoint(self.learner.profiles(), &changes, Some(&self.window))?;
        self.store.flush()?;
        self.last_flush = Instant::now();
        self.publish();
        Ok(())
    }

    /// Update the learning metrics of the matching images (no-op without a
    /// recorder).
    fn publish(&mut self) {
        let mut rows = Vec::new();
        for p in self.matching() {
            let l = &p.learning;
            let img = p.image.to_string();
            let since = if l.last_new_behaviour == 0 {
                l.ended.saturating_sub(l.started)
            } else {
                l.ended.saturating_sub(l.last_new_behaviour)
            };
            rows.push((
                img,
                l.events,
                since as f64 / 1e9,
                p.review.len() as f64,
                if l.tainted { 1.0 } else { 0.0 },
                l.starts_observed as f64,
            ));
        }
        for (img, events, since, review, tainted, starts) in rows {
            let new = self.new_by_image.get(&img).copied().unwrap_or(0);
            let done = self.reported.entry(img.clone()).or_insert((0, 0));
            use falco_learn_enforcer::metrics as m;
            let image = [("image", img.clone().into())];
            m::LEARNING_EVENTS
                .counter(&image)
                .increment(events.saturating_sub(done.0));
            m::LEARNING_NEW
                .counter(&image)
                .increment(new.saturating_sub(done.1));
            *done = (events.max(done.0), new.max(done.1));
            m::LEARNING_SINCE_NEW.gauge(&image).set(since);
            m::LEARNING_REVIEW.gauge(&image).set(review);
            m::LEARNING_TAINTED.gauge(&image).set(tainted);
            m::LEARNING_STARTS.gauge(&image).set(starts);
        }
    }

    fn maybe_checkpoint(&mut self) -> anyhow::Result<()> {
        if self.last_flush.elapsed() >= self.flush_every {
            self.checkpoint()?;
            self.progress();
        }
        Ok(())
    }

    fn matching(&self) -> impl Iterator<Item = &Profile> {
        self.learner.profiles().values().filter(|p| {
            falco_learn_event::image::matches(&self.pattern, &p.image.repository, &p.image.tag)
        })
    }

    /// (starts observed, containers running at start) over the matching profiles.
    fn coverage(&self) -> (u64, u64) {
        self.matching().fold((0, 0), |(s, r), p| {
            (
                s + p.learning.starts_observed,
                r + p.learning.running_at_start,
            )
        })
    }

    fn sizes(&self) -> (usize, usize, usize) {
        let mut s = (0, 0, 0);
        for p in self.learner.profiles().values() {
            if falco_learn_event::image::matches(&self.pattern, &p.image.repository, &p.image.tag) {
                s.0 += p.exec.len();
                s.1 += p.outbound.len();
                s.2 += p.write_entries();
            }
        }
        s
    }

    fn progress(&self) {
        let (e, p, w) = self.sizes();
        // Convergence: event time since the last new behaviour.
        let quiet = self
            .learner
            .profiles()
            .values()
            .filter(|p| {
                falco_learn_event::image::matches(&self.pattern, &p.image.repository, &p.image.tag)
            })
            .filter(|p| p.learning.last_new_behaviour > 0)
            .map(|p| {
                p.learning
                    .ended
                    .saturating_sub(p.learning.last_new_behaviour)
                    / 1_000_000_000
            })
            .min();
        let (starts, _) = self.coverage();
        let msg = format!(
            "execs {e} · ports {p} · paths {w} · events {} · flagged {} · review {} · starts {} · \
             nothing new for {}{}",
            self.counts.matched,
            self.counts.flagged,
            self.counts.review,
            starts,
            quiet.map_or("-".to_string(), |s| humantime::format_duration(
                Duration::from_secs(s)
            )
            .to_string()),
            if starts == 0 && self.counts.matched > 0 {
                " · NO START SEEN: restart one replica to learn start-up"
            } else {
                ""
            }
        );
        match &self.bar {
            Some(b) => b.set_message(msg),
            None => tracing::info!("learning {}: {msg}", self.pattern),
        }
    }
}

pub fn run(args: LearnArgs) -> anyhow::Result<ExitCode> {
    let Some(pattern) = args.image.clone() else {
        bail!("--image is required (e.g. `falco-learn --image nginx --duration 1h`)");
    };
    let limits = Limits {
        file_dir_threshold: args.file_dir_threshold,
        file_min_depth: args.file_min_depth,
        peers_max: args.peers_max,
        ..Limits::default()
    };
    if args.require_start && args.from.is_some() {
        bail!(
            "--require-start waits for a container start in live events; a recording cannot \
             wait (learn it without --require-start, then check `learning.starts_observed`)"
        );
    }
    if let Some(addr) = args.metrics_listen {
        let addr = falco_learn_enforcer::telemetry::serve(&addr.to_string())
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        falco_learn_enforcer::metrics::describe_these(falco_learn_enforcer::metrics::LEARNING);
        eprintln!("falco-learn: learning metrics on http://{addr}/metrics");
    }
    let rules = poison_rules(&args.rules)?;
    let mut learner = Learner::new(limits, Some(rules))?.with_policy(Policy {
        accept_drift: args.accept_drift,
        learn_exec_sessions: args.learn_exec_sessions,
    });
    if args.from.is_none() {
        learner.set_window_start(now_ns());
    }
    let store = Store::open(&args.store)?;
    for note in store.notes() {
        tracing::warn!("{note}");
    }
    let source = match &args.from {
        Some(p) => std::fs::canonicalize(p)
            .with_context(|| format!("cannot open {}", p.display()))?
            .display()
            .to_string(),
        None => "live".to_string(),
    };
    let id = window_id(&pattern, &source, args.duration);
    let duration_ns = args.duration.map_or(0, |d| d.as_nanos() as u64);
    let new_window = || WindowState {
        id: id.clone(),
        image: pattern.clone(),
        source: source.clone(),
        duration_ns,
        started_wall: now_ns(),
        ..WindowState::default()
    };
    let resume = |w: WindowState| {
        eprintln!(
            "falco-learn: resuming window '{id}' ({} events read, {} learning so far)",
            w.consumed,
            humantime::format_duration(Duration::from_secs(w.elapsed_ns / 1_000_000_000))
        );
        w
    };
    let window = match (store.window(&id)?, &args.from) {
        (Some(w), Some(path)) if args.fresh && w.done => {
            eprintln!(
                "falco-learn: --fresh: learning {} again from its start; its counts add to the \
                 stored profiles",
                path.display()
            );
            new_window()
        }
        (_, _) if args.fresh => new_window(),
        (Some(w), Some(path)) if !w.done => {
            if recognise(path, &w)? == Recognised::Different {
                bail!(
                    "{} changed since this window read it (its first {} bytes differ); \
                     `--fresh` learns it from its start as a new window",
                    path.display(),
                    w.offset
                );
            }
            resume(w)
        }
        (Some(w), None) if !w.done => resume(w),
        (Some(mut w), Some(path)) => match recognise(path, &w)? {
            Recognised::Learned => {
                already_learned(path, &w);
                return Ok(ExitCode::SUCCESS);
            }
            Recognised::Grew(by) => {
                eprintln!(
                    "falco-learn: {} grew by {by} bytes since window '{id}' learned it; learning \
                     the new events",
                    path.display()
                );
                w.done = false;
                w
            }
            Recognised::Different if w.crc.is_none() => {
                eprintln!(
                    "falco-learn: window '{id}' was learned by an older falco-learn, which kept \
                     no checksum of {}; learning it as a new recording",
                    path.display()
                );
                new_window()
            }
            Recognised::Different => {
                eprintln!(
                    "falco-learn: {} is not the recording window '{id}' learned (it changed); \
                     learning it as a new recording",
                    path.display()
                );
                new_window()
            }
        },
        (Some(_), None) => new_window(),
        (None, Some(path)) => {
            // The same bytes learned by another window of this image: the
            // recording under another name (a copy, a move), or with another
            // --duration.
            for w in store.windows()? {
                if !w.done || w.image != pattern || w.source == "live" {
                    continue;
                }
                match recognise(path, &w)? {
                    Recognised::Different => {}
                    // all this window would learn is learned
                    Recognised::Learned if w.duration_ns == duration_ns || !w.ended_by_duration => {
                        already_learned(path, &w);
                        return Ok(ExitCode::SUCCESS);
                    }
                    _ => bail!(
                        "the first {} bytes of {} were learned by window '{}'; learning it in \
                         another window would count those events twice. Run that window's \
                         command to continue it, or `--fresh` to learn it anyway",
                        w.offset,
                        path.display(),
                        w.id
                    ),
                }
            }
            new_window()
        }
        (None, None) => new_window(),
    };
    // Resume from what is stored: the profiles this window may touch, the
    // containers already counted, the processes flagged in this window.
    let stored: Vec<_> = store
        .profiles()?
        .into_iter()
        .filter(|p| falco_learn_event::image::matches(&pattern, &p.image.repository, &p.image.tag))
        .collect();
    learner.restore(
        stored,
        store.containers()?,
        window.flagged_procs.iter().map(ProcKey::from),
    );
    learner.restore_window(falco_learn_profiler::WindowMemory {
        covered: window.covered.clone(),
        inits: window.inits.iter().map(ProcKey::from).collect(),
        sessions: window
            .sessions
            .iter()
            .map(|(k, r)| (ProcKey::from(k), ProcKey::from(r)))
            .collect(),
        window_start: window.window_start,
    });
    crate::cmd::signals::install(false);
    let terminal = std::io::stderr().is_terminal();
    let elapsed_base = window.elapsed_ns;
    let mut s = Session {
        store: &store,
        learner,
        window,
        pattern: pattern.clone(),
        started: Instant::now(),
        elapsed_base,
        last_flush: Instant::now(),
        flush_every: args.flush_interval,
        bar: None,
        counts: Counts::default(),
        crc: None,
        require_start: args.require_start,
        reported: Default::default(),
        new_by_image: Default::default(),
    };
    if args.from.is_some() {
        s.crc = Some(match s.window.crc {
            Some(c) => crc32fast::Hasher::new_with_initial_len(c, s.window.offset),
            None => crc32fast::Hasher::new(),
        });
    }
    let finished = match &args.from {
        Some(path) => learn_file(&mut s, path, terminal)?,
        None => learn_live(&mut s, terminal)?,
    };
    s.window.done = finished;
    s.checkpoint().map_err(|e| stopped(e, &s.window))?;
    if let Some(b) = &s.bar {
        b.finish_and_clear();
    }
    summary(&s, finished, &args.store);
    Ok(ExitCode::SUCCESS)
}

fn learn_file(s: &mut Session, path: &Path, terminal: bool) -> anyhow::Result<bool> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let total = file.metadata().map_or(0, |m| m.len());
    if s.window.offset > total {
        bail!(
            "{} is shorter than when this window read it ({} < {} bytes); use --fresh",
            path.display(),
            total,
            s.window.offset
        );
    }
    // Resume: continue right after the last checkpointed event.
    file.seek(SeekFrom::Start(s.window.offset))
        .with_context(|| format!("cannot seek in {}", path.display()))?;
    let mut reader = BufReader::new(file);
    if terminal {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} learning {prefix} [{elapsed_precise}] {wide_bar} {percent}% ETA {eta} {msg}",
            )
            .map_err(|e| anyhow::anyhow!("progress template: {e}"))?,
        );
        b.set_prefix(s.pattern.clone());
        b.set_position(s.window.offset);
        s.bar = Some(b);
    }
    let mut line = String::new();
    loop {
        if crate::cmd::signals::stop_requested() {
            return Ok(false);
        }
        line.clear();
        let n = reader
            .read_line(&mut line)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            return Ok(true);
        }
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            s.window.offset += n as u64;
            if let Some(h) = &mut s.crc {
                h.update(line.as_bytes());
            }
            continue;
        }
        match serde_json::from_str::<Event>(text) {
            Ok(ev) => {
                if s.window.duration_ns > 0
                    && s.window.first_ts > 0
                    && ev.ts >= s.window.first_ts.saturating_add(s.window.duration_ns)
                {
                    s.window.ended_by_duration = true;
                    return Ok(true);
                }
                s.observe(&ev);
            }
            Err(e) => {
                s.window.consumed += 1;
                s.say(&format!(
                    "{}: event {} (byte {}) skipped: {e}",
                    path.display(),
                    s.window.consumed,
                    s.window.offset
                ));
            }
        }
        s.window.offset += n as u64;
        if let Some(h) = &mut s.crc {
            h.update(line.as_bytes());
        }
        if s.window.consumed.is_multiple_of(256) {
            if let Some(b) = &s.bar {
                b.set_position(s.window.offset);
            }
            s.maybe_checkpoint().map_err(|e| stopped(e, &s.window))?;
        }
    }
}

fn learn_live(s: &mut Session, terminal: bool) -> anyhow::Result<bool> {
    // the reads the poison rules can flag are reported, nothing else
    let plan = s.learner.poison_rules().map(|r| r.read_open_plan());
    let cfg = match &plan {
        Some(p) => falco_learn_probe::ProbeConfig {
            read: falco_learn_enforcer::agent::open_filter(p),
            ..falco_learn_probe::ProbeConfig::default()
        },
        None => falco_learn_probe::ProbeConfig::default(),
    };
    let (probe, rx) = falco_learn_probe::Probe::start(cfg)?;
    let total = Duration::from_nanos(s.window.duration_ns);
    let remaining = total.saturating_sub(Duration::from_nanos(s.elapsed_base));
    if terminal {
        let b = if s.window.duration_ns > 0 {
            let b = ProgressBar::new(total.as_secs().max(1));
            b.set_position(s.elapsed_base / 1_000_000_000);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} learning {prefix} [{elapsed_precise}] {wide_bar} ETA {eta} {msg}",
                )
                .map_err(|e| anyhow::anyhow!("progress template: {e}"))?,
            );
            b
        } else {
            ProgressBar::new_spinner()
        };
        b.set_prefix(s.pattern.clone());
        s.bar = Some(b);
    }
    tracing::info!(
        image = %s.pattern,
        "learning from live events{}; Ctrl-C ends early and keeps what was learned",
        if s.window.duration_ns > 0 {
            format!(" for {}", humantime::format_duration(remaining))
        } else {
            String::new()
        }
    );
    list_running(&probe, &s.pattern);
    let session_start = Instant::now();
    let mut finished = false;
    let mut extended = false;
    loop {
        if crate::cmd::signals::stop_requested() {
            break;
        }
        if s.window.duration_ns > 0 && session_start.elapsed() >= remaining {
            if !(s.require_start && s.coverage().0 == 0) {
                finished = true;
                break;
            }
            if !extended {
                extended = true;
                s.say(&format!(
                    "falco-learn: --duration is up but no container of '{}' was seen starting \
                     (--require-start): the window stays open until one starts; restart one \
                     replica now",
                    s.pattern
                ));
            }
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => s.observe(&ev),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if let Some(b) = &s.bar {
            b.set_position(s.elapsed_ns() / 1_000_000_000);
        }
        // Container events without an image (runtime metadata unavailable):
        // say so instead of learning nothing for an hour.
        if s.counts.matched == 0
            && s.counts.unattributed_container > 0
            && session_start.elapsed() >= Duration::from_secs(5)
        {
            probe.stop();
            bail!(
                "--image {} cannot be resolved from live events: {} container events arrived \
                 without an image repository in 5 s (is the container runtime's socket \
                 reachable? see `falco-learn record` for the metadata counters); or learn from a \
                 recording with image fields: --from EVENTS.jsonl",
                s.pattern,
                s.counts.unattributed_container
            );
        }
        if let Err(e) = s.maybe_checkpoint() {
            probe.stop();
            return Err(stopped(e, &s.window));
        }
    }
    probe.stop();
    for ev in rx.try_iter() {
        s.observe(&ev);
    }
    Ok(finished)
}

/// Say which containers of the image run now (their start-up will not be
/// seen unless one restarts), or that none does and the window waits.
fn list_running(probe: &falco_learn_probe::Probe, pattern: &str) {
    use falco_learn_probe::runtime::Lookup;
    let Some(resolver) = probe.resolver() else {
        return;
    };
    let ns: Vec<String> = falco_learn_probe::container::DEFAULT_CONTAINERD_NAMESPACES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut found = std::collections::BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let name = e.file_name();
            if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(e.path().join("cgroup")) else {
                continue;
            };
            if let Some(c) = falco_learn_probe::container::container_from_proc_cgroup(&text, &ns) {
                found
                    .entry(falco_learn_probe::runtime::cache_key(&c))
                    .or_insert_with(|| std::sync::Arc::new(c));
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut running = Vec::new();
    for c in found.values() {
        loop {
            match resolver.lookup(c) {
                Lookup::Ready(meta) => {
                    let mut cont = falco_learn_event::Container::default();
                    meta.fill(&mut cont);
                    if falco_learn_event::image::matches_digest(
                        pattern,
                        &cont.image_repository,
                        &cont.image_tag,
                        &cont.image_digest,
                    ) {
                        running.push(format!("{} ({})", c.short_id(), cont.image()));
                    }
                    break;
                }
                Lookup::Pending if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => break,
            }
        }
    }
    if running.is_empty() {
        eprintln!(
            "falco-learn: no container of '{pattern}' runs now; waiting for one to start (its \
             start-up will be learned)"
        );
    } else {
        eprintln!(
            "falco-learn: {} container(s) of '{pattern}' running now: {}. Their start-up \
             (e.g. writing a pid file) is not seen unless one restarts during the window: restart \
             one replica, or use --require-start",
            running.len(),
            running.join(", ")
        );
    }
}

/// A failed checkpoint, with what the store still holds.
fn stopped(e: anyhow::Error, w: &WindowState) -> anyhow::Error {
    e.context(format!(
        "learning stopped after {} events (the same command resumes from the last checkpoint)",
        w.consumed
    ))
}

/// How a recording compares with what a window read of it.
#[derive(Debug, PartialEq, Eq)]
enum Recognised {
    /// The same bytes the window read, and the window read all it would.
    Learned,
    /// The same bytes, then this many more the window never saw (it ended at
    /// the end of the file, not at its duration).
    Grew(u64),
    /// Other bytes, or shorter, or a window without a checksum (written by an
    /// older falco-learn): not the recording the window read.
    Different,
}

/// Compare the recording at `path` with what window `w` read of it: its
/// first `w.offset` bytes must have the window's CRC-32.
fn recognise(path: &Path, w: &WindowState) -> anyhow::Result<Recognised> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() < w.offset) {
        return Ok(Recognised::Different);
    }
    let Some(want) = w.crc else {
        // an older falco-learn's window: an unfinished one resumes as it
        // always did, a finished one cannot be recognised
        return Ok(if w.done {
            Recognised::Different
        } else {
            Recognised::Learned
        });
    };
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = f
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if size < w.offset {
        return Ok(Recognised::Different);
    }
    let mut h = crc32fast::Hasher::new();
    let mut left = w.offset;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let want_now = left.min(buf.len() as u64) as usize;
        let n = f
            .read(&mut buf[..want_now])
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            return Ok(Recognised::Different);
        }
        h.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(if h.finalize() != want {
        Recognised::Different
    } else if size == w.offset || w.ended_by_duration || !w.done {
        Recognised::Learned
    } else {
        Recognised::Grew(size - w.offset)
    })
}

fn already_learned(path: &Path, w: &WindowState) {
    eprintln!(
        "falco-learn: {} was already learned into this store (window '{}': {} events, \
         complete); nothing to do. `--fresh` learns it again, adding to every count",
        path.display(),
        w.id,
        w.consumed
    );
}

fn ago(later: u64, earlier: u64) -> String {
    if earlier == 0 || later < earlier {
        return "never".into();
    }
    let secs = (later - earlier) / 1_000_000_000;
    format!(
        "{} before the end",
        humantime::format_duration(Duration::from_secs(secs))
    )
}

fn summary(s: &Session, finished: bool, store: &Path) {
    let how = if finished {
        "window complete"
    } else {
        "stopped early; run the same command to resume"
    };
    eprintln!(
        "falco-learn: {how}. Read {} events, {} of images matching '{}', {} flagged by default rules.",
        s.counts.seen, s.counts.matched, s.pattern, s.counts.flagged
    );
    let mut any = false;
    for p in s.learner.profiles().values() {
        if !falco_learn_event::image::matches(&s.pattern, &p.image.repository, &p.image.tag) {
            continue;
        }
        any = true;
        eprintln!(
            "falco-learn: saved {}: {} execs, {} outbound ports, {} write paths, {} containers, {} inbound ports; \
             last new behaviour {}{}",
            p.image,
            p.exec.len(),
            p.outbound.len(),
            p.write_entries(),
            p.learning.containers,
            p.inbound.as_ref().map_or("not learned".into(), |m| m.len().to_string()),
            ago(p.learning.ended, p.learning.last_new_behaviour),
            if p.learning.tainted {
                format!(
                    "; TAINTED ({} events flagged, not learned{})",
                    p.learning.flagged_events,
                    p.learning
                        .taint_reasons
                        .iter()
                        .map(|r| format!("; {r}"))
                        .collect::<String>()
                )
            } else {
                String::new()
            }
        );
        eprintln!("falco-learn: {}", coverage_line(p));
        let r = &p.review;
        if !r.is_empty() {
            eprintln!(
                "falco-learn: {}: under review (not learned): {} drifted executable(s), {} \
                 write(s) that produced them, {} exec session(s); see `review:` in the exported \
                 profile (profiler/README.md says how to accept an entry)",
                p.image,
                r.drift.len(),
                r.writes.len(),
                r.sessions.len()
            );
        }
    }
    if !any {
        eprintln!(
            "falco-learn: no events of an image matching '{}' were seen; nothing learned",
            s.pattern
        );
    }
    eprintln!(
        "falco-learn: store {} (review with `falco-learn profiles export --store {}`)",
        store.display(),
        store.display()
    );
}

/// Coverage of a profile in words, with what to do when no start was seen.
pub fn coverage_line(p: &Profile) -> String {
    let l = &p.learning;
    let base = format!(
        "{}: coverage: {} container start(s) observed, {} container(s) already running when \
         first seen",
        p.image, l.starts_observed, l.running_at_start
    );
    if l.starts_observed == 0 {
        format!(
            "{base}. NO START OBSERVED: start-up behaviour is not in the profile and a restart \
             may alert; restart one replica during a window (or learn with --require-start)"
        )
    } else {
        base
    }
}
