//! Kernel-side filters of opens and outbound traffic: what the loaded rules need, and what
//! each container's profile allows.
//!
//! **Network traffic** (enforce modes), both sides of a connection:
//! - outbound: a successful `connect`, or a `sendto`/`sendmsg` to an explicit address from
//!   a client's UDP socket, whose container's profile allows the protocol, remote port and
//!   peer ([`ProfileFilter::set_outbound`], map `PROFILE_OUTBOUND`);
//! - inbound: an accepted connection, or a UDP reply from the server's port, whose
//!   container's profile serves the protocol and local port ([`ProfileFilter::set_inbound`],
//!   map `PROFILE_INBOUND`);
//!
//! is dropped in the kernel when its side and protocol are ones the rules bound
//! ([`NetFilterPlan`], maps `NET_FILTER` and `RULE_PORTS`) and its (protocol, port) is not one
//! they need: counted as `profile_filtered` of its kind. IPv4-mapped IPv6 peers and other
//! protocols are always reported.
//!
//! Two kinds of drop happen in the kernel, at the exit of `open`/`openat`/`openat2`/`creat`,
//! always decided on the path of the file the kernel opened (symlinks, `..` and relative
//! paths resolved), never on the string the process passed:
//!
//! - **Read-only opens** no loaded rule can match (`OpenFilter` over the maps `READ_FILTER`,
//!   `OPEN_PREFIXES` and `LEAF_NAMES`): counted as `filtered`.
//! - **Opens for writing** that no loaded rule can match (`OpenFilter` over `WRITE_FILTER`,
//!   `WRITE_PREFIXES` and `LEAF_NAMES`) *and* that the container's profile allows
//!   ([`ProfileFilter`] over `FILTER_CGROUPS` and `PROFILE_WRITES`): counted as
//!   `profile_filtered`. Without a profile, or with the write filter off (a rule about
//!   writes that reduces neither to path prefixes nor to file names), every write-open is
//!   reported.
//!
//! A write-open of a path the kernel could not report whole (truncated, or detached: memfd,
//! unlinked) is never dropped; nor is a read-only open of a truncated path or a memfd
//! (rendered `memfd:x` while its bytes are `/memfd:x`), nor an open whose passed path is not
//! canonical (relative, or holding `//`, `/.`, `./`) while a rule looks at `fd.nameraw` (the
//! `noncanonical` switch).
//!
//! The prefixes come from `falco_learn_rules::kernel_plan`; the profile entries from the
//! enforcer (exact files and covering directories, as raw bytes). Changes are made so that
//! no moment drops what either the old or the new state needs: new entries in first, then
//! the switches, then old entries out.
//!
//! **The verdict cache.** A drop is remembered per opened file in the kernel
//! (`OPEN_VERDICTS`, see probe.bpf.c), so the next open of the same file skips the path
//! walk. Every change made here ends a generation of that cache ([`VerdictGen`]): after it,
//! no verdict decided under the old filters or profiles is used again.

use crate::ProbeError;
use ahash::{AHashMap, AHashSet};
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap, MapData};
use aya::Ebpf;
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes of a rule prefix the kernel compares (`struct prefix_key`).
pub const PREFIX_BYTES: usize = 64;
/// Bytes of a path the kernel compares against a profile's entries
/// (`FL_PROFILE_PATH`): longer paths are matched only by directory entries.
pub const PROFILE_PATH_BYTES: usize = 248;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> ProbeError {
    move |e| ProbeError::Map {
        map,
        err: e.to_string(),
    }
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, ProbeError> {
    ebpf.take_map(name).ok_or(ProbeError::Map {
        map: name,
        err: "missing from the object".into(),
    })
}

fn prefix_key(p: &str) -> Key<[u8; PREFIX_BYTES]> {
    let bytes = p.as_bytes();
    let n = bytes.len().min(PREFIX_BYTES);
    let mut data = [0u8; PREFIX_BYTES];
    data[..n].copy_from_slice(&bytes[..n]);
    Key::new((n * 8) as u32, data)
}

/// Bytes of a file name the kernel compares (`struct name_key`, NUL included).
pub const NAME_BYTES: usize = 64;

/// What one open filter reports, from the loaded rules' plan
/// (`falco_learn_rules::kernel_plan::OpenPlan`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenFilterPlan {
    /// Path prefixes (at most [`PREFIX_BYTES`] compared); `None`: every open of the kind
    /// is reported (the filter is off).
    pub prefixes: Option<Vec<String>>,
    /// File names reported wherever they are (1 to 63 bytes, no `/`).
    pub names: Vec<String>,
    /// File-name endings reported wherever they are (1 to 63 bytes, no `/`; at most 4
    /// distinct lengths).
    pub suffixes: Vec<String>,
    /// Also report every open whose passed path is not canonical.
    pub noncanonical: bool,
}

impl OpenFilterPlan {
    /// The filter off: every open of the kind is reported.
    pub fn off() -> OpenFilterPlan {
        OpenFilterPlan::default()
    }
}

/// `LEAF_NAMES` (whole file names) or `LEAF_SUFFIXES` (file-name endings) whose opens some
/// rule may match wherever they are, with a bit per open filter (1: read-only opens, 2: the
/// others).
struct LeafSet {
    map: HashMap<MapData, [u8; NAME_BYTES], u8>,
    name: &'static str,
    /// Names per bit (index 0: bit 1, index 1: bit 2).
    held: [AHashSet<String>; 2],
}

fn name_key(n: &str) -> Option<[u8; NAME_BYTES]> {
    let b = n.as_bytes();
    if b.is_empty() || b.len() >= NAME_BYTES || b.contains(&0) || b.contains(&b'/') {
        return None;
    }
    let mut k = [0u8; NAME_BYTES];
    k[..b.len()].copy_from_slice(b);
    Some(k)
}

impl LeafSet {
    fn new(ebpf: &mut Ebpf, name: &'static str) -> Result<LeafSet, ProbeError> {
        Ok(LeafSet {
            map: HashMap::try_from(take(ebpf, name)?).map_err(map_err(name))?,
            name,
            held: Default::default(),
        })
    }

