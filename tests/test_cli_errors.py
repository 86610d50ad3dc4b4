"""One-line errors with their real cause: a full disk, corrupt compressed input, a run folder's files that do not fit
its ``config.json``, input checked before training, ``--debug`` keeping the exit code."""

from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gru4rec import io as gio
from gru4rec.cli import describe_error, main

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny"
TRAIN = str(TINY / "rsc15_train_tr.txt")
TEST = str(TINY / "rsc15_test.txt")
T = ["--layers", "10", "--n_sample", "16", "--batch_size", "16", "--n_epochs", "1", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A 1-epoch run folder made by ``gru4rec train`` (copy it before breaking it)."""
    out = tmp_path_factory.mktemp("errors") / "run"
    assert main(["train", "--train", TRAIN, "--out", str(out), *T]) == 0
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(run, target)
    return target


def _error_line(capfd) -> str:
    err = capfd.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


# ------------------------------------------------------------------------------------------------ a full disk
def test_a_full_disk_is_not_out_of_memory():
    tf = pytest.importorskip("tensorflow")
    path = "/runs/r/checkpoints/epoch-1_temp/part-00000-of-00001.data-00000-of-00001.tempstate123"
    disk = tf.errors.ResourceExhaustedError(None, None, f"{{{{function_node SaveV2}}}} {path}; No space left on device "
                                                        "[Op:SaveV2]")  # fmt: skip
    assert describe_error(disk) == (1, f"{path}: no space left on the device")
    memory = tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[100000,300000]")
    assert describe_error(memory)[1].startswith("out of memory")
    assert describe_error(OSError(errno.ENOSPC, "No space left on device", "/d/x.txt")) == (
        1, "/d/x.txt: no space left on the device")  # fmt: skip
    code, line = describe_error(OSError(errno.ENOSPC, "No space left on device"))
    assert code == 1 and line.startswith("no space left on the device")

    class OperationalError(Exception):  # SQLAlchemy's, from the SQLite study of `gru4rec tune`
        pass

    code, line = describe_error(OperationalError("(sqlite3.OperationalError) database or disk is full"))
    assert code == 1 and line.startswith("no space left on the device") and "unexpected" not in line


def test_atomic_write_names_the_file_a_failed_write_was_for(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(OSError) as caught:
        with gio.atomic_write(target) as handle:
            handle.write("x")
            raise OSError(errno.ENOSPC, "No space left on device")  # what a write on a full disk raises: no file
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone


def test_train_and_synth_on_a_full_disk_name_the_path_and_the_cause(tmp_path, monkeypatch, capfd):
    tf = pytest.importorskip("tensorflow")

    def disk_full(self, *args, **kwargs):
        raise tf.errors.ResourceExhaustedError(
            None, None, f"{self.directory}/epoch-1_temp/part-0.tempstate1; No space left on device [Op:SaveV2]")

    with monkeypatch.context() as patch:
        patch.setattr(tf.train.CheckpointManager, "save", disk_full)
        assert main(["train", "--train", TRAIN, "--out", str(tmp_path / "r"), *T]) == 1
    line = _error_line(capfd)
    assert "out of memory" not in line and "no space left on the device" in line and str(tmp_path / "r") in line

    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr(gio.os, "fdopen", lambda fd, *args, **kwargs: FullDisk(real_fdopen(fd, *args, **kwargs)))
    assert main(["synth", "--preset", "tiny", "--out", str(tmp_path / "s")]) == 1
    line = _error_line(capfd)
    assert f"{tmp_path / 's'}" in line and "no space left on the device" in line and "Errno" not in line


# ------------------------------------------------------------------------------------------------ input files
@pytest.mark.parametrize("suffix", [".gz", ".bz2"])
def test_corrupt_compressed_input_names_the_file_and_exits_2(tmp_path, suffix, capfd):
    packed = gzip.compress(Path(TRAIN).read_bytes())
    path = tmp_path / f"train.txt{suffix}"
    path.write_bytes(packed[: len(packed) // 2] if suffix == ".gz" else b"BZh9" + packed[10:200])
    assert main(["train", "--train", str(path), "--out", str(tmp_path / "r"), *T]) == 2
    line = _error_line(capfd)
    assert str(path) in line and "corrupt or truncated" in line
    assert not (tmp_path / "r").exists()


def test_a_bad_test_file_is_refused_before_training(tmp_path, capfd):
    bad = tmp_path / "test.txt"
    bad.write_text("SessionId\tItemId\tTime\n1\t214536502\tnoon\n")
    assert main(["train", "--train", TRAIN, "--out", str(tmp_path / "r"), "--test", str(bad), *T]) == 2
    line = _error_line(capfd)
    assert f"{bad}:2: column 3 (Time)" in line
    assert not (tmp_path / "r").exists()  # nothing was trained


def test_a_non_utf8_params_file_is_named(tmp_path, capfd):
    params = tmp_path / "best.json"
    params.write_bytes(b'{"loss": "cross-entropy", "layers": "\xff"}')
    assert main(["train", "--train", TRAIN, "--out", str(tmp_path / "r"), "--params", str(params)]) == 2
    line = _error_line(capfd)
    assert str(params) in line and "not UTF-8" in line


# ------------------------------------------------------------------------------------------------ run folders
def test_a_checkpoint_of_other_shapes_prints_one_line_only(run, tmp_path):
    broken = _copy(run, tmp_path)
    meta = json.loads((broken / "config.json").read_text())
    meta["config"]["layers"] = [30]
    (broken / "config.json").write_text(json.dumps(meta))
    done = subprocess.run([sys.executable, "-m", "gru4rec", "evaluate", "--model", str(broken), "--test", TEST],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not fit" in lines[0], done.stderr  # once followed by ~29 TensorFlow warnings


def test_a_wrong_shape_item_support_names_the_file(run, tmp_path, capfd):
    broken = _copy(run, tmp_path)
    np.save(broken / "item_support.npy", np.zeros((3, 4)))
    assert main(["evaluate", "--model", str(broken), "--test", TEST]) == 2
    line = _error_line(capfd)
    assert f"{broken / 'item_support.npy'}: expected" in line and "(3, 4)" in line


def test_a_resume_with_nothing_to_train_prints_no_nan(run, tmp_path, capfd):
    copy = _copy(run, tmp_path)
    assert main(["train", "--train", TRAIN, "--out", str(copy), "--resume", *T]) == 0
    out = capfd.readouterr().out
    assert "nan" not in out.lower() and "nothing left to train" in out


def test_debug_keeps_the_exit_code_of_bad_input(tmp_path, capfd):
    missing = str(tmp_path / "missing.txt")
    assert main(["train", "--train", missing, "--out", str(tmp_path / "r"), "--debug"]) == 2
    err = capfd.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("gru4rec train: error:")
    done = subprocess.run([sys.executable, "-m", "gru4rec", "train", "--train", missing, "--out",
                           str(tmp_path / "r"), "--debug"], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "Traceback" in done.stderr
