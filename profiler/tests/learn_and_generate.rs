//! Learning from the nginx-like recordings, the YAML golden, poison
//! resistance, and the generated Falco rules: they load cleanly, agree with
//! `Profile::matches` event for event, and catch the seed's attacks.
//!
//! `FALCO_LEARN_UPDATE_GOLDEN=1` rewrites the golden files; review the diff.

use falco_learn_event::{read_jsonl, Args, Event, EventType, EventTypeField, Fd, FdType, L4Proto};
use falco_learn_profiler::{
    from_yaml, generate_rules, rule_name, to_yaml, Dimension, ImageRef, Learner, Limits, Outcome,
    Profile,
};
use falco_learn_rules::Ruleset;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

fn fixture(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

fn events(path: &PathBuf) -> Vec<Event> {
    let f = std::fs::File::open(path).expect("fixture");
    read_jsonl(std::io::BufReader::new(f), &path.display().to_string()).expect("valid jsonl")
}

fn default_rules() -> Ruleset {
    let (rs, report) = Ruleset::load_files(&[repo("rules/default/falco-learn_rules.yaml")]);
    assert!(!report.has_errors(), "{report}");
    rs
}

fn nginx() -> ImageRef {
    ImageRef::new("docker.io/library/nginx", "1.27")
}

fn learn(path: &str) -> (Learner, Vec<Outcome>) {
    let mut l = Learner::new(Limits::default(), Some(default_rules())).expect("limits");
    let out = events(&fixture(path))
        .iter()
        .map(|e| l.observe(e))
        .collect();
    (l, out)
}

fn golden(name: &str, actual: &str) {
    let path = fixture(name);
    if std::env::var_os("FALCO_LEARN_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden");
    }
    let want = std::fs::read_to_string(&path).expect("golden exists (FALCO_LEARN_UPDATE_GOLDEN=1)");
    assert!(
        want == actual,
        "{} differs from the output; rerun with FALCO_LEARN_UPDATE_GOLDEN=1 and review the diff\n{actual}",
        path.display()
    );
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn learns_nginx_profile_golden() {
    let (l, _) = learn("nginx.jsonl");
    let profiles = l.profiles();
    assert_eq!(
        profiles.keys().map(|k| k.to_string()).collect::<Vec<_>>(),
        vec!["docker.io/library/nginx:1.27", "docker.io/library/redis:7"]
    );
    let p = &profiles[&nginx()];
    assert_eq!(
        p.exec.keys().cloned().collect::<BTreeSet<_>>(),
        set(&[
            "/usr/bin/basename",
            "/usr/bin/curl",
            "/usr/bin/dash",
            "/usr/bin/find",
            "/usr/bin/sed",
            "/usr/bin/sort",
            "/usr/sbin/nginx"
        ])
    );
    let out: Vec<String> = p
        .outbound
        .iter()
        .map(|((pr, po), e)| {
            let peers: Vec<String> = e.peers.iter().map(|n| n.to_string()).collect();
            format!("{pr}/{po} {}", peers.join(","))
        })
        .collect();
    assert_eq!(
        out,
        vec![
            "tcp/80 127.0.0.1/32",
            "tcp/8080 10.96.12.34/32",
            "udp/53 10.96.0.10/32"
        ]
    );
    // sed's temp files and the 28 numbered client-body temp files are
    // volatile names: learned as globs, not as names nor as a directory
    let sed6 = format!("/etc/nginx/conf.d/sed{}", "[A-Za-z0-9]".repeat(6));
    let spool = format!("/var/cache/nginx/client_temp/{}", "[0-9]".repeat(10));
    assert!(p.write_dirs.is_empty(), "{:?}", p.write_dirs);
    assert_eq!(
        p.write_globs.keys().cloned().collect::<BTreeSet<_>>(),
        set(&[&sed6, &spool])
    );
    assert_eq!(p.write_globs[&spool].count, 28);
    assert_eq!(p.write_globs[&sed6].count, 2);
    assert_eq!(
        p.write_files.keys().cloned().collect::<BTreeSet<_>>(),
        set(&[
            "/var/log/nginx/access.log",
            "/var/log/nginx/error.log",
            "/var/run/nginx.pid"
        ])
    );
    assert_eq!(p.learning.containers, 2);
    assert!(!p.learning.tainted);
    assert_eq!(p.learning.flagged_events, 0);
    assert_eq!(
        p.digests.iter().cloned().collect::<Vec<_>>(),
        vec!["sha256:5f0574409b3add89581b96c68afe9e9c7b284651c3a974b6e8bac46bf95e6b7f"]
    );
    assert_eq!(l.stats().no_image, 2, "the host's two events");
    let y = to_yaml(p);
    golden("nginx.profile.yaml", &y);
    assert_eq!(&from_yaml(&y, "nginx.profile.yaml").expect("reads back"), p);
}

#[test]
fn flagged_events_and_their_descendants_are_not_learned() {
    let (clean, _) = learn("nginx.jsonl");
    let (l, outcomes) = learn("nginx_poisoned.jsonl");
    let flagged: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Flagged { .. } | Outcome::FlaggedDescendant))
        .collect();
    assert_eq!(
        flagged,
        vec![
            &Outcome::Flagged {
                rules: vec!["Terminal shell in container".into()]
            },
            &Outcome::FlaggedDescendant, // cp
            &Outcome::FlaggedDescendant, // cp writes /dev/vi
            &Outcome::FlaggedDescendant, // /dev/vi
            &Outcome::FlaggedDescendant, // ssh
            &Outcome::FlaggedDescendant, // ssh → 198.51.100.10:2222
        ]
    );
    let p = &l.profiles()[&nginx()];
    let c = &clean.profiles()[&nginx()];
    assert!(p.learning.tainted);
    assert_eq!(p.learning.flagged_events, 1);
    assert_eq!(p.learning.flagged_descendant_events, 5);
    assert_eq!(p.learning.taint.len(), 1);
    assert_eq!(p.learning.taint[0].rule, "Terminal shell in container");
    assert_eq!(p.learning.taint[0].value, "/usr/bin/bash");
    // Nothing of the attack was learned: behaviour equals the clean run's.
    assert_eq!(
        p.exec.keys().collect::<Vec<_>>(),
        c.exec.keys().collect::<Vec<_>>()
    );
    assert_eq!(p.outbound, c.outbound);
    assert_eq!(p.write_files, c.write_files);
    assert_eq!(p.write_dirs, c.write_dirs);
}

fn load_generated(p: &Profile) -> Ruleset {
    let text = generate_rules(p).expect("generates");
    let (rs, report) = Ruleset::load_sources(&[("generated.yaml", text.as_str())]);
    // an allowlist of writes keeps the kernel's write filter off, by design; nothing else
    assert!(
        report.errors.is_empty()
            && report
                .warnings_but(falco_learn_rules::Code::KernelFilterOff)
                .next()
                .is_none(),
        "{report}\n{text}"
    );
    rs
}

