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
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use tracing::{debug, info, info_span, trace, warn};

use super::receiver::Dispatcher;
use super::ring::Consumer;
use super::wake::Waker;
use super::worker::TxItem;
use super::worker::{TxKey as Key, TxPayload};
use crate::channel::{BATCH_SIZE, LinkMonitor, LinkPool, RecvBatch};
use crate::daemon::stats::LinkStats;
use crate::sync::alarm::{self, Alarm};
use crate::sync::ftfw::{self, Event, Ftfw, Source};
use crate::sync::notrack::{self, Notrack};
use crate::sys::eventfd::poll_in;
use crate::wire::{Message, MsgType, Outgoing, SeqCounter};

/// The mode and its parameters (the link buffer is filled in from the current link).
#[derive(Debug, Clone, Copy)]
pub enum ModeConfig {
    /// FTFW.
    Ftfw(ftfw::Config),
    /// NOTRACK.
    Notrack(notrack::Config),
    /// ALARM.
    Alarm(alarm::Config),
}

/// Control requests for the link thread.
#[derive(Debug)]
pub enum LinkCmd {
    /// Queue one RESYNC (`-n`).
    RequestResync,
    /// Reply with a copy of the endpoint's queues (`-s queue`, `-s rsqueue`): the link
    /// thread owns them, so the control thread asks instead of sharing them under a lock.
    QueueSnapshot(std::sync::mpsc::Sender<QueueReport>),
}

/// The endpoint's queues for `-s queue` / `-s rsqueue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueReport {
    /// FTFW: transmit and resend queues.
    Ftfw(ftfw::QueueSnapshot),
    /// NOTRACK and ALARM: the transmit queue's length.
    TxOnly(usize),
}

/// How long a clean shutdown waits for the peers' ACKs (they ACK at least every second).
const DRAIN_TIME: Duration = Duration::from_millis(2500);

/// `recvmmsg` batches per link per wake-up at most (EventIterationLimit bounds the C
/// receiver too).
const RECV_ROUNDS: usize = 8;

/// Latest payload per key still referenced by the endpoint.
struct Pending(HashMap<Key, (MsgType, TxPayload), ahash::RandomState>);

impl Source<Key> for Pending {
    fn message(&self, key: &Key) -> Option<Outgoing<'_>> {
        self.0.get(key).map(|(msg_type, p)| match p {
            TxPayload::Ct(repr) => Outgoing::Ct {
                msg_type: *msg_type,
                flags: crate::wire::Flags::NONE,
                repr,
            },
            TxPayload::Exp(repr) => Outgoing::Exp {
                msg_type: *msg_type,
                flags: crate::wire::Flags::NONE,
                repr,
            },
        })
    }
}

/// The sync mode's state machine; all three speak the same verbs (sync/mod.rs).
#[derive(Debug)]
pub enum Endpoint {
    /// Reliable (the default).
    Ftfw(Ftfw<Key, IpAddr>),
    /// Best effort.
    Notrack(Notrack<Key, IpAddr>),
    /// Periodic refresh; the external keys expire after `CacheTimeout`.
    Alarm(Alarm<Key, Key, IpAddr>),
}

/// An endpoint event, mode-independent.
enum Ev {
    /// The endpoint no longer references the key: its payload can go.
    Released(Key),
    /// A peer asked for everything.
    Resync,
    /// ALARM: a foreign object was not refreshed for `CacheTimeout`.
    Expired(Key),
    /// Nothing for us.
    Other,
}

impl Endpoint {
    /// Nothing left to send (FTFW: nor to be acknowledged by a live peer).
    fn is_settled(&self, now: Instant) -> bool {
        match self {
            Self::Ftfw(e) => e.is_settled(now),
            Self::Notrack(e) => e.tx_len() == 0,
            Self::Alarm(e) => e.tx_len() == 0,
        }
    }

