"""How far a run's numbers can be trusted: bootstrap intervals, paired tests, calibration.

* :func:`metric_interval`: a 95% bootstrap confidence interval for the accuracy or macro-F1 of
  one cell, or of several cells that differ only in their seed (then the statistic is the
  mean over seeds). The evaluation queries are what is resampled: the same resample of
  queries is used for every seed of the group.
* :func:`compare`: two cells (or two groups of seeds) on the same queries: the accuracy
  difference with its paired bootstrap interval, and a p-value: McNemar's exact test for
  two single cells, a paired permutation test (each query's two results swapped at random)
  for groups of seeds.
* :func:`reliability` and :func:`confusion`: the calibration (reliability bins, expected
  calibration error) and the confusion matrix of a cell's predictions.

Resampling goes through :func:`scipy.stats.bootstrap` and :func:`scipy.stats.permutation_test`
with a fixed seed, so a report renders the same numbers every time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from iclkit.experiment.tables import CELL_COLUMNS
from iclkit.metrics import accuracy, macro_f1

Records = Sequence[Mapping[str, Any]]
Metric = Literal["accuracy", "macro_f1"]

#: Bootstrap and permutation resamples. 2,000 keep the intervals of a 98-cell grid to
#: seconds; the bounds of a 95% interval over 100 queries then move by about 0.004 (standard
#: deviation) from one resampling seed to another.
DEFAULT_RESAMPLES = 2000
#: Equal-width confidence bins of the reliability diagram and the calibration error.
DEFAULT_BINS = 10

_Statistic = Callable[[npt.NDArray[np.int64]], npt.NDArray[np.float64]]


@dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval ``[low, high]`` at ``level``."""

    estimate: float
    low: float
    high: float
    level: float = 0.95


@dataclass(frozen=True)
class Comparison:
    """Two cells (or groups of seeds) compared on the queries they share.

    ``difference`` is accuracy a − accuracy b with its paired bootstrap interval; ``p_value``
    is two-sided, from ``test`` (``"McNemar exact"`` or ``"paired permutation"``).
    """

    n: int
    accuracy_a: float
    accuracy_b: float
    difference: Interval
    p_value: float
    test: str


@dataclass(frozen=True)
class Reliability:
    """A cell's calibration: per confidence bin, the mean confidence and the accuracy.

    Confidence is the probability of the predicted label. Only non-empty bins are listed.
    ``ece`` is the expected calibration error: the mean of |accuracy − confidence| over the
    bins, weighted by their share of the predictions.
    """

    ece: float
    confidence: list[float]
    accuracy: list[float]
    count: list[int]


@dataclass(frozen=True)
class Confusion:
    """Counts of gold label (rows, ``labels``) × predicted label (columns, ``columns``).

    ``columns`` is ``labels``, plus ``"(none)"`` when some prediction is not a label (an
    answer a generation classifier could not map).
    """

    labels: list[str]
    columns: list[str]
    counts: list[list[int]]


def _shared_queries(cells: Sequence[Records]) -> list[str]:
    """The query ids every cell has a record for, in the first cell's order."""
    if not cells:
        return []
    common = set.intersection(*({str(r["query"]) for r in records} for records in cells))
    return [str(r["query"]) for r in cells[0] if str(r["query"]) in common]


def _by_query(records: Records) -> dict[str, Mapping[str, Any]]:
    return {str(record["query"]): record for record in records}


