//! ctnetlink against the real kernel, in namespaces: our request socket ([`CtHandle`]), event
//! socket ([`EventSocket`]) and kernel-space filter, checked against the `conntrack` CLI.
//!
//! Every test builds its own namespaces (root required: the fixtures fail without it) and
//! opens our sockets on a thread inside them; the sockets stay bound to that namespace.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use conntrackd::netlink::consts::*;
use conntrackd::netlink::ct::{Conntrack, NatRange};
use conntrackd::netlink::events::{EventGroups, EventKind, EventOptions, EventSocket};
use conntrackd::netlink::exp::Expectation;
use conntrackd::netlink::filter::{KernelFilter, Policy};
use conntrackd::netlink::protoinfo::{ProtoInfo, TcpInfo};
use conntrackd::netlink::socket::{CT_GET, CtHandle, DumpFilter, errno_of};
use conntrackd::netlink::tuple::{L4, Tuple};

use crate::util::ct::field;
use crate::util::ftp::make_expectation;
use crate::util::{
    NetNs, Sysctl, Veth, ct_count, ct_insert, ct_list, enable_conntrack, enable_conntrack_with_ftp,
    exp_list,
};

/// An established TCP conntrack with mirrored reply tuple, ASSURED, 600 s.
fn tcp(src: &str, dst: &str, sport: u16, dport: u16) -> Conntrack {
    let (s, d): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut orig = Tuple::new(s, d, IPPROTO_TCP);
    orig.l4 = L4::Ports { sport, dport };
    let mut reply = Tuple::new(d, s, IPPROTO_TCP);
    reply.l4 = L4::Ports {
        sport: dport,
        dport: sport,
    };
    let mut ct = Conntrack::new(orig.family(), orig);
    ct.reply = Some(reply);
    ct.status = Some(IPS_ASSURED | IPS_SEEN_REPLY);
    ct.timeout = Some(600);
    ct.protoinfo = Some(ProtoInfo::Tcp(TcpInfo {
        state: Some(TCP_CONNTRACK_ESTABLISHED),
        ..TcpInfo::default()
    }));
    ct
}

fn with_state(mut ct: Conntrack, state: u8) -> Conntrack {
    ct.protoinfo = Some(ProtoInfo::Tcp(TcpInfo {
        state: Some(state),
        ..TcpInfo::default()
    }));
    ct
}

fn udp(src: &str, dst: &str, sport: u16, dport: u16) -> Conntrack {
    let mut ct = tcp(src, dst, sport, dport);
    ct.orig.l4proto = IPPROTO_UDP;
    ct.reply.as_mut().unwrap().l4proto = IPPROTO_UDP;
    ct.protoinfo = None;
    ct
}

fn sport(t: &Tuple) -> u16 {
    match t.l4 {
        L4::Ports { sport, .. } => sport,
        _ => 0,
    }
}

/// A namespace with conntrack active (events on: the harness sets nf_conntrack_events=1).
fn ct_ns(tag: &str) -> NetNs {
    let ns = NetNs::new(tag);
    enable_conntrack(&ns);
    ns
}

fn handle(ns: &NetNs) -> CtHandle {
    ns.run_in(|| CtHandle::open().expect("open ctnetlink request socket"))
}

fn events(ns: &NetNs, opts: EventOptions) -> EventSocket {
    let groups = EventGroups {
        conntrack: true,
        expectations: true,
    };
    ns.run_in(|| EventSocket::subscribe(groups, opts).expect("subscribe"))
}

const DEFAULT_OPTS: EventOptions = EventOptions {
    buffer_size: Some(4 << 20),
    buffer_max_growth: 16 << 20,
    reliable: false,
};

/// One received event: kind, origin port id, decoded attributes (conntrack or expectation).
#[derive(Debug)]
enum Got {
    Ct(EventKind, u32, Box<Conntrack>),
    Exp(EventKind, u32, Box<Expectation>),
}

impl Got {
    fn kind(&self) -> EventKind {
        match self {
            Self::Ct(k, ..) | Self::Exp(k, ..) => *k,
        }
    }

    fn origin(&self) -> u32 {
        match self {
            Self::Ct(_, o, _) | Self::Exp(_, o, _) => *o,
        }
    }

    fn sport(&self) -> u16 {
        match self {
            Self::Ct(_, _, ct) => sport(&ct.orig),
            Self::Exp(..) => 0,
        }
    }
}