#[test]
fn generated_rules_golden_and_load_cleanly() {
    let (l, _) = learn("nginx.jsonl");
    let p = &l.profiles()[&nginx()];
    let text = generate_rules(p).expect("generates");
    golden("nginx.rules.yaml", &text);
    let rs = load_generated(p);
    assert_eq!(
        rs.rules()
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        vec![
            "Unexpected process in docker.io/library/nginx:1.27 (falco-learn)",
            "Unexpected outbound connection in docker.io/library/nginx:1.27 (falco-learn)",
            "Unexpected inbound connection in docker.io/library/nginx:1.27 (falco-learn)",
            "Unexpected file write in docker.io/library/nginx:1.27 (falco-learn)",
        ]
    );
    // Next to our default rules: no problem reported but the default ruleset's own
    // (its K8S API server rule tests fd.sip.name, which falco-learn never fills) and the
    // note that the write allowlist keeps the kernel's write filter off.
    let default =
        std::fs::read_to_string(repo("rules/default/falco-learn_rules.yaml")).expect("default");
    let (_, report) = Ruleset::load_sources(&[
        ("falco-learn_rules.yaml", default.as_str()),
        ("generated.yaml", text.as_str()),
    ]);
    let warned: Vec<(&str, &str)> = report
        .warnings
        .iter()
        .map(|w| (w.pos.file.as_ref(), w.code.as_str()))
        .collect();
    assert!(report.errors.is_empty(), "{report}");
    assert_eq!(
        warned,
        [
            ("falco-learn_rules.yaml", "LOAD_UNAVAILABLE_FIELD"),
            ("generated.yaml", "LOAD_KERNEL_FILTER_OFF")
        ],
        "{report}"
    );
    // Next to upstream falco_rules.yaml (when the shared checkout is there):
    // no diagnostic about the generated file.
    let upstream = repo("../shared/falco-rules/falco_rules.yaml");
    if let Ok(up) = std::fs::read_to_string(&upstream) {
        let (_, report) = Ruleset::load_sources(&[
            ("falco_rules.yaml", up.as_str()),
            ("generated.yaml", text.as_str()),
        ]);
        let ours: Vec<String> = report
            .errors
            .iter()
            .chain(&report.warnings)
            .filter(|d| d.pos.file.as_ref() == "generated.yaml")
            .filter(|d| d.code != falco_learn_rules::Code::KernelFilterOff)
            .map(|d| d.to_string())
            .collect();
        assert!(ours.is_empty(), "{ours:?}");
        assert!(report.errors.is_empty(), "{report}");
    }
    // An image without tag, and an empty profile, generate loadable rules too.
    let mut q = p.clone();
    q.image = ImageRef::new("localhost/odd", "");
    q.exec
        .insert("memfd:x (deleted)".into(), Default::default());
    q.write_files
        .insert("/a dir/with, comma".into(), Default::default());
    load_generated(&q);
    load_generated(&Profile::new(ImageRef::new("empty", "")));
}

/// Varied events: every fixture event as is, re-labelled with the profile's
/// image, and mutated (results, fds, flags, paths, peers).
fn varied_events(p: &Profile) -> Vec<Event> {
    let mut base = Vec::new();
    for f in ["nginx.jsonl", "nginx_poisoned.jsonl"] {
        base.extend(events(&fixture(f)));
    }
    for f in ["seed.jsonl", "stable.jsonl", "incubating_sandbox.jsonl"] {
        base.extend(events(&repo(&format!("rules/tests/fixtures/{f}"))));
    }
    let mut out = Vec::new();
    let image = |e: &mut Event| {
        std::sync::Arc::make_mut(&mut e.container).image_repository = p.image.repository.clone();
        std::sync::Arc::make_mut(&mut e.container).image_tag = p.image.tag.clone();
        if e.container.id.is_empty() || e.container.id == "host" {
            std::sync::Arc::make_mut(&mut e.container).id = "c0ffee000001".into();
        }
    };
    for e in &base {
        out.push(e.clone());
        let mut e2 = e.clone();
        image(&mut e2);
        out.push(e2.clone());
        let mut t = e2.clone();
        std::sync::Arc::make_mut(&mut t.container).image_tag = "other".into();
        out.push(t);
        for res in [-1, -115, 0, 5] {
            let mut m = e2.clone();
            m.res = res;
            out.push(m);
        }
        let mut m = e2.clone();
        std::sync::Arc::make_mut(&mut m.process).exepath.clear();
        out.push(m);
        // the runtime setting a container up (matcher::is_runtime_setup): runc's
        // stages outside a pid namespace of its own (named runc…, `exe` running
        // …/runc, the copy `/` named after its descriptor), runc:[2:INIT] on the
        // copy; and each condition without the others
        for (comm, pid, vpid, exe) in [
            ("runc", 4242, 4242, ""),
            ("runc:[2:INIT]", 4242, 4242, ""),
            ("runc:[2:INIT]", 4242, 1, ""),
            ("runc:[2:INIT]", 4242, 1, "/"),
            ("nginx", 4242, 1, "/"),
            ("nginx", 4242, 4242, ""),
            ("runc", 0, 0, ""),
            ("exe", 4242, 4242, "/usr/sbin/runc"),
            ("exe", 4242, 7, "/usr/sbin/runc"),
            ("exe", 0, 0, "/usr/sbin/runc"),
            ("exe", 4242, 4242, "/usr/sbin/runc-not"),
            ("exe", 4242, 4242, "/usr/sbin/notrunc"),
            ("7", 4242, 4242, "/"),
            ("7", 4242, 1, "/"),
            ("runc", 4242, 4242, "/runc"),
            ("7", 4242, 4242, "memfd:runc_cloned:/proc/self/exe"),
            ("runc:[2:INIT]", 4242, 7, "memfd:runc_cloned:/proc/self/exe"),
            ("7", 4242, 4242, "memfd:runc"),
        ] {
            // and each with a parent named runc or not (a name alone says nothing)
            for pcomm in ["runc", "conmon"] {
                let mut m = e2.clone();
                std::sync::Arc::make_mut(&mut m.process).comm = comm.into();
                std::sync::Arc::make_mut(&mut m.process).pid = pid;
                std::sync::Arc::make_mut(&mut m.process).vpid = vpid;
                if !exe.is_empty() {
                    std::sync::Arc::make_mut(&mut m.process).exepath = exe.into();
                }
                let mut anc: Vec<falco_learn_event::Ancestor> = m.ancestors.to_vec();
                if anc.is_empty() {
                    anc.push(falco_learn_event::Ancestor {
                        pid: 99,
                        ..Default::default()
                    });
                }
                anc[0].comm = pcomm.into();
                m.ancestors = anc.into();
                out.push(m);
            }
        }
        // lineage: learned and unknown executables, started by a parent inside the
        // container (learned or not), by the runtime (shim, runc), by an unknown
        // parent; as the container's init (vpid 1) or not
        if matches!(e2.event_type(), EventType::Execve | EventType::Execveat) {
            for exe in [
                "/usr/sbin/nginx",
                "/usr/bin/dash",
                "/usr/bin/curl",
                "/usr/bin/sed",
                "/dev/vi",
            ] {
                for parent in [
                    "/usr/bin/dash",
                    "/usr/sbin/nginx",
                    "/usr/bin/runc",
                    "/usr/bin/containerd-shim",
                    "",
                ] {
                    for vpid in [1, 7] {
                        let mut m = e2.clone();
                        m.res = 0;
                        std::sync::Arc::make_mut(&mut m.process).exepath = exe.into();
                        std::sync::Arc::make_mut(&mut m.process).vpid = vpid;
                        let mut anc: Vec<falco_learn_event::Ancestor> = m.ancestors.to_vec();
                        if parent.is_empty() {
                            anc.clear();
                        } else if anc.is_empty() {
                            anc.push(falco_learn_event::Ancestor {
                                pid: 99,
                                exepath: parent.into(),
                                ..Default::default()
                            });
                        } else {
                            anc[0].exepath = parent.into();
                        }
                        m.ancestors = anc.into();
                        out.push(m);
                    }
                }
            }
        }
        if let Some(fd) = &e2.fd {
            for typ in [FdType::File, FdType::Ipv6, FdType::Unix, FdType::Directory] {
                let mut m = e2.clone();
                if let Some(f) = m.fd.as_mut() {
                    f.typ = typ;
                }
                out.push(m);
            }
            let mut m = e2.clone();
            m.fd = None;
            out.push(m);
            let mut m = e2.clone();
            if let Some(f) = m.fd.as_mut() {
                f.num = -1;
                f.name.clear();
            }
            out.push(m);
            // server traffic: accepts and sends from either end, on served and other
            // ports, TCP and UDP, the local port equal to the server's or not
            if fd.sip.is_some() {
                for typ in [
                    EventType::Accept,
                    EventType::Accept4,
                    EventType::Sendto,
                    EventType::Sendmsg,
                ] {
                    for (is_client, cport, sport, proto) in [
                        (false, Some(40000), Some(80), L4Proto::Tcp),
                        (false, Some(40000), Some(53), L4Proto::Udp),
                        (false, Some(40000), Some(53), L4Proto::Tcp),
                        (false, Some(40000), Some(8443), L4Proto::Tcp),
                        (false, Some(40000), Some(5353), L4Proto::Udp),
                        (false, Some(40000), None, L4Proto::Udp),
                        (false, None, Some(80), L4Proto::Tcp),
                        (true, Some(53), Some(53), L4Proto::Udp),
                        (true, Some(40000), Some(53), L4Proto::Udp),
                        (true, None, Some(53), L4Proto::Udp),
                    ] {
                        let mut m = e2.clone();
                        m.typ = EventTypeField(typ);
                        if let Some(f) = m.fd.as_mut() {
                            f.is_client = is_client;
                            f.cport = cport;
                            f.sport = sport;
                            f.l4proto = proto;
                        }
                        out.push(m);
                    }
                }
            }
            if fd.sip.is_some() {
                for (sip, sport, proto) in [
                    (None, Some(53), L4Proto::Udp),
                    (Some("10.96.0.10"), None, L4Proto::Udp),
                    (Some("10.96.0.10"), Some(53), L4Proto::Udp),
                    (Some("10.96.0.10"), Some(53), L4Proto::Tcp),
                    (Some("10.96.0.11"), Some(53), L4Proto::Udp),
                    (Some("127.0.0.1"), Some(80), L4Proto::Tcp),
                    (Some("10.96.12.34"), Some(8080), L4Proto::Tcp),
                    (Some("2001:db8::1"), Some(8080), L4Proto::Tcp),
                    (Some("10.96.12.34"), Some(8081), L4Proto::Unknown),
                ] {
                    let mut m = e2.clone();
                    if let Some(f) = m.fd.as_mut() {
                        f.sip = sip.map(|s| s.parse().expect("ip"));
                        f.sport = sport;
                        f.l4proto = proto;
                    }
                    out.push(m);
                }
            }
        }
        if let Args::Open { .. } = e2.args {
            for flags in [0, 1, 2, 3, 0o100, 0o1000, 0o2000, 0o2101, 0o20200000] {
                for path in [
                    "/var/log/nginx/access.log",
                    "/var/cache/nginx/client_temp",
                    "/var/cache/nginx/client_temp/0000000099",
                    "/var/cache/nginx/client_temp/x/y",
                    "/var/cache/nginx/client_tempx",
                    "/etc/passwd",
                    "/dev/vi",
                    "/dev/null",
                    "/dev/nullx",
                ] {
                    let mut m = e2.clone();
                    if let Args::Open { flags: f, .. } = &mut m.args {
                        *f = flags;
                    }
                    if let Some(fd) = m.fd.as_mut() {
                        fd.name = path.into();
                        fd.typ = FdType::File;
                        fd.num = 3;
                    }
                    m.res = 3;
                    out.push(m);
                }
            }
        }
    }
    // creat without open args, and an open whose args are of another kind
    let mut c = Event {
        typ: EventTypeField(EventType::Creat),
        res: 4,
        fd: Some(Fd {
            num: 4,
            name: "/var/log/nginx/new.log".into(),
            ..Fd::default()
        }),
        ..Event::default()
    };
    image(&mut c);
    out.push(c.clone());
    c.typ = EventTypeField(EventType::Openat);
    out.push(c);
    out
}

