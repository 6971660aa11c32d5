//! The FTFW resend queue: transmitted messages awaiting acknowledgement (sync-modes.md
//! §2.2, §2.3 step 4).
//!
//! Entries are kept in transmission order, which is sequence order: the daemon's one
//! counter only moves forward. ACK and NACK walks therefore stop at the first entry after
//! the range, as the C iterator does. Entries are keyed by a local, never-wrapping index
//! so that an item moved back to the transmit queue can be removed in O(log n).
//!
//! Each entry records which peers must acknowledge it (the live ones when it was sent)
//! and which did; see "per-peer acknowledgement" in [`super::ftfw`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::seq::Seq;
use crate::wire::Flags;
use crate::wire::header::SeqRange;

/// A control message as queued; HELLO bits are added at transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ctl {
    pub(super) flags: Flags,
    pub(super) range: Option<SeqRange>,
}

impl Ctl {
    /// ACK, NACK and RESYNC are kept for retransmission; ALIVE is not (§2.2).
    pub(super) const fn is_kept(self) -> bool {
        self.flags.has_range()
    }
}

/// What an entry retransmits: a data item (re-read from the cache) or a control message.
#[derive(Debug, Clone)]
pub(super) enum Kept<K> {
    Data(K),
    Ctl(Ctl),
}

#[derive(Debug, Clone)]
struct Entry<K> {
    seq: Seq,
    what: Kept<K>,
    /// Peers (bit = peer index) that were live when it was sent and must ACK it.
    need: u64,
    /// Peers that did.
    acked: u64,
    /// When it was transmitted.
    sent: Instant,
    /// A control message's header flags as transmitted (with any HELLO bits), for
    /// `conntrackd -s rsqueue`; the flags to retransmit stay in `what`.
    sent_flags: Flags,
}

impl<K> Entry<K> {
    /// No live peer it waits for is missing.
    const fn done(&self, live: u64) -> bool {
        self.need & live & !self.acked == 0
    }
}

/// The bit of peer index `p` in the peer sets; 0 beyond 64 peers, where every ACK
/// releases (the C rule).
pub(super) const fn peer_bit(p: usize) -> u64 {
    if p < 64 { 1 << p } else { 0 }
}

/// Sent messages awaiting ACK, oldest first.
///
/// A deque of slots in handle order (handle = `base` + position): entries are appended in
/// transmission order and mostly leave from the front (ACKs come in order), so this is a
/// ring, not a tree. A slot removed from the middle (its item was queued again) becomes a
/// hole that keeps its sequence number, so that the slots stay sorted by sequence number
/// and a range is found by binary search; holes at the front are dropped.
#[derive(Debug)]
pub(super) struct ResendQueue<K> {
    slots: VecDeque<Slot<K>>,
    /// Handle of `slots[0]`.
    base: u64,
    /// Slots holding an entry.
    live: usize,
}

#[derive(Debug)]
struct Slot<K> {
    seq: Seq,
    entry: Option<Entry<K>>,
}

impl<K> Default for ResendQueue<K> {
    fn default() -> Self {
        Self {
            slots: VecDeque::new(),
            base: 0,
            live: 0,
        }
    }
}

impl<K> ResendQueue<K> {
    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// Appends a message sent as `seq` at `sent`, to be ACKed by the peers in `need`;
    /// returns its handle.
    pub(super) fn push(&mut self, seq: Seq, what: Kept<K>, need: u64, sent: Instant) -> u64 {
        self.push_sent(seq, what, need, sent, Flags::NONE)
    }

    /// [`Self::push`], remembering the flags the message went out with (`-s rsqueue`
    /// prints a control message's flags as sent).
    pub(super) fn push_sent(
        &mut self,
        seq: Seq,
        what: Kept<K>,
        need: u64,
        sent: Instant,
        sent_flags: Flags,
    ) -> u64 {
        let entry = Entry {
            seq,
            what,
            need,
            acked: 0,
            sent,
            sent_flags,
        };
        self.slots.push_back(Slot {
            seq,
            entry: Some(entry),
        });
        self.live += 1;
        self.base + self.slots.len() as u64 - 1
    }

