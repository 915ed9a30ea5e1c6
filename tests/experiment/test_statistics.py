"""Bootstrap intervals, paired tests, calibration and confusion of a run's predictions.

The record lists are built here so that the right answer is known in closed form; the same
functions run on a real run's records in test_html_report.py.
"""

import math

import numpy as np
import pytest

from iclkit.experiment.statistics import (
    _encoded,
    _statistic,
    add_intervals,
    compare,
    confusion,
    members_of,
    metric_interval,
    reliability,
)
from iclkit.metrics import accuracy, macro_f1

LABELS = ["neg", "pos", "neutral"]


def cell(outcomes, cell_id="c", labels=LABELS, offset=0):
    """Records of one cell: query i has gold labels[(i + offset) % 3].

    Outcome True: predicted right; False: predicted the next label (wrong); None: an answer
    that maps to no label.
    """
    records = []
    for i, outcome in enumerate(outcomes):
        position = (i + offset) % len(labels)
        gold = labels[position]
        prediction = {True: gold, False: labels[(position + 1) % len(labels)]}.get(outcome)
        records.append({"cell": cell_id, "query": f"q{i}", "gold": gold, "prediction": prediction})
    return records


def draws(n, p, seed):
    """n outcomes, right with probability p, else wrong or (one in four) unmapped."""
    rng = np.random.default_rng(seed)
    return [
        True if rng.random() < p else (None if rng.random() < 0.25 else False) for _ in range(n)
    ]


def test_interval_is_around_the_metric_and_as_wide_as_the_normal_approximation():
    records = cell(draws(400, 0.7, seed=1))
    found = metric_interval([records], LABELS)
    assert found.estimate == accuracy(
        [r["gold"] for r in records], [r["prediction"] for r in records]
    )
    assert found.low < found.estimate < found.high
    half_width = 1.96 * math.sqrt(found.estimate * (1 - found.estimate) / 400)
    assert (found.high - found.low) / 2 == pytest.approx(half_width, rel=0.12)
    assert metric_interval([records], LABELS) == found  # seeded: a re-render gives the same
    f1 = metric_interval([records], LABELS, "macro_f1")
    gold, predicted = [r["gold"] for r in records], [r["prediction"] for r in records]
    assert f1.estimate == macro_f1(gold, predicted, LABELS)
    assert f1.low < f1.estimate < f1.high


def test_resampled_macro_f1_equals_the_metrics_module_on_every_resample():
    cells = [cell(draws(60, p, seed=s), offset=0) for s, p in enumerate((0.5, 0.7, 0.9))]
    queries = [r["query"] for r in cells[0]]
    gold, predicted = _encoded(cells, queries, LABELS)
    statistic = _statistic("macro_f1", gold, predicted, len(LABELS))
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 60, size=(5, 60))
    for row, value in zip(idx, statistic(idx), strict=True):
        expected = np.mean(
            [
                macro_f1(
                    [records[i]["gold"] for i in row],
                    [records[i]["prediction"] for i in row],
                    LABELS,
                )
                for records in cells
            ]
        )
        assert value == pytest.approx(expected, abs=1e-12)


def test_seeds_are_averaged_and_only_shared_queries_count():
    a, b = cell([True] * 10, "a"), cell([True] * 5 + [False] * 5, "b")
    found = metric_interval([a, b[:8]], LABELS)  # b has 8 queries: q8, q9 are left out
    assert found.estimate == pytest.approx((1.0 + 5 / 8) / 2)
    with pytest.raises(ValueError, match="share no evaluation query"):
        metric_interval([a[:2], a[5:]], LABELS)


def test_mcnemar_for_two_cells():
    # a is right where b is wrong on 10 queries, b right where a is wrong on 2, both on 8.
    a = cell([True] * 18 + [False] * 2, "a", offset=1)
    b = cell([False] * 10 + [True] * 10, "b", offset=1)
    result = compare([a], [b])
    assert result.test == "McNemar exact" and result.n == 20
    assert result.accuracy_a == 0.9 and result.accuracy_b == 0.5
    # Exact two-sided binomial: 2 * P(X >= 10 | n = 12, p = 1/2) = 2 * 79 / 4096.
    assert result.p_value == pytest.approx(2 * 79 / 4096)
    assert result.difference.estimate == pytest.approx(0.4)
    assert result.difference.low > 0 and result.difference.high <= 1
    same = compare([a], [a])
    assert same.p_value == 1.0 and same.difference.estimate == 0


def test_paired_permutation_for_groups_of_seeds():
    good = [cell(draws(150, 0.85, seed=s), f"g{s}") for s in range(3)]
    bad = [cell(draws(150, 0.55, seed=10 + s), f"b{s}") for s in range(3)]
    result = compare(good, bad)
    assert result.test == "paired permutation"
    assert result.p_value < 0.01 and result.difference.low > 0.15
    alike = compare(good, [cell(draws(150, 0.85, seed=s + 20)) for s in range(3)])
    assert alike.p_value > 0.05 and alike.difference.low < 0 < alike.difference.high


def test_reliability_bins_and_expected_calibration_error():
    records = [
        {"prediction": "pos", "gold": "pos", "probabilities": {"pos": 0.95, "neg": 0.05}},
        {"prediction": "pos", "gold": "neg", "probabilities": {"pos": 0.91, "neg": 0.09}},
        {"prediction": "neg", "gold": "neg", "probabilities": {"pos": 0.4, "neg": 0.6}},
        {"prediction": "neg", "gold": "neg", "probabilities": {"pos": 0.35, "neg": 0.65}},
    ]
    found = reliability(records)
    assert found is not None
    assert found.count == [2, 2]
    assert found.confidence == pytest.approx([0.625, 0.93])
    assert found.accuracy == [1.0, 0.5]
    assert found.ece == pytest.approx(0.5 * (1 - 0.625) + 0.5 * (0.93 - 0.5))
    assert reliability([{"prediction": "x", "gold": "x", "probabilities": {}}]) is None
    with pytest.raises(ValueError, match="bins"):
        reliability(records, bins=0)


def test_confusion_counts_and_unmapped_answers():
    records = cell([True, True, False, None, True, False])
    found = confusion(records, LABELS)
    assert found.columns == [*LABELS, "(none)"]
    # gold per query: neg, pos, neutral, neg, pos, neutral; False predicts the next label.
    assert found.counts == [[1, 0, 0, 1], [0, 2, 0, 0], [2, 0, 0, 0]]
    assert confusion(cell([True] * 3), LABELS).columns == LABELS


def test_over_seeds_rows_get_the_interval_of_their_cells():
    cells = [
        {"cell": "s0", "selector": "random", "k": 4, "seed": 0, "complete": True},
        {"cell": "s1", "selector": "random", "k": 4, "seed": 1, "complete": True},
        {"cell": "n", "selector": "knn", "k": 4, "seed": "-", "complete": True},
    ]
    records = [
        *cell(draws(50, 0.6, 1), "s0"),
        *cell(draws(50, 0.8, 2), "s1"),
        *cell(draws(50, 0.7, 3), "n"),
    ]
    group = {"selector": "random", "k": 4, "seeds": 2, "accuracy_mean": 0.7}
    assert members_of(group, cells) == ["s0", "s1"]
    assert members_of(cells[2], cells) == ["n"]
    add_intervals([group, cells[2]], cells, records, LABELS)
    expected = metric_interval(
        [[r for r in records if r["cell"] == c] for c in ("s0", "s1")], LABELS
    )
    assert (group["accuracy_low"], group["accuracy_high"]) == (expected.low, expected.high)
    assert cells[2]["macro_f1_low"] < cells[2]["macro_f1_high"]
