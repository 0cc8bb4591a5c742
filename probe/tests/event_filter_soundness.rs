//! The kernel's filter of `socket` and `dup` calls is sound: a generative test.
//!
//! The probe drops in the kernel the `socket()` calls of a domain, and the `dup`/`dup2`/
//! `dup3` calls of a (new descriptor, family of the socket duplicated), that its
//! [`EventFilterPlan`] says no enabled rule may match (`SOCKET_DROP`, `DUP_DROP`); a rule
//! that could fire on such an event would silently never fire. The plan is derived exactly
//! as the agent derives it (`falco_learn_enforcer::agent::event_filter`:
//! `EventFilterPlan::derive(&|ev, known| rules.may_match(ev, known))`), from the probe's own
//! representative events and `known` predicates.
//!
//! For generated rulesets (1 to 3 rules mixing tests of the fields the classes fix with
//! fields they do not; `and`/`or`/`not`, macros, named and inline lists, exceptions,
//! `val()` comparisons, transformers, every operator) and generated calls (records made as
//! probe.bpf.c `exit_socket`/`exit_dup` fill them, turned into events by the probe's real
//! `decode` and `Enricher`), this checks: when some enabled rule matches the event
//! (`Ruleset::matching`), the kernel (modelled from probe.bpf.c: a successful call, domain or
//! new descriptor below 64, its bit set in the plan) does not drop the call.
//!
//! Deterministic: `EVENT_FILTER_SEEDS` seeds (default 4) from `EVENT_FILTER_FIRST_SEED` of
//! `EVENT_FILTER_CASES` rulesets each (default 600), every ruleset against 160 calls. A
//! failure is shrunk (the rules' generator and shrinker are the rules crate's test helpers,
//! `rules/tests/common`) and printed with the rules' YAML and the event.

#[allow(dead_code)]
#[path = "../../rules/tests/common/mod.rs"]
mod common;

use bytemuck::Zeroable;
use common::{load, shrink, Atom, Exc, ExcVal, Rhs, RngExt, RuleSpec, Spec, C};
use falco_learn_event::fields::{FieldId, FieldRef};
use falco_learn_event::Event;
use falco_learn_probe::decode::decode;
use falco_learn_probe::enrich::Enricher;
use falco_learn_probe::filter::{EventFilterPlan, DUP_FAMILIES};
use falco_learn_probe::proctable::{ProcInfo, ProcessTable};
use falco_learn_probe_common as abi;
use falco_learn_rules::Ruleset;
use fastrand::Rng;
use std::sync::Arc;
use std::time::Instant;

// ------------------------------------------------------------------ the plan

/// What the agent installs (`falco_learn_enforcer::agent::event_filter`).
fn plan(rs: &Ruleset) -> EventFilterPlan {
    EventFilterPlan::derive(&|ev, known| rs.may_match(ev, known))
}

/// A plan derived with a `known` that also claims `wrong` fields are fixed by the class
/// (the self-check: this must be caught).
fn wrong_plan(rs: &Ruleset, wrong: fn(&FieldRef) -> bool) -> EventFilterPlan {
    EventFilterPlan::derive(&|ev, known| rs.may_match(ev, &|f| known(f) || wrong(f)))
}

// ------------------------------------------------------------------ calls

/// What the kernel decides a call by (probe.bpf.c `exit_socket`, `exit_dup`).
#[derive(Debug, Clone, Copy)]
enum Call {
    /// `socket()`: the domain the record reports (after the `SOCK_PACKET` rewrite).
    Socket { domain: u32, res: i64 },
    /// `dup` (k 0), `dup2` (1), `dup3` (2): the result and the family of the new descriptor.
    Dup { k: usize, res: i64, family: u16 },
}

/// `fl_dup_class`.
fn dup_class(family: u16) -> usize {
    DUP_FAMILIES[..DUP_FAMILIES.len() - 1]
        .iter()
        .position(|f| *f == family)
        .unwrap_or(DUP_FAMILIES.len() - 1)
}

