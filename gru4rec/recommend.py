"""Using a trained GRU4Rec on live sessions: one-shot recommendations, many concurrent sessions, SavedModel export.

Item ids are the ORIGINAL ``ItemId`` values (as in the click files); the run folder's ``items.tsv`` maps them to the
model's indices. Scores are the model's raw output scores (``hidden @ Wy.T + By``, before the final activation):
higher is better; they are comparable within one list, not calibrated probabilities.

Behaviour at the edges (documented here once, tested in ``tests/test_recommend.py``):

* **Unknown item ids** (not in the training catalogue, so the model has no row for them) are skipped: the hidden
  state is left as it was, as the evaluator does when it drops unknown test items. Each result reports how many
  were skipped (``n_unknown``), the Recommender counts them in ``stats["unknown_items"]``, and ``recommend`` emits
  one ``UnknownItemWarning`` per call that skipped any.
* **Empty sessions** (no item, or no known item): GRU4Rec only predicts after seeing at least one item, so there is
  nothing to rank from. ``recommend([])`` raises :class:`EmptySessionError` (a ``ValueError``); ``observe`` of an
  unknown item in a session that has no known item yet returns an empty :class:`Recommendations` (``len() == 0``)
  instead of raising, so a live stream need not pre-filter its clicks. A caller that wants a fallback list can use
  :meth:`Recommender.popular` when the training supports are known.
* **Live sessions** (:meth:`Recommender.observe`) are keyed by session id; a new id starts from the zero state. The
  states live in a :mod:`gru4rec.state_store` (default: this process's LRU of ``max_sessions`` states, the least
  recently used evicted when a new session arrives; or Redis, shared between processes): an evicted or expired
  session that comes back starts again from zero (``stats["evicted"]`` counts evictions).
* **SavedModel** (:func:`export_saved_model`): the serving signature takes original item ids and the previous state
  and returns the top-k ids, their scores, the new state and a ``known`` flag per row; an unknown id leaves the state
  unchanged and gives ``known = False`` (its top-k list is then that of the unchanged state, which for a fresh
  session is not a recommendation: check ``known``).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from typing import Hashable, Iterable, Optional, Sequence, Union

import numpy as np
import pandas as pd
import tensorflow as tf

from gru4rec.session_data import ItemMap
from gru4rec.state_store import MemoryStateStore, SessionState, StateStore

PathLike = Union[str, "os.PathLike[str]"]


class EmptySessionError(ValueError):
    """A session without any item known to the model: nothing to recommend from."""


class UnknownItemWarning(UserWarning):
    """Item ids that are not in the model's catalogue were skipped."""


@dataclass(frozen=True)
class Recommendations:
    """A ranked list: ``item_ids[0]`` is the best. Empty when the session has no known item (see module doc)."""

    item_ids: np.ndarray  # (k,) int64 original ItemIds, best first
    scores: np.ndarray  # (k,) float32 raw scores
    n_unknown: int = 0  # input ids skipped because the model does not know them

    def __len__(self) -> int:
        return len(self.item_ids)

    def to_frame(self) -> pd.DataFrame:
        """``Rank`` (1-based), ``ItemId``, ``Score``."""
        return pd.DataFrame(
            {"Rank": np.arange(1, len(self) + 1), "ItemId": self.item_ids, "Score": self.scores}
        )


@dataclass
class RecommenderStats:
    unknown_items: int = 0
    evicted: int = 0
    sessions_started: int = 0

    def __getitem__(self, key: str) -> int:
        return getattr(self, key)


