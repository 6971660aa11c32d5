//! The `conntrack` CLI (conntrack-tools) run inside a namespace: the kernel's view, as an
//! oracle that shares no code with ours.

use super::netns::NetNs;

/// The conntrack table of `ns` (`conntrack -L -o extended`), one entry per line, sorted.
///
/// Lines start with the layer-3 name and number, e.g.
/// `ipv4     2 tcp      6 431999 ESTABLISHED src=... [ASSURED] mark=0 use=1`; the timeout
/// (5th token) counts down, so compare with [`strip_volatile`] applied.
pub(crate) fn ct_list(ns: &NetNs) -> Vec<String> {
    sorted_lines(&ns.expect_ok(&["conntrack", "-L", "-o", "extended"]))
}

/// The expectation table of `ns`, IPv4 and IPv6, sorted. Each line starts with the
/// remaining timeout in seconds, e.g. `299 proto=6 src=10.231.1.1 dst=10.231.1.2 sport=0
/// dport=50000 mask-src=... master-src=... sport=40000 dport=21 class=0 helper=ftp`.
pub(crate) fn exp_list(ns: &NetNs) -> Vec<String> {
    // Unlike `conntrack -L`, `conntrack -L expect` without `-f` lists IPv4 only.
    sorted_lines(&ns.expect_sh("conntrack -L expect -f ipv4 && conntrack -L expect -f ipv6"))
}

/// Number of conntrack entries in `ns` (`conntrack -C`).
pub(crate) fn ct_count(ns: &NetNs) -> usize {
    let out = ns.expect_ok(&["conntrack", "-C"]);
    out.trim()
        .parse()
        .unwrap_or_else(|e| panic!("conntrack -C printed {out:?}: {e}"))
}

/// Creates one entry: `conntrack -I ARGS`, e.g.
/// `["-p", "tcp", "-s", "10.231.9.1", "-d", "10.231.9.2", "--sport", "40000", "--dport",
/// "80", "--state", "ESTABLISHED", "-t", "120"]`. Panics if conntrack refuses it.
///
/// About 400 entries/s through `ip netns exec`: fine for a handful, never for load.
pub(crate) fn ct_insert(ns: &NetNs, args: &[&str]) {
    let argv: Vec<&str> = ["conntrack", "-I"].iter().chain(args).copied().collect();
    ns.expect_ok(&argv);
}

/// Deletes every conntrack entry of `ns` (`conntrack -F`).
pub(crate) fn ct_flush(ns: &NetNs) {
    ns.expect_ok(&["conntrack", "-F"]);
}

/// Deletes every expectation of `ns` (`conntrack -F expect`, which covers both families).
pub(crate) fn exp_flush(ns: &NetNs) {
    ns.expect_ok(&["conntrack", "-F", "expect"]);
}

/// Removes what changes between two listings of the same entry: the countdown timeout of a
/// `ct_list` line (5th token) or an `exp_list` line (1st token), and `use=`/`id=` fields.
/// Lets a test compare the tables of two namespaces line by line.
pub(crate) fn strip_volatile(line: &str) -> String {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let timeout_at = if tokens.first().is_some_and(|t| t.starts_with("ipv")) {
        4
    } else {
        0
    };
    tokens
        .iter()
        .enumerate()
        .filter(|&(i, t)| {
            let countdown = i == timeout_at && t.parse::<u64>().is_ok();
            !(countdown || t.starts_with("use=") || t.starts_with("id="))
        })
        .map(|(_, t)| *t)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The value of the first `key=value` token of a listing line (`field(l, "dport")`); the
/// first occurrence belongs to the original direction.
pub(crate) fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|t| t.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}
