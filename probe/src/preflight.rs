//! Checks that tell a user, in one line each, why the probe cannot run here.

use std::path::Path;

/// Why the probe cannot start on this machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreflightError {
    #[error("falco-learn needs root or CAP_BPF+CAP_PERFMON (and CAP_SYS_RESOURCE on kernels < 5.11) to load eBPF programs; run it as root")]
    NotPrivileged,
    #[error("the kernel has no BTF (/sys/kernel/btf/vmlinux missing): a kernel built with CONFIG_DEBUG_INFO_BTF=y is required")]
    NoBtf,
    #[error("kernel {0} is too old: falco-learn needs Linux 5.8 or later (ring buffer, BTF tracepoints)")]
    KernelTooOld(String),
    #[error("tracefs is not mounted at /sys/kernel/tracing and mounting it failed ({0}); mount it with `mount -t tracefs nodev /sys/kernel/tracing`")]
    NoTracefs(String),
}

/// Parse "6.18.44-fc" → (6, 18).
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
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
    match kernel_version(release) {
        Some(v) if v < (5, 8) => return Err(PreflightError::KernelTooOld(release.into())),
        _ => {}
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(PreflightError::NoBtf);
    }
    ensure_tracefs(mount_tracefs)
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
    fn parses_kernel_versions() {
        assert_eq!(kernel_version("6.18.44-fc-v509"), Some((6, 18)));
        assert_eq!(kernel_version("5.4.0"), Some((5, 4)));
        assert_eq!(kernel_version("garbage"), None);
        assert!((5, 4) < (5, 8) && (6, 1) > (5, 8));
    }
}
