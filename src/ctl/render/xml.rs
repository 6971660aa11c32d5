//! `-i -x` / `-e -x` lines: libnetfilter_conntrack's XML rendering of a conntrack.
//!
//! One `<flow>…</flow>` per object, no document element, no cache suffixes (reference
//! control-and-cli.md §3.3). Rules, as observed on Debian's 1.4.7 with libnetfilter_conntrack
//! 1.0.x: per direction a `<meta direction="original|reply">` with `<layer3>` (`<src>`,
//! `<dst>`) and `<layer4>` (ports for TCP/UDP/UDP-Lite/SCTP/DCCP, `<srckey>`/`<dstkey>` for
//! GRE, nothing for ICMP); an unknown reply tuple (external cache) prints as protocol 0
//! `unknown` with empty addresses. Then an `independent` meta with `<state>`, `<timeout>`,
//! `<mark>`, `<zone>`, `<use>`, `<id>`, `<assured/>`, `<unreplied/>` as present.
//! Expectations ([`expect_xml`]): one `<flow>` with `<layer3>` and `<layer4>` each holding
//! `<expected>`, `<mask>` and `<master>`, then `<meta>` with `<helper-name>`, `<timeout>`,
//! `<class>`, `<zone>` and the `<permanent/>`/`<inactive/>`/`<userspace/>` flags.
//! Quirk kept: SCTP and DCCP states are named from the TCP table (SCTP ESTABLISHED = 4
//! prints `FIN_WAIT`). Timestamps, secmark, secctx and labels are not rendered (not carried
//! by [`Conntrack`], or never cached by the daemon).

use std::fmt::Write as _;
use std::net::IpAddr;

use super::entry::{proto_name, push_addr, tcp_state_name};
use crate::netlink::consts::{
    IPPROTO_DCCP, IPPROTO_GRE, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE,
    IPS_ASSURED, IPS_SEEN_REPLY,
};
use crate::netlink::ct::{Conntrack, Counters};
use crate::netlink::exp::Expectation;
use crate::netlink::protoinfo::ProtoInfo;
use crate::netlink::tuple::{L4, Tuple};

fn push_tuple(out: &mut String, dir: &str, t: Option<&Tuple>, counters: Option<&Counters>) {
    let _ = write!(out, "<meta direction=\"{dir}\">");
    let Some(t) = t else {
        // An object without this tuple: the library prints its zeroed fields.
        out.push_str(
            "<layer3 protonum=\"0\" protoname=\"unknown\"><src></src><dst></dst></layer3>\
             <layer4 protonum=\"0\" protoname=\"unknown\"></layer4></meta>",
        );
        return;
    };
    let (l3num, l3name) = match t.src {
        IpAddr::V4(_) => (2, "ipv4"),
        IpAddr::V6(_) => (10, "ipv6"),
    };
    let _ = write!(
        out,
        "<layer3 protonum=\"{l3num}\" protoname=\"{l3name}\"><src>"
    );
    push_addr(out, &t.src);
    out.push_str("</src><dst>");
    push_addr(out, &t.dst);
    let _ = write!(
        out,
        "</dst></layer3><layer4 protonum=\"{}\" protoname=\"{}\">",
        t.l4proto,
        proto_name(t.l4proto)
    );
    let (sport, dport) = match t.l4 {
        L4::Ports { sport, dport } => (sport, dport),
        _ => (0, 0),
    };
    match t.l4proto {
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_UDPLITE | IPPROTO_SCTP | IPPROTO_DCCP => {
            let _ = write!(out, "<sport>{sport}</sport><dport>{dport}</dport>");
        }
        IPPROTO_GRE => {
            let _ = write!(
                out,
                "<srckey>{sport:#x}</srckey><dstkey>{dport:#x}</dstkey>"
            );
        }
        _ => {}
    }
    out.push_str("</layer4>");
    if let Some(z) = t.zone {
        let _ = write!(out, "<zone>{z}</zone>");
    }
    if let Some(c) = counters {
        let _ = write!(
            out,
            "<counters><packets>{}</packets><bytes>{}</bytes></counters>",
            c.packets, c.bytes
        );
    }
    out.push_str("</meta>");
}

/// The XML text of a conntrack, without a newline.
pub fn conntrack_xml(ct: &Conntrack) -> String {
    conntrack_xml_at(ct, None)
}

