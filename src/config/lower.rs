//! AST → [`Config`]: meaning, C defaults, value checks and cross-field checks.
//!
//! Statements are applied in file order to one mutable configuration, as the C parser's
//! actions do (later values overwrite earlier ones, lists accumulate), then the defaults of
//! `init_config()` fill the zeros. Every fatal check of the C parser becomes an [`Error`]
//! with a span; every C warning becomes a [`Warning`]. The Sync section lives in
//! `lower_sync.rs`.

use std::path::PathBuf;

use super::error::{Error, Span, Warning};
use super::lex::Kw;
use super::lower_filter::filter_block;
use super::lower_helper::helper_items;
use super::lower_sync::SyncBuilder;
use super::parse::{Arg, Stmt, Val};
use super::{
    Config, DEFAULT_LOGFILE, DEFAULT_STATS_LOGFILE, Helpers, SchedPolicy, Stats, SyslogFacility,
};

/// `FILENAME_MAXLEN` of the C daemon: longest LogFile/LockFile path.
const FILENAME_MAXLEN: usize = 256;
/// `UNIX_PATH_MAX`: a socket path must be shorter than this.
const UNIX_PATH_MAX: usize = 108;
/// Collects errors and warnings while lowering.
#[derive(Debug, Default)]
pub(crate) struct Diag {
    pub(crate) errors: Vec<Error>,
    pub(crate) warnings: Vec<Warning>,
}

impl Diag {
    pub(crate) fn error(&mut self, span: Span, msg: impl Into<String>) {
        self.errors.push(Error::semantic(span, msg));
    }

    pub(crate) fn warn(&mut self, span: Span, msg: impl Into<String>) {
        self.warnings.push(Warning::new(span, msg));
    }
}

/// C stores every number in an `int` and many of them are used as unsigned: this is the
/// same implicit conversion (a value that wrapped negative in `atoi` becomes huge).
#[allow(clippy::cast_sign_loss)]
pub(crate) fn uint(n: i32) -> u32 {
    n as u32
}

pub(crate) fn num(args: &[Arg]) -> i32 {
    match args.first().map(|a| &a.val) {
        Some(Val::Num(n) | Val::Signed(n)) => *n,
        _ => 0,
    }
}

pub(crate) fn boolean(args: &[Arg]) -> bool {
    matches!(args.first().map(|a| &a.val), Some(Val::Bool(true)))
}

pub(crate) fn first(args: &[Arg]) -> Option<&Arg> {
    args.first()
}

/// Lowers the parsed sections. Returns the configuration and the fatal errors (the
/// configuration is meaningless if there are any).
pub(crate) fn lower(sections: &[Stmt]) -> (Config, Vec<Error>) {
    let mut d = Diag::default();
    let mut cfg = Config::default();
    let mut sync: Option<SyncBuilder> = None;
    let mut stats: Option<Stats> = None;
    // Syslog facilities as the C parser sees them while reading, for its conflict warning.
    for sec in sections {
        match sec.kw {
            Kw::General => general(&mut cfg, &stats, sec.stmts(), &mut d),
            Kw::Sync => {
                if stats.is_some() {
                    d.error(
                        sec.span,
                        "cannot use both `Stats` and `Sync` sections in one file (the daemon \
                         runs either as a sync daemon or as a statistics collector)",
                    );
                }
                sync.get_or_insert_with(SyncBuilder::default)
                    .apply(sec.span, sec.stmts(), &mut d);
            }
            Kw::Stats => {
                if sync.is_some() {
                    d.error(
                        sec.span,
                        "cannot use both `Stats` and `Sync` sections in one file (the daemon \
                         runs either as a sync daemon or as a statistics collector)",
                    );
                }
                let st = stats.get_or_insert_with(Stats::default);
                stats_section(st, cfg.general.syslog, sec.stmts(), &mut d);
            }
            Kw::Helper => {
                let h = cfg.helpers.get_or_insert_with(Helpers::default);
                let mut pending = Vec::new();
                helper_items(h, sec.stmts(), &mut pending, &mut d);
            }
            _ => {}
        }
    }
    let g = &cfg.general;
    if let Some(size) = g.netlink_buffer_size
        && size > g.netlink_buffer_size_max_growth
    {
        let span = sections
            .iter()
            .filter(|s| s.kw == Kw::General)
            .flat_map(Stmt::stmts)
            .rfind(|s| matches!(s.kw, Kw::NetlinkBufferSize | Kw::SocketBufferSize))
            .map_or_else(Span::default, |s| s.span);
        d.warn(
            span,
            format!(
                "`NetlinkBufferSize` {size} is larger than `NetlinkBufferSizeMaxGrowth` ({}): \
                 the C daemon then keeps the system default buffer size",
                g.netlink_buffer_size_max_growth
            ),
        );
    }
    cfg.stats = stats;
    cfg.sync = sync.map(|s| s.finish(&mut d));
    cfg.warnings = d.warnings;
    cfg.warnings.sort_by_key(|w| w.span);
    (cfg, d.errors)
}

