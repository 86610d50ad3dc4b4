"""The seed's log format: the two seed logs, writing, and parsing variants and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gru4rec import logs
from gru4rec.io import DataFormatError

STEPS = [1] + list(range(1000, 30001, 1000))


@pytest.mark.parametrize(
    "name, first, last",
    [
        ("v100", (0, 1, 0.001, 3.911899, 0.585581), (9, 30000, 0.000306, 1.189128, 0.004267)),
        ("ascend910", (0, 1, 0.001, 3.911966, 4.246922), (9, 30000, 0.000306, 1.206509, 0.018461)),
    ],
)
def test_seed_logs_parse_to_31_rows(name, first, last):
    df = logs.read_log(logs.seed_log_path(name))
    assert list(df.columns) == ["epoch", "step", "lr", "loss", "step_time"]
    assert len(df) == 31
    assert df["step"].tolist() == STEPS
    assert tuple(df.iloc[0]) == pytest.approx(first)
    assert tuple(df.iloc[-1]) == pytest.approx(last)
    assert df["epoch"].tolist() == [0] * 4 + sorted(list(range(1, 10)) * 3)
    assert df["epoch"].dtype == np.int64 and df["loss"].dtype == np.float64


def test_format_record_is_the_seed_line_pair():
    text = logs.format_record(0, 1000, 0.001, 3.435232, 0.004362)
    assert text == "Epoch 0 Step 1000\tlr: 0.001000\tloss: 3.435232\nEach Step time is:0.004362\n"


def test_writer_round_trip(tmp_path):
    path = tmp_path / "train.log"
    with logs.LogWriter(path) as writer:
        writer.write(0, 1, 0.2, 7.5, 1.25)
        writer.write(1, 200, 0.1, 3.25, 0.0125)
    df = logs.read_log(path)
    assert df.values.tolist() == [[0, 1, 0.2, 7.5, 1.25], [1, 200, 0.1, 3.25, 0.0125]]


@pytest.mark.parametrize(
    "text",
    [
        "Tesla V100-SXM2-32GB Epoch 0 Step 1 lr: 0.001000 loss: 3.911899 Each Step time is:0.585581",
        "Epoch 0 Step 1\tlr: 0.001000\tloss: 3.911899\nEach Step time is:0.585581",
        "Epoch 0 Step 1  lr: 0.001000    loss: 3.911899\n\n  Each Step time is: 0.585581  \n",
        "Epoch   0\tStep\t1 lr:0.001000 loss:3.911899\r\nEach Step time is:0.585581\r\n",
    ],
)
def test_whitespace_and_single_line_variants(text):
    df = logs.parse_log(text)
    assert df.values.tolist() == [[0, 1, 0.001, 3.911899, 0.585581]]


def test_device_prefix_is_kept_in_attrs():
    df = logs.parse_log("Ascend 910 Epoch 2 Step 7000 lr: 0.000783 loss: 1.858841 Each Step time is:0.031110")
    assert df.attrs["device"] == "Ascend 910"


def test_a_run_cut_off_after_the_record_line_gets_nan_time():
    text = "Epoch 0 Step 1\tlr: 0.1\tloss: 2.0\nEach Step time is:0.5\nEpoch 0 Step 2\tlr: 0.1\tloss: 1.0\n"
    df = logs.parse_log(text)
    assert len(df) == 2 and math.isnan(df["step_time"].iloc[1])


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("Epoch 0 Step 1\tlr: 0.1\tloss: 2.0\nEach Step time is:0.5\nhello\n", 3, ["'hello'"]),
        ("Each Step time is:0.5\n", 1, ["after an 'Epoch"]),
        ("Epoch 0 Step 1\tlr: 0.1\tloss: 2.0\nEpoch 0 Step 2\tlr: 0.1\tloss: 2.0\n", 2, ["line 1"]),
        ("Epoch 0 Step 1\tlr: 0.1\tloss: two\nEach Step time is:0.5\n", 1, ["Epoch E Step S"]),
        ("Epoch x Step 1\tlr: 0.1\tloss: 2.0\n", 1, ["Epoch E Step S"]),
    ],
)
def test_malformed_lines_name_the_line(tmp_path, text, line, words):
    path = tmp_path / "bad.log"
    path.write_text(text)
    with pytest.raises(DataFormatError) as info:
        logs.read_log(path)
    assert str(info.value).startswith(f"{path}:{line}:")
    for word in words:
        assert word in str(info.value)


def test_seed_log_path_rejects_unknown_names():
    with pytest.raises(ValueError):
        logs.seed_log_path("a100")
