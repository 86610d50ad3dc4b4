"""Runs nobody can lose: no write through a link, no output over a run's own files, every file of a run checked
against config.json, epoch records before the checkpoint, nothing moved before everything is checked, a re-export
swapped in whole, and no stale prepared set behind new clicks. Each test names the item of the issue it covers."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from gru4rec.cli import main
from gru4rec.run_folder import RunFolder, RunFolderError
from gru4rec.runs import checkpoint_epochs, load_run

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "data" / "tiny"
TR, VALID = str(TINY / "rsc15_train_tr.txt"), str(TINY / "rsc15_train_valid.txt")
FULL, TEST = str(TINY / "rsc15_train_full.txt"), str(TINY / "rsc15_test.txt")
FLAGS = ["--layers", "12", "--n_sample", "16", "--batch_size", "16", "--no-progress"]


def _train(out: Path, *extra: str, epochs: int = 1, data: str = TR) -> int:
    return main(["train", "--train", data, "--out", str(out), "--n_epochs", str(epochs), *FLAGS, *extra])


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A 1-epoch run folder made by `gru4rec train` (copy it before changing it)."""
    out = tmp_path_factory.mktemp("safety") / "run"
    assert _train(out) == 0
    return out


@pytest.fixture()
def run(made, tmp_path) -> Path:
    target = tmp_path / "r"
    shutil.copytree(made, target)
    return target


