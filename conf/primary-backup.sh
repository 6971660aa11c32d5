#!/bin/sh
#
# primary-backup.sh - keepalived notify script for a primary/backup pair of
# conntrackd firewalls. Written from scratch for conntrackd-rs; it drives any
# daemon that speaks the conntrackd 1.4.7 command line (Debian's C conntrackd
# or ours) and only uses what POSIX sh offers.
#
# Usage (from keepalived.conf, see conf/keepalived.conf.in):
#     primary-backup.sh primary|backup|fault
#
# Environment (all optional):
#     CONNTRACKD_BIN      daemon/client binary   (default /usr/sbin/conntrackd)
#     CONNTRACKD_CONFIG   its configuration file (default /etc/conntrackd/conntrackd.conf)
#     CONNTRACKD_LOCK     its lock file; default: the LockFile named in the
#                         configuration, else /var/lock/conntrackd.lock
#     CONNTRACKD_NOTIFY_LOG
#                         append a line per step to this file instead of
#                         sending messages to syslog with logger(1)
#
# What each transition does:
#   primary  this node now owns the floating addresses:
#              -c  commit the external cache (the peer's flows) to the kernel;
#                  blocks until the kernel holds them
#              -f  flush the internal and external caches
#              -R  refill the internal cache from the kernel table
#              -B  bulk-send the internal cache to the peer (now the backup)
#   backup   this node stands by:
#              -s  is the daemon answering? if not, remove a stale lock file
#                  and start it with -d (failure to start: exit 1)
#              -t  schedule the purge of kernel entries this node no longer owns
#              -n  ask the new primary for a full resynchronisation
#   fault    -t as above
#
# A failing conntrackd call is reported and the script carries on with the next
# step (a partial takeover beats none); it exits 0 unless the transition name is
# unknown (exit 1) or the daemon cannot be started in the backup transition (exit 1).

CONNTRACKD_BIN=${CONNTRACKD_BIN:-/usr/sbin/conntrackd}
CONNTRACKD_CONFIG=${CONNTRACKD_CONFIG:-/etc/conntrackd/conntrackd.conf}
CONNTRACKD_NOTIFY_LOG=${CONNTRACKD_NOTIFY_LOG:-}

STATE=${1:-}

# say LEVEL MESSAGE: report one line to the notify log or to syslog.
say() {
    level=$1
    shift
    if [ -n "$CONNTRACKD_NOTIFY_LOG" ]; then
        # Milliseconds where date(1) knows %N (GNU), whole seconds elsewhere.
        stamp=$(date -u '+%Y-%m-%dT%H:%M:%S.%N')
        case $stamp in
        *N) stamp=$(date -u '+%Y-%m-%dT%H:%M:%S') ;;
        *) stamp=${stamp%??????} ;;
        esac
        printf '%s primary-backup.sh[%s] %s %s: %s\n' \
            "$stamp" "$$" "$level" "$STATE" "$*" >>"$CONNTRACKD_NOTIFY_LOG"
    else
        logger -t primary-backup.sh -p "daemon.$level" -- "$STATE: $*"
    fi
}

# ctd ARGS...: run one conntrackd client request, report its exit status,
# return it. Standard output (statistics of -s) is discarded.
ctd() {
    "$CONNTRACKD_BIN" -C "$CONNTRACKD_CONFIG" "$@" >/dev/null 2>&1
    rc=$?
    if [ "$rc" -eq 0 ]; then
        say info "conntrackd $* -> exit 0"
    else
        say err "conntrackd $* -> exit $rc (failed)"
    fi
    return "$rc"
}

# The lock file the daemon uses: explicit, else from the configuration.
lock_file() {
    if [ -n "${CONNTRACKD_LOCK:-}" ]; then
        printf '%s\n' "$CONNTRACKD_LOCK"
        return
    fi
    lock=$(awk '$1 == "LockFile" { print $2; exit }' "$CONNTRACKD_CONFIG" 2>/dev/null)
    printf '%s\n' "${lock:-/var/lock/conntrackd.lock}"
}

case "$STATE" in
primary)
    say info "taking over with $CONNTRACKD_BIN -C $CONNTRACKD_CONFIG"
    ctd -c
    ctd -f
    ctd -R
    ctd -B
    say info "done"
    ;;
backup)
    if ! ctd -s; then
        lock=$(lock_file)
        if [ -f "$lock" ]; then
            say warning "conntrackd is not answering but its lock file $lock exists:" \
                "it was not stopped cleanly (crash?); removing the lock file"
            rm -f -- "$lock"
        fi
        if ! ctd -d; then
            say err "cannot start conntrackd; this node cannot take over state"
            exit 1
        fi
    fi
    ctd -t
    ctd -n
    say info "done"
    ;;
fault)
    ctd -t
    say info "done"
    ;;
*)
    say err "unknown transition '$STATE'"
    echo "Usage: $0 primary|backup|fault" >&2
    exit 1
    ;;
esac

exit 0
