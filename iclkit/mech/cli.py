"""``iclkit mech``: run the mechanism checks from the shell."""

from __future__ import annotations

from pathlib import Path

import click

from iclkit.cli_errors import friendly_errors
from iclkit.mech.checks import CHECKS


@click.group()
def mech() -> None:
    """Mechanism checks: reproduce the explanations of why in-context learning works.

    Each check prints its figures beside the paper's, and writes NAME.json and NAME.png to
    --out. --fast runs the small variant the tests use (seconds to a few minutes on 2 cores).

    \b
    Example:
      iclkit mech lsa-gd --fast --out runs/mech
    """


def _command(name: str) -> click.Command:
    @click.option("--fast", is_flag=True, help="Small variant (what the tests run).")
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
    @click.option(
        "--out",
        "out_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("runs/mech"),
        show_default=True,
        help="Folder for NAME.json and NAME.png.",
    )
    @click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
    @friendly_errors
    def command(fast: bool, as_json: bool, out_dir: Path, seed: int) -> None:
        from iclkit.mech.checks import run_check

        report = run_check(name, fast=fast, seed=seed, out_dir=out_dir)
        if as_json:
            click.echo(report.model_dump_json(indent=2))
        else:
            click.echo(report.table())
            click.echo(f"wrote {out_dir / (name + '.json')} and {out_dir / (name + '.png')}")

    module, summary = CHECKS[name]
    text = f"{summary}\n\nPython API: {module}.run(fast=..., seed=...)."
    return click.command(name=name, help=text, short_help=summary)(command)


for _name in CHECKS:
    mech.add_command(_command(_name))
