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
//!
//! Two more kinds of behaviour are kept out of the profile and listed in its
//! `review` section instead:
//!
//! - **Drift**: an executable born in the container (on a tmpfs, a memfd, the
//!   overlay upper layer, or a file a process of the container wrote during
//!   the window) is not learned into `exec`; it goes to `review.drift` with
//!   its evidence, the write that produced it to `review.writes`, the profile
//!   is tainted with a reason, and the drifted process and its descendants
//!   are not learned. [`Policy::accept_drift`] learns such executables.
//! - **Exec sessions**: a process that entered the container from outside its
//!   process tree (runtime exec), and its descendants, are recorded in
//!   `review.sessions` (command line, time, what they did) and not learned
//!   ([`tree_position`] tells them apart). [`Policy::learn_exec_sessions`]
//!   learns them.

use crate::matcher::{behaviour, Behaviour};
use crate::model::{
    min_known, Delta, ExecEntry, ImageRef, Limits, Profile, Proto, ReviewWrite, Seen, SessionEntry,
    TaintEntry, WriteKey,
};
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

/// What a learner keeps out of profiles (the CLI's `--accept-drift` and
/// `--learn-exec-sessions` turn these off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// Learn executables born in the container into `exec` (no review, no taint).
    pub accept_drift: bool,
    /// Learn what exec sessions do, like the container's own processes.
    pub learn_exec_sessions: bool,
}

/// Where an event's process stands in its container's process tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreePos {
    /// The container's init: pid 1 of its pid namespace.
    Init,
    /// Below the container's init.
    Workload,
    /// Entered the container from outside its process tree (runtime exec):
    /// the topmost process of the container above it (or itself) is not
    /// pid 1 and its parent is outside the container's pid namespace.
    /// `root` is that process: host pid, start time, command line.
    Session {
        pid: u32,
        start_ts: u64,
        command: String,
    },
    /// Cannot be told: no pid namespace of its own, ancestors unknown (older
    /// recordings carry no ancestor `vpid`) or beyond the ancestor list.
    Unknown,
}

