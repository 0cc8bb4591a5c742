//! Keeps per-container kernel maps in step with the loaded profiles and the containers the
//! source reports: enforce-kill's ([`falco_learn_probe::kill`]) and the kernel filter's
//! ([`falco_learn_probe::filter`], `engine.kernel_filter`). Both are the same shape: each
//! profile's allow-list under a number, and each container's cgroup under its image's
//! profile ([`ContainerMaps`]); one [`Binder`] per kind of maps does the bookkeeping.
//!
//! - Each loaded profile gets a stable number and its allow-list in the kernel (again after
//!   every SIGHUP reload; a profile that is no longer loaded releases its containers).
//! - The first event of a container whose image has a profile puts the container's cgroup
//!   (the event's cgroup v2 id) under that profile. Containers without a profile, and the
//!   host, never are.
//! - Every 10 s, containers with no event for a minute whose last seen process is gone are
//!   released (cgroup ids are never reused, so a stale entry can never hit another
//!   container; releasing keeps the kernel map small).
//!
//! Which alert a kill marks is decided by the [`Engine`] from the event's own `killed` flag
//! ([`crate::Action::Killed`]), not here.

use crate::Engine;
use falco_learn_event::{Event, EventType};
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
    /// Mark the cgroup as one no loaded profile applies to (`on`), or no longer: maps that
    /// filter by the rules alone for such cgroups act on it (the kernel filter). Returns
    /// whether these maps keep such marks.
    fn set_rules_only(&self, _cgroup: u64, _on: bool) -> Result<bool, String> {
        Ok(false)
    }
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
    fn set_rules_only(&self, cgroup: u64, on: bool) -> Result<bool, String> {
        falco_learn_probe::filter::ProfileFilter::set_rules_only(self, cgroup, on)
            .map(|()| true)
            .map_err(|e| e.to_string())
    }
}

/// What happened to a container's enforcement.
enum State {
    /// Cgroup `id` under profile `profile`; its last event's pid and time.
    Enforced {
        id: u64,
        profile: u32,
        pid: u32,
        last: Instant,
    },
    /// No loaded profile applies to it: cgroup `id` is marked rules-only
    /// ([`ContainerMaps::set_rules_only`]); its last event's pid and time.
    RulesOnly { id: u64, pid: u32, last: Instant },
    /// Not under enforcement (no profile and no rules-only mark, or the kernel map refused
    /// it).
    Skipped,
}

/// One kind of [`ContainerMaps`]' bookkeeping: profile numbers and the containers under
/// them.
pub struct Binder {
    /// (repository, tag) → profile number, stable across reloads.
    ids: HashMap<(String, String), u32>,
    next: u32,
    /// By container id (Falco's short id).
    containers: HashMap<String, State>,
    /// The host's cgroups marked rules-only (no host profile loaded), with when an event
    /// of each was last seen.
    host: HashMap<u64, Instant>,
    last_sweep: Instant,
}

impl Default for Binder {
    fn default() -> Self {
        Binder::new()
    }
}

