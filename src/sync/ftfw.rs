//! FTFW, the reliable sync mode (sync-modes.md §2): sequence tracking, ACK windows, NACKs,
//! the resend queue, ALIVE and HELLO/HELLO_BACK, as a sans-IO state machine.
//!
//! The endpoint never sees a conntrack. Its queues hold caller-chosen keys `K` (a handle
//! into the internal cache); when it transmits a key it asks a [`Source`] for the item's
//! *current* state, exactly like the C daemon whose queues point at cache objects and
//! re-serialise them (with a new sequence number) on every transmission (§2.2, §2.4).
//!
//! # Differences from the C daemon (wire-compatible)
//!
//! * The receiver state (`last`, `ack_from`, window) is kept **per sender**, keyed by a
//!   peer id `P` the caller supplies (e.g. the source address). The C daemon has one
//!   tracker for everybody, which on a multicast group with three FTFW nodes sees the
//!   interleaved sequence spaces as endless gaps and drops half the traffic as "before".
//!   With one peer both behave identically.
//! * The alive timer sends one ACK per peer with something to acknowledge; with one peer
//!   that is the C rule (§2.2 "alive timer fires").
//! * **Per-peer acknowledgement**: a resend-queue entry is released once every peer that
//!   was live when it was sent has ACKed it (a peer is live while heard from within
//!   [`Config::peer_timeout`]). The C daemon releases on the first ACK from anyone, so on a
//!   group of three a node's ACK drops data the third node has not received, and that
//!   node's NACK then finds nothing. With one peer both rules are the same.
//!
//! * **HELLO does not make data unreliable.** The C daemon takes every HELLO-flagged
//!   message without a sequence check and empties its resend queue on each one (§2.3
//!   step 1), so whatever is lost while either side still says HELLO — a burst right
//!   after start-up — is never NACKed nor retransmitted, and the peer's ACK ranges even
//!   cover it. We reset a peer's sequence tracking only when it restarts (its first
//!   HELLO-flagged message, or one whose number goes backwards), check the sequence of
//!   its other HELLO messages like any message, and never empty the resend queue.
//! * **Retransmission timeout.** An entry sent [`Config::retransmit_timeout`] ago that a
//!   live peer has not acknowledged although it acknowledged a later message is sent
//!   again: it was lost where no NACK can report it (sent before the peer started
//!   tracking our sequence space, e.g. a burst right after both started). On a healthy
//!   link nothing qualifies: ACK ranges are contiguous.
//!
//! ACK/NACK ranges carry no addressee. With several peers whose sequence spaces overlap,
//! an ACK one peer meant for another node's numbers also counts for our entries with the
//! same numbers, and a NACK makes us resend them needlessly. That is a protocol limit the
//! C daemon shares; only far-apart sequence spaces (daemons started long apart, little
//! traffic) avoid it.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::Stats;
use super::resend::{Ctl, Kept, ResendQueue, peer_bit};
use super::seq::Seq;
use super::timer::{Timer, TimerTable};
use crate::wire::header::SeqRange;
use crate::wire::{self, Datagram, Flags, Kind, Message, Messages, Outgoing, SeqCounter};

/// FTFW parameters (sync-modes.md §2.1, defaults §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// `ACKWindowSize`: in-order messages per explicit ACK.
    pub ack_window: u32,
    /// `ResendQueueSize`: entries kept for retransmission; when full the oldest is dropped.
    pub resend_queue_size: usize,
    /// Link buffer size (`MTU - 28` for UDP/multicast, `MTU - 40` for TCP); a datagram
    /// carries at most one byte less (see [`wire::Transport::buffer_size`]).
    pub link_buffer: usize,
    /// The ALIVE/ACK timer; hard-coded to 1 s in C, configurable here only for tests.
    pub alive_interval: Duration,
    /// `StartupResync on`: queue one RESYNC at start-up (§5.1).
    pub startup_resync: bool,
    /// A peer not heard from for this long no longer holds back our resend queue (see
    /// "per-peer acknowledgement" in the module documentation). Not a C parameter: two
    /// quiet peers exchange a message every second, so a few seconds of silence mean the
    /// peer is gone.
    pub peer_timeout: Duration,
    /// See "retransmission timeout" in the module documentation. Not a C parameter.
    pub retransmit_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ack_window: 300,
            resend_queue_size: 131_072,
            link_buffer: 1472,
            alive_interval: Duration::from_secs(1),
            startup_resync: false,
            peer_timeout: Duration::from_secs(5),
            retransmit_timeout: Duration::from_secs(3),
        }
    }
}