    fn value(&self, n: &str) -> u8 {
        u8::from(self.held[0].contains(n)) | (u8::from(self.held[1].contains(n)) << 1)
    }

    /// Add `names` under `bit` (1 or 2), keeping what is there.
    fn add(&mut self, bit: u8, names: &[String]) -> Result<(), ProbeError> {
        let i = usize::from(bit >> 1);
        for n in names {
            let k = name_key(n).ok_or_else(|| ProbeError::Map {
                map: self.name,
                err: format!("{n:?}: not a file name of 1 to {} bytes", NAME_BYTES - 1),
            })?;
            self.held[i].insert(n.clone());
            let v = self.value(n);
            self.map.insert(k, v, 0).map_err(|e| ProbeError::Map {
                map: self.name,
                err: format!("{n}: {e}"),
            })?;
        }
        Ok(())
    }

    /// Keep only `names` under `bit`.
    fn retain(&mut self, bit: u8, names: &[String]) {
        let i = usize::from(bit >> 1);
        let gone: Vec<String> = self.held[i]
            .iter()
            .filter(|n| !names.contains(n))
            .cloned()
            .collect();
        for n in gone {
            self.held[i].remove(&n);
            let Some(k) = name_key(&n) else { continue };
            match self.value(&n) {
                0 => {
                    let _ = self.map.remove(&k);
                }
                v => {
                    let _ = self.map.insert(k, v, 0);
                }
            }
        }
    }
}

/// Both leaf sets, shared by the two open filters.
pub(crate) struct LeafNames {
    names: LeafSet,
    suffixes: LeafSet,
}

impl LeafNames {
    pub(crate) fn new(ebpf: &mut Ebpf) -> Result<LeafNames, ProbeError> {
        Ok(LeafNames {
            names: LeafSet::new(ebpf, "LEAF_NAMES")?,
            suffixes: LeafSet::new(ebpf, "LEAF_SUFFIXES")?,
        })
    }
}

/// The filter's `suffix_lens`: up to four distinct ending lengths, a byte each.
fn suffix_lens(suffixes: &[String]) -> Result<u32, ProbeError> {
    let mut lens: Vec<usize> = suffixes.iter().map(String::len).collect();
    lens.sort_unstable();
    lens.dedup();
    if lens.len() > 4 || lens.iter().any(|l| *l == 0 || *l >= NAME_BYTES) {
        return Err(ProbeError::Map {
            map: "LEAF_SUFFIXES",
            err: format!(
                "endings of lengths {lens:?}: the kernel compares at most 4 distinct lengths of 1 to {} bytes",
                NAME_BYTES - 1
            ),
        });
    }
    Ok(lens
        .iter()
        .enumerate()
        .fold(0, |acc, (i, l)| acc | ((*l as u32) << (8 * i))))
}

/// Why the kernel's verdict cache of opens is off (`VERDICT_GEN[2]`). While it is, every
/// open the filters drop walks its path (~300 ns): nothing is missed, it costs more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictCacheOff {
    /// Process `tgid` submitted an io_uring rename (`IORING_OP_RENAMEAT`). An io-wq worker
    /// makes it, where no syscall ends a generation of the cache: the kernel turned the
    /// cache off before the rename could run, for as long as the probe runs.
    IoUringRename { tgid: u32 },
    /// This kernel has io_uring but its submissions cannot be watched (no submission
    /// tracepoint with an `opcode` field, or it did not attach): off from the start.
    IoUringUnwatched,
    /// Process `pid` had an io_uring instance when the probe started: a rename it queued
    /// before (behind a request that waits) would run unseen. Off from the start.
    IoUringBeforeStart { pid: u32 },
}

/// `VERDICT_GEN[2]`: `tgid | 1 << 32` set by the kernel, these bits by userspace.
const OFF_UNWATCHED: u64 = 1 << 33;
const OFF_BEFORE_START: u64 = 1 << 34;

impl VerdictCacheOff {
    fn from_slot(v: u64) -> Option<VerdictCacheOff> {
        if v & OFF_UNWATCHED != 0 {
            Some(VerdictCacheOff::IoUringUnwatched)
        } else if v & OFF_BEFORE_START != 0 {
            Some(VerdictCacheOff::IoUringBeforeStart { pid: v as u32 })
        } else if v >> 32 != 0 {
            Some(VerdictCacheOff::IoUringRename { tgid: v as u32 })
        } else {
            None
        }
    }
}

impl std::fmt::Display for VerdictCacheOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerdictCacheOff::IoUringRename { tgid } => {
                let comm = std::fs::read_to_string(format!("/proc/{tgid}/comm"))
                    .map(|c| c.trim_end().to_string())
                    .unwrap_or_else(|_| "gone".into());
                write!(
                    f,
                    "process {tgid} ({comm}) submitted an io_uring rename (IORING_OP_RENAMEAT), \
                     which no syscall hook sees end"
                )
            }
            VerdictCacheOff::IoUringUnwatched => {
                f.write_str("this kernel's io_uring submissions cannot be watched")
            }
            VerdictCacheOff::IoUringBeforeStart { pid } => write!(
                f,
                "process {pid} had an io_uring instance before the probe started (a rename \
                 it queued then would run unseen)"
            ),
        }
    }
}

/// Userspace's generation of the kernel's verdict cache of opens (`VERDICT_GEN[1]`; the
/// kernel owns `[0]`, which renames and mount changes bump) and its off switch (`[2]`).
pub struct VerdictGen(Mutex<Array<MapData, u64>>);

impl VerdictGen {
    pub(crate) fn new(ebpf: &mut Ebpf) -> Result<Arc<VerdictGen>, ProbeError> {
        let a = Array::try_from(take(ebpf, "VERDICT_GEN")?).map_err(map_err("VERDICT_GEN"))?;
        Ok(Arc::new(VerdictGen(Mutex::new(a))))
    }

    /// End the generation: every verdict kept so far is stale.
    pub(crate) fn bump(&self) -> Result<(), ProbeError> {
        let mut a = lock(&self.0);
        let g = a.get(&1, 0).map_err(map_err("VERDICT_GEN"))?;
        a.set(1, g.wrapping_add(1), 0)
            .map_err(map_err("VERDICT_GEN"))
    }

