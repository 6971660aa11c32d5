//! Shared harness of the micro-benchmarks in `bench/micro/`.
//!
//! Each bench is a plain `main` (glommio's `benches/` style, no criterion): it builds its
//! inputs, times a loop of `ops` operations `runs` times, and prints the cost per operation
//! as the median (and min/max) of the runs. Nothing here reads a socket: the inputs are
//! captured vectors ([`vectors`]) or generated flows ([`flows`]).
//!
//! Absolute numbers on the shared 2-core VM move by 20–50 % with the neighbours' load, so
//! every bench prints the load average next to its rows; compare rows within one run, and
//! use `perf/callgrind.sh` (instruction counts) for anything that has to be repeatable.

pub mod flows;
pub mod harness;
pub mod latency;
pub mod plot;
pub mod testbed;
pub mod vectors;

pub use harness::{Opts, Sample, header, measure, measure_with, row};
