"""The openai backend against a local llama.cpp server at concurrency 1, 8 and 32.

Each level sends the same number of short generation requests (cache off) and reports
requests/s and how many requests came back without an answer (lost).

    .venv/bin/python benchmarks/server_concurrency.py --requests 32
"""

import argparse
import time

from iclkit.backends.llama_server import LlamaServer
from iclkit.backends.openai import OpenAIBackend
from iclkit.example import Example
from iclkit.prompt import Message, Prompt


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32, help="requests per level")
    args = parser.parse_args()
    prompts = []
    for i in range(args.requests):
        text = f"Review: film number {i} was fine\nSentiment:"
        prompts.append(
            Prompt(
                text=text, messages=(Message(role="user", content=text),), query=Example(input=text)
            )
        )
    with LlamaServer() as url:
        print("| concurrency | requests | seconds | requests/s | lost |")
        print("|---|---|---|---|---|")
        for level in (1, 8, 32):
            backend = OpenAIBackend(
                model="gemma-3-270m", base_url=url, cache=False, concurrency=level, timeout=600
            )
            start = time.perf_counter()
            texts = backend.generate(prompts, max_tokens=4)
            seconds = time.perf_counter() - start
            lost = sum(text is None for text in texts) + args.requests - len(texts)
            print(
                f"| {level} | {args.requests} | {seconds:.1f} | "
                f"{args.requests / seconds:.2f} | {lost} |"
            )


if __name__ == "__main__":
    main()
