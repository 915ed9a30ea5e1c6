"""The ``votek`` selector: graph-based vote-k selective annotation (Su et al. 2022).

Su et al. 2022, "Selective Annotation Makes Language Models Better Few-Shot Learners": build
the k-nearest-neighbour graph of the pool; an example's score is the number of examples that
have it among their neighbours, each vote discounted by ``rho`` for every already-chosen example
among the voter's neighbours; greedily choose the highest score. The result is a
representative, diverse set chosen without looking at the query.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from iclkit.embedding.index import VectorIndex
from iclkit.errors import ConfigError
from iclkit.selectors.base import Selection
from iclkit.selectors.embedding import EmbeddingSelector, nearest, to_selection
from iclkit.validation import check_int

if TYPE_CHECKING:
    from collections.abc import Sequence

    from typing_extensions import Unpack

    from iclkit.embedding.base import Vectors
    from iclkit.example import Example
    from iclkit.selectors.embedding import EmbeddingOptions


class VoteKRanking:
    """The greedy vote-k order of a pool, extended on demand.

    ``neighbours[v]`` are the graph neighbours of example ``v`` (its nearest examples, itself
    excluded). :meth:`extend` continues the greedy choice; the first ``m`` chosen examples do
    not depend on how far it is extended later.
    """

    def __init__(self, neighbours: npt.NDArray[np.int64], rho: float) -> None:
        self.neighbours = neighbours
        self.rho = rho
        size = len(neighbours)
        flat = neighbours.ravel()
        order = np.argsort(flat, kind="stable")
        # voters[starts[u]:starts[u + 1]]: the examples that have u among their neighbours.
        self._voters = (order // neighbours.shape[1]).astype(np.int64)
        self._starts = np.searchsorted(flat[order], np.arange(size + 1))
        self._weight = np.ones(size)  # rho ** -(chosen neighbours); 0 once chosen itself
        self._scores = np.bincount(flat, minlength=size).astype(np.float64)
        self._chosen_mask = np.zeros(size, dtype=bool)
        self.order: list[int] = []
        self.scores: list[float] = []

    def extend(self, length: int) -> None:
        """Continue the greedy choice until ``length`` examples (or the whole pool) are ranked."""
        size = len(self.neighbours)
        while len(self.order) < min(length, size):
            scores = np.where(self._chosen_mask, -np.inf, self._scores)
            best = int(np.argmax(scores))
            self.order.append(best)
            self.scores.append(float(scores[best]))
            self._chosen_mask[best] = True
            # The chosen example no longer votes.
            np.subtract.at(self._scores, self.neighbours[best], self._weight[best])
            self._weight[best] = 0.0
            # Its voters now have one more chosen neighbour: their votes are discounted.
            voters = self._voters[self._starts[best] : self._starts[best + 1]]
            voters = voters[~self._chosen_mask[voters]]
            new = self._weight[voters] / self.rho
            delta = np.repeat(new - self._weight[voters], self.neighbours.shape[1])
            np.add.at(self._scores, self.neighbours[voters].ravel(), delta)
            self._weight[voters] = new


class VoteKSelector(EmbeddingSelector):
    """A query-independent diverse, representative set chosen by vote-k.

    ``graph_k`` is the number of neighbours per example in the similarity graph and ``rho``
    (> 1) the vote discount. With ``budget=None`` every query gets the first ``k`` examples of
    the vote-k order (scores: their vote counts when chosen). With ``budget=B`` vote-k chooses
    ``B`` examples once (the "annotation budget" of Su et al.) and each query gets its ``k``
    nearest among them (scores: cosine similarities), as in the paper's prompt retrieval.
    Takes the options of :class:`~iclkit.selectors.embedding.EmbeddingSelector` too.

    Raises:
        ConfigError: if ``graph_k`` or ``budget`` is not a positive integer or ``rho`` ≤ 1.
    """

    def __init__(
        self,
        budget: int | None = None,
        graph_k: int = 10,
        rho: float = 10.0,
        **embedding: Unpack[EmbeddingOptions],
    ) -> None:
        super().__init__(**embedding)
        if isinstance(rho, bool) or not isinstance(rho, (int, float)) or rho <= 1:
            raise ConfigError(f"rho must be a number greater than 1, got {rho!r}")
        self.budget = check_int("budget", budget, minimum=1, allow_none=True)
        self.graph_k = check_int("graph_k", graph_k, minimum=1)
        self.rho = float(rho)

    def _prepare(self) -> None:
        """Build the similarity graph (one batched FAISS search) and the vote-k ranking."""
        size = len(self.pool)
        depth = min(self.graph_k, size - 1)
        if depth > 0:
            rows = nearest(
                self.index_, self.embeddings_, depth, [frozenset({i}) for i in range(size)]
            )
            neighbours = np.stack([ids for ids, _ in rows])
        else:
            neighbours = np.zeros((size, 0), dtype=np.int64)
        self.ranking_ = VoteKRanking(neighbours, self.rho)
        if self.budget is not None:
            self.ranking_.extend(self.budget)
            self.chosen_ = np.array(self.ranking_.order, dtype=np.int64)
            self.chosen_index_ = VectorIndex("flat").build(self.embeddings_[self.chosen_])

    def embed_queries(self, queries: Sequence[Example]) -> Vectors:
        """Embed the queries, or, with ``budget=None`` (query-independent), embed nothing.

        Raises:
            NotFittedError: if the selector has not been fitted.
            DataError: if a query's input text is empty (``budget`` set).
        """
        if self.budget is not None:
            return super().embed_queries(queries)
        self.pool  # noqa: B018 - raises NotFittedError before anything else
        return np.zeros((len(queries), 0), dtype=np.float32)

    def select_among(
        self, vectors: Vectors, k: int, excludes: Sequence[frozenset[int]]
    ) -> list[Selection]:
        """Each query's nearest examples within the vote-k set, or the set itself."""
        if self.budget is not None:
            found = nearest(self.chosen_index_, vectors, k, excludes, ids=self.chosen_)
            return [to_selection(ids, scores) for ids, scores in found]
        widest = max((len(ex) for ex in excludes), default=0)
        self.ranking_.extend(k + widest)
        ranked = list(zip(self.ranking_.order, self.ranking_.scores, strict=True))
        selections = []
        for ex in excludes:
            kept = [(i, s) for i, s in ranked if i not in ex][:k]
            selections.append(to_selection([i for i, _ in kept], [s for _, s in kept]))
        return selections
