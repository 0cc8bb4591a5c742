//! `falco-learn bench memory`: where the agent's memory goes.
//!
//! Starts the real agent (`falco-learn run --mode enforce-alert`, the embedded
//! default rules unless `--rules`) with N profiles (copies of a template with
//! distinct image names), then reads its `/proc/<pid>/status` and `smaps` after
//! the load, after a flood of write-opens, after a burst of execs and once the
//! exited processes have left the process table. Reported per phase: resident
//! memory (`VmRSS`) split into anonymous memory (of it, the malloc heap) and file
//! pages (of them, the kernel ring buffer's mapping and the binary's own pages),
//! and the peak so far (`VmHWM`), in MiB.

use anyhow::Context;
use clap::Args;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The default template: the reviewed nginx profile.
const NGINX_PROFILE: &str = include_str!("../../profiles/nginx.yaml");

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  sudo falco-learn bench memory\n  \
    sudo falco-learn bench memory --profiles 500 --rules /etc/falco/falco_rules.yaml\n  \
    sudo falco-learn bench memory --template profiles/redis.yaml")]
pub struct MemoryBenchArgs {
    /// How many profiles the agent loads (copies of the template, each for its own image).
    #[arg(long, default_value_t = 100, value_parser = crate::cmd::int_in(0usize, 100_000))]
    pub profiles: usize,
    /// The profile copied (default: the reviewed nginx profile, embedded).
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// Rules files for the agent (default: the embedded default ruleset).
    #[arg(short, long, value_name = "FILE")]
    pub rules: Vec<PathBuf>,
    /// Write-opens in the flood phase.
    #[arg(long, default_value_t = 1_000_000, value_parser = crate::cmd::int_in(1u64, 1_000_000_000))]
    pub writes: u64,
    /// fork+exec of /bin/true in the exec phase.
    #[arg(long, default_value_t = 3_000, value_parser = crate::cmd::int_in(1u64, 1_000_000))]
    pub execs: u64,
}

/// One reading of the agent's memory (KiB).
#[derive(Debug, Default, Clone, Copy)]
struct Reading {
    rss: u64,
    hwm: u64,
    anon: u64,
    file: u64,
    heap: u64,
    ring: u64,
    binary: u64,
}

fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn read(pid: u32, exe: &Path) -> anyhow::Result<Reading> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("the agent (pid {pid}) is gone"))?;
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let exe = exe.to_string_lossy();
    let (mut heap, mut ring, mut binary) = (0, 0, 0);
    let mut name = String::new();
    for line in smaps.lines() {
        if let Some(kib) = line.strip_prefix("Rss:") {
            let kib: u64 = kib
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0);
            if name == "[heap]" {
                heap += kib;
            } else if name.starts_with("anon_inode:bpf-map") {
                ring += kib;
            } else if name == exe {
                binary += kib;
            }
        } else if line.split_whitespace().next().is_some_and(|a| {
            a.contains('-') && a.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        }) {
            name = line.split_whitespace().nth(5).unwrap_or("").to_string();
        }
    }
    Ok(Reading {
        rss: status_kib(&status, "VmRSS:"),
        hwm: status_kib(&status, "VmHWM:"),
        anon: status_kib(&status, "RssAnon:"),
        file: status_kib(&status, "RssFile:"),
        heap,
        ring,
        binary,
    })
}

fn worker(exe: &Path, kind: &str, n: u64) -> anyhow::Result<()> {
    let st = Command::new(exe)
        .args(["bench", "worker", kind, &n.to_string()])
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("run the {kind} worker"))?;
    anyhow::ensure!(st.success(), "the {kind} worker failed ({st})");
    Ok(())
}

/// The agent, stopped (SIGTERM, then SIGKILL) when dropped.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(a: MemoryBenchArgs) -> anyhow::Result<ExitCode> {
    let template = match &a.template {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the template profile {}", p.display()))?,
        None => NGINX_PROFILE.to_string(),
    };
    let repo = template
        .lines()
        .find_map(|l| l.trim().strip_prefix("repository:"))
        .map(|r| r.trim().to_string())
        .context("the template profile has no image repository")?;
    let dir = tempfile::tempdir().context("temporary directory")?;
    for i in 1..=a.profiles {
        let p = template.replacen(
            &format!("repository: {repo}"),
            &format!("repository: {repo}-bench{i}"),
            1,
        );
        std::fs::write(dir.path().join(format!("p{i}.yaml")), p)?;
    }
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(&exe);
    cmd.args([
        "run",
        "--mode",
        "enforce-alert",
        "-o",
        "metrics.listen=127.0.0.1:0",
    ]);
    if a.profiles > 0 {
        cmd.arg("--profiles").arg(dir.path());
    }
    for r in &a.rules {
        cmd.arg("--rules").arg(r);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("start the agent")?;
    let stderr = child.stderr.take().context("the agent's stderr")?;
    let pid = child.id();
    let agent = Agent(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // every line, to the end: the agent never blocks on a full pipe
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut log = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) => {
                let running = l.contains("mode running");
                log.push(l);
                if running {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(_) => anyhow::bail!("the agent did not start:\n{}", log.join("\n")),
        }
    }
    // drain the rest of its log in the background
    std::thread::spawn(move || while rx.recv().is_ok() {});
    std::thread::sleep(Duration::from_secs(2));
    let mut rows = vec![("loaded, idle", read(pid, &exe)?)];
    worker(&exe, "open-write", a.writes)?;
    std::thread::sleep(Duration::from_secs(1));
    rows.push(("after the write-open flood", read(pid, &exe)?));
    worker(&exe, "fork-exec", a.execs)?;
    std::thread::sleep(Duration::from_secs(1));
    rows.push(("after the exec burst", read(pid, &exe)?));
    // the process table keeps exited processes 10 s, sweeps once a second
    std::thread::sleep(Duration::from_secs(13));
    rows.push(("exited processes swept", read(pid, &exe)?));
    drop(agent);

    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "agent: run --mode enforce-alert, {} rules, {} profiles (MiB)",
        if a.rules.is_empty() {
            "the default".to_string()
        } else {
            format!("{} file(s) of", a.rules.len())
        },
        a.profiles
    );
    println!(
        "{:<28} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8}",
        "phase", "RSS", "anon", "heap", "file", "ring", "binary", "peak"
    );
    for (phase, r) in &rows {
        println!(
            "{:<28} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>8.1}",
            phase,
            mib(r.rss),
            mib(r.anon),
            mib(r.heap),
            mib(r.file),
            mib(r.ring),
            mib(r.binary),
            mib(r.hwm)
        );
    }
    println!(
        "anon: heap and other anonymous memory; file: the ring buffer's mapping (ring) and the\n\
         binary's pages (binary) among others; peak: VmHWM, the highest RSS so far (at load:\n\
         the kernel's BTF parsed while the probe loads)."
    );
    Ok(ExitCode::SUCCESS)
}
