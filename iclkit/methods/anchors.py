"""Next-token distributions on disk, keyed by model and prompt, for ``knn-prompting`` anchors.

A distribution is the ``top`` likeliest next tokens of one prompt with their log-probabilities
(:meth:`~iclkit.backends.base.Backend.next_token_logprobs`). The store is one SQLite file
(default ``<iclkit cache>/anchors.sqlite``); a row's key is the backend's identity with ``top``
and the SHA-256 of the prompt text, so the same pool example in the same prompt is computed
once, whatever pool or run it belongs to. Each write is one transaction: an interrupted
computation keeps every chunk it finished.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

from iclkit.bundled_models import cache_dir

#: One next-token distribution: ``{token: logprob}``, likeliest first.
Distribution = dict[str, float]

_CHUNK = 500  # SQLite host parameters per lookup query
_SCHEMA = """
CREATE TABLE IF NOT EXISTS distributions (
    identity TEXT NOT NULL,
    key BLOB NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (identity, key)
) WITHOUT ROWID
"""


def _key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class AnchorStore:
    """Stores next-token distributions on disk by (model identity and ``top``, prompt text).

    ``path`` is the SQLite file (default ``<iclkit cache>/anchors.sqlite``), created on first
    write. Several processes may share it.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = path

    @property
    def file(self) -> Path:
        """The SQLite file in use."""
        return Path(self.path) if self.path is not None else cache_dir() / "anchors.sqlite"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.file, timeout=60)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(_SCHEMA)
            yield connection

    def get(self, identity: str, texts: Sequence[str]) -> dict[str, Distribution]:
        """The stored distributions of those prompt ``texts`` that have one, by text."""
        by_key = {_key(text): text for text in texts}
        keys = list(by_key)
        found: dict[str, Distribution] = {}
        with self._connect() as connection:
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = connection.execute(
                    f"SELECT key, body FROM distributions WHERE identity = ? AND key IN ({marks})",
                    [identity, *chunk],
                )
                for key, body in rows:
                    found[by_key[key]] = {str(t): float(v) for t, v in json.loads(body)}
        return found

    def put(
        self, identity: str, texts: Sequence[str], distributions: Sequence[Distribution]
    ) -> None:
        """Store ``distributions[i]`` for ``texts[i]``, all in one transaction."""
        rows = [
            (identity, _key(text), json.dumps(list(found.items()), ensure_ascii=False))
            for text, found in zip(texts, distributions, strict=True)
        ]
        with self._connect() as connection, connection:
            connection.executemany("INSERT OR REPLACE INTO distributions VALUES (?, ?, ?)", rows)
