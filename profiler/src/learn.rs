//! Learning: events in, per-image profiles and deltas out.
//!
//! Every event of a container with a known image counts towards that image's
//! profile. Before anything is learned the event goes through the poison
//! check: when a loaded default rule fires on it, it is not learned but
//! logged, counted and listed in the profile's learning section, and the
//! profile is marked tainted. The process that did it is remembered, and
//! later events of it or of its descendants (by pid and start time, within
//! the container) are not learned either: what a reverse shell runs next is
//! rarely flagged by itself.

use crate::matcher::{behaviour, Behaviour};
use crate::model::{Delta, ImageRef, Limits, Profile, Proto, TaintEntry, WriteKey};
use crate::ProfileError;
use falco_learn_event::Event;
use falco_learn_rules::Ruleset;
use std::collections::{BTreeMap, BTreeSet};

/// A process remembered as flagged: container id, pid, start time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProcKey {
    pub container: String,
    pub pid: u32,
    pub start_ts: u64,
}

/// What [`Learner::observe`] did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The event carries no image (host process, unattributed container).
    NoImage,
    /// Counted for its image, but of no kind a profile describes.
    Ignored { deltas: Vec<Delta> },
    /// Of a learnable kind but missing the value (no path, port or peer).
    Incomplete { deltas: Vec<Delta> },
    /// A default rule fired: not learned, profile tainted.
    Flagged { rules: Vec<String> },
    /// The process or one of its ancestors was flagged earlier: not learned.
    FlaggedDescendant,
    /// Learned; `deltas` lists what was new (empty when only counts moved).
    Learned { deltas: Vec<Delta> },
}

/// Counters over everything observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LearnStats {
    pub events: u64,
    pub no_image: u64,
    pub ignored: u64,
    pub incomplete: u64,
    pub flagged: u64,
    pub flagged_descendants: u64,
    pub learned: u64,
    /// Events that taught something new.
    pub new_behaviour: u64,
}

/// Keys of a profile that changed since the last [`Learner::take_changes`].
/// A key no longer in the profile was removed (absorbed by generalisation).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dirty {
    /// Image, digests or learning section.
    pub header: bool,
    pub exec: BTreeSet<String>,
    pub outbound: BTreeSet<(Proto, u16)>,
    pub write_files: BTreeSet<String>,
    pub write_dirs: BTreeSet<String>,
    pub write_globs: BTreeSet<String>,
    /// Container ids seen for the first time.
    pub containers: BTreeSet<String>,
}

/// Builds profiles from events.
#[derive(Debug)]
pub struct Learner {
    limits: Limits,
    poison: Option<Ruleset>,
    profiles: BTreeMap<ImageRef, Profile>,
    containers: BTreeMap<ImageRef, BTreeSet<String>>,
    flagged_procs: BTreeSet<ProcKey>,
    dirty: BTreeMap<ImageRef, Dirty>,
    stats: LearnStats,
}

impl Learner {
    /// The ruleset events are checked against for poisoning, if any.
    pub fn poison_rules(&self) -> Option<&Ruleset> {
        self.poison.as_ref()
    }

    /// A learner with these limits; `poison` is the ruleset whose alerts
    /// keep events out of the profiles (normally our default rules).
    pub fn new(limits: Limits, poison: Option<Ruleset>) -> Result<Learner, ProfileError> {
        limits.validate()?;
        Ok(Learner {
            limits,
            poison,
            profiles: BTreeMap::new(),
            containers: BTreeMap::new(),
            flagged_procs: BTreeSet::new(),
            dirty: BTreeMap::new(),
            stats: LearnStats::default(),
        })
    }

