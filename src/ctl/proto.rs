//! Control-socket framing: one request code in, plain text out.
//!
//! A request is exactly [`REQUEST_LEN`] bytes: a C `int` in host byte order (reference
//! control-and-cli.md §1.2). There is no reply framing at all: the daemon writes text and
//! closes the connection, so the only thing to decode is the request.
//!
//! The bytes come from any local process that can open the socket, so they are untrusted:
//! [`Packet::new_checked`] checks the length before [`Packet::code`] reads it, and nothing
//! here panics on any input. Codes are an open newtype ([`RequestCode`]): a value nobody knows
//! still decodes, and [`RequestCode::is_known`] tells the server whether to dispatch it.

use std::fmt;

use crate::cli::{self, FlushCache, StatsKind, Table};

/// Length of a request on the wire: `sizeof(int)` on every Linux ABI.
pub const REQUEST_LEN: usize = 4;

/// A control request code (the C daemon's `#define`s, kept under their C names so that a
/// reader can grep the reference).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestCode(pub i32);

macro_rules! request_codes {
    ($($(#[$doc:meta])* $name:ident = $value:expr,)*) => {
        impl RequestCode {
            $($(#[$doc])* pub const $name: Self = Self($value);)*

            /// Every code the 1.4.7 daemon defines, in numeric order.
            pub const ALL: &'static [Self] = &[$(Self::$name,)*];

            /// The C name of a known code.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $(Self::$name => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

request_codes! {
    /// `-F ct`: flush the kernel conntrack table.
    CT_FLUSH_MASTER = 0,
    /// `-R ct`: resync the internal cache with the kernel conntrack table.
    CT_RESYNC_MASTER = 1,
    /// `-i`, `-i ct`: dump the internal conntrack cache.
    CT_DUMP_INTERNAL = 16,
    /// `-e`, `-e ct`: dump the external conntrack cache.
    CT_DUMP_EXTERNAL = 17,
    /// `-c ct`: commit the external conntrack cache (blocks until done).
    CT_COMMIT = 18,
    /// Flush both conntrack caches; the 1.4.7 client never sends it.
    CT_FLUSH_CACHE = 19,
    /// `-k`: shut the daemon down (no reply).
    KILL = 20,
    /// `-s`, `-s ct`: general statistics.
    STATS = 21,
    /// `-B`: send every internal-cache object to the peers.
    SEND_BULK = 22,
    /// `-n`: ask the peers for a resync.
    REQUEST_DUMP = 23,
    /// `-i -x`: internal conntrack cache as XML.
    CT_DUMP_INT_XML = 24,
    /// `-e -x`: external conntrack cache as XML.
    CT_DUMP_EXT_XML = 25,
    /// `-t`: schedule the purge (PurgeTimeout) flush.
    RESET_TIMERS = 26,
    /// Defined but unused by 1.4.7.
    DEBUG_INFO = 27,
    /// `-s network`.
    STATS_NETWORK = 28,
    /// `-s cache`.
    STATS_CACHE = 29,
    /// `-s runtime`.
    STATS_RUNTIME = 30,
    /// `-s link` (and `-s multicast`).
    STATS_LINK = 31,
    /// `-s rsqueue` (FTFW).
    STATS_RSQUEUE = 32,
    /// `-f internal`.
    CT_FLUSH_INT_CACHE = 33,
    /// `-f external`.
    CT_FLUSH_EXT_CACHE = 34,
    /// `-s process`.
    STATS_PROCESS = 35,
    /// `-s queue`.
    STATS_QUEUE = 36,
    /// `-s expect`.
    EXP_STATS = 37,
    /// `-F expect`.
    EXP_FLUSH_MASTER = 38,
    /// `-R expect`.
    EXP_RESYNC_MASTER = 39,
    /// `-i expect`.
    EXP_DUMP_INTERNAL = 40,
    /// `-e expect`.
    EXP_DUMP_EXTERNAL = 41,
    /// `-c expect`.
    EXP_COMMIT = 42,
    /// `-F`: flush the kernel conntrack (and expectation) tables.
    ALL_FLUSH_MASTER = 43,
    /// `-R`: resync with every kernel table.
    ALL_RESYNC_MASTER = 44,
    /// `-f`: flush every cache.
    ALL_FLUSH_CACHE = 45,
    /// `-c`: commit every external cache (blocks until done).
    ALL_COMMIT = 46,
    /// `-i expect -x`.
    EXP_DUMP_INT_XML = 47,
    /// `-e expect -x`.
    EXP_DUMP_EXT_XML = 48,
}

impl RequestCode {
    /// Whether the 1.4.7 daemon defines this code. Unknown codes get no reply at all.
    pub fn is_known(self) -> bool {
        self.name().is_some()
    }

    /// The four bytes a client writes (host byte order, as the C `int`).
    pub fn to_bytes(self) -> [u8; REQUEST_LEN] {
        self.0.to_ne_bytes()
    }

    /// The code the 1.4.7 client sends for a parsed command-line request.
    pub fn from_request(req: cli::Request) -> Self {
        use cli::Request as R;
        match req {
            R::Commit(None) => Self::ALL_COMMIT,
            R::Commit(Some(Table::Conntrack)) => Self::CT_COMMIT,
            R::Commit(Some(Table::Expect)) => Self::EXP_COMMIT,
            R::FlushCache(FlushCache::Both) => Self::ALL_FLUSH_CACHE,
            R::FlushCache(FlushCache::Internal) => Self::CT_FLUSH_INT_CACHE,
            R::FlushCache(FlushCache::External) => Self::CT_FLUSH_EXT_CACHE,
            R::FlushKernel(None) => Self::ALL_FLUSH_MASTER,
            R::FlushKernel(Some(Table::Conntrack)) => Self::CT_FLUSH_MASTER,
            R::FlushKernel(Some(Table::Expect)) => Self::EXP_FLUSH_MASTER,
            R::Resync(None) => Self::ALL_RESYNC_MASTER,
            R::Resync(Some(Table::Conntrack)) => Self::CT_RESYNC_MASTER,
            R::Resync(Some(Table::Expect)) => Self::EXP_RESYNC_MASTER,
            R::DumpInternal { table, xml } => match (table, xml) {
                (Table::Conntrack, false) => Self::CT_DUMP_INTERNAL,
                (Table::Conntrack, true) => Self::CT_DUMP_INT_XML,
                (Table::Expect, false) => Self::EXP_DUMP_INTERNAL,
                (Table::Expect, true) => Self::EXP_DUMP_INT_XML,
            },
            R::DumpExternal { table, xml } => match (table, xml) {
                (Table::Conntrack, false) => Self::CT_DUMP_EXTERNAL,
                (Table::Conntrack, true) => Self::CT_DUMP_EXT_XML,
                (Table::Expect, false) => Self::EXP_DUMP_EXTERNAL,
                (Table::Expect, true) => Self::EXP_DUMP_EXT_XML,
            },
            R::Stats(kind) => match kind {
                StatsKind::General | StatsKind::Conntrack => Self::STATS,
                StatsKind::Network => Self::STATS_NETWORK,
                StatsKind::Cache => Self::STATS_CACHE,
                StatsKind::Runtime => Self::STATS_RUNTIME,
                // 1.4.7 sends the link request for the old name too (with a warning).
                StatsKind::Multicast | StatsKind::Link => Self::STATS_LINK,
                StatsKind::ResendQueue => Self::STATS_RSQUEUE,
                StatsKind::Process => Self::STATS_PROCESS,
                StatsKind::Queue => Self::STATS_QUEUE,
                StatsKind::Expect => Self::EXP_STATS,
            },
            R::BulkSend => Self::SEND_BULK,
            R::RequestResync => Self::REQUEST_DUMP,
            R::Kill => Self::KILL,
            R::Purge => Self::RESET_TIMERS,
        }
    }

    /// The command-line request that produces this code, for the codes the 1.4.7 client can
    /// send. Where two spellings send the same code (`-s` / `-s ct`, `-i` / `-i ct`) the
    /// shorter one is returned; 19, 27 and unknown codes give `None`.
    pub fn to_request(self) -> Option<cli::Request> {
        use cli::Request as R;
        let dump = |table, xml| (table, xml);
        Some(match self {
            Self::CT_FLUSH_MASTER => R::FlushKernel(Some(Table::Conntrack)),
            Self::CT_RESYNC_MASTER => R::Resync(Some(Table::Conntrack)),
            Self::CT_DUMP_INTERNAL | Self::CT_DUMP_INT_XML => {
                let (table, xml) = dump(Table::Conntrack, self == Self::CT_DUMP_INT_XML);
                R::DumpInternal { table, xml }
            }
            Self::CT_DUMP_EXTERNAL | Self::CT_DUMP_EXT_XML => {
                let (table, xml) = dump(Table::Conntrack, self == Self::CT_DUMP_EXT_XML);
                R::DumpExternal { table, xml }
            }
            Self::EXP_DUMP_INTERNAL | Self::EXP_DUMP_INT_XML => {
                let (table, xml) = dump(Table::Expect, self == Self::EXP_DUMP_INT_XML);
                R::DumpInternal { table, xml }
            }
            Self::EXP_DUMP_EXTERNAL | Self::EXP_DUMP_EXT_XML => {
                let (table, xml) = dump(Table::Expect, self == Self::EXP_DUMP_EXT_XML);
                R::DumpExternal { table, xml }
            }
            Self::CT_COMMIT => R::Commit(Some(Table::Conntrack)),
            Self::KILL => R::Kill,
            Self::STATS => R::Stats(StatsKind::General),
            Self::SEND_BULK => R::BulkSend,
            Self::REQUEST_DUMP => R::RequestResync,
            Self::RESET_TIMERS => R::Purge,
            Self::STATS_NETWORK => R::Stats(StatsKind::Network),
            Self::STATS_CACHE => R::Stats(StatsKind::Cache),
            Self::STATS_RUNTIME => R::Stats(StatsKind::Runtime),
            Self::STATS_LINK => R::Stats(StatsKind::Link),
            Self::STATS_RSQUEUE => R::Stats(StatsKind::ResendQueue),
            Self::CT_FLUSH_INT_CACHE => R::FlushCache(FlushCache::Internal),
            Self::CT_FLUSH_EXT_CACHE => R::FlushCache(FlushCache::External),
            Self::STATS_PROCESS => R::Stats(StatsKind::Process),
            Self::STATS_QUEUE => R::Stats(StatsKind::Queue),
            Self::EXP_STATS => R::Stats(StatsKind::Expect),
            Self::EXP_FLUSH_MASTER => R::FlushKernel(Some(Table::Expect)),
            Self::EXP_RESYNC_MASTER => R::Resync(Some(Table::Expect)),
            Self::EXP_COMMIT => R::Commit(Some(Table::Expect)),
            Self::ALL_FLUSH_MASTER => R::FlushKernel(None),
            Self::ALL_RESYNC_MASTER => R::Resync(None),
            Self::ALL_FLUSH_CACHE => R::FlushCache(FlushCache::Both),
            Self::ALL_COMMIT => R::Commit(None),
            _ => return None,
        })
    }
}

impl fmt::Debug for RequestCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "RequestCode({})", self.0),
        }
    }
}

impl fmt::Display for RequestCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "unknown request {}", self.0),
        }
    }
}

