//! The agent's metrics, emitted in one place: the pipeline calls these
//! methods; the metrics themselves are declared in [`crate::metrics`]. Each
//! handle is registered once (fixed ones in [`Telemetry::new`], labelled ones
//! the first time their label values occur); with no recorder installed
//! (`replay`) every call is a no-op.

use crate::metrics as m;
use crate::source::{Loss, RuntimeStats};
use crate::{Engine, Raised, Verdict};
use ahash::AHashMap;
use falco_learn_event::{Event, EventType};
use metrics::{Counter, Gauge, Histogram};

/// Why the Prometheus endpoint could not be served.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("metrics.listen: {listen:?} is not an address:port: {err}")]
    Listen {
        listen: String,
        err: std::net::AddrParseError,
    },
    #[error("cannot serve metrics on {addr}: {err}")]
    Serve {
        addr: std::net::SocketAddr,
        err: String,
    },
}

/// Install the Prometheus recorder and serve `/metrics` on `listen`.
pub fn serve(listen: &str) -> Result<std::net::SocketAddr, TelemetryError> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let addr: std::net::SocketAddr = listen.parse().map_err(|err| TelemetryError::Listen {
        listen: listen.to_string(),
        err,
    })?;
    let serve_err = |e: metrics_exporter_prometheus::BuildError| TelemetryError::Serve {
        addr,
        err: e.to_string(),
    };
    PrometheusBuilder::new()
        .with_http_listener(addr)
        // histogram samples wait in memory until the upkeep: drain them every second
        .upkeep_timeout(std::time::Duration::from_secs(1))
        .set_buckets_for_metric(
            Matcher::Full(m::EVAL_LATENCY.name.into()),
            m::EVAL_LATENCY_BUCKETS,
        )
        .map_err(serve_err)?
        .install()
        .map_err(serve_err)?;
    m::describe();
    Ok(addr)
}

/// The result label values of [`m::RUNTIME_LOOKUPS`].
const LOOKUP_RESULTS: [&str; 5] = ["resolved", "not_found", "unreachable", "timeout", "failed"];

