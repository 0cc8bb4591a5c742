//! Keeps per-container kernel maps in step with the loaded profiles and the containers the
//! source reports: enforce-kill's ([`falco_learn_probe::kill`]) and the kernel filter's
//! ([`falco_learn_probe::filter`], `engine.kernel_filter`). Both are the same shape: each
//! profile's allow-list under a number, and each container's cgroup under its image's
//! profile ([`ContainerMaps`]); one [`Binder`] per kind of maps does the bookkeeping.
//!
//! - Each loaded profile gets a stable number and its allow-list in the kernel (again after
//!   every SIGHUP reload; a profile that is no longer loaded releases its containers).
//! - The first event of each cgroup v2 of a container whose image has a profile puts that
//!   cgroup (the event's cgroup v2 id) under the profile: the container's first start, and
//!   again after every restart (same container id, a new cgroup). Containers without a
//!   profile, and the host, never are.
//! - A cgroup is bound only when `/proc/<pid>/cgroup` shows it is the container's own
//!   ([`falco_learn_probe::kill::container_cgroup`]): on a hybrid host a runtime that
//!   manages only cgroup v1 leaves its containers in a shared v2 cgroup, whose id must not
//!   put the host's or another container's processes under this profile. Such a
//!   container is said once and checked in userspace only.
//! - Every 10 s, cgroups with no event for a minute whose last seen process is gone are
//!   released (cgroup ids are never reused, so a stale entry can never hit another
//!   container; releasing keeps the kernel map small).
//!
//! Which alert a kill marks is decided by the [`Engine`] from the event's own `killed` flag
//! ([`crate::Action::Killed`]), not here.

use crate::Engine;
use falco_learn_event::Event;
use falco_learn_probe::kill::CgroupOwner;
use falco_learn_profiler::Profile;
use std::collections::{HashMap, HashSet};
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
}

