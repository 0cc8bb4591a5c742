//! Alert outputs: stdout, file, syslog, HTTP POST (falcosidekick's payload is
//! Falco's JSON alert) and program (each alert piped to a command), like
//! Falco's outputs.
//!
//! **No output can stall the agent.** Each enabled output has its own worker
//! thread behind a bounded queue (`outputs.<name>.queue` alerts, 10 000 by
//! default). [`Outputs::emit`] never waits: it hands the alert to every queue
//! and, when an output's queue is full, drops the alert for that output and
//! counts it (`falco_learn_alerts_output_failed_total{output,reason="queue_full"}`).
//! Per output, every emitted alert is counted exactly once, delivered
//! (`falco_learn_alerts_output_total`) or failed with one reason
//! ([`crate::metrics::reason`]: `queue_full`, `write`, `timeout`, `send`,
//! `connect`, `shutdown`, `closed`). The queues share each alert, so their memory
//! is that of the longest one.
//!
//! Every wait has a bound: an HTTP attempt `outputs.http.timeout` (connecting
//! `connect_timeout`), a syslog send one second, writing one alert to the
//! program `outputs.program.timeout`. `program` runs at most one process at a
//! time, as Falco does, in its own process group: with `keep_alive` one
//! long-lived process (restarted when it exits, at most once a second; killed
//! and restarted when it stalls in the middle of a line); without it one process
//! per alert, in turn, killed with its group when it has not read its line and
//! exited within the timeout. [`Outputs::close`] lets the queues drain until
//! `outputs.shutdown_timeout`, then counts what is left as `shutdown`, kills
//! the program's process group and returns, leaving a worker stuck in a write
//! (a blocked stdout or file) behind.
//!
//! **Untrusted values cannot forge records.** Each alert is one record: one line
//! on stdout, in the file and to the program, one syslog message, one HTTP body.
//! JSON is escaped by serde (control characters as `\n`, `\u0000`); the text
//! format escapes every control character of the message (and U+2028/U+2029),
//! ASCII ones as `\xNN`, others as `\u{NNNN}`, so a file name or command line
//! holding a newline cannot start a second line. Falco writes such characters
//! as they are.

use crate::config::{Format, Outputs as OutputsConfig};
use crate::metrics::{self as m, reason};
use falco_learn_rules::Alert;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// An output that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("file output {path}: {err}")]
    File { path: String, err: std::io::Error },
    #[error("program output `{program}`: {err}")]
    Program {
        program: String,
        err: std::io::Error,
    },
    #[error("{output} output: cannot start its worker thread: {err}")]
    Worker {
        output: &'static str,
        err: std::io::Error,
    },
}

