//! Every metric the agent exports, declared once: name, kind, unit, help and
//! label names ([`Metric`]). Names mirror Falco's metrics under the
//! `falco_learn_` namespace; label names are Falco's (`rule_name`, `priority`,
//! `source`). Emission goes through [`Metric`]'s handle constructors (which
//! check the labels in debug builds), from [`crate::telemetry`] and
//! [`crate::outputs`].
//!
//! Adding a metric: declare a `pub const X: Metric` here, add it to [`ALL`],
//! emit it (usually a method on [`crate::telemetry::Telemetry`]); the tests
//! (`enforcer/tests/telemetry.rs`) fail until it is emitted with exactly its
//! declared labels and its name follows `falco_learn_<noun>_<unit>[_total]`.
//! A dashboard panel on it is checked by `tests/dashboard.rs`.

use metrics::{Counter, Gauge, Histogram, SharedString, Unit};

/// What a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Only goes up; the name ends in `_total`.
    Counter,
    Gauge,
    Histogram,
}

/// A declared metric.
#[derive(Debug)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    /// `Seconds` or `Bytes` put the unit in the name (`_seconds`, `_bytes`).
    pub unit: Option<Unit>,
    pub help: &'static str,
    /// Label names, in the order values are given.
    pub labels: &'static [&'static str],
}

