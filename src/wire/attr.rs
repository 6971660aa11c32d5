//! The netattr TLV (§6) and the aligned walker over a message body.
//!
//! ```text
//!  0               2               4
//! +---------------+---------------+------------------------+------------+
//! | nta_len (BE16)| nta_attr(BE16)| payload (nta_len-4 B)  | pad to 4   |
//! +---------------+---------------+------------------------+------------+
//! ```
//!
//! Length comes first, then type (as in netlink). `nta_len` counts the 4-byte header and the
//! payload but not the padding; the next attribute starts at the 4-aligned end.

use super::{Error, Field, Rest, align4};

mod field {
    use super::{Field, Rest};

    pub(super) const LEN: Field = 0..2;
    pub(super) const TYPE: Field = 2..4;
    pub(super) const PAYLOAD: Rest = 4..;
}

/// Size of the netattr header.
pub const HEADER_LEN: usize = field::TYPE.end;

/// A read/write view of one netattr.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer and runs [`Self::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The three checks of an aligned TLV: the buffer holds the header, `nta_len` covers the
    /// header, and the buffer holds `nta_len` bytes (§6.3). After this, no accessor panics.
    pub fn check_len(&self) -> Result<(), Error> {
        let buf = self.buffer.as_ref();
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated("attribute header"));
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return Err(Error::BadLength("attribute shorter than its header"));
        }
        if len > buf.len() {
            return Err(Error::BadLength("attribute longer than the message"));
        }
        Ok(())
    }

    /// `nta_len`: header plus payload, padding excluded.
    #[inline]
    pub fn len(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LEN];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// True if `nta_len` is zero (malformed).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `nta_attr`.
    #[inline]
    pub fn attr_type(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::TYPE];
        u16::from_be_bytes([b[0], b[1]])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload (`nta_len - 4` bytes, padding excluded).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD][..usize::from(self.len()) - HEADER_LEN]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets `nta_len`.
    #[inline]
    pub fn set_len(&mut self, len: u16) {
        self.buffer.as_mut()[field::LEN].copy_from_slice(&len.to_be_bytes());
    }

    /// Sets `nta_attr`.
    #[inline]
    pub fn set_attr_type(&mut self, ty: u16) {
        self.buffer.as_mut()[field::TYPE].copy_from_slice(&ty.to_be_bytes());
    }

    /// The payload area after the header, up to the end of the buffer.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// One attribute found by [`AttrIter`]: its type number and its unpadded payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    /// `nta_attr`, not yet checked against any table.
    pub ty: u16,
    /// `nta_len` as found on the wire.
    pub len: u16,
    /// The payload, `len - 4` bytes.
    pub payload: &'a [u8],
}

/// Walks the attributes of a message body (the bytes after the header, up to `len`).
///
/// Mirrors the C receiver's loop (§6.3): it runs while **more than 4** bytes remain, so up
/// to 4 trailing bytes are ignored; an attribute whose `nta_len` is below 4 or beyond the
/// remaining bytes yields one error and ends the walk; after each attribute it skips to the
/// 4-aligned end (a final attribute whose padding is missing still counts).
#[derive(Debug, Clone)]
pub struct AttrIter<'a> {
    rest: &'a [u8],
}

impl<'a> AttrIter<'a> {
    /// Starts a walk over `body`.
    pub const fn new(body: &'a [u8]) -> Self {
        Self { rest: body }
    }
}

impl<'a> Iterator for AttrIter<'a> {
    type Item = Result<Attr<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() <= HEADER_LEN {
            return None;
        }
        let p = match Packet::new_checked(self.rest) {
            Ok(p) => p,
            Err(e) => {
                // A corrupt length poisons everything after it: stop here.
                self.rest = &[];
                return Some(Err(e));
            }
        };
        let attr = Attr {
            ty: p.attr_type(),
            len: p.len(),
            payload: p.payload(),
        };
        let step = align4(usize::from(attr.len)).min(self.rest.len());
        self.rest = &self.rest[step..];
        Some(Ok(attr))
    }
}

