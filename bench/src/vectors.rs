//! Captured inputs: the ctnetlink files of `tests/vectors/netlink/` (compiled in, so the
//! binaries run from any directory and under valgrind) and the sync datagrams of the shared
//! reference capture `vectors.txt` (read in place at run time; it lives outside the
//! repository).

use std::path::PathBuf;

use conntrackd::wire::{CtRepr as Repr, Messages};

macro_rules! netlink_files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("../../tests/vectors/netlink/", $name)))),*]
    };
}

/// Every captured kernel answer that holds conntrack entries (dumps and events), by file
/// name. See `tests/vectors/netlink/README.md` for the command behind each.
pub static CT_DUMPS: &[(&str, &[u8])] = netlink_files![
    "tcp4_dump.resp.bin",
    "tcp6_dump.resp.bin",
    "udp4_labels_dump.resp.bin",
    "icmp4_dump.resp.bin",
    "icmp6_dump.resp.bin",
    "sctp4_dump.resp.bin",
    "gre4_dump.resp.bin",
    "nat4_dump.resp.bin",
    "snat6_dump.resp.bin",
    "zone4_dump.resp.bin",
    "ftp_ct_dump.resp.bin",
    "acct_dump.resp.bin",
    "emitted_dump4.resp.bin",
    "emitted_dump6.resp.bin",
    "tcp4_events.resp.bin",
    "acct_events.resp.bin",
];

/// conntrack(8)'s CREATE request for a TCP entry (`tcp4_create.req.bin`).
pub static TCP4_CREATE_REQ: &[u8] =
    include_bytes!("../../tests/vectors/netlink/tcp4_create.req.bin");

/// Where `vectors.txt` is looked for: `$VECTORS_TXT`, else `../shared/reference/
/// test-vectors/vectors.txt` next to the workspace (the team's shared checkout).
pub fn vectors_txt_path() -> PathBuf {
    if let Some(p) = std::env::var_os("VECTORS_TXT") {
        return p.into();
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/test-vectors/vectors.txt")
}

/// The datagrams of `vectors.txt` that carry at least one conntrack message, each once (the
/// capture repeats itself across sessions). `None` if the file is not there.
pub fn sync_ct_datagrams() -> Option<Vec<Vec<u8>>> {
    let text = std::fs::read_to_string(vectors_txt_path()).ok()?;
    let mut out: Vec<Vec<u8>> = Vec::new();
    for line in text.lines() {
        let Some(hex) = line.trim_start().strip_prefix("hex: ") else {
            continue;
        };
        let Some(bytes) = unhex(hex.trim()) else {
            continue;
        };
        let has_ct = Messages::new(&bytes)
            .flatten()
            .any(|m| m.header.msg_type.is_ct() && m.ct().is_ok());
        if has_ct && !out.contains(&bytes) {
            out.push(bytes);
        }
    }
    Some(out)
}

/// The conntrack payloads of `datagrams`, decoded.
pub fn ct_reprs(datagrams: &[Vec<u8>]) -> Vec<Repr> {
    datagrams
        .iter()
        .flat_map(|d| Messages::new(d).flatten().filter_map(|m| m.ct().ok()))
        .collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
