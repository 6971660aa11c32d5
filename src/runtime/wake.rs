//! Sleeping without spinning, waking without a syscall per item.
//!
//! A worker with an empty ring must block: on the project's 2-core machines a spinning thread
//! takes a whole core away from the kernel's conntrack work and from the other worker. But a
//! producer that rang a doorbell on every push would pay a `write(2)` per event, which costs
//! more than handling the event. [`Waker`] implements the usual middle ground, the "sleeping
//! flag" protocol:
//!
//! * the consumer, about to sleep, sets `sleeping`, issues a full fence, and checks its sources
//!   once more; only if they are still empty does it block on the eventfd;
//! * a producer, after publishing items, issues a full fence and reads `sleeping`; only if it
//!   is set (and this producer is the one that clears it) does it write to the eventfd.
//!
//! The two fences order "publish items → read flag" against "set flag → read items", so at
//! least one side sees the other (Dekker): either the consumer sees the new items and does not
//! sleep, or the producer sees the flag and signals. The eventfd counter keeps a signal that
//! arrives before the consumer reaches `poll(2)`, so no wake-up is lost. The price of a lost
//! race is at most one spurious wake-up, never a lost one. While the consumer is busy the
//! producer's cost is one fence and one load of a cache line the consumer rarely writes.
//!
//! The eventfd is exposed with [`Waker::as_fd`] so a worker can wait on it together with its
//! timers and sockets in one `poll(2)`; [`Waker::prepare_sleep`] and [`Waker::finish_sleep`]
//! bracket such a custom wait:
//!
//! ```
//! use std::os::fd::AsFd;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use conntrackd::runtime::{Ring, Waker};
//! use conntrackd::sys::eventfd::{EventFd, poll_in};
//!
//! let waker = Arc::new(Waker::new()?);
//! let (mut producer, mut events) = Ring::with_waker::<u32>(1024, Arc::clone(&waker));
//! let timer = EventFd::new()?; // stands in for a timerfd or a socket
//! let reader = std::thread::spawn(move || producer.push_batch(&mut vec![1, 2, 3]));
//!
//! let mut batch = Vec::new();
//! while batch.len() < 3 {
//!     if events.pop_batch(&mut batch, 256) > 0 {
//!         continue; // handle the batch, then look again before sleeping
//!     }
//!     waker.prepare_sleep();
//!     if !events.is_empty() {
//!         waker.cancel_sleep(); // arrived between the pop and the announcement
//!         continue;
//!     }
//!     let ready = poll_in(&[waker.as_fd(), timer.as_fd()], Some(Duration::from_secs(5)))?;
//!     waker.finish_sleep()?;
//!     if ready[1] {
//!         timer.drain()?; // run timers
//!     }
//! }
//! assert_eq!(batch, [1, 2, 3]);
//! reader.join().unwrap();
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::time::Duration;

use crossbeam::utils::CachePadded;

use crate::sys::eventfd::EventFd;

/// A doorbell for one sleeping consumer, rung by any number of producers.
///
/// Share it with `Arc`; all methods take `&self`. Only the consumer calls the sleep methods.
#[derive(Debug)]
pub struct Waker {
    /// Set by the consumer before it blocks; read by producers after every publish. Alone on
    /// its cache line so that the consumer's other state never invalidates it.
    sleeping: CachePadded<AtomicBool>,
    /// How many times a producer actually signalled the eventfd.
    signals: CachePadded<AtomicU64>,
    efd: EventFd,
}

