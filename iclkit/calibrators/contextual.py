"""Contextual calibration (Zhao et al. 2021, "Calibrate Before Use").

A content-free input ("N/A", "", "[MASK]") is put through the same instruction and
demonstrations as the real query; the label distribution the model gives it estimates the
prompt's label bias. The bias is the mean of those distributions; calibrated probabilities are
the model's label probabilities divided by the bias, renormalised to sum to one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from iclkit.calibrators.base import Calibrator, Probabilities, divide_out
from iclkit.errors import ConfigError
from iclkit.example import Example

if TYPE_CHECKING:
    from iclkit.builder import PromptBuilder
    from iclkit.prompt import Prompt

CONTENT_FREE: tuple[str, ...] = ("N/A", "", "[MASK]")
"""The content-free inputs of Zhao et al. 2021."""


class ContextualCalibrator(Calibrator):
    """Divide out the label bias that content-free inputs reveal (Zhao et al. 2021).

    Every input field of the query (all of them, for multi-field inputs) is replaced by each
    string of ``inputs``; demonstrations and instruction stay as they are.

    Raises:
        ConfigError: if ``inputs`` is empty.
    """

    def __init__(self, inputs: Sequence[str] = CONTENT_FREE) -> None:
        if isinstance(inputs, str) or not inputs:
            raise ConfigError(
                "contextual calibration needs a list of content-free inputs, e.g. "
                "['N/A', '', '[MASK]']"
            )
        self.inputs = tuple(str(text) for text in inputs)

    def probes(self, prompt: Prompt, builder: PromptBuilder) -> list[Prompt]:
        """``prompt`` rebuilt with each content-free input in place of its query.

        Raises:
            TemplateError: if the builder cannot render the content-free query.
        """
        query = prompt.query.input
        return [
            builder.render(
                Example(input=text if isinstance(query, str) else dict.fromkeys(query, text)),
                prompt.demonstrations,
            )
            for text in self.inputs
        ]

    def probes_per_prompt(self) -> int:
        """One probe per content-free input."""
        return len(self.inputs)

    def calibrate(
        self, probabilities: Probabilities, probes: Sequence[Probabilities]
    ) -> Probabilities:
        """Divide each prompt's probabilities by the mean over its content-free probes.

        Raises:
            ConfigError: if a prompt has no probes or the shapes do not fit.
        """
        if len(probes) != len(probabilities) or any(len(group) == 0 for group in probes):
            raise ConfigError("contextual calibration needs the probes of every prompt")
        bias = np.array([np.mean(group, axis=0) for group in probes])
        return divide_out(probabilities, bias)
