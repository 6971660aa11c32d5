//! Lowering of `General { Filter { … } }`, and the C address parsers it needs.
//!
//! Lists accumulate over every `Filter` block; each `Protocol`/`Address`/`State` block sets
//! its set's logic when it closes, so the last one wins, as in the C parser.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::filter::{self, Filter, FilterFrom, FilterSet, Policy, Prefix, Protocol, TcpState};
use super::lex::{Kw, atoi};
use super::lower::{Diag, first, uint};
use super::parse::{Stmt, Val};

pub(crate) fn filter_block(f: &mut Filter, s: &Stmt, d: &mut Diag) {
    // Each Filter block sets the mode when it closes: the last one wins.
    f.from = match s.args.get(1).map(|a| &a.val) {
        Some(Val::Kw(Kw::Kernelspace)) => FilterFrom::Kernelspace,
        _ => FilterFrom::Userspace,
    };
    for item in s.stmts() {
        let policy = match first(&item.args).map(|a| &a.val) {
            Some(Val::Kw(Kw::Accept)) => Policy::Accept,
            _ => Policy::Ignore,
        };
        match item.kw {
            Kw::Protocol => {
                let set = f.protocol.get_or_insert(FilterSet {
                    policy,
                    items: Vec::new(),
                });
                set.policy = policy;
                for p in item.items() {
                    let name = match &p.val {
                        Val::Word(w) => w.as_str(),
                        Val::Kw(k) => k.text(),
                        _ => continue,
                    };
                    match filter::protocol_number(name) {
                        Some(number) => {
                            if !set.items.iter().any(|x| x.number == number) {
                                set.items.push(Protocol {
                                    name: name.to_owned(),
                                    number,
                                });
                            }
                        }
                        None => d.warn(
                            p.span,
                            format!("protocol `{name}` is not in /etc/protocols; ignored"),
                        ),
                    }
                }
            }
            Kw::Address => {
                let set = f.address.get_or_insert(FilterSet {
                    policy,
                    items: Vec::new(),
                });
                set.policy = policy;
                for a in item.stmts() {
                    if let Some(p) = filter_prefix(a, d) {
                        if set.items.contains(&p) {
                            d.warn(a.span, format!("{p} is repeated in the address filter"));
                        } else {
                            set.items.push(p);
                        }
                    }
                }
            }
            Kw::State => {
                let set = f.state.get_or_insert(FilterSet {
                    policy,
                    items: Vec::new(),
                });
                set.policy = policy;
                for st in item.items() {
                    if let Val::Kw(k) = st.val
                        && let Some(t) = tcp_state(k)
                        && !set.items.contains(&t)
                    {
                        set.items.push(t);
                    }
                }
            }
            _ => {}
        }
    }
}

fn tcp_state(k: Kw) -> Option<TcpState> {
    Some(match k {
        Kw::SynSent => TcpState::SynSent,
        Kw::SynRecv => TcpState::SynRecv,
        Kw::Established => TcpState::Established,
        Kw::FinWait => TcpState::FinWait,
        Kw::CloseWait => TcpState::CloseWait,
        Kw::LastAck => TcpState::LastAck,
        Kw::TimeWait => TcpState::TimeWait,
        Kw::Close | Kw::Closed => TcpState::Close,
        Kw::Listen => TcpState::Listen,
        _ => return None,
    })
}

/// `IPv4_address a.b.c.d[/n]` / `IPv6_address x::y[/n]` inside `Address Accept|Ignore`.
fn filter_prefix(s: &Stmt, d: &mut Diag) -> Option<Prefix> {
    let a = first(&s.args)?;
    let Val::Ip(text) = &a.val else { return None };
    let (addr, cidr) = match text.split_once('/') {
        Some((addr, c)) => (addr, Some(uint(atoi(c)))),
        None => (text.as_str(), None),
    };
    let v4 = s.kw == Kw::Ipv4Address;
    let max = if v4 { 32 } else { 128 };
    if let Some(c) = cidr.filter(|c| *c > max) {
        d.warn(
            a.span,
            format!("{addr}/{c} is not a valid network; ignored"),
        );
        return None;
    }
    let ip = if v4 {
        inet_aton(addr).map(IpAddr::V4)
    } else {
        inet_pton6(addr).map(IpAddr::V6)
    };
    let Some(ip) = ip else {
        let fam = if v4 { "IPv4" } else { "IPv6" };
        d.warn(
            a.span,
            format!("`{addr}` is not a valid {fam} address; ignored"),
        );
        return None;
    };
    let prefix_len = cidr.map_or(max, |c| c.min(max));
    Some(Prefix {
        addr: ip,
        prefix_len: u8::try_from(prefix_len).unwrap_or(u8::MAX),
    })
}

