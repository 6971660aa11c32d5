//! The ctnetlink event socket: subscription, batched draining, overruns and buffer growth.
//!
//! [`EventSocket`] joins the conntrack (and optionally expectation) multicast groups as the C
//! daemon does (legacy bind bitmask 0x07, or 0x3f with `ExpectationSync`), non-blocking.
//! [`EventSocket::recv_batch`] drains as many datagrams as fit the caller's buffer and hands
//! back [`Event`]s classified from the netlink header alone (kind, family, origin port id),
//! so a reader thread can route them without decoding the attributes; decoding happens later
//! through the codec ([`Event::attrs`]).
//!
//! When the receive queue overflows the kernel drops events and reports ENOBUFS once. Like the
//! C daemon we count it, double the receive buffer while that stays within
//! `NetlinkBufferSizeMaxGrowth` (warning once when it no longer can), and report the overrun
//! in the batch so the caller can schedule a resync. With `NetlinkEventsReliable` the socket
//! instead sets NETLINK_BROADCAST_ERROR + NETLINK_NO_ENOBUFS and never sees ENOBUFS.

use std::fs;
use std::io;
use std::time::Duration;

use tracing::{debug, info, trace, warn};

use super::consts::{
    IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_NEW, IPCTNL_MSG_EXP_DELETE, IPCTNL_MSG_EXP_NEW,
    NFNL_SUBSYS_CTNETLINK, NFNL_SUBSYS_CTNETLINK_EXP, NLM_F_CREATE, NLM_F_EXCL,
};
use super::filter::KernelFilter;
use super::msg::{NFGENMSG_LEN, NLMSG_HDRLEN, NlMsg, messages, nlmsg_align};
use super::socket::NlError;
use crate::sys::netlink::{NETLINK_NETFILTER, NetlinkSocket, RECV_MANY_MAX, RecvMeta};

/// Legacy group bits (`NF_NETLINK_CONNTRACK_*`): NEW | UPDATE | DESTROY.
const CT_GROUPS: u32 = 0x07;
/// EXP_NEW | EXP_UPDATE | EXP_DESTROY.
const EXP_GROUPS: u32 = 0x38;
/// Room per event datagram. The kernel sizes each event skb for the largest message the
/// entry could produce, well under 2 KiB even with helper, labels and counters.
const EVENT_SLOT: usize = 8 * 1024;

/// Which event families to subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventGroups {
    /// Conntrack NEW/UPDATE/DESTROY.
    pub conntrack: bool,
    /// Expectation NEW/UPDATE/DESTROY (`ExpectationSync`).
    pub expectations: bool,
}

/// Receive-buffer and reliability settings (`NetlinkBufferSize`,
/// `NetlinkBufferSizeMaxGrowth`, `NetlinkEventsReliable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventOptions {
    /// Effective receive buffer wanted, in bytes; `None` keeps the system default.
    pub buffer_size: Option<usize>,
    /// Growth on ENOBUFS never takes the buffer above this.
    pub buffer_max_growth: usize,
    /// NETLINK_BROADCAST_ERROR + NETLINK_NO_ENOBUFS.
    pub reliable: bool,
}

/// What an event says happened, from the message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A new conntrack (CT_NEW with CREATE or EXCL).
    CtNew,
    /// A changed conntrack (CT_NEW without CREATE/EXCL).
    CtUpdate,
    /// A destroyed conntrack.
    CtDestroy,
    /// A new expectation.
    ExpNew,
    /// A changed expectation.
    ExpUpdate,
    /// A destroyed expectation.
    ExpDestroy,
}

impl EventKind {
    /// Classifies a ctnetlink message by its type and flags (ctnetlink-notes §3); `None` for
    /// anything that is not a conntrack or expectation event.
    pub fn of(msg_type: u16, flags: u16) -> Option<Self> {
        let [subsys, op] = msg_type.to_be_bytes();
        let new = flags & (NLM_F_CREATE | NLM_F_EXCL) != 0;
        Some(match (subsys, op) {
            (NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW) if new => Self::CtNew,
            (NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW) => Self::CtUpdate,
            (NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE) => Self::CtDestroy,
            (NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_NEW) if new => Self::ExpNew,
            (NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_NEW) => Self::ExpUpdate,
            (NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_DELETE) => Self::ExpDestroy,
            _ => return None,
        })
    }