/// The pipeline's metric handles.
pub struct Telemetry {
    /// By [`EventType::index`].
    events: Vec<Counter>,
    latency: Histogram,
    kill_containers: Gauge,
    filter_containers: Gauge,
    profiles_loaded: Gauge,
    container_cache: Gauge,
    runtime_lookups: [Counter; 5],
    /// timeout, overflow
    hold_released: [Counter; 2],
    cpu: Gauge,
    rss: Gauge,
    reloads_ok: Counter,
    reloads_error: Counter,
    /// Labelled handles, registered when their labels first occur.
    rule_matches: AHashMap<(String, String, String), Counter>,
    anomalies: AHashMap<(String, &'static str), Counter>,
    kills: AHashMap<String, Counter>,
    late_kills: AHashMap<(String, bool), Counter>,
    drops: AHashMap<(&'static str, &'static str), Counter>,
    filtered: AHashMap<(&'static str, &'static str), (Counter, u64)>,
    /// Last running totals of [`Loss`]es, to count differences.
    prev_losses: AHashMap<(&'static str, &'static str), u64>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl Telemetry {
    /// Register the fixed handles (on the recorder installed now, if any).
    pub fn new() -> Telemetry {
        m::BUILD_INFO
            .gauge(&[("version", env!("CARGO_PKG_VERSION").into())])
            .set(1.0);
        let reload = |r: &'static str| m::RELOADS.counter(&[("result", r.into())]);
        Telemetry {
            events: EventType::ALL
                .iter()
                .map(|t| m::EVENTS.counter(&[("kind", t.as_str().into())]))
                .collect(),
            latency: m::EVAL_LATENCY.histogram(&[]),
            kill_containers: m::KILL_CONTAINERS.gauge(&[]),
            filter_containers: m::KERNEL_FILTER_CONTAINERS.gauge(&[]),
            profiles_loaded: m::PROFILES_LOADED.gauge(&[]),
            container_cache: m::CONTAINER_CACHE.gauge(&[]),
            runtime_lookups: LOOKUP_RESULTS
                .map(|r| m::RUNTIME_LOOKUPS.counter(&[("result", r.into())])),
            hold_released: ["timeout", "overflow"]
                .map(|r| m::RUNTIME_HOLD_RELEASED.counter(&[("reason", r.into())])),
            cpu: m::CPU_SECONDS.gauge(&[]),
            rss: m::RSS_BYTES.gauge(&[]),
            reloads_ok: reload("ok"),
            reloads_error: reload("error"),
            rule_matches: AHashMap::new(),
            anomalies: AHashMap::new(),
            kills: AHashMap::new(),
            late_kills: AHashMap::new(),
            drops: AHashMap::new(),
            filtered: AHashMap::new(),
            prev_losses: AHashMap::new(),
        }
    }

    /// One event received.
    pub fn event(&self, ev: &Event) {
        if let Some(c) = self.events.get(ev.event_type().index()) {
            c.increment(1);
        }
    }

    /// One evaluation took `secs`.
    pub fn evaluated(&self, secs: f64) {
        self.latency.record(secs);
    }

    /// An alert went to the outputs.
    pub fn raised(&mut self, r: &Raised) {
        let a = &r.alert;
        let key = (a.rule.clone(), a.priority.clone(), a.source.clone());
        self.rule_matches
            .entry(key)
            .or_insert_with(|| {
                m::RULE_MATCHES.counter(&[
                    ("rule_name", a.rule.clone().into()),
                    ("priority", a.priority.clone().into()),
                    ("source", a.source.clone().into()),
                ])
            })
            .increment(1);
    }

    /// What the verdict says beyond its alerts: anomaly, kill, unprofiled image.
    pub fn verdict(&mut self, v: &Verdict, ev: &Event) {
        if let Some(a) = &v.anomaly {
            let dim = a.dimension.as_str();
            self.anomalies
                .entry((a.image.clone(), dim))
                .or_insert_with(|| {
                    m::ANOMALIES
                        .counter(&[("image", a.image.clone().into()), ("dimension", dim.into())])
                })
                .increment(1);
        }
        if v.killed {
            // a kill in a container whose image is not known (a cgroup below a profiled
            // container's, named like another) counts as the unreported kills do
            let img = ev.container.image_or_na();
            self.kills
                .entry(img.clone())
                .or_insert_with(|| m::KILLS.counter(&[("image", img.into())]))
                .increment(1);
        }
        if let Some(img) = &v.new_unprofiled {
            // once per image: no handle to keep
            m::UNPROFILED
                .counter(&[("image", img.clone().into())])
                .increment(1);
        }
    }

    /// Kills made in the kernel whose events were lost (enforce-kill; the image when the
    /// cgroup is still bound, else `<NA>`): they count as kills, and apart.
    pub fn unreported_kills(&mut self, image: Option<&str>, n: u64) {
        let img = image.unwrap_or("<NA>").to_string();
        self.kills
            .entry(img.clone())
            .or_insert_with(|| m::KILLS.counter(&[("image", img.clone().into())]))
            .increment(n);
        m::KILLS_UNREPORTED
            .counter(&[("image", img.into())])
            .increment(n);
    }

    /// An exec killed from userspace (enforce-kill, `action=killed_late`), or a kill
    /// that failed (`killed` false).
    pub fn late_kill(&mut self, ev: &Event, killed: bool) {
        let img = ev.container.image();
        self.late_kills
            .entry((img.clone(), killed))
            .or_insert_with(|| {
                let result = if killed { "killed" } else { "failed" };
                m::LATE_KILLS.counter(&[("image", img.into()), ("result", result.into())])
            })
            .increment(1);
    }

    /// The source's running loss totals: count what is new since the last
    /// call; returns the events lost that count towards a drop alert. A
    /// (kind, stage) seen for the first time is registered at 0, so
    /// dashboards see it from the start.
    pub fn losses(&mut self, now: &[Loss]) -> u64 {
        let mut alerting = 0;
        for l in now {
            let key = (l.kind, l.stage.as_str());
            let counter = self.drops.entry(key).or_insert_with(|| {
                let c = m::DROPS.counter(&[("kind", key.0.into()), ("stage", key.1.into())]);
                c.increment(0);
                c
            });
            let prev = self.prev_losses.entry(key).or_insert(0);
            let d = l.total.saturating_sub(*prev);
            *prev = l.total;
            if d > 0 {
                counter.increment(d);
                if l.stage.alerts() {
                    alerting += d;
                }
            }
        }
        alerting
    }

    /// The loaded profiles (at start and after each reload).
    pub fn profiles(&self, engine: &Engine) {
        self.profiles_loaded.set(engine.profile_count() as f64);
        // after each load (start, SIGHUP): the files that were skipped
        for f in engine.failed_profiles() {
            m::PROFILES_FAILED
                .counter(&[("file", f.file.clone().into())])
                .increment(1);
        }
        for (img, dim, n) in engine.profile_sizes() {
            m::PROFILE_ENTRIES
                .gauge(&[("image", img.into()), ("dimension", dim.as_str().into())])
                .set(n as f64);
        }
        for (img, last_new, events, _tainted) in engine.profile_learning() {
            m::PROFILE_LAST_NEW
                .gauge(&[("image", img.clone().into())])
                .set(last_new as f64 / 1e9);
            m::PROFILE_LEARNED_EVENTS
                .gauge(&[("image", img.into())])
                .set(events as f64);
        }
    }

    /// A SIGHUP reload ended.
    pub fn reload(&self, ok: bool) {
        if ok {
            self.reloads_ok.increment(1);
        } else {
            self.reloads_error.increment(1);
        }
    }

    /// Containers under enforce-kill now.
    pub fn filter_containers(&self, n: usize) {
        self.filter_containers.set(n as f64);
    }

    /// The source's running totals of events dropped in the kernel on purpose: count
    /// what is new since the last call.
    pub fn kernel_filtered(&mut self, now: &[crate::source::Filtered]) {
        for f in now {
            let (counter, prev) = self.filtered.entry((f.kind, f.reason)).or_insert_with(|| {
                (
                    m::KERNEL_FILTERED
                        .counter(&[("kind", f.kind.into()), ("reason", f.reason.into())]),
                    0,
                )
            });
            let d = f.total.saturating_sub(*prev);
            *prev = f.total;
            counter.increment(d);
        }
    }

    /// Containers under enforce-kill now.
    pub fn kill_containers(&self, n: usize) {
        self.kill_containers.set(n as f64);
    }

    /// Once a second: the resolver's counters and the process's usage.
    pub fn tick(&self, runtime: Option<RuntimeStats>) {
        if let Some(rs) = runtime {
            self.container_cache.set(rs.cache_entries as f64);
            let values = [
                rs.resolved,
                rs.not_found,
                rs.unreachable,
                rs.timeouts,
                rs.failures,
            ];
            for (c, v) in self.runtime_lookups.iter().zip(values) {
                c.absolute(v);
            }
            for (c, v) in self
                .hold_released
                .iter()
                .zip([rs.hold_timeouts, rs.hold_overflow])
            {
                c.absolute(v);
            }
        }
        if let Some((cpu, rss)) = m::process_usage() {
            self.cpu.set(cpu);
            self.rss.set(rss as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use falco_learn_event::EventType;

    /// One vocabulary of event kinds: every probe record kind (the `kind` of
    /// kernel drops) is named as the events it becomes (`evt.type`, the
    /// `kind` of `falco_learn_events_total`).
    #[test]
    fn probe_kinds_are_event_types() {
        for k in falco_learn_probe::KINDS {
            assert!(
                EventType::from_name(k.name()).is_some(),
                "probe kind {:?} is named {:?}, not an evt.type",
                k,
                k.name()
            );
        }
    }
}
