"""Mixed precision for a hand-written ``tf.Module`` core: ``--precision fp32|mixed_bfloat16|mixed_float16``.

The kit's model is plain TF ops on ``tf.Variable``s (no Keras layers), so Keras' mixed-precision policy does not
apply. Instead a :class:`PrecisionPolicy` says which dtype the forward pass computes in, and the model casts at the
point of use:

- variables (master weights) stay **float32**; the forward pass casts what it reads to ``policy.compute_dtype``
  (``policy.cast``). Cast *after* gathering embedding rows (``policy.cast(tf.gather(E, items))``), never the whole
  table: the gradient then stays an ``IndexedSlices`` of float32 rows, so sparse updates keep working;
- scores go back to float32 before the loss (``policy.to_float32(scores)``): softmax, log and the loss are float32;
- ``mixed_float16`` needs loss scaling (float16 gradients underflow): :class:`DynamicLossScale`, written in plain TF
  (TensorFlow 2.6 compatible, usable inside ``tf.function``), scales the loss, unscales the gradients, skips the
  update when a gradient is not finite and adapts the scale. ``mixed_bfloat16`` has float32's exponent range and
  needs none.

On the Ascend NPU the model code does not cast at all: the adapter's graph engine chooses operator precisions from
its ``precision_mode`` (set before ``npu.open()``, see ``gru4rec.devices.activate_npu``). ``--precision fp32`` maps
to ``must_keep_origin_dtype`` (the adapter's default would lower some float32 operators to float16) and
``mixed_float16`` to ``allow_mix_precision`` plus loss scaling, as the seed port's later code did with
``ExponentialUpdateLossScaleManager(init_loss_scale=2**32, incr_every_n_steps=1000, decr_every_n_nan_or_inf=2,
decr_ratio=0.5)`` (the settings Ascend's TF Adapter 1.x ``NPULossScaleOptimizer`` documentation pairs with that
manager). ``mixed_bfloat16`` maps to ``allow_mix_precision_bf16``, which only newer adapters and chips accept. None
of the NPU mappings has been run on an NPU by this project.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Tuple

import tensorflow as tf

PRECISIONS: Tuple[str, ...] = ("fp32", "mixed_bfloat16", "mixed_float16")

_COMPUTE_DTYPES = {"fp32": tf.float32, "mixed_bfloat16": tf.bfloat16, "mixed_float16": tf.float16}
_NPU_PRECISION_MODES = {
    "fp32": "must_keep_origin_dtype",
    "mixed_float16": "allow_mix_precision",
    "mixed_bfloat16": "allow_mix_precision_bf16",
}


@dataclass(frozen=True)
class LossScaleSettings:
    """Dynamic loss-scale arithmetic (the semantics of TF1's ``ExponentialUpdateLossScaleManager``).

    After ``growth_interval`` consecutive finite steps the scale is multiplied by ``growth_factor``; after
    ``decrease_every`` steps with a non-finite gradient (counted since the last change) it is multiplied by
    ``backoff_factor``, never below ``min_scale``. Steps with a non-finite gradient apply no update.
    """

    initial_scale: float = 2.0**15
    growth_interval: int = 2000
    growth_factor: float = 2.0
    backoff_factor: float = 0.5
    decrease_every: int = 1
    min_scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.initial_scale >= self.min_scale > 0:
            raise ValueError("loss scale: need initial_scale >= min_scale > 0")
        if self.growth_interval < 1 or self.decrease_every < 1:
            raise ValueError("loss scale: growth_interval and decrease_every must be >= 1")
        if self.growth_factor < 1 or not 0 < self.backoff_factor < 1:
            raise ValueError("loss scale: need growth_factor >= 1 and 0 < backoff_factor < 1")


#: GPU/CPU float16 (the values of Keras' dynamic ``LossScaleOptimizer``).
DEFAULT_LOSS_SCALE = LossScaleSettings()
#: The seed port's NPU settings (ExponentialUpdateLossScaleManager as in Ascend's ModelZoo scripts).
NPU_LOSS_SCALE = LossScaleSettings(
    initial_scale=2.0**32, growth_interval=1000, growth_factor=2.0, backoff_factor=0.5, decrease_every=2
)


def npu_precision_mode(precision: str) -> str:
    """The TF Adapter 2.x ``precision_mode`` for ``--precision`` (set before ``npu.open()``)."""
    _check(precision)
    return _NPU_PRECISION_MODES[precision]


def _check(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")


@dataclass(frozen=True)
class PrecisionPolicy:
    """Which dtype the forward pass computes in; variables stay float32; the loss is float32.

    ``compute_dtype`` is the dtype the *model code* casts to. On the NPU it is float32 (the adapter converts
    operators itself, per ``npu_precision_mode``). ``loss_scale`` is None when no loss scaling is needed.
    """

    name: str
    device_kind: str
    compute_dtype: tf.DType
    loss_scale: Optional[LossScaleSettings]
    npu_precision_mode: Optional[str]
    variable_dtype: tf.DType = tf.float32

    @property
    def is_mixed(self) -> bool:
        return self.name != "fp32"

    def cast(self, x: Any) -> Any:
        """``x`` in the compute dtype when it is a floating tensor (int indices, bools pass through)."""
        if isinstance(x, tf.IndexedSlices):
            return tf.IndexedSlices(self.cast(x.values), x.indices, x.dense_shape)
        x = tf.convert_to_tensor(x)
        if x.dtype.is_floating and x.dtype != self.compute_dtype:
            return tf.cast(x, self.compute_dtype)
        return x

    def to_float32(self, x: Any) -> tf.Tensor:
        """``x`` as float32: for scores before the final activation/loss, and for anything reported."""
        x = tf.convert_to_tensor(x)
        return x if x.dtype == tf.float32 else tf.cast(x, tf.float32)

    def new_loss_scale(self, name: str = "loss_scale") -> Optional[DynamicLossScale]:
        """A fresh :class:`DynamicLossScale` for this policy, or None when it needs no loss scaling."""
        return None if self.loss_scale is None else DynamicLossScale(self.loss_scale, name=name)

    def as_dict(self) -> dict:
        return {
            "precision": self.name,
            "device_kind": self.device_kind,
            "compute_dtype": self.compute_dtype.name,
            "variable_dtype": self.variable_dtype.name,
            "loss_scale": None if self.loss_scale is None else dict(self.loss_scale.__dict__),
            "npu_precision_mode": self.npu_precision_mode,
        }


def get_policy(precision: str = "fp32", device_kind: str = "cpu") -> PrecisionPolicy:
    """The policy for ``--precision`` on a device kind (``cpu``, ``gpu`` or ``npu``, as in ``DeviceChoice.kind``)."""
    _check(precision)
    if device_kind not in ("cpu", "gpu", "npu"):
        raise ValueError(f"device_kind must be cpu, gpu or npu; got {device_kind!r}")
    if device_kind == "npu":
        scale = NPU_LOSS_SCALE if precision == "mixed_float16" else None
        return PrecisionPolicy(precision, device_kind, tf.float32, scale, _NPU_PRECISION_MODES[precision])
    scale = DEFAULT_LOSS_SCALE if precision == "mixed_float16" else None
    return PrecisionPolicy(precision, device_kind, _COMPUTE_DTYPES[precision], scale, None)


# ------------------------------------------------------------------------------------------------ loss scaling


def _values(grad: Any) -> Any:
    return grad.values if isinstance(grad, tf.IndexedSlices) else grad


def all_finite(grads: Sequence[Any]) -> tf.Tensor:
    """True when every gradient (dense or ``IndexedSlices``; None skipped) is free of inf and NaN."""
    checks = [tf.reduce_all(tf.math.is_finite(_values(g))) for g in grads if g is not None]
    if not checks:
        return tf.constant(True)
    return tf.reduce_all(tf.stack(checks))


class DynamicLossScale(tf.Module):
    """A dynamic loss scale in plain TF variables (checkpointable; TF 2.6 compatible; works in ``tf.function``).

    One training step::

        with tf.GradientTape() as tape:
            loss = compute_loss()                            # float32
            scaled = loss_scale.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        applied = loss_scale.apply_gradients(grads, lambda g: optimizer.apply(g, variables))

    ``apply_gradients`` unscales the gradients, checks them, runs ``apply_fn`` only when all are finite (through
    ``tf.cond``, so the optimizer's slots must already exist) and updates the scale; it returns whether the update
    was applied. Under data parallelism, all-reduce the gradients *before* calling it so that every replica takes
    the same decision.
    """

    def __init__(self, settings: LossScaleSettings = DEFAULT_LOSS_SCALE, name: Optional[str] = None) -> None:
        super().__init__(name=name)
        self.settings = settings
        self.scale = tf.Variable(float(settings.initial_scale), trainable=False, dtype=tf.float32, name="scale")
        self.good_steps = tf.Variable(0, trainable=False, dtype=tf.int64, name="good_steps")
        self.bad_steps = tf.Variable(0, trainable=False, dtype=tf.int64, name="bad_steps")

    def scale_loss(self, loss: tf.Tensor) -> tf.Tensor:
        """``loss * scale`` (in the loss's dtype, normally float32)."""
        return loss * tf.cast(self.scale, loss.dtype)

    def unscale(self, grads: Sequence[Any]) -> list:
        """Gradients divided by the scale; ``IndexedSlices`` stay sparse, None stays None."""
        inv = 1.0 / self.scale
        out = []
        for g in grads:
            if g is None:
                out.append(None)
            elif isinstance(g, tf.IndexedSlices):
                out.append(tf.IndexedSlices(g.values * tf.cast(inv, g.values.dtype), g.indices, g.dense_shape))
            else:
                out.append(g * tf.cast(inv, g.dtype))
        return out

    def update(self, finite: Any) -> tf.Tensor:
        """Advance the scale after a step whose gradients were ``finite`` (a bool tensor); returns ``finite``."""
        s = self.settings
        finite = tf.convert_to_tensor(finite, tf.bool)

        def on_finite():
            grow = self.good_steps + 1 >= s.growth_interval
            grown = self.scale * s.growth_factor
            new_scale = tf.where(grow & tf.math.is_finite(grown), grown, self.scale)
            return (
                new_scale,
                tf.where(grow, tf.constant(0, tf.int64), self.good_steps + 1),
                tf.where(grow, tf.constant(0, tf.int64), self.bad_steps),
            )

        def on_nonfinite():
            shrink = self.bad_steps + 1 >= s.decrease_every
            shrunk = tf.maximum(self.scale * s.backoff_factor, s.min_scale)
            return (
                tf.where(shrink, shrunk, self.scale),
                tf.constant(0, tf.int64),
                tf.where(shrink, tf.constant(0, tf.int64), self.bad_steps + 1),
            )

        new_scale, new_good, new_bad = tf.cond(finite, on_finite, on_nonfinite)
        self.scale.assign(new_scale)
        self.good_steps.assign(new_good)
        self.bad_steps.assign(new_bad)
        return finite

    def apply_gradients(self, scaled_grads: Sequence[Any], apply_fn: Callable[[list], Any]) -> tf.Tensor:
        """Unscale, skip the update when any gradient is not finite, update the scale; True when applied."""
        grads = self.unscale(scaled_grads)
        finite = all_finite(grads)

        def apply():
            apply_fn(grads)
            return tf.constant(True)

        applied = tf.cond(finite, apply, lambda: tf.constant(False))
        with tf.control_dependencies([applied]):
            return self.update(finite)
