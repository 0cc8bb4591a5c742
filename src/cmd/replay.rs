//! `falco-learn replay`: read a JSON-lines recording back. With `--rules`,
//! `--profiles` or `-c`, run it through the agent's own pipeline (offline
//! enforcement: the alerts `run` would have raised, with the events' own
//! times); otherwise print (or count) the events.

use anyhow::Context;
use clap::Args;
use falco_learn_enforcer::agent::{self, Mode};
use falco_learn_enforcer::pipeline::{DropAlerts, JsonLines, NoControl, Options, Pipeline};
use falco_learn_enforcer::source::{Next, RecordingSource, Source};
use falco_learn_rules::RuleMatching;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    falco-learn replay events.jsonl\n  \
    falco-learn replay --count events.jsonl\n  \
    falco-learn replay -r rules/default/falco-learn_rules.yaml events.jsonl\n  \
    falco-learn replay -r /etc/falco/falco_rules.yaml -r local.yaml - < events.jsonl\n  \
    falco-learn replay --profiles profiles/ events.jsonl   (embedded rules + profiles, as `run`)\n  \
    falco-learn replay -c deploy/falco-learn.yaml --profiles profiles/ events.jsonl\n\n\
With --rules, --profiles or -c the recording goes through the agent's pipeline: the alerts\n\
`run` would have raised with the same configuration (rules and profile anomalies alike, an\n\
exec the recording marks killed as `action=killed`), timed by the events, as JSON lines on\n\
stdout (the configuration's outputs are not used).")]
pub struct ReplayArgs {
    /// The same configuration as `run`; any of these evaluates the recording.
    #[command(flatten)]
    pub config: crate::cmd::AgentConfigArgs,
    /// Which of the rules matching one event alert (Falco's `rule_matching`):
    /// `first` (Falco's default) or `all`; default: the configuration's.
    #[arg(long = "rule-matching", value_name = "first|all",
          value_parser = ["first", "all"])]
    pub rule_matching: Option<String>,
    /// Without rules or profiles: print only the number of events.
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
    let mut source = RecordingSource::new(input, &name);
    let evaluate = args.config.given();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let written = if evaluate {
        let cfg = args
            .config
            .source(args.rule_matching.as_deref().and_then(RuleMatching::parse))
            .load()?;
        let engine = agent::build_engine(&cfg, Mode::EnforceAlert)?;
        let opts = Options {
            drops: DropAlerts {
                threshold: cfg.drops.threshold,
                rate_limit: cfg.drops.rate_limit,
            },
            ..Options::default()
        };
        let mut sink = JsonLines(&mut out);
        match Pipeline::new(engine, &mut source, &mut sink, &NoControl, opts).run() {
            Ok(s) => {
                eprintln!(
                    "{} events, {} alerts, {} unreadable lines",
                    s.events,
                    s.alerts,
                    source.unreadable()
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    } else {
        echo(&mut source, &mut out, args.count)
    };
    match written.and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        r => r.context("writing to stdout")?,
    }
    if !evaluate && source.unreadable() > 0 {
        eprintln!(
            "{} events, {} unreadable lines",
            source.events(),
            source.unreadable()
        );
    }
    Ok(if source.unreadable() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Print the events back (or their number).
fn echo<R: BufRead>(
    source: &mut RecordingSource<R>,
    out: &mut impl Write,
    count: bool,
) -> std::io::Result<()> {
    while let Next::Event(ev) = source.next(Duration::ZERO) {
        if !count {
            falco_learn_event::write_jsonl(out, &ev)?;
        }
    }
    if count {
        writeln!(out, "{}", source.events())?;
    }
    Ok(())
}
