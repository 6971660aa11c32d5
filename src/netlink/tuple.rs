//! Conntrack tuples (`CTA_TUPLE_*` nests) as plain data.
//!
//! A tuple nest holds `CTA_TUPLE_IP { CTA_IP_V4_SRC/DST | CTA_IP_V6_SRC/DST }`,
//! `CTA_TUPLE_PROTO { CTA_PROTO_NUM, ports or ICMP type/code/id }` and optionally
//! `CTA_TUPLE_ZONE`. The same layout is used for the original, reply and master tuples of a
//! conntrack and for the master, expected, mask and NAT tuples of an expectation.
//!
//! Layout chosen here: addresses as [`IpAddr`], the L4 part as [`L4`], which records *which*
//! attributes were present (ports, ICMP or ICMPv6 ones) so that emitting a parsed tuple gives
//! the same attributes back. Everything is `Copy`; nothing allocates.

use super::attr::{Nla, nlas};
use super::consts::*;
use super::error::Error;
use super::msg::MsgBuilder;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The layer-4 part of a tuple, by the attributes that carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum L4 {
    /// Only `CTA_PROTO_NUM` (protocols tracked without ports, e.g. generic).
    #[default]
    None,
    /// `CTA_PROTO_SRC_PORT` / `CTA_PROTO_DST_PORT`, host order here, big-endian on the wire.
    /// TCP, UDP, UDP-Lite, SCTP, DCCP; for GRE these are the call keys.
    Ports {
        /// Source port (GRE: source key).
        sport: u16,
        /// Destination port (GRE: destination key).
        dport: u16,
    },
    /// `CTA_PROTO_ICMP_TYPE` / `_CODE` / `_ID`.
    Icmp {
        /// ICMP type.
        ty: u8,
        /// ICMP code.
        code: u8,
        /// Echo identifier.
        id: u16,
    },
    /// `CTA_PROTO_ICMPV6_TYPE` / `_CODE` / `_ID`.
    Icmpv6 {
        /// ICMPv6 type.
        ty: u8,
        /// ICMPv6 code.
        code: u8,
        /// Echo identifier.
        id: u16,
    },
}

/// One conntrack tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// Source address (`CTA_IP_V4_SRC` or `CTA_IP_V6_SRC`).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// `CTA_PROTO_NUM`.
    pub l4proto: u8,
    /// Ports or ICMP fields.
    pub l4: L4,
    /// `CTA_TUPLE_ZONE` (a per-direction zone), if present.
    pub zone: Option<u16>,
}

impl Tuple {
    /// A tuple with addresses and protocol, no L4 fields and no zone.
    pub const fn new(src: IpAddr, dst: IpAddr, l4proto: u8) -> Self {
        Self {
            src,
            dst,
            l4proto,
            l4: L4::None,
            zone: None,
        }
    }

    /// `AF_INET` or `AF_INET6`, by the source address.
    pub const fn family(&self) -> u8 {
        match self.src {
            IpAddr::V4(_) => AF_INET,
            IpAddr::V6(_) => AF_INET6,
        }
    }

    /// Parses the value of a tuple nest. `CTA_TUPLE_IP` and `CTA_PROTO_NUM` are required (the
    /// kernel always sends them and requires them back); unknown attributes are counted into
    /// `unknown`.
    pub fn parse(value: &[u8], unknown: &mut u16) -> Result<Self, Error> {
        let mut ip = None;
        let mut proto = None;
        let mut zone = None;
        for nla in nlas(value) {
            let nla = nla?;
            match nla.ty {
                CTA_TUPLE_IP => ip = Some(parse_ip(nla.value, unknown)?),
                CTA_TUPLE_PROTO => proto = Some(parse_proto(nla.value, unknown)?),
                CTA_TUPLE_ZONE => zone = Some(be16(&nla, "CTA_TUPLE_ZONE")?),
                _ => *unknown = unknown.saturating_add(1),
            }
        }
        let (src, dst) = ip.ok_or(Error::Missing("CTA_TUPLE_IP"))?;
        let (l4proto, l4) = proto.ok_or(Error::Missing("CTA_TUPLE_PROTO"))?;
        Ok(Self {
            src,
            dst,
            l4proto,
            l4,
            zone,
        })
    }

