//! Marks, in the kernel filter, the processes no profile applies to: the host when no host
//! profile is loaded, and containers whose image has no profile (enforce modes with
//! `engine.kernel_filter`). What such a process does that no loaded rule can match — a
//! write-open outside every rule's paths, a connect or accept on a port no rule looks at —
//! cannot raise an alert, so the kernel drops it (`falco_learn_kernel_filtered_total`
//! with `reason="unprofiled"`).
//!
//! The decision is the engine's, per process, from the same attribution the events are
//! evaluated with ([`Engine::profile_applies`]): nothing is keyed by a cgroup the process
//! happens to be in. A mark names one program run of one process — its pid, its start
//! (`proc.start_ts`) and the exec it runs ([`Event::exec_id`]) — so after an exec (whose
//! container may differ), a pid reuse, or a mark userspace set late, the kernel reports
//! everything until the next decision. Processes are decided on their first event and again
//! whenever the event's exec differs from the marked one; a container whose image is not
//! resolved yet is not marked. A reload (SIGHUP) unmarks every process: they are decided
//! again, with the new profiles, on their next event.

use crate::Engine;
use ahash::AHashMap;
use falco_learn_event::{Event, EventType};

/// The kernel's marks of processes no profile applies to (the live probe's
/// [`falco_learn_probe::filter::ProfileFilter`]; fakes in tests).
pub trait ProcessMarks {
    /// Mark process `pid` running exec `exec_id`, started at `start_ts` (ns since the epoch).
    fn mark(&self, pid: u32, exec_id: u32, start_ts: u64) -> Result<(), String>;
    /// Remove the mark of process `pid`.
    fn unmark(&self, pid: u32);
}

impl ProcessMarks for falco_learn_probe::filter::ProfileFilter {
    fn mark(&self, pid: u32, exec_id: u32, start_ts: u64) -> Result<(), String> {
        self.mark_unprofiled(pid, exec_id, start_ts)
            .map_err(|e| e.to_string())
    }
    fn unmark(&self, pid: u32) {
        self.unmark_unprofiled(pid)
    }
}

/// How many processes are marked at most (the kernel map's size).
pub const MAX_MARKED: usize = 32768;

/// How often [`Unprofiled::sweep`] looks for processes that are gone.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether process `pid` exists and started at `start` (ns since the epoch, compared at
/// `/proc`'s clock-tick resolution).
pub fn process_alive(pid: u32, start: u64) -> bool {
    falco_learn_probe::procfs::Stat::read(pid).is_some_and(|st| st.started_at(start))
}

/// The processes marked, with what their marks say.
pub struct Unprofiled {
    /// pid → (exec id, start) of its mark; also processes whose mark the kernel refused (so
    /// that a full map costs one attempt per process, not one per event).
    marked: AHashMap<u32, (u32, u64)>,
    /// Marks the kernel refused since the start.
    refused: u64,
    last_sweep: std::time::Instant,
}

impl Default for Unprofiled {
    fn default() -> Self {
        Unprofiled::new()
    }
}

impl Unprofiled {
    pub fn new() -> Unprofiled {
        Unprofiled {
            marked: AHashMap::new(),
            refused: 0,
            last_sweep: std::time::Instant::now(),
        }
    }

    /// Processes marked now.
    pub fn marked(&self) -> usize {
        self.marked.len()
    }

    /// Decide the event's process, when it is not decided for its current exec.
    pub fn observe(&mut self, marks: &dyn ProcessMarks, engine: &Engine, ev: &Event) {
        let p = &ev.process;
        let pid = p.pid;
        if pid == 0 || p.start_ts == 0 || ev.exec_id == 0 {
            // not a process the kernel can name (or a recording without exec ids)
            return;
        }
        if ev.event_type() == EventType::Procexit {
            // the kernel removed the mark at the exit, unless it was set after it (this
            // process's events are read late): remove it again
            if self.marked.remove(&pid).is_some() {
                marks.unmark(pid);
            }
            return;
        }
        // decided on every event (two lookups): a container whose metadata changed within
        // one exec is decided again at once
        if engine.profile_applies(&ev.container) != Some(false) {
            // a profile applies (or it is not known yet): everything is reported
            if self.marked.remove(&pid).is_some() {
                marks.unmark(pid);
            }
            return;
        }
        if self
            .marked
            .get(&pid)
            .is_some_and(|&m| m == (ev.exec_id, p.start_ts))
        {
            return;
        }
        if self.marked.len() >= MAX_MARKED && !self.marked.contains_key(&pid) {
            self.refuse(pid, "the map is full");
            return;
        }
        match marks.mark(pid, ev.exec_id, p.start_ts) {
            Ok(()) => {
                self.marked.insert(pid, (ev.exec_id, p.start_ts));
            }
            Err(e) => {
                self.marked.insert(pid, (ev.exec_id, p.start_ts));
                self.refuse(pid, &e);
            }
        }
    }

