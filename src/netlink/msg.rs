//! Netlink messages: a typed view over one `nlmsghdr`, the iterator over the messages of one
//! `recv()` buffer, a classifier for control / nfnetlink messages, and the message builder.
//!
//! Layout (`struct nlmsghdr`, host byte order, then for nfnetlink types `struct nfgenmsg`):
//!
//! ```text
//! | nlmsg_len u32 | nlmsg_type u16 | nlmsg_flags u16 | nlmsg_seq u32 | nlmsg_pid u32 |
//! | nfgen_family u8 | version u8 (0) | res_id be16 (0) | attributes ... |
//! ```
//!
//! `nlmsg_type` of an nfnetlink message is `(subsystem << 8) | operation`.
//!
//! Contract (as in smoltcp's wire module): after [`NlMsg::new_checked`] succeeds no accessor
//! panics; the builder never reads what it writes, so it needs no checks.

use super::attr::{NLA_ALIGNTO, NLA_HDRLEN, nla_align};
use super::consts::{
    NFNETLINK_V0, NLA_F_NESTED, NLMSG_DONE, NLMSG_ERROR, NLMSG_MIN_TYPE, NLMSG_NOOP,
};
use super::error::Error;
use std::net::IpAddr;

/// Size of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;
/// Size of `struct nfgenmsg`.
pub const NFGENMSG_LEN: usize = 4;
/// Messages in one buffer start on multiples of this.
pub const NLMSG_ALIGNTO: usize = 4;

mod field {
    pub(super) type Field = core::ops::Range<usize>;
    pub(super) const LENGTH: Field = 0..4;
    pub(super) const TYPE: Field = 4..6;
    pub(super) const FLAGS: Field = 6..8;
    pub(super) const SEQ: Field = 8..12;
    pub(super) const PID: Field = 12..16;
}

/// Rounds `len` up to the message alignment.
#[inline]
pub const fn nlmsg_align(len: usize) -> usize {
    (len + NLMSG_ALIGNTO - 1) & !(NLMSG_ALIGNTO - 1)
}

/// A read-only view over one netlink message (header and payload, no trailing padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NlMsg<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NlMsg<T> {
    /// Wraps `buffer` without checking it; accessors may panic until [`Self::check_len`] passed.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` and checks that the header is whole and `nlmsg_len` is possible.
    /// `buffer` may be longer than the message (e.g. the rest of a `recv()` buffer).
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let m = Self::new_unchecked(buffer);
        m.check_len()?;
        Ok(m)
    }

    /// Checks that the header fits and `NLMSG_HDRLEN <= nlmsg_len <= buffer length`.
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < NLMSG_HDRLEN {
            return Err(Error::Truncated("nlmsghdr"));
        }
        let len = self.len();
        if len < NLMSG_HDRLEN {
            return Err(Error::BadLength("nlmsg_len"));
        }
        if len > b.len() {
            return Err(Error::Truncated("netlink message"));
        }
        Ok(())
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// `nlmsg_len`: header plus payload, in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        let b = &self.buffer.as_ref()[field::LENGTH];
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize
    }

    /// Whether the message has no payload (`nlmsg_len == NLMSG_HDRLEN`).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() <= NLMSG_HDRLEN
    }

    /// `nlmsg_type`.
    #[inline]
    pub fn msg_type(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::TYPE];
        u16::from_ne_bytes([b[0], b[1]])
    }

    /// `nlmsg_flags` (`NLM_F_*`).
    #[inline]
    pub fn flags(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::FLAGS];
        u16::from_ne_bytes([b[0], b[1]])
    }

    /// `nlmsg_seq`.
    #[inline]
    pub fn seq(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::SEQ];
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
    }

    /// `nlmsg_pid`: for events, the port id of the socket whose request caused it (0 for the
    /// packet path); conntrackd uses it to recognise its own changes.
    #[inline]
    pub fn pid(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::PID];
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The payload: the bytes after the header up to `nlmsg_len`.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[NLMSG_HDRLEN..self.len()]
    }

    /// The whole message, header included, without trailing padding.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.len()]
    }

    /// Classifies the message: a control message or an nfnetlink one (split into subsystem,
    /// operation, family and attribute area).
    pub fn classify(&self) -> Result<Payload<'_>, Error> {
        let ty = self.msg_type();
        let p = self.payload();
        Ok(match ty {
            NLMSG_DONE => Payload::Done,
            NLMSG_NOOP => Payload::Noop,
            NLMSG_ERROR => {
                // `struct nlmsgerr`: int error, then (at least) the header of the request.
                let Some(e) = p.get(..4) else {
                    return Err(Error::Truncated("nlmsgerr"));
                };
                let Some(orig) = p.get(4..4 + NLMSG_HDRLEN) else {
                    return Err(Error::Truncated("nlmsgerr request header"));
                };
                let error = i32::from_ne_bytes([e[0], e[1], e[2], e[3]]);
                let s = &orig[field::SEQ];
                Payload::Error {
                    // The kernel sends a negative errno; 0 is an ACK.
                    errno: error.wrapping_neg(),
                    original_seq: u32::from_ne_bytes([s[0], s[1], s[2], s[3]]),
                }
            }
            t if t >= NLMSG_MIN_TYPE => {
                let Some(g) = p.get(..NFGENMSG_LEN) else {
                    return Err(Error::Truncated("nfgenmsg"));
                };
                let [subsys, op] = t.to_be_bytes();
                Payload::Nfnl {
                    subsys,
                    op,
                    family: g[0],
                    attrs: &p[NFGENMSG_LEN..],
                }
            }
            t => Payload::Other { msg_type: t },
        })
    }
}

