//! Replication latency: from the kernel's timestamp of a NEW event in the primary to the
//! first arrival of a sync message for that entry on the backup's end of the sync link.
//!
//! Both sides read one clock (`CLOCK_REALTIME`; the namespaces share the kernel):
//!
//! * **Start.** With `net.netfilter.nf_conntrack_timestamp=1` (a per-namespace sysctl) Linux
//!   ≥ 6.14 stamps every ctnetlink event with `CTA_TIMESTAMP_EVENT`, the time the kernel
//!   generated it, which for a NEW event is the creation inside ctgen's `sendmsg`, the same
//!   instant the daemon's own event socket gets the event. A [`StampListener`] in the primary
//!   joins only the NEW group and records, per original tuple, that stamp (or
//!   `CTA_TIMESTAMP_START` on an older kernel that sends it).
//! * **Arrival.** `tcpdump --time-stamp-precision=nano` on the backup's sync interface
//!   records every datagram from the primary with the kernel's receive timestamp. The pcap
//!   is read afterwards ([`read_pcap`]); every datagram is split with the project's wire codec
//!   ([`conntrackd::wire::Messages`]) and each CT_NEW/CT_UPD message gives its tuple's first
//!   arrival ([`first_arrivals`]).
//!
//! latency = arrival − start. It ends when the datagram reaches the backup's link: the
//! backup daemon's own receive and cache insert (microseconds) are not included.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use conntrackd::netlink::ct::Conntrack;
use conntrackd::netlink::events::EventKind;
use conntrackd::netlink::msg::messages;
use conntrackd::netlink::tuple::{L4, Tuple};
use conntrackd::sys::netlink::{NETLINK_NETFILTER, NetlinkSocket, RECV_MANY_MAX, RecvMeta};
use conntrackd::sys::netns;
use conntrackd::wire::{self, Kind, Messages, MsgType};

/// The identity of an entry shared by ctnetlink and the sync protocol: the original tuple.
/// `a`/`b` are the source/destination ports, or the ICMP echo id and 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Original source address.
    pub src: IpAddr,
    /// Original destination address.
    pub dst: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Source port or ICMP id.
    pub a: u16,
    /// Destination port, or 0 for ICMP.
    pub b: u16,
}

impl FlowKey {
    /// The key of a ctnetlink original tuple.
    pub fn of_tuple(t: &Tuple) -> Self {
        let (a, b) = match t.l4 {
            L4::Ports { sport, dport } => (sport, dport),
            L4::Icmp { id, .. } | L4::Icmpv6 { id, .. } => (id, 0),
            L4::None => (0, 0),
        };
        Self {
            src: t.src,
            dst: t.dst,
            proto: t.l4proto,
            a,
            b,
        }
    }

    /// The key of a sync message's conntrack; `None` without addresses or protocol.
    pub fn of_wire(r: &wire::CtRepr) -> Option<Self> {
        let (src, dst) = match r.addrs? {
            wire::tuple::Addrs::V4 { src, dst } => (IpAddr::V4(src), IpAddr::V4(dst)),
            wire::tuple::Addrs::V6 { src, dst } => (IpAddr::V6(src), IpAddr::V6(dst)),
        };
        let (a, b) = match (r.ports, r.icmp_id) {
            (Some(p), _) => (p.src, p.dst),
            (None, Some(id)) => (id, 0),
            (None, None) => (0, 0),
        };
        Some(Self {
            src,
            dst,
            proto: r.l4proto?,
            a,
            b,
        })
    }
}

/// Legacy bind bit of `NFNLGRP_CONNTRACK_NEW`: NEW events only.
const GROUP_NEW: u32 = 0x01;
/// Room per event datagram.
const SLOT: usize = 4096;
/// Linux's ENOBUFS: the kernel dropped events for this socket.
const ENOBUFS: i32 = 105;
/// Effective receive buffer of the listener (forced): it must not be the one that drops.
const RCVBUF: usize = 64 << 20;

/// What the primary's NEW-event listener saw.
#[derive(Debug, Default)]
pub struct Stamps {
    /// Kernel timestamp (ns, realtime) of the NEW event, per original tuple.
    pub start_ns: HashMap<FlowKey, u64>,
    /// NEW events read.
    pub events: u64,
    /// NEW events with neither CTA_TIMESTAMP_EVENT nor CTA_TIMESTAMP_START (timestamps off).
    pub unstamped: u64,
    /// ENOBUFS on the listener's socket (events it lost; the daemon's socket is separate).
    pub overruns: u64,
}

