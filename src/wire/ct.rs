//! The conntrack payload of CT_NEW / CT_UPD / CT_DEL (§6).
//!
//! [`Repr`] is plain data: every attribute the protocol can carry, each an `Option` (absent
//! = not sent), with no heap (names and labels are inline arrays). `parse` accepts
//! attributes in any order, as the C receiver does; `emit` writes them in the order a 1.4.7
//! sender uses (§6.2), so re-encoding a captured message gives back the same bytes.
//!
//! Which attributes to fill is the job of whoever maps a kernel conntrack into this type;
//! this module encodes exactly what it is given. What a 1.4.7 sender fills (§6.2):
//! addresses, status and protocol always; ports for TCP/UDP/SCTP/DCCP (zeros if the kernel
//! gave none, where C leaks stale bytes); the TCP/SCTP/DCCP state group when the state is
//! known (window scales only with `TCPWindowTracking`); ICMP type/code/id for ICMP and
//! ICMPv6; timeout only when `CommitTimeout` is 0; mark when reported; master tuple for
//! related flows; SNAT/DNAT addresses of the flow's family when `IPS_SRC_NAT_DONE` /
//! `IPS_DST_NAT_DONE` is set and the reply address differs, SPAT/DPAT likewise for ports;
//! seq-adj, helper, non-empty labels, synproxy and a non-zero zone when reported.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::Error;
use super::attr::{AttrIter, Size, Writer, array};
pub use super::tuple::{Addrs, Name, Ports};
use super::types::AttrType as T;

/// Label words kept: 128 bits, the kernel's label space (what 6.18 reports, §6.1).
pub const LABEL_WORDS: usize = 4;

/// The conntrack label bitmap (`NTA_LABELS`): bit *k* is bit *k* mod 32 of BE32 word
/// ⌊*k*/32⌋ (§6.1).
///
/// The wire allows up to 256 words; the word count is kept so that a longer, zero-extended
/// bitmap re-encodes unchanged, but only the first [`LABEL_WORDS`] words are stored: bits
/// beyond 127 cannot exist in the kernel and are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Labels {
    words: [u32; LABEL_WORDS],
    nwords: u16,
}

impl Labels {
    /// Largest number of words the C receiver accepts (`nta_len <= 1028`).
    pub const MAX_WORDS: usize = 256;

    /// An empty bitmap of `LABEL_WORDS` words (16 bytes, as the 1.4.7 sender emits).
    pub const fn new() -> Self {
        Self {
            words: [0; LABEL_WORDS],
            nwords: LABEL_WORDS as u16,
        }
    }

    /// A bitmap from BE32-order words as the kernel reports them (word *i* holds bits
    /// 32*i..32*i+31). Up to [`Self::MAX_WORDS`] words; words past [`LABEL_WORDS`] must be 0.
    pub fn from_words(words: &[u32]) -> Result<Self, Error> {
        if words.is_empty() || words.len() > Self::MAX_WORDS {
            return Err(Error::Unencodable("label word count"));
        }
        if words.iter().skip(LABEL_WORDS).any(|&w| w != 0) {
            return Err(Error::Unencodable("label bit beyond 127"));
        }
        let mut l = Self {
            words: [0; LABEL_WORDS],
            nwords: words.len() as u16,
        };
        for (d, s) in l.words.iter_mut().zip(words) {
            *d = *s;
        }
        Ok(l)
    }

    /// The stored words (at most [`LABEL_WORDS`]).
    pub fn words(&self) -> &[u32] {
        &self.words[..usize::from(self.nwords).min(LABEL_WORDS)]
    }

    /// Number of words on the wire.
    pub const fn wire_words(&self) -> usize {
        self.nwords as usize
    }

    /// True if label `bit` is set.
    pub fn get(&self, bit: usize) -> bool {
        self.words()
            .get(bit / 32)
            .is_some_and(|w| w >> (bit % 32) & 1 == 1)
    }

    /// Sets label `bit` (0..128); out-of-range bits are refused.
    pub fn set(&mut self, bit: usize) -> Result<(), Error> {
        if bit >= LABEL_WORDS * 32 {
            return Err(Error::Unencodable("label bit beyond 127"));
        }
        self.words[bit / 32] |= 1 << (bit % 32);
        self.nwords = self.nwords.max((bit / 32 + 1) as u16);
        Ok(())
    }

    /// True if no bit is set (the 1.4.7 sender then omits the attribute).
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    fn parse(p: &[u8]) -> Self {
        let mut words = [0u32; LABEL_WORDS];
        for (w, c) in words.iter_mut().zip(p.chunks_exact(4)) {
            *w = u32::from_be_bytes(array::<4>(c));
        }
        Self {
            words,
            nwords: (p.len() / 4) as u16,
        }
    }