    /// Whether the cache is off, and why (`None`: on, or the map unreadable).
    pub fn off(&self) -> Option<VerdictCacheOff> {
        let v = lock(&self.0).get(&2, 0).ok()?;
        VerdictCacheOff::from_slot(v)
    }

    /// Turn the cache off for good: io_uring's renames cannot be watched.
    pub(crate) fn turn_off_unwatched(&self) -> Result<(), ProbeError> {
        self.turn_off(OFF_UNWATCHED)
    }

    /// Turn the cache off for good: process `pid` had an io_uring instance at the start.
    pub(crate) fn turn_off_before_start(&self, pid: u32) -> Result<(), ProbeError> {
        self.turn_off(OFF_BEFORE_START | u64::from(pid))
    }

    fn turn_off(&self, bits: u64) -> Result<(), ProbeError> {
        let mut a = lock(&self.0);
        let v = a.get(&2, 0).map_err(map_err("VERDICT_GEN"))?;
        if v != 0 {
            return Ok(()); // off already: the first cause stays
        }
        a.set(2, bits, 0).map_err(map_err("VERDICT_GEN"))
    }
}

/// One of the two open filters derived from the loaded rules: the path prefixes whose opens
/// some rule may match, and the switches `{on, noncanonical, names, suffix_lens}`.
pub(crate) struct OpenFilter {
    trie: LpmTrie<MapData, [u8; PREFIX_BYTES], u8>,
    /// `struct read_filter { u32 on; u32 noncanonical; u32 names; u32 suffix_lens; }`
    flags: Array<MapData, [u32; 4]>,
    /// This filter's bit in `LEAF_NAMES` and `LEAF_SUFFIXES`.
    bit: u8,
    trie_name: &'static str,
    flags_name: &'static str,
    /// What the trie holds.
    prefixes: Vec<String>,
    gen: Arc<VerdictGen>,
}

impl OpenFilter {
    pub(crate) fn new(
        ebpf: &mut Ebpf,
        trie_name: &'static str,
        flags_name: &'static str,
        bit: u8,
        gen: Arc<VerdictGen>,
    ) -> Result<OpenFilter, ProbeError> {
        Ok(OpenFilter {
            trie: LpmTrie::try_from(take(ebpf, trie_name)?).map_err(map_err(trie_name))?,
            flags: Array::try_from(take(ebpf, flags_name)?).map_err(map_err(flags_name))?,
            bit,
            trie_name,
            flags_name,
            prefixes: Vec::new(),
            gen,
        })
    }

    /// Make `plan` what the kernel reports. On an error (a map full, a name the key cannot
    /// hold) the filter is turned off: every open of the kind is reported, since the maps
    /// then hold neither the old plan nor the new one.
    pub(crate) fn set(
        &mut self,
        plan: &OpenFilterPlan,
        leaf: &Mutex<LeafNames>,
    ) -> Result<(), ProbeError> {
        let r = self.try_set(plan, leaf);
        if r.is_err() {
            let _ = self.flags.set(0, [0, 0, 0, 0], 0);
            let _ = self.gen.bump();
        }
        r
    }

    fn try_set(
        &mut self,
        plan: &OpenFilterPlan,
        leaf: &Mutex<LeafNames>,
    ) -> Result<(), ProbeError> {
        let on = plan.prefixes.is_some();
        let want: Vec<String> = plan.prefixes.clone().unwrap_or_default();
        let (names, suffixes): (&[String], &[String]) = if on {
            (&plan.names, &plan.suffixes)
        } else {
            (&[], &[])
        };
        let lens = suffix_lens(suffixes)?;
        {
            let mut l = lock(leaf);
            l.names.add(self.bit, names)?;
            l.suffixes.add(self.bit, suffixes)?;
        }
        let missing: Vec<String> = want
            .iter()
            .filter(|p| !self.prefixes.contains(p))
            .cloned()
            .collect();
        for p in missing {
            self.trie
                .insert(&prefix_key(&p), 1, 0)
                .map_err(|e| ProbeError::Map {
                    map: self.trie_name,
                    err: format!("{p}: {e}"),
                })?;
            // held from now on, so that a later plan removes it
            self.prefixes.push(p);
        }
        self.flags
            .set(
                0,
                [
                    u32::from(on),
                    u32::from(plan.noncanonical),
                    u32::from(!names.is_empty()),
                    lens,
                ],
                0,
            )
            .map_err(map_err(self.flags_name))?;
        {
            let mut l = lock(leaf);
            l.names.retain(self.bit, names);
            l.suffixes.retain(self.bit, suffixes);
        }
        for p in self.prefixes.iter().filter(|p| !want.contains(p)) {
            // already gone is fine: the goal is absence
            let _ = self.trie.remove(&prefix_key(p));
        }
        self.prefixes = want;
        self.gen.bump()
    }
}

/// What one profile allows to be opened for writing, as the raw bytes of paths
/// (what the kernel reports; see `falco_learn_event::path::raw_bytes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteAllow {
    /// Exact files.
    pub files: Vec<Vec<u8>>,
    /// Directories: each covers itself and everything below it.
    pub dirs: Vec<Vec<u8>>,
}

/// A `PROFILE_WRITES` key: profile number (little-endian, as the kernel's `u32`), then the
/// path bytes; `prefixlen` in bits over both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Entry {
    profile: u32,
    /// Path bytes, then the terminator (`\0` for a file, `/` for a directory).
    len: usize,
    data: [u8; PROFILE_PATH_BYTES],
}

impl Entry {
    /// `None` when the entry does not fit the kernel's key (the event then goes to
    /// userspace, which decides).
    fn new(profile: u32, path: &[u8], terminator: u8) -> Option<Entry> {
        if path.is_empty() || path.len() + 1 > PROFILE_PATH_BYTES || path.contains(&0) {
            return None;
        }
        let mut data = [0u8; PROFILE_PATH_BYTES];
        data[..path.len()].copy_from_slice(path);
        data[path.len()] = terminator;
        Some(Entry {
            profile,
            len: path.len() + 1,
            data,
        })
    }

