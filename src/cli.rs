//! conntrackd 1.4.7's command line: argv → [`Invocation`].
//!
//! The C daemon's parser has quirks that scripts written for it may rely on (reference:
//! control-and-cli.md §2.2), so they are reproduced here on purpose:
//! * an option is recognised by the second character of the argument alone (`Xk` = `-k`,
//!   `-stats` = `-s`);
//! * an optional sub-argument is consumed only when it does not start with `-`, and it
//!   matches by prefix (`-i e` = expect, `-s r` = runtime);
//! * for `-c/-i/-e/-F/-R` a word that matches nothing is not consumed but parsed as the next
//!   option; for `-s/-f` it is an error;
//! * an unknown option prints usage and exits **0**; several client options: the last wins.
//!
//! Long options (`--check-config`, `--takeover`) are ours and are matched before the quirk
//! rules.

use std::fmt;
use std::path::PathBuf;

/// The default configuration path, as the C daemon's.
pub const DEFAULT_CONFIG: &str = "/etc/conntrackd/conntrackd.conf";

/// Which table a client request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Connection-tracking entries (`ct`).
    Conntrack,
    /// Expectations (`expect`).
    Expect,
}

/// Which cache `-f` flushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushCache {
    /// Both caches (no argument).
    Both,
    /// `-f internal`.
    Internal,
    /// `-f external`.
    External,
}

/// `-s` sections, in the order the C daemon tries the prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsKind {
    /// No argument: the general summary.
    General,
    /// `network`.
    Network,
    /// `cache`.
    Cache,
    /// `runtime`.
    Runtime,
    /// `multicast` (an old name kept by 1.4.7; same request as `link`'s predecessor).
    Multicast,
    /// `link`.
    Link,
    /// `rsqueue`.
    ResendQueue,
    /// `process`.
    Process,
    /// `queue`.
    Queue,
    /// `ct`.
    Conntrack,
    /// `expect`.
    Expect,
}

const STATS_WORDS: [(&str, StatsKind); 10] = [
    ("network", StatsKind::Network),
    ("cache", StatsKind::Cache),
    ("runtime", StatsKind::Runtime),
    ("multicast", StatsKind::Multicast),
    ("link", StatsKind::Link),
    ("rsqueue", StatsKind::ResendQueue),
    ("process", StatsKind::Process),
    ("queue", StatsKind::Queue),
    ("ct", StatsKind::Conntrack),
    ("expect", StatsKind::Expect),
];

/// A request the client sends to a running daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `-c`: commit the external cache to the kernel.
    Commit(Option<Table>),
    /// `-f`: flush our caches.
    FlushCache(FlushCache),
    /// `-F`: flush the kernel table.
    FlushKernel(Option<Table>),
    /// `-i`: dump the internal cache (`xml` after `-x`).
    DumpInternal { table: Table, xml: bool },
    /// `-e`: dump the external cache.
    DumpExternal { table: Table, xml: bool },
    /// `-s`: statistics.
    Stats(StatsKind),
    /// `-R`: resync with the kernel table.
    Resync(Option<Table>),
    /// `-B`: bulk send.
    BulkSend,
    /// `-n`: request a resync from the peer.
    RequestResync,
    /// `-k`: stop the daemon.
    Kill,
    /// `-t`: schedule a purge.
    Purge,
}

/// What the process was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the daemon; `background` is `-d`.
    Daemon { background: bool },
    /// Send one request to the running daemon.
    Client(Request),
    /// Ours: parse the configuration, print a summary, exit.
    CheckConfig,
    /// Ours (`--takeover`): primary-backup.sh's `primary` transition in one process —
    /// commit, flush the caches, resync with the kernel, bulk send — stopping at the first
    /// step that fails (see `ctl::client::takeover`).
    Takeover,
    /// `-v`.
    Version,
    /// `-h`.
    Help,
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// What to do.
    pub command: Command,
    /// `-C FILE`, or [`DEFAULT_CONFIG`].
    pub config: PathBuf,
    /// Non-fatal remarks the C daemon prints while parsing (e.g. "Missing config filename").
    pub notes: Vec<String>,
}

/// Why the command line was refused, with the C daemon's exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// An option nobody knows: usage, and exit **0** (as the C daemon).
    UnknownOption(String),
    /// A bad `-s`/`-f` parameter: exit 1.
    UnknownParameter { option: char, word: String },
    /// `-x` without `-i`/`-e` before it, or `-d` mixed with a client request: exit 1.
    InvalidParameters,
}

impl CliError {
    /// The exit status the C daemon uses for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::UnknownOption(_) => 0,
            Self::UnknownParameter { .. } | Self::InvalidParameters => 1,
        }
    }

    /// Whether usage goes to stdout before the message, as the C daemon does.
    pub fn shows_usage(&self) -> bool {
        !matches!(self, Self::UnknownParameter { .. })
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownOption(o) => write!(f, "Unknown option: {o}"),
            Self::UnknownParameter { option, word } => {
                write!(f, "unknown parameter `{word}' for option `-{option}'")
            }
            Self::InvalidParameters => f.write_str("Invalid parameters"),
        }
    }
}

