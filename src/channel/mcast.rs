//! Multicast links (IPv4 and IPv6), set up as the C daemon does (sync-modes.md §10).
//!
//! Receive: a socket bound to the wildcard address and the `Group` port, SO_REUSEADDR,
//! member of the group on the `IPv4_interface` address (IPv6: on the `Interface` index).
//! Send: a separate socket with an ephemeral port, loopback off, outgoing interface set.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;

use super::udp::{self, DgramLink};
use super::{LinkStats, Transport};
use crate::config;
use crate::sys::socket;

/// `IPV6_MULTICAST_ALL` (linux/in6.h); not exported by the libc crate for every target.
const IPV6_MULTICAST_ALL: libc::c_int = 29;

/// Opens a multicast link from a `Multicast { … }` block.
pub fn open(ch: &config::Channel) -> io::Result<DgramLink> {
    let iface = udp::interface(ch)?;
    let group = ch
        .address
        .ok_or_else(|| udp::invalid("multicast link without group address"))?;
    if !group.is_multicast() {
        return Err(udp::invalid(
            "multicast link address is not a multicast group",
        ));
    }
    let any = match group {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let recv = socket::socket(group, libc::SOCK_DGRAM)?;
    let send = socket::socket(group, libc::SOCK_DGRAM)?;
    socket::set_int(recv.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    socket::bind(recv.as_fd(), &SocketAddr::new(any, ch.port))?;
    match group {
        IpAddr::V4(g) => {
            let ifaddr = ch.multicast_interface.unwrap_or(Ipv4Addr::UNSPECIFIED);
            socket::join_v4(recv.as_fd(), g, ifaddr)?;
            // Deviation from C, receive side only: by default a wildcard-bound socket gets
            // the group's datagrams from *every* interface where any socket joined it, so
            // with redundant links on one group the wrong link would see (and be made
            // current by) the other link's traffic. Restrict it to its own membership.
            socket::set_int(recv.as_fd(), libc::IPPROTO_IP, libc::IP_MULTICAST_ALL, 0)?;
            socket::set_int(send.as_fd(), libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, 0)?;
            socket::set_multicast_if_v4(send.as_fd(), ifaddr)?;
        }
        IpAddr::V6(g) => {
            let ifindex = socket::if_index(iface)?;
            socket::join_v6(recv.as_fd(), g, ifindex)?;
            socket::set_int(recv.as_fd(), libc::IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)?;
            socket::set_int(
                send.as_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_MULTICAST_LOOP,
                0,
            )?;
            let idx =
                libc::c_int::try_from(ifindex).map_err(|_| udp::invalid("interface index"))?;
            socket::set_int(
                send.as_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_MULTICAST_IF,
                idx,
            )?;
        }
    }
    udp::apply_buffers(ch, send.as_fd(), Some(recv.as_fd()))?;
    Ok(DgramLink {
        transport: Transport::Multicast,
        interface: iface.to_owned(),
        mtu: udp::mtu(send.as_fd(), iface),
        dest: SocketAddr::new(group, ch.port),
        recv,
        send,
        stats: LinkStats::default(),
    })
}
