//! The `-s` statistics layouts of conntrackd 1.4.7.
//!
//! Each function renders one reply (or one block of it) from a plain struct of counters; the
//! daemon fills the structs, this module only knows the text. Widths follow the C format
//! strings: `%12u` counters are 32-bit (`u32` here, so a wider counter must be truncated by
//! the caller exactly as the C daemon's `unsigned int` wraps), `%20llu` ones are `u64`.
//! Every block ends with an empty line except `-s rsqueue` and `-s process`.
//! Golden files captured from Debian's binary are in `testdata/` (see the tests below).

use std::fmt::Write as _;
use std::time::Duration;

/// The four summary lines of one cache (`-s`: "cache internal:", "cache external:", and
/// "cache stats:" in stats mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheSummary {
    /// Objects in the cache now.
    pub active: u32,
    /// Objects created.
    pub created: u32,
    /// Creations that failed.
    pub create_failed: u32,
    /// Objects updated.
    pub updated: u32,
    /// Updates that failed.
    pub update_failed: u32,
    /// Objects destroyed (including ones replaced by a NEW for an existing key).
    pub destroyed: u32,
    /// Destructions that failed.
    pub destroy_failed: u32,
}

/// The first block of `-s` in sync mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InternalSummary {
    /// "cache internal:".
    Cache(CacheSummary),
    /// "internal bypass:" (`DisableInternalCache on`): events passed straight to the peers.
    Bypass {
        /// New events sent.
        new: u32,
        /// Update events sent.
        updated: u32,
        /// Destroy events sent.
        destroyed: u32,
    },
}

/// The second block of `-s` in sync mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExternalSummary {
    /// "cache external:".
    Cache(CacheSummary),
    /// "external inject:" (`DisableExternalCache on`): peer messages written to the kernel.
    /// `active` is not printed.
    Inject(CacheSummary),
}

/// "traffic processed:" (netlink events read by the daemon).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes of netlink messages.
    pub bytes: u64,
    /// Netlink messages.
    pub packets: u64,
}

/// The kind of a sync link, which names its stats block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// `Multicast { }`: "multicast traffic".
    Multicast,
    /// `UDP { }`: "UDP traffic".
    Udp,
    /// `TCP { }`: "TCP traffic".
    Tcp,
}

impl ChannelKind {
    fn label(self) -> &'static str {
        match self {
            Self::Multicast => "multicast",
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
        }
    }
}

/// Send/receive counters of one link (per `send`/`recv` call, not per message).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_recv: u64,
    /// Datagrams (TCP: `send` calls) sent.
    pub pkts_sent: u64,
    /// Datagrams (TCP: `recv` calls) received.
    pub pkts_recv: u64,
    /// Failed sends.
    pub err_send: u64,
    /// Failed receives.
    pub err_recv: u64,
}

/// The current link as `-s` and `-s network` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveLink {
    /// Channel type.
    pub kind: ChannelKind,
    /// Interface name.
    pub device: String,
    /// TCP only: whether the server and client sides are connected.
    pub tcp_connected: Option<(bool, bool)>,
    /// Counters.
    pub counters: LinkCounters,
}

/// Carrier state of a link for `-s link`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Up with carrier: `RUNNING`.
    Running,
    /// Up without carrier: `NO-CARRIER`.
    NoCarrier,
    /// Down: `DOWN`.
    Down,
}

impl LinkState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::NoCarrier => "NO-CARRIER",
            Self::Down => "DOWN",
        }
    }
}

/// One link for `-s link` (every link, in configuration order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStatus {
    /// Channel type.
    pub kind: ChannelKind,
    /// Interface name.
    pub device: String,
    /// Carrier state.
    pub state: LinkState,
    /// Whether this is the current (`ACTIVE`) link rather than a `BACKUP`.
    pub active: bool,
    /// Counters.
    pub counters: LinkCounters,
}

/// Everything `-s` (or `-s expect`, with the expectation caches) prints in sync mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSummary {
    /// First block.
    pub internal: InternalSummary,
    /// Second block.
    pub external: ExternalSummary,
    /// Netlink traffic.
    pub traffic: Traffic,
    /// The current link.
    pub link: ActiveLink,
    /// "Malformed msgs" of the message-tracking block.
    pub malformed: u64,
    /// "Lost msgs" of the message-tracking block.
    pub lost: u64,
}

