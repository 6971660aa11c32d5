//! Conntrack entries (`CTA_*` attributes of `NFNL_SUBSYS_CTNETLINK` messages) as plain data.
//!
//! [`Conntrack::parse`] turns the attribute area of a CT_NEW / CT_DELETE message (event, dump
//! line or GET reply) into a `Copy` struct; [`Conntrack::emit`] writes the attributes of a
//! request (create, update, delete, get) with [`MsgBuilder`]. Neither allocates.
//!
//! Rules, all from the kernel's behaviour:
//! * attributes may come in any order; a repeated attribute overwrites the earlier one;
//! * unknown attribute types are skipped and counted in [`Conntrack::unknown_attrs`]; known
//!   ones we do not model (secmark, secctx, mark/labels/status masks, filter) are skipped
//!   silently;
//! * a malformed length is a typed [`Error`], never a panic;
//! * read-only kernel data (id, use count, counters, timestamps) is parsed but never emitted.

use super::attr::{Nla, nlas};
use super::consts::*;
use super::error::Error;
use super::msg::MsgBuilder;
use super::name::HelperName;
use super::protoinfo::ProtoInfo;
use super::tuple::{PLACEHOLDER, Tuple, addr, be16, be32};
use std::net::IpAddr;

/// Size of the kernel's label bitmap (`NF_CT_LABELS_MAX_SIZE`, 128 bits).
pub const LABELS_LEN: usize = 16;

/// A NAT request (`CTA_NAT_SRC` / `CTA_NAT_DST`): an address range and a port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NatRange {
    /// `CTA_NAT_V4_MINIP` / `CTA_NAT_V6_MINIP`.
    pub min_ip: Option<IpAddr>,
    /// `CTA_NAT_V4_MAXIP` / `CTA_NAT_V6_MAXIP` (the kernel uses `min_ip` when absent).
    pub max_ip: Option<IpAddr>,
    /// `CTA_NAT_PROTO { CTA_PROTONAT_PORT_MIN }`.
    pub min_port: Option<u16>,
    /// `CTA_NAT_PROTO { CTA_PROTONAT_PORT_MAX }`.
    pub max_port: Option<u16>,
}

/// Sequence-number adjustment of one direction (`CTA_SEQ_ADJ_ORIG` / `_REPLY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqAdj {
    /// `CTA_SEQADJ_CORRECTION_POS`.
    pub correction_pos: u32,
    /// `CTA_SEQADJ_OFFSET_BEFORE`.
    pub offset_before: u32,
    /// `CTA_SEQADJ_OFFSET_AFTER`.
    pub offset_after: u32,
}

/// SYN proxy state (`CTA_SYNPROXY`). The kernel attaches a (zeroed) one to every entry created
/// through ctnetlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Synproxy {
    /// `CTA_SYNPROXY_ISN`.
    pub isn: u32,
    /// `CTA_SYNPROXY_ITS`.
    pub its: u32,
    /// `CTA_SYNPROXY_TSOFF`.
    pub tsoff: u32,
}

/// Accounting of one direction (`CTA_COUNTERS_ORIG` / `_REPLY`); read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Counters {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// `CTA_TIMESTAMP` (nanoseconds since the epoch); read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timestamp {
    /// `CTA_TIMESTAMP_START`.
    pub start: Option<u64>,
    /// `CTA_TIMESTAMP_STOP` (destroy events only).
    pub stop: Option<u64>,
}

