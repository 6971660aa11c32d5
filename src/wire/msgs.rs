//! Splitting a received datagram into messages (§4) and classifying them (§3.1).
//!
//! [`Messages`] yields one [`Message`] per header. Framing errors (fewer than 8 bytes left,
//! `len` zero, too small or beyond the datagram) make the C receiver drop the rest of the
//! datagram, so the iterator yields that error once and then ends. A wrong version nibble
//! only costs its own message (§4 step 5): the iterator yields `Err(BadVersion)` and goes
//! on with the next message. Attribute errors are not seen here: they come from
//! [`Message::ct`] / [`Message::exp`] and only drop that one message (§6.3).

use super::header::{self, Packet, SeqRange};
use super::types::{Flags, MsgType};
use super::{Error, ct, exp};

/// What a message means to the FTFW receiver (§3.1), evaluated in the C order.
///
/// NOTRACK treats [`Kind::Ack`] and [`Kind::Nack`] as bad; ALARM ignores every message with
/// a non-zero flags byte. Those mode-specific rules belong to the sync layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// CT or EXP data; HELLO and HELLO_BACK may be set, nothing else.
    Data(MsgType),
    /// `[from, to]` received.
    Ack(SeqRange),
    /// Please retransmit `[from, to]`.
    Nack(SeqRange),
    /// Send everything.
    Resync,
    /// Keep-alive.
    Alive,
    /// Anything else: counted as "bad header" and ignored by the C receiver.
    Bad,
}

/// One message of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The decoded header.
    pub header: header::Repr,
    /// The body after the header (attributes and padding), `len - header length` bytes.
    pub body: &'a [u8],
    /// The whole message, header included.
    pub bytes: &'a [u8],
}

impl<'a> Message<'a> {
    /// Classifies the message as the C receiver does (§3.1).
    pub fn kind(&self) -> Kind {
        let (ty, fl) = (self.header.msg_type, self.header.flags);
        let range = self.header.range.unwrap_or(SeqRange { from: 0, to: 0 });
        if ty.is_data() && fl.0 & !(Flags::HELLO.0 | Flags::HELLO_BACK.0) == 0 {
            Kind::Data(ty)
        } else if ty != MsgType::CTL {
            Kind::Bad
        } else if fl.contains(Flags::ACK) {
            Kind::Ack(range)
        } else if fl.contains(Flags::NACK) {
            Kind::Nack(range)
        } else if fl.contains(Flags::RESYNC) {
            Kind::Resync
        } else if fl.contains(Flags::ALIVE) {
            Kind::Alive
        } else {
            Kind::Bad
        }
    }

    /// Decodes the conntrack payload of a CT_NEW/UPD/DEL message.
    pub fn ct(&self) -> Result<ct::Repr, Error> {
        if !self.header.msg_type.is_ct() {
            return Err(Error::BadType("not a CT message"));
        }
        ct::Repr::parse(self.body)
    }

    /// Decodes the expectation payload of an EXP_NEW/UPD/DEL message.
    pub fn exp(&self) -> Result<exp::Repr, Error> {
        if !self.header.msg_type.is_exp() {
            return Err(Error::BadType("not an EXP message"));
        }
        exp::Repr::parse(self.body)
    }
}

/// Iterator over the messages of one datagram.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    buf: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> Messages<'a> {
    /// Starts splitting `datagram`.
    pub const fn new(datagram: &'a [u8]) -> Self {
        Self {
            buf: datagram,
            offset: 0,
            done: false,
        }
    }

    /// Offset of the first byte not consumed. After a framing error it points at the start
    /// of the bad message, so a TCP reader can keep `&buf[offset..]` for its next read when
    /// the error was [`Error::Truncated`] (§1, §4 steps 1 and 3).
    pub const fn offset(&self) -> usize {
        self.offset
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = &self.buf[self.offset..];
        if rest.is_empty() {
            self.done = true;
            return None;
        }
        // §4 steps 1-4: header present, 0 < len <= remaining, len >= 8 or 16.
        let packet = match Packet::new_checked(rest) {
            Ok(p) => p,
            Err(e) => {
                // Corrupt framing: skip it and everything that follows.
                self.done = true;
                return Some(Err(e));
            }
        };
        let len = usize::from(packet.len());
        self.offset += len;
        let version = packet.version();
        if version != header::VERSION {
            return Some(Err(Error::BadVersion(version)));
        }
        // check_len passed, so parse cannot fail; keep the error path anyway.
        let hdr = match header::Repr::parse(&packet) {
            Ok(h) => h,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        Some(Ok(Message {
            header: hdr,
            body: packet.payload(),
            bytes: &rest[..len],
        }))
    }
}

impl core::iter::FusedIterator for Messages<'_> {}

#[cfg(test)]
mod test {
    use super::*;

    #[rustfmt::skip]
    static TWO: [u8; 24] = [
        0x1a, 0x10, 0x00, 0x08, 0x6b, 0x06, 0xca, 0x11, // ALIVE, len 8
        0x1a, 0x04, 0x00, 0x10, 0x6b, 0x06, 0xc9, 0xfd, // NACK, len 16
        0x6b, 0x06, 0xca, 0x12, 0x6b, 0x06, 0xca, 0x12, // from, to
    ];

    #[test]
    fn test_split() {
        let v: Vec<_> = Messages::new(&TWO).collect::<Result<_, _>>().unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].kind(), Kind::Alive);
        let r = SeqRange {
            from: 0x6b06_ca12,
            to: 0x6b06_ca12,
        };
        assert_eq!(v[1].kind(), Kind::Nack(r));
        assert_eq!(v[1].bytes, &TWO[8..]);
    }

    #[test]
    fn test_error_once_then_stop() {
        let mut b = TWO;
        b[11] = 0; // NACK len 0
        let mut it = Messages::new(&b);
        assert!(it.next().unwrap().is_ok());
        assert!(matches!(it.next(), Some(Err(Error::BadLength(_)))));
        assert_eq!(it.offset(), 8);
        assert!(it.next().is_none());
        // 3 trailing bytes
        let mut it = Messages::new(&TWO[..11]);
        assert!(it.next().unwrap().is_ok());
        assert!(matches!(it.next(), Some(Err(Error::Truncated(_)))));
        assert!(it.next().is_none());
    }

    #[test]
    fn test_bad_version_skips_one() {
        let mut b = TWO;
        b[0] = 0x2a;
        let mut it = Messages::new(&b);
        assert_eq!(it.next(), Some(Err(Error::BadVersion(2))));
        assert!(matches!(it.next(), Some(Ok(m)) if m.header.seq == 0x6b06_c9fd));
        assert!(it.next().is_none());
    }

    #[test]
    fn test_kind() {
        let mut b = [0x10u8, 0x60, 0x00, 0x08, 0, 0, 0, 1];
        let m = |b: &[u8]| Messages::new(b).next().unwrap().unwrap().kind();
        assert_eq!(m(&b), Kind::Data(MsgType::CT_NEW));
        b[1] = 0x10; // ALIVE on a data type
        assert_eq!(m(&b), Kind::Bad);
        b[0] = 0x17; // type 7
        b[1] = 0;
        assert_eq!(m(&b), Kind::Bad);
        b[0] = 0x1a; // control without flags
        assert_eq!(m(&b), Kind::Bad);
    }
}
