//! The daemon's control-request handler ([`CtlHandler`] for `ctl::CtlServer`).
//!
//! Statistics requests read the per-thread counters directly (no lock, they never wait
//! behind a commit); `-s queue`/`-s rsqueue` ask the link thread over its command ring,
//! which has a lock of its own. Everything that talks to the workers or the kernel goes
//! through one mutex: the worker command rings are single-producer, and a commit holds the
//! client until it is complete (sync-modes.md §6 step 7), which is what makes
//! `conntrackd -c` synchronous for keepalived scripts. A second `-c` meanwhile is skipped
//! and `-f` refused before that mutex, as the C daemon does.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::warn;

use super::commit;
use super::log::Log;
use super::stats::{CacheCounters, LinkStats, ReaderStats, ShardStats};
use crate::cache::{CtKey, shard_of};
use crate::channel::LinkStatus as ChannelLinkStatus;
use crate::ctl::render::stats as render;
use crate::ctl::render::stats::{
    ActiveLink, CacheDetail, CacheSummary, ChannelKind, ChildKind, ExternalSummary,
    InternalSummary, LinkCounters, NetworkStats, QueueStats, ResendItem, RuntimeStats, SyncSummary,
    Traffic,
};
use crate::ctl::{CtlHandler, RequestCode as C};
use crate::netlink::ct::Conntrack;
use crate::netlink::socket::{CtHandle, DumpFilter};
use crate::runtime::ring::Producer;
use crate::runtime::sender::{LinkCmd, QueueReport};
use crate::runtime::worker::{Cmd, CtChange, Dump, KernelEvent, Origin};

/// What the handler may change: rings to the threads and the kernel request sockets.
#[derive(Debug)]
pub struct CtlOps {
    /// One command ring per worker.
    pub workers: Vec<Producer<Cmd>>,
    /// The commit socket (its port id is the COMMIT origin).
    pub commit: Vec<CtHandle>,
    /// The flush socket (FLUSH origin); also used for `-R` dumps.
    pub flush: CtHandle,
    /// Commit parameters.
    pub commit_cfg: commit::CommitConfig,
    /// The caches' clock origin.
    pub epoch: Instant,
    /// `ExpectationSync` is on.
    pub expectations: bool,
    /// `PurgeTimeout` (`-t`).
    pub purge_timeout: Duration,
    /// `General { Filter }`: what `-F` and the purge may delete from the kernel.
    pub filter: Option<crate::filter::UserFilter>,
    /// `NetlinkOverrunResync`: delay of the resync after an event overrun (`None`: off).
    pub overrun_resync: Option<Duration>,
    /// `PollSecs`: dump the kernel table this often instead of listening to events.
    pub poll: Option<Duration>,
    /// `DisableInternalCache`: raised by the link thread when a peer asks for a resync,
    /// answered here with a kernel dump sent as new entries (as `-B`).
    pub kernel_resync: Option<Arc<AtomicBool>>,
    /// `DisableInternalCache`: `-i` and `-B` read the kernel table instead.
    pub bypass: bool,
}

/// The pending PurgeTimeout flush (sync-modes.md §7): at most one; any newer generation
/// (a cancel or a reschedule) makes an older timer thread give up.
#[derive(Debug, Default)]
struct Purge {
    generation: AtomicU64,
    scheduled: AtomicBool,
}