/// A thread reading NEW events of one namespace until stopped.
#[derive(Debug)]
pub struct StampListener {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<io::Result<Stamps>>,
}

impl StampListener {
    /// Subscribes in namespace `ns` (path under /run/netns) and starts reading. Events are
    /// queued by the kernel from the moment this returns. Entries on the sync subnet
    /// (`skip`, an IPv4 /16 prefix of two octets) are ignored: they are the daemons' own
    /// sync flows.
    pub fn start(ns: &Path, skip: [u8; 2]) -> io::Result<Self> {
        let sock = netns::run_in(ns, || -> io::Result<NetlinkSocket> {
            let s = NetlinkSocket::open(NETLINK_NETFILTER)?;
            s.set_nonblocking(true)?;
            // The kernel doubles the request.
            s.set_recv_buffer_force(RCVBUF / 2)?;
            s.bind(GROUP_NEW)?;
            Ok(s)
        })??;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::Builder::new()
            .name("stamps".into())
            .spawn(move || listen(&sock, &flag, skip))?;
        Ok(Self { stop, handle })
    }

    /// Reads what is still queued, stops and returns the stamps.
    pub fn finish(self) -> io::Result<Stamps> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .join()
            .map_err(|_| io::Error::other("stamp listener panicked"))?
    }
}

fn listen(sock: &NetlinkSocket, stop: &AtomicBool, skip: [u8; 2]) -> io::Result<Stamps> {
    let mut st = Stamps::default();
    let mut buf = vec![0u8; SLOT * RECV_MANY_MAX];
    let mut meta = [RecvMeta::default(); RECV_MANY_MAX];
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let wait = if stopping {
            Duration::ZERO
        } else {
            Duration::from_millis(50)
        };
        if !sock.poll_readable(Some(wait))? {
            if stopping {
                return Ok(st);
            }
            continue;
        }
        loop {
            let got = match sock.recv_many(&mut buf, SLOT, &mut meta) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(ENOBUFS) => {
                    st.overruns += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            for (k, md) in meta[..got].iter().enumerate() {
                if !md.from_kernel {
                    continue;
                }
                let dgram = &buf[k * SLOT..k * SLOT + md.len.min(SLOT)];
                for m in messages(dgram).flatten() {
                    if EventKind::of(m.msg_type(), m.flags()) != Some(EventKind::CtNew) {
                        continue;
                    }
                    let payload = m.payload();
                    let Some((&family, attrs)) = payload.split_first() else {
                        continue;
                    };
                    // nfgenmsg is 4 bytes: family, version, res_id (2).
                    let Some(attrs) = attrs.get(3..) else {
                        continue;
                    };
                    let Ok(ct) = Conntrack::parse(family, attrs) else {
                        continue;
                    };
                    if let IpAddr::V4(a) = ct.orig.src
                        && a.octets()[..2] == skip
                    {
                        continue;
                    }
                    st.events += 1;
                    let ts = ct
                        .timestamp_event
                        .or_else(|| ct.timestamp.and_then(|t| t.start));
                    match ts {
                        Some(ts) => {
                            st.start_ns.entry(FlowKey::of_tuple(&ct.orig)).or_insert(ts);
                        }
                        None => st.unstamped += 1,
                    }
                }
            }
            if got < meta.len() {
                break;
            }
        }
    }
}

/// One captured frame: its receive timestamp and the UDP payload (reassembled if the IP
/// datagram was fragmented).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Kernel receive time, ns since the epoch.
    pub ts_ns: u64,
    /// UDP payload.
    pub payload: Vec<u8>,
}

fn u16_at(b: &[u8], at: usize, le: bool) -> Option<u16> {
    let x: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
    Some(if le {
        u16::from_le_bytes(x)
    } else {
        u16::from_be_bytes(x)
    })
}

fn u32_at(b: &[u8], at: usize, le: bool) -> Option<u32> {
    let x: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(if le {
        u32::from_le_bytes(x)
    } else {
        u32::from_be_bytes(x)
    })
}

/// Link types this reader knows (pcap LINKTYPE_*).
const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_LINUX_SLL: u32 = 113;
const LINKTYPE_RAW: u32 = 101;

