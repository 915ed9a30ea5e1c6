"""Reproducible randomness: one generator per (seed, query), independent of batch order."""

from __future__ import annotations

import hashlib

import numpy as np

from iclkit.example import Example


def query_rng(seed: int, query: Example, salt: str = "") -> np.random.Generator:
    """A NumPy generator determined by ``seed``, the query's text and ``salt``.

    The same seed and query always give the same draws, whatever other queries are built before
    it or in the same batch. ``salt`` separates independent uses (selection vs ordering).
    """
    digest = hashlib.sha256(f"{salt}\x00{query.text}".encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])
