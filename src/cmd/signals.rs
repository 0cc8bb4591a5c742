//! Process signals shared by the long-running commands (`learn`, `record`,
//! `run`): SIGINT/SIGTERM ask to stop (keeping what was done), SIGHUP asks to
//! reload. Handlers only set atomics; the command loops poll them.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
static HUP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

extern "C" fn on_hup(_: libc::c_int) {
    HUP.store(true, Ordering::SeqCst);
}

/// Catch SIGINT and SIGTERM (and SIGHUP when `reload` is set).
pub fn install(reload: bool) {
    // SAFETY: the handlers only store to atomics, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_stop as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_stop as *const () as libc::sighandler_t);
        if reload {
            libc::signal(libc::SIGHUP, on_hup as *const () as libc::sighandler_t);
        }
    }
}

/// SIGINT or SIGTERM arrived.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// SIGHUP arrived since the last call.
pub fn take_reload() -> bool {
    HUP.swap(false, Ordering::SeqCst)
}
