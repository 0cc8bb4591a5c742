//! `falco-learn`: learns what each container image normally does and flags everything else.

mod cmd;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  falco-learn record --duration 5s -o events.jsonl     capture live events (root)
  falco-learn record --image nginx --duration 1m       only events of nginx containers
  falco-learn replay events.jsonl                      read a recording back
  falco-learn replay --rules rules/default/falco-learn_rules.yaml events.jsonl
                                                        Falco JSON alerts for a recording
  falco-learn rules check /etc/falco/falco_rules.yaml  report problems in a rules file
  falco-learn fields                                   the Falco fields falco-learn knows
  falco-learn --image nginx --duration 1h              learn nginx's profile (same as `learn …`)
  falco-learn learn --image nginx --from events.jsonl  learn from a recording
  falco-learn profiles export --dir profiles           profiles/<image>.yaml for review in git
  falco-learn rules generate --image nginx             Falco allowlist rules from a profile
  falco-learn selftest                                 check the probe on this kernel (root)";

#[derive(Parser)]
#[command(name = "falco-learn", version, about, after_help = EXAMPLES)]
struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info`, `falco_learn_probe=debug`.
    #[arg(long, global = true, env = "FALCO_LEARN_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand: learn (`falco-learn --image nginx --duration 1h`).
    #[command(flatten)]
    learn: cmd::learn::LearnArgs,
}

#[derive(Subcommand)]
enum Command {
    /// The node agent: default rules + learned profiles on live syscalls (root).
    Run(cmd::run::RunArgs),
    /// Capture live events with the eBPF probe and write them as JSON lines.
    Record(cmd::record::RecordArgs),
    /// Read a JSON-lines recording back; with rules, profiles or a config: the
    /// agent's alerts on it (offline enforcement).
    Replay(cmd::replay::ReplayArgs),
    /// Work with Falco rules files.
    #[command(subcommand)]
    Rules(cmd::rules::RulesCommand),
    /// List the Falco fields falco-learn can evaluate.
    Fields(cmd::rules::FieldsArgs),
    /// Learn per-image profiles from live events or a recording into the store.
    Learn(cmd::learn::LearnArgs),
    /// Work with learned profiles: list, show, diff, merge, export, import.
    #[command(subcommand)]
    Profiles(cmd::profiles::ProfilesCommand),
    /// Load the probe and check that it reports real syscalls exactly (root).
    Selftest(cmd::selftest::SelftestArgs),
    /// Benchmarks (root): the probe's cost on syscall loops.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
}

/// Fixed glibc malloc thresholds. By default glibc raises its mmap threshold to the
/// largest block freed so far, and its trim threshold to twice that: after the probe
/// frees its parse of the kernel's BTF (blocks of ~10 MiB) the heap would keep up to
/// ~20 MiB free without returning it, which a burst of events then fills (the agent's
/// RSS grew from 24 to 55 MiB under a write-open flood with 3 MiB of live heap,
/// heaptrack). Fixed values keep large blocks in their own mappings, returned on free,
/// and the free top of the heap above 1 MiB is returned.
#[cfg(target_env = "gnu")]
fn malloc_thresholds() {
    // SAFETY: mallopt only changes the allocator's tunables; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1024 * 1024);
    }
}

fn main() -> std::process::ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    #[cfg(target_env = "gnu")]
    malloc_thresholds();
    let matches = Cli::command().get_matches();
    // learning flags belong either before no subcommand (`falco-learn --image nginx
    // --duration 1h`) or after `learn`; `--log` goes anywhere
    if let Some((sub, _)) = matches.subcommand() {
        let misplaced: Vec<String> = Cli::command()
            .get_arguments()
            .filter(|a| a.get_id() != "log")
            .filter(|a| {
                matches.value_source(a.get_id().as_str())
                    == Some(clap::parser::ValueSource::CommandLine)
            })
            .map(|a| format!("--{}", a.get_long().unwrap_or(a.get_id().as_str())))
            .collect();
        if !misplaced.is_empty() {
            eprintln!(
                "falco-learn: error: {} {} for learning: use {} without a subcommand or after `learn`, not before `{sub}`",
                misplaced.join(", "),
                if misplaced.len() == 1 { "is" } else { "are" },
                if misplaced.len() == 1 { "it" } else { "them" }
            );
            return std::process::ExitCode::from(2);
        }
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    // sled's own log lines (a full disk: a dozen ERROR lines from its flusher)
    // say less than the store's error does; `--log sled=…` shows them.
    let directives = if cli.log.contains("sled") {
        cli.log.clone()
    } else {
        format!("{},sled=off", cli.log)
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sled=off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let Some(command) = cli.command else {
        // `falco-learn --image nginx --duration 1h`: learning is the default.
        if cli.learn.image.is_none() {
            let _ = Cli::command().print_help();
            return std::process::ExitCode::from(2);
        }
        return finish(cmd::learn::run(cli.learn));
    };
    let result = match command {
        Command::Run(a) => cmd::run::run(a),
        Command::Record(a) => cmd::record::run(a),
        Command::Replay(a) => cmd::replay::run(a),
        Command::Rules(c) => cmd::rules::run(c),
        Command::Fields(a) => cmd::rules::fields(a),
        Command::Learn(a) => cmd::learn::run(a),
        Command::Profiles(c) => cmd::profiles::run(c),
        Command::Bench(c) => cmd::bench::run(c),
        Command::Selftest(a) => cmd::selftest::run(a),
    };
    finish(result)
}

fn finish(result: anyhow::Result<std::process::ExitCode>) -> std::process::ExitCode {
    match result {
        Ok(code) => code,
        // `falco-learn fields | head`: the reader went away; nothing to report
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("falco-learn: error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::any::TypeId;

    /// Every numeric flag of every subcommand (found by walking the CLI, so a
    /// new one cannot be forgotten) refuses a value outside its range, with
    /// an error naming the flag and the range.
    #[test]
    fn every_numeric_flag_is_bounded() {
        fn walk(c: &clap::Command, path: &[String], out: &mut Vec<(Vec<String>, String)>) {
            let numeric = [
                TypeId::of::<u8>(),
                TypeId::of::<u16>(),
                TypeId::of::<u32>(),
                TypeId::of::<u64>(),
                TypeId::of::<usize>(),
                TypeId::of::<i32>(),
                TypeId::of::<i64>(),
                TypeId::of::<f32>(),
                TypeId::of::<f64>(),
                TypeId::of::<std::time::Duration>(),
            ];
            for a in c.get_arguments() {
                let t = a.get_value_parser().type_id();
                if numeric.iter().any(|n| t == *n) {
                    let name = match a.get_long() {
                        Some(l) => format!("--{l}"),
                        None => a.get_id().to_string(),
                    };
                    out.push((path.to_vec(), name));
                }
            }
            for sub in c.get_subcommands() {
                let mut p = path.to_vec();
                p.push(sub.get_name().to_string());
                walk(sub, &p, out);
            }
        }
        let mut found = Vec::new();
        walk(&Cli::command(), &[], &mut found);
        // (flag, a value out of range, the error's words)
        let cases: &[(&str, &str, &str)] = &[
            ("--duration", "0s", "must be between 1ms and 1year, got 0s"),
            (
                "--flush-interval",
                "2h",
                "must be between 0s and 1h, got 2h",
            ),
            (
                "--file-dir-threshold",
                "0",
                "must be between 1 and 100000, got 0",
            ),
            ("--file-min-depth", "65", "must be between 1 and 64, got 65"),
            ("--peers-max", "1", "must be between 2 and 4096, got 1"),
            ("--ring-mib", "2048", "must be between 1 and 1024, got 2048"),
            ("--timeout", "0s", "must be between 100ms and 1h, got 0s"),
            (
                "--peer-settle",
                "11m",
                "must be between 0s and 10m, got 11m",
            ),
            ("--rounds", "0", "must be between 1 and 1000, got 0"),
            (
                "--scale",
                "0",
                "must be a number between 0.001 and 1000, got \"0\"",
            ),
            ("iters", "0", "must be between 1 and 1000000000, got 0"),
            (
                "--profiles",
                "100001",
                "must be between 0 and 100000, got 100001",
            ),
            ("--writes", "0", "must be between 1 and 1000000000, got 0"),
            ("--execs", "0", "must be between 1 and 1000000, got 0"),
        ];
        assert!(found.len() >= 15, "{found:?}");
        for (path, flag) in &found {
            let Some((_, bad, words)) = cases.iter().find(|(f, _, _)| f == flag) else {
                panic!(
                    "numeric flag {flag} of `{}` has no bound in this test",
                    path.join(" ")
                );
            };
            let mut argv = vec!["falco-learn".to_string()];
            argv.extend(path.iter().cloned());
            if flag.starts_with("--") {
                argv.push(flag.to_string());
            } else {
                argv.push("open-read".into()); // bench worker KIND ITERS
            }
            argv.push(bad.to_string());
            let err = match Cli::command().try_get_matches_from(&argv) {
                Ok(_) => panic!("{argv:?} accepted"),
                Err(e) => e.to_string(),
            };
            assert!(
                err.contains(&format!("for '{flag}"))
                    || err.contains(&format!("'<{}>'", flag.to_uppercase())),
                "{argv:?}: the error names the flag: {err}"
            );
            assert!(err.contains(words), "{argv:?}: {err}");
        }
        // the same ranges hold one step inside
        for ok in [
            vec!["falco-learn", "learn", "--duration", "1ms"],
            vec![
                "falco-learn",
                "learn",
                "--flush-interval",
                "0s",
                "--peers-max",
                "2",
            ],
            vec!["falco-learn", "record", "--ring-mib", "1024"],
            vec!["falco-learn", "bench", "probe", "--scale", "0.001"],
        ] {
            assert!(Cli::command().try_get_matches_from(&ok).is_ok(), "{ok:?}");
        }
    }
}