#[test]
fn generated_rules_agree_with_the_matcher_event_for_event() {
    let (l, _) = learn("nginx.jsonl");
    let mut p = l.profiles()[&nginx()].clone();
    // served ports (the nginx recording has no accepts)
    for e in [
        accept(("10.0.0.5", 80), ("10.0.0.9", 40000)),
        udp_send(("10.0.0.5", 53), ("10.0.0.9", 40000), true),
    ] {
        let mut l = Learner::new(Limits::default(), None).expect("limits");
        l.observe(&e);
        p.merge(&l.profiles()[&nginx()], &Limits::default())
            .expect("same image");
    }
    let p = &p;
    let rs = load_generated(p);
    let evs = varied_events(p);
    let mut verdicts = std::collections::BTreeMap::<(Dimension, bool), usize>::new();
    for (i, ev) in evs.iter().enumerate() {
        let fired: Vec<String> = rs.matching(ev).iter().map(|r| r.name.clone()).collect();
        let want: Vec<String> = p
            .matches(ev)
            .map(|a| rule_name(&p.image, a.dimension))
            .into_iter()
            .collect();
        assert_eq!(
            fired,
            want,
            "event {i} disagrees: matcher {:?}\n{}",
            p.matches(ev),
            serde_json::to_string(ev).unwrap_or_default()
        );
        if let Some(b) = falco_learn_profiler::behaviour(ev) {
            if p.image.is_event(ev) {
                *verdicts
                    .entry((b.dimension(), fired.is_empty()))
                    .or_default() += 1;
            }
        }
    }
    // lineage verdicts both ways: a learned executable refused for its parent,
    // and one allowed by a (parent, exe) tuple or as started by the runtime
    let lineage_refused = evs
        .iter()
        .filter(|e| p.matches(e).is_some_and(|a| a.parent.is_some()))
        .count();
    assert!(lineage_refused >= 5, "{lineage_refused}");
    // The set exercised every dimension both ways.
    for d in Dimension::ALL {
        for allowed in [true, false] {
            let n = verdicts.get(&(d, allowed)).copied().unwrap_or(0);
            assert!(
                n >= 5,
                "only {n} events of {d} allowed={allowed}: {verdicts:?}"
            );
        }
    }
    assert!(evs.len() > 20_000, "{}", evs.len());
}

#[test]
fn seed_attacks_raise_learned_rule_alerts_and_nginx_traffic_none() {
    let (l, _) = learn("nginx.jsonl");
    let p = &l.profiles()[&nginx()];
    let rs = load_generated(p);
    for ev in events(&fixture("nginx.jsonl")) {
        assert!(
            rs.matching(&ev).is_empty(),
            "learned traffic alerted: {ev:?}"
        );
        assert_eq!(p.matches(&ev), None);
    }
    let seed = events(&repo("rules/tests/fixtures/seed.jsonl"));
    let fired: Vec<(String, Vec<String>)> = seed
        .iter()
        .map(|ev| {
            let value = falco_learn_profiler::behaviour(ev)
                .map(|b| b.value())
                .unwrap_or_default();
            (
                value,
                rs.matching(ev).iter().map(|r| r.name.clone()).collect(),
            )
        })
        .collect();
    let exec = rule_name(&p.image, Dimension::Exec);
    let net = rule_name(&p.image, Dimension::Outbound);
    assert_eq!(
        fired,
        vec![
            ("/usr/bin/bash".to_string(), vec![exec.clone()]),
            ("/usr/local/bin/vi".to_string(), vec![exec.clone()]),
            ("tcp/443 198.51.100.10".to_string(), vec![net.clone()]),
            ("/dev/vi".to_string(), vec![exec.clone()]),
            ("tcp/2222 198.51.100.10".to_string(), vec![net.clone()]),
        ]
    );
    // The alert names the image and the offending value.
    let vi = &seed[3];
    let alert = rs.matching(vi)[0].alert(vi);
    assert!(alert.output.contains("exe=/dev/vi"), "{}", alert.output);
    assert!(
        alert
            .output
            .contains("image=docker.io/library/nginx tag=1.27"),
        "{}",
        alert.output
    );
    assert_eq!(alert.priority, "Warning");
    assert_eq!(alert.tags, vec!["falco_learn", "container", "process"]);
}

