"""The ``cone`` selector: nearest candidates re-ranked by the query's conditional entropy.

TopK + ConE of Peng et al. 2024, "Revisiting Demonstration Selection Strategies in In-Context
Learning".

Among the ``fetch_k`` nearest pool examples, keep the ``k`` that most reduce the model's
conditional entropy of the query: for each candidate ``c``, the mean negative log-likelihood
per token of the query's rendered text after ``c`` shown as a demonstration. A demonstration
that makes the query likely is one the model can relate the query to.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iclkit.backends.base import ContinuationScore
from iclkit.errors import ConfigError
from iclkit.example import Example
from iclkit.inference.classify import CHUNK
from iclkit.prompt import Prompt
from iclkit.selectors.base import Selection
from iclkit.selectors.embedding import Candidates, to_selection
from iclkit.selectors.lm_reranking import LMRerankingSelector


class ConESelector(LMRerankingSelector):
    """Re-rank the nearest candidates by the query's conditional entropy given each one.

    See the module docstring. The selection is in ascending entropy (the best first); scores
    are the negative entropies (nats per token), higher is better; candidates of equal
    entropy keep their similarity order. A query costs ``fetch_k`` scorings of one
    demonstration and the query. Takes the options of
    :class:`~iclkit.selectors.lm_reranking.LMRerankingSelector`.

    Raises:
        ConfigError: as :class:`~iclkit.selectors.lm_reranking.LMRerankingSelector`.
    """

    def calls_per_query(self, k: int) -> int:
        """One scoring per candidate: ``max(fetch_k, k)``."""
        return self.fetch_size(k)

    def split(self, query: Example, candidate: int) -> tuple[Prompt, str]:
        """The prompt up to the query (candidate demonstration shown) and the query's text.

        Raises:
            ConfigError: if the formatter does not end the prompt with the query's own text.
        """
        full = self.render(query, [candidate])
        alone = self.formatter_.format(query, [], None).text
        if not full.text.endswith(alone) or len(alone) == len(full.text):
            raise ConfigError(
                "cone needs prompts that end with the query's own rendering after the "
                "demonstrations; this formatter's do not"
            )
        head = full.text[: len(full.text) - len(alone)]
        return full.model_copy(update={"text": head, "answer_prefix": ""}), alone

    def rerank(
        self, queries: Sequence[Example], candidates: Sequence[Candidates], k: int
    ) -> list[Selection]:
        """Score every (query, candidate) pair, then keep each query's ``k`` lowest entropies.

        Raises:
            ConfigError: as :meth:`split`.
            BackendError: if the scoring backend fails.
        """
        pairs = [
            self.split(query, int(i))
            for query, (ids, _) in zip(queries, candidates, strict=True)
            for i in ids
        ]
        scores: list[ContinuationScore] = []
        for start in range(0, len(pairs), CHUNK):
            chunk = pairs[start : start + CHUNK]
            found = self.scorer.score([head for head, _ in chunk], [[text] for _, text in chunk])
            scores.extend(row[0] for row in found)
        selections, offset = [], 0
        for ids, _ in candidates:
            mine = scores[offset : offset + len(ids)]
            mine_pairs = pairs[offset : offset + len(ids)]
            offset += len(ids)
            entropy = np.array([-s.logprob / max(s.n_tokens, 1) for s in mine])
            order = np.argsort(entropy, kind="stable")[:k]
            tokens = sum(self.scorer.count_tokens(h.text + t) for h, t in mine_pairs)
            selection = to_selection(ids[order], -entropy[order])
            selections.append(
                Selection(selection.indices, selection.scores, calls=len(ids), tokens=tokens)
            )
        return selections