    fn refuse(&mut self, pid: u32, why: &str) {
        self.refused += 1;
        if self.refused == 1 {
            tracing::warn!(
                "kernel filter: process {pid} (no profile applies to it) is not filtered in \
                 the kernel: {why}; its events are checked in userspace (said once)"
            );
        }
    }

    /// Forget the processes that are gone (the kernel removes a mark when the last thread
    /// of its process exits, but a process whose leader exited first, or whose exit event
    /// was lost, would stay here): every 30 s, each marked pid whose `/proc` entry is gone
    /// or started at another time is unmarked. `alive` is (pid, start) → exists.
    pub fn sweep(&mut self, marks: &dyn ProcessMarks, alive: &dyn Fn(u32, u64) -> bool) {
        if self.last_sweep.elapsed() < SWEEP_EVERY {
            return;
        }
        self.last_sweep = std::time::Instant::now();
        self.marked.retain(|pid, (_, start)| {
            let keep = alive(*pid, *start);
            if !keep {
                marks.unmark(*pid);
            }
            keep
        });
    }

    /// Unmark every process (after a reload: they are decided again on their next event).
    pub fn reset(&mut self, marks: &dyn ProcessMarks) {
        for pid in self.marked.keys() {
            marks.unmark(*pid);
        }
        self.marked.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProfilesFrom;
    use falco_learn_rules::Priority;
    use falco_learn_test_support::{events::in_container, write_profile};
    use std::cell::RefCell;
    use std::sync::Arc;

    #[derive(Default)]
    struct Fake {
        log: RefCell<Vec<String>>,
        refuse: bool,
    }
    impl ProcessMarks for Fake {
        fn mark(&self, pid: u32, exec_id: u32, start_ts: u64) -> Result<(), String> {
            self.log
                .borrow_mut()
                .push(format!("mark {pid} {exec_id} {start_ts}"));
            if self.refuse {
                Err("full".into())
            } else {
                Ok(())
            }
        }
        fn unmark(&self, pid: u32) {
            self.log.borrow_mut().push(format!("unmark {pid}"));
        }
    }

    /// An engine with a profile of nginx:latest, and of the host when `host` is set.
    fn engine(dir: &std::path::Path, host: bool) -> Engine {
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
        let host_image = if host { "docker.io/library/nginx" } else { "" };
        Engine::build(&[], Priority::Debug, from, Priority::Warning, host_image)
            .expect("engine")
            .0
    }

    fn ev(container: &str, repository: &str, pid: u32, exec_id: u32, start: u64) -> Event {
        let mut ev = in_container(container, repository, 7);
        let p = Arc::make_mut(&mut ev.process);
        p.pid = pid;
        p.start_ts = start;
        ev.exec_id = exec_id;
        ev
    }

    /// An event of a container of redis, which has no profile.
    fn db(pid: u32, exec_id: u32, start: u64) -> Event {
        ev("db", "docker.io/library/redis", pid, exec_id, start)
    }

    /// Host processes (no host profile) and containers of images without a profile are
    /// marked once per exec; profiled containers, unresolved images and processes the kernel
    /// cannot name are not; an exec re-decides, an exit forgets, a reset unmarks all.
    #[test]
    fn processes_no_profile_applies_to_are_marked_per_exec() {
        let dir = tempfile::tempdir().expect("tmp");
        let engine = engine(dir.path(), false);
        let marks = Fake::default();
        let mut u = Unprofiled::new();
        let host = |pid, exec_id| ev("host", "", pid, exec_id, 1000 + u64::from(pid));
        u.observe(&marks, &engine, &host(10, 1));
        u.observe(&marks, &engine, &host(10, 1));
        u.observe(&marks, &engine, &db(11, 3, 1011));
        u.observe(
            &marks,
            &engine,
            &ev("web", "docker.io/library/nginx", 12, 3, 1012),
        );
        u.observe(&marks, &engine, &ev("new", "", 13, 3, 1013));
        u.observe(&marks, &engine, &host(0, 1));
        u.observe(&marks, &engine, &ev("host", "", 14, 0, 1014));
        u.observe(&marks, &engine, &ev("host", "", 15, 2, 0));
        assert_eq!(u.marked(), 2);
        // process 10 execs a container's entrypoint (another exec id): decided again
        u.observe(
            &marks,
            &engine,
            &ev("web", "docker.io/library/nginx", 10, 2, 1010),
        );
        // process 11 execs again in its unprofiled container: marked for the new exec
        u.observe(&marks, &engine, &db(11, 4, 1011));
        // pid 11 reused by another process: decided again
        u.observe(&marks, &engine, &db(11, 4, 2011));
        let mut exit = db(11, 4, 2011);
        exit.typ = falco_learn_event::EventTypeField(EventType::Procexit);
        u.observe(&marks, &engine, &exit);
        assert_eq!(u.marked(), 0);
        u.observe(&marks, &engine, &host(16, 1));
        u.reset(&marks);
        assert_eq!(u.marked(), 0);
        assert_eq!(
            *marks.log.borrow(),
            [
                "mark 10 1 1010",
                "mark 11 3 1011",
                "unmark 10",
                "mark 11 4 1011",
                "mark 11 4 2011",
                "unmark 11",
                "mark 16 1 1016",
                "unmark 16"
            ]
        );
    }

    /// Processes that are gone (or whose pid another process now has) are unmarked by the
    /// sweep, at most every 30 s.
    #[test]
    fn the_sweep_unmarks_processes_that_are_gone() {
        let dir = tempfile::tempdir().expect("tmp");
        let engine = engine(dir.path(), false);
        let marks = Fake::default();
        let mut u = Unprofiled::new();
        u.observe(&marks, &engine, &ev("host", "", 10, 1, 1010));
        u.observe(&marks, &engine, &ev("host", "", 11, 1, 1011));
        u.sweep(&marks, &|_, _| false);
        assert_eq!(u.marked(), 2, "swept before 30 s");
        u.last_sweep -= SWEEP_EVERY;
        u.sweep(&marks, &|pid, start| pid == 10 && start == 1010);
        assert_eq!(u.marked(), 1);
        assert_eq!(
            *marks.log.borrow(),
            ["mark 10 1 1010", "mark 11 1 1011", "unmark 11"]
        );
        // this test's own process, at its real start, is alive
        let me = std::process::id();
        let start = falco_learn_probe::procfs::Stat::read(me)
            .map(|s| falco_learn_probe::procfs::ticks_to_epoch_ns(s.starttime))
            .expect("own stat");
        assert!(process_alive(me, start));
        assert!(!process_alive(me, start + 1_000_000_000));
    }

    /// With a host profile loaded, host processes are never marked; a refused mark is
    /// asked once per process and exec, not per event.
    #[test]
    fn a_host_profile_keeps_the_host_reported_and_refusals_are_not_retried() {
        let dir = tempfile::tempdir().expect("tmp");
        let with_host = engine(dir.path(), true);
        let marks = Fake {
            refuse: true,
            ..Fake::default()
        };
        let mut u = Unprofiled::new();
        u.observe(&marks, &with_host, &ev("host", "", 10, 1, 1010));
        u.observe(&marks, &with_host, &db(11, 1, 1011));
        u.observe(&marks, &with_host, &db(11, 1, 1011));
        assert_eq!(*marks.log.borrow(), ["mark 11 1 1011"]);
        assert_eq!(u.refused, 1);
    }
}
