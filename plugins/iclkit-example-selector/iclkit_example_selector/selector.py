"""The ``length`` selector: demonstrations whose length is closest to the query's."""

from __future__ import annotations

from iclkit import Example, Pool, Selection, Selector


def _words(text: str) -> int:
    return len(text.split())


class LengthSelector(Selector):
    """Pick the ``k`` pool examples whose input has the closest number of words to the query.

    The score is minus the absolute difference in words (0 is a perfect match); ties keep pool
    order. ``fit`` precomputes every pool example's length.
    """

    def fit(self, pool: Pool) -> LengthSelector:
        """Store the pool and the word count of each example. Returns ``self``."""
        super().fit(pool)
        self.lengths_ = [_words(text) for text in pool.texts]
        return self

    def select(self, query: Example, k: int, *, exclude: frozenset[int] = frozenset()) -> Selection:
        """Return the ``k`` closest-length pool indices outside ``exclude``."""
        target = _words(query.text)
        ranked = sorted(self.candidates(exclude), key=lambda i: abs(self.lengths_[i] - target))
        chosen = tuple(ranked[:k])
        return Selection(
            indices=chosen, scores=tuple(-float(abs(self.lengths_[i] - target)) for i in chosen)
        )
