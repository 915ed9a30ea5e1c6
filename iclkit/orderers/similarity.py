"""Orderers by similarity to the query: ``similarity-ascending`` and ``similarity-descending``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iclkit.embedding.cache import EmbeddingCache, embed_texts
from iclkit.embedding.sentence_transformer import SentenceTransformerEmbedder
from iclkit.example import Example
from iclkit.orderers.base import Orderer
from iclkit.prompt import Demonstration


class SimilarityOrderer(Orderer):
    """Order demonstrations by their similarity to the query.

    The similarity is the selector's score when every demonstration has one (the embedding
    selectors give cosine similarities); otherwise (``random``, ``first``...) the query and
    demonstrations are embedded with ``embedder`` (``None``: the bundled all-MiniLM-L6-v2),
    through the embedding cache unless ``cache=False``. Ties keep the selector's ranking.
    Subclasses fix the direction.

    Raises:
        ConfigError: if ``batch_size`` is not a positive integer.
    """

    ascending: bool

    def __init__(
        self, embedder: str | None = None, cache: bool | str = True, batch_size: int = 64
    ) -> None:
        self.embedder = embedder
        self.cache = cache
        self.batch_size = batch_size
        SentenceTransformerEmbedder(embedder, batch_size=batch_size)  # validates batch_size

    def similarities(self, query: Example, demonstrations: Sequence[Demonstration]) -> list[float]:
        """The similarity of each demonstration to the query (selector score, else cosine).

        Raises:
            ConfigError: if the embedder is needed and cannot be loaded.
        """
        scores = [demo.score for demo in demonstrations]
        if all(score is not None for score in scores):
            return [float(score) for score in scores if score is not None]
        embedder = SentenceTransformerEmbedder(self.embedder, batch_size=self.batch_size)
        cache = (
            None
            if self.cache is False
            else EmbeddingCache(None if self.cache is True else self.cache)
        )
        texts = [query.text] + [demo.example.text for demo in demonstrations]
        vectors = embed_texts(embedder, texts, cache).vectors
        return [float(s) for s in vectors[1:] @ vectors[0]]

    def order(self, query: Example, demonstrations: Sequence[Demonstration]) -> list[Demonstration]:
        """Return the demonstrations sorted by similarity in this orderer's direction.

        Raises:
            ConfigError: if the embedder is needed and cannot be loaded.
        """
        if not demonstrations:
            return []
        similarity = np.array(self.similarities(query, demonstrations))
        ranks = np.array([demo.rank for demo in demonstrations])
        key = similarity if self.ascending else -similarity
        # Most relevant (lowest rank) wins ties on the side nearest to the query.
        tie = -ranks if self.ascending else ranks
        order = np.lexsort((tie, key))
        return [demonstrations[int(i)] for i in order]


class SimilarityAscendingOrderer(SimilarityOrderer):
    """Least similar first, most similar last, next to the query (best in Liu et al. 2022).

    Raises:
        ConfigError: if ``batch_size`` is not a positive integer.
    """

    ascending = True


class SimilarityDescendingOrderer(SimilarityOrderer):
    """Most similar first (farthest from the query), least similar last.

    Raises:
        ConfigError: if ``batch_size`` is not a positive integer.
    """

    ascending = False