/// One conntrack entry as plain data. `None` = the attribute was absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conntrack {
    /// `nfgen_family` of the message (AF_INET / AF_INET6).
    pub family: u8,
    /// `CTA_TUPLE_ORIG` (required).
    pub orig: Tuple,
    /// `CTA_TUPLE_REPLY`.
    pub reply: Option<Tuple>,
    /// `CTA_TUPLE_MASTER`: the original tuple of the master of a RELATED entry.
    pub master: Option<Tuple>,
    /// `CTA_STATUS` (`IPS_*` bits).
    pub status: Option<u32>,
    /// `CTA_TIMEOUT`, seconds.
    pub timeout: Option<u32>,
    /// `CTA_MARK`.
    pub mark: Option<u32>,
    /// `CTA_ZONE` (the kernel omits zone 0).
    pub zone: Option<u16>,
    /// `CTA_LABELS`: the kernel's bitmap as it sends it (host-order `unsigned long` words);
    /// shorter values are zero-extended.
    pub labels: Option<[u8; LABELS_LEN]>,
    /// `CTA_HELP { CTA_HELP_NAME }`.
    pub helper: Option<HelperName>,
    /// `CTA_PROTOINFO`.
    pub protoinfo: Option<ProtoInfo>,
    /// `CTA_NAT_SRC` (requests only: the kernel never reports it).
    pub nat_src: Option<NatRange>,
    /// `CTA_NAT_DST` (requests only).
    pub nat_dst: Option<NatRange>,
    /// `CTA_SEQ_ADJ_ORIG`.
    pub seq_adj_orig: Option<SeqAdj>,
    /// `CTA_SEQ_ADJ_REPLY`.
    pub seq_adj_reply: Option<SeqAdj>,
    /// `CTA_SYNPROXY`.
    pub synproxy: Option<Synproxy>,
    /// `CTA_ID` (read-only, not emitted).
    pub id: Option<u32>,
    /// `CTA_USE` (read-only, not emitted).
    pub use_count: Option<u32>,
    /// `CTA_COUNTERS_ORIG` (read-only, not emitted).
    pub counters_orig: Option<Counters>,
    /// `CTA_COUNTERS_REPLY` (read-only, not emitted).
    pub counters_reply: Option<Counters>,
    /// `CTA_TIMESTAMP` (read-only, not emitted).
    pub timestamp: Option<Timestamp>,
    /// `CTA_TIMESTAMP_EVENT`: when the kernel generated this event, ns (read-only, not
    /// emitted; Linux >= 6.14 with timestamps on).
    pub timestamp_event: Option<u64>,
    /// Number of attributes (at any nesting level) whose type this codec does not know.
    pub unknown_attrs: u16,
}

impl Conntrack {
    /// An entry with only the original tuple; fill in the rest field by field.
    pub const fn new(family: u8, orig: Tuple) -> Self {
        Self {
            family,
            orig,
            reply: None,
            master: None,
            status: None,
            timeout: None,
            mark: None,
            zone: None,
            labels: None,
            helper: None,
            protoinfo: None,
            nat_src: None,
            nat_dst: None,
            seq_adj_orig: None,
            seq_adj_reply: None,
            synproxy: None,
            id: None,
            use_count: None,
            counters_orig: None,
            counters_reply: None,
            timestamp: None,
            timestamp_event: None,
            unknown_attrs: 0,
        }
    }

