"""Run the notebook course headlessly with papermill (the main job and the notebook tests use this).

Executed copies go to ``OUT/notebooks`` (with HTML exports), recorded results to ``OUT/results``; the sources in
``notebooks/`` are never written. Each notebook's working directory is the ``notebooks/`` folder, as in JupyterLab.

The HTML exports typeset their math offline: MathJax comes from the installed ``jupyter-server-mathjax`` package,
copied once beside the exports (``OUT/notebooks/mathjax/``), instead of nbconvert's CDN default.

Quiet runs: ipykernel 7 warns on stderr, at every kernel start, ``[IPKernelApp] WARNING | Kernel is running over TCP
without encryption ...`` when the kernel manager gave it no CurveZMQ keys (jupyter_client's default,
``transport_encryption="disabled"``). :func:`kernel_manager_class` asks jupyter_client for the keys (``"auto"``:
only for a kernelspec that declares ``supported_encryption: curve``, as ipykernel's does), so the kernel's sockets
are encrypted and the warning has no cause. Papermill's "Passed unknown parameter" warning is avoided by passing a
notebook only the shared smoke parameters its parameters cell declares.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

PathLike = Union[str, "os.PathLike[str]"]

NOTEBOOKS: tuple[str, ...] = (
    "01_data_preparation.ipynb",
    "02_session_parallel_batching.ipynb",
    "03_bp_vs_bptt_training.ipynb",
    "04_evaluation.ipynb",
    "05_gpu_npu_comparison.ipynb",
    "06_from_the_seed_to_the_official.ipynb",
    "07_losses_and_negative_sampling.ipynb",
    "08_evaluation_flaws.ipynb",
    "09_serving_live_sessions.ipynb",
    "00_playground.ipynb",
)
"""Execution order of the main job: the data notebook first (it generates the preset that the others reuse), the
playground last (it compares against what the lessons measured). Every notebook also runs on its own."""

SMOKE_PARAMETERS: dict[str, Any] = {"DATA_PRESET": "tiny", "N_EPOCHS": 1}
"""Small settings shared by every notebook's smoke run (tests, ``gru4rec course --smoke``)."""

NOTEBOOK_SMOKE_PARAMETERS: dict[str, dict[str, Any]] = {
    "02_session_parallel_batching.ipynb": {"BATCH_SIZE": 8},
    "03_bp_vs_bptt_training.ipynb": {"BPTT_STEPS": 4, "TIMING_STEPS": 64},
    "04_evaluation.ipynb": {},
    "05_gpu_npu_comparison.ipynb": {"N_STEPS": 300, "CHUNK_STEPS": 16, "LOG_EVERY": 10, "DISPATCH_STEPS": 50},
    "06_from_the_seed_to_the_official.ipynb": {},
    "07_losses_and_negative_sampling.ipynb": {"N_SAMPLES": [0, 2048], "SAMPLE_ALPHAS": [0.5, 1.0], "TUNE_TRIALS": 3},
    "08_evaluation_flaws.ipynb": {"SAMPLED_SWEEP": [10, 50, 100, 300], "MAX_SESSION_LENGTH": 4, "K_CORE": 3},
    "09_serving_live_sessions.ipynb": {"MAX_PREFIX": 6, "LATENCY_REPEATS": 1, "LOAD_EVENTS": 40,
                                       "LOAD_CONCURRENCY": [1, 4]},
    "00_playground.ipynb": {"INTERACTIVE": False},
}
"""Per-notebook small settings on top of :data:`SMOKE_PARAMETERS`."""


