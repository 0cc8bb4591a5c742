//! Crash safety of learning: `kill -9` the learner again and again while it
//! learns from a recording. Every reopen of the store must succeed, and what
//! it holds must equal learning exactly the events it says it consumed (a
//! prefix of the recording): nothing corrupted, nothing invented. Restarting
//! the same command resumes the window; the final profile equals learning the
//! whole recording in one go.

use falco_learn_event::{
    write_jsonl, Args, Container, Event, EventType, EventTypeField, Fd, FdType, L4Proto, Process,
};
use falco_learn_profiler::{ImageRef, Learner, Limits, Profile};
use falco_learn_rules::Ruleset;
use falco_learn_store::Store;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EVENTS: u64 = 40_000;
const MIN_KILLS: usize = 20;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_falco-learn"))
}

/// Small nginx-like events that keep teaching something new: execs, peers
/// that widen, writes that generalise, new containers now and then.
fn event(i: u64) -> Event {
    let mut e = Event {
        num: i + 1,
        ts: 1_763_770_000_000_000_000 + i * 1_000_000,
        process: Process {
            pid: 100 + (i % 7) as u32,
            comm: "nginx".into(),
            exepath: "/usr/sbin/nginx".into(),
            start_ts: 1,
            ..Process::default()
        },
        container: Container {
            id: format!("c{:011}", i / 5_000),
            image_repository: "docker.io/library/nginx".into(),
            image_tag: "1.27".into(),
            ..Container::default()
        },
        ..Event::default()
    };
    let open = |e: &mut Event, path: String| {
        e.typ = EventTypeField(EventType::Openat);
        e.res = 5;
        e.fd = Some(Fd {
            num: 5,
            name: path.clone(),
            ..Fd::default()
        });
        e.args = Args::Open {
            name: path,
            flags: 0o101,
            mode: 0o644,
            dirfd: -100,
        };
    };
    match i % 8 {
        0 => {
            e.typ = EventTypeField(EventType::Execve);
            e.process.exepath = format!("/opt/jobs/bin/job{}", i / 97 % 400);
        }
        1 | 2 => {
            e.typ = EventTypeField(EventType::Connect);
            e.fd = Some(Fd {
                typ: FdType::Ipv4,
                l4proto: L4Proto::Tcp,
                sip: format!("10.96.{}.{}", i / 13 % 40, i % 200).parse().ok(),
                sport: Some(8080 + (i / 1_000 % 9) as u16),
                ..Fd::default()
            });
        }
        3 => open(&mut e, format!("/srv/data/d{}/f{}", i / 11 % 30, i % 12)),
        4 => open(&mut e, format!("/var/cache/nginx/client_temp/{i:010}")),
        5 => e.container = Container::host(),
        _ => open(&mut e, "/var/log/nginx/access.log".into()),
    }
    e
}

fn write_recording(path: &Path) {
    let f = std::fs::File::create(path).expect("create recording");
    let mut w = std::io::BufWriter::new(f);
    for i in 0..EVENTS {
        write_jsonl(&mut w, &event(i)).expect("write");
    }
    w.flush().expect("flush");
}

fn learner() -> Learner {
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/rules/default/falco-learn_rules.yaml"
    );
    let (rs, report) = Ruleset::load_files(&[rules]);
    assert!(!report.has_errors(), "{report}");
    Learner::new(Limits::default(), Some(rs)).expect("limits")
}

fn spawn(store: &Path, recording: &Path) -> std::process::Child {
    bin()
        .args([
            "--image",
            "nginx",
            "--flush-interval",
            "0s",
            "--log",
            "warn",
            "--store",
        ])
        .arg(store)
        .arg("--from")
        .arg(recording)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn falco-learn")
}

