//! The kernel's profile entries are sound: a generative test.
//!
//! In the enforce modes the probe drops, in the kernel, an event of a profiled container
//! that no rule needs and that the profile's *kernel entries* allow
//! (`falco_learn_profiler::kernel`: `kernel_writes`, `kernel_outbound`, `kernel_inbound`).
//! The rule stated there: everything the kernel entries allow is an event
//! `Profile::check` finds no anomaly in. For many generated (profile, event) pairs this
//! checks it under two oracles each:
//! - **kernel**: an independent model of the kernel's comparison, with the entries
//!   installed as the enforcer and the probe install them (enforcer `binding.rs`,
//!   probe/src/filter.rs `entries`, `OutboundAllow::key`, `inbound_key`; probe.bpf.c
//!   `exit_open`, `net_dropped`, `inbound_dropped`): writes as a longest-prefix match of
//!   the first 248 bytes of `path\0` against `file\0`, `dir\0`, `dir/` (and `/`), entries
//!   that do not fit the key left out, and never a truncated, unlinked or pseudo file;
//!   outbound as (protocol, family, port, peer network) with v4-mapped peers always
//!   reported; inbound as (protocol, local port). Network events are generated as the
//!   kernel's facts (kind, return value, socket, passed address), the kernel's side, port
//!   and peer are decided from them (as `exit_net` does), and the userspace `Event` is made
//!   from the same facts as `probe/src/enrich/net.rs` makes it (replicated here);
//! - **allows**: `KernelWrites::allows(raw path)` for an opened file reported whole,
//!   `KernelOutbound::allows(proto, port, peer)` for a client's event the kernel decides on,
//!   `kernel_inbound` holding (proto, port) for a server's.
//!
//! Profiles get write keys with tricky renderings (`//a/`, trailing `/`, `\\`, `\xNN`,
//! glob characters, `<truncated>/…`, spaces, quotes, very long paths, `/`, relative),
//! write globs, outbound entries (TCP/UDP/ICMP, peers /0, /32, /16 not in network form,
//! IPv6, v4-mapped) and inbound ports (or no inbound dimension). Events are drawn near
//! the entries: the entry's own bytes, below it, its parent, a sibling sharing a prefix,
//! peers at and around the networks' edges, ports from the profile and a shared pool.
//!
//! The converse (what the matcher allows but the kernel leaves to userspace) is measured,
//! not asserted, and printed by kind.
//!
//! Deterministic: `KERNEL_ENTRIES_SEEDS` seeds (default 8) of `KERNEL_ENTRIES_PROFILES`
//! profiles (default 250), each against `KERNEL_ENTRIES_EVENTS` events (default 240);
//! `KERNEL_ENTRIES_FIRST_SEED` moves the seeds. A failure is shrunk (profile entries
//! removed while it still fails) and printed with the entries, the kernel entries and
//! the event.

// the randomness helpers, env knobs and byte printing of the rules crate's generative tests
#[allow(dead_code)]
#[path = "../../rules/tests/common/mod.rs"]
mod common;

use common::{env_num, Bytes, RngExt as _};
use falco_learn_event::path::{raw_bytes, render, PathFlags};
use falco_learn_event::{Args, Event, EventType, EventTypeField, Fd, FdType, L4Proto};
use falco_learn_profiler::kernel::{kernel_inbound, kernel_outbound, kernel_writes};
use falco_learn_profiler::model::{ImageRef, OutboundEntry, Profile, Proto, Seen};
use falco_learn_profiler::Anomaly;
use fastrand::Rng;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

// ------------------------------------------------------------------ profiles

/// Raw path components (what the kernel reports).
const COMPONENTS: &[&[u8]] = &[
    b"etc",
    b"tmp",
    b"tmp",
    b"var",
    b"log",
    b"a",
    b"a",
    b"b",
    b"ab",
    b"a b",
    b"q'\"x",
    b"a\\b",
    b"\\",
    b"\xff",
    b"a\xff",
    b"xff",
    b"\xc3\xa9",
    b"*",
    b"a*",
    b"[x]",
    b"?",
    b"<truncated>",
    b"memfd:x",
    b"...",
    b".a",
    b"null",
    b"dev",
    b"\n",
];

fn component(rng: &mut Rng) -> Vec<u8> {
    if rng.pct(3) {
        let n = *rng.pick(&[60usize, 120, 200, 246, 247, 248, 250, 300]);
        return vec![b'l'; n];
    }
    rng.pick(COMPONENTS).to_vec()
}

