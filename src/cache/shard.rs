//! The per-shard caches: [`Internal`] (local kernel state, source of every outgoing data
//! message) and [`External`] (state received from peers, committed on `conntrackd -c`).
//!
//! Each worker owns one shard of each: plain `hashbrown` maps, no locks. The rules are those
//! of the C daemon (sync-modes.md §1): objects are NEW when added, ALIVE once updated, DEAD
//! when destroyed; the message type is the status at transmission time; an object is in the
//! tx queue at most once (the [`Meta::QUEUED`] flag, so several events collapse into one
//! message); kernel events are applied or ignored by their origin (§1.1); peer messages
//! create, merge or delete (§1.2). `HashLimit` is a per-shard object limit: additions over
//! it are refused and counted ("no space left in cache").

use core::hash::Hash;

use hashbrown::HashMap;

use super::entry::{Meta, Obj, ObjStatus, Secs, Stored};

/// Who caused a kernel event (sync-modes.md §1.1), decided by the caller from `nlmsg_pid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Anyone else: the packet path, timeouts, the `conntrack` tool. Applied and replicated.
    NotMe,
    /// Our commit socket (`conntrackd -c`): applied, not replicated.
    Commit,
    /// Our flush socket (`-F`, PurgeTimeout): applied, not replicated.
    Flush,
    /// Our inject socket (DisableExternalCache): ignored completely.
    Inject,
}

/// Kind of a kernel event (or a dump/resync line, which counts as an update).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelEvent {
    /// `IPCTNL_MSG_CT_NEW` with `NLM_F_CREATE`.
    New,
    /// `IPCTNL_MSG_CT_NEW` without it, or a dump line.
    Update,
    /// `IPCTNL_MSG_CT_DELETE`.
    Destroy,
}

/// Kind of a received data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerMsg {
    /// `CT_NEW` / `EXP_NEW`: replace or create.
    New,
    /// `CT_UPD` / `EXP_UPD`: merge or create.
    Update,
    /// `CT_DEL` / `EXP_DEL`: delete if present.
    Delete,
}

/// What applying an event or message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// Applied. `enqueue`: the caller must put the key on the tx queue (the change is to be
    /// replicated and the object was not queued already).
    Applied {
        /// Push the key onto the tx queue.
        enqueue: bool,
    },
    /// Nothing changed (INJECT origin, destroy of an unknown object, delete of an unknown
    /// object).
    Ignored,
    /// Refused: the shard holds `HashLimit` objects. `first` is true for the first refusal
    /// since the cache last had room: log it once ("cache is full").
    Full {
        /// Log now.
        first: bool,
    },
}

/// Counters of one cache shard; shards are summed with `+=` for `-s` / `-s cache`
/// (control-and-cli.md §3.4).
///
/// Mapping to the C output: `-s` "current active connections" = `active`; `-s cache`
/// "active objects" = `objects`, "active/total entries" = `active`/`objects` (DEAD objects
/// stay in the table until their DEL is sent, as in C), "no memory available" =
/// `add_fail_nomem`, "no space left in cache" = `add_fail_nospace`. 1.4.7 never increments
/// the update/delete failure counters; they are kept for the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Objects in the table, DEAD ones included ("total entries").
    pub objects: u64,
    /// Objects not DEAD ("active objects", "current active connections").
    pub active: u64,
    /// Creations.
    pub add_ok: u64,
    /// Failed creations (all causes).
    pub add_fail: u64,
    /// Failed creations: allocation failure (never counted: Rust aborts instead).
    pub add_fail_nomem: u64,
    /// Failed creations: `HashLimit` reached.
    pub add_fail_nospace: u64,
    /// Updates.
    pub upd_ok: u64,
    /// Failed updates (all causes).
    pub upd_fail: u64,
    /// Failed updates: entry not found.
    pub upd_fail_enoent: u64,
    /// Deletions (destroyed, or replaced by a NEW for an existing key).
    pub del_ok: u64,
    /// Failed deletions (all causes).
    pub del_fail: u64,
    /// Failed deletions: entry not found.
    pub del_fail_enoent: u64,
}

impl core::ops::AddAssign for CacheStats {
    fn add_assign(&mut self, o: Self) {
        self.objects += o.objects;
        self.active += o.active;
        self.add_ok += o.add_ok;
        self.add_fail += o.add_fail;
        self.add_fail_nomem += o.add_fail_nomem;
        self.add_fail_nospace += o.add_fail_nospace;
        self.upd_ok += o.upd_ok;
        self.upd_fail += o.upd_fail;
        self.upd_fail_enoent += o.upd_fail_enoent;
        self.del_ok += o.del_ok;
        self.del_fail += o.del_fail;
        self.del_fail_enoent += o.del_fail_enoent;
    }
}

