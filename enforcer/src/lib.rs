//! Enforce-alert runtime of falco-learn.
//!
//! An [`Engine`] holds the compiled default ruleset (ours, or the files the
//! user points at, e.g. /etc/falco/falco_rules.yaml) and the reviewed profile
//! of every image. [`Engine::evaluate`] runs one event through both: the
//! default rules give Falco alerts as Falco's `rule_matching` says (`first`,
//! Falco's default: only the first matching rule in load order; `all`: every
//! matching rule); an event of a profiled image that departs from its profile
//! gives one profile-anomaly alert besides, whatever `rule_matching` is. Anomalies are found
//! by set lookups ([`falco_learn_profiler::Profile::check`]); the alert itself
//! is rendered by the generated allowlist rule of that image and dimension, so
//! the fast path and the generated Falco rules say exactly the same thing.
//!
//! The agent around it: [`pipeline`] (`source → engine → outputs +
//! telemetry`, drop alerts, reloads) fed by a [`source`] (the live probe or a
//! recording), [`agent`] (configuration → engine and probe settings),
//! [`kill`] (enforce-kill's bookkeeping), [`outputs`] (stdout, file, syslog,
//! HTTP, program), [`config`] (the typed configuration), [`metrics`] (every
//! metric, declared once) and [`telemetry`] (their only emitter). See
//! `enforcer/README.md`.

pub mod agent;
pub mod binding;
pub mod config;
pub mod metrics;
pub mod outputs;
pub mod pipeline;
pub mod source;
pub mod telemetry;
pub mod unprofiled;

use ahash::{AHashMap, AHashSet};
use falco_learn_event::Event;
use falco_learn_profiler::{generate_rules, rule_name, Dimension, ImageRef, Profile};
use falco_learn_rules::{Alert, LoadReport, Priority, Rule, RuleMatching, Ruleset};
use std::path::{Path, PathBuf};

use falco_learn_rules::{DEFAULT_RULES, DEFAULT_RULES_NAME};

/// Why the engine could not be built; the old engine (if any) keeps running.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("rules have {count} error(s):\n{report}")]
    Rules { count: usize, report: String },
    #[error("{path}: cannot read profiles directory: {err}")]
    ProfilesDir { path: String, err: std::io::Error },
    #[error(
        "profiles directory {path} does not exist (--profiles or profiles.dir); to run the rules \
         without profiles, leave profiles.dir empty"
    )]
    ProfilesMissing { path: String },
    #[error("profiles directory {path} is not a directory")]
    ProfilesNotDir { path: String },
    #[error(
        "profiles directory {path} holds no profiles (*.yaml, *.yml); to run the rules until \
         profiles appear there (SIGHUP loads them), set profiles.allow_empty=true"
    )]
    ProfilesEmpty { path: String },
    #[error("{0}")]
    Profile(#[from] falco_learn_profiler::ProfileError),
    #[error("{path}: cannot read: {err}")]
    Read { path: String, err: std::io::Error },
    #[error(
        "{file}: two profiles for image {image}; the second is skipped (merge them with \
         `falco-learn profiles merge`)"
    )]
    DuplicateProfile { file: String, image: String },
    #[error("generated rules for {image} do not load: {report}")]
    Generated { image: String, report: String },
}

/// A loaded profile and the generated rule of each dimension, which renders
/// that dimension's anomaly alerts (at the configured anomaly priority).
#[derive(Clone)]
struct Loaded {
    profile: Profile,
    /// Indexed by [`Dimension::index`].
    alert_rules: [Option<Rule>; Dimension::ALL.len()],
    file: PathBuf,
}

/// What the engine was built from, for `run`'s startup report.
#[derive(Debug, Clone, Default)]
pub struct EngineSummary {
    pub rules_files: Vec<String>,
    pub rules: usize,
    pub enabled_rules: usize,
    pub warnings: usize,
    /// (image, its entries per dimension: `2 execs, 0 outbound, 1 inbound, 4 writes`).
    pub profiles: Vec<(String, String)>,
    /// Profile files that could not be loaded (skipped).
    pub failed: Vec<FailedProfile>,
}

/// A profile file that was skipped, and why (the message names the file and,
/// for a bad entry, the line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedProfile {
    pub file: String,
    pub message: String,
}

/// (image, entries per dimension) per loaded profile, sorted by image.
fn summarise(profiles: &AHashMap<String, AHashMap<String, Loaded>>) -> Vec<(String, String)> {
    let mut imgs: Vec<&Loaded> = profiles.values().flat_map(|t| t.values()).collect();
    imgs.sort_by(|a, b| a.profile.image.cmp(&b.profile.image));
    imgs.iter()
        .map(|l| {
            let p = &l.profile;
            let mut sizes = vec![
                format!("{} execs", p.exec.len()),
                format!("{} outbound", p.outbound.len()),
            ];
            for d in falco_learn_profiler::DIMS {
                sizes.push(if d.is_learned(p) {
                    format!("{} {}", d.entries(p), d.dimension())
                } else {
                    format!("{} not learned", d.dimension())
                });
            }
            sizes.push(format!("{} writes", p.write_entries()));
            (p.image.to_string(), sizes.join(", "))
        })
        .collect()
}

