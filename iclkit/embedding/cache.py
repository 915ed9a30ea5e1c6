"""The on-disk embedding cache: vectors keyed by (embedder identity, exact text), in SQLite.

Each write is one SQLite transaction, so an interrupted run leaves either all of a batch or
none of it; readers never see a half-written vector. The default file is
``<iclkit cache>/embeddings.sqlite`` (see :func:`iclkit.bundled_models.cache_dir`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from iclkit.disk_store import DiskStore
from iclkit.embedding.base import Embedder, Vectors

logger = logging.getLogger("iclkit.embedding")


class EmbeddingCache(DiskStore):
    """Stores embedding vectors on disk, keyed by the embedder's identity and the exact text.

    ``path`` is the SQLite file (default ``<iclkit cache>/embeddings.sqlite``), created on first
    write. Several processes may share it.
    """

    table = "vectors"
    column = "vector"
    filename = "embeddings.sqlite"

    def get(self, identity: str, texts: Sequence[str]) -> dict[str, Vectors]:
        """The cached vectors of those ``texts`` that have one, by text."""
        return {
            text: np.frombuffer(blob, dtype=np.float32)
            for text, blob in self.get_values(identity, texts).items()
        }

    def put(self, identity: str, texts: Sequence[str], vectors: Vectors) -> None:
        """Store ``vectors[i]`` for ``texts[i]``, all in one transaction."""
        blobs = [np.ascontiguousarray(v, dtype=np.float32).tobytes() for v in vectors]
        self.put_values(identity, texts, blobs)


@dataclass(frozen=True)
class EmbeddingRun:
    """The vectors of one :func:`embed_texts` call and how many texts it really embedded.

    ``embedded`` counts distinct texts sent to the model; the others came from the cache or
    repeat an earlier text of the same call.
    """

    vectors: Vectors
    texts: int
    unique: int
    embedded: int


def embed_texts(
    embedder: Embedder, texts: Sequence[str], cache: EmbeddingCache | None = None
) -> EmbeddingRun:
    """Embed ``texts``, reading and filling ``cache``: each distinct text is embedded at most once.

    Texts not in the cache are embedded in one batched call and stored. Logs how many texts
    were embedded on the ``iclkit.embedding`` logger.

    Raises:
        ConfigError: if the embedder cannot be loaded.
    """
    unique = list(dict.fromkeys(texts))
    identity = embedder.identity
    known = cache.get(identity, unique) if cache is not None else {}
    missing = [text for text in unique if text not in known]
    if missing:
        fresh = embedder.encode(missing)
        if cache is not None:
            cache.put(identity, missing, fresh)
        known.update(zip(missing, fresh, strict=True))
    logger.info(
        "embedded %d of %d texts with %s (%d distinct, %d from the cache)",
        len(missing),
        len(texts),
        identity,
        len(unique),
        len(unique) - len(missing),
    )
    vectors = (
        np.stack([known[text] for text in texts]).astype(np.float32, copy=False)
        if texts
        else np.zeros((0, embedder.dimension), dtype=np.float32)
    )
    return EmbeddingRun(
        vectors=vectors, texts=len(texts), unique=len(unique), embedded=len(missing)
    )