class Recommender:
    """Top-k next-item recommendations from a GRU4Rec model.

    Build it with :meth:`from_run` (a training run folder) or from a model and its item map.

    Args:
        model: a :class:`gru4rec.model.GRU4RecModel`.
        item_map: the training :class:`~gru4rec.session_data.ItemMap` (index -> original ItemId).
        item_support: training events per item index (optional; enables :meth:`popular`).
        max_sessions: how many live sessions :meth:`observe` keeps (least recently used evicted) when no ``store``
            is given.
        store: where the live sessions' states are kept (:mod:`gru4rec.state_store`; default a
            :class:`~gru4rec.state_store.MemoryStateStore` of ``max_sessions`` that never expires); it is bound to
            this model (:meth:`fingerprint`).
    """

    def __init__(self, model, item_map: ItemMap, item_support: Optional[np.ndarray] = None,
                 max_sessions: int = 100_000, store: Optional[StateStore] = None):
        if int(model.n_items) != item_map.n_items:
            raise ValueError(f"the model has {model.n_items} items but the item map {item_map.n_items}")
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {max_sessions}")
        self.model = model
        self.item_map = item_map
        self.item_support = None if item_support is None else np.asarray(item_support)
        self.layer_sizes = tuple(int(s.shape[-1]) for s in model.initial_state(1))
        self.state_size = int(sum(self.layer_sizes))
        self.stats = RecommenderStats()
        self.store = MemoryStateStore(max_sessions=max_sessions) if store is None else store
        self.store.bind(self.state_size, self.fingerprint())
        self._ids = tf.constant(item_map.ids, tf.int64)
        sizes = list(self.layer_sizes)

        state_spec = tf.TensorSpec([None, self.state_size], tf.float32)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), state_spec], autograph=False)
        def advance(items, state):
            """One GRU step for rows whose item index is >= 0; rows with -1 keep their state."""
            known = items >= 0
            layers = tf.split(state, sizes, axis=1)
            _, new_layers = model.step(tf.maximum(items, 0), layers, training=False)
            new_state = tf.concat(new_layers, axis=1)
            return tf.where(known[:, None], new_state, state)

        @tf.function(input_signature=[state_spec, tf.TensorSpec([], tf.int32)], autograph=False)
        def top(state, k):
            hidden = tf.split(state, sizes, axis=1)[-1]
            values, indices = tf.math.top_k(model.score_all(hidden), k=k)
            return values, indices

        self._advance = advance
        self._top = top

    @classmethod
    def from_run(cls, run_dir: PathLike, epoch: Optional[int] = None, max_sessions: int = 100_000,
                 store: Optional[StateStore] = None) -> Recommender:  # fmt: skip
        """The model of a run folder at ``epoch`` (default: the last checkpoint), via :func:`gru4rec.runs.load_run`."""
        from gru4rec.runs import load_run

        run = load_run(run_dir, epoch=epoch)
        support = getattr(run, "item_support", None)
        return cls(run.model, run.item_map, item_support=support, max_sessions=max_sessions, store=store)

    # ------------------------------------------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return self.item_map.n_items

    @property
    def max_sessions(self) -> Optional[int]:
        """The most live sessions the store keeps (None: bounded by Redis's memory, not by the store)."""
        return self.store.max_sessions

    def fingerprint(self) -> str:
        """16 hex digits of SHA-256 over the item ids, the layer sizes and every weight: the same for the same
        model, different for another run or epoch (the Redis store's key prefix)."""
        digest = hashlib.sha256(np.asarray(self.item_map.ids, dtype="<i8").tobytes())
        digest.update(repr(self.layer_sizes).encode())
        for variable in sorted(self.model.variables, key=lambda v: v.name):
            digest.update(variable.name.encode())
            digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
        return digest.hexdigest()[:16]

    def zero_state(self, batch_size: int = 1) -> np.ndarray:
        return np.zeros((batch_size, self.state_size), dtype=np.float32)

    def _k(self, k: int) -> int:
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        return min(int(k), self.n_items)

    def _lists(self, states: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        values, indices = self._top(tf.constant(states, tf.float32), tf.constant(self._k(k), tf.int32))
        return self.item_map.ids[indices.numpy()], values.numpy()

    def state_after(self, session_items: Iterable[int]) -> tuple[np.ndarray, int, int]:
        """The state after a session's items (original ids): ``(state (state_size,), n_known, n_unknown)``."""
        index = self.item_map.index_of(np.asarray(list(session_items), dtype=np.int64))
        known = index[index >= 0].astype(np.int32)
        state = self.zero_state(1)
        for item in known:
            state = self._advance(tf.constant([item], tf.int32), tf.constant(state)).numpy()
        return state[0], len(known), int((index < 0).sum())

    def recommend(self, session_items: Sequence[int], k: int = 20) -> Recommendations:
        """Top-``k`` next items after ``session_items`` (original ItemIds, oldest first).

        Unknown ids are skipped (``n_unknown``, one ``UnknownItemWarning``); raises :class:`EmptySessionError` when no
        item is known.
        """
        state, n_known, n_unknown = self.state_after(session_items)
        if n_unknown:
            self.stats.unknown_items += n_unknown
            warnings.warn(f"{n_unknown} item id(s) not in the model's catalogue were skipped", UnknownItemWarning,
                          stacklevel=2)
        if n_known == 0:
            raise EmptySessionError("the session has no item known to the model: nothing to recommend from "
                                    f"({n_unknown} unknown id(s) given)")
        ids, scores = self._lists(state[None, :], k)
        return Recommendations(ids[0], scores[0], n_unknown)

    def popular(self, k: int = 20) -> Recommendations:
        """The ``k`` items with the highest training support (needs ``item_support``), scores = supports."""
        if self.item_support is None:
            raise ValueError("the training item supports are not known to this Recommender")
        k = self._k(k)
        order = np.argsort(-self.item_support, kind="stable")[:k]
        return Recommendations(self.item_map.ids[order], self.item_support[order].astype(np.float32))

    # ------------------------------------------------------------------------------------------------------------
    # many live sessions
    def observe_many(
        self, session_ids: Sequence[Hashable], item_ids: Sequence[int], k: int = 20
    ) -> list[Recommendations]:
        """Record one click per row (``session_ids[i]`` clicked ``item_ids[i]``) and recommend for each, in one batch.

        A session id appearing twice in one call is processed in order (its clicks are split into successive batches).
        """
        session_ids, item_ids = list(session_ids), list(item_ids)
        if len(session_ids) != len(item_ids):
            raise ValueError("session_ids and item_ids must have the same length")
        results: list[Optional[Recommendations]] = [None] * len(item_ids)
        pending = list(range(len(item_ids)))
        while pending:  # rows with distinct session ids go together
            seen, batch, rest = set(), [], []
            for i in pending:
                (rest if session_ids[i] in seen else batch).append(i)
                seen.add(session_ids[i])
            self._observe_batch([session_ids[i] for i in batch], [item_ids[i] for i in batch], k, batch, results)
            pending = rest
        return results  # type: ignore[return-value]

    def _observe_batch(self, session_ids, item_ids, k, rows, results) -> None:
        index = self.item_map.index_of(np.asarray(item_ids, dtype=np.int64)).astype(np.int32)
        kept = self.store.load_many(session_ids)
        self.stats.sessions_started += sum(record is None for record in kept)
        zero = self.zero_state(1)[0]
        states = np.stack([zero if record is None else record.state for record in kept])  # (batch, state_size)
        known_before = np.asarray([0 if record is None else record.n_known for record in kept], dtype=np.int64)
        new_states = self._advance(tf.constant(index), tf.constant(states)).numpy()  # (batch, state_size)
        unknown = index < 0
        n_known = known_before + ~unknown
        self.stats.unknown_items += int(unknown.sum())
        records = [SessionState(state, int(n)) for state, n in zip(new_states, n_known)]
        self.stats.evicted += self.store.save_many(session_ids, records)
        ready = np.flatnonzero(n_known > 0)
        if len(ready):
            ids, scores = self._lists(new_states[ready], k)
            for n, j in enumerate(ready):
                results[rows[j]] = Recommendations(ids[n], scores[n], int(unknown[j]))
        for j in np.flatnonzero(n_known == 0):
            results[rows[j]] = Recommendations(np.zeros(0, np.int64), np.zeros(0, np.float32), int(unknown[j]))

    def observe(self, session_id: Hashable, item_id: int, k: int = 20) -> Recommendations:
        """Record that ``session_id`` clicked ``item_id`` and return its top-``k`` next items (see module doc)."""
        return self.observe_many([session_id], [item_id], k)[0]

    def current(self, session_id: Hashable, k: int = 20) -> Recommendations:
        """The top-``k`` list of a kept session after its clicks so far, without a new click (counts as a use for the
        LRU and the idle time). Raises ``KeyError`` for a session not kept (never seen, ended, expired or evicted);
        the list is empty while the session has no known item."""
        record = self.store.load_many([session_id])[0]
        if record is None:
            raise KeyError(session_id)
        if record.n_known == 0:
            return Recommendations(np.zeros(0, np.int64), np.zeros(0, np.float32))
        ids, scores = self._lists(record.state[None, :], k)
        return Recommendations(ids[0], scores[0])

    def end_session(self, session_id: Hashable) -> bool:
        """Forget a session's state (True if it was kept)."""
        return self.store.delete(session_id)

    @property
    def n_sessions(self) -> int:
        """Live sessions in the store (idle ones past the store's TTL forgotten first)."""
        return self.store.sweep()

    def __contains__(self, session_id: Hashable) -> bool:
        return session_id in self.store


# ----------------------------------------------------------------------------------------------------------------
# SavedModel


class _Serving(tf.Module):
    """What the SavedModel holds: the model's variables, the id lookup and the serving functions."""

    def __init__(self, model, item_map: ItemMap, k: int):
        super().__init__(name="gru4rec_serving")
        self.model = model
        self.k = int(min(k, item_map.n_items))
        self.layer_sizes = [int(s.shape[-1]) for s in model.initial_state(1)]
        self.state_size = tf.constant(sum(self.layer_sizes), tf.int32)
        self.item_ids = tf.Variable(item_map.ids, trainable=False, name="item_ids")  # index -> ItemId
        self.lookup = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(item_map.ids, tf.int64), tf.range(item_map.n_items, dtype=tf.int64)
            ),
            default_value=-1,
        )
        sizes = self.layer_sizes
        total = sum(sizes)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="item_ids"),
                                      tf.TensorSpec([None, total], tf.float32, name="state")], autograph=False)
        def serve(item_ids, state):
            index = tf.cast(self.lookup.lookup(item_ids), tf.int32)
            known = index >= 0
            _, new_layers = self.model.step(tf.maximum(index, 0), tf.split(state, sizes, axis=1), training=False)
            new_state = tf.where(known[:, None], tf.concat(new_layers, axis=1), state)
            hidden = tf.split(new_state, sizes, axis=1)[-1]
            scores, top = tf.math.top_k(self.model.score_all(hidden), k=self.k)
            return {
                "top_item_ids": tf.gather(self.item_ids, top),
                "top_scores": scores,
                "state": new_state,
                "known": known,
            }

        @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="batch_size")], autograph=False)
        def initial_state(batch_size):
            return {"state": tf.zeros([batch_size, total], tf.float32)}

        self.serve = serve
        self.initial_state = initial_state