    fn key(&self) -> Key<[u8; 4 + PROFILE_PATH_BYTES]> {
        let mut k = [0u8; 4 + PROFILE_PATH_BYTES];
        k[..4].copy_from_slice(&self.profile.to_le_bytes());
        k[4..].copy_from_slice(&self.data);
        Key::new(((4 + self.len) * 8) as u32, k)
    }
}

/// The entries of one profile: files as `path\0`; directories as `dir\0` (the directory
/// itself) and `dir/` (below it). `/` itself covers every path.
fn entries(profile: u32, allow: &WriteAllow) -> AHashSet<Entry> {
    let mut out = AHashSet::new();
    for f in &allow.files {
        out.extend(Entry::new(profile, f, 0));
    }
    for d in &allow.dirs {
        let d = d.strip_suffix(b"/").unwrap_or(d);
        if d.is_empty() {
            // the root directory: every path starts with `/`
            let mut data = [0u8; PROFILE_PATH_BYTES];
            data[0] = b'/';
            out.insert(Entry {
                profile,
                len: 1,
                data,
            });
            continue;
        }
        out.extend(Entry::new(profile, d, 0));
        out.extend(Entry::new(profile, d, b'/'));
    }
    out
}

/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u8 = 6;
/// `IPPROTO_UDP`.
pub const IPPROTO_UDP: u8 = 17;

/// What the loaded rules need of one side's traffic (`falco_learn_rules::net_plan::NetPlan`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetSidePlan {
    /// Protocols ([`IPPROTO_TCP`], [`IPPROTO_UDP`]) whose events of the side may be dropped:
    /// those the rules bound to `needed`. Empty: nothing of the side is dropped.
    pub protocols: Vec<u8>,
    /// (protocol, port) pairs some rule may match: never dropped.
    pub needed: Vec<(u8, u16)>,
}

/// What the loaded rules need of network traffic, as the kernel holds it (`NET_FILTER`,
/// `RULE_PORTS`): the client's side (outbound, the remote port) and the server's side
/// (inbound, the local port).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetFilterPlan {
    pub outbound: NetSidePlan,
    pub inbound: NetSidePlan,
}

impl NetFilterPlan {
    /// Nothing dropped.
    pub fn off() -> NetFilterPlan {
        NetFilterPlan::default()
    }
}

/// `RULE_PORTS`'s side bit for the server's side (`FL_NET_SERVER`).
const NET_SERVER: u32 = 1 << 24;

fn rule_port_key(server: bool, proto: u8, port: u16) -> u32 {
    (if server { NET_SERVER } else { 0 }) | (proto as u32) << 16 | port as u32
}

/// The kernel's network filter of the loaded rules (`NET_FILTER`, `RULE_PORTS`).
pub(crate) struct NetFilter {
    switch: Array<MapData, u32>,
    ports: HashMap<MapData, u32, u8>,
    have: AHashSet<u32>,
}

impl NetFilter {
    pub(crate) fn new(ebpf: &mut Ebpf) -> Result<NetFilter, ProbeError> {
        Ok(NetFilter {
            switch: Array::try_from(take(ebpf, "NET_FILTER")?).map_err(map_err("NET_FILTER"))?,
            ports: HashMap::try_from(take(ebpf, "RULE_PORTS")?).map_err(map_err("RULE_PORTS"))?,
            have: AHashSet::new(),
        })
    }

    /// Make `plan` the filter: the pairs it needs in first, then the switch, then the pairs
    /// no longer needed out, so that no moment drops what the old or the new plan needs. On
    /// an error (a map full) the switch is turned off: nothing is dropped, since the maps
    /// then hold neither plan whole.
    pub(crate) fn set(&mut self, plan: &NetFilterPlan) -> Result<(), ProbeError> {
        let r = self.try_set(plan);
        if r.is_err() {
            let _ = self.switch.set(0, 0, 0);
        }
        r
    }

    fn try_set(&mut self, plan: &NetFilterPlan) -> Result<(), ProbeError> {
        let sides = [(false, &plan.outbound, 0u32), (true, &plan.inbound, 2u32)];
        let want: AHashSet<u32> = sides
            .iter()
            .flat_map(|(server, side, _)| {
                side.needed
                    .iter()
                    .map(move |(p, port)| rule_port_key(*server, *p, *port))
            })
            .collect();
        let mut bits = 0u32;
        for (_, side, shift) in sides {
            for p in &side.protocols {
                bits |= match *p {
                    IPPROTO_TCP => 1,
                    IPPROTO_UDP => 2,
                    other => {
                        return Err(ProbeError::Map {
                            map: "NET_FILTER",
                            err: format!(
                                "protocol {other}: only TCP (6) and UDP (17) are filtered"
                            ),
                        })
                    }
                } << shift;
            }
        }
        let missing: Vec<u32> = want.difference(&self.have).copied().collect();
        for k in missing {
            self.ports.insert(k, 1, 0).map_err(|e| ProbeError::Map {
                map: "RULE_PORTS",
                err: format!(
                    "{} protocol {} port {}: {e}",
                    if k & NET_SERVER != 0 {
                        "inbound"
                    } else {
                        "outbound"
                    },
                    (k >> 16) & 0xff,
                    k & 0xffff
                ),
            })?;
            // held from now on, so that a later plan removes it
            self.have.insert(k);
        }
        self.switch.set(0, bits, 0).map_err(map_err("NET_FILTER"))?;
        for k in self.have.difference(&want) {
            // already gone is fine: the goal is absence
            let _ = self.ports.remove(k);
        }
        self.have = want;
        Ok(())
    }
}

/// The families a duplicated descriptor's class stands for in `DUP_DROP` (the kernel's
/// `fl_dup_class`): not a socket, `AF_UNIX`, `AF_INET`, `AF_INET6`, `AF_NETLINK`,
/// `AF_PACKET`; index [`DUP_CLASSES`]` - 1` is every other family (3, `AF_AX25`, stands
/// for it: every such family becomes the same event).
pub const DUP_FAMILIES: [u16; DUP_CLASSES] = [0, 1, 2, 10, 16, 17, 3];
/// Classes of duplicated descriptors.
pub const DUP_CLASSES: usize = 7;
/// The kinds of `DUP_DROP`, in its order.
pub const DUP_TYPES: [falco_learn_event::EventType; 3] = [
    falco_learn_event::EventType::Dup,
    falco_learn_event::EventType::Dup2,
    falco_learn_event::EventType::Dup3,
];

