//! `conntrackd --takeover`: primary-backup.sh's `primary` transition in one process.
//!
//! The four requests the 1.4.7 notify script sends one `conntrackd` process at a time
//! (reference control-and-cli.md §4), sent here in the same order over the ordinary control
//! protocol, so it works against our daemon and the C one alike:
//!
//! 1. `-c` (ALL_COMMIT): the external cache into the kernel. Both daemons keep the
//!    connection open until the commit has finished (sync-modes.md §6 item 7), so when the
//!    reply ends the peer's flows are in the kernel.
//! 2. `-f` (ALL_FLUSH_CACHE): empty the internal **and** external caches, as the C script
//!    does. External: once committed, its entries must not stay behind — a later commit (the
//!    next takeover) would resurrect connections the old primary has closed meanwhile.
//!    Internal: so that step 3 rebuilds it as an exact copy of the kernel table (which now
//!    includes the commit); a resync only adds and updates, it would keep stale objects,
//!    and step 4 would send them to the new backup.
//! 3. `-R` (ALL_RESYNC_MASTER): refill the internal cache from the kernel.
//! 4. `-B` (SEND_BULK): send the whole internal cache to the peer, the new backup.
//!
//! Unlike the script, the sequence **stops at the first step that fails**: flushing the
//! external cache after a failed commit would throw away the only copy of the state that
//! did not reach the kernel. Each step is printed with its duration; a failure names the
//! step and the skipped ones, and the exit status is 1.
//!
//! What counts as a failure is what the protocol can show: the daemon cannot be reached,
//! the request cannot be written, or the reply breaks off with an error. The protocol has
//! no status code, so a request the daemon ignores (the C daemon skips a commit while
//! another one runs) looks like success; a daemon that dies during a step makes the next
//! step fail to connect.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::CANT_CONNECT;
use crate::ctl::RequestCode;

/// One request of the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The request code sent.
    pub code: RequestCode,
    /// The equivalent client flag, for messages.
    pub flag: &'static str,
    /// What the step does, for messages.
    pub what: &'static str,
}

/// The sequence, in order (the order is the point: commit strictly first).
pub const STEPS: [Step; 4] = [
    Step {
        code: RequestCode::ALL_COMMIT,
        flag: "-c",
        what: "commit the external cache to the kernel",
    },
    Step {
        code: RequestCode::ALL_FLUSH_CACHE,
        flag: "-f",
        what: "flush the internal and external caches",
    },
    Step {
        code: RequestCode::ALL_RESYNC_MASTER,
        flag: "-R",
        what: "resync the internal cache with the kernel",
    },
    Step {
        code: RequestCode::SEND_BULK,
        flag: "-B",
        what: "bulk send the internal cache to the peers",
    },
];

/// Why a step failed.
#[derive(Debug)]
pub enum StepError {
    /// No daemon at the control socket (or no `UNIX` block in the configuration).
    Connect(Option<io::Error>),
    /// The request could not be written.
    Send(io::Error),
    /// Reading the reply failed before the daemon closed the connection.
    Reply(io::Error),
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(None) => write!(f, "{CANT_CONNECT} (no UNIX Path configured)"),
            Self::Connect(Some(e)) => write!(f, "{CANT_CONNECT} ({e})"),
            Self::Send(e) => write!(f, "sending the request: {e}"),
            Self::Reply(e) => write!(f, "reading the reply: {e}"),
        }
    }
}

impl std::error::Error for StepError {}

/// Sends one request and waits until the daemon closes the connection; returns the reply.
pub fn run_step(path: Option<&Path>, step: &Step) -> Result<Vec<u8>, StepError> {
    let path = path.ok_or(StepError::Connect(None))?;
    let mut stream = UnixStream::connect(path).map_err(|e| StepError::Connect(Some(e)))?;
    stream
        .write_all(&step.code.to_bytes())
        .map_err(StepError::Send)?;
    let mut reply = Vec::new();
    loop {
        let mut buf = [0u8; 1024];
        match stream.read(&mut buf) {
            Ok(0) => return Ok(reply),
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StepError::Reply(e)),
        }
    }
}