fn path_arg(a: &Arg, what: &str, max: usize, d: &mut Diag) -> Option<PathBuf> {
    let Val::Path(p) = &a.val else { return None };
    if p.len() > max {
        d.error(
            a.span,
            format!(
                "{what} path is {} characters long; the maximum is {max}",
                p.len()
            ),
        );
        return None;
    }
    Some(PathBuf::from(p))
}

fn facility(a: &Arg, d: &mut Diag) -> Option<Option<SyslogFacility>> {
    match &a.val {
        Val::Bool(true) => Some(Some(SyslogFacility::Daemon)),
        Val::Bool(false) => Some(None),
        Val::Word(w) => {
            let f = match w.as_str() {
                "daemon" => Some(SyslogFacility::Daemon),
                _ => w
                    .strip_prefix("local")
                    .and_then(|n| {
                        n.parse::<u8>()
                            .ok()
                            .filter(|n| *n <= 7 && n.to_string().len() == 1)
                    })
                    .map(SyslogFacility::Local),
            };
            if f.is_none() {
                d.warn(
                    a.span,
                    format!(
                        "`{w}` is not a known syslog facility (daemon, local0…local7); ignored"
                    ),
                );
            }
            f.map(Some)
        }
        _ => None,
    }
}

fn general(cfg: &mut Config, stats: &Option<Stats>, stmts: &[Stmt], d: &mut Diag) {
    let g = &mut cfg.general;
    for s in stmts {
        let n = num(&s.args);
        match s.kw {
            Kw::Unix | Kw::Scheduler => nested_general(g, s, d),
            Kw::Filter => filter_block(&mut g.filter, s, d),
            _ => {}
        }
        let Some(a) = first(&s.args) else { continue };
        let alias_of = match s.kw {
            Kw::SocketBufferSize => "NetlinkBufferSize",
            Kw::SocketBufferSizeMaxGrown | Kw::SocketBufferSizeMaxGrowth => {
                "NetlinkBufferSizeMaxGrowth"
            }
            _ => "",
        };
        if !alias_of.is_empty() {
            d.warn(
                s.span,
                format!("`{}` is an old alias of `{alias_of}`", s.kw.text()),
            );
        }
        match s.kw {
            Kw::HashSize => g.hash_size = if n == 0 { 65536 } else { uint(n) },
            Kw::HashLimit => g.hash_limit = if n == 0 { 262_144 } else { uint(n) },
            Kw::LogFile => match &a.val {
                Val::Bool(true) => g.log_file = Some(PathBuf::from(DEFAULT_LOGFILE)),
                // `LogFile off` does nothing in C, not even clear an earlier path.
                Val::Bool(false) => {}
                _ => {
                    if let Some(p) = path_arg(a, "LogFile", FILENAME_MAXLEN, d) {
                        g.log_file = Some(p);
                    }
                }
            },
            Kw::Syslog => {
                if let Some(f) = facility(a, d) {
                    g.syslog = f;
                    let st = stats.as_ref().and_then(|s| s.syslog);
                    if f.is_some() && st.is_some() && f != st {
                        d.warn(
                            a.span,
                            "conflicting Syslog facilities in General and Stats; the C daemon \
                             uses General's",
                        );
                    }
                }
            }
            Kw::LockFile => {
                if let Some(p) = path_arg(a, "LockFile", FILENAME_MAXLEN, d) {
                    g.lock_file = p;
                }
            }
            Kw::NetlinkBufferSize | Kw::SocketBufferSize => {
                g.netlink_buffer_size = (n != 0).then_some(uint(n));
            }
            Kw::NetlinkBufferSizeMaxGrowth
            | Kw::SocketBufferSizeMaxGrown
            | Kw::SocketBufferSizeMaxGrowth => g.netlink_buffer_size_max_growth = uint(n),
            Kw::NetlinkOverrunResync => {
                g.netlink_overrun_resync = match a.val {
                    Val::Bool(true) => Some(30),
                    Val::Bool(false) => None,
                    // 0 means the default; the C code resyncs only for values > 0.
                    _ if n == 0 => Some(30),
                    _ if n < 0 => None,
                    _ => Some(uint(n)),
                };
            }
            Kw::NetlinkEventsReliable => g.netlink_events_reliable = boolean(&s.args),
            Kw::Systemd => g.systemd = boolean(&s.args),
            Kw::EventIterationLimit => {
                g.event_iteration_limit = if n == 0 { 100 } else { uint(n) };
            }
            Kw::PollSecs => {
                if n == 0 {
                    d.error(a.span, "`PollSecs` must be greater than 0");
                } else {
                    g.poll_secs = Some(uint(n));
                }
            }
            Kw::Nice => d.warn(
                s.span,
                "`Nice` is deprecated and ignored (set it with nice(1) or renice(1))",
            ),
            _ => {}
        }
    }
}

