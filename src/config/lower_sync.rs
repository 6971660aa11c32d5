//! Lowering of `Sync { … }`: modes, timers, the dedicated links and `Options`.
//!
//! As in C, several `Sync` sections and several `Mode` blocks may be given; everything
//! accumulates into one set of values, and the defaults are applied at the end.

use std::net::IpAddr;

use super::error::Span;
use super::lex::{Kw, ModeName};
use super::lower::{Diag, boolean, first, num, uint};
use super::lower_filter::{inet_aton, inet_pton6};
use super::parse::{Stmt, Val};
use super::sync::{Channel, ExpectationSync, Sync, SyncMode, Transport};

/// `MULTICHANNEL_MAX`: at most this many dedicated links.
const MAX_CHANNELS: usize = 4;
/// `IFNAMSIZ` − 1: the longest interface name Linux accepts.
const IFNAME_MAX: usize = 15;

/// Values as the C parser accumulates them, before defaults.
#[derive(Debug, Default)]
pub(crate) struct SyncBuilder {
    ftfw: bool,
    alarm: bool,
    notrack: bool,
    refresh: u32,
    cache_timeout: u32,
    commit_timeout: u32,
    commit_span: Option<Span>,
    purge_timeout: u32,
    resend_queue_size: u32,
    window_size: u32,
    disable_internal_cache: bool,
    disable_external_cache: bool,
    startup_resync: bool,
    channels: Vec<Channel>,
    error_queue_length: u32,
    tcp_window_tracking: bool,
    /// `ExpectationSync on` or a list seen (C's CTD_EXPECT flag, never cleared).
    expect_flag: bool,
    /// Whether expectation events are subscribed: the last on/off/list decides.
    expect_events: bool,
    expect_helpers: Vec<String>,
    expect_off_span: Option<Span>,
    section_span: Option<Span>,
}

impl SyncBuilder {
    /// Applies the statements of one `Sync` section.
    pub(crate) fn apply(&mut self, span: Span, stmts: &[Stmt], d: &mut Diag) {
        if self.section_span.is_none() {
            self.section_span = Some(span);
        }
        for s in stmts {
            match s.kw {
                Kw::Mode => self.mode(s, d),
                Kw::Multicast | Kw::Udp | Kw::Tcp => self.channel(s, d),
                Kw::Options => self.options(s),
                _ => self.timer(s),
            }
        }
    }

    fn timer(&mut self, s: &Stmt) {
        let n = uint(num(&s.args));
        match s.kw {
            Kw::RefreshTime => self.refresh = n,
            Kw::CacheTimeout => self.cache_timeout = n,
            Kw::CommitTimeout => {
                self.commit_timeout = n;
                self.commit_span = Some(s.span);
            }
            Kw::PurgeTimeout => self.purge_timeout = n,
            Kw::ResendQueueSize => self.resend_queue_size = n,
            Kw::AckWindowSize => self.window_size = n,
            Kw::DisableInternalCache => self.disable_internal_cache = boolean(&s.args),
            Kw::DisableExternalCache => self.disable_external_cache = boolean(&s.args),
            Kw::StartupResync => self.startup_resync = boolean(&s.args),
            _ => {}
        }
    }

    fn mode(&mut self, s: &Stmt, d: &mut Diag) {
        let Some(Val::Mode(m)) = first(&s.args).map(|a| &a.val) else {
            return;
        };
        match m {
            ModeName::Alarm => self.alarm = true,
            ModeName::Persistent => {
                d.warn(
                    s.span,
                    "mode `PERSISTENT` is now called `ALARM`; please update the file",
                );
                self.alarm = true;
            }
            ModeName::Ftfw => self.ftfw = true,
            ModeName::Nack => {
                d.warn(
                    s.span,
                    "mode `nack` is now called `FTFW`; please update the file",
                );
                self.ftfw = true;
            }
            ModeName::Notrack => self.notrack = true,
        }
        for i in s.stmts() {
            self.timer(i);
        }
    }

