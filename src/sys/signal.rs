//! The daemon's signals, handled synchronously: SIGINT/SIGTERM (stop) and SIGHUP (reopen the
//! log file) are blocked in every thread and collected with `sigwait(2)` by the daemon's
//! main thread, so no async-signal handler ever runs and shutdown or a log reopen is
//! ordinary code (unlink the socket and lock file, join the threads; open a file).
//!
//! [`block_termination`] must run before any other thread is spawned: threads inherit the
//! signal mask of their creator, and a thread that does not block SIGTERM would receive it
//! with the default action (death without clean-up). SIGHUP's default action is death too:
//! the C daemon 1.4.7 does not handle it, so `kill -HUP` (logrotate's usual `postrotate`)
//! stops it; ours reopens its LogFile instead.

use std::io;

/// What [`wait_signal`] collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// SIGINT or SIGTERM (the number): shut down.
    Terminate(i32),
    /// SIGHUP: reopen the log file (logrotate moved it away).
    Reopen,
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and every thread it spawns
/// later) and ignores SIGPIPE, as the C daemon does (a client that hangs up must not kill
/// us).
pub fn block_termination() -> io::Result<()> {
    let set = termination_set()?;
    // SAFETY: `set` is an initialised sigset_t; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: SIG_IGN is a valid disposition for SIGPIPE; no handler code is installed.
    let prev = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    if prev == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits until SIGINT, SIGTERM or SIGHUP is pending and says which. The signals must have
/// been blocked with [`block_termination`].
pub fn wait_signal() -> io::Result<Received> {
    let set = termination_set()?;
    let mut sig: libc::c_int = 0;
    loop {
        // SAFETY: `set` is initialised and `sig` is a valid out pointer for the call.
        let rc = unsafe { libc::sigwait(&set, &mut sig) };
        match rc {
            0 if sig == libc::SIGHUP => return Ok(Received::Reopen),
            0 => return Ok(Received::Terminate(sig)),
            libc::EINTR => continue,
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// Waits until SIGINT or SIGTERM is pending and returns its number; SIGHUPs meanwhile are
/// consumed (they must not kill the process). For a caller with no log file to reopen; the
/// sync daemon uses [`wait_signal`].
pub fn wait_termination() -> io::Result<i32> {
    loop {
        if let Received::Terminate(sig) = wait_signal()? {
            return Ok(sig);
        }
    }
}

/// Sends SIGTERM to this process: how the control thread turns a KILL request (`-k`) into the
/// same clean shutdown as an operator's `kill`.
pub fn terminate_self() -> io::Result<()> {
    // SAFETY: getpid(2) cannot fail and takes no arguments.
    let pid = unsafe { libc::getpid() };
    // SAFETY: kill(2) takes plain integers; SIGTERM is a valid signal number.
    super::cvt(unsafe { libc::kill(pid, libc::SIGTERM) }).map(drop)
}

fn termination_set() -> io::Result<libc::sigset_t> {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set behind the valid pointer.
    super::cvt(unsafe { libc::sigemptyset(set.as_mut_ptr()) })?;
    // SAFETY: the set was initialised by sigemptyset just above.
    let mut set = unsafe { set.assume_init() };
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `set` is initialised and `sig` is a valid signal number.
        super::cvt(unsafe { libc::sigaddset(&mut set, sig) })?;
    }
    Ok(set)
}

/// Sets the process umask (the C daemon uses 0177 so that its socket, lock and log files are
/// private, mode 0600).
pub fn set_umask(mask: u32) {
    // SAFETY: umask(2) takes a plain integer and cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// This process's id.
pub fn pid() -> u32 {
    std::process::id()
}

/// `fork(2)`: `Some(child pid)` in the parent, `None` in the child. Only call it while the
/// process has a single thread (`-d` forks before any thread is spawned).
pub fn fork() -> io::Result<Option<u32>> {
    // SAFETY: fork(2) takes no arguments; the caller guarantees a single-threaded process,
    // so the child inherits no lock held by another thread.
    let pid = super::cvt(unsafe { libc::fork() })?;
    Ok((pid > 0).then_some(pid as u32))
}

/// Detaches from the controlling terminal (`setsid(2)`) and points stdin, stdout and stderr
/// at /dev/null, as the C daemon does after forking for `-d`.
pub fn detach() -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setsid(2) takes no arguments.
    super::cvt(unsafe { libc::setsid() })?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in 0..3 {
        // SAFETY: both descriptors are open (ours and the standard ones); dup2 replaces the
        // standard descriptor atomically.
        super::cvt(unsafe { libc::dup2(null.as_raw_fd(), fd) })?;
    }
    Ok(())
}

/// Keeps large allocations on the heap instead of fresh `mmap`s: the rings hand batch
/// vectors of a few hundred KiB back and forth, and glibc's default (mmap above 128 KiB,
/// unmap on free) turned every batch into page faults and page clearing (seen in `perf`
/// as `clear_page_erms` under `memmove`).
pub fn tune_allocator() {
    // SAFETY: mallopt only changes glibc's allocation thresholds; the arguments are valid
    // option numbers and sizes. Called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
    }
    // SAFETY: as above.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}
