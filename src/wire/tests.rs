//! Tests against traffic captured from two conntrackd 1.4.7 daemons
//! (`shared/reference/test-vectors/`, see its README for the capture set-up).
//!
//! * `vectors.txt` is the output of the reference decoder `decode.py -x` for every capture.
//!   We decode every datagram with this codec, print the same lines from our *typed* values
//!   and compare them text for text; then re-encode every CT/EXP message (and every whole
//!   datagram) and compare bytes.
//! * The pcaps are read directly and their payloads compared with `vectors.txt`.
//! * Malformed input (truncations, bit flips, bad lengths, versions, types) must give typed
//!   errors, never a panic.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::ct::{Addrs, Name, Ports};
use super::header::SeqRange;
use super::types::{AttrType, ExpAttrType, Flags, MsgType};
use super::{AttrIter, Datagram, Error, Message, Messages, Outgoing, SeqCounter, ct, exp};

const VECTORS_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/reference/test-vectors"
);

fn read_vectors() -> String {
    let path = format!("{VECTORS_DIR}/vectors.txt");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the captured test vectors at {path}: {e}\n\
             (the repository must be checked out with `shared/` beside it)"
        )
    })
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// One datagram of `vectors.txt`: capture file, record number, payload, decoder lines.
struct Vector {
    file: String,
    record: usize,
    payload: Vec<u8>,
    lines: Vec<String>,
}

fn parse_vectors(text: &str) -> Vec<Vector> {
    let mut out: Vec<Vector> = Vec::new();
    let mut file = String::new();
    for line in text.lines() {
        if let Some(f) = line.strip_prefix("===== ") {
            file = f.to_string();
        } else if let Some(rest) = line.strip_prefix('#') {
            let record = rest.split_whitespace().next().unwrap().parse().unwrap();
            out.push(Vector {
                file: file.clone(),
                record,
                payload: Vec::new(),
                lines: Vec::new(),
            });
        } else if let Some(h) = line.strip_prefix("  hex: ") {
            out.last_mut().unwrap().payload = unhex(h);
        } else if !line.trim().is_empty() {
            out.last_mut().unwrap().lines.push(line.to_string());
        }
    }
    out
}

/// The decoder's short names: the C names without their prefix.
fn short_name(ty: u16, is_ct: bool) -> String {
    let n = if is_ct {
        AttrType(ty).name()
    } else {
        ExpAttrType(ty).name()
    };
    match n {
        Some(n) => n
            .trim_start_matches("NTA_")
            .trim_start_matches("EXP_")
            .to_string(),
        None => format!("?{ty}"),
    }
}

fn type_name(t: MsgType) -> String {
    match t.name() {
        Some(n) => n.to_string(),
        None => t.0.to_string(),
    }
}

