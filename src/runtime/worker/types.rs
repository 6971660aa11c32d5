//! The items that travel on the worker's rings: kernel events in, peer data in, control
//! commands in, transmit requests out.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::mpsc::Sender;

use crate::cache::{CtKey, ExpKey, Secs};
use crate::netlink::ct::Conntrack;
use crate::netlink::exp::Expectation;
use crate::wire::{MsgType, ct, exp};

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
    /// Our inject socket (`DisableExternalCache`): ignored completely.
    Inject,
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
#[derive(Debug, Clone)]
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
    /// An EXP_NEW / EXP_UPD / EXP_DEL payload.
    Exp {
        /// The message type.
        msg_type: MsgType,
        /// The payload.
        repr: exp::Repr,
    },
    /// ALARM: the foreign object was not refreshed for `CacheTimeout`; remove it.
    Expire(TxKey),
}

/// One kernel expectation event, decoded by the reader.
#[derive(Debug, Clone, Copy)]
pub struct ExpEvent {
    /// What happened.
    pub change: CtChange,
    /// Who caused it.
    pub origin: Origin,
    /// The expectation as the kernel reported it.
    pub exp: Expectation,
}

/// What the link thread keys its queues by: a conntrack or an expectation.
///
/// The link thread stores this key in every queue it keeps (the payload map, FTFW's
/// position map, transmit queue and resend queue), and the resend queue's B-tree moves
/// entries around on every ACK. An `ExpKey` is 116 bytes, against 40 for a `CtKey`, so it is
/// boxed: expectations are rare, and every conntrack key then takes 48 bytes instead of 118
/// (see `bench/RESULTS.md`, "Optimisations").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxKey {
    /// A conntrack.
    Ct(CtKey),
    /// An expectation.
    Exp(Box<ExpKey>),
}

/// An address as one integer, for hashing.
fn addr_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u128::from(v4.to_bits()),
        IpAddr::V6(v6) => v6.to_bits(),
    }
}

impl Hash for TxKey {
    /// Three words for a conntrack key instead of the ten hasher calls the derived `Hash`
    /// makes (a length prefix and a byte slice per address, one call per small field). The
    /// link thread hashes each key about seven times per event. Consistent with `Eq`: the
    /// words are functions of the compared fields.
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Self::Ct(k) => {
                let t = k.tuple();
                let (a, b) = t.l4();
                state.write_u64(
                    u64::from(a)
                        | u64::from(b) << 16
                        | u64::from(k.zone()) << 32
                        | u64::from(t.l4proto()) << 48
                        | u64::from(t.family()) << 56,
                );
                state.write_u128(addr_bits(t.src()));
                state.write_u128(addr_bits(t.dst()));
            }
            Self::Exp(k) => {
                // A marker no conntrack key writes first (family 0 with protocol 255).
                state.write_u64(0x00ff << 48);
                k.hash(state);
            }
        }
    }
}

/// The payload of a [`TxItem`].
#[derive(Debug, Clone, Copy)]
pub enum TxPayload {
    /// CT_* message body.
    Ct(ct::Repr),
    /// EXP_* message body.
    Exp(exp::Repr),
}

/// One request to the link thread: send this object's current state.
#[derive(Debug, Clone)]
pub struct TxItem {
    /// The object.
    pub key: TxKey,
    /// Message type by status now (NEW, UPD or DEL).
    pub msg_type: MsgType,
    /// Its current payload.
    pub repr: TxPayload,
    /// Send it now; `false` only registers it (ALARM: dumped objects go out at their first
    /// refresh).
    pub send_now: bool,
    /// The object left the internal cache without a DEL to send (our own commit or flush,
    /// `-f internal`): stop tracking it (ALARM would otherwise keep refreshing it).
    pub forget: bool,
    /// `DisableInternalCache`: serialise it into the link buffer now (no cache, no queue).
    pub direct: bool,
}

/// Which cache a [`Cmd::Dump`] renders, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dump {
    /// `-i` (`exp`: `-i expect`; `xml`: `-x`).
    Internal {
        /// The expectation cache.
        exp: bool,
        /// XML lines.
        xml: bool,
    },
    /// `-e`, likewise.
    External {
        /// The expectation cache.
        exp: bool,
        /// XML lines.
        xml: bool,
    },
}

/// A control request for one shard; the answer goes back on the enclosed channel.
#[derive(Debug)]
pub enum Cmd {
    /// Render a cache (`-i`, `-e`, with `expect` and `-x` variants).
    Dump(Dump, Sender<String>),
    /// Hand out the external cache for a commit: `(payload, last update)` in commit order.
    CollectExternal(Sender<Vec<(ct::Repr, Secs)>>),
    /// Hand out the external expectation cache for a commit.
    CollectExternalExp(Sender<Vec<(exp::Repr, Secs)>>),
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
    /// Overrun resync: apply and replicate these dumped entries (this shard's share of the
    /// whole table), then mark every other cached entry DEAD and replicate its DEL.
    Resync(Vec<KernelEvent>),
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn test_tx_key_stays_small() {
        // Every queue of the link thread holds one per object in flight (see TxKey).
        assert!(
            size_of::<TxKey>() <= 48,
            "TxKey is {} bytes",
            size_of::<TxKey>()
        );
    }
}
