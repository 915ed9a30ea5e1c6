"""The method interface: how a label is read off the model for each prompt."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from iclkit.backends.base import Backend
    from iclkit.builder import PromptBuilder
    from iclkit.calibrators.base import Calibrator
    from iclkit.inference.prediction import Prediction
    from iclkit.prompt import Prompt


class Method(ABC):
    """Reads a label for each prompt: a plugin of the ``iclkit.methods`` entry-point group.

    Like every component, the constructor only stores options. :meth:`predict` gets the
    prompts, the fitted :class:`~iclkit.builder.PromptBuilder` that made them (for probes,
    or for the pool), the backend, the label space (label → word) and the calibrator, if any.
    """

    #: Whether the predictions carry label probabilities that a calibrator can correct.
    calibrates: ClassVar[bool] = True
    #: Whether the method sends prompts to the backend (baselines without a model do not).
    uses_backend: ClassVar[bool] = True

    def calls_per_prompt(self) -> int:
        """How many scorings or generations one prompt costs (1; ensembles and sampling more).

        Calibration probes come on top of each; used for cost estimates (``--dry-run``).
        """
        return 1

    @abstractmethod
    def predict(
        self,
        prompts: Sequence[Prompt],
        builder: PromptBuilder,
        backend: Backend,
        labels: Mapping[str, str],
        calibrator: Calibrator | None,
    ) -> list[Prediction]:
        """One :class:`~iclkit.inference.Prediction` per prompt, in order.

        Raises:
            BackendError: if the backend fails or cannot do what the method needs.
            ConfigError: for a bad label space.
        """


@dataclass(frozen=True)
class Scorer:
    """A method bound to its backend, label space and calibrator: what a pipeline predicts with.

    Made by :meth:`iclkit.spec.PipelineSpec.scorer`.
    """

    method: Method
    backend: Backend
    labels: Mapping[str, str]
    calibrator: Calibrator | None = None

    def predict(self, prompts: Sequence[Prompt], builder: PromptBuilder) -> list[Prediction]:
        """Predict a label for every prompt the ``builder`` made.

        Raises:
            BackendError: if the backend fails.
        """
        return self.method.predict(prompts, builder, self.backend, self.labels, self.calibrator)
