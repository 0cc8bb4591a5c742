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
  falco-learn fields                                   the Falco fields falco-learn knows";

#[derive(Parser)]
#[command(name = "falco-learn", version, about, after_help = EXAMPLES)]
struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info`, `falco_learn_probe=debug`.
    #[arg(long, global = true, env = "FALCO_LEARN_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The node agent: default rules + learned profiles on live syscalls (root).
    Run(cmd::run::RunArgs),
    /// Capture live events with the eBPF probe and write them as JSON lines.
    Record(cmd::record::RecordArgs),
    /// Read a JSON-lines recording back through the pipeline.
    Replay(cmd::replay::ReplayArgs),
    /// Work with Falco rules files.
    #[command(subcommand)]
    Rules(cmd::rules::RulesCommand),
    /// List the Falco fields falco-learn can evaluate.
    Fields(cmd::rules::FieldsArgs),
    /// Benchmarks (root): the probe's cost on syscall loops.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Run(a) => cmd::run::run(a),
        Command::Record(a) => cmd::record::run(a),
        Command::Replay(a) => cmd::replay::run(a),
        Command::Rules(c) => cmd::rules::run(c),
        Command::Fields(a) => cmd::rules::fields(a),
        Command::Bench(c) => cmd::bench::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("falco-learn: error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
