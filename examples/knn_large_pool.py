"""kNN demonstration selection over a large pool, with the embedding cache.

Selects 4 nearest demonstrations for SST-2 dev queries from the 6,920-example SST-2 training
pool (../shared/data), using the bundled all-MiniLM-L6-v2 embedder and FAISS. The first fit
embeds the pool (about 30 s on 2 CPU cores) and caches the vectors; the second fit embeds 0
texts. ICLKIT_EXAMPLES_FAST=1 uses the first 1,000 training examples.

Run from the repository root:  python examples/knn_large_pool.py
"""

import os
import time
from pathlib import Path

from iclkit import Pool, PromptBuilder
from iclkit.selectors.knn import KNNSelector

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"
LIMIT = 1000 if os.environ.get("ICLKIT_EXAMPLES_FAST") else None


def read_sst2(path: Path, limit: int | None = None) -> Pool:
    lines = path.read_text().splitlines()[:limit]
    return Pool.from_records(
        {"text": t, "label": lab} for lab, t in (s.split(" ", 1) for s in lines)
    )


train = read_sst2(DATA / "stsa.binary.train", LIMIT)
dev = read_sst2(DATA / "stsa.binary.dev", 5)

for attempt in ("first fit", "second fit"):
    start = time.perf_counter()
    selector = KNNSelector().fit(train)  # embeds through the on-disk cache
    print(
        f"{attempt}: embedded {selector.embedded_count_} of {len(train)} pool texts "
        f"in {time.perf_counter() - start:.1f} s"
    )

builder = PromptBuilder(
    selector=selector,
    orderer="similarity-ascending",  # most similar demonstration next to the query
    formatter={
        "name": "text",
        "template": "Review: {text}\nSentiment: {output}",
        "verbalizer": {"0": "negative", "1": "positive"},
    },
    k=4,
).fit(train)
for prompt in builder.build_batch(list(dev)):  # one embedding call, one FAISS search
    print(f"\nquery: {prompt.query.text}")
    for demo in prompt.demonstrations:
        print(f"  {demo.score:.3f}  [{demo.example.output}] {demo.example.text[:70]}")