/// Longest single sleep or poll of a worker, so that it notices the shutdown
/// deadline soon.
const SLICE: Duration = Duration::from_millis(50);
/// A syslog send waits at most this long for the daemon.
const SYSLOG_TIMEOUT: Duration = Duration::from_secs(1);
/// A kept-alive program that exited is started again at most this often.
const RESPAWN_EVERY: Duration = Duration::from_secs(1);
/// How long a killed program may take to be reaped.
const REAP_AFTER_KILL: Duration = Duration::from_secs(1);
/// Queue-full warnings per output at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Escape what could end or disguise a text record: every control character
/// (C0, DEL, C1) and the Unicode line and paragraph separators; ASCII ones as
/// `\xNN`, the others as `\u{NNNN}`. Everything else is kept as it is.
pub fn escape_text(s: &str) -> Cow<'_, str> {
    fn escaped(c: char) -> bool {
        c.is_control() || c == '\u{2028}' || c == '\u{2029}'
    }
    if !s.chars().any(escaped) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !escaped(c) {
            out.push(c);
        } else if c.is_ascii() {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

/// One alert as the queues hold it: shared by every output, its JSON rendered
/// once, by the first output that needs it.
struct Queued {
    alert: Alert,
    json: OnceLock<String>,
}

impl Queued {
    fn json(&self) -> &str {
        self.json.get_or_init(|| {
            serde_json::to_string(&self.alert).unwrap_or_else(|e| {
                serde_json::json!({ "error": format!("cannot render the alert: {e}") }).to_string()
            })
        })
    }

    /// The record with its newline.
    fn line(&self, format: Format) -> String {
        let text = match format {
            Format::Json => Cow::Borrowed(self.json()),
            Format::Text => escape_text(&self.alert.output),
        };
        let mut line = String::with_capacity(text.len() + 1);
        line.push_str(&text);
        line.push('\n');
        line
    }
}

enum Msg {
    Alert(Arc<Queued>),
    /// Reopen the file (after the alerts queued before it).
    Reopen,
}

/// How one alert went.
enum Outcome {
    Delivered,
    Failed(&'static str),
    /// The shutdown deadline passed first: [`Outputs::close`] counts it.
    Interrupted,
}

/// Counts of one output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputStats {
    pub delivered: u64,
    /// By reason ([`crate::metrics::reason`]).
    pub failed: BTreeMap<&'static str, u64>,
}

impl OutputStats {
    /// Alerts failed with `reason`.
    pub fn failed(&self, reason: &str) -> u64 {
        self.failed.get(reason).copied().unwrap_or(0)
    }
    /// Every alert the output was given: delivered + failed.
    pub fn total(&self) -> u64 {
        self.delivered + self.failed.values().sum::<u64>()
    }
}

#[derive(Default)]
struct Tally {
    stats: OutputStats,
    /// Queued alerts the worker has counted.
    settled: u64,
    /// Set by close once it counted what is left: the worker counts no more.
    abandoned: bool,
}

/// What an output's worker and [`Outputs`] share.
struct Shared {
    name: &'static str,
    /// The drain deadline, set by close.
    stop_at: OnceLock<Instant>,
    tally: Mutex<Tally>,
    /// The file is to be reopened (SIGHUP while its queue was full).
    reopen: AtomicBool,
    /// program: the running process, leader of its process group.
    child: Mutex<Option<Child>>,
    delivered: metrics::Counter,
    failed: Vec<(&'static str, metrics::Counter)>,
}

impl Shared {
    fn new(name: &'static str, reasons: &[&'static str]) -> Arc<Shared> {
        let delivered = m::ALERTS_OUT.counter(&[("output", name.into())]);
        delivered.increment(0);
        let failed = reasons
            .iter()
            .map(|&r| {
                let c = m::ALERTS_FAILED.counter(&[("output", name.into()), ("reason", r.into())]);
                c.increment(0);
                (r, c)
            })
            .collect();
        Arc::new(Shared {
            name,
            stop_at: OnceLock::new(),
            tally: Mutex::new(Tally::default()),
            reopen: AtomicBool::new(false),
            child: Mutex::new(None),
            delivered,
            failed,
        })
    }

    fn count_failed(&self, t: &mut Tally, reason: &'static str, n: u64) {
        *t.stats.failed.entry(reason).or_insert(0) += n;
        match self.failed.iter().find(|(r, _)| *r == reason) {
            Some((_, c)) => c.increment(n),
            None => m::ALERTS_FAILED
                .counter(&[("output", self.name.into()), ("reason", reason.into())])
                .increment(n),
        }
    }

    /// An alert that never reached the queue.
    fn fail_unqueued(&self, reason: &'static str) {
        let mut t = lock(&self.tally);
        self.count_failed(&mut t, reason, 1);
    }

    /// Count a queued alert's outcome; false: the worker is to stop.
    fn settle(&self, outcome: Outcome) -> bool {
        let mut t = lock(&self.tally);
        if t.abandoned {
            return false;
        }
        match outcome {
            Outcome::Delivered => {
                t.stats.delivered += 1;
                self.delivered.increment(1);
            }
            Outcome::Failed(r) => self.count_failed(&mut t, r, 1),
            Outcome::Interrupted => return false,
        }
        t.settled += 1;
        true
    }

    fn past_deadline(&self) -> bool {
        self.stop_at.get().is_some_and(|d| Instant::now() >= *d)
    }

    /// `until`, or the shutdown deadline when that is sooner.
    fn cap(&self, until: Instant) -> Instant {
        match self.stop_at.get() {
            Some(d) => until.min(*d),
            None => until,
        }
    }

    /// Sleep until `until` (or the shutdown deadline); false when the deadline came first.
    fn sleep_until(&self, until: Instant) -> bool {
        loop {
            let now = Instant::now();
            if self.past_deadline() {
                return false;
            }
            if now >= until {
                return true;
            }
            std::thread::sleep((until - now).min(SLICE));
        }
    }

    /// SIGKILL the program's process group (its process is not reaped yet, so
    /// the group id cannot have been reused).
    fn kill_child(&self) {
        if let Some(c) = lock(&self.child).as_ref() {
            if let Ok(pgid) = i32::try_from(c.id()) {
                // SAFETY: kill has no memory-safety preconditions; a negative
                // pid names the process group the child leads.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
        }
    }

    /// Wait until the program exited (reaping it) or `until`; true when no
    /// program is running any more.
    fn reap(&self, until: Instant) -> bool {
        let mut step = Duration::from_millis(1);
        loop {
            {
                let mut g = lock(&self.child);
                match g.as_mut().map(|c| c.try_wait()) {
                    None => return true,
                    Some(Ok(Some(status))) => {
                        if !status.success() {
                            tracing::debug!("program output: the program exited with {status}");
                        }
                        *g = None;
                        return true;
                    }
                    Some(Ok(None)) => {}
                    Some(Err(e)) => {
                        tracing::warn!("program output: cannot wait for the program: {e}");
                        *g = None;
                        return true;
                    }
                }
            }
            let now = Instant::now();
            if now >= until {
                return false;
            }
            std::thread::sleep(step.min(until - now));
            step = (step * 2).min(Duration::from_millis(20));
        }
    }

    /// Kill the program's process group and reap it.
    fn kill_and_reap(&self) {
        self.kill_child();
        if !self.reap(Instant::now() + REAP_AFTER_KILL) {
            tracing::warn!("program output: the killed program has not exited yet");
        }
    }
}

/// One output's delivery, run on its worker thread.
trait Deliver: Send {
    fn deliver(&mut self, q: &Queued, shared: &Shared) -> Outcome;
    fn reopen(&mut self) {}
    /// The queue is closed (or the deadline passed): clean up within the deadline.
    fn finish(&mut self, _shared: &Shared) {}
}

fn worker(rx: Receiver<Msg>, shared: Arc<Shared>, mut out: Box<dyn Deliver>) {
    // ends when close drops the sender and the queue is empty
    for msg in rx.iter() {
        if shared.past_deadline() {
            break;
        }
        if shared.reopen.swap(false, Ordering::SeqCst) {
            out.reopen();
        }
        match msg {
            Msg::Reopen => out.reopen(),
            Msg::Alert(q) => {
                let outcome = out.deliver(&q, &shared);
                if !shared.settle(outcome) {
                    break;
                }
            }
        }
    }
    out.finish(&shared);
}

fn write_failed(output: &str, e: &std::io::Error) -> Outcome {
    tracing::warn!("{output} output: {e}");
    Outcome::Failed(reason::WRITE)
}

struct StdoutOut {
    format: Format,
}

impl Deliver for StdoutOut {
    fn deliver(&mut self, q: &Queued, _: &Shared) -> Outcome {
        let mut out = std::io::stdout().lock();
        match out
            .write_all(q.line(self.format).as_bytes())
            .and_then(|_| out.flush())
        {
            Ok(()) => Outcome::Delivered,
            Err(e) => write_failed("stdout", &e),
        }
    }
}

struct FileOut {
    format: Format,
    path: PathBuf,
    file: std::fs::File,
}

impl FileOut {
    fn open(path: &Path) -> Result<std::fs::File, OutputError> {
        use std::os::unix::fs::OpenOptionsExt;
        // a new alert file is 0640 at most, whatever the umask
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)
            .map_err(|err| OutputError::File {
                path: path.display().to_string(),
                err,
            })
    }
}

impl Deliver for FileOut {
    fn deliver(&mut self, q: &Queued, _: &Shared) -> Outcome {
        // one write per record: appends of concurrent writers do not interleave
        match self.file.write_all(q.line(self.format).as_bytes()) {
            Ok(()) => Outcome::Delivered,
            Err(e) => write_failed(&format!("file {}", self.path.display()), &e),
        }
    }

    fn reopen(&mut self) {
        match FileOut::open(&self.path) {
            Ok(f) => self.file = f,
            Err(e) => tracing::error!("{e}; keeping the old file handle"),
        }
    }
}

/// Syslog over the local daemon's datagram socket (RFC 3164, facility `user`,
/// the alert's priority as severity, Falco's JSON as the message). A missing
/// or restarted daemon is reconnected at most once a second; alerts that could
/// not be sent are counted (`reason="connect"`, `"send"` or `"timeout"`).
struct SyslogOut {
    socket: PathBuf,
    logger: Option<syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>>,
    last_try: Option<Instant>,
    /// Reconnect attempts at most this often.
    retry: Duration,
    warned: bool,
}

impl SyslogOut {
    fn new(socket: PathBuf) -> SyslogOut {
        let mut s = SyslogOut {
            socket,
            logger: None,
            last_try: None,
            retry: Duration::from_secs(1),
            warned: false,
        };
        s.connect();
        s
    }

    fn connect(&mut self) {
        self.last_try = Some(Instant::now());
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_USER,
            hostname: None,
            process: "falco-learn".into(),
            pid: std::process::id(),
        };
        match syslog::unix_custom(formatter, &self.socket) {
            Ok(l) => {
                // a daemon that stops reading must not block the worker forever
                let r = match &l.backend {
                    syslog::LoggerBackend::Unix(s) => s.set_write_timeout(Some(SYSLOG_TIMEOUT)),
                    syslog::LoggerBackend::UnixStream(s) => {
                        s.get_ref().set_write_timeout(Some(SYSLOG_TIMEOUT))
                    }
                    _ => Ok(()),
                };
                if let Err(e) = r {
                    self.warn(&format!("cannot set a send timeout: {e}"));
                    return;
                }
                if self.warned {
                    tracing::info!("syslog output: connected to {}", self.socket.display());
                }
                self.warned = false;
                self.logger = Some(l);
            }
            Err(e) => self.warn(&format!("cannot connect: {e}")),
        }
    }

    fn warn(&mut self, what: &str) {
        if !self.warned {
            tracing::warn!(
                "syslog output {}: {what}; alerts are not sent to syslog until it answers \
                 (counted in falco_learn_alerts_output_failed_total{{output=\"syslog\"}})",
                self.socket.display()
            );
            self.warned = true;
        }
    }

    fn send(&mut self, priority: &str, msg: &str) -> Outcome {
        if self.logger.is_none() && self.last_try.is_none_or(|t| t.elapsed() >= self.retry) {
            self.connect();
        }
        let Some(l) = self.logger.as_mut() else {
            return Outcome::Failed(reason::CONNECT);
        };
        let r = match priority {
            "Emergency" => l.emerg(msg),
            "Alert" => l.alert(msg),
            "Critical" => l.crit(msg),
            "Error" => l.err(msg),
            "Warning" => l.warning(msg),
            "Notice" => l.notice(msg),
            "Informational" => l.info(msg),
            _ => l.debug(msg),
        };
        match r {
            Ok(()) => Outcome::Delivered,
            Err(e) => {
                let timed_out = matches!(
                    &e,
                    syslog::Error::Write(io) | syslog::Error::Io(io)
                        if matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
                );
                self.logger = None;
                self.warn(&format!("send failed: {e}"));
                Outcome::Failed(if timed_out {
                    reason::TIMEOUT
                } else {
                    reason::SEND
                })
            }
        }
    }
}

