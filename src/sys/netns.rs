//! Network-namespace switching for one thread.
//!
//! `setns(2)` with `CLONE_NEWNET` moves only the *calling thread*. Sockets remember the
//! namespace they were created in, so a socket opened by a thread that entered a namespace
//! stays bound to that namespace after the thread is gone. [`run_in`] builds on that: tests
//! and bench tools open ctnetlink (or TCP/UDP) sockets inside a test namespace and then use
//! them from any thread. Processes spawned from such a thread inherit its namespace too.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::thread;

use super::cvt;

/// Moves the calling thread into the network namespace at `path` (e.g. `/run/netns/NAME`,
/// as created by `ip netns add NAME`, or `/proc/PID/ns/net`).
///
/// Only the calling thread moves; other threads of the process stay where they are. Fails
/// with `NotFound` if the path does not exist and `EPERM` without `CAP_SYS_ADMIN`.
pub fn enter(path: &Path) -> io::Result<()> {
    let ns = File::open(path)?;
    // SAFETY: `ns` is an open file descriptor owned by this function for the whole call;
    // setns(2) only reads it and does not take ownership.
    cvt(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) })?;
    Ok(())
}

/// Runs `f` on a fresh scoped thread that first entered the network namespace at `path`,
/// and returns its result.
///
/// The caller's thread never changes namespace. Sockets that `f` opens stay bound to the
/// namespace after this returns. A panic inside `f` is propagated to the caller.
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    thread::scope(|scope| {
        let worker = scope.spawn(|| {
            enter(path)?;
            Ok(f())
        });
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::path::PathBuf;
    use std::process::Command;

    use super::*;

    /// A namespace made with `ip netns add`, deleted on drop (also when a test panics).
    struct TestNs(String);

    impl TestNs {
        fn new(tag: &str) -> Self {
            assert!(
                // `id -u` keeps this module free of extra unsafe just for geteuid().
                Command::new("id").arg("-u").output().unwrap().stdout == b"0\n",
                "this test needs root (it creates network namespaces)"
            );
            let name = format!("ctd-u{}-{tag}", std::process::id());
            // A stale namespace from a crashed run with a recycled pid: remove it first.
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
            let out = Command::new("ip")
                .args(["netns", "add", &name])
                .output()
                .unwrap();
            assert!(out.status.success(), "ip netns add: {out:?}");
            Self(name)
        }

        fn path(&self) -> PathBuf {
            Path::new("/run/netns").join(&self.0)
        }
    }

    impl Drop for TestNs {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
        }
    }

    fn thread_netns() -> PathBuf {
        std::fs::read_link("/proc/thread-self/ns/net").unwrap()
    }

    #[test]
    fn test_run_in_changes_only_the_worker_thread() {
        let ns = TestNs::new("runin");
        let host = thread_netns();
        let inside = run_in(&ns.path(), thread_netns).unwrap();
        assert_ne!(inside, host, "run_in did not switch namespace");
        // The namespace's inode is the one `ip netns add` bind-mounted.
        let expected = run_in(&ns.path(), || std::fs::metadata("/proc/thread-self/ns/net"))
            .unwrap()
            .unwrap();
        let mounted = std::fs::metadata(ns.path()).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(expected.ino(), mounted.ino());
        assert_eq!(thread_netns(), host, "the caller's thread moved");
    }

    #[test]
    fn test_socket_stays_in_namespace() {
        let ns = TestNs::new("sock");
        // `lo` is down in a fresh namespace, so sending to 127.0.0.1 from a socket that lives
        // there fails with ENETUNREACH, while the host's loopback works.
        let sock = run_in(&ns.path(), || UdpSocket::bind("0.0.0.0:0"))
            .unwrap()
            .unwrap();
        let err = sock.send_to(b"x", "127.0.0.1:9").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENETUNREACH), "{err}");
        let host = UdpSocket::bind("127.0.0.1:0").unwrap();
        host.send_to(b"x", "127.0.0.1:9").unwrap();
    }

    #[test]
    fn test_enter_missing_namespace() {
        let err = run_in(Path::new("/run/netns/ctd-does-not-exist"), || ()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn test_run_in_propagates_panic() {
        let ns = TestNs::new("panic");
        let res = std::panic::catch_unwind(|| run_in(&ns.path(), || panic!("inside")));
        assert!(res.is_err());
    }
}