#[test]
fn generated_rules_agree_on_quoted_values_ipv6_and_root_dirs() {
    let (l, _) = learn("nginx.jsonl");
    let base = &l.profiles()[&nginx()];
    let limits = Limits::default();
    let mut p = base.clone();
    p.learn_exec("memfd:x (deleted)", false, 1);
    p.learn_exec("/usr/bin/with space", false, 1);
    p.learn_exec("/usr/bin/q'uote", false, 1);
    p.learn_outbound(
        falco_learn_profiler::Proto::Tcp,
        8080,
        "2001:db8::1".parse().expect("ip"),
        1,
        &limits,
    );
    p.learn_write("/a dir/with, comma", 1, &limits);
    p.write_dirs.insert("/data".into(), Default::default());
    let mut root = Profile::new(nginx());
    root.write_dirs.insert("/".into(), Default::default());

    let fixture = events(&fixture("nginx.jsonl"));
    let pick = |t: EventType| {
        fixture
            .iter()
            .find(|e| e.event_type() == t && p.image.is_event(e))
            .cloned()
            .expect("fixture has the type")
    };
    let mut evs = Vec::new();
    let exec = pick(EventType::Execve);
    for path in [
        "memfd:x (deleted)",
        "memfd:y (deleted)",
        "/usr/bin/with space",
        "/usr/bin/with",
        "/usr/bin/q'uote",
        "/usr/bin/q",
    ] {
        let mut e = exec.clone();
        std::sync::Arc::make_mut(&mut e.process).exepath = path.into();
        evs.push(e);
    }
    let conn = pick(EventType::Connect);
    for (ip, port) in [
        ("2001:db8::1", 8080),
        ("2001:db8::2", 8080),
        ("2001:db8::1", 8081),
        ("10.96.12.34", 8080),
    ] {
        let mut e = conn.clone();
        if let Some(fd) = e.fd.as_mut() {
            fd.typ = FdType::Ipv6;
            fd.sip = Some(ip.parse().expect("ip"));
            fd.sport = Some(port);
        }
        evs.push(e);
    }
    let open = fixture
        .iter()
        .find(|e| {
            matches!(
                falco_learn_profiler::behaviour(e),
                Some(falco_learn_profiler::Behaviour::Write { .. })
            ) && p.image.is_event(e)
        })
        .cloned()
        .expect("a write");
    for path in [
        "/a dir/with, comma",
        "/a dir/with, comma2",
        "/a dir/with",
        "/data",
        "/data/x/y",
        "/datax",
        "/",
        "/etc/shadow",
    ] {
        let mut e = open.clone();
        if let Some(fd) = e.fd.as_mut() {
            fd.name = path.into();
        }
        evs.push(e);
    }
    for prof in [&p, &root] {
        let rs = load_generated(prof);
        let mut anomalies = 0;
        for ev in &evs {
            let fired: Vec<String> = rs.matching(ev).iter().map(|r| r.name.clone()).collect();
            let want: Vec<String> = prof
                .matches(ev)
                .map(|a| rule_name(&prof.image, a.dimension))
                .into_iter()
                .collect();
            anomalies += want.len();
            assert_eq!(fired, want, "{:?}", falco_learn_profiler::behaviour(ev));
        }
        assert!(anomalies > 0);
    }
    // Spot checks of the intended verdicts.
    let verdict = |prof: &Profile, i: usize| prof.matches(&evs[i]).map(|a| a.value);
    assert_eq!(verdict(&p, 0), None);
    assert_eq!(verdict(&p, 1), Some("memfd:y (deleted)".into()));
    assert_eq!(verdict(&p, 6), None);
    assert_eq!(verdict(&p, 7), Some("tcp/8080 2001:db8::2".into()));
    assert_eq!(verdict(&p, 10), None);
    assert_eq!(verdict(&p, 11), Some("/a dir/with, comma2".into()));
    assert_eq!(verdict(&p, 13), None, "/data itself: pmatch");
    assert_eq!(verdict(&p, 15), Some("/datax".into()));
    assert_eq!(verdict(&root, 17), None, "/** allows every write");
}

#[test]
fn proc_pid_writes_are_learned_once_and_generated_rules_agree() {
    let (l, _) = learn("nginx.jsonl");
    let limits = Limits::default();
    let mut p = l.profiles()[&nginx()].clone();
    // the kernel resolves /proc/self/… to the writer's pid: one entry for all runs
    p.learn_write("/proc/4242/oom_score_adj", 1, &limits);
    assert!(p
        .learn_write("/proc/77/oom_score_adj", 2, &limits)
        .is_empty());
    p.learn_write("/proc/4242/task/4250/comm", 3, &limits);
    let learned: Vec<&String> = p
        .write_globs
        .keys()
        .filter(|k| k.starts_with("/proc/"))
        .collect();
    assert_eq!(
        learned,
        [
            "/proc/[0-9]*/oom_score_adj",
            "/proc/[0-9]*/task/[0-9]*/comm"
        ]
    );

    let fixture = events(&fixture("nginx.jsonl"));
    let open = fixture
        .iter()
        .find(|e| {
            matches!(
                falco_learn_profiler::behaviour(e),
                Some(falco_learn_profiler::Behaviour::Write { .. })
            ) && p.image.is_event(e)
        })
        .cloned()
        .expect("a write");
    let paths = [
        ("/proc/1/oom_score_adj", true),
        ("/proc/99999/oom_score_adj", true),
        ("/proc/1/task/2/comm", true),
        ("/proc/self/oom_score_adj", false),
        ("/proc/1/oom_adj", false),
        ("/proc/1/comm", false),
        ("/proc/sys/kernel/core_pattern", false),
        ("/procx/1/oom_score_adj", false),
    ];
    let rs = load_generated(&p);
    for (path, allowed) in paths {
        let mut e = open.clone();
        if let Some(fd) = e.fd.as_mut() {
            fd.name = path.into();
        }
        let fired: Vec<String> = rs.matching(&e).iter().map(|r| r.name.clone()).collect();
        let want: Vec<String> = p
            .matches(&e)
            .map(|a| rule_name(&p.image, a.dimension))
            .into_iter()
            .collect();
        assert_eq!(fired, want, "{path}: generated rules and matcher disagree");
        assert_eq!(want.is_empty(), allowed, "{path}");
    }
    // and the profile round-trips through its YAML
    let back = falco_learn_profiler::from_yaml(&falco_learn_profiler::to_yaml(&p), "p.yaml")
        .expect("YAML round trip");
    assert_eq!(back.write_files, p.write_files);
    assert_eq!(back.write_globs, p.write_globs);
}

