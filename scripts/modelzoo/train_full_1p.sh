#!/usr/bin/env bash
# The seed's test/train_full_1p.sh (Ascend ModelZoo GRU4Rec_for_TensorFlow), for this kit: full training on
# --data_dir with the seed's flags, on one device (ASCEND_DEVICE_ID, default 0), logging in the seed's format to
# output/$ASCEND_DEVICE_ID/train_$ASCEND_DEVICE_ID.log (where you run it from, like the seed).
#   bash scripts/modelzoo/train_full_1p.sh --data_dir=data/rsc15/rsc15_train_full.txt [--epoch=10] [--lr=0.001 ...]
set -euo pipefail
default_epoch=10   # the seed's published runs: 10 epochs
epoch="$default_epoch"
script_help=""
parse_script_arg() { return 1; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_args "$@"

start_time=$(date +%s)
status=0
run_seed "$data_dir" "$epoch" || status=$?
end_time=$(date +%s)

echo "------------------ Final result ------------------"
echo "E2E Training Duration sec : $((end_time - start_time))"
echo "Log : $log_file"
exit "$status"
