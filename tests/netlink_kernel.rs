//! ctnetlink against the real kernel, in namespaces: our request socket ([`CtHandle`]), event
//! socket ([`EventSocket`]) and kernel-space filter, checked against the `conntrack` CLI.
//!
//! Every test builds its own namespaces (root required: the fixtures fail without it) and
//! opens our sockets on a thread inside them; the sockets stay bound to that namespace.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use conntrackd::netlink::attr::nlas;
use conntrackd::netlink::consts::*;
use conntrackd::netlink::events::{EventGroups, EventKind, EventOptions, EventSocket};
use conntrackd::netlink::filter::{KernelFilter, Policy};
use conntrackd::netlink::msg::MsgBuilder;
use conntrackd::netlink::socket::{CT_GET, CtHandle, Req, ReqKind, errno_of};

use crate::util::ct::field;
use crate::util::{NetNs, Sysctl, ct_count, ct_insert, ct_list, enable_conntrack};

/// A flow as the tests describe it; emitted with the codec's builder.
#[derive(Debug, Clone, Copy)]
struct Flow {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    sport: u16,
    dport: u16,
    state: u8,
    mark: u32,
    zone: u16,
    timeout: u32,
}

impl Flow {
    fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Self {
        Self {
            src: IpAddr::from(src),
            dst: IpAddr::from(dst),
            proto: IPPROTO_TCP,
            sport,
            dport,
            state: TCP_CONNTRACK_ESTABLISHED,
            mark: 0,
            zone: 0,
            timeout: 600,
        }
    }

    fn family(&self) -> u8 {
        if self.src.is_ipv4() {
            AF_INET
        } else {
            AF_INET6
        }
    }

    fn tuple(b: &mut MsgBuilder<'_>, ty: u16, src: IpAddr, dst: IpAddr, p: u8, sp: u16, dp: u16) {
        let t = b.nest_start(ty);
        let ip = b.nest_start(CTA_TUPLE_IP);
        let (s, d) = if src.is_ipv4() {
            (CTA_IP_V4_SRC, CTA_IP_V4_DST)
        } else {
            (CTA_IP_V6_SRC, CTA_IP_V6_DST)
        };
        b.put_ip(s, src);
        b.put_ip(d, dst);
        b.nest_end(ip);
        let pr = b.nest_start(CTA_TUPLE_PROTO);
        b.put_u8(CTA_PROTO_NUM, p);
        b.put_u16_be(CTA_PROTO_SRC_PORT, sp);
        b.put_u16_be(CTA_PROTO_DST_PORT, dp);
        b.nest_end(pr);
        b.nest_end(t);
    }

    /// CTA_TUPLE_ORIG (+ CTA_ZONE): what a delete needs.
    fn emit_key(&self, req: Req<'_>) {
        let mut b = req.start(self.family());
        let (s, d, p, sp, dp) = (self.src, self.dst, self.proto, self.sport, self.dport);
        Self::tuple(&mut b, CTA_TUPLE_ORIG, s, d, p, sp, dp);
        if self.zone != 0 {
            b.put_u16_be(CTA_ZONE, self.zone);
        }
        b.finish();
    }

    /// A full create: both tuples, status, timeout, mark, zone, TCP state.
    fn emit_full(&self, req: Req<'_>) {
        let mut b = req.start(self.family());
        let (s, d, p, sp, dp) = (self.src, self.dst, self.proto, self.sport, self.dport);
        Self::tuple(&mut b, CTA_TUPLE_ORIG, s, d, p, sp, dp);
        Self::tuple(&mut b, CTA_TUPLE_REPLY, d, s, p, dp, sp);
        // The kernel sets CONFIRMED before applying CTA_STATUS and rejects clearing it (EBUSY).
        b.put_u32_be(CTA_STATUS, IPS_ASSURED | IPS_SEEN_REPLY | IPS_CONFIRMED);
        b.put_u32_be(CTA_TIMEOUT, self.timeout);
        b.put_u32_be(CTA_MARK, self.mark);
        if self.zone != 0 {
            b.put_u16_be(CTA_ZONE, self.zone);
        }
        if self.proto == IPPROTO_TCP {
            let pi = b.nest_start(CTA_PROTOINFO);
            let tcp = b.nest_start(CTA_PROTOINFO_TCP);
            b.put_u8(CTA_PROTOINFO_TCP_STATE, self.state);
            b.nest_end(tcp);
            b.nest_end(pi);
        }
        b.finish();
    }
}

