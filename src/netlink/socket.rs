//! Request/response ctnetlink: dumps and batched create/update/delete/flush.
//!
//! A [`CtHandle`] owns one netlink socket that never joins a multicast group, plus its own
//! sequence counter and two reusable buffers, so steady-state operation allocates nothing per
//! entry. The C daemon opens several such handles (dump, resync, get, flush, commit, inject);
//! each has its own port id, which the kernel stamps on the events its requests cause — see
//! [`CtHandle::port_id`].
//!
//! Writes are batched: as many messages as fit in [`CtHandle::set_batch_bytes`] go out in one
//! `sendmsg`, each with its own sequence number but without `NLM_F_ACK`, followed by one
//! `NLMSG_NOOP` that asks for an ACK. The kernel processes the whole datagram synchronously,
//! in order, and answers every failed message with an NLMSG_ERROR even without `NLM_F_ACK`;
//! so once the NOOP's ACK is read, every error of the batch has been read before it, and the
//! others succeeded. We match errors back to entries by sequence number to build a
//! [`BatchReport`]. One ACK per message (as the C daemon asks) costs the kernel an skb per
//! entry; this costs one per batch. Should answers be lost (ENOBUFS), nothing of that
//! batch is known and every entry without an error is reported as failed with ENOBUFS
//! rather than guessed.

use std::io;
use std::time::Duration;

use tracing::debug;

use super::attr::nlas;
use super::consts::{
    CTA_TUPLE_ORIG, CTA_ZONE, IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_GET, IPCTNL_MSG_CT_NEW,
    IPCTNL_MSG_EXP_DELETE, IPCTNL_MSG_EXP_GET, IPCTNL_MSG_EXP_NEW, NFNL_SUBSYS_CTNETLINK,
    NFNL_SUBSYS_CTNETLINK_EXP, NLA_F_NESTED, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_EXCL, NLM_F_REQUEST, NLMSG_NOOP,
};
use super::msg::{MsgBuilder, NFGENMSG_LEN, NlMsg, Payload, messages, push_header_only};
use crate::sys::netlink::{NETLINK_NETFILTER, NetlinkSocket, RECV_MANY_MAX, RecvMeta};

/// Default upper bound of one batch datagram.
pub const DEFAULT_BATCH_BYTES: usize = 64 * 1024;
/// Receive buffer requested for request sockets: room for the ACKs of a full batch (each ACK
/// is its own skb, accounted at roughly 1 KiB of truesize).
const REQUEST_RCVBUF: usize = 8 << 20;
/// Receive buffer: the kernel sizes dump datagrams after our buffer, up to ~32 KiB.
const RX_BUF: usize = 128 * 1024;
/// Slot per ACK datagram in [`CtHandle::collect_acks`]: an ACK is 36 bytes with
/// NETLINK_CAP_ACK; an error for a request without CAP_ACK would echo the request, so leave
/// room for a typical one.
const ACK_SLOT: usize = 1024;
/// Upper bound on messages per batch, so that the ACKs always fit the receive buffer.
const MAX_BATCH_MSGS: usize = 2048;
/// Receive-buffer cost of one queued ACK: each is its own skb, measured at ~840 bytes of
/// truesize on Linux 6.18; rounded up for safety.
const ACK_TRUESIZE: usize = 1024;

mod error;
mod typed;

use error::io_err;
pub use error::{KernelError, NlError, errno_name, errno_of};
pub use typed::DumpFilter;

/// Outcome of a batched write: how many entries the kernel acknowledged and which failed.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Entries acknowledged with errno 0.
    pub ok: usize,
    /// `(index into the input slice, error)`, in input order. Errors wrap [`KernelError`].
    pub errors: Vec<(usize, io::Error)>,
}

