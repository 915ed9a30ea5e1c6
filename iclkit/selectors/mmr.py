"""The ``mmr`` selector: maximal marginal relevance (Carbonell & Goldstein 1998)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from iclkit.selectors.base import Selection
from iclkit.selectors.embedding import (
    EmbeddingSelector,
    check_fetch_k,
    check_fraction,
    to_selection,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from iclkit.selectors.embedding import EmbeddingOptions


class MMRSelector(EmbeddingSelector):
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
        super().__init__(**embedding)
        self.lambda_ = check_fraction("lambda_", lambda_)
        self.fetch_k = check_fetch_k(fetch_k)

    def fetch_size(self, k: int) -> int:
        """``max(fetch_k, k)`` nearest candidates."""
        return max(self.fetch_k, k)

    def choose(
        self,
        query: npt.NDArray[np.float32],
        ids: npt.NDArray[np.int64],
        similarities: npt.NDArray[np.float32],
        k: int,
    ) -> Selection:
        """Greedy MMR over the candidates."""
        vectors = self.embeddings_[ids]
        pairwise = vectors @ vectors.T
        redundancy = np.full(len(ids), -np.inf, dtype=np.float32)
        available = np.ones(len(ids), dtype=bool)
        chosen: list[int] = []
        for _ in range(min(k, len(ids))):
            penalty = np.where(np.isfinite(redundancy), redundancy, 0.0)
            gain = self.lambda_ * similarities - (1 - self.lambda_) * penalty
            best = int(np.argmax(np.where(available, gain, -np.inf)))
            chosen.append(best)
            available[best] = False
            redundancy = np.maximum(redundancy, pairwise[best])
        return to_selection(ids[chosen], similarities[chosen])
