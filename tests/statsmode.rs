//! Stats mode (`Stats { LogFile … }`, no `Sync`) against Debian's conntrackd 1.4.7: both
//! daemons run with the same configuration in namespaces of their own, the same kernel
//! entries are created and deleted in each (`conntrack -I/-U/-D`, plus real ICMP traffic on
//! loopback so that a destroyed flow carries non-zero counters), and the replies and the
//! per-connection log lines are compared with only the volatile fields normalised (ctime,
//! `delta-time=`, `[active since]`, conntrack ids, uptime and buffer sizes).

use std::path::Path;
use std::time::Duration;

use crate::util::daemon::{DIR, general};
use crate::util::{
    CDaemon, NetNs, OUR_CONNTRACKD, contain_test_ranges, enable_conntrack, require_root, wait_until,
};

// Request codes (control-and-cli.md §1.3).
const CT_FLUSH_MASTER: i32 = 0;
const CT_RESYNC_MASTER: i32 = 1;
const CT_DUMP_INTERNAL: i32 = 16;
const STATS: i32 = 21;
const CT_DUMP_INT_XML: i32 = 24;
const STATS_CACHE: i32 = 29;
const STATS_RUNTIME: i32 = 30;
const CT_FLUSH_INT_CACHE: i32 = 33;
const STATS_PROCESS: i32 = 35;
/// Requests a stats-mode daemon answers with nothing (dumps of the external cache, sync
/// statistics, `-s queue`/`rsqueue`, commits, bulk send, resync request, purge, `-f`,
/// `-f external`).
const NO_REPLY: [i32; 14] = [17, 25, 28, 31, 32, 36, 37, 40, 18, 46, 22, 23, 26, 45];

const WAIT: Duration = Duration::from_secs(20);

fn stats_conf() -> String {
    format!(
        "Stats {{\n\tLogFile {DIR}/stats.log\n\tSyslog off\n}}\n{}",
        general("")
    )
}

/// A namespace with conntrack active, accounting and timestamps on (per namespace), so
/// that destroy events carry counters and `delta-time=`.
fn node(tag: &str) -> NetNs {
    let ns = NetNs::new(tag);
    enable_conntrack(&ns);
    ns.sysctl("net.netfilter.nf_conntrack_acct", "1");
    ns.sysctl("net.netfilter.nf_conntrack_timestamp", "1");
    ns
}

fn reply(d: &CDaemon, code: i32) -> String {
    String::from_utf8_lossy(
        &d.request(code)
            .unwrap_or_else(|e| panic!("request {code}: {e}\n{}", d.dump())),
    )
    .into_owned()
}

fn conn_log(d: &CDaemon) -> String {
    std::fs::read_to_string(d.dir().join("stats.log")).unwrap_or_default()
}

