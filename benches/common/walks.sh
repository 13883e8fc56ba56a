# The two real DVS128 recordings `stdl bench realtime` replays, as the array `files`, each
# checked to exist (sourced by benches/speed.sh and benches/workers.sh, from the checkout's
# root, with ../shared beside it).
data=../shared/data/aedat2
files=("$data/dvs128_alex_walking_again.aedat" "$data/dvs128_alex_walking_for_10secs.aedat")
for f in "${files[@]}"; do
  [ -f "$f" ] || { echo "error: $f not found (../shared/data beside the checkout)" >&2; exit 1; }
done
