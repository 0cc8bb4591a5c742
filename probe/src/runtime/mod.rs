//! Container runtime metadata: container id → name, image (repository, tag,
//! digest), start time, privileged flag, Kubernetes pod, mounts.
//!
//! The probe knows a container only by its cgroup path ([`crate::container`]).
//! [`Resolver`] asks the runtime that made it, **off the hot path**: the reader
//! thread calls [`Resolver::lookup`], which answers from a cache by container id
//! or queues a request (never waits), and a background thread running a small
//! single-threaded tokio runtime does the lookups and fills the cache.
//!
//! Sources, tried in this order for each kind of cgroup path:
//!
//! | cgroup form | sources |
//! |---|---|
//! | `/<ns>/<id>` (ctr), `cri-containerd-<id>.scope` (`k8s.io`) | containerd gRPC ([`containerd`]); for `k8s.io` then CRI ([`cri`]) |
//! | `/kubepods/…/<id>` (cgroupfs driver, runtime unknown) | containerd `k8s.io`, then CRI (CRI-O, containerd's CRI plugin), then Docker Engine API |
//! | `docker-<id>.scope`, `/docker/<id>` | Docker Engine API ([`engine`]) |
//! | `libpod-<id>` | Podman Engine API, then podman's `containers.json` ([`podman_disk`]) |
//! | `crio-<id>` | CRI on CRI-O's socket ([`cri`]) |
//!
//! Sockets come from [`RuntimeConfig`]; the defaults are the usual paths, and a
//! socket that does not exist is skipped silently (that runtime is not installed).
//! A socket that exists but does not answer gets **one** warning per socket and
//! the `unreachable` counter; lookups are bounded by a timeout, so nothing stalls.
//!
//! Cache: one slot per container (pending, resolved, or failed with a retry
//! time). Slots of containers that no longer have a process in the process
//! table are evicted by [`Resolver::retain_live`] (the reader's periodic sweep),
//! and the cache never holds more than [`RuntimeConfig::cache_max`] slots.
//! Metadata already attached to events stays with them: a container that
//! exited before its lookup finished keeps its cgroup id and runtime, and the
//! events held for it ([`crate::enrich::Enricher::push`]) go out after at most
//! [`RuntimeConfig::hold`].

pub mod containerd;
pub mod cri;
pub mod engine;
pub mod podman_disk;
pub mod reference;

use crate::container::{CgroupContainer, RuntimeKind};
use ahash::{AHashMap, AHashSet};
use falco_learn_event::{Container, Mount};
use reference::Reference;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where the metadata came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    #[default]
    Containerd,
    /// containerd's `/containers/create` event (the container was gone before its lookup).
    ContainerdEvent,
    EngineApi,
    PodmanStorage,
    /// The Kubernetes CRI API (CRI-O, containerd's CRI plugin).
    Cri,
}

/// What a runtime told us about one container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerMeta {
    /// Full id as the runtime knows it.
    pub id: String,
    pub name: String,
    pub image: Reference,
    /// Image id (`sha256:…` of the config) when the runtime gives it.
    pub image_id: String,
    pub privileged: Option<bool>,
    /// The container's init process (host pid) as the runtime reports it: the
    /// task's pid (containerd), CRI's verbose `info.pid`, the Engine API's
    /// `State.Pid`, podman's `pidfile`; 0 when it has none (no task yet, or it
    /// ended).
    pub init_pid: u32,
    /// `container.start_ts`, ns since the epoch, one definition for every
    /// source: when the container's init process started (its `/proc` start
    /// time, at clock-tick resolution, on the same boot clock as
    /// `proc.start_ts`). Not a creation time (a container record, a create
    /// event), and not a runtime's own "started at" (CRI `started_at`,
    /// `State.StartedAt`, recorded when the start call returns): those differ
    /// from one runtime to the next, and a lookup between a task's creation and
    /// its start used to get the creation time. 0 when unknown (the init has
    /// gone, or is not the container's: a reused pid). Set by [`settle_start`]
    /// after whichever source answered; the sources leave it 0.
    pub start_ts: u64,
    /// `containerd`, `cri-o`, `docker`, `podman` (`cri` for another CRI runtime).
    pub runtime: &'static str,
    pub k8s_ns: String,
    pub k8s_pod: String,
    pub k8s_pod_uid: String,
    pub k8s_pod_labels: BTreeMap<String, String>,
    pub mounts: Vec<Mount>,
    pub source: Source,
}

impl ContainerMeta {
    /// Copy into an event's container (its `id` stays Falco's short id).
    pub fn fill(&self, c: &mut Container) {
        c.name = self.name.clone();
        c.image_repository = self.image.repository.clone();
        c.image_tag = self.image.tag.clone();
        c.image_digest = self.image.digest.clone();
        c.privileged = self.privileged;
        c.start_ts = self.start_ts;
        c.runtime = self.runtime.to_string();
        c.k8s_ns = self.k8s_ns.clone();
        c.k8s_pod = self.k8s_pod.clone();
        c.k8s_pod_uid = self.k8s_pod_uid.clone();
        c.k8s_pod_labels = self.k8s_pod_labels.clone();
        c.mounts = self.mounts.clone();
    }
}

/// Why one source could not answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LookupError {
    #[error("the runtime does not know this container")]
    NotFound,
    #[error("runtime socket {socket} is unreachable: {err}")]
    Unreachable { socket: String, err: String },
    #[error("{0}")]
    Protocol(String),
    #[error("cannot read {path}: {err}")]
    Io { path: String, err: String },
    #[error("no lookup within {0:?}")]
    Timeout(Duration),
    #[error("no source can resolve {0} containers")]
    Unsupported(&'static str),
}

