"""Figures of notebook 05 and the computations behind them (gru4rec.lessons.comparison)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gru4rec.config import Config
from gru4rec.lessons import comparison as lessons
from gru4rec.logs import parse_log
from gru4rec.plots import comparison as plots
from gru4rec.session_data import SessionData
from gru4rec.train import plan_epoch

LOG = """\
Epoch 0 Step 1\tlr: 0.001000\tloss: 3.911899
Each Step time is:0.500000
Epoch 0 Step 10\tlr: 0.001000\tloss: 3.5
Each Step time is:0.004000
Epoch 1 Step 20\tlr: 0.000960\tloss: 3.0
Each Step time is:0.002000
Epoch 1 Step 30\tlr: 0.000960\tloss: 2.5
Each Step time is:0.006000
"""


def random_data(n_sessions: int, seed: int = 0, shuffled_ids: bool = False) -> SessionData:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 12, n_sessions)
    ids = rng.permutation(n_sessions) + 1 if shuffled_ids else np.arange(1, n_sessions + 1)
    rows = [(int(ids[s]), int(rng.integers(0, 50)), float(s + j / 100)) for s, n in enumerate(lengths)
            for j in range(n)]  # fmt: skip
    return SessionData.from_frame(pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"]))


def test_published_logs_parse_to_31_rows_with_the_documented_medians():
    logs = lessons.published_logs()
    assert set(logs) == set(lessons.PUBLISHED_DEVICES) == {"v100", "ascend910"}
    for frame in logs.values():
        summary = lessons.summarize_log(frame, batch_size=50)
        assert summary["n_rows"] == 31
        assert summary["steps"] == [1] + list(range(1000, 30001, 1000))
        assert summary["first_loss"] == pytest.approx(np.log(50), abs=1e-3)  # softmax over 50 in-batch targets
    v100 = lessons.summarize_log(logs["v100"], 50)
    npu = lessons.summarize_log(logs["ascend910"], 50)
    assert v100["first_step_time"] == pytest.approx(0.585581) and npu["first_step_time"] == pytest.approx(4.246922)
    assert v100["median_step_time"] == pytest.approx(0.004259) and npu["median_step_time"] == pytest.approx(0.019861)
    assert v100["events_per_s"] == pytest.approx(50 / 0.004259)


def test_summarize_log_skips_the_first_row_for_the_distribution():
    summary = lessons.summarize_log(parse_log(LOG), batch_size=10)
    assert summary["n_rows"] == 4 and summary["steps"] == [1, 10, 20, 30]
    assert summary["first_step_time"] == 0.5 and summary["median_step_time"] == pytest.approx(0.004)
    assert summary["events_per_s"] == pytest.approx(2500.0) and summary["final_loss"] == 2.5
    with pytest.raises(ValueError, match="no records"):
        lessons.summarize_log(parse_log(""))


@pytest.mark.parametrize("batch_size, n_sample", [(5, 0), (5, 8), (1, 8), (40, 0)])
def test_epoch_steps_matches_the_trainer(batch_size, n_sample):
    data = random_data(60, shuffled_ids=True)
    config = Config.preset("seed", batch_size=max(batch_size, 2) if n_sample == 0 else batch_size, n_sample=n_sample)
    expected = plan_epoch(data, config, epoch=0, chunk=16).n_steps
    pairs = lessons.pairs_in_order(data, config.session_order)
    assert lessons.epoch_steps(pairs, config.batch_size, n_sample, config.epoch_end) == expected
    official_loop = config.with_overrides(session_order="time", epoch_end="all_sessions")
    expected = plan_epoch(data, official_loop, epoch=0, chunk=16).n_steps
    assert lessons.epoch_steps(data.session_lengths - 1, config.batch_size, n_sample) == expected


def test_sessions_for_steps_takes_the_shortest_prefix():
    data = random_data(200, seed=3, shuffled_ids=True)
    pairs = data.session_lengths - 1
    sub = lessons.sessions_for_steps(data, steps=100, batch_size=5)
    assert lessons.epoch_steps(sub.session_lengths - 1, 5) >= 100
    assert lessons.epoch_steps(pairs[: sub.n_sessions - 1], 5) < 100
    assert np.array_equal(sub.items, data.items[: sub.offsets[-1]]) and sub.item_map is data.item_map
    assert sub.session_ids.tolist() == data.session_ids[: sub.n_sessions].tolist()
    assert lessons.sessions_for_steps(data, steps=10**6, batch_size=5) is data
    seed_loop = lessons.sessions_for_steps(data, steps=100, batch_size=5, order="session_id", end="first_unfilled_lane")
    n = seed_loop.n_sessions
    assert lessons.epoch_steps(lessons.pairs_in_order(seed_loop, "session_id"), 5, end="first_unfilled_lane") >= 100
    shorter = lessons.first_sessions(data, n - 1)
    assert lessons.epoch_steps(lessons.pairs_in_order(shorter, "session_id"), 5, end="first_unfilled_lane") < 100
    assert lessons.first_sessions(data, 0).n_sessions == 0 and lessons.first_sessions(data, 10**6).n_sessions == 200


def test_figures_carry_the_data():
    logs = {"published — Tesla V100-SXM2-32GB": parse_log(LOG), "measured here — CPU": parse_log(LOG)}
    figure = plots.loss_curves_figure(logs)
    assert [trace.name for trace in figure.data] == list(logs)
    assert figure.data[0].line.dash == "dash" and figure.data[1].line.dash == "solid"
    assert list(figure.data[0].y) == [3.911899, 3.5, 3.0, 2.5]

    figure = plots.step_time_figure(logs)
    boxes = [trace for trace in figure.data if trace.type == "box"]
    firsts = [trace for trace in figure.data if trace.type == "scatter"]
    assert len(boxes) == 2 and list(boxes[0].y) == pytest.approx([4.0, 2.0, 6.0])
    assert firsts[0].y[0] == pytest.approx(500.0) and figure.layout.yaxis.type == "log"

    summaries = {label: lessons.summarize_log(frame, 10) for label, frame in logs.items()}
    figure = plots.speed_figure(summaries, note="different data sets")
    assert list(figure.data[0].x) == pytest.approx([4.0, 4.0]) and "2,500 events/s" in figure.data[0].text[0]
