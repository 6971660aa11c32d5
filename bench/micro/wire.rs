//! Micro-benchmark of the sync protocol codec (`conntrackd::wire`).
//!
//! Inputs are the conntrack datagrams the C daemon 1.4.7 really sent, read in place from the
//! shared capture `vectors.txt` (see `conntrackd_bench::vectors`); without it the bench
//! falls back to the messages our converter builds from the generated flow mix. Rows:
//!
//! * **decode**: split a datagram into messages and parse each CT payload (`Messages` +
//!   `Message::ct`), per message — the receive path of a backup node;
//! * **Repr::parse**: the payload parse alone;
//! * **encode**: append each message to a 1472-byte datagram with `Datagram::push_or_flush`
//!   (header, sequence number, attributes), per message — the transmit path;
//! * **buffer_len**: the sizing pass `push` runs before it writes.
//!
//! Run: `cargo run --release -p conntrackd-bench --bin micro-wire [-- --runs N --scale F]`.

use std::hint::black_box;

use conntrackd::cache::SendPolicy;
use conntrackd::cache::convert::wire_from_kernel;
use conntrackd::wire::{CtRepr, Datagram, Messages, MsgType, Outgoing, SeqCounter, Transport};
use conntrackd_bench::flows::flow;
use conntrackd_bench::vectors::{ct_reprs, sync_ct_datagrams, vectors_txt_path};
use conntrackd_bench::{Opts, header, measure, row};

fn main() {
    let opts = Opts::from_args(7);
    header("micro-wire", &opts);
    let (datagrams, source) = match sync_ct_datagrams() {
        Some(d) if !d.is_empty() => (d, format!("{}", vectors_txt_path().display())),
        _ => (
            generated_datagrams(),
            "generated flow mix (vectors.txt not found)".into(),
        ),
    };
    let reprs = ct_reprs(&datagrams);
    let bytes: usize = datagrams.iter().map(Vec::len).sum();
    println!(
        "input: {} datagrams, {} CT messages, {bytes} bytes, from {source}",
        datagrams.len(),
        reprs.len()
    );
    // Every bench loop walks the whole input `reps` times: about 1M messages per run.
    let reps = opts.n(1_000_000).div_ceil(reprs.len().max(1));
    let ops = reps * reprs.len();

    let s = measure(opts.runs, ops, || {
        let mut acc = 0u64;
        for _ in 0..reps {
            for d in &datagrams {
                for m in Messages::new(black_box(d)).flatten() {
                    if let Ok(r) = m.ct() {
                        acc += u64::from(r.status.unwrap_or(0));
                    }
                }
            }
        }
        acc
    });
    row("decode: Messages + Message::ct", &s, "per message");

    let bodies: Vec<&[u8]> = datagrams
        .iter()
        .flat_map(|d| Messages::new(d).flatten())
        .filter(|m| m.header.msg_type.is_ct())
        .map(|m| m.body)
        .collect();
    let s = measure(opts.runs, reps * bodies.len(), || {
        let mut acc = 0u64;
        for _ in 0..reps {
            for b in &bodies {
                if let Ok(r) = CtRepr::parse(black_box(b)) {
                    acc += u64::from(r.timeout.unwrap_or(0));
                }
            }
        }
        acc
    });
    row("decode: ct::Repr::parse (payload only)", &s, "per message");

    let s = measure(opts.runs, ops, || {
        let mut acc = 0usize;
        for _ in 0..reps {
            for r in &reprs {
                acc += black_box(r).buffer_len();
            }
        }
        acc
    });
    row("encode: ct::Repr::buffer_len", &s, "per message");

    let size = Transport::Multicast.buffer_size(1500);
    let mut buf = vec![0u8; size];
    let mut seq = SeqCounter::new(1);
    let s = measure(opts.runs, ops, || {
        let mut sent = 0usize;
        let mut dgram = Datagram::new(&mut buf, size);
        for _ in 0..reps {
            for r in &reprs {
                let msg = Outgoing::Ct {
                    msg_type: MsgType::CT_NEW,
                    flags: conntrackd::wire::Flags::NONE,
                    repr: black_box(r),
                };
                let _ = dgram.push_or_flush(&mut seq, &msg, |b| sent += b.len());
            }
        }
        sent + dgram.len()
    });
    row(
        "encode: Datagram::push_or_flush (MTU 1500)",
        &s,
        "per message",
    );
}

/// Datagrams of CT_NEW messages built from the generated flows, for when the capture is
/// missing (e.g. outside the team's checkout).
fn generated_datagrams() -> Vec<Vec<u8>> {
    let size = Transport::Multicast.buffer_size(1500);
    let mut out = Vec::new();
    let mut buf = vec![0u8; size];
    let mut seq = SeqCounter::new(1);
    let mut dgram = Datagram::new(&mut buf, size);
    for i in 0..64 {
        let r = wire_from_kernel(&flow(i), &SendPolicy::KEEP_ALL);
        let msg = Outgoing::Ct {
            msg_type: MsgType::CT_NEW,
            flags: conntrackd::wire::Flags::NONE,
            repr: &r,
        };
        let _ = dgram.push_or_flush(&mut seq, &msg, |b| out.push(b.to_vec()));
    }
    out.push(dgram.as_bytes().to_vec());
    out
}
