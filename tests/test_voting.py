"""The methods without a model: the label vote, majority and kNN-vote, and choosing k on dev."""

import numpy as np
import pytest

from iclkit import Pool, PromptBuilder
from iclkit.errors import ConfigError
from iclkit.experiment.baselines import choose_vote_k
from iclkit.experiment.data import ExperimentData
from iclkit.methods import KNNVoteMethod, MajorityMethod
from iclkit.methods.voting import vote

LABELS = {"neg": "negative", "pos": "positive"}


def test_vote_counts_weights_and_breaks_ties_by_rank():
    np.testing.assert_allclose(vote(["a", "b", "a"], ["a", "b"]), [2 / 3, 1 / 3], atol=1e-5)
    tie = vote(["b", "a"], ["a", "b"])
    assert tie.argmax() == 1 and tie[1] - tie[0] < 1e-5  # the nearest, "b", wins the tie
    assert vote(["a", "b"], ["a", "b"]).argmax() == 0
    weighted = vote(["a", "b", "b"], ["a", "b"], [0.9, 0.3, -0.5])  # negative weights count 0
    np.testing.assert_allclose(weighted, [0.75, 0.25], atol=1e-5)
    np.testing.assert_allclose(vote([], ["a", "b", "c"]), [1 / 3] * 3)
    with pytest.raises(ConfigError, match="'z' is not in the label space"):
        vote(["z"], ["a", "b"])


def test_majority_is_the_pools_most_frequent_label(records):
    pool = Pool.from_records(records[:5])  # pos, neg, pos, neg, pos
    builder = PromptBuilder(k=0).fit(pool)
    predictions = MajorityMethod().predict(
        builder.build_batch(["x", "y"]), builder, None, LABELS, None
    )
    assert [p.label for p in predictions] == ["pos", "pos"]
    assert predictions[0].probabilities == pytest.approx({"neg": 0.4, "pos": 0.6})
    assert MajorityMethod.uses_backend is False


@pytest.mark.slow
def test_knn_vote_is_the_vote_of_the_nearest_pool_labels(records, embedding_cache):
    """With the real knn selector and bundled embedder: the method equals a hand vote."""
    pool = Pool.from_records(records)
    builder = PromptBuilder(selector={"name": "knn", "cache": embedding_cache}, k=3).fit(pool)
    queries = ["a funny and warm movie", "boring, flat and lifeless", "the plot is a mess"]
    prompts = builder.build_batch(queries)
    predictions = KNNVoteMethod().predict(prompts, builder, None, LABELS, None)
    for prompt, prediction in zip(prompts, predictions, strict=True):
        ranked = sorted(prompt.demonstrations, key=lambda d: d.rank)
        counts = {label: sum(d.example.output == label for d in ranked) for label in LABELS}
        assert prediction.label == max(counts, key=counts.get)
        assert prediction.probabilities["pos"] == pytest.approx(counts["pos"] / 3, abs=1e-5)
    weighted = KNNVoteMethod(weighted=True).predict(prompts, builder, None, LABELS, None)
    first = sorted(prompts[0].demonstrations, key=lambda d: d.rank)
    share = sum(d.score for d in first if d.example.output == "pos") / sum(d.score for d in first)
    assert weighted[0].probabilities["pos"] == pytest.approx(share, abs=1e-4)


@pytest.mark.slow
def test_choose_vote_k_picks_the_best_dev_k(records):
    pool = Pool.from_records(records)
    dev = Pool.from_records(
        [
            {"id": "d0", "text": "a warm, funny and moving film", "label": "pos"},
            {"id": "d1", "text": "dull, wooden and far too long", "label": "neg"},
            {"id": "d2", "text": "terrific and heartfelt", "label": "pos"},
            {"id": "d3", "text": "a confused, boring mess", "label": "neg"},
        ]
    )
    k, scores = choose_vote_k(ExperimentData(pool, dev, "x"), [1, 3, 5, 50])
    assert set(scores) == {1, 3, 5}  # 50 is larger than the pool
    assert scores[k] == max(scores.values())
    assert k == min(c for c, s in scores.items() if s == scores[k])