/// Where the endpoint gets an item's current state when it transmits it.
///
/// Implemented by the internal cache. The message type follows the object's status at
/// transmission time (NEW → `*_NEW`, ALIVE → `*_UPD`, DEAD → `*_DEL`, §1); the flags the
/// source returns are replaced by the endpoint's HELLO/HELLO_BACK flags.
pub trait Source<K> {
    /// The message for `key`, or `None` if the item no longer exists (it is then skipped
    /// and released with [`Release::Vanished`]).
    fn message(&self, key: &K) -> Option<Outgoing<'_>>;
}

/// Why an item left the endpoint's queues (see [`Event::Released`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// A peer acknowledged the message that carried it.
    Acked,
    /// The resend queue was full and this was its oldest entry (§2.2).
    QueueFull,
    /// The [`Source`] no longer had it when it was due for transmission.
    Vanished,
    /// It could not be encoded (larger than a datagram, or a bad message type).
    Unsendable,
}

/// Something the caller must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<K, P> {
    /// A peer sent RESYNC: queue every internal-cache object (CT, then EXP) with
    /// [`Ftfw::queue_item`] (§2.3 step 4, "resync requested by other node").
    ResyncRequested {
        /// The requester.
        peer: P,
    },
    /// A peer (re)started: its first message with HELLO since it last sent one without,
    /// or a HELLO message numbered before the last one we took from it. Our messages it
    /// missed are retransmitted after the retransmission timeout; the internal cache is
    /// not re-sent (§2.5, use `StartupResync` or `-B` for that). The caller may log it.
    PeerRestarted {
        /// The peer.
        peer: P,
    },
    /// `item` is no longer referenced by any queue. A DEAD (destroyed) object can now be
    /// removed from the internal cache (§2.2: DEAD objects stay until their DEL is acked).
    Released {
        /// The item.
        item: K,
        /// Why.
        reason: Release,
    },
}

/// How the endpoint judged one received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A data message accepted in sequence (or the first of a gap): apply it to the
    /// external cache (§1.2).
    Data,
    /// A control message, processed.
    Control,
    /// Old or duplicate sequence number: ignored (`MSG_DROP`).
    Dropped,
    /// Malformed control message or flag combination: ignored, counted as "bad header".
    Bad,
}

impl Verdict {
    /// Valid data or control: the C daemon makes the receiving link the current one (§9).
    pub const fn is_valid(self) -> bool {
        matches!(self, Self::Data | Self::Control)
    }
}

/// One datagram written by [`Ftfw::poll_transmit`] to the front of the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Transmit {
    /// Payload bytes.
    pub size: usize,
    /// Messages in it.
    pub messages: usize,
}

#[derive(Debug, Clone)]
enum TxItem<K> {
    Data { key: K, resent: bool },
    Ctl { ctl: Ctl, resent: bool },
}

/// The queues as `conntrackd -s queue` / `-s rsqueue` print them (see
/// [`Ftfw::queue_snapshot`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// Messages waiting for transmission.
    pub tx_len: usize,
    /// Of those, control messages (the C daemon allocates a queue node for each).
    pub tx_ctl: usize,
    /// The resend queue, oldest first: sequence number and, for a control message, the
    /// header flags it was sent with.
    pub resend: Vec<(u32, Option<Flags>)>,
    /// `ResendQueueSize`.
    pub resend_max: usize,
    /// Entries dropped because the resend queue was full.
    pub resend_overflow: u64,
}

