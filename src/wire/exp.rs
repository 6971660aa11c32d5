//! The expectation payload of EXP_NEW / EXP_UPD / EXP_DEL (§8).
//!
//! Same TLV format as conntracks, separate number space ([`ExpAttrType`](super::ExpAttrType)). The master,
//! expected, mask and NAT attributes fill four separate tuples ([`Tuple`]); `emit` writes
//! them in the 1.4.7 sender's order so that captured messages re-encode byte for byte.

use std::net::Ipv4Addr;

use super::Error;
use super::attr::{AttrIter, Size, Writer, array};
use super::tuple::{Addrs, Name, Ports};
use super::types::ExpAttrType as T;

/// One tuple of an expectation: addresses, protocol, ports; each part optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tuple {
    /// Source and destination addresses.
    pub addrs: Option<Addrs>,
    /// IP protocol number.
    pub l4proto: Option<u8>,
    /// Source and destination ports.
    pub ports: Option<Ports>,
}

impl Tuple {
    fn put(&self, w: &mut Writer<'_>, v4: T, v6: T, proto: T, port: T) {
        if let Some(a) = &self.addrs {
            a.put(w, v4.0, v6.0);
        }
        if let Some(p) = self.l4proto {
            w.put_u8(proto.0, p);
        }
        if let Some(p) = &self.ports {
            p.put(w, port.0);
        }
    }
}

/// The NAT part of an expectation. IPv4 only: the protocol has no NAT_IPV6 attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NatTuple {
    /// Source and destination (`NTA_EXP_NAT_IPV4`).
    pub addrs: Option<(Ipv4Addr, Ipv4Addr)>,
    /// IP protocol number.
    pub l4proto: Option<u8>,
    /// Source and destination ports.
    pub ports: Option<Ports>,
    /// Direction (0 original, 1 reply).
    pub dir: Option<u32>,
}

/// Payload capacity of `NTA_EXP_HELPER_NAME` (`nta_len <= 16`).
pub const HELPER_NAME_MAX: usize = 12;
/// Payload capacity of `NTA_EXP_FN` (`nta_len <= 32`).
pub const FN_NAME_MAX: usize = 28;

/// Everything an EXP message can carry. `None` = attribute absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repr {
    /// The master conntrack's original tuple.
    pub master: Tuple,
    /// The expected tuple.
    pub expect: Tuple,
    /// The mask applied to the expected tuple.
    pub mask: Tuple,
    /// Seconds left.
    pub timeout: Option<u32>,
    /// `NF_CT_EXPECT_*` flags.
    pub flags: Option<u32>,
    /// Expectation class.
    pub class: Option<u32>,
    /// NAT tuple and direction.
    pub nat: NatTuple,
    /// Helper name.
    pub helper_name: Option<Name<HELPER_NAME_MAX>>,
    /// Expectfn name.
    pub expect_fn: Option<Name<FN_NAME_MAX>>,
}

use Size::{Fixed as F, Max as M};

/// `nta_len` rules of the 21 EXP attributes, indexed by type (§8).
#[rustfmt::skip]
const SIZES: [Size; T::MAX as usize] = [
    F(12), F(36), F(5), F(8), F(12), F(36), F(5), F(8),           // 0-7
    F(12), F(36), F(5), F(8), F(8), F(8), F(8), F(12),            // 8-15
    F(8), F(5), F(8), M(16), M(32),                               // 16-20
];

fn be32(p: &[u8]) -> u32 {
    u32::from_be_bytes(array::<4>(p))
}

