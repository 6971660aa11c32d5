//! Expectations (`CTA_EXPECT_*` attributes of `NFNL_SUBSYS_CTNETLINK_EXP` messages) as plain
//! data: parse from events and dumps, emit for create / delete / get requests. Same rules as
//! [`super::ct`]: any order, last wins, unknown types counted, bad lengths are typed errors,
//! no allocation.
//!
//! The kernel requires the master conntrack to exist with a helper attached (the one named in
//! `CTA_EXPECT_HELP_NAME`, or the master's own), so conntracks are committed first.

use super::attr::nlas;
use super::consts::*;
use super::error::Error;
use super::msg::MsgBuilder;
use super::name::{FnName, HelperName};
use super::tuple::{PLACEHOLDER, Tuple, be16, be32};

/// `CTA_EXPECT_NAT`: where the expected connection is NATed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExpNat {
    /// `CTA_EXPECT_NAT_DIR`: 0 original, 1 reply.
    pub dir: u32,
    /// `CTA_EXPECT_NAT_TUPLE`: the saved address and port (only the source half is
    /// meaningful; the kernel reports the destination address as zeros).
    pub tuple: Tuple,
}

/// One expectation as plain data. `None` = the attribute was absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Expectation {
    /// `nfgen_family` of the message.
    pub family: u8,
    /// `CTA_EXPECT_MASTER`: original tuple of the master conntrack (required).
    pub master: Tuple,
    /// `CTA_EXPECT_TUPLE`: the expected connection (required).
    pub tuple: Tuple,
    /// `CTA_EXPECT_MASK`: which bits of `tuple` must match (required).
    pub mask: Tuple,
    /// `CTA_EXPECT_TIMEOUT`, seconds.
    pub timeout: Option<u32>,
    /// `CTA_EXPECT_ID` (read-only, not emitted).
    pub id: Option<u32>,
    /// `CTA_EXPECT_HELP_NAME`.
    pub helper: Option<HelperName>,
    /// `CTA_EXPECT_ZONE`.
    pub zone: Option<u16>,
    /// `CTA_EXPECT_FLAGS` (`NF_CT_EXPECT_*`).
    pub flags: Option<u32>,
    /// `CTA_EXPECT_CLASS`.
    pub class: Option<u32>,
    /// `CTA_EXPECT_NAT`.
    pub nat: Option<ExpNat>,
    /// `CTA_EXPECT_FN` (e.g. `nat-follow-master`).
    pub fn_name: Option<FnName>,
    /// Number of attributes (at any nesting level) whose type this codec does not know.
    pub unknown_attrs: u16,
}

impl Expectation {
    /// An expectation with only its three tuples.
    pub const fn new(family: u8, master: Tuple, tuple: Tuple, mask: Tuple) -> Self {
        Self {
            family,
            master,
            tuple,
            mask,
            timeout: None,
            id: None,
            helper: None,
            zone: None,
            flags: None,
            class: None,
            nat: None,
            fn_name: None,
            unknown_attrs: 0,
        }
    }

