"""The on-disk embedding cache: vectors keyed by (embedder identity, exact text), in SQLite.

Each write is one SQLite transaction, so an interrupted run leaves either all of a batch or
none of it; readers never see a half-written vector. The default file is
``<iclkit cache>/embeddings.sqlite`` (see :func:`iclkit.bundled_models.cache_dir`).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iclkit.bundled_models import cache_dir
from iclkit.embedding.base import Embedder, Vectors

logger = logging.getLogger("iclkit.embedding")

_CHUNK = 500  # SQLite host parameters per lookup query
_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    identity TEXT NOT NULL,
    key BLOB NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (identity, key)
) WITHOUT ROWID
"""


def _key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class EmbeddingCache:
    """Stores embedding vectors on disk, keyed by the embedder's identity and the exact text.

    ``path`` is the SQLite file (default ``<iclkit cache>/embeddings.sqlite``), created on first
    write. Several processes may share it.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = path

    @property
    def file(self) -> Path:
        """The SQLite file in use."""
        return Path(self.path) if self.path is not None else cache_dir() / "embeddings.sqlite"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.file, timeout=60)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(_SCHEMA)
            yield connection

    def get(self, identity: str, texts: Sequence[str]) -> dict[str, Vectors]:
        """The cached vectors of those ``texts`` that have one, by text."""
        by_key = {_key(text): text for text in texts}
        found: dict[str, Vectors] = {}
        keys = list(by_key)
        with self._connect() as connection:
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = connection.execute(
                    f"SELECT key, vector FROM vectors WHERE identity = ? AND key IN ({marks})",
                    [identity, *chunk],
                )
                for key, blob in rows:
                    found[by_key[key]] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, identity: str, texts: Sequence[str], vectors: Vectors) -> None:
        """Store ``vectors[i]`` for ``texts[i]``, all in one transaction."""
        rows = [
            (identity, _key(text), np.ascontiguousarray(vector, dtype=np.float32).tobytes())
            for text, vector in zip(texts, vectors, strict=True)
        ]
        with self._connect() as connection, connection:
            connection.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)


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
