//! Issue 9 §6, live: the real probe sees a UDP server and a TCP server (IPv4
//! and IPv6) in a network namespace of the test's own (loopback only), and
//! reports exactly who served and who was a client: accept4 with the listening
//! port and the bound flag, a UDP reply from the bound port with the server's
//! role, the clients' connect and query from autobound ports without it. The
//! events, learned, give `inbound` the four served ports and `outbound` the
//! clients' four destinations, and the generated rules agree with the matcher.
//!
//! Needs root (CI has it; elsewhere a loud SKIPPED line).

use falco_learn_event::{Event, EventType, FdType, L4Proto};
use falco_learn_probe::ProbeConfig;
use falco_learn_profiler::{generate_rules, Dimension, ImageRef, Learner, Limits, Proto};
use falco_learn_rules::Ruleset;
use falco_learn_test_support as support;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::Command;

const ROLE: &str = "FALCO_LEARN_INB_ROLE";

/// The ports served: UDP v4, UDP v6, TCP v4, TCP v6.
const PORTS: [u16; 4] = [5300, 5301, 8080, 8081];

/// Run in the namespace by [`udp_and_tcp_servers_are_inbound_clients_outbound`]
/// (the same test binary, re-executed): a UDP server answering a client and a
/// TCP server accepting one, on 127.0.0.1 and ::1. Prints each client's port.
#[test]
fn inbound_child() {
    if std::env::var_os(ROLE).is_none() {
        return;
    }
    for (i, addr) in ["127.0.0.1", "[::1]"].into_iter().enumerate() {
        let server = UdpSocket::bind(format!("{addr}:{}", PORTS[i])).expect("bind udp");
        let client = UdpSocket::bind(format!("{addr}:0")).expect("autobind udp client");
        client
            .send_to(b"query", format!("{addr}:{}", PORTS[i]))
            .expect("query");
        let mut buf = [0u8; 64];
        let (n, from) = server.recv_from(&mut buf).expect("recv");
        server.send_to(&buf[..n], from).expect("reply");
        client.recv_from(&mut buf).expect("answer");
        println!("udp{} client {}", i, from.port());
    }
    for (i, addr) in ["127.0.0.1", "[::1]"].into_iter().enumerate() {
        let listener = TcpListener::bind(format!("{addr}:{}", PORTS[2 + i])).expect("bind tcp");
        let mut c = TcpStream::connect(format!("{addr}:{}", PORTS[2 + i])).expect("connect");
        let (mut s, from) = listener.accept().expect("accept");
        c.write_all(b"x").expect("write");
        let mut b = [0u8; 1];
        s.read_exact(&mut b).expect("read");
        println!("tcp{} client {}", i, from.port());
    }
}

/// `ip netns` namespace, deleted on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn client_port(out: &str, what: &str) -> u16 {
    out.lines()
        .find_map(|l| l.split(&format!("{what} client ")).nth(1))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {what} client port in the child's output:\n{out}"))
}