    fn queue_item(&mut self, now: Instant, key: Key, send_now: bool) {
        match self {
            Self::Ftfw(e) if send_now => e.queue_item(key),
            Self::Notrack(e) if send_now => e.queue_item(key),
            Self::Alarm(e) if send_now => e.queue_item(now, key),
            Self::Alarm(e) => e.track_item(now, key),
            Self::Ftfw(_) | Self::Notrack(_) => {}
        }
    }

    /// `DisableInternalCache` (NOTRACK only): serialise now into the link buffer.
    fn queue_direct(&mut self, seq: &mut SeqCounter, msg_type: MsgType, p: &TxPayload) {
        if let Self::Notrack(e) = self {
            let msg = match p {
                TxPayload::Ct(repr) => Outgoing::Ct {
                    msg_type,
                    flags: crate::wire::Flags::NONE,
                    repr,
                },
                TxPayload::Exp(repr) => Outgoing::Exp {
                    msg_type,
                    flags: crate::wire::Flags::NONE,
                    repr,
                },
            };
            let _ = e.queue_direct(seq, &msg);
        }
    }

    /// Stops refreshing `key` (ALARM); FTFW and NOTRACK keep nothing per object beyond
    /// their queues, which drop it as vanished.
    fn forget(&mut self, key: &Key) {
        if let Self::Alarm(e) = self {
            e.forget_item(key);
        }
    }

    fn request_resync(&mut self) {
        match self {
            Self::Ftfw(e) => e.request_resync(),
            Self::Notrack(e) => e.request_resync(),
            // `-n` does nothing in ALARM mode (§3).
            Self::Alarm(_) => {}
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Self::Ftfw(e) => e.poll_timeout(),
            Self::Notrack(e) => e.poll_timeout(),
            Self::Alarm(e) => e.poll_timeout(),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Self::Ftfw(e) => e.handle_timeout(now),
            Self::Notrack(e) => e.handle_timeout(now),
            Self::Alarm(e) => e.handle_timeout(now),
        }
    }

    fn poll_transmit(
        &mut self,
        now: Instant,
        seq: &mut SeqCounter,
        src: &Pending,
        buf: &mut [u8],
    ) -> Option<ftfw::Transmit> {
        match self {
            Self::Ftfw(e) => e.poll_transmit(now, seq, src, buf),
            Self::Notrack(e) => e.poll_transmit(now, seq, src, buf),
            Self::Alarm(e) => e.poll_transmit(now, seq, src, buf),
        }
    }

