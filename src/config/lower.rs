//! AST → [`Config`]: meaning, C defaults, value checks and cross-field checks.
//!
//! Statements are applied in file order to one mutable configuration, as the C parser's
//! actions do (later values overwrite earlier ones, lists accumulate), then the defaults of
//! `init_config()` fill the zeros. Every fatal check of the C parser becomes an [`Error`]
//! with a span; every C warning becomes a [`Warning`]. The Sync section lives in
//! `lower_sync.rs`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use super::error::{Error, Span, Warning};
use super::filter::{self, FilterFrom, FilterSet, Policy, Prefix, Protocol, TcpState};
use super::lex::Kw;
use super::lower_sync::SyncBuilder;
use super::parse::{Arg, Stmt, Val};
use super::{
    Config, DEFAULT_LOGFILE, DEFAULT_STATS_LOGFILE, HelperFamily, HelperPolicy, HelperProto,
    HelperType, Helpers, SchedPolicy, Stats, SyslogFacility,
};

/// `FILENAME_MAXLEN` of the C daemon: longest LogFile/LockFile path.
const FILENAME_MAXLEN: usize = 256;
/// `UNIX_PATH_MAX`: a socket path must be shorter than this.
const UNIX_PATH_MAX: usize = 108;
/// `CTD_HELPER_NAME_LEN`: longest helper policy name.
const HELPER_NAME_LEN: usize = 16;

/// The user-space helpers shipped with 1.4.7 (`ct_helper_<name>.so`) and their layer 4;
/// each has one expectation policy named like the helper.
const HELPERS: &[(&str, HelperProto)] = &[
    ("amanda", HelperProto::Udp),
    ("dhcpv6", HelperProto::Udp),
    ("ftp", HelperProto::Tcp),
    ("mdns", HelperProto::Udp),
    ("rpc", HelperProto::Tcp),
    ("rpc", HelperProto::Udp),
    ("sane", HelperProto::Tcp),
    ("slp", HelperProto::Udp),
    ("ssdp", HelperProto::Udp),
    ("ssdp", HelperProto::Tcp),
    ("tftp", HelperProto::Udp),
    ("tns", HelperProto::Tcp),
];

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

fn filter_block(f: &mut super::Filter, s: &Stmt, d: &mut Diag) {
    // Each Filter block sets the mode when it closes: the last one wins.
    f.from = match s.args.get(1).map(|a| &a.val) {
        Some(Val::Kw(Kw::Kernelspace)) => FilterFrom::Kernelspace,
        _ => FilterFrom::Userspace,
    };
    for item in s.stmts() {
        let policy = match first(&item.args).map(|a| &a.val) {
            Some(Val::Kw(Kw::Accept)) => Policy::Accept,
            _ => Policy::Ignore,
        };
        match item.kw {
            Kw::Protocol => {
                let set = f.protocol.get_or_insert(FilterSet {
                    policy,
                    items: Vec::new(),
                });
                set.policy = policy;
                for p in item.items() {
                    let name = match &p.val {
                        Val::Word(w) => w.as_str(),
                        Val::Kw(k) => k.text(),
                        _ => continue,
                    };
                    match filter::protocol_number(name) {
                        Some(number) => {
                            if !set.items.iter().any(|x| x.number == number) {
                                set.items.push(Protocol {
                                    name: name.to_owned(),
                                    number,
                                });
                            }
                        }
                        None => d.warn(
                            p.span,
                            format!("protocol `{name}` is not in /etc/protocols; ignored"),
                        ),
                    }
                }
            }
            Kw::Address => {
                let set = f.address.get_or_insert(FilterSet {
                    policy,
                    items: Vec::new(),
                });
                set.policy = policy;
                for a in item.stmts() {
                    if let Some(p) = filter_prefix(a, d) {
                        if set.items.contains(&p) {
                            d.warn(a.span, format!("{p} is repeated in the address filter"));
                        } else {
                            set.items.push(p);
                        }
                    }
                }
            }
            Kw::State => {
                let set = f.state.get_or_insert(FilterSet {
                    policy,
                    items: Vec::new(),
                });
                set.policy = policy;
                for st in item.items() {
                    if let Val::Kw(k) = st.val
                        && let Some(t) = tcp_state(k)
                        && !set.items.contains(&t)
                    {
                        set.items.push(t);
                    }
                }
            }
            _ => {}
        }
    }
}