    /// Parses the attribute area of a ctnetlink message (`Payload::Nfnl::attrs`).
    pub fn parse(family: u8, attrs: &[u8]) -> Result<Self, Error> {
        let mut unknown = 0u16;
        let mut orig = None;
        // The original tuple is filled in at the end (it may come after the others).
        let mut ct = Self::new(family, PLACEHOLDER);
        for nla in nlas(attrs) {
            let nla = nla?;
            let u = &mut unknown;
            match nla.ty {
                CTA_TUPLE_ORIG => orig = Some(Tuple::parse(nla.value, u)?),
                CTA_TUPLE_REPLY => ct.reply = Some(Tuple::parse(nla.value, u)?),
                CTA_TUPLE_MASTER => ct.master = Some(Tuple::parse(nla.value, u)?),
                CTA_STATUS => ct.status = Some(be32(&nla, "CTA_STATUS")?),
                CTA_TIMEOUT => ct.timeout = Some(be32(&nla, "CTA_TIMEOUT")?),
                CTA_MARK => ct.mark = Some(be32(&nla, "CTA_MARK")?),
                CTA_ID => ct.id = Some(be32(&nla, "CTA_ID")?),
                CTA_USE => ct.use_count = Some(be32(&nla, "CTA_USE")?),
                CTA_ZONE => ct.zone = Some(be16(&nla, "CTA_ZONE")?),
                CTA_LABELS => ct.labels = Some(parse_labels(&nla)?),
                CTA_HELP => ct.helper = parse_help(nla.value, u)?,
                CTA_PROTOINFO => ct.protoinfo = ProtoInfo::parse(nla.value, u)?,
                CTA_NAT_SRC => ct.nat_src = Some(NatRange::parse(nla.value, u)?),
                CTA_NAT_DST => ct.nat_dst = Some(NatRange::parse(nla.value, u)?),
                CTA_SEQ_ADJ_ORIG => ct.seq_adj_orig = Some(SeqAdj::parse(nla.value, u)?),
                CTA_SEQ_ADJ_REPLY => ct.seq_adj_reply = Some(SeqAdj::parse(nla.value, u)?),
                CTA_SYNPROXY => ct.synproxy = Some(Synproxy::parse(nla.value, u)?),
                CTA_COUNTERS_ORIG => ct.counters_orig = Some(Counters::parse(nla.value, u)?),
                CTA_COUNTERS_REPLY => ct.counters_reply = Some(Counters::parse(nla.value, u)?),
                CTA_TIMESTAMP => ct.timestamp = Some(Timestamp::parse(nla.value, u)?),
                CTA_TIMESTAMP_EVENT => {
                    ct.timestamp_event =
                        Some(u64::from_be_bytes(nla.array("CTA_TIMESTAMP_EVENT")?));
                }
                // Known but not modelled: conntrackd neither syncs nor shows them.
                CTA_SECMARK | CTA_SECCTX | CTA_MARK_MASK | CTA_LABELS_MASK | CTA_FILTER
                | CTA_STATUS_MASK => {}
                _ => *u = u.saturating_add(1),
            }
        }
        ct.orig = orig.ok_or(Error::Missing("CTA_TUPLE_ORIG"))?;
        ct.unknown_attrs = unknown;
        Ok(ct)
    }

    /// Appends every present, writable attribute to `b` (read-only ones are left out), in the
    /// order libnetfilter_conntrack uses. Build only what the request needs: e.g. a delete or
    /// get wants just the original tuple (and zone), an update must not carry NAT, helper or
    /// master (the kernel answers EBUSY/EINVAL).
    pub fn emit(&self, b: &mut MsgBuilder<'_>) {
        self.orig.emit(b, CTA_TUPLE_ORIG);
        if let Some(t) = &self.reply {
            t.emit(b, CTA_TUPLE_REPLY);
        }
        if let Some(t) = &self.master {
            t.emit(b, CTA_TUPLE_MASTER);
        }
        if let Some(v) = self.status {
            b.put_u32_be(CTA_STATUS, v);
        }
        if let Some(v) = self.timeout {
            b.put_u32_be(CTA_TIMEOUT, v);
        }
        if let Some(v) = self.mark {
            b.put_u32_be(CTA_MARK, v);
        }
        if let Some(p) = &self.protoinfo {
            p.emit(b);
        }
        if let Some(n) = &self.nat_src {
            n.emit(b, CTA_NAT_SRC);
        }
        if let Some(n) = &self.nat_dst {
            n.emit(b, CTA_NAT_DST);
        }
        if let Some(s) = &self.seq_adj_orig {
            s.emit(b, CTA_SEQ_ADJ_ORIG);
        }
        if let Some(s) = &self.seq_adj_reply {
            s.emit(b, CTA_SEQ_ADJ_REPLY);
        }
        if let Some(h) = &self.helper {
            let n = b.nest_start(CTA_HELP);
            b.put_cstr(CTA_HELP_NAME, h.as_bytes());
            b.nest_end(n);
        }
        if let Some(z) = self.zone {
            b.put_u16_be(CTA_ZONE, z);
        }
        if let Some(l) = &self.labels {
            b.put_bytes(CTA_LABELS, l);
        }
        if let Some(s) = &self.synproxy {
            let n = b.nest_start(CTA_SYNPROXY);
            b.put_u32_be(CTA_SYNPROXY_ISN, s.isn);
            b.put_u32_be(CTA_SYNPROXY_ITS, s.its);
            b.put_u32_be(CTA_SYNPROXY_TSOFF, s.tsoff);
            b.nest_end(n);
        }
    }

