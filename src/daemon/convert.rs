//! Kernel conntrack ⇄ sync payload, and the flow key (TEMPORARY).
//!
//! This is the smallest shim that lets the daemon run until the `cache` branch lands with
//! `cache::{key, convert}` (CtKey, `wire_from_kernel`, `kernel_from_wire`); it is removed then.
//! It follows what a 1.4.7 sender fills (wire/ct.rs module doc, sync-modes.md §6) and the
//! commit preparation of ctnetlink-notes.md §7.

use std::hash::Hash;
use std::net::IpAddr;

use crate::netlink::consts::{
    IP_CT_TCP_FLAG_BE_LIBERAL, IPS_DST_NAT_DONE, IPS_EXPECTED, IPS_SRC_NAT_DONE,
};
use crate::netlink::ct::{Conntrack, NatRange, SeqAdj, Synproxy as NlSynproxy};
use crate::netlink::name::HelperName;
use crate::netlink::protoinfo::{DccpInfo, ProtoInfo, SctpInfo, TcpFlags, TcpInfo};
use crate::netlink::tuple::{L4, Tuple};
use crate::wire::ct::{Addrs, Labels, Name, NatSeqAdj, Ports, Repr, Synproxy};

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Identity of a conntrack in both caches: original tuple plus zone (1.4.7, §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// Original source address.
    pub src: IpAddr,
    /// Original destination address.
    pub dst: IpAddr,
    /// IP protocol.
    pub l4proto: u8,
    /// Ports or ICMP fields.
    pub l4: L4,
    /// Zone (0 when absent).
    pub zone: u16,
}

impl Key {
    /// The key of a kernel conntrack.
    pub fn of(ct: &Conntrack) -> Self {
        Self {
            src: ct.orig.src,
            dst: ct.orig.dst,
            l4proto: ct.orig.l4proto,
            l4: ct.orig.l4,
            zone: ct.zone.unwrap_or(0),
        }
    }

    /// A stable hash for shard routing: fixed seeds, so that the reader and the receiver
    /// route a flow to the same shard.
    pub fn route_hash(&self) -> u64 {
        ahash::RandomState::with_seeds(0x5eed, 0xc0ff, 0xee15, 0x1473).hash_one(self)
    }
}

fn uses_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 33 | 132 | 136)
}