/// Collects events until `want` arrived or 2 s passed; decodes each through the codec.
fn collect(ev: &mut EventSocket, want: usize) -> Vec<Got> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while out.len() < want && Instant::now() < deadline {
        ev.wait(Some(Duration::from_millis(50))).unwrap();
        let batch = ev.recv_batch(&mut buf).unwrap();
        assert!(!batch.overrun, "unexpected overrun");
        for e in batch.iter() {
            out.push(if e.kind.is_expectation() {
                let x = Expectation::parse(e.family(), e.attrs()).unwrap();
                Got::Exp(e.kind, e.origin(), Box::new(x))
            } else {
                let ct = Conntrack::parse(e.family(), e.attrs()).unwrap();
                Got::Ct(e.kind, e.origin(), Box::new(ct))
            });
        }
    }
    out
}

fn dump_all(h: &mut CtHandle, filter: DumpFilter) -> Vec<Conntrack> {
    let mut v = Vec::new();
    let st = h.dump_conntracks(&filter, |ct| v.push(*ct)).unwrap();
    assert_eq!(st.bad, 0);
    assert_eq!(st.entries, v.len());
    v.sort_by_key(|ct| sport(&ct.orig));
    v
}

fn dump_sports(h: &mut CtHandle, filter: DumpFilter) -> Vec<u16> {
    dump_all(h, filter)
        .iter()
        .map(|ct| sport(&ct.orig))
        .collect()
}

fn family(family: u8) -> DumpFilter {
    DumpFilter {
        family,
        ..DumpFilter::default()
    }
}

#[test]
fn nl_batch_errors_reported_by_index() {
    let ns = ct_ns("nlbe");
    let mut h = handle(&ns);
    let cts: Vec<Conntrack> = (0..10)
        .map(|i| tcp("10.1.0.1", "10.1.0.2", 2000 + i, 80))
        .collect();
    let r = h.create(&cts).unwrap();
    assert_eq!((r.ok, r.errors.len()), (10, 0), "{:?}", r.errors);
    assert_eq!(ct_count(&ns), 10);

    // Creating 3 of them again (EXCL): exactly those fail, with EEXIST, at their indices.
    let again = [
        cts[0],
        cts[1],
        tcp("10.1.0.1", "10.1.0.2", 3000, 80),
        cts[7],
    ];
    let r = h.create(&again).unwrap();
    assert_eq!(r.ok, 1);
    let idx: Vec<usize> = r.errors.iter().map(|(i, _)| *i).collect();
    assert_eq!(idx, [0, 1, 3]);
    for (_, e) in &r.errors {
        assert_eq!(errno_of(e), Some(libc::EEXIST), "{e}");
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(e.to_string().contains("create conntrack: EEXIST"), "{e}");
    }

    // Delete a mix of existing and missing entries: the missing ones fail with ENOENT.
    let mut del = cts.clone();
    del.insert(3, tcp("10.1.0.1", "10.1.0.2", 9999, 80));
    del.insert(7, tcp("10.1.0.9", "10.1.0.2", 2000, 80));
    del.push(cts[0]); // already deleted earlier in the same batch
    let r = h.delete(&del).unwrap();
    let idx: Vec<usize> = r.errors.iter().map(|(i, _)| *i).collect();
    assert_eq!(idx, [3, 7, 12]);
    assert!(
        r.errors
            .iter()
            .all(|(_, e)| errno_of(e) == Some(libc::ENOENT))
    );
    assert_eq!(r.ok, 10);
    assert_eq!(ct_count(&ns), 1); // the sport 3000 entry

    // Update of a missing entry: ENOENT; of an existing one: ok.
    let mut upd = [
        tcp("10.1.0.1", "10.1.0.2", 3000, 80),
        tcp("10.1.0.1", "10.1.0.2", 3001, 80),
    ];
    for ct in &mut upd {
        ct.mark = Some(77);
    }
    let r = h.update(&upd).unwrap();
    assert_eq!(r.ok, 1);
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].0, 1);
    assert!(ct_list(&ns)[0].contains("mark=77"), "{:?}", ct_list(&ns));
    // A batch split over several datagrams keeps the indices right.
    h.set_batch_bytes(512);
    let mut many: Vec<Conntrack> = (0..40)
        .map(|i| tcp("10.1.1.1", "10.1.1.2", 100 + i, 80))
        .collect();
    many[33] = tcp("10.1.0.1", "10.1.0.2", 3000, 80); // exists
    let r = h.create(&many).unwrap();
    assert_eq!(r.ok, 39);
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].0, 33);
}