/// Whether the kernel drops the call under `plan` (probe.bpf.c, an independent model).
fn dropped(plan: &EventFilterPlan, c: Call) -> bool {
    match c {
        Call::Socket { domain, res } => {
            res >= 0 && domain < 64 && plan.socket_drop >> domain & 1 == 1
        }
        Call::Dup { k, res, family } => {
            (0..64).contains(&res) && plan.dup_drop[k][dup_class(family)] >> res & 1 == 1
        }
    }
}

/// Whether the plan drops some call of the kind of `c` (what makes a pair informative).
fn drops_some(plan: &EventFilterPlan, c: Call) -> bool {
    match c {
        Call::Socket { .. } => plan.socket_drop != 0,
        Call::Dup { k, .. } => plan.dup_drop[k].iter().any(|b| *b != 0),
    }
}

#[derive(Debug, Clone)]
struct Case {
    call: Call,
    event: Event,
}

const PIDS: [u32; 4] = [4100, 4101, 4102, 4103];
const COMMS: [&str; 5] = ["nc", "sh", "tcpdump", "nginx", "ip"];

/// A process table of a few processes, in containers or not.
fn table() -> ProcessTable {
    let mut t = ProcessTable::new(vec![], 0);
    for (i, pid) in PIDS.iter().enumerate() {
        let container = (i % 2 == 1).then(|| {
            let id = format!("{}{}", "0123456789ab", "c".repeat(52));
            Arc::new(
                falco_learn_probe::container::container_from_cgroup(
                    &format!("/system.slice/docker-{id}.scope"),
                    &[],
                )
                .expect("a docker cgroup"),
            )
        });
        t.insert(ProcInfo {
            pid: *pid,
            ppid: 1,
            vpid: *pid,
            comm: COMMS[i].to_string(),
            exe: format!("/usr/bin/{}", COMMS[i]),
            exepath: format!("/usr/bin/{}", COMMS[i]),
            args: vec!["-x".into()],
            cwd: "/".into(),
            uid: [0, 1000][i % 2],
            container,
            ..Default::default()
        });
    }
    t
}

fn hdr(rng: &mut Rng, kind: abi::Kind, size: usize, res: i64) -> abi::Hdr {
    let mut h = abi::Hdr::zeroed();
    h.kind = kind as u32;
    h.size = size as u32;
    h.pid = *rng.pick(&PIDS);
    h.tid = h.pid;
    h.ppid = 1;
    h.uid = *rng.pick(&[0, 33, 1000]);
    h.gid = h.uid;
    h.res = res;
    let comm = rng.pick(&COMMS);
    h.comm[..comm.len()].copy_from_slice(comm.as_bytes());
    h
}

const ERRNOS: [i64; 5] = [-1, -9, -13, -22, -24];

/// A result: mostly successes (low and high descriptors), some failures.
fn result(rng: &mut Rng) -> i64 {
    if rng.pct(15) {
        *rng.pick(&ERRNOS)
    } else {
        *rng.pick(&[0, 1, 2, 3, 4, 5, 9, 10, 31, 62, 63, 64, 65, 100, 1023])
    }
}

/// Families of sockets: those with a class of their own and some of the "other" class.
const V4: [[u8; 4]; 3] = [[127, 0, 0, 1], [10, 1, 2, 3], [0, 0, 0, 0]];

const FAMILIES: [u16; 10] = [0, 1, 2, 10, 16, 17, 3, 31, 40, 44];

fn addr(rng: &mut Rng, family: u16) -> [u8; 16] {
    let mut a = [0u8; 16];
    match family {
        2 => a[..4].copy_from_slice(&rng.pick(&V4)[..]),
        10 => match rng.usize(..4) {
            0 => {}
            1 => a[15] = 1,
            2 => {
                a[10] = 0xff;
                a[11] = 0xff;
                a[12..].copy_from_slice(&rng.pick(&V4)[..]);
            }
            _ => {
                a[..2].copy_from_slice(&[0x20, 0x01]);
                a[15] = 7;
            }
        },
        _ => {}
    }
    a
}

