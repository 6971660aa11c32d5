//! Cache identities and shard routing.
//!
//! A conntrack's identity in 1.4.7 is its original tuple plus its zone (sync-modes.md §1.2).
//! [`CtKey`] packs that into 40 bytes of plain data that can be built from a kernel entry
//! ([`CtKey::from_conntrack`]) or from a sync message ([`CtKey::from_wire`]) and compares
//! equal for the same flow from both sides. Expectations are routed by their master's key
//! and compared on master, expected tuple and mask ([`ExpKey`]).
//!
//! [`shard_of`] is the one routing function: the reader and every worker must agree, so it
//! hashes with fixed seeds, never with the per-process random seed of the maps.

use core::fmt;
use core::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::netlink::consts::{AF_INET, AF_INET6};
use crate::netlink::ct::Conntrack;
use crate::netlink::exp::Expectation;
use crate::netlink::tuple::{L4, Tuple};
use crate::wire::ct::Repr as CtRepr;
use crate::wire::exp::{Repr as ExpRepr, Tuple as WireTuple};
use crate::wire::tuple::Addrs;

/// Fixed seeds of the routing hasher (arbitrary constants; they only have to be the same in
/// every thread of one process).
const ROUTE_SEEDS: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];

/// Addresses, protocol and L4 identifiers of one tuple, packed: IPv4 addresses use the first
/// 4 bytes of each array and leave the rest zero.
///
/// The L4 part is two `u16`s whose meaning depends on `l4proto`: (sport, dport) for port
/// protocols, (type << 8 | code, id) for ICMP/ICMPv6, (0, 0) otherwise. A tuple without
/// ports and one with ports 0/0 therefore have the same key: the 1.4.7 sender writes zero
/// ports for TCP/SCTP/DCCP flows the kernel reported without ports (wire-protocol.md §6.2),
/// and the peer must still find the same flow.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TupleKey {
    src: [u8; 16],
    dst: [u8; 16],
    l4a: u16,
    l4b: u16,
    family: u8,
    l4proto: u8,
}

fn put_addr(a: IpAddr) -> [u8; 16] {
    let mut out = [0; 16];
    match a {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out = v6.octets(),
    }
    out
}

fn icmp_l4(ty: u8, code: u8, id: u16) -> (u16, u16) {
    (u16::from(ty) << 8 | u16::from(code), id)
}

impl TupleKey {
    /// The key part of a kernel tuple (its per-direction zone is not part of it).
    pub fn from_tuple(t: &Tuple) -> Self {
        let (l4a, l4b) = match t.l4 {
            L4::None => (0, 0),
            L4::Ports { sport, dport } => (sport, dport),
            L4::Icmp { ty, code, id } | L4::Icmpv6 { ty, code, id } => icmp_l4(ty, code, id),
        };
        Self {
            src: put_addr(t.src),
            dst: put_addr(t.dst),
            l4a,
            l4b,
            family: t.family(),
            l4proto: t.l4proto,
        }
    }

    fn from_addrs(a: &Addrs, l4proto: u8, l4a: u16, l4b: u16) -> Self {
        let (src, dst, family) = match *a {
            Addrs::V4 { src, dst } => (IpAddr::V4(src), IpAddr::V4(dst), AF_INET),
            Addrs::V6 { src, dst } => (IpAddr::V6(src), IpAddr::V6(dst), AF_INET6),
        };
        Self {
            src: put_addr(src),
            dst: put_addr(dst),
            l4a,
            l4b,
            family,
            l4proto,
        }
    }

    /// The key part of an expectation tuple from a sync message (absent parts are zero).
    pub fn from_wire_tuple(t: &WireTuple) -> Self {
        let ports = t.ports.unwrap_or_default();
        let addrs = t.addrs.unwrap_or(Addrs::V4 {
            src: Ipv4Addr::UNSPECIFIED,
            dst: Ipv4Addr::UNSPECIFIED,
        });
        Self::from_addrs(&addrs, t.l4proto.unwrap_or(0), ports.src, ports.dst)
    }

