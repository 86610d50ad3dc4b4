#!/usr/bin/env bash
# Create (or reuse) the kit's virtual environment in .venv and install the kit into it.
# TensorFlow flavour: tensorflow-cpu unless GRU4REC_TF=gpu (or an NVIDIA GPU is visible), then tensorflow[and-cuda].
# Re-running is cheap: pip is skipped when pyproject.toml has not changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${GRU4REC_VENV:-$root/.venv}"
python="${PYTHON:-python3}"

flavour="${GRU4REC_TF:-}"
if [ -z "$flavour" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then flavour=gpu; else flavour=cpu; fi
fi
extras="$flavour,notebooks,dev"

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
stamp="$venv/.gru4rec-installed"
want="$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)-$extras"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing the kit with extras [$extras] (first time: a few minutes)"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e "$root[$extras]"
  "$venv/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
  echo "$want" > "$stamp"
else
  echo "[setup] reusing $venv (up to date)"
fi