/// Read one profile file, generate and load its rules (alerts are rendered by
/// them), and check its image has no profile yet.
fn load_profile(
    file: &Path,
    anomaly_priority: Priority,
    loaded: &AHashMap<String, AHashMap<String, Loaded>>,
) -> Result<Loaded, EngineError> {
    let text = std::fs::read_to_string(file).map_err(|err| EngineError::Read {
        path: file.display().to_string(),
        err,
    })?;
    let profile = falco_learn_profiler::from_yaml(&text, &file.display().to_string())?;
    let img = profile.image.clone();
    if let Some(prev) = loaded.get(&img.repository).and_then(|t| t.get(&img.tag)) {
        return Err(EngineError::DuplicateProfile {
            file: format!("{} and {}", prev.file.display(), file.display()),
            image: img.to_string(),
        });
    }
    let gen = generate_rules(&profile).map_err(|e| EngineError::Generated {
        image: img.to_string(),
        report: format!("{}: {e}", file.display()),
    })?;
    let (grs, grep) =
        Ruleset::load_sources(&[(format!("generated rules of {}", file.display()), gen)]);
    if grep.has_errors() {
        return Err(EngineError::Generated {
            image: img.to_string(),
            report: grep.to_string(),
        });
    }
    let mut alert_rules: [Option<Rule>; Dimension::ALL.len()] = Default::default();
    for d in Dimension::ALL {
        let name = rule_name(&img, d);
        // the engine's own copy of the rule takes the configured priority; the
        // ruleset it came from is not changed after it was built
        alert_rules[d.index()] =
            grs.rules()
                .iter()
                .find(|r| r.name == name)
                .cloned()
                .map(|mut r| {
                    r.priority = anomaly_priority;
                    r
                });
    }
    Ok(Loaded {
        profile,
        alert_rules,
        file: file.to_path_buf(),
    })
}

/// Default rules + profiles, ready to evaluate events.
pub struct Engine {
    rules: Ruleset,
    min_priority: Priority,
    rule_matching: RuleMatching,
    /// repository → tag → profile: an event's image is looked up by borrowing
    /// its strings (no allocation per event).
    profiles: AHashMap<String, AHashMap<String, Loaded>>,
    host_profile: Option<ImageRef>,
    /// repository → tags seen without a profile (reported once each).
    unprofiled_seen: AHashMap<String, AHashSet<String>>,
    pub summary: EngineSummary,
}

/// Why an alert was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A rule of the loaded rules files matched.
    Rule,
    /// The event departs from its image's profile in this dimension; the
    /// alert is that dimension's generated rule's.
    Anomaly(Dimension),
    /// The agent's own condition (e.g. events dropped), not an event's.
    Internal,
}

/// What the agent did about an alert's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    /// Alerted only.
    #[default]
    Alerted,
    /// enforce-kill killed the exec in the kernel before it ran.
    Killed,
    /// enforce-kill killed the process from userspace once the exec was judged: the kernel
    /// could not (its container's cgroup was not under its profile yet: a new container's
    /// first processes), so the program ran until then.
    KilledLate,
}

impl Action {
    /// The value of the `falco_learn.action` output field.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Alerted => "alerted",
            Action::Killed => "killed",
            Action::KilledLate => "killed_late",
        }
    }
}

/// One alert and why it was raised.
#[derive(Debug, Clone, PartialEq)]
pub struct Raised {
    pub cause: Cause,
    pub action: Action,
    pub alert: Alert,
}

/// A profile anomaly: the image whose profile the event departs from, the
/// dimension, and what was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// `repository:tag` of the profile.
    pub image: String,
    pub dimension: Dimension,
    pub action: Action,
    /// For an exec whose executable the profile allows, but not from this parent: the
    /// parent (`proc.pexepath`, `<NA>` when unknown). Such an exec is alerted, never
    /// killed: enforce-kill judges the executable alone, as the kernel does.
    pub parent: Option<String>,
}

/// Outcome of evaluating one event.
#[derive(Debug, Default)]
pub struct Verdict {
    /// The rule alerts in load order, then the anomaly alert if any.
    pub alerts: Vec<Raised>,
    /// The profile anomaly, if the event departs from its image's profile.
    pub anomaly: Option<Anomaly>,
    /// Set the first time an image without a profile is seen.
    pub new_unprofiled: Option<String>,
    /// The event is an exec that enforce-kill killed in the kernel.
    pub killed: bool,
}