#[test]
fn nl_batch_lost_acks_are_errors_not_successes() {
    let ns = ct_ns("nlack");
    let mut h = handle(&ns);
    let cts: Vec<Conntrack> = (0..500)
        .map(|i| tcp("10.11.0.1", "10.11.0.2", 1000 + i, 80))
        .collect();
    // Successes cost no answer (errors only, then one ACK for the batch's barrier).
    let r = h.create(&cts).unwrap();
    assert!(r.all_ok(), "{:?}", r.errors.first());
    // Shrink the receive buffer behind the handle's back and create them again: 500
    // EEXIST answers (~840 B of buffer each) no longer fit, the kernel drops most of them
    // and the barrier's ACK, and signals ENOBUFS.
    h.socket().set_recv_buffer_force(8 * 1024).unwrap();
    let r = h.create(&cts).unwrap();
    assert_eq!(r.ok + r.errors.len(), 500);
    // Without the barrier nothing is known: an unknown outcome is reported as a failure,
    // never as a success, so that the caller re-checks.
    assert_eq!(r.ok, 0);
    let enobufs = r
        .errors
        .iter()
        .filter(|(_, e)| errno_of(e) == Some(libc::ENOBUFS))
        .count();
    assert!(enobufs > 0, "no answer was lost: {:?}", r.errors.first());
    assert!(
        r.errors
            .iter()
            .all(|(_, e)| matches!(errno_of(e), Some(libc::ENOBUFS | libc::EEXIST)))
    );
    assert_eq!(ct_count(&ns), 500);
    // The handle keeps working afterwards (stale answers are ignored).
    h.socket().set_recv_buffer_force(4 << 20).unwrap();
    h.flush_conntracks(AF_UNSPEC).unwrap();
    assert_eq!(ct_count(&ns), 0);
}

#[test]
fn nl_flush_by_family() {
    let ns = ct_ns("nlfl");
    let mut h = handle(&ns);
    let mut cts: Vec<Conntrack> = (0..50)
        .map(|i| tcp("10.2.0.1", "10.2.0.2", 1000 + i, 443))
        .collect();
    cts.extend((0..20).map(|i| tcp("fd00:2::1", "fd00:2::2", 5000 + i, 443)));
    let r = h.create(&cts).unwrap();
    assert!(r.all_ok(), "{:?}", r.errors);
    assert_eq!(ct_count(&ns), 70);
    h.flush_conntracks(AF_INET6).unwrap();
    assert_eq!(dump_sports(&mut h, family(AF_UNSPEC)).len(), 50);
    assert_eq!(dump_sports(&mut h, family(AF_INET6)).len(), 0);
    h.flush_conntracks(AF_UNSPEC).unwrap();
    assert_eq!(ct_count(&ns), 0);
    // Flushing an empty table is not an error.
    h.flush_conntracks(AF_UNSPEC).unwrap();
    h.flush_conntracks(AF_INET).unwrap();
    h.flush_expectations().unwrap();
}

