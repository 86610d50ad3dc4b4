"""``gru4rec serve``: live sessions over HTTP, one hidden state per session, clicks micro-batched.

GRU4Rec does not need to re-read a session at every click: it keeps the session's hidden state (the layers' states
concatenated, ``(state_size,)`` floats) and advances it by one GRU step. :class:`SessionService` holds a
:class:`gru4rec.recommend.Recommender` whose :mod:`gru4rec.state_store` keeps the session states (in this process, or
in Redis so that several server processes and restarts share them) and:

* collects the clicks that arrive within ``batch_wait_ms`` of the first one (an asyncio queue read by one worker
  task) and advances them in ONE :meth:`Recommender.observe_many` call, run off the event loop in a single model
  thread (every use of the Recommender goes through that thread, so it is never used by two threads at once);
* forgets a session idle for longer than the store's ``ttl`` seconds (in-process: checked at each use and by a
  periodic sweep; Redis: the key's expiry, refreshed at each use); beyond ``max_sessions`` live sessions the
  in-process store evicts the least recently used one;
* refuses an item id the model does not know with a 422 and leaves the session as it was: the state is unchanged,
  exactly as :meth:`Recommender.recommend` and the evaluator skip unknown items, so a session's served list always
  equals ``Recommender.recommend`` on its known clicks.

:func:`create_app` wraps it in a Starlette ASGI application (endpoints in ``docs/serving.md``); every bad request
gets a JSON body ``{"error": "..."}`` with a 4xx status, an unexpected failure a 500, and the server goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from gru4rec.recommend import Recommendations, Recommender
from gru4rec.state_store import StateStoreError

SESSION_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_BODY_BYTES = 4096  # a click's JSON body is a few dozen bytes
LATENCY_WINDOW = 10_000  # the latency percentiles are over the last this many requests


class RequestError(ValueError):
    """A request the service refuses: ``status`` (4xx) and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class ServiceCounters:
    requests: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    events: int = 0
    unknown_items: int = 0
    batches: int = 0  # observe_many calls
    batched_events: int = 0  # events advanced in those calls
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))


@dataclass
class _Click:
    session_id: str
    item_id: int
    k: int
    done: asyncio.Future


def check_session_id(session_id: str) -> str:
    if not SESSION_ID_PATTERN.fullmatch(session_id):
        raise RequestError(400, f"session id {session_id[:40]!r}: expected 1 to 128 characters of letters, digits, "
                                "'_', '.', ':' or '-'")  # fmt: skip
    return session_id


def parse_int(value: Any, name: str) -> int:
    """An integer from JSON or a query string (not a bool, not a float, within int64)."""
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]{1,20}", value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(400, f"{name}: expected an integer, got {json.dumps(value)[:40]}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise RequestError(400, f"{name}: {value} is out of the 64-bit integer range")
    return value


