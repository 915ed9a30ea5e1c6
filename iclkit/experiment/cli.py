"""The ``iclkit run`` and ``iclkit report`` commands (registered in :mod:`iclkit.cli`).

Heavy modules (the runner, matplotlib, the backends) are imported inside the commands, so
that ``iclkit --help`` and ``iclkit build`` stay fast and never import torch.
"""

from __future__ import annotations

from pathlib import Path

import click

from iclkit.cli_errors import friendly_errors


@click.command()
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder [default: runs/<config name>].",
)
@click.option("--dry-run", is_flag=True, help="Print the grid and its model calls; run nothing.")
@click.option("--resume", is_flag=True, help="Keep results of a different config in --out.")
@click.option("--overwrite", is_flag=True, help="Delete the results already in --out.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@friendly_errors
def run(
    config_path: Path,
    out: Path | None,
    dry_run: bool,
    resume: bool,
    overwrite: bool,
    no_progress: bool,
) -> None:
    r"""Run the experiment grid described by a YAML CONFIG file.

    Every cell (selector × k × orderer × seed × backend × calibration × scoring × label
    mode × order) predicts the label of every evaluation example. Results go to
    OUT/results.jsonl (one line per prediction), OUT/summary.csv, OUT/summary.md and PNG
    plots; the table of means over seeds is printed at the end.

    Re-running the same command continues an interrupted run: finished predictions are kept
    and not recomputed. A folder holding a different config's results is refused unless
    --resume (keep them; shared cells are reused) or --overwrite (delete them).

    \b
    Examples:
      iclkit run examples/quickstart.yaml
      iclkit run grid.yaml --out runs/sst2 --dry-run
    """
    from iclkit.experiment.config import load_config
    from iclkit.experiment.metrics import describe
    from iclkit.experiment.report import markdown_table, seeds_table
    from iclkit.experiment.runner import plan_experiment, run_experiment

    config = load_config(config_path)
    folder = out if out is not None else Path("runs") / config.name
    if dry_run:
        plan = plan_experiment(config)
        rows = [
            {"cell": cell.id, **describe(cell.params()), "calls": plan.calls[cell.id]}
            for cell in plan.cells
        ]
        columns = ["cell", *describe(plan.cells[0].params()), "calls"]
        click.echo(markdown_table(rows, columns))
        click.echo(
            f"\n{len(plan.cells)} cells × {len(plan.data.eval)} evaluation examples = "
            f"{plan.predictions} predictions, at most {sum(plan.calls.values())} model calls "
            f"(pool: {len(plan.data.pool)} examples). Output folder: {folder}"
        )
        return
    report = run_experiment(
        config, folder, resume=resume, overwrite=overwrite, progress=not no_progress
    )
    click.echo(seeds_table(report.seeds, compact=True))
    click.echo("\nWrote " + ", ".join(str(path) for path in report.files))


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@friendly_errors
def report(folder: Path) -> None:
    r"""Re-render a run's summary.csv, summary.md and plots from its results.jsonl.

    \b
    Example:
      iclkit report runs/quickstart
    """
    from iclkit.experiment.report import render_report, seeds_table

    rendered = render_report(folder)
    click.echo(seeds_table(rendered.seeds, compact=True))
    click.echo("\nWrote " + ", ".join(str(path) for path in rendered.files))
