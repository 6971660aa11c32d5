//! The conntrackd 1.4.7 sync protocol: a pure codec, no sockets, no clock.
//!
//! One datagram (or a run of TCP stream bytes) is a concatenation of messages. Each message
//! is an 8-byte header ([`header`]), optionally extended by a sequence range for ACK, NACK
//! and RESYNC, followed by netattr TLVs ([`attr`]) carrying a conntrack ([`ct`]) or an
//! expectation ([`exp`]), built from the shared values in [`mod@tuple`]. [`msgs`] splits a
//! received datagram; [`batch`] packs outgoing messages into one datagram the way the C
//! daemon does.
//!
//! Reference: `shared/reference/wire-protocol.md` (section numbers in comments point there).
//!
//! # The no-panic contract
//!
//! Every view (`Packet<T>`) has `new_unchecked`, `check_len` and `new_checked`. After
//! `check_len` succeeds no accessor of that view can panic, whatever the bytes are. Parsers
//! (`Repr::parse`, the iterators) only go through checked views, so malformed peer input
//! always ends in a typed [`Error`], never a panic. Emission works the other way round: it
//! writes through unchecked views into a range it has bounds-checked itself, and
//! `new_checked` is never used for emission. A message is sized and written in one pass
//! (`emit_bounded`): an attribute that does not fit is counted but not written, so the
//! length comes out exact either way and a datagram knows afterwards whether it fitted.
//!
//! # Checksum
//!
//! The protocol has no checksum field (§10): conntrackd's `Checksum on|off` only sets
//! `SO_NO_CHECK` on the sending UDP socket, so it belongs to the channel layer and nothing
//! here implements it.

use core::fmt;

pub mod attr;
pub mod batch;
pub mod ct;
pub mod exp;
pub mod header;
pub mod msgs;
pub mod tuple;
pub mod types;

#[cfg(test)]
mod tests;

pub use attr::{Attr, AttrIter, Packet as NetAttrPacket};
pub use batch::{Datagram, Outgoing, SeqCounter, Transport};
pub use ct::Repr as CtRepr;
pub use exp::Repr as ExpRepr;
pub use header::{Packet as NetHdrPacket, Repr as NetHdrRepr};
pub use msgs::{Kind, Message, Messages};
pub use types::{AttrType, ExpAttrType, Flags, MsgType};

/// A byte range of a fixed-size field inside a view.
pub type Field = core::ops::Range<usize>;
/// The open-ended rest of a view, from a fixed offset.
pub type Rest = core::ops::RangeFrom<usize>;

/// Everything that can go wrong while decoding or encoding sync messages.
///
/// `Copy` and allocation-free so that the receive path can count and log errors without
/// touching the heap. The `&'static str` says which structure was being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The buffer ends inside a message: fewer than 8 (or 16) header bytes left, or `len`
    /// beyond the end. On a TCP stream this means "keep the bytes and read more".
    Truncated(&'static str),
    /// A length field that is corrupt: zero or smaller than its header, or (for attributes)
    /// beyond the end of the message.
    BadLength(&'static str),
    /// The version nibble of a message header is not 1 (§4 step 5). Only this message is
    /// lost; the C receiver carries on with the next one.
    BadVersion(u8),
    /// An attribute type outside the table of the message kind (§6.3: `>= 33` for CT,
    /// `>= 21` for EXP). Rejects the whole message.
    UnknownAttr(u16),
    /// An attribute whose `nta_len` is not the fixed size, or exceeds the maximum, for its
    /// type (§6.3). Rejects the whole message.
    BadAttrLen {
        /// Attribute type number.
        ty: u16,
        /// The offending `nta_len` (header included).
        len: u16,
    },
    /// A message type that cannot carry the requested payload (e.g. CT payload in a control
    /// message).
    BadType(&'static str),
    /// A value that cannot be encoded (e.g. a name longer than its attribute allows).
    Unencodable(&'static str),
    /// The message does not fit in the datagram being built; flush it and retry.
    Full,
    /// The message does not fit even in an empty datagram of this size.
    TooBig,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated(what) => write!(f, "truncated {what}"),
            Self::BadLength(what) => write!(f, "bad length in {what}"),
            Self::BadVersion(v) => write!(f, "wrong protocol version {v}"),
            Self::UnknownAttr(t) => write!(f, "unknown attribute type {t}"),
            Self::BadAttrLen { ty, len } => write!(f, "attribute {ty} has bad length {len}"),
            Self::BadType(what) => write!(f, "bad message type: {what}"),
            Self::Unencodable(what) => write!(f, "cannot encode {what}"),
            Self::Full => f.write_str("datagram full"),
            Self::TooBig => f.write_str("message larger than a datagram"),
        }
    }
}

impl std::error::Error for Error {}

/// Rounds `len` up to the 4-byte alignment of netattrs (§6).
#[inline]
pub const fn align4(len: usize) -> usize {
    (len + 3) & !3
}
