"""gru4rec.run_folder: the message for a folder that already holds a run, and dropping a measured run's checkpoints."""

from __future__ import annotations

import pytest

from gru4rec.run_folder import RunFolder, RunFolderError, drop_checkpoints


def fake_run(folder):
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "train.jsonl").write_text("{}\n")
    (folder / "checkpoints" / "epoch-1.index").write_bytes(b"x" * 10)
    (folder / "checkpoints" / "epoch-1.data-00000-of-00001").write_bytes(b"y" * 90)
    return folder


def test_a_folder_holding_a_run_names_the_cli_option_and_the_python_argument_apart(tmp_path) -> None:
    folder = fake_run(tmp_path / "run")
    with pytest.raises(RunFolderError) as error:
        RunFolder(folder).check_training(None, None, resume=False)
    message = str(error.value)
    assert "command line: --resume" in message and "Python: train(..., resume=True)" in message
    assert "resume=True (--resume)" not in message


def test_drop_checkpoints_keeps_config_and_logs_and_refuses_other_folders(tmp_path) -> None:
    folder = fake_run(tmp_path / "run")
    assert drop_checkpoints(folder) == 100
    assert not (folder / "checkpoints").exists()
    assert (folder / "config.json").is_file() and (folder / "train.jsonl").is_file()
    assert drop_checkpoints(folder) == 0  # nothing left to drop
    other = tmp_path / "not-a-run"
    (other / "checkpoints").mkdir(parents=True)
    with pytest.raises(RunFolderError, match="not a run folder"):
        drop_checkpoints(other)
    assert (other / "checkpoints").is_dir()
