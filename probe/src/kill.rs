//! enforce-kill: execs outside a container image's profile are killed in the
//! kernel, before the new program runs any of its own code.
//!
//! The exec program (`tp_btf/sched_process_exec`, after the kernel resolved the
//! exe path) looks up the exec'ing task's cgroup v2 id
//! (`bpf_get_current_cgroup_id`) in `KILL_CGROUPS`, or else its nearest ancestor
//! cgroup's (a cgroup made below a container's is the container's, whatever it is named). Every process of a
//! container is in its cgroup (`ctr task exec`, `kubectl exec` and `docker
//! exec` join it), so the cgroup names the container, and 64-bit cgroup ids are
//! never reused: a container started after another one ended can never inherit
//! its entry. The value is a profile number. The program hashes the exe path
//! ([`path_hash`]: keyed SipHash of the kernel's path bytes, then whether the file is
//! detached or parentless and where it lives: a tmpfs, a memfd, an overlay's upper layer;
//! an allowed rendered path stands for the forms `path::kernel_forms` lists, from the
//! image's lower layer (or a disk) only unless it was learned from elsewhere
//! ([`AllowedExec`]); a path too long to report whole is never allowed) and looks up
//! `(profile, hash)` in `KILL_ALLOW`; when it is missing the program calls
//! `bpf_send_signal(SIGKILL)` — the signal is delivered before the task returns
//! to user space — and marks the event ([`falco_learn_event::ExeFlags::killed`]).
//! The runtime's own child is spared (`runtime_child` in the probe; the event's
//! `exe_flags.runtime`): a task in the host's pid namespace whose parent, also there, in
//! the same mount namespace and outside the container's cgroup, is named `runc…` —
//! `runc init` before it enters the container (runc 1.4's `runc exec` starts it right in
//! the container's cgroup, `CLONE_INTO_CGROUP`; judged, it would be killed at its first
//! exec). A hostPID container's processes are judged: their parent is in the cgroup, or
//! runc in another mount namespace (an exec session's command), or a reaper that is not
//! runc.
//!
//! Userspace ([`KillPolicy`]) fills both maps: each profile's executables, and
//! each container's cgroup id once its image is known (every event carries the
//! id the kernel reports, `Event::cgroup_id`, so the agent needs no access to
//! the host's cgroup filesystem; [`cgroup_of`] is for tests and tools). A
//! container's first processes run before its metadata resolves (a few ms), so
//! the kernel cannot judge their execs; the agent kills one outside the profile
//! from userspace once it has judged it, exactly as the kernel would have
//! ([`KillPolicy::would_kill`], [`kill_process`]), after it ran. The root cgroup, and the cgroups of init
//! and of this process, are never put under it. Needs the cgroup v2 hierarchy
//! (pure v2, or v1 with the unified hierarchy mounted, where runc also places
//! containers).

use crate::ProbeError;
use ahash::{AHashMap, AHashSet};
use aya::maps::{HashMap, MapData};
use aya::Ebpf;
use falco_learn_event::path::KernelForm;
use falco_learn_probe_common::{
    EXE_HOST_ROOT, EXE_MEMFD, EXE_OTHER_FS, EXE_OTHER_ROOT, EXE_TMPFS, EXE_UPPER,
    KILL_BYTE2_OTHER_FS, KILL_BYTE_HOST_ROOT, KILL_BYTE_OTHER_ROOT, KILL_HASH_WORDS, PATH_DETACHED,
    PATH_PSEUDO,
};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

/// The hash the kernel computes of an exe path in one of its forms
/// ([`falco_learn_event::path::kernel_forms`]), keyed with `key`: SipHash-1-3 of the
/// path's bytes followed by two bytes holding the form's path flags ([`PATH_DETACHED`],
/// [`PATH_PSEUDO`]) and where the file lives (`layer`: [`EXE_TMPFS`], [`EXE_MEMFD`],
/// [`EXE_UPPER`], an overlay's upper layer, or [`EXE_OTHER_FS`], another filesystem than
/// the root's; 0: the root's lower layer or disk; with
/// [`EXE_OTHER_ROOT`] when run from another root than the cgroup's home, or
/// [`EXE_HOST_ROOT`] when that root is the host's), so an unlinked
/// `/bin/sh` and a file named `/bin/sh (deleted)` differ, and so do the image's `/bin/sh`
/// and a file the container wrote and copied, renamed or bind-mounted onto its path.
///
/// SipHash is a keyed pseudo-random function: the key is random per probe start and never
/// leaves the agent and the kernel, so a process can neither compute nor construct a path
/// whose hash equals an allowed one. (An earlier ad-hoc multiply-xor hash had collisions
/// that held for every seed: flipping the top bit of three bytes of an allowed path kept
/// its hash.) Every byte counts (up to [`KILL_HASH_WORDS`] words, more than any reported
/// path).
pub fn path_hash(key: [u64; 2], form: &KernelForm, layer: u32) -> u64 {
    use std::hash::Hasher as _;
    let mut flags = layer & (EXE_TMPFS | EXE_MEMFD | EXE_UPPER);
    if form.detached {
        flags |= PATH_DETACHED;
    }
    if form.pseudo {
        flags |= PATH_PSEUDO;
    }
    let end = form.bytes.len().min(KILL_HASH_WORDS * 8 - 2);
    let mut h = siphasher::sip::SipHasher13::new_with_keys(key[0], key[1]);
    h.write(&form.bytes[..end]);
    // the kernel keeps these flags (1, 2, 4, 32 and 128) in the first byte, another root as
    // 8, the host's root as 16
    let mut root = 0;
    if layer & EXE_OTHER_ROOT != 0 {
        root |= KILL_BYTE_OTHER_ROOT;
    }
    if layer & EXE_HOST_ROOT != 0 {
        root |= KILL_BYTE_HOST_ROOT;
    }
    h.write_u8(flags as u8 | root);
    // the second byte: another filesystem than the root's
    h.write_u8(if layer & EXE_OTHER_FS != 0 {
        KILL_BYTE2_OTHER_FS
    } else {
        0
    });
    h.finish()
}

