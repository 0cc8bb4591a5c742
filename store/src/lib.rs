//! The falco-learn store: profiles and learning windows in sled, and the
//! deterministic YAML export/import of profiles for review in git.
//!
//! Layout: one sled tree per kind of record, behind [`typed::Typed`]
//! wrappers. Keys sort by image, then by entry:
//!
//! | tree | key | value |
//! |---|---|---|
//! | `meta` | `schema` | store schema version |
//! | `profiles` | `repo\0tag\0` | image, digests, learning section (coverage, taint reasons), the review section |
//! | `exec` | `repo\0tag\0<path>` | count, first/last seen, tmpfs and the other drift evidence, lineage (parents, init) |
//! | `outbound` | `repo\0tag\0<proto u8><port u16 BE>` | count, first/last seen, peers |
//! | `writes` | `repo\0tag\0<path or dir/**>` | count, first/last seen |
//! | `dims` | `repo\0tag\0<dimension>\0<entry key>` | the entry, as its dimension stores it (`falco_learn_profiler::dimension`: inbound) |
//! | `containers` | `repo\0tag\0<container id>` | — |
//! | `windows` | window id | [`WindowState`]: where learning stopped |
//!
//! Values are one schema-version byte followed by JSON. Every error names the
//! tree and the key. [`Store::checkpoint`] writes everything that changed
//! since the last checkpoint, plus the window's resume point, in one sled
//! transaction over all trees, so after a crash the store holds the state
//! after some checkpoint: a prefix of what was observed. [`Store::flush`]
//! makes it durable; the CLI calls it on an interval, at the end of a window
//! and on SIGINT/SIGTERM.

pub mod disk;
pub mod export;
pub mod typed;

pub use export::{export_stems, read_profile_file};

use falco_learn_profiler::{
    dir_key, dir_of_key, is_proc_pattern, Dim, Dirty, ExecEntry, ImageRef, Learning, OutboundEntry,
    ProcKey, Profile, ProfileError, Proto, Review, Seen, TaintEntry,
};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use typed::{key_text, Typed};

/// Version of the store layout and of every stored value.
pub const STORE_SCHEMA: u8 = 1;

