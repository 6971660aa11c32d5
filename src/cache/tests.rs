//! Cache tests: golden conversions against the captured 1.4.7 messages
//! (`shared/reference/test-vectors/vectors.txt`; the kernel entries behind them were made
//! with `conntrack -I`, see its README), round trips, cache rules and a seeded
//! property test.

use std::net::IpAddr;

use super::convert::*;
use super::entry::{CtAttrs, Obj, ObjStatus};
use super::exp::*;
use super::*;
use crate::netlink::consts::*;
use crate::netlink::ct::{Conntrack, NatRange, SeqAdj, Synproxy as KSynproxy};
use crate::netlink::exp::Expectation;
use crate::netlink::name::HelperName;
use crate::netlink::protoinfo::{ProtoInfo, SctpInfo, TcpFlags, TcpInfo};
use crate::netlink::tuple::{L4, Tuple};
use crate::wire::ct::Repr;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tuple(src: &str, dst: &str, proto: u8, l4: L4) -> Tuple {
    let mut t = Tuple::new(ip(src), ip(dst), proto);
    t.l4 = l4;
    t
}

fn ports(sport: u16, dport: u16) -> L4 {
    L4::Ports { sport, dport }
}

fn tcp_info(state: u8) -> Option<ProtoInfo> {
    Some(ProtoInfo::Tcp(TcpInfo {
        state: Some(state),
        wscale_orig: Some(7),
        wscale_reply: Some(7),
        flags_orig: Some(TcpFlags {
            flags: 0x23,
            mask: 0x23,
        }),
        flags_reply: Some(TcpFlags {
            flags: 0x23,
            mask: 0x23,
        }),
    }))
}

/// A kernel entry made by `conntrack -I` and reported back by an event: mark 0, zeroed
/// synproxy (wire-protocol.md §6.2 #12).
fn inserted(orig: Tuple, reply: Tuple, status: u32, timeout: u32) -> Conntrack {
    let mut ct = Conntrack::new(orig.family(), orig);
    ct.reply = Some(reply);
    ct.status = Some(status);
    ct.timeout = Some(timeout);
    ct.mark = Some(0);
    ct.synproxy = Some(KSynproxy::default());
    ct.id = Some(12345);
    ct
}