/// The `layer` of [`path_hash`] an exec's flags say, as the exec program puts them in its
/// hash: where the file lives and which root it ran from. `None` when no entry allows it
/// whatever the path: a relocated exec (the kernel hashes it with a bit no entry has).
pub fn exe_layer(f: &falco_learn_event::ExeFlags) -> Option<u32> {
    if f.relocated {
        return None;
    }
    Some(
        [
            (f.tmpfs, EXE_TMPFS),
            (f.memfd, EXE_MEMFD),
            (f.upper_layer, EXE_UPPER),
            (f.other_fs == Some(true), EXE_OTHER_FS),
            (f.other_root, EXE_OTHER_ROOT),
            (f.host_root, EXE_HOST_ROOT),
        ]
        .into_iter()
        .filter_map(|(on, l)| on.then_some(l))
        .fold(0, |a, l| a | l),
    )
}

/// The hash the exec program computes for an exec reported as `exepath` (rendered) with
/// `flags`, keyed with `key`; `None` when the kernel allows it under no entry (a truncated
/// path, a malformed escape, a relocated exec). An allowed path is allowed in each of its
/// kernel forms (linked and unlinked), so the rendered path's first form decides as the
/// exec's own would.
pub fn exec_hash(key: [u64; 2], exepath: &str, flags: &falco_learn_event::ExeFlags) -> Option<u64> {
    let layer = exe_layer(flags)?;
    let forms = falco_learn_event::path::kernel_forms(exepath);
    forms.first().map(|f| path_hash(key, f, layer))
}

/// An executable a profile allows ([`KillPolicy::set_profile`]): its rendered path, and
/// where else than an image's lower layer (or a disk) it may live, as the profile learned it
/// (`ExecEntry`'s `upper_layer`, `tmpfs`, `memfd`, `other_fs`). A path alone (`"/bin/sh"`) is the
/// image's file only (a memfd's `memfd:…` name is a memfd).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AllowedExec<'a> {
    pub path: &'a str,
    /// On an overlay's upper layer (written in the container).
    pub upper_layer: bool,
    /// On a tmpfs.
    pub tmpfs: bool,
    /// A memfd (or a tmpfs file named `memfd:…`).
    pub memfd: bool,
    /// On another filesystem than the process's root (a volume, a file bound in from the
    /// host), not a tmpfs.
    pub other_fs: bool,
    /// Also run from another root than its cgroup's home that is not the host's
    /// (`ExecEntry::other_root`), from any of the places above.
    pub other_root: bool,
    /// Also run from the host's root (`ExecEntry::host_root`), from any of the places above.
    pub host_root: bool,
}

impl<'a> From<&'a str> for AllowedExec<'a> {
    fn from(path: &'a str) -> Self {
        AllowedExec {
            path,
            ..AllowedExec::default()
        }
    }
}

/// `statfs(2)`'s `f_type` of a tmpfs (`TMPFS_MAGIC`, include/uapi/linux/magic.h).
pub const TMPFS_MAGIC: i64 = 0x0102_1994;

/// `statfs(2)`'s `f_type` of the filesystem holding `path`.
pub fn fs_magic(path: &std::path::Path) -> Option<i64> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs writes into the zeroed struct we own; c is NUL-terminated.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    (unsafe { libc::statfs(c.as_ptr(), &mut s) } == 0).then_some(s.f_type as i64)
}

