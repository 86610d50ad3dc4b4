"""Small hand-made session data for tests (not a test module)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gru4rec.session_data import ItemMap, SessionData


def data_from_sessions(sessions: list, n_items: int) -> SessionData:
    """SessionData of the given item-index lists, in that order, over the catalogue ``0 .. n_items - 1``."""
    rows = [(s + 1, item, float(10 * s + j)) for s, items in enumerate(sessions) for j, item in enumerate(items)]
    frame = pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])
    return SessionData.from_frame(frame, ItemMap(np.arange(n_items)))
