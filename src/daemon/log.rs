//! The daemon's log in the C daemon's line format (control-and-cli.md §3.1):
//! `[<ctime>] (pid=<pid>) [<level>] <message>`, written to `LogFile` and, in console mode, to
//! stdout (info/notice) or stderr (warning/ERROR). With `Syslog on|<facility>` every line also
//! goes to syslog as the bare message, as the C daemon sends it through glibc's `syslog(3)`:
//! one datagram `<PRI>Mmm dd hh:mm:ss conntrack-tools[<pid>]: <message>` to `/dev/log`
//! ([`Syslog`]). The tag is the C package name, not the program's (observed with 1.4.7,
//! `tests/systemd.rs`).
//!
//! Only start-up, shutdown and rare events are logged here; steady-state numbers are
//! counters (style.md), so a mutex around the file is no hot-path cost.
//!
//! [`Log::reopen`] (on SIGHUP) opens the configured path again, so that after logrotate has
//! renamed the file the next line lands in a new file at the configured path; lines already
//! written stay in the renamed one. The C daemon 1.4.7 has no such signal (SIGHUP kills it).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Severity, printed as the C daemon does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `info`.
    Info,
    /// `notice`.
    Notice,
    /// `warning`.
    Warning,
    /// `ERROR`.
    Error,
}

impl Level {
    /// The `<syslog.h>` severity (`LOG_INFO`, `LOG_NOTICE`, `LOG_WARNING`, `LOG_ERR`).
    fn severity(self) -> i32 {
        match self {
            Self::Info => 6,
            Self::Notice => 5,
            Self::Warning => 4,
            Self::Error => 3,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Notice => "notice",
            Self::Warning => "warning",
            Self::Error => "ERROR",
        }
    }
}

/// The daemon log.
#[derive(Debug)]
pub struct Log {
    file: Option<Mutex<File>>,
    path: Option<PathBuf>,
    console: bool,
    syslog: Option<Syslog>,
}

/// The local syslog socket, as glibc's `syslog(3)` uses it.
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// A syslog sender: datagrams to the local syslog socket in the format glibc's `syslog(3)`
/// writes (RFC 3164 style, local time = UTC on these hosts). A missing or full socket loses
/// the line, as with glibc: logging must never stop the daemon.
#[derive(Debug)]
pub struct Syslog {
    sock: std::os::unix::net::UnixDatagram,
    path: PathBuf,
    facility: i32,
}

impl Syslog {
    /// A sender for `facility` (a `LOG_*` facility value, already shifted) towards `path`.
    pub fn new(facility: i32, path: &Path) -> std::io::Result<Self> {
        let sock = std::os::unix::net::UnixDatagram::unbound()?;
        // A full syslog socket must not block the thread that logs.
        sock.set_nonblocking(true)?;
        Ok(Self {
            sock,
            path: path.to_owned(),
            facility,
        })
    }

    /// The datagram for `msg` at `level`, sent at `now` by process `pid`.
    pub fn datagram(&self, now: SystemTime, pid: u32, level: Level, msg: &str) -> String {
        // ctime's "Www Mmm dd hh:mm:ss yyyy" → syslog's "Mmm dd hh:mm:ss".
        let t = ctime(now);
        let stamp = t.get(4..19).unwrap_or(&t);
        format!(
            "<{}>{stamp} conntrack-tools[{pid}]: {msg}",
            self.facility | level.severity()
        )
    }