    fn put(&self, w: &mut Writer<'_>) {
        // Words beyond LABEL_WORDS were zero or dropped on parse: write them as zero.
        let words = self.words();
        w.put_with(T::NTA_LABELS.0, 4 * self.wire_words(), |out| {
            out.fill(0);
            for (c, word) in out.chunks_exact_mut(4).zip(words) {
                c.copy_from_slice(&word.to_be_bytes());
            }
        });
    }
}

impl Default for Labels {
    fn default() -> Self {
        Self::new()
    }
}

/// `NTA_NAT_SEQ_ADJ`: the six sequence-adjustment values, in wire order (§6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NatSeqAdj {
    /// Original direction: correction position.
    pub orig_correction_pos: u32,
    /// Original direction: offset before.
    pub orig_offset_before: u32,
    /// Original direction: offset after.
    pub orig_offset_after: u32,
    /// Reply direction: correction position.
    pub repl_correction_pos: u32,
    /// Reply direction: offset before.
    pub repl_offset_before: u32,
    /// Reply direction: offset after.
    pub repl_offset_after: u32,
}

/// `NTA_SYNPROXY`: its, isn, tsoff in wire order (§6.1, 1.4.7 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Synproxy {
    /// Initial sequence number of the client-side connection.
    pub its: u32,
    /// Initial sequence number of the server-side connection.
    pub isn: u32,
    /// Timestamp offset.
    pub tsoff: u32,
}

/// Payload capacity of `NTA_HELPER_NAME` (`nta_len <= 16`, §6.3).
pub const HELPER_NAME_MAX: usize = 12;

/// Everything a CT message can carry. `None` = attribute absent.
///
/// Host-order integers everywhere: the codec deals with the wire byte order, including the
/// little-endian quirk of SPAT/DPAT/ICMP_ID (§7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repr {
    /// Original-direction addresses (`NTA_IPV4`/`NTA_IPV6`).
    pub addrs: Option<Addrs>,
    /// IP protocol number.
    pub l4proto: Option<u8>,
    /// Original-direction ports (`NTA_PORT`).
    pub ports: Option<Ports>,
    /// TCP conntrack state.
    pub tcp_state: Option<u8>,
    /// `IPS_*` status bits.
    pub status: Option<u32>,
    /// Seconds left.
    pub timeout: Option<u32>,
    /// ct mark.
    pub mark: Option<u32>,
    /// Master conntrack's original addresses.
    pub master_addrs: Option<Addrs>,
    /// Master's protocol.
    pub master_l4proto: Option<u8>,
    /// Master's original ports.
    pub master_ports: Option<Ports>,
    /// SNAT address, IPv4: the reply-tuple destination.
    pub snat_ipv4: Option<Ipv4Addr>,
    /// DNAT address, IPv4: the reply-tuple source.
    pub dnat_ipv4: Option<Ipv4Addr>,
    /// SNAT port: the reply-tuple destination port.
    pub spat_port: Option<u16>,
    /// DNAT port: the reply-tuple source port.
    pub dpat_port: Option<u16>,
    /// NAT sequence adjustment.
    pub nat_seq_adj: Option<NatSeqAdj>,
    /// SCTP state.
    pub sctp_state: Option<u8>,
    /// SCTP original verification tag.
    pub sctp_vtag_orig: Option<u32>,
    /// SCTP reply verification tag.
    pub sctp_vtag_repl: Option<u32>,
    /// DCCP state.
    pub dccp_state: Option<u8>,
    /// DCCP role (0 client, 1 server).
    pub dccp_role: Option<u8>,
    /// ICMP/ICMPv6 type.
    pub icmp_type: Option<u8>,
    /// ICMP/ICMPv6 code.
    pub icmp_code: Option<u8>,
    /// ICMP echo identifier.
    pub icmp_id: Option<u16>,
    /// TCP window scale, original direction.
    pub tcp_wscale_orig: Option<u8>,
    /// TCP window scale, reply direction.
    pub tcp_wscale_repl: Option<u8>,
    /// Helper name.
    pub helper_name: Option<Name<HELPER_NAME_MAX>>,
    /// Label bitmap.
    pub labels: Option<Labels>,
    /// SNAT address, IPv6 (1.4.7 only).
    pub snat_ipv6: Option<Ipv6Addr>,
    /// DNAT address, IPv6 (1.4.7 only).
    pub dnat_ipv6: Option<Ipv6Addr>,
    /// SYNPROXY state (1.4.7 only).
    pub synproxy: Option<Synproxy>,
    /// Conntrack zone (1.4.7 only).
    pub zone: Option<u16>,
}

use Size::{Fixed as F, Max as M};

