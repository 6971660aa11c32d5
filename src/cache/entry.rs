//! The cached objects: a compact conntrack ([`CtEntry`]) and an expectation ([`ExpEntry`]),
//! each with its cache bookkeeping ([`Meta`]).
//!
//! Why not store `netlink::ct::Conntrack` (480 bytes) or `wire::ct::Repr` (280 bytes)?
//! The budget is ≤ ~230 bytes per cached conntrack *including* the hash table, and
//! hashbrown's load factor sits between 7/8 and 7/16, so a bucket must stay near 100 bytes
//! (it is 88: a 40-byte key and a 48-byte object).
//! Only what the sync protocol carries is kept (the reply tuple, counters and ids are never
//! replicated, wire-protocol.md §6.2): the original tuple lives in the map key ([`CtKey`]),
//! the attributes that nearly every entry has (status, timeout, mark, protocol state,
//! one IPv4 NAT address and port) live inline, and the rare ones (master, IPv6 NAT, both
//! SNAT and DNAT, seq-adj, helper, labels, non-zero synproxy, SCTP vtags, DCCP role) in one
//! boxed [`Extra`] allocated only when needed.
//! [`CtAttrs::pack`] / [`CtAttrs::unpack`] convert to and from the wire [`Repr`], which is
//! what the rest of the cache code works with; the round trip is exact for everything a
//! 1.4.7 sender emits (a message with only some of the ICMP type/code/id gets the others
//! as 0, which is what a kernel request would carry anyway).

use std::net::Ipv4Addr;

use super::key::{CtKey, ExpKey};
use crate::wire::ct::{HELPER_NAME_MAX, Labels, NatSeqAdj, Repr, Synproxy};
use crate::wire::exp::Repr as ExpRepr;
use crate::wire::tuple::{Addrs, Name, Ports};

/// Seconds on the runtime's monotonic clock. The cache never reads a clock: every call
/// that needs time gets `now` from the caller.
pub type Secs = u32;

/// Life-cycle state of a cached object (sync-modes.md §1). The message type sent for an
/// object is its status at transmission time: NEW → `*_NEW`, ALIVE → `*_UPD`,
/// DEAD → `*_DEL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjStatus {
    /// Just added.
    New,
    /// Updated at least once since it was added.
    Alive,
    /// Destroyed, kept until the sync layer has sent (FTFW: until acknowledged) the DEL.
    Dead,
}

/// Cache bookkeeping of one object: status, flags and the two times the C daemon keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// NEW / ALIVE / DEAD.
    pub status: ObjStatus,
    /// [`Meta::QUEUED`], [`Meta::HELD`].
    pub flags: u8,
    /// When the object was (re)created: "active since" in `-i`/`-e`.
    pub created: Secs,
    /// Last add/update: the commit timeout correction counts from here (sync-modes.md §6).
    pub updated: Secs,
}

impl Meta {
    /// The object is in the sync layer's tx queue (at most once, sync-modes.md §1).
    pub const QUEUED: u8 = 0x01;
    /// The object is held by the sync layer's resend list (FTFW, until acknowledged): a
    /// DEAD one is not purged (C keeps such objects by reference count).
    pub const HELD: u8 = 0x02;

    /// A fresh NEW object.
    pub const fn new(now: Secs) -> Self {
        Self {
            status: ObjStatus::New,
            flags: 0,
            created: now,
            updated: now,
        }
    }

    /// True if [`Self::QUEUED`] is set.
    pub const fn queued(&self) -> bool {
        self.flags & Self::QUEUED != 0
    }

    /// True if [`Self::HELD`] is set.
    pub const fn held(&self) -> bool {
        self.flags & Self::HELD != 0
    }
}

/// Rare conntrack attributes, boxed so that common entries pay 8 bytes for them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extra {
    /// `NTA_MASTER_IPV4/IPV6`.
    pub master_addrs: Option<Addrs>,
    /// `NTA_MASTER_L4PROTO`.
    pub master_l4proto: Option<u8>,
    /// `NTA_MASTER_PORT`.
    pub master_ports: Option<Ports>,
    /// `NTA_NAT_SEQ_ADJ`.
    pub nat_seq_adj: Option<NatSeqAdj>,
    /// `NTA_DNAT_IPV4` when the flow also has SNAT (the inline slot holds the SNAT one).
    pub dnat4: Option<Ipv4Addr>,
    /// `NTA_DPAT_PORT` when the flow also has SPAT.
    pub dpat: Option<u16>,
    /// `NTA_DCCP_ROLE` (DCCP flows are rare: Linux 6.18 has no DCCP tracker).
    pub dccp_role: Option<u8>,
    /// `NTA_SCTP_VTAG_ORIG`.
    pub sctp_vtag_orig: Option<u32>,
    /// `NTA_SCTP_VTAG_REPL`.
    pub sctp_vtag_repl: Option<u32>,
    /// `NTA_HELPER_NAME`.
    pub helper_name: Option<Name<HELPER_NAME_MAX>>,
    /// `NTA_LABELS`.
    pub labels: Option<Labels>,
    /// `NTA_SNAT_IPV6`.
    pub snat_ipv6: Option<std::net::Ipv6Addr>,
    /// `NTA_DNAT_IPV6`.
    pub dnat_ipv6: Option<std::net::Ipv6Addr>,
    /// `NTA_SYNPROXY` when not all zero (all-zero is a flag bit inline).
    pub synproxy: Option<Synproxy>,
}