/// [`conntrack_xml`] with `<deltatime>` when `now` (Unix seconds) is given and the entry
/// carries a start timestamp (stats mode, see [`super::entry::conntrack_line_at`]).
pub fn conntrack_xml_at(ct: &Conntrack, now: Option<u64>) -> String {
    let mut out = String::with_capacity(640);
    out.push_str("<flow>");
    push_tuple(
        &mut out,
        "original",
        Some(&ct.orig),
        ct.counters_orig.as_ref(),
    );
    push_tuple(
        &mut out,
        "reply",
        ct.reply.as_ref(),
        ct.counters_reply.as_ref(),
    );
    let state = ct.protoinfo.as_ref().and_then(|p| match p {
        ProtoInfo::Tcp(t) => t.state,
        ProtoInfo::Sctp(s) => s.state,
        ProtoInfo::Dccp(d) => d.state,
    });
    let mut meta = String::new();
    if let Some(st) = state {
        // Every protocol's state is looked up in the TCP table (library quirk).
        let _ = write!(meta, "<state>{}</state>", tcp_state_name(st));
    }
    if let Some(t) = ct.timeout {
        let _ = write!(meta, "<timeout>{t}</timeout>");
    }
    if let Some(m) = ct.mark {
        let _ = write!(meta, "<mark>{m}</mark>");
    }
    if let Some(z) = ct.zone {
        let _ = write!(meta, "<zone>{z}</zone>");
    }
    if let Some(u) = ct.use_count {
        let _ = write!(meta, "<use>{u}</use>");
    }
    if let Some(id) = ct.id {
        let _ = write!(meta, "<id>{id}</id>");
    }
    if let Some(status) = ct.status {
        if status & IPS_ASSURED != 0 {
            meta.push_str("<assured/>");
        }
        if status & IPS_SEEN_REPLY == 0 {
            meta.push_str("<unreplied/>");
        }
    }
    if let Some(d) = now.and_then(|n| super::entry::delta_time(ct, n)) {
        let _ = write!(meta, "<deltatime>{d}</deltatime>");
    }
    if !meta.is_empty() || ct.status.is_some() {
        let _ = write!(out, "<meta direction=\"independent\">{meta}</meta>");
    }
    out.push_str("</flow>");
    out
}

fn push_addrs(out: &mut String, tag: &str, t: &Tuple) {
    let _ = write!(out, "<{tag}><src>");
    push_addr(out, &t.src);
    out.push_str("</src><dst>");
    push_addr(out, &t.dst);
    let _ = write!(out, "</dst></{tag}>");
}

fn push_ports(out: &mut String, tag: &str, t: &Tuple) {
    let _ = write!(out, "<{tag}>");
    let (sport, dport) = match t.l4 {
        L4::Ports { sport, dport } => (sport, dport),
        _ => (0, 0),
    };
    match t.l4proto {
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_UDPLITE | IPPROTO_SCTP | IPPROTO_DCCP => {
            let _ = write!(out, "<sport>{sport}</sport><dport>{dport}</dport>");
        }
        IPPROTO_GRE => {
            let _ = write!(
                out,
                "<srckey>{sport:#x}</srckey><dstkey>{dport:#x}</dstkey>"
            );
        }
        _ => {}
    }
    let _ = write!(out, "</{tag}>");
}

