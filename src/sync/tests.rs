//! Unit tests of the FTFW rules (sync-modes.md §2), one rule per test, plus two captured
//! 1.4.7 exchanges (test-vectors/vectors.txt, ftfw-multicast.pcap) replayed byte for byte.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::ftfw::{Config, Event, Ftfw, Release, Source, Verdict};
use crate::wire::header::SeqRange;
use crate::wire::tuple::{Addrs, Ports};
use crate::wire::{CtRepr, Datagram, Flags, Messages, MsgType, Outgoing, SeqCounter};

/// Peer ids in these tests.
const PEER: u8 = 1;
const OTHER: u8 = 2;

pub(super) fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A toy internal cache: key → (message type from status, state).
#[derive(Debug, Default)]
pub(super) struct Items(pub(super) HashMap<u32, (MsgType, CtRepr)>);

impl Source<u32> for Items {
    fn message(&self, key: &u32) -> Option<Outgoing<'_>> {
        self.0.get(key).map(|(t, repr)| Outgoing::Ct {
            msg_type: *t,
            flags: Flags::NONE,
            repr,
        })
    }
}

/// A conntrack whose tuple encodes `key` and whose mark is the version of its state.
pub(super) fn ct(key: u32, version: u32) -> CtRepr {
    CtRepr {
        addrs: Some(Addrs::V4 {
            src: Ipv4Addr::from(0x0a00_0000 | key),
            dst: Ipv4Addr::new(192, 0, 2, 1),
        }),
        l4proto: Some(6),
        ports: Some(Ports { src: 1024, dst: 80 }),
        mark: Some(version),
        ..CtRepr::default()
    }
}

type Ep = Ftfw<u32, u8>;

fn cfg() -> Config {
    Config::default()
}

/// Every datagram the endpoint has queued.
fn drain(ep: &mut Ep, now: Instant, seq: &mut SeqCounter, src: &Items) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Some(t) = ep.poll_transmit(now, seq, src, &mut buf) {
        out.push(buf[..t.size].to_vec());
    }
    out
}

/// (type, flags, seq, range) of a message.
type Summary = (MsgType, Flags, u32, Option<(u32, u32)>);

/// [`Summary`] of every message of the datagrams.
fn summary(dgrams: &[Vec<u8>]) -> Vec<Summary> {
    dgrams
        .iter()
        .flat_map(|d| Messages::new(d).map(Result::unwrap).collect::<Vec<_>>())
        .map(|m| {
            let h = m.header;
            (h.msg_type, h.flags, h.seq, h.range.map(|r| (r.from, r.to)))
        })
        .collect()
}

fn feed(ep: &mut Ep, now: Instant, peer: u8, bytes: &[u8]) -> Vec<Verdict> {
    Messages::new(bytes)
        .map(|m| ep.handle_message(now, &peer, &m.unwrap()))
        .collect()
}

/// A peer message built with the wire builder.
fn ctl(seq: u32, flags: Flags, range: Option<(u32, u32)>) -> Vec<u8> {
    let mut buf = [0u8; 64];
    let mut d = Datagram::new(&mut buf, 64);
    let range = range.map(|(from, to)| SeqRange { from, to });
    d.push(
        &mut SeqCounter::new(seq),
        &Outgoing::Control { flags, range },
    )
    .unwrap();
    d.as_bytes().to_vec()
}

fn data(seq: u32, flags: Flags, repr: &CtRepr) -> Vec<u8> {
    let mut buf = [0u8; 256];
    let mut d = Datagram::new(&mut buf, 256);
    let msg = Outgoing::Ct {
        msg_type: MsgType::CT_NEW,
        flags,
        repr,
    };
    d.push(&mut SeqCounter::new(seq), &msg).unwrap();
    d.as_bytes().to_vec()
}

/// Fires the alive timer.
fn tick(ep: &mut Ep) -> Instant {
    let at = ep.poll_timeout().expect("alive timer armed");
    ep.handle_timeout(at);
    at
}

/// An endpoint past the handshake with peer PEER, whose last accepted seq is `last`.
fn established(t0: Instant, last: u32) -> Ep {
    let mut ep = Ep::new(cfg(), t0);
    feed(
        &mut ep,
        t0,
        PEER,
        &ctl(last, Flags::ALIVE | Flags::HELLO_BACK, None),
    );
    assert!(ep.is_hello_done());
    let _ = std::iter::from_fn(|| ep.poll_event()).count();
    ep
}