class SessionService:
    """Live sessions on a Recommender; see the module doc.

    Args:
        recommender: the model; its ``store`` keeps the live sessions (how many, for how long idle).
        batch_wait_ms: how long the worker waits for more clicks after the first one of a batch.
        max_batch: most clicks in one ``observe_many`` call.
        max_k: the largest ``k`` accepted (a larger one is a 400; ``k`` above the catalogue size gives the whole
            catalogue).
    """

    def __init__(
        self,
        recommender: Recommender,
        batch_wait_ms: float = 2.0,
        max_batch: int = 1024,
        max_k: int = 1000,
    ):
        if batch_wait_ms < 0:
            raise ValueError(f"batch_wait_ms must be >= 0, got {batch_wait_ms}")
        if max_batch < 1 or max_k < 1:
            raise ValueError(f"max_batch and max_k must be >= 1, got {max_batch} and {max_k}")
        self.recommender = recommender
        self.batch_wait = float(batch_wait_ms) / 1000.0
        self.max_batch = int(max_batch)
        self.max_k = int(max_k)
        self.counters = ServiceCounters()
        self._queue: Optional[asyncio.Queue] = None
        self._tasks: list[asyncio.Task] = []
        self._executor: Optional[ThreadPoolExecutor] = None

    # ------------------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the model thread, the batching worker and the expiry sweep (on the running event loop)."""
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gru4rec-model")
        self._tasks = [asyncio.create_task(self._worker()), asyncio.create_task(self._sweeper())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _in_model_thread(self, function, *args):
        if self._executor is None:
            raise RuntimeError("the service is not started")
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    # ------------------------------------------------------------------------------------------------------------
    def check_k(self, k: Any) -> int:
        k = parse_int(k, "k")
        if not 1 <= k <= self.max_k:
            raise RequestError(400, f"k: expected an integer from 1 to {self.max_k}, got {k}")
        return k

    async def click(self, session_id: str, item_id: Any, k: Any = 20) -> Recommendations:
        """Record a click and return the session's new top-``k`` (raises :class:`RequestError`)."""
        session_id, item_id, k = check_session_id(session_id), parse_int(item_id, "item_id"), self.check_k(k)
        if self.recommender.item_map.index_of(np.asarray([item_id], np.int64))[0] < 0:
            self.counters.unknown_items += 1
            raise RequestError(422, f"item_id {item_id} is not in the model's catalogue; the session is unchanged "
                                    "(an unknown click is skipped, as offline)")  # fmt: skip
        if self._queue is None:
            raise RuntimeError("the service is not started")
        done = asyncio.get_running_loop().create_future()
        await self._queue.put(_Click(session_id, item_id, k, done))
        return await done

    async def recommendations(self, session_id: str, k: Any = 20) -> Recommendations:
        """The session's top-``k`` without a new click; 404 for a session not live (never seen, ended, expired,
        evicted)."""
        session_id, k = check_session_id(session_id), self.check_k(k)
        return await self._in_model_thread(self._current, session_id, k)

    async def end(self, session_id: str) -> None:
        """Forget a session; 404 when it is not live."""
        session_id = check_session_id(session_id)
        if not await self._in_model_thread(self._end, session_id):
            raise RequestError(404, f"session {session_id!r} is not live (never seen, ended, expired or evicted)")

    async def metrics(self) -> dict:
        live, store = await self._in_model_thread(self._store_figures)
        c = self.counters
        latencies = np.asarray(c.latencies_ms, dtype=np.float64)
        ttl = self.recommender.store.ttl
        return {
            "requests": c.requests, "errors_4xx": c.errors_4xx, "errors_5xx": c.errors_5xx, "events": c.events,
            "unknown_items": c.unknown_items, "evictions": store["evictions"], "expired": store["expired"],
            "live_sessions": live, "max_sessions": self.recommender.max_sessions,
            "state_store": self.recommender.store.name, "session_ttl_s": ttl if np.isfinite(ttl) else None,
            "batches": c.batches, "mean_batch_size": (c.batched_events / c.batches) if c.batches else None,
            "latency_ms_p50": float(np.percentile(latencies, 50)) if len(latencies) else None,
            "latency_ms_p99": float(np.percentile(latencies, 99)) if len(latencies) else None,
            "latency_window": int(len(latencies)),
        }  # fmt: skip

    # ------------------------------------------------------------------------------------------------------------
    # the model thread
    def _store_figures(self) -> tuple[int, dict]:
        return self.recommender.store.sweep(), self.recommender.store.counters()

    def _sweep(self) -> int:
        """Forget expired sessions (the in-process store; Redis expires its keys itself)."""
        store = self.recommender.store
        return store.sweep() if store.name == "memory" else -1

    def _observe(self, clicks: list[_Click]) -> list[Recommendations]:
        k = max(click.k for click in clicks)  # top-k is a prefix of top-K (ties broken by index)
        results = self.recommender.observe_many([c.session_id for c in clicks], [c.item_id for c in clicks], k)
        self.counters.batches += 1
        self.counters.batched_events += len(clicks)
        return [Recommendations(r.item_ids[: c.k], r.scores[: c.k], r.n_unknown) for r, c in zip(results, clicks)]

    def _current(self, session_id: str, k: int) -> Recommendations:
        try:
            return self.recommender.current(session_id, k)
        except KeyError:
            raise RequestError(404, f"session {session_id!r} is not live (never seen, ended, expired or evicted); "
                                    "POST a click to /sessions/{id}/events to start it") from None  # fmt: skip

    def _end(self, session_id: str) -> bool:
        return self.recommender.end_session(session_id)

    # ------------------------------------------------------------------------------------------------------------
    # tasks on the event loop
    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.batch_wait
            while len(batch) < self.max_batch:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), left))
                except asyncio.TimeoutError:
                    break
            try:
                results = await self._in_model_thread(self._observe, batch)
            except Exception as error:  # noqa: BLE001 - handed to every waiting request, the worker goes on
                for click in batch:
                    if not click.done.done():
                        click.done.set_exception(error)
                continue
            for click, result in zip(batch, results):
                if not click.done.done():
                    click.done.set_result(result)

    async def _sweeper(self) -> None:
        period = min(max(self.recommender.store.ttl / 4, 0.05), 5.0)
        while True:
            await asyncio.sleep(period)
            await self._in_model_thread(self._sweep)


