"""The literature's ablations: the transforms themselves, then as cells of a real run."""

import itertools
import json
import math
from collections import defaultdict

import pytest

from iclkit.backends.local import LocalBackend
from iclkit.example import Example
from iclkit.experiment import render_report
from iclkit.experiment.ablations import permutation_order, permute, relabel, verbalizer_for
from iclkit.experiment.tables import mean_std
from iclkit.metrics import accuracy, macro_f1
from iclkit.prompt import Demonstration
from iclkit.registry import formatters

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


# -- the ablations as cells of the session's real run (tests/experiment/conftest.py) ----------


def _first_k2(shared_run, permutation=0):
    """Records of the cells over the first two pool examples: ``{label mode: {query: record}}``."""
    records = [json.loads(line) for line in (shared_run.folder / "results.jsonl").open()]
    table = defaultdict(dict)
    for record in records:
        params = record["params"]
        if params["selector"]["name"] == "first" and (params["permutation"] == permutation):
            table[params["label_mode"]][record["query"]] = record
    return table


@pytest.mark.slow
def test_label_ablation_cells_record_the_labels_they_showed(shared_run):
    table = _first_k2(shared_run)
    assert set(table) == {"gold", "random", "flipped", "unrelated"}
    pool_label = {str(example.id): example.output for example in shared_run.plan.data.pool}
    labels = list(shared_run.plan.config.data.labels)
    swap = {"negative": "positive", "positive": "negative"}
    random_label = {}
    for query, gold in table["gold"].items():
        assert gold["demo_labels"] == [pool_label[demo] for demo in gold["demos"]]
        for mode in ("random", "flipped", "unrelated"):
            record = table[mode][query]
            assert record["demos"] == gold["demos"]  # same demonstrations, other labels
            assert record["prediction"] in labels and set(record["scores"]) == set(labels)
        assert table["flipped"][query]["demo_labels"] == [swap[x] for x in gold["demo_labels"]]
        assert table["unrelated"][query]["demo_labels"] == gold["demo_labels"]
        for demo, label in zip(gold["demos"], table["random"][query]["demo_labels"], strict=True):
            assert label in labels
            # A pool example keeps its random label in every prompt it appears in.
            assert random_label.setdefault(demo, label) == label


@pytest.mark.slow
def test_unrelated_labels_are_shown_and_scored_as_foo_bar(shared_run, single_thread):
    table = _first_k2(shared_run)
    query_id, record = next(iter(table["unrelated"].items()))
    data = shared_run.plan.data
    pool = {str(example.id): (index, example) for index, example in enumerate(data.pool)}
    query = next(example for example in data.eval if str(example.id) == query_id)
    demos = [
        Demonstration(index=pool[demo][0], score=None, rank=rank, example=pool[demo][1])
        for rank, demo in enumerate(record["demos"])
    ]
    config = shared_run.plan.config
    assert config.run.unrelated_labels[:2] == ["foo", "bar"]
    words = dict(zip(config.data.labels, ["foo", "bar"], strict=False))
    formatter = formatters.create({**config.pipeline["formatter"], "verbalizer": words})
    prompt = formatter.format(query, demos)
    assert "Sentiment: foo" in prompt.text or "Sentiment: bar" in prompt.text
    continuations = [[prompt.answer_prefix + words[label] for label in words]]
    scores = LocalBackend().score([prompt], continuations)[0]
    for label, score in zip(words, scores, strict=True):
        assert record["scores"][label] == pytest.approx(score.logprob, rel=1e-4, abs=1e-4)
    gold = table["gold"][query_id]["scores"]
    assert any(abs(gold[label] - record["scores"][label]) > 1e-3 for label in words)


@pytest.mark.slow
def test_permutations_reorder_the_same_demonstrations(shared_run, tmp_path):
    first, second = _first_k2(shared_run, 0)["gold"], _first_k2(shared_run, 1)["gold"]
    assert first.keys() == second.keys() and first
    for query, record in first.items():
        # k = 2 has two orders: as selected, then swapped; each label moves with its example.
        assert second[query]["demos"] == record["demos"][::-1]
        assert second[query]["demo_labels"] == record["demo_labels"][::-1]
    # A different order is a different prompt: the model's scores change.
    assert any(
        abs(first[q]["scores"]["positive"] - second[q]["scores"]["positive"]) > 1e-4 for q in first
    )
    report = render_report(shared_run.copy(tmp_path / "run"))
    (spread,) = [row for row in report.orders if row["label_mode"] == "gold"]
    accuracies = [
        sum(r["prediction"] == r["gold"] for r in table.values()) / len(table)
        for table in (first, second)
    ]
    assert spread["orders"] == 2
    assert (spread["accuracy_min"], spread["accuracy_max"]) == (min(accuracies), max(accuracies))
