import pytest

from iclkit import (
    ConfigError,
    Example,
    NotFittedError,
    Pool,
    PromptBuilder,
    Selection,
    SelectionError,
    Selector,
    TokenBudgetError,
)


class Scored(Selector):
    """Ranks by pool order with descending scores: a deterministic selector with scores."""

    def select(self, query, k, *, exclude=frozenset()):
        picked = tuple(self.candidates(exclude)[:k])
        return Selection(picked, tuple(1.0 - 0.1 * r for r in range(len(picked))))


class Leaky(Selector):
    def select(self, query, k, *, exclude=frozenset()):
        return Selection(tuple(range(k)), (None,) * k)


@pytest.fixture
def pool(records):
    return Pool.from_records(records)


def test_zero_one_few_shot(pool):
    template = {"name": "text", "template": "Q: {input}\nA: {output}"}
    zero = PromptBuilder(k=0, formatter=template, instruction="Answer.").fit(pool).build("new")
    assert zero.text == "Answer.\n\nQ: new\nA:" and zero.demonstrations == ()
    one = PromptBuilder(selector="first", k=1, formatter=template).fit(pool).build("new")
    assert one.text == "Q: a warm and funny film\nA: pos\n\nQ: new\nA:"
    few = PromptBuilder(selector="balanced", k=6).fit(pool).build("new")
    assert len(few.demonstrations) == 6
    assert [d.rank for d in few.demonstrations] == list(range(6))


def test_same_seed_same_prompt(pool):
    def build(seed):
        spec = {"name": "random", "seed": seed}
        order = {"name": "random", "seed": seed}
        return PromptBuilder(selector=spec, orderer=order, k=4).fit(pool).build("new").text

    assert build(7) == build(7)
    assert len({build(s) for s in range(5)}) > 1


def test_build_batch_matches_build(pool):
    builder = PromptBuilder(selector="balanced", orderer="random", k=3).fit(pool)
    queries = ["q one", {"text": "q two"}, Example(input={"text": "q three"})]
    assert builder.build_batch(queries) == [builder.build(q) for q in queries]


@pytest.mark.parametrize("selector", ["random", "first", "balanced"])
def test_query_in_pool_is_never_its_own_demo(pool, records, selector):
    builder = PromptBuilder(selector=selector, k=len(pool) - 1).fit(pool)
    for index, record in enumerate(records):
        by_text = builder.build(record["text"])
        assert index not in {d.index for d in by_text.demonstrations}
        by_id = builder.build(Example(input="other words", id=record["id"]))
        assert index not in {d.index for d in by_id.demonstrations}


def test_leaking_selector_is_caught(pool):
    builder = PromptBuilder(selector=Leaky(), k=2).fit(pool)
    with pytest.raises(SelectionError, match="chose the query itself \\(pool indices \\[1\\]\\)"):
        builder.build("dull and far too long")


def test_k_larger_than_pool(pool):
    with pytest.raises(SelectionError, match="k=13 is larger than the pool \\(12 examples\\)"):
        PromptBuilder(k=13).fit(pool)
    prompt = PromptBuilder(k=13, allow_fewer=True).fit(pool).build("new")
    assert len(prompt.demonstrations) == 12
    # The query itself in the pool leaves one fewer candidate.
    builder = PromptBuilder(k=12).fit(pool)
    with pytest.raises(SelectionError, match="only 11 pool examples"):
        builder.build("a warm and funny film")
    lenient = PromptBuilder(k=12, allow_fewer=True).fit(pool)
    assert len(lenient.build("a warm and funny film").demonstrations) == 11


def test_negative_k_and_budget_rejected():
    with pytest.raises(ConfigError, match="k must be a non-negative integer, got -1"):
        PromptBuilder(k=-1)
    with pytest.raises(ConfigError, match="token_budget must be a non-negative integer"):
        PromptBuilder(token_budget=-5)
    with pytest.raises(ConfigError, match="k must be"):
        PromptBuilder(k=2.5)


def test_token_budget_drops_least_relevant_first(pool):
    builder = PromptBuilder(
        selector=Scored(),
        orderer="reverse",
        k=4,
        token_budget=19,
        length_fn=lambda s: len(s.split()),
    ).fit(pool)
    prompt = builder.build("new")
    # The four demos cost 8, 8, 5 and 7 words, the query 3: 31 words, so two must go.
    assert [d.rank for d in prompt.dropped] == [3, 2]
    assert sorted(d.rank for d in prompt.demonstrations) == [0, 1]
    assert len(prompt.text.split()) == 19
    assert PromptBuilder(selector=Scored(), k=4).fit(pool).build("new").dropped == ()


def test_token_budget_too_small(pool):
    builder = PromptBuilder(k=2, token_budget=2).fit(pool)
    with pytest.raises(TokenBudgetError, match="over the budget of 2"):
        builder.build("a query of several words")


def test_not_fitted():
    with pytest.raises(NotFittedError, match="call .fit\\(pool\\) first"):
        PromptBuilder().build("x")
    with pytest.raises(NotFittedError, match="Scored is not fitted"):
        Scored().select(Example(input="x"), 1)


def test_unknown_component_names(pool):
    with pytest.raises(Exception, match="unknown orderer plugin 'sideways'"):
        PromptBuilder(orderer="sideways").fit(pool)
