//! A shard worker: owns one shard of the internal and external caches and is the only thread
//! that ever touches them, so the hot path takes no lock.
//!
//! Inputs arrive on three rings that share the worker's [`Waker`]: kernel events from the
//! netlink reader, peer data from the link thread, and control commands. The loop follows the
//! house shape (style.md): drain a batch, read the clock once, apply it to the caches, hand
//! what must be transmitted to the link thread in one batch, then sleep until a producer
//! rings.
//!
//! What goes to the link thread is the object's *current* wire state with its message type
//! (NEW/UPD/DEL by status at that moment); the link thread keeps only the latest one per key,
//! so a retransmission always carries the current state, as in the C daemon whose queues
//! point at cache objects.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tracing::{debug, info_span, warn};

use super::ring::{self, Consumer, Producer};
use super::wake::Waker;
use crate::cache::convert::{self, SendPolicy};
use crate::cache::exp::apply_exp_send_policy;
use crate::cache::{
    CacheStats, CtKey, ExpKey, ExternalCache, ExternalExpCache, InternalCache, InternalExpCache,
    KernelEvent as CacheEvent, ObjStatus, Origin as CacheOrigin, Outcome, PeerMsg, Secs,
};
use crate::daemon::stats::{CacheCounters, ShardStats};
use crate::filter::ExpFilter;
use crate::filter::UserFilter;

use crate::wire::{MsgType, ct, exp};

/// "internal/external cache is full" is logged once per daemon, not once per shard (each
/// shard reports its first refusal; the counters keep counting).
static FULL_LOGGED: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];

mod render;
mod types;

pub use types::{
    Cmd, CtChange, Dump, ExpEvent, KernelEvent, Origin, PeerItem, TxItem, TxKey, TxPayload,
};

/// Static parameters of a worker.
#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    /// Which attributes go on the wire (`TCPWindowTracking`, `CommitTimeout`).
    pub send: SendPolicy,
    /// Events or messages handled per batch.
    pub batch: usize,
    /// This shard's share of `HashLimit`.
    pub limit: usize,
    /// This shard's share of `HashSize`.
    pub capacity: usize,
    /// ALARM: every internal object (dumped ones too) must be known to the link thread,
    /// which refreshes it periodically.
    pub track_all: bool,
    /// Events were filtered by the kernel (BPF): the user-space filter only runs on dumps.
    pub kernel_filtered: bool,
    /// `DisableInternalCache` (NOTRACK): events bypass the cache and go out directly.
    pub bypass: bool,
    /// ALARM: `CacheTimeout` in seconds (shown as ` [expires in Ns]` by `-e`).
    pub cache_timeout: Option<Secs>,
    /// The daemon's clock origin: cache times are whole seconds since then.
    pub epoch: Instant,
}

/// The rings and shared state a worker is started with.
#[derive(Debug)]
pub struct WorkerIo {
    /// From the netlink reader.
    pub events: Consumer<KernelEvent>,
    /// Expectation events from the netlink reader.
    pub exp_events: Consumer<ExpEvent>,
    /// From the link thread.
    pub peer: Consumer<PeerItem>,
    /// From the control thread.
    pub cmds: Consumer<Cmd>,
    /// To the link thread.
    pub tx: Producer<TxItem>,
    /// Rung by the three producers above.
    pub waker: Arc<Waker>,
    /// This shard's counters.
    pub stats: Arc<ShardStats>,
    /// Set once at shutdown.
    pub shutdown: Arc<AtomicBool>,
}

/// One shard's worker state.
#[derive(Debug)]
pub struct Worker {
    shard: usize,
    cfg: WorkerConfig,
    io: WorkerIo,
    internal: InternalCache,
    external: ExternalCache,
    internal_exp: InternalExpCache,
    external_exp: ExternalExpCache,
    exp_filter: ExpFilter,
    /// Transmit requests that did not fit the ring yet.
    out: Vec<TxItem>,
    /// `General { Filter }`; `None` when nothing is configured.
    filter: Option<UserFilter>,
}

impl Worker {
    /// A worker for `shard` with empty caches.
    pub fn new(
        shard: usize,
        cfg: WorkerConfig,
        io: WorkerIo,
        filter: Option<UserFilter>,
        exp_filter: ExpFilter,
    ) -> Self {
        Self {
            shard,
            cfg,
            io,
            internal: InternalCache::new(cfg.limit, cfg.capacity),
            external: ExternalCache::new(cfg.limit, cfg.capacity),
            internal_exp: InternalExpCache::new(cfg.limit, 1024),
            external_exp: ExternalExpCache::new(cfg.limit, 1024),
            exp_filter,
            out: Vec::new(),
            filter,
        }
    }

