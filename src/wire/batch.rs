//! Building outgoing datagrams: message serialisation, sequence stamping, batching (§5, §9).
//!
//! Sans-IO: the caller owns the buffer, the socket and the single [`SeqCounter`] of the
//! daemon (the C daemon has one 32-bit counter shared by every message type and every
//! link, §5). A message takes its sequence number when it is appended to a datagram, the
//! moment the C daemon serialises it.

use super::header::{self, Packet, SeqRange};
use super::types::{Flags, MsgType};
use super::{Error, ct, exp};

/// The daemon's one sequence counter (§5).
///
/// The C daemon seeds it with `time(NULL)` when it builds its first message; the caller
/// passes that value in since this module never reads a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqCounter(u32);

impl SeqCounter {
    /// A counter whose first number is `first` (normally the start time in Unix seconds).
    pub const fn new(first: u32) -> Self {
        Self(first)
    }

    /// The number the next message will get.
    pub const fn peek(&self) -> u32 {
        self.0
    }

    /// Takes a number; the counter wraps after `u32::MAX` (serial arithmetic, §5).
    #[allow(clippy::should_implement_trait)] // an infinite counter, not an iterator
    pub fn next(&mut self) -> u32 {
        let s = self.0;
        self.0 = self.0.wrapping_add(1);
        s
    }
}

/// The transport of a dedicated link; it decides the datagram buffer size (§9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// IPv4/IPv6 multicast.
    Multicast,
    /// Unicast UDP.
    Udp,
    /// TCP stream.
    Tcp,
}

impl Transport {
    /// The link buffer size the C daemon uses for an interface MTU: `MTU - 28` for
    /// Multicast and UDP, `MTU - 40` for TCP (§9). A datagram carries at most one byte less.
    pub const fn buffer_size(self, mtu: usize) -> usize {
        match self {
            Self::Multicast | Self::Udp => mtu.saturating_sub(28),
            Self::Tcp => mtu.saturating_sub(40),
        }
    }
}

/// One message to send; the sequence number is added when it is serialised.
#[derive(Debug, Clone, Copy)]
pub enum Outgoing<'a> {
    /// CT_NEW, CT_UPD or CT_DEL.
    Ct {
        /// Must satisfy [`MsgType::is_ct`].
        msg_type: MsgType,
        /// Normally empty; FTFW may set HELLO/HELLO_BACK on data (§3).
        flags: Flags,
        /// The payload.
        repr: &'a ct::Repr,
    },
    /// EXP_NEW, EXP_UPD or EXP_DEL.
    Exp {
        /// Must satisfy [`MsgType::is_exp`].
        msg_type: MsgType,
        /// As for CT.
        flags: Flags,
        /// The payload.
        repr: &'a exp::Repr,
    },
    /// A control message (type 10): 16 bytes if ACK/NACK/RESYNC is set, else 8.
    Control {
        /// The flags.
        flags: Flags,
        /// `from`/`to` for ACK/NACK; `None` is written as 0, 0 (RESYNC, §2.1).
        range: Option<SeqRange>,
    },
}

impl Outgoing<'_> {
    fn msg_type(&self) -> MsgType {
        match *self {
            Self::Ct { msg_type, .. } | Self::Exp { msg_type, .. } => msg_type,
            Self::Control { .. } => MsgType::CTL,
        }
    }

    fn flags(&self) -> Flags {
        match *self {
            Self::Ct { flags, .. } | Self::Exp { flags, .. } | Self::Control { flags, .. } => flags,
        }
    }

    fn check(&self) -> Result<(), Error> {
        match *self {
            Self::Ct { msg_type, .. } if !msg_type.is_ct() => Err(Error::BadType("CT payload")),
            Self::Exp { msg_type, .. } if !msg_type.is_exp() => Err(Error::BadType("EXP payload")),
            _ => Ok(()),
        }
    }

    fn header_len(&self) -> usize {
        if header::has_range(self.msg_type(), self.flags()) {
            header::RANGE_HEADER_LEN
        } else {
            header::HEADER_LEN
        }
    }

    /// Total message length: header, attributes, padding.
    pub fn buffer_len(&self) -> usize {
        self.header_len()
            + match *self {
                Self::Ct { repr, .. } => repr.buffer_len(),
                Self::Exp { repr, .. } => repr.buffer_len(),
                Self::Control { .. } => 0,
            }
    }

    /// Serialises the message with sequence number `seq` into the front of `buf` and returns
    /// its length.
    pub fn emit(&self, seq: u32, buf: &mut [u8]) -> Result<usize, Error> {
        let len = self.emit_bounded(seq, buf)?;
        if len > buf.len() {
            return Err(Error::TooBig);
        }
        Ok(len)
    }

    /// Sizes and serialises in one pass (the hot path: no separate sizing pass). Returns the
    /// message length, having written the message if that is at most `buf.len()`; if it is
    /// larger, `buf` holds an unusable prefix.
    fn emit_bounded(&self, seq: u32, buf: &mut [u8]) -> Result<usize, Error> {
        self.check()?;
        let hlen = self.header_len();
        let body = buf.get_mut(hlen..).unwrap_or_default();
        let blen = match *self {
            Self::Ct { repr, .. } => repr.emit_bounded(body),
            Self::Exp { repr, .. } => repr.emit_bounded(body),
            Self::Control { .. } => 0,
        };
        let len = hlen + blen;
        let len16 = u16::try_from(len).map_err(|_| Error::Unencodable("message over 64 KiB"))?;
        if len <= buf.len() {
            let hdr = header::Repr {
                msg_type: self.msg_type(),
                flags: self.flags(),
                len: len16,
                seq,
                range: match *self {
                    Self::Control { range, .. } => range,
                    _ => None,
                },
            };
            hdr.emit(&mut Packet::new_unchecked(&mut buf[..hlen]));
        }
        Ok(len)
    }
}