    /// Emits the tuple as a nest of type `ty` (`CTA_TUPLE_ORIG`, `CTA_EXPECT_MASTER`, ...).
    pub fn emit(&self, b: &mut MsgBuilder<'_>, ty: u16) {
        let t = b.nest_start(ty);
        let ip = b.nest_start(CTA_TUPLE_IP);
        let (s, d) = match self.src {
            IpAddr::V4(_) => (CTA_IP_V4_SRC, CTA_IP_V4_DST),
            IpAddr::V6(_) => (CTA_IP_V6_SRC, CTA_IP_V6_DST),
        };
        b.put_ip(s, self.src);
        b.put_ip(d, self.dst);
        b.nest_end(ip);
        let p = b.nest_start(CTA_TUPLE_PROTO);
        b.put_u8(CTA_PROTO_NUM, self.l4proto);
        match self.l4 {
            L4::None => {}
            L4::Ports { sport, dport } => {
                b.put_u16_be(CTA_PROTO_SRC_PORT, sport);
                b.put_u16_be(CTA_PROTO_DST_PORT, dport);
            }
            L4::Icmp { ty, code, id } => {
                b.put_u16_be(CTA_PROTO_ICMP_ID, id);
                b.put_u8(CTA_PROTO_ICMP_TYPE, ty);
                b.put_u8(CTA_PROTO_ICMP_CODE, code);
            }
            L4::Icmpv6 { ty, code, id } => {
                b.put_u16_be(CTA_PROTO_ICMPV6_ID, id);
                b.put_u8(CTA_PROTO_ICMPV6_TYPE, ty);
                b.put_u8(CTA_PROTO_ICMPV6_CODE, code);
            }
        }
        b.nest_end(p);
        if let Some(z) = self.zone {
            b.put_u16_be(CTA_TUPLE_ZONE, z);
        }
        b.nest_end(t);
    }
}

/// Stand-in for a tuple not parsed yet; parsers replace it or fail with `Error::Missing`.
pub(crate) const PLACEHOLDER: Tuple = Tuple::new(
    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    0,
);

/// A big-endian u16 attribute with a named error.
pub(crate) fn be16(nla: &Nla<'_>, what: &'static str) -> Result<u16, Error> {
    nla.array(what).map(u16::from_be_bytes)
}

/// A big-endian u32 attribute with a named error.
pub(crate) fn be32(nla: &Nla<'_>, what: &'static str) -> Result<u32, Error> {
    nla.array(what).map(u32::from_be_bytes)
}

/// A one-byte attribute with a named error.
pub(crate) fn byte(nla: &Nla<'_>, what: &'static str) -> Result<u8, Error> {
    nla.array::<1>(what).map(|[v]| v)
}

/// A 4- or 16-byte address attribute; `v6` says which size the attribute type requires.
pub(crate) fn addr(nla: &Nla<'_>, v6: bool, what: &'static str) -> Result<IpAddr, Error> {
    Ok(if v6 {
        IpAddr::V6(Ipv6Addr::from(nla.array::<16>(what)?))
    } else {
        IpAddr::V4(Ipv4Addr::from(nla.array::<4>(what)?))
    })
}

