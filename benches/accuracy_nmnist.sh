#!/usr/bin/env bash
# STDL vs BPTT on the 1,000 / 100 labelled N-MNIST samples in ../shared/data, 2 seeds each,
# for each surrogate gradient asked for.
#
#   benches/accuracy_nmnist.sh [DATA_DIR] [EPOCHS] [OUT] [SURROGATES] [METHODS]
#
# SURROGATES: space-separated (default "sigmoid triangle"); METHODS: default "stdl bptt".
# A run whose result.json is already in OUT is not trained again (delete OUT to start over).
# Prints each run's final test accuracy and the mean per method and surrogate (the
# README's figures).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
EPOCHS=${2:-20}
OUT=${3:-out/accuracy}
SURROGATES=${4:-sigmoid triangle}
METHODS=${5:-stdl bptt}
cargo build --release -q
mkdir -p "$OUT"
# A private copy of the binary: rebuilding during the runs cannot change it.
cp target/release/stdl "$OUT/stdl-bin"
for sg in $SURROGATES; do
  for method in $METHODS; do
    for seed in 0 1; do
      run="$method-$sg-s$seed"
      [ -f "$OUT/$run/result.json" ] && continue
      "$OUT/stdl-bin" train --dataset nmnist --root "$DATA/nmnist/slayer_NMNISTsmall" --preset nmnist \
        --method $method --surrogate "$sg" --epochs "$EPOCHS" --seed $seed --out "$OUT/$run" --quiet \
        > "$OUT/$run.log" 2>&1
    done
  done
done
python3 - "$OUT" "$METHODS" $SURROGATES <<'PY'
import json, sys, statistics
out, methods, surrogates = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
for sg in surrogates:
    for method in methods:
        accs, secs = [], []
        for seed in [0, 1]:
            r = json.load(open(f"{out}/{method}-{sg}-s{seed}/result.json"))
            accs.append(r["test_accuracy"] * 100); secs.append(r["seconds"] / r["epochs"])
            print(f"{method} {sg} seed {seed}: test {r['test_accuracy']*100:.1f}%  train {r['train_accuracy']*100:.1f}%  "
                  f"best {r['best_test_accuracy']*100:.1f}%  {r['seconds']/r['epochs']:.1f} s/epoch  peak RSS {r['peak_rss_bytes']/2**20:.0f} MiB")
        print(f"{method} {sg} mean test accuracy: {statistics.mean(accs):.1f}%  ({statistics.mean(secs):.1f} s/epoch)")
PY
