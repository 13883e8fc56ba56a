#!/usr/bin/env bash
# Speed tables of the README ("Speed"): `stdl bench realtime` on the two real DVS128
# recordings (dvs-gesture preset, 10 ms bins, learning on every bin) and `stdl bench train`
# (nmnist preset, T = 10, batch 16 and 1, in sequence and as pipeline stages), for this
# checkout and for a baseline commit built beside it, alternated over ROUNDS rounds so that
# both sides see the same machine. Prints the CPU model, each figure's median over the rounds,
# and the median of the per-round ratios (these machines are noisy: compare ratios), each with
# its lowest and highest round in brackets.
#
# With a Python that has torch and spikingjelly (and optionally tonic) as PYTHON, a second
# table sets this checkout beside what people use, alternated in the same rounds:
# `stdl bench train` (in sequence, and with --pipeline: the same numbers, the two subnetworks
# as stages on their own threads) against benches/python/torch_stdl_nmnist.py with its own LIF and with
# SpikingJelly's LIFNode (same network, same input density 0.1, Adam after every step; at
# both batch sizes stdl gets bare auxiliary heads, --aux-budget 0, the Python scripts' network), and
# `stdl bench read --dataset nmnist` against benches/python/read_dataset.py (numpy, Tonic)
# on the 1,100 real N-MNIST sample files.
#
# UPDATE_EVERY (default "4 8"): this checkout's `stdl bench realtime` also at these
# `--update-every` values (one Adam update per N bins; its accuracy cost is in the README's
# "Accuracy on real N-MNIST"), each set beside the baseline's one mode, an update every bin.
# On a CPU with AVX-512, `stdl bench realtime` also runs with no AVX-512 on either side: a
# second build of each commit whose GEMM crate (matrixmultiply) is compiled with its AVX-512
# kernel left out (its MMTEST_FEATURE, read at compile time, allows sse2, avx, avx2 and fma
# only), run with glibc's AVX-512 string functions masked (GLIBC_TUNABLES) and the engine's
# AVX2 kernels (STDL_SIMD=avx2): the path an AVX2 CPU takes. A commit from before STDL_SIMD
# (7e53bc2 is one) runs its element-wise kernels on AVX-512 still, which favours it.
#
# usage: [PYTHON=/path/to/python] [UPDATE_EVERY="4 8"] benches/speed.sh [ROUNDS] [BASELINE_COMMIT]   (defaults: 3, 7e53bc2)
#   e.g. python3 -m venv /tmp/sj && /tmp/sj/bin/pip install torch spikingjelly numpy &&
#        /tmp/sj/bin/pip install --no-deps tonic && PYTHON=/tmp/sj/bin/python benches/speed.sh 3
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
base=${2:-7e53bc2}
py=${PYTHON:-}
update_every=${UPDATE_EVERY-4 8}
nmnist=../shared/data/nmnist/slayer_NMNISTsmall
# Samples `stdl bench train` times at batch 1 (after one warm-up sample): 10,000 steps, of
# which the help policy's probes (docs/speed-log.md) take the share they take in a longer run;
# in 2,000 steps they took nearly half. The Python scripts time 100 (after one warm-up).
batch1_samples=1000
# shellcheck source=benches/common/walks.sh
. benches/common/walks.sh

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
avx512=$(grep -q ' avx512f' /proc/cpuinfo && echo yes || true)
if [ -n "$avx512" ]; then
  MMTEST_FEATURE=sse2,avx,avx2,fma CARGO_TARGET_DIR=target/avx2 cargo build --release --quiet </dev/null
  (cd "$wt" && MMTEST_FEATURE=sse2,avx,avx2,fma CARGO_TARGET_DIR=target/avx2 cargo build --release --quiet </dev/null)
fi
avx2_bin=target/avx2/release/stdl
old_avx2_bin=$wt/target/avx2/release/stdl
base_simd=$(git grep -q STDL_SIMD "$base" -- models/src/math.rs && echo yes || true)
avx2_env=(STDL_SIMD=avx2 GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD)

