//! The link thread's per-event work, on one thread: transmit requests in, FTFW datagrams out,
//! the peer's ACKs back in.
//!
//! `runtime::sender::LinkThread` keeps the latest payload per [`TxKey`] in a hash map (its
//! `Pending`, the [`Source`] FTFW serialises from) and FTFW keeps each key's queue position in
//! another (`loc`). Every replicated event therefore costs the link thread several lookups keyed
//! by `TxKey`: insert into `Pending`, `queue_item`, the `Source::message` lookup at
//! transmission, the move to the resend queue, and on the ACK the release and the removal from
//! `Pending`. This bench runs exactly that sequence, with the sender's map type, for the churn
//! shape of `micro-hotpath` (every flow NEW, UPDATE, DESTROY, about `--live` alive):
//!
//! 1. per batch of 64 requests (one worker ring batch): `Pending` insert + `Ftfw::queue_item`;
//! 2. `Ftfw::poll_transmit` until the queue is empty, into 1472-byte datagrams, handling the
//!    endpoint's events after each call as `LinkThread::transmit` does;
//! 3. the peer ACKs every `ACKWindowSize` (300) messages, as the C receiver does: one ACK
//!    datagram through `Ftfw::handle_datagram`, and each `Released` event removes the payload.
//!
//! Not included: building the requests (the worker's side), the ring hop, the syscalls.
//!
//! `perf/callgrind.sh --bench micro-link` counts the instructions of `link_events` only.
//!
//! Run: `cargo run --release -p conntrackd-bench --bin micro-link [-- --flows N --live L --runs R]`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use conntrackd::cache::CtKey;
use conntrackd::cache::convert::{SendPolicy, wire_from_kernel};
use conntrackd::runtime::worker::{TxKey, TxPayload};
use conntrackd::sync::ftfw::{self, Event, Ftfw, Source};
use conntrackd::wire::header::SeqRange;
use conntrackd::wire::{Datagram, Flags, MsgType, Outgoing, SeqCounter};
use conntrackd_bench::flows::flow;
use conntrackd_bench::{Opts, header, measure_with, row};

/// Requests per worker ring batch.
const BATCH: usize = 64;
/// The peer's `ACKWindowSize` (the default).
const ACK_WINDOW: u32 = 300;
/// The link buffer of a 1500-byte MTU (UDP/multicast).
const LINK_BUFFER: usize = 1472;

/// The sender's `Pending`: latest payload per key, as long as the endpoint references it.
struct Pending(hashbrown::HashMap<TxKey, (MsgType, TxPayload), ahash::RandomState>);

impl Source<TxKey> for Pending {
    fn message(&self, key: &TxKey) -> Option<Outgoing<'_>> {
        self.0.get(key).map(|(msg_type, p)| match p {
            TxPayload::Ct(repr) => Outgoing::Ct {
                msg_type: *msg_type,
                flags: Flags::NONE,
                repr,
            },
            TxPayload::Exp(repr) => Outgoing::Exp {
                msg_type: *msg_type,
                flags: Flags::NONE,
                repr,
            },
        })
    }
}

/// One transmit request as a worker hands it over.
struct Request {
    key: TxKey,
    msg_type: MsgType,
    repr: TxPayload,
}

/// The link thread's state.
struct Link {
    ep: Ftfw<TxKey, IpAddr>,
    pending: Pending,
    seq: SeqCounter,
    buf: Vec<u8>,
    now: Instant,
    peer: IpAddr,
    /// The peer's own sequence counter, for its ACKs.
    peer_seq: SeqCounter,
    /// First of our sequence numbers the peer has not acknowledged yet.
    unacked_from: u32,
    datagrams: u64,
    released: u64,
}

impl Link {
    fn new() -> Self {
        let now = Instant::now();
        let config = ftfw::Config {
            link_buffer: LINK_BUFFER,
            // No timer fires during a run.
            alive_interval: Duration::from_secs(3600),
            peer_timeout: Duration::from_secs(3600),
            ..ftfw::Config::default()
        };
        let first = 1_795_606_956;
        let mut l = Self {
            ep: Ftfw::new(config, now),
            pending: Pending(hashbrown::HashMap::default()),
            seq: SeqCounter::new(first),
            buf: vec![0; LINK_BUFFER],
            now,
            peer: IpAddr::V4(Ipv4Addr::new(10, 231, 0, 2)),
            peer_seq: SeqCounter::new(7),
            unacked_from: first,
            datagrams: 0,
            released: 0,
        };
        // The peer says hello once, so that it counts as a live peer whose ACKs release.
        l.peer_sends(Flags::ALIVE | Flags::HELLO | Flags::HELLO_BACK, None);
        l
    }