/// Reads a classic pcap file (micro- or nanosecond magic, either byte order) and returns the
/// UDP payloads of its IPv4/IPv6 frames in capture order. IPv4 fragments are reassembled; the
/// datagram's time is that of its last fragment. Anything it cannot parse is skipped and
/// counted in the second value.
pub fn read_pcap(bytes: &[u8]) -> io::Result<(Vec<Datagram>, u64)> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("pcap: {what}"));
    let magic = u32_at(bytes, 0, true).ok_or_else(|| bad("no header"))?;
    let (le, nano) = match magic {
        0xa1b2_c3d4 => (true, false),
        0xa1b2_3c4d => (true, true),
        0xd4c3_b2a1 => (false, false),
        0x4d3c_b2a1 => (false, true),
        _ => return Err(bad("unknown magic")),
    };
    let linktype = u32_at(bytes, 20, le).ok_or_else(|| bad("short header"))? & 0x0fff_ffff;
    let mut out = Vec::new();
    let mut skipped = 0u64;
    let mut frags = Frags::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let (Some(sec), Some(sub), Some(caplen)) = (
            u32_at(bytes, at, le),
            u32_at(bytes, at + 4, le),
            u32_at(bytes, at + 8, le),
        ) else {
            break;
        };
        let start = at + 16;
        let end = start + caplen as usize;
        let Some(frame) = bytes.get(start..end) else {
            // A capture cut off mid-record (the writer was killed): keep what came before.
            skipped += 1;
            break;
        };
        at = end;
        let ts_ns = u64::from(sec) * 1_000_000_000
            + if nano {
                u64::from(sub)
            } else {
                u64::from(sub) * 1000
            };
        let (ethertype, ip) = match linktype {
            LINKTYPE_ETHERNET => match (u16_at(frame, 12, false), frame.get(14..)) {
                (Some(t), Some(ip)) => (t, ip),
                _ => {
                    skipped += 1;
                    continue;
                }
            },
            LINKTYPE_LINUX_SLL => match (u16_at(frame, 14, false), frame.get(16..)) {
                (Some(t), Some(ip)) => (t, ip),
                _ => {
                    skipped += 1;
                    continue;
                }
            },
            LINKTYPE_RAW => match frame.first().map(|b| b >> 4) {
                Some(4) => (0x0800, frame),
                Some(6) => (0x86dd, frame),
                _ => {
                    skipped += 1;
                    continue;
                }
            },
            _ => return Err(bad("link type not Ethernet, Linux SLL or raw IP")),
        };
        match ethertype {
            0x0800 => match ipv4_udp(ip, &mut frags) {
                Ipv4::Udp(payload) => out.push(Datagram { ts_ns, payload }),
                Ipv4::Pending => {}
                Ipv4::Other => skipped += 1,
            },
            0x86dd => {
                // Sync traffic here is IPv4; an IPv6 UDP datagram without extension headers
                // is read too, for completeness.
                match (ip.get(6), ip.get(48..)) {
                    (Some(17), Some(payload)) => out.push(Datagram {
                        ts_ns,
                        payload: payload.to_vec(),
                    }),
                    _ => skipped += 1,
                }
            }
            _ => skipped += 1,
        }
    }
    Ok((out, skipped))
}

enum Ipv4 {
    Udp(Vec<u8>),
    Pending,
    Other,
}

/// IPv4 fragments being reassembled: (source, id) → (fragments by offset, total length once
/// the last fragment was seen).
type Frags = HashMap<(Ipv4Addr, u16), (Vec<(usize, Vec<u8>)>, Option<usize>)>;

