//! The process lifecycle family (kinds `Exec`, `Execveat`, `Fork`, `Exit`: the scheduler
//! tracepoints): the process table's upkeep and the arguments of exec, clone and procexit
//! events.

use super::{lossy, path_flags};
use crate::proctable::ProcessTable;
use falco_learn_event::{path, Args, ExeFlags};
use falco_learn_probe_common as abi;
use std::sync::Arc;

/// The strings that follow an exec record.
pub(super) struct ExecStrings<'a> {
    pub exepath: &'a [u8],
    pub argv: &'a [u8],
    pub cwd: &'a [u8],
    pub cgroup: &'a [u8],
    pub filename: &'a [u8],
}

/// An exec (execve or execveat): the process's entry takes its new image.
pub(super) fn exec(
    procs: &mut ProcessTable,
    boot_epoch_ns: u64,
    h: &abi::Hdr,
    c: &str,
    e: &abi::Exec,
    s: ExecStrings<'_>,
) -> Args {
    let mut parts: Vec<String> = s.argv.split(|b| *b == 0).map(lossy).collect();
    // argv ends with a NUL: drop the empty tail
    if parts.last().is_some_and(|s| s.is_empty()) {
        parts.pop();
    }
    let exe = if parts.is_empty() {
        String::new()
    } else {
        parts.remove(0)
    };
    let cgroup = lossy(s.cgroup);
    let container = procs.container_for_cgroup(&cgroup).map(Arc::new);
    let boot = boot_epoch_ns;
    procs.invalidate_ancestors();
    let p = procs.entry(h.pid, h.ppid, c);
    p.ppid = h.ppid;
    p.comm = c.to_string();
    p.exe = exe;
    p.exepath = path::render(s.exepath, path_flags(e.flags));
    p.args = parts;
    p.cwd = path::render(s.cwd, path_flags(e.cwd_flags));
    p.tty = e.tty;
    p.uid = h.uid;
    p.gid = h.gid;
    p.loginuid = e.loginuid;
    p.cap_effective = e.cap_effective;
    p.cap_permitted = e.cap_permitted;
    p.vpid = e.vpid;
    p.sid = e.sid;
    p.pgid = e.pgid;
    p.start_ts = boot + e.start_boot_ns;
    p.exe_ino = e.exe_ino;
    p.exe_ino_ctime = e.exe_ctime_ns;
    p.exe_ino_mtime = e.exe_mtime_ns;
    p.exe_flags = ExeFlags {
        tmpfs: e.flags & abi::EXE_TMPFS != 0,
        memfd: e.flags & abi::EXE_MEMFD != 0,
        upper_layer: e.flags & abi::EXE_UPPER != 0,
        overlay: e.flags & abi::EXE_OVERLAY != 0,
        writable: exe_writable(e.exe_mode, e.exe_uid, e.exe_gid, h.uid, h.gid),
        killed: e.flags & abi::EXE_KILLED != 0,
        ia32: e.flags & abi::EXE_IA32 != 0,
        runtime: e.flags & abi::EXE_RUNTIME != 0,
        relocated: e.flags & abi::EXE_RELOCATED != 0,
        other_root: e.flags & abi::EXE_OTHER_ROOT != 0,
        host_root: e.flags & abi::EXE_HOST_ROOT != 0,
        other_fs: Some(e.flags & abi::EXE_OTHER_FS != 0),
    };
    p.container = container;
    Args::Exec {
        filename: path::render_raw(s.filename),
    }
}

/// A fork: the child enters the table (a `clone` event).
pub(super) fn fork(
    procs: &mut ProcessTable,
    boot_epoch_ns: u64,
    h: &abi::Hdr,
    c: &str,
    e: &abi::Fork,
) -> Args {
    procs.on_fork(h.pid, h.ppid, e.vpid, boot_epoch_ns + e.start_boot_ns, c);
    Args::Clone {
        child_pid: h.pid,
        flags: 0,
    }
}

/// A process exit (`procexit`); the table drops it once the event is built.
pub(super) fn exit(e: &abi::Exit) -> Args {
    Args::Exit {
        status: e.exit_code,
    }
}

/// Falco's `proc.is_exe_writable`: the running user may write the executable.
pub(super) fn exe_writable(mode: u32, owner: u32, group: u32, uid: u32, gid: u32) -> bool {
    uid == 0
        || (owner == uid && mode & 0o200 != 0)
        || (group == gid && mode & 0o020 != 0)
        || mode & 0o002 != 0
}
