//! Batched datagram I/O: the reusable receive buffer ([`RecvBatch`]), the send loop over
//! `sendmmsg`, and the framing check every received datagram goes through.
//!
//! The system calls and their stack `mmsghdr` arrays live in `sys::socket` (the only place
//! allowed `unsafe`); this file owns the memory the kernel writes into and decides what
//! counts as a bad datagram. Nothing here allocates per batch: a [`RecvBatch`] is allocated
//! once and reused for every call.

use std::io;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;

use crate::sys::socket::{self, RecvMeta};
use crate::wire::{Error as WireError, Messages};

pub use crate::sys::socket::BATCH_SIZE;

/// The default slot size: the largest UDP payload over IPv4, so no datagram a peer can
/// send is ever truncated (a truncated datagram would lose messages).
pub const MAX_DATAGRAM: usize = 65_507;

/// One received datagram (or, on TCP, a run of whole messages read from the stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    /// The bytes: one or more complete sync messages.
    pub bytes: &'a [u8],
    /// The sender (UDP/multicast), or the connected peer (TCP).
    pub from: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    slot: usize,
    len: usize,
    from: Option<SocketAddr>,
}

const NO_ENTRY: Entry = Entry {
    slot: 0,
    len: 0,
    from: None,
};

/// Caller-owned, reusable buffers for one `recvmmsg` call: [`BATCH_SIZE`] slots of
/// `slot_len` bytes, plus the length and source of each datagram that arrived.
#[derive(Debug)]
pub struct RecvBatch {
    buf: Box<[u8]>,
    slot_len: usize,
    entries: [Entry; BATCH_SIZE],
    len: usize,
    // Scratch for the kernel's per-datagram results, kept here to stay off the stack twice.
    meta: [RecvMeta; BATCH_SIZE],
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new(MAX_DATAGRAM)
    }
}

impl RecvBatch {
    /// Allocates `BATCH_SIZE × slot_len` bytes once. A datagram longer than `slot_len` is
    /// truncated by the kernel and then dropped as bad, so pick at least the link's
    /// buffer size (MTU − 28) or [`MAX_DATAGRAM`].
    pub fn new(slot_len: usize) -> Self {
        let slot_len = slot_len.max(64);
        Self {
            buf: vec![0; slot_len * BATCH_SIZE].into_boxed_slice(),
            slot_len,
            entries: [NO_ENTRY; BATCH_SIZE],
            len: 0,
            meta: [RecvMeta::EMPTY; BATCH_SIZE],
        }
    }

    /// The number of datagrams held since the last receive.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the last receive produced nothing valid.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Datagram `i` of the last receive.
    pub fn get(&self, i: usize) -> Option<Received<'_>> {
        let e = self.entries[..self.len].get(i)?;
        let start = e.slot * self.slot_len;
        Some(Received {
            bytes: &self.buf[start..start + e.len],
            from: e.from,
        })
    }

    /// The datagrams of the last receive, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = Received<'_>> + '_ {
        (0..self.len).filter_map(|i| self.get(i))
    }

    /// The slot size.
    pub fn slot_len(&self) -> usize {
        self.slot_len
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Free slots left.
    pub(crate) fn remaining(&self) -> usize {
        BATCH_SIZE - self.len
    }

    /// Appends a copy of `bytes` (at most `slot_len`) as the next datagram; false if full.
    pub(crate) fn push(&mut self, bytes: &[u8], from: Option<SocketAddr>) -> bool {
        if self.len == BATCH_SIZE || bytes.len() > self.slot_len {
            return false;
        }
        let slot = self.len;
        let start = slot * self.slot_len;
        self.buf[start..start + bytes.len()].copy_from_slice(bytes);
        self.entries[slot] = Entry {
            slot,
            len: bytes.len(),
            from,
        };
        self.len += 1;
        true
    }

    /// One `recvmmsg` into the empty batch, then the framing check: each datagram is cut to
    /// its well-framed prefix; datagrams with a framing error are counted in `bad`, those
    /// with nothing valid left are removed. Returns (datagrams, bytes) as received.
    pub(crate) fn recv_from(
        &mut self,
        fd: BorrowedFd<'_>,
        bad: &mut u64,
    ) -> io::Result<(usize, usize)> {
        self.len = 0;
        let got = socket::recvmmsg(fd, &mut self.buf, self.slot_len, &mut self.meta)?;
        let mut bytes = 0;
        for slot in 0..got {
            let m = self.meta[slot];
            bytes += m.len;
            let start = slot * self.slot_len;
            let (good, err) = if m.truncated {
                (0, true)
            } else {
                check_datagram(&self.buf[start..start + m.len])
            };
            if err {
                *bad += 1;
            }
            if good > 0 {
                self.entries[self.len] = Entry {
                    slot,
                    len: good,
                    from: m.addr,
                };
                self.len += 1;
            }
        }
        Ok((got, bytes))
    }
}

/// The framing check of one datagram, as the C receiver walks it (wire-protocol.md §4):
/// returns the length of the well-framed prefix and whether a framing error cut it short.
///
/// Messages with a wrong version are kept in the prefix (the C receiver skips and counts
/// them, which is the sync layer's business); a truncated or corrupt length ends the walk
/// and everything from there on is dropped, as in C.
pub fn check_datagram(datagram: &[u8]) -> (usize, bool) {
    let mut it = Messages::new(datagram);
    let mut good = 0;
    while let Some(r) = it.next() {
        match r {
            Ok(_) | Err(WireError::BadVersion(_)) => good = it.offset(),
            Err(_) => return (good, true),
        }
    }
    (good, false)
}