type Labels<'a> = &'a [(&'static str, SharedString)];

impl Metric {
    fn key(&self, labels: Labels<'_>) -> Vec<metrics::Label> {
        debug_assert_eq!(
            labels.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            self.labels,
            "labels of {}",
            self.name
        );
        labels
            .iter()
            .map(|(k, v)| metrics::Label::new(*k, v.clone()))
            .collect()
    }

    /// The counter with these label values (registered on the recorder installed now).
    pub fn counter(&self, labels: Labels<'_>) -> Counter {
        debug_assert_eq!(self.kind, Kind::Counter, "{}", self.name);
        metrics::counter!(self.name, self.key(labels))
    }

    /// The gauge with these label values.
    pub fn gauge(&self, labels: Labels<'_>) -> Gauge {
        debug_assert_eq!(self.kind, Kind::Gauge, "{}", self.name);
        metrics::gauge!(self.name, self.key(labels))
    }

    /// The histogram with these label values.
    pub fn histogram(&self, labels: Labels<'_>) -> Histogram {
        debug_assert_eq!(self.kind, Kind::Histogram, "{}", self.name);
        metrics::histogram!(self.name, self.key(labels))
    }

    /// Why the name breaks `falco_learn_<noun>_<unit>[_total]`, if it does:
    /// snake case under `falco_learn_`, a noun and a unit word (one word
    /// before `_total` is both),
    /// `_total` exactly on counters, the unit's word (`_seconds`, `_bytes`)
    /// before it; `_info` for an info gauge.
    pub fn name_problem(&self) -> Option<String> {
        let Some(rest) = self.name.strip_prefix("falco_learn_") else {
            return Some("does not start with falco_learn_".into());
        };
        let words: Vec<&str> = rest.split('_').collect();
        if words.iter().any(|w| {
            w.is_empty()
                || !w
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        }) {
            return Some("is not snake case (a-z, 0-9, single underscores)".into());
        }
        let total = words.last() == Some(&"total");
        if total != (self.kind == Kind::Counter) {
            return Some(if total {
                "ends in _total but is not a counter".into()
            } else {
                "is a counter and does not end in _total".into()
            });
        }
        let body = &words[..words.len() - usize::from(total)];
        // a counter's noun is its unit (`events_total`); a gauge names both
        if body.len() < if total { 1 } else { 2 } {
            return Some("needs a noun and a unit (e.g. events_total, cache_entries)".into());
        }
        let want = match self.unit {
            Some(Unit::Seconds) => Some("seconds"),
            Some(Unit::Bytes) => Some("bytes"),
            _ => None,
        };
        match (want, body.last()) {
            (Some(w), Some(&last)) if w != last => {
                Some(format!("has unit {w} and does not end in it"))
            }
            (None, Some(&last)) if ["seconds", "bytes"].contains(&last) => {
                Some(format!("ends in {last} and declares no such unit"))
            }
            _ => None,
        }
    }
}

const fn counter(
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
) -> Metric {
    Metric {
        name,
        kind: Kind::Counter,
        unit: None,
        help,
        labels,
    }
}

const fn gauge(
    name: &'static str,
    unit: Option<Unit>,
    help: &'static str,
    labels: &'static [&'static str],
) -> Metric {
    Metric {
        name,
        kind: Kind::Gauge,
        unit,
        help,
        labels,
    }
}

/// Events received, by `kind` (evt.type, the one vocabulary of event kinds).
pub const EVENTS: Metric = counter(
    "falco_learn_events_total",
    "Events received from the source, by kind (evt.type)",
    &["kind"],
);
/// Events lost, by `kind` (evt.type, or `any`) and `stage`
/// (`kernel_ringbuf`; `kernel_args`: reported without the arguments the kernel could not
/// read, or not at all; `decode`).
pub const DROPS: Metric = counter(
    "falco_learn_drops_total",
    "Events lost, by kind (evt.type or any) and stage",
    &["kind", "stage"],
);
/// Alerts raised (rules, profile anomalies, drop alerts), by `rule_name`,
/// `priority`, `source`.
pub const RULE_MATCHES: Metric = counter(
    "falco_learn_rule_matches_total",
    "Alerts raised by rule_name, priority and source",
    &["rule_name", "priority", "source"],
);
/// Profile anomalies, by `image` and `dimension` (exec, outbound, write).
pub const ANOMALIES: Metric = counter(
    "falco_learn_anomalies_total",
    "Profile anomalies by image and dimension",
    &["image", "dimension"],
);
/// Images without a profile (evaluated with the default rules only), by
/// `image`, counted when first seen.
pub const UNPROFILED: Metric = counter(
    "falco_learn_unprofiled_events_total",
    "Images seen without a profile, by image",
    &["image"],
);
/// Loaded profiles.
pub const PROFILES_LOADED: Metric =
    gauge("falco_learn_profiles_loaded", None, "Profiles loaded", &[]);
/// Profile files that could not be loaded (bad YAML or entry, unreadable,
/// generated rules that do not load, a second profile of an image), by `file`;
/// counted at each load (start, SIGHUP). Such a file is skipped and logged with
/// its file:line; every other profile is enforced.
pub const PROFILES_FAILED: Metric = counter(
    "falco_learn_profiles_failed_total",
    "Profile files skipped because they could not be loaded, by file (at each load)",
    &["file"],
);
/// Entries per profile, by `image` and `dimension`.
pub const PROFILE_ENTRIES: Metric = gauge(
    "falco_learn_profile_entries",
    None,
    "Entries per profile by image and dimension",
    &["image", "dimension"],
);
/// When each loaded profile last learned something new (seconds since the epoch), by `image`.
pub const PROFILE_LAST_NEW: Metric = gauge(
    "falco_learn_profile_last_new_behaviour_timestamp_seconds",
    Some(Unit::Seconds),
    "When each profile last learned something new (Unix time)",
    &["image"],
);
/// How many events each loaded profile was learned from, by `image`.
pub const PROFILE_LEARNED_EVENTS: Metric = gauge(
    "falco_learn_profile_learned_events",
    None,
    "Events each profile was learned from",
    &["image"],
);
/// Alerts delivered per output (`output`: stdout, file, syslog, http, program).
pub const ALERTS_OUT: Metric = counter(
    "falco_learn_alerts_output_total",
    "Alerts delivered per output",
    &["output"],
);
/// Alerts an output failed to deliver (after retries), by `output` and `reason`
/// (one of [`FAILURE_REASONS`]). Per output, every alert the engine emitted is
/// counted exactly once: delivered, or failed with one reason.
pub const ALERTS_FAILED: Metric = counter(
    "falco_learn_alerts_output_failed_total",
    "Alerts an output did not deliver, by output and reason",
    &["output", "reason"],
);
/// Time to evaluate one event against rules and profiles (seconds), measured on one
/// event in [`EVAL_TIMED_EVERY`] (its `_count` counts the timed events, not all).
pub const EVAL_LATENCY: Metric = Metric {
    name: "falco_learn_evaluation_latency_seconds",
    kind: Kind::Histogram,
    unit: Some(Unit::Seconds),
    help: "Evaluation time per event, one event in 64 timed",
    labels: &[],
};
/// One event in this many is timed for [`EVAL_LATENCY`].
pub const EVAL_TIMED_EVERY: u64 = 64;
/// Bucket bounds of [`EVAL_LATENCY`] (seconds).
pub const EVAL_LATENCY_BUCKETS: &[f64] = &[
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2,
];
/// Process CPU time so far (seconds, user+system).
pub const CPU_SECONDS: Metric = gauge(
    "falco_learn_process_cpu_seconds",
    Some(Unit::Seconds),
    "Process CPU time so far, user+system (use rate())",
    &[],
);
/// Resident memory (bytes).
pub const RSS_BYTES: Metric = gauge(
    "falco_learn_process_resident_memory_bytes",
    Some(Unit::Bytes),
    "Process resident memory",
    &[],
);
/// Build information (`version`), always 1.
pub const BUILD_INFO: Metric = gauge(
    "falco_learn_build_info",
    None,
    "Build information",
    &["version"],
);
/// Container metadata cache entries of the runtime resolver (a leak shows as
/// growth with container churn).
pub const CONTAINER_CACHE: Metric = gauge(
    "falco_learn_container_cache_entries",
    None,
    "Container metadata cache entries",
    &[],
);
/// Runtime metadata lookups by `result` (resolved, not_found, unreachable,
/// timeout, failed).
pub const RUNTIME_LOOKUPS: Metric = counter(
    "falco_learn_runtime_lookups_total",
    "Container runtime metadata lookups by result",
    &["result"],
);
/// A container's first events wait for its metadata; these were evaluated without it, by
/// `reason` (`timeout`: `container_runtimes.hold` ran out; `overflow`: 4 096 events were
/// held already): no image, so no profile judged them and enforce-kill killed nothing.
/// Events of a container whose lookup failed at once are not counted here (the lookups'
/// results are, in `falco_learn_runtime_lookups_total`).
pub const RUNTIME_HOLD_RELEASED: Metric = counter(
    "falco_learn_runtime_hold_released_total",
    "Events held for their container's metadata and evaluated without it (no profile judged \
     them), by reason (timeout, overflow)",
    &["reason"],
);
/// SIGHUP reloads by `result` (ok, error).
pub const RELOADS: Metric = counter(
    "falco_learn_reloads_total",
    "SIGHUP reloads by result",
    &["result"],
);
/// enforce-kill: execs killed in the kernel, by `image`.
pub const KILLS: Metric = counter(
    "falco_learn_kills_total",
    "enforce-kill: execs outside the image's profile killed in the kernel, by image",
    &["image"],
);
/// enforce-kill: execs killed in the kernel whose events were lost (the ring buffer was
/// full), by `image` (`<NA>` when the cgroup was no longer bound); also in [`KILLS`].
pub const KILLS_UNREPORTED: Metric = counter(
    "falco_learn_kills_unreported_total",
    "enforce-kill: execs killed in the kernel whose events were lost (ring buffer full), by image",
    &["image"],
);
/// enforce-kill: execs killed from userspace, by `image` and `result` (`killed`; `failed`:
/// the signal was refused, e.g. without `CAP_KILL`): the kernel could not judge them
/// (their container's cgroup was not under its profile yet), so they ran until then.
pub const LATE_KILLS: Metric = counter(
    "falco_learn_late_kills_total",
    "enforce-kill: execs outside the image's profile that ran before their container was under \
     its profile in the kernel, killed from userspace, by image and result (killed, failed)",
    &["image", "result"],
);
/// enforce-kill: containers under enforcement now.
pub const KILL_CONTAINERS: Metric = gauge(
    "falco_learn_kill_enforced_containers",
    None,
    "enforce-kill: containers whose execs are under their image's profile now",
    &[],
);
/// Events dropped in the kernel on purpose, by `kind` (record kind) and `reason`
/// (`rules`: no loaded rule needs it; `profile`: the container's profile allows it and no
/// loaded rule can match it; `unprofiled`: no profile applies to the process and no loaded
/// rule can match it; both with `engine.kernel_filter`).
pub const KERNEL_FILTERED: Metric = counter(
    "falco_learn_kernel_filtered_total",
    "Events dropped in the kernel on purpose, by kind and reason (rules: no loaded rule needs it; profile: the container's profile allows it and no rule can match it; unprofiled: no profile applies to the process and no rule can match it)",
    &["kind", "reason"],
);
/// engine.kernel_filter: containers whose profile the kernel filter applies now.
pub const KERNEL_FILTER_CONTAINERS: Metric = gauge(
    "falco_learn_kernel_filter_containers",
    None,
    "Containers whose write-opens and outbound connections the kernel filters by their image's profile now",
    &[],
);

/// Learning (`learn --metrics-listen`), per `image`: events observed.
pub const LEARNING_EVENTS: Metric = counter(
    "falco_learn_learning_events_total",
    "Learning: events observed per image",
    &["image"],
);
/// Learning: events that taught the profile something new, per `image`.
pub const LEARNING_NEW: Metric = counter(
    "falco_learn_learning_new_behaviour_total",
    "Learning: events that taught something new, per image",
    &["image"],
);
/// Learning: seconds since the last new behaviour (event time), per `image`.
pub const LEARNING_SINCE_NEW: Metric = gauge(
    "falco_learn_learning_since_new_behaviour_seconds",
    Some(Unit::Seconds),
    "Learning: seconds since the last new behaviour per image (event time)",
    &["image"],
);
/// Learning: entries under `review:` (drift, the writes that produced it, exec sessions).
pub const LEARNING_REVIEW: Metric = gauge(
    "falco_learn_learning_review_entries",
    None,
    "Learning: entries under review (drift, their writes, exec sessions) per image",
    &["image"],
);
/// Learning: 1 when the profile is tainted (a default rule fired, or drift), else 0.
pub const LEARNING_TAINTED: Metric = gauge(
    "falco_learn_learning_tainted",
    None,
    "Learning: 1 when the image's profile is tainted",
    &["image"],
);
/// Learning: container starts observed (0: start-up is not learned).
pub const LEARNING_STARTS: Metric = gauge(
    "falco_learn_learning_starts_observed",
    None,
    "Learning: container starts observed per image",
    &["image"],
);

/// The metrics of `learn` (not the agent's: [`ALL`] is what `run` exports).
pub const LEARNING: &[&Metric] = &[
    &LEARNING_EVENTS,
    &LEARNING_NEW,
    &LEARNING_SINCE_NEW,
    &LEARNING_REVIEW,
    &LEARNING_TAINTED,
    &LEARNING_STARTS,
];

/// Every metric above.
pub const ALL: &[&Metric] = &[
    &EVENTS,
    &DROPS,
    &RULE_MATCHES,
    &ANOMALIES,
    &UNPROFILED,
    &PROFILES_LOADED,
    &PROFILES_FAILED,
    &PROFILE_ENTRIES,
    &PROFILE_LAST_NEW,
    &PROFILE_LEARNED_EVENTS,
    &ALERTS_OUT,
    &ALERTS_FAILED,
    &EVAL_LATENCY,
    &CPU_SECONDS,
    &RSS_BYTES,
    &BUILD_INFO,
    &CONTAINER_CACHE,
    &RUNTIME_LOOKUPS,
    &RUNTIME_HOLD_RELEASED,
    &RELOADS,
    &KILLS,
    &KILLS_UNREPORTED,
    &LATE_KILLS,
    &KILL_CONTAINERS,
    &KERNEL_FILTERED,
    &KERNEL_FILTER_CONTAINERS,
];

/// The declared metric named `name`.
pub fn find(name: &str) -> Option<&'static Metric> {
    ALL.iter().copied().find(|m| m.name == name)
}

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

