"""Fault injection (issue 12): the run folder guards itself, resume checks what it resumes, file sets are written
whole, and every CLI error is one line. Each test names the item of the issue it covers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from gru4rec import rsc15
from gru4rec.cli import describe_error, main
from gru4rec.config import Config
from gru4rec.io import DataFormatError, read_clicks, read_sessions
from gru4rec.logs import read_log
from gru4rec.run_folder import RunFolder, RunFolderError, RunLock, jsonl_line
from gru4rec.runs import checkpoint_epochs, load_run
from gru4rec.session_data import SessionData
from gru4rec.train import TrainingError, check_training_data, train
from tests.test_rsc15 import HAND_CLICKS

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny"
TRAIN = str(TINY / "rsc15_train_full.txt")
TEST = str(TINY / "rsc15_test.txt")
SMALL = dict(n_sample=16, batch_size=16, layers=(10,), chunk_steps=32, log_every=20)


def _config(**kw) -> Config:
    return Config.preset("official", **{**SMALL, **kw})


@pytest.fixture(scope="module")
def data() -> SessionData:
    return SessionData.from_frame(read_sessions(TRAIN))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data) -> Path:
    """A 1-epoch run folder (copy it before breaking it)."""
    out = tmp_path_factory.mktemp("faults") / "run"
    train(_config(n_epochs=1), data, out, progress=False)
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(run, target)
    return target


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("gru4rec ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _weights(model) -> list:
    return [v.numpy() for v in model.variables]


# ------------------------------------------------------------------------------------------------ item 1
def test_seed_checks_everything_before_touching_the_run_and_sets_a_replaced_run_aside(tmp_path, capsys, monkeypatch):
    """Item 1: bad arguments leave the run whole; a replaced run is moved aside, files the kit did not write stay."""
    monkeypatch.chdir(tmp_path)
    seed = ["seed", f"--data_dir={TRAIN}", "--epoch=1", "--size=8", "--max_steps=30"]
    assert main(seed) == 0
    run = tmp_path / "runs" / "seed"  # the default --checkpoint_dir
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    capsys.readouterr()
    assert main(seed[:-1] + ["--max_steps=0"]) == 2
    assert "--max_steps" in _one_line_error(capsys)
    assert main(seed + ["--batch_size=100000"]) == 2
    assert "batch_size 100000" in _one_line_error(capsys)
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    # --checkpoint_dir . in a folder with a run and the user's own files
    (run / "notes.txt").write_text("mine")
    monkeypatch.chdir(run)
    assert main(seed + ["--checkpoint_dir=."]) == 0
    assert (run / "notes.txt").read_text() == "mine"
    replaced = list(run.glob("replaced-*"))
    assert len(replaced) == 1 and checkpoint_epochs(replaced[0]) == [1]
    assert load_run(replaced[0]).epoch == 1 and load_run(run).epoch == 1
    assert "moved the previous run" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ item 2
def test_a_locked_run_folder_refuses_a_second_writer_and_a_stale_lock_is_taken_over(tmp_path, data):
    """Item 2: an exclusive lock for every writer; a lock left by a dead process does not block."""
    run = tmp_path / "run"
    with RunFolder(run).locked():
        with pytest.raises(RunFolderError, match=r"in use by process \d+"):
            train(_config(n_epochs=1), data, run, progress=False, max_steps=5)
        with pytest.raises(RunFolderError, match="in use"):
            RunLock(run).acquire()
    assert not run.exists()  # made for the lock, left empty: removed again
    run.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / ".lock").write_text(f"{dead.pid} {os.uname().nodename}\n")
    result = train(_config(n_epochs=1), data, run, progress=False, max_steps=5)
    assert result.steps == 5 and not (run / ".lock").exists()


def test_an_export_into_a_locked_run_folder_is_refused(trained, capsys):
    """Item 2: export into a run folder is a writer too."""
    with RunFolder(trained).locked():
        assert main(["export", "--model", str(trained), "--out", str(trained / "saved_model")]) == 2
        assert "in use by process" in _one_line_error(capsys)
    assert not (trained / "saved_model").exists()


@pytest.mark.slow
def test_a_second_process_training_into_a_folder_in_use_is_refused(tmp_path):
    """Item 2: a `gru4rec train` into an --out that another process holds exits 2, writing nothing."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "gru4rec", "train", "--train", TRAIN, "--out", str(run), "--n_epochs", "1",
           "--n_sample", "16", "--batch_size", "16", "--layers", "10", "--no-progress"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "TF_CPP_MIN_LOG_LEVEL": "2"}
    holder = RunLock(run.parent / "run")
    run.mkdir()
    holder.acquire()  # stands for the first run, still training
    try:
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    finally:
        holder.release()
    assert second.returncode == 2, second.stderr
    assert "in use by process" in second.stderr and "Traceback" not in second.stderr
    assert not (run / "train.jsonl").exists()


