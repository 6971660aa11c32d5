//! A netem substitute for the sync link: a seeded, impairing UDP relay in its own namespace.
//!
//! This kernel has no `sch_netem` (and no nft queue), so loss, duplication and reordering
//! are made in user space. Two firewalls A and B each get a veth to a relay namespace R on
//! its own subnet; each daemon's UDP `Destination_Address` is R's address on its side. R
//! forwards what arrives on one side to the firewall on the other, deciding per datagram,
//! from a seeded generator, whether to drop, duplicate or hold it back (reorder).
//!
//! The relay's sockets are opened inside R ([`NetNs::run_in`]); the threads that use them
//! may run anywhere, as a socket stays in the namespace it was created in. Nothing here
//! ever opens a socket in the host namespace.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::netns::{NetNs, Veth};

/// Per-datagram probabilities, in percent (netem's `loss`, `duplicate`, `reorder`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Impairment {
    /// Chance that a datagram is dropped.
    pub(crate) loss: u32,
    /// Chance that a datagram that is not dropped is sent twice.
    pub(crate) duplicate: u32,
    /// Chance that a datagram that is not dropped is held back and released after the next
    /// datagram that is not held (or after [`HOLD_TIMEOUT`] if none comes).
    pub(crate) reorder: u32,
}

impl Impairment {
    /// `tc netem loss 10% reorder 25% duplicate 5%`.
    pub(crate) const NETEM_10_25_5: Self = Self {
        loss: 10,
        duplicate: 5,
        reorder: 25,
    };
}

/// How long a held datagram waits for a later one to overtake it before it goes out anyway,
/// so that a lone datagram (an ACK at the end of a burst) is delayed, not lost.
pub(crate) const HOLD_TIMEOUT: Duration = Duration::from_millis(20);

/// What happens to one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Never forwarded.
    Drop,
    /// Forwarded, `dup` = twice, `hold` = after the next forwarded datagram.
    Pass { dup: bool, hold: bool },
}

/// splitmix64: a tiny, well-mixed generator, so the relay needs no extra crate and a seed
/// fixes every decision.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u32) -> bool {
        // 2^64 is divisible by neither 100 nor anything useful, but the bias of `% 100` on a
        // 64-bit value is below 1e-17: irrelevant here.
        (self.next_u64() % 100) < u64::from(percent)
    }
}

/// The decision stream of one direction: each call decides the next datagram's fate.
#[derive(Clone, Debug)]
pub(crate) struct Decider {
    rng: Rng,
    imp: Impairment,
}

impl Decider {
    pub(crate) fn new(seed: u64, imp: Impairment) -> Self {
        Self {
            rng: Rng::new(seed),
            imp,
        }
    }

    /// Always draws three numbers, so that one decision never shifts the stream of the
    /// others (changing `duplicate` leaves which datagrams are dropped unchanged).
    pub(crate) fn decide(&mut self) -> Fate {
        let drop = self.rng.chance(self.imp.loss);
        let dup = self.rng.chance(self.imp.duplicate);
        let hold = self.rng.chance(self.imp.reorder);
        if drop {
            Fate::Drop
        } else {
            Fate::Pass { dup, hold }
        }
    }
}

