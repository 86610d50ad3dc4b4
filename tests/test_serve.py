"""``gru4rec serve``: served lists equal the offline ones, clicks are micro-batched, bad requests get a 4xx, sessions
expire and are evicted; one test starts the real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx2")

from starlette.testclient import TestClient  # noqa: E402

from gru4rec.cli import main  # noqa: E402
from gru4rec.recommend import Recommender, UnknownItemWarning  # noqa: E402
from gru4rec.serve import SessionService, create_app  # noqa: E402
from gru4rec.state_store import MemoryStateStore, RedisStateStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "data" / "tiny"
TRAIN = str(TINY / "rsc15_train_full.txt")
TEST = str(TINY / "rsc15_test.txt")
UNKNOWN = 999_999_999_999  # not an item of the tiny catalogue


@pytest.fixture(scope="module")
def offline(run_dir) -> Recommender:
    return Recommender.from_run(run_dir)


@pytest.fixture(scope="module")
def test_sessions(offline):
    """The tiny test sessions as lists of original item ids (known items only), with the indexed SessionData."""
    from gru4rec.io import read_sessions
    from gru4rec.session_data import SessionData

    data = SessionData.from_frame(read_sessions(TEST), offline.item_map)
    sessions = [offline.item_map.ids[data.items[a:b]].tolist() for a, b in zip(data.offsets[:-1], data.offsets[1:])]
    return data, sessions


def make_client(run_dir, store=None, **options) -> tuple[TestClient, SessionService]:
    """A test client of the app on the run's model; ``store`` default an in-process LRU of 1000 sessions."""
    store = MemoryStateStore(max_sessions=1000) if store is None else store
    service = SessionService(Recommender.from_run(run_dir, store=store), **options)
    return TestClient(create_app(service)), service


def offline_list(offline: Recommender, prefix, k: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownItemWarning)
        return offline.recommend(prefix, k=k)


def post(client: TestClient, session: str, item, k: int = 20):
    return client.post(f"/sessions/{session}/events", json={"item_id": item, "k": k})