#[test]
fn nl_dump_reads_cli_entries_and_filters() {
    let ns = ct_ns("nldf");
    let mut h = handle(&ns);
    for (sport, mark, zone) in [
        (1111, "0", "0"),
        (2222, "5", "0"),
        (3333, "5", "9"),
        (4444, "6", "0"),
    ] {
        let sport = sport.to_string();
        // No `-u ASSURED` here: conntrack 1.4.7 then stores the status value as the mark.
        let args = "-p tcp -s 10.3.0.1 -d 10.3.0.2 --dport 22 --state ESTABLISHED -t 120";
        let mut argv: Vec<&str> = args.split(' ').collect();
        argv.extend(["--sport", &sport, "-m", mark, "-w", zone]);
        ct_insert(&ns, &argv);
    }
    ct_insert(
        &ns,
        &[
            "-p",
            "udp",
            "-s",
            "fd00:3::1",
            "-d",
            "fd00:3::2",
            "--sport",
            "5555",
            "--dport",
            "53",
            "-t",
            "30",
        ],
    );
    let all = dump_all(&mut h, family(AF_UNSPEC));
    assert_eq!(
        all.iter().map(|c| sport(&c.orig)).collect::<Vec<_>>(),
        [1111, 2222, 3333, 4444, 5555]
    );
    // Every attribute the CLI set comes back.
    let c = &all[2];
    assert_eq!(c.family, AF_INET);
    assert_eq!(c.orig.src, "10.3.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(c.orig.dst, "10.3.0.2".parse::<IpAddr>().unwrap());
    assert_eq!(c.orig.l4proto, IPPROTO_TCP);
    assert_eq!(
        c.orig.l4,
        L4::Ports {
            sport: 3333,
            dport: 22
        }
    );
    let r = c.reply.unwrap();
    assert_eq!((r.src, r.dst), (c.orig.dst, c.orig.src));
    assert_eq!(c.mark, Some(5));
    assert_eq!(c.zone, Some(9));
    assert!((110..=120).contains(&c.timeout.unwrap()), "{c:?}");
    match c.protoinfo {
        Some(ProtoInfo::Tcp(t)) => assert_eq!(t.state, Some(TCP_CONNTRACK_ESTABLISHED)),
        other => panic!("protoinfo {other:?}"),
    }
    assert_ne!(c.status.unwrap() & IPS_CONFIRMED, 0);
    let u = &all[4];
    assert_eq!((u.family, u.orig.l4proto), (AF_INET6, IPPROTO_UDP));
    assert_eq!(u.orig.src, "fd00:3::1".parse::<IpAddr>().unwrap());

    assert_eq!(dump_sports(&mut h, family(AF_INET6)), [5555]);
    assert_eq!(
        dump_sports(&mut h, family(AF_INET)),
        [1111, 2222, 3333, 4444]
    );
    // Kernel-side mark filter (CTA_MARK + CTA_MARK_MASK), zone filter (CTA_ZONE).
    let by_mark = DumpFilter {
        mark: Some((5, 0xff)),
        ..DumpFilter::default()
    };
    assert_eq!(
        dump_sports(&mut h, by_mark),
        [2222, 3333],
        "{:?}",
        ct_list(&ns)
    );
    let by_zone = |zone| DumpFilter {
        zone: Some(zone),
        ..DumpFilter::default()
    };
    assert_eq!(dump_sports(&mut h, by_zone(9)), [3333]);
    assert_eq!(dump_sports(&mut h, by_zone(0)), [1111, 2222, 4444, 5555]);

    // GET by tuple and zone.
    let got = h.get_conntrack(&all[2]).unwrap().expect("entry exists");
    assert_eq!(got.orig, all[2].orig);
    let mut wrong_zone = all[2];
    wrong_zone.zone = None;
    assert_eq!(h.get_conntrack(&wrong_zone).unwrap(), None);
}

#[test]
fn nl_created_entry_matches_cli_listing() {
    let ns = ct_ns("nlcl");
    // The nat hooks must exist for the kernel NAT core to take our NAT request.
    ns.nft(
        "table ip ctd_nat {\n chain post { type nat hook postrouting priority srcnat; }\n \
         chain pre { type nat hook prerouting priority dstnat; }\n}\n",
    );
    let mut h = handle(&ns);
    let mut a = tcp("10.8.0.1", "10.8.0.2", 40000, 443);
    a.mark = Some(0x1234);
    a.zone = Some(7);
    a.timeout = Some(3600);
    let mut nat = tcp("10.8.0.1", "198.51.100.9", 40001, 443);
    nat.status = Some(IPS_ASSURED | IPS_SEEN_REPLY | IPS_SRC_NAT | IPS_SRC_NAT_DONE);
    nat.nat_src = Some(NatRange {
        min_ip: Some("203.0.113.5".parse().unwrap()),
        max_ip: Some("203.0.113.5".parse().unwrap()),
        min_port: Some(50000),
        max_port: Some(50000),
    });
    let r = h.create(&[a, nat]).unwrap();
    assert!(r.all_ok(), "{:?}", r.errors);
    let l = ct_list(&ns);
    assert_eq!(l.len(), 2, "{l:?}");
    let line = l.iter().find(|l| l.contains("sport=40000")).unwrap();
    assert!(line.starts_with("ipv4     2 tcp      6 "), "{line}");
    assert!(line.contains(" ESTABLISHED "), "{line}");
    assert_eq!(field(line, "src"), Some("10.8.0.1"));
    assert_eq!(field(line, "dst"), Some("10.8.0.2"));
    assert_eq!(field(line, "sport"), Some("40000"));
    assert_eq!(field(line, "dport"), Some("443"));
    assert_eq!(field(line, "mark"), Some("4660"));
    assert_eq!(field(line, "zone"), Some("7"));
    assert!(line.contains("[ASSURED]"), "{line}");
    let timeout: u32 = line.split_whitespace().nth(4).unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&timeout), "{line}");
    // SNAT: the kernel NAT core rewrote the reply tuple to the NAT address and port.
    let line = l.iter().find(|l| l.contains("sport=40001")).unwrap();
    assert!(
        line.contains("src=198.51.100.9 dst=203.0.113.5 sport=443 dport=50000"),
        "{line}"
    );
    // And our dump sees the same.
    let ours = dump_all(&mut h, DumpFilter::default());
    let n = ours.iter().find(|c| sport(&c.orig) == 40001).unwrap();
    assert_eq!(
        n.reply.unwrap().dst,
        "203.0.113.5".parse::<IpAddr>().unwrap()
    );
    assert_ne!(n.status.unwrap() & IPS_SRC_NAT, 0);
    let z = ours.iter().find(|c| sport(&c.orig) == 40000).unwrap();
    assert_eq!((z.mark, z.zone), (Some(0x1234), Some(7)));
}