fn cache_summary(out: &mut String, title: &str, c: &CacheSummary, with_active: bool) {
    let _ = writeln!(out, "{title}:");
    if with_active {
        let _ = writeln!(out, "current active connections:\t{:12}", c.active);
    }
    let _ = write!(
        out,
        "connections created:\t\t{:12}\tfailed:\t{:12}\n\
         connections updated:\t\t{:12}\tfailed:\t{:12}\n\
         connections destroyed:\t\t{:12}\tfailed:\t{:12}\n\n",
        c.created, c.create_failed, c.updated, c.update_failed, c.destroyed, c.destroy_failed
    );
}

fn traffic(out: &mut String, t: &Traffic) {
    let _ = write!(
        out,
        "traffic processed:\n{:20} Bytes      {:20} Pckts\n\n",
        t.bytes, t.packets
    );
}

fn link_counters(out: &mut String, c: &LinkCounters) {
    let _ = write!(
        out,
        "{:20} Bytes sent {:20} Bytes recv\n\
         {:20} Pckts sent {:20} Pckts recv\n\
         {:20} Error send {:20} Error recv\n\n",
        c.bytes_sent, c.bytes_recv, c.pkts_sent, c.pkts_recv, c.err_send, c.err_recv
    );
}

/// The current-link block of `-s` and `-s network`.
pub fn active_link(out: &mut String, l: &ActiveLink) {
    let _ = write!(
        out,
        "{} traffic (active device={})",
        l.kind.label(),
        l.device
    );
    if let Some((server, client)) = l.tcp_connected {
        let word = |c: bool| if c { "connected" } else { "disconnected" };
        let _ = write!(out, " server={} client={}", word(server), word(client));
    }
    out.push_str(":\n");
    link_counters(out, &l.counters);
}

/// `-s` / `-s ct` / `-s expect` in sync mode.
pub fn sync_summary(s: &SyncSummary) -> String {
    let mut out = String::with_capacity(1024);
    match &s.internal {
        InternalSummary::Cache(c) => cache_summary(&mut out, "cache internal", c, true),
        InternalSummary::Bypass {
            new,
            updated,
            destroyed,
        } => {
            let _ = write!(
                out,
                "internal bypass:\n\
                 connections new:\t\t{new:12}\n\
                 connections updated:\t\t{updated:12}\n\
                 connections destroyed:\t\t{destroyed:12}\n\n"
            );
        }
    }
    match &s.external {
        ExternalSummary::Cache(c) => cache_summary(&mut out, "cache external", c, true),
        ExternalSummary::Inject(c) => cache_summary(&mut out, "external inject", c, false),
    }
    traffic(&mut out, &s.traffic);
    active_link(&mut out, &s.link);
    let _ = write!(
        out,
        "message tracking:\n{:20} Malformed msgs {:20} Lost msgs\n\n",
        s.malformed, s.lost
    );
    out
}

/// `-s` in stats mode (`Stats { }`): one cache block and the traffic block.
pub fn stats_summary(cache: &CacheSummary, t: &Traffic) -> String {
    let mut out = String::with_capacity(512);
    cache_summary(&mut out, "cache stats", cache, true);
    traffic(&mut out, t);
    out
}

/// The detailed counters of one cache (`-s cache`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheDetail {
    /// "active objects".
    pub active: u32,
    /// "active/total entries": active part.
    pub active_entries: u32,
    /// "active/total entries": total part (including dying objects).
    pub total_entries: u32,
    /// "creation OK".
    pub add_ok: u32,
    /// "creation failed".
    pub add_fail: u32,
    /// "no memory available".
    pub add_fail_enomem: u32,
    /// "no space left in cache".
    pub add_fail_enospc: u32,
    /// "update OK".
    pub upd_ok: u32,
    /// "update failed".
    pub upd_fail: u32,
    /// "update failed: entry not found".
    pub upd_fail_enoent: u32,
    /// "deletion created" (the C label; it counts successful deletions).
    pub del_ok: u32,
    /// "deletion failed".
    pub del_fail: u32,
    /// "deletion failed: entry not found".
    pub del_fail_enoent: u32,
}

