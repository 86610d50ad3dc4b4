"""Per-loss starting settings: the hyperparameters that make each loss learn (the playground and the lessons use them).

A learning rate that suits cross-entropy makes BPR-max diverge; the official best-parameter files pair each loss with
its own learning rate, momentum, ``bpreg``, final activation and dropouts. ``LOSS_SETTINGS[loss]`` holds those
overrides (official :class:`gru4rec.config.Config` names) and ``LOSS_SETTINGS_SOURCE[loss]`` says where they come from.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from .config import LOSSES

# Values are Config overrides; every loss of gru4rec.config.LOSSES has an entry (a test checks it).
LOSS_SETTINGS: Mapping[str, Mapping[str, object]] = MappingProxyType(
    {
        # paramfiles/rsc15_xe_shared_100_best.py of the official repositories
        "cross-entropy": MappingProxyType(
            dict(learning_rate=0.2, momentum=0.2, bpreg=0.0, logq=1.0, final_act="softmax",
                 dropout_p_embed=0.0, dropout_p_hidden=0.4)
        ),
        # paramfiles/retailrocket_bprmax_shared_best.py of the official repositories
        "bpr-max": MappingProxyType(
            dict(learning_rate=0.05, momentum=0.4, bpreg=1.95, logq=0.0, final_act="elu-0.5",
                 dropout_p_embed=0.5, dropout_p_hidden=0.05)
        ),
        # no official parameter file: the BPR-max settings without the score regularisation
        "top1-max": MappingProxyType(
            dict(learning_rate=0.05, momentum=0.4, bpreg=0.0, logq=0.0, final_act="elu-0.5",
                 dropout_p_embed=0.5, dropout_p_hidden=0.05)
        ),
        "bpr": MappingProxyType(
            dict(learning_rate=0.05, momentum=0.4, bpreg=0.0, logq=0.0, final_act="linear",
                 dropout_p_embed=0.0, dropout_p_hidden=0.2)
        ),
        "top1": MappingProxyType(
            dict(learning_rate=0.05, momentum=0.4, bpreg=0.0, logq=0.0, final_act="linear",
                 dropout_p_embed=0.0, dropout_p_hidden=0.2)
        ),
    }
)

LOSS_SETTINGS_SOURCE: Mapping[str, str] = MappingProxyType(
    {
        "cross-entropy": "official paramfiles/rsc15_xe_shared_100_best.py",
        "bpr-max": "official paramfiles/retailrocket_bprmax_shared_best.py",
        "top1-max": "the BPR-max settings without bpreg (no official parameter file)",
        "bpr": "chosen on the tiny preset (no official parameter file)",
        "top1": "chosen on the tiny preset (no official parameter file)",
    }
)


def loss_settings(loss: str) -> dict:
    """A new dict of the Config overrides that make ``loss`` learn, the loss itself included."""
    if loss not in LOSSES:
        raise ValueError(f"loss: unknown value {loss!r}; allowed: {', '.join(LOSSES)}")
    return {"loss": loss, **LOSS_SETTINGS[loss]}