fn nested_general(g: &mut super::General, s: &Stmt, d: &mut Diag) {
    for i in s.stmts() {
        let Some(a) = first(&i.args) else { continue };
        match (s.kw, i.kw) {
            (Kw::Unix, Kw::Path) => {
                if let Val::Path(p) = &a.val {
                    if p.len() >= UNIX_PATH_MAX {
                        d.error(
                            a.span,
                            format!(
                                "UNIX `Path` is {} characters long; the maximum is {}",
                                p.len(),
                                UNIX_PATH_MAX - 1
                            ),
                        );
                    } else {
                        g.unix_path = Some(PathBuf::from(p));
                    }
                }
            }
            (Kw::Unix, Kw::Backlog) => {
                d.warn(i.span, "`Backlog` is deprecated and ignored");
            }
            (Kw::Scheduler, Kw::Type) => {
                if let Val::Word(w) = &a.val {
                    if w.eq_ignore_ascii_case("rr") {
                        g.scheduler.policy = Some(SchedPolicy::RoundRobin);
                    } else if w.eq_ignore_ascii_case("fifo") {
                        g.scheduler.policy = Some(SchedPolicy::Fifo);
                    } else {
                        d.error(
                            a.span,
                            format!("unknown scheduler `{w}`; expected `RR` or `FIFO`"),
                        );
                    }
                }
            }
            (Kw::Scheduler, Kw::Priority) => match u8::try_from(num(&i.args)) {
                Ok(p) if p <= 99 => g.scheduler.priority = p,
                _ => d.error(
                    a.span,
                    format!(
                        "scheduler `Priority` must be in 0..=99, found {}",
                        num(&i.args)
                    ),
                ),
            },
            _ => {}
        }
    }
}