/// What a message carries; see [`NlMsg::classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// `NLMSG_DONE`: the end of a dump.
    Done,
    /// `NLMSG_ERROR`: `errno` is the **positive** errno (e.g. 17 = EEXIST), 0 for an ACK;
    /// `original_seq` is the sequence number of the request it answers.
    Error {
        /// Positive errno, 0 = ACK.
        errno: i32,
        /// `nlmsg_seq` of the request.
        original_seq: u32,
    },
    /// `NLMSG_NOOP`.
    Noop,
    /// An nfnetlink message.
    Nfnl {
        /// `NFNL_SUBSYS_*` (high byte of `nlmsg_type`).
        subsys: u8,
        /// Operation (`IPCTNL_MSG_*`, low byte of `nlmsg_type`).
        op: u8,
        /// `nfgen_family` (AF_INET, AF_INET6, ...).
        family: u8,
        /// The attribute area after `struct nfgenmsg`; walk it with [`super::attr::nlas`].
        attrs: &'a [u8],
    },
    /// Another control message (e.g. `NLMSG_OVERRUN`).
    Other {
        /// The `nlmsg_type`.
        msg_type: u16,
    },
}

/// Iterator over the messages in one `recv()` buffer; on the first corrupt message it yields
/// the error once and stops (nothing after a bad length can be trusted).
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    buf: &'a [u8],
}

/// Walks the messages in `buf`.
#[inline]
pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { buf }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<NlMsg<&'a [u8]>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        match NlMsg::new_checked(self.buf) {
            Ok(m) => {
                let len = m.len();
                let (this, rest) = self.buf.split_at(len);
                self.buf = rest.get(nlmsg_align(len) - len..).unwrap_or(&[]);
                Some(Ok(NlMsg::new_unchecked(this)))
            }
            Err(e) => {
                // Corrupt message: skip it and everything that follows.
                self.buf = &[];
                Some(Err(e))
            }
        }
    }
}

/// Marks an open nest; give it back to [`MsgBuilder::nest_end`].
#[derive(Debug)]
#[must_use = "a nest must be closed with nest_end"]
pub struct NestToken(usize);

/// Appends a message that is only a header (e.g. an `NLMSG_NOOP` asking for an ACK as a
/// batch barrier), aligned like the [`MsgBuilder`] messages before it. `nlmsg_pid` is 0.
pub fn push_header_only(buf: &mut Vec<u8>, msg_type: u16, flags: u16, seq: u32) {
    buf.resize(nlmsg_align(buf.len()), 0);
    let mut hdr = [0u8; NLMSG_HDRLEN];
    hdr[field::LENGTH].copy_from_slice(&(NLMSG_HDRLEN as u32).to_ne_bytes());
    hdr[field::TYPE].copy_from_slice(&msg_type.to_ne_bytes());
    hdr[field::FLAGS].copy_from_slice(&flags.to_ne_bytes());
    hdr[field::SEQ].copy_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&hdr);
}