    /// The same entry without the read-only fields [`Self::emit`] leaves out (id, use count,
    /// counters, timestamps) and with no unknown attributes: what a parse of the emitted bytes
    /// gives back.
    pub fn writable(&self) -> Self {
        Self {
            id: None,
            use_count: None,
            counters_orig: None,
            counters_reply: None,
            timestamp: None,
            timestamp_event: None,
            unknown_attrs: 0,
            ..*self
        }
    }
}

fn parse_labels(nla: &Nla<'_>) -> Result<[u8; LABELS_LEN], Error> {
    let mut out = [0; LABELS_LEN];
    match out.get_mut(..nla.value.len()) {
        Some(dst) => dst.copy_from_slice(nla.value),
        None => return Err(Error::BadLength("CTA_LABELS")),
    }
    Ok(out)
}

fn parse_help(value: &[u8], unknown: &mut u16) -> Result<Option<HelperName>, Error> {
    let mut name = None;
    for nla in nlas(value) {
        let nla = nla?;
        match nla.ty {
            CTA_HELP_NAME => {
                let n = HelperName::new(nla.str_bytes())
                    .map_err(|_| Error::BadLength("CTA_HELP_NAME"))?;
                name = Some(n);
            }
            // Helper private data: opaque, not synced.
            CTA_HELP_INFO => {}
            _ => *unknown = unknown.saturating_add(1),
        }
    }
    Ok(name)
}

impl NatRange {
    /// Parses the value of `CTA_NAT_SRC` / `CTA_NAT_DST`.
    pub fn parse(value: &[u8], unknown: &mut u16) -> Result<Self, Error> {
        let mut r = Self::default();
        for nla in nlas(value) {
            let nla = nla?;
            match nla.ty {
                CTA_NAT_V4_MINIP => r.min_ip = Some(addr(&nla, false, "CTA_NAT_V4_MINIP")?),
                CTA_NAT_V4_MAXIP => r.max_ip = Some(addr(&nla, false, "CTA_NAT_V4_MAXIP")?),
                CTA_NAT_V6_MINIP => r.min_ip = Some(addr(&nla, true, "CTA_NAT_V6_MINIP")?),
                CTA_NAT_V6_MAXIP => r.max_ip = Some(addr(&nla, true, "CTA_NAT_V6_MAXIP")?),
                CTA_NAT_PROTO => {
                    for p in nla.nested() {
                        let p = p?;
                        match p.ty {
                            CTA_PROTONAT_PORT_MIN => {
                                r.min_port = Some(be16(&p, "CTA_PROTONAT_PORT_MIN")?)
                            }
                            CTA_PROTONAT_PORT_MAX => {
                                r.max_port = Some(be16(&p, "CTA_PROTONAT_PORT_MAX")?)
                            }
                            _ => *unknown = unknown.saturating_add(1),
                        }
                    }
                }
                _ => *unknown = unknown.saturating_add(1),
            }
        }
        Ok(r)
    }

    /// Emits the range as a nest of type `ty` (`CTA_NAT_SRC` or `CTA_NAT_DST`).
    pub fn emit(&self, b: &mut MsgBuilder<'_>, ty: u16) {
        let n = b.nest_start(ty);
        for (ip, v4, v6) in [
            (self.min_ip, CTA_NAT_V4_MINIP, CTA_NAT_V6_MINIP),
            (self.max_ip, CTA_NAT_V4_MAXIP, CTA_NAT_V6_MAXIP),
        ] {
            match ip {
                Some(a @ IpAddr::V4(_)) => b.put_ip(v4, a),
                Some(a @ IpAddr::V6(_)) => b.put_ip(v6, a),
                None => {}
            }
        }
        if self.min_port.is_some() || self.max_port.is_some() {
            let p = b.nest_start(CTA_NAT_PROTO);
            if let Some(v) = self.min_port {
                b.put_u16_be(CTA_PROTONAT_PORT_MIN, v);
            }
            if let Some(v) = self.max_port {
                b.put_u16_be(CTA_PROTONAT_PORT_MAX, v);
            }
            b.nest_end(p);
        }
        b.nest_end(n);
    }
}