impl BatchReport {
    /// True when every entry succeeded.
    pub fn all_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Counters of one dump.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DumpStats {
    /// Entries handed to the callback.
    pub entries: usize,
    /// Messages that could not be decoded (skipped, logged at debug).
    pub bad: usize,
}

/// Header of one request message; [`Req::start`] opens the message for the caller's
/// attributes.
#[derive(Debug)]
pub struct Req<'b> {
    buf: &'b mut Vec<u8>,
    kind: ReqKind,
    seq: u32,
}

impl<'b> Req<'b> {
    /// Starts the message with nfgen_family `family`; add attributes, then `finish()` it.
    pub fn start(self, family: u8) -> MsgBuilder<'b> {
        let k = self.kind;
        MsgBuilder::new(self.buf, k.subsys, k.op, k.flags, self.seq, family)
    }
}

/// Subsystem, operation and flags of a batched request (ctnetlink-notes §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReqKind {
    /// NFNL_SUBSYS_*.
    pub subsys: u8,
    /// IPCTNL_MSG_*.
    pub op: u8,
    /// NLM_F_* (NLM_F_REQUEST | NLM_F_ACK always included).
    pub flags: u16,
    /// For error messages.
    pub name: &'static str,
}

impl ReqKind {
    /// CT_NEW with CREATE | EXCL: fails with EEXIST if the entry exists.
    pub const CT_CREATE: Self = Self::new(
        NFNL_SUBSYS_CTNETLINK,
        IPCTNL_MSG_CT_NEW,
        NLM_F_CREATE | NLM_F_EXCL,
        "create conntrack",
    );
    /// CT_NEW without CREATE: fails with ENOENT if the entry does not exist.
    pub const CT_UPDATE: Self = Self::new(
        NFNL_SUBSYS_CTNETLINK,
        IPCTNL_MSG_CT_NEW,
        0,
        "update conntrack",
    );
    /// CT_DELETE by tuple (or, without attributes, flush).
    pub const CT_DELETE: Self = Self::new(
        NFNL_SUBSYS_CTNETLINK,
        IPCTNL_MSG_CT_DELETE,
        0,
        "delete conntrack",
    );
    /// EXP_NEW with CREATE | EXCL.
    pub const EXP_CREATE: Self = Self::new(
        NFNL_SUBSYS_CTNETLINK_EXP,
        IPCTNL_MSG_EXP_NEW,
        NLM_F_CREATE | NLM_F_EXCL,
        "create expectation",
    );
    /// EXP_NEW without CREATE: the kernel only changes the timeout; ENOENT if missing.
    pub const EXP_UPDATE: Self = Self::new(
        NFNL_SUBSYS_CTNETLINK_EXP,
        IPCTNL_MSG_EXP_NEW,
        0,
        "update expectation",
    );
    /// EXP_DELETE by tuple (or, without attributes, flush).
    pub const EXP_DELETE: Self = Self::new(
        NFNL_SUBSYS_CTNETLINK_EXP,
        IPCTNL_MSG_EXP_DELETE,
        0,
        "delete expectation",
    );

    const fn new(subsys: u8, op: u8, flags: u16, name: &'static str) -> Self {
        Self {
            subsys,
            op,
            flags: flags | NLM_F_REQUEST | NLM_F_ACK,
            name,
        }
    }
}

/// One request socket with its sequence numbers and buffers.
#[derive(Debug)]
pub struct CtHandle {
    sock: NetlinkSocket,
    port: u32,
    seq: u32,
    tx: Vec<u8>,
    rx: Vec<u8>,
    timeout: Duration,
    batch_bytes: usize,
    /// Messages per batch whose ACKs fit the receive buffer we actually got.
    max_msgs: usize,
    /// Per-batch "has its ACK" flags, kept to avoid an allocation per batch.
    answered: Vec<bool>,
}

