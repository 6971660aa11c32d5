//! Real failover: two firewalls in namespaces, keepalived (VRRPv3) with OUR
//! `conf/keepalived.conf.in` and `conf/primary-backup.sh`, conntrackd on both, a long-lived TCP
//! connection through the master, and a hard failure of the master (frozen, unplugged,
//! killed). See `util::testbed` for the topology.
//!
//! PASS means: the backup takes the VIPs, its notify script ran `conntrackd -c` (exit 0) and
//! the daemon logged the commit, the backup's kernel holds the connection ESTABLISHED, and
//! the stream resumed with no reset. The control run (no conntrackd) shows that the ruleset
//! really needs the replicated state: there the stream stalls.
//!
//! Each scenario prints the measured takeover time, notify-script time, commit time (from
//! the daemon's "commit has taken" log line) and the stream's longest silence.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::util::daemon::DIR;
use crate::util::testbed::{
    Flows, Node, Outcome, Stream, SyncMode, Testbed, bulk_established, repo_file,
};
use crate::util::{
    C_CONNTRACKD, NetNs, OUR_CONNTRACKD, TempDir, Veth, enable_conntrack, udp_config, wait_until,
};

fn c() -> Node {
    Node::Daemon(PathBuf::from(C_CONNTRACKD))
}

fn ours() -> Node {
    Node::Daemon(PathBuf::from(OUR_CONNTRACKD))
}

/// How long after the takeover the stream may stay silent before we call it stalled. TCP
/// retransmits at back-off steps (0.2, 0.6, 1.4, 3.0, 6.2 s... after the last ACK), so
/// the first retransmission after a ~1 s takeover lands within about 6 s.
const RESUME_TIMEOUT: Duration = Duration::from_secs(12);

/// What one takeover measured.
#[derive(Debug)]
struct Measured {
    takeover: Duration,
    notify_done: Duration,
    commit: String,
    gap: Duration,
}

/// How the notify script's primary transition drives conntrackd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Primary {
    /// `conf/primary-backup.sh`: `-c`, `-f`, `-R`, `-B`, one call each.
    Calls,
    /// `conf/primary-backup-takeover.sh`: one `conntrackd --takeover`.
    TakeoverCli,
}

impl Primary {
    const fn script(self) -> &'static str {
        match self {
            Self::Calls => "conf/primary-backup.sh",
            Self::TakeoverCli => "conf/primary-backup-takeover.sh",
        }
    }
}

/// Builds the cluster with `nodes`, streams through fw1, hard-fails fw1 and checks that fw2
/// took over with the connection intact. Returns the testbed and stream for more steps.
fn failover(label: &str, nodes: [Node; 2], mode: SyncMode) -> (Testbed, Stream, Measured) {
    failover_via(label, nodes, mode, Primary::Calls)
}

/// [`failover`] with the notify script of `primary`.
fn failover_via(
    label: &str,
    nodes: [Node; 2],
    mode: SyncMode,
    primary: Primary,
) -> (Testbed, Stream, Measured) {
    let mut tb = Testbed::start_with_script(nodes, mode, primary.script());
    let stream = Stream::open(&tb);
    let port = stream.client_port;
    // The backup must hold the flow before the primary dies.
    tb.wait(
        Duration::from_secs(10),
        "fw2's external cache to hold the stream",
        |tb| tb.fws[1].external_has(port),
    );
    if tb.fws[1].kernel_flow(port).is_some() {
        tb.fail(
            "fw2's kernel already holds the stream before the failover: the test proves nothing",
        );
    }
    // A second of traffic first, so that the flow is well established on both sides.
    tb.wait(Duration::from_secs(5), "20 echoes through fw1", |_| {
        stream.echoes() >= 20
    });
    let runs = tb.fws[1].primary_runs();
    let failed_at = Instant::now();
    tb.hard_fail(0);
    let m = takeover(label, &tb, &stream, 1, failed_at, runs, primary);
    (tb, stream, m)
}