impl<'a> AllowedExec<'a> {
    /// A file of this machine's own filesystems, where the kernel will find it (a tmpfs, a
    /// `memfd:…`-named tmpfs file, another filesystem than "/"'s, or neither), for tools
    /// that allow a host file (`selftest`, `bench`), run from the host's root. A file not
    /// there yet is judged by the nearest directory that is.
    pub fn host_file(path: &'a str) -> AllowedExec<'a> {
        let on_tmpfs =
            std::path::Path::new(path).ancestors().find_map(fs_magic) == Some(TMPFS_MAGIC);
        let memfd_name = std::path::Path::new(path)
            .file_name()
            .is_some_and(|n| n.as_encoded_bytes().starts_with(b"memfd:"));
        let other_fs = std::path::Path::new(path)
            .ancestors()
            .find_map(superblock)
            .is_some_and(|sb| Some(sb) != superblock(std::path::Path::new("/")));
        AllowedExec {
            path,
            tmpfs: on_tmpfs && !memfd_name,
            memfd: on_tmpfs && memfd_name,
            other_fs: other_fs && !on_tmpfs,
            ..AllowedExec::default()
        }
    }

    /// The `layer` values of [`path_hash`] the kernel may find this executable with.
    fn layers(&self) -> impl Iterator<Item = u32> {
        let memfd = self.memfd || self.path.starts_with("memfd:");
        let roots: Vec<u32> = [
            (true, 0),
            (self.other_root, EXE_OTHER_ROOT),
            (self.host_root, EXE_HOST_ROOT),
        ]
        .into_iter()
        .filter_map(|(on, r)| on.then_some(r))
        .collect();
        // another filesystem: not a tmpfs or a memfd (those are flagged as such), but
        // maybe another overlay's upper layer (a volume that is an overlay)
        [
            (true, 0),
            (self.upper_layer, EXE_UPPER),
            (self.tmpfs, EXE_TMPFS),
            (memfd, EXE_MEMFD),
            (self.other_fs, EXE_OTHER_FS),
            (self.other_fs && self.upper_layer, EXE_OTHER_FS | EXE_UPPER),
        ]
        .into_iter()
        .filter_map(|(on, l)| on.then_some(l))
        .flat_map(move |l| roots.clone().into_iter().map(move |r| l | r))
    }
}

/// The hashes the kernel finds `execs` with (each in every kernel form of its path and in
/// every layer it was learned in), and how many distinct executables that is.
fn allowed_hashes<'a, E: Into<AllowedExec<'a>>>(
    key: [u64; 2],
    execs: impl IntoIterator<Item = E>,
) -> (AHashSet<u64>, usize) {
    let mut executables = AHashSet::new();
    let mut want: AHashSet<u64> = AHashSet::new();
    for e in execs {
        let e = e.into();
        let forms = falco_learn_event::path::kernel_forms(e.path);
        if !forms.is_empty() {
            executables.insert(e.path);
        }
        for layer in e.layers() {
            want.extend(forms.iter().map(|f| path_hash(key, f, layer)));
        }
    }
    (want, executables.len())
}

/// A fresh random key for [`path_hash`] (getrandom(2)); `None` when the kernel gives
/// none: enforce-kill then refuses to start (a guessable key makes collisions computable).
pub fn random_key() -> Option<[u64; 2]> {
    let mut b = [0u8; 16];
    // SAFETY: getrandom writes at most 16 bytes into the buffer we own.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != 16 {
        return None;
    }
    let mut k0 = [0u8; 8];
    let mut k1 = [0u8; 8];
    k0.copy_from_slice(&b[..8]);
    k1.copy_from_slice(&b[8..]);
    Some([u64::from_le_bytes(k0), u64::from_le_bytes(k1)])
}

/// The filesystem (superblock) `path` is on, as the kernel tells them apart: its mount's
/// device number in `/proc/self/mountinfo` (`major:minor`, the superblock's), found by the
/// mount id `statx(2)` gives (Linux 5.8+). Not `stat`'s `st_dev`, which a btrfs subvolume
/// has of its own on the same filesystem. `None` when either is not known.
pub fn superblock(path: &std::path::Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statx writes into the zeroed struct we own; c is NUL-terminated.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let r = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), 0, libc::STATX_MNT_ID, &mut st) };
    if r != 0 || st.stx_mask & libc::STATX_MNT_ID == 0 {
        return None;
    }
    let id = st.stx_mnt_id.to_string();
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next() == Some(id.as_str()))
            .then(|| f.nth(1).map(str::to_string))
            .flatten()
    })
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
    ///
    /// `top`: the container's own cgroup (its v2 id and directory) when the event's is one
    /// below it (systemd in the container, a dind entrypoint and others move their
    /// processes out of it): bound too, so that every cgroup of the container, whatever
    /// it is named, is judged by its profile in the kernel (`kill_profile`).
    Container {
        dir: Option<PathBuf>,
        top: Option<(u64, PathBuf)>,
    },
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
        let same = crate::procfs::Stat::read(pid).is_some_and(|st| st.started_at(claim.start_ts));
        return if same {
            CgroupOwner::Container {
                dir: None,
                top: None,
            }
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
    let top =
        crate::container::containers_own_cgroup(path, claim.container_id, containerd_namespaces)
            .filter(|t| t.as_str() != path)
            .and_then(|t| {
                let d = root.join(t.trim_start_matches('/'));
                let id = std::fs::metadata(&d).ok()?.ino();
                Some((id, d))
            });
    CgroupOwner::Container {
        dir: Some(dir),
        top,
    }
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

/// What [`kill_process`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LateKill {
    /// SIGKILL sent to the process, and to the processes it started since its exec
    /// (`descendants` of them, each stopped before its children were looked for).
    Killed { descendants: u32 },
    /// The process had exited (a zombie too: it runs nothing), or its pid is another
    /// process's now: nothing to kill.
    Gone,
}

