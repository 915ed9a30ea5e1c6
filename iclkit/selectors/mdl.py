"""The ``mdl`` selector: the candidate demonstration set with the shortest label code length.

TopK + MDL of Wu et al. 2023, "Self-Adaptive In-Context Learning: An Information Compression
Perspective" (OpenICL's ``MDLRetriever``).

For each query, ``sets`` candidate demonstration sets of ``k`` are drawn from its ``fetch_k``
nearest pool examples (the first set is the ``k`` nearest, in similarity order; the others are
seeded random subsets in random order). Each set is rendered as the pipeline would show it and
the model's label distribution for the query is read; the set whose distribution has the lowest
entropy — the shortest expected code length of the query's label, the minimum description
length — is chosen, in the order it was scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from iclkit.errors import ConfigError
from iclkit.example import Example
from iclkit.inference.classify import LikelihoodClassifier
from iclkit.seeding import query_rng
from iclkit.selectors.base import Selection
from iclkit.selectors.embedding import Candidates, to_selection
from iclkit.selectors.lm_reranking import LMRerankingSelector
from iclkit.validation import check_int

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from iclkit.selectors.embedding import EmbeddingOptions


class MDLSelector(LMRerankingSelector):
    """Choose, among candidate demonstration sets, the one giving the most certain label.

    See the module docstring. A query costs ``sets`` scorings of a ``k``-shot prompt with
    every label word. Scores of the chosen demonstrations are their cosine similarities to
    the query. Takes the options of
    :class:`~iclkit.selectors.lm_reranking.LMRerankingSelector` too.

    Raises:
        ConfigError: if ``sets`` is not positive or ``seed`` is negative, or as
            :class:`~iclkit.selectors.lm_reranking.LMRerankingSelector`.
    """

    def __init__(
        self,
        sets: int = 4,
        seed: int = 0,
        fetch_k: int = 8,
        backend: str | Mapping[str, Any] | None = None,
        **embedding: Unpack[EmbeddingOptions],
    ) -> None:
        super().__init__(fetch_k, backend, **embedding)
        self.sets = check_int("sets", sets, minimum=1)
        self.seed = check_int("seed", seed)

    def calls_per_query(self, k: int) -> int:
        """One scoring per candidate set: ``sets`` at most."""
        return self.sets

    def candidate_sets(self, query: Example, ids: Sequence[int], k: int) -> list[list[int]]:
        """The query's candidate sets: the ``k`` nearest, then seeded random ones (distinct)."""
        first = [int(i) for i in ids[:k]]
        found = [first]
        if len(ids) <= k:
            return found
        rng = query_rng(self.seed, query, salt="mdl-selector")
        for _ in range(4 * self.sets):
            if len(found) == self.sets:
                break
            drawn = [int(ids[int(i)]) for i in rng.choice(len(ids), k, replace=False)]
            if drawn not in found:
                found.append(drawn)
        return found

    def rerank(
        self, queries: Sequence[Example], candidates: Sequence[Candidates], k: int
    ) -> list[Selection]:
        """Score every candidate set of every query; keep each query's lowest-entropy set.

        Raises:
            ConfigError: if the formatter has no verbalizer (the label words to score).
            BackendError: if the scoring backend fails.
        """
        words = getattr(self, "formatter_", None) and self.formatter_.verbalizer
        if not words:
            raise ConfigError("mdl scores the label words: the formatter needs its verbalizer")
        sets = [
            self.candidate_sets(query, [int(i) for i in ids], k)
            for query, (ids, _) in zip(queries, candidates, strict=True)
        ]
        prompts = [
            self.render(query, chosen)
            for query, options in zip(queries, sets, strict=True)
            for chosen in options
        ]
        scored = LikelihoodClassifier(self.scorer, words).predict(prompts)
        selections, offset = [], 0
        for (ids, similarities), options in zip(candidates, sets, strict=True):
            mine = scored[offset : offset + len(options)]
            offset += len(options)
            entropy = [
                -sum(p * np.log(max(p, 1e-12)) for p in prediction.probabilities.values())
                for prediction in mine
            ]
            best = int(np.argmin(entropy))
            similarity = {int(i): float(s) for i, s in zip(ids, similarities, strict=True)}
            chosen = options[best]
            selection = to_selection(chosen, [similarity[i] for i in chosen])
            tokens = sum(
                self.scorer.count_tokens(p.prompt.text) for p in mine if p.prompt is not None
            )
            selections.append(
                Selection(selection.indices, selection.scores, calls=len(options), tokens=tokens)
            )
        return selections
