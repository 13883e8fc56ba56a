#!/usr/bin/env bash
# Reader throughput: `stdl bench read` on every format, beside the Python readers people use
# (Tonic, expelliarmus, the `aedat` package) when a Python with them is given.
#
#   benches/readers.sh [DATA_DIR] [PYTHON]
#
# DATA_DIR defaults to ../shared/data. PYTHON is a Python with numpy, tonic, expelliarmus and
# aedat installed (see benches/python/compare_readers.py); without it only stdl is timed.
# Prints a Markdown table: events per second, median of several in-memory decodes.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
PY=${2:-}
cargo build --release -q
STDL=target/release/stdl
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# No real AEDAT 3.1 file is available: rewrite a real DVS128 recording as one.
$STDL convert "$DATA/aedat2/dvs128_alex_walking_for_10secs.aedat" "$TMP/walk10.aedat" --to aedat31 2>/dev/null
FILES=(
  "aedat2 $DATA/aedat2/dvs128_alex_walking_for_10secs.aedat"
  "aedat2 $DATA/aedat2/davis240c_IMU_translBoxes_truncated.aedat"
  "aedat31 $TMP/walk10.aedat"
  "aedat4 $DATA/aedat4/dvxplorer_tonic_sample.aedat4"
  "aedat4 $DATA/aedat4/davis346_aedat_crate_test_data.aedat4"
  "bin $DATA/nmnist/tonic_sample_nmnist.bin"
  "evt2 $DATA/evt2/gen3_expelliarmus_evt2_sample.raw"
  "evt3 $DATA/evt3/gen41_expelliarmus_evt3_sample.raw"
  "dat $DATA/dat/ncars_loris_NCARS_obj_004397_td.dat"
)
echo "| format | file | events | stdl M ev/s (memory) | stdl M ev/s (file) | Python reader (file) | Python M ev/s | ratio (file vs file) |"
echo "|---|---|---:|---:|---:|---|---:|---:|"
PYOUT="$TMP/py.jsonl"
if [ -n "$PY" ]; then
  "$PY" benches/python/compare_readers.py "$DATA" "$TMP/walk10.aedat" 9 > "$PYOUT"
else
  : > "$PYOUT"
fi
for entry in "${FILES[@]}"; do
  fmt=${entry%% *}; file=${entry#* }
  json=$($STDL bench read --json --runs 21 "$file")
  jsonf=$($STDL bench read --json --runs 21 --from-file "$file")
  python3 - "$json" "$file" "$fmt" "$PYOUT" "$jsonf" <<'PYEOF'
import json, os, sys
r = json.loads(sys.argv[1]); file, fmt = sys.argv[2], sys.argv[3]
rf = json.loads(sys.argv[5])
py = [json.loads(l) for l in open(sys.argv[4]) if l.strip()]
py = [p for p in py if os.path.basename(p["file"]) == os.path.basename(file) and "events_per_s" in p]
name = os.path.basename(file)
s = r["events_per_s"] / 1e6
sf = rf["events_per_s"] / 1e6
if not py:
    print(f"| {fmt} | {name} | {r['events']} | {s:.0f} | {sf:.0f} | – | – | – |")
for p in py:
    q = p["events_per_s"] / 1e6
    print(f"| {fmt} | {name} | {r['events']} | {s:.0f} | {sf:.0f} | {p['reader']} | {q:.0f} | {sf/q:.1f}× |")
PYEOF
done
