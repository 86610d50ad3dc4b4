"""The synthetic generator: determinism, statistics, the embedded data, and the oracle against brute force."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

from gru4rec import rsc15, synthetic
from gru4rec.session_data import ItemMap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------------------------------------------
# determinism and the embedded data


def test_same_seed_same_bytes_different_seed_different(tmp_path):
    paths = []
    for name, seed in (("a", 42), ("b", 42), ("c", 43)):
        path = tmp_path / f"{name}.dat"
        synthetic.generate("tiny", seed).write(path)
        paths.append(path.read_bytes())
    assert paths[0] == paths[1]
    assert paths[0] != paths[2]


def test_embedded_tiny_data_regenerates_byte_for_byte(tmp_path):
    """data/tiny is `gru4rec synth --preset tiny --seed 42` minus the clicks file."""
    from gru4rec.cli import main

    out = tmp_path / "tiny"
    assert main(["synth", "--preset", "tiny", "--seed", "42", "--out", str(out)]) == 0
    committed = os.path.join(ROOT, "data", "tiny")
    names = [*rsc15.FILES.values(), rsc15.STATS_FILE]
    for name in names:
        with open(os.path.join(committed, name), "rb") as handle:
            assert (out / name).read_bytes() == handle.read(), name
    size = sum(os.path.getsize(os.path.join(committed, name)) for name in os.listdir(committed))
    assert size < 1_000_000


# ----------------------------------------------------------------------------------------------------------------
# statistics


def _zipf_slope(counts: np.ndarray, lo: int = 10, hi: int = 1000) -> float:
    counts = np.sort(counts)[::-1][lo:hi]
    ranks = np.arange(lo + 1, lo + 1 + len(counts))
    return -np.polyfit(np.log(ranks), np.log(counts), 1)[0]


@pytest.fixture(scope="module")
def small():
    synth = synthetic.generate("small", 42)
    return synth, rsc15.split(synth.clicks)


def test_small_preset_statistics(small):
    synth, splits = small
    raw_lengths = synth.clicks.groupby("SessionId").size()
    assert raw_lengths.median() == 2 and raw_lengths.max() >= 40  # short sessions, long tail
    assert 0.2 < (raw_lengths == 1).mean() < 0.4  # many single clicks, as in yoochoose
    train = splits.stats["files"]["train_full"]
    test = splits.stats["files"]["test"]
    assert 250_000 <= train["events"] <= 350_000
    assert 17_000 <= train["items"] <= 23_000
    assert splits.train_full.groupby("SessionId").size().median() == 3
    assert 3.5 <= train["mean_session_length"] <= 5.0
    assert 0.02 <= test["sessions"] / (test["sessions"] + train["sessions"]) <= 0.06  # last day of 30
    days = (synth.clicks["Time"].max() - synth.clicks["Time"].min()) / 86400
    assert 29 <= days <= 31
    slope = _zipf_slope(synth.clicks["ItemId"].value_counts().to_numpy())
    assert 0.4 <= slope <= 1.2
    # a daily rhythm: the busiest hour has several times the clicks of the quietest
    hours = ((synth.clicks["Time"] % 86400) // 3600).value_counts()
    assert hours.max() > 2.5 * hours.min()


def test_tiny_preset_is_small_and_fast():
    synth = synthetic.generate("tiny", 1)
    info = synth.describe()
    assert 2_000 <= info["sessions"] <= 5_000
    assert info["median_session_length"] == 2
    splits = rsc15.split(synth.clicks)
    assert 0.03 <= splits.stats["files"]["test"]["sessions"] / info["sessions"] <= 0.12


def test_sessions_are_ordered_by_start_and_ids_do_not_reveal_popularity():
    synth = synthetic.generate("tiny", 3)
    clicks = synth.clicks
    assert (np.diff(clicks["SessionId"].to_numpy()) >= 0).all()
    starts = clicks.groupby("SessionId")["Time"].min().to_numpy()
    assert (np.diff(starts) >= 0).all()
    counts = clicks["ItemId"].value_counts()
    assert abs(np.corrcoef(counts.index.to_numpy(), counts.to_numpy())[0, 1]) < 0.3


# ----------------------------------------------------------------------------------------------------------------
# the oracle


def _tiny_process(disjoint: bool) -> synthetic.SyntheticProcess:
    """3 intents, 5 items, 2 successors per item."""
    rng = np.random.default_rng(5)
    n, k = 5, 3
    popularity = rng.dirichlet(np.ones(n))
    if disjoint:
        item_intent = np.array([0, 1, 2, 0, 1])
        intent_items = np.zeros((k, n))
        intent_items[item_intent, np.arange(n)] = popularity
        intent_items /= intent_items.sum(axis=1, keepdims=True)
    else:
        item_intent = np.zeros(n, dtype=np.int64)
        intent_items = rng.dirichlet(np.ones(n) * 0.5, size=k)
    return synthetic.SyntheticProcess(
        item_ids=np.array([50, 10, 40, 20, 30]), popularity=popularity, item_intent=item_intent,
        intent_prior=np.array([0.5, 0.3, 0.2]), intent_items=intent_items,
        successors=rng.integers(0, n, (n, 2)), successor_probs=np.array([0.7, 0.3]),
        first_intent=0.7, w_intent=0.4, w_transition=0.3, w_repeat=0.2, w_popular=0.1,
    )  # fmt: skip


def _click_prob(p: synthetic.SyntheticProcess, prefix: tuple, z: int, j: int) -> float:
    """P(next = j | prefix, intent z), straight from the definitions in the module docstring."""
    if not prefix:
        return p.first_intent * p.intent_items[z, j] + (1 - p.first_intent) * p.popularity[j]
    transition = sum(w for s, w in zip(p.successors[prefix[-1]], p.successor_probs) if s == j)
    repeat = prefix.count(j) / len(prefix)
    return (
        p.w_intent * p.intent_items[z, j]
        + p.w_transition * transition
        + p.w_repeat * repeat
        + p.w_popular * p.popularity[j]
    )


def _joint(p: synthetic.SyntheticProcess, seq: tuple) -> float:
    total = 0.0
    for z in range(p.n_intents):
        prob = p.intent_prior[z]
        for t in range(len(seq)):
            prob *= _click_prob(p, seq[:t], z, seq[t])
        total += prob
    return total


@pytest.mark.parametrize("disjoint", [True, False])
def test_oracle_matches_brute_force_enumeration(disjoint):
    p = _tiny_process(disjoint)
    n, length = p.n_items, 4
    joint = {seq: _joint(p, seq) for seq in itertools.product(range(n), repeat=length)}
    assert sum(joint.values()) == pytest.approx(1.0, abs=1e-12)

    def brute(prefix: tuple) -> np.ndarray:
        """P(x_{t+1} = j | prefix) by summing the probabilities of every full sequence."""
        mass = np.zeros(n)
        for seq, prob in joint.items():
            if seq[: len(prefix)] == prefix:
                mass[seq[len(prefix)]] += prob
        return mass / mass.sum()

    # ItemMap order differs from the process order: scores must follow the map's indices
    item_map = ItemMap.from_ids(p.item_ids)
    to_map = item_map.index_of(p.item_ids)  # process index -> map index
    oracle = synthetic.OracleScorer(p, item_map)
    prefixes = [seq[:t] for seq in itertools.product(range(n), repeat=length - 1) for t in (1, 2, 3)]
    prefixes = sorted(set(prefixes))
    batch = len(prefixes)
    state = oracle.start(batch)
    state = oracle.reset(state, np.ones(batch, dtype=bool))
    for t in range(3):
        items = np.array([to_map[pre[t]] if t < len(pre) else 0 for pre in prefixes], dtype=np.int32)
        scores, state = oracle.step(state, items)
        for b, pre in enumerate(prefixes):
            if len(pre) == t + 1:
                got = np.empty(n)
                got[np.arange(n)] = scores[b, to_map]
                np.testing.assert_allclose(got, brute(pre), rtol=1e-9, atol=1e-12)
                np.testing.assert_allclose(p.next_item_distribution(pre), brute(pre), rtol=1e-9)
    # the empty prefix (the first click)
    np.testing.assert_allclose(p.next_item_distribution(()), brute(()), rtol=1e-9)


def test_oracle_reset_forgets_the_session():
    p = _tiny_process(True)
    item_map = ItemMap.from_ids(p.item_ids)
    oracle = synthetic.OracleScorer(p, item_map)
    state = oracle.start(2)
    _, state = oracle.step(state, np.array([1, 1], dtype=np.int32))
    state = oracle.reset(state, np.array([True, False]))
    scores, state = oracle.step(state, np.array([3, 3], dtype=np.int32))
    fresh = oracle.start(1)
    expected, _ = oracle.step(fresh, np.array([3], dtype=np.int32))
    np.testing.assert_allclose(scores[0], expected[0])
    assert not np.allclose(scores[1], expected[0])


def test_oracle_scores_only_the_item_map_and_zero_for_unknown_ids():
    p = _tiny_process(True)
    item_map = ItemMap(np.array([40, 10, 999]))  # a subset in another order, plus an id the process never made
    oracle = synthetic.OracleScorer(p, item_map)
    assert oracle.n_items == 3
    scores, _ = oracle.step(oracle.start(1), np.array([0], dtype=np.int32))
    full = p.next_item_distribution([2])  # process index of ItemId 40 is 2
    np.testing.assert_allclose(scores[0, :2], full[[2, 1]])
    assert scores[0, 2] == 0.0


@pytest.mark.parametrize("disjoint", [True, False])
def test_generator_samples_the_distribution_the_oracle_predicts(disjoint):
    """Empirical next-click frequencies of generated sessions agree with the oracle's probabilities."""
    p = _tiny_process(disjoint)
    rng = np.random.default_rng(11)
    frame, _ = synthetic.sample_sessions(p, 0, rng, days=3, lengths=np.full(200_000, 3))
    index = {int(i): k for k, i in enumerate(p.item_ids)}
    seqs = frame["ItemId"].map(index).to_numpy().reshape(-1, 3)
    first = np.bincount(seqs[:, 0], minlength=p.n_items) / len(seqs)
    np.testing.assert_allclose(first, p.next_item_distribution(()), atol=0.005)
    for prefix in [(0,), (1,), (seqs[0, 0], seqs[0, 1]), (seqs[1, 0], seqs[1, 1])]:
        match = np.all(seqs[:, : len(prefix)] == np.array(prefix), axis=1)
        following = seqs[match, len(prefix)]
        assert len(following) > 2000
        empirical = np.bincount(following, minlength=p.n_items) / len(following)
        np.testing.assert_allclose(empirical, p.next_item_distribution(prefix), atol=4 / np.sqrt(len(following)))


