//! Least privilege on disk and no silent misconfiguration (issue 13 §5), end
//! to end through the CLI.
//!
//! Every command runs with `umask 000`: what holds behaviour (the store, the
//! recordings, the alert file) is private whatever the umask; exported
//! profiles and generated rules are readable (they are reviewed in git and
//! deployed) but never writable by others. A profiles directory that does
//! not exist or holds no profiles stops `run` with an error naming it.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `falco-learn ARGS` with umask 000.
fn run(args: &[&std::ffi::OsStr]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_falco-learn"));
    cmd.args(args)
        .args(["--log", "warn"])
        .env_remove("FALCO_LEARN_STORE");
    // SAFETY: umask is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    cmd.output().expect("run falco-learn")
}

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Every file and directory under `dir` (itself included) with its mode.
fn modes(dir: &Path) -> Vec<(String, u32)> {
    let mut v = vec![(".".to_string(), mode(dir))];
    for e in std::fs::read_dir(dir).expect("ls").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        v.push((name, mode(&e.path())));
    }
    v.sort();
    v
}

fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

#[test]
fn store_exports_and_rules_have_their_modes_whatever_the_umask() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = dir.path().join("var/lib/falco-learn/store");
    let fixture = repo("profiler/tests/fixtures/nginx.jsonl");
    ok(&run(&[
        os("--image"),
        os("nginx"),
        os("--from"),
        fixture.as_os_str(),
        os("--store"),
        store.as_os_str(),
    ]));
    // the store: 0700, everything sled made in it 0600 (its blobs dir 0700);
    // the parents it needed: 0755
    let got = modes(&store);
    assert!(got.len() >= 4, "{got:?}");
    for (name, m) in &got {
        let want = if name == "." || name == "blobs" {
            0o700
        } else {
            0o600
        };
        assert_eq!(*m, want, "{name} in the store: {m:04o} ({got:?})");
    }
    assert_eq!(mode(&dir.path().join("var/lib/falco-learn")), 0o755);

    // exported profiles: readable for review, writable by the owner only
    let profiles = dir.path().join("profiles");
    ok(&run(&[
        os("profiles"),
        os("export"),
        os("--store"),
        store.as_os_str(),
        os("--dir"),
        profiles.as_os_str(),
    ]));
    assert_eq!(
        modes(&profiles),
        [(".".into(), 0o755), ("nginx_1.27.yaml".into(), 0o644)]
    );
    // generated rules and a merged profile likewise
    let rules = dir.path().join("rules");
    ok(&run(&[
        os("rules"),
        os("generate"),
        os("--store"),
        store.as_os_str(),
        os("--all"),
        os("-o"),
        rules.as_os_str(),
    ]));
    assert_eq!(
        modes(&rules),
        [(".".into(), 0o755), ("nginx_1.27.yaml".into(), 0o644)]
    );
    let exported = profiles.join("nginx_1.27.yaml");
    let merged = dir.path().join("merged.yaml");
    ok(&run(&[
        os("profiles"),
        os("merge"),
        os("--store"),
        store.as_os_str(),
        exported.as_os_str(),
        exported.as_os_str(),
        os("-o"),
        merged.as_os_str(),
    ]));
    assert_eq!(mode(&merged), 0o644);
    // a stricter mode the owner gave an exported file is kept
    std::fs::set_permissions(&exported, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    ok(&run(&[
        os("profiles"),
        os("export"),
        os("--store"),
        store.as_os_str(),
        os("--dir"),
        profiles.as_os_str(),
    ]));
    assert_eq!(mode(&exported), 0o600);

    // a store that others can read (made before, or by hand) is tightened, and it says so
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let err = ok(&run(&[
        os("profiles"),
        os("list"),
        os("--store"),
        store.as_os_str(),
    ]));
    assert!(
        err.contains(&format!(
            "store {}: mode was 0755, now 0700 (it holds the behaviour of every container learned)",
            store.display()
        )),
        "{err}"
    );
    assert_eq!(mode(&store), 0o700);

    // reading a store that is not there makes none
    let nowhere = dir.path().join("nowhere");
    let out = run(&[
        os("profiles"),
        os("list"),
        os("--store"),
        nowhere.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "falco-learn: error: no store at {} (nothing was learned into it; check --store or \
             FALCO_LEARN_STORE)\n",
            nowhere.display()
        )
    );
    assert!(!nowhere.exists());
}

