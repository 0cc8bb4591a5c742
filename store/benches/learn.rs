//! Learning throughput into the store, and store size after 1 M events.
//!
//! `cargo bench -p falco-learn-store` (add `-- --events N` for another count).
//! Events are nginx-like (execs, DNS and upstream connects, log writes, and a
//! stream of distinct client-body temp files that generalisation folds into
//! one `dir/**`), across 4 containers of one image. They are generated in
//! chunks outside the timed section; the timed section is `Learner::observe`
//! (with the default rules evaluated on every event, as the CLI does) plus a
//! checkpoint + flush every 64 Ki events. A third run makes every temp file
//! a distinct, non-generalisable path (100 000 of them) for the store size
//! of a large profile.

use falco_learn_event::{
    Args, Container, Event, EventType, EventTypeField, Fd, FdType, L4Proto, Process,
};
use falco_learn_profiler::{Learner, Limits};
use falco_learn_rules::Ruleset;
use falco_learn_store::Store;
use std::path::Path;
use std::time::{Duration, Instant};

const CHUNK: u64 = 65_536;

fn event(i: u64, wide: bool) -> Event {
    let c = i % 4;
    let mut e = Event {
        ts: 1_763_770_000_000_000_000 + i * 1_000,
        hostname: "node-1".into(),
        process: Process {
            pid: 1000 + c as u32,
            tid: 1000 + c as u32,
            comm: "nginx".into(),
            exe: "nginx".into(),
            exepath: "/usr/sbin/nginx".into(),
            user: "nginx".into(),
            uid: 101,
            start_ts: 1,
            ..Process::default()
        }
        .into(),
        container: Container {
            id: format!("c0ffee00000{c}"),
            name: "web".into(),
            image_repository: "docker.io/library/nginx".into(),
            image_tag: "1.27".into(),
            runtime: "containerd".into(),
            ..Container::default()
        }
        .into(),
        ..Event::default()
    };
    let open = |e: &mut Event, path: String, flags: u32| {
        e.typ = EventTypeField(EventType::Openat);
        e.res = 7;
        e.fd = Some(Fd {
            num: 7,
            name: path.clone(),
            ..Fd::default()
        });
        e.args = Args::Open {
            name: path,
            flags,
            mode: 0o644,
            dirfd: -100,
        };
    };
    match i % 10 {
        0 => {
            e.typ = EventTypeField(EventType::Execve);
            std::sync::Arc::make_mut(&mut e.process).exepath =
                ["/usr/sbin/nginx", "/usr/bin/curl", "/usr/bin/dash"][(i / 10 % 3) as usize].into();
        }
        1 | 2 => {
            e.typ = EventTypeField(EventType::Connect);
            e.res = -115;
            let (ip, port, proto) = if i % 10 == 1 {
                ("10.96.0.10", 53, L4Proto::Udp)
            } else {
                ("10.96.12.34", 8080, L4Proto::Tcp)
            };
            e.fd = Some(Fd {
                num: 9,
                typ: FdType::Ipv4,
                l4proto: proto,
                cip: "10.244.1.7".parse().ok(),
                cport: Some(40000),
                sip: ip.parse().ok(),
                sport: Some(port),
                is_client: true,
                ..Fd::default()
            });
        }
        // wide: 100 000 distinct directories of one file each, under /data
        // (depth 1, never generalised): a 100 000-entry profile.
        3 if wide => open(&mut e, format!("/data/{}/f", i / 10 % 100_000), 0o302),
        3 => open(
            &mut e,
            format!("/var/cache/nginx/client_temp/{i:010}"),
            0o302,
        ),
        4 => open(&mut e, "/var/log/nginx/access.log".into(), 0o2101),
        _ => open(&mut e, "/usr/share/nginx/html/index.html".into(), 0),
    }
    e
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn run(n: u64, poison: bool, wide: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    let rules = poison.then(|| {
        let (rs, report) = Ruleset::load_sources(&[(
            falco_learn_rules::DEFAULT_RULES_NAME,
            falco_learn_rules::DEFAULT_RULES,
        )]);
        assert!(!report.has_errors(), "{report}");
        rs
    });
    let mut learner = Learner::new(Limits::default(), rules).expect("limits");
    let mut timed = Duration::ZERO;
    let mut checkpoints = 0;
    let mut i = 0;
    while i < n {
        let chunk: Vec<Event> = (i..(i + CHUNK).min(n)).map(|i| event(i, wide)).collect();
        let t = Instant::now();
        for e in &chunk {
            learner.observe(e);
        }
        let changes = learner.take_changes();
        store
            .checkpoint(learner.profiles(), &changes, None)
            .expect("checkpoint");
        store.flush().expect("flush");
        timed += t.elapsed();
        checkpoints += 1;
        i += chunk.len() as u64;
    }
    let p = learner.profiles().values().next().expect("one profile");
    drop(store);
    println!(
        "learn {n} events ({}{}): {:.2} s, {:.0} events/s; {checkpoints} checkpoints; \
         profile {} execs, {} ports, {} write paths; store on disk {:.1} KiB",
        if poison {
            "default rules evaluated"
        } else {
            "no poison rules"
        },
        if wide { ", 100 000 distinct paths" } else { "" },
        timed.as_secs_f64(),
        n as f64 / timed.as_secs_f64(),
        p.exec.len(),
        p.outbound.len(),
        p.write_files.len() + p.write_dirs.len(),
        dir_size(dir.path()) as f64 / 1024.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = args
        .iter()
        .position(|a| a == "--events")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000u64);
    run(n, true, false);
    run(n, false, false);
    run(n, true, true);
}