/// One cache of `-s cache`; `name` is `internal`, `external` or, in stats mode, `stats`.
pub fn cache_detail(out: &mut String, name: &str, c: &CacheDetail) {
    let _ = write!(
        out,
        "cache:{name}\tactive objects:\t\t{:12}\n\
         \tactive/total entries:\t\t{:12}/{:12}\n\
         \tcreation OK/failed:\t\t{:12}/{:12}\n\
         \t\tno memory available:\t{:12}\n\
         \t\tno space left in cache:\t{:12}\n\
         \tupdate OK/failed:\t\t{:12}/{:12}\n\
         \t\tentry not found:\t{:12}\n\
         \tdeletion created/failed:\t{:12}/{:12}\n\
         \t\tentry not found:\t{:12}\n\n",
        c.active,
        c.active_entries,
        c.total_entries,
        c.add_ok,
        c.add_fail,
        c.add_fail_enomem,
        c.add_fail_enospc,
        c.upd_ok,
        c.upd_fail,
        c.upd_fail_enoent,
        c.del_ok,
        c.del_fail,
        c.del_fail_enoent
    );
}

/// `-s cache`: each `(name, counters)` in order (internal, then external).
pub fn caches(list: &[(&str, CacheDetail)]) -> String {
    let mut out = String::with_capacity(512 * list.len());
    for (name, c) in list {
        cache_detail(&mut out, name, c);
    }
    out
}

/// Receive-side error counters of `-s network`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// recv: "Malformed messages".
    pub recv_malformed: u64,
    /// "Wrong protocol version".
    pub bad_version: u64,
    /// "Malformed header".
    pub bad_header: u64,
    /// "Malformed payload".
    pub bad_payload: u64,
    /// "Bad message type".
    pub bad_type: u64,
    /// "Truncated message".
    pub truncated: u64,
    /// "Bad message size".
    pub bad_size: u64,
    /// send: "Malformed messages".
    pub send_malformed: u64,
    /// "Packets lost" (sequence tracking).
    pub lost: u64,
    /// "Packets before" (sequence tracking).
    pub before: u64,
}

/// `-s network`: the network and sequence-tracking blocks, then the current link.
pub fn network(n: &NetworkStats, link: &ActiveLink) -> String {
    let mut out = String::with_capacity(1024);
    let _ = write!(
        out,
        "network statistics:\n\
         \trecv:\n\
         \t\tMalformed messages:\t{:20}\n\
         \t\tWrong protocol version:\t{:20}\n\
         \t\tMalformed header:\t{:20}\n\
         \t\tMalformed payload:\t{:20}\n\
         \t\tBad message type:\t{:20}\n\
         \t\tTruncated message:\t{:20}\n\
         \t\tBad message size:\t{:20}\n\
         \tsend:\n\
         \t\tMalformed messages:\t{:20}\n\n\
         sequence tracking statistics:\n\
         \trecv:\n\
         \t\tPackets lost:\t\t{:20}\n\
         \t\tPackets before:\t\t{:20}\n\n",
        n.recv_malformed,
        n.bad_version,
        n.bad_header,
        n.bad_payload,
        n.bad_type,
        n.truncated,
        n.bad_size,
        n.send_malformed,
        n.lost,
        n.before
    );
    active_link(&mut out, link);
    out
}

/// Counters of `-s runtime`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Time since the daemon started.
    pub uptime: Duration,
    /// "events received".
    pub events_received: u64,
    /// "events filtered".
    pub events_filtered: u64,
    /// "events unknown type".
    pub events_unknown_type: u32,
    /// "catch event failed".
    pub catch_event_failed: u32,
    /// "dump unknown type".
    pub dump_unknown_type: u32,
    /// "netlink overrun".
    pub netlink_overrun: u32,
    /// "flush kernel table".
    pub flush_kernel_table: u32,
    /// "resync with kernel table".
    pub resync_kernel_table: u32,
    /// "current buffer size (in bytes)".
    pub netlink_buffer_size: u32,
    /// "child process failed".
    pub child_failed: u32,
    /// "child process segfault".
    pub child_segfault: u32,
    /// "child process termsig".
    pub child_termsig: u32,
    /// "select failed".
    pub select_failed: u32,
    /// "wait failed".
    pub wait_failed: u32,
    /// "local read failed".
    pub local_read_failed: u32,
    /// "local unknown request".
    pub local_unknown_request: u32,
}

