//! The bounded reader → worker ring: one per shard, one producer, one consumer.
//!
//! The netlink reader thread must drain the ctnetlink socket faster than the kernel fills it,
//! so it never blocks on a worker: when a shard's ring is full the event is handed back and
//! counted in [`Producer::overflows`] (the same accounting the C daemon does for lost events,
//! but per shard and never silent). Workers take events in batches with
//! [`Consumer::pop_batch`] and sleep on a [`Waker`] when the ring is empty.
//!
//! # Design: whole batches through a lock-free queue
//!
//! The ring moves *vectors of items*, not items: [`Producer::push_batch`] hands the caller's
//! `Vec` over as one unit (swapping in an empty, recycled one), and the consumer takes it back
//! as one unit. The storage is two `crossbeam::queue::ArrayQueue`s, one carrying full batches
//! to the worker and one returning emptied vectors to the reader, so the steady state
//! allocates nothing and every atomic read-modify-write is paid once per batch. A
//! per-item `ArrayQueue<T>` pays a CAS and a shared slot stamp per item instead; a
//! hand-written SPSC ring would need `UnsafeCell`/`MaybeUninit`, and `unsafe` is confined to
//! `sys/`. `bench/micro/ring.rs` compares all three: from batches of 32 up the per-batch
//! design was within noise of the hand-written ring or faster, and 5-15 times cheaper per
//! item than the per-item queue (numbers in the commit that introduced it). Single-item
//! [`Producer::push`] still works (a batch of one) but is the slow path, several times
//! costlier than a per-item queue: the reader should collect each recv batch per shard.
//!
//! On top of that the module adds:
//!
//! * SPSC by construction: [`Producer`] and [`Consumer`] are not `Clone` and take `&mut self`;
//! * an exact bound in *items*, kept in one counter that each side touches once per batch;
//! * statistics that each side writes alone, each on its own cache line ([`CachePadded`],
//!   128 bytes like glommio's `#[repr(align(128))]` producer and consumer lines), so they
//!   never cause false sharing between reader and worker;
//! * the optional [`Waker`] handshake: one fence and one load per published batch, a
//!   `write(2)` only when the worker announced that it is going to sleep.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam::queue::ArrayQueue;
use crossbeam::utils::CachePadded;

use super::wake::Waker;

/// How many emptied vectors wait for reuse. Beyond this the consumer frees them; the
/// producer only needs a few in flight per ring.
const SPARES: usize = 64;

/// Counters written only by the producer thread.
#[derive(Debug, Default)]
struct ProducerStats {
    pushed: AtomicU64,
    overflows: AtomicU64,
    /// Set once when the [`Producer`] is dropped.
    gone: AtomicBool,
}

/// Counters written only by the consumer thread.
#[derive(Debug, Default)]
struct ConsumerStats {
    popped: AtomicU64,
    /// Set once when the [`Consumer`] is dropped.
    gone: AtomicBool,
}

/// Adds to a counter that only one thread writes: a plain load + store, no locked RMW.
#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

struct Shared<T> {
    /// Full batches, oldest first. Each holds at least one item, so `capacity` slots always
    /// suffice for `capacity` items.
    batches: ArrayQueue<Vec<T>>,
    /// Emptied vectors on their way back to the producer.
    spares: ArrayQueue<Vec<T>>,
    /// Items queued, including those the consumer took out of `batches` but has not returned
    /// yet. Raised by the producer *before* it publishes, lowered by the consumer after it
    /// returns items, so it never underflows and an announced sleeper that reads it as zero
    /// really has nothing to do.
    len: CachePadded<AtomicUsize>,
    capacity: usize,
    producer: CachePadded<ProducerStats>,
    consumer: CachePadded<ConsumerStats>,
    waker: Option<Arc<Waker>>,
}

/// Constructors of a ring; the ring itself is only reachable through its two ends.
#[derive(Debug)]
pub struct Ring;

