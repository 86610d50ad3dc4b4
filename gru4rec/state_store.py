"""Where live sessions' GRU states are kept: in this process (an LRU) or in Redis (shared, survives restarts).

A session's record is its hidden state (the layers' states concatenated, ``(state_size,)`` float32) and how many
known items it has seen (a session with none has nothing to rank from). The list of a session is computed from the
state alone (the last layer's part), so nothing else is stored. Both stores forget a session idle for longer than
``ttl`` seconds:

* :class:`MemoryStateStore` (the default): an ordered dict in least-recently-used order, at most ``max_sessions``
  records (a new session beyond evicts the least recently used); the idle time is checked on access and by
  :meth:`~StateStore.sweep`. Lost when the process stops.
* :class:`RedisStateStore` (``redis://HOST:PORT/DB``): one Redis string per session, ``PX`` = the idle time,
  refreshed on every read and write (``GETEX``/``SET``), so several server processes and restarts share the states;
  Redis itself forgets an idle key. Keys are ``gru4rec:<model fingerprint>:<session id>``: a state is only ever read
  back by the same weights (another model or epoch on the same Redis sees none of them).

A store serves one model: :meth:`StateStore.bind` gives it the state size and the model's fingerprint (the
:class:`gru4rec.recommend.Recommender` calls it). Every method is called from one thread at a time.
"""

from __future__ import annotations

import re
import struct
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Optional, Sequence
from urllib.parse import urlsplit

import numpy as np

MAGIC = b"G4R1"  # first bytes of a Redis record: format version
HEADER = struct.Struct("<4sq")  # magic, n_known


class StateStoreError(RuntimeError):
    """The store cannot be used (unreachable Redis, a record of another format): one line naming the store."""


@dataclass(frozen=True)
class SessionState:
    """One live session: ``state`` (state_size,) float32 (the layers' states concatenated), ``n_known`` clicks on
    known items so far."""

    state: np.ndarray  # (state_size,) float32
    n_known: int


class StateStore(ABC):
    """The interface of a session-state store (see the module doc)."""

    name: str = "?"
    max_sessions: Optional[int] = None  # None: not bounded by the store (Redis: by its memory)
    ttl: float  # idle seconds before a session is forgotten

    def __init__(self) -> None:
        self.state_size: Optional[int] = None
        self.fingerprint: Optional[str] = None

    def bind(self, state_size: int, fingerprint: str) -> None:
        """Tie the store to one model (called by the Recommender); a store already bound to another is refused."""
        if self.state_size is not None and (self.state_size, self.fingerprint) != (state_size, fingerprint):
            raise ValueError(f"the {self.name} state store already serves another model")
        self.state_size, self.fingerprint = int(state_size), str(fingerprint)

    @abstractmethod
    def load_many(self, session_ids: Sequence[str]) -> list[Optional[SessionState]]:
        """The records of ``session_ids`` (None for a session not kept); reading one is a use (idle time reset)."""

    @abstractmethod
    def save_many(self, session_ids: Sequence[str], states: Sequence[SessionState]) -> int:
        """Write the records (a use); returns how many other sessions this evicted (0 for Redis)."""

    @abstractmethod
    def delete(self, session_id: str) -> bool:
        """Forget a session; True when it was kept."""

    @abstractmethod
    def __contains__(self, session_id: str) -> bool:
        """Whether the session is kept (not a use)."""

    @abstractmethod
    def sweep(self) -> int:
        """Forget the sessions idle past the TTL (where the store has to); the number of live sessions."""

    def counters(self) -> dict:
        """``evictions`` and ``expired`` for ``/metrics``."""
        return {"evictions": 0, "expired": 0}

    def close(self) -> None:  # noqa: B027 - a store without connections has nothing to release
        """Release connections (nothing for the in-process store)."""