/// What one direction of the relay did, counted as it happened.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Datagrams received from the sending firewall.
    pub(crate) received: AtomicU64,
    /// Dropped (never sent).
    pub(crate) dropped: AtomicU64,
    /// Sent a second time.
    pub(crate) duplicated: AtomicU64,
    /// Held back and sent after a later datagram.
    pub(crate) reordered: AtomicU64,
    /// Held back, but released by [`HOLD_TIMEOUT`] because nothing came after them.
    pub(crate) released_late: AtomicU64,
    /// Datagrams sent to the receiving firewall (duplicates included).
    pub(crate) sent: AtomicU64,
    /// `send_to` failures (e.g. the receiver's neighbour entry not resolved yet).
    pub(crate) send_errors: AtomicU64,
    /// Sync messages seen in received datagrams (a datagram carries one or more), counted
    /// as the sender sent them, before any impairment.
    pub(crate) data_msgs: AtomicU64,
    /// Data messages whose body (everything after the 8-byte header, which holds the
    /// sequence number) the sender had already sent: retransmissions of an unchanged
    /// object, whatever sequence number they carry. Both implementations renumber a
    /// retransmitted object, so this is the way to count resends from outside.
    pub(crate) data_repeats: AtomicU64,
    /// Control messages with the NACK flag.
    pub(crate) nacks: AtomicU64,
    /// Control messages with the ACK flag.
    pub(crate) acks: AtomicU64,
    /// Messages (data or control) with the HELLO flag: the sender has not yet had a
    /// HELLO_BACK, and its peer accepts these without sequence checks and empties its own
    /// resend queue on each (sync-modes.md §2.3 step 1).
    pub(crate) hellos: AtomicU64,
    /// Messages with the HELLO_BACK flag.
    pub(crate) hello_backs: AtomicU64,
    /// When the last HELLO-flagged message arrived, in ms since the relay started (0: none).
    pub(crate) last_hello_ms: AtomicU64,
    /// Datagrams dropped because they carried a HELLO_BACK while
    /// [`Relay::block_hello_back`] was on (not counted in `dropped`).
    pub(crate) blocked: AtomicU64,
    /// The switch of [`Relay::block_hello_back`] for this direction.
    block_hello_back: AtomicBool,
}

/// A plain copy of [`Counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) received: u64,
    pub(crate) dropped: u64,
    pub(crate) duplicated: u64,
    pub(crate) reordered: u64,
    pub(crate) released_late: u64,
    pub(crate) sent: u64,
    pub(crate) send_errors: u64,
    pub(crate) data_msgs: u64,
    pub(crate) data_repeats: u64,
    pub(crate) nacks: u64,
    pub(crate) acks: u64,
    pub(crate) hellos: u64,
    pub(crate) hello_backs: u64,
    pub(crate) last_hello_ms: u64,
    pub(crate) blocked: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Snapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            received: g(&self.received),
            dropped: g(&self.dropped),
            duplicated: g(&self.duplicated),
            reordered: g(&self.reordered),
            released_late: g(&self.released_late),
            sent: g(&self.sent),
            send_errors: g(&self.send_errors),
            data_msgs: g(&self.data_msgs),
            data_repeats: g(&self.data_repeats),
            nacks: g(&self.nacks),
            acks: g(&self.acks),
            hellos: g(&self.hellos),
            hello_backs: g(&self.hello_backs),
            last_hello_ms: g(&self.last_hello_ms),
            blocked: g(&self.blocked),
        }
    }
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "received={} dropped={} duplicated={} reordered={} (released by timeout {}) \
             sent={} send_errors={}; sender's messages: data={} repeated={} nack={} ack={} \
             hello={} (last at {} ms) hello_back={}; HELLO_BACK datagrams blocked={}",
            self.received,
            self.dropped,
            self.duplicated,
            self.reordered,
            self.released_late,
            self.sent,
            self.send_errors,
            self.data_msgs,
            self.data_repeats,
            self.nacks,
            self.acks,
            self.hellos,
            self.last_hello_ms,
            self.hello_backs,
            self.blocked
        )
    }
}

