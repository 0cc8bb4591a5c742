//! The file family (kinds `Open`, `Openat`, `Openat2`, `Creat`, `Dup*`, `Symlink*`,
//! `Link*`): the opened file's `fd.name` (the kernel's path, or the passed one resolved
//! lexically against the cwd), duplicated descriptors, and link arguments.

use super::net::sock_fd;
use super::path_flags;
use crate::proctable::ProcessTable;
use falco_learn_event::{path, Args, EventType, Fd, FdType};
use falco_learn_probe_common as abi;

const O_DIRECTORY: u32 = 0o200000;

/// Lexically normalise an absolute path: `//`, `.` and `..` removed.
pub fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    let mut s = String::with_capacity(path.len());
    for c in out {
        s.push('/');
        s.push_str(c);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

/// An open (open, openat, openat2, creat).
pub(super) fn open(
    procs: &ProcessTable,
    h: &abi::Hdr,
    e: &abi::Open,
    path: &[u8],
    resolved: &[u8],
) -> (Option<Fd>, Args) {
    let raw_path = path::render_raw(path);
    let name = if !resolved.is_empty() {
        // the file the kernel opened (symlinks and `..` resolved)
        path::render(resolved, path_flags(e.path_flags))
    } else if raw_path.starts_with('/') {
        normalize(&raw_path)
    } else {
        let cwd = procs.get(h.pid).map(|p| p.cwd.clone()).unwrap_or_default();
        normalize(&format!("{cwd}/{raw_path}"))
    };
    let fd = Fd {
        num: h.res,
        typ: if e.flags & O_DIRECTORY != 0 {
            FdType::Directory
        } else {
            FdType::File
        },
        name,
        nameraw: raw_path.clone(),
        ..Default::default()
    };
    let args = Args::Open {
        name: raw_path,
        flags: e.flags,
        mode: e.mode,
        dirfd: e.dirfd,
    };
    (Some(fd), args)
}

/// A dup, dup2 or dup3: the new descriptor is what the old one was (a socket's
/// endpoints when it is one).
pub(super) fn dup(h: &abi::Hdr, e: &abi::Dup) -> (Option<Fd>, Args) {
    let fd = if e.sock.family != 0 {
        let mut f = sock_fd(h.res, &e.sock);
        f.unmap_ipv4();
        f
    } else {
        Fd {
            num: h.res,
            typ: FdType::File,
            ..Default::default()
        }
    };
    let args = Args::Dup {
        oldfd: e.oldfd,
        newfd: e.newfd,
        flags: e.flags,
    };
    (Some(fd), args)
}

/// A symlink, symlinkat, link or linkat (`typ`: which).
pub(super) fn link(typ: EventType, e: &abi::Link, p1: &[u8], p2: &[u8]) -> Args {
    if matches!(typ, EventType::Symlink | EventType::Symlinkat) {
        Args::Symlink {
            target: path::render_raw(p1),
            linkpath: path::render_raw(p2),
            newdirfd: e.newdirfd,
        }
    } else {
        Args::Link {
            oldpath: path::render_raw(p1),
            newpath: path::render_raw(p2),
            olddir: e.olddirfd,
            newdir: e.newdirfd,
            flags: e.flags,
        }
    }
}
