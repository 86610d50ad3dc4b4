"""``gru4rec evaluate / baseline / recommend / export`` end to end on the embedded tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gru4rec.cli import main

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny"
TRAIN = str(TINY / "rsc15_train_full.txt")
TEST = str(TINY / "rsc15_test.txt")


@pytest.mark.parametrize("method", ["pop", "spop", "itemknn", "markov"])
def test_baseline_writes_the_metrics_json(method, tmp_path, capsys):
    out = tmp_path / "m.json"
    code = main(["baseline", "--method", method, "--train", TRAIN, "--test", TEST, "--json", str(out),
                 "--cutoffs", "1", "5", "20"])  # fmt: skip
    assert code == 0
    metrics = json.loads(out.read_text())
    for key in ("recall@1", "recall@20", "mrr@5", "coverage@20", "n_events", "tie_mode", "cutoffs", "method"):
        assert key in metrics
    assert metrics["cutoffs"] == [1, 5, 20] and metrics["tie_mode"] == "conservative"
    assert 0 < metrics["recall@20"] <= 1 and metrics["n_events"] > 0
    assert "recall" in capsys.readouterr().out


def test_baseline_params_and_errors(tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["baseline", "--method", "markov", "--param", "window=3", "--train", TRAIN, "--test", TEST,
                 "--json", str(out)]) == 0  # fmt: skip
    assert json.loads(out.read_text())["params"]["window"] == 3
    assert main(["baseline", "--method", "markov", "--param", "nope=1", "--train", TRAIN, "--test", TEST]) == 2
    assert main(["baseline", "--method", "pop", "--train", "missing.txt", "--test", TEST]) == 2
    assert main(["baseline", "--method", "pop", "--train", TRAIN, "--test", TEST, "--cutoffs", "0"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "missing.txt" in err and "cutoffs" in err


@pytest.mark.slow
def test_evaluate_a_run(run_dir, tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = main(["evaluate", "--model", str(run_dir), "--test", TEST, "--cutoffs", "1", "5", "10", "20",
                 "--tie-mode", "conservative", "--json", str(out), "--batch-size", "1000"])  # fmt: skip
    assert code == 0
    metrics = json.loads(out.read_text())
    assert metrics["epoch"] == 1 and metrics["batch_size"] == 1000
    assert "popularity@20" in metrics  # the run folder keeps the training supports
    for k in (1, 5, 10, 20):
        assert 0 <= metrics[f"mrr@{k}"] <= metrics[f"recall@{k}"] <= 1
    # the batch size does not change the numbers
    out2 = tmp_path / "eval2.json"
    assert main(["evaluate", "--model", str(run_dir), "--test", TEST, "--json", str(out2), "--batch-size", "3"]) == 0
    again = json.loads(out2.read_text())
    assert again["recall@20"] == metrics["recall@20"]
    assert again["mrr@20"] == pytest.approx(metrics["mrr@20"])


@pytest.mark.slow
def test_evaluate_errors(run_dir, tmp_path, capsys):
    assert main(["evaluate", "--model", str(tmp_path), "--test", TEST]) == 2
    assert main(["evaluate", "--model", str(run_dir), "--test", TEST, "--epoch", "7"]) == 2
    err = capsys.readouterr().err
    assert "not a run folder" in err and "epoch" in err


@pytest.mark.slow
def test_recommend_prints_a_ranked_list(run_dir, tmp_path, capsys):
    from gru4rec.session_data import ItemMap

    ids = ItemMap.load(run_dir / "items.tsv").ids
    items = ",".join(str(i) for i in ids[[3, 8, 1]])
    out = tmp_path / "rec.json"
    assert main(["recommend", "--model", str(run_dir), "--items", items, "-k", "5", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ItemId" in printed and "Score" in printed
    listed = json.loads(out.read_text())
    assert len(listed["item_ids"]) == 5 and set(listed["item_ids"]) <= set(ids.tolist())
    assert listed["scores"] == sorted(listed["scores"], reverse=True)
    # unknown ids: skipped with a note; nothing known: an error, not a traceback
    assert main(["recommend", "--model", str(run_dir), "--items", f"{items},999999999", "-k", "5"]) == 0
    assert "skipped" in capsys.readouterr().err
    assert main(["recommend", "--model", str(run_dir), "--items", "999999998,999999999"]) == 2
    assert main(["recommend", "--model", str(run_dir), "--items", "a,b"]) == 2


@pytest.mark.slow
def test_export_and_reload(run_dir, tmp_path):
    import tensorflow as tf

    from gru4rec.recommend import Recommender
    from gru4rec.session_data import ItemMap

    out = tmp_path / "saved"
    assert main(["export", "--model", str(run_dir), "--out", str(out), "-k", "7"]) == 0
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    ids = ItemMap.load(run_dir / "items.tsv").ids
    state = np.zeros((1, 32), np.float32)
    for item in ids[[5, 2]]:
        result = serve(item_ids=tf.constant([item], tf.int64), state=tf.constant(state))
        state = result["state"].numpy()
    want = Recommender.from_run(run_dir).recommend(ids[[5, 2]], k=7)
    np.testing.assert_array_equal(result["top_item_ids"].numpy()[0], want.item_ids)
    np.testing.assert_allclose(result["top_scores"].numpy()[0], want.scores, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("param", ["lmbd=nan", "lmbd=inf", "alpha=nan", "n_sims=2.5"])
def test_baseline_rejects_non_finite_params_before_reading_data(param, capsys):
    # once: lmbd=nan exited 0 with MRR@20 = inf
    code = main(["baseline", "--method", "itemknn", "--param", param, "--train", "missing.txt", "--test", TEST])
    err = capsys.readouterr().err
    assert code == 2 and param.split("=")[0] in err and "missing.txt" not in err
    assert len(err.strip().splitlines()) == 1



def test_baseline_huge_markov_window_is_bounded():
    # once: a loop over every gap up to the window grew to 23 GB and was killed by the OOM killer. Run in a child
    # process under a 3 GiB address-space limit and a time limit, so that a regression fails instead of eating the
    # machine's memory.
    import resource
    import subprocess
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    command = [sys.executable, "-m", "gru4rec", "baseline", "--method", "markov", "--param", "window=1000000000",
               "--train", TRAIN, "--test", TEST, "--cutoffs", "20"]  # fmt: skip
    done = subprocess.run(command, preexec_fn=limit, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "recall" in done.stdout.lower()
