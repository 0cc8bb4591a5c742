//! What the kernel must report of network traffic for the loaded rules: the (protocol,
//! port) pairs some rule could match, for each side of a connection.
//!
//! In the enforce modes (`engine.kernel_filter`) the probe drops, in the kernel, traffic of
//! a container whose profile allows it, unless the pair is one the loaded rules need:
//! - [`Side::Client`], outbound: a successful `connect`, or a `sendto`/`sendmsg` to an
//!   explicit address from a client's UDP socket; the pair is the protocol and the remote
//!   (server) port, and the profile's `network.outbound` must allow the peer too;
//! - [`Side::Server`], inbound: an accepted connection (`accept`, `accept4`), or a UDP reply
//!   from the server's port; the pair is the protocol and the local (served) port, which the
//!   profile's `network.inbound` must hold.
//!
//! The pairs are derived here from the compiled conditions, the way
//! [`crate::kernel_plan`] derives path prefixes of opens, never kept by hand. For each
//! enabled rule that can see an event of the side, [`necessary`] computes a set of pairs
//! such that the condition can only be true for a TCP or UDP event of that side whose
//! protocol and port are one of them (events of any other protocol are never dropped, so the
//! set only speaks of TCP and UDP):
//! - `fd.l4proto` with `=`, `in` or `!=` bounds the protocol;
//! - `fd.sport` (the server's port on both sides), and `fd.rport` on the client's side or
//!   `fd.lport` on the server's (the same port), with `=` or `in` bound the port;
//! - a test on a field falco-learn never fills (`fd.sip.name`, …: every comparison on it is
//!   false) makes its branch impossible, and so do `evt.type` tests that exclude the side's
//!   types and `false` constants;
//! - `and` intersects its children, `or` takes their union;
//! - everything else (negations, address tests, `fd.port`, which may be the other end,
//!   ranges, transformers) bounds nothing.
//!
//! A rule that leaves a protocol unbounded (every port of it) is named in
//! [`NetPlan::unconstrained`]: then no event of that protocol and side is dropped.

use crate::compile::{Cond, Node, TypeMask};
use crate::Ruleset;
use falco_learn_event::fields::{self, FieldId};
use falco_learn_event::EventType;
use std::collections::{BTreeMap, BTreeSet};

/// Which end of a connection an event is, as the kernel filter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// Outbound: the process is the client (`connect`, a client's UDP send).
    Client,
    /// Inbound: the process is the server (`accept`, `accept4`, a UDP reply from its port).
    Server,
}

impl Side {
    /// Both, in order.
    pub const ALL: [Side; 2] = [Side::Client, Side::Server];

    /// `outbound` or `inbound`, as the profile's dimensions are named.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "outbound",
            Side::Server => "inbound",
        }
    }

    /// The event types the kernel filter drops for this side.
    pub fn types(self) -> TypeMask {
        let t: &[EventType] = match self {
            Side::Client => &[EventType::Connect, EventType::Sendto, EventType::Sendmsg],
            Side::Server => &[
                EventType::Accept,
                EventType::Accept4,
                EventType::Sendto,
                EventType::Sendmsg,
            ],
        };
        t.iter().fold(0, |m, t| m | (1u64 << t.index()))
    }

    /// The port fields that hold the pair's port on this side (`fd.sport` always).
    fn port_field(self, f: FieldId) -> bool {
        match self {
            Side::Client => matches!(f, FieldId::FdSport | FieldId::FdRport),
            Side::Server => matches!(f, FieldId::FdSport | FieldId::FdLport),
        }
    }
}

/// The layer-4 protocols the kernel filter can drop events of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L4 {
    Tcp,
    Udp,
}

impl L4 {
    /// Both, in order.
    pub const ALL: [L4; 2] = [L4::Tcp, L4::Udp];

    /// `fd.l4proto`'s value for it.
    pub fn as_str(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
        }
    }

    /// The IP protocol number (`IPPROTO_TCP`, `IPPROTO_UDP`), as the kernel's socket has it.
    pub fn ipproto(self) -> u8 {
        match self {
            L4::Tcp => 6,
            L4::Udp => 17,
        }
    }

    fn parse(s: &str) -> Option<L4> {
        match s {
            "tcp" => Some(L4::Tcp),
            "udp" => Some(L4::Udp),
            _ => None,
        }
    }
}

/// Remote ports of one protocol a condition may be true for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ports {
    /// None: the condition is never true for this protocol.
    None,
    /// Only these.
    Some(BTreeSet<u16>),
    /// Any port.
    All,
}