/// The non-tuple attributes of a cached conntrack, packed into 24 bytes plus the box
/// pointer. `present` says which are set.
///
/// One IPv4 NAT address and one NAT port are inline: the SNAT ones, or the DNAT ones when
/// the flow has no SNAT (a flow with both keeps the DNAT half in [`Extra`]). The ICMP
/// type/code/id share one presence bit: the 1.4.7 sender always sends the three together,
/// and a kernel request zero-fills missing ones anyway.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct CtAttrs {
    status: u32,
    timeout: u32,
    mark: u32,
    nat4: [u8; 4],
    nat_port: u16,
    present: u16,
    /// TCP, SCTP or DCCP state (one protocol per flow).
    state: u8,
    wscale_orig: u8,
    wscale_repl: u8,
    extra: Option<Box<Extra>>,
}

// Presence bits of CtAttrs.
const P_STATUS: u16 = 1 << 0;
const P_TIMEOUT: u16 = 1 << 1;
const P_MARK: u16 = 1 << 2;
const P_SNAT4: u16 = 1 << 3;
const P_DNAT4: u16 = 1 << 4;
const P_SPAT: u16 = 1 << 5;
const P_DPAT: u16 = 1 << 6;
const P_TCP_STATE: u16 = 1 << 7;
const P_SCTP_STATE: u16 = 1 << 8;
const P_DCCP_STATE: u16 = 1 << 9;
const P_WSCALE_O: u16 = 1 << 10;
const P_WSCALE_R: u16 = 1 << 11;
const P_PORTS: u16 = 1 << 12;
const P_ICMP: u16 = 1 << 13;
const P_SYNPROXY0: u16 = 1 << 14;
const P_ZONE: u16 = 1 << 15;

impl CtAttrs {
    /// Packs everything of `r` but the identity (addresses, protocol, ports/ICMP values,
    /// zone value: those are in the key; only their presence is recorded here).
    pub fn pack(r: &Repr) -> Self {
        let mut a = Self::default();
        let mut x = Extra::default();
        let mut bit = |cond: bool, b: u16| {
            if cond {
                a.present |= b;
            }
        };
        bit(r.ports.is_some(), P_PORTS);
        bit(
            r.icmp_type.is_some() || r.icmp_code.is_some() || r.icmp_id.is_some(),
            P_ICMP,
        );
        bit(r.zone.is_some(), P_ZONE);
        for (v, slot, b) in [
            (r.status, &mut a.status, P_STATUS),
            (r.timeout, &mut a.timeout, P_TIMEOUT),
            (r.mark, &mut a.mark, P_MARK),
        ] {
            if let Some(v) = v {
                *slot = v;
                a.present |= b;
            }
        }
        // The inline NAT slots hold SNAT first, else DNAT.
        match (r.snat_ipv4, r.dnat_ipv4) {
            (Some(s), d) => {
                a.nat4 = s.octets();
                a.present |= P_SNAT4 | if d.is_some() { P_DNAT4 } else { 0 };
                x.dnat4 = d;
            }
            (None, Some(d)) => {
                a.nat4 = d.octets();
                a.present |= P_DNAT4;
            }
            (None, None) => {}
        }
        match (r.spat_port, r.dpat_port) {
            (Some(s), d) => {
                a.nat_port = s;
                a.present |= P_SPAT | if d.is_some() { P_DPAT } else { 0 };
                x.dpat = d;
            }
            (None, Some(d)) => {
                a.nat_port = d;
                a.present |= P_DPAT;
            }
            (None, None) => {}
        }
        // One state byte: a flow has one protocol. A (nonsensical) message with several
        // state attributes keeps the last of TCP, SCTP, DCCP.
        for (v, b) in [
            (r.tcp_state, P_TCP_STATE),
            (r.sctp_state, P_SCTP_STATE),
            (r.dccp_state, P_DCCP_STATE),
        ] {
            if let Some(v) = v {
                a.state = v;
                a.present |= b;
            }
        }
        if let Some(v) = r.tcp_wscale_orig {
            a.wscale_orig = v;
            a.present |= P_WSCALE_O;
        }
        if let Some(v) = r.tcp_wscale_repl {
            a.wscale_repl = v;
            a.present |= P_WSCALE_R;
        }
        let mut synproxy = r.synproxy;
        if synproxy == Some(Synproxy::default()) {
            // ctnetlink-created entries all carry a zeroed synproxy: no box for that.
            a.present |= P_SYNPROXY0;
            synproxy = None;
        }
        x.master_addrs = r.master_addrs;
        x.master_l4proto = r.master_l4proto;
        x.master_ports = r.master_ports;
        x.nat_seq_adj = r.nat_seq_adj;
        x.sctp_vtag_orig = r.sctp_vtag_orig;
        x.sctp_vtag_repl = r.sctp_vtag_repl;
        x.dccp_role = r.dccp_role;
        x.helper_name = r.helper_name;
        x.labels = r.labels;
        x.snat_ipv6 = r.snat_ipv6;
        x.dnat_ipv6 = r.dnat_ipv6;
        x.synproxy = synproxy;
        if x != Extra::default() {
            a.extra = Some(Box::new(x));
        }
        a
    }

