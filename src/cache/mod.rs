//! Per-shard caches and the conversions between the kernel and the sync representations
//! (sans-IO: no clock, no socket; time is passed in as [`Secs`]).
//!
//! * [`key`]: identities ([`CtKey`], [`ExpKey`]) and shard routing ([`shard_of`]);
//! * [`entry`]: the compact cached objects and the merge rule;
//! * [`shard`]: the internal and external caches of one worker shard;
//! * [`convert`]: ctnetlink ⇄ sync message, as conntrackd 1.4.7 does it.
//!
//! References: `shared/reference/sync-modes.md` §1, §5, §6; `wire-protocol.md` §6–§8;
//! `ctnetlink-notes.md` §7.

pub mod convert;
pub mod entry;
pub mod key;
pub mod shard;

#[cfg(test)]
mod tests;

pub use convert::{CommitPolicy, ConvertError, SendPolicy};
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