def test_generate_makes_a_process_whose_intent_sampler_matches_q():
    synth = synthetic.generate("tiny", 0, n_sessions=30_000, n_items=20, n_intents=4, first_intent=1.0)
    p = synth.process
    # with first_intent = 1 the first click of a session of intent z is drawn from q_z
    firsts = synth.clicks.groupby("SessionId")["ItemId"].first().to_numpy()
    index = {int(i): k for k, i in enumerate(p.item_ids)}
    firsts = np.array([index[int(i)] for i in firsts])
    for z in range(p.n_intents):
        chosen = firsts[synth.session_intent == z]
        empirical = np.bincount(chosen, minlength=p.n_items) / len(chosen)
        np.testing.assert_allclose(empirical, p.intent_items[z], atol=4 / np.sqrt(len(chosen)) + 1e-9)


def test_ceiling_on_tiny_is_a_sensible_number():
    synth = synthetic.generate("tiny", 42)
    splits = rsc15.split(synth.clicks)
    item_map = ItemMap.from_ids(splits.train_full["ItemId"].to_numpy())
    result = synthetic.ceiling(synth.process, splits.test, item_map)
    assert 0.5 < result["recall@20"] < 0.95
    assert 0.2 < result["mrr@20"] < result["recall@20"]
    # the oracle beats ranking by training popularity by a wide margin
    counts = splits.train_full["ItemId"].value_counts()
    test = splits.test
    nxt = test.groupby("SessionId")["ItemId"].apply(lambda s: list(s)[1:]).sum()
    top20 = set(counts.index[:20])
    pop_recall = np.mean([item in top20 for item in nxt])
    assert result["recall@20"] > pop_recall + 0.2


def test_unknown_preset_is_a_value_error():
    with pytest.raises(ValueError, match="unknown preset"):
        synthetic.generate("huge", 1)


def test_synth_cli_in_a_subprocess_writes_yoochoose_clicks(tmp_path):
    out = tmp_path / "s"
    command = ["synth", "--preset", "tiny", "--seed", "5", "--out", str(out), "--no-prepare"]
    result = subprocess.run(
        [sys.executable, "-m", "gru4rec", *command], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    first = (out / "yoochoose-clicks.dat").read_text().splitlines()[0]
    assert first.count(",") == 3 and first.split(",")[1].endswith("Z")