/// The C daemon's uptime text: `[<d> day(s) ]<h> h <m> min` or `[<d> day(s) ]<m> min`.
pub fn uptime(d: Duration) -> String {
    let secs = d.as_secs();
    let days = secs / 86_400;
    let mut out = String::new();
    if days > 0 {
        let _ = write!(out, "{days} day{} ", if days != 1 { "s" } else { "" });
    }
    let minutes = secs / 60;
    let hours = (minutes / 60) % 24;
    let minutes = minutes % 60;
    if hours > 0 {
        let _ = write!(out, "{hours} h {minutes} min");
    } else {
        let _ = write!(out, "{minutes} min");
    }
    out
}

/// `-s runtime`.
pub fn runtime(r: &RuntimeStats) -> String {
    let mut out = String::with_capacity(1024);
    let _ = write!(
        out,
        "daemon uptime: {}\n\n\
         netlink stats:\n\
         \tevents received:\t{:20}\n\
         \tevents filtered:\t{:20}\n\
         \tevents unknown type:\t\t{:12}\n\
         \tcatch event failed:\t\t{:12}\n\
         \tdump unknown type:\t\t{:12}\n\
         \tnetlink overrun:\t\t{:12}\n\
         \tflush kernel table:\t\t{:12}\n\
         \tresync with kernel table:\t{:12}\n\
         \tcurrent buffer size (in bytes):\t{:12}\n\n\
         runtime stats:\n\
         \tchild process failed:\t\t{:12}\n\
         \t\tchild process segfault:\t{:12}\n\
         \t\tchild process termsig:\t{:12}\n\
         \tselect failed:\t\t\t{:12}\n\
         \twait failed:\t\t\t{:12}\n\
         \tlocal read failed:\t\t{:12}\n\
         \tlocal unknown request:\t\t{:12}\n\n",
        uptime(r.uptime),
        r.events_received,
        r.events_filtered,
        r.events_unknown_type,
        r.catch_event_failed,
        r.dump_unknown_type,
        r.netlink_overrun,
        r.flush_kernel_table,
        r.resync_kernel_table,
        r.netlink_buffer_size,
        r.child_failed,
        r.child_segfault,
        r.child_termsig,
        r.select_failed,
        r.wait_failed,
        r.local_read_failed,
        r.local_unknown_request
    );
    out
}

/// `-s link`: every link in configuration order.
pub fn links(list: &[LinkStatus]) -> String {
    let mut out = String::with_capacity(256 * list.len());
    for l in list {
        let _ = writeln!(
            out,
            "{} traffic device={} status={} role={}:",
            l.kind.label(),
            l.device,
            l.state.as_str(),
            if l.active { "ACTIVE" } else { "BACKUP" }
        );
        link_counters(&mut out, &l.counters);
    }
    out
}

/// One element of the FTFW resend queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResendItem {
    /// A control message (e.g. a RESYNC) with its flags.
    Control {
        /// Sequence number.
        seq: u32,
        /// Header flags, printed in decimal.
        flags: u32,
    },
    /// A data object awaiting acknowledgement.
    Object {
        /// Sequence number.
        seq: u32,
    },
}

/// `-s rsqueue` (FTFW): no trailing empty line.
pub fn resend_queue(items: &[ResendItem]) -> String {
    let mut out = String::with_capacity(32 + 28 * items.len());
    let _ = writeln!(out, "resent queue (len={})", items.len());
    for item in items {
        let _ = match item {
            ResendItem::Control { seq, flags } => {
                writeln!(out, "control -> seq:{seq} flags:{flags}")
            }
            ResendItem::Object { seq } => writeln!(out, "object -> seq:{seq}"),
        };
    }
    out
}

/// One queue of `-s queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    /// Queue name (`txqueue`, `errorq`, `rsqueue`).
    pub name: String,
    /// "current elements".
    pub current: u32,
    /// "maximum elements".
    pub max: u32,
    /// "not enough space errors".
    pub full_errors: u32,
}

/// `-s queue`: `allocated` nodes, then each queue (most recently created first in 1.4.7).
pub fn queues(allocated: u32, list: &[QueueStats]) -> String {
    let mut out = String::with_capacity(64 + 128 * list.len());
    let _ = write!(out, "allocated queue nodes:\t\t{allocated:12}\n\n");
    for q in list {
        let _ = write!(
            out,
            "queue {}:\n\
             current elements:\t\t{:12}\n\
             maximum elements:\t\t{:12}\n\
             not enough space errors:\t{:12}\n\n",
            q.name, q.current, q.max, q.full_errors
        );
    }
    out
}

