//! A two-firewall cluster in namespaces, failed over for real by keepalived.
//!
//! ```text
//!  client 10.231.1.10 ─┐                      ┌─ server 10.232.1.10
//!    (default via      │  "sw": brlan, brwan  │    (default via
//!     LAN VIP .1.1)    ├──── lan0  fw1  wan0 ─┤     WAN VIP .1.1)
//!                      └──── lan0  fw2  wan0 ─┘
//!                            sync0 ═══ sync0   10.231.254.1 <-> .2 (conntrackd, UDP)
//! ```
//!
//! Both firewalls run keepalived from OUR `conf/keepalived.conf.in` (VRRPv3, adverts every
//! 0.3 s, fw1 priority 150, fw2 100, both starting as BACKUP) with OUR
//! `conf/primary-backup.sh` as notify script, pointed at that node's conntrackd binary and
//! config. The firewalls forward only `established,related` packets plus a bare SYN to the
//! server port and drop INVALID, with `nf_conntrack_tcp_loose=0`: a connection survives a
//! failover only if its state was replicated and committed. A [`Stream`] is a long-lived TCP
//! connection client -> server that tells a reset from a stall from a resumption.
//!
//! Facts this relies on are in `/work/shared/reference/testbed-notes.md` (keepalived's
//! SIGKILL is not a crash: [`Testbed::hard_fail`] freezes, unplugs, then kills).

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::daemon::{CDaemon, general};
use super::netns::{NetNs, Veth};
use super::{TempDir, run, wait_until};

/// The server's TCP port: the only destination a firewall lets a new connection reach.
pub(crate) const SERVER_PORT: u16 = 5000;
/// The server's address.
pub(crate) const SERVER_ADDR: &str = "10.232.1.10";
/// The server's second address, for [`Flows`] (so they never meet the [`Stream`]).
pub(crate) const BULK_ADDR: &str = "10.232.1.11";
/// The client's address.
pub(crate) const CLIENT_ADDR: &str = "10.231.1.10";
/// The floating gateway addresses keepalived moves (with prefix length).
pub(crate) const LAN_VIP: &str = "10.231.1.1/24";
/// See [`LAN_VIP`].
pub(crate) const WAN_VIP: &str = "10.232.1.1/24";
/// VRRP advert interval in seconds (VRRPv3 allows fractions).
pub(crate) const ADVERT_INT: &str = "0.3";
/// The nft table of the firewalls.
const FW_TABLE: &str = "inet fw";

/// Which conntrackd runs on a firewall.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    /// No conntrackd at all (control runs): the notify script's calls fail, nothing syncs.
    NoDaemon,
    /// This binary (Debian's C conntrackd or ours).
    Daemon(PathBuf),
}

/// The sync mode of the generated conntrackd configs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SyncMode {
    /// Reliable replication with acknowledgements and resync (`Mode FTFW { }`).
    Ftfw,
    /// Periodic refresh of every entry (`Mode ALARM { RefreshTime 1 CacheTimeout 10 }`).
    Alarm,
    /// Best effort, no acknowledgements (`Mode NOTRACK { }`).
    Notrack,
}

/// Failover tests build the same topology with timing-sensitive VRRP; running two at once on
/// a 2-core machine only adds noise, so they take turns.
static SERIAL: Mutex<()> = Mutex::new(());

/// One firewall: its namespace, conntrackd (if any) and keepalived.
#[derive(Debug)]
pub(crate) struct Firewall {
    /// `fw1` or `fw2`.
    pub(crate) name: &'static str,
    keepalived: Option<Child>,
    /// The conntrackd of this node, if the scenario runs one.
    pub(crate) daemon: Option<CDaemon>,
    /// Declared after the processes so that they are stopped before it is deleted.
    pub(crate) ns: NetNs,
    /// This node's files: keepalived.conf, keepalived.log, notify.log (and the conntrackd
    /// config for [`Node::NoDaemon`]).
    dir: PathBuf,
    /// 0 for fw1, 1 for fw2.
    index: usize,
    node: Node,
    mode: SyncMode,
    /// The notify script keepalived runs, relative to the repository.
    script: &'static str,
}

