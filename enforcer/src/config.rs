//! The agent's configuration: a YAML file like falco.yaml, every option with a
//! default, unknown keys rejected, and `-o key.path=value` overrides applied on top.

use falco_learn_rules::{Priority, RuleMatching};
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The container runtime section is the probe's own settings type (one set
/// of defaults, in the probe).
pub type ContainerRuntimes = falco_learn_probe::runtime::RuntimeConfig;

/// Keys that held numbers with a unit in their name, now durations under
/// another name: (old key, new key, the old unit as a humantime suffix).
pub const RENAMED_DURATIONS: &[(&str, &str, &str)] = &[
    (
        "outputs.shutdown_timeout_ms",
        "outputs.shutdown_timeout",
        "ms",
    ),
    ("outputs.http.timeout_ms", "outputs.http.timeout", "ms"),
    (
        "outputs.http.connect_timeout_ms",
        "outputs.http.connect_timeout",
        "ms",
    ),
    (
        "outputs.program.timeout_ms",
        "outputs.program.timeout",
        "ms",
    ),
    ("drops.rate_limit_secs", "drops.rate_limit", "s"),
    (
        "container_runtimes.lookup_timeout_ms",
        "container_runtimes.lookup_timeout",
        "ms",
    ),
    (
        "container_runtimes.hold_ms",
        "container_runtimes.hold",
        "ms",
    ),
];

/// Keys that no longer exist, and why: a configuration that sets one is refused
/// with the reason (nothing is silently ignored).
pub const REMOVED_KEYS: &[(&str, &str)] = &[(
    "engine.queue",
    "the engine reads the kernel ring buffer on its own thread, with no queue between \
     them; what waits is in the ring buffer, sized by engine.ring_mib",
)];

/// `priority` keys: Falco's names, any case (`Warning`, `WARNING`).
fn priority<'de, D: Deserializer<'de>>(d: D) -> Result<Priority, D::Error> {
    let s = String::deserialize(d)?;
    Priority::parse(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "unknown priority {s:?} (Emergency, Alert, Critical, Error, Warning, Notice, \
             Informational, Debug)"
        ))
    })
}

/// `rule_matching`: `first` or `all`.
fn rule_matching<'de, D: Deserializer<'de>>(d: D) -> Result<RuleMatching, D::Error> {
    let s = String::deserialize(d)?;
    RuleMatching::parse(&s)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown value {s:?} (first or all)")))
}

#[cfg(test)]
fn ser_priority<S: serde::Serializer>(p: &Priority, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.as_str())
}

#[cfg(test)]
fn ser_rule_matching<S: serde::Serializer>(m: &RuleMatching, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

/// A configuration problem, naming the file (or override) and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {err}")]
    Read { file: String, err: std::io::Error },
    #[error("{file}: {err}")]
    Yaml { file: String, err: String },
    #[error("-o {arg}: expected key.path=value")]
    BadOverride { arg: String },
    #[error("-o {arg}: {key} is not a mapping, cannot set a key under it")]
    OverrideTarget { arg: String, key: String },
    #[error("{what}: {err}")]
    Invalid { what: String, err: String },
    #[error(
        "{file}: {old} is now {new}, a duration with its unit: {new}: {example} (see \
         deploy/falco-learn.yaml)"
    )]
    Renamed {
        file: String,
        old: &'static str,
        new: &'static str,
        example: String,
    },
    #[error("{file}: {key} was removed: {why} (see deploy/falco-learn.yaml)")]
    Removed {
        file: String,
        key: &'static str,
        why: &'static str,
    },
    #[error("{key} must be between {min} and {max}, got {got}")]
    OutOfRange {
        key: &'static str,
        min: String,
        max: String,
        got: String,
    },
}

/// A numeric key's value and the range it must be in (both ends included).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Int {
        key: &'static str,
        got: u64,
        min: u64,
        max: u64,
    },
    Float {
        key: &'static str,
        got: f64,
        min: f64,
        max: f64,
    },
    Duration {
        key: &'static str,
        got: Duration,
        min: Duration,
        max: Duration,
    },
}

impl Bound {
    pub fn key(&self) -> &'static str {
        match self {
            Bound::Int { key, .. } | Bound::Float { key, .. } | Bound::Duration { key, .. } => key,
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        let out = |key, min: &dyn std::fmt::Display, max: &dyn std::fmt::Display, got: String| {
            Err(ConfigError::OutOfRange {
                key,
                min: min.to_string(),
                max: max.to_string(),
                got,
            })
        };
        match *self {
            Bound::Int { key, got, min, max } if got < min || got > max => {
                out(key, &min, &max, got.to_string())
            }
            // NaN is in no range
            Bound::Float { key, got, min, max } if !(min..=max).contains(&got) => {
                out(key, &min, &max, got.to_string())
            }
            Bound::Duration { key, got, min, max } if got < min || got > max => out(
                key,
                &humantime::format_duration(min),
                &humantime::format_duration(max),
                humantime::format_duration(got).to_string(),
            ),
            _ => Ok(()),
        }
    }
}