/// How a TCP stream buffer splits into whole messages (wire-protocol.md §1, §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamSplit {
    /// The first `.0` bytes are whole messages; the rest is the start of the next one.
    Complete(usize),
    /// The first `.0` bytes are whole messages; then comes a corrupt length. The stream has
    /// lost its framing; the caller drops the rest.
    Corrupt(usize),
}

/// Splits buffered TCP stream bytes into whole messages.
pub fn split_stream(buf: &[u8]) -> StreamSplit {
    let mut it = Messages::new(buf);
    let mut good = 0;
    while let Some(r) = it.next() {
        match r {
            Ok(_) | Err(WireError::BadVersion(_)) => good = it.offset(),
            Err(WireError::Truncated(_)) => return StreamSplit::Complete(good),
            Err(_) => return StreamSplit::Corrupt(good),
        }
    }
    StreamSplit::Complete(good)
}

/// The largest prefix of `msgs` (whole messages) that fits in `max` bytes; at least one
/// message (which may be longer than `max`, and is then returned alone).
pub(crate) fn message_run(msgs: &[u8], max: usize) -> usize {
    let mut it = Messages::new(msgs);
    let mut end = 0;
    while it.next().is_some() {
        let off = it.offset();
        if off > max && end > 0 {
            break;
        }
        end = off;
    }
    end
}

/// Sends every datagram of `datagrams` to `dest` with as few `sendmmsg` calls as possible.
/// Stops at the first error: returns the number sent before it, or the error if none was.
pub(crate) fn send_all(
    fd: BorrowedFd<'_>,
    dest: Option<&SocketAddr>,
    datagrams: &[&[u8]],
) -> io::Result<usize> {
    let mut sent = 0;
    while sent < datagrams.len() {
        match socket::sendmmsg(fd, dest, &datagrams[sent..]) {
            Ok(0) => break,
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    static TWO: [u8; 24] = [
        0x1a, 0x10, 0x00, 0x08, 0x6b, 0x06, 0xca, 0x11, // ALIVE, len 8
        0x1a, 0x04, 0x00, 0x10, 0x6b, 0x06, 0xc9, 0xfd, // NACK, len 16
        0x6b, 0x06, 0xca, 0x12, 0x6b, 0x06, 0xca, 0x12, // from, to
    ];

    #[test]
    fn test_check_datagram() {
        assert_eq!(check_datagram(&TWO), (24, false));
        assert_eq!(check_datagram(&TWO[..20]), (8, true));
        assert_eq!(check_datagram(&[]), (0, false));
        let mut b = TWO;
        b[3] = 0; // first len 0: nothing valid
        assert_eq!(check_datagram(&b), (0, true));
        let mut b = TWO;
        b[0] = 0x2a; // wrong version: kept for the sync layer to count
        assert_eq!(check_datagram(&b), (24, false));
    }

    #[test]
    fn test_split_stream() {
        assert_eq!(split_stream(&TWO), StreamSplit::Complete(24));
        assert_eq!(split_stream(&TWO[..20]), StreamSplit::Complete(8));
        assert_eq!(split_stream(&TWO[..5]), StreamSplit::Complete(0));
        let mut b = TWO;
        b[11] = 4; // NACK len 4 < 16
        assert_eq!(split_stream(&b), StreamSplit::Corrupt(8));
    }

    #[test]
    fn test_message_run() {
        assert_eq!(message_run(&TWO, 24), 24);
        assert_eq!(message_run(&TWO, 23), 8);
        assert_eq!(message_run(&TWO, 4), 8);
        assert_eq!(message_run(&TWO[8..], 4), 16);
    }

    /// recvmmsg on loopback: several datagrams per call, sources reported, a datagram
    /// longer than its slot counted as bad (MSG_TRUNC), a bad one cut to its good prefix.
    #[test]
    fn test_recv_from_loopback() {
        use std::net::{Ipv4Addr, UdpSocket};
        use std::os::fd::AsFd;

        let lo: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
        let rx = socket::socket(lo.ip(), libc::SOCK_DGRAM).unwrap();
        socket::bind(rx.as_fd(), &lo).unwrap();
        let to = socket::local_addr(rx.as_fd()).unwrap();
        let tx = UdpSocket::bind(lo).unwrap();
        let mut long = Vec::new();
        for _ in 0..12 {
            long.extend_from_slice(&TWO[..8]); // 96 bytes of ALIVEs
        }
        tx.send_to(&TWO, to).unwrap();
        tx.send_to(&long, to).unwrap();
        tx.send_to(&TWO[..20], to).unwrap();
        let mut b = RecvBatch::new(64);
        let mut bad = 0;
        let (n, bytes) = b.recv_from(rx.as_fd(), &mut bad).unwrap();
        assert_eq!((n, bytes, bad), (3, 24 + 64 + 20, 2));
        let got: Vec<_> = b.iter().map(|r| r.bytes.len()).collect();
        assert_eq!(got, [24, 8]);
        assert_eq!(b.get(0).unwrap().from, Some(tx.local_addr().unwrap()));
        let e = b.recv_from(rx.as_fd(), &mut bad).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(b.is_empty());
    }

    #[test]
    fn test_push_and_iter() {
        let mut b = RecvBatch::new(64);
        assert!(b.push(&TWO, None));
        assert!(b.push(&TWO[..8], None));
        assert!(!b.push(&[0; 65], None));
        let v: Vec<_> = b.iter().map(|r| r.bytes.len()).collect();
        assert_eq!(v, [24, 8]);
        b.clear();
        assert!(b.is_empty());
    }
}
