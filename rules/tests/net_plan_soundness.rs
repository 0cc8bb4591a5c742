//! The kernel's network plans are sound: a generative test.
//!
//! In the enforce modes the probe drops, in the kernel, a TCP/UDP event of a profiled
//! container whose (side, protocol, port) the loaded rules do not need
//! (`Ruleset::net_plan`, installed as `NET_FILTER` + `RULE_PORTS`) and that the profile
//! allows. A rule that fires on such an event would silently never fire. For many
//! generated (ruleset, network event) pairs where a rule fires, this checks that the
//! event is reported, under two oracles:
//! - **kernel**: an independent model of the kernel's decision (probe.bpf.c `exit_net`,
//!   `net_dropped`, `inbound_dropped`, `emit_accept`, `net_scope`; probe/src/filter.rs
//!   `NetFilter`; enforcer `net_side`): events are generated as the kernel's facts (kind,
//!   return value, the socket's family/type/protocol/ports/addresses/bound flag, the
//!   passed sockaddr), the kernel decides side, protocol and port from them, and the
//!   userspace `Event` is made from the same facts as `probe/src/enrich/net.rs` makes it
//!   (replicated here: the rules crate cannot reach the probe's private enrichment). The
//!   plan is installed as the probe installs it: a protocol is filtered unless
//!   `is_off`, and `pairs()` are the needed pairs;
//! - **needs**: `NetPlan::needs(proto, port)`, the plan's own account of it.
//!
//! The profile's part of the decision is taken as "allows" (any profile might).
//!
//! Rules combine (`and`/`or`/`not`, macros, lists, exceptions) tests of `fd.l4proto`,
//! every port field (`fd.sport`, `fd.cport`, `fd.port`, `fd.rport`, `fd.lport`), address
//! and network fields, fields falco-learn never fills (`fd.sip.name`, …), `evt.type` sets
//! and a few others, with `=`, `!=`, `in`, `intersects`, `<`, `>`, `exists`, string
//! operators, transformers and `val()`; numeric literals in several spellings (`0x16`,
//! `022`, quoted, out of range). Ports come from one small pool so that rules match often.
//! Deterministic: `NET_PLAN_SEEDS` seeds (default 8) of `NET_PLAN_CASES` rulesets each
//! (default 1000), every ruleset against `NET_PLAN_EVENTS` events (default 320);
//! `NET_PLAN_FIRST_SEED` moves the seeds. A failure is shrunk and printed with the
//! rules' YAML, the kernel's facts, the event's fields and the plan.

mod common;

use common::{
    env_num, load, seed_range, shrink, shrink_groups, Atom, Exc, ExcVal, Rhs, RngExt, RuleSpec,
    Spec, C,
};
use falco_learn_event::fields::{extract, parse_field_ref};
use falco_learn_event::{Args, Event, EventType, EventTypeField, Fd, FdType, L4Proto};
use falco_learn_rules::net_plan::{NetPlan, Side, L4};
use falco_learn_rules::Ruleset;
use fastrand::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

// ------------------------------------------------------------------ the kernel's facts

const AF_UNSPEC: u16 = 0;
const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const SOCK_STREAM: u16 = 1;
const SOCK_DGRAM: u16 = 2;
const SOCK_RAW: u16 = 3;
const EINPROGRESS: i64 = 115;

/// The ports everything is drawn from (rules and events alike).
const PORTS: &[u16] = &[0, 22, 53, 80, 443, 2222, 5353, 8080, 40000, 65535];

const V4: &[[u8; 4]] = &[
    [10, 0, 0, 1],
    [10, 1, 2, 3],
    [127, 0, 0, 1],
    [0, 0, 0, 0],
    [192, 168, 1, 5],
    [8, 8, 8, 8],
];

const V6: &[&str] = &[
    "::1",
    "2001:db8::1",
    "fe80::1",
    "::ffff:10.0.0.1",
    "::ffff:127.0.0.1",
    "::",
    "2001:db8:1::53",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connect,
    Sendto,
    Sendmsg,
    Accept,
    Accept4,
}

impl Kind {
    fn typ(self) -> EventType {
        match self {
            Kind::Connect => EventType::Connect,
            Kind::Sendto => EventType::Sendto,
            Kind::Sendmsg => EventType::Sendmsg,
            Kind::Accept => EventType::Accept,
            Kind::Accept4 => EventType::Accept4,
        }
    }

    fn accept(self) -> bool {
        matches!(self, Kind::Accept | Kind::Accept4)
    }
}

/// `struct fl_sock` as `sock_info` fills it.
#[derive(Debug, Clone, Copy, Default)]
struct Sock {
    family: u16,
    typ: u16,
    protocol: u16,
    lport: u16,
    rport: u16,
    /// `FL_SOCK_FLAGS_KNOWN`
    known: bool,
    /// `FL_SOCK_BOUND`
    bound: bool,
    laddr: [u8; 16],
    raddr: [u8; 16],
}

/// `struct fl_addr`.
#[derive(Debug, Clone, Copy, Default)]
struct Addr {
    family: u16,
    port: u16,
    addr: [u8; 16],
}

/// One network syscall as the kernel sees it, and the event userspace makes of it.
#[derive(Debug, Clone)]
struct Net {
    kind: Kind,
    ret: i64,
    /// The socket (for an accept: the accepted one).
    sock: Sock,
    /// For an accept: the listener's bound flag.
    listener_bound: bool,
    /// The sockaddr as passed (connect, sendto, sendmsg).
    passed: Addr,
    /// What the kernel decides on: side, protocol, port (`None`: never dropped).
    decision: Option<(Side, L4, u16)>,
    event: Event,
}

