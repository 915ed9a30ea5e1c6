"""The :class:`Prediction` of one prompt and accuracy over many."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from iclkit.backends.base import ContinuationScore
from iclkit.errors import ConfigError


@dataclass(frozen=True)
class Prediction:
    """What a classifier predicted for one prompt.

    ``label`` is the predicted raw label (``None`` when generated text names no label);
    ``probabilities`` the distribution over labels the decision was taken from (after
    calibration, when used; empty for generation); ``scores`` the raw label log-likelihoods
    (empty for generation); ``text`` the generated answer (generation only).
    """

    label: str | None
    probabilities: dict[str, float] = field(default_factory=dict)
    scores: dict[str, ContinuationScore] = field(default_factory=dict)
    text: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: ``label``, ``probabilities``, ``scores``, ``text``."""
        return {
            "label": self.label,
            "probabilities": self.probabilities,
            "scores": {
                label: {"logprob": s.logprob, "n_tokens": s.n_tokens}
                for label, s in self.scores.items()
            },
            "text": self.text,
        }


def accuracy(predictions: Sequence[Prediction], gold: Sequence[str | None]) -> float:
    """Fraction of predictions whose label equals the gold label (``None`` counts as wrong).

    Raises:
        ConfigError: if the two sequences differ in length or are empty.
    """
    if len(predictions) != len(gold) or not gold:
        raise ConfigError(
            f"accuracy needs as many gold labels as predictions (got {len(gold)} and "
            f"{len(predictions)}), and at least one"
        )
    hits = sum(p.label is not None and p.label == g for p, g in zip(predictions, gold, strict=True))
    return hits / len(gold)
