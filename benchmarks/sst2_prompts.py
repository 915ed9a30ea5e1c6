"""SST-2 prompts: iclkit knn cold vs warm cache vs LangChain; label agreement of the selectors.

Builds 4-shot prompts for the 872 SST-2 dev sentences over the 6,920-sentence SST-2 train pool
(``../shared/data/sst2``, read in place), with the bundled all-MiniLM-L6-v2 embedder:

* iclkit ``knn`` with an empty embedding cache (cold), then again with the same cache (warm:
  0 pool texts embedded; the queries are cached too);
* LangChain's ``SemanticSimilarityExampleSelector`` on its FAISS vector store with the same
  embedding model, one ``FewShotPromptTemplate.format`` per query (its documented use);
* the share of the 4 demonstrations whose label equals the query's, for random, knn, mmr, dpp,
  knn-balanced and votek (a sanity check of selection quality, no model involved);
* recall@8 of the approximate indexes on these real embeddings against the exact index.

The models are loaded before timing starts. Run (LangChain installed only for the benchmark)::

    .venv/bin/pip install langchain-community langchain-core
    .venv/bin/python benchmarks/sst2_prompts.py
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from iclkit.builder import PromptBuilder
from iclkit.bundled_models import bundled_embedder_path
from iclkit.embedding.index import VectorIndex
from iclkit.embedding.sentence_transformer import SentenceTransformerEmbedder
from iclkit.pool import Pool

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"
TEMPLATE = "Review: {text}\nSentiment: {output}"
VERBALIZER = {"0": "negative", "1": "positive"}
K = 4


def read(split: str) -> list[dict[str, str]]:
    lines = (DATA / f"stsa.binary.{split}").read_text(encoding="utf-8").splitlines()
    return [{"text": text, "label": label} for label, text in (s.split(" ", 1) for s in lines)]


def iclkit_run(pool: Pool, queries: list[dict[str, str]], cache: str) -> dict[str, float]:
    start = time.perf_counter()
    builder = PromptBuilder(
        selector={"name": "knn", "cache": cache},
        formatter={"name": "text", "template": TEMPLATE, "verbalizer": VERBALIZER},
        k=K,
    ).fit(pool)
    fitted = time.perf_counter()
    prompts = builder.build_batch(queries)
    done = time.perf_counter()
    return {
        "fit_s": fitted - start,
        "build_s": done - fitted,
        "total_s": done - start,
        "embedded": builder.selector_.embedded_count_,
        "prompts": prompts,
    }


def langchain_run(train: list[dict[str, str]], queries: list[dict[str, str]]) -> dict[str, object]:
    from langchain_community.embeddings import HuggingFaceEmbeddings
    from langchain_community.vectorstores import FAISS
    from langchain_core.example_selectors import SemanticSimilarityExampleSelector
    from langchain_core.prompts import FewShotPromptTemplate, PromptTemplate

    embeddings = HuggingFaceEmbeddings(
        model_name=str(bundled_embedder_path()),
        encode_kwargs={"normalize_embeddings": True, "batch_size": 64},
    )
    embeddings.embed_query("warm up")  # model loaded before timing, as for iclkit
    examples = [{"text": r["text"], "output": VERBALIZER[r["label"]]} for r in train]
    start = time.perf_counter()
    selector = SemanticSimilarityExampleSelector.from_examples(
        examples, embeddings, FAISS, k=K, input_keys=["text"]
    )
    prompt = FewShotPromptTemplate(
        example_selector=selector,
        example_prompt=PromptTemplate.from_template(TEMPLATE),
        suffix="Review: {text}\nSentiment:",
        input_variables=["text"],
    )
    fitted = time.perf_counter()
    chosen = []
    for query in queries:
        prompt.format(text=query["text"])
        chosen.append([e["text"] for e in selector.select_examples({"text": query["text"]})])
    done = time.perf_counter()
    return {
        "fit_s": fitted - start,
        "build_s": done - fitted,
        "total_s": done - start,
        "chosen": chosen,
    }


def agreement(pool: Pool, queries: list[dict[str, str]], name: str, cache: str) -> float:
    spec: dict[str, object] = {"name": name}
    if name != "random":
        spec["cache"] = cache
    builder = PromptBuilder(selector=spec, k=K).fit(pool)
    prompts = builder.build_batch(queries)
    same = [
        demo.example.output == query["label"]
        for prompt, query in zip(prompts, queries, strict=True)
        for demo in prompt.demonstrations
    ]
    return float(np.mean(same))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-langchain", action="store_true")
    args = parser.parse_args()
    train, dev = read("train"), read("dev")
    pool = Pool.from_records(train, source="sst2/stsa.binary.train")
    SentenceTransformerEmbedder().encode(["warm up"])  # load the model before timing
    print(f"SST-2: {len(pool)} pool sentences, {len(dev)} dev queries, k={K}")

    with tempfile.TemporaryDirectory() as folder:
        cache = str(Path(folder) / "cache.sqlite")
        cold = iclkit_run(pool, dev, cache)
        warm = iclkit_run(pool, dev, cache)
        for name, run in (("cold", cold), ("warm", warm)):
            print(
                f"iclkit knn, {name} cache : fit {run['fit_s']:7.2f} s"
                f"  build {run['build_s']:6.2f} s  total {run['total_s']:7.2f} s"
                f"  ({run['embedded']} pool texts embedded)"
            )
        print(f"  warm is {cold['total_s'] / warm['total_s']:.1f}x faster than cold")
        if not args.skip_langchain:
            lc = langchain_run(train, dev)
            print(
                f"LangChain SemanticSimilarityExampleSelector + FAISS: fit {lc['fit_s']:7.2f} s"
                f"  build {lc['build_s']:6.2f} s  total {lc['total_s']:7.2f} s"
            )
            print(
                f"  iclkit cold is {lc['total_s'] / cold['total_s']:.1f}x, warm "
                f"{lc['total_s'] / warm['total_s']:.1f}x faster; prompt building alone "
                f"{lc['build_s'] / warm['build_s']:.1f}x"
            )
            ours = [[d.example.text for d in p.demonstrations] for p in warm["prompts"]]
            same = np.mean([set(a) == set(b) for a, b in zip(ours, lc["chosen"], strict=True)])
            print(f"  same demonstration set as LangChain for {same:.1%} of queries")

        print("\nLabel agreement (share of the 4 demonstrations with the query's label):")
        for name in ("random", "knn", "mmr", "dpp", "knn-balanced", "votek"):
            print(f"  {name:<13} {agreement(pool, dev, name, cache):.3f}")

        builder = PromptBuilder(selector={"name": "knn", "cache": cache}, k=K).fit(pool)
        knn = builder.selector_
        vectors = knn.embed_queries([pool.to_query(q["text"]) for q in dev])
        truth = knn.index_.search(vectors, 8)[1]
        print("\nApproximate index recall@8 on these embeddings (872 dev queries):")
        for kind, settings in (("ivf", (8, 16, 32)), ("hnsw", (32, 64, 128))):
            index = VectorIndex(kind).build(knn.embeddings_)
            for value in settings:
                if kind == "ivf":
                    index.nprobe = value
                else:
                    index.ef_search = value
                found = index.search(vectors, 8)[1]
                hits = np.mean(
                    [len(set(a) & set(b)) / 8 for a, b in zip(found, truth, strict=True)]
                )
                name = "nprobe" if kind == "ivf" else "ef_search"
                print(f"  {kind:<4} {name}={value:<4} recall@8 {hits:.3f}")


if __name__ == "__main__":
    main()