impl SeqAdj {
    /// Parses the value of `CTA_SEQ_ADJ_ORIG` / `_REPLY`; absent members read as 0.
    pub fn parse(value: &[u8], unknown: &mut u16) -> Result<Self, Error> {
        let mut s = Self::default();
        for nla in nlas(value) {
            let nla = nla?;
            match nla.ty {
                CTA_SEQADJ_CORRECTION_POS => {
                    s.correction_pos = be32(&nla, "CTA_SEQADJ_CORRECTION_POS")?
                }
                CTA_SEQADJ_OFFSET_BEFORE => {
                    s.offset_before = be32(&nla, "CTA_SEQADJ_OFFSET_BEFORE")?
                }
                CTA_SEQADJ_OFFSET_AFTER => s.offset_after = be32(&nla, "CTA_SEQADJ_OFFSET_AFTER")?,
                _ => *unknown = unknown.saturating_add(1),
            }
        }
        Ok(s)
    }

    /// Emits the adjustment as a nest of type `ty`.
    pub fn emit(&self, b: &mut MsgBuilder<'_>, ty: u16) {
        let n = b.nest_start(ty);
        b.put_u32_be(CTA_SEQADJ_CORRECTION_POS, self.correction_pos);
        b.put_u32_be(CTA_SEQADJ_OFFSET_BEFORE, self.offset_before);
        b.put_u32_be(CTA_SEQADJ_OFFSET_AFTER, self.offset_after);
        b.nest_end(n);
    }
}

impl Synproxy {
    /// Parses the value of `CTA_SYNPROXY`; absent members read as 0.
    pub fn parse(value: &[u8], unknown: &mut u16) -> Result<Self, Error> {
        let mut s = Self::default();
        for nla in nlas(value) {
            let nla = nla?;
            match nla.ty {
                CTA_SYNPROXY_ISN => s.isn = be32(&nla, "CTA_SYNPROXY_ISN")?,
                CTA_SYNPROXY_ITS => s.its = be32(&nla, "CTA_SYNPROXY_ITS")?,
                CTA_SYNPROXY_TSOFF => s.tsoff = be32(&nla, "CTA_SYNPROXY_TSOFF")?,
                _ => *unknown = unknown.saturating_add(1),
            }
        }
        Ok(s)
    }
}

impl Counters {
    /// Parses the value of `CTA_COUNTERS_ORIG` / `_REPLY` (64-bit or the old 32-bit members).
    pub fn parse(value: &[u8], unknown: &mut u16) -> Result<Self, Error> {
        let mut c = Self::default();
        for nla in nlas(value) {
            let nla = nla?;
            match nla.ty {
                CTA_COUNTERS_PACKETS => {
                    c.packets = u64::from_be_bytes(nla.array("CTA_COUNTERS_PACKETS")?)
                }
                CTA_COUNTERS_BYTES => {
                    c.bytes = u64::from_be_bytes(nla.array("CTA_COUNTERS_BYTES")?)
                }
                CTA_COUNTERS32_PACKETS => c.packets = be32(&nla, "CTA_COUNTERS32_PACKETS")?.into(),
                CTA_COUNTERS32_BYTES => c.bytes = be32(&nla, "CTA_COUNTERS32_BYTES")?.into(),
                CTA_COUNTERS_PAD => {}
                _ => *unknown = unknown.saturating_add(1),
            }
        }
        Ok(c)
    }
}

