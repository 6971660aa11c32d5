//! conntrackd.conf 1.4.7: a typed, validated [`Config`] from the daemon's configuration file.
//!
//! The pipeline is `lex` (bytes → tokens with spans, reproducing the C flex rules and
//! quirks) → `parse` (tokens → AST, every syntax error collected) → `lower` (AST →
//! [`Config`]: C defaults, value checks, cross-field checks, warnings). It accepts exactly
//! the files the Debian 1.4.7 binary accepts (`conntrackd -C FILE -s` is our oracle) but
//! reports **all** problems, each as `FILE:LINE:COL: message`, where the C daemon stops at
//! the first one.
//!
//! Facts come from `/work/shared/reference/config-grammar.md` and `sync-modes.md` (§11
//! defaults); where the man page and the 1.4.7 parser disagree we follow the parser.
//!
//! What the parser does *not* check, because the C parser does not either (the daemon fails
//! later, at start-up): interface existence, a missing `Interface`, a missing port. Those
//! come out as [`Warning`]s where useful.

mod error;
mod filter;
mod grammar;
mod lex;
mod lower;
mod lower_filter;
mod lower_helper;
mod lower_sync;
mod parse;
mod sync;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use error::{Error, ErrorKind, Errors, Span, Warning};
pub use filter::{Filter, FilterFrom, FilterSet, Policy, Prefix, Protocol, TcpState};
pub use sync::{Channel, ExpectationSync, Sync, SyncMode, Transport};

/// The complete, validated configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// `General { … }` (defaults if absent).
    pub general: General,
    /// `Sync { … }`; `None` if absent. Exclusive with `stats`.
    pub sync: Option<Sync>,
    /// `Stats { … }`; `None` if absent. Exclusive with `sync`.
    pub stats: Option<Stats>,
    /// `Helper { … }`; `None` if absent (user-space helpers are not run by this daemon,
    /// but the section is parsed and typed).
    pub helpers: Option<Helpers>,
    /// Non-fatal remarks, in file order (deprecated aliases, ignored items…).
    pub warnings: Vec<Warning>,
}

/// A syslog facility (`Syslog on` = `daemon`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyslogFacility {
    /// `daemon`.
    Daemon,
    /// `local0`…`local7` (the number).
    Local(u8),
}

impl SyslogFacility {
    /// The `LOG_*` facility value of `<syslog.h>`.
    pub fn to_libc(self) -> i32 {
        match self {
            Self::Daemon => 3 << 3,
            Self::Local(n) => (16 + i32::from(n.min(7))) << 3,
        }
    }
}

/// Scheduling policy of `Scheduler { Type … }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SchedPolicy {
    /// `rr` (any case).
    RoundRobin,
    /// `fifo` (any case).
    Fifo,
}

/// `Scheduler { … }`.
///
/// 1.4.7 always switches to a real-time policy: without `Type` it uses SCHED_RR at the
/// maximum priority and ignores `Priority` (C: `set_scheduler()` in run.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scheduler {
    /// `Type`; `None` = default (SCHED_RR at maximum priority).
    pub policy: Option<SchedPolicy>,
    /// `Priority` 0..=99 (default 0; only used together with `Type`).
    pub priority: u8,
}

/// The typed `General` section, with the C defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct General {
    /// `HashSize`, default 65536.
    pub hash_size: u32,
    /// `HashLimit`, default 262144.
    pub hash_limit: u32,
    /// `LogFile`: `on` = /var/log/conntrackd.log; `off` leaves an earlier path in place.
    pub log_file: Option<PathBuf>,
    /// `Syslog`; `None` = off (default).
    pub syslog: Option<SyslogFacility>,
    /// `LockFile`, default /var/lock/conntrackd.lock.
    pub lock_file: PathBuf,
    /// `UNIX { Path }`: the control socket; no default in C.
    pub unix_path: Option<PathBuf>,
    /// `NetlinkBufferSize` (alias `SocketBufferSize`); `None` = system default. The C
    /// daemon applies it only if it is ≤ `netlink_buffer_size_max_growth`.
    pub netlink_buffer_size: Option<u32>,
    /// `NetlinkBufferSizeMaxGrowth` (aliases `SocketBufferSizeMaxGrown`,
    /// `SocketBufferSizeMaxGrowth`), default 0.
    pub netlink_buffer_size_max_growth: u32,
    /// `NetlinkOverrunResync` in seconds; `None` = disabled (`off`). Default 30; `on` and
    /// 0 mean 30.
    pub netlink_overrun_resync: Option<u32>,
    /// `NetlinkEventsReliable`, default off.
    pub netlink_events_reliable: bool,
    /// `EventIterationLimit`, default 100 (0 = default).
    pub event_iteration_limit: u32,
    /// `PollSecs`: poll the kernel table instead of listening to events; must be > 0.
    pub poll_secs: Option<u32>,
    /// `Filter { … }` (all lists accumulated).
    pub filter: Filter,
    /// `Scheduler { … }`.
    pub scheduler: Scheduler,
    /// `Systemd`, default on (Debian builds with systemd support).
    pub systemd: bool,
}