/// Where a queued item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    Tx,
    /// Key of its resend-queue entry.
    Resend(u64),
}

/// Receiver state for one sender (§2.3 variables).
#[derive(Debug, Clone)]
struct Rx<P> {
    peer: P,
    /// Last sequence number accepted; `None` until the first message.
    last: Option<Seq>,
    /// `ack_from` while `ack_pending`.
    ack_from: Option<Seq>,
    /// Messages left in the current ACK window (an `int` in C, hence signed).
    window: i64,
    /// The peer's last message carried HELLO (for [`Event::PeerRestarted`]).
    in_hello: bool,
    /// When the peer's last message arrived.
    heard: Instant,
    /// The highest of our sequence numbers it acknowledged.
    acked_to: Option<Seq>,
}

/// One FTFW endpoint: the sender and the per-peer receivers of a node.
///
/// `K` is the item key of the internal cache, `P` the id of a peer (its address).
#[derive(Debug)]
pub struct Ftfw<K, P> {
    config: Config,
    timers: TimerTable,
    /// Messages to send, FIFO. A data key is here at most once (`loc` says so).
    tx: VecDeque<TxItem<K>>,
    /// Sent messages awaiting ACK, in transmission (hence sequence) order.
    resend: ResendQueue<K>,
    loc: HashMap<K, Loc, ahash::RandomState>,
    /// Per-sender receive state. A handful of peers: a `Vec` is faster than a map and
    /// iterates in a fixed order, which keeps the output deterministic.
    peers: Vec<Rx<P>>,
    /// Live peers at the last sweep (see `sweep_silent_peers`).
    live_mask: u64,
    /// We keep setting HELLO until some peer answers HELLO_BACK.
    hello_done: bool,
    /// A peer sent HELLO: set HELLO_BACK on our next message, once.
    say_hello_back: bool,
    events: VecDeque<Event<K, P>>,
    stats: Stats,
}