fn ip_of(family: u16, a: &[u8; 16]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(*a))),
        _ => None,
    }
}

fn addr_bytes(rng: &mut Rng, family: u16) -> [u8; 16] {
    let mut b = [0u8; 16];
    match family {
        AF_INET => {
            let a: [u8; 4] = *rng.pick(V4);
            b[..4].copy_from_slice(&a)
        }
        AF_INET6 => {
            let a: Ipv6Addr = rng.pick(V6).parse().expect("v6");
            b = a.octets();
        }
        _ => {}
    }
    b
}

/// `exit_net`/`emit_accept` up to the plan: the side, protocol and port the kernel looks
/// up, or `None` when it reports the event whatever the plan (or emits nothing).
fn kernel_decision(kind: Kind, ret: i64, addr: &Addr, sock: &Sock) -> Option<(Side, L4, u16)> {
    let l4 = |p: u16| match p {
        6 => Some(L4::Tcp),
        17 => Some(L4::Udp),
        _ => None,
    };
    if kind.accept() {
        // inbound_dropped
        if ret < 0 || (sock.family != AF_INET && sock.family != AF_INET6) {
            return None;
        }
        return l4(sock.protocol).map(|p| (Side::Server, p, sock.lport));
    }
    // net_dropped
    if ret < 0 && !(kind == Kind::Connect && ret == -EINPROGRESS) {
        return None;
    }
    if (addr.family != AF_INET && addr.family != AF_INET6) || sock.family != addr.family {
        return None;
    }
    let p = l4(sock.protocol)?;
    if kind != Kind::Connect {
        if p != L4::Udp || !sock.known {
            return None;
        }
        if sock.bound || sock.lport == addr.port {
            // inbound_dropped(sock): the family was checked above
            return Some((Side::Server, p, sock.lport));
        }
    }
    if addr.family == AF_INET6 && addr.addr[..10] == [0; 10] && addr.addr[10..12] == [0xff; 2] {
        return None;
    }
    Some((Side::Client, p, addr.port))
}

// probe/src/enrich/net.rs, replicated.

fn fd_type(family: u16) -> FdType {
    match family {
        AF_INET => FdType::Ipv4,
        AF_INET6 => FdType::Ipv6,
        AF_UNIX => FdType::Unix,
        16 => FdType::Netlink,
        17 => FdType::Packet,
        _ => FdType::Other,
    }
}

fn l4proto(protocol: u16, typ: u16) -> L4Proto {
    match (protocol, typ) {
        (6, _) => L4Proto::Tcp,
        (17, _) => L4Proto::Udp,
        (1, _) | (58, _) => L4Proto::Icmp,
        (_, 1) => L4Proto::Tcp,
        (_, 2) => L4Proto::Udp,
        (_, 3) => L4Proto::Raw,
        _ => L4Proto::Unknown,
    }
}

fn sockfamily(family: u16) -> &'static str {
    match family {
        AF_INET | AF_INET6 => "ip",
        AF_UNIX => "unix",
        16 => "netlink",
        17 => "packet",
        _ => "",
    }
}

fn enrich(kind: Kind, res: i64, fdnum: i64, addr: &Addr, s: &Sock, listener_bound: bool) -> Event {
    let typ = kind.typ();
    let inet = s.family == AF_INET || s.family == AF_INET6;
    let bound = if kind.accept() {
        listener_bound
    } else {
        s.bound
    };
    let mut f = Fd {
        num: fdnum,
        typ: fd_type(s.family),
        l4proto: l4proto(s.protocol, s.typ),
        cip: ip_of(s.family, &s.laddr),
        cport: inet.then_some(s.lport),
        sip: ip_of(s.family, &s.raddr),
        sport: inet.then_some(s.rport),
        is_client: true,
        connected: s.rport != 0,
        bound: s.known.then_some(bound),
        sockfamily: sockfamily(s.family).to_string(),
        ..Default::default()
    };
    if s.family == 0 {
        f.typ = fd_type(addr.family);
        f.sockfamily = sockfamily(addr.family).to_string();
    }
    if let Some(peer) = ip_of(addr.family, &addr.addr) {
        f.sip = Some(peer);
        f.sport = Some(addr.port);
    }
    f.connected = typ == EventType::Connect && (res == 0 || res == -EINPROGRESS);
    if kind.accept() {
        f.connected = res >= 0;
    }
    if kind.accept()
        || (typ != EventType::Connect && f.l4proto == L4Proto::Udp && f.bound == Some(true))
    {
        std::mem::swap(&mut f.cip, &mut f.sip);
        std::mem::swap(&mut f.cport, &mut f.sport);
        f.is_client = false;
    }
    let a = match ip_of(addr.family, &addr.addr) {
        Some(ip) => format!("{ip}:{}", addr.port),
        None => String::new(),
    };
    let args = if kind.accept() {
        Args::None
    } else if typ == EventType::Connect {
        Args::Connect { fd: fdnum, addr: a }
    } else {
        Args::Send {
            fd: fdnum,
            size: 64,
            addr: a,
        }
    };
    f.unmap_ipv4();
    Event {
        ts: 1,
        typ: EventTypeField(typ),
        res,
        fd: Some(f),
        args,
        ..Default::default()
    }
}