impl Deliver for SyslogOut {
    fn deliver(&mut self, q: &Queued, _: &Shared) -> Outcome {
        self.send(&q.alert.priority, q.json())
    }
}

/// POST of Falco's JSON alert, retried with backoff; every attempt bounded.
struct HttpOut {
    agent: ureq::Agent,
    url: String,
    retries: u32,
    timeout: Duration,
    connect_timeout: Duration,
}

impl Deliver for HttpOut {
    fn deliver(&mut self, q: &Queued, shared: &Shared) -> Outcome {
        let mut backoff = Duration::from_millis(100);
        let attempts = self.retries.max(1);
        let mut failure = reason::SEND;
        for attempt in 0..attempts {
            let now = Instant::now();
            // the whole timeout, unless the shutdown deadline is sooner
            let left = shared
                .cap(now + self.timeout)
                .saturating_duration_since(now);
            if left.is_zero() {
                return Outcome::Interrupted;
            }
            let r = self
                .agent
                .post(&self.url)
                .header("Content-Type", "application/json")
                .config()
                .timeout_global(Some(left))
                .timeout_connect(Some(self.connect_timeout.min(left)))
                .build()
                .send(q.json().as_bytes());
            let e = match r {
                Ok(_) => return Outcome::Delivered,
                Err(e) => e,
            };
            if shared.past_deadline() {
                return Outcome::Interrupted;
            }
            failure = match e {
                ureq::Error::Timeout(_) => reason::TIMEOUT,
                _ => reason::SEND,
            };
            if attempt + 1 < attempts {
                tracing::debug!("http output {}: {e}; retrying in {backoff:?}", self.url);
                if !shared.sleep_until(Instant::now() + backoff) {
                    return Outcome::Interrupted;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            } else {
                tracing::warn!(
                    "http output {}: giving up on an alert after {attempts} attempt(s): {e}",
                    self.url
                );
            }
        }
        Outcome::Failed(failure)
    }
}

/// Why writing to the program stopped.
enum WriteError {
    /// The time was up; `partial`: part of the line is in the pipe.
    Timeout {
        partial: bool,
    },
    Io(std::io::Error),
}

/// The program's standard input, non-blocking: every write has a deadline.
struct ProgramInput(ChildStdin);

impl ProgramInput {
    fn new(stdin: ChildStdin) -> std::io::Result<ProgramInput> {
        let fd = stdin.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own; no pointers involved.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        // SAFETY: as above.
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(ProgramInput(stdin))
    }

    /// Write all of `buf` by `until` (checked against the shutdown deadline too).
    fn write_all(&self, buf: &[u8], until: Instant, shared: &Shared) -> Result<(), WriteError> {
        let mut off = 0;
        while off < buf.len() {
            match (&self.0).write(&buf[off..]) {
                Ok(0) => {
                    return Err(WriteError::Io(std::io::ErrorKind::WriteZero.into()));
                }
                Ok(n) => off += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let now = Instant::now();
                    let end = shared.cap(until);
                    if now >= end {
                        return Err(WriteError::Timeout { partial: off > 0 });
                    }
                    let wait = (end - now).min(SLICE);
                    let mut pfd = libc::pollfd {
                        fd: self.0.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX).max(1);
                    // SAFETY: one valid pollfd, count 1.
                    if unsafe { libc::poll(&mut pfd, 1, ms) } < 0 {
                        let e = std::io::Error::last_os_error();
                        if e.kind() != std::io::ErrorKind::Interrupted {
                            return Err(WriteError::Io(e));
                        }
                    }
                }
                Err(e) => return Err(WriteError::Io(e)),
            }
        }
        Ok(())
    }
}

