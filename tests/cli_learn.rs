//! `falco-learn --image … --from …`, `profiles …` and `rules generate` end to
//! end on the nginx-like fixture recording (no root, no eBPF).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_falco-learn"))
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run falco-learn")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn learn(store: &Path) -> Output {
    run(&[
        "--image",
        "nginx",
        "--from",
        s(&repo("profiler/tests/fixtures/nginx.jsonl")),
        "--store",
        s(store),
        "--log",
        "warn",
    ])
}

#[test]
fn learn_export_generate_and_the_seed() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = dir.path().join("store");
    let out = learn(&store);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("falco-learn: window complete. Read 220 events, 216 of images matching 'nginx', 0 flagged by default rules."),
        "{err}"
    );
    assert!(
        err.contains("saved docker.io/library/nginx:1.27: 7 execs, 3 outbound ports, 5 write paths, 2 containers"),
        "{err}"
    );

    // export: byte for byte the golden profile of the profiler's own test
    let profiles = dir.path().join("profiles");
    let out = run(&[
        "profiles",
        "export",
        "--store",
        s(&store),
        "--dir",
        s(&profiles),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let exported = profiles.join("nginx_1.27.yaml");
    assert_eq!(
        text(&out.stdout),
        format!("docker.io/library/nginx:1.27 → {}\n", exported.display())
    );
    let golden = std::fs::read_to_string(repo("profiler/tests/fixtures/nginx.profile.yaml"))
        .expect("golden");
    assert_eq!(
        std::fs::read_to_string(&exported).expect("exported"),
        golden
    );

    // list shows the profile and the finished window
    let out = run(&["profiles", "list", "--store", s(&store)]);
    let list = text(&out.stdout);
    assert!(out.status.success());
    assert!(
        list.lines()
            .any(|l| l.starts_with("docker.io/library/nginx:1.27") && l.contains("  no ")),
        "{list}"
    );
    assert!(list.contains("— done, 220 events read"), "{list}");

    // generated rules: the golden file; replayed on the seed they flag all five
    let rules = dir.path().join("rules");
    let out = run(&[
        "rules",
        "generate",
        "--store",
        s(&store),
        "--image",
        "nginx",
        "-o",
        s(&rules),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let generated = rules.join("nginx_1.27.yaml");
    let golden =
        std::fs::read_to_string(repo("profiler/tests/fixtures/nginx.rules.yaml")).expect("golden");
    assert_eq!(
        std::fs::read_to_string(&generated).expect("generated"),
        golden
    );
    let out = run(&[
        "replay",
        "-r",
        s(&generated),
        s(&repo("rules/tests/fixtures/seed.jsonl")),
    ]);
    let alerts: Vec<(String, String)> = text(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("alert json");
            (
                v["rule"].as_str().unwrap_or_default().to_string(),
                v["output_fields"]["proc.exepath"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let exec = "Unexpected process in docker.io/library/nginx:1.27 (falco-learn)".to_string();
    let net =
        "Unexpected outbound connection in docker.io/library/nginx:1.27 (falco-learn)".to_string();
    assert_eq!(
        alerts,
        vec![
            (exec.clone(), "/usr/bin/bash".into()),
            (exec.clone(), "/usr/local/bin/vi".into()),
            (net.clone(), "/usr/bin/ssh".into()),
            (exec.clone(), "/dev/vi".into()),
            (net.clone(), "/usr/bin/ssh".into()),
        ]
    );
    // … and on the learned traffic, none
    let out = run(&[
        "replay",
        "-r",
        s(&generated),
        s(&repo("profiler/tests/fixtures/nginx.jsonl")),
    ]);
    assert_eq!(text(&out.stdout), "");
    assert!(
        text(&out.stderr).contains("220 events, 0 alerts"),
        "{}",
        text(&out.stderr)
    );

    // import into a fresh store: show prints the same file back
    let store2 = dir.path().join("store2");
    let out = run(&["profiles", "import", "--store", s(&store2), s(&exported)]);
    assert_eq!(
        text(&out.stdout),
        "imported docker.io/library/nginx:1.27 (15 entries)\n",
        "{}",
        text(&out.stderr)
    );
    let out = run(&["profiles", "show", "--store", s(&store2), "nginx"]);
    assert_eq!(text(&out.stdout), golden_profile());
}

fn golden_profile() -> String {
    std::fs::read_to_string(repo("profiler/tests/fixtures/nginx.profile.yaml")).expect("golden")
}

#[test]
fn diff_merge_and_bad_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = dir.path().join("a.yaml");
    std::fs::write(&a, golden_profile()).expect("write a");
    // b: a replica that also ran curl to a new peer and wrote a new file, but never ran sed
    let b_text = golden_profile()
        .replace("  - { path: /usr/bin/sed,", "  - { path: /usr/bin/wget,")
        .replace("peers: [10.96.12.34/32]", "peers: [10.96.12.35/32]")
        .replace(
            "    - { path: /var/run/nginx.pid,",
            "    - { path: /var/run/nginx2.pid, count: 1 }\n    - { path: /var/run/nginx.pid,",
        );
    let b = dir.path().join("b.yaml");
    std::fs::write(&b, &b_text).expect("write b");
    let store = dir.path().join("store");
    let out = run(&["profiles", "diff", "--store", s(&store), s(&a), s(&b)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "+ exec /usr/bin/wget\n\
         - exec /usr/bin/sed\n\
         ~ outbound tcp/8080 [10.96.12.34/32] -> [10.96.12.35/32]\n\
         + file_write /var/run/nginx2.pid\n"
    );

    let merged = dir.path().join("merged.yaml");
    let out = run(&[
        "profiles",
        "merge",
        "--store",
        s(&store),
        s(&a),
        s(&b),
        "-o",
        s(&merged),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let m = std::fs::read_to_string(&merged).expect("merged");
    assert!(m.contains("  - { path: /usr/bin/sed, count: 2,"), "{m}");
    assert!(m.contains("  - { path: /usr/bin/wget, count: 2,"), "{m}");
    assert!(m.contains("  - { path: /usr/sbin/nginx, count: 4,"), "{m}");
    assert!(
        m.contains("peers: [10.96.12.34/31] }"),
        "adjacent peers aggregate exactly:\n{m}"
    );
    assert!(m.contains("  containers: 4\n"), "{m}");
    // merged minus either side: only additions
    let out = run(&["profiles", "diff", "--store", s(&store), s(&a), s(&merged)]);
    assert!(
        text(&out.stdout)
            .lines()
            .all(|l| l.starts_with('+') || l.starts_with('~')),
        "{}",
        text(&out.stdout)
    );

    // a bad file: import stores nothing and names file, line and key
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        golden_profile().replace("  containers: 2", "  containres: 2"),
    )
    .expect("w");
    let out = run(&["profiles", "import", "--store", s(&store), s(&a), s(&bad)]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let line = golden_profile()
        .lines()
        .position(|l| l == "  containers: 2")
        .expect("line")
        + 1;
    assert!(
        err.starts_with(&format!(
            "falco-learn: error: {}:{line}:3: learning: unknown field `containres`",
            bad.display()
        )),
        "{err}"
    );
    let out = run(&["profiles", "list", "--store", s(&store)]);
    assert_eq!(
        text(&out.stdout).lines().count(),
        1,
        "header only: nothing imported"
    );
}

#[test]
fn sigterm_ends_early_keeps_what_was_learned_and_the_same_command_resumes() {
    let dir = tempfile::tempdir().expect("tmp");
    // a long recording: the fixture 200 times over
    let fixture =
        std::fs::read_to_string(repo("profiler/tests/fixtures/nginx.jsonl")).expect("fixture");
    let big = dir.path().join("big.jsonl");
    std::fs::write(&big, fixture.repeat(200)).expect("write");
    let store = dir.path().join("store");
    let args = [
        "learn",
        "--image",
        "nginx:1.27",
        "--from",
        s(&big),
        "--store",
        s(&store),
        "--log",
        "warn",
    ];
    let child = bin()
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(400));
    // SAFETY: signalling our own child by pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().expect("wait");
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("stopped early; run the same command to resume"),
        "{err}"
    );
    let out = run(&["profiles", "list", "--store", s(&store)]);
    assert!(
        text(&out.stdout).contains("unfinished (resumable)"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&args);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("resuming window 'image=nginx:1.27 source="),
        "{err}"
    );
    assert!(err.contains("window complete"), "{err}");
    // Interrupted + resumed equals the fixture learned 200 times in one go:
    // every count is 200× the single pass's.
    let out = run(&["profiles", "show", "--store", s(&store), "nginx"]);
    let shown = text(&out.stdout);
    assert!(shown.contains("  events: 43200\n"), "{shown}");
    assert!(
        shown.contains("  - { path: /usr/sbin/nginx, count: 400,"),
        "{shown}"
    );
    assert!(shown.contains("  containers: 2\n"), "{shown}");
}

#[test]
fn without_arguments_prints_help_and_live_needs_an_image() {
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stdout).contains("falco-learn --image nginx --duration 1h"));
    let out = run(&["learn", "--duration", "1s", "--store", "/nonexistent/x"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "falco-learn: error: --image is required (e.g. `falco-learn --image nginx --duration 1h`)\n"
    );
    let out = run(&["--image", "nginx", "--duration", "nonsense"]);
    assert_eq!(out.status.code(), Some(2), "clap rejects a bad duration");
}

/// Running the same `learn --from FILE` again after it completed used to
/// learn the recording a second time (every count doubled, not a word). A
/// recording is recognised by the CRC-32 of the bytes the window read: the
/// same file, or a copy, is not learned again unless `--fresh`; a file that
/// grew is learned from where the window stopped; a different file at the
/// same path is a new recording.
#[test]
fn a_learned_recording_is_not_learned_twice() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = dir.path().join("store");
    let fixture = std::fs::read(repo("profiler/tests/fixtures/nginx.jsonl")).expect("fixture");
    let rec = dir.path().join("rec.jsonl");
    std::fs::write(&rec, &fixture).expect("write");
    let canon = std::fs::canonicalize(&rec).expect("canonical");
    let learn = |file: &Path, extra: &[&str]| {
        let mut args = vec!["--image", "nginx", "--from", s(file), "--store", s(&store)];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--log", "warn"]);
        let out = run(&args);
        let err = text(&out.stderr);
        assert!(out.status.success(), "{err}");
        err
    };
    let events = || {
        let shown = text(&run(&["profiles", "show", "--store", s(&store), "nginx"]).stdout);
        shown
            .lines()
            .find_map(|l| l.strip_prefix("  events: "))
            .expect("events line")
            .to_string()
    };
    let window = format!("image=nginx source={} duration=none", canon.display());
    learn(&rec, &[]);
    assert_eq!(events(), "216");
    // again: recognised, nothing learned, exit 0
    let already = |path: &Path| {
        format!(
            "falco-learn: {} was already learned into this store (window '{window}': 220 events, \
             complete); nothing to do. `--fresh` learns it again, adding to every count\n",
            path.display()
        )
    };
    assert_eq!(learn(&rec, &[]), already(&rec));
    assert_eq!(events(), "216");
    // a copy under another name: the same recording
    let copy = dir.path().join("copy.jsonl");
    std::fs::write(&copy, &fixture).expect("write");
    assert_eq!(learn(&copy, &[]), already(&copy));
    assert_eq!(events(), "216");
    // the same bytes with another --duration: all of it was learned
    assert_eq!(learn(&rec, &["--duration", "1h"]), already(&rec));
    assert_eq!(events(), "216");
    // it grew: only the new events are learned
    let first_20: Vec<&[u8]> = fixture.split_inclusive(|&b| b == b'\n').take(20).collect();
    let tail = first_20.concat();
    let mut grown = fixture.clone();
    grown.extend_from_slice(&tail);
    std::fs::write(&rec, &grown).expect("write");
    let err = learn(&rec, &[]);
    assert!(
        err.starts_with(&format!(
            "falco-learn: {} grew by {} bytes since window '{window}' learned it; learning the \
             new events\n",
            rec.display(),
            tail.len()
        )),
        "{err}"
    );
    assert!(
        err.contains("window complete. Read 20 events, 16 of"),
        "{err}"
    );
    assert_eq!(events(), "232");
    assert_eq!(learn(&rec, &[]), {
        already(&rec).replace("220 events", "240 events")
    });
    // --fresh: learned again from its start, counts add up
    let err = learn(&rec, &["--fresh"]);
    assert!(
        err.starts_with(&format!(
            "falco-learn: --fresh: learning {} again from its start; its counts add to the \
             stored profiles\n",
            rec.display()
        )),
        "{err}"
    );
    assert_eq!(events(), "464");
    // another recording at the same path (same size, other bytes): a new one
    let other = String::from_utf8(grown)
        .expect("utf-8")
        .replace("node-1", "node-2");
    std::fs::write(&rec, other).expect("write");
    let err = learn(&rec, &[]);
    assert!(
        err.starts_with(&format!(
            "falco-learn: {} is not the recording window '{window}' learned (it changed); \
             learning it as a new recording\n",
            rec.display()
        )),
        "{err}"
    );
    assert_eq!(events(), "696");
}

/// An unfinished window whose recording was replaced is not resumed in the
/// middle of other bytes.
#[test]
fn an_unfinished_window_over_a_changed_recording_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture =
        std::fs::read_to_string(repo("profiler/tests/fixtures/nginx.jsonl")).expect("fixture");
    let big = dir.path().join("big.jsonl");
    std::fs::write(&big, fixture.repeat(200)).expect("write");
    let store = dir.path().join("store");
    let args = [
        "learn",
        "--image",
        "nginx",
        "--from",
        s(&big),
        "--store",
        s(&store),
        "--flush-interval",
        "0s",
        "--log",
        "warn",
    ];
    let child = bin()
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(400));
    // SAFETY: signalling our own child by pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().expect("wait");
    let err = text(&out.stderr);
    assert!(err.contains("stopped early"), "{err}");
    // the same size, other bytes at the start
    std::fs::write(&big, fixture.replace("node-1", "node-2").repeat(200)).expect("write");
    let out = run(&args);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "falco-learn: error: {} changed since this window read it (its first ",
            big.display()
        )) && err.ends_with(" bytes differ); `--fresh` learns it from its start as a new window\n"),
        "{err}"
    );
}

/// A recording learned in part by a window that its duration ended is not
/// learned again from its start by a window with another duration (its
/// first events would count twice).
#[test]
fn a_recording_learned_in_part_is_not_learned_again_in_another_window() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = dir.path().join("store");
    let rec = repo("profiler/tests/fixtures/nginx.jsonl");
    let canon = std::fs::canonicalize(&rec).expect("canonical");
    let learn = |extra: &[&str]| {
        let mut args = vec!["--image", "nginx", "--from", s(&rec), "--store", s(&store)];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--log", "warn"]);
        run(&args)
    };
    let out = learn(&["--duration", "100ms"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = learn(&[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("falco-learn: error: the first ")
            && err.ends_with(&format!(
                " bytes of {} were learned by window 'image=nginx source={} duration=100ms'; \
                 learning it in another window would count those events twice. Run that \
                 window's command to continue it, or `--fresh` to learn it anyway\n",
                rec.display(),
                canon.display()
            )),
        "{err}"
    );
    // the same command again: complete, nothing to do
    let out = learn(&["--duration", "100ms"]);
    assert!(
        text(&out.stderr).contains("was already learned into this store"),
        "{}",
        text(&out.stderr)
    );
}