/// The sync payload a 1.4.7 sender builds from a kernel conntrack.
pub fn wire_from_kernel(ct: &Conntrack, send_timeout: bool, window_tracking: bool) -> Repr {
    let mut r = Repr {
        addrs: Some(addrs_of(&ct.orig)),
        l4proto: Some(ct.orig.l4proto),
        status: Some(ct.status.unwrap_or(0)),
        mark: ct.mark,
        ..Repr::default()
    };
    if send_timeout {
        r.timeout = ct.timeout;
    }
    match ct.orig.l4 {
        L4::Ports { sport, dport } => {
            r.ports = Some(Ports {
                src: sport,
                dst: dport,
            });
        }
        L4::Icmp { ty, code, id } | L4::Icmpv6 { ty, code, id } => {
            r.icmp_type = Some(ty);
            r.icmp_code = Some(code);
            r.icmp_id = Some(id);
        }
        L4::None if uses_ports(ct.orig.l4proto) => r.ports = Some(Ports::default()),
        L4::None => {}
    }
    match ct.protoinfo {
        Some(ProtoInfo::Tcp(t)) => {
            r.tcp_state = t.state;
            if window_tracking {
                r.tcp_wscale_orig = t.wscale_orig;
                r.tcp_wscale_repl = t.wscale_reply;
            }
        }
        Some(ProtoInfo::Sctp(s)) => {
            r.sctp_state = s.state;
            r.sctp_vtag_orig = s.vtag_orig;
            r.sctp_vtag_repl = s.vtag_reply;
        }
        Some(ProtoInfo::Dccp(d)) => {
            r.dccp_state = d.state;
            r.dccp_role = d.role;
        }
        None => {}
    }
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
    let status = ct.status.unwrap_or(0);
    if let Some(reply) = &ct.reply {
        if status & IPS_SRC_NAT_DONE != 0 {
            if reply.dst != ct.orig.src {
                match reply.dst {
                    IpAddr::V4(a) => r.snat_ipv4 = Some(a),
                    IpAddr::V6(a) => r.snat_ipv6 = Some(a),
                }
            }
            if let (L4::Ports { sport, .. }, L4::Ports { dport: rd, .. }) = (ct.orig.l4, reply.l4)
                && sport != rd
            {
                r.spat_port = Some(rd);
            }
        }
        if status & IPS_DST_NAT_DONE != 0 {
            if reply.src != ct.orig.dst {
                match reply.src {
                    IpAddr::V4(a) => r.dnat_ipv4 = Some(a),
                    IpAddr::V6(a) => r.dnat_ipv6 = Some(a),
                }
            }
            if let (L4::Ports { dport, .. }, L4::Ports { sport: rs, .. }) = (ct.orig.l4, reply.l4)
                && dport != rs
            {
                r.dpat_port = Some(rs);
            }
        }
    }
    if ct.seq_adj_orig.is_some() || ct.seq_adj_reply.is_some() {
        let o = ct.seq_adj_orig.unwrap_or_default();
        let p = ct.seq_adj_reply.unwrap_or_default();
        r.nat_seq_adj = Some(NatSeqAdj {
            orig_correction_pos: o.correction_pos,
            orig_offset_before: o.offset_before,
            orig_offset_after: o.offset_after,
            repl_correction_pos: p.correction_pos,
            repl_offset_before: p.offset_before,
            repl_offset_after: p.offset_after,
        });
    }
    if let Some(h) = ct.helper.as_ref().and_then(HelperName::as_str) {
        r.helper_name = Name::new(h).ok();
    }
    if let Some(raw) = ct.labels {
        // Kernel bitmap: host-order words (x86: little-endian); the wire wants BE32 words
        // with bit k in word k/32.
        let mut words = [0u32; 4];
        for (w, c) in words.iter_mut().zip(raw.chunks_exact(4)) {
            *w = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
        }
        if let Ok(l) = Labels::from_words(&words)
            && !l.is_empty()
        {
            r.labels = Some(l);
        }
    }
    if let Some(s) = ct.synproxy {
        r.synproxy = Some(Synproxy {
            its: s.its,
            isn: s.isn,
            tsoff: s.tsoff,
        });
    }
    r.zone = ct.zone.filter(|&z| z != 0);
    r
}

fn addrs_of(t: &Tuple) -> Addrs {
    match (t.src, t.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => Addrs::V4 { src, dst },
        (IpAddr::V6(src), IpAddr::V6(dst)) => Addrs::V6 { src, dst },
        // Mixed families cannot come out of the kernel; map them to v6 to stay total.
        (s, d) => Addrs::V6 {
            src: v6(s),
            dst: v6(d),
        },
    }
}

fn v6(a: IpAddr) -> std::net::Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

fn tuple_from(
    addrs: Addrs,
    l4proto: u8,
    ports: Option<Ports>,
    icmp: Option<(u8, u8, u16)>,
) -> Tuple {
    let (src, dst) = match addrs {
        Addrs::V4 { src, dst } => (IpAddr::V4(src), IpAddr::V4(dst)),
        Addrs::V6 { src, dst } => (IpAddr::V6(src), IpAddr::V6(dst)),
    };
    let mut t = Tuple::new(src, dst, l4proto);
    t.l4 = match (l4proto, ports, icmp) {
        (1, _, Some((ty, code, id))) => L4::Icmp { ty, code, id },
        (58, _, Some((ty, code, id))) => L4::Icmpv6 { ty, code, id },
        (_, Some(p), _) => L4::Ports {
            sport: p.src,
            dport: p.dst,
        },
        _ => L4::None,
    };
    t
}

/// The key of a received payload, without building the whole conntrack; `None` when the
/// message lacks the addresses or protocol.
pub fn key_of_wire(r: &Repr) -> Option<Key> {
    let t = orig_of_wire(r)?;
    Some(Key {
        src: t.src,
        dst: t.dst,
        l4proto: t.l4proto,
        l4: t.l4,
        zone: r.zone.unwrap_or(0),
    })
}