impl Ports {
    fn and(self, other: Ports) -> Ports {
        match (self, other) {
            (Ports::None, _) | (_, Ports::None) => Ports::None,
            (Ports::All, x) | (x, Ports::All) => x,
            (Ports::Some(a), Ports::Some(b)) => {
                let v: BTreeSet<u16> = a.intersection(&b).copied().collect();
                if v.is_empty() {
                    Ports::None
                } else {
                    Ports::Some(v)
                }
            }
        }
    }

    fn or(self, other: Ports) -> Ports {
        match (self, other) {
            (Ports::All, _) | (_, Ports::All) => Ports::All,
            (Ports::None, x) | (x, Ports::None) => x,
            (Ports::Some(mut a), Ports::Some(b)) => {
                a.extend(b);
                Ports::Some(a)
            }
        }
    }
}

/// A necessary condition on a TCP/UDP event of one side: per protocol, the ports it may
/// be true for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub tcp: Ports,
    pub udp: Ports,
}

impl Need {
    /// Never true for a TCP or UDP event of the side.
    pub const NEVER: Need = Need {
        tcp: Ports::None,
        udp: Ports::None,
    };
    /// No bound derived.
    pub const ANY: Need = Need {
        tcp: Ports::All,
        udp: Ports::All,
    };

    fn per(f: impl Fn(L4) -> Ports) -> Need {
        Need {
            tcp: f(L4::Tcp),
            udp: f(L4::Udp),
        }
    }

    fn get(&self, p: L4) -> &Ports {
        match p {
            L4::Tcp => &self.tcp,
            L4::Udp => &self.udp,
        }
    }

    fn and(self, o: Need) -> Need {
        Need {
            tcp: self.tcp.and(o.tcp),
            udp: self.udp.and(o.udp),
        }
    }

    fn or(self, o: Need) -> Need {
        Need {
            tcp: self.tcp.or(o.tcp),
            udp: self.udp.or(o.udp),
        }
    }
}

fn ports_of(cond: &Cond) -> Ports {
    let port = |n: i64| u16::try_from(n).ok();
    match cond {
        Cond::Eq(l) => match l.num.and_then(port) {
            Some(p) => Ports::Some([p].into()),
            // a value no port has: never equal
            None => Ports::None,
        },
        // a list's text items that are no number can equal no port
        Cond::In { nums, .. } => {
            let v: BTreeSet<u16> = nums.iter().filter_map(|n| port(*n)).collect();
            if v.is_empty() {
                Ports::None
            } else {
                Ports::Some(v)
            }
        }
        _ => Ports::All,
    }
}

fn test_need(t: &crate::compile::Test, side: Side) -> Need {
    if !t.lhs.transforms.is_empty() {
        return Need::ANY;
    }
    // every comparison on a field falco-learn never fills is false (`exists` too)
    if fields::unavailable(&t.lhs.field).is_some() {
        return Need::NEVER;
    }
    match t.lhs.field.id {
        FieldId::FdL4Proto => match &t.cond {
            Cond::Eq(l) => match L4::parse(&l.text) {
                Some(p) => Need::per(|q| if q == p { Ports::All } else { Ports::None }),
                None => Need::NEVER,
            },
            Cond::In { strs, .. } => Need::per(|q| {
                if strs.contains(q.as_str()) {
                    Ports::All
                } else {
                    Ports::None
                }
            }),
            Cond::Ne(l) => match L4::parse(&l.text) {
                Some(p) => Need::per(|q| if q == p { Ports::None } else { Ports::All }),
                None => Need::ANY,
            },
            _ => Need::ANY,
        },
        // the server's port: the remote one on the client's side, the local one on the
        // server's
        f if side.port_field(f) => {
            let p = ports_of(&t.cond);
            Need {
                tcp: p.clone(),
                udp: p,
            }
        }
        _ => Need::ANY,
    }
}

/// The necessary (protocol, port) condition of `node` for a TCP or UDP event of `side`
/// (see the module docs).
pub fn necessary(node: &Node, side: Side) -> Need {
    let types = side.types();
    match node {
        Node::Const(false) => Need::NEVER,
        Node::Const(true) => Need::ANY,
        Node::Types(mask) => {
            if mask & types == 0 {
                Need::NEVER
            } else {
                Need::ANY
            }
        }
        Node::Not(inner) => match inner.as_ref() {
            Node::Types(mask) if mask & types == types => Need::NEVER,
            Node::Const(true) => Need::NEVER,
            _ => Need::ANY,
        },
        Node::Test(t) => test_need(t, side),
        Node::And(children) => children
            .iter()
            .fold(Need::ANY, |acc, c| acc.and(necessary(c, side))),
        Node::Or(children) => children
            .iter()
            .fold(Need::NEVER, |acc, c| acc.or(necessary(c, side))),
    }
}

