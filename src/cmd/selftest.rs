//! `falco-learn selftest`: load the probe on this node's kernel and check that it reports
//! real syscalls exactly (see `falco_learn_probe::selftest`).

use clap::Args;
use falco_learn_probe::selftest::{self, SelftestConfig};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    sudo falco-learn selftest                   every check, enforce-kill included\n  \
    sudo falco-learn selftest --no-kill         without the enforce-kill check (no cgroup v2 needed)\n  \
    sudo falco-learn selftest --timeout 1m      slow machines (emulated CPUs)\n  \
    sudo falco-learn selftest --syscall-hook tracepoints   the other family of syscall hooks (5.15+)\n\n\
Loads the eBPF probe, runs execs (plain, from tmpfs, from a memfd), an open for write, a TCP\n\
connect to a loopback listener, a TCP server accepting and a UDP server answering on bound\n\
ports, a symlink, a ptrace attach, a fork and an exit in child\n\
processes, and compares every reported event with what was done. Exit status 0 when every\n\
check passed, 1 when one failed, 2 when the probe could not load (the reason is printed).")]
pub struct SelftestArgs {
    /// How long to wait for each expected event, e.g. `20s`.
    #[arg(
        long,
        default_value = "20s",
        value_parser = crate::cmd::duration_in(Duration::from_millis(100), Duration::from_secs(3600))
    )]
    pub timeout: Duration,
    /// Skip the enforce-kill check (it creates a cgroup under the cgroup v2 hierarchy).
    #[arg(long)]
    pub no_kill: bool,
    /// Which syscall hooks to check: `auto` (what the agent picks on this kernel),
    /// `dispatch` (one `sys_exit` program, a tail call per syscall) or `tracepoints` (each
    /// syscall's own tracepoint, Linux 5.15+), as `engine.syscall_hook`.
    #[arg(long, default_value = "auto", value_name = "HOOK")]
    pub syscall_hook: falco_learn_probe::SyscallHook,
}

pub fn run(args: SelftestArgs) -> anyhow::Result<ExitCode> {
    let cfg = SelftestConfig {
        timeout: args.timeout,
        kill: !args.no_kill,
        syscall_hook: args.syscall_hook,
    };
    let report = match selftest::run(&cfg) {
        Ok(r) => r,
        Err(e) => {
            println!("selftest: the probe did not load: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    println!(
        "selftest: probe loaded on Linux {} in {:.1} s ({} syscall hooks)",
        report.kernel,
        report.load_time.as_secs_f64(),
        report.syscall_hook.name()
    );
    for c in &report.checks {
        match &c.outcome {
            Ok(what) => println!("selftest: ok   {:<17} {what}", c.name),
            Err(why) => println!("selftest: FAIL {:<17} {why}", c.name),
        }
    }
    let (passed, all) = (report.passed(), report.checks.len());
    if report.ok() {
        println!(
            "selftest: all {all} checks passed on Linux {}",
            report.kernel
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "selftest: {} of {all} checks FAILED on Linux {}",
            all - passed,
            report.kernel
        );
        Ok(ExitCode::from(1))
    }
}
