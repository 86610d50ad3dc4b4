"""The headless course runner (gru4rec.course): HTML exports load MathJax from the copy beside them, not from a CDN
(the browser test opens one offline and checks the math is typeset); kernels start without ipykernel's unencrypted-TCP
warning; notebooks get only the parameters they declare."""

from __future__ import annotations

import re

import nbformat
import pytest

from gru4rec.course import (
    MATHJAX_CONFIG,
    NOTEBOOKS,
    declared_parameters,
    export_html,
    kernel_manager_class,
    run_papermill,
    smoke_parameters,
)


@pytest.mark.slow
def test_export_loads_mathjax_from_the_folder_beside_it(tmp_path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("The update: $$h_t = (1 - z_t) h_{t-1} + z_t \\hat h_t$$")]
    path = tmp_path / "math.ipynb"
    nbformat.write(notebook, path)
    page = export_html(path).read_text()
    sources = re.findall(r'<script[^>]*src="([^"]*)"', page)
    mathjax = [src for src in sources if "mathjax" in src.lower()]
    assert mathjax == [f"mathjax/MathJax.js?config={MATHJAX_CONFIG}"], sources
    assert (tmp_path / "mathjax" / "MathJax.js").is_file()
    assert "STIX-Web" in (tmp_path / "mathjax" / "config" / "local" / "gru4rec.js").read_text()
    for part in MATHJAX_CONFIG.split(","):  # every configuration the loader asks for is there
        assert (tmp_path / "mathjax" / "config" / f"{part}.js").is_file(), part
    # a second export into the same folder reuses the copy
    stamp = (tmp_path / "mathjax" / "MathJax.js").stat().st_mtime_ns
    export_html(path)
    assert (tmp_path / "mathjax" / "MathJax.js").stat().st_mtime_ns == stamp


# ----------------------------------------------------------------------------------------------- quiet headless runs
def test_headless_kernel_starts_without_the_unencrypted_tcp_warning(tmp_path, capfd) -> None:
    """ipykernel 7 prints "[IPKernelApp] WARNING | Kernel is running over TCP without encryption" at every start of
    a kernel without CurveZMQ keys; the course runner's kernel manager provisions them (the kernel's stderr is this
    process's file descriptor 2, so capfd sees the line when it is printed)."""
    notebook = nbformat.v4.new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })  # fmt: skip
    parameters = nbformat.v4.new_code_cell("VALUE = 1")
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell("print(VALUE + 1)")]
    source = tmp_path / "tiny.ipynb"
    nbformat.write(notebook, source)
    output = tmp_path / "out.ipynb"
    run_papermill(source, output, {"VALUE": 41}, cwd=tmp_path, cell_timeout=60)
    captured = capfd.readouterr()
    executed = nbformat.read(output, as_version=4)
    assert any("42" in out.get("text", "") for cell in executed.cells for out in cell.get("outputs", []))
    assert "without encryption" not in captured.err + captured.out, captured.err
    assert "IPKernelApp" not in captured.err, captured.err


def test_kernel_manager_provisions_curve_keys() -> None:
    manager = kernel_manager_class()(kernel_name="python3")
    assert getattr(manager, "transport_encryption", "auto") == "auto"


def test_smoke_parameters_pass_only_what_a_notebook_declares() -> None:
    """papermill warns "Passed unknown parameter" for a name the parameters cell does not assign."""
    for name in NOTEBOOKS:
        declared = declared_parameters(name)
        assert declared, name
        assert set(smoke_parameters(name)) <= declared, (name, set(smoke_parameters(name)) - declared)
    assert "N_EPOCHS" not in smoke_parameters("02_session_parallel_batching.ipynb")
    assert smoke_parameters("03_bp_vs_bptt_training.ipynb")["N_EPOCHS"] == 1


def test_the_course_runs_the_lessons_in_order_then_the_playground_and_says_so() -> None:
    """The main job's order (gru4rec.course.NOTEBOOKS) is the one its script and ``gru4rec course --help`` state."""
    import subprocess
    import sys
    from pathlib import Path

    from gru4rec.course import NOTEBOOKS

    root = Path(__file__).resolve().parents[1]
    lessons = sorted(name for name in NOTEBOOKS if not name.startswith("00_"))
    assert list(NOTEBOOKS) == [*lessons, "00_playground.ipynb"]
    assert sorted(p.name for p in (root / "notebooks").glob("*.ipynb")) == sorted(NOTEBOOKS)
    said = "the lessons 01, 02, ... in order, then the playground 00"
    script = " ".join(line.lstrip("# ") for line in (root / "ci" / "run_all.sh").read_text().splitlines()[:6])
    assert said in script
    help_text = subprocess.run([sys.executable, "-m", "gru4rec", "course", "--help"], capture_output=True, text=True,
                               check=True).stdout  # fmt: skip
    assert said in " ".join(help_text.split())
