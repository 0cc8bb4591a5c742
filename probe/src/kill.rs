//! enforce-kill: execs outside a container image's profile are killed in the
//! kernel, before the new program runs any of its own code.
//!
//! The exec program (`tp_btf/sched_process_exec`, after the kernel resolved the
//! exe path) looks up the exec'ing task's cgroup v2 id
//! (`bpf_get_current_cgroup_id`) in `KILL_CGROUPS`. Every process of a
//! container is in its cgroup (`ctr task exec`, `kubectl exec` and `docker
//! exec` join it), so the cgroup names the container, and 64-bit cgroup ids are
//! never reused: a container started after another one ended can never inherit
//! its entry. The value is a profile number. The program hashes the exe path
//! ([`path_hash`]: FNV-1a 64 of the kernel's path, ` (deleted)` appended for a detached
//! file; an allowed rendered path stands for the forms `path::kernel_forms` lists;
//! a path too long to report whole is never allowed) and looks up
//! `(profile, hash)` in `KILL_ALLOW`; when it is missing the program calls
//! `bpf_send_signal(SIGKILL)` — the signal is delivered before the task returns
//! to user space — and marks the event ([`falco_learn_event::ExeFlags::killed`]).
//!
//! Userspace ([`KillPolicy`]) fills both maps: each profile's executables, and
//! each container's cgroup id once its image is known (every event carries the
//! id the kernel reports, `Event::cgroup_id`, so the agent needs no access to
//! the host's cgroup filesystem; [`cgroup_of`] is for tests and tools). A
//! container's first processes run before its metadata resolves (a few ms);
//! they are not under enforcement yet. The root cgroup, and the cgroups of init
//! and of this process, are never put under it. Needs the cgroup v2 hierarchy
//! (pure v2, or v1 with the unified hierarchy mounted, where runc also places
//! containers).

use crate::ProbeError;
use ahash::{AHashMap, AHashSet};
use aya::maps::{HashMap, MapData};
use aya::Ebpf;
use falco_learn_probe_common::KILL_HASH_WORDS;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

/// The hash the kernel computes of an exe path (the bytes a rendered event path stands
/// for, ` (deleted)` included), keyed with `seed`.
///
/// The path is zero-padded to a multiple of 16 bytes; per little-endian 8-byte word:
/// `h = (h ^ w) * P`, then `h ^= h >> 32`; finally the length is mixed in the same way
/// (`>> 29`). `P` is FNV's 64-bit prime. The seed is random per probe start and never leaves the agent and the
/// kernel: without it a process cannot compute a path whose hash equals an allowed one.
/// Every byte counts (up to [`KILL_HASH_WORDS`] words, more than any reported path).
pub fn path_hash(seed: u64, path: &[u8]) -> u64 {
    const P: u64 = 0x0000_0100_0000_01b3;
    let mut h = seed;
    for chunk in path.chunks(16).take(KILL_HASH_WORDS / 2) {
        let mut b = [0u8; 16];
        b[..chunk.len()].copy_from_slice(chunk);
        for w in b.chunks_exact(8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            h = (h ^ u64::from_le_bytes(word)).wrapping_mul(P);
            h ^= h >> 32;
        }
    }
    h = (h ^ path.len() as u64).wrapping_mul(P);
    h ^ (h >> 29)
}