    /// Continue from stored state (resuming a window): profiles, the
    /// container ids seen per image and the flagged processes.
    pub fn restore(
        &mut self,
        profiles: impl IntoIterator<Item = Profile>,
        containers: impl IntoIterator<Item = (ImageRef, String)>,
        flagged_procs: impl IntoIterator<Item = ProcKey>,
    ) {
        for p in profiles {
            self.profiles.insert(p.image.clone(), p);
        }
        for (img, id) in containers {
            self.containers.entry(img).or_default().insert(id);
        }
        self.flagged_procs.extend(flagged_procs);
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn stats(&self) -> &LearnStats {
        &self.stats
    }

    pub fn profiles(&self) -> &BTreeMap<ImageRef, Profile> {
        &self.profiles
    }

    pub fn profile(&self, image: &ImageRef) -> Option<&Profile> {
        self.profiles.get(image)
    }

    pub fn into_profiles(self) -> BTreeMap<ImageRef, Profile> {
        self.profiles
    }

    pub fn flagged_procs(&self) -> &BTreeSet<ProcKey> {
        &self.flagged_procs
    }

    /// Keys changed since the last call, per image.
    pub fn take_changes(&mut self) -> BTreeMap<ImageRef, Dirty> {
        std::mem::take(&mut self.dirty)
    }

    /// Learn from one event.
    pub fn observe(&mut self, ev: &Event) -> Outcome {
        self.stats.events += 1;
        let Some(image) = ImageRef::of_event(ev) else {
            self.stats.no_image += 1;
            return Outcome::NoImage;
        };
        let limits = self.limits;
        let dirty = self.dirty.entry(image.clone()).or_default();
        dirty.header = true;
        let profile = self
            .profiles
            .entry(image.clone())
            .or_insert_with(|| Profile::new(image.clone()));
        let l = &mut profile.learning;
        l.events += 1;
        l.started = crate::model::min_known(l.started, ev.ts);
        l.ended = l.ended.max(ev.ts);

        let mut deltas = Vec::new();
        let cid = &ev.container.id;
        if !cid.is_empty() {
            let seen = self.containers.entry(image.clone()).or_default();
            if !seen.contains(cid) {
                seen.insert(cid.clone());
                dirty.containers.insert(cid.clone());
                profile.learning.containers += 1;
                deltas.push(Delta::NewContainer { id: cid.clone() });
            }
        }
        let digest = &ev.container.image_digest;
        if !digest.is_empty() && !profile.digests.contains(digest) {
            profile.digests.insert(digest.clone());
            deltas.push(Delta::NewDigest {
                digest: digest.clone(),
            });
        }

        let b = behaviour(ev);
        let me = ProcKey {
            container: cid.clone(),
            pid: ev.process.pid,
            start_ts: ev.process.start_ts,
        };
        if let Some(rs) = &self.poison {
            let rules: Vec<String> = rs.matching(ev).iter().map(|r| r.name.clone()).collect();
            if !rules.is_empty() {
                self.stats.flagged += 1;
                let l = &mut profile.learning;
                l.tainted = true;
                l.flagged_events += 1;
                let value = b.map_or_else(|| "-".to_string(), |b| b.value());
                for r in &rules {
                    tracing::warn!(
                        image = %image, rule = %r, event = %ev.event_type(),
                        process = %ev.process.exepath, value = %value, container = %cid,
                        "not learned: a default rule flagged this event; profile tainted"
                    );
                    l.taint.push(TaintEntry {
                        time: ev.ts,
                        rule: r.clone(),
                        event: ev.event_type().as_str().to_string(),
                        process: ev.process.exepath.clone(),
                        value: value.clone(),
                        container: cid.clone(),
                    });
                }
                l.taint.sort();
                l.taint.truncate(limits.taint_list_max);
                self.flagged_procs.insert(me);
                return Outcome::Flagged { rules };
            }
        }
        if !self.flagged_procs.is_empty() {
            let flagged_ancestor = ev.ancestors.iter().any(|a| {
                self.flagged_procs.contains(&ProcKey {
                    container: cid.clone(),
                    pid: a.pid,
                    start_ts: a.start_ts,
                })
            });
            if flagged_ancestor || self.flagged_procs.contains(&me) {
                self.stats.flagged_descendants += 1;
                profile.learning.flagged_descendant_events += 1;
                self.flagged_procs.insert(me);
                return Outcome::FlaggedDescendant;
            }
        }

        let before = deltas.len();
        match b {
            None => {
                self.stats.ignored += 1;
                return Outcome::Ignored { deltas };
            }
            // a path the kernel could not report whole stands for no single file:
            // never learned (and never allowed by the matcher)
            Some(Behaviour::Exec { path, .. } | Behaviour::Write { path })
                if falco_learn_event::path::is_truncated(path) =>
            {
                tracing::warn!(
                    image = %image, event = %ev.event_type(), value = %path,
                    container = %cid,
                    "not learned: the kernel could not report this path whole"
                );
                self.stats.incomplete += 1;
                return Outcome::Incomplete { deltas };
            }
            Some(Behaviour::Exec { path, tmpfs }) if !path.is_empty() => {
                if !dirty.exec.contains(path) {
                    dirty.exec.insert(path.to_string());
                }
                deltas.extend(profile.learn_exec(path, tmpfs, ev.ts));
            }
            Some(Behaviour::Outbound {
                proto,
                port: Some(port),
                peer: Some(peer),
            }) => {
                dirty.outbound.insert((proto, port));
                deltas.extend(profile.learn_outbound(proto, port, peer, ev.ts, &limits));
            }
            Some(Behaviour::Write { path }) if !path.is_empty() => {
                match profile.write_key(path) {
                    WriteKey::Dir(d) => {
                        dirty.write_dirs.insert(d);
                    }
                    WriteKey::Glob(g) => {
                        dirty.write_globs.insert(g);
                    }
                    WriteKey::File if !dirty.write_files.contains(path) => {
                        dirty.write_files.insert(path.to_string());
                    }
                    WriteKey::File => {}
                }
                let ds = profile.learn_write(path, ev.ts, &limits);
                for d in &ds {
                    if let Delta::Generalised { dir, files, dirs } = d {
                        dirty.write_dirs.insert(dir.clone());
                        dirty.write_files.extend(files.iter().cloned());
                        dirty.write_dirs.extend(dirs.iter().cloned());
                    }
                }
                deltas.extend(ds);
            }
            Some(_) => {
                self.stats.incomplete += 1;
                return Outcome::Incomplete { deltas };
            }
        }
        self.stats.learned += 1;
        if deltas[before..].iter().any(Delta::is_behaviour) {
            self.stats.new_behaviour += 1;
            profile.learning.last_new_behaviour = ev.ts;
        }
        Outcome::Learned { deltas }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use falco_learn_event::{Ancestor, Container, EventType, EventTypeField, Process};

    fn exec(path: &str, pid: u32, ts: u64) -> Event {
        Event {
            ts,
            typ: EventTypeField(EventType::Execve),
            process: Process {
                pid,
                comm: path.rsplit('/').next().unwrap_or(path).into(),
                exepath: path.into(),
                start_ts: 1,
                ..Process::default()
            },
            container: Container {
                id: "c1".into(),
                image_repository: "docker.io/library/nginx".into(),
                image_tag: "1.27".into(),
                image_digest: "sha256:ab".into(),
                ..Container::default()
            },
            ..Event::default()
        }
    }

    fn poison() -> Ruleset {
        let rules = "- rule: Shell\n  desc: d\n  condition: evt.type = execve and proc.name = bash\n  output: shell %proc.exepath\n  priority: WARNING\n";
        let (rs, report) = Ruleset::load_sources(&[("poison.yaml", rules)]);
        assert!(report.errors.is_empty(), "{report}");
        rs
    }

    #[test]
    fn truncated_paths_are_never_learned() {
        let mut l = Learner::new(Limits::default(), None).expect("limits");
        let o = l.observe(&exec("<truncated>/usr/sbin/nginx", 10, 100));
        assert!(matches!(o, Outcome::Incomplete { .. }), "{o:?}");
        let p = l.profiles().values().next().expect("the image is known");
        assert!(p.exec.is_empty(), "{:?}", p.exec);
    }

    #[test]
    fn learns_and_tracks_convergence() {
        let mut l = Learner::new(Limits::default(), None).expect("limits");
        let o = l.observe(&exec("/usr/sbin/nginx", 10, 100));
        assert_eq!(
            o,
            Outcome::Learned {
                deltas: vec![
                    Delta::NewContainer { id: "c1".into() },
                    Delta::NewDigest {
                        digest: "sha256:ab".into()
                    },
                    Delta::NewExec {
                        path: "/usr/sbin/nginx".into(),
                        tmpfs: false
                    }
                ]
            }
        );
        assert_eq!(
            l.observe(&exec("/usr/sbin/nginx", 11, 200)),
            Outcome::Learned { deltas: vec![] }
        );
        let p = l
            .profile(&ImageRef::new("docker.io/library/nginx", "1.27"))
            .expect("profile");
        assert_eq!(p.learning.last_new_behaviour, 100);
        assert_eq!((p.learning.started, p.learning.ended), (100, 200));
        assert_eq!(p.learning.events, 2);
        assert_eq!(p.learning.containers, 1);
        assert_eq!(p.exec["/usr/sbin/nginx"].seen.count, 2);
        let mut host = exec("/usr/bin/ls", 1, 1);
        host.container = Container::host();
        assert_eq!(l.observe(&host), Outcome::NoImage);
    }

    #[test]
    fn flagged_events_and_their_descendants_are_not_learned() {
        let mut l = Learner::new(Limits::default(), Some(poison())).expect("limits");
        l.observe(&exec("/usr/sbin/nginx", 10, 100));
        let o = l.observe(&exec("/usr/bin/bash", 20, 200));
        assert_eq!(
            o,
            Outcome::Flagged {
                rules: vec!["Shell".into()]
            }
        );
        let mut child = exec("/usr/bin/curl", 21, 300);
        child.ancestors = vec![Ancestor {
            pid: 20,
            start_ts: 1,
            ..Ancestor::default()
        }]
        .into();
        assert_eq!(l.observe(&child), Outcome::FlaggedDescendant);
        let p = l
            .profile(&ImageRef::new("docker.io/library/nginx", "1.27"))
            .expect("profile");
        assert_eq!(p.exec.keys().collect::<Vec<_>>(), vec!["/usr/sbin/nginx"]);
        assert!(p.learning.tainted);
        assert_eq!(p.learning.flagged_events, 1);
        assert_eq!(p.learning.flagged_descendant_events, 1);
        assert_eq!(
            p.learning.taint,
            vec![TaintEntry {
                time: 200,
                rule: "Shell".into(),
                event: "execve".into(),
                process: "/usr/bin/bash".into(),
                value: "/usr/bin/bash".into(),
                container: "c1".into(),
            }]
        );
        assert_eq!(l.stats().flagged, 1);
        assert_eq!(l.stats().flagged_descendants, 1);
    }

    #[test]
    fn changes_name_touched_keys() {
        let mut l = Learner::new(Limits::default(), None).expect("limits");
        l.observe(&exec("/usr/sbin/nginx", 10, 100));
        let ch = l.take_changes();
        let d = &ch[&ImageRef::new("docker.io/library/nginx", "1.27")];
        assert!(d.header);
        assert_eq!(d.exec.iter().collect::<Vec<_>>(), vec!["/usr/sbin/nginx"]);
        assert_eq!(d.containers.iter().collect::<Vec<_>>(), vec!["c1"]);
        assert!(l.take_changes().is_empty());
    }
}
