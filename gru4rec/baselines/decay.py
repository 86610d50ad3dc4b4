"""The weighting functions of rn5l/session-rec's SR and V-SKNN, by their session-rec names, vectorised.

Two families, as in session-rec:

* :func:`gap_weight` (SR's ``weighting``, V-SKNN's ``weighting_score``): the weight of something ``gap`` steps
  back (``gap >= 1``): ``same`` 1, ``div`` 1/gap, ``quadratic`` 1/gap², ``log`` 1/log10(gap + 1.7), ``linear``
  1 - 0.1·gap (0 beyond a gap of 100).
* :func:`position_weight` (V-SKNN's ``weighting``): the weight of the current session's event at 1-based
  position ``i`` of ``length``: ``same`` 1, ``div`` i/length, ``quadratic`` (i/length)², ``log``
  1/log10(length - i + 1.7), ``linear`` 1 - 0.1·(length - i) for ``i <= 10`` and 0 after (session-rec's test is on
  ``i``, the position from the start, not on the distance from the end).
"""

from __future__ import annotations

import numpy as np

WEIGHTINGS = ("linear", "same", "div", "log", "quadratic")


def check_weighting(name: str, what: str) -> str:
    """``name`` if it is one of :data:`WEIGHTINGS`, else a ValueError naming the parameter ``what``."""
    if name not in WEIGHTINGS:
        raise ValueError(f"{what} must be one of {', '.join(WEIGHTINGS)}; got {name!r}")
    return name


def gap_weight(name: str, gap: np.ndarray) -> np.ndarray:
    """Weights of gaps ``gap`` (int array, >= 1), float64 of the same shape."""
    gap = np.asarray(gap, dtype=np.float64)
    if name == "same":
        return np.ones_like(gap)
    if name == "div":
        return 1.0 / gap
    if name == "quadratic":
        return 1.0 / (gap * gap)
    if name == "log":
        return 1.0 / np.log10(gap + 1.7)
    if name == "linear":
        return np.where(gap <= 100, 1.0 - 0.1 * gap, 0.0)
    raise ValueError(f"unknown weighting {name!r}; choose one of {', '.join(WEIGHTINGS)}")


def position_weight(name: str, position: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Weights of 1-based positions ``position`` in sessions of ``length`` events (broadcast), float64."""
    position = np.asarray(position, dtype=np.float64)
    length = np.asarray(length, dtype=np.float64)
    if name == "same":
        return np.ones(np.broadcast(position, length).shape)
    if name == "div":
        return position / length
    if name == "quadratic":
        return (position / length) ** 2
    if name == "log":
        return 1.0 / np.log10(length - position + 1.7)
    if name == "linear":
        return np.where(position <= 10, 1.0 - 0.1 * (length - position), 0.0)
    raise ValueError(f"unknown weighting {name!r}; choose one of {', '.join(WEIGHTINGS)}")
