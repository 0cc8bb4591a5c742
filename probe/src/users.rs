//! uid/gid → name, from the host's or the container's /etc/passwd and /etc/group.

use ahash::AHashMap;

/// id → name.
type Names = AHashMap<u32, String>;

/// Cached passwd/group tables, per root (host, or a container process's /proc/<pid>/root).
#[derive(Default)]
pub struct Users {
    host_users: Option<AHashMap<u32, String>>,
    host_groups: Option<AHashMap<u32, String>>,
    /// container id → (users, groups), read once through one of its processes.
    containers: AHashMap<String, (Names, Names)>,
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
    fn container(&mut self, id: &str, pid: u32) -> &(Names, Names) {
        if !self.containers.contains_key(id) {
            let read = |f: &str| {
                parse(
                    &std::fs::read_to_string(format!("/proc/{pid}/root/etc/{f}"))
                        .unwrap_or_default(),
                )
            };
            let tables = (read("passwd"), read("group"));
            // a container whose files could not be read (yet) is retried next time
            if tables.0.is_empty() {
                return self.containers.entry(String::new()).or_default();
            }
            self.containers.insert(id.to_string(), tables);
        }
        self.containers.entry(id.to_string()).or_default()
    }

    /// Name of `uid`; container processes (`container` = (id, pid)) look in their
    /// container's /etc/passwd first. Unknown ids give `<NA>` like Falco.
    pub fn user_name(&mut self, container: Option<(&str, u32)>, uid: u32) -> String {
        if let Some((id, pid)) = container {
            if let Some(n) = self.container(id, pid).0.get(&uid) {
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
            if let Some(n) = self.container(id, pid).1.get(&gid) {
                return n.clone();
            }
        }
        let t = self.host_groups.get_or_insert_with(|| {
            parse(&std::fs::read_to_string("/etc/group").unwrap_or_default())
        });
        t.get(&gid).cloned().unwrap_or_else(|| "<NA>".into())
    }

    /// Forget a container's tables (it stopped).
    pub fn forget(&mut self, id: &str) {
        self.containers.remove(id);
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd() {
        let t = parse("root:x:0:0:root:/root:/bin/bash\n# c\nnginx:x:101:101::/:/bin/false\nbad\n");
        assert_eq!(t.get(&0).map(String::as_str), Some("root"));
        assert_eq!(t.get(&101).map(String::as_str), Some("nginx"));
        assert_eq!(t.len(), 2);
    }
}
