#!/usr/bin/env bash
# Build a one-layer image archive in the `docker save` format (manifest.json +
# config + layer tar) from a root filesystem directory, for `ctr images import`.
# No registry, no Docker: tar, sha256sum and a JSON config written here.
#
#   make-image-tar.sh ROOTFS REF OUT.tar [CMD...]
#   e.g. make-image-tar.sh /tmp/rootfs docker.io/library/nginx:latest nginx.tar /usr/sbin/nginx -g 'daemon off;'
set -euo pipefail
if (($# < 3)); then
    echo "usage: $0 ROOTFS REF OUT.tar [CMD...]" >&2
    exit 2
fi
rootfs=$1 ref=$2 out=$3
shift 3
[ -d "$rootfs" ] || { echo "$0: $rootfs is not a directory" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# deterministic layer: sorted names, fixed owner and times
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='@0' \
    -C "$rootfs" -cf "$work/layer.tar" .
layer_sha=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
mkdir "$work/$layer_sha"
mv "$work/layer.tar" "$work/$layer_sha/layer.tar"

cmd_json=""
for a in "$@"; do
    esc=${a//\\/\\\\}
    esc=${esc//\"/\\\"}
    cmd_json+="${cmd_json:+,}\"$esc\""
done
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
cat >"$work/config.json" <<JSON
{"architecture":"$arch","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":[${cmd_json}]},"rootfs":{"type":"layers","diff_ids":["sha256:$layer_sha"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"falco-learn tests/e2e/make-image-tar.sh"}]}
JSON
config_sha=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mv "$work/config.json" "$work/$config_sha.json"
cat >"$work/manifest.json" <<JSON
[{"Config":"$config_sha.json","RepoTags":["$ref"],"Layers":["$layer_sha/layer.tar"]}]
JSON
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='@0' \
    -C "$work" -cf "$out" manifest.json "$config_sha.json" "$layer_sha"
echo "$out: $ref (config sha256:$config_sha, layer sha256:$layer_sha)"