/// Errors of the store. Every sled or decoding error names tree and key.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "store {dir} is in use by another falco-learn process (still locked after {waited_ms} ms)"
    )]
    Locked { dir: String, waited_ms: u64 },
    #[error("cannot open store {dir}: {source}")]
    Open {
        dir: String,
        #[source]
        source: sled::Error,
    },
    #[error("no store at {dir} (nothing was learned into it; check --store or FALCO_LEARN_STORE)")]
    Missing { dir: String },
    #[error("{dir} cannot be a store: {why}; name a new or empty directory with --store")]
    NotAStore { dir: String, why: String },
    #[error(
        "the store's disk is full ({dir}: no space left while {during}): free space there and \
         run the command again; nothing stored so far is lost"
    )]
    DiskFull { dir: String, during: String },
    #[error(
        "store {dir} is damaged: {detail}. Its files: {files}. falco-learn cannot repair it: move \
         the directory aside (keep it for a bug report), then learn again into a new store or \
         `falco-learn profiles import` the profiles you exported"
    )]
    Corrupt {
        dir: String,
        detail: String,
        files: String,
    },
    #[error("store tree '{tree}', key '{key}': {source}")]
    Sled {
        tree: &'static str,
        key: String,
        #[source]
        source: sled::Error,
    },
    #[error("store tree '{tree}', key '{key}': cannot decode value: {message}")]
    Decode {
        tree: &'static str,
        key: String,
        message: String,
    },
    #[error(
        "store tree '{tree}', key '{key}': schema version {found} is not supported \
         (this falco-learn reads {STORE_SCHEMA})"
    )]
    Schema {
        tree: &'static str,
        key: String,
        found: u8,
    },
    #[error("store transaction ({what}) over trees {trees}: {source}")]
    Transaction {
        what: String,
        trees: String,
        #[source]
        source: sled::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Profile(#[from] ProfileError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where a learning window stands; the resume point of a restarted command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WindowState {
    /// Key: derived by the CLI from the image pattern, source and duration.
    pub id: String,
    /// The `--image` pattern.
    pub image: String,
    /// `live`, or the recording's path.
    pub source: String,
    /// Requested length in ns (0: until the recording ends or Ctrl-C).
    pub duration_ns: u64,
    /// Learning time spent so far, ns (live windows resume with the rest).
    pub elapsed_ns: u64,
    /// Events read from the source so far.
    pub consumed: u64,
    /// Bytes of the recording read so far: a restart continues here.
    pub offset: u64,
    /// Time of the window's first event of the image, ns (0: none yet).
    pub first_ts: u64,
    /// Wall-clock start of the window, ns since the epoch.
    pub started_wall: u64,
    /// The window ran to its end; the same command starts a new one.
    pub done: bool,
    /// Processes flagged by a default rule (their descendants stay unlearned).
    pub flagged_procs: Vec<FlaggedProc>,
    /// CRC-32 of the recording's first `offset` bytes (the bytes read so
    /// far; none for live windows): a restart or a rerun checks that the file
    /// is still the one this window read.
    #[serde(default)]
    pub crc: Option<u32>,
    /// The window ended because its duration was up, not at the end of the
    /// recording.
    #[serde(default)]
    pub ended_by_duration: bool,
    /// Containers whose coverage (started in the window or running) is decided.
    #[serde(default)]
    pub covered: Vec<String>,
    /// Container inits seen (starts counted).
    #[serde(default)]
    pub inits: Vec<FlaggedProc>,
    /// Exec-session processes and their session's root.
    #[serde(default)]
    pub sessions: Vec<(FlaggedProc, FlaggedProc)>,
    /// The learner's window start (ns): containers whose init started before
    /// it were running at start.
    #[serde(default)]
    pub window_start: u64,
}

/// A flagged process as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlaggedProc {
    pub container: String,
    pub pid: u32,
    pub start_ts: u64,
}

impl From<&ProcKey> for FlaggedProc {
    fn from(p: &ProcKey) -> Self {
        FlaggedProc {
            container: p.container.clone(),
            pid: p.pid,
            start_ts: p.start_ts,
        }
    }
}

impl From<&FlaggedProc> for ProcKey {
    fn from(p: &FlaggedProc) -> Self {
        ProcKey {
            container: p.container.clone(),
            pid: p.pid,
            start_ts: p.start_ts,
        }
    }
}

