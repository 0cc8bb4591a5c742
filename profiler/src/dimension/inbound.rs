//! The inbound dimension (issue 9 §6): the ports a container serves, by
//! protocol (`network.inbound: [{proto, port}]`).
//!
//! Server traffic is the listening side's, never outbound:
//!
//! - an accepted connection (`accept`/`accept4`, `res >= 0`): `fd.sport` is the
//!   port the server listens on, `fd.cip`/`fd.cport` the client;
//! - a UDP datagram the server sends back (`sendto`/`sendmsg`, `res >= 0`) from
//!   a socket whose local port it bound: the probe reads `SOCK_BINDPORT_LOCK` in
//!   `sk_userlocks` (`Fd::bound`) and reports such a send with the server's role
//!   (`fd.sport` = the local port). Rules and the matcher both say "server side"
//!   as `fd.lport = fd.sport` (Falco: `fd.lport = val(fd.sport)`).
//!
//! Client traffic (connect, a send from an autobound ephemeral port) stays
//! outbound. Recordings made before the probe reported the bound flag carry no
//! server role on UDP sends: their replies read as outbound (and so do they in
//! stock Falco), so learn from new recordings.
//!
//! Profiles of schema 1 and 2 were learned without this dimension: it is not
//! learned there (`Profile::inbound` is None), allows everything and generates
//! no rule until the image is learned again.

use super::{Behaviour, Change, Dim, Dimension, Learned, RuleContext, Sign};
pub use crate::model::InboundPorts;
use crate::model::{Delta, Limits, Profile, Proto, Seen};
use crate::text::{
    allowed_macro, l4_literal, parse_ts, rule, rule_name, seen_fields, GenerateError,
};
use falco_learn_event::{Event, EventType, FdType, L4Proto};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The inbound dimension.
pub struct Inbound;

/// Whether an event is server traffic: an accepted connection, or a UDP
/// datagram sent from the server's end (`fd.lport = fd.sport`), on an IPv4 or
/// IPv6 socket; the protocol and the served port (`fd.sport`).
pub fn server_traffic(ev: &Event) -> Option<(Proto, Option<u16>)> {
    let fd = ev.fd.as_ref()?;
    if ev.res < 0 || !matches!(fd.typ, FdType::Ipv4 | FdType::Ipv6) {
        return None;
    }
    match ev.event_type() {
        EventType::Accept | EventType::Accept4 => Some((fd.l4proto.into(), fd.sport)),
        EventType::Sendto | EventType::Sendmsg if fd.l4proto == L4Proto::Udp => {
            let local = if fd.is_client { fd.cport } else { fd.sport };
            (local.is_some() && local == fd.sport).then_some((Proto::Udp, fd.sport))
        }
        _ => None,
    }
}

fn key_bytes(proto: Proto, port: u16) -> Vec<u8> {
    let [a, b] = port.to_be_bytes();
    proto.as_str().bytes().chain([b'/', a, b]).collect()
}

fn key_of(key: &[u8]) -> Result<(Proto, u16), String> {
    let bad = || "entry is not protocol/port".to_string();
    let slash = key.iter().position(|&b| b == b'/').ok_or_else(bad)?;
    let proto = std::str::from_utf8(&key[..slash])
        .ok()
        .and_then(Proto::parse)
        .ok_or_else(bad)?;
    match key[slash + 1..] {
        [a, b] => Ok((proto, u16::from_be_bytes([a, b]))),
        _ => Err(bad()),
    }
}

/// One `network.inbound` entry of a profile file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryFile {
    proto: String,
    port: u16,
    #[serde(default)]
    count: u64,
    #[serde(default)]
    first_seen: Option<String>,
    #[serde(default)]
    last_seen: Option<String>,
}

/// The `network.inbound` section read back (`yaml::from_yaml`): the entries,
/// or the message of the first bad one with its index.
pub fn from_file(entries: Vec<EntryFile>) -> Result<InboundPorts, (usize, String)> {
    let mut m = InboundPorts::new();
    for (i, e) in entries.into_iter().enumerate() {
        let proto = Proto::parse(&e.proto).ok_or_else(|| {
            (
                i,
                format!(
                    "unknown protocol '{}', expected tcp, udp, icmp, raw or unknown",
                    e.proto
                ),
            )
        })?;
        let ts = |t: Option<String>| t.map_or(Ok(0), |t| parse_ts(&t)).map_err(|m| (i, m));
        let seen = Seen {
            count: e.count,
            first_seen: ts(e.first_seen)?,
            last_seen: ts(e.last_seen)?,
        };
        if m.insert((proto, e.port), seen).is_some() {
            return Err((i, format!("duplicate entry {proto}/{}", e.port)));
        }
    }
    Ok(m)
}