/// Appends one nfnetlink message to a caller-owned `Vec<u8>`.
///
/// A batch is several builders used one after the other on the same vector; reusing the
/// vector across calls means no allocation in steady state. `nlmsg_len` is patched by
/// [`Self::finish`] (and, as a safety net, when the builder is dropped).
#[derive(Debug)]
pub struct MsgBuilder<'b> {
    buf: &'b mut Vec<u8>,
    start: usize,
}

impl<'b> MsgBuilder<'b> {
    /// Starts a message of type `(subsys << 8) | op` with `nfgenmsg { family, 0, 0 }`.
    /// `nlmsg_pid` is 0 (the kernel fills in the sender's port id).
    pub fn new(buf: &'b mut Vec<u8>, subsys: u8, op: u8, flags: u16, seq: u32, family: u8) -> Self {
        // Messages in a batch start aligned.
        buf.resize(nlmsg_align(buf.len()), 0);
        let start = buf.len();
        let mut hdr = [0u8; NLMSG_HDRLEN + NFGENMSG_LEN];
        // nlmsg_len (patched by finish) and nlmsg_pid (filled by the kernel) stay 0.
        hdr[field::TYPE].copy_from_slice(&u16::from_be_bytes([subsys, op]).to_ne_bytes());
        hdr[field::FLAGS].copy_from_slice(&flags.to_ne_bytes());
        hdr[field::SEQ].copy_from_slice(&seq.to_ne_bytes());
        hdr[NLMSG_HDRLEN] = family;
        hdr[NLMSG_HDRLEN + 1] = NFNETLINK_V0;
        buf.extend_from_slice(&hdr);
        Self { buf, start }
    }

    /// Appends an attribute with the raw value `v` (padded to 4 bytes).
    pub fn put_bytes(&mut self, ty: u16, v: &[u8]) {
        self.put_parts(ty, v, &[]);
    }

    fn put_parts(&mut self, ty: u16, a: &[u8], b: &[u8]) {
        let len = NLA_HDRLEN + a.len() + b.len();
        // Our own values are tiny; a u16 overflow would be a bug in the caller.
        debug_assert!(len <= usize::from(u16::MAX));
        // One reservation, then plain copies: this is the per-event path of the inject mode.
        self.buf.reserve(nla_align(len));
        let [l0, l1] = (len as u16).to_ne_bytes();
        let [t0, t1] = ty.to_ne_bytes();
        self.buf.extend_from_slice(&[l0, l1, t0, t1]);
        self.buf.extend_from_slice(a);
        self.buf.extend_from_slice(b);
        self.buf
            .extend_from_slice(&[0; NLA_ALIGNTO][..nla_align(len) - len]);
    }

    /// Appends a `u8` attribute.
    pub fn put_u8(&mut self, ty: u16, v: u8) {
        self.put_bytes(ty, &[v]);
    }

    /// Appends a big-endian `u16` attribute.
    pub fn put_u16_be(&mut self, ty: u16, v: u16) {
        self.put_bytes(ty, &v.to_be_bytes());
    }

    /// Appends a big-endian `u32` attribute.
    pub fn put_u32_be(&mut self, ty: u16, v: u32) {
        self.put_bytes(ty, &v.to_be_bytes());
    }

    /// Appends a big-endian `u64` attribute.
    pub fn put_u64_be(&mut self, ty: u16, v: u64) {
        self.put_bytes(ty, &v.to_be_bytes());
    }

    /// Appends a NUL-terminated string attribute (the kernel's `NLA_NUL_STRING` policy).
    pub fn put_str(&mut self, ty: u16, s: &str) {
        self.put_cstr(ty, s.as_bytes());
    }

    /// Appends `s` plus a terminating NUL (for names kept as bytes).
    pub fn put_cstr(&mut self, ty: u16, s: &[u8]) {
        self.put_parts(ty, s, &[0]);
    }