impl Verdict {
    /// The alerts alone, in order.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.iter().map(|r| &r.alert)
    }
}

/// Mark an alert as the one of a killed exec: `output` gains ` action=killed`,
/// `output_fields` `falco_learn.action: killed`, the tags `killed`.
fn mark_killed(a: &mut Alert) {
    mark_action(a, Action::Killed);
}

/// Mark an alert with what the agent did (` action=<action>`, `falco_learn.action`, the
/// tag `killed` for a kill).
pub fn mark_action(a: &mut Alert, action: Action) {
    a.output.push_str(" action=");
    a.output.push_str(action.as_str());
    a.output_fields
        .insert("falco_learn.action".into(), action.as_str().into());
    if action != Action::Alerted {
        a.tags.push("killed".into());
    }
}

fn load_rules(files: &[PathBuf]) -> (Ruleset, LoadReport, Vec<String>) {
    if files.is_empty() {
        let (rs, rep) = Ruleset::load_sources(&[(DEFAULT_RULES_NAME, DEFAULT_RULES)]);
        (rs, rep, vec![DEFAULT_RULES_NAME.to_string()])
    } else {
        let (rs, rep) = Ruleset::load_files(files);
        (
            rs,
            rep,
            files.iter().map(|f| f.display().to_string()).collect(),
        )
    }
}

/// Where the engine's profiles come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfilesFrom<'a> {
    /// None: the rules only.
    Nowhere,
    /// The profile files (`*.yaml`, `*.yml`) in a directory. A missing
    /// directory is an error, and so is one without profiles unless
    /// `allow_empty`.
    Dir { path: &'a Path, allow_empty: bool },
}

impl<'a> ProfilesFrom<'a> {
    /// `profiles.dir` as configured: an empty path means no profiles.
    pub fn configured(dir: &'a Path, allow_empty: bool) -> ProfilesFrom<'a> {
        if dir.as_os_str().is_empty() {
            ProfilesFrom::Nowhere
        } else {
            ProfilesFrom::Dir {
                path: dir,
                allow_empty,
            }
        }
    }
}

/// The profile files of `dir`, sorted; the errors of [`ProfilesFrom::Dir`].
fn profile_files(dir: &Path, allow_empty: bool) -> Result<Vec<PathBuf>, EngineError> {
    let path = || dir.display().to_string();
    match std::fs::metadata(dir) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(EngineError::ProfilesMissing { path: path() })
        }
        Err(err) => return Err(EngineError::ProfilesDir { path: path(), err }),
        Ok(m) if !m.is_dir() => return Err(EngineError::ProfilesNotDir { path: path() }),
        Ok(_) => {}
    }
    let rd =
        std::fs::read_dir(dir).map_err(|err| EngineError::ProfilesDir { path: path(), err })?;
    let mut files = Vec::new();
    for entry in rd {
        let p = entry
            .map_err(|err| EngineError::ProfilesDir { path: path(), err })?
            .path();
        if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() && !allow_empty {
        return Err(EngineError::ProfilesEmpty { path: path() });
    }
    Ok(files)
}

impl Engine {
    /// Build from rules files (empty: the embedded default) and profiles.
    /// `host_image` names the profile applied to host processes, if any.
    pub fn build(
        rules_files: &[PathBuf],
        min_priority: Priority,
        profiles_from: ProfilesFrom<'_>,
        anomaly_priority: Priority,
        host_image: &str,
    ) -> Result<(Engine, LoadReport), EngineError> {
        let (rules, report, names) = load_rules(rules_files);
        if report.has_errors() {
            return Err(EngineError::Rules {
                count: report.errors.len(),
                report: report.to_string(),
            });
        }
        let mut profiles: AHashMap<String, AHashMap<String, Loaded>> = AHashMap::new();
        let mut failed = Vec::new();
        if let ProfilesFrom::Dir { path, allow_empty } = profiles_from {
            let files = profile_files(path, allow_empty)?;
            for file in files {
                // One bad file never takes the others down: it is logged and
                // skipped (the caller counts `failed_profiles` in
                // metrics::PROFILES_FAILED once its recorder is installed).
                match load_profile(&file, anomaly_priority, &profiles) {
                    Ok(l) => {
                        let img = l.profile.image.clone();
                        profiles
                            .entry(img.repository.clone())
                            .or_default()
                            .insert(img.tag.clone(), l);
                    }
                    Err(e) => {
                        let f = file.display().to_string();
                        let message = e.to_string();
                        tracing::error!(
                            "profile {f} not loaded, skipped (every other profile is \
                             enforced): {message}"
                        );
                        failed.push(FailedProfile { file: f, message });
                    }
                }
            }
        }
        let host_profile = profiles
            .get(host_image)
            .and_then(|by_tag| by_tag.keys().next())
            .map(|tag| ImageRef::new(host_image, tag.clone()));
        let mut summary = EngineSummary {
            rules_files: names,
            rules: rules.rules().len(),
            enabled_rules: rules.enabled_count(),
            warnings: report.warnings.len(),
            profiles: Vec::new(),
            failed,
        };
        summary.profiles = summarise(&profiles);
        Ok((
            Engine {
                rules,
                min_priority,
                rule_matching: RuleMatching::First,
                profiles,
                host_profile,
                unprofiled_seen: AHashMap::new(),
                summary,
            },
            report,
        ))
    }

