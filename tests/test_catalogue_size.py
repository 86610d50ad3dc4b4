"""Sampled training touches only the rows of a step's items, whatever the catalogue: a chunk leaves every other row of
the item matrices and of their optimizer slots bit-identical, and the traced chunk never reads an item-sized variable
as a whole (a dense read or update would cost time in proportion to the catalogue at every step). Adam here is the
kit's lazy one (``lazy_adam=True``); the seed's TF1 Adam (``lazy_adam=False``, preset ``seed``) is dense by design."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from gru4rec.config import Config
from gru4rec.session_data import SessionData
from gru4rec.train import Trainer

N_USED = 30  # the items the sessions use; the catalogue has N_ITEMS, the rest never occurs
N_ITEMS = 4_000

CONFIGS = {
    "official": Config.preset("official", layers=(8,), batch_size=6, n_sample=12, chunk_steps=8),
    "official_bptt": Config.preset("official", layers=(8,), batch_size=6, n_sample=12, chunk_steps=8, bptt_steps=4),
    "seed_adam_separate": Config.preset(
        "seed", layers=(8,), batch_size=6, embedding=5, chunk_steps=8, lazy_adam=True, epoch_end="all_sessions"
    ),
    "adam_samples_one_hot": Config.preset(
        "seed", layers=(8,), batch_size=6, embedding=0, n_sample=10, chunk_steps=8, dropout_p_hidden=0.0,
        lazy_adam=True, epoch_end="all_sessions",
    ),
}


def _data():
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 6, 40)
    frame = pd.DataFrame(
        {
            "SessionId": np.repeat(np.arange(40), lengths),
            "ItemId": rng.integers(0, N_USED, lengths.sum()),
            "Time": np.arange(lengths.sum(), dtype=float),
        }
    )
    return SessionData.from_frame(frame)


def _item_variables(trainer):
    """Every item-indexed variable (model and optimizer slots) with its name."""
    out = []
    for var, slots in zip(trainer.optimizer.variables_, trainer.optimizer.slots):
        if var.shape[0] == N_ITEMS:
            out.append((var.name, var))
            out.extend((f"{var.name}/{name}", slot) for name, slot in slots.items())
    return out


def _trainer(name):
    data = _data()
    counts = np.zeros(N_ITEMS, np.int64)  # the catalogue's other items have no support: never sampled
    counts[: data.n_items] = data.item_counts
    return Trainer(CONFIGS[name], N_ITEMS, counts), data


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS))
def test_an_epoch_leaves_the_rows_of_unused_items_and_their_slots_bit_identical(name):
    trainer, data = _trainer(name)
    before = {label: var.numpy().copy() for label, var in _item_variables(trainer)}
    assert before, "no item-sized variable found"
    out = trainer.run_epoch(data, 0)
    assert out["n_steps"] > 2 * trainer.chunk and np.isfinite(out["loss"])
    for label, var in _item_variables(trainer):
        after = var.numpy()
        np.testing.assert_array_equal(after[data.n_items :], before[label][data.n_items :], err_msg=label)
        if label.split("/")[-1] != "mom" or trainer.config.momentum > 0:
            assert not np.array_equal(after[: data.n_items], before[label][: data.n_items]), label


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_traced_chunk_reads_no_item_sized_variable_whole(name, monkeypatch):
    """Row gathers (``sparse_read``) and row scatters are allowed; a dense read (``value()``, a conversion to a
    tensor, arithmetic on the variable) goes through ``_read_variable_op`` and is recorded."""
    trainer, data = _trainer(name)
    dense_reads = []
    for label, var in _item_variables(trainer):
        original = var._read_variable_op

        def recording(*args, _label=label, _original=original, **kwargs):
            dense_reads.append(_label)
            return _original(*args, **kwargs)

        monkeypatch.setattr(var, "_read_variable_op", recording)
    c, b = trainer.chunk, trainer.batch
    args = [tf.zeros((c, b), tf.int32), tf.zeros((c, b), tf.int32), tf.zeros((c, b), bool), tf.ones((c, b), bool)]
    trainer.run_chunk.get_concrete_function(
        *args, trainer.sampler.take(c), tf.constant(c // trainer.k, tf.int32), trainer.model.initial_state(b)
    )
    assert dense_reads == []
    # the recorder works: a dense read is seen
    trainer.model.Wy.value()
    assert dense_reads
