"""The ``generate`` method: generate an answer and parse it into the label space."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

from iclkit.inference.classify import GenerationClassifier
from iclkit.methods.base import Method
from iclkit.validation import check_int

if TYPE_CHECKING:
    from iclkit.backends.base import Backend
    from iclkit.builder import PromptBuilder
    from iclkit.calibrators.base import Calibrator
    from iclkit.inference.prediction import Prediction
    from iclkit.prompt import Prompt


class GenerateMethod(Method):
    """Generate up to ``max_tokens`` tokens greedily and parse the answer (any backend).

    Raises:
        ConfigError: if ``max_tokens`` is not a positive integer.
    """

    calibrates: ClassVar[bool] = False

    def __init__(self, max_tokens: int = 8) -> None:
        self.max_tokens = check_int("max_tokens", max_tokens, minimum=1)

    def predict(
        self,
        prompts: Sequence[Prompt],
        builder: PromptBuilder,
        backend: Backend,
        labels: Mapping[str, str],
        calibrator: Calibrator | None,
    ) -> list[Prediction]:
        """Generate and parse an answer for every prompt.

        Raises:
            BackendError: if the backend fails.
        """
        classifier = GenerationClassifier(backend, labels, max_tokens=self.max_tokens)
        return classifier.predict(prompts, builder)
