//! Values shared by the conntrack and expectation payloads: tuple addresses, port pairs and
//! NUL-terminated names, with their wire encodings (§6.1, §8).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::Error;
use super::attr::{Writer, array};

/// Addresses of a tuple: IPv4 (`NTA_*IPV4`, 2 × 4 bytes) or IPv6 (2 × 16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Addrs {
    /// Source and destination, IPv4.
    V4 {
        /// Source address.
        src: Ipv4Addr,
        /// Destination address.
        dst: Ipv4Addr,
    },
    /// Source and destination, IPv6.
    V6 {
        /// Source address.
        src: Ipv6Addr,
        /// Destination address.
        dst: Ipv6Addr,
    },
}

impl Addrs {
    pub(crate) fn parse_v4(p: &[u8]) -> Self {
        Self::V4 {
            src: Ipv4Addr::from(array::<4>(p)),
            dst: Ipv4Addr::from(array::<4>(&p[4..])),
        }
    }

    pub(crate) fn parse_v6(p: &[u8]) -> Self {
        Self::V6 {
            src: Ipv6Addr::from(array::<16>(p)),
            dst: Ipv6Addr::from(array::<16>(&p[16..])),
        }
    }

    /// Writes the addresses as `v4_type` or `v6_type`, network order.
    pub(crate) fn put(&self, w: &mut Writer<'_>, v4_type: u16, v6_type: u16) {
        match self {
            Self::V4 { src, dst } => w.put_pair(v4_type, src.octets(), dst.octets()),
            Self::V6 { src, dst } => w.put_pair(v6_type, src.octets(), dst.octets()),
        }
    }
}

/// Source and destination ports (BE16 each on the wire, host order here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Ports {
    /// Source port.
    pub src: u16,
    /// Destination port.
    pub dst: u16,
}

impl Ports {
    pub(crate) fn parse(p: &[u8]) -> Self {
        Self {
            src: u16::from_be_bytes([p[0], p[1]]),
            dst: u16::from_be_bytes([p[2], p[3]]),
        }
    }

    pub(crate) fn put(&self, w: &mut Writer<'_>, ty: u16) {
        w.put_pair(ty, self.src.to_be_bytes(), self.dst.to_be_bytes());
    }
}

/// A NUL-terminated name attribute stored inline: the raw payload (NUL included) of at most
/// `N` bytes, kept as received so that it re-encodes byte for byte.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Name<const N: usize> {
    buf: [u8; N],
    len: u8,
}

impl<const N: usize> Name<N> {
    /// A name from text; the NUL the wire format needs is appended. Fails if the name
    /// contains a NUL or does not fit (`N - 1` visible bytes).
    pub fn new(name: &str) -> Result<Self, Error> {
        let b = name.as_bytes();
        if b.len() >= N || b.contains(&0) {
            return Err(Error::Unencodable("name too long for its attribute"));
        }
        let mut buf = [0u8; N];
        buf[..b.len()].copy_from_slice(b);
        Ok(Self {
            buf,
            len: (b.len() + 1) as u8,
        })
    }

    /// A name from a raw attribute payload (`raw.len() <= N`, checked by the caller).
    pub(crate) fn from_raw(raw: &[u8]) -> Self {
        let mut buf = [0u8; N];
        buf[..raw.len()].copy_from_slice(raw);
        Self {
            buf,
            len: raw.len() as u8,
        }
    }

    /// The attribute payload exactly as it goes on the wire (normally ending in NUL).
    pub fn raw(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// The name up to its first NUL.
    pub fn as_bytes(&self) -> &[u8] {
        let raw = self.raw();
        let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
        &raw[..end]
    }

    /// The name as text, if it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        core::str::from_utf8(self.as_bytes()).ok()
    }
}

impl<const N: usize> core::fmt::Debug for Name<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "\"{}\"", self.as_bytes().escape_ascii())
    }
}
