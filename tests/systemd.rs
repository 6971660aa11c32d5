//! Running under a service manager: `conf/conntrackd.service` (Type=notify), the daemon's
//! `sd_notify` messages against a datagram socket the test binds (our own tiny service
//! manager) with the real kernel table in a namespace, and logrotate's SIGHUP.
//!
//! READY=1 must mean "state loaded": the namespace's kernel table is filled before the
//! daemon starts, and the moment READY=1 arrives the daemon's internal cache must already
//! hold every entry. The table is large enough (a few ten thousand entries) that a daemon
//! announcing readiness before its workers applied the start-up dump is caught.

use std::fs;
use std::net::Ipv4Addr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::bulk::create_tcp_flows;
use crate::util::daemon::{C_CONNTRACKD, DIR, udp_config};
use crate::util::testbed::repo_file;
use crate::util::{
    CDaemon, NetNs, OUR_CONNTRACKD, TempDir, Veth, contain_test_ranges, enable_conntrack,
    require_root, wait_until,
};

/// Entries created in the kernel before the daemon starts.
const N: u32 = 30_000;

/// `n` established TCP entries 10.231.44.0/24 → 10.231.45.1:80, created through ctnetlink in
/// batches from inside `ns` (`conntrack -I` manages a few hundred a second).
fn fill_kernel(ns: &NetNs, n: u32) {
    create_tcp_flows(ns, [10, 231, 44], Ipv4Addr::new(10, 231, 45, 1), 0, n);
}

/// Our daemon in the foreground in a namespace, with `NOTIFY_SOCKET` set as a service
/// manager would; killed on drop.
struct Service {
    child: Option<Child>,
    ns: String,
    bin: String,
    dir: TempDir,
}

impl Service {
    fn start(ns: &NetNs, config: &str, notify_socket: &str) -> Self {
        Self::start_with(OUR_CONNTRACKD, ns, config, Some(notify_socket), None)
    }

