"""Label scoring: shared-prefix KV-cache scoring vs naive per-candidate forwards vs llama.cpp echo.

One run, side by side, Gemma 3 270M on CPU: few-shot SST-2 (2 labels) and AG News (4 labels)
prompts. The two local paths are timed prompt by prompt, alternating, so that load from other
processes hits both alike. llama.cpp's echo scoring (python -m llama_cpp.server, the bundled
GGUF) runs on the first --echo-prompts prompts of each task only: llama-cpp-python 0.3.36
log-softmaxes and sorts the whole 262k-token vocabulary in Python for every echoed token,
whatever ``logprobs`` asks for (the backend asks for the fewest, ``logprobs=0``), so one
prompt takes minutes. It prints a line per echoed prompt; the table's ``prompts`` column
says how many prompts each path was measured on.

    .venv/bin/python benchmarks/label_scoring.py --sst2 24 --agnews 12 --echo-prompts 2
"""

import argparse
import contextlib
import platform
import signal
import time

import torch
from _data import AGNEWS_LABELS, SST2_LABELS, agnews_prompts, sst2_prompts
from tqdm.auto import tqdm

from iclkit.backends.llama_server import LlamaServer
from iclkit.backends.local import LocalBackend
from iclkit.backends.openai import OpenAIBackend
from iclkit.inference import LabelSpace


def argmax(row):
    return max(range(len(row)), key=lambda i: row[i].logprob)


def echo_leg(url, prompts, space, reference):
    """Score ``prompts`` one at a time through llama.cpp echo, printing a line per prompt.

    Returns the seconds spent, how many predictions equal those of the ``reference`` scores
    (one row per prompt) and the largest log-probability difference from them.
    """
    echo = OpenAIBackend(model="gemma-3-270m", base_url=url, cache=False, timeout=3000)
    seconds, same, worst = 0.0, 0, 0.0
    for number, (prompt, expected) in enumerate(zip(prompts, reference, strict=True), start=1):
        candidates = space.continuations(prompt.answer_prefix)
        start = time.perf_counter()
        (row,) = echo.score([prompt], [candidates])
        elapsed = time.perf_counter() - start
        seconds += elapsed
        same += argmax(row) == argmax(expected)
        worst = max(
            worst, *(abs(x.logprob - y.logprob) for x, y in zip(row, expected, strict=True))
        )
        print(
            f"  llama.cpp echo: prompt {number}/{len(prompts)} "
            f"({len(candidates)} candidates) {elapsed:.1f} s",
            flush=True,
        )
    return seconds, same, worst


def run(name, prompts, labels, url, echo_prompts):
    space = LabelSpace.from_spec(labels)
    fast, slow = LocalBackend(scoring="shared-prefix"), LocalBackend(scoring="naive")
    # Load the (shared) model and warm up on a throwaway backend: a warm-up on `fast` would
    # leave prompt 1 in its memory of recent scores and key/values, and time it for free.
    warm = LocalBackend(scoring="shared-prefix")
    warm.score(prompts[:1], [space.continuations(prompts[0].answer_prefix)])
    times = {"shared-prefix": 0.0, "naive": 0.0}
    same, worst, reference = 0, 0.0, []
    for prompt in tqdm(prompts, desc=f"{name} local paths"):
        candidates = [space.continuations(prompt.answer_prefix)]
        start = time.perf_counter()
        (a,) = fast.score([prompt], candidates)
        times["shared-prefix"] += time.perf_counter() - start
        start = time.perf_counter()
        (b,) = slow.score([prompt], candidates)
        times["naive"] += time.perf_counter() - start
        reference.append(a)
        same += argmax(a) == argmax(b)
        worst = max(worst, *(abs(x.logprob - y.logprob) for x, y in zip(a, b, strict=True)))
    counts = {"shared-prefix": len(prompts), "naive": len(prompts)}
    subset = prompts[:echo_prompts]
    if subset:
        echo_seconds, echo_same, echo_worst = echo_leg(url, subset, space, reference[: len(subset)])
        times["llama.cpp echo"] = echo_seconds
        counts["llama.cpp echo"] = len(subset)
    rate = {path: counts[path] / seconds for path, seconds in times.items()}
    tokens = sum(len(warm._lm()[1](p.text).input_ids) for p in prompts) / len(prompts)
    print(f"\n## {name}: {len(labels)} labels, {len(prompts)} prompts, {tokens:.0f} tokens/prompt")
    print("| path | prompts | prompts/s | vs naive |")
    print("|---|---|---|---|")
    for path, value in rate.items():
        print(f"| {path} | {counts[path]} | {value:.3f} | {value / rate['naive']:.2f}x |")
    print(
        f"identical predictions (shared-prefix vs naive): {same}/{len(prompts)}; "
        f"max |logprob difference| {worst:.2e}"
    )
    if subset:
        print(
            f"llama.cpp echo: measured on the first {len(subset)} of the {len(prompts)} prompts; "
            f"predictions identical to shared-prefix on {echo_same}/{len(subset)}, max |logprob "
            f"difference| {echo_worst:.2e} (llama.cpp multiplies the Q4_K_M blocks with 8-bit "
            "activations, transformers in fp32 with the dequantized weights: near-ties can flip)"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sst2", type=int, default=24, help="SST-2 dev prompts")
    parser.add_argument("--agnews", type=int, default=12, help="AG News evaluation prompts")
    parser.add_argument(
        "--echo-prompts",
        type=int,
        default=2,
        help="prompts per task scored by llama.cpp echo, minutes each (0: skip the server)",
    )
    args = parser.parse_args()
    # `timeout` and `kill` send SIGTERM: unwind (stopping the llama.cpp server), do not orphan it.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
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
