"""Load on ``gru4rec serve``: test sessions replayed as concurrent clients against the server on 127.0.0.1.

    python benchmarks/serve_load.py                                # small's test sessions, untrained GRU(100)
    python benchmarks/serve_load.py --model RUN_DIR --test PATH    # a trained run (served by `gru4rec serve`)
    python benchmarks/serve_load.py --concurrency 1 8 64 --events 2000 --seconds 60 --stores memory redis
    python benchmarks/serve_load.py --model RUN_DIR --test PATH --json out.json    # the figures as JSON too

Each client replays one test session click by click (the next click is sent when the previous answer arrived) and
takes the next session when its own ends; ``--concurrency`` clients run at once (``gru4rec.serve_load``). Per level:
the client-side latency of each ``POST /sessions/{id}/events`` (p50, p99, ms) and the events/s over the level's wall
time, bounded by ``--events`` and ``--seconds``. The server is a separate process (``gru4rec serve`` with
``--model``; without it an untrained GRU4Rec of ``--layers`` units over the preset's items, since speed does not
depend on the weights) with ``--batch-wait-ms``, once per state store of ``--stores``: ``memory`` (in the server
process) and ``redis`` (a Redis server started for the run on 127.0.0.1, ``gru4rec.redis_process``).

Beside it, in this process and without HTTP, the cost of one click: advancing the kept state
(``Recommender.observe``) against re-reading the whole prefix at every click (``Recommender.recommend`` on the
prefix, what a model without a kept state does), over the same sessions, with the mean prefix length.
The first line printed names the machine (``benchmarks/machine.py``); on a shared machine the figures move with
the other processes' load (printed too).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import describe, machine_line  # noqa: E402

UNTRAINED_SERVER = """
import sys, uvicorn
from gru4rec.config import Config
from gru4rec.model import GRU4RecModel
from gru4rec.recommend import Recommender
from gru4rec.serve import SessionService, create_app
from gru4rec.session_data import ItemMap
from gru4rec.state_store import open_state_store
import numpy as np
ids = np.load(sys.argv[1])
model = GRU4RecModel(len(ids), Config.preset("official", layers=(int(sys.argv[3]),)))
store = open_state_store(sys.argv[5], ttl=1800)
service = SessionService(Recommender(model, ItemMap(ids), store=store), batch_wait_ms=float(sys.argv[4]))
uvicorn.run(create_app(service), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def load_sessions(args) -> tuple[list[list[int]], np.ndarray]:
    """Test sessions (original item ids, known items only) and the training item ids."""
    from gru4rec.io import read_sessions
    from gru4rec.session_data import ItemMap, SessionData

    if args.model:
        from gru4rec.runs import load_run

        item_map = load_run(args.model).item_map
        test_path = args.test
    else:
        from gru4rec.datasets import ensure_preset

        files = ensure_preset(args.preset, progress=None)
        item_map = ItemMap.from_ids(read_sessions(files.train_full)["ItemId"].to_numpy())
        test_path = args.test or files.test
    data = SessionData.from_frame(read_sessions(test_path), item_map)
    sessions = [item_map.ids[data.items[a:b]].tolist() for a, b in zip(data.offsets[:-1], data.offsets[1:])]
    return sessions, item_map.ids


def start_server(args, ids: np.ndarray, port: int, scratch: Path, store: str) -> subprocess.Popen:
    if args.model:
        from gru4rec.serve_process import serve_command

        command = serve_command(args.model, port, store, ["--batch-wait-ms", str(args.batch_wait_ms)])
    else:
        np.save(scratch / "item_ids.npy", ids)
        command = [sys.executable, "-c", UNTRAINED_SERVER, str(scratch / "item_ids.npy"), str(port),
                   str(args.layers), str(args.batch_wait_ms), store]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_health(httpx, base: str, server: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server stopped: {server.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the server did not answer /health within {seconds:.0f} s")


def run_store(args, httpx, ids: np.ndarray, sessions: list[list[int]], store: str, label: str) -> list[dict]:
    """Every level of ``--concurrency`` against one server process on ``store``."""
    import tempfile

    from gru4rec.serve_load import load_levels

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as scratch:
        server = start_server(args, ids, port, Path(scratch), store)
        try:
            wait_for_health(httpx, base, server)
            levels = load_levels(base, sessions, args.concurrency, args.events, args.seconds, k=args.k, tag=label,
                                 warm_up=200)  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=60)
    for level in levels:
        level["store"] = label
        level["load_average"] = os.getloadavg()[0]
        print(f"{label:>8} {level['concurrency']:>20} {level['events']:>7} {level['events_per_s']:>9.0f} "
              f"{level['p50_ms']:>8.2f} {level['p99_ms']:>8.2f} {level['mean_batch']:>10.1f}", flush=True)  # fmt: skip
    return levels


PREFIX_BUCKETS = ((1, 1), (2, 4), (5, 9), (10, 10**9))


def state_vs_prefix(args, ids: np.ndarray, sessions: list[list[int]]) -> dict:
    """Per click, in this process: ``observe`` (kept state) against ``recommend`` on the whole prefix."""
    from gru4rec.config import Config
    from gru4rec.model import GRU4RecModel
    from gru4rec.recommend import Recommender
    from gru4rec.session_data import ItemMap

    if args.model:
        rec = Recommender.from_run(args.model)
    else:
        rec = Recommender(GRU4RecModel(len(ids), Config.preset("official", layers=(args.layers,))), ItemMap(ids))
    rec.recommend(sessions[0][:1], k=args.k)
    rec.observe("warm-up", sessions[0][0], k=args.k)
    kept, reread, lengths = [], [], []
    for s, items in enumerate(sessions):
        for p, item in enumerate(items[:-1]):
            if len(kept) >= args.prefix_events:
                break
            start = time.perf_counter()
            rec.observe(s, item, k=args.k)
            kept.append(time.perf_counter() - start)
            start = time.perf_counter()
            rec.recommend(items[: p + 1], k=args.k)
            reread.append(time.perf_counter() - start)
            lengths.append(p + 1)

    def summary(seconds):
        ms = 1000.0 * np.asarray(seconds)
        return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                "events_per_s": len(ms) / float(np.sum(seconds))}  # fmt: skip

    lengths_arr, kept_ms, reread_ms = np.asarray(lengths), 1000.0 * np.asarray(kept), 1000.0 * np.asarray(reread)
    by_length = []
    for low, high in PREFIX_BUCKETS:
        rows = (lengths_arr >= low) & (lengths_arr <= high)
        if rows.any():
            by_length.append({"prefix": f"{low}-{high}" if high < 10**9 else f"{low}+", "events": int(rows.sum()),
                              "kept_p50_ms": float(np.percentile(kept_ms[rows], 50)),
                              "reread_p50_ms": float(np.percentile(reread_ms[rows], 50))})  # fmt: skip
    return {"events": len(kept), "state_size": rec.state_size, "mean_prefix_length": float(np.mean(lengths)),
            "max_prefix_length": int(max(lengths)), "kept_state": summary(kept), "reread_prefix": summary(reread),
            "by_prefix_length": by_length}  # fmt: skip


def store_cost(n_clicks: int, state_size: int) -> dict:
    """Per click, in this process: the state store's own work (``load_many`` + ``save_many`` of one session's record),
    in-process LRU against Redis on 127.0.0.1 (p50 / p99 ms over ``n_clicks``, 100 sessions in turn)."""
    from gru4rec.redis_process import local_redis
    from gru4rec.state_store import MemoryStateStore, RedisStateStore, SessionState

    record = SessionState(np.ones(state_size, np.float32), 1)

    def timed(store) -> dict:
        store.bind(state_size, "store-cost")
        seconds = []
        for n in range(n_clicks):
            session = f"s{n % 100}"
            start = time.perf_counter()
            store.load_many([session])
            store.save_many([session], [record])
            seconds.append(time.perf_counter() - start)
        ms = 1000.0 * np.asarray(seconds[n_clicks // 10:])  # the first tenth warms up
        return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}

    with local_redis() as url:
        redis_store = RedisStateStore(url, ttl=600)
        try:
            return {"memory": timed(MemoryStateStore(ttl=600)), "redis": timed(redis_store)}
        finally:
            redis_store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", metavar="RUN_DIR", help="a trained run (default: an untrained GRU4Rec)")
    parser.add_argument("--test", metavar="PATH", help="test sessions (default: the preset's test split)")
    parser.add_argument("--preset", default="small", help="the data set without --model (default small)")
    parser.add_argument("--layers", type=int, default=100, help="GRU units of the untrained model (default 100)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64], metavar="N")
    parser.add_argument("--events", type=int, default=2000, help="most clicks per level (default 2000)")
    parser.add_argument("--seconds", type=float, default=60.0, help="most seconds per level (default 60)")
    parser.add_argument("--batch-wait-ms", type=float, default=2.0, help="the server's micro-batching wait")
    parser.add_argument("--stores", nargs="*", choices=["memory", "redis"], default=["memory", "redis"],
                        help="state stores to load, one server process each (default: memory redis; none: skip)")
    parser.add_argument("--store-clicks", type=int, default=2000,
                        help="clicks timed for the stores' own cost, read and write of a record (default 2000)")
    parser.add_argument("-k", type=int, default=20, help="list length asked for (default 20)")
    parser.add_argument(
        "--prefix-events",
        type=int,
        default=500,
        help="clicks timed for the kept state against re-reading the prefix (default 500)",
    )
    parser.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    args = parser.parse_args()
    if args.model and not args.test:
        parser.error("--model needs --test (the test sessions to replay)")
    import httpx2 as httpx

    info = describe()
    print(machine_line(info), flush=True)
    sessions, ids = load_sessions(args)
    rng = np.random.default_rng(0)
    sessions = [sessions[i] for i in rng.permutation(len(sessions)) if len(sessions[i]) >= 2]
    print(f"{len(sessions)} test sessions, {len(ids)} items, model: {args.model or f'untrained GRU({args.layers})'}, "
          f"k={args.k}, batch wait {args.batch_wait_ms} ms", flush=True)  # fmt: skip

    levels = []
    print(f"{'store':>8} {'concurrent sessions':>20} {'events':>7} {'events/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'mean batch':>10}", flush=True)  # fmt: skip
    for store in args.stores:
        if store == "redis":
            from gru4rec.redis_process import local_redis

            with local_redis() as url:
                levels += run_store(args, httpx, ids, sessions, url, "redis")
        else:
            levels += run_store(args, httpx, ids, sessions, "memory", "memory")
    local = state_vs_prefix(args, ids, sessions)
    print(f"in this process, per click over {local['events']} clicks (mean prefix {local['mean_prefix_length']:.1f}, "
          f"longest {local['max_prefix_length']}):")  # fmt: skip
    for name, words in (("kept_state", "advance the kept state (observe)"),
                        ("reread_prefix", "re-read the whole prefix (recommend)")):  # fmt: skip
        row = local[name]
        print(f"  {words:<40} p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms, {row['events_per_s']:.0f}/s")
    print("  p50 ms by prefix length: " + ", ".join(
        f"{b['prefix']} ({b['events']} clicks): {b['kept_p50_ms']:.2f} kept / {b['reread_p50_ms']:.2f} re-read"
        for b in local["by_prefix_length"]))  # fmt: skip
    stores = store_cost(args.store_clicks, int(local["state_size"]))
    print("the state store's own work per click (read and write one record): " + ", ".join(
        f"{name} p50 {row['p50_ms']:.3f} ms, p99 {row['p99_ms']:.3f} ms" for name, row in stores.items()))  # fmt: skip
    print(f"load average now {os.getloadavg()[0]:.2f}")
    if args.json:
        result = {"machine": info, "settings": vars(args), "levels": levels, "in_process": local,
                  "store_cost": stores}  # fmt: skip
        from gru4rec.io import atomic_write

        with atomic_write(args.json) as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