/// A socket as `sock_info` fills it.
fn sock(rng: &mut Rng, family: u16) -> abi::Sock {
    let mut s = abi::Sock::zeroed();
    s.family = family;
    if family == 0 {
        return s;
    }
    s.typ = *rng.pick(&[1, 2, 3, 5, 10]);
    s.protocol = *rng.pick(&[0, 6, 17, 1, 58]);
    if family == 2 || family == 10 {
        s.lport = *rng.pick(&[0, 53, 8080, 40000]);
        s.rport = *rng.pick(&[0, 53, 443]);
        s.laddr = addr(rng, family);
        s.raddr = addr(rng, family);
    }
    s.flags = *rng.pick(&[
        0,
        abi::SOCK_FLAGS_KNOWN,
        abi::SOCK_FLAGS_KNOWN | abi::SOCK_BOUND,
    ]);
    s
}

fn enrich(en: &mut Enricher, bytes: &[u8]) -> Event {
    let raw = decode(bytes).expect("a valid record");
    en.enrich(&raw).expect("an event")
}

/// A `socket()` call as `exit_socket` reports it (64-bit: the domain as passed, AF_INET
/// with SOCK_PACKET rewritten to AF_PACKET).
fn socket_call(rng: &mut Rng, en: &mut Enricher) -> Case {
    let mut domain: u32 = if rng.pct(90) {
        *rng.pick(&[1, 2, 10, 16, 17, 0, 3, 31, 40, 44, 63])
    } else {
        *rng.pick(&[64, 100, 1 << 16 | 2])
    };
    let typ: u32 = *rng.pick(&[1, 2, 3, 5, 10, 0x80001, 0x800 | 2]);
    let protocol: u32 = *rng.pick(&[0, 6, 17, 1, 58, 768]);
    if domain == 2 && typ & 0xf == 10 {
        domain = 17;
    }
    let res = result(rng);
    let mut e = abi::Socket::zeroed();
    e.h = hdr(
        rng,
        abi::Kind::Socket,
        std::mem::size_of::<abi::Socket>(),
        res,
    );
    e.domain = domain;
    e.typ = typ;
    e.protocol = protocol;
    Case {
        call: Call::Socket { domain, res },
        event: enrich(en, bytemuck::bytes_of(&e)),
    }
}

/// A `dup`/`dup2`/`dup3` call as `exit_dup` reports it.
fn dup_call(rng: &mut Rng, en: &mut Enricher) -> Case {
    let k = rng.usize(..3);
    let kind = [abi::Kind::Dup, abi::Kind::Dup2, abi::Kind::Dup3][k];
    let res = result(rng);
    let mut e = abi::Dup::zeroed();
    e.h = hdr(rng, kind, std::mem::size_of::<abi::Dup>(), res);
    e.oldfd = *rng.pick(&[0, 1, 2, 3, 5, 63, 64, 200]);
    let asked: i64 = if res >= 0 {
        res
    } else {
        *rng.pick(&[-1, 0, 3, 64, 1 << 20])
    };
    e.newfd = if k == 0 { res } else { asked };
    e.flags = if k == 2 {
        *rng.pick(&[0, 0o2000000])
    } else {
        0
    };
    // a failed call reads no socket
    let family = if res >= 0 { *rng.pick(&FAMILIES) } else { 0 };
    e.sock = sock(rng, family);
    Case {
        call: Call::Dup { k, res, family },
        event: enrich(en, bytemuck::bytes_of(&e)),
    }
}

fn calls(rng: &mut Rng, en: &mut Enricher, n: usize) -> Vec<Case> {
    (0..n)
        .map(|_| {
            if rng.bool() {
                socket_call(rng, en)
            } else {
                dup_call(rng, en)
            }
        })
        .collect()
}

fn show(c: &Case) -> String {
    let ev = &c.event;
    format!(
        "{:?}\n  evt.type={} res={} proc.name={} user.uid={} container={:?} fd={:?} args={:?}",
        c.call,
        ev.event_type().as_str(),
        ev.res,
        ev.process.comm,
        ev.process.uid,
        ev.container.id,
        ev.fd,
        ev.args
    )
}