# ------------------------------------------------------------------------------------------------ items 3 and 5
@pytest.mark.parametrize("state_file", ["missing", "garbled"])
def test_resume_finds_the_checkpoints_from_the_files(tmp_path, data, trained, state_file, capsys):
    """Item 3: without a readable checkpoints/checkpoint, --resume still continues from the last epoch-N."""
    run = _copy(trained, tmp_path)
    state = run / "checkpoints" / "checkpoint"
    if state_file == "missing":
        state.unlink()
    else:
        state.write_text("model_checkpoint_path: {{{ garbage\n")
    first_log = read_log(run / "train.log")
    result = train(_config(n_epochs=2), data, run, resume=True, progress=False)
    assert result.epochs_done == 2 and checkpoint_epochs(run) == [1, 2]
    assert "epoch-1" in capsys.readouterr().err
    log = read_log(run / "train.log")
    assert log["epoch"].tolist()[: len(first_log)] == first_log["epoch"].tolist() and log["epoch"].max() == 1


@pytest.mark.slow
def test_resume_after_a_kill_logs_every_step_once(tmp_path, data):
    """Item 5: the steps logged after the last checkpoint (a kill before the next) are cut, not logged twice."""
    full = train(_config(n_epochs=2), data, tmp_path / "full", progress=False)
    run = tmp_path / "killed"
    train(_config(n_epochs=2), data, run, progress=False)
    for path in (run / "checkpoints").glob("epoch-2.*"):  # the kill came before epoch 2's checkpoint
        path.unlink()
    (run / "checkpoints" / "checkpoint").write_text(
        'model_checkpoint_path: "epoch-1"\nall_model_checkpoint_paths: "epoch-1"\n'
    )
    with open(run / "train.jsonl", "a") as handle:
        handle.write('{"kind": "log", "step": 99')  # and in the middle of a line
    resumed = train(_config(n_epochs=2), data, run, resume=True, progress=False)
    for wa, wb in zip(_weights(full.model), _weights(resumed.model)):
        np.testing.assert_array_equal(wa, wb)
    log, full_log = read_log(run / "train.log"), read_log(tmp_path / "full" / "train.log")
    assert log["step"].tolist() == full_log["step"].tolist()
    records = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["kind"] == "log"]
    assert steps == sorted(set(steps)) and [r["epochs_done"] for r in records if r["kind"] == "epoch"] == [1, 2]
    from tensorflow.core.util import event_pb2

    seen = []
    for path in (run / "tensorboard").glob("events.out.tfevents.*"):
        for raw in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(raw.numpy())
            seen += [(value.tag, event.step) for value in event.summary.value]
    assert len(seen) == len(set(seen)) and ("loss/running_mean", int(log["step"].iloc[-1])) in seen


