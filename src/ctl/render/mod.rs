//! Text the C daemon prints, byte for byte.
//!
//! Scripts and monitoring parse `conntrackd -s` and `-i` output, so the layouts are facts of
//! the interface (reference control-and-cli.md §3, checked against Debian's 1.4.7 binary):
//! * [`stats`] — every `-s` layout, as functions of plain counter structs the daemon fills;
//! * [`entry`] — one `-i`/`-e` line per conntrack or expectation, in libnetfilter_conntrack's
//!   default text format, plus the cache suffixes;
//! * [`xml`] — the `-x` variant of those lines;
//! * [`log`] — the `[ctime] (pid=N) [level] message` line of the log file and console.

pub mod entry;
pub mod log;
pub mod stats;
pub mod xml;

pub use entry::{conntrack_line, dump_line, expect_line};
pub use log::{LogLevel, ctime, log_line};
pub use xml::{conntrack_xml, expect_xml};
