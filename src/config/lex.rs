//! The conntrackd.conf 1.4.7 lexer: bytes → tokens with a [`Span`] each.
//!
//! It reproduces the rules of the C daemon's flex scanner, quirks included, because the
//! token boundaries decide what the grammar accepts: flex picks the **longest** match and,
//! on a tie, the rule listed first. The rule order is: keywords, `on`/`yes`, `off`/`no`,
//! integer, signed integer, IPv4, IPv6, path, mode names, string, comment, blanks, any other
//! single character. Consequences (all confirmed against the Debian 1.4.7 binary):
//!
//! * keywords are case-sensitive (`Lockfile` is a plain word, hence a syntax error);
//! * booleans and mode names ignore case, and their character classes accidentally also
//!   accept `|` (`[o|O]`), so `o|` is `on`; `persistent` only takes an upper-case final `T`;
//! * a word made of 1–4 hex digits (`dead`, `a`) or anything with `::` is an IPv6 token;
//! * a path runs from `/` to the next space, `"` or newline: TAB, `#` and `}` are part of it;
//! * a comment needs a newline after it: `# x` at the very end of a file is a syntax error;
//! * numbers are decimal only and read like C `atoi` (overflow wraps, no error).

use super::error::Span;

macro_rules! keywords {
    ($($name:ident = $text:literal,)*) => {
        /// A keyword token: the exact, case-sensitive spelling of the 1.4.7 lexer.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) enum Kw { $($name,)* }

        impl Kw {
            /// Every keyword, in the lexer's order.
            pub(crate) const ALL: &'static [Kw] = &[$(Kw::$name,)*];

            /// The spelling in the configuration file.
            pub(crate) fn text(self) -> &'static str {
                match self { $(Kw::$name => $text,)* }
            }
        }
    };
}

keywords! {
    Unix = "UNIX",
    Ipv4Address = "IPv4_address",
    Ipv6Address = "IPv6_address",
    Ipv4DestinationAddress = "IPv4_Destination_Address",
    Ipv6DestinationAddress = "IPv6_Destination_Address",
    Ipv4Interface = "IPv4_interface",
    Ipv6Interface = "IPv6_interface",
    Interface = "Interface",
    Multicast = "Multicast",
    Udp = "UDP",
    Tcp = "TCP",
    HashSize = "HashSize",
    RefreshTime = "RefreshTime",
    CacheTimeout = "CacheTimeout",
    CommitTimeout = "CommitTimeout",
    HashLimit = "HashLimit",
    Path = "Path",
    Backlog = "Backlog",
    Group = "Group",
    Port = "Port",
    LogFile = "LogFile",
    Syslog = "Syslog",
    LockFile = "LockFile",
    General = "General",
    Sync = "Sync",
    Stats = "Stats",
    SocketBufferSize = "SocketBufferSize",
    SocketBufferSizeMaxGrown = "SocketBufferSizeMaxGrown",
    SocketBufferSizeMaxGrowth = "SocketBufferSizeMaxGrowth",
    NetlinkBufferSize = "NetlinkBufferSize",
    NetlinkBufferSizeMaxGrowth = "NetlinkBufferSizeMaxGrowth",
    Mode = "Mode",
    ResendQueueSize = "ResendQueueSize",
    Checksum = "Checksum",
    AckWindowSize = "ACKWindowSize",
    For = "for",
    SynSent = "SYN_SENT",
    SynRecv = "SYN_RECV",
    Established = "ESTABLISHED",
    FinWait = "FIN_WAIT",
    CloseWait = "CLOSE_WAIT",
    LastAck = "LAST_ACK",
    TimeWait = "TIME_WAIT",
    Close = "CLOSE",
    Closed = "CLOSED",
    Listen = "LISTEN",
    SndSocketBuffer = "SndSocketBuffer",
    RcvSocketBuffer = "RcvSocketBuffer",
    Filter = "Filter",
    Protocol = "Protocol",
    Address = "Address",
    State = "State",
    Accept = "Accept",
    Ignore = "Ignore",
    PurgeTimeout = "PurgeTimeout",
    From = "From",
    Userspace = "Userspace",
    Kernelspace = "Kernelspace",
    EventIterationLimit = "EventIterationLimit",
    Default = "Default",
    PollSecs = "PollSecs",
    NetlinkOverrunResync = "NetlinkOverrunResync",
    Nice = "Nice",
    Scheduler = "Scheduler",
    Type = "Type",
    Priority = "Priority",
    NetlinkEventsReliable = "NetlinkEventsReliable",
    DisableInternalCache = "DisableInternalCache",
    DisableExternalCache = "DisableExternalCache",
    Options = "Options",
    TcpWindowTracking = "TCPWindowTracking",
    ExpectationSync = "ExpectationSync",
    ErrorQueueLength = "ErrorQueueLength",
    Helper = "Helper",
    QueueNum = "QueueNum",
    QueueLen = "QueueLen",
    Policy = "Policy",
    ExpectMax = "ExpectMax",
    ExpectTimeout = "ExpectTimeout",
    Systemd = "Systemd",
    StartupResync = "StartupResync",
    Setup = "Setup",
}