impl std::error::Error for CliError {}

/// Parses the arguments after the program name.
pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Invocation, CliError> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let mut config = None;
    let mut notes = Vec::new();
    let mut daemon = None;
    let mut request: Option<Request> = None;
    let mut check_config = false;
    let mut takeover = false;
    let mut early = None;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i];
        i += 1;
        if arg == "--check-config" {
            check_config = true;
            continue;
        }
        if arg == "--takeover" {
            takeover = true;
            continue;
        }
        let Some(opt) = arg.chars().nth(1) else {
            return Err(CliError::UnknownOption(arg.to_owned()));
        };
        match opt {
            'd' => daemon = Some(true),
            'v' => early = early.or(Some(Command::Version)),
            'h' => early = early.or(Some(Command::Help)),
            'C' => match args.get(i) {
                Some(path) => {
                    config = Some(PathBuf::from(path));
                    i += 1;
                }
                None => notes.push("Missing config filename".to_owned()),
            },
            'c' => request = Some(Request::Commit(table_arg(&args, &mut i))),
            'F' => request = Some(Request::FlushKernel(table_arg(&args, &mut i))),
            'R' => request = Some(Request::Resync(table_arg(&args, &mut i))),
            'i' | 'e' => {
                let table = table_arg(&args, &mut i).unwrap_or(Table::Conntrack);
                request = Some(if opt == 'i' {
                    Request::DumpInternal { table, xml: false }
                } else {
                    Request::DumpExternal { table, xml: false }
                });
            }
            'x' => match &mut request {
                Some(Request::DumpInternal { xml, .. } | Request::DumpExternal { xml, .. }) => {
                    *xml = true;
                }
                _ => return Err(CliError::InvalidParameters),
            },
            'f' => {
                let which = match word_arg(&args, &mut i) {
                    None => FlushCache::Both,
                    Some(w) if "internal".starts_with(w) => FlushCache::Internal,
                    Some(w) if "external".starts_with(w) => FlushCache::External,
                    Some(w) => {
                        return Err(CliError::UnknownParameter {
                            option: 'f',
                            word: w.into(),
                        });
                    }
                };
                request = Some(Request::FlushCache(which));
            }
            's' => {
                let kind = match word_arg(&args, &mut i) {
                    None => StatsKind::General,
                    Some(w) => STATS_WORDS
                        .iter()
                        .find(|(name, _)| name.starts_with(w))
                        .map(|&(_, k)| k)
                        .ok_or_else(|| CliError::UnknownParameter {
                            option: 's',
                            word: w.into(),
                        })?,
                };
                request = Some(Request::Stats(kind));
            }
            'B' => request = Some(Request::BulkSend),
            'n' => request = Some(Request::RequestResync),
            'k' => request = Some(Request::Kill),
            't' => request = Some(Request::Purge),
            _ => return Err(CliError::UnknownOption(arg.to_owned())),
        }
    }
    let command = if let Some(c) = early {
        c
    } else if check_config {
        Command::CheckConfig
    } else if takeover {
        // One transition per call: mixing it with `-d` or a single request is a mistake in
        // the caller's script, not something to guess about.
        if daemon.is_some() || request.is_some() {
            return Err(CliError::InvalidParameters);
        }
        Command::Takeover
    } else {
        match (daemon, request) {
            (Some(_), Some(_)) => return Err(CliError::InvalidParameters),
            (_, Some(r)) => Command::Client(r),
            (background, None) => Command::Daemon {
                background: background.unwrap_or(false),
            },
        }
    };
    Ok(Invocation {
        command,
        config: config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG)),
        notes,
    })
}

/// Takes the next argument as an optional sub-argument if it does not look like an option.
fn word_arg<'a>(args: &[&'a str], i: &mut usize) -> Option<&'a str> {
    let w = *args.get(*i)?;
    if w.starts_with('-') {
        return None;
    }
    *i += 1;
    Some(w)
}

/// `ct`/`expect` by prefix; a word that matches neither is left for the option loop.
fn table_arg(args: &[&str], i: &mut usize) -> Option<Table> {
    let w = *args.get(*i)?;
    if w.starts_with('-') || w.is_empty() {
        return None;
    }
    let table = if "ct".starts_with(w) {
        Table::Conntrack
    } else if "expect".starts_with(w) {
        Table::Expect
    } else {
        return None;
    };
    *i += 1;
    Some(table)
}

/// Our usage text (written for this project; the options are the C daemon's).
pub const USAGE: &str = "\
conntrackd (Rust), compatible with conntrackd v1.4.7
Usage: conntrackd [options]

Daemon options:
  -d                    run in the background
  -C FILE               configuration file (default /etc/conntrackd/conntrackd.conf)
  --check-config        parse the configuration, print a summary, and exit

