import itertools
import math

import pytest

from iclkit.example import Example
from iclkit.experiment.ablations import permutation_order, permute, relabel, verbalizer_for
from iclkit.experiment.metrics import accuracy, macro_f1, mean_std
from iclkit.prompt import Demonstration

LABELS = ["negative", "neutral", "positive"]


def _demos(labels):
    return [
        Demonstration(
            index=10 + i,
            score=None,
            rank=i,
            example=Example(input=f"text {i}", output=label, id=f"d{i}"),
        )
        for i, label in enumerate(labels)
    ]


def test_permutations_are_distinct_identity_first_and_stable():
    orders = [permutation_order(4, p, seed=3) for p in range(math.factorial(4))]
    assert orders[0] == (0, 1, 2, 3)
    assert len(set(orders)) == 24
    assert set(orders) == set(itertools.permutations(range(4)))
    assert [permutation_order(4, p, seed=3) for p in range(5)] == orders[:5]
    assert [permutation_order(4, p, seed=4) for p in range(1, 6)] != orders[1:6]
    with pytest.raises(ValueError, match="24 orders"):
        permutation_order(4, 24, seed=0)


def test_permute_moves_whole_demonstrations():
    demos = _demos(["negative", "positive", "neutral", "positive"])
    moved = permute(demos, 2, seed=0)
    assert sorted(d.index for d in moved) == [10, 11, 12, 13]
    assert [d.index - 10 for d in moved] == list(permutation_order(4, 2, seed=0))


def test_flipped_labels_shift_to_the_next_label():
    demos = _demos(["negative", "neutral", "positive"])
    flipped = relabel(demos, "flipped", LABELS, seed=0)
    assert [d.example.output for d in flipped] == ["neutral", "positive", "negative"]
    assert [d.example.input for d in flipped] == [d.example.input for d in demos]
    binary = relabel(_demos(["a", "b", "a"]), "flipped", ["a", "b"], seed=0)
    assert [d.example.output for d in binary] == ["b", "a", "b"]


def test_random_labels_are_uniform_seeded_and_fixed_per_demonstration():
    demos = [
        Demonstration(
            index=i, score=None, rank=0, example=Example(input=f"t{i}", output="negative")
        )
        for i in range(3000)
    ]
    drawn = [d.example.output for d in relabel(demos, "random", LABELS, seed=1)]
    counts = {label: drawn.count(label) / len(drawn) for label in LABELS}
    assert all(abs(share - 1 / 3) < 0.04 for share in counts.values())
    assert drawn == [d.example.output for d in relabel(demos, "random", LABELS, seed=1)]
    assert drawn != [d.example.output for d in relabel(demos, "random", LABELS, seed=2)]
    # The same pool example keeps its random label wherever it appears.
    assert relabel(demos[5:6], "random", LABELS, seed=1)[0].example.output == drawn[5]


def test_gold_and_unrelated_keep_labels_and_unrelated_changes_words():
    demos = _demos(["negative", "positive"])
    assert relabel(demos, "gold", LABELS, seed=0) == demos
    assert relabel(demos, "unrelated", LABELS, seed=0) == demos
    words = {"negative": "bad", "positive": "good"}
    assert verbalizer_for("unrelated", words, ["foo", "bar"]) == {
        "negative": "foo",
        "positive": "bar",
    }
    assert verbalizer_for("flipped", words, ["foo", "bar"]) == words
    with pytest.raises(ValueError, match="unknown label mode"):
        relabel(demos, "shuffled", LABELS, seed=0)


def test_accuracy_and_macro_f1():
    gold = ["a", "a", "b", "b"]
    assert accuracy(gold, gold) == 1.0 and macro_f1(gold, gold, ["a", "b"]) == 1.0
    predicted = ["a", "b", "b", "b"]
    assert accuracy(gold, predicted) == 0.75
    f1_a = 2 * 1 / (1 + 2)
    f1_b = 2 * 2 / (3 + 2)
    assert macro_f1(gold, predicted, ["a", "b"]) == pytest.approx((f1_a + f1_b) / 2)
    # An unparsable prediction (None) is a miss of its gold label, nobody's false positive.
    assert macro_f1(gold, ["a", None, "b", "b"], ["a", "b"]) == pytest.approx((2 / 3 + 1) / 2)
    # A label that is never gold and never predicted counts 0 in the mean.
    assert macro_f1(gold, gold, ["a", "b", "c"]) == pytest.approx(2 / 3)
    assert mean_std([0.5, 0.7]) == pytest.approx((0.6, math.sqrt(0.02)))
    assert mean_std([0.5]) == (0.5, 0.0)
