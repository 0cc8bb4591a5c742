//! Event builders for tests: a plausible event of one kind in a container,
//! every other field at its default. Change what a test is about with struct
//! update syntax: `Event { res: -2, ..events::exec("/bin/sh", IMAGE) }`.

use falco_learn_event::{Args, Container, Event, EventType, EventTypeField, Fd, Process};

/// 2023-11-14T22:13:20Z, the time every built event carries.
pub const TS: u64 = 1_700_000_000_000_000_000;

/// An `execve` of `path` (pid 10) in container `abc` of image `repository:latest`
/// on host `node1`.
pub fn exec(path: &str, repository: &str) -> Event {
    Event {
        ts: TS,
        typ: EventTypeField(EventType::Execve),
        hostname: "node1".into(),
        process: Process {
            pid: 10,
            comm: path.rsplit('/').next().unwrap_or(path).into(),
            exepath: path.into(),
            exe: path.into(),
            ..Default::default()
        }
        .into(),
        container: Container {
            id: "abc".into(),
            name: "web".into(),
            image_repository: repository.into(),
            image_tag: "latest".into(),
            ..Default::default()
        }
        .into(),
        args: Args::Exec {
            filename: path.into(),
        },
        ..Default::default()
    }
}

/// An `openat` of `path` for writing (`O_WRONLY|O_CREAT|O_TRUNC`, fd 3) by
/// `/usr/sbin/nginx`, in the container of [`exec`].
pub fn open_write(path: &str, repository: &str) -> Event {
    Event {
        typ: EventTypeField(EventType::Openat),
        res: 3,
        fd: Some(Fd {
            num: 3,
            name: path.into(),
            ..Default::default()
        }),
        args: Args::Open {
            name: path.into(),
            flags: 0o1101,
            mode: 0o644,
            dirfd: -100,
        },
        ..exec("/usr/sbin/nginx", repository)
    }
}

/// Any event of container `id` (image `repository:latest`) carrying cgroup v2 id `cgroup`.
pub fn in_container(id: &str, repository: &str, cgroup: u64) -> Event {
    Event {
        cgroup_id: cgroup,
        container: Container {
            id: id.into(),
            image_repository: repository.into(),
            image_tag: "latest".into(),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    }
}
