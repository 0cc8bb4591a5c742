//! Checks that tell a user, in one line each, why the probe cannot run here.

use std::path::Path;

/// Why the probe cannot start on this machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreflightError {
    #[error("falco-learn needs root or CAP_BPF+CAP_PERFMON (and CAP_SYS_RESOURCE on kernels < 5.11) to load eBPF programs; run it as root")]
    NotPrivileged,
    #[error("the kernel has no BTF (/sys/kernel/btf/vmlinux missing): a kernel built with CONFIG_DEBUG_INFO_BTF=y is required")]
    NoBtf,
    #[error(
        "kernel {release} cannot run the probe: it lacks {feature} (Linux 5.8 or later has it)"
    )]
    MissingFeature {
        release: String,
        feature: &'static str,
    },
    #[error("tracefs is not mounted at /sys/kernel/tracing and mounting it failed ({0}); mount it with `mount -t tracefs nodev /sys/kernel/tracing`")]
    NoTracefs(String),
}

fn has_caps() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_SYS_ADMIN: u64 = 21;
    const CAP_PERFMON: u64 = 38;
    const CAP_BPF: u64 = 39;
    eff & (1 << CAP_SYS_ADMIN) != 0 || (eff & (1 << CAP_BPF) != 0 && eff & (1 << CAP_PERFMON) != 0)
}

/// Run every check; with `mount_tracefs`, mount tracefs when it is missing.
pub fn preflight(mount_tracefs: bool) -> Result<(), PreflightError> {
    if !has_caps() {
        return Err(PreflightError::NotPrivileged);
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(PreflightError::NoBtf);
    }
    // Features, not version numbers: distribution kernels backport them (RHEL 8's 4.18 has
    // the ring buffer), and a version says nothing about a kernel built without them.
    if ringbuf_supported() == Some(false) {
        return Err(PreflightError::MissingFeature {
            release: release.into(),
            feature: "the BPF ring buffer (BPF_MAP_TYPE_RINGBUF)",
        });
    }
    ensure_tracefs(mount_tracefs)
}

/// Whether the kernel can create a BPF ring buffer map: `Some(false)` when it does not
/// know the map type (EINVAL), `None` when the probe itself failed for another reason
/// (the loader then reports whatever goes wrong).
pub fn ringbuf_supported() -> Option<bool> {
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_TYPE_RINGBUF: u32 = 27;
    // union bpf_attr, BPF_MAP_CREATE part: map_type, key_size, value_size, max_entries, …;
    // the rest must be zero.
    let mut attr = [0u32; 18];
    attr[0] = BPF_MAP_TYPE_RINGBUF;
    attr[3] = 4096; // one page, a power of two
                    // SAFETY: bpf(2) reads `size_of_val(&attr)` bytes of the zero-initialised array we own.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            attr.as_ptr(),
            std::mem::size_of_val(&attr) as libc::c_uint,
        )
    };
    if fd >= 0 {
        // SAFETY: closing the map fd we just created.
        unsafe { libc::close(fd as libc::c_int) };
        return Some(true);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EINVAL) => Some(false),
        _ => None,
    }
}

fn ensure_tracefs(mount: bool) -> Result<(), PreflightError> {
    let ok = |p: &str| Path::new(p).join("events/syscalls").is_dir();
    if ok("/sys/kernel/tracing") || ok("/sys/kernel/debug/tracing") {
        return Ok(());
    }
    if !mount {
        return Err(PreflightError::NoTracefs("mounting disabled".into()));
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: constant NUL-terminated strings; mount(2) has no memory preconditions beyond that.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(PreflightError::NoTracefs(
            std::io::Error::last_os_error().to_string(),
        ));
    }
    if ok("/sys/kernel/tracing") {
        tracing::info!("mounted tracefs at /sys/kernel/tracing");
        Ok(())
    } else {
        Err(PreflightError::NoTracefs(
            "mounted, but it has no events/syscalls (kernel without CONFIG_FTRACE_SYSCALLS)".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_buffer_probe_answers_as_root() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("not root: bpf(2) refuses map creation, nothing to check");
            return;
        }
        // every kernel this is built and tested on (5.8+) has it
        assert_eq!(ringbuf_supported(), Some(true));
    }
}
