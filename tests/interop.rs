//! Our daemon against Debian's C conntrackd 1.4.7 (and against itself) in network
//! namespaces: start/stop, then FTFW over UDP in both directions, checked through the caches
//! (`-e`) and through the kernel tables after a commit (`conntrack -L`).
//!
//! Each scenario builds two namespaces joined by a veth pair, makes conntrack active in both,
//! runs one daemon per namespace and creates entries with `conntrack -I` on one side only.
//! The entries use documentation prefixes (192.0.2.0/24 → 198.51.100.0/24) so that the sync
//! traffic's own conntracks never enter the comparison.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::ct::strip_volatile;
use crate::util::{
    CDaemon, NetNs, OUR_CONNTRACKD, Veth, ct_insert, ct_list, enable_conntrack, general,
    udp_config, wait_until,
};

const STATS: i32 = 21;
const KILL: i32 = 20;
const DUMP_INTERNAL: i32 = 16;
const DUMP_EXTERNAL: i32 = 17;
const ALL_COMMIT: i32 = 46;

/// Two namespaces joined by veth `ia`/`ib` on `10.232.<net>.0/24`, conntrack active in both.
fn pair(tag: &str, net: u8) -> (NetNs, NetNs, Veth) {
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
    let (iface, local, peer) = if side == 'a' {
        ("ia", format!("10.232.{net}.1"), format!("10.232.{net}.2"))
    } else {
        ("ib", format!("10.232.{net}.2"), format!("10.232.{net}.1"))
    };
    match transport {
        "udp" => udp_config("Mode FTFW { }", iface, &local, &peer, port),
        "mcast" => format!(
            "Sync {{\n\tMode FTFW {{ }}\n\tMulticast {{\n\t\tIPv4_address 225.0.0.{net}\n\
             \t\tGroup {port}\n\t\tIPv4_interface {local}\n\t\tInterface {iface}\n\
             \t\tChecksum on\n\t}}\n}}\n{}",
            general("")
        ),
        "tcp" => format!(
            "Sync {{\n\tMode FTFW {{ }}\n\tTCP {{\n\t\tIPv4_address {local}\n\
             \t\tIPv4_Destination_Address {peer}\n\t\tPort {port}\n\t\tInterface {iface}\n\
             \t\tChecksum on\n\t}}\n}}\n{}",
            general("")
        ),
        other => panic!("unknown transport {other}"),
    }
}

fn ours(ns: &NetNs, config: &str) -> CDaemon {
    CDaemon::start_bin(Path::new(OUR_CONNTRACKD), ns, config)
}

fn text(d: &CDaemon, code: i32) -> String {
    String::from_utf8_lossy(
        &d.request(code)
            .unwrap_or_else(|e| panic!("request {code}: {e}\n{}", d.dump())),
    )
    .into_owned()
}

/// A mixed set of entries: TCP in several states, UDP, ICMP, SCTP, a mark and a zone.
fn insert_entries(ns: &NetNs) {
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

const N_ENTRIES: usize = 6;

/// The test entries of `ns`'s kernel table, volatile fields removed, sorted.
fn test_table(ns: &NetNs) -> Vec<String> {
    let mut v: Vec<String> = ct_list(ns)
        .iter()
        .filter(|l| l.contains("src=192.0.2."))
        .map(|l| strip_volatile(l))
        .collect();
    v.sort();
    v
}

fn count_test_lines(s: &str) -> usize {
    s.lines().filter(|l| l.contains("src=192.0.2.")).count()
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
fn replicate_and_commit(src_ns: &NetNs, dst_ns: &NetNs, dst: &CDaemon, dst_is_c: bool) {
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
    if dst_is_c {
        dst.expect_ctl(&["-c"]);
    } else {
        // The reply comes when the commit is complete (the connection is held open).
        let _ = dst.request(ALL_COMMIT);
    }
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

#[test]
fn ftfw_udp_ours_to_c() {
    let (a, b, _veth) = pair("oc", 12);
    let _da = ours(&a, &conf('a', 12, 3802));
    let db = CDaemon::start(&b, &conf('b', 12, 3802));
    replicate_and_commit(&a, &b, &db, true);
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
    let _da = ours(&a, &conf_t("tcp", 'a', 16, 3816));
    let db = CDaemon::start(&b, &conf_t("tcp", 'b', 16, 3816));
    replicate_and_commit(&a, &b, &db, true);
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