impl Firewall {
    /// Starts this node's conntrackd (if any), then keepalived with our template and notify
    /// script pointed at that daemon.
    fn boot(&mut self) {
        let i = self.index;
        let config = sync_config(self.mode, i + 1, 2 - i);
        let (bin, conf) = match &self.node {
            Node::NoDaemon => {
                let conf = self.dir.join("conntrackd.conf");
                fs::write(&conf, &config).expect("write conntrackd.conf");
                (PathBuf::from("/bin/false"), conf)
            }
            Node::Daemon(bin) => {
                let d = CDaemon::start_bin(bin, &self.ns, &config);
                let conf = d.conf_path();
                self.daemon = Some(d);
                (bin.clone(), conf)
            }
        };
        let priority = if i == 0 { 150 } else { 100 };
        self.keepalived = Some(start_keepalived(self, priority, &bin, &conf));
    }

    /// How many times the notify script finished the `primary` transition.
    pub(crate) fn primary_runs(&self) -> usize {
        self.notify_log().matches("primary: done").count()
    }

    /// The notify script's report so far (one line per conntrackd call).
    pub(crate) fn notify_log(&self) -> String {
        fs::read_to_string(self.dir.join("notify.log")).unwrap_or_default()
    }

    /// keepalived's console output so far.
    pub(crate) fn keepalived_log(&self) -> String {
        fs::read_to_string(self.dir.join("keepalived.log")).unwrap_or_default()
    }

    /// The conntrackd log so far (empty without a daemon).
    pub(crate) fn daemon_log(&self) -> String {
        self.daemon.as_ref().map(CDaemon::log).unwrap_or_default()
    }

    /// Whether this node holds both floating addresses on links that are up (a failed node
    /// keeps its addresses on its downed links).
    pub(crate) fn holds_vips(&self) -> bool {
        let lan = self
            .ns
            .exec(&["ip", "-4", "-o", "addr", "show", "dev", "lan0", "up"]);
        let wan = self
            .ns
            .exec(&["ip", "-4", "-o", "addr", "show", "dev", "wan0", "up"]);
        String::from_utf8_lossy(&lan.stdout).contains(&format!(" {LAN_VIP} "))
            && String::from_utf8_lossy(&wan.stdout).contains(&format!(" {WAN_VIP} "))
    }

    /// The packets the forward chain dropped as INVALID.
    pub(crate) fn invalid_drops(&self) -> u64 {
        let out = self
            .ns
            .expect_ok(&["nft", "list", "chain", "inet", "fw", "forward"]);
        out.lines()
            .find(|l| l.contains("ct state invalid"))
            .and_then(|l| {
                let mut words = l.split_whitespace();
                words.find(|&w| w == "packets")?;
                words.next()?.parse().ok()
            })
            .unwrap_or_else(|| panic!("no invalid counter in\n{out}"))
    }