    fn handle_datagram(
        &mut self,
        now: Instant,
        peer: &IpAddr,
        bytes: &[u8],
        deliver: impl FnMut(&Message<'_>),
    ) -> Result<(), crate::wire::Error> {
        match self {
            Self::Ftfw(e) => e.handle_datagram(now, peer, bytes, deliver),
            Self::Notrack(e) => e.handle_datagram(now, peer, bytes, deliver),
            Self::Alarm(e) => e.handle_datagram(now, peer, bytes, deliver),
        }
    }

    fn rx_lost(&self) -> u64 {
        match self {
            Self::Ftfw(e) => e.stats().rx_lost,
            Self::Notrack(e) => e.stats().rx_lost,
            Self::Alarm(e) => e.stats().rx_lost,
        }
    }

    fn poll_event(&mut self) -> Option<Ev> {
        Some(match self {
            Self::Ftfw(e) => match e.poll_event()? {
                Event::Released { item, .. } => Ev::Released(item),
                Event::ResyncRequested { .. } => Ev::Resync,
                Event::PeerRestarted { peer } => {
                    debug!(%peer, "peer (re)started");
                    Ev::Other
                }
            },
            Self::Notrack(e) => match e.poll_event()? {
                notrack::Event::Released { item, .. } => Ev::Released(item),
                notrack::Event::ResyncRequested { .. } => Ev::Resync,
                // DisableExternalCache is refused at start-up.
                notrack::Event::Inject { .. } => Ev::Other,
            },
            Self::Alarm(e) => match e.poll_event()? {
                alarm::Event::Released { item, .. } => Ev::Released(item),
                alarm::Event::Expired { item } => Ev::Expired(item),
            },
        })
    }

    /// ALARM bookkeeping of the foreign (external) objects a datagram touched.
    fn foreign(&mut self, now: Instant, touched: &[(Key, bool)]) {
        if let Self::Alarm(e) = self {
            for (k, del) in touched {
                if *del {
                    e.forget_foreign(k);
                } else {
                    e.refresh_foreign(now, k.clone());
                }
            }
        }
    }
}

/// Everything the link thread owns.
pub struct LinkThread {
    ep: Endpoint,
    seq: SeqCounter,
    pool: LinkPool,
    monitor: Option<LinkMonitor>,
    rx: RecvBatch,
    /// `BATCH_SIZE` datagram slots for one `sendmmsg` run.
    arena: Vec<u8>,
    slot: usize,
    last_tick: Instant,
    current: Arc<AtomicUsize>,
    links: Arc<parking_lot::Mutex<Vec<crate::channel::LinkStatus>>>,
    last_status: Instant,
    pending: Pending,
    from_workers: Vec<Consumer<TxItem>>,
    cmds: Consumer<LinkCmd>,
    dispatch: Dispatcher,
    waker: Arc<Waker>,
    stats: Arc<LinkStats>,
    shutdown: Arc<AtomicBool>,
    drain: Arc<AtomicBool>,
    /// When a drain must give up (an absent or silent peer never ACKs).
    drain_by: Option<Instant>,
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
    /// Set first at a clean shutdown: send what is queued, wait for the ACKs (a bounded
    /// time), then return.
    pub drain: Arc<AtomicBool>,
    /// Index of the current (sending) link, for `-s`.
    pub current: Arc<AtomicUsize>,
    /// Every link's status and counters, for `-s` / `-s link` (refreshed every 100 ms at
    /// most, off the hot path).
    pub links: Arc<parking_lot::Mutex<Vec<crate::channel::LinkStatus>>>,
}

impl LinkThread {
    /// A link thread over `link`, with the endpoint started at `now`. The first sequence
    /// number is the current Unix time, as the C daemon's.
    pub fn new(pool: LinkPool, mode: ModeConfig, io: LinkIo, now: Instant) -> Self {
        let slot = (0..pool.len())
            .map(|i| pool.link(i).buffer_size())
            .max()
            .unwrap_or(1472);
        let link_buffer = pool.link(pool.current()).buffer_size();
        let ep = match mode {
            ModeConfig::Ftfw(mut c) => {
                c.link_buffer = link_buffer;
                Endpoint::Ftfw(Ftfw::new(c, now))
            }
            ModeConfig::Notrack(mut c) => {
                c.link_buffer = link_buffer;
                Endpoint::Notrack(Notrack::new(c, now))
            }
            ModeConfig::Alarm(mut c) => {
                c.link_buffer = link_buffer;
                Endpoint::Alarm(Alarm::new(c, now))
            }
        };
        let monitor = LinkMonitor::open()
            .map_err(|e| warn!(error = %e, "no link monitoring"))
            .ok();
        // The C daemon starts at the Unix time, so daemons started in the same second share
        // a sequence space, and since ACK/NACK ranges name no sender, one node's ACK for a
        // third node's numbers releases our message with the same number (a 3-node cluster
        // can lose data that way). A random start makes overlapping spaces improbable; no
        // peer depends on the first number (a new peer's first message is taken as is).
        let first = {
            use std::hash::BuildHasher;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            // std seeds each RandomState from the OS's random source.
            std::collections::hash_map::RandomState::new().hash_one((now, std::process::id()))
                as u32
        };
        Self {
            ep,
            seq: SeqCounter::new(first),
            rx: RecvBatch::new(slot.max(2048)),
            arena: vec![0u8; slot * BATCH_SIZE],
            slot,
            pool,
            monitor,
            last_tick: now,
            current: io.current,
            links: io.links,
            last_status: now,
            pending: Pending(HashMap::default()),
            from_workers: io.from_workers,
            cmds: io.cmds,
            dispatch: io.dispatch,
            waker: io.waker,
            stats: io.stats,
            shutdown: io.shutdown,
            drain: io.drain,
            drain_by: None,
        }
    }