/// `(proto, src, dst, sport)` of an original tuple.
type OrigTuple = (u8, IpAddr, IpAddr, u16);

/// The original tuple of a dumped/event message.
fn orig_of(attrs: &[u8]) -> OrigTuple {
    let orig = nlas(attrs)
        .map(Result::unwrap)
        .find(|a| a.ty == CTA_TUPLE_ORIG)
        .expect("CTA_TUPLE_ORIG");
    let (mut proto, mut sport) = (0, 0);
    let mut addrs = Vec::new();
    for a in orig.nested().map(Result::unwrap) {
        for n in a.nested().map(Result::unwrap) {
            match (a.ty, n.ty) {
                (CTA_TUPLE_IP, _) if n.value.len() == 4 => {
                    addrs.push(IpAddr::from(<[u8; 4]>::try_from(n.value).unwrap()))
                }
                (CTA_TUPLE_IP, _) => {
                    addrs.push(IpAddr::from(<[u8; 16]>::try_from(n.value).unwrap()))
                }
                (CTA_TUPLE_PROTO, CTA_PROTO_NUM) => proto = n.u8().unwrap(),
                (CTA_TUPLE_PROTO, CTA_PROTO_SRC_PORT) => sport = n.u16_be().unwrap(),
                _ => {}
            }
        }
    }
    (proto, addrs[0], addrs[1], sport)
}

/// A namespace with conntrack active and events on.
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

/// Collects `(kind, origin, orig tuple)` of events until `want` arrived or 2 s passed.
fn collect(ev: &mut EventSocket, want: usize) -> Vec<(EventKind, u32, OrigTuple)> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while out.len() < want && Instant::now() < deadline {
        ev.wait(Some(Duration::from_millis(50))).unwrap();
        let batch = ev.recv_batch(&mut buf).unwrap();
        assert!(!batch.overrun, "unexpected overrun");
        for e in batch.iter() {
            let tuple = if e.kind.is_expectation() {
                (0, IpAddr::from([0; 4]), IpAddr::from([0; 4]), 0)
            } else {
                orig_of(e.attrs())
            };
            out.push((e.kind, e.origin(), tuple));
        }
    }
    out
}

fn dump_sports(h: &mut CtHandle, family: u8) -> Vec<u16> {
    let mut v = Vec::new();
    h.dump_raw(
        CT_GET,
        family,
        "dump",
        |_| {},
        |m| v.push(orig_of(&m.payload()[4..]).3),
    )
    .unwrap();
    v.sort_unstable();
    v
}

