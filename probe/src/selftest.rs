//! `falco-learn selftest`: load the probe on this kernel and check, exactly, that it
//! reports what it must.
//!
//! A probe that loads is not yet a probe that works: a CO-RE relocation that resolved
//! to the wrong member, a path walk that stops early or a flag read from the wrong
//! superblock all load fine and report wrong values. [`run`] starts the real probe
//! (the same [`Probe::start`] the agent uses), makes a small set of real syscalls in
//! child processes, and compares each event with the value the test computed itself:
//!
//! | check | action (in a child process) | asserted |
//! |---|---|---|
//! | `exec` | runs its own executable (`--version`) | exe path = `/proc/self/exe`, argv, no tmpfs/memfd/upper-layer flag (tmpfs only if the binary really is on one) |
//! | `exec-tmpfs` | runs a copy in `/dev/shm` | that path, `tmpfs` flag |
//! | `exec-memfd` | runs a copy from a memfd (`/proc/self/fd/N`) | `memfd:<name>` (Falco's modern eBPF value), `memfd` flag |
//! | `exec-deleted` | runs a copy unlinked before the exec (`/proc/self/fd/N`) | `<path>` (as Falco: no ` (deleted)`) |
//! | `exec-long-path` | runs a copy at a path of 4300+ bytes (17 directories of 250) from there | exe path and cwd `<truncated>` + the leaf-side components that fit |
//! | `open-write` | `open(O_WRONLY|O_CREAT|O_TRUNC, 0640)` | path, flags, mode, fd |
//! | `connect-tcp` | connects to a loopback listener | peer `127.0.0.1:<port>`, result 0, fd tuple |
//! | `server-tcp` | binds a port, listens, connects to it from an autobound socket, accepts | `accept4` with the listening port, the client's port and the bound flag (`sk_userlocks`, a bitfield before 6.x); the client's connect without it |
//! | `server-udp` | binds a port, a client socket sends to it, the server answers | the reply `sendto` with the server's role (bound flag, `fd.sport` = the bound port, the client in `fd.cport`); the query without it |
//! | `symlink` | `symlink(target, link)` | both paths, result 0 |
//! | `ptrace` | `PTRACE_ATTACH` to its own child | request 16, target pid, result 0 |
//! | `fork-exit` | the ptrace child's own fork and exit | child pid, exit status |
//! | `kernel-filter` | in a cgroup of its own under a profile, opens for writing: two the profile allows (a file, one below an allowed directory), one under a rule prefix, one with a rule's file name, one with a rule's file-name ending, one outside the profile, one by a relative path; then an allowed one from outside the cgroup | exactly the two allowed ones are dropped in the kernel (`profile_filtered` +2, no event), every other one is reported |
//! | `kernel-filter-net` | in a cgroup of its own under a profile allowing TCP and UDP to loopback ports and serving TCP and UDP ports, with one port of each side needed by a rule: a TCP connect, a client's UDP datagram, a UDP reply from a served bound port and an accept on a served port, all allowed; a connect to the rule's port, one outside the profile, an accept on the rule's port and one on a port not served; then an allowed connect from outside the cgroup | exactly the four allowed ones are dropped in the kernel (`profile_filtered` +4, no event), every other one is reported |
//! | `event-filter` | with socket(AF_INET) and every dup2 but onto fds 0–2 of an AF_INET socket set to drop: socket(AF_INET), socket(AF_UNIX), dup2 of the unix socket onto 2, of the inet one onto 9 and onto 2 | socket(AF_INET) and the first two dup2 calls are dropped (no event; `filtered` +3 at least, the plan applies to every process); socket(AF_UNIX) and the dup2 of the inet socket onto 2 are reported |
//! | `enforce-kill` | in a cgroup of its own under a profile, each from a pid namespace of its own (as a container's process): an allowed exec, a disallowed one, the long-path copy with its leaf side allowed as a path, an allowed path unlinked before the exec (`/proc/self/fd/N`), a file named `<that path> (deleted)` (what `/proc/<pid>/exe` shows for the unlinked one), and a file whose name differs from an allowed one's in the top bit of three bytes (a collision of the hash used before, for every key); then the disallowed one from the host's pid namespace: from the test, from a parent in the cgroup named `runc`, from a parent outside it named `runc` but in a mount namespace of its own (a hostPID exec session's command), from a parent outside it named `runc` but chrooted (not the host's root: a hostPID container's process naming itself so), from a parent outside it named `runc` (the runtime's `runc init`) | the disallowed, the truncated, the ` (deleted)`-named and the three-bits-off ones die of SIGKILL with the `killed` flag and their exe path; the allowed and the unlinked allowed ones run; from the host's pid namespace only the runtime's child runs, flagged `runtime`, the others are killed |
//!
//! The kernel matrix (`tests/kernels/`) runs this under qemu on every supported kernel;
//! `tests/selftest.rs` runs it on the build machine's kernel.

use crate::kill::cgroup2_mount;
use crate::{Probe, ProbeConfig, ProbeError};
use falco_learn_event::path;
use falco_learn_event::{Args, Event, EventType, L4Proto};
use std::ffi::CString;
use std::os::fd::AsRawFd as _;
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the self-test runs.
#[derive(Debug, Clone)]
pub struct SelftestConfig {
    /// How long to wait for each expected event.
    pub timeout: Duration,
    /// Also check enforce-kill (needs a cgroup v2 hierarchy to create a cgroup in).
    pub kill: bool,
    /// The syscall hooks to check ([`crate::ProbeConfig::syscall_hook`]).
    pub syscall_hook: crate::SyscallHook,
}

impl Default for SelftestConfig {
    fn default() -> Self {
        SelftestConfig {
            timeout: Duration::from_secs(20),
            kill: true,
            syscall_hook: crate::SyscallHook::Auto,
        }
    }
}

/// The outcome of one check: what was seen (`Ok`) or what was wrong (`Err`).
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Result<String, String>,
}

/// Everything [`run`] found.
#[derive(Debug, Clone)]
pub struct Report {
    /// `uname -r` of the kernel under test.
    pub kernel: String,
    /// How long loading and attaching the probe took.
    pub load_time: Duration,
    /// The syscall hooks checked (resolved: never `Auto`).
    pub syscall_hook: crate::SyscallHook,
    pub checks: Vec<Check>,
}

impl Report {
    /// Number of checks that passed.
    pub fn passed(&self) -> usize {
        self.checks.iter().filter(|c| c.outcome.is_ok()).count()
    }
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.passed() == self.checks.len()
    }
}

struct Seen {
    events: Arc<Mutex<Vec<Event>>>,
    timeout: Duration,
}

impl Seen {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Event>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first event satisfying `pred` (waiting up to the timeout), or a description
    /// of what `pid` did instead.
    /// The first event of `kind` of `pid`, waited for as [`Seen::wait`].
    fn wait_for_kind(&self, what: &str, pid: u32, kind: EventType) -> Result<Event, String> {
        self.wait(what, pid, |e| {
            e.process.pid == pid && e.event_type() == kind
        })
    }

