"""A seeded generator of e-commerce-like clicks whose best possible next-item predictor is known exactly.

Why: the real RSC15 data (YooChoose, RecSys Challenge 2015) cannot be shipped with the kit, and on real data nobody
knows how good a model *could* be. Here the generating process is known, so the kit can compute the Bayes-optimal
next-item ranking and report its Recall@K / MRR@K: **the ceiling** every model in the notebooks is measured against.

The process (numpy only, vectorised; same preset and seed give the same clicks, byte for byte):

* **Items** have a Zipf-like popularity ``g(i) ∝ rank^-a`` and belong to one of ``K`` *intents* (think: a shopping
  mission such as "running shoes"); intent ``k`` picks items with ``q_k(i) ∝ g(i)`` over its own items.
* **A session** draws its intent ``z`` once (prior ``π_k`` ∝ the popularity mass of the intent's items) and keeps
  it for the whole session: the latent state a recurrent network can infer from several clicks, which no
  item-to-item (co-occurrence) model sees.
* **Its first click** comes from ``q_z`` with probability ``first_intent``, else from ``g``.
* **Every later click**, given the session so far ``x_1 .. x_t``, is a mixture of four components:

  - ``w_intent``: the intent, ``q_z(j)``;
  - ``w_transition``: a sparse item-to-item transition from the last click, ``T(x_t, j)`` (each item has
    ``n_successors`` successors, mostly of its own intent, with fixed decreasing probabilities);
  - ``w_repeat``: a repeat of an earlier click of the session, ``#{s <= t: x_s = j} / t``;
  - ``w_popular``: a popular item, ``g(j)``.

* **Session lengths** are ``1 + floor(LogNormal(μ, σ))`` (capped): most sessions are short (the median after the
  RSC15 filters is about 3), a few are long. Lengths do not depend on the clicks.
* **Timestamps**: sessions start on ``days`` consecutive days from 2014-04-01 (UTC) with a daily rhythm (busy
  evenings, quiet nights); clicks within a session are a log-normal number of seconds apart (median ~40 s);
  millisecond resolution, as in YooChoose. SessionIds are given in order of the session's start.

**The oracle** (:class:`OracleScorer`) is the exact predictive distribution of the next click given a session
prefix: ``P(x_{t+1} = j | x_1..x_t) = Σ_z P(z | x_1..x_t) · P(x_{t+1} = j | x_1..x_t, z)``, where the posterior over
the intent is updated click by click from the mixture likelihoods. Ranking items by it maximises the expected
Recall@K and MRR@K of every prediction, so no model can do better *in expectation* on data from this process.

**The ceiling is computed on the preprocessed test split**: the oracle sees each test session as it appears after
the RSC15 preprocessing (rare items and items unknown to training removed, short sessions dropped), i.e. exactly
the prefixes every model sees, and scores only the training catalogue. Where preprocessing removed a click from a
session, the oracle treats the remaining clicks as the session (as the models do), so the figure is the ceiling for
the evaluation protocol, not a strict bound for a model that could see the removed clicks; with the default presets
such removals touch well under 1 % of test events. The ceiling is also an expectation: on a finite test set a lucky
model may beat it by a hair.

Use: ``synth = generate("small", seed=42)``; ``synth.clicks`` (SessionId, ItemId, Time), ``synth.write(path)``
(yoochoose format), ``synth.oracle(item_map)`` (the scorer), ``ceiling(synth.process, test_df, train_item_map)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from gru4rec.io import ITEM_KEY, SESSION_KEY, TIME_KEY, PathLike, write_clicks

__all__ = [
    "PRESETS",
    "Preset",
    "SyntheticProcess",
    "SyntheticClicks",
    "make_process",
    "sample_sessions",
    "generate",
    "OracleScorer",
    "ceiling",
    "START_TIME",
]

START_TIME = 1396310400.0  # 2014-04-01T00:00:00Z, the first day of YooChoose
GENERATOR_VERSION = 2  # bump when the same (preset, seed) would give other clicks; generated presets are remade


@dataclass(frozen=True)
class Preset:
    """Sizes and shape parameters of a generated data set."""

    n_sessions: int
    n_items: int
    n_intents: int
    days: int
    zipf_exponent: float = 0.9
    length_mu: float = 0.55  # session length = 1 + floor(LogNormal(length_mu, length_sigma)), capped at max_length
    length_sigma: float = 1.0
    max_length: int = 200
    first_intent: float = 0.8
    w_intent: float = 0.55
    w_transition: float = 0.2
    w_repeat: float = 0.15
    w_popular: float = 0.1
    n_successors: int = 4
    successor_same_intent: float = 0.8
    note: str = ""


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        n_sessions=3_000, n_items=400, n_intents=12, days=14, zipf_exponent=0.8,
        note="a few thousand sessions in about a second: the embedded default for smoke tests",
    ),
    "small": Preset(
        n_sessions=100_000, n_items=24_000, n_intents=150, days=30, zipf_exponent=0.6,
        note="about 300k training events over about 20k items: the default for full notebook runs",
    ),
    "medium": Preset(
        n_sessions=650_000, n_items=40_000, n_intents=250, days=60, zipf_exponent=0.75,
        note="about 2M training events",
    ),
    "rsc15": Preset(
        n_sessions=9_250_000, n_items=53_000, n_intents=300, days=183, zipf_exponent=0.9,
        note="the size of yoochoose-clicks.dat (about 33M clicks over 6 months), for the preprocessing benchmark",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class SyntheticProcess:
    """The generating process: everything the oracle needs. Item index ``i`` has the original id ``item_ids[i]``."""

    item_ids: np.ndarray  # (n_items,) int64 ItemIds
    popularity: np.ndarray  # (n_items,) g, sums to 1
    item_intent: np.ndarray  # (n_items,) int64 home intent of each item
    intent_prior: np.ndarray  # (K,) π
    intent_items: np.ndarray  # (K, n_items) q_k, rows sum to 1
    successors: np.ndarray  # (n_items, m) int64 item indices
    successor_probs: np.ndarray  # (m,) transition probabilities of the m successors (sum 1)
    first_intent: float
    w_intent: float
    w_transition: float
    w_repeat: float
    w_popular: float

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_intents(self) -> int:
        return len(self.intent_prior)

    def __post_init__(self) -> None:
        weights = (self.w_intent, self.w_transition, self.w_repeat, self.w_popular)
        if min(weights) < 0 or abs(sum(weights) - 1.0) > 1e-9:
            raise ValueError(f"mixture weights must be >= 0 and sum to 1, got {weights}")
        if not 0 <= self.first_intent <= 1:
            raise ValueError("first_intent must be in [0, 1]")
        if self.intent_items.shape != (self.n_intents, self.n_items):
            raise ValueError("intent_items must have shape (n_intents, n_items)")
        if self.successors.shape[1] != len(self.successor_probs):
            raise ValueError("successors and successor_probs disagree on the number of successors")

    def transition_matrix(self) -> np.ndarray:
        """Dense ``T`` (n_items, n_items); for small processes (tests, teaching)."""
        matrix = np.zeros((self.n_items, self.n_items))
        rows = np.repeat(np.arange(self.n_items), self.successors.shape[1])
        np.add.at(matrix, (rows, self.successors.ravel()), np.tile(self.successor_probs, self.n_items))
        return matrix

    def next_item_distribution(self, prefix: Sequence[int]) -> np.ndarray:
        """Exact ``P(next item | prefix)`` over all item indices (a slow, readable reference; prefix = indices)."""
        prefix = [int(i) for i in prefix]
        log_post = np.log(self.intent_prior)
        counts = np.zeros(self.n_items)
        for t, item in enumerate(prefix):
            log_post = log_post + np.log(self._component_mix(t, prefix[t - 1] if t else -1, counts)[:, item])
            counts[item] += 1
        post = np.exp(log_post - log_post.max())
        post /= post.sum()
        return post @ self._component_mix(len(prefix), prefix[-1] if prefix else -1, counts)

    def _component_mix(self, t: int, last: int, counts: np.ndarray) -> np.ndarray:
        """(K, n_items): P(x_{t+1} = j | prefix of length t, z = k)."""
        if t == 0:
            return self.first_intent * self.intent_items + (1 - self.first_intent) * self.popularity[None, :]
        shared = self.w_popular * self.popularity + self.w_repeat * counts / t
        shared = shared + self.w_transition * self.transition_matrix()[last]
        return self.w_intent * self.intent_items + shared[None, :]


def _zipf_popularity(n_items: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Zipf weights ``rank^-exponent`` in a random item order, normalised."""
    weights = np.arange(1, n_items + 1, dtype=np.float64) ** -exponent
    weights = weights[rng.permutation(n_items)]
    return weights / weights.sum()


