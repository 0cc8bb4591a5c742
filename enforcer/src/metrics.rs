//! Every metric falco-learn exports, in one place (names, labels, meaning).
//! Names mirror Falco's metrics under the `falco_learn_` namespace; label names
//! are Falco's (`rule_name`, `priority`, `source`). The dashboard test checks
//! that every metric the Grafana dashboard queries is listed here and exported.

/// Events received from the probe, by `kind` (evt.type).
pub const EVENTS: &str = "falco_learn_events_total";
/// Events lost, by `kind` and `stage` (`kernel_ringbuf`, `probe_queue`, `decode`).
pub const DROPS: &str = "falco_learn_drops_total";
/// Rule matches, by `rule_name`, `priority`, `source` (default and learned rules).
pub const RULE_MATCHES: &str = "falco_learn_rule_matches_total";
/// Profile anomalies, by `image` and `dimension` (exec, outbound, write).
pub const ANOMALIES: &str = "falco_learn_anomalies_total";
/// Events of images without a profile (evaluated with the default rules only), by `image`.
pub const UNPROFILED: &str = "falco_learn_unprofiled_events_total";
/// Loaded profiles.
pub const PROFILES_LOADED: &str = "falco_learn_profiles_loaded";
/// Profile files that could not be loaded (bad YAML or entry, unreadable,
/// generated rules that do not load, a second profile of an image), by `file`;
/// counted at each load (start, SIGHUP). Such a file is skipped and logged with
/// its file:line; every other profile is enforced.
pub const PROFILES_FAILED: &str = "falco_learn_profiles_failed_total";
/// Entries per profile, by `image` and `dimension`.
pub const PROFILE_ENTRIES: &str = "falco_learn_profile_entries";
/// When each loaded profile last learned something new (seconds since the
/// epoch), and how many events it was learned from, by `image`.
pub const PROFILE_LAST_NEW: &str = "falco_learn_profile_last_new_behaviour_timestamp_seconds";
pub const PROFILE_LEARNED_EVENTS: &str = "falco_learn_profile_learned_events";
/// Alerts delivered per output (`output`: stdout, file, syslog, http, program).
pub const ALERTS_OUT: &str = "falco_learn_alerts_output_total";
/// Alerts an output failed to deliver (after retries), by `output` and `reason`
/// (one of [`FAILURE_REASONS`]). Per output, every alert the engine emitted is
/// counted exactly once: delivered, or failed with one reason.
pub const ALERTS_FAILED: &str = "falco_learn_alerts_output_failed_total";

/// `reason` values of [`ALERTS_FAILED`].
pub mod reason {
    /// The output's queue was full (the output is slow, stuck or down): the
    /// alert was dropped without waiting.
    pub const QUEUE_FULL: &str = "queue_full";
    /// Writing failed: an I/O error, or the program closed its input or could
    /// not be started.
    pub const WRITE: &str = "write";
    /// The output did not take the alert in time (`outputs.*.timeout`; a
    /// per-alert program past it is killed).
    pub const TIMEOUT: &str = "timeout";
    /// Sending failed: the HTTP receiver answered with an error or could not
    /// be reached, or the syslog daemon refused the message.
    pub const SEND: &str = "send";
    /// The syslog daemon is not there (reconnected at most once a second).
    pub const CONNECT: &str = "connect";
    /// Still queued or in flight when the shutdown deadline
    /// (`outputs.shutdown_timeout`) passed.
    pub const SHUTDOWN: &str = "shutdown";
    /// The output's worker is gone (it crashed); nothing can be delivered.
    pub const CLOSED: &str = "closed";
}

/// Every `reason` of [`ALERTS_FAILED`].
pub const FAILURE_REASONS: &[&str] = &[
    reason::QUEUE_FULL,
    reason::WRITE,
    reason::TIMEOUT,
    reason::SEND,
    reason::CONNECT,
    reason::SHUTDOWN,
    reason::CLOSED,
];
/// Time to evaluate one event against rules and profiles (seconds).
pub const EVAL_LATENCY: &str = "falco_learn_evaluation_latency_seconds";
/// Process CPU time (seconds, user+system) and resident memory (bytes).
pub const CPU_SECONDS: &str = "falco_learn_process_cpu_seconds";
pub const RSS_BYTES: &str = "falco_learn_process_resident_memory_bytes";
/// Build information (`version`), always 1.
pub const BUILD_INFO: &str = "falco_learn_build_info";
/// Container metadata cache of the runtime resolver: entries now (a leak shows
/// as growth with container churn), and lookups by `result` (resolved,
/// not_found, unreachable, timeout, failed).
pub const CONTAINER_CACHE: &str = "falco_learn_container_cache_entries";
pub const RUNTIME_LOOKUPS: &str = "falco_learn_runtime_lookups_total";
/// Successful / failed SIGHUP reloads.
pub const RELOADS: &str = "falco_learn_reloads_total";
/// Learning (`falco-learn learn`): events observed and behaviour learned per image,
/// seconds since the last new behaviour per image.
pub const LEARN_EVENTS: &str = "falco_learn_learning_events_total";
pub const LEARN_NEW: &str = "falco_learn_learning_new_behaviour_total";
pub const LEARN_SINCE_NEW: &str = "falco_learn_learning_seconds_since_new_behaviour";