impl Waker {
    /// Creates a waker with its own eventfd.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            sleeping: CachePadded::new(AtomicBool::new(false)),
            signals: CachePadded::new(AtomicU64::new(0)),
            efd: EventFd::new()?,
        })
    }

    /// Producer side: call after publishing items. Signals the eventfd only if the consumer
    /// announced that it is going to sleep; otherwise costs a fence and a load.
    #[inline]
    pub fn wake(&self) {
        // Orders the caller's publish (e.g. a ring push) before the flag read; pairs with the
        // fence in `prepare_sleep`.
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::AcqRel) {
            self.signal();
        }
    }

    #[cold]
    fn signal(&self) {
        self.signals.fetch_add(1, Ordering::Relaxed);
        // The only possible failures are EBADF/EINVAL, impossible on our own eventfd; and a
        // saturated counter is reported as success. Nothing useful to do with an error here.
        let _ = self.efd.signal();
    }

    /// Consumer side: announces the intention to sleep. After this, re-check every source
    /// that producers feed; if any has work, call [`Waker::cancel_sleep`], otherwise wait
    /// (with [`Waker::wait`] or in your own `poll` on [`Waker::as_fd`] followed by
    /// [`Waker::finish_sleep`]).
    #[inline]
    pub fn prepare_sleep(&self) {
        self.sleeping.store(true, Ordering::Relaxed);
        // Orders the flag store before the caller's re-check of its sources; pairs with the
        // fence in `wake`.
        fence(Ordering::SeqCst);
    }

    /// Consumer side: withdraws a [`Waker::prepare_sleep`] because work was found.
    #[inline]
    pub fn cancel_sleep(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Consumer side: after a custom wait on [`Waker::as_fd`], clears the flag and the
    /// eventfd counter so that the next sleep blocks again.
    pub fn finish_sleep(&self) -> io::Result<()> {
        self.sleeping.store(false, Ordering::Relaxed);
        self.efd.drain().map(drop)
    }

    /// Consumer side: blocks until a producer signals or `timeout` passes (`None`: forever).
    /// Must follow [`Waker::prepare_sleep`] and a re-check that found nothing. Returns `true`
    /// if woken by a signal, `false` on timeout or `EINTR`.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let woken = self.efd.wait_readable(timeout);
        self.finish_sleep()?;
        woken
    }

    /// Consumer side: the whole protocol in one call. Sleeps until signalled or `timeout`,
    /// unless `has_work` (evaluated after announcing the sleep) returns `true`. Returns `true`
    /// if it did not sleep or was woken, `false` on timeout.
    pub fn sleep_unless(
        &self,
        timeout: Option<Duration>,
        has_work: impl FnOnce() -> bool,
    ) -> io::Result<bool> {
        self.prepare_sleep();
        if has_work() {
            self.cancel_sleep();
            return Ok(true);
        }
        self.wait(timeout)
    }

    /// How many times producers rang the eventfd (one `write(2)` each). Compare with the
    /// number of items pushed to see how much the flag protocol saved.
    pub fn signals(&self) -> u64 {
        self.signals.load(Ordering::Relaxed)
    }

    /// The eventfd, readable once a producer signalled. For a worker's own `poll(2)` set.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.efd.as_fd()
    }
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.efd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::thread;
    use std::time::Instant;

    use super::*;
    use crate::sys::eventfd::poll_in;

    #[test]
    fn test_wake_without_sleeper_is_silent() {
        let w = Waker::new().unwrap();
        for _ in 0..1000 {
            w.wake();
        }
        assert_eq!(w.signals(), 0, "no syscall while nobody sleeps");
    }

    #[test]
    fn test_sleep_unless_work() {
        let w = Waker::new().unwrap();
        let start = Instant::now();
        assert!(
            w.sleep_unless(Some(Duration::from_secs(10)), || true)
                .unwrap()
        );
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(
            !w.sleep_unless(Some(Duration::from_millis(5)), || false)
                .unwrap()
        );
    }

    #[test]
    fn test_wake_after_prepare_is_not_lost() {
        // The producer rings between the consumer's announcement and its wait: the signal
        // must survive in the eventfd counter and end the wait at once.
        let w = Waker::new().unwrap();
        w.prepare_sleep();
        w.wake();
        assert_eq!(w.signals(), 1);
        let start = Instant::now();
        assert!(w.wait(Some(Duration::from_secs(10))).unwrap());
        assert!(start.elapsed() < Duration::from_secs(5));
        // Drained: the next sleep times out.
        assert!(!w.sleep_unless(Some(Duration::ZERO), || false).unwrap());
    }

    #[test]
    fn test_custom_poll_set() {
        let w = Waker::new().unwrap();
        w.prepare_sleep();
        w.wake();
        let ready = poll_in(&[w.as_fd()], Some(Duration::from_secs(10))).unwrap();
        assert_eq!(ready, vec![true]);
        w.finish_sleep().unwrap();
        let ready = poll_in(&[w.as_fd()], Some(Duration::ZERO)).unwrap();
        assert_eq!(ready, vec![false]);
    }

    #[test]
    fn test_cross_thread_wake() {
        let w = Arc::new(Waker::new().unwrap());
        let flag = Arc::new(AtomicUsize::new(0));
        let (w2, flag2) = (Arc::clone(&w), Arc::clone(&flag));
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            flag2.store(1, Ordering::Relaxed);
            w2.wake();
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while flag.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "wake-up lost");
            w.sleep_unless(Some(Duration::from_secs(10)), || {
                flag.load(Ordering::Relaxed) != 0
            })
            .unwrap();
        }
        t.join().unwrap();
    }
}
