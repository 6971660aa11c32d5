//! Micro-benchmark of the reader → worker ring (`conntrackd::runtime::ring`).
//!
//! Run with `cargo run --release -p conntrackd-bench --bin micro-ring [-- --runs N --scale F]`
//! (or `make bench-micro`). Prints the cost per item of push + pop
//! on one thread and from a producer thread to a consumer thread, for batch sizes 1, 32 and
//! 256, for:
//!
//! * `Ring` (the shipped ring: whole batches through `crossbeam::queue::ArrayQueue`), with a
//!   spinning consumer and with a consumer that sleeps on the eventfd `Waker`;
//! * `ArrayQueue<T>` used item by item (the first design, a CAS per item and side);
//!
//! A hand-written SPSC ring was measured here too (1.5–4× cheaper per item than `Ring` at batch
//! 32/256 in one calm run; see the history of this file). It needs `unsafe`, which the project
//! confines to `src/sys/`, so it is not kept; it is the candidate if the profile ever points here.
//!
//! Every consumer reads each item once (`touch`), so a design that moves whole vectors is not
//! credited for skipping the items.
//!
//! Absolute numbers are noise on a shared 2-core VM: compare rows within one run.
//! (Moved here from `examples/ring_bench.rs`; its history has the earlier designs.)

use std::hint::black_box;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use conntrackd::runtime::{Placement, Ring, Waker, pin_current};
use conntrackd_bench::{Opts, header};
use crossbeam::queue::ArrayQueue;

const CAPACITY: usize = 4096;
const BATCHES: [usize; 3] = [1, 32, 256];

/// A 64-byte item, about the size of a routed conntrack event header.
type Fat = [u64; 8];

/// One measurement: elapsed time, items moved, eventfd writes (if the case has a waker).
type Sample = (Duration, u64, Option<u64>);

fn main() {
    let opts = Opts::from_args(5);
    header("micro-ring", &opts);
    let cpus = conntrackd::runtime::placement::available_cpus();
    // 1M items keeps the whole table (18 rows) within about 10 s on the 2-core VM.
    let items = opts.n(1_000_000) as u64;
    let runs = opts.runs;
    println!("{items} items per run, capacity {CAPACITY}, cpus {cpus:?}");
    println!(
        "{:<46} {:>5} {:>9} {:>9} {:>11}",
        "case", "batch", "min ns", "median ns", "wake writes"
    );
    let c = &cpus;
    type Case<'a> = (&'static str, Box<dyn Fn(usize) -> Sample + 'a>);
    let cases: Vec<Case<'_>> = vec![
        (
            "1 thread  Ring<u64> push+pop",
            Box::new(|b| no_wake(single_ring(items, b))),
        ),
        (
            "1 thread  ArrayQueue<u64> per item push+pop",
            Box::new(|b| no_wake(single_aq(items, b))),
        ),
        (
            "2 threads Ring<u64>, consumer spins",
            Box::new(|b| cross_ring::<u64>(items, b, false, c)),
        ),
        (
            "2 threads Ring<u64>, consumer sleeps",
            Box::new(|b| cross_ring::<u64>(items, b, true, c)),
        ),
        (
            "2 threads Ring<[u64;8]>, consumer sleeps",
            Box::new(|b| cross_ring::<Fat>(items, b, true, c)),
        ),
        (
            "2 threads ArrayQueue<u64> per item, spins",
            Box::new(|b| no_wake(cross_aq(items, b, c))),
        ),
    ];
    for (name, case) in &cases {
        for &b in &BATCHES {
            let mut samples: Vec<(f64, Option<u64>)> = (0..runs)
                .map(|_| {
                    let (d, n, w) = case(b);
                    (d.as_nanos() as f64 / n as f64, w)
                })
                .collect();
            samples.sort_by(|x, y| x.0.total_cmp(&y.0));
            let median = samples[samples.len() / 2];
            let wakes = median.1.map_or_else(|| "-".to_string(), |w| w.to_string());
            println!(
                "{name:<46} {b:>5} {:>9.2} {:>9.2} {wakes:>11}",
                samples[0].0, median.0
            );
        }
    }
}

fn no_wake((d, n): (Duration, u64)) -> Sample {
    (d, n, None)
}

fn single_ring(items: u64, batch: usize) -> (Duration, u64) {
    let (mut p, mut c) = Ring::with_capacity::<u64>(CAPACITY);
    let mut inbuf = Vec::with_capacity(batch);
    let mut out = Vec::with_capacity(batch);
    let rounds = items / batch as u64;
    let start = Instant::now();
    for r in 0..rounds {
        if batch == 1 {
            p.push(r).unwrap();
            black_box(c.pop());
        } else {
            inbuf.extend((0..batch as u64).map(|i| r + i));
            p.push_batch(&mut inbuf);
            out.clear();
            c.pop_batch(&mut out, batch);
            touch(&out);
        }
    }
    (start.elapsed(), rounds * batch as u64)
}