/// Why a request could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtoError {
    /// Fewer than [`REQUEST_LEN`] bytes arrived before EOF or the read timeout.
    Short {
        /// How many bytes did arrive.
        len: usize,
    },
    /// A well-formed request with a code the 1.4.7 daemon does not define.
    Unknown(RequestCode),
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Short { len } => {
                write!(f, "short request: {len} of {REQUEST_LEN} bytes")
            }
            Self::Unknown(code) => write!(f, "{code}"),
        }
    }
}

impl std::error::Error for ProtoError {}

/// A view over the bytes of one request (named as smoltcp's wire views).
///
/// After [`Packet::new_checked`] (or [`Packet::check_len`]) succeeds, no accessor panics.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; call [`Self::check_len`] before reading.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer that must hold at least one whole request.
    pub fn new_checked(buffer: T) -> Result<Self, ProtoError> {
        let req = Self::new_unchecked(buffer);
        req.check_len()?;
        Ok(req)
    }

    /// Checks that the buffer holds a whole request.
    pub fn check_len(&self) -> Result<(), ProtoError> {
        let len = self.buffer.as_ref().len();
        if len < REQUEST_LEN {
            return Err(ProtoError::Short { len });
        }
        Ok(())
    }

    /// The request code (any value, known or not).
    ///
    /// # Panics
    /// Only if [`Self::check_len`] would have failed.
    pub fn code(&self) -> RequestCode {
        let b = self.buffer.as_ref();
        RequestCode(i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Decodes a request and refuses codes the daemon does not define; extra bytes after the
/// first four are ignored, as the C daemon reads exactly four.
pub fn decode(bytes: &[u8]) -> Result<RequestCode, ProtoError> {
    let code = Packet::new_checked(bytes)?.code();
    if code.is_known() {
        Ok(code)
    } else {
        Err(ProtoError::Unknown(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cli::Request as R;

    #[test]
    fn test_parse() {
        // STATS = 21, little-endian on x86: 15 00 00 00.
        let bytes = RequestCode::STATS.to_bytes();
        assert_eq!(decode(&bytes), Ok(RequestCode::STATS));
        assert_eq!(RequestCode(21), RequestCode::STATS);
        assert_eq!(format!("{:?}", RequestCode(21)), "STATS");
        assert_eq!(format!("{:?}", RequestCode(99)), "RequestCode(99)");
    }

    #[test]
    fn test_impossible_len() {
        for len in 0..REQUEST_LEN {
            assert_eq!(decode(&[0u8; 3][..len]), Err(ProtoError::Short { len }));
        }
    }

    #[test]
    fn test_unknown_codes() {
        for code in [2, 15, 49, 99, -1, i32::MIN, i32::MAX] {
            let err = decode(&code.to_ne_bytes()).unwrap_err();
            assert_eq!(err, ProtoError::Unknown(RequestCode(code)));
        }
        // Trailing bytes are ignored, as the C daemon reads exactly four.
        assert_eq!(decode(&[20, 0, 0, 0, 9, 9]), Ok(RequestCode::KILL));
    }

    #[test]
    fn test_any_bytes_never_panic() {
        // A seeded xorshift stands in for a fuzzer: every length 0..=8, every byte pattern
        // family; decode must answer, and agree with the checked view.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            let len = (x >> 60) as usize % 9;
            let input = &bytes[..len];
            match decode(input) {
                Ok(code) => assert!(code.is_known() && len >= REQUEST_LEN),
                Err(ProtoError::Short { len: l }) => assert_eq!(l, len),
                Err(ProtoError::Unknown(code)) => {
                    assert_eq!(Packet::new_checked(input).unwrap().code(), code);
                }
            }
        }
    }

    #[test]
    fn test_table_matches_reference() {
        // control-and-cli.md §1.3: 0, 1 and 16..=48.
        let codes: Vec<i32> = RequestCode::ALL.iter().map(|c| c.0).collect();
        let expected: Vec<i32> = [0, 1].into_iter().chain(16..=48).collect();
        assert_eq!(codes, expected);
    }

    #[test]
    fn test_request_mapping() {
        let cases = [
            (R::Commit(None), 46),
            (R::Commit(Some(Table::Conntrack)), 18),
            (R::Commit(Some(Table::Expect)), 42),
            (R::FlushCache(FlushCache::Both), 45),
            (R::FlushCache(FlushCache::Internal), 33),
            (R::FlushCache(FlushCache::External), 34),
            (R::FlushKernel(None), 43),
            (R::FlushKernel(Some(Table::Conntrack)), 0),
            (R::FlushKernel(Some(Table::Expect)), 38),
            (R::Resync(None), 44),
            (R::Resync(Some(Table::Conntrack)), 1),
            (R::Resync(Some(Table::Expect)), 39),
            (
                R::DumpInternal {
                    table: Table::Conntrack,
                    xml: false,
                },
                16,
            ),
            (
                R::DumpInternal {
                    table: Table::Conntrack,
                    xml: true,
                },
                24,
            ),
            (
                R::DumpInternal {
                    table: Table::Expect,
                    xml: false,
                },
                40,
            ),
            (
                R::DumpInternal {
                    table: Table::Expect,
                    xml: true,
                },
                47,
            ),
            (
                R::DumpExternal {
                    table: Table::Conntrack,
                    xml: false,
                },
                17,
            ),
            (
                R::DumpExternal {
                    table: Table::Conntrack,
                    xml: true,
                },
                25,
            ),
            (
                R::DumpExternal {
                    table: Table::Expect,
                    xml: false,
                },
                41,
            ),
            (
                R::DumpExternal {
                    table: Table::Expect,
                    xml: true,
                },
                48,
            ),
            (R::Stats(StatsKind::General), 21),
            (R::Stats(StatsKind::Conntrack), 21),
            (R::Stats(StatsKind::Network), 28),
            (R::Stats(StatsKind::Cache), 29),
            (R::Stats(StatsKind::Runtime), 30),
            (R::Stats(StatsKind::Multicast), 31),
            (R::Stats(StatsKind::Link), 31),
            (R::Stats(StatsKind::ResendQueue), 32),
            (R::Stats(StatsKind::Process), 35),
            (R::Stats(StatsKind::Queue), 36),
            (R::Stats(StatsKind::Expect), 37),
            (R::BulkSend, 22),
            (R::RequestResync, 23),
            (R::Kill, 20),
            (R::Purge, 26),
        ];
        for (req, code) in cases {
            assert_eq!(RequestCode::from_request(req), RequestCode(code), "{req:?}");
        }
        // Round trip for every code the client can send.
        for &code in RequestCode::ALL {
            match code.to_request() {
                Some(req) => assert_eq!(RequestCode::from_request(req), code),
                None => assert!(matches!(code.0, 19 | 27), "{code:?}"),
            }
        }
    }
}
