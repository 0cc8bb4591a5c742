//! Which events a profile is about, and whether a profile allows one.
//!
//! [`behaviour`] is the single definition of what counts, used by learning
//! and by matching alike; the generated Falco rules (see `generate`) spell
//! the same predicates in Falco's language, and a test checks they agree.

use crate::dimension::na;
pub use crate::dimension::Behaviour;
pub use crate::model::Dimension;
use crate::model::Profile;
use falco_learn_event::{Args, Event, EventType, FdType, L4Proto};
use std::fmt;

use falco_learn_event::errno::EINPROGRESS;
const O_ACCMODE: u32 = 0o3;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;

/// Device files whose writes carry no behaviour (data sinks and sources every
/// program may use, e.g. ssh opens /dev/null read-write): never learned, never
/// an anomaly. The generated rules exclude the same list.
pub const BENIGN_WRITE_SINKS: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// A datagram or connection seen from the server's end: the local port (by
/// role, `fd.lport`) is the server port (`fd.sport`). The probe gives a UDP
/// send from a socket whose port the process bound the server's role
/// (`Fd::bound`); such a send is inbound (`dimension::inbound`), never outbound.
/// Generated rules: `fd.lport = val(fd.sport)`.
pub fn is_server_end(fd: &falco_learn_event::Fd) -> bool {
    let local = if fd.is_client { fd.cport } else { fd.sport };
    local.is_some() && local == fd.sport
}

/// How a process running runc's memfd copy of itself reads (`proc.exepath`).
pub const RUNC_MEMFD: &str = "memfd:runc_cloned:";

/// The container runtime setting a container up: a process in the container's
/// cgroup that is runc before it becomes the workload. runc's stages there:
/// 1. `runc init` as runc's parent (`runc create`, `runc exec`: named `runc`)
///    started it: `exec /proc/self/exe init` (named `exe`, running runc's own
///    binary `…/runc`), which then makes its protected copy (runc 1.1.0–1.1.14:
///    `/run/runc/<id>/runc.XXXXXX`, bind-mounted read-only and detached; 1.1.15:
///    a memfd `memfd:runc_cloned:/proc/self/exe`); runc 1.2 and later start it
///    from a copy directly (`/<runc's file name>` in a private overlayfs mount, or
///    the memfd); runc 1.4's exec starts it right in the container's cgroup
///    (`CLONE_INTO_CGROUP`);
/// 2. the execveat of the protected copy, whose kernel-resolved path is `/` (a
///    detached bind mount), named after the file (`runc`, Linux 6.x) or after the
///    descriptor (`7`);
/// 3. `runc:[0:PARENT]`, `runc:[1:CHILD]`, then `runc:[2:INIT]`, the container's
///    init, still running the copy, that writes the container's `/etc/hosts`,
///    `resolv.conf`, opens its exec fifo and execs the entrypoint or an exec
///    session's command.
///
/// Which of stages 1 and 2 land in the container's cgroup is a race (runc's
/// parent moves the child there while it starts) or, with runc 1.4's exec, a
/// given. So: a process the kernel saw start as the runtime's own child
/// ([`falco_learn_event::ExeFlags::runtime`]: host pid namespace, its parent named
/// `runc…` in the same mount namespace and outside its cgroup), and its forks while
/// still in the host's pid namespace (a fork that later entered the container's and
/// whose exec was lost keeps the flag, not the pass); a
/// process not in a pid namespace of its own (vpid = pid) that is named `runc…`, or
/// runs a program named `runc`, the copy (`/`) or runc's memfd (the exec may have
/// come before runc's parent moved it, where the kernel could not tell); or a
/// process named `runc…` running the copy `/` (`runc:[2:INIT]`, vpid 1, runc
/// 1.1.0–1.1.14). An exec the kernel killed (enforce-kill) never is: the kernel
/// spares the runtime's own child, so a killed one only looked like it. A
/// process of a container with its own pid namespace cannot leave it, and an
/// exec cannot give a process the path `/` without a mount of its own, so
/// neither can pass for one. Such events are not the workload: never learned,
/// never an anomaly (the generated rules say the same,
/// `generate::RUNTIME_SETUP`). Limits: in a container sharing the host's pid
/// namespace (`--pid=host`, `hostPID`) such a process (named `runc…`, running a
/// program named `runc`) is skipped in profiles and alerts (the kernel still kills
/// its execs outside the profile, unless the container can write its cgroup tree);
/// later runc's
/// `runc:[2:INIT]` on its memfd or overlayfs copy is not recognised (any process
/// can give itself such a path).
pub fn is_runtime_setup(ev: &Event) -> bool {
    let p = &ev.process;
    let named_runc = p.comm.starts_with("runc");
    let runs_copy = p.exepath == "/";
    let host_pid_ns = p.vpid != 0 && p.vpid == p.pid;
    let runs_runc = p.exepath.ends_with("/runc") || p.exepath.starts_with(RUNC_MEMFD);
    !p.exe_flags.killed
        && ((host_pid_ns && (p.exe_flags.runtime || named_runc || runs_copy || runs_runc))
            || (named_runc && runs_copy))
}

