"""``report.html``: a run's results as one self-contained page (no network, opens from disk).

The page holds the leaderboard (baselines first), a pivot of selector × k against
calibration, the run's plots, the paired comparisons between selectors, and, for any cell,
its confusion matrix, calibration and a filterable table of its predictions with the
demonstrations each prompt showed (provenance). It is rendered with Jinja2 from
``iclkit/experiment/templates/report.html.j2``; plots are matplotlib PNGs embedded as data
URIs; the only script is the page's own cell chooser and table filter.

Rows are the per-cell rows of :func:`~iclkit.experiment.tables.cell_rows` with the intervals
of :func:`~iclkit.experiment.statistics.add_intervals`; the columns that describe a cell are
:data:`~iclkit.experiment.tables.CELL_COLUMNS`, whichever they are.
"""

from __future__ import annotations

import base64
import io
import itertools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from iclkit.experiment.report import format_value, interval_text, plus_minus
from iclkit.experiment.statistics import (
    DEFAULT_RESAMPLES,
    Records,
    compare,
    confusion,
    members_of,
    reliability,
)
from iclkit.experiment.store import REPORT_HTML, write_atomic
from iclkit.experiment.tables import CELL_COLUMNS

logger = logging.getLogger("iclkit.experiment")

#: The columns every layout of the cell columns keeps (the pivot's rows and columns).
PIVOT_ROWS = ("selector", "k")
PIVOT_COLUMNS = "calibration"
#: Paired comparisons at most shown (the table keeps the smallest p-values).
MAX_COMPARISONS = 60
#: Lines at most in the reliability diagram (the best cell of each selector).
MAX_RELIABILITY_LINES = 8


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The cell columns present in ``rows``, in table order."""
    return [column for column in CELL_COLUMNS if rows and column in rows[0]]


def _varying(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    """``columns`` that take more than one value in ``rows`` (plus the pivot's rows)."""
    return [
        column
        for column in columns
        if column in PIVOT_ROWS or len({format_value(row.get(column)) for row in rows}) > 1
    ]


def _is_baseline(row: Mapping[str, Any]) -> bool:
    return bool(row.get("baseline"))


def _image(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _describe(row: Mapping[str, Any], columns: Sequence[str]) -> str:
    return " · ".join(f"{column}={format_value(row.get(column))}" for column in columns)


class _Run:
    """A run's rows and records, indexed for the report's tables."""

    def __init__(
        self,
        cells: Sequence[Mapping[str, Any]],
        groups: Sequence[Mapping[str, Any]],
        records: Records,
        labels: Sequence[str],
    ) -> None:
        self.cells = list(cells)
        self.groups = list(groups)
        self.labels = list(labels)
        self.records: dict[str, list[Mapping[str, Any]]] = {}
        for record in records:
            self.records.setdefault(str(record["cell"]), []).append(record)
        self.columns = _columns(self.cells)
        self.group_columns = [c for c in self.columns if c != "seed"]
        self.members = [members_of(group, self.cells) for group in self.groups]
        baseline_of = {str(row["cell"]): format_value(row.get("baseline")) for row in self.cells}
        #: Per group: its baseline name ("" for an ICL setting), from the group or its cells.
        self.baselines = [
            format_value(group["baseline"])
            if "baseline" in group
            else next((baseline_of[cell] for cell in members if baseline_of[cell]), "")
            for group, members in zip(self.groups, self.members, strict=True)
        ]

    def group_records(self, index: int) -> list[list[Mapping[str, Any]]]:
        return [self.records.get(cell, []) for cell in self.members[index]]

    def baseline(self, index: int) -> str:
        return self.baselines[index]


def _leaderboard(run: _Run, resamples: int) -> dict[str, Any]:
    """Groups over seeds, baselines first, then by accuracy; each with its p-value vs best."""
    shown = _varying(run.groups, run.group_columns)
    order = sorted(
        range(len(run.groups)),
        key=lambda i: (not run.baseline(i), -(run.groups[i]["accuracy_mean"] or 0.0)),
    )
    candidates = [i for i in order if not run.baseline(i)] or order
    best = candidates[0] if candidates else None
    rows = []
    for i in order:
        group = run.groups[i]
        p_value = ""
        if best is not None and i != best:
            try:
                comparison = compare(
                    run.group_records(i), run.group_records(best), resamples=resamples
                )
                p_value = f"{comparison.p_value:.3g}"
            except ValueError:  # no shared queries
                p_value = ""
        eces = [
            found.ece
            for records in run.group_records(i)
            if (found := reliability(records)) is not None
        ]
        rows.append(
            {
                "baseline": run.baseline(i),
                "best": i == best,
                "values": [format_value(group.get(column)) for column in shown],
                "seeds": group.get("seeds", 1),
                "accuracy": plus_minus(
                    group["accuracy_mean"], group["accuracy_std"], group["seeds"]
                ),
                "accuracy_ci": interval_text(group, "accuracy"),
                "macro_f1": plus_minus(
                    group["macro_f1_mean"], group["macro_f1_std"], group["seeds"]
                ),
                "macro_f1_ci": interval_text(group, "macro_f1"),
                "ece": f"{sum(eces) / len(eces):.3f}" if eces else "",
                "p_value": p_value,
            }
        )
    return {"columns": shown, "rows": rows}


def _pivot(run: _Run) -> dict[str, Any] | None:
    """Accuracy (mean over seeds) by selector × k (and other varying columns) × calibration."""
    if not run.groups or any(c not in run.group_columns for c in (*PIVOT_ROWS, PIVOT_COLUMNS)):
        return None
    row_columns = [c for c in _varying(run.groups, run.group_columns) if c != PIVOT_COLUMNS]
    values = sorted({format_value(group[PIVOT_COLUMNS]) for group in run.groups})
    table: dict[tuple[str, ...], dict[str, str]] = {}
    for group in run.groups:
        key = tuple(format_value(group.get(column)) for column in row_columns)
        cell = f"{group['accuracy_mean']:.3f}"
        if group.get("accuracy_low") is not None:
            cell += f" {interval_text(group, 'accuracy')}"
        table.setdefault(key, {})[format_value(group[PIVOT_COLUMNS])] = cell
    rows = [
        {"key": list(key), "values": [found.get(value, "") for value in values]}
        for key, found in sorted(table.items(), key=lambda item: _sort_key(item[0]))
    ]
    return {"row_columns": row_columns, "columns": values, "rows": rows, "name": PIVOT_COLUMNS}


def _sort_key(values: Sequence[str]) -> tuple[tuple[int, float, str], ...]:
    """Sort numbers as numbers, text as text."""
    key = []
    for value in values:
        try:
            key.append((0, float(value), ""))
        except ValueError:
            key.append((1, 0.0, value))
    return tuple(key)


def _comparisons(run: _Run, resamples: int) -> list[dict[str, str]]:
    """Every two selectors that share all other settings, compared on the same queries."""
    others = [c for c in run.group_columns if c != "selector"]
    families: dict[tuple[str, ...], list[int]] = {}
    for i, group in enumerate(run.groups):
        if not run.baseline(i):
            families.setdefault(tuple(format_value(group.get(c)) for c in others), []).append(i)
    setting_columns = _varying(run.groups, others)
    found: list[tuple[float, dict[str, str]]] = []
    for members in families.values():
        for a, b in itertools.combinations(members, 2):
            first, second = sorted((a, b), key=lambda i: -run.groups[i]["accuracy_mean"])
            try:
                result = compare(
                    run.group_records(first), run.group_records(second), resamples=resamples
                )
            except ValueError:
                continue
            group = run.groups[first]
            row = {
                "setting": _describe(group, setting_columns),
                "a": format_value(group["selector"]),
                "b": format_value(run.groups[second]["selector"]),
                "n": str(result.n),
                "difference": f"{result.difference.estimate:+.3f}",
                "interval": (f"[{result.difference.low:+.3f}, {result.difference.high:+.3f}]"),
                "p_value": f"{result.p_value:.3g}",
                "test": result.test,
            }
            found.append((result.p_value, row))
    found.sort(key=lambda item: item[0])
    return [row for _, row in found[:MAX_COMPARISONS]]


def _reliability_plot(run: _Run) -> str | None:
    """A reliability diagram of the best complete cell of each selector, as a data URI."""
    best: dict[str, Mapping[str, Any]] = {}
    for row in run.cells:
        if not row["complete"] or _is_baseline(row):
            continue
        name = format_value(row.get("selector"))
        if name not in best or row["accuracy"] > best[name]["accuracy"]:
            best[name] = row
    curves = []
    for name, row in sorted(best.items(), key=lambda item: -item[1]["accuracy"]):
        found = reliability(run.records.get(row["cell"], []))
        if found is not None:
            curves.append((name, row, found))
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.2, 4.4))
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for name, row, found in curves[:MAX_RELIABILITY_LINES]:
        axis.plot(
            found.confidence,
            found.accuracy,
            marker="o",
            label=f"{name} k={row.get('k')} (ECE {found.ece:.3f})",
        )
    lowest = min(min(found.confidence) for _, _, found in curves)
    axis.set_xlim(max(0.0, min(0.5, lowest) - 0.05), 1.0)
    axis.set_ylim(0.0, 1.0)
    axis.set_xlabel("confidence (probability of the predicted label)")
    axis.set_ylabel("accuracy")
    axis.set_title("Reliability: best cell of each selector", fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _texts(info: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]] | None:
    """Texts of the pool and evaluation examples by id, when the run's data can be read."""
    from iclkit.experiment.config import DataConfig
    from iclkit.experiment.data import load_data

    try:
        data = load_data(DataConfig.model_validate(info["config"]["data"]))
    except Exception as error:  # any reason the data is not reachable: show ids instead
        logger.info(
            "report.html shows example ids only: the run's data is not readable (%s)", error
        )
        return None
    pool = {str(example.id): example.text for example in data.pool}
    queries = {str(example.id): example.text for example in data.eval}
    return pool, queries


