"""The ``bm25`` selector: the pool examples with the highest BM25 score against the query."""

from __future__ import annotations

from collections.abc import Sequence

import bm25s
import numpy as np

from iclkit import ConfigError, Example, Pool, Selection, Selector
from iclkit.selectors.base import exclude_sets


class BM25Selector(Selector):
    """Rank pool examples by BM25 (bm25s, Lucene variant) against the query text.

    ``fit`` tokenizes and indexes the pool once; :meth:`select_batch` scores every query in one
    bm25s call. Scores are the BM25 scores (higher is more relevant); examples sharing no term
    with the query score 0. Ties are broken by pool index.

    Raises:
        ConfigError: if ``k1`` is negative or ``b`` is outside [0, 1].
    """

    def __init__(self, k1: float = 1.5, b: float = 0.75, stopwords: str | None = "en") -> None:
        if k1 < 0:
            raise ConfigError(f"bm25 k1 must be >= 0, got {k1}")
        if not 0 <= b <= 1:
            raise ConfigError(f"bm25 b must be between 0 and 1, got {b}")
        self.k1 = k1
        self.b = b
        self.stopwords = stopwords

    def _tokenize(self, texts: list[str], *, ids: bool) -> object:
        return bm25s.tokenize(
            texts, stopwords=self.stopwords or [], show_progress=False, return_ids=ids
        )

    def fit(self, pool: Pool) -> BM25Selector:
        """Tokenize and index the pool. Returns ``self``."""
        super().fit(pool)
        self.index_ = bm25s.BM25(k1=self.k1, b=self.b)
        self.index_.index(self._tokenize(pool.texts, ids=True), show_progress=False)
        return self

    def select(self, query: Example, k: int, *, exclude: frozenset[int] = frozenset()) -> Selection:
        """Return the ``k`` best BM25 matches outside ``exclude``."""
        return self.select_batch([query], k, exclude=[exclude])[0]

    def select_batch(
        self,
        queries: Sequence[Example],
        k: int,
        *,
        exclude: Sequence[frozenset[int]] | None = None,
    ) -> list[Selection]:
        """Score all queries in one bm25s call, then drop each query's excluded indices."""
        excludes = exclude_sets(queries, exclude)
        if not queries:
            return []
        fetch = min(len(self.pool), k + max(len(e) for e in excludes))
        tokens = self._tokenize([q.text for q in queries], ids=False)
        documents, scores = self.index_.retrieve(tokens, k=fetch, show_progress=False)
        results = []
        for row_docs, row_scores, excluded in zip(documents, scores, excludes, strict=True):
            # Stable order: score descending, then pool order for ties (e.g. all zeros).
            order = np.lexsort((row_docs, -row_scores))
            kept = [(int(row_docs[i]), float(row_scores[i])) for i in order]
            kept = [(d, s) for d, s in kept if d not in excluded][:k]
            results.append(Selection(tuple(d for d, _ in kept), tuple(s for _, s in kept)))
        return results
