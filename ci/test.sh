#!/usr/bin/env bash
# The kit's test command (the README's, and what CI runs): set up .venv, lint, then run every test.
#   bash ci/test.sh            everything (CI): lint, unit tests, the trainings, the notebooks, the browser test
#   bash ci/test.sh --fast     the fast tier for a change to one module: lint and the tests that neither train
#                              beyond a few steps nor execute notebooks nor drive a browser (-m "not slow and not browser")
# Extra arguments go to pytest, e.g. `bash ci/test.sh -k batching` or `bash ci/test.sh --fast tests/test_io.py`.
# The tests run on GRU4REC_TEST_WORKERS pytest-xdist workers (default 2; 0 runs them in this process), a test file
# per worker at a time (--dist loadfile: the notebook tests run in course order and read earlier notebooks' runs).
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
echo "[test] pytest ${marker[*]:+${marker[*]}} (workers: ${GRU4REC_TEST_WORKERS:-2})"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
workers="${GRU4REC_TEST_WORKERS:-2}"
parallel=()
if [ "$workers" != "0" ]; then
  parallel=(-n "$workers" --dist loadfile)
fi
"$venv/bin/python" -m pytest ${parallel[@]+"${parallel[@]}"} ${marker[@]+"${marker[@]}"} "$@"
