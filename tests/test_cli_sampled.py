"""``gru4rec evaluate --sampled`` / ``gru4rec baseline --sampled``: the biased protocol, its warning and its record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gru4rec.cli import main

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny"
TRAIN = str(TINY / "rsc15_train_full.txt")
TEST = str(TINY / "rsc15_test.txt")


def baseline(method, out, *extra):
    return main(["baseline", "--method", method, "--train", TRAIN, "--test", TEST, "--json", str(out), *extra])


@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
def test_baseline_sampled_warns_records_and_inflates(sampling, tmp_path, capsys):
    honest, sampled = tmp_path / "honest.json", tmp_path / "sampled.json"
    assert baseline("markov", honest) == 0
    capsys.readouterr()
    assert baseline("markov", sampled, "--sampled", "100", "--sampling", sampling, "--sampling-seed", "3") == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "biased" in line]
    assert len(warnings) == 1, err
    assert f"gru4rec baseline --method markov --train {TRAIN} --test {TEST}" in warnings[0]
    assert "--sampled" not in warnings[0].split("honest numbers:")[1]
    metrics, full = json.loads(sampled.read_text()), json.loads(honest.read_text())
    assert metrics["protocol"] == {"sampled": 100, "sampling": sampling, "seed": 3}
    assert "protocol" not in full
    assert metrics["n_events"] == full["n_events"]
    assert metrics["recall@20"] > full["recall@20"], "100 negatives instead of 362 items: more hits"


def test_baseline_sampled_same_seed_same_numbers(tmp_path, capsys):
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    assert baseline("itemknn", a, "--sampled", "50") == 0
    assert baseline("itemknn", b, "--sampled", "50", "--batch-size", "7") == 0
    assert baseline("itemknn", c, "--sampled", "50", "--sampling-seed", "1") == 0
    first, again, other = (json.loads(p.read_text()) for p in (a, b, c))
    assert first["recall@5"] == again["recall@5"] and first["mrr@20"] == pytest.approx(again["mrr@20"])
    assert (first["recall@5"], first["mrr@20"]) != (other["recall@5"], other["mrr@20"])


def test_sampled_bad_input(tmp_path, capsys):
    out = tmp_path / "m.json"
    assert baseline("pop", out, "--sampled", "0") == 2
    assert baseline("pop", out, "--sampled", "100000") == 2
    with pytest.raises(SystemExit) as exit_info:  # argparse's choices
        baseline("pop", out, "--sampled", "10", "--sampling", "zipf")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--sampled 0: expected a number of negatives in 1 .. 361" in err
    assert "--sampled 100000" in err and "zipf" in err
    assert not out.exists()


@pytest.mark.slow
def test_evaluate_a_run_sampled(tmp_path, capsys):
    from gru4rec.config import Config
    from gru4rec.io import read_sessions
    from gru4rec.session_data import SessionData
    from gru4rec.train import train

    run_dir = tmp_path / "run"
    config = Config.preset("official", n_epochs=1, n_sample=64, layers=(32,), batch_size=32)
    train(config, SessionData.from_frame(read_sessions(TRAIN)), run_dir, progress=False)
    honest, sampled = tmp_path / "honest.json", tmp_path / "sampled.json"
    assert main(["evaluate", "--model", str(run_dir), "--test", TEST, "--json", str(honest)]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", str(run_dir), "--test", TEST, "--json", str(sampled),
                 "--sampled", "100", "--sampling", "popularity"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert f"the honest numbers: gru4rec evaluate --model {run_dir} --test {TEST}" in err
    metrics, full = json.loads(sampled.read_text()), json.loads(honest.read_text())
    assert metrics["protocol"] == {"sampled": 100, "sampling": "popularity", "seed": 0}
    assert metrics["recall@20"] >= full["recall@20"]
    # a run folder without the training support: popularity sampling asks for --train, then works with it
    (run_dir / "item_support.npy").unlink()
    capsys.readouterr()
    assert main(["evaluate", "--model", str(run_dir), "--test", TEST, "--sampled", "100",
                 "--sampling", "popularity"]) == 2  # fmt: skip
    assert "pass the training sessions with --train PATH" in capsys.readouterr().err
    again = tmp_path / "again.json"
    assert main(["evaluate", "--model", str(run_dir), "--test", TEST, "--sampled", "100", "--sampling", "popularity",
                 "--train", TRAIN, "--json", str(again)]) == 0  # fmt: skip
    assert json.loads(again.read_text())["recall@20"] == metrics["recall@20"]