/// Emits `ct` as the 1.4.7 sender would and compares with the captured message body.
fn golden(ct: &Conntrack, p: &SendPolicy, body_hex: &str) {
    let want = unhex(body_hex);
    let r = wire_from_kernel(ct, p);
    let mut buf = vec![0u8; r.buffer_len()];
    let n = r.emit(&mut buf);
    assert_eq!(hex(&buf[..n]), hex(&want), "{r:#?}");
    // And field by field against the parsed capture.
    assert_eq!(r, Repr::parse(&want).unwrap());
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const P: SendPolicy = SendPolicy {
    tcp_window_tracking: false,
    commit_timeout: 0,
};

#[test]
fn test_golden_snat_ipv4() {
    // ftfw-multicast #119: conntrack -I ... --src-nat 203.0.113.5:50000
    let o = tuple("192.0.2.16", "198.51.100.26", 6, ports(40003, 80));
    let r = tuple("198.51.100.26", "203.0.113.5", 6, ports(80, 50000));
    let mut ct = inserted(o, r, 0x19e, 120);
    ct.protoinfo = tcp_info(3);
    golden(
        &ct,
        &P,
        "000c0000c0000210c633641a000800050000019e0005000206000000000800039c4300500005000403000000000800060000007800080007000000000008000ccb0071050006000e50c300000010001f000000000000000000000000",
    );
}

#[test]
fn test_golden_dnat_ipv4() {
    // ftfw-multicast #120: DNAT to 203.0.113.9:8080.
    let o = tuple("192.0.2.17", "198.51.100.27", 6, ports(40004, 80));
    let r = tuple("203.0.113.9", "192.0.2.17", 6, ports(8080, 40004));
    let mut ct = inserted(o, r, 0x1a8, 120);
    ct.protoinfo = tcp_info(3);
    golden(
        &ct,
        &P,
        "000c0000c0000211c633641b00080005000001a80005000206000000000800039c4400500005000403000000000800060000007800080007000000000008000dcb0071090006000f901f00000010001f000000000000000000000000",
    );
}

#[test]
fn test_golden_snat_ipv6() {
    // ftfw-multicast #121: IPv6 SNAT to [2001:db8::99]:50001 (NTA_SNAT_IPV6, 1.4.7 only).
    let o = tuple("2001:db8::10", "2001:db8::20", 6, ports(40005, 80));
    let r = tuple("2001:db8::20", "2001:db8::99", 6, ports(80, 50001));
    let mut ct = inserted(o, r, 0x198, 120);
    ct.protoinfo = tcp_info(3);
    golden(
        &ct,
        &P,
        "0024000120010db800000000000000000000001020010db800000000000000000000002000080005000001980005000206000000000800039c4500500005000403000000000800060000007800080007000000000014001d20010db80000000000000000000000990006000e51c300000010001f000000000000000000000000",
    );
}

#[test]
fn test_golden_icmpv6_and_icmp() {
    // ftfw-multicast #122: ICMPv6 echo request, id 4661.
    let icmp6 = |ty| L4::Icmpv6 {
        ty,
        code: 0,
        id: 4661,
    };
    let o = tuple("2001:db8::1", "2001:db8::3", 58, icmp6(128));
    let r = tuple("2001:db8::3", "2001:db8::1", 58, icmp6(129));
    golden(
        &inserted(o, r, 8, 30),
        &P,
        "0024000120010db80000000000000000000000012001\
0db80000000000000000000000030008000500000008000500023a000000000500168000000000050017000000000006001835120000000800060000001e00080007000000000010001f000000000000000000000000",
    );
    // #155 @1028: ICMP echo request, id 4660.
    let icmp = |ty| L4::Icmp {
        ty,
        code: 0,
        id: 4660,
    };
    let o = tuple("192.0.2.12", "198.51.100.22", 1, icmp(8));
    let r = tuple("198.51.100.22", "192.0.2.12", 1, icmp(0));
    golden(
        &inserted(o, r, 8, 30),
        &P,
        "000c0000c000020cc633641600080005000000080005000201000000000500160800000000050017000000000006001834120000000800060000001e00080007000000000010001f000000000000000000000000",
    );
}

#[test]
fn test_golden_sctp_and_zone() {
    // #155 @184: SCTP, state 4, zero vtags.
    let o = tuple("192.0.2.13", "198.51.100.23", 132, ports(2905, 2906));
    let r = tuple("198.51.100.23", "192.0.2.13", 132, ports(2906, 2905));
    let mut ct = inserted(o, r, 8, 100);
    ct.protoinfo = Some(ProtoInfo::Sctp(SctpInfo {
        state: Some(4),
        vtag_orig: Some(0),
        vtag_reply: Some(0),
    }));
    golden(
        &ct,
        &P,
        "000c0000c000020dc633641700080005000000080005000284000000000800030b590b5a000500110400000000080012000000000008001300000000000800060000006400080007000000000010001f000000000000000000000000",
    );
    // #155 @284: TCP in zone 5 (NTA_ZONE last).
    let o = tuple("192.0.2.15", "198.51.100.25", 6, ports(40002, 8080));
    let r = tuple("198.51.100.25", "192.0.2.15", 6, ports(8080, 40002));
    let mut ct = inserted(o, r, 8, 120);
    ct.protoinfo = tcp_info(3);
    ct.zone = Some(5);
    golden(
        &ct,
        &P,
        "000c0000c000020fc633641900080005000000080005000206000000000800039c421f900005000403000000000800060000007800080007000000000010001f0000000000000000000000000006002000050000",
    );
}

#[test]
fn test_golden_helper_packet_flow() {
    // #319: a real FTP control flow (packet-created: no mark, no synproxy), helper ftp.
    let o = tuple("127.0.0.1", "127.0.0.1", 6, ports(45000, 21));
    let r = tuple("127.0.0.1", "127.0.0.1", 6, ports(21, 45000));
    let mut ct = Conntrack::new(AF_INET, o);
    ct.reply = Some(r);
    ct.status = Some(0x200e);
    ct.timeout = Some(432000);
    ct.protoinfo = tcp_info(3);
    ct.helper = Some(HelperName::try_from("ftp").unwrap());
    golden(
        &ct,
        &P,
        "000c00007f0000017f000001000800050000200e000500020600000000080003afc80015000500040300000000080006000697800008001b66747000",
    );
}

#[test]
fn test_golden_wscale_and_labels() {
    // notrack-wscale-udp #4: TCPWindowTracking on → WSCALE_ORIG/REPL; packet flow.
    let o = tuple("10.232.0.1", "10.232.0.2", 6, ports(46000, 8000));
    let r = tuple("10.232.0.2", "10.232.0.1", 6, ports(8000, 46000));
    let mut ct = Conntrack::new(AF_INET, o);
    ct.reply = Some(r);
    ct.status = Some(0xe);
    ct.timeout = Some(432000);
    ct.protoinfo = Some(ProtoInfo::Tcp(TcpInfo {
        state: Some(3),
        wscale_orig: Some(10),
        wscale_reply: Some(10),
        ..TcpInfo::default()
    }));
    let on = SendPolicy {
        tcp_window_tracking: true,
        commit_timeout: 0,
    };
    golden(
        &ct,
        &on,
        "000c00000ae800010ae80002000800050000000e000500020600000000080003b3b01f400005000403000000000500190a0000000005001a0a0000000008000600069780",
    );
    // ftfw-labels #14: labels 0 and 33 (kernel bitmap, little-endian unsigned longs).
    let o = tuple("192.0.2.90", "198.51.100.90", 6, ports(48000, 80));
    let r = tuple("198.51.100.90", "192.0.2.90", 6, ports(80, 48000));
    let mut ct = inserted(o, r, 8, 299);
    ct.protoinfo = tcp_info(3);
    let mut bitmap = [0u8; 16];
    bitmap[0] = 1;
    bitmap[4] = 2;
    if cfg!(target_endian = "little") {
        ct.labels = Some(bitmap);
        golden(
            &ct,
            &P,
            "000c0000c000025ac633645a0008000500000008000500020600000000080003bb8000500005000403000000000800060000012b00080007000000000014001c000000010000000200000000000000000010001f000000000000000000000000",
        );
    }
}

#[test]
fn test_golden_expectation() {
    // #320: FTP expectation for 127.0.0.1:50000.
    let master = tuple("127.0.0.1", "127.0.0.1", 6, ports(45000, 21));
    let t = tuple("127.0.0.1", "127.0.0.1", 6, ports(0, 50000));
    let mask = tuple("255.255.255.255", "255.255.255.255", 6, ports(0, 65535));
    let mut e = Expectation::new(AF_INET, master, t, mask);
    e.timeout = Some(300);
    e.flags = Some(0);
    e.class = Some(0);
    e.id = Some(99);
    e.helper = Some(HelperName::try_from("ftp").unwrap());
    let r = exp_wire_from_kernel(&e, &P);
    let want = unhex(
        "000c00007f0000017f000001000500020600000000080003afc80015000c00047f0000017f0000010005000606000000000800070000c350000c0008ffffffffffffffff0005000a060000000008000b0000ffff0008000c0000012c0008000d000000000008000e000000000008001366747000",
    );
    let mut buf = vec![0u8; r.buffer_len()];
    let n = r.emit(&mut buf);
    assert_eq!(hex(&buf[..n]), hex(&want));
    // Back to the kernel: the same expectation (minus the read-only id).
    let k = exp_kernel_from_wire(&r, 100, 100, &CommitPolicy::default()).unwrap();
    assert_eq!(k, Expectation { id: None, ..e });
    // The key from both sides agrees.
    assert_eq!(ExpKey::from_expectation(&e), ExpKey::from_wire(&r).unwrap());
}

#[test]
fn test_send_policy_commit_timeout_and_dccp_ports() {
    let o = tuple("192.0.2.14", "198.51.100.24", 33, L4::None);
    let r = tuple("198.51.100.24", "192.0.2.14", 33, L4::None);
    let ct = inserted(o, r, 8, 100);
    let p = SendPolicy {
        tcp_window_tracking: false,
        commit_timeout: 180,
    };
    let w = wire_from_kernel(&ct, &p);
    assert_eq!(w.timeout, None);
    // C leaks stale bytes here (wire-protocol.md §6.2 †); we send zeros.
    assert_eq!(w.ports, Some(crate::wire::tuple::Ports::default()));
    let mut stored = wire_from_kernel(&ct, &SendPolicy::KEEP_ALL);
    apply_send_policy(&mut stored, &p);
    assert_eq!(stored, w);
}

#[test]
fn test_commit_snat_request() {
    let o = tuple("192.0.2.16", "198.51.100.26", 6, ports(40003, 80));
    let r = tuple("198.51.100.26", "203.0.113.5", 6, ports(80, 50000));
    let mut ct = inserted(o, r, 0x19f, 120);
    ct.protoinfo = tcp_info(3);
    let w = wire_from_kernel(&ct, &P);
    let k = kernel_from_wire(&w, 1010, 1000, &CommitPolicy::default()).unwrap();
    // Mirrored reply, NAT as a request, EXPECTED cleared, CONFIRMED set, aged timeout.
    assert_eq!(
        k.reply,
        Some(tuple("198.51.100.26", "192.0.2.16", 6, ports(80, 40003)))
    );
    let nat = NatRange {
        min_ip: Some(ip("203.0.113.5")),
        max_ip: Some(ip("203.0.113.5")),
        min_port: Some(50000),
        max_port: Some(50000),
    };
    assert_eq!(k.nat_src, Some(nat));
    assert_eq!(k.nat_dst, None);
    assert_eq!(k.status, Some((0x19f & !IPS_EXPECTED) | IPS_CONFIRMED));
    assert_eq!(k.timeout, Some(110));
    let liberal = TcpFlags { flags: 8, mask: 8 };
    assert_eq!(
        k.protoinfo,
        Some(ProtoInfo::Tcp(TcpInfo {
            state: Some(3),
            flags_orig: Some(liberal),
            flags_reply: Some(liberal),
            ..TcpInfo::default()
        }))
    );
    // Inject update: no NAT, no NAT status bits, message timeout as is.
    let up = CommitPolicy {
        kind: CommitKind::InjectUpdate,
        ..CommitPolicy::default()
    };
    let k = kernel_from_wire(&w, 5000, 0, &up).unwrap();
    assert_eq!((k.nat_src, k.timeout), (None, Some(120)));
    assert_eq!(k.status.unwrap() & IPS_NAT_MASK, 0);
}

#[test]
fn test_commit_timeout_rule() {
    let w = Repr {
        timeout: Some(100),
        ..Repr::default()
    };
    let c = CommitPolicy::default();
    assert_eq!(commit_timeout(&w, 130, 100, &c), Some(70));
    // Exactly 0 left: not overridden, the message's timeout stays (C: `if (timeout > 0)`).
    assert_eq!(commit_timeout(&w, 200, 100, &c), Some(100));
    assert_eq!(
        commit_timeout(&w, 201, 100, &c),
        Some(EXPIRED_COMMIT_TIMEOUT)
    );
    // Clock went backwards: the age counts as 60 s.
    assert_eq!(commit_timeout(&w, 50, 100, &c), Some(40));
    let short = Repr {
        timeout: Some(30),
        ..w
    };
    assert_eq!(
        commit_timeout(&short, 50, 100, &c),
        Some(EXPIRED_COMMIT_TIMEOUT)
    );
    let fixed = CommitPolicy {
        commit_timeout: 180,
        ..c
    };
    assert_eq!(commit_timeout(&w, 999, 0, &fixed), Some(180));
    // No timeout in the message: 0 - age is negative.
    assert_eq!(commit_timeout(&Repr::default(), 1, 0, &c), Some(60));
    assert_eq!(commit_timeout(&Repr::default(), 0, 0, &c), None);
}

#[test]
fn test_icmp_reply_type() {
    assert_eq!(icmp_reply_type(false, 8), 0);
    assert_eq!(icmp_reply_type(false, 13), 14);
    assert_eq!(icmp_reply_type(true, 128), 129);
    assert_eq!(icmp_reply_type(false, 3), 255);
}

#[test]
fn test_labels_bitmap() {
    let mut b = [0u8; 16];
    b[0] = 1;
    b[4] = 2;
    b[15] = 0x80;
    let l = labels_from_kernel(&b);
    if cfg!(target_endian = "little") {
        assert!(l.get(0) && l.get(33) && l.get(127));
        assert!(!l.get(1));
    }
    assert_eq!(labels_to_kernel(&l), b);
}

/// Everything a kernel CREATE needs survives kernel → wire → cache → kernel.
#[test]
fn test_roundtrip_kernel_wire_kernel() {
    let mut rng = Rng(7);
    for _ in 0..2000 {
        let ct = random_ct(&mut rng);
        let w = wire_from_kernel(&ct, &SendPolicy::KEEP_ALL);
        let key = CtKey::from_wire(&w).unwrap();
        assert_eq!(key, CtKey::from_conntrack(&ct));
        // Through the compact cache entry.
        let w2 = CtAttrs::pack(&w).unpack(&key);
        assert_eq!(w2, w);
        let pol = CommitPolicy {
            tcp_window_tracking: true,
            kind: CommitKind::InjectCreate,
            ..CommitPolicy::default()
        };
        let k = kernel_from_wire(&w2, 0, 0, &pol).unwrap();
        assert_eq!(k.orig, ct.orig);
        assert_eq!(
            k.status,
            Some(ct.status.unwrap() & !IPS_EXPECTED | IPS_CONFIRMED)
        );
        assert_eq!(
            (k.timeout, k.mark, k.zone, k.labels, k.helper),
            (ct.timeout, ct.mark, ct.zone, ct.labels, ct.helper)
        );
        assert_eq!(
            (k.seq_adj_orig, k.seq_adj_reply),
            (ct.seq_adj_orig, ct.seq_adj_reply)
        );
        assert_eq!(k.synproxy, ct.synproxy);
        assert_eq!(k.master, ct.master);
        // The NAT request reproduces the reply tuple's translated address.
        let rep = ct.reply.unwrap();
        if ct.status.unwrap() & IPS_SRC_NAT_DONE != 0 && rep.dst != ct.orig.src {
            assert_eq!(k.nat_src.unwrap().min_ip, Some(rep.dst));
        }
        if ct.status.unwrap() & IPS_DST_NAT_DONE != 0 && rep.src != ct.orig.dst {
            assert_eq!(k.nat_dst.unwrap().min_ip, Some(rep.src));
        }
        // And the wire form of the re-created entry says the same (minus what the kernel
        // adds itself).
        let again = wire_from_kernel(&k, &SendPolicy::KEEP_ALL);
        assert_eq!(again.addrs, w.addrs);
        assert_eq!(again.tcp_state, w.tcp_state);
        assert_eq!(again.sctp_state, w.sctp_state);
    }
}

/// Tiny xorshift PRNG: deterministic, no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

fn random_ct(g: &mut Rng) -> Conntrack {
    let v6 = g.below(4) == 0;
    let a = |g: &mut Rng| -> IpAddr {
        if v6 {
            IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, g.below(8) as u16])
        } else {
            IpAddr::from([192, 0, 2, g.below(8) as u8])
        }
    };
    let proto = [6u8, 17, 132, 33, 1, 47][g.below(6) as usize];
    let proto = if proto == 1 && v6 { 58 } else { proto };
    let (l4, rl4) = match proto {
        1 => (
            L4::Icmp {
                ty: 8,
                code: 0,
                id: g.below(9) as u16,
            },
            L4::Icmp {
                ty: 0,
                code: 0,
                id: 0,
            },
        ),
        58 => (
            L4::Icmpv6 {
                ty: 128,
                code: 0,
                id: g.below(9) as u16,
            },
            L4::Icmpv6 {
                ty: 129,
                code: 0,
                id: 0,
            },
        ),
        47 => (L4::None, L4::None),
        _ => {
            let (s, d) = (g.below(4) as u16 + 1000, g.below(4) as u16 + 80);
            (ports(s, d), ports(d, s))
        }
    };
    let mut o = Tuple::new(a(g), a(g), proto);
    o.l4 = l4;
    let mut r = Tuple::new(o.dst, o.src, proto);
    r.l4 = rl4;
    let mut status = (g.next() as u32) & 0x3fff;
    if g.coin() {
        r.dst = a(g);
        if let (L4::Ports { .. }, true) = (r.l4, g.coin()) {
            r.l4 = ports(o.l4_dport(), 40000 + g.below(3) as u16);
        }
    }
    if g.coin() {
        status |= IPS_DST_NAT_DONE;
    }
    let mut ct = inserted(o, r, status, g.below(500) as u32);
    ct.mark = g.coin().then(|| g.next() as u32);
    ct.zone = g.coin().then(|| g.below(3) as u16 + 1);
    ct.protoinfo = match proto {
        6 => tcp_info(g.below(10) as u8),
        132 => Some(ProtoInfo::Sctp(SctpInfo {
            state: Some(g.below(8) as u8),
            vtag_orig: Some(g.next() as u32),
            vtag_reply: Some(g.next() as u32),
        })),
        _ => None,
    };
    if g.below(5) == 0 {
        ct.helper = Some(HelperName::try_from("ftp").unwrap());
    }
    if g.below(5) == 0 {
        let mut l = [0u8; 16];
        l[g.below(16) as usize] = 1 << g.below(8);
        ct.labels = Some(l);
    }
    if g.below(5) == 0 {
        ct.master = Some(tuple("10.0.0.1", "10.0.0.2", 6, ports(1, 21)));
    }
    if g.below(5) == 0 {
        let s = |g: &mut Rng| SeqAdj {
            correction_pos: g.next() as u32,
            offset_before: g.next() as u32,
            offset_after: g.next() as u32,
        };
        ct.seq_adj_orig = Some(s(g));
        ct.seq_adj_reply = Some(s(g));
    }
    if g.below(4) == 0 {
        ct.synproxy = Some(KSynproxy {
            isn: 1,
            its: 2,
            tsoff: 3,
        });
    } else if g.coin() {
        ct.synproxy = None;
    }
    ct
}