/// Checks that firewall `new` takes the VIPs after the event at `since`, that its notify
/// script runs the primary transition (run number `runs + 1`) with a successful `-c` (or,
/// with [`Primary::TakeoverCli`], a successful `--takeover` reporting its four steps), that
/// its daemon logged a non-empty commit, that its kernel then holds the stream ESTABLISHED
/// and that the stream resumes without reset. Prints the measurements.
fn takeover(
    label: &str,
    tb: &Testbed,
    stream: &Stream,
    new: usize,
    since: Instant,
    runs: usize,
    primary: Primary,
) -> Measured {
    let fw = &tb.fws[new];
    let port = stream.client_port;
    let echoes_before = stream.echoes();
    tb.wait(Duration::from_secs(10), "the VIPs to move", |tb| {
        tb.master() == Some(new)
    });
    let took_over = Instant::now();
    tb.wait(
        Duration::from_secs(10),
        "the notify script (primary)",
        |_| fw.primary_runs() > runs,
    );
    let notify_done = since.elapsed();
    let notify = fw.notify_log();
    let call = match primary {
        Primary::Calls => "-c",
        Primary::TakeoverCli => "--takeover",
    };
    if notify
        .matches(&format!("primary: conntrackd {call} -> exit 0"))
        .count()
        <= runs
    {
        tb.fail(&format!(
            "{}'s notify script did not run `conntrackd {call}` successfully",
            fw.name
        ));
    }
    if primary == Primary::TakeoverCli {
        for step in ["(-c): done", "(-f): done", "(-R): done", "(-B): done"] {
            if !notify.contains(step) {
                tb.fail(&format!("{}'s takeover did not report `{step}`", fw.name));
            }
        }
    }
    let log = fw.daemon_log();
    let Some(committed) = log.lines().rev().find(|l| l.contains("Committed ")) else {
        tb.fail(&format!("{}'s conntrackd did not log a commit", fw.name));
    };
    if committed.contains("Committed 0 new entries") {
        tb.fail(&format!("{}'s conntrackd committed nothing", fw.name));
    }
    let commit = log
        .lines()
        .rev()
        .find_map(|l| l.split("commit has taken ").nth(1))
        .unwrap_or("(no time logged)")
        .to_owned();
    match fw.kernel_flow(port) {
        Some(l) if l.contains("ESTABLISHED") => {}
        other => tb.fail(&format!(
            "{}'s kernel does not hold the stream ESTABLISHED after the commit: {other:?}",
            fw.name
        )),
    }
    let gap = match stream.outcome(since, took_over, RESUME_TIMEOUT) {
        Outcome::Resumed { gap } => gap,
        other => tb.fail(&format!("{label}: the stream did not survive: {other:?}")),
    };
    // Still alive a moment later (a reset can follow a first echo).
    let n = stream.echoes();
    tb.wait(
        Duration::from_secs(3),
        "more echoes after the resumption",
        |_| stream.echoes() > n + 5,
    );
    if let Some(e) = stream.error() {
        tb.fail(&format!("{label}: the stream failed after resuming: {e}"));
    }
    // Packets of the stream that reached the new master before its commit (keepalived moves
    // the VIPs before the notify script runs) are INVALID there; usually none, as the
    // client's next retransmission comes later.
    let invalid = fw.invalid_drops();
    let m = Measured {
        takeover: took_over - since,
        notify_done,
        commit,
        gap,
    };
    eprintln!(
        "{label}: takeover by {} {:.2} s, notify script done {:.2} s after the event, {} \
         ({}), {} dropped {invalid} packets as INVALID, stream silent for {:.2} s, {} \
         echoes before / {} after, no reset",
        fw.name,
        m.takeover.as_secs_f64(),
        m.notify_done.as_secs_f64(),
        committed.split("] ").last().unwrap_or(committed),
        m.commit.trim(),
        fw.name,
        m.gap.as_secs_f64(),
        echoes_before,
        stream.echoes(),
    );
    // The notify script's steps of this takeover, with their times.
    let last_run = notify.rfind("taking over").unwrap_or(0);
    let start = notify[..last_run].rfind('\n').map_or(0, |i| i + 1);
    for line in notify[start..].lines().filter(|l| l.contains(" primary: ")) {
        eprintln!("    {line}");
    }
    m
}

/// Failover, then fw1 comes back as after a reboot (empty conntrack table, fresh daemon):
/// its notify script's backup transition asks fw2 for a resync (`-n`), fw1 preempts with its
/// higher priority and commits what fw2 sent, and the stream moves back without reset.
fn failback(label: &str, nodes: [Node; 2]) {
    let (mut tb, stream, _) = failover(label, nodes, SyncMode::Ftfw);
    let runs = tb.fws[0].primary_runs();
    let restored_at = Instant::now();
    tb.restore(0);
    takeover(
        &format!("{label} failback"),
        &tb,
        &stream,
        0,
        restored_at,
        runs,
        Primary::Calls,
    );
    let notify = tb.fws[0].notify_log();
    // Once at the first start, once after the reboot.
    if notify.matches("backup: conntrackd -n -> exit 0").count() < 2 {
        tb.fail("fw1's notify script did not request a resync on its way back");
    }
}