# ------------------------------------------------------------------------------------------------ item 4
def test_resume_on_other_training_data_is_refused(tmp_path, data, trained):
    """Item 4: config.json holds the data's fingerprint; a resume on other ids or other events names the
    difference."""
    run = _copy(trained, tmp_path)
    frame = read_sessions(TRAIN)
    ids = np.unique(frame["ItemId"])
    permuted = frame.assign(ItemId=frame["ItemId"].map(dict(zip(ids, np.random.default_rng(0).permutation(ids)))))
    with pytest.raises(RunFolderError, match="other training data.*differ"):
        train(_config(n_epochs=2), SessionData.from_frame(permuted), run, resume=True, progress=False)
    fewer = frame[frame["SessionId"] != frame["SessionId"].iloc[0]]
    with pytest.raises(RunFolderError, match="number of events"):
        train(_config(n_epochs=2), SessionData.from_frame(fewer), run, resume=True, progress=False)
    meta = json.loads((run / "config.json").read_text())
    assert meta["data"]["n_events"] == data.n_events and len(meta["data"]["item_ids_sha256"]) == 64
    assert train(_config(n_epochs=2), data, run, resume=True, progress=False).epochs_done == 2


# ------------------------------------------------------------------------------------------------ item 6
def test_an_interrupted_prepare_never_leaves_a_mixed_set(tmp_path, monkeypatch):
    """Item 6: the set appears whole or is marked incomplete (no stats file); leftovers are cleaned up."""
    clicks = tmp_path / "c.dat"
    clicks.write_text(HAND_CLICKS)
    out = tmp_path / "out"
    rsc15.prepare(clicks, out)
    old = {name: (out / name).read_bytes() for name in (*rsc15.FILES.values(), rsc15.STATS_FILE)}
    # a new click log, so that the new set differs from the old one
    shifted = read_clicks(clicks).assign(ItemId=lambda f: f["ItemId"] + 1000)
    from gru4rec.io import write_clicks

    write_clicks(shifted, clicks)
    real_replace, calls = os.replace, []

    def killed_at_the_second_file(src, dst):
        if os.path.dirname(os.path.abspath(dst)) == str(out) and not os.path.basename(dst).startswith("."):
            calls.append(dst)
            if len(calls) == 2:
                raise KeyboardInterrupt("killed")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_at_the_second_file)
    with pytest.raises(KeyboardInterrupt):
        rsc15.prepare(clicks, out)
    monkeypatch.setattr(os, "replace", real_replace)
    mixed = [name for name in rsc15.FILES.values() if (out / name).read_bytes() != old[name]]
    assert mixed, "the injected kill came too late"
    assert not (out / rsc15.STATS_FILE).exists() and not rsc15.is_complete(out)
    (out / ".prepare-leftover").mkdir()
    (out / ".rsc15_test.txt.abc.tmp").write_text("half")
    rsc15.prepare(clicks, out)
    assert rsc15.is_complete(out) and sorted(p.name for p in out.iterdir()) == sorted(old)


# ------------------------------------------------------------------------------------------------ item 7
def test_an_interrupted_preset_is_made_again(tmp_path, monkeypatch):
    """Item 7: a preset is complete only when its marker (written last) says so."""
    from gru4rec import datasets

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt("killed before the ceiling")

    monkeypatch.setattr(rsc15, "update_stats", interrupted)
    with pytest.raises(KeyboardInterrupt):
        datasets.ensure_preset("tiny", data_dir=tmp_path, seed=7, progress=None)
    monkeypatch.undo()
    files = datasets.ensure_preset("tiny", data_dir=tmp_path, seed=7, progress=None)
    assert 0 < files.ceiling()["recall@20"] <= 1 and files.marker_path.exists()


# ------------------------------------------------------------------------------------------------ item 8
def test_integer_hyperparameters_are_exact_and_in_range(tmp_path, capsys):
    """Item 8: integers are parsed as integers; values that do not fit int64 are a clear error, before any write."""
    assert Config.from_dict({"seed": "12345678901234567"}).seed == 12345678901234567
    assert Config.from_dict({"decay_steps": "1e4"}).decay_steps == 10_000
    with pytest.raises(ValueError, match=r"seed: invalid value 9223372036854775808; allowed: an integer in"):
        Config.from_dict({"seed": str(2**63)})
    out = tmp_path / "run"
    assert main(["train", "--train", TRAIN, "--out", str(out), "--seed", str(2**63)]) == 2
    assert "seed" in _one_line_error(capsys) and not out.exists()
    assert main(["recommend", "--model", str(tmp_path), "--items", f"1,{2**63}"]) == 2
    assert "--items" in _one_line_error(capsys)