trait Dport {
    fn l4_dport(&self) -> u16;
}

impl Dport for Tuple {
    fn l4_dport(&self) -> u16 {
        match self.l4 {
            L4::Ports { dport, .. } => dport,
            _ => 0,
        }
    }
}

fn msg(g: &mut Rng) -> (CtKey, Repr) {
    let ct = random_ct(g);
    let w = wire_from_kernel(&ct, &SendPolicy::KEEP_ALL);
    (CtKey::from_wire(&w).unwrap(), w)
}

#[test]
fn test_entry_size() {
    let bucket = size_of::<(CtKey, Obj<CtAttrs>)>();
    // Keep the bucket small: see entry.rs for the budget (≤ ~230 bytes incl. table).
    assert!(size_of::<CtAttrs>() <= 32, "{}", size_of::<CtAttrs>());
    assert!(bucket <= 88, "{bucket}");
}

#[test]
fn test_internal_origin_rules() {
    let mut g = Rng(11);
    let (k, w) = msg(&mut g);
    let mut c = InternalCache::new(100, 16);
    use KernelEvent::*;
    assert_eq!(
        c.handle_kernel(1, Origin::Inject, New, k, &w),
        Outcome::Ignored
    );
    assert!(c.is_empty());
    assert_eq!(
        c.handle_kernel(1, Origin::NotMe, New, k, &w),
        Outcome::Applied { enqueue: true }
    );
    // Collapse: already queued.
    assert_eq!(
        c.handle_kernel(2, Origin::NotMe, Update, k, &w),
        Outcome::Applied { enqueue: false }
    );
    // Sent as UPD: status at transmission time.
    assert_eq!(c.take_for_tx(&k).unwrap().0, ObjStatus::Alive);
    assert_eq!(
        c.handle_kernel(3, Origin::NotMe, Destroy, k, &w),
        Outcome::Applied { enqueue: true }
    );
    assert_eq!(c.stats().active, 0);
    assert_eq!(c.stats().objects, 1);
    assert_eq!(c.take_for_tx(&k).unwrap().0, ObjStatus::Dead);
    assert!(c.remove_if_dead(&k));
    assert!(c.is_empty());
    // Destroy of an unknown object: ignored.
    assert_eq!(
        c.handle_kernel(4, Origin::NotMe, Destroy, k, &w),
        Outcome::Ignored
    );
    // Commit origin: applied, not replicated; flush destroy: gone at once.
    assert_eq!(
        c.handle_kernel(5, Origin::Commit, New, k, &w),
        Outcome::Applied { enqueue: false }
    );
    assert_eq!(
        c.handle_kernel(6, Origin::Flush, Destroy, k, &w),
        Outcome::Applied { enqueue: false }
    );
    assert!(c.is_empty());
    let s = c.stats();
    assert_eq!((s.add_ok, s.upd_ok, s.del_ok), (2, 1, 2));
}