/// What the statistics replies read.
#[derive(Debug)]
pub struct CtlView {
    /// Per-shard counters.
    pub shards: Vec<Arc<ShardStats>>,
    /// Link counters (current link, messages).
    pub link_stats: Arc<LinkStats>,
    /// Every link's status, refreshed by the link thread.
    pub links: Arc<Mutex<Vec<ChannelLinkStatus>>>,
    /// Netlink reader counters.
    pub reader_stats: Arc<ReaderStats>,
    /// Transport of the links.
    pub kind: ChannelKind,
    /// Interface of each link, in config order.
    pub devices: Vec<String>,
    /// Index of the current link.
    pub current: Arc<AtomicUsize>,
    /// The log.
    pub log: Arc<Log>,
    /// Daemon start, for `-s runtime`.
    pub started: Instant,
    /// `DisableExternalCache`: the injector's counters ("external inject" block).
    pub inject: Option<Arc<CacheCounters>>,
    /// `DisableInternalCache`: the first `-s` block is "internal bypass".
    pub bypass: bool,
    /// `ErrorQueueLength` (0 = the default 128), the `errorq` line of `-s queue`.
    pub error_queue_length: u32,
    /// To the link thread (`-n`, `-s queue`, `-s rsqueue`). Its own lock, not the ops one,
    /// so that `-s queue` is answered while a commit runs, as the C daemon answers it.
    pub link: Mutex<Producer<LinkCmd>>,
}

/// Requests in progress that the C daemon would serve from a child process, for
/// `-s process` (it lists its children; our work runs in threads of the daemon, so each
/// shows the daemon's pid).
#[derive(Debug, Default)]
struct Children(Mutex<Vec<(u32, ChildKind)>>);

/// Removes its entry from [`Children`] when the request is done.
struct ChildGuard<'a>(&'a Children, ChildKind);

impl Children {
    fn start(&self, kind: ChildKind) -> ChildGuard<'_> {
        self.0.lock().push((std::process::id(), kind));
        ChildGuard(self, kind)
    }
}

impl Drop for ChildGuard<'_> {
    fn drop(&mut self) {
        let mut list = self.0.0.lock();
        if let Some(i) = list.iter().position(|&(_, k)| k == self.1) {
            list.remove(i);
        }
    }
}

/// The handler.
#[derive(Debug)]
pub struct Handler {
    ops: Arc<Mutex<CtlOps>>,
    view: CtlView,
    purge: Arc<Purge>,
    /// A commit is running: a second `-c` is skipped and `-f`/`-f external` refused, as in
    /// C (sync-modes.md §6 step 2). Checked before the ops lock, which the commit holds.
    committing: AtomicBool,
    children: Arc<Children>,
}

/// Clears [`Handler::committing`] however the commit ends.
struct CommitGuard<'a>(&'a AtomicBool);

impl Drop for CommitGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Handler {
    /// A handler over the running daemon's threads.
    pub fn new(ops: CtlOps, view: CtlView) -> Self {
        Self {
            ops: Arc::new(Mutex::new(ops)),
            view,
            purge: Arc::default(),
            committing: AtomicBool::new(false),
            children: Arc::default(),
        }
    }

    /// `-s queue` / `-s rsqueue`: the link thread owns the queues, so it is asked for a
    /// copy over its command ring (the ring's single producer is behind its own lock).
    fn queue_report(&self) -> Option<QueueReport> {
        let (tx, rx) = mpsc::channel();
        self.view
            .link
            .lock()
            .push(LinkCmd::QueueSnapshot(tx))
            .ok()?;
        rx.recv_timeout(Duration::from_secs(5)).ok()
    }

    fn queue_stats(&self) -> String {
        let Some(report) = self.queue_report() else {
            return String::new();
        };
        let errorq = QueueStats {
            name: "errorq".into(),
            current: 0,
            max: match self.view.error_queue_length {
                0 => 128,
                n => n,
            },
            full_errors: 0,
        };
        let txqueue = |current: usize| QueueStats {
            name: "txqueue".into(),
            current: current as u32,
            // The C transmit queue is unbounded: INT_MAX.
            max: i32::MAX as u32,
            full_errors: 0,
        };
        match report {
            // Created rsqueue, errorq, txqueue; listed newest first. Only control messages
            // take a node of their own (data objects are linked in place).
            QueueReport::Ftfw(q) => {
                let ctl = q.tx_ctl + q.resend.iter().filter(|(_, f)| f.is_some()).count();
                render::queues(
                    ctl as u32,
                    &[
                        txqueue(q.tx_len),
                        errorq,
                        QueueStats {
                            name: "rsqueue".into(),
                            current: q.resend.len() as u32,
                            max: q.resend_max as u32,
                            full_errors: q.resend_overflow as u32,
                        },
                    ],
                )
            }
            QueueReport::TxOnly(n) => render::queues(0, &[txqueue(n), errorq]),
        }
    }

