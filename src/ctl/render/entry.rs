//! `-i` / `-e` lines: libnetfilter_conntrack's default text format of a conntrack or an
//! expectation, as the C daemon prints its cache objects.
//!
//! The field rules are facts of libnetfilter_conntrack 1.0.x (`nfct_snprintf` /
//! `nfexp_snprintf` with `NFCT_O_DEFAULT`, no flags; reference control-and-cli.md §3.2):
//! protocol name in 8 columns and number; timeout if set; TCP/SCTP/DCCP state if set;
//! original addresses and ports (ICMP: `type= code= id=`, GRE: `srckey=0x… dstkey=0x…`);
//! `zone-orig=`; counters; `[UNREPLIED]` when the status is known and SEEN_REPLY is clear;
//! the reply tuple when known; `zone-reply=`; counters; `[HW_OFFLOAD]`/`[OFFLOAD]`/
//! `[ASSURED]`; `mark=`; `zone=`; `helper=`; `use=`; single spaces, no trailing one.
//! Quirks kept: a DCCP state is named from the SCTP table, unknown TCP states print `NONE`,
//! IPv6 addresses follow glibc's `inet_ntop` (`::1.2.3.4` for IPv4-compatible ones).
//!
//! Not rendered, because [`Conntrack`] does not carry them or the daemon never caches them:
//! `secmark=`, `secctx=`, connection labels (the C daemon passes no label map), and the
//! timestamp `delta-time=` (it depends on the clock; kernels have timestamps off by
//! default).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr};

use crate::netlink::consts::{
    IPPROTO_DCCP, IPPROTO_GRE, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP,
    IPPROTO_UDP, IPPROTO_UDPLITE, IPS_ASSURED, IPS_HW_OFFLOAD, IPS_OFFLOAD, IPS_SEEN_REPLY,
};
use crate::netlink::ct::{Conntrack, Counters};
use crate::netlink::exp::Expectation;
use crate::netlink::protoinfo::ProtoInfo;
use crate::netlink::tuple::{L4, Tuple};

/// libnetfilter_conntrack's protocol names; anything else is `unknown`.
pub fn proto_name(num: u8) -> &'static str {
    match num {
        IPPROTO_TCP => "tcp",
        IPPROTO_UDP => "udp",
        IPPROTO_UDPLITE => "udplite",
        IPPROTO_ICMP => "icmp",
        IPPROTO_ICMPV6 => "icmpv6",
        IPPROTO_SCTP => "sctp",
        IPPROTO_GRE => "gre",
        IPPROTO_DCCP => "dccp",
        _ => "unknown",
    }
}

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

/// The DCCP state count of the kernel headers (`DCCP_CONNTRACK_MAX`).
const DCCP_CONNTRACK_MAX: u8 = 10;

/// The TCP state name (`NONE` for values outside the table, as the library does).
pub fn tcp_state_name(state: u8) -> &'static str {
    TCP_STATES
        .get(usize::from(state))
        .copied()
        .unwrap_or("NONE")
}

fn state_name(info: &ProtoInfo) -> Option<&'static str> {
    match info {
        ProtoInfo::Tcp(t) => t.state.map(tcp_state_name),
        ProtoInfo::Sctp(s) => s
            .state
            .map(|st| SCTP_STATES.get(usize::from(st)).copied().unwrap_or("NONE")),
        // The library names DCCP states from the SCTP table (a long-standing quirk).
        ProtoInfo::Dccp(d) => d.state.map(|st| {
            if st < DCCP_CONNTRACK_MAX {
                SCTP_STATES.get(usize::from(st)).copied().unwrap_or("NONE")
            } else {
                "NONE"
            }
        }),
    }
}

/// An IPv6 address as glibc's `inet_ntop` writes it.
fn push_v6(out: &mut String, a: &Ipv6Addr) {
    let s = a.segments();
    // glibc embeds an IPv4 address when the longest zero run is exactly words 0..6
    // (IPv4-compatible) or words 0..5 followed by ffff (IPv4-mapped); Rust only does the
    // latter.
    if s[..6] == [0; 6] && s[6] != 0 {
        let [.., a, b, c, d] = a.octets();
        let _ = write!(out, "::{a}.{b}.{c}.{d}");
    } else {
        let _ = write!(out, "{a}");
    }
}

