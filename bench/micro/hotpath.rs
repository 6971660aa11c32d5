//! The whole per-event hot path on one thread: ctnetlink event bytes in, sync datagrams out.
//!
//! For each event of a generated churn stream (every flow gets NEW, UPDATE and DESTROY;
//! about `--live` entries alive, see `conntrackd_bench::flows::churn_stream`):
//!
//! 1. **parse**: `netlink::msg::messages` → `classify` → `Conntrack::parse`;
//! 2. **route**: `UserFilter::accepts` (empty unless `--filter`), `CtKey::from_conntrack`,
//!    `shard_of(key, shards)`;
//! 3. **cache**: `wire_from_kernel` + `InternalCache::handle_kernel` on the owning shard, the
//!    key onto that shard's tx queue; every 64 events (one reader batch) the queue is drained
//!    with `take_for_tx`, and a DEAD entry is dropped once its DEL is out
//!    (`remove_if_dead`, as NOTRACK/ALARM do; FTFW waits for the ACK);
//! 4. **encode**: `apply_send_policy` and `Datagram::push_or_flush` into 1472-byte
//!    datagrams (MTU 1500 multicast), one sequence number per message.
//!
//! The bench runs the stream four times, stopping after stage 1, 2, 3 and 4, and prints each
//! cumulative cost per event; the last is the **ns per replicated event** to hold against the
//! C daemon's 3–5 µs of CPU per event (`shared/reference/testbed-notes.md`). Not included:
//! the syscalls (recvmsg of the event, sendmsg of the datagram), the reader → worker ring hop
//! (see `micro-ring`: tens of ns per item in batches) and FTFW's resend queue.
//!
//! A last pass times the full path one reader batch at a time and prints the percentiles of
//! the cost per event within a batch (the tail a reader would have to absorb).
//!
//! `perf/callgrind.sh` runs this binary with `--stage encode --runs 1` and counts the
//! instructions of `replicate_events` only (setup excluded) to get instructions per event.
//!
//! Run: `cargo run --release -p conntrackd-bench --bin micro-hotpath [-- --flows N --live L
//! --shards S --filter --stage parse|route|cache|encode --runs R]`.

use std::hint::black_box;

use conntrackd::cache::convert::{apply_send_policy, wire_from_kernel};
use conntrackd::cache::{
    CtKey, InternalCache, KernelEvent, ObjStatus, Origin, Outcome, SendPolicy, shard_of,
};
use conntrackd::config::{Filter, FilterSet, Policy, Protocol};
use conntrackd::filter::UserFilter;
use conntrackd::netlink::consts::{
    IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_NEW, NFNL_SUBSYS_CTNETLINK, NLM_F_CREATE,
};
use conntrackd::netlink::ct::Conntrack;
use conntrackd::netlink::msg::{Payload, messages};
use conntrackd::wire::{Datagram, Flags, MsgType, Outgoing, SeqCounter, Transport};
use conntrackd_bench::flows::churn_stream;
use conntrackd_bench::{Opts, Sample, header, measure_with, row};

/// Events per reader batch: the tx queues are drained after each.
const BATCH: usize = 64;

/// How far down the path a run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Parse,
    Route,
    Cache,
    Encode,
}

impl Stage {
    const ALL: [Self; 4] = [Self::Parse, Self::Route, Self::Cache, Self::Encode];

    fn name(self) -> &'static str {
        match self {
            Self::Parse => "parse",
            Self::Route => "route",
            Self::Cache => "cache",
            Self::Encode => "encode",
        }
    }
}

/// One worker's state for all shards (the bench runs them on one thread).
#[derive(Debug)]
struct Pipeline {
    shards: Vec<InternalCache>,
    txq: Vec<Vec<CtKey>>,
    filter: UserFilter,
    send: SendPolicy,
    seq: SeqCounter,
    buf: Vec<u8>,
    link: usize,
    now: u32,
    /// Messages, datagrams and payload bytes sent; events the filter dropped.
    messages: u64,
    datagrams: u64,
    bytes: u64,
    filtered: u64,
}