/// A canonical absolute path (the kernel's form).
fn raw_path(rng: &mut Rng) -> Vec<u8> {
    let k = *rng.weighted(&[(0usize, 2), (1, 20), (2, 35), (3, 28), (4, 15)]);
    join(&(0..k).map(|_| component(rng)).collect::<Vec<_>>())
}

fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    let mut p = Vec::new();
    for c in comps {
        p.push(b'/');
        p.extend_from_slice(c);
    }
    if p.is_empty() {
        p.push(b'/');
    }
    p
}

/// A rendered profile key for `raw`, often spelt trickily.
fn key_for(rng: &mut Rng, raw: &[u8]) -> String {
    let mut k = render(raw, PathFlags::default());
    match rng.usize(..100) {
        0..=54 => {}
        55..=62 => k = k.replace('/', "//"),
        63..=69 => k.push('/'),
        70..=73 => k = format!("<truncated>{k}"),
        74..=76 => k = k.trim_start_matches('/').to_string(),
        77..=80 => k.push('*'),
        81..=82 => k.push_str("\\q"),
        83..=84 => k.push_str("\\xFF"),
        85..=86 => k.push_str("\\x4"),
        87..=89 => k = "/".into(),
        90..=92 => k = format!("/{k}"),
        93..=95 => k.push_str(" (deleted)"),
        _ => k = k.replace('/', "/./"),
    }
    k
}

const PORTS: &[u16] = &[0, 22, 53, 80, 443, 5353, 8080, 40000, 65535];

const NETS: &[&str] = &[
    "10.0.0.0/8",
    "10.1.2.3/32",
    "10.1.2.3/16",
    "10.1.2.3/24",
    "0.0.0.0/0",
    "127.0.0.1/32",
    "192.168.1.0/24",
    "::/0",
    "2001:db8::/32",
    "2001:db8::1/128",
    "2001:db8::1/64",
    "::ffff:10.0.0.0/104",
    "::ffff:10.1.2.3/128",
    "::ffff:0:0/96",
    "fe80::/10",
    "::1/128",
];

fn gen_profile(rng: &mut Rng) -> Profile {
    let mut p = Profile::new(ImageRef::new("docker.io/library/app", "1"));
    let nf = rng.usize(..6);
    for _ in 0..nf {
        let raw = raw_path(rng);
        p.write_files.insert(key_for(rng, &raw), Seen::default());
    }
    let nd = rng.usize(..4);
    for _ in 0..nd {
        let raw = raw_path(rng);
        p.write_dirs.insert(key_for(rng, &raw), Seen::default());
    }
    if rng.pct(25) {
        let g = *rng.pick(&[
            "/tmp/sed*",
            "/proc/[0-9]*/oom_score_adj",
            "/tmp/a/*",
            "/t?p/a",
        ]);
        p.write_globs.insert(g.to_string(), Seen::default());
    }
    let no = rng.usize(..5);
    for _ in 0..no {
        let proto = *rng.weighted(&[(Proto::Tcp, 5), (Proto::Udp, 4), (Proto::Icmp, 1)]);
        let port = *rng.pick(PORTS);
        let mut e = OutboundEntry::default();
        for _ in 0..1 + rng.usize(..3) {
            e.peers.insert(rng.pick(NETS).parse().expect("net"));
        }
        p.outbound.insert((proto, port), e);
    }
    if rng.pct(15) {
        p.inbound = None;
    } else if let Some(ports) = &mut p.inbound {
        for _ in 0..rng.usize(..4) {
            let proto = *rng.weighted(&[(Proto::Tcp, 5), (Proto::Udp, 4), (Proto::Icmp, 1)]);
            ports.insert((proto, *rng.pick(PORTS)), Seen::default());
        }
    }
    p
}

// ------------------------------------------------------------------ events

const O_WRONLY: u32 = 0o1;
const O_RDWR: u32 = 0o2;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;

/// One kernel event and the userspace event made of it.
#[derive(Debug, Clone)]
enum Kev {
    Write {
        raw: Vec<u8>,
        flags: PathFlags,
        oflags: u32,
    },
    Net(Box<NetFacts>),
}

#[derive(Debug, Clone)]
struct Case {
    kev: Kev,
    event: Event,
    /// How it was drawn, for grouping.
    how: &'static str,
}

