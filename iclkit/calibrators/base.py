"""The calibrator interface: probe prompts to score, then a correction of label probabilities."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from iclkit.errors import ConfigError

if TYPE_CHECKING:
    from iclkit.builder import PromptBuilder
    from iclkit.example import Example
    from iclkit.prompt import Prompt

#: Label probabilities: one row per prompt, one column per label, rows summing to one.
Probabilities = npt.NDArray[np.float64]


class Calibrator(ABC):
    """Corrects the label probabilities a :class:`~iclkit.inference.LikelihoodClassifier` reads.

    A calibrator may ask for *probes*: extra prompts built by the same
    :class:`~iclkit.builder.PromptBuilder` (the same demonstrations and instruction around
    another input) whose label probabilities it needs. The classifier scores each prompt and
    its probes in the same backend call, then hands both to :meth:`calibrate`. Like every
    component, the constructor only stores options.
    """

    def probes(self, prompt: Prompt, builder: PromptBuilder) -> list[Prompt]:
        """The extra prompts whose label probabilities calibrate ``prompt`` (default: none).

        Raises:
            TemplateError: if the builder cannot render a probe.
        """
        return []

    def probes_per_prompt(self) -> int:
        """How many probes :meth:`probes` returns per prompt (default 0), for cost estimates."""
        return 0

    @abstractmethod
    def calibrate(
        self, probabilities: Probabilities, probes: Sequence[Probabilities]
    ) -> Probabilities:
        """Return calibrated label probabilities.

        ``probabilities`` is ``(n_prompts, n_labels)``; ``probes[i]`` holds the label
        probabilities of prompt ``i``'s probes, ``(n_probes_i, n_labels)``.

        Raises:
            ConfigError: if the shapes do not fit together.
        """


class ProbeCalibrator(Calibrator):
    """Divides out the mean label distribution of probe inputs put in the query's place.

    Each probe is the prompt rebuilt around another input (same instruction, same
    demonstrations in the same order); the mean of the probes' label probabilities estimates
    the prompt's label bias, which :func:`divide_out` removes. Subclasses choose the inputs
    (:meth:`probe_queries`): content-free strings (``contextual``), random in-domain words
    (``domain``) or pool inputs (``batch``). Probes depend only on the prompt and the pool,
    never on which other queries are predicted with it.
    """

    @abstractmethod
    def probe_queries(self, prompt: Prompt, builder: PromptBuilder) -> list[Example]:
        """The inputs put in the place of ``prompt``'s query (labels unused)."""

    def probes(self, prompt: Prompt, builder: PromptBuilder) -> list[Prompt]:
        """``prompt`` rebuilt with each of :meth:`probe_queries` in place of its query.

        Raises:
            TemplateError: if the builder cannot render a probe.
        """
        return [
            builder.render(query, prompt.demonstrations)
            for query in self.probe_queries(prompt, builder)
        ]

    def calibrate(
        self, probabilities: Probabilities, probes: Sequence[Probabilities]
    ) -> Probabilities:
        """Divide each prompt's probabilities by the mean over its probes.

        Raises:
            ConfigError: if a prompt has no probes or the shapes do not fit.
        """
        if len(probes) != len(probabilities) or any(len(group) == 0 for group in probes):
            raise ConfigError(f"{type(self).__name__} needs the probes of every prompt")
        bias = np.array([np.mean(group, axis=0) for group in probes])
        return divide_out(probabilities, bias)


def same_fields(query: Example, text: str) -> str | dict[str, str]:
    """``text`` as an input shaped like ``query``'s: the string, or every named field set to it."""
    if isinstance(query.input, str):
        return text
    return dict.fromkeys(query.input, text)


def divide_out(probabilities: Probabilities, prior: Probabilities) -> Probabilities:
    """Divide each row of label probabilities by its prior and renormalise rows to sum to one.

    Raises:
        ConfigError: if the shapes differ.
    """
    if probabilities.shape != prior.shape:
        raise ConfigError(
            f"probabilities {probabilities.shape} and prior {prior.shape} differ in shape"
        )
    adjusted = probabilities / np.clip(prior, 1e-12, None)
    calibrated: Probabilities = adjusted / adjusted.sum(axis=1, keepdims=True)
    return calibrated
