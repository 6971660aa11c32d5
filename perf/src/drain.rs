//! The bare event drain: a ctnetlink listener that only reads and discards.
//!
//! Subscribing to conntrack events makes the kernel build and queue one message per event
//! while it creates, changes or deletes the entry — that work happens in the writer's
//! `sendmsg`, so a listener lowers the creation rate whatever it does with the events. A drain
//! that does nothing else (no decoding, no cache, no sync) measures exactly that cost: the
//! creation rate with it attached is the ceiling any replicator can reach, and its own event
//! rate is the most any reader can see.
//!
//! It joins NEW | UPDATE | DESTROY with a large SO_RCVBUFFORCE buffer, reads with `recvmmsg`
//! (64 datagrams per call; each event is its own datagram) and looks only at the message
//! header to count kinds. ENOBUFS (events the kernel dropped because we fell behind) is
//! counted, never fatal: it is the number the table reports next to the rate.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use conntrackd::netlink::events::EventKind;
use conntrackd::netlink::msg::messages;
use conntrackd::sys::netlink::{NETLINK_NETFILTER, NetlinkSocket, RECV_MANY_MAX, RecvMeta};

/// Legacy bind bitmask NEW | UPDATE | DESTROY (what conntrackd's event socket joins).
const CT_GROUPS: u32 = 0x07;
/// Room per event datagram: conntrack events are a few hundred bytes.
const SLOT: usize = 4096;
/// Default effective receive buffer: 64 MiB, far above conntrackd's usual 2–8 MiB, so that
/// overruns measure the reader's speed rather than a small buffer.
pub const DEFAULT_RCVBUF: usize = 64 << 20;
/// How often a waiting drain looks at its stop flag.
const TICK: Duration = Duration::from_millis(50);

/// What the drain saw.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct DrainStats {
    /// Events read (all kinds).
    pub events: u64,
    /// Conntrack NEW events.
    pub new: u64,
    /// Conntrack UPDATE events.
    pub update: u64,
    /// Conntrack DESTROY events.
    pub destroy: u64,
    /// ENOBUFS reports: each means the kernel dropped at least one event for us.
    pub overruns: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Seconds from the first event to the last (the window the rate is computed over).
    pub active_seconds: f64,
    /// Effective receive buffer in bytes.
    pub rcvbuf: usize,
}

impl DrainStats {
    /// Events per second over the active window (0 when fewer than two reads happened).
    pub fn rate(&self) -> f64 {
        if self.active_seconds > 0.0 {
            self.events as f64 / self.active_seconds
        } else {
            0.0
        }
    }
}

/// A subscribed, non-blocking event socket and its read buffer.
#[derive(Debug)]
pub struct Drain {
    sock: NetlinkSocket,
    buf: Vec<u8>,
    rcvbuf: usize,
}

impl Drain {
    /// Subscribes in the calling thread's network namespace; afterwards any thread may run it.
    pub fn open(rcvbuf: usize) -> Result<Self> {
        let sock = NetlinkSocket::open(NETLINK_NETFILTER).context("netlink socket")?;
        sock.set_nonblocking(true)?;
        // The kernel doubles the request: ask for half.
        sock.set_recv_buffer_force(rcvbuf / 2)
            .context("SO_RCVBUFFORCE")?;
        sock.bind(CT_GROUPS)
            .context("join conntrack event groups")?;
        let rcvbuf = sock.recv_buffer_size()?;
        Ok(Self {
            sock,
            buf: vec![0; SLOT * RECV_MANY_MAX],
            rcvbuf,
        })
    }

    /// Reads and discards until `deadline` passes, or until `stop` is set and the queue is
    /// empty.
    pub fn run(&mut self, stop: &AtomicBool, deadline: Option<Instant>) -> Result<DrainStats> {
        let mut st = DrainStats {
            rcvbuf: self.rcvbuf,
            ..DrainStats::default()
        };
        let mut meta = [RecvMeta::default(); RECV_MANY_MAX];
        let (mut first, mut last) = (None::<Instant>, None::<Instant>);
        loop {
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                break;
            }
            // Once asked to stop, finish what is queued: the kernel queues every event inside
            // the writer's `sendmsg`, so an empty queue after the writer is done means all
            // its events were counted.
            let stopping = stop.load(Ordering::Relaxed);
            let wait = if stopping {
                Duration::ZERO
            } else {
                deadline.map_or(TICK, |d| (d - now).min(TICK))
            };
            if !self.sock.poll_readable(Some(wait))? {
                if stopping {
                    break;
                }
                continue;
            }
            // Empty the queue before polling again: poll per datagram would cost more than
            // the read.
            loop {
                let got = match self.sock.recv_many(&mut self.buf, SLOT, &mut meta) {
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        st.overruns += 1;
                        continue;
                    }
                    Err(e) => return Err(e).context("read events"),
                };
                let t = Instant::now();
                first.get_or_insert(t);
                last = Some(t);
                for (k, md) in meta[..got].iter().enumerate() {
                    if !md.from_kernel {
                        continue;
                    }
                    st.bytes += md.len as u64;
                    let len = md.len.min(SLOT);
                    for m in messages(&self.buf[k * SLOT..k * SLOT + len]).flatten() {
                        st.events += 1;
                        match EventKind::of(m.msg_type(), m.flags()) {
                            Some(EventKind::CtNew) => st.new += 1,
                            Some(EventKind::CtUpdate) => st.update += 1,
                            Some(EventKind::CtDestroy) => st.destroy += 1,
                            _ => {}
                        }
                    }
                }
                if got < meta.len() {
                    break;
                }
            }
        }
        if let (Some(a), Some(b)) = (first, last) {
            st.active_seconds = (b - a).as_secs_f64();
        }
        Ok(st)
    }
}