    /// True for the three expectation kinds.
    pub fn is_expectation(self) -> bool {
        matches!(self, Self::ExpNew | Self::ExpUpdate | Self::ExpDestroy)
    }
}

/// One event: its kind and the raw message, not yet decoded.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// What happened.
    pub kind: EventKind,
    /// The whole netlink message (header, nfgenmsg, attributes).
    pub msg: NlMsg<&'a [u8]>,
}

impl<'a> Event<'a> {
    /// The L3 family (nfgen_family).
    pub fn family(&self) -> u8 {
        self.msg.payload()[0]
    }

    /// The port id of the socket whose request caused the event (0: packet path/timeout).
    pub fn origin(&self) -> u32 {
        self.msg.pid()
    }

    /// The attributes, for `Conntrack::parse` / `Expectation::parse`.
    pub fn attrs(&self) -> &'a [u8] {
        let b: &'a [u8] = self.msg.into_inner();
        &b[NLMSG_HDRLEN + NFGENMSG_LEN..self.msg.len()]
    }
}

/// The message as an event, if it is a well-formed conntrack or expectation event.
fn as_event(msg: NlMsg<&[u8]>) -> Option<Event<'_>> {
    let kind = EventKind::of(msg.msg_type(), msg.flags())?;
    (msg.len() >= NLMSG_HDRLEN + NFGENMSG_LEN).then_some(Event { kind, msg })
}

/// The events of one [`EventSocket::recv_batch`] call, and whether events were lost.
#[derive(Debug)]
pub struct EventBatch<'b> {
    buf: &'b [u8],
    /// ENOBUFS was seen: events were dropped by the kernel; the caller should resync.
    pub overrun: bool,
    /// Events in `buf`.
    pub events: usize,
}

impl<'b> EventBatch<'b> {
    /// The events, in arrival order. Messages that are not events are skipped.
    pub fn iter(&self) -> impl Iterator<Item = Event<'b>> + 'b {
        messages(self.buf).filter_map(|m| as_event(m.ok()?))
    }

    /// No events and no overrun.
    pub fn is_empty(&self) -> bool {
        self.events == 0 && !self.overrun
    }
}

/// Counters of an event socket (`conntrackd -s` "netlink stats").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventStats {
    /// Events received.
    pub events: u64,
    /// ENOBUFS overruns.
    pub overruns: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Datagrams that were not well-formed events.
    pub bad: u64,
    /// Current effective receive buffer size.
    pub buffer_size: usize,
}

/// The subscribed, non-blocking event socket.
#[derive(Debug)]
pub struct EventSocket {
    sock: NetlinkSocket,
    port: u32,
    opts: EventOptions,
    stats: EventStats,
    /// Growth hit the ceiling: warned once, never grow again (as the C daemon).
    growth_stopped: bool,
}

impl EventSocket {
    /// Opens the socket in the calling thread's namespace, sizes its buffer, sets the
    /// reliability options and joins the groups.
    pub fn subscribe(groups: EventGroups, opts: EventOptions) -> Result<Self, NlError> {
        const OP: &str = "subscribe to events";
        let io = |source| NlError::Io { op: OP, source };
        check_events_sysctl();
        let sock = NetlinkSocket::open(NETLINK_NETFILTER).map_err(io)?;
        sock.set_nonblocking(true).map_err(io)?;
        match opts.buffer_size {
            Some(size) if size <= opts.buffer_max_growth => {
                // The kernel doubles what we ask for: request half to get `size`.
                sock.set_recv_buffer_force(size / 2).map_err(io)?;
            }
            _ => debug!("NetlinkBufferSize not set or above NetlinkBufferSizeMaxGrowth"),
        }
        if opts.reliable {
            sock.set_broadcast_error(true).map_err(io)?;
            sock.set_no_enobufs(true).map_err(io)?;
        }
        let mut mask = 0;
        if groups.conntrack {
            mask |= CT_GROUPS;
        }
        if groups.expectations {
            mask |= EXP_GROUPS;
        }
        sock.bind(mask).map_err(io)?;
        let port = sock.local_port().map_err(io)?;
        let buffer_size = sock.recv_buffer_size().map_err(io)?;
        debug!(
            buffer_size,
            groups = mask,
            "netlink event socket subscribed"
        );
        Ok(Self {
            sock,
            port,
            opts,
            stats: EventStats {
                buffer_size,
                ..EventStats::default()
            },
            growth_stopped: false,
        })
    }