#[test]
fn test_internal_dead_then_new() {
    let mut g = Rng(12);
    let (k, w) = msg(&mut g);
    let mut c = InternalCache::new(100, 16);
    let _ = c.handle_kernel(1, Origin::NotMe, KernelEvent::New, k, &w);
    let _ = c.handle_kernel(2, Origin::NotMe, KernelEvent::Destroy, k, &w);
    // Same flow again before the DEL went out: one queue entry, now a NEW object.
    assert_eq!(
        c.handle_kernel(3, Origin::NotMe, KernelEvent::New, k, &w),
        Outcome::Applied { enqueue: false }
    );
    let o = c.get(&k).unwrap();
    assert_eq!((o.meta.status, o.meta.created), (ObjStatus::New, 3));
    assert!(o.meta.queued());
}

#[test]
fn test_hash_limit() {
    let mut g = Rng(13);
    let mut c = InternalCache::new(2, 4);
    let mut outcomes = vec![];
    let mut keys = vec![];
    while keys.len() < 4 {
        let (k, w) = msg(&mut g);
        if keys.contains(&k) {
            continue;
        }
        keys.push(k);
        outcomes.push(c.handle_kernel(1, Origin::NotMe, KernelEvent::New, k, &w));
    }
    assert_eq!(outcomes[2], Outcome::Full { first: true });
    assert_eq!(outcomes[3], Outcome::Full { first: false });
    let s = c.stats();
    assert_eq!(
        (s.add_ok, s.add_fail, s.add_fail_nospace, s.objects),
        (2, 2, 2, 2)
    );
}