impl Ring {
    /// A ring of `capacity` items (at least 1) with no waker: the consumer polls it, e.g. in
    /// tests or when it already wakes up for another reason.
    ///
    /// Memory: 32 bytes per item of capacity up front (one batch slot per item, since a batch
    /// may hold a single item), plus the items' vectors while queued.
    pub fn with_capacity<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
        Self::build(capacity, None)
    }

    /// A ring whose producer rings `waker` when the consumer sleeps. One waker may serve
    /// several rings that feed the same worker.
    pub fn with_waker<T>(capacity: usize, waker: Arc<Waker>) -> (Producer<T>, Consumer<T>) {
        Self::build(capacity, Some(waker))
    }

    fn build<T>(capacity: usize, waker: Option<Arc<Waker>>) -> (Producer<T>, Consumer<T>) {
        let capacity = capacity.max(1);
        let shared = Arc::new(Shared {
            batches: ArrayQueue::new(capacity),
            spares: ArrayQueue::new(SPARES),
            len: CachePadded::new(AtomicUsize::new(0)),
            capacity,
            producer: CachePadded::default(),
            consumer: CachePadded::default(),
            waker,
        });
        (
            Producer {
                shared: Arc::clone(&shared),
            },
            Consumer {
                shared,
                current: Vec::new(),
            },
        )
    }
}

/// The sending end, owned by the netlink reader thread.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving end, owned by one worker thread.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// The batch being handed out when a caller asked for fewer items than it holds; an
    /// unallocated `Vec` otherwise.
    current: Vec<T>,
}

impl<T> Producer<T> {
    /// Pushes one item and wakes the consumer if it sleeps. A full ring returns the item and
    /// counts it in [`Producer::overflows`].
    ///
    /// This is a batch of one: the reader's hot path should collect a recv batch per shard
    /// and use [`Producer::push_batch`].
    pub fn push(&mut self, item: T) -> Result<(), T> {
        let s = &*self.shared;
        if s.len.load(Ordering::Acquire) >= s.capacity {
            bump(&s.producer.overflows, 1);
            return Err(item);
        }
        let mut one = take_spare(&s.spares);
        one.push(item);
        self.publish(one, 1);
        Ok(())
    }

    /// Pushes items from the front of `batch`, in order, as long as there is room, and wakes
    /// the consumer at most once. Pushed items are removed from `batch`; those that did not
    /// fit stay in it, in order, and are counted as overflows. Returns how many were pushed.
    ///
    /// When everything fits (the normal case) the vector itself is handed over and `batch`
    /// is replaced by an empty recycled vector: no item is copied and nothing is allocated.
    pub fn push_batch(&mut self, batch: &mut Vec<T>) -> usize {
        let s = &*self.shared;
        // Only this producer raises `len`, so the room can only grow until we publish.
        let room = s.capacity.saturating_sub(s.len.load(Ordering::Acquire));
        let n = room.min(batch.len());
        if n < batch.len() {
            bump(&s.producer.overflows, (batch.len() - n) as u64);
        }
        if n == 0 {
            return 0;
        }
        let full = if n == batch.len() {
            mem::replace(batch, take_spare(&s.spares))
        } else {
            // Overflow path only: the rest needs its own vector.
            let rest = batch.split_off(n);
            mem::replace(batch, rest)
        };
        self.publish(full, n);
        n
    }

    /// Publishes a non-empty batch of `n` items that fits, then wakes the consumer.
    fn publish(&mut self, full: Vec<T>, n: usize) {
        let s = &*self.shared;
        s.len.fetch_add(n, Ordering::AcqRel);
        // Cannot fail: every queued batch holds at least one counted item and `len` stays
        // within `capacity`, which is also the number of slots.
        if s.batches.push(full).is_err() {
            s.len.fetch_sub(n, Ordering::AcqRel);
            bump(&s.producer.overflows, n as u64);
            debug_assert!(false, "ring batch queue overflowed below its item capacity");
            return;
        }
        bump(&s.producer.pushed, n as u64);
        if let Some(w) = &s.waker {
            w.wake();
        }
    }

    /// Items pushed so far.
    pub fn pushed(&self) -> u64 {
        self.shared.producer.pushed.load(Ordering::Relaxed)
    }

