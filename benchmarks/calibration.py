"""Contextual calibration on SST-2 with Gemma 3 270M (local backend), before vs after.

For each seed, four training examples drawn at random are the demonstrations of every prompt
(the setting of Zhao et al. 2021); the first --n dev examples are classified by label
log-likelihood without and with contextual calibration. Prints accuracies, how many
predictions calibration changed and the share of "positive" predictions, and saves a figure.

    .venv/bin/python benchmarks/calibration.py --n 64 --seeds 0 1 2
"""

import argparse
import random

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from _data import SST2_LABELS, sst2, sst2_prompts

from iclkit import Pool
from iclkit.backends.local import LocalBackend
from iclkit.inference import LikelihoodClassifier, accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="SST-2 dev examples")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--figure", default="docs/figures/calibration-sst2.png")
    args = parser.parse_args()
    train = list(sst2("train"))
    backend = LocalBackend()
    rows = []
    print(
        "| demonstration seed | accuracy | calibrated | predictions changed | "
        "positive share | calibrated positive share |"
    )
    print("|---|---|---|---|---|---|")
    for seed in args.seeds:
        demos = Pool.from_records(random.Random(seed).sample(train, 4))
        builder, prompts = sst2_prompts(args.n, selector="first", pool=demos)
        gold = [p.query.output for p in prompts]
        plain = LikelihoodClassifier(backend, SST2_LABELS).predict(prompts)
        fixed = LikelihoodClassifier(
            backend, SST2_LABELS, calibration="contextual", formatter=builder.formatter_
        ).predict(prompts)
        changed = sum(a.label != b.label for a, b in zip(plain, fixed, strict=True))
        share = [sum(p.label == "1" for p in preds) / len(preds) for preds in (plain, fixed)]
        rows.append((seed, accuracy(plain, gold), accuracy(fixed, gold)))
        print(
            f"| {seed} | {rows[-1][1]:.3f} | {rows[-1][2]:.3f} | {changed}/{len(prompts)} | "
            f"{share[0]:.2f} | {share[1]:.2f} |"
        )
    figure, axes = plt.subplots(figsize=(5, 3))
    width = 0.38
    positions = range(len(rows))
    axes.bar([p - width / 2 for p in positions], [r[1] for r in rows], width, label="uncalibrated")
    axes.bar([p + width / 2 for p in positions], [r[2] for r in rows], width, label="calibrated")
    axes.set_xticks(list(positions), [f"demos seed {r[0]}" for r in rows])
    axes.set_ylabel(f"accuracy, SST-2 dev[:{args.n}]")
    axes.set_ylim(0, 1)
    axes.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    axes.set_title("Gemma 3 270M, 4-shot, contextual calibration")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(args.figure, dpi=120)
    print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
