"""``gru4rec.precision``: policies, the NPU mapping, the loss scaler's arithmetic, and learning in bfloat16/float16.

Everything here runs on the CPU. The NPU mappings are only checked as values: no NPU executed.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gru4rec import precision
from gru4rec.precision import DynamicLossScale, LossScaleSettings, get_policy

# ------------------------------------------------------------------------------------------------------ policies


def test_policies_keep_float32_variables_and_cast_the_forward_pass():
    assert get_policy("fp32").compute_dtype == tf.float32
    assert get_policy("mixed_bfloat16").compute_dtype == tf.bfloat16
    assert get_policy("mixed_float16", "gpu").compute_dtype == tf.float16
    for name in precision.PRECISIONS:
        policy = get_policy(name)
        assert policy.variable_dtype == tf.float32
        assert policy.cast(tf.constant([1, 2])).dtype == tf.int32  # indices pass through
        assert policy.cast(tf.constant([1.0])).dtype == policy.compute_dtype
        assert policy.to_float32(policy.cast(tf.constant([1.5]))).dtype == tf.float32
    assert get_policy("mixed_float16").loss_scale == precision.DEFAULT_LOSS_SCALE
    assert get_policy("mixed_bfloat16").loss_scale is None and get_policy("fp32").loss_scale is None


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="--precision must be one of fp32, mixed_bfloat16, mixed_float16"):
        get_policy("fp16")


def test_npu_mapping_values_only_no_npu_executed():
    print("[no NPU executed: the NPU precision mapping is checked as values only]")
    assert precision.npu_precision_mode("fp32") == "must_keep_origin_dtype"
    assert precision.npu_precision_mode("mixed_float16") == "allow_mix_precision"
    npu16 = get_policy("mixed_float16", "npu")
    # the adapter converts operators itself: the model code keeps float32 and only the loss is scaled
    assert npu16.compute_dtype == tf.float32
    assert npu16.npu_precision_mode == "allow_mix_precision"
    assert npu16.loss_scale.initial_scale == 2.0**32
    assert (npu16.loss_scale.growth_interval, npu16.loss_scale.decrease_every) == (1000, 2)
    assert get_policy("fp32", "npu").loss_scale is None


def test_cast_after_gather_keeps_sparse_float32_gradients():
    policy = get_policy("mixed_bfloat16")
    table = tf.Variable(tf.random.normal((50, 8)))
    with tf.GradientTape() as tape:
        rows = policy.cast(tf.gather(table, [3, 7, 3]))
        loss = tf.reduce_sum(policy.to_float32(rows * rows))
    (grad,) = tape.gradient(loss, [table])
    assert isinstance(grad, tf.IndexedSlices)
    assert grad.values.dtype == tf.float32


# ------------------------------------------------------------------------------------------ loss-scale arithmetic


def _grads(value):
    return [tf.constant([value, 1.0]), None, tf.IndexedSlices(tf.constant([[value]]), tf.constant([2]), [4, 1])]


def test_scaler_grows_after_n_finite_steps_and_halves_on_overflow():
    scaler = DynamicLossScale(LossScaleSettings(initial_scale=8.0, growth_interval=3, decrease_every=1))
    for _ in range(2):
        scaler.update(True)
    assert float(scaler.scale) == 8.0 and int(scaler.good_steps) == 2
    scaler.update(True)  # third finite step in a row
    assert float(scaler.scale) == 16.0 and int(scaler.good_steps) == 0
    scaler.update(True)
    scaler.update(False)  # overflow: halve, restart the count of good steps
    assert float(scaler.scale) == 8.0 and int(scaler.good_steps) == 0
    scaler.update(True)
    scaler.update(True)
    assert float(scaler.scale) == 8.0  # only 2 good steps since the overflow


def test_scaler_decrease_every_two_overflows_and_floor():
    settings = LossScaleSettings(initial_scale=4.0, growth_interval=10, decrease_every=2, min_scale=1.0)
    scaler = DynamicLossScale(settings)
    scaler.update(False)
    assert float(scaler.scale) == 4.0 and int(scaler.bad_steps) == 1
    scaler.update(False)
    assert float(scaler.scale) == 2.0 and int(scaler.bad_steps) == 0
    for _ in range(6):
        scaler.update(False)
    assert float(scaler.scale) == 1.0  # never below min_scale


def test_scaler_never_grows_to_infinity():
    scaler = DynamicLossScale(LossScaleSettings(initial_scale=2.0**127, growth_interval=1))
    scaler.update(True)
    assert float(scaler.scale) == 2.0**127


def test_unscale_and_finite_check_handle_sparse_and_none():
    scaler = DynamicLossScale(LossScaleSettings(initial_scale=4.0))
    dense, none, sparse = scaler.unscale(_grads(8.0))
    np.testing.assert_allclose(dense.numpy(), [2.0, 0.25])
    assert none is None
    assert isinstance(sparse, tf.IndexedSlices) and float(sparse.values[0, 0]) == 2.0
    assert bool(precision.all_finite(_grads(1.0)))
    assert not bool(precision.all_finite(_grads(np.inf)))
    assert not bool(precision.all_finite(_grads(np.nan)))


def test_overflowing_step_is_skipped_inside_tf_function():
    var = tf.Variable([1.0, 1.0])
    scaler = DynamicLossScale(LossScaleSettings(initial_scale=1024.0, growth_interval=100))

    @tf.function
    def step(value):
        grads = [tf.stack([value, value]) * scaler.scale]  # what tape.gradient(scaler.scale_loss(...)) gives
        return scaler.apply_gradients(grads, lambda g: var.assign_sub(g[0]))

    assert bool(step(tf.constant(0.5)))
    np.testing.assert_allclose(var.numpy(), [0.5, 0.5])  # applied, unscaled
    assert not bool(step(tf.constant(np.inf, tf.float32)))
    np.testing.assert_allclose(var.numpy(), [0.5, 0.5])  # skipped
    assert float(scaler.scale) == 512.0
    assert bool(step(tf.constant(0.25)))
    np.testing.assert_allclose(var.numpy(), [0.25, 0.25])


def test_scaler_is_checkpointable(tmp_path):
    scaler = DynamicLossScale(LossScaleSettings(initial_scale=64.0))
    scaler.update(False)
    path = tf.train.Checkpoint(scaler=scaler).write(str(tmp_path / "ckpt"))
    restored = DynamicLossScale(LossScaleSettings(initial_scale=64.0))
    tf.train.Checkpoint(scaler=restored).read(path).assert_consumed()
    assert float(restored.scale) == 32.0


# -------------------------------------------------------------------------------- it still learns, on the CPU


def _fit_linear(policy_name, steps=300, lr=0.1):
    """A hand-written linear model (float32 master weights) trained with plain SGD under a precision policy."""
    policy = get_policy(policy_name, "cpu")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype(np.float32)
    w_true = rng.normal(size=(8, 1)).astype(np.float32)
    y = x @ w_true + 0.5 + 0.01 * rng.normal(size=(256, 1)).astype(np.float32)
    w = tf.Variable(tf.zeros((8, 1)))
    b = tf.Variable(tf.zeros((1,)))
    scaler = policy.new_loss_scale()
    seen = {}

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            pred = tf.matmul(policy.cast(x), policy.cast(w)) + policy.cast(b)
            seen["compute"] = pred.dtype
            loss = tf.reduce_mean(tf.square(policy.to_float32(pred) - y))
            scaled = scaler.scale_loss(loss) if scaler is not None else loss
        grads = tape.gradient(scaled, [w, b])
        seen["grad"] = grads[0].dtype

        def apply(g):
            w.assign_sub(lr * g[0])
            b.assign_sub(lr * g[1])

        if scaler is not None:
            scaler.apply_gradients(grads, apply)
        else:
            apply(grads)
        return loss

    losses = [float(train_step()) for _ in range(steps)]
    return losses, w.numpy(), float(b.numpy()[0]), w_true, seen, scaler


@pytest.mark.parametrize("policy_name, tol", [("fp32", 0.01), ("mixed_bfloat16", 0.05), ("mixed_float16", 0.02)])
def test_linear_regression_still_learns_on_cpu(policy_name, tol):
    losses, w, b, w_true, seen, scaler = _fit_linear(policy_name)
    print(f"{policy_name}: loss {losses[0]:.4f} -> {losses[-1]:.5f}")
    assert seen["compute"] == get_policy(policy_name).compute_dtype  # the forward pass really ran in that dtype
    assert seen["grad"] == tf.float32  # master-weight gradients are float32
    assert losses[-1] < 0.01 * losses[0]
    np.testing.assert_allclose(w, w_true, atol=tol)
    assert abs(b - 0.5) < tol
    if scaler is not None:
        assert 1.0 <= float(scaler.scale) <= 2.0**15


def test_float16_with_the_seeds_npu_scale_settings_backs_off_then_learns_on_cpu():
    """2**32 overflows float16 gradients at first; the scaler skips those steps, backs off, and training proceeds."""
    print("[no NPU executed: the seed's NPU loss-scale settings, run with float16 on the CPU]")
    policy = precision.PrecisionPolicy(
        "mixed_float16", "cpu", tf.float16, precision.NPU_LOSS_SCALE, None
    )
    rng = np.random.default_rng(1)
    x = rng.normal(size=(128, 4)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)
    w = tf.Variable(tf.zeros((4, 1)))
    scaler = policy.new_loss_scale()

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(policy.to_float32(tf.matmul(policy.cast(x), policy.cast(w))) - y))
            scaled = scaler.scale_loss(loss)
        grads = tape.gradient(scaled, [w])
        return loss, scaler.apply_gradients(grads, lambda g: w.assign_sub(0.1 * g[0]))

    results = [step() for _ in range(200)]
    applied = [bool(a) for _, a in results]
    first_applied = applied.index(True)
    print(f"skipped {applied.count(False)} steps, first update at step {first_applied}, scale {float(scaler.scale)}")
    assert first_applied >= 2 and applied.count(False) == first_applied  # skips only while backing off
    assert float(scaler.scale) < 2.0**20
    assert float(results[-1][0]) < 1e-3 * float(results[0][0])