fn tcp_state(k: Kw) -> Option<TcpState> {
    Some(match k {
        Kw::SynSent => TcpState::SynSent,
        Kw::SynRecv => TcpState::SynRecv,
        Kw::Established => TcpState::Established,
        Kw::FinWait => TcpState::FinWait,
        Kw::CloseWait => TcpState::CloseWait,
        Kw::LastAck => TcpState::LastAck,
        Kw::TimeWait => TcpState::TimeWait,
        Kw::Close | Kw::Closed => TcpState::Close,
        Kw::Listen => TcpState::Listen,
        _ => return None,
    })
}

/// `IPv4_address a.b.c.d[/n]` / `IPv6_address x::y[/n]` inside `Address Accept|Ignore`.
fn filter_prefix(s: &Stmt, d: &mut Diag) -> Option<Prefix> {
    let a = first(&s.args)?;
    let Val::Ip(text) = &a.val else { return None };
    let (addr, cidr) = match text.split_once('/') {
        Some((addr, c)) => (addr, Some(uint(super::lex::atoi(c)))),
        None => (text.as_str(), None),
    };
    let v4 = s.kw == Kw::Ipv4Address;
    let max = if v4 { 32 } else { 128 };
    if let Some(c) = cidr.filter(|c| *c > max) {
        d.warn(
            a.span,
            format!("{addr}/{c} is not a valid network; ignored"),
        );
        return None;
    }
    let ip = if v4 {
        inet_aton(addr).map(IpAddr::V4)
    } else {
        inet_pton6(addr).map(IpAddr::V6)
    };
    let Some(ip) = ip else {
        let fam = if v4 { "IPv4" } else { "IPv6" };
        d.warn(
            a.span,
            format!("`{addr}` is not a valid {fam} address; ignored"),
        );
        return None;
    };
    let prefix_len = cidr.map_or(max, |c| c.min(max));
    Some(Prefix {
        addr: ip,
        prefix_len: u8::try_from(prefix_len).unwrap_or(u8::MAX),
    })
}

/// glibc `inet_aton` for the dotted forms the lexer produces: 1–4 parts, each decimal, or
/// octal with a leading 0 (`010` is 8). The last part fills the remaining bytes.
pub(crate) fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let mut parts = Vec::new();
    for p in s.split('.') {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let v = if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()?
        } else {
            p.parse::<u64>().ok()?
        };
        parts.push(v);
    }
    let (last, head) = parts.split_last()?;
    if head.len() > 3 || head.iter().any(|&v| v > 0xff) {
        return None;
    }
    let room = 8 * (4 - head.len() as u32);
    if room < 64 && *last >= 1u64 << room {
        return None;
    }
    let mut v: u64 = *last;
    for (i, h) in head.iter().enumerate() {
        v |= h << (24 - 8 * i as u32);
    }
    u32::try_from(v).ok().map(Ipv4Addr::from)
}