#[test]
fn nl_labels_roundtrip() {
    let ns = ct_ns("nllb");
    // The kernel only accepts CTA_LABELS once something in the namespace uses labels.
    ns.nft(
        "table inet ctd_lbl {\n chain out { type filter hook output priority 0; \
         ct label 127 accept; }\n}\n",
    );
    let mut h = handle(&ns);
    let mut ct = tcp("10.9.0.1", "10.9.0.2", 7000, 80);
    let mut labels = [0u8; 16];
    labels[0] = 0b101; // labels 0 and 2 (host-order words; little-endian here)
    ct.labels = Some(labels);
    let r = h.create(&[ct]).unwrap();
    assert!(r.all_ok(), "{:?}", r.errors);
    let got = dump_all(&mut h, DumpFilter::default());
    // The kernel's own copy (the CLI prints labels only by name from connlabel.conf).
    assert_eq!(got[0].labels, Some(labels));
}

#[test]
fn nl_events_for_our_and_cli_changes() {
    let ns = ct_ns("nlev");
    let mut ev = events(&ns, DEFAULT_OPTS);
    let mut h = handle(&ns);
    let ours = tcp("10.4.0.1", "10.4.0.2", 4000, 80);
    assert!(h.create(&[ours]).unwrap().all_ok());
    ct_insert(
        &ns,
        &[
            "-p",
            "tcp",
            "-s",
            "10.4.0.1",
            "-d",
            "10.4.0.2",
            "--sport",
            "4001",
            "--dport",
            "80",
            "--state",
            "ESTABLISHED",
            "-t",
            "120",
        ],
    );
    let got = collect(&mut ev, 2);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].kind(), EventKind::CtNew);
    assert_eq!(
        got[0].origin(),
        h.port_id(),
        "our create carries our port id"
    );
    assert_eq!(got[0].sport(), 4000);
    assert_eq!(got[1].kind(), EventKind::CtNew);
    assert_ne!(got[1].origin(), h.port_id());
    assert_eq!(got[1].sport(), 4001);
    if let Got::Ct(_, _, ct) = &got[0] {
        assert_eq!(ct.timeout.map(|t| t > 590), Some(true), "{ct:?}");
        assert_ne!(ct.status.unwrap() & IPS_ASSURED, 0);
    }

    // Update (ours, then the CLI's), then delete.
    let mut upd = ours;
    upd.mark = Some(9);
    assert!(h.update(&[upd]).unwrap().all_ok());
    // conntrack 1.4.7 -U/-D need an address here: with only -p/--sport this kernel answers
    // EOPNOTSUPP to the CLI's filtered dump.
    let cli = ["-s", "10.4.0.1", "-p", "tcp", "--sport", "4001"];
    ns.expect_ok(&[&["conntrack", "-U"][..], &cli, &["-m", "3"]].concat());
    assert!(h.delete(&[ours]).unwrap().all_ok());
    ns.expect_ok(&[&["conntrack", "-D"][..], &cli].concat());
    let got = collect(&mut ev, 4);
    let kinds: Vec<(EventKind, u16)> = got.iter().map(|e| (e.kind(), e.sport())).collect();
    assert_eq!(
        kinds,
        [
            (EventKind::CtUpdate, 4000),
            (EventKind::CtUpdate, 4001),
            (EventKind::CtDestroy, 4000),
            (EventKind::CtDestroy, 4001),
        ]
    );
    assert_eq!(got[0].origin(), h.port_id());
    assert_eq!(got[2].origin(), h.port_id());
    if let Got::Ct(_, _, ct) = &got[0] {
        assert_eq!(ct.mark, Some(9));
    }
    let st = ev.stats();
    assert_eq!((st.events, st.overruns), (6, 0));
    assert!(st.bytes > 0);
}