impl Repr {
    /// Decodes an EXP message body (after the 8-byte header, up to `len`), with the 1.4.7
    /// receiver's checks (§8: as §6.3 with the bound `nta_attr >= 21`).
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let mut r = Self::default();
        for a in AttrIter::new(body) {
            let a = a?;
            SIZES
                .get(usize::from(a.ty))
                .ok_or(Error::UnknownAttr(a.ty))?
                .check(a.ty, a.len)?;
            let p = a.payload;
            match T(a.ty) {
                T::NTA_EXP_MASTER_IPV4 => r.master.addrs = Some(Addrs::parse_v4(p)),
                T::NTA_EXP_MASTER_IPV6 => r.master.addrs = Some(Addrs::parse_v6(p)),
                T::NTA_EXP_MASTER_L4PROTO => r.master.l4proto = Some(p[0]),
                T::NTA_EXP_MASTER_PORT => r.master.ports = Some(Ports::parse(p)),
                T::NTA_EXP_EXPECT_IPV4 => r.expect.addrs = Some(Addrs::parse_v4(p)),
                T::NTA_EXP_EXPECT_IPV6 => r.expect.addrs = Some(Addrs::parse_v6(p)),
                T::NTA_EXP_EXPECT_L4PROTO => r.expect.l4proto = Some(p[0]),
                T::NTA_EXP_EXPECT_PORT => r.expect.ports = Some(Ports::parse(p)),
                T::NTA_EXP_MASK_IPV4 => r.mask.addrs = Some(Addrs::parse_v4(p)),
                T::NTA_EXP_MASK_IPV6 => r.mask.addrs = Some(Addrs::parse_v6(p)),
                T::NTA_EXP_MASK_L4PROTO => r.mask.l4proto = Some(p[0]),
                T::NTA_EXP_MASK_PORT => r.mask.ports = Some(Ports::parse(p)),
                T::NTA_EXP_TIMEOUT => r.timeout = Some(be32(p)),
                T::NTA_EXP_FLAGS => r.flags = Some(be32(p)),
                T::NTA_EXP_CLASS => r.class = Some(be32(p)),
                T::NTA_EXP_NAT_IPV4 => {
                    let src = Ipv4Addr::from(array::<4>(p));
                    let dst = Ipv4Addr::from(array::<4>(&p[4..]));
                    r.nat.addrs = Some((src, dst));
                }
                T::NTA_EXP_NAT_PORT => r.nat.ports = Some(Ports::parse(p)),
                T::NTA_EXP_NAT_L4PROTO => r.nat.l4proto = Some(p[0]),
                T::NTA_EXP_NAT_DIR => r.nat.dir = Some(be32(p)),
                T::NTA_EXP_HELPER_NAME => r.helper_name = Some(Name::from_raw(p)),
                T::NTA_EXP_FN => r.expect_fn = Some(Name::from_raw(p)),
                // SIZES has exactly one entry per known type.
                _ => return Err(Error::UnknownAttr(a.ty)),
            }
        }
        Ok(r)
    }

    /// Exact number of body bytes [`Self::emit`] writes (padding included, header excluded).
    pub fn buffer_len(&self) -> usize {
        let mut w = Writer::counter();
        self.write(&mut w);
        w.pos()
    }

    /// Writes the body in the 1.4.7 sender's order (§8) and returns the bytes written
    /// (= [`Self::buffer_len`]).
    ///
    /// # Panics
    /// If `buf` is shorter than [`Self::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let n = self.emit_bounded(buf);
        assert!(n <= buf.len(), "buffer shorter than buffer_len()");
        n
    }

    /// Sizes and writes in one pass: returns [`Self::buffer_len`], having written the body
    /// if that is at most `buf.len()`. If it is larger, `buf` holds only a prefix and must
    /// not be sent. Never panics.
    pub fn emit_bounded(&self, buf: &mut [u8]) -> usize {
        let mut w = Writer::new(buf);
        self.write(&mut w);
        w.pos()
    }

    fn write(&self, w: &mut Writer<'_>) {
        self.master.put(
            w,
            T::NTA_EXP_MASTER_IPV4,
            T::NTA_EXP_MASTER_IPV6,
            T::NTA_EXP_MASTER_L4PROTO,
            T::NTA_EXP_MASTER_PORT,
        );
        self.expect.put(
            w,
            T::NTA_EXP_EXPECT_IPV4,
            T::NTA_EXP_EXPECT_IPV6,
            T::NTA_EXP_EXPECT_L4PROTO,
            T::NTA_EXP_EXPECT_PORT,
        );
        self.mask.put(
            w,
            T::NTA_EXP_MASK_IPV4,
            T::NTA_EXP_MASK_IPV6,
            T::NTA_EXP_MASK_L4PROTO,
            T::NTA_EXP_MASK_PORT,
        );
        for (ty, v) in [
            (T::NTA_EXP_TIMEOUT, self.timeout),
            (T::NTA_EXP_FLAGS, self.flags),
            (T::NTA_EXP_CLASS, self.class),
        ] {
            if let Some(v) = v {
                w.put_be32(ty.0, v);
            }
        }
        // NAT part: note the sender writes L4PROTO (17) before PORT (16) (§8).
        if let Some((src, dst)) = self.nat.addrs {
            w.put_pair(T::NTA_EXP_NAT_IPV4.0, src.octets(), dst.octets());
        }
        if let Some(p) = self.nat.l4proto {
            w.put_u8(T::NTA_EXP_NAT_L4PROTO.0, p);
        }
        if let Some(p) = &self.nat.ports {
            p.put(w, T::NTA_EXP_NAT_PORT.0);
        }
        if let Some(d) = self.nat.dir {
            w.put_be32(T::NTA_EXP_NAT_DIR.0, d);
        }
        if let Some(h) = &self.helper_name {
            w.put(T::NTA_EXP_HELPER_NAME.0, h.raw());
        }
        if let Some(f) = &self.expect_fn {
            w.put(T::NTA_EXP_FN.0, f.raw());
        }
    }
}
