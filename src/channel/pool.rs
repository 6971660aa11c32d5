//! Redundant dedicated links: which one sends (sync-modes.md §9).
//!
//! Every link receives; only the current one sends. The current link changes when
//!
//! * its interface is not both UP and RUNNING: the first *other* link in config order whose
//!   interface is UP **or** RUNNING takes over ("device `X' becomes dedicated link"), else
//!   nothing changes ("no dedicated links available!"). Like the C daemon this is
//!   re-evaluated on every link notification, so a backup that comes up later is picked
//!   then;
//! * sending on it fails with a network-down kind of error (our addition: the C daemon
//!   only reacts to rtnetlink, but an error here means the datagram would be lost, so we
//!   move on at once and resend it on the new link);
//! * a valid message arrives on another link: the peer has moved, follow it.
//!
//! The choice itself is the pure function [`select`], unit-tested on flag tables.

use std::fmt::Write as _;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use super::linkstate::{IFF_RUNNING, IFF_UP, IfState};
use super::{Link, LinkStats, RecvBatch, Transport, open_link};
use crate::config;
use crate::sys::socket;
use crate::wire::Messages;

/// What [`select`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// The current link is fine.
    Keep,
    /// Switch to this link.
    Switch(usize),
    /// The current link is down and no other link is usable.
    NoneAvailable,
}

/// The C daemon's choice, as a pure function of `IFF_*` flags per link (config order).
///
/// Keep `current` while it is UP and RUNNING; otherwise the first other link that is UP
/// or RUNNING.
pub fn select(current: usize, flags: &[u32]) -> Selection {
    let ok = |f: u32| f & IFF_UP != 0 && f & IFF_RUNNING != 0;
    if flags.get(current).is_some_and(|&f| ok(f)) {
        return Selection::Keep;
    }
    flags
        .iter()
        .enumerate()
        .find(|&(i, &f)| i != current && f & (IFF_UP | IFF_RUNNING) != 0)
        .map_or(Selection::NoneAvailable, |(i, _)| Selection::Switch(i))
}

/// One line of `-s link`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStatus {
    /// The interface.
    pub interface: String,
    /// The link's transport.
    pub transport: Transport,
    /// Interface state.
    pub state: IfState,
    /// True for the current (ACTIVE) link.
    pub active: bool,
    /// Counters.
    pub stats: LinkStats,
    /// TCP: `(server side has a peer, client side connected)`.
    pub tcp: Option<(bool, bool)>,
}

impl LinkStatus {
    /// Appends the C daemon's `-s link` block for this link (control-and-cli.md).
    pub fn render(&self, out: &mut String) {
        let kind = match self.transport {
            Transport::Multicast => "multicast",
            Transport::Tcp => "TCP",
            _ => "UDP",
        };
        let role = if self.active { "ACTIVE" } else { "BACKUP" };
        let s = &self.stats;
        let _ = write!(
            out,
            "{kind} traffic device={} status={} role={role}:\n\
             {:>20} Bytes sent {:>20} Bytes recv\n\
             {:>20} Pckts sent {:>20} Pckts recv\n\
             {:>20} Error send {:>20} Error recv\n\n",
            self.interface,
            self.state.as_str(),
            s.bytes_sent,
            s.bytes_recv,
            s.datagrams_sent,
            s.datagrams_recv,
            s.send_errors,
            s.recv_errors,
        );
    }
}

/// The redundant links of one daemon.
#[derive(Debug)]
pub struct LinkPool {
    links: Vec<Box<dyn Link>>,
    flags: Vec<u32>,
    current: usize,
    failovers: u64,
    follows: u64,
    // Any socket of the links' namespace, for SIOCGIFFLAGS.
    query: OwnedFd,
}

impl LinkPool {
    /// Opens every link of `sync` (in the calling thread's namespace) and reads the state
    /// of their interfaces. The initial current link is `sync.default_channel`.
    pub fn open(sync: &config::Sync) -> io::Result<Self> {
        let links = sync
            .channels
            .iter()
            .map(|ch| open_link(ch, sync.error_queue_length))
            .collect::<io::Result<Vec<_>>>()?;
        Self::from_links(links, sync.default_channel)
    }