/// How many times the process tree is read again for children forked meanwhile.
const KILL_TREE_PASSES: usize = 16;
/// How many processes a late kill takes at most besides the process itself.
const KILL_TREE_MAX: usize = 4096;
/// How long the processes stopped in one pass are waited for to show they are stopped (one
/// may be in a fork), all together.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

/// SIGKILL the process `pid` that started at `start_ts` (ns since the epoch, as events
/// carry it; compared at `/proc`'s clock-tick resolution), and the processes below it that
/// started since `exec_ts` (its exec's time, ns since the epoch): enforce-kill's kill from
/// userspace, for an exec the kernel could not judge (its container's cgroup was not under
/// its profile yet). Had the kernel judged it, the program would have run none of its code
/// and forked nothing: its children and their children since the exec die with it (at
/// `/proc`'s clock-tick resolution: a child made in the same tick before the exec counts
/// too); its children from before the exec, which ran the program before it, live on.
///
/// Best effort below the process itself: the tree is read from each process's
/// `/proc/<pid>/task/*/children` (every process's `stat` where the kernel has no such
/// file), so a process the program left (a double fork, `setsid` and exit, a
/// `CLONE_PARENT` child: adopted by a reaper before it is looked for) is not found; and it
/// is bounded ([`KILL_TREE_PASSES`] reads, [`KILL_TREE_MAX`] processes, [`STOP_WAIT`] a
/// pass), since it runs on the agent's event loop.
///
/// Each process is named by a pidfd opened before it is checked (the process by its start
/// time, one below it by its parent being in the tree and its start since the exec), so a
/// pid reused meanwhile is never signalled. The tree is stopped from the top (SIGSTOP: a
/// stopped process forks no more), read again until no new child shows, then killed; one
/// that cannot be killed is let go on (SIGCONT). Errors: the pidfd calls' on the process
/// itself (not allowed, or no pidfd support: Linux < 5.3); a process below it that cannot
/// be signalled is left (said in the log).
pub fn kill_process(pid: u32, start_ts: u64, exec_ts: u64) -> std::io::Result<LateKill> {
    use rustix::process::{pidfd_send_signal, Signal};
    let Some((fd, st)) = open_process(pid, |st| st.started_at(start_ts))? else {
        return Ok(LateKill::Gone);
    };
    // `Z` is the main thread's state: a process whose main thread exited while others run
    // shows it too, and must be killed; a zombie with no thread left runs nothing
    if st.state == 'Z' && threads(pid).is_none_or(|n| n <= 1) {
        return Ok(LateKill::Gone);
    }
    match pidfd_send_signal(&fd, Signal::STOP) {
        Ok(()) => {}
        Err(rustix::io::Errno::SRCH) => return Ok(LateKill::Gone),
        Err(e) => return Err(e.into()),
    }
    let tick = 1_000_000_000 / crate::procfs::clk_tck().max(1);
    let since_ticks = exec_ts.saturating_sub(crate::procfs::boot_epoch_ns()) / tick;
    let mut tree: Vec<(u32, rustix::fd::OwnedFd)> = Vec::new();
    // the process and the tree below it found so far
    let mut members: AHashSet<u32> = AHashSet::from_iter([pid]);
    let mut frontier = vec![pid];
    for _ in 0..KILL_TREE_PASSES {
        if frontier.is_empty() || tree.len() >= KILL_TREE_MAX {
            break;
        }
        // a fork under way when SIGSTOP came has made its child once its parent stopped
        wait_stopped(&frontier);
        // every member's children, read again: one stopped late may have forked meanwhile
        let mut next = Vec::new();
        for child in children(&members) {
            if members.contains(&child) || tree.len() >= KILL_TREE_MAX {
                continue;
            }
            // the pid once its pidfd is open: still a child of the tree (not a pid freed and
            // reused since it was read), started since the exec, not dead
            let Ok(Some((cfd, _))) = open_process(child, |st| {
                members.contains(&st.ppid) && st.starttime >= since_ticks && st.state != 'Z'
            }) else {
                continue;
            };
            if pidfd_send_signal(&cfd, Signal::STOP).is_ok() {
                members.insert(child);
                next.push(child);
                tree.push((child, cfd));
            }
        }
        frontier = next;
    }
    let mut descendants = 0;
    for (child, cfd) in &tree {
        match pidfd_send_signal(cfd, Signal::KILL) {
            Ok(()) => descendants += 1,
            Err(rustix::io::Errno::SRCH) => {}
            Err(e) => {
                let _ = pidfd_send_signal(cfd, Signal::CONT);
                tracing::warn!(
                    "enforce-kill: cannot kill process {child}, started by {pid} since its \
                     exec: {e}"
                );
            }
        }
    }
    match pidfd_send_signal(&fd, Signal::KILL) {
        Ok(()) => Ok(LateKill::Killed { descendants }),
        // it exited meanwhile: what it started was killed all the same
        Err(rustix::io::Errno::SRCH) if descendants > 0 => Ok(LateKill::Killed { descendants }),
        Err(rustix::io::Errno::SRCH) => Ok(LateKill::Gone),
        Err(e) => {
            let _ = pidfd_send_signal(&fd, Signal::CONT);
            Err(e.into())
        }
    }
}

