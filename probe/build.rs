//! Compiles the kernel programs (probe/ebpf/src/*.c, CO-RE, `clang -target bpf`) into
//! OUT_DIR/probe.bpf.o, which the loader embeds.
//!
//! `CLANG` picks the compiler (default: the first of clang-22, clang-19, clang on PATH).
//! clang and the libbpf headers are build requirements (`.ci/setup` installs them).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let obj = out.join("probe.bpf.o");
    println!("cargo:rerun-if-changed=ebpf/src");
    println!("cargo:rerun-if-env-changed=CLANG");
    let clang = std::env::var("CLANG").ok().or_else(|| {
        ["clang-22", "clang-19", "clang"]
            .iter()
            .find(|c| {
                Command::new(c)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .map(|c| c.to_string())
    });
    let Some(clang) = clang else {
        panic!(
            "no clang found to compile the eBPF probe: install clang-19 (apt-get install clang-19 libbpf-dev) \
             or set CLANG=/path/to/clang"
        );
    };
    let status = Command::new(&clang)
        .args([
            "-g",
            "-O2",
            "-target",
            "bpf",
            "-Wall",
            "-Werror",
            "-Wno-unused-function",
        ])
        .arg("-Iebpf/src")
        .args(["-c", "ebpf/src/probe.bpf.c", "-o"])
        .arg(&obj)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {clang}: {e}"));
    if !status.success() {
        panic!("{clang} failed to compile ebpf/src/probe.bpf.c (libbpf headers: apt-get install libbpf-dev)");
    }
}
