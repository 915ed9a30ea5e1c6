"""The embedder interface: texts in, L2-normalised float32 vectors out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


class Embedder(ABC):
    """Turns texts into unit-length vectors, so that inner product equals cosine similarity.

    ``identity`` names the model *and* its weights; the embedding cache keys vectors by it, so
    two embedders with the same identity must give the same vector for the same text.
    """

    @property
    @abstractmethod
    def identity(self) -> str:
        """A string that changes whenever the vectors this embedder produces would change."""

    @property
    @abstractmethod
    def dimension(self) -> int:
        """The length of every vector."""

    @abstractmethod
    def encode(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` in one batched call; returns a ``(len(texts), dimension)`` array.

        Rows are L2-normalised float32 vectors, in the order of ``texts``.
        """
