//! Top-level CLI behaviour: `--log` anywhere, learning flags only where they mean learning.

use std::process::Command;

fn falco_learn(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_falco-learn"))
        .args(args)
        .output()
        .expect("run falco-learn")
}

#[test]
fn log_flag_goes_before_or_after_the_subcommand() {
    for args in [
        &["--log", "warn", "fields"][..],
        &["fields", "--log", "warn"][..],
    ] {
        let out = falco_learn(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("evt.num "),
            "{args:?}"
        );
    }
}

#[test]
fn learning_flags_before_another_subcommand_are_refused() {
    let out = falco_learn(&["--image", "nginx", "replay", "x.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "falco-learn: error: --image is for learning: use it without a subcommand or after `learn`, not before `replay`\n"
    );
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_falco-learn"))
        .arg("fields")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