/// What the loaded rules need of the TCP/UDP events of one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPlan {
    /// The side the plan is about.
    pub side: Side,
    /// Per protocol, the ports some rule may match, with the rules that need each; a
    /// protocol in [`NetPlan::unconstrained`] has none here.
    pub ports: BTreeMap<(L4, u16), Vec<String>>,
    /// Per protocol, the rules that could match any port of it: no event of that protocol
    /// is dropped.
    pub unconstrained: BTreeMap<L4, Vec<String>>,
}

impl NetPlan {
    /// Nothing needed (no rule sees the side).
    pub fn empty(side: Side) -> NetPlan {
        NetPlan {
            side,
            ports: BTreeMap::new(),
            unconstrained: BTreeMap::new(),
        }
    }

    /// Whether a rule may need an event of the side of protocol `p` and port `port`: the
    /// kernel's decision in userspace terms.
    pub fn needs(&self, p: L4, port: u16) -> bool {
        self.unconstrained.contains_key(&p) || self.ports.contains_key(&(p, port))
    }

    /// Whether every event of protocol `p` goes up (a rule leaves it unbounded).
    pub fn is_off(&self, p: L4) -> bool {
        self.unconstrained.contains_key(&p)
    }

    /// The bounded pairs, without the rules.
    pub fn pairs(&self) -> Vec<(L4, u16)> {
        self.ports.keys().copied().collect()
    }
}

impl Ruleset {
    /// The (protocol, port) pairs of `side` the enabled rules need: a TCP or UDP event of
    /// that side outside them can match no enabled rule.
    pub fn net_plan(&self, side: Side) -> NetPlan {
        let mut plan = NetPlan::empty(side);
        for r in self.rules().iter().filter(|r| r.enabled) {
            if r.evttypes & side.types() == 0 {
                continue;
            }
            let need = necessary(r.condition(), side);
            for p in L4::ALL {
                match need.get(p) {
                    Ports::None => {}
                    Ports::All => plan
                        .unconstrained
                        .entry(p)
                        .or_default()
                        .push(r.name.clone()),
                    Ports::Some(v) => {
                        for port in v {
                            plan.ports
                                .entry((p, *port))
                                .or_default()
                                .push(r.name.clone());
                        }
                    }
                }
            }
        }
        let off: Vec<L4> = plan.unconstrained.keys().copied().collect();
        plan.ports.retain(|(p, _), _| !off.contains(p));
        plan
    }

    /// [`Ruleset::net_plan`] of the client's side (outbound).
    pub fn outbound_plan(&self) -> NetPlan {
        self.net_plan(Side::Client)
    }

