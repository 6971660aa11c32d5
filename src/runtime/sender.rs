//! The link thread: owns the dedicated link, the FTFW endpoint and the daemon's single
//! sequence counter.
//!
//! FTFW's sender and receiver halves share state (an ACK releases resend-queue entries, a
//! NACK moves them back to the transmit queue), so they run in one thread and the endpoint
//! needs no lock. Workers hand in transmit requests (key + current payload) on SPSC rings;
//! the thread keeps the latest payload per key in `pending` for as long as the endpoint
//! references the key, which is the [`Source`] the endpoint serialises from: a
//! retransmission after a NACK, or a re-queue after a newer event, always carries the
//! object's current state with a fresh sequence number, exactly as the C daemon whose
//! queues point at cache objects. Received data goes to the owning shard through the
//! [`Dispatcher`].

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use tracing::{debug, info, info_span, trace, warn};

use super::receiver::Dispatcher;
use super::ring::Consumer;
use super::wake::Waker;
use super::worker::TxItem;
use crate::cache::CtKey as Key;
use crate::daemon::stats::LinkStats;
use crate::daemon::udp_shim::UdpLink;
use crate::sync::ftfw::{self, Event, Ftfw, Source};
use crate::sys::eventfd::poll_in;
use crate::wire::{MsgType, Outgoing, SeqCounter, ct};

/// Control requests for the link thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkCmd {
    /// Queue one RESYNC (`-n`).
    RequestResync,
}

/// Datagrams received per wake-up at most (EventIterationLimit bounds the C receiver too).
const RECV_BURST: usize = 256;

/// Latest payload per key still referenced by the endpoint.
struct Pending(HashMap<Key, (MsgType, ct::Repr), ahash::RandomState>);

impl Source<Key> for Pending {
    fn message(&self, key: &Key) -> Option<Outgoing<'_>> {
        self.0.get(key).map(|(msg_type, repr)| Outgoing::Ct {
            msg_type: *msg_type,
            flags: crate::wire::Flags::NONE,
            repr,
        })
    }
}

/// Everything the link thread owns.
pub struct LinkThread {
    ftfw: Ftfw<Key, IpAddr>,
    seq: SeqCounter,
    link: UdpLink,
    pending: Pending,
    from_workers: Vec<Consumer<TxItem>>,
    cmds: Consumer<LinkCmd>,
    dispatch: Dispatcher,
    waker: Arc<Waker>,
    stats: Arc<LinkStats>,
    shutdown: Arc<AtomicBool>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for LinkThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkThread")
            .field("seq", &self.seq)
            .field("pending", &self.pending.0.len())
            .finish_non_exhaustive()
    }
}

/// The rings and shared state the link thread is started with.
#[derive(Debug)]
pub struct LinkIo {
    /// One ring per worker.
    pub from_workers: Vec<Consumer<TxItem>>,
    /// Control requests.
    pub cmds: Consumer<LinkCmd>,
    /// To the shards.
    pub dispatch: Dispatcher,
    /// Rung by every producer above.
    pub waker: Arc<Waker>,
    /// Link counters.
    pub stats: Arc<LinkStats>,
    /// Set once at shutdown.
    pub shutdown: Arc<AtomicBool>,
}

impl LinkThread {
    /// A link thread over `link`, with the endpoint started at `now`. The first sequence
    /// number is the current Unix time, as the C daemon's.
    pub fn new(link: UdpLink, cfg: ftfw::Config, io: LinkIo, now: Instant) -> Self {
        let first = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        Self {
            ftfw: Ftfw::new(cfg, now),
            seq: SeqCounter::new(first),
            link,
            pending: Pending(HashMap::default()),
            from_workers: io.from_workers,
            cmds: io.cmds,
            dispatch: io.dispatch,
            waker: io.waker,
            stats: io.stats,
            shutdown: io.shutdown,
            buf: vec![0u8; 65536],
        }
    }

