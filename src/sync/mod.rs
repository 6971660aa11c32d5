//! The sync state machines: sans-IO, time passed in.
//!
//! Nothing in this module reads a clock, touches a socket or spawns a thread. The runtime
//! drives an endpoint with quinn-proto's verbs:
//!
//! * input: `queue_item(key)` for local cache changes, `handle_datagram(now, peer, bytes)`
//!   (or `handle_message`) for what a link received, `handle_timeout(now)` when
//!   `poll_timeout()` is reached;
//! * output: `poll_transmit(now, seq, source, buf)` until `None` (one datagram per call,
//!   sequence numbers from the daemon's single [`crate::wire::SeqCounter`]),
//!   `poll_event()` until `None`, then sleep until `poll_timeout()`.
//!
//! [`ftfw`] is the reliable mode (the default), [`alarm`] the periodic-refresh mode and
//! [`notrack`] the best-effort mode; all three take the same verbs, and [`Mode`] holds
//! whichever one the configuration chose.
//! [`seq`] holds the serial arithmetic, [`timer`] the timer table and `resend` the FTFW
//! resend queue.

pub mod alarm;
pub mod ftfw;
pub mod notrack;
mod resend;
pub mod seq;
pub mod timer;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

pub use ftfw::{Config, Event, Ftfw, Release, Source, Transmit, Verdict};
pub use seq::Seq;
pub use timer::{Timer, TimerTable};

use std::hash::Hash;
use std::time::Instant;

use crate::wire::{self, Flags, Message, MsgType, Outgoing, SeqCounter};

/// Counters of one endpoint (the FTFW part of `conntrackd -s`; summed by the caller).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams produced by `poll_transmit`.
    pub datagrams_sent: u64,
    /// Data messages sent, retransmissions included.
    pub data_sent: u64,
    /// Data messages sent again because a peer NACKed the previous transmission or it was
    /// overdue.
    pub data_resent: u64,
    /// FTFW: data messages queued again by the retransmission timeout (a peer heard from
    /// since never acknowledged them).
    pub data_overdue: u64,
    /// Control messages sent, retransmissions included.
    pub ctl_sent: u64,
    /// Control messages (ACK/NACK/RESYNC) sent again after a NACK.
    pub ctl_resent: u64,
    /// ACKs queued (window full, alive timer, or before a NACK).
    pub acks_queued: u64,
    /// NACKs queued (sequence gaps seen).
    pub nacks_queued: u64,
    /// Resend-queue entries dropped because the queue was full.
    pub resend_overflow: u64,
    /// Messages that could not be encoded and were skipped.
    pub unsendable: u64,
    /// The C "lost" statistic: `seq - last + 1` per gap (real loss + 2, wire-protocol.md §5).
    pub rx_lost: u64,
    /// Messages dropped as old or duplicate.
    pub rx_before: u64,
    /// Messages ignored as "bad header" (unknown flag combination, reversed range).
    pub rx_bad: u64,
    /// Messages with a version other than 1.
    pub rx_bad_version: u64,
    /// Datagrams cut short by a framing error.
    pub rx_malformed: u64,
}

/// One endpoint of whichever sync mode the configuration chose, so the runtime can drive
/// all three alike. Mode-specific calls (FTFW's HELLO state, ALARM's wheel sizes,
/// NOTRACK's `queue_direct`) stay on the inner types; match to reach them.
///
/// ALARM keys its foreign (external-cache) items with the same `K` as its own.
#[derive(Debug)]
pub enum Mode<K, P> {
    /// Reliable (§2).
    Ftfw(Ftfw<K, P>),
    /// Periodic refresh (§3).
    Alarm(alarm::Alarm<K, K, P>),
    /// Best effort (§4).
    Notrack(notrack::Notrack<K, P>),
}

/// An event of any mode (see each mode's `Event`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeEvent<K, P> {
    /// From FTFW.
    Ftfw(Event<K, P>),
    /// From ALARM.
    Alarm(alarm::Event<K, K>),
    /// From NOTRACK.
    Notrack(notrack::Event<K, P>),
}

