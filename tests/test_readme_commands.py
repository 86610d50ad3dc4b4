"""Every command of the README's command-line block runs as written on the embedded data (in a temporary folder that
holds a copy of data/tiny), so the README cannot drift from the command line."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands(heading: str = "## The command line") -> list:
    """The commands of the first code block under ``heading`` whose lines start with ``gru4rec``, continuation lines
    joined, comments cut."""
    text = (ROOT / "README.md").read_text()
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    block = next((b for b in re.findall(r"```\n(.*?)```", section, re.S) if b.startswith("gru4rec")), None)
    assert block, f"README.md: no block of gru4rec commands under {heading!r}"
    joined = re.sub(r"\\\n\s*", " ", block)
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "gru4rec", f"README command-line block: {line!r} does not start with gru4rec"
            commands.append(words)
    return commands


def test_the_block_covers_every_command() -> None:
    names = {words[1] for words in readme_commands()}
    assert {"synth", "prepare", "train", "evaluate", "baseline", "recommend", "export", "seed"} <= names


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_every_readme_command_runs_as_written(tmp_path) -> None:
    shutil.copytree(ROOT / "data" / "tiny", tmp_path / "data" / "tiny")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    outputs = {}
    for words in readme_commands():
        done = subprocess.run(
            [sys.executable, "-m", *words], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        line = " ".join(words)
        assert done.returncode == 0, f"`{line}` exited {done.returncode}:\n{done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr, f"`{line}`:\n{done.stderr[-2000:]}"
        outputs[line] = done.stdout
    assert (tmp_path / "runs" / "tiny" / "config.json").is_file()
    assert 0 < json.loads((tmp_path / "runs" / "tiny-test.json").read_text())["recall@20"] <= 1
    assert (tmp_path / "runs" / "tiny-saved_model" / "saved_model.pb").is_file()
    assert (tmp_path / "runs" / "seed" / "config.json").is_file() and not (tmp_path / "checkpoint").exists()
    recommended = next(out for line, out in outputs.items() if " recommend " in f" {line} ")
    assert len(re.findall(r"\b2145\d{5}\b", recommended)) == 20, recommended  # 20 item ids of the data
    assert "skipped" not in recommended
    evaluated = next(out for line, out in outputs.items() if "--train 0" in line)
    assert "Recall@20" in evaluated


def own_data_files(folder: Path) -> None:
    """``my_train.tsv`` and ``my_test.tsv`` as the README's "Your own data" describes them: the tiny data with its
    items renumbered 1, 2, 3, ... (so the README's ids 17, 4 and 9 exist), tab-separated with the header."""
    import pandas as pd

    train = pd.read_csv(ROOT / "data" / "tiny" / "rsc15_train_full.txt", sep="\t")
    test = pd.read_csv(ROOT / "data" / "tiny" / "rsc15_test.txt", sep="\t")
    numbers = {item: n for n, item in enumerate(sorted(train["ItemId"].unique()), start=1)}
    for frame, name in ((train, "my_train.tsv"), (test, "my_test.tsv")):
        frame.assign(ItemId=frame["ItemId"].map(numbers)).dropna().astype({"ItemId": "int64"}).to_csv(
            folder / name, sep="\t", index=False)


def test_the_own_data_block_covers_train_evaluate_recommend() -> None:
    assert [words[1] for words in readme_commands("## Your own data")] == ["train", "evaluate", "recommend"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_own_data_block_runs_as_written(tmp_path) -> None:
    own_data_files(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    outputs = []
    for words in readme_commands("## Your own data"):
        done = subprocess.run([sys.executable, "-m", *words], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert done.returncode == 0, f"`{' '.join(words)}` exited {done.returncode}:\n{done.stderr[-2000:]}"
        outputs.append(done.stdout)
    assert (tmp_path / "runs" / "mine" / "config.json").is_file()
    assert re.search(r"^\s*20\s+0\.\d+", outputs[1], flags=re.M), outputs[1]  # the Recall@20 row
    assert len(outputs[2].strip().splitlines()) == 1 + 10, outputs[2]  # a header and the 10 items asked for
