"""Values on disk keyed by (identity, exact text), in one SQLite file: the base of iclkit's caches.

The embedding cache (:class:`~iclkit.embedding.cache.EmbeddingCache`: vectors by embedder and
text) and the anchor store (:class:`~iclkit.methods.anchors.AnchorStore`: next-token
distributions by model and prompt) are both a table of ``(identity, SHA-256 of the text,
value)`` rows. Each write is one SQLite transaction, so an interrupted run leaves either all of
a batch or none of it; readers never see a half-written value. Several processes may share a
file (write-ahead logging).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, ClassVar

from iclkit.bundled_models import cache_dir

_CHUNK = 500  # SQLite host parameters per lookup query


def text_key(text: str) -> bytes:
    """The key of a text: its SHA-256 digest."""
    return hashlib.sha256(text.encode("utf-8")).digest()


class DiskStore:
    """A table of values keyed by an identity and the exact text they belong to.

    Subclasses name the ``table``, its value ``column`` and the default ``filename`` (under
    the iclkit cache folder); ``path`` overrides the file. The file is created on first use.
    """

    table: ClassVar[str]
    column: ClassVar[str]
    filename: ClassVar[str]

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = path

    @property
    def file(self) -> Path:
        """The SQLite file in use."""
        return Path(self.path) if self.path is not None else cache_dir() / self.filename

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.file, timeout=60)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (identity TEXT NOT NULL, key BLOB "
                f"NOT NULL, {self.column} BLOB NOT NULL, PRIMARY KEY (identity, key)) "
                "WITHOUT ROWID"
            )
            yield connection

    def get_values(self, identity: str, texts: Sequence[str]) -> dict[str, Any]:
        """The stored raw values of those ``texts`` that have one, by text."""
        by_key = {text_key(text): text for text in texts}
        keys = list(by_key)
        found: dict[str, Any] = {}
        with self._connect() as connection:
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = connection.execute(
                    f"SELECT key, {self.column} FROM {self.table} "
                    f"WHERE identity = ? AND key IN ({marks})",
                    [identity, *chunk],
                )
                for key, value in rows:
                    found[by_key[key]] = value
        return found

    def put_values(self, identity: str, texts: Sequence[str], values: Sequence[Any]) -> None:
        """Store raw ``values[i]`` for ``texts[i]``, all in one transaction."""
        rows = [
            (identity, text_key(text), value) for text, value in zip(texts, values, strict=True)
        ]
        with self._connect() as connection, connection:
            connection.executemany(f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?, ?)", rows)
