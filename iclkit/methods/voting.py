"""Label votes of demonstrations, and the methods that need no language model.

``majority`` predicts the pool's most frequent label; ``knn-vote`` the label most of the
prompt's demonstrations carry (with the ``knn`` selector: the nearest pool examples by the
selector's embeddings). Both are the baselines every ICL pipeline should beat: they send
nothing to the backend.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import numpy.typing as npt

from iclkit.errors import ConfigError
from iclkit.inference.labels import LabelSpace
from iclkit.inference.prediction import Prediction
from iclkit.methods.base import Method

if TYPE_CHECKING:
    from iclkit.backends.base import Backend
    from iclkit.builder import PromptBuilder
    from iclkit.calibrators.base import Calibrator
    from iclkit.prompt import Demonstration, Prompt

#: Added per place in the ranking: a tie between labels goes to the better-ranked example.
_TIE_BREAK = 1e-6


def vote(
    labels: Sequence[str | None],
    space: Sequence[str],
    weights: Sequence[float] | None = None,
) -> npt.NDArray[np.float64]:
    """The label distribution of a vote of ``labels`` (best-ranked first) over ``space``.

    Each label counts 1, or its weight (negative weights count 0); a tie goes to the label of
    the better-ranked voter. No voter gives the uniform distribution.

    Raises:
        ConfigError: if a label is not in ``space``.
    """
    position = {label: i for i, label in enumerate(space)}
    votes = np.zeros(len(space))
    for rank, label in enumerate(labels):
        if label not in position:
            raise ConfigError(f"label {label!r} is not in the label space {list(space)}")
        weight = 1.0 if weights is None else max(float(weights[rank]), 0.0)
        votes[position[label]] += weight + _TIE_BREAK * (len(labels) - rank)
    if votes.sum() <= 0:
        return np.full(len(space), 1.0 / len(space))
    distribution: npt.NDArray[np.float64] = votes / votes.sum()
    return distribution


def selected(prompt: Prompt) -> list[Demonstration]:
    """Every demonstration the selector chose for ``prompt`` (kept or dropped), best first."""
    return sorted([*prompt.demonstrations, *prompt.dropped], key=lambda demo: demo.rank)


def demonstration_vote(
    prompt: Prompt, space: Sequence[str], weighted: bool = False
) -> npt.NDArray[np.float64]:
    """:func:`vote` of the labels of ``prompt``'s selected demonstrations.

    ``weighted`` weights each by the selector's score (cosine similarity for ``knn``; a
    demonstration without a score counts 1).

    Raises:
        ConfigError: if a demonstration's label is not in ``space``.
    """
    demos = selected(prompt)
    weights = [1.0 if d.score is None else d.score for d in demos] if weighted else None
    return vote([d.example.output for d in demos], space, weights)


def distribution_prediction(
    prompt: Prompt, space: Sequence[str], probabilities: npt.NDArray[np.float64]
) -> Prediction:
    """The :class:`Prediction` of the likeliest label of ``probabilities``."""
    return Prediction(
        label=space[int(np.argmax(probabilities))],
        probabilities=dict(zip(space, map(float, probabilities), strict=True)),
        prompt=prompt,
    )


class MajorityMethod(Method):
    """Predict the pool's most frequent label for every query (ties: label-space order).

    The probabilities are the pool's label frequencies. No model call.
    """

    calibrates: ClassVar[bool] = False
    uses_backend: ClassVar[bool] = False

    def predict(
        self,
        prompts: Sequence[Prompt],
        builder: PromptBuilder,
        backend: Backend,
        labels: Mapping[str, str],
        calibrator: Calibrator | None,
    ) -> list[Prediction]:
        """The majority label of ``builder``'s pool for every prompt.

        Raises:
            ConfigError: for a bad label space, or a pool label outside it.
        """
        space = LabelSpace.from_spec(labels).labels
        counts = Counter(example.output for example in builder.pool_)
        outside = sorted(str(label) for label in set(counts) - set(space))
        if outside:
            raise ConfigError(f"pool labels {outside} are not in the label space {list(space)}")
        frequencies = np.array([counts[label] for label in space], dtype=np.float64)
        frequencies /= frequencies.sum()
        return [distribution_prediction(prompt, space, frequencies) for prompt in prompts]


class KNNVoteMethod(Method):
    """Vote the labels of the prompt's demonstrations; no model call.

    With the ``knn`` selector the demonstrations are the ``k`` nearest pool examples by
    embedding, so this is the nearest-neighbour classifier on the same embeddings an ICL
    pipeline selects with. ``weighted`` weights each vote by its similarity score. Ties go to
    the label of the nearest example among the tied ones.
    """

    calibrates: ClassVar[bool] = False
    uses_backend: ClassVar[bool] = False

    def __init__(self, weighted: bool = False) -> None:
        self.weighted = weighted

    def predict(
        self,
        prompts: Sequence[Prompt],
        builder: PromptBuilder,
        backend: Backend,
        labels: Mapping[str, str],
        calibrator: Calibrator | None,
    ) -> list[Prediction]:
        """The vote of each prompt's demonstrations (zero-shot prompts: uniform, first label).

        Raises:
            ConfigError: for a bad label space, or a demonstration label outside it.
        """
        space = LabelSpace.from_spec(labels).labels
        return [
            distribution_prediction(prompt, space, demonstration_vote(prompt, space, self.weighted))
            for prompt in prompts
        ]