/// A pidfd of process `pid` and its `stat`, when the process that has the pid once the
/// pidfd is open is the one `is` recognises (by its start time); `None` when gone.
fn open_process(
    pid: u32,
    is: impl Fn(&crate::procfs::Stat) -> bool,
) -> std::io::Result<Option<(rustix::fd::OwnedFd, crate::procfs::Stat)>> {
    use rustix::process::{pidfd_open, Pid, PidfdFlags};
    let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return Ok(None);
    };
    let fd = match pidfd_open(p, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // the pidfd holds the process that had the pid when it was opened: if that one is the
    // one wanted, so is the pidfd's
    Ok(crate::procfs::Stat::read(pid)
        .filter(|st| is(st))
        .map(|st| (fd, st)))
}

/// The children of the processes `parents` (pids): from each one's threads'
/// `/proc/<pid>/task/<tid>/children` (`CONFIG_PROC_CHILDREN`), or, where the kernel has no
/// such file, from every process's `stat`.
fn children(parents: &AHashSet<u32>) -> Vec<u32> {
    let mut out = Vec::new();
    for &p in parents {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.filter_map(Result::ok) {
            match std::fs::read_to_string(t.path().join("children")) {
                Ok(text) => out.extend(
                    text.split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && t.path().exists() => {
                    return children_from_stat(parents);
                }
                Err(_) => {}
            }
        }
    }
    out
}

/// [`children`] from every process's `stat` (its parent pid).
fn children_from_stat(parents: &AHashSet<u32>) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| crate::procfs::Stat::read(*pid).is_some_and(|st| parents.contains(&st.ppid)))
        .collect()
}

/// Wait ([`STOP_WAIT`] at most, for all of them together) until the processes `pids`
/// show stopped (or gone): a fork under way when SIGSTOP came has made its child by then.
fn wait_stopped(pids: &[u32]) {
    let until = std::time::Instant::now() + STOP_WAIT;
    let running = |p: &u32| {
        crate::procfs::Stat::read(*p).is_some_and(|st| !matches!(st.state, 'T' | 't' | 'Z' | 'X'))
    };
    while pids.iter().any(running) && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}

/// The `Threads:` count of `/proc/<pid>/status`.
fn threads(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
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
    /// The kernel program's `kill_hash_key0`, `kill_hash_key1`.
    key: [u64; 2],
    /// cgroup v2 id → kills whose exec record found the ring buffer full (running total).
    unreported: Mutex<HashMap<MapData, u64, u64>>,
}

impl KillPolicy {
    pub(crate) fn new(
        ebpf: &mut Ebpf,
        key: [u64; 2],
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
        let mut unreported: HashMap<MapData, u64, u64> =
            HashMap::try_from(take(ebpf, "KILLS_UNREPORTED")?)
                .map_err(map_err("KILLS_UNREPORTED"))?;
        // where the kernel counts when the map is full (cgroup unknown)
        unreported
            .insert(0, 0, 0)
            .map_err(map_err("KILLS_UNREPORTED"))?;
        Ok(KillPolicy {
            cgroups,
            allow: Mutex::new(allow),
            allowed: Mutex::new(AHashMap::new()),
            key,
            unreported: Mutex::new(unreported),
        })
    }

    /// Make `execs` the executables profile `profile` allows (replacing what it
    /// allowed before). Returns how many distinct executables it now allows.
    ///
    /// Paths are rendered event paths ([`falco_learn_event::path`]): the kernel hashes
    /// its own forms of them ([`falco_learn_event::path::kernel_forms`]: a path linked or
    /// unlinked, a memfd's name as a detached parentless `/memfd:…`). A truncated path stands for no
    /// single file and is never allowed (the kernel kills every exec whose path it could
    /// not report whole). A path is allowed from a tmpfs, a memfd or an overlay's upper
    /// layer only when its [`AllowedExec`] says so: the image's `/usr/sbin/nginx` does not
    /// allow a file the container wrote over it, renamed onto its path or bind-mounted
    /// there.
    pub fn set_profile<'a, E: Into<AllowedExec<'a>>>(
        &self,
        profile: u32,
        execs: impl IntoIterator<Item = E>,
    ) -> Result<usize, ProbeError> {
        let (want, executables) = allowed_hashes(self.key, execs);
        let mut allowed = lock(&self.allowed);
        let mut allow = lock(&self.allow);
        // `have` stays what the kernel map holds, also when an insert fails part way (a
        // full map): a kill from userspace decides by it (`would_kill`)
        let have = allowed.entry(profile).or_default();
        let gone: Vec<u64> = have.difference(&want).copied().collect();
        for h in gone {
            let key = [u64::from(profile), h];
            // already gone is fine: the goal is absence; a hash the map still holds stays
            // in `have`
            if allow.remove(&key).is_ok() || allow.get(&key, 0).is_err() {
                have.remove(&h);
            }
        }
        for h in want {
            if have.contains(&h) {
                continue;
            }
            allow
                .insert([u64::from(profile), h], 1, 0)
                .map_err(map_err("KILL_ALLOW"))?;
            have.insert(h);
        }
        Ok(executables)
    }

