"""The Recommender (one-shot, live sessions, LRU) and the SavedModel round trip, against the model itself."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from gru4rec.config import Config  # noqa: E402
from gru4rec.model import GRU4RecModel  # noqa: E402
from gru4rec.recommend import (  # noqa: E402
    EmptySessionError,
    Recommender,
    UnknownItemWarning,
    save_serving_model,
)
from gru4rec.session_data import ItemMap  # noqa: E402

N_ITEMS = 50
IDS = 1000 + 7 * np.arange(N_ITEMS)  # original ItemIds: not the indices


@pytest.fixture(scope="module")
def model():
    m = GRU4RecModel(N_ITEMS, Config(layers=(12, 6), constrained_embedding=False, embedding=8, seed=5))
    m.By.assign(np.random.default_rng(1).normal(size=N_ITEMS).astype(np.float32))
    return m


@pytest.fixture
def rec(model):
    return Recommender(model, ItemMap(IDS), item_support=np.arange(N_ITEMS)[::-1] + 1)


def brute_force(model, item_ids, k):
    """The model step by step, the full score vector sorted."""
    index = ItemMap(IDS).index_of(np.asarray(item_ids))
    state = model.initial_state(1)
    for i in index[index >= 0]:
        hidden, state = model.step(tf.constant([i], tf.int32), state)
    scores = model.score_all(hidden).numpy()[0]
    order = np.argsort(-scores, kind="stable")[:k]
    return IDS[order], scores[order]


def test_recommend_matches_the_model(model, rec):
    session = [IDS[3], IDS[17], IDS[3], IDS[40]]
    got = rec.recommend(session, k=10)
    ids, scores = brute_force(model, session, 10)
    np.testing.assert_array_equal(got.item_ids, ids)
    np.testing.assert_allclose(got.scores, scores, rtol=1e-5, atol=1e-6)
    assert got.n_unknown == 0 and len(got) == 10
    frame = got.to_frame()
    assert list(frame.columns) == ["Rank", "ItemId", "Score"] and frame["Rank"].tolist() == list(range(1, 11))
    assert len(rec.recommend(session, k=10_000)) == N_ITEMS  # k capped at the catalogue


def test_unknown_items_are_skipped_with_a_warning(model, rec):
    with pytest.warns(UnknownItemWarning, match="2 item id"):
        got = rec.recommend([5, IDS[3], 6, IDS[17]], k=5)
    want = rec.recommend([IDS[3], IDS[17]], k=5)
    np.testing.assert_array_equal(got.item_ids, want.item_ids)
    assert got.n_unknown == 2 and rec.stats["unknown_items"] == 2


def test_empty_sessions_raise(rec):
    with pytest.raises(EmptySessionError):
        rec.recommend([], k=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownItemWarning)
        with pytest.raises(EmptySessionError, match="1 unknown"):
            rec.recommend([123456], k=5)
    with pytest.raises(ValueError, match="k must be"):
        rec.recommend([IDS[0]], k=0)


def test_popular_items(rec, model):
    pop = rec.popular(3)
    assert pop.item_ids.tolist() == IDS[:3].tolist()  # support decreases with the index in this fixture
    with pytest.raises(ValueError, match="supports"):
        Recommender(model, ItemMap(IDS)).popular(3)


def test_live_sessions_equal_one_shot_recommendations(rec):
    rng = np.random.default_rng(2)
    sessions = {f"s{i}": list(IDS[rng.integers(0, N_ITEMS, 5)]) for i in range(6)}
    order = rng.permutation(np.repeat(list(sessions), 5))  # sessions interleaved at random, clicks in order
    seen: dict = {}
    for sid in order:
        item = sessions[sid][len(seen.get(sid, []))]
        seen.setdefault(sid, []).append(item)
        got = rec.observe(sid, item, k=7)
        want = rec.recommend(seen[sid], k=7)
        np.testing.assert_array_equal(got.item_ids, want.item_ids)
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-6)
    assert rec.n_sessions == 6 and rec.stats["sessions_started"] == 6


def test_observe_many_batches_and_keeps_order_within_a_session(rec):
    got = rec.observe_many(["a", "b", "a", "c", "a"], [IDS[1], IDS[2], IDS[3], IDS[4], IDS[5]], k=4)
    np.testing.assert_array_equal(got[4].item_ids, rec.recommend([IDS[1], IDS[3], IDS[5]], k=4).item_ids)
    np.testing.assert_array_equal(got[2].item_ids, rec.recommend([IDS[1], IDS[3]], k=4).item_ids)
    np.testing.assert_array_equal(got[1].item_ids, rec.recommend([IDS[2]], k=4).item_ids)


def test_lru_eviction_and_new_session_reset(model):
    rec = Recommender(model, ItemMap(IDS), max_sessions=2)
    rec.observe("a", IDS[1])
    rec.observe("b", IDS[2])
    rec.observe("a", IDS[3])  # a is now the most recently used
    rec.observe("c", IDS[4])  # evicts b
    assert "b" not in rec and "a" in rec and "c" in rec and rec.stats["evicted"] == 1
    again = rec.observe("b", IDS[5])  # b comes back: starts from zero
    np.testing.assert_array_equal(again.item_ids, rec.recommend([IDS[5]]).item_ids)
    assert rec.n_sessions == 2 and "a" not in rec  # a was the least recently used this time
    assert rec.end_session("b") and not rec.end_session("b")


def test_observe_unknown_first_click_gives_an_empty_list(rec):
    first = rec.observe("x", 99)
    assert len(first) == 0 and first.n_unknown == 1
    second = rec.observe("x", IDS[8], k=5)
    np.testing.assert_array_equal(second.item_ids, rec.recommend([IDS[8]], k=5).item_ids)
    third = rec.observe("x", 98, k=5)  # unknown later in the session: the state is kept
    np.testing.assert_array_equal(third.item_ids, second.item_ids)
    assert third.n_unknown == 1


def test_current_list_of_a_kept_session_without_a_click(model):
    rec = Recommender(model, ItemMap(IDS), max_sessions=2)
    clicked = rec.observe("a", IDS[1], k=9)
    rec.observe("b", 99)  # unknown first click: kept, nothing to rank from yet
    now = rec.current("a", k=9)
    np.testing.assert_array_equal(now.item_ids, clicked.item_ids)
    np.testing.assert_allclose(now.scores, clicked.scores, rtol=1e-6)
    assert len(rec.current("b")) == 0
    rec.current("a")  # a use: b is now the least recently used
    rec.observe("c", IDS[2])
    assert "b" not in rec and "a" in rec
    with pytest.raises(KeyError):
        rec.current("b")


def test_saved_model_round_trip_equals_the_python_path(model, rec, tmp_path):
    out = save_serving_model(model, ItemMap(IDS), tmp_path / "serving", k=6)
    loaded = tf.saved_model.load(out)
    serve = loaded.signatures["serving_default"]
    init = loaded.signatures["initial_state"]
    sessions = [[IDS[3], IDS[17], 777, IDS[40]], [IDS[9], IDS[9]]]
    state = init(batch_size=tf.constant(2, tf.int32))["state"]
    assert state.shape == (2, 18)
    length = max(map(len, sessions))
    for pos in range(length):
        ids = [s[pos] if pos < len(s) else -1 for s in sessions]  # -1: unknown, keeps the state
        out_ = serve(item_ids=tf.constant(ids, tf.int64), state=state)
        np.testing.assert_array_equal(out_["known"].numpy(), [i in set(IDS.tolist()) for i in ids])
        state = out_["state"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownItemWarning)
        for row, session in enumerate(sessions):
            want = rec.recommend(session, k=6)
            np.testing.assert_array_equal(out_["top_item_ids"].numpy()[row], want.item_ids)
            np.testing.assert_allclose(out_["top_scores"].numpy()[row], want.scores, rtol=1e-5, atol=1e-6)
    # the state handed back equals the Python path's
    py_state, _, _ = rec.state_after(sessions[0])
    np.testing.assert_allclose(state.numpy()[0], py_state, rtol=1e-5, atol=1e-6)


def test_saved_model_of_a_reset_after_stack_equals_the_python_path(tmp_path):
    model = GRU4RecModel(N_ITEMS, Config(layers=(6, 6), gru_variant="reset_after", seed=3))
    rng = np.random.default_rng(4)
    for layer in model.gru_layers:
        layer.bh.assign(rng.normal(0, 0.5, layer.bh.shape).astype(np.float32))
    rec = Recommender(model, ItemMap(IDS))
    loaded = tf.saved_model.load(save_serving_model(model, ItemMap(IDS), tmp_path / "serving", k=5))
    state = loaded.signatures["initial_state"](batch_size=tf.constant(1, tf.int32))["state"]
    session = [IDS[2], IDS[30], IDS[2]]
    for item in session:
        out = loaded.signatures["serving_default"](item_ids=tf.constant([item], tf.int64), state=state)
        state = out["state"]
    want = rec.recommend(session, k=5)
    np.testing.assert_array_equal(out["top_item_ids"].numpy()[0], want.item_ids)
    np.testing.assert_array_equal(want.item_ids, brute_force(model, session, 5)[0])
