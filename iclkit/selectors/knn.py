"""The ``knn`` selector: the nearest pool examples by cosine similarity (Liu et al. 2022)."""

from __future__ import annotations

from iclkit.selectors.embedding import EmbeddingSelector


class KNNSelector(EmbeddingSelector):
    """Pick the ``k`` pool examples most similar to the query, most similar first.

    Liu et al. 2022, "What Makes Good In-Context Examples for GPT-3?": nearest neighbours in
    sentence-embedding space beat random demonstrations. Scores are cosine similarities. Takes
    the options of :class:`~iclkit.selectors.embedding.EmbeddingSelector`.

    Raises:
        ConfigError: for an unknown index kind or a non-positive tuning value or batch size.
    """
