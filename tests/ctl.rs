//! The control socket in both directions against Debian's conntrackd 1.4.7:
//! * our client (`conntrackd -C conf -s/-i/…`) against the C daemon, reply for reply
//!   identical to the C client's, and the same effects for the action requests;
//! * the C client against our [`CtlServer`]: it sends the codes our table says, and prints
//!   exactly what our handler wrote;
//! * hostile clients against our server (unknown codes, short requests, silent clients, a
//!   flood), and the lock file against the C daemon's message.

use std::fs;
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use conntrackd::cli::{self, Invocation};
use conntrackd::ctl::client::CANT_CONNECT;
use conntrackd::ctl::proto::RequestCode;
use conntrackd::ctl::server::{CtlHandler, CtlServer};
use conntrackd::ctl::{LockError, LockFile};

use crate::util::bulk::create_tcp_flows;
use crate::util::daemon::{DIR, general, udp_config};
use crate::util::{
    C_CONNTRACKD, CDaemon, NetNs, OUR_CONNTRACKD, TempDir, Veth, ct_insert, ct_list,
    enable_conntrack, require_root, wait_until,
};

/// Runs our binary as a client of `d` inside `ns`.
fn our_ctl(ns: &NetNs, d: &CDaemon, args: &[&str]) -> Output {
    let conf = d.conf_path();
    let mut argv = vec![OUR_CONNTRACKD, "-C", conf.to_str().unwrap()];
    argv.extend_from_slice(args);
    ns.exec(&argv)
}

