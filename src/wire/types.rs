//! Open wire enumerations: message types, header flags and attribute numbers.
//!
//! Peer bytes can hold any value, so these are newtypes with named constants rather than
//! closed enums: conversion from the wire is total and free, and `Debug` prints the C name
//! when there is one (`NTA_PORT`) or the raw value in hex otherwise. The C names are kept so
//! that a reader can grep the reference (wire-protocol.md §3, §6.1, §8).

use core::fmt;

/// Declares a newtype over an integer with named constants and a `Debug` that prints them.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        $name:ident($int:ty) {
            $( $(#[$cmeta:meta])* $konst:ident = $val:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $int);

        impl $name {
            $( $(#[$cmeta])* pub const $konst: Self = Self($val); )*

            /// The C name of this value, if it has one.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $val => Some(stringify!($konst)), )*
                    _ => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, concat!(stringify!($name), "({:#x})"), self.0),
                }
            }
        }

        impl From<$int> for $name {
            fn from(v: $int) -> Self {
                Self(v)
            }
        }
    };
}

open_enum! {
    /// The low nibble of header byte 0 (§3). Values 6–9 and 11–15 are unused and rejected by
    /// the C receiver as "bad header".
    MsgType(u8) {
        /// Conntrack created (CT attributes).
        CT_NEW = 0,
        /// Conntrack updated.
        CT_UPD = 1,
        /// Conntrack destroyed.
        CT_DEL = 2,
        /// Expectation created (EXP attributes).
        EXP_NEW = 3,
        /// Expectation updated.
        EXP_UPD = 4,
        /// Expectation destroyed.
        EXP_DEL = 5,
        /// Control message: no attributes, meaning carried by the flags.
        CTL = 10,
    }
}

impl MsgType {
    /// CT_NEW, CT_UPD or CT_DEL: the body holds conntrack attributes.
    pub const fn is_ct(self) -> bool {
        self.0 <= 2
    }

    /// EXP_NEW, EXP_UPD or EXP_DEL: the body holds expectation attributes.
    pub const fn is_exp(self) -> bool {
        self.0 >= 3 && self.0 <= 5
    }

    /// Any of the six data types (the C receiver's `type <= 5` test).
    pub const fn is_data(self) -> bool {
        self.0 <= 5
    }
}

/// The flags byte of the header (§3): a bit set, so unknown bits are kept as they are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// No flag set.
    pub const NONE: Self = Self(0);
    /// Never set by the C daemon.
    pub const UNUSED: Self = Self(0x01);
    /// "Send me everything" (16-byte header, from = to = 0).
    pub const RESYNC: Self = Self(0x02);
    /// Please retransmit `[from, to]`.
    pub const NACK: Self = Self(0x04);
    /// `[from, to]` received.
    pub const ACK: Self = Self(0x08);
    /// Keep-alive (8-byte header).
    pub const ALIVE: Self = Self(0x10);
    /// "I (re)started, my sequence is new".
    pub const HELLO: Self = Self(0x20);
    /// Reply to a HELLO.
    pub const HELLO_BACK: Self = Self(0x40);

    const NAMES: [(u8, &'static str); 7] = [
        (0x01, "UNUSED"),
        (0x02, "RESYNC"),
        (0x04, "NACK"),
        (0x08, "ACK"),
        (0x10, "ALIVE"),
        (0x20, "HELLO"),
        (0x40, "HELLO_BACK"),
    ];

    /// True if every bit of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if any bit of `other` is set in `self`.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// The union of both sets.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// True if no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// ACK, NACK or RESYNC: the flags that make a control header 16 bytes long (§2.1).
    pub const fn has_range(self) -> bool {
        self.intersects(Self(Self::ACK.0 | Self::NACK.0 | Self::RESYNC.0))
    }
}

impl core::ops::BitOr for Flags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl core::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

/// Prints `ACK|HELLO` style names, `0` for no flag, and unnamed bits in hex.
impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0");
        }
        let mut first = true;
        let mut rest = self.0;
        for (bit, name) in Self::NAMES {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
                rest &= !bit;
            }
        }
        if rest != 0 {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "{rest:#x}")?;
        }
        Ok(())
    }
}