/// The C defaults (`init_config()` and the constants of conntrackd.h). Sources in the
/// reference: config-grammar.md §3.1 (table "default" column) and sync-modes.md §11.
impl Default for General {
    fn default() -> Self {
        Self {
            // §11: 65536 and 262144 since 1.4.7 (1.4.2 had no default).
            hash_size: 65536,
            hash_limit: 262_144,
            // §3.1: LogFile and Syslog are off unless configured.
            log_file: None,
            syslog: None,
            // §11: /var/lock/conntrackd.lock.
            lock_file: PathBuf::from(DEFAULT_LOCKFILE),
            // §3.1: no default control socket path.
            unix_path: None,
            // §3.1: system default buffer, MaxGrowth 0.
            netlink_buffer_size: None,
            netlink_buffer_size_max_growth: 0,
            // §11: resync 30 s after an overrun.
            netlink_overrun_resync: Some(30),
            // §3.1: off.
            netlink_events_reliable: false,
            // §11: 100 events per wake-up.
            event_iteration_limit: 100,
            // §3.1: events, not polling.
            poll_secs: None,
            filter: Filter::default(),
            // §11: SCHED_RR at maximum priority (`policy: None`).
            scheduler: Scheduler::default(),
            // §3.1: on, Debian builds with systemd support.
            systemd: true,
        }
    }
}

/// Default `LockFile`.
pub const DEFAULT_LOCKFILE: &str = "/var/lock/conntrackd.lock";
/// Path used by `General { LogFile on }`.
pub const DEFAULT_LOGFILE: &str = "/var/log/conntrackd.log";
/// Path used by `Stats { LogFile on }`.
pub const DEFAULT_STATS_LOGFILE: &str = "/var/log/conntrackd-stats.log";

/// The typed `Stats` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stats {
    /// `LogFile`: one line per destroyed connection; `on` = /var/log/conntrackd-stats.log.
    pub log_file: Option<PathBuf>,
    /// `Syslog`; `None` = off.
    pub syslog: Option<SyslogFacility>,
}

/// Layer 3 of a helper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HelperFamily {
    /// `inet`.
    Inet,
    /// `inet6`.
    Inet6,
}

/// Layer 4 of a helper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HelperProto {
    /// `tcp`.
    Tcp,
    /// `udp`.
    Udp,
}

/// `Policy name { ExpectMax N ExpectTimeout N }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperPolicy {
    /// Policy name (the helper's own name for every 1.4.7 helper).
    pub name: String,
    /// `ExpectMax` (0 if absent).
    pub expect_max: u32,
    /// `ExpectTimeout` in seconds (0 if absent).
    pub expect_timeout: u32,
}

/// `Type name l3 l4 { … }` of the `Helper` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperType {
    /// Helper name (`ftp`, `tftp`, `rpc`…).
    pub name: String,
    /// Layer 3.
    pub family: HelperFamily,
    /// Layer 4.
    pub proto: HelperProto,
    /// `QueueNum`: the NFQUEUE number (0 if absent).
    pub queue_num: u32,
    /// `QueueLen` (0 if absent = kernel default).
    pub queue_len: u32,
    /// Expectation policies.
    pub policies: Vec<HelperPolicy>,
    /// Where the `Type` line is.
    pub span: Span,
}

/// The typed `Helper` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Helpers {
    /// `Setup` (default off): install the helper's kernel configuration automatically.
    pub setup: bool,
    /// Helper instances in file order (the C daemon keeps them in reverse order).
    pub types: Vec<HelperType>,
}

/// Reads and parses the file at `path`. An unreadable file is an [`Errors`] value naming it.
pub fn load(path: &Path) -> Result<Config, Errors> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Errors::io(&name, &e))?;
    // The C lexer works on bytes; non-UTF-8 bytes can only be in comments or paths
    // (elsewhere they are syntax errors anyway), so a lossy decode keeps every verdict.
    let text = String::from_utf8_lossy(&bytes);
    parse_str(&name, &text)
}