/// `sh -c program`, at most one process at a time (see the module docs).
struct ProgramOut {
    format: Format,
    program: String,
    keep_alive: bool,
    timeout: Duration,
    /// keep_alive: the running process's input.
    input: Option<ProgramInput>,
    last_spawn: Option<Instant>,
    warned: bool,
}

impl ProgramOut {
    /// Start the program (the previous one is gone) and keep it in `shared.child`.
    fn spawn(&mut self, shared: &Shared) -> std::io::Result<ProgramInput> {
        if !shared.reap(Instant::now()) {
            // killed but not reaped yet (stuck in the kernel): never a second one
            return Err(std::io::Error::other(
                "the previous process has not exited yet",
            ));
        }
        self.last_spawn = Some(Instant::now());
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&self.program)
            .stdin(Stdio::piped())
            // its own process group: a timeout or shutdown kills all of it
            .process_group(0)
            .spawn()?;
        let input = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin pipe"))
            .and_then(ProgramInput::new);
        *lock(&shared.child) = Some(child);
        if input.is_err() {
            shared.kill_and_reap();
        }
        input
    }

    fn spawn_failed(&mut self, e: &std::io::Error) -> Outcome {
        tracing::warn!("program output `{}`: cannot start it: {e}", self.program);
        Outcome::Failed(reason::WRITE)
    }

    fn timed_out(&self, shared: &Shared) -> Outcome {
        if shared.past_deadline() {
            Outcome::Interrupted
        } else {
            Outcome::Failed(reason::TIMEOUT)
        }
    }

    /// keep_alive: write the line to the running program, starting it if needed.
    fn deliver_kept(&mut self, line: &[u8], shared: &Shared) -> Outcome {
        let until = Instant::now() + self.timeout;
        for attempt in 0..2 {
            if self.input.is_none() {
                if self.last_spawn.is_some_and(|t| t.elapsed() < RESPAWN_EVERY) {
                    return Outcome::Failed(reason::WRITE);
                }
                match self.spawn(shared) {
                    Ok(i) => self.input = Some(i),
                    Err(e) => return self.spawn_failed(&e),
                }
            }
            let Some(input) = self.input.as_ref() else {
                return Outcome::Failed(reason::WRITE);
            };
            match input.write_all(line, until, shared) {
                Ok(()) => {
                    self.warned = false;
                    return Outcome::Delivered;
                }
                Err(WriteError::Timeout { partial }) => {
                    if partial {
                        // half a record is in the pipe: only a new process
                        // reads whole records again
                        tracing::warn!(
                            "program output `{}`: stalled in the middle of an alert; restarting it",
                            self.program
                        );
                        self.input = None;
                        shared.kill_and_reap();
                        self.last_spawn = None;
                    } else if !self.warned {
                        tracing::warn!(
                            "program output `{}`: not reading its input; alerts are dropped \
                             (falco_learn_alerts_output_failed_total{{output=\"program\"}})",
                            self.program
                        );
                        self.warned = true;
                    }
                    return self.timed_out(shared);
                }
                Err(WriteError::Io(e)) => {
                    // it exited or closed its input: restart it (once per alert)
                    tracing::warn!("program output `{}`: {e}; restarting it", self.program);
                    self.input = None;
                    shared.kill_and_reap();
                    if attempt == 1 {
                        return Outcome::Failed(reason::WRITE);
                    }
                }
            }
        }
        Outcome::Failed(reason::WRITE)
    }

    /// One process for this alert: write the line, close its input, let it exit.
    fn deliver_one(&mut self, line: &[u8], shared: &Shared) -> Outcome {
        let until = Instant::now() + self.timeout;
        let input = match self.spawn(shared) {
            Ok(i) => i,
            Err(e) => return self.spawn_failed(&e),
        };
        let written = input.write_all(line, until, shared);
        drop(input);
        let outcome = match written {
            Ok(()) => {
                if shared.reap(shared.cap(until)) {
                    return Outcome::Delivered;
                }
                self.timed_out(shared)
            }
            Err(WriteError::Timeout { .. }) => self.timed_out(shared),
            Err(WriteError::Io(e)) => {
                tracing::warn!(
                    "program output `{}`: it did not read its alert: {e}",
                    self.program
                );
                // give it the rest of the time to exit
                shared.reap(shared.cap(until));
                Outcome::Failed(reason::WRITE)
            }
        };
        shared.kill_and_reap();
        outcome
    }
}

impl Deliver for ProgramOut {
    fn deliver(&mut self, q: &Queued, shared: &Shared) -> Outcome {
        let line = q.line(self.format);
        if self.keep_alive {
            self.deliver_kept(line.as_bytes(), shared)
        } else {
            self.deliver_one(line.as_bytes(), shared)
        }
    }

    fn finish(&mut self, shared: &Shared) {
        // end of input: a kept-alive program finishes and exits
        drop(self.input.take());
        let until = shared.stop_at.get().copied().unwrap_or_else(Instant::now);
        if !shared.reap(until) {
            tracing::warn!(
                "program output `{}`: still running at the shutdown deadline; killing it",
                self.program
            );
            shared.kill_and_reap();
        }
    }
}

/// One enabled output: its queue, worker and counts.
struct Sink {
    shared: Arc<Shared>,
    tx: Option<SyncSender<Msg>>,
    worker: Option<JoinHandle<()>>,
    /// Alerts put in the queue.
    accepted: u64,
    last_full_warn: Option<Instant>,
}