out=$(mktemp)
trap 'rm -f "$out"' EXIT
# One JSON line per measurement: the round, the side, what was measured and the value (a
# key of the command's JSON, times a scale).
tag() { # round side what key scale
  python3 -c "import json,sys; r=json.loads(sys.stdin.readline()); print(json.dumps({'round':$1,'side':'$2','what':'$3','value':$5*r['$4']}))" >>"$out"
}
measure() { # side binary binary-without-AVX-512
  local side=$1 bin=$2 bin_avx2=$3
  for f in "${files[@]}"; do
    "$bin" bench realtime --json "$f" 2>/dev/null | tag "$r" "$side" "realtime $(basename "$f")" real_time_factor 1
    # On an AVX-512 CPU, with no AVX-512 too (above).
    if [ -n "$avx512" ]; then
      env "${avx2_env[@]}" "$bin_avx2" bench realtime --json "$f" 2>/dev/null |
        tag "$r" "$side" "realtime $(basename "$f") avx2-path" real_time_factor 1
    fi
    [ "$side" = new ] || continue
    for n in $update_every; do
      "$bin" bench realtime --json --update-every "$n" "$f" 2>/dev/null |
        tag "$r" "$side" "realtime $(basename "$f") update-every $n" real_time_factor 1
    done
  done
  for batch in 16 1; do
    for mode in sequence pipeline; do
      flag=$([ $mode = pipeline ] && echo --pipeline || true)
      n=$([ "$batch" = 16 ] && echo 24 || echo "$batch1_samples")
      "$bin" bench train --preset nmnist --t-bins 10 --batch "$batch" --batches "$n" $flag --json 2>/dev/null |
        tag "$r" "$side" "train nmnist batch $batch $mode (ms/sample)" seconds_per_sample 1e3
    done
  done
}

measure_stdl_vs_py() {
  for batch in 16 1; do
    n=$([ "$batch" = 16 ] && echo 24 || echo "$batch1_samples")
    for mode in sequence pipeline; do
      flag=$([ $mode = pipeline ] && echo --pipeline || true)
      "$new" bench train --preset nmnist --t-bins 10 --batch "$batch" --batches "$n" --aux-budget 0 $flag --json 2>/dev/null |
        tag "$r" "stdl $mode" "train nmnist batch $batch (ms/sample)" seconds_per_sample 1e3
    done
  done
  "$new" bench read --dataset nmnist --root "$nmnist" --json | tag "$r" "stdl sequence" "read 1,100 N-MNIST files (ms)" seconds 1e3
}
measure_py() {
  for batch in 16 1; do
    n=$([ "$batch" = 16 ] && echo 5 || echo 100)
    for neuron in torch spikingjelly; do
      "$py" benches/python/torch_stdl_nmnist.py --neuron $neuron --batch "$batch" --batches "$n" --t-bins 10 --threads 2 --json 2>/dev/null |
        tag "$r" $neuron "train nmnist batch $batch (ms/sample)" seconds_per_sample 1e3
    done
  done
  "$py" benches/python/read_dataset.py "$nmnist" 7 2>/dev/null | while read -r line; do
    reader=$(echo "$line" | python3 -c "import json,sys; print(json.load(sys.stdin)['reader'].split('.')[0])")
    echo "$line" | tag "$r" "$reader" "read 1,100 N-MNIST files (ms)" seconds 1e3
  done
}
if [ -n "$py" ]; then
  "$py" -c "import torch, spikingjelly" || { echo "error: PYTHON=$py lacks torch or spikingjelly" >&2; exit 1; }
  [ -d "$nmnist" ] || { echo "error: $nmnist not found" >&2; exit 1; }
fi

for r in $(seq 1 "$rounds"); do
  # Alternate which side goes first.
  if [ $((r % 2)) = 1 ]; then
    measure base "$old" "$old_avx2_bin"; measure new "$new" "$avx2_bin"
  else
    measure new "$new" "$avx2_bin"; measure base "$old" "$old_avx2_bin"
  fi
  if [ -n "$py" ]; then
    if [ $((r % 2)) = 1 ]; then measure_py; measure_stdl_vs_py; else measure_stdl_vs_py; measure_py; fi
  fi
done

# The auxiliary networks `bench realtime` trains (its plan: dvs-gesture at batch 1). The
# plan follows the memory model, which moves as the engine's memory does: the realtime rows
# compare like with like only when both sides train the same networks.
aux_units() {
  "$1" plan dvs-gesture --batch 1 --json | python3 -c "import json,sys; print([s['aux_units'] for s in json.load(sys.stdin)['subnets']])"
}
plans="$(aux_units "$old")|$(aux_units "$new")"