    /// `AF_INET` or `AF_INET6`.
    pub const fn family(&self) -> u8 {
        self.family
    }

    /// IP protocol number.
    pub const fn l4proto(&self) -> u8 {
        self.l4proto
    }

    /// The two L4 identifiers: ports, or (type << 8 | code, id) for ICMP.
    pub const fn l4(&self) -> (u16, u16) {
        (self.l4a, self.l4b)
    }

    fn ip(&self, b: &[u8; 16]) -> IpAddr {
        if self.family == AF_INET6 {
            IpAddr::V6(Ipv6Addr::from(*b))
        } else {
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        }
    }

    /// Source address.
    pub fn src(&self) -> IpAddr {
        self.ip(&self.src)
    }

    /// Destination address.
    pub fn dst(&self) -> IpAddr {
        self.ip(&self.dst)
    }

    /// The addresses as the sync protocol carries them.
    pub fn addrs(&self) -> Addrs {
        match (self.src(), self.dst()) {
            (IpAddr::V6(src), IpAddr::V6(dst)) => Addrs::V6 { src, dst },
            (IpAddr::V4(src), IpAddr::V4(dst)) => Addrs::V4 { src, dst },
            // Both come from the same family byte.
            _ => unreachable!("TupleKey addresses share one family"),
        }
    }
}

impl fmt::Debug for TupleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "proto={} src={} dst={} l4={}/{}",
            self.l4proto,
            self.src(),
            self.dst(),
            self.l4a,
            self.l4b
        )
    }
}

/// Identity of a conntrack: original tuple + zone (1.4.7, sync-modes.md §1.2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct CtKey {
    tuple: TupleKey,
    zone: u16,
}

impl CtKey {
    /// The key of a kernel conntrack: `CTA_TUPLE_ORIG` and `CTA_ZONE` (absent = zone 0, which
    /// the kernel omits).
    pub fn from_conntrack(ct: &Conntrack) -> Self {
        Self {
            tuple: TupleKey::from_tuple(&ct.orig),
            zone: ct.zone.unwrap_or(0),
        }
    }

    /// The key of a sync message; `None` without addresses or protocol (nothing identifies
    /// the flow then).
    pub fn from_wire(r: &CtRepr) -> Option<Self> {
        let addrs = r.addrs?;
        let l4proto = r.l4proto?;
        let (l4a, l4b) = match (r.ports, r.icmp_type, r.icmp_code, r.icmp_id) {
            (Some(p), ..) => (p.src, p.dst),
            (None, None, None, None) => (0, 0),
            (None, t, c, i) => icmp_l4(t.unwrap_or(0), c.unwrap_or(0), i.unwrap_or(0)),
        };
        Some(Self {
            tuple: TupleKey::from_addrs(&addrs, l4proto, l4a, l4b),
            zone: r.zone.unwrap_or(0),
        })
    }

    /// The original tuple part.
    pub const fn tuple(&self) -> &TupleKey {
        &self.tuple
    }

    /// The zone (0 = default zone).
    pub const fn zone(&self) -> u16 {
        self.zone
    }
}

impl fmt::Debug for CtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} zone={}", self.tuple, self.zone)
    }
}

/// Identity of an expectation: compared on master, expected tuple and mask, hashed (and
/// routed) by the master only, so that an expectation lands on its master's shard.
///
/// C compares with `nfexp_cmp(…, 0)`, i.e. on every attribute both sides have set; the
/// remaining ones (helper, class, flags, NAT, expectfn) do not change during an
/// expectation's life, and the timeout, which does, must not split one expectation into
/// two objects, so they are left out of the identity.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpKey {
    master: CtKey,
    expect: TupleKey,
    mask: TupleKey,
}