/// Events of kinds the loaded rules need only some of, dropped in the kernel in every mode
/// (maps `SOCKET_DROP`, `DUP_DROP`; counted as `filtered`). The kernel decides on values
/// it has before the record exists, so [`EventFilterPlan::derive`] asks, for each value,
/// whether some rule may match the event it would become.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilterPlan {
    /// Bit d: drop successful `socket()` calls of domain d (< 64; failed calls and larger
    /// domains are reported).
    pub socket_drop: u64,
    /// Per kind of [`DUP_TYPES`] and class of [`DUP_FAMILIES`], bit r: drop the call whose
    /// new descriptor is r (< 64; failed calls and larger descriptors are reported).
    pub dup_drop: [[u64; DUP_CLASSES]; 3],
    /// The rules that keep some of these events, sorted.
    pub needed_by: Vec<String>,
}

/// The fields an event of [`crate::enrich::socket_shape`] fixes.
fn socket_known(f: &falco_learn_event::fields::FieldRef) -> bool {
    use falco_learn_event::fields::{FieldArg, FieldId};
    match f.id {
        // only successful calls are dropped: `evt.failed` is false
        FieldId::EvtType
        | FieldId::EvtFailed
        | FieldId::FdType
        | FieldId::FdTypeChar
        | FieldId::FdSockFamily => true,
        // the arguments are fd (the result: not fixed), domain, type, proto
        FieldId::EvtArg => match &f.arg {
            FieldArg::Key(k) => k == "domain",
            FieldArg::Index(i) => *i == 1,
            FieldArg::None => false,
        },
        _ => false,
    }
}

/// The fields an event of [`crate::enrich::dup_shape`] fixes (the result is the new
/// descriptor: a successful call's).
fn dup_known(f: &falco_learn_event::fields::FieldRef) -> bool {
    use falco_learn_event::fields::{FieldArg, FieldId};
    match f.id {
        FieldId::EvtType
        | FieldId::EvtFailed
        | FieldId::EvtRawRes
        | FieldId::EvtRes
        | FieldId::FdNum
        | FieldId::FdType
        | FieldId::FdTypeChar
        | FieldId::FdSockFamily => true,
        FieldId::EvtArg => match &f.arg {
            FieldArg::Key(k) => k == "res" || k == "newfd",
            FieldArg::Index(i) => *i == 0,
            FieldArg::None => false,
        },
        _ => false,
    }
}

/// A rules query: the enabled rules that may match the event when only the fields the
/// second argument accepts are known (`falco_learn_rules::Ruleset::may_match`).
pub type MayMatch<'a> = dyn Fn(
        &falco_learn_event::Event,
        &dyn Fn(&falco_learn_event::fields::FieldRef) -> bool,
    ) -> Vec<String>
    + 'a;

impl EventFilterPlan {
    /// Nothing dropped.
    pub fn off() -> EventFilterPlan {
        EventFilterPlan::default()
    }

    /// Drop every value no rule may match (`may_match` empty for the event it would be).
    pub fn derive(may_match: &MayMatch<'_>) -> EventFilterPlan {
        let mut plan = EventFilterPlan::default();
        let mut needed = std::collections::BTreeSet::new();
        for d in 0..64u32 {
            let rules = may_match(&crate::enrich::socket_shape(d), &socket_known);
            if rules.is_empty() {
                plan.socket_drop |= 1 << d;
            }
            needed.extend(rules);
        }
        for (k, typ) in DUP_TYPES.iter().enumerate() {
            for (c, family) in DUP_FAMILIES.iter().enumerate() {
                for r in 0..64i64 {
                    let mut rules = Vec::new();
                    for sock in dup_socks(*family) {
                        rules.extend(may_match(
                            &crate::enrich::dup_shape(*typ, r, sock),
                            &dup_known,
                        ));
                    }
                    if rules.is_empty() {
                        plan.dup_drop[k][c] |= 1 << r;
                    }
                    needed.extend(rules);
                }
            }
        }
        plan.needed_by = needed.into_iter().collect();
        plan
    }

    /// The `socket()` domains (< 64) reported.
    pub fn socket_domains_reported(&self) -> Vec<u32> {
        (0..64).filter(|d| self.socket_drop >> d & 1 == 0).collect()
    }
}

/// The sockets of `family` the kernel cannot tell apart: an `AF_INET6` socket whose both
/// ends are IPv4-mapped becomes an `ipv4` descriptor.
fn dup_socks(family: u16) -> Vec<falco_learn_probe_common::Sock> {
    use bytemuck::Zeroable;
    let mut s = falco_learn_probe_common::Sock::zeroed();
    s.family = family;
    s.flags = falco_learn_probe_common::SOCK_FLAGS_KNOWN;
    if family != 10 {
        return vec![s];
    }
    let mut mapped = s;
    for a in [&mut mapped.laddr, &mut mapped.raddr] {
        a[10] = 0xff;
        a[11] = 0xff;
        a[12] = 127;
        a[15] = 1;
    }
    s.laddr[15] = 1;
    s.raddr[15] = 1;
    vec![s, mapped]
}

/// The kernel's filter of socket and dup calls (`SOCKET_DROP`, `DUP_DROP`).
pub(crate) struct EventFilter {
    socket: Array<MapData, u64>,
    dup: Array<MapData, u64>,
}

impl EventFilter {
    pub(crate) fn new(ebpf: &mut Ebpf) -> Result<EventFilter, ProbeError> {
        Ok(EventFilter {
            socket: Array::try_from(take(ebpf, "SOCKET_DROP")?).map_err(map_err("SOCKET_DROP"))?,
            dup: Array::try_from(take(ebpf, "DUP_DROP")?).map_err(map_err("DUP_DROP"))?,
        })
    }

    /// Make `plan` the filter; on an error nothing is dropped.
    pub(crate) fn set(&mut self, plan: &EventFilterPlan) -> Result<(), ProbeError> {
        let r = self.try_set(plan);
        if r.is_err() {
            let _ = self.try_set(&EventFilterPlan::off());
        }
        r
    }

