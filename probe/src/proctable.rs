//! Process table: seeded from /proc at start, kept current by fork/exec/exit
//! records, so every event can carry its ancestors (`proc.pname`, `proc.aname[N]`,
//! `proc.sname`, `proc.duration`) and its container.

use crate::container::{container_from_cgroup, container_from_proc_cgroup, CgroupContainer};
use ahash::AHashMap;
use falco_learn_event::{Ancestor, ExeFlags};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the table knows about one process.
#[derive(Debug, Clone, Default)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    pub vpid: u32,
    pub sid: u32,
    pub pgid: u32,
    pub comm: String,
    pub exe: String,
    pub exepath: String,
    pub args: Vec<String>,
    pub cwd: String,
    pub tty: u32,
    pub uid: u32,
    pub gid: u32,
    pub loginuid: u32,
    pub cap_effective: u64,
    pub cap_permitted: u64,
    pub start_ts: u64,
    pub exe_flags: ExeFlags,
    pub exe_ino: u64,
    pub exe_ino_ctime: u64,
    pub exe_ino_mtime: u64,
    pub container: Option<Arc<CgroupContainer>>,
    /// Set when the process exited; the entry lingers briefly for late events and orphans.
    pub exited_at: Option<Instant>,
    /// Ancestors as last computed, with the table generation they are valid for
    /// (the table's cache: leave it at `None` when building an entry).
    pub ancestors_cache: Option<(u64, Arc<[Ancestor]>)>,
    /// The event value of this process as last built, and what it was built for
    /// (the enricher's cache: leave it at `None` when building or changing an entry).
    pub process_cache: Option<(crate::enrich::ProcessKey, Arc<falco_learn_event::Process>)>,
}

impl ProcInfo {
    pub fn ancestor(&self) -> Ancestor {
        Ancestor {
            pid: self.pid,
            vpid: self.vpid,
            comm: self.comm.clone(),
            exe: self.exe.clone(),
            exepath: self.exepath.clone(),
            args: self.args.clone(),
            start_ts: self.start_ts,
            container_id: self
                .container
                .as_ref()
                .map_or_else(|| "host".to_string(), |c| c.short_id()),
        }
    }
}

/// The process table.
pub struct ProcessTable {
    procs: AHashMap<u32, ProcInfo>,
    containerd_namespaces: Vec<String>,
    /// How long an exited process stays for late events.
    pub linger: Duration,
    /// Ancestors kept per event.
    pub max_ancestors: usize,
    boot_epoch_ns: u64,
    clk_tck: u64,
    /// Bumped whenever an ancestor chain may change (exec, removal): cached
    /// ancestor lists older than this are recomputed.
    generation: u64,
}

