#!/usr/bin/env bash
# What the auxiliary-network budget of a live learner trades: speed on the real DVS128
# recordings against accuracy on real N-MNIST, for the same preset at batch 1 (the network
# `stdl stream` and `stdl bench realtime` learn with).
#
#   benches/aux_budget.sh [DATA_DIR] [ROUNDS] [OUT] [BUDGETS] [SEEDS] [EPOCHS] [PRESET]
#
# BUDGETS: space-separated `--aux-budget` values (default "1x 0.5x 0.25x 0"; 1x is STDL.md's
# default budget). For each budget:
# - its auxiliary networks (`stdl plan PRESET --batch 1`);
# - `stdl bench realtime --json` on the two DVS128 walks, every label class 0, ROUNDS rounds
#   with the budgets alternated inside each round (median real-time factor, and its ratio to
#   the first budget's in the same round);
# - accuracy on real N-MNIST of the same network and plan: `stdl train --dataset nmnist
#   --preset PRESET --batch 1 --pipeline` for EPOCHS epochs (default 2) on the 1,000 training
#   samples (T = the preset's event-count bins, an update after every bin, as a stream
#   learns), tested on the 100 test samples; per seed and the mean over SEEDS (default
#   "0 1"). (Played as a 10 ms stream, `stdl stream --dataset nmnist`, the `dvs-gesture`
#   network learns nothing from N-MNIST at any budget: README, "A deep network on N-MNIST
#   played as a stream".)
# A run whose summary is already in OUT is not repeated (delete OUT to start over).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
ROUNDS=${2:-3}
OUT=${3:-out/aux_budget}
BUDGETS=${4:-1x 0.5x 0.25x 0}
SEEDS=${5:-0 1}
EPOCHS=${6:-2}
PRESET=${7:-dvs-gesture}
NMNIST="$DATA/nmnist/slayer_NMNISTsmall"
WALKS=("$DATA/aedat2/dvs128_alex_walking_again.aedat" "$DATA/aedat2/dvs128_alex_walking_for_10secs.aedat")
for f in "$NMNIST/train1K.txt" "${WALKS[@]}"; do
  [ -e "$f" ] || { echo "aux_budget.sh: $f is missing (DATA_DIR is $DATA)" >&2; exit 1; }
done
cargo build --release -q
mkdir -p "$OUT"
# A private copy of the binary: rebuilding during the runs cannot change it.
cp target/release/stdl "$OUT/stdl-bin"
BIN="$OUT/stdl-bin"
COMMIT=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src models io Cargo.lock || echo "+changes")
echo "$COMMIT" > "$OUT/commit"

for b in $BUDGETS; do
  "$BIN" plan "$PRESET" --batch 1 --aux-budget "$b" --json > "$OUT/plan-$b.json"
done
for r in $(seq 1 "$ROUNDS"); do
  for b in $BUDGETS; do
    f="$OUT/realtime-$b-r$r.jsonl"
    [ -s "$f" ] || "$BIN" bench realtime --preset "$PRESET" --aux-budget "$b" --json "${WALKS[@]}" > "$f"
  done
done
for b in $BUDGETS; do
  for s in $SEEDS; do
    d="$OUT/nmnist-$b-s$s"
    [ -s "$d/result.json" ] || "$BIN" train --dataset nmnist --root "$NMNIST" --preset "$PRESET" \
      --method stdl --batch 1 --pipeline --epochs "$EPOCHS" --aux-budget "$b" --seed "$s" \
      --out "$d" --quiet > "$OUT/nmnist-$b-s$s.log" 2>&1
  done
done

python3 - "$OUT" "$ROUNDS" "$PRESET" "$EPOCHS" "$BUDGETS" "$SEEDS" <<'PY'
import json, os, statistics, sys
out, rounds, preset, epochs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
budgets, seeds = sys.argv[5].split(), sys.argv[6].split()
commit = open(f"{out}/commit").read().strip()
rt = {}
cpu = "?"
for r in range(1, rounds + 1):
    for b in budgets:
        for line in open(f"{out}/realtime-{b}-r{r}.jsonl"):
            j = json.loads(line)
            cpu = j["cpu"]
            rt.setdefault((b, os.path.basename(j["file"])), []).append(j["real_time_factor"])
files = sorted({f for _, f in rt})
print(f"{cpu}, {commit}, preset {preset} at batch 1; {rounds} rounds, budgets alternated; N-MNIST: {epochs} epochs")
print("| budget | auxiliary networks (copied units) | parameters | " +
      " | ".join(f"{f}: real-time factor (against {budgets[0]})" for f in files) +
      " | N-MNIST train | N-MNIST test | s/epoch |")
print("|---|---|---:|" + "---:|" * len(files) + "---:|---:|---:|")
for b in budgets:
    plan = json.load(open(f"{out}/plan-{b}.json"))
    heads = ", ".join("bare" if not s["aux_units"] else "+".join(map(str, s["aux_units"]))
                      for s in plan["subnets"] if not s["is_last"])
    params = sum(s["body_params"] + s["head_params"] for s in plan["subnets"])
    cells = []
    for f in files:
        vals = rt[(b, f)]
        ratio = statistics.median(v / base for v, base in zip(vals, rt[(budgets[0], f)]))
        cells.append(f"{statistics.median(vals):.2f} ({ratio:.2f}x)")
    tr, te, secs = [], [], []
    for s in seeds:
        r = json.load(open(f"{out}/nmnist-{b}-s{s}/result.json"))
        tr.append(r["train_accuracy"] * 100)
        te.append(r["test_accuracy"] * 100)
        secs.append(r["seconds"] / r["epochs"])
    per = lambda xs: "/".join(f"{x:.1f}" for x in xs)
    print(f"| {b} | {heads} | {params:,} | " + " | ".join(cells) +
          f" | {statistics.mean(tr):.1f}% ({per(tr)}) | {statistics.mean(te):.1f}% ({per(te)}) | {statistics.mean(secs):.0f} |")
print(f"(auxiliary networks: the copied units of each subnetwork but the last; accuracy: mean over seeds {' '.join(seeds)}, each seed in brackets; s/epoch: while the realtime rounds were not running)")
PY
