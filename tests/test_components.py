import itertools
from collections import Counter

import pytest

from iclkit import ConfigError, Demonstration, Example, Pool, TemplateError
from iclkit.formatters.chat import ChatFormatter
from iclkit.formatters.text import TextFormatter
from iclkit.orderers.basic import AsSelectedOrderer, RandomOrderer, ReverseOrderer
from iclkit.selectors.balanced import BalancedSelector
from iclkit.selectors.first import FirstSelector
from iclkit.selectors.random import RandomSelector


@pytest.fixture
def pool(records):
    return Pool.from_records(records)


@pytest.fixture
def query(pool):
    return pool.to_query("an unseen review")


def test_random_selector_is_seeded_and_per_query(pool, query):
    a = RandomSelector(seed=1).fit(pool).select(query, 4)
    assert a == RandomSelector(seed=1).fit(pool).select(query, 4)
    assert a.scores == (None,) * 4 and len(set(a.indices)) == 4
    draws = {RandomSelector(seed=s).fit(pool).select(query, 4).indices for s in range(6)}
    assert len(draws) > 1
    other = pool.to_query("another review")
    selector = RandomSelector(seed=1).fit(pool)
    batch = selector.select_batch([other, query], 4)
    assert batch[1] == a  # independent of what else is in the batch


def test_random_selector_fixed_set_and_exclusion(pool, query):
    selector = RandomSelector(seed=2, per_query=False).fit(pool)
    first = selector.select(query, 3)
    assert selector.select(pool.to_query("something else"), 3) == first
    excluded = selector.select(query, 3, exclude=frozenset({first.indices[0]}))
    assert first.indices[0] not in excluded.indices
    assert excluded.indices[:2] == first.indices[1:]


def test_first_selector(pool, query):
    selection = FirstSelector().fit(pool).select(query, 3, exclude=frozenset({1}))
    assert selection.indices == (0, 2, 3)


def test_balanced_selector_balances_labels(pool, query):
    for seed in range(5):
        selection = BalancedSelector(seed=seed).fit(pool).select(query, 4)
        assert Counter(pool[i].output for i in selection.indices) == {"pos": 2, "neg": 2}
    odd = BalancedSelector(seed=0).fit(pool).select(query, 5)
    counts = Counter(pool[i].output for i in odd.indices)
    assert sorted(counts.values()) == [2, 3]
    # Labels alternate rather than clustering.
    labels = [pool[i].output for i in odd.indices]
    assert all(a != b for a, b in itertools.pairwise(labels))


def test_balanced_selector_gives_scarce_label_share_to_others():
    pool = Pool.from_records(
        [{"text": f"t{i}", "label": "a"} for i in range(6)] + [{"text": "only b", "label": "b"}]
    )
    selection = BalancedSelector().fit(pool).select(Example(input="q"), 5)
    assert Counter(pool[i].output for i in selection.indices) == {"a": 4, "b": 1}


def test_negative_seed_rejected():
    for cls in (RandomSelector, BalancedSelector, RandomOrderer):
        with pytest.raises(ConfigError, match="seed must be a non-negative integer"):
            cls(seed=-1)


def _demos(pool, indices):
    return [
        Demonstration(index=i, score=None, rank=r, example=pool[i]) for r, i in enumerate(indices)
    ]


def test_orderers(pool, query):
    demos = _demos(pool, [3, 1, 4, 0, 5])
    assert [d.index for d in AsSelectedOrderer().order(query, demos)] == [3, 1, 4, 0, 5]
    assert [d.index for d in ReverseOrderer().order(query, demos)] == [5, 0, 4, 1, 3]
    shuffled = RandomOrderer(seed=4).order(query, demos)
    assert sorted(d.index for d in shuffled) == [0, 1, 3, 4, 5]
    assert RandomOrderer(seed=4).order(query, demos) == shuffled
    orders = {tuple(d.index for d in RandomOrderer(seed=s).order(query, demos)) for s in range(8)}
    assert len(orders) > 1


