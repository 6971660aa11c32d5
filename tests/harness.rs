//! Tests of the fixtures in `tests/util` themselves: each checks what a fixture promises,
//! against the kernel, so that the system tests built on them can be trusted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::ct::{field, strip_volatile};
use crate::util::daemon::{START_TIMEOUT, udp_config};
use crate::util::ftp::make_expectation;
use crate::util::{
    C_CONNTRACKD, CDaemon, NetNs, NsConfig, Sysctl, Veth, ct_count, ct_flush, ct_insert, ct_list,
    enable_conntrack, enable_conntrack_with_ftp, exp_list, sysctl_get,
};

#[test]
fn netns_created_and_deleted() {
    let path: PathBuf;
    {
        let ns = NetNs::new("life");
        path = ns.path().to_owned();
        assert!(path.exists(), "{} missing", path.display());
        assert_eq!(ns.sysctl_get("net.ipv4.ip_forward"), "1");
        assert_eq!(ns.sysctl_get("net.netfilter.nf_conntrack_tcp_loose"), "0");
        assert_eq!(ns.sysctl_get("net.netfilter.nf_conntrack_events"), "1");
        let lo = ns.expect_ok(&["ip", "-o", "link", "show", "lo"]);
        assert!(lo.contains("UP"), "lo not up: {lo}");
        // A process left running must not keep the namespace alive.
        let mut sleeper = ns.command(&["sleep", "60"]).spawn().unwrap();
        crate::util::wait_until(Duration::from_secs(5), "sleep in netns", || {
            ns.pids().contains(&sleeper.id())
        });
        drop(ns);
        let status = sleeper.wait().unwrap();
        assert!(!status.success(), "sleep was not killed: {status}");
    }
    assert!(!path.exists(), "{} still exists after drop", path.display());
}

#[test]
fn netns_deleted_after_panic() {
    let mut path = PathBuf::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ns = NetNs::new("panic");
        path = ns.path().to_owned();
        panic!("test failure inside the fixture's scope");
    }));
    assert!(result.is_err());
    assert!(
        path.starts_with("/run/netns"),
        "fixture never created: {path:?}"
    );
    assert!(!path.exists(), "{} survived the panic", path.display());
}

#[test]
fn netns_replaces_stale_namespace() {
    // What a killed run with a recycled pid leaves behind: a namespace with our name, marked
    // here by a dummy link (inode numbers of namespaces are reused, so they prove nothing).
    let name = format!("ctd-{}-stale", std::process::id());
    crate::util::cmd::expect_run(&["ip", "netns", "add", &name]);
    let marker = [
        "ip", "-n", &name, "link", "add", "stale0", "type", "veth", "peer", "stale1",
    ];
    let marked = crate::util::run(&marker);
    // Constructed before any assertion so that the namespace is deleted whatever happens.
    let ns = NetNs::named(&name, NsConfig::default());
    crate::util::expect_ok(&marker, marked);
    let links = ns.expect_ok(&["ip", "-o", "link"]);
    assert!(!links.contains("stale0"), "stale namespace reused: {links}");
    assert_eq!(ns.sysctl_get("net.ipv4.ip_forward"), "1");
}

#[test]
fn veth_ping_v4_and_v6() {
    let a = NetNs::new("pa");
    let b = NetNs::new("pb");
    let veth = Veth::connect(
        &a,
        "vpA",
        "10.231.1.1/24 fd00:231::1/64",
        &b,
        "vpB",
        "10.231.1.2/24 fd00:231::2/64",
    );
    assert_eq!((veth.if_a(), veth.if_b()), ("vpA", "vpB"));
    a.expect_ok(&["ping", "-c", "1", "-W", "2", "10.231.1.2"]);
    a.expect_ok(&["ping", "-c", "1", "-W", "2", "fd00:231::2"]);
    // The host namespace never sees these interfaces.
    let host = crate::util::cmd::expect_run(&["ip", "-o", "link"]);
    assert!(
        !host.contains("vpA") && !host.contains("vpB"),
        "veth leaked into host: {host}"
    );
    // A link taken down loses its carrier on the peer too (failover tests rely on it).
    b.link_set("vpB", false);
    let state = a.expect_ok(&["ip", "-o", "link", "show", "vpA"]);
    assert!(state.contains("NO-CARRIER"), "{state}");
    b.link_set("vpB", true);
    a.expect_ok(&["ping", "-c", "1", "-W", "2", "10.231.1.2"]);
}

