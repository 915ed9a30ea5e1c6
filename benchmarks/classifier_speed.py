"""ICLClassifier speed: batch throughput beside `iclkit run`, and single-query latency.

1. Throughput: the same 200 SST-2 dev queries, k=4 knn demonstrations from the SST-2 train
   pool, bundled Gemma 3 270M, label log-likelihood: ``ICLClassifier.predict`` vs the
   experiment runner (what ``iclkit run`` does) on a one-cell grid. Each leg gets a fresh
   backend (nothing remembered), after a shared warm-up that loads the models. Prints
   predictions/s of each and the ratio (goal: classifier / run >= 0.9).
2. Latency: ``predict([one query])`` on a warm classifier for queries it has not seen, p50 and
   p95 in milliseconds (goal: p50 <= 250 ms on a 2-core CPU).

Both are measured for each ``--dtypes`` entry, the local backend's ``dtype`` option (the
default float32, and bfloat16, which CPUs with AMX or AVX-512 BF16 run several times faster).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/classifier_speed.py \
        [--queries 200 --single 50 --dtypes float32 bfloat16]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _data import DATA, SST2_LABELS

from iclkit import ICLClassifier
from iclkit.experiment import validate_config
from iclkit.experiment.runner import plan_experiment, run_plan

FORMATTER = {"name": "text", "template": "Review: {text}\nSentiment: {output}"}


def config(queries: int, dtype: str) -> dict:
    return {
        "name": "classifier-speed",
        "data": {
            "pool": str(DATA / "sst2" / "stsa.binary.train"),
            "eval": str(DATA / "sst2" / "stsa.binary.dev"),
            "format": "label-text",
            "labels": SST2_LABELS,
            "eval_slice": [0, queries],
        },
        "pipeline": {"formatter": FORMATTER, "backend": {"name": "local", "dtype": dtype}},
        "sweep": {"selector": "knn", "k": 4},
        "baselines": {"include": []},
        "run": {"batch_size": 20},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--single", type=int, default=50)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    args = parser.parse_args()

    for dtype in args.dtypes:
        measure(args.queries, args.single, dtype)


def measure(queries: int, single: int, dtype: str) -> None:
    """Print throughput beside the runner and single-query latency with weights in ``dtype``."""
    plan = plan_experiment(validate_config(config(queries, dtype)))
    texts = [query.text for query in plan.data.eval]
    gold = [query.output for query in plan.data.eval]

    def classifier() -> ICLClassifier:
        return ICLClassifier(
            selector="knn",
            k=4,
            formatter=FORMATTER,
            labels=SST2_LABELS,
            backend={"name": "local", "dtype": dtype},
        ).fit(plan.data.pool)

    classifier().predict(texts[:5])  # warm-up: load Gemma and MiniLM, embed the pool once

    clf = classifier()
    start = time.perf_counter()
    predicted = clf.predict(texts)
    classifier_seconds = time.perf_counter() - start
    accuracy = sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        report = run_plan(plan, Path(folder) / "run", progress=False)
        run_seconds = time.perf_counter() - start
    run_accuracy = report.cells[0]["accuracy"]

    print(f"[{dtype}] throughput on {len(texts)} SST-2 dev queries (knn k=4, Gemma 3 270M):")
    print(
        f"  ICLClassifier.predict  {len(texts) / classifier_seconds:6.2f} pred/s  "
        f"({classifier_seconds:.1f} s, accuracy {accuracy:.3f})"
    )
    print(
        f"  iclkit run (runner)    {len(texts) / run_seconds:6.2f} pred/s  "
        f"({run_seconds:.1f} s, accuracy {run_accuracy:.3f})"
    )
    print(f"  ratio classifier / run: {run_seconds / classifier_seconds:.2f} (goal >= 0.9)")

    dev = [line.split(" ", 1)[1].strip() for line in (DATA / "sst2" / "stsa.binary.dev").open()]
    latencies = []
    for text in dev[queries : queries + single]:
        start = time.perf_counter()
        clf.predict([text])
        latencies.append((time.perf_counter() - start) * 1000)
    p50 = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20)[-1]
    print(f"[{dtype}] single-query latency over {len(latencies)} unseen queries (warm model):")
    print(f"  p50 {p50:.0f} ms, p95 {p95:.0f} ms (goal p50 <= 250 ms)", flush=True)


if __name__ == "__main__":
    main()