/// A sync mode name as lexed (case-insensitive in the C lexer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ModeName {
    Alarm,
    Ftfw,
    Notrack,
    /// `nack`: the pre-1.0 name of FTFW (the C lexer logs a warning).
    Nack,
    /// `PERSISTENT`: the pre-1.0 name of ALARM (the C lexer logs a warning).
    Persistent,
}

impl ModeName {
    /// The canonical spelling.
    pub(crate) fn text(self) -> &'static str {
        match self {
            Self::Alarm => "ALARM",
            Self::Ftfw => "FTFW",
            Self::Notrack => "NOTRACK",
            Self::Nack => "nack",
            Self::Persistent => "PERSISTENT",
        }
    }
}

/// One token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    Kw(Kw),
    /// `on` or `yes`, any case.
    On,
    /// `off` or `no`, any case.
    Off,
    /// Unsigned decimal integer, with the value C `atoi` gives it.
    Number(i32),
    /// `+N` or `-N` (only `Nice` takes one).
    Signed(i32),
    /// An IPv4 or IPv6 address token, possibly with `/prefix`; not validated yet.
    Ip(String),
    /// A path: `/` up to the next space, `"` or newline.
    Path(String),
    /// A sync mode name.
    Mode(ModeName),
    /// A word: a letter followed by letters, digits, `.`, `-`, `_`.
    Word(String),
    /// Any other character (`{`, `}`, `;` …).
    Char(char),
    /// A NUL or non-ASCII character outside a comment or path. The C lexer returns such a
    /// byte as a (signed, so negative or zero) character code, which the bison parser takes
    /// for the end of the input: the file silently ends here. The lexer stops after it.
    Stop(char),
    /// End of input.
    Eof,
}

impl Tok {
    /// How the token reads in an error message ("found …").
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Kw(k) => format!("keyword `{}`", k.text()),
            Self::On => "boolean `on`".into(),
            Self::Off => "boolean `off`".into(),
            Self::Number(n) => format!("number `{n}`"),
            Self::Signed(n) => format!("signed number `{n:+}`"),
            Self::Ip(s) => format!("address `{s}`"),
            Self::Path(s) => format!("path `{s}`"),
            Self::Mode(m) => format!("mode name `{}`", m.text()),
            Self::Word(s) => format!("word `{s}`"),
            Self::Char(c) => format!("`{}`", c.escape_debug()),
            Self::Stop(c) => format!(
                "`{}` (the C daemon takes it for the end of the file)",
                c.escape_debug()
            ),
            Self::Eof => "end of file".into(),
        }
    }
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) span: Span,
}

