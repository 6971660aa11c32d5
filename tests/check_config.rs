//! `conntrackd --check-config`: the binary itself, on Debian's examples (read in place), our
//! own configs and the invalid ones, in both argument orders.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_conntrackd");
const DEBIAN_EXAMPLES: &str = "/usr/share/doc/conntrackd/examples";

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run our conntrackd binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn debian_examples() -> Vec<PathBuf> {
    let files: Vec<PathBuf> = ["sync/alarm", "sync/ftfw", "sync/notrack", "stats"]
        .iter()
        .map(|d| Path::new(DEBIAN_EXAMPLES).join(d).join("conntrackd.conf"))
        .collect();
    for f in &files {
        assert!(
            f.is_file(),
            "{} is missing: run `make deps` (Debian's conntrackd package)",
            f.display()
        );
    }
    files
}

fn conf_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no .conf files in {}", dir.display());
    v
}

#[test]
fn check_config_accepts_debian_examples_and_ours() {
    let mut files = debian_examples();
    files.extend(conf_files("conf"));
    for f in files {
        let f = f.to_str().unwrap();
        for args in [["--check-config", "-C", f], ["-C", f, "--check-config"]] {
            let out = run(&args);
            let stdout = text(&out.stdout);
            assert!(
                out.status.success(),
                "{args:?} failed: {}{}",
                stdout,
                text(&out.stderr)
            );
            // One summary line naming the file and the mode.
            assert_eq!(stdout.lines().count(), 1, "{args:?}: {stdout}");
            assert!(stdout.starts_with(&format!("{f}: OK: mode ")), "{stdout}");
        }
    }
}

#[test]
fn check_config_names_mode_and_channel_of_debian_ftfw_example() {
    let f = Path::new(DEBIAN_EXAMPLES).join("sync/ftfw/conntrackd.conf");
    let out = run(&["--check-config", "-C", f.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    // The example names eth2 and 225.0.0.50; neither has to exist on this machine.
    assert!(stdout.contains("mode FTFW"), "{stdout}");
    assert!(stdout.contains("multicast 225.0.0.50 on eth2"), "{stdout}");
}

#[test]
fn check_config_rejects_each_invalid_file_with_its_position() {
    for f in conf_files("conf/invalid") {
        let body = std::fs::read_to_string(&f).unwrap();
        // Line 1 of each invalid file: `# expect: LINE:COL: text`.
        let want = body
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: no `# expect:` line", f.display()));
        let (pos, msg) = want.split_once(": ").expect("LINE:COL: text");
        let fs = f.to_str().unwrap();
        let out = run(&["--check-config", "-C", fs]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{fs}: {stderr}");
        assert!(out.stdout.is_empty(), "{fs}: printed a summary");
        let line = format!("{fs}:{pos}: ");
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&line) && l.contains(msg)),
            "{fs}: wanted `{line}…{msg}…` in:\n{stderr}"
        );
    }
}

#[test]
fn check_config_reports_every_error_at_once() {
    let dir = std::env::temp_dir().join(format!("ctd-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("two-errors.conf");
    std::fs::write(
        &f,
        "General {\n  HashSize 0x10\n}\nSync {\n  Mode FTFW { }\n  Bogus 1\n}\n",
    )
    .unwrap();
    let out = run(&["--check-config", "-C", f.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(out.status.code(), Some(1));
    let fs = f.to_str().unwrap();
    assert!(stderr.contains(&format!("{fs}:2:")), "{stderr}");
    assert!(stderr.contains(&format!("{fs}:6:")), "{stderr}");
}

#[test]
fn missing_config_file_is_an_error() {
    let out = run(&["--check-config", "-C", "/nonexistent/conntrackd.conf"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/conntrackd.conf"));
}

#[test]
fn cli_quirks_exit_codes() {
    // Unknown option: usage on stdout, message on stderr, exit 0 (as the C daemon).
    let out = run(&["-Z"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("Usage:"));
    assert!(text(&out.stderr).contains("Unknown option: -Z"));
    // Bad -s parameter: exit 1.
    assert_eq!(run(&["-s", "bogus"]).status.code(), Some(1));
    // -v prints a version and exits 0.
    let out = run(&["-v"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("1.4.7"));
}
