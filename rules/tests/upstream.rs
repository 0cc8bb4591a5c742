//! The three upstream rules files load together, unmodified, with no error.
//! They are read from `../shared/falco-rules` next to the repository (never copied in).

use falco_learn_rules::{Code, Ruleset};
use std::path::PathBuf;

fn upstream_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/falco-rules")
}

const FILES: &[&str] = &[
    "falco_rules.yaml",
    "falco-incubating_rules.yaml",
    "falco-sandbox_rules.yaml",
];

#[test]
fn upstream_files_load_together_without_errors() {
    let paths: Vec<PathBuf> = FILES.iter().map(|f| upstream_dir().join(f)).collect();
    let (rs, report) = Ruleset::load_files(&paths);
    for f in &report.files {
        println!(
            "{}: {} lists, {} macros, {} rules",
            f.name, f.lists, f.macros, f.rules
        );
    }
    println!(
        "compiled {} rules ({} enabled), {} errors, {} warnings",
        rs.rules().len(),
        rs.enabled_count(),
        report.errors.len(),
        report.warnings.len()
    );
    assert!(report.errors.is_empty(), "{report}");
    assert_eq!(report.files.len(), 3);
    assert_eq!(report.files[0].rules, 25);
    assert_eq!(report.files[1].rules, 31);
    assert_eq!(report.files[2].rules, 37);
    assert_eq!(rs.rules().len(), 25 + 31 + 37);
    // Every stable rule is indexed under at least one captured event type.
    for r in rs.rules().iter().take(25) {
        assert!(r.evttypes != 0, "{} has no captured event type", r.name);
    }
    assert_eq!(report.warnings_of(Code::NoEvtType).count(), 0, "{report}");
}

#[test]
fn stable_file_alone_loads_without_errors() {
    let (rs, report) = Ruleset::load_files(&[upstream_dir().join(FILES[0])]);
    assert!(report.errors.is_empty(), "{report}");
    assert_eq!(rs.rules().len(), 25);
}

/// The warnings of the three files together are pinned, so a change to the
/// loader (limits included) that adds, drops or recodes one is noticed.
#[test]
fn upstream_warnings_are_pinned() {
    let paths: Vec<PathBuf> = FILES.iter().map(|f| upstream_dir().join(f)).collect();
    let (_, report) = Ruleset::load_files(&paths);
    assert!(report.errors.is_empty(), "{report}");
    assert_eq!(
        // accept/accept4 are captured (issue 9 §6): 12 fewer than before
        report.warnings_of(Code::UncapturedEvtType).count(),
        58,
        "{report}"
    );
    assert_eq!(report.warnings_of(Code::Duplicate).count(), 1, "{report}");
    // fd.sip.name ×2, fd.cip.name, proc.env ×2, evt.buffer: named, never silent
    assert_eq!(
        report.warnings_of(Code::UnavailableField).count(),
        6,
        "{report}"
    );
    // two incubating rules keep the read filter off, three the write filter
    let off: Vec<String> = report
        .warnings_of(Code::KernelFilterOff)
        .filter_map(|w| w.item.clone())
        .collect();
    assert_eq!(off.len(), 5, "{report}");
    assert_eq!(report.warnings.len(), 70, "{report}");
    assert_eq!(report.warnings_not_kept, 0);
}

/// `--strict` on the upstream files and our default ruleset: each passes, except the
/// three list items of `falco-incubating_rules.yaml` written `"yes"`, `"true"` and
/// `"false"`, which Falco's own schema check fails too: its `yaml_helper` turns a scalar
/// into JSON with yaml-cpp's `convert<bool>`, which ignores quoting, so they are booleans
/// where the schema wants an integer or a string.
#[test]
fn upstream_and_default_rules_under_the_strict_check() {
    let default = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("default/falco-learn_rules.yaml");
    let mut sets: Vec<Vec<PathBuf>> = FILES.iter().map(|f| vec![upstream_dir().join(f)]).collect();
    sets.push(vec![default]);
    for paths in sets {
        let sources: Vec<(String, String)> = paths
            .iter()
            .map(|p| {
                (
                    p.display().to_string(),
                    std::fs::read_to_string(p).expect("read rules file"),
                )
            })
            .collect();
        let (_, report) = Ruleset::load_sources(&sources);
        let got: Vec<String> = falco_learn_rules::strict::check(&sources, &report)
            .iter()
            .map(|d| {
                let file = d
                    .pos
                    .file
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                format!("{file}:{}:{} {}", d.pos.line, d.pos.col, d.message)
            })
            .collect();
        let want: Vec<String> = if paths[0].ends_with(FILES[1]) {
            [(101, 28), (106, 59), (107, 49)]
                .iter()
                .map(|(l, c)| {
                    format!(
                        "{}:{l}:{c} schema: each of 'items' must be an integer or a string, \
                         not a boolean",
                        FILES[1]
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        assert_eq!(got, want, "{paths:?}");
    }
}

/// Falco's stable rules need outbound TCP to the ssh rule's non-standard ports only
/// (`Contact K8S API Server From Container` tests `fd.sip.name`, which falco-learn never
/// fills): every other outbound pair a container's profile allows can be dropped in the
/// kernel in the enforce modes.
#[test]
fn stable_rules_need_outbound_tcp_to_the_ssh_rules_ports_only_and_no_inbound() {
    use falco_learn_rules::net_plan::{NetPlan, Side, L4};
    let (rs, report) = Ruleset::load_files(&[upstream_dir().join(FILES[0])]);
    assert!(report.errors.is_empty(), "{report}");
    let p = rs.outbound_plan();
    assert!(p.unconstrained.is_empty(), "{:?}", p.unconstrained);
    assert_eq!(
        p.pairs(),
        [53, 80, 88, 443, 4444, 8080, 8443]
            .map(|x| (L4::Tcp, x))
            .to_vec()
    );
    for names in p.ports.values() {
        assert_eq!(names, &["Disallowed SSH Connection Non Standard Port"]);
    }
    // and no rule about inbound traffic
    assert_eq!(rs.inbound_plan(), NetPlan::empty(Side::Server));
}
