//! The shipped configuration files stay true: deploy/falco-learn.yaml documents
//! exactly the defaults, and the DaemonSet's embedded configuration loads.

use falco_learn_enforcer::config::Config;
use serde::Deserialize;
use std::path::Path;

fn deploy(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

#[test]
fn documented_config_is_the_defaults() {
    let c = Config::load(Some(&deploy("falco-learn.yaml")), &[])
        .expect("deploy/falco-learn.yaml loads");
    assert_eq!(c, Config::default());
}

#[test]
fn daemonset_config_loads_and_mounts_what_the_agent_needs() {
    let text = std::fs::read_to_string(deploy("daemonset.yaml")).expect("read daemonset.yaml");
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).expect("YAML document"))
        .collect();
    assert_eq!(docs.len(), 3, "Namespace, ConfigMap, DaemonSet");
    let cm = &docs[1];
    let embedded = cm["data"]["falco-learn.yaml"]
        .as_str()
        .expect("embedded config");
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("c.yaml");
    std::fs::write(&f, embedded).expect("write");
    let c = Config::load(Some(&f), &[]).expect("embedded config loads");
    assert_eq!(c.profiles.dir, Path::new("/etc/falco-learn/profiles"));
    // the profiles ConfigMap is optional: an empty directory must not stop the agent
    assert!(c.profiles.allow_empty);
    let ds = &docs[2];
    assert_eq!(ds["kind"], "DaemonSet");
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["hostPID"], true);
    let mounts: Vec<&str> = spec["containers"][0]["volumeMounts"]
        .as_sequence()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    for needed in [
        "/sys/kernel/btf",
        "/sys/kernel/tracing",
        "/run/containerd/containerd.sock",
        "/etc/falco-learn/profiles",
    ] {
        assert!(
            mounts.contains(&needed),
            "DaemonSet does not mount {needed}: {mounts:?}"
        );
    }
    let caps: Vec<&str> = spec["containers"][0]["securityContext"]["capabilities"]["add"]
        .as_sequence()
        .expect("caps")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert!(
        caps.contains(&"BPF") && caps.contains(&"PERFMON"),
        "{caps:?}"
    );
    // enforce-kill's kills from userspace signal processes of any uid
    assert!(caps.contains(&"KILL"), "{caps:?}");
    assert_eq!(
        spec["containers"][0]["securityContext"]["privileged"],
        false
    );
    // /proc of every process readable where the node runs AppArmor
    assert_eq!(
        spec["containers"][0]["securityContext"]["appArmorProfile"]["type"],
        "Unconfined"
    );
}