    /// Runs until shutdown.
    pub fn run(mut self) {
        let span = info_span!("worker", shard = self.shard);
        let _g = span.enter();
        debug!("worker started");
        let mut events = Vec::with_capacity(self.cfg.batch);
        let mut exp_events = Vec::new();
        let mut peer = Vec::new();
        let mut cmds = Vec::new();
        while !self.io.shutdown.load(Ordering::Acquire) {
            let n_ev = self.io.events.pop_batch(&mut events, self.cfg.batch)
                + self
                    .io
                    .exp_events
                    .pop_batch(&mut exp_events, self.cfg.batch);
            let n_peer = self.io.peer.pop_batch(&mut peer, self.cfg.batch);
            let n_cmd = self.io.cmds.pop_batch(&mut cmds, 16);
            if n_ev + n_peer + n_cmd > 0 {
                // One clock read per batch.
                let now = Instant::now();
                ring::consume(&mut events, |ev| self.on_kernel(now, ev));
                ring::consume(&mut exp_events, |ev| self.on_kernel_exp(now, ev));
                for p in peer.drain(..) {
                    self.on_peer(now, p);
                }
                for c in cmds.drain(..) {
                    self.on_cmd(now, c);
                }
                self.publish_stats();
                self.flush_tx();
                continue;
            }
            self.flush_tx();
            let io = &self.io;
            let backlog = !self.out.is_empty();
            // Sleep until a producer rings; with a transmit backlog, retry soon.
            let timeout = if backlog {
                Duration::from_millis(1)
            } else {
                Duration::from_millis(500)
            };
            let _ = io.waker.sleep_unless(Some(timeout), || {
                !io.events.is_empty()
                    || !io.exp_events.is_empty()
                    || !io.peer.is_empty()
                    || !io.cmds.is_empty()
                    || io.shutdown.load(Ordering::Acquire)
            });
        }
        debug!("worker stopped");
    }

    fn flush_tx(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let before = self.out.len();
        self.io.tx.push_batch(&mut self.out);
        if !self.out.is_empty() {
            self.io
                .stats
                .tx_backlog
                .add((self.out.len()).min(before) as u64);
        }
    }

    fn secs(&self, now: Instant) -> Secs {
        now.duration_since(self.cfg.epoch).as_secs() as Secs
    }

    /// Hands the object's current state to the link thread. The cache's QUEUED flag is
    /// cleared at once (the link thread now holds the payload, latest wins), and a DEAD
    /// object leaves the cache: its DEL payload lives in the link thread until acknowledged.
    fn emit(&mut self, key: CtKey) {
        self.emit_as(key, true);
    }

    fn emit_as(&mut self, key: CtKey, send_now: bool) {
        let Some((status, mut repr)) = self.internal.take_for_tx(&key) else {
            return;
        };
        convert::apply_send_policy(&mut repr, &self.cfg.send);
        let msg_type = match status {
            ObjStatus::New => MsgType::CT_NEW,
            ObjStatus::Alive => MsgType::CT_UPD,
            ObjStatus::Dead => {
                self.internal.remove_if_dead(&key);
                MsgType::CT_DEL
            }
        };
        self.out.push(TxItem {
            key: TxKey::Ct(key),
            msg_type,
            repr: TxPayload::Ct(repr),
            send_now,
            forget: false,
            direct: false,
        });
    }

    /// `DisableInternalCache` (§5.2): each NOT_ME event goes out as CT_NEW/UPD/DEL at once;
    /// the "internal bypass" counters of `-s` count them.
    fn bypass(&mut self, ev: &KernelEvent, key: CtKey) {
        if ev.origin != Origin::NotMe {
            return;
        }
        let st = &self.io.stats.internal;
        let msg_type = match ev.change {
            CtChange::New => {
                st.created.inc();
                MsgType::CT_NEW
            }
            CtChange::Update => {
                st.updated.inc();
                MsgType::CT_UPD
            }
            CtChange::Destroy => {
                st.destroyed.inc();
                MsgType::CT_DEL
            }
        };
        let repr = convert::wire_from_kernel(&ev.ct, &self.cfg.send);
        self.out.push(TxItem {
            key: TxKey::Ct(key),
            msg_type,
            repr: TxPayload::Ct(repr),
            send_now: true,
            forget: false,
            direct: true,
        });
    }

    /// Tells the link thread to drop its copy of an object that left the cache silently.
    fn forget(&mut self, key: TxKey) {
        self.out.push(TxItem {
            key,
            msg_type: MsgType::CT_DEL,
            repr: TxPayload::Ct(ct::Repr::default()),
            send_now: false,
            forget: true,
            direct: false,
        });
    }

