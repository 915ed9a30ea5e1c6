"""The :class:`Prediction` of one prompt."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iclkit.backends.base import ContinuationScore
from iclkit.prompt import Prompt


@dataclass(frozen=True)
class Prediction:
    """What a classifier predicted for one prompt, and why.

    ``label`` is the predicted raw label (``None`` when generated text names no label);
    ``probabilities`` the distribution over labels the decision was taken from (after
    calibration, when used; empty for generation); ``scores`` the raw label log-likelihoods
    (empty for generation); ``text`` the generated answer (generation only); ``prompt`` the
    prompt that was scored, with its demonstrations (the provenance). ``prompt_tokens`` and
    ``model_calls`` are what the method sent to the model for this query when that is more
    than one scoring of ``prompt`` (ensembles, sampling); ``None`` leaves the count to the
    caller. ``samples`` are the sampled answers a vote was taken over (self-consistency).
    """

    label: str | None
    probabilities: dict[str, float] = field(default_factory=dict)
    scores: dict[str, ContinuationScore] = field(default_factory=dict)
    text: str | None = None
    prompt: Prompt | None = None
    prompt_tokens: int | None = None
    model_calls: int | None = None
    samples: tuple[str, ...] = ()

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict.

        ``label``, ``probabilities``, ``scores`` (``{label: {"logprob", "n_tokens"}}``),
        ``text``, and with a prompt ``demonstrations`` (``[{"index", "id", "score", "input",
        "output"}]`` in prompt order) and ``dropped`` (those removed by the token budget).
        """
        result: dict[str, Any] = {
            "label": self.label,
            "probabilities": self.probabilities,
            "scores": {
                label: {"logprob": s.logprob, "n_tokens": s.n_tokens}
                for label, s in self.scores.items()
            },
            "text": self.text,
        }
        if self.prompt is not None:
            provenance = self.prompt.to_json_dict()
            result["demonstrations"] = provenance["demos"]
            result["dropped"] = provenance["dropped"]
        return result
