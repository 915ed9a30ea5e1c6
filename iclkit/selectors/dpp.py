"""The ``dpp`` selector: a relevance-weighted determinantal point process, greedy MAP.

Fast greedy MAP inference of Chen, Zhang & Zhou 2018 ("Fast Greedy MAP Inference for
Determinantal Point Process to Improve Recommendation Diversity"), as used to choose in-context
examples by Ye et al. 2023 (CEIL).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from iclkit.selectors.base import Selection
from iclkit.selectors.embedding import Candidates, RerankingSelector, to_selection
from iclkit.validation import check_fraction

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from iclkit.selectors.embedding import EmbeddingOptions

#: Greedy MAP stops when the next item's marginal gain (a squared volume) falls below this.
MIN_GAIN = 1e-10


def greedy_map(kernel: npt.NDArray[np.float64], k: int) -> list[int]:
    """Greedy MAP inference for the DPP with ``kernel`` (Chen et al. 2018, Algorithm 1).

    Returns up to ``k`` item indices in the order chosen; stops early when every remaining
    item would add (almost) nothing, e.g. when the rest duplicate what is chosen.
    """
    size = len(kernel)
    factors = np.zeros((k, size))
    gains = np.diag(kernel).astype(np.float64, copy=True)
    best = int(np.argmax(gains))
    chosen = [best]
    while len(chosen) < min(k, size):
        step = len(chosen) - 1
        update = (kernel[best] - factors[:step, best] @ factors[:step]) / np.sqrt(gains[best])
        factors[step] = update
        gains -= update**2
        gains[chosen] = -np.inf
        best = int(np.argmax(gains))
        if gains[best] < MIN_GAIN:
            break
        chosen.append(best)
    return chosen


class DPPSelector(RerankingSelector):
    """Choose relevant *and* mutually diverse demonstrations with a DPP.

    Among the ``fetch_k`` nearest examples, the kernel is ``L = diag(r) · S · diag(r)`` with
    ``S`` the cosine similarities between candidates and ``r = exp(α · sim(query, x))``,
    ``α = theta / (2 (1 − theta))`` (Chen et al. 2018): ``theta`` near 1 favours relevance,
    ``0`` pure diversity. The greedy MAP set comes first in its greedy order; when it stops
    early (the remaining candidates duplicate the chosen ones), the nearest remaining
    candidates complete it. Scores are cosine similarities to the query. Takes the options of
    :class:`~iclkit.selectors.embedding.EmbeddingSelector` too.

    Raises:
        ConfigError: if ``theta`` is outside ``[0, 1)`` or ``fetch_k`` is not positive.
    """

    def __init__(
        self, theta: float = 0.7, fetch_k: int = 20, **embedding: Unpack[EmbeddingOptions]
    ) -> None:
        super().__init__(fetch_k, **embedding)
        self.theta = check_fraction("theta", theta, upper_open=True)

    def choose(self, candidates: Candidates, k: int) -> Selection:
        """Greedy MAP over the relevance-weighted kernel of the candidates."""
        ids, similarities = candidates
        vectors = self.embeddings_[ids].astype(np.float64)
        alpha = self.theta / (2 * (1 - self.theta))
        quality = np.exp(alpha * similarities.astype(np.float64))
        kernel = quality[:, None] * (vectors @ vectors.T) * quality[None, :]
        chosen = greedy_map(kernel, k) if len(ids) else []
        rest = [i for i in range(len(ids)) if i not in set(chosen)]
        chosen += rest[: k - len(chosen)]
        return to_selection(ids[chosen], similarities[chosen])
