//! The reader → worker hop with the real item type: parsed kernel events through
//! `runtime::reader::Router` and the shard rings to a worker-style consumer loop.
//!
//! `micro-ring` times the ring with 64-byte items; a real `KernelEvent` is 488 bytes, so what
//! matters here is how often each event is copied on its way: into the event, into the
//! shard's pending batch, out of the ring batch in the worker. The bench does, per event of the
//! `micro-hotpath` churn stream (on one thread):
//!
//! 1. parse it (`Conntrack::parse`) and `Router::route` a `KernelEvent`, as `reader::run` does;
//! 2. every 64 events (a reader batch) `Router::flush`, then pop every shard's ring with
//!    `Consumer::pop_batch` and hand each event by reference to a stand-in for
//!    `Worker::on_kernel`, consuming the batch the way `Worker::run` does
//!    (`runtime::ring::consume`).
//!
//! `perf/callgrind.sh --bench micro-hop` counts the instructions of `hop_events` only; the
//! parse is the same in every variant, so differences are the hop's.
//!
//! Run: `cargo run --release -p conntrackd-bench --bin micro-hop [-- --flows N --live L --shards S]`.

use std::hint::black_box;

use conntrackd::netlink::consts::{
    IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_NEW, NFNL_SUBSYS_CTNETLINK, NLM_F_CREATE,
};
use conntrackd::netlink::ct::Conntrack;
use conntrackd::netlink::msg::{Payload, messages};
use conntrackd::runtime::reader::Router;
use conntrackd::runtime::ring::{self, Consumer, Ring};
use conntrackd::runtime::worker::{CtChange, KernelEvent, Origin};
use conntrackd_bench::flows::churn_stream;
use conntrackd_bench::{Opts, header, measure_with, row};

/// Events per reader batch.
const BATCH: usize = 64;

struct Hop {
    router: Router,
    workers: Vec<Consumer<KernelEvent>>,
    events: Vec<KernelEvent>,
    /// Events the stand-in worker saw, and a checksum over what it read.
    seen: u64,
    sum: u64,
}

impl Hop {
    fn new(shards: usize) -> Self {
        let (prods, workers) = (0..shards)
            .map(|_| Ring::with_capacity::<KernelEvent>(1 << 16))
            .unzip();
        Self {
            router: Router::new(prods, Vec::new()),
            workers,
            events: Vec::with_capacity(BATCH),
            seen: 0,
            sum: 0,
        }
    }

    /// What `Worker::run` does with its rings after a reader batch.
    fn work(&mut self) {
        let dropped = self.router.flush();
        assert_eq!(dropped, 0, "the rings hold a whole batch");
        let Self {
            workers,
            events,
            seen,
            sum,
            ..
        } = self;
        for w in workers.iter_mut() {
            while w.pop_batch(events, BATCH) > 0 {
                ring::consume(events, |ev| {
                    // The stand-in for on_kernel: read the event through a reference.
                    let ev = black_box(ev);
                    *seen += 1;
                    *sum = sum.wrapping_add(u64::from(ev.ct.orig.l4proto) + ev.change as u64);
                });
            }
        }
    }
}

/// Runs every event of `stream` from the parser to the stand-in worker; returns the events.
///
/// Not inlined, so that `perf/callgrind.sh --bench micro-hop` can count it alone.
#[inline(never)]
fn hop_events(h: &mut Hop, stream: &[u8]) -> usize {
    let mut events = 0;
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
        let change = match op {
            IPCTNL_MSG_CT_NEW if m.flags() & NLM_F_CREATE != 0 => CtChange::New,
            IPCTNL_MSG_CT_NEW => CtChange::Update,
            IPCTNL_MSG_CT_DELETE => CtChange::Destroy,
            _ => continue,
        };
        // As reader::run does.
        match Conntrack::parse(family, attrs) {
            Ok(ct) => h.router.route(KernelEvent {
                change,
                origin: Origin::NotMe,
                ct,
            }),
            Err(_) => continue,
        }
        events += 1;
        if events % BATCH == 0 {
            h.work();
        }
    }
    h.work();
    events
}

fn main() {
    let opts = Opts::from_args(5);
    header("micro-hop", &opts);
    let flows = opts.get("--flows", opts.n(100_000));
    let live = opts.get("--live", flows.min(opts.n(100_000)));
    let shards = opts.get("--shards", 2usize);
    let (stream, n) = churn_stream(flows as u32, live as u32);
    println!(
        "events: {n} ({flows} flows × NEW/UPDATE/DESTROY, {shards} shards), KernelEvent {} B",
        size_of::<KernelEvent>()
    );
    let s = measure_with(
        opts.runs,
        n,
        || Hop::new(shards),
        |mut h| {
            let got = hop_events(&mut h, black_box(&stream));
            assert_eq!(got, n, "every event parses");
            assert_eq!(h.seen, n as u64, "every event reaches a worker");
            h.sum
        },
    );
    row("parse + route + ring + worker loop", &s, "");
}