#[test]
fn test_external_new_upd_del() {
    let mut g = Rng(14);
    let (k, w) = msg(&mut g);
    let mut c = ExternalCache::new(100, 16);
    assert_eq!(
        c.handle_peer(1, PeerMsg::Update, k, &w),
        Outcome::Applied { enqueue: false }
    );
    // Merge: only the mark changes, the rest is kept.
    // An update carrying the identity and a new mark only.
    let upd = Repr {
        addrs: w.addrs,
        l4proto: w.l4proto,
        ports: w.ports,
        icmp_type: w.icmp_type,
        icmp_code: w.icmp_code,
        icmp_id: w.icmp_id,
        zone: w.zone,
        mark: Some(9),
        ..Repr::default()
    };
    let _ = c.handle_peer(5, PeerMsg::Update, k, &upd);
    let o = c.get(&k).unwrap();
    let got = o.val.unpack(&k);
    assert_eq!(got, Repr { mark: Some(9), ..w });
    assert_eq!((o.meta.created, o.meta.updated), (1, 5));
    // NEW replaces: fresh object, counted as a deletion.
    let _ = c.handle_peer(7, PeerMsg::New, k, &w);
    assert_eq!(c.get(&k).unwrap().meta.created, 7);
    assert_eq!(c.get(&k).unwrap().val.unpack(&k), w);
    assert_eq!(
        c.handle_peer(8, PeerMsg::Delete, k, &w),
        Outcome::Applied { enqueue: false }
    );
    assert_eq!(c.handle_peer(8, PeerMsg::Delete, k, &w), Outcome::Ignored);
    let s = c.stats();
    assert_eq!((s.add_ok, s.upd_ok, s.del_ok, s.objects), (2, 1, 2, 0));
}

#[test]
fn test_commit_order_related_last() {
    let mut g = Rng(15);
    let mut c = ExternalCache::new(1000, 16);
    for _ in 0..300 {
        let (k, w) = msg(&mut g);
        let _ = c.handle_peer(1, PeerMsg::New, k, &w);
    }
    let related: Vec<bool> = c
        .commit_order()
        .map(|(_, r, _)| r.master_addrs.is_some() && r.master_ports.is_some())
        .collect();
    assert_eq!(related.len(), c.len());
    let first = related.iter().position(|&r| r).unwrap();
    assert!(related[first..].iter().all(|&r| r));
}

/// Random event/message sequences keep the cache invariants.
#[test]
fn test_property_random_sequences() {
    let mut g = Rng(0x5eed);
    let mut flows: Vec<(CtKey, Repr)> = (0..40).map(|_| msg(&mut g)).collect();
    flows.sort_by_key(|f| f.0);
    flows.dedup_by_key(|f| f.0);
    let mut ic = InternalCache::new(30, 8);
    let mut ec = ExternalCache::new(30, 8);
    let mut queue: Vec<CtKey> = vec![];
    let mut held: Vec<CtKey> = vec![];
    for step in 0..20_000u32 {
        let (k, w) = flows[g.below(flows.len() as u64) as usize];
        let origin = [
            Origin::NotMe,
            Origin::NotMe,
            Origin::Commit,
            Origin::Flush,
            Origin::Inject,
        ][g.below(5) as usize];
        let ev = [KernelEvent::New, KernelEvent::Update, KernelEvent::Destroy][g.below(3) as usize];
        if let Outcome::Applied { enqueue: true } = ic.handle_kernel(step, origin, ev, k, &w) {
            assert!(!queue.contains(&k), "queued twice");
            queue.push(k);
        }
        let pm = [PeerMsg::New, PeerMsg::Update, PeerMsg::Delete][g.below(3) as usize];
        let _ = ec.handle_peer(step, pm, k, &w);
        if g.below(4) == 0 && !queue.is_empty() {
            let k = queue.remove(0);
            if let Some((st, r)) = ic.take_for_tx(&k) {
                assert_eq!(CtKey::from_wire(&r), Some(k));
                if g.coin() {
                    // FTFW: held until acknowledged.
                    ic.hold(&k);
                    if !held.contains(&k) {
                        held.push(k);
                    }
                } else if st == ObjStatus::Dead && !ic.get(&k).unwrap().meta.held() {
                    ic.remove_if_dead(&k);
                }
            }
        }
        if g.below(5) == 0 && !held.is_empty() {
            let k = held.remove(g.below(held.len() as u64) as usize);
            ic.release(&k);
        }
        if g.below(50) == 0 {
            ic.purge_dead();
        }
        // Invariants.
        let s = ic.stats();
        assert!(ic.len() <= 30 && ec.len() <= 30);
        let dead = ic
            .iter()
            .filter(|(_, o)| o.meta.status == ObjStatus::Dead)
            .count() as u64;
        assert_eq!(s.objects - s.active, dead);
        let queued = ic.iter().filter(|(_, o)| o.meta.queued()).count();
        assert!(queued <= queue.len());
        for (qk, o) in ic.iter() {
            if o.meta.queued() {
                assert!(queue.contains(qk));
            }
            if o.meta.held() {
                assert!(held.contains(qk));
            }
            // Dead objects are only kept while a DEL is pending.
            if o.meta.status == ObjStatus::Dead {
                assert!(o.meta.queued() || o.meta.held());
            }
            assert!(o.meta.created <= o.meta.updated);
        }
        let es = ec.stats();
        assert_eq!(es.objects as usize, ec.len());
        assert_eq!(es.add_ok - es.del_ok, es.objects);
    }
}

