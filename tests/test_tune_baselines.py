"""`gru4rec tune --method BASELINE`: session-rec's spaces, the study, resume, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gru4rec import io as gio
from gru4rec.baselines import BASELINES, make_baseline
from gru4rec.cli import main
from gru4rec.evaluate import evaluate
from gru4rec.session_data import SessionData
from gru4rec.tune import SpaceError
from gru4rec.tune_baselines import BASELINE_SPACES, read_baseline_space, tune_baseline

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "data" / "tiny" / "rsc15_train_tr.txt"
VALID = ROOT / "data" / "tiny" / "rsc15_train_valid.txt"


@pytest.fixture(scope="module")
def data():
    train = SessionData.from_frame(gio.read_sessions(TRAIN))
    return train, SessionData.from_frame(gio.read_sessions(VALID), train.item_map)


@pytest.mark.parametrize("method", sorted(BASELINE_SPACES))
def test_shipped_spaces_name_the_methods_parameters(method):
    space = read_baseline_space(method)
    assert space and all(p.dtype in ("int", "categorical") for p in space)
    for parameter in space:  # every value of the space builds the baseline
        for value in (parameter.values if parameter.dtype == "categorical" else parameter.values[:2]):
            BASELINES[method](**{parameter.name: value})


def test_a_space_naming_another_parameter_is_refused(tmp_path):
    path = tmp_path / "space.json"
    path.write_text('{"name":"window", "dtype":"int", "values":[1, 3]}\n')
    with pytest.raises(SpaceError, match=r"space.json:1: name 'window' is not a hyperparameter; known names: steps"):
        read_baseline_space("sr", path)


def test_tune_sr_finds_the_best_of_its_trials_and_resumes(tmp_path, data):
    train, valid = data
    space = read_baseline_space("sr")
    result = tune_baseline("sr", train, valid, space, tmp_path, fixed={"pruning": 10}, n_trials=3, progress=False)
    assert result.n_finished == 3 and result.n_run_now == 3
    best = json.loads((tmp_path / "best_params.json").read_text())
    assert best == result.best_params and best["pruning"] == 10 and set(best) == {"pruning", "steps", "weighting"}
    again = evaluate(make_baseline("sr", train, **best), valid, cutoffs=(20,))["mrr@20"]
    assert again == pytest.approx(result.best_value, abs=1e-12)
    more = tune_baseline("sr", train, valid, space, tmp_path, fixed={"pruning": 10}, n_trials=4, progress=False)
    assert more.n_finished == 4 and more.n_run_now == 1 and more.best_value >= result.best_value
    with pytest.raises(ValueError, match="other settings"):
        tune_baseline("sr", train, valid, space, tmp_path, fixed={"pruning": 5}, n_trials=5, progress=False)


def test_fixed_and_searched_at_once_is_refused(tmp_path, data):
    train, valid = data
    with pytest.raises(ValueError, match="steps: both fixed and searched"):
        tune_baseline("sr", train, valid, read_baseline_space("sr"), tmp_path, fixed={"steps": 3}, progress=False)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--method", "nope"], "--method 'nope': choose gru4rec or a baseline"),
        (["--method", "sr", "--params", "p.json"], "--params: only for --method gru4rec"),
        (["--method", "vsknn", "--fixed", "k=abc"], "--param k=abc: expected an integer"),
        (["--method", "gru4rec"], "--space: required to tune gru4rec"),
    ],
)
def test_cli_errors(tmp_path, capsys, extra, message):
    argv = ["tune", "--train", str(TRAIN), "--valid", str(VALID), "--out", str(tmp_path / "t"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_tunes_vsknn(tmp_path, capsys):
    out = tmp_path / "t"
    argv = ["tune", "--method", "vsknn", "--train", str(TRAIN), "--valid", str(VALID), "--out", str(out),
            "--trials", "2", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    best = json.loads((out / "best_params.json").read_text())
    assert set(best) == {"k", "sample_size", "weighting", "weighting_score", "idf_weighting"}
    assert "gru4rec baseline --method vsknn --param k=" in capsys.readouterr().out
