#!/usr/bin/env bash
# Continual learning on the 1,000 / 100 labelled N-MNIST samples in ../shared/data: five
# two-digit tasks. Class-incremental for every learner (naive, reservoir replay, online EWC,
# LwF), one pass per task and three, and domain- and task-incremental with and without
# replay; seeds 0 and 1.
#
#   benches/continual_nmnist.sh [DATA_DIR] [OUT]
#
# Prints the README's table (means of the two seeds); each run leaves continual.json under
# OUT/<protocol>-<passes>/<learner>-s<seed>/ (Avalanche-named metrics included).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
OUT=${2:-out/continual}
cargo build --release -q
mkdir -p "$OUT"
cp target/release/stdl "$OUT/stdl-bin"
# EWC and LwF are task-free: consolidation and snapshots every 100 updates (a task is 130
# updates per pass here); EWC's strength for this dataset's batch-16 gradients.
COMMON=(--dataset nmnist --root "$DATA/nmnist/slayer_NMNISTsmall" --tasks "0,1/2,3/4,5/6,7/8,9"
        --lr 3e-4 --replay-bytes 2MiB --consolidate-every 100 --ewc-lambda 1e5 --quiet)
run() { # protocol passes learners seed
  "$OUT/stdl-bin" continual "${COMMON[@]}" --protocol "$1" --epochs-per-task "$2" \
    --compare "$3" --seed "$4" --out "$OUT/$1-$2/s$4" > "$OUT/$1-$2-s$4.log" 2>&1
}
for seed in 0 1; do
  for passes in 1 3; do
    run class $passes naive,replay,ewc,lwf $seed
  done
  run domain 3 naive,replay $seed
  run task 3 naive,replay $seed
done
python3 - "$OUT" <<'PY'
import json, sys, statistics
out = sys.argv[1]
print("| protocol | passes | learner | avg accuracy | forgetting | BWT | Avalanche StreamForgetting | per seed (avg acc) | s/run |")
print("|---|---|---|---|---|---|---|---|---|")
rows = [("class", 1, l) for l in ["naive", "replay", "ewc", "lwf"]] + \
       [("class", 3, l) for l in ["naive", "replay", "ewc", "lwf"]] + \
       [(p, 3, l) for p in ["domain", "task"] for l in ["naive", "replay"]]
for p, passes, learner in rows:
    runs = [json.load(open(f"{out}/{p}-{passes}/s{s}/{learner}/continual.json")) for s in [0, 1]]
    m = lambda k: statistics.mean(x[k] for x in runs) * 100
    av = statistics.mean(x["avalanche"]["StreamForgetting/eval_phase/test_stream"] for x in runs) * 100
    name = learner
    if runs[0]["replay"]:
        name += f" 2 MiB ({runs[0]['replay']['capacity_samples']} samples)"
    print(f"| {p} | {passes} | {name} | {m('average_accuracy'):.1f}% | {m('forgetting'):.1f} | "
          f"{m('backward_transfer'):+.1f} | {av:.1f} | "
          + " / ".join(f"{x['average_accuracy']*100:.1f}" for x in runs)
          + f" | {statistics.mean(x['seconds'] for x in runs):.0f} |")
PY