/// The UDP payload of an IPv4 packet, reassembling fragments.
fn ipv4_udp(ip: &[u8], frags: &mut Frags) -> Ipv4 {
    let Some(&vihl) = ip.first() else {
        return Ipv4::Other;
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    let (Some(total), Some(id), Some(fo), Some(&proto)) = (
        u16_at(ip, 2, false),
        u16_at(ip, 4, false),
        u16_at(ip, 6, false),
        ip.get(9),
    ) else {
        return Ipv4::Other;
    };
    if vihl >> 4 != 4 || ihl < 20 || proto != 17 {
        return Ipv4::Other;
    }
    let Some(body) = ip.get(ihl..usize::from(total)) else {
        return Ipv4::Other;
    };
    let more = fo & 0x2000 != 0;
    let offset = usize::from(fo & 0x1fff) * 8;
    let udp = if !more && offset == 0 {
        body.to_vec()
    } else {
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let e = frags.entry((src, id)).or_default();
        e.0.push((offset, body.to_vec()));
        if !more {
            e.1 = Some(offset + body.len());
        }
        let Some(len) = e.1 else {
            return Ipv4::Pending;
        };
        if e.0.iter().map(|(_, b)| b.len()).sum::<usize>() < len {
            return Ipv4::Pending;
        }
        let Some((parts, _)) = frags.remove(&(src, id)) else {
            return Ipv4::Other;
        };
        let mut whole = vec![0u8; len];
        for (off, b) in parts {
            if let Some(dst) = whole.get_mut(off..off + b.len()) {
                dst.copy_from_slice(&b);
            }
        }
        whole
    };
    match udp.get(8..) {
        Some(p) => Ipv4::Udp(p.to_vec()),
        None => Ipv4::Other,
    }
}

/// Per tuple, the earliest arrival of a CT_NEW or CT_UPD message for it (a later copy is a
/// retransmission or a refresh). Returns the map and the number of messages that did not
/// decode.
pub fn first_arrivals(datagrams: &[Datagram]) -> (HashMap<FlowKey, u64>, u64) {
    let mut first: HashMap<FlowKey, u64> = HashMap::new();
    let mut bad = 0u64;
    for d in datagrams {
        for m in Messages::new(&d.payload) {
            let Ok(m) = m else {
                bad += 1;
                continue;
            };
            let Kind::Data(ty) = m.kind() else {
                continue;
            };
            if ty != MsgType::CT_NEW && ty != MsgType::CT_UPD {
                continue;
            }
            let Some(key) = m.ct().ok().as_ref().and_then(FlowKey::of_wire) else {
                bad += 1;
                continue;
            };
            match first.entry(key) {
                Entry::Vacant(v) => {
                    v.insert(d.ts_ns);
                }
                Entry::Occupied(mut o) => {
                    if d.ts_ns < *o.get() {
                        o.insert(d.ts_ns);
                    }
                }
            }
        }
    }
    (first, bad)
}

/// Latency percentiles over the stamped entries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Entries with a kernel stamp (NEW events seen in the primary).
    pub stamped: u64,
    /// Of those, entries whose sync message arrived at the backup.
    pub matched: u64,
    /// Arrivals before the stamp (would mean the clocks disagree; expected 0).
    pub negative: u64,
    /// Percentiles in microseconds.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
}