/// Resolver settings (part of [`crate::ProbeConfig`]). The agent's
/// configuration file's `container_runtimes` section is this type (missing
/// keys take [`RuntimeConfig::default`]; the internal limits are not in the
/// file).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Resolve metadata at all (off: events carry the cgroup id and runtime only).
    pub enabled: bool,
    /// containerd sockets, first existing one used.
    pub containerd_sockets: Vec<PathBuf>,
    /// CRI sockets (CRI-O), every existing one asked in order. For Kubernetes
    /// containers the containerd socket (its CRI plugin) is asked after these.
    pub cri_sockets: Vec<PathBuf>,
    /// Docker Engine API sockets, first existing one used.
    pub docker_sockets: Vec<PathBuf>,
    /// Podman API sockets (`podman system service`), first existing one used.
    pub podman_sockets: Vec<PathBuf>,
    /// Podman storage root for the on-disk fallback (`None`, or empty in the
    /// file: no fallback).
    #[serde(deserialize_with = "optional_path")]
    pub podman_storage: Option<PathBuf>,
    /// Podman's run root, where the on-disk fallback finds a container's init
    /// pid (`overlay-containers/<id>/userdata/pidfile`; `None`: start unknown).
    #[serde(deserialize_with = "optional_path")]
    pub podman_run_root: Option<PathBuf>,
    /// Bound on one container's lookup (all its sources together).
    #[serde(with = "falco_learn_event::time::duration")]
    pub lookup_timeout: Duration,
    /// How long events of a container being looked up wait for its metadata at
    /// most. They go out as soon as the lookup answers (a few ms on an idle
    /// node), so the default is the lookup's own bound: a lookup slowed by a
    /// busy runtime still fills them, and an event goes out without an image
    /// only when its container's lookup failed or timed out.
    #[serde(with = "falco_learn_event::time::duration")]
    pub hold: Duration,
    /// Events held at most (past that the oldest goes out as it is).
    #[serde(skip)]
    pub hold_max_events: usize,
    /// Cache slots at most.
    #[serde(skip)]
    pub cache_max: usize,
    /// A failed lookup is retried on a later event after this long.
    #[serde(skip)]
    pub retry_after: Duration,
    /// Requests queued for the resolver thread at most.
    #[serde(skip)]
    pub queue_len: usize,
}

/// `null` and `""` are no path.
fn optional_path<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    use serde::Deserialize;
    Ok(Option::<PathBuf>::deserialize(d)?.filter(|p| !p.as_os_str().is_empty()))
}

fn paths(p: &[&str]) -> Vec<PathBuf> {
    p.iter().map(PathBuf::from).collect()
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            enabled: true,
            containerd_sockets: paths(&[
                "/run/containerd/containerd.sock",
                "/var/run/containerd/containerd.sock",
                "/run/k3s/containerd/containerd.sock",
            ]),
            cri_sockets: paths(&["/run/crio/crio.sock", "/var/run/crio/crio.sock"]),
            docker_sockets: paths(&["/run/docker.sock", "/var/run/docker.sock"]),
            podman_sockets: paths(&["/run/podman/podman.sock", "/var/run/podman/podman.sock"]),
            podman_storage: Some(PathBuf::from("/var/lib/containers/storage")),
            podman_run_root: Some(PathBuf::from("/run/containers/storage")),
            lookup_timeout: Duration::from_secs(2),
            hold: Duration::from_secs(2),
            hold_max_events: 4096,
            cache_max: 8192,
            retry_after: Duration::from_secs(10),
            queue_len: 1024,
        }
    }
}

/// Resolver counters (monotonic unless noted).
#[derive(Debug, Default)]
pub struct RuntimeCounters {
    /// Lookups started.
    pub lookups: AtomicU64,
    /// Lookups that produced metadata.
    pub resolved: AtomicU64,
    /// Lookups that produced nothing (every source failed or none applies).
    pub failures: AtomicU64,
    /// Of the failures: no source knew the container (it exited and was removed first).
    pub not_found: AtomicU64,
    /// Attempts on a socket that exists but did not answer.
    pub unreachable: AtomicU64,
    /// Lookups over [`RuntimeConfig::lookup_timeout`].
    pub timeouts: AtomicU64,
    /// Requests dropped because the resolver queue was full (retried on a later event).
    pub queue_full: AtomicU64,
    /// Cache slots evicted (container gone, or the cache full).
    pub evicted: AtomicU64,
    /// Held events released without metadata because the hold ran out.
    pub hold_timeouts: AtomicU64,
    /// Held events released early because the hold queue was full.
    pub hold_overflow: AtomicU64,
    /// Sum and maximum of the latencies of successful lookups, ns.
    pub lookup_ns_total: AtomicU64,
    pub lookup_ns_max: AtomicU64,
}

/// A snapshot of the counters plus the cache size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    pub lookups: u64,
    pub resolved: u64,
    pub failures: u64,
    pub not_found: u64,
    pub unreachable: u64,
    pub timeouts: u64,
    pub queue_full: u64,
    pub evicted: u64,
    pub hold_timeouts: u64,
    pub hold_overflow: u64,
    pub lookup_ns_total: u64,
    pub lookup_ns_max: u64,
    /// Cache slots now (gauge).
    pub cache_entries: u64,
}