    /// Items refused because the ring was full, so far.
    pub fn overflows(&self) -> u64 {
        self.shared.producer.overflows.load(Ordering::Relaxed)
    }

    /// Items currently queued (a snapshot; the consumer may be popping).
    pub fn len(&self) -> usize {
        self.shared.len.load(Ordering::Acquire)
    }

    /// Whether the ring is empty (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound, in items.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Whether the consumer end was dropped (the worker exited): pushes still succeed until
    /// the ring is full, but nobody will read them.
    pub fn is_disconnected(&self) -> bool {
        self.shared.consumer.gone.load(Ordering::Acquire)
    }
}

impl<T> Consumer<T> {
    /// Pops up to `max` items in order, appending them to `out`; returns how many.
    ///
    /// When `out` is empty and a whole batch fits, the batch's vector is swapped into `out`
    /// (and `out`'s old allocation goes back to the producer): no item is copied.
    pub fn pop_batch(&mut self, out: &mut Vec<T>, max: usize) -> usize {
        let s = &*self.shared;
        let mut n = 0;
        while n < max {
            if self.current.is_empty() {
                match s.batches.pop() {
                    Some(batch) => self.current = batch,
                    None => break,
                }
            }
            let take = (max - n).min(self.current.len());
            if out.is_empty() && take == self.current.len() {
                mem::swap(out, &mut self.current);
            } else {
                out.extend(self.current.drain(..take));
            }
            n += take;
            if self.current.is_empty() {
                // Hand the allocation back at once, so the producer finds it on its next
                // batch.
                recycle(&s.spares, mem::take(&mut self.current));
            }
        }
        if n > 0 {
            s.len.fetch_sub(n, Ordering::AcqRel);
            bump(&s.consumer.popped, n as u64);
        }
        n
    }

    /// Pops one item.
    ///
    /// The slow path (it shifts the rest of the current batch): workers use
    /// [`Consumer::pop_batch`].
    pub fn pop(&mut self) -> Option<T> {
        let s = &*self.shared;
        if self.current.is_empty() {
            self.current = s.batches.pop()?;
        }
        let item = self.current.remove(0);
        if self.current.is_empty() {
            recycle(&s.spares, mem::take(&mut self.current));
        }
        s.len.fetch_sub(1, Ordering::AcqRel);
        bump(&s.consumer.popped, 1);
        Some(item)
    }

    /// Pops up to `max` items like [`Consumer::pop_batch`]; if there are none, sleeps on the
    /// ring's waker until the producer pushes or `timeout` passes, then tries once more.
    ///
    /// For a worker with a single input. A worker with several rings or file descriptors uses
    /// [`Waker::prepare_sleep`] and checks each of them itself. Without a waker this does not
    /// sleep.
    pub fn pop_batch_or_wait(
        &mut self,
        out: &mut Vec<T>,
        max: usize,
        timeout: Option<Duration>,
    ) -> std::io::Result<usize> {
        let n = self.pop_batch(out, max);
        // `max == 0` asks for nothing: never sleep on behalf of such a call.
        if n > 0 || max == 0 {
            return Ok(n);
        }
        if let Some(w) = &self.shared.waker {
            let s = &*self.shared;
            // A dropped producer wakes us once (see `Drop for Producer`); do not sleep again.
            w.sleep_unless(timeout, || {
                s.len.load(Ordering::Acquire) != 0 || s.producer.gone.load(Ordering::Acquire)
            })?;
        }
        Ok(self.pop_batch(out, max))
    }

    /// Items popped so far.
    pub fn popped(&self) -> u64 {
        self.shared.consumer.popped.load(Ordering::Relaxed)
    }

    /// Items currently queued (a snapshot; the producer may be pushing).
    pub fn len(&self) -> usize {
        self.shared.len.load(Ordering::Acquire)
    }

    /// Whether the ring is empty (a snapshot). Use it in a [`Waker::prepare_sleep`] re-check.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The waker this ring rings, if any.
    pub fn waker(&self) -> Option<&Arc<Waker>> {
        self.shared.waker.as_ref()
    }