impl Pipeline {
    fn new(shards: usize, live: usize, filter: UserFilter) -> Self {
        let link = Transport::Multicast.buffer_size(1500);
        Self {
            // Sized like HashSize: the live set fits without rehashing.
            shards: (0..shards)
                .map(|_| InternalCache::new(usize::MAX, live.div_ceil(shards) * 2))
                .collect(),
            txq: (0..shards).map(|_| Vec::with_capacity(BATCH)).collect(),
            filter,
            // The defaults: TCPWindowTracking off, no CommitTimeout.
            send: SendPolicy {
                tcp_window_tracking: false,
                commit_timeout: 0,
            },
            seq: SeqCounter::new(1_795_606_956),
            buf: vec![0; link],
            link,
            now: 1,
            messages: 0,
            datagrams: 0,
            bytes: 0,
            filtered: 0,
        }
    }

    /// Drains every shard's tx queue: unpack each queued entry and (at `Stage::Encode`)
    /// serialise it; the partly filled datagram is sent at the end of the batch, as the C
    /// daemon flushes its queue once per event-loop iteration.
    fn transmit(&mut self, encode: bool) {
        let Self {
            shards,
            txq,
            send,
            seq,
            buf,
            link,
            messages,
            datagrams,
            bytes,
            ..
        } = self;
        let mut dgram = Datagram::new(buf, *link);
        let mut sent = |b: &[u8]| {
            *datagrams += 1;
            *bytes += b.len() as u64;
        };
        for (cache, q) in shards.iter_mut().zip(txq.iter_mut()) {
            for key in q.drain(..) {
                let Some((status, mut r)) = cache.take_for_tx(&key) else {
                    continue;
                };
                if encode {
                    apply_send_policy(&mut r, send);
                    let msg = Outgoing::Ct {
                        msg_type: match status {
                            ObjStatus::New => MsgType::CT_NEW,
                            ObjStatus::Alive => MsgType::CT_UPD,
                            ObjStatus::Dead => MsgType::CT_DEL,
                        },
                        flags: Flags::NONE,
                        repr: &r,
                    };
                    if dgram.push_or_flush(seq, &msg, &mut sent).is_ok() {
                        *messages += 1;
                    }
                } else {
                    black_box(&r);
                }
                if status == ObjStatus::Dead {
                    cache.remove_if_dead(&key);
                }
            }
        }
        if !dgram.is_empty() {
            sent(dgram.as_bytes());
        }
    }
}

/// Runs every event of `stream` through the pipeline up to `upto`; returns the events seen.
///
/// Not inlined, so that `perf/callgrind.sh` can count its instructions alone
/// (`--toggle-collect=*replicate_events*`).
#[inline(never)]
fn replicate_events(p: &mut Pipeline, stream: &[u8], upto: Stage) -> usize {
    let mut events = 0;
    let mut batch = 0;
    for m in messages(stream) {
        let Ok(m) = m else { break };
        let Ok(Payload::Nfnl {
            subsys: NFNL_SUBSYS_CTNETLINK,
            op,
            family,
            attrs,
        }) = m.classify()
        else {
            continue;
        };
        let ev = match op {
            IPCTNL_MSG_CT_NEW if m.flags() & NLM_F_CREATE != 0 => KernelEvent::New,
            IPCTNL_MSG_CT_NEW => KernelEvent::Update,
            IPCTNL_MSG_CT_DELETE => KernelEvent::Destroy,
            _ => continue,
        };
        let Ok(ct) = Conntrack::parse(family, attrs) else {
            continue;
        };
        events += 1;
        if upto == Stage::Parse {
            black_box(&ct);
            continue;
        }
        if !p.filter.accepts(&ct) {
            p.filtered += 1;
            continue;
        }
        let key = CtKey::from_conntrack(&ct);
        let shard = shard_of(&key, p.shards.len());
        if upto == Stage::Route {
            black_box((&key, shard));
            continue;
        }
        let r = wire_from_kernel(&ct, &SendPolicy::KEEP_ALL);
        // nlmsg_pid 0: the packet path, replicated (sync-modes.md §1.1).
        let out = p.shards[shard].handle_kernel(p.now, Origin::NotMe, ev, key, &r);
        if out == (Outcome::Applied { enqueue: true }) {
            p.txq[shard].push(key);
        }
        batch += 1;
        if batch == BATCH {
            p.transmit(upto == Stage::Encode);
            batch = 0;
        }
    }
    if upto >= Stage::Cache {
        p.transmit(upto == Stage::Encode);
    }
    events
}

