//! Keeps per-container kernel maps in step with the loaded profiles and the containers the
//! source reports: enforce-kill's ([`falco_learn_probe::kill`]) and the kernel filter's
//! ([`falco_learn_probe::filter`], `engine.kernel_filter`). Both are the same shape: each
//! profile's allow-list under a number, and each container's cgroup under its image's
//! profile ([`ContainerMaps`]); one [`Binder`] per kind of maps does the bookkeeping.
//!
//! - Each loaded profile gets a stable number and its allow-list in the kernel (again after
//!   every SIGHUP reload; a profile that is no longer loaded releases its containers).
//! - The first event of each cgroup v2 of a container whose image has a profile puts that
//!   cgroup (the event's cgroup v2 id) under the profile of *that event's* image: the
//!   container's first start, and again after every restart (same container id, a new
//!   cgroup), and with a cgroup below the container's own, that one too (the kernel judges
//!   a cgroup not bound by its nearest bound ancestor's profile: every cgroup of the
//!   container then is, whatever it is named). The bookkeeping is by cgroup: a cgroup
//!   belongs to one container for its life, whatever other container reuses the id or
//!   name. Containers without a profile, and the host, never are bound.
//! - A cgroup is bound only when `/proc/<pid>/cgroup` shows the event's process in it and
//!   its path names the container first ([`falco_learn_probe::kill::container_cgroup`]):
//!   on a hybrid host a runtime that manages only cgroup v1 leaves its containers in a
//!   shared v2 cgroup, whose id must not put the host's or another container's processes
//!   under this profile. Each container in such a cgroup is said once, and checked in
//!   userspace only (enforce-kill kills from there, after the exec ran:
//!   [`Binder::judged_in_kernel`]). A cgroup that cannot be decided from an event's process (gone or
//!   moved) is asked about again on the next event of another process, or of that one a
//!   second later; one the kernel map refused, 30 s later.
//! - Every 10 s, cgroups that are gone are released: a cgroup whose directory the agent
//!   can see is released once the directory is removed (an idle container stays bound
//!   however long it is quiet); one it cannot see (the agent in a cgroup namespace of its
//!   own), after a minute without an event once its last seen process is gone. Cgroup ids
//!   are never reused, so a stale entry can never hit another container; releasing keeps
//!   the kernel map small.
//!
//! Which alert a kill marks is decided by the [`Engine`] from the event's own `killed` flag
//! ([`crate::Action::Killed`]), not here.

use crate::Engine;
use ahash::{AHashMap as HashMap, AHashSet as HashSet};
use falco_learn_event::Event;
use falco_learn_probe::kill::{CgroupClaim, CgroupOwner};
use falco_learn_profiler::Profile;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Kernel maps keyed by container (cgroup v2 id) and profile number, as a [`Binder`] uses
/// them (the live probe's; fakes in tests).
pub trait ContainerMaps {
    /// What the maps do: the prefix of their log lines (`enforce-kill`, `kernel filter`).
    fn what(&self) -> &'static str;
    /// Load what `p` allows under number `profile` (replacing what was there); a phrase
    /// for the log saying what that is.
    fn set_profile(&self, profile: u32, p: &Profile) -> Result<String, String>;
    /// Forget profile `profile` and every cgroup under it.
    fn drop_profile(&self, profile: u32);
    /// Put the cgroup (v2 id) under `profile`.
    fn enforce(&self, cgroup: u64, profile: u32) -> Result<(), String>;
    /// Release the cgroup.
    fn release(&self, cgroup: u64);
    /// Whether the cgroup an event claims is its container's own
    /// ([`falco_learn_probe::kill::container_cgroup`]).
    fn owner(&self, claim: CgroupClaim<'_>) -> CgroupOwner;
    /// Whether the maps never take `cgroup` (the root cgroup, init's, the agent's own).
    fn never_enforced(&self, _cgroup: u64) -> bool {
        false
    }
    /// Kills made in the kernel whose event was lost (the ring buffer was full): (cgroup v2
    /// id, running total). enforce-kill's maps only.
    fn unreported_kills(&self) -> Vec<(u64, u64)> {
        Vec::new()
    }
    /// Whether the kernel would kill the exec of `p` in a cgroup under `profile` (its
    /// executable and where it lives against the profile's allow-list, exactly as the exec
    /// program compares them); `None` when these maps do not say (enforce-kill's maps only).
    fn would_kill(&self, _profile: u32, _p: &falco_learn_event::Process) -> Option<bool> {
        None
    }
}

/// Kills in one cgroup that no event reports (the ring buffer was full): said by an
/// internal alert so that a kill is never silent ([`Binder::unreported_kills`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreportedKills {
    pub cgroup: u64,
    /// New since the last report.
    pub kills: u64,
    /// The container (Falco's short id) and its image (`repository:tag`), when the cgroup
    /// is still bound (cgroup 0: counted once the kernel's map was full, cgroup unknown).
    pub container: Option<String>,
    pub image: Option<String>,
}