def _encoded(
    cells: Sequence[Records], queries: Sequence[str], labels: Sequence[str]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Gold and predicted label indices, one row per cell (-1: a prediction outside labels)."""
    index = {label: i for i, label in enumerate(labels)}
    gold = np.empty((len(cells), len(queries)), dtype=np.int64)
    predicted = np.empty_like(gold)
    for row, records in enumerate(cells):
        found = _by_query(records)
        for column, query in enumerate(queries):
            gold[row, column] = index.get(str(found[query]["gold"]), -2)
            predicted[row, column] = index.get(str(found[query]["prediction"]), -1)
    return gold, predicted


def _statistic(
    metric: Metric, gold: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64], n_labels: int
) -> _Statistic:
    """The metric of resampled query indices (any leading shape), averaged over the cells."""
    if metric == "accuracy":
        correct = (gold == predicted).astype(np.float64)

        def mean_accuracy(idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
            result: npt.NDArray[np.float64] = correct[:, idx].mean(axis=-1).mean(axis=0)
            return result

        return mean_accuracy

    # Each (gold, predicted) pair as one code: a resample's confusion matrices are one bincount.
    width = n_labels + 1  # predicted -1 (not a label) gets the last column
    codes = np.where(gold >= 0, gold, n_labels) * width + np.where(
        predicted >= 0, predicted, n_labels
    )
    size = width * width

    def mean_macro_f1(idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        picked = codes[:, idx]  # (cells, ..., n)
        rows = picked.reshape(-1, picked.shape[-1])
        offsets = np.arange(len(rows))[:, None] * size
        counts = np.bincount((rows + offsets).ravel(), minlength=len(rows) * size)
        matrices = counts.reshape(len(rows), width, width)[:, :n_labels]  # gold rows: labels
        true_pos = np.diagonal(matrices[:, :, :n_labels], axis1=1, axis2=2)
        denominator = matrices.sum(axis=2) + matrices[:, :, :n_labels].sum(axis=1)
        scores = np.divide(
            2.0 * true_pos, denominator, out=np.zeros(denominator.shape), where=denominator > 0
        )
        per_row = scores.mean(axis=1).reshape(picked.shape[:-1])
        result: npt.NDArray[np.float64] = per_row.mean(axis=0)
        return result

    return mean_macro_f1


def _bootstrap(
    statistic: _Statistic, n: int, estimate: float, level: float, resamples: int, seed: int
) -> Interval:
    """Percentile bootstrap interval of ``statistic`` over ``n`` resampled query indices."""
    from scipy.stats import bootstrap

    result = bootstrap(
        (np.arange(n),),
        lambda idx, axis: statistic(idx),
        vectorized=True,
        n_resamples=resamples,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return Interval(estimate, float(interval.low), float(interval.high), level)


def metric_interval(
    cells: Sequence[Records],
    labels: Sequence[str],
    metric: Metric = "accuracy",
    *,
    level: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """The bootstrap confidence interval of a cell's accuracy or macro-F1.

    ``cells`` holds the records of one cell, or of several cells that differ only in their
    seed: the estimate is then the mean over them, and each resample of the queries is shared
    by all of them. Only the queries every cell has predicted count. The estimate is
    :func:`~iclkit.metrics.accuracy` or
    :func:`~iclkit.metrics.macro_f1` (averaged over the cells).

    Raises:
        ValueError: if the cells share no query, or ``metric`` is unknown.
    """
    queries = _shared_queries(cells)
    if not queries:
        raise ValueError("the cells share no evaluation query; nothing to resample")
    if metric not in ("accuracy", "macro_f1"):
        raise ValueError(f"metric must be 'accuracy' or 'macro_f1', got {metric!r}")
    estimates = []
    for records in cells:
        found = _by_query(records)
        gold = [str(found[q]["gold"]) for q in queries]
        predicted = [found[q]["prediction"] for q in queries]
        value = (
            accuracy(gold, predicted) if metric == "accuracy" else macro_f1(gold, predicted, labels)
        )
        estimates.append(value)
    gold_ids, predicted_ids = _encoded(cells, queries, labels)
    statistic = _statistic(metric, gold_ids, predicted_ids, len(labels))
    estimate = float(np.mean(estimates))
    return _bootstrap(statistic, len(queries), estimate, level, resamples, seed)


def _correct(cells: Sequence[Records], queries: Sequence[str]) -> npt.NDArray[np.float64]:
    """Per query, the share of the cells that predicted it right."""
    rows = []
    for records in cells:
        found = _by_query(records)
        rows.append([found[q]["prediction"] == found[q]["gold"] for q in queries])
    shares: npt.NDArray[np.float64] = np.asarray(rows, dtype=np.float64).mean(axis=0)
    return shares


def compare(
    a: Sequence[Records],
    b: Sequence[Records],
    *,
    level: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Comparison:
    """Compare the accuracy of ``a`` and ``b`` on the evaluation queries both have predicted.

    Each side is one cell's records or several seeds' (whose per-query results are averaged).
    Two single cells get McNemar's exact test (a binomial test on the queries exactly one of
    them got right); groups get a paired permutation test of the mean difference. The
    interval of the difference is a paired bootstrap over the queries.

    Raises:
        ValueError: if the two sides share no query.
    """
    from scipy.stats import binomtest, permutation_test

    queries = _shared_queries([*a, *b])
    if not queries:
        raise ValueError("the two sides share no evaluation query; they cannot be paired")
    right_a, right_b = _correct(a, queries), _correct(b, queries)
    difference = right_a - right_b
    if len(a) == 1 and len(b) == 1:
        only_a = int(np.sum(difference > 0))
        only_b = int(np.sum(difference < 0))
        discordant = only_a + only_b
        p_value = binomtest(only_a, discordant).pvalue if discordant else 1.0
        test = "McNemar exact"
    else:
        result = permutation_test(
            (right_a, right_b),
            lambda x, y, axis: np.mean(x - y, axis=axis),
            permutation_type="samples",
            vectorized=True,
            n_resamples=resamples,
            rng=np.random.default_rng(seed),
        )
        p_value, test = float(result.pvalue), "paired permutation"

    def mean_difference(idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        means: npt.NDArray[np.float64] = difference[idx].mean(axis=-1)
        return means

    estimate = float(difference.mean())
    interval = _bootstrap(mean_difference, len(queries), estimate, level, resamples, seed)
    return Comparison(
        n=len(queries),
        accuracy_a=float(right_a.mean()),
        accuracy_b=float(right_b.mean()),
        difference=interval,
        p_value=float(p_value),
        test=test,
    )


def reliability(records: Records, bins: int = DEFAULT_BINS) -> Reliability | None:
    """The reliability bins and expected calibration error of one cell's predictions.

    Uses the records that carry label probabilities (``None`` when none does: a generation
    cell). Bins are ``bins`` equal-width confidence intervals of [0, 1].

    Raises:
        ValueError: if ``bins`` is not positive.
    """
    if bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins}")
    scored = [r for r in records if r.get("probabilities")]
    if not scored:
        return None
    confidence = np.array([max(r["probabilities"].values()) for r in scored], dtype=np.float64)
    correct = np.array([r["prediction"] == r["gold"] for r in scored], dtype=np.float64)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    means, rights, counts = [], [], []
    ece = 0.0
    for number in range(bins):
        members = which == number
        count = int(members.sum())
        if not count:
            continue
        means.append(float(confidence[members].mean()))
        rights.append(float(correct[members].mean()))
        counts.append(count)
        ece += count / len(scored) * abs(rights[-1] - means[-1])
    return Reliability(ece=ece, confidence=means, accuracy=rights, count=counts)


def confusion(records: Records, labels: Sequence[str]) -> Confusion:
    """The confusion matrix of one cell's predictions over ``labels``."""
    columns = list(labels)
    if any(r["prediction"] not in labels for r in records):
        columns.append("(none)")
    position = {label: i for i, label in enumerate(columns)}
    counts = [[0] * len(columns) for _ in labels]
    rows = {label: i for i, label in enumerate(labels)}
    for record in records:
        if record["gold"] in rows:
            column = position.get(record["prediction"], len(columns) - 1)
            counts[rows[record["gold"]]][column] += 1
    return Confusion(labels=list(labels), columns=columns, counts=counts)