    /// A pool over already opened links (at least one); `current` is the initial sender.
    pub fn from_links(links: Vec<Box<dyn Link>>, current: usize) -> io::Result<Self> {
        if links.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no dedicated link",
            ));
        }
        let query = socket::socket(std::net::Ipv4Addr::UNSPECIFIED.into(), libc::SOCK_DGRAM)?;
        let mut pool = Self {
            flags: vec![0; links.len()],
            current: current.min(links.len() - 1),
            links,
            failovers: 0,
            follows: 0,
            query,
        };
        pool.refresh_states();
        Ok(pool)
    }

    /// Index of the link that sends.
    pub fn current(&self) -> usize {
        self.current
    }

    /// Number of links.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Always false: a pool has at least one link.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// Link `i`.
    pub fn link(&self, i: usize) -> &dyn Link {
        &*self.links[i]
    }

    /// Link `i`, mutably.
    pub fn link_mut(&mut self, i: usize) -> &mut dyn Link {
        &mut *self.links[i]
    }

    /// Current-link changes caused by interface state or send errors.
    pub fn failovers(&self) -> u64 {
        self.failovers
    }

    /// Current-link changes caused by receiving on another link.
    pub fn follows(&self) -> u64 {
        self.follows
    }

    /// Re-reads every link's interface flags (at start and after a notification overrun)
    /// and re-evaluates the current link.
    pub fn refresh_states(&mut self) {
        for (i, l) in self.links.iter().enumerate() {
            self.flags[i] = socket::if_flags(self.query.as_fd(), l.interface()).unwrap_or(0);
        }
        self.reselect();
    }

    /// An interface changed state (from [`super::LinkMonitor`]). Updates every link on
    /// `ifname`, then re-evaluates the current link as the C daemon does on every
    /// notification.
    pub fn on_link_state(&mut self, ifname: &str, up: bool, running: bool) -> Selection {
        let f = if up { IFF_UP } else { 0 } | if running { IFF_RUNNING } else { 0 };
        for (i, l) in self.links.iter().enumerate() {
            if l.interface() == ifname {
                self.flags[i] = f;
            }
        }
        self.reselect()
    }

    fn reselect(&mut self) -> Selection {
        let s = select(self.current, &self.flags);
        match s {
            Selection::Keep => {}
            Selection::Switch(i) => {
                self.current = i;
                self.failovers += 1;
                tracing::info!(
                    "device `{}' becomes dedicated link",
                    self.links[i].interface()
                );
            }
            Selection::NoneAvailable => tracing::error!("no dedicated links available!"),
        }
        s
    }

    /// A valid message arrived on link `idx`: it becomes current (the peer sends there).
    pub fn on_valid_message(&mut self, idx: usize) {
        if idx < self.links.len() && idx != self.current {
            self.current = idx;
            self.follows += 1;
            tracing::info!(
                "device `{}' becomes dedicated link",
                self.links[idx].interface()
            );
        }
    }

    /// Receives on link `idx` into `batch`; if a valid message arrived, that link becomes
    /// current. Returns the number of datagrams in `batch`.
    ///
    /// "Valid" here is the framing level: a message with a correct header (a datagram made
    /// only of wrong-version messages does not count). Finer checks belong to the sync
    /// layer, which can call [`Self::on_valid_message`] itself.
    pub fn recv_batch(&mut self, idx: usize, batch: &mut RecvBatch) -> io::Result<usize> {
        let n = self.links[idx].recv_batch(batch)?;
        // Only worth a second header walk when it could change something.
        if idx != self.current
            && batch
                .iter()
                .any(|r| Messages::new(r.bytes).any(|m| m.is_ok()))
        {
            self.on_valid_message(idx);
        }
        Ok(n)
    }

    /// Sends on the current link. If that fails with an error that means "this path is
    /// gone", the link is treated as down, the next usable one becomes current, and the
    /// unsent datagrams go there. Returns how many were sent.
    pub fn send_batch(&mut self, datagrams: &[&[u8]]) -> io::Result<usize> {
        let mut sent = 0;
        // Each link is tried at most once per call.
        for _ in 0..self.links.len() {
            match self.links[self.current].send_batch(&datagrams[sent..]) {
                Ok(n) => {
                    sent += n;
                    if sent == datagrams.len() {
                        return Ok(sent);
                    }
                }
                Err(e) if !path_down(&e) => return if sent > 0 { Ok(sent) } else { Err(e) },
                Err(e) => {
                    let mut flags = self.flags.clone();
                    flags[self.current] = 0;
                    match select(self.current, &flags) {
                        Selection::Switch(i) => {
                            self.current = i;
                            self.failovers += 1;
                            tracing::info!(
                                "device `{}' becomes dedicated link",
                                self.links[i].interface()
                            );
                        }
                        _ => return if sent > 0 { Ok(sent) } else { Err(e) },
                    }
                }
            }
        }
        Ok(sent)
    }

    /// Sends [`super::Transmit`]s (see [`Self::send_batch`]), [`super::BATCH_SIZE`] at a time.
    pub fn transmit(&mut self, transmits: &[super::Transmit<'_>]) -> io::Result<usize> {
        let mut sent = 0;
        for chunk in transmits.chunks(super::BATCH_SIZE) {
            let mut refs: [&[u8]; super::BATCH_SIZE] = [&[]; super::BATCH_SIZE];
            for (r, t) in refs.iter_mut().zip(chunk) {
                *r = t.contents;
            }
            let n = self.send_batch(&refs[..chunk.len()])?;
            sent += n;
            if n < chunk.len() {
                break;
            }
        }
        Ok(sent)
    }

    /// Periodic work on every link (TCP reconnects and queue flushing).
    pub fn tick(&mut self) {
        for l in &mut self.links {
            l.tick();
        }
    }

    /// Every link in config order, for `-s link`.
    pub fn status(&self) -> Vec<LinkStatus> {
        self.links
            .iter()
            .enumerate()
            .map(|(i, l)| LinkStatus {
                interface: l.interface().to_owned(),
                transport: l.transport(),
                state: IfState::from_flags(self.flags[i]),
                active: i == self.current,
                stats: *l.stats(),
                tcp: l.tcp_state(),
            })
            .collect()
    }
}

