//! Client mode: `conntrackd -s/-i/-e/-c/-f/-F/-R/-B/-n/-k/-t` against a running daemon.
//!
//! As the 1.4.7 client (reference control-and-cli.md §1.2, §2.3, §2.5): connect to the
//! configured UNIX path, write the request code, copy everything the daemon writes to stdout
//! until it closes, exit 0. An unreachable daemon is reported as a log-style line on stderr,
//! "can't connect: is conntrackd running? appropriate permissions?", with exit code 1 —
//! keepalived's `primary-backup.sh` relies on that status to decide whether to start one.
//! Works against our daemon and the C one alike: the protocol has no version.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;

pub mod takeover;

use super::proto::RequestCode;
use super::render::{LogLevel, log_line};
use crate::cli::{self, StatsKind};
use crate::config::Config;

/// The C client's message when the daemon cannot be reached (any connect error).
pub const CANT_CONNECT: &str = "can't connect: is conntrackd running? appropriate permissions?";

/// The C client's warning for `-s multicast`.
pub const MULTICAST_WARNING: &str = "use `link' instead of `multicast' as parameter.";

/// The C client reads the reply in chunks of this size; kept so that our writes to stdout
/// are cut the same way (it matters to nobody, but costs nothing).
const CHUNK: usize = 1023;

/// Sends `req` to the daemon configured in `config` and copies the reply to stdout.
///
/// Returns the exit status the C client would use. I/O errors on stdout (a closed pipe) are
/// returned as errors for `main` to judge.
pub fn run(config: &Config, req: cli::Request) -> anyhow::Result<ExitCode> {
    if req == cli::Request::Stats(StatsKind::Multicast) {
        eprintln!(
            "{}",
            log_line(SystemTime::now(), LogLevel::Warning, MULTICAST_WARNING)
        );
    }
    let code = RequestCode::from_request(req);
    // Without a `UNIX` block the C daemon binds an unnamed socket nobody can reach; the
    // client then fails to connect, with the usual message.
    let Some(path) = config.general.unix_path.as_deref() else {
        return Ok(cant_connect());
    };
    let Ok(stream) = connect(path, code) else {
        return Ok(cant_connect());
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    copy_reply(stream, &mut out).context("reading the daemon's reply")?;
    out.flush().context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// `--takeover`: the primary transition's four requests in one process (see [`takeover`]).
/// Progress goes to stdout, a failure to stderr; exit 1 if a step failed.
pub fn run_takeover(config: &Config) -> anyhow::Result<ExitCode> {
    let (stdout, stderr) = (io::stdout(), io::stderr());
    let ok = takeover::run_steps(
        config.general.unix_path.as_deref(),
        &mut stdout.lock(),
        &mut stderr.lock(),
    )
    .context("writing the takeover report")?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Connects to `path` and sends `code`.
pub fn connect(path: &Path, code: RequestCode) -> io::Result<UnixStream> {
    let mut stream = UnixStream::connect(path)?;
    stream.write_all(&code.to_bytes())?;
    Ok(stream)
}

/// Copies the daemon's reply to `out` until the daemon closes; returns the byte count.
///
/// A read error after some output (the daemon died mid-reply) ends the copy like EOF, as in
/// the C client, which stops at the first `read` that does not return data.
pub fn copy_reply(mut stream: UnixStream, out: &mut dyn Write) -> io::Result<u64> {
    let mut buf = [0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::debug!(error = %e, "control reply read failed");
                break;
            }
        };
        out.write_all(&buf[..n])?;
        total += n as u64;
    }
    Ok(total)
}

/// Convenience for tests and tools: one request, the whole reply.
pub fn request(path: &Path, code: RequestCode) -> io::Result<Vec<u8>> {
    let stream = connect(path, code)?;
    let mut reply = Vec::new();
    copy_reply(stream, &mut reply)?;
    Ok(reply)
}

fn cant_connect() -> ExitCode {
    eprintln!(
        "{}",
        log_line(SystemTime::now(), LogLevel::Error, CANT_CONNECT)
    );
    ExitCode::FAILURE
}