impl Hash for ExpKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Equal keys have equal masters, so hashing a part is consistent with Eq.
        self.master.hash(state);
    }
}

impl ExpKey {
    /// The key of a kernel expectation (`CTA_EXPECT_ZONE` is the master's zone).
    pub fn from_expectation(e: &Expectation) -> Self {
        Self {
            master: CtKey {
                tuple: TupleKey::from_tuple(&e.master),
                zone: e.zone.unwrap_or(0),
            },
            expect: TupleKey::from_tuple(&e.tuple),
            mask: TupleKey::from_tuple(&e.mask),
        }
    }

    /// The key of an expectation message; `None` without master addresses. The sync protocol
    /// carries no expectation zone, so the master key has zone 0.
    pub fn from_wire(r: &ExpRepr) -> Option<Self> {
        r.master.addrs?;
        Some(Self {
            master: CtKey {
                tuple: TupleKey::from_wire_tuple(&r.master),
                zone: 0,
            },
            expect: TupleKey::from_wire_tuple(&r.expect),
            mask: TupleKey::from_wire_tuple(&r.mask),
        })
    }

    /// The master conntrack's key (what routes the expectation).
    pub const fn master(&self) -> &CtKey {
        &self.master
    }
}

impl fmt::Debug for ExpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "master=[{:?}] expect=[{:?}] mask=[{:?}]",
            self.master, self.expect, self.mask
        )
    }
}

/// The shard (0..n) that owns `key`. Pure: the same key gives the same shard in every
/// thread of the process (fixed-seed hasher), and `n == 0` is treated as 1.
pub fn shard_of(key: &CtKey, n: usize) -> usize {
    let h = ahash::RandomState::with_seeds(
        ROUTE_SEEDS[0],
        ROUTE_SEEDS[1],
        ROUTE_SEEDS[2],
        ROUTE_SEEDS[3],
    )
    .hash_one(key);
    // Multiply-shift: uniform for any n, no division.
    ((u128::from(h) * n.max(1) as u128) >> 64) as usize
}

