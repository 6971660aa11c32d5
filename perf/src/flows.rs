//! Deterministic, unique flows from a counter, and the ctnetlink messages that create,
//! update or delete them.
//!
//! Flow `i` is a pure function of `(Proto, i)`, so a generator never stores the tuples it
//! created: churn deletes "the oldest" by recomputing flow `oldest`, and two runs with the
//! same arguments touch the same entries. Messages are written with the codec's
//! [`MsgBuilder`] straight into the caller's reusable buffer; nothing allocates per entry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use conntrackd::netlink::consts::{
    CTA_STATUS, CTA_TIMEOUT, CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, IPCTNL_MSG_CT_DELETE,
    IPCTNL_MSG_CT_NEW, NFNL_SUBSYS_CTNETLINK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST,
};
use conntrackd::netlink::msg::MsgBuilder;
use conntrackd::netlink::protoinfo::{ProtoInfo, TcpInfo};
use conntrackd::netlink::tuple::{L4, Tuple};

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const AF_INET: u8 = libc::AF_INET as u8;
const AF_INET6: u8 = libc::AF_INET6 as u8;
/// `TCP_CONNTRACK_ESTABLISHED`.
const TCP_ESTABLISHED: u8 = 3;
/// `IPS_SEEN_REPLY | IPS_ASSURED`: what a real established TCP flow carries; assured entries
/// are also never early-dropped when the table is full, so a burst is not silently thinned.
/// Plus `IPS_CONFIRMED`, as libnetfilter_conntrack sends it: without that bit Linux 6.18
/// answers the create with EBUSY (it treats CONFIRMED as an unchangeable bit that differs).
const STATUS_ESTABLISHED: u32 = 0x2 | 0x4 | 0x8;
/// ICMP echo request / echo reply types (the kernel derives the reply type from the request).
const ICMP_ECHO: u8 = 8;
const ICMP_ECHOREPLY: u8 = 0;
/// Every destination lives in TEST-NET-1 / the documentation prefix: nothing routable, and
/// ctgen sends no packets anyway.
const DST_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const DST_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// Which kind of flow the generator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// IPv4 UDP (10.x.y.z:port → 192.0.2.1:53), no status bits, as `conntrack -I` makes it.
    Udp,
    /// IPv4 TCP ESTABLISHED with SEEN_REPLY | ASSURED (→ 192.0.2.1:80).
    Tcp,
    /// IPv4 ICMP echo (the id carries the high counter bits).
    Icmp,
    /// IPv6 UDP and TCP alternately (fd00::/64 → 2001:db8::1).
    Ipv6,
    /// UDP, TCP, ICMP, IPv6 in turn (flow `i` uses kind `i % 4`).
    Mix,
}

impl Proto {
    /// Parses the `--proto` value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "udp" => Self::Udp,
            "tcp" => Self::Tcp,
            "icmp" => Self::Icmp,
            "ipv6" => Self::Ipv6,
            "mix" => Self::Mix,
            _ => return None,
        })
    }

    /// The `--proto` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Icmp => "icmp",
            Self::Ipv6 => "ipv6",
            Self::Mix => "mix",
        }
    }
}

/// What a request does to flow `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// CT_NEW with CREATE | EXCL (EEXIST if present): a NEW event.
    Create,
    /// CT_NEW without CREATE, new timeout (ENOENT if absent): an UPDATE event.
    Update,
    /// CT_DELETE by original tuple (ENOENT if absent): a DESTROY event.
    Delete,
}

impl Op {
    /// Parses the `--op` value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "create" => Self::Create,
            "update" => Self::Update,
            "delete" => Self::Delete,
            _ => return None,
        })
    }

    /// The `--op` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// One generated flow: the two tuples and what the create request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// AF_INET or AF_INET6 (the nfgen_family of its requests).
    pub family: u8,
    /// Original direction.
    pub orig: Tuple,
    /// Reply direction (the kernel requires it on create).
    pub reply: Tuple,
    /// CTA_STATUS, if any.
    pub status: Option<u32>,
    /// CTA_PROTOINFO, if any.
    pub protoinfo: Option<ProtoInfo>,
}

/// Source address and port of flow `i`: the low 24 bits pick 10.x.y.z (or fd00::x:y:z), the
/// next bits the source port from 1024 upwards, so every `i < 2^24 * 64512` is unique.
fn src_parts(i: u64) -> ([u8; 3], u16) {
    let low = (i & 0xff_ffff) as u32;
    let [_, a, b, c] = low.to_be_bytes();
    let port = 1024 + ((i >> 24) % 64512) as u16;
    ([a, b, c], port)
}