/// File and executable names the event layer renders (`falco_learn_event::path`:
/// `\\` for a backslash, `\xNN` for a byte that is not UTF-8), holding every
/// awkward byte.
const AWKWARD: &[&str] = &[
    "/tmp/a\nb",
    "/tmp/tab\there",
    "/tmp/cr\rlf",
    "/tmp/bs\u{8}ff\u{c}",
    "/tmp/dq\"x",
    "/tmp/sq'x",
    "/tmp/both\"'x",
    "/tmp/back\\\\slash",
    "/tmp/two\\\\\\\\back",
    "/tmp/trail\\\\",
    "/tmp/lit\\\\xff",
    "/tmp/bad\\xffbyte",
    "/tmp/\\xc3\\x28",
    "/tmp/glob*?[x]",
    "/tmp/[!a]",
    "/tmp/ü日本",
    "/tmp/ctl\u{1}\u{1f}\u{7f}\u{85}\u{9f}x",
    "/tmp/\u{2028}\u{2029}\u{feff}\u{fffe}",
    "/tmp/eq=,() x",
    "/tmp/-:#&*!|>%@`{}",
    "/tmp/null",
    " leading space",
];

fn event_of(t: EventType, path: &str) -> Event {
    let mut e = Event {
        typ: EventTypeField(t),
        ts: 1_763_770_000_000_000_000,
        res: 0,
        ..Event::default()
    };
    std::sync::Arc::make_mut(&mut e.container).id = "c1".into();
    std::sync::Arc::make_mut(&mut e.container).image_repository = nginx().repository;
    std::sync::Arc::make_mut(&mut e.container).image_tag = nginx().tag;
    std::sync::Arc::make_mut(&mut e.process).pid = 7;
    std::sync::Arc::make_mut(&mut e.process).exepath = "/usr/sbin/nginx".into();
    if t == EventType::Execve {
        std::sync::Arc::make_mut(&mut e.process).exepath = path.into();
        e.args = Args::Exec {
            filename: path.into(),
        };
    } else {
        e.res = 3;
        e.fd = Some(Fd {
            num: 3,
            name: path.into(),
            ..Fd::default()
        });
        e.args = Args::Open {
            name: path.into(),
            flags: 0o1101,
            mode: 0o644,
            dirfd: -100,
        };
    }
    e
}

/// Every awkward name learned (by replay), through the YAML and back, into
/// generated rules that load in our engine, which give the matcher's verdict
/// for the names themselves and for their near misses.
#[test]
fn awkward_names_round_trip_and_generated_rules_agree() {
    let mut l = Learner::new(Limits::default(), None).expect("limits");
    for name in AWKWARD {
        for t in [EventType::Execve, EventType::Openat] {
            l.observe(&event_of(t, name));
        }
    }
    let p = l.profiles()[&nginx()].clone();
    assert_eq!(p.exec.len(), AWKWARD.len());
    let y = to_yaml(&p);
    let back = from_yaml(&y, "awkward.yaml").unwrap_or_else(|e| panic!("{e}\n{y}"));
    assert_eq!(back, p, "{y}");
    assert_eq!(to_yaml(&back), y);
    // the entries Falco cannot spell exactly are marked in the profile
    for (name, marked) in [
        ("/tmp/bad\\\\xffbyte", true),
        ("/tmp/trail\\\\\\\\", true),
        ("/tmp/back\\\\\\\\slash", false),
        ("/tmp/a\\nb", false),
    ] {
        let lines: Vec<&str> = y
            .lines()
            .filter(|l| l.contains(&format!("path: \"{name}\"")))
            .collect();
        assert_eq!(lines.len(), 2, "{name}: {y}");
        for l in lines {
            assert_eq!(l.contains("# not exact in Falco rules"), marked, "{l}");
        }
    }
    let text = generate_rules(&p).expect("every profile generates");
    let rs = load_generated(&p);
    // our YAML reader and serde_yaml (the profile's) read the rules alike
    serde_yaml::from_str::<serde_yaml::Value>(&text).expect("YAML");

    let mut probes: Vec<String> = Vec::new();
    for name in AWKWARD {
        probes.push(name.to_string());
        probes.push(format!("{name}X"));
        probes.push(format!("X{name}"));
        probes.push(name.replace("\\\\", "\\"));
        probes.push(name.replace("\\\\", "\\\\\\\\"));
        probes.push(name.replace("\\xff", "\\xfe").replace("\\x28", "("));
    }
    probes.push("/tmp/globX?[x]".into());
    probes.push("/tmp/a".into());
    probes.push("/tmp/b".into());
    probes.push("/tmp/bad\\x80byte".into());
    probes.push("/tmp/badXbyte".into());
    // only what the event layer can produce: renderings of some bytes
    probes.retain(|pr| {
        use falco_learn_event::path::{raw_bytes, render_raw};
        raw_bytes(pr).is_some_and(|b| render_raw(&b) == *pr)
    });
    assert!(probes.len() > 3 * AWKWARD.len(), "{probes:?}");
    let mut anomalies = 0;
    for probe in &probes {
        for t in [EventType::Execve, EventType::Openat] {
            let ev = event_of(t, probe);
            let fired: Vec<String> = rs.matching(&ev).iter().map(|r| r.name.clone()).collect();
            let want: Vec<String> = p
                .matches(&ev)
                .map(|a| rule_name(&p.image, a.dimension))
                .into_iter()
                .collect();
            anomalies += want.len();
            assert_eq!(fired, want, "{t:?} {probe:?}\n{text}");
        }
    }
    assert!(anomalies > 0);
    // enforce-kill's kernel compares the learned names exactly: an exec it killed is an
    // anomaly even where the globs approximating a name (`/tmp/bad?byte`) allow it
    let mut approximated = 0;
    for probe in &probes {
        let mut ev = event_of(EventType::Execve, probe);
        let allowed = p.matches(&ev).is_none();
        approximated += usize::from(allowed && !p.exec.contains_key(probe.as_str()));
        std::sync::Arc::make_mut(&mut ev.process).exe_flags.killed = true;
        let a = p.matches(&ev).expect("a killed exec is an anomaly");
        assert_eq!(
            (a.dimension, a.value.as_str(), a.parent),
            (Dimension::Exec, probe.as_str(), None),
            "{probe:?}"
        );
    }
    assert!(approximated > 0, "no probe is allowed through a glob only");
    // a learned name the kernel saw relocated (run in a chroot, or through a bind mount of
    // the container's own file) names another file: an anomaly, killed or not
    for name in AWKWARD {
        let mut ev = event_of(EventType::Execve, name);
        std::sync::Arc::make_mut(&mut ev.process)
            .exe_flags
            .relocated = true;
        let a = p.matches(&ev).expect("a relocated exec is an anomaly");
        assert_eq!(
            (a.dimension, a.value.as_str(), a.parent),
            (Dimension::Exec, *name, None),
            "{name:?}"
        );
        // on the host (a host profile), systemd's sandboxing relocates ordinary services:
        // judged by the path alone
        std::sync::Arc::make_mut(&mut ev.container).id = "host".into();
        assert_eq!(p.check(&ev), None, "{name:?} on the host");
    }
    // run from another root than the container's home (a neighbour's root) or from the
    // host's root: an anomaly unless the entry was learned from that kind of root; each
    // root allows only itself (an entry learned for a pod entering the host does not allow
    // a neighbour's root, nor the other way round)
    type Root = fn(&mut falco_learn_event::ExeFlags);
    type Learned = fn(&mut falco_learn_profiler::ExecEntry) -> &mut bool;
    // (another filesystem is judged the same way: a volume's file at a path learned from
    // the image)
    let roots: [(&str, Root, Learned); 3] = [
        (
            "another root",
            |f| f.other_root = true,
            |e| &mut e.other_root,
        ),
        (
            "the host's root",
            |f| f.host_root = true,
            |e| &mut e.host_root,
        ),
        (
            "another filesystem",
            |f| f.other_fs = Some(true),
            |e| &mut e.other_fs,
        ),
    ];
    for name in AWKWARD {
        for (i, (root, flag, _)) in roots.iter().enumerate() {
            let mut ev = event_of(EventType::Execve, name);
            flag(&mut std::sync::Arc::make_mut(&mut ev.process).exe_flags);
            let a = p
                .matches(&ev)
                .unwrap_or_else(|| panic!("an exec from {root} is an anomaly"));
            assert_eq!(
                (a.dimension, a.value.as_str(), a.parent),
                (Dimension::Exec, *name, None),
                "{name:?} from {root}"
            );
            for (j, (learned_from, _, learned_flag)) in roots.iter().enumerate() {
                let mut learned = p.clone();
                if let Some(e) = learned.exec.get_mut(*name) {
                    *learned_flag(e) = true;
                }
                assert_eq!(
                    learned.matches(&ev).is_none(),
                    i == j,
                    "{name:?} from {root}, learned from {learned_from}"
                );
            }
            std::sync::Arc::make_mut(&mut ev.container).id = "host".into();
            assert_eq!(p.check(&ev), None, "{name:?} on the host");
        }
    }
    // where the file lived not known (a recording made before the flag): not judged
    for name in AWKWARD {
        let mut ev = event_of(EventType::Execve, name);
        std::sync::Arc::make_mut(&mut ev.process).exe_flags.other_fs = None;
        assert_eq!(p.matches(&ev), None, "{name:?}, its filesystem not known");
    }
    // every learned name is allowed, by the matcher and so by the rules
    for name in AWKWARD {
        for t in [EventType::Execve, EventType::Openat] {
            assert_eq!(p.matches(&event_of(t, name)), None, "{name:?}");
        }
    }
    // exact names stay exact: a near miss of an expressible name alerts
    for name in [
        "/tmp/a\nb",
        "/tmp/both\"'x",
        "/tmp/back\\\\slash",
        "/tmp/glob*?[x]",
    ] {
        let miss = event_of(EventType::Openat, &format!("{name}X"));
        assert!(
            p.matches(&miss).is_some(),
            "{name:?} {:?} {:?}",
            p.write_globs,
            p.write_dirs
        );
    }
    assert!(p
        .matches(&event_of(EventType::Openat, "/tmp/globX?[x]"))
        .is_some());
}

