"""Label scoring: shared-prefix KV-cache scoring vs naive per-candidate forwards vs llama.cpp echo.

One run, side by side, Gemma 3 270M on CPU: few-shot SST-2 (2 labels) and AG News (4 labels)
prompts. The two local paths are timed prompt by prompt, alternating, so that load from other
processes hits both alike; llama.cpp's echo scoring (python -m llama_cpp.server, the bundled
GGUF) runs on the first --echo-prompts prompts only, as it is far slower.

    .venv/bin/python benchmarks/label_scoring.py --sst2 24 --agnews 12 --echo-prompts 2
"""

import argparse
import contextlib
import platform
import time

import torch
from _data import AGNEWS_LABELS, SST2_LABELS, agnews_prompts, sst2_prompts

from iclkit.backends.llama_server import LlamaServer
from iclkit.backends.local import LocalBackend
from iclkit.backends.openai import OpenAIBackend
from iclkit.inference import LabelSpace


def argmax(row):
    return max(range(len(row)), key=lambda i: row[i].logprob)


def run(name, prompts, labels, url, echo_prompts):
    space = LabelSpace.from_spec(labels)
    fast, slow = LocalBackend(scoring="shared-prefix"), LocalBackend(scoring="naive")
    fast.score(prompts[:1], [space.continuations(prompts[0].answer_prefix)])  # load + warm up
    times = {"shared-prefix": 0.0, "naive": 0.0}
    same, worst = 0, 0.0
    for prompt in prompts:
        candidates = [space.continuations(prompt.answer_prefix)]
        start = time.perf_counter()
        (a,) = fast.score([prompt], candidates)
        times["shared-prefix"] += time.perf_counter() - start
        start = time.perf_counter()
        (b,) = slow.score([prompt], candidates)
        times["naive"] += time.perf_counter() - start
        same += argmax(a) == argmax(b)
        worst = max(worst, *(abs(x.logprob - y.logprob) for x, y in zip(a, b, strict=True)))
    counts = {"shared-prefix": len(prompts), "naive": len(prompts)}
    if echo_prompts:
        echo = OpenAIBackend(model="gemma-3-270m", base_url=url, cache=False, timeout=3000)
        subset = prompts[:echo_prompts]
        start = time.perf_counter()
        echo.score(subset, [space.continuations(p.answer_prefix) for p in subset])
        times["llama.cpp echo"] = time.perf_counter() - start
        counts["llama.cpp echo"] = len(subset)
    rate = {path: counts[path] / seconds for path, seconds in times.items()}
    tokens = sum(len(fast._lm()[1](p.text).input_ids) for p in prompts) / len(prompts)
    print(f"\n## {name}: {len(labels)} labels, {len(prompts)} prompts, {tokens:.0f} tokens/prompt")
    print("| path | prompts/s | vs naive |")
    print("|---|---|---|")
    for path, value in rate.items():
        print(f"| {path} | {value:.3f} | {value / rate['naive']:.2f}x |")
    print(
        f"identical predictions (shared-prefix vs naive): {same}/{len(prompts)}; "
        f"max |logprob difference| {worst:.2e}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sst2", type=int, default=24, help="SST-2 dev prompts")
    parser.add_argument("--agnews", type=int, default=12, help="AG News evaluation prompts")
    parser.add_argument(
        "--echo-prompts", type=int, default=2, help="prompts scored by llama.cpp (0: skip)"
    )
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, torch threads "
        f"{torch.get_num_threads()}, {platform.platform()}"
    )
    with LlamaServer() if args.echo_prompts else contextlib.nullcontext() as url:
        if args.sst2:
            run("SST-2", sst2_prompts(args.sst2)[1], SST2_LABELS, url, args.echo_prompts)
        if args.agnews:
            run("AG News", agnews_prompts(args.agnews)[1], AGNEWS_LABELS, url, args.echo_prompts)


if __name__ == "__main__":
    main()