#[test]
fn nl_events_overrun_grows_buffer_up_to_max() {
    let ns = ct_ns("nlob");
    let opts = EventOptions {
        buffer_size: Some(16 * 1024),
        buffer_max_growth: 64 * 1024,
        reliable: false,
    };
    let mut ev = events(&ns, opts);
    assert_eq!(ev.stats().buffer_size, 16 * 1024);
    let mut h = handle(&ns);
    let mut buf = vec![0u8; 256 * 1024];
    let mut sizes = Vec::new();
    for round in 0..4u16 {
        // A burst far larger than the buffer, while nobody reads.
        let src = format!("10.5.{round}.1");
        let cts: Vec<Conntrack> = (0..500)
            .map(|i| tcp(&src, "10.5.0.2", 1000 + i, 80))
            .collect();
        assert!(h.create(&cts).unwrap().all_ok());
        let mut overrun = false;
        while ev.wait(Some(Duration::from_millis(20))).unwrap() {
            let b = ev.recv_batch(&mut buf).unwrap();
            overrun |= b.overrun;
            if b.is_empty() {
                break;
            }
        }
        assert!(overrun, "round {round}: no overrun reported");
        sizes.push(ev.stats().buffer_size);
    }
    assert_eq!(sizes, [32 * 1024, 64 * 1024, 64 * 1024, 64 * 1024]);
    assert_eq!(ev.stats().overruns, 4);
    println!("ENOBUFS growth: buffer sizes after each overrun {sizes:?}");

    // Reliable mode: NETLINK_NO_ENOBUFS, the same burst reports no overrun.
    let mut rel = events(
        &ns,
        EventOptions {
            reliable: true,
            ..opts
        },
    );
    h.flush_conntracks(AF_UNSPEC).unwrap();
    let cts: Vec<Conntrack> = (0..500)
        .map(|i| tcp("10.5.9.1", "10.5.0.2", 1000 + i, 80))
        .collect();
    assert!(h.create(&cts).unwrap().all_ok());
    while rel.wait(Some(Duration::from_millis(20))).unwrap() {
        let b = rel.recv_batch(&mut buf).unwrap();
        assert!(!b.overrun);
        if b.is_empty() {
            break;
        }
    }
    assert_eq!(rel.stats().overruns, 0);
}

#[test]
fn nl_kernel_filter_drops_ignored_events() {
    let ns = ct_ns("nlbpf");
    let mut ev = events(&ns, DEFAULT_OPTS);
    ev.set_filter(&KernelFilter {
        protocols: Some((Policy::Ignore, vec![IPPROTO_UDP])),
        v4: Some((Policy::Ignore, vec![(Ipv4Addr::new(10, 66, 0, 0), 16)])),
        v6: Some((Policy::Ignore, vec![("fd00:66::".parse().unwrap(), 32)])),
        tcp_states: Some((Policy::Accept, vec![TCP_CONNTRACK_ESTABLISHED])),
    })
    .unwrap();
    let mut h = handle(&ns);
    let all = [
        tcp("10.6.0.1", "10.6.0.2", 1, 80),  // passes
        udp("10.6.0.1", "10.6.0.2", 2, 53),  // protocol ignored
        tcp("10.66.1.1", "10.6.0.2", 3, 80), // source ignored
        tcp("10.6.0.1", "10.66.2.2", 4, 80), // destination ignored
        with_state(tcp("10.6.0.1", "10.6.0.2", 5, 80), TCP_CONNTRACK_SYN_SENT), // state
        tcp("fd00:6::1", "fd00:6::2", 6, 80), // passes
        tcp("fd00:6::1", "fd00:66:1::2", 7, 80), // IPv6 dst ignored
    ];
    let r = h.create(&all).unwrap();
    assert!(r.all_ok(), "{:?}", r.errors);
    assert_eq!(ct_count(&ns), 7);
    let got = collect(&mut ev, 3);
    let sports: HashSet<u16> = got.iter().map(Got::sport).collect();
    assert_eq!(sports, HashSet::from([1, 6]), "{got:?}");

    // Accept lists on the other hand let only the listed networks through: both original
    // addresses must be listed.
    ev.set_filter(&KernelFilter {
        v4: Some((Policy::Accept, vec![(Ipv4Addr::new(10, 6, 0, 0), 16)])),
        v6: Some((Policy::Accept, vec![("fd00:6::".parse().unwrap(), 32)])),
        ..KernelFilter::default()
    })
    .unwrap();
    assert!(h.delete(&all).unwrap().all_ok());
    let got = collect(&mut ev, 4);
    let sports: HashSet<u16> = got.iter().map(Got::sport).collect();
    assert_eq!(sports, HashSet::from([1, 2, 5, 6]), "{got:?}");
    assert!(got.iter().all(|g| g.kind() == EventKind::CtDestroy));
    // Detaching restores everything.
    ev.set_filter(&KernelFilter::default()).unwrap();
    assert!(h.create(&all[..2]).unwrap().all_ok());
    assert_eq!(collect(&mut ev, 2).len(), 2);
}

