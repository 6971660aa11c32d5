#!/usr/bin/env bash
# A `perf record -g` profile of a micro-bench (default: the whole hot path), folded into
# flame-graph stacks, with an SVG when a renderer is installed.
#
# Usage: perf/flamegraph.sh [BENCH] [-- bench args]
#   BENCH: micro-hotpath (default), micro-wire, micro-netlink, micro-cache, micro-filter,
#          micro-ring; default args for micro-hotpath: --stage encode --runs 3.
# Env:   OUT (target/flamegraph), FREQ (sampling Hz, default 999)
# Output: $OUT/BENCH.perf.data, $OUT/BENCH.folded (one "frame;frame;… count" line per
#         stack: load it in speedscope, or render with inferno-flamegraph / flamegraph.pl),
#         $OUT/BENCH.svg if one of those is on PATH, and the top functions by own samples.
#
# Event: hardware `cycles` where the VM exposes the PMU; on machines where
# `perf stat -e instructions true` prints "<not supported>" (seen on this workplace's VMs)
# it falls back to the `cpu-clock` software timer, which samples just as well for a
# flame graph but cannot count instructions (use perf/callgrind.sh for that).
# Stacks: DWARF unwinding, because release builds omit frame pointers; `debug = true` in
# the root [profile.release] keeps the symbols and line tables it needs.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${OUT:-target/flamegraph}
FREQ=${FREQ:-999}
bench=micro-hotpath
args=()
if [ $# -gt 0 ] && [ "$1" != "--" ]; then bench=$1; shift; fi
if [ "${1:-}" = "--" ]; then shift; args=("$@"); fi
if [ ${#args[@]} -eq 0 ] && [ "$bench" = micro-hotpath ]; then
    args=(--stage encode --runs 3)
fi

# perf comes from Debian's linux-perf; installed here on demand, not by `make deps`.
if ! command -v perf >/dev/null; then
    echo "perf not found: installing Debian's linux-perf" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends linux-perf >&2
fi

if perf stat -e instructions true 2>&1 | grep -q "not supported"; then
    event=cpu-clock
    echo "perf: hardware counters not supported on this machine; sampling cpu-clock" >&2
else
    event=cycles
fi

cargo build --release -q -p conntrackd-bench --bin "$bench"
mkdir -p "$OUT"
data="$OUT/$bench.perf.data"
folded="$OUT/$bench.folded"
# A previous profile would be kept as perf.data.old; one at a time is enough.
rm -f "$data" "$data.old"
perf record -q -e "$event" -F "$FREQ" --call-graph dwarf,16384 -o "$data" \
    "target/release/$bench" ${args[@]+"${args[@]}"}

# stackcollapse: perf script prints a header line per sample, then one frame per line
# (innermost first, "addr symbol+off (dso)"), then a blank line.
perf script -i "$data" 2>/dev/null | awk '
    function flush(   s, i) {
        if (n > 0) {
            s = f[n]
            for (i = n - 1; i >= 1; i--) s = s ";" f[i]
            count[s]++
        }
        n = 0
    }
    /^[^ \t]/ { flush(); next }
    /^[ \t]*$/ { flush(); next }
    {
        sub(/^[ \t]*[0-9a-f]+ /, "")
        sub(/ \([^()]*\)$/, "")
        sub(/\+0x[0-9a-f]+$/, "")
        gsub(/;/, ":")
        f[++n] = $0
    }
    END { flush(); for (s in count) print s, count[s] }
' | sort >"$folded"

total=$(awk '{ s += $NF } END { print s + 0 }' "$folded")
echo "perf record ($event, ${FREQ} Hz, dwarf stacks): $total samples of target/release/$bench ${args[*]-}"
echo "folded stacks: $folded"
if command -v inferno-flamegraph >/dev/null; then
    inferno-flamegraph --title "$bench ${args[*]-}" <"$folded" >"$OUT/$bench.svg"
    echo "flame graph: $OUT/$bench.svg"
elif command -v flamegraph.pl >/dev/null; then
    flamegraph.pl --title "$bench ${args[*]-}" "$folded" >"$OUT/$bench.svg"
    echo "flame graph: $OUT/$bench.svg"
else
    echo "no SVG renderer on PATH (cargo install inferno, or FlameGraph's flamegraph.pl)"
fi

# Own samples per function (the leaf frame), as a share of the measured part when the bench
# has one (stacks through replicate_events in micro-hotpath), else of all samples.
hot=$(grep -c replicate_events "$folded" || true)
echo
echo "top functions by own samples$([ "$hot" -gt 0 ] && echo ' (share of replicate_events)'):"
awk -v hot="$hot" '
    {
        c = $NF; $NF = ""; sub(/ $/, "")
        if (hot > 0 && index($0, "replicate_events") == 0) next
        k = split($0, fr, ";"); leaf[fr[k]] += c; kept += c
    }
    END { for (l in leaf) printf "%6.1f%%  %s\n", 100 * leaf[l] / kept, l }
' "$folded" | sort -rn | head -15 | cut -c1-150
