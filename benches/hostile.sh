#!/usr/bin/env bash
# The README's "Bad input and faults" table: `stdl stream` (tiny preset) on hostile timing,
# each in a fresh process: peak RSS, steps, time jumps, exit code. Inputs are made from the
# real EVT 2.0 recording: one TIME_HIGH word set ~4.8 h ahead (a corrupt word), and a copy
# with a 1,000 s pause in the middle (every later TIME_HIGH moved); plus the real DVS128 walk
# at 1 us bins.
# Usage: benches/hostile.sh [DATA_DIR]   (default ../shared/data). Takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
cargo build --release --quiet
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 - "$DATA/evt2/gen3_faery_evt2.raw" "$TMP" <<'PY'
import struct, sys
src, out = sys.argv[1], sys.argv[2]
b = bytearray(open(src, "rb").read())
pos = 0
while b[pos:pos + 1] == b"%":
    pos = b.index(b"\n", pos) + 1
words = [i for i in range(pos, len(b) - 3, 4) if struct.unpack_from("<I", b, i)[0] >> 28 == 0x8]
far = bytearray(b)
struct.pack_into("<I", far, words[200], 0x8FFFFFFF)
open(f"{out}/far_future.raw", "wb").write(far)
pause = bytearray(b)
shift = 1_000_000_000 // 64  # 1,000 s in TIME_HIGH units of 64 us
for i in words[len(words) // 2:]:
    w = struct.unpack_from("<I", pause, i)[0]
    struct.pack_into("<I", pause, i, 0x80000000 | ((w & 0x0FFFFFFF) + shift) & 0x0FFFFFFF)
open(f"{out}/paused.raw", "wb").write(pause)
PY
CPU=$(target/release/stdl bench soak --steps 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["cpu"])')
echo "CPU: $CPU, $(nproc) cores"
echo
echo "| input | flags | exit | steps | time jumps | skipped bins | peak RSS | seconds |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
run() {
  local name=$1 file=$2; shift 2
  local rc=0
  target/release/stdl stream --source "$file" --preset tiny --predictions /dev/null \
    --summary "$TMP/s.json" "$@" >/dev/null 2>&1 || rc=$?
  python3 - "$TMP/s.json" "$name" "$rc" "$*" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); name, rc, flags = sys.argv[2], sys.argv[3], sys.argv[4] or "(defaults)"
print(f"| {name} | `{flags}` | {rc} | {s['steps']} | {s['time_jumps']} | {s['skipped_bins']} | "
      f"{s['peak_rss_bytes'] / 1048576:.1f} MiB | {s['seconds']:.2f} |")
PY
}
run "EVT 2.0, one TIME_HIGH ~4.8 h ahead" "$TMP/far_future.raw"
run "EVT 2.0, one TIME_HIGH ~4.8 h ahead" "$TMP/far_future.raw" --strict
run "EVT 2.0, one TIME_HIGH ~4.8 h ahead" "$TMP/far_future.raw" --max-gap-us 0 --max-steps 100000
run "EVT 2.0 with a 1,000 s pause" "$TMP/paused.raw"
run "EVT 2.0 with a 1,000 s pause" "$TMP/paused.raw" --max-gap-us 0 --max-steps 100000
run "DVS128 walk (real)" "$DATA/aedat2/dvs128_alex_walking_again.aedat" --bin-us 1 --max-steps 100000
