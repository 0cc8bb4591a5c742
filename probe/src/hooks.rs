//! How the syscall handlers are hooked: two families of the same handlers, one attached.
//!
//! - [`SyscallHook::Tracepoints`] (5.15+; the default there when 32-bit syscalls are not
//!   watched): each handler `fl_tp_exit_<name>` on its
//!   syscall's own `syscalls:sys_exit_<name>` tracepoint, whose program runs only for that
//!   syscall; the arguments come from the task's saved registers (`bpf_task_pt_regs`,
//!   5.15+). A syscall nobody needs still pays the kernel's syscall-tracing slow path and
//!   perf's own hook on the raw `sys_exit` (every `syscalls:` tracepoint is one: it tests
//!   the syscall's bit in a bitmap of the enabled ones), but no program.
//! - [`SyscallHook::Dispatch`] (the default: always before 5.15, where `bpf_task_pt_regs` is
//!   missing, and on every kernel while 32-bit syscalls are watched): one BTF raw tracepoint on `sys_exit` (`fl_sys_exit`) tail-calls the handler
//!   `fl_exit_<name>` in the slot of the syscall's number (`SYSCALL_EXIT`). A traced syscall
//!   is cheaper than through its perf tracepoint, but every syscall of the machine pays the
//!   dispatcher (~20–30 ns here; `bench probe --loop getppid`).
//!
//! Neither family has enter programs: a `syscalls:sys_enter_<name>` tracepoint is one hook
//! on the raw `sys_enter` that runs for every syscall of the machine (+30–35 ns each here,
//! when execveat had one). Measured side by side in the README (Performance).
//!
//! 32-bit syscalls (ia32, x32) reach neither family's handlers directly (their numbers are
//! other tables; the per-syscall tracepoints skip them). When they are watched
//! ([`crate::ProbeConfig::ia32_syscalls`]), every syscall's exit is checked for one, which
//! goes to the handler of its 64-bit twin through a second program array
//! (`SYSCALL_EXIT_COMPAT`: the same `fl_exit_<name>` programs in the slots of the kind
//! table's `COMPAT_SLOTS`, set and cleared with the 64-bit hook; ia32 `socketcall` to
//! `fl_exit_socketcall`, which reads `KINDS_ATTACHED`). Every syscall of the machine then
//! pays a program anyway: `Auto` picks the dispatcher, which checks them itself, instead of
//! per-syscall tracepoints plus a second program on `sys_exit` (`fl_sys_exit_ia32`, what an
//! explicit `Tracepoints` gets, with the dispatcher's handlers loaded for it).
//!
//! Which syscalls are hooked and their dispatcher slots (x86_64 numbers) come from the table
//! of event kinds (`probe/common/src/kind_table.rs`: each kind's `exit` column,
//! `paths_changed`).

use crate::ProbeError;
use aya::maps::{Array, MapData, ProgramArray};
use aya::programs::trace_point::TracePointLinkId;
use aya::programs::{BtfTracePoint, TracePoint};
use aya::{Btf, Ebpf};
use falco_learn_probe_common as abi;
use std::collections::BTreeMap;

/// Which family of syscall hooks to attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyscallHook {
    /// `Tracepoints` on kernels from 5.15 when 32-bit syscalls are not watched, else
    /// `Dispatch`.
    #[default]
    Auto,
    /// One `sys_exit` raw tracepoint with a tail call per syscall number.
    Dispatch,
    /// Each syscall's own `sys_exit_<name>` tracepoint (5.15+).
    Tracepoints,
}

impl SyscallHook {
    /// The family this kernel gets for `self` (`Auto` resolved, `ia32_watched`: whether
    /// 32-bit syscalls are watched; `Tracepoints` before 5.15 is an error: the kernel has no
    /// `bpf_task_pt_regs`).
    pub fn resolve(self, ia32_watched: bool) -> Result<SyscallHook, ProbeError> {
        let modern = aya::util::KernelVersion::current()
            .map(|v| v >= aya::util::KernelVersion::new(5, 15, 0))
            .unwrap_or(false);
        match (self, modern) {
            (SyscallHook::Auto, true) if !ia32_watched => Ok(SyscallHook::Tracepoints),
            (SyscallHook::Auto, _) => Ok(SyscallHook::Dispatch),
            (SyscallHook::Tracepoints, false) => Err(ProbeError::Program {
                program: "fl_tp_exit_*".into(),
                hook: "tracepoint/syscalls/sys_exit_*".into(),
                err: "per-syscall tracepoint hooks need Linux 5.15 (bpf_task_pt_regs); use the dispatch hook".into(),
            }),
            (h, _) => Ok(h),
        }
    }