/// Splits `text` into tokens; the last one is always [`Tok::Eof`]. Never fails: characters
/// that fit no rule become [`Tok::Char`] tokens, which the grammar then rejects.
pub(crate) fn lex(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut span = Span::new(1, 1);
    while pos < bytes.len() {
        let (len, rule) = longest_match(bytes, pos);
        // `len` is at least 1 and ends on a char boundary (every rule but the catch-all
        // matches ASCII only; the catch-all takes one whole char).
        let lexeme = &text[pos..pos + len];
        let tok = match rule {
            Rule::Keyword(k) => Some(Tok::Kw(k)),
            Rule::True => Some(Tok::On),
            Rule::False => Some(Tok::Off),
            Rule::Integer => Some(Tok::Number(atoi(lexeme))),
            Rule::Signed => Some(Tok::Signed(atoi(lexeme))),
            Rule::Ip4 | Rule::Ip6 => Some(Tok::Ip(lexeme.to_owned())),
            Rule::Path => Some(Tok::Path(lexeme.to_owned())),
            Rule::Mode(m) => Some(Tok::Mode(m)),
            Rule::Word => Some(Tok::Word(lexeme.to_owned())),
            Rule::Comment | Rule::Blank => None,
            Rule::Other => lexeme.chars().next().map(|c| {
                if c == '\0' || !c.is_ascii() {
                    Tok::Stop(c)
                } else {
                    Tok::Char(c)
                }
            }),
        };
        if let Some(tok) = tok {
            let stop = matches!(tok, Tok::Stop(_));
            out.push(Token { tok, span });
            if stop {
                break;
            }
        }
        for c in lexeme.chars() {
            if c == '\n' {
                span.line = span.line.saturating_add(1);
                span.col = 1;
            } else {
                span.col = span.col.saturating_add(1);
            }
        }
        pos += len;
    }
    out.push(Token {
        tok: Tok::Eof,
        span,
    });
    out
}

/// C `atoi` as glibc implements it: `strtol` (saturating at the `long` range), then
/// truncated to `int`. So `99999999999` silently becomes 1215752191.
pub(crate) fn atoi(s: &str) -> i32 {
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for b in digits.bytes() {
        let d = i64::from(b.wrapping_sub(b'0'));
        v = match v.checked_mul(10).and_then(|v| v.checked_add(d)) {
            Some(v) => v,
            None => {
                v = i64::MAX;
                break;
            }
        };
    }
    let v = if neg {
        if v == i64::MAX && digits.len() > 18 {
            i64::MIN
        } else {
            -v
        }
    } else {
        v
    };
    // Truncation to `int` is exactly what the C code does.
    #[allow(clippy::cast_possible_truncation)]
    let r = v as i32;
    r
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Keyword(Kw),
    True,
    False,
    Integer,
    Signed,
    Ip4,
    Ip6,
    Path,
    Mode(ModeName),
    Word,
    Comment,
    Blank,
    Other,
}