/// A failover with `n` more idle connections through fw1: fw2 must commit all of them
/// (and the stream), and its kernel must then hold them ESTABLISHED.
fn failover_bulk(label: &str, nodes: [Node; 2], n: usize) {
    let mut tb = Testbed::start(nodes, SyncMode::Ftfw);
    let flows = Flows::open(&tb, n);
    let stream = Stream::open(&tb);
    tb.wait(
        Duration::from_secs(10),
        "fw1's kernel to hold the bulk connections",
        |tb| bulk_established(&tb.fws[0]) >= flows.len(),
    );
    tb.wait(
        Duration::from_secs(10),
        "fw2's external cache to hold the stream",
        |tb| tb.fws[1].external_has(stream.client_port),
    );
    let runs = tb.fws[1].primary_runs();
    let failed_at = Instant::now();
    tb.hard_fail(0);
    takeover(label, &tb, &stream, 1, failed_at, runs, Primary::Calls);
    let held = bulk_established(&tb.fws[1]);
    let log = tb.fws[1].daemon_log();
    let committed = log
        .lines()
        .rev()
        .find(|l| l.contains("Committed "))
        .unwrap_or("");
    eprintln!("{label}: fw2 holds {held} of {n} bulk connections ESTABLISHED; {committed}");
    if held < n {
        tb.fail(&format!(
            "fw2 holds only {held} of the {n} bulk connections after the commit"
        ));
    }
}

/// The same failover with no conntrackd on either firewall: the stream must stall (or be
/// reset), which shows that the ruleset drops what it does not know.
fn control(label: &str, mode: SyncMode) {
    let mut tb = Testbed::start([Node::NoDaemon, Node::NoDaemon], mode);
    let stream = Stream::open(&tb);
    let port = stream.client_port;
    let failed_at = Instant::now();
    tb.hard_fail(0);
    tb.wait(Duration::from_secs(10), "fw2 to take the VIPs", |tb| {
        tb.master() == Some(1)
    });
    let took_over = Instant::now();
    let outcome = stream.outcome(failed_at, took_over, Duration::from_secs(8));
    let drops = tb.fws[1].invalid_drops();
    match outcome {
        Outcome::Stalled { silent } => eprintln!(
            "{label}: without conntrackd the stream stalled ({:.1} s silent after a {:.2} s \
             takeover); fw2 dropped {drops} INVALID packets; kernel entry: {:?}",
            silent.as_secs_f64(),
            (took_over - failed_at).as_secs_f64(),
            tb.fws[1].kernel_flow(port),
        ),
        Outcome::Reset(e) => eprintln!("{label}: without conntrackd the stream was reset: {e}"),
        Outcome::Resumed { gap } => tb.fail(&format!(
            "{label}: the stream survived WITHOUT conntrackd (gap {gap:?}): the testbed does \
             not prove anything (tcp_loose? ruleset?)"
        )),
    }
    if drops == 0 {
        tb.fail("fw2 dropped no INVALID packet: the stream's packets never reached it?");
    }
}

#[test]
fn failover_c_ftfw() {
    failover("C/C FTFW", [c(), c()], SyncMode::Ftfw);
}

#[test]
fn failback_c_ftfw() {
    failback("C/C FTFW", [c(), c()]);
}

#[test]
fn failback_ours_ftfw() {
    failback("ours/ours FTFW", [ours(), ours()]);
}

#[test]
fn failover_c_alarm() {
    failover("C/C ALARM", [c(), c()], SyncMode::Alarm);
}

#[test]
fn failover_c_notrack() {
    failover("C/C NOTRACK", [c(), c()], SyncMode::Notrack);
}

#[test]
fn failover_ours_notrack() {
    failover("ours/ours NOTRACK", [ours(), ours()], SyncMode::Notrack);
}

#[test]
fn failover_control_without_sync() {
    control("control", SyncMode::Ftfw);
}

#[test]
fn failover_ours_ftfw() {
    failover("ours/ours FTFW", [ours(), ours()], SyncMode::Ftfw);
}

#[test]
fn failover_ours_alarm() {
    failover("ours/ours ALARM", [ours(), ours()], SyncMode::Alarm);
}

#[test]
fn failover_c_primary_ours_backup_ftfw() {
    failover("C->ours FTFW", [c(), ours()], SyncMode::Ftfw);
}

#[test]
fn failover_ours_primary_c_backup_ftfw() {
    failover("ours->C FTFW", [ours(), c()], SyncMode::Ftfw);
}