/// What enforce-kill does where the kernel cannot: said in the binders' logs.
fn from_userspace(what: &str) -> &'static str {
    if what == "enforce-kill" {
        " (execs outside the profile are killed from there, after they ran)"
    } else {
        ""
    }
}

impl ContainerMaps for falco_learn_probe::kill::KillPolicy {
    fn what(&self) -> &'static str {
        "enforce-kill"
    }
    fn never_enforced(&self, cgroup: u64) -> bool {
        falco_learn_probe::kill::KillPolicy::never_enforced(self, cgroup)
    }
    fn set_profile(&self, profile: u32, p: &Profile) -> Result<String, String> {
        // an executable is allowed only from where it was learned: an image's, from its
        // lower layer (or a disk)
        falco_learn_probe::kill::KillPolicy::set_profile(
            self,
            profile,
            p.exec
                .iter()
                .map(|(path, e)| falco_learn_probe::kill::AllowedExec {
                    path,
                    upper_layer: e.upper_layer,
                    tmpfs: e.tmpfs,
                    memfd: e.memfd,
                    other_root: e.other_root,
                    host_root: e.host_root,
                    other_fs: e.other_fs,
                }),
        )
        .map(|n| format!("allows {n} executable(s); any other exec in its containers is killed"))
        .map_err(|e| e.to_string())
    }
    fn drop_profile(&self, profile: u32) {
        falco_learn_probe::kill::KillPolicy::drop_profile(self, profile)
    }
    fn enforce(&self, cgroup: u64, profile: u32) -> Result<(), String> {
        falco_learn_probe::kill::KillPolicy::enforce(self, cgroup, profile)
            .map_err(|e| e.to_string())
    }
    fn release(&self, cgroup: u64) {
        falco_learn_probe::kill::KillPolicy::release(self, cgroup)
    }
    fn owner(&self, claim: CgroupClaim<'_>) -> CgroupOwner {
        falco_learn_probe::kill::KillPolicy::owner(self, claim)
    }
    fn unreported_kills(&self) -> Vec<(u64, u64)> {
        falco_learn_probe::kill::KillPolicy::unreported_kills(self)
    }
    fn would_kill(&self, profile: u32, p: &falco_learn_event::Process) -> Option<bool> {
        falco_learn_probe::kill::KillPolicy::would_kill(self, profile, &p.exepath, &p.exe_flags)
    }
}

/// The kernel's protocol number of a protocol [`falco_learn_profiler::kernel`] gives (TCP
/// or UDP only).
fn ipproto(p: falco_learn_profiler::model::Proto) -> u8 {
    match p {
        falco_learn_profiler::model::Proto::Udp => falco_learn_probe::filter::IPPROTO_UDP,
        _ => falco_learn_probe::filter::IPPROTO_TCP,
    }
}

impl ContainerMaps for falco_learn_probe::filter::ProfileFilter {
    fn what(&self) -> &'static str {
        "kernel filter"
    }
    fn set_profile(&self, profile: u32, p: &Profile) -> Result<String, String> {
        let k = falco_learn_profiler::kernel::kernel_writes(p);
        let allow = falco_learn_probe::filter::WriteAllow {
            files: k.files,
            dirs: k.dirs,
        };
        let writes = falco_learn_probe::filter::ProfileFilter::set_profile(self, profile, &allow)
            .map_err(|e| e.to_string())?;
        let outbound: Vec<falco_learn_probe::filter::OutboundAllow> =
            falco_learn_profiler::kernel::kernel_outbound(p)
                .into_iter()
                .map(|o| falco_learn_probe::filter::OutboundAllow {
                    proto: ipproto(o.proto),
                    port: o.port,
                    addr: o.peer.network(),
                    prefix: o.peer.prefix_len(),
                })
                .collect();
        let out = falco_learn_probe::filter::ProfileFilter::set_outbound(self, profile, &outbound)
            .map_err(|e| e.to_string())?;
        let served = falco_learn_profiler::kernel::kernel_inbound(p)
            .into_iter()
            .map(|(proto, port)| (ipproto(proto), port))
            .collect::<Vec<_>>();
        let inb = falco_learn_probe::filter::ProfileFilter::set_inbound(self, profile, &served)
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "{writes} kernel entries of its writes, {out} of its outbound connections and \
             {inb} of its served ports; what they allow that no rule can match is dropped in \
             the kernel"
        ))
    }
    fn drop_profile(&self, profile: u32) {
        falco_learn_probe::filter::ProfileFilter::drop_profile(self, profile)
    }
    fn enforce(&self, cgroup: u64, profile: u32) -> Result<(), String> {
        self.bind(cgroup, profile).map_err(|e| e.to_string())
    }
    fn release(&self, cgroup: u64) {
        falco_learn_probe::filter::ProfileFilter::release(self, cgroup)
    }
    fn owner(&self, claim: CgroupClaim<'_>) -> CgroupOwner {
        falco_learn_probe::filter::ProfileFilter::owner(self, claim)
    }
}

