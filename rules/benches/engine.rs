//! Benchmarks (`cargo bench -p falco-learn-rules`):
//!
//! 1. load + compile of the three upstream rules files together;
//! 2. evaluation throughput of the stable rules over 1 M varied synthetic
//!    events (exec, open, connect, dup, socket, ptrace, …), one thread;
//! 3. load of pathological files (macros or lists each using the previous
//!    one twice, 64 levels; 100 000 nested parentheses), refused at a limit,
//!    and of a 1.2 MB list whose values' positions cannot be found as written.
//!
//! A plain `harness = false` main: it prints medians and rates. The upstream
//! files are read from `../shared/falco-rules` next to the repository.

use falco_learn_event::{
    Ancestor, Args, Container, Event, EventType, EventTypeField, ExeFlags, Fd, FdType, L4Proto,
    Process,
};
use falco_learn_rules::Ruleset;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn upstream(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/falco-rules")
        .join(file)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const COMMS: &[&str] = &[
    "nginx",
    "bash",
    "sh",
    "python3",
    "java",
    "node",
    "cat",
    "ls",
    "curl",
    "grep",
    "sshd",
    "ssh",
    "postgres",
    "redis-server",
    "vi",
    "apt-get",
    "find",
    "nc",
    "tar",
    "sed",
];
const PATHS: &[&str] = &[
    "/etc/passwd",
    "/etc/shadow",
    "/var/log/nginx/access.log",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/proc/self/status",
    "/tmp/x",
    "/root/.ssh/authorized_keys",
    "/var/lib/app/data.db",
    "/etc/ld.so.cache",
    "/dev/null",
];
const IMAGES: &[&str] = &[
    "docker.io/library/nginx",
    "docker.io/library/redis",
    "quay.io/prometheus/prometheus",
    "",
];

fn synth(rng: &mut Rng, i: u64) -> Event {
    let comm = rng.pick(COMMS).to_string();
    let parent = rng.pick(COMMS).to_string();
    let image = rng.pick(IMAGES);
    let container = if image.is_empty() {
        Container::host()
    } else {
        Container {
            id: format!("{:012x}", rng.next() % 16),
            name: "app".into(),
            image_repository: image.into(),
            image_tag: "latest".into(),
            ..Default::default()
        }
    };
    let kind = rng.next() % 10;
    let (typ, fd, args, res) = match kind {
        0..=1 => (
            EventType::Execve,
            None,
            Args::Exec {
                filename: format!("/usr/bin/{comm}"),
            },
            0,
        ),
        2..=5 => {
            let path = rng.pick(PATHS).to_string();
            let flags = [0u32, 0o1101, 0o2, 0o2101][(rng.next() % 4) as usize];
            (
                EventType::Openat,
                Some(Fd {
                    num: 3,
                    typ: FdType::File,
                    name: path.clone(),
                    ..Default::default()
                }),
                Args::Open {
                    name: path,
                    flags,
                    mode: 0o644,
                    dirfd: -100,
                },
                3,
            )
        }
        6..=7 => {
            let port = [443u16, 80, 22, 5432, 2222, 53][(rng.next() % 6) as usize];
            (
                EventType::Connect,
                Some(Fd {
                    num: 4,
                    typ: FdType::Ipv4,
                    l4proto: L4Proto::Tcp,
                    cip: Some(
                        "10.0.0.5"
                            .parse()
                            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
                    ),
                    cport: Some(40000),
                    sip: Some(std::net::Ipv4Addr::from((rng.next() as u32) | 0x0100_0000).into()),
                    sport: Some(port),
                    is_client: true,
                    connected: true,
                    ..Default::default()
                }),
                Args::Connect {
                    fd: 4,
                    addr: String::new(),
                },
                0,
            )
        }
        8 => (
            EventType::Dup2,
            Some(Fd {
                num: 5,
                typ: FdType::Ipv4,
                ..Default::default()
            }),
            Args::Dup {
                oldfd: 5,
                newfd: 7,
                flags: 0,
            },
            7,
        ),
        _ => (
            EventType::Socket,
            Some(Fd {
                num: 6,
                typ: FdType::Unix,
                ..Default::default()
            }),
            Args::Socket {
                domain: 1,
                typ: 1,
                proto: 0,
            },
            6,
        ),
    };
    Event {
        num: i + 1,
        ts: 1_700_000_000_000_000_000 + i * 1000,
        typ: EventTypeField(typ),
        res,
        hostname: "bench".into(),
        process: Process {
            pid: 1000 + (i % 500) as u32,
            tid: 1000 + (i % 500) as u32,
            comm: comm.clone(),
            exe: comm.clone(),
            exepath: format!("/usr/bin/{comm}"),
            args: vec!["-x".into(), format!("arg{}", i % 7)],
            cwd: "/".into(),
            tty: if i.is_multiple_of(13) { 34816 } else { 0 },
            user: "root".into(),
            loginuid: u32::MAX,
            start_ts: 1_699_999_999_000_000_000,
            exe_flags: ExeFlags::default(),
            ..Default::default()
        }
        .into(),
        ancestors: vec![
            Ancestor {
                pid: 900,
                comm: parent.clone(),
                exe: parent.clone(),
                exepath: format!("/usr/bin/{parent}"),
                ..Default::default()
            },
            Ancestor {
                pid: 1,
                comm: "containerd-shim".into(),
                ..Default::default()
            },
        ]
        .into(),
        container: container.into(),
        fd,
        args,
        ..Default::default()
    }
}

/// `m{i}` (or list `a{i}`) uses the previous one twice: 2^levels once expanded.
fn doubling(list: bool, levels: usize) -> String {
    let mut y = String::new();
    if list {
        y.push_str("- list: a0\n  items: [x]\n");
        for i in 1..=levels {
            y.push_str(&format!(
                "- list: a{i}\n  items: [a{}, a{}]\n",
                i - 1,
                i - 1
            ));
        }
    } else {
        y.push_str("- macro: m0\n  condition: proc.name = x\n");
        for i in 1..=levels {
            y.push_str(&format!(
                "- macro: m{i}\n  condition: m{} or m{}\n",
                i - 1,
                i - 1
            ));
        }
    }
    let cond = if list {
        format!("proc.name in (a{levels})")
    } else {
        format!("m{levels}")
    };
    y + &format!(
        "- rule: r\n  desc: d\n  condition: evt.type = execve and {cond}\n  output: o\n  priority: INFO\n"
    )
}

fn pathological() {
    let parens = format!(
        "- rule: r\n  desc: d\n  condition: {}proc.name = x{}\n  output: o\n  priority: INFO\n",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    // A list the precise YAML parser rejects (positions are then searched in
    // the text) whose 90 000 escaped values are not found as written.
    let escaped: Vec<String> = (0..90_000).map(|i| format!("\"a\\tb{i}\"")).collect();
    let escaped = format!(
        "- list: l\n  items: [\n    {}\n  ]\n- rule: r\n  desc: d\n  condition: proc.nmae in (l)\n  output: o\n  priority: INFO\n",
        escaped.join(", ")
    );
    for (name, text) in [
        ("64-level macro chain", doubling(false, 64)),
        ("64-level list chain", doubling(true, 64)),
        ("100 000 nested parentheses", parens),
        ("90 000 escaped values in a libyaml-only list", escaped),
    ] {
        let mut times = Vec::new();
        let mut first = String::new();
        for _ in 0..15 {
            let t = Instant::now();
            let (rs, report) = Ruleset::load_sources(&[("p.yaml", text.as_str())]);
            times.push(t.elapsed());
            assert!(report.has_errors() && rs.rules().is_empty());
            first = report.errors[0].code.as_str().to_string();
            black_box(rs);
        }
        println!(
            "load {name} ({} bytes): median {:.3} ms, refused with {first}",
            text.len(),
            median(times).as_secs_f64() * 1e3
        );
    }
}

fn main() {
    pathological();
    let files = [
        upstream("falco_rules.yaml"),
        upstream("falco-incubating_rules.yaml"),
        upstream("falco-sandbox_rules.yaml"),
    ];
    if !files.iter().all(|f| f.exists()) {
        eprintln!("upstream rules not found next to the repository; skipping");
        return;
    }
    // Load + compile (file reads included).
    let mut times = Vec::new();
    let mut rules = 0;
    for _ in 0..15 {
        let t = Instant::now();
        let (rs, report) = Ruleset::load_files(&files);
        times.push(t.elapsed());
        assert!(report.errors.is_empty(), "{report}");
        rules = rs.rules().len();
        black_box(rs);
    }
    let m = median(times);
    println!(
        "load+compile 3 upstream files ({rules} rules): median {:.2} ms",
        m.as_secs_f64() * 1e3
    );

    // Evaluation with the stable rules.
    let (rs, report) = Ruleset::load_files(&files[..1]);
    assert!(report.errors.is_empty(), "{report}");
    let n: u64 = 1_000_000;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let events: Vec<Event> = (0..n).map(|i| synth(&mut rng, i)).collect();
    let mut best = Duration::MAX;
    let mut matches = 0u64;
    for _ in 0..3 {
        let t = Instant::now();
        let mut m = 0u64;
        for ev in &events {
            rs.for_each_match(ev, |_| m += 1);
        }
        best = best.min(t.elapsed());
        matches = m;
    }
    println!(
        "evaluate {} varied events with {} stable rules: best of 3 {:.3} s = {:.2} M events/s ({} matches)",
        n,
        rs.rules().len(),
        best.as_secs_f64(),
        n as f64 / best.as_secs_f64() / 1e6,
        matches
    );
    // Our default ruleset on the same events.
    let default = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("default/falco-learn_rules.yaml");
    let (ours, report) = Ruleset::load_files(&[default]);
    assert!(report.errors.is_empty(), "{report}");
    let t = Instant::now();
    let mut m = 0u64;
    for ev in &events {
        ours.for_each_match(ev, |_| m += 1);
    }
    let el = t.elapsed();
    println!(
        "evaluate {} events with the {} default (falco-learn) rules: {:.3} s = {:.2} M events/s ({} matches)",
        n,
        ours.enabled_count(),
        el.as_secs_f64(),
        n as f64 / el.as_secs_f64() / 1e6,
        m
    );
    // Also: the same events with all three files loaded.
    let (all, _) = Ruleset::load_files(&files);
    let t = Instant::now();
    let mut m = 0u64;
    for ev in &events {
        all.for_each_match(ev, |_| m += 1);
    }
    let el = t.elapsed();
    println!(
        "evaluate {} events with all {} enabled upstream rules: {:.3} s = {:.2} M events/s ({} matches)",
        n,
        all.enabled_count(),
        el.as_secs_f64(),
        n as f64 / el.as_secs_f64() / 1e6,
        m
    );
}
