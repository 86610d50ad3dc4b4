"""``benchmarks/baseline_results.py``: the baselines' rows written as JSON, with their standard errors."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import baseline_results  # noqa: E402

from gru4rec import io as gio  # noqa: E402
from gru4rec.baselines import make_baseline  # noqa: E402
from gru4rec.evaluate import evaluate  # noqa: E402
from gru4rec.session_data import SessionData  # noqa: E402

TRAIN = ROOT / "data" / "tiny" / "rsc15_train_full.txt"
TEST = ROOT / "data" / "tiny" / "rsc15_test.txt"


def test_rows_are_the_evaluators_numbers_with_their_standard_errors(tmp_path):
    out = tmp_path / "rows.json"
    assert baseline_results.main(["--set", f"tiny={TRAIN},{TEST}", "--methods", "markov", "vsknn",
                                  "--out", str(out)]) == 0  # fmt: skip
    written = json.loads(out.read_text())
    rows = written["sets"]["tiny"]["methods"]
    assert set(rows) == {"markov", "vsknn"}
    train = SessionData.from_frame(gio.read_sessions(TRAIN))
    test = SessionData.from_frame(gio.read_sessions(TEST), train.item_map)
    for method, row in rows.items():
        expected = evaluate(make_baseline(method, train), test, cutoffs=(20,))
        assert row["recall@20"] == pytest.approx(expected["recall@20"], abs=1e-12)
        assert row["mrr@20"] == pytest.approx(expected["mrr@20"], abs=1e-12)
        n = expected["n_events"]
        assert row["n_events"] == n
        assert row["recall@20_se"] == pytest.approx(math.sqrt(row["recall@20"] * (1 - row["recall@20"]) / n))
        assert 0 < row["mrr@20_se"] < row["recall@20_se"]  # reciprocal ranks vary less than hits
    assert rows["vsknn"]["params"]["k"] == 500 and "machine" in written and written["command"].startswith("python")


def test_tuned_parameters_add_a_row(tmp_path):
    params = tmp_path / "best_params.json"
    params.write_text(json.dumps({"k": 50, "sample_size": 200}))
    out = tmp_path / "rows.json"
    baseline_results.main(["--set", f"tiny={TRAIN},{TEST}", "--set", f"again={TRAIN},{TEST}", "--methods", "vsknn",
                           "--params", f"vsknn@tiny={params}", "--out", str(out)])  # fmt: skip
    sets = json.loads(out.read_text())["sets"]
    rows = sets["tiny"]["methods"]
    assert rows["vsknn (tuned)"]["params"]["k"] == 50 and rows["vsknn"]["params"]["k"] == 500
    assert rows["vsknn (tuned)"]["params_file"] == str(params)
    assert set(sets["again"]["methods"]) == {"vsknn"}  # tuned for tiny only


@pytest.mark.parametrize("args, message", [
    (["--set", "tiny=only_one_file"], "expected NAME=TRAIN,TEST"),
    (["--set", f"tiny={TRAIN},/no/such/test.txt"], "/no/such/test.txt: no such file"),
    (["--params", "vsknn=/no/such/best_params.json"], "--params vsknn"),
    (["--params", "gru=x.json"], "unknown method 'gru'"),
    (["--params", "sr@=x.json"], "expected METHOD=FILE or METHOD@SET=FILE"),
])  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        baseline_results.main(args + ["--out", str(tmp_path / "x.json")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.json").exists()
