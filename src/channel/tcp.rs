//! The TCP link: a listener for the peer's connection and a client connection to the peer
//! (sync-modes.md §10, wire-protocol.md §1 and §9).
//!
//! The C daemon uses TCP as two one-way pipes: it accepts one connection from the peer and
//! reads messages from it, and it writes its own datagram buffers, back to back, into a
//! separate connection it opened to the peer. So there is no framing beyond the messages'
//! own `len` fields: the reader reassembles messages that straddle reads and hands out runs
//! of whole messages, which look exactly like datagrams to the layers above.
//!
//! Sends never block. While the client connection is down or the socket is full, buffers
//! wait in the error queue (`ErrorQueueLength`, default 128, oldest dropped) and go out in
//! order, before new data, once the connection is back. Reconnects are tried at most once
//! per second; EPIPE/ECONNRESET make the socket be recreated.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::batch::{self, RecvBatch, StreamSplit};
use super::udp;
use super::{Link, LinkStats, RecvFds, Transport};
use crate::config;
use crate::sys::socket;

/// The C daemon's minimum time between two connection attempts.
pub const RECONNECT_INTERVAL: Duration = Duration::from_secs(1);

/// The calling thread's network namespace.
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// Stream reassembly buffer: two of the largest possible messages (`len` is 16 bits).
const STREAM_BUF: usize = 2 * 65_536;

#[derive(Debug)]
enum Client {
    /// No socket; the next attempt is allowed at `last + RECONNECT_INTERVAL`.
    Down,
    /// Non-blocking connect in progress.
    Connecting(OwnedFd),
    /// Ready for writing.
    Connected(OwnedFd),
}

/// A TCP dedicated link.
#[derive(Debug)]
pub struct TcpLink {
    interface: String,
    mtu: usize,
    channel: config::Channel,
    dest: SocketAddr,
    listener: OwnedFd,
    // The network namespace the link was opened in. Reconnects create a new socket, and a
    // socket lives in the namespace of the thread that creates it, so `tick` from a thread
    // elsewhere must not create it there (it would connect through the wrong network).
    netns: File,
    peer: Option<(OwnedFd, Option<SocketAddr>)>,
    rbuf: Box<[u8]>,
    rlen: usize,
    client: Client,
    last_attempt: Option<Instant>,
    queue: VecDeque<Vec<u8>>,
    // Bytes of the queue's head already written: a buffer half-written into the stream
    // must be finished, or the peer loses its framing.
    head_off: usize,
    queue_max: usize,
    stats: LinkStats,
}

impl TcpLink {
    /// Opens the listener on `address:Port` and starts connecting to `destination:Port`.
    /// `error_queue_length` is `Sync { TCP { ErrorQueueLength } }` (0 = default 128).
    pub fn open(ch: &config::Channel, error_queue_length: u32) -> io::Result<Self> {
        let iface = udp::interface(ch)?;
        let local = ch
            .address
            .ok_or_else(|| udp::invalid("TCP link without address"))?;
        let peer = ch
            .destination
            .ok_or_else(|| udp::invalid("TCP link without destination address"))?;
        let ifindex = match socket::if_index(iface) {
            Ok(i) => i,
            Err(e) if local.is_ipv6() => return Err(e),
            Err(_) => 0,
        };
        let listener = socket::socket(local, libc::SOCK_STREAM)?;
        let fd = listener.as_fd();
        socket::set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        socket::set_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
        if let Some(n) = ch.rcv_buffer {
            socket::set_int(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                n.min(i32::MAX as u32) as i32,
            )?;
        }
        socket::bind(fd, &udp::scoped(local, ch.port, ifindex))?;
        // Backlog 1: one peer at a time, as in C.
        socket::listen(fd, 1)?;
        let mut link = Self {
            interface: iface.to_owned(),
            mtu: udp::mtu(fd, iface),
            channel: ch.clone(),
            dest: udp::scoped(peer, ch.port, ifindex),
            listener,
            netns: File::open(THREAD_NETNS)?,
            peer: None,
            rbuf: vec![0; STREAM_BUF].into_boxed_slice(),
            rlen: 0,
            client: Client::Down,
            last_attempt: None,
            queue: VecDeque::new(),
            head_off: 0,
            queue_max: if error_queue_length == 0 {
                128
            } else {
                error_queue_length as usize
            },
            stats: LinkStats::default(),
        };
        link.try_connect();
        Ok(link)
    }

