#!/usr/bin/env bash
# Continual learning on the 1,000 / 100 labelled N-MNIST samples in ../shared/data: five
# two-digit tasks, class- and domain-incremental, with and without reservoir replay, 2 seeds.
#
#   benches/continual_nmnist.sh [DATA_DIR] [OUT]
#
# Prints average accuracy, forgetting and backward transfer per setting (the README's table);
# each run leaves continual.json and continual.png under OUT/<setting>-s<seed>.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
OUT=${2:-out/continual}
cargo build --release -q
mkdir -p "$OUT"
cp target/release/stdl "$OUT/stdl-bin"
COMMON=(--dataset nmnist --root "$DATA/nmnist/slayer_NMNISTsmall" --tasks "0,1/2,3/4,5/6,7/8,9"
        --epochs-per-task 3 --lr 3e-4 --quiet)
for seed in 0 1; do
  for setting in class:0 class:2MiB class:8MiB domain:0 domain:2MiB; do
    protocol=${setting%%:*}; replay=${setting##*:}
    "$OUT/stdl-bin" continual "${COMMON[@]}" --protocol "$protocol" --replay-bytes "$replay" \
      --seed $seed --out "$OUT/$protocol-$replay-s$seed" > "$OUT/$protocol-$replay-s$seed.log" 2>&1
  done
done
python3 - "$OUT" <<'PY'
import json, sys, statistics
out = sys.argv[1]
print("| protocol | replay | avg accuracy | forgetting | BWT | per seed (avg acc) | s/run |")
print("|---|---|---|---|---|---|---|")
for setting in ["class:0", "class:2MiB", "class:8MiB", "domain:0", "domain:2MiB"]:
    p, r = setting.split(":")
    runs = [json.load(open(f"{out}/{p}-{r}-s{s}/continual.json")) for s in [0, 1]]
    m = lambda k: statistics.mean(x[k] for x in runs) * 100
    cap = runs[0]["replay"]["capacity_samples"] if runs[0]["replay"] else 0
    rep = f"{r} ({cap} samples)" if cap else "none"
    print(f"| {p} | {rep} | {m('average_accuracy'):.1f}% | {m('forgetting'):.1f} | {m('backward_transfer'):+.1f} | "
          + " / ".join(f"{x['average_accuracy']*100:.1f}" for x in runs)
          + f" | {statistics.mean(x['seconds'] for x in runs):.0f} |")
PY
