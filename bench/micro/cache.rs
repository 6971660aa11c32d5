//! Micro-benchmark of the per-shard caches and the conversions around them
//! (`conntrackd::cache`).
//!
//! For each table size (100k and 1M entries by default, `--sizes a,b,…` to change; sizes
//! from 500k up get a single run):
//!
//! * **internal**: insert (kernel NEW into an empty shard sized by HashSize), update
//!   (kernel UPDATE of a live entry: unpack, merge, pack), lookup hit and miss,
//!   `take_for_tx` (unpack for the sender), destroy + `remove_if_dead` (the DEL is sent);
//! * **external**: peer NEW into an empty shard, peer UPDATE (merge), peer DELETE.
//!
//! Keys come from the generated flow mix (`conntrackd_bench::flows`), attributes from the
//! first 16 flows (the mix repeats every 16, so each key gets attributes of its own shape).
//! Then, per entry, the conversions: `wire_from_kernel` (netlink → sync message),
//! `kernel_from_wire` (sync message → kernel CREATE, the commit path), key extraction,
//! `shard_of` routing, and `CtAttrs` pack/unpack.
//!
//! Run: `cargo run --release -p conntrackd-bench --bin micro-cache [-- --runs N --sizes 100000]`.

use std::hint::black_box;

use conntrackd::cache::convert::{kernel_from_wire, wire_from_kernel};
use conntrackd::cache::{
    CommitPolicy, CtAttrs, CtKey, ExternalCache, InternalCache, KernelEvent, Origin, PeerMsg,
    SendPolicy, shard_of,
};
use conntrackd::netlink::ct::Conntrack;
use conntrackd::wire::CtRepr;
use conntrackd_bench::flows::flow;
use conntrackd_bench::{Opts, Sample, header, measure, measure_with, row};

fn main() {
    let opts = Opts::from_args(3);
    header("micro-cache", &opts);
    let sizes: Vec<usize> = opts
        .get("--sizes", String::from("100000,1000000"))
        .split(',')
        .filter_map(|s| s.parse().ok())
        .map(|n| opts.n(n))
        .collect();
    let reprs: Vec<CtRepr> = (0..16)
        .map(|i| wire_from_kernel(&flow(i), &SendPolicy::KEEP_ALL))
        .collect();
    for n in sizes {
        let keys: Vec<CtKey> = (0..n as u32)
            .map(|i| CtKey::from_conntrack(&flow(i)))
            .collect();
        let misses: Vec<CtKey> = (n as u32..2 * n as u32)
            .map(|i| CtKey::from_conntrack(&flow(i)))
            .collect();
        // A run at 1M entries takes ~0.4 s and its setup as long again: one run, no
        // warm-up, keeps the whole bench under 10 s (the spread then shows as min = max).
        let o = Opts {
            runs: if n >= 500_000 { 1 } else { opts.runs },
            ..opts.clone()
        };
        internal(&o, &keys, &misses, &reprs);
        external(&o, &keys, &reprs);
    }
    conversions(&opts);
}

fn repr_of(reprs: &[CtRepr], i: usize) -> &CtRepr {
    &reprs[i % reprs.len()]
}

/// A shard holding every key, as after the insert bench.
fn filled(keys: &[CtKey], reprs: &[CtRepr]) -> InternalCache {
    let mut c = InternalCache::new(usize::MAX, keys.len());
    for (i, k) in keys.iter().enumerate() {
        let _ = c.handle_kernel(0, Origin::NotMe, KernelEvent::New, *k, repr_of(reprs, i));
    }
    c
}

fn label(what: &str, n: usize) -> String {
    format!("internal {n:>7}: {what}")
}

fn internal(opts: &Opts, keys: &[CtKey], misses: &[CtKey], reprs: &[CtRepr]) {
    let n = keys.len();
    let runs = opts.runs;
    let s = measure_with(
        runs,
        n,
        || InternalCache::new(usize::MAX, n),
        |mut c| {
            for (i, k) in keys.iter().enumerate() {
                let _ = c.handle_kernel(0, Origin::NotMe, KernelEvent::New, *k, repr_of(reprs, i));
            }
            c
        },
    );
    row(&label("insert (kernel NEW)", n), &s, "");

    let mut c = filled(keys, reprs);
    println!(
        "{:<50} {:>9.0} bytes/entry (heap, table included)",
        label("memory", n),
        c.heap_bytes() as f64 / n as f64
    );
    let s = measure(runs, n, || {
        for (i, k) in keys.iter().enumerate() {
            let _ = c.handle_kernel(
                1,
                Origin::NotMe,
                KernelEvent::Update,
                *k,
                repr_of(reprs, i + 1),
            );
        }
    });
    row(&label("update (kernel UPDATE, merge)", n), &s, "");

    let s = measure(runs, n, || {
        keys.iter()
            .filter(|k| c.get(black_box(k)).is_some())
            .count()
    });
    row(&label("lookup hit", n), &s, "");
    let s = measure(runs, n, || {
        misses
            .iter()
            .filter(|k| c.get(black_box(k)).is_some())
            .count()
    });
    row(&label("lookup miss", n), &s, "");

    let s = measure(runs, n, || {
        let mut len = 0usize;
        for k in keys {
            if let Some((_, r)) = c.take_for_tx(k) {
                len += usize::from(r.l4proto.unwrap_or(0));
            }
        }
        len
    });
    row(&label("take_for_tx (unpack for tx)", n), &s, "");

    let s = measure_with(
        runs,
        n,
        || filled(keys, reprs),
        |mut c| {
            for (i, k) in keys.iter().enumerate() {
                let _ = c.handle_kernel(
                    2,
                    Origin::NotMe,
                    KernelEvent::Destroy,
                    *k,
                    repr_of(reprs, i),
                );
                c.remove_if_dead(k);
            }
            c
        },
    );
    row(&label("destroy + remove_if_dead", n), &s, "");
}