#[test]
fn bridge_joins_three_namespaces() {
    // The two-firewall layout: nodes hang off a bridge that lives in its own namespace.
    let sw = NetNs::new("sw");
    sw.bridge("br0");
    let nodes: Vec<NetNs> = ["n1", "n2", "n3"].iter().map(|t| NetNs::new(t)).collect();
    for (i, node) in nodes.iter().enumerate() {
        let port = format!("p{i}");
        Veth::connect(
            node,
            "eth0",
            &format!("10.231.4.{}/24", i + 1),
            &sw,
            &port,
            "",
        );
        sw.enslave(&port, "br0");
    }
    nodes[0].expect_ping("10.231.4.2");
    nodes[0].expect_ping("10.231.4.3");
    nodes[2].expect_ping("10.231.4.2");
}

#[test]
fn conntrack_insert_is_namespace_local() {
    let ns = NetNs::new("ct");
    enable_conntrack(&ns);
    ct_flush(&ns);
    assert_eq!(ct_count(&ns), 0);
    ct_insert(
        &ns,
        &[
            "-p",
            "tcp",
            "-s",
            "10.231.9.1",
            "-d",
            "10.231.9.2",
            "--sport",
            "40000",
            "--dport",
            "80",
            "--state",
            "ESTABLISHED",
            "-t",
            "120",
        ],
    );
    let list = ct_list(&ns);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(ct_count(&ns), 1);
    let line = &list[0];
    assert_eq!(field(line, "src"), Some("10.231.9.1"));
    assert_eq!(field(line, "dport"), Some("80"));
    let stable = strip_volatile(line);
    assert!(
        stable.starts_with("ipv4 2 tcp 6 ESTABLISHED src=10.231.9.1"),
        "{stable}"
    );
    // The host's table does not have it.
    let host = crate::util::cmd::run(&["conntrack", "-L", "-s", "10.231.9.1"]);
    assert!(
        !String::from_utf8_lossy(&host.stdout).contains("10.231.9.1"),
        "entry visible in the host namespace"
    );
    ct_flush(&ns);
    assert_eq!(ct_count(&ns), 0);
}

#[test]
fn sysctl_guard_restores() {
    // A harmless global knob that no other test touches (nf_conntrack_max, the guard's real
    // use, may be changed by a concurrent load test in another process).
    let key = "kernel.printk_ratelimit_burst";
    let before = sysctl_get(key);
    {
        let guard = Sysctl::set(key, &(before.parse::<u64>().unwrap() + 1).to_string());
        assert_eq!(guard.old(), before);
        assert_ne!(sysctl_get(key), before);
    }
    assert_eq!(sysctl_get(key), before);
    // Also when the holder panics.
    let res = std::panic::catch_unwind(|| {
        let _guard = Sysctl::set(key, "77");
        panic!("failing test");
    });
    assert!(res.is_err());
    assert_eq!(sysctl_get(key), before);
}

/// Two namespaces `a`/`b` joined by veth `vcA`/`vcB` on 10.231.2.0/24, conntrack enabled.
fn pair(tag: &str) -> (NetNs, NetNs, Veth) {
    let a = NetNs::new(&format!("{tag}a"));
    let b = NetNs::new(&format!("{tag}b"));
    let veth = Veth::connect(&a, "vcA", "10.231.2.1/24", &b, "vcB", "10.231.2.2/24");
    enable_conntrack(&a);
    enable_conntrack(&b);
    (a, b, veth)
}