    /// The listener's address (useful with port 0 in tests).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket::local_addr(self.listener.as_fd())
    }

    /// True while the client connection to the peer is established.
    pub fn is_connected(&self) -> bool {
        matches!(self.client, Client::Connected(_))
    }

    /// True while a peer connection is accepted.
    pub fn has_peer(&self) -> bool {
        self.peer.is_some()
    }

    /// Buffers waiting in the error queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Starts a connection attempt if none is running and the last one is old enough.
    fn try_connect(&mut self) {
        if !matches!(self.client, Client::Down) {
            return;
        }
        let now = Instant::now();
        if self
            .last_attempt
            .is_some_and(|t| now.duration_since(t) < RECONNECT_INTERVAL)
        {
            return;
        }
        self.last_attempt = Some(now);
        self.stats.connects += 1;
        let Ok(fd) = self.client_socket() else {
            return;
        };
        match socket::connect(fd.as_fd(), &self.dest) {
            Ok(()) => self.client = Client::Connected(fd),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                self.client = Client::Connecting(fd);
            }
            Err(_) => {}
        }
    }

    /// A new client socket in the link's namespace, whichever thread asks.
    fn client_socket(&self) -> io::Result<OwnedFd> {
        let mine = self.netns.metadata()?;
        let here = std::fs::metadata(THREAD_NETNS)?;
        if (mine.dev(), mine.ino()) == (here.dev(), here.ino()) {
            return self.new_client_socket();
        }
        let path = format!("/proc/self/fd/{}", self.netns.as_raw_fd());
        crate::sys::netns::run_in(Path::new(&path), || self.new_client_socket())?
    }

    fn new_client_socket(&self) -> io::Result<OwnedFd> {
        let fd = socket::socket(self.dest.ip(), libc::SOCK_STREAM)?;
        socket::set_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
        if let Some(n) = self.channel.snd_buffer {
            socket::set_int(
                fd.as_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUFFORCE,
                n.min(i32::MAX as u32) as i32,
            )?;
        }
        // Checksum off sets SO_NO_CHECK on the client too, as in C; TCP ignores it.
        if !self.channel.checksum {
            socket::set_int(fd.as_fd(), libc::SOL_SOCKET, socket::SO_NO_CHECK, 1)?;
        }
        Ok(fd)
    }

    /// Moves a finished non-blocking connect to `Connected` (or back to `Down`).
    fn check_connecting(&mut self) {
        let Client::Connecting(fd) = &self.client else {
            return;
        };
        // A second connect() reports the outcome of the first: EISCONN when it succeeded,
        // EALREADY/EINPROGRESS while pending, the failure (ECONNREFUSED, …) otherwise.
        match socket::connect(fd.as_fd(), &self.dest) {
            Ok(()) => self.connected(),
            Err(e) => match e.raw_os_error() {
                Some(libc::EISCONN) => self.connected(),
                Some(libc::EALREADY | libc::EINPROGRESS) => {}
                _ => self.client = Client::Down,
            },
        }
    }

    fn connected(&mut self) {
        if let Client::Connecting(fd) = std::mem::replace(&mut self.client, Client::Down) {
            self.client = Client::Connected(fd);
            // A buffer half-written into the old connection starts again from its first byte.
            self.head_off = 0;
        }
    }

    /// Writes queued buffers while the socket takes them.
    fn flush(&mut self) {
        while let Some(head) = self.queue.front() {
            let Client::Connected(fd) = &self.client else {
                return;
            };
            match socket::send(fd.as_fd(), &head[self.head_off..]) {
                Ok(n) => {
                    self.head_off += n;
                    self.stats.bytes_sent += n as u64;
                    if self.head_off == head.len() {
                        self.queue.pop_front();
                        self.head_off = 0;
                        self.stats.datagrams_sent += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    // EPIPE, ECONNRESET and friends: recreate the socket later.
                    self.stats.send_errors += 1;
                    self.client = Client::Down;
                    self.head_off = 0;
                    return;
                }
            }
        }
    }

    fn enqueue(&mut self, datagram: &[u8]) {
        if self.queue.len() >= self.queue_max {
            // Drop the oldest buffer that has not been started on the wire.
            let victim = usize::from(self.head_off > 0);
            if self.queue.remove(victim).is_some() {
                self.stats.queue_dropped += 1;
            }
        }
        self.queue.push_back(datagram.to_vec());
    }

    /// Accepts pending connections; a new one replaces the old (one peer at a time).
    fn accept(&mut self) {
        loop {
            match socket::accept(self.listener.as_fd()) {
                Ok((fd, addr)) => {
                    self.peer = Some((fd, addr));
                    self.rlen = 0;
                    self.stats.accepts += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Hands out the whole messages at the front of the stream buffer; returns false when
    /// the batch is full.
    fn drain_messages(&mut self, out: &mut RecvBatch) -> bool {
        let from = self.peer.as_ref().and_then(|p| p.1);
        let (complete, corrupt) = match batch::split_stream(&self.rbuf[..self.rlen]) {
            StreamSplit::Complete(n) => (n, false),
            StreamSplit::Corrupt(n) => (n, true),
        };
        let mut off = 0;
        while off < complete && out.remaining() > 0 {
            let run = batch::message_run(&self.rbuf[off..complete], out.slot_len());
            if out.push(&self.rbuf[off..off + run], from) {
                self.stats.datagrams_recv += 1;
            } else {
                self.stats.bad_datagrams += 1;
            }
            off += run;
        }
        if corrupt && off == complete {
            // The stream lost its framing: nothing after this point can be trusted. Drop
            // the connection so the peer reconnects and resends from a clean start.
            self.stats.bad_datagrams += 1;
            self.peer = None;
            self.rlen = 0;
            return out.remaining() > 0;
        }
        self.rbuf.copy_within(off..self.rlen, 0);
        self.rlen -= off;
        out.remaining() > 0
    }
}

impl Link for TcpLink {
    fn tcp_state(&self) -> Option<(bool, bool)> {
        Some((self.has_peer(), self.is_connected()))
    }

    fn send_batch(&mut self, datagrams: &[&[u8]]) -> io::Result<usize> {
        self.tick();
        let mut done = 0;
        // Fast path: nothing queued and connected, so write straight from the caller's
        // buffers, up to BATCH_SIZE per sendmsg; only what the socket does not take is
        // copied into the queue.
        while done < datagrams.len() && self.queue.is_empty() {
            let Client::Connected(fd) = &self.client else {
                break;
            };
            let chunk = &datagrams[done..datagrams.len().min(done + batch::BATCH_SIZE)];
            match socket::send_vectored(fd.as_fd(), chunk) {
                Ok(mut n) => {
                    self.stats.bytes_sent += n as u64;
                    for d in chunk {
                        if n >= d.len() {
                            n -= d.len();
                            done += 1;
                            self.stats.datagrams_sent += 1;
                        } else {
                            if n > 0 {
                                // Half of it is in the stream: it must be finished first.
                                self.enqueue(d);
                                self.head_off = n;
                                done += 1;
                            }
                            break;
                        }
                    }
                    if done < datagrams.len() && self.queue.is_empty() && n == 0 {
                        // The socket is full.
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    // EPIPE, ECONNRESET and friends: recreate the socket later.
                    self.stats.send_errors += 1;
                    self.client = Client::Down;
                }
            }
        }
        for d in &datagrams[done..] {
            if !self.is_connected() {
                // C counts a failed send as an error and queues the buffer.
                self.stats.send_errors += 1;
            }
            self.enqueue(d);
        }
        self.flush();
        Ok(datagrams.len())
    }

    fn recv_batch(&mut self, out: &mut RecvBatch) -> io::Result<usize> {
        out.clear();
        self.accept();
        // Messages left over from a read that filled the previous batch.
        if !self.drain_messages(out) {
            return Ok(out.len());
        }
        while let Some((fd, _)) = &self.peer {
            if self.rlen == self.rbuf.len() {
                // Cannot happen: after a drain with room left only a partial message
                // (< 64 KiB) stays. Never spin on it, and say so if it ever does.
                self.stats.bad_datagrams += 1;
                self.rlen = 0;
            }
            match socket::recv(fd.as_fd(), &mut self.rbuf[self.rlen..]) {
                Ok(0) => {
                    self.peer = None;
                    self.rlen = 0;
                }
                Ok(n) => {
                    self.rlen += n;
                    self.stats.bytes_recv += n as u64;
                    if !self.drain_messages(out) {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    // ECONNRESET and friends: the peer will reconnect.
                    self.stats.recv_errors += 1;
                    self.peer = None;
                    self.rlen = 0;
                }
            }
        }
        Ok(out.len())
    }

    fn recv_fds(&self) -> RecvFds<'_> {
        RecvFds([
            Some(self.listener.as_fd()),
            self.peer.as_ref().map(|p| p.0.as_fd()),
        ])
    }

    fn send_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.client {
            Client::Connecting(fd) => Some(fd.as_fd()),
            Client::Connected(fd) if !self.queue.is_empty() => Some(fd.as_fd()),
            _ => None,
        }
    }

    fn tick(&mut self) {
        self.check_connecting();
        self.try_connect();
        self.check_connecting();
        self.flush();
    }

    fn interface(&self) -> &str {
        &self.interface
    }

    fn transport(&self) -> Transport {
        Transport::Tcp
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn stats(&self) -> &LinkStats {
        &self.stats
    }
}