impl Binder {
    /// No profile and no container yet.
    pub fn new() -> Binder {
        Binder {
            ids: HashMap::new(),
            next: 1,
            containers: HashMap::new(),
            host: HashMap::new(),
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
        // containers seen without a profile may have one now (and the host): they are
        // no longer rules-only, until their next event says again
        self.containers.retain(|_, s| match s {
            State::RulesOnly { id, .. } => {
                let _ = maps.set_rules_only(*id, false);
                false
            }
            State::Skipped => false,
            State::Enforced { .. } => true,
        });
        for (id, _) in self.host.drain() {
            let _ = maps.set_rules_only(id, false);
        }
    }

    /// Containers under enforcement now.
    pub fn enforced(&self) -> usize {
        self.containers
            .values()
            .filter(|s| matches!(s, State::Enforced { .. }))
            .count()
    }

    /// Put the event's container under its image's profile on its first event.
    pub fn observe(&mut self, maps: &dyn ContainerMaps, engine: &Engine, ev: &Event) {
        let c = &ev.container;
        // A process is attributed to a container (or the host) by the cgroup it was exec'd
        // in, while an event's cgroup id is where the process is now: `runc init` is the
        // host's until it execs the entrypoint, and its events inside the new container
        // carry the container's cgroup id. Only an exec says both at the same moment, so
        // rules-only marks (which drop events) are made from execs alone.
        let exec =
            matches!(ev.event_type(), EventType::Execve | EventType::Execveat) && ev.res >= 0;
        if c.id == "host" && ev.cgroup_id != 0 {
            // the host is never under a profile's enforcement; with no host profile
            // loaded, its cgroups are rules-only
            if let Some(last) = self.host.get_mut(&ev.cgroup_id) {
                *last = Instant::now();
            } else if exec && !engine.has_profile_for(ev) {
                match maps.set_rules_only(ev.cgroup_id, true) {
                    Ok(true) => {
                        tracing::debug!(
                            "{}: host cgroup id {} (pid {} {}) is rules-only",
                            maps.what(),
                            ev.cgroup_id,
                            ev.process.pid,
                            ev.process.comm
                        );
                        self.host.insert(ev.cgroup_id, Instant::now());
                    }
                    Ok(false) => {}
                    Err(e) => tracing::debug!("{}: host cgroup: {e}", maps.what()),
                }
            }
            return;
        }
        if c.id.is_empty() || c.id == "host" || c.image_repository.is_empty() {
            return;
        }
        match self.containers.get_mut(c.id.as_str()) {
            Some(State::Enforced { pid, last, .. }) | Some(State::RulesOnly { pid, last, .. }) => {
                *pid = ev.process.pid;
                *last = Instant::now();
                return;
            }
            Some(State::Skipped) => return,
            None => {}
        }
        if ev.cgroup_id == 0 {
            // no cgroup v2 id on this event: wait for one that has it
            return;
        }
        let key = (c.image_repository.clone(), c.image_tag.clone());
        let state = match self.ids.get(&key) {
            Some(&profile) if engine.has_profile(&key.0, &key.1) => {
                match maps.enforce(ev.cgroup_id, profile) {
                    Ok(()) => {
                        tracing::info!(
                            "{}: container {} ({}:{}, cgroup id {}) is under its profile",
                            maps.what(),
                            c.id,
                            key.0,
                            key.1,
                            ev.cgroup_id
                        );
                        State::Enforced {
                            id: ev.cgroup_id,
                            profile,
                            pid: ev.process.pid,
                            last: Instant::now(),
                        }
                    }
                    Err(e) => {
                        tracing::warn!("{}: container {}: {e}", maps.what(), c.id);
                        State::Skipped
                    }
                }
            }
            // no profile for its image: its cgroup is rules-only, from an exec in it (see
            // above); until then nothing is recorded, so the next event asks again
            _ if !engine.has_profile(&key.0, &key.1) && !exec => return,
            _ if !engine.has_profile(&key.0, &key.1) => {
                match maps.set_rules_only(ev.cgroup_id, true) {
                    Ok(true) => {
                        tracing::info!(
                            "{}: container {} ({}:{}, cgroup id {}) has no profile: what no \
                             rule can match is dropped in the kernel",
                            maps.what(),
                            c.id,
                            key.0,
                            key.1,
                            ev.cgroup_id
                        );
                        State::RulesOnly {
                            id: ev.cgroup_id,
                            pid: ev.process.pid,
                            last: Instant::now(),
                        }
                    }
                    Ok(false) => State::Skipped,
                    Err(e) => {
                        tracing::warn!("{}: container {}: {e}", maps.what(), c.id);
                        State::Skipped
                    }
                }
            }
            _ => State::Skipped,
        };
        self.containers.insert(c.id.clone(), state);
    }

    /// Release the cgroups of containers that are gone (every 10 s): no event
    /// for a minute and their last seen process no longer exists.
    pub fn sweep(&mut self, maps: &dyn ContainerMaps) {
        if self.last_sweep.elapsed() < Duration::from_secs(10) {
            return;
        }
        self.last_sweep = Instant::now();
        self.containers.retain(|cid, s| match s {
            State::Enforced { id, pid, last, .. } => {
                let gone = last.elapsed() >= Duration::from_secs(60)
                    && !falco_learn_probe::procfs::alive(*pid);
                if gone {
                    maps.release(*id);
                    tracing::debug!("{}: container {cid} is gone", maps.what());
                }
                !gone
            }
            State::RulesOnly { id, pid, last } => {
                let gone = last.elapsed() >= Duration::from_secs(60)
                    && !falco_learn_probe::procfs::alive(*pid);
                if gone {
                    let _ = maps.set_rules_only(*id, false);
                }
                !gone
            }
            State::Skipped => true,
        });
        // host cgroups quiet for ten minutes are unmarked (the next event marks them
        // again): the map stays bounded by the cgroups in use
        self.host.retain(|id, last| {
            let keep = last.elapsed() < Duration::from_secs(600);
            if !keep {
                let _ = maps.set_rules_only(*id, false);
            }
            keep
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
        /// Keeps rules-only marks (the kernel filter's maps do, enforce-kill's do not).
        rules_only: bool,
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
        fn set_rules_only(&self, cgroup: u64, on: bool) -> Result<bool, String> {
            if self.rules_only {
                self.log
                    .borrow_mut()
                    .push(format!("rules-only {cgroup} {on}"));
            }
            Ok(self.rules_only)
        }
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
        let mut k = Binder::new();
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

    /// Containers whose image has no profile, and the host without a host profile, are
    /// rules-only once their image is known (never before); a reload clears every mark
    /// (a profile may apply now) until the next event; a container under its profile, and
    /// the host with a host profile, never are.
    #[test]
    fn cgroups_no_profile_applies_to_are_rules_only_until_a_reload() {
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
        let maps = Fake {
            rules_only: true,
            ..Fake::default()
        };
        let mut k = Binder::new();
        k.sync(&maps, &engine);
        let typed = |t: EventType, mut ev: Event| {
            ev.typ = falco_learn_event::EventTypeField(t);
            ev
        };
        let exec = |ev: Event| typed(EventType::Execve, ev);
        let open = |ev: Event| typed(EventType::Openat, ev);
        for ev in [
            in_container("web", "docker.io/library/nginx", 77),
            // marks come from execs only: an event's cgroup is where its process is now,
            // its container where it was exec'd (runc init: the host's, in cgroup 78)
            open(in_container("host", "", 78)),
            open(in_container("db", "docker.io/library/redis", 78)),
            exec(in_container("db", "docker.io/library/redis", 78)),
            exec(in_container("db", "docker.io/library/redis", 78)),
            // image not resolved yet: nothing
            exec(in_container("new", "", 79)),
            exec(in_container("host", "", 1)),
            open(in_container("host", "", 1)),
            exec(in_container("host", "", 5)),
        ] {
            k.observe(&maps, &engine, &ev);
        }
        assert_eq!(
            *maps.log.borrow(),
            [
                "set 1 /usr/sbin/nginx",
                "enforce 77 1",
                "rules-only 78 true",
                "rules-only 1 true",
                "rules-only 5 true"
            ]
        );
        maps.log.borrow_mut().clear();
        // a reload: every mark goes (host order is a map's)
        k.sync(&maps, &engine);
        let mut log = maps.log.borrow().clone();
        log.sort();
        assert_eq!(
            log,
            [
                "rules-only 1 false",
                "rules-only 5 false",
                "rules-only 78 false",
                "set 1 /usr/sbin/nginx"
            ]
        );
        // the host with a host profile is never rules-only
        write_profile(dir.path(), "host", "", &["/usr/bin/true"]);
        let (with_host, _) =
            Engine::build(&[], Priority::Debug, from, Priority::Warning, "host").expect("engine");
        maps.log.borrow_mut().clear();
        k.sync(&maps, &with_host);
        k.observe(&maps, &with_host, &exec(in_container("host", "", 1)));
        assert!(
            !maps
                .log
                .borrow()
                .iter()
                .any(|l| l.starts_with("rules-only")),
            "{:?}",
            maps.log.borrow()
        );
    }
}