open_enum! {
    /// Conntrack attribute numbers (§6.1), used in CT_NEW/UPD/DEL bodies. 29–32 exist only
    /// since 1.4.7.
    AttrType(u16) {
        /// Original src, dst (4 + 4, network order).
        NTA_IPV4 = 0,
        /// Original src, dst (16 + 16).
        NTA_IPV6 = 1,
        /// IP protocol number.
        NTA_L4PROTO = 2,
        /// Original sport, dport (BE16 each).
        NTA_PORT = 3,
        /// Kernel `tcp_conntrack` state.
        NTA_TCP_STATE = 4,
        /// BE32 `IPS_*` status bits.
        NTA_STATUS = 5,
        /// BE32 seconds left.
        NTA_TIMEOUT = 6,
        /// BE32 mark.
        NTA_MARK = 7,
        /// Master original src, dst.
        NTA_MASTER_IPV4 = 8,
        /// Master original src, dst (IPv6).
        NTA_MASTER_IPV6 = 9,
        /// Master protocol.
        NTA_MASTER_L4PROTO = 10,
        /// Master sport, dport.
        NTA_MASTER_PORT = 11,
        /// Reply-tuple destination address (SNAT).
        NTA_SNAT_IPV4 = 12,
        /// Reply-tuple source address (DNAT).
        NTA_DNAT_IPV4 = 13,
        /// Reply-tuple destination port, little-endian on x86 senders.
        NTA_SPAT_PORT = 14,
        /// Reply-tuple source port, little-endian on x86 senders.
        NTA_DPAT_PORT = 15,
        /// Six BE32 sequence-adjustment values.
        NTA_NAT_SEQ_ADJ = 16,
        /// Kernel SCTP state.
        NTA_SCTP_STATE = 17,
        /// BE32 original verification tag.
        NTA_SCTP_VTAG_ORIG = 18,
        /// BE32 reply verification tag.
        NTA_SCTP_VTAG_REPL = 19,
        /// Kernel DCCP state.
        NTA_DCCP_STATE = 20,
        /// DCCP role.
        NTA_DCCP_ROLE = 21,
        /// ICMP type.
        NTA_ICMP_TYPE = 22,
        /// ICMP code.
        NTA_ICMP_CODE = 23,
        /// ICMP echo id, little-endian on x86 senders.
        NTA_ICMP_ID = 24,
        /// Window scale, original direction.
        NTA_TCP_WSCALE_ORIG = 25,
        /// Window scale, reply direction.
        NTA_TCP_WSCALE_REPL = 26,
        /// NUL-terminated helper name.
        NTA_HELPER_NAME = 27,
        /// BE32 words of the label bitmap.
        NTA_LABELS = 28,
        /// Reply-tuple destination address (SNAT, IPv6).
        NTA_SNAT_IPV6 = 29,
        /// Reply-tuple source address (DNAT, IPv6).
        NTA_DNAT_IPV6 = 30,
        /// its, isn, tsoff (BE32 each).
        NTA_SYNPROXY = 31,
        /// BE16 zone.
        NTA_ZONE = 32,
    }
}

impl AttrType {
    /// 1.4.7 `NTA_MAX`: the receiver rejects any type at or above it (§6.3).
    pub const MAX: u16 = 33;
}

open_enum! {
    /// Expectation attribute numbers (§8), used in EXP_NEW/UPD/DEL bodies.
    ExpAttrType(u16) {
        /// Master original src, dst.
        NTA_EXP_MASTER_IPV4 = 0,
        /// Master original src, dst (IPv6).
        NTA_EXP_MASTER_IPV6 = 1,
        /// Master protocol.
        NTA_EXP_MASTER_L4PROTO = 2,
        /// Master sport, dport.
        NTA_EXP_MASTER_PORT = 3,
        /// Expected tuple src, dst.
        NTA_EXP_EXPECT_IPV4 = 4,
        /// Expected tuple src, dst (IPv6).
        NTA_EXP_EXPECT_IPV6 = 5,
        /// Expected protocol.
        NTA_EXP_EXPECT_L4PROTO = 6,
        /// Expected sport, dport.
        NTA_EXP_EXPECT_PORT = 7,
        /// Mask src, dst.
        NTA_EXP_MASK_IPV4 = 8,
        /// Mask src, dst (IPv6).
        NTA_EXP_MASK_IPV6 = 9,
        /// Mask protocol.
        NTA_EXP_MASK_L4PROTO = 10,
        /// Mask sport, dport.
        NTA_EXP_MASK_PORT = 11,
        /// BE32 seconds.
        NTA_EXP_TIMEOUT = 12,
        /// BE32 `NF_CT_EXPECT_*` flags.
        NTA_EXP_FLAGS = 13,
        /// BE32 class.
        NTA_EXP_CLASS = 14,
        /// NAT tuple src, dst.
        NTA_EXP_NAT_IPV4 = 15,
        /// NAT tuple ports.
        NTA_EXP_NAT_PORT = 16,
        /// NAT tuple protocol.
        NTA_EXP_NAT_L4PROTO = 17,
        /// BE32 NAT direction.
        NTA_EXP_NAT_DIR = 18,
        /// NUL-terminated helper name.
        NTA_EXP_HELPER_NAME = 19,
        /// NUL-terminated expectfn name.
        NTA_EXP_FN = 20,
    }
}

impl ExpAttrType {
    /// 1.4.7 `NTA_EXP_MAX`: the receiver rejects any type at or above it (§8).
    pub const MAX: u16 = 21;
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn test_debug_names() {
        assert_eq!(format!("{:?}", MsgType::CT_NEW), "CT_NEW");
        assert_eq!(format!("{:?}", MsgType(7)), "MsgType(0x7)");
        assert_eq!(format!("{:?}", AttrType::NTA_PORT), "NTA_PORT");
        assert_eq!(format!("{:?}", AttrType(40)), "AttrType(0x28)");
        assert_eq!(format!("{:?}", ExpAttrType(20)), "NTA_EXP_FN");
        assert_eq!(format!("{:?}", Flags(0x68)), "ACK|HELLO|HELLO_BACK");
        assert_eq!(format!("{:?}", Flags(0x88)), "ACK|0x80");
        assert_eq!(format!("{:?}", Flags(0)), "0");
    }

    #[test]
    fn test_flag_ops() {
        let f = Flags::ACK | Flags::HELLO;
        assert!(f.contains(Flags::ACK));
        assert!(!f.contains(Flags::ACK | Flags::NACK));
        assert!(f.has_range());
        assert!(!Flags::ALIVE.has_range());
        assert!(MsgType::CT_DEL.is_ct() && MsgType::EXP_NEW.is_exp() && !MsgType::CTL.is_data());
    }
}