impl ContainerMaps for falco_learn_probe::kill::KillPolicy {
    fn what(&self) -> &'static str {
        "enforce-kill"
    }
    fn set_profile(&self, profile: u32, p: &Profile) -> Result<String, String> {
        falco_learn_probe::kill::KillPolicy::set_profile(
            self,
            profile,
            p.exec.keys().map(String::as_str),
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
}

/// A cgroup of a container under its profile: its last event's pid and time.
struct Seen {
    pid: u32,
    last: Instant,
}

/// What happened to a container's enforcement.
enum State {
    /// Under profile `profile`: every cgroup v2 of the container seen so far. A restart
    /// keeps the container id and gets a new cgroup; a runtime or the workload may nest
    /// cgroups below the container's. Each is bound on its first event.
    Enforced {
        profile: u32,
        cgroups: HashMap<u64, Seen>,
    },
    /// Not under enforcement: its image has no profile.
    Skipped,
}

/// Decides whether an event's cgroup v2 is its container's own
/// ([`falco_learn_probe::kill::container_cgroup`] on a live node; fakes in tests).
pub type OwnerCheck = dyn Fn(&Event) -> CgroupOwner;

/// One kind of [`ContainerMaps`]' bookkeeping: profile numbers and the containers under
/// them.
pub struct Binder {
    /// (repository, tag) → profile number, stable across reloads.
    ids: HashMap<(String, String), u32>,
    next: u32,
    /// By container id (Falco's short id).
    containers: HashMap<String, State>,
    /// Cgroup ids never to bind (until the next reload): shared with the host or other
    /// containers, or refused by the kernel map.
    refused: HashSet<u64>,
    owner: Box<OwnerCheck>,
    last_sweep: Instant,
}

impl Default for Binder {
    fn default() -> Self {
        Binder::new()
    }
}

impl Binder {
    /// No profile and no container yet; cgroups are checked against `/proc`.
    pub fn new() -> Binder {
        Binder::with_owner(Box::new(|ev: &Event| {
            falco_learn_probe::kill::container_cgroup(
                ev.process.pid,
                ev.cgroup_id,
                &ev.container.id,
            )
        }))
    }

    /// As [`Binder::new`], deciding cgroup ownership with `owner`.
    pub fn with_owner(owner: Box<OwnerCheck>) -> Binder {
        Binder {
            ids: HashMap::new(),
            next: 1,
            containers: HashMap::new(),
            refused: HashSet::new(),
            owner,
            last_sweep: Instant::now(),
        }
    }

    /// Load every profile's allow-list; forget profiles no longer loaded.
    pub fn sync(&mut self, maps: &dyn ContainerMaps, engine: &Engine) {
        let what = maps.what();
        let loaded = engine.loaded_profiles();
        let keep: HashSet<(String, String)> = loaded
            .iter()
            .map(|p| (p.image.repository.clone(), p.image.tag.clone()))
            .collect();
        let gone: Vec<((String, String), u32)> = self
            .ids
            .iter()
            .filter(|(k, _)| !keep.contains(*k))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (k, id) in gone {
            maps.drop_profile(id);
            self.ids.remove(&k);
            self.containers
                .retain(|_, s| !matches!(s, State::Enforced { profile, .. } if *profile == id));
            tracing::info!("{what}: profile of {}:{} unloaded", k.0, k.1);
        }
        for p in loaded {
            let (repo, tag) = (&p.image.repository, &p.image.tag);
            let id = *self
                .ids
                .entry((repo.clone(), tag.clone()))
                .or_insert_with(|| {
                    self.next += 1;
                    self.next - 1
                });
            match maps.set_profile(id, p) {
                Ok(said) => tracing::info!("{what}: {repo}:{tag} {said}"),
                Err(e) => tracing::error!("{what}: {repo}:{tag}: {e}"),
            }
        }
        // containers seen without a profile may have one now; refused cgroups are
        // checked again
        self.containers.retain(|_, s| !matches!(s, State::Skipped));
        self.refused.clear();
    }

    /// Containers under enforcement now.
    pub fn enforced(&self) -> usize {
        self.containers
            .values()
            .filter(|s| matches!(s, State::Enforced { .. }))
            .count()
    }

    /// Put the event's cgroup under its container's image's profile, on the first event
    /// of each cgroup v2 of a profiled container: its first start, every restart (same
    /// container id, new cgroup), cgroups nested below it. A cgroup that is not the
    /// container's own ([`CgroupOwner::Shared`]) is never bound, and said so once.
    pub fn observe(&mut self, maps: &dyn ContainerMaps, engine: &Engine, ev: &Event) {
        let c = &ev.container;
        if c.id.is_empty() || c.id == "host" || c.image_repository.is_empty() {
            return;
        }
        if ev.cgroup_id == 0 || self.refused.contains(&ev.cgroup_id) {
            // no cgroup v2 id on this event (wait for one that has it), or one never bound
            return;
        }
        let profile = match self.containers.get_mut(c.id.as_str()) {
            Some(State::Enforced { profile, cgroups }) => {
                if let Some(seen) = cgroups.get_mut(&ev.cgroup_id) {
                    seen.pid = ev.process.pid;
                    seen.last = Instant::now();
                    return;
                }
                *profile
            }
            Some(State::Skipped) => return,
            None => {
                let key = (c.image_repository.clone(), c.image_tag.clone());
                match self.ids.get(&key) {
                    Some(&profile) if engine.has_profile(&key.0, &key.1) => profile,
                    _ => {
                        self.containers.insert(c.id.clone(), State::Skipped);
                        return;
                    }
                }
            }
        };
        let what = maps.what();
        let image = format!("{}:{}", c.image_repository, c.image_tag);
        match (self.owner)(ev) {
            CgroupOwner::Container => {}
            CgroupOwner::Unknown(why) => {
                tracing::debug!(
                    "{what}: container {} (cgroup id {}): {why}",
                    c.id,
                    ev.cgroup_id
                );
                return;
            }
            CgroupOwner::Shared(why) => {
                tracing::warn!(
                    "{what}: container {} ({image}) is not put under its profile: {why}; its \
                     events are checked in userspace only (cgroup id {})",
                    c.id,
                    ev.cgroup_id
                );
                self.refused.insert(ev.cgroup_id);
                return;
            }
        }
        if let Err(e) = maps.enforce(ev.cgroup_id, profile) {
            tracing::warn!(
                "{what}: container {} (cgroup id {}): {e}",
                c.id,
                ev.cgroup_id
            );
            self.refused.insert(ev.cgroup_id);
            return;
        }
        let seen = Seen {
            pid: ev.process.pid,
            last: Instant::now(),
        };
        match self.containers.get_mut(c.id.as_str()) {
            Some(State::Enforced { cgroups, .. }) => {
                let before: Vec<String> = cgroups.keys().map(u64::to_string).collect();
                cgroups.insert(ev.cgroup_id, seen);
                tracing::info!(
                    "{what}: container {} ({image}, cgroup id {}) is under its profile \
                     (a new cgroup of the container: restarted or nested; before: {})",
                    c.id,
                    ev.cgroup_id,
                    before.join(", ")
                );
            }
            _ => {
                self.containers.insert(
                    c.id.clone(),
                    State::Enforced {
                        profile,
                        cgroups: HashMap::from([(ev.cgroup_id, seen)]),
                    },
                );
                tracing::info!(
                    "{what}: container {} ({image}, cgroup id {}) is under its profile",
                    c.id,
                    ev.cgroup_id
                );
            }
        }
    }

    /// Release the cgroups that are gone (every 10 s): no event for a minute and their
    /// last seen process no longer exists. A container with none left is forgotten.
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
        self.containers.retain(|cid, s| match s {
            State::Enforced { cgroups, .. } => {
                cgroups.retain(|id, seen| {
                    let gone = seen.last.elapsed() >= idle && !alive(seen.pid);
                    if gone {
                        maps.release(*id);
                        tracing::debug!("{}: cgroup {id} of container {cid} is gone", maps.what());
                    }
                    !gone
                });
                !cgroups.is_empty()
            }
            State::Skipped => true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, ProfilesFrom};
    use falco_learn_rules::Priority;
    use falco_learn_test_support::{events::in_container, write_profile};
    use std::cell::RefCell;

    #[derive(Default)]
    struct Fake {
        log: RefCell<Vec<String>>,
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
            self.log
                .borrow_mut()
                .push(format!("enforce {cgroup} {profile}"));
            Ok(())
        }
        fn release(&self, cgroup: u64) {
            self.log.borrow_mut().push(format!("release {cgroup}"));
        }
    }

    /// A binder that takes every cgroup for its container's own.
    fn owned() -> Binder {
        Binder::with_owner(Box::new(|_| CgroupOwner::Container))
    }

    fn nginx_engine(dir: &std::path::Path) -> Engine {
        write_profile(
            dir,
            "docker.io/library/nginx",
            "latest",
            &["/usr/sbin/nginx"],
        );
        let from = ProfilesFrom::Dir {
            path: dir,
            allow_empty: true,
        };
        Engine::build(&[], Priority::Debug, from, Priority::Warning, "")
            .expect("engine")
            .0
    }

    fn web(cgroup: u64, pid: u32) -> Event {
        let mut ev = in_container("web", "docker.io/library/nginx", cgroup);
        std::sync::Arc::make_mut(&mut ev.process).pid = pid;
        ev
    }

    /// A restarted container (same id, a new cgroup) is bound again under the same
    /// profile; the old cgroup is released once it is idle and its process is gone, and
    /// the container is forgotten only when none of its cgroups is left.
    #[test]
    fn a_restarted_container_is_bound_again() {
        let dir = tempfile::tempdir().expect("tmp");
        let engine = nginx_engine(dir.path());
        let maps = Fake::default();
        let mut k = owned();
        k.sync(&maps, &engine);
        k.observe(&maps, &engine, &web(77, 100));
        k.observe(&maps, &engine, &web(77, 101));
        // restart: the same container id in a new cgroup
        k.observe(&maps, &engine, &web(91, 200));
        k.observe(&maps, &engine, &web(91, 201));
        assert_eq!(k.enforced(), 1);
        // nothing idle yet: nothing released
        k.sweep_now(&maps, Duration::from_secs(60), &|_| false);
        // the old cgroup's last process (101) is gone, the new one's (201) alive
        k.sweep_now(&maps, Duration::ZERO, &|pid| pid == 201);
        assert_eq!(k.enforced(), 1);
        // the new cgroup's process is gone too: the container is forgotten
        k.sweep_now(&maps, Duration::ZERO, &|_| false);
        assert_eq!(k.enforced(), 0);
        assert_eq!(
            *maps.log.borrow(),
            [
                "set 1 /usr/sbin/nginx",
                "enforce 77 1",
                "enforce 91 1",
                "release 77",
                "release 91"
            ]
        );
    }

    /// A cgroup that is not the container's own (a shared v2 cgroup of a hybrid host) is
    /// never bound and asked about once; one not decidable yet is asked again; a reload
    /// asks again.
    #[test]
    fn a_shared_cgroup_is_never_bound() {
        let dir = tempfile::tempdir().expect("tmp");
        let engine = nginx_engine(dir.path());
        let maps = Fake::default();
        let asked = std::rc::Rc::new(RefCell::new(Vec::new()));
        let log = asked.clone();
        let mut k = Binder::with_owner(Box::new(move |ev: &Event| {
            log.borrow_mut().push(ev.cgroup_id);
            match ev.cgroup_id {
                5 => CgroupOwner::Shared("shared".into()),
                6 if ev.process.pid == 1 => CgroupOwner::Unknown("gone".into()),
                _ => CgroupOwner::Container,
            }
        }));
        k.sync(&maps, &engine);
        k.observe(&maps, &engine, &web(5, 10));
        k.observe(&maps, &engine, &web(5, 11));
        assert_eq!(k.enforced(), 0);
        k.observe(&maps, &engine, &web(6, 1));
        k.observe(&maps, &engine, &web(6, 2));
        k.observe(&maps, &engine, &web(6, 3));
        k.observe(&maps, &engine, &web(5, 12));
        assert_eq!(k.enforced(), 1);
        k.sync(&maps, &engine);
        k.observe(&maps, &engine, &web(5, 13));
        assert_eq!(*asked.borrow(), [5, 6, 6, 5]);
        assert_eq!(
            *maps.log.borrow(),
            [
                "set 1 /usr/sbin/nginx",
                "enforce 6 1",
                "set 1 /usr/sbin/nginx"
            ]
        );
    }

    /// A profiled container is put under its profile once, on its first event
    /// with a cgroup id; unprofiled containers and the host never are; a
    /// reload without the profile drops it.
    #[test]
    fn containers_go_under_their_profile_once() {
        let dir = tempfile::tempdir().expect("tmp");
        write_profile(
            dir.path(),
            "docker.io/library/nginx",
            "latest",
            &["/usr/sbin/nginx"],
        );
        let from = ProfilesFrom::Dir {
            path: dir.path(),
            allow_empty: true,
        };
        let (engine, _) =
            Engine::build(&[], Priority::Debug, from, Priority::Warning, "").expect("engine");
        let maps = Fake::default();
        let mut k = owned();
        k.sync(&maps, &engine);
        k.observe(
            &maps,
            &engine,
            &in_container("web", "docker.io/library/nginx", 0),
        );
        k.observe(
            &maps,
            &engine,
            &in_container("web", "docker.io/library/nginx", 77),
        );
        k.observe(
            &maps,
            &engine,
            &in_container("web", "docker.io/library/nginx", 77),
        );
        k.observe(
            &maps,
            &engine,
            &in_container("db", "docker.io/library/redis", 78),
        );
        k.observe(&maps, &engine, &in_container("host", "", 1));
        assert_eq!(k.enforced(), 1);
        std::fs::remove_file(dir.path().join("nginx.yaml")).expect("rm");
        let (empty, _) =
            Engine::build(&[], Priority::Debug, from, Priority::Warning, "").expect("engine");
        k.sync(&maps, &empty);
        assert_eq!(k.enforced(), 0);
        assert_eq!(
            *maps.log.borrow(),
            ["set 1 /usr/sbin/nginx", "enforce 77 1", "drop 1"]
        );
    }
}
