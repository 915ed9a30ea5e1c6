"""Ensembles over demonstration sets and orders, and LM ⊕ kNN-vote interpolation."""

import numpy as np
import pytest

from iclkit import Pool, PromptBuilder
from iclkit.backends.local import LocalBackend
from iclkit.errors import ConfigError
from iclkit.inference import LikelihoodClassifier
from iclkit.methods import EnsembleMethod, InterpolateMethod
from iclkit.methods.combination import members
from iclkit.methods.voting import demonstration_vote

VERBALIZER = {"neg": "negative", "pos": "positive"}
FORMAT = {"name": "text", "template": "Review: {text}\nSentiment: {output}"}


def test_members_split_by_rank_and_permute_reproducibly(records):
    builder = PromptBuilder(selector="first", k=6).fit(Pool.from_records(records))
    prompt = builder.build("a query")
    groups = members(prompt, sets=3, orders=1, seed=0)
    assert [[d.index for d in g] for g in groups] == [[0, 3], [1, 4], [2, 5]]
    ordered = members(prompt, sets=2, orders=3, seed=7)
    assert len(ordered) == 6
    assert [d.index for d in ordered[0]] == [0, 2, 4]
    assert len({tuple(d.index for d in g) for g in ordered[:3]}) == 3  # distinct orders
    assert sorted(d.index for d in ordered[1]) == [0, 2, 4]
    assert len(members(prompt, sets=3, orders=5, seed=0)) == 3 * 2  # two orders of a pair
    assert [[d.index for d in g] for g in members(prompt, 2, 3, 7)] == [
        [d.index for d in g] for g in ordered
    ]
    assert len(members(prompt, sets=10, orders=1, seed=0)) == 6  # one group per demonstration
    assert members(PromptBuilder(k=0).fit(builder.pool_).build("q"), 4, 2, 0) == [[]]
    with pytest.raises(ConfigError, match="sets must be a positive integer"):
        EnsembleMethod(sets=0)


def test_interpolate_options_are_checked():
    with pytest.raises(ConfigError, match="weight must be a number in"):
        InterpolateMethod(weight=1.5)
    with pytest.raises(ConfigError, match="gives no label distribution"):
        InterpolateMethod(base="generate")
    with pytest.raises(ConfigError, match="unknown method"):
        InterpolateMethod(base="nothing")


@pytest.mark.slow
def test_ensemble_is_the_mean_of_its_members(records, single_thread):
    builder = PromptBuilder(
        selector="first", formatter={**FORMAT, "verbalizer": VERBALIZER}, k=4
    ).fit(Pool.from_records(records))
    prompts = builder.build_batch(["a funny, moving film", "boring and far too long"])
    backend = LocalBackend()
    method = EnsembleMethod(sets=2, orders=2, seed=3)
    predictions = method.predict(prompts, builder, backend, VERBALIZER, None)
    classifier = LikelihoodClassifier(LocalBackend(), VERBALIZER)
    for prompt, prediction in zip(prompts, predictions, strict=True):
        rendered = [builder.render(prompt.query, g) for g in members(prompt, 2, 2, 3)]
        assert len({r.text for r in rendered}) == 4
        each = classifier.predict(rendered)
        mean = np.mean([[p.probabilities[label] for label in VERBALIZER] for p in each], axis=0)
        got = [prediction.probabilities[label] for label in VERBALIZER]
        np.testing.assert_allclose(got, mean, atol=1e-4)  # batched apart: float noise
        assert prediction.model_calls == 4
        assert prediction.prompt_tokens == sum(backend.count_tokens(r.text) for r in rendered)


@pytest.mark.slow
def test_interpolation_mixes_the_model_and_the_neighbour_vote(
    records, embedding_cache, single_thread
):
    builder = PromptBuilder(
        selector={"name": "knn", "cache": embedding_cache},
        formatter={**FORMAT, "verbalizer": VERBALIZER},
        k=3,
    ).fit(Pool.from_records(records))
    prompts = builder.build_batch(["a funny, moving film", "the plot is a confused mess"])
    backend = LocalBackend()
    model = LikelihoodClassifier(backend, VERBALIZER).predict(prompts)
    mixed = InterpolateMethod(weight=0.3).predict(prompts, builder, backend, VERBALIZER, None)
    for prompt, lm, prediction in zip(prompts, model, mixed, strict=True):
        voted = demonstration_vote(prompt, list(VERBALIZER))
        expected = 0.7 * np.array([lm.probabilities[label] for label in VERBALIZER]) + 0.3 * voted
        np.testing.assert_allclose(
            [prediction.probabilities[label] for label in VERBALIZER], expected, atol=1e-9
        )
    # weight 0 is the model alone, weight 1 the vote alone.
    alone = InterpolateMethod(weight=0.0).predict(prompts, builder, backend, VERBALIZER, None)
    assert [p.label for p in alone] == [p.label for p in model]
    votes = InterpolateMethod(weight=1.0, vote_k=5).predict(
        prompts, builder, backend, VERBALIZER, None
    )
    five = PromptBuilder(selector={"name": "knn", "cache": embedding_cache}, k=5).fit(builder.pool_)
    for prompt, prediction in zip(five.build_batch([p.query for p in prompts]), votes, strict=True):
        voted = demonstration_vote(prompt, list(VERBALIZER))
        assert prediction.probabilities["pos"] == pytest.approx(voted[1], abs=1e-9)