#[test]
fn test_print_sizes() {
    println!(
        "CtKey {} CtAttrs {} Obj<CtAttrs> {} bucket {} Extra {} Conntrack {} Repr {}",
        size_of::<CtKey>(),
        size_of::<CtAttrs>(),
        size_of::<Obj<CtAttrs>>(),
        size_of::<(CtKey, Obj<CtAttrs>)>(),
        size_of::<entry::Extra>(),
        size_of::<Conntrack>(),
        size_of::<Repr>()
    );
}

#[test]
fn test_internal_new_replaces_live_object() {
    // 1.4.7 internal cache: a NEW event for a known flow deletes it and adds a fresh object.
    let mut g = Rng(16);
    let (k, w) = msg(&mut g);
    let mut c = InternalCache::new(100, 16);
    let _ = c.handle_kernel(1, Origin::NotMe, KernelEvent::New, k, &w);
    let _ = c.handle_kernel(2, Origin::NotMe, KernelEvent::Update, k, &w);
    assert_eq!(c.get(&k).unwrap().meta.status, ObjStatus::Alive);
    let fresh = Repr { mark: None, ..w };
    assert_eq!(
        c.handle_kernel(3, Origin::NotMe, KernelEvent::New, k, &fresh),
        Outcome::Applied { enqueue: false }
    );
    let o = c.get(&k).unwrap();
    assert_eq!((o.meta.status, o.meta.created), (ObjStatus::New, 3));
    // Replaced, not merged: the old mark is gone.
    assert_eq!(o.val.unpack(&k).mark, None);
    let s = c.stats();
    assert_eq!((s.add_ok, s.upd_ok, s.del_ok, s.active), (2, 1, 1, 1));
}

#[test]
fn test_icmp_nat_sends_raw_union_ports() {
    // The library compares the raw L4 unions, so a masqueraded ping carries SPAT.
    let icmp = |ty, id| L4::Icmp { ty, code: 0, id };
    let o = tuple("192.0.2.1", "198.51.100.1", 1, icmp(8, 77));
    let r = tuple("198.51.100.1", "203.0.113.5", 1, icmp(0, 77));
    let ct = inserted(o, r, IPS_SRC_NAT_DONE | IPS_SRC_NAT | 0xe, 30);
    let w = wire_from_kernel(&ct, &P);
    assert_eq!(w.snat_ipv4, Some("203.0.113.5".parse().unwrap()));
    // reply l4dst = type 0 / code 0 ≠ orig id 77.
    assert_eq!(w.spat_port, Some(0));
    assert_eq!(w.dpat_port, None);
}

#[test]
fn test_expectation_caches() {
    let master = tuple("127.0.0.1", "127.0.0.1", 6, ports(45000, 21));
    let t = tuple("127.0.0.1", "127.0.0.1", 6, ports(0, 50000));
    let mask = tuple("255.255.255.255", "255.255.255.255", 6, ports(0, 65535));
    let mut e = Expectation::new(AF_INET, master, t, mask);
    e.timeout = Some(300);
    e.helper = Some(HelperName::try_from("ftp").unwrap());
    let w = exp_wire_from_kernel(&e, &P);
    let k = ExpKey::from_expectation(&e);
    let mut ic = InternalExpCache::new(10, 4);
    assert_eq!(
        ic.handle_kernel(1, Origin::NotMe, KernelEvent::New, k, &w),
        Outcome::Applied { enqueue: true }
    );
    assert_eq!(ic.take_for_tx(&k), Some((ObjStatus::New, w)));
    // External: an update replaces the whole expectation.
    let mut ec = ExternalExpCache::new(10, 4);
    let _ = ec.handle_peer(1, PeerMsg::New, k, &w);
    let upd = crate::wire::exp::Repr {
        timeout: None,
        class: Some(1),
        ..w
    };
    let _ = ec.handle_peer(2, PeerMsg::Update, k, &upd);
    assert_eq!(ec.get(&k).unwrap().val, upd);
    let (_, r, last) = ec.commit_order().next().unwrap();
    let kexp = exp_kernel_from_wire(&r, 10, last, &CommitPolicy::default()).unwrap();
    // No timeout in the message: 0 - age < 0 → 60 s.
    assert_eq!(kexp.timeout, Some(60));
    assert_eq!(kexp.class, Some(1));
}

#[test]
fn test_external_purge_expired() {
    let mut g = Rng(17);
    let mut c = ExternalCache::new(100, 16);
    let (k1, w1) = msg(&mut g);
    let (k2, w2) = msg(&mut g);
    let _ = c.handle_peer(10, PeerMsg::New, k1, &w1);
    let _ = c.handle_peer(10, PeerMsg::New, k2, &w2);
    let _ = c.handle_peer(25, PeerMsg::Update, k2, &w2);
    assert_eq!(c.purge_expired(40, 30), 1);
    assert!(c.get(&k1).is_none() && c.get(&k2).is_some());
    assert_eq!(c.stats().del_ok, 1);
}

/// Memory per cached conntrack, table included, for a gateway-like mix: TCP/UDP flows,
/// a third of them SNATed (inline), 2 % with a helper, 1 % related (boxed extras), every
/// one with the zeroed synproxy of ctnetlink-created entries (inline flag). Run with
/// `--nocapture` to see the numbers.
#[test]
fn test_bytes_per_entry() {
    let mut g = Rng(18);
    for n in [100_000u32, 70_000] {
        let mut c = InternalCache::new(usize::MAX, 0);
        for i in 0..n {
            let proto = if g.coin() { 6 } else { 17 };
            let src = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            let o = tuple_ip(src, ip("198.51.100.7"), proto, ports(40000, 443));
            let mut r = tuple_ip(o.dst, o.src, proto, ports(443, 40000));
            let mut status = 0xe;
            if g.below(3) == 0 {
                r.dst = ip("203.0.113.1");
                r.l4 = ports(443, 50000 + (i % 10000) as u16);
                status |= IPS_SRC_NAT | IPS_SRC_NAT_DONE;
            }
            let mut ct = inserted(o, r, status, 120);
            if proto == 6 {
                ct.protoinfo = tcp_info(3);
            }
            if g.below(50) == 0 {
                ct.helper = Some(HelperName::try_from("ftp").unwrap());
            }
            if g.below(100) == 0 {
                ct.master = Some(tuple("10.0.0.1", "10.0.0.2", 6, ports(1, 21)));
            }
            let w = wire_from_kernel(&ct, &SendPolicy::KEEP_ALL);
            let k = CtKey::from_wire(&w).unwrap();
            let _ = c.handle_kernel(0, Origin::NotMe, KernelEvent::New, k, &w);
        }
        assert_eq!(c.len(), n as usize);
        let per = c.heap_bytes() as f64 / c.len() as f64;
        let boxed = c.iter().filter(|(_, o)| o.val.heap_bytes() > 0).count();
        println!(
            "{} entries: {:.1} bytes/entry (table + extras; {} with boxed extras)",
            c.len(),
            per,
            boxed
        );
        // Budget: ≤ ½ of the C daemon's ~460–590 bytes (malloc headers of the boxes not
        // counted: ~16 bytes × 3 % of entries).
        assert!(per < 230.0, "{per}");
    }
}