    fn resend_queue(&self) -> String {
        match self.queue_report() {
            Some(QueueReport::Ftfw(q)) => {
                let items: Vec<ResendItem> = q
                    .resend
                    .iter()
                    .map(|&(seq, flags)| match flags {
                        Some(f) => ResendItem::Control {
                            seq,
                            flags: u32::from(f.0),
                        },
                        None => ResendItem::Object { seq },
                    })
                    .collect();
                render::resend_queue(&items)
            }
            // FTFW only: no reply in the other modes.
            _ => String::new(),
        }
    }

    /// Starts the thread that answers event overruns with a resync `NetlinkOverrunResync`
    /// seconds later (sync-modes.md §8.3): every kernel entry is merged into the internal
    /// cache and queued (NEW if unknown, UPD if known), and cached entries the kernel no
    /// longer has are marked DEAD and their DEL queued.
    ///
    /// With `PollSecs` the same thread polls instead (§8.4): every period, the same
    /// merge-and-purge of a full dump, so live entries go out as updates and vanished ones
    /// as DEL.
    pub fn start_maintenance(this: &Arc<Self>, shutdown: Arc<AtomicBool>) {
        let (delay, poll, kernel_resync) = {
            let ops = this.ops.lock();
            (ops.overrun_resync, ops.poll, ops.kernel_resync.clone())
        };
        if delay.is_none() && poll.is_none() && kernel_resync.is_none() {
            return;
        }
        let me = Arc::clone(this);
        let spawned = std::thread::Builder::new()
            .name("ctd-maint".into())
            .spawn(move || {
                let mut due: Option<Instant> = None;
                let mut next_poll = poll.map(|p| Instant::now() + p);
                while !shutdown.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(100));
                    if kernel_resync
                        .as_ref()
                        .is_some_and(|f| f.swap(false, Ordering::AcqRel))
                    {
                        me.ops.lock().bulk_from_kernel(&me.view.log);
                    }
                    if let (Some(at), Some(period)) = (next_poll, poll)
                        && Instant::now() >= at
                    {
                        next_poll = Some(at.max(Instant::now() - period) + period);
                        me.ops.lock().poll_kernel(&me.view.log);
                        continue;
                    }
                    let Some(delay) = delay else { continue };
                    if me
                        .view
                        .reader_stats
                        .overrun_pending
                        .swap(false, Ordering::AcqRel)
                        && due.is_none()
                    {
                        due = Some(Instant::now() + delay);
                    }
                    if due.is_some_and(|d| Instant::now() >= d) {
                        due = None;
                        me.ops.lock().overrun_resync(&me.view.log);
                    }
                }
            });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start the maintenance thread");
        }
    }

    /// Returns once every worker has handled what it popped before this call: at
    /// shutdown, so that their transmit requests are out.
    pub fn worker_barrier(&self) {
        worker_round_trip(&mut self.ops.lock().workers, Duration::from_secs(2));
    }

    /// `-c`, `-f` and `-f internal` cancel a pending purge (§7).
    fn cancel_purge(&self) {
        if self.purge.scheduled.swap(false, Ordering::AcqRel) {
            self.purge.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// `-t`: schedules, unless one is pending, the PurgeTimeout flush: the kernel table
    /// (what the filter does not exclude; FLUSH origin, not replicated) and the internal
    /// cache.
    fn schedule_purge(&self) {
        if self.purge.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let generation = self.purge.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let delay = self.ops.lock().purge_timeout;
        self.view.log.notice(&format!(
            "flushing conntrack table in {} secs",
            delay.as_secs()
        ));
        let (ops, purge, log, children) = (
            Arc::clone(&self.ops),
            Arc::clone(&self.purge),
            Arc::clone(&self.view.log),
            Arc::clone(&self.children),
        );
        let spawned = std::thread::Builder::new()
            .name("ctd-purge".into())
            .spawn(move || {
                let deadline = Instant::now() + delay;
                let live = || purge.generation.load(Ordering::Acquire) == generation;
                while Instant::now() < deadline && live() {
                    std::thread::sleep(Duration::from_millis(100).min(deadline - Instant::now()));
                }
                let mut ops = ops.lock();
                // Checked again under the lock: a cancel may have raced with the deadline.
                if !live() || !purge.scheduled.swap(false, Ordering::AcqRel) {
                    return;
                }
                let _child = children.start(ChildKind::Flush);
                ops.flush_kernel(true, false, &log);
                ops.flush_caches(true, false);
            });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start the purge timer");
            self.purge.scheduled.store(false, Ordering::Release);
        }
    }
}

