//! ALARM, the periodic-refresh sync mode (sync-modes.md §3), as a sans-IO state machine.
//!
//! Every owned (internal-cache) item is re-sent about every `RefreshTime`; every foreign
//! (external-cache) item expires `CacheTimeout` after its last NEW/UPD. No control
//! messages are sent or understood.
//!
//! # Timers without one alarm per item
//!
//! The C daemon arms one alarm per cache object (a sorted tree of millions of timers).
//! Here both kinds of deadline live in a hashed timing [`Wheel`]: one slot per 200 ms
//! tick (the granularity of the C jitter), enough slots to cover the longest delay, so
//! scheduling, cancelling and firing cost amortised O(1) per item and period. The refresh
//! delays are drawn exactly as in C (`random() % RefreshTime + 1` s plus 0.2…1.0 s), so the
//! observable behaviour is the same: each item is re-sent after 1.2 … RefreshTime + 1 s,
//! and because the draw is uniform the load spreads over all ticks instead of bursting.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::ftfw::{Source, Transmit, Verdict};
use super::seq::Seq;
use super::{Stats, is_del, track_seq, without_flags};
use crate::wire::{self, Datagram, Flags, Message, Messages, SeqCounter};

/// ALARM parameters (sync-modes.md §3, defaults §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// `RefreshTime` (whole seconds in the C grammar): upper bound of the random refresh
    /// delay.
    pub refresh_time: Duration,
    /// `CacheTimeout`: a foreign item not refreshed for this long is removed.
    pub cache_timeout: Duration,
    /// Link buffer size (see [`wire::Transport::buffer_size`]).
    pub link_buffer: usize,
    /// Timer granularity. 200 ms is the step of the C jitter, so nothing is lost.
    pub tick: Duration,
    /// Seed of the jitter generator (the C daemon uses `random()`); any value works,
    /// tests pin it for determinism.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            refresh_time: Duration::from_secs(60),
            cache_timeout: Duration::from_secs(180),
            link_buffer: 1472,
            tick: Duration::from_millis(200),
            seed: 0x5eed,
        }
    }
}

/// Why an owned item left the endpoint (see [`Event::Released`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Its `*_DEL` went out (once, unreliably, §3): the DEAD object can be dropped.
    Deleted,
    /// The [`Source`] no longer had it when it was due.
    Vanished,
    /// It could not be encoded.
    Unsendable,
}

/// Something the caller must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<K, X> {
    /// `item` is no longer refreshed or queued.
    Released {
        /// The owned item.
        item: K,
        /// Why.
        reason: Release,
    },
    /// A foreign item was not refreshed for `CacheTimeout`: remove it from the external
    /// cache (the C external-cache expiry timer, §3).
    Expired {
        /// The foreign item.
        item: X,
    },
}

/// A hashed timing wheel of keyed deadlines at `tick` granularity.
///
/// Slots cover the longest delay normally scheduled, so a slot usually holds one tick's
/// items; a longer deadline stays in its slot for later rounds. Rescheduling leaves the old slot entry behind; it is recognised
/// as stale when its slot is swept (the map says the key is due at another tick), which
/// keeps every operation O(1) without searching a slot.
#[derive(Debug)]
pub struct Wheel<T> {
    epoch: Instant,
    tick: Duration,
    slots: Vec<Vec<(T, u64)>>,
    /// The tick each live key is due at.
    due: HashMap<T, u64, ahash::RandomState>,
    /// First tick not swept yet.
    cursor: u64,
}

impl<T: Clone + Eq + Hash> Wheel<T> {
    /// A wheel starting at `epoch` able to hold deadlines up to `horizon` ahead.
    pub fn new(epoch: Instant, tick: Duration, horizon: Duration) -> Self {
        let tick = tick.max(Duration::from_millis(1));
        let n = (horizon.as_nanos() / tick.as_nanos()) as usize + 2;
        Self {
            epoch,
            tick,
            slots: (0..n).map(|_| Vec::new()).collect(),
            due: HashMap::default(),
            cursor: 0,
        }
    }

