//! The user-space filter: a compiled form of `General { Filter { … } }` and of the
//! `ExpectationSync { … }` helper list.
//!
//! Semantics are conntrackd 1.4.7's user-space evaluation (config-grammar.md §4.1): an entry
//! is replicated and cached only if every configured set passes:
//!
//! 0. the reply tuple must be known (its source address is examined);
//! 1. protocol set: Accept passes iff the L4 protocol is listed, Ignore iff it is not (so
//!    with Accept an unlisted protocol is dropped);
//! 2. address set, on the **original source** and the **reply source** (the real peer
//!    after DNAT): if a netmask entry (prefix shorter than the address) matches either,
//!    Accept passes and Ignore drops without looking further; otherwise the exact-address
//!    set decides (match = either address listed). IPv4 addresses are only compared with
//!    IPv4 entries and IPv6 with IPv6, so with `Accept` and only IPv4 entries every IPv6
//!    flow is dropped;
//! 3. state set: only TCP entries whose state is known; Accept passes iff listed.
//!
//! Netmask lookup is not a list walk: prefixes are kept in one hash set per family keyed
//! by (length, masked address), plus a bitmap of the lengths in use, so a lookup costs one
//! probe per distinct length (at most 33 for IPv4, 129 for IPv6) whatever the list size.

use core::hash::BuildHasherDefault;
use std::net::IpAddr;

use hashbrown::HashSet;

use crate::config::{ExpectationSync, Filter, Policy, Prefix};
use crate::netlink::consts::IPPROTO_TCP;
use crate::netlink::ct::Conntrack;
use crate::netlink::protoinfo::ProtoInfo;

type Set<T> = HashSet<T, BuildHasherDefault<ahash::AHasher>>;

/// Prefixes of one family, searched by length.
#[derive(Debug, Clone, Default)]
struct PrefixSet {
    /// (prefix length, address masked to it).
    nets: Set<(u8, u128)>,
    /// Bit `n` set if some prefix has length `n` (0..=128).
    lens: [u64; 3],
}

/// Mask of the top `len` bits of a `width`-bit address kept in the low bits of a u128.
fn mask(width: u32, len: u8) -> u128 {
    let len = u32::from(len).min(width);
    if len == 0 {
        return 0;
    }
    // Top `len` bits of a u128, moved down into the low `width` bits.
    (u128::MAX << (128 - len)) >> (128 - width)
}

impl PrefixSet {
    fn insert(&mut self, width: u32, addr: u128, len: u8) {
        let len = len.min(width as u8);
        self.nets.insert((len, addr & mask(width, len)));
        self.lens[usize::from(len) / 64] |= 1 << (len % 64);
    }

    fn contains(&self, width: u32, addr: u128) -> bool {
        // Longest first: any hit decides, the order only matters for speed.
        (0..=width as u8).rev().any(|len| {
            self.lens[usize::from(len) / 64] & (1 << (len % 64)) != 0
                && self.nets.contains(&(len, addr & mask(width, len)))
        })
    }

    fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// The `Address` set, compiled.
#[derive(Debug, Clone)]
struct AddrFilter {
    policy: Policy,
    exact4: Set<u32>,
    exact6: Set<u128>,
    nets4: PrefixSet,
    nets6: PrefixSet,
}

fn key(a: IpAddr) -> (u32, u128) {
    match a {
        IpAddr::V4(v4) => (32, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (128, u128::from(v6)),
    }
}

impl AddrFilter {
    fn new(policy: Policy, items: &[Prefix]) -> Self {
        let mut f = Self {
            policy,
            exact4: Set::default(),
            exact6: Set::default(),
            nets4: PrefixSet::default(),
            nets6: PrefixSet::default(),
        };
        for p in items {
            match (p.addr, p.is_exact()) {
                (IpAddr::V4(a), true) => {
                    f.exact4.insert(u32::from(a));
                }
                (IpAddr::V6(a), true) => {
                    f.exact6.insert(u128::from(a));
                }
                (IpAddr::V4(a), false) => {
                    f.nets4.insert(32, u128::from(u32::from(a)), p.prefix_len)
                }
                (IpAddr::V6(a), false) => f.nets6.insert(128, u128::from(a), p.prefix_len),
            }
        }
        f
    }

    fn in_nets(&self, a: IpAddr) -> bool {
        let (w, v) = key(a);
        let set = if w == 32 { &self.nets4 } else { &self.nets6 };
        !set.is_empty() && set.contains(w, v)
    }

    fn in_exact(&self, a: IpAddr) -> bool {
        match a {
            IpAddr::V4(v4) => self.exact4.contains(&u32::from(v4)),
            IpAddr::V6(v6) => self.exact6.contains(&u128::from(v6)),
        }
    }

    fn passes(&self, a: IpAddr, b: IpAddr) -> bool {
        let accept = self.policy == Policy::Accept;
        if self.in_nets(a) || self.in_nets(b) {
            return accept;
        }
        let hit = self.in_exact(a) || self.in_exact(b);
        hit == accept
    }
}

/// A compiled `Filter`: cheap to evaluate per event, built once from the configuration.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// (policy, bitmap of the 256 protocol numbers).
    proto: Option<(Policy, [u64; 4])>,
    addr: Option<AddrFilter>,
    /// (policy, bitmap of TCP states 0..16).
    state: Option<(Policy, u16)>,
}

impl UserFilter {
    /// Compiles the configured sets (an unset set passes everything).
    pub fn new(f: &Filter) -> Self {
        let proto = f.protocol.as_ref().map(|s| {
            let mut bits = [0u64; 4];
            // Numbers above 255 (e.g. mptcp 262) can never be an L4 protocol byte.
            for p in s.items.iter().filter(|p| p.number < 256) {
                bits[usize::from(p.number / 64)] |= 1 << (p.number % 64);
            }
            (s.policy, bits)
        });
        let addr = f
            .address
            .as_ref()
            .map(|s| AddrFilter::new(s.policy, &s.items));
        let state = f.state.as_ref().map(|s| {
            let bits = s
                .items
                .iter()
                .fold(0u16, |b, &st| b | 1 << (st as u16 & 15));
            (s.policy, bits)
        });
        Self { proto, addr, state }
    }

    /// True if no set is configured (everything passes).
    pub fn is_empty(&self) -> bool {
        self.proto.is_none() && self.addr.is_none() && self.state.is_none()
    }

    /// True if `ct` is to be cached and replicated (config-grammar.md §4.1).
    pub fn accepts(&self, ct: &Conntrack) -> bool {
        // Step 0: the C daemon reads the reply source; without it the entry is dropped.
        let Some(reply) = &ct.reply else {
            return false;
        };
        let l4 = ct.orig.l4proto;
        if let Some((policy, bits)) = &self.proto {
            let listed = bits[usize::from(l4 / 64)] & (1 << (l4 % 64)) != 0;
            if listed != (*policy == Policy::Accept) {
                return false;
            }
        }
        if let Some(a) = &self.addr
            && !a.passes(ct.orig.src, reply.src)
        {
            return false;
        }
        if let (Some((policy, bits)), IPPROTO_TCP) = (&self.state, l4)
            && let Some(ProtoInfo::Tcp(t)) = &ct.protoinfo
            && let Some(s) = t.state
        {
            let listed = s < 16 && bits & (1 << s) != 0;
            if listed != (*policy == Policy::Accept) {
                return false;
            }
        }
        true
    }
}

/// The `ExpectationSync` choice, compiled (sync-modes.md §5.5).
#[derive(Debug, Clone, Default)]
pub struct ExpFilter {
    /// `None`: expectations are not replicated. `Some(empty)`: all are. Otherwise the
    /// lower-cased helper-name prefixes.
    helpers: Option<Vec<Vec<u8>>>,
}

impl ExpFilter {
    /// Compiles the option.
    pub fn new(e: &ExpectationSync) -> Self {
        let helpers = match e {
            ExpectationSync::On(list) => Some(
                list.iter()
                    .map(|s| s.as_bytes().to_ascii_lowercase())
                    .collect(),
            ),
            _ => None,
        };
        Self { helpers }
    }

    /// True if expectations are replicated at all.
    pub fn enabled(&self) -> bool {
        self.helpers.is_some()
    }

