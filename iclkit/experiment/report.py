"""Render a run's summary (``summary.csv``, ``summary.md``) and plots from ``results.jsonl``."""

from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iclkit.errors import DataError
from iclkit.experiment.store import (
    PLOT_K,
    PLOT_ORDER,
    SUMMARY_CSV,
    SUMMARY_MD,
    ResultsStore,
    write_atomic,
)
from iclkit.experiment.tables import CELL_COLUMNS, cell_rows, mean_std, order_spread, over_seeds


@dataclass(frozen=True)
class Report:
    """The tables of a run: per cell, over seeds, and order spread; and the files written."""

    cells: list[dict[str, Any]]
    seeds: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    files: list[Path]


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return ""
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub-flavoured Markdown table of ``rows`` (floats to 3 decimals)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_text(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _pm(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {std:.3f}"


def seeds_table(rows: Sequence[Mapping[str, Any]], *, compact: bool = False) -> str:
    """The over-seeds table as Markdown: ``mean ± std`` of accuracy and macro-F1 per group.

    ``compact`` leaves out the columns that have one value in every row (except selector
    and k), for printing.
    """
    columns = [c for c in CELL_COLUMNS if c != "seed"]
    if compact:
        columns = [
            c for c in columns if c in ("selector", "k") or len({str(r[c]) for r in rows}) > 1
        ]
    shown = [
        {
            **row,
            "accuracy": _pm(row["accuracy_mean"], row["accuracy_std"]),
            "macro-F1": _pm(row["macro_f1_mean"], row["macro_f1_std"]),
        }
        for row in rows
    ]
    return markdown_table(shown, [*columns, "seeds", "accuracy", "macro-F1"])


def _summary_markdown(name: str, report: Report, n_records: int) -> str:
    parts = [
        f"# {name}",
        "",
        f"{n_records} predictions in {len(report.cells)} cells "
        f"({sum(row['complete'] for row in report.cells)} complete). Accuracy and macro-F1 are "
        "over the evaluation set; ± is the sample standard deviation over seeds. Incomplete "
        "cells (an interrupted run) appear only in the per-cell table, with their n.",
        "",
        "## Mean over seeds",
        "",
        seeds_table(report.seeds),
        "",
        "## Per cell",
        "",
        markdown_table(
            report.cells, ["cell", *CELL_COLUMNS, "n", "accuracy", "macro_f1", "tokens", "calls"]
        ),
    ]
    if report.orders:
        columns = [c for c in CELL_COLUMNS if c != "permutation"]
        parts += [
            "",
            "## Order sensitivity (the same demonstrations in several orders)",
            "",
            markdown_table(
                report.orders,
                [
                    *columns,
                    "orders",
                    "accuracy_mean",
                    "accuracy_std",
                    "accuracy_min",
                    "accuracy_max",
                ],
            ),
        ]
    return "\n".join(parts) + "\n"


def _csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _save(figure: Any, path: Path) -> None:
    """Save a matplotlib figure as PNG through a temporary file and ``os.replace``."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.png")
    try:
        figure.savefig(temporary, dpi=120)
        os.replace(temporary, path)
    finally:
        plt.close(figure)
        temporary.unlink(missing_ok=True)


def _panel_key(row: Mapping[str, Any]) -> str:
    calibration = "uncalibrated" if row["calibration"] == "none" else row["calibration"]
    return f"{row['backend']} · {row['method']} · {calibration}"


def _plot_k(rows: Sequence[Mapping[str, Any]], path: Path) -> bool:
    """Accuracy vs k, one line per selector (mean over seeds, bars = std, dots = seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = [r for r in rows if r["label_mode"] == "gold" and r["permutation"] == 0]
    chosen = [r for r in chosen if r["complete"]]
    if not chosen:
        return False
    panels: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in chosen:
        panels[_panel_key(row)].append(row)
    figure, axes = plt.subplots(
        1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False, sharey=True
    )
    for axis, (title, members) in zip(axes[0], sorted(panels.items()), strict=True):
        zero = [r["accuracy"] for r in members if r["k"] == 0]
        lines: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for row in members:
            if row["k"] > 0:
                name = row["selector"] + (
                    "" if row["orderer"] == "as-selected" else f" / {row['orderer']}"
                )
                lines[name][row["k"]].append(row["accuracy"])
        for name, by_k in sorted(lines.items()):
            points = {0: zero, **by_k} if zero else dict(by_k)
            ks = sorted(points)
            means, stds = zip(*(mean_std(points[k]) for k in ks), strict=True)
            line = axis.errorbar(ks, means, yerr=stds, marker="o", capsize=3, label=name)
            for k in ks:
                if len(points[k]) > 1:
                    axis.scatter(
                        [k] * len(points[k]), points[k], s=10, alpha=0.5, color=line[0].get_color()
                    )
        if zero and not lines:
            axis.scatter([0], zero, marker="*", s=80, label="zero-shot")
        axis.set_xticks(sorted({row["k"] for row in members}))
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("k (demonstrations)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    axes[0][0].set_ylabel("accuracy")
    _save(figure, path)
    return True


def _plot_orders(orders: Sequence[Mapping[str, Any]], path: Path) -> bool:
    """One strip per group: accuracy of each demonstration order, with its min-max range."""
    if not orders:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(max(5.0, 1.8 * len(orders) + 2), 4.4))
    names = []
    for position, group in enumerate(orders):
        values = group["accuracy_values"]
        axis.vlines(position, min(values), max(values), color="grey", alpha=0.6)
        axis.scatter([position] * len(values), values, s=14, zorder=3)
        seed = "" if group["seed"] == "-" else f" s{group['seed']}"
        calibration = "" if group["calibration"] == "none" else f" {group['calibration']}"
        names.append(
            f"{group['selector']}\nk={group['k']}{seed}\n{group['label_mode']}{calibration}"
        )
    axis.set_xticks(range(len(orders)), names, fontsize=7)
    axis.margins(x=0.5 / max(1, len(orders)))
    axis.set_ylabel("accuracy")
    axis.set_title("Order sensitivity: the same demonstrations in different orders", fontsize=9)
    axis.grid(alpha=0.3, axis="y")
    _save(figure, path)
    return True


def render_report(folder: str | Path) -> Report:
    """Re-compute every table from ``results.jsonl`` and write the summary files and plots.

    Writes ``summary.csv`` (one row per cell), ``summary.md`` (over seeds, per cell, order
    sensitivity), ``accuracy_vs_k.png`` and, when the grid has permutations,
    ``order_sensitivity.png``. Cells and labels come from ``run.json``; without it, from the
    records themselves.

    Raises:
        DataError: if the folder has no ``results.jsonl`` or it holds a malformed line.
    """
    store = ResultsStore(folder)
    if not store.results_path.exists():
        raise DataError(
            "no results.jsonl here", path=store.folder, fix="give the --out folder of a run"
        )
    info = store.info() or {}
    records = store.records()
    cells = info.get("cells")
    if cells is None:
        seen: dict[str, dict[str, Any]] = {}
        for record in records:
            seen.setdefault(record["cell"], {"id": record["cell"], "params": record["params"]})
        cells = list(seen.values())
    wanted = {cell["id"] for cell in cells}
    records = [record for record in records if record["cell"] in wanted]
    labels = info.get("labels") or sorted({record["gold"] for record in records})
    rows = cell_rows(cells, records, labels, info.get("eval_size"))
    report = Report(cells=rows, seeds=over_seeds(rows), orders=order_spread(rows), files=[])
    columns = ["cell", *CELL_COLUMNS, "n", "accuracy", "macro_f1", "tokens", "calls"]
    write_atomic(store.folder / SUMMARY_CSV, _csv(rows, columns))
    name = str(info.get("name", store.folder.name))
    write_atomic(store.folder / SUMMARY_MD, _summary_markdown(name, report, len(records)))
    report.files.extend([store.folder / SUMMARY_CSV, store.folder / SUMMARY_MD])
    for plotted, target in (
        (_plot_k(rows, store.folder / PLOT_K), PLOT_K),
        (_plot_orders(report.orders, store.folder / PLOT_ORDER), PLOT_ORDER),
    ):
        if plotted:
            report.files.append(store.folder / target)
    return report