    /// Whether the producer end was dropped: once [`Consumer::is_empty`] too, nothing more
    /// will arrive.
    pub fn is_disconnected(&self) -> bool {
        self.shared.producer.gone.load(Ordering::Acquire)
    }
}

/// Hands every item of a popped batch to `f`, in order, and leaves `batch` empty with its
/// capacity (the worker's loop over what [`Consumer::pop_batch`] gave it).
///
/// By reference, then one `clear`: `drain(..)` would move each item out first, a 488-byte
/// copy per kernel event (`bench/micro/hop.rs`).
pub fn consume<T>(batch: &mut Vec<T>, mut f: impl FnMut(&T)) {
    for item in batch.iter() {
        f(item);
    }
    batch.clear();
}

/// A recycled vector for the producer, or a new empty one, without ever waiting for the
/// consumer.
///
/// `ArrayQueue::pop` spins while the slot at its head has been claimed by a push that has not
/// yet published it. The consumer (a worker pinned to a CPU, normal priority) can be
/// preempted right there by the real-time reader on the same CPU; the reader then spins
/// until RT throttling lets the worker run again, about 0.9 s, and the event socket
/// overruns (churn at 50k/s with 50k live entries: ~45k events lost per overrun). With a
/// single pusher only the newest slot (`tail - 1`) can be unpublished, so popping when at
/// least two spares are queued never reaches it.
fn take_spare<T>(spares: &ArrayQueue<Vec<T>>) -> Vec<T> {
    if spares.len() >= 2 {
        spares.pop().unwrap_or_default()
    } else {
        Vec::new()
    }
}

/// Returns an emptied vector to the producer, or frees it if enough are already waiting.
fn recycle<T>(spares: &ArrayQueue<Vec<T>>, mut spare: Vec<T>) {
    if spare.capacity() > 0 {
        spare.clear();
        let _ = spares.push(spare);
    }
}

