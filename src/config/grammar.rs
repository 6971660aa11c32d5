//! The conntrackd.conf 1.4.7 grammar as a table, and the wording of grammar errors.
//!
//! Every statement of the file has the form `Keyword args… [{ body }]`; [`shape`] says, for
//! each block ([`Ctx`]) and keyword, what must follow. The table restates the C daemon's
//! bison rules (read_config_yy.y of 1.4.7); where the man page says otherwise, the parser
//! wins (e.g. `NetlinkEventsReliable` is not allowed in `Stats`, `Lockfile` does not exist).

use super::lex::{Kw, Tok};

/// A block of the file: what may appear between its braces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Ctx {
    Top,
    General,
    Unix,
    Scheduler,
    Filter,
    ProtocolList,
    AddressList,
    StateList,
    Sync,
    Multicast,
    Udp,
    Tcp,
    ModeAlarm,
    ModeFtfw,
    ModeNotrack,
    Options,
    ExpectList,
    Stats,
    Helper,
    HelperType,
    Policy,
}

impl Ctx {
    /// How the block reads in messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Top => "the top level",
            Self::General => "`General`",
            Self::Unix => "`UNIX`",
            Self::Scheduler => "`Scheduler`",
            Self::Filter => "`Filter`",
            Self::ProtocolList => "`Protocol` list",
            Self::AddressList => "`Address` list",
            Self::StateList => "`State` list",
            Self::Sync => "`Sync`",
            Self::Multicast => "`Multicast`",
            Self::Udp => "`UDP`",
            Self::Tcp => "`TCP`",
            Self::ModeAlarm => "`Mode ALARM`",
            Self::ModeFtfw => "`Mode FTFW`",
            Self::ModeNotrack => "`Mode NOTRACK`",
            Self::Options => "`Options`",
            Self::ExpectList => "`ExpectationSync` list",
            Self::Stats => "`Stats`",
            Self::Helper => "`Helper`",
            Self::HelperType => "`Helper Type`",
            Self::Policy => "`Policy`",
        }
    }

    const STMT_BLOCKS: &'static [Self] = &[
        Self::Top,
        Self::General,
        Self::Unix,
        Self::Scheduler,
        Self::Filter,
        Self::AddressList,
        Self::Sync,
        Self::Multicast,
        Self::Udp,
        Self::Tcp,
        Self::ModeAlarm,
        Self::ModeFtfw,
        Self::ModeNotrack,
        Self::Options,
        Self::Stats,
        Self::Helper,
        Self::HelperType,
        Self::Policy,
    ];
}

/// What must follow a keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Num,
    Signed,
    Path,
    Word,
    Ip,
    Bool,
    BoolOrPath,
    BoolOrWord,
    BoolOrNum,
    /// `{ … }`.
    Block(Ctx),
    /// `[Default] { … }`.
    OptDefaultBlock(Ctx),
    /// `[From Userspace|From Kernelspace] { … }`.
    FilterBlock,
    /// `Accept|Ignore { … }`.
    LogicBlock(Ctx),
    /// `ALARM|FTFW|NOTRACK { … }`.
    ModeBlock,
    /// `on|off` or `{ word … }`.
    BoolOrWordList,
    /// `Type helper l3 l4 { … }` (Helper blocks).
    HelperType,
    /// `Policy name { … }`.
    WordBlock(Ctx),
}