impl Net {
    fn new(kind: Kind, ret: i64, sock: Sock, listener_bound: bool, passed: Addr) -> Net {
        // exit_net: a connection made takes the socket's peer
        let mut addr = if kind.accept() {
            Addr::default()
        } else {
            passed
        };
        let made = if kind == Kind::Connect {
            ret == 0 || ret == -EINPROGRESS
        } else {
            ret >= 0 && sock.protocol == 6
        };
        if !kind.accept()
            && made
            && sock.rport != 0
            && (sock.family == AF_INET || sock.family == AF_INET6)
        {
            addr.family = sock.family;
            addr.port = sock.rport;
            addr.addr = sock.raddr;
        }
        let decision = kernel_decision(kind, ret, &addr, &sock);
        let fdnum = if kind.accept() { ret } else { 3 };
        let event = enrich(kind, ret, fdnum, &addr, &sock, listener_bound);
        Net {
            kind,
            ret,
            sock,
            listener_bound,
            passed,
            decision,
            event,
        }
    }

    fn field(&self, name: &str) -> Option<String> {
        let f = parse_field_ref(name).ok()?;
        extract(&self.event, &f).map(|v| v.render().into_owned())
    }

    fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "  kernel: {:?} ret {} sock {:?} listener_bound {} passed {:?}",
            self.kind, self.ret, self.sock, self.listener_bound, self.passed
        );
        let _ = writeln!(s, "  kernel decides on: {:?}", self.decision);
        for f in [
            "evt.type",
            "evt.res",
            "fd.type",
            "fd.l4proto",
            "fd.cip",
            "fd.cport",
            "fd.sip",
            "fd.sport",
            "fd.lip",
            "fd.lport",
            "fd.rip",
            "fd.rport",
            "fd.connected",
            "evt.arg.addr",
        ] {
            let _ = writeln!(s, "  {f}: {:?}", self.field(f));
        }
        s
    }

    fn category(&self) -> String {
        match self.decision {
            None => "reported".into(),
            Some((side, p, _)) => format!(
                "{}-{}-{:?}{}",
                side.as_str(),
                p.as_str(),
                self.kind,
                if self.kind != Kind::Connect && !self.kind.accept() && !self.sock.bound {
                    "-unbound"
                } else {
                    ""
                }
            ),
        }
    }
}

fn gen_net(rng: &mut Rng) -> Net {
    let kind = *rng.weighted(&[
        (Kind::Connect, 35),
        (Kind::Sendto, 20),
        (Kind::Sendmsg, 10),
        (Kind::Accept, 15),
        (Kind::Accept4, 15),
    ]);
    let family = *rng.weighted(&[(AF_INET, 60), (AF_INET6, 33), (AF_UNIX, 4), (AF_UNSPEC, 3)]);
    let (typ, protocol) = *rng.weighted(&[
        ((SOCK_STREAM, 6), 40),
        ((SOCK_DGRAM, 17), 40),
        ((SOCK_DGRAM, 1), 4),
        ((SOCK_RAW, 17), 3),
        ((SOCK_RAW, 255), 3),
        ((SOCK_DGRAM, 136), 2),
        ((SOCK_STREAM, 262), 2),
        ((SOCK_STREAM, 132), 2),
        ((SOCK_DGRAM, 58), 2),
        ((0, 0), 2),
    ]);
    let mut sock = Sock {
        family,
        typ,
        protocol,
        lport: *rng.pick(PORTS),
        rport: if rng.pct(50) { 0 } else { *rng.pick(PORTS) },
        known: rng.pct(92),
        bound: rng.pct(35),
        laddr: addr_bytes(rng, family),
        raddr: addr_bytes(rng, family),
    };
    if sock.rport == 0 && rng.pct(70) {
        sock.raddr = [0; 16];
    }
    let ret = if kind.accept() {
        *rng.weighted(&[(4i64, 90), (-11, 10)])
    } else if kind == Kind::Connect {
        *rng.weighted(&[(0i64, 70), (-EINPROGRESS, 20), (-111, 10)])
    } else {
        *rng.weighted(&[(64i64, 90), (-1, 10)])
    };
    let afamily = if rng.pct(88) {
        family
    } else {
        *rng.pick(&[AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC])
    };
    let mut passed = Addr {
        family: afamily,
        port: *rng.pick(PORTS),
        addr: addr_bytes(rng, afamily),
    };
    if rng.pct(12) {
        passed.port = sock.lport;
    }
    if kind == Kind::Connect && ret >= -EINPROGRESS && rng.pct(70) {
        // connected: the socket's peer is usually what was passed
        sock.rport = passed.port;
        if sock.family == passed.family {
            sock.raddr = passed.addr;
        }
    }
    Net::new(kind, ret, sock, rng.pct(60), passed)
}

// ------------------------------------------------------------------ the oracles

/// The probe's form of a side's plan (enforcer `net_side`): the protocols filtered and
/// the pairs needed.
struct Installed {
    protocols: Vec<u8>,
    needed: BTreeSet<(u8, u16)>,
}