    fn try_set(&mut self, plan: &EventFilterPlan) -> Result<(), ProbeError> {
        self.socket
            .set(0, plan.socket_drop, 0)
            .map_err(map_err("SOCKET_DROP"))?;
        for (k, classes) in plan.dup_drop.iter().enumerate() {
            for (c, bits) in classes.iter().enumerate() {
                self.dup
                    .set((k * 8 + c) as u32, *bits, 0)
                    .map_err(map_err("DUP_DROP"))?;
            }
        }
        Ok(())
    }
}

/// One outbound entry a profile allows: protocol ([`IPPROTO_TCP`], [`IPPROTO_UDP`]),
/// remote port and the peer network (`addr`/`prefix`, e.g. `10.0.0.0`/8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutboundAllow {
    pub proto: u8,
    pub port: u16,
    pub addr: std::net::IpAddr,
    /// Prefix length in bits (at most 32 for IPv4, 128 for IPv6).
    pub prefix: u8,
}

/// Bytes of a `PROFILE_OUTBOUND` key after its prefix length.
const NET_KEY_BYTES: usize = 24;

impl OutboundAllow {
    /// The kernel's key under `profile`; `None` for a prefix longer than the address.
    fn key(&self, profile: u32) -> Option<Key<[u8; NET_KEY_BYTES]>> {
        let mut k = [0u8; NET_KEY_BYTES];
        k[..4].copy_from_slice(&profile.to_le_bytes());
        k[4] = self.proto;
        k[6..8].copy_from_slice(&self.port.to_ne_bytes());
        let (family, max) = match self.addr {
            std::net::IpAddr::V4(a) => {
                k[8..12].copy_from_slice(&a.octets());
                (4, 32)
            }
            std::net::IpAddr::V6(a) => {
                k[8..24].copy_from_slice(&a.octets());
                (6, 128)
            }
        };
        k[5] = family;
        (self.prefix <= max).then(|| Key::new(64 + self.prefix as u32, k))
    }
}

/// Make `have` (what a kernel map holds) `want`: what is missing is inserted first, each
/// entry held as soon as it is in (so that a failure leaves `have` exactly what the map
/// holds), then what is no longer wanted is removed. Returns how many entries are held.
fn sync<M, T: Copy + Eq + std::hash::Hash>(
    map: &mut M,
    have: &mut AHashSet<T>,
    want: AHashSet<T>,
    insert: impl Fn(&mut M, &T) -> Result<(), ProbeError>,
    remove: impl Fn(&mut M, &T),
) -> Result<usize, ProbeError> {
    let missing: Vec<T> = want.difference(have).copied().collect();
    for x in missing {
        insert(map, &x)?;
        have.insert(x);
    }
    for x in have.difference(&want) {
        remove(map, x);
    }
    *have = want;
    Ok(have.len())
}

/// Per-container profile filter: which containers (cgroup v2 ids) run under which profile,
/// and what each profile allows. See the module docs.
pub struct ProfileFilter {
    cgroups: crate::cgroup_map::CgroupMap,
    writes: Mutex<LpmTrie<MapData, [u8; 4 + PROFILE_PATH_BYTES], u8>>,
    held: Mutex<AHashMap<u32, AHashSet<Entry>>>,
    outbound: Mutex<LpmTrie<MapData, [u8; NET_KEY_BYTES], u8>>,
    held_outbound: Mutex<AHashMap<u32, AHashSet<OutboundAllow>>>,
    inbound: Mutex<HashMap<MapData, [u8; 8], u8>>,
    held_inbound: Mutex<AHashMap<u32, AHashSet<(u8, u16)>>>,
    /// `RULES_ONLY`: tgid → `{exec_id, pad, start in clock ticks}` as two u64.
    unprofiled: Mutex<HashMap<MapData, u32, [u64; 2]>>,
    gen: Arc<VerdictGen>,
}

/// A `PROFILE_INBOUND` key (`struct profile_port_key`).
fn inbound_key(profile: u32, proto: u8, port: u16) -> [u8; 8] {
    let mut k = [0u8; 8];
    k[..4].copy_from_slice(&profile.to_ne_bytes());
    k[4] = proto;
    k[6..].copy_from_slice(&port.to_ne_bytes());
    k
}

impl ProfileFilter {
    pub(crate) fn new(
        ebpf: &mut Ebpf,
        gen: Arc<VerdictGen>,
        containerd_namespaces: Vec<String>,
    ) -> Result<ProfileFilter, ProbeError> {
        Ok(ProfileFilter {
            gen,
            cgroups: crate::cgroup_map::CgroupMap::new(
                ebpf,
                "FILTER_CGROUPS",
                "filtered",
                Vec::new(),
                containerd_namespaces,
            )?,
            writes: Mutex::new(
                LpmTrie::try_from(take(ebpf, "PROFILE_WRITES")?)
                    .map_err(map_err("PROFILE_WRITES"))?,
            ),
            held: Mutex::new(AHashMap::new()),
            outbound: Mutex::new(
                LpmTrie::try_from(take(ebpf, "PROFILE_OUTBOUND")?)
                    .map_err(map_err("PROFILE_OUTBOUND"))?,
            ),
            held_outbound: Mutex::new(AHashMap::new()),
            inbound: Mutex::new(
                HashMap::try_from(take(ebpf, "PROFILE_INBOUND")?)
                    .map_err(map_err("PROFILE_INBOUND"))?,
            ),
            held_inbound: Mutex::new(AHashMap::new()),
            unprofiled: Mutex::new(
                HashMap::try_from(take(ebpf, "RULES_ONLY")?).map_err(map_err("RULES_ONLY"))?,
            ),
        })
    }

    /// No profile applies to process `pid` while it runs its exec `exec_id` (the event
    /// header's; [`falco_learn_event::Event::exec_id`]) and is the process that started at
    /// `start_ts` (`proc.start_ts`, ns since the epoch): what it does that no loaded rule can
    /// match is dropped in the kernel (counted as `unprofiled`). The mark ends at its next
    /// exec (another exec id), its exit (the kernel removes it) or [`Self::unmark_unprofiled`].
    /// Errors: the map is full (`RULES_ONLY`, 32 768 processes) or refused the entry.
    pub fn mark_unprofiled(&self, pid: u32, exec_id: u32, start_ts: u64) -> Result<(), ProbeError> {
        let boot = crate::procfs::boot_epoch_ns();
        let tick_ns = 1_000_000_000 / crate::procfs::clk_tck().max(1);
        let ticks = start_ts.saturating_sub(boot) / tick_ns;
        lock(&self.unprofiled)
            .insert(pid, [u64::from(exec_id), ticks], 0)
            .map_err(map_err("RULES_ONLY"))
    }