fn orig_of_wire(r: &Repr) -> Option<Tuple> {
    let icmp = r
        .icmp_type
        .map(|t| (t, r.icmp_code.unwrap_or(0), r.icmp_id.unwrap_or(0)));
    Some(tuple_from(r.addrs?, r.l4proto?, r.ports, icmp))
}

/// The ICMP type of the reply to `ty` (the kernel's invert map), or `ty` itself.
fn icmp_reply_type(v6: bool, ty: u8) -> u8 {
    if v6 {
        match ty {
            128 => 129,
            129 => 128,
            130 => 131,
            131 => 130,
            _ => ty,
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
            10 => 9,
            9 => 10,
            _ => ty,
        }
    }
}

fn mirror(t: &Tuple) -> Tuple {
    let mut r = Tuple::new(t.dst, t.src, t.l4proto);
    r.l4 = match t.l4 {
        L4::Ports { sport, dport } => L4::Ports {
            sport: dport,
            dport: sport,
        },
        L4::Icmp { ty, code, id } => L4::Icmp {
            ty: icmp_reply_type(false, ty),
            code,
            id,
        },
        L4::Icmpv6 { ty, code, id } => L4::Icmpv6 {
            ty: icmp_reply_type(true, ty),
            code,
            id,
        },
        L4::None => L4::None,
    };
    r
}

/// The conntrack to create in the kernel for a cached payload (commit, §6 step 6), with
/// `timeout` seconds; `None` if the payload has no usable tuple.
pub fn kernel_from_wire(r: &Repr, timeout: u32, window_tracking: bool) -> Option<Conntrack> {
    let orig = orig_of_wire(r)?;
    let family = match r.addrs? {
        Addrs::V4 { .. } => AF_INET,
        Addrs::V6 { .. } => AF_INET6,
    };
    let mut ct = Conntrack::new(family, orig);
    ct.reply = Some(mirror(&orig));
    ct.status = Some(r.status.unwrap_or(0) & !IPS_EXPECTED);
    ct.timeout = Some(timeout);
    ct.mark = r.mark;
    ct.zone = r.zone;
    if let (Some(a), Some(p)) = (r.master_addrs, r.master_l4proto) {
        ct.master = Some(tuple_from(a, p, r.master_ports, None));
    }
    let liberal = (!window_tracking).then_some(TcpFlags {
        flags: IP_CT_TCP_FLAG_BE_LIBERAL,
        mask: IP_CT_TCP_FLAG_BE_LIBERAL,
    });
    ct.protoinfo = match orig.l4proto {
        6 => Some(ProtoInfo::Tcp(TcpInfo {
            state: r.tcp_state,
            wscale_orig: r.tcp_wscale_orig.filter(|_| window_tracking),
            wscale_reply: r.tcp_wscale_repl.filter(|_| window_tracking),
            flags_orig: liberal,
            flags_reply: liberal,
        })),
        132 if r.sctp_state.is_some() => Some(ProtoInfo::Sctp(SctpInfo {
            state: r.sctp_state,
            vtag_orig: r.sctp_vtag_orig,
            vtag_reply: r.sctp_vtag_repl,
        })),
        33 if r.dccp_state.is_some() => Some(ProtoInfo::Dccp(DccpInfo {
            state: r.dccp_state,
            role: r.dccp_role,
            handshake_seq: None,
        })),
        _ => None,
    };
    let snat = r
        .snat_ipv4
        .map(IpAddr::V4)
        .or_else(|| r.snat_ipv6.map(IpAddr::V6));
    if snat.is_some() || r.spat_port.is_some() {
        ct.nat_src = Some(NatRange {
            min_ip: snat,
            max_ip: snat,
            min_port: r.spat_port,
            max_port: r.spat_port,
        });
    }
    let dnat = r
        .dnat_ipv4
        .map(IpAddr::V4)
        .or_else(|| r.dnat_ipv6.map(IpAddr::V6));
    if dnat.is_some() || r.dpat_port.is_some() {
        ct.nat_dst = Some(NatRange {
            min_ip: dnat,
            max_ip: dnat,
            min_port: r.dpat_port,
            max_port: r.dpat_port,
        });
    }
    if let Some(s) = r.nat_seq_adj {
        ct.seq_adj_orig = Some(SeqAdj {
            correction_pos: s.orig_correction_pos,
            offset_before: s.orig_offset_before,
            offset_after: s.orig_offset_after,
        });
        ct.seq_adj_reply = Some(SeqAdj {
            correction_pos: s.repl_correction_pos,
            offset_before: s.repl_offset_before,
            offset_after: s.repl_offset_after,
        });
    }
    if let Some(h) = &r.helper_name {
        ct.helper = HelperName::new(h.as_bytes()).ok();
    }
    if let Some(l) = &r.labels {
        let mut raw = [0u8; 16];
        for (c, w) in raw.chunks_exact_mut(4).zip(l.words()) {
            c.copy_from_slice(&w.to_ne_bytes());
        }
        ct.labels = Some(raw);
    }
    if let Some(s) = r.synproxy {
        ct.synproxy = Some(NlSynproxy {
            isn: s.isn,
            its: s.its,
            tsoff: s.tsoff,
        });
    }
    Some(ct)
}

