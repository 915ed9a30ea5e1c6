"""Generation methods: ``generate`` (a greedy answer), ``self-consistency`` (a vote of samples)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from iclkit.errors import ConfigError
from iclkit.inference.classify import GenerationClassifier
from iclkit.inference.labels import LabelSpace
from iclkit.inference.parsing import parse_reasoned
from iclkit.inference.prediction import Prediction
from iclkit.methods.base import Method
from iclkit.methods.voting import vote
from iclkit.validation import check_int

if TYPE_CHECKING:
    from iclkit.backends.base import Backend
    from iclkit.builder import PromptBuilder
    from iclkit.calibrators.base import Calibrator
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


#: Seeds of successive samples are this far apart, so that the per-batch seeds a backend
#: derives from them (seed + batch start) never coincide.
SEED_STRIDE = 100_003


class SelfConsistencyMethod(Method):
    """Sample several answers per prompt and vote (Wang et al. 2023, self-consistency).

    Each prompt is completed ``samples`` times at ``temperature`` (sample ``i`` with seed
    ``seed + i × 100003``); each answer is parsed into the label space and the most frequent
    label wins (ties: the label parsed first). With a chain-of-thought formatter
    (``text`` with ``rationale_field``: demonstrations show a rationale before the label) the
    model writes its reasoning first and the answer is read after the template's
    :attr:`~iclkit.formatters.text.TextFormatter.answer_marker`; otherwise the whole answer is
    parsed. Generation stops at ``stop`` (default: a blank line, where the next demonstration
    would begin) or after ``max_tokens``. The probabilities are the shares of the vote among
    answers that name a label; a prompt none of whose answers does gets ``label=None``.

    Works with every backend that generates (``local``, ``openai``); sampling is reproducible
    for a given seed as far as the backend's is (see its ``generate``).

    Raises:
        ConfigError: if ``samples`` or ``max_tokens`` is not positive, ``temperature`` is
            negative, or ``seed`` is negative.
    """

    calibrates: ClassVar[bool] = False

    def __init__(
        self,
        samples: int = 5,
        temperature: float = 0.7,
        max_tokens: int = 128,
        seed: int = 0,
        stop: Sequence[str] = ("\n\n",),
    ) -> None:
        self.samples = check_int("samples", samples, minimum=1)
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise ConfigError(f"temperature must be a number >= 0, got {temperature!r}")
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature!r}")
        self.temperature = float(temperature)
        self.max_tokens = check_int("max_tokens", max_tokens, minimum=1)
        self.seed = check_int("seed", seed)
        self.stop = tuple(str(marker) for marker in stop)

    def calls_per_prompt(self) -> int:
        """One generation per sample."""
        return self.samples

    def predict(
        self,
        prompts: Sequence[Prompt],
        builder: PromptBuilder,
        backend: Backend,
        labels: Mapping[str, str],
        calibrator: Calibrator | None,
    ) -> list[Prediction]:
        """Sample, parse and vote for every prompt (one ``generate`` call per sample).

        Raises:
            BackendError: if the backend fails.
            ConfigError: for a bad label space.
        """
        space = LabelSpace.from_spec(labels)
        marker = getattr(builder.formatter_, "answer_marker", None)
        drawn = [
            backend.generate(
                prompts,
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                seed=self.seed + SEED_STRIDE * number,
                stop=self.stop,
            )
            for number in range(self.samples)
        ]
        results = []
        for place, prompt in enumerate(prompts):
            texts = tuple(sample[place] for sample in drawn)
            parsed = [parse_reasoned(text, space, marker) for text in texts]
            named = [label for label in parsed if label is not None]
            shares = vote(named, space.labels) if named else None
            winner = None if shares is None else space.labels[int(np.argmax(shares))]
            results.append(
                Prediction(
                    label=winner,
                    probabilities={}
                    if shares is None
                    else dict(zip(space.labels, map(float, shares), strict=True)),
                    text=texts[parsed.index(winner)],
                    prompt=prompt,
                    prompt_tokens=self.samples * backend.count_tokens(prompt.text),
                    model_calls=self.samples,
                    samples=texts,
                )
            )
        return results
