//! Reading `/proc`, in one place: a process's `stat` line (the process table,
//! the agent's own CPU and memory, the tests' process lists), `status` fields
//! and the host name.

/// The fields of `/proc/<pid>/stat` falco-learn uses (proc(5) numbering).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    /// (2) the command name, without its parentheses (may hold spaces or `)`).
    pub comm: String,
    /// (3) the state letter (`R`, `S`, `Z`, …).
    pub state: char,
    /// (4)
    pub ppid: u32,
    /// (5) the process group.
    pub pgrp: u32,
    /// (6)
    pub session: u32,
    /// (7) the controlling terminal's device number.
    pub tty_nr: u32,
    /// (14), (15) CPU time in clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// (22) start time in clock ticks after boot.
    pub starttime: u64,
    /// (24) resident set size in pages.
    pub rss_pages: u64,
    /// (28) the address of the start (bottom) of the stack; 0 when the reader may not see
    /// it (no ptrace access) or the process has no memory (a kernel thread, a zombie).
    pub startstack: u64,
}

impl Stat {
    /// Whether this process started at `start_ts` (ns since the epoch, as events carry
    /// it), compared at `/proc`'s clock-tick resolution: the event's process, not another
    /// that reused its pid.
    pub fn started_at(&self, start_ts: u64) -> bool {
        let tick = 1_000_000_000 / clk_tck().max(1);
        start_ts >= boot_epoch_ns() && (start_ts - boot_epoch_ns()) / tick == self.starttime
    }

    /// Parse a `stat` line; `None` when it is cut short or not one.
    pub fn parse(line: &str) -> Option<Stat> {
        // comm is in parentheses and may contain spaces or ')': the last ')' ends it
        let open = line.find('(')?;
        let close = line.rfind(')')?;
        let comm = line.get(open + 1..close)?.to_string();
        let rest: Vec<&str> = line.get(close + 2..)?.split_whitespace().collect();
        // rest[0] is field 3
        let num = |field: usize| rest.get(field - 3)?.parse::<u64>().ok();
        let small = |field: usize| num(field).and_then(|v| u32::try_from(v).ok());
        Some(Stat {
            comm,
            state: rest.first()?.chars().next()?,
            ppid: small(4)?,
            pgrp: small(5)?,
            session: small(6)?,
            // a negative tty_nr does not occur; 0 is "none"
            tty_nr: small(7).unwrap_or(0),
            utime: num(14)?,
            stime: num(15)?,
            starttime: num(22)?,
            rss_pages: num(24)?,
            startstack: num(28).unwrap_or(0),
        })
    }

    /// `/proc/<pid>/stat`; `None` when the process is gone or unreadable.
    pub fn read(pid: u32) -> Option<Stat> {
        Stat::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// `/proc/self/stat`.
    pub fn read_self() -> Option<Stat> {
        Stat::parse(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }
}

/// The value after `key` (e.g. `VmRSS:`) in a `status` file's text, trimmed.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

/// `/proc/self/status`'s `key` in KiB (`VmRSS:`, `VmHWM:`).
pub fn self_status_kib(key: &str) -> Option<u64> {
    status_kib_of("/proc/self/status", key)
}

/// `/proc/<pid>/status`'s `key` in KiB.
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    status_kib_of(&format!("/proc/{pid}/status"), key)
}

fn status_kib_of(file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    status_field(&text, key)?
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The epoch time of boot, ns: `CLOCK_REALTIME - CLOCK_BOOTTIME`, measured
/// once per process, so every start time computed from boot-relative values
/// (the kernel's, `/proc`'s clock ticks) in one agent uses the same offset.
pub fn boot_epoch_ns() -> u64 {
    static BOOT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BOOT.get_or_init(|| {
        let now = |clk| {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: clock_gettime writes into the timespec we own.
            unsafe { libc::clock_gettime(clk, &mut ts) };
            (ts.tv_sec.max(0) as u64) * 1_000_000_000 + ts.tv_nsec.max(0) as u64
        };
        now(libc::CLOCK_REALTIME).saturating_sub(now(libc::CLOCK_BOOTTIME))
    })
}

/// Clock ticks per second of `/proc`'s times (`_SC_CLK_TCK`, 100 when unknown).
pub fn clk_tck() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if tck > 0 {
        tck as u64
    } else {
        100
    }
}

/// Now, in ns since the epoch on the events' clock (the boot clock plus
/// [`boot_epoch_ns`], as the kernel's timestamps are converted): comparable with event
/// times, unlike the wall clock, which may have been set since.
pub fn now_epoch_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    boot_epoch_ns() + (ts.tv_sec.max(0) as u64) * 1_000_000_000 + ts.tv_nsec.max(0) as u64
}

/// A `stat` start time (clock ticks after boot) as ns since the epoch.
pub fn ticks_to_epoch_ns(starttime: u64) -> u64 {
    boot_epoch_ns() + starttime.saturating_mul(1_000_000_000 / clk_tck())
}

/// When process `pid` started (ns since the epoch, at `/proc`'s clock-tick
/// resolution), if it exists and is in container `id`'s cgroup
/// ([`cgroup_names`] on `/proc/<pid>/cgroup`): a pid a runtime reported for a
/// container is checked to be still that container's, not a reused pid.
pub fn start_ts_in_cgroup(pid: u32, id: &str) -> Option<u64> {
    if pid == 0 {
        return None;
    }
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    if !cgroup_names(&cgroups, id) {
        return None;
    }
    Stat::read(pid).map(|s| ticks_to_epoch_ns(s.starttime))
}

