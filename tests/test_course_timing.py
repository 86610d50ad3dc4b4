"""gru4rec.course_timing: the main job's record (time per notebook, output size, machine, load) and the README line
made from it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gru4rec.course_timing import (
    check_record,
    folder_bytes,
    format_gbytes,
    format_minutes,
    merge_records,
    readme_line,
    timing_record,
    write_timing,
)


def test_a_record_counts_the_output_folder_and_is_written_atomically(tmp_path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "a.bin").write_bytes(b"x" * 1000)
    (tmp_path / "b.txt").write_text("y" * 24)
    (tmp_path / "link").symlink_to(tmp_path / "runs" / "a.bin")  # not counted twice
    assert folder_bytes(tmp_path) == 1024
    record = timing_record({"01.ipynb": 10.04, "00.ipynb": 5.0}, tmp_path, False, (1.0, 2.0, 3.0), (2.5, 2.0, 1.0))
    assert record["total_s"] == 15.0 and record["out_bytes"] == 1024 and record["machine"]["cores"] >= 1
    path = write_timing(tmp_path, record)
    assert json.loads(path.read_text()) == record and not list(tmp_path.glob(".*tmp*"))


def test_merging_two_calls_and_the_readme_line() -> None:
    machine = {"cpu": "AMD EPYC", "cores": 2, "system": "Linux"}
    first = {"smoke": False, "notebooks": {"06.ipynb": 200.0, "07.ipynb": 250.0}, "out_bytes": 1, "machine": machine,
             "load_before": [3.0], "load_after": [5.5], "date": "2026-12-07"}
    second = {**first, "notebooks": {"01.ipynb": 14.0, "00.ipynb": 92.4}, "out_bytes": 812_000_000,
              "load_before": [2.0], "load_after": [4.0]}
    merged = merge_records([first, second])
    assert merged["total_s"] == 556.4 and merged["out_bytes"] == 812_000_000 and merged["load_range"] == [2.0, 5.5]
    assert readme_line(merged) == ("9 min 16 s for the 4 notebooks after the set-up, `build/` 0.81 GB at the end, on a "
                                   "2-core AMD EPYC shared with other jobs (load average 2.0–5.5 during the run).")
    with pytest.raises(ValueError, match="smoke"):
        merge_records([{**first, "smoke": True}])
    with pytest.raises(ValueError, match="different machines"):
        merge_records([first, {**second, "machine": {**machine, "cores": 4}}])


def test_formats() -> None:
    assert format_minutes(905.4) == "15 min 5 s" and format_minutes(59.6) == "1 min 0 s"
    assert format_gbytes(2_500_000_000) == "2.50 GB"


def test_a_merged_record_or_other_json_is_refused_with_one_line_naming_it(tmp_path) -> None:
    """scripts/course_totals.py merges the records of course runs; the merged file it writes is not one of them."""
    merged = {"smoke": False, "notebooks": {"01.ipynb": 14.0}, "total_s": 14.0, "out_bytes": 1,
              "machine": {"cpu": "x", "cores": 2, "system": "Linux"}, "load_range": [1.0, 2.0], "dates": ["2026-12-07"]}
    with pytest.raises(ValueError, match=r"^merged.json: not a course_timing.json record .*missing: load_before, "
                                         r"load_after, date\)$"):
        check_record(merged, "merged.json")
    with pytest.raises(ValueError, match=r"^x.json: expected .* got list$"):
        check_record([1], "x.json")
    with pytest.raises(ValueError, match="record 1: .*missing"):
        merge_records([merged])
    path = tmp_path / "course_time.json"
    path.write_text(json.dumps(merged))
    out = tmp_path / "out.json"
    script = Path(__file__).resolve().parents[1] / "scripts" / "course_totals.py"
    done = subprocess.run([sys.executable, str(script), str(path), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 2 and not out.exists()
    assert done.stderr.strip().splitlines() == [f"{path}: not a course_timing.json record of one course run "
                                                "(missing: load_before, load_after, date)"]
