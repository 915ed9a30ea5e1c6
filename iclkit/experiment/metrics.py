"""Metrics of a run: accuracy and macro-F1 per cell, mean ± std over seeds, order spread."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from iclkit.experiment.grid import component_label

#: The per-cell columns that describe a cell (in table order).
CELL_COLUMNS = (
    "selector",
    "k",
    "orderer",
    "seed",
    "backend",
    "calibration",
    "scoring",
    "label_mode",
    "permutation",
)


def accuracy(gold: Sequence[str], predicted: Sequence[str | None]) -> float:
    """The share of predictions equal to the gold label (0.0 for no predictions)."""
    if not gold:
        return 0.0
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)


def macro_f1(gold: Sequence[str], predicted: Sequence[str | None], labels: Iterable[str]) -> float:
    """The unweighted mean over ``labels`` of each label's F1 score.

    A label never predicted and never gold counts 0 (as scikit-learn's ``zero_division=0``);
    a prediction outside ``labels`` (an unparsable generation) counts as a miss of its gold
    label and as nobody's false positive.
    """
    scores = []
    for label in labels:
        true_pos = sum(g == label and p == label for g, p in zip(gold, predicted, strict=True))
        predicted_n = sum(p == label for p in predicted)
        gold_n = sum(g == label for g in gold)
        denominator = predicted_n + gold_n
        scores.append(2 * true_pos / denominator if denominator else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def describe(params: Mapping[str, Any]) -> dict[str, Any]:
    """A cell's parameters as table columns (components by display name, ``-`` for n/a)."""
    selector = params.get("selector")
    orderer = params.get("orderer")
    seed = params.get("seed")
    return {
        "selector": "zero-shot" if selector is None else component_label(selector),
        "k": params["k"],
        "orderer": "-" if orderer is None else component_label(orderer),
        "seed": "-" if seed is None else seed,
        "backend": component_label(params["backend"]),
        "calibration": params["calibration"],
        "scoring": params["scoring"],
        "label_mode": params["label_mode"],
        "permutation": params["permutation"],
    }


def cell_rows(
    cells: Sequence[Mapping[str, Any]],
    records: Iterable[Mapping[str, Any]],
    labels: Sequence[str],
    expected: int | None = None,
) -> list[dict[str, Any]]:
    """One row per cell: its columns, the number of predictions, accuracy and macro-F1.

    ``cells`` are ``{"id": ..., "params": {...}}`` mappings (as in ``run.json``); cells with
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
        row: dict[str, Any] = {"cell": cell["id"], **describe(cell["params"]), "n": len(found)}
        row["accuracy"] = accuracy(gold, predicted) if found else None
        row["macro_f1"] = macro_f1(gold, predicted, labels) if found else None
        row["complete"] = bool(found) and (expected is None or len(found) >= expected)
        rows.append(row)
    return rows


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (0.0 for a single value)."""
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0


def _group(
    rows: Sequence[Mapping[str, Any]], over: str
) -> dict[tuple[Any, ...], list[Mapping[str, Any]]]:
    keys = [column for column in CELL_COLUMNS if column != over]
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["complete"]:
            groups[tuple(row[key] for key in keys)].append(row)
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
