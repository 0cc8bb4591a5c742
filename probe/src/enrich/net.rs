//! The network family (kinds `Connect`, `Sendto`, `Sendmsg`, `Accept`, `Accept4`,
//! `Socket`): socket endpoints as libsinsp renders them (client and server sides, the
//! bound flag, IPv4-mapped addresses unmapped) and the syscalls' arguments.

use falco_learn_event::errno::EINPROGRESS;
use falco_learn_event::{Args, EventType, Fd, FdType, L4Proto};
use falco_learn_probe_common as abi;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(super) const AF_UNIX: u16 = 1;
pub(super) const AF_INET: u16 = 2;
pub(super) const AF_INET6: u16 = 10;
const AF_NETLINK: u16 = 16;
const AF_PACKET: u16 = 17;

pub(super) fn ip(family: u16, a: &[u8; 16]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(*a))),
        _ => None,
    }
}

fn fd_type(family: u16) -> FdType {
    match family {
        AF_INET => FdType::Ipv4,
        AF_INET6 => FdType::Ipv6,
        AF_UNIX => FdType::Unix,
        AF_NETLINK => FdType::Netlink,
        AF_PACKET => FdType::Packet,
        _ => FdType::Other,
    }
}

fn l4(protocol: u16, typ: u16) -> L4Proto {
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
        AF_NETLINK => "netlink",
        AF_PACKET => "packet",
        _ => "",
    }
}

pub(super) fn sock_fd(num: i64, s: &abi::Sock) -> Fd {
    Fd {
        num,
        typ: fd_type(s.family),
        l4proto: l4(s.protocol, s.typ),
        cip: ip(s.family, &s.laddr),
        cport: (s.family == AF_INET || s.family == AF_INET6).then_some(s.lport),
        sip: ip(s.family, &s.raddr),
        sport: (s.family == AF_INET || s.family == AF_INET6).then_some(s.rport),
        is_client: true,
        connected: s.rport != 0,
        bound: (s.flags & abi::SOCK_FLAGS_KNOWN != 0).then_some(s.flags & abi::SOCK_BOUND != 0),
        sockfamily: sockfamily(s.family).to_string(),
        ..Default::default()
    }
}

/// The server's view of a socket (an accepted connection, a reply from a bound UDP
/// socket): `fd.cip`/`fd.cport` the client (the remote end), `fd.sip`/`fd.sport` this
/// process's end, `is_client` false, as libsinsp renders a server's fd.
pub(super) fn server_side(f: &mut Fd) {
    std::mem::swap(&mut f.cip, &mut f.sip);
    std::mem::swap(&mut f.cport, &mut f.sport);
    f.is_client = false;
}

/// A connect, sendto, sendmsg, accept or accept4 (`typ`: which).
pub(super) fn net(typ: EventType, h: &abi::Hdr, e: &abi::Net) -> (Option<Fd>, Args) {
    let mut f = sock_fd(e.fd, &e.sock);
    if e.sock.family == 0 {
        f.typ = fd_type(e.addr.family);
        f.sockfamily = sockfamily(e.addr.family).to_string();
    }
    // the destination (the kernel's peer once connected, else as passed) is the server side
    if let Some(peer) = ip(e.addr.family, &e.addr.addr) {
        f.sip = Some(peer);
        f.sport = Some(e.addr.port);
    }
    f.connected = typ == EventType::Connect && (h.res == 0 || h.res == -EINPROGRESS);
    let accept = matches!(typ, EventType::Accept | EventType::Accept4);
    if accept {
        f.connected = h.res >= 0;
    }
    // an accepted connection, or a UDP datagram sent from a port the process
    // bound (a server answering its client), is the server's side; a connect is
    // always the client's, whatever its socket's ports
    if accept || (typ != EventType::Connect && f.l4proto == L4Proto::Udp && f.bound == Some(true)) {
        server_side(&mut f);
    }
    // `evt.arg.addr` as libsinsp renders a sockaddr (`ipv4serveraddr_to_string`,
    // `ipv6serveraddr_to_string`: `address:port`, no brackets for IPv6)
    let addr = match ip(e.addr.family, &e.addr.addr) {
        Some(a) => format!("{a}:{}", e.addr.port),
        None => String::new(),
    };
    let args = if accept {
        Args::None
    } else if typ == EventType::Connect {
        Args::Connect { fd: e.fd, addr }
    } else {
        Args::Send {
            fd: e.fd,
            size: e.size,
            addr,
        }
    };
    f.unmap_ipv4();
    (Some(f), args)
}

/// A socket call: the new descriptor's family and protocol.
pub(super) fn socket(h: &abi::Hdr, e: &abi::Socket) -> (Option<Fd>, Args) {
    let fd = Fd {
        num: h.res,
        typ: fd_type(e.domain as u16),
        l4proto: l4(e.protocol as u16, (e.typ & 0xf) as u16),
        sockfamily: sockfamily(e.domain as u16).to_string(),
        ..Default::default()
    };
    let args = Args::Socket {
        domain: e.domain,
        typ: e.typ,
        proto: e.protocol,
    };
    (Some(fd), args)
}