    /// Parses the attribute area of a ctnetlink-exp message (`Payload::Nfnl::attrs`).
    pub fn parse(family: u8, attrs: &[u8]) -> Result<Self, Error> {
        let mut u = 0u16;
        let (mut master, mut tuple, mut mask) = (None, None, None);
        let mut e = Self::new(family, PLACEHOLDER, PLACEHOLDER, PLACEHOLDER);
        for nla in nlas(attrs) {
            let nla = nla?;
            match nla.ty {
                CTA_EXPECT_MASTER => master = Some(Tuple::parse(nla.value, &mut u)?),
                CTA_EXPECT_TUPLE => tuple = Some(Tuple::parse(nla.value, &mut u)?),
                CTA_EXPECT_MASK => mask = Some(Tuple::parse(nla.value, &mut u)?),
                CTA_EXPECT_TIMEOUT => e.timeout = Some(be32(&nla, "CTA_EXPECT_TIMEOUT")?),
                CTA_EXPECT_ID => e.id = Some(be32(&nla, "CTA_EXPECT_ID")?),
                CTA_EXPECT_ZONE => e.zone = Some(be16(&nla, "CTA_EXPECT_ZONE")?),
                CTA_EXPECT_FLAGS => e.flags = Some(be32(&nla, "CTA_EXPECT_FLAGS")?),
                CTA_EXPECT_CLASS => e.class = Some(be32(&nla, "CTA_EXPECT_CLASS")?),
                CTA_EXPECT_HELP_NAME => {
                    let n = HelperName::new(nla.str_bytes());
                    e.helper = Some(n.map_err(|_| Error::BadLength("CTA_EXPECT_HELP_NAME"))?);
                }
                CTA_EXPECT_FN => {
                    let n = FnName::new(nla.str_bytes());
                    e.fn_name = Some(n.map_err(|_| Error::BadLength("CTA_EXPECT_FN"))?);
                }
                CTA_EXPECT_NAT => e.nat = Some(parse_nat(nla.value, &mut u)?),
                _ => u = u.saturating_add(1),
            }
        }
        e.master = master.ok_or(Error::Missing("CTA_EXPECT_MASTER"))?;
        e.tuple = tuple.ok_or(Error::Missing("CTA_EXPECT_TUPLE"))?;
        e.mask = mask.ok_or(Error::Missing("CTA_EXPECT_MASK"))?;
        e.unknown_attrs = u;
        Ok(e)
    }

    /// Appends every present, writable attribute (all but the id).
    pub fn emit(&self, b: &mut MsgBuilder<'_>) {
        self.master.emit(b, CTA_EXPECT_MASTER);
        self.tuple.emit(b, CTA_EXPECT_TUPLE);
        self.mask.emit(b, CTA_EXPECT_MASK);
        if let Some(v) = self.timeout {
            b.put_u32_be(CTA_EXPECT_TIMEOUT, v);
        }
        if let Some(v) = self.zone {
            b.put_u16_be(CTA_EXPECT_ZONE, v);
        }
        if let Some(v) = self.flags {
            b.put_u32_be(CTA_EXPECT_FLAGS, v);
        }
        if let Some(v) = self.class {
            b.put_u32_be(CTA_EXPECT_CLASS, v);
        }
        if let Some(h) = &self.helper {
            b.put_cstr(CTA_EXPECT_HELP_NAME, h.as_bytes());
        }
        if let Some(n) = &self.nat {
            let t = b.nest_start(CTA_EXPECT_NAT);
            b.put_u32_be(CTA_EXPECT_NAT_DIR, n.dir);
            n.tuple.emit(b, CTA_EXPECT_NAT_TUPLE);
            b.nest_end(t);
        }
        if let Some(f) = &self.fn_name {
            b.put_cstr(CTA_EXPECT_FN, f.as_bytes());
        }
    }

    /// The same expectation without the read-only id and the unknown-attribute count: what a
    /// parse of [`Self::emit`] gives.
    pub fn writable(&self) -> Self {
        Self {
            id: None,
            unknown_attrs: 0,
            ..*self
        }
    }
}

