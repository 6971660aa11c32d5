//! ctgen and ctdrain against a real kernel table, in a scratch namespace (needs root).
//!
//! One test, in order: a mixed burst lands exactly, a paced churn with the drain attached is
//! seen event for event, and flush empties the table. Numbers are asserted, rates are not
//! (the CI machine is a noisy 2-core VM).

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

const CTGEN: &str = env!("CARGO_BIN_EXE_ctgen");
const CTDRAIN: &str = env!("CARGO_BIN_EXE_ctdrain");

/// `ip netns add ctgen-<pid>`, deleted on drop (also when an assertion fails).
struct Ns(String);

impl Ns {
    fn new() -> Self {
        let out = Command::new("id").arg("-u").output().expect("id -u");
        assert_eq!(out.stdout, b"0\n", "this test needs root (ip netns add)");
        let name = format!("ctgen-{}", std::process::id());
        // A leftover from a killed run whose pid was recycled.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("ip netns add");
        assert!(out.status.success(), "ip netns add: {out:?}");
        Self(name)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn ctgen(ns: &Ns, args: &[&str]) -> String {
    let out = Command::new(CTGEN)
        .args(["--netns", &ns.0, "--json"])
        .args(args)
        .output()
        .expect("run ctgen");
    ok(out)
}

/// The integer value of `"key": N` in a flat (or nested, first match) JSON object.
fn int(json: &str, key: &str) -> u64 {
    let pat = format!("\"{key}\": ");
    let at = json.find(&pat).unwrap_or_else(|| panic!("{key} in {json}")) + pat.len();
    let digits: String = json[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or_else(|_| panic!("{key} in {json}"))
}

#[test]
fn test_burst_churn_drain_flush() {
    let ns = Ns::new();

    // Burst: every kind of flow, all accepted, all in the table.
    let j = ctgen(&ns, &["burst", "10000", "--proto", "mix"]);
    assert_eq!(int(&j, "n"), 10000, "{j}");
    assert_eq!(int(&j, "errors"), 0, "{j}");
    assert_eq!(int(&j, "count_after"), 10000, "{j}");
    // The same flows again: each one exists, so each create fails with EEXIST.
    let j = ctgen(&ns, &["burst", "1000", "--proto", "mix"]);
    assert_eq!(int(&j, "eexist"), 1000, "{j}");
    assert_eq!(int(&j, "count_after"), 10000, "{j}");
    let j = ctgen(&ns, &["flush"]);
    assert_eq!(int(&j, "count_after"), 0, "{j}");

    // Churn at 2000 events/s for 1 s around 500 live entries, with the drain attached
    // first (nf_conntrack_events=2: no listener, no events).
    let mut drain = Command::new(CTDRAIN)
        .args(["--netns", &ns.0, "--seconds", "4", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ctdrain");
    let mut ready = String::new();
    BufReader::new(drain.stderr.take().expect("stderr"))
        .read_line(&mut ready)
        .expect("ctdrain stderr");
    assert_eq!(ready.trim(), "ready");
    let j = ctgen(
        &ns,
        &[
            "churn",
            "--rate",
            "2000",
            "--duration",
            "1",
            "--live",
            "500",
            "--proto",
            "udp",
        ],
    );
    let events = int(&j, "events");
    assert_eq!(int(&j, "errors"), 0, "{j}");
    assert!((1800..=2100).contains(&events), "{j}");
    let (creates, deletes) = (int(&j, "creates"), int(&j, "deletes"));
    assert!(creates.abs_diff(deletes) <= 1, "{j}");
    // About `live` entries stay.
    assert!((499..=500).contains(&int(&j, "count_after")), "{j}");
    let d = ok(drain.wait_with_output().expect("ctdrain"));
    // Every prefill create, churn create and churn delete is one event; none lost.
    assert_eq!(int(&d, "overruns"), 0, "{d}");
    assert_eq!(int(&d, "new"), 500 + creates, "{d} / {j}");
    assert_eq!(int(&d, "destroy"), deletes, "{d} / {j}");
    assert_eq!(int(&d, "events"), 500 + events, "{d} / {j}");

    // Flush empties the table.
    let j = ctgen(&ns, &["flush"]);
    assert_eq!(int(&j, "count_after"), 0, "{j}");

    // `--no-prefill`: the live set comes from an earlier burst of the same flows, so the
    // churn's first deletes find them (no ENOENT) and its creates are all new (no EEXIST).
    let j = ctgen(&ns, &["burst", "300", "--proto", "udp"]);
    assert_eq!(int(&j, "count_after"), 300, "{j}");
    let j = ctgen(
        &ns,
        &[
            "churn",
            "--rate",
            "2000",
            "--duration",
            "0.5",
            "--live",
            "300",
            "--proto",
            "udp",
            "--no-prefill",
        ],
    );
    assert_eq!((int(&j, "errors"), int(&j, "prefill")), (0, 0), "{j}");
    assert!(int(&j, "deletes") > 0, "{j}");
    assert!((299..=300).contains(&int(&j, "count_after")), "{j}");
    let j = ctgen(&ns, &["flush"]);
    assert_eq!(int(&j, "count_after"), 0, "{j}");

    // The in-process drain (`--drain`): updates are UPDATE events, deletes DESTROY events,
    // and deleting what is gone is ENOENT.
    // The creates need a listener too: under nf_conntrack_events=2 an entry created while
    // nobody listens has no event extension, and its later updates and deletes stay silent.
    let j = ctgen(&ns, &["--drain", "burst", "100", "--proto", "tcp"]);
    assert_eq!((int(&j, "errors"), int(&j, "count_after")), (0, 100), "{j}");
    assert_eq!(int(&j, "new"), 100, "{j}");
    let j = ctgen(
        &ns,
        &[
            "--drain", "burst", "100", "--proto", "tcp", "--op", "update",
        ],
    );
    assert_eq!(int(&j, "errors"), 0, "{j}");
    assert_eq!(int(&j, "update"), 100, "{j}");
    let j = ctgen(
        &ns,
        &[
            "--drain", "burst", "100", "--proto", "tcp", "--op", "delete",
        ],
    );
    assert_eq!((int(&j, "errors"), int(&j, "destroy")), (0, 100), "{j}");
    assert_eq!(int(&j, "count_after"), 0, "{j}");
    let j = ctgen(&ns, &["burst", "100", "--proto", "tcp", "--op", "delete"]);
    assert_eq!(int(&j, "enoent"), 100, "{j}");
}
