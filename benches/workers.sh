#!/usr/bin/env bash
# How the learner's worker threads fill the cores (docs/speed-log.md):
# `stdl bench realtime` on the two real DVS128 recordings (dvs-gesture preset, five stages,
# learning on every bin) with the default, one worker per core, against one worker per stage
# (`--workers 5`: as many threads as stages, as when each stage had a thread of its own, left
# to the operating system to share the cores), and against the default without stage
# affinity (STDL_AFFINITY=off: a free worker takes the first ready stage, not the one it ran
# last), alternated over ROUNDS rounds. Prints the CPU model, each setting's median real-time
# factor and the median of the per-round ratios, then one `--profile` balance line per
# setting (the stages' CPU time against the cores' wall time, and how long the workers sat
# with no stage ready).
#
# usage: benches/workers.sh [ROUNDS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
# shellcheck source=benches/common/walks.sh
. benches/common/walks.sh
cargo build --release --quiet </dev/null
bin=target/release/stdl
settings=("" "--workers 5" "")
affinity=(on on off)

out=$(mktemp)
trap 'rm -f "$out"' EXIT
run() { # round setting-index
  for f in "${files[@]}"; do
    # shellcheck disable=SC2086
    STDL_AFFINITY=${affinity[$2]} "$bin" bench realtime --json ${settings[$2]} "$f" 2>/dev/null |
      python3 -c "import json,sys; r=json.load(sys.stdin); print(json.dumps({'round':$1,'setting':$2,'file':'$(basename "$f")','rtf':r['real_time_factor'],'workers':r['workers']}))" >>"$out"
  done
}
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then run "$r" 0; run "$r" 1; run "$r" 2; else run "$r" 2; run "$r" 1; run "$r" 0; fi
done

python3 - "$out" "$(git rev-parse --short HEAD)" "$rounds" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
head, rounds = sys.argv[2], sys.argv[3]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
flags = open("/proc/cpuinfo").read()
simd = "AVX-512" if " avx512f" in flags else ("AVX2" if " avx2" in flags else "SSE")
print(f"{cpu} ({simd}), stdl {head}, {rounds} rounds alternated: real-time factor of `stdl bench realtime`")
workers = {s: rows[[r["setting"] for r in rows].index(s)]["workers"] for s in (0, 1)}
print(f"| recording | {workers[0]} workers (default) | {workers[1]} workers (one per stage) | {workers[0]} workers, no stage affinity | default / one per stage | default / no affinity |")
print("|---|---:|---:|---:|---:|---:|")
for f in dict.fromkeys(r["file"] for r in rows):
    by = {s: {r["round"]: r["rtf"] for r in rows if r["file"] == f and r["setting"] == s} for s in (0, 1, 2)}
    def ratio(s):
        rs = sorted(set(by[0]) & set(by[s]))
        return statistics.median(by[0][k] / by[s][k] for k in rs)
    med = [statistics.median(by[s].values()) for s in (0, 1, 2)]
    print(f"| {f} | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.2f} | {ratio(1):.2f}x | {ratio(2):.2f}x |")
print("(ratios: median of the per-round ratios)")
EOF
for i in 0 1 2; do
  name=${settings[$i]:-default}
  [ "${affinity[$i]}" = off ] && name="$name, STDL_AFFINITY=off"
  # shellcheck disable=SC2086
  STDL_AFFINITY=${affinity[$i]} "$bin" bench realtime --profile ${settings[$i]} "${files[0]}" 2>/dev/null | grep '^balance' | sed "s|^|$(basename "${files[0]}"), $name: |"
done