    fn emit_exp(&mut self, key: ExpKey, send_now: bool) {
        let Some((status, mut repr)) = self.internal_exp.take_for_tx(&key) else {
            return;
        };
        apply_exp_send_policy(&mut repr, &self.cfg.send);
        let msg_type = match status {
            ObjStatus::New => MsgType::EXP_NEW,
            ObjStatus::Alive => MsgType::EXP_UPD,
            ObjStatus::Dead => {
                self.internal_exp.remove_if_dead(&key);
                MsgType::EXP_DEL
            }
        };
        self.out.push(TxItem {
            key: TxKey::Exp(Box::new(key)),
            msg_type,
            repr: TxPayload::Exp(repr),
            send_now,
            forget: false,
            direct: false,
        });
    }

    fn on_kernel_exp(&mut self, now: Instant, ev: &ExpEvent) {
        if !self.exp_filter.enabled() {
            return;
        }
        let helper = ev.exp.helper.as_ref().map(|h| h.as_bytes());
        if !self.exp_filter.accepts_helper(helper) {
            return;
        }
        let key = ExpKey::from_expectation(&ev.exp);
        let kind = match (ev.change, ev.origin) {
            (_, Origin::Dump) | (CtChange::Update, _) => CacheEvent::Update,
            (CtChange::New, _) => CacheEvent::New,
            (CtChange::Destroy, _) => CacheEvent::Destroy,
        };
        // Expectations whose master is not cached are not replicated (§5.5); the master
        // lives on this shard (expectations are routed by their master).
        if kind != CacheEvent::Destroy
            && !self
                .internal
                .get(key.master())
                .is_some_and(|o| o.meta.status != ObjStatus::Dead)
        {
            return;
        }
        let origin = match ev.origin {
            Origin::NotMe => CacheOrigin::NotMe,
            Origin::Flush => CacheOrigin::Flush,
            Origin::Commit | Origin::Dump => CacheOrigin::Commit,
            Origin::Inject => CacheOrigin::Inject,
        };
        let secs = self.secs(now);
        match self.internal_exp.handle_exp(secs, origin, kind, &ev.exp) {
            Outcome::Applied { .. } if origin == CacheOrigin::NotMe => self.emit_exp(key, true),
            Outcome::Applied { .. } if self.cfg.track_all && kind != CacheEvent::Destroy => {
                self.emit_exp(key, false);
            }
            Outcome::Applied { .. } if self.cfg.track_all => self.forget(TxKey::Exp(Box::new(key))),
            _ => {}
        }
    }

    fn on_kernel(&mut self, now: Instant, ev: &KernelEvent) {
        // The user-space filter runs on events, dumps and resyncs alike, except on events
        // already filtered by the kernel (§8.5).
        if let Some(f) = &self.filter
            && !(self.cfg.kernel_filtered && ev.origin != Origin::Dump)
            && !f.accepts(&ev.ct)
        {
            if ev.origin != Origin::Dump {
                self.io.stats.events_filtered.inc();
            }
            return;
        }
        let key = CtKey::from_conntrack(&ev.ct);
        if self.cfg.bypass {
            self.bypass(ev, key);
            return;
        }
        let origin = match ev.origin {
            Origin::NotMe => CacheOrigin::NotMe,
            Origin::Commit => CacheOrigin::Commit,
            Origin::Flush => CacheOrigin::Flush,
            // A dump line is applied like our own commit: never replicated.
            Origin::Dump => CacheOrigin::Commit,
            Origin::Inject => CacheOrigin::Inject,
        };
        let kind = match (ev.change, ev.origin) {
            (_, Origin::Dump) | (CtChange::Update, _) => CacheEvent::Update,
            (CtChange::New, _) => CacheEvent::New,
            (CtChange::Destroy, _) => CacheEvent::Destroy,
        };
        let secs = self.secs(now);
        match self.internal.handle_ct(secs, origin, kind, &ev.ct) {
            Outcome::Applied { .. } if origin == CacheOrigin::NotMe => self.emit(key),
            // ALARM refreshes every object, our own commits and dumps included.
            Outcome::Applied { .. } if self.cfg.track_all && kind != CacheEvent::Destroy => {
                self.emit_as(key, false);
            }
            Outcome::Applied { .. } if self.cfg.track_all => self.forget(TxKey::Ct(key)),
            Outcome::Full { first: true } if !FULL_LOGGED[0].swap(true, Ordering::Relaxed) => {
                warn!("internal cache is full");
            }
            _ => {}
        }
    }