// ------------------------------------------------------------------ rules

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Num,
    Str,
    Ip,
    Bool,
    /// `evt.arg.*`: numbers or strings.
    Arg,
}

/// (field, kind, values), the fields the classes fix first.
const FIELDS: &[(&str, Kind, &[&str])] = &[
    ("fd.num", Kind::Num, NUMS),
    ("evt.rawres", Kind::Num, NUMS),
    (
        "evt.res",
        Kind::Str,
        &["SUCCESS", "EBADF", "EMFILE", "EINVAL", "EPERM"],
    ),
    ("evt.failed", Kind::Bool, &["true", "false"]),
    (
        "fd.type",
        Kind::Str,
        &["ipv4", "ipv6", "unix", "netlink", "file", "pipe"],
    ),
    ("fd.typechar", Kind::Str, &["4", "6", "u", "n", "f", "o"]),
    (
        "fd.sockfamily",
        Kind::Str,
        &["ip", "unix", "netlink", "packet"],
    ),
    (
        "fd.l4proto",
        Kind::Str,
        &["tcp", "udp", "raw", "icmp", "unknown"],
    ),
    ("evt.arg.domain", Kind::Str, DOMAINS),
    ("evt.arg[1]", Kind::Arg, DOMAINS),
    ("evt.arg[0]", Kind::Arg, NUMS),
    ("evt.arg[2]", Kind::Arg, NUMS),
    ("evt.arg.fd", Kind::Arg, NUMS),
    ("evt.arg.res", Kind::Arg, NUMS),
    ("evt.arg.newfd", Kind::Arg, NUMS),
    ("evt.arg.oldfd", Kind::Arg, NUMS),
    ("evt.arg.flags", Kind::Arg, &["0", "524288"]),
    ("evt.arg.type", Kind::Arg, &["1", "2", "3", "5", "10"]),
    ("evt.arg.proto", Kind::Arg, &["0", "6", "17"]),
    (
        "evt.args",
        Kind::Str,
        &["res=3", "fd=3", "domain=AF_INET", "newfd=1", "oldfd=3"],
    ),
    // not fixed by any class
    (
        "proc.name",
        Kind::Str,
        &["nc", "sh", "tcpdump", "nginx", "ip"],
    ),
    ("user.uid", Kind::Num, &["0", "33", "1000"]),
    ("user.name", Kind::Str, &["root", "www-data", "nobody"]),
    ("container.id", Kind::Str, &["host", "0123456789ab"]),
    ("proc.pid", Kind::Num, &["4100", "4101", "1"]),
    (
        "fd.name",
        Kind::Str,
        &["127.0.0.1:53", "10.1.2.3", "->", ":443", "/dev/null"],
    ),
    ("fd.sip", Kind::Ip, &["127.0.0.1", "10.0.0.0/8", "0.0.0.0"]),
    ("fd.cip", Kind::Ip, &["127.0.0.1", "10.0.0.0/8"]),
    ("fd.sport", Kind::Num, &["0", "53", "443"]),
    ("fd.cport", Kind::Num, &["0", "53", "8080", "40000"]),
    ("fd.lport", Kind::Num, &["0", "53", "8080"]),
    ("fd.connected", Kind::Bool, &["true", "false"]),
];

const NUMS: &[&str] = &[
    "0", "1", "2", "3", "5", "9", "10", "17", "62", "63", "64", "100", "-1", "-9", "-22",
];

const DOMAINS: &[&str] = &[
    "AF_INET",
    "AF_INET6",
    "AF_UNIX",
    "AF_NETLINK",
    "AF_PACKET",
    "AF_UNSPEC",
    "AF_AX25",
    "AF_VSOCK",
    "2",
    "10",
];

const TYPES: &[&str] = &["socket", "dup", "dup2", "dup3", "open", "execve"];

