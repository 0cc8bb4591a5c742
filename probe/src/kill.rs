//! enforce-kill: execs outside a container image's profile are killed in the
//! kernel, before the new program runs any of its own code.
//!
//! The exec program (`tp_btf/sched_process_exec`, after the kernel resolved the
//! exe path) looks up the mount namespace of the exec'ing task in `KILL_NS`.
//! Every process of a container shares one mount namespace (`ctr task exec`,
//! `kubectl exec` and `docker exec` join it), so the namespace names the
//! container; its value is a profile number. The program hashes the exe path
//! ([`path_hash`]: FNV-1a 64 of at most [`KILL_HASH_MAX`] bytes) and looks up
//! `(profile, hash)` in `KILL_ALLOW`; when it is missing the program calls
//! `bpf_send_signal(SIGKILL)` — the signal is delivered before the task returns
//! to user space — and marks the event ([`falco_learn_event::ExeFlags::killed`]).
//!
//! Userspace ([`KillPolicy`]) fills both maps: each profile's executables, and
//! each container's namespace once its image is known. A container's first
//! processes run before its metadata resolves (a few ms); they are not under
//! enforcement yet. The host's own mount namespace is never put under it.

use crate::ProbeError;
use ahash::{AHashMap, AHashSet};
use aya::maps::{HashMap, MapData};
use aya::Ebpf;
use falco_learn_probe_common::KILL_HASH_MAX;
use std::sync::{Mutex, MutexGuard};

/// The hash the kernel computes of an exe path: FNV-1a 64 over its first
/// [`KILL_HASH_MAX`] bytes.
pub fn path_hash(path: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in &path[..path.len().min(KILL_HASH_MAX)] {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The mount namespace inode number of process `pid` (`/proc/<pid>/ns/mnt`).
pub fn mnt_ns_of(pid: u32) -> std::io::Result<u32> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/mnt"))?;
    let s = link.to_string_lossy();
    s.strip_prefix("mnt:[")
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("/proc/{pid}/ns/mnt is {s:?}, not mnt:[N]"),
            )
        })
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
    /// mount namespace inode → profile number.
    ns: Mutex<HashMap<MapData, u32, u32>>,
    /// `[profile, hash]` (the C key `{u32 profile; u32 pad; u64 hash}` read as
    /// two little-endian u64) → 1.
    allow: Mutex<HashMap<MapData, [u64; 2], u8>>,
    /// What `allow` holds, by profile.
    allowed: Mutex<AHashMap<u32, AHashSet<u64>>>,
    /// Namespaces that must never be enforced: this process's and init's.
    host_ns: AHashSet<u32>,
}

impl KillPolicy {
    pub(crate) fn new(ebpf: &mut Ebpf) -> Result<KillPolicy, ProbeError> {
        let take = |ebpf: &mut Ebpf, name: &'static str| {
            ebpf.take_map(name).ok_or(ProbeError::Map {
                map: name,
                err: "missing".into(),
            })
        };
        let ns = HashMap::try_from(take(ebpf, "KILL_NS")?).map_err(map_err("KILL_NS"))?;
        let allow = HashMap::try_from(take(ebpf, "KILL_ALLOW")?).map_err(map_err("KILL_ALLOW"))?;
        let host_ns = [std::process::id(), 1]
            .into_iter()
            .filter_map(|p| mnt_ns_of(p).ok())
            .collect();
        Ok(KillPolicy {
            ns: Mutex::new(ns),
            allow: Mutex::new(allow),
            allowed: Mutex::new(AHashMap::new()),
            host_ns,
        })
    }

    /// Make `paths` the executables profile `profile` allows (replacing what it
    /// allowed before). Returns how many distinct hashes it now holds.
    pub fn set_profile<'a>(
        &self,
        profile: u32,
        paths: impl IntoIterator<Item = &'a str>,
    ) -> Result<usize, ProbeError> {
        let want: AHashSet<u64> = paths
            .into_iter()
            .map(|p| path_hash(p.as_bytes()))
            .collect();
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
        Ok(have.len())
    }

    /// Forget profile `profile`: its allowed set, and every namespace under it
    /// (those containers are no longer enforced).
    pub fn drop_profile(&self, profile: u32) {
        if let Some(hashes) = lock(&self.allowed).remove(&profile) {
            let mut allow = lock(&self.allow);
            for h in hashes {
                let _ = allow.remove(&[u64::from(profile), h]);
            }
        }
        let mut ns = lock(&self.ns);
        let under: Vec<u32> = ns
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, p)| *p == profile)
            .map(|(n, _)| n)
            .collect();
        for n in under {
            let _ = ns.remove(&n);
        }
    }

    /// Put the container whose mount namespace is `mnt_ns` under `profile`.
    pub fn enforce(&self, mnt_ns: u32, profile: u32) -> Result<(), ProbeError> {
        if self.host_ns.contains(&mnt_ns) {
            return Err(ProbeError::Map {
                map: "KILL_NS",
                err: format!("mount namespace {mnt_ns} is the host's: never enforced"),
            });
        }
        if !lock(&self.allowed).contains_key(&profile) {
            return Err(ProbeError::Map {
                map: "KILL_NS",
                err: format!("profile {profile} has no allowed set (set_profile first)"),
            });
        }
        lock(&self.ns)
            .insert(mnt_ns, profile, 0)
            .map_err(map_err("KILL_NS"))
    }

    /// Stop enforcing mount namespace `mnt_ns` (its container is gone).
    pub fn release(&self, mnt_ns: u32) {
        let _ = lock(&self.ns).remove(&mnt_ns);
    }

    /// Namespaces under enforcement now, with their profile numbers.
    pub fn enforced(&self) -> Vec<(u32, u32)> {
        let mut v: Vec<(u32, u32)> = lock(&self.ns).iter().filter_map(Result::ok).collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_known_values_and_the_length_bound() {
        // FNV-1a 64 reference values
        assert_eq!(path_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(path_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(path_hash(b"foobar"), 0x8594_4171_f739_67e8);
        let long = vec![b'x'; KILL_HASH_MAX + 10];
        assert_eq!(path_hash(&long), path_hash(&long[..KILL_HASH_MAX]));
        assert_ne!(path_hash(b"/bin/sh"), path_hash(b"/bin/bash"));
    }

    #[test]
    fn own_mount_namespace_reads() {
        let n = mnt_ns_of(std::process::id()).expect("own mnt ns");
        assert!(n > 0);
        assert!(mnt_ns_of(u32::MAX).is_err());
    }
}
