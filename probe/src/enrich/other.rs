//! The remaining kinds (`Ptrace`, `InitModule`, `FinitModule`, `Ia32Syscall`): their
//! arguments only.

use super::lossy;
use falco_learn_event::Args;
use falco_learn_probe_common as abi;

/// A ptrace call: the request and the target.
pub(super) fn ptrace(e: &abi::Ptrace) -> Args {
    Args::Ptrace {
        request: e.request as u32,
        pid: e.target_pid as u32,
    }
}

/// x32's `execve` (520) with the x32 bit: the number a successful exec into an x32 program
/// returns as.
pub(super) const X32_EXECVE: i64 = 0x4000_0000 | 520;

/// A 32-bit (ia32 or x32) syscall: its number.
pub(super) fn ia32(e: &abi::Ia32) -> Args {
    Args::Ia32Syscall { id: e.id }
}

/// An init_module or finit_module call.
pub(super) fn module(e: &abi::Module, uargs: &[u8]) -> Args {
    Args::Module {
        len_or_fd: e.len_or_fd,
        uargs: lossy(uargs),
        flags: e.flags,
    }
}
