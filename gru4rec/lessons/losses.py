"""Why the losses and the negative sampling matter (notebook 07): the gradient on the target's score, and sweeps.

:func:`target_gradient` builds one row of controlled scores (the target, and ``n_negatives`` negatives whose scores
are a fixed standard-normal draw times ``score_std``, the target placed so that exactly ``rank`` negatives score
above it), runs the package's own loss (:func:`gru4rec.losses.row_losses`) on it under ``tf.GradientTape`` and returns
the size of the gradient on the target's score. No training: the whole figure takes seconds.

The kit's BPR and TOP1 are averages over the columns (``gru4rec.losses``; BPR as the 2018 Theano code, the current
Theano code sums BPR over the columns), the form that Hidasi & Karatzoglou (CIKM 2018, section 3.1) analyse: an
average of terms that vanish for every negative scored well below the target, while BPR-max and TOP1-max weight the
negatives by a softmax over their scores and so keep the gradient of the few that still compete.

:func:`run_sweep` trains and evaluates a list of configurations on the same data (``gru4rec.train.train``,
``gru4rec.evaluate.evaluate``) for the trained sweeps of the notebook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
import tensorflow as tf

from gru4rec.config import LOSSES, Config
from gru4rec.lessons.seed_to_official import measure
from gru4rec.losses import row_losses
from gru4rec.reuse import train_or_reuse
from gru4rec.run_folder import drop_checkpoints
from gru4rec.session_data import SessionData


def controlled_scores(n_negatives: int, rank: int, score_std: float = 3.0, seed: int = 0) -> np.ndarray:
    """``(1 + n_negatives,)`` float32 scores: the target first, then the negatives, exactly ``rank`` of which score
    above the target (``rank=0``: the target on top). The negatives are the first ``n_negatives`` of one fixed
    standard-normal stream, times ``score_std``: adding negatives keeps the earlier ones."""
    if n_negatives < 1:
        raise ValueError(f"n_negatives: must be >= 1, got {n_negatives}")
    if not 0 <= rank <= n_negatives:
        raise ValueError(f"rank: must be in [0, n_negatives={n_negatives}], got {rank}")
    if score_std <= 0:
        raise ValueError(f"score_std: must be > 0, got {score_std}")
    negatives = np.random.default_rng(seed).standard_normal(n_negatives) * score_std
    ordered = np.sort(negatives)[::-1]
    if rank == 0:
        target = ordered[0] + 0.5 * score_std
    elif rank == n_negatives:
        target = ordered[-1] - 0.5 * score_std
    else:
        target = 0.5 * (ordered[rank - 1] + ordered[rank])
    return np.concatenate([[target], negatives]).astype(np.float32)


def target_gradient(loss: str, n_negatives: int, rank: int, score_std: float = 3.0, seed: int = 0,
                    bpreg: float = 0.0) -> float:  # fmt: skip
    """|d loss / d target score| for one row of :func:`controlled_scores`, with ``gru4rec.losses.row_losses``.

    The row is laid out as the trainer's: one lane (batch 1) whose target is column 0, the negatives as the
    ``n_negatives`` sampled columns. Final activation: softmax for cross-entropy, linear for the others (the
    loss alone, no ELU); ``bpreg`` 0 (the score regularisation of BPR-max is a separate matter)."""
    if loss not in LOSSES:
        raise ValueError(f"loss: unknown value {loss!r}; allowed: {', '.join(LOSSES)}")
    scores = tf.Variable(controlled_scores(n_negatives, rank, score_std, seed)[np.newaxis, :])  # (1, 1 + n)
    final_act = "softmax" if loss == "cross-entropy" else "linear"
    with tf.GradientTape() as tape:
        value = row_losses(scores, tf.constant([True]), loss, final_act, bpreg=bpreg)[0]
    gradient = tape.gradient(value, scores)  # (1, 1 + n)
    return float(abs(gradient[0, 0].numpy()))


def gradient_table(losses: Sequence[str], n_negatives: Sequence[int], ranks: Sequence[int],
                   score_std: float = 3.0, seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """One row per (loss, n_negatives, rank) with ``rank <= n_negatives``: columns ``loss``, ``n_negatives``,
    ``rank`` (negatives above the target), ``gradient`` (|d loss / d target score|)."""
    rows = [
        {"loss": loss, "n_negatives": int(n), "rank": int(r),
         "gradient": target_gradient(loss, int(n), int(r), score_std, seed)}
        for loss in losses for n in n_negatives for r in ranks if r <= n
    ]  # fmt: skip
    return pd.DataFrame(rows)


def shrink_factor(table: pd.DataFrame, loss: str, rank: int) -> float:
    """How many times smaller the gradient of ``loss`` is at the most negatives than at the fewest (same ``rank``)."""
    part = table[(table["loss"] == loss) & (table["rank"] == rank)].sort_values("n_negatives")
    if len(part) < 2:
        raise ValueError(f"need at least two n_negatives for loss {loss!r} at rank {rank}")
    return float(part["gradient"].iloc[0] / part["gradient"].iloc[-1])


def run_sweep(
    configs: Mapping[str, Config],
    train_data: SessionData,
    test_data: SessionData,
    out_dir: Union[str, Path],
    k: int = 20,
    ceiling: Optional[Mapping[str, float]] = None,
    on_run: Optional[Callable[[dict], None]] = None,
    keep_checkpoints: bool = True,
    reuse: Sequence[Union[str, Path]] = (),
    **extra: Any,
) -> pd.DataFrame:
    """Train and evaluate (conservative ties) every ``configs[label]`` into ``out_dir/<nn>``; one row per label with
    ``label``, ``recall@K``, ``mrr@K`` (+ their share of ``ceiling``), ``epoch_seconds``, ``events_per_s``,
    ``final_loss``, ``reused_from`` and the ``extra`` columns (a value per label, e.g. ``n_sample={label: 128,
    ...}``). Equal configs under two labels are trained once. A config of which a folder of ``reuse`` holds a
    finished run on the same data is read from there instead of trained (``gru4rec.reuse``; ``reused_from`` names
    the folder, None for a run trained here). ``keep_checkpoints=False`` deletes each run's ``checkpoints/`` once it
    is measured (logs and config stay; a reused folder is never touched)."""
    out_dir = Path(out_dir)
    rows, done = [], {}
    for number, (label, config) in enumerate(configs.items()):
        key = config.to_json(sort_keys=True)
        if key not in done:  # a configuration shared by two sweeps is trained once
            run_dir = out_dir / f"{number:02d}"
            result = train_or_reuse(config, train_data, run_dir, reuse=reuse, progress=False)
            reused = Path(result.run_dir) != run_dir
            done[key] = {**measure(result, train_data, test_data, k=k, ceiling=ceiling),
                         "reused_from": str(result.run_dir) if reused else None}  # fmt: skip
            if not keep_checkpoints and not reused:
                drop_checkpoints(run_dir)
        row = {"label": label, **done[key]}
        row.update({name: values[label] for name, values in extra.items()})
        rows.append(row)
        if on_run is not None:
            on_run(row)
    return pd.DataFrame(rows)
