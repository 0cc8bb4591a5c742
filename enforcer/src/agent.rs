//! The node agent from a configuration: the engine it builds, the probe
//! settings it derives, and what it says at start. `run` and `replay` both
//! come through here, so a recording is evaluated exactly as live events are.

use crate::config::Config;
use crate::{Engine, EngineError, ProfilesFrom};
use falco_learn_probe::ProbeConfig;
use falco_learn_rules::kernel_plan::OpenPlan;
use falco_learn_rules::net_plan::NetPlan;
use std::io::Write;

/// What the agent does about anomalies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Alert on rule matches and profile anomalies.
    #[default]
    EnforceAlert,
    /// enforce-alert, and kill in the kernel every exec in a profiled
    /// container whose executable is not in its image's profile.
    EnforceKill,
}

/// Why the agent cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "--mode enforce-kill kills execs outside their image's profile, and no profiles are \
         configured: give --profiles DIR (or profiles.dir)"
    )]
    KillWithoutProfiles,
    #[error(
        "--mode enforce-kill needs the cgroup v2 hierarchy (containers are recognised in the \
         kernel by their cgroup v2 id) and none is mounted here; use --mode enforce-alert"
    )]
    KillWithoutCgroup2,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Refuse a mode this configuration or machine cannot run.
pub fn check_mode(cfg: &Config, mode: Mode) -> Result<(), AgentError> {
    if mode == Mode::EnforceKill {
        if cfg.profiles.dir.as_os_str().is_empty() {
            return Err(AgentError::KillWithoutProfiles);
        }
        if falco_learn_probe::kill::cgroup2_mount().is_none() {
            return Err(AgentError::KillWithoutCgroup2);
        }
    }
    Ok(())
}

/// Whether the kernel filter (`engine.kernel_filter`) can run here: it puts containers
/// under their profile by cgroup v2 id, which is per container only with the cgroup v2
/// hierarchy mounted. Without it every task shares one id, and a container's profile would
/// apply to the whole machine: the filter is turned off (events go to userspace), with a
/// warning.
pub fn kernel_filter_on(cfg: &Config) -> bool {
    if !cfg.engine.kernel_filter {
        return false;
    }
    if falco_learn_probe::kill::cgroup2_mount().is_none() {
        tracing::warn!(
            "engine.kernel_filter: no cgroup v2 hierarchy is mounted, so containers have no \
             cgroup id of their own; the kernel filter is off and every event goes to userspace"
        );
        return false;
    }
    true
}