    /// Runs until shutdown.
    pub fn run(mut self) {
        let span = info_span!("link");
        let _g = span.enter();
        debug!("link thread started");
        let mut items = Vec::new();
        while !self.shutdown.load(Ordering::Acquire) {
            let now = Instant::now();
            if now.duration_since(self.last_tick) >= Duration::from_secs(1) {
                // TCP reconnects (at most once per second) and error-queue flushing.
                self.pool.tick();
                self.last_tick = now;
            }
            if let Some(m) = &mut self.monitor
                && let Err(e) = m.poll(&mut self.pool)
            {
                warn!(error = %e, "link monitor failed");
            }
            let mut busy = self.receive(now);
            if self.ep.poll_timeout().is_some_and(|t| t <= now) {
                self.ep.handle_timeout(now);
                self.drain_events();
            }
            for i in 0..self.from_workers.len() {
                if self.from_workers[i].pop_batch(&mut items, 4096) > 0 {
                    busy = true;
                    for it in items.drain(..) {
                        if it.direct {
                            self.ep.queue_direct(&mut self.seq, it.msg_type, &it.repr);
                            continue;
                        }
                        if it.forget {
                            self.pending.0.remove(&it.key);
                            self.ep.forget(&it.key);
                            continue;
                        }
                        self.pending
                            .0
                            .insert(it.key.clone(), (it.msg_type, it.repr));
                        self.ep.queue_item(now, it.key, it.send_now);
                    }
                }
            }
            while let Some(cmd) = self.cmds.pop() {
                busy = true;
                match cmd {
                    LinkCmd::RequestResync => self.ep.request_resync(),
                    LinkCmd::QueueSnapshot(reply) => {
                        let report = match &self.ep {
                            Endpoint::Ftfw(e) => QueueReport::Ftfw(e.queue_snapshot()),
                            Endpoint::Notrack(e) => QueueReport::TxOnly(e.tx_len()),
                            Endpoint::Alarm(e) => QueueReport::TxOnly(e.tx_len()),
                        };
                        // The asker may have given up waiting; nothing to do then.
                        let _ = reply.send(report);
                    }
                }
            }
            self.transmit(now);
            self.dispatch.flush();
            if now.duration_since(self.last_status) >= Duration::from_millis(100) {
                *self.links.lock() = self.pool.status();
                self.last_status = now;
            }
            if self.drain.load(Ordering::Acquire) {
                let by = *self.drain_by.get_or_insert(now + DRAIN_TIME);
                let rings_empty = self.from_workers.iter().all(|c| c.is_empty());
                if (rings_empty && self.ep.is_settled(now)) || now >= by {
                    if now >= by {
                        warn!("stopping with unacknowledged messages (drain timed out)");
                    }
                    break;
                }
            }
            if !busy {
                self.sleep();
            }
        }
        debug!("link thread stopped");
    }

    fn receive(&mut self, now: Instant) -> bool {
        let mut any = false;
        for idx in 0..self.pool.len() {
            for _ in 0..RECV_ROUNDS {
                let n = match self.pool.recv_batch(idx, &mut self.rx) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(e) => {
                        self.stats.err_recv.inc();
                        trace!(error = %e, "receive failed");
                        0
                    }
                };
                if n == 0 {
                    break;
                }
                any = true;
                for r in self.rx.iter() {
                    self.stats.pkts_recv.inc();
                    self.stats.bytes_recv.add(r.bytes.len() as u64);
                    let peer = r.from.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
                    let dispatch = &mut self.dispatch;
                    let lost_before = self.ep.rx_lost();
                    if self
                        .ep
                        .handle_datagram(now, &peer, r.bytes, |m| dispatch.deliver(m))
                        .is_err()
                    {
                        self.stats.malformed.inc();
                    }
                    self.stats.lost.add(self.ep.rx_lost() - lost_before);
                    let touched = self.dispatch.take_touched();
                    self.ep.foreign(now, &touched);
                    drain(&mut self.ep, &mut self.pending, &mut self.dispatch);
                }
            }
        }
        self.current.store(self.pool.current(), Ordering::Relaxed);
        any
    }

