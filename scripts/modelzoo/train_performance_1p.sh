#!/usr/bin/env bash
# The seed's test/train_performance_1p.sh, for this kit: a short timed run on one device (ASCEND_DEVICE_ID, default 0)
# that logs in the seed's format to output/$ASCEND_DEVICE_ID/train_$ASCEND_DEVICE_ID.log and prints the mean step
# time and events/s parsed from that log (gru4rec.logs), skipping the first chunk of steps (it includes tracing and
# compilation; step 1 of the seed's logs does too).
#   bash scripts/modelzoo/train_performance_1p.sh --data_dir=data/tiny/rsc15_train_full.txt [--perf_events=20000]
# The run trains --epoch (default 1) epochs on the first --perf_events lines of the data (0 = all of it);
# --max_steps=N stops it after N steps and --log_every=N logs every N steps (both passed on to gru4rec seed).
set -euo pipefail
default_epoch=1
epoch="$default_epoch"
perf_events=20000
batch_size=50   # the seed's batch size; --batch_size=N is also passed on to gru4rec seed
script_help="--perf_events=N      train on the first N events of --data_dir only (default 20000; 0 = all)"
parse_script_arg() {
    case "$1" in
        --perf_events=*) perf_events="${1#*=}"; return 0 ;;
        --batch_size=*) batch_size="${1#*=}"; return 1 ;;  # also forwarded
        *) return 1 ;;
    esac
}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_args "$@"

train_file="$data_dir"
if [[ "$perf_events" != "0" && -f "$data_dir" ]]; then
    train_file="$device_dir/perf_train.txt"
    head -n "$((perf_events + 1))" "$data_dir" > "$train_file"   # +1: the header line
fi

start_time=$(date +%s)
status=0
run_seed "$train_file" "$epoch" || status=$?
end_time=$(date +%s)

echo "------------------ Final result ------------------"
echo "E2E Training Duration sec : $((end_time - start_time))"
if [[ "$status" -ne 0 ]]; then
    echo "[Error] training failed (exit $status); see $log_file" >&2
    exit "$status"
fi
"$python_bin" - "$log_file" "$batch_size" "$device_dir" "$checkpoint_dir" <<'PY'
import json
import math
import sys
from pathlib import Path

from gru4rec.logs import read_log

log_file, batch_size, device_dir, run_dir = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
rows = read_log(log_file)
# Step 1's time includes tracing/compilation (as in the seed's logs). The kit times whole chunks of steps, so every
# record inside the first chunk carries it: keep the records after the first chunk.
first_chunk = 1
config_file = run_dir / "config.json"
if config_file.exists():
    first_chunk = int(json.loads(config_file.read_text()).get("config", {}).get("chunk_steps", 1))
steady = rows[rows["step"] > first_chunk]
if len(steady):
    step_time = float(steady["step_time"].mean())
    how = f"mean of {len(steady)} logged steps after the first chunk of {first_chunk} steps (gru4rec.logs)"
else:  # a run too short to reach a logged step after step 1: fall back to the epoch records of train.jsonl
    epochs = [json.loads(line) for line in (run_dir / "train.jsonl").read_text().splitlines()]
    epochs = [r for r in epochs if r.get("kind") == "epoch"]
    use = epochs[1:] or epochs  # the first epoch includes compilation
    step_time = sum(r["seconds"] for r in use) / sum(r["steps"] for r in use)
    how = (f"no logged step after the first chunk; wall time per step over {len(use)} epoch(s) of train.jsonl"
           + (" (first epoch excluded)" if len(epochs) > 1 else " (compilation included)"))
events_per_s = batch_size / step_time if step_time > 0 else math.nan
# The final loss: the mean loss of the last epoch (train.jsonl); train.log alone may hold only step 1 of a short run.
jsonl = run_dir / "train.jsonl"
records = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()] if jsonl.exists() else []
epoch_records = [r for r in records if r.get("kind") == "epoch"]
if epoch_records:
    last_loss = float(epoch_records[-1]["loss"])
    loss_how = f"mean loss of epoch {epoch_records[-1]['epochs_done']}, train.jsonl"
else:
    last_loss = float(rows["loss"].iloc[-1])
    loss_how = f"running mean at step {int(rows['step'].iloc[-1])}, the last logged step of train.log"
lines = [
    "Network = GRU4Rec_for_TensorFlow (gru4rec kit)",
    "RankSize = 1",
    f"BatchSize = {batch_size}",
    f"TrainingTime = {step_time * 1000:.3f}",  # ms per step, as the ModelZoo scripts report it
    f"ActualFPS = {events_per_s:.1f}",
    f"ActualLoss = {last_loss:.6f}",
    f"StepTimeSource = {how}",
]
(device_dir / f"GRU4Rec_bs{batch_size}_1p_perf.log").write_text("\n".join(lines) + "\n")
print(f"Mean step time : {step_time * 1000:.3f} ms ({how})")
print(f"Events per second : {events_per_s:.1f} (batch {batch_size} x steps per second; tail lanes counted as full)")
print(f"Final loss : {last_loss:.6f} ({loss_how})")
PY
echo "Log : $log_file"
