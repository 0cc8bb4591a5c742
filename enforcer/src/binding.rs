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
use falco_learn_event::Event;
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

/// What happened to a container's enforcement.
enum State {
    /// Cgroup `id` under profile `profile`; its last event's pid and time.
    Enforced {
        id: u64,
        profile: u32,
        pid: u32,
        last: Instant,
    },
    /// Not under enforcement (no profile, or the kernel map refused it).
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
        // containers seen without a profile may have one now
        self.containers.retain(|_, s| !matches!(s, State::Skipped));
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
        if c.id.is_empty() || c.id == "host" || c.image_repository.is_empty() {
            return;
        }
        match self.containers.get_mut(c.id.as_str()) {
            Some(State::Enforced { pid, last, .. }) => {
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
}
