#!/usr/bin/env bash
# The kit's main job (the README's first command): set up .venv, then execute the whole notebook course headlessly
# with its default parameters (the `small` synthetic preset) into build/: the lessons 01, 02, ... in order, then the
# playground 00 (it compares against what the lessons measured).
# Extra arguments go to `gru4rec course`, e.g. `bash ci/run_all.sh --smoke` for a quick pass on the tiny data.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/ci/setup_env.sh"
venv="${GRU4REC_VENV:-$root/.venv}"
cd "$root"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
"$venv/bin/python" -m gru4rec course --out "$root/build" "$@"
echo
echo "Done. Open build/notebooks/*.html in a browser (or the .ipynb files in JupyterLab);"
echo "recorded results are in build/results/, training runs in build/runs/."
