//! Config files end to end: our `conf/*.conf`, Debian's examples (read in place), the
//! reference test-vector configs, and the one-defect files of `conf/invalid/`.
//!
//! The C daemon (`/usr/sbin/conntrackd -C FILE -s`) serves as an oracle: it must accept
//! every file we accept and reject every file we reject. Client mode parses the whole file
//! and then fails to connect to a (non-running) daemon; that failure is not a rejection.

use std::path::{Path, PathBuf};
use std::process::Command;

use conntrackd::config::{self, ExpectationSync, FilterFrom, Policy, SyncMode, Transport};

const DEBIAN_EXAMPLES: &str = "/usr/share/doc/conntrackd/examples";
const VECTOR_CONFIGS: &str = "/work/shared/reference/test-vectors/configs";
const C_DAEMON: &str = "/usr/sbin/conntrackd";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn conf_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    v.sort();
    v
}

fn debian_examples() -> Vec<PathBuf> {
    let root = Path::new(DEBIAN_EXAMPLES);
    assert!(
        root.is_dir(),
        "{DEBIAN_EXAMPLES} is missing: install the C daemon's package with `make deps`"
    );
    let files: Vec<PathBuf> = ["sync/alarm", "sync/ftfw", "sync/notrack", "stats"]
        .iter()
        .map(|d| root.join(d).join("conntrackd.conf"))
        .collect();
    for f in &files {
        assert!(f.is_file(), "{} is missing: run `make deps`", f.display());
    }
    files
}

/// What the C daemon thinks of a file: `Ok(())` if it parsed it, `Err(log)` if not.
fn c_verdict(path: &Path) -> Result<(), String> {
    let out = Command::new(C_DAEMON)
        .arg("-C")
        .arg(path)
        .arg("-s")
        .output()
        .unwrap_or_else(|e| panic!("{C_DAEMON}: {e}: run `make deps`"));
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let rejected = log
        .lines()
        .any(|l| l.contains("[ERROR]") && !l.contains("can't connect"));
    if rejected { Err(log) } else { Ok(()) }
}

fn load_ok(path: &Path) -> config::Config {
    config::load(path).unwrap_or_else(|e| panic!("{} must parse:\n{e}", path.display()))
}

#[test]
fn test_our_configs_parse() {
    let files = conf_files(&repo().join("conf"));
    assert!(files.len() >= 7, "expected our demo configs in conf/");
    for f in files {
        let cfg = load_ok(&f);
        let summary = cfg.summary();
        eprintln!("{}: {summary}", f.display());
        for w in &cfg.warnings {
            eprintln!("  {w}");
        }
        assert!(!summary.contains('\n'));
    }
}

#[test]
fn test_debian_examples_parse() {
    for f in debian_examples() {
        load_ok(&f);
    }
}

#[test]
fn test_vector_configs_parse() {
    for f in conf_files(Path::new(VECTOR_CONFIGS)) {
        load_ok(&f);
    }
}

/// The C daemon accepts everything we accept.
#[test]
fn test_c_daemon_accepts_valid_files() {
    let mut files = conf_files(&repo().join("conf"));
    files.extend(debian_examples());
    files.extend(conf_files(Path::new(VECTOR_CONFIGS)));
    for f in files {
        if let Err(log) = c_verdict(&f) {
            panic!("C conntrackd rejects {}:\n{log}", f.display());
        }
    }
}

/// `# expect: LINE:COL: text` on line 1 of each invalid file.
fn expectation(path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let first = text.lines().next().unwrap_or_default();
    let rest = first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{}: line 1 must be `# expect: L:C: text`", path.display()));
    let mut it = rest.splitn(3, ':');
    let (l, c, msg) = (it.next(), it.next(), it.next());
    match (l, c, msg) {
        (Some(l), Some(c), Some(m)) => (format!("{}:{}", l.trim(), c.trim()), m.trim().to_owned()),
        _ => panic!("{}: malformed expectation `{rest}`", path.display()),
    }
}

