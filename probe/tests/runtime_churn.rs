//! Issue 6, robustness: 50 short-lived containers of two images started and
//! stopped while the probe runs. Every event of every one of them carries the
//! image of the container that produced it (no misattribution, none left
//! without metadata), and once they are gone the metadata cache drops them all
//! (no leak: the cache returns to its size before the churn).
//!
//! Needs root, containerd and ctr; elsewhere a loud SKIP.

use falco_learn_test_support as support;

use falco_learn_probe::ProbeConfig;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const CONTAINERS: usize = 50;
const PARALLEL: usize = 5;

#[test]
fn churn_of_50_containers_no_misattribution_no_leak() {
    if !may_run("container churn test", &["containerd", "ctr"]) {
        return;
    }
    let _daemon = Containerd::start();
    let rootfs = busybox_rootfs("churn");
    let images = [
        CtrImage::import("docker.io/library/fl-churn-a:test", &rootfs),
        CtrImage::import("docker.io/library/fl-churn-b:test", &rootfs),
    ];
    assert_ne!(images[0].digest, images[1].digest);
    let live = LiveProbe::start(ProbeConfig::default());
    let before = live.probe.runtime_stats().expect("resolver on");

    let pid = std::process::id();
    let name = |i: usize| format!("fl-churn-{pid}-{i}");
    let marker = "/tmp/fl-churn-marker";
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..PARALLEL {
            let images = &images;
            s.spawn(move || {
                for i in (t..CONTAINERS).step_by(PARALLEL) {
                    must(
                        Command::new("ctr")
                            .args(["run", "--rm", "--net-host"])
                            .arg(&images[i % 2].reference)
                            .arg(name(i))
                            .args(["/bin/sh", "-c", &format!("touch {marker}; sleep 0.3")])
                            .stdin(Stdio::null()),
                    );
                }
            });
        }
    });
    let churn_time = started.elapsed();

    // every container's marker open arrives, filled
    for i in 0..CONTAINERS {
        let n = name(i);
        live.wait_for(&format!("marker of {n}"), 15, |e| {
            e.container.id == n && e.fd.as_ref().is_some_and(|f| f.name == marker)
        });
    }
    let prefix = format!("fl-churn-{pid}-");
    let ours = live.matching(|e| e.container.id.starts_with(&prefix));
    let mut per_container: BTreeMap<String, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for e in &ours {
        let i: usize = e.container.id[prefix.len()..]
            .parse()
            .unwrap_or_else(|_| panic!("unexpected container id {}", e.container.id));
        let want = &images[i % 2];
        let (repo, tag) = want
            .reference
            .rsplit_once(':')
            .unwrap_or((&want.reference, ""));
        let c = &e.container;
        if c.name != c.id
            || c.image_repository != repo
            || c.image_tag != tag
            || c.image_digest != want.digest
            || c.runtime != "containerd"
        {
            wrong.push(format!(
                "{} ({:?} by {}): name={} image={}:{} digest={}",
                c.id,
                e.event_type(),
                e.process.comm,
                c.name,
                c.image_repository,
                c.image_tag,
                c.image_digest
            ));
        }
        *per_container.entry(c.id.clone()).or_default() += 1;
    }
    assert_eq!(per_container.len(), CONTAINERS);
    assert!(
        wrong.is_empty(),
        "{} of {} events misattributed or without metadata:\n{}\nresolver: {:?} → {:?}",
        wrong.len(),
        ours.len(),
        wrong.join("\n"),
        before,
        live.probe.runtime_stats()
    );

    // once their processes are gone from the process table (10 s linger), the
    // cache drops every one of them
    let resolver = live.probe.resolver().expect("resolver on");
    let evict_start = Instant::now();
    let deadline = evict_start + Duration::from_secs(40);
    loop {
        let left: Vec<String> = (0..CONTAINERS)
            .map(|i| format!("default/{}", name(i)))
            .filter(|k| resolver.is_cached(k))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cache still holds {} churned containers: {left:?}",
            left.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = live.probe.runtime_stats().expect("resolver on");
    let resolved = after.resolved - before.resolved;
    assert!(resolved >= CONTAINERS as u64, "{before:?} → {after:?}");
    assert_eq!(after.failures, before.failures, "{before:?} → {after:?}");
    assert_eq!(
        after.hold_timeouts, before.hold_timeouts,
        "{before:?} → {after:?}"
    );
    assert!(after.evicted - before.evicted >= CONTAINERS as u64);
    eprintln!(
        "churn: {CONTAINERS} containers in {churn_time:?} ({PARALLEL} at a time), {} events; \
         {resolved} lookups, mean {} us, max {} us; cache {} before, {} after, evicted {} \
         ({:?} after the churn ended)",
        ours.len(),
        (after.lookup_ns_total - before.lookup_ns_total) / resolved.max(1) / 1000,
        after.lookup_ns_max / 1000,
        before.cache_entries,
        after.cache_entries,
        after.evicted - before.evicted,
        evict_start.elapsed(),
    );
    if in_ci() {
        // nothing else runs containers in CI: back to the size before the churn
        assert_eq!(after.cache_entries, before.cache_entries);
    }
    drop(live);
    drop(images);
}
