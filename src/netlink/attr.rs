//! Netlink attributes (NLA): a borrowed view and the aligned TLV walker.
//!
//! Layout of one attribute (`struct nlattr`, host byte order header):
//!
//! ```text
//! | nla_len (u16) | nla_type (u16) | value (nla_len - 4 bytes) | pad to 4 |
//! ```
//!
//! `nla_len` counts the header and the value but not the padding; the next attribute starts at
//! the aligned length. The top two bits of `nla_type` are flags (`NLA_F_NESTED`,
//! `NLA_F_NET_BYTEORDER`); [`Nla::ty`] has them stripped.
//!
//! The walker rejects the three impossible cases (fewer bytes than a header, `nla_len` shorter
//! than a header, `nla_len` past the end of the buffer) with a typed error, yields that error
//! once and then stops: a corrupt length makes everything after it meaningless. Nothing here
//! allocates or panics on any input.

use super::consts::{NLA_F_NESTED, NLA_TYPE_MASK};
use super::error::Error;

/// Size of `struct nlattr`.
pub const NLA_HDRLEN: usize = 4;
/// Attributes start on multiples of this.
pub const NLA_ALIGNTO: usize = 4;

/// Rounds `len` up to the attribute alignment.
#[inline]
pub const fn nla_align(len: usize) -> usize {
    (len + NLA_ALIGNTO - 1) & !(NLA_ALIGNTO - 1)
}

/// One attribute, borrowed from the message buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nla<'a> {
    /// Attribute type without the `NLA_F_NESTED` / `NLA_F_NET_BYTEORDER` bits.
    pub ty: u16,
    /// Whether the sender set `NLA_F_NESTED`. The kernel sets it on every ctnetlink nest,
    /// but older senders did not, so parsers must not rely on it.
    pub nested: bool,
    /// The value, without header and padding.
    pub value: &'a [u8],
}

impl<'a> Nla<'a> {
    /// The value as a `u8`; the value must be exactly 1 byte.
    #[inline]
    pub fn u8(&self) -> Result<u8, Error> {
        Ok(u8::from_be_bytes(self.array("u8 attribute")?))
    }

    /// The value as a big-endian `u16`; the value must be exactly 2 bytes.
    #[inline]
    pub fn u16_be(&self) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array("u16 attribute")?))
    }

    /// The value as a big-endian `u32`; the value must be exactly 4 bytes.
    #[inline]
    pub fn u32_be(&self) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array("u32 attribute")?))
    }

    /// The value as a big-endian `u64`; the value must be exactly 8 bytes.
    #[inline]
    pub fn u64_be(&self) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(self.array("u64 attribute")?))
    }

    /// The value as a fixed-size array; `what` names the attribute in the error.
    #[inline]
    pub fn array<const N: usize>(&self, what: &'static str) -> Result<[u8; N], Error> {
        self.value.try_into().map_err(|_| Error::BadLength(what))
    }

    /// A string value without its terminating NUL (and anything after the first NUL).
    /// The kernel NUL-terminates strings; a missing terminator is tolerated.
    #[inline]
    pub fn str_bytes(&self) -> &'a [u8] {
        match self.value.iter().position(|&b| b == 0) {
            Some(n) => &self.value[..n],
            None => self.value,
        }
    }

    /// Walks the attributes nested in this one.
    #[inline]
    pub fn nested(&self) -> NlaIter<'a> {
        nlas(self.value)
    }
}

/// Iterator over the attributes in a buffer; see the module documentation.
#[derive(Debug, Clone)]
pub struct NlaIter<'a> {
    buf: &'a [u8],
}

/// Walks the attributes in `buf` (a message's attribute area or a nest's value).
#[inline]
pub fn nlas(buf: &[u8]) -> NlaIter<'_> {
    NlaIter { buf }
}

impl<'a> NlaIter<'a> {
    /// The bytes not yet walked.
    #[inline]
    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    fn fail(&mut self, e: Error) -> Option<Result<Nla<'a>, Error>> {
        // Corrupt attribute: skip it and everything that follows.
        self.buf = &[];
        Some(Err(e))
    }
}