    /// The name used in logs and `bench` (`dispatch`, `tracepoints`, `auto`).
    pub fn name(self) -> &'static str {
        match self {
            SyscallHook::Auto => "auto",
            SyscallHook::Dispatch => "dispatch",
            SyscallHook::Tracepoints => "tracepoints",
        }
    }
}

impl std::str::FromStr for SyscallHook {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(SyscallHook::Auto),
            "dispatch" => Ok(SyscallHook::Dispatch),
            "tracepoints" => Ok(SyscallHook::Tracepoints),
            _ => Err(format!(
                "unknown syscall hook {s:?} (auto, dispatch or tracepoints)"
            )),
        }
    }
}

const RAW_HOOK: &str = "tp_btf/sys_exit";

fn program_mut<'a, P>(ebpf: &'a mut Ebpf, prog: &str, hook: &str) -> Result<&'a mut P, ProbeError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let err = |e: String| ProbeError::Program {
        program: prog.to_string(),
        hook: hook.to_string(),
        err: e,
    };
    ebpf.program_mut(prog)
        .ok_or_else(|| err("not in the object".into()))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| err(e.to_string()))
}

fn prog_err(program: &str, hook: &str) -> impl Fn(String) -> ProbeError {
    let (program, hook) = (program.to_string(), hook.to_string());
    move |err| ProbeError::Program {
        program: program.clone(),
        hook: hook.clone(),
        err,
    }
}

/// Where tracefs is mounted (preflight mounts the first when neither is).
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Whether this kernel has the `syscalls:sys_exit_<sc>` tracepoint (CONFIG_MODULES off has
/// no init_module one, for instance).
fn has_exit_tracepoint(sc: &str) -> bool {
    TRACEFS
        .iter()
        .any(|t| std::path::Path::new(&format!("{t}/events/syscalls/sys_exit_{sc}")).exists())
}

/// Where io_uring's submissions can be watched on this kernel (see `fl_io_uring_submit` in
/// probe.bpf.c: an io_uring rename turns the kernel's verdict cache of opens off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IoUringWatch {
    /// No `io_uring` tracepoints: the kernel has no io_uring (CONFIG_IO_URING off).
    Absent,
    /// The submission tracepoint `io_uring:<tracepoint>`, whose record holds the request's
    /// opcode (one byte) at `opcode_offset`.
    Submit {
        tracepoint: &'static str,
        opcode_offset: u32,
    },
    /// io_uring is there but its submissions cannot be watched (why).
    Unwatchable(String),
}

/// The submission tracepoint's names: `io_uring_submit_req` from 6.0, `io_uring_submit_sqe`
/// before (5.5–5.19; its arguments changed in 5.13, the record's `opcode` field did not).
const IO_URING_SUBMIT: [&str; 2] = ["io_uring_submit_req", "io_uring_submit_sqe"];

/// The io_uring watch this kernel allows, from tracefs.
pub(crate) fn io_uring_watch() -> IoUringWatch {
    let Some(events) = TRACEFS
        .iter()
        .map(|t| std::path::PathBuf::from(format!("{t}/events/io_uring")))
        .find(|p| p.is_dir())
    else {
        return IoUringWatch::Absent;
    };
    for tracepoint in IO_URING_SUBMIT {
        let format = events.join(tracepoint).join("format");
        let text = match std::fs::read_to_string(&format) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return IoUringWatch::Unwatchable(format!("{}: {e}", format.display()));
            }
        };
        return match opcode_offset(&text) {
            Some(opcode_offset) => IoUringWatch::Submit {
                tracepoint,
                opcode_offset,
            },
            None => IoUringWatch::Unwatchable(format!(
                "{}: no one-byte `opcode` field within the record's first 64 bytes",
                format.display()
            )),
        };
    }
    IoUringWatch::Unwatchable(format!(
        "{} has none of the submission tracepoints {IO_URING_SUBMIT:?}",
        events.display()
    ))
}