/// Parses configuration `text`; `file_name` is used in error messages.
pub fn parse_str(file_name: &str, text: &str) -> Result<Config, Errors> {
    let tokens = lex::lex(text);
    let (ast, mut errors) = parse::parse(&tokens);
    // Lower even after syntax errors, so that semantic problems are reported too.
    let (mut config, lower_errors) = lower::lower(&ast);
    errors.extend(lower_errors);
    if let Some(t) = tokens.iter().find(|t| matches!(t.tok, lex::Tok::Stop(_))) {
        config.warnings.push(Warning::new(
            t.span,
            format!(
                "the file is read up to here: {} ends it for the C daemon, which ignores the rest",
                t.tok.describe()
            ),
        ));
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(Errors::new(file_name, errors))
    }
}

impl Config {
    /// The effective sync mode, if this is a sync configuration.
    pub fn mode(&self) -> Option<SyncMode> {
        self.sync.as_ref().map(|s| s.mode)
    }

    /// One line for humans and logs: mode, channels, filters, expectation sync.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        match (&self.sync, &self.stats) {
            (Some(sync), _) => {
                let _ = write!(s, "mode {}; channels: ", sync.mode);
                if sync.channels.is_empty() {
                    s.push_str("none");
                }
                for (i, c) in sync.channels.iter().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    let _ = write!(s, "{c}");
                    if i == sync.default_channel {
                        s.push_str(" (default)");
                    }
                }
            }
            (None, Some(_)) => s.push_str("mode stats"),
            (None, None) => s.push_str("mode none"),
        }
        let f = &self.general.filter;
        s.push_str("; filters: ");
        if f.is_empty() {
            s.push_str("none");
        } else {
            let from = match f.from {
                FilterFrom::Userspace => "userspace",
                FilterFrom::Kernelspace => "kernelspace",
            };
            let mut parts = Vec::new();
            if let Some(p) = &f.protocol {
                let names: Vec<&str> = p.items.iter().map(|p| p.name.as_str()).collect();
                parts.push(format!("protocol {} [{}]", p.policy, names.join(" ")));
            }
            if let Some(a) = &f.address {
                let n = a.items.len();
                let plural = if n == 1 { "" } else { "es" };
                parts.push(format!("address {} {n} prefix{plural}", a.policy));
            }
            if let Some(st) = &f.state {
                let names: Vec<&str> = st.items.iter().map(|t| t.name()).collect();
                parts.push(format!("state {} [{}]", st.policy, names.join(" ")));
            }
            let _ = write!(s, "{from} {}", parts.join(", "));
        }
        if let Some(sync) = &self.sync {
            s.push_str("; expectation sync: ");
            match &sync.expectation_sync {
                ExpectationSync::Off => s.push_str("off"),
                ExpectationSync::On(h) if h.is_empty() => s.push_str("on"),
                ExpectationSync::On(h) => {
                    let _ = write!(s, "[{}]", h.join(" "));
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_summary_one_line() {
        let c = parse_str(
            "t",
            "Sync { Mode FTFW { } Multicast { IPv4_address 225.0.0.50 Interface eth2 }\n\
             Options { ExpectationSync { ftp } } }\n\
             General { Filter From Kernelspace { Protocol Ignore { UDP ICMP }\n\
             Address Ignore { IPv4_address 1.2.3.4 IPv4_address 10.0.0.0/8 }\n\
             State Accept { ESTABLISHED for TCP } } }",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.summary(),
            "mode FTFW; channels: multicast 225.0.0.50 on eth2 (default); filters: kernelspace \
             protocol ignore [UDP ICMP], address ignore 2 prefixes, state accept [ESTABLISHED]; \
             expectation sync: [ftp]"
        );
        let c = parse_str("t", "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.summary(), "mode none; filters: none");
        assert_eq!(c, Config::default());
    }

    #[test]
    fn test_errors_api() {
        let e = parse_str("my.conf", "General {\n HashSize x\n Bogus 1\n}\n")
            .err()
            .unwrap_or_else(|| panic!("must fail"));
        assert_eq!(e.len(), 2);
        assert_eq!(e.file(), "my.conf");
        let lines: Vec<String> = e.to_string().lines().map(str::to_owned).collect();
        assert!(lines[0].starts_with("my.conf:2:11: "));
        assert!(lines[1].starts_with("my.conf:3:2: "));
        assert!(e.iter().all(|x| x.kind == ErrorKind::Syntax));
        let boxed: Box<dyn std::error::Error> = Box::new(e);
        assert!(!boxed.to_string().is_empty());
    }

    #[test]
    fn test_syslog_facility_values() {
        assert_eq!(SyslogFacility::Daemon.to_libc(), libc::LOG_DAEMON);
        assert_eq!(SyslogFacility::Local(7).to_libc(), libc::LOG_LOCAL7);
    }
}
