"""The exact "most recent shared item" of V-SKNN and STAN on long sessions (several blocks of the encoding), and the
neighbour choice of ``top_per_lane``, against brute-force definitions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from gru4rec.baselines import STAN, VSKNN
from gru4rec.baselines.matching import BLOCK, encode, nearest_shared, smallest_distance
from gru4rec.baselines.session_knn import _top_by_partition, _top_by_sort, top_per_lane
from gru4rec.session_data import SessionData

N_ITEMS = 40


def _long_sessions(seed: int) -> list[list[int]]:
    """Training sessions of 2 to 180 events (several blocks of 52) over 40 items, repeats included."""
    rng = np.random.default_rng(seed)
    return [list(rng.integers(0, N_ITEMS, size=int(rng.integers(2, 180)))) for _ in range(30)]


def _frame(sessions: list[list[int]]) -> SessionData:
    rows, t = [], 0.0
    for s, items in enumerate(sessions):
        for item in items:
            t += 60.0
            rows.append((s, item, t))
    return SessionData.from_frame(pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"]))


def test_encoding_reads_back_the_smallest_distance_of_a_block():
    rng = np.random.default_rng(0)
    for block in (0, 1, 3):
        for _ in range(200):
            size = int(rng.integers(1, BLOCK + 1))
            distances = rng.choice(np.arange(block * BLOCK, (block + 1) * BLOCK), size=size, replace=False)
            total = encode(distances, block).sum()
            assert smallest_distance(np.array([total]), block)[0] == distances.min()
    # all 52 distances of a block at once: still exact
    assert smallest_distance(np.array([encode(np.arange(BLOCK), 0).sum()]), 0)[0] == 0


def test_nearest_shared_against_brute_force_on_long_prefixes():
    rng = np.random.default_rng(1)
    n_rows, n_columns, n_items = 6, 9, 300
    # left side: distinct items per row with distinct distances up to 250 (five blocks); right side: item sets
    left_items = [rng.choice(n_items, size=int(rng.integers(1, 250)), replace=False) for _ in range(n_rows)]
    right_sets = [set(rng.choice(n_items, size=int(rng.integers(1, 60)), replace=False).tolist())
                  for _ in range(n_columns)]  # fmt: skip
    row = np.concatenate([np.full(len(items), r) for r, items in enumerate(left_items)])
    item = np.concatenate(left_items)
    distance = np.concatenate([np.arange(len(items)) for items in left_items])  # the first item is the nearest
    block = distance // BLOCK
    blocks = []
    for b in range(int(block.max()) + 1):
        mask = block == b
        blocks.append(sp.csr_matrix((encode(distance[mask], b), (row[mask], item[mask])), shape=(n_rows, n_items)))
    pairs = [(r, c) for r in range(n_rows) for c in range(n_columns)]
    rs, cs = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    right_rows = np.concatenate([list(s) for s in right_sets])
    right_columns = np.repeat(np.arange(n_columns), [len(s) for s in right_sets])
    right = sp.csr_matrix((np.ones(len(right_rows)), (right_rows, right_columns)), shape=(n_items, n_columns))
    got = nearest_shared(blocks, [right], rs, cs)
    for j, (r, c) in enumerate(pairs):
        shared = [d for d, i in enumerate(left_items[r]) if i in right_sets[c]]
        assert got[j] == (min(shared) if shared else -1)


def _last_positions(items: list[int]) -> dict[int, int]:
    return {item: p + 1 for p, item in enumerate(items)}


def _brute_vsknn(sessions, prefix):
    """V-SKNN with every candidate a neighbour (k, sample_size large), no idf: session-rec's definition."""
    length = len(prefix)
    weight = {item: (p / length) ** 2 for item, p in _last_positions(prefix).items()}
    scores = np.zeros(N_ITEMS)
    for items in sessions:
        shared = set(prefix) & set(items)
        if not shared:
            continue
        sim = sum(weight[i] for i in shared) / len(set(prefix))
        back = next(d for d, item in enumerate(reversed(prefix), start=1) if item in set(items))
        for item in set(items):
            scores[item] += sim / back
    return scores / scores.max()


