//! Micro-benchmark of the ctnetlink codec (`conntrackd::netlink`).
//!
//! * **parse**: walk a captured kernel answer (`tests/vectors/netlink/*.resp.bin`: dumps
//!   and event captures, one row per file) and decode every conntrack in it (`messages` +
//!   `NlMsg::classify` + `Conntrack::parse`), per conntrack message; then the same over the
//!   generated event stream the hot-path bench uses;
//! * **emit**: build the CREATE request conntrack(8) sent in `tcp4_create.req.bin` with
//!   `MsgBuilder` + `Conntrack::emit` into a reused buffer, alone and 500 to a batch (how a
//!   commit writes).
//!
//! Run: `cargo run --release -p conntrackd-bench --bin micro-netlink [-- --runs N --scale F]`.

use std::hint::black_box;

use conntrackd::netlink::consts::{
    IPCTNL_MSG_CT_NEW, NFNL_SUBSYS_CTNETLINK, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST,
};
use conntrackd::netlink::ct::Conntrack;
use conntrackd::netlink::msg::{MsgBuilder, Payload, messages};
use conntrackd_bench::flows::churn_stream;
use conntrackd_bench::vectors::{CT_DUMPS, TCP4_CREATE_REQ};
use conntrackd_bench::{Opts, header, measure, row};

/// Decodes every conntrack message of `buf`; returns how many there were (and folds a
/// field into `acc` so the work is not optimised away).
fn parse_all(buf: &[u8], acc: &mut u64) -> usize {
    let mut n = 0;
    for m in messages(buf).flatten() {
        if let Ok(Payload::Nfnl {
            subsys: NFNL_SUBSYS_CTNETLINK,
            family,
            attrs,
            ..
        }) = m.classify()
            && let Ok(ct) = Conntrack::parse(family, attrs)
        {
            *acc += u64::from(ct.orig.l4proto);
            n += 1;
        }
    }
    n
}

fn main() {
    let opts = Opts::from_args(5);
    header("micro-netlink", &opts);
    let target = opts.n(100_000);
    let mut total = (0usize, 0usize);
    for (name, buf) in CT_DUMPS {
        let per = parse_all(buf, &mut 0);
        if per == 0 {
            continue;
        }
        let reps = target.div_ceil(per);
        let s = measure(opts.runs, reps * per, || {
            let mut acc = 0u64;
            for _ in 0..reps {
                parse_all(black_box(buf), &mut acc);
            }
            acc
        });
        total = (total.0 + per, total.1 + buf.len());
        let label = format!("parse {}", name.trim_end_matches(".resp.bin"));
        row(&label, &s, &format!("per ct ({per} in {} B)", buf.len()));
    }
    println!(
        "captured: {} conntrack messages, {} bytes",
        total.0, total.1
    );

    let (stream, events) = churn_stream(opts.n(20_000) as u32, opts.n(10_000) as u32);
    let s = measure(opts.runs, events, || parse_all(black_box(&stream), &mut 0));
    row(
        "parse generated events (NEW/UPDATE/DESTROY mix)",
        &s,
        &format!("per event ({} B avg)", stream.len() / events),
    );

    let req = messages(TCP4_CREATE_REQ)
        .flatten()
        .find_map(|m| match m.classify() {
            Ok(Payload::Nfnl { family, attrs, .. }) => Conntrack::parse(family, attrs).ok(),
            _ => None,
        })
        .expect("tcp4_create.req.bin holds a conntrack");
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    let mut buf = Vec::with_capacity(4096);
    let ops = opts.n(500_000);
    let s = measure(opts.runs, ops, || {
        let mut len = 0;
        for seq in 0..ops as u32 {
            buf.clear();
            let mut b = MsgBuilder::new(
                &mut buf,
                NFNL_SUBSYS_CTNETLINK,
                IPCTNL_MSG_CT_NEW,
                flags,
                seq,
                req.family,
            );
            black_box(&req).emit(&mut b);
            len += b.finish();
        }
        len
    });
    row(
        "emit CREATE (tcp4_create.req), one per buffer",
        &s,
        "per request",
    );

    const BATCH: usize = 500;
    let rounds = ops.div_ceil(BATCH);
    let mut batch = Vec::with_capacity(BATCH * 256);
    let s = measure(opts.runs, rounds * BATCH, || {
        let mut len = 0;
        for _ in 0..rounds {
            batch.clear();
            for seq in 0..BATCH as u32 {
                let mut b = MsgBuilder::new(
                    &mut batch,
                    NFNL_SUBSYS_CTNETLINK,
                    IPCTNL_MSG_CT_NEW,
                    flags,
                    seq,
                    req.family,
                );
                black_box(&req).emit(&mut b);
                b.finish();
            }
            len += batch.len();
        }
        len
    });
    row("emit CREATE, 500 per batch buffer", &s, "per request");
}
