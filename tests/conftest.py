"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest

from gru4rec.datasets import ensure_preset
from gru4rec.session_data import SessionData


@pytest.fixture(scope="session")
def tiny() -> tuple[SessionData, SessionData]:
    """The embedded tiny preset: (train_full, test indexed with the training item map)."""
    return ensure_preset("tiny", progress=None).load()
