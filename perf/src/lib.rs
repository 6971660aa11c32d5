//! Load generation and the physical limits for the benchmark tables (issue 5 §1).
//!
//! * [`flows`] — deterministic unique flows from a counter and their ctnetlink requests;
//! * [`writer`] — batched `sendmsg` without NLM_F_ACK, errors drained and counted by errno;
//! * [`drain`] — the bare event drain (subscribe, `recvmmsg`, discard, count overruns);
//! * [`sysctl`] — the global `nf_conntrack_max` (raised and always restored) and a
//!   namespace's `nf_conntrack_count`;
//! * [`json`] — the one-object JSON report, written by hand.
//!
//! The binaries `ctgen` and `ctdrain` are thin argument parsers around these. Nothing here
//! sends a packet: ctgen only writes the conntrack table of the namespace it is given.

pub mod drain;
pub mod flows;
pub mod json;
pub mod sysctl;
pub mod writer;

use std::path::PathBuf;

/// `/run/netns/NAME`, where `ip netns add NAME` mounts the namespace.
pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// CPU time and run-queue wait of the calling thread so far, from
/// `/proc/thread-self/schedstat` (nanoseconds on CPU, nanoseconds runnable but waiting).
///
/// On a shared machine the wall-clock rate says as much about the neighbours as about the
/// kernel; entries per second of the writer's own CPU time (the kernel inserts inside its
/// `sendmsg`) is the contention-free estimate, and the wait says how contended the run was.
pub fn thread_sched() -> Option<(std::time::Duration, std::time::Duration)> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut f = s.split_whitespace().map(|v| v.parse::<u64>().ok());
    let cpu = f.next()??;
    let wait = f.next()??;
    Some((
        std::time::Duration::from_nanos(cpu),
        std::time::Duration::from_nanos(wait),
    ))
}
