#!/usr/bin/env bash
# Instructions per replicated event, counted by callgrind (rustls ci-bench style).
#
# Runs bench/micro/hotpath.rs (`micro-hotpath`) under `valgrind --tool=callgrind` once per
# stage (parse, route, cache, encode; see that file) and counts only the instructions
# executed inside `replicate_events` (--toggle-collect), so building the event stream is
# left out. Instruction counts do not depend on the neighbours' load or on the CPU's
# frequency: the same binary and arguments give the same count to within a few thousand
# instructions in 368M (the caches' hashers take a random seed), which makes them the
# regression signal on the shared 2-core VM where ns/op move by 20-50 %.
#
# `--bench micro-link` instead counts `link_events` of bench/micro/link.rs: the link thread's
# per-event work (payload map, FTFW queues, datagrams, ACKs); `--bench micro-hop` counts
# `hop_events` of bench/micro/hop.rs: parse + reader → worker ring hop. Neither has stages.
#
# Usage: perf/callgrind.sh [--bench micro-hotpath|micro-link|micro-hop] [--stage parse|route|cache|encode]
#                          [-- extra bench args]
# Env:   FLOWS (default 20000), LIVE (10000), SHARDS (2), OUT (target/callgrind)
# Output: one line per stage, "instructions/event", then the top functions (self cost) of the
#         full path; the raw callgrind.out.* files stay in $OUT for callgrind_annotate or
#         kcachegrind.
set -euo pipefail

cd "$(dirname "$0")/.."
FLOWS=${FLOWS:-20000}
LIVE=${LIVE:-10000}
SHARDS=${SHARDS:-2}
OUT=${OUT:-target/callgrind}
stages=(parse route cache encode)
bench=micro-hotpath
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --stage) stages=("$2"); shift 2 ;;
        --bench) bench=$2; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        *) echo "usage: $0 [--bench micro-hotpath|micro-link|micro-hop] [--stage parse|route|cache|encode] [-- bench args]" >&2; exit 2 ;;
    esac
done
case "$bench" in
    micro-hotpath) toggle='*replicate_events*' ;;
    micro-link) toggle='*link_events*'; stages=(link) ;;
    micro-hop) toggle='*hop_events*'; stages=(hop) ;;
    *) echo "--bench: micro-hotpath or micro-link" >&2; exit 2 ;;
esac

if ! command -v valgrind >/dev/null; then
    echo "valgrind not found: installing Debian's valgrind" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends valgrind >&2
fi

cargo build --release -q -p conntrackd-bench --bin "$bench"
bin=target/release/$bench
mkdir -p "$OUT"

echo "callgrind: $bin, $FLOWS flows x 3 events, ~$LIVE live, $SHARDS shards; $(valgrind --version); $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
printf '%-8s %12s %14s %12s\n' stage events instructions "instr/event"
for st in "${stages[@]}"; do
    cg="$OUT/callgrind.out.$st"
    log="$OUT/stdout.$st"
    # A fixed, minimal environment: its size moves the initial stack and heap, and with them
    # the alignment-dependent paths of memcpy (about 0.4 % of the count between a shell and
    # make). With `env -i` the count only depends on the binary and the arguments.
    if [ "$bench" = micro-link ]; then
        args=(--runs 1 --flows "$FLOWS" --live "$LIVE")
    elif [ "$bench" = micro-hop ]; then
        args=(--runs 1 --flows "$FLOWS" --live "$LIVE" --shards "$SHARDS")
    else
        args=(--stage "$st" --runs 1 --flows "$FLOWS" --live "$LIVE" --shards "$SHARDS")
    fi
    env -i PATH=/usr/bin:/bin valgrind --tool=callgrind --callgrind-out-file="$cg" \
        --toggle-collect="$toggle" \
        "$bin" "${args[@]}" ${extra[@]+"${extra[@]}"} >"$log" 2>"$log.valgrind"
    events=$(sed -n 's/^events: \([0-9]*\).*/\1/p' "$log")
    ir=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$log.valgrind")
    if [ -z "$events" ] || [ -z "$ir" ]; then
        echo "$st: could not read the event or instruction count (see $log*)" >&2
        exit 1
    fi
    printf '%-8s %12s %14s %12.0f\n' "$st" "$events" "$ir" "$(echo "$ir / $events" | bc -l)"
done

last="$OUT/callgrind.out.${stages[-1]}"
echo
echo "top functions by own instructions (${stages[-1]}; inclusive: callgrind_annotate --inclusive=yes $last):"
callgrind_annotate "$last" 2>/dev/null | sed -n '/file:function/,$p' | sed -n '3,17p' \
    | sed -E 's@ \[[^]]*\]$@@; s@/rustc/[0-9a-f]+/library/@std:@; s@/root/.cargo/registry/src/[^/]+/@@; s@'"$PWD"'/@@' \
    | cut -c1-150
