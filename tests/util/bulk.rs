//! Many kernel entries at once, through our own ctnetlink layer in batches (`conntrack -I`
//! manages a few hundred a second). Not an oracle: tests that check the kernel's view read
//! it back with the `conntrack` CLI ([`super::ct`]).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use conntrackd::netlink::ct::Conntrack;
use conntrackd::netlink::protoinfo::{ProtoInfo, TcpInfo};
use conntrackd::netlink::socket::CtHandle;
use conntrackd::netlink::tuple::{L4, Tuple};

use super::netns::NetNs;

/// Creates established TCP flows `first..first + n` in `ns`'s table: flow `i` goes from
/// `src.(i % 250 + 1)` port `1024 + i / 250` to `dst:80` (distinct tuples for distinct
/// numbers, up to 250 × 64k). Panics if the kernel refuses one; returns how long the
/// batched creation took.
pub(crate) fn create_tcp_flows(
    ns: &NetNs,
    src: [u8; 3],
    dst: Ipv4Addr,
    first: u32,
    n: u32,
) -> Duration {
    let cts: Vec<Conntrack> = (first..first + n)
        .map(|i| {
            let s = IpAddr::V4(Ipv4Addr::new(src[0], src[1], src[2], (i % 250) as u8 + 1));
            let d = IpAddr::V4(dst);
            let sport = 1024 + (i / 250) as u16;
            let mut o = Tuple::new(s, d, 6);
            o.l4 = L4::Ports { sport, dport: 80 };
            let mut r = Tuple::new(d, s, 6);
            r.l4 = L4::Ports {
                sport: 80,
                dport: sport,
            };
            let mut ct = Conntrack::new(2, o);
            ct.reply = Some(r);
            ct.status = Some(0x6);
            ct.timeout = Some(600);
            ct.protoinfo = Some(ProtoInfo::Tcp(TcpInfo {
                state: Some(3),
                ..TcpInfo::default()
            }));
            ct
        })
        .collect();
    ns.run_in(move || {
        let mut h = CtHandle::open().expect("ctnetlink socket");
        let t = Instant::now();
        let rep = h.create(&cts).expect("batch create");
        assert!(rep.all_ok(), "{:?}", rep.errors.first());
        t.elapsed()
    })
}
