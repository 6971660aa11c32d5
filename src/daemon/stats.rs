//! Counters of the running daemon, written by exactly one thread each and summed on request.
//!
//! Each shard's counters are written only by its worker, the link counters only by the link
//! thread and the netlink counters only by the reader, so a write is a relaxed load + store
//! (no read-modify-write bus lock). The control thread reads them with relaxed loads: a
//! statistics reply needs no consistent snapshot, as in the C daemon.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// One counter with a single writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n` (single writer: no atomic read-modify-write needed).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Overwrites the value (gauges).
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The four lines of a cache block of `conntrackd -s`.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Objects in the cache now.
    pub active: Counter,
    /// Objects created.
    pub created: Counter,
    /// Creations that failed.
    pub create_failed: Counter,
    /// Objects updated.
    pub updated: Counter,
    /// Updates that failed.
    pub update_failed: Counter,
    /// Objects destroyed (including replaced ones).
    pub destroyed: Counter,
    /// Destructions that failed.
    pub destroy_failed: Counter,
}

/// Totals of [`CacheCounters`] over every shard.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheTotals {
    /// See [`CacheCounters`].
    pub active: u64,
    /// See [`CacheCounters`].
    pub created: u64,
    /// See [`CacheCounters`].
    pub create_failed: u64,
    /// See [`CacheCounters`].
    pub updated: u64,
    /// See [`CacheCounters`].
    pub update_failed: u64,
    /// See [`CacheCounters`].
    pub destroyed: u64,
    /// See [`CacheCounters`].
    pub destroy_failed: u64,
}

impl CacheTotals {
    /// Sums `counters`.
    pub fn sum<'a>(counters: impl Iterator<Item = &'a CacheCounters>) -> Self {
        let mut t = Self::default();
        for c in counters {
            t.active += c.active.get();
            t.created += c.created.get();
            t.create_failed += c.create_failed.get();
            t.updated += c.updated.get();
            t.update_failed += c.update_failed.get();
            t.destroyed += c.destroyed.get();
            t.destroy_failed += c.destroy_failed.get();
        }
        t
    }
}

/// Counters of one shard (its worker writes them).
#[derive(Debug, Default)]
pub struct ShardStats {
    /// The internal cache.
    pub internal: CacheCounters,
    /// The external cache.
    pub external: CacheCounters,
    /// Transmit requests that did not fit the ring to the link thread (retried later).
    pub tx_backlog: Counter,
}

/// Counters of the sync links (the link thread writes them).
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Payload bytes sent.
    pub bytes_sent: Counter,
    /// Payload bytes received.
    pub bytes_recv: Counter,
    /// Datagrams sent.
    pub pkts_sent: Counter,
    /// Datagrams received.
    pub pkts_recv: Counter,
    /// Failed sends.
    pub err_send: Counter,
    /// Failed receives.
    pub err_recv: Counter,
    /// Malformed messages.
    pub malformed: Counter,
    /// Lost messages (the C statistic).
    pub lost: Counter,
}

/// Counters of the netlink reader.
#[derive(Debug, Default)]
pub struct ReaderStats {
    /// Events drained from the event socket.
    pub events: Counter,
    /// Events that could not be decoded.
    pub bad: Counter,
    /// ENOBUFS overruns.
    pub overruns: Counter,
    /// Events dropped because a shard ring was full.
    pub ring_full: Counter,
    /// Current socket buffer size.
    pub buffer_size: Counter,
}

fn cache_block(out: &mut String, title: &str, t: &CacheTotals) {
    let _ = write!(
        out,
        "cache {title}:\n\
         current active connections:\t{:12}\n\
         connections created:\t\t{:12}\tfailed:\t{:12}\n\
         connections updated:\t\t{:12}\tfailed:\t{:12}\n\
         connections destroyed:\t\t{:12}\tfailed:\t{:12}\n\n",
        t.active,
        t.created,
        t.create_failed,
        t.updated,
        t.update_failed,
        t.destroyed,
        t.destroy_failed
    );
}

/// The `conntrackd -s` reply in sync mode (control-and-cli.md §3.4).
pub fn render_stats(
    internal: &CacheTotals,
    external: &CacheTotals,
    link: &LinkStats,
    transport: &str,
    device: &str,
) -> String {
    let mut s = String::new();
    cache_block(&mut s, "internal", internal);
    cache_block(&mut s, "external", external);
    let _ = write!(
        s,
        "traffic processed:\n{:20} Bytes      {:20} Pckts\n\n",
        0, 0
    );
    let _ = write!(
        s,
        "{transport} traffic (active device={device}):\n\
         {:20} Bytes sent {:20} Bytes recv\n\
         {:20} Pckts sent {:20} Pckts recv\n\
         {:20} Error send {:20} Error recv\n\n",
        link.bytes_sent.get(),
        link.bytes_recv.get(),
        link.pkts_sent.get(),
        link.pkts_recv.get(),
        link.err_send.get(),
        link.err_recv.get()
    );
    let _ = write!(
        s,
        "message tracking:\n{:20} Malformed msgs {:20} Lost msgs\n\n",
        link.malformed.get(),
        link.lost.get()
    );
    s
}

/// The `conntrackd -s cache` reply (control-and-cli.md §3.4).
pub fn render_cache_stats(internal: &CacheTotals, external: &CacheTotals) -> String {
    let mut s = String::new();
    for (name, t) in [("internal", internal), ("external", external)] {
        let _ = write!(
            s,
            "cache:{name}\tactive objects:\t\t{:12}\n\
             \tactive/total entries:\t\t{:12}/{:12}\n\
             \tcreation OK/failed:\t\t{:12}/{:12}\n\
             \t\tno memory available:\t{:12}\n\
             \t\tno space left in cache:\t{:12}\n\
             \tupdate OK/failed:\t\t{:12}/{:12}\n\
             \t\tentry not found:\t{:12}\n\
             \tdeletion created/failed:\t{:12}/{:12}\n\
             \t\tentry not found:\t{:12}\n\n",
            t.active,
            t.active,
            t.active,
            t.created,
            t.create_failed,
            0,
            0,
            t.updated,
            t.update_failed,
            0,
            t.destroyed,
            t.destroy_failed,
            0
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_stats_layout() {
        let t = CacheTotals {
            active: 13,
            created: 14,
            ..CacheTotals::default()
        };
        let s = render_stats(
            &t,
            &CacheTotals::default(),
            &LinkStats::default(),
            "UDP",
            "veth0",
        );
        assert!(s.starts_with(
            "cache internal:\ncurrent active connections:\t          13\n\
             connections created:\t\t          14\tfailed:\t           0\n"
        ));
        assert!(s.contains("UDP traffic (active device=veth0):\n"));
        assert!(s.ends_with("Lost msgs\n\n"));
    }
}