/// Longest match at `pos`; on a tie the earlier rule wins, as in flex.
fn longest_match(b: &[u8], pos: usize) -> (usize, Rule) {
    let s = &b[pos..];
    let mut best = (0, Rule::Other);
    let mut consider = |len: usize, rule: Rule| {
        if len > best.0 {
            best = (len, rule);
        }
    };
    for &k in Kw::ALL {
        if s.starts_with(k.text().as_bytes()) {
            consider(k.text().len(), Rule::Keyword(k));
        }
    }
    consider(ci_classes(s, &["on", "yes"]), Rule::True);
    consider(ci_classes(s, &["off", "no"]), Rule::False);
    consider(digits(s), Rule::Integer);
    if matches!(s.first(), Some(b'-' | b'+')) {
        let n = digits(&s[1..]);
        if n > 0 {
            consider(n + 1, Rule::Signed);
        }
    }
    consider(ip4(s), Rule::Ip4);
    consider(ip6(s), Rule::Ip6);
    if s.first() == Some(&b'/') {
        let n = s[1..]
            .iter()
            .take_while(|&&c| c != b'"' && c != b'\n' && c != b' ')
            .count();
        consider(n + 1, Rule::Path);
    }
    consider(ci_classes(s, &["alarm"]), Rule::Mode(ModeName::Alarm));
    consider(persistent(s), Rule::Mode(ModeName::Persistent));
    consider(ci_classes(s, &["ftfw"]), Rule::Mode(ModeName::Ftfw));
    consider(ci_classes(s, &["nack"]), Rule::Mode(ModeName::Nack));
    consider(ci_classes(s, &["notrack"]), Rule::Mode(ModeName::Notrack));
    if s.first().is_some_and(u8::is_ascii_alphabetic) {
        let n = s
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
            .count();
        consider(n, Rule::Word);
    }
    if s.first() == Some(&b'#') {
        // `#.*$`: `$` needs a newline after the comment; at end of file the rule does not
        // match and `#` falls through to the single-character rule.
        if let Some(n) = s.iter().position(|&c| c == b'\n') {
            consider(n, Rule::Comment);
        }
    }
    let blanks = s.iter().take_while(|&&c| c == b' ' || c == b'\t').count();
    consider(blanks, Rule::Blank);
    if matches!(s.first(), Some(b'\n' | b'\r')) {
        consider(1, Rule::Blank);
    }
    if best.0 == 0 {
        // The catch-all rule: one character (one whole UTF-8 sequence, so that slicing the
        // text stays on a char boundary; the C lexer would take one byte).
        let len = std::str::from_utf8(&s[..s.len().min(4)])
            .map_or_else(|e| e.valid_up_to(), |_| s.len().min(4));
        let first = if len == 0 {
            1
        } else {
            std::str::from_utf8(&s[..len])
                .ok()
                .and_then(|t| t.chars().next())
                .map_or(1, char::len_utf8)
        };
        best = (first, Rule::Other);
    }
    best
}

/// Matches one of `words` where each letter position is the C class `[x|X]`: either case,
/// or a literal `|`. Returns the longest length matched (0 if none).
fn ci_classes(s: &[u8], words: &[&str]) -> usize {
    words
        .iter()
        .filter(|w| {
            s.len() >= w.len()
                && w.bytes()
                    .zip(s)
                    .all(|(w, &c)| c == b'|' || c.eq_ignore_ascii_case(&w))
        })
        .map(|w| w.len())
        .max()
        .unwrap_or(0)
}

/// `[P|p][E|e]…[N|n][T|T]`: the last class of the C pattern lists `T` twice, so only an
/// upper-case final `T` (or `|`) is accepted.
fn persistent(s: &[u8]) -> usize {
    let n = ci_classes(s, &["persisten"]);
    if n == 9 && matches!(s.get(9), Some(b'T' | b'|')) {
        10
    } else {
        0
    }
}

fn digits(s: &[u8]) -> usize {
    s.iter().take_while(|c| c.is_ascii_digit()).count()
}

/// `/` followed by digits: the CIDR suffix of both address rules.
fn cidr(s: &[u8]) -> usize {
    if s.first() == Some(&b'/') {
        let n = digits(&s[1..]);
        if n > 0 {
            return n + 1;
        }
    }
    0
}

/// `d+.d+.d+.d+(/d+)?` (the C pattern's parts reduce to "one or more digits").
fn ip4(s: &[u8]) -> usize {
    let mut i = 0;
    for part in 0..4 {
        let n = digits(&s[i..]);
        if n == 0 {
            return 0;
        }
        i += n;
        if part < 3 {
            if s.get(i) != Some(&b'.') {
                return 0;
            }
            i += 1;
        }
    }
    i + cidr(&s[i..])
}

