//! Sync channels on real sockets in namespaces: UDP (v4, v6 link-local with scope id),
//! multicast (v4, v6), TCP (stream reassembly, reconnect), bad-datagram accounting,
//! redundant links with failover, and interop with the C daemon's sockets.
//!
//! Test traffic only flows on veth links between namespaces the tests create.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use conntrackd::channel::{self, IfState, Link, LinkMonitor, LinkPool, RecvBatch, TcpLink};
use conntrackd::config::{self, Channel, Span, Transport};
use conntrackd::wire::{Kind, Messages};

use crate::util::{CDaemon, NetNs, Veth, general, udp_config, wait_until};

const T: Duration = Duration::from_secs(10);

fn chan(t: Transport, iface: &str, addr: &str, dest: Option<&str>, port: u16) -> Channel {
    Channel {
        transport: t,
        default: false,
        interface: Some(iface.to_owned()),
        address: Some(addr.parse().unwrap()),
        destination: dest.map(|d| d.parse().unwrap()),
        multicast_interface: None,
        port,
        snd_buffer: None,
        rcv_buffer: None,
        checksum: true,
        span: Span::default(),
    }
}

fn mcast4(iface: &str, group: &str, ifaddr: &str, port: u16) -> Channel {
    let mut c = chan(Transport::Multicast, iface, group, None, port);
    c.multicast_interface = Some(ifaddr.parse().unwrap());
    c
}

/// A datagram of `n` ALIVE messages with sequence numbers `first..first + n`.
fn alive_datagram(first: u32, n: u32) -> Vec<u8> {
    let mut d = Vec::new();
    for s in first..first + n {
        d.extend_from_slice(&[0x1a, 0x10, 0x00, 0x08]);
        d.extend_from_slice(&s.to_be_bytes());
    }
    d
}

/// Sequence numbers of every message in `bytes` (which must frame cleanly).
fn seqs(bytes: &[u8]) -> Vec<u32> {
    Messages::new(bytes)
        .map(|m| m.expect("received bytes frame cleanly").header.seq)
        .collect()
}