/// The grammar table: what `kw` takes inside `ctx`, or `None` if it is not allowed there.
pub(crate) fn shape(ctx: Ctx, kw: Kw) -> Option<Shape> {
    use Kw as K;
    use Shape as S;
    let s = match (ctx, kw) {
        (Ctx::Top, K::General) => S::Block(Ctx::General),
        (Ctx::Top, K::Sync) => S::Block(Ctx::Sync),
        (Ctx::Top, K::Stats) => S::Block(Ctx::Stats),
        (Ctx::Top, K::Helper) => S::Block(Ctx::Helper),

        (Ctx::General, K::HashSize | K::HashLimit) => S::Num,
        (Ctx::General | Ctx::Stats, K::LogFile) => S::BoolOrPath,
        (Ctx::General | Ctx::Stats, K::Syslog) => S::BoolOrWord,
        (Ctx::General, K::LockFile) => S::Path,
        (Ctx::General, K::Unix) => S::Block(Ctx::Unix),
        (
            Ctx::General,
            K::NetlinkBufferSize
            | K::SocketBufferSize
            | K::NetlinkBufferSizeMaxGrowth
            | K::SocketBufferSizeMaxGrown
            | K::SocketBufferSizeMaxGrowth
            | K::EventIterationLimit
            | K::PollSecs,
        ) => S::Num,
        (Ctx::General, K::Filter) => S::FilterBlock,
        (Ctx::General, K::NetlinkOverrunResync) => S::BoolOrNum,
        (Ctx::General, K::NetlinkEventsReliable | K::Systemd) => S::Bool,
        (Ctx::General, K::Nice) => S::Signed,
        (Ctx::General, K::Scheduler) => S::Block(Ctx::Scheduler),

        (Ctx::Unix, K::Path) => S::Path,
        (Ctx::Unix, K::Backlog) => S::Num,
        (Ctx::Scheduler, K::Type) => S::Word,
        (Ctx::Scheduler, K::Priority) => S::Num,

        (Ctx::Filter, K::Protocol) => S::LogicBlock(Ctx::ProtocolList),
        (Ctx::Filter, K::Address) => S::LogicBlock(Ctx::AddressList),
        (Ctx::Filter, K::State) => S::LogicBlock(Ctx::StateList),
        (Ctx::AddressList, K::Ipv4Address | K::Ipv6Address) => S::Ip,

        (
            Ctx::Sync | Ctx::ModeAlarm,
            K::RefreshTime | K::CacheTimeout | K::CommitTimeout | K::PurgeTimeout,
        ) => S::Num,
        (Ctx::Sync, K::Multicast) => S::OptDefaultBlock(Ctx::Multicast),
        (Ctx::Sync, K::Udp) => S::OptDefaultBlock(Ctx::Udp),
        (Ctx::Sync, K::Tcp) => S::OptDefaultBlock(Ctx::Tcp),
        (Ctx::Sync, K::Mode) => S::ModeBlock,
        (Ctx::Sync, K::Options) => S::Block(Ctx::Options),

        (Ctx::ModeFtfw | Ctx::ModeNotrack, K::CommitTimeout | K::PurgeTimeout) => S::Num,
        (Ctx::ModeFtfw, K::ResendQueueSize | K::AckWindowSize) => S::Num,
        (Ctx::ModeFtfw | Ctx::ModeNotrack, K::DisableExternalCache | K::StartupResync) => S::Bool,
        (Ctx::ModeNotrack, K::DisableInternalCache) => S::Bool,

        (Ctx::Options, K::TcpWindowTracking) => S::Bool,
        (Ctx::Options, K::ExpectationSync) => S::BoolOrWordList,

        (Ctx::Multicast | Ctx::Udp | Ctx::Tcp, K::Ipv4Address | K::Ipv6Address) => S::Ip,
        (Ctx::Multicast, K::Ipv4Interface | K::Ipv6Interface) => S::Ip,
        (Ctx::Udp | Ctx::Tcp, K::Ipv4DestinationAddress | K::Ipv6DestinationAddress) => S::Ip,
        (Ctx::Multicast | Ctx::Udp | Ctx::Tcp, K::Interface) => S::Word,
        (Ctx::Multicast, K::Group) => S::Num,
        (Ctx::Udp | Ctx::Tcp, K::Port) => S::Num,
        (Ctx::Multicast | Ctx::Udp | Ctx::Tcp, K::SndSocketBuffer | K::RcvSocketBuffer) => S::Num,
        (Ctx::Multicast | Ctx::Udp | Ctx::Tcp, K::Checksum) => S::Bool,
        (Ctx::Tcp, K::ErrorQueueLength) => S::Num,

        (Ctx::Helper, K::Setup) => S::Bool,
        // The C grammar lets queue and policy lines appear directly in `Helper` too, and
        // `Type` blocks nest (they are one recursive rule).
        (Ctx::Helper | Ctx::HelperType, K::Type) => S::HelperType,
        (Ctx::Helper | Ctx::HelperType, K::QueueNum | K::QueueLen) => S::Num,
        (Ctx::Helper | Ctx::HelperType, K::Policy) => S::WordBlock(Ctx::Policy),
        (Ctx::Policy, K::ExpectMax | K::ExpectTimeout) => S::Num,
        _ => return None,
    };
    Some(s)
}

/// The TCP state keywords of `State` filters.
pub(crate) fn tcp_state(k: Kw) -> bool {
    matches!(
        k,
        Kw::SynSent
            | Kw::SynRecv
            | Kw::Established
            | Kw::FinWait
            | Kw::CloseWait
            | Kw::LastAck
            | Kw::TimeWait
            | Kw::Close
            | Kw::Closed
            | Kw::Listen
    )
}

/// Keywords of 1.4.2 that 1.4.7 no longer knows, with what replaces them.
const REMOVED: &[(&str, &str)] = &[
    // Spellings of the man page that the 1.4.7 lexer does not know.
    (
        "Lockfile",
        "the man page's spelling; the keyword is `LockFile`",
    ),
    (
        "IPv6_Destionation_Address",
        "the man page's misspelling; the keyword is `IPv6_Destination_Address`",
    ),
    (
        "IgnoreProtocol",
        "use `General { Filter { Protocol Ignore { … } } }`",
    ),
    (
        "IgnoreTrafficFor",
        "use `General { Filter { Address Ignore { … } } }`",
    ),
    ("StripNAT", "it had no effect; delete it"),
    ("RelaxTransitions", "it had no effect; delete it"),
    ("DelayDestroyMessages", "it had no effect; delete it"),
    (
        "ListenTo",
        "delete it (links are configured in `Multicast`/`UDP`/`TCP`)",
    ),
    (
        "Replicate",
        "use `General { Filter { State Accept { … for TCP } } }`",
    ),
    ("CacheWriteThrough", "delete it"),
    ("DestroyTimeout", "delete it"),
    ("ResendBufferSize", "use `ResendQueueSize` (in entries)"),
    (
        "Family",
        "delete it (the family follows from the addresses)",
    ),
    ("LogFileBufferSize", "delete it"),
    ("McastSndSocketBuffer", "use `SndSocketBuffer`"),
    ("McastRcvSocketBuffer", "use `RcvSocketBuffer`"),
];