def members_of(row: Mapping[str, Any], cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ids of the complete cells a table row stands for.

    A per-cell row (it has ``cell``) stands for itself; an over-seeds row for every complete
    cell that has its settings (its :data:`~iclkit.experiment.tables.CELL_COLUMNS`, but
    ``seed``).
    """
    if "cell" in row:
        return [str(row["cell"])]
    settings = [column for column in CELL_COLUMNS if column != "seed" and column in row]
    return [
        str(cell["cell"])
        for cell in cells
        if cell["complete"] and all(cell[key] == row[key] for key in settings)
    ]


def add_intervals(
    table: Sequence[dict[str, Any]],
    cells: Sequence[Mapping[str, Any]],
    records: Records,
    labels: Sequence[str],
    *,
    resamples: int = DEFAULT_RESAMPLES,
) -> None:
    """Add ``accuracy_low``/``_high`` and ``macro_f1_low``/``_high`` to every row of ``table``.

    ``table`` holds per-cell rows or over-seeds rows (see :func:`members_of`); ``cells`` are
    the per-cell rows and ``records`` the run's predictions. A row with no predictions gets
    ``None`` bounds.
    """
    by_cell: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_cell.setdefault(str(record["cell"]), []).append(record)
    for row in table:
        group = [by_cell[cell] for cell in members_of(row, cells) if by_cell.get(cell)]
        for metric in ("accuracy", "macro_f1"):
            try:
                found = metric_interval(group, labels, metric, resamples=resamples)
                row[f"{metric}_low"], row[f"{metric}_high"] = found.low, found.high
            except ValueError:  # no predictions yet
                row[f"{metric}_low"] = row[f"{metric}_high"] = None
