//! Alert outputs: stdout, file, syslog, HTTP POST (falcosidekick's payload is
//! Falco's JSON alert) and program (each alert piped to a command), like
//! Falco's outputs. A failing output never blocks the others: HTTP has its own
//! bounded queue and worker thread; every failure is logged and counted.

use crate::config::{Format, Outputs as OutputsConfig};
use crate::metrics as m;
use falco_learn_rules::Alert;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
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
}

fn line(format: Format, a: &Alert) -> String {
    match format {
        Format::Json => {
            serde_json::to_string(a).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        }
        Format::Text => a.output.clone(),
    }
}

fn delivered(output: &'static str) {
    metrics::counter!(m::ALERTS_OUT, "output" => output).increment(1);
}

fn failed(output: &'static str, reason: &'static str) {
    metrics::counter!(m::ALERTS_FAILED, "output" => output, "reason" => reason).increment(1);
}

struct FileOut {
    path: std::path::PathBuf,
    file: std::fs::File,
}

impl FileOut {
    fn open(path: &std::path::Path) -> Result<FileOut, OutputError> {
        use std::os::unix::fs::OpenOptionsExt;
        // A new alert file is 0640 at most, whatever the umask.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)
            .map_err(|err| OutputError::File {
                path: path.display().to_string(),
                err,
            })?;
        Ok(FileOut {
            path: path.to_path_buf(),
            file,
        })
    }
}

struct ProgramOut {
    program: String,
    keep_alive: bool,
    child: Option<(Child, ChildStdin)>,
    /// Per-alert children still running, reaped as they finish.
    running: Vec<Child>,
}

