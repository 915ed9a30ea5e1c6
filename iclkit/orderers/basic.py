"""Order-only orderers: ``as-selected``, ``reverse`` and seeded ``random``."""

from __future__ import annotations

from collections.abc import Sequence

from iclkit.example import Example
from iclkit.orderers.base import Orderer
from iclkit.prompt import Demonstration
from iclkit.seeding import query_rng
from iclkit.validation import check_int


class AsSelectedOrderer(Orderer):
    """Keep the selector's ranking: the most relevant demonstration comes first."""

    def order(self, query: Example, demonstrations: Sequence[Demonstration]) -> list[Demonstration]:
        """Return the demonstrations unchanged."""
        return list(demonstrations)


class ReverseOrderer(Orderer):
    """Reverse the selector's ranking: the most relevant demonstration sits next to the query."""

    def order(self, query: Example, demonstrations: Sequence[Demonstration]) -> list[Demonstration]:
        """Return the demonstrations in reverse ranking order."""
        return list(reversed(demonstrations))


class RandomOrderer(Orderer):
    """Shuffle the demonstrations, reproducibly from ``seed`` and the query text.

    Raises:
        ConfigError: if ``seed`` is negative.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = check_int("seed", seed)

    def order(self, query: Example, demonstrations: Sequence[Demonstration]) -> list[Demonstration]:
        """Return a seeded permutation of the demonstrations."""
        permutation = query_rng(self.seed, query, salt="random-orderer").permutation(
            len(demonstrations)
        )
        return [demonstrations[i] for i in permutation]
