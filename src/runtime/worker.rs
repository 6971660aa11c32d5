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

use hashbrown::hash_map::Entry as MapEntry;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use tracing::{debug, info_span, trace};

use super::ring::{Consumer, Producer};
use super::wake::Waker;
use crate::daemon::convert::{self, Key};
use crate::daemon::render;
use crate::daemon::stats::ShardStats;
use crate::netlink::ct::Conntrack;
use crate::wire::{MsgType, ct};

/// Whose request caused a kernel event (sync-modes.md §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Anybody else: applied and replicated.
    NotMe,
    /// Our commit socket: applied, not replicated.
    Commit,
    /// Our flush socket: applied, not replicated.
    Flush,
    /// The start-up dump or a `-R` resync: applied, not replicated.
    Dump,
}

/// What happened to a conntrack, from the event header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtChange {
    /// Created (or dumped).
    New,
    /// Updated.
    Update,
    /// Destroyed.
    Destroy,
}

/// One kernel conntrack event, decoded by the reader.
#[derive(Debug, Clone, Copy)]
pub struct KernelEvent {
    /// What happened.
    pub change: CtChange,
    /// Who caused it.
    pub origin: Origin,
    /// The entry as the kernel reported it.
    pub ct: Conntrack,
}

/// Something received from a peer for this shard.
// Not boxed: the data variant is the common one, and the rings move whole batches.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy)]
pub enum PeerItem {
    /// A CT_NEW / CT_UPD / CT_DEL payload.
    Ct {
        /// The message type.
        msg_type: MsgType,
        /// The payload.
        repr: ct::Repr,
    },
    /// A peer asked for everything (RESYNC): queue every internal object.
    Resync,
}

/// One request to the link thread: send this object's current state.
#[derive(Debug, Clone, Copy)]
pub struct TxItem {
    /// The object.
    pub key: Key,
    /// Message type by status now (NEW, UPD or DEL).
    pub msg_type: MsgType,
    /// Its current payload.
    pub repr: ct::Repr,
}

/// A control request for one shard; the answer goes back on the enclosed channel.
#[derive(Debug)]
pub enum Cmd {
    /// Render the internal cache (`-i`).
    DumpInternal(Sender<String>),
    /// Render the external cache (`-e`).
    DumpExternal(Sender<String>),
    /// Hand out the external cache for a commit: `(payload, seconds since last update)`.
    CollectExternal(Sender<Vec<(ct::Repr, u64)>>),
    /// Empty the internal and/or external cache; answers when done.
    Flush {
        /// Flush the internal cache.
        internal: bool,
        /// Flush the external cache.
        external: bool,
        /// Completion.
        done: Sender<()>,
    },
    /// Queue every internal object for transmission (`-B`).
    Bulk,
    /// Apply dumped kernel entries to the internal cache without replicating them (`-R`).
    Load(Vec<KernelEvent>),
}

/// Static parameters of a worker.
#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    /// Send `NTA_TIMEOUT` (CommitTimeout is 0).
    pub send_timeout: bool,
    /// `TCPWindowTracking`.
    pub window_tracking: bool,
    /// FTFW: hide nothing; all modes show live objects only (DEAD ones are gone at once here).
    pub batch: usize,
}

struct IntEntry {
    ct: Conntrack,
    since: Instant,
}

struct ExtEntry {
    repr: ct::Repr,
    since: Instant,
    updated: Instant,
}

/// The rings and shared state a worker is started with.
#[derive(Debug)]
pub struct WorkerIo {
    /// From the netlink reader.
    pub events: Consumer<KernelEvent>,
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
    internal: HashMap<Key, IntEntry, ahash::RandomState>,
    external: HashMap<Key, ExtEntry, ahash::RandomState>,
    /// Transmit requests that did not fit the ring yet.
    out: Vec<TxItem>,
}

impl std::fmt::Debug for IntEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntEntry").field("ct", &self.ct).finish()
    }
}

impl std::fmt::Debug for ExtEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtEntry")
            .field("repr", &self.repr)
            .finish()
    }
}

impl Worker {
    /// A worker for `shard` with empty caches.
    pub fn new(shard: usize, cfg: WorkerConfig, io: WorkerIo) -> Self {
        Self {
            shard,
            cfg,
            io,
            internal: HashMap::default(),
            external: HashMap::default(),
            out: Vec::new(),
        }
    }