impl Sink {
    fn start(
        name: &'static str,
        reasons: &[&'static str],
        queue: usize,
        out: Box<dyn Deliver>,
        shared: Option<Arc<Shared>>,
    ) -> Result<Sink, OutputError> {
        let shared = shared.unwrap_or_else(|| Shared::new(name, reasons));
        let (tx, rx) = std::sync::mpsc::sync_channel(queue);
        let s = shared.clone();
        let worker = std::thread::Builder::new()
            .name(format!("fl-out-{name}"))
            .spawn(move || worker(rx, s, out))
            .map_err(|err| OutputError::Worker { output: name, err })?;
        Ok(Sink {
            shared,
            tx: Some(tx),
            worker: Some(worker),
            accepted: 0,
            last_full_warn: None,
        })
    }
}

/// All configured outputs.
pub struct Outputs {
    sinks: Vec<Sink>,
    closed: bool,
}

impl Outputs {
    pub fn new(cfg: &OutputsConfig) -> Result<Outputs, OutputError> {
        use reason::*;
        let format = cfg.format;
        let mut sinks = Vec::new();
        if cfg.stdout.enabled {
            sinks.push(Sink::start(
                "stdout",
                &[QUEUE_FULL, WRITE, SHUTDOWN],
                cfg.stdout.queue,
                Box::new(StdoutOut { format }),
                None,
            )?);
        }
        if cfg.file.enabled {
            let file = FileOut::open(&cfg.file.filename)?;
            sinks.push(Sink::start(
                "file",
                &[QUEUE_FULL, WRITE, SHUTDOWN],
                cfg.file.queue,
                Box::new(FileOut {
                    format,
                    path: cfg.file.filename.clone(),
                    file,
                }),
                None,
            )?);
        }
        if cfg.syslog.enabled {
            sinks.push(Sink::start(
                "syslog",
                &[QUEUE_FULL, CONNECT, SEND, TIMEOUT, SHUTDOWN],
                cfg.syslog.queue,
                Box::new(SyslogOut::new(cfg.syslog.socket.clone())),
                None,
            )?);
        }
        if cfg.http.enabled {
            let h = &cfg.http;
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(h.timeout))
                .timeout_connect(Some(h.connect_timeout))
                .http_status_as_error(true)
                .build()
                .into();
            sinks.push(Sink::start(
                "http",
                &[QUEUE_FULL, SEND, TIMEOUT, SHUTDOWN],
                h.queue,
                Box::new(HttpOut {
                    agent,
                    url: h.url.clone(),
                    retries: h.retries,
                    timeout: h.timeout,
                    connect_timeout: h.connect_timeout,
                }),
                None,
            )?);
        }
        if cfg.program.enabled {
            let p = &cfg.program;
            let shared = Shared::new("program", &[QUEUE_FULL, WRITE, TIMEOUT, SHUTDOWN]);
            let mut out = ProgramOut {
                format,
                program: p.program.clone(),
                keep_alive: p.keep_alive,
                timeout: p.timeout,
                input: None,
                last_spawn: None,
                warned: false,
            };
            if p.keep_alive {
                // started now, so that a program that cannot start is a setup error
                out.input = Some(out.spawn(&shared).map_err(|err| OutputError::Program {
                    program: p.program.clone(),
                    err,
                })?);
            }
            let sink = Sink::start("program", &[], p.queue, Box::new(out), Some(shared.clone()));
            match sink {
                Ok(s) => sinks.push(s),
                Err(e) => {
                    shared.kill_and_reap();
                    return Err(e);
                }
            }
        }
        Ok(Outputs {
            sinks,
            closed: false,
        })
    }

    /// Hand one alert to every output; never waits. An output whose queue is
    /// full drops it (counted as `queue_full`).
    pub fn emit(&mut self, a: &Alert) {
        if self.sinks.is_empty() {
            return;
        }
        let q = Arc::new(Queued {
            alert: a.clone(),
            json: OnceLock::new(),
        });
        for s in &mut self.sinks {
            match s.tx.as_ref().map(|tx| tx.try_send(Msg::Alert(q.clone()))) {
                Some(Ok(())) => s.accepted += 1,
                Some(Err(TrySendError::Full(_))) => {
                    s.shared.fail_unqueued(reason::QUEUE_FULL);
                    if s.last_full_warn.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                        s.last_full_warn = Some(Instant::now());
                        tracing::warn!(
                            "{} output: queue full, dropping alerts (counted in \
                             falco_learn_alerts_output_failed_total{{output=\"{}\",reason=\"queue_full\"}})",
                            s.shared.name,
                            s.shared.name
                        );
                    }
                }
                _ => s.shared.fail_unqueued(reason::CLOSED),
            }
        }
    }

    /// Reopen the file output (SIGHUP, after logrotate moved it): after the
    /// alerts already queued, or before the next one when the queue is full.
    pub fn reopen(&mut self) {
        for s in &self.sinks {
            if s.shared.name == "file" {
                if let Some(Err(_)) = s.tx.as_ref().map(|tx| tx.try_send(Msg::Reopen)) {
                    s.shared.reopen.store(true, Ordering::SeqCst);
                }
            }
        }
    }

    /// What each output did so far, by output name.
    pub fn stats(&self) -> BTreeMap<&'static str, OutputStats> {
        self.sinks
            .iter()
            .map(|s| (s.shared.name, lock(&s.shared.tally).stats.clone()))
            .collect()
    }

    /// Drain and close: every queue may drain until `deadline` from now; what
    /// is still queued or in flight then is counted as `shutdown`, the
    /// program's process group is killed and close returns (a worker stuck in
    /// a write is left behind).
    pub fn close(&mut self, deadline: Duration) {
        if self.closed {
            return;
        }
        self.closed = true;
        let stop_at = Instant::now() + deadline;
        for s in &mut self.sinks {
            let _ = s.shared.stop_at.set(stop_at);
            drop(s.tx.take());
        }
        loop {
            let busy = self
                .sinks
                .iter()
                .any(|s| s.worker.as_ref().is_some_and(|w| !w.is_finished()));
            let now = Instant::now();
            if !busy || now >= stop_at {
                break;
            }
            std::thread::sleep((stop_at - now).min(Duration::from_millis(5)));
        }
        for s in &mut self.sinks {
            let left = {
                let mut t = lock(&s.shared.tally);
                t.abandoned = true;
                let left = s.accepted.saturating_sub(t.settled);
                if left > 0 {
                    s.shared.count_failed(&mut t, reason::SHUTDOWN, left);
                }
                left
            };
            if left > 0 {
                tracing::warn!(
                    "{} output: {left} alert(s) not delivered by the shutdown deadline ({deadline:?})",
                    s.shared.name
                );
            }
            // the worker may be stuck past the deadline: its program goes now
            s.shared.kill_child();
            match s.worker.take() {
                Some(w) if w.is_finished() => {
                    let crashed = w.join().is_err();
                    if crashed {
                        tracing::error!("{} output: its worker crashed", s.shared.name);
                    }
                }
                Some(_) => tracing::warn!(
                    "{} output: still busy at the shutdown deadline; not waiting for it",
                    s.shared.name
                ),
                None => {}
            }
        }
    }
}

