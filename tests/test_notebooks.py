"""Every notebook of the course: its shape (one parameters cell, no outputs) and a papermill smoke run whose recorded
results are read back and checked against invariants that could fail."""

from __future__ import annotations

import ast
import json
import subprocess
import warnings
from pathlib import Path
from typing import Optional

import pytest

from gru4rec.course import NOTEBOOKS, execute_notebook, smoke_parameters
from gru4rec.notebook import read_results

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
CELL_TIMEOUT_S = 300


def load(name: str) -> dict:
    return json.loads((NOTEBOOK_DIR / name).read_text())


def tracked(name: str) -> Optional[dict]:
    """The notebook as git tracks it (the index: what a commit would hold), or None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "show", f":notebooks/{name}"], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return json.loads(done.stdout) if done.returncode == 0 else None


def executed_cells(notebook: dict) -> list:
    return [c for c in notebook["cells"] if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]


def check_stripped(name: str) -> None:
    """The committed course has no outputs. Checked on what git tracks, so a notebook run in place (JupyterLab
    autosave) does not fail the tests although nothing was committed; that case gets a warning saying what to do."""
    index = tracked(name)
    source = index if index is not None else load(name)
    where = "tracked by git" if index is not None else "in notebooks/ (no git checkout)"
    assert not executed_cells(source), f"notebooks/{name} ({where}) was committed with outputs: strip them"
    if index is not None and executed_cells(load(name)):
        warnings.warn(
            f"notebooks/{name} has outputs in the working tree: run `git checkout notebooks/{name}`, or use the "
            "lab command (`gru4rec lab`), which works on a copy",
            stacklevel=2,
        )


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_shape(name: str) -> None:
    notebook = load(name)
    cells = notebook["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{name}: expected exactly one cell tagged 'parameters', found {len(tagged)}"
    for statement in ast.parse(source(tagged[0])).body:
        assert isinstance(statement, ast.Assign) and len(statement.targets) == 1, f"{name}: parameters: {statement}"
        target = statement.targets[0]
        assert isinstance(target, ast.Name) and target.id.isupper(), f"{name}: parameter names are UPPER_CASE"
        ast.literal_eval(statement.value)  # a literal, so papermill can override it
    for line in source(tagged[0]).splitlines():
        if line.strip() and "=" in line.split("#")[0]:
            assert "#" in line, f"{name}: every parameter has a comment: {line!r}"
    assert "OUTPUT_DIR" in source(tagged[0]) and "DATA_PRESET" in source(tagged[0])
    check_stripped(name)
    markdown = "\n".join(source(c) for c in cells if c["cell_type"] == "markdown")
    assert "Summary" in markdown and "Exercises" in markdown, f"{name}: needs Summary and Exercises sections"
    assert "record_results" in source(cells[-1]), f"{name}: the last cell records the results"
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"


def test_outputs_in_the_working_tree_are_a_warning_not_a_failure(tmp_path, monkeypatch) -> None:
    name = NOTEBOOKS[0]
    run = json.loads((NOTEBOOK_DIR / name).read_text())
    code = next(c for c in run["cells"] if c["cell_type"] == "code")
    code["outputs"], code["execution_count"] = [{"output_type": "stream", "name": "stdout", "text": "x"}], 1
    monkeypatch.setitem(globals(), "load", lambda n: run)
    if tracked(name) is None:
        pytest.skip("not a git checkout")
    with pytest.warns(UserWarning, match=f"notebooks/{name} has outputs in the working tree: run `git checkout"):
        check_stripped(name)
    monkeypatch.setitem(globals(), "tracked", lambda n: run)  # what a commit with outputs would hold
    with pytest.raises(AssertionError, match="committed with outputs"):
        check_stripped(name)


def check_metrics(metrics: dict, label: str) -> None:
    recall, mrr = metrics["recall@20"], metrics["mrr@20"]
    assert 0.0 <= mrr <= recall <= 1.0, f"{label}: expected 0 <= MRR@20 <= Recall@20 <= 1, got {mrr}, {recall}"


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("course")


def run(name: str, out_dir: Path) -> dict:
    execute_notebook(name, out_dir, smoke_parameters(name), cell_timeout=CELL_TIMEOUT_S, html=False)
    return read_results(out_dir, name)


@pytest.mark.slow
def test_01_data_preparation(out_dir: Path) -> None:
    results = run("01_data_preparation.ipynb", out_dir)
    events = [step["events"] for step in results["funnel"]]
    assert events == sorted(events, reverse=True), "each filter can only remove events"
    assert results["train_full"]["sessions"] > 0 and results["test"]["sessions"] > 0
    assert results["test"]["items"] <= results["train_full"]["items"]


@pytest.mark.slow
def test_02_session_parallel_batching(out_dir: Path) -> None:
    results = run("02_session_parallel_batching.ipynb", out_dir)
    assert results["every_pair_once"] is True
    assert results["n_pairs_in_batches"] == results["n_pairs_expected"] > 0


@pytest.mark.slow
def test_03_bp_vs_bptt_training(out_dir: Path) -> None:
    results = run("03_bp_vs_bptt_training.ipynb", out_dir)
    for mode in ("bp", "bptt"):
        check_metrics(results[mode], mode)
        assert results[mode]["events_per_s"] > 0
        assert results[mode]["recall@20"] > results["pop"]["recall@20"], f"{mode} must beat POP"
    assert results["device"]
    assert results["loop_sinking"]["ms_per_step_chunked"] > 0
    sinking = results["loop_sinking"]
    assert sinking["ms_per_step_one_call_per_step"] > 0 and sinking["chunk_steps"][0] == 1
    per_step, chunked = sinking["ms_per_step_one_call_per_step"], sinking["ms_per_step_chunked"]
    assert sinking["speedup"] == pytest.approx(per_step / chunked)
    assert results["bp"]["bptt_steps"] == 1 < results["bptt"]["bptt_steps"]
    n_epochs = smoke_parameters("03_bp_vs_bptt_training.ipynb")["N_EPOCHS"]
    assert len(results["bp"]["losses"]) == len(results["bptt"]["losses"]) == n_epochs  # one mean loss per epoch


@pytest.mark.slow
def test_04_evaluation(out_dir: Path) -> None:
    results = run("04_evaluation.ipynb", out_dir)
    metrics = results["metrics"]
    for label in ("gru4rec", "pop", "spop", "itemknn", "markov", "sr", "sknn", "vsknn", "stan", "ceiling"):
        check_metrics(metrics[label], label)
    assert metrics["gru4rec"]["recall@20"] > metrics["pop"]["recall@20"]
    assert metrics["ceiling"]["recall@20"] >= metrics["pop"]["recall@20"]
    assert results["optimistic_recall@20"] >= results["honest_recall@20"]
    # the recorded model is the tie-heavy textbook Markov chain: the seed's count must flatter it visibly
    assert results["optimistic_recall@20"] > results["honest_recall@20"] + 0.05
    curve = results["recall_at_k"]["gru4rec"]
    assert len(curve) >= 50 and curve == sorted(curve), "Recall@K cannot fall as K grows"
    assert curve[19] == pytest.approx(metrics["gru4rec"]["recall@20"])
    # notebook 03's BP run is 04's configuration: read from there when 03 ran into the same folder, else trained
    bp = out_dir / "runs" / "03_bp_vs_bptt_training" / "tiny" / "bp"
    own = out_dir / "runs" / "04_evaluation" / "tiny" / "gru4rec"
    assert Path(results["gru4rec_training"]["run_dir"]) == (bp if (bp / "config.json").exists() else own)
    assert (own / "config.json").exists() != (bp / "config.json").exists(), "trained only where nothing was reused"


@pytest.mark.slow
def test_05_gpu_npu_comparison(out_dir: Path) -> None:
    results = run("05_gpu_npu_comparison.ipynb", out_dir)
    expected_steps = [1] + list(range(1000, 30001, 1000))
    for device in ("v100", "ascend910"):
        assert results["published"][device]["steps"] == expected_steps
    assert results["measured"]["n_rows"] >= 2
    assert results["measured"]["device"]


@pytest.mark.slow
def test_00_playground(out_dir: Path) -> None:
    results = run("00_playground.ipynb", out_dir)
    assert len(results["runs"]) >= 1
    run_metrics = results["runs"][-1]
    check_metrics(run_metrics, "playground run")
    assert run_metrics["recall@20"] > results["baselines"]["pop"]["recall@20"]
    assert len(run_metrics["losses"]) >= 1


@pytest.mark.slow
def test_06_from_the_seed_to_the_official(out_dir: Path) -> None:
    from gru4rec.config import Config
    from gru4rec.lessons.seed_to_official import STEPS

    results = run("06_from_the_seed_to_the_official.ipynb", out_dir)
    steps, k = results["steps"], results["k"]
    assert [s["step"] for s in steps] == [s.name for s in STEPS]
    keys = [(json.dumps(s["config"], sort_keys=True), s["tie_mode"]) for s in steps]
    assert len(set(keys)) == len(keys), "every step of the waterfall is a distinct (config, evaluation)"
    for before, after, step in zip(steps[:-1], steps[1:], STEPS[1:]):
        changed = {n for n in after["config"] if after["config"][n] != before["config"][n]}
        assert changed <= set(step.change) and (changed or after["tie_mode"] != before["tie_mode"]), step.name
    assert steps[0]["tie_mode"] == "seed" and all(s["tie_mode"] == "conservative" for s in steps[1:])
    assert steps[1]["trained"] is False, "the honest evaluation counts the seed's own model"
    # the seed's count is Recall@(K-1) with ties as hits: the honest count can gain only the rank-K predictions
    seed, honest = results["seed_count"], results["honest_count"]
    assert seed <= results["standard_recall_at_k"] + 1e-9 and honest <= results["standard_recall_at_k"] + 1e-9
    assert honest - seed <= results["standard_recall_at_k"] - results["standard_recall_at_k_minus_1"] + 1e-9
    official = Config.preset("official", n_epochs=results["n_epochs"]).to_dict()
    assert steps[-1]["config"] == official, "the last step is exactly the official preset (the kit's default)"
    faithful = Config.preset("official", n_epochs=results["n_epochs"], gru_variant="reset_before", weight_averaging=0.0)
    assert steps[-3]["config"] == faithful.to_dict(), "two steps before: the official parameter file as TF runs it"
    for s in steps:
        check_metrics({"recall@20": s[f"recall@{k}"], "mrr@20": s[f"mrr@{k}"]}, s["step"])
        assert s["epoch_seconds"] > 0
    assert steps[-3][f"recall@{k}"] > steps[1][f"recall@{k}"], "the official configuration beats the seed's"


@pytest.mark.slow
def test_07_losses_and_negative_sampling(out_dir: Path) -> None:
    from gru4rec.config import LOSSES

    name = "07_losses_and_negative_sampling.ipynb"
    results = run(name, out_dir)
    shrink = results["shrink_factor"]
    # averaged BPR loses its gradient as easy negatives are added; the softmax-weighted BPR-max keeps it
    assert shrink["bpr"] > 10 and shrink["top1"] > 5, shrink
    assert shrink["bpr-max"] < shrink["bpr"] / 5, shrink
    largest = [g for g in results["gradients"]
               if g["rank"] == results["gradient_rank"] and g["n_negatives"] == max(results["gradient_negatives"])]
    by_loss = {g["loss"]: g["gradient"] for g in largest}
    assert by_loss["bpr-max"] > 10 * by_loss["bpr"], by_loss
    bpr = sorted((g for g in results["gradients"] if g["loss"] == "bpr" and g["rank"] == results["gradient_rank"]),
                 key=lambda g: g["n_negatives"])
    assert all(a["gradient"] > b["gradient"] for a, b in zip(bpr[:-1], bpr[1:])), "BPR's gradient falls with more"
    sweeps = results["sweeps"]
    params = smoke_parameters(name)
    assert [r["run"] for r in sweeps["n_sample"]] == [f"n_sample={n}" for n in params["N_SAMPLES"]]
    assert [r["run"] for r in sweeps["loss"]] == list(LOSSES)
    assert len(sweeps["logq"]) == 2 and len(sweeps["sample_alpha"]) == len(params["SAMPLE_ALPHAS"])
    for group, rows in sweeps.items():
        for row in rows:
            check_metrics(row, f"{group}: {row['run']}")
            assert row["epoch_seconds"] > 0
    # the base (official) configuration is notebook 06's last run: reused when 06 ran into the same folder
    runs_06 = out_dir / "runs" / "06_from_the_seed_to_the_official" / "tiny"
    base = next(row for row in sweeps["n_sample"] if row["run"] == "n_sample=2048")
    if runs_06.is_dir():
        assert base["reused_from"] and Path(base["reused_from"]).parent == runs_06, base["reused_from"]
    assert all(row["reused_from"] is None for row in sweeps["loss"] if row["run"] != "cross-entropy")
    tune = results["tune"]
    assert tune["n_finished"] == params["TUNE_TRIALS"]
    assert tune["best_value"] == pytest.approx(max(tune["values"]))


@pytest.mark.slow
def test_08_evaluation_flaws(out_dir: Path) -> None:
    from gru4rec.baselines import BASELINES
    from gru4rec.lessons.evaluation_flaws import CORE_MODELS, OPTIONAL_MODELS

    name = "08_evaluation_flaws.ipynb"
    results = run(name, out_dir)
    k, honest = results["k"], results["honest"]
    assert set(CORE_MODELS) <= set(results["models"])
    assert results["skipped_models"] == [m for m in OPTIONAL_MODELS if m not in BASELINES]
    for model, metrics in honest.items():
        check_metrics(metrics, f"honest {model}")
    assert honest["gru4rec"][f"recall@{k}"] > honest["pop"][f"recall@{k}"]
    flaws = {record["flaw"]: record for record in results["flaws"]}
    assert len(flaws) == 7
    for record in results["flaws"]:
        assert [row["model"] for row in record["rows"]] == results["models"], record["flaw"]
        for row in record["rows"]:
            assert row[f"honest recall@{k}"] == pytest.approx(honest[row["model"]][f"recall@{k}"])
            check_metrics({"recall@20": row[f"flawed recall@{k}"], "mrr@20": row[f"flawed mrr@{k}"]}, record["flaw"])
        for key in ("recall", "mrr"):
            verdict = record[key]
            assert verdict["order_changes"] == bool(verdict["swapped"])
            if verdict["honest_order"] != verdict["flawed_order"]:  # only ties can reorder without a swap
                assert verdict["order_changes"] or verdict["tied"], record["flaw"]
    # a target ranked among a subset of the items can only rank higher: sampled numbers never fall below honest ones
    for sampling in ("uniform", "popularity"):
        for row in flaws[f"sampled metrics ({sampling}, N={results['sampled_n']})"]["rows"]:
            assert row[f"flawed recall@{k}"] >= row[f"honest recall@{k}"] - 1e-12, (sampling, row["model"])
            assert row[f"flawed mrr@{k}"] >= row[f"honest mrr@{k}"] - 1e-12, (sampling, row["model"])
    sweep = results["sampled_sweep"]
    expected_sizes = sorted(set(smoke_parameters(name)["SAMPLED_SWEEP"]) | {results["sampled_n"]})
    for model in results["models"]:
        for sampling in ("uniform", "popularity"):
            points = sorted((r["n_negatives"], r[f"recall@{k}"]) for r in sweep
                            if r["model"] == model and r["sampling"] == sampling)  # fmt: skip
            assert [n for n, _ in points] == expected_sizes
            recalls = [r for _, r in points]
            assert recalls == sorted(recalls, reverse=True), "more negatives can only lower a sampled recall"
    runs_06 = out_dir / "runs" / "06_from_the_seed_to_the_official" / "tiny"
    own = out_dir / "runs" / "08_evaluation_flaws" / "tiny" / "time_split" / "gru4rec"
    assert Path(results["gru4rec_run"]) == own or Path(results["gru4rec_run"]).parent == runs_06
    if runs_06.is_dir():  # notebook 06 ran before into the same folder: its official run is the time-split fit
        assert Path(results["gru4rec_run"]).parent == runs_06 and not own.exists()
    sizes = results["test_sizes"]
    assert 0 < sizes["long sessions dropped"] < sizes["time split"] and 0 < sizes["k-core"] < sizes["time split"]
    assert sizes["shuffled"] == sizes["time split"], "shuffling keeps every test event"


@pytest.mark.slow
def test_09_serving_live_sessions(out_dir: Path) -> None:
    name = "09_serving_live_sessions.ipynb"
    params = smoke_parameters(name)
    results = run(name, out_dir)
    k, clicks = results["k"], results["clicks"]
    assert results["served_equals_offline"] and all(row["equals_offline"] for row in clicks)
    assert [row["item"] for row in clicks] == results["session"][:-1]
    for row in clicks:
        assert row["rank_of_next"] is None or 1 <= row["rank_of_next"] <= k
    assert results["restart"] == {"get_status": 200, "last_click_status": 200, "continues": True}
    assert results["expired_status"] == 404
    latency = results["latency"]
    assert [row["prefix_length"] for row in latency] == list(range(1, params["MAX_PREFIX"] + 1))
    assert all(row["kept_ms"] > 0 and row["reread_ms"] > 0 for row in latency)
    # re-reading a prefix of MAX_PREFIX items runs MAX_PREFIX GRU steps; the kept state runs one
    assert latency[-1]["reread_ms"] > latency[-1]["kept_ms"]
    eviction, bound = results["eviction"], results["eviction_max_sessions"]
    assert all(len(row["live"]) <= bound for row in eviction) and eviction[-1]["evicted"] > 0
    assert [row["concurrency"] for row in results["load"]] == params["LOAD_CONCURRENCY"]
    for row in results["load"]:
        assert 0 < row["events"] <= params["LOAD_EVENTS"] and row["p99_ms"] >= row["p50_ms"] > 0
