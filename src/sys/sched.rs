//! Scheduling policy, nice value and CPU affinity of the *calling thread*.
//!
//! On Linux every thread is a kernel task with its own policy, priority, nice value and
//! affinity mask, and `sched_setscheduler(0, …)`, `setpriority(PRIO_PROCESS, tid, …)` and
//! `sched_setaffinity(0, …)` change only the calling thread. The runtime relies on that: the
//! netlink reader alone becomes real-time (conntrackd 1.4.7's `Scheduler { Type rr|fifo;
//! Priority N }`, SCHED_RR at the maximum priority by default), while workers stay
//! `SCHED_OTHER` and are pinned.
//!
//! Failures are returned, never logged here: the C daemon treats a failed switch to a
//! real-time scheduler as a warning and keeps running, and so must the caller.

use std::io;

use super::cvt;

/// A Linux scheduling policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SchedPolicy {
    /// `SCHED_FIFO`: real-time, runs until it blocks or a higher priority preempts it.
    Fifo,
    /// `SCHED_RR`: real-time, like FIFO with a time slice among equal priorities.
    Rr,
    /// `SCHED_OTHER`: the normal time-sharing policy (priority is always 0).
    Other,
}

impl SchedPolicy {
    fn to_raw(self) -> libc::c_int {
        match self {
            Self::Fifo => libc::SCHED_FIFO,
            Self::Rr => libc::SCHED_RR,
            Self::Other => libc::SCHED_OTHER,
        }
    }

    /// Maps a raw policy; `SCHED_BATCH`/`SCHED_IDLE`/`SCHED_DEADLINE` have no variant and
    /// are returned as `None`.
    fn from_raw(raw: libc::c_int) -> Option<Self> {
        match raw & !libc::SCHED_RESET_ON_FORK {
            libc::SCHED_FIFO => Some(Self::Fifo),
            libc::SCHED_RR => Some(Self::Rr),
            libc::SCHED_OTHER => Some(Self::Other),
            _ => None,
        }
    }

    /// Whether this is a real-time policy (FIFO or RR).
    pub fn is_realtime(self) -> bool {
        matches!(self, Self::Fifo | Self::Rr)
    }
}

/// The valid static priority range `(min, max)` of `policy` (1..=99 for the real-time
/// policies on Linux, 0..=0 for `Other`).
pub fn priority_range(policy: SchedPolicy) -> io::Result<(i32, i32)> {
    // SAFETY: sched_get_priority_min/max(2) take an integer and touch no memory.
    let min = cvt(unsafe { libc::sched_get_priority_min(policy.to_raw()) })?;
    // SAFETY: as above.
    let max = cvt(unsafe { libc::sched_get_priority_max(policy.to_raw()) })?;
    Ok((min, max))
}

/// Clamps `priority` into [`priority_range`] of `policy`.
///
/// conntrackd.conf accepts `Priority 0..99`; 0 is invalid for the real-time policies, so it
/// becomes 1 instead of an `EINVAL`.
pub fn clamp_priority(policy: SchedPolicy, priority: i32) -> io::Result<i32> {
    let (min, max) = priority_range(policy)?;
    Ok(priority.clamp(min, max))
}

/// Switches the calling thread to `policy` at `priority` (clamped to the policy's range).
///
/// Needs `CAP_SYS_NICE` (or an `RLIMIT_RTPRIO`) for the real-time policies; fails with
/// `EPERM` otherwise. Other threads of the process are not affected.
pub fn set_current_thread_scheduler(policy: SchedPolicy, priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: clamp_priority(policy, priority)?,
    };
    // SAFETY: `param` is a live, initialised sched_param that the call only reads; pid 0
    // names the calling thread.
    cvt(unsafe { libc::sched_setscheduler(0, policy.to_raw(), &raw const param) })?;
    Ok(())
}

/// The calling thread's policy and static priority. A policy without a [`SchedPolicy`]
/// variant (batch, idle, deadline) is an `Unsupported` error.
pub fn current_policy() -> io::Result<(SchedPolicy, i32)> {
    // SAFETY: sched_getscheduler(2) takes an integer and touches no memory.
    let raw = cvt(unsafe { libc::sched_getscheduler(0) })?;
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a live, writable sched_param that the call fills in.
    cvt(unsafe { libc::sched_getparam(0, &raw mut param) })?;
    let policy = SchedPolicy::from_raw(raw).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!("scheduling policy {raw}"),
        )
    })?;
    Ok((policy, param.sched_priority))
}

/// The kernel id of the calling thread.
fn current_tid() -> libc::id_t {
    // SAFETY: gettid(2) takes no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    // A tid is always positive.
    libc::id_t::try_from(tid).unwrap_or(0)
}

/// Sets the calling thread's nice value (-20..=19; lowering it needs `CAP_SYS_NICE`).
///
/// conntrackd 1.4.7 ignores `Nice` with a deprecation warning; this exists for tools and for
/// lowering the priority of background threads.
pub fn set_current_thread_nice(nice: i32) -> io::Result<()> {
    // SAFETY: setpriority(2) takes integers only; with PRIO_PROCESS and a tid, Linux changes
    // that one thread.
    cvt(unsafe { libc::setpriority(libc::PRIO_PROCESS, current_tid(), nice) })?;
    Ok(())
}