    /// Every entry, oldest first: its seq and, for a control message, its flags as sent.
    pub(super) fn entries(&self) -> impl Iterator<Item = (Seq, Option<Flags>)> + '_ {
        self.slots.iter().filter_map(|s| {
            s.entry.as_ref().map(|e| match e.what {
                Kept::Data(_) => (e.seq, None),
                Kept::Ctl(_) => (e.seq, Some(e.sent_flags)),
            })
        })
    }

    /// Removes an entry by handle (its item was queued again).
    pub(super) fn remove(&mut self, handle: u64) {
        let _ = self.take(handle);
    }

    /// Removes the oldest entry (queue full, §2.2).
    pub(super) fn pop_oldest(&mut self) -> Option<Kept<K>> {
        let i = self.slots.iter().position(|s| s.entry.is_some())?;
        self.take(self.base + i as u64)
    }

    /// Empties slot `handle` and drops the holes at the front.
    fn take(&mut self, handle: u64) -> Option<Kept<K>> {
        let i = usize::try_from(handle.checked_sub(self.base)?).ok()?;
        let e = self.slots.get_mut(i)?.entry.take()?;
        self.live -= 1;
        while self.slots.front().is_some_and(|s| s.entry.is_none()) {
            self.slots.pop_front();
            self.base += 1;
        }
        Some(e.what)
    }

    /// Handles of the entries in `[from, to]`, in order. Slots are sorted by seq (serial
    /// order within the queue's span), so the start is a binary search.
    fn in_range(&self, from: Seq, to: Seq) -> Vec<u64> {
        let start = self.slots.partition_point(|s| s.seq.before(from));
        self.slots
            .range(start..)
            .take_while(|s| !s.seq.after(to))
            .enumerate()
            .filter(|(_, s)| s.entry.is_some())
            .map(|(k, _)| self.base + (start + k) as u64)
            .collect()
    }

    fn get_mut(&mut self, handle: u64) -> Option<&mut Entry<K>> {
        let i = usize::try_from(handle.checked_sub(self.base)?).ok()?;
        self.slots.get_mut(i)?.entry.as_mut()
    }

    /// Peer `bit` ACKed `[from, to]`: returns the entries no live peer still owes an ACK
    /// for, removed from the queue.
    pub(super) fn ack(&mut self, bit: u64, from: Seq, to: Seq, live: u64) -> Vec<Kept<K>> {
        let mut out = Vec::new();
        for h in self.in_range(from, to) {
            let Some(e) = self.get_mut(h) else { continue };
            e.acked |= bit;
            if bit == 0 || e.done(live) {
                out.extend(self.take(h));
            }
        }
        out
    }

    /// A NACK of `[from, to]`: removes and returns those entries for retransmission.
    pub(super) fn nack(&mut self, from: Seq, to: Seq) -> Vec<Kept<K>> {
        self.in_range(from, to)
            .into_iter()
            .filter_map(|h| self.take(h))
            .collect()
    }

    /// Removes and returns, oldest first, the entries sent `rto` or more before `now` that
    /// a peer has not acknowledged although it acknowledged a later one: `acked_to` holds,
    /// per live peer, its bit and the highest of our sequence numbers it acknowledged.
    /// Such an entry was lost where no NACK reports it: sent before the peer started
    /// tracking our sequence space (it (re)started), or inside a range a C peer
    /// acknowledged without checking (its HELLO phase). `rto` leaves NACKs in flight time
    /// to act first.
    pub(super) fn overdue(
        &mut self,
        acked_to: &[(u64, Seq)],
        now: Instant,
        rto: Duration,
    ) -> Vec<Kept<K>> {
        let mut due = Vec::new();
        for (k, s) in self.slots.iter().enumerate() {
            let Some(e) = &s.entry else { continue };
            // Transmission order is time order: nothing later can be overdue either.
            if e.sent + rto > now {
                break;
            }
            if acked_to
                .iter()
                .any(|&(bit, to)| bit & !e.acked != 0 && to.after(e.seq))
            {
                due.push(self.base + k as u64);
            }
        }
        due.into_iter().filter_map(|h| self.take(h)).collect()
    }

    /// Removes and returns the entries that no live peer still owes an ACK for, among
    /// those acknowledged at least once (a peer fell silent).
    pub(super) fn sweep(&mut self, live: u64) -> Vec<Kept<K>> {
        let done: Vec<u64> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.entry
                    .as_ref()
                    .is_some_and(|e| e.acked != 0 && e.done(live))
            })
            .map(|(k, _)| self.base + k as u64)
            .collect();
        done.into_iter().filter_map(|h| self.take(h)).collect()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn data(q: &ResendQueue<u32>) -> Vec<u32> {
        q.slots
            .iter()
            .filter_map(|s| match s.entry.as_ref()?.what {
                Kept::Data(k) => Some(k),
                Kept::Ctl(_) => None,
            })
            .collect()
    }

    #[test]
    fn test_ack_needs_every_live_peer() {
        let (a, b) = (peer_bit(0), peer_bit(1));
        let t0 = Instant::now();
        let mut q = ResendQueue::default();
        for k in 0..4u32 {
            q.push(Seq(u32::MAX - 1) + k, Kept::Data(k), a | b, t0);
        }
        // The range crosses the wrap of the counter.
        assert!(q.ack(a, Seq(u32::MAX), Seq(1), a | b).is_empty());
        assert_eq!(q.ack(b, Seq(0), Seq(5), a | b).len(), 2);
        assert_eq!(data(&q), [0, 1]);
        // b gone silent: a's ACK suffices.
        assert_eq!(q.ack(a, Seq(u32::MAX), Seq(u32::MAX), a).len(), 1);
        assert_eq!(data(&q), [0]);
        // b back: entry 0 still waits for it.
        assert!(
            q.ack(a, Seq(u32::MAX - 1), Seq(u32::MAX - 1), a | b)
                .is_empty()
        );
        assert_eq!(
            q.ack(b, Seq(u32::MAX - 1), Seq(u32::MAX - 1), a | b).len(),
            1
        );
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn test_overdue() {
        let (a, b) = (peer_bit(0), peer_bit(1));
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let rto = 2 * s;
        let mut q = ResendQueue::default();
        for k in 0..4u32 {
            q.push(Seq(10 + k), Kept::Data(k), a | b, t0 + k * s);
        }
        q.ack(a, Seq(10), Seq(13), a | b);
        q.ack(b, Seq(12), Seq(12), a | b);
        // Too early for anything.
        assert!(q.overdue(&[(b, Seq(12))], t0 + s, rto).is_empty());
        // b acknowledged 12 but not 10 and 11: lost where no NACK tells. Entry 3 (13) is
        // after anything b acknowledged: just not acknowledged yet.
        let due = q.overdue(&[(a, Seq(13)), (b, Seq(12))], t0 + 9 * s, rto);
        assert!(matches!(due[..], [Kept::Data(0), Kept::Data(1)]), "{due:?}");
        assert_eq!(data(&q), [3]);
        // Nobody acknowledged anything after 13.
        assert!(
            q.overdue(&[(a, Seq(13)), (b, Seq(12))], t0 + 9 * s, rto)
                .is_empty()
        );
        assert_eq!(q.overdue(&[(b, Seq(20))], t0 + 9 * s, rto).len(), 1);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn test_nack_sweep_overflow() {
        let a = peer_bit(0);
        let mut q = ResendQueue::default();
        let t = Instant::now();
        let h = q.push(Seq(10), Kept::Data(1u32), a, t);
        q.push(Seq(11), Kept::Data(2), a, t);
        q.push(Seq(12), Kept::Data(3), a, t);
        q.remove(h);
        assert_eq!(q.nack(Seq(5), Seq(11)).len(), 1);
        assert_eq!(data(&q), [3]);
        assert!(matches!(q.pop_oldest(), Some(Kept::Data(3))));
        assert!(q.pop_oldest().is_none());
        // Acked by a, then b (also needed) falls silent.
        let b = peer_bit(1);
        q.push(Seq(13), Kept::Data(4), a | b, t);
        assert!(q.ack(a, Seq(13), Seq(13), a | b).is_empty());
        assert_eq!(q.sweep(a).len(), 1);
        // Peer index 64 and beyond: any ACK releases.
        q.push(Seq(14), Kept::Data(5), a, t);
        assert_eq!(q.ack(peer_bit(70), Seq(14), Seq(14), a).len(), 1);
    }
}
