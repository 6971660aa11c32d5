//! `conntrackd --takeover` (our client) against our daemon and Debian's C daemon.
//!
//! Two namespaces sync FTFW over UDP. Flows are created in b's kernel, so they reach a's
//! external cache and nothing else. `--takeover` on a must then: commit them into a's kernel,
//! flush a's caches, refill a's internal cache from the kernel and bulk-send it. The bulk
//! send is the only way the flows reach b's *external* cache (committed entries are COMMIT
//! origin and never replicated, sync-modes.md §1.1), so seeing them there shows that `-B`
//! ran after the commit. The exact order of the four requests is checked by the unit tests
//! of `ctl::client::takeover`.

use std::process::Output;
use std::time::Duration;

use crate::util::daemon::udp_config;
use crate::util::{
    C_CONNTRACKD, CDaemon, NetNs, OUR_CONNTRACKD, TempDir, Veth, contain_test_ranges, ct_insert,
    enable_conntrack, general, wait_until,
};

/// Flows of the test (the sync link's own UDP flow is tracked too and is left out).
const FLOW_NET: &str = "src=10.231.42.";
const FLOWS: usize = 5;

fn count(dump: &str) -> usize {
    dump.lines().filter(|l| l.contains(FLOW_NET)).count()
}

fn insert_flows(ns: &NetNs) {
    for i in 0..FLOWS {
        let sport = (41000 + i).to_string();
        ct_insert(
            ns,
            &[
                "-p",
                "tcp",
                "-s",
                "10.231.42.1",
                "-d",
                "10.231.42.2",
                "--sport",
                &sport,
                "--dport",
                "80",
                "--state",
                "ESTABLISHED",
                "-u",
                "SEEN_REPLY,ASSURED",
                "-t",
                "300",
            ],
        );
    }
}

fn kernel_flows(ns: &NetNs) -> String {
    ns.expect_ok(&["conntrack", "-L", "-p", "tcp", "-s", "10.231.42.1"])
}

/// Our client's `--takeover` against daemon `d` in `ns`; `conf_first` puts `-C FILE` first.
fn takeover(ns: &NetNs, d: &CDaemon, conf_first: bool) -> Output {
    let conf = d.conf_path().to_string_lossy().into_owned();
    let args: Vec<&str> = if conf_first {
        vec![OUR_CONNTRACKD, "-C", &conf, "--takeover"]
    } else {
        vec![OUR_CONNTRACKD, "--takeover", "-C", &conf]
    };
    ns.exec(&args)
}

fn takeover_moves_state(bin: &str, conf_first: bool) {
    contain_test_ranges();
    let a = NetNs::new("tka");
    let b = NetNs::new("tkb");
    let _veth = Veth::connect(&a, "tkA", "10.231.41.1/24", &b, "tkB", "10.231.41.2/24");
    enable_conntrack(&a);
    enable_conntrack(&b);
    let mode = "Mode FTFW { }";
    let da = CDaemon::start_bin(
        bin.as_ref(),
        &a,
        &udp_config(mode, "tkA", "10.231.41.1", "10.231.41.2", 3801),
    );
    let db = CDaemon::start_bin(
        bin.as_ref(),
        &b,
        &udp_config(mode, "tkB", "10.231.41.2", "10.231.41.1", 3801),
    );
    insert_flows(&b);
    wait_until(
        Duration::from_secs(10),
        "a's external cache to hold the flows",
        || count(&da.expect_ctl(&["-e"])) == FLOWS,
    );
    assert_eq!(
        count(&kernel_flows(&a)),
        0,
        "a's kernel holds the flows early"
    );
    assert_eq!(
        count(&db.expect_ctl(&["-e"])),
        0,
        "b's external cache holds b's own flows before the takeover: the test proves nothing"
    );

    let out = takeover(&a, &da, conf_first);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!(
        "--- stdout ---\n{stdout}--- stderr ---\n{stderr}\n{}",
        da.dump()
    );
    assert!(out.status.success(), "{bin}: --takeover failed\n{all}");
    assert!(stderr.is_empty(), "{all}");
    // One line per step, in order, each with its time.
    let steps: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(": done in "))
        .collect();
    assert_eq!(steps.len(), 4, "{all}");
    for (line, flag) in steps.iter().zip(["(-c)", "(-f)", "(-R)", "(-B)"]) {
        assert!(line.contains(flag) && line.ends_with(" s"), "{line}\n{all}");
    }
    assert!(stdout.contains("takeover: complete"), "{all}");
    eprintln!("{bin}:\n{stdout}");

    // The commit finished before --takeover returned: no waiting here.
    let kernel = kernel_flows(&a);
    assert_eq!(
        count(&kernel),
        FLOWS,
        "a's kernel after --takeover:\n{kernel}\n{all}"
    );
    assert!(
        kernel.lines().all(|l| l.contains("ESTABLISHED")),
        "{kernel}"
    );
    // Flushed external cache, internal cache refilled from the kernel.
    assert_eq!(count(&da.expect_ctl(&["-e"])), 0, "a -e after\n{all}");
    wait_until(
        Duration::from_secs(5),
        "a's internal cache to hold the committed flows",
        || count(&da.expect_ctl(&["-i"])) == FLOWS,
    );
    // Only the bulk send (after the resync) can have put them into b's external cache.
    wait_until(
        Duration::from_secs(10),
        "b's external cache to receive the bulk send",
        || count(&db.expect_ctl(&["-e"])) == FLOWS,
    );
}

