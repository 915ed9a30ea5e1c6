"""The ``loglik`` and ``loglik-norm`` methods: the label whose word the model finds likeliest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from iclkit.inference.classify import LikelihoodClassifier
from iclkit.inference.labels import ScoreMethod
from iclkit.methods.base import Method

if TYPE_CHECKING:
    from iclkit.backends.base import Backend
    from iclkit.builder import PromptBuilder
    from iclkit.calibrators.base import Calibrator
    from iclkit.inference.prediction import Prediction
    from iclkit.prompt import Prompt


class LoglikMethod(Method):
    """Score each label word's continuation; softmax over the summed log-likelihoods.

    See :class:`~iclkit.inference.LikelihoodClassifier`, which does the work.
    """

    score: ScoreMethod = "loglik"

    def predict(
        self,
        prompts: Sequence[Prompt],
        builder: PromptBuilder,
        backend: Backend,
        labels: Mapping[str, str],
        calibrator: Calibrator | None,
    ) -> list[Prediction]:
        """Score every label for every prompt (with the calibrator's probes, in one call).

        Raises:
            BackendError: if the backend cannot score or fails.
        """
        classifier = LikelihoodClassifier(
            backend, labels, method=self.score, calibration=calibrator
        )
        return classifier.predict(prompts, builder)


class LoglikNormMethod(LoglikMethod):
    """As ``loglik``, with each label's log-likelihood averaged over its tokens."""

    score: ScoreMethod = "loglik-norm"