    /// One control message from the peer.
    fn peer_sends(&mut self, flags: Flags, range: Option<SeqRange>) {
        let mut b = [0u8; 32];
        let mut d = Datagram::new(&mut b, 32);
        let msg = Outgoing::Control { flags, range };
        d.push(&mut self.peer_seq, &msg)
            .expect("a control message fits");
        let n = d.len();
        self.ep
            .handle_datagram(self.now, &self.peer, &b[..n], |_| {})
            .expect("well-formed");
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(ev) = self.ep.poll_event() {
            if let Event::Released { item, .. } = ev {
                self.pending.0.remove(&item);
                self.released += 1;
            }
        }
    }

    fn transmit(&mut self) {
        while let Some(t) =
            self.ep
                .poll_transmit(self.now, &mut self.seq, &self.pending, &mut self.buf)
        {
            black_box(&self.buf[..t.size]);
            self.datagrams += 1;
            self.drain();
        }
        let sent = self.seq.peek().wrapping_sub(self.unacked_from);
        if sent >= ACK_WINDOW {
            let to = self.seq.peek().wrapping_sub(1);
            let range = SeqRange {
                from: self.unacked_from,
                to,
            };
            self.peer_sends(Flags::ACK, Some(range));
            self.unacked_from = self.seq.peek();
        }
    }
}

/// The churn stream as transmit requests: step `j` creates flow `j`, updates flow
/// `j - live/2`, destroys flow `j - live` (the order of `micro-hotpath`).
fn requests(flows: u32, live: u32) -> Vec<Request> {
    let half = (live / 2).max(1);
    let mut out = Vec::with_capacity(flows as usize * 3);
    let mut push = |i: u32, msg_type| {
        let ct = flow(i);
        out.push(Request {
            key: TxKey::Ct(CtKey::from_conntrack(&ct)),
            msg_type,
            repr: TxPayload::Ct(wire_from_kernel(&ct, &SendPolicy::KEEP_ALL)),
        });
    };
    for j in 0..flows + 2 * half {
        if j < flows {
            push(j, MsgType::CT_NEW);
        }
        if let Some(i) = j.checked_sub(half).filter(|&i| i < flows) {
            push(i, MsgType::CT_UPD);
        }
        if let Some(i) = j.checked_sub(2 * half).filter(|&i| i < flows) {
            push(i, MsgType::CT_DEL);
        }
    }
    out
}

/// Runs every request through the link thread's path; returns the requests handled.
///
/// Not inlined, so that `perf/callgrind.sh --bench micro-link` can count its instructions
/// alone (`--toggle-collect=*link_events*`).
#[inline(never)]
fn link_events(l: &mut Link, reqs: &[Request]) -> usize {
    for batch in reqs.chunks(BATCH) {
        for r in batch {
            // The sender clones the key once (it owns the request); the bench borrows it.
            l.pending.0.insert(r.key.clone(), (r.msg_type, r.repr));
            l.ep.queue_item(r.key.clone());
        }
        l.transmit();
    }
    // The last ACK.
    if l.seq.peek() != l.unacked_from {
        let range = SeqRange {
            from: l.unacked_from,
            to: l.seq.peek().wrapping_sub(1),
        };
        l.peer_sends(Flags::ACK, Some(range));
        l.unacked_from = l.seq.peek();
    }
    reqs.len()
}

fn main() {
    let opts = Opts::from_args(5);
    header("micro-link", &opts);
    let flows = opts.get("--flows", opts.n(100_000));
    let live = opts.get("--live", flows.min(opts.n(100_000)));
    let reqs = requests(flows as u32, live as u32);
    let n = reqs.len();
    println!(
        "events: {n} ({flows} flows × NEW/UPDATE/DESTROY, ~{live} live), TxKey {} B, TxPayload {} B",
        size_of::<TxKey>(),
        size_of::<TxPayload>()
    );
    let mut last = None;
    let s = measure_with(opts.runs, n, Link::new, |mut l| {
        let seen = link_events(&mut l, black_box(&reqs));
        assert_eq!(seen, n);
        // Every request's key went out and was acknowledged: nothing is left behind.
        assert_eq!(l.ep.unacked_items(), 0, "every item acknowledged");
        assert!(l.pending.0.is_empty(), "every payload released");
        last = Some((l.datagrams, l.released));
    });
    row("link: queue + transmit + ack", &s, "");
    if let Some((d, r)) = last {
        println!("{d} datagrams, {r} releases");
    }
}