/// The map and counters shared by both caches.
#[derive(Debug)]
struct Table<K, V> {
    map: HashMap<K, Obj<V>, ahash::RandomState>,
    limit: usize,
    dead: usize,
    stats: CacheStats,
    full_logged: bool,
}

impl<K: Hash + Eq + Copy, V: Stored<Key = K>> Table<K, V> {
    fn new(limit: usize, capacity: usize) -> Self {
        Self {
            map: HashMap::with_capacity_and_hasher(capacity, ahash::RandomState::new()),
            limit,
            dead: 0,
            stats: CacheStats::default(),
            full_logged: false,
        }
    }

    /// Inserts a fresh NEW object, keeping the QUEUED flag of a DEAD predecessor.
    fn add(&mut self, now: Secs, key: K, r: &V::Repr, flags: u8) -> Result<&mut Obj<V>, bool> {
        if self.map.len() >= self.limit {
            self.stats.add_fail += 1;
            self.stats.add_fail_nospace += 1;
            let first = !self.full_logged;
            self.full_logged = true;
            return Err(first);
        }
        self.stats.add_ok += 1;
        let mut meta = Meta::new(now);
        meta.flags = flags;
        let obj = self.map.entry(key).insert(Obj {
            meta,
            val: V::pack(r),
        });
        Ok(obj.into_mut())
    }

    /// Removes `key` entirely.
    fn remove(&mut self, key: &K) -> Option<Obj<V>> {
        let o = self.map.remove(key)?;
        if o.meta.status == ObjStatus::Dead {
            self.dead -= 1;
        }
        self.full_logged = false;
        Some(o)
    }

    fn merge(&mut self, now: Secs, key: &K, r: &V::Repr) {
        if let Some(o) = self.map.get_mut(key) {
            let mut cur = o.val.unpack(key);
            V::merge(&mut cur, r);
            o.val = V::pack(&cur);
            o.meta.status = ObjStatus::Alive;
            o.meta.updated = now;
            self.stats.upd_ok += 1;
        }
    }

    /// Bytes this table owns on the heap: the hash table allocation plus boxed extras.
    fn heap_bytes(&self) -> usize {
        self.map.allocation_size() + self.map.values().map(|o| o.val.heap_bytes()).sum::<usize>()
    }

    fn stats(&self) -> CacheStats {
        CacheStats {
            objects: self.map.len() as u64,
            active: (self.map.len() - self.dead) as u64,
            ..self.stats
        }
    }
}

/// One shard of the internal cache (local kernel state).
#[derive(Debug)]
pub struct Internal<K, V> {
    t: Table<K, V>,
}

impl<K: Hash + Eq + Copy, V: Stored<Key = K>> Internal<K, V> {
    /// An empty shard holding at most `limit` objects (its share of `HashLimit`), with room
    /// for `capacity` without rehashing (its share of `HashSize`).
    pub fn new(limit: usize, capacity: usize) -> Self {
        Self {
            t: Table::new(limit, capacity),
        }
    }

    /// Applies a kernel event (or dump line: [`KernelEvent::Update`]) per its origin
    /// (sync-modes.md §1.1).
    pub fn handle_kernel(
        &mut self,
        now: Secs,
        origin: Origin,
        ev: KernelEvent,
        key: K,
        r: &V::Repr,
    ) -> Outcome {
        if origin == Origin::Inject {
            return Outcome::Ignored;
        }
        let replicate = origin == Origin::NotMe;
        let t = &mut self.t;
        let existing = t.map.get(&key).map(|o| o.meta);
        match ev {
            // UPDATE on a live object merges (received attributes overwrite).
            KernelEvent::Update if existing.is_some_and(|m| m.status != ObjStatus::Dead) => {
                t.merge(now, &key, r);
                mark(t, key, replicate)
            }
            // NEW always starts a fresh object (a live predecessor counts as deleted); so
            // does an UPDATE for an unknown or DEAD one. If the old object is still queued
            // the queue entry now stands for the new one.
            KernelEvent::New | KernelEvent::Update => {
                let flags = match existing {
                    Some(m) => {
                        if m.status != ObjStatus::Dead {
                            t.stats.del_ok += 1;
                        }
                        t.remove(&key);
                        m.flags
                    }
                    None => 0,
                };
                match t.add(now, key, r, flags) {
                    Ok(_) => mark(t, key, replicate),
                    Err(first) => Outcome::Full { first },
                }
            }
            KernelEvent::Destroy => match existing {
                None => Outcome::Ignored,
                Some(m) if m.status == ObjStatus::Dead => Outcome::Ignored,
                // A queued (or held) object stays until the sync layer lets go of it, as C's
                // tx queue and resend list hold references: it goes out DEAD, i.e. as a
                // DEL, even for COMMIT/FLUSH.
                Some(m) if replicate || m.queued() || m.held() => {
                    t.stats.del_ok += 1;
                    t.dead += 1;
                    if let Some(o) = t.map.get_mut(&key) {
                        o.meta.status = ObjStatus::Dead;
                        o.meta.updated = now;
                        // Keep the last attributes the kernel reported (the DEL carries them).
                        let mut cur = o.val.unpack(&key);
                        V::merge(&mut cur, r);
                        o.val = V::pack(&cur);
                    }
                    mark(t, key, replicate)
                }
                // COMMIT/FLUSH destroys are not replicated: the object just vanishes.
                Some(_) => {
                    t.stats.del_ok += 1;
                    t.remove(&key);
                    Outcome::Applied { enqueue: false }
                }
            },
        }
    }