/// Python's `repr()` of a bytes object (as decode.py prints names of unusual length).
fn py_bytes(b: &[u8]) -> String {
    let mut s = String::from("b'");
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\'' => s.push_str("\\'"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s.push('\'');
    s
}

/// The value annotations decode.py prints, rebuilt from our typed values.
enum Val {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
    Ports(Ports),
    /// A value whose wire bytes are this u32 (big-endian reading).
    Be32(u32),
    /// A value whose wire bytes are this u16 (big-endian reading).
    Be16(u16),
    U8(u8),
    Name(Vec<u8>),
    None,
}

fn addrs(a: Option<Addrs>) -> Val {
    match a {
        Some(Addrs::V4 { src, dst }) => Val::V4(src, dst),
        Some(Addrs::V6 { src, dst }) => Val::V6(src, dst),
        None => panic!("attribute seen but not decoded"),
    }
}

fn name<const N: usize>(n: Option<Name<N>>) -> Val {
    Val::Name(n.expect("name decoded").raw().to_vec())
}

fn ct_val(r: &ct::Repr, ty: u16) -> Val {
    let u8v = |v: Option<u8>| Val::U8(v.expect("u8 decoded"));
    let be32 = |v: Option<u32>| Val::Be32(v.expect("u32 decoded"));
    // SPAT/DPAT/ICMP_ID are little-endian on the wire (§7): their BE reading is swapped.
    let le16 = |v: Option<u16>| Val::Be16(v.expect("u16 decoded").swap_bytes());
    match AttrType(ty) {
        AttrType::NTA_IPV4 | AttrType::NTA_IPV6 => addrs(r.addrs),
        AttrType::NTA_MASTER_IPV4 | AttrType::NTA_MASTER_IPV6 => addrs(r.master_addrs),
        AttrType::NTA_PORT => Val::Ports(r.ports.unwrap()),
        AttrType::NTA_MASTER_PORT => Val::Ports(r.master_ports.unwrap()),
        AttrType::NTA_L4PROTO => u8v(r.l4proto),
        AttrType::NTA_TCP_STATE => u8v(r.tcp_state),
        AttrType::NTA_MASTER_L4PROTO => u8v(r.master_l4proto),
        AttrType::NTA_SCTP_STATE => u8v(r.sctp_state),
        AttrType::NTA_DCCP_STATE => u8v(r.dccp_state),
        AttrType::NTA_DCCP_ROLE => u8v(r.dccp_role),
        AttrType::NTA_ICMP_TYPE => u8v(r.icmp_type),
        AttrType::NTA_ICMP_CODE => u8v(r.icmp_code),
        AttrType::NTA_TCP_WSCALE_ORIG => u8v(r.tcp_wscale_orig),
        AttrType::NTA_TCP_WSCALE_REPL => u8v(r.tcp_wscale_repl),
        AttrType::NTA_STATUS => be32(r.status),
        AttrType::NTA_TIMEOUT => be32(r.timeout),
        AttrType::NTA_MARK => be32(r.mark),
        AttrType::NTA_SCTP_VTAG_ORIG => be32(r.sctp_vtag_orig),
        AttrType::NTA_SCTP_VTAG_REPL => be32(r.sctp_vtag_repl),
        AttrType::NTA_SNAT_IPV4 => Val::Be32(r.snat_ipv4.unwrap().into()),
        AttrType::NTA_DNAT_IPV4 => Val::Be32(r.dnat_ipv4.unwrap().into()),
        AttrType::NTA_SPAT_PORT => le16(r.spat_port),
        AttrType::NTA_DPAT_PORT => le16(r.dpat_port),
        AttrType::NTA_ICMP_ID => le16(r.icmp_id),
        AttrType::NTA_ZONE => Val::Be16(r.zone.unwrap()),
        AttrType::NTA_HELPER_NAME => name(r.helper_name),
        // 16-byte addresses, labels, synproxy, seq-adj: decode.py prints no value; they are
        // covered by the byte-exact re-encoding below.
        _ => Val::None,
    }
}

fn exp_val(r: &exp::Repr, ty: u16) -> Val {
    use ExpAttrType as E;
    let u8v = |v: Option<u8>| Val::U8(v.expect("u8 decoded"));
    let be32 = |v: Option<u32>| Val::Be32(v.expect("u32 decoded"));
    match E(ty) {
        E::NTA_EXP_MASTER_IPV4 | E::NTA_EXP_MASTER_IPV6 => addrs(r.master.addrs),
        E::NTA_EXP_EXPECT_IPV4 | E::NTA_EXP_EXPECT_IPV6 => addrs(r.expect.addrs),
        E::NTA_EXP_MASK_IPV4 | E::NTA_EXP_MASK_IPV6 => addrs(r.mask.addrs),
        E::NTA_EXP_NAT_IPV4 => {
            let (s, d) = r.nat.addrs.unwrap();
            Val::V4(s, d)
        }
        E::NTA_EXP_MASTER_PORT => Val::Ports(r.master.ports.unwrap()),
        E::NTA_EXP_EXPECT_PORT => Val::Ports(r.expect.ports.unwrap()),
        E::NTA_EXP_MASK_PORT => Val::Ports(r.mask.ports.unwrap()),
        E::NTA_EXP_NAT_PORT => Val::Ports(r.nat.ports.unwrap()),
        E::NTA_EXP_MASTER_L4PROTO => u8v(r.master.l4proto),
        E::NTA_EXP_EXPECT_L4PROTO => u8v(r.expect.l4proto),
        E::NTA_EXP_MASK_L4PROTO => u8v(r.mask.l4proto),
        E::NTA_EXP_NAT_L4PROTO => u8v(r.nat.l4proto),
        E::NTA_EXP_TIMEOUT => be32(r.timeout),
        E::NTA_EXP_FLAGS => be32(r.flags),
        E::NTA_EXP_CLASS => be32(r.class),
        E::NTA_EXP_NAT_DIR => be32(r.nat.dir),
        E::NTA_EXP_HELPER_NAME => name(r.helper_name),
        E::NTA_EXP_FN => name(r.expect_fn),
        _ => Val::None,
    }
}

/// decode.py's annotation for a value, following its if/elif chain on name and length.
fn annotate(val: &Val) -> String {
    match val {
        Val::V4(s, d) => format!(" src={s} dst={d}"),
        Val::V6(s, d) => format!(" src={s} dst={d}"),
        Val::Ports(p) => format!(" sport(BE)={} dport(BE)={}", p.src, p.dst),
        Val::Be32(v) => format!(" be32={v} le32={}", v.swap_bytes()),
        Val::Be16(v) => format!(" be16={v} le16={}", v.swap_bytes()),
        Val::U8(v) => format!(" u8={v}"),
        Val::Name(b) => match b.len() {
            4 => annotate(&Val::Be32(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
            2 => annotate(&Val::Be16(u16::from_be_bytes([b[0], b[1]]))),
            1 => annotate(&Val::U8(b[0])),
            _ => format!(" str={}", py_bytes(b)),
        },
        Val::None => String::new(),
    }
}

/// Prints one message the way decode.py does, from our decoded values.
fn render_message(off: usize, m: &Message<'_>, out: &mut Vec<String>) {
    let h = &m.header;
    let mut line = format!(
        "  msg@{off}: ver=1 type={} flags={:?} len={} seq={}",
        type_name(h.msg_type),
        h.flags,
        h.len,
        h.seq
    );
    if let Some(SeqRange { from, to }) = h.range {
        let _ = write!(line, " from={from} to={to}");
    }
    out.push(line);
    if h.msg_type == MsgType::CTL {
        return;
    }
    let is_ct = h.msg_type.is_ct();
    let ct = is_ct.then(|| m.ct().expect("captured CT message decodes"));
    let exp = (!is_ct).then(|| m.exp().expect("captured EXP message decodes"));
    for a in AttrIter::new(m.body) {
        let a = a.expect("captured attribute is well-formed");
        let val = match (&ct, &exp) {
            (Some(r), _) => ct_val(r, a.ty),
            (_, Some(r)) => exp_val(r, a.ty),
            _ => unreachable!(),
        };
        out.push(format!(
            "    {}({}) len={} {}{}",
            short_name(a.ty, is_ct),
            a.ty,
            a.payload.len(),
            hex(a.payload),
            annotate(&val)
        ));
    }
}

/// Calls `f` with the [`Outgoing`] that describes a received message.
fn with_outgoing<R>(m: &Message<'_>, f: impl FnOnce(&Outgoing<'_>) -> R) -> R {
    let h = &m.header;
    if h.msg_type.is_ct() {
        let repr = m.ct().unwrap();
        f(&Outgoing::Ct {
            msg_type: h.msg_type,
            flags: h.flags,
            repr: &repr,
        })
    } else if h.msg_type.is_exp() {
        let repr = m.exp().unwrap();
        f(&Outgoing::Exp {
            msg_type: h.msg_type,
            flags: h.flags,
            repr: &repr,
        })
    } else {
        f(&Outgoing::Control {
            flags: h.flags,
            range: h.range,
        })
    }
}

fn reencode(m: &Message<'_>) -> Vec<u8> {
    with_outgoing(m, |out| {
        let mut buf = vec![0u8; out.buffer_len()];
        assert_eq!(out.emit(m.header.seq, &mut buf), Ok(buf.len()));
        buf
    })
}

#[test]
fn test_vectors_decode_and_reencode() {
    let vectors = parse_vectors(&read_vectors());
    assert!(
        vectors.len() > 1000,
        "vectors.txt looks incomplete: {} datagrams",
        vectors.len()
    );
    let (mut msgs, mut data, mut data_same, mut dgram_same) = (0, 0, 0, 0);
    let mut mismatches = Vec::new();
    for v in &vectors {
        let ctx = format!("{} #{}", v.file, v.record);
        let mut ours = Vec::new();
        let mut it = Messages::new(&v.payload);
        let mut off = 0;
        let mut parsed = Vec::new();
        for m in &mut it {
            let m = m.unwrap_or_else(|e| panic!("{ctx}: {e}"));
            render_message(off, &m, &mut ours);
            off += m.bytes.len();
            parsed.push(m);
        }
        assert_eq!(it.offset(), v.payload.len(), "{ctx}: trailing bytes");
        assert_eq!(ours, v.lines, "{ctx}: our decode differs from decode.py");
        msgs += parsed.len();

        // Every message re-encoded alone, and the datagram rebuilt with the batcher.
        let mut buf = vec![0u8; 65536];
        let mut d = Datagram::new(&mut buf, 65536);
        for m in &parsed {
            let again = reencode(m);
            if m.header.msg_type.is_data() {
                data += 1;
                if again == m.bytes {
                    data_same += 1;
                } else {
                    mismatches.push(format!("{ctx} seq {}", m.header.seq));
                }
            }
            // The batcher stamps the next number of the counter: start it at the captured seq.
            let mut seq = SeqCounter::new(m.header.seq);
            let pushed = with_outgoing(m, |o| d.push(&mut seq, o));
            assert_eq!(pushed, Ok(m.header.seq));
        }
        if d.as_bytes() == v.payload.as_slice() {
            dgram_same += 1;
        }
    }
    eprintln!(
        "vectors: {} datagrams, {msgs} messages decoded; {data_same}/{data} CT/EXP messages \
         and {dgram_same}/{} datagrams re-encoded identically",
        vectors.len(),
        vectors.len()
    );
    assert!(mismatches.is_empty(), "re-encoding differs: {mismatches:?}");
    assert_eq!(dgram_same, vectors.len());
}

/// Record payloads of a pcap (Ethernet, Linux cooked v1/v2, IPv4, UDP or TCP).
fn pcap_payloads(bytes: &[u8]) -> Vec<(usize, Vec<u8>)> {
    let rd32 = |b: &[u8], le: bool| {
        let a = [b[0], b[1], b[2], b[3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let magic = rd32(bytes, true);
    let le = magic == 0xa1b2_c3d4 || magic == 0xa1b2_3c4d;
    let link = rd32(&bytes[20..], le);
    let l2 = match link {
        1 => 14,
        113 => 16,
        276 => 20,
        _ => 0,
    };
    let mut out = Vec::new();
    let mut off = 24;
    let mut idx = 0;
    while off + 16 <= bytes.len() {
        let incl = rd32(&bytes[off + 8..], le) as usize;
        let pkt = &bytes[off + 16..off + 16 + incl];
        off += 16 + incl;
        let ip = &pkt[l2..];
        if ip[0] >> 4 == 4 {
            let ihl = usize::from(ip[0] & 15) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            let l4 = &ip[ihl..total];
            let payload = match ip[9] {
                17 => &l4[8..],
                6 => &l4[usize::from(l4[12] >> 4) * 4..],
                _ => &[][..],
            };
            if !payload.is_empty() {
                out.push((idx, payload.to_vec()));
            }
        }
        idx += 1;
    }
    out
}

#[test]
fn test_pcaps_match_vectors() {
    let vectors = parse_vectors(&read_vectors());
    let mut files: Vec<&str> = vectors.iter().map(|v| v.file.as_str()).collect();
    files.dedup();
    let mut n = 0;
    for f in files {
        let bytes = std::fs::read(format!("{VECTORS_DIR}/{f}")).expect("pcap beside vectors.txt");
        let ours = pcap_payloads(&bytes);
        let theirs: Vec<_> = vectors
            .iter()
            .filter(|v| v.file == f)
            .map(|v| (v.record, v.payload.clone()))
            .collect();
        assert_eq!(ours, theirs, "{f}");
        for (_, p) in &ours {
            for m in Messages::new(p) {
                m.unwrap();
            }
        }
        n += ours.len();
    }
    assert_eq!(n, vectors.len());
}

/// Runs every decoder over `buf` and re-encodes whatever decodes; returns (ok, err) counts.
/// Decoded payloads must survive an emit/parse round trip unchanged.
fn exercise(buf: &[u8]) -> (usize, usize) {
    let (mut ok, mut err) = (0, 0);
    for m in Messages::new(buf) {
        let Ok(m) = m else {
            err += 1;
            continue;
        };
        ok += 1;
        let _ = m.kind();
        let t = m.header.msg_type;
        if t.is_ct() {
            match m.ct() {
                Ok(r) => {
                    let mut b = vec![0u8; r.buffer_len()];
                    assert_eq!(r.emit(&mut b), b.len());
                    assert_eq!(ct::Repr::parse(&b), Ok(r));
                }
                Err(_) => err += 1,
            }
        } else if t.is_exp() {
            match m.exp() {
                Ok(r) => {
                    let mut b = vec![0u8; r.buffer_len()];
                    assert_eq!(r.emit(&mut b), b.len());
                    assert_eq!(exp::Repr::parse(&b), Ok(r));
                }
                Err(_) => err += 1,
            }
        }
        // Either payload decoder on any body: typed result, no panic.
        let _ = ct::Repr::parse(m.body);
        let _ = exp::Repr::parse(m.body);
    }
    (ok, err)
}

#[test]
fn test_truncations_never_panic() {
    let vectors = parse_vectors(&read_vectors());
    let mut seen = std::collections::HashSet::new();
    for v in vectors.iter().filter(|v| seen.insert(v.payload.clone())) {
        let p = &v.payload;
        let mut boundaries = vec![0];
        for m in Messages::new(p) {
            boundaries.push(boundaries.last().unwrap() + m.unwrap().bytes.len());
        }
        for cut in 0..p.len() {
            let (_, err) = exercise(&p[..cut]);
            if !boundaries.contains(&cut) {
                assert!(
                    err > 0,
                    "{} #{}: cut at {cut} not reported",
                    v.file,
                    v.record
                );
            }
            // The body of each message cut anywhere: a typed result.
            let _ = ct::Repr::parse(&p[8.min(cut)..cut]);
            let _ = exp::Repr::parse(&p[8.min(cut)..cut]);
        }
    }
}

#[test]
fn test_bit_flips_never_panic() {
    let vectors = parse_vectors(&read_vectors());
    let mut seen = std::collections::HashSet::new();
    // xorshift64: deterministic, no dependency.
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut errs = 0;
    for v in vectors.iter().filter(|v| seen.insert(v.payload.clone())) {
        for _ in 0..200 {
            let mut p = v.payload.clone();
            for _ in 0..=(rnd() % 3) {
                let bit = (rnd() % (p.len() as u64 * 8)) as usize;
                p[bit / 8] ^= 1 << (bit % 8);
            }
            errs += exercise(&p).1;
        }
    }
    assert!(errs > 0);
}

#[rustfmt::skip]
static CT_NEW_84: [u8; 84] = [
    0x10, 0x00, 0x00, 0x54, 0x6b, 0x06, 0xc9, 0xc6,    // CT_NEW, len 84, seq
    0x00, 0x0c, 0x00, 0x00, 0xc0, 0x00, 0x02, 0x0a,    // NTA_IPV4 192.0.2.10 ->
    0xc6, 0x33, 0x64, 0x14,                            //   198.51.100.20
    0x00, 0x08, 0x00, 0x05, 0x00, 0x00, 0x00, 0x0e,    // NTA_STATUS 0x0e
    0x00, 0x05, 0x00, 0x02, 0x06, 0x00, 0x00, 0x00,    // NTA_L4PROTO 6 + pad
    0x00, 0x08, 0x00, 0x03, 0x9c, 0x40, 0x00, 0x50,    // NTA_PORT 40000, 80
    0x00, 0x05, 0x00, 0x04, 0x03, 0x00, 0x00, 0x00,    // NTA_TCP_STATE 3 + pad
    0x00, 0x08, 0x00, 0x06, 0x00, 0x00, 0x01, 0x2c,    // NTA_TIMEOUT 300
    0x00, 0x08, 0x00, 0x07, 0x00, 0x00, 0x00, 0x07,    // NTA_MARK 7
    0x00, 0x10, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00,    // NTA_SYNPROXY
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

#[test]
fn test_ct_parse_emit() {
    let r = ct::Repr::parse(&CT_NEW_84[8..]).unwrap();
    let expected = ct::Repr {
        addrs: Some(Addrs::V4 {
            src: Ipv4Addr::new(192, 0, 2, 10),
            dst: Ipv4Addr::new(198, 51, 100, 20),
        }),
        status: Some(0x0e),
        l4proto: Some(6),
        ports: Some(Ports {
            src: 40000,
            dst: 80,
        }),
        tcp_state: Some(3),
        timeout: Some(300),
        mark: Some(7),
        synproxy: Some(ct::Synproxy::default()),
        ..Default::default()
    };
    assert_eq!(r, expected);
    let mut buf = [0u8; 84];
    let mut d = Datagram::new(&mut buf, 1472);
    let o = Outgoing::Ct {
        msg_type: MsgType::CT_NEW,
        flags: Flags::NONE,
        repr: &expected,
    };
    d.push(&mut SeqCounter::new(0x6b06_c9c6), &o).unwrap();
    assert_eq!(d.as_bytes(), &CT_NEW_84[..]);
}

#[test]
fn test_ct_every_attribute_round_trip() {
    let mut labels = ct::Labels::new();
    labels.set(0).unwrap();
    labels.set(33).unwrap();
    assert!(labels.get(33) && !labels.get(1));
    assert!(labels.set(128).is_err());
    assert_eq!(ct::Labels::from_words(&[1, 2, 0, 0]), Ok(labels));
    assert!(ct::Labels::from_words(&[0, 0, 0, 0, 1]).is_err());
    assert_eq!(ct::Labels::from_words(&[1; 1]).unwrap().wire_words(), 1);
    let r = ct::Repr {
        addrs: Some(Addrs::V6 {
            src: Ipv6Addr::LOCALHOST,
            dst: "2001:db8::2".parse().unwrap(),
        }),
        l4proto: Some(132),
        ports: Some(Ports { src: 1, dst: 2 }),
        tcp_state: Some(1),
        status: Some(0x19e),
        timeout: Some(5),
        mark: Some(9),
        master_addrs: Some(Addrs::V4 {
            src: Ipv4Addr::LOCALHOST,
            dst: Ipv4Addr::BROADCAST,
        }),
        master_l4proto: Some(6),
        master_ports: Some(Ports {
            src: 45000,
            dst: 21,
        }),
        snat_ipv4: Some(Ipv4Addr::new(203, 0, 113, 5)),
        dnat_ipv4: Some(Ipv4Addr::new(203, 0, 113, 6)),
        spat_port: Some(50000),
        dpat_port: Some(8080),
        nat_seq_adj: Some(ct::NatSeqAdj {
            orig_correction_pos: 1,
            repl_offset_after: 6,
            ..Default::default()
        }),
        sctp_state: Some(3),
        sctp_vtag_orig: Some(0xdead_beef),
        sctp_vtag_repl: Some(7),
        dccp_state: Some(2),
        dccp_role: Some(1),
        icmp_type: Some(8),
        icmp_code: Some(0),
        icmp_id: Some(0x1234),
        tcp_wscale_orig: Some(7),
        tcp_wscale_repl: Some(10),
        helper_name: Some(Name::new("ftp").unwrap()),
        labels: Some(labels),
        snat_ipv6: Some("2001:db8::5".parse().unwrap()),
        dnat_ipv6: Some("2001:db8::6".parse().unwrap()),
        synproxy: Some(ct::Synproxy {
            its: 1,
            isn: 2,
            tsoff: 3,
        }),
        zone: Some(5),
    };
    let mut b = vec![0u8; r.buffer_len()];
    assert_eq!(r.emit(&mut b), b.len());
    assert_eq!(ct::Repr::parse(&b), Ok(r));
    // §7 byte orders: SPAT 50000 -> 50 c3, ICMP_ID 0x1234 -> 34 12, ZONE 5 -> 00 05.
    let find = |ty: AttrType| {
        AttrIter::new(&b)
            .map(Result::unwrap)
            .find(|a| a.ty == ty.0)
            .unwrap()
            .payload
    };
    assert_eq!(find(AttrType::NTA_SPAT_PORT), &[0x50, 0xc3]);
    assert_eq!(find(AttrType::NTA_DPAT_PORT), &[0x90, 0x1f]);
    assert_eq!(find(AttrType::NTA_ICMP_ID), &[0x34, 0x12]);
    assert_eq!(find(AttrType::NTA_ZONE), &[0x00, 0x05]);
    assert_eq!(find(AttrType::NTA_SNAT_IPV4), &[203, 0, 113, 5]);
    assert_eq!(
        find(AttrType::NTA_LABELS),
        &unhex("00000001000000020000000000000000")[..]
    );
    assert_eq!(find(AttrType::NTA_HELPER_NAME), b"ftp\0");
    assert!(Name::<12>::new("twelve-chars").is_err());
    assert!(Name::<12>::new("eleven-char").is_ok());
    assert_eq!(format!("{:?}", Name::<12>::new("ftp").unwrap()), "\"ftp\"");
    assert_eq!(Name::<12>::new("ftp").unwrap().as_str(), Some("ftp"));
}

#[test]
fn test_exp_round_trip() {
    let r = exp::Repr {
        master: exp::Tuple {
            addrs: Some(Addrs::V4 {
                src: Ipv4Addr::LOCALHOST,
                dst: Ipv4Addr::LOCALHOST,
            }),
            l4proto: Some(6),
            ports: Some(Ports {
                src: 45000,
                dst: 21,
            }),
        },
        expect: exp::Tuple {
            addrs: Some(Addrs::V6 {
                src: Ipv6Addr::LOCALHOST,
                dst: Ipv6Addr::UNSPECIFIED,
            }),
            l4proto: Some(6),
            ports: None,
        },
        mask: exp::Tuple {
            addrs: None,
            l4proto: Some(6),
            ports: Some(Ports {
                src: 0,
                dst: 0xffff,
            }),
        },
        timeout: Some(300),
        flags: Some(4),
        class: Some(0),
        nat: exp::NatTuple {
            addrs: Some((Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8))),
            l4proto: Some(6),
            ports: Some(Ports { src: 1, dst: 2 }),
            dir: Some(1),
        },
        helper_name: Some(Name::new("sip").unwrap()),
        expect_fn: Some(Name::new("nat-follow-master").unwrap()),
    };
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut b);
    assert_eq!(exp::Repr::parse(&b), Ok(r));
    let order: Vec<u16> = AttrIter::new(&b).map(|a| a.unwrap().ty).collect();
    // NAT_L4PROTO (17) goes before NAT_PORT (16), as the C sender writes it.
    assert_eq!(
        order,
        [0, 2, 3, 5, 6, 10, 11, 12, 13, 14, 15, 17, 16, 18, 19, 20]
    );
}

#[test]
fn test_malformed_attributes() {
    let body = &CT_NEW_84[8..];
    let mut b = body.to_vec();
    b[3] = 33; // first attribute type -> 33: unknown in 1.4.7
    assert_eq!(ct::Repr::parse(&b), Err(Error::UnknownAttr(33)));
    let mut b = body.to_vec();
    b[1] = 0x0b; // NTA_IPV4 with nta_len 11 instead of 12
    assert_eq!(
        ct::Repr::parse(&b),
        Err(Error::BadAttrLen { ty: 0, len: 11 })
    );
    let mut b = body.to_vec();
    b[1] = 0x02; // nta_len below the header
    assert!(matches!(ct::Repr::parse(&b), Err(Error::BadLength(_))));
    let mut b = body.to_vec();
    b[0] = 0x10; // nta_len 4108 beyond the message
    assert!(matches!(ct::Repr::parse(&b), Err(Error::BadLength(_))));
    // Helper name of 13 bytes: nta_len 17 > 16.
    let mut h = vec![0x00, 0x11, 0x00, 0x1b];
    h.extend_from_slice(b"0123456789ab\0\0\0\0");
    assert_eq!(
        ct::Repr::parse(&h),
        Err(Error::BadAttrLen { ty: 27, len: 17 })
    );
    // Labels with 3 bytes: silently ignored, as in C.
    let l = [0x00, 0x07, 0x00, 0x1c, 1, 2, 3, 0];
    assert_eq!(ct::Repr::parse(&l), Ok(ct::Repr::default()));
    // EXP bound is 21.
    let e = [0x00, 0x08, 0x00, 0x15, 0, 0, 0, 0];
    assert_eq!(exp::Repr::parse(&e), Err(Error::UnknownAttr(21)));
    // CT payload requested from a control message.
    let m = Messages::new(&[0x1a, 0x10, 0, 8, 0, 0, 0, 0])
        .next()
        .unwrap()
        .unwrap();
    assert!(matches!(m.ct(), Err(Error::BadType(_))));
}

#[test]
fn test_malformed_headers() {
    // Unknown message types decode (open enum) and classify as Bad.
    for t in [6u8, 7, 8, 9, 11, 15] {
        let b = [0x10 | t, 0, 0, 8, 0, 0, 0, 1];
        let m = Messages::new(&b).next().unwrap().unwrap();
        assert_eq!(m.kind(), super::Kind::Bad);
        assert!(m.ct().is_err() && m.exp().is_err());
    }
    // Version 0 and 15.
    for v in [0x0au8, 0xfa] {
        let b = [v, 0x10, 0, 8, 0, 0, 0, 1];
        assert!(matches!(
            Messages::new(&b).next(),
            Some(Err(Error::BadVersion(_)))
        ));
    }
    // Lengths 1..=7 on a data message, 8..=15 on an ACK.
    for len in 1..8u8 {
        let b = [0x10, 0, 0, len, 0, 0, 0, 0];
        assert!(matches!(
            Messages::new(&b).next(),
            Some(Err(Error::BadLength(_)))
        ));
    }
    for len in 8..16u8 {
        let b = [0x1a, 0x08, 0, len, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            Messages::new(&b).next(),
            Some(Err(Error::BadLength(_)))
        ));
    }
}

#[test]
fn test_random_bytes_never_panic() {
    let mut s: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for _ in 0..20_000 {
        let len = (rnd() % 200) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
        // Make plausible headers common: version 1, small length.
        if len >= 4 && rnd() % 2 == 0 {
            b[0] = 0x10 | (b[0] & 0x0f);
            b[2] = 0;
            b[3] = (rnd() % (len as u64 + 8)) as u8;
        }
        exercise(&b);
    }
}

/// TCP: the same messages arrive as a byte stream cut anywhere. Feeding the chunks through
/// `Messages` and keeping the bytes after `offset()` on `Truncated` recovers every message.
#[test]
fn test_stream_reassembly() {
    let vectors = parse_vectors(&read_vectors());
    let stream: Vec<u8> = vectors
        .iter()
        .filter(|v| v.file == "notrack-tcp.pcap")
        .flat_map(|v| v.payload.clone())
        .collect();
    let expected: Vec<Vec<u8>> = Messages::new(&stream)
        .map(|m| m.unwrap().bytes.to_vec())
        .collect();
    assert!(expected.len() > 20);
    for chunk in [1, 3, 7, 8, 13, 64, 1000] {
        let mut pending: Vec<u8> = Vec::new();
        let mut got = Vec::new();
        for c in stream.chunks(chunk) {
            pending.extend_from_slice(c);
            let mut it = Messages::new(&pending);
            for m in &mut it {
                match m {
                    Ok(m) => got.push(m.bytes.to_vec()),
                    Err(Error::Truncated(_)) => break,
                    Err(e) => panic!("chunk {chunk}: {e}"),
                }
            }
            let used = it.offset();
            pending.drain(..used);
        }
        assert!(pending.is_empty());
        assert_eq!(got, expected, "chunk size {chunk}");
    }
}
