//! Thread-per-core runtime primitives: rings, wake-ups and placement.
//!
//! The daemon's threads are laid out so that the ctnetlink socket never overruns and the hot
//! path takes no lock:
//!
//! * one **netlink reader** thread only drains ctnetlink events, hashes each flow with
//!   [`placement::shard_of`] and pushes it into that shard's [`ring`]. It runs real-time
//!   (see [`crate::sys::sched`]) and *blocks* in `recv` when idle: a real-time thread that
//!   spins never yields, and on a 2-core machine it would starve a worker and the kernel's
//!   own conntrack work. A full ring hands the event back and counts it; the reader never
//!   waits for a worker.
//! * one **worker** per CPU, pinned ([`placement`]), owns one shard of the caches. It pops
//!   events in batches and, when its ring is empty, sleeps on a [`wake::Waker`] (an eventfd it
//!   can poll together with its timers and sockets) instead of spinning. The producer rings
//!   the eventfd only when the worker said it was going to sleep, so a busy worker costs the
//!   reader no syscall.
//! * batched **sender** threads own the sync links.
//!
//! This module holds only the building blocks; they depend on nothing else in the crate but
//! [`crate::sys`].

pub mod placement;
pub mod reader;
pub mod receiver;
pub mod ring;
pub mod sender;
pub mod wake;
pub mod worker;

pub use placement::{Placement, pin_current, plan, shard_of};
pub use ring::{Consumer, Producer, Ring};
pub use wake::Waker;