fn events(ep: &mut Ep) -> Vec<Event<u32, u8>> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

#[test]
fn test_capture_handshake() {
    // vectors.txt ftfw-multicast #0-#4: two daemons started in the same second.
    let t0 = Instant::now(); // virtual-clock epoch only
    let items = Items::default();
    let x = 0x6b06_c9ac;
    let (mut a, mut sa) = (Ep::new(cfg(), t0), SeqCounter::new(x));
    let (mut b, mut sb) = (Ep::new(cfg(), t0), SeqCounter::new(x));
    // A quiet FTFW daemon's first message: ALIVE|HELLO one second after start.
    assert!(drain(&mut a, t0, &mut sa, &items).is_empty());
    let now = tick(&mut a);
    assert_eq!(now, t0 + Duration::from_secs(1));
    let m0 = drain(&mut a, now, &mut sa, &items);
    assert_eq!(m0, [hex("1a3000086b06c9ac")]);
    // B answers at its own tick: ACK of A's ALIVE, still saying HELLO, plus HELLO_BACK.
    assert_eq!(feed(&mut b, now, PEER, &m0[0]), [Verdict::Control]);
    assert_eq!(events(&mut b), [Event::PeerRestarted { peer: PEER }]);
    let now = tick(&mut b);
    let m1 = drain(&mut b, now, &mut sb, &items);
    assert_eq!(m1, [hex("1a6800106b06c9ac6b06c9ac6b06c9ac")]);
    // A: HELLO_BACK ends its hello; HELLO asks for one HELLO_BACK.
    feed(&mut a, now, PEER, &m1[0]);
    assert!(a.is_hello_done());
    let now = tick(&mut a);
    let m2 = drain(&mut a, now, &mut sa, &items);
    assert_eq!(m2, [hex("1a4800106b06c9ad6b06c9ac6b06c9ac")]);
    feed(&mut b, now, PEER, &m2[0]);
    assert!(b.is_hello_done());
    let now = tick(&mut b);
    let m3 = drain(&mut b, now, &mut sb, &items);
    assert_eq!(m3, [hex("1a0800106b06c9ad6b06c9ad6b06c9ad")]);
    feed(&mut a, now, PEER, &m3[0]);
    let now = tick(&mut a);
    let m4 = drain(&mut a, now, &mut sa, &items);
    assert_eq!(m4, [hex("1a0800106b06c9ae6b06c9ad6b06c9ad")]);
}

/// ftfw-multicast #168-#178: CT_NEW 058 from .1 is lost, .2 NACKs it, .1 resends the same
/// conntrack as 060, both sides ACK. Both roles are replayed and compared byte for byte.
#[rustfmt::skip]
const CAP: [&str; 11] = [
    "1a0800106b06c9fa6b06ca0f6b06ca0f", // #168 .2 ACK seq 034 [055,055]
    "1a0800106b06ca106b06c9fa6b06c9fa", // #169 .1 ACK seq 056 [034,034]
    "1a0800106b06c9fb6b06ca106b06ca10", // #170 .2 ACK seq 035 [056,056]
    "1a1000086b06ca11",                 // #171 .1 ALIVE seq 057
    "100000546b06ca12000c0000c000021ec633641e0008000500000008000500020600000000080003a02800160005000403000000000800060000006400080007000000000010001f000000000000000000000000", // #172 .1 CT_NEW 058 (lost)
    "1a0800106b06c9fc6b06ca116b06ca11", // #173 .2 ACK seq 036 [057,057]
    "100000546b06ca13000c0000c000021fc633641f0008000500000008000500020600000000080003a02900160005000403000000000800060000006400080007000000000010001f000000000000000000000000", // #174 .1 CT_NEW 059
    "1a0400106b06c9fd6b06ca126b06ca12", // #175 .2 NACK seq 037 [058,058]
    "100000546b06ca14000c0000c000021ec633641e0008000500000008000500020600000000080003a02800160005000403000000000800060000006400080007000000000010001f000000000000000000000000", // #176 .1 CT_NEW 060 = 058 resent
    "1a0800106b06c9fe6b06ca136b06ca14", // #177 .2 ACK seq 038 [059,060]
    "1a0800106b06ca156b06c9fb6b06c9fd", // #178 .1 ACK seq 061 [035,037]
];

/// The captured message with HELLO_BACK added: our replay starts mid-session, so the
/// handshake is folded into the first message.
fn with_hello_back(s: &str) -> Vec<u8> {
    let mut b = hex(s);
    b[1] |= Flags::HELLO_BACK.0;
    b
}

