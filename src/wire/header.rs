//! The message header: `nethdr` (8 bytes) and `nethdr_ack` (16 bytes) (§2, §2.1).
//!
//! ```text
//!  0        1        2                4                                8
//! +--------+--------+----------------+--------------------------------+
//! |ver|type| flags  |   len (BE16)   |          seq (BE32)            |
//! +--------+--------+----------------+--------------------------------+
//! |        from (BE32)               |          to (BE32)             |  ACK/NACK/RESYNC only
//! +----------------------------------+--------------------------------+
//! ```

use super::types::{Flags, MsgType};
use super::{Error, Field};

mod field {
    use super::Field;

    /// Version in the high nibble, type in the low nibble.
    pub(super) const VER_TYPE: usize = 0;
    pub(super) const FLAGS: usize = 1;
    pub(super) const LEN: Field = 2..4;
    pub(super) const SEQ: Field = 4..8;
    pub(super) const FROM: Field = 8..12;
    pub(super) const TO: Field = 12..16;
}

/// Length of the plain header (`nethdr`).
pub const HEADER_LEN: usize = field::SEQ.end;
/// Length of the header with a sequence range (`nethdr_ack`).
pub const RANGE_HEADER_LEN: usize = field::TO.end;
/// The only protocol version any conntrackd has used (§2).
pub const VERSION: u8 = 1;

/// True if a message with this type and flags carries the 16-byte header: a control
/// message with ACK, NACK or RESYNC set (§3.1, the C receiver's header-size rule).
#[inline]
pub const fn has_range(msg_type: MsgType, flags: Flags) -> bool {
    msg_type.0 == MsgType::CTL.0 && flags.has_range()
}

/// A read/write view of a message header.
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

    /// Checks the header the way the C receiver splits a datagram (§4 steps 1-4, same
    /// order): at least 8 bytes; `len` not zero; `len` not beyond the buffer; for a ranged
    /// header at least 16 bytes and `len >= 16`, otherwise `len >= 8`. After this, no
    /// accessor panics.
    ///
    /// [`Error::Truncated`] means the buffer ends inside the message (a TCP reader keeps the
    /// bytes for its next read); [`Error::BadLength`] means the header itself is corrupt.
    pub fn check_len(&self) -> Result<(), Error> {
        let buf = self.buffer.as_ref();
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated("message header"));
        }
        let len = usize::from(self.len());
        if len == 0 {
            return Err(Error::BadLength("message length zero"));
        }
        if len > buf.len() {
            return Err(Error::Truncated("message"));
        }
        let need = self.header_len();
        if buf.len() < need {
            return Err(Error::Truncated("ack header"));
        }
        if len < need {
            return Err(Error::BadLength("message shorter than its header"));
        }
        Ok(())
    }

    /// Returns the wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version nibble (1 for every conntrackd).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] >> 4
    }

    /// The message type nibble.
    #[inline]
    pub fn msg_type(&self) -> MsgType {
        MsgType(self.buffer.as_ref()[field::VER_TYPE] & 0x0f)
    }

    /// The flags byte.
    #[inline]
    pub fn flags(&self) -> Flags {
        Flags(self.buffer.as_ref()[field::FLAGS])
    }

    /// Total message length (header, attributes, padding).
    #[inline]
    pub fn len(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LEN];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// True if `len` is zero (a malformed message).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sender's sequence number.
    #[inline]
    pub fn seq(&self) -> u32 {
        read_be32(&self.buffer.as_ref()[field::SEQ])
    }

    /// True if this header is a `nethdr_ack` with `from`/`to`.
    #[inline]
    pub fn has_range(&self) -> bool {
        has_range(self.msg_type(), self.flags())
    }

    /// 16 for ACK/NACK/RESYNC control messages, 8 otherwise.
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.has_range() {
            RANGE_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// First sequence number of the range (only meaningful if [`Self::has_range`]).
    #[inline]
    pub fn from(&self) -> u32 {
        read_be32(&self.buffer.as_ref()[field::FROM])
    }

    /// Last sequence number of the range, inclusive.
    #[inline]
    pub fn to(&self) -> u32 {
        read_be32(&self.buffer.as_ref()[field::TO])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The message body after the header, up to `len` (attributes and their padding).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let len = usize::from(self.len());
        &self.buffer.as_ref()[self.header_len()..len]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version and type (byte 0).
    #[inline]
    pub fn set_version_type(&mut self, version: u8, msg_type: MsgType) {
        self.buffer.as_mut()[field::VER_TYPE] = (version << 4) | (msg_type.0 & 0x0f);
    }

    /// Sets the flags byte.
    #[inline]
    pub fn set_flags(&mut self, flags: Flags) {
        self.buffer.as_mut()[field::FLAGS] = flags.0;
    }

    /// Sets the total message length.
    #[inline]
    pub fn set_len(&mut self, len: u16) {
        self.buffer.as_mut()[field::LEN].copy_from_slice(&len.to_be_bytes());
    }

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq(&mut self, seq: u32) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&seq.to_be_bytes());
    }

    /// Sets the first sequence number of the range.
    #[inline]
    pub fn set_from(&mut self, from: u32) {
        self.buffer.as_mut()[field::FROM].copy_from_slice(&from.to_be_bytes());
    }

    /// Sets the last sequence number of the range.
    #[inline]
    pub fn set_to(&mut self, to: u32) {
        self.buffer.as_mut()[field::TO].copy_from_slice(&to.to_be_bytes());
    }
}

#[inline]
fn read_be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// An inclusive range of sequence numbers carried by ACK/NACK/RESYNC (§2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRange {
    /// First sequence number.
    pub from: u32,
    /// Last sequence number (inclusive).
    pub to: u32,
}