/// What a child process of the daemon is doing (`-s process`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildKind {
    /// `any`.
    Any,
    /// `flush`: a kernel-table flush (`-F`).
    Flush,
    /// `commit`: a commit (`-c`).
    Commit,
}

/// `-s process`: one line per running child; empty when there is none.
pub fn processes(list: &[(u32, ChildKind)]) -> String {
    let mut out = String::new();
    for (pid, kind) in list {
        let kind = match kind {
            ChildKind::Any => "any",
            ChildKind::Flush => "flush",
            ChildKind::Commit => "commit",
        };
        let _ = writeln!(out, "PID={pid} type={kind}");
    }
    out
}

#[cfg(test)]
mod tests {
    //! Golden files in `testdata/` are replies of Debian's conntrackd 1.4.7 (FTFW over UDP on
    //! `vxA`, three kernel entries; and a `Stats { }` daemon), captured with
    //! `conntrackd -C f.conf -s …`. The structs below hold the numbers those replies show.
    use super::*;

    const FTFW_S: &str = include_str!("testdata/ftfw_s.txt");
    const FTFW_S_CACHE: &str = include_str!("testdata/ftfw_s_cache.txt");
    const FTFW_S_RUNTIME: &str = include_str!("testdata/ftfw_s_runtime.txt");
    const FTFW_S_QUEUE: &str = include_str!("testdata/ftfw_s_queue.txt");
    const FTFW_S_NETWORK: &str = include_str!("testdata/ftfw_s_network.txt");
    const FTFW_S_LINK: &str = include_str!("testdata/ftfw_s_link.txt");
    const FTFW_S_RSQUEUE: &str = include_str!("testdata/ftfw_s_rsqueue.txt");
    const STATS_S: &str = include_str!("testdata/stats_s.txt");
    const STATS_S_CACHE: &str = include_str!("testdata/stats_s_cache.txt");

    fn udp_link() -> ActiveLink {
        ActiveLink {
            kind: ChannelKind::Udp,
            device: "vxA".into(),
            tcp_connected: None,
            counters: LinkCounters {
                bytes_sent: 348,
                pkts_sent: 12,
                ..Default::default()
            },
        }
    }

    #[test]
    fn test_sync_summary_golden() {
        let internal = CacheSummary {
            active: 3,
            created: 3,
            ..Default::default()
        };
        let s = SyncSummary {
            internal: InternalSummary::Cache(internal),
            external: ExternalSummary::Cache(CacheSummary::default()),
            traffic: Traffic::default(),
            link: udp_link(),
            malformed: 0,
            lost: 0,
        };
        assert_eq!(sync_summary(&s), FTFW_S);
    }

    #[test]
    fn test_reference_sample_blocks() {
        // control-and-cli.md §3.4 real sample (multicast link, 13 active).
        let mut out = String::new();
        active_link(
            &mut out,
            &ActiveLink {
                kind: ChannelKind::Multicast,
                device: "vctA".into(),
                tcp_connected: None,
                counters: LinkCounters {
                    bytes_sent: 4112,
                    bytes_recv: 1464,
                    pkts_sent: 105,
                    pkts_recv: 92,
                    err_send: 0,
                    err_recv: 0,
                },
            },
        );
        assert_eq!(
            out,
            "multicast traffic (active device=vctA):\n\
             \x20               4112 Bytes sent                 1464 Bytes recv\n\
             \x20                105 Pckts sent                   92 Pckts recv\n\
             \x20                  0 Error send                    0 Error recv\n\n"
        );
        let mut out = String::new();
        cache_summary(
            &mut out,
            "cache internal",
            &CacheSummary {
                active: 13,
                created: 14,
                ..Default::default()
            },
            true,
        );
        assert!(out.starts_with(
            "cache internal:\ncurrent active connections:\t          13\n\
             connections created:\t\t          14\tfailed:\t           0\n"
        ));
    }