impl Timestamp {
    /// Parses the value of `CTA_TIMESTAMP`.
    pub fn parse(value: &[u8], unknown: &mut u16) -> Result<Self, Error> {
        let mut t = Self::default();
        for nla in nlas(value) {
            let nla = nla?;
            match nla.ty {
                CTA_TIMESTAMP_START => {
                    t.start = Some(u64::from_be_bytes(nla.array("CTA_TIMESTAMP_START")?))
                }
                CTA_TIMESTAMP_STOP => {
                    t.stop = Some(u64::from_be_bytes(nla.array("CTA_TIMESTAMP_STOP")?))
                }
                CTA_TIMESTAMP_PAD => {}
                _ => *unknown = unknown.saturating_add(1),
            }
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::tuple::L4;

    /// The attributes [`Conntrack::emit`] writes, in its order (hand-built: the kernel never
    /// reports CTA_NAT_SRC, so this is the only way to check its exact layout).
    #[rustfmt::skip]
    static WRITABLE: [u8; 168] = [
        // CTA_TUPLE_ORIG | NESTED, len 52
        0x34, 0x00, 0x01, 0x80,
        //   CTA_TUPLE_IP | NESTED, len 20
        0x14, 0x00, 0x01, 0x80,
        //     CTA_IP_V4_SRC = 192.168.1.10
        0x08, 0x00, 0x01, 0x00,  192, 168, 1, 10,
        //     CTA_IP_V4_DST = 198.51.100.7
        0x08, 0x00, 0x02, 0x00,  198, 51, 100, 7,
        //   CTA_TUPLE_PROTO | NESTED, len 28
        0x1c, 0x00, 0x02, 0x80,
        //     CTA_PROTO_NUM = 17 (UDP), padding
        0x05, 0x00, 0x01, 0x00,  17, 0, 0, 0,
        //     CTA_PROTO_SRC_PORT = 33000, padding
        0x06, 0x00, 0x02, 0x00,  0x80, 0xe8, 0, 0,
        //     CTA_PROTO_DST_PORT = 53, padding
        0x06, 0x00, 0x03, 0x00,  0x00, 0x35, 0, 0,
        // CTA_STATUS = SRC_NAT | SRC_NAT_DONE | DST_NAT_DONE | CONFIRMED (BE32 0x198)
        0x08, 0x00, 0x03, 0x00,  0x00, 0x00, 0x01, 0x98,
        // CTA_TIMEOUT = 30
        0x08, 0x00, 0x07, 0x00,  0x00, 0x00, 0x00, 0x1e,
        // CTA_MARK = 0xdeadbeef
        0x08, 0x00, 0x08, 0x00,  0xde, 0xad, 0xbe, 0xef,
        // CTA_NAT_SRC | NESTED, len 40
        0x28, 0x00, 0x06, 0x80,
        //   CTA_NAT_V4_MINIP = 203.0.113.5
        0x08, 0x00, 0x01, 0x00,  203, 0, 113, 5,
        //   CTA_NAT_V4_MAXIP = 203.0.113.9
        0x08, 0x00, 0x02, 0x00,  203, 0, 113, 9,
        //   CTA_NAT_PROTO | NESTED, len 20
        0x14, 0x00, 0x03, 0x80,
        //     CTA_PROTONAT_PORT_MIN = 1024, padding
        0x06, 0x00, 0x01, 0x00,  0x04, 0x00, 0, 0,
        //     CTA_PROTONAT_PORT_MAX = 65535, padding
        0x06, 0x00, 0x02, 0x00,  0xff, 0xff, 0, 0,
        // CTA_SEQ_ADJ_ORIG | NESTED, len 28
        0x1c, 0x00, 0x0f, 0x80,
        //   CTA_SEQADJ_CORRECTION_POS = 1000
        0x08, 0x00, 0x01, 0x00,  0x00, 0x00, 0x03, 0xe8,
        //   CTA_SEQADJ_OFFSET_BEFORE = 10
        0x08, 0x00, 0x02, 0x00,  0x00, 0x00, 0x00, 0x0a,
        //   CTA_SEQADJ_OFFSET_AFTER = 20
        0x08, 0x00, 0x03, 0x00,  0x00, 0x00, 0x00, 0x14,
        // CTA_HELP | NESTED, len 16
        0x10, 0x00, 0x05, 0x80,
        //   CTA_HELP_NAME = "tftp\0" (len 9), padding
        0x09, 0x00, 0x01, 0x00,  b't', b'f', b't', b'p',  0, 0, 0, 0,
        // CTA_ZONE = 7, padding
        0x06, 0x00, 0x12, 0x00,  0x00, 0x07, 0, 0,
    ];

    /// Attributes only the kernel sends (parsed, never emitted), a known-but-ignored one and
    /// an unknown one.
    #[rustfmt::skip]
    static READ_ONLY: [u8; 72] = [
        // CTA_ID = 0x01020304
        0x08, 0x00, 0x0c, 0x00,  0x01, 0x02, 0x03, 0x04,
        // CTA_USE = 1
        0x08, 0x00, 0x0b, 0x00,  0x00, 0x00, 0x00, 0x01,
        // CTA_COUNTERS_ORIG | NESTED, len 28
        0x1c, 0x00, 0x09, 0x80,
        //   CTA_COUNTERS_PACKETS = 3 (BE64)
        0x0c, 0x00, 0x01, 0x00,  0, 0, 0, 0, 0, 0, 0, 3,
        //   CTA_COUNTERS_BYTES = 180 (BE64)
        0x0c, 0x00, 0x02, 0x00,  0, 0, 0, 0, 0, 0, 0, 180,
        // CTA_TIMESTAMP | NESTED, len 16
        0x10, 0x00, 0x14, 0x80,
        //   CTA_TIMESTAMP_START = 0x1122334455667788 (BE64)
        0x0c, 0x00, 0x01, 0x00,  0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
        // CTA_SECMARK = 5 (known, not modelled: skipped, not counted)
        0x08, 0x00, 0x11, 0x00,  0x00, 0x00, 0x00, 0x05,
        // type 99 (unknown), empty: counted
        0x04, 0x00, 0x63, 0x00,
    ];

    fn writable() -> Conntrack {
        let orig = Tuple {
            src: "192.168.1.10".parse().unwrap(),
            dst: "198.51.100.7".parse().unwrap(),
            l4proto: IPPROTO_UDP,
            l4: L4::Ports {
                sport: 33000,
                dport: 53,
            },
            zone: None,
        };
        let mut ct = Conntrack::new(AF_INET, orig);
        ct.status = Some(IPS_SRC_NAT | IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE | IPS_CONFIRMED);
        ct.timeout = Some(30);
        ct.mark = Some(0xdead_beef);
        ct.nat_src = Some(NatRange {
            min_ip: Some("203.0.113.5".parse().unwrap()),
            max_ip: Some("203.0.113.9".parse().unwrap()),
            min_port: Some(1024),
            max_port: Some(65535),
        });
        ct.seq_adj_orig = Some(SeqAdj {
            correction_pos: 1000,
            offset_before: 10,
            offset_after: 20,
        });
        ct.helper = Some(HelperName::try_from("tftp").unwrap());
        ct.zone = Some(7);
        ct
    }

    fn emitted(ct: &Conntrack) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut b = MsgBuilder::new(
            &mut buf,
            NFNL_SUBSYS_CTNETLINK,
            IPCTNL_MSG_CT_NEW,
            0,
            0,
            ct.family,
        );
        ct.emit(&mut b);
        b.finish();
        buf.split_off(20)
    }

    #[test]
    fn test_parse() {
        let mut attrs = WRITABLE.to_vec();
        attrs.extend_from_slice(&READ_ONLY);
        let ct = Conntrack::parse(AF_INET, &attrs).unwrap();
        let mut want = writable();
        want.id = Some(0x0102_0304);
        want.use_count = Some(1);
        want.counters_orig = Some(Counters {
            packets: 3,
            bytes: 180,
        });
        want.timestamp = Some(Timestamp {
            start: Some(0x1122_3344_5566_7788),
            stop: None,
        });
        want.unknown_attrs = 1;
        assert_eq!(ct, want);
        assert_eq!(ct.writable(), writable());
    }

    #[test]
    fn test_emit() {
        assert_eq!(emitted(&writable()), WRITABLE);
        // Read-only fields are left out.
        let mut ct = writable();
        ct.id = Some(1);
        ct.counters_reply = Some(Counters::default());
        assert_eq!(emitted(&ct), WRITABLE);
    }

    #[test]
    fn test_nat_v6_labels_synproxy_roundtrip() {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut ct = Conntrack::new(
            AF_INET6,
            Tuple::new(a("2001:db8::1"), a("2001:db8::2"), 132),
        );
        ct.nat_dst = Some(NatRange {
            min_ip: Some(a("2001:db8::53")),
            ..NatRange::default()
        });
        ct.labels = Some([0x80; LABELS_LEN]);
        ct.synproxy = Some(Synproxy {
            isn: 1,
            its: 2,
            tsoff: 3,
        });
        ct.seq_adj_reply = Some(SeqAdj {
            correction_pos: 1,
            offset_before: 2,
            offset_after: 3,
        });
        ct.master = Some(Tuple::new(a("2001:db8::1"), a("2001:db8::2"), 6));
        let bytes = emitted(&ct);
        assert_eq!(Conntrack::parse(AF_INET6, &bytes), Ok(ct));
    }

    #[test]
    fn test_errors() {
        // No original tuple.
        assert_eq!(
            Conntrack::parse(AF_INET, &WRITABLE[52..]),
            Err(Error::Missing("CTA_TUPLE_ORIG"))
        );
        // CTA_STATUS with 3 bytes.
        let mut bad = WRITABLE;
        bad[52] = 7;
        assert_eq!(
            Conntrack::parse(AF_INET, &bad),
            Err(Error::BadLength("CTA_STATUS"))
        );
        // CTA_LABELS longer than the kernel's bitmap.
        let mut long = WRITABLE.to_vec();
        long.extend_from_slice(&[24, 0, 22, 0]);
        long.extend_from_slice(&[0; 20]);
        assert_eq!(
            Conntrack::parse(AF_INET, &long),
            Err(Error::BadLength("CTA_LABELS"))
        );
        // A helper name of 16 characters (the kernel allows 15).
        let mut help = WRITABLE[..52].to_vec();
        help.extend_from_slice(&[28, 0, 5, 0x80, 24, 0, 1, 0]);
        help.extend_from_slice(b"abcdefghijklmnop\0\0\0\0");
        assert_eq!(
            Conntrack::parse(AF_INET, &help),
            Err(Error::BadLength("CTA_HELP_NAME"))
        );
        // An nla_len running past the end.
        let mut trunc = WRITABLE;
        trunc[160] = 9;
        assert_eq!(
            Conntrack::parse(AF_INET, &trunc),
            Err(Error::Truncated("nlattr value"))
        );
    }

    #[test]
    fn test_counters32_timestamp_event() {
        #[rustfmt::skip]
        let extra = [
            // CTA_COUNTERS_REPLY | NESTED, len 20
            0x14, 0x00, 0x0a, 0x80,
            //   CTA_COUNTERS32_PACKETS = 7 (old 32-bit form)
            0x08, 0x00, 0x03, 0x00,  0, 0, 0, 7,
            //   CTA_COUNTERS32_BYTES = 700
            0x08, 0x00, 0x04, 0x00,  0, 0, 0x02, 0xbc,
            // CTA_TIMESTAMP_EVENT = 1 (BE64)
            0x0c, 0x00, 0x1b, 0x00,  0, 0, 0, 0, 0, 0, 0, 1,
        ];
        let mut attrs = WRITABLE.to_vec();
        attrs.extend_from_slice(&extra);
        let ct = Conntrack::parse(AF_INET, &attrs).unwrap();
        assert_eq!(
            ct.counters_reply,
            Some(Counters {
                packets: 7,
                bytes: 700
            })
        );
        assert_eq!((ct.timestamp_event, ct.unknown_attrs), (Some(1), 0));
        assert_eq!(ct.writable(), writable());
    }

    #[test]
    fn test_unknown_nested_counted() {
        let mut attrs = WRITABLE.to_vec();
        // An unknown attribute inside CTA_NAT_PROTO (type 9 replaces PORT_MAX at offset 108).
        attrs[110] = 9;
        let ct = Conntrack::parse(AF_INET, &attrs).unwrap();
        assert_eq!(ct.unknown_attrs, 1);
        assert_eq!(ct.nat_src.unwrap().max_port, None);
    }
}
