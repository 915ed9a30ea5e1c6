"""The label space of a classification task, and label probabilities from label scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from iclkit.backends.base import ContinuationScore
from iclkit.calibrators.base import Probabilities
from iclkit.errors import ConfigError

LabelSpec = Sequence[str] | Mapping[str, str]
#: How label log-likelihoods become a decision: summed (``loglik``) or per-token mean
#: (``loglik-norm``, length-normalised).
ScoreMethod = Literal["loglik", "loglik-norm"]


@dataclass(frozen=True)
class LabelSpace:
    """Raw labels (``"0"``, ``"1"``) paired with their verbalizations (``"negative"``, ...).

    Build it with :meth:`from_spec`; ``labels[i]`` is verbalized as ``words[i]``.
    """

    labels: tuple[str, ...]
    words: tuple[str, ...]

    @classmethod
    def from_spec(cls, spec: LabelSpec | LabelSpace) -> LabelSpace:
        """A label space from a list of labels (each its own word) or a ``{label: word}`` map.

        Raises:
            ConfigError: if there are fewer than two labels, a label or word is empty or
                whitespace only, or two labels share a word.
        """
        if isinstance(spec, LabelSpace):
            return spec
        if isinstance(spec, str):
            raise ConfigError(
                f"labels must be a list or a {{label: word}} mapping, not the string {spec!r}"
            )
        pairs = [
            (str(label), "" if word is None else str(word))
            for label, word in (
                spec.items() if isinstance(spec, Mapping) else zip(spec, spec, strict=True)
            )
        ]
        if len(pairs) < 2:
            raise ConfigError(f"a classification needs at least two labels, got {pairs!r}")
        for label, word in pairs:
            if not str(label).strip() or not str(word).strip():
                raise ConfigError(
                    f"label {label!r} has the empty verbalization {word!r}: it would score "
                    "as an empty continuation. Fix: give every label a non-empty word"
                )
        words = [str(word) for _, word in pairs]
        if len(set(words)) != len(words):
            raise ConfigError(
                f"two labels share a verbalization in {dict(pairs)!r}; the model could not "
                "tell them apart. Fix: give each label its own word"
            )
        return cls(tuple(str(label) for label, _ in pairs), tuple(words))

    def continuations(self, answer_prefix: str) -> list[str]:
        """The candidate continuations of a prompt: ``answer_prefix + word`` for each label."""
        return [answer_prefix + word for word in self.words]


def label_probabilities(
    scores: Sequence[Sequence[ContinuationScore]], method: ScoreMethod = "loglik"
) -> Probabilities:
    """Softmax over each prompt's label log-likelihoods: an ``(n_prompts, n_labels)`` array.

    ``method="loglik"`` uses the summed log-likelihood of each label's continuation,
    ``"loglik-norm"`` the mean per token (length-normalised).

    Raises:
        ConfigError: for an unknown ``method``.
    """
    if not scores:
        return np.zeros((0, 0))
    if method == "loglik":
        logits = np.array([[s.logprob for s in row] for row in scores], dtype=np.float64)
    elif method == "loglik-norm":
        logits = np.array(
            [[s.logprob / s.n_tokens for s in row] for row in scores], dtype=np.float64
        )
    else:
        raise ConfigError(f"method must be 'loglik' or 'loglik-norm', got {method!r}")
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    probabilities: Probabilities = exp / exp.sum(axis=1, keepdims=True)
    return probabilities
