#!/usr/bin/env bash
# STDL vs BPTT on the 1,000 / 100 labelled N-MNIST samples in ../shared/data, 2 seeds each.
#
#   benches/accuracy_nmnist.sh [DATA_DIR] [EPOCHS] [OUT]
#
# Prints each run's final test accuracy and the mean per method (the README's figures).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
EPOCHS=${2:-20}
OUT=${3:-out/accuracy}
cargo build --release -q
mkdir -p "$OUT"
# A private copy of the binary: rebuilding during the runs cannot change it.
cp target/release/stdl "$OUT/stdl-bin"
for method in stdl bptt; do
  for seed in 0 1; do
    "$OUT/stdl-bin" train --dataset nmnist --root "$DATA/nmnist/slayer_NMNISTsmall" --preset nmnist \
      --method $method --epochs "$EPOCHS" --seed $seed --out "$OUT/$method-s$seed" --quiet > "$OUT/$method-s$seed.log" 2>&1
  done
done
python3 - "$OUT" <<'PY'
import json, sys, statistics
out = sys.argv[1]
for method in ["stdl", "bptt"]:
    accs, secs = [], []
    for seed in [0, 1]:
        r = json.load(open(f"{out}/{method}-s{seed}/result.json"))
        accs.append(r["test_accuracy"] * 100); secs.append(r["seconds"] / r["epochs"])
        print(f"{method} seed {seed}: test {r['test_accuracy']*100:.1f}%  train {r['train_accuracy']*100:.1f}%  "
              f"best {r['best_test_accuracy']*100:.1f}%  {r['seconds']/r['epochs']:.1f} s/epoch  peak RSS {r['peak_rss_bytes']/2**20:.0f} MiB")
    print(f"{method} mean test accuracy: {statistics.mean(accs):.1f}%  ({statistics.mean(secs):.1f} s/epoch)")
PY
