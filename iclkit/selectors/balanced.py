"""The ``balanced`` selector: label-balanced random demonstrations."""

from __future__ import annotations

from collections import defaultdict

from iclkit.example import Example
from iclkit.seeding import query_rng
from iclkit.selectors.base import Selection, Selector
from iclkit.validation import check_int


class BalancedSelector(Selector):
    """Pick ``k`` random demonstrations with the labels as equal in number as possible.

    Each label gets ``k // n_labels`` demonstrations; the remaining ``k % n_labels`` go to
    labels drawn at random. A label with too few examples gives its share to the others.
    Draws are seeded per query as in :class:`~iclkit.selectors.random.RandomSelector`. The
    selection is returned round-robin by label (no label clusters at one end). Scores are
    ``None``.

    Raises:
        ConfigError: if ``seed`` is negative.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = check_int("seed", seed)

    def select(self, query: Example, k: int, *, exclude: frozenset[int] = frozenset()) -> Selection:
        """Draw up to ``k`` label-balanced pool indices outside ``exclude``."""
        rng = query_rng(self.seed, query, salt="balanced-selector")
        by_label: dict[str, list[int]] = defaultdict(list)
        for index in self.candidates(exclude):
            by_label[str(self.pool[index].output)].append(index)
        queues = {
            label: [members[i] for i in rng.permutation(len(members))]
            for label, members in sorted(by_label.items())
        }
        labels = list(queues)
        # Label visiting order for the leftover slots is random; the base share is equal.
        labels = [labels[i] for i in rng.permutation(len(labels))]
        chosen: list[int] = []
        while len(chosen) < k and any(queues.values()):
            for label in labels:
                if queues[label] and len(chosen) < k:
                    chosen.append(queues[label].pop(0))
        return Selection(indices=tuple(chosen), scores=(None,) * len(chosen))
