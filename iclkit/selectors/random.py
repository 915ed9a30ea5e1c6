"""The ``random`` selector: seeded uniform sampling without replacement."""

from __future__ import annotations

import numpy as np

from iclkit.example import Example
from iclkit.seeding import query_rng
from iclkit.selectors.base import Selection, Selector
from iclkit.validation import check_int


class RandomSelector(Selector):
    """Pick ``k`` demonstrations uniformly at random, reproducibly from ``seed``.

    With ``per_query=True`` (the default, as OpenICL's random retriever) each query draws its
    own demonstrations, determined by the seed and the query text, so a query gets the same
    demonstrations whatever else is in the batch. With ``per_query=False`` every query gets the
    same demonstration set for a seed (the "random demonstration set" of Zhao et al. 2021),
    except that a query in the pool is replaced by the next draw. Scores are ``None``.

    Raises:
        ConfigError: if ``seed`` is negative.
    """

    def __init__(self, seed: int = 0, per_query: bool = True) -> None:
        self.seed = check_int("seed", seed)
        self.per_query = per_query

    def select(self, query: Example, k: int, *, exclude: frozenset[int] = frozenset()) -> Selection:
        """Draw up to ``k`` distinct pool indices outside ``exclude``."""
        if self.per_query:
            rng = query_rng(self.seed, query, salt="random-selector")
            candidates = self.candidates(exclude)
            chosen = rng.permutation(len(candidates))[:k]
            indices = tuple(candidates[i] for i in chosen)
        else:
            order = np.random.default_rng(self.seed).permutation(len(self.pool))
            indices = tuple(int(i) for i in order if int(i) not in exclude)[:k]
        return Selection(indices=indices, scores=(None,) * len(indices))
