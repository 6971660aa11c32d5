//! Datagram links: unicast UDP, and the socket pair shared with multicast ([`DgramLink`]).
//!
//! Like the C daemon, every datagram link has two sockets: a receive socket bound to the
//! configured port, and a separate send socket with an ephemeral source port
//! (sync-modes.md §10). They differ between UDP and multicast only in how they are set up,
//! so one type carries both and [`super::mcast`] only provides the constructor.

use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::batch::{self, RecvBatch};
use super::{Link, LinkStats, RecvFds, Transport};
use crate::config;
use crate::sys::socket;

/// A datagram link (UDP or multicast): receive socket, send socket, destination.
#[derive(Debug)]
pub struct DgramLink {
    pub(super) transport: Transport,
    pub(super) interface: String,
    pub(super) mtu: usize,
    pub(super) recv: OwnedFd,
    pub(super) send: OwnedFd,
    pub(super) dest: SocketAddr,
    pub(super) stats: LinkStats,
}

impl DgramLink {
    /// The address the receive socket is bound to (useful with port 0 in tests).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket::local_addr(self.recv.as_fd())
    }

    /// Where datagrams go.
    pub fn destination(&self) -> SocketAddr {
        self.dest
    }
}

impl Link for DgramLink {
    fn send_batch(&mut self, datagrams: &[&[u8]]) -> io::Result<usize> {
        match batch::send_all(self.send.as_fd(), Some(&self.dest), datagrams) {
            Ok(n) => {
                self.stats.datagrams_sent += n as u64;
                self.stats.bytes_sent += datagrams[..n].iter().map(|d| d.len() as u64).sum::<u64>();
                if n < datagrams.len() {
                    self.stats.send_errors += 1;
                }
                Ok(n)
            }
            Err(e) => {
                self.stats.send_errors += 1;
                Err(e)
            }
        }
    }

    fn recv_batch(&mut self, batch: &mut RecvBatch) -> io::Result<usize> {
        let (n, bytes) = batch
            .recv_from(self.recv.as_fd(), &mut self.stats.bad_datagrams)
            .inspect_err(|e| {
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) {
                    self.stats.recv_errors += 1;
                }
            })?;
        self.stats.datagrams_recv += n as u64;
        self.stats.bytes_recv += bytes as u64;
        Ok(batch.len())
    }

    fn recv_fds(&self) -> RecvFds<'_> {
        RecvFds([Some(self.recv.as_fd()), None])
    }

    fn interface(&self) -> &str {
        &self.interface
    }

    fn transport(&self) -> Transport {
        self.transport
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn stats(&self) -> &LinkStats {
        &self.stats
    }
}

impl AsFd for DgramLink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.recv.as_fd()
    }
}

/// The receive buffer of a datagram link without `RcvSocketBuffer`. The C daemon keeps
/// the system default (about 200 KiB, some 90 full datagrams), which a burst of a few
/// thousand entries overruns; every overrun costs NACKs and retransmissions. 4 MiB holds
/// about 25k entries' worth of datagrams for a few MiB of kernel memory.
pub const DEFAULT_RCV_BUFFER: u32 = 4 << 20;

/// Applies `SndSocketBuffer`/`Checksum` to a send socket and `RcvSocketBuffer` (or
/// [`DEFAULT_RCV_BUFFER`]) to a receive socket, with the FORCE variants the C daemon uses
/// (they need CAP_NET_ADMIN and ignore `net.core.[rw]mem_max`).
pub(super) fn apply_buffers(
    ch: &config::Channel,
    send: BorrowedFd<'_>,
    recv: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    if let Some(n) = ch.snd_buffer {
        socket::set_int(send, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, clamp(n))?;
    }
    if let Some(recv) = recv {
        match ch.rcv_buffer {
            Some(n) => socket::set_int(recv, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, clamp(n))?,
            // Our own default: without CAP_NET_ADMIN take what rmem_max allows.
            None => {
                let n = clamp(DEFAULT_RCV_BUFFER);
                if socket::set_int(recv, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, n).is_err() {
                    socket::set_int(recv, libc::SOL_SOCKET, libc::SO_RCVBUF, n)?;
                }
            }
        }
    }
    if !ch.checksum {
        socket::set_int(send, libc::SOL_SOCKET, socket::SO_NO_CHECK, 1)?;
    }
    Ok(())
}

fn clamp(n: u32) -> libc::c_int {
    libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX)
}

/// The interface a channel names; the C daemon refuses to start without one.
pub(super) fn interface(ch: &config::Channel) -> io::Result<&str> {
    ch.interface
        .as_deref()
        .ok_or_else(|| invalid("dedicated link without Interface"))
}

pub(super) fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// `ip:port`, with the interface index as IPv6 scope id, as the C daemon builds both the
/// bind and the destination address of UDP and TCP links.
pub(super) fn scoped(ip: IpAddr, port: u16, ifindex: u32) -> SocketAddr {
    match ip {
        IpAddr::V4(a) => SocketAddr::new(IpAddr::V4(a), port),
        IpAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(a, port, 0, ifindex)),
    }
}

/// The interface MTU, or 1500 if it cannot be read (the C daemon reads it at start-up and
/// only uses it to size the send buffer).
pub(super) fn mtu(fd: BorrowedFd<'_>, iface: &str) -> usize {
    socket::if_mtu(fd, iface).map_or(1500, |m| m as usize)
}

/// Opens a UDP link: receive socket bound to `address:Port` (scope = `Interface`),
/// SO_REUSEADDR; send socket to `destination:Port` from an ephemeral port.
pub fn open(ch: &config::Channel) -> io::Result<DgramLink> {
    let iface = interface(ch)?;
    let local = ch
        .address
        .ok_or_else(|| invalid("UDP link without address"))?;
    let peer = ch
        .destination
        .ok_or_else(|| invalid("UDP link without destination address"))?;
    // IPv4 does not need the index; a missing interface then only costs link monitoring.
    let ifindex = match socket::if_index(iface) {
        Ok(i) => i,
        Err(e) if local.is_ipv6() => return Err(e),
        Err(_) => 0,
    };
    let recv = socket::socket(local, libc::SOCK_DGRAM)?;
    socket::set_int(recv.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    socket::bind(recv.as_fd(), &scoped(local, ch.port, ifindex))?;
    let send = socket::socket(peer, libc::SOCK_DGRAM)?;
    apply_buffers(ch, send.as_fd(), Some(recv.as_fd()))?;
    Ok(DgramLink {
        transport: Transport::Udp,
        interface: iface.to_owned(),
        mtu: mtu(send.as_fd(), iface),
        dest: scoped(peer, ch.port, ifindex),
        recv,
        send,
        stats: LinkStats::default(),
    })
}