    /// Whether the exec program would kill an exec reported as `exepath` with `flags` in a
    /// cgroup under `profile`: what enforce-kill decides from userspace for an exec the
    /// kernel did not judge (its cgroup was not under the profile yet), so that a late kill
    /// judges exactly what the kernel does (the file's place: a tmpfs, a memfd, the upper
    /// layer, which the profile matcher leaves to the default rules). The runtime's own
    /// child is spared. `None` when `profile` has no allow-list here.
    pub fn would_kill(
        &self,
        profile: u32,
        exepath: &str,
        flags: &falco_learn_event::ExeFlags,
    ) -> Option<bool> {
        let allowed = lock(&self.allowed);
        let set = allowed.get(&profile)?;
        if flags.runtime {
            return Some(false);
        }
        Some(exec_hash(self.key, exepath, flags).is_none_or(|h| !set.contains(&h)))
    }

    /// Kills the kernel made whose exec record found the ring buffer full, so that no event
    /// says so: (cgroup v2 id, running total since the probe started), for the cgroups that
    /// had any; cgroup 0 holds those counted once the kernel's map (4 096 cgroups) was full.
    /// The caller reports the increase.
    pub fn unreported_kills(&self) -> Vec<(u64, u64)> {
        let map = lock(&self.unreported);
        map.iter()
            .filter_map(Result::ok)
            .filter(|(_, n)| *n > 0)
            .collect()
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
    /// Whether `cgroup` is one never put under a profile (the root cgroup, init's, this
    /// process's): the kernel leaves it alone, and so must a kill from userspace.
    pub fn never_enforced(&self, cgroup: u64) -> bool {
        self.cgroups.refuses(cgroup)
    }

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
    fn path_hash_depends_on_every_byte_the_flags_and_the_key() {
        use std::hash::Hasher as _;
        let linked = |b: &[u8]| KernelForm {
            bytes: b.to_vec(),
            detached: false,
            pseudo: false,
        };
        let key = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];
        // SipHash-1-3 of the bytes and then the two flags bytes: the reference computation
        let sip = |bytes: &[u8], flags: u16| {
            let mut h = siphasher::sip::SipHasher13::new_with_keys(key[0], key[1]);
            let mut m = bytes.to_vec();
            m.extend_from_slice(&flags.to_le_bytes());
            h.write(&m);
            h.finish()
        };
        assert_eq!(path_hash(key, &linked(b"/bin/sh"), 0), sip(b"/bin/sh", 0));
        // where the file lives: events.h FL_EXE_TMPFS (1), FL_EXE_MEMFD (2), FL_EXE_UPPER (4),
        // FL_EXE_OTHER_FS (bit 1 of the second byte); the root it ran from: FL_EXE_OTHER_ROOT
        // (8), FL_EXE_HOST_ROOT (16); the other exe flags are not hashed
        for (layer, byte) in [
            (EXE_TMPFS, 1),
            (EXE_MEMFD, 2),
            (EXE_UPPER, 4),
            (EXE_OTHER_ROOT, 8),
            (EXE_HOST_ROOT, 16),
            (EXE_OTHER_FS, 0x100),
            (EXE_OTHER_FS | EXE_UPPER | EXE_HOST_ROOT, 0x114),
            (0x3f8, 0),
        ] {
            assert_eq!(
                path_hash(key, &linked(b"/bin/sh"), layer),
                sip(b"/bin/sh", byte),
                "{layer:#x}"
            );
        }
        // the flags: events.h FL_PATH_DETACHED (32), FL_PATH_PSEUDO (128)
        let unlinked = KernelForm {
            detached: true,
            ..linked(b"/bin/sh")
        };
        assert_eq!(path_hash(key, &unlinked, 0), sip(b"/bin/sh", 32));
        assert_eq!(path_hash(key, &unlinked, EXE_UPPER), sip(b"/bin/sh", 36));
        let memfd = KernelForm {
            pseudo: true,
            ..unlinked.clone()
        };
        assert_eq!(path_hash(key, &memfd, 0), sip(b"/bin/sh", 160));
        let sh = path_hash(key, &linked(b"/bin/sh"), 0);
        assert_ne!(sh, path_hash(key, &linked(b"/bin/bash"), 0));
        assert_ne!(sh, path_hash([key[0] + 1, key[1]], &linked(b"/bin/sh"), 0));
        assert_ne!(sh, path_hash([key[0], key[1] + 1], &linked(b"/bin/sh"), 0));
        // zero padding is not the same as a shorter path
        assert_ne!(
            path_hash(key, &linked(b"/a"), 0),
            path_hash(key, &linked(b"/a\0"), 0)
        );
        // the last of 4095 bytes counts
        let mut long = vec![b'x'; 4095];
        let h1 = path_hash(key, &linked(&long), 0);
        long[4094] = b'y';
        assert_ne!(h1, path_hash(key, &linked(&long), 0));
        // an unlinked file is not a linked one whose name says so (a hash that appended
        // " (deleted)" to the bytes made these two equal)
        for path in [&b"/bin/sh"[..], &long] {
            let mut named = path.to_vec();
            named.extend_from_slice(b" (deleted)");
            let gone = KernelForm {
                detached: true,
                ..linked(path)
            };
            assert_ne!(path_hash(key, &gone, 0), path_hash(key, &linked(&named), 0));
            assert_ne!(path_hash(key, &gone, 0), path_hash(key, &linked(path), 0));
        }
        assert_ne!(random_key(), random_key());
        assert!(random_key().is_some());
    }