pub(super) fn push_addr(out: &mut String, a: &IpAddr) {
    match a {
        IpAddr::V4(v4) => {
            let _ = write!(out, "{v4}");
        }
        IpAddr::V6(v6) => push_v6(out, v6),
    }
}

fn push_addresses(out: &mut String, t: &Tuple, src: &str, dst: &str) {
    let _ = write!(out, "{src}=");
    push_addr(out, &t.src);
    let _ = write!(out, " {dst}=");
    push_addr(out, &t.dst);
    out.push(' ');
}

fn push_l4(out: &mut String, t: &Tuple) {
    match t.l4proto {
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_UDPLITE | IPPROTO_SCTP | IPPROTO_DCCP => {
            let (sport, dport) = match t.l4 {
                L4::Ports { sport, dport } => (sport, dport),
                _ => (0, 0),
            };
            let _ = write!(out, "sport={sport} dport={dport} ");
        }
        IPPROTO_GRE => {
            let (sport, dport) = match t.l4 {
                L4::Ports { sport, dport } => (sport, dport),
                _ => (0, 0),
            };
            let _ = write!(out, "srckey={sport:#x} dstkey={dport:#x} ");
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            let (ty, code, id) = match t.l4 {
                L4::Icmp { ty, code, id } | L4::Icmpv6 { ty, code, id } => (ty, code, id),
                _ => (0, 0, 0),
            };
            let _ = write!(out, "type={ty} code={code} id={id} ");
        }
        _ => {}
    }
}

fn push_counters(out: &mut String, c: &Option<Counters>) {
    if let Some(c) = c {
        let _ = write!(out, "packets={} bytes={} ", c.packets, c.bytes);
    }
}

/// The default text of a conntrack, without a trailing space or newline.
pub fn conntrack_line(ct: &Conntrack) -> String {
    conntrack_line_at(ct, None)
}

/// `delta-time=` of a conntrack with a start timestamp, as libnetfilter_conntrack computes
/// it: whole seconds from start to stop, or to `now` (Unix seconds) while it has no stop.
pub fn delta_time(ct: &Conntrack, now: u64) -> Option<u64> {
    const NS: u64 = 1_000_000_000;
    let ts = ct.timestamp?;
    let start = ts.start? / NS;
    let stop = match ts.stop {
        Some(s) if s != 0 => s / NS,
        _ => now,
    };
    // `time_t` arithmetic printed as unsigned in C: a clock behind the start wraps.
    Some(stop.wrapping_sub(start))
}