    /// Ticks elapsed from the epoch to `at`, rounded up (a deadline never fires early).
    fn tick_ceil(&self, at: Instant) -> u64 {
        let ns = at.saturating_duration_since(self.epoch).as_nanos();
        ns.div_ceil(self.tick.as_nanos()) as u64
    }

    /// Ticks elapsed from the epoch to `now`, rounded down (the last tick now due).
    fn tick_floor(&self, now: Instant) -> u64 {
        let ns = now.saturating_duration_since(self.epoch).as_nanos();
        (ns / self.tick.as_nanos()) as u64
    }

    /// Makes `key` due at `at` (replacing its previous deadline); past deadlines fire at
    /// the next sweep. A deadline beyond the horizon (or a cursor lagging after an idle
    /// spell) waits in its slot for the right round.
    pub fn schedule(&mut self, key: T, at: Instant) {
        let n = self.slots.len() as u64;
        let t = self.tick_ceil(at).max(self.cursor);
        self.due.insert(key.clone(), t);
        self.slots[(t % n) as usize].push((key, t));
    }

    /// Forgets `key`'s deadline.
    pub fn cancel(&mut self, key: &T) -> bool {
        self.due.remove(key).is_some()
    }

    /// True if `key` has a deadline.
    pub fn contains(&self, key: &T) -> bool {
        self.due.contains_key(key)
    }

    /// Keys with a deadline.
    pub fn len(&self) -> usize {
        self.due.len()
    }

    /// True if no key has a deadline.
    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }

    /// Removes every key due at or before `now` and hands it to `fire`.
    pub fn expire(&mut self, now: Instant, mut fire: impl FnMut(T)) {
        let last = self.tick_floor(now);
        let n = self.slots.len() as u64;
        while self.cursor <= last {
            if self.due.is_empty() {
                // Nothing live: skip the empty stretch at once (a long idle sleep).
                self.slots.iter_mut().for_each(Vec::clear);
                self.cursor = last + 1;
                break;
            }
            let t = self.cursor;
            let i = (t % n) as usize;
            let mut later = Vec::new();
            for (key, at) in std::mem::take(&mut self.slots[i]) {
                if self.due.get(&key) != Some(&at) {
                    continue; // stale: rescheduled or cancelled since
                }
                if at <= t {
                    self.due.remove(&key);
                    fire(key);
                } else {
                    later.push((key, at)); // a later round of the wheel
                }
            }
            self.slots[i] = later;
            self.cursor += 1;
        }
    }

    /// The start of the first tick holding a deadline (stale entries may make it early:
    /// a spurious wakeup, never a missed one).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.due.is_empty() {
            return None;
        }
        let n = self.slots.len() as u64;
        (self.cursor..self.cursor + n)
            .find(|t| !self.slots[(t % n) as usize].is_empty())
            .map(|t| self.instant_of(t))
    }

    /// When `key` is due, if it has a deadline (rounded up to its tick).
    pub fn deadline(&self, key: &T) -> Option<Instant> {
        self.due.get(key).map(|&t| self.instant_of(t))
    }

    fn instant_of(&self, tick: u64) -> Instant {
        let ns = u64::try_from(self.tick.as_nanos()).unwrap_or(u64::MAX);
        self.epoch + Duration::from_nanos(ns.saturating_mul(tick))
    }
}

/// splitmix64: the jitter source (the C daemon uses libc `random()`; only the
/// distribution matters).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// One ALARM endpoint. `K` keys the internal cache, `X` the external cache, `P` a peer.
#[derive(Debug)]
pub struct Alarm<K, X, P> {
    config: Config,
    refresh: Wheel<K>,
    expiry: Wheel<X>,
    /// Items to send, FIFO; each at most once (`queued`), the tx-queue collapse of §1.
    tx: VecDeque<K>,
    queued: HashSet<K, ahash::RandomState>,
    /// Last sequence number per sender, for the "lost"/"before" statistics only.
    peers: Vec<(P, Seq)>,
    rng: Rng,
    events: VecDeque<Event<K, X>>,
    stats: Stats,
}