/// The canonical form of a key's bytes (what a resolved path covered by it reads).
fn canonical(b: &[u8]) -> Vec<u8> {
    let comps: Vec<Vec<u8>> = b
        .split(|c| *c == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| c.to_vec())
        .collect();
    join(&comps)
}

fn write_event(raw: &[u8], flags: PathFlags, oflags: u32, creat: bool) -> Event {
    let name = render(raw, flags);
    Event {
        ts: 1,
        typ: EventTypeField(if creat {
            EventType::Creat
        } else {
            EventType::Openat
        }),
        res: 3,
        fd: Some(Fd {
            num: 3,
            typ: FdType::File,
            name: name.clone(),
            nameraw: name.clone(),
            ..Default::default()
        }),
        args: Args::Open {
            name,
            flags: oflags,
            mode: 0o644,
            dirfd: -100,
        },
        ..Default::default()
    }
}

fn gen_write(rng: &mut Rng, p: &Profile) -> Case {
    let keys: Vec<&String> = p.write_files.keys().chain(p.write_dirs.keys()).collect();
    let (base, how) = if !keys.is_empty() && rng.pct(85) {
        let k = rng.pick(&keys);
        match raw_bytes(k.trim_start_matches("<truncated>")) {
            Some(b) => (canonical(&b), "near-entry"),
            None => (canonical(k.as_bytes()), "near-entry-unescaped"),
        }
    } else if rng.pct(30) {
        (
            rng.pick(&[&b"/dev/null"[..], b"/dev/tty", b"/dev/nullx"])
                .to_vec(),
            "sink",
        )
    } else {
        (raw_path(rng), "random")
    };
    let raw = match rng.usize(..10) {
        0..=3 => base,
        4..=5 => {
            let mut b = base;
            if b != b"/" {
                b.push(b'/');
            }
            b.extend(component(rng));
            if rng.pct(30) {
                b.push(b'/');
                b.extend(component(rng));
            }
            b
        }
        6 => match base.iter().rposition(|c| *c == b'/') {
            Some(0) | None => b"/".to_vec(),
            Some(i) => base[..i].to_vec(),
        },
        7 => {
            let mut b = base;
            b.extend(rng.pick(&[&b"x"[..], b"\xff", b" ", b"\\"]).iter());
            b
        }
        8 => {
            // a prefix cut mid-component
            let n = base.len();
            if n > 2 {
                base[..1 + rng.usize(..n - 1)].to_vec()
            } else {
                base
            }
        }
        _ => raw_path(rng),
    };
    let raw = canonical(&raw);
    let mut flags = PathFlags::default();
    match rng.usize(..100) {
        0..=3 => flags.truncated = true,
        4..=7 => flags.deleted = true,
        8..=9 => {
            flags.pseudo = true;
            flags.deleted = true;
        }
        _ => {}
    }
    let creat = rng.pct(10);
    let oflags = if creat {
        O_WRONLY | O_CREAT | O_TRUNC
    } else {
        *rng.pick(&[
            O_WRONLY,
            O_RDWR,
            O_CREAT,
            O_TRUNC,
            O_WRONLY | O_CREAT | O_TRUNC,
            O_RDWR | O_CREAT,
        ])
    };
    let event = write_event(&raw, flags, oflags, creat);
    Case {
        kev: Kev::Write { raw, flags, oflags },
        event,
        how,
    }
}

// The network side: the kernel's facts, its decision, the userspace event.

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const EINPROGRESS: i64 = 115;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connect,
    Sendto,
    Sendmsg,
    Accept,
}

#[derive(Debug, Clone)]
struct NetFacts {
    kind: Kind,
    ret: i64,
    family: u16,
    /// `sk_protocol`, `sk_type`
    protocol: u16,
    typ: u16,
    lport: u16,
    known: bool,
    bound: bool,
    local: IpAddr,
    /// The peer: the final `fl_addr` (for an accept, the client).
    addr_family: u16,
    port: u16,
    peer: IpAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Never dropped.
    Report,
    /// PROFILE_OUTBOUND decides on (proto, port, peer).
    Outbound(u8, u16, IpAddr),
    /// PROFILE_INBOUND decides on (proto, local port).
    Inbound(u8, u16),
}