#[test]
fn test_invalid_files_rejected_with_position() {
    let files = conf_files(&repo().join("conf/invalid"));
    assert!(files.len() >= 10, "expected 10+ files in conf/invalid/");
    let mut failures = Vec::new();
    for f in files {
        let (pos, text) = expectation(&f);
        let rendered = match config::load(&f) {
            Ok(_) => String::from("(accepted)"),
            Err(e) => e.to_string(),
        };
        let want = format!("{}:{pos}: ", f.display());
        let hit = rendered
            .lines()
            .any(|l| l.starts_with(&want) && l.contains(&text));
        if !hit {
            failures.push(format!(
                "{}: expected an error at {pos} containing {text:?}, got:\n{rendered}",
                f.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The C daemon rejects every file of `conf/invalid/` too.
#[test]
fn test_c_daemon_rejects_invalid_files() {
    for f in conf_files(&repo().join("conf/invalid")) {
        assert!(
            c_verdict(&f).is_err(),
            "C conntrackd accepts {} but we reject it",
            f.display()
        );
    }
}

#[test]
fn test_minimal_defaults() {
    let cfg = config::parse_str(
        "min.conf",
        "Sync { Multicast { IPv4_address 225.0.0.50 Group 3780 Interface eth0 } }\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let g = &cfg.general;
    // Reference: config-grammar.md §3.1 and sync-modes.md §11.
    assert_eq!(g.hash_size, 65536);
    assert_eq!(g.hash_limit, 262_144);
    assert_eq!(g.lock_file, Path::new("/var/lock/conntrackd.lock"));
    assert_eq!(g.log_file, None);
    assert_eq!(g.syslog, None);
    assert_eq!(g.unix_path, None);
    assert_eq!(g.netlink_buffer_size, None);
    assert_eq!(g.netlink_buffer_size_max_growth, 0);
    assert_eq!(g.netlink_overrun_resync, Some(30));
    assert!(!g.netlink_events_reliable);
    assert_eq!(g.event_iteration_limit, 100);
    assert_eq!(g.poll_secs, None);
    assert!(g.systemd);
    assert_eq!(g.scheduler.policy, None);
    assert_eq!(g.filter.from, FilterFrom::Userspace);
    assert!(g.filter.is_empty());
    let s = cfg.sync.as_ref().unwrap_or_else(|| panic!("sync"));
    assert_eq!(s.mode, SyncMode::Ftfw);
    assert_eq!(s.refresh_time, 60);
    assert_eq!(s.cache_timeout, 180);
    assert_eq!(s.commit_timeout, 0);
    assert_eq!(s.purge_timeout, 60);
    assert_eq!(s.resend_queue_size, 131_072);
    assert_eq!(s.ack_window_size, 300);
    assert_eq!(s.error_queue_length, 128);
    assert!(!s.tcp_window_tracking);
    assert_eq!(s.expectation_sync, ExpectationSync::Off);
    assert!(!s.disable_internal_cache && !s.disable_external_cache && !s.startup_resync);
    assert_eq!(s.channels.len(), 1);
    assert!(s.channels[0].checksum);
    assert_eq!(s.channels[0].transport, Transport::Multicast);
    assert_eq!(s.channels[0].port, 3780);
    // No Mode: FTFW with a warning, as sync-mode.c does.
    assert!(
        cfg.warnings
            .iter()
            .any(|w| w.message.contains("no synchronization mode"))
    );
}

#[test]
fn test_debian_ftfw_example_typed() {
    let cfg = load_ok(&Path::new(DEBIAN_EXAMPLES).join("sync/ftfw/conntrackd.conf"));
    let s = cfg.sync.as_ref().unwrap_or_else(|| panic!("sync"));
    assert_eq!(s.mode, SyncMode::Ftfw);
    assert_eq!(s.channels[0].interface.as_deref(), Some("eth2"));
    let f = &cfg.general.filter;
    let p = f
        .protocol
        .as_ref()
        .unwrap_or_else(|| panic!("protocol filter"));
    assert_eq!(p.policy, Policy::Accept);
    let a = f
        .address
        .as_ref()
        .unwrap_or_else(|| panic!("address filter"));
    assert_eq!(a.policy, Policy::Ignore);
    assert!(a.items.iter().all(|p| p.is_exact()));
}

#[test]
fn test_unreadable_file_is_an_error() {
    let e = config::load(Path::new("/nonexistent/conntrackd.conf"));
    let e = e.err().unwrap_or_else(|| panic!("must fail"));
    assert_eq!(e.len(), 1);
    assert!(e.to_string().starts_with("/nonexistent/conntrackd.conf: "));
}

/// Truncated and garbled versions of real files, and random bytes: never a panic.
#[test]
fn test_fuzz_like_inputs_never_panic() {
    let mut corpus: Vec<String> = debian_examples()
        .iter()
        .chain(conf_files(Path::new(VECTOR_CONFIGS)).iter())
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    corpus.extend(
        conf_files(&repo().join("conf"))
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok()),
    );
    // xorshift: deterministic, no dependency.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for text in &corpus {
        let b = text.as_bytes();
        for cut in (0..b.len()).step_by(37) {
            let _ = config::parse_str("t", &String::from_utf8_lossy(&b[..cut]));
        }
        for _ in 0..200 {
            let mut g = b.to_vec();
            for _ in 0..4 {
                let len = g.len().max(1);
                let i = usize::try_from(rnd() % len as u64).unwrap_or(0);
                let op = rnd() % 4;
                let byte = u8::try_from(rnd() % 256).unwrap_or(b'x');
                match op {
                    0 if i < g.len() => g[i] = byte,
                    1 if i < g.len() => {
                        g.remove(i);
                    }
                    2 => g.insert(i.min(g.len()), b"{}#/:.\n-"[usize::from(byte % 8)]),
                    _ => g.insert(i.min(g.len()), byte),
                }
            }
            let _ = config::parse_str("t", &String::from_utf8_lossy(&g));
        }
    }
    for _ in 0..2000 {
        let n = usize::try_from(rnd() % 200).unwrap_or(0);
        let bytes: Vec<u8> = (0..n)
            .map(|_| u8::try_from(rnd() % 256).unwrap_or(0))
            .collect();
        let _ = config::parse_str("t", &String::from_utf8_lossy(&bytes));
    }
}

/// Small snippets on the edges of the grammar, each judged by us and by the C daemon:
/// both must agree on accept/reject.
const EDGE_CASES: &[&str] = &[
    "",
    "# only a comment\n",
    "# comment at EOF without newline",
    "General { HashSize 10 HashLimit 20 }",
    "general { }",
    "General { Lockfile /x }",
    "General { LockFile /x # c\n}\n",
    "General { LockFile /x\t# c\n}\n",
    "General { LockFile /x}\n",
    "General { LogFile off } General { LogFile on }",
    "General { LogFile yes Syslog NO }",
    "General { Syslog local9 }",
    "General { Syslog LOCAL1 }",
    "General { Syslog daemon } Stats { Syslog local2 }",
    "General { HashSize 0x10 }",
    "General { HashSize 99999999999 }",
    "General { HashSize -1 }",
    "General { Nice 5 }",
    "General { Nice -5 }",
    "General { Nice +5 }",
    "General { PollSecs 0 }",
    "General { PollSecs 4294967296 }",
    "General { PollSecs 2 }",
    "General { Systemd off NetlinkOverrunResync 0 }",
    "General { NetlinkOverrunResync off NetlinkOverrunResync 15 }",
    "General { SocketBufferSize 1 SocketBufferSizeMaxGrown 2 SocketBufferSizeMaxGrowth 3 }",
    "General { NetlinkEventsReliable true }",
    "General { EventIterationLimit 0 }",
    "General { UNIX { Backlog 5 } }",
    "General { UNIX { Path /a/b Backlog 5 } }",
    "General { Scheduler { Type rr Priority 4294967295 } }",
    "General { Scheduler { Type FIFO Priority 99 } }",
    "General { Scheduler { Type batch } }",
    "General { Scheduler { Priority 100 } }",
    "General { Filter From { } }",
    "General { Filter From Kernelspace { } Filter { } }",
    "General { Filter { Protocol Accept { fc } } }",
    "General { Filter { Protocol Accept { foo } } }",
    "General { Filter { Protocol Accept { 6 } } }",
    "General { Filter { Protocol Ignore { TCP UDP icmp ICMP ipv6-icmp sctp dccp gre } } }",
    "General { Filter { Protocol { TCP } } }",
    "General { Filter { Address Accept { IPv4_address 1.2.3.4/33 } } }",
    "General { Filter { Address Accept { IPv4_address 010.1.1.1 IPv4_address 08.1.1.1 } } }",
    "General { Filter { Address Accept { IPv4_address 999.1.1.1 } } }",
    "General { Filter { Address Accept { IPv4_address 10.1.2/24 } } }",
    "General { Filter { Address Ignore { IPv6_address ::ffff:1.2.3.4 } } }",
    "General { Filter { Address Ignore { IPv6_address fe80::/129 IPv6_address :: } } }",
    "General { Filter { Address Ignore { IPv6_address dead } } }",
    "General { Filter { Address Ignore { IPv4_address ::1 } } }",
    "General { Filter { State Accept { for TCP } } }",
    "General { Filter { State Accept { } } }",
    "General { Filter { State Accept { ESTABLISHED } } }",
    "General { Filter { State Accept { ESTABLISHED for tcp } } }",
    "General { Filter { State Ignore { SYN_SENT SYN_RECV for TCP CLOSED CLOSE LISTEN for TCP } } }",
    "General { Filter { State Accept { TIME_WAIT for TCP } } Filter From Userspace { } }",
    "General { || 1 }",
    "General { HashSize 1 } }",
    "General { HashSize 1 ; }",
    "General { HashSize \"1\" }",
    "General { Filter { } } Stats { LogFile on Syslog on }",
    "Stats { } Stats { }",
    "Stats { NetlinkEventsReliable on }",
    "Stats { LogFile /x/y Syslog local7 }",
    "General { } Stats { } Sync { }",
    "Sync { } Sync { }",
    "Sync { Mode FTFW { } Mode ALARM { } }",
    "Sync { Mode nack { } }",
    "Sync { Mode NaCk { } }",
    "Sync { Mode persistent { } }",
    "Sync { Mode PERSISTENT { } }",
    "Sync { Mode notrack { DisableInternalCache on DisableExternalCache on CommitTimeout 5 } }",
    "Sync { Mode ALARM { RefreshTime 1 CacheTimeout 2 CommitTimeout 3 PurgeTimeout 4 } }",
    "Sync { Mode ALARM { DisableExternalCache on } }",
    "Sync { Mode FTFW { RefreshTime 1 } }",
    "Sync { Mode FTFW { ResendQueueSize 1 ACKWindowSize 2 StartupResync on } }",
    "Sync { Mode NOTRACK { ResendQueueSize 1 } }",
    "Sync { RefreshTime 1 CacheTimeout 2 CommitTimeout 3 PurgeTimeout 4 }",
    "Sync { ResendQueueSize 1 }",
    "Sync { Checksum on }",
    "Sync { Options { ExpectationSync { ftp 5 } } }",
    "Sync { Options { ExpectationSync { } } }",
    "Sync { Options { ExpectationSync on TCPWindowTracking yes } }",
    "Sync { Options { ExpectationSync { ftp sip h.245 q.931 ras } } }",
    "Sync { Multicast { IPv4_address 225.0.0.50/24 Interface dead } }",
    "Sync { Multicast { Interface alarm } }",
    "Sync { Multicast { Interface eth_0.5-x } }",
    "Sync { Multicast { IPv6_interface ::1 } }",
    "Sync { Multicast { IPv6_address ff02::1 IPv4_interface 1.2.3.4 } }",
    "Sync { Multicast Default Default { } }",
    "Sync { Multicast { McastSndSocketBuffer 1 } }",
    "Sync { Multicast { Backlog 1 } }",
    "Sync { Multicast { Port 1 } }",
    "Sync { Multicast { Group 70000 SndSocketBuffer 1 RcvSocketBuffer 2 Checksum off } }",
    "Sync { UDP { Group 1 } }",
    "Sync { UDP { IPv6_Destionation_Address ::1 } }",
    "Sync { UDP { IPv6_address ::1 IPv6_Destination_Address ::2 Port 1 Interface lo } }",
    "Sync { UDP { ErrorQueueLength 5 } }",
    "Sync { TCP Default { ErrorQueueLength 5 Port 3 } }",
    "Sync { UDP { } TCP { } }",
    "Sync { UDP { } } Sync { Multicast { } }",
    "Sync { UDP { } UDP { } UDP { } UDP { } UDP { Port 5 } }",
    "Helper { Type ftp inet tcp { QueueNum 5 Policy ftp { ExpectMax 1 ExpectTimeout 300 } } }",
    "Helper { Type ftp inet udp { } }",
    "Helper { Type foo inet tcp { } }",
    "Helper { Type ftp inet4 tcp { } }",
    "Helper { Type ftp inet TCP { } }",
    "Helper { Type ftp inet tcp { Policy bar { ExpectMax 1 } } }",
    "Helper { Type ftp inet tcp { Policy ftp { } } }",
    "Helper { Type rpc inet6 udp { QueueLen 10 Type tftp inet udp { } } }",
    "Helper { QueueNum 3 }",
    "Helper { Setup yes }",
    "Helper { Policy ftp { ExpectMax 1 } Type ftp inet tcp { } }",
    "Helper { Policy bar { ExpectMax 1 } Type ftp inet tcp { } }",
    "IgnoreProtocol { UDP }",
    "Sync { Multicast { IPv4_address 225.0.0.50 } ",
    "Sync {\r\n Mode FTFW {\r\n }\r\n}\r\n",
    "Sync { Mode FTFW {} } # trailing\n",
    "General { LockFile /x\u{e9}y }\n",
    "General { HashSize 1\u{e9} }",
    "General {\rHashSize 1\r}\r",
    "General { Syslog o| }",
    "General { Syslog |||}",
    "Sync { Mode ftfw{ } }",
    "General{HashSize 1}",
    "General { HashSize10 }",
    "General { UNIX { Path /tmp/a\"b } }",
    "General { Filter { Address Accept { IPv6_address 1:2:3:4:5:6:7:8:9 } } }",
    "General { Filter { Address Accept { IPv6_address 1:2:3:4:5:6:7:8:: } } }",
    "General { Filter { Address Accept { IPv6_address 1:2:3:4:5:6:7::8 } } }",
    "General { Filter { Address Accept { IPv6_address abcd:ef01::1/64 } } }",
    "General { Filter { Address Accept { IPv6_address abcdef::1 } } }",
    "General { Filter { Address Accept { IPv6_address ::1/ } } }",
    "General { Filter { Address Accept { IPv4_address 1.2.3.4/ } } }",
    "General { Filter { Address Accept { IPv4_address 1.2.3.4/032 } } }",
    "General { Filter { Protocol Accept { ah esp gre l2tp mptcp udplite } } }",
    "General { Filter { Protocol Accept { ip.x } } }",
    "Sync { Multicast { Interface a } }",
    "Sync { Multicast { Interface ab1 } }",
    "Sync { Multicast { Interface abcdefg } }",
    "Sync { Multicast { Interface no } }",
    "Sync { Multicast { Interface notrack } }",
    "Sync { Multicast { Interface UDP } }",
    "Sync { Multicast { Interface eth0 } } Sync { Multicast { Interface eth1 } }",
    "Sync { Options { } Options { ExpectationSync { sip-5060 } } }",
    "Sync { TCP { IPv4_address 1.2.3.4 IPv4_Destination_Address 5.6.7.8 Port 1 Interface lo ErrorQueueLength 0 } }",
    "General { Nice -99999999999 }",
    "General { Nice - 5 }",
    "General { LockFile / }",
    "Helper { }",
    "Helper { Type ssdp inet tcp { Policy ssdp { ExpectTimeout 5 } Policy ssdp { ExpectMax 1 } } }",
    "Helper { Type amanda inet udp { Policy amandaamandaamanda { ExpectMax 1 } } }",
    "Helper { Type dhcpv6 inet6 udp { } Type mdns inet udp { } Type sane inet tcp { } Type slp inet udp { } Type tns inet tcp { } }",
    "Stats { LogFile off Syslog foo }",
    "\u{feff}General { }",
    "General { HashSize 1 }\u{0}",
];

#[test]
fn test_edge_cases_agree_with_c_daemon() {
    let dir = std::env::temp_dir().join(format!("conntrackd-rs-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut mismatches = Vec::new();
    for (i, text) in EDGE_CASES.iter().enumerate() {
        let path = dir.join(format!("case{i}.conf"));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let ours = config::load(&path);
        let theirs = c_verdict(&path);
        if ours.is_ok() != theirs.is_ok() {
            mismatches.push(format!(
                "{text:?}: ours {}, C {}",
                ours.as_ref()
                    .map_or_else(|e| format!("rejects ({e})"), |_| "accepts".into()),
                theirs.map_or_else(|l| format!("rejects ({})", l.trim()), |()| "accepts".into())
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
#[ignore = "manual: prints the diagnostics of $CONF"]
fn show_diagnostics() {
    let path = std::env::var("CONF").unwrap_or_default();
    match config::load(Path::new(&path)) {
        Ok(c) => {
            println!("{}", c.summary());
            for w in &c.warnings {
                println!("{w}");
            }
        }
        Err(e) => println!("{e}"),
    }
}

/// Mutated copies of the valid files, each judged by us and by the C daemon. Slow (one C
/// process per case), hence ignored by default: `cargo test -- --ignored differential`.
#[test]
#[ignore = "slow: spawns the C daemon for each of ~1500 mutated files"]
fn differential_fuzz_against_c_daemon() {
    let mut corpus: Vec<Vec<u8>> = conf_files(&repo().join("conf"))
        .iter()
        .chain(conf_files(Path::new(VECTOR_CONFIGS)).iter())
        .filter_map(|p| std::fs::read(p).ok())
        .collect();
    corpus.extend(EDGE_CASES.iter().map(|s| s.as_bytes().to_vec()));
    let tokens: &[&[u8]] = &[
        b"{",
        b"}",
        b" ",
        b"\n",
        b"#",
        b"/x",
        b"on",
        b"off",
        b"1",
        b"-1",
        b"::1",
        b"1.2.3.4",
        b"dead",
        b"TCP",
        b"Default",
        b"for TCP",
        b"ESTABLISHED",
        b"Mode",
        b"FTFW",
        b"x",
        b"Checksum",
        b"Port",
        b"Group",
        b"Interface",
        b"IPv4_address",
        b"Filter",
        b"Sync",
        b"General",
        b"Stats",
        b"Helper",
        b"Type",
        b"Policy",
        b"\t",
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let dir = std::env::temp_dir().join(format!("conntrackd-rs-diff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut mismatches = Vec::new();
    let mut rejected = 0usize;
    let rounds = std::env::var("DIFF_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    for round in 0..rounds {
        let base = &corpus[usize::try_from(rnd() % corpus.len() as u64).unwrap_or(0)];
        let mut g = base.clone();
        if rnd() % 2 == 0 {
            // Word-level: replace one blank-separated word, keeping the structure.
            let text = String::from_utf8_lossy(base).into_owned();
            let mut words: Vec<&str> = text.split(' ').collect();
            let i = usize::try_from(rnd() % words.len() as u64).unwrap_or(0);
            let values = [
                "on",
                "OFF",
                "yes",
                "No",
                "0",
                "7",
                "-3",
                "+3",
                "99999999999",
                "1.2.3.4",
                "10.0.0.0/8",
                "::1",
                "fe80::/10",
                "cafe",
                "eth0",
                "/tmp/x",
                "TCP",
                "UDP",
                "icmp",
                "local0",
                "daemon",
                "rr",
                "FIFO",
                "ALARM",
                "notrack",
                "Accept",
                "Ignore",
                "Default",
                "{}",
                "",
            ];
            words[i] = values[usize::try_from(rnd() % values.len() as u64).unwrap_or(0)];
            g = words.join(" ").into_bytes();
        }
        for _ in 0..rnd() % 2 {
            let i = usize::try_from(rnd() % (g.len() as u64 + 1)).unwrap_or(0);
            let t = tokens[usize::try_from(rnd() % tokens.len() as u64).unwrap_or(0)];
            match rnd() % 3 {
                0 => g.splice(i..i, t.iter().copied()).for_each(drop),
                1 if i < g.len() => {
                    let end = (i + 1 + usize::try_from(rnd() % 12).unwrap_or(0)).min(g.len());
                    g.drain(i..end);
                }
                _ => {
                    let end = (i + t.len()).min(g.len());
                    g.splice(i..end, t.iter().copied()).for_each(drop);
                }
            }
        }
        let path = dir.join(format!("d{round}.conf"));
        std::fs::write(&path, &g).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let ours = config::load(&path);
        let theirs = c_verdict(&path);
        rejected += usize::from(theirs.is_err());
        if ours.is_ok() != theirs.is_ok() {
            mismatches.push(format!(
                "{:?}\n  ours: {}\n  C: {}",
                String::from_utf8_lossy(&g),
                ours.as_ref()
                    .map_or_else(ToString::to_string, |_| "accepts".into()),
                theirs.map_or_else(|l| l.trim().to_owned(), |()| "accepts".into())
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{rounds} cases, {rejected} rejected by both");
    assert!(
        rejected > 0 && rejected < rounds,
        "the mutations must produce both verdicts"
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