/// Three replicas run `sed -i` on a config file, each with its own random
/// temp name: learn two, enforce on the third: no alert.
#[test]
fn sed_temp_names_of_a_third_replica_do_not_alert() {
    let replicas = [
        ["sedAbC123", "sedq9XkLm"],
        ["sed0f3a9c", "sedzzzzzz"],
        ["sedQWERTY", "sed7u2b1x"],
    ];
    let mut l = Learner::new(Limits::default(), None).expect("limits");
    for (i, names) in replicas.iter().take(2).enumerate() {
        for n in names {
            let mut e = event_of(EventType::Openat, &format!("/etc/nginx/conf.d/{n}"));
            std::sync::Arc::make_mut(&mut e.container).id = format!("replica{i}");
            l.observe(&e);
        }
    }
    let p = l.profiles()[&nginx()].clone();
    assert!(p.write_files.is_empty(), "{:?}", p.write_files);
    assert_eq!(p.write_globs.len(), 1);
    let p = from_yaml(&to_yaml(&p), "p.yaml").expect("round trip");
    let rs = load_generated(&p);
    for n in replicas[2] {
        let mut e = event_of(EventType::Openat, &format!("/etc/nginx/conf.d/{n}"));
        std::sync::Arc::make_mut(&mut e.container).id = "replica2".into();
        assert_eq!(p.matches(&e), None, "{n}");
        assert!(rs.matching(&e).is_empty(), "{n}");
    }
    // the file sed replaces, and other names there, still alert
    for n in [
        "default.conf",
        "sed",
        "sedAbC12",
        "sedAbC1234",
        "sedAbC12/x",
    ] {
        let e = event_of(EventType::Openat, &format!("/etc/nginx/conf.d/{n}"));
        assert!(p.matches(&e).is_some(), "{n}");
        assert_eq!(rs.matching(&e).len(), 1, "{n}");
    }
}

/// A UDP send as the probe reports it: from a socket whose port the process
/// bound (`bound`: the server's role, `fd.sport` = the local port, the client in
/// `fd.cip`/`fd.cport`), or from an autobound port (a client).
fn udp_send(from: (&str, u16), to: (&str, u16), bound: bool) -> Event {
    let mut e = event_of(EventType::Sendto, "");
    std::sync::Arc::make_mut(&mut e.process).exepath = "/usr/sbin/named".into();
    e.res = 64;
    e.args = Args::default();
    let (me, peer) = (
        Some(from.0.parse().expect("ip")),
        Some(to.0.parse().expect("ip")),
    );
    e.fd = Some(if bound {
        Fd {
            num: 5,
            typ: FdType::Ipv4,
            l4proto: L4Proto::Udp,
            cip: peer,
            cport: Some(to.1),
            sip: me,
            sport: Some(from.1),
            is_client: false,
            bound: Some(true),
            ..Fd::default()
        }
    } else {
        Fd {
            num: 5,
            typ: FdType::Ipv4,
            l4proto: L4Proto::Udp,
            cip: me,
            cport: Some(from.1),
            sip: peer,
            sport: Some(to.1),
            is_client: true,
            bound: Some(false),
            ..Fd::default()
        }
    });
    if from.0.contains(':') {
        if let Some(f) = e.fd.as_mut() {
            f.typ = FdType::Ipv6;
        }
    }
    e
}

/// An accepted TCP connection as the probe reports it: `fd.sport` the port
/// served, the client in `fd.cip`/`fd.cport`.
fn accept(server: (&str, u16), client: (&str, u16)) -> Event {
    let mut e = event_of(EventType::Accept4, "");
    e.res = 6;
    e.args = Args::default();
    e.fd = Some(Fd {
        num: 6,
        typ: if server.0.contains(':') {
            FdType::Ipv6
        } else {
            FdType::Ipv4
        },
        l4proto: L4Proto::Tcp,
        cip: Some(client.0.parse().expect("ip")),
        cport: Some(client.1),
        sip: Some(server.0.parse().expect("ip")),
        sport: Some(server.1),
        is_client: false,
        connected: true,
        bound: Some(true),
        ..Fd::default()
    });
    e
}

/// The profile learned from a server's events (no default rules), which has
/// nothing outbound, and its served ports as `proto/port xCOUNT`.
fn learn_servers(evs: &[Event]) -> (Profile, Vec<String>) {
    let mut l = Learner::new(Limits::default(), None).expect("limits");
    for e in evs {
        l.observe(e);
    }
    let p = l.profiles()[&nginx()].clone();
    assert!(p.outbound.is_empty(), "{:?}", p.outbound);
    let ports = p
        .inbound
        .iter()
        .flat_map(|m| m.iter())
        .map(|((proto, port), s)| format!("{proto}/{port} x{}", s.count))
        .collect();
    (p, ports)
}

/// A replay fixture: the events, checked in as JSON lines (golden), read back.
fn replay_fixture(name: &str, evs: &[Event]) -> Vec<Event> {
    let mut text = Vec::new();
    for e in evs {
        falco_learn_event::write_jsonl(&mut text, e).expect("serialises");
    }
    golden(name, &String::from_utf8(text).expect("utf-8"));
    events(&fixture(name))
}

/// The matcher's and the generated rules' verdicts on `e`, which must agree:
/// the dimension alerted, if any.
fn verdict(p: &Profile, rs: &Ruleset, e: &Event) -> Option<Dimension> {
    let fired: Vec<String> = rs.matching(e).iter().map(|r| r.name.clone()).collect();
    let want = p.matches(e).map(|a| a.dimension);
    assert_eq!(
        fired,
        want.map(|d| rule_name(&p.image, d))
            .into_iter()
            .collect::<Vec<_>>(),
        "{:?}",
        e.fd
    );
    want
}