/// The container's init found from one of its processes, `member` (host pid):
/// among the processes of `member`'s cgroup (the one naming container `id`)
/// that are inside a pid namespace below the host's, the oldest. That is the
/// process a runtime reports as the container's init (`runc init`'s last
/// stage, which execs the entrypoint: pid 1 of the container's namespace, or
/// the container's first process in a pod's shared one), found without the
/// runtime; it exists before the runtime records a pid. `runc init`'s earlier
/// stages, in the cgroup for a moment but still in the host's pid namespace,
/// are not candidates. `None` when `member` is gone or not the container's, or
/// no candidate is there (yet, or the container shares the host's pid
/// namespace). The pid and its start (ns since the epoch).
pub fn container_init(member: u32, id: &str) -> Option<(u32, u64)> {
    if member == 0 {
        return None;
    }
    let cgroups = std::fs::read_to_string(format!("/proc/{member}/cgroup")).ok()?;
    let dirs: Vec<String> = cgroups
        .lines()
        .filter(|l| cgroup_names(l, id))
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            Some(match controllers {
                "" => vec![
                    format!("/sys/fs/cgroup{path}"),
                    format!("/sys/fs/cgroup/unified{path}"),
                ],
                c => vec![format!("/sys/fs/cgroup/{c}{path}")],
            })
        })
        .flatten()
        .collect();
    let procs = dirs
        .iter()
        .find_map(|d| std::fs::read_to_string(format!("{d}/cgroup.procs")).ok())?;
    procs
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|st| status_field(&st, "NSpid:").map(in_child_pid_ns))
                .unwrap_or(false)
        })
        .filter_map(|pid| Stat::read(pid).map(|st| (st.starttime, pid)))
        .min()
        .map(|(ticks, pid)| (pid, ticks_to_epoch_ns(ticks)))
}

/// Whether an `NSpid:` value (`<host pid>\t…\t<pid in the innermost
/// namespace>`) is of a process inside a pid namespace below the host's.
fn in_child_pid_ns(nspid: &str) -> bool {
    nspid.split_whitespace().count() >= 2
}

/// Whether a `/proc/<pid>/cgroup` text puts the process in container `id`'s
/// cgroup on some hierarchy: a path component that is `id` (`/default/<id>`,
/// `/kubepods/…/<id>`) or ends in `-<id>` or `-<id>.scope` (`libpod-<id>`,
/// `cri-containerd-<id>.scope`, `docker-<id>.scope`, `crio-<id>.scope`).
pub fn cgroup_names(cgroup_text: &str, id: &str) -> bool {
    if id.is_empty() {
        return false;
    }
    let dash = format!("-{id}");
    let scope = format!("-{id}.scope");
    cgroup_text
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .flat_map(|path| path.split('/'))
        .any(|c| c == id || c.ends_with(&dash) || c.ends_with(&scope))
}

/// Whether process `pid` still exists.
pub fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// This host's name (`/proc/sys/kernel/hostname`), empty when unreadable.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_an_awkward_comm() {
        let line = "4242 (a) b (c)) S 4200 4242 7 34816 4242 4194560 120 0 0 0 \
                    11 22 0 0 20 0 1 0 9999 12345678 333 18446744073709551615 \
                    94000000000000 94000000100000 140720000000000";
        assert_eq!(
            Stat::parse(line),
            Some(Stat {
                comm: "a) b (c)".into(),
                state: 'S',
                ppid: 4200,
                pgrp: 4242,
                session: 7,
                tty_nr: 34816,
                utime: 11,
                stime: 22,
                starttime: 9999,
                rss_pages: 333,
                startstack: 140720000000000,
            })
        );
        assert_eq!(Stat::parse("4242 (cut) S 1 2"), None);
        assert_eq!(Stat::parse("no parentheses"), None);
    }

    #[test]
    fn own_process() {
        let me = Stat::read_self().expect("own stat");
        assert_eq!(
            Stat::read(std::process::id()).map(|s| s.ppid),
            Some(me.ppid)
        );
        assert!(me.rss_pages > 0);
        assert!(self_status_kib("VmRSS:").is_some_and(|k| k > 0));
        assert!(alive(std::process::id()));
        assert_eq!(status_field("Name:\tx\nUid:\t0\t1\n", "Uid:"), Some("0\t1"));
    }

    #[test]
    fn a_cgroup_names_its_container_by_whole_components() {
        let hybrid = "12:memory:/default/web\n0::/default/web\n";
        assert!(cgroup_names(hybrid, "web"));
        assert!(!cgroup_names(hybrid, "we"));
        assert!(!cgroup_names("0::/default/webserver\n", "web"));
        let id = "ab".repeat(32);
        for path in [
            format!("/libpod_parent/libpod-{id}"),
            format!("/system.slice/docker-{id}.scope"),
            format!("/kubepods.slice/kubepods-besteffort.slice/cri-containerd-{id}.scope"),
            format!("/kubepods/besteffort/pod1234/{id}"),
        ] {
            assert!(cgroup_names(&format!("0::{path}\n"), &id), "{path}");
        }
        assert!(!cgroup_names(
            &format!("0::/libpod_parent/conmon-{id}x\n"),
            &id
        ));
        assert!(!cgroup_names("0::/\n", ""));
    }

    #[test]
    fn processes_in_a_pid_namespace_below_the_hosts() {
        assert!(in_child_pid_ns("4242\t1"));
        assert!(in_child_pid_ns("4242\t7"));
        assert!(in_child_pid_ns("4242 17 1"));
        assert!(!in_child_pid_ns("4242"), "the host's namespace");
        assert!(!in_child_pid_ns(""));
        // this test's own process is no container's
        assert_eq!(container_init(std::process::id(), "web"), None);
        assert_eq!(container_init(0, "web"), None);
    }
}