#[test]
fn c_daemon_ftfw_udp_starts_replicates_and_cleans_up() {
    let (a, b, _veth) = pair("cd");
    let mode = "Mode FTFW { }";
    let da = CDaemon::start(
        &a,
        &udp_config(mode, "vcA", "10.231.2.1", "10.231.2.2", 3790),
    );
    let db = CDaemon::start(
        &b,
        &udp_config(mode, "vcB", "10.231.2.2", "10.231.2.1", 3790),
    );
    for d in [&da, &db] {
        assert!(d.socket_path().exists(), "no socket\n{}", d.dump());
        assert!(d.lock_path().exists(), "no lock file\n{}", d.dump());
        assert!(d.socket_path().as_os_str().len() < 108, "sun_path overflow");
        let stats = d.expect_ctl(&["-s"]);
        assert!(
            stats.contains("cache internal"),
            "unexpected -s output: {stats}"
        );
        // `ip netns exec` execs the daemon, so the child pid is conntrackd itself, and it
        // runs in the namespace we asked for.
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", d.pid())).unwrap();
        assert_eq!(comm.trim(), "conntrackd");
    }
    assert!(a.pids().contains(&da.pid()) && !a.pids().contains(&db.pid()));
    assert!(
        da.log().contains("initialization completed"),
        "{}",
        da.dump()
    );

    // End to end: an entry created in a's kernel reaches b's external cache.
    ct_insert(
        &a,
        &[
            "-p",
            "tcp",
            "-s",
            "10.231.8.1",
            "-d",
            "10.231.8.2",
            "--sport",
            "41000",
            "--dport",
            "22",
            "--state",
            "ESTABLISHED",
            "-t",
            "120",
        ],
    );
    crate::util::wait_until(
        Duration::from_secs(5),
        "entry in b's external cache",
        || db.expect_ctl(&["-e"]).contains("src=10.231.8.1"),
    );

    let dirs = [da.dir().to_owned(), db.dir().to_owned()];
    let pids = [da.pid(), db.pid()];
    drop(da);
    drop(db);
    for (dir, pid) in dirs.iter().zip(pids) {
        assert!(!dir.exists(), "{} survived drop", dir.display());
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} still running"
        );
    }
}

#[test]
fn c_daemon_alarm_stop_is_clean() {
    let (a, _b, _veth) = pair("al");
    let conf = udp_config(
        "Mode ALARM { RefreshTime 5 CacheTimeout 15 }",
        "vcA",
        "10.231.2.1",
        "10.231.2.2",
        3791,
    );
    let mut d = CDaemon::start(&a, &conf);
    assert!(d.is_running());
    let status = d.stop();
    assert!(status.success(), "SIGTERM exit: {status}\n{}", d.dump());
    // A clean shutdown removes its socket and lock file itself.
    assert!(
        !d.socket_path().exists() && !d.lock_path().exists(),
        "{}",
        d.dump()
    );
    assert!(d.log().contains("shutdown"), "{}", d.dump());
}

#[test]
fn c_daemon_start_failure_is_reported() {
    let a = NetNs::new("bad");
    // No interface `nope` in this namespace: 1.4.7 fails to open the channel and exits 1.
    let conf = udp_config("Mode FTFW { }", "nope", "10.231.2.1", "10.231.2.2", 3792);
    let mut d = CDaemon::spawn_bin(Path::new(C_CONNTRACKD), &a, &conf);
    let err = d.wait_ready(START_TIMEOUT).unwrap_err();
    assert!(err.contains("exited early"), "{err}\n{}", d.dump());
    assert!(!d.is_running());
}

/// Two namespaces on 10.231.3.0/24 and fd00:231:3::/64; the helper only where asked.
fn ftp_pair(tag: &str, helper_on_client: bool, helper_on_server: bool) -> (NetNs, NetNs) {
    let client = NetNs::new(&format!("{tag}c"));
    let server = NetNs::new(&format!("{tag}s"));
    Veth::connect(
        &client,
        "vfC",
        "10.231.3.1/24 fd00:231:3::1/64",
        &server,
        "vfS",
        "10.231.3.2/24 fd00:231:3::2/64",
    );
    for (ns, helper) in [(&client, helper_on_client), (&server, helper_on_server)] {
        if helper {
            enable_conntrack_with_ftp(ns)
        } else {
            enable_conntrack(ns)
        }
    }
    (client, server)
}

#[test]
fn ftp_expectation_on_server_side() {
    let (client, server) = ftp_pair("fs", false, true);
    let session = make_expectation(&client, &server, "10.231.3.2".parse().unwrap(), 50000);
    assert_eq!(
        session.reply(),
        "227 Entering Passive Mode (10,231,3,2,195,80)"
    );
    let line = session.expect_expectation(&server);
    assert!(line.contains("helper=ftp"), "{line}");
    assert_eq!(field(&line, "src"), Some("10.231.3.1"));
    assert_eq!(field(&line, "dst"), Some("10.231.3.2"));
    // Without the helper the client's namespace tracks the flow but expects nothing.
    assert!(exp_list(&client).is_empty(), "{:?}", exp_list(&client));
    let master = ct_list(&server)
        .into_iter()
        .find(|l| l.contains("dport=21"))
        .expect("control connection tracked");
    assert!(master.contains("helper=ftp"), "{master}");
    // The session closes cleanly (its server thread ends) even with entries still around;
    // the master entry outlives the connection (TIME_WAIT), and so does its expectation
    // until the entry goes: a flush.
    drop(session);
    ct_flush(&server);
    assert!(exp_list(&server).is_empty(), "{:?}", exp_list(&server));
}