def test_text_formatter_template_separator_verbalizer(pool, query):
    formatter = TextFormatter(
        template="Review: {text}\nSentiment: {output}",
        separator="\n---\n",
        verbalizer={"pos": "positive", "neg": "negative"},
    )
    prompt = formatter.format(query, _demos(pool, [0, 1]), instruction="Classify.")
    assert prompt.text == (
        "Classify.\n---\n"
        "Review: a warm and funny film\nSentiment: positive\n---\n"
        "Review: dull and far too long\nSentiment: negative\n---\n"
        "Review: an unseen review\nSentiment:"
    )
    assert prompt.answer_prefix == " "
    assert prompt.messages[0].role == "user" and prompt.messages[0].content == prompt.text
    assert [d.index for d in prompt.demonstrations] == [0, 1]


def test_text_formatter_answer_prefix_newline_and_suffix(pool, query):
    prompt = TextFormatter(template="{input}\n=> {output}.").format(query, _demos(pool, [0]))
    assert prompt.text == "a warm and funny film\n=> pos.\n\nan unseen review\n=>"
    assert prompt.answer_prefix == " "
    bare = TextFormatter(template="{input}\n{output}").format(query, [])
    assert bare.text == "an unseen review\n" and bare.answer_prefix == ""


def test_text_formatter_errors(pool, query):
    with pytest.raises(TemplateError, match="exactly once"):
        TextFormatter(template="Review: {text}")
    with pytest.raises(TemplateError, match="positional field"):
        TextFormatter(template="{} {output}")
    with pytest.raises(TemplateError, match="malformed"):
        TextFormatter(template="{text {output}")
    formatter = TextFormatter(template="Review: {review}\n{output}")
    with pytest.raises(TemplateError) as info:
        formatter.format(query, _demos(pool, [0]))
    assert "{review} is not in the example (it has: input, output, text)" in str(info.value)
    with pytest.raises(ConfigError, match="label 'neg' has no verbalizer entry.*maps: pos"):
        TextFormatter(verbalizer={"pos": "positive"}).format(query, _demos(pool, [1]))


@pytest.mark.parametrize(
    "field",
    [
        "{text.__class__.__mro__[1].__subclasses__}",
        "{text:>3000000000}",
        "{text[0]}",
        "{text!r}",
        "{text:{output}}",
    ],
)
def test_templates_allow_plain_field_names_only(pool_file, field):
    from click.testing import CliRunner

    from iclkit.cli import main

    template = f"Review: {field}\\nSentiment: {{output}}"
    result = CliRunner().invoke(
        main, ["build", "--pool", str(pool_file), "--query", "q", "--template", template]
    )
    assert result.exit_code == 1, result.output[:500]
    assert (
        result.output.startswith("Error: template ") and "not a plain field name" in result.output
    )
    assert "<built-in" not in result.output and "<class" not in result.output  # no internals
    with pytest.raises(TemplateError, match="not a plain field name"):
        TextFormatter(template=f"{field} {{output}}")
    with pytest.raises(TemplateError, match="not a plain field name"):
        ChatFormatter(input_template=field)
    # Literal braces and plain names stay as they were.
    plain = TextFormatter(template="{{literal}} {text}: {output}")
    assert plain.format(Example(input={"text": "a {b}"}), []).text == "{literal} a {b}:"


def test_chat_formatter(pool, query):
    formatter = ChatFormatter(input_template="Review: {text}", verbalizer={"pos": "+", "neg": "-"})
    prompt = formatter.format(query, _demos(pool, [0, 1]), instruction="Label reviews.")
    assert [(m.role, m.content) for m in prompt.messages] == [
        ("system", "Label reviews."),
        ("user", "Review: a warm and funny film"),
        ("assistant", "+"),
        ("user", "Review: dull and far too long"),
        ("assistant", "-"),
        ("user", "Review: an unseen review"),
    ]
    assert prompt.text.endswith("user: Review: an unseen review\nassistant:")
    with pytest.raises(TemplateError, match="must not contain"):
        ChatFormatter(input_template="{input} {output}")