fn parse_nat(value: &[u8], u: &mut u16) -> Result<ExpNat, Error> {
    let (mut dir, mut tuple) = (None, None);
    for nla in nlas(value) {
        let nla = nla?;
        match nla.ty {
            CTA_EXPECT_NAT_DIR => dir = Some(be32(&nla, "CTA_EXPECT_NAT_DIR")?),
            CTA_EXPECT_NAT_TUPLE => tuple = Some(Tuple::parse(nla.value, u)?),
            _ => *u = u.saturating_add(1),
        }
    }
    // The kernel rejects one without the other.
    Ok(ExpNat {
        dir: dir.ok_or(Error::Missing("CTA_EXPECT_NAT_DIR"))?,
        tuple: tuple.ok_or(Error::Missing("CTA_EXPECT_NAT_TUPLE"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::tuple::L4;
    use std::net::IpAddr;

    /// An expectation with every writable attribute, in [`Expectation::emit`] order
    /// (hand-built; `tests/vectors/netlink/emitted_requests.bin` has the kernel-accepted one).
    #[rustfmt::skip]
    static EXP: [u8; 284] = [
        // CTA_EXPECT_MASTER | NESTED, len 52
        0x34, 0x00, 0x01, 0x80,
        //   CTA_TUPLE_IP | NESTED, len 20: 10.9.0.1 -> 10.9.0.2
        0x14, 0x00, 0x01, 0x80,
        0x08, 0x00, 0x01, 0x00,  10, 9, 0, 1,
        0x08, 0x00, 0x02, 0x00,  10, 9, 0, 2,
        //   CTA_TUPLE_PROTO | NESTED, len 28: TCP 40022 -> 21
        0x1c, 0x00, 0x02, 0x80,
        0x05, 0x00, 0x01, 0x00,  6, 0, 0, 0,
        0x06, 0x00, 0x02, 0x00,  0x9c, 0x56, 0, 0,
        0x06, 0x00, 0x03, 0x00,  0x00, 0x15, 0, 0,
        // CTA_EXPECT_TUPLE | NESTED, len 52
        0x34, 0x00, 0x02, 0x80,
        //   10.9.0.2 -> 10.9.0.1
        0x14, 0x00, 0x01, 0x80,
        0x08, 0x00, 0x01, 0x00,  10, 9, 0, 2,
        0x08, 0x00, 0x02, 0x00,  10, 9, 0, 1,
        //   TCP 0 -> 6000
        0x1c, 0x00, 0x02, 0x80,
        0x05, 0x00, 0x01, 0x00,  6, 0, 0, 0,
        0x06, 0x00, 0x02, 0x00,  0x00, 0x00, 0, 0,
        0x06, 0x00, 0x03, 0x00,  0x17, 0x70, 0, 0,
        // CTA_EXPECT_MASK | NESTED, len 52
        0x34, 0x00, 0x03, 0x80,
        //   255.255.255.255 / 255.255.255.255
        0x14, 0x00, 0x01, 0x80,
        0x08, 0x00, 0x01, 0x00,  0xff, 0xff, 0xff, 0xff,
        0x08, 0x00, 0x02, 0x00,  0xff, 0xff, 0xff, 0xff,
        //   TCP, ports 0 / 0xffff
        0x1c, 0x00, 0x02, 0x80,
        0x05, 0x00, 0x01, 0x00,  6, 0, 0, 0,
        0x06, 0x00, 0x02, 0x00,  0x00, 0x00, 0, 0,
        0x06, 0x00, 0x03, 0x00,  0xff, 0xff, 0, 0,
        // CTA_EXPECT_TIMEOUT = 120
        0x08, 0x00, 0x04, 0x00,  0, 0, 0, 120,
        // CTA_EXPECT_ZONE = 7, padding
        0x06, 0x00, 0x07, 0x00,  0x00, 0x07, 0, 0,
        // CTA_EXPECT_FLAGS = NF_CT_EXPECT_PERMANENT
        0x08, 0x00, 0x08, 0x00,  0, 0, 0, 1,
        // CTA_EXPECT_CLASS = 0
        0x08, 0x00, 0x09, 0x00,  0, 0, 0, 0,
        // CTA_EXPECT_HELP_NAME = "ftp\0"
        0x08, 0x00, 0x06, 0x00,  b'f', b't', b'p', 0,
        // CTA_EXPECT_NAT | NESTED, len 64
        0x40, 0x00, 0x0a, 0x80,
        //   CTA_EXPECT_NAT_DIR = 1 (reply)
        0x08, 0x00, 0x01, 0x00,  0, 0, 0, 1,
        //   CTA_EXPECT_NAT_TUPLE | NESTED, len 52: 192.0.2.1 -> 0.0.0.0, TCP 6000 -> 0
        0x34, 0x00, 0x02, 0x80,
        0x14, 0x00, 0x01, 0x80,
        0x08, 0x00, 0x01, 0x00,  192, 0, 2, 1,
        0x08, 0x00, 0x02, 0x00,  0, 0, 0, 0,
        0x1c, 0x00, 0x02, 0x80,
        0x05, 0x00, 0x01, 0x00,  6, 0, 0, 0,
        0x06, 0x00, 0x02, 0x00,  0x17, 0x70, 0, 0,
        0x06, 0x00, 0x03, 0x00,  0x00, 0x00, 0, 0,
        // CTA_EXPECT_FN = "nat-follow-master\0" (len 22), padding
        0x16, 0x00, 0x0b, 0x00,
        b'n', b'a', b't', b'-', b'f', b'o', b'l', b'l', b'o', b'w', b'-', b'm',
        b'a', b's', b't', b'e', b'r', 0, 0, 0,
    ];

    fn tcp(src: &str, dst: &str, sport: u16, dport: u16) -> Tuple {
        Tuple {
            src: src.parse::<IpAddr>().unwrap(),
            dst: dst.parse::<IpAddr>().unwrap(),
            l4proto: IPPROTO_TCP,
            l4: L4::Ports { sport, dport },
            zone: None,
        }
    }

    fn want() -> Expectation {
        let mut e = Expectation::new(
            AF_INET,
            tcp("10.9.0.1", "10.9.0.2", 40022, 21),
            tcp("10.9.0.2", "10.9.0.1", 0, 6000),
            tcp("255.255.255.255", "255.255.255.255", 0, 0xffff),
        );
        e.timeout = Some(120);
        e.zone = Some(7);
        e.flags = Some(NF_CT_EXPECT_PERMANENT);
        e.class = Some(0);
        e.helper = Some(HelperName::try_from("ftp").unwrap());
        e.nat = Some(ExpNat {
            dir: 1,
            tuple: tcp("192.0.2.1", "0.0.0.0", 6000, 0),
        });
        e.fn_name = Some(FnName::try_from("nat-follow-master").unwrap());
        e
    }

    #[test]
    fn test_parse() {
        assert_eq!(Expectation::parse(AF_INET, &EXP), Ok(want()));
        // With the kernel-only id and an unknown attribute.
        let mut attrs = EXP.to_vec();
        attrs.extend_from_slice(&[8, 0, 5, 0, 0, 0, 0, 42, 4, 0, 0x30, 0]);
        let e = Expectation::parse(AF_INET, &attrs).unwrap();
        assert_eq!((e.id, e.unknown_attrs), (Some(42), 1));
        assert_eq!(e.writable(), want());
    }

    #[test]
    fn test_emit() {
        let mut buf = Vec::new();
        let mut b = MsgBuilder::new(
            &mut buf,
            NFNL_SUBSYS_CTNETLINK_EXP,
            IPCTNL_MSG_EXP_NEW,
            0,
            0,
            AF_INET,
        );
        want().emit(&mut b);
        b.finish();
        assert_eq!(&buf[20..], &EXP[..]);
    }

    #[test]
    fn test_errors() {
        // Master and tuple only: no mask.
        assert_eq!(
            Expectation::parse(AF_INET, &EXP[..104]),
            Err(Error::Missing("CTA_EXPECT_MASK"))
        );
        assert_eq!(
            Expectation::parse(AF_INET, &EXP[52..]),
            Err(Error::Missing("CTA_EXPECT_MASTER"))
        );
        // CTA_EXPECT_NAT without its direction (type 1 turned into 3, unknown).
        let mut nodir = EXP;
        nodir[202] = 3;
        assert_eq!(
            Expectation::parse(AF_INET, &nodir),
            Err(Error::Missing("CTA_EXPECT_NAT_DIR"))
        );
        // CTA_EXPECT_TIMEOUT with 5 bytes.
        let mut bad = EXP;
        bad[156] = 5;
        assert_eq!(
            Expectation::parse(AF_INET, &bad),
            Err(Error::BadLength("CTA_EXPECT_TIMEOUT"))
        );
    }
}