    /// The full message representation, identity from `key`.
    pub fn unpack(&self, key: &CtKey) -> Repr {
        let pr = self.present;
        let p = |b: u16| pr & b != 0;
        let t = key.tuple();
        let (l4a, l4b) = t.l4();
        let x = self.extra.as_deref().cloned().unwrap_or_default();
        let nat4 = Ipv4Addr::from(self.nat4);
        // The key's L4 slot holds ICMP values only when no ports were sent (CtKey::from_wire).
        let icmp_vals = p(P_ICMP).then(|| {
            if p(P_PORTS) {
                (0, 0, 0)
            } else {
                ((l4a >> 8) as u8, l4a as u8, l4b)
            }
        });
        Repr {
            addrs: Some(t.addrs()),
            l4proto: Some(t.l4proto()),
            ports: opt(pr, P_PORTS, Ports { src: l4a, dst: l4b }),
            tcp_state: opt(pr, P_TCP_STATE, self.state),
            status: opt(pr, P_STATUS, self.status),
            timeout: opt(pr, P_TIMEOUT, self.timeout),
            mark: opt(pr, P_MARK, self.mark),
            master_addrs: x.master_addrs,
            master_l4proto: x.master_l4proto,
            master_ports: x.master_ports,
            snat_ipv4: opt(pr, P_SNAT4, nat4),
            dnat_ipv4: if p(P_SNAT4) {
                x.dnat4
            } else {
                opt(pr, P_DNAT4, nat4)
            },
            spat_port: opt(pr, P_SPAT, self.nat_port),
            dpat_port: if p(P_SPAT) {
                x.dpat
            } else {
                opt(pr, P_DPAT, self.nat_port)
            },
            nat_seq_adj: x.nat_seq_adj,
            sctp_state: opt(pr, P_SCTP_STATE, self.state),
            sctp_vtag_orig: x.sctp_vtag_orig,
            sctp_vtag_repl: x.sctp_vtag_repl,
            dccp_state: opt(pr, P_DCCP_STATE, self.state),
            dccp_role: x.dccp_role,
            icmp_type: icmp_vals.map(|v| v.0),
            icmp_code: icmp_vals.map(|v| v.1),
            icmp_id: icmp_vals.map(|v| v.2),
            tcp_wscale_orig: opt(pr, P_WSCALE_O, self.wscale_orig),
            tcp_wscale_repl: opt(pr, P_WSCALE_R, self.wscale_repl),
            helper_name: x.helper_name,
            labels: x.labels,
            snat_ipv6: x.snat_ipv6,
            dnat_ipv6: x.dnat_ipv6,
            synproxy: if p(P_SYNPROXY0) {
                Some(Synproxy::default())
            } else {
                x.synproxy
            },
            zone: opt(pr, P_ZONE, key.zone()),
        }
    }

    /// `IPS_*` status, if known (cheap accessor for filters and commit ordering).
    pub fn status(&self) -> Option<u32> {
        (self.present & P_STATUS != 0).then_some(self.status)
    }

    /// True if the entry has a complete master tuple (a RELATED conntrack): committed in
    /// pass 2. As C's `ct_is_related`, "complete" includes the master ports.
    pub fn is_related(&self) -> bool {
        self.extra.as_deref().is_some_and(|x| {
            x.master_addrs.is_some() && x.master_l4proto.is_some() && x.master_ports.is_some()
        })
    }