fn ops(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Num => &["=", "!=", "<", "<=", ">", ">=", "in", "exists"],
        Kind::Bool => &["=", "!="],
        Kind::Ip => &["=", "!=", "in", "exists"],
        Kind::Str | Kind::Arg => &[
            "=",
            "!=",
            "<",
            ">=",
            "in",
            "exists",
            "contains",
            "icontains",
            "startswith",
            "endswith",
            "glob",
            "iglob",
            "regex",
            "bcontains",
            "bstartswith",
        ],
    }
}

fn lit(rng: &mut Rng, op: &str, pool: &[&str]) -> String {
    let v = rng.pick(pool).to_string();
    match op {
        // a piece of a value, so that they match often
        "contains" | "icontains" | "startswith" | "endswith" if !v.is_empty() && rng.pct(50) => {
            let b = common::boundaries(&v);
            let i = rng.usize(..b.len() - 1);
            let j = rng.usize(i + 1..b.len());
            let s = &v[b[i]..b[j]];
            if op == "icontains" {
                s.to_ascii_lowercase()
            } else {
                s.to_string()
            }
        }
        "glob" | "iglob" if rng.pct(60) => {
            let mut s: String = v.chars().take(rng.usize(..=v.len())).collect();
            s.push('*');
            s
        }
        "regex" => format!("'{}.*'", v.chars().take(2).collect::<String>()),
        "bcontains" | "bstartswith" => v
            .bytes()
            .take(2.min(v.len()).max(1))
            .map(|b| format!("{b:02x}"))
            .collect(),
        _ => v,
    }
}

fn atom(rng: &mut Rng) -> C {
    if rng.pct(12) {
        let n = rng.usize(1..=3);
        let items = (0..n).map(|_| rng.pick(TYPES).to_string()).collect();
        return C::Atom(Atom {
            field: "evt.type",
            transform: None,
            op: if rng.pct(70) { "in" } else { "!=" },
            rhs: Rhs::List {
                items,
                named: rng.pct(30),
            },
        })
        .fix_ne();
    }
    // the fields the classes fix half the time
    let (field, kind, pool) = if rng.pct(50) {
        *rng.pick(&FIELDS[..20])
    } else {
        *rng.pick(FIELDS)
    };
    if rng.pct(8) {
        // `val()`: against another field of the same kind
        let others: Vec<&str> = FIELDS
            .iter()
            .filter(|(f, k, _)| *k == kind && *f != field)
            .map(|(f, _, _)| *f)
            .collect();
        if !others.is_empty() {
            let op = *rng.pick(&["=", "!=", "<", ">="]);
            return C::Atom(Atom {
                field,
                transform: None,
                op,
                rhs: Rhs::Bare(format!("val({})", rng.pick(&others))),
            });
        }
    }
    let transform = (matches!(kind, Kind::Str | Kind::Arg) && rng.pct(12))
        .then(|| *rng.pick(&["tolower", "toupper", "len", "basename", "b64"]));
    let op = if transform == Some("len") {
        *rng.pick(&["=", "<", ">", "in"])
    } else {
        *rng.pick(ops(kind))
    };
    let pool: &[&str] = if transform == Some("len") {
        &["0", "1", "2", "7", "11"]
    } else {
        pool
    };
    let rhs = match op {
        "exists" => Rhs::None,
        "in" => {
            let n = rng.usize(1..=4);
            Rhs::List {
                items: (0..n).map(|_| rng.pick(pool).to_string()).collect(),
                named: rng.pct(40),
            }
        }
        "regex" | "bcontains" | "bstartswith" => Rhs::Bare(lit(rng, op, pool)),
        _ => Rhs::One(lit(rng, op, pool)),
    };
    C::Atom(Atom {
        field,
        transform,
        op,
        rhs,
    })
}

trait FixNe {
    fn fix_ne(self) -> C;
}

impl FixNe for C {
    /// `evt.type != (a, b)` is not a condition: one value.
    fn fix_ne(self) -> C {
        match self {
            C::Atom(Atom {
                op: "!=",
                rhs: Rhs::List { items, .. },
                ..
            }) => C::Atom(Atom {
                field: "evt.type",
                transform: None,
                op: "!=",
                rhs: Rhs::One(items[0].clone()),
            }),
            c => c,
        }
    }
}