def make_process(preset: Preset, rng: np.random.Generator) -> SyntheticProcess:
    """Draw the items, intents and transitions of a preset."""
    n, k, m = preset.n_items, preset.n_intents, preset.n_successors
    if n < k:
        raise ValueError(f"need at least as many items ({n}) as intents ({k})")
    popularity = _zipf_popularity(n, preset.zipf_exponent, rng)
    # every intent gets at least one item; the rest are spread at random
    item_intent = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])[rng.permutation(n)].astype(np.int64)
    intent_items = np.zeros((k, n))
    intent_items[item_intent, np.arange(n)] = popularity
    intent_mass = intent_items.sum(axis=1)
    intent_items /= intent_mass[:, None]
    intent_prior = intent_mass / intent_mass.sum()
    # successors: mostly popular items of the same intent, otherwise popular items anywhere
    same = rng.random((n, m)) < preset.successor_same_intent
    within = _sample_intent_items(intent_items, np.repeat(item_intent, m), rng.random(n * m)).reshape(n, m)
    anywhere = _AliasSampler(popularity).sample(rng.random((n, m)))
    successors = np.where(same, within, anywhere).astype(np.int64)
    successor_probs = 0.5 ** np.arange(1, m + 1)
    successor_probs /= successor_probs.sum()
    ids = 214_500_000 + np.sort(rng.choice(4 * n, size=n, replace=False))
    item_ids = ids[rng.permutation(n)].astype(np.int64)  # ids say nothing about popularity
    return SyntheticProcess(
        item_ids=item_ids, popularity=popularity, item_intent=item_intent, intent_prior=intent_prior,
        intent_items=intent_items, successors=successors, successor_probs=successor_probs,
        first_intent=preset.first_intent, w_intent=preset.w_intent, w_transition=preset.w_transition,
        w_repeat=preset.w_repeat, w_popular=preset.w_popular,
    )  # fmt: skip


