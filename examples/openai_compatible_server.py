"""The openai backend against a local OpenAI-compatible server (llama.cpp), end to end.

Starts llama.cpp's server with the bundled Gemma 3 270M on 127.0.0.1 (needs the `server`
extra), builds few-shot SST-2 prompts and classifies them by label log-likelihood from the
top log-probabilities of the first answer token (exact here: both label words are one token;
`scoring="echo"` scores any continuation but llama-cpp-python's echo path is slow). Any
OpenAI-compatible server works the same way: vLLM, Ollama or OpenAI itself, by changing
`base_url` and `model`.

Run from the repository root:  python examples/openai_compatible_server.py
"""

from pathlib import Path

from iclkit import Pool, PromptBuilder
from iclkit.backends.llama_server import LlamaServer
from iclkit.backends.openai import OpenAIBackend
from iclkit.inference import LikelihoodClassifier
from iclkit.metrics import accuracy

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"
VERBALIZER = {"0": "negative", "1": "positive"}


def read_sst2(path: Path, limit: int) -> Pool:
    lines = path.read_text().splitlines()[:limit]
    return Pool.from_records(
        {"text": t, "label": lab} for lab, t in (s.split(" ", 1) for s in lines)
    )


train, dev = read_sst2(DATA / "stsa.binary.train", 200), read_sst2(DATA / "stsa.binary.dev", 8)
builder = PromptBuilder(
    selector={"name": "balanced", "seed": 0},
    formatter={
        "name": "text",
        "template": "Review: {text}\nSentiment: {output}",
        "verbalizer": VERBALIZER,
    },
    k=4,
).fit(train)
prompts = builder.build_batch(list(dev))

server = LlamaServer()  # the bundled Gemma 3 270M GGUF, on a free port
base_url = server.start()
try:
    backend = OpenAIBackend(
        model=server.alias, base_url=base_url, scoring="top_logprobs", cache=False, concurrency=4
    )
    classifier = LikelihoodClassifier(backend, VERBALIZER)
    predictions = classifier.predict(prompts)
finally:
    server.stop()

for prompt, prediction in zip(prompts, predictions, strict=True):
    print(f"{prediction.label} (gold {prompt.query.output})  {prompt.query.text[:60]}")
gold = [prompt.query.output for prompt in prompts]
score = accuracy(gold, [p.label for p in predictions])
print(f"accuracy on {len(prompts)} dev reviews: {score:.2f}")
