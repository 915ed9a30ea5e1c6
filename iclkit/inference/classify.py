"""Classifiers that turn a backend's answers into label predictions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tqdm.auto import tqdm

from iclkit.backends.base import Backend
from iclkit.errors import ConfigError
from iclkit.formatters.base import Formatter
from iclkit.inference.calibration import (
    CONTENT_FREE,
    Method,
    calibrate,
    label_probabilities,
    score_with_bias,
)
from iclkit.inference.labels import LabelSpace, LabelSpec
from iclkit.inference.parsing import parse_answer
from iclkit.inference.prediction import Prediction
from iclkit.prompt import Prompt
from iclkit.registry import backends, formatters

BackendSpec = Backend | str | Mapping[str, Any]
FormatterSpec = Formatter | str | Mapping[str, Any]

_CHUNK = 32


def _chunks(prompts: Sequence[Prompt], what: str) -> Iterator[Sequence[Prompt]]:
    """``prompts`` in slices of ``_CHUNK``, with a progress bar when there is more than one."""
    starts = range(0, len(prompts), _CHUNK)
    for start in tqdm(starts, desc=what, unit="batch", disable=len(prompts) <= _CHUNK):
        yield prompts[start : start + _CHUNK]


class LikelihoodClassifier:
    """Classify prompts by the log-likelihood of each label's continuation.

    Every prompt is scored with ``prompt.answer_prefix + word`` for each label word; the
    prediction is the label with the highest probability after a softmax over labels of the
    summed log-likelihoods (``method="acc"``) or of the per-token means (``"acc_norm"``).
    With ``calibration="contextual"``, those probabilities are divided by the label bias that
    the content-free inputs reveal (see :mod:`iclkit.inference.calibration`); this needs the
    ``formatter`` that built the prompts (``builder.formatter_``).

    Args:
        backend: a :class:`Backend`, a registered name (``"local"``, ``"openai"``) or a
            ``{"name": ..., **options}`` mapping.
        labels: the raw labels (each its own word) or a ``{label: word}`` verbalizer.
        method: ``"acc"`` or ``"acc_norm"``.
        calibration: ``None`` or ``"contextual"``.
        formatter: the formatter that built the prompts (needed for calibration).
        content_free: the content-free inputs of contextual calibration.

    Raises:
        ConfigError: for an unknown ``method`` or ``calibration``.
    """

    def __init__(
        self,
        backend: BackendSpec,
        labels: LabelSpec,
        *,
        method: Method = "acc",
        calibration: str | None = None,
        formatter: FormatterSpec | None = None,
        content_free: Sequence[str] = CONTENT_FREE,
    ) -> None:
        if method not in ("acc", "acc_norm"):
            raise ConfigError(f"method must be 'acc' or 'acc_norm', got {method!r}")
        if calibration not in (None, "contextual"):
            raise ConfigError(f"calibration must be None or 'contextual', got {calibration!r}")
        self.backend = backend
        self.labels = labels
        self.method: Method = method
        self.calibration = calibration
        self.formatter = formatter
        self.content_free = tuple(content_free)

    def predict(self, prompts: Sequence[Prompt]) -> list[Prediction]:
        """Predict a label for every prompt.

        Raises:
            ConfigError: for a bad label space, or calibration without a ``formatter``.
            BackendError: if the backend cannot score (its message names the alternative,
                :class:`GenerationClassifier`) or fails.
        """
        space = LabelSpace.from_spec(self.labels)
        backend = backends.create(self.backend)
        formatter = None
        if self.calibration == "contextual":
            if self.formatter is None:
                raise ConfigError(
                    "calibration='contextual' needs the formatter that built the prompts, to "
                    "rebuild them with content-free inputs. Fix: pass "
                    "formatter=builder.formatter_"
                )
            formatter = formatters.create(self.formatter)
        predictions: list[Prediction] = []
        for chunk in _chunks(prompts, "scoring labels"):
            if formatter is None:
                scores = backend.score(chunk, [space.continuations(p.answer_prefix) for p in chunk])
                probabilities = label_probabilities(scores, self.method)
            else:
                scores, bias = score_with_bias(
                    backend, chunk, space, formatter, self.method, self.content_free
                )
                probabilities = calibrate(label_probabilities(scores, self.method), bias)
            for row, row_scores in zip(probabilities, scores, strict=True):
                predictions.append(
                    Prediction(
                        label=space.labels[int(row.argmax())],
                        probabilities=dict(zip(space.labels, map(float, row), strict=True)),
                        scores=dict(zip(space.labels, row_scores, strict=True)),
                    )
                )
        return predictions


class GenerationClassifier:
    """Classify prompts by generating an answer and parsing it into the label space.

    Works with every backend, including those without log-probabilities. The answer is
    parsed by :func:`~iclkit.inference.parsing.parse_answer`; text that names no label gives
    a prediction with ``label=None``.

    Args:
        backend: a :class:`Backend`, a registered name or a ``{"name": ..., **options}`` map.
        labels: the raw labels (each its own word) or a ``{label: word}`` verbalizer.
        max_tokens: tokens to generate per prompt.
        temperature: 0 for greedy decoding.
        seed: sampling seed (``temperature > 0``).
        stop: strings that end the answer.

    Raises:
        ConfigError: if ``max_tokens`` is not positive or ``temperature`` is negative.
    """

    def __init__(
        self,
        backend: BackendSpec,
        labels: LabelSpec,
        *,
        max_tokens: int = 8,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: Sequence[str] = ("\n",),
    ) -> None:
        if max_tokens < 1:
            raise ConfigError(f"max_tokens must be positive, got {max_tokens!r}")
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature!r}")
        self.backend = backend
        self.labels = labels
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self.stop = tuple(stop)

    def predict(self, prompts: Sequence[Prompt]) -> list[Prediction]:
        """Generate an answer for every prompt and map it to a label.

        Raises:
            ConfigError: for a bad label space.
            BackendError: if the backend fails.
        """
        space = LabelSpace.from_spec(self.labels)
        backend = backends.create(self.backend)
        predictions: list[Prediction] = []
        for chunk in _chunks(prompts, "generating answers"):
            texts = backend.generate(
                chunk,
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                seed=self.seed,
                stop=self.stop,
            )
            predictions.extend(
                Prediction(label=parse_answer(text, space), text=text) for text in texts
            )
        return predictions
