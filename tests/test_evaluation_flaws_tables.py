"""scripts/evaluation_flaws_tables.py writes docs/evaluation_flaws.md's tables from notebook 08's recorded results."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd

from gru4rec.lessons import evaluation_flaws as flaws

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "evaluation_flaws_tables.py"


def _script():
    spec = importlib.util.spec_from_file_location("evaluation_flaws_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record() -> dict:
    honest = {"gru4rec": {"recall@20": 0.36, "mrr@20": 0.17}, "pop": {"recall@20": 0.05, "mrr@20": 0.02}}
    sampled = {"gru4rec": {"recall@20": 0.80, "mrr@20": 0.60}, "pop": {"recall@20": 0.90, "mrr@20": 0.10}}
    sweep = pd.DataFrame([{"sampling": "uniform", "n_negatives": 100, "model": m, **v} for m, v in sampled.items()])
    return {"k": 20, "models": ["gru4rec", "pop"], "honest": honest,
            "flaws": [flaws.flaw_record("sampled metrics (uniform, N=100)", honest, sampled, 20)],
            "sampled_sweep": sweep.to_dict("records"),
            "sweep_verdicts": flaws.sweep_verdicts(sweep, honest, 20).to_dict("records")}  # fmt: skip


def test_the_tables_carry_the_recorded_numbers_and_verdicts(tmp_path, capsys) -> None:
    path = tmp_path / "08_evaluation_flaws.json"
    path.write_text(json.dumps(_record()))
    assert _script().main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "| sampled metrics (uniform, N=100) | GRU4Rec | 0.3600 | 0.8000 | 2.22× | 0.1700 | 0.6000 | 1 → 2 |" in out
    assert "|  | POP | 0.0500 | 0.9000 | 18.00× | 0.0200 | 0.1000 | 2 → 1 |" in out
    assert "| sampled metrics (uniform, N=100) | yes | GRU4Rec / POP | no | – |" in out
    assert "| uniform | 100 | 0.8000 | 0.9000 |" in out and "| full catalogue | all | 0.3600 | 0.0500 |" in out
    assert "| uniform | 100 | POP > GRU4Rec | yes |" in out


def test_a_file_that_is_not_notebook_08s_record_is_one_line(tmp_path, capsys) -> None:
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({"k": 20}))
    assert _script().main([str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bad) in err and "not the recorded results of notebook 08" in err
    assert _script().main([str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