/// A decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Message type.
    pub msg_type: MsgType,
    /// Flags.
    pub flags: Flags,
    /// Total message length as found on the wire or as it will be emitted.
    pub len: u16,
    /// Sequence number.
    pub seq: u32,
    /// `from`/`to` of a `nethdr_ack`; `Some` exactly when [`has_range`] holds.
    pub range: Option<SeqRange>,
}

impl Repr {
    /// Decodes a checked header. The version nibble is not checked here (the splitter
    /// reports it, §4 step 5).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self, Error> {
        packet.check_len()?;
        Ok(Self {
            msg_type: packet.msg_type(),
            flags: packet.flags(),
            len: packet.len(),
            seq: packet.seq(),
            range: packet.has_range().then(|| SeqRange {
                from: packet.from(),
                to: packet.to(),
            }),
        })
    }

    /// Header bytes this representation occupies (8 or 16).
    pub const fn buffer_len(&self) -> usize {
        if has_range(self.msg_type, self.flags) {
            RANGE_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Writes the header (version 1). A missing range of a ranged header is written as
    /// `0, 0` (what RESYNC carries, §2.1).
    ///
    /// # Panics
    /// If the buffer is shorter than [`Self::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_version_type(VERSION, self.msg_type);
        packet.set_flags(self.flags);
        packet.set_len(self.len);
        packet.set_seq(self.seq);
        if has_range(self.msg_type, self.flags) {
            let r = self.range.unwrap_or(SeqRange { from: 0, to: 0 });
            packet.set_from(r.from);
            packet.set_to(r.to);
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[rustfmt::skip]
    static ACK_BYTES: [u8; 16] = [
        0x1a,                   // version 1, type 10 (CTL)
        0x68,                   // flags ACK|HELLO|HELLO_BACK
        0x00, 0x10,             // len = 16
        0x6b, 0x06, 0xc9, 0xac, // seq = 0x6b06c9ac
        0x6b, 0x06, 0xc9, 0xab, // from
        0x6b, 0x06, 0xc9, 0xac, // to
    ];

    #[rustfmt::skip]
    static CT_HDR_BYTES: [u8; 8] = [
        0x10,                   // version 1, type 0 (CT_NEW)
        0x00,                   // no flags
        0x00, 0x08,             // len = 8 (no attributes)
        0x6b, 0x06, 0xc9, 0xc6, // seq
    ];

    #[test]
    fn test_deconstruct() {
        let p = Packet::new_checked(&ACK_BYTES[..]).unwrap();
        assert_eq!(p.version(), 1);
        assert_eq!(p.msg_type(), MsgType::CTL);
        assert_eq!(p.flags(), Flags::ACK | Flags::HELLO | Flags::HELLO_BACK);
        assert_eq!(p.len(), 16);
        assert_eq!(p.seq(), 0x6b06_c9ac);
        assert_eq!((p.from(), p.to()), (0x6b06_c9ab, 0x6b06_c9ac));
        assert!(p.payload().is_empty());
    }

    #[test]
    fn test_construct() {
        let mut buf = [0xffu8; 16];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_version_type(1, MsgType::CTL);
        p.set_flags(Flags(0x68));
        p.set_len(16);
        p.set_seq(0x6b06_c9ac);
        p.set_from(0x6b06_c9ab);
        p.set_to(0x6b06_c9ac);
        assert_eq!(buf, ACK_BYTES);
    }

    #[test]
    fn test_parse_emit() {
        let r = Repr::parse(&Packet::new_unchecked(&CT_HDR_BYTES[..])).unwrap();
        assert_eq!(r.range, None);
        assert_eq!(r.buffer_len(), 8);
        let mut out = [0u8; 8];
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, CT_HDR_BYTES);

        let r = Repr::parse(&Packet::new_unchecked(&ACK_BYTES[..])).unwrap();
        assert_eq!(
            r.range,
            Some(SeqRange {
                from: 0x6b06_c9ab,
                to: 0x6b06_c9ac
            })
        );
        let mut out = [0u8; 16];
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, ACK_BYTES);
    }

    #[test]
    fn test_impossible_len() {
        // len 4 < 8
        let mut b = CT_HDR_BYTES;
        b[3] = 4;
        assert!(matches!(
            Packet::new_checked(&b[..]),
            Err(Error::BadLength(_))
        ));
        // len 0
        b[3] = 0;
        assert!(matches!(
            Packet::new_checked(&b[..]),
            Err(Error::BadLength(_))
        ));
        // len 12 > 8 bytes available: the message continues beyond the buffer
        b[3] = 12;
        assert!(matches!(
            Packet::new_checked(&b[..]),
            Err(Error::Truncated(_))
        ));
        // ACK with len 8 is too short for the range
        let mut a = ACK_BYTES;
        a[3] = 8;
        assert!(matches!(
            Packet::new_checked(&a[..]),
            Err(Error::BadLength(_))
        ));
        // ACK with len 8 and only 8 bytes: the C receiver waits for 16 (§4 step 4)
        assert!(matches!(
            Packet::new_checked(&a[..8]),
            Err(Error::Truncated(_))
        ));
        // ACK cut to 12 bytes
        assert!(matches!(
            Packet::new_checked(&ACK_BYTES[..12]),
            Err(Error::Truncated(_))
        ));
        for n in 0..8 {
            assert!(matches!(
                Packet::new_checked(&CT_HDR_BYTES[..n]),
                Err(Error::Truncated(_))
            ));
        }
    }
}
