"""The backend interface: generate text for prompts and score candidate continuations."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from iclkit.errors import BackendError
from iclkit.prompt import Prompt

logger = logging.getLogger("iclkit.backends")
#: Backends (by identity) already told that their token budgets count words.
_WORD_COUNTED: set[str] = set()


@dataclass(frozen=True)
class ContinuationScore:
    """The log-likelihood of one candidate continuation given a prompt.

    ``logprob`` is the sum of the continuation's token log-probabilities (natural log) and
    ``n_tokens`` its length in tokens, for length-normalised scoring.
    """

    logprob: float
    n_tokens: int


class Backend(ABC):
    """A language model that iclkit can send prompts to.

    Constructors only store settings (model name, URL, limits); the connection or weights are
    opened lazily on first use.
    """

    @property
    @abstractmethod
    def identity(self) -> str:
        """A stable string naming the backend and model (for caches and results; no secrets)."""

    def count_tokens(self, text: str) -> int:
        """The length of ``text`` in this backend's tokens, for token budgets.

        Backends with a tokenizer override this. The default counts whitespace-separated
        words, a rough stand-in, and logs once that it does.
        """
        if self.identity not in _WORD_COUNTED:
            _WORD_COUNTED.add(self.identity)
            logger.warning(
                "%s has no offline tokenizer: token budgets count whitespace-separated words",
                self.identity,
            )
        return len(text.split())

    @abstractmethod
    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        max_tokens: int = 16,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> list[str]:
        """Generate a completion for each prompt (greedy when ``temperature`` is 0).

        Raises:
            BackendError: if the model cannot be reached or rejects the request.
        """

    @abstractmethod
    def score(
        self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]]
    ) -> list[list[ContinuationScore]]:
        """Score ``candidates[i]`` (continuations of ``prompts[i].text``) for every prompt.

        A continuation is the exact text that follows the prompt, e.g.
        ``prompt.answer_prefix + "positive"``.

        Raises:
            BackendError: if the backend cannot return log-probabilities (the message names
                the alternative, such as generation with answer parsing).
        """

    def next_token_logprobs(self, prompts: Sequence[Prompt], top: int) -> list[dict[str, float]]:
        """The ``top`` likeliest tokens to follow each ``prompt.text``, with log-probabilities.

        One ``{token: logprob}`` mapping per prompt (natural log, over the whole vocabulary),
        for methods that compare whole next-token distributions (``knn-prompting``). The
        default raises: a backend that can answer overrides it.

        Raises:
            BackendError: if the backend cannot return next-token distributions.
        """
        raise BackendError(
            f"{self.identity} cannot return next-token distributions. Fix: use the local "
            "backend, or an OpenAI-compatible server with log-probabilities"
        )


def check_candidates(prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]]) -> None:
    """Check that :meth:`Backend.score` got one list of candidates per prompt.

    Raises:
        BackendError: if the two sequences differ in length.
    """
    if len(prompts) != len(candidates):
        raise BackendError(
            f"score() got {len(prompts)} prompts but {len(candidates)} candidate lists; "
            "give one list of candidates per prompt"
        )