fn external(opts: &Opts, keys: &[CtKey], reprs: &[CtRepr]) {
    let n = keys.len();
    let lbl = |what: &str| format!("external {n:>7}: {what}");
    let fill = |c: &mut ExternalCache| {
        for (i, k) in keys.iter().enumerate() {
            let _ = c.handle_peer(0, PeerMsg::New, *k, repr_of(reprs, i));
        }
    };
    let s = measure_with(
        opts.runs,
        n,
        || ExternalCache::new(usize::MAX, n),
        |mut c| {
            fill(&mut c);
            c
        },
    );
    row(&lbl("peer NEW"), &s, "");
    let mut c = ExternalCache::new(usize::MAX, n);
    fill(&mut c);
    let s = measure(opts.runs, n, || {
        for (i, k) in keys.iter().enumerate() {
            let _ = c.handle_peer(1, PeerMsg::Update, *k, repr_of(reprs, i + 3));
        }
    });
    row(&lbl("peer UPDATE (merge)"), &s, "");
    let s = measure_with(
        opts.runs,
        n,
        || {
            let mut c = ExternalCache::new(usize::MAX, n);
            fill(&mut c);
            c
        },
        |mut c| {
            for (i, k) in keys.iter().enumerate() {
                let _ = c.handle_peer(2, PeerMsg::Delete, *k, repr_of(reprs, i));
            }
            c
        },
    );
    row(&lbl("peer DELETE"), &s, "");
}

/// Per-entry conversions over a 4096-flow working set (fits in L2: this is the code's cost,
/// not the memory's).
fn conversions(opts: &Opts) {
    let flows: Vec<Conntrack> = (0..4096).map(flow).collect();
    let wires: Vec<CtRepr> = flows
        .iter()
        .map(|f| wire_from_kernel(f, &SendPolicy::KEEP_ALL))
        .collect();
    let keys: Vec<CtKey> = flows.iter().map(CtKey::from_conntrack).collect();
    let attrs: Vec<CtAttrs> = wires.iter().map(CtAttrs::pack).collect();
    let reps = opts.n(1_000_000).div_ceil(flows.len());
    let ops = reps * flows.len();
    let run = |name: &str, f: &mut dyn FnMut(usize) -> u64| {
        let s: Sample = measure(opts.runs.max(5), ops, || {
            let mut acc = 0u64;
            for _ in 0..reps {
                for i in 0..flows.len() {
                    acc = acc.wrapping_add(f(black_box(i)));
                }
            }
            acc
        });
        row(name, &s, "per entry");
    };
    run("convert wire_from_kernel (netlink → sync)", &mut |i| {
        u64::from(
            black_box(wire_from_kernel(&flows[i], &SendPolicy::KEEP_ALL))
                .status
                .unwrap_or(0),
        )
    });
    let commit = CommitPolicy::default();
    run("convert kernel_from_wire (sync → CREATE)", &mut |i| {
        black_box(kernel_from_wire(&wires[i], 10, 0, &commit))
            .map_or(0, |c| u64::from(c.orig.l4proto))
    });
    run("key CtKey::from_conntrack", &mut |i| {
        u64::from(black_box(CtKey::from_conntrack(&flows[i])).zone())
    });
    run("route shard_of(key, 2)", &mut |i| {
        shard_of(&keys[i], 2) as u64
    });
    run("route key + shard_of(key, 8)", &mut |i| {
        shard_of(&CtKey::from_conntrack(&flows[i]), 8) as u64
    });
    run("entry CtAttrs::pack", &mut |i| {
        black_box(CtAttrs::pack(&wires[i])).heap_bytes() as u64
    });
    run("entry CtAttrs::unpack", &mut |i| {
        u64::from(black_box(attrs[i].unpack(&keys[i])).l4proto.unwrap_or(0))
    });
}
