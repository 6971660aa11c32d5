#!/usr/bin/env bash
# The two physical limits every benchmark table reports, measured in a scratch namespace:
#   1. ctgen's creation rate with no listener;
#   2. its rate with the bare event drain attached (the ceiling for any replicator);
# plus the churn (create + delete) maximum with and without the drain.
# Output: one JSON object per line on stdout (human lines on stderr).
# Usage: perf/limits.sh [N=100000] [REPEAT=5] [CHURN_SECONDS=3]   (root; builds release)
set -euo pipefail
N=${1:-100000}
REPEAT=${2:-5}
CHURN_S=${3:-3}
cd "$(dirname "$0")/.."
cargo build --release -q -p conntrackd-perf
B=target/release
NS=ctgen-limits-$$
ip netns add "$NS"
# The namespace goes away whatever happens; ctgen itself restores nf_conntrack_max.
trap 'ip netns del "$NS"' EXIT
run() { "$B/ctgen" --netns "$NS" --json "$@"; "$B/ctgen" --netns "$NS" flush >/dev/null; }
for proto in mix udp; do
  run burst "$N" --proto "$proto" --repeat "$REPEAT"
  run --drain burst "$N" --proto "$proto" --repeat "$REPEAT"
done
run churn --rate max --duration "$CHURN_S" --live 10000 --proto mix
run --drain churn --rate max --duration "$CHURN_S" --live 10000 --proto mix
