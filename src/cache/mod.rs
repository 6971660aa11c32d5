//! Per-shard caches and the conversions between the kernel and the sync representations
//! (sans-IO: no clock, no socket; time is passed in as [`Secs`]).
//!
//! * [`key`]: identities ([`CtKey`], [`ExpKey`]) and shard routing ([`shard_of`]);
//! * [`entry`]: the compact cached objects and the merge rule;
//! * [`shard`]: the internal and external caches of one worker shard;
//! * [`convert`] and [`exp`]: ctnetlink ⇄ sync message, as conntrackd 1.4.7 does it.
//!
//! Data flow: the reader routes each kernel event with [`shard_of`] (expectations with
//! [`exp_shard_of`], i.e. to their master's shard, so "is the master cached?" is a local
//! lookup); the worker filters it ([`crate::filter`]) and applies it with
//! [`InternalCache::handle_ct`], which stores every attribute the sync protocol can carry;
//! when [`Outcome::Applied`] says `enqueue`, the key goes on the tx queue, and at
//! transmission [`Internal::take_for_tx`] gives the message type (the object's status) and
//! the attributes, to which the sender's [`SendPolicy`] is applied. Peer messages go to
//! [`External::handle_peer`]; `conntrackd -c` walks [`External::commit_order`] and builds
//! each kernel CREATE with [`convert::kernel_from_wire`].
//!
//! Memory: a conntrack bucket is 88 bytes (40-byte key, 48-byte object) plus hashbrown's
//! control byte; rare attributes live in a boxed extra (see [`entry`]). Measured: 122 bytes
//! per entry at 100k entries, 172 at 70k (table just grown), table included.
//!
//! References: `shared/reference/sync-modes.md` §1, §5, §6; `wire-protocol.md` §6–§8;
//! `ctnetlink-notes.md` §7; where they were silent, the conntrack-tools 1.4.7 source.

pub mod convert;
pub mod entry;
pub mod exp;
pub mod key;
pub mod shard;

#[cfg(test)]
mod tests;

pub use convert::{CommitKind, CommitPolicy, ConvertError, SendPolicy};
pub use entry::{CtAttrs, CtEntry, ExpEntry, Meta, ObjStatus, Secs};
pub use key::{CtKey, ExpKey, exp_shard_of, shard_of};
pub use shard::{CacheStats, External, Internal, KernelEvent, Origin, Outcome, PeerMsg};

/// Internal conntrack cache shard.
pub type InternalCache = Internal<CtKey, CtAttrs>;
/// External conntrack cache shard.
pub type ExternalCache = External<CtKey, CtAttrs>;
/// Internal expectation cache shard.
pub type InternalExpCache = Internal<ExpKey, crate::wire::exp::Repr>;
/// External expectation cache shard.
pub type ExternalExpCache = External<ExpKey, crate::wire::exp::Repr>;

impl InternalCache {
    /// Applies a kernel conntrack event: key and attributes are taken from `ct` with every
    /// attribute kept ([`SendPolicy::KEEP_ALL`]); the sender's policy is applied when the
    /// object is transmitted ([`convert::apply_send_policy`]).
    pub fn handle_ct(
        &mut self,
        now: Secs,
        origin: Origin,
        ev: KernelEvent,
        ct: &crate::netlink::ct::Conntrack,
    ) -> Outcome {
        let r = convert::wire_from_kernel(ct, &SendPolicy::KEEP_ALL);
        self.handle_kernel(now, origin, ev, CtKey::from_conntrack(ct), &r)
    }
}

impl InternalExpCache {
    /// Applies a kernel expectation event (see [`InternalCache::handle_ct`]).
    pub fn handle_exp(
        &mut self,
        now: Secs,
        origin: Origin,
        ev: KernelEvent,
        e: &crate::netlink::exp::Expectation,
    ) -> Outcome {
        let r = exp::exp_wire_from_kernel(e, &SendPolicy::KEEP_ALL);
        self.handle_kernel(now, origin, ev, ExpKey::from_expectation(e), &r)
    }
}