/// The alert file: 0640 whatever the umask. It is opened before the probe
/// starts, so without root the file is made and `run` then fails; as root
/// `run` runs for a moment.
#[test]
fn the_alert_file_is_0640_whatever_the_umask() {
    let dir = tempfile::tempdir().expect("tmp");
    let alerts = dir.path().join("alerts.json");
    let file_o = format!("outputs.file.filename={}", alerts.display());
    let out = run(&[
        os("run"),
        os("--duration"),
        os("1ms"),
        os("-o"),
        os("outputs.file.enabled=true"),
        os("-o"),
        os(&file_o),
        os("-o"),
        os("outputs.stdout.enabled=false"),
        os("-o"),
        os("metrics.enabled=false"),
    ]);
    assert!(
        alerts.exists(),
        "no alert file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&alerts), 0o640);
}

/// `record -o`: 0600 whatever the umask, and an existing recording readable
/// by others loses that. Needs the probe (root).
#[test]
fn recordings_are_0600_whatever_the_umask() {
    if common::skip_without_root("the recording mode test (loads the probe)") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let rec = dir.path().join("events.jsonl");
    ok(&run(&[
        os("record"),
        os("--duration"),
        os("100ms"),
        os("-o"),
        rec.as_os_str(),
    ]));
    assert_eq!(mode(&rec), 0o600);
    std::fs::set_permissions(&rec, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    ok(&run(&[
        os("record"),
        os("--duration"),
        os("100ms"),
        os("-o"),
        rec.as_os_str(),
    ]));
    assert_eq!(mode(&rec), 0o600);
    // what the agent evaluated (`run --record`) holds the same: 0600 too
    std::fs::set_permissions(&rec, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    ok(&run(&[
        os("run"),
        os("--duration"),
        os("100ms"),
        os("-o"),
        os("metrics.enabled=false"),
        os("--record"),
        rec.as_os_str(),
    ]));
    assert_eq!(mode(&rec), 0o600);
}

/// `run --profiles DIR` where DIR is missing or holds no profiles used to run
/// with none (exit 0, not a word; enforce-kill then enforced nothing).
#[test]
fn a_missing_or_empty_profiles_directory_stops_run() {
    let dir = tempfile::tempdir().expect("tmp");
    let err = |args: &[&std::ffi::OsStr]| {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let missing = dir.path().join("nonexistent");
    assert_eq!(
        err(&[os("run"), os("--profiles"), missing.as_os_str()]),
        format!(
            "falco-learn: error: profiles directory {} does not exist (--profiles or \
             profiles.dir); to run the rules without profiles, leave profiles.dir empty\n",
            missing.display()
        )
    );
    let empty = dir.path().join("profiles");
    std::fs::create_dir(&empty).expect("mkdir");
    std::fs::write(empty.join("README"), "not a profile").expect("write");
    assert_eq!(
        err(&[os("run"), os("--profiles"), empty.as_os_str()]),
        format!(
            "falco-learn: error: profiles directory {} holds no profiles (*.yaml, *.yml); to run \
             the rules until profiles appear there (SIGHUP loads them), set \
             profiles.allow_empty=true\n",
            empty.display()
        )
    );
    assert_eq!(
        err(&[os("run"), os("--mode"), os("enforce-kill")]),
        "falco-learn: error: --mode enforce-kill kills execs outside their image's profile, and \
         no profiles are configured: give --profiles DIR (or profiles.dir)\n"
    );
    // a configuration file's value is checked the same way, and numbers too
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, format!("profiles:\n  dir: {}\n", missing.display())).expect("write");
    assert!(
        err(&[os("run"), os("-c"), cfg.as_os_str()]).contains(&format!(
            "profiles directory {} does not exist",
            missing.display()
        ))
    );
    assert_eq!(
        err(&[os("run"), os("-o"), os("engine.ring_mib=0")]),
        "falco-learn: error: engine.ring_mib must be between 1 and 1024, got 0\n"
    );
}
