"""Negative samples: popularity^alpha, from a precomputed store, reproducible, restorable, usable in tf.function."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gru4rec.sampling import NegativeSampler, sampling_cdf


def test_cdf():
    cdf = sampling_cdf(np.array([1, 4, 0, 9]), 0.5)
    np.testing.assert_allclose(cdf, np.cumsum([1, 2, 0, 3]) / 6)
    assert cdf[-1] == 1.0
    with pytest.raises(ValueError):
        sampling_cdf(np.zeros(3), 0.5)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_frequencies_follow_support_power_alpha(alpha):
    counts = np.array([1, 10, 100, 0, 50])
    sampler = NegativeSampler(counts, n_sample=1000, sample_alpha=alpha, seed=1, store_size=200_000)
    draws = sampler.take(200).numpy().ravel()
    freq = np.bincount(draws, minlength=5) / draws.size
    weights = np.where(counts > 0, counts.astype(float) ** alpha, 0.0)
    np.testing.assert_allclose(freq, weights / weights.sum(), atol=0.005)
    assert freq[3] == 0


def test_store_refills_and_is_reproducible():
    counts = np.arange(1, 51)
    a = NegativeSampler(counts, n_sample=8, sample_alpha=0.75, seed=3, store_size=80)  # 10 rows
    b = NegativeSampler(counts, n_sample=8, sample_alpha=0.75, seed=3, store_size=80)
    blocks_a = [a.take(4).numpy() for _ in range(5)]  # 20 rows from a stream of 10-row fills: 2 refills
    blocks_b = [b.take(4).numpy() for _ in range(5)]
    for x, y in zip(blocks_a, blocks_b):
        np.testing.assert_array_equal(x, y)
    assert int(a.state.refills.numpy()) == 2
    stream = np.concatenate(blocks_a)
    c = NegativeSampler(counts, n_sample=8, sample_alpha=0.75, seed=3, store_size=80)
    np.testing.assert_array_equal(np.concatenate([c.take(n).numpy() for n in (3, 7, 1, 9)]), stream)
    assert not np.array_equal(blocks_a[0], blocks_a[2])  # a new fill draws new samples
    other = NegativeSampler(counts, n_sample=8, sample_alpha=0.75, seed=4, store_size=80)
    assert not np.array_equal(other.take(4).numpy(), blocks_a[0])


def test_restore_continues_the_same_sequence(tmp_path):
    counts = np.arange(1, 51)
    a = NegativeSampler(counts, n_sample=8, sample_alpha=0.5, seed=3, store_size=80)
    a.take(4)
    a.take(4)
    a.take(4)
    path = tf.train.Checkpoint(sampler=a.state).save(str(tmp_path / "s"))
    expected = a.take(4).numpy()
    b = NegativeSampler(counts, n_sample=8, sample_alpha=0.5, seed=3, store_size=80)
    tf.train.Checkpoint(sampler=b.state).restore(path)
    b.sync()
    np.testing.assert_array_equal(b.take(4).numpy(), expected)


def test_usable_inside_tf_function_and_no_samples():
    sampler = NegativeSampler(np.arange(1, 11), n_sample=5, sample_alpha=1.0, seed=0, store_size=50)

    @tf.function
    def draw():
        return sampler.take(2)

    out = draw()
    assert out.shape == (2, 5) and out.dtype == tf.int32
    empty = NegativeSampler(np.arange(1, 11), n_sample=0, sample_alpha=1.0, seed=0)
    assert empty.take(3).shape == (3, 0)