impl<K, P> Mode<K, P>
where
    K: Clone + Eq + Hash,
    P: Clone + Eq,
{
    /// A local event changed `key`: send its current state (FTFW and NOTRACK ignore
    /// `now`; ALARM re-arms the item's refresh from it).
    pub fn queue_item(&mut self, now: Instant, key: K) {
        match self {
            Self::Ftfw(e) => e.queue_item(key),
            Self::Alarm(e) => e.queue_item(now, key),
            Self::Notrack(e) => e.queue_item(key),
        }
    }

    /// `conntrackd -n` / StartupResync: ask the peers for everything. ALARM has no
    /// RESYNC: nothing happens (§3).
    pub fn request_resync(&mut self) {
        match self {
            Self::Ftfw(e) => e.request_resync(),
            Self::Alarm(_) => {}
            Self::Notrack(e) => e.request_resync(),
        }
    }

    /// The caller applied a NEW/UPD for foreign item `key` to the external cache. Only
    /// ALARM cares: the item expires `CacheTimeout` later unless refreshed.
    pub fn foreign_updated(&mut self, now: Instant, key: K) {
        if let Self::Alarm(e) = self {
            e.refresh_foreign(now, key);
        }
    }

    /// The caller removed foreign item `key` from the external cache (DEL, flush).
    pub fn foreign_removed(&mut self, key: &K) {
        if let Self::Alarm(e) = self {
            e.forget_foreign(key);
        }
    }

    /// Handles a received datagram; `deliver` gets the data messages to apply.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        peer: &P,
        datagram: &[u8],
        deliver: impl FnMut(&Message<'_>),
    ) -> Result<(), wire::Error> {
        match self {
            Self::Ftfw(e) => e.handle_datagram(now, peer, datagram, deliver),
            Self::Alarm(e) => e.handle_datagram(now, peer, datagram, deliver),
            Self::Notrack(e) => e.handle_datagram(now, peer, datagram, deliver),
        }
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self {
            Self::Ftfw(e) => e.handle_timeout(now),
            Self::Alarm(e) => e.handle_timeout(now),
            Self::Notrack(e) => e.handle_timeout(now),
        }
    }

    /// When [`Self::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Self::Ftfw(e) => e.poll_timeout(),
            Self::Alarm(e) => e.poll_timeout(),
            Self::Notrack(e) => e.poll_timeout(),
        }
    }

    /// The next datagram, written to the front of `buf`; call until `None`.
    pub fn poll_transmit<S: Source<K>>(
        &mut self,
        now: Instant,
        seq: &mut SeqCounter,
        source: &S,
        buf: &mut [u8],
    ) -> Option<Transmit> {
        match self {
            Self::Ftfw(e) => e.poll_transmit(now, seq, source, buf),
            Self::Alarm(e) => e.poll_transmit(now, seq, source, buf),
            Self::Notrack(e) => e.poll_transmit(now, seq, source, buf),
        }
    }

    /// The next event for the caller.
    pub fn poll_event(&mut self) -> Option<ModeEvent<K, P>> {
        match self {
            Self::Ftfw(e) => e.poll_event().map(ModeEvent::Ftfw),
            Self::Alarm(e) => e.poll_event().map(ModeEvent::Alarm),
            Self::Notrack(e) => e.poll_event().map(ModeEvent::Notrack),
        }
    }

    /// Counters (each mode fills the fields that apply to it).
    pub const fn stats(&self) -> &Stats {
        match self {
            Self::Ftfw(e) => e.stats(),
            Self::Alarm(e) => e.stats(),
            Self::Notrack(e) => e.stats(),
        }
    }
}

// ---- helpers shared by ALARM and NOTRACK ----------------------------------------------

