"""Batch and domain-context calibration: their formulas, their probes, shard independence."""

import numpy as np
import pytest

from iclkit import Pool, PromptBuilder
from iclkit.backends.local import LocalBackend
from iclkit.calibrators import BatchCalibrator, DomainContextCalibrator, random_domain_inputs
from iclkit.errors import ConfigError
from iclkit.inference import LikelihoodClassifier

KNOWN = np.array([[0.7, 0.3], [0.6, 0.4], [0.2, 0.8], [0.9, 0.1]])


def test_batch_calibration_over_the_queries_is_its_formula():
    prior = KNOWN.mean(axis=0)  # (0.6, 0.4): the batch's mean label distribution
    expected = (KNOWN / prior) / (KNOWN / prior).sum(axis=1, keepdims=True)
    calibrated = BatchCalibrator(over="queries").calibrate(KNOWN, [])
    np.testing.assert_allclose(calibrated, expected)
    # In log space: log p(y|x) - log mean_x p(y|x), renormalised.
    logits = np.log(KNOWN) - np.log(prior)
    np.testing.assert_allclose(calibrated, np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    # The second query (0.6, 0.4) sits exactly on the prior: it becomes uniform.
    np.testing.assert_allclose(calibrated[1], [0.5, 0.5])
    assert calibrated.argmax(axis=1).tolist() == [0, 0, 1, 0]
    assert BatchCalibrator(over="queries").probes_per_prompt() == 0


def test_batch_calibration_over_the_pool_divides_by_each_prompts_probe_mean():
    probes = [np.array([[0.5, 0.5], [0.9, 0.1]]), np.array([[0.2, 0.8]])] * 2
    calibrated = BatchCalibrator(size=2).calibrate(KNOWN, probes)
    prior = np.array([group.mean(axis=0) for group in probes])
    expected = (KNOWN / prior) / (KNOWN / prior).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(calibrated, expected)
    with pytest.raises(ConfigError, match="needs the probes of every prompt"):
        BatchCalibrator().calibrate(KNOWN, probes[:3])
    with pytest.raises(ConfigError, match="over must be 'pool' or 'queries'"):
        BatchCalibrator(over="test-set")
    with pytest.raises(ConfigError, match="size must be a positive integer"):
        BatchCalibrator(size=0)


def _builder(records, k=2):
    pool = Pool.from_records(records)
    template = {"name": "text", "template": "Review: {text}\nSentiment: {output}"}
    verbalizer = {"neg": "negative", "pos": "positive"}
    return PromptBuilder(
        selector="first", formatter={**template, "verbalizer": verbalizer}, k=k
    ).fit(pool)


def test_batch_probes_are_a_seeded_pool_sample_around_the_same_demonstrations(records):
    builder = _builder(records)
    prompt = builder.build("an unseen review")
    calibrator = BatchCalibrator(size=5, seed=3)
    probes = calibrator.probes(prompt, builder)
    assert len(probes) == 5 and calibrator.probes_per_prompt() == 5
    assert all(p.demonstrations == prompt.demonstrations for p in probes)
    texts = {r["text"] for r in records}
    assert all(p.query.text in texts and p.query.output is None for p in probes)
    # The same sample whatever else is predicted, and never the query itself.
    assert [p.text for p in BatchCalibrator(size=5, seed=3).probes(prompt, builder)] == [
        p.text for p in probes
    ]
    inside = builder.build(records[5]["text"])
    everything = BatchCalibrator(size=11).probes(inside, builder)
    assert {p.query.text for p in everything} == texts - {records[5]["text"]}
    assert [p.query.text for p in BatchCalibrator(size=5, seed=4).probes(prompt, builder)] != [
        p.query.text for p in probes
    ]


def test_domain_inputs_are_pool_words_of_the_mean_length(records):
    pool = Pool.from_records(records)
    made = random_domain_inputs(pool, 20, seed=0)
    words = {word for r in records for word in r["text"].split()}
    mean = round(np.mean([len(r["text"].split()) for r in records]))
    assert len(made) == 20
    for example in made:
        assert len(example.input["text"].split()) == mean
        assert set(example.input["text"].split()) <= words
    assert random_domain_inputs(pool, 20, seed=0) == made
    assert random_domain_inputs(pool, 20, seed=1) != made
    pair = Pool.from_records(
        [{"p": "a b c d", "h": "x", "label": "1"}, {"p": "e f", "h": "y z", "label": "0"}],
        input_fields=["p", "h"],
    )
    (one,) = random_domain_inputs(pair, 1, seed=0)
    assert len(one.input["p"].split()) == 3 and len(one.input["h"].split()) == 2
    assert set(one.input["h"].split()) <= {"x", "y", "z"}


def test_domain_probes_are_shared_by_every_prompt_of_a_pool(records):
    builder = _builder(records)
    calibrator = DomainContextCalibrator(samples=4)
    first = calibrator.probes(builder.build("one review"), builder)
    second = calibrator.probes(builder.build("another review"), builder)
    assert [p.text for p in first] == [p.text for p in second] and len(first) == 4
    with pytest.raises(ConfigError, match="samples must be a positive integer"):
        DomainContextCalibrator(samples=0)


@pytest.mark.slow
def test_pool_calibrators_do_not_depend_on_how_queries_are_batched(sst2_prompts, single_thread):
    """With the real bundled model: predicting 6 queries at once or in two halves agrees."""
    builder, prompts = sst2_prompts(6)
    labels = {"0": "negative", "1": "positive"}
    for calibrator in (BatchCalibrator(size=8), DomainContextCalibrator(samples=5)):
        backend = LocalBackend()
        classifier = LikelihoodClassifier(backend, labels, calibration=calibrator)
        whole = classifier.predict(prompts, builder)
        halves = classifier.predict(prompts[:3], builder) + classifier.predict(prompts[3:], builder)
        assert [p.probabilities for p in whole] == [p.probabilities for p in halves]
        raw = LikelihoodClassifier(backend, labels).predict(prompts, builder)
        assert any(
            abs(a.probabilities["1"] - b.probabilities["1"]) > 1e-3
            for a, b in zip(whole, raw, strict=True)
        )
    # Over the queries (Zhou et al.'s own estimate) the batch matters, as documented.
    classifier = LikelihoodClassifier(
        LocalBackend(), labels, calibration={"name": "batch", "over": "queries"}
    )
    whole = classifier.predict(prompts, builder)
    halves = classifier.predict(prompts[:3], builder) + classifier.predict(prompts[3:], builder)
    assert [p.probabilities for p in whole] != [p.probabilities for p in halves]
