"""The ``iclkit run`` and ``iclkit report`` commands (registered in :mod:`iclkit.cli`).

Heavy modules (the runner, matplotlib, the backends) are imported inside the commands, so
that ``iclkit --help`` and ``iclkit build`` stay fast and never import torch.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from iclkit.cli_errors import friendly_errors

F = TypeVar("F", bound=Callable[..., Any])

#: The handler :func:`logging_to_stderr` puts on the ``iclkit`` logger (one at a time).
_HANDLER_NAME = "iclkit-cli"


def _verbosity(command: F) -> F:
    """Add ``-v/--verbose`` (repeatable) and ``-q/--quiet`` to a command."""
    command = click.option(
        "-q",
        "--quiet",
        is_flag=True,
        help="Print only warnings, errors and the final table (no progress bar).",
    )(command)
    return click.option(
        "-v",
        "--verbose",
        count=True,
        help="Also print debug lines (-v: iclkit's; -vv: every library's).",
    )(command)


@contextmanager
def logging_to_stderr(verbose: int, quiet: bool) -> Iterator[None]:
    """Show iclkit's log lines on stderr for the duration of a command.

    Default: iclkit's INFO lines (cache hits, embedded counts, first-time model conversion)
    and every library's warnings. ``verbose`` 1 adds iclkit's DEBUG lines, 2 every library's
    INFO and DEBUG lines; ``quiet`` keeps warnings and errors only. Lines are written above
    a running progress bar, not through it.
    """
    from tqdm.contrib.logging import logging_redirect_tqdm

    package = logging.getLogger("iclkit")
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for old in [h for h in package.handlers if h.get_name() == _HANDLER_NAME]:
        package.removeHandler(old)
    package.addHandler(handler)
    before = package.level, logging.getLogger().level
    package.setLevel(level)
    if verbose >= 2:
        logging.getLogger().setLevel(logging.DEBUG)
    try:
        with logging_redirect_tqdm(loggers=[package]):
            yield
    finally:
        package.removeHandler(handler)
        package.setLevel(before[0])
        logging.getLogger().setLevel(before[1])


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Print ``rows`` as an aligned table (rich) on stdout; numbers right-aligned."""
    from rich.console import Console
    from rich.table import Table

    from iclkit.experiment.report import format_value

    table = Table(show_edge=False, header_style="bold")
    for column in columns:
        numeric = any(isinstance(row.get(column), int | float) for row in rows) or any(
            column.startswith(word) for word in ("accuracy", "macro", "seeds", "calls", "n")
        )
        table.add_column(column, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(format_value(row.get(column)) for column in columns))
    # A terminal gets its own width; a pipe or file gets lines long enough not to wrap.
    Console(width=None if sys.stdout.isatty() else 200, soft_wrap=False).print(table)


