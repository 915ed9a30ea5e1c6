"""Domain-context calibration (Fei et al. 2023, "Mitigating Label Biases for In-context Learning").

Content-free strings such as "N/A" carry a bias of their own; random words of the task's
domain do not favour a label but do carry the domain's word distribution. The label bias is
estimated as the mean label distribution of ``samples`` pseudo-inputs, each made of words drawn
at random from the pool's input texts (as often as they occur there), as long as the pool's
mean input, put through the same instruction and demonstrations; it is divided out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from iclkit.calibrators.base import ProbeCalibrator
from iclkit.example import Example
from iclkit.validation import check_int

if TYPE_CHECKING:
    from iclkit.builder import PromptBuilder
    from iclkit.pool import Pool
    from iclkit.prompt import Prompt


def random_domain_inputs(pool: Pool, samples: int, seed: int) -> list[Example]:
    """``samples`` inputs of random pool words: each field as long as its mean in the pool.

    Words are whitespace-separated tokens drawn with replacement from all of a field's words
    in the pool (so with their pool frequencies), with a generator seeded by ``seed``.
    """
    rng = np.random.default_rng(seed)
    fields = pool.input_fields
    words: dict[str, list[str]] = {field: [] for field in fields}
    lengths: dict[str, list[int]] = {field: [] for field in fields}
    for example in pool:
        given = {fields[0]: example.input} if isinstance(example.input, str) else example.input
        for field in fields:
            tokens = given.get(field, "").split()
            words[field].extend(tokens)
            lengths[field].append(len(tokens))
    made = []
    for _ in range(samples):
        values: dict[str, str] = {}
        for field in fields:
            size = max(1, round(float(np.mean(lengths[field]))))
            drawn = rng.integers(0, len(words[field]), size) if words[field] else ()
            values[field] = " ".join(words[field][int(i)] for i in drawn)
        made.append(Example(input=values))
    return made


class DomainContextCalibrator(ProbeCalibrator):
    """Divide out the label bias of random in-domain words (Fei et al. 2023).

    ``samples`` pseudo-inputs (Fei et al. use 20) are drawn once per pool with ``seed``, so
    every query of a pool is calibrated against the same ones; prompts sharing demonstrations
    share their probes.

    Raises:
        ConfigError: if ``samples`` is not positive or ``seed`` is negative.
    """

    def __init__(self, samples: int = 20, seed: int = 0) -> None:
        self.samples = check_int("samples", samples, minimum=1)
        self.seed = check_int("seed", seed)
        self._made: tuple[Pool, list[Example]] | None = None

    def probe_queries(self, prompt: Prompt, builder: PromptBuilder) -> list[Example]:
        """The pool's random in-domain inputs (drawn once per pool)."""
        pool = builder.pool_
        if self._made is None or self._made[0] is not pool:
            self._made = (pool, random_domain_inputs(pool, self.samples, self.seed))
        return self._made[1]

    def probes_per_prompt(self) -> int:
        """One probe per pseudo-input."""
        return self.samples