fn stats_section(
    st: &mut Stats,
    general_syslog: Option<SyslogFacility>,
    stmts: &[Stmt],
    d: &mut Diag,
) {
    for s in stmts {
        let Some(a) = first(&s.args) else { continue };
        match s.kw {
            Kw::LogFile => match &a.val {
                Val::Bool(true) => st.log_file = Some(PathBuf::from(DEFAULT_STATS_LOGFILE)),
                Val::Bool(false) => {}
                _ => {
                    if let Some(p) = path_arg(a, "Stats LogFile", FILENAME_MAXLEN, d) {
                        st.log_file = Some(p);
                    }
                }
            },
            Kw::Syslog => {
                if let Some(f) = facility(a, d) {
                    st.syslog = f;
                    if f.is_some() && general_syslog.is_some() && f != general_syslog {
                        d.warn(
                            a.span,
                            "conflicting Syslog facilities in General and Stats; the C daemon \
                             uses General's",
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, SchedPolicy, SyslogFacility, parse_str};

    fn ok(s: &str) -> Config {
        parse_str("t.conf", s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(s: &str) -> String {
        parse_str("t.conf", s)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn test_general_values() {
        let c = ok(
            "General { HashSize 10 HashLimit 20 LogFile on Syslog local3 \
                    LockFile /l UNIX { Path /s } NetlinkBufferSize 5 \
                    SocketBufferSizeMaxGrown 9 NetlinkOverrunResync off \
                    NetlinkEventsReliable yes EventIterationLimit 7 PollSecs 3 \
                    Systemd no Scheduler { Type fifo Priority 42 } }",
        );
        let g = &c.general;
        assert_eq!((g.hash_size, g.hash_limit), (10, 20));
        assert_eq!(
            g.log_file.as_deref(),
            Some(Path::new("/var/log/conntrackd.log"))
        );
        assert_eq!(g.syslog, Some(SyslogFacility::Local(3)));
        assert_eq!(g.lock_file, Path::new("/l"));
        assert_eq!(g.unix_path.as_deref(), Some(Path::new("/s")));
        assert_eq!(g.netlink_buffer_size, Some(5));
        assert_eq!(g.netlink_buffer_size_max_growth, 9);
        assert_eq!(g.netlink_overrun_resync, None);
        assert!(g.netlink_events_reliable);
        assert_eq!(g.event_iteration_limit, 7);
        assert_eq!(g.poll_secs, Some(3));
        assert!(!g.systemd);
        assert_eq!(g.scheduler.policy, Some(SchedPolicy::Fifo));
        assert_eq!(g.scheduler.priority, 42);
    }

    #[test]
    fn test_general_c_quirks() {
        // `LogFile off` does not clear an earlier path.
        let c = ok("General { LogFile /a LogFile off }");
        assert_eq!(c.general.log_file.as_deref(), Some(Path::new("/a")));
        // 0 means "default" for sizes and timers.
        let c = ok("General { HashSize 0 NetlinkOverrunResync 0 EventIterationLimit 0 }");
        assert_eq!(c.general.hash_size, 65536);
        assert_eq!(c.general.netlink_overrun_resync, Some(30));
        assert_eq!(c.general.event_iteration_limit, 100);
        // atoi wraps: 4294967296 is 0 for C, so PollSecs rejects it.
        assert!(err("General { PollSecs 4294967296 }").contains("greater than 0"));
        assert!(err("General { Scheduler { Priority 4294967295 } }").contains("0..=99"));
        // Unknown facility and Nice: warnings only.
        let c = ok("General { Syslog LOCAL1 Nice -1 UNIX { Backlog 3 } }");
        assert_eq!(c.general.syslog, None);
        assert_eq!(c.warnings.len(), 3);
        let c = ok("General { NetlinkBufferSize 4 }");
        assert!(c.warnings[0].message.contains("keeps the system default"));
        let c = ok("General { NetlinkBufferSize 4 NetlinkBufferSizeMaxGrowth 4 }");
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn test_path_limits() {
        let long = format!("/{}", "a".repeat(256));
        assert!(err(&format!("General {{ LogFile {long} }}")).contains("maximum is 256"));
        assert!(err(&format!("General {{ LockFile {long} }}")).contains("maximum is 256"));
        assert!(err(&format!("Stats {{ LogFile {long} }}")).contains("maximum is 256"));
        let sock = format!("/{}", "s".repeat(107));
        assert!(err(&format!("General {{ UNIX {{ Path {sock} }} }}")).contains("maximum is 107"));
        let sock = format!("/{}", "s".repeat(106));
        ok(&format!("General {{ UNIX {{ Path {sock} }} }}"));
    }

    #[test]
    fn test_sync_and_stats_exclusive() {
        let e = err("Stats { }\nSync { }\n");
        assert!(e.starts_with("t.conf:2:1: cannot use both"), "{e}");
        let c = ok("Stats { LogFile on Syslog on } Stats { }");
        let st = c.stats.unwrap_or_default();
        assert_eq!(st.syslog, Some(SyslogFacility::Daemon));
        assert!(c.sync.is_none());
    }

    #[test]
    fn test_syslog_conflict_warning() {
        let c = ok("General { Syslog daemon } Stats { Syslog local2 }");
        assert!(c.warnings.iter().any(|w| w.message.contains("conflicting")));
        let c = ok("General { Syslog daemon } Stats { Syslog daemon }");
        assert!(c.warnings.is_empty());
    }
}