    fn on_peer(&mut self, now: Instant, item: PeerItem) {
        let (msg_type, repr) = match item {
            PeerItem::Ct { msg_type, repr } => (msg_type, repr),
            PeerItem::Resync => {
                self.bulk();
                return;
            }
            PeerItem::Expire(TxKey::Ct(key)) => {
                let secs = self.secs(now);
                let _ = self
                    .external
                    .handle_peer(secs, PeerMsg::Delete, key, &ct::Repr::default());
                return;
            }
            PeerItem::Expire(TxKey::Exp(key)) => {
                let secs = self.secs(now);
                let _ = self.external_exp.handle_peer(
                    secs,
                    PeerMsg::Delete,
                    *key,
                    &exp::Repr::default(),
                );
                return;
            }
            PeerItem::Exp { msg_type, repr } => {
                let Some(key) = ExpKey::from_wire(&repr) else {
                    return;
                };
                let msg = if msg_type == MsgType::EXP_NEW {
                    PeerMsg::New
                } else if msg_type == MsgType::EXP_UPD {
                    PeerMsg::Update
                } else {
                    PeerMsg::Delete
                };
                let secs = self.secs(now);
                let _ = self.external_exp.handle_peer(secs, msg, key, &repr);
                return;
            }
        };
        let Some(key) = CtKey::from_wire(&repr) else {
            return;
        };
        let msg = if msg_type == MsgType::CT_NEW {
            PeerMsg::New
        } else if msg_type == MsgType::CT_UPD {
            PeerMsg::Update
        } else {
            PeerMsg::Delete
        };
        let secs = self.secs(now);
        if let Outcome::Full { first: true } = self.external.handle_peer(secs, msg, key, &repr)
            && !FULL_LOGGED[1].swap(true, Ordering::Relaxed)
        {
            warn!("external cache is full");
        }
    }

    /// Queues every live internal object (`-B`, a peer's RESYNC).
    fn bulk(&mut self) {
        for key in self.internal.queue_all() {
            self.emit(key);
        }
        // Expectations after conntracks, as the C daemon queues them (§2.3).
        for key in self.internal_exp.queue_all() {
            self.emit_exp(key, true);
        }
    }

    fn publish_stats(&self) {
        fn copy(c: &CacheCounters, s: &CacheStats) {
            c.active.set(s.active);
            c.objects.set(s.objects);
            c.create_nomem.set(s.add_fail_nomem);
            c.create_nospace.set(s.add_fail_nospace);
            c.update_enoent.set(s.upd_fail_enoent);
            c.destroy_enoent.set(s.del_fail_enoent);
            c.created.set(s.add_ok);
            c.create_failed.set(s.add_fail);
            c.updated.set(s.upd_ok);
            c.update_failed.set(s.upd_fail);
            c.destroyed.set(s.del_ok);
            c.destroy_failed.set(s.del_fail);
        }
        if !self.cfg.bypass {
            copy(&self.io.stats.internal, &self.internal.stats());
        }
        copy(&self.io.stats.external, &self.external.stats());
        copy(&self.io.stats.internal_exp, &self.internal_exp.stats());
        copy(&self.io.stats.external_exp, &self.external_exp.stats());
    }

    fn on_cmd(&mut self, now: Instant, cmd: Cmd) {
        let secs = self.secs(now);
        match cmd {
            Cmd::Dump(what, reply) => {
                let _ = reply.send(self.render(what, secs));
            }
            Cmd::CollectExternal(reply) => {
                let v = self
                    .external
                    .commit_order()
                    .map(|(_, r, updated)| (r, updated))
                    .collect();
                let _ = reply.send(v);
            }
            Cmd::CollectExternalExp(reply) => {
                let v = self
                    .external_exp
                    .commit_order()
                    .map(|(_, r, updated)| (r, updated))
                    .collect();
                let _ = reply.send(v);
            }
            Cmd::Flush {
                internal,
                external,
                done,
            } => {
                if internal {
                    if self.cfg.track_all {
                        let keys: Vec<TxKey> = self
                            .internal
                            .iter()
                            .map(|(k, _)| TxKey::Ct(*k))
                            .chain(
                                self.internal_exp
                                    .iter()
                                    .map(|(k, _)| TxKey::Exp(Box::new(*k))),
                            )
                            .collect();
                        for k in keys {
                            self.forget(k);
                        }
                    }
                    self.internal.flush();
                    self.internal_exp.flush();
                }
                if external {
                    self.external.flush();
                    self.external_exp.flush();
                }
                let _ = done.send(());
            }
            Cmd::Bulk => self.bulk(),
            Cmd::Load(evs) => {
                for ev in &evs {
                    self.on_kernel(now, ev);
                }
            }
            Cmd::Resync(evs) => {
                let mut seen = hashbrown::HashSet::with_capacity(evs.len());
                for ev in &evs {
                    seen.insert(CtKey::from_conntrack(&ev.ct));
                    self.on_kernel(now, ev);
                }
                let gone: Vec<CtKey> = self
                    .internal
                    .iter()
                    .filter(|(k, o)| o.meta.status != ObjStatus::Dead && !seen.contains(*k))
                    .map(|(k, _)| *k)
                    .collect();
                for key in gone {
                    if let Outcome::Applied { .. } = self.internal.mark_dead(secs, &key) {
                        self.emit(key);
                    }
                }
            }
        }
    }
}
