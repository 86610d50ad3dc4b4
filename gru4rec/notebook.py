"""Small helpers the notebooks share: plotting set-up, recorded results, and the device banner.

A notebook's last cell calls :func:`record_results`; the tests and the main job read the JSON back with
:func:`read_results` (the microsoft/recommenders pattern, without an extra dependency).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any, Mapping, Union

PathLike = Union[str, "os.PathLike[str]"]

# Figures render in JupyterLab (mimetype) and in exported HTML without internet (plotly.js embedded once).
PLOTLY_RENDERER = "plotly_mimetype+notebook"


def setup_plotting(renderer: str = PLOTLY_RENDERER) -> None:
    """Choose the plotly renderer that works both in JupyterLab and in offline HTML exports."""
    import plotly.io as pio

    pio.renderers.default = renderer


def versions() -> dict[str, str]:
    """Python and library versions, for the set-up cell of every notebook."""
    import numpy
    import pandas
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "platform": f"{platform.system()} {platform.machine()}",
        "executable": sys.executable,
    }


def _jsonable(value: Any) -> Any:
    """Plain JSON types from numpy scalars/arrays and nested containers; NaN/inf become None."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def results_path(output_dir: PathLike, notebook: str) -> Path:
    """Where a notebook's recorded results live: ``OUTPUT_DIR/results/<notebook stem>.json``."""
    return Path(output_dir) / "results" / f"{Path(notebook).stem}.json"


def record_results(output_dir: PathLike, notebook: str, results: Mapping[str, Any]) -> Path:
    """Write a notebook's key results as JSON (atomically) and return the path."""
    path = results_path(output_dir, notebook)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(_jsonable(dict(results)), indent=2, sort_keys=True))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_results(output_dir: PathLike, notebook: str) -> dict[str, Any]:
    """Read back what :func:`record_results` wrote for ``notebook``."""
    path = results_path(output_dir, notebook)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no recorded results; did the notebook's last cell run?")
    return json.loads(path.read_text())
