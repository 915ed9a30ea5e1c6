"""Classifiers that turn a backend's answers into label predictions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from iclkit.backends.base import Backend
from iclkit.calibrators.base import Calibrator, Probabilities
from iclkit.errors import ConfigError
from iclkit.inference.labels import LabelSpace, LabelSpec, ScoreMethod, label_probabilities
from iclkit.inference.parsing import parse_answer
from iclkit.inference.prediction import Prediction
from iclkit.prompt import Prompt
from iclkit.registry import backends, calibrators

if TYPE_CHECKING:
    from iclkit.builder import PromptBuilder

BackendSpec = Backend | str | Mapping[str, Any]
CalibratorSpec = Calibrator | str | Mapping[str, Any]

#: Prompts (with their calibration probes) sent to the backend per ``score`` call: bounds the
#: memory a backend needs for one call.
CHUNK = 64


def _key(prompt: Prompt) -> tuple[str, str]:
    return prompt.text, prompt.answer_prefix


class LikelihoodClassifier:
    """Classify prompts by the log-likelihood of each label's continuation.

    Every prompt is scored with ``prompt.answer_prefix + word`` for each label word; the
    prediction is the label with the highest probability after a softmax over labels of the
    summed log-likelihoods (``method="loglik"``) or of the per-token means (``"loglik-norm"``).
    A ``calibration`` (a calibrator plugin name, ``{"name": ..., **options}`` or instance, e.g.
    ``"contextual"``) then corrects those probabilities; calibrators that need probe prompts
    (the same demonstrations around a content-free input) get them from the
    :class:`~iclkit.builder.PromptBuilder` that built the prompts, and each prompt is scored
    together with its probes in one backend call.

    Args:
        backend: a :class:`Backend`, a registered name (``"local"``, ``"openai"``) or a
            ``{"name": ..., **options}`` mapping.
        labels: the raw labels (each its own word) or a ``{label: word}`` verbalizer.
        method: ``"loglik"`` or ``"loglik-norm"``.
        calibration: ``None`` or a calibrator.

    Raises:
        ConfigError: for an unknown ``method``.
    """

    def __init__(
        self,
        backend: BackendSpec,
        labels: LabelSpec,
        *,
        method: ScoreMethod = "loglik",
        calibration: CalibratorSpec | None = None,
    ) -> None:
        if method not in ("loglik", "loglik-norm"):
            raise ConfigError(f"method must be 'loglik' or 'loglik-norm', got {method!r}")
        self.backend = backend
        self.labels = labels
        self.method: ScoreMethod = method
        self.calibration = calibration

    def predict(
        self, prompts: Sequence[Prompt], builder: PromptBuilder | None = None
    ) -> list[Prediction]:
        """Predict a label for every prompt.

        Raises:
            ConfigError: for a bad label space, an unknown calibrator, or a calibrator that
                needs probes without the ``builder`` that made the prompts.
            BackendError: if the backend cannot score (its message names the alternative,
                :class:`GenerationClassifier`) or fails.
        """
        space = LabelSpace.from_spec(self.labels)
        backend = backends.create(self.backend)
        calibrator = None if self.calibration is None else calibrators.create(self.calibration)
        raw: list[Probabilities] = []
        probe_rows: list[Probabilities] = []
        scores: list[Any] = []
        for start in range(0, len(prompts), CHUNK):
            chunk = prompts[start : start + CHUNK]
            probes = [self._probes(calibrator, prompt, builder) for prompt in chunk]
            unique: dict[tuple[str, str], Prompt] = {}
            for prompt in [*chunk, *(probe for group in probes for probe in group)]:
                unique.setdefault(_key(prompt), prompt)
            keys = list(unique)
            scored = backend.score(
                [unique[key] for key in keys], [space.continuations(key[1]) for key in keys]
            )
            by_key = dict(zip(keys, scored, strict=True))
            probability_of = dict(zip(keys, label_probabilities(scored, self.method), strict=True))
            scores.extend(by_key[_key(prompt)] for prompt in chunk)
            raw.append(np.array([probability_of[_key(prompt)] for prompt in chunk]))
            probe_rows.extend(
                np.array([probability_of[_key(probe)] for probe in group]).reshape(
                    len(group), len(space.labels)
                )
                for group in probes
            )
        if not prompts:
            return []
        probabilities = np.concatenate(raw)
        if calibrator is not None:
            probabilities = calibrator.calibrate(probabilities, probe_rows)
        return [
            Prediction(
                label=space.labels[int(row.argmax())],
                probabilities=dict(zip(space.labels, map(float, row), strict=True)),
                scores=dict(zip(space.labels, row_scores, strict=True)),
                prompt=prompt,
            )
            for prompt, row, row_scores in zip(prompts, probabilities, scores, strict=True)
        ]

    @staticmethod
    def _probes(
        calibrator: Calibrator | None, prompt: Prompt, builder: PromptBuilder | None
    ) -> list[Prompt]:
        if calibrator is None:
            return []
        if builder is None:
            raise ConfigError(
                f"calibrator {type(calibrator).__name__} needs the PromptBuilder that built the "
                "prompts, to render its probe prompts. Fix: pass builder= to predict()"
            )
        return calibrator.probes(prompt, builder)


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

    def predict(
        self, prompts: Sequence[Prompt], builder: PromptBuilder | None = None
    ) -> list[Prediction]:
        """Generate an answer for every prompt and map it to a label.

        ``builder`` is accepted for a signature shared with :class:`LikelihoodClassifier`;
        generation needs no probes.

        Raises:
            ConfigError: for a bad label space.
            BackendError: if the backend fails.
        """
        space = LabelSpace.from_spec(self.labels)
        backend = backends.create(self.backend)
        texts = backend.generate(
            prompts,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            seed=self.seed,
            stop=self.stop,
        )
        return [
            Prediction(label=parse_answer(text, space), text=text, prompt=prompt)
            for prompt, text in zip(prompts, texts, strict=True)
        ]
