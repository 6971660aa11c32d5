//! A conntrackd process (Debian's C 1.4.7 by default, or ours) running in a namespace.
//!
//! All conntrackd instances share the host's filesystem, so each one gets its own temp dir
//! holding its config, UNIX socket, lock file, log and captured stdout/stderr. Configs refer
//! to that directory as [`DIR`] (`@DIR@`); [`general`] and [`udp_config`] write the usual
//! blocks.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::TempDir;
use super::cmd::expect_ok;
use super::netns::NetNs;

/// Debian's conntrackd 1.4.7, the reference implementation.
pub(crate) const C_CONNTRACKD: &str = "/usr/sbin/conntrackd";

/// Our binary, built by cargo for the integration tests; pass it to [`CDaemon::start_bin`].
pub(crate) const OUR_CONNTRACKD: &str = env!("CARGO_BIN_EXE_conntrackd");

/// Placeholder in config text for the daemon's private directory (no trailing slash).
pub(crate) const DIR: &str = "@DIR@";

/// How long [`CDaemon::start`] waits for the control socket to answer.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The control request code of `conntrackd -s` (STATS), sent as a host-order C int.
const REQ_STATS: i32 = 21;

/// A `General { … }` block with this daemon's private `LogFile`, `LockFile` and `UNIX` path
/// (all under [`DIR`]), `Syslog off`, plus `extra` lines (e.g. a `Filter` block) inside it.
pub(crate) fn general(extra: &str) -> String {
    format!(
        "General {{\n\
         \tLogFile {DIR}/log\n\
         \tSyslog off\n\
         \tLockFile {DIR}/lock\n\
         \tUNIX {{\n\t\tPath {DIR}/ctl\n\t}}\n\
         {extra}\n\
         }}\n"
    )
}

/// A complete config syncing over one UDP link: `mode` is the whole mode block (e.g.
/// `"Mode FTFW { }"` or `"Mode ALARM { RefreshTime 5 CacheTimeout 15 }"`), optionally
/// followed by other `Sync` items (`"Mode FTFW { } Options { ExpectationSync on }"`), `local` the
/// address to bind on `iface`, `peer` the other node's address (IPv4 or IPv6, no prefix).
/// The General block is [`general`]`("")`.
pub(crate) fn udp_config(mode: &str, iface: &str, local: &str, peer: &str, port: u16) -> String {
    let v = if local.contains(':') { "IPv6" } else { "IPv4" };
    // `IPv6_address` must precede `Interface` in 1.4.7 (otherwise it resolves the address
    // text as an interface name), so keep this order for both families.
    format!(
        "Sync {{\n\
         \t{mode}\n\
         \tUDP {{\n\
         \t\t{v}_address {local}\n\
         \t\t{v}_Destination_Address {peer}\n\
         \t\tPort {port}\n\
         \t\tInterface {iface}\n\
         \t\tChecksum on\n\
         \t}}\n\
         }}\n{}",
        general("")
    )
}

/// A complete config syncing over IPv4 multicast: `mode` as for [`udp_config`], the group
/// `group`:`port`, sent and joined on `iface` whose address is `local`.
pub(crate) fn mcast_config(mode: &str, iface: &str, local: &str, group: &str, port: u16) -> String {
    format!(
        "Sync {{\n\
         \t{mode}\n\
         \tMulticast {{\n\
         \t\tIPv4_address {group}\n\
         \t\tGroup {port}\n\
         \t\tIPv4_interface {local}\n\
         \t\tInterface {iface}\n\
         \t\tChecksum on\n\
         \t}}\n\
         }}\n{}",
        general("")
    )
}

/// A running conntrackd in a namespace, stopped (SIGTERM, then SIGKILL after 3 s) and its
/// directory removed on drop.
///
/// The name says C because that is the default binary; [`CDaemon::start_bin`] runs any
/// binary that speaks the same command line and control socket, such as ours
/// (`env!("CARGO_BIN_EXE_conntrackd")`).
#[derive(Debug)]
pub(crate) struct CDaemon {
    child: Option<Child>,
    bin: PathBuf,
    ns: String,
    // Declared last so it is dropped after the process is gone.
    dir: TempDir,
}

impl CDaemon {
    /// Starts Debian's C conntrackd in `ns` with `config` ([`DIR`] is substituted) and waits
    /// until its control socket answers `-s`; panics with its log and output otherwise.
    pub(crate) fn start(ns: &NetNs, config: &str) -> Self {
        Self::start_bin(Path::new(C_CONNTRACKD), ns, config)
    }

    /// [`Self::start`] with another binary.
    pub(crate) fn start_bin(bin: &Path, ns: &NetNs, config: &str) -> Self {
        let mut daemon = Self::spawn_bin(bin, ns, config);
        if let Err(e) = daemon.wait_ready(START_TIMEOUT) {
            panic!(
                "{} did not come up in {}: {e}\n{}",
                bin.display(),
                ns.name(),
                daemon.dump()
            );
        }
        daemon
    }

