"""The tables of a run: accuracy and macro-F1 per cell, mean ± std over seeds, order spread."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from iclkit.experiment.grid import component_label
from iclkit.metrics import accuracy, macro_f1

#: The per-cell columns that describe a cell (in table order).
CELL_COLUMNS = (
    "selector",
    "k",
    "orderer",
    "seed",
    "formatter",
    "backend",
    "method",
    "calibration",
    "label_mode",
    "permutation",
)


def describe(params: Mapping[str, Any]) -> dict[str, Any]:
    """A cell's parameters as table columns (components by display name, ``-`` for n/a).

    The instruction and token budget, when set, show in the formatter column.
    """
    zero_shot = params["k"] == 0
    seed = params.get("seed")
    classifier = params.get("classifier", {})
    formatter = component_label(params["formatter"])
    if params.get("instruction"):
        formatter += f" +instruction {str(params['instruction'])[:24]!r}"
    if params.get("token_budget") is not None:
        formatter += f" budget={params['token_budget']}"
    return {
        "selector": "zero-shot" if zero_shot else component_label(params["selector"]),
        "k": params["k"],
        "orderer": "-" if zero_shot else component_label(params["orderer"]),
        "seed": "-" if seed is None else seed,
        "formatter": formatter,
        "backend": component_label(params["backend"]),
        "method": component_label(classifier.get("method", {"name": "loglik"})),
        "calibration": component_label(classifier.get("calibration")),
        "label_mode": params.get("label_mode", "gold"),
        "permutation": params.get("permutation", 0),
    }


def cell_rows(
    cells: Sequence[Mapping[str, Any]],
    records: Iterable[Mapping[str, Any]],
    labels: Sequence[str],
    expected: int | None = None,
) -> list[dict[str, Any]]:
    """One row per cell: its columns, the number of predictions, accuracy and macro-F1.

    ``tokens`` and ``calls`` are the mean prompt tokens and model calls per query (the cost
    of a prediction); ``params`` is the cell's full spec; ``baseline`` names the baseline the
    cell is (``majority``, ``zero-shot``, ``knn-vote``, ``random``), ``None`` for the others.

    ``cells`` are ``{"id": ..., "params": {...}, "baseline": ...}`` mappings (as in
    ``run.json``; ``baseline`` optional); cells with
    no predictions yet get ``n = 0`` and empty metrics. ``complete`` says whether the cell
    has all ``expected`` predictions (an interrupted run leaves cells incomplete); only
    complete cells enter :func:`over_seeds` and :func:`order_spread`.
    """
    by_cell: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        by_cell[record["cell"]].append(record)
    rows = []
    for cell in cells:
        found = by_cell.get(cell["id"], [])
        gold = [record["gold"] for record in found]
        predicted = [record["prediction"] for record in found]
        row: dict[str, Any] = {
            "cell": cell["id"],
            "baseline": cell.get("baseline"),
            **describe(cell["params"]),
            "n": len(found),
        }
        row["accuracy"] = accuracy(gold, predicted) if found else None
        row["macro_f1"] = macro_f1(gold, predicted, labels) if found else None
        for column, key in (("tokens", "prompt_tokens"), ("calls", "model_calls")):
            values = [record[key] for record in found if record.get(key) is not None]
            row[column] = statistics.fmean(values) if values else None
        row["complete"] = bool(found) and (expected is None or len(found) >= expected)
        row["params"] = cell["params"]
        rows.append(row)
    return rows


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (0.0 for a single value)."""
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0


def _group(rows: Sequence[Mapping[str, Any]], over: str) -> dict[str, list[Mapping[str, Any]]]:
    """Complete rows grouped by their full spec except the parameter ``over``."""
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["complete"]:
            rest = {key: value for key, value in row["params"].items() if key != over}
            groups[json.dumps(rest, sort_keys=True)].append(row)
    return groups


def over_seeds(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows grouped over ``seed``: mean and sample std of accuracy and macro-F1 per group."""
    table = []
    for members in _group(rows, "seed").values():
        accuracy_mean, accuracy_std = mean_std([row["accuracy"] for row in members])
        f1_mean, f1_std = mean_std([row["macro_f1"] for row in members])
        first = members[0]
        table.append(
            {
                "baseline": first.get("baseline"),
                **{column: first[column] for column in CELL_COLUMNS if column != "seed"},
                "seeds": len(members),
                "accuracy_mean": accuracy_mean,
                "accuracy_std": accuracy_std,
                "macro_f1_mean": f1_mean,
                "macro_f1_std": f1_std,
            }
        )
    return table


def order_spread(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows grouped over ``permutation`` (groups with several orders): accuracy spread."""
    table = []
    for members in _group(rows, "permutation").values():
        if len(members) < 2:
            continue
        values = [row["accuracy"] for row in members]
        mean, std = mean_std(values)
        first = members[0]
        table.append(
            {
                **{column: first[column] for column in CELL_COLUMNS if column != "permutation"},
                "orders": len(members),
                "accuracy_mean": mean,
                "accuracy_std": std,
                "accuracy_min": min(values),
                "accuracy_max": max(values),
                "accuracy_values": values,
            }
        )
    return table
