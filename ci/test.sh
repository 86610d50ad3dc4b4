#!/usr/bin/env bash
# The kit's test command (the README's, and what CI runs): set up .venv, lint, then run every test.
#   bash ci/test.sh            everything (CI): lint, unit tests, the trainings, the notebooks, the browser test
#   bash ci/test.sh --fast     the fast tier for a change to one module: lint and the tests that neither train
#                              beyond a few steps nor execute notebooks nor drive a browser (-m "not slow and not browser")
# Extra arguments go to pytest, e.g. `bash ci/test.sh -k batching` or `bash ci/test.sh --fast tests/test_io.py`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
marker=()
if [ "${1:-}" = "--fast" ]; then
  shift
  marker=(-m "not slow and not browser")
fi
bash "$root/ci/setup_env.sh"
venv="${GRU4REC_VENV:-$root/.venv}"
cd "$root"
echo "[test] ruff check (package, tests, benchmarks, notebooks)"
"$venv/bin/ruff" check .
echo "[test] pytest ${marker[*]:+${marker[*]}}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
"$venv/bin/python" -m pytest ${marker[@]+"${marker[@]}"} "$@"
