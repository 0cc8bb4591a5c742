//! Helpers shared by the root package's end-to-end tests: root/CI gating,
//! free loopback ports, and a `falco-learn` child process whose output lines
//! are collected (`Agent`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `true` when the test must not run: not root outside CI (a loud SKIPPED
/// line). In CI (`CI` set) a missing privilege fails the test instead.
pub fn skip_without_root(what: &str) -> bool {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return false;
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but not root: {what} must run in CI");
    }
    eprintln!("\n!!!!! SKIPPED: {what} needs root !!!!!\n");
    true
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free loopback port")
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A `falco-learn` child whose stdout and stderr lines are collected; SIGTERM,
/// then SIGKILL, on drop if it still runs.
pub struct Agent {
    pub child: Child,
    pub out: Arc<Mutex<Vec<String>>>,
    pub err: Arc<Mutex<Vec<String>>>,
}

pub fn collect(
    r: impl Read + Send + 'static,
    echo: Option<&'static str>,
) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l2 = lines.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines().map_while(Result::ok) {
            if let Some(prefix) = echo {
                eprintln!("{prefix}{l}");
            }
            lock(&l2).push(l);
        }
    });
    lines
}

impl Agent {
    pub fn spawn(what: &'static str, args: &[&str]) -> Agent {
        let mut child = Command::new(env!("CARGO_BIN_EXE_falco-learn"))
            .args(args)
            .env_remove("FALCO_LEARN_STORE")
            .env_remove("FALCO_LEARN_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start falco-learn {what}: {e}"));
        let out = collect(child.stdout.take().expect("stdout"), None);
        let err = collect(child.stderr.take().expect("stderr"), Some(what));
        Agent { child, out, err }
    }

    pub fn stderr(&self) -> String {
        lock(&self.err).join("\n")
    }

    pub fn wait_log(&mut self, needle: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !lock(&self.err).iter().any(|l| l.contains(needle)) {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "falco-learn exited ({st}) before {needle:?}:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} from falco-learn in {secs} s:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for the exit (at most `secs`); must succeed.
    pub fn wait_success(&mut self, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait falco-learn") {
                // let the reader threads drain the pipes
                std::thread::sleep(Duration::from_millis(100));
                assert!(
                    st.success(),
                    "falco-learn failed ({st}):\n{}",
                    self.stderr()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "falco-learn still running after {secs} s:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn terminate(&mut self, secs: u64) {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.wait_success(secs);
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: as in terminate.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Agent {
    /// `falco-learn run …` started and ready ("enforce-alert mode running").
    pub fn run(what: &'static str, args: &[&str]) -> Agent {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        let mut a = Agent::spawn(what, &all);
        a.wait_log("enforce-alert mode running", 60);
        a
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        lock(&self.out).clone()
    }

    pub fn stderr_has(&self, needle: &str) -> bool {
        lock(&self.err).iter().any(|l| l.contains(needle))
    }
}

/// The agent's Prometheus exposition on 127.0.0.1:`port` (headers included).
pub fn scrape(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read metrics");
    out
}