    /// Appends an address in network order (4 or 16 bytes).
    pub fn put_ip(&mut self, ty: u16, ip: IpAddr) {
        match ip {
            IpAddr::V4(a) => self.put_bytes(ty, &a.octets()),
            IpAddr::V6(a) => self.put_bytes(ty, &a.octets()),
        }
    }

    /// Opens a nest of type `ty` (with `NLA_F_NESTED` set).
    pub fn nest_start(&mut self, ty: u16) -> NestToken {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        NestToken(at)
    }

    /// Closes the nest opened by `t`, patching its length.
    pub fn nest_end(&mut self, t: NestToken) {
        let len = self.buf.len() - t.0;
        debug_assert!(len <= usize::from(u16::MAX));
        self.buf[t.0..t.0 + 2].copy_from_slice(&(len as u16).to_ne_bytes());
    }

    /// The length of the message so far.
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Always false: a message has at least its headers.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn patch_len(&mut self) -> usize {
        let len = self.len();
        self.buf[self.start..self.start + 4].copy_from_slice(&(len as u32).to_ne_bytes());
        len
    }

    /// Patches `nlmsg_len` and returns the message length.
    pub fn finish(mut self) -> usize {
        self.patch_len()
    }
}

impl Drop for MsgBuilder<'_> {
    fn drop(&mut self) {
        // Keeps the batch parseable even if the caller forgot `finish`.
        self.patch_len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::attr::nlas;
    use crate::netlink::consts::*;

    #[rustfmt::skip]
    static CT_GET_DUMP: [u8; 20] = [
        // nlmsg_len = 20
        0x14, 0x00, 0x00, 0x00,
        // nlmsg_type = 0x0101 (CTNETLINK << 8 | CT_GET), flags = REQUEST | DUMP
        0x01, 0x01, 0x01, 0x03,
        // nlmsg_seq = 42
        0x2a, 0x00, 0x00, 0x00,
        // nlmsg_pid = 0
        0x00, 0x00, 0x00, 0x00,
        // nfgen_family = AF_UNSPEC, version = 0, res_id = 0
        0x00, 0x00, 0x00, 0x00,
    ];

    #[rustfmt::skip]
    static ACK_AND_DONE: [u8; 56] = [
        // nlmsg_len = 36, type = NLMSG_ERROR, flags = NLM_F_CAPPED
        0x24, 0x00, 0x00, 0x00,  0x02, 0x00, 0x00, 0x01,
        // seq = 7, pid = 1234
        0x07, 0x00, 0x00, 0x00,  0xd2, 0x04, 0x00, 0x00,
        // error = -17 (EEXIST)
        0xef, 0xff, 0xff, 0xff,
        // original request header: len 20, type 0x0100, flags 0x0605, seq 7, pid 1234
        0x14, 0x00, 0x00, 0x00,  0x00, 0x01, 0x05, 0x06,
        0x07, 0x00, 0x00, 0x00,  0xd2, 0x04, 0x00, 0x00,
        // nlmsg_len = 20, type = NLMSG_DONE, flags = NLM_F_MULTI
        0x14, 0x00, 0x00, 0x00,  0x03, 0x00, 0x02, 0x00,
        // seq = 7, pid = 1234
        0x07, 0x00, 0x00, 0x00,  0xd2, 0x04, 0x00, 0x00,
        // int 0 (the dump's status)
        0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn test_deconstruct() {
        let m = NlMsg::new_checked(&CT_GET_DUMP[..]).unwrap();
        assert_eq!(m.len(), 20);
        assert_eq!(m.msg_type(), 0x0101);
        assert_eq!(m.flags(), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(m.seq(), 42);
        assert_eq!(m.pid(), 0);
        assert_eq!(m.payload(), &[0, 0, 0, 0]);
        assert_eq!(
            m.classify(),
            Ok(Payload::Nfnl {
                subsys: NFNL_SUBSYS_CTNETLINK,
                op: IPCTNL_MSG_CT_GET,
                family: 0,
                attrs: &[]
            })
        );
    }

    #[test]
    fn test_construct() {
        let mut buf = Vec::new();
        let b = MsgBuilder::new(
            &mut buf,
            NFNL_SUBSYS_CTNETLINK,
            IPCTNL_MSG_CT_GET,
            NLM_F_REQUEST | NLM_F_DUMP,
            42,
            0,
        );
        assert_eq!(b.finish(), 20);
        assert_eq!(buf, CT_GET_DUMP);
    }

    #[test]
    fn test_ack_error_done() {
        let v: Vec<_> = messages(&ACK_AND_DONE).collect::<Result<_, _>>().unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0].classify(),
            Ok(Payload::Error {
                errno: 17,
                original_seq: 7
            })
        );
        assert_eq!(v[0].pid(), 1234);
        assert_eq!(v[1].classify(), Ok(Payload::Done));
        assert_eq!(v[1].flags(), NLM_F_MULTI);
    }

    #[rustfmt::skip]
    static BUILT: [u8; 64] = [
        // nlmsg_len = 64, type = 0x0100 (CT_NEW), flags = REQUEST|ACK|EXCL|CREATE
        0x40, 0x00, 0x00, 0x00,  0x00, 0x01, 0x05, 0x06,
        // seq = 1, pid = 0
        0x01, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
        // nfgenmsg: AF_INET
        0x02, 0x00, 0x00, 0x00,
        // CTA_MARK (len 8): BE32 7
        0x08, 0x00, 0x08, 0x00,  0x00, 0x00, 0x00, 0x07,
        // CTA_HELP | NESTED (len 12)
        0x0c, 0x00, 0x05, 0x80,
        //   CTA_HELP_NAME (len 8): "ftp\0"
        0x08, 0x00, 0x01, 0x00,  b'f', b't', b'p', 0x00,
        // CTA_PROTOINFO | NESTED (len 16)
        0x10, 0x00, 0x04, 0x80,
        //   CTA_PROTOINFO_TCP | NESTED (len 12)
        0x0c, 0x00, 0x01, 0x80,
        //     CTA_PROTOINFO_TCP_STATE (len 5): 3, padding
        0x05, 0x00, 0x01, 0x00,  0x03, 0x00, 0x00, 0x00,
        // CTA_ZONE (len 6): BE16 5, padding
        0x06, 0x00, 0x12, 0x00,  0x00, 0x05, 0x00, 0x00,
    ];

    #[test]
    fn test_builder_nests() {
        let mut buf = Vec::new();
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE;
        let mut b = MsgBuilder::new(
            &mut buf,
            NFNL_SUBSYS_CTNETLINK,
            IPCTNL_MSG_CT_NEW,
            flags,
            1,
            AF_INET,
        );
        b.put_u32_be(CTA_MARK, 7);
        let h = b.nest_start(CTA_HELP);
        b.put_str(CTA_HELP_NAME, "ftp");
        b.nest_end(h);
        let p = b.nest_start(CTA_PROTOINFO);
        let t = b.nest_start(CTA_PROTOINFO_TCP);
        b.put_u8(CTA_PROTOINFO_TCP_STATE, 3);
        b.nest_end(t);
        b.nest_end(p);
        b.put_u16_be(CTA_ZONE, 5);
        assert_eq!(b.finish(), 64);
        assert_eq!(buf, BUILT);
        // And it parses back.
        let m = messages(&buf).next().unwrap().unwrap();
        let Ok(Payload::Nfnl { attrs, family, .. }) = m.classify() else {
            panic!()
        };
        assert_eq!(family, AF_INET);
        let a: Vec<_> = nlas(attrs).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            a.iter().map(|n| (n.ty, n.nested)).collect::<Vec<_>>(),
            [
                (CTA_MARK, false),
                (CTA_HELP, true),
                (CTA_PROTOINFO, true),
                (CTA_ZONE, false)
            ]
        );
    }

    #[test]
    fn test_batch() {
        let mut buf = Vec::with_capacity(256);
        for seq in 0..3 {
            let mut b = MsgBuilder::new(
                &mut buf,
                NFNL_SUBSYS_CTNETLINK,
                IPCTNL_MSG_CT_DELETE,
                NLM_F_REQUEST,
                seq,
                AF_INET,
            );
            b.put_u8(CTA_PROTOINFO, 1); // odd length: the next message must start aligned
            b.finish();
        }
        let seqs: Vec<_> = messages(&buf).map(|m| m.unwrap().seq()).collect();
        assert_eq!(seqs, [0, 1, 2]);
        // A header-only barrier after them, aligned like the rest.
        push_header_only(&mut buf, NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, 3);
        let last = messages(&buf).last().unwrap().unwrap();
        assert_eq!(
            (last.msg_type(), last.flags(), last.seq(), last.len()),
            (NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, 3, NLMSG_HDRLEN)
        );
        assert_eq!(messages(&buf).count(), 4);
        // Dropping without finish still patches the length.
        let mut buf2 = Vec::new();
        drop(MsgBuilder::new(&mut buf2, 1, 0, 0, 0, 0));
        assert_eq!(NlMsg::new_checked(&buf2[..]).unwrap().len(), 20);
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(
            NlMsg::new_checked(&CT_GET_DUMP[..15]),
            Err(Error::Truncated("nlmsghdr"))
        );
        assert_eq!(
            NlMsg::new_checked(&CT_GET_DUMP[..19]),
            Err(Error::Truncated("netlink message"))
        );
        let mut short = CT_GET_DUMP;
        short[0] = 15;
        assert_eq!(
            NlMsg::new_checked(&short[..]),
            Err(Error::BadLength("nlmsg_len"))
        );
        // The iterator yields the error once, then ends.
        let mut two = CT_GET_DUMP.to_vec();
        two.extend_from_slice(&short);
        let v: Vec<_> = messages(&two).collect();
        assert_eq!(v.len(), 2);
        assert!(v[0].is_ok());
        assert_eq!(v[1], Err(Error::BadLength("nlmsg_len")));
        // Classifier errors: an nfnetlink type without nfgenmsg, an error without the request.
        let mut hdr_only = CT_GET_DUMP;
        hdr_only[0] = 16;
        let m = NlMsg::new_checked(&hdr_only[..]).unwrap();
        assert_eq!(m.classify(), Err(Error::Truncated("nfgenmsg")));
        let mut err = ACK_AND_DONE[..36].to_vec();
        err[0] = 24;
        let m = NlMsg::new_checked(&err[..]).unwrap();
        assert_eq!(
            m.classify(),
            Err(Error::Truncated("nlmsgerr request header"))
        );
    }

    #[test]
    fn test_error_with_ext_ack() {
        // An error with NLM_F_CAPPED | NLM_F_ACK_TLVS: the request header, then an
        // NLMSGERR_ATTR_MSG string. conntrackd never asks for extended ACKs, but a reader
        // must not trip over them.
        #[rustfmt::skip]
        let msg = [
            // nlmsg_len = 44, type = NLMSG_ERROR, flags = CAPPED | ACK_TLVS
            0x2c, 0x00, 0x00, 0x00,  0x02, 0x00, 0x00, 0x03,
            // seq = 9, pid = 0
            0x09, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
            // error = -22 (EINVAL)
            0xea, 0xff, 0xff, 0xff,
            // request header: len 20, type 0x0100, flags 0x0605, seq 9, pid 0
            0x14, 0x00, 0x00, 0x00,  0x00, 0x01, 0x05, 0x06,
            0x09, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
            // NLMSGERR_ATTR_MSG (len 8): "bad\0"
            0x08, 0x00, 0x01, 0x00,  b'b', b'a', b'd', 0x00,
        ];
        let m = NlMsg::new_checked(&msg[..]).unwrap();
        assert_eq!(
            m.classify(),
            Ok(Payload::Error {
                errno: 22,
                original_seq: 9
            })
        );
    }

    #[test]
    fn test_other_types() {
        let mut m = CT_GET_DUMP;
        m[4] = NLMSG_NOOP as u8;
        m[5] = 0;
        assert_eq!(
            NlMsg::new_checked(&m[..]).unwrap().classify(),
            Ok(Payload::Noop)
        );
        m[4] = NLMSG_OVERRUN as u8;
        assert_eq!(
            NlMsg::new_checked(&m[..]).unwrap().classify(),
            Ok(Payload::Other { msg_type: 4 })
        );
    }
}