python3 - "$out" "$base" "$(git rev-parse --short HEAD)" "$rounds" "$plans" "$base_simd" <<'EOF'
import json, sys
sys.path.insert(0, "benches/common")
from rounds import cell
rows = [json.loads(l) for l in open(sys.argv[1])]
base, head, rounds = sys.argv[2], sys.argv[3], sys.argv[4]
plan_base, plan_head = sys.argv[5].split("|")
base_simd = sys.argv[6] == "yes"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
flags = open("/proc/cpuinfo").read()
simd = "AVX-512" if " avx512f" in flags else ("AVX2" if " avx2" in flags else "SSE")
print(f"{cpu} ({simd}), {rounds} rounds, {head} against {base}")
if plan_base == plan_head:
    print(f"bench realtime: both train the same auxiliary networks (units per subnetwork {plan_head})")
else:
    print(f"bench realtime: the auxiliary networks differ (units per subnetwork: {base} {plan_base}, "
          f"{head} {plan_head}), so its rows do not compare the same networks")
print("(each cell: the median over the rounds, and in brackets the lowest and highest round; the ratios are per round)")
print(f"| measurement | {base} | {head} | {head} / {base} |")
print("|---|---:|---:|---:|")
whats = list(dict.fromkeys(r["what"] for r in rows))
for w in whats:
    by = {s: {r["round"]: r["value"] for r in rows if r["what"] == w and r["side"] == s} for s in ("base", "new")}
    label = w
    if " update-every " in w:
        # This checkout at --update-every N beside the baseline's update after every bin.
        file, n = w.split(" update-every ")
        by["base"] = {r["round"]: r["value"] for r in rows if r["what"] == file and r["side"] == "base"}
        label = f"{file}, {head} with --update-every {n} ({base}: an update every bin)"
    if w.endswith(" avx2-path"):
        # Both sides with no AVX-512 (as far as the baseline allows).
        file = w[: -len(" avx2-path")]
        theirs = "the same" if base_simd else "the same, but its element-wise kernels on AVX-512: it has no STDL_SIMD"
        label = (f"{file}, no AVX-512 (GEMM crate built without it, glibc's masked, STDL_SIMD=avx2; "
                 f"{base}: {theirs})")
    if not by["base"]:
        continue
    rs = sorted(set(by["base"]) & set(by["new"]))
    if not rs:
        continue
    b = cell(by["base"][k] for k in rs)
    n = cell(by["new"][k] for k in rs)
    if w.startswith("realtime"):
        # Higher is better: the real-time factor.
        ratio = cell(by["new"][k] / by["base"][k] for k in rs)
        print(f"| {label}: real-time factor | {b} | {n} | {ratio}x |")
    else:
        # Lower is better: time; the ratio is the speed-up.
        ratio = cell(by["base"][k] / by["new"][k] for k in rs)
        print(f"| {w} | {b} | {n} | {ratio}x faster |")
EOF

[ -n "$py" ] || exit 0
echo
python3 - "$out" "$(git rev-parse --short HEAD)" "$rounds" "$py" <<'EOF'
import json, subprocess, sys
sys.path.insert(0, "benches/common")
from rounds import cell
rows = [json.loads(l) for l in open(sys.argv[1])]
head, rounds, py = sys.argv[2], sys.argv[3], sys.argv[4]
versions = subprocess.run([py, "-c", "import torch, importlib.metadata as m; "
                           "print(f'torch {torch.__version__}, spikingjelly {m.version(\"spikingjelly\")}')"],
                          capture_output=True, text=True).stdout.strip()
print(f"stdl {head} beside Python ({versions}), same machine, {rounds} rounds alternated; "
      "time per sample or per pass over the files (lower is better), and how many times "
      "longer the other side takes (per round); each cell the median over the rounds, and in "
      "brackets the lowest and highest round")
others = [("torch", "PyTorch (own LIF)"), ("spikingjelly", "SpikingJelly LIFNode"),
          ("numpy", "numpy"), ("tonic", "tonic.io")]
print("| measurement | stdl path | stdl | other | other's time | other / stdl |")
print("|---|---|---:|---|---:|---:|")
for w in dict.fromkeys(r["what"] for r in rows if r["side"].startswith("stdl")):
    for mode in ("sequence", "pipeline"):
        mine = {r["round"]: r["value"] for r in rows if r["what"] == w and r["side"] == "stdl " + mode}
        if not mine:
            continue
        path = mode if w.startswith("train") else "reader"
        for side, label in others:
            theirs = {r["round"]: r["value"] for r in rows if r["what"] == w and r["side"] == side}
            rs = sorted(set(mine) & set(theirs))
            if not rs:
                continue
            m = cell(mine[k] for k in rs)
            t = cell(theirs[k] for k in rs)
            ratio = cell(theirs[k] / mine[k] for k in rs)
            print(f"| {w} | {path} | {m} | {label} | {t} | {ratio}x |")
EOF
