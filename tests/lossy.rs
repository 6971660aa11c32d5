//! FTFW over an impaired sync link: the equivalent of `tc netem loss 10% reorder 25%
//! duplicate 5%` on the link between the firewalls, made by the seeded relay of
//! [`crate::util::relay`] (this kernel has no netem).
//!
//! Each scenario creates ~2000 mixed entries (TCP in two states, UDP, ICMP, IPv6 TCP and
//! UDP, marks) in the primary's kernel in one netlink burst, waits until the backup's
//! external cache holds exactly those flows, commits and compares the two kernel tables,
//! then deletes a third of the entries and waits until the deletes have propagated too.
//! The relay's counters and both daemons' statistics are printed, so that a run shows how
//! much impairment the protocol actually recovered from.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use conntrackd::netlink::ct::Conntrack;
use conntrackd::netlink::protoinfo::{ProtoInfo, TcpInfo};
use conntrackd::netlink::socket::CtHandle;
use conntrackd::netlink::tuple::{L4, Tuple};

use crate::interop::{DUMP_EXTERNAL, is_test_line, ours, test_table, text};
use crate::util::ct::field;
use crate::util::relay::{IFACE, Impairment, Relay, Subnets};
use crate::util::{CDaemon, NetNs, enable_conntrack, general, udp_config, wait_until};

/// Entries per scenario: a burst the receiver's socket buffer can take (see the brief of
/// issue 3: 20k-entry bursts overrun it, a separate bug).
const N: u32 = 2000;

/// How long the backup's external cache may take to converge; at 10% loss the FTFW
/// recovery (ALIVE every second, NACK, resend) needs a few rounds on a loaded machine.
const CONVERGE: Duration = Duration::from_secs(90);

/// The entry kinds, in the order `i % KINDS` picks them.
const KINDS: u32 = 6;
/// Kinds 2 and 5 (UDP v4 and v6) are the ones the delete step removes.
fn is_udp_kind(i: u32) -> bool {
    matches!(i % KINDS, 2 | 5)
}

/// Entry `i` of the mixed set. Each kind has its own destination address, so that keys
/// made of addresses and ports (or ICMP id) never collide across protocols.
fn entry(i: u32) -> Conntrack {
    let kind = i % KINDS;
    let host = (i / KINDS) % 250 + 1;
    let port = 1024 + (i / KINDS / 250) as u16;
    let v4 = |last: u32| IpAddr::V4(Ipv4Addr::new(192, 0, 2, last as u8));
    let v4dst = IpAddr::V4(Ipv4Addr::new(198, 51, 100, kind as u8 + 1));
    let v6 = |last: u32| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last as u16));
    let v6dst = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, kind as u16 + 1));
    let (family, src, dst, proto) = match kind {
        0 | 1 => (2, v4(host), v4dst, 6),
        2 => (2, v4(host), v4dst, 17),
        3 => (2, v4(host), v4dst, 1),
        4 => (10, v6(host), v6dst, 6),
        _ => (10, v6(host), v6dst, 17),
    };
    let mut o = Tuple::new(src, dst, proto);
    let mut r = Tuple::new(dst, src, proto);
    let dport = 80 + kind as u16;
    if proto == 1 {
        // Echo request / reply with a per-entry identifier.
        o.l4 = L4::Icmp {
            ty: 8,
            code: 0,
            id: i as u16,
        };
        r.l4 = L4::Icmp {
            ty: 0,
            code: 0,
            id: i as u16,
        };
    } else {
        o.l4 = L4::Ports { sport: port, dport };
        r.l4 = L4::Ports {
            sport: dport,
            dport: port,
        };
    }
    let mut ct = Conntrack::new(family, o);
    ct.reply = Some(r);
    ct.timeout = Some(900);
    ct.mark = Some(i % 5);
    // IPS_SEEN_REPLY | IPS_ASSURED, except the half-open TCP kind.
    ct.status = Some(if kind == 1 { 0 } else { 0x6 });
    if proto == 6 {
        ct.protoinfo = Some(ProtoInfo::Tcp(TcpInfo {
            // ESTABLISHED, or SYN_SENT for kind 1.
            state: Some(if kind == 1 { 1 } else { 3 }),
            ..TcpInfo::default()
        }));
    }
    ct
}

/// Creates (or deletes) entries in `ns`'s kernel in netlink batches from inside `ns`.
fn batch(ns: &NetNs, cts: Vec<Conntrack>, delete: bool) {
    ns.run_in(move || {
        let mut h = CtHandle::open().expect("ctnetlink socket");
        let rep = if delete {
            h.delete(&cts)
        } else {
            h.create(&cts)
        }
        .expect("ctnetlink batch");
        assert!(rep.all_ok(), "delete={delete}: {:?}", rep.errors.first());
    });
}

