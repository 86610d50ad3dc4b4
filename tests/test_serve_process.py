"""``gru4rec serve`` as a background process (gru4rec.serve_process), the load replay (gru4rec.serve_load) and
notebook 09's computations and figures (gru4rec.lessons.serving, gru4rec.plots.serving)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tensorflow")

from gru4rec.lessons import serving as lesson  # noqa: E402
from gru4rec.plots import serving as plots  # noqa: E402
from gru4rec.recommend import Recommender  # noqa: E402
from gru4rec.serve_process import ServerFailed, launch_server, serve_command, served, start_server  # noqa: E402


@pytest.fixture(scope="module")
def offline(run_dir) -> Recommender:
    return Recommender.from_run(run_dir)


def test_serve_command_is_this_python_on_127_0_0_1(tmp_path):
    command = serve_command(tmp_path, 8123, "redis://127.0.0.1:6379/0", ["--session-ttl", "5"])
    assert command[1:4] == ["-m", "gru4rec", "serve"]
    assert command[command.index("--host") + 1] == "127.0.0.1" and command[command.index("--port") + 1] == "8123"
    assert command[-2:] == ["--session-ttl", "5"] and "redis://127.0.0.1:6379/0" in command


def test_a_server_that_cannot_start_raises_with_its_log(tmp_path):
    with pytest.raises(ServerFailed, match="stopped with code 2 before answering: .*no such run folder"):
        start_server(tmp_path / "missing", startup_timeout=120)


@pytest.mark.slow
def test_served_starts_answers_and_stops_the_server(run_dir, offline):
    item = int(offline.item_map.ids[6])
    with served(run_dir, extra=["--max-k", "30"]) as server:
        assert server.alive() and server.call("GET", "/health")[0] == 200
        status, answer = server.click("s", item, k=7)
        assert status == 200
        np.testing.assert_array_equal(answer["items"], offline.recommend([item], k=7).item_ids)
        status, refused = server.click("s", item, k=31)
        assert status == 400 and "from 1 to 30" in refused["error"]
        folder = server.folder
    assert not server.alive() and server.process.returncode in (0, -15) and not folder.exists()


@pytest.mark.slow
def test_two_servers_start_at_once_and_the_load_replay_is_bounded(run_dir, offline, redis_url):
    from gru4rec.serve_load import load_levels

    sessions = [offline.item_map.ids[[i, i + 1, i + 2, i + 3]].tolist() for i in range(0, 40, 4)]
    first = launch_server(run_dir, state_store=redis_url)
    second = launch_server(run_dir, state_store=redis_url)
    try:
        first.wait_ready(), second.wait_ready()
        assert first.click("shared", sessions[0][0])[0] == 200
        status, answer = second.click("shared", sessions[0][1], k=5)  # the other process continues the session
        assert status == 200 and answer["items"] == offline.recommend(sessions[0][:2], k=5).item_ids.tolist()
        levels = load_levels(first.url, sessions, [1, 3], max_events=10, seconds=60, k=5, warm_up=0)
    finally:
        first.stop(), second.stop()
    assert [level["concurrency"] for level in levels] == [1, 3]
    for level in levels:
        assert level["events"] == 10 and level["p99_ms"] >= level["p50_ms"] > 0 and level["mean_batch"] >= 1
        assert level["state_store"] == "redis"


def test_session_items_keeps_known_items_of_long_enough_sessions(tiny):
    _, test = tiny
    sessions = lesson.session_items(test, min_length=3)
    assert sessions and all(len(s) >= 3 for s in sessions)
    assert set(np.concatenate(sessions)) <= set(test.item_map.ids.tolist())


@pytest.mark.slow
def test_latency_by_prefix_times_every_prefix(offline):
    items = offline.item_map.ids[:5].tolist()
    table = lesson.latency_by_prefix(offline, items, repeats=2, k=5)
    assert table["prefix_length"].tolist() == [1, 2, 3, 4, 5]
    assert (table["kept_ms"] > 0).all() and (table["reread_ms"] > 0).all()
    assert offline.n_sessions == 0  # the timed sessions are ended
    with pytest.raises(ValueError, match="at least one item"):
        lesson.latency_by_prefix(offline, [], repeats=1)


@pytest.mark.slow
def test_eviction_demo_evicts_the_least_recently_used(offline):
    ids = offline.item_map.ids[:6].tolist()
    clicks = [("a", ids[0]), ("b", ids[1]), ("a", ids[2]), ("c", ids[3]), ("a", ids[4]), ("b", ids[5])]
    table, demo = lesson.eviction_demo(offline, clicks, max_sessions=2)
    assert table["live"].tolist()[-1] == ["a", "b"] and table["evicted"].tolist() == [0, 0, 0, 1, 1, 2]
    assert table["clicks_kept"].tolist() == [1, 1, 2, 1, 3, 1]  # b was evicted by c, then came back from zero
    np.testing.assert_array_equal(demo.current("b", 5).item_ids, offline.recommend([ids[5]], k=5).item_ids)
    np.testing.assert_array_equal(demo.current("a", 5).item_ids, offline.recommend(ids[0:5:2], k=5).item_ids)


def test_figures_draw_the_tables():
    latency = pd.DataFrame({"prefix_length": [1, 2, 3], "kept_ms": [1.0, 1.1, 1.0], "reread_ms": [1.0, 2.0, 3.1]})
    figure = plots.latency_figure(latency)
    assert [list(trace.y) for trace in figure.data] == [[1.0, 1.1, 1.0], [1.0, 2.0, 3.1]]
    levels = [{"concurrency": c, "events": 10, "events_per_s": 50.0 * c, "p50_ms": 2.0, "p99_ms": 5.0,
               "mean_batch": 1.0} for c in (1, 8)]  # fmt: skip
    table = pd.concat([lesson.load_table(levels, "memory"), lesson.load_table(levels, "redis")])
    load = plots.load_figure(table)
    bars = [trace for trace in load.data if trace.type == "bar"]
    assert [trace.name for trace in bars] == ["memory store", "redis store"] and list(bars[1].y) == [50.0, 400.0]


@pytest.mark.slow
def test_reusable_run_checks_the_folder_and_the_items(run_dir, tiny, tmp_path):
    from gru4rec.session_data import SessionData

    train, _ = tiny
    usable, why = lesson.reusable_run(run_dir, train)
    assert usable and "GRU(32)" in why and "1 epoch(s)" in why
    assert lesson.reusable_run(None, train) == (False, "no run folder to reuse was named")
    assert lesson.reusable_run(tmp_path, train) == (False, f"{tmp_path}: no run folder there")
    frame = pd.DataFrame({"SessionId": [1, 1, 2, 2], "ItemId": [7, 8, 8, 9], "Time": [1.0, 2.0, 3.0, 4.0]})
    usable, why = lesson.reusable_run(run_dir, SessionData.from_frame(frame))
    assert not usable and "trained on other items" in why
    (tmp_path / "config.json").write_text("[1, 2]")
    usable, why = lesson.reusable_run(tmp_path, train)
    assert not usable and "cannot be read back" in why
