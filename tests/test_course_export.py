"""HTML exports (gru4rec.course.export_html) load MathJax from the copy beside them, not from a CDN (the browser test
opens one offline and checks the math is typeset)."""

from __future__ import annotations

import re

import nbformat

from gru4rec.course import MATHJAX_CONFIG, export_html


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