/// glibc `inet_aton` for the dotted forms the lexer produces: 1–4 parts, each decimal, or
/// octal with a leading 0 (`010` is 8). The last part fills the remaining bytes.
pub(crate) fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let mut parts = Vec::new();
    for p in s.split('.') {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let v = if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()?
        } else {
            p.parse::<u64>().ok()?
        };
        parts.push(v);
    }
    let (last, head) = parts.split_last()?;
    if head.len() > 3 || head.iter().any(|&v| v > 0xff) {
        return None;
    }
    let room = 8 * (4 - head.len() as u32);
    if room < 64 && *last >= 1u64 << room {
        return None;
    }
    let mut v: u64 = *last;
    for (i, h) in head.iter().enumerate() {
        v |= h << (24 - 8 * i as u32);
    }
    u32::try_from(v).ok().map(Ipv4Addr::from)
}

/// `inet_pton(AF_INET6, …)`: the lexer never produces the embedded-IPv4 form, so the
/// standard library parser gives the same verdicts.
pub(crate) fn inet_pton6(s: &str) -> Option<Ipv6Addr> {
    if s.contains('.') {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    #[test]
    fn test_inet_aton() {
        assert_eq!(inet_aton("10.1.2.3"), Some(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(inet_aton("010.1.1.1"), Some(Ipv4Addr::new(8, 1, 1, 1)));
        assert_eq!(inet_aton("08.1.1.1"), None);
        assert_eq!(inet_aton("256.1.1.1"), None);
        assert_eq!(inet_aton("1.2.3.4/24"), None);
        assert_eq!(inet_aton("dead"), None);
        assert_eq!(inet_aton("1.2.3.4.5"), None);
    }

    #[test]
    fn test_inet_pton6() {
        assert!(inet_pton6("fe80::1").is_some());
        assert!(inet_pton6("::").is_some());
        assert!(inet_pton6("1.2.3.4").is_none());
        assert!(inet_pton6("abcdef::").is_none());
        assert!(inet_pton6("1::2::3").is_none());
    }

    #[test]
    fn test_filter_lists() {
        let c = parse_str(
            "t",
            "General {\n Filter From Kernelspace {\n  Protocol Accept { TCP sctp foo TCP }\n\
             Address Ignore { IPv4_address 10.0.0.0/8 IPv4_address 1.2.3.4 \
             IPv4_address 1.2.3.4/33 IPv6_address fd00::/64 IPv6_address 999.1.1.1 }\n\
             State Accept { ESTABLISHED CLOSED for TCP }\n }\n\
             Filter { Protocol Ignore { UDP } }\n}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let f = &c.general.filter;
        assert_eq!(
            f.from,
            FilterFrom::Userspace,
            "the last Filter block decides"
        );
        let p = f.protocol.as_ref().map(|p| (p.policy, p.items.len()));
        assert_eq!(
            p,
            Some((Policy::Ignore, 3)),
            "lists accumulate, last logic wins"
        );
        let a = f
            .address
            .as_ref()
            .map(|a| a.items.clone())
            .unwrap_or_default();
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].prefix_len, 8);
        assert!(a[1].is_exact());
        assert_eq!(
            a[2].addr,
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0))
        );
        let s = f
            .state
            .as_ref()
            .map(|s| s.items.clone())
            .unwrap_or_default();
        assert_eq!(s, vec![TcpState::Established, TcpState::Close]);
        // foo (unknown protocol), /33 and the bad IPv6 are warnings.
        assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
    }
}
