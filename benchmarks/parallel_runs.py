"""`iclkit run --jobs 2` beside one process with 2 threads, and whole grids with one command each.

1. ``ratio``: the same grid run twice from an empty output folder, one run after the other:
   ``iclkit run CONFIG --threads 2`` (one process, two torch threads) and
   ``iclkit run CONFIG --jobs 2`` (two worker processes, one thread each). Prints the
   wall-clock and CPU time of each, the ratio, and whether both wrote the same predictions.
   ``--eval-size N`` keeps the first N evaluation examples of the config (every cell kept).
   A warm-up first embeds the pool and the evaluation set into iclkit's embedding cache, so
   that neither timed run pays for it.
2. ``totals``: each CONFIG with ``iclkit run CONFIG --jobs 2``, one command each, after the
   same warm-up for every config; prints each wall-clock and the total.

    .venv/bin/python benchmarks/parallel_runs.py ratio \\
        examples/real-data/sst2.yaml --eval-size 40
    .venv/bin/python benchmarks/parallel_runs.py totals \\
        examples/real-data/sst2.yaml examples/real-data/agnews.yaml

Run it on a machine with no other heavy job (it prints the load average before and after).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from iclkit.experiment import load_config, plan_experiment
from iclkit.experiment.runner import UnitRunner

ICLKIT = Path(sys.executable).with_name("iclkit")


def subset(config_path: Path, eval_size: int | None, folder: Path) -> Path:
    """The config with absolute data paths (and the first ``eval_size`` queries), as YAML."""
    config = load_config(config_path).model_dump(mode="json")
    data = config["data"]
    for split in ("pool", "eval", "dev"):
        if isinstance(data.get(split), str):
            data[split] = str(Path(data[split]).resolve())
    if eval_size is not None:
        start = (data.get("eval_slice") or [0])[0]
        data["eval_slice"] = [start, start + eval_size]
    path = folder / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def warm_up(config_path: Path) -> None:
    """Embed the pool and the evaluation set (through the cache) for the similarity cells."""
    plan = plan_experiment(load_config(config_path))
    runner = UnitRunner(plan)
    similarity = [c for c in plan.cells if c.k and c.selector["name"] in ("knn", "mmr", "dpp")]
    for cell in similarity[:1]:
        runner.builder(cell).build_batch(list(plan.data.eval))


def timed(arguments: list[str], log: Path) -> tuple[float, float]:
    """Run ``iclkit ARGUMENTS``; return (wall-clock s, CPU s of it and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log.open("w") as output:
        subprocess.run(
            [str(ICLKIT), *arguments, "--no-progress", "--no-html"],
            check=True,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def predictions(folder: Path) -> dict[tuple[str, str], str]:
    lines = (folder / "results.jsonl").read_text().splitlines()
    return {(r["cell"], r["query"]): r["prediction"] for r in map(json.loads, lines)}


def load() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


def ratio(args: argparse.Namespace, work: Path) -> None:
    config = subset(args.config, args.eval_size, work)
    plan = plan_experiment(load_config(config))
    print(f"{config.name}: {len(plan.cells)} cells × {len(plan.data.eval)} queries")
    warm_up(config)
    print(f"before: {load()}")
    one = work / "one-process"
    jobs = work / "jobs"
    wall_one, cpu_one = timed(
        ["run", str(config), "--out", str(one), "--threads", str(args.jobs)], work / "one.log"
    )
    print(f"one process, {args.jobs} threads: {wall_one:.0f} s wall, {cpu_one:.0f} CPU-s")
    wall_jobs, cpu_jobs = timed(
        ["run", str(config), "--out", str(jobs), "--jobs", str(args.jobs)], work / "jobs.log"
    )
    print(f"--jobs {args.jobs}: {wall_jobs:.0f} s wall, {cpu_jobs:.0f} CPU-s")
    print(f"after: {load()}")
    same = predictions(one) == predictions(jobs)
    print(f"ratio (one process / --jobs {args.jobs}): {wall_one / wall_jobs:.2f}×")
    print(f"same predictions: {same} ({plan.predictions} each)")


def totals(args: argparse.Namespace, work: Path) -> None:
    configs = [subset(path, None, work) for path in args.configs]
    for config in configs:
        warm_up(config)
    print(f"before: {load()}")
    total = 0.0
    for path, config in zip(args.configs, configs, strict=True):
        wall, cpu = timed(
            ["run", str(config), "--out", str(work / config.stem), "--jobs", str(args.jobs)],
            work / f"{config.stem}.log",
        )
        total += wall
        print(f"{path}: {wall / 60:.1f} min wall, {cpu / 60:.1f} CPU-min (--jobs {args.jobs})")
    print(f"after: {load()}")
    print(f"total: {total / 60:.1f} min")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("ratio")
    one.add_argument("config", type=Path)
    one.add_argument("--eval-size", type=int, default=None)
    one.add_argument("--jobs", type=int, default=2)
    many = commands.add_parser("totals")
    many.add_argument("configs", type=Path, nargs="+")
    many.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="Write the runs here.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        (ratio if args.command == "ratio" else totals)(args, work)


if __name__ == "__main__":
    main()