    /// Runs until shutdown.
    pub fn run(mut self) {
        let span = info_span!("worker", shard = self.shard);
        let _g = span.enter();
        debug!("worker started");
        let mut events = Vec::with_capacity(self.cfg.batch);
        let mut peer = Vec::new();
        let mut cmds = Vec::new();
        while !self.io.shutdown.load(Ordering::Acquire) {
            let n_ev = self.io.events.pop_batch(&mut events, self.cfg.batch);
            let n_peer = self.io.peer.pop_batch(&mut peer, self.cfg.batch);
            let n_cmd = self.io.cmds.pop_batch(&mut cmds, 16);
            if n_ev + n_peer + n_cmd > 0 {
                // One clock read per batch.
                let now = Instant::now();
                for ev in events.drain(..) {
                    self.on_kernel(now, &ev);
                }
                for p in peer.drain(..) {
                    self.on_peer(now, p);
                }
                for c in cmds.drain(..) {
                    self.on_cmd(now, c);
                }
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

    fn queue(&mut self, key: Key, msg_type: MsgType, ct: &Conntrack) {
        let repr = convert::wire_from_kernel(ct, self.cfg.send_timeout, self.cfg.window_tracking);
        self.out.push(TxItem {
            key,
            msg_type,
            repr,
        });
    }

    fn on_kernel(&mut self, now: Instant, ev: &KernelEvent) {
        let key = Key::of(&ev.ct);
        let replicate = ev.origin == Origin::NotMe;
        let st = &self.io.stats.internal;
        match ev.change {
            CtChange::New | CtChange::Update => {
                let (msg_type, snapshot) = match self.internal.entry(key) {
                    MapEntry::Occupied(mut o) => {
                        let e = o.get_mut();
                        convert::merge_kernel(&mut e.ct, &ev.ct);
                        st.updated.inc();
                        (MsgType::CT_UPD, e.ct)
                    }
                    MapEntry::Vacant(v) => {
                        v.insert(IntEntry {
                            ct: ev.ct,
                            since: now,
                        });
                        st.created.inc();
                        (MsgType::CT_NEW, ev.ct)
                    }
                };
                st.active.set(self.internal.len() as u64);
                if replicate {
                    self.queue(key, msg_type, &snapshot);
                }
            }
            CtChange::Destroy => {
                // Destroy events for objects not in the cache are ignored (§1.1).
                let Some(mut e) = self.internal.remove(&key) else {
                    trace!("destroy of an unknown conntrack ignored");
                    return;
                };
                convert::merge_kernel(&mut e.ct, &ev.ct);
                st.destroyed.inc();
                st.active.set(self.internal.len() as u64);
                if replicate {
                    self.queue(key, MsgType::CT_DEL, &e.ct);
                }
            }
        }
    }

    fn on_peer(&mut self, now: Instant, item: PeerItem) {
        let (msg_type, repr) = match item {
            PeerItem::Ct { msg_type, repr } => (msg_type, repr),
            PeerItem::Resync => {
                self.bulk();
                return;
            }
        };
        let Some(key) = convert::key_of_wire(&repr) else {
            self.io.stats.external.create_failed.inc();
            return;
        };
        let st = &self.io.stats.external;
        if msg_type == MsgType::CT_DEL {
            if self.external.remove(&key).is_some() {
                st.destroyed.inc();
            } else {
                st.destroy_failed.inc();
            }
        } else if msg_type == MsgType::CT_NEW {
            // NEW on an existing object: delete and re-create (§1.2).
            if self.external.remove(&key).is_some() {
                st.destroyed.inc();
            }
            self.external.insert(
                key,
                ExtEntry {
                    repr,
                    since: now,
                    updated: now,
                },
            );
            st.created.inc();
        } else {
            match self.external.entry(key) {
                MapEntry::Occupied(mut o) => {
                    let e = o.get_mut();
                    convert::merge(&mut e.repr, &repr);
                    e.updated = now;
                    st.updated.inc();
                }
                MapEntry::Vacant(v) => {
                    v.insert(ExtEntry {
                        repr,
                        since: now,
                        updated: now,
                    });
                    st.created.inc();
                }
            }
        }
        st.active.set(self.external.len() as u64);
    }

    fn bulk(&mut self) {
        let items: Vec<(Key, Conntrack)> = self.internal.iter().map(|(k, e)| (*k, e.ct)).collect();
        for (k, ct) in items {
            // Status ALIVE for everything that was already sent once.
            self.queue(k, MsgType::CT_UPD, &ct);
        }
    }

    fn on_cmd(&mut self, now: Instant, cmd: Cmd) {
        match cmd {
            Cmd::DumpInternal(reply) => {
                let mut s = String::new();
                for e in self.internal.values() {
                    render::internal_line(&mut s, &e.ct, now.duration_since(e.since).as_secs());
                }
                let _ = reply.send(s);
            }
            Cmd::DumpExternal(reply) => {
                let mut s = String::new();
                for e in self.external.values() {
                    render::external_line(&mut s, &e.repr, now.duration_since(e.since).as_secs());
                }
                let _ = reply.send(s);
            }
            Cmd::CollectExternal(reply) => {
                let v = self
                    .external
                    .values()
                    .map(|e| (e.repr, now.duration_since(e.updated).as_secs()))
                    .collect();
                let _ = reply.send(v);
            }
            Cmd::Flush {
                internal,
                external,
                done,
            } => {
                if internal {
                    let n = self.internal.len() as u64;
                    self.internal.clear();
                    self.io.stats.internal.destroyed.add(n);
                    self.io.stats.internal.active.set(0);
                }
                if external {
                    let n = self.external.len() as u64;
                    self.external.clear();
                    self.io.stats.external.destroyed.add(n);
                    self.io.stats.external.active.set(0);
                }
                let _ = done.send(());
            }
            Cmd::Bulk => self.bulk(),
            Cmd::Load(evs) => {
                for ev in &evs {
                    self.on_kernel(now, ev);
                }
            }
        }
    }
}
