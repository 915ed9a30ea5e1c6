"""``iclkit tune``: choose the best pipeline of a grid on a dev split and save it as a classifier.

The grid of an experiment config runs on a dev set: ``data.dev`` when given, otherwise
``tune.dev_size`` examples carved from the pool with ``tune.dev_seed`` (they are then never
demonstrations). ``data.eval`` is never read, so the evaluation labels cannot influence the
choice. The pipelines are ranked by ``tune.metric`` (accuracy or macro-F1), ties going to the
one with fewer prompt tokens per query, then to the earlier cell of the grid. The winner is
saved as an :class:`~iclkit.classifier.ICLClassifier` folder fitted on the pool it was measured
with (the dev examples stay out), so that the saved classifier is exactly the pipeline that
won: a seeded random demonstration set, for one, would be drawn differently from another pool.

The grid includes the baselines of ``config.baselines`` (see :mod:`iclkit.experiment.baselines`;
``knn-vote``'s k is chosen on the same dev split); they are ranked with the rest, so a
baseline that beats every ICL pipeline on the dev split is what ``tune`` saves.

With ``evaluate`` (``iclkit tune --evaluate``), once the winner is saved, the winner, the
best dev cell of every method family (selector × method × calibration) and every baseline are
run on ``data.eval`` with the same pool as the saved winner: an honest held-out comparison
that comes after the choice and cannot change it.

Output folder::

    OUT/grid/            the dev-set run (results.jsonl, run.json, summaries, plots)
    OUT/leaderboard.csv  every cell, best first (ablation cells are listed, not chosen)
    OUT/leaderboard.md
    OUT/model/           the saved winner: iclkit predict --model OUT/model
    OUT/evaluation/      with evaluate: the held-out run of the chosen cells
    OUT/evaluation.md    with evaluate: dev and held-out accuracy side by side, and the
                         winner's margin over the best baseline
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iclkit.errors import ConfigError
from iclkit.experiment.config import ExperimentConfig
from iclkit.experiment.data import load_dev_data, with_evaluation
from iclkit.experiment.grid import Cell
from iclkit.experiment.report import markdown_table
from iclkit.experiment.runner import Plan, plan_experiment, run_plan
from iclkit.experiment.store import write_atomic
from iclkit.experiment.tables import CELL_COLUMNS
from iclkit.spec import PipelineSpec

LEADERBOARD_COLUMNS = (
    "rank",
    "cell",
    "baseline",
    *CELL_COLUMNS,
    "n",
    "accuracy",
    "macro_f1",
    "tokens",
    "calls",
)


@dataclass(frozen=True)
class TuneResult:
    """What ``iclkit tune`` chose: the ranked rows, the winning spec and where it was saved.

    ``evaluation`` holds the held-out rows of :func:`evaluate_choice` (``None`` unless asked).
    """

    leaderboard: list[dict[str, Any]]
    winner: PipelineSpec
    model: Path
    files: list[Path]
    evaluation: list[dict[str, Any]] | None = None


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
    evaluate: bool = False,
) -> TuneResult:
    """Run the grid on the dev split, rank the pipelines, and save the winner into ``out``.

    ``metric`` overrides ``config.tune.metric``. Re-running continues an interrupted grid.
    ``evaluate`` then runs :func:`evaluate_choice` on ``data.eval``.

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
    if evaluate and config.data.source("eval") is None:
        raise ConfigError("--evaluate runs the chosen pipelines on data.eval; add data.eval")
    data = load_dev_data(config.data, config.tune.dev_size, config.tune.dev_seed)
    plan = plan_experiment(config, data, dev=data)
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
    evaluation = None
    if evaluate:
        evaluation = evaluate_choice(
            config, plan, candidates, candidates[0], out, overwrite=overwrite, progress=progress
        )
        files += [out / "evaluation", out / "evaluation.md"]
    return TuneResult(
        leaderboard=ranked, winner=winner, model=model, files=files, evaluation=evaluation
    )


EVALUATION_COLUMNS = (
    "role",
    "baseline",
    "selector",
    "k",
    "method",
    "calibration",
    "seed",
    "dev_accuracy",
    "accuracy",
    "accuracy_low",
    "accuracy_high",
    "macro_f1",
    "tokens",
    "calls",
)


def family(row: Mapping[str, Any]) -> tuple[str, str, str]:
    """A row's method family: selector name (``zero-shot`` for k = 0), method, calibration."""
    params = row["params"]
    selector = "zero-shot" if params["k"] == 0 else str(params["selector"]["name"])
    classifier = params.get("classifier", {})
    method = str(classifier.get("method", {"name": "loglik"})["name"])
    calibration = classifier.get("calibration")
    return selector, method, "none" if calibration is None else str(calibration["name"])