/// The offset of the one-byte field `opcode` in a tracefs `format` text (the kernel reads
/// the record's first 64 bytes), e.g. `field:u8 opcode;\toffset:32;\tsize:1;\tsigned:0;`.
fn opcode_offset(format: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let mut parts = line.split(';').map(str::trim);
        let field = parts.next()?.strip_prefix("field:")?;
        if field.split_whitespace().last()? != "opcode" {
            return None;
        }
        let (mut offset, mut size) = (None, None);
        for p in parts {
            if let Some(v) = p.strip_prefix("offset:") {
                offset = v.parse::<u32>().ok();
            } else if let Some(v) = p.strip_prefix("size:") {
                size = v.parse::<u32>().ok();
            }
        }
        (size == Some(1))
            .then_some(offset)
            .flatten()
            .filter(|o| *o < 64)
    })
}

/// Attach `fl_io_uring_submit` to `io_uring:<tracepoint>` (loaded with the opcode's offset).
pub(crate) fn attach_io_uring(ebpf: &mut Ebpf, tracepoint: &str) -> Result<(), ProbeError> {
    let prog = "fl_io_uring_submit";
    let hk = format!("tracepoint/io_uring/{tracepoint}");
    let p: &mut TracePoint = program_mut(ebpf, prog, &hk)?;
    let err = prog_err(prog, &hk);
    p.load().map_err(|e| err(format!("{e:#}")))?;
    p.attach("io_uring", tracepoint)
        .map_err(|e| err(format!("{e:#}")))?;
    Ok(())
}

/// ia32 `socketcall` (102): the socket calls 32-bit programs multiplex through one number.
const IA32_SOCKETCALL: u32 = 102;
const SOCKETCALL_PROGRAM: &str = "fl_exit_socketcall";

/// Load `prog` as a handler on the `sys_exit` raw tracepoint (a dispatcher's tail-call
/// target), unless it is loaded already.
fn load_raw(ebpf: &mut Ebpf, btf: &Btf, prog: &str) -> Result<(), ProbeError> {
    let p: &mut BtfTracePoint = program_mut(ebpf, prog, RAW_HOOK)?;
    if p.fd().is_err() {
        p.load("sys_exit", btf)
            .map_err(|e| prog_err(prog, RAW_HOOK)(format!("{e:#}")))?;
    }
    Ok(())
}

fn take_map(ebpf: &mut Ebpf, map: &'static str) -> Result<aya::maps::Map, ProbeError> {
    ebpf.take_map(map).ok_or(ProbeError::Map {
        map,
        err: "missing".into(),
    })
}

/// The 32-bit syscalls' handlers: the compat dispatcher's program array
/// (`SYSCALL_EXIT_COMPAT`, slots from the kind table's `COMPAT_SLOTS`) and the kinds whose
/// handler is attached (`KINDS_ATTACHED`, which `fl_exit_socketcall` reads).
struct Compat {
    slots: ProgramArray<MapData>,
    kinds: Array<MapData, u32>,
}

const COMPAT_MAP: &str = "SYSCALL_EXIT_COMPAT";

fn compat_err(err: String) -> ProbeError {
    ProbeError::Map {
        map: COMPAT_MAP,
        err,
    }
}

