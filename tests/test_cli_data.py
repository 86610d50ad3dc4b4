"""`gru4rec prepare rsc15` and `gru4rec synth`: exit codes and messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gru4rec.cli import main
from tests.test_rsc15 import EXPECTED, HAND_CLICKS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_prepare_without_the_file_explains_where_rsc15_comes_from(tmp_path, capsys):
    code = main(["prepare", "rsc15", "--clicks", str(tmp_path / "yoochoose-clicks.dat"), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "no such file" in err
    assert "RecSys Challenge 2015" in err and "yoochoose-clicks.dat" in err
    assert "cannot be downloaded" in err


def test_prepare_accepts_a_folder_holding_the_clicks(tmp_path, capsys):
    (tmp_path / "yoochoose-clicks.dat").write_text(HAND_CLICKS)
    assert main(["prepare", "rsc15", "--clicks", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "rsc15_test.txt").read_text() == EXPECTED["rsc15_test.txt"]
    out = capsys.readouterr().out
    assert "[prepare] reading" in out and "rsc15_train_full.txt" in out


def test_prepare_writes_the_four_files_and_stats(tmp_path):
    clicks = tmp_path / "c.dat"
    clicks.write_text(HAND_CLICKS)
    assert main(["prepare", "rsc15", "--clicks", str(clicks), "--out", str(tmp_path / "o")]) == 0
    for name, text in EXPECTED.items():
        assert (tmp_path / "o" / name).read_text() == text
    stats = json.loads((tmp_path / "o" / "rsc15_stats.json").read_text())
    assert stats["files"]["train_full"]["events"] == 13


def test_prepare_bad_file_is_one_line_exit_2(tmp_path, capsys):
    clicks = tmp_path / "c.dat"
    clicks.write_text(HAND_CLICKS.replace("4,2014-04-02T01:09:00.000Z,106,0", "4,2014-04-02T01:09:00.000Z,abc,0"))
    code = main(["prepare", "rsc15", "--clicks", str(clicks), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("gru4rec prepare: error: ") and len(err.splitlines()) == 1
    assert f"{clicks}:9: column 3 (ItemID): expected an integer ItemID, found 'abc'" in err


def test_synth_tiny_writes_clicks_splits_and_ceiling(tmp_path, capsys):
    out = tmp_path / "tiny"
    assert main(["synth", "--preset", "tiny", "--seed", "42", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ceiling on test" in printed and "R@20" in printed
    for name in [*EXPECTED, "rsc15_stats.json", "yoochoose-clicks.dat"]:
        assert (out / name).exists(), name
    stats = json.loads((out / "rsc15_stats.json").read_text())
    ceiling = stats["ceiling"]["test"]
    assert set(ceiling) >= {f"{m}@{k}" for m in ("recall", "mrr") for k in (1, 5, 10, 20)}
    assert 0 < ceiling["mrr@20"] < ceiling["recall@20"] < 1
    assert stats["synthetic"]["preset"] == "tiny" and stats["synthetic"]["seed"] == 42


def test_synth_no_prepare_writes_only_the_clicks(tmp_path):
    out = tmp_path / "s"
    assert main(["synth", "--preset", "tiny", "--seed", "1", "--out", str(out), "--no-prepare"]) == 0
    assert os.listdir(out) == ["yoochoose-clicks.dat"]


@pytest.mark.slow
def test_prepare_missing_file_via_python_m(tmp_path):
    command = ["prepare", "rsc15", "--clicks", str(tmp_path / "x.dat"), "--out", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "-m", "gru4rec", *command], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 2
    assert "RecSys Challenge 2015" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_preset_is_an_argparse_error(capsys):
    try:
        main(["synth", "--preset", "huge", "--out", "x"])
    except SystemExit as stop:
        assert stop.code == 2
    assert "invalid choice" in capsys.readouterr().err