/// Describe every metric (HELP lines, units) on the installed recorder.
pub fn describe() {
    describe_these(ALL);
}

/// Describe `these` metrics on the installed recorder.
pub fn describe_these(these: &[&Metric]) {
    for m in these {
        let (name, help) = (m.name, m.help);
        match (m.kind, m.unit) {
            (Kind::Counter, Some(u)) => metrics::describe_counter!(name, u, help),
            (Kind::Counter, None) => metrics::describe_counter!(name, help),
            (Kind::Gauge, Some(u)) => metrics::describe_gauge!(name, u, help),
            (Kind::Gauge, None) => metrics::describe_gauge!(name, help),
            (Kind::Histogram, Some(u)) => metrics::describe_histogram!(name, u, help),
            (Kind::Histogram, None) => metrics::describe_histogram!(name, help),
        }
    }
}

/// (user+system CPU seconds, RSS bytes) of this process from /proc/self/stat.
pub fn process_usage() -> Option<(f64, u64)> {
    let st = falco_learn_probe::procfs::Stat::read_self()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    Some(((st.utime + st.stime) as f64 / tck, st.rss_pages * page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_usage_is_readable() {
        let (cpu, rss) = process_usage().expect("usage");
        assert!(cpu >= 0.0);
        assert!(rss > 1024 * 1024, "rss {rss}");
    }

    /// Every declared name follows the convention, once.
    #[test]
    fn names_follow_the_convention() {
        let every: Vec<&Metric> = ALL.iter().chain(LEARNING).copied().collect();
        for m in &every {
            assert_eq!(m.name_problem(), None, "{}", m.name);
        }
        let mut names: Vec<&str> = every.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), every.len(), "a name declared twice");
        for m in LEARNING {
            assert!(m.name.starts_with("falco_learn_learning_"), "{}", m.name);
        }
    }

    /// The check catches each way of breaking the convention.
    #[test]
    fn broken_names_are_caught() {
        let m = |name, kind, unit| Metric {
            name,
            kind,
            unit,
            help: "",
            labels: &[],
        };
        for (bad, kind, unit, why) in [
            (
                "flx_events_total",
                Kind::Counter,
                None,
                "does not start with falco_learn_",
            ),
            (
                "falco_learn_Events_total",
                Kind::Counter,
                None,
                "is not snake case",
            ),
            (
                "falco_learn_events",
                Kind::Counter,
                None,
                "is a counter and does not end in _total",
            ),
            (
                "falco_learn_events_total",
                Kind::Gauge,
                None,
                "ends in _total but is not a counter",
            ),
            (
                "falco_learn_total",
                Kind::Counter,
                None,
                "needs a noun and a unit",
            ),
            (
                "falco_learn_latency_ms",
                Kind::Histogram,
                Some(Unit::Seconds),
                "has unit seconds",
            ),
            (
                "falco_learn_uptime_seconds",
                Kind::Gauge,
                None,
                "ends in seconds and declares",
            ),
        ] {
            let p = m(bad, kind, unit).name_problem().unwrap_or_default();
            assert!(p.starts_with(why), "{bad}: {p}");
        }
    }
}