/// A fresh random seed for [`path_hash`] (getrandom(2); the time as a last resort).
pub fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most 8 bytes into the buffer we own.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == 8 {
        return u64::from_le_bytes(b);
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9e37_79b9_7f4a_7c15)
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` on pure v2,
/// `/sys/fs/cgroup/unified` on hybrid systems), from `/proc/self/mountinfo`.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        (post.split_whitespace().next() == Some("cgroup2"))
            .then(|| pre.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}

/// A process's cgroup v2: its path (`/proc/<pid>/cgroup`'s `0::` line) and id
/// (the inode number of its directory, what `bpf_get_current_cgroup_id` returns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    pub path: String,
    pub id: u64,
}

/// The cgroup v2 of process `pid`.
pub fn cgroup_of(pid: u32) -> std::io::Result<Cgroup> {
    use std::io::{Error, ErrorKind};
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("/proc/{pid}/cgroup has no cgroup v2 (0::) line"),
            )
        })?
        .trim()
        .to_string();
    if path.split('/').any(|c| c == "..") {
        // outside this process's cgroup namespace: not addressable from here
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("cgroup {path} of {pid} is outside this cgroup namespace"),
        ));
    }
    let root = cgroup2_root()
        .ok_or_else(|| Error::new(ErrorKind::NotFound, "no cgroup2 hierarchy is mounted"))?;
    let dir = root.join(path.trim_start_matches('/'));
    let id = std::fs::metadata(&dir)
        .map_err(|e| Error::new(e.kind(), format!("{}: {e}", dir.display())))?
        .ino();
    Ok(Cgroup { path, id })
}

/// Whether a process's cgroup v2 is its container's own: what binding a cgroup to a
/// container's profile needs ([`container_cgroup`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupOwner {
    /// The cgroup v2 is the container's: the first component of its path that names a
    /// container names this one, and its id is the event's. `dir` is the cgroup's directory
    /// when this process can address it (the cgroup is gone when it is), `None` when the
    /// path lies outside this process's cgroup namespace (then the process was checked to
    /// be the event's by its start time, and the id could not be compared).
    Container { dir: Option<PathBuf> },
    /// Not decidable now (the process is gone, its pid reused, it moved since the event,
    /// its cgroup is not addressable): ask again later.
    Unknown(String),
    /// The process is in the event's cgroup, and that cgroup is not the container's: a
    /// cgroup v2 shared with other containers or the host (why). It must never be bound.
    Shared(String),
}

/// What an event says of its process, for [`container_cgroup`].
#[derive(Debug, Clone, Copy)]
pub struct CgroupClaim<'a> {
    /// Host pid (the thread group's).
    pub pid: u32,
    /// The process's start, ns since the epoch (`proc.start_ts`; 0 when unknown).
    pub start_ts: u64,
    /// The cgroup v2 id the event carries.
    pub cgroup_id: u64,
    /// Falco's short container id the process is attributed to.
    pub container_id: &'a str,
}

/// Whether the cgroup v2 an event carries is its container's own, from
/// `/proc/<pid>/cgroup` and the cgroup's directory:
/// - the process must be in that cgroup now (its directory's inode is the event's id;
///   otherwise it moved, or the pid was reused: undecided);
/// - its path must name the container first ([`crate::container::cgroup_path_is_containers`]
///   with `containerd_namespaces`).
///
/// A container is attributed from the cgroup path the probe reports, which on a hybrid
/// host is the v1 memory hierarchy's; its cgroup v2 can then be a shared one (a runtime
/// that only manages v1 leaves every container in its own service's v2 cgroup). Binding
/// that id would put every process in it under one container's profile.
///
/// When the agent runs in a cgroup namespace of its own, other containers' paths start
/// with `..` and cannot be addressed: the name is checked, and the pid is checked to be
/// the event's process by its start time; the id cannot be.
pub fn container_cgroup(claim: CgroupClaim<'_>, containerd_namespaces: &[String]) -> CgroupOwner {
    let pid = claim.pid;
    let text = match std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
        Ok(t) => t,
        Err(e) => return CgroupOwner::Unknown(format!("/proc/{pid}/cgroup: {e}")),
    };
    let Some(path) = text.lines().find_map(|l| l.strip_prefix("0::")) else {
        return CgroupOwner::Unknown(format!("/proc/{pid}/cgroup has no cgroup v2 (0::) line"));
    };
    let path = path.trim();
    let names = crate::container::cgroup_path_is_containers(
        path,
        claim.container_id,
        containerd_namespaces,
    );
    if path.split('/').any(|c| c == "..") {
        if !names {
            return CgroupOwner::Unknown(format!(
                "cgroup {path} is outside this cgroup namespace and does not name container {}",
                claim.container_id
            ));
        }
        let tick_ns = 1_000_000_000 / crate::procfs::clk_tck().max(1);
        let same = crate::procfs::Stat::read(pid).is_some_and(|st| {
            claim.start_ts >= crate::procfs::boot_epoch_ns()
                && (claim.start_ts - crate::procfs::boot_epoch_ns()) / tick_ns == st.starttime
        });
        return if same {
            CgroupOwner::Container { dir: None }
        } else {
            CgroupOwner::Unknown(format!(
                "process {pid} is not the event's (pid reused or gone)"
            ))
        };
    }
    let Some(root) = cgroup2_root() else {
        return CgroupOwner::Unknown("no cgroup2 hierarchy is mounted".into());
    };
    let dir = root.join(path.trim_start_matches('/'));
    let id = match std::fs::metadata(&dir) {
        Ok(m) => m.ino(),
        Err(e) => return CgroupOwner::Unknown(format!("{}: {e}", dir.display())),
    };
    if id != claim.cgroup_id {
        return CgroupOwner::Unknown(format!(
            "process {pid} is in cgroup {path} (id {id}) now, not id {}",
            claim.cgroup_id
        ));
    }
    if !names {
        return CgroupOwner::Shared(format!(
            "its cgroup v2 is {path}, which is not container {}'s own",
            claim.container_id
        ));
    }
    CgroupOwner::Container { dir: Some(dir) }
}

/// [`cgroup2_mount`], read once.
fn cgroup2_root() -> Option<&'static PathBuf> {
    static ROOT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    ROOT.get_or_init(cgroup2_mount).as_ref()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> ProbeError {
    move |e| ProbeError::Map {
        map,
        err: e.to_string(),
    }
}

/// The two kill maps and what userspace put in them.
pub struct KillPolicy {
    /// cgroup v2 id → profile number.
    cgroups: crate::cgroup_map::CgroupMap,
    /// `[profile, hash]` (the C key `{u32 profile; u32 pad; u64 hash}` read as
    /// two little-endian u64) → 1.
    allow: Mutex<HashMap<MapData, [u64; 2], u8>>,
    /// What `allow` holds, by profile.
    allowed: Mutex<AHashMap<u32, AHashSet<u64>>>,
    /// The kernel program's `kill_hash_seed`.
    seed: u64,
}

impl KillPolicy {
    pub(crate) fn new(
        ebpf: &mut Ebpf,
        seed: u64,
        containerd_namespaces: Vec<String>,
    ) -> Result<KillPolicy, ProbeError> {
        let take = |ebpf: &mut Ebpf, name: &'static str| {
            ebpf.take_map(name).ok_or(ProbeError::Map {
                map: name,
                err: "missing".into(),
            })
        };
        // never enforced: this process's cgroup and init's
        let host_cgroups = [std::process::id(), 1]
            .into_iter()
            .filter_map(|p| cgroup_of(p).ok().map(|c| c.id))
            .collect();
        let cgroups = crate::cgroup_map::CgroupMap::new(
            ebpf,
            "KILL_CGROUPS",
            "enforced",
            host_cgroups,
            containerd_namespaces,
        )?;
        let allow = HashMap::try_from(take(ebpf, "KILL_ALLOW")?).map_err(map_err("KILL_ALLOW"))?;
        Ok(KillPolicy {
            cgroups,
            allow: Mutex::new(allow),
            allowed: Mutex::new(AHashMap::new()),
            seed,
        })
    }

    /// Make `paths` the executables profile `profile` allows (replacing what it
    /// allowed before). Returns how many distinct executables it now allows.
    ///
    /// Paths are rendered event paths ([`falco_learn_event::path`]): the kernel hashes
    /// its own forms of them ([`falco_learn_event::path::kernel_forms`]: a path linked or
    /// unlinked, a memfd's name as `/memfd:… (deleted)`). A truncated path stands for no
    /// single file and is never allowed (the kernel kills every exec whose path it could
    /// not report whole).
    pub fn set_profile<'a>(
        &self,
        profile: u32,
        paths: impl IntoIterator<Item = &'a str>,
    ) -> Result<usize, ProbeError> {
        let mut executables = AHashSet::new();
        let mut want: AHashSet<u64> = AHashSet::new();
        for p in paths {
            let forms = falco_learn_event::path::kernel_forms(p);
            if !forms.is_empty() {
                executables.insert(p);
            }
            want.extend(forms.iter().map(|b| path_hash(self.seed, b)));
        }
        let mut allowed = lock(&self.allowed);
        let mut allow = lock(&self.allow);
        let have = allowed.entry(profile).or_default();
        for h in want.difference(have) {
            allow
                .insert([u64::from(profile), *h], 1, 0)
                .map_err(map_err("KILL_ALLOW"))?;
        }
        for h in have.difference(&want) {
            // already gone is fine: the goal is absence
            let _ = allow.remove(&[u64::from(profile), *h]);
        }
        *have = want;
        Ok(executables.len())
    }

    /// Forget profile `profile`: its allowed set, and every cgroup under it
    /// (those containers are no longer enforced).
    pub fn drop_profile(&self, profile: u32) {
        if let Some(hashes) = lock(&self.allowed).remove(&profile) {
            let mut allow = lock(&self.allow);
            for h in hashes {
                let _ = allow.remove(&[u64::from(profile), h]);
            }
        }
        self.cgroups.release_profile(profile);
    }

    /// Put the container whose cgroup v2 id is `cgroup` under `profile`.
    pub fn enforce(&self, cgroup: u64, profile: u32) -> Result<(), ProbeError> {
        let known = lock(&self.allowed).contains_key(&profile);
        self.cgroups.bind(cgroup, profile, known)
    }

    /// Stop enforcing cgroup `id` (its container is gone).
    pub fn release(&self, id: u64) {
        self.cgroups.release(id);
    }

    /// Whether the cgroup an event claims is its container's own, so that it may be
    /// bound ([`container_cgroup`]).
    pub fn owner(&self, claim: CgroupClaim<'_>) -> CgroupOwner {
        self.cgroups.owner(claim)
    }

    /// Cgroup ids under enforcement now, with their profile numbers.
    pub fn enforced(&self) -> Vec<(u64, u32)> {
        self.cgroups.bound()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process outside any container (this test) is in no container's cgroup; a process
    /// that does not exist cannot be decided.
    #[test]
    fn the_host_cgroup_is_no_containers_and_a_gone_process_is_undecided() {
        let claim = |pid, cgroup_id| CgroupClaim {
            pid,
            start_ts: 0,
            cgroup_id,
            container_id: "web",
        };
        let ns = ["default".to_string()];
        // this test's own cgroup, with its real id: not the container's
        if let Ok(own) = cgroup_of(std::process::id()) {
            assert!(matches!(
                container_cgroup(claim(std::process::id(), own.id), &ns),
                CgroupOwner::Shared(_)
            ));
            // another id than the one the process is in: undecided, never shared
            assert!(matches!(
                container_cgroup(claim(std::process::id(), own.id + 1), &ns),
                CgroupOwner::Unknown(_)
            ));
        }
        assert!(matches!(
            container_cgroup(claim(u32::MAX - 1, 1), &ns),
            CgroupOwner::Unknown(_)
        ));
    }

    #[test]
    fn path_hash_depends_on_every_byte_the_length_and_the_seed() {
        let s = 0x1234_5678_9abc_def0;
        // a hand-computed value: two words (the second all padding), then the length
        let p: u64 = 0x0000_0100_0000_01b3;
        let mut h = (s ^ u64::from_le_bytes(*b"/bin/sh\0")).wrapping_mul(p);
        h ^= h >> 32;
        h = h.wrapping_mul(p);
        h ^= h >> 32;
        h = (h ^ 7).wrapping_mul(p);
        assert_eq!(path_hash(s, b"/bin/sh"), h ^ (h >> 29));
        assert_ne!(path_hash(s, b"/bin/sh"), path_hash(s, b"/bin/bash"));
        assert_ne!(path_hash(s, b"/bin/sh"), path_hash(s + 1, b"/bin/sh"));
        // zero padding is not the same as a shorter path
        assert_ne!(path_hash(s, b"/a"), path_hash(s, b"/a\0"));
        // the last of 4095 bytes counts (the old hash stopped at 512)
        let mut long = vec![b'x'; 4095];
        let h1 = path_hash(s, &long);
        long[4094] = b'y';
        assert_ne!(h1, path_hash(s, &long));
        let mut d = long.clone();
        d.extend_from_slice(b" (deleted)");
        assert_ne!(path_hash(s, &d), path_hash(s, &long));
        assert_ne!(random_seed(), random_seed());
    }

    #[test]
    fn own_cgroup_reads() {
        if cgroup2_mount().is_none() {
            eprintln!("no cgroup2 mount: cgroup_of cannot be checked here");
            return;
        }
        let c = cgroup_of(std::process::id()).expect("own cgroup");
        assert!(c.path.starts_with('/'), "{c:?}");
        assert!(c.id > 0);
        assert!(cgroup_of(u32::MAX).is_err());
    }
}
