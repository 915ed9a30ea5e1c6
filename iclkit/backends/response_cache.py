"""An on-disk SQLite cache of API responses, keyed by the request.

The key is the SHA-256 of the request as canonical JSON: endpoint, server URL, model,
parameters and prompt. Credentials are never part of a request given to the cache, so the API
key is neither in the keys nor in the stored responses. Each ``put`` is one SQLite
transaction, so an interrupted run leaves a consistent file.

Several processes may share one cache file: it is in WAL mode (readers never wait for a
writer), a writer waits up to :data:`BUSY_TIMEOUT` seconds for another's lock, and a lock that
still gets in the way (SQLite reports ``database is locked``) is retried with backoff for up to
:data:`LOCK_PATIENCE` seconds. No write is lost to another process.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from iclkit.errors import BackendError

#: Seconds SQLite itself waits for another connection's lock before reporting it.
BUSY_TIMEOUT = 30.0
#: Seconds a lock still reported after that is retried before giving up.
LOCK_PATIENCE = 120.0
_T = TypeVar("_T")


def request_key(request: dict[str, Any]) -> str:
    """The cache key of a request: SHA-256 of its canonical JSON."""
    canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _locked(error: BaseException) -> bool:
    """Whether ``error`` is SQLite's transient "another connection holds the lock"."""
    text = str(error).lower()
    return isinstance(error, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class ResponseCache:
    """A ``request -> response`` store in one SQLite file (created on first use).

    Raises:
        BackendError: if the file cannot be opened as an SQLite database, or stays locked by
            other processes for longer than :data:`LOCK_PATIENCE` seconds.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, check_same_thread=False)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL stays consistent through a crash; a cache needs no more.
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, body TEXT)"
            )
        except BaseException:
            connection.close()
            raise
        return connection

    def _run(self, action: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``action`` on the connection (opened on first use), retrying transient locks."""
        retrying = Retrying(
            retry=retry_if_exception(_locked),
            wait=wait_random_exponential(multiplier=0.05, max=2.0),
            stop=stop_after_delay(LOCK_PATIENCE),
            reraise=True,
        )
        try:
            with self._lock:
                for attempt in retrying:
                    with attempt:
                        if self._connection is None:
                            self._connection = self._connect()
                        return action(self._connection)
        except sqlite3.DatabaseError as error:
            if _locked(error):
                raise BackendError(
                    f"{self.path}: the response cache stayed locked by other processes for "
                    f"{LOCK_PATIENCE:.0f} s ({error}). Fix: run again (every finished request "
                    "is kept), or give each process its own cache_path"
                ) from error
            raise BackendError(
                f"{self.path}: cannot use the response cache ({error}). Fix: point cache_path "
                "at another file, or pass cache=False"
            ) from error
        raise AssertionError("unreachable: tenacity either returns or raises")

    def get(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """The stored response to ``request``, or ``None``.

        Raises:
            BackendError: as the class says.
        """
        key = request_key(request)
        row = self._run(
            lambda db: db.execute("SELECT body FROM responses WHERE key = ?", (key,)).fetchone()
        )
        return None if row is None else dict(json.loads(row[0]))

    def put(self, request: dict[str, Any], response: dict[str, Any]) -> None:
        """Store ``response`` as the answer to ``request`` (replacing an older one).

        Raises:
            BackendError: as the class says.
        """
        row = (request_key(request), json.dumps(response, ensure_ascii=False))

        def write(db: sqlite3.Connection) -> None:
            with db:
                db.execute("INSERT OR REPLACE INTO responses (key, body) VALUES (?, ?)", row)

        self._run(write)

    def __len__(self) -> int:
        return int(self._run(lambda db: db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]))

    def close(self) -> None:
        """Close the database connection (it reopens on the next use)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