def export_saved_model(run_dir: PathLike, out_dir: PathLike, epoch: Optional[int] = None, k: int = 20) -> str:
    """Export the model of a run folder as a TensorFlow SavedModel for serving; returns ``out_dir``.

    Signatures:

    * ``serving_default``: inputs ``item_ids`` (int64 ``(batch,)``, ORIGINAL ItemIds, looked up in a hash table
      inside the graph) and ``state`` (float32 ``(batch, state_size)``, the layers' hidden states concatenated; zeros
      for a new session); outputs ``top_item_ids`` (int64 ``(batch, k)``, original ids, best first), ``top_scores``
      (float32 ``(batch, k)``, raw scores), ``state`` (the new state to pass with the session's next click) and
      ``known`` (bool ``(batch,)``; False for an id not in the catalogue, whose row keeps its previous state).
    * ``initial_state``: input ``batch_size`` (int32 scalar), output ``state`` (zeros).

    ``k`` is fixed at export time (capped at the number of items).
    """
    from gru4rec.runs import load_run

    run = load_run(run_dir, epoch=epoch)
    return save_serving_model(run.model, run.item_map, out_dir, k=k)


SAVED_MODEL_ENTRIES = ("saved_model.pb", "saved_model.pbtxt", "variables", "assets", "fingerprint.pb")


