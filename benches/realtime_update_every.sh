#!/usr/bin/env bash
# `stdl bench realtime` (the two DVS128 recordings, `dvs-gesture`, learning on every bin) at
# several `--update-every` values, alternated over ROUNDS rounds in one run; prints each
# file's median real-time factor per value and its ratio to N = 1, with the CPU model.
#
#   benches/realtime_update_every.sh [ROUNDS] [VALUES]      (default: 3 "1 2 4")
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
VALUES=${2:-1 2 4}
cargo build --release -q
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for r in $(seq "$ROUNDS"); do
  for n in $VALUES; do
    target/release/stdl bench realtime --json --update-every "$n" >> "$OUT/lines.jsonl"
  done
done
python3 - "$OUT/lines.jsonl" <<'PY'
import json, statistics, sys, os
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cpu = rows[0]["cpu"]
files = sorted({os.path.basename(r["file"]) for r in rows})
values = sorted({r["update_every"] for r in rows})
print(f"{cpu}, dvs-gesture, 10 ms bins, learning on every bin; median of {len(rows) // (len(files) * len(values))} rounds, values alternated")
print("| file | update every | real-time factor | against 1 |")
print("|---|---:|---:|---:|")
for f in files:
    med = {v: statistics.median(r["real_time_factor"] for r in rows
                                if os.path.basename(r["file"]) == f and r["update_every"] == v) for v in values}
    for v in values:
        print(f"| {f} | {v} | {med[v]:.2f} | {med[v] / med[values[0]]:.2f}x |")
PY