    /// The layers an allowed executable is hashed with: the image's (0) always, the others
    /// as learned; a `memfd:` name is a memfd's.
    #[test]
    fn an_allowed_executable_is_hashed_where_it_was_learned() {
        let l = |e: AllowedExec| e.layers().collect::<Vec<u32>>();
        assert_eq!(l(AllowedExec::from("/bin/sh")), vec![0]);
        let upper = AllowedExec {
            upper_layer: true,
            ..AllowedExec::from("/tmp/x")
        };
        assert_eq!(l(upper), vec![0, EXE_UPPER]);
        let tmpfs = AllowedExec {
            tmpfs: true,
            ..AllowedExec::from("/dev/shm/x")
        };
        assert_eq!(l(tmpfs), vec![0, EXE_TMPFS]);
        assert_eq!(l(AllowedExec::from("memfd:x")), vec![0, EXE_MEMFD]);
        let volume = AllowedExec {
            other_fs: true,
            ..AllowedExec::from("/data/x")
        };
        assert_eq!(l(volume), vec![0, EXE_OTHER_FS]);
        let overlay_volume = AllowedExec {
            upper_layer: true,
            ..volume
        };
        assert_eq!(
            l(overlay_volume),
            vec![0, EXE_UPPER, EXE_OTHER_FS, EXE_OTHER_FS | EXE_UPPER]
        );
        // learned from another root too: each place, from the home and from another root
        let other = AllowedExec {
            upper_layer: true,
            other_root: true,
            ..AllowedExec::from("/usr/bin/x")
        };
        assert_eq!(
            l(other),
            vec![0, EXE_OTHER_ROOT, EXE_UPPER, EXE_UPPER | EXE_OTHER_ROOT]
        );
        // the host's root is a root apart: learned from it, not from a neighbour's
        let host = AllowedExec {
            host_root: true,
            ..AllowedExec::from("/usr/bin/x")
        };
        assert_eq!(l(host), vec![0, EXE_HOST_ROOT]);
        let both = AllowedExec {
            other_root: true,
            ..host
        };
        assert_eq!(l(both), vec![0, EXE_OTHER_ROOT, EXE_HOST_ROOT]);
        // the hash's flags bytes: each root and place is a bit of its own
        let key = [7, 9];
        let form = KernelForm {
            bytes: b"/usr/bin/x".to_vec(),
            detached: false,
            pseudo: false,
        };
        let layers = [
            0,
            EXE_OTHER_ROOT,
            EXE_HOST_ROOT,
            EXE_UPPER,
            EXE_UPPER | EXE_OTHER_ROOT,
            EXE_UPPER | EXE_HOST_ROOT,
            EXE_OTHER_FS,
            EXE_OTHER_FS | EXE_HOST_ROOT,
        ];
        let hashes: AHashSet<u64> = layers
            .into_iter()
            .map(|layer| path_hash(key, &form, layer))
            .collect();
        assert_eq!(hashes.len(), layers.len());
        // /dev is a tmpfs (devtmpfs) here as on every system with it
        if fs_magic(std::path::Path::new("/dev")) == Some(TMPFS_MAGIC) {
            assert!(AllowedExec::host_file("/dev/null").tmpfs);
        }
        assert!(!AllowedExec::host_file("/proc/self/exe").tmpfs);
        // another filesystem than the root's, by superblock
        let root = superblock(std::path::Path::new("/"));
        assert!(root.is_some());
        assert_ne!(superblock(std::path::Path::new("/proc")), root);
        assert!(AllowedExec::host_file("/proc/version").other_fs);
        assert!(!AllowedExec::host_file("/").other_fs);
    }