/// The event's behaviour, if it is one a profile describes.
pub fn behaviour(ev: &Event) -> Option<Behaviour<'_>> {
    if is_runtime_setup(ev) {
        return None;
    }
    // the dimensions with a home of their own first (inbound claims a server's replies)
    if let Some(b) = crate::dimension::DIMS.iter().find_map(|d| d.behaviour(ev)) {
        return Some(b);
    }
    match ev.event_type() {
        EventType::Execve | EventType::Execveat if ev.res >= 0 => Some(Behaviour::Exec {
            path: &ev.process.exepath,
            parent: ev.ancestors.first().map_or("", |a| a.exepath.as_str()),
            init: ev.process.vpid == 1,
            flags: ev.process.exe_flags,
        }),
        EventType::Connect | EventType::Sendto | EventType::Sendmsg
            if ev.res >= 0 || ev.res == -EINPROGRESS =>
        {
            let fd = ev.fd.as_ref()?;
            // a server's reply is inbound (dimension::inbound), never outbound
            if ev.event_type() != EventType::Connect
                && fd.l4proto == L4Proto::Udp
                && is_server_end(fd)
            {
                return None;
            }
            matches!(fd.typ, FdType::Ipv4 | FdType::Ipv6).then_some(Behaviour::Outbound {
                proto: fd.l4proto.into(),
                port: fd.sport,
                peer: fd.sip,
            })
        }
        t @ (EventType::Open | EventType::Openat | EventType::Openat2 | EventType::Creat)
            if ev.res >= 0 =>
        {
            let fd = ev.fd.as_ref()?;
            if fd.typ != FdType::File || fd.num < 0 {
                return None;
            }
            let write = t == EventType::Creat
                || match &ev.args {
                    Args::Open { flags, .. } => {
                        matches!(flags & O_ACCMODE, 1 | 2) || flags & (O_CREAT | O_TRUNC) != 0
                    }
                    _ => false,
                };
            (write && !BENIGN_WRITE_SINKS.contains(&fd.name.as_str()))
                .then_some(Behaviour::Write { path: &fd.name })
        }
        _ => None,
    }
}

/// An event of the profile's image doing something the profile does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    pub dimension: Dimension,
    /// The offending value, as [`Behaviour::value`] renders it.
    pub value: String,
    /// For an exec whose executable is learned but not from this parent:
    /// the parent (`proc.pexepath`, `<NA>` when unknown).
    pub parent: Option<String>,
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unexpected {}: {}", self.dimension, self.value)?;
        if let Some(p) = &self.parent {
            write!(f, " parent={p}")?;
        }
        Ok(())
    }
}

/// Whether the event is a container's (not the host's, not unattributed).
pub(crate) fn in_container(ev: &Event) -> bool {
    !ev.container.id.is_empty() && ev.container.id != "host"
}

