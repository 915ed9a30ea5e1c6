"""The ``knn-balanced`` selector: nearest neighbours with a per-label quota."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iclkit.embedding.base import Vectors
from iclkit.selectors.base import Selection
from iclkit.selectors.embedding import EmbeddingSelector, nearest, to_selection


class KNNBalancedSelector(EmbeddingSelector):
    """The nearest examples under a per-label quota: every label gets ``k // n_labels``.

    Each label's quota is filled with its own nearest examples (searched in a per-label FAISS
    index, so a label far from the query still gets its share); the ``k % n_labels`` remaining
    slots, and the share of a label with too few examples, go to the nearest examples left,
    whatever their label. The selection is ordered by similarity, most similar first; scores
    are cosine similarities. Takes the options of
    :class:`~iclkit.selectors.embedding.EmbeddingSelector`.

    Raises:
        ConfigError: for an unknown index kind or a non-positive tuning value or batch size.
    """

    def _prepare(self) -> None:
        """Build one index per label over that label's examples."""
        outputs = np.array([str(example.output) for example in self.pool])
        self.label_members_ = {
            label: np.flatnonzero(outputs == label).astype(np.int64) for label in self.pool.labels
        }
        self.label_indexes_ = {
            label: self._new_index().build(self.embeddings_[members])
            for label, members in self.label_members_.items()
        }

    def select_among(
        self, vectors: Vectors, k: int, excludes: Sequence[frozenset[int]]
    ) -> list[Selection]:
        """Fill each label's quota from its own index (one search per label), then the rest."""
        quota = k // len(self.label_members_)
        per_label = [
            nearest(self.label_indexes_[label], vectors, k, excludes, ids=members)
            for label, members in self.label_members_.items()
        ]
        selections = []
        for row in range(len(vectors)):
            taken: list[tuple[float, int]] = []
            spare: list[tuple[float, int]] = []
            for found in per_label:
                ids, scores = found[row]
                pairs = [(float(s), int(i)) for i, s in zip(ids, scores, strict=True)]
                taken += pairs[:quota]
                spare += pairs[quota:]
            taken += sorted(spare, reverse=True)[: k - len(taken)]
            taken.sort(reverse=True)
            selections.append(to_selection([i for _, i in taken], [s for s, _ in taken]))
        return selections
