"""benchmarks/official_runs.py: the official codes' command line and the parsing of what their run.py prints
(on output captured from the official PyTorch code; the official codes themselves are not run by the tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import official_runs  # noqa: E402

from gru4rec.config import Config  # noqa: E402
from gru4rec.run_folder import RunFolderError  # noqa: E402

# Captured from `run.py data/tiny/rsc15_train_full.txt -ps "loss=cross-entropy,...,n_epochs=2" -t ... -m 5 20
# -e conservative -d cpu` of hidasib/GRU4Rec_PyTorch_Official (a few SET lines left out).
CAPTURED = """\
Creating GRU4Rec model on device "cpu"
SET   loss                    TO   cross-entropy   (type: <class 'str'>)
SET   layers                  TO   [16]            (type: <class 'list'>)
SET   n_epochs                TO   2               (type: <class 'int'>)
Loading training data...
Loading data from TAB separated file: /work/wt/i11/data/tiny/rsc15_train_full.txt
Started training
The dataframe is already sorted by SessionId, Time
Created sample store with 156250 batches of samples (type=GPU)
Epoch1 --> loss: 5.510113 \t(16.59s) \t[13.02 mb/s | 417 e/s]
Epoch2 --> loss: 4.940134 \t(10.80s) \t[20.00 mb/s | 640 e/s]
Total training time: 193.28s
Loading test data...
Loading data from TAB separated file: /work/wt/i11/data/tiny/rsc15_train_full.txt
Starting evaluation (cut-off=[5, 20], using conservative mode for tiebreaking)
Using existing item ID map
The dataframe is already sorted by SessionId, Time
Evaluation took 2.97s
Recall@5: 0.394323 MRR@5: 0.267486
Recall@20: 0.595452 MRR@20: 0.287724
"""


def test_parse_a_captured_official_run():
    result = official_runs.parse_output(CAPTURED)
    assert result.epoch_losses == (5.510113, 4.940134) and result.n_epochs == 2
    assert result.epoch_seconds == (16.59, 10.80) and result.mean_epoch_seconds == pytest.approx(13.695)
    assert result.recall == {5: 0.394323, 20: 0.595452} and result.mrr == {5: 0.267486, 20: 0.287724}
    assert result.train_seconds == 193.28


def test_incomplete_output_names_what_is_missing():
    training_only = CAPTURED.split("Loading test data")[0]
    with pytest.raises(ValueError, match="run X: no 'Recall@K.*evaluation did not run"):
        official_runs.parse_output(training_only, source="run X")
    with pytest.raises(ValueError, match="no 'EpochN --> loss"):
        official_runs.parse_output("Traceback (most recent call last):\n", source="run Y")
    shuffled = CAPTURED.replace("Epoch1 -->", "Epoch3 -->")
    with pytest.raises(ValueError, match="out of order"):
        official_runs.parse_output(shuffled)


def test_parameter_string_in_the_official_form():
    params = official_runs.params_from_config(Config.preset("official"), n_epochs=3)
    text = official_runs.parameter_string(params)
    assert text.startswith("loss=cross-entropy,constrained_embedding=True,embedding=0,elu_param=0.5,layers=100,")
    assert "n_epochs=3,batch_size=32,dropout_p_embed=0.0,dropout_p_hidden=0.4,learning_rate=0.2" in text
    assert text.endswith("momentum=0.2,n_sample=2048,sample_alpha=0.5,bpreg=0.0,logq=1.0")
    assert official_runs.parameter_string({"layers": [100, 50]}) == "layers=100/50"
    with pytest.raises(ValueError, match="gru_variant"):
        official_runs.parameter_string({"gru_variant": "reset_after"})


def test_command_for_each_code(tmp_path):
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "run.py").write_text("")
    params = {"loss": "cross-entropy", "layers": [8], "n_epochs": 1}
    argv, env = official_runs.command("tf", clone, "/py", "train.tsv", "test.tsv", params, threads=1)
    assert argv[0] == "/py" and argv[1] == str((clone / "run.py").resolve())
    assert argv[argv.index("-ps") + 1] == "loss=cross-entropy,layers=8,n_epochs=1"
    assert argv[argv.index("-e") + 1] == "conservative" and argv[argv.index("-d") + 1] == "CPU"
    assert env["TF_USE_LEGACY_KERAS"] == "1" and env["OMP_NUM_THREADS"] == "1" and "PYTHONPATH" not in env
    argv, env = official_runs.command("pytorch", clone, "/py", "train.tsv", "test.tsv", params)
    assert argv[argv.index("-d") + 1] == "cpu" and "TF_USE_LEGACY_KERAS" not in env
    with pytest.raises(ValueError, match="has no run.py"):
        official_runs.command("tf", tmp_path, "/py", "a", "b", params)
    with pytest.raises(ValueError, match="allowed: tf, pytorch"):
        official_runs.command("theano", clone, "/py", "a", "b", params)


def _fake_clone(tmp_path, output: str):
    """A folder with a ``run.py`` that prints ``output`` (stands in for an official clone)."""
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "run.py").write_text(f"print({output!r}, end='')\n")
    return clone


def test_a_started_run_writes_its_record_and_only_a_matching_log_is_vouched_for(tmp_path):
    clone = _fake_clone(tmp_path, CAPTURED)
    train, test = tmp_path / "train.tsv", tmp_path / "test.tsv"
    train.write_text("SessionId\tItemId\tTime\n1\t1\t0\n")
    test.write_text("SessionId\tItemId\tTime\n2\t1\t0\n")
    params = {"loss": "cross-entropy", "layers": [8], "n_epochs": 2}
    log = tmp_path / "runs" / "official_tf_2ep.log"
    proc = official_runs.start("tf", clone, sys.executable, train, test, params, log)
    assert official_runs.finish(proc, log, "fake").recall[20] == 0.595452
    assert official_runs.record_path(log).name == "official_tf_2ep.params.json"
    expected = official_runs.run_record("tf", clone, train, test, params)
    official_runs.vouch(log, expected)  # the same run: no error

    other = official_runs.run_record("tf", clone, train, test, {**params, "n_epochs": 3})
    with pytest.raises(official_runs.StaleLogError, match="parameters: 'loss=cross-entropy,layers=8,n_epochs=2'"):
        official_runs.vouch(log, other)
    with pytest.raises(official_runs.StaleLogError, match="code: 'tf' \\(log\\) != 'pytorch'"):
        official_runs.vouch(log, official_runs.run_record("pytorch", clone, train, test, params))
    test.write_text("SessionId\tItemId\tTime\n2\t1\t0\n2\t1\t5\n")
    with pytest.raises(official_runs.StaleLogError, match="test file's contents differ"):
        official_runs.vouch(log, official_runs.run_record("tf", clone, train, test, params))
    (clone / "run.py").write_text("print('changed')\n")
    with pytest.raises(official_runs.StaleLogError, match="official code's files differ"):
        official_runs.vouch(log, expected | {"code_sha256": official_runs.code_sha256(clone)})
    official_runs.record_path(log).unlink()
    with pytest.raises(official_runs.StaleLogError, match="official_tf_2ep.params.json .* is missing"):
        official_runs.vouch(log, expected)
    official_runs.record_path(log).write_text("[1]")
    with pytest.raises(official_runs.StaleLogError, match="expected a JSON object"):
        official_runs.vouch(log, expected)


def test_a_restarted_run_removes_the_old_record_first(tmp_path):
    clone = _fake_clone(tmp_path, "Traceback: failed\n")
    data = tmp_path / "data.tsv"
    data.write_text("x")
    log = tmp_path / "official_tf_1ep.log"
    official_runs.record_path(log).write_text('{"params": "old"}')
    proc = official_runs.start("tf", clone, sys.executable, data, data, {"n_epochs": 1}, log)
    proc.wait()
    record = official_runs.record_path(log).read_text()
    assert '"params": "n_epochs=1"' in record and "old" not in record


def test_a_run_refuses_a_log_that_is_a_symbolic_link_and_leaves_its_target_alone(tmp_path):
    clone = _fake_clone(tmp_path, CAPTURED)
    data = tmp_path / "data.tsv"
    data.write_text("x")
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    log = tmp_path / "official_tf_1ep.log"
    log.symlink_to(target)
    with pytest.raises(RunFolderError, match="official_tf_1ep.log"):
        official_runs.start("tf", clone, sys.executable, data, data, {"n_epochs": 1}, log)
    assert target.read_text() == "keep me"