fn summary(c: &[&CacheCounters]) -> CacheSummary {
    let mut s = CacheSummary::default();
    // `%12u` counters: 32-bit in C, wrapped the same way.
    for c in c {
        s.active = s.active.wrapping_add(c.active.get() as u32);
        s.created = s.created.wrapping_add(c.created.get() as u32);
        s.create_failed = s.create_failed.wrapping_add(c.create_failed.get() as u32);
        s.updated = s.updated.wrapping_add(c.updated.get() as u32);
        s.update_failed = s.update_failed.wrapping_add(c.update_failed.get() as u32);
        s.destroyed = s.destroyed.wrapping_add(c.destroyed.get() as u32);
        s.destroy_failed = s.destroy_failed.wrapping_add(c.destroy_failed.get() as u32);
    }
    s
}

fn detail(c: &[&CacheCounters]) -> CacheDetail {
    let mut d = CacheDetail::default();
    for c in c {
        let g = |x: &super::stats::Counter| x.get() as u32;
        d.active = d.active.wrapping_add(g(&c.objects));
        d.active_entries = d.active_entries.wrapping_add(g(&c.active));
        d.total_entries = d.total_entries.wrapping_add(g(&c.objects));
        d.add_ok = d.add_ok.wrapping_add(g(&c.created));
        d.add_fail = d.add_fail.wrapping_add(g(&c.create_failed));
        d.add_fail_enomem = d.add_fail_enomem.wrapping_add(g(&c.create_nomem));
        d.add_fail_enospc = d.add_fail_enospc.wrapping_add(g(&c.create_nospace));
        d.upd_ok = d.upd_ok.wrapping_add(g(&c.updated));
        d.upd_fail = d.upd_fail.wrapping_add(g(&c.update_failed));
        d.upd_fail_enoent = d.upd_fail_enoent.wrapping_add(g(&c.update_enoent));
        d.del_ok = d.del_ok.wrapping_add(g(&c.destroyed));
        d.del_fail = d.del_fail.wrapping_add(g(&c.destroy_failed));
        d.del_fail_enoent = d.del_fail_enoent.wrapping_add(g(&c.destroy_enoent));
    }
    d
}

impl CtlView {
    fn active_link(&self) -> ActiveLink {
        let cur = self.current.load(Ordering::Relaxed);
        let links = self.links.lock();
        let st = links.get(cur);
        let counters = st.map_or_else(LinkCounters::default, |l| LinkCounters {
            bytes_sent: l.stats.bytes_sent,
            bytes_recv: l.stats.bytes_recv,
            pkts_sent: l.stats.datagrams_sent,
            pkts_recv: l.stats.datagrams_recv,
            err_send: l.stats.send_errors,
            err_recv: l.stats.recv_errors,
        });
        ActiveLink {
            kind: self.kind,
            device: self.devices.get(cur).cloned().unwrap_or_default(),
            tcp_connected: st.and_then(|l| l.tcp),
            counters,
        }
    }