/// Open the store; check it holds exactly the profiles of the first
/// `consumed` events. `model` learns forward to that point.
fn check(store_dir: &Path, model: &mut Learner, fed: &mut u64) -> (u64, bool) {
    let store = Store::open(store_dir).expect("store reopens after kill -9");
    let windows = store.windows().expect("windows readable");
    assert!(windows.len() <= 1, "{windows:?}");
    let (consumed, done) = windows.first().map_or((0, false), |w| (w.consumed, w.done));
    assert!(
        consumed >= *fed,
        "the store went back in time: {consumed} < {fed}"
    );
    while *fed < consumed {
        model.observe(&event(*fed));
        *fed += 1;
    }
    let stored: Vec<Profile> = store.profiles().expect("profiles readable");
    let want: Vec<&Profile> = model.profiles().values().collect();
    assert_eq!(
        stored.iter().collect::<Vec<_>>(),
        want,
        "stored profiles differ from learning the first {consumed} events"
    );
    let mut containers = store.containers().expect("containers");
    containers.sort();
    let img = ImageRef::new("docker.io/library/nginx", "1.27");
    let want_containers = model.profile(&img).map_or(0, |p| p.learning.containers);
    assert_eq!(containers.len() as u64, want_containers);
    (consumed, done)
}

#[test]
fn kill_9_during_learning_leaves_a_prefix_and_resumes() {
    let dir = tempfile::tempdir().expect("tmp");
    let recording = dir.path().join("events.jsonl");
    write_recording(&recording);
    let mut round = 0;
    let mut kills = 0;
    let mut progressed = 0;
    // Deterministic pseudo-random kill delays (xorshift).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while kills < MIN_KILLS {
        round += 1;
        assert!(round < 8, "could not get {MIN_KILLS} kills during learning");
        let store_dir: PathBuf = dir.path().join(format!("store{round}"));
        let (mut model, mut fed) = (learner(), 0u64);
        loop {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let delay = Duration::from_millis(60 + x % 340);
            let mut child = spawn(&store_dir, &recording);
            let t = Instant::now();
            let mut running = true;
            while running && t.elapsed() < delay {
                running = child.try_wait().expect("wait").is_none();
                std::thread::sleep(Duration::from_millis(5));
            }
            if running {
                child.kill().expect("SIGKILL"); // kill -9
                kills += 1;
            }
            let status = child.wait().expect("reap");
            let exited = (!running).then_some(status);
            let before = fed;
            let (consumed, done) = check(&store_dir, &mut model, &mut fed);
            eprintln!("cycle: killed={running} after {delay:?}: {consumed} events consumed");
            if consumed > before {
                progressed += 1;
            }
            if let Some(st) = exited {
                assert!(st.success(), "learner failed: {st:?}");
                assert!(done, "a clean exit leaves the window done");
                assert_eq!(consumed, EVENTS);
                break;
            }
            if done {
                // killed after its last checkpoint marked the window done: the
                // window is complete (running again would start a new one)
                assert_eq!(consumed, EVENTS);
                break;
            }
            if kills >= MIN_KILLS {
                // Finish this window without a kill: resume must complete it.
                let out = spawn(&store_dir, &recording)
                    .wait_with_output()
                    .expect("resume");
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(out.status.success(), "{stderr}");
                assert!(stderr.contains("resuming window"), "{stderr}");
                let (consumed, done) = check(&store_dir, &mut model, &mut fed);
                assert!(done && consumed == EVENTS);
                break;
            }
        }
        // The final state equals one uninterrupted pass over the recording.
        if fed == EVENTS {
            let mut once = learner();
            for i in 0..EVENTS {
                once.observe(&event(i));
            }
            let store = Store::open(&store_dir).expect("open");
            assert_eq!(
                store.profiles().expect("profiles"),
                once.into_profiles().into_values().collect::<Vec<_>>()
            );
        }
    }
    eprintln!("{kills} kill -9 cycles over {round} window(s), {progressed} with progress");
    assert!(kills >= MIN_KILLS);
    // Most kills must have landed after some learning, or the test proves little.
    assert!(
        progressed >= MIN_KILLS / 2,
        "only {progressed} cycles made progress"
    );
}