def _cell_details(
    run: _Run, max_queries: int | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per cell: its settings, metrics, confusion matrix, calibration; and its predictions."""
    details = []
    predictions: dict[str, list[list[Any]]] = {}
    ordered = sorted(run.cells, key=lambda row: -(row["accuracy"] or 0.0))
    varying = _varying(run.cells, run.columns)
    for row in ordered:
        records = run.records.get(row["cell"], [])
        calibration = reliability(records)
        details.append(
            {
                "id": row["cell"],
                "label": f"{_describe(row, varying)} — accuracy {format_value(row['accuracy'])}",
                "settings": [(column, format_value(row.get(column))) for column in run.columns],
                "n": row["n"],
                "accuracy": format_value(row["accuracy"]),
                "accuracy_ci": interval_text(row, "accuracy"),
                "macro_f1": format_value(row["macro_f1"]),
                "macro_f1_ci": interval_text(row, "macro_f1"),
                "confusion": confusion(records, run.labels) if records else None,
                "reliability": calibration,
            }
        )
        predictions[row["cell"]] = [
            [
                str(record["query"]),
                record.get("text"),
                [str(demo) for demo in record.get("demos", [])],
                list(record.get("demo_labels", [])),
                record.get("demo_scores"),
                record.get("probabilities") or {},
                record.get("prediction"),
                record.get("gold"),
            ]
            for record in records[:max_queries]
        ]
    return details, predictions


def render_html(
    folder: Path,
    *,
    name: str,
    cells: Sequence[Mapping[str, Any]],
    groups: Sequence[Mapping[str, Any]],
    records: Records,
    labels: Sequence[str],
    info: Mapping[str, Any],
    images: Sequence[Path] = (),
    resamples: int = DEFAULT_RESAMPLES,
    max_queries: int | None = None,
) -> Path:
    """Write ``folder/report.html`` and return its path.

    ``cells`` are the per-cell rows and ``groups`` the over-seeds rows of the run (both with
    their bootstrap intervals), ``records`` the lines of ``results.jsonl``, ``info`` the
    ``run.json`` contents (the data section is read again, when reachable, for the texts of
    the queries and demonstrations), ``images`` PNG plots to embed. ``max_queries`` limits the
    predictions listed per cell (``None``: all).
    """
    from jinja2 import Environment, PackageLoader, select_autoescape

    run = _Run(cells, groups, records, labels)
    details, predictions = _cell_details(run, max_queries)
    texts = _texts(info)
    if texts is not None:  # only the examples the listed predictions show
        shown = [row for rows in predictions.values() for row in rows]
        used_demos = {demo for row in shown for demo in row[2]}
        used_queries = {row[0] for row in shown}
        texts = (
            {key: text for key, text in texts[0].items() if key in used_demos},
            {key: text for key, text in texts[1].items() if key in used_queries},
        )
    plots = [{"title": path.stem.replace("_", " "), "src": _image(path)} for path in images]
    diagram = _reliability_plot(run)
    if diagram is not None:
        plots.append({"title": "reliability", "src": diagram})
    environment = Environment(
        loader=PackageLoader("iclkit.experiment", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    page = environment.get_template("report.html.j2").render(
        name=name,
        info=info,
        labels=run.labels,
        n_records=len(records),
        n_cells=len(run.cells),
        n_complete=sum(bool(row["complete"]) for row in run.cells),
        resamples=resamples,
        leaderboard=_leaderboard(run, resamples),
        pivot=_pivot(run),
        plots=plots,
        comparisons=_comparisons(run, resamples),
        details=details,
        provenance={
            "predictions": predictions,
            "pool": texts[0] if texts else {},
            "queries": texts[1] if texts else {},
        },
        has_texts=texts is not None,
        has_baselines=any(_is_baseline(row) for row in run.cells),
    )
    target = folder / REPORT_HTML
    write_atomic(target, page)
    return target