    /// Marks a live object DEAD and queues its DEL, without a kernel event: the purge step
    /// of a resync or poll found it gone from the kernel (sync-modes.md §8.3, §8.4).
    pub fn mark_dead(&mut self, now: Secs, key: &K) -> Outcome {
        let t = &mut self.t;
        match t.map.get_mut(key) {
            Some(o) if o.meta.status != ObjStatus::Dead => {
                o.meta.status = ObjStatus::Dead;
                o.meta.updated = now;
                t.stats.del_ok += 1;
                t.dead += 1;
                mark(t, *key, true)
            }
            _ => Outcome::Ignored,
        }
    }

    /// For the transmitter: clears the QUEUED flag and returns the object's status (the
    /// message type) and attributes. `None` if the object is gone.
    pub fn take_for_tx(&mut self, key: &K) -> Option<(ObjStatus, V::Repr)> {
        let o = self.t.map.get_mut(key)?;
        o.meta.flags &= !Meta::QUEUED;
        Some((o.meta.status, o.val.unpack(key)))
    }

    /// Queues every live object for a bulk send (`-B`, RESYNC request): returns the keys
    /// newly queued, in table order.
    pub fn queue_all(&mut self) -> Vec<K> {
        let mut out = Vec::new();
        for (k, o) in &mut self.t.map {
            if o.meta.status != ObjStatus::Dead && !o.meta.queued() {
                o.meta.flags |= Meta::QUEUED;
                out.push(*k);
            }
        }
        out
    }

    /// Drops `key` if it is DEAD (its DEL has been sent, or acknowledged in FTFW).
    pub fn remove_if_dead(&mut self, key: &K) -> bool {
        let dead = self
            .t
            .map
            .get(key)
            .is_some_and(|o| o.meta.status == ObjStatus::Dead);
        if dead {
            self.t.remove(key);
        }
        dead
    }

    /// The message an object would be sent as now (status and attributes), without
    /// touching its flags: for FTFW retransmissions.
    pub fn message(&self, key: &K) -> Option<(ObjStatus, V::Repr)> {
        let o = self.t.map.get(key)?;
        Some((o.meta.status, o.val.unpack(key)))
    }

    /// Marks the object as held by the resend list (FTFW): a DEAD one stays until
    /// [`Self::release`]. Returns false if there is no such object.
    pub fn hold(&mut self, key: &K) -> bool {
        self.t
            .map
            .get_mut(key)
            .map(|o| o.meta.flags |= Meta::HELD)
            .is_some()
    }

    /// Ends a [`Self::hold`] (the message was acknowledged); a DEAD object that is not
    /// queued again is dropped. Returns true if it was dropped.
    pub fn release(&mut self, key: &K) -> bool {
        let Some(o) = self.t.map.get_mut(key) else {
            return false;
        };
        o.meta.flags &= !Meta::HELD;
        if o.meta.status == ObjStatus::Dead && !o.meta.queued() {
            self.t.remove(key);
            return true;
        }
        false
    }

    /// Drops every DEAD object that is neither queued nor held; returns how many.
    pub fn purge_dead(&mut self) -> usize {
        let before = self.t.map.len();
        self.t
            .map
            .retain(|_, o| o.meta.status != ObjStatus::Dead || o.meta.queued() || o.meta.held());
        let n = before - self.t.map.len();
        self.t.dead -= n;
        if n > 0 {
            self.t.full_logged = false;
        }
        n
    }

    /// Empties the shard (`-f internal`, `-F`): nothing is replicated; keys still in the tx
    /// queue then find nothing in [`Self::take_for_tx`] and are skipped.
    pub fn flush(&mut self) {
        self.t.map.clear();
        self.t.dead = 0;
        self.t.full_logged = false;
    }