def repository_root() -> Path:
    """The checkout that holds ``notebooks/`` (the kit is installed editable from it)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "notebooks").is_dir():
        raise FileNotFoundError(f"{root / 'notebooks'}: the course needs a checkout of the kit with its notebooks")
    return root


DEFAULT_CELL_TIMEOUT_S = 1800
"""A cell that runs longer than this fails the run instead of hanging the main job (the longest real cell, a
training run on the ``small`` preset, takes a few minutes on 2 cores)."""

HEADLESS_PARAMETERS: dict[str, dict[str, Any]] = {"00_playground.ipynb": {"INTERACTIVE": False}}
"""Settings every headless run needs (papermill has no front end: the playground calls its functions directly)."""


def declared_parameters(notebook: str) -> Optional[frozenset]:
    """The names the parameters cell of ``notebooks/<notebook>`` assigns (papermill's reading), None when the
    notebook cannot be read (then every parameter is passed)."""
    import papermill

    try:
        return frozenset(papermill.inspect_notebook(str(repository_root() / "notebooks" / notebook)))
    except (OSError, ValueError):
        return None


def smoke_parameters(notebook: str) -> dict[str, Any]:
    """The small parameters for ``notebook``: the shared ones its parameters cell declares (papermill warns about
    the others), plus its own."""
    declared = declared_parameters(notebook)
    shared = {k: v for k, v in SMOKE_PARAMETERS.items() if declared is None or k in declared}
    return {**shared, **NOTEBOOK_SMOKE_PARAMETERS.get(notebook, {}), **HEADLESS_PARAMETERS.get(notebook, {})}


def full_parameters(notebook: str) -> dict[str, Any]:
    """The real run's parameters for ``notebook``: its defaults, plus what a headless run needs."""
    return dict(HEADLESS_PARAMETERS.get(notebook, {}))


def kernels_can_encrypt() -> bool:
    """Whether jupyter_client can provision CurveZMQ keys for kernels here (its ``transport_encryption``, 8.10+,
    and a pyzmq built with CurveZMQ)."""
    import zmq
    from jupyter_client.manager import KernelManager

    return KernelManager.class_traits().get("transport_encryption") is not None and bool(zmq.has("curve"))


def kernel_manager_class() -> type:
    """The kernel manager of the headless runs: nbclient's ``AsyncKernelManager`` with CurveZMQ keys provisioned
    for the kernel (``transport_encryption="auto"``), so ipykernel has no reason for its "running over TCP without
    encryption" warning; the plain one where the installed jupyter_client (< 8.10) or pyzmq cannot (an ipykernel
    of that age does not warn)."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    if kernels_can_encrypt():

        class EncryptedKernelManager(AsyncKernelManager):
            @default("transport_encryption")
            def _transport_encryption_default(self) -> str:
                return "auto"

        return EncryptedKernelManager
    return AsyncKernelManager


def run_papermill(
    source: PathLike,
    output: PathLike,
    parameters: Mapping[str, Any],
    cwd: PathLike,
    cell_timeout: Optional[int] = DEFAULT_CELL_TIMEOUT_S,
) -> None:
    """Execute the notebook ``source`` into ``output`` with papermill in ``cwd``, on the ``python3`` kernel started
    by :func:`kernel_manager_class` (no progress bar, cell outputs not logged)."""
    import papermill

    papermill.execute_notebook(
        str(source),
        str(output),
        parameters=dict(parameters),
        cwd=str(cwd),
        kernel_name="python3",
        execution_timeout=cell_timeout,
        progress_bar=False,
        log_output=False,
        kernel_manager_class=kernel_manager_class(),
    )


@dataclass(frozen=True)
class ExecutedNotebook:
    name: str
    output: Path
    html: Optional[Path]
    seconds: float


def execute_notebook(
    name: str,
    out_dir: PathLike,
    parameters: Optional[Mapping[str, Any]] = None,
    cell_timeout: Optional[int] = DEFAULT_CELL_TIMEOUT_S,
    html: bool = True,
) -> ExecutedNotebook:
    """Execute ``notebooks/<name>`` with papermill into ``out_dir/notebooks`` (and export HTML)."""
    root = repository_root()
    out_dir = Path(out_dir).resolve()
    source = root / "notebooks" / name
    output = out_dir / "notebooks" / name
    output.parent.mkdir(parents=True, exist_ok=True)
    params = {"OUTPUT_DIR": str(out_dir), **dict(parameters or {})}
    started = time.perf_counter()
    run_papermill(source, output, params, cwd=root / "notebooks", cell_timeout=cell_timeout)
    seconds = time.perf_counter() - started
    html_path = export_html(output) if html else None
    return ExecutedNotebook(name, output, html_path, seconds)


MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe,local/gru4rec"
"""MathJax 2 configurations loaded by the exports: the TeX input and HTML output of jupyter-server-mathjax, and
``local/gru4rec`` (written by :func:`offline_mathjax`): the STIX web fonts, the only ones that package ships."""

_MATHJAX_LOCAL_CONFIG = """MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], preferredFont: null,
  webFont: "STIX-Web", imageFont: null}});
