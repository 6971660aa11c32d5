//! Shared fixtures for the system tests: namespaces, veth links, nftables, the `conntrack` CLI,
//! conntrackd processes and FTP-like traffic, all on real kernel parts.
//!
//! Every fixture owns what it creates and removes it in `Drop`, which also runs while a failing
//! test unwinds, so a panic never leaves a namespace, a process or a temp dir behind. Names
//! carry the test process's pid and a per-process counter so that tests running in parallel
//! (and several test binaries at once) never collide. Tests that need root call
//! [`require_root`] (the fixtures do it for them) and *fail* without it, never skip.
//!
//! Helpers named `expect_*` panic with the full command, status, stdout and stderr when
//! something goes wrong, in the style of mio's `tests/util`.

// Each test module uses a different subset of these fixtures.
#![allow(dead_code)]

pub(crate) mod bulk;
pub(crate) mod cmd;
pub(crate) mod ct;
pub(crate) mod daemon;
pub(crate) mod ftp;
pub(crate) mod netns;
pub(crate) mod relay;
pub(crate) mod testbed;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

// Re-exports so tests write `util::NetNs`; not every test module uses every one.
#[allow(unused_imports)]
pub(crate) use cmd::{expect_ok, run};
#[allow(unused_imports)]
pub(crate) use ct::{ct_count, ct_flush, ct_insert, ct_list, exp_flush, exp_list};
#[allow(unused_imports)]
pub(crate) use daemon::{C_CONNTRACKD, CDaemon, OUR_CONNTRACKD, general, mcast_config, udp_config};
#[allow(unused_imports)]
pub(crate) use ftp::{FtpSession, make_expectation};
#[allow(unused_imports)]
pub(crate) use netns::{NetNs, NsConfig, Veth, enable_conntrack, enable_conntrack_with_ftp};

/// Panics with a clear message unless the test runs as root (uid 0).
///
/// System tests create namespaces and load nftables rules; without root they must fail
/// loudly instead of passing vacuously.
/// The address ranges test traffic uses, inside namespaces only: 10.231.0.0/16 and
/// 10.232.0.0/16, fd00:231::/32, and the multicast groups 225.0.0.0/24 (ff02:: is link-local
/// and never routed).
pub(crate) const TEST_RANGES_V4: [&str; 3] = ["10.231.0.0/16", "10.232.0.0/16", "225.0.0.0/24"];
/// See [`TEST_RANGES_V4`].
pub(crate) const TEST_RANGES_V6: [&str; 1] = ["fd00:231::/32"];

/// Makes the HOST namespace drop anything addressed to the test ranges.
///
/// Why: a socket opened by mistake in the host namespace (a thread that was never moved into
/// its test namespace) would otherwise follow the host's default route off this machine. This
/// happened once during development (a TCP reconnect path). Blackhole routes make such a bug
/// fail with an error instead of sending traffic anywhere. They are left in place: the ranges
/// are reserved for these tests, and each test namespace has its own routing table.
pub(crate) fn contain_test_ranges() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for r in TEST_RANGES_V4 {
            cmd::expect_run(&["ip", "route", "replace", "blackhole", r]);
        }
        for r in TEST_RANGES_V6 {
            cmd::expect_run(&["ip", "-6", "route", "replace", "blackhole", r]);
        }
    });
}

pub(crate) fn require_root() {
    // Reading /proc keeps the test crate free of `unsafe` (no geteuid call).
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .expect("no Uid: line in /proc/self/status");
    assert!(
        euid == "0",
        "this test needs root (network namespaces, nftables, conntrack); run `sudo make test` \
         (effective uid is {euid})"
    );
}

/// A number unique within this test process, for names of namespaces, temp dirs, etc.
pub(crate) fn unique() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Polls `cond` every 10 ms until it returns true; panics with `what` after `timeout`.
pub(crate) fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// A fresh directory `/tmp/ctd-<pid>-<n>`, removed with its contents on drop.
///
/// Kept short on purpose: UNIX socket paths inside it must fit `sun_path` (108 bytes).
#[derive(Debug)]
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates the directory; a stale one with the same name (recycled pid) is removed first.
    pub(crate) fn new() -> Self {
        let path = PathBuf::from(format!("/tmp/ctd-{}-{}", std::process::id(), unique()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Self { path }
    }

    /// The directory's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// `path()/name`.
    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Serialises every [`Sysctl`] guard in this process: global knobs are shared by all tests.
static GLOBAL_SYSCTL: Mutex<()> = Mutex::new(());

/// Sets a *global* sysctl (one that namespaces cannot change, such as
/// `net.netfilter.nf_conntrack_max`) and restores the previous value on drop, even when the
/// test panics.
///
/// Holding a guard excludes other `Sysctl` guards in this process until it is dropped, so two
/// tests never fight over the same knob. Per-namespace sysctls need no guard: use
/// [`NetNs::sysctl`], they vanish with the namespace.
#[derive(Debug)]
pub(crate) struct Sysctl {
    file: PathBuf,
    old: String,
    _lock: MutexGuard<'static, ()>,
}

impl Sysctl {
    /// Writes `value` to `key` (dotted name, e.g. `net.netfilter.nf_conntrack_max`) in the
    /// host's namespace; panics if the key does not exist or cannot be written.
    pub(crate) fn set(key: &str, value: &str) -> Self {
        require_root();
        // A test that panicked while holding the lock has already restored its value.
        let lock = GLOBAL_SYSCTL.lock().unwrap_or_else(|e| e.into_inner());
        let file = sysctl_path(key);
        let old = fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("read sysctl {key}: {e}"))
            .trim()
            .to_owned();
        fs::write(&file, value).unwrap_or_else(|e| panic!("sysctl {key}={value}: {e}"));
        Self {
            file,
            old,
            _lock: lock,
        }
    }

    /// The value that will be restored on drop.
    pub(crate) fn old(&self) -> &str {
        &self.old
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if let Err(e) = fs::write(&self.file, &self.old) {
            // Not a panic: we may already be unwinding, and a double panic aborts.
            eprintln!(
                "could not restore {} to {}: {e}",
                self.file.display(),
                self.old
            );
        }
    }
}

/// Reads a sysctl of the calling thread's namespace (dotted name), trimmed.
pub(crate) fn sysctl_get(key: &str) -> String {
    let file = sysctl_path(key);
    fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("read sysctl {key}: {e}"))
        .trim()
        .to_owned()
}

/// `/proc/sys/...` for a dotted sysctl name.
pub(crate) fn sysctl_path(key: &str) -> PathBuf {
    Path::new("/proc/sys").join(key.replace('.', "/"))
}