impl Profile {
    /// The anomaly, if the event comes from this profile's image and does
    /// something the profile does not allow. Map lookups only.
    pub fn matches(&self, ev: &Event) -> Option<Anomaly> {
        if !self.image.is_event(ev) {
            return None;
        }
        self.check(ev)
    }

    /// Whether the filesystem an exec's file lives on and the root it ran from are what the
    /// profile's entry for `path` was learned with, as enforce-kill judges them
    /// (`kill::AllowedExec`): the root's filesystem and the container's home always;
    /// another filesystem (a volume), another root and the host's root only as learned.
    /// (The upper layer, a tmpfs and a memfd are drift, learned under review, and Falco's
    /// own rules see them: `proc.is_exe_upper_layer`, `proc.is_exe_from_memfd`; the
    /// generated rules judge the path alone, as stock Falco cannot tell these places.)
    fn place_allowed(&self, path: &str, flags: falco_learn_event::ExeFlags) -> bool {
        let f = flags;
        // (`other_fs` not known, in a recording made before the flag: not judged)
        let other_fs = f.on_other_fs();
        if !(other_fs || f.other_root || f.host_root) {
            return true;
        }
        self.exec.get(path).is_some_and(|e| {
            (!other_fs || e.other_fs)
                && (!f.other_root || e.other_root)
                && (!f.host_root || e.host_root)
        })
    }

