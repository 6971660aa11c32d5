//! NOTRACK, the best-effort sync mode (sync-modes.md §4, §5.1–5.3), as a sans-IO state
//! machine.
//!
//! Data goes out once: no ACK, no NACK, no retransmission, sequence gaps only counted.
//! A RESYNC asks the peer for everything; an ALIVE goes out one second after the last
//! transmit run. Two options change where data comes from and where it goes:
//!
//! * `DisableInternalCache` (§5.2): no internal cache, so an event cannot be looked up
//!   later. The caller hands the message itself to [`Notrack::queue_direct`], which
//!   serialises it at once (taking its sequence number at event time, wire-protocol.md
//!   §5) into the link buffer. That buffer is flushed only by the next transmit run,
//!   normally the next ALIVE, so events wait up to a second (notrack-bypass-udp.pcap:
//!   one datagram "CT_NEW + ALIVE").
//! * `DisableExternalCache` (§5.3): received data is not delivered for the external
//!   cache but turned into [`Event::Inject`], a kernel operation the caller performs.
//!
//! Over TCP the channel layer queues datagrams while the connection is down
//! (notrack-tcp.pcap); that buffering is not this module's business.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::ftfw::{Source, Transmit, Verdict};
use super::seq::Seq;
use super::timer::{Timer, TimerTable};
use super::{Stats, is_del, track_seq, without_flags};
use crate::wire::{
    self, CtRepr, Datagram, ExpRepr, Flags, Kind, Message, Messages, MsgType, Outgoing, SeqCounter,
};

pub use super::alarm::Release;

/// NOTRACK parameters (sync-modes.md §4, §5; defaults §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Link buffer size (see [`wire::Transport::buffer_size`]).
    pub link_buffer: usize,
    /// The ALIVE timer; hard-coded to 1 s in C, configurable here only for tests.
    pub alive_interval: Duration,
    /// `StartupResync on`: queue one RESYNC at start-up (§5.1).
    pub startup_resync: bool,
    /// `DisableInternalCache on`: events go out through [`Notrack::queue_direct`] (§5.2).
    pub disable_internal_cache: bool,
    /// `DisableExternalCache on`: received data becomes [`Event::Inject`] (§5.3).
    pub disable_external_cache: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            link_buffer: 1472,
            alive_interval: Duration::from_secs(1),
            startup_resync: false,
            disable_internal_cache: false,
            disable_external_cache: false,
        }
    }
}

/// The kernel operation for one received message under `DisableExternalCache` (§5.3).
/// The caller applies the fallbacks of the C daemon, listed per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectOp {
    /// CT_NEW: create; on EEXIST delete and create once more. EXP_NEW likewise.
    Create,
    /// CT_UPD: update; on ENOENT create; on any other error delete and create.
    /// EXP_UPD: as [`InjectOp::Create`] (expectations cannot be updated).
    Update,
    /// CT_DEL / EXP_DEL: delete, ENOENT ignored.
    Delete,
}

/// The object of an [`Event::Inject`], decoded from the message. Its timeout is the
/// message's NTA_TIMEOUT, used as is (§5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A conntrack.
    Ct(CtRepr),
    /// An expectation.
    Exp(ExpRepr),
}

/// Something the caller must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<K, P> {
    /// A peer sent RESYNC: queue every internal-cache object with
    /// [`Notrack::queue_item`] or, with `DisableInternalCache`, dump the kernel table and
    /// pass every entry as CT_NEW to [`Notrack::queue_direct`] (§4, §5.2).
    ResyncRequested {
        /// The requester.
        peer: P,
    },
    /// `DisableExternalCache`: perform `op` on `payload` in the kernel (§5.3).
    Inject {
        /// The sender.
        peer: P,
        /// What to do.
        op: InjectOp,
        /// On what (boxed: a conntrack is a few hundred bytes, the other events a few;
        /// one allocation is small next to the netlink round trip it feeds).
        payload: Box<Payload>,
    },
    /// `item` left the transmit queue: sent as a DEL (the DEAD object can go, §4: sent
    /// once, never acknowledged), vanished, or unsendable.
    Released {
        /// The item.
        item: K,
        /// Why.
        reason: Release,
    },
}

#[derive(Debug, Clone)]
enum TxItem<K> {
    Data(K),
    Ctl(Flags),
}

