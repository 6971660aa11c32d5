//! Deterministic conntrack entries and the ctnetlink event stream they make.
//!
//! Flow `i` is a kernel entry as an event would report it. The mix is fixed by `i % 16`, so
//! any run of 16 consecutive flows has the same shape:
//!
//! * 13 of 16 IPv4 TCP, ESTABLISHED with window scale and flags (the common case);
//! * 4 of 16 (every `i % 4 == 1`) source-NATed: the reply tuple is rewritten, so the sync
//!   message carries NTA_SNAT_IPV4 and NTA_SPAT_PORT;
//! * 2 of 16 (`i % 8 == 7`) IPv4 UDP (no protocol info);
//! * 1 of 16 (`i % 16 == 14`) IPv6 TCP.
//!
//! Addresses: source `10.x.y.z` from the low 24 bits of `i` (`fd00::…` for IPv6), source port
//! 1024 + the bits above, destination `192.0.2.1:80` (`2001:db8::1`), as ctgen makes them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use conntrackd::netlink::consts::{
    CTA_ID, CTA_USE, IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_NEW, IPPROTO_TCP, IPPROTO_UDP,
    NFNL_SUBSYS_CTNETLINK, NLM_F_CREATE, NLM_F_EXCL,
};
use conntrackd::netlink::ct::Conntrack;
use conntrackd::netlink::msg::MsgBuilder;
use conntrackd::netlink::protoinfo::{ProtoInfo, TcpFlags, TcpInfo};
use conntrackd::netlink::tuple::{L4, Tuple};

/// `IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED | IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE`.
const STATUS: u32 = 0x18e;
/// `IPS_SRC_NAT`.
const IPS_SRC_NAT: u32 = 0x10;

/// The kernel entry of flow `i` (see the module documentation for the mix).
pub fn flow(i: u32) -> Conntrack {
    let lo = i & 0x00ff_ffff;
    let sport = 1024 + (i >> 24) as u16 + (lo % 50_000) as u16;
    let v6 = i % 16 == 14;
    let udp = i % 8 == 7;
    let snat = i % 4 == 1;
    let (src, dst) = if v6 {
        (
            IpAddr::V6(Ipv6Addr::new(
                0xfd00,
                0,
                0,
                0,
                0,
                0,
                (lo >> 16) as u16,
                lo as u16,
            )),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        )
    } else {
        (
            IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | lo)),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        )
    };
    let (proto, dport) = if udp {
        (IPPROTO_UDP, 53)
    } else {
        (IPPROTO_TCP, 80)
    };
    let mut orig = Tuple::new(src, dst, proto);
    orig.l4 = L4::Ports { sport, dport };
    let mut reply = Tuple::new(dst, src, proto);
    reply.l4 = L4::Ports {
        sport: dport,
        dport: sport,
    };
    let mut status = STATUS;
    if snat && !v6 {
        // Masquerade behind 203.0.113.x with a remapped port, as a NAT gateway would.
        reply.dst = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1 + (i % 200) as u8));
        reply.l4 = L4::Ports {
            sport: dport,
            dport: 20_000 + (i % 40_000) as u16,
        };
        status |= IPS_SRC_NAT;
    }
    let mut ct = Conntrack::new(orig.family(), orig);
    ct.reply = Some(reply);
    ct.status = Some(status);
    ct.timeout = Some(if udp { 30 } else { 432_000 });
    ct.mark = Some(0);
    ct.id = Some(i);
    ct.use_count = Some(1);
    if !udp {
        let f = TcpFlags {
            flags: 0x23,
            mask: 0,
        };
        ct.protoinfo = Some(ProtoInfo::Tcp(TcpInfo {
            state: Some(3),
            wscale_orig: Some(7),
            wscale_reply: Some(7),
            flags_orig: Some(f),
            flags_reply: Some(f),
        }));
    }
    ct
}

