"""The session-state stores: the in-process LRU and Redis (a real server started by the ``redis_url`` fixture)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from gru4rec.state_store import (
    MemoryStateStore,
    RedisStateStore,
    SessionState,
    StateStoreError,
    open_state_store,
    parse_redis_url,
)


def record(value: float, n_known: int = 1, size: int = 6) -> SessionState:
    return SessionState(np.full(size, value, dtype=np.float32), n_known)


def bound(store, size: int = 6, fingerprint: str = "model-a"):
    store.bind(size, fingerprint)
    return store


# ----------------------------------------------------------------------------------------------------------------
# in-process
def test_memory_store_evicts_the_least_recently_used():
    store = bound(MemoryStateStore(max_sessions=2))
    assert store.save_many(["a", "b"], [record(1), record(2)]) == 0
    store.load_many(["a"])  # a use: b is now the least recently used
    assert store.save_many(["c"], [record(3)]) == 1
    assert "b" not in store and "a" in store and "c" in store
    assert store.load_many(["b", "a"])[0] is None
    np.testing.assert_array_equal(store.load_many(["a"])[0].state, np.full(6, 1, np.float32))
    assert store.counters() == {"evictions": 1, "expired": 0} and store.sweep() == 2


def test_memory_store_expires_an_idle_session_on_access_and_on_sweep():
    now = [100.0]
    store = bound(MemoryStateStore(max_sessions=10, ttl=60, clock=lambda: now[0]))
    store.save_many(["old", "kept"], [record(1), record(2)])
    now[0] += 45
    assert store.load_many(["kept"])[0] is not None  # a use resets its idle time
    now[0] += 30  # old: 75 s idle, kept: 30 s
    assert "old" not in store and store.load_many(["old"])[0] is None
    assert store.counters()["expired"] == 1 and store.sweep() == 1
    now[0] += 61
    assert store.sweep() == 0 and store.counters()["expired"] == 2
    assert not store.delete("kept")


def test_a_store_serves_one_model():
    store = bound(MemoryStateStore())
    store.bind(6, "model-a")  # the same model again is fine
    with pytest.raises(ValueError, match="another model"):
        store.bind(6, "model-b")


# ----------------------------------------------------------------------------------------------------------------
# Redis
@pytest.mark.parametrize(
    "url, words",
    [
        ("http://127.0.0.1:6379/0", "scheme must be redis://"),
        ("redis://127.0.0.1:port/0", "expected redis://HOST:PORT/DB"),
        ("redis://127.0.0.1:99999/0", "expected redis://HOST:PORT/DB"),
        ("redis:///0", "no host"),
        ("redis://127.0.0.1:6379/zero", "database 'zero' is not a number"),
        ("redis://user:pw@127.0.0.1:6379/0", "not supported"),
    ],
)
def test_a_malformed_redis_url_is_refused_with_what_was_expected(url, words):
    with pytest.raises(ValueError, match=words) as refused:
        parse_redis_url(url)
    assert "\n" not in str(refused.value) and url in str(refused.value)


def test_redis_url_defaults():
    assert parse_redis_url("redis://localhost").url == "redis://localhost:6379/0"
    assert parse_redis_url("redis://127.0.0.1:7000/3").db == 3
    with pytest.raises(ValueError, match="expected memory or redis://"):
        open_state_store("mongodb", ttl=10)


def test_an_unreachable_redis_is_one_line():
    from gru4rec.redis_process import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with pytest.raises(StateStoreError) as failed:
        RedisStateStore(url, ttl=10, connect_timeout=2)
    assert str(failed.value).startswith(url) and "\n" not in str(failed.value)


def test_redis_store_round_trip_and_a_model_sees_only_its_own_states(redis_url):
    store = bound(RedisStateStore(redis_url, ttl=30))
    other = bound(RedisStateStore(redis_url, ttl=30), fingerprint="model-b")
    state = np.linspace(-1, 1, 6).astype(np.float32)
    assert store.save_many(["s1", "s2"], [SessionState(state, 3), record(7, 0)]) == 0
    got = store.load_many(["s1", "nobody", "s2"])
    np.testing.assert_array_equal(got[0].state, state)
    assert got[0].state.dtype == np.float32 and got[0].n_known == 3
    assert got[1] is None and got[2].n_known == 0
    assert other.load_many(["s1"]) == [None] and "s1" not in other and other.sweep() == 0
    assert store.sweep() == 2 and "s1" in store
    assert store.delete("s1") and not store.delete("s1") and store.sweep() == 1
    store.close()
    other.close()


def test_redis_store_refuses_a_record_of_another_size(redis_url):
    small = bound(RedisStateStore(redis_url, ttl=30), size=4, fingerprint="shared")
    small.save_many(["x"], [record(1, size=4)])
    large = RedisStateStore(redis_url, ttl=30)
    large.state_size, large.fingerprint = 6, "shared"  # a store bound without the model's fingerprint check
    with pytest.raises(StateStoreError, match="not a state of this model"):
        large.load_many(["x"])


def test_redis_store_refreshes_the_ttl_at_each_use_and_redis_expires_idle_keys(redis_url):
    import redis

    store = bound(RedisStateStore(redis_url, ttl=1.5), fingerprint="ttl")
    client = redis.Redis.from_url(redis_url)
    key = "gru4rec:ttl:s"
    store.save_many(["s"], [record(1)])
    assert 1000 < client.pttl(key) <= 1500
    time.sleep(0.8)
    assert client.pttl(key) <= 800
    assert store.load_many(["s"])[0] is not None  # a use: the full idle time again
    assert client.pttl(key) > 1000
    time.sleep(1.8)
    assert store.load_many(["s"]) == [None] and "s" not in store
    assert store.counters()["expired"] >= 1


def test_local_redis_says_when_there_is_no_program(monkeypatch, tmp_path):
    from gru4rec.redis_process import RedisUnavailable, find_redis_server, local_redis

    monkeypatch.setenv("GRU4REC_REDIS_SERVER", str(tmp_path / "no-such-redis-server"))
    assert find_redis_server() is None
    with pytest.raises(RedisUnavailable, match="no redis-server program"):
        with local_redis():
            pass


def test_local_redis_leaves_nothing_behind(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    config = client.config_get("*")
    assert config["save"] == "" and config["appendonly"] == "no" and "gru4rec-redis-" in config["dir"]