impl ProgramOut {
    fn spawn(&self) -> std::io::Result<(Child, ChildStdin)> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&self.program)
            .stdin(Stdio::piped())
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin pipe"))?;
        Ok((child, stdin))
    }

    fn send(&mut self, text: &str) -> std::io::Result<()> {
        self.running
            .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
        if !self.keep_alive {
            let (child, mut stdin) = self.spawn()?;
            let r = writeln!(stdin, "{text}");
            drop(stdin);
            self.running.push(child);
            return r;
        }
        for attempt in 0..2 {
            if self.child.is_none() {
                self.child = Some(self.spawn()?);
            }
            if let Some((_, stdin)) = self.child.as_mut() {
                match writeln!(stdin, "{text}").and_then(|_| stdin.flush()) {
                    Ok(()) => return Ok(()),
                    Err(e) if attempt == 0 => {
                        tracing::warn!(
                            "program output `{}` failed ({e}); restarting it",
                            self.program
                        );
                        if let Some((mut c, _)) = self.child.take() {
                            let _ = c.wait();
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    fn close(&mut self) {
        if let Some((mut c, stdin)) = self.child.take() {
            drop(stdin);
            let _ = c.wait();
        }
        for mut c in self.running.drain(..) {
            let _ = c.wait();
        }
    }
}

struct HttpOut {
    tx: Option<SyncSender<String>>,
    worker: Option<JoinHandle<()>>,
}

fn http_worker(rx: Receiver<String>, url: String, retries: u32, timeout: Duration) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(true)
        .build()
        .into();
    for body in rx {
        let mut backoff = Duration::from_millis(100);
        let mut ok = false;
        for attempt in 0..retries.max(1) {
            match agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.as_bytes())
            {
                Ok(_) => {
                    ok = true;
                    break;
                }
                Err(e) => {
                    if attempt + 1 < retries.max(1) {
                        tracing::debug!("http output {url}: {e}; retrying in {backoff:?}");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    } else {
                        tracing::warn!("http output {url}: giving up on an alert after {retries} attempts: {e}");
                    }
                }
            }
        }
        if ok {
            delivered("http");
        } else {
            failed("http", "send");
        }
    }
}

/// Syslog over the local daemon's datagram socket (RFC 3164, facility `user`,
/// the alert's priority as severity, Falco's JSON as the message). A missing
/// or restarted daemon is reconnected at most once a second; alerts that could
/// not be sent are counted (`reason="connect"` or `"send"`), never queued.
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

    fn send(&mut self, priority: &str, msg: String) {
        if self.logger.is_none() && self.last_try.is_none_or(|t| t.elapsed() >= self.retry) {
            self.connect();
        }
        let Some(l) = self.logger.as_mut() else {
            failed("syslog", "connect");
            return;
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
            Ok(()) => delivered("syslog"),
            Err(e) => {
                failed("syslog", "send");
                self.logger = None;
                self.warn(&format!("send failed: {e}"));
            }
        }
    }
}

/// All configured outputs.
pub struct Outputs {
    format: Format,
    stdout: bool,
    file: Option<FileOut>,
    syslog: Option<SyslogOut>,
    http: Option<HttpOut>,
    program: Option<ProgramOut>,
}

impl Outputs {
    pub fn new(cfg: &OutputsConfig) -> Result<Outputs, OutputError> {
        let file = if cfg.file.enabled {
            Some(FileOut::open(&cfg.file.filename)?)
        } else {
            None
        };
        let syslog = cfg
            .syslog
            .enabled
            .then(|| SyslogOut::new(cfg.syslog.socket.clone()));
        let http = if cfg.http.enabled {
            let (tx, rx) = std::sync::mpsc::sync_channel(cfg.http.queue);
            let url = cfg.http.url.clone();
            let (retries, timeout) = (cfg.http.retries, Duration::from_millis(cfg.http.timeout_ms));
            let worker = std::thread::Builder::new()
                .name("falco-learn-http".into())
                .spawn(move || http_worker(rx, url, retries, timeout))
                .map_err(|err| OutputError::Program {
                    program: "http worker thread".into(),
                    err,
                })?;
            Some(HttpOut {
                tx: Some(tx),
                worker: Some(worker),
            })
        } else {
            None
        };
        let program = if cfg.program.enabled {
            let mut p = ProgramOut {
                program: cfg.program.program.clone(),
                keep_alive: cfg.program.keep_alive,
                child: None,
                running: Vec::new(),
            };
            if p.keep_alive {
                p.child = Some(p.spawn().map_err(|err| OutputError::Program {
                    program: p.program.clone(),
                    err,
                })?);
            }
            Some(p)
        } else {
            None
        };
        Ok(Outputs {
            format: cfg.format,
            stdout: cfg.stdout.enabled,
            file,
            syslog,
            http,
            program,
        })
    }

    /// Deliver one alert to every output.
    pub fn emit(&mut self, a: &Alert) {
        let text = line(self.format, a);
        if self.stdout {
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{text}").and_then(|_| out.flush()).is_ok() {
                delivered("stdout");
            } else {
                failed("stdout", "write");
            }
        }
        if let Some(f) = self.file.as_mut() {
            match writeln!(f.file, "{text}").and_then(|_| f.file.flush()) {
                Ok(()) => delivered("file"),
                Err(e) => {
                    failed("file", "write");
                    tracing::warn!("file output {}: {e}", f.path.display());
                }
            }
        }
        if let Some(s) = self.syslog.as_mut() {
            s.send(&a.priority, line(Format::Json, a));
        }
        if let Some(h) = self.http.as_ref() {
            let body = line(Format::Json, a);
            match h.tx.as_ref().map(|tx| tx.try_send(body)) {
                Some(Ok(())) => {}
                Some(Err(TrySendError::Full(_))) => failed("http", "queue_full"),
                _ => failed("http", "closed"),
            }
        }
        if let Some(p) = self.program.as_mut() {
            match p.send(&text) {
                Ok(()) => delivered("program"),
                Err(e) => {
                    failed("program", "write");
                    tracing::warn!("program output `{}`: {e}", p.program);
                }
            }
        }
    }

    /// Reopen the file output (SIGHUP, after logrotate moved it).
    pub fn reopen(&mut self) {
        if let Some(f) = self.file.as_mut() {
            match FileOut::open(&f.path) {
                Ok(n) => *f = n,
                Err(e) => tracing::error!("{e}; keeping the old file handle"),
            }
        }
    }

    /// Drain and close: waits up to `deadline` for the HTTP queue to empty.
    pub fn close(&mut self, deadline: Duration) {
        let start = Instant::now();
        if let Some(h) = self.http.as_mut() {
            drop(h.tx.take());
            if let Some(w) = h.worker.take() {
                while !w.is_finished() && start.elapsed() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if w.is_finished() {
                    let _ = w.join();
                } else {
                    tracing::warn!("http output still sending after {deadline:?}; exiting anyway");
                }
            }
        }
        if let Some(p) = self.program.as_mut() {
            p.close();
        }
        if let Some(f) = self.file.as_mut() {
            let _ = f.file.flush();
        }
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
        s.send("Warning", "lost".into());
        assert!(s.logger.is_none());

        let daemon = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        s.send("Critical", "{\"rule\":\"x\"}".into());
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
            s.send("Notice", "after".into());
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
}
