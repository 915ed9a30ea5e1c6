"""The baselines added to every grid: majority label, zero-shot, kNN label vote, random sets.

An ICL pipeline is worth its cost only if it beats what needs no demonstrations or no language
model at all. ``iclkit run`` and ``iclkit tune`` add the cells of ``config.baselines``
(:class:`~iclkit.experiment.config.BaselineConfig`) to the grid and mark their rows with a
``baseline`` column:

* ``majority``: the pool's most frequent label (method ``majority``; no model call);
* ``zero-shot``: the base pipeline with ``k = 0`` and no calibration;
* ``knn-vote``: the label vote of the ``k`` nearest pool examples by the bundled
  all-MiniLM-L6-v2 embeddings (selector ``knn``, method ``knn-vote``; no model call), with
  ``k`` the best of ``knn_vote_k`` on the dev split (:func:`choose_vote_k`);
* ``random``: the base pipeline (no calibration) on fixed random demonstration sets, one per
  seed (selector ``random`` with ``per_query: false``).

A grid cell equal to a baseline runs once and carries the mark.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from iclkit.experiment.config import ExperimentConfig
from iclkit.experiment.data import ExperimentData
from iclkit.experiment.grid import Cell, cells_of
from iclkit.methods.voting import vote
from iclkit.metrics import accuracy


@dataclass(frozen=True)
class Baselines:
    """The baseline cells of a plan, which baseline each is, and how ``knn-vote``'s k was chosen.

    ``names`` maps a cell id to its baseline's name; ``info`` is what ``run.json`` records
    (for ``knn-vote``: the chosen ``k``, and the dev accuracy of every candidate ``k``).
    """

    cells: list[Cell] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def choose_vote_k(dev: ExperimentData, candidates: list[int]) -> tuple[int, dict[int, float]]:
    """The ``k`` whose nearest-neighbour vote is most accurate on ``dev`` (ties: the smallest).

    Neighbours come from ``dev.pool`` (the pool without the dev examples) by the bundled
    embeddings; each dev example ``dev.eval`` is classified once per candidate ``k`` from one
    search. Returns the chosen ``k`` and the accuracy of each candidate (those above the pool
    size are left out).

    Raises:
        ConfigError: if the embedder cannot be loaded.
        DataError: for an empty input text.
    """
    from iclkit.selectors.knn import KNNSelector

    pool, queries = dev.pool, list(dev.eval)
    usable = sorted({k for k in candidates if k <= len(pool)}) or [len(pool)]
    selector = KNNSelector().fit(pool)
    found = selector.select_batch(queries, max(usable), exclude=[pool.matches(q) for q in queries])
    space = sorted({str(example.output) for example in pool} | {str(q.output) for q in queries})
    gold = [str(query.output) for query in queries]
    scores = {}
    for k in usable:
        predicted = []
        for selection in found:
            shares = vote([pool[i].output for i in selection.indices[:k]], space)
            predicted.append(space[int(shares.argmax())])
        scores[k] = accuracy(gold, predicted)
    best = max(usable, key=lambda k: (scores[k], -k))
    return best, scores


def baseline_cells(
    config: ExperimentConfig, pool_size: int, context: str, dev: ExperimentData | None
) -> Baselines:
    """The cells of ``config.baselines`` for a pool of ``pool_size`` examples.

    ``dev`` is the split ``knn-vote``'s ``k`` is chosen on (see :func:`choose_vote_k`); it is
    needed only when ``knn-vote`` is included. Baselines that cannot run on the pool (``k``
    larger than the pool) are left out.

    Raises:
        ConfigError: if the embedder cannot be loaded.
    """
    wanted = config.baselines
    base = config.base_spec()
    base.pop("seed", None)
    classifier = dict(base.get("classifier") or {})
    classifier.pop("calibration", None)
    plain = {**base, "classifier": classifier}
    specs: list[tuple[str, dict[str, Any]]] = []
    info: dict[str, Any] = {}
    for name in wanted.include:
        if name == "majority":
            specs.append((name, {**plain, "k": 0, "classifier": {"method": "majority"}}))
        elif name == "zero-shot":
            specs.append((name, {**plain, "k": 0}))
        elif name == "knn-vote" and dev is not None:
            k, scores = choose_vote_k(dev, list(wanted.knn_vote_k))
            info[name] = {"k": k, "dev_accuracy": scores, "dev_size": len(dev.eval)}
            voting = {"selector": {"name": "knn"}, "classifier": {"method": "knn-vote"}}
            specs.append((name, {**plain, **voting, "k": k}))
        elif name == "random" and wanted.random_k <= pool_size:
            selector = {"name": "random", "per_query": False}
            for seed in wanted.random_seeds:
                specs.append(
                    (name, {**plain, "selector": selector, "k": wanted.random_k, "seed": seed})
                )
    result = Baselines(info=info)
    for baseline, raw in specs:
        for cell in cells_of(copy.deepcopy(raw), context):
            if cell.id not in result.names:
                result.cells.append(cell)
                result.names[cell.id] = baseline
    return result
