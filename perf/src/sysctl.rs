//! `nf_conntrack_max` (global) and `nf_conntrack_count` (per namespace).
//!
//! `net.netfilter.nf_conntrack_max` is a single global value that a namespace cannot raise,
//! but the kernel compares it with each namespace's own count. A run that needs more entries
//! raises it and must put it back, even when it fails or is interrupted. The guard restores it
//! on drop; for SIGINT/SIGTERM/SIGKILL (where no destructor runs, and std has no signal
//! handling without `unsafe`, which perf/ does not use) it leaves a watchdog: a `sh` child in
//! its own process group (so a terminal's Ctrl-C does not reach it) that blocks reading a pipe
//! from us. If we exit without saying "done", the pipe reaches EOF and the watchdog writes the
//! old value back. Only SIGKILL of the watchdog itself could leave the value raised; the
//! restore command is printed when the value is raised.

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{Context, Result};

const MAX_PATH: &str = "/proc/sys/net/netfilter/nf_conntrack_max";
const COUNT_PATH: &str = "/proc/sys/net/netfilter/nf_conntrack_count";

fn read_u64(path: &str) -> Result<u64> {
    let s = fs::read_to_string(path).with_context(|| format!("read {path}"))?;
    s.trim()
        .parse()
        .with_context(|| format!("parse {path}: {s:?}"))
}

/// The current global `nf_conntrack_max`. Must be called from a thread in the initial
/// namespace (in others the file is read-only and may not reflect the global).
pub fn conntrack_max() -> Result<u64> {
    read_u64(MAX_PATH)
}

/// Entries in the conntrack table of the namespace at `ns` (`None`: the current one): what
/// `conntrack -C` prints there. `/proc/sys/net` resolves to the namespace of the thread that
/// opens it, so the read happens on a thread inside the namespace.
pub fn conntrack_count(ns: Option<&Path>) -> Result<u64> {
    match ns {
        None => read_u64(COUNT_PATH),
        Some(p) => conntrackd::sys::netns::run_in(p, || read_u64(COUNT_PATH))
            .with_context(|| format!("enter {}", p.display()))?,
    }
}

/// Holds `nf_conntrack_max` raised; restores the old value on drop (and, through its
/// watchdog, if the process dies first).
#[derive(Debug)]
pub struct ConntrackMaxGuard {
    old: u64,
    raised: u64,
    watchdog: Option<(Child, ChildStdin)>,
}

impl ConntrackMaxGuard {
    /// Raises `nf_conntrack_max` to at least `need` (a little more, for the entries already
    /// in the table and the kernel's `count > max` test). `None` when it is already enough.
    pub fn ensure(need: u64) -> Result<Option<Self>> {
        let old = conntrack_max()?;
        if old >= need {
            return Ok(None);
        }
        // Start the watchdog before touching the value, so there is no window without it.
        let watchdog = spawn_watchdog(old)
            .map_err(|e| {
                eprintln!(
                    "ctgen: no restore watchdog ({e:#}); Ctrl-C would leave nf_conntrack_max raised"
                )
            })
            .ok();
        fs::write(MAX_PATH, need.to_string()).with_context(|| format!("write {MAX_PATH}"))?;
        eprintln!(
            "ctgen: raised nf_conntrack_max {old} -> {need} for this run; if it stays raised, \
             restore it with: sysctl -w net.netfilter.nf_conntrack_max={old}"
        );
        Ok(Some(Self {
            old,
            raised: need,
            watchdog,
        }))
    }

    /// The value in force while the guard lives.
    pub fn raised(&self) -> u64 {
        self.raised
    }

    /// The value restored on drop.
    pub fn old(&self) -> u64 {
        self.old
    }
}

/// `sh` waiting on our pipe: on EOF (we died) it restores `old`; on "done" it just exits.
fn spawn_watchdog(old: u64) -> Result<(Child, ChildStdin)> {
    let script = format!(r#"read x; [ "$x" = done ] || echo {old} > {MAX_PATH}"#);
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a terminal's SIGINT goes to our group only.
        .process_group(0)
        .spawn()
        .context("spawn sh")?;
    let stdin = child.stdin.take().context("watchdog stdin")?;
    Ok((child, stdin))
}

impl Drop for ConntrackMaxGuard {
    fn drop(&mut self) {
        if let Err(e) = fs::write(MAX_PATH, self.old.to_string()) {
            eprintln!(
                "ctgen: could not restore nf_conntrack_max ({e}); run: \
                 sysctl -w net.netfilter.nf_conntrack_max={}",
                self.old
            );
            // Leave the watchdog to try: dropping its pipe makes it restore.
            return;
        }
        if let Some((mut child, mut stdin)) = self.watchdog.take() {
            let _ = stdin.write_all(b"done\n");
            drop(stdin);
            let _ = child.wait();
        }
    }
}