fn tree(rng: &mut Rng, depth: u32) -> C {
    if depth == 0 || rng.pct(35) {
        return atom(rng);
    }
    match rng.usize(..10) {
        0..=3 => C::And(
            (0..rng.usize(2..=3))
                .map(|_| tree(rng, depth - 1))
                .collect(),
        ),
        4..=6 => C::Or(
            (0..rng.usize(2..=3))
                .map(|_| tree(rng, depth - 1))
                .collect(),
        ),
        7 | 8 => C::Not(Box::new(tree(rng, depth - 1))),
        _ => C::Macro(Box::new(tree(rng, depth - 1))),
    }
}

fn exception(rng: &mut Rng) -> Exc {
    let candidates: &[(&str, &[&str])] = &[
        ("proc.name", &["nc", "sh", "tcpdump"]),
        ("fd.num", &["0", "1", "3", "63", "64"]),
        ("evt.arg.domain", &["AF_INET", "AF_UNIX", "AF_PACKET"]),
        ("fd.type", &["ipv4", "unix", "file"]),
        ("user.uid", &["0", "1000"]),
        ("fd.sockfamily", &["ip", "netlink"]),
    ];
    let n = rng.usize(1..=2);
    let mut fields = Vec::new();
    let mut comps = Vec::new();
    let mut pools = Vec::new();
    for _ in 0..n {
        let (f, pool) = *rng.pick(candidates);
        if fields.contains(&f) {
            continue;
        }
        fields.push(f);
        comps.push(*rng.pick(&["=", "in", "!="]));
        pools.push(pool);
    }
    let rows = (0..rng.usize(1..=2))
        .map(|_| {
            comps
                .iter()
                .zip(&pools)
                .map(|(c, pool)| {
                    if *c == "in" {
                        ExcVal::Many(
                            (0..rng.usize(1..=2))
                                .map(|_| rng.pick(pool).to_string())
                                .collect(),
                        )
                    } else {
                        ExcVal::One(rng.pick(pool).to_string())
                    }
                })
                .collect()
        })
        .collect();
    Exc {
        fields,
        comps,
        rows,
    }
}

/// A rule about sockets or dups most of the time.
fn rule(rng: &mut Rng) -> RuleSpec {
    let body = tree(rng, 3);
    let cond = if rng.pct(75) {
        let n = rng.usize(1..=2);
        let items: Vec<String> = (0..n).map(|_| rng.pick(&TYPES[..4]).to_string()).collect();
        C::And(vec![
            C::Atom(Atom {
                field: "evt.type",
                transform: None,
                op: "in",
                rhs: Rhs::List {
                    items,
                    named: rng.pct(30),
                },
            }),
            body,
        ])
    } else {
        body
    };
    let exceptions = if rng.pct(20) {
        vec![exception(rng)]
    } else {
        Vec::new()
    };
    RuleSpec { cond, exceptions }
}

fn spec_of(rules: Vec<RuleSpec>) -> Spec {
    Spec {
        rules,
        lit: str::to_owned,
    }
}

/// 1 to 3 rules, each of which loads on its own.
fn ruleset(rng: &mut Rng, rejected: &mut u64) -> Spec {
    let n = rng.usize(1..=3);
    let mut rules = Vec::new();
    while rules.len() < n {
        let r = rule(rng);
        if load(&spec_of(vec![r.clone()])).is_ok() {
            rules.push(r);
        } else {
            *rejected += 1;
        }
    }
    spec_of(rules)
}

// ------------------------------------------------------------------ checking

/// A dropped call some rule matches, under `plan_of`'s plan.
fn violation(
    spec: &Spec,
    case: &Case,
    plan_of: &dyn Fn(&Ruleset) -> EventFilterPlan,
) -> Option<Vec<String>> {
    let rs = load(spec).ok()?;
    let fired: Vec<String> = rs
        .matching(&case.event)
        .iter()
        .map(|r| r.name.clone())
        .collect();
    (!fired.is_empty() && dropped(&plan_of(&rs), case.call)).then_some(fired)
}