    /// Like [`Profile::matches`] without the image check (for callers that
    /// already looked the profile up by the event's image).
    pub fn check(&self, ev: &Event) -> Option<Anomaly> {
        let b = behaviour(ev)?;
        let allowed = match b {
            // a path the kernel could not report whole matches no entry
            Behaviour::Exec { path, .. } | Behaviour::Write { path }
                if falco_learn_event::path::is_truncated(path) =>
            {
                false
            }
            // enforce-kill killed it in the kernel, which judges the executable alone and
            // exactly (never through the globs that approximate an entry Falco rules cannot
            // spell): a kill is an anomaly whatever the globs and the lineage say, so it is
            // never silent
            Behaviour::Exec { flags, .. } if flags.killed => false,
            // the kernel saw the executable's path is not where the file lives (a chroot
            // into a directory, a bind mount of the container's own file): no entry names
            // it (enforce-kill kills it). In a container only: on the host, systemd's
            // sandboxing (ProtectSystem=, BindPaths=) binds directories onto themselves
            // for ordinary services, and the host is never killed
            Behaviour::Exec { flags, .. } if flags.relocated && in_container(ev) => false,
            // a file on another filesystem than the entry was learned from (a volume's
            // file bound onto an image executable's path), or run from another root than
            // the container's home (a neighbour's root, the host's): allowed only by an
            // entry learned so, as enforce-kill judges it
            Behaviour::Exec { path, flags, .. }
                if in_container(ev) && !self.place_allowed(path, flags) =>
            {
                false
            }
            Behaviour::Exec {
                path, parent, init, ..
            } => self.exec_allowed_from(path, parent, init),
            Behaviour::Outbound { proto, port, peer } => match (port, peer) {
                (Some(port), Some(ip)) => self
                    .outbound
                    .get(&(proto, port))
                    .is_some_and(|e| e.allows(&ip)),
                _ => false,
            },
            Behaviour::Write { path } => !path.is_empty() && self.write_allowed(path),
            ref b => crate::dimension::dim(b.dimension()).is_some_and(|d| d.allows(self, b)),
        };
        (!allowed).then(|| Anomaly {
            dimension: b.dimension(),
            value: b.value(),
            parent: match b {
                Behaviour::Exec {
                    path,
                    parent,
                    flags,
                    ..
                } if !flags.killed
                    && (!in_container(ev)
                        || (!flags.relocated && self.place_allowed(path, flags)))
                    && !falco_learn_event::path::is_truncated(path)
                    && self.exec_allowed(path) =>
                {
                    Some(na(parent).to_string())
                }
                _ => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Proto;
    use crate::model::{ImageRef, Limits};
    use falco_learn_event::{Container, EventTypeField, Fd};

    fn ev(t: EventType) -> Event {
        Event {
            typ: EventTypeField(t),
            container: Container {
                id: "c1".into(),
                image_repository: "docker.io/library/nginx".into(),
                image_tag: "1.27".into(),
                ..Container::default()
            }
            .into(),
            ..Event::default()
        }
    }

    fn open(path: &str, flags: u32) -> Event {
        Event {
            res: 3,
            fd: Some(Fd {
                num: 3,
                name: path.into(),
                ..Fd::default()
            }),
            args: Args::Open {
                name: path.into(),
                flags,
                mode: 0o644,
                dirfd: -100,
            },
            ..ev(EventType::Openat)
        }
    }

    #[test]
    fn benign_sinks_are_not_behaviour() {
        for sink in BENIGN_WRITE_SINKS {
            assert_eq!(behaviour(&open(sink, 2)), None, "{sink}");
        }
        assert!(matches!(
            behaviour(&open("/dev/vi", 0o1101)),
            Some(Behaviour::Write { path: "/dev/vi" })
        ));
        let p = crate::model::Profile::new(ImageRef::new("docker.io/library/nginx", "1.27"));
        assert_eq!(p.matches(&open("/dev/null", 2)), None);
    }

    /// runc 1.1's stages as a recording on this project's CI host shows them (podman,
    /// `podman restart`), each in whichever order the race put it into the container's
    /// cgroup, and what a container's own process can make of the same fields.
    #[test]
    fn runc_before_it_becomes_the_workload_is_runtime_setup() {
        // the event with its process changed by `f`
        let with = |mut e: Event, f: &dyn Fn(&mut falco_learn_event::Process)| {
            f(std::sync::Arc::make_mut(&mut e.process));
            e
        };
        let event = |typ, comm: &str, pid, vpid, exepath: &str, path: Option<&str>| {
            let e = match path {
                Some(p) => open(p, 0o1102),
                None => Event { res: 0, ..ev(typ) },
            };
            with(e, &|p| {
                p.comm = comm.into();
                p.pid = pid;
                p.vpid = vpid;
                p.exepath = exepath.into();
            })
        };
        let runc_dir = "/run/runc/33cf6793dff585ad8698a47a8b5bf00e7c368338ebcb59d3a127684efa9475e4";
        let setup = [
            // 1. `exec /proc/self/exe init`, then copying itself into the state dir
            event(EventType::Execve, "exe", 2136, 2136, "/usr/sbin/runc", None),
            event(
                EventType::Openat,
                "exe",
                2136,
                2136,
                "/usr/sbin/runc",
                Some(&format!("{runc_dir}/runc.EvmJJl")),
            ),
            // 2. the execveat of the copy: named after the file (6.x) or the descriptor
            event(EventType::Execveat, "runc", 2136, 2136, "/", None),
            event(EventType::Execveat, "7", 2136, 2136, "/", None),
            // runc 1.2+: init started from the overlayfs copy, or from the memfd one
            event(EventType::Execveat, "runc", 2136, 2136, "/runc", None),
            event(
                EventType::Execveat,
                "7",
                2136,
                2136,
                "memfd:runc_cloned:/proc/self/exe",
                None,
            ),
            // whatever its name and path: the kernel saw it start as runc's own child
            with(
                event(EventType::Execve, "7", 2136, 2136, "/x/y", None),
                &|p| p.exe_flags.runtime = true,
            ),
            // 3. the parent and child stages, then the container's init on the copy
            event(EventType::Clone, "runc:[0:PARENT]", 2137, 2137, "/", None),
            event(
                EventType::Openat,
                "runc:[2:INIT]",
                2138,
                1,
                "/",
                Some("/run/.containerenv"),
            ),
        ];
        for e in &setup {
            assert!(
                is_runtime_setup(e),
                "{} {:?}",
                e.process.comm,
                e.process.exepath
            );
            assert_eq!(
                behaviour(e),
                None,
                "{} {:?}",
                e.process.comm,
                e.process.exepath
            );
        }
        let workload = [
            // a container's process with its own pid namespace: whatever it runs or is named
            event(EventType::Execve, "exe", 2140, 7, "/usr/sbin/runc", None),
            event(EventType::Execve, "runc", 2140, 7, "/usr/sbin/runc", None),
            event(EventType::Execveat, "7", 2140, 7, "/", None),
            event(
                EventType::Execveat,
                "runc:[2:INIT]",
                2140,
                7,
                "memfd:runc_cloned:/proc/self/exe",
                None,
            ),
            event(
                EventType::Execveat,
                "runc:[2:INIT]",
                2140,
                1,
                "memfd:runc_cloned:x",
                None,
            ),
            event(
                EventType::Execve,
                "runc:[2:INIT]",
                2140,
                1,
                "/usr/sbin/runc",
                None,
            ),
            // a program merely named like runc, even outside a pid namespace
            event(
                EventType::Execve,
                "exe",
                2140,
                2140,
                "/usr/sbin/runc-helper",
                None,
            ),
            event(EventType::Execve, "exe", 2140, 2140, "/opt/notrunc", None),
            // vpid unknown
            event(EventType::Execve, "exe", 2140, 0, "/usr/sbin/runc", None),
            // a hostPID container's process that names its parent runc: the kernel did
            // not see runc's own child
            {
                let mut e = event(EventType::Execve, "7", 2140, 2140, "/x/y", None);
                e.ancestors = vec![falco_learn_event::Ancestor {
                    pid: 2139,
                    vpid: 2139,
                    comm: "runc".into(),
                    ..Default::default()
                }]
                .into();
                e
            },
            // the flag inherited by a fork in the container's pid namespace whose own exec
            // was lost: the kernel's pass was for the host's pid namespace only
            with(
                event(
                    EventType::Openat,
                    "nginx",
                    2141,
                    1,
                    "/usr/sbin/nginx",
                    Some("/etc/x"),
                ),
                &|p| p.exe_flags.runtime = true,
            ),
            // killed by the kernel, which spares the runtime's own child: a pretender
            with(
                event(EventType::Execve, "runc", 2140, 2140, "/tmp/runc", None),
                &|p| p.exe_flags.killed = true,
            ),
        ];
        for e in &workload {
            assert!(
                !is_runtime_setup(e),
                "{} {:?} vpid {}",
                e.process.comm,
                e.process.exepath,
                e.process.vpid
            );
            assert!(
                behaviour(e).is_some(),
                "{} {:?}",
                e.process.comm,
                e.process.exepath
            );
        }
    }

    #[test]
    fn write_intent() {
        assert_eq!(
            behaviour(&open("/a", 1)),
            Some(Behaviour::Write { path: "/a" })
        );
        assert_eq!(
            behaviour(&open("/a", 2)),
            Some(Behaviour::Write { path: "/a" })
        );
        assert_eq!(
            behaviour(&open("/a", O_CREAT)),
            Some(Behaviour::Write { path: "/a" })
        );
        assert_eq!(
            behaviour(&open("/a", O_TRUNC)),
            Some(Behaviour::Write { path: "/a" })
        );
        assert_eq!(behaviour(&open("/a", 0)), None);
        // access mode 3 is not a write for Falco's evt.is_open_write either
        assert_eq!(behaviour(&open("/a", 3)), None);
        let mut failed = open("/a", 1);
        failed.res = -13;
        assert_eq!(behaviour(&failed), None);
    }

    #[test]
    fn connect_counts_in_progress_but_not_failures() {
        let mut e = ev(EventType::Connect);
        e.res = -EINPROGRESS;
        e.fd = Some(Fd {
            typ: FdType::Ipv4,
            l4proto: L4Proto::Tcp,
            sip: Some("198.51.100.10".parse().expect("ip")),
            sport: Some(2222),
            ..Fd::default()
        });
        let b = behaviour(&e).expect("outbound");
        assert_eq!(b.value(), "tcp/2222 198.51.100.10");
        e.res = -111;
        assert_eq!(behaviour(&e), None);
    }

    #[test]
    fn udp_replies_are_inbound_not_outbound() {
        // the probe's view of a reply from a bound port: the server's role
        let mut e = ev(EventType::Sendto);
        e.res = 10;
        e.fd = Some(Fd {
            typ: FdType::Ipv4,
            l4proto: L4Proto::Udp,
            cip: Some("198.51.100.20".parse().expect("ip")),
            cport: Some(40312),
            sip: Some("192.0.2.10".parse().expect("ip")),
            sport: Some(53),
            is_client: false,
            bound: Some(true),
            ..Fd::default()
        });
        assert_eq!(
            behaviour(&e),
            Some(Behaviour::Inbound {
                proto: Proto::Udp,
                port: Some(53)
            })
        );
        // a failed reply is neither
        e.res = -EINPROGRESS;
        assert_eq!(behaviour(&e), None);
        // a client's query from an autobound port stays outbound, whatever the ports
        e.res = 10;
        e.fd = Some(Fd {
            typ: FdType::Ipv4,
            l4proto: L4Proto::Udp,
            cip: Some("192.0.2.10".parse().expect("ip")),
            cport: Some(40312),
            sip: Some("198.51.100.20".parse().expect("ip")),
            sport: Some(53),
            is_client: true,
            bound: Some(false),
            ..Fd::default()
        });
        assert_eq!(
            behaviour(&e).map(|b| b.value()),
            Some("udp/53 198.51.100.20".into())
        );
        // a connect is a client's
        e.typ = EventTypeField(EventType::Connect);
        assert!(matches!(behaviour(&e), Some(Behaviour::Outbound { .. })));
    }

    #[test]
    fn profile_matches_by_dimension() {
        let l = Limits::default();
        let mut p = Profile::new(ImageRef::new("docker.io/library/nginx", "1.27"));
        p.learn_exec("/usr/sbin/nginx", false, 1);
        p.learn_write("/var/log/nginx/access.log", 1, &l);
        let mut x = ev(EventType::Execve);
        std::sync::Arc::make_mut(&mut x.process).exepath = "/usr/sbin/nginx".into();
        assert_eq!(p.matches(&x), None);
        std::sync::Arc::make_mut(&mut x.process).exepath = "/dev/vi".into();
        assert_eq!(
            p.matches(&x),
            Some(Anomaly {
                dimension: Dimension::Exec,
                value: "/dev/vi".into(),
                parent: None,
            })
        );
        std::sync::Arc::make_mut(&mut x.container).image_tag = "1.26".into();
        assert_eq!(p.matches(&x), None, "other image");
        assert_eq!(p.matches(&open("/var/log/nginx/access.log", 0o1101)), None);
        assert_eq!(
            p.matches(&open("/etc/passwd", 1)).map(|a| a.to_string()),
            Some("unexpected file_write: /etc/passwd".into())
        );
    }

    #[test]
    fn a_truncated_path_matches_no_entry() {
        // a profile that (wrongly) holds the very string still does not allow it, and
        // a directory entry covering the leaf side does not either
        let l = Limits::default();
        let mut p = Profile::new(ImageRef::new("docker.io/library/nginx", "1.27"));
        p.learn_exec("<truncated>/usr/sbin/nginx", false, 1);
        p.learn_exec("/usr/sbin/nginx", false, 1);
        let mut x = ev(EventType::Execve);
        std::sync::Arc::make_mut(&mut x.process).exepath = "<truncated>/usr/sbin/nginx".into();
        assert_eq!(
            p.matches(&x),
            Some(Anomaly {
                dimension: Dimension::Exec,
                value: "<truncated>/usr/sbin/nginx".into(),
                parent: None,
            })
        );
        for i in 0..12 {
            p.learn_write(&format!("/var/lib/app/f{i}"), 1, &l);
        }
        assert_eq!(
            p.matches(&open("/var/lib/app/new", 1)),
            None,
            "/var/lib/app is generalised"
        );
        assert_eq!(
            p.matches(&open("<truncated>/var/lib/app/new", 1))
                .map(|a| a.dimension),
            Some(Dimension::FileWrite)
        );
    }
}