    /// Process `pid` is no longer one no profile applies to (reported again).
    pub fn unmark_unprofiled(&self, pid: u32) {
        let _ = lock(&self.unprofiled).remove(&pid);
    }

    /// How many processes are marked in the kernel now.
    pub fn unprofiled_marks(&self) -> Result<usize, ProbeError> {
        let map = lock(&self.unprofiled);
        let mut n = 0;
        for k in map.keys() {
            k.map_err(map_err("RULES_ONLY"))?;
            n += 1;
        }
        Ok(n)
    }

    /// Make `ports` ((protocol, port) pairs: [`IPPROTO_TCP`], [`IPPROTO_UDP`]) the ports
    /// profile `profile` serves (replacing what it served before). Returns how many kernel
    /// entries the profile now has.
    pub fn set_inbound(&self, profile: u32, ports: &[(u8, u16)]) -> Result<usize, ProbeError> {
        let want: AHashSet<(u8, u16)> = ports.iter().copied().collect();
        let r = {
            let mut held = lock(&self.held_inbound);
            let mut map = lock(&self.inbound);
            let have = held.entry(profile).or_default();
            sync(
                &mut *map,
                have,
                want,
                |map, (proto, port)| {
                    map.insert(inbound_key(profile, *proto, *port), 1, 0)
                        .map_err(|e| ProbeError::Map {
                            map: "PROFILE_INBOUND",
                            err: format!("profile {profile}, protocol {proto} port {port}: {e}"),
                        })
                },
                |map, (proto, port)| {
                    let _ = map.remove(&inbound_key(profile, *proto, *port));
                },
            )
        };
        self.fail_safe(profile, r)
    }

    /// Make `allow` the outbound traffic profile `profile` allows (replacing what it
    /// allowed before). Returns how many kernel entries the profile now has. An entry whose
    /// prefix is longer than its address is refused.
    pub fn set_outbound(&self, profile: u32, allow: &[OutboundAllow]) -> Result<usize, ProbeError> {
        let want: AHashSet<OutboundAllow> = allow.iter().copied().collect();
        let r = {
            let mut held = lock(&self.held_outbound);
            let mut trie = lock(&self.outbound);
            let have = held.entry(profile).or_default();
            sync(
                &mut *trie,
                have,
                want,
                |trie, a| {
                    let bad = |err: String| ProbeError::Map {
                        map: "PROFILE_OUTBOUND",
                        err: format!(
                            "profile {profile}, protocol {} port {} peer {}/{}: {err}",
                            a.proto, a.port, a.addr, a.prefix
                        ),
                    };
                    let key = a
                        .key(profile)
                        .ok_or_else(|| bad("prefix longer than the address".into()))?;
                    trie.insert(&key, 1, 0).map_err(|e| bad(e.to_string()))
                },
                |trie, a| {
                    // a held entry always has its key (it was inserted with it)
                    if let Some(k) = a.key(profile) {
                        let _ = trie.remove(&k);
                    }
                },
            )
        };
        self.fail_safe(profile, r)
    }

    /// After an error loading a profile's entries the kernel holds neither its old nor its
    /// new allow-list whole: the profile is dropped (its containers are released, so every
    /// event of theirs is reported) and the error says so.
    fn fail_safe(&self, profile: u32, r: Result<usize, ProbeError>) -> Result<usize, ProbeError> {
        r.map_err(|e| {
            self.drop_profile(profile);
            match e {
                ProbeError::Map { map, err } => ProbeError::Map {
                    map,
                    err: format!(
                        "{err}; the profile is no longer filtered in the kernel (its containers' \
                         events go to userspace)"
                    ),
                },
                other => other,
            }
        })
    }

    /// Make `allow` what profile `profile` allows (replacing what it allowed before).
    /// Entries the kernel's key cannot hold are left to userspace. Returns how many kernel
    /// entries the profile now has.
    pub fn set_profile(&self, profile: u32, allow: &WriteAllow) -> Result<usize, ProbeError> {
        let want = entries(profile, allow);
        let r = {
            let mut held = lock(&self.held);
            let mut writes = lock(&self.writes);
            let have = held.entry(profile).or_default();
            sync(
                &mut *writes,
                have,
                want,
                |writes, e| {
                    writes
                        .insert(&e.key(), 1, 0)
                        .map_err(|err| ProbeError::Map {
                            map: "PROFILE_WRITES",
                            err: format!(
                                "profile {profile}, {}: {err}",
                                String::from_utf8_lossy(&e.data[..e.len])
                            ),
                        })
                },
                |writes, e| {
                    let _ = writes.remove(&e.key());
                },
            )
        };
        let n = self.fail_safe(profile, r)?;
        self.gen.bump()?;
        Ok(n)
    }

    /// Forget profile `profile` and unbind every cgroup under it.
    pub fn drop_profile(&self, profile: u32) {
        self.cgroups.release_profile(profile);
        if let Some(entries) = lock(&self.held).remove(&profile) {
            let mut writes = lock(&self.writes);
            for e in entries {
                let _ = writes.remove(&e.key());
            }
        }
        if let Some(entries) = lock(&self.held_outbound).remove(&profile) {
            let mut trie = lock(&self.outbound);
            for k in entries.iter().filter_map(|a| a.key(profile)) {
                let _ = trie.remove(&k);
            }
        }
        if let Some(entries) = lock(&self.held_inbound).remove(&profile) {
            let mut map = lock(&self.inbound);
            for (proto, port) in entries {
                let _ = map.remove(&inbound_key(profile, proto, port));
            }
        }
        if let Err(e) = self.gen.bump() {
            tracing::warn!("verdict cache of opens: {e}");
        }
    }