impl<T> Drop for Producer<T> {
    /// Tells a sleeping consumer that nothing more will come, so a worker blocked without a
    /// timeout sees the disconnection instead of sleeping forever.
    fn drop(&mut self) {
        self.shared.producer.gone.store(true, Ordering::Release);
        if let Some(w) = &self.shared.waker {
            w.wake();
        }
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        self.shared.consumer.gone.store(true, Ordering::Release);
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("pushed", &self.pushed())
            .field("overflows", &self.overflows())
            .finish()
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("len", &self.len())
            .field("popped", &self.popped())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::thread;
    use std::time::Instant;

    use super::*;

    /// xorshift64*: a seeded, dependency-free generator for test pauses and burst sizes.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn test_take_spare_never_takes_the_newest() {
        let q: ArrayQueue<Vec<u32>> = ArrayQueue::new(4);
        assert_eq!(take_spare(&q).capacity(), 0);
        q.push(Vec::with_capacity(8)).unwrap();
        // One queued: it may be the one a preempted worker is still publishing.
        assert_eq!(take_spare(&q).capacity(), 0);
        assert_eq!(q.len(), 1);
        q.push(Vec::with_capacity(16)).unwrap();
        assert!(take_spare(&q).capacity() >= 8);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn test_push_pop_fifo() {
        let (mut p, mut c) = Ring::with_capacity(8);
        for i in 0..5 {
            p.push(i).unwrap();
        }
        assert_eq!((p.len(), c.len()), (5, 5));
        let mut out = Vec::new();
        assert_eq!(c.pop_batch(&mut out, 3), 3);
        assert_eq!(out, [0, 1, 2]);
        assert_eq!(c.pop(), Some(3));
        assert_eq!(c.pop_batch(&mut out, 100), 1);
        assert_eq!(out, [0, 1, 2, 4]);
        assert_eq!(c.pop_batch(&mut out, 100), 0);
        assert!(c.is_empty() && p.is_empty());
        assert_eq!((p.pushed(), c.popped(), p.overflows()), (5, 5, 0));
    }

    #[test]
    fn test_overflow_returned_and_counted() {
        let (mut p, mut c) = Ring::with_capacity(2);
        p.push("a").unwrap();
        p.push("b").unwrap();
        assert_eq!(p.push("c"), Err("c"));
        assert_eq!(p.push("d"), Err("d"));
        assert_eq!((p.pushed(), p.overflows()), (2, 2));
        assert_eq!(c.pop(), Some("a"));
        p.push("e").unwrap();
        let mut out = Vec::new();
        c.pop_batch(&mut out, 10);
        assert_eq!(out, ["b", "e"]);
    }

    #[test]
    fn test_push_batch_partial() {
        let (mut p, mut c) = Ring::with_capacity(4);
        p.push(0).unwrap();
        let mut batch: Vec<i32> = (1..=6).collect();
        assert_eq!(p.push_batch(&mut batch), 3);
        assert_eq!(batch, [4, 5, 6], "what did not fit stays, in order");
        assert_eq!((p.pushed(), p.overflows()), (4, 3));
        let mut out = Vec::new();
        c.pop_batch(&mut out, usize::MAX);
        assert_eq!(out, [0, 1, 2, 3]);
        assert_eq!(p.push_batch(&mut batch), 3);
        assert!(batch.is_empty());
        assert_eq!(p.push_batch(&mut batch), 0);
    }

    #[test]
    fn test_pop_batch_splits_batches() {
        let (mut p, mut c) = Ring::with_capacity(100);
        let mut batch: Vec<u32> = (0..10).collect();
        assert_eq!(p.push_batch(&mut batch), 10);
        batch.extend(10..15);
        assert_eq!(p.push_batch(&mut batch), 5);
        let mut out = Vec::new();
        let mut seen = Vec::new();
        let mut lens = Vec::new();
        loop {
            out.clear();
            if c.pop_batch(&mut out, 4) == 0 {
                break;
            }
            seen.extend_from_slice(&out);
            lens.push(c.len());
        }
        assert_eq!(seen, (0..15).collect::<Vec<_>>());
        assert_eq!(
            lens,
            [11, 7, 3, 0],
            "len counts items still inside a taken batch"
        );
        assert_eq!(c.pop(), None);
    }

    #[test]
    fn test_pop_one_from_a_batch() {
        let (mut p, mut c) = Ring::with_capacity(8);
        let mut batch = vec![1, 2, 3];
        p.push_batch(&mut batch);
        assert_eq!((c.pop(), c.len()), (Some(1), 2));
        let mut out = Vec::new();
        assert_eq!(c.pop_batch(&mut out, 8), 2);
        assert_eq!(out, [2, 3]);
        assert_eq!(c.pop(), None);
        assert_eq!((p.pushed(), c.popped()), (3, 3));
    }

    /// In the steady state the vectors circulate: the consumer's emptied ones come back to
    /// the producer, so no batch allocates.
    #[test]
    fn test_batches_recycle_allocations() {
        let (mut p, mut c) = Ring::with_capacity(1024);
        let mut batch = Vec::with_capacity(64);
        let mut out = Vec::with_capacity(64);
        for round in 0..4 {
            batch.extend(0..64u64);
            assert_eq!(p.push_batch(&mut batch), 64);
            assert!(batch.is_empty());
            // The producer leaves the newest spare queued (`take_spare`): recycling starts
            // once two are parked.
            if round > 1 {
                assert!(batch.capacity() >= 64, "a recycled vector came back");
            }
            out.clear();
            assert_eq!(c.pop_batch(&mut out, 64), 64);
        }
    }

    #[test]
    fn test_zero_capacity_is_one() {
        let (mut p, _c) = Ring::with_capacity(0);
        assert_eq!(p.capacity(), 1);
        p.push(1).unwrap();
        assert_eq!(p.push(2), Err(2));
    }

    #[test]
    fn test_counters_on_separate_cache_lines() {
        let (p, _c) = Ring::with_capacity::<u8>(1);
        let prod = &*p.shared.producer as *const ProducerStats as usize;
        let cons = &*p.shared.consumer as *const ConsumerStats as usize;
        assert_eq!(prod % 128, 0);
        assert_eq!(cons % 128, 0);
        assert!(prod.abs_diff(cons) >= 128);
    }

    #[test]
    fn test_disconnect() {
        let (p, c) = Ring::with_capacity::<u8>(1);
        assert!(!p.is_disconnected() && !c.is_disconnected());
        drop(c);
        assert!(p.is_disconnected());
        let (p, c) = Ring::with_capacity::<u8>(1);
        drop(p);
        assert!(c.is_disconnected());
    }

    #[test]
    fn test_dropped_producer_wakes_sleeper() {
        let waker = Arc::new(Waker::new().unwrap());
        let (p, mut c) = Ring::with_waker::<u32>(4, waker);
        let t = thread::spawn(move || {
            let mut out = Vec::new();
            // No timeout: only the producer's drop can end this wait.
            c.pop_batch_or_wait(&mut out, 8, None).unwrap();
            c.is_disconnected()
        });
        thread::sleep(Duration::from_millis(20));
        drop(p);
        assert!(t.join().unwrap());
    }

    /// The two interleavings of the sleep protocol, one step at a time: a push that lands
    /// after the consumer found the ring empty but before it announced its sleep is caught by
    /// the re-check (no signal needed); a push after the announcement signals the eventfd.
    #[test]
    fn test_sleep_protocol_interleavings() {
        let waker = Arc::new(Waker::new().unwrap());
        let (mut p, mut c) = Ring::with_waker::<u32>(4, Arc::clone(&waker));
        let long = Some(Duration::from_secs(10));
        let mut out = Vec::new();

        assert_eq!(c.pop_batch(&mut out, 8), 0);
        p.push(1).unwrap();
        assert_eq!(waker.signals(), 0, "nobody was asleep");
        let start = Instant::now();
        assert!(waker.sleep_unless(long, || !c.is_empty()).unwrap());
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the re-check saw the item"
        );
        assert_eq!(c.pop_batch(&mut out, 8), 1);

        waker.prepare_sleep();
        assert!(c.is_empty());
        p.push(2).unwrap();
        assert_eq!(waker.signals(), 1, "the announced sleeper is signalled");
        assert!(waker.wait(long).unwrap());
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(c.pop_batch(&mut out, 8), 1);
        assert_eq!(out, [1, 2]);
    }

