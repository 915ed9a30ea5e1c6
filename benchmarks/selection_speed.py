"""Selection speed: iclkit batched exact kNN vs a per-query loop vs NumPy; approximate recall.

1,000 queries over pools of synthetic 384-d unit vectors (embeddings given, no model). For each
pool size, in a fresh child process (so that peak memory is per size):

* iclkit exact: ``VectorIndex("flat")``, all queries in one FAISS search;
* per-query loop: one FAISS search per query on the same flat index (the access pattern of
  OpenICL's TopK retriever); at pools above ``--loop-subset-above`` it runs on the first
  ``--loop-queries`` queries and the time is extrapolated to 1,000;
* NumPy brute force: ``Q @ X.T`` in chunks of 100 queries, ``argpartition`` for the top 8;
* iclkit approximate: ``VectorIndex("ivf")`` (and ``"hnsw"`` up to ``--hnsw-max``) at several
  ``nprobe``/``ef_search`` settings: queries/s and recall@8 against the exact answer.

Synthetic data: ``--clusters`` random unit centres; each vector is a centre plus isotropic
Gaussian noise of norm ``--noise``, re-normalised (real sentence embeddings are clustered, not
uniform on the sphere). Queries are fresh draws from the same distribution.
``--noise`` large makes the data close to uniform, the hardest case for approximate search.

    .venv/bin/python benchmarks/selection_speed.py --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import faiss
import numpy as np

from iclkit.embedding.index import VectorIndex

DIM = 384
K = 8


def synthetic(n: int, centres: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        rows = centres[rng.integers(0, len(centres), stop - start)]
        rows = rows + rng.standard_normal((stop - start, DIM), dtype=np.float32) * (
            noise / np.sqrt(DIM)
        )
        out[start:stop] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(a) & set(b)) for a, b in zip(found.tolist(), truth.tolist(), strict=True))
    return hits / truth.size


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_size(args: argparse.Namespace, n: int) -> dict[str, object]:
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.clusters, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    pool = synthetic(n, centres, args.noise, rng)
    queries = synthetic(args.queries, centres, args.noise, rng)
    result: dict[str, object] = {"n": n, "queries": args.queries}

    start = time.perf_counter()
    exact = VectorIndex("flat").build(pool)
    result["flat_build_s"] = time.perf_counter() - start
    start = time.perf_counter()
    _, truth = exact.search(queries, K)
    result["batched_s"] = time.perf_counter() - start

    loop_n = args.queries if n <= args.loop_subset_above else args.loop_queries
    raw = exact.index_
    start = time.perf_counter()
    for row in queries[:loop_n]:
        raw.search(row[None, :], K)
    result["loop_queries_timed"] = loop_n
    result["loop_s"] = (time.perf_counter() - start) * args.queries / loop_n
    del exact, raw

    start = time.perf_counter()
    numpy_ids = np.empty((args.queries, K), dtype=np.int64)
    for lo in range(0, args.queries, 100):
        sims = queries[lo : lo + 100] @ pool.T
        top = np.argpartition(-sims, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        numpy_ids[lo : lo + 100] = np.take_along_axis(top, order, axis=1)
        del sims
    result["numpy_s"] = time.perf_counter() - start
    result["numpy_recall"] = recall(numpy_ids, truth)

    approx: list[dict[str, object]] = []
    kinds = ["ivf"] + (["hnsw"] if n <= args.hnsw_max else [])
    for kind in kinds:
        start = time.perf_counter()
        index = VectorIndex(kind).build(pool)  # type: ignore[arg-type]
        build_s = time.perf_counter() - start
        settings = args.nprobe if kind == "ivf" else args.ef_search
        for value in settings:
            if kind == "ivf":
                index.nprobe = value
            else:
                index.ef_search = value
            start = time.perf_counter()
            _, ids = index.search(queries, K)
            seconds = time.perf_counter() - start
            approx.append(
                {
                    "kind": kind,
                    "setting": f"{'nprobe' if kind == 'ivf' else 'ef_search'}={value}",
                    "build_s": build_s,
                    "qps": args.queries / seconds,
                    "recall@8": recall(ids, truth),
                }
            )
        del index
    result["approx"] = approx
    result["peak_rss_mb"] = peak_mb()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loop-subset-above", type=int, default=100_000)
    parser.add_argument("--loop-queries", type=int, default=100)
    parser.add_argument("--hnsw-max", type=int, default=100_000)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--ef-search", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one_size(args, args.one)))
        return

    print(
        f"faiss {faiss.__version__}, threads {faiss.omp_get_max_threads()}, "
        f"clusters={args.clusters} noise={args.noise} k={K}"
    )
    for n in args.sizes:
        child = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--one", str(n)],
            check=True,
            capture_output=True,
            text=True,
        )
        r = json.loads(child.stdout.strip().splitlines()[-1])
        q = r["queries"]
        print(f"\n== pool {n:,} vectors, {q} queries (peak RSS {r['peak_rss_mb']:.0f} MB) ==")
        sub = (
            ""
            if r["loop_queries_timed"] == q
            else (f"  [timed on {r['loop_queries_timed']} queries, extrapolated]")
        )
        print(f"iclkit batched exact : {r['batched_s']:8.3f} s  {q / r['batched_s']:10.0f} q/s")
        print(
            f"per-query loop       : {r['loop_s']:8.3f} s  {q / r['loop_s']:10.0f} q/s"
            f"  -> batched is {r['loop_s'] / r['batched_s']:.1f}x faster{sub}"
        )
        print(
            f"NumPy brute force    : {r['numpy_s']:8.3f} s  {q / r['numpy_s']:10.0f} q/s"
            f"  -> batched is {r['numpy_s'] / r['batched_s']:.1f}x faster "
            f"(recall vs FAISS {r['numpy_recall']:.3f})"
        )
        for a in r["approx"]:
            print(
                f"iclkit {a['kind']:<4} {a['setting']:<13}: {a['qps']:10.0f} q/s  "
                f"recall@8 {a['recall@8']:.3f}  (build {a['build_s']:.1f} s)"
            )


if __name__ == "__main__":
    main()
