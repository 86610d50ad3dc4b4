"""Write the main job's measured totals for the README from recorded runs (``gru4rec course`` writes
``OUT/course_timing.json`` at the end of every call).

    python scripts/course_totals.py build/course_timing.json [MORE.json ...] [--out docs/results/course_time.json]

Several records (calls into the same output folder, e.g. ``--only`` runs) are merged; the merged record goes to
``--out`` and the README line is printed: paste it into README.md (``tests/test_readme_docs.py`` checks that the
README quotes the file's figures)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gru4rec.course import NOTEBOOKS
from gru4rec.course_timing import check_record, format_minutes, merge_records, readme_line
from gru4rec.io import atomic_write

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="+", help="course_timing.json files, in the order they were run")
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "course_time.json"))
    args = parser.parse_args(argv)
    records = []
    for name in args.records:
        try:
            record = json.loads(Path(name).read_text())
        except (OSError, ValueError) as error:
            print(f"{name}: {error}", file=sys.stderr)
            return 2
        try:
            check_record(record, name)
        except ValueError as error:
            print(error, file=sys.stderr)
            return 2
        records.append(record)
    try:
        merged = merge_records(records)
    except ValueError as error:
        print(f"course_totals: {error}", file=sys.stderr)
        return 2
    order = {name: i for i, name in enumerate(NOTEBOOKS)}  # the main job's order
    merged["notebooks"] = dict(sorted(merged["notebooks"].items(), key=lambda kv: order.get(kv[0], len(order))))
    out = Path(args.out)
    with atomic_write(out) as handle:
        handle.write(json.dumps(merged, indent=1) + "\n")
    print("| notebook | time |\n|---|---:|")
    for name, seconds in merged["notebooks"].items():
        print(f"| `{name}` | {format_minutes(seconds)} |")
    print(f"| all | {format_minutes(merged['total_s'])} |")
    print(f"\nwritten {out}\nREADME line:\n{readme_line(merged)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
