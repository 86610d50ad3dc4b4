"""``--help`` tells the values that will be used and the choices; commands that only reject their arguments answer
without importing TensorFlow first."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gru4rec.cli import build_parser, main
from gru4rec.config import DEVICES, LOSSES, OPTIMIZERS, Config

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "data" / "tiny"


def help_text(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return re.sub(r"\s+", " ", sub.format_help())


def test_train_help_shows_the_default_presets_values_and_the_choices() -> None:
    text = help_text("train")
    official, seed = Config.preset("official"), Config.preset("seed")
    assert f"--learning_rate FLOAT, --learning-rate FLOAT default: {official.learning_rate}" in text
    assert f"(--preset seed: {seed.learning_rate})" in text
    assert "--batch_size INT, --batch-size INT default: 32 (--preset seed: 50)" in text
    assert "default: the preset's" not in text
    assert f"one of: {', '.join(LOSSES)}" in text and f"one of: {', '.join(OPTIMIZERS)}" in text
    assert f"one of: {', '.join(DEVICES)}" in text and "elu-<X>" in text
    assert "printed and stored in RUN_DIR/train.jsonl" in text  # where --valid results go


def test_seed_help_and_default_run_folder() -> None:
    text = help_text("seed")
    assert "default: runs/seed" in text and "(0-based)" in text
    args = build_parser().parse_args(["seed"])
    assert args.checkpoint_dir == "runs/seed"


def test_baseline_param_errors_list_the_valid_parameters(capsys) -> None:
    common = ["--train", str(TINY / "rsc15_train_full.txt"), "--test", str(TINY / "rsc15_test.txt")]
    assert main(["baseline", "--method", "itemknn", "--param", "bogus=1", *common]) == 2
    err = capsys.readouterr().err
    assert "--param bogus: not a parameter of baseline 'itemknn'" in err and "n_sims=100" in err and "lmbd=" in err
    assert "__init__" not in err
    assert main(["baseline", "--method", "pop", "--param", "window=2", *common]) == 2
    assert "its parameters: none" in capsys.readouterr().err


REJECTED = [
    ["train", "--train", "missing.txt", "--out", "x", "--bogus"],
    ["train", "--train", str(ROOT / "data" / "tiny" / "rsc15_train_full.txt"), "--out", "x", "--loss", "bogus"],
    ["recommend", "--model", "no/such/run", "--items", "214500955", "-k", "5"],
    ["recommend", "--model", str(ROOT), "--items", "a,b"],
    ["export", "--model", "no/such/run", "--out", "x"],
    ["evaluate", "--model", "no/such/run", "--test", "missing.txt"],
    ["baseline", "--method", "pop", "--param", "bogus=1", "--train", "a", "--test", "b"],
    ["lab", "--port", "0", "--prepare-only"],
]


@pytest.mark.slow
@pytest.mark.parametrize("argv", REJECTED, ids=[" ".join(a[:2]) for a in REJECTED])
def test_rejecting_arguments_does_not_import_tensorflow(argv, tmp_path) -> None:
    code = (
        "import json, sys\n"
        "from gru4rec.cli import main\n"
        "try:\n"
        f"    rc = main({json.dumps(argv)})\n"
        "except SystemExit as stop:\n"
        "    rc = stop.code\n"
        "print(json.dumps({'rc': rc, 'tf': 'tensorflow' in sys.modules}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rc"] == 2 and "error" in done.stderr, done.stderr
    assert not result["tf"], f"{' '.join(argv)} imported TensorFlow before rejecting its arguments"