/// A cgroup under its container's image's profile.
struct Bound {
    /// The container (Falco's short id), for the log and [`Binder::enforced`].
    container: String,
    profile: u32,
    /// The cgroup's directory, when the agent can see it: released once it is gone.
    dir: Option<PathBuf>,
    /// The last event's pid and time (when `dir` is unknown: released a minute after the
    /// last event once that process is gone).
    pid: u32,
    last: Instant,
    /// When the cgroup went under its profile in the kernel (ns since the epoch, on the
    /// events' clock): an event before it was not judged there.
    since_ts: u64,
}

/// Why a cgroup is not checked again now.
enum Hold {
    /// Not the container's own (a shared cgroup v2): until the next reload; the containers
    /// already told so (each is said once).
    Shared(HashSet<String>),
    /// Undecided, or refused by the kernel map: until then.
    Until(Instant),
}

/// How long an undecided cgroup is left before it is checked again.
const RECHECK_UNKNOWN: Duration = Duration::from_secs(1);
/// How long after the kernel map refused a cgroup it is tried again.
const RETRY_REFUSED: Duration = Duration::from_secs(30);

/// One kind of [`ContainerMaps`]' bookkeeping: profile numbers and the cgroups under them.
pub struct Binder {
    /// repository → tag → profile number, stable across reloads (looked up by borrowing the
    /// event's strings: nothing is allocated per event).
    ids: HashMap<String, HashMap<String, u32>>,
    next: u32,
    /// Bound cgroups by cgroup v2 id.
    bound: HashMap<u64, Bound>,
    /// Bound cgroups per container.
    containers: HashMap<String, usize>,
    /// Cgroups not to check again for now.
    held: HashMap<u64, Hold>,
    /// (cgroup, pid) pairs that could not be decided (the process gone or moved): not asked
    /// about again before then. Per process, so that another process of the cgroup is asked
    /// at once (the first event of a new cgroup is often a short-lived process's exec).
    unknown: HashMap<(u64, u32), Instant>,
    last_sweep: Instant,
    /// The maps' running totals of unreported kills already reported, by cgroup.
    unreported_seen: HashMap<u64, u64>,
}

impl Default for Binder {
    fn default() -> Self {
        Binder::new()
    }
}

impl Binder {
    /// No profile and no cgroup yet.
    pub fn new() -> Binder {
        Binder {
            ids: HashMap::new(),
            next: 1,
            bound: HashMap::new(),
            containers: HashMap::new(),
            held: HashMap::new(),
            unknown: HashMap::new(),
            last_sweep: Instant::now(),
            unreported_seen: HashMap::new(),
        }
    }

    /// Kills the kernel made whose events were lost, new since the last call, with the
    /// container and image of the cgroup when it is still bound (call before
    /// [`Binder::sweep`], which may release it).
    pub fn unreported_kills(&mut self, maps: &dyn ContainerMaps) -> Vec<UnreportedKills> {
        let mut out = Vec::new();
        for (cgroup, total) in maps.unreported_kills() {
            let seen = self.unreported_seen.entry(cgroup).or_insert(0);
            if total == *seen {
                continue;
            }
            // a total below what was seen started again (a new probe's map): all of it is new
            let kills = if total < *seen { total } else { total - *seen };
            *seen = total;
            let bound = self.bound.get(&cgroup);
            let image = bound.and_then(|b| {
                self.ids.iter().find_map(|(repo, tags)| {
                    tags.iter().find(|(_, n)| **n == b.profile).map(|(tag, _)| {
                        falco_learn_profiler::ImageRef::new(repo.clone(), tag.clone()).to_string()
                    })
                })
            });
            out.push(UnreportedKills {
                cgroup,
                kills,
                container: bound.map(|b| b.container.clone()),
                image,
            });
        }
        out.sort_by_key(|u| u.cgroup);
        out
    }

    /// Load every profile's allow-list; forget profiles no longer loaded (and release
    /// their cgroups). Held cgroups are checked again.
    pub fn sync(&mut self, maps: &dyn ContainerMaps, engine: &Engine) {
        let what = maps.what();
        let loaded = engine.loaded_profiles();
        let keep: HashSet<(&str, &str)> = loaded
            .iter()
            .map(|p| (p.image.repository.as_str(), p.image.tag.as_str()))
            .collect();
        let mut gone = Vec::new();
        for (repo, tags) in &self.ids {
            for (tag, id) in tags {
                if !keep.contains(&(repo.as_str(), tag.as_str())) {
                    gone.push((repo.clone(), tag.clone(), *id));
                }
            }
        }
        for (repo, tag, id) in gone {
            maps.drop_profile(id);
            if let Some(tags) = self.ids.get_mut(&repo) {
                tags.remove(&tag);
                if tags.is_empty() {
                    self.ids.remove(&repo);
                }
            }
            let containers = &mut self.containers;
            self.bound.retain(|_, b| {
                if b.profile != id {
                    return true;
                }
                forget(containers, &b.container);
                false
            });
            tracing::info!("{what}: profile of {repo}:{tag} unloaded");
        }
        for p in loaded {
            let (repo, tag) = (&p.image.repository, &p.image.tag);
            let next = &mut self.next;
            let id = *self
                .ids
                .entry(repo.clone())
                .or_default()
                .entry(tag.clone())
                .or_insert_with(|| {
                    *next += 1;
                    *next - 1
                });
            match maps.set_profile(id, p) {
                Ok(said) => tracing::info!("{what}: {repo}:{tag} {said}"),
                Err(e) => tracing::error!("{what}: {repo}:{tag}: {e}"),
            }
        }
        self.held.clear();
        self.unknown.clear();
    }