/// The answer of a cache lookup.
#[derive(Debug, Clone)]
pub enum Lookup {
    Ready(Arc<ContainerMeta>),
    /// Being looked up: hold the event briefly.
    Pending,
    /// Not available (failed recently, unsupported runtime, or resolution off).
    Unavailable,
}

enum Slot {
    Pending,
    Ready {
        meta: Arc<ContainerMeta>,
        used: Instant,
    },
    Failed {
        at: Instant,
    },
}

struct Request {
    key: String,
    container: Arc<CgroupContainer>,
    asked: Instant,
    /// The process whose event asked (0: none), see `lookup_settled`.
    pid: u32,
}

struct Shared {
    cfg: RuntimeConfig,
    cache: Mutex<AHashMap<String, Slot>>,
    counters: RuntimeCounters,
    /// Sockets already warned about (one warning each).
    warned: Mutex<AHashSet<String>>,
    /// containerd connections by socket.
    containerd: Mutex<AHashMap<PathBuf, containerd_client::tonic::transport::Channel>>,
    /// CRI connections by socket, with the runtime's name (from CRI `Version`).
    cri: Mutex<AHashMap<PathBuf, (containerd_client::tonic::transport::Channel, &'static str)>>,
    /// containerd containers seen created, by `<namespace>/<id>` (bounded, see [`remember`]).
    created: Mutex<AHashMap<String, (containerd::Created, Instant)>>,
    /// Whether the create-event subscription is up now.
    watching: std::sync::atomic::AtomicBool,
}

/// Create events kept at most; older ones go first past this.
const CREATED_MAX: usize = 4096;
/// Create events are useful for this long (a lookup runs within milliseconds).
const CREATED_KEEP: Duration = Duration::from_secs(120);

fn remember(shared: &Shared, c: containerd::Created) {
    let mut m = lock(&shared.created);
    if m.len() >= CREATED_MAX {
        m.retain(|_, (_, at)| at.elapsed() < CREATED_KEEP);
        if m.len() >= CREATED_MAX {
            m.clear();
        }
    }
    m.insert(format!("{}/{}", c.namespace, c.id), (c, Instant::now()));
}

/// The cache key of a container: namespace-qualified for containerd's `/<ns>/<id>`.
pub fn cache_key(c: &CgroupContainer) -> String {
    match &c.namespace {
        Some(ns) => format!("{ns}/{}", c.full_id),
        None => c.full_id.clone(),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The metadata resolver: a cache shared with a background lookup thread.
pub struct Resolver {
    shared: Arc<Shared>,
    tx: tokio::sync::mpsc::Sender<Request>,
}

impl Resolver {
    /// Start the lookup thread.
    pub fn start(cfg: RuntimeConfig) -> std::io::Result<Arc<Resolver>> {
        let (tx, rx) = tokio::sync::mpsc::channel(cfg.queue_len.max(1));
        let shared = Arc::new(Shared {
            cfg,
            cache: Mutex::new(AHashMap::new()),
            counters: RuntimeCounters::default(),
            warned: Mutex::new(AHashSet::new()),
            containerd: Mutex::new(AHashMap::new()),
            cri: Mutex::new(AHashMap::new()),
            created: Mutex::new(AHashMap::new()),
            watching: std::sync::atomic::AtomicBool::new(false),
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let s = shared.clone();
        std::thread::Builder::new()
            .name("falco-learn-runtime".into())
            .spawn(move || rt.block_on(serve(s, rx)))?;
        Ok(Arc::new(Resolver { shared, tx }))
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.shared.cfg
    }

    pub fn counters(&self) -> &RuntimeCounters {
        &self.shared.counters
    }

    /// Counters and cache size now.
    pub fn stats(&self) -> RuntimeStats {
        let c = &self.shared.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RuntimeStats {
            lookups: g(&c.lookups),
            resolved: g(&c.resolved),
            failures: g(&c.failures),
            not_found: g(&c.not_found),
            unreachable: g(&c.unreachable),
            timeouts: g(&c.timeouts),
            queue_full: g(&c.queue_full),
            evicted: g(&c.evicted),
            hold_timeouts: g(&c.hold_timeouts),
            hold_overflow: g(&c.hold_overflow),
            lookup_ns_total: g(&c.lookup_ns_total),
            lookup_ns_max: g(&c.lookup_ns_max),
            cache_entries: lock(&self.shared.cache).len() as u64,
        }
    }

    /// Metadata of `c` if known; otherwise start a lookup (never blocks).
    pub fn lookup(&self, c: &Arc<CgroupContainer>) -> Lookup {
        self.lookup_for(c, 0)
    }

    /// [`Resolver::lookup`] for an event of process `pid` of the container:
    /// when the runtime reports no init yet (the task is being created), the
    /// init is found in the container's cgroup through that process (see
    /// `lookup_settled`, `settle_start_later`), so the container's start time
    /// does not depend on when the lookup ran (events before it is settled
    /// carry none).
    pub fn lookup_for(&self, c: &Arc<CgroupContainer>, pid: u32) -> Lookup {
        let key = cache_key(c);
        let now = Instant::now();
        let mut cache = lock(&self.shared.cache);
        match cache.get_mut(&key) {
            Some(Slot::Ready { meta, used }) => {
                *used = now;
                return Lookup::Ready(meta.clone());
            }
            Some(Slot::Pending) => return Lookup::Pending,
            Some(Slot::Failed { at }) if now.duration_since(*at) < self.shared.cfg.retry_after => {
                return Lookup::Unavailable
            }
            _ => {}
        }
        if !cache.contains_key(&key) && cache.len() >= self.shared.cfg.cache_max {
            evict_one(&mut cache, &self.shared.counters);
        }
        let req = Request {
            key: key.clone(),
            container: c.clone(),
            asked: now,
            pid,
        };
        match self.tx.try_send(req) {
            Ok(()) => {
                cache.insert(key, Slot::Pending);
                self.shared.counters.lookups.fetch_add(1, Ordering::Relaxed);
                Lookup::Pending
            }
            Err(_) => {
                self.shared
                    .counters
                    .queue_full
                    .fetch_add(1, Ordering::Relaxed);
                Lookup::Unavailable
            }
        }
    }

    /// The cache state of `c` without starting a lookup or touching its use time.
    pub fn peek(&self, c: &CgroupContainer) -> Lookup {
        match lock(&self.shared.cache).get(&cache_key(c)) {
            Some(Slot::Ready { meta, .. }) => Lookup::Ready(meta.clone()),
            Some(Slot::Pending) => Lookup::Pending,
            _ => Lookup::Unavailable,
        }
    }

    /// Whether containerd's create events are being followed now.
    pub fn watching_containerd(&self) -> bool {
        self.shared.watching.load(Ordering::Relaxed)
    }

    /// Whether the cache has a slot for `key` (see [`cache_key`]).
    pub fn is_cached(&self, key: &str) -> bool {
        lock(&self.shared.cache).contains_key(key)
    }

    /// Evict every resolved or failed slot whose key is not in `live` (the
    /// containers that still have a process). Pending slots stay until answered.
    pub fn retain_live(&self, live: &AHashSet<String>) -> usize {
        let mut cache = lock(&self.shared.cache);
        let before = cache.len();
        cache.retain(|k, s| matches!(s, Slot::Pending) || live.contains(k));
        let n = before - cache.len();
        self.shared
            .counters
            .evicted
            .fetch_add(n as u64, Ordering::Relaxed);
        n
    }
}

/// Make room: the least recently used resolved slot, else any failed one.
fn evict_one(cache: &mut AHashMap<String, Slot>, counters: &RuntimeCounters) {
    let victim = cache
        .iter()
        .filter_map(|(k, s)| match s {
            Slot::Ready { used, .. } => Some((*used, k)),
            Slot::Failed { at } => Some((*at, k)),
            Slot::Pending => None,
        })
        .min_by_key(|(t, _)| *t)
        .map(|(_, k)| k.clone());
    if let Some(k) = victim {
        cache.remove(&k);
        counters.evicted.fetch_add(1, Ordering::Relaxed);
    }
}

async fn serve(shared: Arc<Shared>, mut rx: tokio::sync::mpsc::Receiver<Request>) {
    // ends with this function (the runtime is dropped when the requests stop)
    tokio::spawn(watch_containerd(shared.clone()));
    while let Some(req) = rx.recv().await {
        tokio::spawn(resolve(shared.clone(), req));
    }
}

/// How often the container's init is looked for again while it is not known.
const START_POLL: Duration = Duration::from_millis(20);

/// How long a lookup looks for the container's init before it answers with
/// the start unknown ([`settle_start_later`] goes on after): the container's
/// first events wait for the answer.
const INIT_POLL_MAX: Duration = Duration::from_millis(50);

/// The sources' answer with its start time settled. The init is the process
/// the runtime reports ([`settle_start`]) or the same process found through
/// the one whose event asked ([`crate::procfs::container_init`]: the oldest
/// process of the container's cgroup inside a pid namespace below the
/// host's). A container's first events can come while its runtime is still
/// creating the task (`runc init`'s first stages, before the init exists and
/// before the runtime has a pid): then this looks again every [`START_POLL`]
/// until `poll_until` ([`INIT_POLL_MAX`], or a quarter of the hold of those
/// events when that is shorter, so they are not delayed past it), and [`settle_start_later`] goes on after the answer.
async fn lookup_settled(
    shared: &Shared,
    c: &CgroupContainer,
    asking_pid: u32,
    poll_until: tokio::time::Instant,
) -> Result<ContainerMeta, LookupError> {
    let mut meta = lookup_sources(shared, c).await?;
    settle_start(&mut meta, &c.full_id, crate::procfs::start_ts_in_cgroup);
    while !try_settle(shared, c, asking_pid, &mut meta).await
        && tokio::time::Instant::now() + START_POLL < poll_until
    {
        tokio::time::sleep(START_POLL).await;
    }
    Ok(meta)
}

/// Whether `meta`'s start is known, after one more attempt when it is not:
/// the init through the asking process while that is in the container, else
/// the runtime asked again for its pid.
async fn try_settle(
    shared: &Shared,
    c: &CgroupContainer,
    asking_pid: u32,
    meta: &mut ContainerMeta,
) -> bool {
    if meta.start_ts != 0 {
        return true;
    }
    let (id, asking) = (c.full_id.clone(), asking_pid);
    let local = tokio::task::spawn_blocking(move || {
        if crate::procfs::start_ts_in_cgroup(asking, &id).is_none() {
            return Err(());
        }
        Ok(crate::procfs::container_init(asking, &id))
    })
    .await
    .unwrap_or(Err(()));
    match local {
        Ok(Some((init, start))) => {
            meta.init_pid = init;
            meta.start_ts = start;
            true
        }
        // the asking process is there, the init not yet
        Ok(None) => false,
        // the asking process is gone: the runtime may have the pid by now
        Err(()) => match lookup_sources(shared, c).await {
            Ok(mut m) => {
                settle_start(&mut m, &c.full_id, crate::procfs::start_ts_in_cgroup);
                meta.init_pid = m.init_pid;
                meta.start_ts = m.start_ts;
                m.start_ts != 0
            }
            Err(_) => false,
        },
    }
}

/// Go on looking for a container's init after its metadata went out with the
/// start unknown (see [`lookup_settled`]): every 5 × [`START_POLL`] until
/// `until`, while its cache slot holds that metadata; then put the start into
/// the cached metadata. An event carries the container's one start or none
/// (0, before it was settled), never another time.
async fn settle_start_later(
    shared: Arc<Shared>,
    key: String,
    c: Arc<CgroupContainer>,
    asking_pid: u32,
    until: tokio::time::Instant,
) {
    while tokio::time::Instant::now() < until {
        tokio::time::sleep(START_POLL * 5).await;
        let mut meta = match lock(&shared.cache).get(&key) {
            Some(Slot::Ready { meta, .. }) if meta.start_ts == 0 => ContainerMeta::clone(meta),
            _ => return,
        };
        if try_settle(&shared, &c, asking_pid, &mut meta).await {
            if let Some(Slot::Ready { meta: m, .. }) = lock(&shared.cache).get_mut(&key) {
                if m.start_ts == 0 {
                    *m = Arc::new(meta);
                }
            }
            return;
        }
    }
}

/// Set `meta.start_ts` from its init pid, the one rule for every source (see
/// [`ContainerMeta::start_ts`]): `start_in_cgroup(pid, id)` is the pid's start
/// when it is a process of container `id`'s cgroup
/// ([`crate::procfs::start_ts_in_cgroup`] in the resolver, fixed values in tests).
pub fn settle_start(
    meta: &mut ContainerMeta,
    id: &str,
    start_in_cgroup: impl Fn(u32, &str) -> Option<u64>,
) {
    meta.start_ts = if meta.init_pid == 0 {
        0
    } else {
        start_in_cgroup(meta.init_pid, id).unwrap_or(0)
    };
}

async fn resolve(shared: Arc<Shared>, req: Request) {
    let timeout = shared.cfg.lookup_timeout;
    let poll_until = tokio::time::Instant::from_std(req.asked)
        + (shared.cfg.hold / 4).min(INIT_POLL_MAX).min(timeout);
    let result = match tokio::time::timeout(
        timeout,
        lookup_settled(&shared, &req.container, req.pid, poll_until),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(LookupError::Timeout(timeout)),
    };
    let c = &shared.counters;
    let now = Instant::now();
    let slot = match result {
        Ok(meta) => {
            let ns = now.duration_since(req.asked).as_nanos() as u64;
            c.resolved.fetch_add(1, Ordering::Relaxed);
            c.lookup_ns_total.fetch_add(ns, Ordering::Relaxed);
            c.lookup_ns_max.fetch_max(ns, Ordering::Relaxed);
            tracing::debug!(
                container = %req.key,
                image = %meta.image.repository,
                latency_us = ns / 1000,
                "container metadata resolved"
            );
            Slot::Ready {
                meta: Arc::new(meta),
                used: now,
            }
        }
        Err(e) => {
            c.failures.fetch_add(1, Ordering::Relaxed);
            match &e {
                LookupError::NotFound => {
                    c.not_found.fetch_add(1, Ordering::Relaxed);
                }
                LookupError::Timeout(_) => {
                    c.timeouts.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
            tracing::debug!(container = %req.key, "container metadata not resolved: {e}");
            Slot::Failed { at: now }
        }
    };
    let start_unknown = matches!(&slot, Slot::Ready { meta, .. } if meta.start_ts == 0);
    {
        let mut cache = lock(&shared.cache);
        // evicted while pending (container gone): keep it out
        if let Some(s) = cache.get_mut(&req.key) {
            *s = slot;
        }
    }
    if start_unknown && req.pid != 0 {
        let until = tokio::time::Instant::now() + timeout;
        tokio::spawn(settle_start_later(
            shared.clone(),
            req.key.clone(),
            req.container.clone(),
            req.pid,
            until,
        ));
    }
}

/// Follow containerd's create events while a containerd socket exists,
/// reconnecting every 2 s after it goes away.
async fn watch_containerd(shared: Arc<Shared>) {
    loop {
        if let Some(socket) = first_existing(&shared.cfg.containerd_sockets).map(Path::to_path_buf)
        {
            match containerd::connect(&socket).await {
                Ok(ch) => {
                    let up = || shared.watching.store(true, Ordering::Relaxed);
                    let r =
                        containerd::watch_creates(ch, &socket, up, |c| remember(&shared, c)).await;
                    shared.watching.store(false, Ordering::Relaxed);
                    if let Err(e) = r {
                        tracing::debug!("containerd create events: {e}");
                    }
                }
                Err(e) => tracing::debug!("containerd create events: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn first_existing(paths: &[PathBuf]) -> Option<&Path> {
    paths.iter().map(PathBuf::as_path).find(|p| p.exists())
}

/// Note a failed source: one warning per unreachable socket, counted each time.
fn note(shared: &Shared, e: &LookupError) {
    if let LookupError::Unreachable { socket, .. } = e {
        shared.counters.unreachable.fetch_add(1, Ordering::Relaxed);
        if lock(&shared.warned).insert(socket.clone()) {
            tracing::warn!(
                "{e}; containers of this runtime get their id and runtime only \
                 (counted in the runtime `unreachable` counter, warned once)"
            );
        }
    }
}

async fn containerd_lookup(
    shared: &Shared,
    ns: &str,
    id: &str,
) -> Option<Result<ContainerMeta, LookupError>> {
    let socket = first_existing(&shared.cfg.containerd_sockets)?.to_path_buf();
    let cached = lock(&shared.containerd).get(&socket).cloned();
    let channel = match cached {
        Some(ch) => ch,
        None => match containerd::connect(&socket).await {
            Ok(ch) => {
                lock(&shared.containerd).insert(socket.clone(), ch.clone());
                ch
            }
            Err(e) => return Some(Err(e)),
        },
    };
    let r = containerd::lookup(channel, &socket, ns, id).await;
    if matches!(r, Err(LookupError::Unreachable { .. })) {
        lock(&shared.containerd).remove(&socket);
    }
    Some(r)
}

/// CRI lookups on each existing socket of `sockets` in order, until one knows
/// `id`. Errors of all but the last socket asked are noted here; the last one
/// is returned for the caller to note.
async fn cri_lookup(
    shared: &Shared,
    sockets: &[PathBuf],
    id: &str,
) -> Option<Result<ContainerMeta, LookupError>> {
    let mut last: Option<LookupError> = None;
    for socket in sockets.iter().filter(|p| p.exists()) {
        if let Some(e) = last.take() {
            note(shared, &e);
        }
        let cached = lock(&shared.cri).get(socket).cloned();
        let (channel, runtime) = match cached {
            Some(c) => c,
            None => match cri::connect(socket).await {
                Ok(c) => {
                    lock(&shared.cri).insert(socket.clone(), c.clone());
                    c
                }
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            },
        };
        match cri::lookup(channel, socket, id, runtime).await {
            Ok(m) => return Some(Ok(m)),
            Err(e) => {
                if matches!(e, LookupError::Unreachable { .. }) {
                    lock(&shared.cri).remove(socket);
                }
                last = Some(e);
            }
        }
    }
    last.map(Err)
}

/// The CRI sockets for a Kubernetes container: CRI-O's, then containerd's (its CRI plugin).
fn kubernetes_cri_sockets(cfg: &RuntimeConfig) -> Vec<PathBuf> {
    let mut v = cfg.cri_sockets.clone();
    v.extend(first_existing(&cfg.containerd_sockets).map(Path::to_path_buf));
    v
}

/// A container gone before its lookup, known from its create event.
async fn from_create_event(shared: &Shared, ns: &str, id: &str) -> Option<ContainerMeta> {
    let created = lock(&shared.created)
        .get(&format!("{ns}/{id}"))
        .map(|(c, _)| c.clone())?;
    let socket = first_existing(&shared.cfg.containerd_sockets)?.to_path_buf();
    let channel = lock(&shared.containerd).get(&socket).cloned();
    let digest = match (channel, created.image.is_empty()) {
        (Some(ch), false) => containerd::image_digest(&ch, &socket, ns, &created.image)
            .await
            .ok()
            .flatten(),
        _ => None,
    };
    Some(containerd::meta_from_create(&created, digest))
}

async fn lookup_sources(
    shared: &Shared,
    c: &CgroupContainer,
) -> Result<ContainerMeta, LookupError> {
    let id = c.full_id.as_str();
    let mut last = LookupError::NotFound;
    let mut attempt = |r: Option<Result<ContainerMeta, LookupError>>| -> Option<ContainerMeta> {
        match r {
            Some(Ok(m)) => Some(m),
            Some(Err(e)) => {
                note(shared, &e);
                last = e;
                None
            }
            None => None,
        }
    };
    let engine = |paths: &[PathBuf], runtime: &'static str| {
        let socket = first_existing(paths).map(Path::to_path_buf);
        async move {
            match socket {
                Some(s) => Some(engine::lookup(&s, id, runtime).await),
                None => None,
            }
        }
    };
    match c.runtime {
        RuntimeKind::Containerd => {
            let ns = c.namespace.as_deref().unwrap_or("k8s.io");
            if let Some(m) = attempt(containerd_lookup(shared, ns, id).await) {
                return Ok(m);
            }
            if let Some(m) = from_create_event(shared, ns, id).await {
                return Ok(m);
            }
            if ns == "k8s.io" {
                let sockets = first_existing(&shared.cfg.containerd_sockets)
                    .map(|p| vec![p.to_path_buf()])
                    .unwrap_or_default();
                if let Some(m) = attempt(cri_lookup(shared, &sockets, id).await) {
                    return Ok(m);
                }
            }
        }
        RuntimeKind::Kubernetes => {
            if let Some(m) = attempt(containerd_lookup(shared, "k8s.io", id).await) {
                return Ok(m);
            }
            if let Some(m) = from_create_event(shared, "k8s.io", id).await {
                return Ok(m);
            }
            let sockets = kubernetes_cri_sockets(&shared.cfg);
            if let Some(m) = attempt(cri_lookup(shared, &sockets, id).await) {
                return Ok(m);
            }
            if let Some(m) = attempt(engine(&shared.cfg.docker_sockets, "docker").await) {
                return Ok(m);
            }
        }
        RuntimeKind::Docker => {
            if let Some(m) = attempt(engine(&shared.cfg.docker_sockets, "docker").await) {
                return Ok(m);
            }
        }
        RuntimeKind::Podman => {
            if let Some(m) = attempt(engine(&shared.cfg.podman_sockets, "podman").await) {
                return Ok(m);
            }
            if let Some(storage) = &shared.cfg.podman_storage {
                let (storage, id) = (storage.clone(), id.to_string());
                let run_root = shared.cfg.podman_run_root.clone();
                let r = tokio::task::spawn_blocking(move || {
                    podman_disk::lookup(&storage, run_root.as_deref(), &id)
                })
                .await
                .map_err(|e| LookupError::Protocol(format!("podman storage reader: {e}")));
                if let Some(m) = attempt(Some(r.and_then(|r| r))) {
                    return Ok(m);
                }
            }
        }
        RuntimeKind::Crio => {
            if let Some(m) = attempt(cri_lookup(shared, &shared.cfg.cri_sockets, id).await) {
                return Ok(m);
            }
        }
    }
    Err(last)
}

/// RFC 3339 → ns since the epoch (the event crate's, re-exported).
pub use falco_learn_event::time::parse_rfc3339_ns;

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(id: &str, runtime: RuntimeKind) -> Arc<CgroupContainer> {
        Arc::new(CgroupContainer {
            full_id: id.into(),
            namespace: (runtime == RuntimeKind::Containerd).then(|| "default".to_string()),
            runtime,
        })
    }

    fn no_sources() -> RuntimeConfig {
        RuntimeConfig {
            containerd_sockets: vec![PathBuf::from("/nonexistent/containerd.sock")],
            cri_sockets: vec![],
            docker_sockets: vec![],
            podman_sockets: vec![],
            podman_storage: None,
            podman_run_root: None,
            retry_after: Duration::from_secs(3600),
            ..RuntimeConfig::default()
        }
    }

    fn wait_settled(r: &Resolver, c: &Arc<CgroupContainer>) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(r.peek(c), Lookup::Pending) {
            assert!(Instant::now() < deadline, "lookup never finished");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn missing_runtime_fails_fast_and_is_not_retried_at_once() {
        let r = Resolver::start(no_sources()).unwrap();
        let c = cc("web", RuntimeKind::Containerd);
        assert!(matches!(r.lookup(&c), Lookup::Pending));
        wait_settled(&r, &c);
        assert!(matches!(r.lookup(&c), Lookup::Unavailable));
        let s = r.stats();
        assert_eq!((s.lookups, s.failures, s.resolved), (1, 1, 0));
        // no socket at all is "not installed", not "unreachable"
        assert_eq!(s.unreachable, 0);
        assert_eq!(s.cache_entries, 1);
        assert_eq!(r.retain_live(&AHashSet::new()), 1);
        assert_eq!(r.stats().cache_entries, 0);
        assert_eq!(r.stats().evicted, 1);
    }

    #[test]
    fn dead_socket_is_unreachable_and_warned_once() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("engine.sock");
        // a socket file nobody listens on: connect() is refused
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        let r = Resolver::start(RuntimeConfig {
            docker_sockets: vec![sock.clone()],
            ..no_sources()
        })
        .unwrap();
        let a = cc(&"a".repeat(64), RuntimeKind::Docker);
        let b = cc(&"b".repeat(64), RuntimeKind::Docker);
        r.lookup(&a);
        r.lookup(&b);
        wait_settled(&r, &a);
        wait_settled(&r, &b);
        let s = r.stats();
        assert_eq!((s.lookups, s.failures, s.unreachable), (2, 2, 2));
        assert_eq!(lock(&r.shared.warned).len(), 1);
    }

    #[test]
    fn silent_socket_times_out_without_stalling_the_caller() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("engine.sock");
        // accepts connections but never answers
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let r = Resolver::start(RuntimeConfig {
            podman_sockets: vec![sock],
            lookup_timeout: Duration::from_millis(150),
            ..no_sources()
        })
        .unwrap();
        let c = cc(&"c".repeat(64), RuntimeKind::Podman);
        let t = Instant::now();
        assert!(matches!(r.lookup(&c), Lookup::Pending));
        assert!(t.elapsed() < Duration::from_millis(50), "lookup() blocked");
        wait_settled(&r, &c);
        let s = r.stats();
        assert_eq!((s.timeouts, s.failures), (1, 1));
    }

    #[test]
    fn podman_storage_fallback_and_bounded_cache() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("overlay-containers")).unwrap();
        let ids: Vec<String> = (0..3).map(|i| format!("{i}").repeat(64)).collect();
        let list: Vec<String> = ids
            .iter()
            .map(|id| {
                format!(
                    r#"{{"id":"{id}","names":["n{}"],"metadata":"{{\"image-name\":\"localhost/app:v1\"}}"}}"#,
                    &id[..1]
                )
            })
            .collect();
        std::fs::write(
            d.path().join("overlay-containers/containers.json"),
            format!("[{}]", list.join(",")),
        )
        .unwrap();
        let r = Resolver::start(RuntimeConfig {
            podman_storage: Some(d.path().to_path_buf()),
            cache_max: 2,
            ..no_sources()
        })
        .unwrap();
        for id in &ids {
            let c = cc(id, RuntimeKind::Podman);
            r.lookup(&c);
            wait_settled(&r, &c);
            match r.lookup(&c) {
                Lookup::Ready(m) => {
                    assert_eq!(m.name, format!("n{}", &id[..1]));
                    assert_eq!(m.image.repository, "localhost/app");
                    assert_eq!(m.source, Source::PodmanStorage);
                }
                other => panic!("{other:?}"),
            }
        }
        let s = r.stats();
        assert_eq!(s.cache_entries, 2);
        assert_eq!(s.evicted, 1);
        assert_eq!(s.resolved, 3);
        // the first was the least recently used
        assert!(matches!(
            r.peek(&cc(&ids[0], RuntimeKind::Podman)),
            Lookup::Unavailable
        ));
        let live: AHashSet<String> = [ids[2].clone()].into_iter().collect();
        assert_eq!(r.retain_live(&live), 1);
        assert_eq!(r.stats().cache_entries, 1);
    }

    /// One container as every source describes it, with the init pid each
    /// reports: after [`settle_start`], the fields two sources can both give
    /// (name, image, start, pod and its labels) are equal, whichever answered.
    #[test]
    fn every_source_settles_the_same_start_and_agrees_on_shared_fields() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let digest = format!("sha256:{}", "a".repeat(64));
        let init = 4242;
        // the init started at 1_000 ns (after the container record was
        // created at 10 and before the runtime noted its start at 20)
        let start_of = |pid: u32, cid: &str| (pid == init && cid == id).then_some(1_000);
        let settled = |mut m: ContainerMeta| {
            settle_start(&mut m, id, start_of);
            m
        };

        // containerd's own API, for a container its CRI plugin made
        let ann: BTreeMap<String, String> = [
            ("io.kubernetes.cri.container-name", "web"),
            (
                "io.kubernetes.cri.image-name",
                "docker.io/library/nginx:1.27",
            ),
            ("io.kubernetes.cri.sandbox-name", "web-5d8f"),
            ("io.kubernetes.cri.sandbox-namespace", "shop"),
            ("io.kubernetes.cri.sandbox-uid", "u-1"),
            ("io.kubernetes.cri.sandbox-id", "sb"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let raw = containerd::Raw {
            id: id.into(),
            image: "docker.io/library/nginx:1.27".into(),
            labels: BTreeMap::new(),
            pid: init,
            spec: Some(containerd::OciSpec {
                annotations: ann,
                ..Default::default()
            }),
        };
        let sandbox_labels: BTreeMap<String, String> =
            [("app", "web"), ("io.cri-containerd.kind", "sandbox")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let by_containerd = settled(containerd::meta_from_raw(
            &raw,
            Some(digest.clone()),
            containerd::pod_labels(&sandbox_labels),
        ));

        // the same container over CRI
        let status = k8s_cri::v1::ContainerStatus {
            id: id.into(),
            metadata: Some(k8s_cri::v1::ContainerMetadata {
                name: "web".into(),
                attempt: 0,
            }),
            created_at: 10,
            started_at: 20,
            image: Some(k8s_cri::v1::ImageSpec {
                image: "docker.io/library/nginx:1.27".into(),
                ..Default::default()
            }),
            image_ref: format!("docker.io/library/nginx@{digest}"),
            ..Default::default()
        };
        let info = cri::VerboseInfo::parse(&std::collections::HashMap::from([(
            "info".to_string(),
            format!(r#"{{"sandboxID": "sb", "pid": {init}}}"#),
        )]));
        let pod = cri::Pod {
            name: "web-5d8f".into(),
            namespace: "shop".into(),
            uid: "u-1".into(),
            labels: [("app".to_string(), "web".to_string())].into(),
        };
        let by_cri = settled(cri::meta_from_status(
            &status,
            &info,
            Some(&pod),
            "containerd",
        ));

        let shared = |m: &ContainerMeta| {
            (
                m.name.clone(),
                m.image.clone(),
                m.start_ts,
                m.k8s_ns.clone(),
                m.k8s_pod.clone(),
                m.k8s_pod_uid.clone(),
                m.k8s_pod_labels.clone(),
                m.runtime,
            )
        };
        assert_eq!(shared(&by_containerd), shared(&by_cri));
        assert_eq!(by_cri.start_ts, 1_000, "neither created_at nor started_at");

        // the Engine API and podman's files: the same start from the same init
        let inspect: engine::Inspect = serde_json::from_str(&format!(
            r#"{{"Id": "{id}", "Name": "/web", "Created": "1970-01-01T00:00:00.00000001Z",
                "State": {{"Pid": {init}, "StartedAt": "1970-01-01T00:00:00.00000002Z"}},
                "Config": {{"Image": "docker.io/library/nginx:1.27"}}}}"#
        ))
        .expect("inspect");
        let by_engine = settled(engine::meta_from_inspect(
            &inspect,
            None,
            "podman",
            Source::EngineApi,
        ));
        let containers = format!(
            r#"[{{"id":"{id}","names":["web"],"metadata":"{{\"image-name\":\"docker.io/library/nginx:1.27\"}}","created":"1970-01-01T00:00:00.00000001Z"}}]"#
        );
        let by_disk = settled(
            podman_disk::meta_from_files(containers.as_bytes(), None, id, init).expect("disk"),
        );
        for m in [&by_engine, &by_disk] {
            assert_eq!(
                (
                    m.name.as_str(),
                    &m.image.repository,
                    &m.image.tag,
                    m.start_ts
                ),
                ("web", &by_cri.image.repository, &by_cri.image.tag, 1_000)
            );
        }

        // no init reported (no task yet, or ended), or a pid that is no longer
        // the container's: unknown, never another time
        for pid in [0, 99] {
            let mut m = ContainerMeta {
                init_pid: pid,
                start_ts: 7,
                ..ContainerMeta::default()
            };
            settle_start(&mut m, id, start_of);
            assert_eq!(m.start_ts, 0, "pid {pid}");
        }
    }
}