/// Tell the container's own processes from exec sessions by ancestry.
/// In a container with its own pid namespace, the container's init has
/// vpid 1 and every process of the container's own tree descends from it.
/// A runtime exec (`ctr task exec`, `docker`/`podman`/`kubectl exec`) starts
/// a process in the container's namespaces and cgroup whose parent is the
/// runtime (runc, the shim: host processes, vpid = pid): walking the
/// ancestors from the event's process, the topmost process inside the
/// namespace is then not vpid 1. `nsenter` without a cgroup change leaves
/// the process in the host's cgroup: it is not attributed to the container.
pub fn tree_position(ev: &falco_learn_event::Event) -> TreePos {
    let p = &ev.process;
    if p.vpid == 1 {
        return TreePos::Init;
    }
    if p.vpid == 0 || p.vpid == p.pid {
        return TreePos::Unknown;
    }
    let cmd = |exe: &str, args: &[String]| {
        std::iter::once(exe)
            .chain(args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut top = (p.pid, p.start_ts, cmd(&p.exepath, &p.args));
    for a in ev.ancestors.iter() {
        if a.vpid == 0 {
            return TreePos::Unknown;
        }
        if a.vpid == a.pid {
            // the parent of `top` is outside the namespace
            return TreePos::Session {
                pid: top.0,
                start_ts: top.1,
                command: top.2,
            };
        }
        if a.vpid == 1 {
            return TreePos::Workload;
        }
        top = (a.pid, a.start_ts, cmd(&a.exepath, &a.args));
    }
    TreePos::Unknown
}

/// What a window remembers besides its profiles (see [`Learner::window_state`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WindowMemory {
    pub covered: Vec<String>,
    pub inits: Vec<ProcKey>,
    pub sessions: Vec<(ProcKey, ProcKey)>,
    pub window_start: u64,
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
    /// The process or one of its ancestors was flagged earlier (or ran a
    /// drifted executable): not learned.
    FlaggedDescendant,
    /// An executable born in the container: listed under `review.drift`, not
    /// learned, profile tainted.
    Drift { path: String, evidence: String },
    /// Part of an exec session: listed under `review.sessions`, not learned.
    Session { new: bool },
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
    /// Execs of drifted executables (not learned).
    pub drift: u64,
    /// Events of exec sessions (not learned).
    pub session_events: u64,
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
    /// Entries of the dimensions in `dimension::DIMS`: (dimension, the
    /// entry's store key, see `Dim::store_entry`).
    pub dims: BTreeSet<(crate::model::Dimension, Vec<u8>)>,
}

/// Written paths remembered per learner (to tell an executable written in
/// the window), at most this many; past it the oldest half is forgotten.
const WRITTEN_MAX: usize = 65_536;

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
    policy: Policy,
    /// Processes of exec sessions, with their session's root.
    session_procs: BTreeMap<ProcKey, ProcKey>,
    /// (container, path) written in this window → (writer's exe, order).
    written: BTreeMap<(String, String), (String, u64)>,
    written_seq: u64,
    /// Container inits whose exec was seen (container starts).
    inits: BTreeSet<ProcKey>,
    /// Containers whose coverage (started in the window or running) is decided.
    covered: BTreeSet<String>,
    /// Time of the first event observed (start of this window).
    window_start: u64,
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
            policy: Policy::default(),
            session_procs: BTreeMap::new(),
            written: BTreeMap::new(),
            written_seq: 0,
            inits: BTreeSet::new(),
            covered: BTreeSet::new(),
            window_start: 0,
        })
    }

    /// Set what is kept out of profiles (default: drift and exec sessions).
    pub fn with_policy(mut self, policy: Policy) -> Learner {
        self.policy = policy;
        self
    }

    /// The window's start (ns since the epoch): a container whose init
    /// started before it was running at start. Default: the first event's time.
    pub fn set_window_start(&mut self, ts: u64) {
        self.window_start = ts;
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

    /// The window's own state besides flagged processes, for a checkpoint:
    /// containers whose coverage is decided, container inits seen (starts),
    /// and exec-session processes with their session's root.
    pub fn window_state(&self) -> WindowMemory {
        WindowMemory {
            covered: self.covered.iter().cloned().collect(),
            inits: self.inits.iter().cloned().collect(),
            sessions: self
                .session_procs
                .iter()
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect(),
            window_start: self.window_start,
        }
    }

    /// Continue a window from [`Learner::window_state`]. (Paths written
    /// before an interruption are not kept: after a resume an executable
    /// written before it is drift only by its tmpfs, memfd or upper-layer flag.)
    pub fn restore_window(&mut self, m: WindowMemory) {
        self.covered.extend(m.covered);
        self.inits.extend(m.inits);
        self.session_procs.extend(m.sessions);
        if m.window_start != 0 {
            self.window_start = m.window_start;
        }
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
        if self.window_start == 0 {
            self.window_start = ev.ts;
        }
        let limits = self.limits;
        let policy = self.policy;
        let dirty = self.dirty.entry(image.clone()).or_default();
        dirty.header = true;
        let profile = self
            .profiles
            .entry(image.clone())
            .or_insert_with(|| Profile::new(image.clone()));
        let l = &mut profile.learning;
        l.events += 1;
        l.started = min_known(l.started, ev.ts);
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
        // coverage: a container's start is its init's exec; a container first
        // seen with an init that started before the window was already running
        if matches!(b, Some(Behaviour::Exec { .. })) && ev.process.vpid == 1 {
            if self.inits.insert(me.clone()) {
                profile.learning.starts_observed += 1;
            }
            self.covered.insert(cid.clone());
        } else if !cid.is_empty() && !self.covered.contains(cid) {
            let init_start = if ev.process.vpid == 1 {
                Some(ev.process.start_ts)
            } else {
                ev.ancestors
                    .iter()
                    .find(|a| a.vpid == 1 && a.pid != 1)
                    .map(|a| a.start_ts)
            };
            // no init in sight (an exec session, ancestors unknown) and its exec
            // not seen in this window: the container ran before
            let running = match init_start {
                Some(t) => t != 0 && t < self.window_start,
                None => true,
            };
            self.covered.insert(cid.clone());
            if running {
                profile.learning.running_at_start += 1;
            }
        }
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

        // which session, if any, the process belongs to
        let session = if policy.learn_exec_sessions || cid.is_empty() {
            None
        } else {
            match tree_position(ev) {
                TreePos::Session {
                    pid,
                    start_ts,
                    command,
                } => Some((
                    ProcKey {
                        container: cid.clone(),
                        pid,
                        start_ts,
                    },
                    command,
                )),
                TreePos::Unknown => {
                    let known = std::iter::once(me.clone())
                        .chain(ev.ancestors.iter().map(|a| ProcKey {
                            container: cid.clone(),
                            pid: a.pid,
                            start_ts: a.start_ts,
                        }))
                        .find_map(|k| self.session_procs.get(&k).cloned());
                    known.map(|root| (root, String::new()))
                }
                TreePos::Init | TreePos::Workload => None,
            }
        };
        let mut new_session = false;
        if let Some((root, command)) = &session {
            self.session_procs.insert(me.clone(), root.clone());
            let sessions = &mut profile.review.sessions;
            let at = sessions.iter().position(|s| {
                s.container == root.container && s.pid == root.pid && s.time == root.start_ts
            });
            let at = match at {
                Some(i) => Some(i),
                None if sessions.len() < limits.review_max => {
                    new_session = true;
                    tracing::warn!(
                        image = %image, container = %cid, command = %command,
                        "exec session (entered the container from outside its process tree): \
                         recorded under review, not learned"
                    );
                    sessions.push(SessionEntry {
                        container: root.container.clone(),
                        pid: root.pid,
                        time: root.start_ts,
                        command: command.clone(),
                        ..SessionEntry::default()
                    });
                    sessions.sort_by(|x, y| {
                        (x.time, &x.container, x.pid).cmp(&(y.time, &y.container, y.pid))
                    });
                    sessions.iter().position(|s| {
                        s.container == root.container
                            && s.pid == root.pid
                            && s.time == root.start_ts
                    })
                }
                None => None,
            };
            if let Some(i) = at {
                let s = &mut sessions[i];
                s.events += 1;
                // the session's command line is what its first process ran last
                // (runc's own init runs before it execs the command)
                if me == *root && matches!(b, Some(Behaviour::Exec { .. })) {
                    s.command = std::iter::once(ev.process.exepath.as_str())
                        .chain(ev.process.args.iter().map(String::as_str))
                        .collect::<Vec<_>>()
                        .join(" ");
                }
                if let Some(b) = b {
                    let what = format!("{} {}", b.dimension(), b.value());
                    let room = s.did.len() < limits.review_max;
                    match s.did.get_mut(&what) {
                        Some(seen) => seen.hit(ev.ts),
                        None if room => {
                            s.did.insert(what, Seen::at(ev.ts));
                        }
                        None => {}
                    }
                }
            }
        }

        // remember written paths (sessions included) to recognise their exec
        if let Some(Behaviour::Write { path }) = b {
            if !path.is_empty() && !cid.is_empty() {
                if self.written.len() >= WRITTEN_MAX {
                    let mut by_age: Vec<u64> = self.written.values().map(|v| v.1).collect();
                    by_age.sort_unstable();
                    let cut = by_age[by_age.len() / 2];
                    self.written.retain(|_, v| v.1 >= cut);
                }
                self.written_seq += 1;
                self.written.insert(
                    (cid.clone(), path.to_string()),
                    (ev.process.exepath.clone(), self.written_seq),
                );
            }
        }

        // relocated: the kernel saw the executable run from another root than the
        // container's (a chroot, a bind mount of the container's own file, a path outside
        // the process's root): its path names another file, which no entry can allow
        if let Some(Behaviour::Exec { path, flags, .. }) = b {
            // (a container's only: on the host, systemd's sandboxing binds directories
            // onto themselves for ordinary services; the host is never killed)
            if flags.relocated && !path.is_empty() && crate::matcher::in_container(ev) {
                tracing::warn!(
                    image = %image, exe = %path, container = %cid,
                    "not learned: executable run from another root than its container's (a \
                     chroot, a bind mount of the container's own file, a path outside its \
                     root): no profile allows it and enforce-kill kills it; profile tainted"
                );
                let l = &mut profile.learning;
                l.tainted = true;
                l.taint_reasons.insert(format!(
                    "relocated: {path} ran from another root than its container's"
                ));
                self.stats.drift += 1;
                self.flagged_procs.insert(me);
                return Outcome::Drift {
                    path: path.to_string(),
                    evidence: "relocated".into(),
                };
            }
        }

        // drift: an executable born in the container
        if let Some(Behaviour::Exec {
            path,
            parent,
            init,
            flags,
        }) = b
        {
            let writer = self.written.get(&(cid.clone(), path.to_string()));
            let entry = ExecEntry {
                seen: Seen::at(ev.ts),
                tmpfs: flags.tmpfs,
                memfd: flags.memfd,
                upper_layer: flags.upper_layer,
                // a container's only, as `relocated` above
                other_root: flags.other_root && crate::matcher::in_container(ev),
                host_root: flags.host_root && crate::matcher::in_container(ev),
                // not known (an older recording): allowed from either place
                other_fs: flags.other_fs != Some(false),
                written: writer.is_some(),
                writer: writer.map(|w| w.0.clone()).unwrap_or_default(),
                parents: if parent.is_empty() || init {
                    BTreeSet::new()
                } else {
                    [parent.to_string()].into_iter().collect()
                },
                init,
            };
            // a path learned from the root's filesystem (the image's file) now run from
            // another (a volume's file bound onto it): widening the entry would allow any
            // volume file there from then on, so it goes to review like drift
            let other_fs_over_image = flags.on_other_fs()
                && crate::matcher::in_container(ev)
                && profile.exec.get(path).is_some_and(|e| !e.other_fs);
            if (entry.is_drift() || other_fs_over_image) && !path.is_empty() {
                if policy.accept_drift {
                    if session.is_none() {
                        dirty.exec.insert(path.to_string());
                        let new = !profile.exec.contains_key(path);
                        profile
                            .exec
                            .entry(path.to_string())
                            .or_default()
                            .absorb(&entry);
                        if new {
                            deltas.push(Delta::NewExec {
                                path: path.to_string(),
                                tmpfs: flags.tmpfs,
                            });
                            self.stats.new_behaviour += 1;
                            profile.learning.last_new_behaviour = ev.ts;
                        }
                        self.stats.learned += 1;
                        return Outcome::Learned { deltas };
                    }
                } else {
                    let mut evidence = entry.evidence();
                    if other_fs_over_image {
                        if !evidence.is_empty() {
                            evidence.push_str(", ");
                        }
                        evidence.push_str(
                            "another filesystem than the one it was learned from (a volume's \
                             file at an image executable's path)",
                        );
                    }
                    tracing::warn!(
                        image = %image, exe = %path, evidence = %evidence, container = %cid,
                        "not learned: executable born in the container (drift); under review, \
                         profile tainted"
                    );
                    let r = &mut profile.review;
                    if r.drift.contains_key(path) || r.drift.len() < limits.review_max {
                        r.drift.entry(path.to_string()).or_default().absorb(&entry);
                    }
                    if let Some((w, _)) = writer {
                        let rw = r
                            .writes
                            .entry(path.to_string())
                            .or_insert_with(|| ReviewWrite {
                                writer: w.clone(),
                                ..ReviewWrite::default()
                            });
                        rw.seen.hit(ev.ts);
                        // the write was learned before its file ran: take it back
                        if profile.write_files.remove(path).is_some() {
                            dirty.write_files.insert(path.to_string());
                        }
                    }
                    let l = &mut profile.learning;
                    l.tainted = true;
                    l.taint_reasons
                        .insert(format!("drift: {path} ran ({evidence}); see review.drift"));
                    self.stats.drift += 1;
                    // a program born in the container: what it and its descendants do is
                    // not learned. One run from another root only (a pod entering the host)
                    // is not: its own later execs are judged one by one (from that root,
                    // each is drift again), the rest is learned
                    if entry.born_here() {
                        self.flagged_procs.insert(me);
                    }
                    return Outcome::Drift {
                        path: path.to_string(),
                        evidence,
                    };
                }
            }
        }
        if session.is_some() {
            self.stats.session_events += 1;
            return Outcome::Session { new: new_session };
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
            Some(Behaviour::Exec {
                path,
                parent,
                init,
                flags,
            }) if !path.is_empty() => {
                if !dirty.exec.contains(path) {
                    dirty.exec.insert(path.to_string());
                }
                deltas.extend(profile.learn_exec(path, flags.tmpfs, ev.ts));
                // where the file lives, as enforce-kill tells it: a volume's file is not
                // the image's (not drift by itself); not known (a recording made before the
                // flag existed): allowed from either place
                if flags.other_fs != Some(false) {
                    if let Some(e) = profile.exec.get_mut(path) {
                        e.other_fs = true;
                    }
                }
                deltas.extend(profile.learn_parent(path, parent, init));
            }
            Some(Behaviour::Outbound {
                proto,
                port: Some(port),
                peer: Some(peer),
            }) => {
                dirty.outbound.insert((proto, port));
                deltas.extend(profile.learn_outbound(proto, port, peer, ev.ts, &limits));
            }
            Some(ref b @ Behaviour::Inbound { port: Some(_), .. }) => {
                if let Some(d) = crate::dimension::dim(b.dimension()) {
                    let learned = d.learn(profile, b, ev.ts, &limits);
                    for k in learned.changed {
                        dirty.dims.insert((b.dimension(), k));
                    }
                    deltas.extend(learned.deltas);
                }
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
            }
            .into(),
            container: Container {
                id: "c1".into(),
                image_repository: "docker.io/library/nginx".into(),
                image_tag: "1.27".into(),
                image_digest: "sha256:ab".into(),
                ..Container::default()
            }
            .into(),
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
        host.container = Container::host().into();
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

    /// A containerd container: init (host pid 100, vpid 1) under the shim
    /// (host pid 50); `ev` is an event of host pid `pid` (vpid `vpid`) whose
    /// ancestors are `chain` (pid, vpid, exe), parent first.
    fn in_container(mut e: Event, pid: u32, vpid: u32, chain: &[(u32, u32, &str)]) -> Event {
        std::sync::Arc::make_mut(&mut e.process).pid = pid;
        std::sync::Arc::make_mut(&mut e.process).vpid = vpid;
        std::sync::Arc::make_mut(&mut e.process).start_ts = 1_000 + pid as u64;
        e.ancestors = chain
            .iter()
            .map(|&(pid, vpid, exe)| Ancestor {
                pid,
                vpid,
                exepath: exe.into(),
                start_ts: 1_000 + pid as u64,
                ..Ancestor::default()
            })
            .collect::<Vec<_>>()
            .into();
        e
    }

    const SHIM: (u32, u32, &str) = (50, 50, "/usr/bin/containerd-shim-runc-v2");
    const RUNC: (u32, u32, &str) = (60, 60, "/usr/sbin/runc");

    fn write(path: &str, ts: u64) -> Event {
        use falco_learn_event::{Args, Fd};
        let mut e = exec("/bin/busybox", 0, ts);
        e.typ = EventTypeField(EventType::Openat);
        e.res = 3;
        e.fd = Some(Fd {
            num: 3,
            name: path.into(),
            ..Fd::default()
        });
        e.args = Args::Open {
            name: path.into(),
            flags: 0o1101,
            mode: 0o755,
            dirfd: -100,
        };
        e
    }

    #[test]
    fn tree_positions() {
        let init = in_container(exec("/usr/sbin/nginx", 0, 1), 100, 1, &[SHIM]);
        assert_eq!(tree_position(&init), TreePos::Init);
        let worker = in_container(
            exec("/usr/sbin/nginx", 0, 1),
            101,
            7,
            &[(100, 1, "/usr/sbin/nginx"), SHIM],
        );
        assert_eq!(tree_position(&worker), TreePos::Workload);
        let mut sh = in_container(exec("/bin/busybox", 0, 1), 200, 9, &[RUNC, SHIM]);
        std::sync::Arc::make_mut(&mut sh.process).args = vec!["-c".into(), "id".into()];
        assert_eq!(
            tree_position(&sh),
            TreePos::Session {
                pid: 200,
                start_ts: 1_200,
                command: "/bin/busybox -c id".into()
            }
        );
        let child = in_container(
            exec("/bin/busybox", 0, 1),
            201,
            10,
            &[(200, 9, "/bin/busybox"), RUNC],
        );
        assert!(matches!(
            tree_position(&child),
            TreePos::Session { pid: 200, .. }
        ));
        // no ancestor vpid (older recordings), or a host process: cannot tell
        let old = in_container(exec("/bin/busybox", 0, 1), 201, 10, &[(200, 0, "/x")]);
        assert_eq!(tree_position(&old), TreePos::Unknown);
        let host = in_container(
            exec("/bin/busybox", 0, 1),
            300,
            300,
            &[(1, 1, "/sbin/init")],
        );
        assert_eq!(tree_position(&host), TreePos::Unknown);
    }

    /// An exec the kernel saw relocated (run from another root than its container's) is
    /// not learned: its path names another file. The profile is tainted, saying so; the same
    /// executable run normally is learned.
    #[test]
    fn a_relocated_exec_is_not_learned() {
        let mut l = Learner::new(Limits::default(), None).expect("limits");
        let img = ImageRef::new("docker.io/library/nginx", "1.27");
        l.set_window_start(5_000);
        let mut moved = in_container(
            exec("/usr/sbin/nginx", 0, 5_001),
            101,
            7,
            &[(100, 1, "/usr/sbin/nginx"), SHIM],
        );
        std::sync::Arc::make_mut(&mut moved.process)
            .exe_flags
            .relocated = true;
        assert_eq!(
            l.observe(&moved),
            Outcome::Drift {
                path: "/usr/sbin/nginx".into(),
                evidence: "relocated".into()
            }
        );
        let p = l.profile(&img).expect("profile");
        assert!(!p.exec.contains_key("/usr/sbin/nginx"));
        assert!(p.learning.tainted);
        assert!(p
            .learning
            .taint_reasons
            .contains("relocated: /usr/sbin/nginx ran from another root than its container's"));
        let plain = in_container(
            exec("/usr/sbin/nginx", 0, 5_002),
            102,
            8,
            &[(100, 1, "/usr/sbin/nginx"), SHIM],
        );
        assert!(matches!(l.observe(&plain), Outcome::Learned { .. }));
        assert!(l
            .profile(&img)
            .is_some_and(|p| p.exec.contains_key("/usr/sbin/nginx")));
    }

    /// An exec from another root than the container's home (a chroot into a neighbour's
    /// root; a hostPID pod entering the host) is drift evidence: it goes under review
    /// with `other_root` (or `host_root`), not into `exec:`, and the profile is tainted
    /// saying so; the process is not flagged (its program was not born in the container).
    #[test]
    fn an_exec_from_another_root_goes_to_review_with_its_root() {
        let mut l = Learner::new(Limits::default(), None).expect("limits");
        let img = ImageRef::new("docker.io/library/nginx", "1.27");
        l.set_window_start(5_000);
        let mut other = in_container(
            exec("/usr/bin/systemctl", 0, 5_001),
            101,
            7,
            &[(100, 1, "/usr/sbin/nginx"), SHIM],
        );
        std::sync::Arc::make_mut(&mut other.process)
            .exe_flags
            .other_root = true;
        let out = l.observe(&other);
        assert!(
            matches!(&out, Outcome::Drift { path, .. } if path == "/usr/bin/systemctl"),
            "{out:?}"
        );
        let p = l.profile(&img).expect("profile");
        assert!(!p.exec.contains_key("/usr/bin/systemctl"));
        let d = &p.review.drift["/usr/bin/systemctl"];
        assert!(d.other_root && !d.upper_layer && !d.tmpfs && !d.written);
        assert_eq!(d.evidence(), "another root than the container's");
        assert!(p.learning.taint_reasons.contains(
            "drift: /usr/bin/systemctl ran (another root than the container's); see review.drift"
        ));
        // what that process does next is learned (it was not born in the container)
        let w = in_container(
            write("/var/log/nginx/access.log", 5_002),
            101,
            7,
            &[(100, 1, "/usr/sbin/nginx"), SHIM],
        );
        assert!(matches!(l.observe(&w), Outcome::Learned { .. }));
        // from the host's root: under review with `host_root`, a root of its own
        let mut host = in_container(
            exec("/usr/bin/nsenter", 0, 5_003),
            102,
            8,
            &[(100, 1, "/usr/sbin/nginx"), SHIM],
        );
        std::sync::Arc::make_mut(&mut host.process)
            .exe_flags
            .host_root = true;
        let out = l.observe(&host);
        assert!(
            matches!(&out, Outcome::Drift { path, .. } if path == "/usr/bin/nsenter"),
            "{out:?}"
        );
        let p = l.profile(&img).expect("profile");
        let d = &p.review.drift["/usr/bin/nsenter"];
        assert!(d.host_root && !d.other_root && !d.upper_layer && !d.written);
        assert_eq!(d.evidence(), "the host's root");
    }

    /// A volume's executable (another filesystem than the container's root) is not drift:
    /// it is learned into `exec:` saying where it lives, so enforce-kill allows it from
    /// there, and the image's own file at that path stays what it was.
    #[test]
    fn a_volume_executable_is_learned_with_its_filesystem() {
        let mut l = Learner::new(Limits::default(), None).expect("limits");
        let img = ImageRef::new("docker.io/library/nginx", "1.27");
        l.set_window_start(5_000);
        let mut vol = in_container(
            exec("/var/run/argo/argoexec", 0, 5_001),
            101,
            7,
            &[(100, 1, "/usr/sbin/nginx"), SHIM],
        );
        std::sync::Arc::make_mut(&mut vol.process)
            .exe_flags
            .other_fs = Some(true);
        assert!(matches!(l.observe(&vol), Outcome::Learned { .. }));
        let own = in_container(
            exec("/usr/bin/env", 0, 5_002),
            102,
            7,
            &[(100, 1, "/usr/sbin/nginx"), SHIM],
        );
        assert!(matches!(l.observe(&own), Outcome::Learned { .. }));
        let p = l.profile(&img).expect("profile");
        let e = &p.exec["/var/run/argo/argoexec"];
        assert!(e.other_fs && !e.is_drift(), "{e:?}");
        assert!(!p.exec["/usr/bin/env"].other_fs);
        assert!(p.review.drift.is_empty() && !p.learning.tainted);
        // a volume's file bound onto the image's /usr/bin/env: not a widening of its entry
        // but drift under review, the profile tainted
        let mut bound = in_container(
            exec("/usr/bin/env", 0, 5_003),
            103,
            7,
            &[(100, 1, "/usr/sbin/nginx"), SHIM],
        );
        std::sync::Arc::make_mut(&mut bound.process)
            .exe_flags
            .other_fs = Some(true);
        let out = l.observe(&bound);
        assert!(
            matches!(&out, Outcome::Drift { path, evidence } if path == "/usr/bin/env"
                && evidence.starts_with("another filesystem than the one it was learned from")),
            "{out:?}"
        );
        let p = l.profile(&img).expect("profile");
        assert!(!p.exec["/usr/bin/env"].other_fs);
        assert!(p.review.drift["/usr/bin/env"].other_fs);
        assert!(p.learning.tainted);
        // from a recording made before the flag (not known where the file lived): learned
        // as allowed from either place, as it ran then
        let mut old = in_container(
            exec("/usr/local/bin/tool", 0, 5_004),
            104,
            7,
            &[(100, 1, "/usr/sbin/nginx"), SHIM],
        );
        std::sync::Arc::make_mut(&mut old.process)
            .exe_flags
            .other_fs = None;
        assert!(matches!(l.observe(&old), Outcome::Learned { .. }));
        assert!(l.profile(&img).expect("profile").exec["/usr/local/bin/tool"].other_fs);
    }

    #[test]
    fn exec_sessions_and_drift_go_to_review() {
        let mut l = Learner::new(Limits::default(), None).expect("limits");
        let img = ImageRef::new("docker.io/library/nginx", "1.27");
        // running before the window: the first event is a worker's
        l.set_window_start(5_000);
        let worker = in_container(
            write("/var/log/nginx/access.log", 5_001),
            101,
            7,
            &[(100, 1, "/usr/sbin/nginx"), SHIM],
        );
        assert!(matches!(l.observe(&worker), Outcome::Learned { .. }));
        // the exec session: sh, then cp to /dev/xupd, then /dev/xupd (tmpfs)
        let sh = in_container(exec("/bin/busybox", 0, 5_010), 200, 9, &[RUNC, SHIM]);
        assert_eq!(l.observe(&sh), Outcome::Session { new: true });
        let cp = in_container(
            write("/dev/xupd", 5_020),
            201,
            10,
            &[(200, 9, "/bin/busybox"), RUNC],
        );
        assert_eq!(l.observe(&cp), Outcome::Session { new: false });
        let mut x = in_container(
            exec("/dev/xupd", 0, 5_030),
            202,
            11,
            &[(200, 9, "/bin/busybox"), RUNC],
        );
        std::sync::Arc::make_mut(&mut x.process).exe_flags.tmpfs = true;
        assert_eq!(
            l.observe(&x),
            Outcome::Drift {
                path: "/dev/xupd".into(),
                evidence: "tmpfs, written by /bin/busybox".into()
            }
        );
        // what the drifted process does next is not learned either
        let after = in_container(
            write("/tmp/dropped", 5_040),
            202,
            11,
            &[(200, 9, "/bin/busybox"), RUNC],
        );
        assert_eq!(l.observe(&after), Outcome::FlaggedDescendant);
        // a file the workload wrote, then ran (not on tmpfs): drift too
        let w = in_container(
            write("/var/lib/nginx/tool", 5_050),
            101,
            7,
            &[(100, 1, "/usr/sbin/nginx"), SHIM],
        );
        assert!(matches!(l.observe(&w), Outcome::Learned { .. }));
        let run = in_container(
            exec("/var/lib/nginx/tool", 0, 5_060),
            103,
            8,
            &[(101, 7, "/usr/sbin/nginx"), (100, 1, "/usr/sbin/nginx")],
        );
        assert!(matches!(l.observe(&run), Outcome::Drift { .. }));

        let p = l.profile(&img).expect("profile");
        assert!(p.exec.is_empty(), "{:?}", p.exec);
        assert_eq!(
            p.write_files.keys().collect::<Vec<_>>(),
            vec!["/var/log/nginx/access.log"],
            "the write that produced an executable is taken back"
        );
        assert_eq!(
            p.review.drift.keys().collect::<Vec<_>>(),
            vec!["/dev/xupd", "/var/lib/nginx/tool"]
        );
        let d = &p.review.drift["/dev/xupd"];
        assert!(d.tmpfs && d.written && !d.memfd && !d.upper_layer);
        assert_eq!(d.writer, "/bin/busybox");
        assert_eq!(d.seen, Seen::at(5_030));
        assert_eq!(d.parents.iter().collect::<Vec<_>>(), vec!["/bin/busybox"]);
        assert_eq!(
            p.review.writes.keys().collect::<Vec<_>>(),
            vec!["/dev/xupd", "/var/lib/nginx/tool"]
        );
        assert_eq!(
            p.review.writes["/var/lib/nginx/tool"].writer,
            "/bin/busybox"
        );
        assert_eq!(p.review.sessions.len(), 1);
        let s = &p.review.sessions[0];
        assert_eq!((s.pid, s.time, s.events), (200, 1_200, 3));
        assert_eq!(s.command, "/bin/busybox");
        assert_eq!(
            s.did.keys().collect::<Vec<_>>(),
            vec![
                "exec /bin/busybox",
                "exec /dev/xupd",
                "file_write /dev/xupd"
            ]
        );
        assert!(p.learning.tainted);
        assert_eq!(
            p.learning.taint_reasons.iter().collect::<Vec<_>>(),
            vec![
                "drift: /dev/xupd ran (tmpfs, written by /bin/busybox); see review.drift",
                "drift: /var/lib/nginx/tool ran (written by /bin/busybox); see review.drift"
            ]
        );
        assert_eq!(
            (p.learning.starts_observed, p.learning.running_at_start),
            (0, 1)
        );
        assert_eq!((l.stats().drift, l.stats().session_events), (2, 2));
        // the YAML holds it all and reads back
        let y = crate::to_yaml(p);
        assert_eq!(
            crate::from_yaml(&y, "p.yaml").expect("reads").review,
            p.review
        );
        assert!(y.contains("  drift:\n    - { path: /dev/xupd, count: 1, first_seen: 1970-01-01T00:00:00.000005030Z, last_seen: 1970-01-01T00:00:00.000005030Z, tmpfs: true, written: true, writer: /bin/busybox, parents: [/bin/busybox] }\n"), "{y}");
    }

    #[test]
    fn policy_opts_out_and_lineage_and_starts() {
        let policy = Policy {
            accept_drift: true,
            learn_exec_sessions: true,
        };
        let mut l = Learner::new(Limits::default(), None)
            .expect("limits")
            .with_policy(policy);
        l.set_window_start(1);
        // a start: entrypoint sh (vpid 1) execs nginx (same process): one start
        let sh = in_container(exec("/bin/busybox", 0, 10), 100, 1, &[SHIM]);
        let ng = in_container(exec("/usr/sbin/nginx", 0, 11), 100, 1, &[SHIM]);
        let mut x = in_container(exec("/dev/xupd", 0, 12), 200, 9, &[RUNC]);
        std::sync::Arc::make_mut(&mut x.process).exe_flags.tmpfs = true;
        for e in [&sh, &ng, &x] {
            assert!(matches!(l.observe(e), Outcome::Learned { .. }), "{e:?}");
        }
        let p = l
            .profile(&ImageRef::new("docker.io/library/nginx", "1.27"))
            .expect("profile");
        assert_eq!(
            (p.learning.starts_observed, p.learning.running_at_start),
            (1, 0)
        );
        assert!(p.review.is_empty() && !p.learning.tainted);
        assert!(p.exec["/dev/xupd"].tmpfs);
        let ng = &p.exec["/usr/sbin/nginx"];
        assert!(ng.init && ng.parents.is_empty(), "{ng:?}");
        // the session's /dev/xupd (learned with both opt-outs) was started by runc
        assert_eq!(
            p.exec["/dev/xupd"].parents.iter().collect::<Vec<_>>(),
            vec!["/usr/sbin/runc"]
        );
        // lineage: nginx starting busybox was never seen
        let mut rce = in_container(
            exec("/bin/busybox", 0, 20),
            101,
            7,
            &[(100, 1, "/usr/sbin/nginx"), SHIM],
        );
        let a = p.matches(&rce).expect("anomaly");
        assert_eq!(
            a.to_string(),
            "unexpected exec: /bin/busybox parent=/usr/sbin/nginx"
        );
        // started by the runtime: as the init (the entrypoint) it is allowed, as
        // another process (an exec session) it is not
        rce.ancestors = in_container(exec("/x", 0, 1), 1, 1, &[RUNC]).ancestors;
        assert_eq!(
            p.matches(&rce).map(|a| a.to_string()).as_deref(),
            Some("unexpected exec: /bin/busybox parent=/usr/sbin/runc")
        );
        std::sync::Arc::make_mut(&mut rce.process).vpid = 1;
        assert_eq!(p.matches(&rce), None, "the entrypoint's sh");
        // /dev/xupd was seen started by a parent outside the container: any such
        // parent may start it again, a parent inside may not
        let mut x2 = in_container(exec("/dev/xupd", 0, 30), 300, 12, &[SHIM]);
        assert_eq!(p.matches(&x2), None);
        x2.ancestors =
            in_container(exec("/x", 0, 1), 1, 1, &[(100, 1, "/usr/sbin/nginx")]).ancestors;
        assert!(p.matches(&x2).is_some());
    }
}
