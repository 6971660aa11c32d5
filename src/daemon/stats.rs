//! Counters of the running daemon, written by exactly one thread each and summed on request.
//!
//! Each shard's counters are written only by its worker, the link counters only by the link
//! thread and the netlink counters only by the reader, so a write is a relaxed load + store
//! (no read-modify-write bus lock). The control thread reads them with relaxed loads: a
//! statistics reply needs no consistent snapshot, as in the C daemon.

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

/// The counters of one cache shard, as `-s` and `-s cache` print them.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Live objects in the cache now.
    pub active: Counter,
    /// Objects in the table (DEAD ones included).
    pub objects: Counter,
    /// Creations refused for lack of memory.
    pub create_nomem: Counter,
    /// Creations refused because the cache is full.
    pub create_nospace: Counter,
    /// Updates of unknown objects.
    pub update_enoent: Counter,
    /// Deletions of unknown objects.
    pub destroy_enoent: Counter,
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

/// Counters of one shard (its worker writes them).
#[derive(Debug, Default)]
pub struct ShardStats {
    /// The internal cache.
    pub internal: CacheCounters,
    /// The external cache.
    pub external: CacheCounters,
    /// The internal expectation cache.
    pub internal_exp: CacheCounters,
    /// The external expectation cache.
    pub external_exp: CacheCounters,
    /// Transmit requests that did not fit the ring to the link thread (retried later).
    pub tx_backlog: Counter,
    /// Kernel events the user-space filter dropped (`-s runtime` "events filtered"; with
    /// `Filter From Kernelspace` the kernel drops them before they are counted, as in C).
    pub events_filtered: Counter,
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
    /// Overruns not yet answered by a resync (the maintenance thread takes them).
    pub overrun_pending: std::sync::atomic::AtomicBool,
}
