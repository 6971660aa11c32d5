//! Conversions between the kernel's conntrack ([`Conntrack`]) and the sync message's
//! ([`Repr`]), with the choices conntrackd 1.4.7 makes (expectations: [`super::exp`]).
//!
//! * kernel → wire: which attributes a 1.4.7 sender fills, wire-protocol.md §6.2 (CT) and
//!   §8 (EXP), with `TCPWindowTracking` (sync-modes.md §5.4) and `CommitTimeout` gating.
//! * wire → kernel: the CREATE conntrackd builds on commit or inject, sync-modes.md §6 and
//!   ctnetlink-notes.md §7: timeout rule, `IPS_EXPECTED` cleared, reply tuple mirrored, NAT
//!   attributes turned into SNAT/DNAT requests, BE_LIBERAL when window tracking is off.
//!
//! Byte-order quirks (SPAT/DPAT/ICMP_ID little-endian) are the wire codec's business: every
//! value here is in host order.

use core::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::netlink::consts::*;
use crate::netlink::ct::{Conntrack, LABELS_LEN, NatRange, SeqAdj, Synproxy as KSynproxy};
use crate::netlink::name::HelperName;
use crate::netlink::protoinfo::{DccpInfo, ProtoInfo, SctpInfo, TcpFlags, TcpInfo};
use crate::netlink::tuple::{L4, Tuple};
use crate::wire::ct::{LABEL_WORDS, Labels, NatSeqAdj, Repr, Synproxy};
use crate::wire::tuple::{Addrs, Name, Ports};

use super::entry::Secs;

/// `IP_CT_TCP_FLAG_BE_LIBERAL`: the kernel skips window checks (sync-modes.md §5.4).
pub const IP_CT_TCP_FLAG_BE_LIBERAL: u8 = 0x08;

/// Timeout given to a committed entry whose aged timeout went negative (sync-modes.md §6).
pub const EXPIRED_COMMIT_TIMEOUT: u32 = 60;

/// Sender-side options that change which attributes are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendPolicy {
    /// `TCPWindowTracking on`: send `NTA_TCP_WSCALE_ORIG/REPL`.
    pub tcp_window_tracking: bool,
    /// The sender's `CommitTimeout`: non-zero suppresses `NTA_TIMEOUT` / `NTA_EXP_TIMEOUT`.
    pub commit_timeout: u32,
}

impl SendPolicy {
    /// Keeps every attribute: what the internal cache stores (the real policy is applied at
    /// transmission with [`apply_send_policy`]).
    pub const KEEP_ALL: Self = Self {
        tcp_window_tracking: true,
        commit_timeout: 0,
    };
}

/// What the created kernel entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitKind {
    /// `-c` commit from the external cache: aged timeout (or `CommitTimeout`).
    #[default]
    Commit,
    /// DisableExternalCache CT_NEW: the message's timeout as is (sync-modes.md §5.3).
    InjectCreate,
    /// DisableExternalCache CT_UPD: like inject-create minus NAT, NAT status bits, helper
    /// and master, which an update must not carry (ctnetlink-notes.md §7).
    InjectUpdate,
}

/// Receiver-side options for building kernel requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitPolicy {
    /// The receiver's `CommitTimeout` (0 = unset).
    pub commit_timeout: u32,
    /// `TCPWindowTracking`: off ORs BE_LIBERAL into both directions' TCP flags.
    pub tcp_window_tracking: bool,
    /// Commit or inject.
    pub kind: CommitKind,
}

/// Why a message cannot become a kernel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConvertError {
    /// A required attribute is absent (names the `NTA_*` group).
    Missing(&'static str),
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(what) => write!(f, "missing {what}"),
        }
    }
}

impl std::error::Error for ConvertError {}

pub(super) fn addrs_of(t: &Tuple) -> Addrs {
    match (t.src, t.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => Addrs::V4 { src, dst },
        (IpAddr::V6(src), IpAddr::V6(dst)) => Addrs::V6 { src, dst },
        // Mixed families cannot come from the kernel; keep the source family, zero dst.
        (IpAddr::V4(src), IpAddr::V6(_)) => Addrs::V4 {
            src,
            dst: Ipv4Addr::UNSPECIFIED,
        },
        (IpAddr::V6(src), IpAddr::V4(_)) => Addrs::V6 {
            src,
            dst: std::net::Ipv6Addr::UNSPECIFIED,
        },
    }
}