def _brute_stan(sessions, prefix, now, end_times):
    length = len(prefix)
    weight = {item: math.exp((p - length) / 1.02) for item, p in _last_positions(prefix).items()}
    norm = math.sqrt(sum(w * w for w in weight.values()))
    scores = np.zeros(N_ITEMS)
    for items, end in zip(sessions, end_times):
        shared = set(prefix) & set(items)
        if not shared:
            continue
        sim = sum(weight[i] for i in shared) / (norm * math.sqrt(len(set(items))))
        sim *= math.exp(-(now - end) / (5 * 86400.0))
        last = _last_positions(items)
        anchor = max(last[i] for i in shared)
        for item, position in last.items():
            scores[item] += sim * math.exp(-abs(position - anchor) / 2.05)
    return scores


@pytest.mark.parametrize("seed", [0])
def test_vsknn_and_stan_on_long_sessions_against_brute_force(seed):
    sessions = _long_sessions(seed)
    train = _frame(sessions)
    assert train.n_items == N_ITEMS
    rng = np.random.default_rng(seed + 10)
    prefixes = [list(rng.integers(0, N_ITEMS, size=n)) for n in (1, 60, 130, 170)]  # up to four blocks
    end_times = [60.0 * sum(len(s) for s in sessions[: i + 1]) for i in range(len(sessions))]
    now = end_times[-1] + 86400.0
    scorers = {"vsknn": VSKNN(k=1000, sample_size=0, idf_weighting=0.0).fit(train),
               "stan": STAN(k=1000, sample_size=0).fit(train)}  # fmt: skip
    for name, scorer in scorers.items():
        state = scorer.start(len(prefixes))  # all prefixes side by side in lanes, as the evaluator runs them
        for t in range(max(len(p) for p in prefixes)):
            done = np.array([t > 0 and t % len(p) == 0 for p in prefixes])  # a finished lane starts over
            if done.any():
                state = scorer.reset(state, done)
            items = train.item_map.index_of(np.array([p[t % len(p)] for p in prefixes])).astype(np.int32)
            kwargs = {"times": np.full(len(prefixes), now)} if name == "stan" else {}
            scores, state = scorer.step(state, items, **kwargs)
            for lane, p in enumerate(prefixes):
                seen = p[: t % len(p) + 1]
                row = np.zeros(N_ITEMS)
                row[train.item_map.ids] = scores[lane]
                if name == "vsknn":
                    expected = _brute_vsknn(sessions, seen)
                else:
                    expected = _brute_stan(sessions, seen, now, end_times)
                np.testing.assert_allclose(row, expected, rtol=1e-9, atol=1e-300)


def _top_brute(lane, values, k, batch, positive_only):
    chosen = []
    for b in range(batch):
        entries = [j for j in range(len(lane)) if lane[j] == b and (values[j] > 0 or not positive_only)]
        entries.sort(key=lambda j: (values[j], j), reverse=True)  # larger value first, then the later (more recent)
        chosen += entries[:k]
    return np.sort(np.array(chosen, dtype=np.int64))


@pytest.mark.parametrize("positive_only", [True, False])
def test_top_per_lane_keeps_the_k_largest_and_the_most_recent_ties(positive_only):
    rng = np.random.default_rng(3)
    batch = 7
    counts = rng.integers(0, 30, size=batch)
    lane = np.repeat(np.arange(batch), counts)
    values = rng.integers(-1, 5, size=len(lane)).astype(np.float64) / 4  # many ties, zeros and negatives
    for k in (1, 3, 10, 40):
        np.testing.assert_array_equal(top_per_lane(lane, values, k, batch, positive_only),
                                      _top_brute(lane, values, k, batch, positive_only))  # fmt: skip


def test_both_ways_of_picking_the_top_agree_on_skewed_lanes():
    rng = np.random.default_rng(4)
    counts = np.array([3000, 12, 40, 7, 500])  # one lane far larger than the others
    lane = np.repeat(np.arange(len(counts)), counts)
    values = rng.integers(0, 6, size=len(lane)).astype(np.float64)
    for k in (1, 5, 6):
        by_partition = np.sort(_top_by_partition(lane, values, k, np.arange(len(counts)), counts))
        np.testing.assert_array_equal(by_partition, np.sort(_top_by_sort(lane, values, k)))
        np.testing.assert_array_equal(top_per_lane(lane, values, k, len(counts), False),
                                      _top_brute(lane, values, k, len(counts), False))  # fmt: skip
