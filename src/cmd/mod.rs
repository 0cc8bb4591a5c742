//! One module per subcommand, plus helpers they share.
pub mod bench;
pub mod bench_memory;
pub mod learn;
pub mod profiles;
pub mod record;
pub mod replay;
pub mod rules;
pub mod run;
pub mod selftest;
pub mod signals;

/// A clap value parser for an integer flag that must lie in `min..=max`.
pub fn int_in<T>(min: T, max: T) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy + Send + Sync + 'static,
{
    move |s: &str| match s.trim().parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        Ok(v) => Err(format!("must be between {min} and {max}, got {v}")),
        Err(_) => Err(format!(
            "must be an integer between {min} and {max}, got {s:?}"
        )),
    }
}

/// A clap value parser for a number flag that must lie in `min..=max`.
pub fn float_in(min: f64, max: f64) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync {
    move |s: &str| match s.trim().parse::<f64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!(
            "must be a number between {min} and {max}, got {s:?}"
        )),
    }
}

/// A clap value parser for a duration flag (`90s`, `15m`) within `min..=max`.
pub fn duration_in(
    min: std::time::Duration,
    max: std::time::Duration,
) -> impl Fn(&str) -> Result<std::time::Duration, String> + Clone + Send + Sync {
    move |s: &str| {
        let range = || {
            format!(
                "between {} and {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            )
        };
        match humantime::parse_duration(s.trim()) {
            Ok(d) if d >= min && d <= max => Ok(d),
            Ok(d) => Err(format!(
                "must be {}, got {}",
                range(),
                humantime::format_duration(d)
            )),
            Err(e) => Err(format!("{e} (a duration {}: 90s, 15m, 1h)", range())),
        }
    }
}

/// One year (365.25 days, as humantime counts it): the longest duration any
/// flag takes.
pub const YEAR: std::time::Duration = std::time::Duration::from_secs(31_557_600);

/// `--duration` of `learn`, `record` and `run`: 1 ms to a year (0 would
/// silently mean "no limit" to one and "stop at once" to another).
pub fn duration_flag(s: &str) -> Result<std::time::Duration, String> {
    duration_in(std::time::Duration::from_millis(1), YEAR)(s)
}

/// The agent's configuration on the command line, the same for `run` and
/// `replay`: the file, `-o` overrides, and the flags that set keys (typed).
#[derive(clap::Args, Debug, Clone)]
pub struct AgentConfigArgs {
    /// Rules files in load order (repeatable); default: the configured ones
    /// (`rules_files`), else the embedded ruleset.
    #[arg(short = 'r', long = "rules")]
    pub rules: Vec<std::path::PathBuf>,
    /// Directory of reviewed profiles (YAML, `profiles.dir`); it must exist and
    /// hold profiles (unless `-o profiles.allow_empty=true`). Without it: the rules only.
    #[arg(long)]
    pub profiles: Option<std::path::PathBuf>,
    /// Configuration file (YAML, like falco.yaml; see deploy/falco-learn.yaml).
    #[arg(short = 'c', long = "config")]
    pub config: Option<std::path::PathBuf>,
    /// Override a configuration key: `-o outputs.file.enabled=true` (repeatable).
    #[arg(short = 'o', value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

impl AgentConfigArgs {
    /// Whether any of the options was given.
    pub fn given(&self) -> bool {
        !self.rules.is_empty()
            || self.profiles.is_some()
            || self.config.is_some()
            || !self.overrides.is_empty()
    }

    /// Where the configuration comes from, flags as typed overrides.
    pub fn source(
        &self,
        rule_matching: Option<falco_learn_rules::RuleMatching>,
    ) -> falco_learn_enforcer::config::ConfigSource {
        falco_learn_enforcer::config::ConfigSource {
            file: self.config.clone(),
            overrides: self.overrides.clone(),
            flags: falco_learn_enforcer::config::Flags {
                rules_files: self.rules.clone(),
                profiles_dir: self.profiles.clone(),
                rule_matching,
            },
        }
    }
}
