//! Running external commands with failures that explain themselves.

use std::process::{Command, Output};

/// Runs `argv` (program and arguments) to completion and returns its output, whatever the
/// exit status; panics only if the program cannot be started.
pub(crate) fn run(argv: &[&str]) -> Output {
    let (prog, args) = argv.split_first().expect("empty command line");
    Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"))
}

/// Panics with the command line, exit status, stdout and stderr unless `out` succeeded;
/// returns stdout as text.
pub(crate) fn expect_ok(what: &dyn std::fmt::Debug, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what:?} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// [`run`] followed by [`expect_ok`].
pub(crate) fn expect_run(argv: &[&str]) -> String {
    expect_ok(&argv, run(argv))
}

/// Runs `argv` with `input` on its stdin and returns its output, whatever the exit status.
pub(crate) fn run_with_stdin(argv: &[&str], input: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;

    let (prog, args) = argv.split_first().expect("empty command line");
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"));
    // The input is small (rulesets, configs), so writing it all before reading cannot
    // deadlock on a full stdout pipe.
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(input.as_bytes())
        .unwrap_or_else(|e| panic!("write stdin of {argv:?}: {e}"));
    drop(stdin);
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {argv:?}: {e}"))
}
