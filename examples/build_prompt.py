"""Build a few-shot prompt in an application: the README's Python quickstart, runnable.

Run from the repository root:  python examples/build_prompt.py
"""

from pathlib import Path

from iclkit import Pool, PromptBuilder

POOL = Path(__file__).parent / "data" / "reviews.jsonl"

pool = Pool.load(POOL)  # fields: text, label
builder = PromptBuilder(
    selector={"name": "balanced", "seed": 0},  # label-balanced random demonstrations
    formatter={"name": "text", "template": "Review: {text}\nSentiment: {output}"},
    k=4,
    instruction="Classify the sentiment of each review.",
).fit(pool)
prompt = builder.build("a clever, moving story")
print(prompt.text)
print()
print(
    "demonstrations (pool index, label):",
    [(d.index, d.example.output) for d in prompt.demonstrations],
)
