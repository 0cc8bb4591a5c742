//! Issue 6: events from inside a real containerd container carry the container's
//! name, image repository/tag/digest, start time and privileged flag, resolved
//! over containerd's gRPC API while the live probe runs.
//!
//! Needs root, containerd and ctr (CI: `.ci/setup`); elsewhere a loud SKIP.

use falco_learn_test_support as support;

use falco_learn_event::{Event, EventType};
use falco_learn_probe::container::{CgroupContainer, RuntimeKind};
use falco_learn_probe::runtime::{Lookup, Resolver, RuntimeConfig, Source};
use falco_learn_probe::ProbeConfig;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

fn in_container<'a>(name: &'a str, marker: &'a str) -> impl Fn(&Event) -> bool + 'a {
    move |e| e.container.id == name && e.fd.as_ref().is_some_and(|f| f.name == marker)
}

#[test]
fn containerd_container_events_carry_image_metadata() {
    if !may_run("containerd attribution test", &["containerd", "ctr"]) {
        return;
    }
    let _daemon = Containerd::start();
    let rootfs = busybox_rootfs("ctr");
    let image = CtrImage::import("docker.io/library/fl-busybox:test", &rootfs);
    let live = LiveProbe::start(ProbeConfig::default());

    let pid = std::process::id();
    let name = format!("fl-rt-{pid}");
    let priv_name = format!("fl-rt-priv-{pid}");
    let marker = "/tmp/fl-rt-marker";
    let plain = CtrContainer::run(
        &image.reference,
        &name,
        &[],
        &["/bin/sh", "-c", &format!("touch {marker}; exec sleep 60")],
    );
    let privileged = CtrContainer::run(
        &image.reference,
        &priv_name,
        &["--privileged"],
        &["/bin/sh", "-c", &format!("touch {marker}; exec sleep 60")],
    );

    let ev = live.wait_for(
        "open of the marker in the container",
        15,
        in_container(&name, marker),
    );
    let c = &ev.container;
    assert_eq!(c.id, name);
    assert_eq!(c.name, name);
    assert_eq!(c.runtime, "containerd");
    assert_eq!(c.image_repository, "docker.io/library/fl-busybox");
    assert_eq!(c.image_tag, "test");
    assert_eq!(c.image_digest, image.digest);
    assert_eq!(c.image(), "docker.io/library/fl-busybox:test");
    assert_eq!(c.privileged, Some(false));
    // the init's start: not the container record's creation
    assert_eq!(c.start_ts, plain.start_ns());
    assert_eq!((c.k8s_ns.as_str(), c.k8s_pod.as_str()), ("", ""));
    assert_eq!(ev.process.comm, "touch");

    // every event of the container, from its first exec on, carries the same
    let exec = live.wait_for("exec of sleep", 15, |e| {
        e.container.id == name
            && e.event_type() == EventType::Execve
            && e.process.exepath == "/bin/busybox"
            && e.process.args.first().map(String::as_str) == Some("60")
    });
    assert_eq!(exec.container, ev.container);

    let pev = live.wait_for(
        "open of the marker in the privileged container",
        15,
        in_container(&priv_name, marker),
    );
    assert_eq!(pev.container.name, priv_name);
    assert_eq!(
        pev.container.image_repository,
        "docker.io/library/fl-busybox"
    );
    assert_eq!(pev.container.image_digest, image.digest);
    assert_eq!(pev.container.privileged, Some(true));
    assert_eq!(pev.container.start_ts, privileged.start_ns());

    // no event of either container went out without its metadata: the first
    // ones waited (bounded) for the lookup
    let ours = live.matching(|e| e.container.id == name || e.container.id == priv_name);
    let bare: Vec<_> = ours
        .iter()
        .filter(|e| e.container.image_repository.is_empty())
        .map(|e| (e.event_type(), e.process.comm.clone()))
        .collect();
    assert!(bare.is_empty(), "events without metadata: {bare:?}");

    let stats = live.probe.runtime_stats().expect("resolver on");
    assert_eq!(stats.hold_timeouts, 0, "{stats:?}");
    assert!(stats.resolved >= 2, "{stats:?}");
    eprintln!(
        "runtime stats: {stats:?}; mean lookup {} us, max {} us over {} lookups; {} events of the 2 containers",
        stats.lookup_ns_total / stats.resolved.max(1) / 1000,
        stats.lookup_ns_max / 1000,
        stats.resolved,
        ours.len()
    );
    drop(plain);
    drop(privileged);

    // a container deleted before anyone looked it up keeps its image: the
    // resolver follows containerd's create events
    let r = Resolver::start(RuntimeConfig {
        retry_after: Duration::ZERO,
        ..RuntimeConfig::default()
    })
    .expect("resolver");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !r.watching_containerd() {
        assert!(
            Instant::now() < deadline,
            "no containerd event subscription"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // the request is on its way; give containerd a moment to register it
    std::thread::sleep(Duration::from_millis(300));
    let quick = format!("fl-rt-quick-{pid}");
    must(Command::new("ctr").args([
        "containers",
        "create",
        &image.reference,
        &quick,
        "/bin/true",
    ]));
    must(Command::new("ctr").args(["containers", "delete", &quick]));
    let cc = Arc::new(CgroupContainer {
        full_id: quick.clone(),
        namespace: Some("default".into()),
        runtime: RuntimeKind::Containerd,
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let meta = loop {
        if let Lookup::Ready(m) = r.lookup(&cc) {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "deleted container not resolved: {:?}",
            r.stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(meta.source, Source::ContainerdEvent);
    assert_eq!(meta.name, quick);
    assert_eq!(meta.image.repository, "docker.io/library/fl-busybox");
    assert_eq!(meta.image.tag, "test");
    assert_eq!(meta.image.digest, image.digest);
    assert!(r.stats().not_found == 0, "{:?}", r.stats());

    drop(image);
}