impl Flow {
    /// Flow number `i` of kind `proto`; distinct `(proto, i)` give distinct tuples.
    pub fn of(proto: Proto, i: u64) -> Self {
        let kind = match proto {
            Proto::Mix => [Proto::Udp, Proto::Tcp, Proto::Icmp, Proto::Ipv6][(i % 4) as usize],
            p => p,
        };
        let ([a, b, c], sport) = src_parts(i);
        let v4 = IpAddr::V4(Ipv4Addr::new(10, a, b, c));
        let dst4 = IpAddr::V4(DST_V4);
        let ports = |l4proto, dport, src, dst| {
            let mut o = Tuple::new(src, dst, l4proto);
            o.l4 = L4::Ports { sport, dport };
            let mut r = Tuple::new(dst, src, l4proto);
            r.l4 = L4::Ports {
                sport: dport,
                dport: sport,
            };
            (o, r)
        };
        let tcp_info = Some(ProtoInfo::Tcp(TcpInfo {
            state: Some(TCP_ESTABLISHED),
            ..TcpInfo::default()
        }));
        match kind {
            Proto::Udp => {
                let (orig, reply) = ports(IPPROTO_UDP, 53, v4, dst4);
                Self::new(AF_INET, orig, reply, None, None)
            }
            Proto::Tcp => {
                let (orig, reply) = ports(IPPROTO_TCP, 80, v4, dst4);
                Self::new(AF_INET, orig, reply, Some(STATUS_ESTABLISHED), tcp_info)
            }
            Proto::Icmp => {
                // The echo id plays the source port's role in the tuple.
                let id = sport;
                let mut orig = Tuple::new(v4, dst4, IPPROTO_ICMP);
                orig.l4 = L4::Icmp {
                    ty: ICMP_ECHO,
                    code: 0,
                    id,
                };
                let mut reply = Tuple::new(dst4, v4, IPPROTO_ICMP);
                reply.l4 = L4::Icmp {
                    ty: ICMP_ECHOREPLY,
                    code: 0,
                    id,
                };
                Self::new(AF_INET, orig, reply, None, None)
            }
            _ => {
                let src = IpAddr::V6(Ipv6Addr::new(
                    0xfd00,
                    0,
                    0,
                    0,
                    0,
                    u16::from(a),
                    u16::from(b),
                    u16::from(c),
                ));
                let dst = IpAddr::V6(DST_V6);
                // Alternate on the bit above the `% 4` of Mix so both halves get both.
                if (i >> 2) & 1 == 0 {
                    let (orig, reply) = ports(IPPROTO_UDP, 53, src, dst);
                    Self::new(AF_INET6, orig, reply, None, None)
                } else {
                    let (orig, reply) = ports(IPPROTO_TCP, 80, src, dst);
                    Self::new(AF_INET6, orig, reply, Some(STATUS_ESTABLISHED), tcp_info)
                }
            }
        }
    }

    const fn new(
        family: u8,
        orig: Tuple,
        reply: Tuple,
        status: Option<u32>,
        protoinfo: Option<ProtoInfo>,
    ) -> Self {
        Self {
            family,
            orig,
            reply,
            status,
            protoinfo,
        }
    }

    /// Appends the request for `op` to `buf`: no NLM_F_ACK, so the kernel answers only on
    /// error. `timeout` is CTA_TIMEOUT in seconds (create and update). Returns the bytes added.
    pub fn emit(&self, buf: &mut Vec<u8>, op: Op, seq: u32, timeout: u32) -> usize {
        let (msg, flags) = match op {
            Op::Create => (IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL),
            Op::Update => (IPCTNL_MSG_CT_NEW, 0),
            Op::Delete => (IPCTNL_MSG_CT_DELETE, 0),
        };
        let mut b = MsgBuilder::new(
            buf,
            NFNL_SUBSYS_CTNETLINK,
            msg,
            NLM_F_REQUEST | flags,
            seq,
            self.family,
        );
        self.orig.emit(&mut b, CTA_TUPLE_ORIG);
        match op {
            Op::Create => {
                // The kernel refuses a create without the reply tuple or a timeout (EINVAL).
                self.reply.emit(&mut b, CTA_TUPLE_REPLY);
                if let Some(s) = self.status {
                    b.put_u32_be(CTA_STATUS, s);
                }
                b.put_u32_be(CTA_TIMEOUT, timeout);
                if let Some(p) = &self.protoinfo {
                    p.emit(&mut b);
                }
            }
            Op::Update => b.put_u32_be(CTA_TIMEOUT, timeout),
            Op::Delete => {}
        }
        b.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use conntrackd::netlink::ct::Conntrack;
    use conntrackd::netlink::msg::{NFGENMSG_LEN, NLMSG_HDRLEN, messages};

    use super::*;

    #[test]
    fn test_flows_unique_across_kinds() {
        let mut seen = HashSet::new();
        for p in [Proto::Udp, Proto::Tcp, Proto::Icmp, Proto::Ipv6] {
            for i in (0..5000).chain([1 << 24, (1 << 24) + 1, 3 << 24]) {
                let f = Flow::of(p, i);
                assert!(seen.insert((f.family, f.orig)), "{p:?} {i}");
            }
        }
        for i in 0..8000 {
            // Mix draws from the same spaces, still without repeats among its own flows.
            let f = Flow::of(Proto::Mix, i);
            assert_eq!(f, Flow::of(Proto::Mix, i));
        }
        let kinds: HashSet<_> = (0..8)
            .map(|i| {
                let f = Flow::of(Proto::Mix, i);
                (f.family, f.orig.l4proto)
            })
            .collect();
        assert_eq!(kinds.len(), 5, "{kinds:?}"); // udp, tcp, icmp, udp6, tcp6
    }

    #[test]
    fn test_emit_parses_back() {
        let mut buf = Vec::new();
        for i in 0..8 {
            let f = Flow::of(Proto::Mix, i);
            buf.clear();
            let n = f.emit(&mut buf, Op::Create, 7, 300);
            assert_eq!(n, buf.len());
            let m = messages(&buf).next().unwrap().unwrap();
            assert_eq!(m.flags(), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL);
            let ct = Conntrack::parse(f.family, &buf[NLMSG_HDRLEN + NFGENMSG_LEN..]).unwrap();
            assert_eq!((ct.orig, ct.reply), (f.orig, Some(f.reply)));
            assert_eq!((ct.timeout, ct.status), (Some(300), f.status));
            assert_eq!(ct.protoinfo, f.protoinfo);
        }
        // A delete carries only the original tuple.
        buf.clear();
        Flow::of(Proto::Tcp, 1).emit(&mut buf, Op::Delete, 8, 0);
        let ct = Conntrack::parse(AF_INET, &buf[NLMSG_HDRLEN + NFGENMSG_LEN..]).unwrap();
        assert_eq!((ct.reply, ct.timeout, ct.protoinfo), (None, None, None));
    }
}
