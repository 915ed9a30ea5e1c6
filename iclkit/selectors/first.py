"""The ``first`` selector: the first ``k`` pool examples, a fixed baseline."""

from __future__ import annotations

from iclkit.example import Example
from iclkit.selectors.base import Selection, Selector


class FirstSelector(Selector):
    """Pick the first ``k`` pool examples (skipping the query if it is in the pool).

    Deterministic and query-independent: the classic fixed few-shot prompt. Scores are
    ``None``.
    """

    def select(self, query: Example, k: int, *, exclude: frozenset[int] = frozenset()) -> Selection:
        """Return the first ``k`` pool indices outside ``exclude``."""
        indices = tuple(self.candidates(exclude)[:k])
        return Selection(indices=indices, scores=(None,) * len(indices))