fn tuple_ip(src: IpAddr, dst: IpAddr, proto: u8, l4: L4) -> Tuple {
    let mut t = Tuple::new(src, dst, proto);
    t.l4 = l4;
    t
}

/// The captured SNAT CT_NEW (#119) received, cached, committed: the CREATE request carries
/// the mirrored reply, the SNAT request, the aged timeout and BE_LIBERAL flags
/// (ctnetlink-notes.md §7), and survives the netlink codec.
#[test]
fn test_golden_message_to_kernel_create() {
    use crate::netlink::msg::{MsgBuilder, NlMsg, Payload};
    let body = unhex(
        "000c0000c0000210c633641a000800050000019e0005000206000000000800039c4300500005000403000000000800060000007800080007000000000008000ccb0071050006000e50c300000010001f000000000000000000000000",
    );
    let w = Repr::parse(&body).unwrap();
    let k = CtKey::from_wire(&w).unwrap();
    let mut ext = ExternalCache::new(10, 4);
    let _ = ext.handle_peer(1000, PeerMsg::New, k, &w);
    let (_, r, last) = ext.commit_order().next().unwrap();
    let ct = kernel_from_wire(&r, 1030, last, &CommitPolicy::default()).unwrap();
    assert_eq!(
        ct.orig,
        tuple("192.0.2.16", "198.51.100.26", 6, ports(40003, 80))
    );
    assert_eq!(
        ct.reply,
        Some(tuple("198.51.100.26", "192.0.2.16", 6, ports(80, 40003)))
    );
    assert_eq!(ct.status, Some(0x19e));
    assert_eq!(ct.timeout, Some(90));
    assert_eq!(ct.mark, Some(0));
    assert_eq!(ct.synproxy, Some(KSynproxy::default()));
    assert_eq!(ct.nat_src.unwrap().min_ip, Some(ip("203.0.113.5")));
    assert_eq!(ct.nat_src.unwrap().min_port, Some(50000));
    let mut buf = Vec::new();
    let mut b = MsgBuilder::new(
        &mut buf,
        NFNL_SUBSYS_CTNETLINK,
        IPCTNL_MSG_CT_NEW,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        1,
        AF_INET,
    );
    ct.emit(&mut b);
    b.finish();
    let m = NlMsg::new_checked(&buf[..]).unwrap();
    let Payload::Nfnl { attrs, family, .. } = m.classify().unwrap() else {
        panic!("not nfnetlink");
    };
    assert_eq!(Conntrack::parse(family, attrs).unwrap(), ct);
}

#[test]
fn test_mark_dead_for_purge() {
    let mut g = Rng(19);
    let (k, w) = msg(&mut g);
    let mut c = InternalCache::new(10, 4);
    let _ = c.handle_kernel(1, Origin::Commit, KernelEvent::Update, k, &w);
    assert_eq!(c.mark_dead(2, &k), Outcome::Applied { enqueue: true });
    assert_eq!(c.mark_dead(3, &k), Outcome::Ignored);
    assert_eq!(c.take_for_tx(&k).map(|t| t.0), Some(ObjStatus::Dead));
    assert_eq!(c.stats().active, 0);
}

#[test]
fn test_handle_ct_and_send_policy() {
    let o = tuple("10.232.0.1", "10.232.0.2", 6, ports(46000, 8000));
    let r = tuple("10.232.0.2", "10.232.0.1", 6, ports(8000, 46000));
    let mut ct = inserted(o, r, 0xe, 300);
    ct.protoinfo = tcp_info(3);
    let mut c = InternalCache::new(10, 4);
    let k = CtKey::from_conntrack(&ct);
    assert_eq!(
        c.handle_ct(1, Origin::NotMe, KernelEvent::New, &ct),
        Outcome::Applied { enqueue: true }
    );
    let (st, mut w) = c.take_for_tx(&k).unwrap();
    assert_eq!(st, ObjStatus::New);
    // Stored with everything; the sender's policy trims at transmission.
    assert_eq!(w.tcp_wscale_orig, Some(7));
    let p = SendPolicy {
        tcp_window_tracking: false,
        commit_timeout: 0,
    };
    apply_send_policy(&mut w, &p);
    assert_eq!(w, wire_from_kernel(&ct, &p));
}

/// Every conntrack message the C daemons sent in the captures survives
/// wire → kernel CREATE → (the kernel's NAT core applying the request) → wire unchanged:
/// nothing the peer needs is lost in the conversions, and the NAT request reproduces the
/// NAT attributes. Expectations likewise (wire → kernel → wire).
#[test]
fn test_vectors_wire_kernel_wire() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/reference/test-vectors/vectors.txt"
    );
    let text =
        std::fs::read_to_string(path).expect("shared/reference/test-vectors beside the repo");
    let (mut cts, mut exps) = (0, 0);
    for line in text.lines() {
        let Some(h) = line.strip_prefix("  hex: ") else {
            continue;
        };
        let d = unhex(h.trim());
        let mut off = 0;
        while off + 8 <= d.len() {
            let len = usize::from(u16::from_be_bytes([d[off + 2], d[off + 3]]));
            if len < 8 || off + len > d.len() {
                break;
            }
            let ty = d[off] & 0x0f;
            let body = &d[off + 8..off + len];
            off += len;
            match ty {
                0..=2 => {
                    cts += 1;
                    check_ct_vector(&Repr::parse(body).unwrap());
                }
                3..=5 => {
                    exps += 1;
                    let r = crate::wire::exp::Repr::parse(body).unwrap();
                    let pol = CommitPolicy {
                        kind: CommitKind::InjectCreate,
                        ..CommitPolicy::default()
                    };
                    let e = exp_kernel_from_wire(&r, 0, 0, &pol).unwrap();
                    assert_eq!(exp_wire_from_kernel(&e, &P), r);
                    assert_eq!(ExpKey::from_wire(&r).unwrap(), ExpKey::from_expectation(&e));
                }
                _ => {}
            }
        }
    }
    assert!(cts > 100 && exps > 0, "{cts} CT, {exps} EXP messages");
}