/// Longest match of the C IPv6 pattern, by simulating its automaton on a set of states:
///
/// * form 1: up to 7 parts of 1–4 hex digits each optionally followed by `:`, then `::`,
///   then up to 7 such parts (so `abcdef::` is accepted: parts `abcd` and `ef`);
/// * form 2: up to 7 groups `hhhh:`, then 1–4 hex digits;
///
/// each optionally followed by `/` and digits.
fn ip6(s: &[u8]) -> usize {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum St {
        /// Form 1 before `::`: at a part boundary with `k` parts.
        A(u8),
        /// Form 1 before `::`: inside part `k` with `h` digits.
        P0(u8, u8),
        /// Form 1: first `:` of `::` seen.
        C1,
        /// Form 1 after `::`: at a part boundary with `k` parts (accepting).
        B(u8),
        /// Form 1 after `::`: inside part `k` with `h` digits (accepting).
        P1(u8, u8),
        /// Form 2: after `k` groups `hhhh:` (start state is `F(0)`).
        F(u8),
        /// Form 2: inside the group after `k` full groups, with `h` digits (accepting).
        G(u8, u8),
    }
    fn accepting(st: St) -> bool {
        matches!(st, St::B(_) | St::P1(..) | St::G(..))
    }
    fn push(v: &mut Vec<St>, st: St) {
        if !v.contains(&st) {
            v.push(st);
        }
    }
    // Epsilon moves: a part may end without its optional `:`.
    fn close(v: &mut Vec<St>) {
        let mut i = 0;
        while i < v.len() {
            match v[i] {
                St::P0(k, _) => push(v, St::A(k)),
                St::P1(k, _) => push(v, St::B(k)),
                _ => {}
            }
            i += 1;
        }
    }
    let mut cur = vec![St::A(0), St::F(0)];
    let mut best = 0;
    for (i, &c) in s.iter().enumerate() {
        let mut next = Vec::new();
        let hex = c.is_ascii_hexdigit();
        for &st in &cur {
            match (st, c) {
                (St::A(k), _) if hex && k < 7 => push(&mut next, St::P0(k + 1, 1)),
                (St::A(_), b':') => push(&mut next, St::C1),
                (St::P0(k, h), _) if hex && h < 4 => push(&mut next, St::P0(k, h + 1)),
                (St::P0(k, _), b':') => {
                    push(&mut next, St::A(k));
                    push(&mut next, St::C1);
                }
                (St::C1, b':') => push(&mut next, St::B(0)),
                (St::B(k), _) if hex && k < 7 => push(&mut next, St::P1(k + 1, 1)),
                (St::P1(k, h), _) if hex && h < 4 => push(&mut next, St::P1(k, h + 1)),
                (St::P1(k, _), b':') => push(&mut next, St::B(k)),
                (St::F(k), _) if hex => push(&mut next, St::G(k, 1)),
                (St::G(k, h), _) if hex && h < 4 => push(&mut next, St::G(k, h + 1)),
                (St::G(k, _), b':') if k < 7 => push(&mut next, St::F(k + 1)),
                _ => {}
            }
        }
        close(&mut next);
        if next.is_empty() {
            break;
        }
        if next.iter().any(|&st| accepting(st)) {
            best = i + 1;
        }
        cur = next;
    }
    if best > 0 { best + cidr(&s[best..]) } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn test_keywords_case_sensitive() {
        assert_eq!(
            toks("LockFile Lockfile"),
            vec![
                Tok::Kw(Kw::LockFile),
                Tok::Word("Lockfile".into()),
                Tok::Eof
            ]
        );
        assert_eq!(toks("CLOSED")[0], Tok::Kw(Kw::Closed));
        assert_eq!(toks("UDPx")[0], Tok::Word("UDPx".into()));
    }

    #[test]
    fn test_booleans() {
        for s in ["on", "ON", "Yes", "yEs", "o|"] {
            assert_eq!(toks(s)[0], Tok::On, "{s}");
        }
        for s in ["off", "OFF", "no", "No"] {
            assert_eq!(toks(s)[0], Tok::Off, "{s}");
        }
        assert_eq!(toks("none")[0], Tok::Word("none".into()));
    }

    #[test]
    fn test_modes() {
        assert_eq!(toks("ftfw")[0], Tok::Mode(ModeName::Ftfw));
        assert_eq!(toks("Alarm")[0], Tok::Mode(ModeName::Alarm));
        assert_eq!(toks("NOTRACK")[0], Tok::Mode(ModeName::Notrack));
        assert_eq!(toks("NaCk")[0], Tok::Mode(ModeName::Nack));
        assert_eq!(toks("PERSISTENT")[0], Tok::Mode(ModeName::Persistent));
        assert_eq!(toks("persistenT")[0], Tok::Mode(ModeName::Persistent));
        assert_eq!(toks("persistent")[0], Tok::Word("persistent".into()));
    }

    #[test]
    fn test_numbers() {
        assert_eq!(
            toks("0x10"),
            vec![Tok::Number(0), Tok::Word("x10".into()), Tok::Eof]
        );
        assert_eq!(toks("99999999999")[0], Tok::Number(1_215_752_191));
        assert_eq!(toks("4294967295")[0], Tok::Number(-1));
        assert_eq!(toks("-5")[0], Tok::Signed(-5));
        assert_eq!(toks("+5")[0], Tok::Signed(5));
        assert_eq!(toks("1234")[0], Tok::Number(1234));
        assert_eq!(atoi("99999999999999999999999"), -1);
    }

    #[test]
    fn test_addresses() {
        assert_eq!(toks("10.1.2.3/24")[0], Tok::Ip("10.1.2.3/24".into()));
        assert_eq!(toks("999.1.1.1")[0], Tok::Ip("999.1.1.1".into()));
        assert_eq!(toks("fe80::1/64")[0], Tok::Ip("fe80::1/64".into()));
        assert_eq!(toks("::")[0], Tok::Ip("::".into()));
        assert_eq!(
            toks("1:2:3:4:5:6:7:8")[0],
            Tok::Ip("1:2:3:4:5:6:7:8".into())
        );
        assert_eq!(toks("dead")[0], Tok::Ip("dead".into()));
        assert_eq!(toks("a")[0], Tok::Ip("a".into()));
        assert_eq!(toks("deadbeef")[0], Tok::Word("deadbeef".into()));
        // Embedded IPv4 is not lexed as one address.
        assert_eq!(toks("::ffff:1.2.3.4")[0], Tok::Ip("::ffff:1".into()));
        assert_eq!(toks("::ffff:1.2.3.4")[1], Tok::Char('.'));
        assert_eq!(toks(":")[0], Tok::Char(':'));
    }

    #[test]
    fn test_paths_and_comments() {
        assert_eq!(toks("/x # c\n"), vec![Tok::Path("/x".into()), Tok::Eof]);
        assert_eq!(
            toks("/x\t# c\n"),
            vec![Tok::Path("/x\t#".into()), Tok::Ip("c".into()), Tok::Eof]
        );
        assert_eq!(toks("/x}")[0], Tok::Path("/x}".into()));
        assert_eq!(
            toks("# c"),
            vec![Tok::Char('#'), Tok::Ip("c".into()), Tok::Eof]
        );
        assert_eq!(toks("# c\n"), vec![Tok::Eof]);
    }

    #[test]
    fn test_spans() {
        let t = lex("General {\n\tHashSize 10\r\n}\n");
        let spans: Vec<_> = t.iter().map(|t| (t.span.line, t.span.col)).collect();
        assert_eq!(spans, vec![(1, 1), (1, 9), (2, 2), (2, 11), (3, 1), (4, 1)]);
    }

    #[test]
    fn test_words_and_chars() {
        assert_eq!(toks("eth0.5_x")[0], Tok::Word("eth0.5_x".into()));
        assert_eq!(toks(";")[0], Tok::Char(';'));
        assert_eq!(toks("é x"), vec![Tok::Stop('é'), Tok::Eof]);
        assert_eq!(
            toks("1\0 2"),
            vec![Tok::Number(1), Tok::Stop('\0'), Tok::Eof]
        );
        assert_eq!(
            toks("# é\n/é x"),
            vec![Tok::Path("/é".into()), Tok::Word("x".into()), Tok::Eof]
        );
        assert_eq!(toks("\"")[0], Tok::Char('"'));
    }
}