def assert_same(served: dict, want) -> None:
    assert served["items"] == want.item_ids.tolist()
    np.testing.assert_allclose(served["scores"], want.scores, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_served_lists_equal_recommend_and_the_evaluator(run_dir, offline, test_sessions):
    from gru4rec.evaluate import GRU4RecScorer, evaluate

    data, sessions = test_sessions
    n_items = offline.n_items
    chosen = [s for s in range(len(sessions)) if len(sessions[s]) >= 3][:6]
    result = evaluate(GRU4RecScorer(offline.model, item_map=offline.item_map), data, cutoffs=(20,),
                      tie_mode="standard", return_ranks=True)  # fmt: skip
    client, _ = make_client(run_dir)
    compared = 0
    with client:
        for s in chosen:
            items = sessions[s]
            evaluator_ranks = result["ranks"][result["session_index"] == s]
            assert len(evaluator_ranks) == len(items) - 1
            for p, item in enumerate(items[:-1]):
                served = post(client, f"s{s}", item, k=n_items)
                assert served.status_code == 200, served.text
                body = served.json()
                assert_same(body, offline_list(offline, items[: p + 1], n_items))
                assert body["items"].index(items[p + 1]) + 1 == evaluator_ranks[p]
                compared += 1
            again = client.get(f"/sessions/s{s}/recommendations", params={"k": 7})
            assert again.status_code == 200
            assert_same(again.json(), offline_list(offline, items[:-1], 7))
    assert compared >= 10


@pytest.mark.slow
def test_unknown_items_are_refused_and_skipped_as_offline(run_dir, offline):
    known = offline.item_map.ids[:3].tolist()
    client, service = make_client(run_dir)
    with client:
        first = post(client, "u", UNKNOWN)
        assert first.status_code == 422 and "not in the model's catalogue" in first.json()["error"]
        assert client.get("/sessions/u/recommendations").status_code == 404  # an unknown click starts nothing
        assert_same(post(client, "u", known[0]).json(), offline_list(offline, [UNKNOWN, known[0]], 20))
        assert post(client, "u", UNKNOWN, k=5).status_code == 422
        after = post(client, "u", known[1], k=5).json()
        assert_same(after, offline_list(offline, [known[0], UNKNOWN, known[1]], 5))
        assert_same(after, offline_list(offline, known[:2], 5))
        metrics = client.get("/metrics").json()
    assert metrics["unknown_items"] == 2 and metrics["events"] == 2 and metrics["errors_4xx"] == 3


@pytest.mark.slow
def test_an_evicted_session_starts_again_from_zero(run_dir, offline):
    ids = offline.item_map.ids[:6].tolist()
    client, service = make_client(run_dir, store=MemoryStateStore(max_sessions=2))
    with client:
        post(client, "a", ids[0])
        post(client, "a", ids[1])
        post(client, "b", ids[2])
        post(client, "c", ids[3])  # a is the least recently used: evicted
        gone = client.get("/sessions/a/recommendations")
        assert gone.status_code == 404 and "evicted" in gone.json()["error"]
        assert client.get("/sessions/b/recommendations").status_code == 200
        back = post(client, "a", ids[4], k=10).json()  # b was used last: c is evicted now
        assert_same(back, offline_list(offline, [ids[4]], 10))
        assert client.get("/sessions/c/recommendations").status_code == 404
        metrics = client.get("/metrics").json()
    assert metrics["evictions"] == 2 and metrics["live_sessions"] == 2 and metrics["max_sessions"] == 2


@pytest.mark.slow
def test_concurrent_clicks_go_in_one_observe_many_call(run_dir, offline):
    ids = offline.item_map.ids
    recommender = Recommender.from_run(run_dir)
    calls = []
    original = recommender.observe_many

    def counting(session_ids, item_ids, k=20):
        calls.append(len(session_ids))
        return original(session_ids, item_ids, k)

    recommender.observe_many = counting
    service = SessionService(recommender, batch_wait_ms=50)
    clicks = [(f"c{i % 12}", int(ids[(7 * i) % len(ids)]), 5 + i % 3) for i in range(16)]  # 4 sessions click twice

    async def scenario():
        await service.start()
        try:
            together = await asyncio.gather(*(service.click(s, item, k) for s, item, k in clicks))
            alone = [await service.click("solo", int(ids[1]), 4), await service.click("solo", int(ids[2]), 4)]
        finally:
            await service.stop()
        return together, alone

    together, alone = asyncio.run(scenario())
    assert calls == [16, 1, 1]  # one call for the 16 concurrent clicks; the awaited ones one by one
    assert service.counters.batches == 3 and service.counters.batched_events == 18
    for n, (session, _, k) in enumerate(clicks):
        prefix = [item for s, item, _ in clicks[: n + 1] if s == session]
        got = together[n]
        assert len(got) == k
        assert_same({"items": got.item_ids.tolist(), "scores": got.scores.tolist()}, offline_list(offline, prefix, k))
    np.testing.assert_array_equal(alone[1].item_ids, offline_list(offline, [int(ids[1]), int(ids[2])], 4).item_ids)


@pytest.mark.slow
def test_bad_requests_get_a_clear_4xx_and_the_server_goes_on(run_dir, offline):
    item = int(offline.item_map.ids[0])
    client, _ = make_client(run_dir, max_k=50)
    cases = [
        ("GET", "/sessions/nobody/recommendations", None, None, 404, "not live"),
        ("DELETE", "/sessions/nobody", None, None, 404, "not live"),
        ("POST", "/sessions/x/events", b"{not json", None, 400, "not valid JSON"),
        ("POST", "/sessions/x/events", b"[1, 2]", None, 400, "JSON object"),
        ("POST", "/sessions/x/events", b'{"k": 3}', None, 400, "no item_id"),
        ("POST", "/sessions/x/events", b'{"item_id": 1, "kk": 3}', None, 400, "'kk'"),
        ("POST", "/sessions/x/events", b'{"item_id": "abc"}', None, 400, "item_id: expected an integer"),
        ("POST", "/sessions/x/events", b'{"item_id": 1.5}', None, 400, "item_id: expected an integer"),
        ("POST", "/sessions/x/events", b'{"item_id": true}', None, 400, "item_id: expected an integer"),
        ("POST", "/sessions/x/events", b'{"item_id": 99999999999999999999999}', None, 400, "64-bit"),
        ("POST", "/sessions/x/events", f'{{"item_id": {item}, "k": 0}}'.encode(), None, 400, "k: expected"),
        ("POST", "/sessions/x/events", f'{{"item_id": {item}, "k": -3}}'.encode(), None, 400, "from 1 to 50"),
        ("POST", "/sessions/x/events", f'{{"item_id": {item}, "k": 51}}'.encode(), None, 400, "from 1 to 50"),
        ("POST", "/sessions/x/events", f'{{"item_id": {item}, "k": 10000000000}}'.encode(), None, 400, "from 1"),
        ("POST", "/sessions/x/events", f'{{"item_id": {item}, "k": "many"}}'.encode(), None, 400, "k: expected"),
        ("POST", "/sessions/x/events", b"\xff\xfe", None, 400, "not valid JSON"),
        ("POST", "/sessions/x/events", b" " * 5000, None, 413, "at most 4096"),
        ("POST", "/sessions/a%20b/events", f'{{"item_id": {item}}}'.encode(), None, 400, "session id"),
        ("GET", "/sessions/x/recommendations", None, {"k": "ten"}, 400, "k: expected"),
        ("GET", "/sessions/x/recommendations", None, {"top": "3"}, 400, "'top'"),
        ("GET", "/nowhere", None, None, 404, "no such endpoint"),
        ("PUT", "/sessions/x/events", None, None, 405, "method not allowed"),
    ]
    with client:
        for method, path, content, params, status, words in cases:
            response = client.request(method, path, content=content, params=params)
            assert response.status_code == status, (method, path, content, response.text)
            assert words in response.json()["error"], (path, content, response.json())
        assert client.get("/sessions/x/recommendations").status_code == 404  # no bad click started a session
        ok = post(client, "x", item, k=1000)
        assert ok.status_code == 400
        ok = post(client, "x", item, k=50)
        assert ok.status_code == 200 and len(ok.json()["items"]) == 50
        assert client.delete("/sessions/x").json() == {"ended": "x"}
        assert client.get("/health").json()["status"] == "ok"
        metrics = client.get("/metrics").json()
    routed = [case for case in cases if case[1] != "/nowhere" and case[0] != "PUT"]  # the 404/405 of no endpoint
    assert metrics["errors_5xx"] == 0 and metrics["errors_4xx"] == len(routed) + 2
    assert metrics["latency_ms_p50"] > 0 and metrics["latency_ms_p99"] >= metrics["latency_ms_p50"]


@pytest.mark.slow
def test_a_failing_model_call_is_a_500_for_its_requests_only(run_dir, offline):
    item = int(offline.item_map.ids[3])
    client, service = make_client(run_dir)
    original = service.recommender.observe_many

    def failing_once(session_ids, item_ids, k=20):
        service.recommender.observe_many = original
        raise RuntimeError("the model failed")

    service.recommender.observe_many = failing_once
    with client:
        failed = post(client, "f", item)
        assert failed.status_code == 500 and "RuntimeError: the model failed" in failed.json()["error"]
        assert_same(post(client, "f", item, k=6).json(), offline_list(offline, [item], 6))
        metrics = client.get("/metrics").json()
    assert metrics["errors_5xx"] == 1 and metrics["events"] == 1


@pytest.mark.slow
def test_idle_sessions_expire(run_dir, offline):
    ids = offline.item_map.ids[:4].tolist()
    now = [1000.0]
    client, service = make_client(run_dir, store=MemoryStateStore(ttl=60, clock=lambda: now[0]))
    with client:
        post(client, "old", ids[0])
        post(client, "kept", ids[1])
        now[0] += 45
        assert client.get("/sessions/kept/recommendations").status_code == 200  # a use: idle from now on
        now[0] += 30  # old: 75 s idle, kept: 30 s
        assert client.get("/sessions/old/recommendations").status_code == 404
        fresh = post(client, "old", ids[2], k=5).json()
        assert_same(fresh, offline_list(offline, [ids[2]], 5))  # started again from zero
        now[0] += 61
        metrics = client.get("/metrics").json()  # the sweep forgets both without a request to them
        assert metrics["live_sessions"] == 0 and metrics["expired"] == 3
        assert client.get("/sessions/kept/recommendations").status_code == 404


def test_serve_refuses_bad_arguments_with_exit_2(tmp_path, capsys):
    assert main(["serve", "--model", str(tmp_path / "missing")]) == 2
    assert main(["serve", "--model", str(tmp_path), "--port", "0"]) == 2
    assert main(["serve", "--model", str(tmp_path), "--max-sessions", "0"]) == 2
    assert main(["serve", "--model", str(tmp_path), "--batch-wait-ms", "-1"]) == 2
    assert main(["serve", "--model", str(tmp_path), "--session-ttl", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 5 and "no such run folder" in err[0] and "--port 0" in err[1] and "--max-sessions" in err[2]
    assert "--session-ttl 0.0: expected a number of seconds > 0" in err[4]


@pytest.mark.parametrize(
    "store, words",
    [
        ("redis://127.0.0.1:notaport/0", "expected redis://HOST:PORT/DB"),
        ("redis://127.0.0.1:6379/db0", "is not a number"),
        ("memcached://127.0.0.1:11211", "scheme must be redis://"),
        ("disk", "expected memory or redis://HOST:PORT/DB"),
    ],
)
def test_serve_refuses_a_malformed_state_store_with_exit_2(run_dir, capsys, store, words):
    assert main(["serve", "--model", str(run_dir), "--port", str(free_port()), "--state-store", store]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("gru4rec serve: error: --state-store") and words in err[0], err


def test_serve_refuses_an_unreachable_redis_with_exit_2(run_dir, capsys):
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    assert main(["serve", "--model", str(run_dir), "--port", str(free_port()), "--state-store", url]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and f"--state-store {url}: " in err[0] and "Connection" in err[0], err


def test_serve_refuses_a_port_in_use_with_exit_2(run_dir, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--model", str(run_dir), "--port", str(port)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and f"--port {port}: cannot listen there" in err[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_gru4rec_serve_answers_on_127_0_0_1(run_dir, offline):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([sys.executable, "-m", "gru4rec", "serve", "--model", str(run_dir), "--port", str(port)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read().decode()
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not answer /health within 120 s"
            time.sleep(0.3)
        items = offline.item_map.ids[[5, 9]].tolist()
        httpx.post(f"{base}/sessions/live/events", json={"item_id": items[0]}, timeout=10)
        served = httpx.post(f"{base}/sessions/live/events", json={"item_id": items[1], "k": 8}, timeout=10)
        assert served.status_code == 200
        assert_same(served.json(), offline_list(offline, items, 8))
        assert httpx.get(f"{base}/metrics", timeout=10).json()["events"] == 2
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.returncode in (0, -15)


# ----------------------------------------------------------------------------------------------------------------
# the Redis state store (a real server: the redis_url fixture)
@pytest.mark.slow
def test_served_equals_offline_with_the_redis_store(run_dir, offline, test_sessions, redis_url):
    _, sessions = test_sessions
    chosen = [items for items in sessions if len(items) >= 3][:4]
    client, _ = make_client(run_dir, store=RedisStateStore(redis_url, ttl=600), batch_wait_ms=20)
    with client:
        for s, items in enumerate(chosen):
            for p, item in enumerate(items[:-1]):
                served = post(client, f"r{s}", item, k=15)
                assert served.status_code == 200, served.text
                assert_same(served.json(), offline_list(offline, items[: p + 1], 15))
            assert_same(client.get(f"/sessions/r{s}/recommendations", params={"k": 4}).json(),
                        offline_list(offline, items[:-1], 4))  # fmt: skip
        assert post(client, "r0", UNKNOWN).status_code == 422  # refused, the state is unchanged
        assert_same(client.get("/sessions/r0/recommendations").json(), offline_list(offline, chosen[0][:-1], 20))
        metrics = client.get("/metrics").json()
        assert client.delete("/sessions/r1").status_code == 200
        assert client.get("/sessions/r1/recommendations").status_code == 404
    assert metrics["state_store"] == "redis" and metrics["live_sessions"] == len(chosen)
    assert metrics["max_sessions"] is None and metrics["errors_5xx"] == 0


@pytest.mark.slow
def test_a_session_survives_a_restart_of_the_app_with_the_redis_store(run_dir, offline, redis_url):
    items = offline.item_map.ids[[4, 11, 2, 30, 7]].tolist()
    first, _ = make_client(run_dir, store=RedisStateStore(redis_url, ttl=600))
    with first:
        for item in items[:3]:
            assert post(first, "kept", item).status_code == 200
    # a new Recommender, service and app (another process would be the same): the state comes from Redis
    second, _ = make_client(run_dir, store=RedisStateStore(redis_url, ttl=600))
    with second:
        assert_same(second.get("/sessions/kept/recommendations", params={"k": 9}).json(),
                    offline_list(offline, items[:3], 9))  # fmt: skip
        for item in items[3:]:
            served = post(second, "kept", item, k=12)
        assert_same(served.json(), offline_list(offline, items, 12))
    # the in-process store forgets it with the process
    memory, _ = make_client(run_dir)
    with memory:
        assert memory.get("/sessions/kept/recommendations").status_code == 404


@pytest.mark.slow
def test_redis_sessions_expire_after_the_idle_time_refreshed_by_each_use(run_dir, offline, redis_url):
    ids = offline.item_map.ids[:3].tolist()
    client, _ = make_client(run_dir, store=RedisStateStore(redis_url, ttl=1.5))
    with client:
        assert post(client, "idle", ids[0]).status_code == 200
        time.sleep(0.9)
        assert client.get("/sessions/idle/recommendations").status_code == 200  # a use: 1.5 s again
        time.sleep(0.9)  # 1.8 s after the click, 0.9 s after the use
        assert client.get("/sessions/idle/recommendations").status_code == 200
        time.sleep(2.0)
        gone = client.get("/sessions/idle/recommendations")
        assert gone.status_code == 404 and "expired" in gone.json()["error"]
        assert_same(post(client, "idle", ids[1], k=5).json(), offline_list(offline, [ids[1]], 5))  # from zero


@pytest.mark.slow
def test_a_lost_redis_is_a_503_and_the_server_goes_on(run_dir, offline):
    from gru4rec.redis_process import local_redis

    item = int(offline.item_map.ids[2])
    with local_redis() as url:
        client, _ = make_client(run_dir, store=RedisStateStore(url, ttl=60, connect_timeout=2))
        client.__enter__()
        assert post(client, "s", item).status_code == 200
    try:  # the Redis server is stopped now
        lost = post(client, "s", item)
        assert lost.status_code == 503 and lost.json()["error"].startswith(f"state store unavailable: {url}")
        assert client.get("/sessions/s/recommendations").status_code == 503
        assert client.get("/health").status_code == 200
    finally:
        client.__exit__(None, None, None)


@pytest.mark.slow
def test_gru4rec_serve_processes_share_sessions_through_redis(run_dir, offline, redis_url):
    from gru4rec.serve_process import served

    items = offline.item_map.ids[[3, 8, 21, 5]].tolist()
    with served(run_dir, state_store=redis_url, extra=["--session-ttl", "600"]) as server:
        for item in items[:2]:
            assert httpx.post(f"{server.url}/sessions/web-1/events", json={"item_id": item}, timeout=30).is_success
        assert "session states redis://127.0.0.1:" in server.log()
    assert not server.alive() and server.process.returncode in (0, -15)
    with served(run_dir, state_store=redis_url, extra=["--session-ttl", "600"]) as restarted:
        for item in items[2:]:
            answer = httpx.post(f"{restarted.url}/sessions/web-1/events", json={"item_id": item, "k": 10}, timeout=30)
        assert answer.status_code == 200
        assert_same(answer.json(), offline_list(offline, items, 10))