#[test]
fn takeover_against_our_daemon() {
    takeover_moves_state(OUR_CONNTRACKD, false);
}

#[test]
fn takeover_against_the_c_daemon() {
    takeover_moves_state(C_CONNTRACKD, true);
}

/// No daemon (a stale socket path, nothing listening): the first step fails, nothing else is
/// tried, exit 1 and a message that names the step.
#[test]
fn takeover_without_daemon_fails_at_commit() {
    let dir = TempDir::new();
    let conf = dir.join("conntrackd.conf");
    let text = format!(
        "{}Sync {{\n\tMode FTFW {{ }}\n\tUDP {{\n\t\tIPv4_address 10.231.41.1\n\
         \t\tIPv4_Destination_Address 10.231.41.2\n\t\tPort 3801\n\t}}\n}}\n",
        general("")
    )
    .replace(crate::util::daemon::DIR, &dir.path().to_string_lossy());
    std::fs::write(&conf, text).unwrap();
    let out = std::process::Command::new(OUR_CONNTRACKD)
        .args(["--takeover", "-C"])
        .arg(&conf)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr.contains("step 1/4 commit the external cache to the kernel (-c): FAILED"),
        "{stderr}"
    );
    assert!(
        stderr.contains("can't connect: is conntrackd running?"),
        "{stderr}"
    );
    assert!(stderr.contains("skipped -f -R -B"), "{stderr}");
    assert!(stderr.contains("FAILED at step 1 (-c)"), "{stderr}");
    assert!(out.stdout.is_empty(), "{out:?}");
}

/// A daemon killed hard leaves its socket file behind: connect is refused, same result.
#[test]
fn takeover_after_daemon_crash_fails() {
    let a = NetNs::new("tkc");
    let b = NetNs::new("tkd");
    let _veth = Veth::connect(&a, "tkA", "10.231.41.1/24", &b, "tkB", "10.231.41.2/24");
    let mut da = CDaemon::start_bin(
        OUR_CONNTRACKD.as_ref(),
        &a,
        &udp_config("Mode FTFW { }", "tkA", "10.231.41.1", "10.231.41.2", 3801),
    );
    da.kill();
    assert!(da.socket_path().exists(), "SIGKILL removed the socket?");
    let out = takeover(&a, &da, true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr.contains("(-c): FAILED") && stderr.contains("Connection refused"),
        "{stderr}"
    );
    assert!(stderr.contains("skipped -f -R -B"), "{stderr}");
}

/// Runs `conf/primary-backup-takeover.sh STATE` in `ns` for daemon `d` run by `bin`; returns
/// the exit code and the notify log so far.
fn notify_script(ns: &NetNs, bin: &str, d: &CDaemon, state: &str) -> (i32, String) {
    let script = crate::util::testbed::repo_file("conf/primary-backup-takeover.sh");
    let log = d.dir().join("notify.log");
    let out = ns.exec(&[
        "env",
        &format!("CONNTRACKD_BIN={bin}"),
        &format!("CONNTRACKD_CONFIG={}", d.conf_path().display()),
        &format!("CONNTRACKD_NOTIFY_LOG={}", log.display()),
        &script.to_string_lossy(),
        state,
    ]);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    (out.status.code().unwrap_or(-1), text)
}

/// The takeover notify script: `primary` is one `--takeover` with our binary (its steps in
/// the log, its status as the script's), other transitions go to primary-backup.sh, a
/// binary without `--takeover` (the C one) falls back to the four separate calls, and a
/// dead daemon makes `primary` exit 1.
#[test]
fn takeover_notify_script() {
    contain_test_ranges();
    let a = NetNs::new("tks");
    let b = NetNs::new("tkt");
    let _veth = Veth::connect(&a, "tkA", "10.231.41.1/24", &b, "tkB", "10.231.41.2/24");
    enable_conntrack(&a);
    let conf = udp_config("Mode FTFW { }", "tkA", "10.231.41.1", "10.231.41.2", 3801);

    let mut ours = CDaemon::start_bin(OUR_CONNTRACKD.as_ref(), &a, &conf);
    let (code, log) = notify_script(&a, OUR_CONNTRACKD, &ours, "primary");
    assert_eq!(code, 0, "{log}");
    for line in [
        "primary: takeover: step 1/4",
        "(-c): done in",
        "(-B): done in",
        "primary: conntrackd --takeover -> exit 0",
        "primary: done",
    ] {
        assert!(log.contains(line), "no `{line}` in\n{log}");
    }
    let (code, log) = notify_script(&a, OUR_CONNTRACKD, &ours, "fault");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("fault: conntrackd -t -> exit 0"), "{log}");
    ours.stop();
    let (code, log) = notify_script(&a, OUR_CONNTRACKD, &ours, "primary");
    assert_eq!(code, 1, "a failed takeover must fail the script\n{log}");
    assert!(log.contains("FAILED at step 1 (-c)"), "{log}");
    assert!(
        log.contains("primary: conntrackd --takeover -> exit 1 (failed)"),
        "{log}"
    );
    drop(ours);

    let c = CDaemon::start(&a, &conf);
    let (code, log) = notify_script(&a, C_CONNTRACKD, &c, "primary");
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("has no --takeover; using primary-backup.sh"),
        "{log}"
    );
    for step in ["-c", "-f", "-R", "-B"] {
        let line = format!("primary: conntrackd {step} -> exit 0");
        assert!(log.contains(&line), "no `{line}` in\n{log}");
    }
}
