"""gru4rec.timing: the structure of the step-time measurements (never their speed) and the published numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gru4rec.config import Config
from gru4rec.datasets import ensure_preset
from gru4rec.session_data import SessionData
from gru4rec.timing import loop_sinking, measure_step_time, published_step_times


@pytest.fixture(scope="module")
def tiny() -> SessionData:
    train, _ = ensure_preset("tiny", progress=None).load()
    return train


def small_config(**overrides) -> Config:
    return Config.preset("seed", **{"layers": (16,), "embedding": 16, "batch_size": 8, **overrides})


def test_measure_step_time_structure(tiny: SessionData) -> None:
    result = measure_step_time(small_config(), tiny, chunk_steps=4, n_steps=10, warmup_calls=1)
    assert result["chunk_steps"] == 4
    assert result["n_calls"] == 3 and result["n_steps"] == 12  # 10 steps rounded up to whole calls
    assert len(result["ms_per_call"]) == result["n_calls"]
    assert result["ms_per_step"] > 0 and result["seconds"] > 0 and result["first_call_ms"] > 0
    assert result["events_per_s"] > 0
    assert result["ms_per_step"] == pytest.approx(sum(result["ms_per_call"]) / result["n_steps"])
    assert result["batch_size"] == 8 and result["bptt_steps"] == 1 and result["n_sample"] == 0
    assert "CPU" in result["device"] or "GPU" in result["device"] or "NPU" in result["device"]


def test_chunk_rounded_to_bptt_window_and_epochs_repeat(tiny: SessionData) -> None:
    # tiny with batch 64 has 120 steps per epoch: 3 full calls of 30 steps each, so 5 calls need a second epoch
    config = small_config(bptt_steps=3, batch_size=64)
    result = measure_step_time(config, tiny, chunk_steps=29, n_steps=150, warmup_calls=0)
    assert result["chunk_steps"] == 30 and result["bptt_steps"] == 3
    assert result["n_steps"] == 150 and result["n_calls"] == 5


def test_measure_step_time_rejects_what_it_cannot_time(tiny: SessionData) -> None:
    with pytest.raises(ValueError, match="n_steps"):
        measure_step_time(small_config(), tiny, chunk_steps=1, n_steps=0)
    with pytest.raises(ValueError, match="no full call"):
        measure_step_time(small_config(), tiny, chunk_steps=100_000, n_steps=1, max_epochs=1)


def test_loop_sinking_keys(tiny: SessionData) -> None:
    result = loop_sinking(small_config(), tiny, chunk_steps=(1, 8), n_steps=16)
    assert result["chunk_steps"] == [1, 8]
    assert result["ms_per_step_one_call_per_step"] > 0 and result["ms_per_step_chunked"] > 0
    assert result["speedup"] == pytest.approx(
        result["ms_per_step_one_call_per_step"] / result["ms_per_step_chunked"]
    )
    assert result["one_call_per_step"]["n_calls"] == 16 and result["chunked"]["n_calls"] == 2
    with pytest.raises(ValueError, match="two values"):
        loop_sinking(small_config(), tiny, chunk_steps=(1,))


def test_published_step_times_from_the_seed_logs() -> None:
    published = published_step_times()
    assert set(published) == {"v100", "ascend910"}
    # the medians of the logs' 30 steady samples (facts: about 4.26 and 19.9 ms/step)
    assert published["v100"]["ms_per_step"] == pytest.approx(4.259, abs=1e-3)
    assert published["ascend910"]["ms_per_step"] == pytest.approx(19.861, abs=1e-3)
    assert published["v100"]["n_samples"] == 30 and published["v100"]["first_step_ms"] > 100


def test_published_step_times_from_given_logs() -> None:
    log = pd.DataFrame(
        {"epoch": 0, "step": [1, 1000, 2000, 3000], "lr": 0.001, "loss": 1.0, "step_time": [0.5, 0.001, 0.003, np.nan]}
    )
    published = published_step_times({"v100": log, "ascend910": log})
    assert published["v100"]["ms_per_step"] == pytest.approx(2.0)
    assert published["ascend910"]["first_step_ms"] == pytest.approx(500.0)
    assert published["ascend910"]["n_samples"] == 2