#[derive(serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredV1 {
    count: u64,
    first: u64,
    last: u64,
}

fn value(b: &Behaviour) -> Option<(Proto, Option<u16>)> {
    match *b {
        Behaviour::Inbound { proto, port } => Some((proto, port)),
        _ => None,
    }
}

impl Dim for Inbound {
    fn dimension(&self) -> Dimension {
        Dimension::Inbound
    }

    fn behaviour<'a>(&self, ev: &'a Event) -> Option<Behaviour<'a>> {
        server_traffic(ev).map(|(proto, port)| Behaviour::Inbound { proto, port })
    }

    fn allows(&self, p: &Profile, b: &Behaviour) -> bool {
        let Some(ports) = &p.inbound else {
            return true;
        };
        match value(b) {
            Some((proto, Some(port))) => ports.contains_key(&(proto, port)),
            _ => false,
        }
    }

    fn learn(&self, p: &mut Profile, b: &Behaviour, ts: u64, _limits: &Limits) -> Learned {
        let Some((proto, Some(port))) = value(b) else {
            return Learned::default();
        };
        // a profile learned before this dimension existed stays without it
        let Some(ports) = &mut p.inbound else {
            return Learned::default();
        };
        let mut out = Learned {
            changed: vec![key_bytes(proto, port)],
            ..Learned::default()
        };
        match ports.get_mut(&(proto, port)) {
            Some(s) => s.hit(ts),
            None => {
                ports.insert((proto, port), Seen::at(ts));
                out.deltas.push(Delta::NewEntry {
                    dimension: Dimension::Inbound,
                    value: format!("{proto}/{port}"),
                });
            }
        }
        out
    }

    fn is_learned(&self, p: &Profile) -> bool {
        p.inbound.is_some()
    }

    fn set_learned(&self, p: &mut Profile, learned: bool) {
        match (learned, p.inbound.is_some()) {
            (true, false) => p.inbound = Some(InboundPorts::new()),
            (false, true) => p.inbound = None,
            _ => {}
        }
    }

    fn entries(&self, p: &Profile) -> usize {
        p.inbound.as_ref().map_or(0, |m| m.len())
    }

    fn merge(&self, p: &mut Profile, other: &Profile, _limits: &Limits) {
        let Some(o) = &other.inbound else { return };
        let m = p.inbound.get_or_insert_with(InboundPorts::new);
        for (k, s) in o {
            m.entry(*k).or_default().absorb(s);
        }
    }

    fn write_yaml(&self, p: &Profile, o: &mut String) {
        let Some(ports) = &p.inbound else { return };
        if ports.is_empty() {
            o.push_str("  inbound: []\n");
            return;
        }
        o.push_str("  inbound:\n");
        for ((proto, port), s) in ports {
            let _ = write!(o, "    - {{ proto: {proto}, port: {port}");
            seen_fields(o, s);
            o.push_str(" }\n");
        }
    }

    fn generate(
        &self,
        p: &Profile,
        cx: &RuleContext<'_>,
        o: &mut String,
    ) -> Result<(), GenerateError> {
        let Some(ports) = &p.inbound else {
            return Ok(());
        };
        let px = cx.prefix;
        let mut by_proto: BTreeMap<Proto, Vec<String>> = BTreeMap::new();
        for (proto, port) in ports.keys() {
            by_proto.entry(*proto).or_default().push(port.to_string());
        }
        let mut alts = Vec::new();
        for (proto, list) in &by_proto {
            let name = format!("{px}_inbound_{}", proto.as_str());
            let _ = writeln!(o, "- list: {name}\n  items: [{}]\n", list.join(", "));
            let l4 = l4_literal(*proto);
            alts.push(format!("(fd.l4proto = {l4} and fd.sport in ({name}))"));
        }
        let not_part = allowed_macro(o, &format!("{px}_inbound_allowed"), &alts);
        let img = cx.image;
        rule(
            o,
            &rule_name(img, Dimension::Inbound),
            &format!(
                "Inbound connection (protocol, port served) not seen while learning image {img}"
            ),
            &format!(
                "(evt.type in (accept, accept4) or (evt.type in (sendto, sendmsg) and fd.l4proto = udp\n    \
                 and fd.lport = val(fd.sport))) and evt.rawres >= 0\n    \
                 and fd.typechar in (4, 6) and {}{not_part}",
                cx.image_macro
            ),
            &format!(
                "Unexpected inbound connection to learned image (connection=%fd.name \
                 proto=%fd.l4proto port=%fd.sport client=%fd.cip exe=%proc.exepath \
                 cmdline=%proc.cmdline {})",
                cx.output_tail
            ),
            "network",
        );
        Ok(())
    }

    fn diff(&self, a: &Profile, b: &Profile, out: &mut Vec<Change>) {
        let set = |p: &Profile| -> BTreeSet<String> {
            p.inbound
                .iter()
                .flat_map(|m| m.keys())
                .map(|(proto, port)| format!("{proto}/{port}"))
                .collect()
        };
        let (sa, sb) = (set(a), set(b));
        for (sign, x, y) in [(Sign::Removed, &sa, &sb), (Sign::Added, &sb, &sa)] {
            for v in x.difference(y) {
                out.push(Change {
                    dimension: Dimension::Inbound,
                    sign,
                    value: v.clone(),
                });
            }
        }
        if a.inbound.is_some() != b.inbound.is_some() {
            let learned = |p: &Profile| {
                if p.inbound.is_some() {
                    "learned"
                } else {
                    "not learned"
                }
            };
            out.push(Change {
                dimension: Dimension::Inbound,
                sign: Sign::Changed,
                value: format!("{} -> {}", learned(a), learned(b)),
            });
        }
    }

    fn store_entries(&self, p: &Profile) -> Vec<(Vec<u8>, serde_json::Value)> {
        p.inbound
            .iter()
            .flat_map(|m| m.iter())
            .filter_map(|((proto, port), s)| {
                let v = serde_json::to_value(StoredV1 {
                    count: s.count,
                    first: s.first_seen,
                    last: s.last_seen,
                })
                .ok()?;
                Some((key_bytes(*proto, *port), v))
            })
            .collect()
    }

    fn store_entry(&self, p: &Profile, key: &[u8]) -> Option<serde_json::Value> {
        let k = key_of(key).ok()?;
        let s = p.inbound.as_ref()?.get(&k)?;
        serde_json::to_value(StoredV1 {
            count: s.count,
            first: s.first_seen,
            last: s.last_seen,
        })
        .ok()
    }

    fn load_store_entry(
        &self,
        p: &mut Profile,
        key: &[u8],
        value: serde_json::Value,
    ) -> Result<(), String> {
        let k = key_of(key)?;
        let v: StoredV1 = serde_json::from_value(value).map_err(|e| e.to_string())?;
        p.inbound.get_or_insert_with(InboundPorts::new).insert(
            k,
            Seen {
                count: v.count,
                first_seen: v.first,
                last_seen: v.last,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ImageRef;
    use falco_learn_event::{Container, EventTypeField, Fd};

    fn ev(t: EventType, fd: Fd) -> Event {
        Event {
            typ: EventTypeField(t),
            res: 5,
            fd: Some(fd),
            container: Container {
                id: "c1".into(),
                image_repository: "docker.io/library/dns".into(),
                image_tag: "1".into(),
                ..Container::default()
            }
            .into(),
            ..Event::default()
        }
    }

    fn accept(port: u16, client: u16, typ: FdType) -> Event {
        ev(
            EventType::Accept4,
            Fd {
                typ,
                l4proto: L4Proto::Tcp,
                cip: Some("198.51.100.20".parse().expect("ip")),
                cport: Some(client),
                sip: Some("198.51.100.1".parse().expect("ip")),
                sport: Some(port),
                is_client: false,
                bound: Some(true),
                ..Fd::default()
            },
        )
    }

    /// A UDP send as the probe reports it: from a bound socket with the
    /// server's role, otherwise as a client.
    fn udp_send(local: u16, remote: u16, bound: bool) -> Event {
        let (me, peer) = (
            Some("192.0.2.10".parse().expect("ip")),
            Some("198.51.100.20".parse().expect("ip")),
        );
        let fd = if bound {
            Fd {
                typ: FdType::Ipv4,
                l4proto: L4Proto::Udp,
                cip: peer,
                cport: Some(remote),
                sip: me,
                sport: Some(local),
                is_client: false,
                bound: Some(true),
                ..Fd::default()
            }
        } else {
            Fd {
                typ: FdType::Ipv4,
                l4proto: L4Proto::Udp,
                cip: me,
                cport: Some(local),
                sip: peer,
                sport: Some(remote),
                is_client: true,
                bound: Some(false),
                ..Fd::default()
            }
        };
        ev(EventType::Sendto, fd)
    }

    #[test]
    fn server_traffic_is_accepts_and_replies_from_the_servers_end() {
        assert_eq!(
            server_traffic(&accept(80, 40312, FdType::Ipv4)),
            Some((Proto::Tcp, Some(80)))
        );
        assert_eq!(
            server_traffic(&accept(443, 51000, FdType::Ipv6)),
            Some((Proto::Tcp, Some(443)))
        );
        assert_eq!(server_traffic(&accept(80, 1, FdType::Unix)), None);
        let mut failed = accept(80, 1, FdType::Ipv4);
        failed.res = -11;
        assert_eq!(server_traffic(&failed), None);
        assert_eq!(
            server_traffic(&udp_send(53, 40312, true)),
            Some((Proto::Udp, Some(53)))
        );
        // a client's query from an ephemeral port, even to a port below it
        assert_eq!(server_traffic(&udp_send(40312, 53, false)), None);
        // a connect is a client's, whatever its ports
        let mut c = udp_send(53, 40312, true);
        c.typ = EventTypeField(EventType::Connect);
        assert_eq!(server_traffic(&c), None);
    }

    #[test]
    fn learn_allow_merge_and_store_round_trip() {
        let l = Limits::default();
        let mut p = Profile::new(ImageRef::new("docker.io/library/dns", "1"));
        let b = Behaviour::Inbound {
            proto: Proto::Udp,
            port: Some(53),
        };
        let d = Inbound.learn(&mut p, &b, 7, &l);
        assert_eq!(
            d.deltas.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            ["inbound udp/53"]
        );
        assert_eq!(d.changed, [b"udp/\x00\x35".to_vec()]);
        let again = Inbound.learn(&mut p, &b, 8, &l);
        assert!(again.deltas.is_empty());
        assert_eq!(again.changed, d.changed);
        assert!(Inbound.allows(&p, &b));
        let other = Behaviour::Inbound {
            proto: Proto::Tcp,
            port: Some(53),
        };
        assert!(!Inbound.allows(&p, &other));
        assert!(!Inbound.allows(
            &p,
            &Behaviour::Inbound {
                proto: Proto::Udp,
                port: None
            }
        ));
        // not learned (an older schema): allows all, learns nothing
        let mut old = Profile::new(ImageRef::new("docker.io/library/dns", "1"));
        old.inbound = None;
        assert!(Inbound.allows(&old, &other));
        let none = Inbound.learn(&mut old, &other, 9, &l);
        assert!(none.deltas.is_empty() && none.changed.is_empty());
        assert_eq!(old.inbound, None);
        // store
        let mut back = Profile::new(ImageRef::new("docker.io/library/dns", "1"));
        for (k, v) in Inbound.store_entries(&p) {
            assert_eq!(Inbound.store_entry(&p, &k), Some(v.clone()));
            Inbound
                .load_store_entry(&mut back, &k, v)
                .expect("stored entry loads");
        }
        assert_eq!(back.inbound, p.inbound);
        assert_eq!(
            p.inbound.as_ref().map(|m| m[&(Proto::Udp, 53)].count),
            Some(2)
        );
        assert!(key_of(b"udp/5").is_err());
        assert!(key_of(b"xyz/\0\x35").is_err());
        // merge into a profile that never learned it: learned now
        Inbound.merge(&mut old, &p, &l);
        assert_eq!(Inbound.entries(&old), 1);
    }

    #[test]
    fn yaml_entries_are_checked() {
        let e = |proto: &str, port| EntryFile {
            proto: proto.into(),
            port,
            count: 1,
            first_seen: None,
            last_seen: None,
        };
        assert_eq!(
            from_file(vec![e("tcp", 80), e("udp", 80)]).map(|m| m.len()),
            Ok(2)
        );
        assert_eq!(
            from_file(vec![e("tcp", 80), e("tcp", 80)]),
            Err((1, "duplicate entry tcp/80".into()))
        );
        assert!(from_file(vec![e("sctp", 80)]).is_err());
    }
}
