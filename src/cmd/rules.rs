//! `falco-learn rules …` and `falco-learn fields`.

use anyhow::Context;
use clap::{Args, Subcommand};
use falco_learn_event::fields::FIELDS;
use falco_learn_rules::Ruleset;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Load rules files (in order, later files modify earlier ones) and print
    /// every problem found: numbered errors and warnings with file:line:col.
    /// Exits non-zero when there is an error.
    #[command(
        after_help = "Examples:\n  falco-learn rules check /etc/falco/falco_rules.yaml my_rules.yaml\n  \
        falco-learn rules check --explain-kernel /etc/falco/falco_rules.yaml   # what the kernel reports\n  \
        falco-learn rules check --strict rules/learned/nginx.yaml              # loadable by stock Falco?"
    )]
    Check {
        /// Rules files, loaded together in this order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print errors only (warnings are still counted).
        #[arg(long)]
        no_warnings: bool,
        /// Also print the kernel plan these rules need, with the rules that need each part:
        /// the syscall programs attached, the read-only opens reported (path prefixes, file
        /// names, endings), the socket and dup calls reported, and in the enforce modes the
        /// write-opens and connection ports a profile's allowed events are still reported for.
        #[arg(long)]
        explain_kernel: bool,
        /// Fail on what stock Falco would reject or warn about: Falco's rules-file schema
        /// (unknown keys, types, required keys, priorities, exceptions, overrides, plugin
        /// versions) and the load warnings Falco gives too. Warnings about falco-learn's
        /// own limits (event types it does not capture, fields it never fills) do not fail.
        #[arg(long)]
        strict: bool,
    },
    /// Generate Falco allowlist rules from learned profiles: one file per
    /// image, one rule per dimension (process, outbound connection, file write).
    Generate(crate::cmd::profiles::GenerateArgs),
}

/// `falco-learn fields`.
#[derive(Args, Debug)]
pub struct FieldsArgs {
    /// Only fields whose name starts with this prefix (e.g. `proc.` or `fd.`).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Print the catalogue as JSON lines.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: RulesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RulesCommand::Check {
            files,
            no_warnings,
            explain_kernel,
            strict,
        } => check(&files, no_warnings, explain_kernel, strict),
        RulesCommand::Generate(a) => crate::cmd::profiles::generate(a),
    }
}

fn check(
    files: &[PathBuf],
    no_warnings: bool,
    explain_kernel: bool,
    strict: bool,
) -> anyhow::Result<ExitCode> {
    let (rs, report) = Ruleset::load_files(files);
    let mut out = std::io::stdout().lock();
    for f in &report.files {
        writeln!(
            out,
            "{}: {} lists, {} macros, {} rules",
            f.name, f.lists, f.macros, f.rules
        )?;
    }
    for (i, d) in report.errors.iter().enumerate() {
        writeln!(out, "[E{}] {d}", i + 1)?;
    }
    if !no_warnings {
        for (i, d) in report.warnings.iter().enumerate() {
            writeln!(out, "[W{}] {d}", i + 1)?;
        }
    }
    if report.errors_not_kept + report.warnings_not_kept > 0 {
        writeln!(
            out,
            "... {} more errors and {} more warnings not shown (only the first {} of each are kept)",
            report.errors_not_kept,
            report.warnings_not_kept,
            falco_learn_rules::limits::MAX_DIAGNOSTICS
        )?;
    }
    writeln!(
        out,
        "{} rules compiled ({} enabled); {} errors, {} warnings",
        rs.rules().len(),
        rs.enabled_count(),
        report.errors.len() + report.errors_not_kept,
        report.warnings.len() + report.warnings_not_kept
    )?;
    if explain_kernel {
        let sc = falco_learn_rules::kernel_plan::syscalls_for(rs.event_types_needed());
        writeln!(
            out,
            "kernel: syscall programs attached for {} (exec, fork and exit always; with \
             profiles loaded also connect, sendto, sendmsg and the opens), each also for its \
             32-bit (ia32, socketcall, x32) twins unless engine.ia32_syscalls is false",
            if sc.is_empty() {
                "no syscall".to_string()
            } else {
                sc.join(", ")
            }
        )?;
        let explain = falco_learn_enforcer::agent::explain_open_plan;
        explain(&mut out, "read-only opens", &rs.read_open_plan())?;
        writeln!(
            out,
            "kernel: in the enforce modes (engine.kernel_filter), a write-open outside the \
             following that its container's profile allows is dropped in the kernel"
        )?;
        explain(&mut out, "write-opens", &rs.write_open_plan())?;
        writeln!(
            out,
            "kernel: in the enforce modes (engine.kernel_filter), a connection (outbound: to a \
             remote port, inbound: on a local port) not listed below that its container's \
             profile allows is dropped in the kernel"
        )?;
        falco_learn_enforcer::agent::explain_net_plan(&mut out, &rs.outbound_plan())?;
        falco_learn_enforcer::agent::explain_net_plan(&mut out, &rs.inbound_plan())?;
        falco_learn_enforcer::agent::explain_event_filter(
            &mut out,
            &falco_learn_enforcer::agent::event_filter(&rs),
        )?;
    }
    let mut strict_failed = false;
    if strict {
        // files the load could read (a file over the size limit is a load error already)
        let mut sources = Vec::new();
        for f in files {
            let small = std::fs::metadata(f)
                .map(|m| m.len() <= falco_learn_rules::limits::MAX_FILE_BYTES as u64)
                .unwrap_or(false);
            if small {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("reading {} for --strict", f.display()))?;
                sources.push((f.display().to_string(), text));
            }
        }
        let problems = falco_learn_rules::strict::check(&sources, &report);
        for (i, d) in problems.iter().enumerate() {
            writeln!(out, "[S{}] {d}", i + 1)?;
        }
        writeln!(
            out,
            "strict: {} problem(s) stock Falco would reject or warn about",
            problems.len()
        )?;
        strict_failed = !problems.is_empty();
    }
    Ok(if report.has_errors() || strict_failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn fields(args: FieldsArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let prefix = args.prefix.as_deref().unwrap_or("");
    for f in FIELDS.iter().filter(|f| f.name.starts_with(prefix)) {
        if args.json {
            let v = serde_json::json!({
                "name": f.name,
                "type": f.typ.as_str(),
                "arg": f.arg_description(),
                "desc": f.desc,
            });
            writeln!(out, "{v}").context("writing to stdout")?;
        } else {
            let name = match f.arg_description() {
                "" => f.name.to_string(),
                a => format!("{} {a}", f.name),
            };
            writeln!(out, "{name:<48} {:<8} {}", f.typ.as_str(), f.desc)
                .context("writing to stdout")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