/// enforce-kill: execs killed in the kernel, by image; containers under
/// enforcement now (gauge).
pub const KILLS: &str = "falco_learn_kills_total";
pub const KILL_CONTAINERS: &str = "falco_learn_kill_enforced_containers";

/// Every metric name above (for the dashboard test and docs).
pub const ALL: &[&str] = &[
    EVENTS,
    DROPS,
    RULE_MATCHES,
    ANOMALIES,
    UNPROFILED,
    PROFILES_LOADED,
    PROFILES_FAILED,
    PROFILE_ENTRIES,
    PROFILE_LAST_NEW,
    PROFILE_LEARNED_EVENTS,
    ALERTS_OUT,
    ALERTS_FAILED,
    EVAL_LATENCY,
    CPU_SECONDS,
    RSS_BYTES,
    BUILD_INFO,
    RELOADS,
    CONTAINER_CACHE,
    RUNTIME_LOOKUPS,
    LEARN_EVENTS,
    LEARN_NEW,
    LEARN_SINCE_NEW,
    KILLS,
    KILL_CONTAINERS,
];

/// Describe every metric (HELP lines) on the installed recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(EVENTS, "Events received from the probe, by kind");
    describe_counter!(
        KILLS,
        "enforce-kill: execs outside the image's profile killed in the kernel, by image"
    );
    describe_gauge!(
        KILL_CONTAINERS,
        "enforce-kill: containers whose execs are under their image's profile now"
    );
    describe_counter!(DROPS, "Events lost, by kind and stage");
    describe_counter!(
        RULE_MATCHES,
        "Rule matches by rule_name, priority and source"
    );
    describe_counter!(ANOMALIES, "Profile anomalies by image and dimension");
    describe_counter!(UNPROFILED, "Events of images without a profile, by image");
    describe_gauge!(PROFILES_LOADED, "Profiles loaded");
    describe_counter!(
        PROFILES_FAILED,
        "Profile files skipped because they could not be loaded, by file (at each load)"
    );
    describe_gauge!(
        PROFILE_ENTRIES,
        "Entries per profile by image and dimension"
    );
    describe_gauge!(
        PROFILE_LAST_NEW,
        Unit::Seconds,
        "When each profile last learned something new (Unix time)"
    );
    describe_gauge!(
        PROFILE_LEARNED_EVENTS,
        "Events each profile was learned from"
    );
    describe_counter!(ALERTS_OUT, "Alerts delivered per output");
    describe_counter!(
        ALERTS_FAILED,
        "Alerts an output did not deliver, by output and reason"
    );
    describe_histogram!(EVAL_LATENCY, Unit::Seconds, "Evaluation time per event");
    describe_gauge!(
        CPU_SECONDS,
        Unit::Seconds,
        "Process CPU time so far, user+system (use rate())"
    );
    describe_gauge!(RSS_BYTES, Unit::Bytes, "Process resident memory");
    describe_gauge!(BUILD_INFO, "Build information");
    describe_gauge!(CONTAINER_CACHE, "Container metadata cache entries");
    describe_counter!(
        RUNTIME_LOOKUPS,
        "Container runtime metadata lookups by result"
    );
    describe_counter!(RELOADS, "SIGHUP reloads by result");
    describe_counter!(LEARN_EVENTS, "Learning: events observed per image");
    describe_counter!(LEARN_NEW, "Learning: new behaviour learned per image");
    describe_gauge!(
        LEARN_SINCE_NEW,
        Unit::Seconds,
        "Learning: seconds since the last new behaviour per image"
    );
}

/// (user+system CPU seconds, RSS bytes) of this process from /proc/self/stat.
pub fn process_usage() -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // fields after comm: state(0) … utime(11) stime(12) … rss(21)
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let rss_pages: u64 = f.get(21)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    Some(((utime + stime) as f64 / tck, rss_pages * page))
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_usage_is_readable() {
        let (cpu, rss) = super::process_usage().expect("usage");
        assert!(cpu >= 0.0);
        assert!(rss > 1024 * 1024, "rss {rss}");
        assert!(super::ALL.iter().all(|m| m.starts_with("falco_learn_")));
    }
}