Client options (talk to a running daemon):
  -c [ct|expect]        commit the external cache to the kernel
  -f [internal|external] flush the internal and/or external cache
  -F [ct|expect]        flush the kernel's conntrack table or expectation table
  -i [ct|expect]        dump the internal cache (-x for XML)
  -e [ct|expect]        dump the external cache (-x for XML)
  -x                    XML output, after -i or -e
  -s [network|cache|runtime|link|rsqueue|process|queue|ct|expect]
                        statistics
  -R [ct|expect]        resync the internal cache with the kernel table
  -B                    send a bulk update to the peers
  -n                    ask the peers for a resync
  -k                    stop the daemon
  -t                    flush the kernel table in a few seconds (purge)
  --takeover            become primary in one call: commit the external cache (-c),
                        flush both caches (-f), resync with the kernel (-R), bulk send
                        (-B); stops at the first failed step, exit 1 if one failed
  -v                    version
  -h                    this help
";

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Command {
        parse(args).unwrap().command
    }

    #[test]
    fn test_daemon_default() {
        let inv = parse::<&str>(&[]).unwrap();
        assert_eq!(inv.command, Command::Daemon { background: false });
        assert_eq!(inv.config, PathBuf::from(DEFAULT_CONFIG));
        assert_eq!(cmd(&["-d"]), Command::Daemon { background: true });
    }

    #[test]
    fn test_check_config_either_order() {
        for args in [
            &["--check-config", "-C", "/x.conf"][..],
            &["-C", "/x.conf", "--check-config"][..],
        ] {
            let inv = parse(args).unwrap();
            assert_eq!(inv.command, Command::CheckConfig);
            assert_eq!(inv.config, PathBuf::from("/x.conf"));
        }
    }

    #[test]
    fn test_takeover_either_order() {
        for args in [
            &["--takeover", "-C", "/x.conf"][..],
            &["-C", "/x.conf", "--takeover"][..],
        ] {
            let inv = parse(args).unwrap();
            assert_eq!(inv.command, Command::Takeover);
            assert_eq!(inv.config, PathBuf::from("/x.conf"));
        }
        assert_eq!(cmd(&["--takeover"]), Command::Takeover);
    }

    #[test]
    fn test_takeover_conflicts() {
        for args in [&["--takeover", "-d"][..], &["-c", "--takeover"][..]] {
            let err = parse(args).unwrap_err();
            assert_eq!(err, CliError::InvalidParameters, "{args:?}");
            assert_eq!(err.exit_code(), 1);
        }
        // `-v`/`-h` win over everything, as for the C daemon's other options.
        assert_eq!(cmd(&["--takeover", "-v"]), Command::Version);
    }

    #[test]
    fn test_second_character_only() {
        assert_eq!(cmd(&["Xk"]), Command::Client(Request::Kill));
        assert_eq!(
            cmd(&["-stats"]),
            Command::Client(Request::Stats(StatsKind::General))
        );
    }

    #[test]
    fn test_prefix_words() {
        assert_eq!(
            cmd(&["-i", "e"]),
            Command::Client(Request::DumpInternal {
                table: Table::Expect,
                xml: false
            })
        );
        assert_eq!(
            cmd(&["-s", "r"]),
            Command::Client(Request::Stats(StatsKind::Runtime))
        );
        assert_eq!(
            cmd(&["-s", "c"]),
            Command::Client(Request::Stats(StatsKind::Cache))
        );
        assert_eq!(
            cmd(&["-f", "ext"]),
            Command::Client(Request::FlushCache(FlushCache::External))
        );
        assert_eq!(
            cmd(&["-e", "-x"]),
            Command::Client(Request::DumpExternal {
                table: Table::Conntrack,
                xml: true
            })
        );
    }

    #[test]
    fn test_unmatched_word_is_next_option() {
        // `-c foo`: foo is not consumed, so it is parsed as an option and is unknown: exit 0.
        let err = parse(&["-c", "foo"]).unwrap_err();
        assert_eq!(err, CliError::UnknownOption("foo".into()));
        assert_eq!(err.exit_code(), 0);
    }

    #[test]
    fn test_errors_and_exit_codes() {
        let err = parse(&["-s", "bogus"]).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert_eq!(err.to_string(), "unknown parameter `bogus' for option `-s'");
        assert_eq!(parse(&["-x"]).unwrap_err(), CliError::InvalidParameters);
        assert_eq!(
            parse(&["-d", "-k"]).unwrap_err(),
            CliError::InvalidParameters
        );
        assert_eq!(parse(&["-"]).unwrap_err().exit_code(), 0);
    }

    #[test]
    fn test_last_client_option_wins_and_missing_config() {
        assert_eq!(cmd(&["-k", "-B"]), Command::Client(Request::BulkSend));
        let inv = parse(&["-C"]).unwrap();
        assert_eq!(inv.notes, vec!["Missing config filename".to_owned()]);
        assert_eq!(inv.config, PathBuf::from(DEFAULT_CONFIG));
    }
}
