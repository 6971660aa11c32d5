//! Redraws the PNG charts of a side-by-side run directory from its `raw.csv`.
//!
//! ```text
//! plot DIR
//! ```
//!
//! `sidebyside` draws them itself at the end of a run; this is for older runs or after an
//! edit of the charts (see `conntrackd_bench::plot`).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: plot DIR (a bench/runs/ directory holding raw.csv)");
        return ExitCode::FAILURE;
    };
    let csv = match std::fs::read_to_string(dir.join("raw.csv")) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("plot: {}: {e}", dir.join("raw.csv").display());
            return ExitCode::FAILURE;
        }
    };
    match conntrackd_bench::plot::write_charts(&csv, &dir) {
        Ok(files) if files.is_empty() => {
            eprintln!("plot: no churn or latency scenarios in this run; nothing drawn");
            ExitCode::SUCCESS
        }
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("plot: {e}");
            ExitCode::FAILURE
        }
    }
}