    /// Starts `bin -C conf` in the foreground inside `ns` without waiting for it. For tests
    /// that expect a start-up failure, or that poll [`Self::wait_ready`] themselves.
    pub(crate) fn spawn_bin(bin: &Path, ns: &NetNs, config: &str) -> Self {
        let dir = TempDir::new();
        let conf = dir.join("conntrackd.conf");
        let text = config.replace(DIR, &dir.path().to_string_lossy());
        fs::write(&conf, text).unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
        let stdout = File::create(dir.join("stdout")).expect("create stdout file");
        let stderr = File::create(dir.join("stderr")).expect("create stderr file");
        let child = ns
            .command(&[&bin.to_string_lossy(), "-C", &conf.to_string_lossy()])
            // Without -d the daemon stays our child: we can reap it and read its exit code.
            // Output goes to files, as a pipe nobody reads would fill and block it.
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // Debian's build talks sd_notify when NOTIFY_SOCKET is set; never to our
            // service manager.
            .env_remove("NOTIFY_SOCKET")
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} in {}: {e}", bin.display(), ns.name()));
        Self {
            child: Some(child),
            bin: bin.to_owned(),
            ns: ns.name().to_owned(),
            dir,
        }
    }

    /// Waits until the control socket answers a STATS request with some text, or fails if
    /// the process exits or `timeout` passes.
    pub(crate) fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Err(format!("exited early with {status}"));
            }
            match self.request(REQ_STATS) {
                Ok(reply) if !reply.is_empty() => return Ok(()),
                Ok(_) => {}
                Err(_) if Instant::now() < deadline => {}
                Err(e) => return Err(format!("control socket: {e}")),
            }
            if Instant::now() >= deadline {
                return Err(format!("no STATS reply within {timeout:?}"));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends one raw control request code on the UNIX socket and returns the whole reply
    /// (the protocol: 4-byte host-order int, reply until EOF).
    pub(crate) fn request(&self, code: i32) -> std::io::Result<Vec<u8>> {
        let mut sock = UnixStream::connect(self.socket_path())?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        sock.write_all(&code.to_ne_bytes())?;
        let mut reply = Vec::new();
        sock.read_to_end(&mut reply)?;
        Ok(reply)
    }

    /// `current active connections` of the internal (`0`) or external (`1`) block of the
    /// `-s` reply (STATS); 0 while the daemon does not answer.
    pub(crate) fn active(&self, block: usize) -> u64 {
        String::from_utf8_lossy(&self.request(REQ_STATS).unwrap_or_default())
            .lines()
            .filter_map(|l| l.strip_prefix("current active connections:"))
            .nth(block)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Runs the same binary as a client against this daemon, inside its namespace:
    /// `BIN -C conf ARGS` (e.g. `&["-s"]`, `&["-i"]`, `&["-c"]`). Any exit status.
    pub(crate) fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_command(args)
            .output()
            .unwrap_or_else(|e| panic!("run {} {args:?}: {e}", self.bin.display()))
    }

    /// [`Self::ctl`] that panics (with the daemon's log) unless the client exited 0;
    /// returns its stdout.
    pub(crate) fn expect_ctl(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        if !out.status.success() {
            eprintln!("{}", self.dump());
        }
        expect_ok(&(&self.bin, args), out)
    }

    /// A `Command` for `ip netns exec NS BIN -C conf ARGS`, to customise before running.
    pub(crate) fn ctl_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .arg(&self.bin)
            .arg("-C")
            .arg(self.conf_path())
            .args(args)
            .env_remove("NOTIFY_SOCKET");
        cmd
    }

    /// The process id of the daemon (`ip netns exec` execs it, so this is conntrackd itself).
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon already reaped").id()
    }

    /// Whether the process is still running (reaps it if it exited).
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.is_some() && self.try_wait().is_none()
    }

    /// The exit status if the process has exited, without blocking.
    pub(crate) fn try_wait(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        child.try_wait().expect("waitpid on the daemon")
    }

    /// Stops the daemon the way an operator would (SIGTERM: it removes its socket and lock
    /// file and exits 0) and returns its exit status; SIGKILL if it is still alive after 3 s.
    pub(crate) fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait() {
                self.child = None;
                return status;
            }
            thread::sleep(Duration::from_millis(10));
        }
        eprintln!("{} ignored SIGTERM for 3 s; killing it", self.bin.display());
        self.kill()
    }

    /// Kills the daemon with SIGKILL (a crash: socket and lock file stay behind) and reaps it.
    pub(crate) fn kill(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon already reaped");
        let _ = child.kill();
        child.wait().expect("waitpid on the daemon")
    }

    /// Sends a signal by name (`"STOP"`, `"CONT"`, `"USR1"`…) to the daemon.
    pub(crate) fn signal(&self, name: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{name}"))
                .arg(child.id().to_string())
                .status();
        }
    }

    /// The daemon's private directory.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file as written (placeholders substituted).
    pub(crate) fn conf_path(&self) -> PathBuf {
        self.dir.join("conntrackd.conf")
    }

    /// The UNIX control socket path that [`general`] configures.
    pub(crate) fn socket_path(&self) -> PathBuf {
        self.dir.join("ctl")
    }

    /// The lock file path that [`general`] configures.
    pub(crate) fn lock_path(&self) -> PathBuf {
        self.dir.join("lock")
    }

    /// The log file path that [`general`] configures.
    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// The log file's contents so far (empty if it does not exist yet).
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// What the process wrote to stdout and stderr so far (console mode logs there too).
    pub(crate) fn output(&self) -> String {
        let read = |n| fs::read_to_string(self.dir.join(n)).unwrap_or_default();
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            read("stdout"),
            read("stderr")
        )
    }

    /// Config, log and output in one text, for failure messages.
    pub(crate) fn dump(&self) -> String {
        format!(
            "--- {} ---\n{}--- log ---\n{}{}",
            self.conf_path().display(),
            fs::read_to_string(self.conf_path()).unwrap_or_default(),
            self.log(),
            self.output()
        )
    }
}

impl Drop for CDaemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            if self.try_wait().is_some() {
                self.child = None;
            } else {
                self.stop();
            }
        }
    }
}