def _error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("gru4rec ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _snapshot(folder: Path) -> dict:
    """Every file under ``folder`` (relative path -> bytes), links as their target."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_file():
            out[rel] = path.read_bytes()
    return out


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    return victim


# ------------------------------------------------------------------------------------------------ item 1
@pytest.mark.parametrize("command", ["export", "evaluate --json", "train --resume", "seed"])
def test_no_writer_follows_a_symlinked_lock(run, tmp_path, capsys, command):
    """Item 1: every command that takes the lock refuses a .lock that is a link, and its target is untouched."""
    victim = _victim(tmp_path)
    (run / ".lock").symlink_to(victim)
    before = _snapshot(run)
    argv = {
        "export": ["export", "--model", str(run), "--out", str(run / "saved")],
        "evaluate --json": ["evaluate", "--model", str(run), "--test", TEST, "--json", str(run / "eval.json")],
        "train --resume": ["train", "--train", TR, "--out", str(run), "--resume", "--n_epochs", "2", *FLAGS],
        "seed": ["seed", f"--data_dir={TR}", "--epoch=1", "--size=8", "--max_steps=5", f"--checkpoint_dir={run}"],
    }[command]
    assert main(argv) == 2
    line = _error(capsys)
    assert ".lock: is a symbolic link" in line, line
    assert victim.read_text() == "precious\n" and _snapshot(run) == before


def test_a_hard_linked_lock_is_refused(run, tmp_path, capsys):
    """Item 1: the lock file is a regular file of one name (a hard link would let the pid overwrite another file)."""
    victim = _victim(tmp_path)
    os.link(victim, run / ".lock")
    assert main(["export", "--model", str(run), "--out", str(run / "saved")]) == 2
    assert "hard link" in _error(capsys) and victim.read_text() == "precious\n"


@pytest.mark.parametrize("name", ["train.log", "train.jsonl"])
def test_symlinked_logs_are_refused_in_a_new_folder_and_on_resume(run, tmp_path, capsys, name):
    """Item 1: a symlinked train.log / train.jsonl never receives the logs (new --out or --resume)."""
    victim = _victim(tmp_path)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / name).symlink_to(victim)
    assert _train(fresh) == 2
    assert f"{name}: is a symbolic link" in _error(capsys)
    (run / name).unlink()
    (run / name).symlink_to(victim)
    before = _snapshot(run)
    assert _train(run, "--resume", epochs=2) == 2
    assert f"{name}: is a symbolic link" in _error(capsys)
    assert victim.read_text() == "precious\n" and _snapshot(run) == before and not list(fresh.glob("config.json"))


def test_a_symlinked_tensorboard_folder_or_checkpoint_is_refused(run, tmp_path, capsys):
    """Item 1: the folders the kit writes into (tensorboard/, checkpoints/) and their entries are no links; a log
    that is not a regular file is refused too."""
    elsewhere = tmp_path / "elsewhere"
    shutil.move(run / "tensorboard", elsewhere)
    (run / "tensorboard").symlink_to(elsewhere)
    assert _train(run, "--resume", epochs=2) == 2
    assert "tensorboard: is a symbolic link" in _error(capsys)
    (run / "tensorboard").unlink()
    shutil.move(elsewhere, run / "tensorboard")
    victim = _victim(tmp_path)
    (run / "checkpoints" / "epoch-2.index").symlink_to(victim)
    assert _train(run, "--resume", epochs=2) == 2
    assert "epoch-2.index: is a symbolic link" in _error(capsys) and victim.read_text() == "precious\n"
    (run / "checkpoints" / "epoch-2.index").unlink()
    (run / "train.jsonl").unlink()
    os.mkfifo(run / "train.jsonl")  # reading it back to cut the logs would wait forever
    assert _train(run, "--resume", epochs=2) == 2
    assert "train.jsonl: expected a regular file" in _error(capsys)


# ------------------------------------------------------------------------------------------------ item 2
def test_outputs_never_land_on_a_runs_own_files(run, tmp_path, capsys):
    """Item 2: --json (evaluate, baseline, recommend) and export --out may not overwrite the run's files, also not
    through a link; a new file inside the run folder is fine."""
    from gru4rec.session_data import ItemMap

    before = _snapshot(run)
    items = ",".join(str(i) for i in ItemMap.load(run / "items.tsv").ids[:3])
    link = tmp_path / "innocent.json"
    link.symlink_to(run / "config.json")
    cases = [
        (["evaluate", "--model", str(run), "--test", TEST, "--json", str(run / "config.json")], "own config.json"),
        (["evaluate", "--model", str(run), "--test", TEST, "--json", str(link)], "own config.json"),
        (["evaluate", "--model", str(run), "--test", TEST, "--json", str(run / "metrics.json")], "own metrics.json"),
        (["baseline", "--method", "pop", "--train", TR, "--test", TEST, "--json", str(run / "config.json")],
         "own config.json"),
        (["recommend", "--model", str(run), "--items", items, "--json", str(run / "items.tsv")], "own items.tsv"),
        (["recommend", "--model", str(run), "--items", items, "--json", str(run / ".lock")], "own .lock"),
        (["export", "--model", str(run), "--out", str(run)], "is the run folder"),
        (["export", "--model", str(run), "--out", str(run / "checkpoints")], "own checkpoints"),
        (["export", "--model", str(run), "--out", str(run / "tensorboard" / "sm")], "lies in the run"),
    ]  # fmt: skip
    for argv, text in cases:
        assert main(argv) == 2, argv
        line = _error(capsys)
        assert text in line, (argv, line)
        assert _snapshot(run) == before, argv
    assert load_run(run).epoch == 1
    assert main(["evaluate", "--model", str(run), "--test", TEST, "--json", str(run / "evaluation.json")]) == 0
    assert json.loads((run / "evaluation.json").read_text())["n_events"] > 0


# ------------------------------------------------------------------------------------------------ item 3
KILL_SCRIPT = """
import os, sys
import tensorflow as tf
from gru4rec.cli import main

real, when = tf.train.CheckpointManager.save, sys.argv[1]

def save(self, checkpoint_number=None, **kwargs):
    if checkpoint_number == 2 and when == "before":
        os._exit(9)  # kill -9 just before epoch 2's checkpoint
    path = real(self, checkpoint_number=checkpoint_number, **kwargs)
    if checkpoint_number == 2 and when == "after":
        os._exit(9)  # kill -9 as soon as epoch 2's checkpoint is on disk
    return path

tf.train.CheckpointManager.save = save
sys.exit(main(sys.argv[2:]))
"""


def _epoch_scalars(folder: Path) -> list:
    from tensorflow.core.util import event_pb2

    seen = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for raw in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(raw.numpy())
            seen += [(value.tag, event.step) for value in event.summary.value if value.tag.startswith("epoch/")]
    return seen


@pytest.mark.slow  # trains three epochs in a child process, twice
@pytest.mark.parametrize("when", ["after", "before"])
def test_a_kill_around_the_checkpoint_loses_no_epoch_record(tmp_path, when):
    """Item 3: epoch 2's record (train.jsonl, TensorBoard) is written before its checkpoint: a kill -9 right after
    the checkpoint keeps it; a kill right before has it cut and written again by the resume; each epoch once."""
    out = tmp_path / "run"
    argv = ["train", "--train", TR, "--valid", VALID, "--out", str(out), "--n_epochs", "3", *FLAGS]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    killed = subprocess.run([sys.executable, "-c", KILL_SCRIPT, when, *argv], env=env, capture_output=True,
                            text=True, timeout=600)  # fmt: skip
    assert killed.returncode == 9, killed.stderr
    assert checkpoint_epochs(out) == ([1, 2] if when == "after" else [1])
    assert main([*argv, "--resume"]) == 0
    records = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epochs_done"] for r in epochs] == [1, 2, 3]
    assert all(0 <= r["valid_recall@20"] <= 1 for r in epochs)
    assert [r["checkpoint"] for r in epochs] == [RunFolder(out).checkpoint_prefix(n) for n in (1, 2, 3)]
    steps = [r["step"] for r in records if r["kind"] == "log"]
    assert steps == sorted(set(steps))
    scalars = _epoch_scalars(out / "tensorboard")
    assert sorted(step for tag, step in scalars if tag == "epoch/loss") == [1, 2, 3]
    assert sorted(step for tag, step in scalars if tag == "epoch/valid_recall@20") == [1, 2, 3]


# ------------------------------------------------------------------------------------------------ item 4
@pytest.mark.parametrize("flag", ["--device=npu", "--distribute=multiworker", "--distribute=mirrored"])
def test_seed_checks_the_device_before_moving_the_run_aside(tmp_path, capsys, monkeypatch, flag):
    """Item 4: an absent device or distribution fails before the previous run is touched."""
    monkeypatch.delenv("TF_CONFIG", raising=False)
    out = tmp_path / "seed"
    seed = ["seed", f"--data_dir={TR}", "--epoch=1", "--size=8", "--max_steps=5", f"--checkpoint_dir={out}"]
    assert main(seed) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert main([*seed, flag]) == 2
    err = capsys.readouterr().err
    assert "moved the previous run" not in err and "Traceback" not in err, err
    assert not list(out.glob("replaced-*")) and _snapshot(out) == before
    assert load_run(out).epoch == 1


# ------------------------------------------------------------------------------------------------ item 5
def test_train_refuses_a_folder_with_logs_but_no_config_and_seed_sets_them_aside(tmp_path, capsys):
    """Item 5: the user's train.log / train.jsonl are neither truncated by train nor removed by seed."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "train.log").write_text("my notes\n")
    (out / "train.jsonl").write_text('{"mine": true}\n')
    before = _snapshot(out)
    assert _train(out) == 2
    line = _error(capsys)
    assert "train.log, train.jsonl but no config.json" in line, line
    assert _snapshot(out) == before
    seed = ["seed", f"--data_dir={TR}", "--epoch=1", "--size=8", "--max_steps=5", f"--checkpoint_dir={out}"]
    assert main(seed) == 0
    (aside,) = out.glob("replaced-*")
    assert _snapshot(aside) == before
    assert "moved the previous run" in capsys.readouterr().err and load_run(out).epoch == 1


def test_a_resume_with_nothing_to_train_leaves_config_json_as_it_was(tmp_path):
    """Item 5: a no-op resume keeps device.ran_on and n_epochs; a resume that trains records its n_epochs."""
    out = tmp_path / "run"
    assert _train(out, epochs=2) == 0
    before = (out / "config.json").read_bytes()
    meta = json.loads(before)
    assert meta["device"]["ran_on"] and meta["config"]["n_epochs"] == 2
    for epochs in (2, 1):
        assert _train(out, "--resume", epochs=epochs) == 0
        assert (out / "config.json").read_bytes() == before, epochs
    assert _train(out, "--resume", epochs=3) == 0
    meta = json.loads((out / "config.json").read_text())
    assert meta["config"]["n_epochs"] == 3 and meta["device"]["ran_on"] and checkpoint_epochs(out) == [1, 2, 3]


# ------------------------------------------------------------------------------------------------ items 7 and 8
def test_a_stale_items_tsv_is_never_reused(made, tmp_path, capsys):
    """Item 7: items.tsv of another run in a new --out is refused by train (kept), set aside by seed; the new run
    writes its own."""
    out = tmp_path / "new"
    out.mkdir()
    shutil.copy(made / "items.tsv", out / "items.tsv")
    assert _train(out, data=FULL) == 2
    line = _error(capsys)
    assert "holds items.tsv but no config.json" in line, line
    assert (out / "items.tsv").read_bytes() == (made / "items.tsv").read_bytes()
    assert not (out / "config.json").exists()
    seed = ["seed", f"--data_dir={FULL}", "--epoch=1", "--size=8", "--max_steps=5", f"--checkpoint_dir={out}"]
    assert main(seed) == 0
    assert (next(out.glob("replaced-*")) / "items.tsv").read_bytes() == (made / "items.tsv").read_bytes()
    from gru4rec.io import read_sessions

    assert set(load_run(out).item_map.ids.tolist()) == set(read_sessions(FULL)["ItemId"].tolist())


def test_items_tsv_and_item_support_are_checked_against_config_json(run, capsys):
    """Item 8: a reordered items.tsv or changed item_support.npy is an error naming the file (evaluate, recommend,
    export, resume), not silently wrong metrics; a resume refuses before touching the logs."""
    items = (run / "items.tsv").read_text().splitlines()
    original = (run / "items.tsv").read_text()
    (run / "items.tsv").write_text("\n".join([items[0], *reversed(items[1:])]) + "\n")
    before = _snapshot(run)
    some = ",".join(items[1:3])
    for argv in (["evaluate", "--model", str(run), "--test", TEST],
                 ["recommend", "--model", str(run), "--items", some],
                 ["export", "--model", str(run), "--out", str(run / "saved")],
                 ["train", "--train", TR, "--out", str(run), "--resume", "--n_epochs", "2", *FLAGS]):  # fmt: skip
        assert main(argv) == 2, argv
        line = _error(capsys)
        assert "items.tsv: its item ids (or their order) differ" in line, (argv, line)
    assert _snapshot(run) == before
    (run / "items.tsv").write_text(original)
    support = np.load(run / "item_support.npy")
    np.save(run / "item_support.npy", support[::-1].copy())
    assert main(["evaluate", "--model", str(run), "--test", TEST]) == 2
    assert "item_support.npy: the item counts differ" in _error(capsys)
    np.save(run / "item_support.npy", support[:-1])
    with pytest.raises(RunFolderError, match=r"item_support.npy: expected \d+ numbers"):
        load_run(run)
    np.save(run / "item_support.npy", support)
    assert load_run(run).epoch == 1


# ------------------------------------------------------------------------------------------------ item 10
def _serve_k(folder: Path, ids) -> int:
    loaded = tf.saved_model.load(str(folder))
    state = loaded.signatures["initial_state"](batch_size=tf.constant(1, tf.int32))["state"]
    out = loaded.signatures["serving_default"](item_ids=tf.constant([int(ids[1])], tf.int64), state=state)
    return int(out["top_item_ids"].shape[1])


@pytest.mark.parametrize("atomic_exchange", [True, False])
def test_a_failed_re_export_leaves_the_previous_export_whole(run, tmp_path, capsys, monkeypatch, atomic_exchange):
    """Item 10: the SavedModel is written beside the folder and swapped in whole; a failure (the disk filling up
    at the end of the write) leaves the previous export as it was, with no temporary folder; a success replaces it
    (with and without the atomic exchange)."""
    from gru4rec import recommend
    from gru4rec.session_data import ItemMap

    if not atomic_exchange:
        monkeypatch.setattr(recommend, "_exchange", lambda a, b: False)
    ids = ItemMap.load(run / "items.tsv").ids
    saved = run / "saved"
    assert main(["export", "--model", str(run), "--out", str(saved), "-k", "5"]) == 0
    before = _snapshot(saved)
    real = tf.saved_model.save

    def disk_full(obj, export_dir, *args, **kwargs):
        real(obj, export_dir, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tf.saved_model, "save", disk_full)
    assert main(["export", "--model", str(run), "--out", str(saved), "-k", "3"]) == 1
    monkeypatch.setattr(tf.saved_model, "save", real)
    capsys.readouterr()
    assert _snapshot(saved) == before and _serve_k(saved, ids) == 5
    assert not [p.name for p in run.iterdir() if ".export-" in p.name]
    assert main(["export", "--model", str(run), "--out", str(saved), "-k", "3"]) == 0
    assert _serve_k(saved, ids) == 3 and not [p.name for p in run.iterdir() if ".export-" in p.name]


def test_an_export_never_replaces_a_folder_it_did_not_write(run, tmp_path, capsys):
    """Item 10: an --out holding other files, or a link, is refused (the export replaces the whole folder)."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main(["export", "--model", str(run), "--out", str(mine)]) == 2
    assert "notes.txt, not part of a SavedModel" in _error(capsys) and (mine / "notes.txt").read_text() == "keep"
    link = tmp_path / "link"
    link.symlink_to(mine)
    assert main(["export", "--model", str(run), "--out", str(link)]) == 2
    assert "is a symbolic link" in _error(capsys) and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["export", "--model", str(run), "--out", str(empty)]) == 0
    assert (empty / "saved_model.pb").is_file()


# ------------------------------------------------------------------------------------------------ item 12
def test_synth_no_prepare_refuses_a_prepared_folder(tmp_path, capsys):
    """Item 12: new clicks never sit beside old splits and a stats file that mark the folder complete."""
    from gru4rec import rsc15

    out = tmp_path / "prepared"
    shutil.copytree(TINY, out)
    before = _snapshot(out)
    assert rsc15.is_complete(out)
    assert main(["synth", "--preset", "tiny", "--seed", "7", "--no-prepare", "--out", str(out)]) == 2
    line = _error(capsys)
    assert "holds a prepared set" in line and "rsc15_stats.json" in line, line
    assert _snapshot(out) == before
    fresh = tmp_path / "fresh"
    assert main(["synth", "--preset", "tiny", "--seed", "7", "--no-prepare", "--out", str(fresh)]) == 0
    assert sorted(p.name for p in fresh.iterdir()) == ["yoochoose-clicks.dat"] and not rsc15.is_complete(fresh)
