#!/usr/bin/env bash
# The kit's test command (the README's, and what CI runs): set up .venv, lint, then run every test.
# Extra arguments go to pytest, e.g. `bash ci/test.sh -k batching`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/ci/setup_env.sh"
venv="${GRU4REC_VENV:-$root/.venv}"
cd "$root"
echo "[test] ruff check (package, tests, benchmarks, notebooks)"
"$venv/bin/ruff" check .
echo "[test] pytest"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
"$venv/bin/python" -m pytest "$@"
