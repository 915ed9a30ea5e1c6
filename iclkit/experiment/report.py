"""Render a run's summary (``summary.csv``, ``summary.md``), plots and ``report.html``."""

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
from iclkit.experiment.statistics import add_intervals
from iclkit.experiment.store import (
    PLOT_K,
    PLOT_ORDER,
    REPORT_HTML,
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


def format_value(value: Any) -> str:
    """A table value as text: floats to 3 decimals, booleans as yes/no, ``None`` empty."""
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
    lines += ["| " + " | ".join(format_value(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def plus_minus(mean: float, std: float, seeds: int) -> str:
    """``mean ± std``; one seed has no measurable spread: ``mean ± —``."""
    return f"{mean:.3f} ± {std:.3f}" if seeds > 1 else f"{mean:.3f} ± —"


def interval_text(row: Mapping[str, Any], metric: str) -> str:
    """A row's 95% interval of ``metric`` as ``[low, high]`` (empty when it has none)."""
    low, high = row.get(f"{metric}_low"), row.get(f"{metric}_high")
    return "" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"


def seeds_rows(
    rows: Sequence[Mapping[str, Any]], *, compact: bool = False
) -> tuple[list[dict[str, Any]], list[str]]:
    """The over-seeds table as text cells, and its columns.

    Accuracy and macro-F1 are ``mean ± std`` over seeds (``± —`` for one seed) with their 95%
    bootstrap interval when the rows have one. ``compact`` leaves out the columns that have
    one value in every row (except selector and k), for printing.
    """
    columns = ["baseline", *(c for c in CELL_COLUMNS if c != "seed")]
    if compact:
        columns = [
            c for c in columns if c in ("selector", "k") or len({str(r.get(c)) for r in rows}) > 1
        ]
    shown = [
        {
            **{column: format_value(row.get(column)) for column in columns},
            "seeds": str(row["seeds"]),
            "accuracy": plus_minus(row["accuracy_mean"], row["accuracy_std"], row["seeds"]),
            "accuracy 95% CI": interval_text(row, "accuracy"),
            "macro-F1": plus_minus(row["macro_f1_mean"], row["macro_f1_std"], row["seeds"]),
            "macro-F1 95% CI": interval_text(row, "macro_f1"),
        }
        for row in rows
    ]
    metrics = ["accuracy", "accuracy 95% CI", "macro-F1", "macro-F1 95% CI"]
    if not any(row["accuracy 95% CI"] for row in shown):
        metrics = ["accuracy", "macro-F1"]
    return shown, [*columns, "seeds", *metrics]


def seeds_table(rows: Sequence[Mapping[str, Any]], *, compact: bool = False) -> str:
    """The over-seeds table of :func:`seeds_rows` as Markdown."""
    shown, columns = seeds_rows(rows, compact=compact)
    return markdown_table(shown, columns)


def _summary_markdown(name: str, report: Report, n_records: int) -> str:
    parts = [
        f"# {name}",
        "",
        f"{n_records} predictions in {len(report.cells)} cells "
        f"({sum(row['complete'] for row in report.cells)} complete). Accuracy and macro-F1 are "
        "over the evaluation set; ± is the sample standard deviation over seeds (— for one "
        "seed: one value has no measurable spread); intervals are 95% bootstrap confidence "
        "intervals over the evaluation queries. Incomplete cells (an interrupted run) appear "
        "only in the per-cell table, with their n. Rows with a baseline name are the "
        "baselines every pipeline should beat (majority label; zero-shot; kNN label vote, "
        "no model; fixed random sets).",
        "",
        "## Mean over seeds",
        "",
        seeds_table(report.seeds),
        "",
        "## Per cell",
        "",
        markdown_table(
            [
                {
                    **row,
                    "accuracy 95% CI": interval_text(row, "accuracy"),
                    "macro-F1 95% CI": interval_text(row, "macro_f1"),
                }
                for row in report.cells
            ],
            [
                "cell",
                "baseline",
                *CELL_COLUMNS,
                "n",
                "accuracy",
                "accuracy 95% CI",
                "macro_f1",
                "macro-F1 95% CI",
                "tokens",
                "calls",
            ],
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
    """Accuracy vs k, one line per selector (mean over seeds, bars = std, dots = seeds).

    One panel per backend, method and calibration; panels with a single k (no curve) are
    left out when others have a curve.
    """
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
    curves = {key: rows for key, rows in panels.items() if len({r["k"] for r in rows}) > 1}
    panels = curves or panels
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


def render_report(folder: str | Path, *, html: bool = True) -> Report:
    """Re-compute every table from ``results.jsonl`` and write the summary files and plots.

    Writes ``summary.csv`` (one row per cell, with 95% bootstrap intervals), ``summary.md``
    (over seeds, per cell, order sensitivity), ``accuracy_vs_k.png``, when the grid has
    permutations ``order_sensitivity.png``, and ``report.html`` (see
    :mod:`iclkit.experiment.html_report`); with ``html`` false, no ``report.html`` (an older
    one is deleted, so that it never disagrees with the summary). Cells and labels come from
    ``run.json``; without it, from the records themselves.

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
    add_intervals(rows, rows, records, labels)
    seeds = over_seeds(rows)
    add_intervals(seeds, rows, records, labels)
    report = Report(cells=rows, seeds=seeds, orders=order_spread(rows), files=[])
    columns = ["cell", "baseline", *CELL_COLUMNS, "n", "accuracy", "accuracy_low", "accuracy_high"]
    columns += ["macro_f1", "macro_f1_low", "macro_f1_high", "tokens", "calls"]
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
    if html:
        from iclkit.experiment.html_report import render_html

        images = [path for path in report.files if path.suffix == ".png"]
        page = render_html(
            store.folder,
            name=name,
            cells=rows,
            groups=seeds,
            records=records,
            labels=labels,
            info=info,
            images=images,
        )
        report.files.append(page)
    else:
        (store.folder / REPORT_HTML).unlink(missing_ok=True)
    return report