/// Appends attributes to a message body, zero-filling the padding (§6).
///
/// The writer never writes past the end of its buffer and never panics: an attribute that
/// does not fit is skipped but still counted, so [`Writer::pos`] always ends at the exact
/// length of the whole body. Positions only grow, so once one attribute is skipped every
/// later one is too: the body was written completely iff `pos() <= buf.len()`. The caller
/// can therefore serialise in one pass into whatever room it has, instead of
/// sizing the message first and writing it second. [`Writer::counter`] (an empty buffer)
/// only counts, so `buffer_len()` and `emit()` share one code path and cannot disagree.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// A writer that only counts bytes.
    pub(crate) fn counter() -> Self {
        Self {
            buf: &mut [],
            pos: 0,
        }
    }

    /// Bytes the attributes so far need, padding included (written or not).
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Writes one attribute whose `plen`-byte payload is filled in by `fill`.
    pub(crate) fn put_with(&mut self, ty: u16, plen: usize, fill: impl FnOnce(&mut [u8])) {
        let total = HEADER_LEN + plen;
        let end = self.pos + align4(total);
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            let mut p = Packet::new_unchecked(dst);
            // Payloads are bounded by the attribute tables (at most 1024 bytes).
            p.set_len(total as u16);
            p.set_attr_type(ty);
            let payload = p.payload_mut();
            fill(&mut payload[..plen]);
            payload[plen..].fill(0);
        }
        self.pos = end;
    }

    /// Writes one attribute with a fixed-size payload. The sizes are constants, so this
    /// compiles to a few stores instead of the generic loop of [`Self::put`] (the fixed-size
    /// attributes are nearly all of a CT message).
    #[inline]
    pub(crate) fn put_array<const N: usize>(&mut self, ty: u16, payload: [u8; N]) {
        let total = HEADER_LEN + N;
        let end = self.pos + align4(total);
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            let (hdr, rest) = dst.split_at_mut(HEADER_LEN);
            let (body, pad) = rest.split_at_mut(N);
            // N is at most 36 (a pair of IPv6 addresses).
            hdr[..2].copy_from_slice(&(total as u16).to_be_bytes());
            hdr[2..].copy_from_slice(&ty.to_be_bytes());
            body.copy_from_slice(&payload);
            pad.fill(0);
        }
        self.pos = end;
    }

    /// Writes one attribute made of a variable-length payload (names).
    pub(crate) fn put(&mut self, ty: u16, payload: &[u8]) {
        self.put_with(ty, payload.len(), |out| out.copy_from_slice(payload));
    }

    /// Writes one attribute made of two halves (a source and a destination).
    #[inline]
    pub(crate) fn put_pair<const N: usize>(&mut self, ty: u16, a: [u8; N], b: [u8; N]) {
        let total = HEADER_LEN + 2 * N;
        let end = self.pos + align4(total);
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            let (hdr, rest) = dst.split_at_mut(HEADER_LEN);
            let (first, rest) = rest.split_at_mut(N);
            let (second, pad) = rest.split_at_mut(N);
            hdr[..2].copy_from_slice(&(total as u16).to_be_bytes());
            hdr[2..].copy_from_slice(&ty.to_be_bytes());
            first.copy_from_slice(&a);
            second.copy_from_slice(&b);
            pad.fill(0);
        }
        self.pos = end;
    }

    /// Writes one attribute made of BE32 words.
    pub(crate) fn put_be32s(&mut self, ty: u16, words: &[u32]) {
        self.put_with(ty, 4 * words.len(), |out| {
            for (c, w) in out.chunks_exact_mut(4).zip(words) {
                c.copy_from_slice(&w.to_be_bytes());
            }
        });
    }

    pub(crate) fn put_u8(&mut self, ty: u16, v: u8) {
        self.put_array(ty, [v]);
    }

    pub(crate) fn put_be16(&mut self, ty: u16, v: u16) {
        self.put_array(ty, v.to_be_bytes());
    }

    pub(crate) fn put_le16(&mut self, ty: u16, v: u16) {
        self.put_array(ty, v.to_le_bytes());
    }

    pub(crate) fn put_be32(&mut self, ty: u16, v: u32) {
        self.put_array(ty, v.to_be_bytes());
    }
}