impl<K, X, P> Alarm<K, X, P>
where
    K: Clone + Eq + Hash,
    X: Clone + Eq + Hash,
    P: Clone + Eq,
{
    /// A fresh endpoint. Unlike FTFW and NOTRACK there is no timer until an item exists.
    pub fn new(config: Config, now: Instant) -> Self {
        // Longest refresh delay: RefreshTime + 1 s (whole seconds) + 1 s of jitter.
        let secs = config.refresh_time.as_secs().max(1);
        let horizon = Duration::from_secs(secs + 2);
        Self {
            config,
            refresh: Wheel::new(now, config.tick, horizon),
            expiry: Wheel::new(now, config.tick, config.cache_timeout + config.tick),
            tx: VecDeque::new(),
            queued: HashSet::default(),
            peers: Vec::new(),
            rng: Rng(config.seed),
            events: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// The parameters.
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// Counters.
    pub const fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Owned items being refreshed.
    pub fn owned_len(&self) -> usize {
        self.refresh.len()
    }

    /// Foreign items waiting to expire.
    pub fn foreign_len(&self) -> usize {
        self.expiry.len()
    }

    /// Items waiting for transmission.
    pub fn tx_len(&self) -> usize {
        self.tx.len()
    }

    /// The C refresh delay (§3): `random() % RefreshTime + 1` seconds plus
    /// `(random() % 5 + 1) × 200000 − 1` µs.
    fn refresh_delay(&mut self) -> Duration {
        let r = self.config.refresh_time.as_secs().max(1);
        let secs = self.rng.next_u64() % r + 1;
        let us = (self.rng.next_u64() % 5 + 1) * 200_000 - 1;
        Duration::from_secs(secs) + Duration::from_micros(us)
    }

    // ---- local input ----------------------------------------------------------------

    /// A local event changed `key` (created, updated or destroyed): send its current state
    /// now and re-arm its refresh (the C daemon re-arms on every update, §3).
    pub fn queue_item(&mut self, now: Instant, key: K) {
        self.track_item(now, key.clone());
        self.enqueue(key);
    }

    /// Starts refreshing `key` without sending it now (items loaded by the start-up dump;
    /// they go out at their first refresh).
    pub fn track_item(&mut self, now: Instant, key: K) {
        let at = now + self.refresh_delay();
        self.refresh.schedule(key, at);
    }

    /// Stops refreshing `key` (it left the internal cache without a DEL to send).
    pub fn forget_item(&mut self, key: &K) {
        self.refresh.cancel(key);
    }

    fn enqueue(&mut self, key: K) {
        if self.queued.insert(key.clone()) {
            self.tx.push_back(key);
        }
    }

    // ---- foreign items --------------------------------------------------------------

    /// The caller applied a NEW/UPD for foreign item `key`: it expires `CacheTimeout`
    /// from `now` unless refreshed again.
    pub fn refresh_foreign(&mut self, now: Instant, key: X) {
        self.expiry.schedule(key, now + self.config.cache_timeout);
    }

    /// When foreign item `key` expires (the ` [expires in Ns]` of `conntrackd -e`, §3).
    pub fn foreign_expires(&self, key: &X) -> Option<Instant> {
        self.expiry.deadline(key)
    }

    /// The caller applied a DEL (or flushed) foreign item `key`: no expiry.
    pub fn forget_foreign(&mut self, key: &X) {
        self.expiry.cancel(key);
    }

    // ---- time -----------------------------------------------------------------------

    /// When [`Self::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.refresh.next_deadline(), self.expiry.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Queues every owned item whose refresh is due (re-arming it with a fresh random
    /// delay) and reports every foreign item that expired.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        self.refresh.expire(now, |k| due.push(k));
        for key in due {
            self.track_item(now, key.clone());
            self.enqueue(key);
        }
        let events = &mut self.events;
        self.expiry
            .expire(now, |item| events.push_back(Event::Expired { item }));
    }

    // ---- output ---------------------------------------------------------------------

    /// Writes the next datagram into `buf`, or `None` when nothing is queued. Messages
    /// carry no flags; the type is the item's status at transmission time (§1), so a
    /// never-updated item is refreshed as CT_NEW, as captured in `alarm-udp.pcap`.
    pub fn poll_transmit<S: Source<K>>(
        &mut self,
        _now: Instant,
        seq: &mut SeqCounter,
        source: &S,
        buf: &mut [u8],
    ) -> Option<Transmit> {
        let mut dgram = Datagram::new(buf, self.config.link_buffer);
        let mut messages = 0;
        while let Some(key) = self.tx.front().cloned() {
            let Some(msg) = source.message(&key) else {
                self.drop_front(key, Release::Vanished);
                continue;
            };
            let msg = without_flags(msg);
            match dgram.push(seq, &msg) {
                Ok(_) => {}
                Err(wire::Error::Full) => break,
                Err(_) => {
                    self.stats.unsendable += 1;
                    self.drop_front(key, Release::Unsendable);
                    continue;
                }
            }
            self.tx.pop_front();
            self.queued.remove(&key);
            messages += 1;
            self.stats.data_sent += 1;
            if is_del(&msg) {
                // DEAD objects: the DEL goes out once, never refreshed (§3).
                self.refresh.cancel(&key);
                self.events.push_back(Event::Released {
                    item: key,
                    reason: Release::Deleted,
                });
            }
        }
        if messages == 0 {
            return None;
        }
        self.stats.datagrams_sent += 1;
        Some(Transmit {
            size: dgram.len(),
            messages,
        })
    }

    fn drop_front(&mut self, key: K, reason: Release) {
        self.tx.pop_front();
        self.queued.remove(&key);
        self.refresh.cancel(&key);
        self.events.push_back(Event::Released { item: key, reason });
    }

    /// The next event for the caller.
    pub fn poll_event(&mut self) -> Option<Event<K, X>> {
        self.events.pop_front()
    }

    // ---- input ----------------------------------------------------------------------

    /// Handles every message of a datagram from `peer`, calling `deliver` for each data
    /// message to apply to the external cache (then [`Self::refresh_foreign`] or
    /// [`Self::forget_foreign`]). Framing errors end the datagram as in FTFW.
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

    /// The ALARM receiver (§3, wire-protocol.md §3.1): any flag bit set → ignored
    /// ([`Verdict::Dropped`], so FTFW HELLO data too); a non-data type → "bad type";
    /// everything else is data, applied whatever its sequence number (gaps and old
    /// numbers only feed the statistics).
    pub fn handle_message(&mut self, _now: Instant, peer: &P, msg: &Message<'_>) -> Verdict {
        if msg.header.flags != Flags::NONE {
            return Verdict::Dropped;
        }
        track_seq(&mut self.peers, &mut self.stats, peer, Seq(msg.header.seq));
        if !msg.header.msg_type.is_data() {
            self.stats.rx_bad += 1;
            return Verdict::Bad;
        }
        Verdict::Data
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::sync::tests::{Items, ct, hex};
    use crate::wire::{CtRepr, MsgType, Outgoing};

    type Ep = Alarm<u32, u32, u8>;

    fn cfg(refresh: u64, cache_timeout: u64) -> Config {
        Config {
            refresh_time: Duration::from_secs(refresh),
            cache_timeout: Duration::from_secs(cache_timeout),
            ..Config::default()
        }
    }

    fn drain(ep: &mut Ep, now: Instant, seq: &mut SeqCounter, src: &Items) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while let Some(t) = ep.poll_transmit(now, seq, src, &mut buf) {
            out.push(buf[..t.size].to_vec());
        }
        out
    }

    /// alarm-udp.pcap (RefreshTime 5): B's zone-5 entry 192.0.2.15:40002 → :8080 sent as
    /// CT_NEW (#2, seq 1795607144), refreshed 2.8 s later, again as CT_NEW (#10, seq
    /// 1795607149): identical bytes except the sequence number, no control message in
    /// between. Replayed byte for byte.
    const B2: &str = "1000005c6b06ca68000c0000c000020fc633641900080005000000080005000206000000000800039c421f900005000403000000000800060000000500080007000000000010001f0000000000000000000000000006002000050000";
    const B10: &str = "1000005c6b06ca6d000c0000c000020fc633641900080005000000080005000206000000000800039c421f900005000403000000000800060000000500080007000000000010001f0000000000000000000000000006002000050000";

    fn captured_item() -> CtRepr {
        let bytes = hex(B2);
        let m = Messages::new(&bytes).next().unwrap().unwrap();
        m.ct().unwrap()
    }

    #[test]
    fn test_capture_refresh_replay() {
        let t0 = Instant::now();
        let mut ep = Ep::new(cfg(5, 15), t0);
        let mut src = Items::default();
        src.0.insert(7, (MsgType::CT_NEW, captured_item()));
        let mut seq = SeqCounter::new(1_795_607_144);
        ep.queue_item(t0, 7);
        assert_eq!(drain(&mut ep, t0, &mut seq, &src), vec![hex(B2)]);
        // Four other messages went out in between in the capture.
        let mut seq = SeqCounter::new(1_795_607_149);
        let mut now = t0;
        let mut sent = Vec::new();
        while sent.is_empty() {
            now = ep.poll_timeout().unwrap();
            ep.handle_timeout(now);
            sent = drain(&mut ep, now, &mut seq, &src);
        }
        assert_eq!(sent, vec![hex(B10)]);
        let gap = now - t0;
        assert!(gap >= Duration::from_millis(1200) && gap <= Duration::from_secs(6));
    }

    #[test]
    fn test_capture_receive() {
        // Every message of the capture is flag-free data: all delivered, none answered.
        let t0 = Instant::now();
        let mut ep = Ep::new(cfg(5, 15), t0);
        let mut got = 0;
        for h in [B2, B10] {
            ep.handle_datagram(t0, &2, &hex(h), |m| {
                assert_eq!(m.ct().unwrap(), captured_item());
                got += 1;
            })
            .unwrap();
        }
        assert_eq!(got, 2);
        // seq 1795607144 then 1795607149: a gap of 4 counts 149 - 144 + 1 = 6 (C quirk).
        assert_eq!(ep.stats().rx_lost, 6);
        let mut buf = [0u8; 256];
        let src = Items::default();
        assert!(
            ep.poll_transmit(t0, &mut SeqCounter::new(1), &src, &mut buf)
                .is_none()
        );
        assert_eq!(ep.poll_timeout(), None, "ALARM has no ALIVE timer");
    }

    #[test]
    fn test_receiver_ignores_flags_and_control() {
        let t0 = Instant::now();
        let mut ep = Ep::new(Config::default(), t0);
        let repr = ct(1, 1);
        let mut buf = [0u8; 512];
        let mut seq = SeqCounter::new(100);
        let mut d = Datagram::new(&mut buf, 1472);
        let hello = Outgoing::Ct {
            msg_type: MsgType::CT_NEW,
            flags: Flags::HELLO,
            repr: &repr,
        };
        let alive = Outgoing::Control {
            flags: Flags::ALIVE,
            range: None,
        };
        let ctl0 = Outgoing::Control {
            flags: Flags::NONE,
            range: None,
        };
        let plain = without_flags(hello);
        for m in [hello, alive, ctl0, plain] {
            d.push(&mut seq, &m).unwrap();
        }
        let mut delivered = Vec::new();
        ep.handle_datagram(t0, &1, d.as_bytes(), |m| delivered.push(m.header.seq))
            .unwrap();
        // HELLO data and ALIVE are ignored, the flag-free CTL is "bad type".
        assert_eq!(delivered, vec![103]);
        assert_eq!(ep.stats().rx_bad, 1);
        // Old numbers are still applied; only counted.
        let mut d = Datagram::new(&mut buf, 1472);
        d.push(&mut SeqCounter::new(50), &plain).unwrap();
        let mut n = 0;
        ep.handle_datagram(t0, &1, d.as_bytes(), |_| n += 1)
            .unwrap();
        assert_eq!((n, ep.stats().rx_before), (1, 1));
    }

    #[test]
    fn test_del_sent_once() {
        let t0 = Instant::now();
        let mut ep = Ep::new(cfg(5, 15), t0);
        let mut src = Items::default();
        src.0.insert(1, (MsgType::CT_NEW, ct(1, 1)));
        let mut seq = SeqCounter::new(0);
        ep.queue_item(t0, 1);
        assert_eq!(drain(&mut ep, t0, &mut seq, &src).len(), 1);
        src.0.insert(1, (MsgType::CT_DEL, ct(1, 1)));
        ep.queue_item(t0, 1);
        ep.queue_item(t0, 1); // collapses
        assert_eq!(drain(&mut ep, t0, &mut seq, &src).len(), 1);
        assert_eq!(
            ep.poll_event(),
            Some(Event::Released {
                item: 1,
                reason: Release::Deleted
            })
        );
        assert_eq!(ep.owned_len(), 0);
        assert_eq!(ep.poll_timeout(), None);
        // A vanished item is released and no longer refreshed.
        ep.queue_item(t0, 2);
        assert!(drain(&mut ep, t0, &mut seq, &src).is_empty());
        assert_eq!(
            ep.poll_event(),
            Some(Event::Released {
                item: 2,
                reason: Release::Vanished
            })
        );
        assert_eq!(ep.owned_len(), 0);
    }

    #[test]
    fn test_update_rearms_refresh() {
        // §3: the refresh timer is re-armed on every update, so a busy item is not sent
        // twice in a row by event and refresh.
        let t0 = Instant::now();
        let mut ep = Ep::new(cfg(5, 15), t0);
        let mut src = Items::default();
        src.0.insert(1, (MsgType::CT_UPD, ct(1, 1)));
        let mut seq = SeqCounter::new(0);
        ep.queue_item(t0, 1);
        assert_eq!(drain(&mut ep, t0, &mut seq, &src).len(), 1);
        for i in 1..=20u32 {
            // An update every second: the refresh never comes due.
            let now = t0 + Duration::from_secs(u64::from(i));
            ep.handle_timeout(now);
            assert!(drain(&mut ep, now, &mut seq, &src).is_empty(), "{i}");
            ep.queue_item(now, 1);
            assert_eq!(drain(&mut ep, now, &mut seq, &src).len(), 1);
        }
        let last = t0 + Duration::from_secs(20);
        // (poll_timeout may be earlier: stale wheel entries only cause spurious wakeups.)
        let next = ep.refresh.deadline(&1).unwrap();
        assert!(
            next >= last + Duration::from_millis(1200) && next <= last + Duration::from_secs(6)
        );
        // track_item (start-up dump) schedules without sending now.
        ep.track_item(last, 2);
        assert_eq!(ep.tx_len(), 0);
        assert_eq!(ep.owned_len(), 2);
    }

    #[test]
    fn test_refresh_delay_bounds() {
        // §3: random() % RefreshTime + 1 s, plus 0.199999 … 0.999999 s.
        let mut ep = Ep::new(cfg(5, 15), Instant::now());
        let mut secs = [0u32; 7];
        for _ in 0..10_000 {
            let d = ep.refresh_delay();
            assert!(d >= Duration::from_micros(1_199_999) && d <= Duration::from_micros(5_999_999));
            secs[d.as_secs() as usize] += 1;
        }
        // Uniform over the whole seconds 1..=5.
        assert!(secs[1..=5].iter().all(|&c| c > 1800), "{secs:?}");
    }

    #[test]
    fn test_foreign_expiry() {
        let t0 = Instant::now();
        let mut ep = Ep::new(cfg(5, 15), t0);
        ep.refresh_foreign(t0, 1);
        ep.refresh_foreign(t0, 2);
        ep.refresh_foreign(t0 + Duration::from_secs(10), 1);
        ep.refresh_foreign(t0, 3);
        ep.forget_foreign(&3);
        assert_eq!(ep.foreign_expires(&3), None);
        assert_eq!(ep.foreign_expires(&2), Some(t0 + Duration::from_secs(15)));
        let mut expired = Vec::new();
        while let Some(now) = ep.poll_timeout() {
            ep.handle_timeout(now);
            while let Some(Event::Expired { item }) = ep.poll_event() {
                expired.push((item, now - t0));
            }
        }
        assert_eq!(
            expired,
            vec![(2, Duration::from_secs(15)), (1, Duration::from_secs(25))]
        );
        assert_eq!(ep.foreign_len(), 0);
    }

    #[test]
    fn test_wheel_stale_and_rounds() {
        let t0 = Instant::now();
        let tick = Duration::from_millis(200);
        let mut w = Wheel::new(t0, tick, Duration::from_secs(1));
        w.schedule(1u32, t0 + Duration::from_millis(300));
        w.schedule(1, t0 + Duration::from_millis(900)); // moves; the old entry is stale
        w.schedule(2, t0 + Duration::from_secs(100)); // beyond the horizon: later round
        let mut fired = Vec::new();
        w.expire(t0 + Duration::from_millis(500), |k| fired.push(k));
        assert!(fired.is_empty());
        w.expire(t0 + Duration::from_millis(1000), |k| fired.push(k));
        assert_eq!(fired, vec![1]);
        w.expire(t0 + Duration::from_secs(99), |k| fired.push(k));
        assert_eq!(fired, vec![1]);
        w.expire(t0 + Duration::from_secs(100), |k| fired.push(k));
        assert_eq!(fired, vec![1, 2]);
        assert!(w.is_empty() && w.next_deadline().is_none());
        // A long idle jump costs nothing and the wheel keeps working.
        w.expire(t0 + Duration::from_secs(3600), |_| unreachable!());
        w.schedule(3, t0 + Duration::from_secs(3600) + tick);
        assert_eq!(
            w.next_deadline(),
            Some(t0 + Duration::from_secs(3600) + tick)
        );
    }

    /// Over a 20% lossy link nothing is retransmitted, yet the periodic refresh repairs
    /// every loss within a few periods (sync-modes.md §3: that is ALARM's whole reliability).
    #[test]
    fn test_lossy_link_refresh_repairs() {
        const N: u32 = 1_000;
        let t0 = Instant::now();
        let mut rng = crate::sync::sim::Rng::new(11);
        let mut tx = Ep::new(cfg(5, 15), t0);
        let mut rx = Ep::new(cfg(5, 15), t0);
        let mut src = Items::default();
        for k in 0..N {
            src.0.insert(k, (MsgType::CT_NEW, ct(k, 1)));
            tx.queue_item(t0, k);
        }
        let mut seq = SeqCounter::new(1);
        let mut got = HashSet::new();
        let mut after_first = 0;
        let mut buf = [0u8; 1500];
        let mut now = t0;
        while now < t0 + Duration::from_secs(20) {
            while let Some(t) = tx.poll_transmit(now, &mut seq, &src, &mut buf) {
                if rng.chance(0.2) {
                    continue;
                }
                rx.handle_datagram(now, &1, &buf[..t.size], |m| {
                    got.insert(m.ct().unwrap().addrs);
                })
                .unwrap();
            }
            if now == t0 {
                after_first = got.len();
            }
            now = tx.poll_timeout().unwrap();
            tx.handle_timeout(now);
        }
        println!(
            "ALARM 20% loss: {after_first}/{N} after the first send, {} after 20 s",
            got.len()
        );
        assert!(after_first < N as usize);
        assert_eq!(got.len(), N as usize);
        assert!(rx.stats().rx_lost > 0);
    }

    /// 10k owned entries at RefreshTime 5 s for 60 s of virtual time, and a peer that
    /// receives them: every entry goes out again within RefreshTime + 1 s (never sooner than
    /// 1.2 s), the per-tick load stays spread, and once the sender stops every foreign
    /// entry expires CacheTimeout after its last refresh.
    #[test]
    fn test_scale_10k() {
        const N: u32 = 10_000;
        let t0 = Instant::now();
        let mut tx = Ep::new(cfg(5, 15), t0);
        let mut rx = Ep::new(cfg(5, 15), t0);
        let mut src = Items::default();
        for k in 0..N {
            src.0.insert(k, (MsgType::CT_NEW, ct(k, 0)));
            tx.queue_item(t0, k);
        }
        let mut seq = SeqCounter::new(1);
        let mut last_sent: HashMap<u32, Instant> = HashMap::new();
        let mut last_refresh: HashMap<u32, Instant> = HashMap::new();
        let (mut min_gap, mut max_gap) = (Duration::MAX, Duration::ZERO);
        let mut per_tick = Vec::new();
        let mut buf = [0u8; 1500];
        let mut now = t0;
        let end = t0 + Duration::from_secs(60);
        loop {
            let mut count = 0;
            while let Some(t) = tx.poll_transmit(now, &mut seq, &src, &mut buf) {
                count += t.messages;
                rx.handle_datagram(now, &1, &buf[..t.size], |m| {
                    let k = u32::from(match m.ct().unwrap().addrs {
                        Some(wire::tuple::Addrs::V4 { src, .. }) => src,
                        _ => unreachable!(),
                    }) & 0x00ff_ffff;
                    if let Some(prev) = last_sent.insert(k, now) {
                        min_gap = min_gap.min(now - prev);
                        max_gap = max_gap.max(now - prev);
                    }
                    last_refresh.insert(k, now);
                })
                .unwrap();
            }
            for (&k, &at) in &last_refresh {
                rx.refresh_foreign(at, k);
            }
            last_refresh.clear();
            if now > t0 {
                per_tick.push(count);
            }
            let next = tx.poll_timeout().unwrap();
            if next > end {
                break;
            }
            now = next;
            tx.handle_timeout(now);
            rx.handle_timeout(now);
            assert_eq!(rx.poll_event(), None, "nothing expires while refreshed");
        }
        let max = per_tick.iter().copied().max().unwrap();
        let total: usize = per_tick.iter().sum();
        println!(
            "ALARM 10k @5s: {total} refreshes in 60 s over {} ticks, max {max}/tick, gaps {min_gap:?}..{max_gap:?}",
            per_tick.len()
        );
        assert_eq!(last_sent.len(), N as usize);
        assert!(min_gap >= Duration::from_micros(1_199_999));
        assert!(max_gap <= Duration::from_secs(6) + Duration::from_millis(200));
        // Mean delay ≈ 3.6 s → ~560 per 200 ms tick; a burst would be all 10k at once.
        assert!(max < 1_000, "max {max} per tick");
        assert!(total as u32 > N * 60 / 5);

        // The sender goes away: each foreign entry expires 15 s after its last refresh.
        let mut expired = 0;
        while let Some(t) = rx.poll_timeout() {
            rx.handle_timeout(t);
            while let Some(Event::Expired { item }) = rx.poll_event() {
                let late = t - (last_sent[&item] + Duration::from_secs(15));
                assert!(late <= Duration::from_millis(200), "{late:?}");
                expired += 1;
            }
        }
        assert_eq!(expired, N);
    }
}
