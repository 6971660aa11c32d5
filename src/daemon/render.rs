//! Plain `-i` / `-e` lines (TEMPORARY: replaced by `ctl::render` when the `ctl` branch lands).
//!
//! libnetfilter_conntrack's default text layout (control-and-cli.md §3.2), close enough for
//! humans and for tests that count or grep lines; the byte-exact renderer is `ctl`'s job.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::convert;
use crate::netlink::consts::{IPS_ASSURED, IPS_SEEN_REPLY};
use crate::netlink::ct::Conntrack;
use crate::netlink::protoinfo::ProtoInfo;
use crate::netlink::tuple::{L4, Tuple};
use crate::wire::ct;

const TCP_STATES: [&str; 10] = [
    "NONE",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
    "SYN_SENT2",
];
const SCTP_STATES: [&str; 10] = [
    "NONE",
    "CLOSED",
    "COOKIE_WAIT",
    "COOKIE_ECHOED",
    "ESTABLISHED",
    "SHUTDOWN_SENT",
    "SHUTDOWN_RECD",
    "SHUTDOWN_ACK_SENT",
    "HEARTBEAT_SENT",
    "HEARTBEAT_ACKED",
];

fn proto_name(p: u8) -> &'static str {
    match p {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        33 => "dccp",
        47 => "gre",
        58 => "icmpv6",
        132 => "sctp",
        136 => "udplite",
        _ => "unknown",
    }
}

fn tuple(out: &mut String, t: &Tuple) {
    let a = |a: IpAddr| a.to_string();
    let _ = write!(out, "src={} dst={} ", a(t.src), a(t.dst));
    match t.l4 {
        L4::Ports { sport, dport } => {
            let _ = write!(out, "sport={sport} dport={dport} ");
        }
        L4::Icmp { ty, code, id } | L4::Icmpv6 { ty, code, id } => {
            let _ = write!(out, "type={ty} code={code} id={id} ");
        }
        L4::None => {}
    }
}

fn line(out: &mut String, ct: &Conntrack, with_reply: bool, since: u64) {
    let p = ct.orig.l4proto;
    let _ = write!(out, "{:<8} {p} ", proto_name(p));
    match ct.protoinfo {
        Some(ProtoInfo::Tcp(t)) => {
            if let Some(s) = t.state {
                out.push_str(TCP_STATES.get(usize::from(s)).unwrap_or(&"UNKNOWN"));
                out.push(' ');
            }
        }
        Some(ProtoInfo::Sctp(t)) => {
            if let Some(s) = t.state {
                out.push_str(SCTP_STATES.get(usize::from(s)).unwrap_or(&"UNKNOWN"));
                out.push(' ');
            }
        }
        _ => {}
    }
    tuple(out, &ct.orig);
    let status = ct.status;
    if status.is_some_and(|s| s & IPS_SEEN_REPLY == 0) {
        out.push_str("[UNREPLIED] ");
    }
    if with_reply && let Some(r) = &ct.reply {
        tuple(out, r);
    }
    if status.is_some_and(|s| s & IPS_ASSURED != 0) {
        out.push_str("[ASSURED] ");
    }
    if let Some(m) = ct.mark {
        let _ = write!(out, "mark={m} ");
    }
    if let Some(z) = ct.zone.filter(|&z| z != 0) {
        let _ = write!(out, "zone={z} ");
    }
    if let Some(h) = ct.helper.as_ref().and_then(|h| h.as_str()) {
        let _ = write!(out, "helper={h} ");
    }
    let _ = writeln!(out, "[active since {since}s]");
}

/// One `-i` line for an internal-cache object.
pub fn internal_line(out: &mut String, ct: &Conntrack, since: u64) {
    line(out, ct, true, since);
}

/// One `-e` line for an external-cache object (only the original tuple is known).
pub fn external_line(out: &mut String, repr: &ct::Repr, since: u64) {
    if let Some(mut ct) = convert::kernel_from_wire(repr, 0, true) {
        ct.mark = repr.mark;
        line(out, &ct, false, since);
    }
}