    fn options(&mut self, s: &Stmt) {
        for o in s.stmts() {
            match (o.kw, first(&o.args).map(|a| &a.val)) {
                (Kw::TcpWindowTracking, _) => self.tcp_window_tracking = boolean(&o.args),
                (Kw::ExpectationSync, Some(Val::Bool(true))) => {
                    self.expect_flag = true;
                    self.expect_events = true;
                }
                (Kw::ExpectationSync, Some(Val::Bool(false))) => {
                    self.expect_events = false;
                    self.expect_off_span = Some(o.span);
                }
                (Kw::ExpectationSync, _) => {
                    self.expect_flag = true;
                    self.expect_events = true;
                    for h in o.items() {
                        if let Val::Word(w) = &h.val {
                            // C drops case-insensitive duplicates.
                            if !self
                                .expect_helpers
                                .iter()
                                .any(|x| x.eq_ignore_ascii_case(w))
                            {
                                self.expect_helpers.push(w.clone());
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn channel(&mut self, s: &Stmt, d: &mut Diag) {
        let transport = match s.kw {
            Kw::Multicast => Transport::Multicast,
            Kw::Udp => Transport::Udp,
            _ => Transport::Tcp,
        };
        // C checks the limit only when a fifth block holds an option; an empty fifth block
        // is written past the end of its channel array (undefined behaviour). We refuse
        // every fifth block: the one deliberate difference in what is accepted.
        if self.channels.len() >= MAX_CHANNELS {
            d.error(
                s.span,
                format!("too many dedicated links: the maximum is {MAX_CHANNELS}"),
            );
            return;
        }
        if let Some(first) = self.channels.first()
            && first.transport != transport
        {
            {
                d.error(
                    s.span,
                    format!(
                        "cannot mix `{}` with `{}` links: all dedicated links use one transport",
                        s.kw.text(),
                        first
                            .transport
                            .to_string()
                            .to_uppercase()
                            .replace("MULTICAST", "Multicast")
                    ),
                );
                return;
            }
        }
        let default = s.args.iter().any(|a| a.val == Val::Kw(Kw::Default));
        let mut c = Channel::new(transport, default, s.span);
        let mcast = transport == Transport::Multicast;
        // The C multicast parser keeps an address family per link and refuses to mix.
        let mut family_v6: Option<bool> = None;
        for o in s.stmts() {
            let Some(a) = first(&o.args) else { continue };
            let n = num(&o.args);
            match (o.kw, &a.val) {
                (Kw::Ipv4Address | Kw::Ipv4DestinationAddress | Kw::Ipv4Interface, Val::Ip(t)) => {
                    let Some(ip) = inet_aton(t) else {
                        d.warn(
                            a.span,
                            format!("`{t}` is not a valid IPv4 address; ignored"),
                        );
                        continue;
                    };
                    if mcast && family_v6 == Some(true) {
                        d.warn(a.span, "IPv4 address in an IPv6 multicast link; ignored");
                        continue;
                    }
                    family_v6 = Some(false);
                    match o.kw {
                        Kw::Ipv4Address => c.address = Some(IpAddr::V4(ip)),
                        Kw::Ipv4Interface => c.multicast_interface = Some(ip),
                        _ => c.destination = Some(IpAddr::V4(ip)),
                    }
                }
                (Kw::Ipv6Address | Kw::Ipv6DestinationAddress, Val::Ip(t)) => {
                    let Some(ip) = inet_pton6(t) else {
                        d.warn(
                            a.span,
                            format!("`{t}` is not a valid IPv6 address; ignored"),
                        );
                        continue;
                    };
                    if mcast && family_v6 == Some(false) {
                        d.warn(a.span, "IPv6 address in an IPv4 multicast link; ignored");
                        continue;
                    }
                    if mcast && c.interface.is_some() {
                        d.warn(
                            a.span,
                            "`IPv6_address` after `Interface`: the C daemon then looks the \
                             address up as an interface name; write `IPv6_address` first",
                        );
                    }
                    family_v6 = Some(true);
                    if o.kw == Kw::Ipv6Address {
                        c.address = Some(IpAddr::V6(ip));
                    } else {
                        c.destination = Some(IpAddr::V6(ip));
                    }
                }
                (Kw::Ipv6Interface, _) => {
                    d.warn(o.span, "`IPv6_interface` is not needed and is ignored");
                }
                (Kw::Interface, Val::Word(w)) => {
                    if w.len() > IFNAME_MAX {
                        d.warn(
                            a.span,
                            format!("interface name `{w}` is longer than {IFNAME_MAX} characters"),
                        );
                    }
                    c.interface = Some(w.clone());
                }
                (Kw::Group | Kw::Port, _) => {
                    // C keeps an int and converts with htons(): only the low 16 bits count.
                    #[allow(clippy::cast_possible_truncation)]
                    let port = uint(n) as u16;
                    if i64::from(port) != i64::from(n) {
                        d.warn(
                            a.span,
                            format!("port {n} is out of range; it is used as {port}"),
                        );
                    }
                    c.port = port;
                }
                (Kw::SndSocketBuffer, _) => c.snd_buffer = (n != 0).then_some(uint(n)),
                (Kw::RcvSocketBuffer, _) => c.rcv_buffer = (n != 0).then_some(uint(n)),
                (Kw::Checksum, _) => c.checksum = boolean(&o.args),
                (Kw::ErrorQueueLength, _) => self.error_queue_length = uint(n),
                _ => {}
            }
        }
        if let (Some(a), Some(b)) = (c.address, c.destination)
            && a.is_ipv4() != b.is_ipv4()
        {
            {
                d.warn(
                    s.span,
                    "the local and destination addresses of this link differ in family",
                );
            }
        }
        if c.interface.is_none() {
            d.warn(
                s.span,
                "link without `Interface`: the C daemon fails to open it at start-up",
            );
        }
        self.channels.push(c);
    }

    /// Applies the defaults of `init_config()` and the checks of `evaluate()`.
    pub(crate) fn finish(self, d: &mut Diag) -> Sync {
        let mode = if self.ftfw {
            SyncMode::Ftfw
        } else if self.alarm {
            SyncMode::Alarm
        } else if self.notrack {
            SyncMode::Notrack
        } else {
            if let Some(span) = self.section_span {
                d.warn(span, "no synchronization mode specified; using FTFW");
            }
            SyncMode::Ftfw
        };
        let or = |v: u32, def: u32| if v == 0 { def } else { v };
        let mut commit_timeout = self.commit_timeout;
        if self.disable_external_cache && commit_timeout != 0 {
            d.warn(
                self.commit_span.unwrap_or_default(),
                "`CommitTimeout` cannot be combined with `DisableExternalCache`; ignored",
            );
            commit_timeout = 0;
        }
        let expectation_sync = if self.expect_flag && self.expect_events {
            ExpectationSync::On(self.expect_helpers)
        } else {
            if self.expect_flag {
                d.warn(
                    self.expect_off_span.unwrap_or_default(),
                    "`ExpectationSync off` after enabling it: expectation events are off, but \
                     the C daemon would still dump and resync expectations; treated as off",
                );
            }
            ExpectationSync::Off
        };
        if self.channels.is_empty()
            && let Some(span) = self.section_span
        {
            {
                d.warn(span, "`Sync` without a `Multicast`, `UDP` or `TCP` link");
            }
        }
        let default_channel = self.channels.iter().rposition(|c| c.default).unwrap_or(0);
        // Defaults of `init_config()`, reference sync-modes.md §11: a 0 means "default".
        Sync {
            mode,
            refresh_time: or(self.refresh, 60),
            cache_timeout: or(self.cache_timeout, 180),
            commit_timeout,
            purge_timeout: or(self.purge_timeout, 60),
            resend_queue_size: or(self.resend_queue_size, 131_072),
            ack_window_size: or(self.window_size, 300),
            disable_internal_cache: self.disable_internal_cache,
            disable_external_cache: self.disable_external_cache,
            startup_resync: self.startup_resync,
            channels: self.channels,
            default_channel,
            error_queue_length: or(self.error_queue_length, 128),
            tcp_window_tracking: self.tcp_window_tracking,
            expectation_sync,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use crate::config::{Config, ExpectationSync, SyncMode, Transport, parse_str};

    fn ok(s: &str) -> Config {
        parse_str("t.conf", s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn test_mode_precedence() {
        let m = |s: &str| ok(s).mode();
        assert_eq!(
            m("Sync { Mode NOTRACK { } Mode ALARM { } }"),
            Some(SyncMode::Alarm)
        );
        assert_eq!(
            m("Sync { Mode ALARM { } Mode FTFW { } }"),
            Some(SyncMode::Ftfw)
        );
        assert_eq!(m("Sync { Mode NOTRACK { } }"), Some(SyncMode::Notrack));
        assert_eq!(m("Sync { }"), Some(SyncMode::Ftfw));
        let c = ok("Sync { Mode nack { } } Sync { Mode PERSISTENT { } }");
        assert_eq!(c.mode(), Some(SyncMode::Ftfw));
        assert_eq!(
            c.warnings
                .iter()
                .filter(|w| w.message.contains("now called"))
                .count(),
            2
        );
    }

    #[test]
    fn test_timers_and_evaluate() {
        let c = ok("Sync { Mode NOTRACK { CommitTimeout 5 DisableExternalCache on } }");
        let s = c.sync.unwrap_or_else(|| panic!("sync"));
        assert_eq!(s.commit_timeout, 0, "evaluate() drops CommitTimeout");
        let c = ok(
            "Sync { RefreshTime 1 CacheTimeout 2 CommitTimeout 3 PurgeTimeout 4 \
                    Mode FTFW { ResendQueueSize 5 ACKWindowSize 6 StartupResync on } }",
        );
        let s = c.sync.unwrap_or_else(|| panic!("sync"));
        assert_eq!(
            (
                s.refresh_time,
                s.cache_timeout,
                s.commit_timeout,
                s.purge_timeout
            ),
            (1, 2, 3, 4)
        );
        assert_eq!((s.resend_queue_size, s.ack_window_size), (5, 6));
        assert!(s.startup_resync);
    }

    #[test]
    fn test_channels() {
        let c = ok(
            "Sync { UDP { IPv4_address 10.0.0.1 IPv4_Destination_Address 10.0.0.2 \
                    Port 3790 Interface eth1 SndSocketBuffer 0 RcvSocketBuffer 9 Checksum off }\n\
                    UDP Default { IPv6_address fd00::1 IPv6_Destination_Address fd00::2 Interface eth2 }\n\
                    UDP { Interface eth3 } }",
        );
        let s = c.sync.unwrap_or_else(|| panic!("sync"));
        assert_eq!(s.transport(), Some(Transport::Udp));
        assert_eq!(s.default_channel, 1);
        let a = &s.channels[0];
        assert_eq!(a.address, Some(IpAddr::from([10, 0, 0, 1])));
        assert_eq!(a.destination, Some(IpAddr::from([10, 0, 0, 2])));
        assert_eq!(
            (a.port, a.snd_buffer, a.rcv_buffer, a.checksum),
            (3790, None, Some(9), false)
        );
        assert!(s.channels[1].is_ipv6());
        assert_eq!(s.channels[2].to_string(), "udp ? -> ? on eth3");
    }

    #[test]
    fn test_channel_limits() {
        let e = |s: &str| {
            parse_str("t", s)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(e("Sync { TCP { } Multicast { } }").contains("cannot mix `Multicast` with `TCP`"));
        assert!(e("Sync { UDP {} UDP {} UDP {} UDP {} UDP {} }").contains("maximum is 4"));
        let c =
            ok("Sync { Multicast { IPv4_address 225.0.0.50 IPv6_address ff02::1 Interface x } }");
        assert!(
            c.warnings
                .iter()
                .any(|w| w.message.contains("IPv4 multicast link"))
        );
        let c = ok("Sync { TCP { Port 70000 Interface x } }");
        assert_eq!(c.sync.map(|s| s.channels[0].port), Some(4464));
    }

    #[test]
    fn test_expectation_sync() {
        let x = |s: &str| ok(s).sync.map(|s| s.expectation_sync);
        assert_eq!(
            x("Sync { Options { ExpectationSync on } }"),
            Some(ExpectationSync::On(vec![]))
        );
        assert_eq!(
            x("Sync { Options { ExpectationSync { } } }"),
            Some(ExpectationSync::On(vec![]))
        );
        assert_eq!(
            x("Sync { Options { ExpectationSync { ftp FTP sip } } }"),
            Some(ExpectationSync::On(vec!["ftp".into(), "sip".into()]))
        );
        assert_eq!(
            x("Sync { Options { ExpectationSync off } }"),
            Some(ExpectationSync::Off)
        );
        assert_eq!(
            x("Sync { Options { ExpectationSync on ExpectationSync off } }"),
            Some(ExpectationSync::Off)
        );
    }
}
