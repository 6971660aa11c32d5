//! The two-firewall namespace testbed of the side-by-side driver (`sidebyside`).
//!
//! Test fixtures under `tests/util/` are test-only code, so the driver has its own small
//! helpers here: a [`Testbed`] of two namespaces (primary `A`, backup `B`) joined by a
//! dedicated veth sync link `ctsA`/`ctsB` (10.231.1.1/24 – 10.231.1.2/24), conntrack active in
//! both (an nft `ct state` rule, `nf_conntrack_events=1`), and a [`Daemon`] per node.
//!
//! Cleanup: [`Testbed`]'s `Drop` kills every process in its namespaces and deletes them.
//! Because SIGINT/SIGTERM/SIGKILL skip destructors, the driver also starts one [`Watchdog`]
//! first: a `sh` in its own process group that blocks reading a pipe from the driver. When the
//! driver exits for any reason the pipe closes and the watchdog deletes every namespace it was
//! told about (after killing their processes) and writes back the saved
//! `nf_conntrack_max`. The same cleanup also runs on a normal exit; it is idempotent.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

use conntrackd::ctl::RequestCode;
use conntrackd::sys::netns as sys_netns;

/// The global sysctl that a namespace cannot raise (see `testbed-notes.md`).
pub const CONNTRACK_MAX: &str = "/proc/sys/net/netfilter/nf_conntrack_max";

/// Runs a command to completion and returns (success, stdout+stderr text).
pub fn run(argv: &[&str]) -> (bool, String) {
    match Command::new(argv[0]).args(&argv[1..]).output() {
        Ok(o) => {
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            (o.status.success(), text)
        }
        Err(e) => (false, format!("{}: {e}", argv[0])),
    }
}

/// Like [`run`] but an error unless it succeeded.
pub fn run_ok(argv: &[&str]) -> io::Result<String> {
    let (ok, text) = run(argv);
    if ok {
        Ok(text)
    } else {
        Err(io::Error::other(format!("{argv:?} failed: {text}")))
    }
}

