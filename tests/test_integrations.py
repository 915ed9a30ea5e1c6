"""Interop: a LangChain example selector over iclkit selectors, and OpenAI chat messages."""

import pytest
from langchain_core.example_selectors import BaseExampleSelector
from langchain_core.prompts import FewShotPromptTemplate, PromptTemplate

from iclkit import PromptBuilder
from iclkit.errors import ConfigError
from iclkit.integrations.langchain import IclkitExampleSelector

EXAMPLES = [
    {"input": "the battery died after a week", "output": "negative"},
    {"input": "the battery lasts for days", "output": "positive"},
    {"input": "a gripping, moving film", "output": "positive"},
    {"input": "the film dragged on forever", "output": "negative"},
    {"input": "delicious food and friendly staff", "output": "positive"},
    {"input": "the soup was cold and bland", "output": "negative"},
]


def test_a_langchain_few_shot_prompt_with_an_iclkit_knn_selector(embedding_cache):
    selector = IclkitExampleSelector(
        EXAMPLES, selector={"name": "knn", "cache": embedding_cache}, k=2
    )
    assert isinstance(selector, BaseExampleSelector)
    chosen = selector.select_examples({"input": "my phone battery drains too fast"})
    assert {example["input"] for example in chosen} == {
        "the battery died after a week",
        "the battery lasts for days",
    }
    prompt = FewShotPromptTemplate(
        example_selector=selector,
        example_prompt=PromptTemplate.from_template("Review: {input}\nSentiment: {output}"),
        suffix="Review: {input}\nSentiment:",
        input_variables=["input"],
    )
    text = prompt.format(input="the pasta was overcooked and cold")
    assert "Review: the soup was cold and bland\nSentiment: negative" in text
    assert text.endswith("Review: the pasta was overcooked and cold\nSentiment:")
    selector.add_example({"input": "the pasta was overcooked", "output": "negative"})
    assert selector.select_examples({"input": "overcooked pasta"})[0]["input"] == (
        "the pasta was overcooked"
    )
    with pytest.raises(ConfigError, match="lack \\['input'\\]"):
        selector.select_examples({"question": "?"})


def test_to_openai_messages_is_the_chat_form_the_sdk_takes(records):
    from iclkit import Pool

    builder = PromptBuilder(
        selector="first",
        k=2,
        formatter={"name": "chat", "verbalizer": {"pos": "positive", "neg": "negative"}},
        instruction="Classify the sentiment.",
    ).fit(Pool.from_records(records))
    messages = builder.build("a lovely film").to_openai_messages()
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert messages[0] == {"role": "system", "content": "Classify the sentiment."}
    assert messages[2]["content"] == "positive" and messages[-1]["content"] == "a lovely film"
    assert all(set(m) == {"role", "content"} for m in messages)
