//! The typed `General { Filter { … } }` section: which conntrack entries are replicated.
//!
//! The semantics (reference config-grammar.md §4) are applied by the sync code; this module
//! only holds the lists as the C parser builds them: lists of every `Filter` block
//! accumulate, the last `Accept`/`Ignore` of each kind and the last `From` win.

use std::fmt;
use std::net::IpAddr;

/// Where the filter runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum FilterFrom {
    /// `Filter { … }` or `Filter From Userspace { … }`: evaluated by the daemon per entry.
    #[default]
    Userspace,
    /// `Filter From Kernelspace { … }`: compiled to BPF on the event socket.
    Kernelspace,
}

/// `Accept` (positive logic) or `Ignore` (negative logic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Policy {
    /// Replicate only what is listed.
    Accept,
    /// Replicate everything but what is listed.
    Ignore,
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Accept => "accept",
            Self::Ignore => "ignore",
        })
    }
}

/// A layer-4 protocol of a `Protocol` filter, resolved like `getprotobyname()`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Protocol {
    /// The name as written (`TCP`, `sctp`, `IPv6-ICMP`…).
    pub name: String,
    /// The protocol number from /etc/protocols.
    pub number: u16,
}

/// An address of an `Address` filter: `addr/prefix_len`.
///
/// A missing prefix is stored as the full length (32 or 128). The C daemon puts full-length
/// entries in an exact-address set and shorter ones in a netmask list; see
/// [`Prefix::is_exact`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// The address as written (host bits are kept: the C code masks both sides on match).
    pub addr: IpAddr,
    /// Prefix length, 0..=32 for IPv4 and 0..=128 for IPv6.
    pub prefix_len: u8,
}

impl Prefix {
    /// True for a single address (`/32`, `/128` or no prefix).
    pub fn is_exact(&self) -> bool {
        match self.addr {
            IpAddr::V4(_) => self.prefix_len >= 32,
            IpAddr::V6(_) => self.prefix_len >= 128,
        }
    }

    /// True if `ip` falls inside this prefix (different families never match).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix_len.min(32)));
                let mask = mask.unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix_len.min(128)));
                let mask = mask.unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// A TCP conntrack state of a `State` filter (values are the kernel's
/// `TCP_CONNTRACK_*` numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TcpState {
    /// `SYN_SENT`.
    SynSent = 1,
    /// `SYN_RECV`.
    SynRecv = 2,
    /// `ESTABLISHED`.
    Established = 3,
    /// `FIN_WAIT`.
    FinWait = 4,
    /// `CLOSE_WAIT`.
    CloseWait = 5,
    /// `LAST_ACK`.
    LastAck = 6,
    /// `TIME_WAIT`.
    TimeWait = 7,
    /// `CLOSE` (alias `CLOSED`).
    Close = 8,
    /// `LISTEN` (the kernel's `TCP_CONNTRACK_LISTEN`, i.e. SYN_SENT2).
    Listen = 9,
}

impl TcpState {
    /// The keyword spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::SynSent => "SYN_SENT",
            Self::SynRecv => "SYN_RECV",
            Self::Established => "ESTABLISHED",
            Self::FinWait => "FIN_WAIT",
            Self::CloseWait => "CLOSE_WAIT",
            Self::LastAck => "LAST_ACK",
            Self::TimeWait => "TIME_WAIT",
            Self::Close => "CLOSE",
            Self::Listen => "LISTEN",
        }
    }
}

/// A list with its logic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterSet<T> {
    /// Accept or Ignore (the last block of this kind decides).
    pub policy: Policy,
    /// The accumulated items (duplicates removed, first position kept).
    pub items: Vec<T>,
}

/// The whole `Filter` configuration. A `None` set means "not configured: everything passes".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    /// User space or kernel space (the last `Filter` block decides).
    pub from: FilterFrom,
    /// `Protocol Accept|Ignore { … }`.
    pub protocol: Option<FilterSet<Protocol>>,
    /// `Address Accept|Ignore { … }`.
    pub address: Option<FilterSet<Prefix>>,
    /// `State Accept|Ignore { … for TCP }`.
    pub state: Option<FilterSet<TcpState>>,
}

impl Filter {
    /// True if no set is configured.
    pub fn is_empty(&self) -> bool {
        self.protocol.is_none() && self.address.is_none() && self.state.is_none()
    }
}