    /// True if an expectation with this helper name is replicated: a case-insensitive
    /// prefix match on a listed name; without a list every expectation passes; with a list
    /// one without helper does not. (The master-in-internal-cache check is the caller's.)
    pub fn accepts_helper(&self, helper: Option<&[u8]>) -> bool {
        match (&self.helpers, helper) {
            (None, _) => false,
            (Some(l), _) if l.is_empty() => true,
            (Some(_), None) => false,
            (Some(l), Some(h)) => l
                .iter()
                .any(|p| h.len() >= p.len() && h[..p.len()].eq_ignore_ascii_case(p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FilterSet, Protocol, TcpState};
    use crate::netlink::consts::{AF_INET, IPPROTO_UDP};
    use crate::netlink::protoinfo::TcpInfo;
    use crate::netlink::tuple::Tuple;

    fn ct(src: &str, dst: &str, reply_src: &str, proto: u8, state: Option<u8>) -> Conntrack {
        let (s, d, r): (IpAddr, IpAddr, IpAddr) = (
            src.parse().unwrap(),
            dst.parse().unwrap(),
            reply_src.parse().unwrap(),
        );
        let mut c = Conntrack::new(AF_INET, Tuple::new(s, d, proto));
        c.reply = Some(Tuple::new(r, s, proto));
        c.protoinfo = state.map(|st| {
            ProtoInfo::Tcp(TcpInfo {
                state: Some(st),
                ..TcpInfo::default()
            })
        });
        c
    }

    fn pfx(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.parse().unwrap();
        let full = if addr.is_ipv4() { 32 } else { 128 };
        Prefix {
            addr,
            prefix_len: l.parse().unwrap_or(full),
        }
    }

    fn addr_filter(policy: Policy, items: &[&str]) -> UserFilter {
        UserFilter::new(&Filter {
            address: Some(FilterSet {
                policy,
                items: items.iter().map(|s| pfx(s)).collect(),
            }),
            ..Filter::default()
        })
    }

    #[test]
    fn test_empty_filter_passes_but_needs_reply() {
        let f = UserFilter::new(&Filter::default());
        assert!(f.is_empty());
        let mut c = ct("10.0.0.1", "10.0.0.2", "10.0.0.2", IPPROTO_UDP, None);
        assert!(f.accepts(&c));
        c.reply = None;
        assert!(!f.accepts(&c));
    }

    #[test]
    fn test_protocol_accept_ignore() {
        let set = |policy| {
            UserFilter::new(&Filter {
                protocol: Some(FilterSet {
                    policy,
                    items: vec![Protocol {
                        name: "TCP".into(),
                        number: 6,
                    }],
                }),
                ..Filter::default()
            })
        };
        let tcp = ct("10.0.0.1", "10.0.0.2", "10.0.0.2", IPPROTO_TCP, Some(3));
        let udp = ct("10.0.0.1", "10.0.0.2", "10.0.0.2", IPPROTO_UDP, None);
        assert!(set(Policy::Accept).accepts(&tcp));
        // No protocol match under Accept: dropped.
        assert!(!set(Policy::Accept).accepts(&udp));
        assert!(!set(Policy::Ignore).accepts(&tcp));
        assert!(set(Policy::Ignore).accepts(&udp));
    }

    #[test]
    fn test_address_orig_src_and_reply_src() {
        let f = addr_filter(Policy::Ignore, &["192.168.0.1"]);
        // Original destination is not examined...
        assert!(f.accepts(&ct("10.0.0.1", "192.168.0.1", "10.9.9.9", 17, None)));
        // ...but the reply source (the real peer after DNAT) is.
        assert!(!f.accepts(&ct("10.0.0.1", "1.2.3.4", "192.168.0.1", 17, None)));
        assert!(!f.accepts(&ct("192.168.0.1", "1.2.3.4", "1.2.3.4", 17, None)));
        let a = addr_filter(Policy::Accept, &["10.0.0.0/8", "192.168.0.1"]);
        assert!(a.accepts(&ct("10.1.2.3", "1.1.1.1", "1.1.1.1", 17, None)));
        assert!(a.accepts(&ct("1.1.1.1", "2.2.2.2", "192.168.0.1", 17, None)));
        assert!(!a.accepts(&ct("1.1.1.1", "2.2.2.2", "2.2.2.2", 17, None)));
        // IPv6 flows are only compared with IPv6 entries: Accept with v4 only drops them.
        assert!(!a.accepts(&ct("2001:db8::1", "2001:db8::2", "2001:db8::2", 17, None)));
        let i = addr_filter(Policy::Ignore, &["10.0.0.0/8"]);
        assert!(i.accepts(&ct("2001:db8::1", "2001:db8::2", "2001:db8::2", 17, None)));
        assert!(!i.accepts(&ct("10.0.0.1", "2.2.2.2", "2.2.2.2", 17, None)));
        // Host bits in the configured prefix are masked; /0 matches everything.
        let h = addr_filter(Policy::Accept, &["10.1.2.3/16", "2001:db8::5/0"]);
        assert!(h.accepts(&ct("10.1.200.1", "2.2.2.2", "2.2.2.2", 17, None)));
        assert!(h.accepts(&ct("2001:db9::1", "::2", "::2", 17, None)));
    }

    #[test]
    fn test_state_only_tcp_with_state() {
        let f = UserFilter::new(&Filter {
            state: Some(FilterSet {
                policy: Policy::Accept,
                items: vec![TcpState::Established],
            }),
            ..Filter::default()
        });
        assert!(f.accepts(&ct("1.1.1.1", "2.2.2.2", "2.2.2.2", 6, Some(3))));
        assert!(!f.accepts(&ct("1.1.1.1", "2.2.2.2", "2.2.2.2", 6, Some(1))));
        // Unknown state and non-TCP entries pass.
        assert!(f.accepts(&ct("1.1.1.1", "2.2.2.2", "2.2.2.2", 6, None)));
        assert!(f.accepts(&ct("1.1.1.1", "2.2.2.2", "2.2.2.2", 17, None)));
    }

    #[test]
    fn test_10k_prefixes() {
        // 10 000 prefixes of mixed lengths, checked against a linear reference.
        let mut items = vec![];
        let mut x = 0x1234_5678u32;
        for i in 0..10_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let len = [8u8, 16, 20, 24, 28, 32][(i % 6) as usize];
            items.push(Prefix {
                addr: IpAddr::from(x.to_be_bytes()),
                prefix_len: len,
            });
        }
        let f = AddrFilter::new(Policy::Accept, &items);
        let mut y = 0x9abc_def1u32;
        for _ in 0..2_000 {
            y ^= y << 13;
            y ^= y >> 17;
            y ^= y << 5;
            let a = IpAddr::from(y.to_be_bytes());
            let want_net = items.iter().any(|p| !p.is_exact() && p.contains(a));
            let want_exact = items.iter().any(|p| p.is_exact() && p.addr == a);
            assert_eq!(f.in_nets(a), want_net, "{a}");
            assert_eq!(f.in_exact(a), want_exact);
        }
        // Probe a listed address of every length.
        for p in items.iter().take(60) {
            assert!(f.in_nets(p.addr) || f.in_exact(p.addr));
        }
        let mut v6 = PrefixSet::default();
        v6.insert(128, 0x2001_0db8u128 << 96, 32);
        assert!(v6.contains(128, (0x2001_0db8u128 << 96) | 77));
        assert!(!v6.contains(128, 0x2001_0db9u128 << 96));
    }

    #[test]
    fn test_mask() {
        assert_eq!(mask(32, 0), 0);
        assert_eq!(mask(32, 8), 0xff00_0000);
        assert_eq!(mask(32, 32), 0xffff_ffff);
        assert_eq!(mask(128, 128), u128::MAX);
        assert_eq!(mask(128, 1), 1u128 << 127);
    }

    #[test]
    fn test_exp_filter() {
        let off = ExpFilter::new(&ExpectationSync::Off);
        assert!(!off.enabled() && !off.accepts_helper(Some(b"ftp")));
        let all = ExpFilter::new(&ExpectationSync::On(vec![]));
        assert!(all.accepts_helper(None) && all.accepts_helper(Some(b"sip")));
        let l = ExpFilter::new(&ExpectationSync::On(vec!["SIP".into(), "ftp".into()]));
        assert!(l.accepts_helper(Some(b"sip-5060")));
        assert!(l.accepts_helper(Some(b"ftp")));
        assert!(!l.accepts_helper(Some(b"tftp")));
        assert!(!l.accepts_helper(None));
    }
}
