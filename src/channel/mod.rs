//! The sync channels: the I/O half of state synchronisation.
//!
//! A [`Link`] is one dedicated link (`Multicast`, `UDP` or `TCP` block) with the sockets the
//! C daemon opens for it (sync-modes.md §10). It sends whole datagrams in batches
//! (`sendmmsg`) and receives them in batches (`recvmmsg`, or a stream reader for TCP) into
//! a caller-owned [`RecvBatch`]. Every received datagram is checked against the message
//! framing first; a datagram that fails is counted in [`LinkStats::bad_datagrams`] and cut
//! to its well-framed prefix (often nothing), never a panic.
//!
//! A [`LinkPool`] holds the 1–4 redundant links of a config (sync-modes.md §9): all of
//! them receive, only the current one sends, and the current one changes when its
//! interface goes down ([`LinkMonitor`] watches rtnetlink), when sending on it fails, or
//! when a valid message arrives on another link (so the backup node follows the primary).
//!
//! The hand-off from the sync state machines is a [`Transmit`]: the finished bytes of one
//! datagram. Sequence numbers are stamped by `wire::batch` before that, from the daemon's
//! single counter, so the link that carries a datagram never changes its contents.

use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;

pub mod batch;
pub mod linkstate;
pub mod mcast;
pub mod pool;
pub mod tcp;
pub mod udp;

pub use batch::{BATCH_SIZE, Received, RecvBatch};
pub use linkstate::{IfState, LinkMonitor};
pub use pool::{LinkPool, LinkStatus, Selection};
pub use tcp::TcpLink;
pub use udp::DgramLink;

use crate::config;
pub use crate::config::Transport;

/// One datagram handed from the sync layer to the channel layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// One or more complete, sequence-stamped sync messages (at most the link's
    /// [`Link::buffer_size`] − 1 bytes, as the C daemon packs them).
    pub contents: &'a [u8],
}

/// Per-link counters (what `-s link` prints, plus our own diagnostics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Payload bytes handed to the kernel.
    pub bytes_sent: u64,
    /// Datagrams sent (TCP: buffers completely written).
    pub datagrams_sent: u64,
    /// Failed sends (TCP: also buffers queued while disconnected, as in C).
    pub send_errors: u64,
    /// Payload bytes received.
    pub bytes_recv: u64,
    /// Datagrams received (TCP: runs of whole messages handed out).
    pub datagrams_recv: u64,
    /// Receive calls that failed with something other than "nothing pending".
    pub recv_errors: u64,
    /// Datagrams that failed the framing check (truncated, corrupt length) and were
    /// dropped from the first bad message on; TCP: stream framing losses.
    pub bad_datagrams: u64,
    /// TCP: connection attempts to the peer.
    pub connects: u64,
    /// TCP: connections accepted from the peer.
    pub accepts: u64,
    /// TCP: buffers dropped because the error queue was full.
    pub queue_dropped: u64,
}

/// The descriptors to poll for readability: up to two (TCP: listener and peer connection).
#[derive(Debug, Clone, Copy)]
pub struct RecvFds<'a>(pub [Option<BorrowedFd<'a>>; 2]);

impl<'a> RecvFds<'a> {
    /// The descriptors present.
    pub fn iter(&self) -> impl Iterator<Item = BorrowedFd<'a>> + '_ {
        self.0.iter().flatten().copied()
    }
}

/// One dedicated link. Implementations never block: sockets are non-blocking and
/// "nothing to read" is `io::ErrorKind::WouldBlock` or `Ok(0)`.
pub trait Link: fmt::Debug + Send {
    /// Sends `datagrams` in order with as few system calls as possible. Returns how many
    /// were sent (TCP: sent or queued); an error only if none was.
    fn send_batch(&mut self, datagrams: &[&[u8]]) -> io::Result<usize>;

    /// Receives what is pending into `batch` (emptied first). Returns the number of valid
    /// datagrams now in `batch`; bad ones were counted and dropped.
    fn recv_batch(&mut self, batch: &mut RecvBatch) -> io::Result<usize>;

    /// The descriptors to poll for input.
    fn recv_fds(&self) -> RecvFds<'_>;

    /// A descriptor to poll for writability while output is pending (TCP only).
    fn send_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// Periodic work: TCP reconnects (at most once per second) and error-queue flushing.
    fn tick(&mut self) {}

    /// The configured `Interface`.
    fn interface(&self) -> &str;

    /// The transport.
    fn transport(&self) -> Transport;

    /// The interface MTU read at open time (1500 if it could not be read).
    fn mtu(&self) -> usize;

    /// The datagram buffer size the C daemon uses on this link: MTU − 28 (UDP, multicast)
    /// or MTU − 40 (TCP); a datagram carries at most one byte less (wire-protocol.md §9).
    fn buffer_size(&self) -> usize {
        let t = match self.transport() {
            Transport::Tcp => crate::wire::Transport::Tcp,
            Transport::Multicast => crate::wire::Transport::Multicast,
            _ => crate::wire::Transport::Udp,
        };
        t.buffer_size(self.mtu())
    }

    /// The counters.
    fn stats(&self) -> &LinkStats;

    /// TCP only: `(server side has a peer, client side connected)` for `-s`'s
    /// "server=… client=…" header; `None` for datagram links.
    fn tcp_state(&self) -> Option<(bool, bool)> {
        None
    }
}

/// Opens the sockets of one dedicated link from its config block, in the calling thread's
/// network namespace. `error_queue_length` only matters for TCP.
pub fn open_link(ch: &config::Channel, error_queue_length: u32) -> io::Result<Box<dyn Link>> {
    Ok(match ch.transport {
        Transport::Multicast => Box::new(mcast::open(ch)?),
        Transport::Udp => Box::new(udp::open(ch)?),
        Transport::Tcp => Box::new(TcpLink::open(ch, error_queue_length)?),
    })
}