fn run_stdin(argv: &[&str], input: &str) -> io::Result<()> {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{argv:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// The cleanup watchdog (see the module docs). Register namespaces with [`Self::guard_ns`]
/// before creating them and the old `nf_conntrack_max` with [`Self::guard_conntrack_max`]
/// before raising it.
#[derive(Debug)]
pub struct Watchdog {
    stdin: Mutex<Option<ChildStdin>>,
    child: Mutex<Option<Child>>,
}

impl Watchdog {
    /// Starts the watchdog `sh`. It reads commands line by line (`ns NAME`, `max VALUE`,
    /// `dir PATH`) and on EOF cleans up everything it was told about.
    pub fn start() -> io::Result<Self> {
        // Each line is one record; on EOF the loop ends and the cleanup runs. Names are ours
        // (no spaces, no shell metacharacters), checked in `guard_*`.
        let script = r#"
nss=""; max=""; dirs=""
while read -r kind arg; do
  case "$kind" in
    ns) nss="$nss $arg" ;;
    max) [ -z "$max" ] && max="$arg" ;;
    dir) dirs="$dirs $arg" ;;
  esac
done
for n in $nss; do
  for p in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  ip netns del "$n" 2>/dev/null
done
[ -n "$max" ] && echo "$max" > /proc/sys/net/netfilter/nf_conntrack_max
for d in $dirs; do rm -rf "$d"; done
exit 0
"#;
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Own process group: a terminal's Ctrl-C does not reach it.
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take();
        Ok(Self {
            stdin: Mutex::new(stdin),
            child: Mutex::new(Some(child)),
        })
    }

    fn send(&self, kind: &str, arg: &str) -> io::Result<()> {
        assert!(
            arg.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)),
            "unsafe watchdog argument {arg:?}"
        );
        let mut guard = self.stdin.lock().expect("watchdog lock");
        let stdin = guard
            .as_mut()
            .ok_or_else(|| io::Error::other("watchdog finished"))?;
        writeln!(stdin, "{kind} {arg}")?;
        stdin.flush()
    }

    /// Remembers a namespace to delete if the driver dies.
    pub fn guard_ns(&self, name: &str) -> io::Result<()> {
        self.send("ns", name)
    }

    /// Remembers a directory to remove if the driver dies.
    pub fn guard_dir(&self, path: &Path) -> io::Result<()> {
        self.send("dir", &path.to_string_lossy())
    }

    /// Remembers the value of `nf_conntrack_max` to restore (the first one wins).
    pub fn guard_conntrack_max(&self, value: u64) -> io::Result<()> {
        self.send("max", &value.to_string())
    }

    /// Closes the pipe and waits for the cleanup to finish.
    pub fn finish(&self) {
        drop(self.stdin.lock().expect("watchdog lock").take());
        if let Some(mut child) = self.child.lock().expect("watchdog lock").take() {
            let _ = child.wait();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Raises the global `nf_conntrack_max` to at least `want` and restores the old value on drop
/// (the [`Watchdog`] restores it if the driver is killed).
#[derive(Debug)]
pub struct ConntrackMax {
    old: u64,
    raised: bool,
}

impl ConntrackMax {
    /// Reads the current value, registers it with the watchdog and raises it if needed.
    pub fn raise(watchdog: &Watchdog, want: u64) -> io::Result<Self> {
        let old: u64 = fs::read_to_string(CONNTRACK_MAX)?
            .trim()
            .parse()
            .map_err(io::Error::other)?;
        if old >= want {
            return Ok(Self { old, raised: false });
        }
        watchdog.guard_conntrack_max(old)?;
        fs::write(CONNTRACK_MAX, want.to_string())?;
        eprintln!(
            "raised nf_conntrack_max {old} -> {want}; if this run is killed hard, restore with \
             `sysctl -w net.netfilter.nf_conntrack_max={old}`"
        );
        Ok(Self { old, raised: true })
    }

    /// The value before the run.
    pub fn old(&self) -> u64 {
        self.old
    }
}

impl Drop for ConntrackMax {
    fn drop(&mut self) {
        if self.raised
            && let Err(e) = fs::write(CONNTRACK_MAX, self.old.to_string())
        {
            eprintln!("cannot restore nf_conntrack_max={}: {e}", self.old);
        }
    }
}

/// One network namespace `name`, deleted (with every process in it) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    path: PathBuf,
}

impl Netns {
    /// Creates the namespace, brings `lo` up and sets the sysctls the benchmark relies on.
    pub fn create(watchdog: &Watchdog, name: &str) -> io::Result<Self> {
        watchdog.guard_ns(name)?;
        let path = Path::new("/run/netns").join(name);
        if path.exists() {
            let _ = run(&["ip", "netns", "del", name]);
        }
        run_ok(&["ip", "netns", "add", name])?;
        let ns = Self {
            name: name.to_owned(),
            path,
        };
        run_ok(&["ip", "-n", name, "link", "set", "lo", "up"])?;
        for (key, value) in [
            ("net/netfilter/nf_conntrack_events", "1"),
            ("net/netfilter/nf_conntrack_tcp_loose", "0"),
            ("net/ipv4/ip_forward", "1"),
        ] {
            ns.sysctl(key, value)?;
        }
        Ok(ns)
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/NAME`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a namespace-local sysctl (`net/netfilter/...` under /proc/sys).
    pub fn sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        let file = Path::new("/proc/sys").join(key);
        sys_netns::run_in(&self.path, || fs::write(&file, value))?
    }

    /// `nf_conntrack_count` inside the namespace (the kernel table size).
    pub fn conntrack_count(&self) -> io::Result<u64> {
        let file = "/proc/sys/net/netfilter/nf_conntrack_count";
        let text = sys_netns::run_in(&self.path, || fs::read_to_string(file))??;
        text.trim().parse().map_err(io::Error::other)
    }

    /// Loads a ruleset that makes conntrack active (a `ct state` rule in every hook).
    pub fn enable_conntrack(&self) -> io::Result<()> {
        let rules = "table inet ctbench {\n\
            chain pre { type filter hook prerouting priority filter; policy accept; ct state invalid counter; }\n\
            chain out { type filter hook output priority filter; policy accept; ct state invalid counter; }\n\
            }\n";
        run_stdin(
            &["ip", "netns", "exec", &self.name, "nft", "-f", "-"],
            rules,
        )
    }

    /// A command run inside the namespace (`ip netns exec NAME argv...`).
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(argv);
        cmd
    }

    fn kill_all(&self) {
        let (_, pids) = run(&["ip", "netns", "pids", &self.name]);
        let me = std::process::id().to_string();
        for pid in pids.split_whitespace().filter(|p| *p != me) {
            let _ = run(&["kill", "-9", pid]);
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.kill_all();
        let (ok, text) = run(&["ip", "netns", "del", &self.name]);
        if !ok {
            eprintln!("ip netns del {}: {text}", self.name);
        }
    }
}

/// The sync link transport of a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Unicast UDP between 10.231.1.1 and 10.231.1.2, port 3781.
    Udp,
    /// Multicast group 225.0.0.50, port 3780.
    Multicast,
}

impl Transport {
    /// `udp` or `mcast`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Multicast => "mcast",
        }
    }
}

/// Sync mode of a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `Mode FTFW { }`.
    Ftfw,
    /// `Mode ALARM { RefreshTime 15 CacheTimeout 180 }`.
    Alarm,
}

impl Mode {
    /// `ftfw` or `alarm`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ftfw => "ftfw",
            Self::Alarm => "alarm",
        }
    }
}

/// Node addresses on the sync link.
pub const ADDR: [&str; 2] = ["10.231.1.1", "10.231.1.2"];
/// Sync interface names (A side, B side).
pub const IFACE: [&str; 2] = ["ctsA", "ctsB"];

/// The conntrackd.conf of node `node` (0 = primary A, 1 = backup B). The text is the same for
/// both daemons: the C one and ours read byte-identical files (only `dir` differs per node).
///
/// Everything that has a default which might differ is written out: netlink buffer sizes,
/// socket buffers, hash sizes. No `Scheduler` block: both daemons then use 1.4.7's default,
/// SCHED_RR at maximum priority.
pub fn config(mode: Mode, transport: Transport, node: usize, dir: &Path) -> String {
    let local = ADDR[node];
    let peer = ADDR[1 - node];
    let iface = IFACE[node];
    let mode_block = match mode {
        Mode::Ftfw => "Mode FTFW {\n\t\tResendQueueSize 131072\n\t\tACKWindowSize 300\n\t}",
        Mode::Alarm => "Mode ALARM {\n\t\tRefreshTime 15\n\t\tCacheTimeout 180\n\t}",
    };
    let link = match transport {
        Transport::Udp => format!(
            "UDP {{\n\t\tIPv4_address {local}\n\t\tIPv4_Destination_Address {peer}\n\
             \t\tPort 3781\n\t\tInterface {iface}\n\t\tSndSocketBuffer 1249280\n\
             \t\tRcvSocketBuffer 1249280\n\t\tChecksum on\n\t}}"
        ),
        Transport::Multicast => format!(
            "Multicast {{\n\t\tIPv4_address 225.0.0.50\n\t\tGroup 3780\n\
             \t\tIPv4_interface {local}\n\t\tInterface {iface}\n\t\tSndSocketBuffer 1249280\n\
             \t\tRcvSocketBuffer 1249280\n\t\tChecksum on\n\t}}"
        ),
    };
    let d = dir.display();
    format!(
        "Sync {{\n\t{mode_block}\n\t{link}\n}}\n\
         General {{\n\
         \tHashSize 262144\n\
         \tHashLimit 8388608\n\
         \tLogFile {d}/log\n\
         \tSyslog off\n\
         \tLockFile {d}/lock\n\
         \tUNIX {{\n\t\tPath {d}/ctl\n\t}}\n\
         \tNetlinkBufferSize 2097152\n\
         \tNetlinkBufferSizeMaxGrowth 134217728\n\
         \tNetlinkOverrunResync on\n\
         \tNetlinkEventsReliable off\n\
         }}\n"
    )
}

/// Two namespaces (primary `A` and backup `B`) joined by the veth sync link.
#[derive(Debug)]
pub struct Testbed {
    /// Primary firewall: events originate in its kernel table.
    pub a: Netns,
    /// Backup firewall: holds the external cache, receives commits.
    pub b: Netns,
}

impl Testbed {
    /// Builds the two namespaces `ctb-PID-N-a` / `-b` with the sync link and conntrack active.
    pub fn build(watchdog: &Watchdog, serial: u32) -> io::Result<Self> {
        let base = format!("ctb-{}-{serial}", std::process::id());
        let a = Netns::create(watchdog, &format!("{base}-a"))?;
        let b = Netns::create(watchdog, &format!("{base}-b"))?;
        run_ok(&[
            "ip",
            "-n",
            a.name(),
            "link",
            "add",
            IFACE[0],
            "type",
            "veth",
            "peer",
            "name",
            IFACE[1],
            "netns",
            b.name(),
        ])?;
        for (ns, ifname, addr) in [(&a, IFACE[0], ADDR[0]), (&b, IFACE[1], ADDR[1])] {
            run_ok(&["ip", "-n", ns.name(), "link", "set", ifname, "up"])?;
            let cidr = format!("{addr}/24");
            run_ok(&["ip", "-n", ns.name(), "addr", "add", &cidr, "dev", ifname])?;
            // The multicast group needs a route out of the sync link.
            run_ok(&[
                "ip",
                "-n",
                ns.name(),
                "route",
                "add",
                "225.0.0.0/24",
                "dev",
                ifname,
            ])?;
            ns.enable_conntrack()?;
        }
        Ok(Self { a, b })
    }
}

/// CPU seconds (utime + stime of every thread, dead ones included) and VmRSS of a process.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    /// utime + stime in seconds (`/proc/PID/stat` fields 14 and 15, clock ticks / 100).
    pub cpu_s: f64,
    /// VmRSS in KiB (`/proc/PID/status`).
    pub rss_kib: u64,
}

/// Reads [`ProcSample`] for `pid`.
pub fn proc_sample(pid: u32) -> io::Result<ProcSample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the ")" of comm: state is field 3, so utime (14) is index 11 here.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("bad /proc/PID/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
    // USER_HZ is 100 on every Linux ABI.
    let cpu_s = ticks as f64 / 100.0;
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(ProcSample { cpu_s, rss_kib })
}

/// Per-thread CPU of a process: one line per thread, `TID COMM total (user U sys S)` in
/// seconds, from
/// `/proc/PID/task/TID/stat` (live threads only).
pub fn thread_cpu(pid: u32) -> String {
    let mut out = String::new();
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    let mut rows = Vec::new();
    for e in dir.flatten() {
        let tid = e.file_name().to_string_lossy().into_owned();
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let comm = stat
            .split_once('(')
            .and_then(|(_, r)| r.rsplit_once(')'))
            .map_or("?", |(c, _)| c)
            .to_owned();
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let (user, sys) = (field(11) as f64 / 100.0, field(12) as f64 / 100.0);
        rows.push((tid, comm, user + sys, user, sys));
    }
    rows.sort_by(|a, b| b.2.total_cmp(&a.2));
    for (tid, comm, total, user, sys) in rows {
        out.push_str(&format!(
            "{tid} {comm} {total:.2} (user {user:.2} sys {sys:.2})\n"
        ));
    }
    out
}

/// A conntrackd (C or ours) running in the foreground in a namespace, with a private dir
/// holding its config, socket, lock file, log and output. Stopped (SIGTERM, then SIGKILL
/// after 3 s) on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    bin: PathBuf,
    ns: String,
    dir: PathBuf,
}

impl Daemon {
    /// Writes `config` (built for `dir`) and starts `bin -C conf` in `ns`; waits until the
    /// control socket answers `-s`.
    pub fn start(
        watchdog: &Watchdog,
        bin: &Path,
        ns: &Netns,
        dir: PathBuf,
        config: &str,
    ) -> io::Result<Self> {
        watchdog.guard_dir(&dir)?;
        fs::create_dir_all(&dir)?;
        let conf = dir.join("conntrackd.conf");
        fs::write(&conf, config)?;
        let child = ns
            .command(&[&bin.to_string_lossy(), "-C", &conf.to_string_lossy()])
            .stdin(Stdio::null())
            .stdout(File::create(dir.join("stdout"))?)
            .stderr(File::create(dir.join("stderr"))?)
            .env_remove("NOTIFY_SOCKET")
            .spawn()?;
        let mut d = Self {
            child: Some(child),
            bin: bin.to_owned(),
            ns: ns.name().to_owned(),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = d.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                d.child = None;
                return Err(io::Error::other(format!(
                    "{} exited at start-up with {status}: {}",
                    bin.display(),
                    d.output()
                )));
            }
            if matches!(d.request(RequestCode::STATS), Ok(r) if !r.is_empty()) {
                return Ok(d);
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "{} did not answer -s within 10 s: {}",
                    bin.display(),
                    d.output()
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's pid (`ip netns exec` execs it).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The config file path.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("conntrackd.conf")
    }

    /// One control request, the whole reply as text.
    pub fn request(&self, code: RequestCode) -> io::Result<String> {
        let mut sock = UnixStream::connect(self.dir.join("ctl"))?;
        sock.set_read_timeout(Some(Duration::from_secs(600)))?;
        sock.write_all(&code.to_bytes())?;
        let mut reply = Vec::new();
        sock.read_to_end(&mut reply)?;
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }

    /// `BIN -C conf ARGS` run in the daemon's namespace (the daemon's own client).
    pub fn client(&self, args: &[&str]) -> io::Result<(bool, String)> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(&self.bin)
            .arg("-C")
            .arg(self.conf())
            .args(args)
            .env_remove("NOTIFY_SOCKET")
            .output()?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok((out.status.success(), text))
    }

    /// "current active connections" of the internal (`external = false`) or external cache,
    /// from `-s`.
    pub fn cache_count(&self, external: bool) -> io::Result<u64> {
        let text = self.request(RequestCode::STATS)?;
        let head = if external {
            "cache external:"
        } else {
            "cache internal:"
        };
        parse_after(&text, head, "current active connections:")
            .ok_or_else(|| io::Error::other(format!("no {head} in -s: {text}")))
    }

    /// A counter from `-s runtime` (e.g. "events received:", "netlink overrun:").
    pub fn runtime_counter(&self, label: &str) -> io::Result<u64> {
        let text = self.request(RequestCode::STATS_RUNTIME)?;
        parse_after(&text, "", label)
            .ok_or_else(|| io::Error::other(format!("no {label} in -s runtime")))
    }

    /// CPU and RSS of the daemon process.
    pub fn sample(&self) -> io::Result<ProcSample> {
        proc_sample(self.pid())
    }

    /// Log file and captured output, for error messages.
    pub fn output(&self) -> String {
        let read = |n: &str| fs::read_to_string(self.dir.join(n)).unwrap_or_default();
        format!(
            "--- log ---\n{}--- stdout ---\n{}--- stderr ---\n{}",
            read("log"),
            read("stdout"),
            read("stderr")
        )
    }

    /// SIGTERM, then SIGKILL after 3 s; reaps the process.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = run(&["kill", "-TERM", &child.id().to_string()]);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `tcpdump` writing a nanosecond-precision pcap of one interface of a namespace, with the
/// kernel's receive timestamps. Stopped with SIGINT (so it flushes the file and prints its
/// drop counters); killed on drop if still running.
#[derive(Debug)]
pub struct Capture {
    child: Option<Child>,
    file: PathBuf,
    argv: Vec<String>,
    /// The stderr reader: `None` once tcpdump is listening, then `Some(all of stderr)`.
    stderr_rx: Option<Receiver<Option<String>>>,
}

/// What `tcpdump` said when it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// "packets captured".
    pub captured: u64,
    /// "packets dropped by kernel" (the ring was full: those arrivals are missing).
    pub dropped: u64,
}

impl Capture {
    /// Starts `tcpdump -i IFACE -w FILE FILTER` in `ns` and waits until it is capturing.
    pub fn start(ns: &Netns, iface: &str, file: &Path, filter: &str) -> io::Result<Self> {
        let argv: Vec<String> = [
            "tcpdump",
            "-i",
            iface,
            "-n",
            "-p",
            // Stay root: the file is in the driver's private directory.
            "-Z",
            "root",
            // Ring buffer in KiB: 64 MiB, so the capture is not what drops.
            "-B",
            "65536",
            "-s",
            "2048",
            "--time-stamp-precision=nano",
            // Hand every packet to tcpdump at once: with the default block timeout (1 s) the
            // last, partly filled ring block is never read when tcpdump is stopped.
            "--immediate-mode",
            "-w",
            &file.to_string_lossy(),
            filter,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let mut child = ns
            .command(&argv.iter().map(String::as_str).collect::<Vec<_>>())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        // tcpdump prints "listening on IFACE" once the socket is bound and the filter is set.
        let mut err = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut all = Vec::new();
            let mut chunk = [0u8; 512];
            let mut told = false;
            while let Ok(n) = err.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&chunk[..n]);
                if !told && String::from_utf8_lossy(&all).contains("listening on") {
                    told = true;
                    let _ = tx.send(None);
                }
            }
            let _ = tx.send(Some(String::from_utf8_lossy(&all).into_owned()));
        });
        let mut cap = Self {
            child: Some(child),
            file: file.to_owned(),
            argv,
            stderr_rx: None,
        };
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(None) => {
                cap.stderr_rx = Some(rx);
                Ok(cap)
            }
            Ok(Some(text)) => Err(io::Error::other(format!("tcpdump did not start: {text}"))),
            Err(_) => Err(io::Error::other(
                "tcpdump did not say 'listening on' within 10 s",
            )),
        }
    }

    /// The command line (for SETUP), the filter quoted for a shell.
    pub fn command(&self) -> String {
        self.argv
            .iter()
            .map(|a| {
                if a.contains(' ') {
                    format!("'{a}'")
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The pcap file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// SIGINT, wait for tcpdump to write out the file and exit, and parse its counters.
    pub fn stop(&mut self) -> io::Result<CaptureStats> {
        let Some(mut child) = self.child.take() else {
            return Err(io::Error::other("capture already stopped"));
        };
        let _ = run(&["kill", "-INT", &child.id().to_string()]);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if child.try_wait()?.is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(
                    "tcpdump did not exit within 10 s of SIGINT",
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
        let text = self
            .stderr_rx
            .take()
            .and_then(|rx| rx.recv_timeout(Duration::from_secs(5)).ok().flatten())
            .unwrap_or_default();
        let count = |label: &str| {
            text.lines()
                .find(|l| l.contains(label))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        };
        match (count("packets captured"), count("dropped by kernel")) {
            (Some(captured), Some(dropped)) => Ok(CaptureStats { captured, dropped }),
            _ => Err(io::Error::other(format!(
                "tcpdump printed no counters: {text}"
            ))),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The first number after `label` that follows `head` in `text`.
pub fn parse_after(text: &str, head: &str, label: &str) -> Option<u64> {
    let from = text.find(head)? + head.len();
    let rest = &text[from..];
    let at = rest.find(label)? + label.len();
    rest[at..].split_whitespace().next()?.parse().ok()
}

/// A number field `"key":` of a flat JSON object (ctgen's output), first occurrence.
pub fn json_num(text: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\":");
    let at = text.find(&pat)? + pat.len();
    let rest = text[at..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stats_and_json() {
        let s = "cache internal:\ncurrent active connections:\t           3\n\n\
                 cache external:\ncurrent active connections:\t          42\n";
        assert_eq!(
            parse_after(s, "cache internal:", "current active connections:"),
            Some(3)
        );
        assert_eq!(
            parse_after(s, "cache external:", "current active connections:"),
            Some(42)
        );
        let j = r#"{"mode":"burst","n":100,"rate":123456.7,"drain":{"rate":5}}"#;
        assert_eq!(json_num(j, "rate"), Some(123456.7));
        assert_eq!(json_num(j, "n"), Some(100.0));
        assert_eq!(json_num(j, "missing"), None);
    }

    #[test]
    fn config_is_node_symmetric() {
        let dir = Path::new("/tmp/x");
        let a = config(Mode::Ftfw, Transport::Udp, 0, dir);
        let b = config(Mode::Ftfw, Transport::Udp, 1, dir);
        assert!(a.contains("IPv4_address 10.231.1.1"));
        assert!(b.contains("IPv4_Destination_Address 10.231.1.1"));
        assert!(config(Mode::Alarm, Transport::Multicast, 0, dir).contains("225.0.0.50"));
    }
}