fn main() {
    let opts = Opts::from_args(5);
    header("micro-hotpath", &opts);
    let flows = opts.get("--flows", opts.n(100_000));
    let live = opts.get("--live", flows.min(opts.n(100_000)));
    let shards = opts.get("--shards", 2usize);
    let only: Option<Stage> = opts.rest.iter().position(|a| a == "--stage").map(|i| {
        let s = opts.rest.get(i + 1).map_or("", String::as_str);
        *Stage::ALL
            .iter()
            .find(|st| st.name() == s)
            .unwrap_or_else(|| {
                eprintln!("--stage: parse, route, cache or encode");
                std::process::exit(2)
            })
    });
    let filter = if opts.flag("--filter") {
        // A realistic small filter: TCP and UDP only.
        UserFilter::new(&Filter {
            protocol: Some(FilterSet {
                policy: Policy::Accept,
                items: vec![
                    Protocol {
                        name: "tcp".into(),
                        number: 6,
                    },
                    Protocol {
                        name: "udp".into(),
                        number: 17,
                    },
                ],
            }),
            ..Filter::default()
        })
    } else {
        UserFilter::default()
    };
    let (stream, n) = churn_stream(flows as u32, live as u32);
    println!(
        "events: {n} ({flows} flows × NEW/UPDATE/DESTROY, ~{live} live, {shards} shards, {} B of netlink, filter {})",
        stream.len(),
        if filter.is_empty() { "none" } else { "tcp+udp" }
    );
    let stages: Vec<Stage> = only.map_or_else(|| Stage::ALL.to_vec(), |s| vec![s]);
    let mut prev: Option<Sample> = None;
    for st in stages {
        let mut last = None;
        let s = measure_with(
            opts.runs,
            n,
            || Pipeline::new(shards, live, filter.clone()),
            |mut p| {
                let seen = replicate_events(&mut p, black_box(&stream), st);
                assert_eq!(seen, n, "every event parses");
                last = Some((p.messages, p.datagrams, p.bytes, p.filtered));
            },
        );
        let delta = prev.map_or(String::new(), |p| {
            format!("(+{:.1} ns)", s.median - p.median)
        });
        row(&format!("up to {:<6}", st.name()), &s, &delta);
        prev = Some(s);
        if st == Stage::Encode
            && let Some((msgs, dgrams, bytes, filtered)) = last
        {
            println!(
                "sent {msgs} messages in {dgrams} datagrams ({:.1} msgs/datagram, {:.0} B/msg), {filtered} filtered",
                msgs as f64 / dgrams.max(1) as f64,
                bytes as f64 / msgs.max(1) as f64
            );
            println!(
                "ns per replicated event: {:.1} (median; min {:.1}) — C conntrackd 1.4.7: 3000–5000 ns CPU/event",
                s.median, s.min
            );
        }
    }
    // The spread per reader batch: the same work, timed batch by batch (skipped for the
    // single-stage runs of the profiling recipes).
    if only.is_none() {
        batch_spread(&stream, shards, live, &filter);
    }
}

/// Runs the full path once more, one reader batch (64 events) at a time, and prints the
/// percentiles of the cost per event within a batch. A slow tail here (hash table growth, a
/// neighbour taking the CPU) is what would make a real reader fall behind its socket.
fn batch_spread(stream: &[u8], shards: usize, live: usize, filter: &UserFilter) {
    let mut bounds = vec![0];
    let mut off = 0;
    for (i, m) in messages(stream).enumerate() {
        let Ok(m) = m else { break };
        // Messages are contiguous, each padded to 4 bytes.
        off += m.len().next_multiple_of(4);
        if (i + 1) % BATCH == 0 {
            bounds.push(off.min(stream.len()));
        }
    }
    bounds.push(stream.len());
    bounds.dedup();
    let mut p = Pipeline::new(shards, live, filter.clone());
    let mut ns: Vec<f64> = bounds
        .windows(2)
        .map(|w| {
            let t = std::time::Instant::now();
            let n = replicate_events(&mut p, black_box(&stream[w[0]..w[1]]), Stage::Encode);
            t.elapsed().as_nanos() as f64 / n.max(1) as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    let q = |f: f64| ns[((ns.len() - 1) as f64 * f) as usize];
    println!(
        "per batch of {BATCH}, ns/event: p50 {:.0}, p90 {:.0}, p99 {:.0}, p99.9 {:.0}, max {:.0} ({} batches)",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        q(1.0),
        ns.len()
    );
}
