#!/usr/bin/env bash
# Kernel matrix: boot Debian's own kernels under qemu and run `falco-learn selftest` inside each.
#
# Usage (root, from the repository root):
#   bash tests/kernels/matrix.sh [-b BINARY] [-c CACHE_DIR] [-t TIMEOUT_S] [SUITE|PACKAGE ...]
#
#   SUITE    bullseye (5.10), bookworm (6.1), trixie (6.12), bookworm-backports, trixie-backports
#            (newest), sid: the newest linux-image-amd64 of the suite (and its -security suite);
#            or an exact package such as linux-image-6.1.0-57-amd64.
#            Default: bullseye bookworm trixie trixie-backports.
#   -b       the falco-learn binary to boot (default: target/release/falco-learn, else target/debug/)
#   -c       cache of apt lists, packages and extracted kernels, kept between runs
#            (default: /var/cache/falco-learn/kernels); nothing else is written outside it
#   -t       wall-clock limit of one guest, seconds (default 300)
#
# Each guest is a busybox initramfs holding the stripped binary and its shared libraries; the
# root is ramfs (so /dev/shm is the only tmpfs), with proc, sysfs, devtmpfs, tracefs and
# cgroup2 mounted and loopback up. `falco-learn selftest` loads the probe and asserts, exactly,
# a plain exec, a tmpfs exec, a memfd exec, an open for write, a TCP connect, a symlink, a
# ptrace, a fork/exit, 32-bit syscalls and an enforce-kill kill (probe/src/selftest.rs), with
# the default syscall hooks and, on 5.15+, again with the per-syscall tracepoints. The guest's BTF
# (/sys/kernel/btf/vmlinux) comes back over a second serial port; afterwards the CO-RE proof
# (probe/tests/core_relocation.rs) relocates the probe object against every booted kernel's BTF
# and fails on any relocation that no existence check guards.
#
# Facts this relies on (../shared/kernels/README.md): /dev/kvm here is kvm_pvm and cannot run
# stock kernels, so guests run under TCG; Debian's kernels have BTF, BPF, tracefs, syscall
# tracepoints, 8250 serial and tmpfs built in, so only vmlinuz is needed. Kernels come from
# Debian's archive through a private apt configuration under the cache (the host's apt sources,
# lists and dpkg status are never touched).
#
# Exit status: 0 when every kernel booted and passed every check, 1 otherwise.
set -euo pipefail

BIN=""
CACHE=/var/cache/falco-learn/kernels
TMO=300
while getopts "b:c:t:h" o; do
  case $o in
    b) BIN=$OPTARG ;; c) CACHE=$OPTARG ;; t) TMO=$OPTARG ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
