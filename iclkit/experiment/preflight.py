"""Checks of an experiment against its data, done before a run deletes or computes anything.

A config can be valid on its own and still not fit its data: a template field the examples
lack, a calibrated cell without content-free inputs. :func:`check_prompts` renders every
example through the prompt once (as a demonstration and as a query), so such a run fails when
it is planned (``--dry-run`` included), before ``--overwrite`` removes the old results.
"""

from __future__ import annotations

from iclkit.errors import DataError, IclkitError
from iclkit.example import Example
from iclkit.experiment.config import ExperimentConfig
from iclkit.experiment.data import ExperimentData
from iclkit.formatters.base import Formatter
from iclkit.inference.calibration import content_free_prompts
from iclkit.pool import Pool
from iclkit.prompt import Demonstration


def _render_all(pool: Pool, split: str, formatter: Formatter, as_demo: bool) -> None:
    """Render every example of ``pool`` as a query (and as a demonstration with ``as_demo``)."""
    for number, example in enumerate(pool, start=1):
        demos = [Demonstration(index=0, score=None, rank=0, example=example)] if as_demo else []
        try:
            formatter.format(example, demos)
        except IclkitError as error:
            raise DataError(
                f"data.{split}: example {number} (id {example.id!r}) does not fit "
                f"prompt.template: {error}",
                path=pool.source,
            ) from None


def check_prompts(config: ExperimentConfig, data: ExperimentData, formatter: Formatter) -> None:
    """Check that every example renders through ``formatter`` (the run's gold-label one).

    Pool examples are rendered as demonstrations and as queries, evaluation examples as
    queries; when a cell is calibrated, the content-free inputs are rendered too.

    Raises:
        DataError: naming the file and example that does not fit the template.
        ConfigError: if a cell is calibrated and ``run.content_free_inputs`` is empty.
    """
    _render_all(data.pool, "pool", formatter, as_demo=True)
    _render_all(data.eval, "eval", formatter, as_demo=False)
    if any(True in grid.calibration for grid in config.sweep):
        query: Example = data.eval[0]
        content_free_prompts(formatter.format(query, []), formatter, config.run.content_free_inputs)
