//! The no-ACK batched ctnetlink writer.
//!
//! `CtHandle` (the daemon's request socket) always sets NLM_F_ACK and waits for one answer per
//! message, which is right for a daemon that must know each outcome but doubles the kernel's
//! work per entry and makes the sender wait. A load generator wants the other trade: requests
//! go out without NLM_F_ACK, hundreds per `sendmsg`, and the kernel — which processes a
//! datagram synchronously inside `sendmsg` — queues an NLMSG_ERROR only for a message that
//! failed. After every send we drain those non-blockingly and count them by errno.

use std::io;

use anyhow::{Context, Result};
use conntrackd::netlink::msg::{Payload, messages};
use conntrackd::sys::netlink::{NETLINK_NETFILTER, NetlinkSocket, RECV_MANY_MAX, RecvMeta};

use crate::flows::{Flow, Op, Proto};

/// Default datagram size: ~450 IPv4 creates. Netlink refuses a datagram larger than the
/// socket's send buffer (EMSGSIZE), 208 KiB by default, so stay well under.
pub const DEFAULT_BATCH_BYTES: usize = 64 * 1024;
/// Receive buffer for error replies. Each error is its own skb (~1 KiB of truesize); at most
/// one datagram's worth is queued before we drain, so 8 MiB never overflows.
const ERR_RCVBUF: usize = 8 << 20;
/// Slot per error datagram: with NETLINK_CAP_ACK an error is 36 bytes (header + errno + the
/// failing request's header).
const ERR_SLOT: usize = 512;

/// Sends refused with ENOBUFS/EAGAIN are retried this many times, 100 µs apart (~1 s).
const SEND_RETRIES: u32 = 10_000;

/// Failed requests, by errno.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCounts {
    /// EEXIST: create of an entry that exists.
    pub eexist: u64,
    /// ENOENT: update/delete of an entry that does not exist.
    pub enoent: u64,
    /// ENOMEM: the table is full (`nf_conntrack_max` reached) or memory ran out.
    pub enomem: u64,
    /// Any other errno (EINVAL would mean a malformed request: a bug in ctgen).
    pub other: u64,
    /// The last "other" errno seen, to name it in the report.
    pub last_other: i32,
    /// Error replies lost to ENOBUFS on our own socket: failures we could not count.
    pub lost: u64,
}

impl ErrorCounts {
    /// Every counted failure (lost replies included, as at least one each).
    pub fn total(&self) -> u64 {
        self.eexist + self.enoent + self.enomem + self.other + self.lost
    }

    fn count(&mut self, errno: i32) {
        match errno {
            libc::EEXIST => self.eexist += 1,
            libc::ENOENT => self.enoent += 1,
            libc::ENOMEM => self.enomem += 1,
            e => {
                self.other += 1;
                self.last_other = e;
            }
        }
    }
}

/// A request socket without ACKs, a reusable transmit buffer and the error counters.
#[derive(Debug)]
pub struct Writer {
    sock: NetlinkSocket,
    tx: Vec<u8>,
    rx: Vec<u8>,
    seq: u32,
    batch_bytes: usize,
    /// Messages waiting in `tx`.
    pending: usize,
    /// Failed requests so far.
    pub errors: ErrorCounts,
    /// Datagrams sent.
    pub datagrams: u64,
    /// Messages sent.
    pub messages: u64,
}

impl Writer {
    /// Opens the socket in the calling thread's network namespace (use
    /// `conntrackd::sys::netns::run_in` to pick another); it may then be used from any thread.
    pub fn open(batch_bytes: usize) -> Result<Self> {
        let sock = NetlinkSocket::open(NETLINK_NETFILTER).context("netlink socket")?;
        sock.bind(0).context("bind netlink socket")?;
        sock.set_nonblocking(true)?;
        // Errors then echo only the failing header: 36 bytes instead of the whole request.
        sock.set_cap_ack(true)?;
        sock.set_recv_buffer_force(ERR_RCVBUF / 2)?;
        Ok(Self {
            sock,
            tx: Vec::with_capacity(batch_bytes + 4096),
            rx: vec![0; ERR_SLOT * RECV_MANY_MAX],
            seq: 1,
            batch_bytes: batch_bytes.max(1),
            pending: 0,
            errors: ErrorCounts::default(),
            datagrams: 0,
            messages: 0,
        })
    }

    /// Queues the request `op` for flow `i` of `proto`, sending the batch once it is full.
    pub fn push(&mut self, proto: Proto, i: u64, op: Op, timeout: u32) -> Result<()> {
        let f = Flow::of(proto, i);
        f.emit(&mut self.tx, op, self.seq, timeout);
        self.seq = self.seq.wrapping_add(1);
        self.pending += 1;
        if self.tx.len() >= self.batch_bytes {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends what is queued (one datagram) and counts the errors it caused.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        let mut retries = 0u32;
        loop {
            match self.sock.send(&self.tx) {
                Ok(_) => break,
                // The kernel could not allocate the datagram or our error queue is full:
                // drain and retry instead of losing the batch, for a while.
                Err(e)
                    if (e.raw_os_error() == Some(libc::ENOBUFS)
                        || e.kind() == io::ErrorKind::WouldBlock)
                        && retries < SEND_RETRIES =>
                {
                    retries += 1;
                    self.drain_errors()?;
                    std::thread::sleep(std::time::Duration::from_micros(100));
                }
                Err(e) => return Err(e).context("send ctnetlink batch"),
            }
        }
        self.datagrams += 1;
        self.messages += self.pending as u64;
        self.pending = 0;
        self.tx.clear();
        self.drain_errors()
    }

    /// Reads every queued error reply without blocking and counts it.
    pub fn drain_errors(&mut self) -> Result<()> {
        let mut meta = [RecvMeta::default(); RECV_MANY_MAX];
        loop {
            let got = match self.sock.recv_many(&mut self.rx, ERR_SLOT, &mut meta) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // Replies were dropped: at least one failure went uncounted.
                    self.errors.lost += 1;
                    continue;
                }
                Err(e) => return Err(e).context("read ctnetlink errors"),
            };
            for (k, md) in meta[..got].iter().enumerate() {
                if !md.from_kernel {
                    continue;
                }
                let dgram = &self.rx[k * ERR_SLOT..k * ERR_SLOT + md.len];
                for m in messages(dgram).flatten() {
                    if let Ok(Payload::Error { errno, .. }) = m.classify()
                        && errno != 0
                    {
                        self.errors.count(errno);
                    }
                }
            }
        }
    }
}
