//! What of a profile the kernel can check itself (`engine.kernel_filter`).
//!
//! In the enforce modes the probe drops, in the kernel, a write-open by a container whose
//! profile allows it when no loaded rule can match it (see the probe's `filter` module).
//! The kernel compares raw path bytes: a file as the whole path, a directory as the path
//! itself or anything below it. [`kernel_writes`] gives the part of a profile's write
//! dimension that it can compare exactly; everything else (globs, entries Falco rules can
//! only approximate, paths that do not fit the kernel's key) stays with the userspace
//! matcher, which sees those events as before.
//!
//! Outbound traffic likewise: [`kernel_outbound`] gives the TCP and UDP (protocol, remote
//! port, peer network) entries; the kernel drops a client's connect or send that one of
//! them allows when no loaded rule needs its (protocol, port).
//!
//! The rule: every path or connection the kernel entries allow is one [`Profile::check`]
//! finds no anomaly in (a subset, never more). `tests` proves it on the learned shapes.

use crate::matcher::BENIGN_WRITE_SINKS;
use crate::model::{Profile, Proto};
use ipnet::IpNet;
use std::net::IpAddr;

/// The write entries of one profile the kernel compares: raw path bytes (what the kernel
/// reports; rendered names go through `falco_learn_event::path::raw_bytes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelWrites {
    /// Exact files.
    pub files: Vec<Vec<u8>>,
    /// Directories in normal form (`/a/b`, `/` for the root): each covers itself and
    /// everything below it.
    pub dirs: Vec<Vec<u8>>,
}

/// A key the kernel can compare exactly: no escape (an entry holding `\` is matched through
/// approximating globs in userspace), no glob character, not a truncated path.
fn literal(key: &str) -> Option<Vec<u8>> {
    if key.contains(['\\', '*', '?', '[']) || falco_learn_event::path::is_truncated(key) {
        return None;
    }
    falco_learn_event::path::raw_bytes(key)
}

/// The components of a directory key, joined in normal form (`//a/b/` → `/a/b`), as the
/// kernel's resolved paths are.
fn normal_dir(key: &str) -> Option<Vec<u8>> {
    let raw = literal(key)?;
    if !raw.starts_with(b"/") {
        return None;
    }
    let mut out = Vec::with_capacity(raw.len());
    for c in raw.split(|b| *b == b'/').filter(|c| !c.is_empty()) {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Some(out)
}

/// The part of `profile`'s write dimension the kernel can compare exactly, plus the benign
/// sinks (writes that are never an anomaly).
pub fn kernel_writes(profile: &Profile) -> KernelWrites {
    let mut files: Vec<Vec<u8>> = profile
        .write_files
        .keys()
        .filter(|k| k.starts_with('/'))
        .filter_map(|k| literal(k))
        .chain(BENIGN_WRITE_SINKS.iter().map(|s| s.as_bytes().to_vec()))
        .collect();
    files.sort();
    files.dedup();
    let mut dirs: Vec<Vec<u8>> = profile
        .write_dirs
        .keys()
        .filter_map(|k| normal_dir(k))
        .collect();
    dirs.sort();
    dirs.dedup();
    KernelWrites { files, dirs }
}

/// One outbound entry of a profile the kernel compares: protocol (TCP or UDP), remote port
/// and a peer network (as learned, in its network form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelOutbound {
    pub proto: Proto,
    pub port: u16,
    pub peer: IpNet,
}