    /// This socket's port id.
    pub fn port_id(&self) -> u32 {
        self.port
    }

    /// The underlying socket (e.g. to poll it together with other fds).
    pub fn socket(&self) -> &NetlinkSocket {
        &self.sock
    }

    /// The counters so far.
    pub fn stats(&self) -> EventStats {
        self.stats
    }

    /// Compiles and attaches the kernel-space filter (an empty filter detaches).
    pub fn set_filter(&self, filter: &KernelFilter) -> Result<(), NlError> {
        const OP: &str = "attach event filter";
        if filter.is_empty() {
            // Detaching when nothing is attached returns ENOENT: nothing to undo then.
            return match self.sock.detach_filter() {
                Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
                    Err(NlError::Io { op: OP, source: e })
                }
                _ => Ok(()),
            };
        }
        let prog = filter.compile().map_err(NlError::Filter)?;
        self.sock
            .attach_filter(&prog)
            .map_err(|source| NlError::Io { op: OP, source })?;
        debug!(insns = prog.len(), "kernel-space event filter attached");
        Ok(())
    }

    /// Waits up to `timeout` for events (or an overrun) to be readable.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, NlError> {
        self.sock
            .poll_readable(timeout)
            .map_err(|source| NlError::Io {
                op: "wait for events",
                source,
            })
    }

    /// Drains the socket into `buf` without blocking, until it is empty or `buf` has no room
    /// for another 8 KiB slot (give it at least 64 KiB), and returns the events. Datagrams are
    /// taken up to 64 per `recvmmsg`. An overrun is handled here (counted, buffer grown) and
    /// flagged in the batch; so is, defensively, a datagram larger than its slot.
    pub fn recv_batch<'b>(&mut self, buf: &'b mut [u8]) -> Result<EventBatch<'b>, NlError> {
        let slot = EVENT_SLOT.min(buf.len());
        let mut meta = [RecvMeta::default(); RECV_MANY_MAX];
        let (mut used, mut overrun, mut events) = (0usize, false, 0usize);
        while slot > 0 && buf.len() - used >= slot {
            let k = ((buf.len() - used) / slot).min(RECV_MANY_MAX);
            let got = match self.sock.recv_many(&mut buf[used..], slot, &mut meta[..k]) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    overrun = true;
                    self.on_overrun();
                    // Keep reading: what is queued after the loss is still valid.
                    continue;
                }
                Err(source) => {
                    return Err(NlError::Io {
                        op: "receive events",
                        source,
                    });
                }
            };
            // Datagram i sits at slot i; move each down so that the messages are contiguous
            // (and 4-byte aligned) for the iterator. Destinations never pass their source.
            let base = used;
            for (i, md) in meta[..got].iter().enumerate() {
                if !md.from_kernel {
                    continue;
                }
                if md.truncated {
                    // Never expected (events are far smaller than a slot), but an event cut
                    // short is an event lost: make the caller resync.
                    self.stats.bad += 1;
                    overrun = true;
                    continue;
                }
                let src = base + i * slot;
                buf.copy_within(src..src + md.len, used);
                for m in messages(&buf[used..used + md.len]) {
                    match m.ok().and_then(as_event) {
                        Some(e) => {
                            trace!(kind = ?e.kind, len = e.msg.len(), "event");
                            events += 1;
                        }
                        None => self.stats.bad += 1,
                    }
                }
                self.stats.bytes += md.len as u64;
                used = nlmsg_align(used + md.len);
            }
        }
        self.stats.events += events as u64;
        Ok(EventBatch {
            buf: &buf[..used],
            overrun,
            events,
        })
    }

    /// ENOBUFS: count it and grow the buffer as conntrackd 1.4.7 does.
    fn on_overrun(&mut self) {
        self.stats.overruns += 1;
        if self.growth_stopped {
            return;
        }
        let current = self
            .sock
            .recv_buffer_size()
            .unwrap_or(self.stats.buffer_size);
        if current.saturating_mul(2) > self.opts.buffer_max_growth {
            self.growth_stopped = true;
            warn!(
                current,
                max = self.opts.buffer_max_growth,
                "netlink event socket overrun: maximum buffer size reached, \
                 consider raising NetlinkBufferSizeMaxGrowth"
            );
            return;
        }
        // Asking for `current` gets 2 × current: the kernel doubles the request.
        match self.sock.set_recv_buffer_force(current) {
            Ok(()) => {
                let now = self.sock.recv_buffer_size().unwrap_or(current);
                self.stats.buffer_size = now;
                info!(
                    bytes = now,
                    "netlink event socket buffer size has been doubled"
                );
            }
            Err(e) => warn!(error = %e, "cannot grow the netlink event socket buffer"),
        }
    }
}

