"""The tables of docs/evaluation_flaws.md, written from notebook 08's recorded results.

    python scripts/evaluation_flaws_tables.py OUT/results/08_evaluation_flaws.json

``OUT`` is the notebook's ``OUTPUT_DIR`` (the recorded last cell writes ``results/08_evaluation_flaws.json`` there).
Prints four Markdown tables: every model honest and flawed under every flaw, whether the order of the models changes,
the sampled sweep, and the order of the models at each point of the sweep.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gru4rec.lessons.evaluation_flaws import MODEL_LABELS, verdict_table  # noqa: E402


def _row(cells) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _rule(n: int) -> str:
    return "|" + "---|" * n


def flaw_table(record: dict) -> list:
    """Honest and flawed Recall@k and MRR@k of every model under every flaw, with the ratio and the places."""
    k = record["k"]
    header = ["flaw", "model", f"honest Recall@{k}", f"flawed Recall@{k}", "ratio", f"honest MRR@{k}",
              f"flawed MRR@{k}", "place (honest → flawed)"]  # fmt: skip
    lines = [_row(header), _rule(len(header))]
    for flaw in record["flaws"]:
        for i, row in enumerate(flaw["rows"]):
            lines.append(_row([
                flaw["flaw"] if i == 0 else "", MODEL_LABELS.get(row["model"], row["model"]),
                f"{row[f'honest recall@{k}']:.4f}", f"{row[f'flawed recall@{k}']:.4f}", f"{row['ratio']:.2f}×",
                f"{row[f'honest mrr@{k}']:.4f}", f"{row[f'flawed mrr@{k}']:.4f}",
                f"{row['honest place']} → {row['flawed place']}",
            ]))  # fmt: skip
    return lines


def order_table(record: dict) -> list:
    """Per flaw: whether the order by Recall@k and by MRR@k changes, and the swapped pairs (the notebook's
    :func:`~gru4rec.lessons.evaluation_flaws.verdict_table`)."""
    k = record["k"]
    table = verdict_table(record["flaws"], MODEL_LABELS)
    header = ["flaw", f"order by Recall@{k} changes", "swapped pairs (Recall)", f"order by MRR@{k} changes",
              "swapped pairs (MRR)"]  # fmt: skip
    lines = [_row(header), _rule(len(header))]
    yes_no = lambda changes: "yes" if changes else "no"  # noqa: E731
    pairs = lambda text: "–" if text == "-" else text  # noqa: E731  (the page's dash for "none")
    for flaw, recall_changes, recall_pairs, mrr_changes, mrr_pairs in table.itertuples(index=False):
        lines.append(_row([flaw, yes_no(recall_changes), pairs(recall_pairs), yes_no(mrr_changes), pairs(mrr_pairs)]))
    return lines


def sweep_table(record: dict) -> list:
    """Sampled Recall@k of every model at every point of the sweep, then the honest value over all items."""
    k, models = record["k"], record["models"]
    header = ["sampling", "N"] + [MODEL_LABELS.get(m, m) for m in models]
    lines = [_row(header), _rule(len(header))]
    points: dict = {}
    for row in record["sampled_sweep"]:
        points.setdefault((row["sampling"], int(row["n_negatives"])), {})[row["model"]] = row[f"recall@{k}"]
    for (sampling, n), values in points.items():
        lines.append(_row([sampling, n] + [f"{values[m]:.4f}" for m in models]))
    lines.append(_row(["full catalogue", "all"] + [f"{record['honest'][m][f'recall@{k}']:.4f}" for m in models]))
    return lines


def sweep_order_table(record: dict) -> list:
    """The order of the models by sampled Recall@k at each point of the sweep, and whether it changed."""
    k = record["k"]
    lines = [_row(["sampling", "N", f"order by sampled Recall@{k}", "changes"]), _rule(4)]
    for row in record["sweep_verdicts"]:
        order = " > ".join(MODEL_LABELS.get(m, m) for m in row["order"])
        lines.append(_row([row["sampling"], row["n_negatives"], order, "yes" if row["order_changes"] else "no"]))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="results/08_evaluation_flaws.json of a run of notebook 08")
    args = parser.parse_args(argv)
    try:
        record = json.loads(Path(args.results).read_text())
        tables = (("Honest and flawed numbers of every model", flaw_table(record)),
                  ("Does the order of the models change?", order_table(record)),
                  ("The sampled sweep", sweep_table(record)),
                  ("The order at each point of the sweep", sweep_order_table(record)))  # fmt: skip
    except (OSError, ValueError) as error:
        print(f"{args.results}: {error}", file=sys.stderr)
        return 2
    except (KeyError, TypeError) as error:
        print(f"{args.results}: not the recorded results of notebook 08 (missing or malformed: {error})",
              file=sys.stderr)
        return 2
    for title, table in tables:
        print(f"<!-- {title} -->")
        print("\n".join(table))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