    /// Sends one line; errors are ignored (see the type's doc).
    pub fn send(&self, level: Level, msg: &str) {
        let d = self.datagram(SystemTime::now(), std::process::id(), level, msg);
        let _ = self.sock.send_to(d.as_bytes(), &self.path);
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Log {
    /// Opens `path` for appending (if any); `console` also copies lines to stdout/stderr.
    pub fn open(path: Option<&Path>, console: bool) -> std::io::Result<Self> {
        let file = match path {
            Some(p) => Some(Mutex::new(open_append(p)?)),
            None => None,
        };
        Ok(Self {
            file,
            path: path.map(Path::to_owned),
            console,
            syslog: None,
        })
    }

    /// Also sends every line to syslog with `facility` (`None`: `Syslog off`, no change).
    pub fn with_syslog(mut self, facility: Option<crate::config::SyslogFacility>) -> Self {
        if let Some(f) = facility {
            match Syslog::new(f.to_libc(), Path::new(SYSLOG_SOCKET)) {
                Ok(s) => self.syslog = Some(s),
                Err(e) => self.line(Level::Warning, &format!("can't open syslog socket: {e}")),
            }
        }
        self
    }

    /// Reopens the log file at its configured path (SIGHUP, after logrotate renamed it).
    /// On failure the old file stays in use and the error is returned for the caller to
    /// log (into that old file, the only place left).
    pub fn reopen(&self) -> std::io::Result<()> {
        let (Some(f), Some(path)) = (&self.file, &self.path) else {
            return Ok(());
        };
        let new = open_append(path)?;
        *f.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = new;
        Ok(())
    }

    /// Stops copying to the console (after daemonising, stdout/stderr are gone).
    pub fn detach_console(&mut self) {
        self.console = false;
    }

    /// Writes one line.
    pub fn line(&self, level: Level, msg: &str) {
        let text = format!(
            "[{}] (pid={}) [{}] {msg}\n",
            ctime(SystemTime::now()),
            std::process::id(),
            level.name()
        );
        if let Some(f) = &self.file {
            let mut f = f.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = f.write_all(text.as_bytes());
        }
        if let Some(s) = &self.syslog {
            s.send(level, msg);
        }
        if self.console {
            match level {
                Level::Info | Level::Notice => {
                    let _ = std::io::stdout().write_all(text.as_bytes());
                }
                Level::Warning | Level::Error => {
                    let _ = std::io::stderr().write_all(text.as_bytes());
                }
            }
        }
    }

    /// `notice` line.
    pub fn notice(&self, msg: &str) {
        self.line(Level::Notice, msg);
    }

    /// `warning` line.
    pub fn warning(&self, msg: &str) {
        self.line(Level::Warning, msg);
    }

    /// `ERROR` line.
    pub fn error(&self, msg: &str) {
        self.line(Level::Error, msg);
    }
}

/// `ctime(3)` without the newline, in UTC (the daemons on these hosts run with TZ unset).
pub fn ctime(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mon = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mon <= 2);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        WD[days.rem_euclid(7) as usize],
        MO[(mon - 1) as usize],
        d,
        h,
        m,
        s,
        y
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn test_syslog_datagram() {
        let path = std::env::temp_dir().join(format!("ctd-syslog-unit-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let rx = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // LOG_LOCAL3 = 19 << 3; notice = 5 → 157.
        let s = Syslog::new(19 << 3, &path).unwrap();
        let t = UNIX_EPOCH + Duration::from_secs(1_795_607_355);
        assert_eq!(
            s.datagram(t, 42, Level::Notice, "initialization completed"),
            "<157>Nov 25 11:49:15 conntrack-tools[42]: initialization completed"
        );
        s.send(Level::Error, "boom");
        let mut buf = [0u8; 256];
        let n = rx.recv(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]);
        assert!(got.starts_with("<155>") && got.ends_with(": boom"), "{got}");
        let _ = std::fs::remove_file(&path);
        // Nobody listening any more: the line is lost, nothing fails.
        s.send(Level::Info, "lost");
    }

    #[test]
    fn test_ctime_format() {
        // 2026-11-25 11:42:35 UTC, a Wednesday.
        let t = UNIX_EPOCH + Duration::from_secs(1_795_607_355);
        assert_eq!(ctime(t), "Wed Nov 25 11:49:15 2026");
        assert_eq!(ctime(UNIX_EPOCH), "Thu Jan  1 00:00:00 1970");
    }
}

/// Forwards the library's `tracing` events of level INFO and above to the daemon [`Log`]
/// (ERROR → `ERROR`, WARN → `warning`, INFO → `notice`), so that messages such as
/// "device `X' becomes dedicated link" reach the LogFile as they do with the C daemon.
/// DEBUG and TRACE are disabled at the call site (no cost on hot paths).
#[derive(Debug)]
pub struct LogLayer(pub std::sync::Arc<Log>);

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            self.0.push_str(&format!(" {}={value}", field.name()));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogLayer {
    fn enabled(
        &self,
        metadata: &tracing::Metadata<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        *metadata.level() <= tracing::Level::INFO
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::INFO)
    }

    fn on_event(&self, ev: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        let level = match *ev.metadata().level() {
            tracing::Level::ERROR => Level::Error,
            tracing::Level::WARN => Level::Warning,
            tracing::Level::INFO => Level::Notice,
            _ => return,
        };
        let mut m = Message(String::new());
        ev.record(&mut m);
        self.0.line(level, &m.0);
    }
}