    /// The container whose cgroup v2 id is `cgroup` runs under `profile` (set first).
    /// The root cgroup (0, 1) is refused: it is not a container.
    pub fn bind(&self, cgroup: u64, profile: u32) -> Result<(), ProbeError> {
        let known = lock(&self.held).contains_key(&profile);
        self.cgroups.bind(cgroup, profile, known)
    }

    /// The container of `cgroup` is gone (or its image lost its profile).
    pub fn release(&self, cgroup: u64) {
        self.cgroups.release(cgroup);
    }

    /// Whether the cgroup an event claims is its container's own, so that it may be
    /// bound ([`crate::kill::container_cgroup`]).
    pub fn owner(&self, claim: crate::kill::CgroupClaim<'_>) -> crate::kill::CgroupOwner {
        self.cgroups.owner(claim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `VERDICT_GEN[2]` as the kernel (`tgid | 1 << 32`) and userspace (bit 33) set it.
    #[test]
    fn the_verdict_cache_off_switch_reads_its_cause() {
        assert_eq!(VerdictCacheOff::from_slot(0), None);
        assert_eq!(
            VerdictCacheOff::from_slot(1 << 32),
            Some(VerdictCacheOff::IoUringRename { tgid: 0 })
        );
        assert_eq!(
            VerdictCacheOff::from_slot(4242 | 1 << 32),
            Some(VerdictCacheOff::IoUringRename { tgid: 4242 })
        );
        assert_eq!(
            VerdictCacheOff::from_slot(OFF_UNWATCHED),
            Some(VerdictCacheOff::IoUringUnwatched)
        );
        assert_eq!(
            VerdictCacheOff::from_slot(OFF_UNWATCHED | 4242 | 1 << 32),
            Some(VerdictCacheOff::IoUringUnwatched)
        );
        assert_eq!(
            VerdictCacheOff::from_slot(OFF_BEFORE_START | 77),
            Some(VerdictCacheOff::IoUringBeforeStart { pid: 77 })
        );
    }

    fn keys(allow: &WriteAllow) -> Vec<(u32, Vec<u8>)> {
        let mut v: Vec<(u32, Vec<u8>)> = entries(7, allow)
            .into_iter()
            .map(|e| (e.key().prefix_len(), e.data[..e.len].to_vec()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn files_end_in_nul_directories_in_both_forms() {
        let allow = WriteAllow {
            files: vec![b"/run/nginx.pid".to_vec()],
            dirs: vec![b"/var/log/nginx/".to_vec()],
        };
        assert_eq!(
            keys(&allow),
            vec![
                (32 + 15 * 8, b"/run/nginx.pid\0".to_vec()),
                (32 + 15 * 8, b"/var/log/nginx\0".to_vec()),
                (32 + 15 * 8, b"/var/log/nginx/".to_vec()),
            ]
        );
    }

    #[test]
    fn the_root_directory_covers_every_path_and_long_or_odd_entries_stay_in_userspace() {
        let allow = WriteAllow {
            files: vec![
                vec![b'a'; PROFILE_PATH_BYTES],
                b"/a\0b".to_vec(),
                Vec::new(),
            ],
            dirs: vec![b"/".to_vec()],
        };
        assert_eq!(keys(&allow), vec![(32 + 8, b"/".to_vec())]);
        // the longest file that fits: its bytes and the NUL fill the key
        let fits = WriteAllow {
            files: vec![vec![b'a'; PROFILE_PATH_BYTES - 1]],
            dirs: Vec::new(),
        };
        assert_eq!(keys(&fits)[0].0, (32 + PROFILE_PATH_BYTES * 8) as u32);
    }

    #[test]
    fn suffix_lengths_pack_a_byte_each() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(suffix_lens(&v(&[])).ok(), Some(0));
        assert_eq!(
            suffix_lens(&v(&["release_agent", ".lock", "x.lock"])).ok(),
            Some(5 | (6 << 8) | (13 << 16))
        );
        assert!(suffix_lens(&v(&["a", "bb", "ccc", "dddd", "eeeee"])).is_err());
        assert!(suffix_lens(&v(&[&"x".repeat(64)])).is_err());
    }

    #[test]
    fn outbound_keys_hold_profile_protocol_family_port_and_the_network_bits() {
        let a = OutboundAllow {
            proto: IPPROTO_TCP,
            port: 5432,
            addr: "10.1.0.0".parse().expect("ip"),
            prefix: 16,
        };
        let k = a.key(0x0102_0304).expect("fits");
        assert_eq!(k.prefix_len(), 64 + 16);
        let mut want = vec![4, 3, 2, 1, 6, 4];
        want.extend_from_slice(&5432u16.to_ne_bytes());
        want.extend_from_slice(&[10, 1, 0, 0]);
        want.extend_from_slice(&[0; 12]);
        assert_eq!(k.data().to_vec(), want);
        let v6 = OutboundAllow {
            addr: "2001:db8::1".parse().expect("ip"),
            prefix: 128,
            proto: IPPROTO_UDP,
            ..a
        };
        let k = v6.key(1).expect("fits");
        assert_eq!(k.prefix_len(), 64 + 128);
        assert_eq!(&k.data()[4..6], &[17, 6]);
        assert!(OutboundAllow { prefix: 33, ..a }.key(1).is_none());
    }

    #[test]
    fn rule_ports_pack_side_protocol_and_port() {
        assert_eq!(rule_port_key(false, IPPROTO_TCP, 443), (6 << 16) | 443);
        assert_eq!(
            rule_port_key(true, IPPROTO_UDP, 53),
            (1 << 24) | (17 << 16) | 53
        );
        let mut want = 7u32.to_ne_bytes().to_vec();
        want.extend_from_slice(&[6, 0]);
        want.extend_from_slice(&80u16.to_ne_bytes());
        assert_eq!(inbound_key(7, IPPROTO_TCP, 80).to_vec(), want);
    }

    #[test]
    fn keys_start_with_the_profile_number() {
        let e = Entry::new(0x0102_0304, b"/x", 0).map(|e| e.key());
        let k = e.as_ref().map(|k| k.data()[..6].to_vec());
        assert_eq!(k, Some(vec![4, 3, 2, 1, b'/', b'x']));
    }
}