fn decide(n: &NetFacts) -> Decision {
    let inet = |f: u16| f == AF_INET || f == AF_INET6;
    let proto = match n.protocol {
        6 | 17 => n.protocol as u8,
        _ => return Decision::Report,
    };
    if n.kind == Kind::Accept {
        if n.ret < 0 || !inet(n.family) {
            return Decision::Report;
        }
        return Decision::Inbound(proto, n.lport);
    }
    if n.ret < 0 && !(n.kind == Kind::Connect && n.ret == -EINPROGRESS) {
        return Decision::Report;
    }
    if !inet(n.addr_family) || n.family != n.addr_family {
        return Decision::Report;
    }
    if n.kind != Kind::Connect {
        if proto != 17 || !n.known {
            return Decision::Report;
        }
        if n.bound || n.lport == n.port {
            return Decision::Inbound(proto, n.lport);
        }
    }
    if let IpAddr::V6(a) = n.peer {
        if a.to_ipv4_mapped().is_some() {
            return Decision::Report;
        }
    }
    Decision::Outbound(proto, n.port, n.peer)
}

/// probe/src/enrich/net.rs `net()`, replicated for these facts.
fn net_event(n: &NetFacts) -> Event {
    let accept = n.kind == Kind::Accept;
    let typ = match n.kind {
        Kind::Connect => EventType::Connect,
        Kind::Sendto => EventType::Sendto,
        Kind::Sendmsg => EventType::Sendmsg,
        Kind::Accept => EventType::Accept4,
    };
    let l4 = match (n.protocol, n.typ) {
        (6, _) => L4Proto::Tcp,
        (17, _) => L4Proto::Udp,
        (1, _) | (58, _) => L4Proto::Icmp,
        (_, 1) => L4Proto::Tcp,
        (_, 2) => L4Proto::Udp,
        (_, 3) => L4Proto::Raw,
        _ => L4Proto::Unknown,
    };
    let ftyp = |f: u16| match f {
        AF_INET => FdType::Ipv4,
        AF_INET6 => FdType::Ipv6,
        _ => FdType::Other,
    };
    let mut f = Fd {
        num: 3,
        typ: ftyp(n.family),
        l4proto: l4,
        cip: Some(n.local),
        cport: Some(n.lport),
        sip: Some(n.peer),
        sport: Some(n.port),
        is_client: true,
        bound: n.known.then_some(n.bound),
        sockfamily: "ip".into(),
        ..Default::default()
    };
    f.connected = match n.kind {
        Kind::Connect => n.ret == 0 || n.ret == -EINPROGRESS,
        Kind::Accept => n.ret >= 0,
        _ => false,
    };
    if accept || (typ != EventType::Connect && l4 == L4Proto::Udp && f.bound == Some(true)) {
        std::mem::swap(&mut f.cip, &mut f.sip);
        std::mem::swap(&mut f.cport, &mut f.sport);
        f.is_client = false;
    }
    let addr = format!("{}:{}", n.peer, n.port);
    let args = match n.kind {
        Kind::Accept => Args::None,
        Kind::Connect => Args::Connect { fd: 3, addr },
        _ => Args::Send {
            fd: 3,
            size: 10,
            addr,
        },
    };
    f.unmap_ipv4();
    Event {
        ts: 1,
        typ: EventTypeField(typ),
        res: n.ret,
        fd: Some(f),
        args,
        ..Default::default()
    }
}

/// An address at or around the edges of `net`.
fn near(rng: &mut Rng, net: &IpNet) -> IpAddr {
    match net {
        IpNet::V4(n) => {
            let a = u32::from(n.network());
            let b = u32::from(n.broadcast());
            let v = match rng.usize(..6) {
                0 => a,
                1 => b,
                2 => a.wrapping_sub(1),
                3 => b.wrapping_add(1),
                4 => a.wrapping_add(1),
                _ => u32::from(n.addr()),
            };
            IpAddr::V4(Ipv4Addr::from(v))
        }
        IpNet::V6(n) => {
            let a = u128::from(n.network());
            let b = u128::from(n.broadcast());
            let v = match rng.usize(..6) {
                0 => a,
                1 => b,
                2 => a.wrapping_sub(1),
                3 => b.wrapping_add(1),
                4 => a.wrapping_add(1),
                _ => u128::from(n.addr()),
            };
            IpAddr::V6(Ipv6Addr::from(v))
        }
    }
}