#[test]
fn nl_batch_errors_reported_by_index() {
    let ns = ct_ns("nlbe");
    let mut h = handle(&ns);
    let flows: Vec<Flow> = (0..10)
        .map(|i| Flow::tcp4([10, 1, 0, 1], [10, 1, 0, 2], 2000 + i, 80))
        .collect();
    let r = h
        .batch_raw(ReqKind::CT_CREATE, &flows, |f, r| f.emit_full(r))
        .unwrap();
    assert_eq!((r.ok, r.errors.len()), (10, 0), "{:?}", r.errors);
    assert_eq!(ct_count(&ns), 10);

    // Creating 3 of them again (EXCL): exactly those fail, with EEXIST, at their indices.
    let mut again = flows[..2].to_vec();
    again.push(Flow::tcp4([10, 1, 0, 1], [10, 1, 0, 2], 3000, 80));
    again.push(flows[7]);
    let r = h
        .batch_raw(ReqKind::CT_CREATE, &again, |f, r| f.emit_full(r))
        .unwrap();
    assert_eq!(r.ok, 1);
    let idx: Vec<usize> = r.errors.iter().map(|(i, _)| *i).collect();
    assert_eq!(idx, [0, 1, 3]);
    for (_, e) in &r.errors {
        assert_eq!(errno_of(e), Some(libc::EEXIST), "{e}");
        assert!(e.to_string().contains("create conntrack: EEXIST"), "{e}");
    }

    // Delete a mix of existing and missing entries: the missing ones fail with ENOENT.
    let mut del: Vec<Flow> = flows.clone();
    del.insert(3, Flow::tcp4([10, 1, 0, 1], [10, 1, 0, 2], 9999, 80));
    del.insert(7, Flow::tcp4([10, 1, 0, 9], [10, 1, 0, 2], 2000, 80));
    del.push(flows[0]); // already deleted earlier in the same batch
    let r = h
        .batch_raw(ReqKind::CT_DELETE, &del, |f, r| f.emit_key(r))
        .unwrap();
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
    let upd = [
        Flow::tcp4([10, 1, 0, 1], [10, 1, 0, 2], 3000, 80),
        Flow::tcp4([10, 1, 0, 1], [10, 1, 0, 2], 3001, 80),
    ];
    let r = h
        .batch_raw(ReqKind::CT_UPDATE, &upd, |f, r| {
            let mut f = *f;
            f.mark = 77;
            f.emit_full(r)
        })
        .unwrap();
    assert_eq!(r.ok, 1);
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].0, 1);
    assert!(ct_list(&ns)[0].contains("mark=77"), "{:?}", ct_list(&ns));
}

#[test]
fn nl_flush_by_family() {
    let ns = ct_ns("nlfl");
    let mut h = handle(&ns);
    let mut flows: Vec<Flow> = (0..50)
        .map(|i| Flow::tcp4([10, 2, 0, 1], [10, 2, 0, 2], 1000 + i, 443))
        .collect();
    for i in 0..20 {
        let mut f = Flow::tcp4([0; 4], [0; 4], 5000 + i, 443);
        f.src = "fd00:2::1".parse().unwrap();
        f.dst = "fd00:2::2".parse().unwrap();
        flows.push(f);
    }
    let r = h
        .batch_raw(ReqKind::CT_CREATE, &flows, |f, r| f.emit_full(r))
        .unwrap();
    assert!(r.all_ok(), "{:?}", r.errors);
    assert_eq!(ct_count(&ns), 70);
    h.flush_conntracks(AF_INET6).unwrap();
    assert_eq!(dump_sports(&mut h, AF_UNSPEC).len(), 50);
    assert_eq!(dump_sports(&mut h, AF_INET6).len(), 0);
    h.flush_conntracks(AF_UNSPEC).unwrap();
    assert_eq!(ct_count(&ns), 0);
    // Flushing an empty table is not an error.
    h.flush_conntracks(AF_UNSPEC).unwrap();
    h.flush_expectations().unwrap();
}

#[test]
fn nl_dump_reads_cli_entries_and_filters_in_kernel() {
    let ns = ct_ns("nldf");
    let mut h = handle(&ns);
    for (sport, mark) in [(1111, "0"), (2222, "5"), (3333, "5"), (4444, "6")] {
        let sport = sport.to_string();
        // No `-u ASSURED` here: conntrack 1.4.7 then stores the status value as the mark.
        let args = "-p tcp -s 10.3.0.1 -d 10.3.0.2 --dport 22 --state ESTABLISHED -t 120";
        let mut argv: Vec<&str> = args.split(' ').collect();
        argv.extend(["--sport", &sport, "-m", mark]);
        ct_insert(&ns, &argv);
    }
    assert_eq!(dump_sports(&mut h, AF_UNSPEC), [1111, 2222, 3333, 4444]);
    assert_eq!(dump_sports(&mut h, AF_INET6), Vec::<u16>::new());
    // Kernel-side mark filter: CTA_MARK + CTA_MARK_MASK in the dump request.
    let mut v = Vec::new();
    h.dump_raw(
        CT_GET,
        AF_UNSPEC,
        "dump by mark",
        |b| {
            b.put_u32_be(CTA_MARK, 5);
            b.put_u32_be(CTA_MARK_MASK, 0xff);
        },
        |m| v.push(orig_of(&m.payload()[4..]).3),
    )
    .unwrap();
    v.sort_unstable();
    assert_eq!(v, [2222, 3333], "{:?}", ct_list(&ns));
}