#[derive(Debug, Default)]
struct Counts {
    rulesets: u64,
    rejected: u64,
    pairs: u64,
    fired: u64,
    fired_under_dropping_plan: u64,
    dropped: u64,
    failures: u64,
}

/// Runs `cases` rulesets of `seed` against 160 calls each; the failures found (at most
/// `keep`): the ruleset and the call.
fn run(
    seed: u64,
    cases: u64,
    plan_of: &dyn Fn(&Ruleset) -> EventFilterPlan,
    counts: &mut Counts,
    keep: usize,
) -> Vec<(Spec, Case)> {
    let mut rng = Rng::with_seed(seed);
    let mut en = Enricher::new(table(), 1_700_000_000_000_000_000);
    let mut failures = Vec::new();
    for _ in 0..cases {
        let spec = ruleset(&mut rng, &mut counts.rejected);
        let rs = match load(&spec) {
            Ok(rs) => rs,
            Err(e) => panic!(
                "a ruleset of rules that load alone does not load: {e}\n{}",
                spec.yaml()
            ),
        };
        counts.rulesets += 1;
        let plan = plan_of(&rs);
        for case in calls(&mut rng, &mut en, 160) {
            counts.pairs += 1;
            let fired = !rs.matching(&case.event).is_empty();
            let drop = dropped(&plan, case.call);
            if fired {
                counts.fired += 1;
                if drops_some(&plan, case.call) {
                    counts.fired_under_dropping_plan += 1;
                }
                if drop {
                    counts.failures += 1;
                    if failures.len() < keep {
                        failures.push((spec.clone(), case));
                    }
                }
            } else if drop {
                counts.dropped += 1;
            }
        }
    }
    failures
}

fn report(failures: &[(Spec, Case)], plan_of: &dyn Fn(&Ruleset) -> EventFilterPlan) -> String {
    let mut out = String::new();
    for (spec, case) in failures {
        let small = shrink(spec, |s| violation(s, case, plan_of).is_some());
        let fired = violation(&small, case, plan_of).unwrap_or_default();
        let rs = load(&small).expect("loads");
        let p = plan_of(&rs);
        out += &format!(
            "--- rules {fired:?} fire on a dropped call\n{}\n{}\nplan: socket_drop {:#x}, dup_drop {:x?}\n",
            small.yaml(),
            show(case),
            p.socket_drop,
            p.dup_drop
        );
    }
    out
}

fn env_num(name: &str, default: u64) -> u64 {
    common::env_num(name, default)
}

#[test]
fn no_call_a_rule_matches_is_dropped() {
    let t0 = Instant::now();
    let first = env_num("EVENT_FILTER_FIRST_SEED", 0);
    let seeds = env_num("EVENT_FILTER_SEEDS", 4);
    let cases = env_num("EVENT_FILTER_CASES", 600);
    let mut counts = Counts::default();
    let mut failures = Vec::new();
    for seed in first..first + seeds {
        let keep = 4usize.saturating_sub(failures.len());
        failures.extend(run(seed, cases, &plan, &mut counts, keep));
    }
    eprintln!("event filter soundness: {counts:?} in {:.1?}", t0.elapsed());
    assert!(
        failures.is_empty(),
        "{} of {} fired pairs dropped; shrunk:\n{}",
        counts.failures,
        counts.fired,
        report(&failures, &plan)
    );
    // the test means something: rules fire, plans drop, and on calls of kinds they drop
    assert!(counts.fired > counts.pairs / 50, "{counts:?}");
    assert!(counts.dropped > counts.pairs / 50, "{counts:?}");
    assert!(
        counts.fired_under_dropping_plan > counts.fired / 20,
        "{counts:?}"
    );
}

