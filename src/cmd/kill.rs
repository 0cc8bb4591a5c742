//! `run --mode enforce-kill`: keeps the kernel's kill maps
//! ([`falco_learn_probe::kill`]) in step with the loaded profiles and the
//! containers the probe sees.
//!
//! - Each loaded profile gets a stable number and its executables as the
//!   kernel allow-list (again after every SIGHUP reload; a profile that is no
//!   longer loaded releases its containers).
//! - The first event of a container whose image has a profile puts the
//!   container's cgroup (the event's cgroup v2 id) under that profile.
//!   Containers without a profile, and the host, are never under enforcement.
//! - Every 10 s, containers with no event for a minute whose last seen process
//!   is gone are released (cgroup ids are never reused, so a stale entry can
//!   never hit another container; releasing keeps the kernel map small).

use falco_learn_enforcer::metrics as m;
use falco_learn_enforcer::Engine;
use falco_learn_event::{Event, EventType};
use falco_learn_probe::kill::KillPolicy;
use falco_learn_rules::Alert;
use std::collections::HashMap;
use std::time::{Duration, Instant};

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

pub struct Killer {
    /// (repository, tag) → profile number, stable across reloads.
    ids: HashMap<(String, String), u32>,
    next: u32,
    /// By container id (Falco's short id).
    containers: HashMap<String, State>,
    last_sweep: Instant,
}

impl Killer {
    pub fn new() -> Killer {
        Killer {
            ids: HashMap::new(),
            next: 1,
            containers: HashMap::new(),
            last_sweep: Instant::now(),
        }
    }

    /// Load every profile's allow-list; forget profiles no longer loaded.
    pub fn sync(&mut self, policy: &KillPolicy, engine: &Engine) {
        let loaded = engine.profile_execs();
        let keep: std::collections::HashSet<(String, String)> = loaded
            .iter()
            .map(|(r, t, _)| (r.clone(), t.clone()))
            .collect();
        let gone: Vec<((String, String), u32)> = self
            .ids
            .iter()
            .filter(|(k, _)| !keep.contains(*k))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (k, id) in gone {
            policy.drop_profile(id);
            self.ids.remove(&k);
            self.containers
                .retain(|_, s| !matches!(s, State::Enforced { profile, .. } if *profile == id));
            tracing::info!("enforce-kill: profile of {}:{} unloaded", k.0, k.1);
        }
        for (repo, tag, execs) in loaded {
            let id = *self
                .ids
                .entry((repo.clone(), tag.clone()))
                .or_insert_with(|| {
                    self.next += 1;
                    self.next - 1
                });
            match policy.set_profile(id, execs.iter().map(String::as_str)) {
                Ok(n) => tracing::info!(
                    "enforce-kill: {repo}:{tag} allows {n} executable(s); any other exec in its containers is killed"
                ),
                Err(e) => tracing::error!("enforce-kill: {repo}:{tag}: {e}"),
            }
        }
        // containers seen without a profile may have one now
        self.containers.retain(|_, s| !matches!(s, State::Skipped));
        metrics::gauge!(m::KILL_CONTAINERS).set(self.enforced() as f64);
    }

    fn enforced(&self) -> usize {
        self.containers
            .values()
            .filter(|s| matches!(s, State::Enforced { .. }))
            .count()
    }

    /// Put the event's container under its image's profile on its first event.
    pub fn observe(&mut self, policy: &KillPolicy, engine: &Engine, ev: &Event) {
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
                match policy.enforce(ev.cgroup_id, profile) {
                    Ok(()) => {
                        tracing::info!(
                            "enforce-kill: container {} ({}:{}, cgroup id {}) is under its profile",
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
                        tracing::warn!("enforce-kill: container {}: {e}", c.id);
                        State::Skipped
                    }
                }
            }
            _ => State::Skipped,
        };
        self.containers.insert(c.id.clone(), state);
        metrics::gauge!(m::KILL_CONTAINERS).set(self.enforced() as f64);
    }

    /// Release the cgroups of containers that are gone (every 10 s): no event
    /// for a minute and their last seen process no longer exists.
    pub fn sweep(&mut self, policy: &KillPolicy) {
        if self.last_sweep.elapsed() < Duration::from_secs(10) {
            return;
        }
        self.last_sweep = Instant::now();
        self.containers.retain(|cid, s| match s {
            State::Enforced { id, pid, last, .. } => {
                let gone = last.elapsed() >= Duration::from_secs(60)
                    && !std::path::Path::new(&format!("/proc/{pid}")).exists();
                if gone {
                    policy.release(*id);
                    tracing::debug!("enforce-kill: container {cid} is gone");
                }
                !gone
            }
            State::Skipped => true,
        });
        metrics::gauge!(m::KILL_CONTAINERS).set(self.enforced() as f64);
    }
}

/// Whether `ev` is an exec that enforce-kill killed (the process's later
/// events, its exit, keep the flag in their process state).
pub fn killed_exec(ev: &Event) -> bool {
    ev.process.exe_flags.killed
        && matches!(ev.event_type(), EventType::Execve | EventType::Execveat)
}

/// Mark the exec-anomaly alert of a killed exec (`output` gains
/// ` action=killed`, `output_fields` `falco_learn.action`, tags `killed`).
/// Returns whether an alert was marked.
pub fn mark_killed(ev: &Event, alerts: &mut [Alert]) -> bool {
    if !killed_exec(ev) {
        return false;
    }
    let mut marked = false;
    for a in alerts.iter_mut().filter(|a| {
        a.tags.iter().any(|t| t == "falco_learn") && a.rule.starts_with("Unexpected process in ")
    }) {
        a.output.push_str(" action=killed");
        a.output_fields
            .insert("falco_learn.action".into(), "killed".into());
        a.tags.push("killed".into());
        marked = true;
    }
    metrics::counter!(m::KILLS, "image" => ev.container.image()).increment(1);
    marked
}
