//! Where each thread runs, and which shard owns a flow.
//!
//! # The spread policy
//!
//! The daemon has three kinds of threads and they want different things:
//!
//! * **Workers** own one cache shard each and never share it, so a worker that stays on one
//!   CPU keeps its shard hot in that CPU's caches. [`plan`] pins worker `i` to the `i`-th
//!   available CPU ([`Placement::Fixed`]), wrapping round-robin when there are more workers
//!   than CPUs so that no CPU carries two workers more than another. The default is one
//!   worker per available CPU ([`default_workers`]).
//! * **The netlink reader** is [`Placement::Unbound`] ([`READER`]). It runs real-time
//!   (SCHED_RR by default, like conntrackd 1.4.7) and blocks in `recv` when idle, so it costs
//!   nothing while asleep; when an event arrives the scheduler may run it on whichever CPU is
//!   free or running a worker, instead of always preempting the same worker. Pinning it would
//!   turn one worker into a second-class shard.
//! * **Senders and the control thread** are unbound too: they sleep most of the time and
//!   their latency matters less than the workers' cache locality.
//!
//! On the project's 2-core machines this gives: reader unpinned and real-time, worker 0 on
//! CPU 0, worker 1 on CPU 1, everything else floating.
//!
//! CPU numbers are the kernel's. [`available_cpus`] lists the CPUs this process may use
//! (cgroup cpusets and `taskset` shrink it), so plans are made from that list, never from
//! `0..n`.
//!
//! # Sharding
//!
//! [`shard_of`] maps a flow hash to a shard. It is the single routing function used by the
//! reader, so every event of one flow lands on the same worker and that worker alone ever
//! touches the flow's entry: the hot path needs no lock.

use std::io;

use crate::sys::sched;

/// Where a thread may run (the shape of glommio's `Placement`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Placement {
    /// No pinning: the thread keeps the affinity it inherited.
    Unbound,
    /// Any CPU of this set (kernel CPU numbers).
    Fenced(Vec<usize>),
    /// Exactly this CPU.
    Fixed(usize),
}

/// The netlink reader's placement: unbound, for the reasons in the module documentation.
pub const READER: Placement = Placement::Unbound;

/// The CPUs the calling thread may run on, ascending (empty if the kernel would not say).
///
/// Call it from the main thread before pinning anything: a pinned thread sees only its own
/// CPU.
pub fn available_cpus() -> Vec<usize> {
    let mut cpus: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|core| core.id)
        .collect();
    cpus.sort_unstable();
    cpus
}

/// How many workers to run on `n_cores` CPUs: one per CPU, at least one.
pub fn default_workers(n_cores: usize) -> usize {
    n_cores.max(1)
}

/// Placements for `n_workers` workers on CPUs `0..n_cores` (see the spread policy above).
///
/// Use [`plan_on`] with [`available_cpus`] in the daemon; this form is for tests and docs.
pub fn plan(n_cores: usize, n_workers: usize) -> Vec<Placement> {
    let cpus: Vec<usize> = (0..n_cores).collect();
    plan_on(&cpus, n_workers)
}

/// Placements for `n_workers` workers on the given CPUs: worker `i` is fixed on
/// `cpus[i % cpus.len()]`. With no CPU known every worker is unbound.
pub fn plan_on(cpus: &[usize], n_workers: usize) -> Vec<Placement> {
    (0..n_workers)
        .map(|i| match cpus.len() {
            0 => Placement::Unbound,
            n => Placement::Fixed(cpus[i % n]),
        })
        .collect()
}

/// Applies `placement` to the calling thread.
///
/// Goes through `sched_setaffinity(2)` ([`sched::set_current_thread_affinity`]) rather than
/// `core_affinity::set_for_current`: it also handles [`Placement::Fenced`] sets and returns
/// the errno (e.g. a CPU outside the cgroup's cpuset) for the caller to log as a warning; a
/// thread that cannot be pinned still works, only slower.
pub fn pin_current(placement: &Placement) -> io::Result<()> {
    match placement {
        Placement::Unbound => Ok(()),
        Placement::Fixed(cpu) => sched::set_current_thread_affinity(&[*cpu]),
        Placement::Fenced(cpus) => sched::set_current_thread_affinity(cpus),
    }
}