/// A field said known wrongly: its name and the predicate claiming it.
type WrongKnown = (&'static str, fn(&FieldRef) -> bool);

/// A `known` that claims the class fixes `proc.name` (or `fd.l4proto`, or a dup's
/// `evt.arg.oldfd`) is caught by the same generator.
#[test]
fn a_wrong_known_is_caught() {
    let wrongs: [WrongKnown; 3] = [
        ("proc.name", |f| f.id == FieldId::ProcName),
        ("fd.l4proto", |f| f.id == FieldId::FdL4Proto),
        ("evt.arg.oldfd", |f| {
            f.id == FieldId::EvtArg
                && *f
                    == falco_learn_event::fields::parse_field_ref("evt.arg.oldfd").expect("a field")
        }),
    ];
    for (name, wrong) in wrongs {
        let plan_of = move |rs: &Ruleset| wrong_plan(rs, wrong);
        let mut counts = Counts::default();
        let failures = run(7, 150, &plan_of, &mut counts, 1);
        eprintln!("known also {name}: {counts:?}");
        assert!(
            counts.failures > 0,
            "a known also claiming {name} went unnoticed"
        );
        eprintln!("{}", report(&failures, &plan_of));
    }
}

fn rules_yaml(conds: &[&str]) -> Ruleset {
    let text: String = conds
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!("- rule: r{i}\n  desc: d\n  condition: {c}\n  output: o\n  priority: WARNING\n")
        })
        .collect();
    let (rs, report) = Ruleset::load_sources(&[("t.yaml", text.as_str())]);
    assert!(report.errors.is_empty(), "{report}");
    rs
}

/// Fixed cases: each rule fires on some call of a class the plan must keep.
#[test]
fn fixed_cases() {
    let mut rng = Rng::with_seed(1);
    let mut en = Enricher::new(table(), 1_700_000_000_000_000_000);
    let mut check = |cond: &str, want: &dyn Fn(&Case) -> bool| {
        let rs = rules_yaml(&[cond]);
        let p = plan(&rs);
        let mut seen = 0;
        for _ in 0..4000 {
            let c = if rng.bool() {
                socket_call(&mut rng, &mut en)
            } else {
                dup_call(&mut rng, &mut en)
            };
            if !want(&c) || rs.matching(&c.event).is_empty() {
                continue;
            }
            seen += 1;
            assert!(!dropped(&p, c.call), "{cond}: dropped {}", show(&c));
        }
        assert!(seen > 0, "{cond}: never fired");
        p
    };
    // the self-check's wrong known, as a fixed case
    let p = check("evt.type = socket and proc.name = nc", &|_| true);
    assert_eq!(p.socket_drop, 0);
    let rs = rules_yaml(&["evt.type = socket and proc.name = nc"]);
    assert_eq!(
        wrong_plan(&rs, |f| f.id == FieldId::ProcName).socket_drop,
        u64::MAX
    );
    // an IPv4-mapped AF_INET6 socket duplicated is an ipv4 descriptor of the AF_INET6 class
    check("evt.type = dup2 and fd.type = ipv4", &|c| {
        matches!(c.call, Call::Dup { family: 10, .. })
    });
    // the l4 protocol is not fixed by the domain (on a new socket it reads only `raw`)
    check(
        "evt.type = socket and evt.arg.domain = AF_INET and fd.l4proto = raw",
        &|_| true,
    );
    // AF_INET with SOCK_PACKET is a packet socket
    check(
        "evt.type = socket and evt.arg.domain = AF_PACKET and fd.typechar = o and evt.arg.type = 10",
        &|_| true,
    );
    // the result, the new descriptor, and the old one
    check("evt.type = dup and evt.arg.fd = 3 and fd.num < 3", &|_| {
        true
    });
    check(
        "evt.type in (dup2, dup3) and evt.arg.newfd = val(fd.num)",
        &|_| true,
    );
    check("evt.type = dup3 and evt.arg.flags != 0", &|_| true);
    // families of the "other" class
    check("evt.type = dup and fd.typechar = o and fd.num > 62", &|c| {
        matches!(
            c.call,
            Call::Dup {
                family: 31 | 40 | 44,
                res: 63,
                ..
            }
        )
    });
    check("evt.type = socket and evt.arg.domain = AF_VSOCK", &|_| true);
}