    #[test]
    fn test_bypass_and_inject_blocks() {
        let s = SyncSummary {
            internal: InternalSummary::Bypass {
                new: 1,
                updated: 2,
                destroyed: 3,
            },
            external: ExternalSummary::Inject(CacheSummary {
                created: 4,
                ..Default::default()
            }),
            traffic: Traffic::default(),
            link: ActiveLink {
                kind: ChannelKind::Tcp,
                device: "eth1".into(),
                tcp_connected: Some((true, false)),
                counters: LinkCounters::default(),
            },
            malformed: 0,
            lost: 0,
        };
        let text = sync_summary(&s);
        assert!(text.starts_with(
            "internal bypass:\n\
             connections new:\t\t           1\n\
             connections updated:\t\t           2\n\
             connections destroyed:\t\t           3\n\n\
             external inject:\n\
             connections created:\t\t           4\tfailed:\t           0\n"
        ));
        assert!(text.contains(
            "\nTCP traffic (active device=eth1) server=connected client=disconnected:\n"
        ));
    }

    #[test]
    fn test_stats_mode_golden() {
        let c = CacheSummary {
            active: 3,
            created: 3,
            ..Default::default()
        };
        assert_eq!(stats_summary(&c, &Traffic::default()), STATS_S);
        let d = CacheDetail {
            active: 3,
            active_entries: 3,
            total_entries: 3,
            add_ok: 3,
            ..Default::default()
        };
        assert_eq!(caches(&[("stats", d)]), STATS_S_CACHE);
    }

    #[test]
    fn test_cache_detail_golden() {
        let internal = CacheDetail {
            active: 3,
            active_entries: 3,
            total_entries: 3,
            add_ok: 3,
            ..Default::default()
        };
        let text = caches(&[("internal", internal), ("external", CacheDetail::default())]);
        assert_eq!(text, FTFW_S_CACHE);
    }

    #[test]
    fn test_runtime_golden() {
        let r = RuntimeStats {
            uptime: Duration::from_secs(5),
            events_received: 3,
            netlink_buffer_size: 212_992,
            ..Default::default()
        };
        assert_eq!(runtime(&r), FTFW_S_RUNTIME);
    }

    #[test]
    fn test_uptime() {
        assert_eq!(uptime(Duration::from_secs(59)), "0 min");
        assert_eq!(uptime(Duration::from_secs(61)), "1 min");
        assert_eq!(uptime(Duration::from_secs(3 * 3600 + 120)), "3 h 2 min");
        assert_eq!(uptime(Duration::from_secs(86_400 + 60)), "1 day 1 min");
        assert_eq!(
            uptime(Duration::from_secs(2 * 86_400 + 3600)),
            "2 days 1 h 0 min"
        );
    }

    #[test]
    fn test_queue_golden() {
        let q = |name: &str, current, max| QueueStats {
            name: name.into(),
            current,
            max,
            full_errors: 0,
        };
        let list = [
            q("txqueue", 0, 2_147_483_647),
            q("errorq", 0, 128),
            q("rsqueue", 3, 131_072),
        ];
        assert_eq!(queues(0, &list), FTFW_S_QUEUE);
    }

    #[test]
    fn test_network_golden() {
        assert_eq!(
            network(&NetworkStats::default(), &udp_link()),
            FTFW_S_NETWORK
        );
    }

    #[test]
    fn test_link_golden() {
        let l = LinkStatus {
            kind: ChannelKind::Udp,
            device: "vxA".into(),
            state: LinkState::Running,
            active: true,
            counters: udp_link().counters,
        };
        assert_eq!(links(&[l]), FTFW_S_LINK);
    }

    #[test]
    fn test_rsqueue_golden() {
        let items = [
            ResendItem::Object { seq: 1_795_614_890 },
            ResendItem::Object { seq: 1_795_614_891 },
            ResendItem::Object { seq: 1_795_614_892 },
        ];
        assert_eq!(resend_queue(&items), FTFW_S_RSQUEUE);
        // The reference's observed control line.
        assert_eq!(
            resend_queue(&[ResendItem::Control {
                seq: 1_795_607_070,
                flags: 8
            }]),
            "resent queue (len=1)\ncontrol -> seq:1795607070 flags:8\n"
        );
    }

    #[test]
    fn test_processes() {
        assert_eq!(processes(&[]), "");
        assert_eq!(
            processes(&[(42, ChildKind::Commit), (43, ChildKind::Flush)]),
            "PID=42 type=commit\nPID=43 type=flush\n"
        );
    }
}
