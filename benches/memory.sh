#!/usr/bin/env bash
# The README's memory tables, measured in one run on this machine:
#   1. peak RSS of STDL and BPTT training (synthetic spike input, `stdl bench memory`, each in
#      a fresh process) for nmnist at batch 16 and dvs-gesture at batch 8, T = 10, 20, 100,
#      with the BPTT / STDL ratio;
#   2. `stdl train` on the real N-MNIST samples (128 training samples, 1 epoch, batch 16)
#      at T = 10 .. 1000: peak RSS of the whole run (dataset loader included);
#   3. `stdl bench soak`: a long synthetic stream with learning on, peak RSS and live heap
#      after 10^4 steps and at the end (demo preset, SOAK_STEPS steps; dvs-gesture,
#      SOAK_DVS_STEPS steps);
#   4. `stdl stream` itself: peak RSS and live heap after 5,000 and STREAM_STEPS steps.
# Usage: benches/memory.sh [DATA_DIR]   (default ../shared/data)
# Environment: SOAK_STEPS (default 1000000), SOAK_DVS_STEPS (default 100000), STREAM_STEPS
# (default 100000); 0 skips that run. TABLES=0 skips tables 1 and 2.
# Takes about an hour on 2 cores with the default lengths.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
cargo build --release --quiet
python3 - target/release/stdl "$DATA" "${SOAK_STEPS:-1000000}" "${SOAK_DVS_STEPS:-100000}" "${TABLES:-1}" <<'EOF'
import json, os, subprocess, sys, tempfile

stdl, data, soak_steps, soak_dvs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
tables = sys.argv[5] != "0"
mib = lambda b: f"{b / 1048576:.1f} MiB"

def run(*args):
    out = subprocess.run([stdl, *args], check=True, capture_output=True, text=True)
    return out.stdout

cpu = json.loads(run("bench", "soak", "--steps", "1", "--json"))["cpu"]
print(f"CPU: {cpu}, {os.cpu_count()} cores\n")

if tables:
    print("## Peak RSS of training, STDL vs BPTT (stdl bench memory, synthetic input at density 0.1)\n")
    print("| preset | batch | T | STDL | BPTT | BPTT / STDL |")
    print("|---|---:|---:|---:|---:|---:|")
for preset, batch in [("nmnist", 16), ("dvs-gesture", 8)] if tables else []:
    for t in [10, 20, 100]:
        peak = {}
        for method in ["stdl", "bptt"]:
            r = json.loads(run("bench", "memory", "--json", "--preset", preset, "--method", method,
                               "--t-bins", str(t), "--batch", str(batch)))
            peak[method] = r["peak_rss_bytes"]
        print(f"| {preset} | {batch} | {t} | {mib(peak['stdl'])} | {mib(peak['bptt'])} | "
              f"**{peak['bptt'] / peak['stdl']:.1f}×** |", flush=True)

root = os.path.join(data, "nmnist/slayer_NMNISTsmall")
if tables:
    print("\n## stdl train on the real N-MNIST samples (128 samples, 1 epoch, batch 16): peak RSS\n")
    print("| T | STDL | BPTT |")
    print("|---:|---:|---:|")
first = None
with tempfile.TemporaryDirectory() as tmp:
    for t in [10, 100, 400, 1000] if tables else []:
        row = {}
        for method in ["stdl", "bptt"]:
            if method == "bptt" and t > 400:
                row[method] = "(not run: ~12 GiB)"
                continue
            out = os.path.join(tmp, f"{method}{t}")
            run("train", "--dataset", "nmnist", "--root", root, "--preset", "nmnist", "--method", method,
                "--epochs", "1", "--batch", "16", "--limit-samples", "128", "--t-bins", str(t),
                "--quiet", "--out", out)
            peak = json.load(open(os.path.join(out, "result.json")))["peak_rss_bytes"]
            if method == "stdl":
                first = first or peak
                row[method] = f"{mib(peak)} ({(peak - first) / first * 100:+.1f}% vs T = 10)"
            else:
                row[method] = mib(peak)
        print(f"| {t} | {row['stdl']} | {row['bptt']} |", flush=True)
    if tables:
        # The same run five times: how far apart identical runs are (the noise in the table).
        peaks = []
        for i in range(5):
            out = os.path.join(tmp, f"rep{i}")
            run("train", "--dataset", "nmnist", "--root", root, "--preset", "nmnist", "--method", "stdl",
                "--epochs", "1", "--batch", "16", "--limit-samples", "128", "--t-bins", "10",
                "--quiet", "--out", out)
            peaks.append(json.load(open(os.path.join(out, "result.json")))["peak_rss_bytes"])
        print(f"\nSTDL at T = 10, five identical runs: {mib(min(peaks))} to {mib(max(peaks))} "
              f"(spread {(max(peaks) - min(peaks)) / min(peaks) * 100:.1f}%)", flush=True)

if soak_steps > 0 or soak_dvs > 0:
    print("\n## Long streams with learning on (stdl bench soak)\n")
    print("| preset | steps | peak RSS after 10^4 | at the end | growth | live heap after 10^4 | at the end |")
    print("|---|---:|---:|---:|---:|---:|---:|")
for preset, steps in [("demo", soak_steps), ("dvs-gesture", soak_dvs)]:
    if steps <= 0:
        continue
    r = json.loads(run("bench", "soak", "--json", "--preset", preset, "--steps", str(steps)))
    print(f"| {preset} | {steps} | {mib(r['peak_rss_bytes_at_1e4'])} | {mib(r['peak_rss_bytes_at_end'])} | "
          f"{r['growth'] * 100:+.2f}% | {r['heap_bytes_at_1e4']} B | {r['heap_bytes_at_end']} B |", flush=True)
EOF
# 4. `stdl stream` itself (synthetic scene, demo preset, learning on): peak RSS and live heap
#    after 5,000 steps and after STREAM_STEPS (default 100000; 0 skips).
STREAM_STEPS=${STREAM_STEPS:-100000}
if [ "$STREAM_STEPS" -gt 0 ]; then
  SUMMARY=$(mktemp)
  target/release/stdl stream --source synthetic --preset demo --max-steps "$STREAM_STEPS" \
    --report-at-steps "5000,$STREAM_STEPS" --predictions /dev/null --summary "$SUMMARY" \
    --metrics-every-s 100000 2>/dev/null
  python3 - "$SUMMARY" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
(a, ra), (b, rb) = s["peak_rss_at_steps"]
(_, ha), (_, hb) = s["heap_bytes_at_steps"]
print("\n## stdl stream --source synthetic --preset demo\n")
print(f"peak RSS {ra / 1048576:.2f} MiB after {a} steps, {rb / 1048576:.2f} MiB after {b} "
      f"({(rb - ra) / ra * 100:+.2f}%); live heap {ha} B and {hb} B")
PY
  rm -f "$SUMMARY"
fi
