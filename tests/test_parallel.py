"""Row-parallel numpy work gives the same numbers as one thread: blocks, the product, the ranking, an evaluation."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from session_helpers import data_from_sessions

import gru4rec.evaluate as evaluate_module
import gru4rec.parallel as parallel
from gru4rec.evaluate import _rank_rows, evaluate, rank_numpy


@pytest.fixture(params=[2, 3])
def threads(request, monkeypatch):
    """Pretend the machine has 2 or 3 CPUs, whatever it has (the tests check results, not speed)."""
    monkeypatch.setattr(parallel, "n_threads", lambda: request.param)
    return request.param


@pytest.mark.parametrize("n_rows,n_blocks", [(10, 3), (3, 8), (1, 1), (1024, 2), (0, 2)])
def test_row_blocks_cover_every_row_once_in_order(n_rows, n_blocks):
    blocks = parallel.row_blocks(n_rows, n_blocks)
    covered = [row for lo, hi in blocks for row in range(lo, hi)]
    assert covered == list(range(n_rows))
    sizes = [hi - lo for lo, hi in blocks]
    assert max(sizes) - min(sizes) <= 1


def test_map_rows_runs_blocks_on_other_threads_and_keeps_row_order(threads):
    seen = []

    def work(lo, hi):
        seen.append(threading.current_thread().name)
        return list(range(lo, hi))

    parts = parallel.map_rows(work, 100)
    assert len(parts) == threads
    assert [row for part in parts for row in part] == list(range(100))
    assert any(name.startswith("gru4rec-rows") for name in seen)  # not all on the calling thread


def test_map_rows_is_serial_for_few_rows_and_inside_its_own_pool(threads):
    assert parallel.map_rows(lambda lo, hi: (lo, hi), 3) == [(0, 3)]
    nested = parallel.map_rows(lambda lo, hi: parallel.map_rows(lambda a, b: (a, b), 50), 100)
    assert all(len(inner) == 1 for inner in nested[1:])  # blocks run by pool threads do not fan out again


def test_matmul_rows_equals_numpy(threads):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 101), dtype=np.float32)
    b = rng.standard_normal((101, 777), dtype=np.float32)
    out = np.full((300, 777), np.nan, np.float32)
    got = parallel.matmul_rows(a, b, out=out, min_rows=8)
    assert got is out
    np.testing.assert_allclose(got, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("tie_mode,exact", [("conservative", False), ("standard", False), ("median", True)])
def test_parallel_ranking_equals_one_thread(threads, tie_mode, exact):
    rng = np.random.default_rng(1)
    scores = np.round(rng.standard_normal((2_100, 1_000)), 1).astype(np.float32)  # 2.1M scores, many ties
    targets = rng.integers(0, 1_000, 2_100)
    assert scores.size >= evaluate_module.PARALLEL_RANK_MIN_SCORES  # the row-parallel path
    got = rank_numpy(scores, targets, tie_mode, 20, exact)
    want = _rank_rows(scores, targets, tie_mode, 20, exact)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_gru4rec_evaluation_is_the_same_row_parallel_and_serial(monkeypatch):
    pytest.importorskip("tensorflow")
    from gru4rec.config import Config
    from gru4rec.evaluate import GRU4RecScorer
    from gru4rec.model import GRU4RecModel

    rng = np.random.default_rng(2)
    n_items = 400
    sessions = [rng.integers(0, n_items, rng.integers(2, 7)).tolist() for _ in range(300)]
    data = data_from_sessions(sessions, n_items)
    model = GRU4RecModel(n_items, Config(layers=(24,), seed=5))
    model.By.assign(rng.normal(size=n_items).astype(np.float32))
    runs = {}
    for threads in (1, 2):
        monkeypatch.setattr(parallel, "n_threads", lambda threads=threads: threads)
        monkeypatch.setattr(evaluate_module, "PARALLEL_RANK_MIN_SCORES", 1 if threads > 1 else 10**12)
        runs[threads] = evaluate(GRU4RecScorer(model, output="numpy"), data, (1, 5, 20), batch_size=200,
                                 return_ranks=True)  # fmt: skip
    np.testing.assert_array_equal(runs[1]["ranks"], runs[2]["ranks"])
    for key in ("recall@20", "mrr@20", "coverage@20"):
        assert runs[1][key] == runs[2][key]
