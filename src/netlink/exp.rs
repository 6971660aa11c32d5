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
use super::tuple::{Tuple, be16, be32};

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
        let mut e = Self::new(family, DUMMY, DUMMY, DUMMY);
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

    /// The same expectation without the read-only id: what a parse of [`Self::emit`] gives.
    pub fn writable(&self) -> Self {
        Self { id: None, ..*self }
    }
}

/// Placeholder for tuples not yet parsed; never returned (missing tuples are errors).
const DUMMY: Tuple = Tuple::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    0,
);

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
