//! Lowering of `Helper { … }`: user-space helper instances and their policies.
//!
//! The C parser keeps queue and policy lines on one stack that the next closing `Type`
//! block empties, so they may even stand directly in `Helper`; we reproduce that order.

use super::error::Span;
use super::lex::Kw;
use super::lower::{Diag, boolean, first, num, uint};
use super::parse::{Arg, Stmt, Val};
use super::{HelperFamily, HelperPolicy, HelperProto, HelperType, Helpers};

fn proto_name(p: HelperProto) -> &'static str {
    match p {
        HelperProto::Tcp => "tcp",
        HelperProto::Udp => "udp",
    }
}

/// `CTD_HELPER_NAME_LEN`: longest helper policy name.
const HELPER_NAME_LEN: usize = 16;

/// The user-space helpers shipped with 1.4.7 (`ct_helper_<name>.so`) and their layer 4;
/// each has one expectation policy named like the helper.
const HELPERS: &[(&str, HelperProto)] = &[
    ("amanda", HelperProto::Udp),
    ("dhcpv6", HelperProto::Udp),
    ("ftp", HelperProto::Tcp),
    ("mdns", HelperProto::Udp),
    ("rpc", HelperProto::Tcp),
    ("rpc", HelperProto::Udp),
    ("sane", HelperProto::Tcp),
    ("slp", HelperProto::Udp),
    ("ssdp", HelperProto::Udp),
    ("ssdp", HelperProto::Tcp),
    ("tftp", HelperProto::Udp),
    ("tns", HelperProto::Tcp),
];

/// A queue or policy line waiting for the next `Type` block to close. The C parser keeps
/// them on one stack shared by all `Type` blocks (and accepts them directly in `Helper`
/// too); a closing `Type` takes everything on it.
#[derive(Debug)]
pub(crate) enum Pending {
    QueueNum(u32),
    QueueLen(u32),
    Policy(HelperPolicy, Span),
}

pub(crate) fn helper_items(
    h: &mut Helpers,
    stmts: &[Stmt],
    pending: &mut Vec<Pending>,
    d: &mut Diag,
) {
    for s in stmts {
        match s.kw {
            Kw::Setup => h.setup = boolean(&s.args),
            Kw::QueueNum => pending.push(Pending::QueueNum(uint(num(&s.args)))),
            Kw::QueueLen => pending.push(Pending::QueueLen(uint(num(&s.args)))),
            Kw::Policy => {
                let name = match first(&s.args).map(|a| &a.val) {
                    Some(Val::Word(w)) => w.clone(),
                    _ => continue,
                };
                let mut pol = HelperPolicy {
                    name: name.clone(),
                    expect_max: 0,
                    expect_timeout: 0,
                };
                let mut any = false;
                for i in s.stmts() {
                    any = true;
                    match i.kw {
                        Kw::ExpectMax => pol.expect_max = uint(num(&i.args)),
                        Kw::ExpectTimeout => pol.expect_timeout = uint(num(&i.args)),
                        _ => {}
                    }
                }
                if !any {
                    d.error(s.span, format!("helper `Policy {name}` is empty"));
                } else if name.len() > HELPER_NAME_LEN {
                    d.error(
                        s.span,
                        format!("helper policy name `{name}` is longer than {HELPER_NAME_LEN} characters"),
                    );
                } else {
                    pending.push(Pending::Policy(pol, s.span));
                }
            }
            Kw::Type => helper_type(h, s, pending, d),
            _ => {}
        }
    }
}