    /// A worker fed by two rings sleeps on one waker; a push to either wakes it.
    #[test]
    fn test_one_waker_two_rings() {
        let waker = Arc::new(Waker::new().unwrap());
        let (mut p1, mut c1) = Ring::with_waker::<u32>(4, Arc::clone(&waker));
        let (mut p2, mut c2) = Ring::with_waker::<u32>(4, Arc::clone(&waker));
        let worker = thread::spawn(move || {
            let mut out = Vec::new();
            loop {
                c1.pop_batch(&mut out, 8);
                c2.pop_batch(&mut out, 8);
                if out.len() == 2 {
                    break;
                }
                let woken = waker
                    .sleep_unless(Some(Duration::from_secs(10)), || {
                        !c1.is_empty() || !c2.is_empty()
                    })
                    .unwrap();
                assert!(woken, "lost wake-up");
            }
            out
        });
        thread::sleep(Duration::from_millis(10));
        p2.push(2).unwrap();
        thread::sleep(Duration::from_millis(10));
        p1.push(1).unwrap();
        assert_eq!(worker.join().unwrap(), [2, 1]);
    }

    #[test]
    fn test_pop_batch_or_wait_times_out() {
        let waker = Arc::new(Waker::new().unwrap());
        let (_p, mut c) = Ring::with_waker::<u32>(4, waker);
        let mut out = Vec::new();
        let start = Instant::now();
        assert_eq!(
            c.pop_batch_or_wait(&mut out, 8, Some(Duration::from_millis(10)))
                .unwrap(),
            0
        );
        assert!(start.elapsed() >= Duration::from_millis(10));
    }

    const STRESS_ITEMS: u64 = 200_000;