pub(super) fn ports_of(l4: &L4) -> Ports {
    match *l4 {
        L4::Ports { sport, dport } => Ports {
            src: sport,
            dst: dport,
        },
        _ => Ports::default(),
    }
}

/// Protocols whose ports 1.4.7 always sends (wire-protocol.md §6.2; zeros when unknown).
pub(super) const fn has_wire_ports(p: u8) -> bool {
    matches!(p, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP | IPPROTO_DCCP)
}

/// Kernel label bitmap (host-order `unsigned long` words) → BE32-word [`Labels`].
pub fn labels_from_kernel(b: &[u8; LABELS_LEN]) -> Labels {
    let mut words = [0u32; LABEL_WORDS];
    for (k, w) in words.iter_mut().enumerate() {
        *w = kernel_word32(b, k);
    }
    // 16 bytes = 4 words: the length the kernel reports (wire-protocol.md §6.1).
    Labels::from_words(&words).unwrap_or_default()
}

/// [`Labels`] → kernel bitmap (inverse of [`labels_from_kernel`]).
pub fn labels_to_kernel(l: &Labels) -> [u8; LABELS_LEN] {
    let mut out = [0u8; LABELS_LEN];
    for (k, &w) in l.words().iter().enumerate() {
        set_kernel_word32(&mut out, k, w);
    }
    out
}

/// Byte offset of 32-bit label word `k` (bits 32k..32k+31) inside the kernel bitmap, whose
/// words are native `unsigned long`s.
fn word32_offset(k: usize) -> usize {
    if cfg!(target_endian = "big") && cfg!(target_pointer_width = "64") {
        // Bits 0..31 of a 64-bit big-endian word are its last 4 bytes.
        (k / 2) * 8 + if k.is_multiple_of(2) { 4 } else { 0 }
    } else {
        4 * k
    }
}