fn gen_net(rng: &mut Rng, p: &Profile) -> Case {
    let kind = *rng.weighted(&[
        (Kind::Connect, 45),
        (Kind::Sendto, 20),
        (Kind::Sendmsg, 10),
        (Kind::Accept, 25),
    ]);
    // a port and protocol from the profile most of the time
    let mut ports: Vec<(Proto, u16)> = p.outbound.keys().copied().collect();
    if let Some(i) = &p.inbound {
        ports.extend(i.keys().copied());
    }
    let (mut proto, mut port) = if !ports.is_empty() && rng.pct(75) {
        *rng.pick(&ports)
    } else {
        (
            *rng.pick(&[Proto::Tcp, Proto::Udp, Proto::Icmp]),
            *rng.pick(PORTS),
        )
    };
    if rng.pct(5) {
        proto = Proto::Raw;
    }
    if rng.pct(10) {
        port = *rng.pick(PORTS);
    }
    let (protocol, typ) = match proto {
        Proto::Tcp => *rng.weighted(&[((6u16, 1u16), 90), ((262, 1), 5), ((132, 1), 5)]),
        Proto::Udp => *rng.weighted(&[((17u16, 2u16), 90), ((136, 2), 5), ((17, 3), 5)]),
        Proto::Icmp => (1, 2),
        _ => (255, 3),
    };
    // a peer near one of the profile's networks
    let nets: Vec<IpNet> = p
        .outbound
        .values()
        .flat_map(|e| e.peers.iter().copied())
        .collect();
    let peer = if !nets.is_empty() && rng.pct(85) {
        let n = *rng.pick(&nets);
        near(rng, &n)
    } else {
        let n: IpNet = rng.pick(NETS).parse().expect("net");
        near(rng, &n)
    };
    let family = match peer {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    };
    let local = match (family, rng.pct(30)) {
        (AF_INET, _) => IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)),
        (_, true) => "::ffff:10.9.9.9".parse().expect("ip"),
        _ => "2001:db8::9".parse().expect("ip"),
    };
    let lport = if kind == Kind::Accept || rng.pct(15) {
        port
    } else {
        *rng.pick(&[40000u16, 40001, 53, 5353])
    };
    let (peer_port, lport) = if kind == Kind::Accept {
        (*rng.pick(&[40000u16, 40001, 22]), lport)
    } else {
        (port, lport)
    };
    let ret = match kind {
        Kind::Connect => *rng.weighted(&[(0i64, 75), (-EINPROGRESS, 20), (-111, 5)]),
        Kind::Accept => *rng.weighted(&[(4i64, 95), (-11, 5)]),
        _ => *rng.weighted(&[(10i64, 95), (-1, 5)]),
    };
    let addr_family = if rng.pct(4) {
        if family == AF_INET {
            AF_INET6
        } else {
            AF_INET
        }
    } else {
        family
    };
    let facts = NetFacts {
        kind,
        ret,
        family,
        protocol,
        typ,
        lport,
        known: rng.pct(95),
        bound: rng.pct(if kind == Kind::Accept { 80 } else { 30 }),
        local,
        addr_family,
        port: peer_port,
        peer,
    };
    let event = net_event(&facts);
    Case {
        kev: Kev::Net(Box::new(facts)),
        event,
        how: "net",
    }
}

// ------------------------------------------------------------------ the oracles

const PROFILE_PATH_BYTES: usize = 248;