/// How the C receiver sizes an attribute: `Fixed(n)` needs `nta_len == n`, `Max(n)` needs
/// `nta_len <= n` (§6.1, §6.3).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Size {
    Fixed(u16),
    Max(u16),
}

impl Size {
    pub(crate) fn check(self, ty: u16, len: u16) -> Result<(), Error> {
        match self {
            Self::Fixed(n) if len != n => Err(Error::BadAttrLen { ty, len }),
            Self::Max(n) if len > n => Err(Error::BadAttrLen { ty, len }),
            _ => Ok(()),
        }
    }
}

/// Reads a fixed-size payload; the caller has already checked the size against its table.
pub(crate) fn array<const N: usize>(p: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&p[..N]);
    a
}

#[cfg(test)]
mod test {
    use super::*;

    #[rustfmt::skip]
    static BODY: [u8; 16] = [
        0x00, 0x05,             // nta_len = 5 (1-byte payload)
        0x00, 0x02,             // NTA_L4PROTO
        0x06, 0x00, 0x00, 0x00, // tcp + 3 bytes padding
        0x00, 0x06,             // nta_len = 6
        0x00, 0x0e,             // NTA_SPAT_PORT
        0x50, 0xc3, 0x00, 0x00, // 50000 little-endian + 2 bytes padding
    ];

    #[test]
    fn test_deconstruct() {
        let p = Packet::new_checked(&BODY[..]).unwrap();
        assert_eq!(p.len(), 5);
        assert_eq!(p.attr_type(), 2);
        assert_eq!(p.payload(), &[6]);
    }

    #[test]
    fn test_iter() {
        let v: Vec<_> = AttrIter::new(&BODY).collect::<Result<_, _>>().unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].ty, v[0].payload), (2, &[6u8][..]));
        assert_eq!((v[1].ty, v[1].payload), (14, &[0x50u8, 0xc3][..]));
        // Missing final padding is tolerated; 4 or fewer trailing bytes are ignored.
        assert_eq!(AttrIter::new(&BODY[..14]).count(), 2);
        assert_eq!(AttrIter::new(&BODY[..12]).count(), 1);
    }

    #[test]
    fn test_construct() {
        let mut buf = [0xffu8; 16];
        let mut w = Writer::new(&mut buf);
        w.put_u8(2, 6);
        w.put_le16(14, 50000);
        assert_eq!(w.pos(), 16);
        assert_eq!(buf, BODY);
    }

    #[test]
    fn test_construct_short_buffer_counts_on() {
        // Room for the first attribute only: the second is skipped, not cut, and still
        // counted, so the total is known after one pass.
        let mut buf = [0xffu8; 12];
        let mut w = Writer::new(&mut buf);
        w.put_u8(2, 6);
        assert_eq!(w.pos(), 8);
        w.put_le16(14, 50000);
        assert_eq!(w.pos(), 16);
        assert_eq!(buf[..8], BODY[..8]);
        assert_eq!(buf[8..], [0xff; 4]);
        let mut c = Writer::counter();
        c.put_u8(2, 6);
        c.put_le16(14, 50000);
        assert_eq!(c.pos(), 16);
    }

    #[test]
    fn test_impossible_len() {
        #[rustfmt::skip]
        let short = [
            0x00, 0x03,             // nta_len = 3 < header
            0x00, 0x02,
            0x06, 0x00, 0x00, 0x00,
        ];
        let mut it = AttrIter::new(&short);
        assert!(matches!(it.next(), Some(Err(Error::BadLength(_)))));
        assert!(it.next().is_none());

        #[rustfmt::skip]
        let long = [
            0x00, 0x09,             // nta_len = 9 > 8 bytes left
            0x00, 0x02,
            0x06, 0x00, 0x00, 0x00,
        ];
        let mut it = AttrIter::new(&long);
        assert!(matches!(it.next(), Some(Err(Error::BadLength(_)))));
        assert!(it.next().is_none());
        assert!(matches!(
            Packet::new_checked(&long[..3]),
            Err(Error::Truncated(_))
        ));
    }
}
