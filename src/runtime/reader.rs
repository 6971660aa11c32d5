//! The netlink reader thread: drains ctnetlink events and routes each to its shard's ring.
//!
//! It does nothing else, so the event socket never overruns because of slow cache or
//! network work: one `recvmmsg` batch is decoded (header classification, then the attribute
//! area into a plain `Conntrack`), tagged with its origin (our own commit and flush sockets'
//! port ids, sync-modes.md §1.1), hashed to a shard and pushed with one `push_batch` per
//! shard. When idle it blocks in `poll` on the socket (with a short timeout to notice
//! shutdown): a real-time thread that spun would starve a worker on a 2-core machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tracing::{debug, info_span, warn};

use super::ring::Producer;
use super::worker::{CtChange, ExpEvent, KernelEvent, Origin};
use crate::cache::{CtKey, ExpKey, exp_shard_of, shard_of};
use crate::daemon::stats::ReaderStats;
use crate::netlink::ct::Conntrack;
use crate::netlink::events::{EventKind, EventSocket};
use crate::netlink::exp::Expectation;

/// Receive buffer per drain: room for a few hundred events per `recv_batch`.
const BATCH_BYTES: usize = 1 << 20;

/// Port ids of the daemon's own request sockets, for the origin filter.
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnPorts {
    /// The commit sockets (a commit runs on several in parallel); 0 = unused slot.
    pub commit: [u32; MAX_COMMIT_SOCKETS],
    /// The flush socket (`-F`).
    pub flush: u32,
    /// The inject socket (`DisableExternalCache`), 0 if none.
    pub inject: u32,
}

/// Hands the routed events to the workers; what did not fit a full ring is counted.
fn flush(router: &mut Router, stats: &ReaderStats) {
    let dropped = router.flush();
    if dropped > 0 {
        stats.ring_full.add(dropped as u64);
    }
}

/// Upper bound of parallel commit sockets.
pub const MAX_COMMIT_SOCKETS: usize = 4;

impl OwnPorts {
    /// The origin of an event sent on behalf of port `pid`.
    pub fn origin(&self, pid: u32) -> Origin {
        if pid != 0 && self.commit.contains(&pid) {
            Origin::Commit
        } else if pid != 0 && pid == self.flush {
            Origin::Flush
        } else if pid != 0 && pid == self.inject {
            Origin::Inject
        } else {
            Origin::NotMe
        }
    }
}

/// Routes kernel conntracks (and expectations, to their master's shard) to shard rings,
/// one pending batch per shard.
#[derive(Debug)]
pub struct Router {
    rings: Vec<Producer<KernelEvent>>,
    pending: Vec<Vec<KernelEvent>>,
    exp_rings: Vec<Producer<ExpEvent>>,
    exp_pending: Vec<Vec<ExpEvent>>,
}

impl Router {
    /// A router over one conntrack and one expectation producer per shard.
    pub fn new(rings: Vec<Producer<KernelEvent>>, exp_rings: Vec<Producer<ExpEvent>>) -> Self {
        let pending = rings.iter().map(|_| Vec::new()).collect();
        let exp_pending = exp_rings.iter().map(|_| Vec::new()).collect();
        Self {
            rings,
            pending,
            exp_rings,
            exp_pending,
        }
    }

    /// Adds one expectation event to its master's shard's pending batch.
    pub fn route_exp(&mut self, ev: ExpEvent) {
        let s = exp_shard_of(&ExpKey::from_expectation(&ev.exp), self.exp_rings.len());
        self.exp_pending[s].push(ev);
    }

    /// Adds one event to its shard's pending batch.
    #[inline]
    pub fn route(&mut self, ev: KernelEvent) {
        let s = shard_of(&CtKey::from_conntrack(&ev.ct), self.rings.len());
        self.pending[s].push(ev);
    }

    /// Pushes every pending batch; returns how many events did not fit (dropped, counted by
    /// the ring).
    pub fn flush(&mut self) -> usize {
        let mut dropped = 0;
        for (ring, batch) in self.exp_rings.iter_mut().zip(&mut self.exp_pending) {
            if !batch.is_empty() {
                ring.push_batch(batch);
                dropped += batch.len();
                batch.clear();
            }
        }
        for (ring, batch) in self.rings.iter_mut().zip(&mut self.pending) {
            if !batch.is_empty() {
                ring.push_batch(batch);
                dropped += batch.len();
                batch.clear();
            }
        }
        dropped
    }