MathJax.Ajax.loadComplete("[MathJax]/config/local/gru4rec.js");
"""


def offline_mathjax(folder: PathLike) -> str:
    """Copy MathJax (the ``jupyter-server-mathjax`` package's files) into ``folder/mathjax`` unless it is there,
    and return the URL of its loader relative to ``folder`` (nbconvert's ``mathjax_url`` for exports in it)."""
    import jupyter_server_mathjax

    source = Path(jupyter_server_mathjax.__file__).parent / "static"
    folder = Path(folder)
    target = folder / "mathjax"
    if not (target / "config" / "local" / "gru4rec.js").exists():
        tmp = folder / f".mathjax.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp)
        (tmp / "config" / "local").mkdir(parents=True, exist_ok=True)
        (tmp / "config" / "local" / "gru4rec.js").write_text(_MATHJAX_LOCAL_CONFIG, encoding="utf-8")
        if target.exists():  # an older or partial copy: replaced whole
            shutil.rmtree(target)
        os.replace(tmp, target)
    return f"mathjax/MathJax.js?config={MATHJAX_CONFIG}"


def export_html(notebook_path: PathLike) -> Path:
    """Export an executed notebook to an HTML file beside it, its math typeset offline by the MathJax copied into
    the same folder (:func:`offline_mathjax`)."""
    import nbconvert
    import nbformat

    notebook_path = Path(notebook_path)
    exporter = nbconvert.HTMLExporter(mathjax_url=offline_mathjax(notebook_path.parent))
    body, _ = exporter.from_notebook_node(nbformat.read(notebook_path, as_version=4))
    html_path = notebook_path.with_suffix(".html")
    tmp = html_path.with_name(f".{html_path.name}.tmp-{os.getpid()}")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, html_path)
    return html_path


def run_course(
    out_dir: PathLike,
    smoke: bool = False,
    names: Sequence[str] = NOTEBOOKS,
    cell_timeout: Optional[int] = DEFAULT_CELL_TIMEOUT_S,
    html: bool = True,
) -> list[ExecutedNotebook]:
    """Execute the course in order; ``smoke`` uses the small test parameters instead of the real run."""
    from gru4rec.course_timing import format_gbytes, format_minutes, timing_record, write_timing

    executed = []
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else ()
    for name in names:
        parameters = smoke_parameters(name) if smoke else full_parameters(name)
        print(f"[course] {name} ...", flush=True)
        result = execute_notebook(name, out_dir, parameters, cell_timeout=cell_timeout, html=html)
        print(f"[course] {name} done in {result.seconds:.0f} s -> {result.output}", flush=True)
        executed.append(result)
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else ()
    record = timing_record({r.name: r.seconds for r in executed}, out_dir, smoke, load_before, load_after)
    path = write_timing(out_dir, record)
    print(f"[course] {len(executed)} notebook(s) in {format_minutes(record['total_s'])}; {out_dir} holds "
          f"{format_gbytes(record['out_bytes'])}; recorded in {path}", flush=True)  # fmt: skip
    return executed