fn parse_ip(value: &[u8], unknown: &mut u16) -> Result<(IpAddr, IpAddr), Error> {
    let (mut src, mut dst) = (None, None);
    for nla in nlas(value) {
        let nla = nla?;
        match nla.ty {
            CTA_IP_V4_SRC => src = Some(addr(&nla, false, "CTA_IP_V4_SRC")?),
            CTA_IP_V4_DST => dst = Some(addr(&nla, false, "CTA_IP_V4_DST")?),
            CTA_IP_V6_SRC => src = Some(addr(&nla, true, "CTA_IP_V6_SRC")?),
            CTA_IP_V6_DST => dst = Some(addr(&nla, true, "CTA_IP_V6_DST")?),
            _ => *unknown = unknown.saturating_add(1),
        }
    }
    match (src, dst) {
        (Some(s @ IpAddr::V4(_)), Some(d @ IpAddr::V4(_)))
        | (Some(s @ IpAddr::V6(_)), Some(d @ IpAddr::V6(_))) => Ok((s, d)),
        (Some(_), Some(_)) => Err(Error::BadValue("CTA_TUPLE_IP (mixed families)")),
        (None, _) => Err(Error::Missing("CTA_IP_*_SRC")),
        (_, None) => Err(Error::Missing("CTA_IP_*_DST")),
    }
}

