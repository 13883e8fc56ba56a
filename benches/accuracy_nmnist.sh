#!/usr/bin/env bash
# STDL vs BPTT on the 1,000 / 100 labelled N-MNIST samples in ../shared/data, 2 seeds each,
# for each surrogate gradient asked for.
#
#   benches/accuracy_nmnist.sh [DATA_DIR] [EPOCHS] [OUT] [SURROGATES] [METHODS] [UPDATE_EVERY]
#
# SURROGATES: space-separated (default "sigmoid triangle"); METHODS: default "stdl bptt";
# UPDATE_EVERY: space-separated STDL `--update-every` values (default "1": an Adam update
# after every time step; N accumulates N steps' gradients per update).
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
UPDATE_EVERY=${6:-1}
cargo build --release -q
mkdir -p "$OUT"
# A private copy of the binary: rebuilding during the runs cannot change it.
cp target/release/stdl "$OUT/stdl-bin"
# The run's name: method, surrogate, seed, and `-uN` for an update every N steps (N > 1).
name() { if [ "$3" = 1 ]; then echo "$1-$2-s$4"; else echo "$1-$2-u$3-s$4"; fi; }
for sg in $SURROGATES; do
  for method in $METHODS; do
    for ue in $UPDATE_EVERY; do
      [ "$method" = bptt ] && [ "$ue" != 1 ] && continue
      for seed in 0 1; do
        run=$(name "$method" "$sg" "$ue" "$seed")
        [ -f "$OUT/$run/result.json" ] && continue
        extra=()
        [ "$method" = stdl ] && extra=(--update-every "$ue")
        "$OUT/stdl-bin" train --dataset nmnist --root "$DATA/nmnist/slayer_NMNISTsmall" --preset nmnist \
          --method $method --surrogate "$sg" --epochs "$EPOCHS" --seed $seed --out "$OUT/$run" --quiet \
          "${extra[@]}" > "$OUT/$run.log" 2>&1
      done
    done
  done
done
python3 - "$OUT" "$METHODS" "$UPDATE_EVERY" $SURROGATES <<'PY'
import json, sys, statistics
out, methods, updates, surrogates = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4:]
runs = [(m, u) for m in methods for u in updates if m == "stdl" or u == "1"]
for sg in surrogates:
    for method, ue in runs:
        tag = sg if ue == "1" else f"{sg} update-every {ue}"
        accs, secs = [], []
        for seed in [0, 1]:
            u = "" if ue == "1" else f"-u{ue}"
            r = json.load(open(f"{out}/{method}-{sg}{u}-s{seed}/result.json"))
            accs.append(r["test_accuracy"] * 100); secs.append(r["seconds"] / r["epochs"])
            print(f"{method} {tag} seed {seed}: test {r['test_accuracy']*100:.1f}%  train {r['train_accuracy']*100:.1f}%  "
                  f"best {r['best_test_accuracy']*100:.1f}%  {r['seconds']/r['epochs']:.1f} s/epoch  peak RSS {r['peak_rss_bytes']/2**20:.0f} MiB")
        print(f"{method} {tag} mean test accuracy: {statistics.mean(accs):.1f}%  ({statistics.mean(secs):.1f} s/epoch)")
PY
