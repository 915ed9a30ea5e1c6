"""The result of a mechanism check: measured figures beside the paper's, JSON and PNG output."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure


class Figure(BaseModel):
    """One measured number beside the figure the paper reports for it.

    ``passed`` is ``None`` for numbers that are reported but not judged (the paper gives no
    threshold, or the setting differs too much for a pass/fail). ``spread`` is the standard
    deviation over repeats when ``measured`` is their mean.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    measured: float
    spread: float | None = None
    paper: str
    target: str = ""
    passed: bool | None = None


class CheckReport(BaseModel):
    """What one mechanism check measured.

    ``figures`` are the headline numbers (each with the paper's figure), ``series`` holds the
    data behind the plot (plain lists, JSON-ready) and ``notes`` say how the setting differs
    from the paper's.
    """

    check: str
    title: str
    reference: str
    fast: bool
    seed: int
    seconds: float = 0.0
    figures: list[Figure] = Field(default_factory=list)
    series: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when no judged figure failed."""
        return all(figure.passed is not False for figure in self.figures)

    def figure(self, name: str) -> Figure:
        """The figure called ``name``.

        Raises:
            KeyError: if the report has no figure of that name.
        """
        for figure in self.figures:
            if figure.name == name:
                return figure
        raise KeyError(f"{self.check} has no figure {name!r}; it has {self.names()}")

    def names(self) -> list[str]:
        """The names of the report's figures, in order."""
        return [figure.name for figure in self.figures]

    def table(self) -> str:
        """The figures as a text table: measured, paper, target, verdict."""
        header = f"{self.title}  [{self.reference}]" + ("  (fast)" if self.fast else "")
        rows = [("figure", "measured", "paper", "target", "ok")]
        for figure in self.figures:
            verdict = {True: "yes", False: "NO", None: "-"}[figure.passed]
            measured = f"{figure.measured:.6g}"
            if figure.spread is not None:
                measured += f" ± {figure.spread:.2g}"
            rows.append((figure.name, measured, figure.paper, figure.target, verdict))
        widths = [max(len(row[column]) for row in rows) for column in range(5)]
        lines = [header, "-" * len(header)]
        for row in rows:
            lines.append(
                "  ".join(
                    cell.ljust(width) for cell, width in zip(row, widths, strict=True)
                ).rstrip()
            )
        lines.extend(f"note: {note}" for note in self.notes)
        lines.append(f"({self.seconds:.1f} s)")
        return "\n".join(lines)

    def write_json(self, path: Path) -> Path:
        """Write the report as JSON to ``path`` atomically and return the path.

        Infinite or NaN figures (a phase change that never happened) are written as ``null``.
        """
        atomic_write(path, (self.model_dump_json(indent=2) + "\n").encode())
        return path


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; reports are ordinary files
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_png(figure: MplFigure, path: Path) -> Path:
    """Save a matplotlib figure as PNG to ``path`` atomically, close it and return the path."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    atomic_write(path, buffer.getvalue())
    return path


def new_figure(n_panels: int = 1, width: float = 4.2, height: float = 3.4) -> Any:
    """A matplotlib figure (Agg backend) with ``n_panels`` side-by-side axes: ``(fig, axes)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n_panels, figsize=(width * n_panels, height), squeeze=False)
    return fig, list(axes[0])