impl CtHandle {
    /// Opens and binds a NETLINK_NETFILTER socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, NlError> {
        const OP: &str = "open request socket";
        let sock = NetlinkSocket::open(NETLINK_NETFILTER).map_err(io_err(OP))?;
        sock.bind(0).map_err(io_err(OP))?;
        // Non-blocking, so that every wait goes through poll with the handle's timeout.
        sock.set_nonblocking(true).map_err(io_err(OP))?;
        // Errors then echo only the failing header, not the whole request.
        sock.set_cap_ack(true).map_err(io_err(OP))?;
        if let Err(e) = sock.set_recv_buffer_force(REQUEST_RCVBUF / 2) {
            debug!(error = %e, "request socket keeps the default receive buffer");
        }
        let port = sock.local_port().map_err(io_err(OP))?;
        // Without CAP_NET_ADMIN the buffer stays at rmem_default (~208 KiB): fewer ACKs fit.
        let rcvbuf = sock.recv_buffer_size().map_err(io_err(OP))?;
        let max_msgs = (rcvbuf / ACK_TRUESIZE).clamp(1, MAX_BATCH_MSGS);
        Ok(Self {
            sock,
            port,
            // Start away from 0, which events and unsolicited messages carry.
            seq: 1,
            tx: Vec::with_capacity(DEFAULT_BATCH_BYTES + 4096),
            rx: vec![0; RX_BUF],
            timeout: Duration::from_secs(30),
            batch_bytes: DEFAULT_BATCH_BYTES,
            max_msgs,
            answered: Vec::with_capacity(max_msgs),
        })
    }

    /// The port id the kernel stamps on events caused by this handle's requests.
    pub fn port_id(&self) -> u32 {
        self.port
    }

    /// The underlying socket (for options the handle does not set).
    pub fn socket(&self) -> &NetlinkSocket {
        &self.sock
    }

    /// How long to wait for any answer from the kernel (default 30 s).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Upper bound of one batch datagram (default [`DEFAULT_BATCH_BYTES`]); at least one
    /// message is always sent.
    pub fn set_batch_bytes(&mut self, bytes: usize) {
        self.batch_bytes = bytes;
    }

    fn next_seq(&mut self, n: usize) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(n as u32).max(1);
        s
    }

    /// Receives one datagram into `self.rx` (honouring the timeout) and returns its length.
    fn recv(&mut self, op: &'static str) -> Result<usize, NlError> {
        loop {
            if !self
                .sock
                .poll_readable(Some(self.timeout))
                .map_err(io_err(op))?
            {
                return Err(NlError::Timeout { op });
            }
            match self.sock.recv(&mut self.rx) {
                // Readable, but only for a datagram `recv` dropped (not from the kernel).
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return r.map_err(io_err(op)),
            }
        }
    }

    /// Sends a dump request (`GET` with NLM_F_DUMP) and hands every reply message of our
    /// sequence to `f` until NLMSG_DONE. `attrs` adds request attributes (kernel-side
    /// filters). Returns the number of messages delivered.
    pub fn dump_raw(
        &mut self,
        kind: (u8, u8),
        family: u8,
        op: &'static str,
        attrs: impl FnOnce(&mut MsgBuilder<'_>),
        mut f: impl FnMut(NlMsg<&[u8]>),
    ) -> Result<usize, NlError> {
        let seq = self.next_seq(1);
        self.tx.clear();
        let mut b = MsgBuilder::new(
            &mut self.tx,
            kind.0,
            kind.1,
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            family,
        );
        attrs(&mut b);
        b.finish();
        self.sock.send(&self.tx).map_err(io_err(op))?;
        let (mut seen, mut interrupted) = (0usize, false);
        // A malformed datagram is reported only at NLMSG_DONE: returning earlier would leave
        // the dump running in the kernel, and the next one on this socket would get EBUSY.
        let mut bad = None;
        loop {
            let n = self.recv(op)?;
            for m in messages(&self.rx[..n]) {
                let m = match m {
                    Ok(m) => m,
                    Err(source) => {
                        bad = Some(NlError::Codec { op, source });
                        break;
                    }
                };
                if m.seq() != seq {
                    continue;
                }
                interrupted |= m.flags() & NLM_F_DUMP_INTR != 0;
                match m.classify() {
                    Ok(Payload::Done) => {
                        // NLMSG_DONE carries the dump's final status as an int.
                        let st = m
                            .payload()
                            .get(..4)
                            .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                        if st == -libc::EINTR || interrupted {
                            return Err(NlError::DumpInterrupted { op, seen });
                        }
                        if st < 0 {
                            return Err(NlError::Kernel(KernelError { op, errno: -st }));
                        }
                        return bad.map_or(Ok(seen), Err);
                    }
                    Ok(Payload::Error { errno: 0, .. }) => {}
                    // Some kernels abort a dump whose table changed with EINTR.
                    Ok(Payload::Error { errno, .. }) if errno == libc::EINTR => {
                        return Err(NlError::DumpInterrupted { op, seen });
                    }
                    Ok(Payload::Error { errno, .. }) => {
                        return Err(NlError::Kernel(KernelError { op, errno }));
                    }
                    _ => {
                        seen += 1;
                        f(m);
                    }
                }
            }
        }
    }

    /// Writes `items` in batches, one message per item built by `emit`, and collects every
    /// per-message ACK. A failed entry does not stop the others.
    pub fn batch_raw<T>(
        &mut self,
        kind: ReqKind,
        items: &[T],
        mut emit: impl FnMut(&T, Req<'_>),
    ) -> Result<BatchReport, NlError> {
        let mut report = BatchReport::default();
        let mut start = 0;
        while start < items.len() {
            self.tx.clear();
            let base = self.seq;
            let mut end = start;
            while end < items.len()
                && end - start < self.max_msgs
                && (end == start || self.tx.len() < self.batch_bytes)
            {
                let before = self.tx.len();
                let req = Req {
                    buf: &mut self.tx,
                    kind: ReqKind {
                        flags: kind.flags & !NLM_F_ACK,
                        ..kind
                    },
                    seq: base.wrapping_add((end - start) as u32),
                };
                emit(&items[end], req);
                if self.tx.len() == before {
                    // Its ACK would never come: fail now rather than time out.
                    let source = io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("no message built for entry {end}"),
                    );
                    return Err(NlError::Io {
                        op: kind.name,
                        source,
                    });
                }
                end += 1;
            }
            // The barrier: its ACK comes after every error of the batch.
            let barrier = base.wrapping_add((end - start) as u32);
            push_header_only(&mut self.tx, NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, barrier);
            self.next_seq(end - start + 1);
            self.sock.send(&self.tx).map_err(io_err(kind.name))?;
            self.collect_acks(kind.name, base, start, end - start, &mut report)?;
            start = end;
        }
        report.errors.sort_by_key(|(i, _)| *i);
        Ok(report)
    }

    /// Reads the answers to the `n` messages sent with sequence numbers `base..` (errors
    /// only) up to the ACK of the barrier `base + n`; entries are numbered from `first`.
    fn collect_acks(
        &mut self,
        op: &'static str,
        base: u32,
        first: usize,
        n: usize,
        report: &mut BatchReport,
    ) -> Result<(), NlError> {
        let mut failed = std::mem::take(&mut self.answered);
        failed.clear();
        failed.resize(n, false);
        let barrier = base.wrapping_add(n as u32);
        let mut done = false;
        let mut overrun = false;
        let mut meta = [RecvMeta::default(); RECV_MANY_MAX];
        while !done {
            // Block (with the timeout) for the answers; after an overrun only drain what
            // the kernel did queue, then give up on the rest.
            let wait = if overrun {
                Duration::ZERO
            } else {
                self.timeout
            };
            if !self.sock.poll_readable(Some(wait)).map_err(io_err(op))? {
                if overrun {
                    break;
                }
                return Err(NlError::Timeout { op });
            }
            // Answers are one small datagram each: take up to 64 per system call.
            let got = match self.sock.recv_many(&mut self.rx, ACK_SLOT, &mut meta) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    debug!("batch answers lost to ENOBUFS");
                    overrun = true;
                    continue;
                }
                Err(source) => return Err(NlError::Io { op, source }),
            };
            for (k, md) in meta[..got].iter().enumerate() {
                // A truncated datagram is no answer of ours (those are 36 bytes): stale.
                if !md.from_kernel || md.truncated {
                    continue;
                }
                let dgram = &self.rx[k * ACK_SLOT..k * ACK_SLOT + md.len];
                for m in messages(dgram) {
                    let m = m.map_err(|source| NlError::Codec { op, source })?;
                    let Ok(Payload::Error {
                        errno,
                        original_seq,
                    }) = m.classify()
                    else {
                        continue;
                    };
                    if original_seq == barrier {
                        done = true;
                        continue;
                    }
                    let i = original_seq.wrapping_sub(base) as usize;
                    if i >= n || errno == 0 || failed[i] {
                        continue; // a stale answer from an earlier, abandoned request
                    }
                    failed[i] = true;
                    report
                        .errors
                        .push((first + i, KernelError { op, errno }.into()));
                }
            }
        }
        let errors = failed.iter().filter(|f| **f).count();
        if done {
            report.ok += n - errors;
        } else {
            // Answers were dropped: we cannot know whether the others were applied.
            for (i, _) in failed.iter().enumerate().filter(|(_, f)| !**f) {
                let err = KernelError {
                    op,
                    errno: libc::ENOBUFS,
                };
                report.errors.push((first + i, err.into()));
            }
        }
        self.answered = failed;
        Ok(())
    }

    /// Deletes every conntrack of `family` (AF_UNSPEC = all).
    ///
    /// AF_UNSPEC is one request. The kernel ignores nfgen_family in flush requests (so that
    /// `conntrack -F`, which sends AF_INET, flushes everything), so a single family is
    /// flushed as a family-filtered dump followed by batched deletes of those tuples; an
    /// entry that vanished in between (ENOENT) is not an error.
    pub fn flush_conntracks(&mut self, family: u8) -> Result<(), NlError> {
        const OP: &str = "flush conntracks";
        let kind = ReqKind {
            name: OP,
            ..ReqKind::CT_DELETE
        };
        if family == 0 {
            let r = self.batch_raw(kind, &[0u8], |&fam, req| {
                req.start(fam).finish();
            })?;
            return Self::single(OP, r);
        }
        // Raw CTA_TUPLE_ORIG payloads back to back, and (span, zone) per entry.
        let mut keys = Vec::new();
        let mut spans: Vec<(std::ops::Range<usize>, Option<u16>)> = Vec::new();
        self.dump_raw(
            CT_GET,
            family,
            OP,
            |_| {},
            |m| {
                let attrs = m.payload().get(NFGENMSG_LEN..).unwrap_or(&[]);
                let (mut orig, mut zone) = (None, None);
                for a in nlas(attrs).flatten() {
                    match a.ty {
                        CTA_TUPLE_ORIG => orig = Some(a.value),
                        CTA_ZONE => zone = a.u16_be().ok(),
                        _ => {}
                    }
                }
                if let Some(v) = orig {
                    keys.extend_from_slice(v);
                    spans.push((keys.len() - v.len()..keys.len(), zone));
                }
            },
        )?;
        let r = self.batch_raw(kind, &spans, |(span, zone), req| {
            let mut b = req.start(family);
            b.put_bytes(CTA_TUPLE_ORIG | NLA_F_NESTED, &keys[span.clone()]);
            if let Some(z) = zone {
                b.put_u16_be(CTA_ZONE, *z);
            }
            b.finish();
        })?;
        match r
            .errors
            .into_iter()
            .find(|(_, e)| errno_of(e) != Some(libc::ENOENT))
        {
            None => Ok(()),
            Some((_, e)) => Err(NlError::Io { op: OP, source: e }),
        }
    }

    /// Deletes every expectation in one request.
    pub fn flush_expectations(&mut self) -> Result<(), NlError> {
        const OP: &str = "flush expectations";
        let kind = ReqKind {
            name: OP,
            ..ReqKind::EXP_DELETE
        };
        let r = self.batch_raw(kind, &[0u8], |&fam, req| {
            req.start(fam).finish();
        })?;
        Self::single(OP, r)
    }

    /// The outcome of a one-message batch as a plain result.
    fn single(op: &'static str, mut r: BatchReport) -> Result<(), NlError> {
        match r.errors.pop() {
            None => Ok(()),
            Some((_, e)) => Err(NlError::Io { op, source: e }),
        }
    }
}