# ------------------------------------------------------------------------------------------------ item 9
def test_export_k_is_checked_and_nothing_reports_nan(tmp_path, trained, capsys):
    """Item 9: export -k like recommend; 0 predictions is an error; train.jsonl is strict JSON."""
    for k in ("0", "-5"):
        assert main(["export", "--model", str(trained), "--out", str(tmp_path / "sm"), "-k", k]) == 2
        assert "-k: must be an integer >= 1" in _one_line_error(capsys)
    assert not (tmp_path / "sm").exists()
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("SessionId\tItemId\tTime\n1\t-7\t1.0\n1\t-8\t2.0\n")
    assert main(["evaluate", "--model", str(trained), "--test", str(unknown)]) == 2
    assert "no test event could be scored" in _one_line_error(capsys)
    with pytest.warns(RuntimeWarning, match="non-finite loss"):
        line = jsonl_line({"kind": "log", "step": 3, "loss": float("nan"), "lr": 0.1})
    assert json.loads(line) == {"kind": "log", "step": 3, "loss": None, "lr": 0.1} and "NaN" not in line


# ------------------------------------------------------------------------------------------------ item 10
def test_a_bptt_window_longer_than_an_epoch_is_refused(data, tmp_path):
    """Item 10: no silent minutes of graph building for a window that never completes."""
    with pytest.raises(ValueError, match=r"bptt_steps 100000 is longer than an epoch \(\d+ mini-batch steps"):
        check_training_data(data, _config(bptt_steps=100_000))
    with pytest.raises(ValueError, match="bptt_steps"):
        train(_config(bptt_steps=100_000), data, tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()
    check_training_data(data, _config(bptt_steps=5))


# ------------------------------------------------------------------------------------------------ item 12
def test_run_folder_faults_are_one_line_errors(tmp_path, trained, capsys):
    """Item 12: corrupt checkpoints, a config.json that is not an object, shapes that do not fit, a bad
    items.tsv, --out that is a file, --json into a folder or a missing folder, --train given a folder."""
    evaluate = ["evaluate", "--test", TEST]
    cases = []
    run = _copy(trained, tmp_path / "a")
    data_file = next((run / "checkpoints").glob("epoch-1.data-*"))
    data_file.write_bytes(data_file.read_bytes()[:100])
    cases.append((evaluate + ["--model", str(run)], 2, "checkpoint cannot be restored"))
    run = _copy(trained, tmp_path / "b")
    (run / "config.json").write_text("[1, 2]\n")
    cases.append((evaluate + ["--model", str(run)], 2, "config.json: expected a JSON object"))
    run = _copy(trained, tmp_path / "c")
    meta = json.loads((run / "config.json").read_text())
    meta["config"]["layers"] = [30]
    (run / "config.json").write_text(json.dumps(meta))
    cases.append((evaluate + ["--model", str(run)], 2, "does not fit"))
    run = _copy(trained, tmp_path / "d")
    (run / "items.tsv").write_text("ItemId\n5\n5\n")
    cases.append((evaluate + ["--model", str(run)], 2, "items.tsv:3: ItemId 5 appears again"))
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases.append((["train", "--train", TRAIN, "--out", str(a_file)], 2, "is a file, expected a run folder"))
    cases.append((evaluate + ["--model", str(trained), "--json", str(tmp_path)], 2, "is a folder"))
    cases.append((evaluate + ["--model", str(trained), "--json", str(tmp_path / "no" / "m.json")], 2,
                  "does not exist"))  # fmt: skip
    cases.append((["train", "--train", str(tmp_path), "--out", str(tmp_path / "x")], 2, "is a folder"))
    cases.append((["synth", "--seed", "-1", "--out", str(tmp_path / "s")], 2, "--seed"))
    for argv, code, text in cases:
        assert main(argv) == code, argv
        line = _one_line_error(capsys)
        assert text in line and ".tmp" not in line, (argv, line)


def test_errors_of_every_kind_are_one_line_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    """Item 12: permission errors, the NaN stop, TensorFlow and memory errors: one line, exit 1 or 2."""
    assert describe_error(PermissionError(13, "Permission denied", "/x/in.txt")) == (2, "/x/in.txt: permission denied")
    assert describe_error(TrainingError("loss is NaN at step 5 (epoch 0)")) == (1, "loss is NaN at step 5 (epoch 0)")

    def no_memory(*args, **kwargs):  # what --layers 100000 does (numpy cannot allocate the GRU weights)
        raise MemoryError("Unable to allocate 224. GiB for an array with shape (100000, 300000)")

    with monkeypatch.context() as patch:
        patch.setattr("gru4rec.train.GRU4RecModel", no_memory)
        assert main(["train", "--train", TRAIN, "--out", str(tmp_path / "oom"), "--layers", "100000"]) == 1
    assert "out of memory" in _one_line_error(capsys) and not (tmp_path / "oom").exists()
    code, line = describe_error(MemoryError())
    assert code == 1 and "out of memory" in line and "--layers" in line
    code, line = describe_error(tf.errors.DataLossError(None, None, "truncated record\nmore"))
    assert code == 1 and line == "TensorFlow DataLossError: truncated record"
    code, line = describe_error(IndexError("Read less bytes than requested"))
    assert code == 1 and "IndexError" in line and "--debug" in line

    def denied(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr("gru4rec.io.read_sessions", denied)
    argv = ["train", "--train", TRAIN, "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert _one_line_error(capsys) == f"gru4rec train: error: {TRAIN}: permission denied"
    # --debug shows the traceback and keeps the exit code (bad input: 2, not the 1 of an uncaught exception)
    assert main(argv + ["--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "PermissionError" in err
    assert err.strip().splitlines()[-1] == f"gru4rec train: error: {TRAIN}: permission denied"
    monkeypatch.setenv("GRU4REC_DEBUG", "1")
    assert main(argv) == 2 and "Traceback" in capsys.readouterr().err


def test_reader_messages_name_the_line_and_column(tmp_path):
    """Item 12: over-long fields, leap seconds, gzip files and pyarrow's columns."""
    big = tmp_path / "big.txt"
    big.write_text("SessionId\tItemId\tTime\n1\t" + "9" * 5000 + "\t1.0\n1\t2\t2.0\n")
    with pytest.raises(DataFormatError, match=r"big.txt:2: column 2 \(ItemId\): expected an integer ItemId that fits"):
        read_sessions(big)
    leap = tmp_path / "leap.dat"
    leap.write_text("1,2014-04-07T10:51:09.277Z,214536502,0\n1,2014-06-30T23:59:60.000Z,214536503,0\n")
    with pytest.raises(DataFormatError, match=r"leap.dat:2: column 2 \(Timestamp\): .*leap second"):
        read_clicks(leap)
    import gzip

    packed = tmp_path / "s.txt.gz"
    with gzip.open(packed, "wt") as handle:
        handle.write("SessionId\tItemId\tTime\n1\t2\t1.0\n1\t3\t2.0\n1\tx\t3.0\n")
    with pytest.raises(DataFormatError, match=r"s.txt.gz:4: column 2 \(ItemId\)"):
        read_sessions(packed)
    good = tmp_path / "ok.txt.gz"
    with gzip.open(good, "wt") as handle:
        handle.write("SessionId\tItemId\tTime\n1\t2\t1.0\n1\t3\t2.0\n")
    assert read_sessions(good)["ItemId"].tolist() == [2, 3]