fn pin(cpus: &[usize], i: usize) {
    if cpus.len() > 1 {
        let _ = pin_current(&Placement::Fixed(cpus[i % cpus.len()]));
    }
}

/// Producer thread on one CPU, consumer on another. The producer pushes batches and retries
/// (yielding) when the ring is full; the consumer pops batches of the same size and either
/// spins (yield) or sleeps on the waker when empty. Returns the elapsed time and the number of
/// eventfd writes.
fn cross_ring<T: Default + Copy + Send + 'static>(
    items: u64,
    batch: usize,
    sleep: bool,
    cpus: &[usize],
) -> Sample {
    let waker = Arc::new(Waker::new().unwrap());
    let (mut p, mut c) = if sleep {
        Ring::with_waker::<T>(CAPACITY, Arc::clone(&waker))
    } else {
        Ring::with_capacity::<T>(CAPACITY)
    };
    let consumer_cpus = cpus.to_vec();
    let consumer = thread::spawn(move || {
        pin(&consumer_cpus, 1);
        let mut out = Vec::with_capacity(batch);
        let mut got = 0;
        while got < items {
            out.clear();
            let n = if sleep {
                c.pop_batch_or_wait(&mut out, batch, Some(Duration::from_millis(100)))
                    .unwrap()
            } else {
                c.pop_batch(&mut out, batch)
            };
            if n == 0 && !sleep {
                thread::yield_now();
            }
            touch(&out);
            got += n as u64;
        }
    });
    pin(cpus, 0);
    let start = Instant::now();
    let mut inbuf: Vec<T> = Vec::with_capacity(batch);
    let mut sent = 0;
    while sent < items {
        let n = (batch as u64).min(items - sent) as usize;
        if n == 1 {
            while p.push(T::default()).is_err() {
                thread::yield_now();
            }
        } else {
            inbuf.extend(std::iter::repeat_n(T::default(), n));
            while !inbuf.is_empty() {
                if p.push_batch(&mut inbuf) == 0 {
                    thread::yield_now();
                }
            }
        }
        sent += n as u64;
    }
    consumer.join().unwrap();
    let elapsed = start.elapsed();
    let _ = pin_current(&Placement::Fenced(cpus.to_vec()));
    (elapsed, items, sleep.then(|| waker.signals()))
}

/// Reads every item, as a worker would.
fn touch<T: Copy>(items: &[T]) {
    for &item in items {
        black_box(item);
    }
}

/// The first design: `ArrayQueue<T>` item by item, batches only as loops.
fn single_aq(items: u64, batch: usize) -> (Duration, u64) {
    let q = ArrayQueue::<u64>::new(CAPACITY);
    let mut out = Vec::with_capacity(batch);
    let rounds = items / batch as u64;
    let start = Instant::now();
    for r in 0..rounds {
        for i in 0..batch as u64 {
            q.push(r + i).unwrap();
        }
        out.clear();
        while let Some(v) = q.pop() {
            out.push(v);
        }
        touch(&out);
    }
    (start.elapsed(), rounds * batch as u64)
}

fn cross_aq(items: u64, batch: usize, cpus: &[usize]) -> (Duration, u64) {
    let q = Arc::new(ArrayQueue::<u64>::new(CAPACITY));
    let q2 = Arc::clone(&q);
    let consumer_cpus = cpus.to_vec();
    let consumer = thread::spawn(move || {
        pin(&consumer_cpus, 1);
        let mut out = Vec::with_capacity(batch);
        let mut got = 0;
        while got < items {
            out.clear();
            while out.len() < batch {
                match q2.pop() {
                    Some(v) => out.push(v),
                    None => break,
                }
            }
            if out.is_empty() {
                thread::yield_now();
            }
            touch(&out);
            got += out.len() as u64;
        }
    });
    pin(cpus, 0);
    let start = Instant::now();
    let mut sent = 0;
    while sent < items {
        let n = (batch as u64).min(items - sent);
        for i in 0..n {
            while q.push(i).is_err() {
                thread::yield_now();
            }
        }
        sent += n;
    }
    consumer.join().unwrap();
    let elapsed = start.elapsed();
    let _ = pin_current(&Placement::Fenced(cpus.to_vec()));
    (elapsed, items)
}
