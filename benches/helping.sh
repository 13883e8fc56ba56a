#!/usr/bin/env bash
# Idle pipeline workers helping a busy stage (docs/speed-log.md):
# `stdl bench train --preset nmnist --t-bins 10 --batch 1 --aux-budget 0 --pipeline` (two
# stages of unequal cost on two workers) with STDL_HELP=never (an idle worker waits), always
# (it spins and takes chunks of the running stage's products and updates) and the default,
# which measures both ways as it runs and keeps the faster, alternated over ROUNDS rounds.
# Twice: on the machine as it is, and with another process spinning on the last core, where a
# helper's core is taken from it in the middle of its chunks. Prints the CPU model, each
# mode's median time per sample and the median of the per-round ratios against `never`.
#
# usage: benches/helping.sh [ROUNDS] [SAMPLES]   (defaults: 3, 600)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
samples=${2:-600}
cargo build --release --quiet </dev/null
bin=target/release/stdl
modes=(never always measure)

out=$(mktemp)
hog=
cleanup() {
  [ -n "$hog" ] && kill "$hog" 2>/dev/null
  rm -f "$out"
}
trap cleanup EXIT
run() { # condition round mode
  STDL_HELP=$3 "$bin" bench train --preset nmnist --t-bins 10 --batch 1 --batches "$samples" \
    --aux-budget 0 --pipeline --json 2>/dev/null |
    python3 -c "import json,sys; r=json.load(sys.stdin); print(json.dumps({'condition':'$1','round':$2,'mode':'$3','ms':r['seconds_per_sample']*1e3}))" >>"$out"
}
measure() { # condition
  for r in $(seq 1 "$rounds"); do
    order=("${modes[@]}")
    # Alternate the order, so that no mode always runs first.
    [ $((r % 2)) = 0 ] && order=(measure always never)
    for m in "${order[@]}"; do run "$1" "$r" "$m"; done
  done
}
measure "quiet machine"
last=$(($(nproc) - 1))
taskset -c "$last" sh -c 'while :; do :; done' &
hog=$!
measure "another process spinning on core $last"
kill "$hog"
hog=

python3 - "$out" "$(git rev-parse --short HEAD)" "$rounds" "$samples" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
head, rounds, samples = sys.argv[2], sys.argv[3], sys.argv[4]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
flags = open("/proc/cpuinfo").read()
simd = "AVX-512" if " avx512f" in flags else ("AVX2" if " avx2" in flags else "SSE")
print(f"{cpu} ({simd}), stdl {head}, {rounds} rounds alternated, {samples} samples each: "
      "`stdl bench train --preset nmnist --t-bins 10 --batch 1 --aux-budget 0 --pipeline`, ms per sample")
print("| condition | STDL_HELP=never | always | measure (default) | never / always | never / measure |")
print("|---|---:|---:|---:|---:|---:|")
for c in dict.fromkeys(r["condition"] for r in rows):
    by = {m: {r["round"]: r["ms"] for r in rows if r["condition"] == c and r["mode"] == m}
          for m in ("never", "always", "measure")}
    med = {m: statistics.median(v.values()) for m, v in by.items()}
    ratio = lambda m: statistics.median(by["never"][k] / by[m][k] for k in by[m])
    print(f"| {c} | {med['never']:.2f} | {med['always']:.2f} | {med['measure']:.2f} | "
          f"{ratio('always'):.2f}x | {ratio('measure'):.2f}x |")
EOF
