"""An on-disk SQLite cache of API responses, keyed by the request.

The key is the SHA-256 of the request as canonical JSON: endpoint, server URL, model,
parameters and prompt. Credentials are never part of a request given to the cache, so the API
key is neither in the keys nor in the stored responses. Each ``put`` is one SQLite
transaction, so an interrupted run leaves a consistent file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from iclkit.errors import BackendError


def request_key(request: dict[str, Any]) -> str:
    """The cache key of a request: SHA-256 of its canonical JSON."""
    canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """A ``request -> response`` store in one SQLite file (created on first use).

    Raises:
        BackendError: if the file cannot be opened as an SQLite database.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                connection = sqlite3.connect(self.path, check_same_thread=False)
                connection.execute(
                    "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, body TEXT)"
                )
            except sqlite3.DatabaseError as error:
                raise BackendError(
                    f"{self.path}: cannot open the response cache ({error}). Fix: delete the "
                    "file or point cache_path elsewhere"
                ) from error
            self._connection = connection
        return self._connection

    def get(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """The stored response to ``request``, or ``None``."""
        with self._lock:
            row = (
                self._db()
                .execute("SELECT body FROM responses WHERE key = ?", (request_key(request),))
                .fetchone()
            )
        return None if row is None else dict(json.loads(row[0]))

    def put(self, request: dict[str, Any], response: dict[str, Any]) -> None:
        """Store ``response`` as the answer to ``request`` (replacing an older one)."""
        body = json.dumps(response, ensure_ascii=False)
        with self._lock, self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO responses (key, body) VALUES (?, ?)",
                (request_key(request), body),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db().execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        """Close the database connection (it reopens on the next use)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
