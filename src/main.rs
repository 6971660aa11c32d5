//! The `conntrackd` binary: a thin edge over the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("conntrackd: not yet implemented");
    ExitCode::FAILURE
}
