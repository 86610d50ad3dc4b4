# Shared by train_full_1p.sh and train_performance_1p.sh (sourced, not run). Parses the ModelZoo-style arguments,
# sets up output/$ASCEND_DEVICE_ID/ and runs `python -m gru4rec seed`, teeing everything into the seed-format log.

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cur_path="$(pwd)"                      # like the seed's scripts: output/ lands where you run them from
python_bin="${PYTHON:-}"             # default: the kit's .venv (ci/setup_env.sh) when it exists, else python3
if [[ -z "$python_bin" ]]; then
    if [[ -x "$repo_root/.venv/bin/python" ]]; then python_bin="$repo_root/.venv/bin/python"; else python_bin=python3; fi
fi
export ASCEND_DEVICE_ID="${ASCEND_DEVICE_ID:-0}"
export PYTHONPATH="$repo_root${PYTHONPATH:+:$PYTHONPATH}"

data_dir=""
output_dir="$cur_path/output"
checkpoint_dir=""
extra_args=()

usage() {
    cat <<USAGE
usage: bash $(basename "$0") --data_dir=PATH [--epoch=N] [--output_dir=DIR] [other gru4rec seed flags...]

  --data_dir=PATH     training data (GRU4Rec TSV, e.g. rsc15_train_full.txt); --data_path=PATH is the same
  --epoch=N           epochs (default: $default_epoch)
  --output_dir=DIR    where output/\$ASCEND_DEVICE_ID/ goes (default: ./output)
  --checkpoint_dir=D  the run folder (default: OUTPUT_DIR/\$ASCEND_DEVICE_ID/run; replaced if it exists)
  $script_help
Any other --flag=value is passed to 'python -m gru4rec seed' unchanged (e.g. --lr=0.001 --size=100 --loss=top1).
ASCEND_DEVICE_ID (default 0) names the device and the log: OUTPUT_DIR/\$ASCEND_DEVICE_ID/train_\$ASCEND_DEVICE_ID.log.
PYTHON selects the interpreter (default: the repository's .venv/bin/python if present, else python3).
USAGE
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            -h|--help) usage; exit 0 ;;
            --data_dir=*|--data_path=*) data_dir="${1#*=}" ;;
            --data_dir|--data_path) data_dir="${2:?$1 needs a value}"; shift ;;
            --epoch=*) epoch="${1#*=}" ;;
            --epoch) epoch="${2:?--epoch needs a value}"; shift ;;
            --output_dir=*) output_dir="${1#*=}" ;;
            --output_dir) output_dir="${2:?--output_dir needs a value}"; shift ;;
            --checkpoint_dir=*) checkpoint_dir="${1#*=}" ;;
            --checkpoint_dir) checkpoint_dir="${2:?--checkpoint_dir needs a value}"; shift ;;
            *) if ! parse_script_arg "$1"; then extra_args+=("$1"); fi ;;
        esac
        shift
    done
    if [[ -z "$data_dir" ]]; then
        echo "[Error] --data_dir=PATH must be given (the training data, e.g. rsc15_train_full.txt)" >&2
        exit 2
    fi
    if [[ ! -e "$data_dir" ]]; then
        echo "[Error] --data_dir=$data_dir does not exist" >&2
        exit 2
    fi
    device_dir="$output_dir/$ASCEND_DEVICE_ID"
    log_file="$device_dir/train_$ASCEND_DEVICE_ID.log"
    console_file="$device_dir/console_$ASCEND_DEVICE_ID.log"
    checkpoint_dir="${checkpoint_dir:-$device_dir/run}"
    rm -rf "$device_dir"
    mkdir -p "$device_dir"
}

# run_seed DATA EPOCHS: the seed-compatible training command. Its console output goes to the terminal and to
# console_$ASCEND_DEVICE_ID.log; the run's own train.log (the seed's format, nothing else in it, so that it parses)
# is copied to train_$ASCEND_DEVICE_ID.log.
run_seed() {
    local data="$1" epochs="$2" status
    echo "Device ID: $ASCEND_DEVICE_ID"
    set +e
    "$python_bin" -m gru4rec seed --data_dir="$data" --epoch="$epochs" --checkpoint_dir="$checkpoint_dir" \
        ${extra_args[@]+"${extra_args[@]}"} 2>&1 | tee "$console_file"
    status="${PIPESTATUS[0]}"
    set -e
    if [[ -f "$checkpoint_dir/train.log" ]]; then
        cp "$checkpoint_dir/train.log" "$log_file"
    else
        echo "[Error] the run wrote no $checkpoint_dir/train.log; see $console_file" >&2
        [[ "$status" -ne 0 ]] || status=1
    fi
    return "$status"
}
