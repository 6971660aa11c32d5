//! The timers of a sync endpoint: a fixed table of deadlines, no wheel, no heap.
//!
//! Modelled on quinn-proto's `TimerTable`. The runtime asks [`TimerTable::next_timeout`]
//! (through the endpoint's `poll_timeout`) how long it may sleep and passes the clock back
//! in `handle_timeout(now)`; nothing here reads a clock.

use std::time::Instant;

/// One timer of a sync endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// FTFW: 1 s after the last transmit run send ACK (if something was received since the
    /// last ACK) or ALIVE (sync-modes.md §2.1, §2.2). The C daemon re-arms it after every
    /// transmit run, so it only fires when the link has been quiet for a second.
    Alive = 0,
    /// FTFW, ours only: every second while the resend queue holds something, retransmit
    /// what a live peer has not acknowledged although it has been heard from well after
    /// the transmission (see "retransmission timeout" in `ftfw`).
    Retransmit = 1,
}

impl Timer {
    /// Every timer, in table order.
    pub const VALUES: [Self; 2] = [Self::Alive, Self::Retransmit];
    /// Number of timers (size of the table).
    pub const COUNT: usize = Self::VALUES.len();
}

/// Deadlines, one slot per [`Timer`]; `None` = stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimerTable {
    data: [Option<Instant>; Timer::COUNT],
}

impl TimerTable {
    /// Arms `timer` to fire at `at` (replacing any earlier deadline).
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.data[timer as usize] = Some(at);
    }

    /// The deadline of `timer`, if armed.
    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.data[timer as usize]
    }

    /// Disarms `timer`.
    pub fn stop(&mut self, timer: Timer) {
        self.data[timer as usize] = None;
    }

    /// The earliest armed deadline.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.data.iter().flatten().min().copied()
    }

    /// True if `timer` is armed and its deadline is at or before `now`.
    pub fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|t| t <= now)
    }

    /// Disarms `timer` and returns true if it had expired at `now` (the usual "did it fire"
    /// check in `handle_timeout`).
    pub fn take_expired(&mut self, timer: Timer, now: Instant) -> bool {
        let fired = self.is_expired(timer, now);
        if fired {
            self.stop(timer);
        }
        fired
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::time::Duration;

    #[test]
    fn test_table() {
        // The epoch of a virtual clock; only offsets from it matter.
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        assert_eq!(t.next_timeout(), None);
        t.set(Timer::Alive, t0 + Duration::from_secs(1));
        assert_eq!(t.next_timeout(), Some(t0 + Duration::from_secs(1)));
        assert!(!t.is_expired(Timer::Alive, t0));
        assert!(!t.take_expired(Timer::Alive, t0));
        assert!(t.take_expired(Timer::Alive, t0 + Duration::from_secs(1)));
        assert_eq!(t.get(Timer::Alive), None);
        t.set(Timer::Alive, t0);
        t.stop(Timer::Alive);
        assert_eq!(t.next_timeout(), None);
    }
}