fn kernel_word32(b: &[u8; LABELS_LEN], k: usize) -> u32 {
    let o = word32_offset(k);
    u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn set_kernel_word32(b: &mut [u8; LABELS_LEN], k: usize, w: u32) {
    let o = word32_offset(k);
    b[o..o + 4].copy_from_slice(&w.to_ne_bytes());
}

/// The sync message a 1.4.7 sender builds for `ct` (wire-protocol.md §6.2).
pub fn wire_from_kernel(ct: &Conntrack, p: &SendPolicy) -> Repr {
    let o = &ct.orig;
    let status = ct.status.unwrap_or(0);
    let mut r = Repr {
        addrs: Some(addrs_of(o)),
        status: Some(status),
        l4proto: Some(o.l4proto),
        ..Repr::default()
    };
    if has_wire_ports(o.l4proto) {
        r.ports = Some(ports_of(&o.l4));
    }
    match (o.l4proto, ct.protoinfo) {
        (IPPROTO_TCP, Some(ProtoInfo::Tcp(t))) if t.state.is_some() => {
            r.tcp_state = t.state;
            if p.tcp_window_tracking {
                r.tcp_wscale_orig = Some(t.wscale_orig.unwrap_or(0));
                r.tcp_wscale_repl = Some(t.wscale_reply.unwrap_or(0));
            }
        }
        (IPPROTO_SCTP, Some(ProtoInfo::Sctp(s))) if s.state.is_some() => {
            r.sctp_state = s.state;
            r.sctp_vtag_orig = Some(s.vtag_orig.unwrap_or(0));
            r.sctp_vtag_repl = Some(s.vtag_reply.unwrap_or(0));
        }
        (IPPROTO_DCCP, Some(ProtoInfo::Dccp(d))) if d.state.is_some() => {
            r.dccp_state = d.state;
            r.dccp_role = Some(d.role.unwrap_or(0));
        }
        _ => {}
    }
    if let L4::Icmp { ty, code, id } | L4::Icmpv6 { ty, code, id } = o.l4 {
        r.icmp_type = Some(ty);
        r.icmp_code = Some(code);
        r.icmp_id = Some(id);
    }
    if p.commit_timeout == 0 {
        r.timeout = ct.timeout;
    }
    r.mark = ct.mark;
    if let Some(m) = &ct.master {
        r.master_addrs = Some(addrs_of(m));
        r.master_l4proto = Some(m.l4proto);
        if let L4::Ports { sport, dport } = m.l4 {
            r.master_ports = Some(Ports {
                src: sport,
                dst: dport,
            });
        }
    }
    if let Some(rep) = &ct.reply {
        nat_from_reply(&mut r, ct.status, o, rep);
    }
    if let (Some(a), Some(b)) = (ct.seq_adj_orig, ct.seq_adj_reply) {
        r.nat_seq_adj = Some(NatSeqAdj {
            orig_correction_pos: a.correction_pos,
            orig_offset_before: a.offset_before,
            orig_offset_after: a.offset_after,
            repl_correction_pos: b.correction_pos,
            repl_offset_before: b.offset_before,
            repl_offset_after: b.offset_after,
        });
    }
    // A kernel helper name longer than NTA_HELPER_NAME allows (11 visible bytes) would make
    // the C receiver reject the whole message; leave the attribute out instead.
    r.helper_name = ct
        .helper
        .and_then(|h| h.as_str().and_then(|s| Name::new(s).ok()));
    if let Some(l) = &ct.labels {
        let l = labels_from_kernel(l);
        if !l.is_empty() {
            r.labels = Some(l);
        }
    }
    r.synproxy = ct.synproxy.map(|s| Synproxy {
        its: s.its,
        isn: s.isn,
        tsoff: s.tsoff,
    });
    r.zone = ct.zone;
    r
}

/// The library's `l4src.all` / `l4dst.all` of a tuple as host-order u16s: ports, or for
/// ICMP the id (source side) and type/code (destination side, type in the high byte as the
/// two bytes sit in memory). The port-NAT predicates compare these raw unions.
fn l4_all(t: &Tuple) -> (u16, u16) {
    match t.l4 {
        L4::Ports { sport, dport } => (sport, dport),
        L4::Icmp { ty, code, id } | L4::Icmpv6 { ty, code, id } => {
            (id, u16::from(ty) << 8 | u16::from(code))
        }
        L4::None => (0, 0),
    }
}

/// NAT attributes from the reply tuple, gated by family and the NAT-done status bits
/// (libnetfilter_conntrack's `NFCT_GOPT_IS_SNAT/DNAT/SPAT/DPAT`, wire-protocol.md §6.2 #8;
/// an unknown status counts as "done").
fn nat_from_reply(r: &mut Repr, status: Option<u32>, o: &Tuple, rep: &Tuple) {
    let snat = status.is_none_or(|s| s & IPS_SRC_NAT_DONE != 0);
    let dnat = status.is_none_or(|s| s & IPS_DST_NAT_DONE != 0);
    if snat && rep.dst != o.src {
        match rep.dst {
            IpAddr::V4(a) => r.snat_ipv4 = Some(a),
            IpAddr::V6(a) => r.snat_ipv6 = Some(a),
        }
    }
    if dnat && rep.src != o.dst {
        match rep.src {
            IpAddr::V4(a) => r.dnat_ipv4 = Some(a),
            IpAddr::V6(a) => r.dnat_ipv6 = Some(a),
        }
    }
    // The library compares the raw L4 unions, so a NATed ICMP flow (id vs. type/code) gets
    // SPAT/DPAT too; C receivers expect exactly that, so do the same.
    let ((osrc, odst), (rsrc, rdst)) = (l4_all(o), l4_all(rep));
    if snat && rdst != osrc {
        r.spat_port = Some(rdst);
    }
    if dnat && rsrc != odst {
        r.dpat_port = Some(rsrc);
    }
}

/// Drops what the sender's policy suppresses from a stored (everything-kept) message.
pub fn apply_send_policy(r: &mut Repr, p: &SendPolicy) {
    if !p.tcp_window_tracking {
        r.tcp_wscale_orig = None;
        r.tcp_wscale_repl = None;
    }
    if p.commit_timeout != 0 {
        r.timeout = None;
    }
}

pub(super) fn tuple_from_wire(a: &Addrs, l4proto: u8, l4: L4) -> Tuple {
    let (src, dst) = match *a {
        Addrs::V4 { src, dst } => (IpAddr::V4(src), IpAddr::V4(dst)),
        Addrs::V6 { src, dst } => (IpAddr::V6(src), IpAddr::V6(dst)),
    };
    let mut t = Tuple::new(src, dst, l4proto);
    t.l4 = l4;
    t
}

/// ICMP reply type for the mirrored tuple, as libnetfilter_conntrack derives it
/// (echo, timestamp, info, address-mask pairs; ICMPv6 echo and node-information pairs).
/// Types without a reply give 255 [inf: the library's "no inverse" value].
pub const fn icmp_reply_type(v6: bool, ty: u8) -> u8 {
    if v6 {
        match ty {
            128 => 129,
            129 => 128,
            139 => 140,
            140 => 139,
            _ => 255,
        }
    } else {
        match ty {
            8 => 0,
            0 => 8,
            13 => 14,
            14 => 13,
            15 => 16,
            16 => 15,
            17 => 18,
            18 => 17,
            _ => 255,
        }
    }
}

/// The timeout of a created entry (sync-modes.md §6 step 4, §5.3), as 1.4.7 computes it:
/// `CommitTimeout` if set; else the message's timeout minus the age since the last update,
/// where a negative age (clock stepped back) counts as 60 s and a negative result becomes
/// 60 s; a result of exactly 0 is not sent, so the cached (message) timeout stays. Inject
/// uses the message's timeout as is.
pub fn commit_timeout(r: &Repr, now: Secs, last_update: Secs, p: &CommitPolicy) -> Option<u32> {
    if p.kind != CommitKind::Commit {
        return r.timeout;
    }
    if p.commit_timeout != 0 {
        return Some(p.commit_timeout);
    }
    let age = i64::from(now) - i64::from(last_update);
    let age = if age < 0 { 60 } else { age };
    let left = i64::from(r.timeout.unwrap_or(0)) - age;
    match left {
        ..0 => Some(EXPIRED_COMMIT_TIMEOUT),
        0 => r.timeout,
        // Fits: at most the u32 message timeout.
        _ => Some(left as u32),
    }
}

/// The kernel CREATE (or inject UPDATE) conntrackd builds from a replicated entry
/// (ctnetlink-notes.md §7). `now` and `last_update` drive the timeout correction.
pub fn kernel_from_wire(
    r: &Repr,
    now: Secs,
    last_update: Secs,
    p: &CommitPolicy,
) -> Result<Conntrack, ConvertError> {
    let addrs = r.addrs.ok_or(ConvertError::Missing("NTA_IPV4/NTA_IPV6"))?;
    let proto = r.l4proto.ok_or(ConvertError::Missing("NTA_L4PROTO"))?;
    let v6 = matches!(addrs, Addrs::V6 { .. });
    let icmp = r
        .icmp_type
        .map(|ty| (ty, r.icmp_code.unwrap_or(0), r.icmp_id.unwrap_or(0)));
    let (l4, rl4) = match (proto, r.ports, icmp) {
        (IPPROTO_ICMP | IPPROTO_ICMPV6, _, Some((ty, code, id))) => {
            let rty = icmp_reply_type(proto == IPPROTO_ICMPV6, ty);
            if proto == IPPROTO_ICMPV6 {
                (
                    L4::Icmpv6 { ty, code, id },
                    L4::Icmpv6 { ty: rty, code, id },
                )
            } else {
                (L4::Icmp { ty, code, id }, L4::Icmp { ty: rty, code, id })
            }
        }
        (_, Some(pt), _) => (
            L4::Ports {
                sport: pt.src,
                dport: pt.dst,
            },
            L4::Ports {
                sport: pt.dst,
                dport: pt.src,
            },
        ),
        _ => (L4::None, L4::None),
    };
    let orig = tuple_from_wire(&addrs, proto, l4);
    // The reply tuple is the mirror of the original; NAT is requested separately and the
    // kernel's NAT core rewrites the reply tuple itself.
    let mut reply = Tuple::new(orig.dst, orig.src, proto);
    reply.l4 = rl4;
    let family = if v6 { AF_INET6 } else { AF_INET };
    let mut ct = Conntrack::new(family, orig);
    ct.reply = Some(reply);
    // libnetfilter_conntrack ORs IPS_CONFIRMED into every CTA_STATUS it builds (and builds
    // none when the status is unknown).
    ct.status = r.status.map(|s| {
        let mut s = s & !IPS_EXPECTED;
        if p.kind == CommitKind::InjectUpdate {
            s &= !IPS_NAT_MASK;
        }
        s | IPS_CONFIRMED
    });
    ct.timeout = commit_timeout(r, now, last_update, p);
    ct.mark = r.mark;
    ct.zone = r.zone;
    ct.protoinfo = protoinfo_from_wire(r, proto, p.tcp_window_tracking);
    if let Some((a, b)) = r.nat_seq_adj.map(split_seq_adj) {
        ct.seq_adj_orig = Some(a);
        ct.seq_adj_reply = Some(b);
    }
    ct.labels = r.labels.as_ref().map(labels_to_kernel);
    ct.synproxy = r.synproxy.map(|s| KSynproxy {
        isn: s.isn,
        its: s.its,
        tsoff: s.tsoff,
    });
    if p.kind != CommitKind::InjectUpdate {
        ct.helper = r
            .helper_name
            .and_then(|n| HelperName::new(n.as_bytes()).ok());
        if let (Some(ma), Some(mp)) = (r.master_addrs, r.master_l4proto) {
            let ml4 = r.master_ports.map_or(L4::None, |pt| L4::Ports {
                sport: pt.src,
                dport: pt.dst,
            });
            ct.master = Some(tuple_from_wire(&ma, mp, ml4));
        }
        let snat = r
            .snat_ipv4
            .map(IpAddr::V4)
            .or_else(|| r.snat_ipv6.map(IpAddr::V6));
        let dnat = r
            .dnat_ipv4
            .map(IpAddr::V4)
            .or_else(|| r.dnat_ipv6.map(IpAddr::V6));
        ct.nat_src = nat_range(snat, r.spat_port);
        ct.nat_dst = nat_range(dnat, r.dpat_port);
    }
    Ok(ct)
}

fn split_seq_adj(s: NatSeqAdj) -> (SeqAdj, SeqAdj) {
    (
        SeqAdj {
            correction_pos: s.orig_correction_pos,
            offset_before: s.orig_offset_before,
            offset_after: s.orig_offset_after,
        },
        SeqAdj {
            correction_pos: s.repl_correction_pos,
            offset_before: s.repl_offset_before,
            offset_after: s.repl_offset_after,
        },
    )
}

/// A one-address, one-port NAT request (min = max), as the library builds from
/// `ATTR_SNAT_*` / `ATTR_DNAT_*`.
fn nat_range(addr: Option<IpAddr>, port: Option<u16>) -> Option<NatRange> {
    if addr.is_none() && port.is_none() {
        return None;
    }
    Some(NatRange {
        min_ip: addr,
        max_ip: addr,
        min_port: port,
        max_port: port,
    })
}

fn protoinfo_from_wire(r: &Repr, proto: u8, window_tracking: bool) -> Option<ProtoInfo> {
    match proto {
        IPPROTO_TCP => {
            let liberal = TcpFlags {
                flags: IP_CT_TCP_FLAG_BE_LIBERAL,
                mask: IP_CT_TCP_FLAG_BE_LIBERAL,
            };
            let t = TcpInfo {
                state: r.tcp_state,
                wscale_orig: r.tcp_wscale_orig.filter(|_| window_tracking),
                wscale_reply: r.tcp_wscale_repl.filter(|_| window_tracking),
                flags_orig: (!window_tracking).then_some(liberal),
                flags_reply: (!window_tracking).then_some(liberal),
            };
            (t != TcpInfo::default()).then_some(ProtoInfo::Tcp(t))
        }
        IPPROTO_SCTP => {
            let s = SctpInfo {
                state: r.sctp_state,
                vtag_orig: r.sctp_vtag_orig,
                vtag_reply: r.sctp_vtag_repl,
            };
            (s != SctpInfo::default()).then_some(ProtoInfo::Sctp(s))
        }
        IPPROTO_DCCP => {
            let d = DccpInfo {
                state: r.dccp_state,
                role: r.dccp_role,
                handshake_seq: None,
            };
            (d != DccpInfo::default()).then_some(ProtoInfo::Dccp(d))
        }
        _ => None,
    }
}
