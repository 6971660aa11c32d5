//! The typed `Sync { … }` section: mode, timers, dedicated links and options.
//!
//! Defaults are the values the C daemon's `init_config()` puts in after parsing (reference
//! sync-modes.md §11); a value of 0 in the file means "default" for every timer and size,
//! exactly as in C.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use super::error::Span;

/// The replication protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyncMode {
    /// Reliable protocol with ACK/NACK and a resend queue (the default).
    Ftfw,
    /// Periodic full refresh of every entry.
    Alarm,
    /// Best effort, no state.
    Notrack,
}

impl fmt::Display for SyncMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ftfw => "FTFW",
            Self::Alarm => "ALARM",
            Self::Notrack => "NOTRACK",
        })
    }
}

/// The transport of a dedicated link. All links of one file share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// `Multicast { … }`.
    Multicast,
    /// `UDP { … }`.
    Udp,
    /// `TCP { … }`.
    Tcp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Multicast => "multicast",
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        })
    }
}

/// One dedicated link (`Multicast`, `UDP` or `TCP` block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// Which block this is.
    pub transport: Transport,
    /// Marked `Default`: the initial active link.
    pub default: bool,
    /// `Interface`. The C daemon fails at start-up without it, so the runtime must refuse a
    /// channel where this is `None`; the parser only warns (the C parser accepts it).
    /// Besides the MTU and link monitoring, its index is the IPv6 scope id of UDP/TCP
    /// sockets and the IPv6 multicast interface; the runtime resolves it (the C parser calls
    /// `if_nametoindex()` and only warns when the interface does not exist yet).
    pub interface: Option<String>,
    /// Multicast: the group (`IPv4_address`/`IPv6_address`). UDP/TCP: the local address the
    /// receiver or listener binds to.
    pub address: Option<IpAddr>,
    /// UDP/TCP: the peer (`IPv4_Destination_Address`/`IPv6_Destination_Address`).
    pub destination: Option<IpAddr>,
    /// Multicast: `IPv4_interface`, the local address used to send and join.
    pub multicast_interface: Option<Ipv4Addr>,
    /// Multicast `Group` or UDP/TCP `Port`: the UDP/TCP port. 0 when absent, as in C (the
    /// daemon then binds an ephemeral port).
    pub port: u16,
    /// `SndSocketBuffer`: SO_SNDBUFFORCE; `None` = system default (also for 0).
    pub snd_buffer: Option<u32>,
    /// `RcvSocketBuffer`: SO_RCVBUFFORCE; `None` = system default (also for 0).
    pub rcv_buffer: Option<u32>,
    /// `Checksum` (default on); off sets SO_NO_CHECK on the sender.
    pub checksum: bool,
    /// Where the block starts.
    pub span: Span,
}

impl Channel {
    /// An empty channel of `transport` with the C defaults.
    pub(crate) fn new(transport: Transport, default: bool, span: Span) -> Self {
        Self {
            transport,
            default,
            interface: None,
            address: None,
            destination: None,
            multicast_interface: None,
            port: 0,
            snd_buffer: None,
            rcv_buffer: None,
            checksum: true,
            span,
        }
    }

    /// True if the link uses IPv6 (decided by its addresses, as in C).
    pub fn is_ipv6(&self) -> bool {
        matches!(self.address.or(self.destination), Some(IpAddr::V6(_)))
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |a: Option<IpAddr>| a.map_or_else(|| "?".to_owned(), |a| a.to_string());
        write!(f, "{} {}", self.transport, opt(self.address))?;
        if self.transport != Transport::Multicast {
            write!(f, " -> {}", opt(self.destination))?;
        }
        if let Some(i) = &self.interface {
            write!(f, " on {i}")?;
        }
        Ok(())
    }
}

/// `Options { ExpectationSync … }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ExpectationSync {
    /// Expectations are not replicated (default).
    #[default]
    Off,
    /// Expectations are replicated. An empty list means every helper: that is both
    /// `ExpectationSync on` and, in C, an empty `ExpectationSync { }`. Otherwise only
    /// expectations whose helper name starts with one of these (case-insensitive).
    On(Vec<String>),
}

/// The typed `Sync` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sync {
    /// The effective mode: FTFW if any `Mode FTFW` block exists, else ALARM, else NOTRACK;
    /// FTFW with a warning when no `Mode` is given (C: sync-mode.c).
    pub mode: SyncMode,
    /// `RefreshTime` (ALARM), default 60 s.
    pub refresh_time: u32,
    /// `CacheTimeout` (ALARM), default 180 s.
    pub cache_timeout: u32,
    /// `CommitTimeout`, default 0 (= derive from the entry's timeout). Reset to 0 with a
    /// warning when `DisableExternalCache` is on (C: `evaluate()`).
    pub commit_timeout: u32,
    /// `PurgeTimeout`, default 60 s.
    pub purge_timeout: u32,
    /// `ResendQueueSize` (FTFW), default 131072 entries.
    pub resend_queue_size: u32,
    /// `ACKWindowSize` (FTFW), default 300 messages.
    pub ack_window_size: u32,
    /// `DisableInternalCache` (NOTRACK), default off.
    pub disable_internal_cache: bool,
    /// `DisableExternalCache` (FTFW, NOTRACK), default off.
    pub disable_external_cache: bool,
    /// `StartupResync` (FTFW, NOTRACK), default off.
    pub startup_resync: bool,
    /// The dedicated links in file order (at most 4, one transport).
    pub channels: Vec<Channel>,
    /// Index of the initial active link: the last one marked `Default`, else 0.
    pub default_channel: usize,
    /// `TCP { ErrorQueueLength }`: global, last value wins; default 128.
    pub error_queue_length: u32,
    /// `Options { TCPWindowTracking }`, default off.
    pub tcp_window_tracking: bool,
    /// `Options { ExpectationSync }`, default off.
    pub expectation_sync: ExpectationSync,
}

impl Sync {
    /// The transport shared by all links, if any link is configured.
    pub fn transport(&self) -> Option<Transport> {
        self.channels.first().map(|c| c.transport)
    }
}