def save_serving_model(model, item_map: ItemMap, out_dir: PathLike, k: int = 20) -> str:
    """:func:`export_saved_model` for a model and item map in memory.

    The SavedModel is written into a temporary sibling folder (``.NAME.export-*``) and swapped in only when complete
    (an atomic exchange where the file system offers one, else two renames), so a failed export (a full disk, a kill)
    leaves the previous export whole, never a folder mixing two models. ``out_dir`` may be new, empty or a previous
    export; a folder holding anything else, a file or a symbolic link is refused (nothing the export did not write is
    replaced, nothing is written through a link). A kill during the write can leave the hidden temporary folder."""
    out = os.path.normpath(os.fspath(out_dir))
    if os.path.islink(out):
        raise ValueError(f"{out}: is a symbolic link; an export replaces the folder it is given, never writing "
                         "through a link: give the folder the link points to, or a new path")  # fmt: skip
    if os.path.exists(out):
        if not os.path.isdir(out):
            raise NotADirectoryError(f"{out}: is a file, expected a folder for the SavedModel")
        foreign = sorted(name for name in os.listdir(out) if name not in SAVED_MODEL_ENTRIES)
        if foreign:
            raise ValueError(
                f"{out}: holds {', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}, not part of a "
                "SavedModel; an export replaces the whole folder: give a new or empty folder, or a previous export"
            )
    module = _Serving(model, item_map, k)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out)}.export-")
    try:
        tf.saved_model.save(
            module,
            staging,
            signatures={"serving_default": module.serve, "initial_state": module.initial_state},
        )
        _swap_in(staging, out)
    finally:  # after the swap, the staging path holds the previous export (or nothing)
        shutil.rmtree(staging, ignore_errors=True)
    return os.fspath(out_dir)


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: str, b: str) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where the C library, the kernel or
    the file system does not offer it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), b)


def _swap_in(new: str, target: str) -> None:
    """Put the folder ``new`` at ``target``; a previous ``target`` ends up at ``new`` (for the caller to remove)."""
    if not os.path.exists(target):
        os.rename(new, target)
        return
    if _exchange(new, target):
        return
    # without an atomic exchange: the previous folder moves into the staging folder's place, then the new one in;
    # if the second rename fails the previous folder is put back
    aside = tempfile.mkdtemp(dir=os.path.dirname(new), prefix=os.path.basename(new) + ".old-")
    os.rmdir(aside)
    os.rename(target, aside)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(aside, target)
        raise
    os.rename(aside, new)