/// The part of `profile`'s outbound dimension the kernel can compare exactly: every TCP
/// and UDP (protocol, port, peer network) entry. Other protocols stay with userspace.
pub fn kernel_outbound(profile: &Profile) -> Vec<KernelOutbound> {
    let mut v: Vec<KernelOutbound> = profile
        .outbound
        .iter()
        .filter(|((proto, _), _)| matches!(proto, Proto::Tcp | Proto::Udp))
        .flat_map(|((proto, port), e)| {
            e.peers.iter().map(|n| KernelOutbound {
                proto: *proto,
                port: *port,
                peer: n.trunc(),
            })
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The TCP and UDP ports `profile` serves (its inbound dimension), for the kernel; none when
/// the profile was learned without that dimension (it allows every port, which the kernel
/// does not hold: those events stay with userspace).
pub fn kernel_inbound(profile: &Profile) -> Vec<(Proto, u16)> {
    profile
        .inbound
        .as_ref()
        .map(|ports| {
            ports
                .keys()
                .filter(|(proto, _)| matches!(proto, Proto::Tcp | Proto::Udp))
                .copied()
                .collect()
        })
        .unwrap_or_default()
}

impl KernelOutbound {
    /// Whether this entry allows an outbound event of `proto` to `peer`:`port`: the
    /// kernel's comparison, for tests and tools.
    pub fn allows(&self, proto: Proto, port: u16, peer: &IpAddr) -> bool {
        self.proto == proto && self.port == port && self.peer.contains(peer)
    }
}

impl KernelWrites {
    /// Whether the kernel's entries allow a write to `path` (the raw bytes of a resolved,
    /// canonical path): the kernel's comparison, for tests and tools.
    pub fn allows(&self, path: &[u8]) -> bool {
        self.files.iter().any(|f| f == path)
            || self.dirs.iter().any(|d| {
                d == b"/"
                    || path == d.as_slice()
                    || (path.starts_with(d) && path.get(d.len()) == Some(&b'/'))
            })
    }
}

#[cfg(test)]
mod outbound_tests {
    use super::*;
    use crate::model::{ImageRef, OutboundEntry, Seen};
    use falco_learn_event::{Args, Event, EventType, EventTypeField, Fd, FdType, L4Proto};

    fn connect(proto: L4Proto, ip: &str, port: u16) -> Event {
        let ip: IpAddr = ip.parse().expect("ip");
        Event {
            typ: EventTypeField(EventType::Connect),
            res: 0,
            fd: Some(Fd {
                num: 3,
                typ: if ip.is_ipv4() {
                    FdType::Ipv4
                } else {
                    FdType::Ipv6
                },
                l4proto: proto,
                sip: Some(ip),
                sport: Some(port),
                cport: Some(40000),
                is_client: true,
                ..Fd::default()
            }),
            args: Args::Connect {
                fd: 3,
                addr: format!("{ip}:{port}"),
            },
            ..Event::default()
        }
    }

    /// Every connection the kernel entries allow is one the profile's matcher allows.
    #[test]
    fn kernel_entries_allow_only_what_the_profile_allows() {
        let mut p = Profile::new(ImageRef::new("docker.io/library/app", "1"));
        let mut e = OutboundEntry {
            seen: Seen::default(),
            ..OutboundEntry::default()
        };
        e.peers.insert("10.1.2.3/16".parse().expect("net"));
        e.peers.insert("2001:db8::1/128".parse().expect("net"));
        p.outbound.insert((Proto::Tcp, 5432), e.clone());
        p.outbound.insert((Proto::Udp, 53), e.clone());
        p.outbound.insert((Proto::Icmp, 0), e);
        let k = kernel_outbound(&p);
        // icmp stays in userspace; networks in their network form
        assert_eq!(k.len(), 4);
        assert!(k.iter().all(|x| matches!(x.proto, Proto::Tcp | Proto::Udp)));
        assert!(k.iter().any(|x| x.peer.to_string() == "10.1.0.0/16"));
        let cases = [
            (L4Proto::Tcp, "10.1.200.7", 5432),
            (L4Proto::Tcp, "10.2.0.1", 5432),
            (L4Proto::Tcp, "10.1.0.1", 5433),
            (L4Proto::Udp, "10.1.0.1", 53),
            (L4Proto::Udp, "10.1.0.1", 5432),
            (L4Proto::Tcp, "2001:db8::1", 5432),
            (L4Proto::Tcp, "2001:db8::2", 5432),
        ];
        let mut allowed = 0;
        for (proto, ip, port) in cases {
            let ev = connect(proto, ip, port);
            let addr: IpAddr = ip.parse().expect("ip");
            let kernel = k.iter().any(|x| x.allows(proto.into(), port, &addr));
            if kernel {
                allowed += 1;
                assert_eq!(p.check(&ev), None, "{proto:?} {ip}:{port}");
            }
        }
        assert_eq!(allowed, 3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ImageRef, Seen};
    use falco_learn_event::{Args, Event, EventType, EventTypeField, Fd};

    fn profile(files: &[&str], dirs: &[&str], globs: &[&str]) -> Profile {
        let mut p = Profile::new(ImageRef::new("docker.io/library/nginx", "latest"));
        for f in files {
            p.write_files.insert(f.to_string(), Seen::default());
        }
        for d in dirs {
            p.write_dirs.insert(d.to_string(), Seen::default());
        }
        for g in globs {
            p.write_globs.insert(g.to_string(), Seen::default());
        }
        p
    }

    fn write_open(path: &str) -> Event {
        Event {
            typ: EventTypeField(EventType::Openat),
            res: 3,
            fd: Some(Fd {
                num: 3,
                name: path.into(),
                ..Fd::default()
            }),
            args: Args::Open {
                name: path.into(),
                flags: 0o1 | 0o100,
                mode: 0o644,
                dirfd: -100,
            },
            ..Event::default()
        }
    }

    #[test]
    fn literal_files_and_normalised_directories_go_to_the_kernel() {
        let p = profile(
            &["/run/nginx.pid", "/tmp/a\\x0ab", "relative"],
            &["/var/cache/nginx", "//srv//data/", "/tmp/x*"],
            &["/tmp/sed*"],
        );
        let k = kernel_writes(&p);
        let s = |v: &[Vec<u8>]| {
            v.iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            s(&k.files),
            vec![
                "/dev/full",
                "/dev/null",
                "/dev/random",
                "/dev/tty",
                "/dev/urandom",
                "/dev/zero",
                "/run/nginx.pid"
            ]
        );
        assert_eq!(s(&k.dirs), vec!["/srv/data", "/var/cache/nginx"]);
    }

    /// Everything the kernel entries allow, the matcher allows: for each path of a set of
    /// real-looking and adversarial ones, `allows` implies no anomaly.
    #[test]
    fn the_kernel_never_allows_what_the_matcher_flags() {
        let p = profile(
            &[
                "/run/nginx.pid",
                "/etc/nginx/conf.d/default.conf",
                "/a b/'q\"/x",
            ],
            &["/var/cache/nginx", "//srv//data/", "/var/log/nginx/"],
            &["/tmp/sed*"],
        );
        let k = kernel_writes(&p);
        let paths = [
            "/run/nginx.pid",
            "/run/nginx.pid2",
            "/run/nginx.pi",
            "/run",
            "/var/cache/nginx",
            "/var/cache/nginx/client_temp/0000000001",
            "/var/cache/nginxx/a",
            "/var/cache",
            "/srv/data",
            "/srv/data/x/y",
            "/srv/database",
            "/var/log/nginx",
            "/var/log/nginx/access.log",
            "/var/log/nginx.old",
            "/etc/nginx/conf.d/default.conf",
            "/etc/nginx/conf.d/default.conf.bak",
            "/a b/'q\"/x",
            "/tmp/sed123",
            "/dev/null",
            "/dev/nullx",
        ];
        let mut allowed = 0;
        for path in paths {
            if k.allows(path.as_bytes()) {
                allowed += 1;
                assert_eq!(
                    p.check(&write_open(path)),
                    None,
                    "the kernel would drop a write of {path} that the matcher flags"
                );
            }
        }
        assert_eq!(allowed, 10);
        // a glob-learned name stays with userspace
        assert!(!k.allows(b"/tmp/sed123"));
    }

    #[test]
    fn the_root_directory_covers_everything() {
        let k = kernel_writes(&profile(&[], &["/"], &[]));
        assert_eq!(k.dirs, vec![b"/".to_vec()]);
        assert!(k.allows(b"/x/y"));
    }
}
