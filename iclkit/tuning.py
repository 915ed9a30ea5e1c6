"""``iclkit tune``: choose the best pipeline of a grid on a dev split and save it as a classifier.

The grid of an experiment config runs on a dev set: ``data.dev`` when given, otherwise
``tune.dev_size`` examples carved from the pool with ``tune.dev_seed`` (they are then never
demonstrations). ``data.eval`` is never read, so the evaluation labels cannot influence the
choice. The pipelines are ranked by ``tune.metric`` (accuracy or macro-F1), ties going to the
one with fewer prompt tokens per query, then to the earlier cell of the grid. The winner is
saved as an :class:`~iclkit.classifier.ICLClassifier` folder fitted on the pool it was measured
with (the dev examples stay out), so that the saved classifier is exactly the pipeline that
won: a seeded random demonstration set, for one, would be drawn differently from another pool.

Output folder::

    OUT/grid/            the dev-set run (results.jsonl, run.json, summaries, plots)
    OUT/leaderboard.csv  every cell, best first (ablation cells are listed, not chosen)
    OUT/leaderboard.md
    OUT/model/           the saved winner: iclkit predict --model OUT/model
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iclkit.errors import ConfigError
from iclkit.experiment.config import ExperimentConfig
from iclkit.experiment.data import load_dev_data
from iclkit.experiment.grid import Cell
from iclkit.experiment.report import markdown_table
from iclkit.experiment.runner import plan_experiment, run_plan
from iclkit.experiment.store import write_atomic
from iclkit.experiment.tables import CELL_COLUMNS
from iclkit.spec import PipelineSpec

LEADERBOARD_COLUMNS = ("rank", "cell", *CELL_COLUMNS, "n", "accuracy", "macro_f1", "tokens")


@dataclass(frozen=True)
class TuneResult:
    """What ``iclkit tune`` chose: the ranked rows, the winning spec and where it was saved."""

    leaderboard: list[dict[str, Any]]
    winner: PipelineSpec
    model: Path
    files: list[Path]


def eligible(cell: Cell) -> bool:
    """Whether a cell is a pipeline an application can use (not a label or order ablation)."""
    return cell.label_mode == "gold" and cell.permutation == 0


def rank(rows: Sequence[Mapping[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Complete rows best first: highest ``metric``, then fewest prompt tokens, then grid order.

    Each returned row gets its ``rank`` (1 = best).
    """
    complete = [(place, row) for place, row in enumerate(rows) if row["complete"]]
    ordered = sorted(
        complete,
        key=lambda item: (-item[1][metric], item[1].get("tokens") or 0.0, item[0]),
    )
    return [{**row, "rank": number} for number, (_, row) in enumerate(ordered, start=1)]


def _leaderboard_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(LEADERBOARD_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def tune(
    config: ExperimentConfig,
    out: str | Path,
    *,
    metric: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> TuneResult:
    """Run the grid on the dev split, rank the pipelines, and save the winner into ``out``.

    ``metric`` overrides ``config.tune.metric``. Re-running continues an interrupted grid.

    Raises:
        ConfigError: for an unknown metric, a grid with no eligible pipeline, or an output
            folder holding another config's results (unless ``overwrite``).
        DataError: for bad data, or a pool too small for the dev split.
        BackendError: if a model backend fails.
    """
    from iclkit.classifier import ICLClassifier

    out = Path(out)
    chosen_metric = metric or config.tune.metric
    if chosen_metric not in ("accuracy", "macro_f1"):
        raise ConfigError(f"metric must be 'accuracy' or 'macro_f1', got {chosen_metric!r}")
    data = load_dev_data(config.data, config.tune.dev_size, config.tune.dev_seed)
    plan = plan_experiment(config, data)
    usable = {cell.id for cell in plan.cells if eligible(cell)}
    if not usable:
        raise ConfigError(
            "no pipeline of the grid can be chosen: every cell is a label or order ablation "
            "(label_mode other than gold, or a permutation). Fix: add gold cells to the sweep"
        )
    report = run_plan(plan, out / "grid", overwrite=overwrite, progress=progress)
    ranked = rank(report.cells, chosen_metric)
    candidates = [row for row in ranked if row["cell"] in usable]
    winner_cell = plan.cell(candidates[0]["cell"])
    winner = winner_cell.pipeline(config.run.unrelated_labels)
    write_atomic(out / "leaderboard.csv", _leaderboard_csv(ranked))
    title = f"# {config.name}: pipelines ranked by dev-set {chosen_metric}\n\n"
    note = (
        f"\n\nDev set: {len(data.eval)} examples; pool for demonstrations: {len(data.pool)}. "
        f"Winner: cell {winner_cell.id}, saved to {out / 'model'}.\n"
    )
    table = markdown_table(ranked, LEADERBOARD_COLUMNS)
    write_atomic(out / "leaderboard.md", title + table + note)
    classifier = ICLClassifier.from_spec(winner).fit(data.pool)
    model = classifier.save(out / "model")
    files = [out / "leaderboard.csv", out / "leaderboard.md", model]
    return TuneResult(leaderboard=ranked, winner=winner, model=model, files=files)
