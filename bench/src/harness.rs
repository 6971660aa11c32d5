//! Timing: run a closure `runs` times, report nanoseconds per operation.
//!
//! The median of the runs is the headline (robust against one run that lost its CPU to a
//! neighbour); min and max show the spread. One untimed warm-up run precedes the timed ones
//! unless `--runs 1` (the callgrind recipe wants exactly one pass).

use std::hint::black_box;
use std::time::Instant;

/// Command-line options shared by every micro-bench: `--runs N`, `--scale F`.
///
/// `--scale` multiplies every bench's operation count (0.1 for a smoke run, 10 for a calm
/// machine); unknown arguments are left in [`Opts::rest`] for the bench itself.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Timed runs per row.
    pub runs: usize,
    /// Multiplier of the default operation counts.
    pub scale: f64,
    /// Arguments this parser did not consume, in order.
    pub rest: Vec<String>,
}

impl Opts {
    /// Parses `std::env::args()`, with `default_runs` when `--runs` is absent.
    pub fn from_args(default_runs: usize) -> Self {
        let mut o = Self {
            runs: default_runs,
            scale: 1.0,
            rest: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--runs" => o.runs = parse::<usize>(args.next(), "--runs").max(1),
                "--scale" => o.scale = parse(args.next(), "--scale"),
                // `cargo bench` passes --bench to harness=false targets; accept it.
                "--bench" => {}
                _ => o.rest.push(a),
            }
        }
        o
    }

    /// `n` scaled by `--scale`, at least 1.
    pub fn n(&self, n: usize) -> usize {
        ((n as f64 * self.scale) as usize).max(1)
    }

    /// The value after `--name` in [`Self::rest`], parsed, or `default`.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        self.rest
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.rest.get(i + 1))
            .map_or(default, |v| parse(Some(v.clone()), name))
    }

    /// True if the flag `name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.rest.iter().any(|a| a == name)
    }
}

fn parse<T: std::str::FromStr>(v: Option<String>, name: &str) -> T {
    match v.as_deref().map(str::parse) {
        Some(Ok(x)) => x,
        _ => {
            eprintln!("{name}: expected a number");
            std::process::exit(2)
        }
    }
}

/// Nanoseconds per operation over the timed runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Median run.
    pub median: f64,
    /// Fastest run.
    pub min: f64,
    /// Slowest run.
    pub max: f64,
}

/// Times `body` (which performs `ops` operations) `runs` times; see [`measure_with`].
pub fn measure<R>(runs: usize, ops: usize, mut body: impl FnMut() -> R) -> Sample {
    measure_with(runs, ops, || (), |()| body())
}

/// Like [`measure`], with an untimed `setup` before each run whose result the timed `body`
/// consumes (e.g. a fresh, empty cache for an insert bench).
pub fn measure_with<S, R>(
    runs: usize,
    ops: usize,
    mut setup: impl FnMut() -> S,
    mut body: impl FnMut(S) -> R,
) -> Sample {
    if runs > 1 {
        black_box(body(setup()));
    }
    let mut ns: Vec<f64> = (0..runs)
        .map(|_| {
            let s = setup();
            let t = Instant::now();
            black_box(body(s));
            t.elapsed().as_nanos() as f64 / ops.max(1) as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    Sample {
        median: ns[ns.len() / 2],
        min: ns[0],
        max: ns[ns.len() - 1],
    }
}

/// Prints one result row: name, median ns/op, min and max, and a free-form note.
pub fn row(name: &str, s: &Sample, note: &str) {
    println!(
        "{name:<50} {:>9.1} ns/op  (min {:>8.1}, max {:>8.1}) {note}",
        s.median, s.min, s.max
    );
}

/// Prints the bench name, the run count and the machine's state: CPUs and the load average
/// (numbers taken under load are not comparable with calm ones).
pub fn header(bench: &str, opts: &Opts) {
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into());
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "== {bench}: median of {} runs, scale {}, {cpus} cpus, loadavg {load}",
        opts.runs, opts.scale
    );
}