fn helper_type(h: &mut Helpers, s: &Stmt, pending: &mut Vec<Pending>, d: &mut Diag) {
    helper_items(h, s.stmts(), pending, d);
    let word = |i: usize| match s.args.get(i) {
        Some(Arg {
            val: Val::Word(w),
            span,
        }) => (w.as_str(), *span),
        _ => ("", s.span),
    };
    let ((name, name_span), (l3, l3_span), (l4, l4_span)) = (word(0), word(1), word(2));
    let family = match l3 {
        "inet" => Some(HelperFamily::Inet),
        "inet6" => Some(HelperFamily::Inet6),
        _ => {
            d.error(
                l3_span,
                format!("unknown layer 3 protocol `{l3}`; expected `inet` or `inet6`"),
            );
            None
        }
    };
    let proto = match l4 {
        "tcp" => Some(HelperProto::Tcp),
        "udp" => Some(HelperProto::Udp),
        _ => {
            d.error(
                l4_span,
                format!("unknown layer 4 protocol `{l4}`; expected `tcp` or `udp`"),
            );
            None
        }
    };
    let items = std::mem::take(pending);
    let (Some(family), Some(proto)) = (family, proto) else {
        return;
    };
    if !HELPERS.iter().any(|&(n, p)| n == name && p == proto) {
        let known: Vec<String> = HELPERS
            .iter()
            .map(|(n, p)| format!("{n}/{}", proto_name(*p)))
            .collect();
        d.error(
            name_span,
            format!(
                "unknown helper `{name}` for {}; 1.4.7 ships: {}",
                proto_name(proto),
                known.join(", ")
            ),
        );
        return;
    }
    let mut t = HelperType {
        name: name.to_owned(),
        family,
        proto,
        queue_num: 0,
        queue_len: 0,
        policies: Vec::new(),
        span: s.span,
    };
    // Popped last-in first-out with each value overwriting the previous one: the line
    // written first wins.
    for item in items.into_iter().rev() {
        match item {
            Pending::QueueNum(n) => t.queue_num = n,
            Pending::QueueLen(n) => t.queue_len = n,
            Pending::Policy(p, span) => {
                if p.name != name {
                    d.error(
                        span,
                        format!(
                            "unknown policy `{}` for helper `{name}`; its only policy is `{name}`",
                            p.name
                        ),
                    );
                } else {
                    t.policies.retain(|x| x.name != p.name);
                    t.policies.push(p);
                }
            }
        }
    }
    h.types.push(t);
}

#[cfg(test)]
mod tests {
    use crate::config::{HelperFamily, HelperProto, parse_str};

    #[test]
    fn test_helper_typed() {
        let c = parse_str(
            "t",
            "Helper { Setup on Type ftp inet6 tcp { QueueNum 5 QueueLen 10 \
             Policy ftp { ExpectMax 2 ExpectTimeout 300 } } }",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let h = c.helpers.unwrap_or_default();
        assert!(h.setup);
        let t = &h.types[0];
        assert_eq!((t.family, t.proto), (HelperFamily::Inet6, HelperProto::Tcp));
        assert_eq!((t.queue_num, t.queue_len), (5, 10));
        assert_eq!(t.policies[0].expect_max, 2);
        assert_eq!(t.policies[0].expect_timeout, 300);
    }

    #[test]
    fn test_helper_stack_order() {
        // Stray lines in Helper go to the next Type; the first QueueNum written wins.
        let c = parse_str(
            "t",
            "Helper { QueueNum 1 Type tftp inet udp { QueueNum 2 } }",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.helpers.unwrap_or_default().types[0].queue_num, 1);
    }

    #[test]
    fn test_helper_errors() {
        let e = |s: &str| {
            parse_str("t", s)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(e("Helper { Type ftp inet udp { } }").contains("unknown helper `ftp`"));
        assert!(e("Helper { Type ftp ip tcp { } }").contains("layer 3"));
        assert!(e("Helper { Type ftp inet sctp { } }").contains("layer 4"));
        assert!(
            e("Helper { Type ftp inet tcp { Policy x { ExpectMax 1 } } }")
                .contains("unknown policy")
        );
        assert!(e("Helper { Type ftp inet tcp { Policy ftp { } } }").contains("is empty"));
    }
}