/// Logs what `net.netfilter.nf_conntrack_events` of the current namespace means for us.
fn check_events_sysctl() {
    match fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_events") {
        Ok(v) => match v.trim() {
            "0" => warn!(
                "net.netfilter.nf_conntrack_events is 0: the kernel sends no conntrack events"
            ),
            "2" => info!(
                "net.netfilter.nf_conntrack_events is 2: flows created before the first \
                 listener subscribed never emit events"
            ),
            _ => {}
        },
        Err(e) => debug!(error = %e, "cannot read nf_conntrack_events"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::consts::NLM_F_MULTI;

    #[test]
    fn test_classify() {
        let ct = |op: u8| u16::from_be_bytes([NFNL_SUBSYS_CTNETLINK, op]);
        let exp = |op: u8| u16::from_be_bytes([NFNL_SUBSYS_CTNETLINK_EXP, op]);
        let c = NLM_F_CREATE | NLM_F_EXCL;
        assert_eq!(
            EventKind::of(ct(IPCTNL_MSG_CT_NEW), c),
            Some(EventKind::CtNew)
        );
        assert_eq!(
            EventKind::of(ct(IPCTNL_MSG_CT_NEW), NLM_F_MULTI),
            Some(EventKind::CtUpdate)
        );
        assert_eq!(
            EventKind::of(ct(IPCTNL_MSG_CT_DELETE), 0),
            Some(EventKind::CtDestroy)
        );
        assert_eq!(
            EventKind::of(exp(IPCTNL_MSG_EXP_NEW), NLM_F_CREATE),
            Some(EventKind::ExpNew)
        );
        assert_eq!(
            EventKind::of(exp(IPCTNL_MSG_EXP_DELETE), 0),
            Some(EventKind::ExpDestroy)
        );
        assert!(EventKind::ExpUpdate.is_expectation());
        assert_eq!(EventKind::of(2, 0), None);
        assert_eq!(EventKind::of(ct(1), 0), None);
    }

    #[test]
    fn test_subscribe_sets_buffer() {
        // Runs in the test's own namespace; only socket options, no traffic.
        let s = EventSocket::subscribe(
            EventGroups {
                conntrack: true,
                expectations: true,
            },
            EventOptions {
                buffer_size: Some(256 * 1024),
                buffer_max_growth: 1 << 20,
                reliable: true,
            },
        )
        .unwrap();
        assert_ne!(s.port_id(), 0);
        assert_eq!(s.stats().buffer_size, 256 * 1024);
        let mut buf = vec![0u8; 64 * 1024];
        let mut s = s;
        let b = s.recv_batch(&mut buf).unwrap();
        assert!(b.is_empty() || b.events > 0);
    }
}