/// The calling thread's nice value.
pub fn current_thread_nice() -> io::Result<i32> {
    // getpriority(2) may legitimately return -1, so errno must be cleared first and checked
    // afterwards.
    // SAFETY: __errno_location() returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: getpriority(2) takes integers only.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, current_tid()) };
    if nice == -1 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(0) {
            return Err(err);
        }
    }
    Ok(nice)
}

/// Restricts the calling thread to the CPUs in `cpus` (kernel CPU numbers).
///
/// An empty set or CPUs outside the process's cgroup/cpuset give `EINVAL`.
pub fn set_current_thread_affinity(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is a plain bit array, for which all-zero bytes are a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let capacity = 8 * size_of::<libc::cpu_set_t>();
    for &cpu in cpus {
        if cpu >= capacity {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("CPU {cpu} does not fit in cpu_set_t"),
            ));
        }
        // SAFETY: `cpu` is below the set's bit capacity (checked above) and `set` is a live,
        // writable cpu_set_t.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a live, initialised cpu_set_t of the size passed; pid 0 names the
    // calling thread.
    cvt(unsafe { libc::sched_setaffinity(0, size_of_val(&set), &raw const set) })?;
    Ok(())
}

/// The CPUs the calling thread may run on, ascending.
pub fn current_thread_affinity() -> io::Result<Vec<usize>> {
    // SAFETY: all-zero bytes are a valid (empty) cpu_set_t.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live, writable cpu_set_t of the size passed; pid 0 names the calling
    // thread.
    cvt(unsafe { libc::sched_getaffinity(0, size_of_val(&set), &raw mut set) })?;
    let capacity = 8 * size_of::<libc::cpu_set_t>();
    let mut cpus = Vec::new();
    for cpu in 0..capacity {
        // SAFETY: `cpu` is below the set's bit capacity and `set` is initialised.
        if unsafe { libc::CPU_ISSET(cpu, &set) } {
            cpus.push(cpu);
        }
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;

    fn is_root() -> bool {
        // SAFETY: geteuid(2) takes no arguments and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn test_priority_range() {
        assert_eq!(priority_range(SchedPolicy::Rr).unwrap(), (1, 99));
        assert_eq!(priority_range(SchedPolicy::Fifo).unwrap(), (1, 99));
        assert_eq!(priority_range(SchedPolicy::Other).unwrap(), (0, 0));
        assert_eq!(clamp_priority(SchedPolicy::Rr, 0).unwrap(), 1);
        assert_eq!(clamp_priority(SchedPolicy::Rr, 500).unwrap(), 99);
        assert_eq!(clamp_priority(SchedPolicy::Other, 50).unwrap(), 0);
    }

    #[test]
    fn test_policy_raw_roundtrip() {
        for p in [SchedPolicy::Fifo, SchedPolicy::Rr, SchedPolicy::Other] {
            assert_eq!(SchedPolicy::from_raw(p.to_raw()), Some(p));
        }
        assert_eq!(SchedPolicy::from_raw(libc::SCHED_BATCH), None);
        assert!(SchedPolicy::Rr.is_realtime() && !SchedPolicy::Other.is_realtime());
    }

    /// A spawned thread becomes SCHED_RR priority 1 and reads it back; the test thread keeps
    /// its own policy, and the RT thread ends before the test does, so the test process is
    /// never left real-time.
    #[test]
    fn test_set_scheduler_rr_on_one_thread() {
        let before = current_policy().unwrap();
        let nice_before = current_thread_nice().unwrap();
        let cpus_before = current_thread_affinity().unwrap();
        let rt = thread::spawn(|| {
            let set = set_current_thread_scheduler(SchedPolicy::Rr, 1);
            let got = current_policy();
            let others = (
                current_thread_nice().unwrap(),
                current_thread_affinity().unwrap(),
            );
            // Back to normal before the thread ends, in case the runtime reuses it.
            let _ = set_current_thread_scheduler(SchedPolicy::Other, 0);
            (set, got, others)
        });
        let (set, got, others) = rt.join().unwrap();
        assert_eq!(
            others,
            (nice_before, cpus_before),
            "only the policy changed"
        );
        match set {
            Ok(()) => assert_eq!(got.unwrap(), (SchedPolicy::Rr, 1)),
            // Without CAP_SYS_NICE the switch fails, which the daemon reports as a warning.
            Err(e) if !is_root() => assert_eq!(e.raw_os_error(), Some(libc::EPERM)),
            Err(e) => panic!("root could not switch to SCHED_RR: {e}"),
        }
        assert_eq!(
            current_policy().unwrap(),
            before,
            "other threads are unaffected"
        );
    }

    #[test]
    fn test_nice_on_one_thread() {
        let before = current_thread_nice().unwrap();
        let t = thread::spawn(|| {
            set_current_thread_nice(10).unwrap();
            current_thread_nice().unwrap()
        });
        assert_eq!(t.join().unwrap(), 10);
        assert_eq!(current_thread_nice().unwrap(), before);
    }

    #[test]
    fn test_affinity_on_one_thread() {
        let all = current_thread_affinity().unwrap();
        assert!(!all.is_empty());
        let first = all[0];
        let t = thread::spawn(move || {
            set_current_thread_affinity(&[first]).unwrap();
            current_thread_affinity().unwrap()
        });
        assert_eq!(t.join().unwrap(), vec![first]);
        assert_eq!(current_thread_affinity().unwrap(), all);
        assert!(set_current_thread_affinity(&[1 << 20]).is_err());
    }
}
