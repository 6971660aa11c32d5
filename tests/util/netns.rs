//! Network namespaces, veth links and nftables rulesets for the system tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use conntrackd::sys::netns as sys_netns;

use super::cmd::{expect_ok, run, run_with_stdin};
use super::{require_root, sysctl_path, unique};

/// Namespace-local sysctls that [`NetNs::with_config`] sets explicitly.
///
/// A fresh namespace starts with `ip_forward=0`, `nf_conntrack_tcp_loose=1`,
/// `nf_conntrack_events=2` and `bridge-nf-call-*=1`; none of these is what a test usually
/// wants, so every value is written, never inherited.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NsConfig {
    /// `net.ipv4.ip_forward` and `net.ipv6.conf.all.forwarding`.
    pub(crate) ip_forward: bool,
    /// `net.netfilter.nf_conntrack_tcp_loose`. With loose tracking a mid-stream packet of an
    /// unknown flow becomes NEW, which hides failover bugs, so the default is off.
    pub(crate) tcp_loose: bool,
    /// `net.netfilter.nf_conntrack_events` (0, 1 or 2). With 2 (the kernel default) flows
    /// created before any listener exists never emit events; the default 1 makes tests
    /// independent of when a daemon subscribed.
    pub(crate) conntrack_events: u8,
}

impl Default for NsConfig {
    fn default() -> Self {
        Self {
            ip_forward: true,
            tcp_loose: false,
            conntrack_events: 1,
        }
    }
}

/// A network namespace `ctd-<pid>-<n>-<tag>`, deleted on drop together with every process
/// still running in it.
///
/// `lo` is up and the sysctls of [`NsConfig`] are set. Conntrack is *not* active until a rule
/// uses it: call [`enable_conntrack`].
#[derive(Debug)]
pub(crate) struct NetNs {
    name: String,
    path: PathBuf,
}

impl NetNs {
    /// Creates a namespace with the default [`NsConfig`]. `tag` only makes the name readable
    /// in `ip netns list` while debugging; keep it short.
    pub(crate) fn new(tag: &str) -> Self {
        Self::with_config(tag, NsConfig::default())
    }

    /// Creates a namespace with explicit sysctls.
    pub(crate) fn with_config(tag: &str, config: NsConfig) -> Self {
        Self::named(
            &format!("ctd-{}-{}-{tag}", std::process::id(), unique()),
            config,
        )
    }

    /// Creates a namespace with exactly this name, replacing any existing one. Prefer
    /// [`Self::new`], whose names cannot collide; this exists for tests of the fixture.
    pub(crate) fn named(name: &str, config: NsConfig) -> Self {
        require_root();
        super::contain_test_ranges();
        let name = name.to_owned();
        let path = Path::new("/run/netns").join(&name);
        if path.exists() {
            // Left over from a killed run whose pid was recycled: start from a clean slate.
            let _ = run(&["ip", "netns", "del", &name]);
        }
        expect_ok(&"ip netns add", run(&["ip", "netns", "add", &name]));
        // From here on Drop cleans up, even if the rest of the set-up panics.
        let ns = Self { name, path };
        ns.expect_ok(&["ip", "link", "set", "lo", "up"]);
        let on = |b: bool| if b { "1" } else { "0" };
        let events = config.conntrack_events.to_string();
        for (key, value) in [
            ("net.ipv4.ip_forward", on(config.ip_forward)),
            ("net.ipv6.conf.all.forwarding", on(config.ip_forward)),
            ("net.netfilter.nf_conntrack_tcp_loose", on(config.tcp_loose)),
            ("net.netfilter.nf_conntrack_events", &events),
            // Addresses must work at once; `nodad` covers addresses we add, these cover
            // link-local ones and any that a test adds by hand.
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
            // br_netfilter is built in: bridged frames would traverse the IP hooks twice.
            ("net.bridge.bridge-nf-call-iptables", "0"),
            ("net.bridge.bridge-nf-call-ip6tables", "0"),
            ("net.bridge.bridge-nf-call-arptables", "0"),
        ] {
            ns.sysctl(key, value);
        }
        ns
    }