fn active(d: &CDaemon) -> u32 {
    reply(d, STATS)
        .lines()
        .find_map(|l| l.strip_prefix("current active connections:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(u32::MAX)
}

/// Replaces the number after each `key` (up to the next non-digit) with `*`.
fn mask_after(text: &str, key: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(key) {
        out.push_str(&rest[..i + key.len()]);
        rest = &rest[i + key.len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push('*');
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// A dump (plain or XML) with the volatile numbers masked (ICMP ids too: ping's pid), lines
/// sorted (hash order).
fn dump_norm(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| {
            // ICMP ids are ping's pid.
            let l = mask_after(l, " id=");
            let l = mask_after(&l, "delta-time=");
            let l = mask_after(&l, "[active since ");
            let l = mask_after(&l, "<id>");
            mask_after(&l, "<deltatime>")
        })
        .collect();
    lines.sort();
    lines
}

/// Log lines: the `ctime()` prefix checked for shape, then dropped; `delta-time=` masked.
fn conn_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| {
            let (when, ct) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("no TAB after the time: {l:?}"));
            // "Wed Nov 25 11:48:35 2026": day, month, day of month, time, year.
            let f: Vec<&str> = when.split(' ').filter(|s| !s.is_empty()).collect();
            assert!(
                when.len() == 24 && f.len() == 5 && f[3].len() == 8 && f[4].len() == 4,
                "not a ctime() stamp: {when:?}"
            );
            mask_after(&mask_after(ct, "delta-time="), " id=")
        })
        .collect();
    lines.sort();
    lines
}

/// Every run of digits and blanks that holds a digit becomes `#`: the layout (labels, tabs,
/// line count) is compared, not values that legitimately differ.
fn layout(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.bytes().any(|b| b.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || c == ' ' {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn both(nodes: &[&NetNs], argv: &[&str]) {
    for ns in nodes {
        ns.expect_ok(argv);
    }
}

fn same(c: &CDaemon, o: &CDaemon, code: i32) -> String {
    let (a, b) = (reply(c, code), reply(o, code));
    assert_eq!(b, a, "request {code}: ours vs C\n{}", o.dump());
    a
}

#[test]
fn stats_mode_matches_c_daemon() {
    require_root();
    contain_test_ranges();
    let (cn, on) = (node("smc"), node("smo"));
    let nodes = [&cn, &on];
    // Created before the daemons: in the cache through the start-up dump only (the kernel
    // gives it no destroy event, as no listener existed when it was created).
    both(
        &nodes,
        &[
            "conntrack",
            "-I",
            "-p",
            "udp",
            "-s",
            "10.231.7.1",
            "-d",
            "10.231.7.2",
            "--sport",
            "5000",
            "--dport",
            "53",
            "-t",
            "100",
        ],
    );
    let c = CDaemon::start(&cn, &stats_conf());
    let mut o = CDaemon::start_bin(Path::new(OUR_CONNTRACKD), &on, &stats_conf());
    assert!(
        o.log().contains("-- starting in console mode --"),
        "{}",
        o.dump()
    );

    both(
        &nodes,
        &[
            "conntrack",
            "-I",
            "-p",
            "udp",
            "-s",
            "10.231.7.1",
            "-d",
            "10.231.7.2",
            "--sport",
            "1000",
            "--dport",
            "2000",
            "-t",
            "100",
        ],
    );
    both(
        &nodes,
        &[
            "conntrack",
            "-I",
            "-p",
            "tcp",
            "-s",
            "10.231.7.1",
            "-d",
            "10.231.7.2",
            "--sport",
            "1001",
            "--dport",
            "80",
            "--state",
            "ESTABLISHED",
            "-t",
            "100",
            "-m",
            "5",
        ],
    );
    both(
        &nodes,
        &[
            "conntrack",
            "-I",
            "-p",
            "tcp",
            "-s",
            "10.231.7.3",
            "-d",
            "10.231.7.2",
            "--sport",
            "1002",
            "--dport",
            "443",
            "--state",
            "SYN_SENT",
            "-t",
            "100",
        ],
    );
    both(
        &nodes,
        &[
            "conntrack",
            "-U",
            "-p",
            "tcp",
            "-s",
            "10.231.7.3",
            "--state",
            "ESTABLISHED",
            "-m",
            "9",
        ],
    );
    // Real packets: the ICMP flow gets counters in both directions.
    both(
        &nodes,
        &["ping", "-c", "3", "-i", "0.2", "-W", "1", "127.0.0.1"],
    );
    wait_until(WAIT, "5 cached connections in both", || {
        active(&c) == 5 && active(&o) == 5
    });
    same(&c, &o, STATS);
    same(&c, &o, STATS_CACHE);
    same(&c, &o, STATS_PROCESS);
    for code in NO_REPLY {
        assert_eq!(reply(&c, code), "", "C replies to {code} in stats mode");
        assert_eq!(reply(&o, code), "", "we reply to {code} in stats mode");
    }
    let (ci, oi) = (reply(&c, CT_DUMP_INTERNAL), reply(&o, CT_DUMP_INTERNAL));
    assert_eq!(dump_norm(&oi), dump_norm(&ci), "-i: ours\n{oi}\nC\n{ci}");
    // The dumped entry keeps the kernel's start timestamp.
    assert!(
        oi.contains("sport=5000 ") && oi.contains("delta-time="),
        "{oi}"
    );
    let (cx, ox) = (reply(&c, CT_DUMP_INT_XML), reply(&o, CT_DUMP_INT_XML));
    assert_eq!(dump_norm(&ox), dump_norm(&cx), "-i -x: ours\n{ox}\nC\n{cx}");
    let (cr, or) = (reply(&c, STATS_RUNTIME), reply(&o, STATS_RUNTIME));
    assert_eq!(layout(&or), layout(&cr), "-s runtime: ours\n{or}\nC\n{cr}");

    // Destroyed flows are logged, one line each, with the event's counters. With the
    // kernel's default `nf_conntrack_events` (2) the pre-existing flow has no destroy event.
    let logged = if cn.sysctl_get("net.netfilter.nf_conntrack_events") == "1" {
        5
    } else {
        4
    };
    for p in ["udp", "tcp", "icmp"] {
        for ns in nodes {
            let _ = ns.exec(&["conntrack", "-D", "-p", p]);
        }
    }
    wait_until(WAIT, "the destroyed connections logged in both", || {
        conn_log(&c).lines().count() == logged && conn_log(&o).lines().count() == logged
    });
    let (cl, ol) = (conn_log(&c), conn_log(&o));
    assert_eq!(conn_lines(&ol), conn_lines(&cl), "ours\n{ol}\nC\n{cl}");
    assert!(
        ol.lines()
            .any(|l| l.contains("icmp ") && l.contains("packets=3 bytes=252")),
        "{ol}"
    );
    // "traffic processed" adds the counters of the logged flows.
    let s = same(&c, &o, STATS);
    assert!(s.contains("504 Bytes") && s.contains("6 Pckts"), "{s}");

    // `-f internal`: the cache empties, every object counted as destroyed.
    same(&c, &o, CT_FLUSH_INT_CACHE);
    wait_until(WAIT, "flushed caches", || {
        active(&c) == 0 && active(&o) == 0
    });
    assert!(o.log().contains("[notice] flushing caches"), "{}", o.dump());
    same(&c, &o, STATS);

    // `-R` merges the kernel table; `-F` empties it and the destroy events are logged.
    both(
        &nodes,
        &[
            "conntrack",
            "-I",
            "-p",
            "tcp",
            "-s",
            "10.231.7.4",
            "-d",
            "10.231.7.2",
            "--sport",
            "1003",
            "--dport",
            "22",
            "--state",
            "ESTABLISHED",
            "-t",
            "100",
        ],
    );
    wait_until(WAIT, "one cached connection", || {
        active(&c) == 1 && active(&o) == 1
    });
    same(&c, &o, CT_RESYNC_MASTER);
    wait_until(WAIT, "same -s after -R", || {
        reply(&c, STATS) == reply(&o, STATS)
    });
    same(&c, &o, CT_FLUSH_MASTER);
    wait_until(WAIT, "the flushed flow logged", || {
        conn_log(&c).lines().count() == logged + 1 && conn_log(&o).lines().count() == logged + 1
    });
    let (cl, ol) = (conn_log(&c), conn_log(&o));
    assert_eq!(conn_lines(&ol), conn_lines(&cl), "ours\n{ol}\nC\n{cl}");
    assert!(
        o.log()
            .contains("[notice] resync with master conntrack table")
            && o.log().contains("[notice] flushing kernel conntrack table"),
        "{}",
        o.dump()
    );
    wait_until(WAIT, "same -s after -F", || {
        reply(&c, STATS) == reply(&o, STATS)
    });
    let (cr, or) = (reply(&c, STATS_RUNTIME), reply(&o, STATS_RUNTIME));
    assert_eq!(layout(&or), layout(&cr), "-s runtime: ours\n{or}\nC\n{cr}");

    // `-k`: a clean exit.
    assert!(o.ctl(&["-k"]).status.success());
    wait_until(WAIT, "our daemon exits after -k", || o.try_wait().is_some());
    assert!(!o.socket_path().exists(), "{}", o.dump());
    // One line, as the C daemon logs it.
    assert_eq!(
        o.log().matches("---- shutdown received ----").count(),
        1,
        "{}",
        o.dump()
    );
}

#[test]
fn stats_mode_filter_applies_to_events_and_log() {
    require_root();
    contain_test_ranges();
    let (cn, on) = (node("smfc"), node("smfo"));
    let nodes = [&cn, &on];
    let conf = format!(
        "Stats {{\n\tLogFile {DIR}/stats.log\n}}\n{}",
        general(
            "\tFilter {\n\t\tProtocol Accept { TCP }\n\t\tAddress Ignore { IPv4_address 10.231.8.9 }\n\t}"
        )
    );
    let c = CDaemon::start(&cn, &conf);
    let o = CDaemon::start_bin(Path::new(OUR_CONNTRACKD), &on, &conf);
    for (src, proto, sport) in [
        ("10.231.8.1", "tcp", "1000"),
        ("10.231.8.9", "tcp", "1001"),
        ("10.231.8.1", "udp", "1002"),
    ] {
        let mut argv = vec![
            "conntrack",
            "-I",
            "-p",
            proto,
            "-s",
            src,
            "-d",
            "10.231.8.2",
            "--sport",
            sport,
            "--dport",
            "80",
            "-t",
            "100",
        ];
        if proto == "tcp" {
            argv.extend(["--state", "ESTABLISHED"]);
        }
        both(&nodes, &argv);
    }
    wait_until(WAIT, "the accepted flow cached", || {
        active(&c) == 1 && active(&o) == 1
    });
    let (ci, oi) = (reply(&c, CT_DUMP_INTERNAL), reply(&o, CT_DUMP_INTERNAL));
    assert_eq!(dump_norm(&oi), dump_norm(&ci), "-i: ours\n{oi}\nC\n{ci}");
    both(&nodes, &["conntrack", "-F"]);
    wait_until(WAIT, "one logged connection", || {
        conn_log(&c).lines().count() == 1 && conn_log(&o).lines().count() == 1
    });
    assert_eq!(conn_lines(&conn_log(&o)), conn_lines(&conn_log(&c)));
    assert!(conn_log(&o).contains("src=10.231.8.1 "), "{}", conn_log(&o));
    same(&c, &o, STATS);
    let (cr, or) = (reply(&c, STATS_RUNTIME), reply(&o, STATS_RUNTIME));
    assert_eq!(layout(&or), layout(&cr), "-s runtime: ours\n{or}\nC\n{cr}");

    // SIGHUP (ours): after a rotation the connection log is opened again.
    let log = o.dir().join("stats.log");
    std::fs::rename(&log, o.dir().join("stats.log.1")).unwrap();
    o.signal("HUP");
    wait_until(WAIT, "the reopen logged", || {
        o.log().contains("log file reopened (SIGHUP)")
    });
    on.expect_ok(&[
        "conntrack",
        "-I",
        "-p",
        "tcp",
        "-s",
        "10.231.8.1",
        "-d",
        "10.231.8.2",
        "--sport",
        "1003",
        "--dport",
        "80",
        "-t",
        "100",
        "--state",
        "ESTABLISHED",
    ]);
    wait_until(WAIT, "the flow cached", || active(&o) == 1);
    on.expect_ok(&["conntrack", "-F"]);
    wait_until(WAIT, "a line in the new file", || {
        conn_log(&o).contains("sport=1003 ")
    });
    assert_eq!(conn_log(&o).lines().count(), 1, "{}", conn_log(&o));
}

/// `Systemd` (on by default) in stats mode: READY=1 once the start-up dump is in the cache,
/// STOPPING=1 on `-k`, then a clean exit.
#[test]
fn stats_mode_notifies_the_service_manager() {
    use std::os::unix::net::UnixDatagram;
    use std::process::Stdio;
    require_root();
    contain_test_ranges();
    let ns = node("smsd");
    ns.expect_ok(&[
        "conntrack",
        "-I",
        "-p",
        "udp",
        "-s",
        "10.231.9.1",
        "-d",
        "10.231.9.2",
        "--sport",
        "5000",
        "--dport",
        "53",
        "-t",
        "100",
    ]);
    let dir = crate::util::TempDir::new();
    let notify = dir.join("notify");
    let sock = UnixDatagram::bind(&notify).expect("bind the notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let conf = dir.join("conntrackd.conf");
    std::fs::write(
        &conf,
        stats_conf().replace(DIR, &dir.path().to_string_lossy()),
    )
    .unwrap();
    let mut child = ns
        .command(&[OUR_CONNTRACKD, "-C", &conf.to_string_lossy()])
        .env("NOTIFY_SOCKET", &notify)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn conntrackd");
    let recv = || {
        let mut buf = [0u8; 256];
        sock.recv(&mut buf)
            .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let ready = recv();
    let ctl = |args: &[&str]| {
        let mut argv = vec![OUR_CONNTRACKD, "-C", conf.to_str().unwrap()];
        argv.extend_from_slice(args);
        ns.expect_ok(&argv)
    };
    // Read before asserting, so that a failure does not leave the daemon running.
    let cached = if ready.is_ok() {
        ctl(&["-i"])
    } else {
        String::new()
    };
    if ready.is_ok() {
        ctl(&["-k"]);
    }
    let stopping = recv();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("waitpid").is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let status = child.wait().expect("reap");
    assert_eq!(ready.ok().as_deref(), Some("READY=1"));
    assert!(
        cached.contains("sport=5000 "),
        "-i right after READY=1: {cached}"
    );
    assert_eq!(stopping.ok().as_deref(), Some("STOPPING=1"));
    assert!(status.success(), "{status}");
}