impl ProcessTable {
    pub fn new(containerd_namespaces: Vec<String>, boot_epoch_ns: u64) -> Self {
        ProcessTable {
            procs: AHashMap::new(),
            containerd_namespaces,
            linger: Duration::from_secs(10),
            max_ancestors: 10,
            boot_epoch_ns,
            clk_tck: crate::procfs::clk_tck(),
            generation: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    pub fn get(&self, pid: u32) -> Option<&ProcInfo> {
        self.procs.get(&pid)
    }

    pub fn get_mut(&mut self, pid: u32) -> Option<&mut ProcInfo> {
        self.procs.get_mut(&pid)
    }

    /// The container of every process in the table (repeated per process).
    pub fn containers(&self) -> impl Iterator<Item = &Arc<CgroupContainer>> {
        self.procs.values().filter_map(|p| p.container.as_ref())
    }

    pub fn insert(&mut self, p: ProcInfo) {
        self.procs.insert(p.pid, p);
    }

    /// Seed from /proc: every process alive now. Unreadable entries (raced exits) are skipped.
    pub fn seed_from_proc(&mut self) -> usize {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return 0;
        };
        let mut n = 0;
        for ent in dir.flatten() {
            let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(p) = self.read_proc(pid) {
                self.procs.insert(pid, p);
                n += 1;
            }
        }
        n
    }

    /// Read one process from /proc (None when it is gone).
    pub fn read_proc(&self, pid: u32) -> Option<ProcInfo> {
        let base = format!("/proc/{pid}");
        let crate::procfs::Stat {
            comm,
            ppid,
            pgrp: pgid,
            session: sid,
            tty_nr: tty,
            starttime: starttime_ticks,
            startstack,
            ..
        } = crate::procfs::Stat::read(pid)?;
        let cmdline = std::fs::read(format!("{base}/cmdline")).unwrap_or_default();
        let mut argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        let exe = if argv.is_empty() {
            String::new()
        } else {
            argv.remove(0)
        };
        // the same rendering as the kernel's paths (libsinsp reads these links at start too)
        let link = |what: &str| {
            std::fs::read_link(format!("{base}/{what}"))
                .map(|p| falco_learn_event::path::render_proc_link(p.as_os_str().as_bytes()))
                .unwrap_or_default()
        };
        let exepath = link("exe");
        let cwd = link("cwd");
        let status = std::fs::read_to_string(format!("{base}/status")).unwrap_or_default();
        let mut uid = 0;
        let mut gid = 0;
        let mut cap_eff = 0;
        let mut cap_prm = 0;
        let mut vpid = pid;
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("Uid:") {
                uid = v
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("Gid:") {
                gid = v
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("CapEff:") {
                cap_eff = u64::from_str_radix(v.trim(), 16).unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("CapPrm:") {
                cap_prm = u64::from_str_radix(v.trim(), 16).unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("NSpid:") {
                vpid = v
                    .split_whitespace()
                    .last()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(pid);
            }
        }
        let loginuid = std::fs::read_to_string(format!("{base}/loginuid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(u32::MAX);
        let container = std::fs::read_to_string(format!("{base}/cgroup"))
            .ok()
            .and_then(|t| container_from_proc_cgroup(&t, &self.containerd_namespaces))
            .map(Arc::new);
        Some(ProcInfo {
            pid,
            ppid,
            vpid,
            sid,
            pgid,
            comm,
            exe,
            exepath,
            args: argv,
            cwd,
            tty,
            uid,
            gid,
            loginuid,
            cap_effective: cap_eff,
            cap_permitted: cap_prm,
            start_ts: self.boot_epoch_ns + starttime_ticks * (1_000_000_000 / self.clk_tck),
            container,
            exe_flags: ExeFlags {
                ia32: stack_is_32_bit(startstack),
                ..ExeFlags::default()
            },
            ..Default::default()
        })
    }

    /// The entry for `pid`, read from /proc on a miss (a process that predates us
    /// and was missed, or raced the seed); a bare entry if /proc has nothing.
    pub fn entry(&mut self, pid: u32, ppid: u32, comm: &str) -> &mut ProcInfo {
        if !self.procs.contains_key(&pid) {
            let p = self.read_proc(pid).unwrap_or_else(|| {
                let parent = self.procs.get(&ppid);
                ProcInfo {
                    pid,
                    ppid,
                    vpid: pid,
                    comm: comm.to_string(),
                    container: parent.and_then(|p| p.container.clone()),
                    ..Default::default()
                }
            });
            self.procs.insert(pid, p);
        }
        // the key was inserted just above
        self.procs.entry(pid).or_default()
    }

    /// A fork: the child starts as a copy of its parent.
    pub fn on_fork(&mut self, pid: u32, ppid: u32, vpid: u32, start_ts: u64, comm: &str) {
        let mut child = match self.procs.get(&ppid) {
            Some(parent) => parent.clone(),
            None => self.read_proc(ppid).unwrap_or_default(),
        };
        child.pid = pid;
        child.ppid = ppid;
        child.vpid = vpid;
        child.start_ts = start_ts;
        child.comm = comm.to_string();
        child.exited_at = None;
        child.ancestors_cache = None;
        child.process_cache = None;
        self.procs.insert(pid, child);
    }

    /// An exec: the container follows the cgroup path the kernel reported.
    pub fn container_for_cgroup(&self, cgroup: &str) -> Option<CgroupContainer> {
        container_from_cgroup(cgroup, &self.containerd_namespaces)
    }

    /// The process exited: its entry lingers for late events and orphans, without
    /// its cached values (rebuilt if a late event needs them). Under exec churn the
    /// lingering entries were most of the agent's memory: ~3 KiB each with the caches
    /// (the ancestor list copies every ancestor's strings), ~0.5 KiB without.
    pub fn on_exit(&mut self, pid: u32) {
        if let Some(p) = self.procs.get_mut(&pid) {
            p.exited_at = Some(Instant::now());
            p.ancestors_cache = None;
            p.process_cache = None;
        }
    }

    /// Bumped by every exec and removal: values cached from the table (ancestor lists,
    /// the enricher's processes) built before are stale.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A process's name, exe or argv changed (exec): cached ancestor lists are stale.
    pub fn invalidate_ancestors(&mut self) {
        self.generation += 1;
    }

    /// Ancestors of `pid`, parent first; shared by all events of the process
    /// until some process execs or leaves the table.
    pub fn ancestors(&mut self, pid: u32) -> Arc<[Ancestor]> {
        let gen = self.generation;
        if let Some((g, a)) = self
            .procs
            .get(&pid)
            .and_then(|p| p.ancestors_cache.as_ref())
        {
            if *g == gen {
                return a.clone();
            }
        }
        let mut out = Vec::new();
        let mut cur = self.procs.get(&pid).map(|p| p.ppid).unwrap_or(0);
        while cur != 0 && out.len() < self.max_ancestors {
            let Some(p) = self.procs.get(&cur) else { break };
            let mut a = p.ancestor();
            // argv of the parent and grandparent only (proc.pcmdline and friends):
            // keeps events small when an ancestor has a huge command line
            if out.len() >= 2 {
                a.args.clear();
            }
            out.push(a);
            if p.ppid == cur {
                break;
            }
            cur = p.ppid;
        }
        let shared: Arc<[Ancestor]> = out.into();
        if let Some(p) = self.procs.get_mut(&pid) {
            p.ancestors_cache = Some((gen, shared.clone()));
        }
        shared
    }

    /// Drop processes that exited more than `linger` ago; returns how many.
    pub fn sweep(&mut self) -> usize {
        let before = self.procs.len();
        let linger = self.linger;
        self.procs
            .retain(|_, p| p.exited_at.is_none_or(|t| t.elapsed() < linger));
        let removed = before - self.procs.len();
        if removed > 0 {
            self.generation += 1;
        }
        removed
    }
}

/// Whether a process runs in a 32-bit address space (an ia32 program, or an x32 one), from
/// its `/proc/<pid>/stat` stack start (`startstack`): the kernel places a 32-bit program's
/// stack below 4 GiB (`TASK_SIZE` of `TIF_ADDR32`) and a 64-bit one's far above it. For the
/// processes that predate the agent, whose exec the probe never saw; no file of the process
/// is read (an executable on a hung network or FUSE mount cannot stall the agent). 0 (not
/// shown, a kernel thread) is not.
fn stack_is_32_bit(startstack: u64) -> bool {
    startstack != 0 && startstack < 1 << 32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 32-bit program started before the agent is flagged ia32 by the /proc seed (its
    /// stack below 4 GiB); this test's own process (64-bit) and an unreadable one are not.
    #[test]
    fn the_stack_says_whether_a_seeded_process_is_32_bit() {
        let t = ProcessTable::new(vec!["default".into()], 0);
        let me = t.read_proc(std::process::id()).expect("our own entry");
        assert!(!me.exe_flags.ia32);
        assert!(!stack_is_32_bit(0));
        assert!(stack_is_32_bit(0xffd0_0000));
        assert!(!stack_is_32_bit(0x7ffc_0000_0000));
        // a real 32-bit process, blocked in pause() (ia32 29)
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("ia32-pause");
        let prog = crate::selftest::elf32(&[0xb8, 29, 0, 0, 0, 0xcd, 0x80], &[]);
        std::fs::write(&path, prog).expect("write");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        match std::process::Command::new(&path).spawn() {
            Ok(mut child) => {
                // the exec may not have finished yet (its name is set before its stack):
                // wait for the program asleep in its pause()
                let deadline = Instant::now() + Duration::from_secs(10);
                while !crate::procfs::Stat::read(child.id())
                    .is_some_and(|s| s.comm == "ia32-pause" && s.state == 'S')
                    && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let entry = t.read_proc(child.id());
                let _ = child.kill();
                let _ = child.wait();
                let entry = entry.expect("the 32-bit process's entry");
                assert_eq!(entry.comm, "ia32-pause");
                assert!(entry.exe_flags.ia32, "a running i386 program");
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => {
                eprintln!("this kernel runs no 32-bit programs ({e}): the live half is not run")
            }
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }

    #[test]
    fn fork_exec_exit_and_ancestors() {
        let mut t = ProcessTable::new(vec!["default".into()], 0);
        t.insert(ProcInfo {
            pid: 1000,
            ppid: 1,
            comm: "runc".into(),
            ..Default::default()
        });
        t.insert(ProcInfo {
            pid: 1,
            ppid: 0,
            comm: "init".into(),
            ..Default::default()
        });
        t.on_fork(1001, 1000, 1, 5, "runc");
        assert_eq!(t.get(1001).unwrap().comm, "runc");
        let a = t.ancestors(1001);
        assert_eq!(
            a.iter().map(|a| a.comm.as_str()).collect::<Vec<_>>(),
            ["runc", "init"]
        );
        t.on_exit(1001);
        t.linger = Duration::from_secs(0);
        assert_eq!(t.sweep(), 1);
        assert!(t.get(1001).is_none());
    }

    #[test]
    fn ancestors_are_shared_until_an_exec_changes_them() {
        let mut t = ProcessTable::new(vec![], 0);
        t.insert(ProcInfo {
            pid: 10,
            ppid: 0,
            comm: "bash".into(),
            ..Default::default()
        });
        t.on_fork(11, 10, 11, 1, "bash");
        let a1 = t.ancestors(11);
        let a2 = t.ancestors(11);
        assert!(Arc::ptr_eq(&a1, &a2), "second call served from the cache");
        assert_eq!(a1[0].comm, "bash");
        // the parent execs vim: the child's ancestors must say so
        t.invalidate_ancestors();
        if let Some(p) = t.get_mut(10) {
            p.comm = "vim".into();
        }
        let a3 = t.ancestors(11);
        assert!(!Arc::ptr_eq(&a1, &a3));
        assert_eq!(a3[0].comm, "vim");
        // the parent leaves the table: the chain is recomputed (and ends)
        t.on_exit(10);
        t.linger = Duration::from_secs(0);
        t.sweep();
        assert!(t.ancestors(11).is_empty());
    }

    #[test]
    fn seeds_ourselves_from_proc() {
        let t = ProcessTable::new(vec![], 0);
        let me = std::process::id();
        let p = t.read_proc(me).expect("own /proc entry");
        assert_eq!(p.pid, me);
        assert!(!p.comm.is_empty());
        assert!(p.exepath.starts_with('/'));
    }
}