#[test]
fn ftp_expectation_on_client_side_ipv6() {
    let (client, server) = ftp_pair("f6", true, false);
    let session = make_expectation(&client, &server, "fd00:231:3::2".parse().unwrap(), 50001);
    assert_eq!(
        session.reply(),
        "229 Entering Extended Passive Mode (|||50001|)"
    );
    let line = session.expect_expectation(&client);
    assert!(line.contains("helper=ftp"), "{line}");
    assert!(exp_list(&server).is_empty(), "{:?}", exp_list(&server));
}

#[test]
fn c_daemon_cleaned_up_after_panic() {
    let (a, _b, _veth) = pair("cp");
    let mut seen = None;
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let conf = udp_config("Mode FTFW { }", "vcA", "10.231.2.1", "10.231.2.2", 3793);
        let d = CDaemon::start(&a, &conf);
        seen = Some((d.pid(), d.dir().to_owned()));
        panic!("test failure while the daemon runs");
    }));
    assert!(res.is_err());
    let (pid, dir) = seen.expect("daemon never started");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} survived the panic"
    );
    assert!(!dir.exists(), "{} survived the panic", dir.display());
    assert!(
        a.pids().is_empty(),
        "processes left in {}: {:?}",
        a.name(),
        a.pids()
    );
}

#[test]
fn c_daemon_replicates_ftp_expectation() {
    // client --(10.231.3.0/24)-- a (FTP server, helper, daemon) --(10.231.2.0/24)-- b (daemon)
    let (a, b, _sync) = pair("ce");
    let client = NetNs::new("cec");
    Veth::connect(&client, "vfC", "10.231.3.1/24", &a, "vfS", "10.231.3.2/24");
    enable_conntrack(&client);
    enable_conntrack_with_ftp(&a);
    let sync = "Mode FTFW { }\n\tOptions { ExpectationSync on }";
    let da = CDaemon::start(
        &a,
        &udp_config(sync, "vcA", "10.231.2.1", "10.231.2.2", 3794),
    );
    let db = CDaemon::start(
        &b,
        &udp_config(sync, "vcB", "10.231.2.2", "10.231.2.1", 3794),
    );
    let session = make_expectation(&client, &a, "10.231.3.2".parse().unwrap(), 50002);
    session.expect_expectation(&a);
    crate::util::wait_until(
        Duration::from_secs(5),
        "expectation in b's external cache",
        || db.expect_ctl(&["-e", "expect"]).contains("dport=50002"),
    );
    let internal = da.expect_ctl(&["-i", "expect"]);
    assert!(
        internal.contains("dport=50002") && internal.contains("helper=ftp"),
        "{internal}"
    );
}

/// No test traffic can leave through the host's default route: the host namespace
/// blackholes every test range once any namespace fixture exists.
#[test]
fn host_namespace_blackholes_test_ranges() {
    let _ns = NetNs::new("bh");
    for (ip, probe) in [
        ("-4", "10.231.1.1"),
        ("-4", "10.232.0.2"),
        ("-4", "225.0.0.50"),
        ("-6", "fd00:231::1"),
    ] {
        let out = crate::util::run(&["ip", ip, "route", "show", "match", probe]);
        let routes = String::from_utf8_lossy(&out.stdout);
        let best = routes
            .lines()
            .map(|l| {
                let prefix = l.split_whitespace().find(|w| w.contains('/')).unwrap_or("");
                let len: u32 = prefix
                    .rsplit('/')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                (len, l.to_owned())
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, l)| l)
            .unwrap_or_default();
        assert!(
            best.starts_with("blackhole"),
            "{probe}: the host's best route is `{best}`, not a blackhole:\n{routes}"
        );
    }
}