/// `inet_pton(AF_INET6, …)`: the lexer never produces the embedded-IPv4 form, so the
/// standard library parser gives the same verdicts.
pub(crate) fn inet_pton6(s: &str) -> Option<Ipv6Addr> {
    if s.contains('.') {
        return None;
    }
    s.parse().ok()
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

/// A queue or policy line waiting for the next `Type` block to close. The C parser keeps
/// them on one stack shared by all `Type` blocks (and accepts them directly in `Helper`
/// too); a closing `Type` takes everything on it.
#[derive(Debug)]
pub(crate) enum Pending {
    QueueNum(u32),
    QueueLen(u32),
    Policy(HelperPolicy, Span),
}

fn helper_items(h: &mut Helpers, stmts: &[Stmt], pending: &mut Vec<Pending>, d: &mut Diag) {
    for s in stmts {
        match s.kw {
            Kw::Setup => h.setup = boolean(&s.args),
            Kw::QueueNum => pending.push(Pending::QueueNum(uint(num(&s.args)))),
            Kw::QueueLen => pending.push(Pending::QueueLen(uint(num(&s.args)))),
            Kw::Policy => {
                let name = match first(&s.args).map(|a| &a.val) {
                    Some(Val::Word(w)) => w.clone(),
                    _ => continue,
                };
                let mut pol = HelperPolicy {
                    name: name.clone(),
                    expect_max: 0,
                    expect_timeout: 0,
                };
                let mut any = false;
                for i in s.stmts() {
                    any = true;
                    match i.kw {
                        Kw::ExpectMax => pol.expect_max = uint(num(&i.args)),
                        Kw::ExpectTimeout => pol.expect_timeout = uint(num(&i.args)),
                        _ => {}
                    }
                }
                if !any {
                    d.error(s.span, format!("helper `Policy {name}` is empty"));
                } else if name.len() > HELPER_NAME_LEN {
                    d.error(
                        s.span,
                        format!("helper policy name `{name}` is longer than {HELPER_NAME_LEN} characters"),
                    );
                } else {
                    pending.push(Pending::Policy(pol, s.span));
                }
            }
            Kw::Type => helper_type(h, s, pending, d),
            _ => {}
        }
    }
}

fn helper_type(h: &mut Helpers, s: &Stmt, pending: &mut Vec<Pending>, d: &mut Diag) {
    helper_items(h, s.stmts(), pending, d);
    let word = |i: usize| match s.args.get(i) {
        Some(Arg {
            val: Val::Word(w),
            span,
        }) => (w.as_str(), *span),
        _ => ("", s.span),
    };
    let ((name, name_span), (l3, l3_span), (l4, l4_span)) = (word(0), word(1), word(2));
    let family = match l3 {
        "inet" => Some(HelperFamily::Inet),
        "inet6" => Some(HelperFamily::Inet6),
        _ => {
            d.error(
                l3_span,
                format!("unknown layer 3 protocol `{l3}`; expected `inet` or `inet6`"),
            );
            None
        }
    };
    let proto = match l4 {
        "tcp" => Some(HelperProto::Tcp),
        "udp" => Some(HelperProto::Udp),
        _ => {
            d.error(
                l4_span,
                format!("unknown layer 4 protocol `{l4}`; expected `tcp` or `udp`"),
            );
            None
        }
    };
    let items = std::mem::take(pending);
    let (Some(family), Some(proto)) = (family, proto) else {
        return;
    };
    if !HELPERS.iter().any(|&(n, p)| n == name && p == proto) {
        let known: Vec<String> = HELPERS.iter().map(|(n, p)| format!("{n}/{p:?}")).collect();
        d.error(
            name_span,
            format!(
                "unknown helper `{name}` for {proto:?}; 1.4.7 ships: {}",
                known.join(", ").to_lowercase()
            ),
        );
        return;
    }
    let mut t = HelperType {
        name: name.to_owned(),
        family,
        proto,
        queue_num: 0,
        queue_len: 0,
        policies: Vec::new(),
        span: s.span,
    };
    // Popped last-in first-out with each value overwriting the previous one: the line
    // written first wins.
    for item in items.into_iter().rev() {
        match item {
            Pending::QueueNum(n) => t.queue_num = n,
            Pending::QueueLen(n) => t.queue_len = n,
            Pending::Policy(p, span) => {
                if p.name != name {
                    d.error(
                        span,
                        format!(
                            "unknown policy `{}` for helper `{name}`; its only policy is `{name}`",
                            p.name
                        ),
                    );
                } else {
                    t.policies.retain(|x| x.name != p.name);
                    t.policies.push(p);
                }
            }
        }
    }
    h.types.push(t);
}