    fn sync_summary(&self, exp: bool) -> String {
        let pick = |f: fn(&ShardStats) -> &CacheCounters| -> Vec<&CacheCounters> {
            self.shards.iter().map(|s| f(s)).collect()
        };
        let (i, e) = if exp {
            (pick(|s| &s.internal_exp), pick(|s| &s.external_exp))
        } else {
            (pick(|s| &s.internal), pick(|s| &s.external))
        };
        let external = match &self.inject {
            Some(c) if !exp => ExternalSummary::Inject(summary(&[&**c])),
            _ => ExternalSummary::Cache(summary(&e)),
        };
        let internal = if self.bypass && !exp {
            let c = summary(&i);
            InternalSummary::Bypass {
                new: c.created,
                updated: c.updated,
                destroyed: c.destroyed,
            }
        } else {
            InternalSummary::Cache(summary(&i))
        };
        render::sync_summary(&SyncSummary {
            internal,
            external,
            // The C daemon counts netlink traffic only in stats mode.
            traffic: Traffic::default(),
            link: self.active_link(),
            malformed: self.link_stats.malformed.get(),
            lost: self.link_stats.lost.get(),
        })
    }

    fn cache_stats(&self) -> String {
        let i: Vec<_> = self.shards.iter().map(|s| &s.internal).collect();
        let e: Vec<_> = self.shards.iter().map(|s| &s.external).collect();
        render::caches(&[("internal", detail(&i)), ("external", detail(&e))])
    }

    fn runtime_stats(&self) -> String {
        let r = &self.reader_stats;
        render::runtime(&RuntimeStats {
            uptime: self.started.elapsed(),
            events_received: r.events.get(),
            events_filtered: self
                .shards
                .iter()
                .map(|s| s.events_filtered.get())
                .sum::<u64>(),
            events_unknown_type: 0,
            catch_event_failed: r.bad.get() as u32,
            dump_unknown_type: 0,
            netlink_overrun: r.overruns.get() as u32,
            flush_kernel_table: 0,
            resync_kernel_table: 0,
            netlink_buffer_size: r.buffer_size.get() as u32,
            child_failed: 0,
            child_segfault: 0,
            child_termsig: 0,
            select_failed: 0,
            wait_failed: 0,
            local_read_failed: 0,
            local_unknown_request: 0,
        })
    }

    fn network_stats(&self) -> String {
        render::network(
            &NetworkStats {
                recv_malformed: self.link_stats.malformed.get(),
                lost: self.link_stats.lost.get(),
                ..NetworkStats::default()
            },
            &self.active_link(),
        )
    }

    fn link_stats(&self) -> String {
        let mut s = String::new();
        for l in self.links.lock().iter() {
            l.render(&mut s);
        }
        s
    }
}