/// probe/src/filter.rs `entries`: (bytes with their terminator) of each installed entry.
fn installed_writes(files: &[Vec<u8>], dirs: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let fits = |p: &[u8]| !p.is_empty() && p.len() < PROFILE_PATH_BYTES && !p.contains(&0);
    for f in files {
        if fits(f) {
            out.push([f.as_slice(), b"\0"].concat());
        }
    }
    for d in dirs {
        let d = d.strip_suffix(b"/").unwrap_or(d);
        if d.is_empty() {
            out.push(b"/".to_vec());
            continue;
        }
        if fits(d) {
            out.push([d, b"\0"].concat());
            out.push([d, b"/"].concat());
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Oracle {
    /// The kernel model allows it.
    Kernel,
    /// `KernelWrites::allows` / `KernelOutbound::allows` / `kernel_inbound` allow it.
    Allows,
}

fn allowed_by(p: &Profile, c: &Case) -> Vec<Oracle> {
    allowed_by_as(p, c, false)
}

/// `mutant`: a wrong derivation (every exact file also taken for a directory), to show
/// that the check finds such a bug.
fn allowed_by_as(p: &Profile, c: &Case, mutant: bool) -> Vec<Oracle> {
    let mut v = Vec::new();
    match &c.kev {
        Kev::Write { raw, flags, .. } => {
            if flags.truncated || flags.deleted || flags.pseudo {
                return v;
            }
            let mut k = kernel_writes(p);
            if mutant {
                k.dirs.extend(k.files.clone());
            }
            let entries = installed_writes(&k.files, &k.dirs);
            let mut key = raw.clone();
            key.push(0);
            key.truncate(PROFILE_PATH_BYTES);
            if entries.iter().any(|e| key.starts_with(e)) {
                v.push(Oracle::Kernel);
            }
            if k.allows(raw) {
                v.push(Oracle::Allows);
            }
        }
        Kev::Net(n) => match decide(n) {
            Decision::Report => {}
            Decision::Inbound(proto, port) => {
                let served = kernel_inbound(p);
                let to = |x: Proto| if x == Proto::Udp { 17 } else { 6 };
                if served.iter().any(|(x, y)| to(*x) == proto && *y == port) {
                    v.push(Oracle::Kernel);
                }
                let pr = if proto == 6 { Proto::Tcp } else { Proto::Udp };
                if served.contains(&(pr, port)) {
                    v.push(Oracle::Allows);
                }
            }
            Decision::Outbound(proto, port, peer) => {
                let k = kernel_outbound(p);
                // enforcer binding.rs: addr = network(), prefix = prefix_len(); the
                // kernel's key: proto, family, port, then the address bits
                let to = |x: Proto| if x == Proto::Udp { 17 } else { 6 };
                if k.iter().any(|o| {
                    let net = o.peer;
                    to(o.proto) == proto
                        && o.port == port
                        && net.network().is_ipv4() == peer.is_ipv4()
                        && IpNet::new(net.network(), net.prefix_len())
                            .is_ok_and(|n| n.contains(&peer))
                }) {
                    v.push(Oracle::Kernel);
                }
                let pr = if proto == 6 { Proto::Tcp } else { Proto::Udp };
                if k.iter().any(|o| o.allows(pr, port, &peer)) {
                    v.push(Oracle::Allows);
                }
            }
        },
    }
    v
}

/// What kind of event, for the measured converse.
fn category(c: &Case) -> String {
    match &c.kev {
        Kev::Write { raw, flags, .. } => {
            let mut v: Vec<&str> = vec!["write"];
            if flags.truncated {
                v.push("truncated");
            }
            if flags.pseudo {
                v.push("pseudo");
            } else if flags.deleted {
                v.push("deleted");
            }
            if render(raw, PathFlags::default()).contains('\\') {
                v.push("escaped");
            }
            if raw.len() + 1 > PROFILE_PATH_BYTES {
                v.push("long");
            }
            v.join("+")
        }
        Kev::Net(n) => match decide(n) {
            Decision::Report => format!("net-reported-{:?}", n.kind),
            Decision::Inbound(p, _) => format!("inbound-{p}"),
            Decision::Outbound(p, _, _) => format!("outbound-{p}"),
        },
    }
}

// ------------------------------------------------------------------ checking

fn describe_profile(p: &Profile) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  write_files: {:?}",
        p.write_files.keys().collect::<Vec<_>>()
    );
    let _ = writeln!(
        s,
        "  write_dirs: {:?}",
        p.write_dirs.keys().collect::<Vec<_>>()
    );
    let _ = writeln!(
        s,
        "  write_globs: {:?}",
        p.write_globs.keys().collect::<Vec<_>>()
    );
    for ((proto, port), e) in &p.outbound {
        let _ = writeln!(
            s,
            "  outbound {proto}/{port}: {:?}",
            e.peers.iter().map(|n| n.to_string()).collect::<Vec<_>>()
        );
    }
    let _ = writeln!(
        s,
        "  inbound: {:?}",
        p.inbound.as_ref().map(|i| i.keys().collect::<Vec<_>>())
    );
    let k = kernel_writes(p);
    let _ = writeln!(
        s,
        "  kernel_writes: files {:?} dirs {:?}",
        k.files.iter().map(|b| Bytes(b)).collect::<Vec<_>>(),
        k.dirs.iter().map(|b| Bytes(b)).collect::<Vec<_>>()
    );
    let _ = writeln!(s, "  kernel_outbound: {:?}", kernel_outbound(p));
    let _ = writeln!(s, "  kernel_inbound: {:?}", kernel_inbound(p));
    s
}

fn describe_case(c: &Case) -> String {
    let mut s = String::new();
    match &c.kev {
        Kev::Write { raw, flags, oflags } => {
            let _ = writeln!(
                s,
                "  write-open: raw {:?} {:?} flags {oflags:#o}",
                Bytes(raw),
                flags
            );
        }
        Kev::Net(n) => {
            let _ = writeln!(s, "  kernel: {n:?}\n  decides on: {:?}", decide(n));
        }
    }
    let _ = writeln!(
        s,
        "  event: {:?} res {} fd {:?}",
        c.event.event_type(),
        c.event.res,
        c.event.fd
    );
    s
}

fn fails(p: &Profile, c: &Case, o: Oracle) -> bool {
    allowed_by(p, c).contains(&o) && p.check(&c.event).is_some()
}

/// Every profile with one entry less.
fn smaller(p: &Profile) -> Vec<Profile> {
    let mut out = Vec::new();
    for k in p.write_files.keys() {
        let mut q = p.clone();
        q.write_files.remove(k);
        out.push(q);
    }
    for k in p.write_dirs.keys() {
        let mut q = p.clone();
        q.write_dirs.remove(k);
        out.push(q);
    }
    for k in p.write_globs.keys() {
        let mut q = p.clone();
        q.write_globs.remove(k);
        out.push(q);
    }
    for (k, e) in &p.outbound {
        let mut q = p.clone();
        q.outbound.remove(k);
        out.push(q);
        if e.peers.len() > 1 {
            for n in &e.peers {
                let mut q = p.clone();
                if let Some(x) = q.outbound.get_mut(k) {
                    x.peers.remove(n);
                }
                out.push(q);
            }
        }
    }
    if let Some(i) = &p.inbound {
        for k in i.keys() {
            let mut q = p.clone();
            if let Some(x) = &mut q.inbound {
                x.remove(k);
            }
            out.push(q);
        }
    }
    out
}

fn shrink(p: &Profile, c: &Case, o: Oracle) -> Profile {
    let mut cur = p.clone();
    'outer: loop {
        for q in smaller(&cur) {
            if fails(&q, c, o) {
                cur = q;
                continue 'outer;
            }
        }
        return cur;
    }
}

