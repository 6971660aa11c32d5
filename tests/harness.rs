//! Tests of the fixtures in `tests/util` themselves: each checks what a fixture promises,
//! against the kernel, so that the system tests built on them can be trusted.

use std::path::PathBuf;

use crate::util::ct::{field, strip_volatile};
use crate::util::{
    NetNs, Sysctl, Veth, ct_count, ct_flush, ct_insert, ct_list, enable_conntrack, sysctl_get,
};

#[test]
fn netns_created_and_deleted() {
    let path: PathBuf;
    {
        let ns = NetNs::new("life");
        path = ns.path().to_owned();
        assert!(path.exists(), "{} missing", path.display());
        assert_eq!(ns.sysctl_get("net.ipv4.ip_forward"), "1");
        assert_eq!(ns.sysctl_get("net.netfilter.nf_conntrack_tcp_loose"), "0");
        assert_eq!(ns.sysctl_get("net.netfilter.nf_conntrack_events"), "1");
        let lo = ns.expect_ok(&["ip", "-o", "link", "show", "lo"]);
        assert!(lo.contains("UP"), "lo not up: {lo}");
        // A process left running must not keep the namespace alive.
        let mut sleeper = ns.command(&["sleep", "60"]).spawn().unwrap();
        crate::util::wait_until(std::time::Duration::from_secs(5), "sleep in netns", || {
            ns.pids().contains(&sleeper.id())
        });
        drop(ns);
        let status = sleeper.wait().unwrap();
        assert!(!status.success(), "sleep was not killed: {status}");
    }
    assert!(!path.exists(), "{} still exists after drop", path.display());
}

#[test]
fn netns_deleted_after_panic() {
    let mut path = PathBuf::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ns = NetNs::new("panic");
        path = ns.path().to_owned();
        panic!("test failure inside the fixture's scope");
    }));
    assert!(result.is_err());
    assert!(
        path.starts_with("/run/netns"),
        "fixture never created: {path:?}"
    );
    assert!(!path.exists(), "{} survived the panic", path.display());
}

#[test]
fn veth_ping_v4_and_v6() {
    let a = NetNs::new("pa");
    let b = NetNs::new("pb");
    let veth = Veth::connect(
        &a,
        "vpA",
        "10.231.1.1/24 fd00:231::1/64",
        &b,
        "vpB",
        "10.231.1.2/24 fd00:231::2/64",
    );
    assert_eq!((veth.if_a(), veth.if_b()), ("vpA", "vpB"));
    a.expect_ok(&["ping", "-c", "1", "-W", "2", "10.231.1.2"]);
    a.expect_ok(&["ping", "-c", "1", "-W", "2", "fd00:231::2"]);
    // The host namespace never sees these interfaces.
    let host = crate::util::cmd::expect_run(&["ip", "-o", "link"]);
    assert!(
        !host.contains("vpA") && !host.contains("vpB"),
        "veth leaked into host: {host}"
    );
    // A link taken down stops traffic.
    b.link_set("vpB", false);
    let out = a.exec(&["ping", "-c", "1", "-W", "1", "10.231.1.2"]);
    assert!(!out.status.success(), "ping through a down link succeeded");
}

#[test]
fn conntrack_insert_is_namespace_local() {
    let ns = NetNs::new("ct");
    enable_conntrack(&ns);
    ct_flush(&ns);
    assert_eq!(ct_count(&ns), 0);
    ct_insert(
        &ns,
        &[
            "-p",
            "tcp",
            "-s",
            "10.231.9.1",
            "-d",
            "10.231.9.2",
            "--sport",
            "40000",
            "--dport",
            "80",
            "--state",
            "ESTABLISHED",
            "-t",
            "120",
        ],
    );
    let list = ct_list(&ns);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(ct_count(&ns), 1);
    let line = &list[0];
    assert_eq!(field(line, "src"), Some("10.231.9.1"));
    assert_eq!(field(line, "dport"), Some("80"));
    let stable = strip_volatile(line);
    assert!(
        stable.starts_with("ipv4 2 tcp 6 ESTABLISHED src=10.231.9.1"),
        "{stable}"
    );
    // The host's table does not have it.
    let host = crate::util::cmd::run(&["conntrack", "-L", "-s", "10.231.9.1"]);
    assert!(
        !String::from_utf8_lossy(&host.stdout).contains("10.231.9.1"),
        "entry visible in the host namespace"
    );
    ct_flush(&ns);
    assert_eq!(ct_count(&ns), 0);
}

#[test]
fn sysctl_guard_restores() {
    let key = "net.netfilter.nf_conntrack_max";
    let before = sysctl_get(key);
    {
        let guard = Sysctl::set(key, &(before.parse::<u64>().unwrap() + 1).to_string());
        assert_eq!(guard.old(), before);
        assert_ne!(sysctl_get(key), before);
    }
    assert_eq!(sysctl_get(key), before);
    // Also when the holder panics.
    let res = std::panic::catch_unwind(|| {
        let _guard = Sysctl::set(key, "300001");
        panic!("failing test");
    });
    assert!(res.is_err());
    assert_eq!(sysctl_get(key), before);
}
