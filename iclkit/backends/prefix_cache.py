"""Key/value caches of recent prompts, reused for the longest token prefix a new prompt shares.

Few-shot prompts of one experiment cell share their instruction and, for selectors that pick one
demonstration set for every query, all their demonstrations; the content-free inputs of
contextual calibration share the demonstrations of the query they calibrate. The ``local``
backend keeps the transformers key/value caches of the prompts it ran last in a
:class:`PrefixCache` and runs only the tokens after the longest prefix a new prompt shares
with one of them.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from iclkit.validation import check_int

if TYPE_CHECKING:
    from transformers import Cache


def shared_length(
    a: Sequence[int] | npt.NDArray[np.int64], b: Sequence[int] | npt.NDArray[np.int64]
) -> int:
    """Length of the longest common prefix of two token id sequences."""
    a, b = np.asarray(a), np.asarray(b)
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


class PrefixCache:
    """A least-recently-used store of key/value caches keyed by the token ids they encode.

    Args:
        max_tokens: the most tokens held over all entries (memory is proportional: about
            37 KB per token for Gemma 3 270M in float32); 0 turns reuse off.
        max_entry_tokens: entries at least this long are not stored (a sliding-window layer
            keeps only the last window of a longer prompt, which cannot be cut back to a
            shorter prefix); ``None`` for no limit.

    Raises:
        ConfigError: if ``max_tokens`` is negative.
    """

    def __init__(self, max_tokens: int, max_entry_tokens: int | None = None) -> None:
        self.max_tokens = check_int("max_tokens", max_tokens)
        self.max_entry_tokens = max_entry_tokens
        self._entries: OrderedDict[int, tuple[npt.NDArray[np.int64], Cache]] = OrderedDict()
        self._held = 0
        self._next_key = 0

    @property
    def tokens(self) -> int:
        """Tokens held over all entries."""
        return self._held

    def lookup(self, ids: Sequence[int]) -> tuple[int, Cache | None]:
        """The longest stored prefix of ``ids``: its length and a private copy of its cache.

        The copy is cut back to that length, so the caller can run ``ids[length:]`` on it
        (and change it) freely. Returns ``(0, None)`` when nothing is shared.
        """
        query = np.asarray(ids, dtype=np.int64)
        best_key, best = -1, 0
        for key, (stored, _) in self._entries.items():
            shared = shared_length(stored, query)
            if shared > best:
                best_key, best = key, shared
        if best == 0:
            return 0, None
        self._entries.move_to_end(best_key)
        stored, cache = self._entries[best_key]
        private = copy.deepcopy(cache)
        private.crop(best - len(stored))
        return best, private

    def add(self, ids: Sequence[int], cache: Cache) -> None:
        """Store a copy of ``cache``, the keys/values of exactly ``ids``, evicting the oldest."""
        n = len(ids)
        if n == 0 or n > self.max_tokens:
            return
        if self.max_entry_tokens is not None and n >= self.max_entry_tokens:
            return
        self._entries[self._next_key] = (np.asarray(ids, dtype=np.int64), copy.deepcopy(cache))
        self._next_key += 1
        self._held += n
        while self._held > self.max_tokens:
            _, (stored, _) = self._entries.popitem(last=False)
            self._held -= len(stored)