impl Compat {
    /// Take the maps and set what is always on: the path-change programs (`paths_changed`)
    /// in their 32-bit slots and `socketcall`.
    fn load(
        ebpf: &mut Ebpf,
        btf: &Btf,
        paths_changed: &[(&'static str, u32)],
    ) -> Result<Compat, ProbeError> {
        let slots = ProgramArray::try_from(take_map(ebpf, COMPAT_MAP)?)
            .map_err(|e| compat_err(e.to_string()))?;
        let kinds =
            Array::try_from(take_map(ebpf, "KINDS_ATTACHED")?).map_err(|e| ProbeError::Map {
                map: "KINDS_ATTACHED",
                err: e.to_string(),
            })?;
        let mut compat = Compat { slots, kinds };
        for &(sc, _) in paths_changed {
            let prog = format!("fl_exit_{sc}");
            load_raw(ebpf, btf, &prog)?;
            compat.put(ebpf, &prog, compat_slots(sc), sc)?;
        }
        load_raw(ebpf, btf, SOCKETCALL_PROGRAM)?;
        compat.put(
            ebpf,
            SOCKETCALL_PROGRAM,
            std::iter::once(IA32_SOCKETCALL),
            "socketcall",
        )?;
        Ok(compat)
    }

    /// Put the loaded program `prog` in `slots` (`what`: the syscall, for errors).
    fn put(
        &mut self,
        ebpf: &mut Ebpf,
        prog: &str,
        slots: impl Iterator<Item = u32>,
        what: &str,
    ) -> Result<(), ProbeError> {
        let p: &mut BtfTracePoint = program_mut(ebpf, prog, RAW_HOOK)?;
        let fd = p
            .fd()
            .map_err(|e| prog_err(prog, RAW_HOOK)(e.to_string()))?;
        for slot in slots {
            self.slots
                .set(slot, fd, 0)
                .map_err(|e| compat_err(format!("slot {slot} ({what}): {e}")))?;
        }
        Ok(())
    }

    /// Hand `sc`'s 32-bit twins to its handler `fl_exit_<sc>` (loaded), or take them back.
    fn set(&mut self, ebpf: &mut Ebpf, sc: &'static str, on: bool) -> Result<(), ProbeError> {
        if on {
            self.put(ebpf, &format!("fl_exit_{sc}"), compat_slots(sc), sc)?;
        } else {
            for slot in compat_slots(sc) {
                self.slots
                    .clear_index(&slot)
                    .map_err(|e| compat_err(format!("clear slot {slot} ({sc}): {e}")))?;
            }
        }
        if let Some(kind) = abi::Kind::ALL
            .iter()
            .find(|k| k.syscalls().iter().any(|(s, _)| *s == sc))
        {
            self.kinds
                .set(*kind as u32, u32::from(on), 0)
                .map_err(|e| ProbeError::Map {
                    map: "KINDS_ATTACHED",
                    err: format!("{}: {e}", kind.name()),
                })?;
        }
        Ok(())
    }
}

/// The compat dispatcher's slots of `sc`'s 32-bit twins.
fn compat_slots(sc: &str) -> impl Iterator<Item = u32> + '_ {
    abi::COMPAT_SLOTS
        .iter()
        .filter(move |(s, _)| *s == sc)
        .map(|(_, slot)| *slot)
}

#[derive(Default)]
struct Links {
    exit: Option<TracePointLinkId>,
}

/// The loaded hook family and what is attached now.
pub(crate) struct Hooks {
    hook: SyscallHook,
    /// Dispatch: the handler slots, held open (the kernel empties a program array when its
    /// last user reference closes).
    slots: Option<ProgramArray<MapData>>,
    /// Syscalls whose handler is loaded on this kernel.
    available: Vec<(&'static str, u32)>,
    /// 32-bit syscalls handled (when they are watched).
    compat: Option<Compat>,
    links: BTreeMap<&'static str, Links>,
}

impl Hooks {
    /// Load (verify) every handler of the family `hook` (resolved: [`SyscallHook::resolve`])
    /// and attach what is always on: the path-change hooks of the verdict cache and, for
    /// `Dispatch`, the dispatcher. With `compat` (32-bit syscalls watched) the handlers
    /// also take the 32-bit twins of their syscalls: through the dispatcher's handlers
    /// `fl_exit_<name>`, loaded for it in the `Tracepoints` family too.
    pub(crate) fn load(
        ebpf: &mut Ebpf,
        btf: &Btf,
        hook: SyscallHook,
        syscalls: &[(&'static str, u32)],
        paths_changed: &[(&'static str, u32)],
        compat: bool,
    ) -> Result<Hooks, ProbeError> {
        let mut available = Vec::new();
        let mut slots = None;
        let mut compat_slots = None;
        match hook {
            SyscallHook::Tracepoints => {
                for &(sc, nr) in syscalls {
                    if !has_exit_tracepoint(sc) {
                        tracing::info!(
                            "this kernel has no {sc} syscall tracepoint: {sc} events will not be reported"
                        );
                        continue;
                    }
                    let prog = format!("fl_tp_exit_{sc}");
                    let hk = format!("tracepoint/syscalls/sys_exit_{sc}");
                    let p: &mut TracePoint = program_mut(ebpf, &prog, &hk)?;
                    p.load()
                        .map_err(|e| prog_err(&prog, &hk)(format!("{e:#}")))?;
                    available.push((sc, nr));
                }
                for &(sc, _) in paths_changed {
                    if !has_exit_tracepoint(sc) {
                        continue;
                    }
                    let prog = format!("fl_tp_exit_{sc}");
                    let hk = format!("tracepoint/syscalls/sys_exit_{sc}");
                    let p: &mut TracePoint = program_mut(ebpf, &prog, &hk)?;
                    p.load()
                        .map_err(|e| prog_err(&prog, &hk)(format!("{e:#}")))?;
                    p.attach("syscalls", &format!("sys_exit_{sc}"))
                        .map_err(|e| prog_err(&prog, &hk)(format!("{e:#}")))?;
                }
                if compat {
                    for &(sc, _) in &available {
                        load_raw(ebpf, btf, &format!("fl_exit_{sc}"))?;
                    }
                    compat_slots = Some(Compat::load(ebpf, btf, paths_changed)?);
                }
            }
            _ => {
                for &(sc, nr) in syscalls {
                    let prog = format!("fl_exit_{sc}");
                    let p: &mut BtfTracePoint = program_mut(ebpf, &prog, RAW_HOOK)?;
                    p.load("sys_exit", btf)
                        .map_err(|e| prog_err(&prog, RAW_HOOK)(format!("{e:#}")))?;
                    available.push((sc, nr));
                }
                let mut array =
                    ProgramArray::try_from(take_map(ebpf, "SYSCALL_EXIT")?).map_err(|e| {
                        ProbeError::Map {
                            map: "SYSCALL_EXIT",
                            err: e.to_string(),
                        }
                    })?;
                for &(sc, nr) in paths_changed {
                    let prog = format!("fl_exit_{sc}");
                    let p: &mut BtfTracePoint = program_mut(ebpf, &prog, RAW_HOOK)?;
                    let err = prog_err(&prog, RAW_HOOK);
                    p.load("sys_exit", btf).map_err(|e| err(format!("{e:#}")))?;
                    let fd = p.fd().map_err(|e| err(e.to_string()))?;
                    array.set(nr, fd, 0).map_err(|e| ProbeError::Map {
                        map: "SYSCALL_EXIT",
                        err: format!("slot {nr} ({sc}): {e}"),
                    })?;
                }
                if compat {
                    compat_slots = Some(Compat::load(ebpf, btf, paths_changed)?);
                }
                let p: &mut BtfTracePoint = program_mut(ebpf, "fl_sys_exit", RAW_HOOK)?;
                let err = prog_err("fl_sys_exit", RAW_HOOK);
                p.load("sys_exit", btf).map_err(|e| err(format!("{e:#}")))?;
                p.attach().map_err(|e| err(format!("{e:#}")))?;
                slots = Some(array);
            }
        }
        Ok(Hooks {
            hook,
            slots,
            available,
            compat: compat_slots,
            links: BTreeMap::new(),
        })
    }

    /// The family attached.
    pub(crate) fn hook(&self) -> SyscallHook {
        self.hook
    }

    /// Syscalls whose handlers are attached now.
    pub(crate) fn attached(&self) -> Vec<&'static str> {
        self.links.keys().copied().collect()
    }

    /// Syscalls this kernel can report (a handler loaded).
    pub(crate) fn available(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.available.iter().map(|(sc, _)| *sc)
    }

    /// Attach one syscall's handler.
    pub(crate) fn attach(&mut self, ebpf: &mut Ebpf, sc: &'static str) -> Result<(), ProbeError> {
        let Some(&(_, nr)) = self.available.iter().find(|(s, _)| *s == sc) else {
            return Ok(());
        };
        if self.links.contains_key(sc) {
            return Ok(());
        }
        let mut links = Links::default();
        match &mut self.slots {
            Some(slots) => {
                let prog = format!("fl_exit_{sc}");
                let p: &mut BtfTracePoint = program_mut(ebpf, &prog, RAW_HOOK)?;
                let fd = p
                    .fd()
                    .map_err(|e| prog_err(&prog, RAW_HOOK)(e.to_string()))?;
                slots.set(nr, fd, 0).map_err(|e| ProbeError::Map {
                    map: "SYSCALL_EXIT",
                    err: format!("slot {nr} ({sc}): {e}"),
                })?;
            }
            None => {
                let prog = format!("fl_tp_exit_{sc}");
                let hk = format!("tracepoint/syscalls/sys_exit_{sc}");
                let p: &mut TracePoint = program_mut(ebpf, &prog, &hk)?;
                links.exit = Some(
                    p.attach("syscalls", &format!("sys_exit_{sc}"))
                        .map_err(|e| prog_err(&prog, &hk)(format!("{e:#}")))?,
                );
            }
        }
        if let Some(compat) = &mut self.compat {
            compat.set(ebpf, sc, true)?;
        }
        self.links.insert(sc, links);
        Ok(())
    }

    /// Detach one syscall's handler.
    pub(crate) fn detach(&mut self, ebpf: &mut Ebpf, sc: &'static str) -> Result<(), ProbeError> {
        let Some(links) = self.links.remove(sc) else {
            return Ok(());
        };
        if let Some(compat) = &mut self.compat {
            compat.set(ebpf, sc, false)?;
        }
        if let Some(link) = links.exit {
            let prog = format!("fl_tp_exit_{sc}");
            let hk = format!("tracepoint/syscalls/sys_exit_{sc}");
            let p: &mut TracePoint = program_mut(ebpf, &prog, &hk)?;
            p.detach(link)
                .map_err(|e| prog_err(&prog, &hk)(format!("detach: {e}")))?;
        }
        if let (Some(slots), Some(&(_, nr))) = (
            &mut self.slots,
            self.available.iter().find(|(s, _)| *s == sc),
        ) {
            slots.clear_index(&nr).map_err(|e| ProbeError::Map {
                map: "SYSCALL_EXIT",
                err: format!("clear slot {nr} ({sc}): {e}"),
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `opcode` field's offset in each version's submission record (formats as the
    /// kernels print them: 6.x `io_uring_submit_req`, 5.13–5.19 and 5.5–5.12
    /// `io_uring_submit_sqe`); a field of another name or size, or too far, is not taken.
    #[test]
    fn the_io_uring_opcode_offset_comes_from_the_format() {
        let v6 = "name: io_uring_submit_req\nID: 2140\nformat:\n\
            \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
            \tfield:void * ctx;\toffset:8;\tsize:8;\tsigned:0;\n\
            \tfield:void * req;\toffset:16;\tsize:8;\tsigned:0;\n\
            \tfield:unsigned long long user_data;\toffset:24;\tsize:8;\tsigned:0;\n\
            \tfield:u8 opcode;\toffset:32;\tsize:1;\tsigned:0;\n\
            \tfield:__data_loc char[] op_str;\toffset:52;\tsize:4;\tsigned:0;\n";
        let v515 = "format:\n\tfield:void * ctx;\toffset:8;\tsize:8;\tsigned:0;\n\
            \tfield:void * req;\toffset:16;\tsize:8;\tsigned:0;\n\
            \tfield:u8 opcode;\toffset:24;\tsize:1;\tsigned:0;\n";
        let v510 = "format:\n\tfield:void * ctx;\toffset:8;\tsize:8;\tsigned:0;\n\
            \tfield:u8 opcode;\toffset:16;\tsize:1;\tsigned:0;\n";
        assert_eq!(opcode_offset(v6), Some(32));
        assert_eq!(opcode_offset(v515), Some(24));
        assert_eq!(opcode_offset(v510), Some(16));
        for bad in [
            "\tfield:u8 op;\toffset:16;\tsize:1;\tsigned:0;",
            "\tfield:u16 opcode;\toffset:16;\tsize:2;\tsigned:0;",
            "\tfield:u8 opcode;\toffset:64;\tsize:1;\tsigned:0;",
            "\tfield:u8 opcode;\toffset:x;\tsize:1;\tsigned:0;",
            "\tfield:u8 opcode;\tsize:1;\tsigned:0;",
            "",
        ] {
            assert_eq!(opcode_offset(bad), None, "{bad:?}");
        }
    }
}