    fn wait(&self, what: &str, pid: u32, pred: impl Fn(&Event) -> bool) -> Result<Event, String> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(e) = self.lock().iter().find(|e| pred(e)) {
                return Ok(e.clone());
            }
            if Instant::now() > deadline {
                let evs = self.lock();
                let of_pid: Vec<String> = evs
                    .iter()
                    .filter(|e| e.process.pid == pid)
                    .map(|e| format!("{}(res={})", e.event_type().as_str(), e.res))
                    .collect();
                return Err(format!(
                    "no {what} event within {:?} ({} events in all; pid {pid}: [{}])",
                    self.timeout,
                    evs.len(),
                    of_pid.join(", ")
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn is_exec(e: &Event, pid: u32) -> bool {
    e.process.pid == pid && matches!(e.event_type(), EventType::Execve | EventType::Execveat)
}

fn expect<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

/// Fork a child that runs `f` (raw syscalls only: the probe's threads run in this
/// process) and `_exit`s with its return value. Returns (pid, wait status).
fn in_child(f: impl FnOnce() -> i32) -> Result<(u32, i32), String> {
    in_child_ns(false, f)
}

/// [`in_child`], the child in a pid namespace of its own (its pid 1) when `new_pid_ns`:
/// as a container's process is.
fn in_child_ns(new_pid_ns: bool, f: impl FnOnce() -> i32) -> Result<(u32, i32), String> {
    let pid = if new_pid_ns {
        // SAFETY: clone without a new stack is fork with flags: the child continues here
        // on a copy of this stack, makes only async-signal-safe raw syscalls, then _exit.
        unsafe {
            libc::syscall(
                libc::SYS_clone,
                (libc::CLONE_NEWPID | libc::SIGCHLD) as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            ) as libc::pid_t
        }
    } else {
        // SAFETY: the child makes only async-signal-safe raw syscalls, then _exit.
        unsafe { libc::fork() }
    };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        let code = f();
        // SAFETY: ends the forked child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    Ok((pid as u32, status))
}

fn child_ok(what: &str, r: Result<(u32, i32), String>) -> Result<u32, String> {
    let (pid, status) = r?;
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(pid)
    } else {
        Err(format!(
            "{what}: the child failed (wait status {status:#x})"
        ))
    }
}

/// Move the calling process into the cgroup whose `cgroup.procs` is `procs` (writing "0"
/// moves the writer). Raw syscalls only: safe between fork and exit in [`in_child`].
fn join_cgroup(procs: &CString) -> bool {
    // SAFETY: open/write/close on a NUL-terminated path prepared before the fork.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
        let ok = fd >= 0 && libc::write(fd, c"0".as_ptr().cast(), 1) == 1;
        if fd >= 0 {
            libc::close(fd);
        }
        ok
    }
}

fn cstr(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{}: NUL in path", p.display()))
}

fn spawn_version(path: &Path) -> Result<u32, String> {
    let mut tries = 0;
    loop {
        match Command::new(path)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(mut c) => {
                let pid = c.id();
                let st = c.wait().map_err(|e| format!("wait: {e}"))?;
                return if st.success() {
                    Ok(pid)
                } else {
                    Err(format!("{} --version: {st}", path.display()))
                };
            }
            // a fork of ours may briefly hold the copy's write fd
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
}

use crate::kill::{fs_magic, TMPFS_MAGIC};

struct Env {
    exe: PathBuf,
    exe_bytes: Vec<u8>,
    dir: PathBuf,
    tmpfs_copy: Option<PathBuf>,
    deep: Result<Deep, String>,
}

/// A copy of the executable at `<dir>/d…d/…/nginx`: 17 directories of 250 bytes, a path
/// longer than the kernel can report (4095 bytes).
struct Deep {
    /// The deepest directory, open.
    fd: std::os::fd::OwnedFd,
    /// What the kernel can report: `/<250 d>` × 16 + `/nginx`.
    leaf_exe: String,
    /// The same for the directory (a cwd there): `/<250 d>` × 16.
    leaf_dir: String,
}

const DEEP_LEVELS: usize = 17;
const DEEP_NAME_LEN: usize = 250;

fn make_deep(dir: &Path, bytes: &[u8]) -> Result<Deep, String> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let open_dir = |at: libc::c_int, name: &std::ffi::CStr| -> Result<OwnedFd, String> {
        // SAFETY: NUL-terminated name; the returned fd is ours.
        let fd = unsafe {
            libc::openat(
                at,
                name.as_ptr(),
                libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(format!("openat: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    use std::os::fd::AsRawFd;
    let mut fd = open_dir(libc::AT_FDCWD, &cstr(dir)?)?;
    let name = CString::new("d".repeat(DEEP_NAME_LEN)).map_err(|e| e.to_string())?;
    for _ in 0..DEEP_LEVELS {
        // SAFETY: NUL-terminated name, a directory fd we own.
        if unsafe { libc::mkdirat(fd.as_raw_fd(), name.as_ptr(), 0o755) } != 0 {
            return Err(format!("mkdirat: {}", std::io::Error::last_os_error()));
        }
        fd = open_dir(fd.as_raw_fd(), &name)?;
    }
    // SAFETY: as above; the file fd is closed below.
    let f = unsafe {
        libc::openat(
            fd.as_raw_fd(),
            c"nginx".as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC,
            0o755,
        )
    };
    if f < 0 {
        return Err(format!("create nginx: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: f is a fresh descriptor we own; File closes it.
    let mut file = unsafe { std::fs::File::from_raw_fd(f) };
    std::io::Write::write_all(&mut file, bytes).map_err(|e| format!("write nginx: {e}"))?;
    drop(file);
    let leaf_dir = format!("/{}", "d".repeat(DEEP_NAME_LEN)).repeat(DEEP_LEVELS - 1);
    Ok(Deep {
        fd,
        leaf_exe: format!("{leaf_dir}/nginx"),
        leaf_dir,
    })
}

/// Exec `./nginx --version` in the deep directory from a child (optionally moved into
/// the cgroup whose `cgroup.procs` is given first, in a pid namespace of its own).
fn run_deep(deep: &Deep, procs: Option<&CString>) -> Result<(u32, i32), String> {
    use std::os::fd::AsRawFd;
    let dfd = deep.fd.as_raw_fd();
    in_child_ns(procs.is_some(), || {
        // SAFETY: raw syscalls on values prepared before fork.
        unsafe {
            if let Some(procs) = procs {
                if !join_cgroup(procs) {
                    return 2;
                }
            }
            if libc::fchdir(dfd) != 0 {
                return 4;
            }
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            libc::dup2(null, 1);
            let argv = [c"./nginx".as_ptr(), c"--version".as_ptr(), std::ptr::null()];
            libc::execv(argv[0], argv.as_ptr());
        }
        3
    })
}

fn check_exec_long_path(seen: &Seen, env: &Env) -> Result<String, String> {
    let deep = env.deep.as_ref().map_err(Clone::clone)?;
    let pid = child_ok("exec ./nginx", run_deep(deep, None))?;
    let ev = seen.wait("execve", pid, |e| is_exec(e, pid))?;
    let want = format!("{}{}", path::TRUNCATED, deep.leaf_exe);
    expect("proc.exepath", ev.process.exepath.as_str(), &want)?;
    let want_cwd = format!("{}{}", path::TRUNCATED, deep.leaf_dir);
    expect("proc.cwd", ev.process.cwd.as_str(), &want_cwd)?;
    Ok(format!(
        "{}+{} bytes reported as <truncated>/…/nginx ({} bytes kept)",
        env.dir.display(),
        DEEP_LEVELS * (DEEP_NAME_LEN + 1) + 6,
        deep.leaf_exe.len()
    ))
}

fn check_exec_deleted(seen: &Seen, env: &Env) -> Result<String, String> {
    let path = env.dir.join("deleted-exe");
    write_exe(&path, &env.exe_bytes)?;
    let pid = run_unlinked(&path, spawn_version)?;
    let ev = seen.wait("execve", pid, |e| is_exec(e, pid))?;
    let want = path.to_string_lossy();
    expect("proc.exepath", ev.process.exepath.as_str(), &want)?;
    Ok(format!("{want} (unlinked)"))
}

/// Write `bytes` to `path` as an executable (0755).
fn write_exe(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Open `path`, unlink it, and `run` it through `/proc/self/fd/N` (the kernel's
/// path is then `path`, detached); the descriptor is closed after `run`.
fn run_unlinked<T>(path: &Path, run: impl FnOnce(&Path) -> Result<T, String>) -> Result<T, String> {
    let c = cstr(path)?;
    // SAFETY: NUL-terminated path; the fd is ours (inherited by the child on purpose).
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        return Err(format!(
            "open {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    let r = std::fs::remove_file(path)
        .map_err(|e| format!("unlink {}: {e}", path.display()))
        .and_then(|()| run(Path::new(&format!("/proc/self/fd/{fd}"))));
    // SAFETY: closing our own fd.
    unsafe { libc::close(fd) };
    r
}

fn check_exec(seen: &Seen, env: &Env) -> Result<String, String> {
    let pid = spawn_version(&env.exe)?;
    let ev = seen.wait("execve", pid, |e| is_exec(e, pid))?;
    let want = env.exe.to_string_lossy();
    expect("proc.exepath", ev.process.exepath.as_str(), &want)?;
    expect(
        "proc.args",
        ev.process.args.clone(),
        vec!["--version".to_string()],
    )?;
    let on_tmpfs = fs_magic(&env.exe) == Some(TMPFS_MAGIC);
    let f = &ev.process.exe_flags;
    expect("tmpfs flag", f.tmpfs, on_tmpfs)?;
    expect("memfd flag", f.memfd, false)?;
    expect("upper-layer flag", f.upper_layer, false)?;
    expect("killed flag", f.killed, false)?;
    expect("ia32 flag", f.ia32, false)?;
    // on the root's filesystem unless this machine keeps it on another (a /home, a /work)
    let other_fs = crate::kill::AllowedExec::host_file(&want).other_fs;
    expect("other-filesystem flag", f.other_fs, Some(other_fs))?;
    Ok(format!(
        "{want} (no drift flags{})",
        if other_fs {
            "; on another filesystem than the root's"
        } else {
            ""
        }
    ))
}

/// The verifier's limit of processed instructions per program (`BPF_COMPLEXITY_LIMIT_INSNS`).
const VERIFIER_LIMIT: u32 = 1_000_000;

/// The largest program's verifier figure stays below 95 % of the verifier's limit: a probe
/// within 5 % of it can stop loading after a small change, or on a kernel whose verifier
/// prunes less. Kernels before 5.16 do not report the figure.
fn check_verifier_margin(probe: &Probe) -> Result<String, String> {
    let all = probe.verified_instructions();
    let Some((name, n)) = all.first() else {
        return Ok("this kernel does not report verified instructions (before 5.16)".into());
    };
    let pct = f64::from(*n) * 100.0 / f64::from(VERIFIER_LIMIT);
    let said = format!("largest: {name} {n} of {VERIFIER_LIMIT} instructions ({pct:.1} %)");
    if u64::from(*n) * 100 > u64::from(VERIFIER_LIMIT) * 95 {
        Err(format!("{said}: within 5 % of the verifier's limit"))
    } else {
        Ok(said)
    }
}

/// The smallest 32-bit (i386) ELF program: `getpid()` then `exit(7)` through `int 0x80`.
/// 103 bytes: the ELF header (52), one loadable segment's program header (32), the code (19).
pub fn ia32_program() -> Vec<u8> {
    elf32(
        &[
            0xb8, 20, 0, 0, 0, // mov eax, 20 (getpid)
            0xcd, 0x80, // int 0x80
            0xb8, 1, 0, 0, 0, // mov eax, 1 (exit)
            0xbb, 7, 0, 0, 0, // mov ebx, 7
            0xcd, 0x80, // int 0x80
        ],
        &[],
    )
}

/// Where [`elf64`] loads a program (and so its code and data, below 4 GiB: 32-bit syscalls
/// take 32-bit pointers).
const ELF64_BASE: u64 = 0x40_0000;
/// The ELF header and the one program header in front of an [`elf64`] program's code.
const ELF64_HEADERS: u64 = 64 + 56;

/// A minimal 64-bit (x86_64) ELF executable: `code` (entered at its first byte), followed by
/// `data`, which is at [`ELF64_BASE`] + [`ELF64_HEADERS`] + `code.len()` in memory. One
/// loadable segment, read+write+execute (a program may keep a result in its data).
fn elf64(code: &[u8], data: &[u8]) -> Vec<u8> {
    let (eh, ph) = (64u16, 56u16);
    let size = ELF64_HEADERS + (code.len() + data.len()) as u64;
    let mut b = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0]; // ELFCLASS64, LSB, version 1
    b.extend([0; 8]);
    for h in [2u16, 62] {
        b.extend(h.to_le_bytes()); // ET_EXEC, EM_X86_64
    }
    b.extend(1u32.to_le_bytes()); // version
    for w in [ELF64_BASE + ELF64_HEADERS, u64::from(eh), 0] {
        b.extend(w.to_le_bytes()); // entry, phoff, shoff
    }
    b.extend(0u32.to_le_bytes()); // flags
    for h in [eh, ph, 1, 0, 0, 0] {
        b.extend(h.to_le_bytes()); // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
    }
    for w in [1u32, 7] {
        b.extend(w.to_le_bytes()); // PT_LOAD, R+W+X
    }
    for w in [0u64, ELF64_BASE, ELF64_BASE, size, size, 0x1000] {
        b.extend(w.to_le_bytes()); // offset, vaddr, paddr, filesz, memsz, align
    }
    b.extend(code);
    b.extend(data);
    b
}

/// The smallest 64-bit (x86_64) ELF program that makes 32-bit syscalls: `getpid` twice
/// through `int 0x80` (ia32 number 20), then `exit(7)` through `syscall`. 146 bytes: the ELF
/// header (64), one loadable segment's program header (56), the code (26).
pub fn int80_program() -> Vec<u8> {
    elf64(
        &[
            0xb8, 20, 0, 0, 0, // mov eax, 20 (ia32 getpid)
            0xcd, 0x80, // int 0x80
            0xb8, 20, 0, 0, 0, // mov eax, 20 (ia32 getpid)
            0xcd, 0x80, // int 0x80
            0xb8, 60, 0, 0, 0, // mov eax, 60 (x86_64 exit)
            0xbf, 7, 0, 0, 0, // mov edi, 7
            0x0f, 0x05, // syscall
        ],
        &[],
    )
}

/// A 64-bit program that calls `dup(0)` through `int 0x80` (ia32 41: x86_64's number of
/// `socket`), then `socket(AF_INET, SOCK_STREAM, 0)` through `syscall` (41), then
/// `exit(7)`: where 32-bit calls are not handled, the first must reach no 64-bit handler.
pub fn int80_dup_then_socket_program() -> Vec<u8> {
    elf64(
        &[
            0xb8, 41, 0, 0, 0, // mov eax, 41 (ia32 dup)
            0xbb, 0, 0, 0, 0, // mov ebx, 0
            0xcd, 0x80, // int 0x80
            0xb8, 41, 0, 0, 0, // mov eax, 41 (x86_64 socket)
            0xbf, 2, 0, 0, 0, // mov edi, AF_INET
            0xbe, 1, 0, 0, 0, // mov esi, SOCK_STREAM
            0xba, 0, 0, 0, 0, // mov edx, 0
            0x0f, 0x05, // syscall
            0xb8, 60, 0, 0, 0, // mov eax, 60 (x86_64 exit)
            0xbf, 7, 0, 0, 0, // mov edi, 7
            0x0f, 0x05, // syscall
        ],
        &[],
    )
}

/// A 64-bit program that renames `old` to `new` through `int 0x80` (ia32 `rename`, 38) and
/// exits with the call's result (0, or the errno's two's complement low byte). `None` when a
/// path has a NUL or the paths do not fit the 32-bit addresses below 4 GiB (never, in
/// practice).
pub fn int80_rename_program(old: &str, new: &str) -> Option<Vec<u8>> {
    const CODE_LEN: u64 = 26;
    if old.contains('\0') || new.contains('\0') {
        return None;
    }
    let old_at = u32::try_from(ELF64_BASE + ELF64_HEADERS + CODE_LEN).ok()?;
    let new_at = old_at.checked_add(u32::try_from(old.len() + 1).ok()?)?;
    let mut code = vec![0xb8, 38, 0, 0, 0]; // mov eax, 38 (ia32 rename)
    code.push(0xbb); // mov ebx, old
    code.extend(old_at.to_le_bytes());
    code.push(0xb9); // mov ecx, new
    code.extend(new_at.to_le_bytes());
    code.extend([
        0xcd, 0x80, // int 0x80
        0x89, 0xc7, // mov edi, eax (the result)
        0xb8, 60, 0, 0, 0, // mov eax, 60 (x86_64 exit)
        0x0f, 0x05, // syscall
    ]);
    debug_assert_eq!(code.len() as u64, CODE_LEN);
    let mut data = Vec::with_capacity(old.len() + new.len() + 2);
    for p in [old, new] {
        data.extend(p.as_bytes());
        data.push(0);
    }
    Some(elf64(&code, &data))
}

/// The smallest 64-bit (x86_64) ELF program: `exit(0)`.
pub fn exit0_program() -> Vec<u8> {
    elf64(
        &[
            0xb8, 60, 0, 0, 0, // mov eax, 60 (x86_64 exit)
            0x31, 0xff, // xor edi, edi
            0x0f, 0x05, // syscall
        ],
        &[],
    )
}

/// A 64-bit program that execs the file open at its descriptor `fd` (`AT_EMPTY_PATH`)
/// through a 32-bit `execveat`: ia32's (358, `int 0x80`), or with `x32` x32's (545 with bit
/// 30, `syscall`), with argv `{"fl-execveat32", NULL}` and an empty environment (arrays of
/// 32-bit pointers, below 4 GiB). If the call returns, the program exits with its result
/// (the low byte of `-errno`: 218 for `ENOSYS`, where the kernel runs no x32 call).
pub fn execveat32_program(fd: u32, x32: bool) -> Vec<u8> {
    // data: argv[0] (the name's address), argv[1] = NULL (also the empty environment, and
    // its first byte the empty path), then the name
    let code = |data: u32| -> Vec<u8> {
        let (argv, empty) = (data, data + 4);
        let mut c = Vec::with_capacity(48);
        let mut op = |prefix: &[u8], imm: u32| {
            c.extend(prefix);
            c.extend(imm.to_le_bytes());
        };
        if x32 {
            op(&[0xb8], 0x4000_0000 | 545); // mov eax, x32 execveat
            op(&[0xbf], fd); // mov edi, fd
            op(&[0xbe], empty); // mov esi, ""
            op(&[0xba], argv); // mov edx, argv
            op(&[0x41, 0xba], empty); // mov r10d, envp (NULL first)
            op(&[0x41, 0xb8], 0x1000); // mov r8d, AT_EMPTY_PATH
            c.extend([0x0f, 0x05]); // syscall
        } else {
            op(&[0xb8], 358); // mov eax, ia32 execveat
            op(&[0xbb], fd); // mov ebx, fd
            op(&[0xb9], empty); // mov ecx, ""
            op(&[0xba], argv); // mov edx, argv
            op(&[0xbe], empty); // mov esi, envp (NULL first)
            op(&[0xbf], 0x1000); // mov edi, AT_EMPTY_PATH
            c.extend([0xcd, 0x80]); // int 0x80
        }
        c.extend([
            0x89, 0xc7, // mov edi, eax (the result)
            0xb8, 60, 0, 0, 0, // mov eax, 60 (x86_64 exit)
            0x0f, 0x05, // syscall
        ]);
        c
    };
    let len = code(0).len() as u64;
    // below 4 GiB by construction (ELF64_BASE and a program of a few dozen bytes)
    let data = (ELF64_BASE + ELF64_HEADERS + len) as u32;
    let mut bytes = Vec::with_capacity(24);
    bytes.extend((data + 8).to_le_bytes()); // argv[0]: the name, below
    bytes.extend(0u32.to_le_bytes());
    bytes.extend(b"fl-execveat32\0");
    elf64(&code(data), &bytes)
}

/// Where [`elf32`] loads a program, and the ELF header and program header in front of its
/// code.
const ELF32_BASE: u32 = 0x0804_8000;
const ELF32_HEADERS: u32 = 52 + 32;

/// A minimal 32-bit (i386) ELF executable: `code` (entered at its first byte), followed by
/// `data`, at [`ELF32_BASE`] + [`ELF32_HEADERS`] + `code.len()` in memory. One loadable
/// read+write+execute segment.
pub(crate) fn elf32(code: &[u8], data: &[u8]) -> Vec<u8> {
    elf32_for(3, code, data)
}

/// A minimal x32 ELF executable (ELFCLASS32, EM_X86_64), laid out as [`elf32`]'s.
fn elfx32(code: &[u8]) -> Vec<u8> {
    elf32_for(62, code, &[])
}

/// [`elf32`] for `machine` (EM_386 3, or EM_X86_64 62: x32).
fn elf32_for(machine: u16, code: &[u8], data: &[u8]) -> Vec<u8> {
    let (eh, ph) = (52u16, 32u16);
    let size = ELF32_HEADERS + (code.len() + data.len()) as u32;
    let mut b = vec![0x7f, b'E', b'L', b'F', 1, 1, 1, 0]; // ELFCLASS32, LSB, version 1
    b.extend([0; 8]);
    for h in [2u16, machine] {
        b.extend(h.to_le_bytes()); // ET_EXEC, the machine
    }
    for w in [1u32, ELF32_BASE + ELF32_HEADERS, u32::from(eh), 0, 0] {
        b.extend(w.to_le_bytes()); // version, entry, phoff, shoff, flags
    }
    for h in [eh, ph, 1, 0, 0, 0] {
        b.extend(h.to_le_bytes()); // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
    }
    for w in [1u32, 0, ELF32_BASE, ELF32_BASE, size, size, 7, 0x1000] {
        b.extend(w.to_le_bytes()); // PT_LOAD, offset, vaddr, paddr, filesz, memsz, R+W+X, align
    }
    b.extend(code);
    b.extend(data);
    b
}

/// The machine code of [`int80_io_program`], its data at `data_at`; the same bytes run as
/// 64-bit and as 32-bit code (only the exit differs).
fn int80_io_code(data_at: u32, path_len: u32, bits64: bool) -> Vec<u8> {
    const EAX: u8 = 0xb8;
    const ECX: u8 = 0xb9;
    const EDX: u8 = 0xba;
    const EBX: u8 = 0xbb;
    const INT80: [u8; 2] = [0xcd, 0x80];
    let sock_args = data_at + (path_len + 1).next_multiple_of(4);
    let connect_args = sock_args + 12;
    let sockaddr = connect_args + 12;
    let mut c = Vec::new();
    let mov = |c: &mut Vec<u8>, reg: u8, v: u32| {
        c.push(reg); // mov r32, imm32
        c.extend(v.to_le_bytes());
    };
    // open(path, O_WRONLY|O_CREAT|O_TRUNC, 0640): ia32 open, 5
    for (reg, v) in [(EAX, 5), (EBX, data_at), (ECX, 0o1101), (EDX, 0o640)] {
        mov(&mut c, reg, v);
    }
    c.extend(INT80);
    // socketcall(SYS_SOCKET, {AF_INET, SOCK_STREAM, 0}): ia32 socketcall, 102
    for (reg, v) in [(EAX, 102), (EBX, 1), (ECX, sock_args)] {
        mov(&mut c, reg, v);
    }
    c.extend(INT80);
    c.extend([0x89, 0x04, 0x25]); // mov [connect_args], eax: the socket
    c.extend(connect_args.to_le_bytes());
    // socketcall(SYS_CONNECT, {fd, &sockaddr, 16})
    for (reg, v) in [(EAX, 102), (EBX, 3), (ECX, connect_args)] {
        mov(&mut c, reg, v);
    }
    c.extend(INT80);
    // socket(AF_INET, SOCK_STREAM, 0): ia32 socket, 359; connect(fd, &sockaddr, 16): 362
    for (reg, v) in [(EAX, 359), (EBX, 2), (ECX, 1), (EDX, 0)] {
        mov(&mut c, reg, v);
    }
    c.extend(INT80);
    c.extend([0x89, 0xc3]); // mov ebx, eax
    for (reg, v) in [(EAX, 362), (ECX, sockaddr), (EDX, 16)] {
        mov(&mut c, reg, v);
    }
    c.extend(INT80);
    if bits64 {
        mov(&mut c, EAX, 60); // x86_64 exit(0)
        c.extend([0xbf, 0, 0, 0, 0, 0x0f, 0x05]); // mov edi, 0; syscall
    } else {
        for (reg, v) in [(EAX, 1), (EBX, 0)] {
            mov(&mut c, reg, v); // ia32 exit(0)
        }
        c.extend(INT80);
    }
    c
}

/// A program that does, through `int 0x80` (ia32 numbers), what a small service does:
/// `open(path, O_WRONLY|O_CREAT|O_TRUNC, 0640)` (5); a TCP connect to 127.0.0.1:`port`
/// through `socketcall` (102: `SYS_SOCKET`, `SYS_CONNECT`), and another through `socket`
/// (359) and `connect` (362); then `exit(0)`. A 64-bit program (`bits64`) or a 32-bit
/// one. `None` when `path` has a NUL or does not fit below 4 GiB (never, in practice).
pub fn int80_io_program(path: &str, port: u16, bits64: bool) -> Option<Vec<u8>> {
    if path.contains('\0') {
        return None;
    }
    let path_len = u32::try_from(path.len()).ok()?;
    let code_at = if bits64 {
        u32::try_from(ELF64_BASE + ELF64_HEADERS).ok()?
    } else {
        ELF32_BASE + ELF32_HEADERS
    };
    let code_len = u32::try_from(int80_io_code(0, path_len, bits64).len()).ok()?;
    let data_at = code_at.checked_add(code_len)?;
    let code = int80_io_code(data_at, path_len, bits64);
    let mut data = path.as_bytes().to_vec();
    data.resize((path.len() + 1).next_multiple_of(4), 0);
    for w in [2u32, 1, 0] {
        data.extend(w.to_le_bytes()); // SYS_SOCKET: AF_INET, SOCK_STREAM, 0
    }
    let sockaddr = data_at + u32::try_from(data.len()).ok()? + 12;
    for w in [0u32, sockaddr, 16] {
        data.extend(w.to_le_bytes()); // SYS_CONNECT: the socket (stored at run), &sockaddr, 16
    }
    data.extend(2u16.to_le_bytes()); // sockaddr_in: AF_INET
    data.extend(port.to_be_bytes());
    data.extend([127, 0, 0, 1]);
    data.extend([0; 8]);
    Some(if bits64 {
        elf64(&code, &data)
    } else {
        elf32(&code, &data)
    })
}

/// 32-bit syscalls are handled as their 64-bit twins: a 64-bit program's `int 0x80` and a
/// 32-bit program's calls (an open for writing, connects through `socketcall` and through
/// `socket`/`connect`) are each an `open` and two `connect` events with the arguments the
/// kernel ran them with; an x32 `openat` too, where the kernel runs x32.
fn check_ia32_handled(seen: &Seen, probe: &Probe, env: &Env) -> Result<String, String> {
    use std::os::unix::process::ExitStatusExt;
    if !probe.ia32_watched() {
        return Ok("this kernel runs no 32-bit syscalls: nothing to handle".into());
    }
    let (listener, port) = listen()?;
    let want_addr = format!("127.0.0.1:{port}");
    let mut said = Vec::new();
    for (bits64, name) in [(true, "int80-io"), (false, "ia32-io")] {
        let out = env.dir.join(format!("{name}.out"));
        let out_s = out.to_string_lossy().into_owned();
        let exe = env.dir.join(name);
        let prog = int80_io_program(&out_s, port, bits64)
            .ok_or_else(|| format!("{out_s}: not a path for a 32-bit program"))?;
        let mut child = match spawn_program(&exe, &prog) {
            Err(e) if !bits64 && e.raw_os_error() == Some(libc::ENOEXEC) => {
                said.push("no 32-bit programs on this kernel".to_string());
                continue;
            }
            r => r.map_err(|e| format!("{}: {e}", exe.display()))?,
        };
        let pid = child.id();
        let st = child.wait().map_err(|e| format!("wait: {e}"))?;
        if bits64 && st.signal() == Some(libc::SIGSEGV) {
            said.push("int 0x80 refused by this kernel (32-bit syscalls off at boot)".into());
            continue;
        }
        expect(&format!("exit status of {name}"), st.code(), Some(0))?;
        let ev = seen.wait(&format!("open by {name}"), pid, |e| {
            e.process.pid == pid
                && e.event_type() == EventType::Open
                && e.fd.as_ref().is_some_and(|f| f.name == out_s)
        })?;
        if ev.res < 0 {
            return Err(format!("{name}: open result {}", ev.res));
        }
        match &ev.args {
            Args::Open { flags, mode, .. } => {
                expect(
                    "open flags (O_WRONLY|O_CREAT|O_TRUNC)",
                    flags & (libc::O_ACCMODE | libc::O_TRUNC | libc::O_CREAT) as u32,
                    (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as u32,
                )?;
                expect("open mode", *mode, 0o640)?;
            }
            other => return Err(format!("{name}: open arguments {other:?}")),
        }
        expect(
            &format!("ia32 flag of {name}"),
            ev.process.exe_flags.ia32,
            !bits64,
        )?;
        // its exit comes after its every call (one ring buffer, in order per process)
        seen.wait_for_kind(&format!("the exit of {name}"), pid, EventType::Procexit)?;
        expect(
            &format!("connects of {name} to {want_addr} (socketcall, connect)"),
            connects(seen, pid, &want_addr),
            2,
        )?;
        said.push(format!(
            "{name}: open and 2 connects (socketcall, connect) reported"
        ));
    }
    drop(listener);
    said.push(check_x32_openat(seen, env)?);
    Ok(said.join("; "))
}

/// How many successful `connect` events to `addr` `pid` has.
fn connects(seen: &Seen, pid: u32, addr: &str) -> usize {
    seen.lock()
        .iter()
        .filter(|e| {
            e.process.pid == pid
                && e.event_type() == EventType::Connect
                && e.res == 0
                && matches!(&e.args, Args::Connect { addr: a, .. } if a == addr)
        })
        .count()
}

/// An x32 `openat` for writing (257 with bit 30) is an `openat` event where the kernel runs
/// x32 (refused with ENOSYS elsewhere: nothing ran).
fn check_x32_openat(seen: &Seen, env: &Env) -> Result<String, String> {
    const X32_OPENAT: i64 = 0x4000_0000 | 257;
    let path = env.dir.join("x32.out");
    let c = cstr(&path)?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    // exit status: 0 opened, 2 refused with ENOSYS, 3 anything else
    let (pid, status) = in_child(|| {
        // SAFETY: a raw syscall on a path prepared before fork; errno read right after.
        unsafe {
            let r = libc::syscall(X32_OPENAT, libc::AT_FDCWD, c.as_ptr(), flags, 0o600);
            let errno = *libc::__errno_location();
            if r >= 0 {
                0
            } else if errno == libc::ENOSYS {
                2
            } else {
                3
            }
        }
    })?;
    seen.wait_for_kind("the x32 openat child's exit", pid, EventType::Procexit)?;
    let want = path.to_string_lossy().into_owned();
    match libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)) {
        Some(0) => {
            let ev = seen.wait("x32 openat", pid, |e| {
                e.process.pid == pid
                    && e.event_type() == EventType::Openat
                    && e.fd.as_ref().is_some_and(|f| f.name == want)
            })?;
            match &ev.args {
                Args::Open { flags: f, mode, .. } => {
                    expect(
                        "x32 openat flags",
                        f & (libc::O_ACCMODE | libc::O_TRUNC | libc::O_CREAT) as u32,
                        flags as u32,
                    )?;
                    expect("x32 openat mode", *mode, 0o600)?;
                }
                other => return Err(format!("x32 openat arguments {other:?}")),
            }
            Ok("x32 openat reported".into())
        }
        Some(2) => Ok("x32 refused by this kernel (ENOSYS)".into()),
        _ => Err(format!(
            "the x32 openat child: unexpected result (wait status {status:#x})"
        )),
    }
}

/// The smallest x32 program: two x32 `getpid` calls (39 with bit 30), then `exit(7)`
/// through the 64-bit table (which x32 processes may call too).
pub fn x32_program() -> Vec<u8> {
    elfx32(&[
        0xb8, 39, 0, 0, 0x40, // mov eax, 0x40000027 (x32 getpid)
        0x0f, 0x05, // syscall
        0xb8, 39, 0, 0, 0x40, // mov eax, 0x40000027 (x32 getpid)
        0x0f, 0x05, // syscall
        0xb8, 60, 0, 0, 0, // mov eax, 60 (x86_64 exit)
        0xbf, 7, 0, 0, 0, // mov edi, 7
        0x0f, 0x05, // syscall
    ])
}

/// An x32 program is a 32-bit program, not a 64-bit one making x32 calls: its exec's
/// return (x32 execve, 520 with bit 30, result 0) is reported once, and flags the process
/// 32-bit, so the 64-bit-program alert stays silent; its own x32 calls are not reported
/// again. Where the kernel runs no x32 programs (ENOEXEC), nothing to check.
fn check_exec_x32(seen: &Seen, probe: &Probe, env: &Env) -> Result<String, String> {
    const X32_EXECVE: i64 = 0x4000_0000 | 520;
    let path = env.dir.join("x32-exit7");
    let mut child = match spawn_program(&path, &x32_program()) {
        Ok(c) => c,
        Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => {
            return Ok(format!("this kernel runs no x32 programs ({e})"))
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let pid = child.id();
    let st = child.wait().map_err(|e| format!("wait: {e}"))?;
    expect("exit status of the x32 program", st.code(), Some(7))?;
    if !probe.ia32_watched() {
        return Err(format!(
            "{} ran as an x32 program, but the probe found no 32-bit syscall function in \
             this kernel's BTF: 32-bit syscalls are not watched",
            path.display()
        ));
    }
    seen.wait_for_kind("the x32 program's exit", pid, EventType::Procexit)?;
    let ev = seen.wait_for_kind(
        "ia32_syscall (the x32 exec's return)",
        pid,
        EventType::Ia32Syscall,
    )?;
    expect(
        "evt.arg.ID",
        &ev.args,
        &Args::Ia32Syscall { id: X32_EXECVE },
    )?;
    expect("evt.res", ev.res, 0)?;
    expect(
        "32-bit flag of the x32 program",
        ev.process.exe_flags.ia32,
        true,
    )?;
    expect(
        "ia32_syscall events of the x32 program (its exec, two getpid)",
        ia32_events(seen, pid),
        1,
    )?;
    Ok(format!(
        "{} flagged 32-bit at its exec's return (x32 execve), reported once",
        path.display()
    ))
}

/// A 64-bit program's `int 0x80` is reported once per exec (`ia32_syscall`, the call's ia32
/// number), and an x32 syscall (`syscall` with bit 30 of the number set, whether or not the
/// kernel runs x32) once too, though no syscall tracepoint sees either: userspace says so
/// with an alert.
fn check_ia32_syscall(seen: &Seen, probe: &Probe, env: &Env) -> Result<String, String> {
    if !probe.ia32_watched() {
        return Ok("this kernel runs no 32-bit syscalls: nothing is unseen".into());
    }
    let ia32 = check_int80(seen, env)?;
    let x32 = check_x32(seen)?;
    // a 64-bit process returning from a signal handler (rt_sigreturn leaves orig_ax at -1,
    // whose bits 30 and 31 are set) makes no 32-bit syscall
    extern "C" fn on_usr1(_: libc::c_int) {}
    let (sig, _) = in_child(|| {
        // SAFETY: installing a handler that does nothing and raising its signal.
        unsafe {
            libc::signal(
                libc::SIGUSR1,
                on_usr1 as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
            libc::raise(libc::SIGUSR1);
        }
        0
    })?;
    seen.wait_for_kind("the signalled child's exit", sig, EventType::Procexit)?;
    expect(
        "ia32_syscall events of a signal handler's return",
        ia32_events(seen, sig),
        0,
    )?;
    Ok(format!("{ia32}; {x32}; a signal handler's return not"))
}

/// How many `ia32_syscall` events `pid` has.
fn ia32_events(seen: &Seen, pid: u32) -> usize {
    seen.lock()
        .iter()
        .filter(|e| e.process.pid == pid && e.event_type() == EventType::Ia32Syscall)
        .count()
}

/// Write `bytes` to `path` as an executable (0755) and start it, its output discarded.
fn spawn_program(path: &Path, bytes: &[u8]) -> std::io::Result<std::process::Child> {
    std::fs::write(path, bytes)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Command::new(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// Two `int 0x80` getpid calls by a 64-bit program: one report, ID 20. A kernel booted with
/// 32-bit syscalls off (`ia32_emulation=0`, 6.7+) faults `int 0x80` (SIGSEGV): nothing ran.
fn check_int80(seen: &Seen, env: &Env) -> Result<String, String> {
    use std::os::unix::process::ExitStatusExt;
    let path = env.dir.join("int80-getpid");
    let mut child =
        spawn_program(&path, &int80_program()).map_err(|e| format!("{}: {e}", path.display()))?;
    let pid = child.id();
    let st = child.wait().map_err(|e| format!("wait: {e}"))?;
    if st.signal() == Some(libc::SIGSEGV) {
        return Ok("int 0x80 refused by this kernel (32-bit syscalls off at boot)".into());
    }
    expect("exit status of the int 0x80 program", st.code(), Some(7))?;
    let ev = seen.wait_for_kind("ia32_syscall", pid, EventType::Ia32Syscall)?;
    expect("evt.arg.ID", &ev.args, &Args::Ia32Syscall { id: 20 })?;
    expect(
        "proc.exepath",
        ev.process.exepath.as_str(),
        &path.to_string_lossy(),
    )?;
    expect(
        "ia32 flag (a 64-bit program)",
        ev.process.exe_flags.ia32,
        false,
    )?;
    expect(
        "ia32_syscall events of the process (two int 0x80)",
        ia32_events(seen, pid),
        1,
    )?;
    Ok(format!(
        "int 0x80 getpid (20) by {} reported once",
        path.display()
    ))
}

/// Two x32 getpid calls (39 with bit 30) by a child of ours (a 64-bit process): one report
/// where the kernel runs x32, none where it refuses them (ENOSYS: nothing ran).
fn check_x32(seen: &Seen) -> Result<String, String> {
    const X32_GETPID: i64 = 0x4000_0000 | 39;
    // exit status: 0 the calls ran (x32 on), 2 refused with ENOSYS, 3 anything else
    let (x32, status) = in_child(|| {
        // SAFETY: raw syscalls with no arguments; errno read right after.
        unsafe {
            let r = libc::syscall(X32_GETPID);
            let errno = *libc::__errno_location();
            libc::syscall(X32_GETPID);
            if r == i64::from(libc::getpid()) {
                0
            } else if r == -1 && errno == libc::ENOSYS {
                2
            } else {
                3
            }
        }
    })?;
    seen.wait_for_kind("the x32 child's exit", x32, EventType::Procexit)?;
    match libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)) {
        Some(0) => {
            let ev = seen.wait_for_kind("ia32_syscall (x32)", x32, EventType::Ia32Syscall)?;
            expect(
                "evt.arg.ID (x32)",
                &ev.args,
                &Args::Ia32Syscall { id: X32_GETPID },
            )?;
            expect(
                "ia32_syscall events of the x32 child (two calls)",
                ia32_events(seen, x32),
                1,
            )?;
            Ok(format!("x32 getpid ({X32_GETPID:#x}) reported once"))
        }
        Some(2) => {
            expect(
                "ia32_syscall events of refused x32 calls (ENOSYS: nothing ran)",
                ia32_events(seen, x32),
                0,
            )?;
            Ok("x32 refused by this kernel (ENOSYS), not reported".into())
        }
        _ => Err(format!(
            "the x32 getpid child: unexpected result (wait status {status:#x})"
        )),
    }
}

/// A 32-bit program's exec is reported with the ia32 flag: after it the kernel's syscall
/// tracepoints skip the process's syscalls, and userspace says so with an alert.
fn check_exec_ia32(seen: &Seen, probe: &Probe, env: &Env) -> Result<String, String> {
    let path = env.dir.join("ia32-exit7");
    let mut child = match spawn_program(&path, &ia32_program()) {
        Ok(c) => c,
        Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => {
            return Ok(format!(
                "this kernel does not run 32-bit programs ({e}): nothing is unseen"
            ))
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let pid = child.id();
    let st = child.wait().map_err(|e| format!("wait: {e}"))?;
    expect("exit status of the 32-bit program", st.code(), Some(7))?;
    let ev = seen.wait("execve", pid, |e| is_exec(e, pid))?;
    let want = path.to_string_lossy();
    expect("proc.exepath", ev.process.exepath.as_str(), &want)?;
    expect("ia32 flag", ev.process.exe_flags.ia32, true)?;
    if !probe.ia32_watched() {
        return Err(format!(
            "{want} ran as a 32-bit program, but the probe found no 32-bit syscall function \
             in this kernel's BTF: 32-bit syscalls are not watched"
        ));
    }
    // its first 32-bit syscall is reported as the process's, flagged too: the exec's own
    // return, which the loader numbered as the ia32 execve (11)
    let sc = seen.wait_for_kind("ia32_syscall", pid, EventType::Ia32Syscall)?;
    expect("evt.arg.ID", &sc.args, &Args::Ia32Syscall { id: 11 })?;
    expect("ia32 flag of its syscall", sc.process.exe_flags.ia32, true)?;
    Ok(format!(
        "{want} flagged ia32, its execve (11) reported as an ia32 syscall"
    ))
}

/// An executable on another filesystem than the root's that is not a tmpfs (a ramfs
/// mounted for the check, as a volume is): flagged `other_fs`, not `tmpfs`.
fn check_exec_other_fs(seen: &Seen, env: &Env) -> Result<String, String> {
    let dir = env.dir.join("ramfs");
    std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let c = cstr(&dir)?;
    let none = std::ptr::null();
    // SAFETY: a mount of a new ramfs on a directory of our own; the strings are ours.
    if unsafe {
        libc::mount(
            c"fl-selftest".as_ptr(),
            c.as_ptr(),
            c"ramfs".as_ptr(),
            0,
            none,
        )
    } != 0
    {
        return Err(format!(
            "mount a ramfs on {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        ));
    }
    let copy = dir.join("fl-volume-exe");
    let run = (|| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(&copy, &env.exe_bytes).map_err(|e| format!("write: {e}"))?;
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod: {e}"))?;
        let pid = spawn_version(&copy)?;
        let ev = seen.wait("execve", pid, |e| is_exec(e, pid))?;
        let want = copy.to_string_lossy();
        expect("proc.exepath", ev.process.exepath.as_str(), &want)?;
        let f = ev.process.exe_flags;
        expect("other-filesystem flag", f.other_fs, Some(true))?;
        expect("tmpfs flag", f.tmpfs, false)?;
        expect("relocated flag", f.relocated, false)?;
        Ok(format!("{want} (a ramfs) flagged other_fs"))
    })();
    // SAFETY: unmounting the ramfs mounted above.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    run
}

fn check_exec_tmpfs(seen: &Seen, env: &Env) -> Result<String, String> {
    let copy = env
        .tmpfs_copy
        .as_ref()
        .ok_or("no tmpfs at /dev/shm to copy an executable to")?;
    let pid = spawn_version(copy)?;
    let ev = seen.wait("execve", pid, |e| is_exec(e, pid))?;
    let want = copy.to_string_lossy();
    expect("proc.exepath", ev.process.exepath.as_str(), &want)?;
    expect("tmpfs flag", ev.process.exe_flags.tmpfs, true)?;
    expect("memfd flag", ev.process.exe_flags.memfd, false)?;
    Ok(format!("{want} flagged tmpfs"))
}

/// A memfd named `name` holding `bytes`, inherited by children (no close-on-exec).
fn memfd_with(name: &std::ffi::CStr, bytes: &[u8]) -> Result<std::fs::File, String> {
    use std::io::Write as _;
    use std::os::fd::FromRawFd as _;
    // SAFETY: valid NUL-terminated name.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    if fd < 0 {
        return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: a descriptor just created and owned by nothing else.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    f.write_all(bytes)
        .map_err(|e| format!("write to memfd: {e}"))?;
    Ok(f)
}

fn check_exec_memfd(seen: &Seen, env: &Env) -> Result<String, String> {
    let f = memfd_with(c"fl-selftest", &env.exe_bytes)?;
    let pid = spawn_version(Path::new(&format!("/proc/self/fd/{}", f.as_raw_fd())))?;
    drop(f);
    let ev = seen.wait("execve", pid, |e| is_exec(e, pid))?;
    expect(
        "proc.exepath",
        ev.process.exepath.as_str(),
        "memfd:fl-selftest",
    )?;
    expect("memfd flag", ev.process.exe_flags.memfd, true)?;
    expect("tmpfs flag", ev.process.exe_flags.tmpfs, false)?;
    Ok(format!("{} flagged memfd", ev.process.exepath))
}

/// An `execveat` of a descriptor is reported as `execveat` (the kernel's name for the file,
/// `bprm->fdpath`), whichever ABI made it: a 64-bit `fexecve` of a memfd (what fileless
/// malware does), the same through ia32's `execveat` from a 64-bit program's `int 0x80`, and
/// through x32's where the kernel runs x32 calls.
fn check_exec_execveat(seen: &Seen, probe: &Probe, env: &Env) -> Result<String, String> {
    // bprm->fdpath is 5.9+ (the probe reads it behind a field check): a kernel whose BTF
    // names no `fdpath` (its one user, linux_binprm's) reports every exec as execve
    let btf = std::fs::read("/sys/kernel/btf/vmlinux").map_err(|e| format!("kernel BTF: {e}"))?;
    if !btf.windows(8).any(|w| w == b"\0fdpath\0") {
        return Ok(
            "this kernel has no bprm->fdpath (before 5.9): every exec reads as execve".into(),
        );
    }
    let f = memfd_with(c"fl-execveat", &exit0_program())?;
    let fd = f.as_raw_fd();
    let argv0 = c"fl-execveat";
    let argv = [argv0.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let pid = child_ok(
        "execveat(memfd, \"\", AT_EMPTY_PATH)",
        in_child(|| {
            // SAFETY: raw execveat with NUL-terminated arrays prepared before the fork.
            unsafe {
                libc::syscall(
                    libc::SYS_execveat,
                    fd,
                    c"".as_ptr(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                    libc::AT_EMPTY_PATH,
                )
            };
            1
        }),
    )?;
    let is_execveat =
        |pid: u32| move |e: &Event| is_exec(e, pid) && e.process.exepath == "memfd:fl-execveat";
    let ev = seen.wait("execveat", pid, is_execveat(pid))?;
    expect("evt.type (64-bit)", ev.event_type(), EventType::Execveat)?;
    expect("memfd flag", ev.process.exe_flags.memfd, true)?;
    let mut said = vec!["64-bit".to_string()];
    for (x32, abi) in [(false, "ia32"), (true, "x32")] {
        let path = env.dir.join(format!("{abi}-execveat"));
        let u = u32::try_from(fd).map_err(|e| e.to_string())?;
        let child = spawn_program(&path, &execveat32_program(u, x32))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let pid = child.id();
        let st = child
            .wait_with_output()
            .map_err(|e| format!("wait: {e}"))?
            .status;
        match st.code() {
            Some(0) => {}
            // x32 calls refused (the default of most kernels): nothing ran
            Some(218) if x32 => {
                said.push("x32 (not run by this kernel)".into());
                continue;
            }
            _ if !x32 && !probe.ia32_watched() => {
                // a kernel booted with 32-bit syscalls off faults int 0x80
                said.push(format!("ia32 (refused by this kernel: {st})"));
                continue;
            }
            _ => return Err(format!("{}: {st}", path.display())),
        }
        let ev = seen.wait("execveat", pid, is_execveat(pid))?;
        expect(
            &format!("evt.type ({abi})"),
            ev.event_type(),
            EventType::Execveat,
        )?;
        said.push(abi.into());
    }
    drop(f);
    Ok(format!(
        "execveat of a memfd reported as such: {}",
        said.join(", ")
    ))
}

fn check_open_write(seen: &Seen, env: &Env) -> Result<String, String> {
    let path = env.dir.join("written");
    let c = cstr(&path)?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    let pid = child_ok(
        "open",
        in_child(|| {
            // SAFETY: raw syscall on a path prepared before fork.
            let fd = unsafe { libc::open(c.as_ptr(), flags, 0o640) };
            i32::from(fd < 0)
        }),
    )?;
    let want = path.to_string_lossy().into_owned();
    let ev = seen.wait("open", pid, |e| {
        e.process.pid == pid
            && matches!(e.event_type(), EventType::Open | EventType::Openat)
            && e.fd.as_ref().is_some_and(|f| f.name == want)
    })?;
    let fd = ev.fd.clone().ok_or("no fd")?;
    if ev.res < 0 {
        return Err(format!("result {}", ev.res));
    }
    expect("fd.num", fd.num, ev.res)?;
    match ev.args {
        Args::Open {
            name,
            flags: f,
            mode,
            ..
        } => {
            expect("name", name.as_str(), want.as_str())?;
            expect(
                "flags",
                f & (libc::O_ACCMODE | libc::O_TRUNC | libc::O_CREAT) as u32,
                flags as u32,
            )?;
            expect("mode", mode, 0o640)?;
        }
        other => return Err(format!("arguments {other:?}")),
    }
    Ok(format!(
        "{want} O_TRUNC|O_CREAT|O_WRONLY 0640 fd {}",
        ev.res
    ))
}

fn check_connect(seen: &Seen) -> Result<String, String> {
    let (listener, port) = listen()?;
    let pid = child_ok(
        "connect",
        in_child(|| {
            // SAFETY: raw socket syscalls on a stack sockaddr.
            unsafe {
                let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                if s < 0 {
                    return 2;
                }
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_port = port.to_be();
                sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
                let r = libc::connect(
                    s,
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                );
                i32::from(r != 0) * 3
            }
        }),
    )?;
    let want = format!("127.0.0.1:{port}");
    let ev = seen.wait("connect", pid, |e| {
        e.process.pid == pid
            && e.event_type() == EventType::Connect
            && matches!(&e.args, Args::Connect { addr, .. } if *addr == want)
    })?;
    expect("result", ev.res, 0)?;
    let fd = ev.fd.ok_or("no fd")?;
    expect("fd.l4proto", fd.l4proto, L4Proto::Tcp)?;
    expect("fd.sip", fd.sip, Some([127, 0, 0, 1].into()))?;
    expect("fd.sport", fd.sport, Some(port))?;
    if fd.cport.is_none_or(|p| p == 0) {
        return Err(format!("fd.cport {:?}", fd.cport));
    }
    drop(listener);
    Ok(format!("{want} from port {}", fd.cport.unwrap_or(0)))
}

/// A free loopback port of `kind` (SOCK_STREAM/SOCK_DGRAM): the kernel's pick for port 0,
/// released for the child to bind explicitly (explicitly: only a non-zero port sets
/// `SOCK_BINDPORT_LOCK`).
fn free_port(udp: bool) -> Result<u16, String> {
    let port = if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
    };
    port.map_err(|e| format!("bind 127.0.0.1:0: {e}"))
}

/// A TCP listener on a free loopback port, and the port.
fn listen() -> Result<(std::net::TcpListener, u16), String> {
    let l =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1: {e}"))?;
    let port = l.local_addr().map_err(|e| e.to_string())?.port();
    Ok((l, port))
}

fn loopback(port: u16) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all zeroes is valid.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = port.to_be();
    sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    sa
}

const SA_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;

/// A server on a bound port and its client (issue 9 §6): accept4, then a UDP reply.
fn check_server(seen: &Seen, udp: bool) -> Result<String, String> {
    let port = free_port(udp)?;
    let sa = loopback(port);
    let pid = child_ok(
        if udp { "server-udp" } else { "server-tcp" },
        in_child(|| {
            // SAFETY: raw socket syscalls on stack sockaddrs and buffers.
            unsafe {
                let sap = (&sa as *const libc::sockaddr_in).cast();
                let typ = if udp {
                    libc::SOCK_DGRAM
                } else {
                    libc::SOCK_STREAM
                };
                let srv = libc::socket(libc::AF_INET, typ, 0);
                let cli = libc::socket(libc::AF_INET, typ, 0);
                if srv < 0 || cli < 0 || libc::bind(srv, sap, SA_LEN) != 0 {
                    return 2;
                }
                if !udp {
                    if libc::listen(srv, 1) != 0 || libc::connect(cli, sap, SA_LEN) != 0 {
                        return 3;
                    }
                    return i32::from(
                        libc::accept4(srv, std::ptr::null_mut(), std::ptr::null_mut(), 0) < 0,
                    ) * 4;
                }
                let mut buf = [0u8; 8];
                if libc::sendto(cli, buf.as_ptr().cast(), 1, 0, sap, SA_LEN) != 1 {
                    return 5;
                }
                let mut from: libc::sockaddr_in = std::mem::zeroed();
                let mut len = SA_LEN;
                let fromp = (&mut from as *mut libc::sockaddr_in).cast();
                if libc::recvfrom(srv, buf.as_mut_ptr().cast(), 8, 0, fromp, &mut len) != 1 {
                    return 6;
                }
                i32::from(libc::sendto(srv, buf.as_ptr().cast(), 1, 0, fromp, len) != 1) * 7
            }
        }),
    )?;
    let kind = if udp {
        EventType::Sendto
    } else {
        EventType::Accept4
    };
    let server = seen.wait("the server's side", pid, |e| {
        e.process.pid == pid
            && e.event_type() == kind
            && e.fd.as_ref().is_some_and(|f| !f.is_client)
    })?;
    let client_kind = if udp {
        EventType::Sendto
    } else {
        EventType::Connect
    };
    let client = seen.wait("the client's side", pid, |e| {
        e.process.pid == pid
            && e.event_type() == client_kind
            && e.fd.as_ref().is_some_and(|f| f.is_client)
    })?;
    let (sf, cf) = (
        server.fd.ok_or("no fd (server)")?,
        client.fd.ok_or("no fd (client)")?,
    );
    if server.res < 0 {
        return Err(format!("server result {}", server.res));
    }
    let proto = if udp { L4Proto::Udp } else { L4Proto::Tcp };
    expect("server fd.l4proto", sf.l4proto, proto)?;
    expect("server fd.sport", sf.sport, Some(port))?;
    expect("server bound flag", sf.bound, Some(true))?;
    expect("server fd.sip", sf.sip, Some([127, 0, 0, 1].into()))?;
    expect("client fd.sport", cf.sport, Some(port))?;
    expect("client bound flag", cf.bound, Some(false))?;
    let cport = cf.cport.filter(|p| *p != 0 && *p != port);
    if cport.is_none() {
        return Err(format!("client fd.cport {:?}", cf.cport));
    }
    expect("server fd.cport (the client's)", sf.cport, cport)?;
    Ok(format!(
        "{} on bound port {port}, client port {} unbound",
        kind.as_str(),
        cport.unwrap_or(0)
    ))
}

fn check_symlink(seen: &Seen, env: &Env) -> Result<String, String> {
    let link = env.dir.join("sym");
    let (ct, cl) = (c"/etc/fl-selftest-target", cstr(&link)?);
    let pid = child_ok(
        "symlink",
        in_child(|| {
            // SAFETY: raw syscall on paths prepared before fork.
            i32::from(unsafe { libc::symlink(ct.as_ptr(), cl.as_ptr()) } != 0)
        }),
    )?;
    let ev = seen.wait("symlink", pid, |e| {
        e.process.pid == pid && matches!(e.event_type(), EventType::Symlink | EventType::Symlinkat)
    })?;
    expect("result", ev.res, 0)?;
    let linkpath = link.to_string_lossy().into_owned();
    match ev.args {
        Args::Symlink {
            target,
            linkpath: l,
            ..
        } => {
            expect("target", target.as_str(), "/etc/fl-selftest-target")?;
            expect("linkpath", l.as_str(), linkpath.as_str())?;
        }
        other => return Err(format!("arguments {other:?}")),
    }
    Ok(format!("{linkpath} -> /etc/fl-selftest-target"))
}

fn check_ptrace_fork_exit(seen: &Seen) -> (Result<String, String>, Result<String, String>) {
    // The tracer forks its victim (waiting in pause()), attaches to it, detaches, kills it.
    let r = in_child(|| {
        // SAFETY: raw syscalls only, on our own child.
        unsafe {
            let victim = libc::fork();
            if victim == 0 {
                loop {
                    libc::pause();
                }
            }
            if victim < 0 {
                return 2;
            }
            let rc = libc::ptrace(libc::PTRACE_ATTACH, victim, 0, 0);
            let mut st = 0;
            if rc == 0 {
                libc::waitpid(victim, &mut st, 0);
                libc::ptrace(libc::PTRACE_DETACH, victim, 0, 0);
            }
            libc::kill(victim, libc::SIGKILL);
            libc::waitpid(victim, &mut st, 0);
            if rc == 0 {
                7
            } else {
                3
            }
        }
    });
    let (tracer, status) = match r {
        Ok(v) => v,
        Err(e) => return (Err(e.clone()), Err(e)),
    };
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 7) {
        let e = format!("the tracer failed (wait status {status:#x})");
        return (Err(e.clone()), Err(e));
    }
    let fork = seen.wait("clone", tracer, |e| {
        e.event_type() == EventType::Clone && e.process.ppid == tracer
    });
    let victim = fork.as_ref().map(|e| e.process.pid).unwrap_or(0);
    let ptrace = (|| {
        let fork = fork.as_ref().map_err(Clone::clone)?;
        let ev = seen.wait("ptrace", tracer, |e| {
            e.process.pid == tracer && e.event_type() == EventType::Ptrace
        })?;
        expect("result", ev.res, 0)?;
        expect(
            "arguments",
            ev.args,
            Args::Ptrace {
                request: libc::PTRACE_ATTACH,
                pid: fork.process.pid,
            },
        )?;
        Ok(format!("PTRACE_ATTACH to {victim}"))
    })();
    let fork_exit = (|| {
        let fork = fork.as_ref().map_err(Clone::clone)?;
        expect(
            "clone arguments",
            &fork.args,
            &Args::Clone {
                child_pid: victim,
                flags: 0,
            },
        )?;
        let exit = seen.wait_for_kind("procexit", tracer, EventType::Procexit)?;
        expect("exit status", exit.args, Args::Exit { status: 7 << 8 })?;
        Ok(format!("fork of {victim}, exit status 7"))
    })();
    (ptrace, fork_exit)
}

/// A cgroup name a Docker container's scope has (of an id no runtime here knows).
const NAMED_LIKE_A_CONTAINER: &str =
    "docker-abababababababababababababababababababababababababababababababab.scope";

fn check_kill(seen: &Seen, probe: &Probe, env: &Env) -> Result<String, String> {
    let policy = probe
        .kill_policy()
        .ok_or("the probe was started without enforce-kill")?;
    let copy = env
        .tmpfs_copy
        .as_ref()
        .ok_or("no tmpfs at /dev/shm to copy an executable to")?;
    let deep = env.deep.as_ref().map_err(Clone::clone)?;
    let root = cgroup2_mount().ok_or("no cgroup v2 hierarchy is mounted")?;
    let cg = root.join(format!("fl-selftest-{}", std::process::id()));
    std::fs::create_dir(&cg).map_err(|e| format!("mkdir {}: {e}", cg.display()))?;
    // an allowed path, run after it was unlinked; and a file named as the kernel's
    // `/proc/<pid>/exe` shows that unlinked file (not allowed)
    let gone = env.dir.join("kill-gone");
    let spoof = env.dir.join("kill-gone (deleted)");
    // an allowed path, and the same path with the top bit of bytes 8k+7, 8k+11 and 8k+15
    // of its file name flipped: a collision of the multiply-xor hash used before, for
    // every key
    let near = env.dir.join(format!("kill-near-{}", "a".repeat(24)));
    let near_b = near.as_os_str().as_encoded_bytes().to_vec();
    let mut far_b = near_b.clone();
    let name_at = near_b.len() - 34;
    let k = (name_at + 1).div_ceil(8);
    for i in [8 * k + 7, 8 * k + 11, 8 * k + 15] {
        far_b[i] ^= 0x80;
    }
    let far = PathBuf::from(std::ffi::OsString::from_vec(far_b.clone()));
    let result = (|| {
        let id = std::fs::metadata(&cg).map_err(|e| e.to_string())?.ino();
        const PROFILE: u32 = u32::MAX;
        let allowed = env.exe.to_string_lossy().into_owned();
        let gone_s = gone.to_string_lossy().into_owned();
        let near_s = near.to_string_lossy().into_owned();
        // the leaf side of the deep path, allowed as if it were a whole path: the
        // kernel must still kill an exec whose path it could not report whole
        policy
            .set_profile(
                PROFILE,
                [
                    allowed.as_str(),
                    deep.leaf_exe.as_str(),
                    gone_s.as_str(),
                    near_s.as_str(),
                ]
                .map(crate::kill::AllowedExec::host_file),
            )
            .map_err(|e| e.to_string())?;
        policy.enforce(id, PROFILE).map_err(|e| e.to_string())?;
        let procs = cstr(&cg.join("cgroup.procs"))?;
        // `exe` run in the cgroup whose `cgroup.procs` is `procs` (the container's own
        // processes are in a pid namespace of their own)
        let run_in =
            |procs: &CString, new_pid_ns: bool, exe: &Path| -> Result<(u32, i32), String> {
                let path = cstr(exe)?;
                let arg = c"--version";
                in_child_ns(new_pid_ns, || {
                    // SAFETY: raw syscalls on values prepared before fork; "0" moves the writer.
                    unsafe {
                        if !join_cgroup(procs) {
                            return 2;
                        }
                        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
                        libc::dup2(null, 1);
                        let argv = [path.as_ptr(), arg.as_ptr(), std::ptr::null()];
                        libc::execv(path.as_ptr(), argv.as_ptr());
                    }
                    3
                })
            };
        let run_in_cgroup = |exe: &Path| run_in(&procs, true, exe);
        // a cgroup below the enforced one, named like another container (whose image no
        // runtime knows): judged by the enforced one's profile
        let below = cg.join(NAMED_LIKE_A_CONTAINER);
        std::fs::create_dir(&below).map_err(|e| format!("mkdir {}: {e}", below.display()))?;
        let below_procs = cstr(&below.join("cgroup.procs"))?;
        let run_below = |exe: &Path| run_in(&below_procs, true, exe);
        // a child of a process named `runc`, in the host's pid namespace, the parent
        // outside the cgroup (the runtime's `runc init`) or in it (a hostPID container's
        // process naming its parent so), the parent chrooted into `chroot_to` (then `exe`
        // is a path there): (the child's pid, its wait status)
        let run_under_runc = |parent_in_cgroup: bool,
                              own_mnt_ns: bool,
                              chroot_to: Option<&Path>,
                              exe: &Path|
         -> Result<(u32, i32), String> {
            let path = cstr(exe)?;
            let new_root = chroot_to.map(cstr).transpose()?;
            let arg = c"--version";
            let mut fds = [0 as libc::c_int; 2];
            // SAFETY: a pipe into our own array.
            if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
                return Err(format!("pipe: {}", std::io::Error::last_os_error()));
            }
            let r = in_child(|| {
                // SAFETY: raw syscalls on values prepared before fork; the grandchild
                // execs or _exits.
                unsafe {
                    if parent_in_cgroup && !join_cgroup(&procs) {
                        return 2;
                    }
                    libc::prctl(libc::PR_SET_NAME, c"runc".as_ptr());
                    // the cgroup's procs file, opened before a chroot hides it
                    let procs_fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                    if let Some(r) = &new_root {
                        if libc::chroot(r.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                            return 6;
                        }
                    }
                    let gc = libc::fork();
                    if gc < 0 {
                        return 4;
                    }
                    if gc == 0 {
                        if !parent_in_cgroup
                            && (procs_fd < 0 || libc::write(procs_fd, c"0".as_ptr().cast(), 1) != 1)
                        {
                            libc::_exit(2);
                        }
                        if own_mnt_ns && libc::unshare(libc::CLONE_NEWNS) != 0 {
                            libc::_exit(5);
                        }
                        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
                        libc::dup2(null, 1);
                        let argv = [path.as_ptr(), arg.as_ptr(), std::ptr::null()];
                        libc::execv(path.as_ptr(), argv.as_ptr());
                        libc::_exit(3);
                    }
                    libc::write(fds[1], (&gc as *const libc::pid_t).cast(), 4);
                    let mut st = 0;
                    libc::waitpid(gc, &mut st, 0);
                    if libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0 {
                        0
                    } else if libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL {
                        9
                    } else {
                        100
                    }
                }
            });
            let mut gc: libc::pid_t = 0;
            // SAFETY: reading 4 bytes into our own integer; closing our own fds. The
            // write end is closed first: a child that failed before writing (it has
            // exited: in_child waited for it) then reads as an empty pipe, not a hang.
            let n = unsafe {
                libc::close(fds[1]);
                let n = libc::read(fds[0], (&mut gc as *mut libc::pid_t).cast(), 4);
                libc::close(fds[0]);
                n
            };
            let (_, st) = r?;
            if n != 4 || gc <= 0 {
                return Err(format!(
                    "the runc-named parent forked no child (wait status {st:#x})"
                ));
            }
            // the grandchild's wait status, rebuilt from what its parent said
            let gst = match libc::WEXITSTATUS(st) {
                0 => 0,
                9 => libc::SIGKILL,
                c => c << 8,
            };
            Ok((gc as u32, gst))
        };
        let killed = |what: &str, (pid, st): (u32, i32), exepath: &str| -> Result<(), String> {
            if !(libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL) {
                return Err(format!("{what} was not killed: wait status {st:#x}"));
            }
            let ev = seen.wait("execve", pid, |e| is_exec(e, pid))?;
            expect("killed flag", ev.process.exe_flags.killed, true)?;
            expect("runtime flag", ev.process.exe_flags.runtime, false)?;
            expect("proc.exepath", ev.process.exepath.as_str(), exepath)
        };
        let ran_as = |what: &str,
                      (pid, st): (u32, i32),
                      exepath: &str,
                      runtime: bool|
         -> Result<(), String> {
            if !(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0) {
                return Err(format!("{what} did not run: wait status {st:#x}"));
            }
            let ev = seen.wait("execve", pid, |e| is_exec(e, pid))?;
            expect("killed flag", ev.process.exe_flags.killed, false)?;
            expect("runtime flag", ev.process.exe_flags.runtime, runtime)?;
            expect("proc.exepath", ev.process.exepath.as_str(), exepath)
        };
        let ran = |what: &str, r: (u32, i32), exepath: &str| ran_as(what, r, exepath, false);
        let copy_s = copy.to_string_lossy();
        killed(
            &format!("{copy_s} (not in the profile)"),
            run_in_cgroup(copy)?,
            &copy_s,
        )?;
        ran(
            &format!("{allowed} (in the profile)"),
            run_in_cgroup(&env.exe)?,
            &allowed,
        )?;
        killed(
            &format!("{copy_s} in a cgroup below, named like another container"),
            run_below(copy)?,
            &copy_s,
        )?;
        ran(
            &format!("{allowed} in a cgroup below, named like another container"),
            run_below(&env.exe)?,
            &allowed,
        )?;
        let truncated = format!("{}{}", path::TRUNCATED, deep.leaf_exe);
        killed(
            "the long-path copy (its leaf side allowed as a path)",
            run_deep(deep, Some(&procs))?,
            &truncated,
        )?;
        // unlinked before the exec: the kernel's path is the allowed one, detached
        for p in [&gone, &spoof, &far, &near] {
            write_exe(p, &env.exe_bytes)?;
        }
        ran(
            &format!("{gone_s} (in the profile, unlinked)"),
            run_unlinked(&gone, run_in_cgroup)?,
            &gone_s,
        )?;
        // the bytes `/proc/<pid>/exe` shows for it, as a file of that name
        let spoof_s = spoof.to_string_lossy();
        killed(
            &format!("{spoof_s} (a file named as the unlinked allowed one)"),
            run_in_cgroup(&spoof)?,
            &spoof_s,
        )?;
        // a path whose bytes differ from an allowed one's in the way the old hash missed
        // (the allowed one itself runs)
        ran(
            &format!("{near_s} (in the profile)"),
            run_in_cgroup(&near)?,
            &near_s,
        )?;
        let far_s = path::render_raw(&far_b);
        killed(
            &format!("{far_s} (three bits off an allowed path)"),
            run_in_cgroup(&far)?,
            &far_s,
        )?;
        // the same copy in the cgroup but the host's pid namespace: a hostPID container's
        // process is judged (its parent is in the cgroup, or is not runc), even one whose
        // parent calls itself runc; the runtime's `runc init` (its parent runc, outside
        // the cgroup) is spared, left to userspace
        killed(
            &format!("{copy_s} in the host's pid namespace"),
            run_in(&procs, false, copy)?,
            &copy_s,
        )?;
        killed(
            &format!("{copy_s} in the host's pid namespace, its parent in the cgroup named runc"),
            run_under_runc(true, false, None, copy)?,
            &copy_s,
        )?;
        // an exec session's command in a hostPID container: its parent is `runc exec`
        // (CLONE_PARENT), outside the cgroup, but it is in the container's mount namespace
        killed(
            &format!(
                "{copy_s} started by a runc outside the cgroup, in a mount namespace of its own"
            ),
            run_under_runc(false, true, None, copy)?,
            &copy_s,
        )?;
        // a parent named runc, outside the cgroup, but not running from the host's root (a
        // hostPID container's process naming itself runc and moving its child to a cgroup
        // of its own has the container's root; here a chroot into the copy's directory,
        // where a static program that exits 0 runs, as no loader is there)
        let copy_dir = copy
            .parent()
            .ok_or_else(|| format!("{copy_s}: no directory"))?;
        let exit0_name = format!("fl-selftest-{}-exit0", std::process::id());
        let exit0 = copy_dir.join(&exit0_name);
        {
            use std::os::unix::fs::PermissionsExt as _;
            // mov eax, 60 (exit); xor edi, edi; syscall
            std::fs::write(
                &exit0,
                elf64(&[0xb8, 60, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05], &[]),
            )
            .and_then(|()| std::fs::set_permissions(&exit0, std::fs::Permissions::from_mode(0o755)))
            .map_err(|e| format!("write {}: {e}", exit0.display()))?;
        }
        let inner = Path::new("/").join(&exit0_name);
        let chrooted = run_under_runc(false, false, Some(copy_dir), &inner);
        let _ = std::fs::remove_file(&exit0);
        killed(
            &format!(
                "{} started by a runc outside the cgroup, chrooted",
                exit0.display()
            ),
            chrooted?,
            &inner.to_string_lossy(),
        )?;
        ran_as(
            &format!("{copy_s} started by a runc outside the cgroup (the runtime's child)"),
            run_under_runc(false, false, None, copy)?,
            &copy_s,
            true,
        )?;
        policy.release(id);
        policy.drop_profile(PROFILE);
        Ok(format!(
            "{copy_s}, <truncated>/…/nginx, '{spoof_s}' and {far_s} killed in cgroup {id}, {copy_s} in a cgroup below it named like another container, and {copy_s} from the host's pid namespace unless a runc outside the cgroup started it; {allowed} (there and below) and {gone_s} (unlinked) ran"
        ))
    })();
    // the children are reaped: the cgroups are empty
    let _ = std::fs::remove_dir(cg.join(NAMED_LIKE_A_CONTAINER));
    let _ = std::fs::remove_dir(&cg);
    let _ = std::fs::remove_file(&gone);
    let _ = std::fs::remove_file(&spoof);
    let _ = std::fs::remove_file(&far);
    let _ = std::fs::remove_file(&near);
    result
}

/// The kernel's write-open filter (`engine.kernel_filter`): see the table in the module docs.
fn check_kernel_filter(seen: &Seen, probe: &Probe, env: &Env) -> Result<String, String> {
    use crate::filter::WriteAllow;
    let root = cgroup2_mount().ok_or("no cgroup v2 hierarchy is mounted")?;
    let cg = root.join(format!("fl-selftest-filter-{}", std::process::id()));
    std::fs::create_dir(&cg).map_err(|e| format!("mkdir {}: {e}", cg.display()))?;
    let dir = env.dir.join("kf");
    let result = (|| {
        for d in ["allowed/sub", "watched"] {
            std::fs::create_dir_all(dir.join(d)).map_err(|e| format!("mkdir {d}: {e}"))?;
        }
        let id = std::fs::metadata(&cg).map_err(|e| e.to_string())?.ino();
        const PROFILE: u32 = u32::MAX - 1;
        let s = |p: &str| dir.join(p).to_string_lossy().into_owned();
        let bytes = |p: &str| s(p).into_bytes();
        probe
            .set_write_filter(&crate::filter::OpenFilterPlan {
                prefixes: Some(vec![s("watched/")]),
                names: vec!["release_agent".to_string()],
                suffixes: vec![".lock".to_string()],
                noncanonical: true,
            })
            .map_err(|e| e.to_string())?;
        let pf = probe.profile_filter();
        pf.set_profile(
            PROFILE,
            &WriteAllow {
                files: vec![bytes("file")],
                dirs: vec![bytes("allowed"), bytes("watched")],
            },
        )
        .map_err(|e| e.to_string())?;
        pf.bind(id, PROFILE).map_err(|e| e.to_string())?;
        let dropped = ["file", "allowed/sub/x"];
        let reported = [
            "watched/y",
            "allowed/release_agent",
            "allowed/sub/db.lock",
            "other",
        ];
        let paths: Vec<CString> = dropped
            .iter()
            .chain(reported.iter())
            .map(|p| cstr(&dir.join(p)))
            .collect::<Result<_, _>>()?;
        let procs = cstr(&cg.join("cgroup.procs"))?;
        let cdir = cstr(&dir)?;
        let before = filtered_opens(probe);
        let pid = child_ok(
            "kernel-filter",
            in_child(|| {
                // SAFETY: raw syscalls on values prepared before fork; "0" moves the writer.
                unsafe {
                    if !join_cgroup(&procs) {
                        return 2;
                    }
                    for p in &paths {
                        let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CREAT, 0o600);
                        if fd < 0 {
                            return 3;
                        }
                        libc::close(fd);
                    }
                    // the allowed file again, by a relative path (not canonical)
                    if libc::chdir(cdir.as_ptr()) != 0 {
                        return 4;
                    }
                    let fd = libc::open(c"file".as_ptr(), libc::O_WRONLY);
                    if fd < 0 {
                        return 5;
                    }
                    libc::close(fd);
                }
                0
            }),
        );
        pf.release(id);
        let pid = pid?;
        let is_open_of = |e: &Event, want: &str| {
            e.process.pid == pid
                && matches!(e.event_type(), EventType::Open | EventType::Openat)
                && e.fd.as_ref().is_some_and(|f| f.name == want)
        };
        for p in reported {
            seen.wait(&format!("open of {p}"), pid, |e| is_open_of(e, &s(p)))?;
        }
        let relative = seen.wait("open of file (relative)", pid, |e| {
            is_open_of(e, &s("file"))
        })?;
        match &relative.args {
            Args::Open { name, .. } => expect("passed path", name.as_str(), "file")?,
            other => return Err(format!("arguments {other:?}")),
        }
        let after = filtered_opens(probe);
        expect("profile_filtered opens", after - before, 2)?;
        // events of one process arrive in order: the dropped ones would be here by now
        let got: Vec<String> = seen
            .lock()
            .iter()
            .filter(|e| dropped.iter().any(|p| is_open_of(e, &s(p))))
            .filter(|e| !matches!(&e.args, Args::Open { name, .. } if name == "file"))
            .map(|e| format!("{:?}", e.fd.as_ref().map(|f| f.name.clone())))
            .collect();
        expect("events of the dropped opens", got, Vec::<String>::new())?;
        // outside the cgroup the same allowed file is reported
        let c = cstr(&dir.join("file"))?;
        let host = child_ok(
            "kernel-filter (outside)",
            in_child(|| {
                // SAFETY: raw syscall on a path prepared before fork.
                let fd = unsafe { libc::open(c.as_ptr(), libc::O_WRONLY) };
                i32::from(fd < 0)
            }),
        )?;
        seen.wait("open outside the cgroup", host, |e| {
            e.process.pid == host && e.fd.as_ref().is_some_and(|f| f.name == s("file"))
        })?;
        pf.drop_profile(PROFILE);
        probe
            .set_write_filter(&crate::filter::OpenFilterPlan::off())
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "2 allowed write-opens dropped in cgroup {id}; rule prefix, rule file name and \
             ending, outside the profile, relative path and another cgroup reported"
        ))
    })();
    let _ = std::fs::remove_dir(&cg);
    result
}

/// An io_uring rename (`IORING_OP_RENAMEAT`, 5.11+ and 5.10.162+: an io-wq worker makes it, no syscall
/// hook sees it) of a directory into a watched one: the kernel turns its verdict cache of
/// opens off when the rename is submitted, so a file whose read-open was dropped (and the
/// verdict kept) under the old path is reported under the new one.
/// Each cgroup's home (probe.bpf.c `HOMES`): in a cgroup of its own, an exec from the host's
/// root takes none; a child that pivots into a tmpfs of its own, as a container runtime
/// does, takes it with its exec (the host's tree bound below it at `/h`, so the executable
/// and its libraries are there); an exec from the host's root is then flagged `host_root`,
/// one from another such root `other_root`; removing the cgroup forgets the home.
fn check_cgroup_home(seen: &Seen, probe: &Probe, env: &Env) -> Result<String, String> {
    let root = cgroup2_mount().ok_or("no cgroup v2 hierarchy is mounted")?;
    let cg = root.join(format!("fl-selftest-home-{}", std::process::id()));
    std::fs::create_dir(&cg).map_err(|e| format!("mkdir {}: {e}", cg.display()))?;
    let newroot = env.dir.join("home-root");
    std::fs::create_dir_all(&newroot).map_err(|e| format!("mkdir: {e}"))?;
    let result = (|| -> Result<u64, String> {
        let id = std::fs::metadata(&cg).map_err(|e| e.to_string())?.ino();
        let procs = cstr(&cg.join("cgroup.procs"))?;
        let exe = cstr(&env.exe)?;
        let inner = cstr(&Path::new("/h").join(env.exe.strip_prefix("/").unwrap_or(&env.exe)))?;
        let nr = cstr(&newroot)?;
        let homes = || probe.cgroup_homes().map_err(|e| e.to_string());
        let run = |pivot: bool| -> Result<u32, String> {
            child_ok(
                if pivot {
                    "exec from a root of its own"
                } else {
                    "exec from the host's root"
                },
                in_child(|| {
                    // SAFETY: raw syscalls on values prepared before fork; the child execs
                    // or returns.
                    unsafe {
                        if !join_cgroup(&procs) {
                            return 2;
                        }
                        let none = std::ptr::null();
                        let path = if pivot {
                            let dot = c".".as_ptr();
                            if libc::unshare(libc::CLONE_NEWNS) != 0
                                || libc::mount(
                                    none,
                                    c"/".as_ptr(),
                                    none,
                                    libc::MS_REC | libc::MS_PRIVATE,
                                    none.cast(),
                                ) != 0
                                || libc::mount(
                                    c"fl-home".as_ptr(),
                                    nr.as_ptr(),
                                    c"tmpfs".as_ptr(),
                                    0,
                                    none.cast(),
                                ) != 0
                                || libc::chdir(nr.as_ptr()) != 0
                                || libc::mkdir(c"h".as_ptr(), 0o755) != 0
                                || libc::mount(
                                    c"/".as_ptr(),
                                    c"h".as_ptr(),
                                    none,
                                    libc::MS_BIND | libc::MS_REC,
                                    none.cast(),
                                ) != 0
                            {
                                return 4;
                            }
                            // the loader and the libraries where the executable looks
                            for (link, to) in [
                                (c"lib64", c"h/lib64"),
                                (c"lib", c"h/lib"),
                                (c"usr", c"h/usr"),
                                (c"etc", c"h/etc"),
                            ] {
                                libc::symlink(to.as_ptr(), link.as_ptr());
                            }
                            let pivoted = libc::syscall(libc::SYS_pivot_root, dot, dot) == 0;
                            // a root that cannot be pivoted (the initramfs' rootfs, as in
                            // the kernel matrix's guests): moved onto "/" and entered, as
                            // `runc --no-pivot` and switch_root do
                            if (pivoted && libc::umount2(dot, libc::MNT_DETACH) != 0)
                                || (!pivoted
                                    && (libc::mount(
                                        dot,
                                        c"/".as_ptr(),
                                        none,
                                        libc::MS_MOVE,
                                        none.cast(),
                                    ) != 0
                                        || libc::chroot(dot) != 0))
                                || libc::chdir(c"/".as_ptr()) != 0
                            {
                                return 5;
                            }
                            inner.as_ptr()
                        } else {
                            exe.as_ptr()
                        };
                        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
                        libc::dup2(null, 1);
                        let arg = c"--version";
                        let argv = [path, arg.as_ptr(), std::ptr::null()];
                        libc::execv(path, argv.as_ptr());
                    }
                    3
                }),
            )
        };
        let flags = |pid: u32| -> Result<falco_learn_event::ExeFlags, String> {
            Ok(seen
                .wait("execve", pid, |e| is_exec(e, pid))?
                .process
                .exe_flags)
        };
        let host = run(false)?;
        let f = flags(host)?;
        expect(
            "first exec from the host's root: other root",
            f.other_root,
            false,
        )?;
        expect(
            "first exec from the host's root: host root",
            f.host_root,
            false,
        )?;
        expect(
            "a home taken from the host's root",
            homes()?.contains(&id),
            false,
        )?;
        let own = run(true)?;
        let f = flags(own)?;
        expect("exec from its own root: other root", f.other_root, false)?;
        expect("exec from its own root: host root", f.host_root, false)?;
        expect("exec from its own root: relocated", f.relocated, false)?;
        expect(
            "a home taken from its own root",
            homes()?.contains(&id),
            true,
        )?;
        let again = run(false)?;
        let f = flags(again)?;
        expect(
            "then an exec from the host's root: host root",
            f.host_root,
            true,
        )?;
        expect(
            "then an exec from the host's root: other root",
            f.other_root,
            false,
        )?;
        expect(
            "then an exec from the host's root: relocated",
            f.relocated,
            false,
        )?;
        // a second root of its own (another tmpfs) is neither the home nor the host's
        let f = flags(run(true)?)?;
        expect(
            "then an exec from another root: other root",
            f.other_root,
            true,
        )?;
        expect(
            "then an exec from another root: host root",
            f.host_root,
            false,
        )?;
        Ok(id)
    })();
    let removed = std::fs::remove_dir(&cg);
    let id = result?;
    removed.map_err(|e| format!("rmdir {}: {e}", cg.display()))?;
    expect(
        "the home kept after the cgroup's removal",
        probe
            .cgroup_homes()
            .map_err(|e| e.to_string())?
            .contains(&id),
        false,
    )?;
    Ok(
        "no home from the host's root; one from a pivoted root, which then flags an exec \
        from the host's root as host_root and one from another root as other_root; \
        forgotten at rmdir"
            .into(),
    )
}

fn check_io_uring_rename(seen: &Seen, probe: &Probe, env: &Env) -> Result<String, String> {
    let from = env.dir.join("uring");
    let to = env.dir.join("uring-watched");
    std::fs::create_dir_all(&from).map_err(|e| format!("mkdir {}: {e}", from.display()))?;
    std::fs::write(from.join("f"), b"x").map_err(|e| format!("write: {e}"))?;
    // only the rename's target is watched (the default prefixes may hold the scratch
    // directory: /dev/shm as TMPDIR)
    let plan = crate::filter::OpenFilterPlan {
        prefixes: Some(vec![format!("{}/", to.display())]),
        ..Default::default()
    };
    probe.set_read_filter(&plan).map_err(|e| e.to_string())?;
    let result = (|| {
        let open3 = |path: &Path, n: usize| -> Result<u32, String> {
            let c = cstr(path)?;
            child_ok(
                "read-open",
                in_child(|| {
                    for _ in 0..n {
                        // SAFETY: raw syscalls on a path prepared before fork.
                        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
                        if fd < 0 {
                            return 1;
                        }
                        // SAFETY: the fd just opened.
                        unsafe { libc::close(fd) };
                    }
                    0
                }),
            )
        };
        // unwatched: dropped, the later two from the verdict cache
        let quiet = open3(&from.join("f"), 3)?;
        let mut ring = match io_uring::IoUring::new(4) {
            Ok(r) => r,
            Err(e) => {
                return Ok(format!(
                    "io_uring is off on this kernel ({e}): nothing to watch"
                ))
            }
        };
        let (cf, ct) = (cstr(&from)?, cstr(&to)?);
        let at = io_uring::types::Fd(libc::AT_FDCWD);
        let sqe = io_uring::opcode::RenameAt::new(at, cf.as_ptr(), at, ct.as_ptr()).build();
        // SAFETY: both paths outlive the submission, which is waited for below.
        unsafe { ring.submission().push(&sqe) }.map_err(|e| format!("queue: {e}"))?;
        ring.submit_and_wait(1)
            .map_err(|e| format!("io_uring_enter: {e}"))?;
        match ring.completion().next().map(|c| c.result()) {
            Some(0) => {}
            Some(r) if r == -libc::EINVAL => {
                return Ok(
                    "this kernel's io_uring has no rename (5.11+, 5.10.162+): nothing to watch"
                        .into(),
                );
            }
            other => return Err(format!("the io_uring rename returned {other:?}")),
        }
        let loud = open3(&to.join("f"), 1)?;
        let want = to.join("f").to_string_lossy().into_owned();
        seen.wait("read-open after the io_uring rename", loud, |e| {
            e.process.pid == loud
                && matches!(e.event_type(), EventType::Open | EventType::Openat)
                && e.fd.as_ref().is_some_and(|f| f.name == want)
        })?;
        let quiet_events = seen
            .lock()
            .iter()
            .filter(|e| e.process.pid == quiet && e.fd.is_some())
            .count();
        expect("events of the dropped opens", quiet_events, 0)?;
        // off by ours, or by another process's io_uring rename (every probe on the node sees
        // every submission: a second selftest running, say)
        match probe.open_verdict_cache_off() {
            Some(crate::filter::VerdictCacheOff::IoUringRename { tgid }) => Ok(format!(
                "the verdict cache turned off at the submission (by {}); the moved file's open \
                 reported",
                if tgid == std::process::id() {
                    "this rename".to_string()
                } else {
                    format!("process {tgid}'s io_uring rename")
                }
            )),
            // off from the start (another process held an io_uring instance): the open was
            // reported, the hook not proven
            Some(off @ crate::filter::VerdictCacheOff::IoUringBeforeStart { .. }) => Ok(format!(
                "the verdict cache was off from the start ({off}); the moved file's open reported"
            )),
            other => Err(format!(
                "verdict cache: {other:?}, want off by an io_uring rename"
            )),
        }
    })();
    probe
        .set_read_filter(&ProbeConfig::default().read)
        .map_err(|e| e.to_string())?;
    result
}

/// Processes no profile applies to (`RULES_ONLY`, `engine.kernel_filter`): a process marked
/// with its own pid, exec id and start has its write-open and connect that no rule can match
/// dropped, while the write-open and connect a rule needs are reported; a mark naming another
/// exec of the process (it exec'd since), or another start (a reused pid), drops nothing; a
/// process's exit removes its mark.
fn check_kernel_filter_unprofiled(seen: &Seen, probe: &Probe, env: &Env) -> Result<String, String> {
    use crate::filter::{NetFilterPlan, NetSidePlan, OpenFilterPlan, IPPROTO_TCP};
    let dir = env.dir.join("unprofiled");
    std::fs::create_dir_all(dir.join("watched")).map_err(|e| format!("mkdir: {e}"))?;
    let s = |p: &str| dir.join(p).to_string_lossy().into_owned();
    // listeners keep their backlog: the connects complete without an accept
    let (_free_l, free) = listen()?;
    let (_needed_l, needed) = listen()?;
    probe
        .set_write_filter(&OpenFilterPlan {
            prefixes: Some(vec![s("watched/")]),
            names: Vec::new(),
            suffixes: Vec::new(),
            noncanonical: true,
        })
        .map_err(|e| e.to_string())?;
    probe
        .set_net_filter(&NetFilterPlan {
            outbound: NetSidePlan {
                protocols: vec![IPPROTO_TCP],
                needed: vec![(IPPROTO_TCP, needed)],
            },
            inbound: NetSidePlan::default(),
        })
        .map_err(|e| e.to_string())?;
    let result = (|| {
        let pf = probe.profile_filter();
        let (free_file, watched) = (cstr(&dir.join("free"))?, cstr(&dir.join("watched/x"))?);
        let hello = cstr(&dir.join("watched/hello"))?;
        let (sa_free, sa_needed) = (loopback(free), loopback(needed));
        // (what the mark is off by, the opens and connects expected dropped)
        let mut said = Vec::new();
        for (case, exec_off, tick_off) in [("own", 0u32, 0u64), ("exec", 1, 0), ("start", 0, 1)] {
            let mut go = [0i32; 2];
            // SAFETY: pipe writes two fds into the array we own.
            if unsafe { libc::pipe(go.as_mut_ptr()) } != 0 {
                return Err(format!("pipe: {}", std::io::Error::last_os_error()));
            }
            // SAFETY: the child makes raw syscalls on values prepared before the fork, then
            // _exit; the parent closes its read end and waits for the child.
            let pid = unsafe { libc::fork() };
            if pid < 0 {
                return Err(format!("fork: {}", std::io::Error::last_os_error()));
            }
            if pid == 0 {
                // SAFETY: as above.
                unsafe {
                    libc::close(go[1]);
                    // an event of this process (forks of ours are not reported): its exec
                    // id and start
                    let fd = libc::open(hello.as_ptr(), libc::O_WRONLY | libc::O_CREAT, 0o600);
                    if fd < 0 {
                        libc::_exit(5);
                    }
                    libc::close(fd);
                    let mut b = [0u8; 1];
                    if libc::read(go[0], b.as_mut_ptr().cast(), 1) != 1 {
                        libc::_exit(2);
                    }
                    for p in [&free_file, &watched] {
                        let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CREAT, 0o600);
                        if fd < 0 {
                            libc::_exit(3);
                        }
                        libc::close(fd);
                    }
                    for sa in [&sa_free, &sa_needed] {
                        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                        if fd < 0
                            || libc::connect(fd, (sa as *const libc::sockaddr_in).cast(), SA_LEN)
                                != 0
                        {
                            libc::_exit(4);
                        }
                        libc::close(fd);
                    }
                    libc::_exit(0);
                }
            }
            let pid = pid as u32;
            // SAFETY: closing our copy of the read end.
            unsafe { libc::close(go[0]) };
            let forked = seen.wait("the child's first open", pid, |e| {
                e.process.pid == pid && e.fd.as_ref().is_some_and(|f| f.name == s("watched/hello"))
            });
            let marked = forked.and_then(|f| {
                let tick = 1_000_000_000 / crate::procfs::clk_tck().max(1);
                pf.mark_unprofiled(
                    pid,
                    f.exec_id.wrapping_add(exec_off),
                    f.process.start_ts + tick_off * tick,
                )
                .map_err(|e| e.to_string())
            });
            // SAFETY: one byte to our own pipe, then closing it; waiting for our own child.
            let status = unsafe {
                libc::write(go[1], [1u8].as_ptr().cast(), 1);
                libc::close(go[1]);
                let mut st = 0;
                libc::waitpid(pid as i32, &mut st, 0);
                st
            };
            marked?;
            if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
                return Err(format!("{case}: child failed (wait status {status:#x})"));
            }
            let open_of = |e: &Event, p: &str| {
                e.process.pid == pid
                    && matches!(e.event_type(), EventType::Open | EventType::Openat)
                    && e.fd.as_ref().is_some_and(|f| f.name == s(p))
            };
            let connect_to = |e: &Event, port: u16| {
                e.process.pid == pid
                    && e.event_type() == EventType::Connect
                    && matches!(&e.args, Args::Connect { addr, .. }
                        if *addr == format!("127.0.0.1:{port}"))
            };
            // the reported ones, in the order made; the exit after them
            seen.wait(&format!("{case}: open of watched/x"), pid, |e| {
                open_of(e, "watched/x")
            })?;
            seen.wait(&format!("{case}: connect to the rule's port"), pid, |e| {
                connect_to(e, needed)
            })?;
            seen.wait_for_kind(&format!("{case}: exit"), pid, EventType::Procexit)?;
            let dropped_seen = seen
                .lock()
                .iter()
                .filter(|e| open_of(e, "free") || connect_to(e, free))
                .count();
            expect(
                &format!("{case}: events of the open and connect no rule needs"),
                dropped_seen,
                if case == "own" { 0 } else { 2 },
            )?;
            said.push(case);
        }
        // the exits removed the marks
        expect(
            "marks left",
            pf.unprofiled_marks().map_err(|e| e.to_string())?,
            0,
        )?;
        Ok(format!(
            "a marked process's open and connect no rule needs dropped, the rule's reported; \
             marks of another exec or start ({}) drop nothing",
            said[1..].join(", ")
        ))
    })();
    let _ = probe.set_write_filter(&OpenFilterPlan::off());
    let _ = probe.set_net_filter(&NetFilterPlan::off());
    result
}

/// The kernel's network filter (`engine.kernel_filter`): see the table in the module docs.
fn check_kernel_filter_net(seen: &Seen, probe: &Probe) -> Result<String, String> {
    use crate::filter::{NetFilterPlan, NetSidePlan, OutboundAllow, IPPROTO_TCP, IPPROTO_UDP};
    let root = cgroup2_mount().ok_or("no cgroup v2 hierarchy is mounted")?;
    let cg = root.join(format!("fl-selftest-net-{}", std::process::id()));
    std::fs::create_dir(&cg).map_err(|e| format!("mkdir {}: {e}", cg.display()))?;
    let result = (|| {
        let id = std::fs::metadata(&cg).map_err(|e| e.to_string())?.ino();
        const PROFILE: u32 = u32::MAX - 2;
        // listeners keep their backlog: the connects complete without an accept
        let (_allowed_l, allowed) = listen()?;
        let (_needed_l, needed) = listen()?;
        let (_other_l, other) = listen()?;
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let udp_port = udp.local_addr().map_err(|e| e.to_string())?.port();
        // ports the child serves: in the profile, in the profile and needed by a rule, neither
        let (reply_from, served, served_needed, unserved) = (
            free_port(true)?,
            free_port(false)?,
            free_port(false)?,
            free_port(false)?,
        );
        let lo: std::net::IpAddr = [127, 0, 0, 1].into();
        let entry = |proto, port, prefix| OutboundAllow {
            proto,
            port,
            addr: if prefix == 8 {
                [127, 0, 0, 0].into()
            } else {
                lo
            },
            prefix,
        };
        let both = vec![IPPROTO_TCP, IPPROTO_UDP];
        probe
            .set_net_filter(&NetFilterPlan {
                outbound: NetSidePlan {
                    protocols: both.clone(),
                    needed: vec![(IPPROTO_TCP, needed)],
                },
                inbound: NetSidePlan {
                    protocols: both,
                    needed: vec![(IPPROTO_TCP, served_needed)],
                },
            })
            .map_err(|e| e.to_string())?;
        let pf = probe.profile_filter();
        pf.set_profile(PROFILE, &crate::filter::WriteAllow::default())
            .map_err(|e| e.to_string())?;
        pf.set_outbound(
            PROFILE,
            &[
                entry(IPPROTO_TCP, allowed, 32),
                entry(IPPROTO_TCP, needed, 32),
                entry(IPPROTO_UDP, udp_port, 8),
            ],
        )
        .map_err(|e| e.to_string())?;
        pf.set_inbound(
            PROFILE,
            &[
                (IPPROTO_TCP, served),
                (IPPROTO_TCP, served_needed),
                (IPPROTO_UDP, reply_from),
            ],
        )
        .map_err(|e| e.to_string())?;
        pf.bind(id, PROFILE).map_err(|e| e.to_string())?;
        let procs = cstr(&cg.join("cgroup.procs"))?;
        let (sa_allowed, sa_needed, sa_other, sa_udp, sa_reply) = (
            loopback(allowed),
            loopback(needed),
            loopback(other),
            loopback(udp_port),
            loopback(reply_from),
        );
        let servers = [
            loopback(served),
            loopback(served_needed),
            loopback(unserved),
        ];
        let before = filtered_net(probe);
        let pid = child_ok(
            "kernel-filter-net",
            in_child(|| {
                // SAFETY: raw syscalls on values prepared before fork; "0" moves the writer.
                unsafe {
                    if !join_cgroup(&procs) {
                        return 2;
                    }
                    for (i, sa) in [&sa_allowed, &sa_needed, &sa_other].iter().enumerate() {
                        let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                        let sap = (*sa as *const libc::sockaddr_in).cast();
                        if s < 0 || libc::connect(s, sap, SA_LEN) != 0 {
                            return 3 + i as i32;
                        }
                        libc::close(s);
                    }
                    let buf = [0u8; 1];
                    let udpp = (&sa_udp as *const libc::sockaddr_in).cast();
                    // a client's datagram (autobound port), then a reply from a bound port
                    let c = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
                    if c < 0 || libc::sendto(c, buf.as_ptr().cast(), 1, 0, udpp, SA_LEN) != 1 {
                        return 6;
                    }
                    let b = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
                    let rp = (&sa_reply as *const libc::sockaddr_in).cast();
                    if b < 0
                        || libc::bind(b, rp, SA_LEN) != 0
                        || libc::sendto(b, buf.as_ptr().cast(), 1, 0, udpp, SA_LEN) != 1
                    {
                        return 7;
                    }
                    // serve each port once: bind, listen, connect to it, accept
                    for (i, sa) in servers.iter().enumerate() {
                        let sap = (sa as *const libc::sockaddr_in).cast();
                        let srv = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                        let cli = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                        if srv < 0
                            || cli < 0
                            || libc::bind(srv, sap, SA_LEN) != 0
                            || libc::listen(srv, 1) != 0
                            || libc::connect(cli, sap, SA_LEN) != 0
                            || libc::accept4(srv, std::ptr::null_mut(), std::ptr::null_mut(), 0) < 0
                        {
                            return 8 + i as i32;
                        }
                    }
                }
                0
            }),
        );
        pf.release(id);
        let pid = pid?;
        let to = |e: &Event, kind: EventType, port: u16| {
            e.process.pid == pid
                && e.event_type() == kind
                && match &e.args {
                    Args::Connect { addr, .. } | Args::Send { addr, .. } => {
                        *addr == format!("127.0.0.1:{port}")
                    }
                    _ => false,
                }
        };
        let accepted = |e: &Event, port: u16| {
            e.process.pid == pid
                && e.event_type() == EventType::Accept4
                && e.fd.as_ref().is_some_and(|f| f.sport == Some(port))
        };
        seen.wait("connect to the rule's port", pid, |e| {
            to(e, EventType::Connect, needed)
        })?;
        seen.wait("connect outside the profile", pid, |e| {
            to(e, EventType::Connect, other)
        })?;
        seen.wait("accept on a port a rule needs", pid, |e| {
            accepted(e, served_needed)
        })?;
        seen.wait("accept on a port the profile does not serve", pid, |e| {
            accepted(e, unserved)
        })?;
        let after = filtered_net(probe);
        expect(
            "profile_filtered connects, sends and accepts",
            after - before,
            4,
        )?;
        // events of one process arrive in order: the dropped ones would be here by now
        let got: Vec<String> = seen
            .lock()
            .iter()
            .filter(|e| {
                to(e, EventType::Connect, allowed)
                    || to(e, EventType::Sendto, udp_port)
                    || accepted(e, served)
            })
            .map(|e| format!("{} {:?}", e.event_type().as_str(), e.args))
            .collect();
        expect("events of the dropped ones", got, Vec::<String>::new())?;
        // outside the cgroup the same allowed connect is reported
        let host = child_ok(
            "kernel-filter-net (outside)",
            in_child(|| {
                // SAFETY: raw socket syscalls on a sockaddr prepared before fork.
                unsafe {
                    let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                    let sap = (&sa_allowed as *const libc::sockaddr_in).cast();
                    i32::from(s < 0 || libc::connect(s, sap, SA_LEN) != 0)
                }
            }),
        )?;
        let want = format!("127.0.0.1:{allowed}");
        seen.wait("connect outside the cgroup", host, |e| {
            e.process.pid == host && matches!(&e.args, Args::Connect { addr, .. } if *addr == want)
        })?;
        drop(udp);
        pf.drop_profile(PROFILE);
        probe
            .set_net_filter(&NetFilterPlan::off())
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "an allowed connect, client datagram, server reply and accept dropped in cgroup \
             {id}; the rules' ports, outside the profile and another cgroup reported"
        ))
    })();
    let _ = std::fs::remove_dir(&cg);
    result
}

/// The kernel's filter of socket and dup calls: see the table in the module docs.
fn check_event_filter(seen: &Seen, probe: &Probe) -> Result<String, String> {
    use crate::filter::{EventFilterPlan, DUP_CLASSES};
    // drop socket(AF_INET) and every dup2 but onto fds 0-2 of AF_INET sockets
    let mut plan = EventFilterPlan {
        socket_drop: 1 << libc::AF_INET,
        ..EventFilterPlan::off()
    };
    plan.dup_drop[1] = [u64::MAX; DUP_CLASSES];
    plan.dup_drop[1][2] = !0b111;
    probe.set_event_filter(&plan).map_err(|e| e.to_string())?;
    let before = filtered_of(probe, &[crate::abi::Kind::Socket, crate::abi::Kind::Dup2]);
    let pid = child_ok(
        "event-filter",
        in_child(|| {
            // SAFETY: raw socket and dup2 syscalls on descriptors this child owns.
            unsafe {
                let inet = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
                let unix = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0);
                if inet < 0 || unix < 0 {
                    return 2;
                }
                // dropped: a unix socket onto 2, an inet socket onto 9; kept: inet onto 2
                if libc::dup2(unix, 2) != 2 || libc::dup2(inet, 9) != 9 {
                    return 3;
                }
                i32::from(libc::dup2(inet, 2) != 2) * 4
            }
        }),
    )?;
    let kept = seen.wait("dup2 of an inet socket onto fd 2", pid, |e| {
        e.process.pid == pid
            && e.event_type() == EventType::Dup2
            && e.fd
                .as_ref()
                .is_some_and(|f| f.typ == falco_learn_event::FdType::Ipv4)
    })?;
    expect("its new fd", kept.res, 2)?;
    seen.wait("socket(AF_UNIX)", pid, |e| {
        e.process.pid == pid
            && e.event_type() == EventType::Socket
            && matches!(e.args, Args::Socket { domain, .. } if domain == libc::AF_UNIX as u32)
    })?;
    let after = filtered_of(probe, &[crate::abi::Kind::Socket, crate::abi::Kind::Dup2]);
    // the plan applies to every process: others may add to the count, never take from it
    if after - before < 3 {
        return Err(format!(
            "filtered socket and dup2 calls: got {}, want at least 3",
            after - before
        ));
    }
    let got: Vec<String> = seen
        .lock()
        .iter()
        .filter(|e| e.process.pid == pid)
        .filter(|e| {
            matches!(e.args, Args::Socket { domain, .. } if domain == libc::AF_INET as u32)
                || (e.event_type() == EventType::Dup2 && e.res != 2)
                || (e.event_type() == EventType::Dup2
                    && e.fd
                        .as_ref()
                        .is_some_and(|f| f.typ == falco_learn_event::FdType::Unix))
        })
        .map(|e| format!("{} {:?}", e.event_type().as_str(), e.args))
        .collect();
    probe
        .set_event_filter(&EventFilterPlan::off())
        .map_err(|e| e.to_string())?;
    expect("events of the dropped calls", got, Vec::<String>::new())?;
    Ok(
        "socket(AF_INET), dup2 of a unix socket onto 2 and of an inet one onto 9 dropped; \
        socket(AF_UNIX) and dup2 of an inet socket onto 2 reported"
            .to_string(),
    )
}

fn filtered_of(probe: &Probe, kinds: &[crate::abi::Kind]) -> u64 {
    probe
        .kernel_stats()
        .iter()
        .filter(|(k, _)| kinds.contains(k))
        .map(|(_, s)| s.filtered)
        .sum()
}

fn filtered_net(probe: &Probe) -> u64 {
    probe
        .kernel_stats()
        .iter()
        .filter(|(k, _)| {
            matches!(
                k,
                crate::abi::Kind::Connect
                    | crate::abi::Kind::Sendto
                    | crate::abi::Kind::Sendmsg
                    | crate::abi::Kind::Accept
                    | crate::abi::Kind::Accept4
            )
        })
        .map(|(_, s)| s.profile_filtered)
        .sum()
}

fn filtered_opens(probe: &Probe) -> u64 {
    probe
        .kernel_stats()
        .iter()
        .map(|(_, s)| s.profile_filtered)
        .sum()
}

/// Load the probe, run every check, stop the probe. Fails only when the probe does
/// not start (the error says why); a check that fails is in the [`Report`].
pub fn run(cfg: &SelftestConfig) -> Result<Report, ProbeError> {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let mut pcfg = ProbeConfig {
        kill: cfg.kill,
        syscall_hook: cfg.syscall_hook,
        ..ProbeConfig::default()
    };
    pcfg.runtime.enabled = false;
    let t0 = Instant::now();
    let (probe, rx) = Probe::start(pcfg)?;
    let load_time = t0.elapsed();
    let events = Arc::new(Mutex::new(Vec::new()));
    {
        let events = events.clone();
        // ends when the probe stops and the ring buffer is read to its end
        std::thread::spawn(move || {
            for ev in rx {
                events.lock().unwrap_or_else(|p| p.into_inner()).push(ev);
            }
        });
    }
    let seen = Seen {
        events,
        timeout: cfg.timeout,
    };
    let exe =
        std::fs::read_link("/proc/self/exe").unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let dir = std::env::temp_dir().join(format!("fl-selftest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut checks = Vec::new();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        checks.push(Check {
            name: "scratch",
            outcome: Err(format!("mkdir {}: {e}", dir.display())),
        });
    }
    let shm = Path::new("/dev/shm");
    let tmpfs_copy = (fs_magic(shm) == Some(TMPFS_MAGIC))
        .then(|| shm.join(format!("fl-selftest-{}", std::process::id())))
        .filter(|p| {
            std::fs::copy(&exe, p).is_ok()
                && std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).is_ok()
        });
    let exe_bytes = std::fs::read(&exe).unwrap_or_default();
    let deep = make_deep(&dir, &exe_bytes);
    let env = Env {
        exe,
        exe_bytes,
        dir,
        tmpfs_copy,
        deep,
    };
    let mut add = |name, outcome| checks.push(Check { name, outcome });
    add("verifier-margin", check_verifier_margin(&probe));
    add("exec", check_exec(&seen, &env));
    add("exec-tmpfs", check_exec_tmpfs(&seen, &env));
    add("exec-other-fs", check_exec_other_fs(&seen, &env));
    add("exec-memfd", check_exec_memfd(&seen, &env));
    add("exec-execveat", check_exec_execveat(&seen, &probe, &env));
    add("exec-ia32", check_exec_ia32(&seen, &probe, &env));
    add("ia32-syscall", check_ia32_syscall(&seen, &probe, &env));
    add("ia32-handled", check_ia32_handled(&seen, &probe, &env));
    add("exec-x32", check_exec_x32(&seen, &probe, &env));
    add("exec-deleted", check_exec_deleted(&seen, &env));
    add("exec-long-path", check_exec_long_path(&seen, &env));
    add("open-write", check_open_write(&seen, &env));
    add("connect-tcp", check_connect(&seen));
    add("server-tcp", check_server(&seen, false));
    add("server-udp", check_server(&seen, true));
    add("symlink", check_symlink(&seen, &env));
    let (ptrace, fork_exit) = check_ptrace_fork_exit(&seen);
    add("ptrace", ptrace);
    add("fork-exit", fork_exit);
    add("kernel-filter", check_kernel_filter(&seen, &probe, &env));
    add("kernel-filter-net", check_kernel_filter_net(&seen, &probe));
    add(
        "kernel-filter-unprofiled",
        check_kernel_filter_unprofiled(&seen, &probe, &env),
    );
    add("event-filter", check_event_filter(&seen, &probe));
    add("cgroup-home", check_cgroup_home(&seen, &probe, &env));
    // last of the filter checks: it turns the verdict cache of opens off for good
    add(
        "io-uring-rename",
        check_io_uring_rename(&seen, &probe, &env),
    );
    if cfg.kill {
        add("enforce-kill", check_kill(&seen, &probe, &env));
    }
    let syscall_hook = probe.syscall_hook();
    probe.stop();
    if let Some(p) = &env.tmpfs_copy {
        let _ = std::fs::remove_file(p);
    }
    let _ = std::fs::remove_dir_all(&env.dir);
    Ok(Report {
        kernel,
        load_time,
        syscall_hook,
        checks,
    })
}
