"""Divergence warning: say so when the training loss has grown far above where it started.

A learning rate that is too high for a loss does not always end in NaN (training stops there, see
:class:`gru4rec.train.TrainingError`); it can also make the loss climb to thousands while the run goes on and its
Recall@20 falls below POP. :class:`DivergenceWatch` sees the losses the trainer logs and warns once when one is more
than :data:`DIVERGENCE_FACTOR` times the first logged loss, naming the learning rate as the likely cause. The command
line (``gru4rec train``, ``gru4rec seed``) prints the warning on stderr; the playground shows it in its status line.
Pure Python: no TensorFlow.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Optional

__all__ = ["DIVERGENCE_FACTOR", "DIVERGENCE_HINT", "diverged", "divergence_message", "DivergenceWatch"]

DIVERGENCE_FACTOR = 10.0
"""A logged loss above this many times the first logged loss counts as diverging."""

DIVERGENCE_HINT = "diverging: try a lower learning rate"


def diverged(first: float, loss: float, factor: float = DIVERGENCE_FACTOR) -> bool:
    """True when ``loss`` is more than ``factor`` times ``first`` (the first logged loss, taken as positive)."""
    if not (math.isfinite(first) and math.isfinite(loss)):
        return False  # NaN is the trainer's to stop on; an infinite first loss gives no scale
    return abs(loss) > factor * abs(first) and abs(loss) > 0.0


def divergence_message(first: float, loss: float, learning_rate: float, factor: float = DIVERGENCE_FACTOR) -> str:
    """One line: the loss against its start and the learning rate as the likely cause."""
    return (
        f"{DIVERGENCE_HINT}: the training loss grew to {loss:.4g}, more than {factor:g}x its first logged value "
        f"{first:.4g}; the learning rate {learning_rate:g} is the likely cause"
    )


class DivergenceWatch:
    """Watches the logged losses of one run and produces the divergence warning once.

    Call it with the trainer's records (``watch(record)``: an ``on_log`` or ``on_epoch_end`` record with a ``loss``;
    it can be passed to :func:`gru4rec.train.train` in ``callbacks``), or feed losses with :meth:`observe`. The first
    loss seen is the reference. ``on_warning(message)`` is called the first time a loss is more than ``factor``
    times the reference; ``message`` keeps the warning afterwards (None while the run looks fine).
    """

    def __init__(
        self,
        learning_rate: float,
        factor: float = DIVERGENCE_FACTOR,
        on_warning: Optional[Callable[[str], None]] = None,
    ):
        if not factor > 1.0:
            raise ValueError(f"factor must be > 1, got {factor!r}")
        self.learning_rate = float(learning_rate)
        self.factor = float(factor)
        self.on_warning = on_warning
        self.first: Optional[float] = None
        self.peak: Optional[float] = None
        self.message: Optional[str] = None

    @property
    def diverging(self) -> bool:
        return self.message is not None

    def observe(self, loss: float) -> Optional[str]:
        """Take one logged loss; the warning the first time it signals divergence, else None."""
        loss = float(loss)
        if self.first is None:
            if math.isfinite(loss):
                self.first = loss
            return None
        if math.isfinite(loss):
            self.peak = loss if self.peak is None else max(self.peak, loss)
        if self.message is None and diverged(self.first, loss, self.factor):
            self.message = divergence_message(self.first, loss, self.learning_rate, self.factor)
            if self.on_warning is not None:
                self.on_warning(self.message)
            return self.message
        return None

    def __call__(self, record: Mapping[str, object]) -> None:
        if "loss" in record:
            self.observe(float(record["loss"]))  # type: ignore[arg-type]
