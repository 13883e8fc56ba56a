#!/usr/bin/env bash
# What viewers of `stdl stream --view` cost the learner: the same synthetic stream (the
# demo preset, learning on every 10 ms bin, as fast as it goes) with 0, 1, 8 and 32 viewers
# reading the update stream, alternated over ROUNDS rounds; prints steps per second (median)
# and each against no viewer (median of the per-round ratios), with the CPU model.
#
# usage: benches/view.sh [ROUNDS] [STEPS]     (defaults: 3, 3000)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
steps=${2:-3000}
cargo build --release --quiet </dev/null
bin=target/release/stdl
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
port=$((20000 + RANDOM % 20000))
# N viewers that read everything until the server closes (one Python process, select loop).
cat >"$tmp/viewers.py" <<'PY'
import selectors, socket, sys, time
n, addr = int(sys.argv[1]), sys.argv[2].rsplit(":", 1)
sel = selectors.DefaultSelector()
deadline = time.time() + 10
for _ in range(n):
    while True:
        try:
            s = socket.create_connection((addr[0], int(addr[1])))
            break
        except OSError:
            if time.time() > deadline:
                sys.exit("no server")
            time.sleep(0.02)
    s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    sel.register(s, selectors.EVENT_READ)
open = n
while open:
    for key, _ in sel.select():
        if not key.fileobj.recv(1 << 16):
            sel.unregister(key.fileobj)
            open -= 1
PY
for r in $(seq 1 "$rounds"); do
  order="0 1 8 32"
  [ $((r % 2)) = 0 ] && order="32 8 1 0"
  for n in $order; do
    port=$((port + 1))
    "$bin" stream --source synthetic --preset demo --max-steps "$steps" --view "127.0.0.1:$port" \
      --predictions /dev/null --metrics-every-s 1000 --summary "$tmp/s.json" 2>/dev/null &
    pid=$!
    [ "$n" = 0 ] || python3 "$tmp/viewers.py" "$n" "127.0.0.1:$port" &
    vpid=$!
    wait $pid
    [ "$n" = 0 ] || wait $vpid
    python3 -c "import json; s=json.load(open('$tmp/s.json')); print($r, $n, s['steps']/s['seconds'], s.get('view_updates_dropped', 0))" >>"$tmp/rows"
  done
done
python3 - "$tmp/rows" "$rounds" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
by = {}
for r, n, sps, dropped in rows:
    by.setdefault(int(n), {})[int(r)] = (float(sps), int(dropped))
print(f"{cpu}, {sys.argv[2]} rounds: stdl stream --source synthetic --preset demo --view, N viewers reading")
print("| viewers | steps/s | against no viewer | updates dropped |")
print("|---:|---:|---:|---:|")
for n in sorted(by):
    rs = sorted(set(by[n]) & set(by[0]))
    sps = statistics.median(by[n][k][0] for k in rs)
    ratio = statistics.median(by[n][k][0] / by[0][k][0] for k in rs)
    dropped = max(by[n][k][1] for k in rs)
    print(f"| {n} | {sps:.0f} | {ratio:.2f}x | {dropped} |")
PY
