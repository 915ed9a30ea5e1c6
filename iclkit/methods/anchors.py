"""Next-token distributions on disk, keyed by model and prompt, for ``knn-prompting`` anchors.

A distribution is the ``top`` likeliest next tokens of one prompt with their log-probabilities
(:meth:`~iclkit.backends.base.Backend.next_token_logprobs`). The store is one SQLite file
(default ``<iclkit cache>/anchors.sqlite``); a row's key is the backend's identity with ``top``
and the SHA-256 of the prompt text, so the same pool example in the same prompt is computed
once, whatever pool or run it belongs to. Each write is one transaction: an interrupted
computation keeps every chunk it finished.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from iclkit.disk_store import DiskStore

#: One next-token distribution: ``{token: logprob}``, likeliest first.
Distribution = dict[str, float]


class AnchorStore(DiskStore):
    """Stores next-token distributions on disk by (model identity and ``top``, prompt text).

    ``path`` is the SQLite file (default ``<iclkit cache>/anchors.sqlite``), created on first
    write. Several processes may share it.
    """

    table = "distributions"
    column = "body"
    filename = "anchors.sqlite"

    def get(self, identity: str, texts: Sequence[str]) -> dict[str, Distribution]:
        """The stored distributions of those prompt ``texts`` that have one, by text."""
        return {
            text: {str(token): float(value) for token, value in json.loads(body)}
            for text, body in self.get_values(identity, texts).items()
        }

    def put(
        self, identity: str, texts: Sequence[str], distributions: Sequence[Distribution]
    ) -> None:
        """Store ``distributions[i]`` for ``texts[i]``, all in one transaction."""
        bodies = [json.dumps(list(found.items()), ensure_ascii=False) for found in distributions]
        self.put_values(identity, texts, bodies)
