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
}

impl Stat {
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
                    11 22 0 0 20 0 1 0 9999 12345678 333 18446744073709551615";
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
}
