"""Negative samples: popularity^alpha, from a precomputed store, reproducible, restorable, usable in tf.function."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gru4rec.sampling import NegativeSampler, alias_probabilities, alias_table, sampling_cdf


def chi_square_bound(dof: int, z: float = 4.0) -> float:
    """Upper quantile of the chi-square distribution (Wilson-Hilferty), ``z`` standard normal deviations out
    (z = 4: exceeded with probability about 3e-5 by a correct sampler)."""
    c = 2.0 / (9.0 * dof)
    return dof * (1.0 - c + z * np.sqrt(c)) ** 3


def test_cdf():
    cdf = sampling_cdf(np.array([1, 4, 0, 9]), 0.5)
    np.testing.assert_allclose(cdf, np.cumsum([1, 2, 0, 3]) / 6)
    assert cdf[-1] == 1.0
    with pytest.raises(ValueError):
        sampling_cdf(np.zeros(3), 0.5)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.75, 1.0])
def test_alias_table_gives_support_power_alpha_exactly(alpha):
    rng = np.random.default_rng(0)
    counts = rng.zipf(1.3, 5_000).clip(max=100_000)
    counts[rng.choice(5_000, 400, replace=False)] = 0  # items never seen in training
    prob, alias = alias_table(counts, alpha)
    assert prob.dtype == np.float64 and alias.dtype == np.int32 and prob.shape == alias.shape == (5_000,)
    assert np.all((prob >= 0) & (prob <= 1))
    weights = np.where(counts > 0, counts.astype(float) ** alpha, 0.0)
    np.testing.assert_allclose(alias_probabilities(prob, alias), weights / weights.sum(), rtol=1e-9, atol=1e-15)
    zero = counts == 0
    assert np.all(prob[zero] == 0) and np.all(counts[alias[zero]] > 0)  # never drawn, not even as an alias
    assert not np.isin(alias[prob < 1], np.flatnonzero(zero)).any()


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_frequencies_follow_support_power_alpha(alpha):
    counts = np.array([1, 10, 100, 0, 50])
    sampler = NegativeSampler(counts, n_sample=1000, sample_alpha=alpha, seed=1, store_size=200_000)
    draws = sampler.take(200).numpy().ravel()
    freq = np.bincount(draws, minlength=5) / draws.size
    weights = np.where(counts > 0, counts.astype(float) ** alpha, 0.0)
    expected = weights / weights.sum()
    # 5 standard errors of a frequency from this many draws
    np.testing.assert_allclose(freq, expected, atol=5 * np.sqrt(expected * (1 - expected) / draws.size).max())
    assert freq[3] == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_chi_square_against_support_power_alpha_on_a_long_tail(seed):
    """Many items, most of them rare, some never seen: the draws of several refills pass a chi-square test of
    goodness of fit to support ** 0.5 (seeded, so the verdict is reproducible)."""
    rng = np.random.default_rng(seed)
    counts = rng.zipf(1.5, 2_000).clip(max=5_000)
    counts[rng.choice(2_000, 100, replace=False)] = 0
    sampler = NegativeSampler(counts, n_sample=2_000, sample_alpha=0.5, seed=seed, store_size=200_000)  # 100 rows
    draws = np.concatenate([sampler.take(100).numpy().ravel() for _ in range(3)])  # 3 refills, 600,000 draws
    assert int(sampler.state.refills.numpy()) == 3
    observed = np.bincount(draws, minlength=2_000)
    weights = np.where(counts > 0, counts.astype(float) ** 0.5, 0.0)
    expected = draws.size * weights / weights.sum()
    assert observed[counts == 0].sum() == 0
    # pool the items expected fewer than 5 times into one cell (the usual condition of the test)
    rare = (expected < 5) & (counts > 0)
    cells_obs, cells_exp = observed[expected >= 5], expected[expected >= 5]
    if rare.any():
        cells_obs, cells_exp = np.append(cells_obs, observed[rare].sum()), np.append(cells_exp, expected[rare].sum())
    chi2 = float(((cells_obs - cells_exp) ** 2 / cells_exp).sum())
    assert len(cells_obs) > 500
    assert chi2 < chi_square_bound(len(cells_obs) - 1), chi2
    # the test has power: the same draws against support ** 0.55 fail it
    other = weights**1.1 * draws.size / (weights**1.1).sum()
    keep = expected >= 5
    assert float(((observed[keep] - other[keep]) ** 2 / other[keep]).sum()) > chi_square_bound(int(keep.sum()) - 1)


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