impl<'a> Iterator for NlaIter<'a> {
    type Item = Result<Nla<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let buf = self.buf;
        if buf.is_empty() {
            return None;
        }
        let Some(hdr) = buf.get(..NLA_HDRLEN) else {
            return self.fail(Error::Truncated("nlattr header"));
        };
        let len = usize::from(u16::from_ne_bytes([hdr[0], hdr[1]]));
        let raw_ty = u16::from_ne_bytes([hdr[2], hdr[3]]);
        if len < NLA_HDRLEN {
            return self.fail(Error::BadLength("nla_len"));
        }
        let Some(value) = buf.get(NLA_HDRLEN..len) else {
            return self.fail(Error::Truncated("nlattr value"));
        };
        // The last attribute of a message may lack its padding.
        self.buf = buf.get(nla_align(len)..).unwrap_or(&[]);
        Some(Ok(Nla {
            ty: raw_ty & NLA_TYPE_MASK,
            nested: raw_ty & NLA_F_NESTED != 0,
            value,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    static ATTRS: [u8; 24] = [
        // nla_len = 5, nla_type = 1
        0x05, 0x00, 0x01, 0x00,
        // value = 6, 3 bytes of padding
        0x06, 0x00, 0x00, 0x00,
        // nla_len = 12, nla_type = 2 | NLA_F_NESTED
        0x0c, 0x00, 0x02, 0x80,
        //   nla_len = 8, nla_type = 8
        0x08, 0x00, 0x08, 0x00,
        //   value = 0x01020304 (BE32)
        0x01, 0x02, 0x03, 0x04,
        // nla_len = 4, nla_type = 3 | NLA_F_NET_BYTEORDER (empty value)
        0x04, 0x00, 0x03, 0x40,
    ];

    #[test]
    fn test_deconstruct() {
        let v: Vec<_> = nlas(&ATTRS).collect::<Result<_, _>>().unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!((v[0].ty, v[0].nested, v[0].value), (1, false, &[6u8][..]));
        assert_eq!(v[0].u8(), Ok(6));
        assert_eq!((v[1].ty, v[1].nested), (2, true));
        let inner: Vec<_> = v[1].nested().collect::<Result<_, _>>().unwrap();
        assert_eq!(inner.len(), 1);
        assert_eq!(inner[0].ty, 8);
        assert_eq!(inner[0].u32_be(), Ok(0x0102_0304));
        assert_eq!((v[2].ty, v[2].nested, v[2].value.len()), (3, false, 0));
    }

    #[test]
    fn test_exact_length_helpers() {
        let n = Nla {
            ty: 1,
            nested: false,
            value: &[1, 2, 3, 4, 5, 6, 7, 8],
        };
        assert_eq!(n.u64_be(), Ok(0x0102_0304_0506_0708));
        assert_eq!(n.u32_be(), Err(Error::BadLength("u32 attribute")));
        assert_eq!(n.u16_be(), Err(Error::BadLength("u16 attribute")));
        assert_eq!(n.u8(), Err(Error::BadLength("u8 attribute")));
        let s = Nla {
            ty: 1,
            nested: false,
            value: b"ftp\0",
        };
        assert_eq!(s.str_bytes(), b"ftp");
        let s = Nla {
            ty: 1,
            nested: false,
            value: b"sip",
        };
        assert_eq!(s.str_bytes(), b"sip");
    }

    #[test]
    fn test_unpadded_last() {
        // A 5-byte attribute at the very end, without padding.
        let v: Vec<_> = nlas(&ATTRS[..5]).collect();
        assert_eq!(
            v,
            [Ok(Nla {
                ty: 1,
                nested: false,
                value: &[6]
            })]
        );
    }

    #[test]
    fn test_impossible_len() {
        // Fewer bytes than a header.
        let v: Vec<_> = nlas(&[0x05, 0x00, 0x01]).collect();
        assert_eq!(v, [Err(Error::Truncated("nlattr header"))]);
        // nla_len shorter than the header; the walk stops after the error.
        let v: Vec<_> = nlas(&[0x03, 0x00, 0x01, 0x00, 0x04, 0x00, 0x01, 0x00]).collect();
        assert_eq!(v, [Err(Error::BadLength("nla_len"))]);
        // nla_len past the end of the buffer.
        let v: Vec<_> = nlas(&[0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00]).collect();
        assert_eq!(v, [Err(Error::Truncated("nlattr value"))]);
        // A good attribute followed by garbage: one Ok, one Err, then the end.
        let mut buf = ATTRS[..8].to_vec();
        buf.extend_from_slice(&[0xff, 0xff]);
        let v: Vec<_> = nlas(&buf).collect();
        assert_eq!(v.len(), 2);
        assert!(v[0].is_ok());
        assert_eq!(v[1], Err(Error::Truncated("nlattr header")));
    }

    #[test]
    fn test_empty() {
        assert_eq!(nlas(&[]).count(), 0);
    }
}