    /// Whether the workers have popped everything routed so far (nothing pending here, every
    /// ring empty). A snapshot: the start-up code uses it before the reader runs.
    pub fn is_drained(&self) -> bool {
        self.pending.iter().all(Vec::is_empty)
            && self.exp_pending.iter().all(Vec::is_empty)
            && self.rings.iter().all(Producer::is_empty)
            && self.exp_rings.iter().all(Producer::is_empty)
    }

    /// Pushes every pending batch, waiting for room instead of dropping (start-up dump and
    /// `-R`, where the producer is not the real-time reader and may block).
    pub fn flush_blocking(&mut self, shutdown: &AtomicBool) {
        for (ring, batch) in self.exp_rings.iter_mut().zip(&mut self.exp_pending) {
            while !batch.is_empty() && !shutdown.load(Ordering::Acquire) {
                ring.push_batch(batch);
                if !batch.is_empty() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        for (ring, batch) in self.rings.iter_mut().zip(&mut self.pending) {
            while !batch.is_empty() && !shutdown.load(Ordering::Acquire) {
                ring.push_batch(batch);
                if !batch.is_empty() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

/// The reader thread's body. Returns at shutdown.
pub fn run(
    mut sock: EventSocket,
    mut router: Router,
    own: OwnPorts,
    stats: Arc<ReaderStats>,
    stop: Arc<AtomicBool>,
    iteration_limit: u32,
) -> Router {
    // `EventIterationLimit`: C handles at most this many events per readiness before it
    // serves its other sockets. This thread has no other socket; the limit bounds how many
    // events it routes before handing them to the workers, so a large receive batch does
    // not hold the first events back (0 = the default, 100).
    let limit = u64::from(if iteration_limit == 0 {
        100
    } else {
        iteration_limit
    });
    let span = info_span!("reader");
    let _g = span.enter();
    let mut buf = vec![0u8; BATCH_BYTES];
    debug!(port = sock.port_id(), "netlink reader started");
    // Once asked to stop, the reader still takes what the kernel has queued (for at most
    // a second on a busy table), so that a clean shutdown loses no event it was sent.
    let mut stop_by: Option<Instant> = None;
    loop {
        if stop_by.is_none() && stop.load(Ordering::Acquire) {
            stop_by = Some(Instant::now() + Duration::from_secs(1));
        }
        if stop_by.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        let wait = if stop_by.is_some() {
            Duration::ZERO
        } else {
            Duration::from_millis(200)
        };
        match sock.wait(Some(wait)) {
            Ok(true) => {}
            Ok(false) if stop_by.is_some() => break,
            Ok(false) => continue,
            Err(_) if stop_by.is_some() => break,
            Err(e) => {
                warn!(error = %e, "waiting for netlink events failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        }
        let batch = match sock.recv_batch(&mut buf) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "receiving netlink events failed");
                continue;
            }
        };
        if batch.overrun {
            stats.overruns.inc();
            // NetlinkOverrunResync: the control side schedules the resync (§8.3).
            stats.overrun_pending.store(true, Ordering::Release);
        }
        let mut n = 0u64;
        for ev in batch.iter() {
            n += 1;
            if n.is_multiple_of(limit) {
                flush(&mut router, &stats);
            }
            let change = match ev.kind {
                EventKind::CtNew | EventKind::ExpNew => CtChange::New,
                EventKind::CtUpdate | EventKind::ExpUpdate => CtChange::Update,
                EventKind::CtDestroy | EventKind::ExpDestroy => CtChange::Destroy,
            };
            if ev.kind.is_expectation() {
                match Expectation::parse(ev.family(), ev.attrs()) {
                    Ok(exp) => router.route_exp(ExpEvent {
                        change,
                        origin: own.origin(ev.origin()),
                        exp,
                    }),
                    Err(_) => stats.bad.inc(),
                }
                continue;
            }
            match Conntrack::parse(ev.family(), ev.attrs()) {
                Ok(ct) => router.route(KernelEvent {
                    change,
                    origin: own.origin(ev.origin()),
                    ct,
                }),
                Err(_) => stats.bad.inc(),
            }
        }
        stats.events.add(n);
        flush(&mut router, &stats);
        stats.buffer_size.set(sock.stats().buffer_size as u64);
    }
    debug!("netlink reader stopped");
    router
}
