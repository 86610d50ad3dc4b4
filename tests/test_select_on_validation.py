"""benchmarks/select_on_validation.py: the selection reads the validation split only, then the selected value alone is
read on the test split; the protocol's minimums and stale runs are refused (the kit on tiny data, one epoch)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import select_on_validation as sov  # noqa: E402


def test_select_averages_each_data_set_once_and_keeps_the_first_on_a_tie():
    rows = [
        {"data": "a", "value": 0.0, "recall@20": 0.30}, {"data": "a", "value": 0.0, "recall@20": 0.34},
        {"data": "b", "value": 0.0, "recall@20": 0.10},
        {"data": "a", "value": 3.0, "recall@20": 0.31}, {"data": "b", "value": 3.0, "recall@20": 0.12},
    ]  # fmt: skip
    best, scores = sov.select(rows, [0.0, 3.0])
    assert scores[0.0] == pytest.approx((0.32 + 0.10) / 2) and scores[3.0] == pytest.approx((0.31 + 0.12) / 2)
    assert best == 3.0
    tie = [{"data": "a", "value": v, "recall@20": 0.2} for v in ("x", "y")]
    assert sov.select(tie, ["y", "x"])[0] == "y"


def _second_data_set(folder: Path) -> Path:
    """Four split files of a small random data set (another catalogue and other sessions than tiny)."""
    rng = np.random.default_rng(1)
    folder.mkdir()
    frames = {}
    for split, (first, n) in {"train_tr": (0, 300), "train_valid": (300, 60), "test": (360, 60)}.items():
        rows = []
        for s in range(first, first + n):
            for j in range(int(rng.integers(2, 6))):
                rows.append((s, int(rng.integers(0, 25)) if rng.random() < 0.7 else s % 25, float(100 * s + j)))
        frames[split] = pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])
    frames["train_full"] = pd.concat([frames["train_tr"], frames["train_valid"]])
    for split, frame in frames.items():
        frame.to_csv(folder / f"rand_{split}.txt", sep="\t", index=False)
    return folder


@pytest.mark.slow  # trains runs of whole epochs
def test_the_protocol_selects_on_validation_then_reads_the_test_split_once(tmp_path, monkeypatch, capsys):
    second = _second_data_set(tmp_path / "rand")
    opened = []
    import gru4rec.io as gio

    real = gio.read_sessions

    def recording(path, *args, **kwargs):
        opened.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(gio, "read_sessions", recording)
    out = tmp_path / "select.json"
    common = ["--param", "weight_averaging", "--values", "0", "2", "--epochs", "1", "--set", "layers=8", "--set",
              "n_sample=16", "--run-dir", str(tmp_path / "runs")]  # fmt: skip
    rc = sov.main(common + ["--data", "tiny", "--data", str(second), "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert len(result["validation"]) == 2 * 2 * 3 and {r["split"] for r in result["validation"]} == {"train_valid"}
    best, scores = sov.select(result["validation"], result["values"])
    assert result["selected"] == best and result["validation_scores"] == {str(k): v for k, v in scores.items()}
    assert [(r["data"], r["value"], r["seed"]) for r in result["test"]] == [
        (d, best, s) for d in ("tiny", "rand") for s in (42, 43, 44)]  # fmt: skip
    # no test file was opened before the last validation run was evaluated
    first_test = min(i for i, name in enumerate(opened) if name.endswith("_test.txt"))
    last_valid = max(i for i, name in enumerate(opened) if name.endswith("_train_valid.txt"))
    assert last_valid < first_test
    assert sum(name.endswith("_test.txt") for name in opened) == 2 * 3  # the selected value only
    text = capsys.readouterr().out
    assert f"Selected weight_averaging={best}" in text and "| rand |" in text

    # the shared training's scores of another request are refused, not reused (one line, exit 2)
    record = tmp_path / "runs" / "rand" / "train_tr" / "base" / "seed42.json"
    record.write_text((tmp_path / "runs" / "rand" / "train_tr" / "base" / "seed43.json").read_text())
    assert sov.main(common + ["--data", "tiny", "--data", str(second)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reuse it" in err[0] and "config" in err[0]


@pytest.mark.slow  # trains runs of whole epochs
def test_a_stale_run_folder_is_refused(tmp_path, capsys):
    second = _second_data_set(tmp_path / "rand")
    common = ["--param", "gru_variant", "--values", "reset_after", "reset_before", "--epochs", "1", "--set",
              "layers=8", "--set", "n_sample=16", "--run-dir", str(tmp_path / "runs"), "--data", "tiny",
              "--data", str(second)]  # fmt: skip
    assert sov.main(common) == 0, capsys.readouterr().err
    capsys.readouterr()
    runs = tmp_path / "runs" / "rand" / "train_tr"
    shutil.rmtree(runs / "gru_variant=reset_after" / "seed42")
    shutil.copytree(runs / "gru_variant=reset_before" / "seed42", runs / "gru_variant=reset_after" / "seed42")
    assert sov.main(common) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reuse it" in err[0]
    assert "gru_variant: 'reset_before' (run) != 'reset_after' (now)" in err[0]


def test_the_shared_training_scores_each_eta_as_its_own_training_would(tmp_path):
    """The averages moved beside one training equal the average of a training with that eta (train.py), and eta 0
    is that training's last weights."""
    from gru4rec.config import Config
    from gru4rec.datasets import ensure_preset

    files = ensure_preset("tiny", progress=None)
    config = Config.preset("official", n_epochs=2, layers=(8,), n_sample=16, seed=7)
    shared = sov._train_with_averages(config, [0.0, 2.0], files.train_tr, files.train_valid,
                                      tmp_path / "shared.json", [1, 2])  # fmt: skip
    for eta in (0.0, 2.0):
        alone = sov._train_and_evaluate(config.with_overrides(weight_averaging=eta), files.train_tr,
                                        files.train_valid, tmp_path / f"alone{eta}", [1, 2])  # fmt: skip
        for epoch in (1, 2):
            for metric in sov.METRICS:
                assert shared[eta][epoch][metric] == pytest.approx(alone[epoch][metric], abs=1e-6), (eta, epoch)
    assert shared[0.0][2] != shared[2.0][2]  # the average is not the last weights


def test_a_grid_of_two_parameters_names_each_candidate():
    cands = sov.make_candidates([("gru_variant", ["a", "b"]), ("weight_averaging", [0.0, 3.0])])
    assert [c.label for c in cands] == ["gru_variant=a weight_averaging=0.0", "gru_variant=a weight_averaging=3.0",
                                        "gru_variant=b weight_averaging=0.0", "gru_variant=b weight_averaging=3.0"]
    assert cands[3].setting == {"gru_variant": "b", "weight_averaging": 3.0}
    assert [c.label for c in sov.make_candidates([("weight_averaging", [0.0, 3.0])])] == [0.0, 3.0]


@pytest.mark.parametrize("extra, message", [
    (["--seeds", "42", "43"], "at least 3 distinct seeds"),
    (["--data", "tiny"], "at least 2 data sets"),
    (["--data", "tiny", "--data", "tiny"], "at least 2 data sets"),
    (["--data", "tiny", "--data", "nowhere"], "neither a synthetic preset"),
])  # fmt: skip
def test_the_protocols_minimums_are_refused_before_training(tmp_path, capsys, extra, message):
    args = ["--param", "weight_averaging", "--values", "0", "2", "--run-dir", str(tmp_path / "runs")]
    if "--data" not in extra:
        args += ["--data", "tiny", "--data", "small"]
    assert sov.main(args + extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