    /// The object of `key`, if any.
    pub fn get(&self, key: &K) -> Option<&Obj<V>> {
        self.t.map.get(key)
    }

    /// Every object (for `-i`, polling purges and resync checks), DEAD ones included.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &Obj<V>)> {
        self.t.map.iter()
    }

    /// Number of objects, DEAD ones included.
    pub fn len(&self) -> usize {
        self.t.map.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.t.map.is_empty()
    }

    /// Counters with the current object counts.
    pub fn stats(&self) -> CacheStats {
        self.t.stats()
    }

    /// Heap bytes owned by this shard (table allocation and boxed extras).
    pub fn heap_bytes(&self) -> usize {
        self.t.heap_bytes()
    }
}

fn mark<K: Hash + Eq + Copy, V: Stored<Key = K>>(
    t: &mut Table<K, V>,
    key: K,
    replicate: bool,
) -> Outcome {
    if !replicate {
        return Outcome::Applied { enqueue: false };
    }
    let Some(o) = t.map.get_mut(&key) else {
        return Outcome::Applied { enqueue: false };
    };
    let enqueue = !o.meta.queued();
    o.meta.flags |= Meta::QUEUED;
    Outcome::Applied { enqueue }
}

/// One shard of the external cache (state received from peers).
#[derive(Debug)]
pub struct External<K, V> {
    t: Table<K, V>,
}

impl<K: Hash + Eq + Copy, V: Stored<Key = K>> External<K, V> {
    /// An empty shard; see [`Internal::new`].
    pub fn new(limit: usize, capacity: usize) -> Self {
        Self {
            t: Table::new(limit, capacity),
        }
    }

    /// Applies a received data message (sync-modes.md §1.2).
    pub fn handle_peer(&mut self, now: Secs, msg: PeerMsg, key: K, r: &V::Repr) -> Outcome {
        let t = &mut self.t;
        let present = t.map.contains_key(&key);
        match msg {
            PeerMsg::New => {
                if present {
                    // Delete and re-create: a fresh object, "active since" resets.
                    t.remove(&key);
                    t.stats.del_ok += 1;
                }
                match t.add(now, key, r, 0) {
                    Ok(_) => Outcome::Applied { enqueue: false },
                    Err(first) => Outcome::Full { first },
                }
            }
            PeerMsg::Update if present => {
                t.merge(now, &key, r);
                Outcome::Applied { enqueue: false }
            }
            PeerMsg::Update => match t.add(now, key, r, 0) {
                Ok(_) => Outcome::Applied { enqueue: false },
                Err(first) => Outcome::Full { first },
            },
            PeerMsg::Delete if present => {
                t.remove(&key);
                t.stats.del_ok += 1;
                Outcome::Applied { enqueue: false }
            }
            PeerMsg::Delete => Outcome::Ignored,
        }
    }

    /// The commit order (sync-modes.md §6): every non-related object, then the related ones
    /// (their masters must exist first). Yields key, attributes and last-update time (for
    /// the timeout correction).
    pub fn commit_order(&self) -> impl Iterator<Item = (&K, V::Repr, Secs)> {
        let pass = |related: bool| {
            self.t
                .map
                .iter()
                .filter(move |(_, o)| o.val.is_related() == related)
                .map(|(k, o)| (k, o.val.unpack(k), o.meta.updated))
        };
        pass(false).chain(pass(true))
    }

    /// The object of `key`, if any.
    pub fn get(&self, key: &K) -> Option<&Obj<V>> {
        self.t.map.get(key)
    }

    /// Every object (for `-e`).
    pub fn iter(&self) -> impl Iterator<Item = (&K, &Obj<V>)> {
        self.t.map.iter()
    }

    /// Empties the shard (`-f`, `-f external`).
    pub fn flush(&mut self) {
        self.t.map.clear();
        self.t.full_logged = false;
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.t.map.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.t.map.is_empty()
    }

    /// Counters with the current object counts.
    pub fn stats(&self) -> CacheStats {
        self.t.stats()
    }

    /// Heap bytes owned by this shard (table allocation and boxed extras).
    pub fn heap_bytes(&self) -> usize {
        self.t.heap_bytes()
    }

    /// ALARM's external-cache timer (`CacheTimeout`): drops every object not refreshed for
    /// `timeout` seconds (counted as deletions, as the C timer's expiry is); returns how many.
    pub fn purge_expired(&mut self, now: Secs, timeout: Secs) -> usize {
        let before = self.t.map.len();
        self.t
            .map
            .retain(|_, o| now.saturating_sub(o.meta.updated) < timeout);
        let n = before - self.t.map.len();
        self.t.stats.del_ok += n as u64;
        if n > 0 {
            self.t.full_logged = false;
        }
        n
    }
}
