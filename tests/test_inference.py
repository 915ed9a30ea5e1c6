"""Inference: label spaces, answer parsing, calibration maths, and classifiers on Gemma 270M."""

import numpy as np
import pytest

from iclkit.backends.base import ContinuationScore
from iclkit.backends.local import LocalBackend
from iclkit.calibrators import ContextualCalibrator, divide_out
from iclkit.errors import ConfigError, PluginNotFoundError
from iclkit.inference import (
    GenerationClassifier,
    LabelSpace,
    LikelihoodClassifier,
    label_probabilities,
    parse_answer,
)
from iclkit.metrics import accuracy

VERBALIZER = {"0": "negative", "1": "positive"}
SPACE = LabelSpace.from_spec(VERBALIZER)


def test_label_space_from_list_and_mapping():
    assert LabelSpace.from_spec(["yes", "no"]).words == ("yes", "no")
    assert SPACE.labels == ("0", "1") and SPACE.continuations(" ") == [" negative", " positive"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (["only"], "at least two"),
        ({"0": "x", "1": " "}, "empty verbalization"),
        ({"0": "x", "1": "x"}, "share a verbalization"),
        ("ab", "not the string"),
    ],
)
def test_bad_label_spaces(spec, message):
    with pytest.raises(ConfigError, match=message):
        LabelSpace.from_spec(spec)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        (" positive", "1"),
        ("Negative.", "0"),
        (" It is positive, I think", "1"),
        ("  negatively", None),
        ("unclear", None),
        ('"negative" (not positive)', "0"),
    ],
)
def test_parse_answer(text, label):
    assert parse_answer(text, SPACE) == label


def test_parse_answer_prefers_longest_word_at_start():
    space = LabelSpace.from_spec({"a": "positive", "b": "very positive"})
    assert parse_answer("very positive!", space) == "b"


def test_label_probabilities_sum_and_per_token_mean():
    scores = [[ContinuationScore(-1.0, 1), ContinuationScore(-2.0, 4)]]
    acc = label_probabilities(scores, "loglik")
    norm = label_probabilities(scores, "loglik-norm")
    assert acc.sum() == pytest.approx(1) and acc[0, 0] > acc[0, 1]
    assert norm[0, 0] == pytest.approx(1 / (1 + np.exp(-0.5 - -1.0)))  # means -1 vs -0.5
    with pytest.raises(ConfigError, match="method"):
        label_probabilities(scores, "mean")


def test_divide_out_removes_the_prior_and_renormalises():
    probabilities = np.array([[0.7, 0.3], [0.9, 0.1]])
    bias = np.array([[0.8, 0.2], [0.8, 0.2]])
    calibrated = divide_out(probabilities, bias)
    np.testing.assert_allclose(calibrated.sum(axis=1), 1)
    assert calibrated[0].argmax() == 1 and calibrated[1].argmax() == 0
    np.testing.assert_allclose(divide_out(probabilities, np.full((2, 2), 0.5)), probabilities)


def test_contextual_calibration_is_the_mean_of_its_probes_divided_out():
    probabilities = np.array([[0.7, 0.3], [0.6, 0.4]])
    probes = [np.array([[0.9, 0.1], [0.7, 0.3]]), np.array([[0.5, 0.5]])]
    calibrated = ContextualCalibrator().calibrate(probabilities, probes)
    expected = divide_out(probabilities, np.array([[0.8, 0.2], [0.5, 0.5]]))
    np.testing.assert_allclose(calibrated, expected)
    with pytest.raises(ConfigError, match="probes of every prompt"):
        ContextualCalibrator().calibrate(probabilities, probes[:1])
    with pytest.raises(ConfigError, match="list of content-free inputs"):
        ContextualCalibrator(inputs=[])


def test_contextual_probes_keep_demonstrations(sst2_prompts):
    builder, (prompt, *_) = sst2_prompts(1)
    rebuilt = ContextualCalibrator().probes(prompt, builder)
    assert [p.query.text for p in rebuilt] == ["N/A", "", "[MASK]"]
    for cf in rebuilt:
        assert cf.demonstrations == prompt.demonstrations
        assert cf.text.startswith(prompt.text[: prompt.text.rindex("Review:")])
        assert cf.answer_prefix == prompt.answer_prefix


def test_accuracy_counts_none_as_wrong():
    assert accuracy(["1", "1", "0"], ["1", "0", None]) == pytest.approx(1 / 3)
    with pytest.raises(ConfigError):
        accuracy(["1"], ["1", "0"])


def test_classifier_options_are_checked(sst2_prompts):
    with pytest.raises(ConfigError, match="method"):
        LikelihoodClassifier("local", VERBALIZER, method="sum")
    _, prompts = sst2_prompts(1)
    with pytest.raises(PluginNotFoundError, match="unknown calibrator plugin .affine."):
        LikelihoodClassifier("local", VERBALIZER, calibration="affine").predict(prompts)


@pytest.mark.slow
def test_likelihood_classifier_with_and_without_calibration(sst2_prompts):
    builder, prompts = sst2_prompts(4)
    backend = LocalBackend()
    plain = LikelihoodClassifier(backend, VERBALIZER).predict(prompts)
    calibrated = LikelihoodClassifier(backend, VERBALIZER, calibration="contextual").predict(
        prompts, builder
    )
    for before, after in zip(plain, calibrated, strict=True):
        assert before.scores == after.scores
        assert sum(after.probabilities.values()) == pytest.approx(1)
        assert before.label == max(before.probabilities, key=before.probabilities.get)
        assert after.label == max(after.probabilities, key=after.probabilities.get)
    assert any(
        abs(a.probabilities["1"] - b.probabilities["1"]) > 1e-3
        for a, b in zip(plain, calibrated, strict=True)
    )
    with pytest.raises(ConfigError, match="PromptBuilder"):
        LikelihoodClassifier(backend, VERBALIZER, calibration="contextual").predict(prompts)


@pytest.mark.slow
def test_prompts_and_probes_in_one_call_equal_separate_scoring(sst2_prompts):
    """One call for queries and content-free probes gives what separate calls give."""
    builder, prompts = sst2_prompts(3)
    joint = LikelihoodClassifier(LocalBackend(), VERBALIZER, calibration="contextual")
    calibrated = joint.predict(prompts, builder)
    fresh = LocalBackend()  # nothing remembered from the joint call
    separate = fresh.score(prompts, [SPACE.continuations(p.answer_prefix) for p in prompts])
    probes = [ContextualCalibrator().probes(p, builder) for p in prompts]
    bias = [
        label_probabilities(
            LocalBackend().score(group, [SPACE.continuations(q.answer_prefix) for q in group])
        ).mean(axis=0)
        for group in probes
    ]
    expected = divide_out(label_probabilities(separate), np.array(bias))
    for prediction, row, separate_row in zip(calibrated, expected, separate, strict=True):
        assert [prediction.probabilities[label] for label in SPACE.labels] == pytest.approx(
            list(row), abs=1e-4
        )
        for label, single in zip(SPACE.labels, separate_row, strict=True):
            assert prediction.scores[label].logprob == pytest.approx(single.logprob, abs=1e-4)


@pytest.mark.slow
def test_generation_classifier_parses_into_label_space(sst2_prompts):
    _, prompts = sst2_prompts(2)
    predictions = GenerationClassifier("local", VERBALIZER, max_tokens=3).predict(prompts)
    assert len(predictions) == len(prompts) == 2
    for prediction in predictions:
        assert prediction.text is not None
        assert prediction.label == parse_answer(prediction.text, SPACE)