#[test]
fn test_capture_nack_sender() {
    let t0 = Instant::now();
    let c: Vec<Vec<u8>> = CAP.iter().map(|s| hex(s)).collect();
    let mut items = Items::default();
    for (key, i) in [(30, 4), (31, 6)] {
        let m = Messages::new(&c[i]).next().unwrap().unwrap();
        items.0.insert(key, (MsgType::CT_NEW, m.ct().unwrap()));
    }
    let mut a = Ep::new(cfg(), t0);
    let mut seq = SeqCounter::new(0x6b06_ca10);
    feed(&mut a, t0, OTHER, &with_hello_back(CAP[0]));
    let now = tick(&mut a);
    assert_eq!(drain(&mut a, now, &mut seq, &items), [c[1].clone()]);
    let now = tick(&mut a); // nothing received: ALIVE
    assert_eq!(drain(&mut a, now, &mut seq, &items), [c[3].clone()]);
    feed(&mut a, now, OTHER, &c[2]);
    a.queue_item(30);
    assert_eq!(drain(&mut a, now, &mut seq, &items), [c[4].clone()]);
    a.queue_item(31);
    assert_eq!(drain(&mut a, now, &mut seq, &items), [c[6].clone()]);
    feed(&mut a, now, OTHER, &c[5]);
    assert_eq!(feed(&mut a, now, OTHER, &c[7]), [Verdict::Control]);
    // The NACKed conntrack goes out again with the next free number.
    assert_eq!(drain(&mut a, now, &mut seq, &items), [c[8].clone()]);
    assert_eq!(a.stats().data_resent, 1);
    let now = tick(&mut a);
    assert_eq!(drain(&mut a, now, &mut seq, &items), [c[10].clone()]);
    // .2's ACK [059,060] releases both conntracks.
    feed(&mut a, now, OTHER, &c[9]);
    let released: Vec<_> = events(&mut a)
        .into_iter()
        .filter_map(|e| match e {
            Event::Released { item, reason } => Some((item, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(released, [(31, Release::Acked), (30, Release::Acked)]);
    assert_eq!(a.unacked_items(), 0);
}

#[test]
fn test_capture_nack_receiver() {
    let t0 = Instant::now();
    let c: Vec<Vec<u8>> = CAP.iter().map(|s| hex(s)).collect();
    let items = Items::default();
    let mut b = Ep::new(cfg(), t0);
    let mut seq = SeqCounter::new(0x6b06_c9fb);
    feed(&mut b, t0, PEER, &with_hello_back(CAP[1]));
    let now = tick(&mut b);
    assert_eq!(drain(&mut b, now, &mut seq, &items), [c[2].clone()]);
    feed(&mut b, now, PEER, &c[3]);
    let now = tick(&mut b);
    assert_eq!(drain(&mut b, now, &mut seq, &items), [c[5].clone()]);
    // 058 never arrives: 059 is applied and 058 NACKed, without an ACK (none pending).
    assert_eq!(feed(&mut b, now, PEER, &c[6]), [Verdict::Data]);
    assert_eq!(drain(&mut b, now, &mut seq, &items), [c[7].clone()]);
    assert_eq!(b.stats().rx_lost, 3, "C counts one lost message as 3");
    assert_eq!(feed(&mut b, now, PEER, &c[8]), [Verdict::Data]);
    let now = tick(&mut b);
    assert_eq!(drain(&mut b, now, &mut seq, &items), [c[9].clone()]);
    // .1's ACK [035,037] releases our ACK 035, ACK 036 and NACK 037; ACK 038 stays.
    assert_eq!(b.resend_len(), 4);
    feed(&mut b, now, PEER, &c[10]);
    assert_eq!(b.resend_len(), 1);
}

#[test]
fn test_gap_nack_exact_range() {
    let t0 = Instant::now();
    let mut ep = established(t0, 99);
    let mut seq = SeqCounter::new(5000);
    let items = Items::default();
    for s in [100, 101] {
        assert_eq!(
            feed(&mut ep, t0, PEER, &data(s, Flags::NONE, &ct(s, 0))),
            [Verdict::Data]
        );
    }
    assert_eq!(
        feed(&mut ep, t0, PEER, &data(105, Flags::NONE, &ct(1, 0))),
        [Verdict::Data]
    );
    // Pending ACK of what came in order first, then the NACK of the hole.
    let s = summary(&drain(&mut ep, t0, &mut seq, &items));
    assert_eq!(
        s,
        [
            (MsgType::CTL, Flags::ACK, 5000, Some((99, 101))),
            (MsgType::CTL, Flags::NACK, 5001, Some((102, 104))),
        ]
    );
    // The message after the gap opened a new window: the next tick ACKs from 105.
    feed(&mut ep, t0, PEER, &ctl(106, Flags::ALIVE, None));
    let now = tick(&mut ep);
    let s = summary(&drain(&mut ep, now, &mut seq, &items));
    assert_eq!(s, [(MsgType::CTL, Flags::ACK, 5002, Some((105, 106)))]);
}

#[test]
fn test_old_and_duplicate_dropped() {
    let t0 = Instant::now();
    let mut ep = established(t0, 10);
    let d = data(11, Flags::NONE, &ct(1, 0));
    assert_eq!(feed(&mut ep, t0, PEER, &d), [Verdict::Data]);
    assert_eq!(feed(&mut ep, t0, PEER, &d), [Verdict::Dropped]);
    assert_eq!(
        feed(&mut ep, t0, PEER, &ctl(3, Flags::ALIVE, None)),
        [Verdict::Dropped]
    );
    assert_eq!(ep.stats().rx_before, 2);
    // `last` did not move: 12 is in order, no NACK.
    assert_eq!(
        feed(&mut ep, t0, PEER, &ctl(12, Flags::ALIVE, None)),
        [Verdict::Control]
    );
    assert_eq!(ep.stats().nacks_queued, 0);
}

#[test]
fn test_nack_resends_current_state_with_new_seq() {
    let t0 = Instant::now();
    let mut ep = established(t0, 10);
    let mut items = Items::default();
    for k in 1..=3 {
        items.0.insert(k, (MsgType::CT_NEW, ct(k, 0)));
        ep.queue_item(k);
    }
    let mut seq = SeqCounter::new(700);
    let s = summary(&drain(&mut ep, t0, &mut seq, &items));
    assert_eq!(s.iter().map(|m| m.2).collect::<Vec<_>>(), [700, 701, 702]);
    // The cache changed item 2 (it is now an update with a new mark) and then its first
    // transmission was reported lost.
    items.0.insert(2, (MsgType::CT_UPD, ct(2, 7)));
    feed(&mut ep, t0, PEER, &ctl(11, Flags::NACK, Some((701, 701))));
    let d = drain(&mut ep, t0, &mut seq, &items);
    let m = Messages::new(&d[0]).next().unwrap().unwrap();
    assert_eq!(m.header.msg_type, MsgType::CT_UPD);
    assert_eq!(m.header.seq, 703, "a retransmission takes a new number");
    assert_eq!(m.ct().unwrap().mark, Some(7));
    assert_eq!(ep.stats().data_resent, 1);
    // A second NACK of the old number finds nothing: the entry now lives at 703.
    feed(&mut ep, t0, PEER, &ctl(12, Flags::NACK, Some((701, 701))));
    assert!(drain(&mut ep, t0, &mut seq, &items).is_empty());
}

#[test]
fn test_ack_window_and_release() {
    let t0 = Instant::now();
    let config = Config {
        ack_window: 3,
        ..cfg()
    };
    let mut ep = Ep::new(config, t0);
    feed(
        &mut ep,
        t0,
        PEER,
        &ctl(9, Flags::ALIVE | Flags::HELLO_BACK, None),
    );
    let items = Items::default();
    let mut seq = SeqCounter::new(40);
    // Message 9 opened the window; the third in-order message closes it with an ACK,
    // without waiting for the timer.
    feed(&mut ep, t0, PEER, &ctl(10, Flags::ALIVE, None));
    assert_eq!(ep.tx_len(), 0);
    feed(&mut ep, t0, PEER, &ctl(11, Flags::ALIVE, None));
    let s = summary(&drain(&mut ep, t0, &mut seq, &items));
    assert_eq!(s, [(MsgType::CTL, Flags::ACK, 40, Some((9, 11)))]);
    // Nothing pending any more: the timer sends ALIVE.
    let now = tick(&mut ep);
    let s = summary(&drain(&mut ep, now, &mut seq, &items));
    assert_eq!(s, [(MsgType::CTL, Flags::ALIVE, 41, None)]);

    // Sender side: an ACK range releases exactly the entries inside it.
    let mut items = Items::default();
    for k in 1..=4 {
        items.0.insert(k, (MsgType::CT_NEW, ct(k, 0)));
        ep.queue_item(k);
    }
    drain(&mut ep, now, &mut seq, &items); // 42..=45
    assert_eq!(ep.resend_len(), 5, "our ACK 40 and four items");
    feed(&mut ep, now, PEER, &ctl(12, Flags::ACK, Some((40, 44))));
    assert_eq!(ep.resend_len(), 1);
    let rel: Vec<_> = events(&mut ep);
    assert_eq!(rel.len(), 3);
    assert!(rel.iter().all(|e| matches!(
        e,
        Event::Released {
            reason: Release::Acked,
            ..
        }
    )));
    // A reversed range is a bad header: ignored, sequence not advanced.
    assert_eq!(
        feed(&mut ep, now, PEER, &ctl(13, Flags::ACK, Some((45, 44)))),
        [Verdict::Bad]
    );
    assert_eq!(ep.resend_len(), 1);
    assert_eq!(
        feed(&mut ep, now, PEER, &ctl(13, Flags::ACK, Some((45, 45)))),
        [Verdict::Control]
    );
    assert_eq!(ep.resend_len(), 0);
    assert_eq!(ep.unacked_items(), 0);
}

#[test]
fn test_alive_timer_rearmed_after_send() {
    let t0 = Instant::now();
    let mut ep = established(t0, 1);
    let s1 = Duration::from_secs(1);
    assert_eq!(ep.poll_timeout(), Some(t0 + s1));
    let mut items = Items::default();
    items.0.insert(1, (MsgType::CT_NEW, ct(1, 0)));
    ep.queue_item(1);
    let later = t0 + Duration::from_millis(700);
    assert_eq!(
        drain(&mut ep, later, &mut SeqCounter::new(1), &items).len(),
        1
    );
    assert_eq!(
        ep.poll_timeout(),
        Some(later + s1),
        "re-armed by the transmit"
    );
    // An early call does nothing.
    ep.handle_timeout(t0 + s1);
    assert_eq!(ep.tx_len(), 0);
}

#[test]
fn test_hello_until_hello_back() {
    let t0 = Instant::now();
    let mut ep = Ep::new(cfg(), t0);
    let mut items = Items::default();
    let mut seq = SeqCounter::new(100);
    for k in 1..=2 {
        items.0.insert(k, (MsgType::CT_NEW, ct(k, 0)));
    }
    ep.queue_item(1);
    let now = tick(&mut ep);
    // Data and control alike carry HELLO while nobody answered.
    let s = summary(&drain(&mut ep, now, &mut seq, &items));
    assert_eq!(
        s,
        [
            (MsgType::CT_NEW, Flags::HELLO, 100, None),
            (MsgType::CTL, Flags::ALIVE | Flags::HELLO, 101, None),
        ]
    );
    // The peer restarted too: its HELLO earns exactly one HELLO_BACK.
    feed(
        &mut ep,
        now,
        PEER,
        &ctl(7, Flags::ALIVE | Flags::HELLO, None),
    );
    ep.queue_item(2);
    let now = tick(&mut ep);
    let s = summary(&drain(&mut ep, now, &mut seq, &items));
    assert_eq!(s[0].1, Flags::HELLO | Flags::HELLO_BACK);
    assert_eq!(s[1].1, Flags::ACK | Flags::HELLO);
    // Its HELLO_BACK ends ours.
    feed(
        &mut ep,
        now,
        PEER,
        &ctl(8, Flags::ALIVE | Flags::HELLO_BACK, None),
    );
    assert!(ep.is_hello_done());
    let now = tick(&mut ep);
    let s = summary(&drain(&mut ep, now, &mut seq, &items));
    assert_eq!(s, [(MsgType::CTL, Flags::ACK, 104, Some((8, 8)))]);
}

#[test]
fn test_peer_restart_keeps_and_retransmits() {
    let t0 = Instant::now();
    let mut ep = established(t0, 500);
    let mut items = Items::default();
    for k in 1..=3 {
        items.0.insert(k, (MsgType::CT_NEW, ct(k, 0)));
        ep.queue_item(k);
    }
    let mut seq = SeqCounter::new(20);
    drain(&mut ep, t0, &mut seq, &items);
    assert_eq!(ep.resend_len(), 3);
    // The peer restarted with a seq far behind what we saw: a new sequence space. The C
    // daemon would empty its resend queue here; we keep it.
    assert_eq!(
        feed(
            &mut ep,
            t0,
            PEER,
            &ctl(3, Flags::ALIVE | Flags::HELLO, None)
        ),
        [Verdict::Control]
    );
    assert_eq!(ep.resend_len(), 3);
    assert_eq!(events(&mut ep), [Event::PeerRestarted { peer: PEER }]);
    // Its next HELLO message continues the new space; no second PeerRestarted. Unlike C,
    // a gap in its HELLO messages is NACKed.
    feed(
        &mut ep,
        t0,
        PEER,
        &ctl(4, Flags::ALIVE | Flags::HELLO, None),
    );
    assert!(events(&mut ep).is_empty());
    feed(
        &mut ep,
        t0,
        PEER,
        &ctl(6, Flags::ALIVE | Flags::HELLO, None),
    );
    assert_eq!(ep.stats().nacks_queued, 1);
    let s = summary(&drain(&mut ep, t0, &mut seq, &items));
    assert!(
        s.iter()
            .any(|m| m.1.contains(Flags::NACK) && m.3 == Some((5, 5))),
        "{s:?}"
    );
    // It can never NACK our three (sent before its restart): it tracks our numbers from
    // the NACK on. Once it acknowledged that and the retransmission timeout passed, the
    // three go again with new numbers.
    feed(&mut ep, t0, PEER, &ctl(7, Flags::ACK, Some((23, 23))));
    let late = t0 + ep.config().retransmit_timeout + Duration::from_millis(10);
    ep.handle_timeout(late);
    let s = summary(&drain(&mut ep, late, &mut seq, &items));
    let data: Vec<_> = s.iter().filter(|m| m.0 == MsgType::CT_NEW).collect();
    assert_eq!(data.len(), 3, "{s:?}");
    assert_eq!(ep.stats().data_overdue, 3);
    assert!(
        events(&mut ep).is_empty(),
        "nothing released unacknowledged"
    );
}

#[test]
fn test_resend_queue_full_drops_oldest() {
    let t0 = Instant::now();
    let config = Config {
        resend_queue_size: 2,
        ..cfg()
    };
    let mut ep = Ep::new(config, t0);
    let mut items = Items::default();
    for k in 1..=3 {
        items.0.insert(k, (MsgType::CT_NEW, ct(k, 0)));
        ep.queue_item(k);
    }
    drain(&mut ep, t0, &mut SeqCounter::new(0), &items);
    assert_eq!(ep.resend_len(), 2);
    assert_eq!(
        events(&mut ep),
        [Event::Released {
            item: 1,
            reason: Release::QueueFull
        }]
    );
    assert_eq!(ep.stats().resend_overflow, 1);
}

#[test]
fn test_requeue_moves_item_back_to_tx() {
    let t0 = Instant::now();
    let mut ep = established(t0, 1);
    let mut items = Items::default();
    items.0.insert(9, (MsgType::CT_NEW, ct(9, 0)));
    ep.queue_item(9);
    ep.queue_item(9); // at most once in the tx queue
    let mut seq = SeqCounter::new(50);
    assert_eq!(summary(&drain(&mut ep, t0, &mut seq, &items)).len(), 1);
    // Destroyed while awaiting its ACK: the DEL replaces the NEW.
    items.0.insert(9, (MsgType::CT_DEL, ct(9, 0)));
    ep.queue_item(9);
    assert_eq!(ep.resend_len(), 0);
    let s = summary(&drain(&mut ep, t0, &mut seq, &items));
    assert_eq!(s, [(MsgType::CT_DEL, Flags::NONE, 51, None)]);
    // The DEL's ACK lets the cache forget the dead object.
    feed(&mut ep, t0, PEER, &ctl(2, Flags::ACK, Some((50, 51))));
    assert_eq!(
        events(&mut ep),
        [Event::Released {
            item: 9,
            reason: Release::Acked
        }]
    );
    // An item gone from the cache before its turn is skipped.
    ep.queue_item(4);
    assert!(drain(&mut ep, t0, &mut seq, &items).is_empty());
    assert_eq!(
        events(&mut ep),
        [Event::Released {
            item: 4,
            reason: Release::Vanished
        }]
    );
}

#[test]
fn test_resync() {
    let t0 = Instant::now();
    let config = Config {
        startup_resync: true,
        ..cfg()
    };
    let mut ep = Ep::new(config, t0);
    let mut seq = SeqCounter::new(0x6b06_c9f3);
    let d = drain(&mut ep, t0, &mut seq, &Items::default());
    // StartupResync: RESYNC right away (with HELLO, as everything before HELLO_BACK).
    assert_eq!(d, [hex("1a2200106b06c9f30000000000000000")]);
    // Kept for retransmission like ACK and NACK.
    assert_eq!(ep.resend_len(), 1);
    // The captured RESYNC (wire-protocol.md §12.3) asks us for a bulk send.
    assert_eq!(
        feed(&mut ep, t0, PEER, &hex("1a0200106b06c9f30000000000000000")),
        [Verdict::Control]
    );
    assert_eq!(events(&mut ep), [Event::ResyncRequested { peer: PEER }]);
}

#[test]
fn test_seq_wraps() {
    let t0 = Instant::now();
    let mut ep = established(t0, u32::MAX - 1);
    for s in [u32::MAX, 0, 1] {
        assert_eq!(
            feed(&mut ep, t0, PEER, &ctl(s, Flags::ALIVE, None)),
            [Verdict::Control]
        );
    }
    assert_eq!(ep.stats().nacks_queued, 0);
    let now = tick(&mut ep);
    let s = summary(&drain(
        &mut ep,
        now,
        &mut SeqCounter::new(u32::MAX),
        &Items::default(),
    ));
    assert_eq!(
        s,
        [(MsgType::CTL, Flags::ACK, u32::MAX, Some((u32::MAX - 1, 1)))]
    );
    // Our own counter wrapped too; ranges across the wrap release correctly.
    feed(
        &mut ep,
        now,
        PEER,
        &ctl(2, Flags::ACK, Some((u32::MAX - 3, 3))),
    );
    assert_eq!(ep.resend_len(), 0);
}

#[test]
fn test_per_sender_tracking() {
    // Two senders with unrelated sequence spaces, interleaved as on a multicast group.
    // One shared tracker (the C daemon) would see gaps and drops; ours sees two clean
    // streams.
    let t0 = Instant::now();
    let mut ep = Ep::new(cfg(), t0);
    for i in 0..10 {
        assert_eq!(
            feed(&mut ep, t0, PEER, &ctl(1000 + i, Flags::ALIVE, None)),
            [Verdict::Control]
        );
        assert_eq!(
            feed(&mut ep, t0, OTHER, &ctl(9_000_000 + i, Flags::ALIVE, None)),
            [Verdict::Control]
        );
    }
    assert_eq!(ep.stats().nacks_queued, 0);
    assert_eq!(ep.stats().rx_before, 0);
    // The timer acknowledges each sender's range.
    let now = tick(&mut ep);
    let s = summary(&drain(
        &mut ep,
        now,
        &mut SeqCounter::new(1),
        &Items::default(),
    ));
    assert_eq!(
        s.iter().map(|m| m.3.unwrap()).collect::<Vec<_>>(),
        [(1000, 1009), (9_000_000, 9_000_009)]
    );
}

#[test]
fn test_datagram_packing() {
    let t0 = Instant::now();
    let config = Config {
        link_buffer: 200,
        ..cfg()
    };
    let mut ep = Ep::new(config, t0);
    let mut items = Items::default();
    for k in 0..10 {
        items.0.insert(k, (MsgType::CT_NEW, ct(k, 0)));
        ep.queue_item(k);
    }
    let d = drain(&mut ep, t0, &mut SeqCounter::new(0), &items);
    assert!(d.len() > 1);
    assert!(d.iter().all(|d| d.len() < 200));
    let s = summary(&d);
    assert_eq!(s.len(), 10);
    assert!(s.iter().enumerate().all(|(i, m)| m.2 == i as u32));
    assert_eq!(ep.stats().datagrams_sent, d.len() as u64);
}

#[test]
fn test_handle_datagram() {
    let t0 = Instant::now();
    let mut ep = Ep::new(cfg(), t0);
    let mut dg = data(1, Flags::HELLO, &ct(5, 3));
    dg.extend(ctl(2, Flags::ALIVE, None));
    dg.extend(data(3, Flags::NONE, &ct(6, 4)));
    let mut got = Vec::new();
    ep.handle_datagram(t0, &PEER, &dg, |m| got.push(m.ct().unwrap().mark))
        .unwrap();
    assert_eq!(got, [Some(3), Some(4)]);
    // A zero length ends the datagram with an error.
    let mut bad = ctl(4, Flags::ALIVE, None);
    bad.extend([0x1a, 0x10, 0, 0, 0, 0, 0, 5]);
    assert!(ep.handle_datagram(t0, &PEER, &bad, |_| ()).is_err());
    assert_eq!(ep.stats().rx_malformed, 1);
}

#[test]
fn test_release_waits_for_every_live_peer() {
    let t0 = Instant::now();
    let mut ep = established(t0, 10);
    feed(&mut ep, t0, OTHER, &ctl(500, Flags::ALIVE, None));
    let mut items = Items::default();
    for k in 1..=2 {
        items.0.insert(k, (MsgType::CT_NEW, ct(k, 0)));
        ep.queue_item(k);
    }
    let mut seq = SeqCounter::new(70);
    drain(&mut ep, t0, &mut seq, &items); // 70, 71
    // PEER has both, OTHER only the first so far: item 2 must stay for OTHER's NACK.
    feed(&mut ep, t0, PEER, &ctl(11, Flags::ACK, Some((70, 71))));
    assert_eq!(ep.resend_len(), 2);
    feed(&mut ep, t0, OTHER, &ctl(501, Flags::ACK, Some((70, 70))));
    assert_eq!(ep.resend_len(), 1);
    feed(&mut ep, t0, OTHER, &ctl(502, Flags::NACK, Some((71, 71))));
    let s = summary(&drain(&mut ep, t0, &mut seq, &items));
    assert_eq!(s, [(MsgType::CT_NEW, Flags::NONE, 72, None)]);
    // OTHER falls silent: after peer_timeout only PEER's ACK is needed.
    let later = t0 + Duration::from_secs(6);
    feed(&mut ep, later, PEER, &ctl(12, Flags::ACK, Some((72, 72))));
    assert_eq!(ep.resend_len(), 0);
    assert_eq!(ep.unacked_items(), 0);

    // An entry acked by PEER while OTHER was live is released by the timer's sweep once
    // OTHER has been silent for peer_timeout.
    let mut ep = established(t0, 10);
    feed(&mut ep, t0, OTHER, &ctl(500, Flags::ALIVE, None));
    ep.queue_item(1);
    drain(&mut ep, t0, &mut seq, &items); // 73
    feed(&mut ep, t0, PEER, &ctl(11, Flags::ACK, Some((73, 73))));
    assert_eq!(ep.unacked_items(), 1);
    for s in 12..20 {
        let now = tick(&mut ep);
        feed(&mut ep, now, PEER, &ctl(s, Flags::ALIVE, None));
    }
    assert_eq!(ep.unacked_items(), 0);
}

#[test]
fn test_restart_of_one_peer_keeps_what_others_owe() {
    let t0 = Instant::now();
    let mut ep = established(t0, 10);
    feed(&mut ep, t0, OTHER, &ctl(500, Flags::ALIVE, None));
    let mut items = Items::default();
    items.0.insert(1, (MsgType::CT_NEW, ct(1, 0)));
    ep.queue_item(1);
    let mut seq = SeqCounter::new(80);
    drain(&mut ep, t0, &mut seq, &items);
    // OTHER restarts: it cannot NACK seq 80 any more, but PEER still can.
    feed(
        &mut ep,
        t0,
        OTHER,
        &ctl(3, Flags::ALIVE | Flags::HELLO, None),
    );
    assert_eq!(ep.resend_len(), 1);
    feed(&mut ep, t0, PEER, &ctl(11, Flags::NACK, Some((80, 80))));
    let s = summary(&drain(&mut ep, t0, &mut seq, &items));
    assert_eq!(s[0].0, MsgType::CT_NEW, "resent for PEER");
}

#[test]
fn test_settled_waits_for_data_acks_only() {
    let t0 = Instant::now();
    let mut ep = established(t0, 500);
    assert!(ep.is_settled(t0));
    let mut items = Items::default();
    items.0.insert(1, (MsgType::CT_NEW, ct(1, 0)));
    ep.queue_item(1);
    assert!(!ep.is_settled(t0), "queued");
    let mut seq = SeqCounter::new(20);
    drain(&mut ep, t0, &mut seq, &items);
    assert!(!ep.is_settled(t0), "sent, not acknowledged");
    feed(&mut ep, t0, PEER, &ctl(501, Flags::ACK, Some((20, 20))));
    assert!(ep.is_settled(t0));
    // A peer gone silent holds nothing back.
    ep.queue_item(1);
    drain(&mut ep, t0, &mut seq, &items);
    assert!(!ep.is_settled(t0));
    let later = t0 + ep.config().peer_timeout + Duration::from_secs(1);
    assert!(ep.is_settled(later));
}