    /// Falco's `rule_matching` for the default rules (built with `first`, Falco's default).
    pub fn with_rule_matching(mut self, mode: RuleMatching) -> Engine {
        self.rule_matching = mode;
        self
    }

    /// Profile files skipped because they could not be loaded.
    pub fn failed_profiles(&self) -> &[FailedProfile] {
        &self.summary.failed
    }

    /// For a reload: a profile file that no longer loads keeps the version the
    /// running engine loaded from it (unless its image is loaded from another
    /// file now). Returns the images kept so.
    pub fn keep_running_profiles(&mut self, running: &Engine) -> Vec<String> {
        let mut kept = Vec::new();
        for f in &self.summary.failed {
            let Some(old) = running
                .loaded()
                .find(|l| l.file.display().to_string() == f.file)
            else {
                continue;
            };
            let img = &old.profile.image;
            let by_tag = self.profiles.entry(img.repository.clone()).or_default();
            if by_tag.contains_key(&img.tag) {
                continue;
            }
            by_tag.insert(img.tag.clone(), old.clone());
            kept.push(img.to_string());
        }
        if !kept.is_empty() {
            self.summary.profiles = summarise(&self.profiles);
        }
        kept
    }

    /// Number of loaded profiles.
    pub fn profile_count(&self) -> usize {
        self.loaded().count()
    }

    fn loaded(&self) -> impl Iterator<Item = &Loaded> {
        self.profiles.values().flat_map(|t| t.values())
    }

    /// The loaded profiles, by image (repository, then tag): what the kernel maps of
    /// enforce-kill and of the kernel filter are made from.
    pub fn loaded_profiles(&self) -> Vec<&Profile> {
        let mut v: Vec<&Profile> = self.loaded().map(|l| &l.profile).collect();
        v.sort_by(|a, b| {
            (&a.image.repository, &a.image.tag).cmp(&(&b.image.repository, &b.image.tag))
        });
        v
    }

    /// Whether a profile is loaded for this image.
    /// Whether a profile applies to the events of `c`: its image's, or for the host the
    /// host profile's (when one is loaded); `None` while that cannot be known (no container
    /// id, or a container whose image is not resolved yet).
    pub fn profile_applies(&self, c: &falco_learn_event::Container) -> Option<bool> {
        if c.id == "host" {
            return Some(
                self.host_profile
                    .as_ref()
                    .is_some_and(|h| self.has_profile(&h.repository, &h.tag)),
            );
        }
        if c.id.is_empty() || c.image_repository.is_empty() {
            return None;
        }
        Some(self.has_profile(&c.image_repository, &c.image_tag))
    }

    pub fn has_profile(&self, repository: &str, tag: &str) -> bool {
        self.profiles
            .get(repository)
            .is_some_and(|t| t.contains_key(tag))
    }

    /// Per loaded profile: (image, dimension, entries) for the size metrics.
    pub fn profile_sizes(&self) -> Vec<(String, Dimension, usize)> {
        let mut out = Vec::new();
        for l in self.loaded() {
            let img = l.profile.image.to_string();
            out.push((img.clone(), Dimension::Exec, l.profile.exec.len()));
            out.push((img.clone(), Dimension::Outbound, l.profile.outbound.len()));
            out.push((img.clone(), Dimension::FileWrite, l.profile.write_entries()));
            for d in falco_learn_profiler::DIMS {
                out.push((img.clone(), d.dimension(), d.entries(&l.profile)));
            }
        }
        out
    }

    /// Per loaded profile: (image, last new behaviour in ns since the epoch,
    /// events learned from, tainted) for the learning-progress metrics.
    pub fn profile_learning(&self) -> Vec<(String, u64, u64, bool)> {
        self.loaded()
            .map(|l| {
                let le = &l.profile.learning;
                (
                    l.profile.image.to_string(),
                    le.last_new_behaviour,
                    le.events,
                    le.tainted,
                )
            })
            .collect()
    }

