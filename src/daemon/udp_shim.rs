//! One UDP dedicated link (TEMPORARY: replaced by `channel::{Link, LinkPool}` when the
//! `channel` branch lands).
//!
//! As the C daemon (sync-modes.md §10): the receive socket is bound to `IPvX_address:Port`,
//! the send socket uses an ephemeral port towards `IPvX_Destination_Address:Port`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};

use crate::config::Channel;

/// A UDP link: one receive and one send socket, both non-blocking.
#[derive(Debug)]
pub struct UdpLink {
    rx: UdpSocket,
    tx: UdpSocket,
    dest: SocketAddr,
    /// Interface name, for `-s`.
    pub device: String,
}

impl UdpLink {
    /// Opens the sockets of `ch` (a `UDP { … }` block).
    pub fn open(ch: &Channel) -> io::Result<Self> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
        let local = ch
            .address
            .ok_or_else(|| bad("UDP link without a local address"))?;
        let peer = ch
            .destination
            .ok_or_else(|| bad("UDP link without a destination address"))?;
        let rx = UdpSocket::bind(SocketAddr::new(local, ch.port))?;
        let any = match local {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let tx = UdpSocket::bind(SocketAddr::new(any, 0))?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        Ok(Self {
            rx,
            tx,
            dest: SocketAddr::new(peer, ch.port),
            device: ch.interface.clone().unwrap_or_default(),
        })
    }

    /// Sends one datagram to the peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.tx.send_to(buf, self.dest)
    }

    /// Receives one datagram without blocking (`WouldBlock` when none is queued).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.rx.recv_from(buf)
    }

    /// The receive socket, for `poll`.
    pub fn rx_fd(&self) -> BorrowedFd<'_> {
        self.rx.as_fd()
    }
}