struct Failure {
    seed: u64,
    case: u64,
    profile: Profile,
    c: Case,
    oracle: Oracle,
    anomaly: Option<Anomaly>,
}

#[derive(Default)]
struct Stats {
    profiles: u64,
    events: u64,
    /// Per category: (events, kernel allows, matcher allows, matcher allows but not kernel).
    by_cat: BTreeMap<String, [u64; 4]>,
}

fn run(
    seeds: std::ops::Range<u64>,
    profiles: u64,
    events: usize,
    mutant: bool,
) -> (Stats, Vec<Failure>) {
    let mut st = Stats::default();
    let mut failures = Vec::new();
    for seed in seeds {
        let mut rng = Rng::with_seed(seed);
        for case in 0..profiles {
            let p = gen_profile(&mut rng);
            st.profiles += 1;
            for _ in 0..events {
                let c = if rng.pct(55) {
                    gen_write(&mut rng, &p)
                } else {
                    gen_net(&mut rng, &p)
                };
                st.events += 1;
                let allowed = allowed_by_as(&p, &c, mutant);
                let anomaly = p.check(&c.event);
                let e = st.by_cat.entry(category(&c)).or_default();
                e[0] += 1;
                if allowed.contains(&Oracle::Kernel) {
                    e[1] += 1;
                }
                if anomaly.is_none() {
                    e[2] += 1;
                    if !allowed.contains(&Oracle::Kernel) {
                        e[3] += 1;
                    }
                }
                if anomaly.is_some() {
                    for oracle in allowed {
                        failures.push(Failure {
                            seed,
                            case,
                            profile: p.clone(),
                            c: c.clone(),
                            oracle,
                            anomaly: anomaly.clone(),
                        });
                    }
                }
            }
        }
    }
    (st, failures)
}