#[test]
fn nl_dump_100k_entries() {
    const N: usize = 100_000;
    let _max = Sysctl::set("net.netfilter.nf_conntrack_max", "400000");
    let ns = ct_ns("nl100k");
    let mut h = handle(&ns);
    let cts: Vec<Conntrack> = (0..N)
        .map(|i| {
            let src = format!("10.7.{}.1", i >> 16);
            tcp(&src, "10.7.0.2", (i & 0xffff) as u16, 80)
        })
        .collect();
    let t = Instant::now();
    let r = h.create(&cts).unwrap();
    let create = t.elapsed();
    assert_eq!((r.ok, r.errors.len()), (N, 0));
    let t = Instant::now();
    let mut n = 0usize;
    let st = h
        .dump_conntracks(&DumpFilter::default(), |_| n += 1)
        .unwrap();
    let dump = t.elapsed();
    assert_eq!((n, st.entries, st.bad), (N, N, 0));
    let t = Instant::now();
    let raw = h
        .dump_raw(CT_GET, AF_UNSPEC, "dump", |_| {}, |_| {})
        .unwrap();
    let dump_raw = t.elapsed();
    assert_eq!(raw, N);
    println!(
        "100k: create {:.0} entries/s ({create:?}), dump+decode {:.0} entries/s ({dump:?}), \
         raw dump {:.0} entries/s",
        N as f64 / create.as_secs_f64(),
        N as f64 / dump.as_secs_f64(),
        N as f64 / dump_raw.as_secs_f64(),
    );
    let t = Instant::now();
    h.flush_conntracks(AF_UNSPEC).unwrap();
    println!("100k: flush {:?}", t.elapsed());
    assert_eq!(ct_count(&ns), 0);
}