/// Issue 9's replay fixture: a UDP server answering 100 client ports (a
/// `sendto` from its bound 192.0.2.10:53 back to each client's port) learns
/// `inbound: udp/53` and no outbound entry; answering new clients raises no
/// alert in the matcher or the generated rules, a reply from a port it never
/// served is an inbound anomaly, and a query from an autobound port is still
/// outbound.
#[test]
fn udp_server_answering_100_client_ports_raises_no_outbound_alert() {
    let evs: Vec<Event> = (0..100u16)
        .map(|i| {
            let client = format!("198.51.100.{}", 1 + i % 50);
            let mut e = udp_send(("192.0.2.10", 53), (&client, 32768 + i * 281), true);
            e.ts += u64::from(i) * 1_000_000;
            e
        })
        .collect();
    let evs = replay_fixture("udp_server.jsonl", &evs);
    let (p, ports) = learn_servers(&evs);
    assert_eq!(ports, ["udp/53 x100"]);
    assert!(to_yaml(&p).contains(
        "  inbound:\n    - { proto: udp, port: 53, count: 100, first_seen: 2025-11-22T00:06:40.000000000Z, last_seen: 2025-11-22T00:06:40.099000000Z }\n"
    ), "{}", to_yaml(&p));
    let rs = load_generated(&p);
    // replaying the recording: zero alerts
    for e in &evs {
        assert_eq!(verdict(&p, &rs, e), None);
    }
    // the minimal case, and other new clients (IPv4 and IPv6)
    for (ip, port) in [
        ("198.51.100.20", 40312),
        ("198.51.100.20", 36554),
        ("203.0.113.9", 1024),
        ("203.0.113.9", 65535),
    ] {
        assert_eq!(
            verdict(&p, &rs, &udp_send(("192.0.2.10", 53), (ip, port), true)),
            None,
            "{port}"
        );
    }
    let mut v6 = udp_send(("2001:db8::10", 53), ("2001:db8::20", 40312), true);
    assert_eq!(verdict(&p, &rs, &v6), None);
    // a port never served: inbound, not outbound
    v6 = udp_send(("2001:db8::10", 5353), ("2001:db8::20", 40312), true);
    assert_eq!(verdict(&p, &rs, &v6), Some(Dimension::Inbound));
    assert_eq!(
        verdict(
            &p,
            &rs,
            &udp_send(("192.0.2.10", 123), ("198.51.100.20", 123), true)
        ),
        Some(Dimension::Inbound)
    );
    // clients stay outbound, whatever their ports
    for (from, to) in [
        (("192.0.2.10", 40312), ("198.51.100.20", 53)),
        (("192.0.2.10", 40000), ("198.51.100.20", 40001)),
        (("192.0.2.10", 53), ("198.51.100.20", 61000)),
    ] {
        assert_eq!(
            verdict(&p, &rs, &udp_send(from, to, false)),
            Some(Dimension::Outbound),
            "{from:?} -> {to:?}"
        );
    }
    // TCP is never a reply: a connect from port 53 is a client's
    let mut c = udp_send(("192.0.2.10", 40312), ("198.51.100.20", 53), false);
    c.typ = EventTypeField(EventType::Connect);
    if let Some(fd) = c.fd.as_mut() {
        fd.l4proto = L4Proto::Tcp;
    }
    assert_eq!(verdict(&p, &rs, &c), Some(Dimension::Outbound));
}

/// A TCP server accepting from many client ports, IPv4 and IPv6, learns its
/// listening ports once each; new clients raise no alert, a port never served
/// raises "Unexpected inbound connection", in both the matcher and the rules.
#[test]
fn tcp_server_accepting_many_clients_learns_the_listening_port() {
    let mut evs = Vec::new();
    for i in 0..60u16 {
        let (server, client) = if i % 2 == 0 {
            (("192.0.2.10", 80), format!("198.51.100.{}", 1 + i))
        } else {
            (("2001:db8::10", 443), format!("2001:db8::{:x}", 0x100 + i))
        };
        let mut e = accept(server, (&client, 33000 + i * 457));
        e.ts += u64::from(i) * 1_000_000;
        evs.push(e);
    }
    let evs = replay_fixture("tcp_server.jsonl", &evs);
    let (p, ports) = learn_servers(&evs);
    assert_eq!(ports, ["tcp/80 x30", "tcp/443 x30"]);
    // through the YAML and back
    let back = from_yaml(&to_yaml(&p), "p.yaml").expect("parses");
    assert_eq!(back.inbound, p.inbound);
    let rs = load_generated(&p);
    for e in &evs {
        assert_eq!(verdict(&p, &rs, e), None);
    }
    for (server, client) in [
        (("192.0.2.10", 80), ("203.0.113.7", 61000)),
        (("2001:db8::10", 443), ("2001:db8::ffff", 1025)),
    ] {
        assert_eq!(verdict(&p, &rs, &accept(server, client)), None);
    }
    // ports are served whatever the address (80 and 443 on both)
    for server in [
        ("192.0.2.10", 8443),
        ("2001:db8::10", 8080),
        ("192.0.2.10", 22),
    ] {
        let e = accept(server, ("203.0.113.7", 61000));
        assert_eq!(verdict(&p, &rs, &e), Some(Dimension::Inbound), "{server:?}");
        let a = p.matches(&e).expect("anomaly");
        assert_eq!(
            a.to_string(),
            format!("unexpected inbound: tcp/{}", server.1)
        );
    }
    // a failed accept is nothing
    let mut failed = accept(("192.0.2.10", 8443), ("203.0.113.7", 61000));
    failed.res = -11;
    assert_eq!(verdict(&p, &rs, &failed), None);
    // the generated rule's output names the served port and the client
    let gen = generate_rules(&p).expect("generates");
    assert!(
        gen.contains(
            "- list: fl_learned_docker_io_library_nginx_1_27_inbound_tcp\n  items: [80, 443]\n"
        ),
        "{gen}"
    );
    assert!(gen.contains("Unexpected inbound connection to learned image (connection=%fd.name proto=%fd.l4proto port=%fd.sport client=%fd.cip"), "{gen}");
}

/// Profiles of schema 2 were learned without the inbound dimension: it is not
/// learned there (allows every server, no rule); schema 3 and later with no
/// section read the same, and an inbound section in a schema-2 file is refused.
#[test]
fn schema_2_profiles_load_without_inbound() {
    let (l, _) = learn("nginx.jsonl");
    let p = l.profiles()[&nginx()].clone();
    let y3 = to_yaml(&p);
    assert!(
        y3.contains("schema_version: 4\n") && y3.contains("  inbound: []\n"),
        "{y3}"
    );
    let y2 = y3
        .replace("schema_version: 4\n", "schema_version: 2\n")
        .replace("  inbound: []\n", "");
    let old = from_yaml(&y2, "old.yaml").expect("schema 2 loads");
    assert_eq!(old.inbound, None);
    assert!(!to_yaml(&old).contains("inbound"));
    let rs = load_generated(&old);
    let e = accept(("192.0.2.10", 8443), ("203.0.113.7", 61000));
    assert_eq!(verdict(&old, &rs, &e), None);
    assert!(!generate_rules(&old).expect("generates").contains("inbound"));
    // schema 4 without the section: not learned either
    let none = from_yaml(&y3.replace("  inbound: []\n", ""), "none.yaml").expect("loads");
    assert_eq!(none.inbound, None);
    // the learned, empty dimension refuses every server
    let rs = load_generated(&p);
    assert_eq!(verdict(&p, &rs, &e), Some(Dimension::Inbound));
    let bad = y2.replace("network:\n", "network:\n  inbound: []\n");
    let err = from_yaml(&bad, "bad.yaml")
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("schema_version 2 has no inbound section"),
        "{err}"
    );
}