def _params_key(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def evaluate_choice(
    config: ExperimentConfig,
    dev_plan: Plan,
    ranked: Sequence[Mapping[str, Any]],
    winner: Mapping[str, Any],
    out: Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run the winner, each family's best dev cell and every baseline on ``data.eval``.

    ``ranked`` are the dev rows that could be chosen, best first; ``winner`` the chosen one.
    The cells run with the dev plan's pool (the one the saved classifier was fitted on) into
    ``out/evaluation``; ``knn-vote``'s k is the one chosen on the dev split. Returns the
    table's rows (``role``: ``chosen``, ``baseline`` or ``best of family``; a ``random``
    baseline also gets its mean over seeds) and writes it, with the chosen pipeline's margin
    over the best baseline, to ``out/evaluation.md``. Nothing here feeds back into the
    choice.

    Raises:
        DataError: for bad evaluation data.
        BackendError: if a model backend fails.
    """
    best: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    for row in ranked:
        if not row.get("baseline"):
            best.setdefault(family(row), row)
    picked = {row["cell"]: row for row in ranked if row.get("baseline")}
    picked.update({row["cell"]: row for row in best.values()})
    picked[winner["cell"]] = winner
    dev_of = {_params_key(row["params"]): row for row in picked.values()}
    data = with_evaluation(config.data, dev_plan.data.pool)
    plan = plan_experiment(config, data, dev=dev_plan.data)
    wanted = {cell.id for cell in plan.cells if _params_key(cell.params()) in dev_of}
    report = run_plan(plan.only(wanted), out / "evaluation", overwrite=overwrite, progress=progress)
    rows = []
    for row in report.cells:
        source = dev_of[_params_key(row["params"])]
        role = (
            "chosen"
            if source["cell"] == winner["cell"]
            else "baseline"
            if row.get("baseline")
            else "best of family"
        )
        rows.append({**row, "role": role, "dev_accuracy": source["accuracy"]})
    for group in report.seeds:
        if group.get("baseline") and group["seeds"] > 1:
            rows.append(
                {
                    **group,
                    "role": "baseline (mean over seeds)",
                    "seed": f"{group['seeds']} seeds",
                    "accuracy": group["accuracy_mean"],
                    "macro_f1": group["macro_f1_mean"],
                }
            )
    order = {"chosen": 0, "baseline": 1, "baseline (mean over seeds)": 1, "best of family": 2}
    rows.sort(key=lambda r: (order[r["role"]], -(r.get("accuracy") or 0.0)))
    write_atomic(out / "evaluation.md", _evaluation_markdown(config, rows))
    return rows


def margin(rows: Sequence[Mapping[str, Any]]) -> tuple[float, str] | None:
    """The chosen row's accuracy minus the best baseline's, and that baseline's name.

    A ``random`` baseline counts by its mean over seeds; a chosen pipeline that is itself a
    baseline counts as one (its margin over itself is 0). ``None`` without both.
    """
    chosen = [row for row in rows if row["role"] == "chosen"]
    baselines = [
        row
        for row in rows
        if row["role"] == "baseline (mean over seeds)"
        or (row.get("baseline") and row.get("baseline") != "random")
    ]
    if not chosen or not baselines:
        return None
    top = max(baselines, key=lambda row: row["accuracy"])
    return chosen[0]["accuracy"] - top["accuracy"], str(top["baseline"])


def _evaluation_markdown(config: ExperimentConfig, rows: Sequence[Mapping[str, Any]]) -> str:
    found = margin(rows)
    summary = (
        "No chosen pipeline or no baseline to compare."
        if found is None
        else f"Chosen pipeline minus the best baseline ({found[1]}): {found[0]:+.3f} accuracy."
    )
    shown = [
        {
            **row,
            "accuracy 95% CI": ""
            if row.get("accuracy_low") is None
            else f"[{row['accuracy_low']:.3f}, {row['accuracy_high']:.3f}]",
        }
        for row in rows
    ]
    columns = [c for c in EVALUATION_COLUMNS if c not in ("accuracy_low", "accuracy_high")]
    columns.insert(columns.index("accuracy") + 1, "accuracy 95% CI")
    return (
        f"# {config.name}: the chosen pipeline on the evaluation set\n\n"
        "Chosen on the dev split by `iclkit tune`, then run on data.eval with the pool the "
        "saved model was fitted on (the pool less the dev split), "
        "beside every baseline and the best dev cell of each method family. tokens and calls "
        "are per query (calls include calibration probes and what an LM-aware selector "
        "spends).\n\n" + markdown_table(shown, columns) + f"\n\n{summary}\n"
    )
