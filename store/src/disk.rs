//! The store directory on disk: its mode, what may be in it, and the
//! leftovers of an interrupted command that sled 0.34 cannot get past.
//!
//! sled writes a snapshot of its page table at every open (when its log moved
//! since the last one) as `snap.<lsn>.generating`, then renames it to
//! `snap.<lsn>`. An open that is killed, or runs out of space, before the
//! rename leaves the `.generating` file behind, and sled reads the
//! lexicographically greatest `snap.*` file at the next open: a 0-byte or torn
//! `.generating` makes every later open fail with "Read corrupted data". Such
//! a file is never valid (the previous snapshot, or the log from its start,
//! holds everything it would have), so it is removed before sled opens the
//! store, and only while no other process holds the store (sled's lock on
//! `db` is probed with the same `flock`).
//!
//! sled also writes its `conf` file (two writes, no fsync) only when it creates
//! the store, before `db` exists: a store whose `db` is missing or empty holds
//! nothing yet, so its `conf` and snapshots are removed and sled writes them
//! again.

use crate::{Result, StoreError};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// Mode of the store directory (and of directories sled makes in it).
pub const DIR_MODE: u32 = 0o700;
/// Mode of the files sled writes in the store directory.
pub const FILE_MODE: u32 = 0o600;

/// Names sled 0.34 puts in a store directory (and `lost+found`, for a store
/// that is the root of a file system of its own).
fn is_store_entry(name: &str) -> bool {
    matches!(name, "db" | "conf" | "blobs" | "lost+found") || name.starts_with("snap.")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Whether an I/O error means the file system is full (or the quota is).
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
        || matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Whether a sled error is a full disk. sled keeps the error kind when it
/// hands an error from its flusher thread to a later call.
pub fn sled_disk_full(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(io) => is_disk_full(io),
        _ => false,
    }
}

/// Make `dir` ready to be a store: create it (mode 0700, missing parents 0755
/// at most), or check that an existing one is a directory holding nothing
/// but a store, and take group and other access away from it. Returns a note
/// when an existing directory's mode was tightened.
pub fn prepare(dir: &Path) -> Result<Option<String>> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)
                    .map_err(io(parent))?;
            }
            // The mode argument is filtered by the umask (0700 & !umask):
            // never more than 0700, and set exactly below.
            match std::fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
                Ok(()) => {}
                // created meanwhile by another process: check it as existing
                Err(e) if e.kind() == ErrorKind::AlreadyExists => return prepare(dir),
                Err(e) => return Err(io(dir)(e)),
            }
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
                .map_err(io(dir))?;
            Ok(None)
        }
        Err(e) => Err(io(dir)(e)),
        Ok(_) => {
            // follow a symlink to the directory it names
            let meta = std::fs::metadata(dir).map_err(io(dir))?;
            if !meta.is_dir() {
                return Err(StoreError::NotAStore {
                    dir: dir.display().to_string(),
                    why: "it is not a directory".into(),
                });
            }
            let mut others = Vec::new();
            for entry in std::fs::read_dir(dir).map_err(io(dir))? {
                let entry = entry.map_err(io(dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !is_store_entry(&name) {
                    others.push(name);
                }
            }
            if !others.is_empty() && !dir.join("db").exists() {
                others.sort();
                let total = others.len();
                others.truncate(5);
                return Err(StoreError::NotAStore {
                    dir: dir.display().to_string(),
                    why: format!(
                        "it holds files a store does not ({}{})",
                        others.join(", "),
                        if total > 5 {
                            format!(" and {} more", total - 5)
                        } else {
                            String::new()
                        }
                    ),
                });
            }
            let mode = meta.mode() & 0o7777;
            if mode & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
                    .map_err(io(dir))?;
                return Ok(Some(format!(
                    "store {}: mode was {mode:04o}, now {DIR_MODE:04o} (it holds the behaviour \
                     of every container learned)",
                    dir.display()
                )));
            }
            Ok(None)
        }
    }
}

/// Whether no process holds sled's lock on `dir/db` (probed with the same
/// non-blocking exclusive `flock` sled takes, and released at once). A
/// missing `db` is free.
fn unlocked(dir: &Path) -> Result<bool> {
    let db = dir.join("db");
    let f = match std::fs::File::open(&db) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(io(&db)(e)),
    };
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    // closing `f` releases the lock
    Ok(r == 0)
}

/// Remove what an interrupted command left that sled would choke on (see the
/// module documentation), when no process holds the store. Returns a note per
/// file removed.
pub fn clean_leftovers(dir: &Path) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    if !dir.is_dir() || !unlocked(dir)? {
        return Ok(notes);
    }
    let empty_db = match std::fs::metadata(dir.join("db")) {
        Ok(m) => m.len() == 0,
        Err(e) if e.kind() == ErrorKind::NotFound => true,
        Err(e) => return Err(io(&dir.join("db"))(e)),
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()
        .map_err(io(dir))?;
    names.sort();
    for name in names {
        let why = if name.starts_with("snap.") && name.ends_with(".generating") {
            "an unfinished snapshot left by an interrupted command (never valid)"
        } else if empty_db && (name == "conf" || name.starts_with("snap.")) {
            "written when the store was created, which was interrupted before anything was stored"
        } else {
            continue;
        };
        let path = dir.join(&name);
        std::fs::remove_file(&path).map_err(io(&path))?;
        notes.push(format!("store {}: removed {name}: {why}", dir.display()));
    }
    Ok(notes)
}

/// Take group and other access away from everything sled made in `dir`
/// (sled creates its files with the process's umask; the directory's own
/// 0700 already keeps them private, this keeps them so if it is widened).
pub fn tighten_contents(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            // removed meanwhile (an old snapshot sled just replaced)
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&path)(e)),
        };
        let want = if meta.is_dir() {
            DIR_MODE
        } else if meta.is_file() {
            FILE_MODE
        } else {
            continue;
        };
        if meta.mode() & 0o077 != 0 {
            match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(want)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
        }
    }
    Ok(())
}

/// `name size, …` of the files in `dir`, for error messages.
pub fn listing(dir: &Path) -> String {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return "(cannot list the directory)".into();
    };
    let mut v: Vec<String> = rd
        .flatten()
        .map(|e| {
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            format!("{} ({size} bytes)", e.file_name().to_string_lossy())
        })
        .collect();
    v.sort();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