    /// Containers with a cgroup under their profile now.
    pub fn enforced(&self) -> usize {
        self.containers.len()
    }

    /// Put the event's cgroup under the profile of the event's image, on the first event of
    /// each cgroup v2 of a profiled container ([`Binder`]'s rules).
    pub fn observe(&mut self, maps: &dyn ContainerMaps, engine: &Engine, ev: &Event) {
        let c = &ev.container;
        if c.id.is_empty() || c.id == "host" || c.image_repository.is_empty() || ev.cgroup_id == 0 {
            // the host, a container whose image is not known yet, or no cgroup v2 id
            return;
        }
        let cgroup = ev.cgroup_id;
        if let Some(b) = self.bound.get_mut(&cgroup) {
            b.pid = ev.process.pid;
            b.last = Instant::now();
            return;
        }
        let Some(profile) = self.profile_of(engine, c) else {
            return;
        };
        let what = maps.what();
        match self.held.get_mut(&cgroup) {
            Some(Hold::Shared(told)) => {
                if !told.contains(c.id.as_str()) {
                    told.insert(c.id.clone());
                    tracing::warn!(
                        "{what}: container {} ({}:{}) is not put under its profile: it is in \
                         cgroup id {cgroup}, which is not its own; its events are checked in \
                         userspace only{}",
                        c.id,
                        c.image_repository,
                        c.image_tag,
                        from_userspace(what)
                    );
                }
                return;
            }
            Some(Hold::Until(t)) if Instant::now() < *t => return,
            _ => {}
        }
        if self
            .unknown
            .get(&(cgroup, ev.process.pid))
            .is_some_and(|t| Instant::now() < *t)
        {
            return;
        }
        let claim = CgroupClaim {
            pid: ev.process.pid,
            start_ts: ev.process.start_ts,
            cgroup_id: cgroup,
            container_id: &c.id,
        };
        let (dir, top) = match maps.owner(claim) {
            CgroupOwner::Container { dir, top } => (dir, top),
            CgroupOwner::Unknown(why) => {
                tracing::debug!("{what}: container {} (cgroup id {cgroup}): {why}", c.id);
                self.unknown
                    .insert((cgroup, ev.process.pid), Instant::now() + RECHECK_UNKNOWN);
                return;
            }
            CgroupOwner::Shared(why) => {
                tracing::warn!(
                    "{what}: container {} ({}:{}) is not put under its profile: {why}; its \
                     events are checked in userspace only{} (cgroup id {cgroup})",
                    c.id,
                    c.image_repository,
                    c.image_tag,
                    from_userspace(what)
                );
                self.held
                    .insert(cgroup, Hold::Shared(HashSet::from_iter([c.id.clone()])));
                return;
            }
        };
        if let Err(e) = maps.enforce(cgroup, profile) {
            tracing::warn!(
                "{what}: container {} (cgroup id {cgroup}): {e}; tried again in {} s",
                c.id,
                RETRY_REFUSED.as_secs()
            );
            self.held
                .insert(cgroup, Hold::Until(Instant::now() + RETRY_REFUSED));
            return;
        }
        self.held.remove(&cgroup);
        let n = self.containers.entry(c.id.clone()).or_default();
        *n += 1;
        let again = if *n > 1 {
            " (another cgroup of the container: restarted, or one below its own)"
        } else {
            ""
        };
        tracing::info!(
            "{what}: container {} ({}:{}, cgroup id {cgroup}) is under its profile{again}",
            c.id,
            c.image_repository,
            c.image_tag
        );
        self.bound.insert(
            cgroup,
            Bound {
                container: c.id.clone(),
                profile,
                dir,
                pid: ev.process.pid,
                last: Instant::now(),
                // taken after the map was written: an event in between counts as not
                // judged, which errs on the side of a second look
                since_ts: falco_learn_probe::procfs::now_epoch_ns(),
            },
        );
        // the container's own cgroup, when this one is below it: every cgroup below that
        // one, whatever it is named, is then judged by the profile in the kernel
        if let Some((top, top_dir)) = top.filter(|(t, _)| !self.bound.contains_key(t)) {
            match maps.enforce(top, profile) {
                Ok(()) => {
                    *self.containers.entry(c.id.clone()).or_default() += 1;
                    tracing::info!(
                        "{what}: container {} ({}:{}, cgroup id {top}) is under its profile \
                         (the container's own cgroup, above cgroup id {cgroup})",
                        c.id,
                        c.image_repository,
                        c.image_tag
                    );
                    self.bound.insert(
                        top,
                        Bound {
                            container: c.id.clone(),
                            profile,
                            dir: Some(top_dir),
                            pid: ev.process.pid,
                            last: Instant::now(),
                            since_ts: falco_learn_probe::procfs::now_epoch_ns(),
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!("{what}: container {} (its own cgroup id {top}): {e}", c.id)
                }
            }
        }
    }

    /// Whether `ev` was judged in the kernel by the maps: its cgroup was under its
    /// profile when it happened. A container's first processes (before its image was
    /// known and its cgroup bound), a cgroup shared with others or refused by the map were
    /// not.
    pub fn judged_in_kernel(&self, ev: &Event) -> bool {
        self.bound
            .get(&ev.cgroup_id)
            .is_some_and(|b| ev.ts >= b.since_ts)
    }

    /// Whether the kernel would kill `ev`'s exec had its cgroup been under its image's
    /// profile ([`ContainerMaps::would_kill`]): for an exec it did not judge
    /// ([`Binder::judged_in_kernel`]), so that a kill from userspace decides exactly what
    /// the kernel does. False for the host, a container whose image is not known or has no
    /// profile here.
    pub fn would_kill(&self, maps: &dyn ContainerMaps, engine: &Engine, ev: &Event) -> bool {
        let c = &ev.container;
        if c.id.is_empty() || c.id == "host" || c.image_repository.is_empty() {
            return false;
        }
        self.profile_of(engine, c)
            .is_some_and(|profile| maps.would_kill(profile, &ev.process) == Some(true))
    }

    /// The number of the loaded profile of container `c`'s image (looked up by borrowing
    /// its strings: nothing is allocated per event).
    fn profile_of(&self, engine: &Engine, c: &falco_learn_event::Container) -> Option<u32> {
        let profile = *self
            .ids
            .get(c.image_repository.as_str())?
            .get(c.image_tag.as_str())?;
        engine
            .has_profile(&c.image_repository, &c.image_tag)
            .then_some(profile)
    }

    /// Release the cgroups that are gone (every 10 s; [`Binder`]'s rules).
    pub fn sweep(&mut self, maps: &dyn ContainerMaps) {
        if self.last_sweep.elapsed() < Duration::from_secs(10) {
            return;
        }
        self.last_sweep = Instant::now();
        self.sweep_now(maps, Duration::from_secs(60), &|pid| {
            falco_learn_probe::procfs::alive(pid)
        });
    }

    fn sweep_now(&mut self, maps: &dyn ContainerMaps, idle: Duration, alive: &dyn Fn(u32) -> bool) {
        let containers = &mut self.containers;
        self.bound.retain(|id, b| {
            let gone = match &b.dir {
                Some(d) => !d.exists(),
                None => b.last.elapsed() >= idle && !alive(b.pid),
            };
            if gone {
                maps.release(*id);
                forget(containers, &b.container);
                tracing::debug!(
                    "{}: cgroup {id} of container {} is gone",
                    maps.what(),
                    b.container
                );
            }
            !gone
        });
        let now = Instant::now();
        self.held
            .retain(|_, h| matches!(h, Hold::Until(t) if *t > now) || matches!(h, Hold::Shared(_)));
        self.unknown.retain(|_, t| *t > now);
    }
}

/// One bound cgroup of `container` fewer.
fn forget(containers: &mut HashMap<String, usize>, container: &str) {
    if let Some(n) = containers.get_mut(container) {
        *n -= 1;
        if *n == 0 {
            containers.remove(container);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, ProfilesFrom};
    use falco_learn_rules::Priority;
    use falco_learn_test_support::{events::in_container, write_profile};
    use std::cell::RefCell;

    type OwnerFn = dyn Fn(u64, u32) -> CgroupOwner;

    /// Kernel maps that log what is done to them; `owner` decides ownership by (cgroup,
    /// pid); `full` makes `enforce` fail.
    struct Fake {
        log: RefCell<Vec<String>>,
        owner: Box<OwnerFn>,
        full: std::cell::Cell<bool>,
        unreported: RefCell<Vec<(u64, u64)>>,
    }
    impl Default for Fake {
        fn default() -> Self {
            Fake::with(|_, _| CgroupOwner::Container {
                dir: None,
                top: None,
            })
        }
    }
    impl Fake {
        fn with(owner: impl Fn(u64, u32) -> CgroupOwner + 'static) -> Fake {
            Fake {
                log: RefCell::new(Vec::new()),
                owner: Box::new(owner),
                full: std::cell::Cell::new(false),
                unreported: RefCell::new(Vec::new()),
            }
        }
        fn log(&self) -> Vec<String> {
            self.log.borrow().clone()
        }
    }
    impl ContainerMaps for Fake {
        fn what(&self) -> &'static str {
            "fake"
        }
        fn set_profile(&self, profile: u32, p: &Profile) -> Result<String, String> {
            let execs: Vec<&str> = p.exec.keys().map(String::as_str).collect();
            self.log
                .borrow_mut()
                .push(format!("set {profile} {}", execs.join(",")));
            Ok(format!("{}", execs.len()))
        }
        fn drop_profile(&self, profile: u32) {
            self.log.borrow_mut().push(format!("drop {profile}"));
        }
        fn enforce(&self, cgroup: u64, profile: u32) -> Result<(), String> {
            if self.full.get() {
                return Err("map full".into());
            }
            self.log
                .borrow_mut()
                .push(format!("enforce {cgroup} {profile}"));
            Ok(())
        }
        fn release(&self, cgroup: u64) {
            self.log.borrow_mut().push(format!("release {cgroup}"));
        }
        fn owner(&self, claim: CgroupClaim<'_>) -> CgroupOwner {
            self.log
                .borrow_mut()
                .push(format!("owner {} {}", claim.cgroup_id, claim.container_id));
            (self.owner)(claim.cgroup_id, claim.pid)
        }
        fn unreported_kills(&self) -> Vec<(u64, u64)> {
            self.unreported.borrow().clone()
        }
    }

    /// An engine with profiles of nginx:latest (number 1) and redis:latest (number 2).
    fn engine(dir: &std::path::Path) -> Engine {
        write_profile(
            dir,
            "docker.io/library/nginx",
            "latest",
            &["/usr/sbin/nginx"],
        );
        write_profile(
            dir,
            "docker.io/library/redis",
            "latest",
            &["/usr/bin/redis"],
        );
        let from = ProfilesFrom::Dir {
            path: dir,
            allow_empty: true,
        };
        Engine::build(&[], Priority::Debug, from, Priority::Warning, "")
            .expect("engine")
            .0
    }

    fn ev(container: &str, repository: &str, cgroup: u64, pid: u32) -> Event {
        let mut ev = in_container(container, repository, cgroup);
        std::sync::Arc::make_mut(&mut ev.process).pid = pid;
        ev
    }

    fn web(cgroup: u64, pid: u32) -> Event {
        ev("web", "docker.io/library/nginx", cgroup, pid)
    }

    /// Only what was done to the kernel maps (not the ownership questions).
    fn kernel(log: Vec<String>) -> Vec<String> {
        log.into_iter()
            .filter(|l| !l.starts_with("owner "))
            .collect()
    }

    fn setup(maps: &Fake) -> (tempfile::TempDir, Engine, Binder) {
        let dir = tempfile::tempdir().expect("tmp");
        let engine = engine(dir.path());
        let mut k = Binder::new();
        k.sync(maps, &engine);
        maps.log.borrow_mut().clear();
        (dir, engine, k)
    }

    /// A cgroup below the container's own (its processes moved there, by systemd in it or
    /// its entrypoint) is bound with the container's own cgroup, once: the kernel then
    /// judges every cgroup below that one by the profile, whatever it is named.
    #[test]
    fn the_containers_own_cgroup_is_bound_with_one_below_it() {
        let top_dir = tempfile::tempdir().expect("tmp");
        let t = top_dir.path().to_path_buf();
        let maps = Fake::with(move |_, _| CgroupOwner::Container {
            dir: None,
            top: Some((70, t.clone())),
        });
        let (_dir, engine, mut k) = setup(&maps);
        k.observe(&maps, &engine, &web(77, 5));
        k.observe(&maps, &engine, &web(78, 6));
        assert_eq!(
            kernel(maps.log()),
            vec!["enforce 77 1", "enforce 70 1", "enforce 78 1"]
        );
        let mut bound: Vec<u64> = k.bound.keys().copied().collect();
        bound.sort();
        assert_eq!(bound, vec![70, 77, 78]);
        // gone with its directory
        drop(top_dir);
        k.sweep_now(&maps, Duration::from_secs(60), &|_| true);
        assert!(kernel(maps.log()).contains(&"release 70".to_string()));
    }

    /// Kills whose events were lost are reported once each, as increases of the kernel's
    /// running totals, with the container and image of a bound cgroup (`None` for one the
    /// agent never bound or already released).
    #[test]
    fn unreported_kills_are_reported_once_with_their_container() {
        let maps = Fake::default();
        let (_dir, engine, mut k) = setup(&maps);
        k.observe(&maps, &engine, &web(77, 5));
        assert!(k.unreported_kills(&maps).is_empty());
        *maps.unreported.borrow_mut() = vec![(77, 2), (88, 1)];
        let got = k.unreported_kills(&maps);
        assert_eq!(
            got,
            vec![
                UnreportedKills {
                    cgroup: 77,
                    kills: 2,
                    container: Some("web".into()),
                    image: Some("docker.io/library/nginx:latest".into()),
                },
                UnreportedKills {
                    cgroup: 88,
                    kills: 1,
                    container: None,
                    image: None,
                },
            ]
        );
        // nothing new: nothing said; one more in 77: that one
        assert!(k.unreported_kills(&maps).is_empty());
        *maps.unreported.borrow_mut() = vec![(77, 3), (88, 1)];
        let got = k.unreported_kills(&maps);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].cgroup, got[0].kills), (77, 1));
        // a total that started again (a new probe's map): all of it is new
        *maps.unreported.borrow_mut() = vec![(77, 1), (88, 1)];
        let got = k.unreported_kills(&maps);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].cgroup, got[0].kills), (77, 1));
    }

    /// An event was judged in the kernel only when its cgroup was bound before it happened:
    /// not the event that binds it (it happened before), an earlier one read late, a
    /// cgroup shared with others or refused by the map; a later event is.
    #[test]
    fn judged_in_kernel_only_after_the_binding() {
        let at = |mut e: Event, ts: u64| {
            e.ts = ts;
            e
        };
        let maps = Fake::with(|cgroup, _| {
            if cgroup == 90 {
                CgroupOwner::Shared("a service's cgroup".into())
            } else {
                CgroupOwner::Container {
                    dir: None,
                    top: None,
                }
            }
        });
        let (_dir, engine, mut k) = setup(&maps);
        let before = falco_learn_probe::procfs::now_epoch_ns();
        let first = at(web(77, 5), before);
        k.observe(&maps, &engine, &first);
        assert_eq!(k.enforced(), 1);
        assert!(
            !k.judged_in_kernel(&first),
            "the binding event happened before it"
        );
        assert!(!k.judged_in_kernel(&at(web(77, 6), before - 1)));
        let after = at(web(77, 6), falco_learn_probe::procfs::now_epoch_ns());
        k.observe(&maps, &engine, &after);
        assert!(k.judged_in_kernel(&after));
        // shared: never bound, never judged
        let shared = at(web(90, 7), falco_learn_probe::procfs::now_epoch_ns());
        k.observe(&maps, &engine, &shared);
        assert!(!k.judged_in_kernel(&shared));
        // refused by the map: not judged
        maps.full.set(true);
        let refused = at(web(91, 8), falco_learn_probe::procfs::now_epoch_ns());
        k.observe(&maps, &engine, &refused);
        assert!(!k.judged_in_kernel(&refused));
        assert_eq!(k.enforced(), 1);
    }

    /// A profiled container's cgroup is bound once, on its first event with a cgroup id;
    /// unprofiled containers, a container whose image is not known yet, and the host never
    /// are; a reload without the profile drops it.
    #[test]
    fn containers_go_under_their_profile_once() {
        let maps = Fake::default();
        let (dir, engine, mut k) = setup(&maps);
        k.observe(&maps, &engine, &web(0, 5));
        k.observe(&maps, &engine, &web(77, 5));
        k.observe(&maps, &engine, &web(77, 6));
        k.observe(&maps, &engine, &ev("db", "docker.io/library/mysql", 78, 7));
        k.observe(&maps, &engine, &ev("new", "", 79, 8));
        k.observe(&maps, &engine, &in_container("host", "", 1));
        assert_eq!(k.enforced(), 1);
        assert_eq!(maps.log(), ["owner 77 web", "enforce 77 1"]);
        std::fs::remove_file(dir.path().join("nginx.yaml")).expect("rm");
        let from = ProfilesFrom::Dir {
            path: dir.path(),
            allow_empty: true,
        };
        let (fewer, _) =
            Engine::build(&[], Priority::Debug, from, Priority::Warning, "").expect("engine");
        k.sync(&maps, &fewer);
        assert_eq!(k.enforced(), 0);
        assert_eq!(
            maps.log(),
            [
                "owner 77 web",
                "enforce 77 1",
                "drop 1",
                "set 2 /usr/bin/redis"
            ]
        );
    }

    /// A restarted container (same id, new cgroup) is bound again; a cgroup is released
    /// when its directory is gone, never while it exists however idle it is; without a
    /// directory, once idle and its last process gone.
    #[test]
    fn a_restarted_container_is_bound_again_and_idle_cgroups_stay_bound() {
        let live = tempfile::tempdir().expect("tmp");
        let first = live.path().join("first");
        let second = live.path().join("second");
        std::fs::create_dir(&first).expect("mkdir");
        std::fs::create_dir(&second).expect("mkdir");
        let (d1, d2) = (first.clone(), second.clone());
        let maps = Fake::with(move |cgroup, _| CgroupOwner::Container {
            dir: match cgroup {
                77 => Some(d1.clone()),
                91 => Some(d2.clone()),
                _ => None,
            },
            top: None,
        });
        let (_dir, engine, mut k) = setup(&maps);
        k.observe(&maps, &engine, &web(77, 100));
        // restart: the same container id in a new cgroup
        k.observe(&maps, &engine, &web(91, 200));
        k.observe(&maps, &engine, &web(91, 201));
        assert_eq!(k.enforced(), 1);
        // idle, every process gone: still bound while the cgroups exist
        k.sweep_now(&maps, Duration::ZERO, &|_| false);
        assert_eq!(kernel(maps.log()), ["enforce 77 1", "enforce 91 1"]);
        std::fs::remove_dir(&first).expect("rmdir");
        k.sweep_now(&maps, Duration::ZERO, &|_| true);
        assert_eq!(k.enforced(), 1);
        std::fs::remove_dir(&second).expect("rmdir");
        k.sweep_now(&maps, Duration::ZERO, &|_| true);
        assert_eq!(k.enforced(), 0);
        // a cgroup the agent cannot see: released once idle with its process gone
        k.observe(&maps, &engine, &web(93, 300));
        k.sweep_now(&maps, Duration::from_secs(60), &|_| false);
        k.sweep_now(&maps, Duration::ZERO, &|pid| pid == 300);
        assert_eq!(k.enforced(), 1);
        k.sweep_now(&maps, Duration::ZERO, &|_| false);
        assert_eq!(k.enforced(), 0);
        assert_eq!(
            kernel(maps.log()),
            [
                "enforce 77 1",
                "enforce 91 1",
                "release 77",
                "release 91",
                "enforce 93 1",
                "release 93"
            ]
        );
    }

    /// Each cgroup goes under the profile of its own events' image: a container id reused
    /// by another image (a `ctr` name in two namespaces, or deleted and made again) gets
    /// that image's profile, or none.
    #[test]
    fn a_reused_container_id_gets_its_own_images_profile() {
        let maps = Fake::default();
        let (_dir, engine, mut k) = setup(&maps);
        k.observe(&maps, &engine, &web(10, 1));
        k.observe(&maps, &engine, &ev("web", "docker.io/library/redis", 20, 2));
        k.observe(&maps, &engine, &ev("web", "docker.io/library/mysql", 30, 3));
        assert_eq!(kernel(maps.log()), ["enforce 10 1", "enforce 20 2"]);
        // first seen without a profile, made again with one: bound
        k.observe(&maps, &engine, &ev("db", "docker.io/library/mysql", 40, 4));
        k.observe(&maps, &engine, &ev("db", "docker.io/library/nginx", 41, 5));
        assert_eq!(
            kernel(maps.log()),
            ["enforce 10 1", "enforce 20 2", "enforce 41 1"]
        );
        assert_eq!(k.enforced(), 2);
    }

    /// A shared cgroup is never bound and each container in it is said once; a process
    /// whose cgroup could not be decided is asked about again after a second, never every
    /// event, while another process of the cgroup is asked at once; a kernel map refusal
    /// is tried again later; a bound cgroup is never asked about again (an event in it
    /// attributed to another container does not unbind it); a reload asks again.
    #[test]
    fn shared_undecided_and_refused_cgroups() {
        let maps = Fake::with(|cgroup, pid| match (cgroup, pid) {
            (5, _) => CgroupOwner::Shared("shared".into()),
            (6, 1) => CgroupOwner::Unknown("gone".into()),
            _ => CgroupOwner::Container {
                dir: None,
                top: None,
            },
        });
        let (_dir, engine, mut k) = setup(&maps);
        k.observe(&maps, &engine, &web(5, 10));
        k.observe(&maps, &engine, &web(5, 11));
        k.observe(
            &maps,
            &engine,
            &ev("web2", "docker.io/library/nginx", 5, 12),
        );
        assert_eq!(k.enforced(), 0);
        k.observe(&maps, &engine, &web(6, 1));
        k.observe(&maps, &engine, &web(6, 1));
        assert_eq!(maps.log(), ["owner 5 web", "owner 6 web"]);
        // another process of the cgroup is asked at once
        k.observe(&maps, &engine, &web(6, 2));
        assert_eq!(k.enforced(), 1);
        // bound: another container's event in it changes nothing
        k.observe(
            &maps,
            &engine,
            &ev("other", "docker.io/library/redis", 6, 3),
        );
        assert_eq!(
            maps.log(),
            ["owner 5 web", "owner 6 web", "owner 6 web", "enforce 6 1"]
        );
        // the kernel map refuses: tried again later, not on every event
        maps.full.set(true);
        k.observe(&maps, &engine, &web(7, 4));
        k.observe(&maps, &engine, &web(7, 4));
        maps.full.set(false);
        k.held.insert(7, Hold::Until(Instant::now()));
        k.observe(&maps, &engine, &web(7, 4));
        assert_eq!(k.enforced(), 1);
        assert_eq!(k.bound.len(), 2);
        // a reload asks about the shared one again
        k.sync(&maps, &engine);
        maps.log.borrow_mut().clear();
        k.observe(&maps, &engine, &web(5, 13));
        assert_eq!(maps.log(), ["owner 5 web"]);
    }
}