/// Counts the sync messages of one received datagram (wire-protocol.md §1-3: messages back
/// to back, each with an 8-byte header whose BE16 `len` at offset 2 covers the message;
/// type in the low nibble of byte 0, 10 = control; flags in byte 1). Stops at the first
/// header that does not parse: the relay forwards whatever it gets, valid or not.
/// Returns whether some message carried HELLO_BACK.
fn census(d: &[u8], seen: &mut HashSet<u64>, c: &Counters, started: Instant) -> bool {
    const NET_T_CTL: u8 = 10;
    const NET_F_HELLO: u8 = 0x20;
    const NET_F_HELLO_BACK: u8 = 0x40;
    const NET_F_NACK: u8 = 0x04;
    const NET_F_ACK: u8 = 0x08;
    let mut rest = d;
    let mut hello_back = false;
    while rest.len() >= 8 {
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        if len < 8 || len > rest.len() {
            break;
        }
        let (msg, tail) = rest.split_at(len);
        if msg[1] & NET_F_HELLO != 0 {
            c.hellos.fetch_add(1, Ordering::Relaxed);
            let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            c.last_hello_ms.store(ms.max(1), Ordering::Relaxed);
        }
        if msg[1] & NET_F_HELLO_BACK != 0 {
            c.hello_backs.fetch_add(1, Ordering::Relaxed);
            hello_back = true;
        }
        if msg[0] & 0x0f == NET_T_CTL {
            if msg[1] & NET_F_NACK != 0 {
                c.nacks.fetch_add(1, Ordering::Relaxed);
            }
            if msg[1] & NET_F_ACK != 0 {
                c.acks.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            c.data_msgs.fetch_add(1, Ordering::Relaxed);
            let mut h = DefaultHasher::new();
            (msg[0], &msg[8..]).hash(&mut h);
            if !seen.insert(h.finish()) {
                c.data_repeats.fetch_add(1, Ordering::Relaxed);
            }
        }
        rest = tail;
    }
    hello_back
}

/// The forwarding loop of one direction: `from` receives what one firewall sends, `to`
/// (the socket on the other side) sends it on to `dest`.
fn forward(
    from: UdpSocket,
    to: Arc<UdpSocket>,
    dest: SocketAddr,
    mut decider: Decider,
    counters: Arc<Counters>,
    impaired: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    // A short read timeout doubles as the hold timer's tick and the stop check.
    from.set_read_timeout(Some(Duration::from_millis(5)))
        .expect("set relay read timeout");
    let mut held: VecDeque<Vec<u8>> = VecDeque::new();
    let mut held_since = Instant::now();
    let mut buf = vec![0u8; 65_536];
    let mut seen = HashSet::new();
    let started = Instant::now();
    let send = |d: &[u8]| match to.send_to(d, dest) {
        Ok(_) => {
            counters.sent.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            counters.send_errors.fetch_add(1, Ordering::Relaxed);
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let n = match from.recv(&mut buf) {
            Ok(n) => Some(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                None
            }
            Err(e) => panic!("relay recv: {e}"),
        };
        if let Some(n) = n {
            counters.received.fetch_add(1, Ordering::Relaxed);
            let d = &buf[..n];
            let hello_back = census(d, &mut seen, &counters, started);
            let blocked = hello_back && counters.block_hello_back.load(Ordering::Relaxed);
            // While impairment is off nothing is drawn, so the seeded stream starts with
            // the first impaired datagram; a blocked datagram draws nothing either.
            let fate = if blocked {
                counters.blocked.fetch_add(1, Ordering::Relaxed);
                None
            } else if impaired.load(Ordering::Relaxed) {
                Some(decider.decide())
            } else {
                Some(Fate::Pass {
                    dup: false,
                    hold: false,
                })
            };
            match fate {
                None => {}
                Some(Fate::Drop) => {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Some(Fate::Pass { dup, hold }) => {
                    if dup {
                        counters.duplicated.fetch_add(1, Ordering::Relaxed);
                    }
                    let copies = if dup { 2 } else { 1 };
                    if hold {
                        if held.is_empty() {
                            held_since = Instant::now();
                        }
                        for _ in 0..copies {
                            held.push_back(d.to_vec());
                        }
                    } else {
                        for _ in 0..copies {
                            send(d);
                        }
                        // Everything held is now behind a later datagram: reordered.
                        while let Some(h) = held.pop_front() {
                            counters.reordered.fetch_add(1, Ordering::Relaxed);
                            send(&h);
                        }
                    }
                }
            }
        }
        if !held.is_empty() && held_since.elapsed() >= HOLD_TIMEOUT {
            while let Some(h) = held.pop_front() {
                counters.released_late.fetch_add(1, Ordering::Relaxed);
                send(&h);
            }
        }
    }
}

/// A running relay between two firewalls, stopped on drop.
///
/// The topology it builds: `a` ⇄ veth `<net_a>` ⇄ relay namespace ⇄ veth `<net_b>` ⇄ `b`,
/// with `a` at `10.232.<net_a>.1`, the relay at `.2` on both subnets and `b` at
/// `10.232.<net_b>.1`. The firewalls' interface is `rl` in both.
#[derive(Debug)]
pub(crate) struct Relay {
    /// A -> B and B -> A counters.
    pub(crate) a_to_b: Arc<Counters>,
    pub(crate) b_to_a: Arc<Counters>,
    impaired: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    // Dropped last: the namespace outlives the threads using its sockets.
    ns: NetNs,
}

/// The firewall-side interface name [`Relay::start`] creates in `a` and `b`.
pub(crate) const IFACE: &str = "rl";

/// Addresses of one [`Relay`] topology.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Subnets {
    pub(crate) net_a: u8,
    pub(crate) net_b: u8,
}

impl Subnets {
    /// A firewall's own address (`side` is `'a'` or `'b'`).
    pub(crate) fn node(&self, side: char) -> String {
        format!("10.232.{}.1", self.net(side))
    }

    /// The relay's address on `side`'s subnet: that firewall's sync destination.
    pub(crate) fn relay(&self, side: char) -> String {
        format!("10.232.{}.2", self.net(side))
    }

    fn net(&self, side: char) -> u8 {
        if side == 'a' { self.net_a } else { self.net_b }
    }
}

impl Relay {
    /// Creates the relay namespace, links `a` and `b` to it, and starts forwarding UDP
    /// `port` in both directions with `imp`, the two directions seeded `seed` and `seed + 1`.
    pub(crate) fn start(
        a: &NetNs,
        b: &NetNs,
        nets: Subnets,
        port: u16,
        imp: Impairment,
        seed: u64,
    ) -> Self {
        super::contain_test_ranges();
        // No conntrack in the relay: no rule uses it, so nothing there is tracked.
        let ns = NetNs::new("relay");
        let _va = Veth::connect(
            a,
            IFACE,
            &format!("{}/24", nets.node('a')),
            &ns,
            "ra",
            &format!("{}/24", nets.relay('a')),
        );
        let _vb = Veth::connect(
            b,
            IFACE,
            &format!("{}/24", nets.node('b')),
            &ns,
            "rb",
            &format!("{}/24", nets.relay('b')),
        );
        let bind =
            |side: char| -> SocketAddr { format!("{}:{port}", nets.relay(side)).parse().unwrap() };
        let (sa, sb) = ns.run_in(|| {
            (
                UdpSocket::bind(bind('a')).expect("bind relay socket, side a"),
                UdpSocket::bind(bind('b')).expect("bind relay socket, side b"),
            )
        });
        let dest =
            |side: char| -> SocketAddr { format!("{}:{port}", nets.node(side)).parse().unwrap() };
        let sa_send = Arc::new(sa.try_clone().expect("clone relay socket"));
        let sb_send = Arc::new(sb.try_clone().expect("clone relay socket"));
        let stop = Arc::new(AtomicBool::new(false));
        let impaired = Arc::new(AtomicBool::new(true));
        let a_to_b = Arc::new(Counters::default());
        let b_to_a = Arc::new(Counters::default());
        let spawn = |from, to, dest, seed, counters: &Arc<Counters>| {
            let (counters, stop) = (Arc::clone(counters), Arc::clone(&stop));
            let impaired = Arc::clone(&impaired);
            let decider = Decider::new(seed, imp);
            thread::Builder::new()
                .name("relay".into())
                .spawn(move || forward(from, to, dest, decider, counters, impaired, stop))
                .expect("spawn relay thread")
        };
        let threads = vec![
            spawn(sa, sb_send, dest('b'), seed, &a_to_b),
            spawn(sb, sa_send, dest('a'), seed.wrapping_add(1), &b_to_a),
        ];
        Self {
            a_to_b,
            b_to_a,
            impaired,
            stop,
            threads,
            ns,
        }
    }

    /// Turns impairment on (the default) or off: off, every datagram passes in order, and
    /// the seeded decisions wait for it to be back on.
    pub(crate) fn set_impaired(&self, on: bool) {
        self.impaired.store(on, Ordering::Relaxed);
    }

    /// While on, datagrams from `side` (`'a'` or `'b'`) that carry a HELLO_BACK are
    /// dropped, whatever the impairment says: the other side's HELLO then stays pending
    /// (it keeps setting HELLO on everything it sends), as after an unlucky loss.
    pub(crate) fn block_hello_back(&self, side: char, on: bool) {
        let c = if side == 'a' {
            &self.a_to_b
        } else {
            &self.b_to_a
        };
        c.block_hello_back.store(on, Ordering::Relaxed);
    }

    /// The relay's namespace (for `ip`/`nft` inspection while debugging).
    pub(crate) fn ns(&self) -> &NetNs {
        &self.ns
    }

    /// Both directions' counters on one line each.
    pub(crate) fn report(&self) -> String {
        format!(
            "relay a->b: {}\nrelay b->a: {}",
            self.a_to_b.snapshot(),
            self.b_to_a.snapshot()
        )
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            // A relay thread that panicked has said why on stderr already; a second panic
            // here (maybe during unwinding) would abort.
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(seed: u64, n: usize) -> (usize, usize, usize) {
        let mut d = Decider::new(seed, Impairment::NETEM_10_25_5);
        let (mut drop, mut dup, mut hold) = (0, 0, 0);
        for _ in 0..n {
            match d.decide() {
                Fate::Drop => drop += 1,
                Fate::Pass { dup: u, hold: h } => {
                    dup += usize::from(u);
                    hold += usize::from(h);
                }
            }
        }
        (drop, dup, hold)
    }

    /// The decisions are a pure function of the seed, and over many datagrams they come
    /// close to the configured percentages (of all datagrams for loss, of the passed ones
    /// for duplicate and reorder).
    #[test]
    fn relay_decisions_are_seeded_and_proportional() {
        const N: usize = 100_000;
        let (drop, dup, hold) = count(7, N);
        // Pinned for seed 7: a change to the generator or to the order of the draws shows
        // here (and would change every lossy test's impairment pattern).
        assert_eq!((drop, dup, hold), (9956, 4458, 22584));
        assert_eq!(count(7, N), (drop, dup, hold), "same seed, same decisions");
        assert_ne!(count(7, 1000), count(8, 1000), "the seed matters");
        let passed = N - drop;
        let pct = |x: usize, of: usize| 100.0 * x as f64 / of as f64;
        assert!((9.5..10.5).contains(&pct(drop, N)), "loss {drop}/{N}");
        assert!(
            (4.5..5.5).contains(&pct(dup, passed)),
            "duplicate {dup}/{passed}"
        );
        assert!(
            (24.5..25.5).contains(&pct(hold, passed)),
            "reorder {hold}/{passed}"
        );
        // Zero percent means never; 100 means always.
        let mut none = Decider::new(
            1,
            Impairment {
                loss: 0,
                duplicate: 0,
                reorder: 0,
            },
        );
        let mut all = Decider::new(
            1,
            Impairment {
                loss: 100,
                duplicate: 100,
                reorder: 100,
            },
        );
        for _ in 0..1000 {
            assert_eq!(
                none.decide(),
                Fate::Pass {
                    dup: false,
                    hold: false
                }
            );
            assert_eq!(all.decide(), Fate::Drop);
        }
    }

    /// End to end through the namespaces: numbered datagrams from A arrive at B exactly as
    /// a replay of the seeded decisions predicts (which ones, how often), some out of
    /// order, and the counters agree with what arrived.
    #[test]
    fn relay_forwards_as_decided() {
        const N: u32 = 2000;
        const PORT: u16 = 3900;
        const SEED: u64 = 11;
        let a = NetNs::new("rta");
        let b = NetNs::new("rtb");
        let nets = Subnets {
            net_a: 210,
            net_b: 211,
        };
        let relay = Relay::start(&a, &b, nets, PORT, Impairment::NETEM_10_25_5, SEED);
        let rx = b.run_in(|| UdpSocket::bind(format!("{}:{PORT}", nets.node('b'))).unwrap());
        rx.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let tx = a.run_in(|| UdpSocket::bind(format!("{}:0", nets.node('a'))).unwrap());
        let to = format!("{}:{PORT}", nets.relay('a'));
        // The first datagram resolves the neighbours on both hops; send it until it
        // arrives, outside the numbered series (the relay counts it, so offsets below).
        let mut warmup = 0u64;
        let mut buf = [0u8; 16];
        loop {
            tx.send_to(&u32::MAX.to_be_bytes(), &to).unwrap();
            warmup += 1;
            if rx.recv(&mut buf).is_ok() {
                break;
            }
            assert!(warmup < 20, "nothing crosses the relay\n{}", relay.report());
        }
        // Drain duplicates or late copies of the warm-up datagrams.
        while rx.recv(&mut buf).is_ok() {}
        let base = relay.a_to_b.snapshot();
        assert_eq!(base.received, warmup, "{}", relay.report());
        // Replay the same decision stream past the warm-up datagrams.
        let mut replay = Decider::new(SEED, Impairment::NETEM_10_25_5);
        for _ in 0..warmup {
            replay.decide();
        }
        // B reads while A sends: a 2000-datagram backlog would overflow its receive buffer.
        let reader = thread::spawn(move || {
            let mut got = vec![0u8; N as usize];
            let mut inversions = 0;
            let mut last = None;
            let mut buf = [0u8; 16];
            // The 500 ms read timeout ends the series once A has stopped.
            while let Ok(n) = rx.recv(&mut buf) {
                let i = u32::from_be_bytes(buf[..n].try_into().unwrap());
                got[i as usize] += 1;
                if last.is_some_and(|l| i < l) {
                    inversions += 1;
                }
                last = Some(i);
            }
            (got, inversions)
        });
        let mut want = vec![0u8; N as usize];
        for i in 0..N {
            // Paced a little so that the relay's receive buffer never overflows: loss
            // here must be the relay's decision only.
            if i % 50 == 0 {
                thread::sleep(Duration::from_millis(2));
            }
            tx.send_to(&i.to_be_bytes(), &to).unwrap();
            want[i as usize] = match replay.decide() {
                Fate::Drop => 0,
                Fate::Pass { dup, .. } => 1 + u8::from(dup),
            };
        }
        let (got, inversions) = reader.join().unwrap();
        let differ: Vec<(usize, u8, u8)> = (0..N as usize)
            .filter(|&i| got[i] != want[i])
            .map(|i| (i, want[i], got[i]))
            .take(20)
            .collect();
        assert!(
            differ.is_empty(),
            "arrivals differ from the seeded decisions (index, want, got): {differ:?}\n{}",
            relay.report()
        );
        let s = relay.a_to_b.snapshot();
        assert_eq!(
            s.received - base.received,
            u64::from(N),
            "{}",
            relay.report()
        );
        let arrived: u64 = got.iter().map(|&c| u64::from(c)).sum();
        assert_eq!(arrived, s.sent - base.sent, "{}", relay.report());
        assert_eq!(s.send_errors, 0, "{}", relay.report());
        let dropped = got.iter().filter(|&&c| c == 0).count() as u64;
        assert_eq!(dropped, s.dropped - base.dropped);
        assert!(
            inversions > 0 && s.reordered > 0,
            "no reordering seen\n{}",
            relay.report()
        );
        println!(
            "RELAY {N} datagrams: {inversions} inversions seen by B\n{}",
            relay.report()
        );
    }
}