    /// Runs until shutdown.
    pub fn run(mut self) {
        let span = info_span!("link", device = %self.link.device);
        let _g = span.enter();
        debug!("link thread started");
        let mut items = Vec::new();
        while !self.shutdown.load(Ordering::Acquire) {
            let now = Instant::now();
            let mut busy = self.receive(now);
            if self.ftfw.poll_timeout().is_some_and(|t| t <= now) {
                self.ftfw.handle_timeout(now);
                self.drain_events();
            }
            for i in 0..self.from_workers.len() {
                if self.from_workers[i].pop_batch(&mut items, 4096) > 0 {
                    busy = true;
                    for it in items.drain(..) {
                        self.pending.0.insert(it.key, (it.msg_type, it.repr));
                        self.ftfw.queue_item(it.key);
                    }
                }
            }
            while let Some(cmd) = self.cmds.pop() {
                busy = true;
                match cmd {
                    LinkCmd::RequestResync => self.ftfw.request_resync(),
                }
            }
            self.transmit(now);
            self.dispatch.flush();
            if !busy {
                self.sleep();
            }
        }
        debug!("link thread stopped");
    }

    fn receive(&mut self, now: Instant) -> bool {
        let mut any = false;
        for _ in 0..RECV_BURST {
            let (n, from) = match self.link.recv(&mut self.buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.stats.err_recv.inc();
                    trace!(error = %e, "receive failed");
                    break;
                }
            };
            any = true;
            self.stats.pkts_recv.inc();
            self.stats.bytes_recv.add(n as u64);
            let peer = from.ip();
            let dispatch = &mut self.dispatch;
            let lost_before = self.ftfw.stats().rx_lost;
            if self
                .ftfw
                .handle_datagram(now, &peer, &self.buf[..n], |m| dispatch.deliver(m))
                .is_err()
            {
                self.stats.malformed.inc();
            }
            self.stats.lost.add(self.ftfw.stats().rx_lost - lost_before);
            self.drain_events();
        }
        any
    }

    /// Handles the endpoint's events right after the call that produced them, before any new
    /// transmit request, so that a release never drops a payload queued after it.
    fn drain_events(&mut self) {
        while let Some(ev) = self.ftfw.poll_event() {
            match ev {
                Event::Released { item, .. } => {
                    self.pending.0.remove(&item);
                }
                Event::ResyncRequested { .. } => {
                    info!("resync requested by other node");
                    self.dispatch.resync_all();
                }
                Event::PeerRestarted { peer } => debug!(%peer, "peer (re)started"),
            }
        }
    }

    fn transmit(&mut self, now: Instant) {
        while let Some(t) =
            self.ftfw
                .poll_transmit(now, &mut self.seq, &self.pending, &mut self.buf)
        {
            match self.link.send(&self.buf[..t.size]) {
                Ok(_) => {
                    self.stats.pkts_sent.inc();
                    self.stats.bytes_sent.add(t.size as u64);
                }
                Err(e) => {
                    self.stats.err_send.inc();
                    trace!(error = %e, "send failed");
                }
            }
            self.drain_events();
        }
    }

    fn sleep(&mut self) {
        let now = Instant::now();
        let timeout = self
            .ftfw
            .poll_timeout()
            .map_or(Duration::from_millis(500), |t| {
                t.saturating_duration_since(now)
            })
            .min(Duration::from_millis(500));
        self.waker.prepare_sleep();
        let has_work = self.from_workers.iter().any(|c| !c.is_empty())
            || !self.cmds.is_empty()
            || self.shutdown.load(Ordering::Acquire);
        if has_work {
            self.waker.cancel_sleep();
            return;
        }
        if let Err(e) = poll_in(&[self.waker.as_fd(), self.link.rx_fd()], Some(timeout)) {
            warn!(error = %e, "poll failed");
        }
        let _ = self.waker.finish_sleep();
    }
}
