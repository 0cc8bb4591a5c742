//! Every declared metric is emitted, with exactly its declared labels, and
//! nothing undeclared is: the pipeline runs once through every path that
//! counts (rule and anomaly alerts, a kill, an unprofiled image, losses, a
//! drop alert, a reload, a broken profile, an output, enforce-kill, the
//! resolver) under a recorder that notes what is registered.
//!
//! A metric declared in `enforcer/src/metrics.rs` but never emitted fails
//! here; so does one emitted under a name or labels not declared there.

use falco_learn_enforcer::binding::ContainerMaps;
use falco_learn_enforcer::config::Outputs as OutputsConfig;
use falco_learn_enforcer::metrics::{self as m, Kind};
use falco_learn_enforcer::outputs::Outputs;
use falco_learn_enforcer::pipeline::{Control, DropAlerts, Options, Pipeline};
use falco_learn_enforcer::source::{Filtered, Loss, LossStage, Next, RuntimeStats, Source};
use falco_learn_enforcer::{Engine, ProfilesFrom};
use falco_learn_event::Event;
use falco_learn_rules::Priority;
use falco_learn_test_support::write_profile;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Seen = BTreeMap<(String, Kind), BTreeSet<Vec<String>>>;

/// Notes each registration: (name, kind) → the label name lists used.
#[derive(Default)]
struct Noting(Mutex<Seen>);

impl Noting {
    fn note(&self, key: &Key, kind: Kind) {
        let labels: Vec<String> = key.labels().map(|l| l.key().to_string()).collect();
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((key.name().to_string(), kind))
            .or_default()
            .insert(labels);
    }
}

impl Recorder for Noting {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.note(key, Kind::Counter);
        Counter::noop()
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.note(key, Kind::Gauge);
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.note(key, Kind::Histogram);
        Histogram::noop()
    }
}

struct Recorded(Arc<Noting>);
impl Recorder for Recorded {
    fn describe_counter(&self, k: KeyName, u: Option<Unit>, d: SharedString) {
        self.0.describe_counter(k, u, d)
    }
    fn describe_gauge(&self, k: KeyName, u: Option<Unit>, d: SharedString) {
        self.0.describe_gauge(k, u, d)
    }
    fn describe_histogram(&self, k: KeyName, u: Option<Unit>, d: SharedString) {
        self.0.describe_histogram(k, u, d)
    }
    fn register_counter(&self, k: &Key, m: &Metadata<'_>) -> Counter {
        self.0.register_counter(k, m)
    }
    fn register_gauge(&self, k: &Key, m: &Metadata<'_>) -> Gauge {
        self.0.register_gauge(k, m)
    }
    fn register_histogram(&self, k: &Key, m: &Metadata<'_>) -> Histogram {
        self.0.register_histogram(k, m)
    }
}

struct FakeKill;
impl ContainerMaps for FakeKill {
    fn what(&self) -> &'static str {
        "fake"
    }
    fn set_profile(&self, _: u32, p: &falco_learn_profiler::Profile) -> Result<String, String> {
        Ok(format!("{}", p.exec.len()))
    }
    fn drop_profile(&self, _: u32) {}
    fn enforce(&self, _: u64, _: u32) -> Result<(), String> {
        Ok(())
    }
    fn release(&self, _: u64) {}
    fn owner(
        &self,
        _: falco_learn_probe::kill::CgroupClaim<'_>,
    ) -> falco_learn_probe::kill::CgroupOwner {
        falco_learn_probe::kill::CgroupOwner::Container {
            dir: None,
            top: None,
        }
    }
    /// One kill whose event was lost, in a cgroup never bound.
    fn unreported_kills(&self) -> Vec<(u64, u64)> {
        vec![(77, 1)]
    }
}

/// The seed's events a second apart (the last exec killed), one event of
/// an image without a profile, and losses at every stage.
struct Everything {
    events: Vec<Event>,
    now: u64,
    lost: u64,
}

impl Source for Everything {
    fn next(&mut self, _: Duration) -> Next {
        if self.events.is_empty() {
            return Next::End;
        }
        let ev = self.events.remove(0);
        self.now = ev.ts;
        self.lost += 100;
        Next::Event(Box::new(ev))
    }
    fn now(&self) -> u64 {
        self.now
    }
    fn losses(&self) -> Vec<Loss> {
        [
            ("execve", LossStage::KernelRingbuf),
            ("any", LossStage::Decode),
        ]
        .into_iter()
        .map(|(kind, stage)| Loss {
            kind,
            stage,
            total: self.lost,
        })
        .collect()
    }
    fn hostname(&self) -> String {
        "node-1".into()
    }
    fn kill_maps(&self) -> Option<&dyn ContainerMaps> {
        Some(&FakeKill)
    }
    fn filter_maps(&self) -> Option<&dyn ContainerMaps> {
        Some(&FakeKill)
    }
    fn kernel_filtered(&self) -> Vec<Filtered> {
        vec![Filtered {
            kind: "openat",
            reason: "profile",
            total: self.lost,
        }]
    }
    fn runtime_stats(&self) -> Option<RuntimeStats> {
        Some(RuntimeStats::default())
    }
}

