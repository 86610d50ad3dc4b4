"""Named presets: the embedded tiny data and generation of the others on first use."""

from __future__ import annotations

import pytest

from gru4rec.datasets import ensure_preset, preset_dir


def test_tiny_is_embedded_and_loads() -> None:
    files = ensure_preset("tiny", progress=None)
    assert files.directory.name == "tiny" and files.exists()
    train, test = files.load()
    assert train.n_sessions > 1000 and test.n_sessions > 10
    assert test.item_map is train.item_map
    ceiling = files.ceiling()
    assert 0.0 < ceiling["mrr@20"] <= ceiling["recall@20"] <= 1.0


def test_other_seed_is_generated_once(tmp_path) -> None:
    messages: list[str] = []
    files = ensure_preset("tiny", data_dir=tmp_path, seed=7, progress=messages.append)
    assert files.directory == preset_dir("tiny", tmp_path, seed=7) and files.exists()
    assert not (files.directory / "yoochoose-clicks.dat").exists()
    assert "ceiling" in files.stats()
    count = len(messages)
    ensure_preset("tiny", data_dir=tmp_path, seed=7, progress=messages.append)
    assert len(messages) == count, "a second call reuses the files"


def test_unknown_preset_is_named() -> None:
    with pytest.raises(ValueError, match="unknown data preset 'huge'"):
        ensure_preset("huge")
