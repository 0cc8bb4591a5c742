//! A kernel map of containers to profile numbers, keyed by cgroup v2 id: enforce-kill's
//! `KILL_CGROUPS` and the kernel filter's `FILTER_CGROUPS` ([`crate::kill`],
//! [`crate::filter`]). The root cgroup, and the cgroups a caller names as the host's, are
//! never put in one: they are not containers.

use crate::ProbeError;
use aya::maps::{HashMap, MapData};
use aya::Ebpf;
use std::sync::{Mutex, MutexGuard};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One cgroup → profile map.
pub(crate) struct CgroupMap {
    map: Mutex<HashMap<MapData, u64, u32>>,
    name: &'static str,
    /// What being in the map means, for errors: "enforced", "filtered".
    verb: &'static str,
    /// Cgroups never put in the map (besides the root): this process's, init's.
    never: Vec<u64>,
    /// containerd namespaces of the `/<namespace>/<id>` form, for [`CgroupMap::owner`].
    namespaces: Vec<String>,
}

impl CgroupMap {
    /// Whether the cgroup an event claims is its container's own
    /// ([`crate::kill::container_cgroup`]).
    pub(crate) fn owner(&self, claim: crate::kill::CgroupClaim<'_>) -> crate::kill::CgroupOwner {
        crate::kill::container_cgroup(claim, &self.namespaces)
    }

    pub(crate) fn new(
        ebpf: &mut Ebpf,
        name: &'static str,
        verb: &'static str,
        never: Vec<u64>,
        namespaces: Vec<String>,
    ) -> Result<CgroupMap, ProbeError> {
        let map = ebpf.take_map(name).ok_or(ProbeError::Map {
            map: name,
            err: "missing from the object".into(),
        })?;
        let map = HashMap::try_from(map).map_err(|e| ProbeError::Map {
            map: name,
            err: e.to_string(),
        })?;
        Ok(CgroupMap {
            map: Mutex::new(map),
            name,
            verb,
            never,
            namespaces,
        })
    }

    /// Whether `cgroup` is never put in the map: unknown (0), the root (1), init's or this
    /// process's.
    pub(crate) fn refuses(&self, cgroup: u64) -> bool {
        cgroup <= 1 || self.never.contains(&cgroup)
    }

    /// Put `cgroup` under `profile`; `known`: whether the profile's allow-list is loaded.
    pub(crate) fn bind(&self, cgroup: u64, profile: u32, known: bool) -> Result<(), ProbeError> {
        let refuse = |why: &str| ProbeError::Map {
            map: self.name,
            err: format!("cgroup {cgroup} {why}: never {}", self.verb),
        };
        // 0: no cgroup v2 reported; 1: the root cgroup
        if cgroup <= 1 {
            return Err(refuse("is the root cgroup or unknown"));
        }
        if self.never.contains(&cgroup) {
            return Err(refuse("is init's or falco-learn's own"));
        }
        if !known {
            return Err(ProbeError::Map {
                map: self.name,
                err: format!("profile {profile} has no allow-list loaded (set_profile first)"),
            });
        }
        lock(&self.map)
            .insert(cgroup, profile, 0)
            .map_err(|e| ProbeError::Map {
                map: self.name,
                err: e.to_string(),
            })
    }

    /// Take `cgroup` out (already gone is fine: the goal is absence).
    pub(crate) fn release(&self, cgroup: u64) {
        let _ = lock(&self.map).remove(&cgroup);
    }

    /// Take out every cgroup under `profile`.
    pub(crate) fn release_profile(&self, profile: u32) {
        let mut map = lock(&self.map);
        let under: Vec<u64> = map
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, p)| *p == profile)
            .map(|(c, _)| c)
            .collect();
        for c in under {
            let _ = map.remove(&c);
        }
    }

    /// The cgroups in the map with their profile numbers, sorted.
    pub(crate) fn bound(&self) -> Vec<(u64, u32)> {
        let mut v: Vec<(u64, u32)> = lock(&self.map).iter().filter_map(Result::ok).collect();
        v.sort_unstable();
        v
    }
}