    /// Handles the endpoint's events right after the call that produced them, before any new
    /// transmit request, so that a release never drops a payload queued after it.
    fn drain_events(&mut self) {
        drain(&mut self.ep, &mut self.pending, &mut self.dispatch);
    }

    /// Sends the whole transmit queue, up to `BATCH_SIZE` datagrams per `sendmmsg`.
    fn transmit(&mut self, now: Instant) {
        loop {
            let mut lens = [0usize; BATCH_SIZE];
            let mut n = 0;
            while n < BATCH_SIZE {
                let slot = &mut self.arena[n * self.slot..(n + 1) * self.slot];
                let Some(t) = self
                    .ep
                    .poll_transmit(now, &mut self.seq, &self.pending, slot)
                else {
                    break;
                };
                lens[n] = t.size;
                n += 1;
                self.drain_events();
            }
            if n == 0 {
                return;
            }
            let mut refs: [&[u8]; BATCH_SIZE] = [&[]; BATCH_SIZE];
            for (i, r) in refs.iter_mut().enumerate().take(n) {
                *r = &self.arena[i * self.slot..i * self.slot + lens[i]];
            }
            match self.pool.send_batch(&refs[..n]) {
                Ok(sent) => {
                    self.stats.pkts_sent.add(sent as u64);
                    self.stats
                        .bytes_sent
                        .add(lens[..sent].iter().sum::<usize>() as u64);
                    self.stats.err_send.add((n - sent) as u64);
                }
                Err(e) => {
                    self.stats.err_send.add(n as u64);
                    trace!(error = %e, "send failed");
                }
            }
            self.current.store(self.pool.current(), Ordering::Relaxed);
            if n < BATCH_SIZE {
                return;
            }
        }
    }

    fn sleep(&mut self) {
        let now = Instant::now();
        let timeout = self
            .ep
            .poll_timeout()
            .map_or(Duration::from_millis(500), |t| {
                t.saturating_duration_since(now)
            })
            .min(Duration::from_millis(500));
        self.waker.prepare_sleep();
        let has_work = self.from_workers.iter().any(|c| !c.is_empty())
            || !self.cmds.is_empty()
            || self.shutdown.load(Ordering::Acquire);
        // Draining: ACKs wake the poll; the deadline needs a short nap, not 500 ms.
        let timeout = if self.drain.load(Ordering::Acquire) {
            timeout.min(Duration::from_millis(20))
        } else {
            timeout
        };
        if has_work {
            self.waker.cancel_sleep();
            return;
        }
        let mut fds: Vec<BorrowedFd<'_>> = vec![self.waker.as_fd()];
        for i in 0..self.pool.len() {
            fds.extend(self.pool.link(i).recv_fds().iter());
        }
        if let Some(m) = &self.monitor {
            fds.push(m.as_fd());
        }
        if let Err(e) = poll_in(&fds, Some(timeout)) {
            warn!(error = %e, "poll failed");
        }
        let _ = self.waker.finish_sleep();
    }
}

/// Applies the endpoint's events right after the call that produced them, before any new
/// transmit request, so that a release never drops a payload queued after it. (A free
/// function so that it can run while the receive loop borrows the receive batch.)
fn drain(ep: &mut Endpoint, pending: &mut Pending, dispatch: &mut Dispatcher) {
    while let Some(ev) = ep.poll_event() {
        match ev {
            Ev::Released(item) => {
                pending.0.remove(&item);
            }
            Ev::Resync => {
                info!("resync requested by other node");
                dispatch.resync_all();
            }
            Ev::Expired(item) => dispatch.expire(&item),
            Ev::Other => {}
        }
    }
}