/// Runs `conf/primary-backup.sh STATE` in `ns` with this daemon's paths; returns its exit
/// code and the notify log so far.
fn notify(ns: &NetNs, bin: &str, conf: &Path, log: &Path, state: &str) -> (i32, String) {
    let script = repo_file("conf/primary-backup.sh");
    let out = ns.exec(&[
        "env",
        &format!("CONNTRACKD_BIN={bin}"),
        &format!("CONNTRACKD_CONFIG={}", conf.display()),
        &format!("CONNTRACKD_NOTIFY_LOG={}", log.display()),
        &script.to_string_lossy(),
        state,
    ]);
    let code = out.status.code().unwrap_or(-1);
    (code, fs::read_to_string(log).unwrap_or_default())
}

/// The notify script's branches that a clean keepalived failover never takes: the backup
/// transition finding the daemon dead with a stale lock file (removes it, starts the daemon
/// with `-d`), `fault`, an unknown transition, and a daemon that cannot start.
fn notify_script_branches(bin: &str) {
    let ns = NetNs::new("nfy");
    let peer = NetNs::new("nfp");
    enable_conntrack(&ns);
    Veth::connect(&ns, "s0", "10.231.9.1/30", &peer, "s0", "10.231.9.2/30");
    let dir = TempDir::new();
    let conf = dir.join("conntrackd.conf");
    let text = udp_config("Mode FTFW { }", "s0", "10.231.9.1", "10.231.9.2", 3780)
        .replace(DIR, &dir.path().to_string_lossy());
    fs::write(&conf, text).expect("write config");
    let log = dir.join("notify.log");
    let lock = dir.join("lock");
    fs::write(&lock, "").expect("stale lock");
    let alive = || {
        ns.exec(&[bin, "-C", &conf.to_string_lossy(), "-s"])
            .status
            .success()
    };
    assert!(!alive(), "{bin}: a daemon answers before the script ran");

    let (code, text) = notify(&ns, bin, &conf, &log, "backup");
    for line in [
        "backup: conntrackd -s -> exit 1 (failed)",
        "removing the lock file",
        "backup: conntrackd -d -> exit 0",
        "backup: conntrackd -t -> exit 0",
        "backup: conntrackd -n -> exit 0",
        "backup: done",
    ] {
        assert!(text.contains(line), "{bin}: no `{line}` in\n{text}");
    }
    assert_eq!(code, 0, "{bin}: backup transition\n{text}");
    assert!(alive(), "{bin}: the script did not leave a running daemon");

    let (code, text) = notify(&ns, bin, &conf, &log, "fault");
    assert!(text.contains("fault: conntrackd -t -> exit 0"), "{text}");
    assert_eq!(code, 0, "{bin}: fault transition\n{text}");

    let (code, text) = notify(&ns, bin, &conf, &log, "primary");
    for step in ["-c", "-f", "-R", "-B"] {
        let line = format!("primary: conntrackd {step} -> exit 0");
        assert!(text.contains(&line), "{bin}: no `{line}` in\n{text}");
    }
    assert_eq!(code, 0, "{bin}: primary transition\n{text}");

    let (code, text) = notify(&ns, bin, &conf, &log, "sideways");
    assert!(text.contains("unknown transition 'sideways'"), "{text}");
    assert_eq!(code, 1, "an unknown transition must fail");

    ns.expect_ok(&[bin, "-C", &conf.to_string_lossy(), "-k"]);
    wait_until(Duration::from_secs(5), "the daemon to exit", || !alive());

    // A daemon that cannot start: the backup transition fails with exit 1.
    let (code, text) = notify(&ns, "/bin/false", &conf, &log, "backup");
    assert!(text.contains("cannot start conntrackd"), "{text}");
    assert_eq!(code, 1, "backup with no startable daemon must fail\n{text}");
}

#[test]
fn notify_script_branches_c() {
    notify_script_branches(C_CONNTRACKD);
}

#[test]
fn notify_script_branches_ours() {
    notify_script_branches(OUR_CONNTRACKD);
}

#[test]
fn failover_c_ftfw_500_flows() {
    failover_bulk("C/C FTFW + 500 flows", [c(), c()], 500);
}

#[test]
fn failover_ours_ftfw_500_flows() {
    failover_bulk("ours/ours FTFW + 500 flows", [ours(), ours()], 500);
}

/// ours/ours FTFW with `conf/primary-backup-takeover.sh` as notify script: the primary
/// transition is one `conntrackd --takeover` (commit, flush, resync, bulk send from one
/// process). Same hard failure and the same proof as [`failover`], and the single call
/// reports its four steps.
#[test]
fn failover_ours_ftfw_takeover_cli() {
    failover_via(
        "ours/ours FTFW --takeover",
        [ours(), ours()],
        SyncMode::Ftfw,
        Primary::TakeoverCli,
    );
}