#[test]
fn udp_and_tcp_servers_are_inbound_clients_outbound() {
    if !support::may_run("inbound live test", &["ip"]) {
        return;
    }
    let ns = Netns(format!("inb-live-{}", std::process::id()));
    support::must(Command::new("ip").args(["netns", "add", &ns.0]));
    support::must(Command::new("ip").args(["-n", &ns.0, "link", "set", "lo", "up"]));
    let live = support::LiveProbe::start(ProbeConfig::default());
    let exe = std::env::current_exe().expect("test binary");
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(&exe)
        .args([
            "--exact",
            "inbound_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the servers");
    // `ip netns exec` execs the program: the pid is the servers'
    let pid = child.id();
    let out = child.wait_with_output().expect("servers ran");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "servers failed: {text}");
    let clients = [
        client_port(&text, "udp0"),
        client_port(&text, "udp1"),
        client_port(&text, "tcp0"),
        client_port(&text, "tcp1"),
    ];

    let mine = |e: &Event| e.process.pid == pid && e.fd.is_some();
    let ip = |i: usize| -> std::net::IpAddr {
        if i.is_multiple_of(2) {
            "127.0.0.1"
        } else {
            "::1"
        }
        .parse()
        .expect("ip")
    };
    let typ = |i: usize| {
        if i.is_multiple_of(2) {
            FdType::Ipv4
        } else {
            FdType::Ipv6
        }
    };
    for i in 0..4 {
        let (served, client) = (PORTS[i], clients[i]);
        let udp = i < 2;
        // the server's side: accept4 (std's accept) or the UDP reply
        let server_kind = if udp {
            EventType::Sendto
        } else {
            EventType::Accept4
        };
        let s = live.wait_for(&format!("server {served}"), 10, |e| {
            mine(e)
                && e.event_type() == server_kind
                && e.fd
                    .as_ref()
                    .is_some_and(|f| f.sport == Some(served) && !f.is_client)
        });
        let f = s.fd.as_ref().expect("fd");
        assert!(s.res >= 0, "{s:?}");
        assert_eq!(f.typ, typ(i), "{s:?}");
        assert_eq!(f.l4proto, if udp { L4Proto::Udp } else { L4Proto::Tcp });
        assert_eq!(f.bound, Some(true), "{s:?}");
        assert_eq!((f.sip, f.cip), (Some(ip(i)), Some(ip(i))), "{s:?}");
        assert_eq!(f.cport, Some(client), "{s:?}");
        // the client's side: connect or the query, from an autobound port
        let client_kind = if udp {
            EventType::Sendto
        } else {
            EventType::Connect
        };
        let c = live.wait_for(&format!("client of {served}"), 10, |e| {
            mine(e)
                && e.event_type() == client_kind
                && e.fd
                    .as_ref()
                    .is_some_and(|f| f.sport == Some(served) && f.is_client)
        });
        let f = c.fd.as_ref().expect("fd");
        assert!(c.res >= 0, "{c:?}");
        assert_eq!(f.bound, Some(false), "{c:?}");
        assert_eq!(f.cport, Some(client), "{c:?}");
        assert_eq!(f.typ, typ(i), "{c:?}");
        // exactly one server event and one client event per service
        let n = |kind: EventType, server: bool| {
            live.matching(|e| {
                mine(e)
                    && e.event_type() == kind
                    && e.fd
                        .as_ref()
                        .is_some_and(|f| f.sport == Some(served) && f.is_client != server)
            })
            .len()
        };
        assert_eq!(
            (n(server_kind, true), n(client_kind, false)),
            (1, 1),
            "{served}"
        );
    }
    // no accept other than the two
    let accepts = live
        .matching(|e| mine(e) && matches!(e.event_type(), EventType::Accept | EventType::Accept4));
    assert_eq!(accepts.len(), 2, "{accepts:?}");

    // learned as an image's behaviour: the served ports inbound, the clients'
    // destinations outbound, never the other way
    let img = ImageRef::new("localhost/inb-live", "1");
    let evs: Vec<Event> = live
        .matching(mine)
        .into_iter()
        .map(|mut e| {
            std::sync::Arc::make_mut(&mut e.container).id = "inb0live0001".into();
            std::sync::Arc::make_mut(&mut e.container).image_repository = img.repository.clone();
            std::sync::Arc::make_mut(&mut e.container).image_tag = img.tag.clone();
            e
        })
        .collect();
    let mut l = Learner::new(Limits::default(), None).expect("limits");
    for e in &evs {
        l.observe(e);
    }
    let p = l.profiles()[&img].clone();
    let inbound: Vec<(Proto, u16)> = p.inbound.iter().flat_map(|m| m.keys().copied()).collect();
    assert_eq!(
        inbound,
        [
            (Proto::Tcp, 8080),
            (Proto::Tcp, 8081),
            (Proto::Udp, 5300),
            (Proto::Udp, 5301)
        ]
    );
    let outbound: Vec<(Proto, u16)> = p.outbound.keys().copied().collect();
    assert_eq!(outbound, inbound);
    let text = generate_rules(&p).expect("generates");
    let (rs, report) = Ruleset::load_sources(&[("generated.yaml", text.as_str())]);
    assert!(!report.has_errors(), "{report}");
    for e in &evs {
        assert_eq!(p.matches(e), None, "{e:?}");
        assert!(rs.matching(e).is_empty(), "{e:?}");
    }
    // the same server on a port it never served: an inbound anomaly in both
    let mut other = evs
        .iter()
        .find(|e| e.event_type() == EventType::Accept4)
        .cloned()
        .expect("an accept");
    if let Some(f) = other.fd.as_mut() {
        f.sport = Some(9090);
    }
    assert_eq!(
        p.matches(&other).map(|a| a.dimension),
        Some(Dimension::Inbound)
    );
    let fired: Vec<String> = rs.matching(&other).iter().map(|r| r.name.clone()).collect();
    assert_eq!(
        fired,
        [falco_learn_profiler::rule_name(&img, Dimension::Inbound)]
    );
}
