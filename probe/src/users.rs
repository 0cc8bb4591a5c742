//! uid/gid → name, from the host's or the container's /etc/passwd and /etc/group.

use ahash::AHashMap;
use std::time::{Duration, Instant};

/// How long a container whose /etc/passwd could not be read waits before the
/// next attempt (its root may not be ready yet): no file reads per event.
const RETRY: Duration = Duration::from_secs(5);

/// id → name.
type Names = AHashMap<u32, String>;

/// Cached passwd/group tables, per root (host, or a container process's /proc/<pid>/root).
pub struct Users {
    host_users: Option<AHashMap<u32, String>>,
    host_groups: Option<AHashMap<u32, String>>,
    /// container id → (users, groups, when read, the process read through);
    /// empty tables are read again after `retry`.
    containers: AHashMap<String, (Names, Names, Instant, u32)>,
    /// Bumped when a container's tables are read again and now name someone:
    /// names cached from the tables before (the enricher's processes) are stale.
    epoch: u64,
    /// [`RETRY`] (tests shorten it).
    pub(crate) retry: Duration,
}

impl Default for Users {
    fn default() -> Self {
        Users {
            host_users: None,
            host_groups: None,
            containers: AHashMap::new(),
            epoch: 0,
            retry: RETRY,
        }
    }
}

fn read_tables(pid: u32) -> (Names, Names) {
    let read = |f: &str| {
        parse(&std::fs::read_to_string(format!("/proc/{pid}/root/etc/{f}")).unwrap_or_default())
    };
    (read("passwd"), read("group"))
}

fn parse(text: &str) -> AHashMap<u32, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut it = l.split(':');
            let name = it.next()?;
            let id = it.nth(1)?.parse().ok()?;
            Some((id, name.to_string()))
        })
        .collect()
}

impl Users {
    fn container(&mut self, id: &str, pid: u32) -> Option<(&Names, &Names)> {
        // the lookup of a known container allocates nothing and reads no file
        let retry = self.retry;
        let (fresh, known) = match self.containers.get(id) {
            Some((users, _, at, _)) => (!users.is_empty() || at.elapsed() < retry, true),
            None => (false, false),
        };
        if !fresh {
            let (u, g) = read_tables(pid);
            if known && !u.is_empty() {
                self.epoch += 1;
            }
            self.containers
                .insert(id.to_string(), (u, g, Instant::now(), pid));
        }
        self.containers.get(id).map(|(u, g, _, _)| (u, g))
    }

    /// Changes when names already handed out may be stale (a container's tables
    /// were read again and now name someone): part of what a cached process is
    /// valid for.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Read again the tables of containers whose /etc/passwd could not be read,
    /// `retry` after the last attempt (through the process read through then).
    /// Cached processes never ask [`Users::user_name`] again, so without this a
    /// container whose root was not ready at its first event would keep host names
    /// (or `<NA>`) until the next exec or removal anywhere.
    pub fn retry_unread(&mut self) {
        let retry = self.retry;
        for (u, g, at, pid) in self.containers.values_mut() {
            if u.is_empty() && at.elapsed() >= retry {
                let (nu, ng) = read_tables(*pid);
                *at = Instant::now();
                if !nu.is_empty() {
                    *u = nu;
                    *g = ng;
                    self.epoch += 1;
                }
            }
        }
    }

    /// Name of `uid`; container processes (`container` = (id, pid)) look in their
    /// container's /etc/passwd first. Unknown ids give `<NA>` like Falco.
    pub fn user_name(&mut self, container: Option<(&str, u32)>, uid: u32) -> String {
        if let Some((id, pid)) = container {
            if let Some(n) = self.container(id, pid).and_then(|(u, _)| u.get(&uid)) {
                return n.clone();
            }
        }
        let t = self.host_users.get_or_insert_with(|| {
            parse(&std::fs::read_to_string("/etc/passwd").unwrap_or_default())
        });
        t.get(&uid).cloned().unwrap_or_else(|| "<NA>".into())
    }

    pub fn group_name(&mut self, container: Option<(&str, u32)>, gid: u32) -> String {
        if let Some((id, pid)) = container {
            if let Some(n) = self.container(id, pid).and_then(|(_, g)| g.get(&gid)) {
                return n.clone();
            }
        }
        let t = self.host_groups.get_or_insert_with(|| {
            parse(&std::fs::read_to_string("/etc/group").unwrap_or_default())
        });
        t.get(&gid).cloned().unwrap_or_else(|| "<NA>".into())
    }

    /// Keep only the tables of containers for which `live` holds (the others stopped).
    pub fn retain(&mut self, live: impl Fn(&str) -> bool) {
        self.containers.retain(|id, _| live(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_tables_are_read_once_and_failures_not_per_event() {
        let mut u = Users::default();
        // our own process's root is the host's: its passwd has root
        let me = std::process::id();
        assert_eq!(u.user_name(Some(("c1", me)), 0), "root");
        // an unreadable root: the host table answers, the failure is cached
        let gone = u32::MAX - 1;
        assert_eq!(u.user_name(Some(("c2", gone)), 0), "root");
        let first = u.containers.get("c2").map(|t| t.2);
        assert_eq!(u.group_name(Some(("c2", gone)), 0), "root");
        assert_eq!(
            u.containers.get("c2").map(|t| t.2),
            first,
            "not read again before RETRY"
        );
        u.retain(|id| id == "c1");
        assert!(u.containers.contains_key("c1") && !u.containers.contains_key("c2"));
    }

    #[test]
    fn parses_passwd() {
        let t = parse("root:x:0:0:root:/root:/bin/bash\n# c\nnginx:x:101:101::/:/bin/false\nbad\n");
        assert_eq!(t.get(&0).map(String::as_str), Some("root"));
        assert_eq!(t.get(&101).map(String::as_str), Some("nginx"));
        assert_eq!(t.len(), 2);
    }
}