# ----------------------------------------------------------------------------------------------------------------
# HTTP


def _body(result: Recommendations) -> dict:
    return {"items": [int(i) for i in result.item_ids], "scores": [float(s) for s in result.scores]}


def create_app(service: SessionService):
    """The Starlette application of ``service`` (started and stopped with the application's lifespan)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def counted(handler):
        async def wrapped(request: Request) -> JSONResponse:
            start = time.perf_counter()
            try:
                response = await handler(request)
            except RequestError as refused:
                response = error(refused.status, str(refused))
            except StateStoreError as failure:  # the state store (Redis) does not answer: try again later
                response = error(503, f"state store unavailable: {failure}")
            except Exception as failure:  # noqa: BLE001 - one request fails, the server goes on
                response = error(500, f"internal error: {type(failure).__name__}: {str(failure)[:200]}")
            service.counters.requests += 1
            if 400 <= response.status_code < 500:
                service.counters.errors_4xx += 1
            elif response.status_code >= 500:
                service.counters.errors_5xx += 1
            service.counters.latencies_ms.append((time.perf_counter() - start) * 1000.0)
            return response

        return wrapped

    async def post_event(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise RequestError(413, f"the body has {declared} bytes; expected at most {MAX_BODY_BYTES}")
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise RequestError(413, f"the body has {len(raw)} bytes; expected at most {MAX_BODY_BYTES}")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as bad:
            raise RequestError(
                400, f'the body is not valid JSON ({bad}); expected {{"item_id": INT, "k": INT}}'
            ) from None
        if not isinstance(body, dict):
            raise RequestError(400, 'the body must be a JSON object {"item_id": INT, "k": INT}')
        unknown = sorted(set(body) - {"item_id", "k"})
        if unknown:
            raise RequestError(400, f"unexpected field(s) {', '.join(map(repr, unknown))}; expected item_id and k")
        if "item_id" not in body:
            raise RequestError(400, 'the body has no item_id; expected {"item_id": INT, "k": INT}')
        result = await service.click(request.path_params["session_id"], body["item_id"], body.get("k", 20))
        service.counters.events += 1
        return JSONResponse(_body(result))

    async def get_recommendations(request: Request) -> JSONResponse:
        unknown = sorted(set(request.query_params) - {"k"})
        if unknown:
            raise RequestError(400, f"unexpected query parameter(s) {', '.join(map(repr, unknown))}; expected k")
        result = await service.recommendations(request.path_params["session_id"], request.query_params.get("k", 20))
        return JSONResponse(_body(result))

    async def delete_session(request: Request) -> JSONResponse:
        session_id = request.path_params["session_id"]
        await service.end(session_id)
        return JSONResponse({"ended": session_id})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "n_items": service.recommender.n_items})

    async def metrics(request: Request) -> JSONResponse:
        return JSONResponse(await service.metrics())

    async def not_found(request: Request, exc) -> JSONResponse:
        status = getattr(exc, "status_code", 404)
        words = "no such endpoint" if status == 404 else "method not allowed"
        return error(
            status,
            f"{request.method} {request.url.path}: {words}; see GET /health, GET /metrics, "
            "POST /sessions/{id}/events, GET /sessions/{id}/recommendations, DELETE /sessions/{id}",
        )

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    routes = [
        Route("/sessions/{session_id}/events", counted(post_event), methods=["POST"]),
        Route("/sessions/{session_id}/recommendations", counted(get_recommendations), methods=["GET"]),
        Route("/sessions/{session_id}", counted(delete_session), methods=["DELETE"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: not_found})
