"""The ``mmr`` selector: maximal marginal relevance (Carbonell & Goldstein 1998)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from iclkit.selectors.base import Selection
from iclkit.selectors.embedding import Candidates, RerankingSelector, to_selection
from iclkit.validation import check_fraction

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from iclkit.selectors.embedding import EmbeddingOptions


class MMRSelector(RerankingSelector):
    """Trade relevance for diversity with maximal marginal relevance.

    Among the ``fetch_k`` nearest examples, greedily add the one maximising
    ``lambda_ · sim(query, x) − (1 − lambda_) · max sim(x, chosen)``: ``lambda_=1`` is plain
    kNN, smaller values favour demonstrations unlike those already chosen. The selection is in
    greedy order; scores are cosine similarities to the query. Takes the options of
    :class:`~iclkit.selectors.embedding.EmbeddingSelector` too.

    Raises:
        ConfigError: if ``lambda_`` is outside ``[0, 1]`` or ``fetch_k`` is not positive.
    """

    def __init__(
        self, lambda_: float = 0.5, fetch_k: int = 20, **embedding: Unpack[EmbeddingOptions]
    ) -> None:
        super().__init__(fetch_k, **embedding)
        self.lambda_ = check_fraction("lambda_", lambda_)

    def choose(self, candidates: Candidates, k: int) -> Selection:
        """Greedy MMR over the candidates."""
        ids, similarities = candidates
        vectors = self.embeddings_[ids]
        pairwise = vectors @ vectors.T
        redundancy = np.zeros(len(ids), dtype=np.float32)  # max similarity to the chosen
        available = np.ones(len(ids), dtype=bool)
        chosen: list[int] = []
        for _ in range(min(k, len(ids))):
            gain = self.lambda_ * similarities - (1 - self.lambda_) * redundancy
            best = int(np.argmax(np.where(available, gain, -np.inf)))
            redundancy = pairwise[best] if not chosen else np.maximum(redundancy, pairwise[best])
            chosen.append(best)
            available[best] = False
        return to_selection(ids[chosen], similarities[chosen])