/// The engine `cfg` describes, with what was loaded logged.
pub fn build_engine(cfg: &Config, mode: Mode) -> Result<Engine, AgentError> {
    let from = ProfilesFrom::configured(&cfg.profiles.dir, cfg.profiles.allow_empty);
    let (engine, report) = Engine::build(
        &cfg.rules_files,
        cfg.priority,
        from,
        cfg.profiles.priority,
        &cfg.profiles.host_image,
    )?;
    let engine = engine.with_rule_matching(cfg.rule_matching);
    if from != ProfilesFrom::Nowhere && engine.profile_count() == 0 {
        tracing::warn!(
            "profiles directory {} holds no profiles (profiles.allow_empty): only the rules \
             apply{} until profiles appear there and SIGHUP loads them",
            cfg.profiles.dir.display(),
            if mode == Mode::EnforceKill {
                " and enforce-kill kills nothing"
            } else {
                ""
            }
        );
    }
    if !report.warnings.is_empty() {
        tracing::info!(
            "rules loaded with {} warning(s) (see `falco-learn rules check`)",
            report.warnings.len()
        );
    }
    let s = &engine.summary;
    tracing::info!(
        "rules: {} ({} rules, {} enabled); profiles from {}: {}",
        s.rules_files.join(", "),
        s.rules,
        s.enabled_rules,
        if from == ProfilesFrom::Nowhere {
            "nowhere (no --profiles or profiles.dir)".to_string()
        } else {
            cfg.profiles.dir.display().to_string()
        },
        if s.profiles.is_empty() {
            "none".to_string()
        } else {
            s.profiles
                .iter()
                .map(|(i, sizes)| format!("{i} ({sizes})"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    Ok(engine)
}

/// The probe settings for `engine` under `cfg`: the configured probe
/// section, with the syscalls and read filter the engine needs.
pub fn probe_config(cfg: &Config, engine: &Engine, mode: Mode) -> ProbeConfig {
    let plan = engine.read_open_plan();
    let mut p = cfg.probe_config();
    p.syscalls = Some(
        engine
            .needed_syscalls()
            .iter()
            .map(|s| s.to_string())
            .collect(),
    );
    p.read = open_filter(&plan);
    p.kill = mode == Mode::EnforceKill;
    p
}

/// What the kernel reports of one kind of open under `plan`, as `rules check
/// --explain-kernel` prints it: `what` names the opens ("read-only opens", "write-opens").
pub fn explain_open_plan(out: &mut impl Write, what: &str, plan: &OpenPlan) -> std::io::Result<()> {
    match &plan.prefixes {
        None => writeln!(
            out,
            "kernel: every one of the {what} is reported (the filter is off): {} cannot be \
             reduced to the path prefixes, file names and file-name endings the kernel holds \
             (at most {} of each, endings of at most {} lengths)",
            plan.unconstrained.join(", "),
            falco_learn_rules::kernel_plan::MAX_ENTRIES,
            falco_learn_rules::kernel_plan::MAX_SUFFIX_LENGTHS,
        )?,
        Some(p) => {
            writeln!(
                out,
                "kernel: {what} reported under {} path prefixes, {} file names and {} file-name \
                 endings{}:",
                p.len(),
                plan.names.len(),
                plan.suffixes.len(),
                if plan.noncanonical.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", and every one whose passed path is not canonical (for {})",
                        plan.noncanonical.join(", ")
                    )
                }
            )?;
            for (prefix, rules) in p.iter().zip(&plan.needed_by) {
                writeln!(out, "  {prefix:<32} {}", rules.join(", "))?;
            }
            for (name, rules) in &plan.names {
                writeln!(out, "  name {name:<27} {}", rules.join(", "))?;
            }
            for (ending, rules) in &plan.suffixes {
                writeln!(out, "  name ending {ending:<20} {}", rules.join(", "))?;
            }
        }
    }
    Ok(())
}

/// What the kernel reports of one side's traffic under `plan` in the enforce modes, as
/// `rules check --explain-kernel` prints it.
pub fn explain_net_plan(out: &mut impl Write, plan: &NetPlan) -> std::io::Result<()> {
    use falco_learn_rules::net_plan::{Side, L4};
    let (side, port) = match plan.side {
        Side::Client => ("outbound", "remote"),
        Side::Server => ("inbound", "local"),
    };
    for p in L4::ALL {
        let proto = p.as_str();
        if let Some(rules) = plan.unconstrained.get(&p) {
            writeln!(
                out,
                "kernel: every {side} {proto} connection is reported (the filter is off for \
                 {side} {proto}): {} cannot be reduced to {port} ports",
                rules.join(", ")
            )?;
            continue;
        }
        let ports: Vec<(&u16, &Vec<String>)> = plan
            .ports
            .iter()
            .filter(|((q, _), _)| *q == p)
            .map(|((_, port), r)| (port, r))
            .collect();
        writeln!(
            out,
            "kernel: {side} {proto} connections reported to {} {port} ports{}",
            ports.len(),
            if ports.is_empty() { "" } else { ":" }
        )?;
        for (port, rules) in ports {
            writeln!(out, "  {proto}/{port:<28} {}", rules.join(", "))?;
        }
    }
    Ok(())
}

/// The probe's form of one side's plan: the protocols the rules bound, the pairs they need.
fn net_side(plan: &NetPlan) -> falco_learn_probe::filter::NetSidePlan {
    use falco_learn_rules::net_plan::L4;
    falco_learn_probe::filter::NetSidePlan {
        protocols: L4::ALL
            .iter()
            .filter(|p| !plan.is_off(**p))
            .map(|p| p.ipproto())
            .collect(),
        needed: plan
            .pairs()
            .into_iter()
            .map(|(p, port)| (p.ipproto(), port))
            .collect(),
    }
}

/// The probe's form of the outbound and inbound plans.
pub fn net_filter(
    outbound: &NetPlan,
    inbound: &NetPlan,
) -> falco_learn_probe::filter::NetFilterPlan {
    falco_learn_probe::filter::NetFilterPlan {
        outbound: net_side(outbound),
        inbound: net_side(inbound),
    }
}

/// Log what the kernel will report of one side's traffic (a warning when a rule turns the
/// in-kernel filter off for a protocol).
pub fn log_net_plan(plan: &NetPlan) {
    let mut text = Vec::new();
    // writing to a Vec cannot fail
    let _ = explain_net_plan(&mut text, plan);
    let text = String::from_utf8_lossy(&text);
    if plan.unconstrained.is_empty() {
        tracing::info!("{}", text.trim_end());
    } else {
        tracing::warn!("{}", text.trim_end());
    }
}

/// The `socket` and `dup` calls the kernel drops because no rule of `rules` can match them.
pub fn event_filter(
    rules: &falco_learn_rules::Ruleset,
) -> falco_learn_probe::filter::EventFilterPlan {
    falco_learn_probe::filter::EventFilterPlan::derive(&|ev, known| rules.may_match(ev, known))
}

/// `1-3, 7` for the set bits of `bits` below 64.
fn bit_ranges(bits: u64) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0u32;
    while i < 64 {
        if bits >> i & 1 == 1 {
            let start = i;
            while i + 1 < 64 && bits >> (i + 1) & 1 == 1 {
                i += 1;
            }
            out.push(if start == i {
                start.to_string()
            } else {
                format!("{start}-{i}")
            });
        }
        i += 1;
    }
    if out.is_empty() {
        "none".to_string()
    } else {
        out.join(", ")
    }
}

/// What the kernel reports of `socket` and `dup` calls under `plan`, as `rules check
/// --explain-kernel` prints it.
pub fn explain_event_filter(
    out: &mut impl Write,
    plan: &falco_learn_probe::filter::EventFilterPlan,
) -> std::io::Result<()> {
    use falco_learn_probe::filter::{DUP_FAMILIES, DUP_TYPES};
    let domains: Vec<String> = plan
        .socket_domains_reported()
        .into_iter()
        .map(|d| falco_learn_event::fields::socket_family_name(d).into_owned())
        .collect();
    writeln!(
        out,
        "kernel: socket calls reported for domains {} and any domain from 64 up; the others \
         are dropped",
        if domains.is_empty() {
            "none".to_string()
        } else {
            domains.join(", ")
        }
    )?;
    for (k, typ) in DUP_TYPES.iter().enumerate() {
        let kept: Vec<String> = DUP_FAMILIES
            .iter()
            .enumerate()
            .filter(|(c, _)| plan.dup_drop[k][*c] != u64::MAX)
            .map(|(c, family)| {
                let what = match family {
                    0 => "not a socket".to_string(),
                    3 => "another socket family".to_string(),
                    f => falco_learn_event::fields::socket_family_name(*f as u32).into_owned(),
                };
                format!("{what}: {}", bit_ranges(!plan.dup_drop[k][c]))
            })
            .collect();
        writeln!(
            out,
            "kernel: {} calls reported when the new descriptor is {} (and any failed call or \
             descriptor from 64 up); the others are dropped",
            typ.as_str(),
            if kept.is_empty() {
                "none below 64".to_string()
            } else {
                kept.join("; ")
            }
        )?;
    }
    if !plan.needed_by.is_empty() {
        writeln!(out, "  needed by {}", plan.needed_by.join(", "))?;
    }
    Ok(())
}

/// Log which socket and dup calls the kernel will report.
pub fn log_event_filter(plan: &falco_learn_probe::filter::EventFilterPlan) {
    let mut text = Vec::new();
    // writing to a Vec cannot fail
    let _ = explain_event_filter(&mut text, plan);
    tracing::info!("{}", String::from_utf8_lossy(&text).trim_end());
}

/// Log what the kernel will report of one kind of open (a warning when a rule turns the
/// in-kernel filter off).
pub fn log_open_plan(what: &str, plan: &OpenPlan) {
    let mut text = Vec::new();
    // writing to a Vec cannot fail
    let _ = explain_open_plan(&mut text, what, plan);
    let text = String::from_utf8_lossy(&text);
    if plan.prefixes.is_none() {
        tracing::warn!("{}", text.trim_end());
    } else {
        tracing::info!("{}", text.trim_end());
    }
}

/// The probe's form of a plan (the kernel's open filter).
pub fn open_filter(plan: &OpenPlan) -> falco_learn_probe::filter::OpenFilterPlan {
    falco_learn_probe::filter::OpenFilterPlan {
        prefixes: plan.prefixes.clone(),
        names: plan.name_list(),
        suffixes: plan.suffix_list(),
        noncanonical: !plan.noncanonical.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use falco_learn_rules::Ruleset;

    fn rules(conds: &[(&str, &str)]) -> Ruleset {
        let text: String = conds
            .iter()
            .map(|(name, cond)| {
                format!(
                    "- rule: {name}\n  desc: d\n  condition: {cond}\n  output: o\n  priority: WARNING\n"
                )
            })
            .collect();
        let (rs, report) = Ruleset::load_sources(&[("t.yaml", &text)]);
        assert!(report.errors.is_empty(), "{report}");
        rs
    }

    #[test]
    fn the_network_plans_as_printed_and_as_the_probe_holds_them() {
        use falco_learn_probe::filter::{NetSidePlan, IPPROTO_TCP};
        let rs = rules(&[
            (
                "ssh",
                "evt.type = connect and fd.l4proto = tcp and fd.sport in (22, 2222)",
            ),
            (
                "nc",
                "evt.type = sendto and fd.l4proto = udp and proc.name = nc",
            ),
            ("telnetd", "evt.type = accept4 and fd.lport = 23"),
        ]);
        let (outbound, inbound) = (rs.outbound_plan(), rs.inbound_plan());
        let mut out = Vec::new();
        explain_net_plan(&mut out, &outbound).expect("write");
        explain_net_plan(&mut out, &inbound).expect("write");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "kernel: outbound tcp connections reported to 2 remote ports:\n  \
             tcp/22                           ssh\n  \
             tcp/2222                         ssh\n\
             kernel: every outbound udp connection is reported (the filter is off for \
             outbound udp): nc cannot be reduced to remote ports\n\
             kernel: inbound tcp connections reported to 1 local ports:\n  \
             tcp/23                           telnetd\n\
             kernel: every inbound udp connection is reported (the filter is off for \
             inbound udp): nc cannot be reduced to local ports\n"
        );
        // UDP is off on both sides (the send rule sees both): only TCP may be dropped,
        // never to the rules' ports
        assert_eq!(
            net_filter(&outbound, &inbound),
            falco_learn_probe::filter::NetFilterPlan {
                outbound: NetSidePlan {
                    protocols: vec![IPPROTO_TCP],
                    needed: vec![(IPPROTO_TCP, 22), (IPPROTO_TCP, 2222)],
                },
                inbound: NetSidePlan {
                    protocols: vec![IPPROTO_TCP],
                    needed: vec![(IPPROTO_TCP, 23)],
                },
            }
        );
    }

    /// Our default ruleset needs socket calls of AF_PACKET only, and dup calls onto fds 0-2
    /// of inet sockets only (the two rules about them); Falco's stable rules the same.
    #[test]
    fn the_default_rules_keep_packet_sockets_and_dups_of_inet_sockets_onto_0_to_2() {
        use falco_learn_probe::filter::{DUP_CLASSES, DUP_FAMILIES};
        let stable = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/falco-rules/falco_rules.yaml");
        let (stable, report) = Ruleset::load_files(&[stable]);
        assert!(report.errors.is_empty(), "{report}");
        let (default, _) = Ruleset::load_sources(&[("default", falco_learn_rules::DEFAULT_RULES)]);
        for rs in [&default, &stable] {
            let plan = event_filter(rs);
            assert_eq!(plan.socket_drop, !(1u64 << 17), "AF_PACKET only");
            for (k, classes) in plan.dup_drop.iter().enumerate() {
                assert_eq!(classes.len(), DUP_CLASSES);
                for (bits, family) in classes.iter().zip(DUP_FAMILIES) {
                    let inet = matches!(family, 2 | 10);
                    let want = if inet { !0b111 } else { u64::MAX };
                    assert_eq!(*bits, want, "kind {k} family {family}");
                }
            }
            assert_eq!(plan.needed_by.len(), 2, "{:?}", plan.needed_by);
        }
        let mut out = Vec::new();
        explain_event_filter(&mut out, &event_filter(&default)).expect("write");
        let out = String::from_utf8_lossy(&out);
        assert!(
            out.starts_with(
                "kernel: socket calls reported for domains AF_PACKET and any domain from 64 up"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "kernel: dup2 calls reported when the new descriptor is AF_INET: 0-2; AF_INET6: 0-2"
            ),
            "{out}"
        );
    }

    /// `evt.arg[0]` of a socket event is its result (the new fd), not the domain: a rule on
    /// it is not decided by the domain, so no domain is dropped.
    #[test]
    fn a_rule_on_the_socket_result_keeps_every_domain() {
        let rs = rules(&[("failed socket", "evt.type = socket and evt.arg[0] < 0")]);
        assert_eq!(event_filter(&rs).socket_drop, 0);
        // the domain by position
        let rs = rules(&[("packet", "evt.type = socket and evt.arg[1] = AF_PACKET")]);
        assert_eq!(event_filter(&rs).socket_drop, !(1u64 << 17));
    }

    /// Only successful calls are dropped: a rule on failed ones needs none of them.
    #[test]
    fn a_rule_on_failed_calls_keeps_no_successful_one() {
        let rs = rules(&[(
            "failed",
            "evt.type in (socket, dup2) and evt.failed = true and proc.name = nc",
        )]);
        let plan = event_filter(&rs);
        assert_eq!(plan.socket_drop, u64::MAX);
        assert!(plan.dup_drop.iter().flatten().all(|b| *b == u64::MAX));
    }

    #[test]
    fn a_rule_about_every_socket_keeps_them_all() {
        let rs = rules(&[("any", "evt.type = socket and proc.name = nc")]);
        assert_eq!(event_filter(&rs).socket_drop, 0);
        // no rule about sockets or dups: every one is dropped
        let rs = rules(&[("exec", "evt.type = execve")]);
        let plan = event_filter(&rs);
        assert_eq!(plan.socket_drop, u64::MAX);
        assert!(plan.dup_drop.iter().flatten().all(|b| *b == u64::MAX));
        assert!(plan.needed_by.is_empty());
    }
}
