"""The orderer interface: puts the selected demonstrations in prompt order."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from iclkit.example import Example
from iclkit.prompt import Demonstration


class Orderer(ABC):
    """Decides the order in which demonstrations appear in the prompt (first = farthest).

    Receives the demonstrations in the selector's ranking (most relevant first) and returns
    them in prompt order: the last one sits right before the query.
    """

    @abstractmethod
    def order(self, query: Example, demonstrations: Sequence[Demonstration]) -> list[Demonstration]:
        """Return ``demonstrations`` (all of them, each once) in prompt order."""
