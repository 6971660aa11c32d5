//! A non-blocking `eventfd(2)` counter: the cheapest cross-thread doorbell that is also a file
//! descriptor.
//!
//! A worker thread must sleep when it has nothing to do, but it also waits for timers and
//! sockets. A futex or `thread::park` can only be waited on alone; an eventfd can sit in the
//! same `poll(2)` set as the worker's other descriptors, so one blocking call covers every
//! reason to wake up. The counter semantics also make a wake-up sticky: a `signal` that lands
//! before the waiter reaches `poll` is not lost, `poll` simply returns at once.
//!
//! The descriptor is opened `EFD_NONBLOCK | EFD_CLOEXEC`: [`EventFd::drain`] must never block,
//! and the daemon never hands descriptors to child processes.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::cvt;

/// An owned, non-blocking eventfd.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// Opens a new eventfd with a zero counter.
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd(2) takes no pointers; the flags are valid constants.
        let raw = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: `raw` was just returned by a successful eventfd(2) call, so it is an open
        // descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Self { fd })
    }

    /// Adds one to the counter, making the descriptor readable.
    ///
    /// `EAGAIN` (the counter is at its maximum, 2^64-2) is not an error: the descriptor is
    /// readable either way, which is all a doorbell needs.
    pub fn signal(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: the pointer and length describe `one`, a live 8-byte value; eventfd(2)
        // requires exactly 8 bytes per write.
        let ret = unsafe { libc::write(self.fd.as_raw_fd(), (&raw const one).cast(), 8) };
        match cvt(ret) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reads and resets the counter; returns how many signals were pending (0 if none).
    pub fn drain(&self) -> io::Result<u64> {
        let mut count: u64 = 0;
        // SAFETY: the pointer and length describe `count`, a live, writable 8-byte value;
        // eventfd(2) reads fill exactly 8 bytes.
        let ret = unsafe { libc::read(self.fd.as_raw_fd(), (&raw mut count).cast(), 8) };
        match cvt(ret) {
            Ok(_) => Ok(count),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Blocks until the counter is non-zero or `timeout` passes (`None`: no time limit).
    ///
    /// Returns `true` if the descriptor is readable. Does not reset the counter. A signal
    /// (`EINTR`) returns `false` early, like a timeout, so the caller re-checks its state.
    pub fn wait_readable(&self, timeout: Option<Duration>) -> io::Result<bool> {
        poll_in(&[self.fd.as_fd()], timeout).map(|ready| ready[0])
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Converts a timeout to poll(2) milliseconds, rounding up so that a short non-zero timeout
/// never becomes a busy `0`, and saturating at `i32::MAX`.
fn poll_millis(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        }
    }
}

/// Waits with `poll(2)` until any of `fds` is readable or `timeout` passes; returns, per
/// descriptor, whether it is readable (or in error/hang-up, which a read will report).
///
/// `EINTR` is reported as "nothing ready" so that callers treat it like a timeout. Meant for
/// small sets (a worker's eventfd plus a timer or a socket or two).
pub fn poll_in(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let nfds = libc::nfds_t::try_from(pfds.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `pfds` is a live, writable array of `nfds` pollfd entries whose descriptors are
    // borrowed from the caller and stay open for the whole call.
    let ret = unsafe { libc::poll(pfds.as_mut_ptr(), nfds, poll_millis(timeout)) };
    match cvt(ret) {
        Ok(_) => Ok(pfds
            .iter()
            .map(|p| p.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0)
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(vec![false; fds.len()]),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::thread;
    use std::time::Instant;

    use super::*;

    #[test]
    fn test_eventfd_signal_drain() {
        let efd = EventFd::new().unwrap();
        assert_eq!(
            efd.drain().unwrap(),
            0,
            "a new eventfd is empty and drain never blocks"
        );
        efd.signal().unwrap();
        efd.signal().unwrap();
        assert!(efd.wait_readable(Some(Duration::ZERO)).unwrap());
        assert_eq!(efd.drain().unwrap(), 2);
        assert!(!efd.wait_readable(Some(Duration::ZERO)).unwrap());
    }

    #[test]
    fn test_eventfd_timeout() {
        let efd = EventFd::new().unwrap();
        let start = Instant::now();
        assert!(!efd.wait_readable(Some(Duration::from_millis(20))).unwrap());
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn test_eventfd_cross_thread() {
        let efd = Arc::new(EventFd::new().unwrap());
        let signaller = Arc::clone(&efd);
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(10));
            signaller.signal().unwrap();
        });
        assert!(efd.wait_readable(Some(Duration::from_secs(10))).unwrap());
        assert_eq!(efd.drain().unwrap(), 1);
        t.join().unwrap();
    }

    #[test]
    fn test_poll_in_several() {
        let a = EventFd::new().unwrap();
        let b = EventFd::new().unwrap();
        b.signal().unwrap();
        let ready = poll_in(&[a.as_fd(), b.as_fd()], Some(Duration::ZERO)).unwrap();
        assert_eq!(ready, vec![false, true]);
    }

    #[test]
    fn test_poll_millis_rounds_up() {
        assert_eq!(poll_millis(None), -1);
        assert_eq!(poll_millis(Some(Duration::ZERO)), 0);
        assert_eq!(poll_millis(Some(Duration::from_micros(1))), 1);
        assert_eq!(
            poll_millis(Some(Duration::from_secs(u64::MAX))),
            libc::c_int::MAX
        );
    }
}