KERNELS=("$@")
[ ${#KERNELS[@]} -gt 0 ] || KERNELS=(bullseye bookworm trixie trixie-backports)
if [ -z "$BIN" ]; then
  for b in target/release/falco-learn target/debug/falco-learn; do
    [ -x "$b" ] && { BIN=$b; break; }
  done
fi
[ -n "$BIN" ] && [ -x "$BIN" ] || { echo "matrix: no falco-learn binary (build it, or pass -b)" >&2; exit 1; }
for t in qemu-system-x86_64 cpio strip dpkg-deb apt-get; do
  command -v $t >/dev/null || { echo "matrix: missing $t (apt-get install qemu-system-x86 cpio busybox-static binutils)" >&2; exit 1; }
done
BB=/bin/busybox
file -L "$BB" 2>/dev/null | grep -q 'statically linked' || { echo "matrix: $BB is not busybox-static" >&2; exit 1; }

log() { echo "[matrix $(date +%T)] $*"; }
mkdir -p "$CACHE"/{apt/lists/partial,apt/cache/archives/partial,apt/parts,debs,k}
RUN=$(mktemp -d /tmp/fl-kmatrix.XXXXXX)
trap 'rm -rf "$RUN"' EXIT

# ---- private apt configuration ----
A=$CACHE/apt
KR=/usr/share/keyrings/debian-archive-keyring.gpg
{
  for s in bullseye bookworm bookworm-backports trixie trixie-backports sid; do
    echo "deb [signed-by=$KR] http://deb.debian.org/debian $s main"
  done
  for s in bullseye-security bookworm-security trixie-security; do
    echo "deb [signed-by=$KR] http://deb.debian.org/debian-security $s main"
  done
} > "$A/sources.list"
: > "$A/status"
cat > "$A/apt.conf" <<CONF
Dir::Etc::SourceList "$A/sources.list";
Dir::Etc::SourceParts "$A/parts";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "$A/parts";
Dir::State::Lists "$A/lists";
Dir::State::status "$A/status";
Dir::Cache "$A/cache";
APT::Sandbox::User "root";
Acquire::Retries "3";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled "false";
CONF
export APT_CONFIG=$A/apt.conf
# lists are refreshed at most once a day (a kernel newer than the cache is picked up then)
if [ -z "$(find "$A/lists" -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
  log "apt-get update (private configuration under $A)"
  apt-get update -qq > "$RUN/apt.log" 2>&1 || { cat "$RUN/apt.log"; exit 1; }
fi

newest_meta() { # newest linux-image-amd64 version in suite $1 or $1-security
  local best="" v s
  while IFS='|' read -r _ v s; do
    v=$(echo $v); s=$(echo $s | awk '{print $2}'); s=${s%%/*}
    if [ "$s" = "$1" ] || [ "$s" = "$1-security" ]; then
      if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
    fi
  done < <(apt-cache madison linux-image-amd64)
  echo "$best"
}
resolve() { # suite or package -> linux-image-X package
  case $1 in
    linux-image-*) echo "$1" ;;
    *) local v; v=$(newest_meta "$1"); [ -n "$v" ] || { echo "no linux-image-amd64 in suite $1" >&2; return 1; }
       apt-cache show "linux-image-amd64=$v" | sed -n 's/^Depends: //p' | head -1 | tr ',' '\n' |
         grep -o 'linux-image-[^ ]*' | head -1 ;;
  esac
}
fetch_kernel() { # package -> directory holding its vmlinuz (cached)
  local pkg=$1 d=$CACHE/k/$1 f dep
  if [ -z "$(find "$d" -name 'vmlinuz*' 2>/dev/null | head -1)" ]; then
    rm -rf "$d"; mkdir -p "$d"
    (cd "$CACHE/debs" && apt-get download -q "$pkg" > /dev/null 2>&1) || { echo "download of $pkg failed" >&2; return 1; }
    f=$(ls -t "$CACHE/debs/${pkg}_"*.deb | head -1)
    dpkg-deb --fsys-tarfile "$f" | tar -x -C "$d" --wildcards '*vmlinuz*' 2>/dev/null || true
    if [ -z "$(find "$d" -name 'vmlinuz*' | head -1)" ]; then
      # from 6.19 on linux-image-X depends on linux-binary-X, which holds vmlinuz
      for dep in $(dpkg-deb -f "$f" Depends | tr ',' '\n' | grep -o 'linux-binary-[^ ]*'); do
        (cd "$CACHE/debs" && apt-get download -q "$dep" > /dev/null 2>&1)
        dpkg-deb --fsys-tarfile "$(ls -t "$CACHE/debs/${dep}_"*.deb | head -1)" |
          tar -x -C "$d" --wildcards '*vmlinuz*' 2>/dev/null || true
      done
    fi
    rm -f "$CACHE/debs/"*.deb   # only the extracted vmlinuz is kept
  fi
  find "$d" -name 'vmlinuz*' | head -1
}

# ---- initramfs (one for every kernel) ----
IR=$RUN/root
mkdir -p "$IR"/{bin,usr/local/bin,etc,proc,sys,dev,tmp,root}
cp "$BB" "$IR/bin/busybox"
strip --strip-debug -o "$IR/usr/local/bin/falco-learn" "$BIN"
for lib in $(ldd "$BIN" | grep -o '/[^ ]*'); do
  mkdir -p "$IR$(dirname "$lib")"; cp -L "$lib" "$IR$lib"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$IR/etc/passwd"
printf 'root:x:0:\n' > "$IR/etc/group"
cat > "$IR/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/local/bin NO_COLOR=1
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/shm; mount -t tmpfs tmpfs /dev/shm
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || mount -t debugfs debugfs /sys/kernel/debug
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
stty -F /dev/ttyS1 raw -echo 2>/dev/null
[ -e /sys/kernel/btf/vmlinux ] && cat /sys/kernel/btf/vmlinux > /dev/ttyS1
falco-learn selftest --timeout 60s 2>/tmp/err
echo "@@ selftest exit $?"
grep -iE 'error|warn' /tmp/err | head -20 | sed 's/^/@@ stderr: /'
# the other family of syscall hooks, each syscall's own tracepoint, where the kernel has it (5.15+)
kv=$(uname -r); maj=${kv%%.*}; rest=${kv#*.}; min=${rest%%.*}
if [ "$maj" -gt 5 ] || { [ "$maj" -eq 5 ] && [ "$min" -ge 15 ]; }; then
  falco-learn selftest --timeout 60s --syscall-hook tracepoints 2>/tmp/err
  echo "@@ selftest (tracepoints) exit $?"
  grep -iE 'error|warn' /tmp/err | head -20 | sed 's/^/@@ stderr: /'
fi
sync; poweroff -f
INIT
chmod +x "$IR/init"
(cd "$IR" && find . | cpio -o -H newc --quiet) > "$RUN/initramfs.cpio"

# ---- boot each kernel ----
BTF_DIR=$CACHE/btf
mkdir -p "$BTF_DIR"
rm -f "$BTF_DIR"/*.btf
failed=()
summary=()
for spec in "${KERNELS[@]}"; do
  t0=$(date +%s)
  if ! pkg=$(resolve "$spec") || ! kz=$(fetch_kernel "$pkg") || [ -z "$kz" ]; then
    log "$spec: FAILED: kernel package could not be resolved or downloaded"
    failed+=("$spec"); summary+=("$spec: no kernel"); continue
  fi
  kver=${pkg#linux-image-}
  for attempt in 1 2 3; do
    again=""; [ "$attempt" -gt 1 ] && again=", attempt $attempt"
    log "$kver ($spec): booting under qemu (TCG$again)"
    rc=0
    timeout "$TMO" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m 2G -smp 2 \
      -kernel "$kz" -initrd "$RUN/initramfs.cpio" \
      -append "console=ttyS0 rootfstype=ramfs panic=-1 quiet syscall.x32=y" \
      -nographic -monitor none -serial stdio -serial file:"$RUN/$kver.btf" -no-reboot \
      < /dev/null > "$RUN/$kver.console" 2>&1 || rc=$?
    # The guest kernel itself crashed before our binary ran (no `selftest` line at all, an
    # oops or panic on the console): multi-threaded TCG occasionally trips the kernel's
    # live patching of its own text at boot (an int3 oops in early idle code, seen on
    # 6.12). Not a result of the probe: boot that kernel again, at most three times.
    # the console without its carriage returns, as a file: `grep -q` at the end of a pipe
    # exits at its first match and, under pipefail, the writer's SIGPIPE fails the test
    tr -d '\r' < "$RUN/$kver.console" > "$RUN/$kver.out"
    if grep -aq '^selftest' "$RUN/$kver.out"; then break; fi
    if ! grep -aqE 'Oops|Kernel panic|BUG:' "$RUN/$kver.out"; then break; fi
    log "$kver ($spec): the guest kernel crashed while booting, before falco-learn ran (attempt $attempt):"
    grep -aE 'Oops|Kernel panic|BUG:|RIP:' "$RUN/$kver.out" | sed -n "1,4s/^/  [$kver] /p"
  done
  # (no such line when the guest timed out: not an error of this script's own)
  { grep -a -E '^(selftest|@@)' "$RUN/$kver.out" || true; } | sed "s/^/  [$kver] /"
  secs=$(( $(date +%s) - t0 ))
  if [ -s "$RUN/$kver.btf" ]; then cp "$RUN/$kver.btf" "$BTF_DIR/$kver.btf"; fi
  # passed: every selftest run (one per hook family the kernel has) exited 0
  runs=$(grep -ac '^@@ selftest.* exit ' "$RUN/$kver.out" || true)
  ok_runs=$(grep -ac '^@@ selftest.* exit 0$' "$RUN/$kver.out" || true)
  if [ "$runs" -gt 0 ] && [ "$runs" = "$ok_runs" ] &&
     grep -aq '^selftest: all [0-9]* checks passed' "$RUN/$kver.out"; then
    log "$kver ($spec): PASSED in ${secs}s"
    summary+=("$kver ($spec): passed")
  else
    [ "$rc" = 124 ] && log "$kver ($spec): the guest did not finish within ${TMO}s (-t)"
    log "$kver ($spec): FAILED (qemu exit $rc, ${secs}s); last console lines:"
    tail -25 "$RUN/$kver.out" | sed "s/^/  [$kver] /"
    failed+=("$kver"); summary+=("$kver ($spec): FAILED")
  fi
done

log "summary:"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  log "FAILED on: ${failed[*]}"
  exit 1
fi
log "every kernel passed; guest BTF saved under $BTF_DIR (FALCO_LEARN_EXTRA_BTF for the CO-RE proof)"