/// Receives on `link` until `want` messages arrived (or the timeout); returns their seqs.
fn recv_seqs(link: &mut dyn Link, want: usize, mut between: impl FnMut()) -> Vec<u32> {
    let mut batch = RecvBatch::default();
    let mut got = Vec::new();
    let deadline = Instant::now() + T;
    while got.len() < want && Instant::now() < deadline {
        match link.recv_batch(&mut batch) {
            Ok(n) if n > 0 => batch.iter().for_each(|r| got.extend(seqs(r.bytes))),
            // UDP says WouldBlock, TCP Ok(0): both mean "nothing yet".
            Ok(_) => {
                between();
                thread::sleep(Duration::from_millis(2));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                between();
                thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("recv_batch: {e}"),
        }
    }
    got
}

fn pair(tag: &str, addrs_a: &str, addrs_b: &str) -> (NetNs, NetNs) {
    let a = NetNs::new(&format!("{tag}a"));
    let b = NetNs::new(&format!("{tag}b"));
    Veth::connect(&a, "vA", addrs_a, &b, "vB", addrs_b);
    (a, b)
}

fn open_in(ns: &NetNs, ch: &Channel) -> Box<dyn Link> {
    ns.run_in(|| channel::open_link(ch, 0))
        .unwrap_or_else(|e| panic!("open {ch}: {e}"))
}

/// `n` datagrams of 4 messages each, sent through `send_batch` in one call; the receiver
/// must see all `4n` messages in order.
fn stream_check(tx: &mut dyn Link, rx: &mut dyn Link, n: u32) {
    let dgrams: Vec<Vec<u8>> = (0..n).map(|i| alive_datagram(i * 4, 4)).collect();
    let refs: Vec<&[u8]> = dgrams.iter().map(Vec::as_slice).collect();
    assert_eq!(tx.send_batch(&refs).unwrap(), n as usize);
    let got = recv_seqs(rx, 4 * n as usize, || tx.tick());
    assert_eq!(got, (0..4 * n).collect::<Vec<_>>());
    assert_eq!(tx.stats().bytes_sent, u64::from(n) * 32);
    assert_eq!(rx.stats().bad_datagrams, 0);
}

#[test]
fn udp_v4_batches_arrive_in_order() {
    let (a, b) = pair("chu4", "10.231.1.1/24", "10.231.1.2/24");
    let mut la = open_in(
        &a,
        &chan(Transport::Udp, "vA", "10.231.1.1", Some("10.231.1.2"), 3780),
    );
    let mut lb = open_in(
        &b,
        &chan(Transport::Udp, "vB", "10.231.1.2", Some("10.231.1.1"), 3780),
    );
    assert_eq!(la.mtu(), 1500);
    assert_eq!(la.buffer_size(), 1472);
    // 100 datagrams: four sendmmsg calls of at most 32.
    stream_check(&mut *la, &mut *lb, 100);
    assert_eq!(la.stats().datagrams_sent, 100);
    assert_eq!(lb.stats().datagrams_recv, 100);
    stream_check(&mut *lb, &mut *la, 5);
}

#[test]
fn udp_v6_link_local_uses_scope_id() {
    let (a, b) = pair("chu6", "fe80::a/64", "fe80::b/64");
    let mut la = open_in(
        &a,
        &chan(Transport::Udp, "vA", "fe80::a", Some("fe80::b"), 3780),
    );
    let mut lb = open_in(
        &b,
        &chan(Transport::Udp, "vB", "fe80::b", Some("fe80::a"), 3780),
    );
    stream_check(&mut *la, &mut *lb, 40);
    stream_check(&mut *lb, &mut *la, 3);
}

#[test]
fn udp_bad_datagrams_counted_and_dropped() {
    let (a, b) = pair("chbad", "10.231.1.1/24", "10.231.1.2/24");
    let mut lb = open_in(
        &b,
        &chan(Transport::Udp, "vB", "10.231.1.2", Some("10.231.1.1"), 3780),
    );
    let raw = a.run_in(|| UdpSocket::bind("10.231.1.1:0")).unwrap();
    let dst = "10.231.1.2:3780";
    let good = alive_datagram(1, 2);
    let mut zero_len = alive_datagram(10, 1);
    zero_len[3] = 0;
    let mut good_then_bad = alive_datagram(20, 2);
    good_then_bad[11] = 0x40; // second message claims 64 bytes
    for d in [&[0x1a, 0x10, 0x00][..], &zero_len, &good_then_bad, &good] {
        raw.send_to(d, dst).unwrap();
    }
    // The good prefix of the third datagram survives (as in C), then the good one.
    assert_eq!(recv_seqs(&mut *lb, 3, || {}), [20, 1, 2]);
    assert_eq!(lb.stats().bad_datagrams, 3);
    assert_eq!(lb.stats().datagrams_recv, 4);
}

#[test]
fn multicast_v4_group_on_veth() {
    let (a, b) = pair("chm4", "10.231.1.1/24", "10.231.1.2/24");
    let mut la = open_in(&a, &mcast4("vA", "225.0.0.50", "10.231.1.1", 3780));
    let mut lb = open_in(&b, &mcast4("vB", "225.0.0.50", "10.231.1.2", 3780));
    stream_check(&mut *la, &mut *lb, 64);
    stream_check(&mut *lb, &mut *la, 2);
    // IP_MULTICAST_LOOP 0: the sender's own receive socket saw nothing of its 64.
    assert_eq!(la.stats().datagrams_recv, 2);
}

#[test]
fn multicast_v6_group_on_veth() {
    let (a, b) = pair("chm6", "fd00:231::1/64", "fd00:231::2/64");
    let mut la = open_in(
        &a,
        &chan(Transport::Multicast, "vA", "ff02::3780", None, 3780),
    );
    let mut lb = open_in(
        &b,
        &chan(Transport::Multicast, "vB", "ff02::3780", None, 3780),
    );
    stream_check(&mut *la, &mut *lb, 20);
    stream_check(&mut *lb, &mut *la, 2);
}

#[test]
fn tcp_v4_stream_reassembled() {
    let (a, b) = pair("cht4", "10.231.1.1/24", "10.231.1.2/24");
    let mut lb = open_in(
        &b,
        &chan(Transport::Tcp, "vB", "10.231.1.2", Some("10.231.1.1"), 3780),
    );
    let mut la = open_in(
        &a,
        &chan(Transport::Tcp, "vA", "10.231.1.1", Some("10.231.1.2"), 3780),
    );
    assert_eq!(la.buffer_size(), 1460);
    // Sent at once, before the connection is up: queued, flushed on tick, split by the
    // reader on message boundaries whatever the segment boundaries were.
    stream_check(&mut *la, &mut *lb, 120);
    lb.tick();
    stream_check(&mut *lb, &mut *la, 3);
}

#[test]
fn tcp_v6_stream() {
    let (a, b) = pair("cht6", "fd00:231::1/64", "fd00:231::2/64");
    let mut lb = open_in(
        &b,
        &chan(
            Transport::Tcp,
            "vB",
            "fd00:231::2",
            Some("fd00:231::1"),
            3780,
        ),
    );
    let mut la = open_in(
        &a,
        &chan(
            Transport::Tcp,
            "vA",
            "fd00:231::1",
            Some("fd00:231::2"),
            3780,
        ),
    );
    stream_check(&mut *la, &mut *lb, 30);
}

#[test]
fn tcp_reconnects_after_peer_restart() {
    let (a, b) = pair("chtr", "10.231.1.1/24", "10.231.1.2/24");
    let cb = chan(Transport::Tcp, "vB", "10.231.1.2", Some("10.231.1.1"), 3780);
    let mut lb = open_in(&b, &cb);
    let mut la = b_then_a_tcp(&a);
    stream_check(&mut la, &mut *lb, 10);
    assert!(la.is_connected());
    // The peer goes away; writes start failing and the socket is dropped.
    drop(lb);
    let mut s = 10_000;
    wait_until(T, "the sender to notice the dead connection", || {
        la.send_batch(&[&alive_datagram(s, 1)]).unwrap();
        s += 1;
        thread::sleep(Duration::from_millis(10));
        !la.is_connected()
    });
    // Restarted peer: the sender reconnects (at most once a second) and delivers what it
    // queued meanwhile plus new data, in order.
    let mut lb = open_in(&b, &cb);
    la.send_batch(&[&alive_datagram(50_000, 3)]).unwrap();
    let got = recv_seqs(&mut *lb, usize::MAX, || la.tick());
    let tail: Vec<u32> = got.iter().copied().filter(|&q| q >= 50_000).collect();
    assert_eq!(tail, [50_000, 50_001, 50_002]);
    assert!(la.stats().connects >= 2, "{:?}", la.stats());
    assert!(la.is_connected());
    // Everything queued while down arrived before the new data.
    let queued: Vec<u32> = got.iter().copied().filter(|&q| q < 50_000).collect();
    assert!(queued.windows(2).all(|w| w[0] < w[1]), "{queued:?}");
}

fn b_then_a_tcp(a: &NetNs) -> TcpLink {
    let ca = chan(Transport::Tcp, "vA", "10.231.1.1", Some("10.231.1.2"), 3780);
    a.run_in(|| TcpLink::open(&ca, 4)).unwrap()
}

#[test]
fn tcp_corrupt_stream_drops_connection() {
    let (a, b) = pair("chtc", "10.231.1.1/24", "10.231.1.2/24");
    let mut lb = open_in(
        &b,
        &chan(Transport::Tcp, "vB", "10.231.1.2", Some("10.231.1.1"), 3780),
    );
    let mut raw = a
        .run_in(|| std::net::TcpStream::connect("10.231.1.2:3780"))
        .unwrap();
    let mut bytes = alive_datagram(7, 2);
    bytes.extend_from_slice(&[0x1a, 0x10, 0x00, 0x04, 0, 0, 0, 0]); // len 4 < 8
    std::io::Write::write_all(&mut raw, &bytes).unwrap();
    assert_eq!(recv_seqs(&mut *lb, 2, || {}), [7, 8]);
    wait_until(T, "the corrupt message to be counted", || {
        let _ = lb.recv_batch(&mut RecvBatch::new(1024));
        lb.stats().bad_datagrams == 1
    });
}

/// The two links of side `me` (0 = A, 1 = B) of a redundant pair over vX1 and vX2, with
/// subnets 10.231.1.0/24 and 10.231.2.0/24 (A is .1, B is .2).
fn redundant_channels(t: Transport, me: usize) -> Vec<Channel> {
    let side = ["A", "B"][me];
    (1..=2)
        .map(|l| {
            let iface = format!("v{side}{l}");
            let local = format!("10.231.{l}.{}", me + 1);
            let peer = format!("10.231.{l}.{}", 2 - me);
            if t == Transport::Multicast {
                // The same group and port on both links: each link must only hear its own.
                mcast4(&iface, "225.0.0.50", &local, 3780)
            } else {
                chan(t, &iface, &local, Some(&peer), 3780)
            }
        })
        .collect()
}

/// Two veth pairs between A and B; A's first link goes down mid-stream.
#[test]
fn redundant_udp_links_fail_over_and_receiver_follows() {
    failover_scenario("chfu", Transport::Udp);
}

#[test]
fn redundant_multicast_links_fail_over_and_receiver_follows() {
    failover_scenario("chfm", Transport::Multicast);
}

#[test]
fn redundant_tcp_links_fail_over_and_receiver_follows() {
    failover_scenario("chft", Transport::Tcp);
}

fn failover_scenario(tag: &str, t: Transport) {
    let a = NetNs::new(&format!("{tag}a"));
    let b = NetNs::new(&format!("{tag}b"));
    Veth::connect(&a, "vA1", "10.231.1.1/24", &b, "vB1", "10.231.1.2/24");
    Veth::connect(&a, "vA2", "10.231.2.1/24", &b, "vB2", "10.231.2.2/24");
    let sync_a = redundant_channels(t, 0);
    let sync_b = redundant_channels(t, 1);
    // B starts on its second link: the first valid message on link 0 makes it follow.
    // B is opened first so that A's TCP clients find its listeners at once.
    let mut pb = b.run_in(|| {
        let links = sync_b
            .iter()
            .map(|c| channel::open_link(c, 0).unwrap())
            .collect();
        LinkPool::from_links(links, 1).unwrap()
    });
    let (mut pa, mut mon_a) = a.run_in(|| {
        let links = sync_a
            .iter()
            .map(|c| channel::open_link(c, 0).unwrap())
            .collect();
        (
            LinkPool::from_links(links, 0).unwrap(),
            LinkMonitor::open().unwrap(),
        )
    });
    let mut batch = RecvBatch::default();
    let mut got: Vec<(usize, u32)> = Vec::new();
    let mut drain = |pb: &mut LinkPool, got: &mut Vec<(usize, u32)>| {
        for i in 0..pb.len() {
            while pb.recv_batch(i, &mut batch).is_ok_and(|n| n > 0) {
                for r in batch.iter() {
                    got.extend(seqs(r.bytes).into_iter().map(|s| (i, s)));
                }
            }
        }
    };
    let mut after_failover = Vec::new();
    for s in 0..200u32 {
        if s == 100 {
            a.link_set("vA1", false);
        }
        mon_a.poll(&mut pa).unwrap();
        pa.tick();
        pb.tick();
        let ok = pa.send_batch(&[&alive_datagram(s, 1)]).is_ok();
        if ok && pa.failovers() > 0 {
            after_failover.push(s);
        }
        thread::sleep(Duration::from_millis(2));
        drain(&mut pb, &mut got);
    }
    wait_until(T, "the last datagram", || {
        pa.tick();
        drain(&mut pb, &mut got);
        got.last().is_some_and(|&(_, s)| s == 199)
    });
    assert_eq!(pa.failovers(), 1, "exactly one failover");
    assert_eq!(pa.current(), 1);
    assert!(after_failover.len() >= 90, "{after_failover:?}");
    let on_link1: Vec<u32> = got.iter().filter(|g| g.0 == 1).map(|g| g.1).collect();
    assert_eq!(on_link1, after_failover, "nothing lost after the failover");
    let on_link0: Vec<u32> = got.iter().filter(|g| g.0 == 0).map(|g| g.1).collect();
    assert!(on_link0.len() >= 95, "{on_link0:?}");
    // Link 0 heard nothing of link 1's traffic (multicast: same group and port on both).
    assert!(on_link0.iter().all(|&s| s < 100), "{on_link0:?}");
    // The receiver followed: link 0 first, then link 1.
    assert_eq!(pb.current(), 1);
    assert_eq!(pb.follows(), 2);
    let st = pa.status();
    assert_eq!((st[0].state, st[0].active), (IfState::Down, false));
    assert_eq!((st[1].state, st[1].active), (IfState::Running, true));
    let mut text = String::new();
    st[1].render(&mut text);
    let kind = match t {
        Transport::Multicast => "multicast",
        Transport::Tcp => "TCP",
        _ => "UDP",
    };
    let want = format!("{kind} traffic device=vA2 status=RUNNING role=ACTIVE:\n");
    assert!(text.starts_with(&want), "{text}");
    // Link 1 back up: the current link (2) is fine, so no change.
    a.link_set("vA1", true);
    wait_until(T, "the up notification", || {
        mon_a.poll(&mut pa).unwrap();
        pa.status()[0].state != IfState::Down
    });
    assert_eq!(pa.current(), 1);
    assert_eq!(pa.failovers(), 1);
}

/// A down current link with no usable backup keeps the current link and reports it.
#[test]
fn redundant_links_none_available() {
    let a = NetNs::new("chna");
    let b = NetNs::new("chnb");
    Veth::connect(&a, "vA1", "10.231.1.1/24", &b, "vB1", "10.231.1.2/24");
    Veth::connect(&a, "vA2", "10.231.2.1/24", &b, "vB2", "10.231.2.2/24");
    let (mut pa, mut mon) = a.run_in(|| {
        let links = [
            chan(
                Transport::Udp,
                "vA1",
                "10.231.1.1",
                Some("10.231.1.2"),
                3780,
            ),
            chan(
                Transport::Udp,
                "vA2",
                "10.231.2.1",
                Some("10.231.2.2"),
                3780,
            ),
        ]
        .iter()
        .map(|c| channel::open_link(c, 0).unwrap())
        .collect();
        (
            LinkPool::from_links(links, 1).unwrap(),
            LinkMonitor::open().unwrap(),
        )
    });
    a.link_set("vA1", false);
    a.link_set("vA2", false);
    wait_until(T, "both down", || {
        mon.poll(&mut pa).unwrap();
        pa.status().iter().all(|s| s.state == IfState::Down)
    });
    assert_eq!(pa.current(), 1);
    assert!(pa.send_batch(&[&alive_datagram(1, 1)]).is_err());
    // The backup comes back: the next notification moves the pool there.
    a.link_set("vA1", true);
    wait_until(T, "failover to the backup", || {
        mon.poll(&mut pa).unwrap();
        pa.current() == 0
    });
}

/// Waits for datagrams from the C daemon on `link` and checks that they are FTFW control
/// or data messages that frame cleanly.
fn expect_c_traffic(link: &mut dyn Link, daemon: &CDaemon) {
    let mut batch = RecvBatch::default();
    let mut kinds = Vec::new();
    let deadline = Instant::now() + T;
    while kinds.len() < 2 && Instant::now() < deadline {
        link.tick();
        if link.recv_batch(&mut batch).is_ok() {
            for r in batch.iter() {
                for m in Messages::new(r.bytes) {
                    kinds.push(m.expect("C datagram frames cleanly").kind());
                }
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        kinds.len() >= 2,
        "no traffic from the C daemon\n{}",
        daemon.dump()
    );
    assert!(kinds.iter().all(|k| *k != Kind::Bad), "{kinds:?}");
    assert_eq!(link.stats().bad_datagrams, 0);
}

/// Our link sends two ALIVEs; the C daemon's `-s link` must count received packets.
fn expect_c_receives(link: &mut dyn Link, daemon: &CDaemon) {
    wait_until(T, "the C daemon to count our datagrams", || {
        link.tick();
        link.send_batch(&[&alive_datagram(1, 1)]).unwrap();
        let out = daemon.expect_ctl(&["-s", "link"]);
        let recv = out
            .lines()
            .find(|l| l.contains("Pckts recv"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|n| n.parse::<u64>().ok());
        thread::sleep(Duration::from_millis(50));
        recv.is_some_and(|n| n > 0)
    });
}

/// Parses a config built for [`CDaemon`]; only its `Sync` section matters here, so the
/// daemon-directory placeholder just becomes some absolute path.
fn parse_ours(text: &str) -> config::Config {
    config::parse_str(
        "ours",
        &text.replace(crate::util::daemon::DIR, "/nonexistent"),
    )
    .expect("config parses")
}

#[test]
fn interop_c_daemon_udp() {
    let (a, b) = pair("chiu", "10.231.1.1/24", "10.231.1.2/24");
    let c = CDaemon::start(
        &a,
        &udp_config("Mode FTFW { }", "vA", "10.231.1.1", "10.231.1.2", 3780),
    );
    // Our side from the mirror config, through the config parser.
    let text = udp_config("Mode FTFW { }", "vB", "10.231.1.2", "10.231.1.1", 3780);
    let conf = parse_ours(&text);
    let mut pool = b
        .run_in(|| LinkPool::open(conf.sync.as_ref().unwrap()))
        .unwrap();
    expect_c_traffic(pool.link_mut(0), &c);
    expect_c_receives(pool.link_mut(0), &c);
}

#[test]
fn interop_c_daemon_multicast() {
    let (a, b) = pair("chim", "10.231.1.1/24", "10.231.1.2/24");
    let conf = |iface: &str, addr: &str| {
        format!(
            "Sync {{\n\tMode FTFW {{ }}\n\tMulticast {{\n\t\tIPv4_address 225.0.0.50\n\
             \t\tIPv4_interface {addr}\n\t\tInterface {iface}\n\t\tGroup 3780\n\
             \t\tChecksum on\n\t}}\n}}\n{}",
            general("")
        )
    };
    let c = CDaemon::start(&a, &conf("vA", "10.231.1.1"));
    let ours = parse_ours(&conf("vB", "10.231.1.2"));
    let mut pool = b
        .run_in(|| LinkPool::open(ours.sync.as_ref().unwrap()))
        .unwrap();
    assert_eq!(pool.link(0).transport(), Transport::Multicast);
    expect_c_traffic(pool.link_mut(0), &c);
    expect_c_receives(pool.link_mut(0), &c);
}

#[test]
fn interop_c_daemon_tcp() {
    let (a, b) = pair("chit", "10.231.1.1/24", "10.231.1.2/24");
    let conf = |iface: &str, local: &str, peer: &str| {
        format!(
            "Sync {{\n\tMode FTFW {{ }}\n\tTCP {{\n\t\tIPv4_address {local}\n\
             \t\tIPv4_Destination_Address {peer}\n\t\tPort 3780\n\
             \t\tInterface {iface}\n\t\tChecksum on\n\t}}\n}}\n{}",
            general("")
        )
    };
    let ours = parse_ours(&conf("vB", "10.231.1.2", "10.231.1.1"));
    let mut pool = b
        .run_in(|| LinkPool::open(ours.sync.as_ref().unwrap()))
        .unwrap();
    let c = CDaemon::start(&a, &conf("vA", "10.231.1.1", "10.231.1.2"));
    expect_c_traffic(pool.link_mut(0), &c);
    // The C daemon prints no TCP counters in `-s link`, so look at its accepted socket: it
    // must have received our bytes and read them all (Recv-Q 0).
    let link = pool.link_mut(0);
    wait_until(T, "the C daemon to read our stream", || {
        link.tick();
        link.send_batch(&[&alive_datagram(1, 1)]).unwrap();
        thread::sleep(Duration::from_millis(50));
        let ss = a.expect_ok(&["ss", "-tnHi", "state", "established", "sport", "= :3780"]);
        let recvq_empty = ss
            .lines()
            .next()
            .is_some_and(|l| l.split_whitespace().next() == Some("0"));
        let got = ss
            .split_whitespace()
            .find_map(|w| w.strip_prefix("bytes_received:"))
            .and_then(|n| n.parse::<u64>().ok());
        recvq_empty && got.is_some_and(|n| n >= 8)
    });
}

#[test]
fn open_refuses_channel_without_interface() {
    let mut c = chan(Transport::Udp, "lo", "127.0.0.1", Some("127.0.0.1"), 0);
    c.interface = None;
    let e = channel::open_link(&c, 0).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    // And one on loopback of this (host) namespace works with an ephemeral port; nothing
    // leaves the host.
    c.interface = Some("lo".into());
    let l = channel::udp::open(&c).unwrap();
    let local: SocketAddr = l.local_addr().unwrap();
    assert_eq!(local.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
}

#[test]
fn interop_c_daemon_multicast_v6() {
    let (a, b) = pair("chim6", "fd00:231::1/64", "fd00:231::2/64");
    let conf = |iface: &str| {
        format!(
            "Sync {{\n\tMode FTFW {{ }}\n\tMulticast {{\n\t\tIPv6_address ff02::3780\n\
             \t\tInterface {iface}\n\t\tGroup 3780\n\t\tChecksum on\n\t}}\n}}\n{}",
            general("")
        )
    };
    let c = CDaemon::start(&a, &conf("vA"));
    let ours = parse_ours(&conf("vB"));
    let mut pool = b
        .run_in(|| LinkPool::open(ours.sync.as_ref().unwrap()))
        .unwrap();
    expect_c_traffic(pool.link_mut(0), &c);
    expect_c_receives(pool.link_mut(0), &c);
}

#[test]
fn interop_c_daemon_udp_v6_link_local() {
    let (a, b) = pair("chiu6", "fe80::a/64", "fe80::b/64");
    let c = CDaemon::start(
        &a,
        &udp_config("Mode FTFW { }", "vA", "fe80::a", "fe80::b", 3780),
    );
    let ours = parse_ours(&udp_config(
        "Mode FTFW { }",
        "vB",
        "fe80::b",
        "fe80::a",
        3780,
    ));
    let mut pool = b
        .run_in(|| LinkPool::open(ours.sync.as_ref().unwrap()))
        .unwrap();
    expect_c_traffic(pool.link_mut(0), &c);
    expect_c_receives(pool.link_mut(0), &c);
}

/// RcvSocketBuffer / SndSocketBuffer use the FORCE options (the kernel doubles the value);
/// loopback of the host namespace, nothing is sent.
#[test]
fn socket_buffers_are_forced() {
    crate::util::require_root();
    let mut c = chan(Transport::Udp, "lo", "127.0.0.1", Some("127.0.0.1"), 0);
    c.rcv_buffer = Some(4 << 20);
    c.snd_buffer = Some(3 << 20);
    let l = channel::udp::open(&c).unwrap();
    let rcv = conntrackd::sys::socket::get_int(
        std::os::fd::AsFd::as_fd(&l),
        libc::SOL_SOCKET,
        libc::SO_RCVBUF,
    )
    .unwrap();
    assert_eq!(rcv, 8 << 20);
    // Without RcvSocketBuffer: our default, not the system's ~200 KiB.
    c.rcv_buffer = None;
    let l = channel::udp::open(&c).unwrap();
    let rcv = conntrackd::sys::socket::get_int(
        std::os::fd::AsFd::as_fd(&l),
        libc::SOL_SOCKET,
        libc::SO_RCVBUF,
    )
    .unwrap();
    assert_eq!(rcv, 2 * channel::udp::DEFAULT_RCV_BUFFER as i32);
}

/// Without any link monitor: a send that fails because the path is gone moves the pool to
/// the backup at once and the datagram goes out there.
#[test]
fn redundant_links_fail_over_on_send_error() {
    let a = NetNs::new("chsa");
    let b = NetNs::new("chsb");
    Veth::connect(&a, "vA1", "10.231.1.1/24", &b, "vB1", "10.231.1.2/24");
    Veth::connect(&a, "vA2", "10.231.2.1/24", &b, "vB2", "10.231.2.2/24");
    let mut pa = a.run_in(|| {
        let links = [
            chan(
                Transport::Udp,
                "vA1",
                "10.231.1.1",
                Some("10.231.1.2"),
                3780,
            ),
            chan(
                Transport::Udp,
                "vA2",
                "10.231.2.1",
                Some("10.231.2.2"),
                3780,
            ),
        ]
        .iter()
        .map(|c| channel::open_link(c, 0).unwrap())
        .collect();
        LinkPool::from_links(links, 0).unwrap()
    });
    let mut lb2 = open_in(
        &b,
        &chan(
            Transport::Udp,
            "vB2",
            "10.231.2.2",
            Some("10.231.2.1"),
            3780,
        ),
    );
    a.link_set("vA1", false);
    assert_eq!(
        pa.send_batch(&[&alive_datagram(5, 1), &alive_datagram(6, 1)])
            .unwrap(),
        2
    );
    assert_eq!((pa.current(), pa.failovers()), (1, 1));
    assert_eq!(pa.link(0).stats().send_errors, 1);
    assert_eq!(recv_seqs(&mut *lb2, 2, || {}), [5, 6]);
}

/// More than the socket buffers hold, in one call: partial writes end inside a datagram,
/// the rest waits in the queue, and the stream still splits cleanly, in order.
#[test]
fn tcp_bulk_partial_writes_keep_framing() {
    let (a, b) = pair("chtb", "10.231.1.1/24", "10.231.1.2/24");
    let cb = chan(Transport::Tcp, "vB", "10.231.1.2", Some("10.231.1.1"), 3780);
    let mut lb = open_in(&b, &cb);
    let ca = chan(Transport::Tcp, "vA", "10.231.1.1", Some("10.231.1.2"), 3780);
    let mut la = a.run_in(|| TcpLink::open(&ca, 1_000_000)).unwrap();
    wait_until(T, "connected", || {
        la.tick();
        la.is_connected()
    });
    const PER: u32 = 175; // 1400-byte datagrams
    const N: u32 = 4000; // 5.6 MB
    let dgrams: Vec<Vec<u8>> = (0..N).map(|i| alive_datagram(i * PER, PER)).collect();
    let refs: Vec<&[u8]> = dgrams.iter().map(Vec::as_slice).collect();
    assert_eq!(la.send_batch(&refs).unwrap(), N as usize);
    assert!(la.queued() > 0, "the socket took 5.6 MB at once?");
    let got = recv_seqs(&mut *lb, (N * PER) as usize, || la.tick());
    assert_eq!(got.len(), (N * PER) as usize);
    assert!(got.iter().copied().eq(0..N * PER));
    assert_eq!(la.queued(), 0);
    assert_eq!(la.stats().datagrams_sent, u64::from(N));
    assert_eq!(la.stats().queue_dropped, 0);
    assert_eq!(lb.stats().bad_datagrams, 0);
}