/// One reload, asked for at the start.
struct ReloadOnce(AtomicBool);
impl Control for ReloadOnce {
    fn take_reload(&self) -> bool {
        !self.0.swap(true, Ordering::SeqCst)
    }
}

#[test]
fn every_declared_metric_is_emitted_with_its_labels_and_nothing_else() {
    let noting = Arc::new(Noting::default());
    metrics::set_global_recorder(Recorded(noting.clone())).expect("the only recorder");

    let dir = tempfile::tempdir().expect("tmp");
    write_profile(
        dir.path(),
        "docker.io/library/nginx",
        "1.27",
        &["/usr/sbin/nginx"],
    );
    std::fs::write(dir.path().join("broken.yaml"), "schema_version: [").expect("write");
    let profiles = dir.path().to_path_buf();
    let build = move || {
        Engine::build(
            &[],
            Priority::Debug,
            ProfilesFrom::Dir {
                path: &profiles,
                allow_empty: false,
            },
            Priority::Warning,
            "",
        )
        .map(|(e, _)| e)
        .map_err(|e| e.to_string())
    };

    let seed = include_str!("../../rules/tests/fixtures/seed.jsonl");
    let mut events: Vec<Event> = seed
        .lines()
        .map(|l| serde_json::from_str(l).expect("seed event"))
        .collect();
    for ev in &mut events {
        ev.cgroup_id = 4242;
    }
    std::sync::Arc::make_mut(&mut events[3].process)
        .exe_flags
        .killed = true;
    // the same exec outside the profile, not killed in the kernel and before its cgroup was
    // bound (the seed's times are long past): enforce-kill kills it from userspace, so it
    // is a real process of ours
    let mut child = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep");
    let mut late = events[3].clone();
    {
        let p = std::sync::Arc::make_mut(&mut late.process);
        p.exe_flags.killed = false;
        p.pid = child.id();
        p.start_ts = falco_learn_probe::procfs::Stat::read(child.id())
            .map(|s| falco_learn_probe::procfs::ticks_to_epoch_ns(s.starttime))
            .expect("the child's start");
    }
    events.insert(4, late);
    let mut other = events[0].clone();
    other.ts += 10_000_000_000;
    std::sync::Arc::make_mut(&mut other.container).image_repository =
        "docker.io/library/redis".into();
    std::sync::Arc::make_mut(&mut other.container).id = "0123456789ab".into();
    events.push(other);
    let mut source = Everything {
        events,
        now: 0,
        lost: 0,
    };

    let mut cfg = OutputsConfig::default();
    cfg.stdout.enabled = false;
    cfg.file.enabled = true;
    cfg.file.filename = dir.path().join("alerts.json");
    let mut outputs = Outputs::new(&cfg).expect("outputs");
    let opts = Options {
        drops: DropAlerts {
            threshold: 0.5,
            rate_limit: Duration::ZERO,
        },
        rebuild: Some(Arc::new(build.clone())),
        ..Options::default()
    };
    let control = ReloadOnce(AtomicBool::new(false));
    let engine = build().expect("engine");
    let summary = Pipeline::new(engine, &mut source, &mut outputs, &control, opts)
        .run()
        .expect("run");
    // the kernel's kill, and the late one
    assert_eq!(summary.kills, 2);
    let st = child.wait().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(libc::SIGKILL),
        "{st:?}"
    );
    assert!(summary.drop_alerts > 0, "{summary:?}");

    let seen = noting.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for metric in m::ALL {
        let labels = seen
            .get(&(metric.name.to_string(), metric.kind))
            .unwrap_or_else(|| {
                panic!(
                    "{} ({:?}) is declared and never emitted",
                    metric.name, metric.kind
                )
            });
        let want: BTreeSet<Vec<String>> = [metric.labels.iter().map(|l| l.to_string()).collect()]
            .into_iter()
            .collect();
        assert_eq!(labels, &want, "labels of {}", metric.name);
    }
    for (name, kind) in seen.keys() {
        assert!(
            m::ALL.iter().any(|d| d.name == name && d.kind == *kind),
            "{name} ({kind:?}) is emitted and not declared in enforcer/src/metrics.rs"
        );
    }
}