/// One NOTRACK endpoint. `K` keys the internal cache, `P` identifies a peer.
#[derive(Debug)]
pub struct Notrack<K, P> {
    config: Config,
    timers: TimerTable,
    /// Items and control messages to send, FIFO; a data key at most once (§1 collapse).
    tx: VecDeque<TxItem<K>>,
    queued: HashSet<K, ahash::RandomState>,
    /// `DisableInternalCache`: the link buffer holding messages serialised at event time,
    /// `pending_msgs` of them, waiting for the next transmit run.
    pending: Vec<u8>,
    pending_used: usize,
    pending_msgs: usize,
    /// Link buffers that filled up under `queue_direct`; the C daemon sends those at once.
    ready: VecDeque<(Vec<u8>, usize)>,
    peers: Vec<(P, Seq)>,
    events: VecDeque<Event<K, P>>,
    stats: Stats,
    bad_payload: u64,
}

impl<K, P> Notrack<K, P>
where
    K: Clone + Eq + Hash,
    P: Clone + Eq,
{
    /// A freshly started endpoint: the alive timer armed and, with `startup_resync`, a
    /// RESYNC queued (sent by the first `poll_transmit`, as both nodes of
    /// notrack-tcp.pcap did).
    pub fn new(config: Config, now: Instant) -> Self {
        let mut ep = Self {
            config,
            timers: TimerTable::default(),
            tx: VecDeque::new(),
            queued: HashSet::default(),
            pending: Vec::new(),
            pending_used: 0,
            pending_msgs: 0,
            ready: VecDeque::new(),
            peers: Vec::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            bad_payload: 0,
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

    /// Received data messages whose payload could not be decoded for injection.
    pub const fn bad_payload(&self) -> u64 {
        self.bad_payload
    }

    /// Messages waiting for transmission (queued items and control messages).
    pub fn tx_len(&self) -> usize {
        self.tx.len()
    }

    /// Messages serialised by [`Self::queue_direct`] and not yet sent.
    pub fn direct_pending(&self) -> usize {
        self.pending_msgs + self.ready.iter().map(|(_, n)| n).sum::<usize>()
    }

    // ---- local input ----------------------------------------------------------------

    /// A local event changed `key`: send its current state with the next transmit run.
    pub fn queue_item(&mut self, key: K) {
        if self.queued.insert(key.clone()) {
            self.tx.push_back(TxItem::Data(key));
        }
    }

    /// `DisableInternalCache`: serialise `msg` now, with the next number of `seq`, into the
    /// link buffer (§5.2). It leaves with the next transmit run (usually the next ALIVE);
    /// a full buffer is sent first, as the C link does. Flags are cleared.
    pub fn queue_direct(
        &mut self,
        seq: &mut SeqCounter,
        msg: &Outgoing<'_>,
    ) -> Result<u32, wire::Error> {
        let msg = without_flags(*msg);
        let size = self.config.link_buffer;
        self.pending.resize(size, 0);
        let r = loop {
            let used = self.pending_used;
            let mut d = Datagram::new(&mut self.pending[used..], size - used);
            match d.push(seq, &msg) {
                Ok(s) => {
                    self.pending_used = used + d.len();
                    break Ok(s);
                }
                // Behind what is buffered it cannot fit (a sub-datagram reports TooBig):
                // send the buffer, retry in an empty one.
                Err(wire::Error::Full | wire::Error::TooBig) if used > 0 => {
                    let full = self.pending[..used].to_vec();
                    self.ready.push_back((full, self.pending_msgs));
                    self.pending_msgs = 0;
                    self.pending_used = 0;
                }
                Err(e) => break Err(e),
            }
        };
        match r {
            Ok(_) => {
                self.pending_msgs += 1;
                self.stats.data_sent += 1;
            }
            Err(_) => self.stats.unsendable += 1,
        }
        r
    }

    /// Ask the peers for everything they have (`conntrackd -n`, `StartupResync`): one
    /// RESYNC control message (from = to = 0).
    pub fn request_resync(&mut self) {
        self.tx.push_back(TxItem::Ctl(Flags::RESYNC));
    }

    // ---- time -----------------------------------------------------------------------

    /// When [`Self::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_timeout()
    }

    /// The alive timer: one second without a transmit run queues an ALIVE (§4), which also
    /// flushes what `queue_direct` buffered.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timers.take_expired(Timer::Alive, now) {
            self.tx.push_back(TxItem::Ctl(Flags::ALIVE));
            self.timers
                .set(Timer::Alive, now + self.config.alive_interval);
        }
    }

    // ---- output ---------------------------------------------------------------------

    /// Writes the next datagram into `buf` (at least `link_buffer` bytes), or `None`.
    ///
    /// Link buffers that filled up under `queue_direct` go first. Otherwise, if anything
    /// is queued, a transmit run: the buffered direct messages, then the queue in FIFO
    /// order (data typed by status at transmission time, §1; no flags), and the alive
    /// timer is re-armed. Call until `None`.
    pub fn poll_transmit<S: Source<K>>(
        &mut self,
        now: Instant,
        seq: &mut SeqCounter,
        source: &S,
        buf: &mut [u8],
    ) -> Option<Transmit> {
        if let Some((bytes, messages)) = self.ready.pop_front() {
            buf.get_mut(..bytes.len())?.copy_from_slice(&bytes);
            self.stats.datagrams_sent += 1;
            return Some(Transmit {
                size: bytes.len(),
                messages,
            });
        }
        if self.tx.is_empty() {
            return None;
        }
        let used = self.pending_used;
        buf.get_mut(..used)?.copy_from_slice(&self.pending[..used]);
        let mut messages = self.pending_msgs;
        self.pending_used = 0;
        self.pending_msgs = 0;
        let size = self.config.link_buffer;
        let mut dgram = Datagram::new(&mut buf[used..], size.saturating_sub(used));
        while let Some(item) = self.tx.front().cloned() {
            let mut del = false;
            let pushed = match &item {
                TxItem::Data(key) => match source.message(key) {
                    Some(msg) => {
                        del = is_del(&msg);
                        dgram.push(seq, &without_flags(msg))
                    }
                    None => {
                        self.drop_front(key.clone(), Release::Vanished);
                        continue;
                    }
                },
                TxItem::Ctl(flags) => dgram.push(
                    seq,
                    &Outgoing::Control {
                        flags: *flags,
                        range: None,
                    },
                ),
            };
            match pushed {
                Ok(_) => {}
                Err(wire::Error::Full) => break,
                // It does not fit behind the direct messages: send those alone first.
                Err(wire::Error::TooBig) if used > 0 => break,
                Err(_) => {
                    self.stats.unsendable += 1;
                    if let TxItem::Data(key) = item {
                        self.drop_front(key, Release::Unsendable);
                    } else {
                        self.tx.pop_front();
                    }
                    continue;
                }
            }
            self.tx.pop_front();
            messages += 1;
            match item {
                TxItem::Data(key) => {
                    self.queued.remove(&key);
                    self.stats.data_sent += 1;
                    if del {
                        self.events.push_back(Event::Released {
                            item: key,
                            reason: Release::Deleted,
                        });
                    }
                }
                TxItem::Ctl(_) => self.stats.ctl_sent += 1,
            }
        }
        if messages == 0 {
            return None;
        }
        self.stats.datagrams_sent += 1;
        self.timers
            .set(Timer::Alive, now + self.config.alive_interval);
        Some(Transmit {
            size: used + dgram.len(),
            messages,
        })
    }

    fn drop_front(&mut self, key: K, reason: Release) {
        self.tx.pop_front();
        self.queued.remove(&key);
        self.events.push_back(Event::Released { item: key, reason });
    }

    /// The next event for the caller.
    pub fn poll_event(&mut self) -> Option<Event<K, P>> {
        self.events.pop_front()
    }

    // ---- input ----------------------------------------------------------------------

    /// Handles every message of a datagram from `peer`. Data goes to `deliver` (for the
    /// external cache), or with `DisableExternalCache` becomes [`Event::Inject`].
    /// Framing errors end the datagram as in FTFW.
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
                        if self.config.disable_external_cache {
                            self.inject(peer, &m);
                        } else {
                            deliver(&m);
                        }
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

    /// The NOTRACK receiver (§4, wire-protocol.md §3.1): sequence numbers only feed the
    /// statistics; data is applied; RESYNC raises [`Event::ResyncRequested`]; ALIVE is
    /// accepted; ACK, NACK and anything else are "bad header".
    pub fn handle_message(&mut self, _now: Instant, peer: &P, msg: &Message<'_>) -> Verdict {
        track_seq(&mut self.peers, &mut self.stats, peer, Seq(msg.header.seq));
        match msg.kind() {
            Kind::Data(_) => Verdict::Data,
            Kind::Resync => {
                self.events
                    .push_back(Event::ResyncRequested { peer: peer.clone() });
                Verdict::Control
            }
            Kind::Alive => Verdict::Control,
            Kind::Ack(_) | Kind::Nack(_) | Kind::Bad => {
                self.stats.rx_bad += 1;
                Verdict::Bad
            }
        }
    }

    fn inject(&mut self, peer: &P, m: &Message<'_>) {
        let ty = m.header.msg_type;
        let op = match ty {
            MsgType::CT_NEW | MsgType::EXP_NEW => InjectOp::Create,
            MsgType::CT_UPD | MsgType::EXP_UPD => InjectOp::Update,
            _ => InjectOp::Delete,
        };
        let payload = if ty.is_ct() {
            m.ct().map(Payload::Ct)
        } else {
            m.exp().map(Payload::Exp)
        };
        match payload {
            Ok(payload) => self.events.push_back(Event::Inject {
                peer: peer.clone(),
                op,
                payload: Box::new(payload),
            }),
            // Attribute errors drop only this message (wire-protocol.md §6.3).
            Err(_) => self.bad_payload += 1,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::sync::sim::Rng;
    use crate::sync::tests::{Items, ct, hex};
    use std::collections::HashMap;

    type Ep = Notrack<u32, u8>;

    fn drain(ep: &mut Ep, now: Instant, seq: &mut SeqCounter, src: &Items) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while let Some(t) = ep.poll_transmit(now, seq, src, &mut buf) {
            out.push(buf[..t.size].to_vec());
        }
        out
    }

    /// The CT reprs of every data message in a captured datagram.
    fn reprs(h: &str) -> Vec<CtRepr> {
        let b = hex(h);
        Messages::new(&b)
            .map(|m| m.unwrap())
            .filter(|m| m.header.msg_type.is_ct())
            .map(|m| m.ct().unwrap())
            .collect()
    }

    // notrack-tcp.pcap, node A (StartupResync on): RESYNC at start, ALIVE every second,
    // B's RESYNC answered with a 3-entry bulk, a later event alone, ALIVE 1 s after it.
    const A9: &str = "1a0200106b06ca810000000000000000";
    const A11: &str = "1a1000086b06ca82";
    const A13: &str = "1a1000086b06ca83";
    const A18: &str = "1a1000086b06ca84";
    const B20: &str = "1a0200106b06ca7e0000000000000000";
    const B22: &str = "1a1000086b06ca7f";
    const B24: &str = "1a1000086b06ca801a1000086b06ca81100000546b06ca82000c0000c000020ac6336414000800050000000e0005000206000000000800039c4000500005000403000000000800060000007c00080007000000090010001f0000000000000000000000001000006c6b06ca830024000120010db800000000000000000000000120010db800000000000000000000000200080005000000080005000206000000000800039c4101bb0005000403000000000800060000003d00080007000000000010001f0000000000000000000000001a1000086b06ca841a1000086b06ca851a1000086b06ca86";
    const A26: &str = "100000546b06ca85000c0000c000020ac6336414000800050000000e0005000206000000000800039c4000500005000403000000000800060000007000080007000000090010001f0000000000000000000000001000006c6b06ca860024000120010db800000000000000000000000120010db800000000000000000000000200080005000000080005000206000000000800039c4101bb0005000403000000000800060000001a00080007000000000010001f000000000000000000000000100000546b06ca87000c0000c0000228c63364280008000500000008000500020600000000080003a41000500005000403000000000800060000011200080007000000000010001f000000000000000000000000";
    const A28: &str = "100000546b06ca88000c0000c0000232c63364320008000500000008000500020600000000080003a7f800500005000403000000000800060000012c00080007000000000010001f000000000000000000000000";
    const A32: &str = "1a1000086b06ca89";

    #[test]
    fn test_capture_tcp_startup_resync() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let config = Config {
            link_buffer: 1460,
            startup_resync: true,
            ..Config::default()
        };
        let mut ep = Ep::new(config, t0);
        let mut src = Items::default();
        let mut seq = SeqCounter::new(1_795_607_169);
        assert_eq!(drain(&mut ep, t0, &mut seq, &src), vec![hex(A9)]);
        for (i, a) in [A11, A13, A18].into_iter().enumerate() {
            let now = t0 + s * (i as u32 + 1);
            assert_eq!(ep.poll_timeout(), Some(now));
            ep.handle_timeout(now);
            assert_eq!(drain(&mut ep, now, &mut seq, &src), vec![hex(a)]);
        }
        // B connects: its RESYNC, then its queued-up ALIVEs and bulk answer.
        let now = t0 + s * 3 + Duration::from_micros(348);
        let mut got = Vec::new();
        ep.handle_datagram(now, &2, &hex(B20), |_| unreachable!())
            .unwrap();
        ep.handle_datagram(now, &2, &hex(B22), |_| unreachable!())
            .unwrap();
        ep.handle_datagram(now, &2, &hex(B24), |m| got.push(m.ct().unwrap()))
            .unwrap();
        assert_eq!(got, reprs(B24));
        assert_eq!(ep.stats().rx_lost, 0);
        assert_eq!(ep.poll_event(), Some(Event::ResyncRequested { peer: 2 }));
        for (k, r) in reprs(A26).into_iter().enumerate() {
            src.0.insert(k as u32, (MsgType::CT_NEW, r));
            ep.queue_item(k as u32);
        }
        assert_eq!(drain(&mut ep, now, &mut seq, &src), vec![hex(A26)]);
        let now = now + Duration::from_millis(13);
        src.0.insert(9, (MsgType::CT_NEW, reprs(A28)[0]));
        ep.queue_item(9);
        assert_eq!(drain(&mut ep, now, &mut seq, &src), vec![hex(A28)]);
        // ALIVE one second after the last transmit run, not after the previous ALIVE.
        assert_eq!(ep.poll_timeout(), Some(now + s));
        ep.handle_timeout(now + s);
        assert_eq!(drain(&mut ep, now + s, &mut seq, &src), vec![hex(A32)]);
    }

    // notrack-bypass-udp.pcap, node A (DisableInternalCache + DisableExternalCache): an
    // event between two ALIVEs waits in the link buffer and leaves with the next ALIVE.
    const A3: &str = "1a1000086b06ca95";
    const A5: &str = "100000546b06ca96000c0000c000023cc633643c0008000500000008000500020600000000080003abe000500005000403000000000800060000012c00080007000000000010001f0000000000000000000000001a1000086b06ca97";
    const A7: &str = "1a1000086b06ca98";

    fn bypass() -> Config {
        Config {
            disable_internal_cache: true,
            disable_external_cache: true,
            ..Config::default()
        }
    }

    #[test]
    fn test_capture_bypass() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut ep = Ep::new(bypass(), t0);
        let src = Items::default();
        let mut seq = SeqCounter::new(1_795_607_189);
        ep.handle_timeout(t0 + s);
        assert_eq!(drain(&mut ep, t0 + s, &mut seq, &src), vec![hex(A3)]);
        let repr = reprs(A5)[0];
        let ev = Outgoing::Ct {
            msg_type: MsgType::CT_NEW,
            flags: Flags::NONE,
            repr: &repr,
        };
        // The event takes its sequence number now…
        assert_eq!(ep.queue_direct(&mut seq, &ev), Ok(1_795_607_190));
        let t1 = t0 + s + Duration::from_millis(310);
        assert!(drain(&mut ep, t1, &mut seq, &src).is_empty());
        assert_eq!(ep.direct_pending(), 1);
        // …and leaves with the ALIVE, in one datagram.
        assert_eq!(ep.poll_timeout(), Some(t0 + s * 2));
        ep.handle_timeout(t0 + s * 2);
        assert_eq!(drain(&mut ep, t0 + s * 2, &mut seq, &src), vec![hex(A5)]);
        ep.handle_timeout(t0 + s * 3);
        assert_eq!(drain(&mut ep, t0 + s * 3, &mut seq, &src), vec![hex(A7)]);

        // The peer (DisableExternalCache) injects it into its kernel instead of caching.
        let mut peer = Ep::new(bypass(), t0);
        peer.handle_datagram(t0, &1, &hex(A5), |_| unreachable!())
            .unwrap();
        assert_eq!(
            peer.poll_event(),
            Some(Event::Inject {
                peer: 1,
                op: InjectOp::Create,
                payload: Box::new(Payload::Ct(repr))
            })
        );
        assert_eq!(peer.poll_event(), None);
    }

    #[test]
    fn test_direct_overflow_and_inject_ops() {
        let t0 = Instant::now();
        let reprs: Vec<_> = (0..3).map(|k| ct(k, 0)).collect();
        let len = Outgoing::Ct {
            msg_type: MsgType::CT_NEW,
            flags: Flags::NONE,
            repr: &reprs[0],
        }
        .buffer_len();
        // A link buffer where two messages fit: the third flushes them.
        let mut ep = Ep::new(
            Config {
                link_buffer: 3 * len,
                ..bypass()
            },
            t0,
        );
        let src = Items::default();
        let mut seq = SeqCounter::new(0);
        let types = [MsgType::CT_NEW, MsgType::CT_UPD, MsgType::CT_DEL];
        for (r, t) in reprs.iter().zip(types) {
            let m = Outgoing::Ct {
                msg_type: t,
                flags: Flags::HELLO, // cleared: NOTRACK never sets flags on data
                repr: r,
            };
            ep.queue_direct(&mut seq, &m).unwrap();
        }
        let first = drain(&mut ep, t0, &mut seq, &src);
        assert_eq!(first.len(), 1);
        assert_eq!(Messages::new(&first[0]).count(), 2);
        assert_eq!(ep.direct_pending(), 1);
        ep.handle_timeout(t0 + Duration::from_secs(1));
        let second = drain(&mut ep, t0, &mut seq, &src);
        let seqs: Vec<_> = second
            .iter()
            .flat_map(|d| Messages::new(d).map(|m| m.unwrap().header.seq))
            .collect();
        assert_eq!(seqs, vec![2, 3]);
        // Direct message + ALIVE, and with a link too small for both: one each.
        let mut tiny = Ep::new(
            Config {
                link_buffer: len + 4,
                ..bypass()
            },
            t0,
        );
        tiny.queue_direct(
            &mut seq,
            &Outgoing::Ct {
                msg_type: MsgType::CT_NEW,
                flags: Flags::NONE,
                repr: &reprs[0],
            },
        )
        .unwrap();
        tiny.handle_timeout(t0 + Duration::from_secs(1));
        assert_eq!(drain(&mut tiny, t0, &mut seq, &src).len(), 2);

        // The receiver maps NEW/UPD/DEL to the kernel operations of §5.3.
        let mut rx = Ep::new(bypass(), t0);
        for d in first.iter().chain(&second) {
            rx.handle_datagram(t0, &1, d, |_| unreachable!()).unwrap();
        }
        let ops: Vec<_> = std::iter::from_fn(|| rx.poll_event())
            .map(|e| match e {
                Event::Inject { op, .. } => op,
                e => panic!("{e:?}"),
            })
            .collect();
        assert_eq!(
            ops,
            vec![InjectOp::Create, InjectOp::Update, InjectOp::Delete]
        );
    }

    #[test]
    fn test_receiver_rules() {
        let t0 = Instant::now();
        let mut ep = Ep::new(Config::default(), t0);
        let mut buf = [0u8; 256];
        let mut d = Datagram::new(&mut buf, 1472);
        let mut seq = SeqCounter::new(10);
        let r = wire::header::SeqRange { from: 1, to: 2 };
        for flags in [Flags::ACK, Flags::NACK, Flags::ALIVE] {
            d.push(
                &mut seq,
                &Outgoing::Control {
                    flags,
                    range: flags.has_range().then_some(r),
                },
            )
            .unwrap();
        }
        let repr = ct(1, 1);
        // FTFW's HELLO bits on data do not stop NOTRACK from applying it.
        d.push(
            &mut SeqCounter::new(20),
            &Outgoing::Ct {
                msg_type: MsgType::CT_UPD,
                flags: Flags::HELLO,
                repr: &repr,
            },
        )
        .unwrap();
        let mut n = 0;
        ep.handle_datagram(t0, &1, d.as_bytes(), |_| n += 1)
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(ep.stats().rx_bad, 2);
        // 10, 11, 12, then 20: 8 missing, counted as 20 - 12 + 1 = 9.
        assert_eq!(ep.stats().rx_lost, 9);
        assert_eq!(ep.poll_event(), None);
    }

    #[test]
    fn test_del_released_after_send() {
        let t0 = Instant::now();
        let mut ep = Ep::new(Config::default(), t0);
        let mut src = Items::default();
        src.0.insert(1, (MsgType::CT_DEL, ct(1, 0)));
        ep.queue_item(1);
        ep.queue_item(1);
        ep.queue_item(2); // not in the cache
        let out = drain(&mut ep, t0, &mut SeqCounter::new(0), &src);
        assert_eq!(Messages::new(&out[0]).count(), 1);
        let evs: Vec<_> = std::iter::from_fn(|| ep.poll_event()).collect();
        assert_eq!(
            evs,
            vec![
                Event::Released {
                    item: 1,
                    reason: Release::Deleted
                },
                Event::Released {
                    item: 2,
                    reason: Release::Vanished
                }
            ]
        );
    }

    /// Best effort over a lossy link: what is lost stays lost (no retransmission however
    /// long the pair runs), and a RESYNC from the receiver repairs it.
    #[test]
    fn test_lossy_link_resync_repairs() {
        const N: u32 = 2_000;
        let t0 = Instant::now();
        let mut rng = Rng::new(7);
        let mut a = Ep::new(Config::default(), t0);
        let mut b = Ep::new(Config::default(), t0);
        let mut src = Items::default();
        for k in 0..N {
            src.0.insert(k, (MsgType::CT_NEW, ct(k, 1)));
            a.queue_item(k);
        }
        let (mut sa, mut sb) = (SeqCounter::new(1000), SeqCounter::new(5000));
        let empty = Items::default();
        let mut ext: HashMap<u32, CtRepr> = HashMap::new();
        let mut buf = [0u8; 1500];
        let mut now = t0;
        let mut resyncs = 0;
        let mut missing_before_resync = 0;
        let mut answered = 0u64;
        for step in 0..40 {
            if step == 10 {
                missing_before_resync = N as usize - ext.len();
            }
            if step >= 10 && ext.len() < N as usize && step % 5 == 0 {
                b.request_resync();
                resyncs += 1;
            }
            // A → B, 20% loss.
            while let Some(t) = a.poll_transmit(now, &mut sa, &src, &mut buf) {
                if rng.chance(0.2) {
                    continue;
                }
                b.handle_datagram(now, &1, &buf[..t.size], |m| {
                    let r = m.ct().unwrap();
                    ext.insert(key_of(&r), r);
                })
                .unwrap();
            }
            // B → A, 20% loss too (a lost RESYNC is simply asked again).
            while let Some(t) = b.poll_transmit(now, &mut sb, &empty, &mut buf) {
                if rng.chance(0.2) {
                    continue;
                }
                a.handle_datagram(now, &2, &buf[..t.size], |_| {}).unwrap();
            }
            while let Some(ev) = a.poll_event() {
                if let Event::ResyncRequested { .. } = ev {
                    answered += 1;
                    (0..N).for_each(|k| a.queue_item(k));
                }
            }
            now = a.poll_timeout().unwrap().min(b.poll_timeout().unwrap());
            a.handle_timeout(now);
            b.handle_timeout(now);
        }
        println!(
            "NOTRACK 20% loss: {missing_before_resync}/{N} missing after 10 steps without resync, \
             {resyncs} resync requests, {} missing at the end, lost counted by B {}",
            N as usize - ext.len(),
            b.stats().rx_lost
        );
        assert!(missing_before_resync > 0, "loss must show");
        assert_eq!(ext.len(), N as usize, "resync repairs");
        // Nothing but the first send and the bulk answers: no retransmission.
        assert_eq!(a.stats().data_sent, u64::from(N) * (1 + answered));
        assert!(b.stats().rx_lost > 0);
    }

    fn key_of(r: &CtRepr) -> u32 {
        match r.addrs {
            Some(wire::tuple::Addrs::V4 { src, .. }) => u32::from(src) & 0x00ff_ffff,
            _ => unreachable!(),
        }
    }
}
