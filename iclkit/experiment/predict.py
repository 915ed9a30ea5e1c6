"""Turn a cell's prompts into label predictions with a backend (the inference adapter)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from iclkit.backends.base import Backend
from iclkit.errors import ConfigError
from iclkit.experiment.config import RunConfig
from iclkit.prompt import Prompt


@dataclass(frozen=True)
class Prediction:
    """One prediction of one prompt.

    ``label`` is the predicted label (``None`` if a generation could not be parsed),
    ``scores`` the per-label scores it was chosen by (``None`` for generation) and ``output``
    the generated text (``None`` for scoring).
    """

    label: str | None
    scores: dict[str, float] | None
    output: str | None


def predict(
    backend: Backend,
    prompts: Sequence[Prompt],
    *,
    verbalizer: Mapping[str, str],
    scoring: str,
    calibration: bool,
    run: RunConfig,
) -> list[Prediction]:
    """Predict a label of ``verbalizer`` for every prompt.

    Raises:
        ConfigError: for a scoring mode or calibration this build cannot run.
        BackendError: if the backend fails.
    """
    if scoring == "generate" or calibration:
        raise ConfigError(f"scoring {scoring!r} with calibration={calibration} is not available")
    labels = list(verbalizer)
    candidates = [
        [prompt.answer_prefix + verbalizer[label] for label in labels] for prompt in prompts
    ]
    results = backend.score(prompts, candidates)
    predictions = []
    for scored in results:
        values = [
            s.logprob / max(s.n_tokens, 1) if scoring == "loglik-norm" else s.logprob
            for s in scored
        ]
        best = max(range(len(labels)), key=values.__getitem__)
        scores = dict(zip(labels, values, strict=True))
        predictions.append(Prediction(label=labels[best], scores=scores, output=None))
    return predictions