    /// `bin` with `NOTIFY_SOCKET` if given; with `dev`, in a private mount namespace
    /// where that directory is mounted over /dev (so /dev/log is a socket the test bound).
    fn start_with(
        bin: &str,
        ns: &NetNs,
        config: &str,
        notify_socket: Option<&str>,
        dev: Option<&Path>,
    ) -> Self {
        let dir = TempDir::new();
        let text = config.replace(DIR, &dir.path().to_string_lossy());
        let conf = dir.join("conntrackd.conf");
        fs::write(&conf, text).expect("write config");
        let mut cmd = match dev {
            None => ns.command(&[bin, "-C", &conf.to_string_lossy()]),
            Some(dev) => {
                let mut c = Command::new("unshare");
                // unshare and sh exec, so the child's pid is the daemon's.
                c.args(["--mount", "--propagation", "private", "sh", "-c"])
                    .arg(format!(
                        "mount --bind {} /dev && exec ip netns exec {} {bin} -C {}",
                        dev.display(),
                        ns.name(),
                        conf.display()
                    ));
                c
            }
        };
        cmd.env_remove("NOTIFY_SOCKET");
        if let Some(n) = notify_socket {
            cmd.env("NOTIFY_SOCKET", n);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("stdout")).expect("stdout"))
            .stderr(fs::File::create(dir.join("stderr")).expect("stderr"))
            .spawn()
            .expect("spawn conntrackd");
        Self {
            child: Some(child),
            ns: ns.name().to_owned(),
            bin: bin.to_owned(),
            dir,
        }
    }

    fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, &self.bin, "-C"])
            .arg(self.dir.join("conntrackd.conf"))
            .args(args)
            .env_remove("NOTIFY_SOCKET")
            .output()
            .expect("run the client");
        assert!(out.status.success(), "{args:?}: {out:?}\n{}", self.dump());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the control socket answers `-s`.
    fn wait_serving(&self) {
        wait_until(Duration::from_secs(30), "the control socket", || {
            Command::new("ip")
                .args(["netns", "exec", &self.ns, &self.bin, "-C"])
                .arg(self.dir.join("conntrackd.conf"))
                .arg("-s")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status();
    }

    /// Waits for the exit status (panics after `timeout`).
    fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = child.try_wait().expect("waitpid") {
                self.child = None;
                return st;
            }
            assert!(Instant::now() < deadline, "no exit\n{}", self.dump());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn dump(&self) -> String {
        let read = |n: &str| fs::read_to_string(self.dir.join(n)).unwrap_or_default();
        format!(
            "--- log ---\n{}--- stdout ---\n{}--- stderr ---\n{}",
            read("log"),
            read("stdout"),
            read("stderr")
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Internal-cache active objects from `-s cache` (`cache:internal\tactive objects:\t\tN`).
fn internal_active(stats: &str) -> u64 {
    stats
        .lines()
        .find(|l| l.starts_with("cache:internal"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no internal cache line in\n{stats}"))
}

fn recv(sock: &UnixDatagram, timeout: Duration) -> Option<String> {
    sock.set_read_timeout(Some(timeout)).expect("timeout");
    let mut buf = [0u8; 4096];
    sock.recv(&mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn node(tag: &str) -> (NetNs, NetNs, Veth) {
    contain_test_ranges();
    let a = NetNs::new(&format!("{tag}a"));
    let b = NetNs::new(&format!("{tag}b"));
    let veth = Veth::connect(&a, "sdA", "10.231.46.1/24", &b, "sdB", "10.231.46.2/24");
    enable_conntrack(&a);
    (a, b, veth)
}

fn config(extra_general: &str) -> String {
    let c = udp_config("Mode FTFW { }", "sdA", "10.231.46.1", "10.231.46.2", 3802);
    c.replace("\tSyslog off\n", &format!("\tSyslog off\n{extra_general}"))
}

/// READY=1 (a path socket) only once the kernel table is in the internal cache; STOPPING=1
/// on SIGTERM, then a clean exit.
#[test]
fn systemd_ready_means_state_loaded() {
    require_root();
    let (a, _b, _veth) = node("sdr");
    fill_kernel(&a, N);
    let dir = TempDir::new();
    let path = dir.join("notify");
    let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
    let started = Instant::now();
    let mut svc = Service::start(&a, &config(""), &path.to_string_lossy());
    let Some(msg) = recv(&sock, Duration::from_secs(60)) else {
        panic!("no READY=1 within 60 s\n{}", svc.dump());
    };
    let ready_after = started.elapsed();
    assert_eq!(msg, "READY=1", "{}", svc.dump());
    // Right now, with no waiting: the whole table is loaded.
    let active = internal_active(&svc.ctl(&["-s", "cache"]));
    assert!(
        active >= u64::from(N),
        "READY=1 with only {active} of {N} entries in the internal cache\n{}",
        svc.dump()
    );
    let listed = svc
        .ctl(&["-i"])
        .lines()
        .filter(|l| l.contains("src=10.231.44."))
        .count();
    assert_eq!(listed, N as usize, "-i right after READY=1");
    eprintln!(
        "READY=1 {:.3} s after the start with {N} kernel entries loaded",
        ready_after.as_secs_f64()
    );

    svc.signal("TERM");
    let Some(msg) = recv(&sock, Duration::from_secs(10)) else {
        panic!("no STOPPING=1 after SIGTERM\n{}", svc.dump());
    };
    assert_eq!(msg, "STOPPING=1");
    let status = svc.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}\n{}", svc.dump());
}

/// An abstract-namespace address (`@name`, bound inside the daemon's network namespace,
/// where abstract names live), and `-k` as the stop request.
#[test]
fn systemd_abstract_socket_and_kill_request() {
    require_root();
    let (a, _b, _veth) = node("sda");
    let name = format!(
        "ctd-notify-{}-{}",
        std::process::id(),
        crate::util::unique()
    );
    let sock = a.run_in(|| {
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
        UnixDatagram::bind_addr(&addr).expect("bind the abstract notify socket")
    });
    let mut svc = Service::start(&a, &config(""), &format!("@{name}"));
    let msg = recv(&sock, Duration::from_secs(30));
    assert_eq!(msg.as_deref(), Some("READY=1"), "{}", svc.dump());
    svc.ctl(&["-k"]);
    let msg = recv(&sock, Duration::from_secs(10));
    assert_eq!(msg.as_deref(), Some("STOPPING=1"), "{}", svc.dump());
    assert!(svc.wait_exit(Duration::from_secs(10)).success());
}

/// `Systemd off`: nothing is sent, even with NOTIFY_SOCKET set.
#[test]
fn systemd_off_sends_nothing() {
    require_root();
    let (a, _b, _veth) = node("sdo");
    let dir = TempDir::new();
    let path = dir.join("notify");
    let sock = UnixDatagram::bind(&path).expect("bind");
    let mut svc = Service::start(&a, &config("\tSystemd off\n"), &path.to_string_lossy());
    svc.wait_serving();
    // READY=1 would have been sent before the control socket answered.
    assert_eq!(
        recv(&sock, Duration::from_millis(300)),
        None,
        "{}",
        svc.dump()
    );
    svc.signal("TERM");
    assert!(svc.wait_exit(Duration::from_secs(10)).success());
    assert_eq!(
        recv(&sock, Duration::from_millis(300)),
        None,
        "STOPPING=1 sent"
    );
}

/// `systemd-analyze verify` accepts the unit (pointed at our binary, which it checks for).
/// Without systemd-analyze (a container without the `systemd` package) only the unit's
/// Type is checked, and the test says so.
#[test]
fn systemd_unit_verifies() {
    let unit = fs::read_to_string(repo_file("conf/conntrackd.service")).expect("read the unit");
    assert!(unit.contains("\nType=notify\n"), "{unit}");
    let analyze = Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() {
        eprintln!("systemd-analyze is absent (package `systemd`): the unit was NOT verified");
        return;
    }
    let dir = TempDir::new();
    let copy = dir.join("conntrackd.service");
    fs::write(&copy, unit.replace("/usr/sbin/conntrackd", OUR_CONNTRACKD)).expect("write");
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("run systemd-analyze");
    assert!(
        out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
        "systemd-analyze verify: {out:?}"
    );
}

/// logrotate: rename the LogFile, SIGHUP, and the next lines land in a new file at the
/// configured path while the renamed file keeps the old ones; the daemon keeps running.
#[test]
fn sighup_reopens_the_log_file() {
    require_root();
    let (a, _b, _veth) = node("sdh");
    let d = CDaemon::start_bin(OUR_CONNTRACKD.as_ref(), &a, &config(""));
    let log = d.log_path();
    let rotated = d.dir().join("log.1");
    wait_until(Duration::from_secs(10), "the start-up lines", || {
        d.log().contains("-- starting in console mode --")
    });
    fs::rename(&log, &rotated).expect("rotate the log");
    d.signal("HUP");
    wait_until(Duration::from_secs(10), "a new log file", || {
        fs::read_to_string(&log).is_ok_and(|t| t.contains("log file reopened"))
    });
    // Still serving, and the next line (the shutdown) goes to the new file.
    d.expect_ctl(&["-s"]);
    d.expect_ctl(&["-k"]);
    wait_until(Duration::from_secs(10), "the shutdown line", || {
        d.log().contains("---- shutdown received ----")
    });
    let old = fs::read_to_string(&rotated).expect("read the rotated log");
    let new = d.log();
    assert!(old.contains("initialization completed"), "{old}");
    assert!(
        !old.contains("shutdown received") && !old.contains("reopened"),
        "lines after SIGHUP went to the renamed file:\n{old}"
    );
    assert!(!new.contains("initialization completed"), "{new}");
    // Mode 0600, as every file the daemon creates (umask 0177).
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&log).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "new log file mode {mode:o}");
}

/// The syslog datagrams `bin` sends with `Syslog local3` until it has started, then
/// stopped (`-k`); its /dev/log is a socket the test bound (private mount namespace).
fn syslog_lines(bin: &str, tag: &str) -> (u32, Vec<String>) {
    let (a, _b, _veth) = node(tag);
    let dev = TempDir::new();
    let sock = UnixDatagram::bind(dev.join("log")).expect("bind the fake /dev/log");
    let conf = config("").replace("\tSyslog off\n", "\tSyslog local3\n");
    let mut svc = Service::start_with(bin, &a, &conf, None, Some(dev.path()));
    svc.wait_serving();
    let pid = svc.pid();
    svc.ctl(&["-k"]);
    assert!(
        svc.wait_exit(Duration::from_secs(10)).success(),
        "{}",
        svc.dump()
    );
    let mut lines = Vec::new();
    while let Some(l) = recv(&sock, Duration::from_millis(300)) {
        lines.push(l);
    }
    (pid, lines)
}

/// `Syslog local3`: every log line also goes to /dev/log, in the C daemon's syslog format
/// (facility local3, notice → `<157>`, the C package's `conntrack-tools[pid]: ` tag, bare
/// message).
#[test]
fn syslog_lines_match_the_c_daemon() {
    require_root();
    let (pid, ours) = syslog_lines(OUR_CONNTRACKD, "sls");
    let (c_pid, theirs) = syslog_lines(C_CONNTRACKD, "slc");
    let find = |lines: &[String], pid: u32, msg: &str| -> String {
        let tail = format!(" conntrack-tools[{pid}]: {msg}");
        lines
            .iter()
            .find(|l| l.ends_with(&tail))
            .unwrap_or_else(|| panic!("no `{tail}` in {lines:#?}"))
            .clone()
    };
    for msg in ["initialization completed", "-- starting in console mode --"] {
        let o = find(&ours, pid, msg);
        let c = find(&theirs, c_pid, msg);
        // `<PRI>Mmm dd hh:mm:ss`: same priority, same timestamp shape.
        assert!(o.starts_with("<157>") && c.starts_with("<157>"), "{o}\n{c}");
        assert_eq!(
            o.find(" conntrack-tools["),
            c.find(" conntrack-tools["),
            "{o}\n{c}"
        );
    }
    find(&ours, pid, "---- shutdown received ----");
    find(&theirs, c_pid, "---- shutdown received ----");
}
