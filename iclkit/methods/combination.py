"""Methods that combine label distributions: ensembles of prompts, and LM ⊕ kNN-vote.

``ensemble`` splits each prompt's demonstrations into ``sets`` groups (round-robin by rank, so
every group gets near and far ones), shows each group in ``orders`` orders, scores every
member prompt and averages their label probabilities: an ensemble over demonstration sets
(with a fixed random set of ``k = sets × m``: ``sets`` random m-shot sets) and over orders.

``interpolate`` mixes the label distribution of another method (``base``: ``loglik`` by
default, or ``knn-prompting``...) with the distribution of a label vote of nearest
neighbours: ``(1 - weight) · p_base + weight · p_vote``. Sweep ``weight``
(``classifier.method.weight: [0.25, 0.5, 0.75]``) and let ``iclkit tune`` choose it on the dev
split; the base method's scores are the same for every weight, so the local backend computes
them once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from iclkit.errors import ConfigError
from iclkit.inference.classify import LikelihoodClassifier
from iclkit.inference.labels import LabelSpace, ScoreMethod
from iclkit.inference.prediction import Prediction
from iclkit.methods.base import Method
from iclkit.methods.voting import demonstration_vote, selected, vote
from iclkit.validation import check_fraction, check_int

if TYPE_CHECKING:
    from iclkit.backends.base import Backend
    from iclkit.builder import PromptBuilder
    from iclkit.calibrators.base import Calibrator
    from iclkit.prompt import Demonstration, Prompt


def _score_method(score: Any) -> ScoreMethod:
    if score not in ("loglik", "loglik-norm"):
        raise ConfigError(f"score must be 'loglik' or 'loglik-norm', got {score!r}")
    return "loglik-norm" if score == "loglik-norm" else "loglik"


def members(prompt: Prompt, sets: int, orders: int, seed: int) -> list[list[Demonstration]]:
    """The demonstration lists of ``prompt``'s ensemble members, ``sets × orders`` at most.

    Group ``j`` holds the selected demonstrations whose rank is ``j`` modulo the number of
    groups (at most one group per demonstration), in the prompt's order. Each group is shown
    in ``orders`` distinct orders (all of them when it has fewer): the prompt's own, then
    permutations drawn with ``seed`` (the same for every group of that size). A prompt
    without demonstrations is its own single member.
    """
    shown = list(prompt.demonstrations)
    if not shown:
        return [[]]
    count = min(sets, len(shown))
    ranked = {demo.index: place for place, demo in enumerate(selected(prompt))}
    groups = [[d for d in shown if ranked[d.index] % count == j] for j in range(count)]
    result: list[list[Demonstration]] = []
    for group in groups:
        found = [tuple(range(len(group)))]
        wanted = min(orders, math.factorial(len(group)))
        rng = np.random.default_rng([seed, len(group)])
        while len(found) < wanted:
            permutation = tuple(int(i) for i in rng.permutation(len(group)))
            if permutation not in found:
                found.append(permutation)
        result.extend([group[i] for i in permutation] for permutation in found)
    return result


class EnsembleMethod(Method):
    """Average the label probabilities of several prompts built from each prompt's demonstrations.

    See the module docstring. Each member is scored like ``loglik`` (``score="loglik-norm"``
    for per-token means) and calibrated by the pipeline's calibrator, if any, before the
    average. A query costs ``sets × orders`` scorings.

    Raises:
        ConfigError: if ``sets`` or ``orders`` is not positive, ``seed`` is negative, or
            ``score`` is unknown.
    """

    def __init__(self, sets: int = 1, orders: int = 1, seed: int = 0, score: str = "loglik"):
        self.sets = check_int("sets", sets, minimum=1)
        self.orders = check_int("orders", orders, minimum=1)
        self.seed = check_int("seed", seed)
        self.score = _score_method(score)

    def calls_per_prompt(self) -> int:
        """``sets × orders`` member prompts (fewer when a prompt has fewer demonstrations)."""
        return self.sets * self.orders

    def predict(
        self,
        prompts: Sequence[Prompt],
        builder: PromptBuilder,
        backend: Backend,
        labels: Mapping[str, str],
        calibrator: Calibrator | None,
    ) -> list[Prediction]:
        """Score every member of every prompt in one classifier call, then average per prompt.

        Raises:
            BackendError: if the backend cannot score or fails.
            ConfigError: for a bad label space.
        """
        space = LabelSpace.from_spec(labels).labels
        rendered: list[Prompt] = []
        spans = []
        for prompt in prompts:
            start = len(rendered)
            for demos in members(prompt, self.sets, self.orders, self.seed):
                rendered.append(builder.render(prompt.query, demos))
            spans.append((start, len(rendered)))
        scored = LikelihoodClassifier(
            backend, labels, method=self.score, calibration=calibrator
        ).predict(rendered, builder)
        probes = 0 if calibrator is None else calibrator.probes_per_prompt()
        results = []
        for prompt, (start, stop) in zip(prompts, spans, strict=True):
            group = scored[start:stop]
            mean = np.mean([[p.probabilities[label] for label in space] for p in group], axis=0)
            results.append(
                Prediction(
                    label=space[int(np.argmax(mean))],
                    probabilities=dict(zip(space, map(float, mean), strict=True)),
                    scores=group[0].scores,
                    prompt=prompt,
                    prompt_tokens=sum(backend.count_tokens(m.text) for m in rendered[start:stop]),
                    model_calls=(stop - start) * (1 + probes),
                )
            )
        return results


def neighbour_votes(
    prompts: Sequence[Prompt],
    builder: PromptBuilder,
    space: Sequence[str],
    k: int,
    weighted: bool,
) -> list[npt.NDArray[np.float64]]:
    """The :func:`~iclkit.methods.voting.vote` of each query's ``k`` nearest pool examples.

    Neighbours come from the builder's embedding selector when it has a fitted index (the
    same embeddings it selects with), otherwise from a ``knn`` selector fitted on the pool
    (bundled embedder, default embedding cache). The query itself is never its neighbour.
    """
    from iclkit.selectors.embedding import EmbeddingSelector, nearest
    from iclkit.selectors.knn import KNNSelector

    pool = builder.pool_
    found = getattr(builder, "selector_", None)
    if isinstance(found, EmbeddingSelector) and hasattr(found, "index_"):
        selector: EmbeddingSelector = found
    else:
        selector = KNNSelector().fit(pool)
    queries = [prompt.query for prompt in prompts]
    excludes = [pool.matches(query) for query in queries]
    hits = nearest(selector.index_, selector.embed_queries(queries), k, excludes)
    return [
        vote([pool[int(i)].output for i in ids], space, sims.tolist() if weighted else None)
        for ids, sims in hits
    ]


class InterpolateMethod(Method):
    """Mix a method's label distribution with a nearest-neighbour label vote.

    ``(1 - weight) · p_base + weight · p_vote``: ``p_base`` is the label distribution of the
    ``base`` method (a method name or ``{"name": ..., **options}``; default ``loglik``), which
    gets the pipeline's calibrator (a base without use for one ignores it); ``p_vote`` the
    vote of the prompt's selected demonstrations (``vote_k=None``; with the ``knn`` selector,
    the ``k`` nearest) or of the ``vote_k`` nearest pool examples, similarity-weighted with
    ``weighted``. ``weight`` 0 is the base method alone, 1 the vote alone.

    Raises:
        ConfigError: if ``weight`` is outside [0, 1], ``vote_k`` is not positive, or ``base``
            is not a method with label probabilities.
    """

    def __init__(
        self,
        weight: float = 0.5,
        vote_k: int | None = None,
        weighted: bool = False,
        base: str | Mapping[str, Any] = "loglik",
    ) -> None:
        from iclkit.registry import methods
        from iclkit.spec import component

        self.weight = check_fraction("weight", weight)
        self.vote_k = check_int("vote_k", vote_k, minimum=1, allow_none=True)
        self.weighted = weighted
        try:
            self.base = component(base, methods)
        except ValueError as error:
            raise ConfigError(f"base: {error}") from None
        if self.base["name"] in ("interpolate", "generate", "self-consistency"):
            raise ConfigError(
                f"base {self.base['name']!r} gives no label distribution to mix; use loglik, "
                "loglik-norm, ensemble or knn-prompting"
            )
        self._base = methods.create(self.base)

    def calls_per_prompt(self) -> int:
        """The base method's calls."""
        return self._base.calls_per_prompt()

    def predict(
        self,
        prompts: Sequence[Prompt],
        builder: PromptBuilder,
        backend: Backend,
        labels: Mapping[str, str],
        calibrator: Calibrator | None,
    ) -> list[Prediction]:
        """Score the prompts, vote their neighbours, and mix the two distributions.

        Raises:
            BackendError: if the backend cannot score or fails.
            ConfigError: for a bad label space.
        """
        space = LabelSpace.from_spec(labels).labels
        model = self._base.predict(prompts, builder, backend, labels, calibrator)
        if self.vote_k is None:
            votes = [demonstration_vote(p, space, self.weighted) for p in prompts]
        else:
            votes = neighbour_votes(prompts, builder, space, self.vote_k, self.weighted)
        results = []
        for prediction, voted in zip(model, votes, strict=True):
            lm = np.array([prediction.probabilities[label] for label in space])
            mixed = (1 - self.weight) * lm + self.weight * voted
            results.append(
                Prediction(
                    label=space[int(np.argmax(mixed))],
                    probabilities=dict(zip(space, map(float, mixed), strict=True)),
                    scores=prediction.scores,
                    prompt=prediction.prompt,
                    prompt_tokens=prediction.prompt_tokens,
                    model_calls=prediction.model_calls,
                )
            )
        return results