// ------------------------------------------------------------ stored values

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderV1 {
    repository: String,
    tag: String,
    digests: Vec<String>,
    started: u64,
    ended: u64,
    containers: u64,
    events: u64,
    last_new_behaviour: u64,
    tainted: bool,
    flagged_events: u64,
    flagged_descendant_events: u64,
    taint: Vec<TaintV1>,
    // schema-2 profiles (lineage, review, coverage); absent in older values
    #[serde(default)]
    taint_reasons: Vec<String>,
    #[serde(default)]
    starts_observed: u64,
    #[serde(default)]
    running_at_start: u64,
    /// The review section, as the profiler's own serde form.
    #[serde(default)]
    review: Review,
    /// The dimensions with a home of their own (`dimension::DIMS`) this
    /// profile was learned with; absent in values written before them (such a
    /// profile was learned without inbound: not enforced there).
    #[serde(default)]
    dims: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaintV1 {
    time: u64,
    rule: String,
    event: String,
    process: String,
    value: String,
    container: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeenV1 {
    count: u64,
    first: u64,
    last: u64,
}

impl From<&Seen> for SeenV1 {
    fn from(s: &Seen) -> Self {
        SeenV1 {
            count: s.count,
            first: s.first_seen,
            last: s.last_seen,
        }
    }
}

impl From<SeenV1> for Seen {
    fn from(s: SeenV1) -> Self {
        Seen {
            count: s.count,
            first_seen: s.first,
            last_seen: s.last,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecV1 {
    seen: SeenV1,
    tmpfs: bool,
    #[serde(default)]
    memfd: bool,
    #[serde(default)]
    upper_layer: bool,
    // omitted when false, so an older falco-learn still reads the records that lack it
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    other_root: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    host_root: bool,
    // always written; absent in a record an earlier falco-learn wrote, which could not
    // tell a volume's executable from the root's: read as set (allowed from either, as
    // it was), like a profile file of schema 3
    #[serde(default)]
    other_fs: Option<bool>,
    #[serde(default)]
    written: bool,
    #[serde(default)]
    writer: String,
    #[serde(default)]
    parents: Vec<String>,
    #[serde(default)]
    init: bool,
}

impl From<&ExecEntry> for ExecV1 {
    fn from(e: &ExecEntry) -> Self {
        ExecV1 {
            seen: (&e.seen).into(),
            tmpfs: e.tmpfs,
            memfd: e.memfd,
            upper_layer: e.upper_layer,
            other_root: e.other_root,
            host_root: e.host_root,
            other_fs: Some(e.other_fs),
            written: e.written,
            writer: e.writer.clone(),
            parents: e.parents.iter().cloned().collect(),
            init: e.init,
        }
    }
}

impl From<ExecV1> for ExecEntry {
    fn from(v: ExecV1) -> Self {
        ExecEntry {
            seen: v.seen.into(),
            tmpfs: v.tmpfs,
            memfd: v.memfd,
            upper_layer: v.upper_layer,
            other_root: v.other_root,
            host_root: v.host_root,
            other_fs: v.other_fs.unwrap_or(true),
            written: v.written,
            writer: v.writer,
            parents: v.parents.into_iter().collect(),
            init: v.init,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboundV1 {
    seen: SeenV1,
    peers: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Unit {}

fn header_of(p: &Profile) -> HeaderV1 {
    let l = &p.learning;
    HeaderV1 {
        repository: p.image.repository.clone(),
        tag: p.image.tag.clone(),
        digests: p.digests.iter().cloned().collect(),
        started: l.started,
        ended: l.ended,
        containers: l.containers,
        events: l.events,
        last_new_behaviour: l.last_new_behaviour,
        tainted: l.tainted,
        flagged_events: l.flagged_events,
        flagged_descendant_events: l.flagged_descendant_events,
        taint: l
            .taint
            .iter()
            .map(|t| TaintV1 {
                time: t.time,
                rule: t.rule.clone(),
                event: t.event.clone(),
                process: t.process.clone(),
                value: t.value.clone(),
                container: t.container.clone(),
            })
            .collect(),
        taint_reasons: l.taint_reasons.iter().cloned().collect(),
        starts_observed: l.starts_observed,
        running_at_start: l.running_at_start,
        review: p.review.clone(),
        dims: falco_learn_profiler::DIMS
            .iter()
            .filter(|d| d.is_learned(p))
            .map(|d| d.dimension().as_str().to_string())
            .collect(),
    }
}

fn profile_of(h: HeaderV1) -> Profile {
    let mut p = Profile::new(ImageRef::new(h.repository, h.tag));
    p.digests = h.digests.into_iter().collect();
    p.learning = Learning {
        started: h.started,
        ended: h.ended,
        containers: h.containers,
        events: h.events,
        last_new_behaviour: h.last_new_behaviour,
        tainted: h.tainted,
        flagged_events: h.flagged_events,
        flagged_descendant_events: h.flagged_descendant_events,
        taint: h
            .taint
            .into_iter()
            .map(|t| TaintEntry {
                time: t.time,
                rule: t.rule,
                event: t.event,
                process: t.process,
                value: t.value,
                container: t.container,
            })
            .collect(),
        taint_reasons: h.taint_reasons.into_iter().collect(),
        starts_observed: h.starts_observed,
        running_at_start: h.running_at_start,
    };
    p.review = h.review;
    for d in falco_learn_profiler::DIMS {
        d.set_learned(&mut p, h.dims.iter().any(|n| n == d.dimension().as_str()));
    }
    p
}

/// `<dimension>\0<entry key>`: a `dims` key after the image prefix.
fn dim_key(img: &ImageRef, d: &dyn Dim, key: &[u8]) -> Vec<u8> {
    let mut k = image_prefix(img);
    k.extend_from_slice(d.dimension().as_str().as_bytes());
    k.push(0);
    k.extend_from_slice(key);
    k
}

// --------------------------------------------------------------------- keys

/// `repo\0tag\0`: the prefix of every key of an image.
pub fn image_prefix(img: &ImageRef) -> Vec<u8> {
    let mut k = Vec::with_capacity(img.repository.len() + img.tag.len() + 2);
    k.extend_from_slice(img.repository.as_bytes());
    k.push(0);
    k.extend_from_slice(img.tag.as_bytes());
    k.push(0);
    k
}

/// Prefix of a glob entry's key in the writes tree.
const GLOB_KEY: &str = "glob:";

fn glob_key(g: &str) -> String {
    format!("{GLOB_KEY}{g}")
}

fn entry_key(img: &ImageRef, rest: &[u8]) -> Vec<u8> {
    let mut k = image_prefix(img);
    k.extend_from_slice(rest);
    k
}

fn proto_byte(p: Proto) -> u8 {
    match p {
        Proto::Tcp => 1,
        Proto::Udp => 2,
        Proto::Icmp => 3,
        Proto::Raw => 4,
        Proto::Unknown => 0,
    }
}

fn proto_of(b: u8) -> Option<Proto> {
    Some(match b {
        1 => Proto::Tcp,
        2 => Proto::Udp,
        3 => Proto::Icmp,
        4 => Proto::Raw,
        0 => Proto::Unknown,
        _ => return None,
    })
}

fn outbound_key(img: &ImageRef, proto: Proto, port: u16) -> Vec<u8> {
    let [a, b] = port.to_be_bytes();
    entry_key(img, &[proto_byte(proto), a, b])
}

/// Split `repo\0tag\0rest` into the image and the rest.
fn split_key(tree: &'static str, key: &[u8]) -> Result<(ImageRef, Vec<u8>)> {
    let bad = || StoreError::Decode {
        tree,
        key: key_text(key),
        message: "key is not repository\\0tag\\0…".into(),
    };
    let i = key.iter().position(|&b| b == 0).ok_or_else(bad)?;
    let j = key[i + 1..]
        .iter()
        .position(|&b| b == 0)
        .map(|j| i + 1 + j)
        .ok_or_else(bad)?;
    let repo = std::str::from_utf8(&key[..i]).map_err(|_| bad())?;
    let tag = std::str::from_utf8(&key[i + 1..j]).map_err(|_| bad())?;
    Ok((ImageRef::new(repo, tag), key[j + 1..].to_vec()))
}

fn utf8(tree: &'static str, key: &[u8], rest: Vec<u8>) -> Result<String> {
    String::from_utf8(rest).map_err(|_| StoreError::Decode {
        tree,
        key: key_text(key),
        message: "entry is not UTF-8".into(),
    })
}

// -------------------------------------------------------------------- store

/// An error of sled on `tree`/`key`; a full disk says so.
/// Whether sled refused to open a store because another handle holds its lock file (sled
/// 0.34 says so as an `io::ErrorKind::Other` with this text, not as `WouldBlock`).
pub(crate) fn sled_lock_held(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::Other
        && io.to_string().contains("could not acquire lock"))
}

pub(crate) fn sled_error(
    dir: &str,
    tree: &'static str,
    key: String,
    source: sled::Error,
) -> StoreError {
    if disk::sled_disk_full(&source) {
        return StoreError::DiskFull {
            dir: dir.to_string(),
            during: format!("writing tree '{tree}', key '{key}'"),
        };
    }
    StoreError::Sled { tree, key, source }
}

/// An open store directory.
pub struct Store {
    dir: PathBuf,
    dir_text: std::sync::Arc<str>,
    db: sled::Db,
    meta: Typed<u8>,
    profiles: Typed<HeaderV1>,
    exec: Typed<ExecV1>,
    outbound: Typed<OutboundV1>,
    writes: Typed<SeenV1>,
    dims: Typed<serde_json::Value>,
    containers: Typed<Unit>,
    windows: Typed<WindowState>,
    notes: Vec<String>,
}

/// Sled batches for one transaction, one per tree.
#[derive(Default)]
struct Batches {
    profiles: sled::Batch,
    exec: sled::Batch,
    outbound: sled::Batch,
    writes: sled::Batch,
    dims: sled::Batch,
    containers: sled::Batch,
    windows: sled::Batch,
}

impl Store {
    /// Open (or create) the store in `dir`. Fails if another process holds
    /// it. A new directory is made mode 0700 (missing parents 0755 at most)
    /// whatever the umask; an existing one loses group and other access.
    pub fn open(dir: &Path) -> Result<Store> {
        let tightened = disk::prepare(dir)?;
        let mut s = Store::open_prepared(dir)?;
        s.notes.splice(0..0, tightened);
        Ok(s)
    }

    /// Open an existing store (commands that only read): a missing
    /// directory is an error rather than a new, empty store.
    pub fn open_existing(dir: &Path) -> Result<Store> {
        if !dir.join("db").exists() {
            return Err(StoreError::Missing {
                dir: dir.display().to_string(),
            });
        }
        Store::open(dir)
    }

    fn open_prepared(dir: &Path) -> Result<Store> {
        let dir_text: std::sync::Arc<str> = dir.display().to_string().into();
        // sled locks the directory; a store that was just closed (in this process
        // or by a learner that just exited) can hold the lock for a moment while
        // its flusher thread winds down, so a held lock is retried briefly.
        const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
        let started = std::time::Instant::now();
        let mut notes = Vec::new();
        let db = loop {
            // What an interrupted command left and sled cannot get past is
            // removed while no process holds the store (see `disk`).
            notes.extend(disk::clean_leftovers(dir)?);
            match sled::Config::new()
                .path(dir)
                // The CLI flushes explicitly; sled's own timer stays as a backstop.
                .flush_every_ms(Some(1000))
                .open()
            {
                Ok(db) => break db,
                Err(e) if sled_lock_held(&e) => {
                    if started.elapsed() >= LOCK_WAIT {
                        return Err(StoreError::Locked {
                            dir: dir_text.to_string(),
                            waited_ms: started.elapsed().as_millis() as u64,
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(source) if disk::sled_disk_full(&source) => {
                    return Err(StoreError::DiskFull {
                        dir: dir_text.to_string(),
                        during: "opening it (sled writes a snapshot at every open)".into(),
                    })
                }
                Err(sled::Error::Corruption { at, .. }) => {
                    return Err(StoreError::Corrupt {
                        dir: dir_text.to_string(),
                        detail: match at {
                            Some(at) => format!("sled read corrupted data at {at:?}"),
                            None => "sled read corrupted data".into(),
                        },
                        files: disk::listing(dir),
                    })
                }
                Err(source) => {
                    return Err(StoreError::Open {
                        dir: dir_text.to_string(),
                        source,
                    })
                }
            }
        };
        disk::tighten_contents(dir)?;
        let open = |name: &'static str| {
            db.open_tree(name)
                .map(|t| (name, t))
                .map_err(|source| sled_error(&dir_text, name, "(open tree)".into(), source))
        };
        let s = Store {
            dir: dir.to_path_buf(),
            meta: Typed::new(open("meta")?, dir_text.clone()),
            profiles: Typed::new(open("profiles")?, dir_text.clone()),
            exec: Typed::new(open("exec")?, dir_text.clone()),
            outbound: Typed::new(open("outbound")?, dir_text.clone()),
            writes: Typed::new(open("writes")?, dir_text.clone()),
            dims: Typed::new(open("dims")?, dir_text.clone()),
            containers: Typed::new(open("containers")?, dir_text.clone()),
            windows: Typed::new(open("windows")?, dir_text.clone()),
            dir_text,
            db,
            notes,
        };
        match s.meta.get(b"schema")? {
            Some(v) if v != STORE_SCHEMA => {
                return Err(StoreError::Schema {
                    tree: "meta",
                    key: "schema".into(),
                    found: v,
                })
            }
            Some(_) => {}
            None => s.meta.insert(b"schema", &STORE_SCHEMA)?,
        }
        Ok(s)
    }

    /// What opening the store changed on disk (a mode tightened, a leftover
    /// of an interrupted command removed), for the user to read.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Make everything written so far durable (fsync).
    pub fn flush(&self) -> Result<usize> {
        self.db.flush().map_err(|source| {
            if disk::sled_disk_full(&source) {
                return StoreError::DiskFull {
                    dir: self.dir_text.to_string(),
                    during: "flushing the last checkpoint to disk".into(),
                };
            }
            StoreError::Sled {
                tree: "(all)",
                key: "(flush)".into(),
                source,
            }
        })
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        self.db
            .size_on_disk()
            .map_err(|source| sled_error(&self.dir_text, "(all)", "(size)".into(), source))
    }

    /// Images with a stored profile, sorted.
    pub fn images(&self) -> Result<Vec<ImageRef>> {
        let mut v = Vec::new();
        for item in self.profiles.iter_prefix(b"") {
            let (k, _) = item?;
            v.push(split_key("profiles", &k)?.0);
        }
        Ok(v)
    }

    /// One image's profile, assembled from the trees.
    pub fn profile(&self, img: &ImageRef) -> Result<Option<Profile>> {
        let prefix = image_prefix(img);
        let Some(h) = self.profiles.get(&prefix)? else {
            return Ok(None);
        };
        let mut p = profile_of(h);
        for item in self.exec.iter_prefix(&prefix) {
            let (k, v) = item?;
            let path = utf8("exec", &k, k[prefix.len()..].to_vec())?;
            p.exec.insert(path, v.into());
        }
        for item in self.outbound.iter_prefix(&prefix) {
            let (k, v) = item?;
            let rest = &k[prefix.len()..];
            let bad = |message: String| StoreError::Decode {
                tree: "outbound",
                key: key_text(&k),
                message,
            };
            let (proto, port) = match rest {
                [p, a, b] => (
                    proto_of(*p).ok_or_else(|| bad(format!("unknown protocol byte {p}")))?,
                    u16::from_be_bytes([*a, *b]),
                ),
                _ => return Err(bad("entry is not protocol + port".into())),
            };
            let mut peers = std::collections::BTreeSet::new();
            for s in &v.peers {
                peers.insert(
                    s.parse::<ipnet::IpNet>()
                        .map_err(|e| bad(format!("peer '{s}': {e}")))?,
                );
            }
            p.outbound.insert(
                (proto, port),
                OutboundEntry {
                    seen: v.seen.into(),
                    peers,
                },
            );
        }
        for item in self.writes.iter_prefix(&prefix) {
            let (k, v) = item?;
            let path = utf8("writes", &k, k[prefix.len()..].to_vec())?;
            // globs are stored as `glob:<pattern>` (no path starts so); older
            // stores hold /proc/<pid> patterns as plain paths
            if let Some(g) = path.strip_prefix(GLOB_KEY) {
                p.write_globs.insert(g.to_string(), v.into());
            } else if is_proc_pattern(&path) {
                p.write_globs.insert(path, v.into());
            } else {
                match dir_of_key(&path) {
                    Some(d) => p.write_dirs.insert(d.to_string(), v.into()),
                    None => p.write_files.insert(path, v.into()),
                };
            }
        }
        for item in self.dims.iter_prefix(&prefix) {
            let (k, v) = item?;
            let rest = &k[prefix.len()..];
            let bad = |message: String| StoreError::Decode {
                tree: "dims",
                key: key_text(&k),
                message,
            };
            let nul = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| bad("entry is not dimension\\0key".into()))?;
            let name = String::from_utf8_lossy(&rest[..nul]);
            let d = falco_learn_profiler::dimension::dim_named(&name)
                .ok_or_else(|| bad(format!("unknown dimension '{name}'")))?;
            d.load_store_entry(&mut p, &rest[nul + 1..], v)
                .map_err(bad)?;
        }
        Ok(Some(p))
    }

    /// Every stored profile, sorted by image.
    pub fn profiles(&self) -> Result<Vec<Profile>> {
        let mut v = Vec::new();
        for img in self.images()? {
            if let Some(p) = self.profile(&img)? {
                v.push(p);
            }
        }
        Ok(v)
    }

    /// Container ids seen per image (for resuming a learner).
    pub fn containers(&self) -> Result<Vec<(ImageRef, String)>> {
        let mut v = Vec::new();
        for item in self.containers.iter_prefix(b"") {
            let (k, _) = item?;
            let (img, rest) = split_key("containers", &k)?;
            v.push((img, utf8("containers", &k, rest)?));
        }
        Ok(v)
    }

    pub fn window(&self, id: &str) -> Result<Option<WindowState>> {
        self.windows.get(id.as_bytes())
    }

    pub fn windows(&self) -> Result<Vec<WindowState>> {
        self.windows
            .iter_prefix(b"")
            .map(|r| r.map(|(_, v)| v))
            .collect()
    }

    fn commit(&self, what: String, b: Batches) -> Result<()> {
        let trees = [
            self.profiles.tree(),
            self.exec.tree(),
            self.outbound.tree(),
            self.writes.tree(),
            self.dims.tree(),
            self.containers.tree(),
            self.windows.tree(),
        ];
        let batches = [
            &b.profiles,
            &b.exec,
            &b.outbound,
            &b.writes,
            &b.dims,
            &b.containers,
            &b.windows,
        ];
        let r: std::result::Result<(), TransactionError<()>> = trees[..].transaction(|views| {
            for (view, batch) in views.iter().zip(batches) {
                view.apply_batch(batch)?;
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        r.map_err(|e| {
            let source = match e {
                TransactionError::Storage(s) => s,
                TransactionError::Abort(()) => sled::Error::ReportableBug("aborted".into()),
            };
            if disk::sled_disk_full(&source) {
                return StoreError::DiskFull {
                    dir: self.dir_text.to_string(),
                    during: format!("writing the {what}"),
                };
            }
            StoreError::Transaction {
                what,
                trees: "profiles, exec, outbound, writes, dims, containers, windows".into(),
                source,
            }
        })
    }

    /// Write what changed (per image, from `profiles`) and the window's
    /// state in one transaction. Not yet durable: call [`Store::flush`].
    pub fn checkpoint(
        &self,
        profiles: &BTreeMap<ImageRef, Profile>,
        changes: &BTreeMap<ImageRef, Dirty>,
        window: Option<&WindowState>,
    ) -> Result<()> {
        let mut b = Batches::default();
        for (img, d) in changes {
            let Some(p) = profiles.get(img) else { continue };
            if d.header {
                b.profiles
                    .insert(image_prefix(img), typed::encode(&header_of(p))?);
            }
            for path in &d.exec {
                let k = entry_key(img, path.as_bytes());
                match p.exec.get(path) {
                    Some(e) => b.exec.insert(k, typed::encode(&ExecV1::from(e))?),
                    None => b.exec.remove(k),
                }
            }
            for (proto, port) in &d.outbound {
                let k = outbound_key(img, *proto, *port);
                match p.outbound.get(&(*proto, *port)) {
                    Some(e) => b.outbound.insert(k, typed::encode(&outbound_v1(e))?),
                    None => b.outbound.remove(k),
                }
            }
            for path in &d.write_files {
                let k = entry_key(img, path.as_bytes());
                match p.write_files.get(path) {
                    Some(s) => b.writes.insert(k, typed::encode(&SeenV1::from(s))?),
                    None => b.writes.remove(k),
                }
            }
            for g in &d.write_globs {
                let k = entry_key(img, glob_key(g).as_bytes());
                match p.write_globs.get(g) {
                    Some(s) => b.writes.insert(k, typed::encode(&SeenV1::from(s))?),
                    None => b.writes.remove(k),
                }
            }
            for dir in &d.write_dirs {
                let k = entry_key(img, dir_key(dir).as_bytes());
                match p.write_dirs.get(dir) {
                    Some(s) => b.writes.insert(k, typed::encode(&SeenV1::from(s))?),
                    None => b.writes.remove(k),
                }
            }
            for (dim, key) in &d.dims {
                let Some(x) = falco_learn_profiler::dimension::dim(*dim) else {
                    continue;
                };
                let k = dim_key(img, x, key);
                match x.store_entry(p, key) {
                    Some(v) => b.dims.insert(k, typed::encode(&v)?),
                    None => b.dims.remove(k),
                }
            }
            for id in &d.containers {
                b.containers
                    .insert(entry_key(img, id.as_bytes()), typed::encode(&Unit {})?);
            }
        }
        if let Some(w) = window {
            b.windows.insert(w.id.as_bytes(), typed::encode(w)?);
        }
        let what = match window {
            Some(w) => format!("checkpoint of window '{}'", w.id),
            None => "checkpoint".into(),
        };
        self.commit(what, b)
    }

    /// Replace an image's profile with `p` (import, merge), atomically.
    pub fn put_profile(&self, p: &Profile) -> Result<()> {
        let mut b = Batches::default();
        self.clear_batches(&p.image, &mut b)?;
        b.profiles
            .insert(image_prefix(&p.image), typed::encode(&header_of(p))?);
        for (path, e) in &p.exec {
            b.exec.insert(
                entry_key(&p.image, path.as_bytes()),
                typed::encode(&ExecV1::from(e))?,
            );
        }
        for ((proto, port), e) in &p.outbound {
            b.outbound.insert(
                outbound_key(&p.image, *proto, *port),
                typed::encode(&outbound_v1(e))?,
            );
        }
        for (path, s) in &p.write_files {
            b.writes.insert(
                entry_key(&p.image, path.as_bytes()),
                typed::encode(&SeenV1::from(s))?,
            );
        }
        for (g, s) in &p.write_globs {
            b.writes.insert(
                entry_key(&p.image, glob_key(g).as_bytes()),
                typed::encode(&SeenV1::from(s))?,
            );
        }
        for (dir, s) in &p.write_dirs {
            b.writes.insert(
                entry_key(&p.image, dir_key(dir).as_bytes()),
                typed::encode(&SeenV1::from(s))?,
            );
        }
        for d in falco_learn_profiler::DIMS {
            for (key, v) in d.store_entries(p) {
                b.dims
                    .insert(dim_key(&p.image, *d, &key), typed::encode(&v)?);
            }
        }
        self.commit(format!("replace profile of {}", p.image), b)
    }

    /// Remove an image's profile (and its container ids); whether it existed.
    pub fn remove_profile(&self, img: &ImageRef) -> Result<bool> {
        let existed = self.profiles.get(&image_prefix(img))?.is_some();
        let mut b = Batches::default();
        self.clear_batches(img, &mut b)?;
        for item in self.containers.iter_prefix(&image_prefix(img)) {
            b.containers.remove(item?.0);
        }
        self.commit(format!("remove profile of {img}"), b)?;
        Ok(existed)
    }

    fn clear_batches(&self, img: &ImageRef, b: &mut Batches) -> Result<()> {
        let prefix = image_prefix(img);
        b.profiles.remove(prefix.clone());
        for item in self.exec.iter_prefix(&prefix) {
            b.exec.remove(item?.0);
        }
        for item in self.outbound.iter_prefix(&prefix) {
            b.outbound.remove(item?.0);
        }
        for item in self.writes.iter_prefix(&prefix) {
            b.writes.remove(item?.0);
        }
        for item in self.dims.iter_prefix(&prefix) {
            b.dims.remove(item?.0);
        }
        Ok(())
    }
}

fn outbound_v1(e: &OutboundEntry) -> OutboundV1 {
    OutboundV1 {
        seen: (&e.seen).into(),
        peers: e.peers.iter().map(|n| n.to_string()).collect(),
    }
}

#[cfg(test)]
mod tests;