/// A CT_UPD merged into a cached payload: every attribute present in `new` overwrites, the
/// others keep their value (§1.2).
pub fn merge(old: &mut Repr, new: &Repr) {
    macro_rules! take {
        ($($f:ident),*) => {$( if new.$f.is_some() { old.$f = new.$f; } )*};
    }
    take!(
        addrs,
        l4proto,
        ports,
        tcp_state,
        status,
        timeout,
        mark,
        master_addrs,
        master_l4proto,
        master_ports,
        snat_ipv4,
        dnat_ipv4,
        spat_port,
        dpat_port,
        nat_seq_adj,
        sctp_state,
        sctp_vtag_orig,
        sctp_vtag_repl,
        dccp_state,
        dccp_role,
        icmp_type,
        icmp_code,
        icmp_id,
        tcp_wscale_orig,
        tcp_wscale_repl,
        helper_name,
        labels,
        snat_ipv6,
        dnat_ipv6,
        synproxy,
        zone
    );
}

/// Kernel update merged into a cached kernel conntrack: fields present in `new` win.
pub fn merge_kernel(old: &mut Conntrack, new: &Conntrack) {
    macro_rules! take {
        ($($f:ident),*) => {$( if new.$f.is_some() { old.$f = new.$f; } )*};
    }
    take!(
        reply,
        master,
        status,
        timeout,
        mark,
        zone,
        labels,
        helper,
        nat_src,
        nat_dst,
        seq_adj_orig,
        seq_adj_reply,
        synproxy,
        id,
        counters_orig,
        counters_reply,
        timestamp
    );
    match (&mut old.protoinfo, new.protoinfo) {
        (Some(ProtoInfo::Tcp(o)), Some(ProtoInfo::Tcp(n))) => {
            macro_rules! tk {
                ($($f:ident),*) => {$( if n.$f.is_some() { o.$f = n.$f; } )*};
            }
            tk!(state, wscale_orig, wscale_reply, flags_orig, flags_reply);
        }
        (_, Some(p)) => old.protoinfo = Some(p),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn test_round_trip_tcp_snat() {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut orig = Tuple::new(a("192.0.2.1"), a("198.51.100.2"), 6);
        orig.l4 = L4::Ports {
            sport: 40000,
            dport: 80,
        };
        let mut reply = Tuple::new(a("198.51.100.2"), a("203.0.113.5"), 6);
        reply.l4 = L4::Ports {
            sport: 80,
            dport: 50000,
        };
        let mut ct = Conntrack::new(AF_INET, orig);
        ct.reply = Some(reply);
        ct.status = Some(0x8e | IPS_SRC_NAT_DONE | 0x10);
        ct.timeout = Some(100);
        ct.mark = Some(7);
        let r = wire_from_kernel(&ct, true, false);
        assert_eq!(r.snat_ipv4, Some(Ipv4Addr::new(203, 0, 113, 5)));
        assert_eq!(r.spat_port, Some(50000));
        let back = kernel_from_wire(&r, 100, false).unwrap();
        assert_eq!(Key::of(&back), Key::of(&ct));
        assert_eq!(key_of_wire(&r), Some(Key::of(&ct)));
        assert_eq!(back.nat_src.unwrap().min_ip, Some(a("203.0.113.5")));
    }
}
