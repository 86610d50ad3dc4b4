"""The main job's time and disk, recorded by the run itself: ``OUT/course_timing.json``.

``gru4rec course`` writes it after the last notebook: the seconds of every notebook, the total, the size of the
output folder, the machine (CPU model, cores this process may use) and the load average before and after (the
machine may be shared). ``scripts/course_totals.py`` copies a full run's record into ``docs/results/`` and the
README quotes its figures through :func:`format_minutes` and :func:`format_gbytes` (a test keeps them equal)."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

from gru4rec.io import atomic_write

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["TIMING_FILE", "folder_bytes", "machine", "timing_record", "write_timing", "format_minutes",
           "format_gbytes"]  # fmt: skip

TIMING_FILE = "course_timing.json"


def folder_bytes(folder: PathLike) -> int:
    """Bytes of the regular files under ``folder`` (links not followed), as ``du`` counts apparent sizes."""
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
    return total


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """The CPU model and the number of cores this process may run on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": _cpu_model(), "cores": int(cores or 1), "system": platform.system()}


def timing_record(seconds: Mapping[str, float], out_dir: PathLike, smoke: bool, load_before: Sequence[float],
                  load_after: Sequence[float]) -> dict:  # fmt: skip
    """The record of one course run: ``notebooks`` (name -> seconds, in run order), ``total_s``, ``out_bytes``."""
    return {
        "smoke": bool(smoke),
        "notebooks": {name: round(float(s), 1) for name, s in seconds.items()},
        "total_s": round(float(sum(seconds.values())), 1),
        "out_bytes": folder_bytes(out_dir),
        "machine": machine(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }


def write_timing(out_dir: PathLike, record: Mapping[str, Any]) -> Path:
    """Write ``record`` to ``out_dir/course_timing.json`` (temporary file, renamed into place)."""
    path = Path(out_dir) / TIMING_FILE
    with atomic_write(path) as handle:
        handle.write(json.dumps(record, indent=1) + "\n")
    return path


def format_minutes(seconds: float) -> str:
    """``"14 min 5 s"`` (whole seconds)."""
    whole = int(round(seconds))
    return f"{whole // 60} min {whole % 60} s"


def format_gbytes(n_bytes: int) -> str:
    """``"0.84 GB"`` (10^9 bytes, two decimals)."""
    return f"{n_bytes / 1e9:.2f} GB"


RECORD_KEYS = ("smoke", "notebooks", "out_bytes", "machine", "load_before", "load_after", "date")


def check_record(record: Any, source: str) -> None:
    """A one-line ``ValueError`` naming ``source`` unless ``record`` is what :func:`timing_record` writes (a merged
    record, such as ``docs/results/course_time.json``, is not: it has no load averages of its own)."""
    if not isinstance(record, Mapping):
        raise ValueError(f"{source}: expected a course_timing.json record (a JSON object), got {type(record).__name__}")
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise ValueError(f"{source}: not a course_timing.json record of one course run (missing: {', '.join(missing)})")


def merge_records(records: Sequence[Mapping[str, Any]]) -> dict:
    """One record from the records of several ``gru4rec course`` calls into the same output folder (e.g. the
    lessons in one call, the rest in another): the notebooks of all (a later record's time wins), the total, the
    output folder's size from the last record, the range of their 1-minute load averages; refuses smoke runs and
    records from different machines."""
    if not records:
        raise ValueError("no course_timing.json record to merge")
    for i, record in enumerate(records):
        check_record(record, f"record {i + 1}")
    if any(r["smoke"] for r in records):
        raise ValueError("a --smoke run's record: the README quotes the full course")
    machines = {json.dumps(r["machine"], sort_keys=True) for r in records}
    if len(machines) > 1:
        raise ValueError(f"records from different machines: {sorted(machines)}")
    notebooks: dict = {}
    for r in records:
        notebooks.update(r["notebooks"])
    loads = [r[key][0] for r in records for key in ("load_before", "load_after") if r[key]]  # 1-minute averages
    return {
        "smoke": False,
        "notebooks": notebooks,
        "total_s": round(sum(notebooks.values()), 1),
        "out_bytes": records[-1]["out_bytes"],
        "machine": records[0]["machine"],
        "load_range": [min(loads), max(loads)] if loads else [],
        "dates": sorted({r["date"] for r in records}),
    }


def readme_line(record: Mapping[str, Any]) -> str:
    """The README's sentence with the main job's measured time, disk and machine, from a merged record."""
    m = record["machine"]
    load = record.get("load_range") or []
    where = f"on a {m['cores']}-core {m['cpu']}"
    if load:
        where += f" shared with other jobs (load average {load[0]:.1f}–{load[1]:.1f} during the run)"
    return (f"{format_minutes(record['total_s'])} for the {len(record['notebooks'])} notebooks after the set-up, "
            f"`build/` {format_gbytes(record['out_bytes'])} at the end, {where}.")  # fmt: skip
