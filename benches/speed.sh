#!/usr/bin/env bash
# Speed tables of the README ("Speed"): `stdl bench realtime` on the two real DVS128
# recordings (dvs-gesture preset, 10 ms bins, learning on every bin) and `stdl bench train`
# (nmnist preset, T = 10, batch 16 and 1, in sequence and as pipeline stages), for this
# checkout and for a baseline commit built beside it, alternated over ROUNDS rounds so that
# both sides see the same machine. Prints the CPU model, each figure's median over the rounds,
# and the median of the per-round ratios (these machines are noisy: compare ratios).
#
# usage: benches/speed.sh [ROUNDS] [BASELINE_COMMIT]      (defaults: 3, 7e53bc2)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
base=${2:-7e53bc2}
data=../shared/data/aedat2
files=("$data/dvs128_alex_walking_again.aedat" "$data/dvs128_alex_walking_for_10secs.aedat")
for f in "${files[@]}"; do
  [ -f "$f" ] || { echo "error: $f not found (../shared/data beside the checkout)" >&2; exit 1; }
done

cargo build --release --quiet </dev/null
new=target/release/stdl
wt=target/speed-baseline-$base
if [ ! -x "$wt/target/release/stdl" ]; then
  rm -rf "$wt"
  git worktree prune
  git worktree add --detach -f "$wt" "$base" >/dev/null
  (cd "$wt" && cargo build --release --quiet </dev/null)
fi
old=$wt/target/release/stdl

out=$(mktemp)
trap 'rm -f "$out"' EXIT
# One JSON line per measurement, tagged with round, side and what was measured.
measure() { # side binary
  local side=$1 bin=$2
  for f in "${files[@]}"; do
    "$bin" bench realtime --json "$f" 2>/dev/null |
      python3 -c "import json,sys; r=json.loads(sys.stdin.readline()); print(json.dumps({'round':$r,'side':'$side','what':'realtime '+r['file'].split('/')[-1],'value':r['real_time_factor']}))" >>"$out"
  done
  for batch in 16 1; do
    for mode in sequence pipeline; do
      flag=$([ $mode = pipeline ] && echo --pipeline || true)
      n=$([ "$batch" = 16 ] && echo 24 || echo 200)
      "$bin" bench train --preset nmnist --t-bins 10 --batch "$batch" --batches "$n" $flag --json 2>/dev/null |
        python3 -c "import json,sys; r=json.loads(sys.stdin.readline()); print(json.dumps({'round':$r,'side':'$side','what':'train nmnist batch $batch $mode (ms/sample)','value':1e3*r['seconds_per_sample']}))" >>"$out"
    done
  done
}
for r in $(seq 1 "$rounds"); do
  # Alternate which side goes first.
  if [ $((r % 2)) = 1 ]; then measure base "$old"; measure new "$new"; else measure new "$new"; measure base "$old"; fi
done

python3 - "$out" "$base" "$(git rev-parse --short HEAD)" "$rounds" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base, head, rounds = sys.argv[2], sys.argv[3], sys.argv[4]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
flags = open("/proc/cpuinfo").read()
simd = "AVX-512" if " avx512f" in flags else ("AVX2" if " avx2" in flags else "SSE")
print(f"{cpu} ({simd}), {rounds} rounds, {head} against {base}")
print(f"| measurement | {base} | {head} | {head} / {base} (median of rounds) |")
print("|---|---:|---:|---:|")
whats = list(dict.fromkeys(r["what"] for r in rows))
for w in whats:
    by = {s: {r["round"]: r["value"] for r in rows if r["what"] == w and r["side"] == s} for s in ("base", "new")}
    rs = sorted(set(by["base"]) & set(by["new"]))
    if not rs:
        continue
    b = statistics.median(by["base"][k] for k in rs)
    n = statistics.median(by["new"][k] for k in rs)
    if w.startswith("realtime"):
        # Higher is better: the real-time factor.
        ratio = statistics.median(by["new"][k] / by["base"][k] for k in rs)
        print(f"| {w}: real-time factor | {b:.2f} | {n:.2f} | {ratio:.2f}x |")
    else:
        # Lower is better: time; the ratio is the speed-up.
        ratio = statistics.median(by["base"][k] / by["new"][k] for k in rs)
        print(f"| {w} | {b:.2f} | {n:.2f} | {ratio:.2f}x faster |")
EOF