#[test]
fn nl_events_for_our_and_cli_changes() {
    let ns = ct_ns("nlev");
    let mut ev = events(&ns, DEFAULT_OPTS);
    let mut h = handle(&ns);
    let ours = Flow::tcp4([10, 4, 0, 1], [10, 4, 0, 2], 4000, 80);
    assert!(
        h.batch_raw(ReqKind::CT_CREATE, &[ours], |f, r| f.emit_full(r))
            .unwrap()
            .all_ok()
    );
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
    assert_eq!(got[0].0, EventKind::CtNew);
    assert_eq!(
        got[0].1,
        h.port_id(),
        "our create is stamped with our port id"
    );
    assert_eq!(got[0].2.3, 4000);
    assert_eq!(got[1].0, EventKind::CtNew);
    assert_ne!(got[1].1, h.port_id());
    assert_eq!(got[1].2.3, 4001);

    // Update (ours, then the CLI's), then delete.
    let mut upd = ours;
    upd.mark = 9;
    h.batch_raw(ReqKind::CT_UPDATE, &[upd], |f, r| f.emit_full(r))
        .unwrap();
    // conntrack 1.4.7 -U/-D need an address here: with only -p/--sport this kernel answers
    // EOPNOTSUPP to the CLI's filtered dump.
    let cli = ["-s", "10.4.0.1", "-p", "tcp", "--sport", "4001"];
    ns.expect_ok(&[&["conntrack", "-U"][..], &cli, &["-m", "3"]].concat());
    h.batch_raw(ReqKind::CT_DELETE, &[ours], |f, r| f.emit_key(r))
        .unwrap();
    ns.expect_ok(&[&["conntrack", "-D"][..], &cli].concat());
    let got = collect(&mut ev, 4);
    let kinds: Vec<(EventKind, u16)> = got.iter().map(|e| (e.0, e.2.3)).collect();
    assert_eq!(
        kinds,
        [
            (EventKind::CtUpdate, 4000),
            (EventKind::CtUpdate, 4001),
            (EventKind::CtDestroy, 4000),
            (EventKind::CtDestroy, 4001),
        ]
    );
    assert_eq!(got[0].1, h.port_id());
    assert_eq!(got[2].1, h.port_id());
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
        let flows: Vec<Flow> = (0..500)
            .map(|i| Flow::tcp4([10, 5, round as u8, 1], [10, 5, 0, 2], 1000 + i, 80))
            .collect();
        let r = h
            .batch_raw(ReqKind::CT_CREATE, &flows, |f, r| f.emit_full(r))
            .unwrap();
        assert!(r.all_ok());
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
    let flows: Vec<Flow> = (0..500)
        .map(|i| Flow::tcp4([10, 5, 9, 1], [10, 5, 0, 2], 1000 + i, 80))
        .collect();
    h.batch_raw(ReqKind::CT_CREATE, &flows, |f, r| f.emit_full(r))
        .unwrap();
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
        tcp_states: Some(vec![TCP_CONNTRACK_ESTABLISHED]),
    })
    .unwrap();
    let mut h = handle(&ns);
    let pass = Flow::tcp4([10, 6, 0, 1], [10, 6, 0, 2], 1, 80);
    let mut udp = Flow::tcp4([10, 6, 0, 1], [10, 6, 0, 2], 2, 53);
    udp.proto = IPPROTO_UDP;
    let src_ignored = Flow::tcp4([10, 66, 1, 1], [10, 6, 0, 2], 3, 80);
    let dst_ignored = Flow::tcp4([10, 6, 0, 1], [10, 66, 2, 2], 4, 80);
    let mut syn_sent = Flow::tcp4([10, 6, 0, 1], [10, 6, 0, 2], 5, 80);
    syn_sent.state = TCP_CONNTRACK_SYN_SENT;
    let mut v6_pass = Flow::tcp4([0; 4], [0; 4], 6, 80);
    v6_pass.src = "fd00:6::1".parse().unwrap();
    v6_pass.dst = "fd00:6::2".parse().unwrap();
    let mut v6_ignored = v6_pass;
    v6_ignored.sport = 7;
    v6_ignored.dst = "fd00:66:1::2".parse().unwrap();
    let all = [
        pass,
        udp,
        src_ignored,
        dst_ignored,
        syn_sent,
        v6_pass,
        v6_ignored,
    ];
    let r = h
        .batch_raw(ReqKind::CT_CREATE, &all, |f, r| f.emit_full(r))
        .unwrap();
    assert!(r.all_ok(), "{:?}", r.errors);
    assert_eq!(ct_count(&ns), 7);
    let got = collect(&mut ev, 3);
    let sports: HashSet<u16> = got.iter().map(|e| e.2.3).collect();
    assert_eq!(sports, HashSet::from([1, 6]), "{got:?}");

    // An Accept filter on the other hand lets only the listed network through.
    ev.set_filter(&KernelFilter {
        v4: Some((Policy::Accept, vec![(Ipv4Addr::new(10, 66, 0, 0), 16)])),
        ..KernelFilter::default()
    })
    .unwrap();
    h.batch_raw(ReqKind::CT_DELETE, &all, |f, r| f.emit_key(r))
        .unwrap();
    let got = collect(&mut ev, 7);
    let sports: HashSet<u16> = got.iter().map(|e| e.2.3).collect();
    // IPv4: both original addresses in 10.66/16 — none of our flows; IPv6 skips IPv4 stages.
    assert_eq!(sports, HashSet::from([6, 7]), "{got:?}");
}

