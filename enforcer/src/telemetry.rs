//! The agent's metrics, emitted in one place: the pipeline calls these
//! methods, nothing else names a metric. Handles without per-event labels
//! are registered once ([`Telemetry::new`]); with no recorder installed
//! (`replay`) every call is a no-op.

use crate::metrics as m;
use crate::source::{Loss, RuntimeStats};
use crate::{Cause, Engine, Raised, Verdict};
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
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            Matcher::Full(m::EVAL_LATENCY.into()),
            &[
                1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2,
            ],
        )
        .map_err(|e| TelemetryError::Serve {
            addr,
            err: e.to_string(),
        })?
        .install()
        .map_err(|e| TelemetryError::Serve {
            addr,
            err: e.to_string(),
        })?;
    m::describe();
    Ok(addr)
}

/// The pipeline's metric handles.
pub struct Telemetry {
    events: Vec<Counter>,
    latency: Histogram,
    kill_containers: Gauge,
    /// Last running totals of [`Loss`]es, to count differences.
    prev_losses: Vec<(Loss, u64)>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl Telemetry {
    /// Register the fixed handles (on the recorder installed now, if any).
    pub fn new() -> Telemetry {
        metrics::gauge!(m::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        Telemetry {
            events: EventType::ALL
                .iter()
                .map(|t| metrics::counter!(m::EVENTS, "kind" => t.as_str()))
                .collect(),
            latency: metrics::histogram!(m::EVAL_LATENCY),
            kill_containers: metrics::gauge!(m::KILL_CONTAINERS),
            prev_losses: Vec::new(),
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
    pub fn raised(&self, r: &Raised) {
        let a = &r.alert;
        metrics::counter!(m::RULE_MATCHES, "rule_name" => a.rule.clone(),
            "priority" => a.priority.clone(), "source" => a.source.clone())
        .increment(1);
    }

    /// What the verdict says beyond its alerts: anomaly, kill, unprofiled image.
    pub fn verdict(&self, v: &Verdict, ev: &Event) {
        if let Some(a) = &v.anomaly {
            metrics::counter!(m::ANOMALIES, "image" => a.image.clone(), "dimension" => a.dimension.as_str())
                .increment(1);
        }
        if v.killed {
            metrics::counter!(m::KILLS, "image" => ev.container.image()).increment(1);
        }
        if let Some(img) = &v.new_unprofiled {
            metrics::counter!(m::UNPROFILED, "image" => img.clone()).increment(1);
        }
        debug_assert!(v.alerts.iter().all(|r| r.cause != Cause::Internal));
    }

    /// The source's running loss totals: count what is new since the last
    /// call; returns the events lost that count towards a drop alert.
    pub fn losses(&mut self, now: &[Loss]) -> u64 {
        let mut alerting = 0;
        for l in now {
            let prev = match self
                .prev_losses
                .iter_mut()
                .find(|(p, _)| p.kind == l.kind && p.stage == l.stage)
            {
                Some((_, prev)) => prev,
                None => {
                    // exists (at 0) from the start, so dashboards see it
                    metrics::counter!(m::DROPS, "kind" => l.kind, "stage" => l.stage.as_str())
                        .increment(0);
                    self.prev_losses.push((l.clone(), 0));
                    let last = self.prev_losses.len() - 1;
                    &mut self.prev_losses[last].1
                }
            };
            let d = l.total.saturating_sub(*prev);
            *prev = l.total;
            if d > 0 {
                metrics::counter!(m::DROPS, "kind" => l.kind, "stage" => l.stage.as_str())
                    .increment(d);
                if l.stage.alerts() {
                    alerting += d;
                }
            }
        }
        alerting
    }

    /// The loaded profiles (at start and after each reload).
    pub fn profiles(&self, engine: &Engine) {
        metrics::gauge!(m::PROFILES_LOADED).set(engine.profile_count() as f64);
        // after each load (start, SIGHUP): the files that were skipped
        for f in engine.failed_profiles() {
            metrics::counter!(m::PROFILES_FAILED, "file" => f.file.clone()).increment(1);
        }
        for (img, dim, n) in engine.profile_sizes() {
            metrics::gauge!(m::PROFILE_ENTRIES, "image" => img, "dimension" => dim.as_str())
                .set(n as f64);
        }
        for (img, last_new, events, _tainted) in engine.profile_learning() {
            metrics::gauge!(m::PROFILE_LAST_NEW, "image" => img.clone()).set(last_new as f64 / 1e9);
            metrics::gauge!(m::PROFILE_LEARNED_EVENTS, "image" => img).set(events as f64);
        }
    }

    /// A SIGHUP reload ended.
    pub fn reload(&self, ok: bool) {
        metrics::counter!(m::RELOADS, "result" => if ok { "ok" } else { "error" }).increment(1);
    }

    /// Containers under enforce-kill now.
    pub fn kill_containers(&self, n: usize) {
        self.kill_containers.set(n as f64);
    }

    /// Once a second: the resolver's counters and the process's usage.
    pub fn tick(&self, runtime: Option<RuntimeStats>) {
        if let Some(rs) = runtime {
            metrics::gauge!(m::CONTAINER_CACHE).set(rs.cache_entries as f64);
            for (result, v) in [
                ("resolved", rs.resolved),
                ("not_found", rs.not_found),
                ("unreachable", rs.unreachable),
                ("timeout", rs.timeouts),
                ("failed", rs.failures),
            ] {
                metrics::counter!(m::RUNTIME_LOOKUPS, "result" => result).absolute(v);
            }
        }
        if let Some((cpu, rss)) = m::process_usage() {
            metrics::gauge!(m::CPU_SECONDS).set(cpu);
            metrics::gauge!(m::RSS_BYTES).set(rss as f64);
        }
    }
}