/// ctnetlink GET operations for [`CtHandle::dump_raw`].
pub const CT_GET: (u8, u8) = (NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET);
/// Expectation GET for [`CtHandle::dump_raw`].
pub const EXP_GET: (u8, u8) = (NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_GET);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_reqkind_flags() {
        assert_eq!(
            ReqKind::CT_CREATE.flags,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        );
        assert_eq!(ReqKind::CT_UPDATE.flags, NLM_F_REQUEST | NLM_F_ACK);
    }

    /// A scratch namespace for requests that must not touch the host's table.
    struct ScratchNs(String);

    impl ScratchNs {
        fn new(tag: &str) -> Self {
            let name = format!("ctd-u{}-{tag}", std::process::id());
            let run = |args: &[&str]| std::process::Command::new("ip").args(args).output();
            let _ = run(&["netns", "del", &name]);
            let out = run(&["netns", "add", &name]).expect("ip netns add (needs root)");
            assert!(out.status.success(), "ip netns add: {out:?}");
            Self(name)
        }

        fn path(&self) -> std::path::PathBuf {
            std::path::Path::new("/run/netns").join(&self.0)
        }
    }

    impl Drop for ScratchNs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .output();
        }
    }

    #[test]
    fn test_sequence_wrap_keeps_indices() {
        let ns = ScratchNs::new("seqwrap");
        let mut h = crate::sys::netns::run_in(&ns.path(), CtHandle::open)
            .unwrap()
            .unwrap();
        // Five deletes of absent entries straddling the u32 wrap: each ENOENT must land on
        // its own index.
        h.seq = u32::MAX - 1;
        let r = h
            .batch_raw(ReqKind::CT_DELETE, &[1u8, 2, 3, 4, 5], |&i, req| {
                let mut b = req.start(2);
                let t = b.nest_start(CTA_TUPLE_ORIG);
                let ip = b.nest_start(1);
                b.put_bytes(1, &[10, 0, 0, i]);
                b.put_bytes(2, &[10, 0, 0, 99]);
                b.nest_end(ip);
                let p = b.nest_start(2);
                b.put_u8(1, 17);
                b.put_u16_be(2, 1000);
                b.put_u16_be(3, 53);
                b.nest_end(p);
                b.nest_end(t);
                b.finish();
            })
            .unwrap();
        let idx: Vec<usize> = r.errors.iter().map(|(i, _)| *i).collect();
        assert_eq!((r.ok, idx), (0, vec![0, 1, 2, 3, 4]));
        assert!(
            r.errors
                .iter()
                .all(|(_, e)| errno_of(e) == Some(libc::ENOENT))
        );
        assert_eq!(h.seq, 4); // MAX-1, MAX, 0, 1, 2 used, and 3 by the barrier
        // A builder that writes nothing is refused instead of waiting for an ACK.
        let e = h
            .batch_raw(ReqKind::CT_DELETE, &[0u8], |_, _| {})
            .unwrap_err();
        assert!(e.to_string().contains("no message built"), "{e}");
    }
}