fn check_ct_vector(w: &Repr) {
    let tracking = w.tcp_wscale_orig.is_some();
    let pol = CommitPolicy {
        kind: CommitKind::InjectCreate,
        tcp_window_tracking: tracking,
        ..CommitPolicy::default()
    };
    let mut k = kernel_from_wire(w, 0, 0, &pol).unwrap();
    assert_eq!(CtKey::from_conntrack(&k), CtKey::from_wire(w).unwrap());
    // What the kernel's NAT core does with the request: rewrite the reply tuple.
    let rep = k.reply.as_mut().unwrap();
    if let Some(n) = k.nat_src {
        if let Some(a) = n.min_ip {
            rep.dst = a;
        }
        if let (Some(p), L4::Ports { sport, .. }) = (n.min_port, rep.l4) {
            rep.l4 = ports(sport, p);
        }
    }
    if let Some(n) = k.nat_dst {
        if let Some(a) = n.min_ip {
            rep.src = a;
        }
        if let (Some(p), L4::Ports { dport, .. }) = (n.min_port, rep.l4) {
            rep.l4 = ports(p, dport);
        }
    }
    let p = SendPolicy {
        tcp_window_tracking: tracking,
        commit_timeout: 0,
    };
    let again = wire_from_kernel(&k, &p);
    // The captured senders never had IPS_EXPECTED set; CONFIRMED is always there.
    assert_eq!(again, *w, "{w:#?}");
    // And through the compact cache entry.
    let key = CtKey::from_wire(w).unwrap();
    assert_eq!(CtAttrs::pack(w).unpack(&key), *w);
}

/// FTFW-style use: hold on transmission, release on acknowledgement.
#[test]
fn test_hold_release() {
    let mut g = Rng(20);
    let (k, w) = msg(&mut g);
    let mut c = InternalCache::new(10, 4);
    let _ = c.handle_kernel(1, Origin::NotMe, KernelEvent::New, k, &w);
    let _ = c.handle_kernel(2, Origin::NotMe, KernelEvent::Destroy, k, &w);
    assert_eq!(c.take_for_tx(&k).unwrap().0, ObjStatus::Dead);
    assert!(c.hold(&k));
    // Not queued any more, but held: survives a purge, retransmits as DEL.
    assert_eq!(c.purge_dead(), 0);
    assert_eq!(c.message(&k).unwrap().0, ObjStatus::Dead);
    assert!(c.release(&k));
    assert!(c.is_empty());
    assert!(!c.hold(&k));
}

/// Rough cost per operation (run in release with `--ignored --nocapture`).
#[test]
#[ignore]
fn bench_cache_ops() {
    use std::time::Instant;
    let n: u32 = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut flows = Vec::with_capacity(n as usize);
    for i in 0..n {
        let src = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
        let o = tuple_ip(src, ip("198.51.100.7"), 6, ports(40000, 443));
        let mut r = tuple_ip(o.dst, o.src, 6, ports(443, 40000));
        r.dst = ip("203.0.113.1");
        let mut ct = inserted(o, r, 0x19e, 120);
        ct.protoinfo = tcp_info(3);
        flows.push(ct);
    }
    let t = Instant::now();
    let mut acc = 0u64;
    for ct in &flows {
        let w = wire_from_kernel(ct, &SendPolicy::KEEP_ALL);
        acc += u64::from(w.status.unwrap());
    }
    let conv = t.elapsed() / n;
    let w0 = wire_from_kernel(&flows[0], &SendPolicy::KEEP_ALL);
    let t = Instant::now();
    for _ in 0..n {
        let a = CtAttrs::pack(std::hint::black_box(&w0));
        acc += a.heap_bytes() as u64;
    }
    let pack = t.elapsed() / n;
    let k0 = CtKey::from_conntrack(&flows[0]);
    let a0 = CtAttrs::pack(&w0);
    let t = Instant::now();
    for _ in 0..n {
        let r = std::hint::black_box(&a0).unpack(&k0);
        acc += u64::from(r.status.unwrap());
    }
    let unpack = t.elapsed() / n;
    println!("wire_from_kernel {conv:?} pack {pack:?} unpack {unpack:?} ({acc})");
    let mut c = InternalCache::new(usize::MAX, n as usize);
    let t = Instant::now();
    for ct in &flows {
        let _ = c.handle_ct(0, Origin::NotMe, KernelEvent::New, ct);
    }
    let new = t.elapsed() / n;
    let t = Instant::now();
    for ct in &flows {
        let _ = c.handle_ct(1, Origin::NotMe, KernelEvent::Update, ct);
    }
    let upd = t.elapsed() / n;
    let t = Instant::now();
    let mut sum = 0usize;
    for ct in &flows {
        let k = CtKey::from_conntrack(ct);
        if let Some((_, r)) = c.take_for_tx(&k) {
            sum += r.buffer_len();
        }
    }
    let tx = t.elapsed() / n;
    let t = Instant::now();
    for ct in &flows {
        sum += shard_of(&CtKey::from_conntrack(ct), 8);
    }
    let route = t.elapsed() / n;
    println!(
        "per op: new {new:?}, update {upd:?}, take_for_tx {tx:?}, key+shard_of {route:?} ({sum})"
    );
}

#[test]
fn test_pack_snat_and_dnat() {
    // Hairpin NAT: both halves; the DNAT one goes to the boxed extra.
    let o = tuple("192.0.2.1", "198.51.100.1", 6, ports(1000, 80));
    let r = tuple("10.0.0.5", "203.0.113.1", 6, ports(8080, 2000));
    let ct = inserted(o, r, 0x1be, 60);
    let w = wire_from_kernel(&ct, &P);
    assert!(w.snat_ipv4.is_some() && w.dnat_ipv4.is_some());
    assert!(w.spat_port.is_some() && w.dpat_port.is_some());
    let k = CtKey::from_wire(&w).unwrap();
    let a = CtAttrs::pack(&w);
    assert!(a.heap_bytes() > 0);
    assert_eq!(a.unpack(&k), w);
    // DNAT alone stays inline.
    let o = tuple("192.0.2.1", "198.51.100.1", 6, ports(1000, 80));
    let r = tuple("10.0.0.5", "192.0.2.1", 6, ports(8080, 1000));
    let w = wire_from_kernel(&inserted(o, r, 0x1a8, 60), &P);
    let a = CtAttrs::pack(&w);
    assert_eq!(a.heap_bytes(), 0);
    assert_eq!(a.unpack(&k), w);
}
