"""Checks of an experiment against its data, done before a run deletes or computes anything.

A config can be valid on its own and still not fit its data: a template field the examples
lack, a calibrator whose probes the template cannot render. :func:`check_prompts` renders every
example through each distinct prompt format of the grid once (as a demonstration and as a
query), so such a run fails when it is planned (``--dry-run`` included), before ``--overwrite``
removes the old results.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from iclkit.builder import PromptBuilder
from iclkit.errors import DataError, IclkitError
from iclkit.experiment.data import ExperimentData
from iclkit.experiment.grid import Cell
from iclkit.formatters.base import Formatter
from iclkit.pool import Pool
from iclkit.prompt import Demonstration
from iclkit.registry import calibrators


def _render_all(pool: Pool, split: str, formatter: Formatter, as_demo: bool) -> None:
    """Render every example of ``pool`` as a query (and as a demonstration with ``as_demo``)."""
    for number, example in enumerate(pool, start=1):
        demos = [Demonstration(index=0, score=None, rank=0, example=example)] if as_demo else []
        try:
            formatter.format(example, demos)
        except IclkitError as error:
            raise DataError(
                f"data.{split}: example {number} (id {example.id!r}) does not fit the "
                f"pipeline's formatter: {error}",
                path=pool.source,
            ) from None


def check_prompts(cells: Sequence[Cell], data: ExperimentData, split: str = "eval") -> None:
    """Check that every example renders through each distinct prompt format of ``cells``.

    Pool examples are rendered as demonstrations and as queries, the evaluation (or dev)
    examples as queries; for each calibrator, its probes of one query are rendered too.

    Raises:
        DataError: naming the file and example that does not fit the formatter.
        TemplateError, ConfigError: if a calibrator's probes cannot be rendered.
    """
    seen: set[str] = set()
    for cell in cells:
        spec = cell.model_copy(update={"label_mode": "gold"}).pipeline([])
        key = json.dumps(
            [spec.formatter, spec.labels, spec.instruction, spec.classifier.calibration],
            sort_keys=True,
        )
        if key in seen:
            continue
        seen.add(key)
        formatter = {**spec.options("formatter"), "verbalizer": spec.labels}
        builder = PromptBuilder(formatter=formatter, k=0, instruction=spec.instruction)
        builder.fit(data.pool)
        _render_all(data.pool, "pool", builder.formatter_, as_demo=True)
        _render_all(data.eval, split, builder.formatter_, as_demo=False)
        if spec.classifier.calibration is not None:
            calibrator = calibrators.create(spec.classifier.calibration)
            calibrator.probes(builder.build(data.eval[0]), builder)
