#!/usr/bin/env bash
# Two builds of stdl side by side: `stdl bench realtime` on the two real DVS128 recordings
# (dvs-gesture preset, 10 ms bins, learning on every bin), build A then build B on each
# recording, over ROUNDS rounds, so that both see the same machine. Prints the CPU model, each
# round's real-time factors and B's over A's, then per recording the median and range of each
# side and of the per-round ratios, and in how many rounds B was faster. This is how the
# README's "alternated with the build before" figures are taken: build the commit before a
# change into one directory and the change into another, e.g.
#   git worktree add --detach /tmp/before HEAD~1 && (cd /tmp/before && cargo build --release)
#   cargo build --release && benches/alternate.sh /tmp/before/target/release/stdl target/release/stdl 4
#
# With AVX2=1, both run the path a CPU without AVX-512 takes: the engine's AVX2 kernels
# (STDL_SIMD=avx2) and glibc's AVX-512 functions masked (GLIBC_TUNABLES). Build both with
# MMTEST_FEATURE=sse2,avx,avx2,fma (and a CARGO_TARGET_DIR of their own) so that the GEMM
# crate leaves its AVX-512 kernel out too (benches/speed.sh does the same).
#
# usage: [AVX2=1] benches/alternate.sh BINARY_A BINARY_B [ROUNDS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,17p' "$0" >&2; exit 2; }
a=$1 b=$2 rounds=${3:-3}
for bin in "$a" "$b"; do
  [ -x "$bin" ] || { echo "error: $bin is not an executable" >&2; exit 1; }
done
# shellcheck source=benches/common/walks.sh
. benches/common/walks.sh
envs=()
if [ "${AVX2:-}" = 1 ]; then
  envs=(STDL_SIMD=avx2 GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD)
fi

# One measurement: "<real-time factor> <CPU as the build names it, or '?'>".
measure() { # binary recording
  env "${envs[@]}" "$1" bench realtime --json "$2" 2>/dev/null |
    python3 -c "import json,sys; r=json.load(sys.stdin); print(r['real_time_factor'], r.get('cpu', '?'))"
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "A = $a, B = $b; ${rounds} rounds, A then B on each recording${envs:+; ${envs[*]}}"
for r in $(seq "$rounds"); do
  for f in "${files[@]}"; do
    fa='' fb=''
    read -r fa cpu_a < <(measure "$a" "$f")
    read -r fb cpu_b < <(measure "$b" "$f")
    [ -n "$fa" ] && [ -n "$fb" ] || { echo "error: a build failed on $f" >&2; exit 1; }
    echo "$(basename "$f") $fa $fb" >>"$out"
    python3 -c "print(f'round $r $(basename "$f"): A {$fa:.2f}, B {$fb:.2f}, B/A {$fb/$fa:.3f}')"
  done
done
# The CPU as the newer build names it (an old one may not).
[ "$cpu_b" != '?' ] && echo "CPU: $cpu_b" || echo "CPU: $cpu_a"
python3 - "$out" <<'EOF'
import sys
sys.path.insert(0, "benches/common")
from rounds import cell

rows = {}
for line in open(sys.argv[1]):
    f, a, b = line.split()
    rows.setdefault(f, []).append((float(a), float(b)))
for f, pairs in rows.items():
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    r = [p[1] / p[0] for p in pairs]
    faster = sum(x > 1 for x in r)
    print(f"{f}: A {cell(a)}, B {cell(b)}, B/A {cell(r, 3)}; B faster in {faster} of {len(r)} rounds")
EOF