#[test]
fn learned_directories_with_glob_characters_stay_exact_and_rules_agree() {
    // Falco's pmatch reads a path component holding `*`, `?` or `[` as a glob, so a
    // generalised `/srv/a*b` would allow `/srv/aXb/…` in Falco and not in the matcher:
    // such directories are never generalised, their files stay exact entries.
    let (l, _) = learn("nginx.jsonl");
    let limits = Limits::default();
    let mut p = l.profiles()[&nginx()].clone();
    let n = limits.file_dir_threshold + 3;
    for i in 0..n {
        p.learn_write(&format!("/srv/data/a*b/f{i}"), 1, &limits);
        p.learn_write(&format!("/srv/data/c[1]/f{i}"), 1, &limits);
        p.learn_write(&format!("/srv/data/plain/f{i}"), 1, &limits);
    }
    // libsinsp's bare strings stop at `=`: such a value must be quoted in the rules
    p.learn_write("/srv/k=v", 1, &limits);
    assert!(!p.write_dirs.keys().any(|d| d.contains(['*', '?', '['])));
    assert!(
        p.write_dirs.contains_key("/srv/data/plain"),
        "{:?}",
        p.write_dirs.keys()
    );
    assert!(p.write_files.contains_key("/srv/data/a*b/f0"));

    let fixture = events(&fixture("nginx.jsonl"));
    let open = fixture
        .iter()
        .find(|e| {
            matches!(
                falco_learn_profiler::behaviour(e),
                Some(falco_learn_profiler::Behaviour::Write { .. })
            ) && p.image.is_event(e)
        })
        .cloned()
        .expect("a write");
    let paths = [
        ("/srv/data/a*b/f0", true),
        ("/srv/data/aXb/f0", false),
        ("/srv/data/a*b/new", false),
        ("/srv/data/c[1]/f1", true),
        ("/srv/data/c1/f1", false),
        ("/srv/data/plain/new/deeper", true),
        ("/srv/data/plain", true),
        ("/srv/data//plain/x", true),
        ("/srv/data/plainx", false),
        ("/srv/k=v", true),
        ("/srv/k", false),
    ];
    let rs = load_generated(&p);
    for (path, allowed) in paths {
        let mut e = open.clone();
        if let Some(fd) = e.fd.as_mut() {
            fd.name = path.into();
        }
        let fired: Vec<String> = rs.matching(&e).iter().map(|r| r.name.clone()).collect();
        let want: Vec<String> = p
            .matches(&e)
            .map(|a| rule_name(&p.image, a.dimension))
            .into_iter()
            .collect();
        assert_eq!(fired, want, "{path}: generated rules and matcher disagree");
        assert_eq!(want.is_empty(), allowed, "{path}");
    }
    // a profile written before this rule (a glob directory) is refused, not mistranslated
    let mut old = p.clone();
    let seen = old.write_dirs.values().next().cloned().expect("a dir");
    old.write_dirs.insert("/srv/x*y".into(), seen);
    let err = generate_rules(&old).expect_err("refused");
    assert!(err.to_string().contains("/srv/x*y"), "{err}");
}

/// An exec in a container with its own pid namespace: host pid `pid`, vpid
/// `vpid`, parent `(pid, vpid, exe)` then the runtime's shim.
fn exec_in_ns(exe: &str, pid: u32, vpid: u32, parent: (u32, u32, &str), ts: u64) -> Event {
    use falco_learn_event::{Ancestor, Container, Process};
    let anc = |(pid, vpid, exe): (u32, u32, &str)| Ancestor {
        pid,
        vpid,
        exepath: exe.into(),
        start_ts: 1_000 + pid as u64,
        ..Ancestor::default()
    };
    Event {
        ts,
        typ: EventTypeField(EventType::Execve),
        process: Process {
            pid,
            vpid,
            comm: exe.rsplit('/').next().unwrap_or(exe).into(),
            exepath: exe.into(),
            start_ts: 1_000 + pid as u64,
            ..Process::default()
        }
        .into(),
        ancestors: vec![
            anc(parent),
            anc((50, 50, "/usr/bin/containerd-shim-runc-v2")),
        ]
        .into(),
        container: Container {
            id: "c0ffee000001".into(),
            image_repository: "docker.io/library/nginx".into(),
            image_tag: "1.27".into(),
            ..Container::default()
        }
        .into(),
        ..Event::default()
    }
}

/// Issue 9 §3: an entrypoint `sh` that runs sed and execs nginx is learned as
/// lineage; nginx starting `sh` afterwards is an anomaly naming the parent, in
/// the matcher and in the generated rules alike; the entrypoint's own `sh` on a
/// restart, and an exec session's shell, are told apart by `proc.vpid`.
#[test]
fn nginx_starting_a_shell_alerts_with_its_parent_the_entrypoint_does_not() {
    let shim = (50, 50, "/usr/bin/containerd-shim-runc-v2");
    let runc = (60, 60, "/usr/sbin/runc");
    let start = |base: u32, ts: u64| {
        vec![
            exec_in_ns("/bin/busybox", base, 1, shim, ts),
            exec_in_ns(
                "/bin/busybox",
                base + 1,
                2,
                (base, 1, "/bin/busybox"),
                ts + 1,
            ),
            exec_in_ns("/usr/sbin/nginx", base, 1, shim, ts + 2),
        ]
    };
    let mut l = Learner::new(Limits::default(), Some(default_rules())).expect("limits");
    for e in start(100, 10) {
        assert!(matches!(l.observe(&e), Outcome::Learned { .. }), "{e:?}");
    }
    let p = l.profiles()[&nginx()].clone();
    let y = to_yaml(&p);
    assert!(
        y.contains("  - { path: /bin/busybox, count: 2, first_seen: 1970-01-01T00:00:00.000000010Z, last_seen: 1970-01-01T00:00:00.000000011Z, init: true, parents: [/bin/busybox] }\n"),
        "{y}"
    );
    assert_eq!(from_yaml(&y, "p.yaml").expect("reads"), p);
    let rs = load_generated(&p);
    let verdict = |e: &Event| {
        let fired: Vec<String> = rs.matching(e).iter().map(|r| r.alert(e).output).collect();
        let want = p.matches(e);
        assert_eq!(
            fired.len(),
            usize::from(want.is_some()),
            "{want:?} {fired:?}"
        );
        (want.map(|a| a.to_string()), fired)
    };
    // a restart: the same start-up, new pids
    for e in start(200, 20) {
        assert_eq!(verdict(&e), (None, vec![]), "{e:?}");
    }
    // nginx (a worker, vpid 7) starting sh
    let rce = exec_in_ns("/bin/busybox", 300, 9, (201, 7, "/usr/sbin/nginx"), 30);
    let (anomaly, fired) = verdict(&rce);
    assert_eq!(
        anomaly.as_deref(),
        Some("unexpected exec: /bin/busybox parent=/usr/sbin/nginx")
    );
    assert!(
        fired[0].contains("exe=/bin/busybox cmdline=busybox parent=/usr/sbin/nginx"),
        "{fired:?}"
    );
    // an exec session's shell: busybox started by runc, not as pid 1
    let session = exec_in_ns("/bin/busybox", 400, 12, runc, 40);
    assert_eq!(
        verdict(&session).0.as_deref(),
        Some("unexpected exec: /bin/busybox parent=/usr/sbin/runc")
    );
}
