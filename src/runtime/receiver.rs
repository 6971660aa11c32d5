//! Dispatch of received sync messages to the shard that owns them.
//!
//! The link thread runs the FTFW receive state machine (it shares the resend queue with the
//! sender side, so both live in one thread); every accepted data message is decoded here,
//! hashed with the same fixed-seed key hash as the netlink reader uses, and batched per
//! shard, so the external-cache update happens on the shard's own worker without a lock.

use super::ring::Producer;
use super::worker::{PeerItem, TxKey, TxPayload};
use crate::cache::{CtKey, ExpKey, exp_shard_of, shard_of};
use crate::daemon::inject::InjectItem;
use crate::wire::{Kind, Message, MsgType};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Per-shard batches of peer items.
#[derive(Debug)]
pub struct Dispatcher {
    rings: Vec<Producer<PeerItem>>,
    pending: Vec<Vec<PeerItem>>,
    /// Data messages whose payload could not be decoded.
    pub malformed: u64,
    /// Items dropped because a shard ring was full.
    pub dropped: u64,
    /// Keys delivered since the last [`Dispatcher::take_touched`], with "was a DEL".
    touched: Vec<(TxKey, bool)>,
    /// `DisableExternalCache`: data goes to the injector instead of the shards.
    inject: Option<(Producer<InjectItem>, Vec<InjectItem>)>,
    /// `DisableInternalCache`: a peer's RESYNC is answered from a kernel dump, which the
    /// control side's maintenance thread runs when this is raised.
    kernel_resync: Option<Arc<AtomicBool>>,
}

impl Dispatcher {
    /// A dispatcher over one producer per shard.
    pub fn new(rings: Vec<Producer<PeerItem>>) -> Self {
        let pending = rings.iter().map(|_| Vec::new()).collect();
        Self {
            rings,
            pending,
            malformed: 0,
            dropped: 0,
            touched: Vec::new(),
            inject: None,
            kernel_resync: None,
        }
    }

    /// Without an internal cache there is nothing for the shards to resend: a RESYNC
    /// raises `flag` instead, and the kernel table is dumped and sent (as C, §5).
    #[must_use]
    pub fn with_kernel_resync(mut self, flag: Arc<AtomicBool>) -> Self {
        self.kernel_resync = Some(flag);
        self
    }

    /// Sends every data message to `ring` (the injector) instead of the external caches.
    pub fn with_inject(mut self, ring: Producer<InjectItem>) -> Self {
        self.inject = Some((ring, Vec::new()));
        self
    }

    /// Routes one accepted data message.
    pub fn deliver(&mut self, m: &Message<'_>) {
        let Kind::Data(msg_type) = m.kind() else {
            return;
        };
        if let Some((_, pending)) = &mut self.inject {
            let payload = if msg_type.is_exp() {
                m.exp().map(TxPayload::Exp)
            } else {
                m.ct().map(TxPayload::Ct)
            };
            match payload {
                Ok(payload) => pending.push(InjectItem { msg_type, payload }),
                Err(_) => self.malformed += 1,
            }
            return;
        }
        if msg_type.is_exp() {
            let Ok(repr) = m.exp() else {
                self.malformed += 1;
                return;
            };
            let Some(key) = ExpKey::from_wire(&repr) else {
                self.malformed += 1;
                return;
            };
            let s = exp_shard_of(&key, self.rings.len());
            self.touched
                .push((TxKey::Exp(Box::new(key)), msg_type == MsgType::EXP_DEL));
            self.pending[s].push(PeerItem::Exp { msg_type, repr });
            return;
        }
        let Ok(repr) = m.ct() else {
            self.malformed += 1;
            return;
        };
        let Some(key) = CtKey::from_wire(&repr) else {
            self.malformed += 1;
            return;
        };
        let s = shard_of(&key, self.rings.len());
        self.touched
            .push((TxKey::Ct(key), msg_type == MsgType::CT_DEL));
        self.pending[s].push(PeerItem::Ct { msg_type, repr });
    }

    /// The keys delivered since the last call (ALARM expiry bookkeeping).
    pub fn take_touched(&mut self) -> Vec<(TxKey, bool)> {
        std::mem::take(&mut self.touched)
    }

    /// Removes an expired foreign object from its shard's external cache.
    pub fn expire(&mut self, key: &TxKey) {
        let s = match key {
            TxKey::Ct(k) => shard_of(k, self.rings.len()),
            TxKey::Exp(k) => exp_shard_of(k, self.rings.len()),
        };
        self.pending[s].push(PeerItem::Expire(key.clone()));
    }

    /// Asks every shard to queue its whole internal cache (a peer sent RESYNC).
    pub fn resync_all(&mut self) {
        if let Some(flag) = &self.kernel_resync {
            flag.store(true, Ordering::Release);
            return;
        }
        for p in &mut self.pending {
            p.push(PeerItem::Resync);
        }
    }

    /// Pushes the pending batches.
    pub fn flush(&mut self) {
        if let Some((ring, pending)) = &mut self.inject
            && !pending.is_empty()
        {
            ring.push_batch(pending);
            self.dropped += pending.len() as u64;
            pending.clear();
        }
        for (ring, batch) in self.rings.iter_mut().zip(&mut self.pending) {
            if !batch.is_empty() {
                ring.push_batch(batch);
                self.dropped += batch.len() as u64;
                batch.clear();
            }
        }
    }
}