/// Names and aliases of Debian netbase's /etc/protocols (IANA numbers), which the C daemon
/// resolves with `getprotobyname()` (an exact, case-sensitive match on name or alias).
/// Embedded so that parsing does not depend on the host's files.
#[rustfmt::skip]
const PROTOCOLS: &[(&str, u16)] = &[
    ("ip", 0), ("IP", 0), ("hopopt", 0), ("HOPOPT", 0), ("icmp", 1), ("ICMP", 1),
    ("igmp", 2), ("IGMP", 2), ("ggp", 3), ("GGP", 3), ("ipencap", 4), ("IP-ENCAP", 4),
    ("st", 5), ("ST", 5), ("tcp", 6), ("TCP", 6), ("egp", 8), ("EGP", 8), ("igp", 9),
    ("IGP", 9), ("pup", 12), ("PUP", 12), ("udp", 17), ("UDP", 17), ("hmp", 20),
    ("HMP", 20), ("xns-idp", 22), ("XNS-IDP", 22), ("rdp", 27), ("RDP", 27),
    ("iso-tp4", 29), ("ISO-TP4", 29), ("dccp", 33), ("DCCP", 33), ("xtp", 36),
    ("XTP", 36), ("ddp", 37), ("DDP", 37), ("idpr-cmtp", 38), ("IDPR-CMTP", 38),
    ("ipv6", 41), ("IPv6", 41), ("ipv6-route", 43), ("IPv6-Route", 43), ("ipv6-frag", 44),
    ("IPv6-Frag", 44), ("idrp", 45), ("IDRP", 45), ("rsvp", 46), ("RSVP", 46),
    ("gre", 47), ("GRE", 47), ("esp", 50), ("IPSEC-ESP", 50), ("ah", 51), ("IPSEC-AH", 51),
    ("skip", 57), ("SKIP", 57), ("ipv6-icmp", 58), ("IPv6-ICMP", 58), ("ipv6-nonxt", 59),
    ("IPv6-NoNxt", 59), ("ipv6-opts", 60), ("IPv6-Opts", 60), ("rspf", 73), ("RSPF", 73),
    ("CPHB", 73), ("vmtp", 81), ("VMTP", 81), ("eigrp", 88), ("EIGRP", 88), ("ospf", 89),
    ("OSPFIGP", 89), ("ax.25", 93), ("AX.25", 93), ("ipip", 94), ("IPIP", 94),
    ("etherip", 97), ("ETHERIP", 97), ("encap", 98), ("ENCAP", 98), ("pim", 103),
    ("PIM", 103), ("ipcomp", 108), ("IPCOMP", 108), ("vrrp", 112), ("VRRP", 112),
    ("l2tp", 115), ("L2TP", 115), ("isis", 124), ("ISIS", 124), ("sctp", 132),
    ("SCTP", 132), ("fc", 133), ("FC", 133), ("mobility-header", 135),
    ("Mobility-Header", 135), ("udplite", 136), ("UDPLite", 136), ("mpls-in-ip", 137),
    ("MPLS-in-IP", 137), ("manet", 138), ("hip", 139), ("HIP", 139), ("shim6", 140),
    ("Shim6", 140), ("wesp", 141), ("WESP", 141), ("rohc", 142), ("ROHC", 142),
    ("ethernet", 143), ("Ethernet", 143), ("mptcp", 262), ("MPTCP", 262),
];

/// `getprotobyname()` over the embedded table.
pub(crate) fn protocol_number(name: &str) -> Option<u16> {
    PROTOCOLS.iter().find(|(n, _)| *n == name).map(|&(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_protocol_lookup() {
        assert_eq!(protocol_number("TCP"), Some(6));
        assert_eq!(protocol_number("sctp"), Some(132));
        assert_eq!(protocol_number("IPv6-ICMP"), Some(58));
        assert_eq!(protocol_number("Sctp"), None);
    }

    #[test]
    fn test_prefix_contains() {
        let p = Prefix {
            addr: IpAddr::from([10, 1, 2, 3]),
            prefix_len: 24,
        };
        assert!(p.contains(IpAddr::from([10, 1, 2, 200])));
        assert!(!p.contains(IpAddr::from([10, 1, 3, 1])));
        assert!(!p.is_exact());
        let all = Prefix {
            addr: IpAddr::from([0u16; 8]),
            prefix_len: 0,
        };
        assert!(all.contains(IpAddr::from([1u16, 2, 3, 4, 5, 6, 7, 8])));
        assert!(!all.contains(IpAddr::from([1, 2, 3, 4])));
    }
}