    /// [`Ruleset::net_plan`] of the server's side (inbound).
    pub fn inbound_plan(&self) -> NetPlan {
        self.net_plan(Side::Server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rules: &str) -> NetPlan {
        let (rs, report) = Ruleset::load_sources(&[("t.yaml", rules)]);
        assert!(report.errors.is_empty(), "{report}");
        rs.outbound_plan()
    }

    fn rule(name: &str, cond: &str) -> String {
        format!("- rule: {name}\n  desc: d\n  condition: {cond}\n  output: o %fd.name\n  priority: WARNING\n")
    }

    fn pairs(p: &NetPlan) -> Vec<(L4, u16)> {
        p.pairs()
    }

    #[test]
    fn ports_and_protocols_bound_a_connect_rule() {
        let p = plan(&rule(
            "a",
            "evt.type = connect and fd.l4proto = tcp and fd.sport in (22, 2222)",
        ));
        assert_eq!(pairs(&p), vec![(L4::Tcp, 22), (L4::Tcp, 2222)]);
        assert!(p.unconstrained.is_empty());
        assert!(p.needs(L4::Tcp, 22) && !p.needs(L4::Udp, 22) && !p.needs(L4::Tcp, 443));
        assert_eq!(p.ports[&(L4::Tcp, 22)], vec!["a".to_string()]);
        // fd.rport is the remote port of a client's event too; no protocol: both
        let p = plan(&rule(
            "b",
            "evt.type in (connect, sendto) and fd.rport = 53",
        ));
        assert_eq!(pairs(&p), vec![(L4::Tcp, 53), (L4::Udp, 53)]);
    }

    #[test]
    fn or_unites_and_intersects_and_not_bounds_nothing() {
        let p = plan(&rule(
            "a",
            "evt.type = connect and ((fd.l4proto = udp and fd.sport = 53) or (fd.l4proto in (tcp) and fd.sport in (80, 443) and fd.rport in (443, 8443)))",
        ));
        assert_eq!(pairs(&p), vec![(L4::Tcp, 443), (L4::Udp, 53)]);
        let p = plan(&rule(
            "n",
            "evt.type = connect and fd.l4proto != udp and not fd.sport in (80)",
        ));
        assert_eq!(p.unconstrained.get(&L4::Tcp), Some(&vec!["n".to_string()]));
        assert!(!p.is_off(L4::Udp));
        assert!(p.needs(L4::Tcp, 1) && !p.needs(L4::Udp, 1));
    }

    #[test]
    fn impossible_branches_need_nothing() {
        // a field falco-learn never fills, another protocol, a port no port has, other events
        let p = plan(&format!(
            "{}{}{}{}",
            rule(
                "k8s",
                "evt.type = connect and fd.sip.name = kubernetes.default.svc.cluster.local"
            ),
            rule("icmp", "evt.type = connect and fd.l4proto = icmp"),
            rule("none", "evt.type = connect and fd.sport = 70000"),
            rule("exec", "evt.type = execve and proc.name = nc"),
        ));
        assert_eq!(p, NetPlan::empty(Side::Client));
    }

    #[test]
    fn a_rule_without_bounds_turns_its_protocols_off_and_is_named() {
        let p = plan(&format!(
            "{}{}",
            rule("any", "evt.type = sendto and proc.name = nc"),
            rule(
                "ssh",
                "evt.type = connect and fd.l4proto = tcp and fd.sport = 22"
            ),
        ));
        assert!(p.is_off(L4::Tcp) && p.is_off(L4::Udp));
        // an off protocol keeps no pairs
        assert!(p.ports.is_empty());
        assert_eq!(p.unconstrained[&L4::Udp], vec!["any".to_string()]);
        // fd.port may be the local (ephemeral) port: no bound
        let p = plan(&rule("port", "evt.type = connect and fd.port = 22"));
        assert!(p.is_off(L4::Tcp) && p.is_off(L4::Udp));
    }

    #[test]
    fn the_server_side_bounds_by_the_served_port() {
        let (rs, report) = Ruleset::load_sources(&[(
            "t.yaml",
            &format!(
                "{}{}",
                rule(
                    "telnet served",
                    "evt.type in (accept, accept4) and fd.l4proto = tcp and fd.lport = 23"
                ),
                rule("ssh out", "evt.type = connect and fd.sport = 22"),
            ),
        )]);
        assert!(report.errors.is_empty(), "{report}");
        let inbound = rs.inbound_plan();
        assert_eq!(inbound.pairs(), vec![(L4::Tcp, 23)]);
        assert_eq!(inbound.side, Side::Server);
        // a connect rule is no rule about accepts, and the other way round
        assert_eq!(
            rs.outbound_plan().pairs(),
            vec![(L4::Tcp, 22), (L4::Udp, 22)]
        );
        // on the server's side fd.rport is the client's port: no bound
        let (rs, _) = Ruleset::load_sources(&[(
            "t.yaml",
            rule("r", "evt.type = accept4 and fd.rport = 23").as_str(),
        )]);
        assert!(rs.inbound_plan().is_off(L4::Tcp));
        // a send rule is about both sides
        let (rs, _) = Ruleset::load_sources(&[(
            "t.yaml",
            rule(
                "dns",
                "evt.type = sendto and fd.l4proto = udp and fd.sport = 53",
            )
            .as_str(),
        )]);
        assert_eq!(rs.inbound_plan().pairs(), vec![(L4::Udp, 53)]);
        assert_eq!(rs.outbound_plan().pairs(), vec![(L4::Udp, 53)]);
    }

    /// Our default ruleset needs TCP connects to the ssh rule's ports only: every other
    /// outbound pair of a profiled container can be dropped in the kernel.
    #[test]
    fn the_default_rules_need_only_the_ssh_rules_ports() {
        let (rs, report) = Ruleset::load_sources(&[("default", crate::DEFAULT_RULES)]);
        assert!(report.errors.is_empty(), "{report}");
        let p = rs.outbound_plan();
        assert!(p.unconstrained.is_empty(), "{:?}", p.unconstrained);
        assert_eq!(
            pairs(&p),
            [53, 80, 88, 443, 4444, 8080, 8443]
                .map(|x| (L4::Tcp, x))
                .to_vec()
        );
        assert_eq!(
            p.ports[&(L4::Tcp, 443)],
            vec!["Disallowed SSH Connection Non Standard Port".to_string()]
        );
    }
}