/// The C `nethdr_track_seq` statistics, per sender: a gap adds `seq - last + 1` to
/// "lost" (two more than really missing, wire-protocol.md §5), an old number counts as
/// "before". The last number always moves to `seq`.
pub(crate) fn track_seq<P: Clone + Eq>(
    peers: &mut Vec<(P, Seq)>,
    stats: &mut Stats,
    peer: &P,
    seq: Seq,
) {
    let Some(i) = peers.iter().position(|(p, _)| p == peer) else {
        peers.push((peer.clone(), seq));
        return;
    };
    let last = peers[i].1;
    let expected = last.next();
    if seq.after(expected) {
        stats.rx_lost += u64::from(seq.distance(last) as u32).wrapping_add(1);
    } else if seq.before(expected) {
        stats.rx_before += 1;
    }
    peers[i].1 = seq;
}

/// `msg` with no flags (ALARM and NOTRACK never set any on data).
pub(crate) fn without_flags(msg: Outgoing<'_>) -> Outgoing<'_> {
    match msg {
        Outgoing::Ct { msg_type, repr, .. } => Outgoing::Ct {
            msg_type,
            flags: Flags::NONE,
            repr,
        },
        Outgoing::Exp { msg_type, repr, .. } => Outgoing::Exp {
            msg_type,
            flags: Flags::NONE,
            repr,
        },
        other => other,
    }
}

/// True for CT_DEL / EXP_DEL: a DEAD object's last message.
pub(crate) fn is_del(msg: &Outgoing<'_>) -> bool {
    matches!(
        msg,
        Outgoing::Ct {
            msg_type: MsgType::CT_DEL,
            ..
        } | Outgoing::Exp {
            msg_type: MsgType::EXP_DEL,
            ..
        }
    )
}

#[cfg(test)]
mod mode_test {
    use super::*;
    use crate::sync::tests::{Items, ct};
    use std::collections::HashSet;
    use std::time::Duration;

    /// The same driver loop, written once against [`Mode`], replicates to the peer in all
    /// three modes.
    #[test]
    fn test_mode_drives_all_three() {
        let t0 = Instant::now();
        let makers: [fn(Instant) -> Mode<u32, u8>; 3] = [
            |t| Mode::Ftfw(Ftfw::new(Config::default(), t)),
            |t| Mode::Alarm(alarm::Alarm::new(alarm::Config::default(), t)),
            |t| Mode::Notrack(notrack::Notrack::new(notrack::Config::default(), t)),
        ];
        for make in makers {
            let (mut a, mut b) = (make(t0), make(t0));
            let mut src = Items::default();
            for k in 0..50 {
                src.0.insert(k, (MsgType::CT_NEW, ct(k, 1)));
                a.queue_item(t0, k);
            }
            let empty = Items::default();
            let (mut sa, mut sb) = (SeqCounter::new(1), SeqCounter::new(1_000));
            let mut got = HashSet::new();
            let mut buf = [0u8; 1500];
            let mut now = t0;
            while now < t0 + Duration::from_secs(3) {
                while let Some(t) = a.poll_transmit(now, &mut sa, &src, &mut buf) {
                    let mut seen = Vec::new();
                    b.handle_datagram(now, &1, &buf[..t.size], |m| {
                        seen.push(key_of(&m.ct().unwrap()));
                    })
                    .unwrap();
                    for k in seen {
                        got.insert(k);
                        b.foreign_updated(now, k);
                    }
                }
                while let Some(t) = b.poll_transmit(now, &mut sb, &empty, &mut buf) {
                    a.handle_datagram(now, &2, &buf[..t.size], |_| {}).unwrap();
                }
                while a.poll_event().is_some() {}
                while b.poll_event().is_some() {}
                now = [a.poll_timeout(), b.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(now + Duration::from_secs(1))
                    .max(now + Duration::from_millis(1));
                a.handle_timeout(now);
                b.handle_timeout(now);
            }
            assert!(a.stats().data_sent >= 50, "{a:?}");
            assert_eq!(b.stats().rx_bad + b.stats().rx_malformed, 0);
            assert_eq!(got.len(), 50, "{b:?}");
        }
    }

    fn key_of(r: &wire::CtRepr) -> u32 {
        match r.addrs {
            Some(wire::tuple::Addrs::V4 { src, .. }) => u32::from(src) & 0x00ff_ffff,
            _ => unreachable!(),
        }
    }
}
