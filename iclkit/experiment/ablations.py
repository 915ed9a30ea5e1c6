"""The literature's demonstration ablations: label transforms and demonstration permutations.

* ``random`` labels (Min et al. 2022, "Rethinking the Role of Demonstrations"): each
  demonstration gets a label drawn uniformly from the label space (seeded per seed and pool
  example, so a demonstration keeps its random label across queries).
* ``flipped`` labels (Wei et al. 2023): every label is replaced by the next one in the label
  space order (for two labels, the other one).
* ``unrelated`` labels (Wei et al. 2023, SUL-ICL): labels are kept but shown, and scored, as
  semantically unrelated words (``foo``, ``bar``, ...).
* Permutations (Lu et al. 2022, "Fantastically Ordered Prompts"): the same demonstrations in
  several orders; order 0 is the orderer's own order, the others distinct seeded permutations
  applied by position, the same for every query.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from iclkit.prompt import Demonstration


def permutation_order(k: int, permutation: int, seed: int) -> tuple[int, ...]:
    """The ``permutation``-th distinct order of ``k`` positions drawn from ``seed``.

    Order 0 is the identity; orders 1, 2, ... are distinct random permutations (the first
    ``n`` are the same whatever ``n`` is asked for).

    Raises:
        ValueError: if ``permutation`` is not below ``k!`` (there are not that many orders).
    """
    if not 0 <= permutation < math.factorial(k):
        raise ValueError(
            f"{k} demonstrations have {math.factorial(k)} orders, not {permutation + 1}"
        )
    rng = np.random.default_rng([seed, k])
    seen = [tuple(range(k))]
    while len(seen) <= permutation:
        order = tuple(int(i) for i in rng.permutation(k))
        if order not in seen:
            seen.append(order)
    return seen[permutation]


def permute(
    demonstrations: Sequence[Demonstration], permutation: int, seed: int
) -> list[Demonstration]:
    """The demonstrations rearranged by :func:`permutation_order` (position by position)."""
    order = permutation_order(len(demonstrations), permutation, seed)
    return [demonstrations[i] for i in order]


def relabel(
    demonstrations: Sequence[Demonstration], mode: str, labels: Sequence[str], seed: int
) -> list[Demonstration]:
    """The demonstrations with their labels transformed for a label-mode ablation.

    ``gold`` and ``unrelated`` keep the labels (``unrelated`` changes the verbalizer instead,
    see :func:`verbalizer_for`); ``random`` and ``flipped`` replace them as described in the
    module docstring.

    Raises:
        ValueError: for an unknown mode or a demonstration whose label is not in ``labels``.
    """
    if mode in ("gold", "unrelated"):
        return list(demonstrations)
    if mode not in ("random", "flipped"):
        raise ValueError(f"unknown label mode {mode!r}; allowed: gold, random, flipped, unrelated")
    changed = []
    for demo in demonstrations:
        if mode == "random":
            draw = np.random.default_rng([seed, demo.index]).integers(len(labels))
            label = labels[int(draw)]
        else:
            if demo.example.output not in labels:
                raise ValueError(f"label {demo.example.output!r} is not in {list(labels)}")
            label = labels[(labels.index(str(demo.example.output)) + 1) % len(labels)]
        example = demo.example.model_copy(update={"output": label})
        changed.append(demo.model_copy(update={"example": example}))
    return changed


def verbalizer_for(mode: str, words: dict[str, str], unrelated: Sequence[str]) -> dict[str, str]:
    """Label → word shown and scored: ``words``, or the unrelated words for ``unrelated``."""
    if mode == "unrelated":
        return {label: unrelated[i] for i, label in enumerate(words)}
    return dict(words)
