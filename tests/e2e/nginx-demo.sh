#!/usr/bin/env bash
# The end-to-end nginx scenario of issue 6 in one command (as root, after .ci/setup):
# build the nginx image (tests/e2e/build-nginx-image.sh), run it with containerd,
# learn it live for 15 s while HTTP requests hit it, export the profile and generate
# rules, then run `falco-learn run --mode enforce-alert` with the upstream stable
# Falco rules and the learned profile while five attacks run inside the container
# (tty shell, drop-and-execute, ssh to 443, the /dev/vi tmpfs exec, ssh to 2222).
# Every alert is printed and asserted; everything started is removed at the end.
# It is exactly `cargo test --test e2e_nginx` (tests/e2e_nginx.rs) with its output.
#
#   bash tests/e2e/nginx-demo.sh
#   FALCO_LEARN_UPDATE_PROFILES=1 bash tests/e2e/nginx-demo.sh   # also rewrite profiles/nginx.yaml
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then
    echo "nginx-demo: needs root (eBPF probe, containerd, a network namespace)" >&2
    exit 1
fi
# a missing prerequisite fails the demo instead of skipping it
export CI=${CI:-true}
exec cargo test --locked --test e2e_nginx -- --nocapture
