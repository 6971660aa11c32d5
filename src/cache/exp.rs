//! Expectation conversions: kernel ([`Expectation`]) ⇄ sync message ([`ExpRepr`]), as
//! conntrackd 1.4.7 builds them (wire-protocol.md §8; commit as for conntracks,
//! sync-modes.md §6, with the same timeout rule).

use std::net::IpAddr;

use crate::netlink::exp::{ExpNat, Expectation};
use crate::netlink::name::{FnName, HelperName};
use crate::netlink::tuple::{L4, Tuple};
use crate::wire::ct::Repr;
use crate::wire::exp::{NatTuple, Repr as ExpRepr, Tuple as WireTuple};
use crate::wire::tuple::Name;

use super::convert::{
    CommitPolicy, ConvertError, SendPolicy, addrs_of, commit_timeout, has_wire_ports, ports_of,
    tuple_from_wire,
};
use super::entry::Secs;

/// [`apply_send_policy`](super::convert::apply_send_policy) for expectations: `CommitTimeout` suppresses `NTA_EXP_TIMEOUT`.
pub fn apply_exp_send_policy(r: &mut ExpRepr, p: &SendPolicy) {
    if p.commit_timeout != 0 {
        r.timeout = None;
    }
}

fn exp_wire_tuple(t: &Tuple, ports: bool) -> WireTuple {
    WireTuple {
        addrs: Some(addrs_of(t)),
        l4proto: Some(t.l4proto),
        ports: ports.then(|| ports_of(&t.l4)),
    }
}

/// The EXP message a 1.4.7 sender builds (wire-protocol.md §8): port attributes only when
/// the master's protocol is TCP, UDP, SCTP or DCCP; NAT only for IPv4.
pub fn exp_wire_from_kernel(e: &Expectation, p: &SendPolicy) -> ExpRepr {
    let ports = has_wire_ports(e.master.l4proto);
    let nat = match &e.nat {
        Some(ExpNat { dir, tuple }) => NatTuple {
            addrs: match (tuple.src, tuple.dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => Some((s, d)),
                _ => None,
            },
            l4proto: Some(tuple.l4proto),
            ports: ports.then(|| ports_of(&tuple.l4)),
            dir: Some(*dir),
        },
        None => NatTuple::default(),
    };
    ExpRepr {
        master: exp_wire_tuple(&e.master, ports),
        expect: exp_wire_tuple(&e.tuple, ports),
        mask: exp_wire_tuple(&e.mask, ports),
        timeout: if p.commit_timeout == 0 {
            e.timeout
        } else {
            None
        },
        flags: Some(e.flags.unwrap_or(0)),
        class: e.class,
        nat,
        helper_name: e
            .helper
            .and_then(|h| h.as_str().and_then(|s| Name::new(s).ok())),
        expect_fn: e
            .fn_name
            .and_then(|f| f.as_str().and_then(|s| Name::new(s).ok())),
    }
}

fn kernel_tuple(t: &WireTuple, what: &'static str) -> Result<Tuple, ConvertError> {
    let a = t.addrs.ok_or(ConvertError::Missing(what))?;
    let l4 = t.ports.map_or(L4::None, |pt| L4::Ports {
        sport: pt.src,
        dport: pt.dst,
    });
    Ok(tuple_from_wire(&a, t.l4proto.unwrap_or(0), l4))
}

/// The kernel expectation CREATE built from a replicated one (ctnetlink-notes.md §7). The
/// timeout follows the conntrack rule; the sync protocol carries no expectation zone.
pub fn exp_kernel_from_wire(
    r: &ExpRepr,
    now: Secs,
    last_update: Secs,
    p: &CommitPolicy,
) -> Result<Expectation, ConvertError> {
    let master = kernel_tuple(&r.master, "NTA_EXP_MASTER_IPV4/IPV6")?;
    let tuple = kernel_tuple(&r.expect, "NTA_EXP_EXPECT_IPV4/IPV6")?;
    let mask = kernel_tuple(&r.mask, "NTA_EXP_MASK_IPV4/IPV6")?;
    let mut e = Expectation::new(master.family(), master, tuple, mask);
    let as_ct = Repr {
        timeout: r.timeout,
        ..Repr::default()
    };
    e.timeout = commit_timeout(&as_ct, now, last_update, p);
    e.flags = r.flags;
    e.class = r.class;
    e.helper = r
        .helper_name
        .and_then(|n| HelperName::new(n.as_bytes()).ok());
    e.fn_name = r.expect_fn.and_then(|n| FnName::new(n.as_bytes()).ok());
    if let (Some((s, d)), Some(dir)) = (r.nat.addrs, r.nat.dir) {
        let mut t = Tuple::new(IpAddr::V4(s), IpAddr::V4(d), r.nat.l4proto.unwrap_or(0));
        if let Some(pt) = r.nat.ports {
            t.l4 = L4::Ports {
                sport: pt.src,
                dport: pt.dst,
            };
        }
        e.nat = Some(ExpNat { dir, tuple: t });
    }
    Ok(e)
}
