#!/usr/bin/env bash
# The GPU check in one command, about 5 minutes on a GPU machine:
#   1. the GPU-marked tests (pytest -m gpu; none selected counts as passed),
#   2. both speed benchmarks (train_speed.py seed + official, eval_speed.py at 37,500 items),
#   3. a 1-epoch run of the official configuration on the `small` preset with --device gpu,
# written as one JSON (default gpu_check.json) with the GPU's name, each part's exit status and seconds.
#
#   bash benchmarks/gpu_check.sh [OUT_JSON]        (PYTHON=... picks the interpreter; default: python)
#
# Without a GPU visible to TensorFlow it stops at once (exit 2) with a one-line error and writes nothing.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
py="${PYTHON:-python}"
out="${1:-gpu_check.json}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

device="$("$py" - <<'PY' 2>/dev/null
import tensorflow as tf
gpus = tf.config.list_physical_devices("GPU")
if gpus:
    print(tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name))
PY
)"
if [ -z "$device" ]; then
    echo "gpu_check: error: TensorFlow sees no GPU here (tf.config.list_physical_devices('GPU') is empty); run it on a machine where nvidia-smi shows one, with tensorflow[and-cuda] installed (pip install '.[gpu]')" >&2
    exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
declare -A rc secs
part() {  # part NAME COMMAND...: run with a share of the 5 minutes, record exit status and seconds
    local name="$1"; shift
    local start=$SECONDS
    timeout 150 "$@" >"$work/$name.log" 2>&1
    rc[$name]=$?
    secs[$name]=$((SECONDS - start))
    echo "gpu_check: $name: exit ${rc[$name]} in ${secs[$name]} s" >&2
}
part tests "$py" -m pytest -q -m gpu -p no:cacheprovider "$root/tests"
[ "${rc[tests]}" = 5 ] && rc[tests]=0  # no test selected
part train_speed "$py" "$here/train_speed.py" --only seed official --chunks 4 --repeats 2 --json "$work/train_speed.json"
part eval_speed "$py" "$here/eval_speed.py" --batch-sizes 512 1024 --json "$work/eval_speed.json"
part official_epoch "$py" - "$work" <<'PY'
import json, sys, time
from pathlib import Path
from gru4rec.config import Config
from gru4rec.datasets import ensure_preset
from gru4rec.io import read_sessions
from gru4rec.session_data import SessionData
from gru4rec.train import train
work = Path(sys.argv[1])
data = SessionData.from_frame(read_sessions(ensure_preset("small", progress=None).train_full))
start = time.perf_counter()
result = train(Config.preset("official", n_epochs=1, device="gpu"), data, work / "run", progress=False)
json.dump({"seconds": time.perf_counter() - start, "train_seconds": result.seconds,
           "events_per_s": result.events_per_s, "loss": result.epoch_losses[-1], "ran_on": result.device},
          open(work / "official_epoch.json", "w"))
PY
"$py" - "$work" "$out" "$device" "${rc[tests]}" "${secs[tests]}" "${rc[train_speed]}" "${secs[train_speed]}" \
    "${rc[eval_speed]}" "${secs[eval_speed]}" "${rc[official_epoch]}" "${secs[official_epoch]}" <<'PY'
import json, sys
from pathlib import Path
from gru4rec.io import atomic_write
work, out, device, *codes = sys.argv[1:]
report = {"device": device, "parts": {}}
for i, name in enumerate(("tests", "train_speed", "eval_speed", "official_epoch")):
    entry = {"exit": int(codes[2 * i]), "seconds": int(codes[2 * i + 1])}
    path = Path(work) / f"{name}.json"
    if path.exists():
        entry["result"] = json.loads(path.read_text())
    entry["log_tail"] = (Path(work) / f"{name}.log").read_text()[-1500:]
    report["parts"][name] = entry
with atomic_write(out) as handle:
    json.dump(report, handle, indent=2)
print(f"gpu_check: {device}: wrote {out}")
sys.exit(max(int(c) for c in codes[0::2]) and 1)
PY