    /// The kernel's decision as userspace makes it for an exec the kernel did not judge
    /// ([`KillPolicy::would_kill`]): an allowed path from the image's lower layer runs, and
    /// from every other place (a tmpfs, a memfd, the upper layer, another filesystem,
    /// another root, the host's), relocated, truncated or unspellable it is killed unless
    /// the entry was learned there; its unlinked form counts as the linked one.
    #[test]
    fn an_exec_the_kernel_did_not_judge_is_decided_as_the_kernel_would() {
        use falco_learn_event::ExeFlags;
        let key = [3, 5];
        let (set, n) = allowed_hashes(
            key,
            [
                AllowedExec::from("/opt/tool"),
                AllowedExec {
                    upper_layer: true,
                    ..AllowedExec::from("/tmp/echo")
                },
                AllowedExec::from("memfd:x"),
            ],
        );
        assert_eq!(n, 3);
        let runs =
            |path: &str, f: ExeFlags| exec_hash(key, path, &f).is_some_and(|h| set.contains(&h));
        let image = ExeFlags::default();
        assert!(runs("/opt/tool", image));
        assert!(!runs("/opt/other", image));
        for f in [
            ExeFlags {
                upper_layer: true,
                ..image
            },
            ExeFlags {
                tmpfs: true,
                ..image
            },
            ExeFlags {
                memfd: true,
                ..image
            },
            ExeFlags {
                other_fs: Some(true),
                ..image
            },
            ExeFlags {
                other_root: true,
                ..image
            },
            ExeFlags {
                host_root: true,
                ..image
            },
            ExeFlags {
                relocated: true,
                ..image
            },
        ] {
            assert!(!runs("/opt/tool", f), "{f:?}");
        }
        // learned on the upper layer: there and from the lower layer
        assert!(runs(
            "/tmp/echo",
            ExeFlags {
                upper_layer: true,
                ..image
            }
        ));
        assert!(runs("/tmp/echo", image));
        assert!(!runs(
            "/tmp/echo",
            ExeFlags {
                tmpfs: true,
                ..image
            }
        ));
        // a memfd's name is a memfd
        assert!(runs(
            "memfd:x",
            ExeFlags {
                memfd: true,
                ..image
            }
        ));
        // never allowed: a truncated path, a malformed escape
        assert!(!runs("<truncated>/opt/tool", image));
        assert!(!runs("/opt/\\q", image));
        assert_eq!(exec_hash(key, "/opt/\\q", &image), None);
        // the rendered path's first kernel form is the linked one; the unlinked one is
        // allowed with it
        let unlinked = KernelForm {
            bytes: b"/opt/tool".to_vec(),
            detached: true,
            pseudo: false,
        };
        assert!(set.contains(&path_hash(key, &unlinked, 0)));
    }

    /// A late kill takes what the program forked since its exec with it (it would not
    /// exist had the kernel killed the exec), and leaves the process's children from
    /// before the exec; a process that is gone, or whose pid names another start, is not
    /// signalled.
    #[test]
    fn a_late_kill_kills_what_the_exec_started_and_nothing_before() {
        use std::io::{BufRead, Write};
        let mut sh = std::process::Command::new("sh")
            .arg("-c")
            .arg(
                "sleep 60 & echo $!; read x; \
                 exec sh -c 'sleep 61 & echo $!; sleep 62 & echo $!; wait'",
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let mut out = std::io::BufReader::new(sh.stdout.take().expect("stdout"));
        let mut line = String::new();
        let mut pid_line = |out: &mut std::io::BufReader<_>| -> u32 {
            line.clear();
            out.read_line(&mut line).expect("read");
            line.trim().parse().expect("a pid")
        };
        let before = pid_line(&mut out);
        let pid = sh.id();
        let start = crate::procfs::Stat::read(pid)
            .map(|s| crate::procfs::ticks_to_epoch_ns(s.starttime))
            .expect("the shell's start");
        // the exec comes two clock ticks after the first child started at the latest
        std::thread::sleep(std::time::Duration::from_millis(30));
        let exec_ts = crate::procfs::now_epoch_ns();
        writeln!(sh.stdin.as_mut().expect("stdin"), "go").expect("write");
        let after = [pid_line(&mut out), pid_line(&mut out)];
        // another start at the pid: nothing signalled
        assert_eq!(
            kill_process(pid, start + 1_000_000_000, exec_ts).expect("kill"),
            LateKill::Gone
        );
        assert_eq!(
            kill_process(pid, start, exec_ts).expect("kill"),
            LateKill::Killed { descendants: 2 }
        );
        let st = sh.wait().expect("wait");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&st),
            Some(libc::SIGKILL)
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        // dead: gone, or a zombie its new parent has not reaped
        let live = |p: u32| crate::procfs::Stat::read(p).is_some_and(|s| s.state != 'Z');
        while after.iter().any(|p| live(*p)) {
            assert!(std::time::Instant::now() < deadline, "{after:?} live on");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let survived =
            live(before) && crate::procfs::Stat::read(before).is_some_and(|s| s.comm == "sleep");
        // SAFETY: kill(2) of the child we started (reparented to init, or our subreaper).
        unsafe { libc::kill(before as i32, libc::SIGKILL) };
        assert!(survived, "the child from before the exec was killed");
        assert_eq!(
            kill_process(pid, start, exec_ts).expect("kill"),
            LateKill::Gone
        );
    }

    /// The multiply-xor hash used before had a collision for every seed: flipping the top
    /// bit of bytes 8k+7, 8k+11 and 8k+15 cancels out. Not with SipHash, for many keys.
    #[test]
    fn flipping_top_bits_collides_no_more() {
        let allowed = b"/usr/bin/basename".to_vec();
        let mut flipped = allowed.clone();
        for i in [7, 11, 15] {
            flipped[i] ^= 0x80;
        }
        let form = |b: &[u8]| KernelForm {
            bytes: b.to_vec(),
            detached: false,
            pseudo: false,
        };
        for _ in 0..1000 {
            let key = random_key().expect("getrandom");
            assert_ne!(
                path_hash(key, &form(&allowed), 0),
                path_hash(key, &form(&flipped), 0)
            );
        }
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
