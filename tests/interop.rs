//! Our daemon against Debian's C conntrackd 1.4.7 (and against itself) in network
//! namespaces: start/stop, then FTFW over UDP in both directions, checked through the caches
//! (`-e`) and through the kernel tables after a commit (`conntrack -L`).
//!
//! Each scenario builds two namespaces joined by a veth pair, makes conntrack active in both,
//! runs one daemon per namespace and creates entries with `conntrack -I` on one side only.
//! The entries use documentation prefixes (192.0.2.0/24 → 198.51.100.0/24) so that the sync
//! traffic's own conntracks never enter the comparison.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::bulk::create_tcp_flows;
use crate::util::ct::strip_volatile;
use crate::util::{
    CDaemon, NetNs, OUR_CONNTRACKD, Veth, ct_insert, ct_list, enable_conntrack, general,
    mcast_config, udp_config, wait_until,
};

pub(crate) const STATS: i32 = 21;
const KILL: i32 = 20;
pub(crate) const DUMP_INTERNAL: i32 = 16;
pub(crate) const DUMP_EXTERNAL: i32 = 17;

/// Two namespaces joined by veth `ia`/`ib` on `10.232.<net>.0/24`, conntrack active in both.
pub(crate) fn pair(tag: &str, net: u8) -> (NetNs, NetNs, Veth) {
    let a = NetNs::new(&format!("{tag}a"));
    let b = NetNs::new(&format!("{tag}b"));
    let veth = Veth::connect(
        &a,
        "ia",
        &format!("10.232.{net}.1/24"),
        &b,
        "ib",
        &format!("10.232.{net}.2/24"),
    );
    enable_conntrack(&a);
    enable_conntrack(&b);
    (a, b, veth)
}

fn conf(side: char, net: u8, port: u16) -> String {
    conf_t("udp", side, net, port)
}

/// FTFW over `transport` ("udp", "mcast" or "tcp") for node `side` of [`pair`] `net`.
fn conf_t(transport: &str, side: char, net: u8, port: u16) -> String {
    conf_tm(transport, "Mode FTFW { }", side, net, port)
}

/// [`conf_t`] with another `Mode` block.
pub(crate) fn conf_tm(transport: &str, mode: &str, side: char, net: u8, port: u16) -> String {
    let (iface, local, peer) = if side == 'a' {
        ("ia", format!("10.232.{net}.1"), format!("10.232.{net}.2"))
    } else {
        ("ib", format!("10.232.{net}.2"), format!("10.232.{net}.1"))
    };
    match transport {
        "udp" => udp_config(mode, iface, &local, &peer, port),
        "mcast" => mcast_config(mode, iface, &local, &format!("225.0.0.{net}"), port),
        "tcp" => format!(
            "Sync {{\n\t{mode}\n\tTCP {{\n\t\tIPv4_address {local}\n\
             \t\tIPv4_Destination_Address {peer}\n\t\tPort {port}\n\t\tInterface {iface}\n\
             \t\tChecksum on\n\t}}\n}}\n{}",
            general("")
        ),
        other => panic!("unknown transport {other}"),
    }
}

pub(crate) fn ours(ns: &NetNs, config: &str) -> CDaemon {
    CDaemon::start_bin(Path::new(OUR_CONNTRACKD), ns, config)
}

pub(crate) fn text(d: &CDaemon, code: i32) -> String {
    String::from_utf8_lossy(
        &d.request(code)
            .unwrap_or_else(|e| panic!("request {code}: {e}\n{}", d.dump())),
    )
    .into_owned()
}

/// A mixed set of entries: TCP in several states, UDP, ICMP, SCTP, a mark and a zone.
pub(crate) fn insert_entries(ns: &NetNs) {
    let e: &[&[&str]] = &[
        &[
            "-p",
            "tcp",
            "-s",
            "192.0.2.1",
            "-d",
            "198.51.100.1",
            "--sport",
            "40001",
            "--dport",
            "80",
            "--state",
            "ESTABLISHED",
            "-t",
            "300",
            "-u",
            "SEEN_REPLY,ASSURED",
        ],
        &[
            "-p",
            "tcp",
            "-s",
            "192.0.2.2",
            "-d",
            "198.51.100.2",
            "--sport",
            "40002",
            "--dport",
            "443",
            "--state",
            "SYN_SENT",
            "-t",
            "100",
        ],
        &[
            "-p",
            "udp",
            "-s",
            "192.0.2.3",
            "-d",
            "198.51.100.3",
            "--sport",
            "5353",
            "--dport",
            "53",
            "-t",
            "200",
            "-m",
            "7",
        ],
        &[
            "-p",
            "icmp",
            "-s",
            "192.0.2.4",
            "-d",
            "198.51.100.4",
            "--icmp-type",
            "8",
            "--icmp-code",
            "0",
            "--icmp-id",
            "4660",
            "-t",
            "25",
        ],
        &[
            "-p",
            "sctp",
            "-s",
            "192.0.2.5",
            "-d",
            "198.51.100.5",
            "--sport",
            "2905",
            "--dport",
            "2906",
            "--state",
            "ESTABLISHED",
            "--orig-vtag",
            "1234",
            "--reply-vtag",
            "5678",
            "-t",
            "300",
        ],
        &[
            "-p",
            "tcp",
            "-s",
            "192.0.2.6",
            "-d",
            "198.51.100.6",
            "--sport",
            "40006",
            "--dport",
            "8080",
            "--state",
            "ESTABLISHED",
            "-t",
            "300",
            "-w",
            "5",
        ],
    ];
    for args in e {
        ct_insert(ns, args);
    }
}

pub(crate) const N_ENTRIES: usize = 6;

/// IPv6 (TCP, ICMPv6), SNAT and DNAT (IPv4 and IPv6) and a zone with NAT.
fn insert_nat_v6_entries(ns: &NetNs) {
    let e: &[&[&str]] = &[
        &[
            "-p",
            "tcp",
            "-s",
            "2001:db8::1",
            "-d",
            "2001:db8:1::2",
            "--sport",
            "40010",
            "--dport",
            "80",
            "--state",
            "ESTABLISHED",
            "-t",
            "300",
            "-u",
            "SEEN_REPLY,ASSURED",
        ],
        &[
            "-p",
            "icmpv6",
            "-s",
            "2001:db8::3",
            "-d",
            "2001:db8:1::4",
            "--icmpv6-type",
            "128",
            "--icmpv6-code",
            "0",
            "--icmpv6-id",
            "4661",
            "-t",
            "25",
        ],
        &[
            "-p",
            "tcp",
            "-s",
            "192.0.2.20",
            "-d",
            "198.51.100.20",
            "--sport",
            "40020",
            "--dport",
            "80",
            "--state",
            "ESTABLISHED",
            "-t",
            "300",
            "--src-nat",
            "203.0.113.5",
            "-u",
            "SEEN_REPLY,ASSURED",
        ],
        &[
            "-p",
            "udp",
            "-s",
            "192.0.2.21",
            "-d",
            "198.51.100.21",
            "--sport",
            "40021",
            "--dport",
            "53",
            "-t",
            "200",
            "--dst-nat",
            "10.99.0.21",
        ],
        &[
            "-p",
            "tcp",
            "-s",
            "192.0.2.22",
            "-d",
            "198.51.100.22",
            "--sport",
            "40022",
            "--dport",
            "22",
            "--state",
            "ESTABLISHED",
            "-t",
            "300",
            "--src-nat",
            "203.0.113.6",
            "-w",
            "3",
        ],
        &[
            "-p",
            "udp",
            "-s",
            "2001:db8::5",
            "-d",
            "2001:db8:1::6",
            "--sport",
            "40023",
            "--dport",
            "53",
            "-t",
            "200",
            "--src-nat",
            "2001:db8:2::1",
        ],
    ];
    for args in e {
        ct_insert(ns, args);
    }
}