/// Errors after which the datagram cannot leave through this link.
fn path_down(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ENETDOWN
                | libc::ENETUNREACH
                | libc::EHOSTUNREACH
                | libc::ENODEV
                | libc::ENXIO
                | libc::EADDRNOTAVAIL
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const UR: u32 = IFF_UP | IFF_RUNNING;
    const U: u32 = IFF_UP;
    const R: u32 = IFF_RUNNING;

    #[test]
    fn test_keep_while_up_and_running() {
        assert_eq!(select(0, &[UR, UR]), Selection::Keep);
        assert_eq!(select(1, &[0, UR]), Selection::Keep);
    }

    #[test]
    fn test_first_other_in_config_order() {
        // Scanning starts at the first link, not after the current one (C order).
        assert_eq!(select(2, &[U, UR, 0]), Selection::Switch(0));
        assert_eq!(select(0, &[U, 0, R, UR]), Selection::Switch(2));
        // UP without carrier counts as a candidate, but is not kept as current.
        assert_eq!(select(0, &[U, U]), Selection::Switch(1));
        assert_eq!(select(1, &[U, U]), Selection::Switch(0));
    }

    #[test]
    fn test_none_available() {
        assert_eq!(select(0, &[0, 0]), Selection::NoneAvailable);
        assert_eq!(select(0, &[U]), Selection::NoneAvailable);
        assert_eq!(select(0, &[]), Selection::NoneAvailable);
    }

    /// A link that only counts, failing sends with `fail` when set.
    #[derive(Debug)]
    struct Fake {
        name: &'static str,
        fail: Option<i32>,
        stats: LinkStats,
    }

    impl Link for Fake {
        fn send_batch(&mut self, d: &[&[u8]]) -> io::Result<usize> {
            if let Some(e) = self.fail {
                self.stats.send_errors += 1;
                return Err(io::Error::from_raw_os_error(e));
            }
            self.stats.datagrams_sent += d.len() as u64;
            Ok(d.len())
        }
        fn recv_batch(&mut self, _: &mut RecvBatch) -> io::Result<usize> {
            Err(io::ErrorKind::WouldBlock.into())
        }
        fn recv_fds(&self) -> super::super::RecvFds<'_> {
            super::super::RecvFds([None, None])
        }
        fn interface(&self) -> &str {
            self.name
        }
        fn transport(&self) -> Transport {
            Transport::Udp
        }
        fn mtu(&self) -> usize {
            1500
        }
        fn stats(&self) -> &LinkStats {
            &self.stats
        }
    }

    fn fake(name: &'static str, fail: Option<i32>) -> Box<dyn Link> {
        Box::new(Fake {
            name,
            fail,
            stats: LinkStats::default(),
        })
    }

    #[test]
    fn test_pool_transitions() {
        // Interface names that do not exist: every link starts DOWN, nothing to pick.
        let links = vec![
            fake("ctdfake0", Some(libc::ENETDOWN)),
            fake("ctdfake1", None),
        ];
        let mut p = LinkPool::from_links(links, 0).unwrap();
        assert_eq!(p.current(), 0);
        assert_eq!(p.failovers(), 0);
        assert_eq!(p.on_link_state("ctdfake0", true, true), Selection::Keep);
        assert_eq!(p.on_link_state("ctdfake1", true, true), Selection::Keep);
        // A path-down send error moves to the backup and the datagram goes there.
        assert_eq!(p.send_batch(&[b"x", b"y"]).unwrap(), 2);
        assert_eq!((p.current(), p.failovers()), (1, 1));
        assert_eq!(p.link(1).stats().datagrams_sent, 2);
        // Traffic from the peer on link 0 pulls us back (follow, not failover).
        p.on_valid_message(0);
        assert_eq!((p.current(), p.follows(), p.failovers()), (0, 1, 1));
        // Carrier lost on 0: the next UP-or-RUNNING link takes over.
        assert_eq!(
            p.on_link_state("ctdfake0", true, false),
            Selection::Switch(1)
        );
        // 1 goes down: 0 is UP (without carrier), which is enough for a candidate.
        assert_eq!(
            p.on_link_state("ctdfake1", false, false),
            Selection::Switch(0)
        );
        assert_eq!(p.failovers(), 3);
        let st = p.status();
        assert_eq!((st[0].state, st[0].active), (IfState::NoCarrier, true));
        assert_eq!((st[1].state, st[1].active), (IfState::Down, false));
    }

    #[test]
    fn test_other_send_errors_do_not_fail_over() {
        let links = vec![fake("ctdfake0", Some(libc::EAGAIN)), fake("ctdfake1", None)];
        let mut p = LinkPool::from_links(links, 0).unwrap();
        p.on_link_state("ctdfake0", true, true);
        p.on_link_state("ctdfake1", true, true);
        assert!(p.send_batch(&[b"x"]).is_err());
        assert_eq!((p.current(), p.failovers()), (0, 0));
    }

    #[test]
    fn test_render() {
        let st = LinkStatus {
            interface: "vctA".into(),
            transport: Transport::Multicast,
            state: IfState::Running,
            active: true,
            stats: LinkStats {
                bytes_sent: 12,
                ..LinkStats::default()
            },
            tcp: None,
        };
        let mut s = String::new();
        st.render(&mut s);
        assert!(s.starts_with("multicast traffic device=vctA status=RUNNING role=ACTIVE:\n"));
        assert!(s.contains("\n                  12 Bytes sent                    0 Bytes recv\n"));
        assert!(s.ends_with("Error recv\n\n"));
    }
}
