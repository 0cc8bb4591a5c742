//! `falco-learn replay`: read a JSON-lines recording back; with `--rules`,
//! evaluate Falco rules on it and print Falco JSON alerts on stdout.

use anyhow::Context;
use clap::Args;
use falco_learn_event::JsonlReader;
use falco_learn_rules::Ruleset;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  falco-learn replay events.jsonl\n  falco-learn replay --count events.jsonl\n  falco-learn replay -r rules/default/falco-learn_rules.yaml events.jsonl\n  falco-learn replay -r /etc/falco/falco_rules.yaml -r local.yaml - < events.jsonl"
)]
pub struct ReplayArgs {
    /// Rules files to evaluate, in load order (repeatable). Without it the
    /// events are printed back as JSON lines.
    #[arg(short = 'r', long = "rules")]
    pub rules: Vec<PathBuf>,
    /// Which of the rules matching one event alert (Falco's `rule_matching`):
    /// `first` (Falco's default) or `all`.
    #[arg(long = "rule-matching", value_name = "first|all", default_value = "first",
          value_parser = ["first", "all"])]
    pub rule_matching: String,
    /// Without --rules: print only the number of events.
    #[arg(long)]
    pub count: bool,
    /// JSON-lines recording; `-` reads standard input.
    pub file: PathBuf,
}

pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let name = args.file.display().to_string();
    let input: Box<dyn BufRead> = if name == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(
            std::fs::File::open(&args.file).with_context(|| format!("cannot open {name}"))?,
        ))
    };
    let ruleset = if args.rules.is_empty() {
        None
    } else {
        let (rs, report) = Ruleset::load_files(&args.rules);
        if report.has_errors() {
            eprint!("{report}");
            anyhow::bail!(
                "{} error(s) in the rules; nothing evaluated (see `falco-learn rules check`)",
                report.errors.len()
            );
        }
        eprintln!(
            "loaded {} rules ({} enabled), {} warnings",
            rs.rules().len(),
            rs.enabled_count(),
            report.warnings.len()
        );
        Some(rs)
    };
    let mode = falco_learn_rules::RuleMatching::parse(&args.rule_matching).unwrap_or_default();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let (mut events, mut alerts, mut bad) = (0u64, 0u64, 0u64);
    for item in JsonlReader::new(input, name.clone()) {
        let mut ev = match item {
            Ok(ev) => ev,
            Err(e) => {
                bad += 1;
                eprintln!("{e}");
                continue;
            }
        };
        events += 1;
        if ev.num == 0 {
            ev.num = events;
        }
        let written = match &ruleset {
            Some(rs) => {
                let mut res = Ok(());
                rs.for_each_alerting(
                    &ev,
                    mode,
                    |_| true,
                    |rule| {
                        alerts += 1;
                        if res.is_ok() {
                            res = serde_json::to_writer(&mut out, &rule.alert(&ev))
                                .map_err(std::io::Error::from)
                                .and_then(|_| out.write_all(b"\n"));
                        }
                    },
                );
                res
            }
            None if args.count => Ok(()),
            None => falco_learn_event::write_jsonl(&mut out, &ev),
        };
        if let Err(e) = written {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(e).context("writing to stdout");
        }
    }
    if args.count && ruleset.is_none() {
        writeln!(out, "{events}")?;
    }
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        r => r.context("writing to stdout")?,
    }
    if ruleset.is_some() {
        eprintln!("{events} events, {alerts} alerts, {bad} unreadable lines");
    } else if bad > 0 {
        eprintln!("{events} events, {bad} unreadable lines");
    }
    Ok(if bad > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
