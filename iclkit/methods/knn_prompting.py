"""kNN prompting (Xu et al. 2023): classify by the nearest pool examples in the LM's output space.

Xu et al. 2023, "kNN Prompting: Beyond-Context Learning with Calibration-Free Nearest Neighbor
Inference".

The language model is used as a feature extractor rather than as the classifier: every pool
example (an *anchor*) is put through the pipeline's own prompt (its demonstrations chosen by
the pipeline's selector, itself never among them) and the model's next-token distribution at
the answer position is kept with the example's label. A query's prediction is the label vote of
the ``k`` anchors whose distributions are nearest to the query's, by the Kullback-Leibler
divergence KL(anchor ‖ query). The whole pool informs each prediction, not only the
demonstrations that fit in the context, and no calibration is needed: the model's label bias is
shared by anchors and queries alike.

Distributions are truncated to the ``top`` likeliest tokens. The divergence sums over each
anchor's kept tokens, renormalised to sum to one; a token the query did not keep gets the most
probability it can have, the smaller of the query's lowest kept probability and its mass left
outside the kept tokens. Anchor
distributions are stored on disk (:class:`~iclkit.methods.anchors.AnchorStore`, keyed by model
and prompt), so a second run, or another pool holding the same examples, computes none again.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import numpy.typing as npt
from scipy import sparse

from iclkit.inference.labels import LabelSpace
from iclkit.methods.anchors import AnchorStore, Distribution
from iclkit.methods.base import Method
from iclkit.methods.voting import distribution_prediction, vote
from iclkit.validation import check_int

if TYPE_CHECKING:
    from iclkit.backends.base import Backend
    from iclkit.builder import PromptBuilder
    from iclkit.calibrators.base import Calibrator
    from iclkit.inference.prediction import Prediction
    from iclkit.pool import Pool
    from iclkit.prompt import Prompt

logger = logging.getLogger("iclkit.methods")

#: Anchor indexes kept in memory by this process (a grid's work units share them).
_RECENT: OrderedDict[str, AnchorIndex] = OrderedDict()
_RECENT_SIZE = 4


def _normalised(found: Distribution) -> tuple[list[str], npt.NDArray[np.float64]]:
    """The tokens and their log-probabilities renormalised over the kept tokens."""
    tokens = list(found)
    values = np.array([found[token] for token in tokens], dtype=np.float64)
    top = values.max()
    values -= top + np.log(np.exp(values - top).sum())
    return tokens, values


@dataclass(frozen=True)
class AnchorIndex:
    """The anchors' distributions as a sparse matrix, with their labels.

    ``probabilities`` is ``(n_anchors, n_tokens)`` over ``vocabulary`` (token → column);
    ``neg_entropy[i]`` is the sum of ``p log p`` of anchor ``i``.
    """

    vocabulary: dict[str, int]
    probabilities: sparse.csr_matrix
    neg_entropy: npt.NDArray[np.float64]
    labels: tuple[str, ...]

    @classmethod
    def build(cls, distributions: Sequence[Distribution], labels: Sequence[str]) -> AnchorIndex:
        """Index ``distributions[i]`` (of an anchor labelled ``labels[i]``)."""
        vocabulary: dict[str, int] = {}
        rows: list[int] = []
        columns: list[int] = []
        values: list[float] = []
        neg_entropy = np.zeros(len(distributions))
        for row, found in enumerate(distributions):
            tokens, logprobs = _normalised(found)
            probabilities = np.exp(logprobs)
            neg_entropy[row] = float((probabilities * logprobs).sum())
            for token, probability in zip(tokens, probabilities, strict=True):
                rows.append(row)
                columns.append(vocabulary.setdefault(token, len(vocabulary)))
                values.append(float(probability))
        matrix = sparse.csr_matrix(
            (values, (rows, columns)), shape=(len(distributions), max(1, len(vocabulary)))
        )
        return cls(vocabulary, matrix, neg_entropy, tuple(labels))

    def divergences(self, queries: Sequence[Distribution]) -> npt.NDArray[np.float64]:
        """KL(anchor ‖ query) for every anchor (rows) and query (columns), as in the module."""
        logs = np.zeros((self.probabilities.shape[1], len(queries)))
        for column, found in enumerate(queries):
            tokens = list(found)
            logprobs = np.array([found[token] for token in tokens], dtype=np.float64)
            left = max(1.0 - float(np.exp(logprobs).sum()), 1e-12)
            logs[:, column] = min(float(logprobs.min()), float(np.log(left)))
            for token, value in zip(tokens, logprobs, strict=True):
                place = self.vocabulary.get(token)
                if place is not None:
                    logs[place, column] = value
        cross: npt.NDArray[np.float64] = np.asarray(self.probabilities @ logs)
        return self.neg_entropy[:, None] - cross


def anchor_indices(pool: Pool, anchors: int | None, seed: int) -> list[int]:
    """The pool indices that serve as anchors: all, or ``anchors`` of them chosen by ``seed``.

    The choice ranks examples by a hash of ``seed`` and the example's id (its text when it has
    none), so a pool that holds the same examples as another (a dev split carved from it)
    chooses the same ones among them. Returned in pool order.
    """
    if anchors is None or anchors >= len(pool):
        return list(range(len(pool)))

    def rank(index: int) -> bytes:
        example = pool[index]
        name = example.id if example.id is not None else example.text
        return hashlib.sha256(f"{seed}\x00{name}".encode()).digest()

    return sorted(sorted(range(len(pool)), key=rank)[:anchors])


class KNNPromptingMethod(Method):
    """Predict by the labels of the nearest anchors in next-token-distribution space.

    See the module docstring. Options: ``k`` anchors vote (ties go to the nearest);
    ``anchors``: how many pool examples are anchors (``None``: the whole pool; otherwise a
    seeded choice, see :func:`anchor_indices`); ``top``: tokens kept per distribution;
    ``cache``: ``True`` for the default anchor store, a file path for another, ``False`` for
    none. Needs a backend with next-token distributions (``local``, or an OpenAI-compatible
    server with ``top_logprobs``).

    After :meth:`predict`: ``anchor_forwards_``, the anchor prompts it sent to the model (0
    when the store or this process already had them all), and ``anchors_``, the number of
    anchors.

    Raises:
        ConfigError: if ``k`` or ``top`` is not positive, or ``anchors`` or ``seed`` is
            negative.
    """

    calibrates: ClassVar[bool] = False

    def __init__(
        self,
        k: int = 8,
        anchors: int | None = None,
        top: int = 100,
        seed: int = 0,
        cache: bool | str = True,
    ) -> None:
        self.k = check_int("k", k, minimum=1)
        self.anchors = check_int("anchors", anchors, minimum=1, allow_none=True)
        self.top = check_int("top", top, minimum=1)
        self.seed = check_int("seed", seed)
        self.cache = cache

    def _store(self) -> AnchorStore | None:
        if self.cache is False:
            return None
        return AnchorStore(None if self.cache is True else self.cache)

    def _distributions(
        self, prompts: Sequence[Prompt], backend: Backend, chunk: int = 256
    ) -> tuple[list[Distribution], int]:
        """The distributions of ``prompts`` (from the store where it has them), and how many ran."""
        store = self._store()
        identity = f"{backend.identity}|top={self.top}"
        texts = list(dict.fromkeys(prompt.text for prompt in prompts))
        known = store.get(identity, texts) if store is not None else {}
        missing = [prompt for prompt in prompts if prompt.text not in known]
        missing = list({prompt.text: prompt for prompt in missing}.values())
        if len(missing) > chunk:
            logger.info("computing %d next-token distributions with %s", len(missing), identity)
        for start in range(0, len(missing), chunk):
            part = missing[start : start + chunk]
            found = backend.next_token_logprobs(part, self.top)
            if store is not None:
                store.put(identity, [prompt.text for prompt in part], found)
            known.update(zip((prompt.text for prompt in part), found, strict=True))
        return [known[prompt.text] for prompt in prompts], len(missing)

    def _index(self, builder: PromptBuilder, backend: Backend) -> AnchorIndex:
        pool = builder.pool_
        chosen = [pool[i] for i in anchor_indices(pool, self.anchors, self.seed)]
        prompts = builder.build_batch(chosen)
        labels = [str(example.output) for example in chosen]
        digest = hashlib.sha256(f"{backend.identity}\x00{self.top}".encode())
        for prompt, label in zip(prompts, labels, strict=True):
            digest.update(f"\x00{label}\x00{prompt.text}".encode())
        key = digest.hexdigest()
        self.anchors_ = len(prompts)
        self.anchor_forwards_ = 0
        if key in _RECENT:
            _RECENT.move_to_end(key)
            return _RECENT[key]
        distributions, self.anchor_forwards_ = self._distributions(prompts, backend)
        index = AnchorIndex.build(distributions, labels)
        _RECENT[key] = index
        while len(_RECENT) > _RECENT_SIZE:
            _RECENT.popitem(last=False)
        return index

    def predict(
        self,
        prompts: Sequence[Prompt],
        builder: PromptBuilder,
        backend: Backend,
        labels: Mapping[str, str],
        calibrator: Calibrator | None,
    ) -> list[Prediction]:
        """The vote of each query's ``k`` nearest anchors.

        Raises:
            BackendError: if the backend cannot return next-token distributions or fails.
            ConfigError: for a bad label space.
        """
        space = LabelSpace.from_spec(labels).labels
        index = self._index(builder, backend)
        queries, _ = self._distributions(prompts, backend)
        if not prompts:
            return []
        divergences = index.divergences(queries)
        k = min(self.k, len(index.labels))
        results = []
        for prompt, column in zip(prompts, divergences.T, strict=True):
            nearest = np.argsort(column, kind="stable")[:k]
            voted = vote([index.labels[int(i)] for i in nearest], space)
            results.append(distribution_prediction(prompt, space, voted))
        return results