#[test]
fn nl_dump_100k_entries() {
    const N: usize = 100_000;
    let _max = Sysctl::set("net.netfilter.nf_conntrack_max", "400000");
    let ns = ct_ns("nl100k");
    let mut h = handle(&ns);
    let flows: Vec<Flow> = (0..N)
        .map(|i| {
            let i = i as u32;
            Flow::tcp4(
                [10, 7, (i >> 16) as u8, 1],
                [10, 7, 0, 2],
                (i & 0xffff) as u16,
                80,
            )
        })
        .collect();
    let t = Instant::now();
    let r = h
        .batch_raw(ReqKind::CT_CREATE, &flows, |f, r| f.emit_full(r))
        .unwrap();
    let create = t.elapsed();
    assert_eq!((r.ok, r.errors.len()), (N, 0));
    let t = Instant::now();
    let mut n = 0usize;
    let seen = h
        .dump_raw(CT_GET, AF_UNSPEC, "dump", |_| {}, |_| n += 1)
        .unwrap();
    let dump = t.elapsed();
    assert_eq!((n, seen), (N, N));
    println!(
        "100k: create {:.0} entries/s ({create:?}), dump {:.0} entries/s ({dump:?})",
        N as f64 / create.as_secs_f64(),
        N as f64 / dump.as_secs_f64()
    );
    h.flush_conntracks(AF_UNSPEC).unwrap();
    assert_eq!(ct_count(&ns), 0);
}

#[test]
fn nl_created_entry_matches_cli_listing() {
    let ns = ct_ns("nlcl");
    let mut h = handle(&ns);
    let mut f = Flow::tcp4([10, 8, 0, 1], [10, 8, 0, 2], 40000, 443);
    f.mark = 0x1234;
    f.zone = 7;
    f.timeout = 3600;
    assert!(
        h.batch_raw(ReqKind::CT_CREATE, &[f], |f, r| f.emit_full(r))
            .unwrap()
            .all_ok()
    );
    let l = ct_list(&ns);
    assert_eq!(l.len(), 1, "{l:?}");
    let line = &l[0];
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
}