fn install(plan: &NetPlan) -> Installed {
    Installed {
        protocols: L4::ALL
            .iter()
            .filter(|p| !plan.is_off(**p))
            .map(|p| p.ipproto())
            .collect(),
        needed: plan
            .pairs()
            .into_iter()
            .map(|(p, port)| (p.ipproto(), port))
            .collect(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Oracle {
    /// The kernel model (`NET_FILTER`, `RULE_PORTS`) drops it.
    Kernel,
    /// `NetPlan::needs` says it is not needed.
    Needs,
}

fn dropped_by(plans: &[NetPlan; 2], n: &Net) -> Vec<Oracle> {
    let Some((side, p, port)) = n.decision else {
        return Vec::new();
    };
    let plan = &plans[usize::from(side == Side::Server)];
    let mut v = Vec::new();
    let k = install(plan);
    let ip = p.ipproto();
    if k.protocols.contains(&ip) && !k.needed.contains(&(ip, port)) {
        v.push(Oracle::Kernel);
    }
    if !plan.needs(p, port) {
        v.push(Oracle::Needs);
    }
    v
}

// ------------------------------------------------------------------ rules

/// A literal, quoted (`"…"`) when `quoted`: the rules print literals as they are.
fn literal(s: String, quoted: bool) -> Rhs {
    Rhs::One(if quoted { format!("\"{s}\"") } else { s })
}

fn spec(rules: Vec<RuleSpec>) -> Spec {
    Spec {
        rules,
        lit: str::to_owned,
    }
}

/// Fields by kind, with weights.
#[derive(Clone, Copy, PartialEq)]
enum FKind {
    Port,
    Proto,
    Ip,
    Net,
    Unavailable,
    Type,
    Other,
}

const PORT_FIELDS: &[(&str, usize)] = &[
    ("fd.sport", 30),
    ("fd.rport", 20),
    ("fd.lport", 20),
    ("fd.cport", 12),
    ("fd.port", 12),
];

const IP_FIELDS: &[&str] = &["fd.sip", "fd.cip", "fd.rip", "fd.lip", "fd.ip"];
const NET_FIELDS: &[&str] = &["fd.net", "fd.snet", "fd.cnet", "fd.rnet", "fd.lnet"];
const UNAVAILABLE: &[&str] = &["fd.sip.name", "fd.rip.name", "fd.cip.name", "fd.lip.name"];

const TYPES: &[&str] = &[
    "connect", "sendto", "sendmsg", "accept", "accept4", "socket", "execve", "openat",
];

const PROTO_VALUES: &[&str] = &[
    "tcp", "tcp", "udp", "udp", "icmp", "raw", "<NA>", "TCP", "unknown", "t", "ud",
];

const IPS: &[&str] = &[
    "10.0.0.1",
    "10.1.2.3",
    "127.0.0.1",
    "0.0.0.0",
    "192.168.1.5",
    "8.8.8.8",
    "::1",
    "2001:db8::1",
    "::ffff:10.0.0.1",
    "fe80::1",
];

const NETS: &[&str] = &[
    "10.0.0.0/8",
    "0.0.0.0/0",
    "127.0.0.1/32",
    "192.168.0.0/16",
    "::/0",
    "2001:db8::/32",
    "::ffff:0:0/96",
    "fe80::/10",
    "10.1.2.3",
];

/// A port literal: mostly from the pool, sometimes spelt otherwise.
fn port_lit(rng: &mut Rng) -> (String, bool) {
    if rng.pct(85) {
        let p = rng.pick(PORTS).to_string();
        return (p, rng.pct(15));
    }
    let s = *rng.pick(&[
        "0x16", "0x35", "022", "0053", "65536", "70000", "-1", "-65514", "0x0", " 53",
    ]);
    (s.to_string(), s.starts_with(' ') || rng.pct(20))
}

fn port_items(rng: &mut Rng) -> Vec<String> {
    let n = 1 + rng.usize(..4);
    (0..n).map(|_| port_lit(rng).0.trim().to_string()).collect()
}

fn gen_atom(rng: &mut Rng) -> C {
    let kind = *rng.weighted(&[
        (FKind::Port, 40),
        (FKind::Proto, 22),
        (FKind::Ip, 7),
        (FKind::Net, 5),
        (FKind::Unavailable, 5),
        (FKind::Type, 11),
        (FKind::Other, 10),
    ]);
    let atom = |field, op, rhs| {
        C::Atom(Atom {
            field,
            transform: None,
            op,
            rhs,
        })
    };
    match kind {
        FKind::Port => {
            let field = *rng.weighted(PORT_FIELDS);
            let op = *rng.weighted(&[
                ("=", 30),
                ("in", 25),
                ("!=", 10),
                ("intersects", 5),
                ("<", 5),
                (">", 5),
                ("<=", 3),
                (">=", 3),
                ("exists", 4),
                ("val", 6),
                ("transform", 3),
            ]);
            match op {
                "exists" => atom(field, "exists", Rhs::None),
                "in" | "intersects" => atom(
                    field,
                    op,
                    Rhs::List {
                        items: port_items(rng),
                        named: rng.pct(30),
                    },
                ),
                "val" => {
                    let other = *rng.weighted(PORT_FIELDS);
                    atom(
                        field,
                        *rng.pick(&["=", "!=", "<", ">"]),
                        Rhs::Bare(format!("val({other})")),
                    )
                }
                "transform" => C::Atom(Atom {
                    field,
                    transform: Some("len"),
                    op: "=",
                    rhs: literal(rng.pick(&["1", "2", "3", "4", "5"]).to_string(), false),
                }),
                _ => {
                    let (l, q) = port_lit(rng);
                    atom(field, op, literal(l, q))
                }
            }
        }
        FKind::Proto => {
            let op = *rng.weighted(&[
                ("=", 35),
                ("!=", 15),
                ("in", 20),
                ("intersects", 4),
                ("contains", 4),
                ("startswith", 4),
                ("glob", 4),
                ("exists", 4),
                ("icontains", 3),
                ("pmatch", 2),
                ("transform", 5),
            ]);
            let v = |rng: &mut Rng| rng.pick(PROTO_VALUES).to_string();
            match op {
                "exists" => atom("fd.l4proto", "exists", Rhs::None),
                "in" | "intersects" | "pmatch" => {
                    let n = 1 + rng.usize(..3);
                    let items = (0..n)
                        .map(|_| {
                            let s = v(rng);
                            if s == "<NA>" {
                                "tcp".to_string()
                            } else {
                                s
                            }
                        })
                        .collect();
                    atom(
                        "fd.l4proto",
                        op,
                        Rhs::List {
                            items,
                            named: rng.pct(30),
                        },
                    )
                }
                "transform" => {
                    let t = *rng.pick(&["toupper", "tolower"]);
                    let op = *rng.pick(&["=", "!="]);
                    C::Atom(Atom {
                        field: "fd.l4proto",
                        transform: Some(t),
                        op,
                        rhs: literal(rng.pick(&["TCP", "UDP", "tcp", "udp"]).to_string(), false),
                    })
                }
                "glob" => atom(
                    "fd.l4proto",
                    "glob",
                    literal(rng.pick(&["t*", "*p", "?dp", "*"]).to_string(), true),
                ),
                _ => {
                    let s = v(rng);
                    let q = s.contains('<') || rng.pct(20);
                    atom("fd.l4proto", op, literal(s, q))
                }
            }
        }
        FKind::Ip | FKind::Net => {
            let field = if kind == FKind::Ip {
                *rng.pick(IP_FIELDS)
            } else {
                *rng.pick(NET_FIELDS)
            };
            let op = *rng.weighted(&[("=", 30), ("!=", 15), ("in", 30), ("exists", 5)]);
            let one = |rng: &mut Rng| {
                if rng.pct(50) {
                    rng.pick(IPS).to_string()
                } else {
                    rng.pick(NETS).to_string()
                }
            };
            match op {
                "exists" => atom(field, "exists", Rhs::None),
                "in" => {
                    let n = 1 + rng.usize(..3);
                    let items = (0..n).map(|_| format!("\"{}\"", one(rng))).collect();
                    atom(
                        field,
                        "in",
                        Rhs::List {
                            items,
                            named: rng.pct(30),
                        },
                    )
                }
                _ => {
                    let s = one(rng);
                    atom(field, op, literal(s, true))
                }
            }
        }
        FKind::Unavailable => {
            let field = *rng.pick(UNAVAILABLE);
            let op = *rng.pick(&["=", "!=", "exists", "contains", "in", "startswith"]);
            match op {
                "exists" => atom(field, "exists", Rhs::None),
                "in" => atom(
                    field,
                    "in",
                    Rhs::List {
                        items: vec!["kubernetes.default".into(), "\"\"".into()],
                        named: false,
                    },
                ),
                _ => atom(field, op, literal("kubernetes.default".into(), false)),
            }
        }
        FKind::Type => {
            let op = *rng.weighted(&[("=", 30), ("!=", 15), ("in", 45)]);
            if op == "in" {
                let n = 1 + rng.usize(..4);
                let items = (0..n).map(|_| rng.pick(TYPES).to_string()).collect();
                atom(
                    "evt.type",
                    "in",
                    Rhs::List {
                        items,
                        named: rng.pct(30),
                    },
                )
            } else {
                atom("evt.type", op, literal(rng.pick(TYPES).to_string(), false))
            }
        }
        FKind::Other => {
            let t = *rng.pick(&[
                "fd.type = ipv4",
                "fd.type = ipv6",
                "fd.type in (ipv4, ipv6)",
                "fd.typechar = 4",
                "fd.sockfamily = ip",
                "fd.connected = true",
                "fd.connected = false",
                "fd.name_changed = true",
                "evt.res = SUCCESS",
                "evt.rawres >= 0",
                "evt.rawres < 0",
                "evt.failed = false",
                "fd.num >= 0",
                "fd.name contains \":\"",
                "fd.name contains \"->\"",
                "fd.name endswith \":53\"",
                "fd.name contains \":22->\"",
                "evt.arg.addr contains \":53\"",
                "fd.lport = val(fd.sport)",
                "fd.rport = val(fd.sport)",
                "proc.name = nc",
                "not proc.name = nc",
            ]);
            C::Raw(t.to_string())
        }
    }
}

fn gen_cond(rng: &mut Rng, depth: usize) -> C {
    if depth == 0 || rng.pct(35) {
        return gen_atom(rng);
    }
    let c = match rng.usize(..10) {
        0..=4 => {
            let n = 2 + rng.usize(..3);
            C::And((0..n).map(|_| gen_cond(rng, depth - 1)).collect())
        }
        5..=7 => {
            let n = 2 + rng.usize(..2);
            C::Or((0..n).map(|_| gen_cond(rng, depth - 1)).collect())
        }
        _ => C::Not(Box::new(gen_cond(rng, depth - 1))),
    };
    if rng.pct(12) {
        C::Macro(Box::new(c))
    } else {
        c
    }
}

/// A test that bounds the plan (so that it filters): a port of the side, a protocol, an
/// impossible branch, or an `or` of such.
fn gen_bound(rng: &mut Rng, depth: usize) -> C {
    let port_test = |rng: &mut Rng| {
        let field = *rng.weighted(&[("fd.sport", 5), ("fd.rport", 3), ("fd.lport", 3)]);
        if rng.pct(50) {
            let (l, q) = port_lit(rng);
            C::Atom(Atom {
                field,
                transform: None,
                op: "=",
                rhs: literal(l, q),
            })
        } else {
            let op = *rng.weighted(&[("in", 5), ("intersects", 1)]);
            C::Atom(Atom {
                field,
                transform: None,
                op,
                rhs: Rhs::List {
                    items: port_items(rng),
                    named: rng.pct(30),
                },
            })
        }
    };
    let proto_test = |rng: &mut Rng| {
        let op = *rng.weighted(&[("=", 5), ("!=", 2), ("in", 2)]);
        let rhs = if op == "in" {
            Rhs::List {
                items: vec![rng.pick(&["tcp", "udp", "icmp"]).to_string()],
                named: rng.pct(30),
            }
        } else {
            literal(
                rng.pick(&["tcp", "udp", "tcp", "udp", "icmp"]).to_string(),
                false,
            )
        };
        C::Atom(Atom {
            field: "fd.l4proto",
            transform: None,
            op,
            rhs,
        })
    };
    match rng.usize(..10) {
        0..=3 => port_test(rng),
        4..=5 => C::And(vec![proto_test(rng), port_test(rng)]),
        6 if depth > 0 => C::Or(vec![gen_bound(rng, depth - 1), gen_bound(rng, depth - 1)]),
        7 => C::And(vec![port_test(rng), port_test(rng)]),
        8 => {
            let op = *rng.pick(&["=", "!=", "exists"]);
            let field = *rng.pick(UNAVAILABLE);
            C::Atom(Atom {
                field,
                transform: None,
                op,
                rhs: if op == "exists" {
                    Rhs::None
                } else {
                    literal("x".into(), false)
                },
            })
        }
        _ => proto_test(rng),
    }
}

/// A rule: mostly an event-type test and'ed with a generated condition (and often a test
/// that bounds the plan).
fn gen_rule(rng: &mut Rng) -> RuleSpec {
    let mut body = gen_cond(rng, 3);
    if rng.pct(85) {
        let b = gen_bound(rng, 2);
        body = if rng.pct(50) {
            C::And(vec![b, body])
        } else {
            C::And(vec![body, b])
        };
    }
    let cond = if rng.pct(80) {
        let n = 1 + rng.usize(..3);
        let items: Vec<String> = (0..n)
            .map(|_| {
                rng.pick(&[
                    "connect", "connect", "sendto", "sendmsg", "accept", "accept4",
                ])
                .to_string()
            })
            .collect();
        let types = C::Atom(Atom {
            field: "evt.type",
            transform: None,
            op: "in",
            rhs: Rhs::List {
                items,
                named: rng.pct(20),
            },
        });
        C::And(vec![types, body])
    } else {
        body
    };
    let mut exceptions = Vec::new();
    if rng.pct(20) {
        let pool: &[(&str, usize)] = &[
            ("fd.sport", 4),
            ("fd.rport", 2),
            ("fd.lport", 2),
            ("fd.l4proto", 4),
            ("evt.type", 1),
            ("fd.sip", 1),
            ("proc.name", 1),
        ];
        let k = 1 + rng.usize(..2);
        let mut fields: Vec<&'static str> = Vec::new();
        while fields.len() < k {
            let f = *rng.weighted(pool);
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
        let comps: Vec<&'static str> = fields
            .iter()
            .map(|_| *rng.weighted(&[("=", 4), ("in", 3), ("!=", 1)]))
            .collect();
        let nrows = 1 + rng.usize(..2);
        let rows = (0..nrows)
            .map(|_| {
                fields
                    .iter()
                    .zip(&comps)
                    .map(|(f, c)| {
                        let one = |rng: &mut Rng| -> String {
                            match *f {
                                "fd.l4proto" => rng.pick(&["tcp", "udp"]).to_string(),
                                "evt.type" => {
                                    rng.pick(&["connect", "sendto", "accept"]).to_string()
                                }
                                "fd.sip" => rng.pick(&["10.0.0.1", "127.0.0.1"]).to_string(),
                                "proc.name" => "nc".to_string(),
                                _ => rng.pick(PORTS).to_string(),
                            }
                        };
                        let n = if *c == "in" { 1 + rng.usize(..2) } else { 1 };
                        if n == 1 {
                            ExcVal::One(one(rng))
                        } else {
                            ExcVal::Many((0..n).map(|_| one(rng)).collect())
                        }
                    })
                    .collect()
            })
            .collect();
        exceptions.push(Exc {
            fields,
            comps,
            rows,
        });
    }
    RuleSpec { cond, exceptions }
}

fn gen_spec(rng: &mut Rng) -> Spec {
    let n = *rng.weighted(&[(1usize, 75), (2, 18), (3, 7)]);
    spec((0..n).map(|_| gen_rule(rng)).collect())
}

// ------------------------------------------------------------------ checking

fn plans(rs: &Ruleset) -> [NetPlan; 2] {
    [rs.net_plan(Side::Client), rs.net_plan(Side::Server)]
}

/// Whether some rule of `spec` fires on `n` while `oracle` drops it.
fn fails(spec: &Spec, n: &Net, oracle: Oracle) -> bool {
    let Ok(rs) = load(spec) else {
        return false;
    };
    !rs.matching(&n.event).is_empty() && dropped_by(&plans(&rs), n).contains(&oracle)
}

#[derive(Clone)]
struct Failure {
    seed: u64,
    case: u64,
    spec: Spec,
    net: Net,
    oracle: Oracle,
}

fn report(f: &Failure) -> String {
    let rs = load(&f.spec).expect("a failing spec loads");
    let p = plans(&rs);
    let fired: Vec<&str> = rs
        .matching(&f.net.event)
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    format!(
        "--- {:?} oracle drops an event a rule fires on (seed {}, case {}, {}); fired: {:?}\n{}{}  \
         outbound plan: {:?}\n  inbound plan: {:?}\n",
        f.oracle,
        f.seed,
        f.case,
        f.net.category(),
        fired,
        f.spec.yaml(),
        f.net.describe(),
        p[0],
        p[1]
    )
}

#[derive(Default)]
struct Stats {
    specs: u64,
    skipped: u64,
    pairs: u64,
    fired: u64,
    /// Fired on an event the kernel decides on (not reported whatever the plan).
    decided: u64,
    /// ... under a plan that filters its protocol on its side (the check is not vacuous).
    filtered: u64,
    /// Plans (per side) that filter at least one protocol.
    filtering_plans: u64,
    /// Per category of event, fired under a filtering plan.
    by_category: BTreeMap<String, u64>,
    /// First error line: how many, and one ruleset.
    load_errors: BTreeMap<String, (u64, String)>,
}

/// `mutant`: each side judged by the other side's plan (a wrong derivation), to show that
/// the check finds such a bug.
fn run(
    seeds: std::ops::Range<u64>,
    cases: u64,
    events: usize,
    mutant: bool,
) -> (Stats, Vec<Failure>) {
    let mut st = Stats::default();
    let mut failures = Vec::new();
    for seed in seeds {
        let mut rng = Rng::with_seed(seed);
        let pool: Vec<Net> = (0..events).map(|_| gen_net(&mut rng)).collect();
        for case in 0..cases {
            let spec = gen_spec(&mut rng);
            st.specs += 1;
            let rs = match load(&spec) {
                Ok(rs) => rs,
                Err(e) => {
                    st.skipped += 1;
                    let first = e.lines().next().unwrap_or("");
                    let first = first.split_once(": error ").map_or(first, |x| x.1);
                    st.load_errors
                        .entry(first.chars().take(100).collect())
                        .or_insert_with(|| (0, spec.yaml()))
                        .0 += 1;
                    continue;
                }
            };
            let mut p = plans(&rs);
            if mutant {
                p.swap(0, 1);
            }
            st.filtering_plans += p
                .iter()
                .filter(|x| L4::ALL.iter().any(|l| !x.is_off(*l)))
                .count() as u64;
            for n in &pool {
                st.pairs += 1;
                if rs.matching(&n.event).is_empty() {
                    continue;
                }
                st.fired += 1;
                let Some((side, l4, _)) = n.decision else {
                    continue;
                };
                st.decided += 1;
                if !p[usize::from(side == Side::Server)].is_off(l4) {
                    st.filtered += 1;
                    *st.by_category.entry(n.category()).or_default() += 1;
                }
                for oracle in dropped_by(&p, n) {
                    failures.push(Failure {
                        seed,
                        case,
                        spec: spec.clone(),
                        net: n.clone(),
                        oracle,
                    });
                }
            }
        }
    }
    (st, failures)
}

#[test]
fn generated_rules_never_fire_on_network_events_the_kernel_drops() {
    let seeds = seed_range("NET_PLAN", 8);
    let cases = env_num("NET_PLAN_CASES", 1000);
    let events = env_num("NET_PLAN_EVENTS", 320) as usize;
    let t0 = std::time::Instant::now();
    let (st, failures) = run(seeds, cases, events, false);
    eprintln!(
        "net plan soundness: {} rulesets ({} did not load), {} filtering side plans, {} pairs, \
         {} fired ({:.1} %), {} on events the kernel decides on, {} of them under a plan that \
         filters their protocol; {} failures; {:.1?}",
        st.specs,
        st.skipped,
        st.filtering_plans,
        st.pairs,
        st.fired,
        100.0 * st.fired as f64 / st.pairs.max(1) as f64,
        st.decided,
        st.filtered,
        failures.len(),
        t0.elapsed()
    );
    eprintln!(
        "  fired under a filtering plan, by event: {:?}",
        st.by_category
    );
    for (e, (n, y)) in &st.load_errors {
        eprintln!("  load error ({n}x): {e}\n{y}");
    }
    assert!(
        st.skipped * 10 <= st.specs,
        "too many generated rulesets did not load: {} of {}",
        st.skipped,
        st.specs
    );
    assert!(
        st.filtered * 50 >= st.fired,
        "too few firing events under a filtering plan ({} of {})",
        st.filtered,
        st.fired
    );
    if failures.is_empty() {
        return;
    }
    let shape = |f: &Failure| (f.oracle, f.net.category(), f.spec.shape());
    let groups = shrink_groups(
        &failures,
        40,
        shape,
        |f| Failure {
            spec: shrink(&f.spec, |s| fails(s, &f.net, f.oracle)),
            ..f.clone()
        },
        shape,
    );
    let mut msg = format!(
        "{} firing events dropped ({} by the kernel model, {} by NetPlan::needs); {} distinct \
         shrunk shapes:\n",
        failures.len(),
        failures
            .iter()
            .filter(|f| f.oracle == Oracle::Kernel)
            .count(),
        failures
            .iter()
            .filter(|f| f.oracle == Oracle::Needs)
            .count(),
        groups.len()
    );
    for (f, _) in groups.values() {
        msg.push_str(&report(f));
    }
    panic!("{msg}");
}

// ------------------------------------------------------------------ fixed cases

/// The check is not vacuous: a plan of the wrong side is caught.
#[test]
fn a_wrong_derivation_is_caught() {
    let (_, failures) = run(0..1, 300, 200, true);
    assert!(
        failures.iter().any(|f| f.oracle == Oracle::Kernel),
        "the mutant went unnoticed"
    ); // and a failure prints
    let f = &failures[0];
    eprintln!("{}", report(f));
}

fn raw(conds: &[&str]) -> Spec {
    spec(
        conds
            .iter()
            .map(|c| RuleSpec {
                cond: C::Raw(c.to_string()),
                exceptions: Vec::new(),
            })
            .collect(),
    )
}

fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&a);
    b
}

fn tcp_sock(lport: u16, rport: u16) -> Sock {
    Sock {
        family: AF_INET,
        typ: SOCK_STREAM,
        protocol: 6,
        lport,
        rport,
        known: true,
        bound: false,
        laddr: v4([10, 0, 0, 2]),
        raddr: v4([10, 0, 0, 1]),
    }
}

fn udp_sock(lport: u16, bound: bool) -> Sock {
    Sock {
        typ: SOCK_DGRAM,
        protocol: 17,
        rport: 0,
        raddr: [0; 16],
        bound,
        ..tcp_sock(lport, 0)
    }
}

fn to(port: u16) -> Addr {
    Addr {
        family: AF_INET,
        port,
        addr: v4([10, 0, 0, 1]),
    }
}

/// The rules fire on the event and both oracles report it.
fn assert_sound(conds: &[&str], n: &Net) {
    let spec = raw(conds);
    let rs = load(&spec).unwrap_or_else(|e| panic!("does not load: {e}\n{}", spec.yaml()));
    assert!(
        !rs.matching(&n.event).is_empty(),
        "no rule fires:\n{}{}",
        spec.yaml(),
        n.describe()
    );
    let p = plans(&rs);
    let d = dropped_by(&p, n);
    assert!(
        d.is_empty(),
        "dropped by {d:?}:\n{}{}  plans: {p:?}",
        spec.yaml(),
        n.describe()
    );
}

#[test]
fn the_model_decides_as_the_probe_does() {
    let c = Net::new(Kind::Connect, 0, tcp_sock(40000, 22), false, to(22));
    assert_eq!(c.decision, Some((Side::Client, L4::Tcp, 22)));
    assert_eq!(c.field("fd.sport").as_deref(), Some("22"));
    assert_eq!(c.field("fd.rport").as_deref(), Some("22"));
    // a reply from a bound UDP port: the server's side, the local port
    let r = Net::new(Kind::Sendto, 10, udp_sock(53, true), false, to(40000));
    assert_eq!(r.decision, Some((Side::Server, L4::Udp, 53)));
    assert_eq!(r.field("fd.sport").as_deref(), Some("53"));
    assert_eq!(r.field("fd.lport").as_deref(), Some("53"));
    // an unbound UDP socket sending from the port it sends to: the kernel's server side,
    // userspace's client (the port is the same number either way)
    let u = Net::new(Kind::Sendto, 10, udp_sock(5353, false), false, to(5353));
    assert_eq!(u.decision, Some((Side::Server, L4::Udp, 5353)));
    assert_eq!(u.field("fd.lport").as_deref(), Some("5353"));
    assert_eq!(u.field("fd.sport").as_deref(), Some("5353"));
    let a = Net::new(
        Kind::Accept4,
        5,
        tcp_sock(443, 40000),
        true,
        Addr::default(),
    );
    assert_eq!(a.decision, Some((Side::Server, L4::Tcp, 443)));
    assert_eq!(a.field("fd.sport").as_deref(), Some("443"));
    assert_eq!(a.field("fd.cport").as_deref(), Some("40000"));
    // v4-mapped peers are always reported
    let mut m = to(22);
    m.family = AF_INET6;
    m.addr = "::ffff:10.0.0.1".parse::<Ipv6Addr>().expect("v6").octets();
    let mut s6 = tcp_sock(40000, 0);
    s6.family = AF_INET6;
    assert_eq!(Net::new(Kind::Connect, -1, s6, false, m).decision, None);
}

#[test]
fn fixed_cases_are_reported() {
    let c = Net::new(Kind::Connect, 0, tcp_sock(40000, 22), false, to(22));
    assert_sound(&["evt.type = connect and fd.sport = 22"], &c);
    assert_sound(&["evt.type = connect and fd.rport in (22, 80)"], &c);
    assert_sound(&["evt.type = connect and fd.sport = 0x16"], &c);
    assert_sound(&["evt.type = connect and fd.port = 40000"], &c);
    let r = Net::new(Kind::Sendto, 10, udp_sock(53, true), false, to(40000));
    assert_sound(
        &["evt.type = sendto and fd.l4proto = udp and fd.lport = 53"],
        &r,
    );
    assert_sound(&["evt.type = sendto and fd.rport = 40000"], &r);
    let u = Net::new(Kind::Sendto, 10, udp_sock(5353, false), false, to(5353));
    assert_sound(&["evt.type = sendto and fd.rport = 5353"], &u);
    assert_sound(&["evt.type = sendto and fd.cport = 5353"], &u);
    let a = Net::new(Kind::Accept, 5, tcp_sock(443, 40000), true, Addr::default());
    assert_sound(&["evt.type = accept and fd.lport = 443"], &a);
    assert_sound(&["evt.type = accept and fd.rport = 40000"], &a);
    assert_sound(
        &["evt.type = accept and not fd.sip.name = x and fd.sport = 443"],
        &a,
    );
}