def _cdf(weights: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def _alias(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table (Vose's construction) of a discrete distribution: (threshold, alias), O(1) sampling."""
    n = len(weights)
    scaled = np.asarray(weights, dtype=np.float64) * (n / np.sum(weights))
    threshold = np.ones(n)
    alias = np.arange(n)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    scaled = scaled.tolist()
    while small and large:
        s, g = small.pop(), large.pop()
        threshold[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    return threshold, alias


class _IntentSampler:
    """Draw items from ``q_z`` for many sessions at once with one alias table per intent (O(1) per draw).

    One uniform number per draw: its integer part (after scaling by the intent's size) picks a slot, its fractional
    part decides between the slot's item and its alias.
    """

    def __init__(self, intent_items: np.ndarray) -> None:
        k = intent_items.shape[0]
        group, order = np.nonzero(intent_items > 0)  # row-major: grouped by intent
        self.order = order
        self.start = np.searchsorted(group, np.arange(k))
        self.size = np.searchsorted(group, np.arange(k), side="right") - self.start
        self.threshold = np.ones(len(order))
        self.alias = np.arange(len(order))
        for g in range(k):
            lo, hi = self.start[g], self.start[g] + self.size[g]
            threshold, alias = _alias(intent_items[g, order[lo:hi]])
            self.threshold[lo:hi] = threshold
            self.alias[lo:hi] = alias + lo

    def sample(self, intents: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        scaled = uniforms * self.size[intents]
        slot = np.minimum(scaled.astype(np.int64), self.size[intents] - 1)
        pos = self.start[intents] + slot
        pos = np.where(scaled - slot < self.threshold[pos], pos, self.alias[pos])
        return self.order[pos]


class _AliasSampler:
    """O(1) draws from one discrete distribution with one uniform number each."""

    def __init__(self, weights: np.ndarray) -> None:
        self.n = len(weights)
        self.threshold, self.alias = _alias(weights)

    def sample(self, uniforms: np.ndarray) -> np.ndarray:
        scaled = uniforms * self.n
        slot = np.minimum(scaled.astype(np.int64), self.n - 1)
        return np.where(scaled - slot < self.threshold[slot], slot, self.alias[slot])


def _sample_intent_items(intent_items: np.ndarray, intents: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    return _IntentSampler(intent_items).sample(intents, uniforms)


def _daily_rhythm() -> np.ndarray:
    """Relative click intensity per minute of the day: low at night, a peak in the evening (UTC ~ CET-2)."""
    minutes = np.arange(1440) / 60.0
    return 0.25 + np.exp(-0.5 * ((minutes - 19.0) / 3.0) ** 2) + 0.5 * np.exp(-0.5 * ((minutes - 11.0) / 2.5) ** 2)


@dataclass
class SyntheticClicks:
    """Generated clicks: ``clicks`` (SessionId, ItemId, Time), the true intent of each session, the process."""

    clicks: pd.DataFrame
    session_intent: np.ndarray  # (n_sessions,) intent of SessionId 1, 2, ...
    process: SyntheticProcess
    preset: str
    seed: int
    params: dict

    def write(self, path: PathLike) -> None:
        """Write the clicks in the yoochoose format (``SessionID,Timestamp,ItemID,Category``), atomically."""
        write_clicks(self.clicks, path)

    def oracle(self, item_map) -> OracleScorer:
        return OracleScorer(self.process, item_map)

    def describe(self) -> dict:
        lengths = self.clicks.groupby(SESSION_KEY).size().to_numpy()
        return {
            "generator_version": GENERATOR_VERSION,
            "preset": self.preset,
            "seed": self.seed,
            "clicks": int(len(self.clicks)),
            "sessions": int(len(lengths)),
            "items_in_catalogue": int(self.process.n_items),
            "items_clicked": int(self.clicks[ITEM_KEY].nunique()),
            "intents": int(self.process.n_intents),
            "median_session_length": float(np.median(lengths)),
            "mean_session_length": float(lengths.mean()),
            "days": float((self.clicks[TIME_KEY].max() - self.clicks[TIME_KEY].min()) / 86400.0),
        }


def sample_sessions(
    process: SyntheticProcess,
    n_sessions: int,
    rng: np.random.Generator,
    days: int = 14,
    length_mu: float = 0.55,
    length_sigma: float = 1.0,
    max_length: int = 200,
    lengths: Optional[np.ndarray] = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Sample sessions from ``process``: (clicks frame, intent of each session). Vectorised over sessions.

    ``lengths`` fixes the session lengths (tests); otherwise ``1 + floor(LogNormal(length_mu, length_sigma))``.
    """
    if lengths is None:
        lengths = 1 + np.floor(rng.lognormal(length_mu, length_sigma, n_sessions)).astype(np.int64)
        lengths = np.minimum(lengths, max_length)
    lengths = np.asarray(lengths, dtype=np.int64)
    n_sessions = len(lengths)
    intents = np.searchsorted(_cdf(process.intent_prior), rng.random(n_sessions), side="right")
    intents = np.minimum(intents, process.n_intents - 1).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    n_events = int(offsets[-1])
    items = np.empty(n_events, dtype=np.int64)
    sampler = _IntentSampler(process.intent_items)
    popular = _AliasSampler(process.popularity).sample
    succ_cdf = _cdf(process.successor_probs)
    n_succ = len(succ_cdf)

    # position 0
    u_comp, u_item = rng.random(n_sessions), rng.random(n_sessions)
    from_intent = u_comp < process.first_intent
    items[offsets[:-1]] = np.where(from_intent, sampler.sample(intents, u_item), popular(u_item))
    # positions 1, 2, ...: sessions sorted by length, so the active ones are a prefix of this order
    by_length = np.argsort(-lengths, kind="stable")
    sorted_lengths = lengths[by_length]
    bounds = np.cumsum([process.w_intent, process.w_transition, process.w_repeat])
    for t in range(1, int(lengths.max()) if n_sessions else 0):
        active = by_length[: np.searchsorted(-sorted_lengths, -t, side="left")]
        base = offsets[active]
        u_comp, u_item = rng.random(len(active)), rng.random(len(active))
        component = np.searchsorted(bounds, u_comp, side="right")  # 0 intent, 1 transition, 2 repeat, 3 popular
        chosen = np.empty(len(active), dtype=np.int64)
        rows = np.flatnonzero(component == 0)
        chosen[rows] = sampler.sample(intents[active[rows]], u_item[rows])
        rows = np.flatnonzero(component == 1)
        which = np.minimum(np.searchsorted(succ_cdf, u_item[rows], side="right"), n_succ - 1)
        chosen[rows] = process.successors[items[base[rows] + t - 1], which]
        rows = np.flatnonzero(component == 2)
        chosen[rows] = items[base[rows] + np.minimum((u_item[rows] * t).astype(np.int64), t - 1)]
        rows = np.flatnonzero(component == 3)
        chosen[rows] = popular(u_item[rows])
        items[base + t] = chosen

    # time: session starts with a daily rhythm, then log-normal gaps (median ~40 s)
    rhythm = _daily_rhythm()
    minute = np.searchsorted(_cdf(rhythm), rng.random(n_sessions), side="right").clip(0, 1439)
    day = rng.integers(0, days, n_sessions)
    start = day * 86400.0 + minute * 60.0 + rng.random(n_sessions) * 60.0
    gaps = rng.lognormal(np.log(40.0), 1.1, n_events)
    gaps[offsets[:-1]] = 0.0
    gaps = np.minimum(gaps, 3600.0)
    within = np.cumsum(gaps)
    within -= np.repeat(within[offsets[:-1]], lengths)
    order = np.argsort(start, kind="stable")  # SessionIds in order of the start time
    times = START_TIME + np.repeat(start, lengths) + within
    times = np.round(times * 1000.0) / 1000.0  # millisecond resolution, as in yoochoose
    # rows in SessionId order (as in yoochoose-clicks.dat), each session's clicks in time order: move whole blocks
    new_lengths = lengths[order]
    new_starts = np.concatenate([[0], np.cumsum(new_lengths)[:-1]]).astype(np.int64)
    event_order = np.arange(n_events, dtype=np.int64) + np.repeat(offsets[:-1][order] - new_starts, new_lengths)
    frame = pd.DataFrame(
        {
            SESSION_KEY: np.repeat(np.arange(1, n_sessions + 1, dtype=np.int64), new_lengths),
            ITEM_KEY: process.item_ids[items[event_order]],
            TIME_KEY: times[event_order],
        }
    )
    return frame, intents[order]


def generate(preset: str = "tiny", seed: int = 42, **overrides) -> SyntheticClicks:
    """Generate the clicks of a preset (``tiny``, ``small``, ``medium``, ``rsc15``); ``overrides`` change fields."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    params = dataclasses.replace(PRESETS[preset], **overrides)
    rng = np.random.default_rng(seed)
    process = make_process(params, rng)
    clicks, intents = sample_sessions(
        process, params.n_sessions, rng, days=params.days, length_mu=params.length_mu,
        length_sigma=params.length_sigma, max_length=params.max_length,
    )  # fmt: skip
    return SyntheticClicks(clicks, intents, process, preset, int(seed), dataclasses.asdict(params))


class OracleScorer:
    """The Bayes-optimal next-item scorer of a :class:`SyntheticProcess` (evaluation scorer protocol).

    Scores are the exact predictive probabilities ``P(next = j | session so far)`` of the items of ``item_map``
    (the training catalogue, indices as in the ItemMap; catalogue items the process does not know score 0).
    State per lane: the log posterior over intents, the session length so far, the last item and the session's
    clicks so far (for the repeat component). Everything is computed in the item map's index space, so a step costs
    a few passes over ``(batch, n_items)``.
    """

    def __init__(self, process: SyntheticProcess, item_map) -> None:
        self.process = process
        self.item_map = item_map
        ids = np.asarray(item_map.ids, dtype=np.int64)
        order = np.argsort(process.item_ids)
        pos = np.clip(np.searchsorted(process.item_ids[order], ids), 0, process.n_items - 1)
        known = process.item_ids[order][pos] == ids
        gen = np.where(known, order[pos], 0)
        self.n_items = len(ids)
        self._known = known
        self._gen = gen  # item-map index -> process item index (0 where unknown; see _known)
        gen_to_map = np.full(process.n_items, -1, dtype=np.int64)
        gen_to_map[gen[known]] = np.flatnonzero(known)
        self._succ_map = gen_to_map[process.successors]  # (n_process_items, m) successors as map indices or -1
        p = process
        self._log_prior = np.log(p.intent_prior)
        self._first = p.first_intent * p.intent_items + (1 - p.first_intent) * p.popularity[None, :]
        zero = ~known
        self._pop = np.where(zero, 0.0, p.w_popular * p.popularity[gen])
        # disjoint intents (the generator's): q_z(j) is non-zero for one z per item, so the posterior mixture is a
        # gather instead of a (batch, K) x (K, n_items) product
        self._disjoint = bool(np.all((p.intent_items > 0).sum(axis=0) <= 1))
        if self._disjoint:
            intent_of = p.intent_items.argmax(axis=0)
            self._item_intent = intent_of[gen]
            self._item_q = np.where(zero, 0.0, p.w_intent * p.intent_items[intent_of, np.arange(p.n_items)][gen])
        else:
            self._intent_matrix = np.where(zero[None, :], 0.0, p.w_intent * p.intent_items[:, gen])

    def start(self, batch_size: int) -> dict:
        return {
            "log_post": np.tile(self._log_prior, (batch_size, 1)),
            "t": np.zeros(batch_size, dtype=np.int64),
            "last": np.zeros(batch_size, dtype=np.int64),  # process index of the last click
            "history": np.full((batch_size, 8), -1, dtype=np.int64),  # map indices of the session's clicks
        }

    def reset(self, state: dict, mask: np.ndarray) -> dict:
        mask = np.asarray(mask, dtype=bool)
        state["log_post"][mask] = self._log_prior
        state["t"][mask] = 0
        state["last"][mask] = 0
        state["history"][mask] = -1
        return state

    def step(self, state: dict, items: np.ndarray) -> tuple[np.ndarray, dict]:
        p = self.process
        items = np.asarray(items, dtype=np.int64)
        x = self._gen[items]
        batch = len(x)
        lanes = np.arange(batch)
        t, last, history = state["t"], state["last"], state["history"]
        # likelihood of the observed click under each intent (lanes at t = 0 use the first-click distribution)
        repeats = (history == items[:, None]).sum(axis=1)
        transition = (p.successors[last] == x[:, None]) @ p.successor_probs
        shared = p.w_popular * p.popularity[x] + p.w_repeat * repeats / np.maximum(t, 1) + p.w_transition * transition
        later = p.w_intent * p.intent_items[:, x].T + shared[:, None]
        lik = np.where((t == 0)[:, None], self._first[:, x].T, later)
        lik = np.where(self._known[items][:, None], lik, 1.0)  # an unknown item tells nothing
        log_post = state["log_post"] + np.log(lik)
        log_post -= log_post.max(axis=1, keepdims=True)
        # append the click to the session's history (grow the history when a session gets long)
        if int(t.max(initial=0)) >= history.shape[1]:
            history = np.concatenate([history, np.full_like(history, -1)], axis=1)
        history[lanes, t] = items
        t = t + 1
        state = {"log_post": log_post, "t": t, "last": x, "history": history}
        post = np.exp(log_post)
        post /= post.sum(axis=1, keepdims=True)
        # predictive distribution of the next click over the item map
        if self._disjoint:
            scores = np.take(post, self._item_intent, axis=1)
            scores *= self._item_q
        else:
            scores = post @ self._intent_matrix
        scores += self._pop
        filled = history >= 0
        rows = np.broadcast_to(lanes[:, None], history.shape)[filled]
        np.add.at(scores, (rows, history[filled]), (p.w_repeat / t)[rows])
        succ = self._succ_map[x]  # (batch, m)
        ok = succ >= 0
        weights = np.broadcast_to(p.w_transition * p.successor_probs, succ.shape)
        np.add.at(scores, (np.broadcast_to(lanes[:, None], succ.shape)[ok], succ[ok]), weights[ok])
        return scores, state


def ceiling(
    process: SyntheticProcess,
    test: pd.DataFrame,
    item_map,
    cutoffs: Sequence[int] = (1, 5, 10, 20),
    batch_size: int = 256,
) -> dict:
    """Recall@K / MRR@K of the Bayes-optimal predictor on a (preprocessed) test split, with the training item map.

    ``test`` is a SessionId/ItemId/Time frame (e.g. ``rsc15_test.txt``); it is indexed with ``item_map`` as for any
    model (unknown items dropped). Uses :func:`gru4rec.evaluate.evaluate` with its default (conservative) ties.
    """
    from gru4rec.evaluate import evaluate
    from gru4rec.session_data import SessionData

    data = SessionData.from_frame(test, item_map=item_map)
    return evaluate(OracleScorer(process, item_map), data, cutoffs=cutoffs, batch_size=batch_size)