    /// A producer thread that pushes `0..STRESS_ITEMS` in bursts of random size (single
    /// pushes and batches) separated by random pauses, often just long enough for the
    /// consumer to go to sleep. Retries on a full ring: these tests are about wake-ups.
    fn bursty_producer(mut p: Producer<u64>, seed: u64) -> thread::JoinHandle<u64> {
        thread::spawn(move || {
            let mut rng = Rng(seed);
            let mut next = 0;
            let mut batch = Vec::new();
            while next < STRESS_ITEMS {
                let burst = 1 + rng.next() % 96;
                if rng.next() & 1 == 0 {
                    for _ in 0..burst.min(STRESS_ITEMS - next) {
                        while p.push(next).is_err() {
                            thread::yield_now();
                        }
                        next += 1;
                    }
                } else {
                    batch.extend(next..(next + burst).min(STRESS_ITEMS));
                    next += batch.len() as u64;
                    while !batch.is_empty() {
                        let before = batch.len();
                        if p.push_batch(&mut batch) < before {
                            thread::yield_now();
                        }
                    }
                }
                match rng.next() % 8 {
                    0 => thread::sleep(Duration::from_micros(rng.next() % 500)),
                    1 | 2 => thread::yield_now(),
                    _ => {}
                }
            }
            p.pushed()
        })
    }

    /// Checks that `out` continues the sequence at `expect`.
    fn check_in_order(out: &[u64], expect: &mut u64) {
        for &v in out {
            assert_eq!(v, *expect, "items arrive once, in order");
            *expect += 1;
        }
    }

    /// No lost wake-up, with the explicit protocol a multi-input worker uses. The consumer
    /// sleeps with a timeout far longer than any producer pause; waking by timeout while the
    /// producer is still running means a wake-up was lost. Every item arrives exactly once,
    /// in order, and the eventfd is written far less often than once per item.
    #[test]
    fn test_no_lost_wakeup_stress() {
        let waker = Arc::new(Waker::new().unwrap());
        let (p, mut c) = Ring::with_waker::<u64>(64, Arc::clone(&waker));
        let started = Instant::now();
        let producer = bursty_producer(p, 0x9e37_79b9_7f4a_7c15);
        let mut expect = 0;
        let mut out = Vec::with_capacity(32);
        while expect < STRESS_ITEMS {
            assert!(started.elapsed() < Duration::from_secs(60), "too slow");
            out.clear();
            if c.pop_batch(&mut out, 32) == 0 {
                waker.prepare_sleep();
                if !c.is_empty() || c.is_disconnected() {
                    waker.cancel_sleep();
                    continue;
                }
                let woken = waker.wait(Some(Duration::from_secs(5))).unwrap();
                assert!(woken || c.is_disconnected(), "lost wake-up at {expect}");
                continue;
            }
            check_in_order(&out, &mut expect);
        }
        let pushed = producer.join().unwrap();
        assert_eq!((pushed, c.popped()), (STRESS_ITEMS, STRESS_ITEMS));
        assert!(waker.signals() > 0, "the consumer did sleep");
        assert!(waker.signals() < STRESS_ITEMS, "not one syscall per item");
    }

    /// The same through [`Consumer::pop_batch_or_wait`]: no call may last as long as its
    /// timeout while the producer is running.
    #[test]
    fn test_no_lost_wakeup_pop_batch_or_wait() {
        let waker = Arc::new(Waker::new().unwrap());
        let (p, mut c) = Ring::with_waker::<u64>(64, Arc::clone(&waker));
        let producer = bursty_producer(p, 0x1234_5678_9abc_def1);
        let mut expect = 0;
        let mut out = Vec::with_capacity(32);
        while expect < STRESS_ITEMS {
            out.clear();
            let call = Instant::now();
            c.pop_batch_or_wait(&mut out, 32, Some(Duration::from_secs(5)))
                .unwrap();
            assert!(
                call.elapsed() < Duration::from_secs(5),
                "lost wake-up at {expect}"
            );
            check_in_order(&out, &mut expect);
        }
        assert_eq!(producer.join().unwrap(), STRESS_ITEMS);
        assert!(waker.signals() < STRESS_ITEMS);
    }
}