    /// The namespace's name, as `ip netns` knows it.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/NAME`, for `conntrackd::sys::netns::{enter, run_in}`.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a thread inside this namespace (see `conntrackd::sys::netns::run_in`);
    /// sockets it opens stay in the namespace. Panics if the namespace cannot be entered.
    pub(crate) fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        sys_netns::run_in(&self.path, f)
            .unwrap_or_else(|e| panic!("cannot enter netns {}: {e}", self.name))
    }

    /// Writes a namespace-local sysctl (dotted name); panics on failure.
    pub(crate) fn sysctl(&self, key: &str, value: &str) {
        // /proc/sys/net resolves against the namespace of the thread that opens the file,
        // which is much cheaper than a `sysctl` process per knob.
        let file = sysctl_path(key);
        self.run_in(|| fs::write(&file, value))
            .unwrap_or_else(|e| panic!("netns {}: sysctl {key}={value}: {e}", self.name));
    }

    /// Reads a namespace-local sysctl (dotted name), trimmed; panics on failure.
    pub(crate) fn sysctl_get(&self, key: &str) -> String {
        let file = sysctl_path(key);
        self.run_in(|| fs::read_to_string(&file))
            .unwrap_or_else(|e| panic!("netns {}: read sysctl {key}: {e}", self.name))
            .trim()
            .to_owned()
    }

    /// A `Command` for `ip netns exec NAME argv...`, for callers that need to set up stdio.
    pub(crate) fn command(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(argv);
        cmd
    }

    /// Runs `argv` inside the namespace and returns its output, whatever the exit status.
    pub(crate) fn exec(&self, argv: &[&str]) -> Output {
        self.command(argv)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {argv:?} in {}: {e}", self.name))
    }

    /// Runs a `sh -c` script inside the namespace and returns its output.
    pub(crate) fn sh(&self, script: &str) -> Output {
        self.exec(&["sh", "-c", script])
    }

    /// Runs `argv` inside the namespace and returns stdout; panics with the details unless it
    /// succeeded.
    pub(crate) fn expect_ok(&self, argv: &[&str]) -> String {
        expect_ok(&(&self.name, argv), self.exec(argv))
    }

    /// [`Self::sh`] that panics with the details unless the script succeeded.
    pub(crate) fn expect_sh(&self, script: &str) -> String {
        expect_ok(&(&self.name, script), self.sh(script))
    }

    /// Loads an nftables ruleset (text as for `nft -f`) into the namespace.
    pub(crate) fn nft(&self, ruleset: &str) {
        let argv = ["ip", "netns", "exec", &self.name, "nft", "-f", "-"];
        expect_ok(&(&self.name, ruleset), run_with_stdin(&argv, ruleset));
    }

    /// Sets a link in this namespace up or down.
    pub(crate) fn link_set(&self, ifname: &str, up: bool) {
        self.expect_ok(&["ip", "link", "set", ifname, if up { "up" } else { "down" }]);
    }

    /// Adds an address (`10.231.1.1/24`, `fd00:231::1/64`, ...) to `ifname`. IPv6 addresses
    /// get `nodad` so that they are usable at once.
    pub(crate) fn addr_add(&self, ifname: &str, addr: &str) {
        let mut argv = vec!["ip", "addr", "add", addr, "dev", ifname];
        if addr.contains(':') {
            argv.push("nodad");
        }
        self.expect_ok(&argv);
    }

    /// Creates a bridge `name` in this namespace and brings it up. STP is off so that ports
    /// forward at once, and multicast snooping is off so that a multicast sync group (e.g.
    /// 225.0.0.50) is flooded without a querier.
    pub(crate) fn bridge(&self, name: &str) {
        self.expect_ok(&[
            "ip",
            "link",
            "add",
            name,
            "type",
            "bridge",
            "stp_state",
            "0",
            "mcast_snooping",
            "0",
        ]);
        self.link_set(name, true);
    }

    /// Makes `ifname` a port of `bridge` (both in this namespace).
    pub(crate) fn enslave(&self, ifname: &str, bridge: &str) {
        self.expect_ok(&["ip", "link", "set", ifname, "master", bridge]);
    }

    /// Pings `addr` once from this namespace (2 s timeout); panics with ping's output if no
    /// reply came.
    pub(crate) fn expect_ping(&self, addr: &str) {
        self.expect_ok(&["ping", "-c", "1", "-W", "2", addr]);
    }

    /// Pids of the processes whose network namespace is this one.
    pub(crate) fn pids(&self) -> Vec<u32> {
        let out = run(&["ip", "netns", "pids", &self.name]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// SIGKILLs every process still running in the namespace (never this test process).
    pub(crate) fn kill_all(&self) {
        let me = std::process::id();
        for pid in self.pids().into_iter().filter(|&p| p != me) {
            let _ = run(&["kill", "-9", &pid.to_string()]);
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Processes keep a namespace alive after `ip netns del`, and a daemon left running
        // would hold sockets and files: kill them first.
        self.kill_all();
        let out = run(&["ip", "netns", "del", &self.name]);
        if !out.status.success() {
            // Not a panic: Drop may run during unwinding, where a second panic aborts.
            eprintln!(
                "ip netns del {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// A veth pair whose two ends were created directly inside their namespaces (the names never
/// touch the host namespace, so equal names in parallel tests cannot collide).
///
/// Deleting either namespace deletes the pair; there is nothing to do on drop.
#[derive(Debug)]
pub(crate) struct Veth {
    a: String,
    b: String,
}

impl Veth {
    /// Creates `if_a` in `a` and `if_b` in `b`, adds the addresses and brings both ends up.
    ///
    /// `addrs_a` / `addrs_b` hold zero or more whitespace-separated addresses with prefix
    /// length, IPv4 or IPv6 (IPv6 ones are added with `nodad`), e.g.
    /// `"10.231.1.1/24 fd00:231::1/64"`. Interface names are at most 15 bytes.
    pub(crate) fn connect(
        a: &NetNs,
        if_a: &str,
        addrs_a: &str,
        b: &NetNs,
        if_b: &str,
        addrs_b: &str,
    ) -> Self {
        assert!(
            if_a.len() <= 15 && if_b.len() <= 15,
            "interface names are at most 15 bytes"
        );
        let argv = [
            "ip",
            "-n",
            a.name(),
            "link",
            "add",
            if_a,
            "type",
            "veth",
            "peer",
            "name",
            if_b,
            "netns",
            b.name(),
        ];
        expect_ok(&argv, run(&argv));
        // Up first, addresses second: an IPv6 address added while the link was down made the
        // first neighbour resolution after `up` take a full second (one NS retransmit).
        a.link_set(if_a, true);
        b.link_set(if_b, true);
        for (ns, ifname, addrs) in [(a, if_a, addrs_a), (b, if_b, addrs_b)] {
            for addr in addrs.split_whitespace() {
                ns.addr_add(ifname, addr);
            }
        }
        Self {
            a: if_a.to_owned(),
            b: if_b.to_owned(),
        }
    }

    /// The interface name in the first namespace.
    pub(crate) fn if_a(&self) -> &str {
        &self.a
    }

    /// The interface name in the second namespace.
    pub(crate) fn if_b(&self) -> &str {
        &self.b
    }
}

/// The table every ruleset of these helpers lives in; loading one replaces the previous one.
pub(crate) const NFT_TABLE: &str = "inet ctd_test";

/// Makes conntrack active in `ns`: a table with `ct state` rules in prerouting, input,
/// forward and output, accepting everything.
///
/// Conntrack only tracks in a namespace once some rule uses it. The `invalid` counters let a
/// test check for packets the kernel could not match (`nft list table inet ctd_test`).
pub(crate) fn enable_conntrack(ns: &NetNs) {
    ns.nft(&ruleset(false));
}

/// [`enable_conntrack`] plus the kernel FTP helper on TCP port 21: a `ct helper` object
/// `ftp-standard` assigned to `tcp dport 21` in prerouting (forwarded and incoming control
/// connections) and output (locally opened ones).
///
/// Automatic helper assignment is gone from the kernel, so without this no expectation is
/// ever created. The namespace whose conntrack sees the `227`/`229` reply creates the
/// expectation.
pub(crate) fn enable_conntrack_with_ftp(ns: &NetNs) {
    ns.nft(&ruleset(true));
}

fn ruleset(ftp: bool) -> String {
    let (helper_obj, helper_rule) = if ftp {
        (
            "ct helper ftp-standard { type \"ftp\" protocol tcp; }",
            "tcp dport 21 ct helper set \"ftp-standard\";",
        )
    } else {
        ("", "")
    };
    // Chain names carry a prefix because `fwd` and friends are nft keywords.
    // `add` + `delete` first makes reloading idempotent on nft 1.0.6 (no `destroy` yet).
    format!(
        "add table {NFT_TABLE}\n\
         delete table {NFT_TABLE}\n\
         table {NFT_TABLE} {{\n\
         {helper_obj}\n\
         chain ctd_pre {{ type filter hook prerouting priority filter; policy accept; \
         ct state invalid counter; {helper_rule} }}\n\
         chain ctd_in {{ type filter hook input priority filter; policy accept; \
         ct state invalid counter; }}\n\
         chain ctd_fwd {{ type filter hook forward priority filter; policy accept; \
         ct state invalid counter; }}\n\
         chain ctd_out {{ type filter hook output priority filter; policy accept; \
         ct state invalid counter; {helper_rule} }}\n\
         }}\n"
    )
}