/// The XML text of an expectation, without a newline.
pub fn expect_xml(exp: &Expectation) -> String {
    let mut out = String::with_capacity(640);
    let (l3num, l3name) = match exp.tuple.src {
        IpAddr::V4(_) => (2, "ipv4"),
        IpAddr::V6(_) => (10, "ipv6"),
    };
    let _ = write!(
        out,
        "<flow><layer3 protonum=\"{l3num}\" protoname=\"{l3name}\">"
    );
    push_addrs(&mut out, "expected", &exp.tuple);
    push_addrs(&mut out, "mask", &exp.mask);
    push_addrs(&mut out, "master", &exp.master);
    let proto = exp.tuple.l4proto;
    let _ = write!(
        out,
        "</layer3><layer4 protonum=\"{proto}\" protoname=\"{}\">",
        proto_name(proto)
    );
    push_ports(&mut out, "expected", &exp.tuple);
    push_ports(&mut out, "mask", &exp.mask);
    push_ports(&mut out, "master", &exp.master);
    out.push_str("</layer4><meta>");
    if let Some(h) = &exp.helper {
        let _ = write!(
            out,
            "<helper-name>{}</helper-name>",
            h.as_bytes().escape_ascii()
        );
    }
    if let Some(t) = exp.timeout {
        let _ = write!(out, "<timeout>{t}</timeout>");
    }
    if let Some(c) = exp.class {
        let _ = write!(out, "<class>{c}</class>");
    }
    if let Some(z) = exp.zone {
        let _ = write!(out, "<zone>{z}</zone>");
    }
    let flags = exp.flags.unwrap_or(0);
    for (bit, tag) in [
        (0x1, "<permanent/>"),
        (0x2, "<inactive/>"),
        (0x4, "<userspace/>"),
    ] {
        if flags & bit != 0 {
            out.push_str(tag);
        }
    }
    out.push_str("</meta></flow>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::render::entry::{conntrack_line, dump_line};
    use crate::netlink::consts::{AF_INET, AF_INET6, IPPROTO_ICMP};
    use crate::netlink::protoinfo::{SctpInfo, TcpInfo};

    fn tuple(src: &str, dst: &str, proto: u8, l4: L4) -> Tuple {
        let mut t = Tuple::new(src.parse().unwrap(), dst.parse().unwrap(), proto);
        t.l4 = l4;
        t
    }

    fn ports(sport: u16, dport: u16) -> L4 {
        L4::Ports { sport, dport }
    }

    /// A conntrack and its reply tuple (addresses and ports swapped).
    fn flow(src: &str, dst: &str, proto: u8, l4: L4, reply_l4: L4, id: u32) -> Conntrack {
        let family = if src.contains(':') { AF_INET6 } else { AF_INET };
        let mut ct = Conntrack::new(family, tuple(src, dst, proto, l4));
        ct.reply = Some(tuple(dst, src, proto, reply_l4));
        // CONFIRMED only: [UNREPLIED].
        ct.status = Some(0x8);
        ct.mark = Some(0);
        ct.id = Some(id);
        ct
    }

    fn tcp_state(state: u8) -> Option<ProtoInfo> {
        Some(ProtoInfo::Tcp(TcpInfo {
            state: Some(state),
            ..Default::default()
        }))
    }

    /// The seven entries of `testdata/ftfw_i_protos.txt` / `ftfw_i_xml.txt` (Debian's
    /// conntrackd 1.4.7, `-i` and `-i -x` of the same cache; made with `conntrack -I`).
    fn golden_entries() -> Vec<Conntrack> {
        let mut unknown = flow(
            "192.0.2.9",
            "192.0.2.11",
            99,
            L4::None,
            L4::None,
            906_395_067,
        );
        unknown.orig.l4 = L4::None;
        let mut tcp = flow(
            "192.0.2.1",
            "192.0.2.2",
            IPPROTO_TCP,
            ports(1000, 80),
            ports(80, 1000),
            2_639_996_808,
        );
        tcp.status = Some(0x8 | IPS_SEEN_REPLY | IPS_ASSURED);
        tcp.protoinfo = tcp_state(3);
        tcp.mark = Some(7);
        let mut syn = flow(
            "192.0.2.5",
            "192.0.2.6",
            IPPROTO_TCP,
            ports(1001, 22),
            ports(22, 1001),
            207_490_921,
        );
        syn.status = Some(0x8 | IPS_SEEN_REPLY);
        syn.protoinfo = tcp_state(1);
        syn.zone = Some(7);
        let icmp = |ty| L4::Icmp {
            ty,
            code: 0,
            id: 77,
        };
        let icmp = flow(
            "192.0.2.1",
            "192.0.2.2",
            IPPROTO_ICMP,
            icmp(8),
            icmp(0),
            1_714_552_859,
        );
        let mut sctp = flow(
            "192.0.2.7",
            "192.0.2.8",
            IPPROTO_SCTP,
            ports(5, 6),
            ports(6, 5),
            2_517_652_468,
        );
        sctp.protoinfo = Some(ProtoInfo::Sctp(SctpInfo {
            state: Some(4),
            ..Default::default()
        }));
        let udp = flow(
            "2001:db8::1",
            "2001:db8::2",
            IPPROTO_UDP,
            ports(1000, 53),
            ports(53, 1000),
            212_934_688,
        );
        let gre = flow(
            "192.0.2.9",
            "192.0.2.10",
            IPPROTO_GRE,
            ports(0x10, 0x20),
            ports(0x20, 0x10),
            1_256_318_146,
        );
        vec![unknown, tcp, syn, icmp, sctp, udp, gre]
    }

    #[test]
    fn test_golden_xml() {
        let text: String = golden_entries()
            .iter()
            .map(|ct| conntrack_xml(ct) + "\n")
            .collect();
        assert_eq!(text, include_str!("testdata/ftfw_i_xml.txt"));
    }

    #[test]
    fn test_golden_plain_same_entries() {
        // The plain renderer on the same objects: the id is cached (XML shows it) but the
        // default format only prints it on request, which the daemon never makes.
        let text: String = golden_entries()
            .iter()
            .map(|ct| dump_line(&conntrack_line(ct), None, 4))
            .collect();
        assert_eq!(text, include_str!("testdata/ftfw_i_protos.txt"));
    }

    #[test]
    fn test_external_has_empty_reply_meta() {
        let mut ct = Conntrack::new(
            AF_INET,
            tuple("192.0.2.10", "198.51.100.20", IPPROTO_TCP, ports(40000, 80)),
        );
        ct.status = Some(IPS_SEEN_REPLY | IPS_ASSURED);
        ct.mark = Some(9);
        let xml = conntrack_xml(&ct);
        assert!(xml.contains(
            "<meta direction=\"reply\"><layer3 protonum=\"0\" protoname=\"unknown\"><src></src>\
             <dst></dst></layer3><layer4 protonum=\"0\" protoname=\"unknown\"></layer4></meta>"
        ));
        assert!(
            xml.ends_with("<meta direction=\"independent\"><mark>9</mark><assured/></meta></flow>")
        );
    }

    #[test]
    fn test_expectation_golden() {
        // Debian's conntrackd 1.4.7, `-i expect -x` and `-e expect -x` (same text) for the
        // expectation of an FTP passive session (tests/ctl.rs makes the same one).
        let exp = Expectation {
            class: Some(0),
            helper: Some("ftp".try_into().unwrap()),
            ..Expectation::new(
                AF_INET,
                tuple("10.231.3.1", "10.231.3.2", IPPROTO_TCP, ports(60570, 21)),
                tuple("10.231.3.1", "10.231.3.2", IPPROTO_TCP, ports(0, 50003)),
                tuple(
                    "255.255.255.255",
                    "255.255.255.255",
                    IPPROTO_TCP,
                    ports(0, 65535),
                ),
            )
        };
        assert_eq!(
            expect_xml(&exp),
            "<flow><layer3 protonum=\"2\" protoname=\"ipv4\"><expected><src>10.231.3.1</src>\
             <dst>10.231.3.2</dst></expected><mask><src>255.255.255.255</src>\
             <dst>255.255.255.255</dst></mask><master><src>10.231.3.1</src>\
             <dst>10.231.3.2</dst></master></layer3><layer4 protonum=\"6\" protoname=\"tcp\">\
             <expected><sport>0</sport><dport>50003</dport></expected><mask><sport>0</sport>\
             <dport>65535</dport></mask><master><sport>60570</sport><dport>21</dport></master>\
             </layer4><meta><helper-name>ftp</helper-name><class>0</class></meta></flow>"
        );
        // And the plain line of the same object.
        assert_eq!(
            crate::ctl::render::entry::expect_line(&exp),
            "proto=6 src=10.231.3.1 dst=10.231.3.2 sport=0 dport=50003 \
             mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 \
             master-src=10.231.3.1 master-dst=10.231.3.2 sport=60570 dport=21 class=0 \
             helper=ftp"
        );
        let flagged = Expectation {
            flags: Some(0x5),
            timeout: Some(30),
            ..exp
        };
        assert!(expect_xml(&flagged).ends_with(
            "<meta><helper-name>ftp</helper-name><timeout>30</timeout><class>0</class>\
             <permanent/><userspace/></meta></flow>"
        ));
    }

    #[test]
    fn test_reference_sample() {
        // control-and-cli.md §3.3 (internal).
        let mut ct = flow(
            "192.0.2.10",
            "198.51.100.20",
            IPPROTO_TCP,
            ports(40000, 80),
            ports(80, 40000),
            982_003_161,
        );
        ct.status = Some(IPS_SEEN_REPLY | IPS_ASSURED);
        ct.protoinfo = tcp_state(3);
        ct.mark = Some(9);
        assert_eq!(
            conntrack_xml(&ct),
            "<flow><meta direction=\"original\"><layer3 protonum=\"2\" protoname=\"ipv4\">\
             <src>192.0.2.10</src><dst>198.51.100.20</dst></layer3><layer4 protonum=\"6\" \
             protoname=\"tcp\"><sport>40000</sport><dport>80</dport></layer4></meta>\
             <meta direction=\"reply\"><layer3 protonum=\"2\" protoname=\"ipv4\">\
             <src>198.51.100.20</src><dst>192.0.2.10</dst></layer3><layer4 protonum=\"6\" \
             protoname=\"tcp\"><sport>80</sport><dport>40000</dport></layer4></meta>\
             <meta direction=\"independent\"><state>ESTABLISHED</state><mark>9</mark>\
             <id>982003161</id><assured/></meta></flow>"
        );
    }
}