impl CtlOps {
    fn broadcast<T: Send + 'static>(&mut self, make: impl Fn(mpsc::Sender<T>) -> Cmd) -> Vec<T> {
        let (tx, rx) = mpsc::channel();
        let mut asked = 0;
        for w in &mut self.workers {
            if w.push(make(tx.clone())).is_ok() {
                asked += 1;
            }
        }
        drop(tx);
        (0..asked)
            .filter_map(|_| rx.recv_timeout(Duration::from_secs(30)).ok())
            .collect()
    }

    fn flush_caches(&mut self, internal: bool, external: bool) {
        self.broadcast(|done| Cmd::Flush {
            internal,
            external,
            done,
        });
    }

    fn dump(&mut self, what: Dump) -> String {
        self.broadcast(|reply| Cmd::Dump(what, reply)).concat()
    }

    fn commit(&mut self, ct: bool, exp: bool, log: &Log) {
        if ct {
            let all: Vec<_> = self.broadcast(Cmd::CollectExternal).concat();
            commit::commit(&mut self.commit, &all, self.epoch, &self.commit_cfg, log);
        }
        // Expectations after conntracks: the kernel needs the master and its helper.
        if exp && self.expectations {
            let all: Vec<_> = self.broadcast(Cmd::CollectExternalExp).concat();
            if !all.is_empty() {
                commit::commit_expectations(
                    &mut self.commit[0],
                    &all,
                    self.epoch,
                    &self.commit_cfg,
                    log,
                );
            }
        }
    }

    /// `-i` without an internal cache: the kernel table, as the C daemon prints it then.
    fn kernel_lines(&mut self) -> String {
        let mut s = String::new();
        let filter = self.filter.clone();
        let _ = self
            .flush
            .dump_conntracks(&DumpFilter::default(), |ct: &Conntrack| {
                if filter.as_ref().is_none_or(|f| f.accepts(ct)) {
                    s.push_str(&crate::ctl::render::entry::conntrack_line(ct));
                    s.push('\n');
                }
            });
        s
    }

    /// `-B` without an internal cache: every kernel entry goes out as CT_NEW (§5.2).
    fn bulk_from_kernel(&mut self, log: &Log) {
        self.dump_to_workers(CtChange::New, Origin::NotMe, Cmd::Load, "bulk send", log);
    }

    /// The overrun resync (§8.3): a full dump, replicated, then a purge of what is gone.
    fn overrun_resync(&mut self, log: &Log) {
        self.dump_to_workers(
            CtChange::Update,
            Origin::NotMe,
            Cmd::Resync,
            "resync after netlink overrun",
            log,
        );
    }

    /// One `PollSecs` poll: the overrun resync's merge-and-purge (§8.4).
    fn poll_kernel(&mut self, log: &Log) {
        self.dump_to_workers(
            CtChange::Update,
            Origin::NotMe,
            Cmd::Resync,
            "poll kernel table",
            log,
        );
    }

    /// `-R`: dump the kernel table into the internal cache (no messages sent).
    fn resync_with_kernel(&mut self, log: &Log) {
        self.dump_to_workers(
            CtChange::New,
            Origin::Dump,
            Cmd::Load,
            "resync with kernel table",
            log,
        );
    }

    /// Dumps the kernel's conntrack table and hands each worker its shard's entries as
    /// `change` events from `origin`, wrapped in `cmd`. Nothing is sent when the dump fails.
    fn dump_to_workers(
        &mut self,
        change: CtChange,
        origin: Origin,
        cmd: fn(Vec<KernelEvent>) -> Cmd,
        what: &str,
        log: &Log,
    ) {
        let n = self.workers.len();
        let mut per: Vec<Vec<KernelEvent>> = (0..n).map(|_| Vec::new()).collect();
        let res = self
            .flush
            .dump_conntracks(&DumpFilter::default(), |ct: &Conntrack| {
                let s = shard_of(&CtKey::from_conntrack(ct), n);
                per[s].push(KernelEvent {
                    change,
                    origin,
                    ct: *ct,
                });
            });
        if let Err(e) = res {
            log.error(&format!("{what}: {e}"));
            return;
        }
        for (w, evs) in self.workers.iter_mut().zip(per) {
            let _ = w.push(cmd(evs));
        }
    }

    fn flush_kernel(&mut self, ct: bool, exp: bool, log: &Log) {
        if ct {
            log.notice("flushing kernel conntrack table");
            let res = match &self.filter {
                // Only what the user-space filter does not exclude (§1.4 `-F`).
                Some(f) => {
                    let mut doomed = Vec::new();
                    let r = self
                        .flush
                        .dump_conntracks(&DumpFilter::default(), |ct: &Conntrack| {
                            if f.accepts(ct) {
                                doomed.push(*ct);
                            }
                        });
                    r.and_then(|_| self.flush.delete(&doomed).map(drop))
                }
                None => self.flush.flush_conntracks(0),
            };
            if let Err(e) = res {
                log.error(&format!("flushing kernel conntrack table: {e}"));
            }
        }
        if exp && self.expectations {
            log.notice("flushing kernel expect table");
            if let Err(e) = self.flush.flush_expectations() {
                log.error(&format!("flushing kernel expect table: {e}"));
            }
        }
    }
}