const N_NAT_V6: usize = 6;

pub(crate) fn is_test_line(l: &str) -> bool {
    l.contains("src=192.0.2.") || l.contains("src=2001:db8::")
}

/// The test entries of `ns`'s kernel table, volatile fields removed, sorted.
pub(crate) fn test_table(ns: &NetNs) -> Vec<String> {
    let mut v: Vec<String> = ct_list(ns)
        .iter()
        .filter(|l| is_test_line(l))
        .map(|l| strip_volatile(l))
        .collect();
    v.sort();
    v
}

pub(crate) fn count_test_lines(s: &str) -> usize {
    s.lines().filter(|l| is_test_line(l)).count()
}

#[test]
fn ours_starts_answers_and_stops_cleanly() {
    let (a, _b, _veth) = pair("st", 10);
    let mut d = ours(&a, &conf('a', 10, 3800));
    assert!(
        d.socket_path().exists() && d.lock_path().exists(),
        "{}",
        d.dump()
    );
    let s = text(&d, STATS);
    assert!(s.starts_with("cache internal:\n"), "{s}");
    assert!(s.contains("UDP traffic (active device=ia):"), "{s}");
    assert!(
        d.output().contains("-- starting in console mode --"),
        "{}",
        d.dump()
    );
    assert!(
        d.log().contains("-- starting in console mode --"),
        "{}",
        d.dump()
    );

    // A second daemon with the same lock file refuses to start.
    let text_conf = std::fs::read_to_string(d.conf_path()).unwrap();
    let out = a
        .command(&[OUR_CONNTRACKD, "-C", &d.conf_path().to_string_lossy()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{text_conf}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("exists, perhaps conntrackd already running?")
    );

    // -k: clean shutdown, exit 0, socket and lock removed.
    let _ = d.request(KILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = d.try_wait() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "still running after -k\n{}",
            d.dump()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}\n{}", d.dump());
    assert!(
        !d.socket_path().exists() && !d.lock_path().exists(),
        "{}",
        d.dump()
    );
    assert!(d.log().contains("---- shutdown received ----"));

    // SIGTERM: the same clean exit.
    let mut d = ours(&a, &conf('a', 10, 3800));
    let status = d.stop();
    assert!(status.success(), "{status}\n{}", d.dump());
    assert!(!d.socket_path().exists() && !d.lock_path().exists());
}

#[test]
fn ours_internal_cache_follows_the_kernel() {
    let (a, _b, _veth) = pair("ic", 11);
    // Entries that exist before start come from the start-up dump.
    ct_insert(
        &a,
        &[
            "-p",
            "udp",
            "-s",
            "192.0.2.100",
            "-d",
            "198.51.100.100",
            "--sport",
            "1000",
            "--dport",
            "2000",
            "-t",
            "100",
        ],
    );
    let d = ours(&a, &conf('a', 11, 3801));
    assert_eq!(
        count_test_lines(&text(&d, DUMP_INTERNAL)),
        1,
        "{}",
        d.dump()
    );
    insert_entries(&a);
    wait_until(Duration::from_secs(5), "events in -i", || {
        count_test_lines(&text(&d, DUMP_INTERNAL)) == N_ENTRIES + 1
    });
    a.expect_ok(&["conntrack", "-D", "-s", "192.0.2.100"]);
    wait_until(Duration::from_secs(5), "destroy in -i", || {
        count_test_lines(&text(&d, DUMP_INTERNAL)) == N_ENTRIES
    });
    let s = text(&d, 29);
    assert!(s.starts_with("cache:internal\tactive objects:"), "{s}");
}

/// Entries made on `src_ns` reach `dst`'s external cache, and after `dst`'s commit its
/// kernel table equals the source's.
pub(crate) fn replicate_and_commit(src_ns: &NetNs, dst_ns: &NetNs, dst: &CDaemon, dst_is_c: bool) {
    insert_entries(src_ns);
    let ext = || {
        if dst_is_c {
            dst.expect_ctl(&["-e"])
        } else {
            text(dst, DUMP_EXTERNAL)
        }
    };
    wait_until(
        Duration::from_secs(5),
        "entries in the external cache",
        || count_test_lines(&ext()) == N_ENTRIES,
    );
    let t0 = Instant::now();
    // C's client or ours against the destination daemon: both block until the commit is
    // complete (the daemon holds the connection open until then).
    dst.expect_ctl(&["-c"]);
    let took = t0.elapsed();
    let want = test_table(src_ns);
    let got = test_table(dst_ns);
    assert_eq!(want.len(), N_ENTRIES, "{want:#?}");
    assert_eq!(
        got,
        want,
        "kernel tables differ after commit ({took:?})\n{}",
        dst.dump()
    );
}

/// A statistics reply without its numbers and padding, and with the device name unified:
/// what must be identical between the two daemons.
fn shape(s: &str) -> String {
    s.replace("device=ib", "device=ia")
        .chars()
        .filter(|c| !c.is_ascii_digit() && *c != ' ')
        .collect()
}

#[test]
fn ftfw_udp_ours_to_c() {
    let (a, b, _veth) = pair("oc", 12);
    let da = ours(&a, &conf('a', 12, 3802));
    let db = CDaemon::start(&b, &conf('b', 12, 3802));
    replicate_and_commit(&a, &b, &db, true);
    // The statistics replies have the C daemon's layout (our client against each daemon).
    for args in [
        &["-s"][..],
        &["-s", "cache"],
        &["-s", "link"],
        &["-s", "network"],
        &["-s", "runtime"],
    ] {
        let (o, c) = (da.expect_ctl(args), db.expect_ctl(args));
        assert_eq!(
            shape(&o),
            shape(&c),
            "{args:?}\n--- ours ---\n{o}--- C ---\n{c}"
        );
    }
}

#[test]
fn ftfw_udp_c_to_ours() {
    let (a, b, _veth) = pair("co", 13);
    let _da = CDaemon::start(&a, &conf('a', 13, 3803));
    let db = ours(&b, &conf('b', 13, 3803));
    replicate_and_commit(&a, &b, &db, false);
}

#[test]
fn ftfw_udp_ours_to_ours() {
    let (a, b, _veth) = pair("oo", 14);
    let _da = ours(&a, &conf('a', 14, 3804));
    let db = ours(&b, &conf('b', 14, 3804));
    replicate_and_commit(&a, &b, &db, false);
}

#[test]
fn ftfw_mcast_ours_to_c_and_back() {
    let (a, b, _veth) = pair("mc", 15);
    let da = ours(&a, &conf_t("mcast", 'a', 15, 3815));
    let db = CDaemon::start(&b, &conf_t("mcast", 'b', 15, 3815));
    replicate_and_commit(&a, &b, &db, true);
    // The other way: b's kernel now holds the committed entries (COMMIT origin, not
    // replicated); a new one made on b reaches our external cache.
    ct_insert(
        &b,
        &[
            "-p",
            "udp",
            "-s",
            "192.0.2.77",
            "-d",
            "198.51.100.77",
            "--sport",
            "7",
            "--dport",
            "77",
            "-t",
            "100",
        ],
    );
    wait_until(Duration::from_secs(5), "C -> ours over multicast", || {
        text(&da, DUMP_EXTERNAL).contains("src=192.0.2.77")
    });
}

#[test]
fn ftfw_tcp_ours_to_c() {
    let (a, b, _veth) = pair("tc", 16);
    let da = ours(&a, &conf_t("tcp", 'a', 16, 3816));
    let db = CDaemon::start(&b, &conf_t("tcp", 'b', 16, 3816));
    replicate_and_commit(&a, &b, &db, true);
    let s = da.expect_ctl(&["-s"]);
    assert!(
        s.contains("TCP traffic (active device=ia) server=connected client=connected:"),
        "{s}"
    );
}

#[test]
fn ftfw_tcp_c_to_ours() {
    let (a, b, _veth) = pair("tr", 17);
    let _da = CDaemon::start(&a, &conf_t("tcp", 'a', 17, 3817));
    let db = ours(&b, &conf_t("tcp", 'b', 17, 3817));
    replicate_and_commit(&a, &b, &db, false);
}

/// DEL propagation both ways, and the client flags `-f`, `-F`, `-R`, `-B`, `-n`, `-t`
/// through our own client binary against our daemon.
#[test]
fn ftfw_udp_delete_and_client_flags() {
    let (a, b, _veth) = pair("df", 18);
    let da = ours(&a, &conf('a', 18, 3818));
    let db = CDaemon::start(&b, &conf('b', 18, 3818));
    insert_entries(&a);
    wait_until(Duration::from_secs(5), "entries at C", || {
        count_test_lines(&db.expect_ctl(&["-e"])) == N_ENTRIES
    });
    // ours -> C: a kernel delete becomes a CT_DEL.
    a.expect_ok(&["conntrack", "-D", "-s", "192.0.2.1"]);
    wait_until(Duration::from_secs(5), "DEL at C", || {
        count_test_lines(&db.expect_ctl(&["-e"])) == N_ENTRIES - 1
    });
    // C -> ours: create and delete on b.
    ct_insert(
        &b,
        &[
            "-p",
            "udp",
            "-s",
            "192.0.2.88",
            "-d",
            "198.51.100.88",
            "--sport",
            "8",
            "--dport",
            "88",
            "-t",
            "100",
        ],
    );
    wait_until(Duration::from_secs(5), "NEW from C", || {
        da.expect_ctl(&["-e"]).contains("src=192.0.2.88")
    });
    b.expect_ok(&["conntrack", "-D", "-s", "192.0.2.88"]);
    wait_until(Duration::from_secs(5), "DEL from C", || {
        !da.expect_ctl(&["-e"]).contains("src=192.0.2.88")
    });

    // -B: C's external cache refilled after a flush there.
    db.expect_ctl(&["-f"]);
    assert_eq!(count_test_lines(&db.expect_ctl(&["-e"])), 0);
    da.expect_ctl(&["-B"]);
    wait_until(Duration::from_secs(5), "bulk at C", || {
        count_test_lines(&db.expect_ctl(&["-e"])) == N_ENTRIES - 1
    });
    // -n on the C side: we answer its RESYNC with everything.
    db.expect_ctl(&["-f"]);
    db.expect_ctl(&["-n"]);
    wait_until(Duration::from_secs(5), "resync answered", || {
        count_test_lines(&db.expect_ctl(&["-e"])) == N_ENTRIES - 1
    });
    assert!(
        da.log().contains("resync requested by other node"),
        "{}",
        da.log()
    );
    // -f internal / -R: our internal cache emptied, then re-read from the kernel.
    da.expect_ctl(&["-f", "internal"]);
    assert_eq!(count_test_lines(&da.expect_ctl(&["-i"])), 0);
    da.expect_ctl(&["-R"]);
    wait_until(Duration::from_secs(5), "-R refills -i", || {
        count_test_lines(&da.expect_ctl(&["-i"])) == N_ENTRIES - 1
    });
    // -t is accepted.
    da.expect_ctl(&["-t"]);
    // -F: our kernel table is flushed; FLUSH origin, so C keeps its entries (§1.1).
    da.expect_ctl(&["-F"]);
    wait_until(Duration::from_secs(5), "-F empties kernel and -i", || {
        test_table(&a).is_empty() && count_test_lines(&da.expect_ctl(&["-i"])) == 0
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(count_test_lines(&db.expect_ctl(&["-e"])), N_ENTRIES - 1);
    let s = da.expect_ctl(&["-s"]);
    assert!(s.contains("cache internal:"), "{s}");
}

/// IPv6, ICMPv6, SNAT/DNAT (v4 and v6) and zones, both directions with the C daemon: the
/// committed kernel tables are equal, NAT reply tuples included.
#[test]
fn ftfw_udp_nat_ipv6_zones_both_directions() {
    for (tag, net, port, ours_first) in [("n1", 19u8, 3819u16, true), ("n2", 20, 3820, false)] {
        let (a, b, _veth) = pair(tag, net);
        let (_da, db) = if ours_first {
            (
                ours(&a, &conf('a', net, port)),
                CDaemon::start(&b, &conf('b', net, port)),
            )
        } else {
            (
                CDaemon::start(&a, &conf('a', net, port)),
                ours(&b, &conf('b', net, port)),
            )
        };
        insert_nat_v6_entries(&a);
        let ext = || {
            if ours_first {
                db.expect_ctl(&["-e"])
            } else {
                text(&db, DUMP_EXTERNAL)
            }
        };
        wait_until(
            Duration::from_secs(5),
            "NAT/IPv6 entries in the external cache",
            || count_test_lines(&ext()) == N_NAT_V6,
        );
        // Both clients block until the commit is complete (the connection is held open).
        db.expect_ctl(&["-c"]);
        let want = test_table(&a);
        assert_eq!(want.len(), N_NAT_V6, "{want:#?}");
        assert_eq!(
            test_table(&b),
            want,
            "ours first: {ours_first}\n{}",
            db.dump()
        );
    }
}

/// `n` established TCP entries 192.0.2.0/24 → 198.51.100.1:80, created through ctnetlink in
/// batches from inside `ns`.
fn bulk_create(ns: &NetNs, n: u32) -> Duration {
    bulk_create_from(ns, 0, n)
}

/// [`bulk_create`] of entries `first..first + n`.
fn bulk_create_from(ns: &NetNs, first: u32, n: u32) -> Duration {
    create_tcp_flows(ns, [192, 0, 2], Ipv4Addr::new(198, 51, 100, 1), first, n)
}

/// Milestone 5: quick numbers from one run (printed, never asserted: a shared 2-core VM).
/// Our daemon on both nodes; N entries created in a's kernel in netlink batches; times until
/// a's internal cache holds them (reader drain), b's external cache holds them
/// (replication), and b's commit returns (commit rate). Then the same commit on the C
/// daemon for comparison.
#[test]
fn perf_quick_numbers() {
    const N: u32 = 20_000;
    let (a, b, _veth) = pair("pf", 21);
    let da = ours(&a, &conf('a', 21, 3821));
    let db = ours(&b, &conf('b', 21, 3821));
    let t0 = Instant::now();
    let created = bulk_create(&a, N);
    wait_until(Duration::from_secs(30), "internal cache filled", || {
        da.active(0) >= u64::from(N)
    });
    let drained = t0.elapsed();
    wait_until(Duration::from_secs(60), "external cache filled", || {
        db.active(1) >= u64::from(N)
    });
    let replicated = t0.elapsed();
    let t1 = Instant::now();
    db.expect_ctl(&["-c"]);
    let commit = t1.elapsed();
    let runtime = text(&da, 30);
    let events: u64 = runtime
        .lines()
        .find_map(|l| l.trim().strip_prefix("events received:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(events >= u64::from(N), "{runtime}");
    let rate = |n: u32, d: Duration| f64::from(n) / d.as_secs_f64();
    println!(
        "PERF N={N}: kernel create {created:?} ({:.0}/s); reader+workers drained all events \
         after {drained:?} ({:.0} events/s end to end); replicated to peer external cache \
         after {replicated:?} ({:.0}/s); our commit {commit:?} ({:.0} entries/s)",
        rate(N, created),
        rate(N, drained),
        rate(N, replicated),
        rate(N, commit)
    );
    // The request helper gives up reading after 5 s; on a loaded machine the commit may
    // still be running then, so wait for the table rather than trusting the reply.
    wait_until(Duration::from_secs(60), "our commit complete", || {
        test_table(&b).len() == N as usize
    });

    // The C daemon committing the same state, for comparison.
    drop(db);
    a.expect_ok(&["conntrack", "-F"]);
    let (c, d, _v2) = pair("pc", 22);
    let _dc = ours(&c, &conf('a', 22, 3822));
    let dd = CDaemon::start(&d, &conf('b', 22, 3822));
    let t0 = Instant::now();
    bulk_create(&c, N);
    wait_until(Duration::from_secs(60), "C external cache filled", || {
        dd.active(1) >= u64::from(N)
    });
    let replicated = t0.elapsed();
    let t1 = Instant::now();
    dd.expect_ctl(&["-c"]);
    let commit = t1.elapsed();
    println!(
        "PERF N={N} (ours -> C): replicated into C's external cache after {replicated:?} \
         ({:.0}/s); C commit {commit:?} ({:.0} entries/s)",
        rate(N, replicated),
        rate(N, commit)
    );
    assert_eq!(test_table(&d).len(), N as usize);
}

/// A burst right after both daemons started (both still say HELLO) into a receiver whose
/// UDP buffer overruns many times over. The C daemon loses part of such a burst for good
/// (HELLO messages skip the sequence check and empty the resend queue); so did we before
/// the retransmission timeout and per-restart HELLO handling (src/sync/ftfw.rs).
#[test]
fn ftfw_burst_at_startup_survives_overruns() {
    const N: u32 = 20_000;
    let (a, b, _veth) = pair("bs", 61);
    let da = ours(&a, &conf('a', 61, 3861));
    let small = conf('b', 61, 3861).replace(
        "\t\tChecksum on\n",
        "\t\tRcvSocketBuffer 32768\n\t\tChecksum on\n",
    );
    assert!(small.contains("RcvSocketBuffer"));
    let db = ours(&b, &small);
    bulk_create(&a, N);
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.active(1) < u64::from(N) {
        assert!(
            Instant::now() < deadline,
            "backup stuck at {} of {N}\nprimary:\n{}\nbackup:\n{}",
            db.active(1),
            text(&da, STATS),
            text(&db, STATS)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stats = text(&db, STATS);
    println!("backup after the burst:\n{stats}");
    // The buffer really overran: the C-style "lost" counter saw gaps.
    let lost: u64 = stats
        .lines()
        .find(|l| l.ends_with("Lost msgs"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .unwrap_or(0);
    assert!(lost > 0, "no overrun, the test proves nothing:\n{stats}");
    assert!(db.active(1) >= u64::from(N));
}

/// `PollSecs 1` (sync-modes.md §8.4): no event socket; each poll sends what the kernel
/// holds and a DEL for what vanished. Ours polls, C receives.
#[test]
fn poll_secs_replicates_without_events() {
    let (a, b, _veth) = pair("po", 65);
    let conf_a = conf('a', 65, 3865).replace(&general(""), &general("\tPollSecs 1"));
    assert!(conf_a.contains("PollSecs 1"));
    let da = ours(&a, &conf_a);
    let db = CDaemon::start(&b, &conf('b', 65, 3865));
    insert_entries(&a);
    wait_until(
        Duration::from_secs(10),
        "entries polled and replicated",
        || count_test_lines(&db.expect_ctl(&["-e"])) == N_ENTRIES,
    );
    a.expect_ok(&["conntrack", "-D", "-s", "192.0.2.1"]);
    wait_until(Duration::from_secs(10), "the deletion polled", || {
        count_test_lines(&db.expect_ctl(&["-e"])) == N_ENTRIES - 1
    });
    // No event was read: the data came from polls.
    let runtime = text(&da, 30);
    let events: u64 = runtime
        .lines()
        .find_map(|l| l.trim().strip_prefix("events received:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("events received line");
    assert_eq!(events, 0, "{runtime}");
}

/// `PollSecs` in a daemon without a `UNIX` block (no control socket at all): the polls
/// still run and replicate.
#[test]
fn poll_secs_without_control_socket() {
    let (a, b, _veth) = pair("pn", 75);
    let conf_a = conf('a', 75, 3875).replace(&general(""), &general("\tPollSecs 1"));
    let dir = crate::util::daemon::DIR;
    let unix = format!("\tUNIX {{\n\t\tPath {dir}/ctl\n\t}}\n");
    assert!(conf_a.contains(&unix));
    let conf_a = conf_a.replace(&unix, "");
    let mut da = CDaemon::spawn_bin(Path::new(OUR_CONNTRACKD), &a, &conf_a);
    let db = CDaemon::start(&b, &conf('b', 75, 3875));
    insert_entries(&a);
    wait_until(
        Duration::from_secs(10),
        "entries polled and replicated",
        || count_test_lines(&db.expect_ctl(&["-e"])) == N_ENTRIES,
    );
    assert!(da.is_running(), "{}", da.log());
}

/// `HashLimit`: creations over the limit are refused, counted as failed, logged once;
/// what was admitted still replicates.
#[test]
fn hash_limit_refuses_and_counts() {
    let (a, b, _veth) = pair("hl", 66);
    let conf_a = conf('a', 66, 3866).replace(&general(""), &general("\tHashLimit 4"));
    let da = ours(&a, &conf_a);
    let db = CDaemon::start(&b, &conf('b', 66, 3866));
    insert_entries(&a);
    // Every creation is either admitted or refused.
    let created_failed = || -> (u64, u64) {
        let s = text(&da, STATS);
        let line = s
            .lines()
            .find(|l| l.starts_with("connections created:"))
            .expect("created line")
            .to_owned();
        let n: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (n[0], n[1])
    };
    wait_until(Duration::from_secs(5), "all creations seen", || {
        let (c, f) = created_failed();
        c + f >= N_ENTRIES as u64
    });
    let (created, failed) = created_failed();
    assert!(created <= 4, "created {created} over HashLimit 4");
    assert!(failed >= (N_ENTRIES - 4) as u64, "failed {failed}");
    assert!(da.active(0) <= 4);
    let log = da.log();
    assert_eq!(log.matches("internal cache is full").count(), 1, "{log}");
    // The admitted test entries replicate.
    let admitted = count_test_lines(&text(&da, DUMP_INTERNAL));
    assert!(admitted >= 1, "nothing admitted");
    wait_until(Duration::from_secs(5), "admitted entries at C", || {
        count_test_lines(&db.expect_ctl(&["-e"])) == admitted
    });
}

/// The same C primary state committed by our backup and by a C backup (two pairs, the
/// same entries, `CommitTimeout 30` on both backups): the two backup kernels hold the same
/// entries, and CommitTimeout capped every timeout in both.
#[test]
fn commit_equals_c_commit_with_commit_timeout() {
    const FTFW_CT30: &str = "Mode FTFW { CommitTimeout 30 }";
    let mut tables = Vec::new();
    for (tag, net, port, ours_backup) in [("q1", 67u8, 3867u16, true), ("q2", 68, 3868, false)] {
        let (a, b, _veth) = pair(tag, net);
        let _da = CDaemon::start(&a, &conf('a', net, port));
        let backup = conf_mode(FTFW_CT30, 'b', net, port);
        let db = if ours_backup {
            ours(&b, &backup)
        } else {
            CDaemon::start(&b, &backup)
        };
        insert_entries(&a);
        insert_nat_v6_entries(&a);
        let n = N_ENTRIES + N_NAT_V6;
        wait_until(
            Duration::from_secs(5),
            "entries in the external cache",
            || count_test_lines(&db.expect_ctl(&["-e"])) == n,
        );
        db.expect_ctl(&["-c"]);
        wait_until(Duration::from_secs(5), "committed", || {
            test_table(&b).len() == n
        });
        for l in ct_list(&b).iter().filter(|l| is_test_line(l)) {
            let t: u64 = l
                .split_whitespace()
                .nth(4)
                .and_then(|t| t.parse().ok())
                .expect(l);
            assert!(t <= 30, "CommitTimeout 30 not applied ({tag}): {l}");
        }
        tables.push(test_table(&b));
    }
    assert_eq!(
        tables[0], tables[1],
        "our commit (left) vs C's commit (right)"
    );
}

fn conf_mode(mode: &str, side: char, net: u8, port: u16) -> String {
    let (iface, local, peer) = if side == 'a' {
        ("ia", format!("10.232.{net}.1"), format!("10.232.{net}.2"))
    } else {
        ("ib", format!("10.232.{net}.2"), format!("10.232.{net}.1"))
    };
    udp_config(mode, iface, &local, &peer, port)
}

pub(crate) const NOTRACK: &str = "Mode NOTRACK { }";
pub(crate) const ALARM: &str = "Mode ALARM { RefreshTime 5 CacheTimeout 15 }";

#[test]
fn notrack_udp_ours_to_c() {
    let (a, b, _veth) = pair("nc", 23);
    let _da = ours(&a, &conf_mode(NOTRACK, 'a', 23, 3823));
    let db = CDaemon::start(&b, &conf_mode(NOTRACK, 'b', 23, 3823));
    replicate_and_commit(&a, &b, &db, true);
}

#[test]
fn notrack_udp_c_to_ours() {
    let (a, b, _veth) = pair("cn", 24);
    let _da = CDaemon::start(&a, &conf_mode(NOTRACK, 'a', 24, 3824));
    let db = ours(&b, &conf_mode(NOTRACK, 'b', 24, 3824));
    replicate_and_commit(&a, &b, &db, false);
}

#[test]
fn alarm_udp_ours_to_c() {
    let (a, b, _veth) = pair("ac", 25);
    let da = ours(&a, &conf_mode(ALARM, 'a', 25, 3825));
    let db = CDaemon::start(&b, &conf_mode(ALARM, 'b', 25, 3825));
    replicate_and_commit(&a, &b, &db, true);
    // Our periodic refresh refills the C daemon's flushed external cache.
    db.expect_ctl(&["-f", "external"]);
    // (A refresh may already land between the flush and this dump, hence not `== 0`.)
    assert!(count_test_lines(&db.expect_ctl(&["-e"])) < N_ENTRIES);
    wait_until(
        Duration::from_secs(8),
        "our ALARM refresh refills C's -e",
        || count_test_lines(&db.expect_ctl(&["-e"])) == N_ENTRIES,
    );
    // -F (FLUSH origin): the entries leave our cache silently and are no longer refreshed.
    da.expect_ctl(&["-F"]);
    wait_until(Duration::from_secs(5), "-F empties our kernel", || {
        test_table(&a).is_empty()
    });
    std::thread::sleep(Duration::from_millis(300));
    db.expect_ctl(&["-f", "external"]);
    std::thread::sleep(Duration::from_millis(6500));
    let e = db.expect_ctl(&["-e"]);
    assert_eq!(
        count_test_lines(&e),
        0,
        "flushed entries still refreshed:\n{e}"
    );
}

/// ALARM C -> ours, and the periodic refresh: after our external cache is flushed, the C
/// daemon's refresh (every 1-6 s with RefreshTime 5) fills it again.
#[test]
fn alarm_udp_c_to_ours_and_refresh() {
    let (a, b, _veth) = pair("ca", 26);
    let _da = CDaemon::start(&a, &conf_mode(ALARM, 'a', 26, 3826));
    let db = ours(&b, &conf_mode(ALARM, 'b', 26, 3826));
    replicate_and_commit(&a, &b, &db, false);
    // ALARM's external cache has the expiry timer: ` [expires in Ns]` before `[active since`.
    let e = text(&db, DUMP_EXTERNAL);
    assert!(
        e.lines()
            .filter(|l| is_test_line(l))
            .all(|l| l.contains(" [expires in 1") && l.contains("s] [active since ")),
        "{e}"
    );
    db.expect_ctl(&["-f", "external"]);
    // (A refresh may already land between the flush and this dump, hence not `== 0`.)
    assert!(count_test_lines(&text(&db, DUMP_EXTERNAL)) < N_ENTRIES);
    wait_until(Duration::from_secs(8), "ALARM refresh refills -e", || {
        count_test_lines(&text(&db, DUMP_EXTERNAL)) == N_ENTRIES
    });
}

/// `General { Filter }`, in user space and as a kernel BPF program (`From Kernelspace`):
/// only what passes is cached and replicated.
#[test]
fn ftfw_udp_filter_limits_replication() {
    for (tag, net, port, from) in [
        ("fl", 27u8, 3827u16, ""),
        ("fk", 38, 3840, " From Kernelspace"),
    ] {
        let (a, b, _veth) = pair(tag, net);
        let filter = format!(
            "\tFilter{from} {{\n\t\tProtocol Accept {{ TCP }}\n\
             \t\tAddress Ignore {{ IPv4_address 192.0.2.6 }}\n\t}}"
        );
        let conf_a = conf('a', net, port).replace(&general(""), &general(&filter));
        let da = ours(&a, &conf_a);
        let db = CDaemon::start(&b, &conf('b', net, port));
        insert_entries(&a);
        wait_until(Duration::from_secs(5), "filtered entries at C", || {
            count_test_lines(&db.expect_ctl(&["-e"])) == 2
        });
        std::thread::sleep(Duration::from_millis(1200));
        let e = db.expect_ctl(&["-e"]);
        assert_eq!(count_test_lines(&e), 2, "{from}: {e}");
        assert!(
            e.contains("src=192.0.2.1 ") && e.contains("src=192.0.2.2 "),
            "{e}"
        );
        assert_eq!(count_test_lines(&text(&da, DUMP_INTERNAL)), 2, "{from}");
        assert!(
            !da.log().contains("filtering events in user space"),
            "{}",
            da.log()
        );
        // `-s runtime`: the user-space filter counts what it dropped; with the kernel
        // filter those events never reach us (C counts the same way).
        let runtime = text(&da, 30);
        let filtered: u64 = runtime
            .lines()
            .find_map(|l| l.trim().strip_prefix("events filtered:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("events filtered line");
        if from.is_empty() {
            assert!(filtered >= (N_ENTRIES - 2) as u64, "{runtime}");
        } else {
            assert_eq!(filtered, 0, "{runtime}");
        }
    }
}

/// ExpectationSync with the kernel FTP helper, both directions with C: the expectation
/// reaches the peer's external cache and, after a commit (masters first), its kernel.
#[test]
fn ftfw_udp_expectations_both_directions() {
    const EXP_DUMP_EXTERNAL: i32 = 41;
    for (tag, net, port, data_port, ours_first) in [
        ("e1", 28u8, 3828u16, 50028u16, true),
        ("e2", 29, 3829, 50029, false),
    ] {
        let (a, b, _veth) = pair(tag, net);
        let client = NetNs::new(&format!("{tag}c"));
        let cnet = net + 100;
        let _v = Veth::connect(
            &client,
            "ic",
            &format!("10.232.{cnet}.1/24"),
            &a,
            "is",
            &format!("10.232.{cnet}.2/24"),
        );
        enable_conntrack(&client);
        crate::util::enable_conntrack_with_ftp(&a);
        let mode = "Mode FTFW { }\n\tOptions { ExpectationSync on }";
        let (ca, cb) = (
            conf_mode(mode, 'a', net, port),
            conf_mode(mode, 'b', net, port),
        );
        let (_da, db) = if ours_first {
            (ours(&a, &ca), CDaemon::start(&b, &cb))
        } else {
            (CDaemon::start(&a, &ca), ours(&b, &cb))
        };
        let server: std::net::IpAddr = format!("10.232.{cnet}.2").parse().unwrap();
        let session = crate::util::make_expectation(&client, &a, server, data_port);
        session.expect_expectation(&a);
        let needle = format!("dport={data_port}");
        wait_until(
            Duration::from_secs(5),
            "expectation in the external cache",
            || {
                let e = if ours_first {
                    db.expect_ctl(&["-e", "expect"])
                } else {
                    text(&db, EXP_DUMP_EXTERNAL)
                };
                e.contains(&needle)
            },
        );
        // Both clients block until the commit is complete (the connection is held open).
        db.expect_ctl(&["-c"]);
        let exps = crate::util::exp_list(&b);
        assert!(
            exps.iter()
                .any(|l| l.contains(&needle) && l.contains("helper=ftp")),
            "ours first: {ours_first}: {exps:#?}\n{}",
            db.dump()
        );
    }
}

/// Drops `percent`% of the sync datagrams `ns` sends to UDP port `port` (no netem here:
/// an nft `numgen` rule in the output hook).
pub(crate) fn lossy_output(ns: &NetNs, port: u16, percent: u32) {
    ns.nft(&format!(
        "table ip ctd_loss {{\n chain out {{\n type filter hook output priority 0; policy accept;\n \
         udp dport {port} numgen random mod 100 < {percent} counter drop\n }}\n}}\n"
    ));
}

/// FTFW under 20% loss of the sync datagrams in both directions (the handshake done
/// first): NACKs and retransmissions, which carry each object's current state, deliver
/// every entry, ours -> C and ours -> ours.
///
/// C -> anything is not asserted: Debian's 1.4.7 sender itself does not recover under this
/// loss (C -> C delivered 1863 of 2000 in 30 s here), so it is no oracle for the receiver.
#[test]
fn ftfw_udp_recovers_from_loss() {
    const N: u32 = 2000;
    for (tag, net, port, peer_is_c) in [("l1", 30u8, 3830u16, true), ("l2", 31, 3831, false)] {
        let (a, b, _veth) = pair(tag, net);
        let da = ours(&a, &conf('a', net, port));
        let db = if peer_is_c {
            CDaemon::start(&b, &conf('b', net, port))
        } else {
            ours(&b, &conf('b', net, port))
        };
        // Let the HELLO / HELLO_BACK handshake finish first (first ALIVEs after 1 s): every
        // message carrying HELLO empties the receiver's resend queue (§2.3 step 1), so a
        // lost HELLO_BACK during a burst would discard unacknowledged data in either
        // implementation.
        std::thread::sleep(Duration::from_millis(2500));
        lossy_output(&a, port, 20);
        lossy_output(&b, port, 20);
        bulk_create(&a, N);
        let deadline = Instant::now() + Duration::from_secs(30);
        while db.active(1) < u64::from(N) {
            assert!(
                Instant::now() < deadline,
                "peer is C: {peer_is_c}: {} of {N} delivered\n--- sender -s ---\n{}\n--- receiver -s ---\n{}",
                db.active(1),
                da.expect_ctl(&["-s"]),
                db.expect_ctl(&["-s"]),
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let rules = a.expect_ok(&["nft", "list", "table", "ip", "ctd_loss"]);
        let dropped = rules
            .lines()
            .find(|l| l.contains("counter"))
            .unwrap_or("")
            .trim();
        assert!(dropped.contains("counter packets"), "{rules}");
        println!(
            "LOSS peer_is_c={peer_is_c}: {N} entries delivered; sender's loss rule: {dropped}"
        );
    }
}

/// Two UDP links (`ia`/`ib` default, `ja`/`jb` backup) between the nodes of [`pair`] `net`
/// and a second veth pair on `10.232.<net+1>.0/24`.
fn two_link_conf(side: char, net: u8, port: u16) -> String {
    let (x, y) = if side == 'a' { (1, 2) } else { (2, 1) };
    let (i1, i2) = if side == 'a' {
        ("ia", "ja")
    } else {
        ("ib", "jb")
    };
    let n2 = net + 1;
    format!(
        "Sync {{\n\tMode FTFW {{ }}\n\
         \tUDP Default {{\n\t\tIPv4_address 10.232.{net}.{x}\n\t\tIPv4_Destination_Address 10.232.{net}.{y}\n\
         \t\tPort {port}\n\t\tInterface {i1}\n\t}}\n\
         \tUDP {{\n\t\tIPv4_address 10.232.{n2}.{x}\n\t\tIPv4_Destination_Address 10.232.{n2}.{y}\n\
         \t\tPort {}\n\t\tInterface {i2}\n\t}}\n}}\n{}",
        port + 1,
        general("")
    )
}

/// Redundant links: when the current link's interface goes down our daemon sends on the
/// backup link, the C peer follows it (a valid message on a link makes it current), and
/// replication goes on; `-s link` shows the roles.
#[test]
fn ftfw_udp_redundant_link_failover() {
    let (a, b, _veth) = pair("fo", 32);
    let _v2 = Veth::connect(&a, "ja", "10.232.33.1/24", &b, "jb", "10.232.33.2/24");
    let da = ours(&a, &two_link_conf('a', 32, 3834));
    let db = CDaemon::start(&b, &two_link_conf('b', 32, 3834));
    let links = da.expect_ctl(&["-s", "link"]);
    assert!(
        links.contains("device=ia status=RUNNING role=ACTIVE")
            && links.contains("device=ja status=RUNNING role=BACKUP"),
        "{links}"
    );
    ct_insert(
        &a,
        &[
            "-p",
            "udp",
            "-s",
            "192.0.2.90",
            "-d",
            "198.51.100.90",
            "--sport",
            "9",
            "--dport",
            "90",
            "-t",
            "100",
        ],
    );
    wait_until(Duration::from_secs(5), "first entry over ia", || {
        db.expect_ctl(&["-e"]).contains("src=192.0.2.90")
    });
    a.link_set("ia", false);
    wait_until(Duration::from_secs(5), "ja becomes the active link", || {
        da.expect_ctl(&["-s", "link"])
            .contains("device=ja status=RUNNING role=ACTIVE")
    });
    assert!(
        da.log()
            .contains("[notice] device `ja' becomes dedicated link"),
        "{}",
        da.log()
    );
    ct_insert(
        &a,
        &[
            "-p",
            "udp",
            "-s",
            "192.0.2.91",
            "-d",
            "198.51.100.91",
            "--sport",
            "9",
            "--dport",
            "91",
            "-t",
            "100",
        ],
    );
    wait_until(Duration::from_secs(5), "second entry over ja", || {
        db.expect_ctl(&["-e"]).contains("src=192.0.2.91")
    });
    wait_until(Duration::from_secs(5), "C follows to jb", || {
        db.expect_ctl(&["-s", "link"])
            .contains("device=jb status=RUNNING role=ACTIVE")
    });
}

/// `-t` (backup side of primary-backup.sh): `PurgeTimeout` seconds later the kernel table
/// and the internal cache are flushed, FLUSH origin, so the peer keeps its copy; `-c`
/// cancels a pending purge.
/// Redundant links under a steady stream: the active veth goes down mid-stream (its
/// datagrams in flight are lost); FTFW over the backup link recovers them and nothing is
/// missing at the peer. Ours -> ours and ours -> C.
#[test]
fn ftfw_redundant_link_down_mid_stream_loses_nothing() {
    const CHUNK: u32 = 250;
    const CHUNKS: u32 = 40;
    for (tag, net, port, c_peer) in [("m1", 70u8, 3870u16, false), ("m2", 72, 3872, true)] {
        let (a, b, _veth) = pair(tag, net);
        let _v2 = Veth::connect(
            &a,
            "ja",
            &format!("10.232.{}.1/24", net + 1),
            &b,
            "jb",
            &format!("10.232.{}.2/24", net + 1),
        );
        let da = ours(&a, &two_link_conf('a', net, port));
        let conf_b = two_link_conf('b', net, port);
        let db = if c_peer {
            CDaemon::start(&b, &conf_b)
        } else {
            ours(&b, &conf_b)
        };
        for i in 0..CHUNKS {
            if i == CHUNKS / 2 {
                a.link_set("ia", false);
            }
            bulk_create_from(&a, i * CHUNK, CHUNK);
            std::thread::sleep(Duration::from_millis(20));
        }
        let n = u64::from(CHUNK * CHUNKS);
        wait_until(
            Duration::from_secs(30),
            "every streamed entry at the peer",
            || db.active(1) >= n,
        );
        let links = da.expect_ctl(&["-s", "link"]);
        assert!(
            links.contains("device=ja status=RUNNING role=ACTIVE"),
            "{links}"
        );
        // Exactly the streamed entries (plus the sync flows' own entries, not ours).
        let e = text(&db, DUMP_EXTERNAL);
        assert_eq!(
            e.lines()
                .filter(|l| l.contains("dst=198.51.100.1 "))
                .count() as u64,
            n,
            "c_peer={c_peer}"
        );
    }
}

/// Graceful shutdown: SIGTERM right after a burst. The daemon sends what it still has
/// queued and waits (briefly) for the peer's ACKs before it exits, so the peer ends up
/// with everything; the C daemon just exits.
#[test]
fn sigterm_after_burst_loses_nothing() {
    const N: u32 = 20_000;
    let (a, b, _veth) = pair("gs", 74);
    let mut da = ours(&a, &conf('a', 74, 3874));
    let db = ours(&b, &conf('b', 74, 3874));
    // Past the handshake, so that only the shutdown is under test.
    wait_until(Duration::from_secs(5), "handshake", || {
        text(&da, STATS).contains("Pckts recv") && db.active(1) > 0
    });
    bulk_create(&a, N);
    let status = da.stop();
    assert!(status.success(), "{status:?}\n{}", da.log());
    wait_until(Duration::from_secs(10), "every entry at the peer", || {
        db.active(1) >= u64::from(N)
    });
}

#[test]
fn purge_timeout_flushes_later_and_commit_cancels() {
    let (a, b, _veth) = pair("pt", 34);
    let mode = "Mode FTFW { PurgeTimeout 2 }";
    let da = ours(&a, &conf_mode(mode, 'a', 34, 3836));
    let db = CDaemon::start(&b, &conf_mode(mode, 'b', 34, 3836));
    insert_entries(&a);
    wait_until(Duration::from_secs(5), "entries at C", || {
        count_test_lines(&db.expect_ctl(&["-e"])) == N_ENTRIES
    });
    // Cancelled by a commit: nothing flushed.
    da.expect_ctl(&["-t"]);
    da.expect_ctl(&["-c"]);
    std::thread::sleep(Duration::from_millis(2600));
    assert_eq!(test_table(&a).len(), N_ENTRIES);
    // Not cancelled: flushed after 2 s, not before.
    let t0 = Instant::now();
    da.expect_ctl(&["-t"]);
    assert!(
        da.log().contains("flushing conntrack table in 2 secs"),
        "{}",
        da.log()
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(test_table(&a).len(), N_ENTRIES);
    wait_until(Duration::from_secs(5), "purge", || {
        test_table(&a).is_empty()
    });
    assert!(t0.elapsed() >= Duration::from_secs(2));
    wait_until(Duration::from_secs(2), "internal cache emptied", || {
        count_test_lines(&da.expect_ctl(&["-i"])) == 0
    });
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        count_test_lines(&db.expect_ctl(&["-e"])),
        N_ENTRIES,
        "FLUSH origin replicated"
    );
}

/// A tiny event buffer makes the kernel drop events (ENOBUFS); `NetlinkOverrunResync 1`
/// then re-reads the table a second later and replicates what was missed.
#[test]
fn netlink_overrun_resync_recovers_lost_events() {
    const N: u32 = 20_000;
    let (a, b, _veth) = pair("ov", 35);
    let extra =
        "\tNetlinkBufferSize 4096\n\tNetlinkBufferSizeMaxGrowth 8192\n\tNetlinkOverrunResync 1";
    let da = ours(
        &a,
        &conf('a', 35, 3837).replace(&general(""), &general(extra)),
    );
    let db = CDaemon::start(&b, &conf('b', 35, 3837));
    bulk_create(&a, N);
    wait_until(
        Duration::from_secs(30),
        "all entries in our cache and at C",
        || da.active(0) >= u64::from(N) && db.active(1) >= u64::from(N),
    );
    let rt = da.expect_ctl(&["-s", "runtime"]);
    let overruns: u64 = rt
        .lines()
        .find_map(|l| l.trim().strip_prefix("netlink overrun:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(overruns > 0, "no overrun provoked:\n{rt}");
    println!("OVERRUN: {overruns} overruns, all {N} entries recovered by the resync");
}

/// `DisableExternalCache`: what arrives goes straight into our kernel (no `-c`), the
/// injected entries stay out of our internal cache (INJECT origin), `-s` shows the
/// "external inject" block. FTFW from C, and NOTRACK from ourselves.
#[test]
fn disable_external_cache_injects_into_the_kernel() {
    for (tag, net, port, mode, from_c) in [
        (
            "i1",
            36u8,
            3838u16,
            "Mode FTFW { DisableExternalCache on }",
            true,
        ),
        (
            "i2",
            37,
            3839,
            "Mode NOTRACK { DisableExternalCache on }",
            false,
        ),
    ] {
        let (a, b, _veth) = pair(tag, net);
        let sender_mode = if from_c {
            "Mode FTFW { }"
        } else {
            "Mode NOTRACK { }"
        };
        let _da = if from_c {
            CDaemon::start(&a, &conf_mode(sender_mode, 'a', net, port))
        } else {
            ours(&a, &conf_mode(sender_mode, 'a', net, port))
        };
        let db = ours(&b, &conf_mode(mode, 'b', net, port));
        insert_entries(&a);
        wait_until(
            Duration::from_secs(5),
            "entries injected into b's kernel",
            || test_table(&b).len() == N_ENTRIES,
        );
        // Same flows; injected entries keep the message's timeout and state.
        let key = |l: &String| {
            l.split(" src=")
                .nth(1)
                .unwrap_or("")
                .split_whitespace()
                .take(4)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let (ka, kb): (Vec<_>, Vec<_>) = (
            test_table(&a).iter().map(key).collect(),
            test_table(&b).iter().map(key).collect(),
        );
        assert_eq!(ka, kb);
        assert_eq!(
            count_test_lines(&text(&db, DUMP_INTERNAL)),
            0,
            "INJECT origin must be ignored"
        );
        assert_eq!(count_test_lines(&text(&db, DUMP_EXTERNAL)), 0);
        let s = text(&db, STATS);
        assert!(s.contains("external inject:\n"), "{s}");
        // A delete travels as CT_DEL and is applied to the kernel too.
        a.expect_ok(&["conntrack", "-D", "-s", "192.0.2.3"]);
        wait_until(Duration::from_secs(5), "delete injected", || {
            test_table(&b).len() == N_ENTRIES - 1
        });
    }
}

/// `-d` (how primary-backup.sh starts the daemon): the parent exits 0 at once, the
/// detached child serves the control socket, holds the lock and logs "daemon mode";
/// `-k` stops it and removes socket and lock.
#[test]
fn daemon_mode_detaches_and_stops_on_kill() {
    let (a, _b, _veth) = pair("dm", 39);
    let dir = crate::util::TempDir::new();
    let conf_path = dir.join("conntrackd.conf");
    let text_conf =
        conf('a', 39, 3841).replace(crate::util::daemon::DIR, &dir.path().to_string_lossy());
    std::fs::write(&conf_path, text_conf).unwrap();
    let c = conf_path.to_string_lossy().into_owned();
    let out = a
        .command(&[OUR_CONNTRACKD, "-C", &c, "-d"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let ctl = |args: &[&str]| {
        let mut argv = vec![OUR_CONNTRACKD, "-C", &c];
        argv.extend_from_slice(args);
        a.command(&argv).output().unwrap()
    };
    wait_until(Duration::from_secs(5), "detached daemon answers -s", || {
        ctl(&["-s"]).status.success()
    });
    assert!(dir.join("lock").exists());
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    assert!(log.contains("-- starting in daemon mode --"), "{log}");
    assert!(ctl(&["-k"]).status.success());
    wait_until(Duration::from_secs(5), "socket and lock removed", || {
        !dir.join("lock").exists() && !dir.join("ctl").exists()
    });
    // Not reachable any more: the client says so and exits 1, as the C client.
    assert_eq!(ctl(&["-s"]).status.code(), Some(1));
}

/// NOTRACK with `DisableInternalCache`: events go out without a cache (within the next
/// ALIVE run), `-i` lists the kernel table, `-s` has the "internal bypass" block, `-B`
/// re-sends the kernel table as CT_NEW, and C's commit reproduces our table.
#[test]
fn notrack_disable_internal_cache_ours_to_c() {
    let (a, b, _veth) = pair("bp", 40);
    let da = ours(
        &a,
        &conf_mode("Mode NOTRACK { DisableInternalCache on }", 'a', 40, 3842),
    );
    let db = CDaemon::start(&b, &conf_mode(NOTRACK, 'b', 40, 3842));
    replicate_and_commit(&a, &b, &db, true);
    assert_eq!(count_test_lines(&da.expect_ctl(&["-i"])), N_ENTRIES);
    let s = da.expect_ctl(&["-s"]);
    assert!(s.starts_with("internal bypass:\n"), "{s}");
    db.expect_ctl(&["-f"]);
    da.expect_ctl(&["-B"]);
    wait_until(Duration::from_secs(5), "-B from the kernel table", || {
        count_test_lines(&db.expect_ctl(&["-e"])) >= N_ENTRIES
    });
    // The peer's RESYNC (`-n` on C) is answered from a kernel dump too: there is no
    // internal cache to resend.
    db.expect_ctl(&["-f"]);
    assert_eq!(count_test_lines(&db.expect_ctl(&["-e"])), 0);
    db.expect_ctl(&["-n"]);
    wait_until(
        Duration::from_secs(5),
        "RESYNC answered from the kernel table",
        || count_test_lines(&db.expect_ctl(&["-e"])) >= N_ENTRIES,
    );
}

/// `-e` of our daemon equals a C receiver's `-e` for the same replicated state (C senders
/// in two separate pairs), `[active since Ns]` aside: the external cache keeps and renders
/// exactly what the C daemon does.
#[test]
fn external_cache_listing_matches_c() {
    let strip = |s: String| -> Vec<String> {
        let mut v: Vec<String> = s
            .lines()
            .filter(|l| is_test_line(l))
            .map(|l| l.split(" [active since").next().unwrap_or("").to_owned())
            .collect();
        v.sort();
        v
    };
    let mut listings = Vec::new();
    for (tag, net, port, ours_rx) in [("x1", 41u8, 3843u16, true), ("x2", 42, 3844, false)] {
        let (a, b, _veth) = pair(tag, net);
        let _da = CDaemon::start(&a, &conf('a', net, port));
        let db = if ours_rx {
            ours(&b, &conf('b', net, port))
        } else {
            CDaemon::start(&b, &conf('b', net, port))
        };
        insert_entries(&a);
        insert_nat_v6_entries(&a);
        wait_until(Duration::from_secs(5), "all entries received", || {
            count_test_lines(&db.expect_ctl(&["-e"])) == N_ENTRIES + N_NAT_V6
        });
        listings.push(strip(db.expect_ctl(&["-e"])));
    }
    assert_eq!(listings[0], listings[1], "ours (left) vs C (right)");
}

/// `-i` of our daemon equals the C daemon's for the same kernel entries (no NAT, where
/// the reply tuple is the mirrored original), `[active since Ns]` aside.
#[test]
fn internal_cache_listing_matches_c() {
    internal_listing_matches_c(&[("y1", 43, 3845), ("y2", 44, 3846)], |ns| {
        insert_entries(ns);
        N_ENTRIES
    });
}

/// `-i` of NAT entries (SNAT/DNAT, IPv4/IPv6, a zone): the reply tuple the kernel holds,
/// not the mirrored original.
#[test]
fn internal_cache_listing_of_nat_entries_matches_c() {
    internal_listing_matches_c(&[("y3", 63, 3863), ("y4", 64, 3864)], |ns| {
        insert_nat_v6_entries(ns);
        N_NAT_V6
    });
}

/// `-i` of ours (first place) and of C (second) over the same kernel entries, compared
/// line for line without the `[active since]` suffix.
fn internal_listing_matches_c(places: &[(&str, u8, u16); 2], insert: impl Fn(&NetNs) -> usize) {
    let strip = |s: String| -> Vec<String> {
        let mut v: Vec<String> = s
            .lines()
            .filter(|l| is_test_line(l))
            .map(|l| l.split(" [active since").next().unwrap_or("").to_owned())
            .collect();
        v.sort();
        v
    };
    let mut listings = Vec::new();
    for (i, &(tag, net, port)) in places.iter().enumerate() {
        let (a, _b, _veth) = pair(tag, net);
        let da = if i == 0 {
            ours(&a, &conf('a', net, port))
        } else {
            CDaemon::start(&a, &conf('a', net, port))
        };
        let n = insert(&a);
        wait_until(Duration::from_secs(5), "all entries cached", || {
            count_test_lines(&da.expect_ctl(&["-i"])) == n
        });
        listings.push(strip(da.expect_ctl(&["-i"])));
    }
    assert_eq!(listings[0], listings[1], "ours (left) vs C (right)");
}