/// Runs [`STEPS`] against the daemon at `path`, printing one line per step to `out` and the
/// failure (if any) to `err`. Returns whether every step succeeded.
pub fn run_steps(
    path: Option<&Path>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<bool> {
    let started = Instant::now();
    for (i, step) in STEPS.iter().enumerate() {
        let t = Instant::now();
        let res = run_step(path, step);
        let took = t.elapsed();
        match res {
            Ok(reply) => {
                writeln!(
                    out,
                    "takeover: step {}/{} {} ({}): done in {}",
                    i + 1,
                    STEPS.len(),
                    step.what,
                    step.flag,
                    secs(took)
                )?;
                // Both daemons answer these requests with nothing; pass on anything else.
                if !reply.is_empty() {
                    out.write_all(&reply)?;
                }
                out.flush()?;
            }
            Err(e) => {
                writeln!(
                    err,
                    "takeover: step {}/{} {} ({}): FAILED after {}: {e}",
                    i + 1,
                    STEPS.len(),
                    step.what,
                    step.flag,
                    secs(took)
                )?;
                let skipped: Vec<&str> = STEPS[i + 1..].iter().map(|s| s.flag).collect();
                if !skipped.is_empty() {
                    writeln!(
                        err,
                        "takeover: skipped {} (nothing is flushed unless the commit succeeded)",
                        skipped.join(" ")
                    )?;
                }
                writeln!(
                    err,
                    "takeover: FAILED at step {} ({}) after {}",
                    i + 1,
                    step.flag,
                    secs(started.elapsed())
                )?;
                return Ok(false);
            }
        }
    }
    writeln!(
        out,
        "takeover: complete, {} steps in {}",
        STEPS.len(),
        secs(started.elapsed())
    )?;
    Ok(true)
}

fn secs(d: Duration) -> String {
    format!("{:.6} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;

    fn temp_sock(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("ctd-takeover-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    /// A listener that answers `n` requests with nothing, recording their codes in order.
    fn record(path: &Path, n: usize) -> std::thread::JoinHandle<Vec<i32>> {
        let listener = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            (0..n)
                .map(|_| {
                    let (mut s, _) = listener.accept().unwrap();
                    let mut code = [0u8; 4];
                    s.read_exact(&mut code).unwrap();
                    i32::from_ne_bytes(code)
                })
                .collect()
        })
    }

    #[test]
    fn test_steps_in_order() {
        let path = temp_sock("order");
        let server = record(&path, 4);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert!(run_steps(Some(&path), &mut out, &mut err).unwrap());
        // ALL_COMMIT, ALL_FLUSH_CACHE, ALL_RESYNC_MASTER, SEND_BULK.
        assert_eq!(server.join().unwrap(), vec![46, 45, 44, 22]);
        let out = String::from_utf8(out).unwrap();
        for (i, flag) in ["-c", "-f", "-R", "-B"].iter().enumerate() {
            assert!(
                out.contains(&format!("step {}/4", i + 1)) && out.contains(flag),
                "{out}"
            );
        }
        assert!(out.contains("takeover: complete"), "{out}");
        assert!(err.is_empty());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn test_no_daemon_fails_at_commit() {
        let path = temp_sock("none");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert!(!run_steps(Some(&path), &mut out, &mut err).unwrap());
        let err = String::from_utf8(err).unwrap();
        assert!(
            err.contains("step 1/4") && err.contains(CANT_CONNECT),
            "{err}"
        );
        assert!(err.contains("skipped -f -R -B"), "{err}");
        assert!(out.is_empty());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert!(!run_steps(None, &mut out, &mut err).unwrap());
        assert!(String::from_utf8(err).unwrap().contains("no UNIX Path"));
    }

    #[test]
    fn test_daemon_gone_after_commit_stops_there() {
        // The "daemon" serves the commit, then disappears: the flush must fail to connect
        // and nothing after it may be attempted.
        let path = temp_sock("gone");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut code = [0u8; 4];
            s.read_exact(&mut code).unwrap();
            // Stop listening before the client sees the end of the commit's reply, so
            // its next connect is refused (the socket file stays, nobody listens).
            drop(listener);
            i32::from_ne_bytes(code)
        });
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert!(!run_steps(Some(&path), &mut out, &mut err).unwrap());
        assert_eq!(server.join().unwrap(), 46);
        let (out, err) = (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        );
        assert!(
            out.contains("step 1/4") && out.contains("(-c): done"),
            "{out}"
        );
        assert!(
            err.contains("step 2/4") && err.contains("(-f): FAILED"),
            "{err}"
        );
        assert!(err.contains("skipped -R -B"), "{err}");
        let _ = std::fs::remove_file(&path);
    }
}