/// A datagram being filled, in a caller-supplied buffer.
///
/// Mirrors the C link buffer (§9): a message is appended only while
/// `used + len < size` (strictly), so a datagram never exceeds `size - 1` bytes.
#[derive(Debug)]
pub struct Datagram<'b> {
    buf: &'b mut [u8],
    used: usize,
    cap: usize,
}

impl<'b> Datagram<'b> {
    /// A datagram of link buffer size `size` (see [`Transport::buffer_size`]) in `buf`.
    /// The usable capacity is `min(size - 1, buf.len())`.
    pub fn new(buf: &'b mut [u8], size: usize) -> Self {
        let cap = size.saturating_sub(1).min(buf.len());
        Self { buf, used: 0, cap }
    }

    /// Appends `msg` stamped with the next number of `seq` and returns that number.
    ///
    /// [`Error::Full`]: it does not fit after the messages already there; send
    /// [`Self::as_bytes`], [`Self::clear`] and push again (no number was taken).
    /// [`Error::TooBig`]: it would not fit even in an empty datagram.
    pub fn push(&mut self, seq: &mut SeqCounter, msg: &Outgoing<'_>) -> Result<u32, Error> {
        let s = seq.peek();
        // One pass writes the message behind the ones already there and measures it; if it
        // turns out not to fit, `used` stays put and the partial bytes beyond it are ignored.
        let len = msg.emit_bounded(s, &mut self.buf[self.used..self.cap])?;
        if len > self.cap {
            return Err(Error::TooBig);
        }
        if self.used + len > self.cap {
            return Err(Error::Full);
        }
        self.used += len;
        seq.next();
        Ok(s)
    }

    /// Like [`Self::push`], but when the datagram is full hands its bytes to `flush`,
    /// empties it and appends the message to the fresh datagram (the C sender's rule).
    pub fn push_or_flush(
        &mut self,
        seq: &mut SeqCounter,
        msg: &Outgoing<'_>,
        flush: impl FnOnce(&[u8]),
    ) -> Result<u32, Error> {
        match self.push(seq, msg) {
            Err(Error::Full) => {
                flush(self.as_bytes());
                self.clear();
                self.push(seq, msg)
            }
            r => r,
        }
    }

    /// The messages appended so far: the datagram payload to send.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.used]
    }

    /// Bytes used.
    pub const fn len(&self) -> usize {
        self.used
    }

    /// True if no message has been appended.
    pub const fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Forgets the messages (after sending them).
    pub fn clear(&mut self) {
        self.used = 0;
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::msgs::{Kind, Messages};

    #[test]
    fn test_batch_limits() {
        assert_eq!(Transport::Udp.buffer_size(1500), 1472);
        assert_eq!(Transport::Multicast.buffer_size(1500), 1472);
        assert_eq!(Transport::Tcp.buffer_size(1500), 1460);

        // Link buffer of 25 bytes: 24 usable, so three 8-byte ALIVEs fit, the fourth does not.
        let mut buf = [0u8; 64];
        let mut d = Datagram::new(&mut buf, 25);
        let mut seq = SeqCounter::new(u32::MAX);
        let alive = Outgoing::Control {
            flags: Flags::ALIVE,
            range: None,
        };
        assert_eq!(d.push(&mut seq, &alive), Ok(u32::MAX));
        assert_eq!(d.push(&mut seq, &alive), Ok(0));
        assert_eq!(d.push(&mut seq, &alive), Ok(1));
        assert_eq!(d.push(&mut seq, &alive), Err(Error::Full));
        assert_eq!(seq.peek(), 2);
        let ack = Outgoing::Control {
            flags: Flags::ACK,
            range: Some(SeqRange { from: 5, to: 9 }),
        };
        let mut sent = Vec::new();
        assert_eq!(
            d.push_or_flush(&mut seq, &ack, |b| sent.extend_from_slice(b)),
            Ok(2)
        );
        assert_eq!(sent.len(), 24);
        let m: Vec<_> = Messages::new(d.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].kind(), Kind::Ack(SeqRange { from: 5, to: 9 }));
        assert_eq!(m[0].header.seq, 2);

        let mut small = Datagram::new(&mut buf, 16);
        assert_eq!(small.push(&mut seq, &ack), Err(Error::TooBig));
        let bad = Outgoing::Ct {
            msg_type: MsgType::CTL,
            flags: Flags::NONE,
            repr: &ct::Repr::default(),
        };
        assert!(matches!(small.push(&mut seq, &bad), Err(Error::BadType(_))));
    }
}