    /// The syscalls whose events the loaded rules and profiles need (the probe
    /// attaches only these): the rules' event types, plus connect/sendto/sendmsg, accept/accept4 and
    /// the opens when a profile is loaded (outbound, inbound and file-write dimensions; execs
    /// come from the scheduler tracepoints, always attached).
    pub fn needed_syscalls(&self) -> Vec<&'static str> {
        use falco_learn_event::EventType as T;
        let mut mask = self.rules.event_types_needed();
        if !self.profiles.is_empty() {
            for t in [
                T::Connect,
                T::Sendto,
                T::Sendmsg,
                T::Accept,
                T::Accept4,
                T::Open,
                T::Openat,
                T::Openat2,
                T::Creat,
            ] {
                mask |= 1u64 << t.index();
            }
        }
        falco_learn_rules::kernel_plan::syscalls_for(mask)
    }

    /// What the loaded rules need the kernel to report of read-only opens
    /// (profiles learn no reads, so only the rules count).
    pub fn read_open_plan(&self) -> falco_learn_rules::kernel_plan::OpenPlan {
        self.rules.read_open_plan()
    }

    /// The write-open prefixes, names and endings the loaded rules need: a write-open
    /// outside them can match no rule (`engine.kernel_filter` drops those a container's
    /// profile allows).
    pub fn write_open_plan(&self) -> falco_learn_rules::kernel_plan::OpenPlan {
        self.rules.write_open_plan()
    }

    /// The outbound (protocol, remote port) pairs the loaded rules need: an outbound event
    /// outside them can match no rule (`engine.kernel_filter` drops those a container's
    /// profile allows).
    pub fn outbound_plan(&self) -> falco_learn_rules::net_plan::NetPlan {
        self.rules.outbound_plan()
    }

    /// The `socket` and `dup` calls the kernel drops because no loaded rule can match them
    /// (profiles learn neither).
    pub fn event_filter_plan(&self) -> falco_learn_probe::filter::EventFilterPlan {
        crate::agent::event_filter(&self.rules)
    }

    /// The inbound (protocol, local port) pairs the loaded rules need: an accepted
    /// connection or a UDP server's reply outside them can match no rule
    /// (`engine.kernel_filter` drops those a container's profile serves).
    pub fn inbound_plan(&self) -> falco_learn_rules::net_plan::NetPlan {
        self.rules.inbound_plan()
    }

    /// Run one event through the default rules and its image's profile.
    ///
    /// An exec that enforce-kill killed (the event's `killed` flag, set by the
    /// kernel) has its exec-anomaly alert marked killed ([`Action::Killed`]).
    pub fn evaluate(&mut self, ev: &Event) -> Verdict {
        self.evaluate_judged(ev, false)
    }

    /// [`Engine::evaluate`] for an exec the kernel did not judge that it would have killed
    /// (`kernel_kills`; [`crate::binding::Binder::would_kill`]): its image's profile judges
    /// it as a kill, an exec anomaly whatever its matcher, globs and lineage say (a file
    /// of the upper layer, a tmpfs or a memfd at an allowed path, which the matcher leaves
    /// to the default rules), so that the kill from userspace is never silent. The verdict
    /// is not `killed` (the kernel did not kill it): the caller kills it.
    pub fn evaluate_judged(&mut self, ev: &Event, kernel_kills: bool) -> Verdict {
        use falco_learn_event::EventType;
        let mut v = Verdict {
            killed: ev.process.exe_flags.killed
                && matches!(ev.event_type(), EventType::Execve | EventType::Execveat),
            ..Verdict::default()
        };
        let min = self.min_priority;
        // Falco's `priority` drops rules at load time, so a rule below it never hides a
        // later one under `rule_matching: first`.
        self.rules.for_each_alerting(
            ev,
            self.rule_matching,
            |r| r.priority <= min,
            |r| {
                v.alerts.push(Raised {
                    cause: Cause::Rule,
                    action: Action::Alerted,
                    alert: r.alert(ev),
                })
            },
        );
        // A profile anomaly is not one of the rules above: it is added after them
        // whatever `rule_matching` is (its generated rule is evaluated alone).
        let c = &ev.container;
        let (repo, tag) = if !c.image_repository.is_empty() {
            (c.image_repository.as_str(), c.image_tag.as_str())
        } else if c.id == "host" {
            match &self.host_profile {
                Some(h) => (h.repository.as_str(), h.tag.as_str()),
                None => return v,
            }
        } else {
            return v;
        };
        match self.profiles.get(repo).and_then(|t| t.get(tag)) {
            Some(l) => {
                let judged = (kernel_kills && !ev.process.exe_flags.killed).then(|| {
                    let mut e = ev.clone();
                    std::sync::Arc::make_mut(&mut e.process).exe_flags.killed = true;
                    e
                });
                if let Some(a) = l.profile.check(judged.as_ref().unwrap_or(ev)) {
                    let action = if v.killed && a.dimension == Dimension::Exec {
                        Action::Killed
                    } else {
                        Action::Alerted
                    };
                    match &l.alert_rules[a.dimension.index()] {
                        Some(rule) => {
                            let mut alert = rule.alert(ev);
                            if action == Action::Killed {
                                mark_killed(&mut alert);
                            }
                            v.alerts.push(Raised {
                                cause: Cause::Anomaly(a.dimension),
                                action,
                                alert,
                            });
                        }
                        None => tracing::error!(
                            rule = %rule_name(&l.profile.image, a.dimension),
                            "generated rule missing for a profile anomaly"
                        ),
                    }
                    v.anomaly = Some(Anomaly {
                        image: l.profile.image.to_string(),
                        dimension: a.dimension,
                        action,
                        parent: a.parent,
                    });
                }
            }
            None => {
                let seen = self
                    .unprofiled_seen
                    .get(repo)
                    .is_some_and(|tags| tags.contains(tag));
                if !seen {
                    self.unprofiled_seen
                        .entry(repo.to_string())
                        .or_default()
                        .insert(tag.to_string());
                    v.new_unprofiled = Some(if tag.is_empty() {
                        repo.to_string()
                    } else {
                        format!("{repo}:{tag}")
                    });
                }
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use falco_learn_test_support::events::{exec, open_write};

    fn from(dir: &tempfile::TempDir) -> ProfilesFrom<'_> {
        ProfilesFrom::Dir {
            path: dir.path(),
            allow_empty: false,
        }
    }

    /// A missing or empty profiles directory is an error naming it (an
    /// empty one only when not allowed), never a silent run without profiles.
    #[test]
    fn missing_or_empty_profiles_directory_is_an_error() {
        let build = |p: ProfilesFrom<'_>| {
            Engine::build(&[], Priority::Debug, p, Priority::Warning, "")
                .map(|(e, _)| e.profile_count())
                .map_err(|e| e.to_string())
        };
        let dir = tempfile::tempdir().expect("tmp");
        let missing = dir.path().join("nonexistent");
        assert_eq!(
            build(ProfilesFrom::configured(&missing, true)),
            Err(format!(
                "profiles directory {} does not exist (--profiles or profiles.dir); to run the \
                 rules without profiles, leave profiles.dir empty",
                missing.display()
            ))
        );
        // no profile files: only other files
        std::fs::write(dir.path().join("README.md"), "notes").expect("write");
        assert_eq!(
            build(ProfilesFrom::configured(dir.path(), false)),
            Err(format!(
                "profiles directory {} holds no profiles (*.yaml, *.yml); to run the rules until \
                 profiles appear there (SIGHUP loads them), set profiles.allow_empty=true",
                dir.path().display()
            ))
        );
        assert_eq!(build(ProfilesFrom::configured(dir.path(), true)), Ok(0));
        let file = dir.path().join("README.md");
        assert_eq!(
            build(ProfilesFrom::configured(&file, true)),
            Err(format!(
                "profiles directory {} is not a directory",
                file.display()
            ))
        );
        assert_eq!(
            ProfilesFrom::configured(Path::new(""), false),
            ProfilesFrom::Nowhere
        );
        assert_eq!(build(ProfilesFrom::Nowhere), Ok(0));
        let with = profile_dir(&["/usr/sbin/nginx"]);
        assert_eq!(build(ProfilesFrom::configured(with.path(), false)), Ok(1));
    }

    fn profile_dir(execs: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tmp");
        let mut p = Profile::new(ImageRef::new("docker.io/library/nginx", "latest"));
        for e in execs {
            p.learn_exec(e, false, 1);
        }
        std::fs::write(
            dir.path().join("nginx.yaml"),
            falco_learn_profiler::to_yaml(&p),
        )
        .expect("write");
        dir
    }

    #[test]
    fn anomaly_alert_is_the_generated_rule_alert() {
        let dir = profile_dir(&["/usr/sbin/nginx"]);
        let (mut eng, _) =
            Engine::build(&[], Priority::Debug, from(&dir), Priority::Warning, "").expect("engine");
        assert_eq!(eng.profile_count(), 1);
        // learned: nothing
        let v = eng.evaluate(&exec("/usr/sbin/nginx", "docker.io/library/nginx"));
        assert!(v.alerts.is_empty(), "{:?}", v.alerts);
        assert!(v.anomaly.is_none());
        // not learned: one alert, equal to what the generated Falco rule gives
        let ev = exec("/dev/vi", "docker.io/library/nginx");
        let v = eng.evaluate(&ev);
        let gen = generate_rules(
            &falco_learn_profiler::from_yaml(
                &std::fs::read_to_string(dir.path().join("nginx.yaml")).expect("read"),
                "nginx.yaml",
            )
            .expect("profile"),
        )
        .expect("gen");
        let (grs, _) = Ruleset::load_sources(&[("g", gen)]);
        let want: Vec<Alert> = grs
            .matching(&ev)
            .into_iter()
            .map(|r| r.alert(&ev))
            .collect();
        assert_eq!(want.len(), 1);
        assert_eq!(v.alerts().cloned().collect::<Vec<_>>(), want);
        assert_eq!(v.alerts[0].cause, Cause::Anomaly(Dimension::Exec));
        assert_eq!(v.alerts[0].action, Action::Alerted);
        assert_eq!(
            v.anomaly,
            Some(Anomaly {
                image: "docker.io/library/nginx:latest".into(),
                dimension: Dimension::Exec,
                action: Action::Alerted,
                parent: None,
            })
        );
        assert!(v.alerts[0].alert.tags.iter().any(|t| t == "falco_learn"));
    }

    /// Falco's `rule_matching`: with `first` (the default) one event alerts once, from
    /// the first matching rule in load order; `all` alerts every matching rule. A rule
    /// below `priority` is not loaded in Falco, so it does not hide the next one.
    #[test]
    fn only_the_first_matching_rule_alerts_unless_rule_matching_is_all() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("r.yaml");
        std::fs::write(
            &f,
            concat!(
                "- rule: Low\n  desc: d\n  condition: evt.type = execve\n",
                "  output: low\n  priority: DEBUG\n",
                "- rule: One\n  desc: d\n  condition: evt.type = execve\n",
                "  output: one\n  priority: WARNING\n",
                "- rule: Two\n  desc: d\n  condition: evt.type = execve\n",
                "  output: two\n  priority: WARNING\n",
            ),
        )
        .expect("write");
        let ev = exec("/bin/true", "docker.io/library/redis");
        let fired = |eng: &mut Engine| -> Vec<String> {
            eng.evaluate(&ev)
                .alerts
                .into_iter()
                .map(|a| a.alert.rule)
                .collect()
        };
        let (mut eng, _) = Engine::build(
            std::slice::from_ref(&f),
            Priority::Debug,
            ProfilesFrom::Nowhere,
            Priority::Warning,
            "",
        )
        .expect("engine");
        assert_eq!(fired(&mut eng), ["Low"]);
        let mut eng = eng.with_rule_matching(RuleMatching::All);
        assert_eq!(fired(&mut eng), ["Low", "One", "Two"]);
        let (mut eng, _) = Engine::build(
            &[f],
            Priority::Warning,
            ProfilesFrom::Nowhere,
            Priority::Warning,
            "",
        )
        .expect("engine");
        assert_eq!(fired(&mut eng), ["One"]);
        let mut eng = eng.with_rule_matching(RuleMatching::All);
        assert_eq!(fired(&mut eng), ["One", "Two"]);
    }

    #[test]
    fn unprofiled_image_is_reported_once() {
        let (mut eng, _) = Engine::build(
            &[],
            Priority::Debug,
            ProfilesFrom::Nowhere,
            Priority::Warning,
            "",
        )
        .expect("engine");
        let ev = exec("/bin/true", "docker.io/library/redis");
        assert_eq!(
            eng.evaluate(&ev).new_unprofiled.as_deref(),
            Some("docker.io/library/redis:latest")
        );
        assert_eq!(eng.evaluate(&ev).new_unprofiled, None);
    }

    #[test]
    fn priority_override_and_bad_rules() {
        let dir = profile_dir(&[]);
        let (mut eng, _) = Engine::build(&[], Priority::Debug, from(&dir), Priority::Critical, "")
            .expect("engine");
        let v = eng.evaluate(&exec("/bin/sh", "docker.io/library/nginx"));
        let a = v
            .alerts()
            .find(|a| a.tags.iter().any(|t| t == "falco_learn"))
            .expect("anomaly alert");
        assert_eq!(a.priority, "Critical");
        assert!(a.output.contains(" Critical "), "{}", a.output);
        let bad = dir.path().join("bad.rules");
        std::fs::write(
            &bad,
            "- rule: x\n  desc: d\n  condition: proc.nope = 1\n  output: o\n  priority: INFO\n",
        )
        .expect("write");
        match Engine::build(&[bad], Priority::Debug, from(&dir), Priority::Warning, "") {
            Err(EngineError::Rules { count, report }) => {
                assert_eq!(count, 1);
                assert!(report.contains("proc.nope"), "{report}");
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("bad rules accepted"),
        }
    }

    /// The reproduction: a profile holding a write to `/tmp/a<LF>b`
    /// loads and is enforced; a broken profile next to a good one is
    /// reported (file:line) and skipped, and the good one is enforced.
    #[test]
    fn a_broken_profile_is_skipped_and_the_others_enforced() {
        let dir = tempfile::tempdir().expect("tmp");
        let l = falco_learn_profiler::Limits::default();
        let mut odd = Profile::new(ImageRef::new("docker.io/library/nginx", "latest"));
        odd.learn_exec("/usr/sbin/nginx", false, 1);
        odd.learn_write("/tmp/a\nb", 1, &l);
        odd.learn_write("/tmp/bad\\xffname", 1, &l);
        std::fs::write(
            dir.path().join("nginx.yaml"),
            falco_learn_profiler::to_yaml(&odd),
        )
        .expect("write");
        let mut redis = Profile::new(ImageRef::new("docker.io/library/redis", "latest"));
        redis.learn_exec("/usr/local/bin/redis-server", false, 1);
        let good = falco_learn_profiler::to_yaml(&redis);
        // a bad entry (line 20 of an otherwise good profile of another image)
        let mut bad: Vec<String> = good
            .replace("docker.io/library/redis", "docker.io/library/busybox")
            .lines()
            .map(str::to_string)
            .collect();
        let at = bad
            .iter()
            .position(|l| l.contains("redis-server"))
            .expect("exec line");
        bad[at] = bad[at].replace("path:", "pth:");
        std::fs::write(dir.path().join("a-busybox.yaml"), bad.join("\n")).expect("write");
        std::fs::write(dir.path().join("b-notyaml.yaml"), "schema_version: [").expect("write");
        std::fs::write(dir.path().join("redis.yaml"), &good).expect("write");
        // a second profile of redis
        std::fs::write(dir.path().join("redis2.yaml"), &good).expect("write");

        let (mut eng, _) =
            Engine::build(&[], Priority::Debug, from(&dir), Priority::Warning, "").expect("engine");
        assert_eq!(eng.profile_count(), 2, "{:?}", eng.failed_profiles());
        let failed: Vec<(String, String)> = eng
            .failed_profiles()
            .iter()
            .map(|f| {
                let name = Path::new(&f.file)
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                (name, f.message.clone())
            })
            .collect();
        assert_eq!(failed.len(), 3, "{failed:?}");
        assert_eq!(failed[0].0, "a-busybox.yaml");
        let busybox = dir.path().join("a-busybox.yaml").display().to_string();
        assert!(
            failed[0].1.starts_with(&format!("{busybox}:{}:", at + 1)),
            "{}",
            failed[0].1
        );
        assert!(
            failed[0].1.contains("unknown field `pth`"),
            "{}",
            failed[0].1
        );
        assert_eq!(failed[1].0, "b-notyaml.yaml");
        assert!(failed[1].1.contains("b-notyaml.yaml:1:"), "{}", failed[1].1);
        assert_eq!(failed[2].0, "redis2.yaml");
        assert!(
            failed[2].1.contains("two profiles for image"),
            "{}",
            failed[2].1
        );

        // both good profiles are enforced
        let v = eng.evaluate(&exec("/bin/sh", "docker.io/library/redis"));
        assert_eq!(
            v.anomaly.map(|a| (a.image, a.dimension)),
            Some(("docker.io/library/redis:latest".into(), Dimension::Exec))
        );
        assert_eq!(v.alerts.len(), 1);
        let v = eng.evaluate(&exec(
            "/usr/local/bin/redis-server",
            "docker.io/library/redis",
        ));
        assert!(v.alerts.is_empty());
        // the odd names are allowed, their neighbours alert
        for (path, alerts) in [
            ("/tmp/a\nb", 0),
            ("/tmp/bad\\xffname", 0),
            ("/tmp/a\nbX", 1),
            ("/tmp/a", 1),
        ] {
            let v = eng.evaluate(&open_write(path, "docker.io/library/nginx"));
            assert_eq!(v.alerts.len(), alerts, "{path:?}: {:?}", v.alerts);
        }
        // the busybox profile was skipped: its image is unprofiled
        let v = eng.evaluate(&exec("/bin/sh", "docker.io/library/busybox"));
        assert!(v.anomaly.is_none());
        assert!(!eng.has_profile("docker.io/library/busybox", "latest"));
    }

    /// A reload where a loaded profile file broke keeps its running version;
    /// a file that never loaded stays out.
    #[test]
    fn a_reload_keeps_the_running_version_of_a_broken_profile() {
        let dir = profile_dir(&["/usr/sbin/nginx"]);
        let build = || {
            Engine::build(&[], Priority::Debug, from(&dir), Priority::Warning, "")
                .expect("engine")
                .0
        };
        let running = build();
        std::fs::write(dir.path().join("nginx.yaml"), "schema_version: [").expect("write");
        std::fs::write(dir.path().join("redis.yaml"), "schema_version: [").expect("write");
        let mut next = build();
        assert_eq!(next.profile_count(), 0);
        assert_eq!(next.failed_profiles().len(), 2);
        assert_eq!(
            next.keep_running_profiles(&running),
            vec!["docker.io/library/nginx:latest".to_string()]
        );
        assert_eq!(next.profile_count(), 1);
        assert_eq!(next.summary.profiles.len(), 1);
        let v = next.evaluate(&exec("/bin/sh", "docker.io/library/nginx"));
        assert_eq!(v.alerts.len(), 1);
    }
}