/// The `q` quantile (0..=1) of sorted values, nearest rank; NaN if empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Matches stamps to arrivals.
pub fn summarize(start: &HashMap<FlowKey, u64>, arrival: &HashMap<FlowKey, u64>) -> Summary {
    let mut lat = Vec::with_capacity(start.len());
    let mut negative = 0;
    for (k, &s) in start {
        if let Some(&a) = arrival.get(k) {
            if a < s {
                negative += 1;
            }
            // Subtract as integers: ns since the epoch are beyond f64's 53-bit mantissa.
            let d = i128::from(a) - i128::from(s);
            lat.push(d as f64 / 1000.0);
        }
    }
    lat.sort_by(f64::total_cmp);
    Summary {
        stamped: start.len() as u64,
        matched: lat.len() as u64,
        negative,
        p50_us: quantile(&lat, 0.50),
        p90_us: quantile(&lat, 0.90),
        p99_us: quantile(&lat, 0.99),
        p999_us: quantile(&lat, 0.999),
        max_us: lat.last().copied().unwrap_or(f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conntrackd::wire::tuple::{Addrs, Ports};
    use conntrackd::wire::{Flags, Outgoing};

    fn udp_key(x: u8, port: u16) -> FlowKey {
        FlowKey {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, x)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            proto: 17,
            a: port,
            b: 53,
        }
    }

    /// A sync datagram holding one message per (type, key).
    fn sync_payload(msgs: &[(MsgType, FlowKey)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (ty, k)) in msgs.iter().enumerate() {
            let (IpAddr::V4(src), IpAddr::V4(dst)) = (k.src, k.dst) else {
                panic!("v4 only here")
            };
            let repr = wire::CtRepr {
                addrs: Some(Addrs::V4 { src, dst }),
                l4proto: Some(k.proto),
                ports: Some(Ports { src: k.a, dst: k.b }),
                status: Some(8),
                timeout: Some(30),
                ..wire::CtRepr::default()
            };
            let m = Outgoing::Ct {
                msg_type: *ty,
                flags: Flags::NONE,
                repr: &repr,
            };
            let mut buf = vec![0u8; m.buffer_len()];
            let n = m.emit(i as u32, &mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    /// An Ethernet + IPv4 + UDP frame around `payload`, optionally one fragment of it.
    fn frame(udp_and_payload: &[u8], id: u16, frag_off: usize, more: bool) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let total = (20 + udp_and_payload.len()) as u16;
        let fo = ((frag_off / 8) as u16) | if more { 0x2000 } else { 0 };
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&id.to_be_bytes());
        ip.extend_from_slice(&fo.to_be_bytes());
        ip.extend_from_slice(&[64, 17, 0, 0, 10, 231, 1, 1, 10, 231, 1, 2]);
        f.extend_from_slice(&ip);
        f.extend_from_slice(udp_and_payload);
        f
    }

    fn udp(payload: &[u8]) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend_from_slice(&3781u16.to_be_bytes());
        u.extend_from_slice(&3781u16.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        u
    }

    /// A nanosecond pcap (little-endian) of `(ts_ns, frame)` records.
    fn pcap(records: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
        p.extend_from_slice(&2u16.to_le_bytes());
        p.extend_from_slice(&4u16.to_le_bytes());
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&65535u32.to_le_bytes());
        p.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        for (ts, f) in records {
            p.extend_from_slice(&((ts / 1_000_000_000) as u32).to_le_bytes());
            p.extend_from_slice(&((ts % 1_000_000_000) as u32).to_le_bytes());
            p.extend_from_slice(&(f.len() as u32).to_le_bytes());
            p.extend_from_slice(&(f.len() as u32).to_le_bytes());
            p.extend_from_slice(f);
        }
        p
    }

    #[test]
    fn pcap_to_latency() {
        let (k1, k2, k3) = (udp_key(1, 1024), udp_key(2, 1024), udp_key(3, 1024));
        let d1 = sync_payload(&[(MsgType::CT_NEW, k1), (MsgType::CT_DEL, k3)]);
        // k1 again (a retransmission, later) and k2 in a datagram fragmented in two.
        let d2 = sync_payload(&[(MsgType::CT_UPD, k1), (MsgType::CT_NEW, k2)]);
        let u2 = udp(&d2);
        let cut = 16;
        let t0 = 1_700_000_000_000_000_000u64;
        let file = pcap(&[
            (t0 + 5_000, frame(&udp(&d1), 1, 0, false)),
            (t0 + 9_000, frame(&u2[..cut], 2, 0, true)),
            (t0 + 9_500, frame(&u2[cut..], 2, cut, false)),
            // A truncated trailing record (capture killed mid-write) is ignored.
            (t0 + 10_000, vec![0u8; 3]),
        ]);
        let file = &file[..file.len() - 2];
        let (dgrams, skipped) = read_pcap(file).unwrap();
        assert_eq!(dgrams.len(), 2);
        assert_eq!(skipped, 1);
        assert_eq!(dgrams[1].payload, d2);
        assert_eq!(dgrams[1].ts_ns, t0 + 9_500);
        let (first, bad) = first_arrivals(&dgrams);
        assert_eq!(bad, 0);
        // A DEL does not count as "present at the peer".
        assert_eq!(first.get(&k3), None);
        assert_eq!(first[&k1], t0 + 5_000);
        assert_eq!(first[&k2], t0 + 9_500);

        let mut start = HashMap::new();
        start.insert(k1, t0 + 1_000);
        start.insert(k2, t0 + 3_500);
        start.insert(k3, t0);
        let s = summarize(&start, &first);
        assert_eq!((s.stamped, s.matched, s.negative), (3, 2, 0));
        assert_eq!(s.p50_us, 4.0);
        assert_eq!(s.max_us, 6.0);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(read_pcap(&[]).is_err());
        assert!(read_pcap(&[0u8; 40]).is_err());
        // A valid header followed by garbage frames.
        let mut p = pcap(&[(1, vec![0xff; 30]), (2, vec![0x45; 40])]);
        let (d, _) = read_pcap(&p).unwrap();
        assert!(d.is_empty());
        p.truncate(30);
        assert!(read_pcap(&p).is_ok());
        let (first, bad) = first_arrivals(&[Datagram {
            ts_ns: 1,
            payload: vec![0x10, 0, 0, 4, 1, 2, 3],
        }]);
        assert!(first.is_empty());
        assert_eq!(bad, 1);
    }

    #[test]
    fn quantiles_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