class MemoryStateStore(StateStore):
    """The in-process LRU (see the module doc); ``ttl=None`` never expires; ``clock`` in seconds (tests fake it)."""

    name = "memory"

    def __init__(self, max_sessions: int = 100_000, ttl: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        super().__init__()
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {max_sessions}")
        if ttl is not None and not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl}")
        self.max_sessions = int(max_sessions)
        self.ttl = float("inf") if ttl is None else float(ttl)
        self.clock = clock
        self.evicted = 0
        self.expired = 0
        self._records: OrderedDict[str, tuple[SessionState, float]] = OrderedDict()  # LRU order, last use

    def _alive(self, session_id: str, now: float) -> Optional[SessionState]:
        entry = self._records.get(session_id)
        if entry is None:
            return None
        if now - entry[1] > self.ttl:
            del self._records[session_id]
            self.expired += 1
            return None
        return entry[0]

    def load_many(self, session_ids: Sequence[str]) -> list[Optional[SessionState]]:
        now = self.clock()
        found = []
        for session_id in session_ids:
            record = self._alive(session_id, now)
            if record is not None:
                self._records[session_id] = (record, now)
                self._records.move_to_end(session_id)
            found.append(record)
        return found

    def save_many(self, session_ids: Sequence[str], states: Sequence[SessionState]) -> int:
        now = self.clock()
        evicted = 0
        for session_id, record in zip(session_ids, states):
            if session_id not in self._records:
                self.sweep()
                while len(self._records) >= self.max_sessions:
                    self._records.popitem(last=False)  # the least recently used
                    evicted += 1
            self._records[session_id] = (record, now)
            self._records.move_to_end(session_id)
        self.evicted += evicted
        return evicted

    def delete(self, session_id: str) -> bool:
        alive = self._alive(session_id, self.clock()) is not None
        self._records.pop(session_id, None)
        return alive

    def __contains__(self, session_id: str) -> bool:
        entry = self._records.get(session_id)
        return entry is not None and self.clock() - entry[1] <= self.ttl

    def sweep(self) -> int:
        now = self.clock()
        while self._records:
            session_id, (_, seen) = next(iter(self._records.items()))
            if now - seen <= self.ttl:
                break
            del self._records[session_id]
            self.expired += 1
        return len(self._records)

    def counters(self) -> dict:
        return {"evictions": self.evicted, "expired": self.expired}

    def session_ids(self) -> list[str]:
        """The kept sessions, least recently used first (expired ones forgotten first)."""
        self.sweep()
        return list(self._records)


# ----------------------------------------------------------------------------------------------------------------
# Redis

REDIS_URL_FORM = "redis://HOST:PORT/DB (e.g. redis://127.0.0.1:6379/0)"


@dataclass(frozen=True)
class RedisAddress:
    host: str
    port: int
    db: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"redis://{host}:{self.port}/{self.db}"