    /// The kernel's conntrack entry (`conntrack -L` line) of the client's connection from
    /// `client_port` to the server, if any.
    pub(crate) fn kernel_flow(&self, client_port: u16) -> Option<String> {
        let out = self.ns.exec(&[
            "conntrack",
            "-L",
            "-p",
            "tcp",
            "--sport",
            &client_port.to_string(),
            "--dport",
            &SERVER_PORT.to_string(),
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .map(str::to_owned)
    }

    /// Whether conntrackd's external cache (`-e`) holds the client's connection.
    pub(crate) fn external_has(&self, client_port: u16) -> bool {
        let Some(d) = &self.daemon else { return false };
        let out = d.ctl(&["-e"]);
        let needle = format!("sport={client_port} dport={SERVER_PORT}");
        String::from_utf8_lossy(&out.stdout).contains(&needle)
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        if let Some(mut k) = self.keepalived.take() {
            let _ = k.kill();
            let _ = k.wait();
        }
    }
}

/// The whole cluster; everything is torn down on drop (processes, namespaces, files).
#[derive(Debug)]
pub(crate) struct Testbed {
    /// `fws[0]` is fw1 (priority 150, the first master), `fws[1]` fw2.
    pub(crate) fws: [Firewall; 2],
    /// The client namespace (default route via the LAN VIP).
    pub(crate) client: NetNs,
    /// The server namespace (default route via the WAN VIP).
    pub(crate) server: NetNs,
    /// The two bridges.
    _sw: NetNs,
    dir: TempDir,
    mode: SyncMode,
    _serial: MutexGuard<'static, ()>,
}

impl Testbed {
    /// Builds the cluster with `nodes[0]` on fw1 and `nodes[1]` on fw2, starts the daemons,
    /// then keepalived, and waits until fw1 is master and its notify script has finished.
    pub(crate) fn start(nodes: [Node; 2], mode: SyncMode) -> Self {
        Self::start_with_script(nodes, mode, "conf/primary-backup.sh")
    }

    /// [`Self::start`] with another notify script of the repository (`conf/…`) that logs
    /// the same way (e.g. `conf/primary-backup-takeover.sh`).
    pub(crate) fn start_with_script(
        nodes: [Node; 2],
        mode: SyncMode,
        script: &'static str,
    ) -> Self {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = TempDir::new();
        let sw = NetNs::new("sw");
        let client = NetNs::new("cli");
        let server = NetNs::new("srv");
        let fw1 = NetNs::new("fw1");
        let fw2 = NetNs::new("fw2");
        for br in ["brlan", "brwan"] {
            sw.bridge(br);
        }
        // Every segment port: (namespace, its interface, address, switch port, bridge).
        for (ns, ifname, addr, port, br) in [
            (&client, "eth0", "10.231.1.10/24", "cli", "brlan"),
            (&fw1, "lan0", "10.231.1.2/24", "fw1-lan", "brlan"),
            (&fw2, "lan0", "10.231.1.3/24", "fw2-lan", "brlan"),
            (&fw1, "wan0", "10.232.1.2/24", "fw1-wan", "brwan"),
            (&fw2, "wan0", "10.232.1.3/24", "fw2-wan", "brwan"),
            (
                &server,
                "eth0",
                "10.232.1.10/24 10.232.1.11/24",
                "srv",
                "brwan",
            ),
        ] {
            Veth::connect(ns, ifname, addr, &sw, port, "");
            sw.enslave(port, br);
        }
        Veth::connect(
            &fw1,
            "sync0",
            "10.231.254.1/30",
            &fw2,
            "sync0",
            "10.231.254.2/30",
        );
        client.expect_ok(&["ip", "route", "add", "default", "via", "10.231.1.1"]);
        server.expect_ok(&["ip", "route", "add", "default", "via", "10.232.1.1"]);
        for fw in [&fw1, &fw2] {
            // NetNs already set ip_forward=1, tcp_loose=0, events=1; say so where it matters.
            assert_eq!(fw.sysctl_get("net.netfilter.nf_conntrack_tcp_loose"), "0");
            assert_eq!(fw.sysctl_get("net.ipv4.ip_forward"), "1");
            fw.nft(&firewall_ruleset());
        }

        let mut fws = Vec::new();
        for (i, (ns, node)) in [fw1, fw2].into_iter().zip(nodes).enumerate() {
            let name = ["fw1", "fw2"][i];
            let fw_dir = dir.join(name);
            fs::create_dir(&fw_dir).expect("mkdir fw dir");
            let mut fw = Firewall {
                name,
                index: i,
                node,
                mode,
                script,
                keepalived: None,
                daemon: None,
                ns,
                dir: fw_dir,
            };
            fw.boot();
            fws.push(fw);
        }
        let fws: [Firewall; 2] = fws.try_into().expect("two firewalls");
        let tb = Self {
            fws,
            client,
            server,
            _sw: sw,
            dir,
            mode,
            _serial: serial,
        };
        tb.wait(Duration::from_secs(15), "fw1 to become master", |tb| {
            tb.master() == Some(0)
        });
        tb.wait(Duration::from_secs(10), "fw1's notify script", |tb| {
            tb.fws[0].notify_log().contains("primary: done")
        });
        tb
    }

    /// The index (0 = fw1, 1 = fw2) of the firewall that holds both VIPs, if exactly one does.
    pub(crate) fn master(&self) -> Option<usize> {
        let holders: Vec<usize> = (0..2).filter(|&i| self.fws[i].holds_vips()).collect();
        match holders[..] {
            [i] => Some(i),
            _ => None,
        }
    }

    /// Simulates a hard failure of firewall `i`: SIGSTOP every process in its namespace (no
    /// goodbye advert from keepalived, no last message from conntrackd), take its links
    /// down, then SIGKILL them. Returns when it is done.
    pub(crate) fn hard_fail(&mut self, i: usize) {
        let fw = &mut self.fws[i];
        let me = std::process::id();
        let pids: Vec<String> = fw
            .ns
            .pids()
            .into_iter()
            .filter(|&p| p != me)
            .map(|p| p.to_string())
            .collect();
        assert!(!pids.is_empty(), "no process to fail in {}", fw.name);
        let mut argv = vec!["kill", "-STOP"];
        argv.extend(pids.iter().map(String::as_str));
        let _ = run(&argv);
        for link in ["lan0", "wan0", "sync0"] {
            fw.ns.link_set(link, false);
        }
        argv[1] = "-KILL";
        let _ = run(&argv);
        if let Some(mut k) = fw.keepalived.take() {
            let _ = k.wait();
        }
        if let Some(d) = &mut fw.daemon {
            wait_until(Duration::from_secs(5), "conntrackd to die", || {
                d.try_wait().is_some()
            });
        }
    }

    /// Brings a hard-failed firewall back as after a reboot: empty conntrack table, links
    /// up, a fresh conntrackd and keepalived. It starts as BACKUP; with the higher priority
    /// fw1 then preempts.
    pub(crate) fn restore(&mut self, i: usize) {
        let fw = &mut self.fws[i];
        assert!(fw.keepalived.is_none(), "{} was not failed", fw.name);
        fw.daemon = None;
        fw.ns.expect_ok(&["conntrack", "-F"]);
        // A rebooted node has a fresh /run: keepalived refuses to start ("daemon is already
        // running") when a stale pid file names a pid that has been reused meanwhile.
        for f in ["keepalived.pid", "vrrp.pid", "checkers.pid"] {
            let _ = fs::remove_file(fw.dir.join(f));
        }
        // keepalived died holding the VIPs; a rebooted node has none.
        for (link, vip) in [("lan0", LAN_VIP), ("wan0", WAN_VIP)] {
            let _ = fw.ns.exec(&["ip", "addr", "del", vip, "dev", link]);
        }
        for link in ["lan0", "wan0", "sync0"] {
            fw.ns.link_set(link, true);
        }
        fw.boot();
    }

    /// Polls `cond` every 20 ms; after `timeout` panics with `what` and every log.
    pub(crate) fn wait(&self, timeout: Duration, what: &str, mut cond: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond(self) {
            if Instant::now() >= deadline {
                self.fail(&format!("timed out after {timeout:?} waiting for {what}"));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Panics with `msg` followed by every log of the testbed.
    pub(crate) fn fail(&self, msg: &str) -> ! {
        panic!("{msg}\n{}", self.dump());
    }

    /// Every log and table of the testbed, for failure messages.
    pub(crate) fn dump(&self) -> String {
        let mut s = format!(
            "=== testbed {} ({:?}) ===\n",
            self.dir.path().display(),
            self.mode
        );
        for fw in &self.fws {
            let _ = write!(
                s,
                "=== {} keepalived ===\n{}=== {} notify ===\n{}",
                fw.name,
                fw.keepalived_log(),
                fw.name,
                fw.notify_log()
            );
            if let Some(d) = &fw.daemon {
                let _ = write!(s, "=== {} conntrackd ===\n{}", fw.name, d.dump());
            }
            let ct = fw.ns.exec(&["conntrack", "-L"]);
            let _ = write!(
                s,
                "=== {} conntrack -L ===\n{}",
                fw.name,
                String::from_utf8_lossy(&ct.stdout)
            );
        }
        s
    }
}

/// The firewalls' ruleset: forward only established/related plus a bare SYN to the server
/// port; INVALID is counted and dropped. There is no input chain: VRRP and the sync traffic
/// are accepted. The `ct state` rules make conntrack track everything in the namespace, so
/// both firewalls load the same ruleset (the backup must track to match committed entries).
fn firewall_ruleset() -> String {
    format!(
        "add table {FW_TABLE}\n\
         delete table {FW_TABLE}\n\
         table {FW_TABLE} {{\n\
         chain forward {{ type filter hook forward priority filter; policy drop;\n\
         ct state invalid counter drop\n\
         ct state established,related counter accept\n\
         ip daddr {{ {SERVER_ADDR}, {BULK_ADDR} }} tcp dport {SERVER_PORT} tcp flags & (fin | syn | rst | ack) == syn \
         ct state new counter accept\n\
         }}\n\
         }}\n"
    )
}

/// The conntrackd config of node `me` (1 or 2) syncing with node `peer` over `sync0`. The
/// firewalls' own addresses are ignored so that VRRP and the sync traffic itself are never
/// replicated.
fn sync_config(mode: SyncMode, me: usize, peer: usize) -> String {
    let mode_block = match mode {
        SyncMode::Ftfw => "Mode FTFW { }",
        SyncMode::Alarm => "Mode ALARM {\n\t\tRefreshTime 1\n\t\tCacheTimeout 10\n\t}",
        SyncMode::Notrack => "Mode NOTRACK { }",
    };
    let filter = "\tFilter From Userspace {\n\
                  \t\tProtocol Accept {\n\t\t\tTCP\n\t\t\tUDP\n\t\t}\n\
                  \t\tAddress Ignore {\n\
                  \t\t\tIPv4_address 127.0.0.1\n\
                  \t\t\tIPv4_address 10.231.254.0/30\n\
                  \t\t\tIPv4_address 10.231.1.2\n\
                  \t\t\tIPv4_address 10.231.1.3\n\
                  \t\t\tIPv4_address 10.232.1.2\n\
                  \t\t\tIPv4_address 10.232.1.3\n\
                  \t\t}\n\
                  \t}";
    format!(
        "Sync {{\n\
         \t{mode_block}\n\
         \tUDP {{\n\
         \t\tIPv4_address 10.231.254.{me}\n\
         \t\tIPv4_Destination_Address 10.231.254.{peer}\n\
         \t\tPort 3780\n\
         \t\tInterface sync0\n\
         \t\tChecksum on\n\
         \t}}\n\
         }}\n{}",
        general(filter)
    )
}

/// The repository's file `rel` (e.g. `conf/keepalived.conf.in`).
pub(crate) fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Fills OUR `conf/keepalived.conf.in` template for `fw` and starts keepalived in its
/// namespace (foreground, VRRP only, own pid files and log).
fn start_keepalived(fw: &Firewall, priority: u32, bin: &Path, conf: &Path) -> Child {
    let template = fs::read_to_string(repo_file("conf/keepalived.conf.in"))
        .expect("read conf/keepalived.conf.in");
    let d = |n: &str| fw.dir.join(n).to_string_lossy().into_owned();
    let script = repo_file(fw.script);
    let text = template
        .replace("@ROUTER_ID@", fw.ns.name())
        .replace("@ADVERT_INT@", ADVERT_INT)
        .replace("@PRIORITY@", &priority.to_string())
        .replace("@LAN_IF@", "lan0")
        .replace("@WAN_IF@", "wan0")
        .replace("@LAN_VRID@", "31")
        .replace("@WAN_VRID@", "32")
        .replace("@LAN_VIP@", LAN_VIP)
        .replace("@WAN_VIP@", WAN_VIP)
        .replace("@CONNTRACKD_BIN@", &bin.to_string_lossy())
        .replace("@CONNTRACKD_CONFIG@", &conf.to_string_lossy())
        .replace("@NOTIFY_LOG@", &d("notify.log"))
        .replace("@NOTIFY_SCRIPT@", &script.to_string_lossy());
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        assert!(
            !line.contains('@'),
            "placeholder left in keepalived.conf: {line}"
        );
    }
    let conf_path = d("keepalived.conf");
    fs::write(&conf_path, text).expect("write keepalived.conf");
    // Appended to: a restored node's log follows its first life.
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(fw.dir.join("keepalived.log"))
        .expect("open keepalived.log");
    let log2 = log.try_clone().expect("dup log");
    fw.ns
        .command(&[
            "keepalived",
            "-n", // no fork: the child is keepalived's parent process
            "-l", // log to the console (our file)
            "-G", // not to syslog
            "-D",
            "-P", // VRRP only
            "-f",
            &conf_path,
            "-p",
            &d("keepalived.pid"),
            "-r",
            &d("vrrp.pid"),
            "-c",
            &d("checkers.pid"),
        ])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .env_remove("NOTIFY_SOCKET")
        .spawn()
        .expect("spawn keepalived")
}

/// A long-lived TCP connection from the client to an echo server: the client writes an
/// 8-byte counter every 50 ms and records when each echo comes back, so a failover shows as
/// a gap (resumed), a silence that never ends (stalled) or an error (reset).
#[derive(Debug)]
pub(crate) struct Stream {
    state: Arc<Mutex<StreamState>>,
    stop: Arc<AtomicBool>,
    socket: TcpStream,
    threads: Vec<JoinHandle<()>>,
    /// The client's source port (identifies the flow in conntrack listings).
    pub(crate) client_port: u16,
}

#[derive(Debug, Default)]
struct StreamState {
    echoes: Vec<Instant>,
    error: Option<String>,
}

/// What became of the stream after a failover.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Echoes flow again; `gap` is the longest silence around the failure.
    Resumed { gap: Duration },
    /// No echo since the failure (for at least `silent`), and no error.
    Stalled { silent: Duration },
    /// The connection failed (reset, closed, ...).
    Reset(String),
}

impl Stream {
    /// Opens the connection through the cluster (the server listens in its namespace, the
    /// client connects from its own) and waits for the first echoes.
    pub(crate) fn open(tb: &Testbed) -> Self {
        let addr: SocketAddr = format!("{SERVER_ADDR}:{SERVER_PORT}")
            .parse()
            .expect("addr");
        let listener = tb
            .server
            .run_in(|| TcpListener::bind(addr))
            .expect("bind the echo server");
        let state = Arc::new(Mutex::new(StreamState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let server_state = Arc::clone(&state);
        let server_stop = Arc::clone(&stop);
        threads.push(thread::spawn(move || {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            conn.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("read timeout");
            let mut buf = [0u8; 4096];
            while !server_stop.load(Ordering::Relaxed) {
                match conn.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        if let Err(e) = conn.write_all(&buf[..n]) {
                            note_error(&server_state, &format!("server write: {e}"));
                            return;
                        }
                    }
                    // Timeouts let the loop see the stop flag; EINTR comes from signals
                    // meant for other tests' children (SIGCHLD).
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                        ) => {}
                    Err(e) => {
                        if !server_stop.load(Ordering::Relaxed) {
                            note_error(&server_state, &format!("server read: {e}"));
                        }
                        return;
                    }
                }
            }
        }));
        let socket = tb
            .client
            .run_in(|| TcpStream::connect_timeout(&addr, Duration::from_secs(5)))
            .unwrap_or_else(|e| {
                tb.fail(&format!("client cannot connect through the cluster: {e}"))
            });
        socket.set_nodelay(true).expect("nodelay");
        let client_port = socket.local_addr().expect("local addr").port();
        let mut writer = socket.try_clone().expect("clone socket");
        let writer_stop = Arc::clone(&stop);
        let writer_state = Arc::clone(&state);
        threads.push(thread::spawn(move || {
            let mut n = 0u64;
            while !writer_stop.load(Ordering::Relaxed) {
                n += 1;
                if let Err(e) = writer.write_all(&n.to_be_bytes()) {
                    if !writer_stop.load(Ordering::Relaxed) {
                        note_error(&writer_state, &format!("client write: {e}"));
                    }
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
        }));
        let mut reader = socket.try_clone().expect("clone socket");
        let reader_stop = Arc::clone(&stop);
        let reader_state = Arc::clone(&state);
        threads.push(thread::spawn(move || {
            let mut buf = [0u8; 8];
            loop {
                match reader.read_exact(&mut buf) {
                    Ok(()) => reader_state
                        .lock()
                        .expect("stream state")
                        .echoes
                        .push(Instant::now()),
                    Err(e) => {
                        if !reader_stop.load(Ordering::Relaxed) {
                            let what = if e.kind() == ErrorKind::UnexpectedEof {
                                "client read: connection closed by peer".to_owned()
                            } else {
                                format!("client read: {e}")
                            };
                            note_error(&reader_state, &what);
                        }
                        return;
                    }
                }
            }
        }));
        let stream = Self {
            state,
            stop,
            socket,
            threads,
            client_port,
        };
        tb.wait(Duration::from_secs(5), "the stream's first echoes", |_| {
            stream.echoes() >= 3
        });
        stream
    }

    /// Echoes received so far.
    pub(crate) fn echoes(&self) -> usize {
        self.state.lock().expect("stream state").echoes.len()
    }

    /// The first error seen (reset, EOF, ...), if any.
    pub(crate) fn error(&self) -> Option<String> {
        self.state.lock().expect("stream state").error.clone()
    }

    /// Waits up to `timeout` for an echo received after `since`, then classifies the stream:
    /// any error is a reset; an echo after `since` is a resumption, with the longest silence
    /// between consecutive echoes from the last one before `failed_at` on; otherwise stalled.
    pub(crate) fn outcome(&self, failed_at: Instant, since: Instant, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let st = self.state.lock().expect("stream state");
                if let Some(e) = &st.error {
                    return Outcome::Reset(e.clone());
                }
                if st.echoes.last().is_some_and(|&t| t > since) {
                    let first = st.echoes.iter().rposition(|&t| t <= failed_at).unwrap_or(0);
                    let gap = st.echoes[first..]
                        .windows(2)
                        .map(|w| w[1] - w[0])
                        .max()
                        .unwrap_or_default();
                    return Outcome::Resumed { gap };
                }
                if Instant::now() >= deadline {
                    let last = st.echoes.last().copied().unwrap_or(failed_at);
                    return Outcome::Stalled {
                        silent: last.elapsed(),
                    };
                }
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn note_error(state: &Mutex<StreamState>, what: &str) {
    let mut st = state.lock().expect("stream state");
    if st.error.is_none() {
        st.error = Some(what.to_owned());
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblocks the client's reader and writer; the server polls the flag.
        let _ = self.socket.shutdown(Shutdown::Both);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Many idle TCP connections client -> [`BULK_ADDR`]:[`SERVER_PORT`], held open, so that a
/// failover has a real table to replicate and commit.
#[derive(Debug)]
pub(crate) struct Flows {
    client_side: Vec<TcpStream>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<Vec<TcpStream>>>,
}

impl Flows {
    /// Opens `n` connections through the cluster; panics (with the logs) if one fails.
    pub(crate) fn open(tb: &Testbed, n: usize) -> Self {
        let addr: SocketAddr = format!("{BULK_ADDR}:{SERVER_PORT}").parse().expect("addr");
        let listener = tb
            .server
            .run_in(|| TcpListener::bind(addr))
            .expect("bind the bulk server");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor_stop = Arc::clone(&stop);
        let acceptor = thread::spawn(move || {
            let mut held = Vec::new();
            while !acceptor_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => held.push(conn),
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
            held
        });
        let client_side = tb.client.run_in(|| {
            (0..n)
                .map(|i| {
                    TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_or_else(|e| {
                        tb.fail(&format!("bulk connection {i} of {n} failed: {e}"))
                    })
                })
                .collect::<Vec<_>>()
        });
        Self {
            client_side,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// How many connections are open.
    pub(crate) fn len(&self) -> usize {
        self.client_side.len()
    }
}

impl Drop for Flows {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

/// ESTABLISHED TCP entries towards [`BULK_ADDR`] in `fw`'s kernel.
pub(crate) fn bulk_established(fw: &Firewall) -> usize {
    let out = fw.ns.exec(&[
        "conntrack",
        "-L",
        "-p",
        "tcp",
        "-d",
        BULK_ADDR,
        "--state",
        "ESTABLISHED",
    ]);
    String::from_utf8_lossy(&out.stdout).lines().count()
}