#[test]
fn nl_expectations_dump_events_create_delete() {
    let client = NetNs::new("nlxc");
    let server = NetNs::new("nlxs");
    Veth::connect(
        &client,
        "vxC",
        "10.231.7.1/24",
        &server,
        "vxS",
        "10.231.7.2/24",
    );
    enable_conntrack(&client);
    enable_conntrack_with_ftp(&server);
    let mut ev = events(&server, DEFAULT_OPTS);
    // Without ExpectationSync the socket joins only the conntrack groups (0x07).
    let groups = EventGroups {
        conntrack: true,
        expectations: false,
    };
    let mut ct_only = server.run_in(|| EventSocket::subscribe(groups, DEFAULT_OPTS).unwrap());
    let mut h = handle(&server);
    let session = make_expectation(&client, &server, "10.231.7.2".parse().unwrap(), 50010);
    let line = session.expect_expectation(&server);

    // Dump: exactly the kernel's expectation, with its master and helper.
    let mut exps = Vec::new();
    let st = h.dump_expectations(AF_UNSPEC, |e| exps.push(*e)).unwrap();
    assert_eq!((st.entries, st.bad), (1, 0), "{line}");
    let e = exps[0];
    assert_eq!(e.family, AF_INET);
    assert_eq!(e.tuple.dst, "10.231.7.2".parse::<IpAddr>().unwrap());
    assert!(
        matches!(e.tuple.l4, L4::Ports { dport: 50010, .. }),
        "{e:?}"
    );
    assert_eq!(
        e.master.l4,
        L4::Ports {
            sport: session.client_addr().port(),
            dport: 21
        }
    );
    assert_eq!(
        e.helper
            .and_then(|h| h.as_str().map(str::to_owned))
            .as_deref(),
        Some("ftp")
    );

    // Events: the master's NEW (and updates), then EXP_NEW.
    let got = collect(&mut ev, 8);
    let exp_new: Vec<&Got> = got
        .iter()
        .filter(|g| g.kind() == EventKind::ExpNew)
        .collect();
    assert_eq!(exp_new.len(), 1, "{got:?}");
    if let Got::Exp(_, origin, x) = exp_new[0] {
        assert_eq!(*origin, 0, "packet-path event");
        assert_eq!(x.tuple, e.tuple);
    }

    let plain = collect(&mut ct_only, 8);
    assert!(!plain.is_empty());
    assert!(
        plain.iter().all(|g| !g.kind().is_expectation()),
        "{plain:?}"
    );

    // Delete it through ctnetlink, then create it again from the dumped data.
    let r = h.delete_expectations(&[e]).unwrap();
    assert!(r.all_ok(), "{:?}", r.errors);
    assert!(session.expectation(&server).is_none());
    let got = collect(&mut ev, 1);
    assert_eq!(
        got.first().map(Got::kind),
        Some(EventKind::ExpDestroy),
        "{got:?}"
    );
    let mut again = e.writable();
    again.timeout = Some(120);
    let r = h.create_expectations(&[again]).unwrap();
    assert!(r.all_ok(), "{:?}", r.errors);
    let line = session.expect_expectation(&server);
    assert!(line.contains("helper=ftp"), "{line}");
    // Update: the kernel takes the new timeout.
    let mut longer = again;
    longer.timeout = Some(1000);
    assert!(h.update_expectations(&[longer]).unwrap().all_ok());
    let line = session.expect_expectation(&server);
    let left: u32 = line.split_whitespace().next().unwrap().parse().unwrap();
    assert!((990..=1000).contains(&left), "{line}");
    // Creating it twice: EEXIST at index 0.
    let r = h.create_expectations(&[again]).unwrap();
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert_eq!(errno_of(&r.errors[0].1), Some(libc::EEXIST));
    // A missing one: ENOENT.
    h.flush_expectations().unwrap();
    assert!(exp_list(&server).is_empty());
    let r = h.delete_expectations(&[again]).unwrap();
    assert_eq!(errno_of(&r.errors[0].1), Some(libc::ENOENT));
    drop(session);
}

#[test]
fn nl_event_drain_rate() {
    const N: usize = 20_000;
    let ns = ct_ns("nldr");
    // Room for every event at once (each queued skb costs ~1 KiB of buffer accounting).
    let opts = EventOptions {
        buffer_size: Some(64 << 20),
        buffer_max_growth: 64 << 20,
        reliable: false,
    };
    let mut ev = events(&ns, opts);
    let mut h = handle(&ns);
    let cts: Vec<Conntrack> = (0..N)
        .map(|i| tcp(&format!("10.10.{}.1", i >> 16), "10.10.0.2", i as u16, 80))
        .collect();
    let t = Instant::now();
    assert!(h.create(&cts).unwrap().all_ok());
    let create = t.elapsed();
    let mut buf = vec![0u8; 256 * 1024];
    let (mut n, mut decoded) = (0usize, 0usize);
    let t = Instant::now();
    while n < N && ev.wait(Some(Duration::from_millis(200))).unwrap() {
        let b = ev.recv_batch(&mut buf).unwrap();
        assert!(!b.overrun);
        for e in b.iter() {
            assert_eq!(e.kind, EventKind::CtNew);
            decoded += usize::from(Conntrack::parse(e.family(), e.attrs()).is_ok());
        }
        n += b.events;
    }
    let drain = t.elapsed();
    assert_eq!((n, decoded), (N, N));
    println!(
        "events: create with a listener {:.0} entries/s; drain+decode {:.0} events/s ({drain:?})",
        N as f64 / create.as_secs_f64(),
        N as f64 / drain.as_secs_f64()
    );
}