def _print_summary(report: Any) -> None:
    from iclkit.experiment.report import seeds_rows

    rows, columns = seeds_rows(report.seeds, compact=True)
    print_table(rows, columns)
    click.echo("\nWrote " + ", ".join(str(path) for path in report.files))


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
@click.option("--no-html", is_flag=True, help="Do not write report.html.")
@click.option(
    "--jobs",
    metavar="N",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes on this machine, each loading the model once (1: this process).",
)
@click.option(
    "--threads",
    metavar="N",
    type=click.IntRange(min=1),
    default=None,
    help="Torch threads per worker [default: the CPUs shared among --jobs; with --executor "
    "ray: 1]. With ray, also the CPUs each task reserves on the cluster.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: this machine (--jobs processes); ray: tasks on a Ray cluster "
    "(pip install 'iclkit[ray]').",
)
@click.option(
    "--address",
    metavar="ADDR",
    default=None,
    help="The Ray cluster to join (HOST:PORT, auto, ray://HOST:PORT) [default: $RAY_ADDRESS, "
    "else a Ray instance started on this machine for the run].",
)
@_verbosity
@friendly_errors
def run(
    config_path: Path,
    out: Path | None,
    dry_run: bool,
    resume: bool,
    overwrite: bool,
    no_progress: bool,
    no_html: bool,
    jobs: int,
    threads: int | None,
    executor: str,
    address: str | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Run the experiment grid described by a YAML CONFIG file.

    Every cell of the grid (a pipeline: selector, k, orderer, seed, formatter, backend,
    classifier method and calibration; and the ablations: label mode and demonstration order)
    predicts the label of every evaluation example. Results go to OUT/results.jsonl (one line
    per prediction), OUT/summary.csv, OUT/summary.md, PNG plots and OUT/report.html (open it
    in a browser); the table of means over seeds, with 95% bootstrap intervals, is printed at
    the end.

    Re-running the same command continues an interrupted run: finished predictions are kept
    and not recomputed. A folder holding a different config's results is refused unless
    --resume (keep them; shared cells are reused) or --overwrite (delete them).

    The grid runs in work units (cells that share prompts × run.batch_size queries): in this
    process, in --jobs N processes, or as tasks on a Ray cluster (--executor ray). Only this
    command writes OUT, one unit at a time; the finished results.jsonl is the same whichever
    way the grid ran.

    \b
    Examples:
      iclkit run examples/quickstart.yaml
      iclkit run grid.yaml --out runs/sst2 --dry-run
      iclkit run grid.yaml --jobs 2
      iclkit run grid.yaml --executor ray --address HEAD_HOST:6379
    """
    from iclkit.experiment.config import load_config
    from iclkit.experiment.runner import plan_experiment, run_experiment
    from iclkit.experiment.tables import describe

    chosen = _executor(executor, jobs, threads, address)
    with logging_to_stderr(verbose, quiet):
        config = load_config(config_path)
        folder = out if out is not None else Path("runs") / config.name
        if dry_run:
            plan = plan_experiment(config)
            rows = [
                {"cell": cell.id, **describe(cell.params()), "calls": plan.calls[cell.id]}
                for cell in plan.cells
            ]
            shared = describe(plan.cells[0].params())
            varying = [
                column
                for column in shared
                if column in ("selector", "k") or len({str(row[column]) for row in rows}) > 1
            ]
            print_table(rows, ["cell", *varying, "calls"])
            same = ", ".join(f"{c}={shared[c]}" for c in shared if c not in varying)
            click.echo(f"\nEvery cell: {same}")
            click.echo(
                f"\n{len(plan.cells)} cells × {len(plan.data.eval)} evaluation examples = "
                f"{plan.predictions} predictions, at most {sum(plan.calls.values())} model "
                f"calls (pool: {len(plan.data.pool)} examples). Output folder: {folder}"
            )
            return
        report = run_experiment(
            config,
            folder,
            resume=resume,
            overwrite=overwrite,
            progress=not (no_progress or quiet),
            html=not no_html,
            executor=chosen,
        )
    _print_summary(report)


def _executor(kind: str, jobs: int, threads: int | None, address: str | None) -> Any:
    """The executor ``iclkit run``'s options describe (``run_units`` for this process).

    Raises:
        ConfigError: for options that do not go together.
    """
    from iclkit.errors import ConfigError
    from iclkit.experiment.executors import ProcessExecutor, limit_threads
    from iclkit.experiment.ray_executor import RayExecutor
    from iclkit.experiment.runner import run_units

    if kind == "ray":
        if jobs != 1:
            raise ConfigError(
                "--jobs is the number of local processes; a Ray cluster runs as many units at "
                "once as its CPUs allow. Fix: drop --jobs (--threads sets the CPUs per task)"
            )
        return RayExecutor(address, threads=threads or 1)
    if address is not None:
        raise ConfigError("--address is a Ray cluster's address. Fix: add --executor ray")
    if jobs > 1:
        return ProcessExecutor(jobs, threads)
    if threads is not None:
        limit_threads(threads)
    return run_units


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--no-html", is_flag=True, help="Do not write report.html.")
@_verbosity
@friendly_errors
def report(folder: Path, no_html: bool, verbose: int, quiet: bool) -> None:
    """Re-render a run's summary.csv, summary.md, plots and report.html from its results.jsonl.

    \b
    Example:
      iclkit report runs/quickstart
    """
    from iclkit.experiment.report import render_report

    with logging_to_stderr(verbose, quiet):
        rendered = render_report(folder, html=not no_html)
    _print_summary(rendered)
