"""The :class:`Prompt` a builder produces, with the provenance of its demonstrations."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from iclkit.example import Example


class Demonstration(BaseModel):
    """A pool example chosen as a demonstration.

    ``index`` is its position in the pool, ``score`` the selector's relevance score (higher is
    more relevant; ``None`` for selectors without one, such as ``random``) and ``rank`` its
    position in the selector's ranking (0 = most relevant).
    """

    model_config = ConfigDict(frozen=True)

    index: int
    score: float | None
    rank: int
    example: Example


class Message(BaseModel):
    """One chat message: a role and its content."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class Prompt(BaseModel):
    """A built prompt: its text, the same prompt as chat messages, and its provenance.

    ``text`` ends where the model's answer starts; ``answer_prefix`` is what separates it from
    the answer in the demonstrations (for ``"Sentiment: {output}"`` a single space), so that
    ``text + answer_prefix + verbalized_label`` is how a demonstration reads.
    ``demonstrations`` are in final prompt order; ``dropped`` are those removed to fit the
    token budget, least relevant first. ``selection_calls`` and ``selection_tokens`` are the
    model calls and prompt tokens the selector spent choosing the demonstrations (0 unless it
    scores candidates with a language model).
    """

    model_config = ConfigDict(frozen=True)

    text: str
    messages: tuple[Message, ...]
    query: Example
    demonstrations: tuple[Demonstration, ...] = ()
    dropped: tuple[Demonstration, ...] = ()
    instruction: str | None = None
    answer_prefix: str = ""
    selection_calls: int = 0
    selection_tokens: int = 0

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``iclkit build --json``.

        ``{"prompt", "messages", "demos": [{"index", "id", "score", "input", "output"}],
        "dropped"}``.
        """
        return {
            "prompt": self.text,
            "messages": [message.model_dump() for message in self.messages],
            "demos": [_demo_json(demo) for demo in self.demonstrations],
            "dropped": [_demo_json(demo) for demo in self.dropped],
        }

    def to_openai_messages(self) -> list[dict[str, str]]:
        """The chat messages in the form the OpenAI SDK takes: ``[{"role", "content"}]``.

        With the ``chat`` formatter this is the system instruction, one user/assistant turn
        per demonstration and the query's user turn; with the ``text`` formatter it is the
        whole prompt as one user message::

            client.chat.completions.create(model=..., messages=prompt.to_openai_messages())
        """
        return [{"role": message.role, "content": message.content} for message in self.messages]


def _demo_json(demo: Demonstration) -> dict[str, Any]:
    return {
        "index": demo.index,
        "id": demo.example.id,
        "score": demo.score,
        "input": demo.example.input,
        "output": demo.example.output,
    }