/// [`conntrack_line`] with `delta-time=` when `now` (Unix seconds) is given and the entry
/// carries a start timestamp: what the C daemon prints in stats mode, where the cached
/// objects and the logged destroy events keep the kernel's timestamps.
pub fn conntrack_line_at(ct: &Conntrack, now: Option<u64>) -> String {
    let mut out = String::with_capacity(200);
    let proto = ct.orig.l4proto;
    let _ = write!(out, "{:<8} {proto} ", proto_name(proto));
    if let Some(t) = ct.timeout {
        let _ = write!(out, "{t} ");
    }
    if let Some(name) = ct.protoinfo.as_ref().and_then(state_name) {
        let _ = write!(out, "{name} ");
    }
    push_addresses(&mut out, &ct.orig, "src", "dst");
    push_l4(&mut out, &ct.orig);
    if let Some(z) = ct.orig.zone {
        let _ = write!(out, "zone-orig={z} ");
    }
    push_counters(&mut out, &ct.counters_orig);
    if let Some(status) = ct.status
        && status & IPS_SEEN_REPLY == 0
    {
        out.push_str("[UNREPLIED] ");
    }
    if let Some(reply) = &ct.reply {
        push_addresses(&mut out, reply, "src", "dst");
        push_l4(&mut out, reply);
        if let Some(z) = reply.zone {
            let _ = write!(out, "zone-reply={z} ");
        }
    }
    push_counters(&mut out, &ct.counters_reply);
    if let Some(status) = ct.status {
        if status & IPS_HW_OFFLOAD != 0 {
            out.push_str("[HW_OFFLOAD] ");
        } else if status & IPS_OFFLOAD != 0 {
            out.push_str("[OFFLOAD] ");
        } else if status & IPS_ASSURED != 0 {
            out.push_str("[ASSURED] ");
        }
    }
    if let Some(m) = ct.mark {
        let _ = write!(out, "mark={m} ");
    }
    if let Some(z) = ct.zone {
        let _ = write!(out, "zone={z} ");
    }
    if let Some(d) = now.and_then(|n| delta_time(ct, n)) {
        let _ = write!(out, "delta-time={d} ");
    }
    if let Some(h) = &ct.helper {
        let _ = write!(out, "helper={} ", h.as_bytes().escape_ascii());
    }
    if let Some(u) = ct.use_count {
        let _ = write!(out, "use={u} ");
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// `NF_CT_EXPECT_PERMANENT`.
const EXPECT_PERMANENT: u32 = 0x1;
/// `NF_CT_EXPECT_INACTIVE`.
const EXPECT_INACTIVE: u32 = 0x2;
/// `NF_CT_EXPECT_USERSPACE`.
const EXPECT_USERSPACE: u32 = 0x4;

/// The default text of an expectation, without a trailing space or newline.
pub fn expect_line(exp: &Expectation) -> String {
    let mut out = String::with_capacity(256);
    if let Some(t) = exp.timeout {
        let _ = write!(out, "{t} ");
    }
    let _ = write!(out, "proto={} ", exp.tuple.l4proto);
    push_addresses(&mut out, &exp.tuple, "src", "dst");
    push_l4(&mut out, &exp.tuple);
    push_addresses(&mut out, &exp.mask, "mask-src", "mask-dst");
    push_l4(&mut out, &exp.mask);
    push_addresses(&mut out, &exp.master, "master-src", "master-dst");
    push_l4(&mut out, &exp.master);
    if let Some(z) = exp.zone {
        let _ = write!(out, "zone={z} ");
    }
    let flags = exp.flags.unwrap_or(0);
    let mut delim = "";
    for (bit, name) in [
        (EXPECT_PERMANENT, "PERMANENT"),
        (EXPECT_INACTIVE, "INACTIVE"),
        (EXPECT_USERSPACE, "USERSPACE"),
    ] {
        if flags & bit != 0 {
            let _ = write!(out, "{delim}{name}");
            delim = ",";
        }
    }
    if flags != 0 {
        out.push(' ');
    }
    if let Some(c) = exp.class {
        let _ = write!(out, "class={c} ");
    }
    if let Some(h) = &exp.helper {
        let _ = write!(out, "helper={}", h.as_bytes().escape_ascii());
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// One `-i`/`-e` line of the C daemon: the object's text, then ` [expires in Ns]` for caches
/// with a timer (the ALARM external cache), then ` [active since Ns]`, then a newline.
pub fn dump_line(text: &str, expires_in: Option<u64>, active_since: u64) -> String {
    let mut out = String::with_capacity(text.len() + 48);
    out.push_str(text);
    if let Some(e) = expires_in {
        let _ = write!(out, " [expires in {e}s]");
    }
    let _ = writeln!(out, " [active since {active_since}s]");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::consts::{AF_INET, AF_INET6};
    use crate::netlink::name::HelperName;
    use crate::netlink::protoinfo::{SctpInfo, TcpInfo};

    fn tuple(src: &str, dst: &str, proto: u8, l4: L4) -> Tuple {
        let mut t = Tuple::new(src.parse().unwrap(), dst.parse().unwrap(), proto);
        t.l4 = l4;
        t
    }

    fn ports(sport: u16, dport: u16) -> L4 {
        L4::Ports { sport, dport }
    }

    fn tcp_established() -> ProtoInfo {
        ProtoInfo::Tcp(TcpInfo {
            state: Some(3),
            ..Default::default()
        })
    }

    /// The three entries of `testdata/ftfw_i.txt` (Debian's conntrackd 1.4.7, `-i`).
    #[test]
    fn test_golden_internal_dump() {
        let golden = include_str!("testdata/ftfw_i.txt");
        let mut tcp = Conntrack::new(
            AF_INET,
            tuple("192.0.2.1", "192.0.2.2", IPPROTO_TCP, ports(1000, 80)),
        );
        tcp.reply = Some(tuple(
            "192.0.2.2",
            "192.0.2.1",
            IPPROTO_TCP,
            ports(80, 1000),
        ));
        tcp.status = Some(IPS_SEEN_REPLY | IPS_ASSURED | 0x8);
        tcp.protoinfo = Some(tcp_established());
        tcp.mark = Some(7);
        let icmp_l4 = |ty| L4::Icmp {
            ty,
            code: 0,
            id: 77,
        };
        let mut icmp = Conntrack::new(
            AF_INET,
            tuple("192.0.2.1", "192.0.2.2", IPPROTO_ICMP, icmp_l4(8)),
        );
        icmp.reply = Some(tuple("192.0.2.2", "192.0.2.1", IPPROTO_ICMP, icmp_l4(0)));
        icmp.status = Some(0x8);
        icmp.mark = Some(0);
        let mut udp = Conntrack::new(
            AF_INET6,
            tuple("2001:db8::1", "2001:db8::2", IPPROTO_UDP, ports(1000, 53)),
        );
        udp.reply = Some(tuple(
            "2001:db8::2",
            "2001:db8::1",
            IPPROTO_UDP,
            ports(53, 1000),
        ));
        udp.status = Some(0x8);
        udp.mark = Some(0);
        let text: String = [tcp, icmp, udp]
            .iter()
            .map(|ct| dump_line(&conntrack_line(ct), None, 4))
            .collect();
        assert_eq!(text, golden);
    }

    /// A stats-mode log line of Debian's 1.4.7 for a destroyed UDP flow (accounting and
    /// timestamps on): counters after each tuple, `delta-time=` from start to stop.
    #[test]
    fn test_stats_log_line_delta_time() {
        use crate::netlink::ct::{Counters, Timestamp};
        const NS: u64 = 1_000_000_000;
        let mut udp = Conntrack::new(
            AF_INET,
            tuple("10.231.1.1", "10.231.1.2", IPPROTO_UDP, ports(1000, 2000)),
        );
        udp.reply = Some(tuple(
            "10.231.1.2",
            "10.231.1.1",
            IPPROTO_UDP,
            ports(2000, 1000),
        ));
        udp.status = Some(0x8);
        udp.counters_orig = Some(Counters::default());
        udp.counters_reply = Some(Counters::default());
        // Each stamp is cut to whole seconds first, as `time_t` in C: 1000.9 s → 1003.1 s
        // prints 3, not 2.
        udp.timestamp = Some(Timestamp {
            start: Some(1_000 * NS + 900_000_000),
            stop: Some(1_003 * NS + 100_000_000),
        });
        assert_eq!(
            conntrack_line_at(&udp, Some(5_000)),
            "udp      17 src=10.231.1.1 dst=10.231.1.2 sport=1000 dport=2000 packets=0 bytes=0 \
             [UNREPLIED] src=10.231.1.2 dst=10.231.1.1 sport=2000 dport=1000 packets=0 bytes=0 \
             delta-time=3"
        );
        // No stop yet (a cached object): up to now. Before helper= and use=.
        udp.timestamp = Some(Timestamp {
            start: Some(1_000 * NS),
            stop: None,
        });
        udp.mark = Some(5);
        udp.use_count = Some(1);
        let line = conntrack_line_at(&udp, Some(1_042));
        assert!(line.ends_with(" mark=5 delta-time=42 use=1"), "{line}");
        // Without `now` (sync mode's caches) no delta-time, as before.
        assert!(!conntrack_line(&udp).contains("delta-time"));
        udp.timestamp = None;
        assert_eq!(conntrack_line_at(&udp, Some(1_042)), conntrack_line(&udp));
    }

    /// The reference's observed lines (control-and-cli.md §3.2).
    #[test]
    fn test_reference_samples() {
        let mut sctp = Conntrack::new(
            AF_INET,
            tuple(
                "192.0.2.13",
                "198.51.100.23",
                IPPROTO_SCTP,
                ports(2905, 2906),
            ),
        );
        sctp.reply = Some(tuple(
            "198.51.100.23",
            "192.0.2.13",
            IPPROTO_SCTP,
            ports(2906, 2905),
        ));
        sctp.status = Some(0);
        sctp.protoinfo = Some(ProtoInfo::Sctp(SctpInfo {
            state: Some(4),
            ..Default::default()
        }));
        sctp.mark = Some(0);
        assert_eq!(
            dump_line(&conntrack_line(&sctp), None, 55),
            "sctp     132 ESTABLISHED src=192.0.2.13 dst=198.51.100.23 sport=2905 dport=2906 \
             [UNREPLIED] src=198.51.100.23 dst=192.0.2.13 sport=2906 dport=2905 mark=0 \
             [active since 55s]\n"
        );

        // External cache: original tuple only.
        let mut ext = Conntrack::new(
            AF_INET,
            tuple(
                "192.0.2.15",
                "198.51.100.25",
                IPPROTO_TCP,
                ports(40002, 8080),
            ),
        );
        ext.status = Some(0);
        ext.protoinfo = Some(tcp_established());
        ext.mark = Some(0);
        ext.zone = Some(5);
        assert_eq!(
            conntrack_line(&ext),
            "tcp      6 ESTABLISHED src=192.0.2.15 dst=198.51.100.25 sport=40002 dport=8080 \
             [UNREPLIED] mark=0 zone=5"
        );

        let mut v6 = Conntrack::new(
            AF_INET6,
            tuple(
                "2001:db8::1",
                "2001:db8::3",
                IPPROTO_ICMPV6,
                L4::Icmpv6 {
                    ty: 128,
                    code: 0,
                    id: 4661,
                },
            ),
        );
        v6.status = Some(0);
        v6.mark = Some(0);
        assert_eq!(
            dump_line(&conntrack_line(&v6), None, 9),
            "icmpv6   58 src=2001:db8::1 dst=2001:db8::3 type=128 code=0 id=4661 [UNREPLIED] \
             mark=0 [active since 9s]\n"
        );
        assert_eq!(
            dump_line("x", Some(3), 9),
            "x [expires in 3s] [active since 9s]\n"
        );
    }

    #[test]
    fn test_expectation_sample() {
        // control-and-cli.md §3.2, `-i expect`.
        let exp = Expectation {
            class: Some(0),
            helper: Some(HelperName::try_from("ftp").unwrap()),
            flags: Some(0),
            ..Expectation::new(
                AF_INET,
                tuple("127.0.0.1", "127.0.0.1", IPPROTO_TCP, ports(45000, 21)),
                tuple("127.0.0.1", "127.0.0.1", IPPROTO_TCP, ports(0, 50001)),
                tuple(
                    "255.255.255.255",
                    "255.255.255.255",
                    IPPROTO_TCP,
                    ports(0, 65535),
                ),
            )
        };
        assert_eq!(
            dump_line(&expect_line(&exp), None, 3),
            "proto=6 src=127.0.0.1 dst=127.0.0.1 sport=0 dport=50001 mask-src=255.255.255.255 \
             mask-dst=255.255.255.255 sport=0 dport=65535 master-src=127.0.0.1 \
             master-dst=127.0.0.1 sport=45000 dport=21 class=0 helper=ftp [active since 3s]\n"
        );
        let exp = Expectation {
            flags: Some(EXPECT_PERMANENT | EXPECT_USERSPACE),
            helper: None,
            class: None,
            ..exp
        };
        assert!(expect_line(&exp).ends_with("dport=21 PERMANENT,USERSPACE"));
    }

    #[test]
    fn test_quirks() {
        assert_eq!(proto_name(99), "unknown");
        assert_eq!(tcp_state_name(9), "SYN_SENT2");
        assert_eq!(tcp_state_name(200), "NONE");
        let mut s = String::new();
        push_v6(&mut s, &"::1.2.3.4".parse().unwrap());
        s.push(' ');
        push_v6(&mut s, &"::ffff:1.2.3.4".parse().unwrap());
        s.push(' ');
        push_v6(&mut s, &"::1".parse().unwrap());
        assert_eq!(s, "::1.2.3.4 ::ffff:1.2.3.4 ::1");
        let mut gre = Conntrack::new(
            AF_INET,
            tuple("10.0.0.1", "10.0.0.2", IPPROTO_GRE, ports(0x10, 0xab)),
        );
        gre.use_count = Some(1);
        assert_eq!(
            conntrack_line(&gre),
            "gre      47 src=10.0.0.1 dst=10.0.0.2 srckey=0x10 dstkey=0xab use=1"
        );
    }
}
