"""Contextual calibration (Zhao et al. 2021, "Calibrate Before Use").

A content-free input ("N/A", "", "[MASK]") is put through the same instruction and
demonstrations as the real query; the label distribution the model gives it estimates the
prompt's label bias. The bias is the mean of those distributions; calibrated probabilities are
the model's label probabilities divided by the bias, renormalised to sum to one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from iclkit.calibrators.base import ProbeCalibrator, same_fields
from iclkit.errors import ConfigError
from iclkit.example import Example

if TYPE_CHECKING:
    from iclkit.builder import PromptBuilder
    from iclkit.prompt import Prompt

CONTENT_FREE: tuple[str, ...] = ("N/A", "", "[MASK]")
"""The content-free inputs of Zhao et al. 2021."""


class ContextualCalibrator(ProbeCalibrator):
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

    def probe_queries(self, prompt: Prompt, builder: PromptBuilder) -> list[Example]:
        """Each content-free input, in every input field of the query."""
        return [Example(input=same_fields(prompt.query, text)) for text in self.inputs]

    def probes_per_prompt(self) -> int:
        """One probe per content-free input."""
        return len(self.inputs)