/// The shard (in `0..n`) that owns a flow with this hash. Returns 0 when `n` is 0.
///
/// Stable: a pure function of `(hash, n)` with fixed constants, so a flow keeps its shard
/// for the life of the process and tests can pin expected values. Balanced even for weak
/// hashes: the hash is first run through the MurmurHash3 64-bit finaliser, which spreads
/// every input bit over the high bits, then reduced with a multiply-shift (Lemire's
/// "fastrange") instead of `%`, which avoids a division on every event.
#[inline]
pub fn shard_of(hash: u64, n: usize) -> usize {
    let mut h = hash;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    // (h * n) >> 64 is in 0..n for any n, and 0 for n == 0.
    ((u128::from(h) * n as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;

    #[test]
    fn test_plan_two_cores() {
        assert_eq!(plan(2, 2), [Placement::Fixed(0), Placement::Fixed(1)]);
        assert_eq!(READER, Placement::Unbound);
    }

    #[test]
    fn test_plan_wraps_and_degrades() {
        use Placement::{Fixed, Unbound};
        assert_eq!(plan(2, 3), [Fixed(0), Fixed(1), Fixed(0)]);
        assert_eq!(plan(4, 1), [Fixed(0)]);
        assert_eq!(plan(0, 2), [Unbound, Unbound]);
        assert!(plan(4, 0).is_empty());
        assert_eq!(plan_on(&[3, 5], 3), [Fixed(3), Fixed(5), Fixed(3)]);
    }

    #[test]
    fn test_default_workers() {
        assert_eq!(default_workers(0), 1);
        assert_eq!(default_workers(2), 2);
    }

    #[test]
    fn test_available_cpus_match_affinity() {
        let cpus = available_cpus();
        assert!(!cpus.is_empty());
        assert_eq!(cpus, sched::current_thread_affinity().unwrap());
    }

    #[test]
    fn test_pin_current() {
        let cpus = available_cpus();
        let last = *cpus.last().unwrap();
        let all = cpus.clone();
        let t = thread::spawn(move || {
            pin_current(&Placement::Unbound).unwrap();
            let unbound = sched::current_thread_affinity().unwrap();
            pin_current(&Placement::Fixed(last)).unwrap();
            let fixed = sched::current_thread_affinity().unwrap();
            pin_current(&Placement::Fenced(all)).unwrap();
            let fenced = sched::current_thread_affinity().unwrap();
            (unbound, fixed, fenced)
        });
        let (unbound, fixed, fenced) = t.join().unwrap();
        assert_eq!(unbound, cpus);
        assert_eq!(fixed, [last]);
        assert_eq!(fenced, cpus);
        assert!(pin_current(&Placement::Fenced(Vec::new())).is_err());
    }

    #[test]
    fn test_shard_of_stable() {
        // Golden values: changing them moves every flow to another shard.
        let got: Vec<usize> = [0u64, 1, 2, 0xdead_beef, u64::MAX]
            .iter()
            .map(|&h| shard_of(h, 7))
            .collect();
        assert_eq!(got, GOLDEN);
        assert_eq!(shard_of(12345, 0), 0);
        assert_eq!(shard_of(12345, 1), 0);
    }

    // Cross-checked with an independent Python implementation of fmix64 + multiply-shift.
    const GOLDEN: [usize; 5] = [0, 4, 1, 5, 2];

    /// Every shard gets within 3% of its fair share, for sequential hashes (the worst case
    /// for a plain modulo of a weak hash), for hashes that differ only in high bits, and for
    /// multiples of the shard count.
    #[test]
    fn test_shard_of_balanced() {
        const KEYS: u64 = 200_000;
        for n in 1..=16 {
            let inputs: [&dyn Fn(u64) -> u64; 3] = [&|i| i, &|i| i << 40, &|i| i * n as u64];
            for input in inputs {
                let mut counts = vec![0u64; n];
                for i in 0..KEYS {
                    let s = shard_of(input(i), n);
                    counts[s] += 1;
                }
                let fair = KEYS / n as u64;
                for &c in &counts {
                    assert!(c.abs_diff(fair) * 100 <= fair * 3, "n={n}: {counts:?}");
                }
            }
        }
    }
}
