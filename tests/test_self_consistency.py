"""Chain-of-thought demonstrations and self-consistency: samples, parsing, the vote, seeds."""

from collections import Counter
from pathlib import Path

import pytest

from iclkit import Pool, PromptBuilder
from iclkit.backends.local import LocalBackend
from iclkit.errors import TemplateError
from iclkit.inference import LabelSpace, parse_reasoned
from iclkit.methods import SelfConsistencyMethod

DATA = Path(__file__).resolve().parents[1] / "examples" / "data" / "comparisons_cot.jsonl"
LABELS = {"yes": "yes", "no": "no"}
COT = {
    "name": "text",
    "template": "Q: {question}\nA: {rationale} So the answer is {output}.",
    "rationale_field": "rationale",
}
QUERIES = ["Is 64 larger than 46?", "Is 5 larger than 50?", "Is 33 larger than 3?"]


def cot_builder(k=4):
    pool = Pool.load(DATA, input_fields="question")
    return PromptBuilder(selector="first", formatter={**COT, "verbalizer": LABELS}, k=k).fit(pool)


def test_rationale_demonstrations_and_the_query_cut_before_the_rationale():
    builder = cot_builder(k=2)
    prompt = builder.build("Is 64 larger than 46?")
    assert prompt.text == (
        "Q: Is 12 larger than 7?\nA: 12 is more than 7. So the answer is yes.\n\n"
        "Q: Is 3 larger than 9?\nA: 3 is less than 9. So the answer is no.\n\n"
        "Q: Is 64 larger than 46?\nA:"
    )
    assert builder.formatter_.answer_marker == "So the answer is"
    with pytest.raises(TemplateError, match="must contain {rationale} once, before {output}"):
        PromptBuilder(formatter={**COT, "template": "Q: {question} {output} {rationale}"}).fit(
            builder.pool_
        )
    bare = Pool.from_records(
        [{"question": "Is 2 larger than 1?", "label": "yes"}], input_fields="question"
    )
    with pytest.raises(TemplateError, match="has no 'rationale' field"):
        PromptBuilder(selector="first", formatter=COT, k=1).fit(bare).build("Is 1 larger than 2?")


def test_answers_are_read_after_the_last_marker():
    space = LabelSpace.from_spec(LABELS)
    marker = "So the answer is"
    assert parse_reasoned(" 64 is more than 46. So the answer is yes.", space, marker) == "yes"
    text = " So the answer is no... wait, 9 is less. So the answer is Yes!"
    assert parse_reasoned(text, space, marker) == "yes"
    assert parse_reasoned(" 64 is more than 46, yes.", space, marker) is None  # no marker
    assert parse_reasoned(" no, it is not", space, None) == "no"


@pytest.mark.slow
def test_self_consistency_with_the_bundled_model(single_thread):
    builder = cot_builder()
    prompts = builder.build_batch(QUERIES)
    space = LabelSpace.from_spec(LABELS)
    backend = LocalBackend()
    method = SelfConsistencyMethod(samples=3, temperature=1.0, max_tokens=20, seed=0)
    predictions = method.predict(prompts, builder, backend, LABELS, None)
    for prediction in predictions:
        assert len(prediction.samples) == 3 and prediction.model_calls == 3
        parsed = [parse_reasoned(t, space, "So the answer is") for t in prediction.samples]
        named = [label for label in parsed if label is not None]
        if named:
            counts = Counter(named)
            top = max(counts.values())
            assert prediction.label == next(label for label in named if counts[label] == top)
            assert prediction.probabilities[prediction.label] == pytest.approx(
                top / len(named), abs=1e-4
            )
        else:
            assert prediction.label is None and prediction.probabilities == {}
        assert all("\n\n" not in text for text in prediction.samples)  # stopped at a blank line
    again = method.predict(prompts, builder, LocalBackend(), LABELS, None)
    assert [p.samples for p in again] == [p.samples for p in predictions]  # same seed
    other = SelfConsistencyMethod(samples=3, temperature=1.0, max_tokens=20, seed=1)
    reseeded = other.predict(prompts, builder, backend, LABELS, None)
    assert [p.samples for p in reseeded] != [p.samples for p in predictions]
    samples = {s for p in predictions for s in p.samples}
    assert len(samples) > len(QUERIES)  # sampling at temperature 1 varies the answers
    greedy = SelfConsistencyMethod(samples=2, temperature=0.0, max_tokens=20)
    for prediction in greedy.predict(prompts, builder, backend, LABELS, None):
        assert prediction.samples[0] == prediction.samples[1]
