"""The training log format of the seed (the Ascend ModelZoo GRU4Rec_for_TensorFlow port): write and parse.

One record every N steps (and at step 1), as two lines::

    Epoch 0 Step 1000\tlr: 0.001000\tloss: 3.435232
    Each Step time is:0.004362

``loss`` is the running mean of the epoch's step losses so far and ``Each Step time`` the seconds of one step, both
as the seed printed them (6 decimals). The parser also accepts the single-line form with a device prefix that the
port's performance scripts print, e.g.
``Tesla V100-SXM2-32GB Epoch 0 Step 1 lr: 0.001000 loss: 3.911899 Each Step time is:0.585581``, and any mix of spaces
and TABs between the fields. The two seed logs live in ``data/seed_logs/`` (see ``SOURCE.md`` there).
"""

from __future__ import annotations

import math
import os
import re
from typing import Callable, Iterable, Optional, Union

import pandas as pd

from gru4rec.io import DataFormatError, PathLike

__all__ = ["format_record", "record_step", "LogWriter", "parse_log", "read_log", "LOG_COLUMNS", "seed_log_path"]

LOG_COLUMNS = ("epoch", "step", "lr", "loss", "step_time")

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
_RECORD_RE = re.compile(
    rf"^\s*(?:(?P<device>\S.*?)\s+)?Epoch\s+(?P<epoch>\d+)\s+Step\s+(?P<step>\d+)\s+lr:\s*(?P<lr>{_NUM})"
    rf"\s+loss:\s*(?P<loss>{_NUM})(?:\s+Each\s+Step\s+time\s+is:\s*(?P<time>{_NUM}))?\s*$",
    re.IGNORECASE,
)
_TIME_RE = re.compile(rf"^\s*Each\s+Step\s+time\s+is:\s*(?P<time>{_NUM})\s*$", re.IGNORECASE)


def format_record(epoch: int, step: int, lr: float, loss: float, step_time: float) -> str:
    """The two lines of one record, exactly as the seed wrote them (with a final newline)."""
    return f"Epoch {int(epoch)} Step {int(step)}\tlr: {lr:.6f}\tloss: {loss:.6f}\nEach Step time is:{step_time:.6f}\n"


def record_step(line: str) -> Optional[int]:
    """The step of a record line (``Epoch E Step S ...``), or None for any other line."""
    match = _RECORD_RE.match(line.rstrip("\r\n"))
    return int(match["step"]) if match else None


class LogWriter:
    """Append records to a seed-format log file (line-buffered, so a running training can be followed)."""

    def __init__(self, path: PathLike, append: bool = False, opener: Optional[Callable[[str, int], int]] = None):
        """``opener``: as :func:`open`'s (a run folder passes one that refuses links,
        ``gru4rec.run_folder.no_follow_opener``)."""
        self.path = os.fspath(path)
        self._handle = open(self.path, "a" if append else "w", encoding="utf-8", buffering=1, opener=opener)

    def write(self, epoch: int, step: int, lr: float, loss: float, step_time: float) -> None:
        self._handle.write(format_record(epoch, step, lr, loss, step_time))

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def parse_log(lines: Union[str, Iterable[str]], source: str = "<log>") -> pd.DataFrame:
    """Parse seed-format log text (a string or an iterable of lines) into a DataFrame.

    Columns: ``epoch``, ``step`` (int64), ``lr``, ``loss``, ``step_time`` (float64); ``df.attrs["device"]`` holds the
    device prefix of single-line records when there was one. Blank lines are skipped. A record whose
    ``Each Step time is:`` line is missing at the very end of the text (a run cut off) gets ``step_time`` NaN; any
    other line that is not part of a record raises :class:`DataFormatError` naming ``source`` and the line.
    """
    if isinstance(lines, str):
        lines = lines.splitlines()
    rows: list[list] = []
    pending: Optional[list] = None
    pending_line = 0
    devices: set[str] = set()
    for line_no, raw in enumerate(lines, start=1):
        text = raw.rstrip("\r\n")
        if not text.strip():
            continue
        record = _RECORD_RE.match(text)
        if record:
            if pending is not None:
                raise DataFormatError(
                    source, line_no, None, f"'Each Step time is:T' after the record of line {pending_line}",
                    repr(text.strip()),
                )  # fmt: skip
            if record["device"]:
                devices.add(record["device"].strip())
            row = [int(record["epoch"]), int(record["step"]), float(record["lr"]), float(record["loss"])]
            if record["time"] is not None:
                rows.append(row + [float(record["time"])])
            else:
                pending, pending_line = row, line_no
            continue
        timing = _TIME_RE.match(text)
        if timing and pending is not None:
            rows.append(pending + [float(timing["time"])])
            pending = None
            continue
        expected = (
            "'Each Step time is:T' after an 'Epoch E Step S lr: X loss: Y' line"
            if timing
            else "a log line 'Epoch E Step S<TAB>lr: X<TAB>loss: Y' or 'Each Step time is:T'"
        )
        if pending is not None:
            expected = f"'Each Step time is:T' after the record of line {pending_line}"
        raise DataFormatError(source, line_no, None, expected, repr(text.strip()[:80]))
    if pending is not None:
        rows.append(pending + [math.nan])
    frame = pd.DataFrame(rows, columns=list(LOG_COLUMNS))
    frame = frame.astype(
        {"epoch": "int64", "step": "int64", "lr": "float64", "loss": "float64", "step_time": "float64"}
    )
    if devices:
        frame.attrs["device"] = ", ".join(sorted(devices))
    return frame


def read_log(path: PathLike) -> pd.DataFrame:
    """Parse a seed-format log file (see :func:`parse_log`)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return parse_log(handle, source=os.fspath(path))


def seed_log_path(name: str) -> str:
    """Path of a seed log in the repository's ``data/seed_logs`` (``"v100"`` or ``"ascend910"``)."""
    if name not in ("v100", "ascend910"):
        raise ValueError(f"seed log name must be 'v100' or 'ascend910', got {name!r}")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(root, "data", "seed_logs", f"{name}.log")