/// The three kinds of conntrack event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `IPCTNL_MSG_CT_NEW` with `NLM_F_CREATE | NLM_F_EXCL`.
    New,
    /// `IPCTNL_MSG_CT_NEW` without them (state or timeout change).
    Update,
    /// `IPCTNL_MSG_CT_DELETE`.
    Destroy,
}

/// Appends the event the kernel would multicast for `ct` to `buf` (one netlink message,
/// 4-byte aligned, `nlmsg_pid` 0 as for the packet path).
///
/// The attributes follow ctnetlink's event builder: tuples, status, then for NEW/UPDATE the
/// timeout and protocol info, mark, id and use. A DESTROY carries no timeout or protocol
/// info.
pub fn push_event(buf: &mut Vec<u8>, ct: &Conntrack, ev: Event, seq: u32) {
    let (op, flags) = match ev {
        Event::New => (IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL),
        Event::Update => (IPCTNL_MSG_CT_NEW, 0),
        Event::Destroy => (IPCTNL_MSG_CT_DELETE, 0),
    };
    let mut c = *ct;
    if ev == Event::Destroy {
        c.timeout = None;
        c.protoinfo = None;
    }
    let mut b = MsgBuilder::new(buf, NFNL_SUBSYS_CTNETLINK, op, flags, seq, ct.family);
    c.emit(&mut b);
    // Read-only attributes `Conntrack::emit` leaves out, but every event carries.
    b.put_u32_be(CTA_ID, ct.id.unwrap_or(0));
    b.put_u32_be(CTA_USE, ct.use_count.unwrap_or(1));
    b.finish();
}

/// A churn stream over `flows` flows with about `live` alive at a time: event `j` creates
/// flow `j`, updates flow `j - live/2` and destroys flow `j - live`, so every flow gets
/// NEW, UPDATE, DESTROY and the caches hold about `live` entries. Returns the concatenated
/// messages and their number (`3 * flows`).
pub fn churn_stream(flows: u32, live: u32) -> (Vec<u8>, usize) {
    let half = (live / 2).max(1);
    let mut buf = Vec::with_capacity(flows as usize * 3 * 180);
    let mut n = 0usize;
    let mut seq = 1u32;
    let mut push = |buf: &mut Vec<u8>, i: u32, ev| {
        push_event(buf, &flow(i), ev, seq);
        seq = seq.wrapping_add(1);
        n += 1;
    };
    for j in 0..flows + 2 * half {
        if j < flows {
            push(&mut buf, j, Event::New);
        }
        if let Some(i) = j.checked_sub(half).filter(|&i| i < flows) {
            push(&mut buf, i, Event::Update);
        }
        if let Some(i) = j.checked_sub(2 * half).filter(|&i| i < flows) {
            push(&mut buf, i, Event::Destroy);
        }
    }
    (buf, n)
}

/// A tiny deterministic generator (xorshift64*) for inputs that must not depend on a seed
/// from the environment.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (0 is replaced by a fixed constant).
    pub const fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conntrackd::netlink::ct::Conntrack;
    use conntrackd::netlink::msg::{Payload, messages};

    /// The stream parses back into the flows it was built from (the bench measures real
    /// work, not error paths).
    #[test]
    fn test_churn_stream_roundtrip() {
        let (buf, n) = churn_stream(64, 16);
        assert_eq!(n, 3 * 64);
        let mut seen = 0;
        for m in messages(&buf) {
            let m = m.unwrap();
            let Payload::Nfnl { family, attrs, .. } = m.classify().unwrap() else {
                panic!("not nfnetlink");
            };
            let ct = Conntrack::parse(family, attrs).unwrap();
            assert_eq!(ct.unknown_attrs, 0);
            let want = flow(ct.id.unwrap());
            assert_eq!(ct.orig, want.orig);
            assert_eq!(ct.reply, want.reply);
            seen += 1;
        }
        assert_eq!(seen, n);
    }
}
