#!/usr/bin/env bash
# Online learning from real N-MNIST played as one labelled stream: for each preset, one pass
# over the 1,000 training samples (`stdl stream --dataset nmnist --split train`, 10 ms bins,
# an update after every bin, a fresh network), then the 100 test samples played the same way
# with learning off, from the pass's checkpoint. Prints the summaries' running accuracy per
# bin (the prediction is the moving average of the logits over 20 bins, as for a live camera)
# and how many bins the test stream's predictions spread over each class.
#
#   benches/stream_nmnist.sh [DATA_DIR] [OUT] [PRESETS] [SEED]
#
# PRESETS: space-separated (default "nmnist dvs-gesture"). A run whose summaries are already
# in OUT is not repeated (delete OUT to start over).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
OUT=${2:-out/stream_nmnist}
PRESETS=${3:-nmnist dvs-gesture}
SEED=${4:-0}
NMNIST="$DATA/nmnist/slayer_NMNISTsmall"
[ -e "$NMNIST/train1K.txt" ] || { echo "stream_nmnist.sh: $NMNIST is missing" >&2; exit 1; }
cargo build --release -q
mkdir -p "$OUT"
cp target/release/stdl "$OUT/stdl-bin"
BIN="$OUT/stdl-bin"
COMMIT=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src models io Cargo.lock || echo "+changes")
for p in $PRESETS; do
  d="$OUT/$p"
  if [ ! -s "$d/test.json" ]; then
    rm -rf "$d" && mkdir -p "$d"
    "$BIN" stream --dataset nmnist --root "$NMNIST" --split train --preset "$p" --seed "$SEED" \
      --quiet --predictions /dev/null --summary "$d/train.json" --checkpoint-dir "$d/checkpoint"
    "$BIN" stream --dataset nmnist --root "$NMNIST" --split test --checkpoint "$d/checkpoint" \
      --no-learn --quiet --predictions "$d/test.jsonl" --summary "$d/test.json"
  fi
done
python3 - "$OUT" "$COMMIT" "$SEED" $PRESETS <<'PY'
import collections, json, sys
out, commit, seed, presets = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
print(f"{commit}, seed {seed}: N-MNIST played as one stream, 10 ms bins")
print("| preset | train pass: bins | train pass: running accuracy | test stream: accuracy (no learning) | test stream: bins per predicted class, most first |")
print("|---|---:|---:|---:|---|")
for p in presets:
    tr = json.load(open(f"{out}/{p}/train.json"))
    te = json.load(open(f"{out}/{p}/test.json"))
    classes = collections.Counter(json.loads(l)["class"] for l in open(f"{out}/{p}/test.jsonl"))
    spread = ", ".join(f"{c}: {n}" for c, n in classes.most_common(4))
    print(f"| {p} | {tr['steps']:,} | {tr['accuracy']*100:.1f}% | {te['accuracy']*100:.1f}% | {spread} |")
PY