    /// Heap bytes owned by this entry (the boxed extras), for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.extra.as_ref().map_or(0, |_| size_of::<Extra>())
    }
}

impl core::fmt::Debug for CtAttrs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Humans want the attributes, not the packing.
        let mut d = f.debug_struct("CtAttrs");
        d.field("status", &self.status().map(|s| format!("{s:#x}")));
        if self.present & P_TIMEOUT != 0 {
            d.field("timeout", &self.timeout);
        }
        if self.present & P_MARK != 0 {
            d.field("mark", &self.mark);
        }
        if self.present & (P_TCP_STATE | P_SCTP_STATE | P_DCCP_STATE) != 0 {
            d.field("state", &self.state);
        }
        if self.present & (P_SNAT4 | P_DNAT4) != 0 {
            let kind = if self.present & P_SNAT4 != 0 {
                "snat"
            } else {
                "dnat"
            };
            d.field(kind, &Ipv4Addr::from(self.nat4));
        }
        if self.present & (P_SPAT | P_DPAT) != 0 {
            d.field("nat_port", &self.nat_port);
        }
        if let Some(x) = &self.extra {
            d.field("extra", x);
        }
        d.finish()
    }
}

/// What a cache stores per key: a packed form of a message representation.
pub trait Stored: Sized {
    /// The key type the identity lives in.
    type Key;
    /// The unpacked (message) form.
    type Repr;
    /// Packs a representation (its identity is in the key).
    fn pack(r: &Self::Repr) -> Self;
    /// Unpacks, identity from `key`.
    fn unpack(&self, key: &Self::Key) -> Self::Repr;
    /// Applies an update to the unpacked form (sync-modes.md §1.2).
    fn merge(old: &mut Self::Repr, upd: &Self::Repr);
    /// True if committed in the second pass (has a master, sync-modes.md §6).
    fn is_related(&self) -> bool;
    /// Heap bytes owned besides the table slot.
    fn heap_bytes(&self) -> usize {
        0
    }
}

impl Stored for CtAttrs {
    type Key = CtKey;
    type Repr = Repr;
    fn pack(r: &Repr) -> Self {
        Self::pack(r)
    }
    fn unpack(&self, key: &CtKey) -> Repr {
        Self::unpack(self, key)
    }
    fn merge(old: &mut Repr, upd: &Repr) {
        merge(old, upd);
    }
    fn is_related(&self) -> bool {
        Self::is_related(self)
    }
    fn heap_bytes(&self) -> usize {
        Self::heap_bytes(self)
    }
}

impl Stored for ExpRepr {
    type Key = ExpKey;
    type Repr = Self;
    fn pack(r: &Self) -> Self {
        *r
    }
    fn unpack(&self, _key: &ExpKey) -> Self {
        *self
    }
    /// 1.4.7 copies the whole received expectation over the cached one (no per-attribute
    /// merge for expectations, unlike conntracks).
    fn merge(old: &mut Self, upd: &Self) {
        *old = *upd;
    }
    fn is_related(&self) -> bool {
        false
    }
}

fn opt<T>(present: u16, bit: u16, v: T) -> Option<T> {
    (present & bit != 0).then_some(v)
}

/// A cached object: bookkeeping plus packed attributes (the key is the map's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obj<V> {
    /// Status, flags, times.
    pub meta: Meta,
    /// The replicated attributes.
    pub val: V,
}

/// A cached conntrack.
pub type CtEntry = Obj<CtAttrs>;
/// A cached expectation (few of them: stored as they travel).
pub type ExpEntry = Obj<ExpRepr>;

/// Merges an update into `old` (sync-modes.md §1.2): every attribute present in `upd`
/// overwrites, absent ones keep their old value.
pub fn merge(old: &mut Repr, upd: &Repr) {
    macro_rules! take {
        ($($f:ident),*) => {$( if upd.$f.is_some() { old.$f = upd.$f; } )*};
    }
    take!(
        addrs,
        l4proto,
        ports,
        tcp_state,
        status,
        timeout,
        mark,
        master_addrs,
        master_l4proto,
        master_ports,
        snat_ipv4,
        dnat_ipv4,
        spat_port,
        dpat_port,
        nat_seq_adj,
        sctp_state,
        sctp_vtag_orig,
        sctp_vtag_repl,
        dccp_state,
        dccp_role,
        icmp_type,
        icmp_code,
        icmp_id,
        tcp_wscale_orig,
        tcp_wscale_repl,
        helper_name,
        labels,
        snat_ipv6,
        dnat_ipv6,
        synproxy,
        zone
    );
}