fn parse_proto(value: &[u8], unknown: &mut u16) -> Result<(u8, L4), Error> {
    let mut num = None;
    let (mut sport, mut dport) = (None, None);
    let (mut ity, mut icode, mut iid, mut v6) = (None, None, None, false);
    for nla in nlas(value) {
        let nla = nla?;
        match nla.ty {
            CTA_PROTO_NUM => num = Some(byte(&nla, "CTA_PROTO_NUM")?),
            CTA_PROTO_SRC_PORT => sport = Some(be16(&nla, "CTA_PROTO_SRC_PORT")?),
            CTA_PROTO_DST_PORT => dport = Some(be16(&nla, "CTA_PROTO_DST_PORT")?),
            CTA_PROTO_ICMP_ID => iid = Some(be16(&nla, "CTA_PROTO_ICMP_ID")?),
            CTA_PROTO_ICMP_TYPE => ity = Some(byte(&nla, "CTA_PROTO_ICMP_TYPE")?),
            CTA_PROTO_ICMP_CODE => icode = Some(byte(&nla, "CTA_PROTO_ICMP_CODE")?),
            CTA_PROTO_ICMPV6_ID => (iid, v6) = (Some(be16(&nla, "CTA_PROTO_ICMPV6_ID")?), true),
            CTA_PROTO_ICMPV6_TYPE => (ity, v6) = (Some(byte(&nla, "CTA_PROTO_ICMPV6_TYPE")?), true),
            CTA_PROTO_ICMPV6_CODE => {
                (icode, v6) = (Some(byte(&nla, "CTA_PROTO_ICMPV6_CODE")?), true)
            }
            _ => *unknown = unknown.saturating_add(1),
        }
    }
    let num = num.ok_or(Error::Missing("CTA_PROTO_NUM"))?;
    // A missing half (one port, or type without id) reads as 0, as the kernel's own
    // zero-initialised tuple would.
    let l4 = if sport.is_some() || dport.is_some() {
        L4::Ports {
            sport: sport.unwrap_or(0),
            dport: dport.unwrap_or(0),
        }
    } else if ity.is_some() || icode.is_some() || iid.is_some() {
        let (ty, code, id) = (ity.unwrap_or(0), icode.unwrap_or(0), iid.unwrap_or(0));
        if v6 {
            L4::Icmpv6 { ty, code, id }
        } else {
            L4::Icmp { ty, code, id }
        }
    } else {
        L4::None
    };
    Ok((num, l4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    static TUPLE_TCP4: [u8; 48] = [
        // CTA_TUPLE_IP | NESTED, len 20
        0x14, 0x00, 0x01, 0x80,
        //   CTA_IP_V4_SRC = 10.0.0.1
        0x08, 0x00, 0x01, 0x00,  10, 0, 0, 1,
        //   CTA_IP_V4_DST = 10.0.0.2
        0x08, 0x00, 0x02, 0x00,  10, 0, 0, 2,
        // CTA_TUPLE_PROTO | NESTED, len 28
        0x1c, 0x00, 0x02, 0x80,
        //   CTA_PROTO_NUM = 6 (TCP), padding
        0x05, 0x00, 0x01, 0x00,  0x06, 0x00, 0x00, 0x00,
        //   CTA_PROTO_SRC_PORT = 1000 (BE16), padding
        0x06, 0x00, 0x02, 0x00,  0x03, 0xe8, 0x00, 0x00,
        //   CTA_PROTO_DST_PORT = 80 (BE16), padding
        0x06, 0x00, 0x03, 0x00,  0x00, 0x50, 0x00, 0x00,
    ];

    fn tcp4() -> Tuple {
        Tuple {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            l4proto: IPPROTO_TCP,
            l4: L4::Ports {
                sport: 1000,
                dport: 80,
            },
            zone: None,
        }
    }

    #[test]
    fn test_parse() {
        let mut unknown = 0;
        assert_eq!(Tuple::parse(&TUPLE_TCP4, &mut unknown), Ok(tcp4()));
        assert_eq!(unknown, 0);
    }

    #[test]
    fn test_emit() {
        let mut buf = Vec::new();
        let mut b = MsgBuilder::new(&mut buf, 1, 0, 0, 0, AF_INET);
        tcp4().emit(&mut b, CTA_TUPLE_ORIG);
        b.finish();
        // nlmsghdr + nfgenmsg + nest header, then the nest value byte for byte.
        assert_eq!(&buf[24..], &TUPLE_TCP4[..]);
        assert_eq!(&buf[20..24], &[52, 0, 1, 0x80]);
    }

    #[test]
    fn test_icmp_roundtrip() {
        for (proto, l4, zone) in [
            (
                IPPROTO_ICMP,
                L4::Icmp {
                    ty: 8,
                    code: 0,
                    id: 4660,
                },
                Some(5),
            ),
            (
                IPPROTO_ICMPV6,
                L4::Icmpv6 {
                    ty: 128,
                    code: 0,
                    id: 77,
                },
                None,
            ),
            (IPPROTO_GRE, L4::None, None),
        ] {
            let t = Tuple {
                src: "2001:db8::1".parse().unwrap(),
                dst: "2001:db8::2".parse().unwrap(),
                l4proto: proto,
                l4,
                zone,
            };
            let mut buf = Vec::new();
            let mut b = MsgBuilder::new(&mut buf, 1, 0, 0, 0, AF_INET6);
            t.emit(&mut b, CTA_TUPLE_ORIG);
            b.finish();
            let mut unknown = 0;
            assert_eq!(Tuple::parse(&buf[24..], &mut unknown), Ok(t));
        }
    }

    #[test]
    fn test_bad_values() {
        let mut u = 0;
        // Address of the wrong length.
        let mut bad = TUPLE_TCP4;
        bad[4] = 7;
        assert_eq!(
            Tuple::parse(&bad, &mut u),
            Err(Error::BadLength("CTA_IP_V4_SRC"))
        );
        // Missing CTA_TUPLE_PROTO.
        assert_eq!(
            Tuple::parse(&TUPLE_TCP4[..20], &mut u),
            Err(Error::Missing("CTA_TUPLE_PROTO"))
        );
        // Missing CTA_TUPLE_IP.
        assert_eq!(
            Tuple::parse(&TUPLE_TCP4[20..], &mut u),
            Err(Error::Missing("CTA_TUPLE_IP"))
        );
        // A port of 3 bytes.
        let mut bad = TUPLE_TCP4;
        bad[32] = 7;
        assert_eq!(
            Tuple::parse(&bad, &mut u),
            Err(Error::BadLength("CTA_PROTO_SRC_PORT"))
        );
        // An unknown attribute inside the proto nest is counted, not an error.
        let mut unk = TUPLE_TCP4;
        unk[42] = 0x33;
        let mut u = 0;
        let t = Tuple::parse(&unk, &mut u).unwrap();
        assert_eq!(
            (u, t.l4),
            (
                1,
                L4::Ports {
                    sport: 1000,
                    dport: 0
                }
            )
        );
    }
}
