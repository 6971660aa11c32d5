//! The C daemon's log line: `[` + `ctime()` + `] (pid=` + pid + `) [` + level + `] ` + message.
//!
//! The client prints its errors in this form too (e.g. "can't connect: …" on stderr), so
//! it lives here with the other output layouts. `ctime()` uses the local time zone; without
//! `unsafe` (no `localtime_r`) we render UTC, which is what the test machines and most
//! servers run with. Everything else matches byte for byte.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Severity words of the C daemon's log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// `info`.
    Info,
    /// `notice`.
    Notice,
    /// `warning`.
    Warning,
    /// `ERROR` (upper case in 1.4.7).
    Error,
}

impl LogLevel {
    /// The word between brackets.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Notice => "notice",
            Self::Warning => "warning",
            Self::Error => "ERROR",
        }
    }
}

/// One log line without the trailing newline, for this process.
pub fn log_line(now: SystemTime, level: LogLevel, msg: &str) -> String {
    format!(
        "[{}] (pid={}) [{}] {msg}",
        ctime(now),
        std::process::id(),
        level.as_str()
    )
}

/// `ctime()` without its newline, in UTC: `Wed Nov 25 11:42:35 2026`, the day of month
/// padded to two columns with a space (`Nov  5`).
pub fn ctime(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let wday = (days + 4).rem_euclid(7) as usize;
    const WDAY: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut s = String::with_capacity(24);
    let _ = write!(
        s,
        "{} {}{:3} {:02}:{:02}:{:02} {}",
        WDAY[wday],
        MON[(m - 1) as usize],
        d,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        y
    );
    s
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn test_ctime() {
        // The reference's sample line: [Wed Nov 25 11:42:35 2026].
        assert_eq!(ctime(at(1_795_606_955)), "Wed Nov 25 11:42:35 2026");
        assert_eq!(ctime(at(0)), "Thu Jan  1 00:00:00 1970");
        // Leap day.
        assert_eq!(ctime(at(951_782_400)), "Tue Feb 29 00:00:00 2000");
    }

    #[test]
    fn test_log_line() {
        let line = log_line(at(0), LogLevel::Error, "can't connect");
        assert_eq!(
            line,
            format!(
                "[Thu Jan  1 00:00:00 1970] (pid={}) [ERROR] can't connect",
                std::process::id()
            )
        );
    }
}
