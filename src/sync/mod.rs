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
//! [`notrack`] the best-effort mode; all three take the same verbs.
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

/// Counters of one endpoint (the FTFW part of `conntrackd -s`; summed by the caller).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams produced by `poll_transmit`.
    pub datagrams_sent: u64,
    /// Data messages sent, retransmissions included.
    pub data_sent: u64,
    /// Data messages sent again because a peer NACKed the previous transmission.
    pub data_resent: u64,
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
