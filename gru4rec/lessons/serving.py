"""What notebook 09 (serving live sessions) computes: a session sent click by click to a running ``gru4rec serve``
and compared with the offline list, the cost of a click with a kept state against re-reading the prefix, and what
the in-process store does when it is full."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from gru4rec.recommend import Recommender, UnknownItemWarning
from gru4rec.session_data import SessionData
from gru4rec.state_store import MemoryStateStore


def session_items(data: SessionData, min_length: int = 2) -> list[list[int]]:
    """The sessions of ``data`` as lists of original item ids (known items only), those with ``min_length`` or more."""
    items = [data.item_map.ids[data.items[a:b]].tolist() for a, b in zip(data.offsets[:-1], data.offsets[1:])]
    return [s for s in items if len(s) >= min_length]


def reusable_run(candidate, train_data: SessionData) -> tuple[bool, str]:
    """Whether the run folder ``candidate`` holds a model trained on ``train_data``'s items (the same item ids in the
    same order), so it can be served instead of training one: ``(usable, a sentence saying why)``."""
    from gru4rec.run_folder import RunFolderError
    from gru4rec.runs import load_run

    if candidate is None:
        return False, "no run folder to reuse was named"
    folder = Path(candidate)
    if not (folder / "config.json").is_file():
        return False, f"{folder}: no run folder there"
    try:
        run = load_run(folder)
    except (RunFolderError, OSError, ValueError) as broken:
        return False, f"{folder}: cannot be read back ({broken})"
    if not np.array_equal(run.item_map.ids, train_data.item_map.ids):
        return False, f"{folder}: trained on other items ({run.item_map.n_items:,} items, not this data's)"
    layers = ", ".join(map(str, run.config.layers))
    return True, f"{folder}: GRU({layers}), {run.config.loss}, {run.epoch} epoch(s) on this data's items"


def offline_list(recommender: Recommender, prefix: Sequence[int], k: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownItemWarning)
        return recommender.recommend(list(prefix), k=k)


def click_by_click(server, session_id: str, items: Sequence[int], k: int, offline: Recommender,
                   show: int = 5) -> pd.DataFrame:  # fmt: skip
    """Send ``items[:-1]`` to ``server`` (a :class:`gru4rec.serve_process.ServerProcess`) one click at a time.

    One row per click: ``click`` (1-based), ``item`` clicked, ``top`` (the first ``show`` ids of the served list),
    ``next_item`` (the session's true next click), ``rank_of_next`` (its rank in the served top-``k``, None when not
    in it), ``new_in_top`` (ids of ``top`` that were not in the previous click's ``top``) and ``equals_offline``
    (the served ids equal :meth:`Recommender.recommend` on the prefix and the scores agree to 1e-4)."""
    rows, previous = [], []
    for n, item in enumerate(items[:-1]):
        status, answer = server.click(session_id, item, k)
        if status != 200:
            raise RuntimeError(f"click {n + 1} of session {session_id}: HTTP {status} {answer}")
        want = offline_list(offline, items[: n + 1], k)
        served_ids = answer["items"]
        same = served_ids == want.item_ids.tolist() and np.allclose(answer["scores"], want.scores, atol=1e-4)
        top = served_ids[:show]
        rows.append({"click": n + 1, "item": int(item), "top": top, "next_item": int(items[n + 1]),
                     "rank_of_next": served_ids.index(items[n + 1]) + 1 if items[n + 1] in served_ids else None,
                     "new_in_top": [i for i in top if i not in previous], "equals_offline": bool(same)})  # fmt: skip
        previous = top
    return pd.DataFrame(rows)


def latency_by_prefix(recommender: Recommender, items: Sequence[int], repeats: int = 3, k: int = 20) -> pd.DataFrame:
    """Seconds per click against the session's length, in this process (no HTTP), the median of ``repeats``.

    For a prefix of length ``L``: ``kept_ms`` is one :meth:`Recommender.observe` (one GRU step from the kept state
    and the top-k), ``reread_ms`` is :meth:`Recommender.recommend` on the ``L`` items (``L`` GRU steps from zero and
    the top-k: what a model without a kept state does at every click). Columns ``prefix_length``, ``kept_ms``,
    ``reread_ms``; one row per ``L`` in ``1 .. len(items)``."""
    if repeats < 1 or not len(items):
        raise ValueError(f"need at least one item and one repeat, got {len(items)} items and {repeats} repeats")
    offline_list(recommender, items[:1], k)  # the first calls build the graphs: not timed
    recommender.observe("latency-warm-up", items[0], k)
    recommender.end_session("latency-warm-up")
    kept = np.zeros((repeats, len(items)))
    reread = np.zeros((repeats, len(items)))
    for r in range(repeats):
        session = f"latency-{r}"
        for n, item in enumerate(items):
            start = time.perf_counter()
            recommender.observe(session, item, k)
            kept[r, n] = time.perf_counter() - start
            start = time.perf_counter()
            offline_list(recommender, items[: n + 1], k)
            reread[r, n] = time.perf_counter() - start
        recommender.end_session(session)
    return pd.DataFrame({"prefix_length": np.arange(1, len(items) + 1), "kept_ms": 1000 * np.median(kept, axis=0),
                         "reread_ms": 1000 * np.median(reread, axis=0)})  # fmt: skip


def eviction_demo(recommender: Recommender, clicks: Sequence[tuple[str, int]], max_sessions: int,
                  k: int = 5) -> tuple[pd.DataFrame, Recommender]:  # fmt: skip
    """Replay ``clicks`` (session id, item id) on a copy of ``recommender``'s model with an in-process store of
    ``max_sessions`` states. One row per click: ``session``, ``item``, ``live`` (the sessions kept afterwards, least
    recently used first), ``evicted`` (total so far), ``clicks_kept`` (how many of this session's clicks its state
    holds: 1 when it was evicted since its previous click). Returns the table and the demo Recommender."""
    store = MemoryStateStore(max_sessions=max_sessions)
    demo = Recommender(recommender.model, recommender.item_map, store=store)
    counted: dict[str, int] = {}
    rows = []
    for session, item in clicks:
        if session not in store:
            counted[session] = 0
        demo.observe(session, item, k)
        counted[session] += 1
        rows.append({"session": session, "item": int(item), "live": store.session_ids(), "evicted": store.evicted,
                     "clicks_kept": counted[session]})  # fmt: skip
    return pd.DataFrame(rows), demo


def load_table(levels: Sequence[dict], label: Optional[str] = None) -> pd.DataFrame:
    """The figures of :func:`gru4rec.serve_load.load_levels` as a table (one row per concurrency)."""
    table = pd.DataFrame(levels)[["concurrency", "events", "events_per_s", "p50_ms", "p99_ms", "mean_batch"]]
    if label is not None:
        table.insert(0, "store", label)
    return table