def parse_redis_url(url: str) -> RedisAddress:
    """``redis://HOST[:PORT][/DB]`` (port 6379 and db 0 by default); a ``ValueError`` naming what is wrong."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as bad:
        raise ValueError(f"{url!r}: {bad}; expected {REDIS_URL_FORM}") from None
    if parts.scheme != "redis":
        raise ValueError(f"{url!r}: the scheme must be redis://; expected {REDIS_URL_FORM}")
    if not parts.hostname:
        raise ValueError(f"{url!r}: no host; expected {REDIS_URL_FORM}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"{url!r}: user, password, query and fragment are not supported; expected {REDIS_URL_FORM}")
    path = parts.path.strip("/")
    if path and not re.fullmatch(r"[0-9]{1,5}", path):
        raise ValueError(f"{url!r}: the database {path!r} is not a number; expected {REDIS_URL_FORM}")
    return RedisAddress(parts.hostname, 6379 if port is None else port, int(path or 0))


class RedisStateStore(StateStore):
    """Session states in Redis (see the module doc): ``ttl`` idle seconds (a key's ``PX``, refreshed at each use);
    ``connect_timeout`` seconds for the first connection and each command."""

    name = "redis"

    def __init__(self, url: str, ttl: float = 1800.0, connect_timeout: float = 5.0):
        super().__init__()
        import redis

        if not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl}")
        self.address = parse_redis_url(url)
        self.ttl = float(ttl)
        self._ttl_ms = max(1, round(self.ttl * 1000))
        self._errors = (redis.RedisError, OSError)
        self._client = redis.Redis(host=self.address.host, port=self.address.port, db=self.address.db,
                                   socket_connect_timeout=connect_timeout, socket_timeout=connect_timeout)  # fmt: skip
        version = str(self._call("INFO", lambda: self._client.info("server")).get("redis_version", "0"))
        if tuple(int(p) for p in re.findall(r"[0-9]+", version)[:2]) < (6, 2):
            raise StateStoreError(f"{self.address.url}: Redis {version}; expected 6.2 or newer (GETEX)")

    def _call(self, what: str, function):
        try:
            return function()
        except self._errors as failure:
            raise StateStoreError(f"{self.address.url}: {what} failed ({type(failure).__name__}: "
                                  f"{str(failure)[:200]})") from None  # fmt: skip

    def _key(self, session_id: str) -> str:
        if self.fingerprint is None:
            raise RuntimeError("the Redis state store is not bound to a model (Recommender(..., store=...) does it)")
        return f"gru4rec:{self.fingerprint}:{session_id}"

    def _decode(self, key: str, value: bytes) -> SessionState:
        size = HEADER.size + 4 * int(self.state_size)
        if len(value) != size or value[:4] != MAGIC:
            raise StateStoreError(f"{self.address.url}: key {key!r} holds {len(value)} bytes that are not a state of "
                                  f"this model (expected {size} bytes starting with {MAGIC!r})")  # fmt: skip
        _, n_known = HEADER.unpack_from(value)
        return SessionState(np.frombuffer(value, dtype="<f4", offset=HEADER.size).astype(np.float32), int(n_known))

    def _encode(self, record: SessionState) -> bytes:
        state = np.asarray(record.state, dtype="<f4")
        if state.shape != (self.state_size,):
            raise ValueError(f"a state of shape {state.shape}; expected ({self.state_size},)")
        return HEADER.pack(MAGIC, int(record.n_known)) + state.tobytes()

    def load_many(self, session_ids: Sequence[str]) -> list[Optional[SessionState]]:
        keys = [self._key(s) for s in session_ids]

        def read():
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.getex(key, px=self._ttl_ms)
            return pipe.execute()

        values = self._call("GETEX", read)
        return [None if value is None else self._decode(key, value) for key, value in zip(keys, values)]

    def save_many(self, session_ids: Sequence[str], states: Sequence[SessionState]) -> int:
        records = [(self._key(s), self._encode(r)) for s, r in zip(session_ids, states)]

        def write():
            pipe = self._client.pipeline(transaction=False)
            for key, value in records:
                pipe.set(key, value, px=self._ttl_ms)
            return pipe.execute()

        self._call("SET", write)
        return 0

    def delete(self, session_id: str) -> bool:
        return bool(self._call("DEL", lambda: self._client.delete(self._key(session_id))))

    def __contains__(self, session_id: str) -> bool:
        return bool(self._call("EXISTS", lambda: self._client.exists(self._key(session_id))))

    def sweep(self) -> int:
        """Redis forgets idle keys itself; the number of this model's live sessions (a ``SCAN`` of its keys)."""
        pattern = self._key("*")
        return self._call("SCAN", lambda: sum(1 for _ in self._client.scan_iter(match=pattern, count=1000)))

    def counters(self) -> dict:
        """The Redis server's own ``evicted_keys`` and ``expired_keys`` (all its keys, not only this model's)."""
        stats = self._call("INFO", lambda: self._client.info("stats"))
        return {"evictions": int(stats.get("evicted_keys", 0)), "expired": int(stats.get("expired_keys", 0))}

    def close(self) -> None:
        self._client.close()


def open_state_store(spec: str, ttl: float, max_sessions: int = 100_000) -> StateStore:
    """``"memory"`` (the in-process LRU of ``max_sessions``) or ``redis://HOST:PORT/DB``; ``ValueError`` for a
    malformed spec, :class:`StateStoreError` for a Redis that does not answer."""
    if spec == "memory":
        return MemoryStateStore(max_sessions=max_sessions, ttl=ttl)
    if spec.startswith("redis:") or "://" in spec:
        return RedisStateStore(spec, ttl=ttl)
    raise ValueError(f"{spec!r}: expected memory or {REDIS_URL_FORM}")