/// Extra words for the "found X" message: removed keywords, wrong letter case.
pub(crate) fn hint(tok: &Tok, ctx: Ctx) -> String {
    let Tok::Word(w) = tok else {
        return String::new();
    };
    if let Some((k, how)) = REMOVED.iter().find(|(k, _)| k == w) {
        if matches!(*k, "Lockfile" | "IPv6_Destionation_Address") {
            return format!(" ({how})");
        }
        return format!(" (a 1.4.2 keyword removed in 1.4.7: {how})");
    }
    if let Some(k) = Kw::ALL.iter().find(|k| k.text().eq_ignore_ascii_case(w)) {
        let here = if shape(ctx, *k).is_some() {
            ""
        } else {
            ", which is not allowed here either"
        };
        return format!(
            " (keywords are case-sensitive: did you mean `{}`{here}?)",
            k.text()
        );
    }
    String::new()
}

/// Keywords that older versions or the man page put somewhere the 1.4.7 parser refuses.
fn moved(ctx: Ctx, k: Kw) -> &'static str {
    match (ctx, k) {
        (Ctx::Sync, Kw::Checksum) => " (1.4.2 accepted it directly in `Sync`)",
        (Ctx::Multicast, Kw::Backlog) => " (1.4.2 ignored it in `Multicast`; delete it)",
        // The 1.4.7 man page documents it in Stats, but the parser only knows it in General.
        (Ctx::Stats, Kw::NetlinkEventsReliable) => {
            " (the man page lists it in `Stats`, but the 1.4.7 parser does not)"
        }
        _ => "",
    }
}

/// The message for a token that cannot start a statement in `ctx`.
pub(crate) fn misplaced(tok: &Tok, ctx: Ctx) -> String {
    if let Tok::Kw(k) = tok {
        let homes: Vec<&str> = Ctx::STMT_BLOCKS
            .iter()
            .filter(|c| shape(**c, *k).is_some())
            .map(|c| c.name())
            .collect();
        if !homes.is_empty() {
            return format!(
                "keyword `{}` is not allowed in {}; it belongs in {}{}",
                k.text(),
                ctx.name(),
                homes.join(" or "),
                moved(ctx, *k)
            );
        }
    }
    format!(
        "found {}{}, expected a keyword of {} or `}}`",
        tok.describe(),
        hint(tok, ctx),
        ctx.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_shape_table() {
        assert_eq!(shape(Ctx::General, Kw::HashSize), Some(Shape::Num));
        assert_eq!(shape(Ctx::Stats, Kw::NetlinkEventsReliable), None);
        assert_eq!(shape(Ctx::ModeFtfw, Kw::RefreshTime), None);
        assert_eq!(shape(Ctx::ModeAlarm, Kw::RefreshTime), Some(Shape::Num));
        assert_eq!(shape(Ctx::Multicast, Kw::Port), None);
        assert_eq!(shape(Ctx::Udp, Kw::Group), None);
        assert_eq!(shape(Ctx::Tcp, Kw::ErrorQueueLength), Some(Shape::Num));
        assert_eq!(shape(Ctx::Udp, Kw::ErrorQueueLength), None);
        assert_eq!(shape(Ctx::Sync, Kw::Checksum), None);
        assert_eq!(shape(Ctx::General, Kw::Nice), Some(Shape::Signed));
        assert_eq!(shape(Ctx::Helper, Kw::QueueNum), Some(Shape::Num));
    }

    #[test]
    fn test_every_keyword_has_a_home_or_is_an_argument() {
        let args = [
            Kw::For,
            Kw::Accept,
            Kw::Ignore,
            Kw::From,
            Kw::Userspace,
            Kw::Kernelspace,
            Kw::Default,
        ];
        for &k in Kw::ALL {
            let home = Ctx::STMT_BLOCKS.iter().any(|c| shape(*c, k).is_some());
            assert!(home || args.contains(&k) || tcp_state(k), "{k:?}");
        }
    }

    #[test]
    fn test_hint_case_and_removed() {
        let h = hint(&Tok::Word("hashsize".into()), Ctx::General);
        assert!(h.contains("did you mean `HashSize`"));
        let h = hint(&Tok::Word("hashsize".into()), Ctx::Stats);
        assert!(h.contains("not allowed here either"));
        assert!(hint(&Tok::Word("StripNAT".into()), Ctx::Top).contains("removed"));
        assert_eq!(hint(&Tok::Word("eth0".into()), Ctx::Top), "");
    }
}
