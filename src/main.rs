//! The `conntrackd` binary: a thin edge over the library.
//!
//! argv → [`cli::Invocation`] → run → exit status. `anyhow` is allowed here and nowhere in the
//! library.

use std::io::Write;
use std::process::ExitCode;

use conntrackd::cli::{self, Command};
use conntrackd::config;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let inv = match cli::parse(&args) {
        Ok(inv) => inv,
        Err(err) => {
            if err.shows_usage() {
                print!("{}", cli::USAGE);
            }
            eprintln!("conntrackd: {err}");
            return ExitCode::from(err.exit_code());
        }
    };
    for note in &inv.notes {
        eprintln!("conntrackd: {note}");
    }
    match run(&inv) {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`conntrackd -s | head`) is not an error worth reporting.
            if let Some(io) = err.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("conntrackd: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(inv: &cli::Invocation) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match inv.command {
        Command::Version => {
            writeln!(
                out,
                "conntrackd (Rust) v{}, compatible with conntrackd v1.4.7. Licensed under GPLv2.",
                env!("CARGO_PKG_VERSION")
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Help => {
            out.write_all(cli::USAGE.as_bytes())?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::CheckConfig | Command::Daemon { .. } | Command::Client(_) | Command::Takeover => {}
    }
    // As the C daemon, every mode (client ones included) parses the whole file first and
    // refuses to go on when it is broken.
    let conf = match config::load(&inv.config) {
        Ok(conf) => conf,
        Err(errors) => {
            let text = errors.to_string();
            eprint!("{text}");
            if !text.ends_with('\n') {
                eprintln!();
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    match inv.command {
        Command::Daemon { background } => {
            // The daemon's threads log to stdout too: never hold its lock across the run.
            drop(out);
            for w in &conf.warnings {
                eprintln!("WARNING: {w}");
            }
            return match conntrackd::daemon::run(&conf, background) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("conntrackd: {e}");
                    Ok(ExitCode::FAILURE)
                }
            };
        }
        Command::Client(req) => {
            drop(out);
            return conntrackd::ctl::client::run(&conf, req);
        }
        Command::Takeover => {
            drop(out);
            return conntrackd::ctl::client::run_takeover(&conf);
        }
        _ => {}
    }
    writeln!(out, "{}: OK: {}", inv.config.display(), conf.summary())?;
    Ok(ExitCode::SUCCESS)
}
