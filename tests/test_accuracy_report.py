"""benchmarks/accuracy_report.py: the summary over repeated runs, and one small run of the script (the kit alone,
repeated, on a preset and on files given with --train/--test; the official codes are not run by the tests)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import accuracy_report  # noqa: E402


def _row(method, epochs, recall, mrr, seconds=None):
    return {"method": method, "epochs": epochs, "recall@20": recall, "mrr@20": mrr, "epoch_seconds": seconds,
            "ceiling_share": None}  # fmt: skip


def test_the_summary_is_the_mean_and_sample_sd_per_method_and_epochs():
    rows = [
        _row("kit", 3, 0.30, 0.10, 2.0), _row("kit", 3, 0.34, 0.12, 4.0), _row("kit", 10, 0.40, 0.20),
        _row("official", 3, 0.32, 0.11), _row("official (failed)", 3, None, None), _row("POP", None, 0.1, 0.05),
    ]  # fmt: skip
    summary = {(s["method"], s["epochs"]): s for s in accuracy_report.summarize(rows)}
    kit3 = summary[("kit", 3)]
    assert kit3["runs"] == 2
    assert kit3["recall@20"] == pytest.approx(0.32) and kit3["recall@20_sd"] == pytest.approx(math.sqrt(0.0008))
    assert kit3["mrr@20"] == pytest.approx(0.11) and kit3["epoch_seconds"] == pytest.approx(3.0)
    assert summary[("kit", 10)]["runs"] == 1 and summary[("kit", 10)]["recall@20_sd"] is None
    assert ("official (failed)", 3) not in summary
    assert summary[("POP", None)]["recall@20"] == pytest.approx(0.1)


def test_the_binomial_standard_error_of_a_recall():
    assert accuracy_report.binomial_se(0.5, 10_000) == pytest.approx(0.005)
    assert accuracy_report.binomial_se(0.0, 10) == 0.0


@pytest.mark.slow
def test_a_repeated_report_on_tiny_and_on_files(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    base = [sys.executable, str(ROOT / "benchmarks" / "accuracy_report.py"), "--epochs", "1", "--repeats", "2",
            "--variants", "reset_after", "--no-baselines", "--set", "layers=16", "--set", "n_sample=64"]  # fmt: skip
    out = tmp_path / "report.json"
    done = subprocess.run(base + ["--preset", "tiny", "--run-dir", str(tmp_path / "runs"), "--json", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    kit = [r for r in report["rows"] if r["method"] == "kit, reset_after"]
    assert [r["seed"] for r in kit] == [42, 43]
    assert kit[0]["recall@20"] != kit[1]["recall@20"] or kit[0]["mrr@20"] != kit[1]["mrr@20"]
    (summary,) = [s for s in report["summary"] if s["method"] == "kit, reset_after"]
    assert summary["runs"] == 2 and summary["recall@20_sd"] is not None
    assert "Mean ± standard deviation over 2 runs" in done.stdout and "binomial standard error" in done.stdout
    assert (tmp_path / "runs" / "reset_after_seed43" / "config.json").exists()

    data = ROOT / "data" / "tiny"
    given = ["--train", str(data / "rsc15_train_full.txt"), "--test", str(data / "rsc15_test.txt")]
    orders = ["--session-orders", "time", "shuffled"]
    files = subprocess.run(base + given + orders + ["--repeats", "1", "--run-dir", str(tmp_path / "runs_files")],
                           capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert files.returncode == 0, files.stderr[-3000:]
    assert "rsc15_train_full.txt, test split" in files.stdout and "Bayes-optimal" not in files.stdout
    assert "| kit, reset_after, time order | 1 |" in files.stdout
    assert "| kit, reset_after, shuffled | 1 |" in files.stdout
    shuffled = json.loads((tmp_path / "runs_files" / "reset_after_shuffled" / "config.json").read_text())
    assert shuffled["config"]["shuffle"] is True


def _report(args, env):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "accuracy_report.py"), *args],
                          capture_output=True, text=True, env=env, timeout=600)  # fmt: skip


@pytest.mark.slow  # trains runs of whole epochs
def test_a_reused_kit_run_of_another_config_or_data_is_refused(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    data = ROOT / "data" / "tiny"
    common = ["--epochs", "1", "--variants", "reset_after", "--no-baselines", "--set", "layers=8",
              "--set", "n_sample=16", "--run-dir", str(tmp_path / "runs"), "--test", str(data / "rsc15_test.txt")]
    full = ["--train", str(data / "rsc15_train_full.txt")]
    first = _report(common + full, env)
    assert first.returncode == 0, first.stderr[-3000:]
    again = _report(common + full, env)  # the same request: the finished run is reused, not trained again
    assert again.returncode == 0, again.stderr[-3000:]
    assert "trained" not in again.stdout and "| kit, reset_after | 1 |" in again.stdout

    other_config = _report(common + full + ["--set", "n_sample=32"], env)
    assert other_config.returncode == 2
    (line,) = other_config.stderr.strip().splitlines()[-1:]
    assert "cannot reuse it" in line and "n_sample: 16 (run) != 32 (now)" in line
    assert len([x for x in other_config.stderr.splitlines() if x.startswith("error:")]) == 1

    other_data = _report(common + ["--train", str(data / "rsc15_train_tr.txt")], env)
    assert other_data.returncode == 2
    last = other_data.stderr.strip().splitlines()[-1]
    assert "cannot reuse it" in last and "number of events" in last and "events differ" in last


def test_an_official_log_without_a_matching_record_is_refused(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    import official_runs

    data = ROOT / "data" / "tiny"
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "run.py").write_text("raise SystemExit('not to be run by this test')\n")
    runs = tmp_path / "runs"
    runs.mkdir()
    log = runs / "official_tf_1ep.log"
    log.write_text("Epoch1 --> loss: 5.0 \t(1.00s)\nRecall@20: 0.5 MRR@20: 0.2\n")
    args = ["--epochs", "1", "--variants", "reset_after", "--no-baselines", "--set", "layers=8", "--set",
            "n_sample=16", "--run-dir", str(runs), "--train", str(data / "rsc15_train_full.txt"),
            "--test", str(data / "rsc15_test.txt"), "--official-tf", str(clone), "--reuse-official-logs"]  # fmt: skip
    missing = _report(args, env)
    assert missing.returncode == 2
    assert "official_tf_1ep.params.json (its parameters and data) is missing" in missing.stderr.strip().splitlines()[-1]

    from gru4rec.config import Config

    params = official_runs.params_from_config(Config.preset("official", layers=(8,), n_sample=32), 1)
    record = official_runs.run_record("tf", clone, data / "rsc15_train_full.txt", data / "rsc15_test.txt", params)
    official_runs.record_path(log).write_text(json.dumps(record))
    stale = _report(args, env)  # the log is of n_sample=32, the request of 16
    assert stale.returncode == 2
    assert "parameters: " in stale.stderr and "n_sample=32" in stale.stderr and "(log) !=" in stale.stderr
    assert not (runs / "reset_after").exists()  # refused before anything was trained


def test_bad_tuned_parameter_files_are_refused_before_any_training(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    good = tmp_path / "sr.json"
    good.write_text(json.dumps({"steps": 5}))
    bad_value = tmp_path / "bad.json"
    bad_value.write_text(json.dumps({"steps": -1}))
    not_object = tmp_path / "list.json"
    not_object.write_text("[1, 2]")
    common = ["--preset", "tiny", "--epochs", "1", "--run-dir", str(tmp_path / "runs")]
    cases = {
        ("--baseline-params", f"nope={good}"): "unknown method 'nope'",
        ("--baseline-params", str(good)): "expected METHOD=FILE",
        ("--baseline-params", f"sr={bad_value}"): "--baseline-params sr:",
        ("--baseline-params", f"sr={tmp_path / 'missing.json'}"): "no such parameter file",
        ("--params", str(not_object)): "expected a JSON object",
    }
    for args, expected in cases.items():
        done = _report(common + list(args), env)
        assert done.returncode == 2, (args, done.stderr[-2000:])
        assert expected in done.stderr.strip().splitlines()[-1], (args, done.stderr[-2000:])
    assert not (tmp_path / "runs").exists()  # nothing was trained


@pytest.mark.slow
def test_tuned_parameters_for_gru4rec_and_a_baseline_are_used(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    gru = tmp_path / "best_params.json"
    gru.write_text(json.dumps({"layers": [8], "n_sample": 16}))
    sr = tmp_path / "sr_best_params.json"
    sr.write_text(json.dumps({"steps": 3}))
    out = tmp_path / "report.json"
    done = _report(["--preset", "tiny", "--epochs", "1", "--variants", "reset_after",
                    "--run-dir", str(tmp_path / "runs"), "--params", str(gru),
                    "--baseline-params", f"sr={sr}", "--json", str(out)], env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    config = json.loads((tmp_path / "runs" / "reset_after" / "config.json").read_text())["config"]
    assert config["layers"] == [8] and config["n_sample"] == 16
    methods = [r["method"] for r in json.loads(out.read_text())["rows"]]
    assert "sr (tuned)" in methods and "sr" not in methods and "vsknn" in methods
