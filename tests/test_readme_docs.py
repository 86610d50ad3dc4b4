"""The README for a newcomer: short, no development history (nor in docs/ and the notebooks), its course table and
order as the main job runs them, its own-data example in the format the readers take, and the main job's totals
quoted from the recorded run (docs/results/course_time.json, written by scripts/course_totals.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gru4rec.course import NOTEBOOKS
from gru4rec.course_timing import readme_line

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

HISTORY = [r"(?<![-\w])[Ss]essions? \d+\b", r"\b[Ii]ssues? \d+\b", r"measured before", r"first session", r"re-measured",
           r"not re-run", r"wired in", r"before the speed work", r"\bwas made before\b"]  # fmt: skip


def documents() -> dict:
    """README, ARCHITECTURE and docs/ pages by name, and the notebooks' cells (markdown and code)."""
    texts = {"README.md": README, "ARCHITECTURE.md": (ROOT / "ARCHITECTURE.md").read_text()}
    for path in sorted((ROOT / "docs").rglob("*")):
        if path.suffix in (".md", ".txt"):
            texts[str(path.relative_to(ROOT))] = path.read_text()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        texts[str(path.relative_to(ROOT))] = "\n".join("".join(c["source"]) for c in cells)
    return texts


def test_readme_is_at_most_200_lines() -> None:
    assert len(README.splitlines()) <= 200


@pytest.mark.parametrize("pattern", HISTORY)
def test_no_development_history_in_the_docs_or_notebooks(pattern: str) -> None:
    found = [f"{name}: {m.group(0)!r}" for name, text in documents().items() for m in re.finditer(pattern, text)]
    assert not found, found


def test_the_course_table_and_order_are_the_main_jobs() -> None:
    table = README.split("## The course", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\d\d_\w+\.ipynb)` \|", table, flags=re.M)
    assert set(NOTEBOOKS) <= set(rows), set(NOTEBOOKS) - set(rows)
    assert "the lessons 01, 02, ... in order, then the playground 00" in " ".join(README.split())


def test_the_readme_quotes_the_recorded_main_job() -> None:
    record = json.loads((ROOT / "docs" / "results" / "course_time.json").read_text())
    assert not record["smoke"] and record["notebooks"] and set(record["notebooks"]) <= set(NOTEBOOKS)
    assert readme_line(record) in " ".join(README.split()), "run scripts/course_totals.py and paste its line"


def test_the_own_data_example_is_what_the_reader_takes(tmp_path) -> None:
    from gru4rec.io import read_sessions

    section = README.split("## Your own data", 1)[1].split("\n## ", 1)[0]
    example = re.search(r"```\n(SessionId\tItemId\tTime\n.*?)```", section, re.S)
    assert example, "README: the own-data example must be tab-separated with the header"
    path = tmp_path / "example.tsv"
    path.write_text(example.group(1))
    frame = read_sessions(path)
    assert len(frame) >= 2 and str(frame["ItemId"].dtype) == "int64"


def test_readme_links_exist() -> None:
    for target in re.findall(r"\]\(((?!https?:)[^)#]+)(?:#[^)]*)?\)", README):
        assert (ROOT / target).exists(), target