/// The identity of a flow in a listing line (`conntrack -L` or `-e`): the original
/// direction's addresses and ports, or ICMP id.
fn key(line: &str) -> String {
    ["src", "dst", "sport", "dport", "id"]
        .iter()
        .map(|k| field(line, k).unwrap_or("-"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The keys of the test entries in a listing, and how many test lines it had (a set would
/// hide a duplicate line).
fn keys(listing: &str) -> (BTreeSet<String>, usize) {
    let lines: Vec<&str> = listing.lines().filter(|l| is_test_line(l)).collect();
    (lines.iter().map(|l| key(l)).collect(), lines.len())
}

/// Which implementation runs on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Impl {
    Ours,
    C,
}

struct Node {
    // Declared first so the daemon stops before its namespace goes.
    daemon: CDaemon,
    ns: NetNs,
    imp: Impl,
}

impl Node {
    fn d(&self) -> &CDaemon {
        &self.daemon
    }

    /// The external cache listing (`-e`), through the daemon's own client for C.
    fn external(&self) -> String {
        match self.imp {
            Impl::C => self.d().expect_ctl(&["-e"]),
            Impl::Ours => text(self.d(), DUMP_EXTERNAL),
        }
    }

    /// `-s` plus the resend-queue statistics, for the report.
    fn stats(&self) -> String {
        let mut s = self.d().expect_ctl(&["-s"]);
        for what in ["rsqueue", "runtime"] {
            let q = self.d().ctl(&["-s", what]);
            s.push_str(&String::from_utf8_lossy(&q.stdout));
        }
        s
    }
}

/// The lines of `-s` (+ `-s rsqueue`) that say how the sync protocol coped: datagrams sent
/// and received, send/receive errors, the C-style "Lost msgs" count (it adds `seq - last +
/// 1` per gap, so reordering inflates it), the resend queue's length, and kernel event
/// overruns (`-s runtime`: an overrun means events were lost before the sync link, and
/// the daemon recovers them with a resync `NetlinkOverrunResync` seconds later).
fn recovery_lines(stats: &str) -> String {
    stats
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.contains("Pckts sent")
                || l.contains("Error send")
                || l.contains("Lost msgs")
                || l.starts_with("netlink overrun")
        })
        .chain(stats.lines().filter(|l| l.starts_with("resent queue")))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a scenario observed.
struct Outcome {
    /// Test flows in the primary's kernel.
    want: usize,
    /// How many of them the backup's external cache holds (and how many it holds that the
    /// primary does not).
    missing: usize,
    extra: usize,
    took: Duration,
}

/// Waits until the backup's external cache holds exactly the primary's test flows, or
/// `timeout` passes; returns what it saw last.
fn converge(primary: &Node, backup: &Node, timeout: Duration) -> Outcome {
    let (want, n_want) = keys(&primary.ns.expect_ok(&["conntrack", "-L"]));
    assert_eq!(want.len(), n_want);
    let t0 = Instant::now();
    loop {
        let (got, n_got) = keys(&backup.external());
        let missing = want.difference(&got).count();
        let extra = got.difference(&want).count() + (n_got - got.len());
        if (missing == 0 && extra == 0) || t0.elapsed() >= timeout {
            return Outcome {
                want: want.len(),
                missing,
                extra,
                took: t0.elapsed(),
            };
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Everything a failure message needs: relay counters and both daemons' statistics.
fn evidence(relay: &Relay, primary: &Node, backup: &Node) -> String {
    format!(
        "{}\n--- primary ({:?}) -s ---\n{}\n--- backup ({:?}) -s ---\n{}",
        relay.report(),
        primary.imp,
        primary.stats(),
        backup.imp,
        backup.stats()
    )
}

/// A netlink event buffer big enough for the whole burst. With the default, the C daemon
/// overruns on the 2000-event burst (`-s runtime` said "netlink overrun: 5") and only
/// recovers through its `NetlinkOverrunResync` 30 s later, so every C -> ours run took
/// 30.1-30.5 s for reasons that have nothing to do with the sync link under test.
const NETLINK_BUFFER: &str = "\tNetlinkBufferSize 8388608\n\tNetlinkBufferSizeMaxGrowth 16777216";

fn start(ns: NetNs, imp: Impl, nets: Subnets, side: char, port: u16) -> Node {
    let conf = udp_config(
        "Mode FTFW { }",
        IFACE,
        &nets.node(side),
        &nets.relay(side),
        port,
    )
    .replace(&general(""), &general(NETLINK_BUFFER));
    let daemon = match imp {
        Impl::Ours => ours(&ns, &conf),
        Impl::C => CDaemon::start(&ns, &conf),
    };
    Node { daemon, ns, imp }
}

/// One scenario: `primary` replicates to `backup` through the impaired relay. Returns
/// the outcomes of the create and delete phases without asserting them, plus the evidence,
/// so that the caller decides what is asserted for whom.
struct Run {
    create: Outcome,
    delete: Option<Outcome>,
    evidence: String,
    relay: Relay,
}

fn run(tag: &str, net: u8, port: u16, primary: Impl, backup: Impl, seed: u64) -> Run {
    run_with(tag, net, port, primary, backup, seed, Start::Clean)
}

/// How the HELLO / HELLO_BACK handshake goes before the burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// Unimpaired, done 2.5 s before the burst.
    Clean,
    /// Impaired like everything else (usually done before the burst, not always).
    Impaired,
    /// The primary's HELLO_BACKs are dropped until 300 ms into the burst, so the backup
    /// still sets HELLO on what it sends (its NACKs included) while the burst is lost in
    /// parts: what a few unlucky losses of HELLO_BACK do.
    BackupHelloPending,
}

/// [`run`] with a chosen start.
fn run_with(
    tag: &str,
    net: u8,
    port: u16,
    primary: Impl,
    backup: Impl,
    seed: u64,
    start_mode: Start,
) -> Run {
    let nets = Subnets {
        net_a: net,
        net_b: net + 1,
    };
    let a = NetNs::new(&format!("{tag}a"));
    let b = NetNs::new(&format!("{tag}b"));
    enable_conntrack(&a);
    enable_conntrack(&b);
    let relay = Relay::start(&a, &b, nets, port, Impairment::NETEM_10_25_5, seed);
    let relay_started = Instant::now();
    // The handshake crosses the link clean: a message carrying HELLO empties the peer's
    // resend queue (wire-protocol.md, FTFW §2.3), so a HELLO retried under loss in the
    // middle of the burst would discard unacknowledged data in either implementation.
    // That is a start-up property of the protocol, not what this test is about.
    relay.set_impaired(start_mode == Start::Impaired);
    relay.block_hello_back('a', start_mode == Start::BackupHelloPending);
    let primary = start(a, primary, nets, 'a', port);
    let backup = start(b, backup, nets, 'b', port);
    std::thread::sleep(Duration::from_millis(2500));
    relay.set_impaired(true);

    let burst_at = relay_started.elapsed();
    batch(&primary.ns, (0..N).map(entry).collect(), false);
    if start_mode == Start::BackupHelloPending {
        std::thread::sleep(Duration::from_millis(300));
        relay.block_hello_back('a', false);
    }
    println!("LOSSY burst created {burst_at:?} after the relay started");
    let create = converge(&primary, &backup, CONVERGE);
    let label = format!("{:?} -> {:?}", primary.imp, backup.imp);
    println!(
        "LOSSY {label} create: {} flows, missing {} extra {} after {:?}\n{}",
        create.want,
        create.missing,
        create.extra,
        create.took,
        relay.report()
    );
    let mut delete = None;
    if create.missing == 0 && create.extra == 0 {
        // Commit and compare the kernels: the external cache held the right flows, this
        // shows it also held the right state (TCP state, status, mark, NAT-free tuples).
        backup.d().expect_ctl(&["-c"]);
        let want = test_table(&primary.ns);
        assert_eq!(want.len(), N as usize);
        wait_until(Duration::from_secs(30), "commit complete", || {
            test_table(&backup.ns).len() == want.len()
        });
        let got = test_table(&backup.ns);
        let differ: Vec<_> = want
            .iter()
            .zip(&got)
            .filter(|(w, g)| w != g)
            .take(5)
            .collect();
        assert!(
            differ.is_empty(),
            "{label}: kernels differ after commit (primary, backup): {differ:#?}"
        );
        // Deletes under the same impairment: a third of the entries (all UDP).
        batch(
            &primary.ns,
            (0..N).filter(|&i| is_udp_kind(i)).map(entry).collect(),
            true,
        );
        let d = converge(&primary, &backup, CONVERGE);
        println!(
            "LOSSY {label} delete: {} flows left, missing {} extra {} after {:?}\n{}",
            d.want,
            d.missing,
            d.extra,
            d.took,
            relay.report()
        );
        delete = Some(d);
    }
    let evidence = evidence(&relay, &primary, &backup);
    println!(
        "LOSSY {label} primary: {}\nLOSSY {label} backup: {}",
        recovery_lines(&primary.stats()),
        recovery_lines(&backup.stats())
    );
    Run {
        create,
        delete,
        evidence,
        relay,
    }
}

/// Asserts that both phases converged exactly, with the evidence on failure, and that the
/// relay really impaired the burst (a test that cannot fail for lack of loss is no test).
fn assert_converged(r: &Run) {
    let c = &r.create;
    assert!(
        c.missing == 0 && c.extra == 0,
        "create: backup's external cache misses {} of {} flows and has {} extra after {:?}\n{}",
        c.missing,
        c.want,
        c.extra,
        c.took,
        r.evidence
    );
    let d = r.delete.as_ref().expect("delete phase ran");
    assert_eq!(d.want, (0..N).filter(|&i| !is_udp_kind(i)).count());
    assert!(
        d.missing == 0 && d.extra == 0,
        "delete: backup's external cache misses {} of {} flows and keeps {} deleted ones \
         after {:?}\n{}",
        d.missing,
        d.want,
        d.extra,
        d.took,
        r.evidence
    );
    let s = r.relay.a_to_b.snapshot();
    assert!(
        s.dropped > 0 && s.duplicated > 0 && s.reordered > 0,
        "the relay did not impair the primary's traffic: {s}"
    );
}

#[test]
fn lossy_ftfw_ours_to_ours() {
    let r = run("lo", 220, 3950, Impl::Ours, Impl::Ours, 1);
    assert_converged(&r);
}

#[test]
fn lossy_ftfw_ours_to_c() {
    let r = run("lc", 222, 3951, Impl::Ours, Impl::C, 2);
    assert_converged(&r);
}

#[test]
fn lossy_ftfw_c_to_ours() {
    let r = run("cl", 224, 3952, Impl::C, Impl::Ours, 3);
    assert_converged(&r);
}

/// Impaired from the first datagram on, HELLO / HELLO_BACK included, ours on both sides:
/// a burst while the handshake is still under way converges (HELLO-flagged messages are
/// sequence-checked after a peer's first, and what a peer skipped is retransmitted).
#[test]
fn lossy_ftfw_impaired_handshake_ours() {
    let r = run_with("ho", 226, 3953, Impl::Ours, Impl::Ours, 4, Start::Impaired);
    assert_converged(&r);
}

/// The same with a C node on one side, not part of the suite: the C side takes
/// HELLO-flagged data without sequence checks, so when the handshake has not completed as
/// the burst starts (a lost HELLO_BACK is answered again only after the next HELLO, one
/// ALIVE period later) gaps in the burst are never NACKed, and C's ACK ranges even cover
/// them (sync-modes.md §2.3 step 1). One run of three lost 111 of 2000 entries ours -> C
/// that way; the others converged. Run with `--ignored --nocapture`.
#[test]
#[ignore = "exploration: the handshake itself under impairment; can lose entries by \
            protocol design (HELLO disables sequence checks)"]
fn lossy_ftfw_impaired_handshake() {
    for (tag, net, port, p, b, seed) in [
        ("hc", 228u8, 3954u16, Impl::Ours, Impl::C, 5u64),
        ("hr", 230, 3955, Impl::C, Impl::Ours, 6),
    ] {
        let r = run_with(tag, net, port, p, b, seed, Start::Impaired);
        assert_converged(&r);
    }
}

/// The C daemon against itself under the same impairment, for comparison when a mixed
/// pair fails: what C -> C does is no fault of ours.
#[test]
#[ignore = "control run of Debian's C daemon against itself; not a test of our code"]
fn lossy_ftfw_c_to_c_control() {
    let r = run("cc", 232, 3956, Impl::C, Impl::C, 7);
    assert_converged(&r);
}

/// The backup's HELLO still pending during the burst (its HELLO_BACK answers lost): every
/// message it sends carries HELLO. Debian's C daemon empties its whole resend queue on each
/// such message and takes them without sequence check (sync-modes.md §2.3 step 1), so the
/// NACKed data is never resent: C -> C lost 689, 688 and 708 of 2000 here (the ignored
/// control run below), and so did ours (654) before `src/sync/ftfw.rs` took the HELLO step
/// only for a peer's restart and added the retransmission timeout. Ours must converge.
#[test]
fn lossy_ftfw_backup_hello_pending_during_burst() {
    let r = run_with(
        "po",
        236,
        3958,
        Impl::Ours,
        Impl::Ours,
        8,
        Start::BackupHelloPending,
    );
    assert_converged(&r);
}

/// The C daemon in the same situation, for the record: it loses entries.
#[test]
#[ignore = "control run of Debian's C daemon against itself (it loses entries by design)"]
fn lossy_ftfw_backup_hello_pending_c_control() {
    let c = run_with(
        "pc",
        234,
        3957,
        Impl::C,
        Impl::C,
        8,
        Start::BackupHelloPending,
    );
    println!(
        "CONTROL C -> C with the backup's HELLO pending: {} of {} flows missing",
        c.create.missing, c.create.want
    );
}