/// `[ctime] (pid=N) ` removed from every line, so that log-style stderr compares.
fn strip_log_prefix(text: &[u8]) -> String {
    String::from_utf8_lossy(text)
        .lines()
        .map(|l| match l.find(") [") {
            Some(i) if l.starts_with('[') => &l[i + 2..],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Our client's reply to `args` equals the C client's one taken just before or just after
/// (counters such as bytes sent move between calls; a few attempts absorb that). Exit
/// status and stderr (minus the time/pid prefix) must match too.
fn expect_same_reply(ns: &NetNs, d: &CDaemon, args: &[&str]) -> String {
    let mut last = None;
    for _ in 0..8 {
        let before = d.ctl(args);
        let ours = our_ctl(ns, d, args);
        let after = d.ctl(args);
        assert_eq!(
            ours.status.code(),
            before.status.code(),
            "{args:?} exit status"
        );
        assert_eq!(
            strip_log_prefix(&ours.stderr),
            strip_log_prefix(&before.stderr),
            "{args:?} stderr"
        );
        if ours.stdout == before.stdout || ours.stdout == after.stdout {
            return String::from_utf8_lossy(&ours.stdout).into_owned();
        }
        last = Some((before, ours, after));
        thread::sleep(Duration::from_millis(150));
    }
    let (before, ours, after) = last.unwrap();
    panic!(
        "{args:?}: our client printed\n{}\nC client printed\n{}\n(then)\n{}\n{}",
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&before.stdout),
        String::from_utf8_lossy(&after.stdout),
        d.dump()
    );
}

/// Two namespaces joined on 10.231.6.0/24 with C daemons syncing FTFW over UDP, with
/// ExpectationSync so that the expect requests are served.
fn ftfw_pair(tag: &str, port: u16) -> (NetNs, NetNs, Veth, CDaemon, CDaemon) {
    let a = NetNs::new(&format!("{tag}a"));
    let b = NetNs::new(&format!("{tag}b"));
    let veth = Veth::connect(&a, "vkA", "10.231.6.1/24", &b, "vkB", "10.231.6.2/24");
    enable_conntrack(&a);
    enable_conntrack(&b);
    let mode = "Mode FTFW { }\n\tOptions { ExpectationSync on }";
    let da = CDaemon::start(
        &a,
        &udp_config(mode, "vkA", "10.231.6.1", "10.231.6.2", port),
    );
    let db = CDaemon::start(
        &b,
        &udp_config(mode, "vkB", "10.231.6.2", "10.231.6.1", port),
    );
    (a, b, veth, da, db)
}

fn insert_flows(ns: &NetNs) {
    ct_insert(
        ns,
        &[
            "-p",
            "tcp",
            "-s",
            "10.231.7.1",
            "-d",
            "10.231.7.2",
            "--sport",
            "40000",
            "--dport",
            "80",
            "--state",
            "ESTABLISHED",
            "-u",
            "SEEN_REPLY,ASSURED",
            "-m",
            "9",
            "-t",
            "300",
        ],
    );
    ct_insert(
        ns,
        &[
            "-p",
            "udp",
            "-s",
            "2001:db8::1",
            "-d",
            "2001:db8::2",
            "--sport",
            "5000",
            "--dport",
            "53",
            "-t",
            "300",
        ],
    );
    ct_insert(
        ns,
        &[
            "-p",
            "icmp",
            "-s",
            "10.231.7.1",
            "-d",
            "10.231.7.3",
            "--icmp-type",
            "8",
            "--icmp-code",
            "0",
            "--icmp-id",
            "4660",
            "-t",
            "300",
        ],
    );
}

/// How many lines of a dump are flows of [`insert_flows`] (the sync link's own UDP flows
/// are tracked too).
fn test_flows(dump: &str) -> usize {
    dump.lines()
        .filter(|l| l.contains("src=10.231.7.") || l.contains("src=2001:db8::1 "))
        .count()
}

/// Waits until the three flows of [`insert_flows`] are in b's external cache.
fn wait_replicated(da: &CDaemon, db: &CDaemon) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while test_flows(&db.expect_ctl(&["-e"])) != 3 {
        assert!(
            Instant::now() < deadline,
            "a -i:\n{}\nb -e:\n{}\n{}",
            da.expect_ctl(&["-i"]),
            db.expect_ctl(&["-e"]),
            db.dump()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn our_client_prints_what_the_c_client_prints() {
    let (a, b, _veth, da, db) = ftfw_pair("cq", 3795);
    insert_flows(&a);
    wait_replicated(&da, &db);
    for (ns, d) in [(&a, &da), (&b, &db)] {
        for args in [
            &["-s"][..],
            &["-s", "ct"],
            &["-s", "cache"],
            &["-s", "runtime"],
            &["-s", "network"],
            &["-s", "link"],
            &["-s", "multicast"],
            &["-s", "rsqueue"],
            &["-s", "queue"],
            &["-s", "process"],
            &["-s", "expect"],
            &["-i"],
            &["-e"],
            &["-i", "-x"],
            &["-e", "-x"],
            &["-i", "expect"],
            &["-e", "expect"],
            &["-i", "expect", "-x"],
        ] {
            expect_same_reply(ns, d, args);
        }
    }
    // Unknown codes: the C daemon answers nothing, as our server does (see
    // our_server_survives_bad_clients).
    for code in [2, 27, 49, 99] {
        assert_eq!(da.request(code).unwrap(), b"", "code {code}");
    }
    // Not vacuous: the dumps compared above held the flows.
    let internal = expect_same_reply(&a, &da, &["-i"]);
    assert_eq!(test_flows(&internal), 3, "{internal}");
    assert!(internal.contains("src=2001:db8::1"), "{internal}");
    let external = expect_same_reply(&b, &db, &["-e"]);
    assert!(external.contains("dport=80 [ASSURED] mark=9"), "{external}");
}

#[test]
fn our_client_actions_take_effect_on_the_c_daemon() {
    let (a, b, _veth, da, mut db) = ftfw_pair("ca", 3796);
    insert_flows(&a);
    wait_replicated(&da, &db);
    let ok = |ns: &NetNs, d: &CDaemon, args: &[&str]| {
        let out = our_ctl(ns, d, args);
        assert!(
            out.status.success() && out.stdout.is_empty(),
            "{args:?}: {out:?}\n{}",
            d.dump()
        );
    };

    // -c blocks until the commit is done: the kernel has the flows when it returns.
    assert!(ct_list(&b).iter().all(|l| !l.contains("10.231.7.1")));
    ok(&b, &db, &["-c"]);
    let table = ct_list(&b);
    assert!(
        table.iter().any(|l| l.contains("dport=80")),
        "commit did not reach the kernel: {table:?}\n{}",
        db.dump()
    );

    // -f internal empties a's internal cache; -R reads the kernel table back into it.
    ok(&a, &da, &["-f", "internal"]);
    let dump = da.expect_ctl(&["-i"]);
    assert_eq!(test_flows(&dump), 0, "{dump}");
    ok(&a, &da, &["-R"]);
    wait_until(Duration::from_secs(5), "resync fills the cache", || {
        test_flows(&da.expect_ctl(&["-i"])) == 3
    });

    // The rest of keepalived's vocabulary: all accepted with exit 0 and no output.
    for args in [
        &["-B"][..],
        &["-n"],
        &["-t"],
        &["-f"],
        &["-f", "external"],
        &["-c", "ct"],
        &["-R", "ct"],
    ] {
        ok(&b, &db, args);
    }
    ok(&b, &db, &["-F"]);
    wait_until(Duration::from_secs(5), "b's kernel table flushed", || {
        ct_list(&b).is_empty()
    });

    // -k stops the daemon cleanly: exit 0, socket and lock file gone.
    ok(&b, &db, &["-k"]);
    wait_until(Duration::from_secs(5), "daemon exit after -k", || {
        !db.is_running()
    });
    assert!(!db.socket_path().exists() && !db.lock_path().exists());
    assert!(db.log().contains("shutdown received"), "{}", db.dump());

    // Nobody listens any more: both clients say so the same way, exit 1.
    let ours = our_ctl(&b, &db, &["-s"]);
    let theirs = db.ctl(&["-s"]);
    assert_eq!(ours.status.code(), Some(1));
    assert_eq!(theirs.status.code(), Some(1));
    assert!(ours.stdout.is_empty());
    assert_eq!(
        strip_log_prefix(&ours.stderr),
        strip_log_prefix(&theirs.stderr)
    );
    assert_eq!(
        strip_log_prefix(&ours.stderr),
        format!("[ERROR] {CANT_CONNECT}")
    );
}

#[test]
fn our_client_without_daemon_exits_1() {
    require_root();
    let dir = TempDir::new();
    let conf = dir.join("conntrackd.conf");
    let text = format!("{}Stats {{\n\tLogFile off\n}}\n", general(""))
        .replace(DIR, &dir.path().to_string_lossy());
    fs::write(&conf, text).unwrap();
    // Without a UNIX block there is no path at all: same message, same status.
    let no_unix = dir.join("no-unix.conf");
    let text = format!(
        "General {{\n\tLogFile off\n\tLockFile {}/lock\n}}\nStats {{\n\tLogFile off\n}}\n",
        dir.path().display()
    );
    fs::write(&no_unix, text).unwrap();
    for (bin, conf) in [
        (OUR_CONNTRACKD, &conf),
        (C_CONNTRACKD, &conf),
        (OUR_CONNTRACKD, &no_unix),
        (C_CONNTRACKD, &no_unix),
    ] {
        let out = Command::new(bin)
            .arg("-C")
            .arg(conf)
            .arg("-s")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{bin} {conf:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{bin}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        // `[Wed Nov 25 11:42:35 2026] (pid=N) [ERROR] can't connect: …`
        assert!(
            err.starts_with('[') && err.ends_with(&format!("[ERROR] {CANT_CONNECT}\n")),
            "{bin}: {err}"
        );
    }
}

/// Writes back which code it got, and a multi-chunk body for STATS.
#[derive(Debug, Default)]
struct Recorder {
    calls: AtomicUsize,
}

impl CtlHandler for Recorder {
    fn handle(&self, code: RequestCode, out: &mut dyn Write) -> io::Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        writeln!(out, "code={}", code.0)?;
        if code == RequestCode::STATS {
            // Larger than the C client's 1023-byte read buffer.
            for i in 0..200 {
                writeln!(out, "line {i:04} of a long reply")?;
            }
        }
        Ok(())
    }
}

/// A directory with a config whose UNIX path is `ctl`, for clients of our server.
fn client_conf() -> (TempDir, PathBuf, PathBuf) {
    let dir = TempDir::new();
    let conf = dir.join("conntrackd.conf");
    let text = format!("{}Stats {{\n\tLogFile off\n}}\n", general(""))
        .replace(DIR, &dir.path().to_string_lossy());
    fs::write(&conf, text).unwrap();
    let sock = dir.join("ctl");
    (dir, conf, sock)
}

#[test]
fn c_client_talks_to_our_server() {
    require_root();
    let (_dir, conf, sock) = client_conf();
    let handler = Arc::new(Recorder::default());
    let server = CtlServer::bind(&sock)
        .unwrap()
        .serve(handler.clone())
        .unwrap();
    let cases: &[&[&str]] = &[
        &["-s"],
        &["-s", "ct"],
        &["-s", "network"],
        &["-s", "cache"],
        &["-s", "runtime"],
        &["-s", "link"],
        &["-s", "multicast"],
        &["-s", "rsqueue"],
        &["-s", "process"],
        &["-s", "queue"],
        &["-s", "expect"],
        &["-i"],
        &["-i", "ct"],
        &["-i", "expect"],
        &["-i", "-x"],
        &["-i", "expect", "-x"],
        &["-e"],
        &["-e", "expect"],
        &["-e", "-x"],
        &["-e", "expect", "-x"],
        &["-c"],
        &["-c", "ct"],
        &["-c", "expect"],
        &["-f"],
        &["-f", "internal"],
        &["-f", "external"],
        &["-F"],
        &["-F", "ct"],
        &["-F", "expect"],
        &["-R"],
        &["-R", "ct"],
        &["-R", "expect"],
        &["-B"],
        &["-n"],
        &["-t"],
        &["-k"],
    ];
    for args in cases {
        // What our parser and table say the C client sends…
        let Invocation {
            command: cli::Command::Client(req),
            ..
        } = cli::parse(args).unwrap()
        else {
            panic!("{args:?} is not a client request");
        };
        let code = RequestCode::from_request(req);
        // …is what the C client sends, and it prints our reply untouched.
        let out = Command::new(C_CONNTRACKD)
            .arg("-C")
            .arg(&conf)
            .args(*args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let first = stdout.lines().next().unwrap_or_default();
        assert_eq!(first, format!("code={}", code.0), "{args:?}");
        if code == RequestCode::STATS {
            assert_eq!(stdout.lines().count(), 201);
            assert!(stdout.ends_with("line 0199 of a long reply\n"));
        }
        // And our client prints the same bytes.
        let ours = Command::new(OUR_CONNTRACKD)
            .arg("-C")
            .arg(&conf)
            .args(*args)
            .output()
            .unwrap();
        assert!(ours.status.success(), "{args:?}: {ours:?}");
        assert_eq!(String::from_utf8(ours.stdout).unwrap(), stdout, "{args:?}");
    }
    assert_eq!(handler.calls.load(Ordering::Relaxed), 2 * cases.len());
    server.shutdown();
    assert!(!sock.exists(), "socket left behind");
}

fn raw(sock: &Path, bytes: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(sock).unwrap();
    s.write_all(bytes).unwrap();
    // Half-close so that a short request is seen as such at once (no read timeout).
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    reply
}

#[test]
fn our_server_survives_bad_clients() {
    let dir = TempDir::new();
    let sock = dir.join("ctl");
    let server = CtlServer::bind(&sock)
        .unwrap()
        .serve(Arc::new(Recorder::default()))
        .unwrap();
    let stats_reply = || raw(&sock, &RequestCode::STATS.to_bytes());
    let good = stats_reply();
    assert!(good.starts_with(b"code=21\n"));

    // Unknown codes and short requests: no bytes, connection closed, as the C daemon.
    for code in [2, 15, 49, 99, -1, i32::MAX] {
        assert_eq!(raw(&sock, &code.to_ne_bytes()), b"", "code {code}");
    }
    assert_eq!(raw(&sock, &[21, 0]), b"");
    assert_eq!(raw(&sock, &[]), b"");
    assert_eq!(server.stats().unknown_request(), 6);
    assert_eq!(server.stats().read_failed(), 2);

    // Clients that connect and never write do not hold anyone else up.
    let silent: Vec<UnixStream> = (0..10)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    let t = Instant::now();
    assert_eq!(stats_reply(), good);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    // They are dropped after the read timeout (1 s): EOF, no reply.
    for mut s in silent {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        assert!(buf.is_empty());
    }

    // A flood: 200 clients at once all get the whole reply.
    let t = Instant::now();
    let threads: Vec<_> = (0..200)
        .map(|_| {
            let sock = sock.clone();
            thread::spawn(move || raw(&sock, &RequestCode::STATS.to_bytes()))
        })
        .collect();
    for th in threads {
        assert_eq!(th.join().unwrap(), good);
    }
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // Still serving.
    assert_eq!(stats_reply(), good);
    server.shutdown();
}

#[test]
fn our_server_replaces_stale_socket_and_cleans_up() {
    let dir = TempDir::new();
    let sock = dir.join("ctl");
    // What a SIGKILLed daemon leaves behind: a socket file nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let server = CtlServer::bind(&sock)
        .unwrap()
        .serve(Arc::new(Recorder::default()))
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "C daemon sockets are srw-------");
    assert!(raw(&sock, &RequestCode::STATS.to_bytes()).starts_with(b"code=21"));
    drop(server);
    assert!(!sock.exists());
}

#[test]
fn lock_file_matches_the_c_daemon() {
    let a = NetNs::new("lk");
    let conf = format!("{}Stats {{\n\tLogFile off\n}}\n", general(""));
    let d = CDaemon::start(&a, &conf);
    // The C daemon's lock is held: ours refuses with the C daemon's own words.
    let err = LockFile::acquire(d.lock_path()).unwrap_err();
    assert!(matches!(err, LockError::Exists(_)), "{err:?}");
    // A second C daemon with the same LockFile refuses with the same sentence, exit 1.
    let lock = d.lock_path();
    let conf2 = conf.replace(&format!("{DIR}/lock"), &lock.to_string_lossy());
    let mut second = CDaemon::spawn_bin(Path::new(C_CONNTRACKD), &a, &conf2);
    wait_until(Duration::from_secs(5), "second daemon exits", || {
        !second.is_running()
    });
    assert_eq!(second.try_wait().and_then(|s| s.code()), Some(1));
    let text = format!("{}{}", second.log(), second.output());
    assert!(
        text.contains(&err.to_string()),
        "ours: {err}
C: {text}"
    );
    assert!(lock.exists(), "the refused daemon must not remove the lock");

    // Ours: exclusive, and removed on drop.
    let dir = TempDir::new();
    let path = dir.join("lock");
    let lock = LockFile::acquire(&path).unwrap();
    let err = LockFile::acquire(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "lockfile `{}' exists, perhaps conntrackd already running?",
            path.display()
        )
    );
    drop(lock);
    assert!(!path.exists());
}

/// Holds every commit for `delay`, answers everything else at once.
#[derive(Debug)]
struct SlowCommit {
    delay: Duration,
}

impl CtlHandler for SlowCommit {
    fn handle(&self, code: RequestCode, out: &mut dyn Write) -> io::Result<()> {
        if matches!(
            code,
            RequestCode::ALL_COMMIT | RequestCode::CT_COMMIT | RequestCode::EXP_COMMIT
        ) {
            thread::sleep(self.delay);
            return Ok(());
        }
        writeln!(out, "code={}", code.0)
    }
}

#[test]
fn c_client_commit_blocks_while_others_are_served() {
    require_root();
    let (_dir, conf, sock) = client_conf();
    let delay = Duration::from_millis(1500);
    let _server = CtlServer::bind(&sock)
        .unwrap()
        .serve(Arc::new(SlowCommit { delay }))
        .unwrap();
    let t = Instant::now();
    let commit = {
        let conf = conf.clone();
        thread::spawn(move || {
            Command::new(C_CONNTRACKD)
                .arg("-C")
                .arg(&conf)
                .arg("-c")
                .output()
                .unwrap()
        })
    };
    // While the commit runs, the C client's -s is answered at once.
    thread::sleep(Duration::from_millis(200));
    let t_stats = Instant::now();
    let out = Command::new(C_CONNTRACKD)
        .arg("-C")
        .arg(&conf)
        .arg("-s")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "code=21\n");
    assert!(
        t_stats.elapsed() < Duration::from_millis(700),
        "{:?}",
        t_stats.elapsed()
    );
    assert!(!commit.is_finished(), "-c returned before the commit ended");
    // -c returns (exit 0, no output) only when the handler is done.
    let out = commit.join().unwrap();
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    assert!(t.elapsed() >= delay, "{:?}", t.elapsed());
    // Our client blocks the same way.
    let t = Instant::now();
    let out = Command::new(OUR_CONNTRACKD)
        .arg("-C")
        .arg(&conf)
        .arg("-c")
        .output()
        .unwrap();
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    assert!(t.elapsed() >= delay, "{:?}", t.elapsed());
}

#[test]
fn our_client_matches_c_client_on_expectations() {
    // client --(10.231.3.0/24)-- a (FTP server, helper, daemon) --(10.231.2.0/24)-- b
    let a = NetNs::new("xea");
    let b = NetNs::new("xeb");
    let _sync = Veth::connect(&a, "vcA", "10.231.2.1/24", &b, "vcB", "10.231.2.2/24");
    let client = NetNs::new("xec");
    Veth::connect(&client, "vfC", "10.231.3.1/24", &a, "vfS", "10.231.3.2/24");
    enable_conntrack(&client);
    crate::util::enable_conntrack_with_ftp(&a);
    enable_conntrack(&b);
    let sync = "Mode FTFW { }\n\tOptions { ExpectationSync on }";
    let da = CDaemon::start(
        &a,
        &udp_config(sync, "vcA", "10.231.2.1", "10.231.2.2", 3797),
    );
    let db = CDaemon::start(
        &b,
        &udp_config(sync, "vcB", "10.231.2.2", "10.231.2.1", 3797),
    );
    let session = crate::util::make_expectation(&client, &a, "10.231.3.2".parse().unwrap(), 50003);
    session.expect_expectation(&a);
    wait_until(
        Duration::from_secs(5),
        "expectation in b's external cache",
        || db.expect_ctl(&["-e", "expect"]).contains("dport=50003"),
    );
    for args in [
        &["-i", "expect"][..],
        &["-i", "expect", "-x"],
        &["-s", "expect"],
    ] {
        let text = expect_same_reply(&a, &da, args);
        assert!(!text.is_empty(), "{args:?}");
    }
    for args in [&["-e", "expect"][..], &["-e", "expect", "-x"]] {
        let text = expect_same_reply(&b, &db, args);
        assert!(text.contains("50003"), "{args:?}: {text}");
    }
}

/// Two namespaces on 10.231.5.0/24 running C daemons in `mode` over UDP.
fn pair_with_mode(tag: &str, mode: &str, port: u16) -> (NetNs, NetNs, Veth, CDaemon, CDaemon) {
    let a = NetNs::new(&format!("{tag}a"));
    let b = NetNs::new(&format!("{tag}b"));
    let veth = Veth::connect(&a, "vmA", "10.231.5.1/24", &b, "vmB", "10.231.5.2/24");
    enable_conntrack(&a);
    enable_conntrack(&b);
    let da = CDaemon::start(
        &a,
        &udp_config(mode, "vmA", "10.231.5.1", "10.231.5.2", port),
    );
    let db = CDaemon::start(
        &b,
        &udp_config(mode, "vmB", "10.231.5.2", "10.231.5.1", port),
    );
    (a, b, veth, da, db)
}

#[test]
fn alarm_external_dump_has_expiry_suffix() {
    let mode = "Mode ALARM { RefreshTime 5 CacheTimeout 15 }";
    let (a, b, _veth, da, db) = pair_with_mode("al", mode, 3798);
    insert_flows(&a);
    wait_replicated(&da, &db);
    let external = expect_same_reply(&b, &db, &["-e"]);
    let line = external
        .lines()
        .find(|l| l.contains("dport=80"))
        .unwrap_or_else(|| panic!("{external}"));
    // `… mark=9 [expires in 14s] [active since 0s]`: what render::dump_line writes.
    let (text, suffix) = line.split_once(" [expires in ").unwrap();
    let (expires, active) = suffix.split_once("s] [active since ").unwrap();
    let active = active.strip_suffix("s]").unwrap();
    let rebuilt = conntrackd::ctl::render::dump_line(
        text,
        Some(expires.parse().unwrap()),
        active.parse().unwrap(),
    );
    assert_eq!(rebuilt, format!("{line}\n"));
    expect_same_reply(&a, &da, &["-s"]);
    expect_same_reply(&b, &db, &["-s", "cache"]);
}

#[test]
fn bypass_and_inject_blocks_match_the_c_daemon() {
    use conntrackd::ctl::render::stats::{
        ActiveLink, CacheSummary, ChannelKind, ExternalSummary, InternalSummary, LinkCounters,
        SyncSummary, Traffic, sync_summary,
    };
    let mode = "Mode NOTRACK {\n\t\tDisableInternalCache on\n\t\tDisableExternalCache on\n\t}";
    let (a, _b, _veth, da, _db) = pair_with_mode("by", mode, 3799);
    let c = expect_same_reply(&a, &da, &["-s"]);
    // Nothing tracked yet: every cache counter is 0, so everything up to the link counters
    // is fixed text, and ours must equal it byte for byte.
    let ours = sync_summary(&SyncSummary {
        internal: InternalSummary::Bypass {
            new: 0,
            updated: 0,
            destroyed: 0,
        },
        external: ExternalSummary::Inject(CacheSummary::default()),
        traffic: Traffic::default(),
        link: ActiveLink {
            kind: ChannelKind::Udp,
            device: "vmA".into(),
            tcp_connected: None,
            counters: LinkCounters::default(),
        },
        malformed: 0,
        lost: 0,
    });
    let fixed = |s: &str| s[..s.find("UDP traffic").unwrap()].to_owned();
    assert_eq!(fixed(&ours), fixed(&c), "C printed:\n{c}");
    assert!(c.starts_with("internal bypass:\n"), "{c}");
}

#[test]
fn tcp_link_header_matches_the_c_daemon() {
    use conntrackd::ctl::render::stats::{ActiveLink, ChannelKind, LinkCounters, active_link};
    let a = NetNs::new("tca");
    let b = NetNs::new("tcb");
    let _veth = Veth::connect(&a, "vtA", "10.231.9.1/24", &b, "vtB", "10.231.9.2/24");
    let tcp = |conf: String| conf.replace("\tUDP {", "\tTCP {");
    let mode = "Mode NOTRACK { }";
    let da = CDaemon::start(
        &a,
        &tcp(udp_config(mode, "vtA", "10.231.9.1", "10.231.9.2", 3800)),
    );
    let db = CDaemon::start(
        &b,
        &tcp(udp_config(mode, "vtB", "10.231.9.2", "10.231.9.1", 3800)),
    );
    // Both sides connect to each other; wait until a reports both directions up.
    wait_until(Duration::from_secs(10), "TCP link connected", || {
        da.expect_ctl(&["-s"])
            .contains("server=connected client=connected")
    });
    let c = expect_same_reply(&a, &da, &["-s"]);
    let header = c
        .lines()
        .find(|l| l.starts_with("TCP traffic"))
        .unwrap_or_else(|| panic!("{c}"));
    let mut ours = String::new();
    active_link(
        &mut ours,
        &ActiveLink {
            kind: ChannelKind::Tcp,
            device: "vtA".into(),
            tcp_connected: Some((true, true)),
            counters: LinkCounters::default(),
        },
    );
    assert_eq!(ours.lines().next().unwrap(), header);
    let link = expect_same_reply(&a, &da, &["-s", "link"]);
    assert!(
        link.starts_with("TCP traffic device=vtA status=RUNNING role=ACTIVE:\n"),
        "{link}"
    );
    drop(db);
}

/// `n` established TCP entries 10.231.100.0/24 → 10.232.200.1:80 (flows `first..`), created
/// through ctnetlink in batches from inside `ns`.
fn bulk_create_flows(ns: &NetNs, first: u32, n: u32) {
    create_tcp_flows(ns, [10, 231, 100], Ipv4Addr::new(10, 232, 200, 1), first, n);
}

/// One request on the control socket with a long read timeout (a commit holds the client).
fn request_long(sock: &Path, code: i32) -> Vec<u8> {
    let mut s = UnixStream::connect(sock).expect("connect to the control socket");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s.write_all(&code.to_ne_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read the reply");
    out
}

/// Replaces the number after each `key` with `*` (sequence numbers start at the clock).
fn mask_numbers_after(text: &str, key: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(key) {
        out.push_str(&rest[..i + key.len()]);
        rest = &rest[i + key.len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        out.push('*');
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// `-s queue`, `-s rsqueue` and `-s process` of an FTFW daemon whose peer never answers
/// (its address is on a veth into a namespace without a daemon), C and ours in the same
/// situation: three replicated flows and two RESYNC requests wait in the resend queue.
#[test]
fn queue_replies_match_c_with_a_silent_peer() {
    require_root();
    crate::util::contain_test_ranges();
    let start = |tag: &str, bin: &str, net: u8| {
        let ns = NetNs::new(tag);
        let sink = NetNs::new(&format!("{tag}s"));
        let veth = Veth::connect(
            &ns,
            "vq",
            &format!("10.232.{net}.1/24"),
            &sink,
            "vqs",
            &format!("10.232.{net}.2/24"),
        );
        // No conntrack rules: the daemon's own sync datagrams must not become flows that it
        // replicates too; `conntrack -I` entries still raise events.
        let conf = udp_config(
            "Mode FTFW { }",
            "vq",
            &format!("10.232.{net}.1"),
            &format!("10.232.{net}.2"),
            3870,
        );
        let d = CDaemon::start_bin(Path::new(bin), &ns, &conf);
        (ns, sink, veth, d)
    };
    let (cn, _cs, _cv, c) = start("qc", C_CONNTRACKD, 71);
    let (on, _os, _ov, o) = start("qo", OUR_CONNTRACKD, 72);
    for ns in [&cn, &on] {
        for (p, sport) in [("udp", "1000"), ("udp", "1001"), ("tcp", "1002")] {
            let mut args = vec![
                "-p",
                p,
                "-s",
                "10.231.9.1",
                "-d",
                "10.231.9.2",
                "--sport",
                sport,
                "--dport",
                "80",
                "-t",
                "100",
            ];
            if p == "tcp" {
                args.extend(["--state", "ESTABLISHED"]);
            }
            ct_insert(ns, &args);
        }
    }
    let rsqueue = |d: &CDaemon| String::from_utf8_lossy(&d.request(32).unwrap()).into_owned();
    wait_until(
        Duration::from_secs(20),
        "three objects in both resend queues",
        || {
            rsqueue(&c).starts_with("resent queue (len=3)\n")
                && rsqueue(&o).starts_with("resent queue (len=3)\n")
        },
    );
    for d in [&c, &o] {
        d.request(23).unwrap();
        d.request(23).unwrap();
    }
    wait_until(
        Duration::from_secs(20),
        "two RESYNCs in both resend queues",
        || {
            rsqueue(&c).starts_with("resent queue (len=5)\n")
                && rsqueue(&o).starts_with("resent queue (len=5)\n")
        },
    );
    let (cr, or) = (rsqueue(&c), rsqueue(&o));
    assert_eq!(
        mask_numbers_after(&or, "seq:"),
        mask_numbers_after(&cr, "seq:"),
        "-s rsqueue: ours\n{or}\nC\n{cr}"
    );
    assert!(or.ends_with("flags:34\n"), "RESYNC|HELLO as sent: {or}");
    // Sequence numbers grow along the queue.
    let seqs: Vec<u64> = or
        .lines()
        .filter_map(|l| l.split("seq:").nth(1))
        .map(|s| s.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{or}");
    let (cq, oq) = (
        String::from_utf8_lossy(&c.request(36).unwrap()).into_owned(),
        String::from_utf8_lossy(&o.request(36).unwrap()).into_owned(),
    );
    assert_eq!(oq, cq, "-s queue: ours\n{oq}\nC\n{cq}");
    assert!(
        oq.contains("queue rsqueue:\ncurrent elements:\t\t           5\n"),
        "{oq}"
    );
    assert_eq!(o.request(35).unwrap(), c.request(35).unwrap(), "-s process");
    // And through the clients.
    assert_eq!(
        mask_numbers_after(&o.expect_ctl(&["-s", "rsqueue"]), "seq:"),
        mask_numbers_after(&c.expect_ctl(&["-s", "rsqueue"]), "seq:")
    );
}

/// A `-c` that arrives while a commit runs is skipped with the C daemon's log line and
/// released at once, and `-f` is refused meanwhile (sync-modes.md §6 step 2); the running
/// commit completes. The commit is made long by a big external cache: ours replicates
/// 30000 flows to ours.
#[test]
fn second_commit_is_skipped_while_one_runs() {
    require_root();
    crate::util::contain_test_ranges();
    const N: u32 = 30_000;
    const BATCH: u32 = 2_000;
    let a = NetNs::new("cma");
    let b = NetNs::new("cmb");
    let _veth = Veth::connect(&a, "vcA", "10.232.73.1/24", &b, "vcB", "10.232.73.2/24");
    enable_conntrack(&a);
    enable_conntrack(&b);
    let ours = |ns: &NetNs, l: &str, p: &str, i: &str| {
        CDaemon::start_bin(
            Path::new(OUR_CONNTRACKD),
            ns,
            &udp_config("Mode FTFW { }", i, l, p, 3871),
        )
    };
    let da = ours(&a, "10.232.73.1", "10.232.73.2", "vcA");
    let db = ours(&b, "10.232.73.2", "10.232.73.1", "vcB");
    // In batches, each replicated before the next (a single 30k burst is issue 3).
    for first in (0..N).step_by(BATCH as usize) {
        bulk_create_flows(&a, first, BATCH);
        let want = u64::from(first + BATCH);
        wait_until(Duration::from_secs(60), "external cache filled", || {
            db.active(1) >= want
        });
    }
    // Plus the flow of the sync datagrams themselves, tracked and replicated too.
    assert!(da.active(0) >= u64::from(N));
    let external = db.active(1);
    let sock = db.socket_path();
    let before = db.log().len();
    let first = {
        let sock = sock.clone();
        thread::spawn(move || {
            let t = Instant::now();
            let reply = request_long(&sock, 46);
            (reply, t.elapsed())
        })
    };
    wait_until(Duration::from_secs(30), "the first commit to start", || {
        db.log()[before..].contains("committing all external caches")
    });
    // The commit of ~30000 entries takes about a second (debug build, loaded machine:
    // more); these two requests take well under a millisecond each.
    let t = Instant::now();
    let second = request_long(&sock, 46);
    let second_took = t.elapsed();
    let flush = request_long(&sock, 45);
    // Statistics, `-s queue` included (it asks the link thread), do not wait for it.
    let t = Instant::now();
    let queue = String::from_utf8_lossy(&request_long(&sock, 36)).into_owned();
    let queue_took = t.elapsed();
    let (first_reply, first_took) = first.join().unwrap();
    eprintln!("commit {first_took:?}, second -c {second_took:?}, -s queue {queue_took:?}");
    assert!(queue.starts_with("allocated queue nodes:"), "{queue}");
    assert!(
        queue_took < first_took,
        "-s queue waited for the commit ({queue_took:?} vs {first_took:?})"
    );
    let log = db.log()[before..].to_owned();
    assert!(first_reply.is_empty() && second.is_empty() && flush.is_empty());
    assert!(
        log.contains("[notice] commit already in progress, skipping"),
        "second -c after {second_took:?}, first took {first_took:?}: {log}"
    );
    assert_eq!(
        log.matches("] Committed ").count(),
        1,
        "only the first commit ran: {log}"
    );
    assert_eq!(
        log.matches("committing all external caches").count(),
        2,
        "{log}"
    );
    assert!(
        second_took < first_took,
        "the second client waited for the first commit ({second_took:?} vs {first_took:?})"
    );
    assert!(
        log.contains("[ERROR] ignoring flush command, commit still in progress"),
        "-f during the commit: {log}"
    );
    assert_eq!(db.active(1), external, "the refused -f flushed nothing");
    assert!(
        log.contains(&format!("Committed {external} new entries")),
        "{log}"
    );
    // Once the commit is over, -f works again.
    request_long(&sock, 45);
    wait_until(Duration::from_secs(10), "-f after the commit", || {
        db.active(1) == 0
    });

    // `-s process` while `-F` deletes the committed entries from b's kernel: the flush is
    // listed (the C daemon lists its flush child), and nothing once it is done.
    let flush = {
        let sock = sock.clone();
        thread::spawn(move || request_long(&sock, 0))
    };
    let pid = db.pid();
    let mut seen = String::new();
    wait_until(
        Duration::from_secs(30),
        "-s process to list the flush",
        || {
            seen = String::from_utf8_lossy(&request_long(&sock, 35)).into_owned();
            !seen.is_empty() || flush.is_finished()
        },
    );
    assert_eq!(seen, format!("PID={pid} type=flush\n"));
    flush.join().unwrap();
    assert_eq!(request_long(&sock, 35), b"");
}