/// The shard that owns an expectation: its master's.
pub fn exp_shard_of(key: &ExpKey, n: usize) -> usize {
    shard_of(&key.master, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::consts::{IPPROTO_ICMP, IPPROTO_TCP};
    use crate::wire::tuple::Ports;

    fn tcp(a: u8, sport: u16) -> Conntrack {
        let mut t = Tuple::new(
            IpAddr::from([192, 0, 2, a]),
            IpAddr::from([198, 51, 100, 1]),
            IPPROTO_TCP,
        );
        t.l4 = L4::Ports { sport, dport: 80 };
        Conntrack::new(AF_INET, t)
    }

    #[test]
    fn test_key_same_from_both_sides() {
        let mut ct = tcp(16, 40003);
        ct.zone = Some(5);
        let r = CtRepr {
            addrs: Some(Addrs::V4 {
                src: Ipv4Addr::new(192, 0, 2, 16),
                dst: Ipv4Addr::new(198, 51, 100, 1),
            }),
            l4proto: Some(IPPROTO_TCP),
            ports: Some(Ports {
                src: 40003,
                dst: 80,
            }),
            zone: Some(5),
            ..CtRepr::default()
        };
        assert_eq!(CtKey::from_conntrack(&ct), CtKey::from_wire(&r).unwrap());
        let mut other_zone = r;
        other_zone.zone = None;
        assert_ne!(
            CtKey::from_conntrack(&ct),
            CtKey::from_wire(&other_zone).unwrap()
        );
        assert!(CtKey::from_wire(&CtRepr::default()).is_none());
    }

    #[test]
    fn test_key_icmp_and_portless() {
        let mut t = Tuple::new(
            IpAddr::from([192, 0, 2, 12]),
            IpAddr::from([198, 51, 100, 22]),
            IPPROTO_ICMP,
        );
        t.l4 = L4::Icmp {
            ty: 8,
            code: 0,
            id: 4660,
        };
        let ct = Conntrack::new(AF_INET, t);
        let r = CtRepr {
            addrs: Some(Addrs::V4 {
                src: Ipv4Addr::new(192, 0, 2, 12),
                dst: Ipv4Addr::new(198, 51, 100, 22),
            }),
            l4proto: Some(IPPROTO_ICMP),
            icmp_type: Some(8),
            icmp_code: Some(0),
            icmp_id: Some(4660),
            ..CtRepr::default()
        };
        assert_eq!(CtKey::from_conntrack(&ct), CtKey::from_wire(&r).unwrap());
        // DCCP without a kernel tracker: no ports in the kernel, zero ports on the wire.
        let mut d = Conntrack::new(AF_INET, Tuple::new(t.src, t.dst, 33));
        d.orig.l4 = L4::None;
        let dr = CtRepr {
            l4proto: Some(33),
            ports: Some(Ports::default()),
            ..r
        };
        let dr = CtRepr {
            icmp_type: None,
            icmp_code: None,
            icmp_id: None,
            ..dr
        };
        assert_eq!(CtKey::from_conntrack(&d), CtKey::from_wire(&dr).unwrap());
    }

    #[test]
    fn test_key_roundtrip_accessors() {
        let k = CtKey::from_conntrack(&tcp(7, 1234));
        assert_eq!(k.tuple().src(), IpAddr::from([192, 0, 2, 7]));
        assert_eq!(k.tuple().l4(), (1234, 80));
        assert_eq!(k.tuple().family(), AF_INET);
        assert_eq!(size_of::<CtKey>(), 40);
        assert!(format!("{k:?}").contains("src=192.0.2.7"));
    }

    #[test]
    fn test_shard_of_stable() {
        let keys: Vec<CtKey> = (0..1000u16)
            .map(|i| CtKey::from_conntrack(&tcp((i % 250) as u8, i)))
            .collect();
        for k in &keys {
            let s = shard_of(k, 7);
            assert!(s < 7);
            for _ in 0..3 {
                assert_eq!(shard_of(k, 7), s);
            }
            // A copy from another "thread" (a fresh key) routes the same way.
            let copy = *k;
            assert_eq!(shard_of(&copy, 7), s);
        }
        assert_eq!(shard_of(&keys[0], 0), 0);
        assert_eq!(shard_of(&keys[0], 1), 0);
    }

    #[test]
    fn test_shard_of_balance() {
        for n in [2usize, 3, 4, 8, 16] {
            let mut count = vec![0u32; n];
            let total = 64_000u32;
            for i in 0..total {
                let mut ct = tcp((i % 256) as u8, (i / 256) as u16 + 1024);
                ct.orig.dst = IpAddr::from([10, 0, (i % 7) as u8, 1]);
                count[shard_of(&CtKey::from_conntrack(&ct), n)] += 1;
            }
            let mean = total / n as u32;
            for c in &count {
                // Within 5% of the mean for a uniform hash at this sample size.
                assert!(c.abs_diff(mean) < mean / 20, "n={n} counts={count:?}");
            }
        }
    }

    #[test]
    fn test_exp_key_routes_with_master() {
        let m = tcp(1, 45000);
        let mut e = Expectation::new(AF_INET, m.orig, m.orig, m.orig);
        e.tuple.l4 = L4::Ports {
            sport: 0,
            dport: 50000,
        };
        let k = ExpKey::from_expectation(&e);
        assert_eq!(k.master(), &CtKey::from_conntrack(&m));
        assert_eq!(exp_shard_of(&k, 5), shard_of(&CtKey::from_conntrack(&m), 5));
        let mut e2 = e;
        e2.tuple.l4 = L4::Ports {
            sport: 0,
            dport: 50001,
        };
        assert_ne!(k, ExpKey::from_expectation(&e2));
    }
}