impl Drop for Outputs {
    /// Not closed: stop at once (no program is left running).
    fn drop(&mut self) {
        self.close(Duration::ZERO);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn syslog_waits_for_its_daemon_and_survives_a_restart() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("log.sock");
        let mut s = super::SyslogOut::new(path.clone());
        assert!(s.logger.is_none(), "no daemon yet");
        s.retry = std::time::Duration::ZERO;
        s.send("Warning", "lost");
        assert!(s.logger.is_none());

        let daemon = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        s.send("Critical", "{\"rule\":\"x\"}");
        let mut buf = [0u8; 512];
        let n = daemon.recv(&mut buf).unwrap();
        let msg = std::str::from_utf8(&buf[..n]).unwrap();
        // facility user (8) + critical (2)
        assert!(msg.starts_with("<10>"), "{msg}");
        assert!(
            msg.ends_with(&format!(
                " falco-learn[{}]: {{\"rule\":\"x\"}}",
                std::process::id()
            )),
            "{msg}"
        );

        // the daemon restarts: sends fail until the old socket is really gone
        // (a child forked by another test may hold it until it execs), then
        // the output reconnects to the new one
        drop(daemon);
        std::fs::remove_file(&path).unwrap();
        let daemon = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        daemon.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let msg = loop {
            s.send("Notice", "after");
            if let Ok(n) = daemon.recv(&mut buf) {
                break String::from_utf8_lossy(&buf[..n]).into_owned();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never reconnected to the restarted daemon"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert!(msg.starts_with("<13>") && msg.ends_with(": after"), "{msg}");
    }

    use super::*;
    use crate::config::Outputs as Cfg;
    use std::io::{BufRead, BufReader, Read};

    fn alert(rule: &str) -> Alert {
        Alert {
            hostname: "h".into(),
            output: format!("12:00:00.000000000: Warning {rule} happened"),
            output_fields: Default::default(),
            priority: "Warning".into(),
            rule: rule.into(),
            source: "syscall".into(),
            tags: vec!["t".into()],
            time: "2026-11-22T00:00:00.000000000Z".into(),
        }
    }

    #[test]
    fn file_program_and_http_receive_exact_alerts() {
        let dir = tempfile::tempdir().expect("tmp");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let mut bodies = Vec::new();
            for _ in 0..2 {
                let (s, _) = listener.accept().expect("accept");
                let mut r = BufReader::new(s.try_clone().expect("clone"));
                let mut len = 0usize;
                let mut first = String::new();
                r.read_line(&mut first).expect("request line");
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).expect("header");
                    if h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().expect("len");
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).expect("body");
                let mut s = s;
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .expect("reply");
                bodies.push((first, String::from_utf8(body).expect("utf8")));
            }
            bodies
        });
        let mut cfg = Cfg::default();
        cfg.stdout.enabled = false;
        cfg.file.enabled = true;
        cfg.file.filename = dir.path().join("alerts.json");
        cfg.http.enabled = true;
        cfg.http.url = format!("http://127.0.0.1:{port}/");
        cfg.program.enabled = true;
        cfg.program.keep_alive = true;
        cfg.program.program = format!("cat >> {}", dir.path().join("program.out").display());
        let mut o = Outputs::new(&cfg).expect("outputs");
        o.emit(&alert("A"));
        o.emit(&alert("B"));
        o.close(Duration::from_secs(10));
        for name in ["file", "http", "program"] {
            let s = &o.stats()[name];
            assert_eq!((s.delivered, s.total()), (2, 2), "{name}: {s:?}");
        }
        let want: Vec<String> = ["A", "B"]
            .iter()
            .map(|r| serde_json::to_string(&alert(r)).expect("json"))
            .collect();
        let file = std::fs::read_to_string(dir.path().join("alerts.json")).expect("file");
        assert_eq!(file.lines().collect::<Vec<_>>(), want);
        let prog = std::fs::read_to_string(dir.path().join("program.out")).expect("program");
        assert_eq!(prog.lines().collect::<Vec<_>>(), want);
        let bodies = server.join().expect("server");
        assert_eq!(
            bodies.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>(),
            want
        );
        assert!(bodies.iter().all(|(l, _)| l.starts_with("POST / HTTP/1.1")));
    }

    #[test]
    fn file_reopen_follows_logrotate() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("a.log");
        let mut cfg = Cfg::default();
        cfg.stdout.enabled = false;
        cfg.format = Format::Text;
        cfg.file.enabled = true;
        cfg.file.filename = path.clone();
        let mut o = Outputs::new(&cfg).expect("outputs");
        o.emit(&alert("A"));
        std::fs::rename(&path, dir.path().join("a.log.1")).expect("rotate");
        o.reopen();
        o.emit(&alert("B"));
        o.close(Duration::from_secs(1));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.log.1")).expect("old"),
            "12:00:00.000000000: Warning A happened\n"
        );
        assert_eq!(
            std::fs::read_to_string(&path).expect("new"),
            "12:00:00.000000000: Warning B happened\n"
        );
    }

    fn quiet() -> Cfg {
        let mut cfg = Cfg::default();
        cfg.stdout.enabled = false;
        cfg
    }

    /// A live (not zombie) process: (pid, ppid, pgid, cmdline with NULs as spaces).
    fn procs() -> Vec<(u32, u32, u32, String)> {
        let mut out = Vec::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return out;
        };
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Some(st) = falco_learn_probe::procfs::Stat::read(pid) else {
                continue;
            };
            if matches!(st.state, 'Z' | 'X') {
                continue;
            }
            let (ppid, pgid) = (st.ppid, st.pgrp);
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            out.push((pid, ppid, pgid, cmd.trim_end().to_string()));
        }
        out
    }

    /// Wait (bounded) until no live process is left in these process groups.
    fn assert_groups_die(groups: &std::collections::BTreeSet<u32>) {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let left: Vec<_> = procs()
                .into_iter()
                .filter(|p| groups.contains(&p.2))
                .collect();
            if left.is_empty() {
                return;
            }
            assert!(
                Instant::now() < until,
                "program processes outlived close: {left:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Children of this process (any thread) running `cmd`, read from each
    /// thread's /proc children list (one snapshot per thread).
    fn children_running(cmd: &str) -> Vec<u32> {
        let mut pids = Vec::new();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return pids;
        };
        for t in tasks.flatten() {
            let Ok(list) = std::fs::read_to_string(t.path().join("children")) else {
                continue;
            };
            for pid in list
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
            {
                let c = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&c).replace('\0', " ").trim_end() == cmd {
                    pids.push(pid);
                }
            }
        }
        pids
    }

    /// issue 13 §2: `program=sleep 600` (never reads) and a flood of alerts.
    /// Every emit returns; the pipe takes what fits, then each alert waits at
    /// most the timeout while the rest are dropped; every alert is counted
    /// once; close returns and the program is killed.
    #[test]
    fn a_program_that_never_reads_cannot_block_emit() {
        let mut cfg = quiet();
        cfg.program.enabled = true;
        cfg.program.keep_alive = true;
        cfg.program.program = "sleep 600".into();
        cfg.program.queue = 100;
        cfg.program.timeout = Duration::from_millis(50);
        let mut o = Outputs::new(&cfg).expect("outputs");
        let me = std::process::id();
        let groups: std::collections::BTreeSet<u32> = procs()
            .into_iter()
            .filter(|p| p.1 == me && p.3 == "sh -c sleep 600")
            .map(|p| p.0)
            .collect();
        assert_eq!(groups.len(), 1, "one program process");
        let a = alert("flood");
        let mut returned = 0u32;
        for _ in 0..10_000 {
            o.emit(&a);
            returned += 1;
        }
        assert_eq!(returned, 10_000);
        let s = o.stats()["program"].clone();
        assert!(s.failed(reason::QUEUE_FULL) > 0, "{s:?}");
        o.close(Duration::from_millis(200));
        let s = o.stats()["program"].clone();
        assert_eq!(s.total(), 10_000, "{s:?}");
        // the pipe took some before it filled; nothing else went through
        assert!(s.delivered > 0, "{s:?}");
        for r in s.failed.keys() {
            assert!(
                [reason::QUEUE_FULL, reason::TIMEOUT, reason::SHUTDOWN].contains(r),
                "{s:?}"
            );
        }
        assert_groups_die(&groups);
    }

    /// issue 13 §2: `keep_alive=false`, `program=sleep 8`, 1000 alerts: one
    /// process at a time, each killed (with its group) at the timeout.
    #[test]
    fn per_alert_programs_run_one_at_a_time() {
        let mut cfg = quiet();
        cfg.program.enabled = true;
        cfg.program.keep_alive = false;
        cfg.program.program = "sleep 8".into();
        cfg.program.queue = 1000;
        cfg.program.timeout = Duration::from_millis(100);
        let mut o = Outputs::new(&cfg).expect("outputs");
        let a = alert("one-at-a-time");
        for _ in 0..1000 {
            o.emit(&a);
        }
        assert_eq!(o.stats()["program"].failed(reason::QUEUE_FULL), 0);
        let mut most = 0;
        let mut seen = std::collections::BTreeSet::new();
        let until = Instant::now() + Duration::from_secs(60);
        while o.stats()["program"].failed(reason::TIMEOUT) < 10 {
            assert!(Instant::now() < until, "{:?}", o.stats());
            let now = children_running("sh -c sleep 8");
            most = most.max(now.len());
            seen.extend(now);
            std::thread::sleep(Duration::from_millis(2));
        }
        o.close(Duration::from_millis(200));
        assert_eq!(most, 1, "program processes alive at once");
        assert!(seen.len() >= 5, "saw {} of the programs", seen.len());
        let s = o.stats()["program"].clone();
        assert_eq!(s.total(), 1000, "{s:?}");
        assert_eq!(s.delivered, 0, "{s:?}");
        assert_eq!(
            s.failed(reason::TIMEOUT) + s.failed(reason::SHUTDOWN),
            1000,
            "{s:?}"
        );
        // every program's group (sh and its sleep) is gone, none orphaned
        assert_groups_die(&seen);
    }

    /// A receiver that accepts connections and never answers.
    fn silent_receiver() -> (u16, Arc<Mutex<usize>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(Mutex::new(0));
        let n = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for s in listener.incoming().flatten() {
                held.push(s);
                *lock(&n) += 1;
            }
        });
        (port, accepted)
    }

    /// issue 13 §2: SIGTERM with an HTTP receiver that never answers: close
    /// returns at its deadline and counts what was not delivered.
    #[test]
    fn close_does_not_wait_for_a_receiver_that_never_answers() {
        let (port, accepted) = silent_receiver();
        let mut cfg = quiet();
        cfg.http.enabled = true;
        cfg.http.url = format!("http://127.0.0.1:{port}/");
        // one attempt alone would outlast the test
        cfg.http.timeout = Duration::from_secs(600);
        cfg.http.queue = 100;
        let mut o = Outputs::new(&cfg).expect("outputs");
        for _ in 0..50 {
            o.emit(&alert("hung"));
        }
        let until = Instant::now() + Duration::from_secs(30);
        while *lock(&accepted) == 0 {
            assert!(Instant::now() < until, "the request never connected");
            std::thread::sleep(Duration::from_millis(5));
        }
        o.close(Duration::from_millis(300));
        let s = o.stats()["http"].clone();
        assert_eq!(s.delivered, 0, "{s:?}");
        assert_eq!(s.failed(reason::SHUTDOWN), 50, "{s:?}");
        assert_eq!(s.total(), 50, "{s:?}");
    }

    /// Every attempt has a deadline: a silent receiver fails each alert with
    /// `timeout` after its attempts.
    #[test]
    fn http_attempts_time_out() {
        let (port, accepted) = silent_receiver();
        let mut cfg = quiet();
        cfg.http.enabled = true;
        cfg.http.url = format!("http://127.0.0.1:{port}/");
        cfg.http.timeout = Duration::from_millis(100);
        cfg.http.retries = 2;
        let mut o = Outputs::new(&cfg).expect("outputs");
        for _ in 0..3 {
            o.emit(&alert("slow"));
        }
        o.close(Duration::from_secs(60));
        let s = o.stats()["http"].clone();
        assert_eq!(s.failed(reason::TIMEOUT), 3, "{s:?}");
        assert_eq!(s.total(), 3, "{s:?}");
        assert!(*lock(&accepted) >= 1);
    }

    /// An alert whose untrusted values hold a newline and a JSON record.
    fn forgery() -> Alert {
        let evil = "/tmp/x\n{\"forged\":1}\r\u{85}\u{2028}\t\u{1b}[2J";
        let mut fields = serde_json::Map::new();
        fields.insert("fd.name".into(), evil.into());
        fields.insert("container.name".into(), "c\n{\"forged\":2}".into());
        Alert {
            hostname: "h".into(),
            output: format!("12:00:00.000000000: Warning opened file={evil} by x"),
            output_fields: fields,
            priority: "Warning".into(),
            rule: "R".into(),
            source: "syscall".into(),
            tags: vec![],
            time: "2026-11-22T00:00:00.000000000Z".into(),
        }
    }

    const FORGERY_TEXT: &str = "12:00:00.000000000: Warning opened \
        file=/tmp/x\\x0a{\"forged\":1}\\x0d\\u{0085}\\u{2028}\\x09\\x1b[2J by x";

    /// The one record of the forgery alert in `format`, checked exactly.
    fn assert_one_record(what: &str, format: Format, records: &str) {
        let lines: Vec<&str> = records.split_terminator('\n').collect();
        assert_eq!(lines.len(), 1, "{what}: {records:?}");
        assert!(records.ends_with('\n'), "{what}");
        match format {
            Format::Json => {
                let v: serde_json::Value = serde_json::from_str(lines[0]).expect("json");
                assert_eq!(v, serde_json::to_value(forgery()).expect("value"), "{what}");
            }
            Format::Text => assert_eq!(lines[0], FORGERY_TEXT, "{what}"),
        }
    }

    #[test]
    fn untrusted_values_cannot_forge_records() {
        assert_eq!(escape_text("plain ü ✓"), "plain ü ✓");
        assert_eq!(escape_text("a\nb\x7f"), "a\\x0ab\\x7f");
        for format in [Format::Json, Format::Text] {
            let dir = tempfile::tempdir().expect("tmp");
            let (port, bodies) = super_http_sink(1);
            let sock = dir.path().join("log.sock");
            let daemon = std::os::unix::net::UnixDatagram::bind(&sock).expect("bind");
            let mut cfg = quiet();
            cfg.format = format;
            cfg.file.enabled = true;
            cfg.file.filename = dir.path().join("alerts");
            cfg.syslog.enabled = true;
            cfg.syslog.socket = sock.clone();
            cfg.http.enabled = true;
            cfg.http.url = format!("http://127.0.0.1:{port}/");
            cfg.program.enabled = true;
            cfg.program.keep_alive = true;
            cfg.program.program = format!("cat >> {}", dir.path().join("kept").display());
            let mut o = Outputs::new(&cfg).expect("outputs");
            o.emit(&forgery());
            o.close(Duration::from_secs(30));
            for (name, s) in o.stats() {
                assert_eq!((s.delivered, s.total()), (1, 1), "{name}: {s:?}");
            }
            // one program per alert reads its line the same way
            let mut cfg = quiet();
            cfg.format = format;
            cfg.program.enabled = true;
            cfg.program.keep_alive = false;
            cfg.program.program = format!("cat >> {}", dir.path().join("each").display());
            let mut each = Outputs::new(&cfg).expect("outputs");
            each.emit(&forgery());
            each.close(Duration::from_secs(30));
            assert_eq!(each.stats()["program"].delivered, 1);

            for f in ["alerts", "kept", "each"] {
                let text = std::fs::read_to_string(dir.path().join(f)).expect(f);
                assert_one_record(f, format, &text);
            }
            // http and syslog carry Falco's JSON whatever the format
            let bodies = bodies.join().expect("http");
            assert_eq!(bodies.len(), 1);
            assert_one_record("http", Format::Json, &format!("{}\n", bodies[0]));
            let mut buf = vec![0u8; 65536];
            let n = daemon.recv(&mut buf).expect("syslog");
            let msg = std::str::from_utf8(&buf[..n]).expect("utf8");
            let (_, json) = msg.split_once("]: ").expect("syslog header");
            assert_one_record("syslog", Format::Json, &format!("{json}\n"));
            daemon.set_nonblocking(true).expect("nonblocking");
            assert!(daemon.recv(&mut buf).is_err(), "a second syslog message");
        }
    }

    /// Run by `stdout_gets_one_record_per_alert` in a child test process (it
    /// needs the process's own standard output); does nothing otherwise.
    #[test]
    fn stdout_child() {
        let format = match std::env::var("FL_OUTPUTS_STDOUT_CHILD").as_deref() {
            Ok("json") => Format::Json,
            Ok("text") => Format::Text,
            _ => return,
        };
        let cfg = Cfg {
            format,
            ..Cfg::default()
        };
        let mut o = Outputs::new(&cfg).expect("outputs");
        println!("<<records");
        o.emit(&forgery());
        o.close(Duration::from_secs(30));
        println!("records>>");
        assert_eq!(o.stats()["stdout"].delivered, 1);
    }

    #[test]
    fn stdout_gets_one_record_per_alert() {
        let exe = std::env::current_exe().expect("test binary");
        for (env, format) in [("json", Format::Json), ("text", Format::Text)] {
            let out = std::process::Command::new(&exe)
                .args([
                    "outputs::tests::stdout_child",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("FL_OUTPUTS_STDOUT_CHILD", env)
                .output()
                .expect("child");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let (_, rest) = stdout.split_once("<<records\n").expect("start marker");
            let (records, _) = rest.split_once("records>>\n").expect("end marker");
            assert_one_record("stdout", format, records);
        }
    }

    /// An HTTP receiver answering 200 to `n` POSTs; their bodies.
    fn super_http_sink(n: usize) -> (u16, std::thread::JoinHandle<Vec<String>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let mut bodies = Vec::new();
            for _ in 0..n {
                let (s, _) = listener.accept().expect("accept");
                let mut r = BufReader::new(s.try_clone().expect("clone"));
                let mut len = 0usize;
                let mut first = String::new();
                r.read_line(&mut first).expect("request line");
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).expect("header");
                    if h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().expect("len");
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).expect("body");
                let mut s = s;
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .expect("reply");
                bodies.push(String::from_utf8(body).expect("utf8"));
            }
            bodies
        });
        (port, server)
    }
}
