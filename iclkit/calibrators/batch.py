"""Batch calibration (Zhou et al. 2023): divide out the mean label distribution of a batch.

Zhou et al. 2023, "Batch Calibration: Rethinking Calibration for In-Context Learning and Prompt
Engineering". The prompt's label prior is the mean label distribution over a batch of real
inputs put through the same context; calibrated probabilities are the model's divided by that
prior and renormalised (equivalently, the prior's log subtracted from the label
log-probabilities).

Which batch:

* ``over="pool"`` (the default): a seeded sample of ``size`` pool inputs (their labels are not
  used) in the query's place. A prediction then depends on its own prompt and the pool only,
  never on which other queries are predicted with it: results are the same however an
  evaluation set is split into batches or work units. Prompts that share their demonstrations
  share the sample's scores, so a fixed demonstration set costs ``size`` extra scorings once;
  per-query demonstrations cost ``size`` per query.
* ``over="queries"``: the paper's own estimate, the mean over the prompts predicted together,
  at no extra model call. A prediction then depends on the other queries of its batch: in an
  experiment, the work unit (``run.batch_size`` queries of one cell); in
  :meth:`~iclkit.classifier.ICLClassifier.predict`, each step of up to 256 inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from iclkit.calibrators.base import Probabilities, ProbeCalibrator, divide_out
from iclkit.errors import ConfigError
from iclkit.example import Example
from iclkit.validation import check_int

if TYPE_CHECKING:
    from iclkit.builder import PromptBuilder
    from iclkit.pool import Pool
    from iclkit.prompt import Prompt


class BatchCalibrator(ProbeCalibrator):
    """Divide out the mean label distribution of a batch of inputs (Zhou et al. 2023).

    See the module docstring for ``over``; ``size`` and ``seed`` choose the pool sample.

    Raises:
        ConfigError: for an unknown ``over``, a non-positive ``size`` or a negative ``seed``.
    """

    def __init__(
        self, over: Literal["pool", "queries"] = "pool", size: int = 32, seed: int = 0
    ) -> None:
        if over not in ("pool", "queries"):
            raise ConfigError(f"over must be 'pool' or 'queries', got {over!r}")
        self.over = over
        self.size = check_int("size", size, minimum=1)
        self.seed = check_int("seed", seed)
        self._order: tuple[Pool, list[int]] | None = None

    def probe_queries(self, prompt: Prompt, builder: PromptBuilder) -> list[Example]:
        """``size`` pool inputs drawn with ``seed`` (never the query); none over the queries."""
        if self.over == "queries":
            return []
        pool = builder.pool_
        if self._order is None or self._order[0] is not pool:
            order = np.random.default_rng(self.seed).permutation(len(pool))
            self._order = (pool, [int(i) for i in order[: self.size + 8]])
        itself = pool.matches(prompt.query)
        chosen = [i for i in self._order[1] if i not in itself][: self.size]
        return [Example(input=pool[i].input) for i in chosen]

    def probes_per_prompt(self) -> int:
        """``size`` probes per prompt over the pool, none over the queries."""
        return 0 if self.over == "queries" else self.size

    def calibrate(
        self, probabilities: Probabilities, probes: Sequence[Probabilities]
    ) -> Probabilities:
        """Divide by the mean over each prompt's pool sample, or over all ``probabilities``.

        Raises:
            ConfigError: if the shapes do not fit, or there are no probes over the pool.
        """
        if self.over == "pool":
            return super().calibrate(probabilities, probes)
        if len(probabilities) == 0:
            return probabilities
        prior = np.broadcast_to(probabilities.mean(axis=0), probabilities.shape)
        return divide_out(probabilities, np.array(prior))