/// `nta_len` rules of the 33 CT attributes, indexed by type (§6.1).
#[rustfmt::skip]
const SIZES: [Size; T::MAX as usize] = [
    F(12), F(36), F(5), F(8), F(5), F(8), F(8), F(8),             // 0-7
    F(12), F(36), F(5), F(8), F(8), F(8), F(6), F(6),             // 8-15
    F(28), F(5), F(8), F(8), F(5), F(5), F(5), F(5),              // 16-23
    F(6), F(5), F(5), M(16), M(1028), F(20), F(20), F(16),        // 24-31
    F(6),                                                         // 32
];

fn be16(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[0], p[1]])
}

fn le16(p: &[u8]) -> u16 {
    u16::from_le_bytes([p[0], p[1]])
}

fn be32(p: &[u8]) -> u32 {
    u32::from_be_bytes(array::<4>(p))
}

impl Repr {
    /// Decodes a CT message body (the bytes after the 8-byte header, up to `len`).
    ///
    /// Applies the 1.4.7 receiver's checks (§6.3): any attribute with a bad length, an
    /// unknown type or a wrong fixed size rejects the whole message. A repeated attribute
    /// overwrites the earlier value; `NTA_LABELS` with an empty or non-multiple-of-4 payload
    /// is ignored, as in C.
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let mut r = Self::default();
        for a in AttrIter::new(body) {
            let a = a?;
            let size = SIZES
                .get(usize::from(a.ty))
                .ok_or(Error::UnknownAttr(a.ty))?;
            size.check(a.ty, a.len)?;
            let p = a.payload;
            match T(a.ty) {
                T::NTA_IPV4 => r.addrs = Some(Addrs::parse_v4(p)),
                T::NTA_IPV6 => r.addrs = Some(Addrs::parse_v6(p)),
                T::NTA_L4PROTO => r.l4proto = Some(p[0]),
                T::NTA_PORT => r.ports = Some(Ports::parse(p)),
                T::NTA_TCP_STATE => r.tcp_state = Some(p[0]),
                T::NTA_STATUS => r.status = Some(be32(p)),
                T::NTA_TIMEOUT => r.timeout = Some(be32(p)),
                T::NTA_MARK => r.mark = Some(be32(p)),
                T::NTA_MASTER_IPV4 => r.master_addrs = Some(Addrs::parse_v4(p)),
                T::NTA_MASTER_IPV6 => r.master_addrs = Some(Addrs::parse_v6(p)),
                T::NTA_MASTER_L4PROTO => r.master_l4proto = Some(p[0]),
                T::NTA_MASTER_PORT => r.master_ports = Some(Ports::parse(p)),
                T::NTA_SNAT_IPV4 => r.snat_ipv4 = Some(Ipv4Addr::from(array::<4>(p))),
                T::NTA_DNAT_IPV4 => r.dnat_ipv4 = Some(Ipv4Addr::from(array::<4>(p))),
                // §7: an x86 sender byte-swaps these twice, so they arrive little-endian.
                T::NTA_SPAT_PORT => r.spat_port = Some(le16(p)),
                T::NTA_DPAT_PORT => r.dpat_port = Some(le16(p)),
                T::NTA_NAT_SEQ_ADJ => {
                    r.nat_seq_adj = Some(NatSeqAdj {
                        orig_correction_pos: be32(p),
                        orig_offset_before: be32(&p[4..]),
                        orig_offset_after: be32(&p[8..]),
                        repl_correction_pos: be32(&p[12..]),
                        repl_offset_before: be32(&p[16..]),
                        repl_offset_after: be32(&p[20..]),
                    });
                }
                T::NTA_SCTP_STATE => r.sctp_state = Some(p[0]),
                T::NTA_SCTP_VTAG_ORIG => r.sctp_vtag_orig = Some(be32(p)),
                T::NTA_SCTP_VTAG_REPL => r.sctp_vtag_repl = Some(be32(p)),
                T::NTA_DCCP_STATE => r.dccp_state = Some(p[0]),
                T::NTA_DCCP_ROLE => r.dccp_role = Some(p[0]),
                T::NTA_ICMP_TYPE => r.icmp_type = Some(p[0]),
                T::NTA_ICMP_CODE => r.icmp_code = Some(p[0]),
                T::NTA_ICMP_ID => r.icmp_id = Some(le16(p)),
                T::NTA_TCP_WSCALE_ORIG => r.tcp_wscale_orig = Some(p[0]),
                T::NTA_TCP_WSCALE_REPL => r.tcp_wscale_repl = Some(p[0]),
                T::NTA_HELPER_NAME => r.helper_name = Some(Name::from_raw(p)),
                T::NTA_LABELS => {
                    if !p.is_empty() && p.len() % 4 == 0 {
                        r.labels = Some(Labels::parse(p));
                    }
                }
                T::NTA_SNAT_IPV6 => r.snat_ipv6 = Some(Ipv6Addr::from(array::<16>(p))),
                T::NTA_DNAT_IPV6 => r.dnat_ipv6 = Some(Ipv6Addr::from(array::<16>(p))),
                T::NTA_SYNPROXY => {
                    r.synproxy = Some(Synproxy {
                        its: be32(p),
                        isn: be32(&p[4..]),
                        tsoff: be32(&p[8..]),
                    });
                }
                T::NTA_ZONE => r.zone = Some(be16(p)),
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

    /// Writes the body in the 1.4.7 sender's order (§6.2) and returns the bytes written
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
        if let Some(a) = &self.addrs {
            a.put(w, T::NTA_IPV4.0, T::NTA_IPV6.0);
        }
        put_be32(w, T::NTA_STATUS, self.status);
        put_u8(w, T::NTA_L4PROTO, self.l4proto);
        // Protocol part (§6.2 step 4): at most one of these groups is filled in practice.
        if let Some(p) = &self.ports {
            p.put(w, T::NTA_PORT.0);
        }
        put_u8(w, T::NTA_TCP_STATE, self.tcp_state);
        put_u8(w, T::NTA_TCP_WSCALE_ORIG, self.tcp_wscale_orig);
        put_u8(w, T::NTA_TCP_WSCALE_REPL, self.tcp_wscale_repl);
        put_u8(w, T::NTA_SCTP_STATE, self.sctp_state);
        put_be32(w, T::NTA_SCTP_VTAG_ORIG, self.sctp_vtag_orig);
        put_be32(w, T::NTA_SCTP_VTAG_REPL, self.sctp_vtag_repl);
        put_u8(w, T::NTA_DCCP_STATE, self.dccp_state);
        put_u8(w, T::NTA_DCCP_ROLE, self.dccp_role);
        put_u8(w, T::NTA_ICMP_TYPE, self.icmp_type);
        put_u8(w, T::NTA_ICMP_CODE, self.icmp_code);
        if let Some(v) = self.icmp_id {
            // §7: little-endian, as an x86 C sender writes it.
            w.put_le16(T::NTA_ICMP_ID.0, v);
        }
        put_be32(w, T::NTA_TIMEOUT, self.timeout);
        put_be32(w, T::NTA_MARK, self.mark);
        if let Some(a) = &self.master_addrs {
            a.put(w, T::NTA_MASTER_IPV4.0, T::NTA_MASTER_IPV6.0);
        }
        put_u8(w, T::NTA_MASTER_L4PROTO, self.master_l4proto);
        if let Some(p) = &self.master_ports {
            p.put(w, T::NTA_MASTER_PORT.0);
        }
        // NAT (§6.2 step 8): addresses in network order (1.4.7), ports little-endian (§7).
        if let Some(a) = self.snat_ipv4 {
            w.put_array(T::NTA_SNAT_IPV4.0, a.octets());
        }
        if let Some(a) = self.dnat_ipv4 {
            w.put_array(T::NTA_DNAT_IPV4.0, a.octets());
        }
        if let Some(a) = self.snat_ipv6 {
            w.put_array(T::NTA_SNAT_IPV6.0, a.octets());
        }
        if let Some(a) = self.dnat_ipv6 {
            w.put_array(T::NTA_DNAT_IPV6.0, a.octets());
        }
        if let Some(v) = self.spat_port {
            w.put_le16(T::NTA_SPAT_PORT.0, v);
        }
        if let Some(v) = self.dpat_port {
            w.put_le16(T::NTA_DPAT_PORT.0, v);
        }
        if let Some(s) = &self.nat_seq_adj {
            let v = [
                s.orig_correction_pos,
                s.orig_offset_before,
                s.orig_offset_after,
                s.repl_correction_pos,
                s.repl_offset_before,
                s.repl_offset_after,
            ];
            w.put_be32s(T::NTA_NAT_SEQ_ADJ.0, &v);
        }
        if let Some(h) = &self.helper_name {
            w.put(T::NTA_HELPER_NAME.0, h.raw());
        }
        if let Some(l) = &self.labels {
            l.put(w);
        }
        if let Some(s) = &self.synproxy {
            w.put_be32s(T::NTA_SYNPROXY.0, &[s.its, s.isn, s.tsoff]);
        }
        if let Some(z) = self.zone {
            w.put_be16(T::NTA_ZONE.0, z);
        }
    }
}

fn put_u8(w: &mut Writer<'_>, ty: T, v: Option<u8>) {
    if let Some(v) = v {
        w.put_u8(ty.0, v);
    }
}

fn put_be32(w: &mut Writer<'_>, ty: T, v: Option<u32>) {
    if let Some(v) = v {
        w.put_be32(ty.0, v);
    }
}
