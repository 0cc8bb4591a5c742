#!/usr/bin/env bash
# Build a small nginx image without a registry (../shared/CONTAINERS.md): Debian's
# nginx, nginx-common, busybox-static and openssh-client packages unpacked with
# `dpkg -x` (no maintainer scripts run, so what they would do is done here),
# busybox applet links, and the shared libraries `ldd` names for the nginx and
# ssh binaries, copied from this host (same Debian release as the packages).
# The ssh client is there for the end-to-end scenarios (tests/e2e_nginx.rs): a
# process whose name is really `ssh` makes the outbound connections.
#
#   build-nginx-image.sh [--ctr] [--podman] [--ref REF] [--out DIR]
#
# Writes DIR/rootfs/ and DIR/nginx-image.tar (docker-save format, named REF,
# default docker.io/library/nginx:latest). --ctr imports it with `ctr images
# import` (containerd must run), --podman with `podman import` under the same name.
#
# The image runs /docker-entrypoint.sh (like the official image): it writes
# /etc/nginx/sites-enabled/default from sites-available/default with the listen
# port from $NGINX_PORT (default 80) and execs `nginx -g 'daemon off;'`. It writes
# only fixed paths (no `sed -i` temporary files), so what a learned profile holds
# is the same on every run. Logs go to /var/log/nginx/{access,error}.log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ref=docker.io/library/nginx:latest
out=""
do_ctr=0 do_podman=0
while (($#)); do
    case $1 in
        --ctr) do_ctr=1 ;;
        --podman) do_podman=1 ;;
        --ref) ref=$2; shift ;;
        --out) out=$2; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "$0: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$out" ] || out=$(mktemp -d /tmp/fl-nginx-image.XXXXXX)
mkdir -p "$out"
root=$out/rootfs
debs=$out/debs
rm -rf "$root" "$debs"
mkdir -p "$root" "$debs"

# packages: the apt lists may be missing on a fresh machine
pkgs=(nginx nginx-common busybox-static openssh-client)
if ! (cd "$debs" && apt-get download "${pkgs[@]}" >/dev/null 2>&1); then
    apt-get update -qq
    (cd "$debs" && apt-get download "${pkgs[@]}" >/dev/null)
fi
for d in "$debs"/*.deb; do dpkg -x "$d" "$root"; done

# busybox applets for the entrypoint and for people poking around
for a in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
done

# the libraries of the nginx and ssh binaries (and the loader), from this host
for bin in /usr/sbin/nginx /usr/bin/ssh; do
    if ldd "$root$bin" | grep -q 'not found'; then
        echo "$0: libraries of $bin missing on this host (install openssh-client / nginx):" >&2
        ldd "$root$bin" | grep 'not found' >&2
        exit 1
    fi
    ldd "$root$bin" | awk '/=> \//{print $3} /^[ \t]*\//{print $1}' | while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
done

# what nginx-common's maintainer scripts and the base system would provide
mkdir -p "$root"/{etc,run,tmp,proc,sys,dev,usr/local/bin,var/log/nginx,var/lib/nginx,var/www/html,etc/nginx/sites-enabled}
chmod 1777 "$root/tmp"
# sites-enabled/default is written by the entrypoint (the package links it)
rm -f "$root/etc/nginx/sites-enabled/default"
cp "$root/usr/share/nginx/html/index.html" "$root/var/www/html/index.nginx-debian.html"
cat >"$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
P
cat >"$root/etc/group" <<'G'
root:x:0:
www-data:x:33:
nogroup:x:65534:
G
chown 33:33 "$root/var/lib/nginx"
cat >"$root/docker-entrypoint.sh" <<'S'
#!/bin/sh
# falco-learn test nginx image: listen on $NGINX_PORT (default 80), run in the foreground
set -e
port=${NGINX_PORT:-80}
sed "s/listen 80 default_server;/listen $port default_server;/; s/listen \[::\]:80 default_server;/listen [::]:$port default_server;/" \
    /etc/nginx/sites-available/default >/etc/nginx/sites-enabled/default
exec /usr/sbin/nginx -g 'daemon off;'
S
chmod 755 "$root/docker-entrypoint.sh"

"$here/make-image-tar.sh" "$root" "$ref" "$out/nginx-image.tar" /docker-entrypoint.sh >/dev/null
echo "image: $out/nginx-image.tar ($ref, $(du -sh "$root" | cut -f1) rootfs)"

if ((do_ctr)); then
    ctr images import "$out/nginx-image.tar" >/dev/null
    echo "ctr: imported $ref"
fi
if ((do_podman)); then
    tar -C "$root" -c . | podman import --change 'CMD ["/docker-entrypoint.sh"]' - "$ref" >/dev/null
    echo "podman: imported $ref"
fi