/// Output format on stdout/file/program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Text,
}

/// Default length of each output's queue.
pub const DEFAULT_QUEUE: usize = 10_000;
/// Bounds of each output's queue (alerts are shared between the queues, so the
/// memory they hold is that of the longest one).
pub const QUEUE_RANGE: std::ops::RangeInclusive<usize> = 1..=1_000_000;
/// Bounds of output timeouts.
pub const OUTPUT_TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(1)..=Duration::from_secs(600);
/// Bounds of `outputs.shutdown_timeout` (0: exit without waiting).
pub const SHUTDOWN_TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::ZERO..=Duration::from_secs(600);
/// Bounds of `outputs.http.retries`.
pub const HTTP_RETRIES_RANGE: std::ops::RangeInclusive<u32> = 1..=20;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct StdoutOutput {
    pub enabled: bool,
    /// Alerts waiting to be written; beyond it alerts are dropped and counted.
    pub queue: usize,
}
impl Default for StdoutOutput {
    fn default() -> Self {
        StdoutOutput {
            enabled: true,
            queue: DEFAULT_QUEUE,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct FileOutput {
    pub enabled: bool,
    /// Appended to; reopened on SIGHUP (for logrotate).
    pub filename: PathBuf,
    /// Alerts waiting to be written; beyond it alerts are dropped and counted.
    pub queue: usize,
}
impl Default for FileOutput {
    fn default() -> Self {
        FileOutput {
            enabled: false,
            filename: PathBuf::from("/var/log/falco-learn/alerts.json"),
            queue: DEFAULT_QUEUE,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct SyslogOutput {
    pub enabled: bool,
    /// The local syslog daemon's datagram socket.
    pub socket: PathBuf,
    /// Alerts waiting to be sent; beyond it alerts are dropped and counted.
    pub queue: usize,
}
impl Default for SyslogOutput {
    fn default() -> Self {
        SyslogOutput {
            enabled: false,
            socket: PathBuf::from("/dev/log"),
            queue: DEFAULT_QUEUE,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct HttpOutput {
    pub enabled: bool,
    /// e.g. `http://127.0.0.1:2801/` (falcosidekick).
    pub url: String,
    /// Alerts waiting to be sent; beyond it alerts are dropped and counted.
    pub queue: usize,
    /// Attempts per alert (exponential backoff from 100 ms, capped at 5 s).
    pub retries: u32,
    /// Bound on one attempt, connecting included.
    #[serde(with = "falco_learn_event::time::duration")]
    pub timeout: Duration,
    /// Bound on connecting (within `timeout`).
    #[serde(with = "falco_learn_event::time::duration")]
    pub connect_timeout: Duration,
}
impl Default for HttpOutput {
    fn default() -> Self {
        HttpOutput {
            enabled: false,
            url: "http://127.0.0.1:2801/".into(),
            queue: DEFAULT_QUEUE,
            retries: 5,
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct ProgramOutput {
    pub enabled: bool,
    /// Run with `sh -c`; each alert is one line on its standard input.
    pub program: String,
    /// Keep one process for all alerts (true) or start one per alert (false), like
    /// Falco. Either way at most one runs at a time.
    pub keep_alive: bool,
    /// keep_alive: bound on writing one alert to the program; otherwise bound on
    /// one alert's process (write, then exit), killed beyond it.
    #[serde(with = "falco_learn_event::time::duration")]
    pub timeout: Duration,
    /// Alerts waiting for the program; beyond it alerts are dropped and counted.
    pub queue: usize,
}
impl Default for ProgramOutput {
    fn default() -> Self {
        ProgramOutput {
            enabled: false,
            program: "jq --unbuffered -c .".into(),
            keep_alive: true,
            timeout: Duration::from_secs(2),
            queue: DEFAULT_QUEUE,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct Outputs {
    /// json (Falco's JSON alert) or text (`time: priority output`).
    pub format: Format,
    pub stdout: StdoutOutput,
    pub file: FileOutput,
    pub syslog: SyslogOutput,
    pub http: HttpOutput,
    pub program: ProgramOutput,
    /// On SIGTERM, how long queued alerts may take to go out; what is still
    /// queued then is dropped and counted, and the agent exits.
    #[serde(with = "falco_learn_event::time::duration")]
    pub shutdown_timeout: Duration,
}
impl Default for Outputs {
    fn default() -> Self {
        Outputs {
            shutdown_timeout: Duration::from_secs(5),
            format: Format::Json,
            stdout: StdoutOutput::default(),
            file: FileOutput::default(),
            syslog: SyslogOutput::default(),
            http: HttpOutput::default(),
            program: ProgramOutput::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    pub enabled: bool,
    /// Listen address of `/metrics`; loopback by default.
    pub listen: String,
}
impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            enabled: true,
            listen: "127.0.0.1:8765".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct Profiles {
    /// Directory of reviewed profile YAML files (`profiles export`); empty:
    /// no profiles, the rules only. A directory that does not exist is an
    /// error, and so is one without profiles unless `allow_empty`.
    pub dir: PathBuf,
    /// Run with a profiles directory that holds no profiles yet (warned about
    /// at start and at every reload), e.g. an optional ConfigMap.
    pub allow_empty: bool,
    /// Priority of profile-anomaly alerts.
    #[serde(deserialize_with = "priority")]
    #[cfg_attr(test, serde(serialize_with = "ser_priority"))]
    pub priority: Priority,
    /// Profile used for host processes (events whose container id is `host`),
    /// by image name as it appears in the profile (e.g. `host`); empty: none.
    pub host_image: String,
}
impl Default for Profiles {
    fn default() -> Self {
        Profiles {
            dir: PathBuf::new(),
            allow_empty: false,
            priority: Priority::Warning,
            host_image: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct Drops {
    /// Alert ("Falco internal: syscall event drop") when this fraction of events
    /// was dropped in an interval; 0 disables.
    pub threshold: f64,
    /// At most one drop alert per this long.
    #[serde(with = "falco_learn_event::time::duration")]
    pub rate_limit: Duration,
}
impl Default for Drops {
    fn default() -> Self {
        Drops {
            threshold: 0.001,
            rate_limit: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct Engine {
    /// Ring buffer size in MiB.
    pub ring_mib: u32,
    /// Enforce modes: drop in the kernel the write-opens and outbound connections a
    /// container's profile allows and no loaded rule can match (counted in
    /// `falco_learn_kernel_filtered_total`). Needs the cgroup v2 hierarchy mounted: without
    /// it `run` turns it off with a warning.
    /// Alerts are the same either way; `false` sends every one to userspace.
    pub kernel_filter: bool,
    /// Handle 32-bit (ia32, x32) syscalls, which the kernel's syscall tracepoints never
    /// report, as their 64-bit twins (rules and profiles judge what a 32-bit program, or a
    /// 64-bit one's `int 0x80`, opens and connects); a 64-bit program's first one raises
    /// "falco-learn internal: 32-bit system call by a 64-bit program". Every syscall's exit
    /// is then checked (a load and a compare), so the probe uses the `sys_exit` dispatcher,
    /// which does it (`getppid` +20–45 ns on the 2-vCPU VM, `bench probe --loop getppid`);
    /// not attached on kernels without 32-bit syscalls. `false` leaves them unseen (a
    /// 32-bit program's exec then raises "falco-learn internal: 32-bit program not
    /// monitored") and gives the per-syscall tracepoints back (5.15+).
    pub ia32_syscalls: bool,
}
impl Default for Engine {
    /// The probe's defaults.
    fn default() -> Self {
        let p = falco_learn_probe::ProbeConfig::default();
        Engine {
            ring_mib: p.ring_bytes / MIB,
            kernel_filter: true,
            ia32_syscalls: p.ia32_syscalls,
        }
    }
}

const MIB: u32 = 1024 * 1024;

/// The whole configuration. Every field has a default; see `falco-learn.yaml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Rules files in load order; empty: the embedded default ruleset.
    pub rules_files: Vec<PathBuf>,
    /// Minimum priority of default-rule alerts (Falco's `priority`).
    #[serde(deserialize_with = "priority")]
    #[cfg_attr(test, serde(serialize_with = "ser_priority"))]
    pub priority: Priority,
    /// Falco's `rule_matching`: `first` (only the first matching rule in load order
    /// alerts for an event, Falco's default) or `all`.
    #[serde(deserialize_with = "rule_matching")]
    #[cfg_attr(test, serde(serialize_with = "ser_rule_matching"))]
    pub rule_matching: RuleMatching,
    pub profiles: Profiles,
    pub outputs: Outputs,
    pub metrics: Metrics,
    pub drops: Drops,
    pub engine: Engine,
    pub container_runtimes: ContainerRuntimes,
}
impl Default for Config {
    fn default() -> Self {
        Config {
            rules_files: Vec::new(),
            priority: Priority::Debug,
            rule_matching: RuleMatching::First,
            profiles: Profiles::default(),
            outputs: Outputs::default(),
            metrics: Metrics::default(),
            drops: Drops::default(),
            engine: Engine::default(),
            container_runtimes: ContainerRuntimes::default(),
        }
    }
}

/// Command-line flags that set configuration keys, applied as typed values
/// over the file and `-o` (never turned into `-o` strings).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flags {
    /// `--rules` (repeatable): replaces `rules_files` when given.
    pub rules_files: Vec<PathBuf>,
    /// `--profiles DIR`: `profiles.dir`.
    pub profiles_dir: Option<PathBuf>,
    /// `--rule-matching`: `rule_matching`.
    pub rule_matching: Option<RuleMatching>,
}

impl Flags {
    fn apply(&self, cfg: &mut Config) {
        if !self.rules_files.is_empty() {
            cfg.rules_files.clone_from(&self.rules_files);
        }
        if let Some(d) = &self.profiles_dir {
            cfg.profiles.dir.clone_from(d);
        }
        if let Some(m) = self.rule_matching {
            cfg.rule_matching = m;
        }
    }
}

/// Where the configuration comes from: the file, `-o` overrides, flags. Kept
/// so that a reload (SIGHUP) reads the file again the same way.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigSource {
    /// `-c FILE`; `None`: the defaults.
    pub file: Option<PathBuf>,
    /// `-o key.path=value`, in order.
    pub overrides: Vec<String>,
    pub flags: Flags,
}

impl ConfigSource {
    /// Read, override, validate.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut cfg = Config::load(self.file.as_deref(), &self.overrides)?;
        self.flags.apply(&mut cfg);
        Ok(cfg)
    }
}

/// Set `a.b.c` in a YAML mapping tree to `value` (parsed as YAML, so `true`, `5`,
/// `[a, b]` have their types).
fn apply_override(root: &mut serde_yaml::Value, arg: &str) -> Result<(), ConfigError> {
    let (key, value) = arg
        .split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| ConfigError::BadOverride { arg: arg.into() })?;
    let value: serde_yaml::Value =
        serde_yaml::from_str(value).unwrap_or_else(|_| serde_yaml::Value::String(value.into()));
    let mut cur = root;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if cur.is_null() {
            *cur = serde_yaml::Value::Mapping(Default::default());
        }
        let map = cur
            .as_mapping_mut()
            .ok_or_else(|| ConfigError::OverrideTarget {
                arg: arg.into(),
                key: parts[..i].join("."),
            })?;
        let k = serde_yaml::Value::String((*part).into());
        if i + 1 == parts.len() {
            map.insert(k, value);
            return Ok(());
        }
        cur = map.entry(k).or_insert(serde_yaml::Value::Null);
    }
    Ok(())
}

/// An old integer key in the tree is an error naming its new key.
fn renamed_keys(tree: &serde_yaml::Value, name: &str, overridden: bool) -> Result<(), ConfigError> {
    let file = || {
        if overridden {
            format!("{name} (with -o overrides)")
        } else {
            name.to_string()
        }
    };
    for &(key, why) in REMOVED_KEYS {
        let mut cur = Some(tree);
        for part in key.split('.') {
            cur = cur.and_then(|v| v.get(part));
        }
        if cur.is_some() {
            return Err(ConfigError::Removed {
                file: file(),
                key,
                why,
            });
        }
    }
    for &(old, new, unit) in RENAMED_DURATIONS {
        let mut cur = Some(tree);
        for part in old.split('.') {
            cur = cur.and_then(|v| v.get(part));
        }
        if let Some(v) = cur {
            let example = match v.as_u64() {
                Some(n) => {
                    let d = if unit == "s" {
                        Duration::from_secs(n)
                    } else {
                        Duration::from_millis(n)
                    };
                    humantime::format_duration(d).to_string()
                }
                None => format!("10{unit}"),
            };
            return Err(ConfigError::Renamed {
                file: if overridden {
                    format!("{name} (with -o overrides)")
                } else {
                    name.to_string()
                },
                old,
                new,
                example,
            });
        }
    }
    Ok(())
}

impl Config {
    /// The probe's settings from the `engine` and `container_runtimes`
    /// sections; what they do not set keeps the probe's defaults.
    pub fn probe_config(&self) -> falco_learn_probe::ProbeConfig {
        falco_learn_probe::ProbeConfig {
            ring_bytes: self.engine.ring_mib * MIB,
            runtime: self.container_runtimes.clone(),
            ia32_syscalls: self.engine.ia32_syscalls,
            ..Default::default()
        }
    }

    /// Load `file` (or defaults when `None`), then apply `-o` overrides.
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<Config, ConfigError> {
        let (name, text) = match file {
            Some(p) => (
                p.display().to_string(),
                std::fs::read_to_string(p).map_err(|err| ConfigError::Read {
                    file: p.display().to_string(),
                    err,
                })?,
            ),
            None => ("<defaults>".to_string(), String::new()),
        };
        let mut tree: serde_yaml::Value = if text.trim().is_empty() {
            serde_yaml::Value::Mapping(Default::default())
        } else {
            serde_yaml::from_str(&text).map_err(|e| ConfigError::Yaml {
                file: name.clone(),
                err: e.to_string(),
            })?
        };
        for o in overrides {
            apply_override(&mut tree, o)?;
        }
        renamed_keys(&tree, &name, !overrides.is_empty())?;
        // serde_path_to_error names the key at fault (`outputs.stdout.enabld: unknown field …`)
        let cfg: Config =
            serde_path_to_error::deserialize(tree).map_err(|e| ConfigError::Yaml {
                file: if overrides.is_empty() {
                    name.clone()
                } else {
                    format!("{name} (with -o overrides)")
                },
                err: format!("{}: {}", e.path(), e.inner()),
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |what: &str, err: String| ConfigError::Invalid {
            what: what.into(),
            err,
        };
        for b in self.bounds() {
            b.check()?;
        }
        if self.outputs.file.enabled && self.outputs.file.filename.as_os_str().is_empty() {
            return Err(bad(
                "outputs.file.filename",
                "required when outputs.file.enabled".into(),
            ));
        }
        if self.outputs.http.enabled && !self.outputs.http.url.starts_with("http://") {
            return Err(bad(
                "outputs.http.url",
                format!(
                    "{:?}: only http:// URLs are supported",
                    self.outputs.http.url
                ),
            ));
        }
        if self.outputs.program.enabled && self.outputs.program.program.trim().is_empty() {
            return Err(bad(
                "outputs.program.program",
                "required when outputs.program.enabled".into(),
            ));
        }
        if self.metrics.enabled && self.metrics.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad(
                "metrics.listen",
                format!("{:?} is not an address:port", self.metrics.listen),
            ));
        }
        if !self.engine.ring_mib.is_power_of_two() {
            return Err(bad(
                "engine.ring_mib",
                format!("{} is not a power of two", self.engine.ring_mib),
            ));
        }
        Ok(())
    }

    /// Every numeric key with its value and its range, checked at load.
    pub fn bounds(&self) -> Vec<Bound> {
        let int = |key, got: u64, min, max| Bound::Int { key, got, min, max };
        let dur = |key, got: Duration, r: &std::ops::RangeInclusive<Duration>| Bound::Duration {
            key,
            got,
            min: *r.start(),
            max: *r.end(),
        };
        let within =
            |key, got: u64, r: &std::ops::RangeInclusive<u64>| int(key, got, *r.start(), *r.end());
        let queue = *QUEUE_RANGE.start() as u64..=*QUEUE_RANGE.end() as u64;
        let o = &self.outputs;
        let c = &self.container_runtimes;
        vec![
            // alerts held for a slow output (each a few KiB): dropped and counted past it
            within("outputs.stdout.queue", o.stdout.queue as u64, &queue),
            within("outputs.file.queue", o.file.queue as u64, &queue),
            within("outputs.syslog.queue", o.syslog.queue as u64, &queue),
            within("outputs.http.queue", o.http.queue as u64, &queue),
            within("outputs.program.queue", o.program.queue as u64, &queue),
            within(
                "outputs.http.retries",
                u64::from(o.http.retries),
                &(u64::from(*HTTP_RETRIES_RANGE.start())..=u64::from(*HTTP_RETRIES_RANGE.end())),
            ),
            dur(
                "outputs.http.timeout",
                o.http.timeout,
                &OUTPUT_TIMEOUT_RANGE,
            ),
            dur(
                "outputs.http.connect_timeout",
                o.http.connect_timeout,
                &OUTPUT_TIMEOUT_RANGE,
            ),
            dur(
                "outputs.program.timeout",
                o.program.timeout,
                &OUTPUT_TIMEOUT_RANGE,
            ),
            dur(
                "outputs.shutdown_timeout",
                o.shutdown_timeout,
                &SHUTDOWN_TIMEOUT_RANGE,
            ),
            Bound::Float {
                key: "drops.threshold",
                got: self.drops.threshold,
                min: 0.0,
                max: 1.0,
            },
            dur(
                "drops.rate_limit",
                self.drops.rate_limit,
                &(Duration::ZERO..=Duration::from_secs(86_400)),
            ),
            // locked kernel memory; also keeps ring_mib × 1 MiB within u32
            int("engine.ring_mib", u64::from(self.engine.ring_mib), 1, 1024),
            dur(
                "container_runtimes.lookup_timeout",
                c.lookup_timeout,
                &(Duration::from_millis(1)..=Duration::from_secs(60)),
            ),
            // every alert of a new container waits this long at most
            dur(
                "container_runtimes.hold",
                c.hold,
                &(Duration::ZERO..=Duration::from_secs(10)),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config file's defaults are the probe's: one place to read them.
    #[test]
    fn container_runtime_defaults_match_the_probe() {
        let ours = Config::default().probe_config();
        let probe = falco_learn_probe::ProbeConfig::default();
        assert_eq!(ours.ring_bytes, probe.ring_bytes);
        let (ours, probe) = (ours.runtime, probe.runtime);
        assert_eq!(ours.enabled, probe.enabled);
        assert_eq!(ours.containerd_sockets, probe.containerd_sockets);
        assert_eq!(ours.cri_sockets, probe.cri_sockets);
        assert_eq!(ours.docker_sockets, probe.docker_sockets);
        assert_eq!(ours.podman_sockets, probe.podman_sockets);
        assert_eq!(ours.podman_storage, probe.podman_storage);
        assert_eq!(ours.lookup_timeout, probe.lookup_timeout);
        assert_eq!(ours.hold, probe.hold);
    }

    #[test]
    fn empty_podman_storage_turns_the_fallback_off() {
        for o in [
            "container_runtimes.podman_storage=",
            "container_runtimes.podman_storage=''",
        ] {
            let cfg = Config::load(None, &[o.into()]).expect("config");
            assert_eq!(cfg.probe_config().runtime.podman_storage, None, "{o}");
        }
        let err = Config::load(None, &["container_runtimes.hold=1m".into()])
            .expect_err("a minute-long hold is refused");
        assert_eq!(
            err.to_string(),
            "container_runtimes.hold must be between 0s and 10s, got 1m"
        );
    }

    #[test]
    fn defaults_and_overrides() {
        let c = Config::load(None, &[]).expect("defaults");
        assert_eq!(c, Config::default());
        let c = Config::load(
            None,
            &[
                "outputs.http.enabled=true".into(),
                "outputs.http.url=http://127.0.0.1:2801/".into(),
                "metrics.listen=127.0.0.1:9999".into(),
                "rules_files=[/a.yaml, /b.yaml]".into(),
            ],
        )
        .expect("overrides");
        assert!(c.outputs.http.enabled);
        assert_eq!(c.outputs.http.url, "http://127.0.0.1:2801/");
        assert_eq!(c.metrics.listen, "127.0.0.1:9999");
        assert_eq!(
            c.rules_files,
            [PathBuf::from("/a.yaml"), PathBuf::from("/b.yaml")]
        );
    }

    /// Every numeric leaf of the configuration (found by serialising the
    /// defaults, so a new numeric key cannot be forgotten) has a bound, and a
    /// value just outside either end of it, or far outside, is refused with
    /// an error naming the key.
    #[test]
    fn every_numeric_key_is_bounded() {
        fn leaves(v: &serde_yaml::Value, path: &str, out: &mut Vec<String>) {
            match v {
                serde_yaml::Value::Mapping(m) => {
                    for (k, v) in m {
                        let k = k.as_str().expect("string key");
                        let p = if path.is_empty() {
                            k.to_string()
                        } else {
                            format!("{path}.{k}")
                        };
                        leaves(v, &p, out);
                    }
                }
                serde_yaml::Value::Number(_) => out.push(path.to_string()),
                // durations are humantime strings
                serde_yaml::Value::String(t) if humantime::parse_duration(t).is_ok() => {
                    out.push(path.to_string())
                }
                _ => {}
            }
        }
        let defaults = serde_yaml::to_value(Config::default()).expect("serialise");
        let mut numeric = Vec::new();
        leaves(&defaults, "", &mut numeric);
        numeric.sort();
        let bounds = Config::default().bounds();
        let mut bounded: Vec<String> = bounds.iter().map(|b| b.key().to_string()).collect();
        bounded.sort();
        assert_eq!(numeric, bounded, "numeric keys vs. keys with a bound");
        assert_eq!(numeric.len(), 15);
        let ms = |d: Duration| humantime::format_duration(d).to_string();
        for b in bounds {
            let (key, tries): (&str, Vec<(String, String)>) = match b {
                Bound::Int { key, min, max, .. } => {
                    let mut t = vec![(format!("{}", max + 1), format!("{}", max + 1))];
                    if min > 0 {
                        t.push((format!("{}", min - 1), format!("{}", min - 1)));
                    }
                    (key, t)
                }
                Bound::Float { key, min, max, .. } => (
                    key,
                    vec![
                        (format!("{}", max + 0.5), format!("{}", max + 0.5)),
                        (format!("{}", min - 0.5), format!("{}", min - 0.5)),
                        (".nan".into(), "NaN".into()),
                    ],
                ),
                Bound::Duration { key, min, max, .. } => {
                    let tick = Duration::from_millis(1);
                    let mut t = vec![(ms(max + tick), ms(max + tick))];
                    if min > Duration::ZERO {
                        t.push((ms(min - tick), ms(min - tick)));
                    }
                    (key, t)
                }
            };
            let (min, max) = match b {
                Bound::Int { min, max, .. } => (min.to_string(), max.to_string()),
                Bound::Float { min, max, .. } => (min.to_string(), max.to_string()),
                Bound::Duration { min, max, .. } => (ms(min), ms(max)),
            };
            for (value, shown) in tries {
                let err = Config::load(None, &[format!("{key}={value}")])
                    .expect_err(&format!("{key}={value} refused"))
                    .to_string();
                assert_eq!(
                    err,
                    format!("{key} must be between {min} and {max}, got {shown}")
                );
            }
        }
        // the example of the issue, exactly (another key since engine.queue was removed)
        assert_eq!(
            Config::load(None, &["engine.ring_mib=0".into()])
                .expect_err("0")
                .to_string(),
            "engine.ring_mib must be between 1 and 1024, got 0"
        );
        // a removed key is refused with the reason, from a file or -o
        assert_eq!(
            Config::load(None, &["engine.queue=2048".into()])
                .expect_err("removed")
                .to_string(),
            "<defaults> (with -o overrides): engine.queue was removed: the engine reads the kernel ring buffer \
             on its own thread, with no queue between them; what waits is in the ring buffer, \
             sized by engine.ring_mib (see deploy/falco-learn.yaml)"
        );
        // a value the type cannot hold names the key too
        let e = Config::load(None, &["engine.ring_mib=99999999999".into()])
            .expect_err("u32")
            .to_string();
        assert!(e.contains("engine.ring_mib: invalid value"), "{e}");
        let e = Config::load(None, &["engine.ring_mib=3".into()])
            .expect_err("power of two")
            .to_string();
        assert_eq!(e, "engine.ring_mib: 3 is not a power of two");
    }

    /// Every old integer key (file or `-o`) is refused with a message naming
    /// its new key and the value as a duration; a bare number under a new key
    /// asks for a unit.
    #[test]
    fn old_integer_keys_name_their_duration_keys() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("old.yaml");
        for &(old, new, unit) in RENAMED_DURATIONS {
            let (head, leaf) = old.rsplit_once('.').expect("section");
            let mut yaml = String::new();
            for (depth, part) in head.split('.').enumerate() {
                yaml.push_str(&format!("{}{part}:\n", "  ".repeat(depth)));
            }
            yaml.push_str(&format!(
                "{}{leaf}: 7\n",
                "  ".repeat(head.split('.').count())
            ));
            std::fs::write(&f, &yaml).expect("write");
            assert_eq!(
                Config::load(Some(&f), &[]).expect_err(old).to_string(),
                format!(
                    "{}: {old} is now {new}, a duration with its unit: {new}: 7{unit} (see \
                     deploy/falco-learn.yaml)",
                    f.display()
                )
            );
            assert_eq!(
                Config::load(None, &[format!("{old}=7")])
                    .expect_err(old)
                    .to_string(),
                format!(
                    "<defaults> (with -o overrides): {old} is now {new}, a duration with its \
                     unit: {new}: 7{unit} (see deploy/falco-learn.yaml)"
                )
            );
            let e = Config::load(None, &[format!("{new}=7")])
                .expect_err(new)
                .to_string();
            assert!(
                e.ends_with(&format!(
                    "{new}: 7 has no unit; write a duration such as 7ms or 7s"
                )),
                "{e}"
            );
        }
        let c = Config::load(None, &["drops.rate_limit=1m 30s".into()]).expect("duration");
        assert_eq!(c.drops.rate_limit, Duration::from_secs(90));
    }

    /// CLI flags are typed values over the file and `-o`.
    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("c.yaml");
        std::fs::write(
            &f,
            "rules_files: [/from/file.yaml]\nprofiles:\n  dir: /from/file\n",
        )
        .expect("write");
        let src = ConfigSource {
            file: Some(f.clone()),
            overrides: vec!["rule_matching=all".into()],
            flags: Flags::default(),
        };
        let c = src.load().expect("load");
        assert_eq!(c.rules_files, [PathBuf::from("/from/file.yaml")]);
        assert_eq!(c.profiles.dir, PathBuf::from("/from/file"));
        assert_eq!(c.rule_matching, RuleMatching::All);
        let c = ConfigSource {
            flags: Flags {
                rules_files: vec![PathBuf::from("/flag/a, b.yaml")],
                profiles_dir: Some(PathBuf::from("/flag/\"quoted\"")),
                rule_matching: Some(RuleMatching::First),
            },
            ..src
        }
        .load()
        .expect("load");
        assert_eq!(c.rules_files, [PathBuf::from("/flag/a, b.yaml")]);
        assert_eq!(c.profiles.dir, PathBuf::from("/flag/\"quoted\""));
        assert_eq!(c.rule_matching, RuleMatching::First);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("c.yaml");
        std::fs::write(&f, "outputs:\n  stdout:\n    enabld: true\n").expect("write");
        let e = Config::load(Some(&f), &[])
            .expect_err("unknown key")
            .to_string();
        assert!(
            e.contains("c.yaml")
                && e.ends_with(
                    "c.yaml: outputs.stdout.enabld: unknown field `enabld`, expected `enabled` or `queue`"
                ),
            "{e}"
        );
        let e = Config::load(None, &["rule_matching=every".into()])
            .expect_err("rule_matching")
            .to_string();
        assert!(
            e.contains("rule_matching") && e.contains("every") && e.contains("first or all"),
            "{e}"
        );
        let c = Config::load(None, &["rule_matching=all".into()]).expect("all");
        assert_eq!(c.rule_matching, RuleMatching::All);
        let e = Config::load(None, &["priority=Loud".into()])
            .expect_err("priority")
            .to_string();
        assert!(e.contains("priority") && e.contains("Loud"), "{e}");
        let e = Config::load(None, &["nokey".into()])
            .expect_err("override")
            .to_string();
        assert_eq!(e, "-o nokey: expected key.path=value");
        let e = Config::load(None, &["priority.x=1".into()])
            .expect_err("target")
            .to_string();
        assert_eq!(
            e,
            "<defaults> (with -o overrides): priority: invalid type: map, expected a string"
        );
        let e = Config::load(None, &["priority=Info".into(), "priority.x=1".into()])
            .expect_err("target")
            .to_string();
        assert_eq!(
            e,
            "-o priority.x=1: priority is not a mapping, cannot set a key under it"
        );
        let e = Config::load(
            None,
            &[
                "outputs.file.enabled=true".into(),
                "outputs.file.filename=".into(),
            ],
        )
        .expect_err("file")
        .to_string();
        assert!(e.contains("outputs.file.filename"), "{e}");
    }

    #[test]
    fn output_numbers_are_bounded_and_errors_name_the_key() {
        for (o, key, v) in [
            ("outputs.stdout.queue=0", "outputs.stdout.queue", "0"),
            (
                "outputs.file.queue=1000001",
                "outputs.file.queue",
                "1000001",
            ),
            ("outputs.syslog.queue=0", "outputs.syslog.queue", "0"),
            ("outputs.http.queue=0", "outputs.http.queue", "0"),
            ("outputs.program.queue=0", "outputs.program.queue", "0"),
            ("outputs.http.timeout=0s", "outputs.http.timeout", "0s"),
            (
                "outputs.http.connect_timeout=10m 1ms",
                "outputs.http.connect_timeout",
                "10m 1ms",
            ),
            ("outputs.http.retries=0", "outputs.http.retries", "0"),
            ("outputs.http.retries=21", "outputs.http.retries", "21"),
            (
                "outputs.program.timeout=0ms",
                "outputs.program.timeout",
                "0s",
            ),
            (
                "outputs.shutdown_timeout=601s",
                "outputs.shutdown_timeout",
                "10m 1s",
            ),
        ] {
            let e = Config::load(None, &[o.into()]).expect_err(o).to_string();
            assert!(
                e.starts_with(&format!("{key} must be between "))
                    && e.ends_with(&format!(", got {v}")),
                "{o}: {e}"
            );
        }
        // the edges load
        let c = Config::load(
            None,
            &[
                "outputs.program.queue=1".into(),
                "outputs.http.queue=1000000".into(),
                "outputs.shutdown_timeout=0s".into(),
                "outputs.program.timeout=10m".into(),
                "outputs.http.retries=20".into(),
            ],
        )
        .expect("edges");
        assert_eq!(c.outputs.program.queue, 1);
        assert_eq!(c.outputs.shutdown_timeout, Duration::ZERO);
    }
}
