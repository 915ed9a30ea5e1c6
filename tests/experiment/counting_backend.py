"""A deterministic stand-in model for the experiment-layer tests that need no real model.

It scores a candidate label word by how often it appears in the prompt (so demonstrations
matter), and can sleep per prompt (``ICLKIT_TEST_DELAY`` seconds) so a test can kill a run
midway. Run as a script it registers itself as backend ``counting`` and runs the iclkit CLI.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Sequence

from iclkit.backends.base import Backend, Capabilities, ContinuationScore
from iclkit.prompt import Prompt


class CountingBackend(Backend):
    def __init__(self, delay: float | None = None) -> None:
        self.delay = float(os.environ.get("ICLKIT_TEST_DELAY", "0")) if delay is None else delay

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(chat=False, completion=True, logprobs=True)

    @property
    def identity(self) -> str:
        return "counting"

    def generate(self, prompts, *, max_tokens=16, temperature=0.0, seed=None, stop=None):
        return [" " + prompt.text.split()[-1] for prompt in prompts]

    def score(
        self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]]
    ) -> list[list[ContinuationScore]]:
        time.sleep(self.delay * len(prompts))
        result = []
        for prompt, options in zip(prompts, candidates, strict=True):
            words = prompt.text.lower().split()
            counts = [words.count(option.strip().lower()) + 1 for option in options]
            total = sum(counts)
            result.append([ContinuationScore(math.log(c / total), 1) for c in counts])
        return result


def register() -> None:
    from iclkit.registry import backends

    if "counting" not in backends.names():
        backends.register("counting", CountingBackend)


if __name__ == "__main__":
    register()
    from iclkit.cli import main

    sys.exit(main())