impl CtlHandler for Handler {
    fn handle(&self, code: C, out: &mut dyn Write) -> io::Result<()> {
        let v = &self.view;
        let log = &*v.log;
        // Statistics: no lock.
        let text = match code {
            C::STATS => Some(v.sync_summary(false)),
            C::EXP_STATS => Some(v.sync_summary(true)),
            C::STATS_CACHE => Some(v.cache_stats()),
            C::STATS_RUNTIME => Some(v.runtime_stats()),
            C::STATS_NETWORK => Some(v.network_stats()),
            C::STATS_LINK => Some(v.link_stats()),
            C::STATS_QUEUE => Some(self.queue_stats()),
            C::STATS_RSQUEUE => Some(self.resend_queue()),
            C::STATS_PROCESS => Some(render::processes(&self.children.0.lock())),
            C::KILL => {
                // Logged once by the main thread when the signal arrives, as C logs it once.
                if let Err(e) = crate::sys::signal::terminate_self() {
                    warn!(error = %e, "cannot signal ourselves");
                }
                Some(String::new())
            }
            _ => None,
        };
        if let Some(t) = text {
            return out.write_all(t.as_bytes());
        }
        let expectations = || self.ops.lock().expectations;
        // Set while this request runs a commit; dropped (and the flag cleared) at return.
        let mut _commit = None;
        match code {
            C::RESET_TIMERS => {
                self.schedule_purge();
                return Ok(());
            }
            C::CT_COMMIT | C::EXP_COMMIT | C::ALL_COMMIT => {
                if code == C::EXP_COMMIT && !expectations() {
                    return Ok(());
                }
                log.notice(match code {
                    C::CT_COMMIT => "committing conntrack cache",
                    C::EXP_COMMIT => "committing expectation cache",
                    _ => "committing all external caches",
                });
                self.cancel_purge();
                if self.committing.swap(true, Ordering::AcqRel) {
                    // The client is released at once; the running commit goes on.
                    log.notice("commit already in progress, skipping");
                    return Ok(());
                }
                _commit = Some(CommitGuard(&self.committing));
            }
            C::CT_FLUSH_CACHE | C::ALL_FLUSH_CACHE | C::CT_FLUSH_EXT_CACHE
                if self.committing.load(Ordering::Acquire) =>
            {
                log.error("ignoring flush command, commit still in progress");
                return Ok(());
            }
            C::CT_FLUSH_CACHE | C::ALL_FLUSH_CACHE | C::CT_FLUSH_INT_CACHE => {
                self.cancel_purge();
            }
            _ => {}
        }
        let _child = match code {
            C::CT_FLUSH_MASTER | C::EXP_FLUSH_MASTER | C::ALL_FLUSH_MASTER => {
                Some(self.children.start(ChildKind::Flush))
            }
            C::CT_DUMP_INTERNAL
            | C::CT_DUMP_EXTERNAL
            | C::CT_DUMP_INT_XML
            | C::CT_DUMP_EXT_XML
            | C::EXP_DUMP_INTERNAL
            | C::EXP_DUMP_EXTERNAL
            | C::EXP_DUMP_INT_XML
            | C::EXP_DUMP_EXT_XML => Some(self.children.start(ChildKind::Any)),
            _ => None,
        };
        let mut ops = self.ops.lock();
        if ops.bypass {
            match code {
                // §5.2: the kernel table itself, plain format, filtered, no suffix.
                C::CT_DUMP_INTERNAL => return out.write_all(ops.kernel_lines().as_bytes()),
                C::SEND_BULK => {
                    ops.bulk_from_kernel(log);
                    return Ok(());
                }
                C::CT_RESYNC_MASTER | C::ALL_RESYNC_MASTER => {
                    log.notice("resync is unsupported in this mode");
                    return Ok(());
                }
                _ => {}
            }
        }
        let text = match code {
            C::CT_DUMP_INTERNAL => ops.dump(Dump::Internal {
                exp: false,
                xml: false,
            }),
            C::CT_DUMP_EXTERNAL => ops.dump(Dump::External {
                exp: false,
                xml: false,
            }),
            C::CT_DUMP_INT_XML => ops.dump(Dump::Internal {
                exp: false,
                xml: true,
            }),
            C::CT_DUMP_EXT_XML => ops.dump(Dump::External {
                exp: false,
                xml: true,
            }),
            C::EXP_DUMP_INTERNAL if ops.expectations => ops.dump(Dump::Internal {
                exp: true,
                xml: false,
            }),
            C::EXP_DUMP_EXTERNAL if ops.expectations => ops.dump(Dump::External {
                exp: true,
                xml: false,
            }),
            C::EXP_DUMP_INT_XML if ops.expectations => ops.dump(Dump::Internal {
                exp: true,
                xml: true,
            }),
            C::EXP_DUMP_EXT_XML if ops.expectations => ops.dump(Dump::External {
                exp: true,
                xml: true,
            }),
            C::CT_COMMIT => {
                ops.commit(true, false, log);
                String::new()
            }
            C::EXP_COMMIT => {
                ops.commit(false, true, log);
                String::new()
            }
            C::ALL_COMMIT => {
                ops.commit(true, true, log);
                String::new()
            }
            C::CT_FLUSH_CACHE | C::ALL_FLUSH_CACHE => {
                log.notice("flushing caches");
                ops.flush_caches(true, true);
                String::new()
            }
            C::CT_FLUSH_INT_CACHE => {
                log.notice("flushing internal cache");
                ops.flush_caches(true, false);
                String::new()
            }
            C::CT_FLUSH_EXT_CACHE => {
                log.notice("flushing external cache");
                ops.flush_caches(false, true);
                String::new()
            }
            C::CT_FLUSH_MASTER => {
                ops.flush_kernel(true, false, log);
                String::new()
            }
            C::EXP_FLUSH_MASTER => {
                ops.flush_kernel(false, true, log);
                String::new()
            }
            C::ALL_FLUSH_MASTER => {
                ops.flush_kernel(true, true, log);
                String::new()
            }
            C::CT_RESYNC_MASTER | C::ALL_RESYNC_MASTER => {
                ops.resync_with_kernel(log);
                String::new()
            }
            C::SEND_BULK => {
                for w in &mut ops.workers {
                    let _ = w.push(Cmd::Bulk);
                }
                String::new()
            }
            C::REQUEST_DUMP => {
                let _ = self.view.link.lock().push(LinkCmd::RequestResync);
                String::new()
            }
            _ => String::new(),
        };
        out.write_all(text.as_bytes())
    }
}

/// One command round trip per worker (a worker applies the events it popped before the
/// commands it popped with them); gives up on a worker after `timeout`.
pub(super) fn worker_round_trip(workers: &mut [Producer<Cmd>], timeout: Duration) {
    let (tx, rx) = mpsc::channel();
    let mut asked = 0;
    for w in workers.iter_mut() {
        let barrier = Cmd::Flush {
            internal: false,
            external: false,
            done: tx.clone(),
        };
        if w.push(barrier).is_ok() {
            asked += 1;
        }
    }
    drop(tx);
    for _ in 0..asked {
        if rx.recv_timeout(timeout).is_err() {
            break;
        }
    }
}