#[test]
fn what_the_kernel_entries_allow_the_matcher_allows() {
    let seeds = env_num("KERNEL_ENTRIES_SEEDS", 8);
    let first = env_num("KERNEL_ENTRIES_FIRST_SEED", 0);
    let profiles = env_num("KERNEL_ENTRIES_PROFILES", 250);
    let events = env_num("KERNEL_ENTRIES_EVENTS", 240) as usize;
    let t0 = std::time::Instant::now();
    let (st, failures) = run(first..first + seeds, profiles, events, false);
    let total = |i: usize| st.by_cat.values().map(|v| v[i]).sum::<u64>();
    eprintln!(
        "kernel entries soundness: {} profiles, {} events, {} allowed by the kernel model, {} \
         allowed by the matcher, {} of those left to userspace by the kernel; {} failures; {:.1?}",
        st.profiles,
        st.events,
        total(1),
        total(2),
        total(3),
        failures.len(),
        t0.elapsed()
    );
    eprintln!(
        "  by kind: [events, kernel allows, matcher allows, matcher allows but not the kernel]"
    );
    for (k, v) in &st.by_cat {
        eprintln!("  {k:<32} {v:?}");
    }
    assert!(
        total(1) * 20 >= st.events,
        "too few events the kernel allows: {} of {}",
        total(1),
        st.events
    );
    if failures.is_empty() {
        return;
    }
    let mut seen = BTreeSet::new();
    let mut msg = format!(
        "{} events the kernel entries allow are anomalies ({} by the kernel model, {} by the \
         allows methods):\n",
        failures.len(),
        failures
            .iter()
            .filter(|f| f.oracle == Oracle::Kernel)
            .count(),
        failures
            .iter()
            .filter(|f| f.oracle == Oracle::Allows)
            .count(),
    );
    for f in &failures {
        if seen.len() >= 12 || !seen.insert((f.oracle, category(&f.c), f.c.how)) {
            continue;
        }
        let p = shrink(&f.profile, &f.c, f.oracle);
        let _ = write!(
            msg,
            "--- {:?} allows an anomaly (seed {}, case {}, {} {}): {:?}\n{}{}",
            f.oracle,
            f.seed,
            f.case,
            category(&f.c),
            f.c.how,
            f.anomaly,
            describe_profile(&p),
            describe_case(&f.c)
        );
    }
    panic!("{msg}");
}

// ------------------------------------------------------------------ fixed cases

#[test]
fn the_models_install_and_decide_as_the_probe_does() {
    let mut p = Profile::new(ImageRef::new("docker.io/library/app", "1"));
    p.write_files.insert("/run/a.pid".into(), Seen::default());
    p.write_dirs.insert("//srv//data/".into(), Seen::default());
    let k = kernel_writes(&p);
    let e = installed_writes(&k.files, &k.dirs);
    assert!(e.contains(&b"/run/a.pid\0".to_vec()));
    assert!(e.contains(&b"/srv/data/".to_vec()) && e.contains(&b"/srv/data\0".to_vec()));
    let w = |raw: &[u8]| Case {
        kev: Kev::Write {
            raw: raw.to_vec(),
            flags: PathFlags::default(),
            oflags: O_WRONLY,
        },
        event: write_event(raw, PathFlags::default(), O_WRONLY, false),
        how: "fixed",
    };
    assert_eq!(
        allowed_by(&p, &w(b"/srv/data/x")),
        vec![Oracle::Kernel, Oracle::Allows]
    );
    assert!(allowed_by(&p, &w(b"/srv/database")).is_empty());
    assert!(p.check(&w(b"/srv/data/x").event).is_none());
    assert!(p.check(&w(b"/srv/database").event).is_some());
    // a UDP reply from a bound port is the server's; a client's from the port it sends to
    // is the kernel's server side too, and userspace's (`is_server_end`)
    let facts = NetFacts {
        kind: Kind::Sendto,
        ret: 10,
        family: AF_INET,
        protocol: 17,
        typ: 2,
        lport: 5353,
        known: true,
        bound: false,
        local: "10.9.9.9".parse().expect("ip"),
        addr_family: AF_INET,
        port: 5353,
        peer: "10.0.0.1".parse().expect("ip"),
    };
    assert_eq!(decide(&facts), Decision::Inbound(17, 5353));
    p.inbound
        .as_mut()
        .expect("inbound")
        .insert((Proto::Udp, 5353), Seen::default());
    let ev = net_event(&facts);
    assert_eq!(p.check(&ev), None);
}

/// The check is not vacuous: a derivation that takes exact files for directories is
/// caught.
#[test]
fn a_wrong_derivation_is_caught() {
    let (_, failures) = run(0..1, 60, 200, true);
    assert!(
        failures.iter().any(|f| f.oracle == Oracle::Kernel),
        "the mutant went unnoticed"
    );
    let f = &failures[0];
    eprintln!(
        "{:?}\n{}{}",
        f.anomaly,
        describe_profile(&f.profile),
        describe_case(&f.c)
    );
}