impl<K, P> Ftfw<K, P>
where
    K: Clone + Eq + Hash,
    P: Clone + Eq,
{
    /// A freshly started endpoint. Arms the alive timer (the first message of a quiet
    /// daemon is `ALIVE|HELLO` one interval after start) and, with `startup_resync`, queues
    /// a RESYNC.
    pub fn new(config: Config, now: Instant) -> Self {
        let mut ep = Self {
            config,
            timers: TimerTable::default(),
            tx: VecDeque::new(),
            resend: ResendQueue::default(),
            loc: HashMap::default(),
            peers: Vec::new(),
            live_mask: 0,
            hello_done: false,
            say_hello_back: false,
            events: VecDeque::new(),
            stats: Stats::default(),
        };
        ep.timers.set(Timer::Alive, now + config.alive_interval);
        if config.startup_resync {
            ep.request_resync();
        }
        ep
    }

    /// The parameters.
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// Counters.
    pub const fn stats(&self) -> &Stats {
        &self.stats
    }

    /// True once a peer answered our HELLO.
    pub const fn is_hello_done(&self) -> bool {
        self.hello_done
    }

    /// Messages waiting for transmission.
    pub fn tx_len(&self) -> usize {
        self.tx.len()
    }

    /// Entries in the resend queue.
    pub fn resend_len(&self) -> usize {
        self.resend.len()
    }

    /// What `conntrackd -s queue` / `-s rsqueue` show of the queues, read off the owning
    /// thread on request (no shared state on the hot path).
    pub fn queue_snapshot(&self) -> QueueSnapshot {
        QueueSnapshot {
            tx_len: self.tx.len(),
            tx_ctl: self
                .tx
                .iter()
                .filter(|t| matches!(t, TxItem::Ctl { .. }))
                .count(),
            resend: self.resend.entries().map(|(s, f)| (s.0, f)).collect(),
            resend_max: self.config.resend_queue_size,
            resend_overflow: self.stats.resend_overflow,
        }
    }

    /// No data item left to send or to be acknowledged by a live peer: what a clean
    /// shutdown waits for (control messages do not count: they carry no state).
    pub fn is_settled(&self, now: Instant) -> bool {
        self.loc.is_empty() || self.live_peers(now) == 0
    }

    /// Data items not yet acknowledged (queued or sent and unacked).
    pub fn unacked_items(&self) -> usize {
        self.loc.len()
    }

    // ---- local input ----------------------------------------------------------------

    /// A local event changed `key` (created, updated or destroyed): send its current state.
    ///
    /// An item is queued at most once; one still waiting for an ACK moves back to the
    /// transmit queue and will go out with a new sequence number (§2.2).
    pub fn queue_item(&mut self, key: K) {
        match self.loc.get(&key) {
            Some(Loc::Tx) => return,
            Some(&Loc::Resend(i)) => {
                self.resend.remove(i);
            }
            None => {}
        }
        self.loc.insert(key.clone(), Loc::Tx);
        self.tx.push_back(TxItem::Data { key, resent: false });
    }

    /// Ask the peers for everything they have (`conntrackd -n`, `StartupResync`): one
    /// RESYNC control message, from = to = 0 (wire-protocol.md §2.1).
    pub fn request_resync(&mut self) {
        self.queue_ctl(Flags::RESYNC, None);
    }

    fn queue_ctl(&mut self, flags: Flags, range: Option<SeqRange>) {
        if flags.contains(Flags::ACK) {
            self.stats.acks_queued += 1;
        } else if flags.contains(Flags::NACK) {
            self.stats.nacks_queued += 1;
        }
        let ctl = Ctl { flags, range };
        self.tx.push_back(TxItem::Ctl { ctl, resent: false });
    }

    fn queue_ack(&mut self, from: Seq, to: Seq, flags: Flags) {
        self.queue_ctl(
            flags,
            Some(SeqRange {
                from: from.0,
                to: to.0,
            }),
        );
    }

    // ---- time -----------------------------------------------------------------------

    /// When [`Self::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_timeout()
    }

    /// Runs the timers due at `now`. The alive timer queues, per peer with something
    /// received since our last ACK to it, `ACK(ack_from, last)`, or else one ALIVE, and is
    /// re-armed (§2.2).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timers.take_expired(Timer::Retransmit, now) {
            self.retransmit_overdue(now);
            if self.resend.len() > 0 {
                self.timers
                    .set(Timer::Retransmit, now + self.config.alive_interval);
            }
        }
        if !self.timers.take_expired(Timer::Alive, now) {
            return;
        }
        self.sweep_silent_peers(now);
        let mut acks = Vec::new();
        for rx in &mut self.peers {
            if let (Some(from), Some(last)) = (rx.ack_from.take(), rx.last) {
                acks.push((from, last));
            }
        }
        if acks.is_empty() {
            self.queue_ctl(Flags::ALIVE, None);
        }
        for (from, last) in acks {
            self.queue_ack(from, last, Flags::ACK);
        }
        self.timers
            .set(Timer::Alive, now + self.config.alive_interval);
    }

    // ---- output ---------------------------------------------------------------------

    /// Writes the next datagram into `buf` and returns its size, or `None` when nothing is
    /// queued. Call it until `None` after every `handle_*`/`queue_*` call: the C daemon
    /// sends its whole transmit queue in one run.
    ///
    /// Sequence numbers come from `seq`, the daemon's single counter shared by every link
    /// and message type (§9). Each message gets HELLO until a peer answered HELLO_BACK,
    /// and the first one after a received HELLO gets HELLO_BACK (§2.2). Sent data and
    /// ACK/NACK/RESYNC go to the resend queue; the alive timer is re-armed.
    pub fn poll_transmit<S: Source<K>>(
        &mut self,
        now: Instant,
        seq: &mut SeqCounter,
        source: &S,
        buf: &mut [u8],
    ) -> Option<Transmit> {
        let mut dgram = Datagram::new(buf, self.config.link_buffer);
        let mut messages = 0;
        let need = self.live_peers(now);
        while let Some(item) = self.tx.front().cloned() {
            let hello = self.hello_flags();
            let pushed = match &item {
                TxItem::Data { key, .. } => match source.message(key) {
                    Some(msg) => dgram.push(seq, &with_flags(msg, hello)),
                    None => {
                        self.tx.pop_front();
                        self.release(key.clone(), Release::Vanished);
                        continue;
                    }
                },
                TxItem::Ctl { ctl, .. } => {
                    let msg = Outgoing::Control {
                        flags: ctl.flags | hello,
                        range: ctl.range,
                    };
                    dgram.push(seq, &msg)
                }
            };
            let s = match pushed {
                Ok(s) => Seq(s),
                // Datagram full: send it, the rest goes into the next one.
                Err(wire::Error::Full) => break,
                Err(_) => {
                    self.tx.pop_front();
                    self.stats.unsendable += 1;
                    if let TxItem::Data { key, .. } = item {
                        self.release(key, Release::Unsendable);
                    }
                    continue;
                }
            };
            self.tx.pop_front();
            messages += 1;
            if hello.contains(Flags::HELLO_BACK) {
                self.say_hello_back = false;
            }
            match item {
                TxItem::Data { key, resent } => {
                    self.stats.data_sent += 1;
                    self.stats.data_resent += u64::from(resent);
                    let i = self.resend.push(s, Kept::Data(key.clone()), need, now);
                    self.loc.insert(key, Loc::Resend(i));
                }
                TxItem::Ctl { ctl, resent } => {
                    self.stats.ctl_sent += 1;
                    self.stats.ctl_resent += u64::from(resent);
                    if ctl.is_kept() {
                        self.resend
                            .push_sent(s, Kept::Ctl(ctl), need, now, ctl.flags | hello);
                    }
                }
            }
            self.trim_resend();
        }
        if messages == 0 {
            return None;
        }
        self.stats.datagrams_sent += 1;
        self.timers
            .set(Timer::Alive, now + self.config.alive_interval);
        if self.timers.get(Timer::Retransmit).is_none() && self.resend.len() > 0 {
            self.timers
                .set(Timer::Retransmit, now + self.config.alive_interval);
        }
        Some(Transmit {
            size: dgram.len(),
            messages,
        })
    }

    /// The next event for the caller.
    pub fn poll_event(&mut self) -> Option<Event<K, P>> {
        self.events.pop_front()
    }

    fn hello_flags(&self) -> Flags {
        let mut f = Flags::NONE;
        if !self.hello_done {
            f |= Flags::HELLO;
        }
        if self.say_hello_back {
            f |= Flags::HELLO_BACK;
        }
        f
    }

    /// Drops the oldest entries beyond `ResendQueueSize` (§2.2).
    fn trim_resend(&mut self) {
        while self.resend.len() > self.config.resend_queue_size {
            let Some(what) = self.resend.pop_oldest() else {
                break;
            };
            self.stats.resend_overflow += 1;
            if let Kept::Data(key) = what {
                self.release(key, Release::QueueFull);
            }
        }
    }

    fn release(&mut self, key: K, reason: Release) {
        self.loc.remove(&key);
        self.events.push_back(Event::Released { item: key, reason });
    }

    // ---- input ----------------------------------------------------------------------

    /// Handles every message of a datagram received from `peer`, calling `deliver` for each
    /// data message to apply (its payload is decoded by the caller with
    /// [`Message::ct`]/[`Message::exp`]).
    ///
    /// A wrong version costs one message; a framing error ends the datagram and is
    /// returned (the messages before it were handled), as in the C receiver (§4).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        peer: &P,
        datagram: &[u8],
        mut deliver: impl FnMut(&Message<'_>),
    ) -> Result<(), wire::Error> {
        for m in Messages::new(datagram) {
            match m {
                Ok(m) => {
                    if self.handle_message(now, peer, &m) == Verdict::Data {
                        deliver(&m);
                    }
                }
                Err(wire::Error::BadVersion(_)) => self.stats.rx_bad_version += 1,
                Err(e) => {
                    self.stats.rx_malformed += 1;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The receiver state machine for one message from `peer` (sync-modes.md §2.3).
    pub fn handle_message(&mut self, now: Instant, peer: &P, msg: &Message<'_>) -> Verdict {
        let seq = Seq(msg.header.seq);
        let flags = msg.header.flags;
        let p = self.peer_index(peer, now);
        let hello = flags.contains(Flags::HELLO);
        // Step 1: the HELLO bits are looked at before anything else, even on a message
        // that turns out to be bad.
        if hello {
            self.say_hello_back = true;
        }
        if flags.contains(Flags::HELLO_BACK) {
            self.hello_done = true;
        }
        let rx = &mut self.peers[p];
        let restarted = hello && (!rx.in_hello || rx.last.is_some_and(|l| !seq.after(l)));
        rx.in_hello = hello;
        if restarted {
            // A new sequence space: what we tracked of the old one (and an ACK we still
            // owed it) no longer means anything. Unlike C, HELLO messages after this one
            // are checked like any other (see the module documentation).
            rx.last = None;
            rx.ack_from = None;
            rx.window = i64::from(self.config.ack_window);
            self.events
                .push_back(Event::PeerRestarted { peer: peer.clone() });
        }
        // Step 2: sequence check against the sender's own space.
        let Some(last) = self.peers[p].last else {
            return self.accept_in_order(p, seq, msg, now);
        };
        let expected = last.next();
        if seq == expected {
            self.accept_in_order(p, seq, msg, now)
        } else if seq.after(expected) {
            let v = self.digest(p, msg, now);
            if v == Verdict::Bad {
                return v;
            }
            // The C "lost" counter adds seq - last + 1: two more than really missing.
            self.stats.rx_lost += u64::from(seq.distance(last) as u32).wrapping_add(1);
            if let Some(from) = self.peers[p].ack_from {
                self.queue_ack(from, last, Flags::ACK);
            }
            self.queue_ack(expected, seq - 1, Flags::NACK);
            let rx = &mut self.peers[p];
            rx.window = i64::from(self.config.ack_window) - 1;
            rx.ack_from = Some(seq);
            rx.last = Some(seq);
            v
        } else {
            self.stats.rx_before += 1;
            Verdict::Dropped
        }
    }

    /// Step 4 + 5 for a message taken in order (or without checks): process it, count it
    /// in the ACK window, remember its seq.
    fn accept_in_order(&mut self, p: usize, seq: Seq, msg: &Message<'_>, now: Instant) -> Verdict {
        let v = self.digest(p, msg, now);
        if v == Verdict::Bad {
            return v;
        }
        let window = self.config.ack_window;
        let rx = &mut self.peers[p];
        let from = *rx.ack_from.get_or_insert(seq);
        rx.last = Some(seq);
        rx.window -= 1;
        if rx.window <= 0 {
            rx.window = i64::from(window);
            rx.ack_from = None;
            self.queue_ack(from, seq, Flags::ACK);
        }
        v
    }

    /// Step 4: what the message does to our queues.
    fn digest(&mut self, p: usize, msg: &Message<'_>, now: Instant) -> Verdict {
        match msg.kind() {
            Kind::Data(_) => Verdict::Data,
            Kind::Ack(r) | Kind::Nack(r) if Seq(r.to).before(Seq(r.from)) => self.bad(),
            Kind::Ack(r) => {
                self.on_ack(p, Seq(r.from), Seq(r.to), now);
                Verdict::Control
            }
            Kind::Nack(r) => {
                self.on_nack(Seq(r.from), Seq(r.to));
                Verdict::Control
            }
            Kind::Resync => {
                let peer = self.peers[p].peer.clone();
                self.events.push_back(Event::ResyncRequested { peer });
                Verdict::Control
            }
            Kind::Alive => Verdict::Control,
            Kind::Bad => self.bad(),
        }
    }

    fn bad(&mut self) -> Verdict {
        self.stats.rx_bad += 1;
        Verdict::Bad
    }

    /// Marks the entries in `[from, to]` as acknowledged by peer `p` and releases those
    /// that every live peer they wait for has acknowledged.
    fn on_ack(&mut self, p: usize, from: Seq, to: Seq, now: Instant) {
        let rx = &mut self.peers[p];
        if rx.acked_to.is_none_or(|t| to.after(t)) {
            rx.acked_to = Some(to);
        }
        let live = self.live_peers(now);
        let done = self.resend.ack(peer_bit(p), from, to, live);
        self.release_kept(done, Release::Acked);
    }

    fn release_kept(&mut self, kept: Vec<Kept<K>>, reason: Release) {
        for what in kept {
            if let Kept::Data(key) = what {
                self.release(key, reason);
            }
        }
    }

    /// Peers heard from within `peer_timeout`, with their index.
    fn live(&self, now: Instant) -> impl Iterator<Item = (usize, &Rx<P>)> {
        let timeout = self.config.peer_timeout;
        self.peers
            .iter()
            .enumerate()
            .filter(move |(_, r)| now.saturating_duration_since(r.heard) < timeout)
    }

    /// [`Self::live`] as a bit set.
    fn live_peers(&self, now: Instant) -> u64 {
        self.live(now).fold(0, |m, (i, _)| m | peer_bit(i))
    }

    /// A peer fell silent: release what only it still had to acknowledge.
    fn sweep_silent_peers(&mut self, now: Instant) {
        let live = self.live_peers(now);
        if live == self.live_mask {
            return;
        }
        self.live_mask = live;
        let done = self.resend.sweep(live);
        self.release_kept(done, Release::Acked);
    }

    /// Moves the NACKed entries back to the transmit queue; they are re-serialised from
    /// their current state with new sequence numbers (§2.4).
    fn on_nack(&mut self, from: Seq, to: Seq) {
        for what in self.resend.nack(from, to) {
            self.requeue(what);
        }
    }

    /// A resend-queue entry goes back to the transmit queue, to leave with a new seq.
    fn requeue(&mut self, what: Kept<K>) {
        match what {
            Kept::Data(key) => {
                self.loc.insert(key.clone(), Loc::Tx);
                self.tx.push_back(TxItem::Data { key, resent: true });
            }
            Kept::Ctl(ctl) => self.tx.push_back(TxItem::Ctl { ctl, resent: true }),
        }
    }

    /// Sends again what a live peer skipped (the retransmission timeout, module
    /// documentation).
    fn retransmit_overdue(&mut self, now: Instant) {
        let acked_to: Vec<(u64, Seq)> = self
            .live(now)
            .filter_map(|(i, r)| Some((peer_bit(i), r.acked_to?)))
            .collect();
        let rto = self.config.retransmit_timeout;
        for what in self.resend.overdue(&acked_to, now, rto) {
            self.stats.data_overdue += u64::from(matches!(what, Kept::Data(_)));
            self.requeue(what);
        }
    }

    fn peer_index(&mut self, peer: &P, now: Instant) -> usize {
        if let Some(i) = self.peers.iter().position(|r| r.peer == *peer) {
            self.peers[i].heard = now;
            return i;
        }
        self.peers.push(Rx {
            peer: peer.clone(),
            last: None,
            ack_from: None,
            window: i64::from(self.config.ack_window),
            in_hello: false,
            heard: now,
            acked_to: None,
        });
        self.peers.len() - 1
    }
}

/// `msg` with its flags replaced by `flags` (data messages may only carry HELLO bits).
fn with_flags(msg: Outgoing<'_>, flags: Flags) -> Outgoing<'_> {
    match msg {
        Outgoing::Ct { msg_type, repr, .. } => Outgoing::Ct {
            msg_type,
            flags,
            repr,
        },
        Outgoing::Exp { msg_type, repr, .. } => Outgoing::Exp {
            msg_type,
            flags,
            repr,
        },
        Outgoing::Control { flags: f, range } => Outgoing::Control {
            flags: f | flags,
            range,
        },
    }
}
