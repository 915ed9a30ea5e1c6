"""Check ``tabular-icl``: in-context learning as a learned learning algorithm on small tables.

A prior-fitted network (:mod:`iclkit.mech.tabular_pfn`, after Hollmann et al.'s TabPFN) is
trained on a CPU on synthetic tables only. Then, with no gradient step, it classifies the rows
of real small tables shipped with scikit-learn (iris, wine, breast cancer) from a few labelled
training rows given in context. Beside it, on the same rows and features: logistic regression,
k-nearest neighbours and a random forest fitted on the training rows, the majority class, and
the bundled Gemma 3 270M doing ICL on the rows written as text (an
:class:`~iclkit.ICLClassifier` whose ``knn`` selector chooses the demonstrations among the
training rows, labels scored by log-likelihood).

Each table is split per seed into a stratified sample of ``n`` training rows and the rest as
test rows; the features are standardised with the training rows' statistics and, for tables
with more than ten features (wine: 13, breast cancer: 30), projected on the training rows'
first principal components (at most ten, and at most half the training rows: directions that
few rows cannot estimate are noise, which per-feature standardisation would blow up).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import torch
from pydantic import BaseModel, ConfigDict, Field

from iclkit.mech.report import CheckReport, Figure, new_figure, save_png
from iclkit.mech.tabular_pfn import MAX_FEATURES, PriorSetting, TabularPFN, fit_prior

NAME = "tabular-icl"
TABLES = ("iris", "wine", "breast cancer")
METHODS = ("prior-fitted network", "logistic regression", "k-NN", "random forest", "majority")
GEMMA = "Gemma 3 270M ICL"
CLASS_WORDS = ("A", "B", "C")
"""Label words Gemma sees for classes 0, 1, 2 (neutral: no hint from the class names)."""
TEMPLATE = "Row: {input}\nClass: {output}"

Array = npt.NDArray[np.float64]


class Setting(BaseModel):
    """The check's budget: network training, row counts, seeds and Gemma's share.

    ``rows``: training-row counts per table; ``seeds``: splits per table and count. Gemma
    runs at ``gemma_rows`` on the first ``gemma_seeds`` splits, on ``gemma_queries`` test rows
    of each (the first ones of the split), with ``gemma_k`` demonstrations chosen by the
    ``knn`` selector among the training rows.
    """

    model_config = ConfigDict(frozen=True)

    prior: PriorSetting = PriorSetting()
    rows: tuple[int, ...] = (10, 20, 50, 100)
    seeds: int = Field(10, ge=1)
    gemma_rows: tuple[int, ...] = (10, 20, 50, 100)
    gemma_seeds: int = Field(3, ge=0)
    gemma_queries: int = Field(20, ge=1)
    gemma_k: int = Field(16, ge=1)


FULL = Setting(prior=PriorSetting(steps=3000, d_model=96, n_layers=4, d_ff=192))
FAST = Setting(
    prior=PriorSetting(steps=400, d_model=96, n_layers=4, d_ff=192),
    rows=(20, 50, 100),
    seeds=3,
    gemma_rows=(50,),
    gemma_seeds=1,
    gemma_queries=8,
    gemma_k=8,
)


def load_table(name: str) -> tuple[Array, npt.NDArray[np.int64]]:
    """Features and labels of one of :data:`TABLES` (bundled with scikit-learn).

    Raises:
        KeyError: for a name not in :data:`TABLES`.
    """
    from sklearn.datasets import load_breast_cancer, load_iris, load_wine

    loaders: dict[str, Callable[..., Any]] = {
        "iris": load_iris,
        "wine": load_wine,
        "breast cancer": load_breast_cancer,
    }
    x, y = loaders[name](return_X_y=True)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64)


class Split(NamedTuple):
    """One table split into training and test rows, features prepared."""

    x_train: Array
    y_train: npt.NDArray[np.int64]
    x_test: Array
    y_test: npt.NDArray[np.int64]


def split(x: Array, y: npt.NDArray[np.int64], n_train: int, seed: int) -> Split:
    """A stratified sample of ``n_train`` training rows, the rest as test rows.

    Features are standardised with the training rows' mean and deviation and, above
    MAX_FEATURES of them, projected on the training rows' first principal components (at most
    MAX_FEATURES and at most ``n_train // 2``).
    """
    from sklearn.decomposition import PCA
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x_train, x_test, y_train, y_test = train_test_split(
        x, y, train_size=n_train, stratify=y, random_state=seed
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    if x.shape[1] > MAX_FEATURES:
        pca = PCA(min(MAX_FEATURES, n_train // 2), random_state=seed).fit(x_train)
        x_train, x_test = pca.transform(x_train), pca.transform(x_test)
    return Split(x_train, y_train, x_test, y_test)


def baseline_accuracies(data: Split, seed: int) -> dict[str, float]:
    """Accuracy of logistic regression, 5-NN, a random forest and the majority class."""
    from sklearn.dummy import DummyClassifier
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    models = {
        "logistic regression": LogisticRegression(max_iter=5000),
        "k-NN": KNeighborsClassifier(n_neighbors=min(5, len(data.y_train))),
        "random forest": RandomForestClassifier(n_estimators=200, random_state=seed),
        "majority": DummyClassifier(strategy="most_frequent"),
    }
    return {
        name: float(model.fit(data.x_train, data.y_train).score(data.x_test, data.y_test))
        for name, model in models.items()
    }


def pfn_accuracy(model: TabularPFN, data: Split, seed: int) -> float:
    """Accuracy of the prior-fitted network given the training rows in context."""
    n_classes = int(max(data.y_train.max(), data.y_test.max())) + 1
    probabilities = model.predict_proba(
        torch.tensor(data.x_train, dtype=torch.float32),
        torch.tensor(data.y_train),
        torch.tensor(data.x_test, dtype=torch.float32),
        n_classes,
        generator=torch.Generator().manual_seed(seed),
    )
    return float((probabilities.argmax(-1).numpy() == data.y_test).mean())


def serialise(row: Array) -> str:
    """A row's features as text for the language model: ``0.5 -1.2 0.1``."""
    return " ".join(f"{value:.1f}" for value in row)


def gemma_accuracy(data: Split, n_queries: int, k: int) -> float:
    """Accuracy of Gemma 3 270M doing ICL on the first ``n_queries`` test rows.

    Rows are written as text (:func:`serialise`); the ``knn`` selector picks ``k``
    demonstrations among the training rows for each query; labels are scored by likelihood.
    """
    from iclkit.classifier import ICLClassifier
    from iclkit.metrics import accuracy

    n_classes = int(max(data.y_train.max(), data.y_test.max())) + 1
    classifier = ICLClassifier(
        labels={str(c): CLASS_WORDS[c] for c in range(n_classes)},
        selector={"name": "knn", "cache": False},
        formatter={"name": "text", "template": TEMPLATE},
        k=min(k, len(data.y_train)),
        backend={"name": "local", "device": "cpu"},
    ).fit([serialise(row) for row in data.x_train], [str(int(c)) for c in data.y_train])
    gold = [str(int(c)) for c in data.y_test[:n_queries]]
    predicted = classifier.predict([serialise(row) for row in data.x_test[:n_queries]])
    return accuracy(gold, [str(label) for label in predicted])


def run(fast: bool = False, seed: int = 0, setting: Setting | None = None) -> CheckReport:
    """Train the network on the prior, then compare it with the baselines on the real tables."""
    setting = setting or (FAST if fast else FULL)
    torch.manual_seed(seed)
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    model, curve = fit_prior(setting.prior, seed=seed)
    train_cpu, train_wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
    scores: dict[str, dict[str, dict[int, list[float]]]] = {
        table: {method: {n: [] for n in setting.rows} for method in (*METHODS, GEMMA)}
        for table in TABLES
    }
    for table in TABLES:
        x, y = load_table(table)
        for n in setting.rows:
            for split_seed in range(seed, seed + setting.seeds):
                data = split(x, y, n, split_seed)
                table_scores = scores[table]
                table_scores["prior-fitted network"][n].append(
                    pfn_accuracy(model, data, split_seed)
                )
                for name, value in baseline_accuracies(data, split_seed).items():
                    table_scores[name][n].append(value)
                if n in setting.gemma_rows and split_seed < seed + setting.gemma_seeds:
                    table_scores[GEMMA][n].append(
                        gemma_accuracy(data, setting.gemma_queries, setting.gemma_k)
                    )
    means = {
        table: {
            method: {n: float(np.mean(v)) for n, v in by_n.items() if v}
            for method, by_n in by_method.items()
        }
        for table, by_method in scores.items()
    }
    overall = {
        method: {
            n: float(np.mean([means[t][method][n] for t in TABLES]))
            for n in setting.rows
            if all(n in means[t][method] for t in TABLES)
        }
        for method in (*METHODS, GEMMA)
    }
    figures = [
        Figure(
            name="network training CPU seconds",
            measured=train_cpu,
            paper="TabPFN: trained once, on GPUs",
            target="≤ 900 (full variant)",
            passed=train_cpu <= 900 if not fast else None,
        ),
        Figure(
            name="network parameters",
            measured=float(sum(p.numel() for p in model.parameters())),
            paper="TabPFN: a much larger transformer",
        ),
    ]
    for n in (50, 100):
        if n not in overall["prior-fitted network"]:
            continue
        gap = overall["logistic regression"][n] - overall["prior-fitted network"][n]
        figures.append(
            Figure(
                name=f"n={n}: logistic regression − network (points, mean of 3 tables)",
                measured=100 * gap,
                paper="≤ 0: parity or better vs tuned baselines (Hollmann et al. 2023)",
                target="≤ 3 (full variant)",
                passed=100 * gap <= 3 if not fast else None,
            )
        )
    for n in setting.rows:
        for method in (*METHODS, GEMMA):
            if n in overall[method]:
                figures.append(
                    Figure(
                        name=f"n={n}: {method} accuracy (mean of 3 tables)",
                        measured=overall[method][n],
                        paper="-",
                    )
                )
    prior = setting.prior
    return CheckReport(
        check=NAME,
        title="In-context learning on small tables: a prior-fitted network vs fitted models",
        reference="Hollmann et al. 2023 (TabPFN); Müller et al. 2022 (PFNs)",
        fast=fast,
        seed=seed,
        figures=figures,
        series={
            "rows": list(setting.rows),
            "mean": {m: {str(n): v for n, v in by_n.items()} for m, by_n in overall.items()},
            "tables": {
                t: {m: {str(n): v for n, v in by_n.items()} for m, by_n in by_m.items()}
                for t, by_m in means.items()
            },
            "accuracies": {
                t: {m: {str(n): v for n, v in by_n.items() if v} for m, by_n in by_m.items()}
                for t, by_m in scores.items()
            },
            "loss_curve": curve,
            "training": {"cpu_seconds": train_cpu, "wall_seconds": train_wall},
        },
        notes=[
            f"network: {prior.n_layers} layers, width {prior.d_model}, {prior.n_heads} heads; "
            f"{prior.steps} AdamW steps of {prior.batch} synthetic tables of {prior.n_rows} rows "
            f"({prior.train_rows[0]}–{prior.train_rows[1]} of them training rows) from a prior "
            f"mixing {', '.join(prior.generators)} generators; {train_cpu:.0f} CPU-s "
            f"({train_wall:.0f} s wall), one thread",
            f"tables: {', '.join(TABLES)} (scikit-learn); {setting.seeds} stratified splits per "
            f"row count {list(setting.rows)}, all other rows are test rows; features "
            "standardised on the training rows, PCA to ≤ min(10, n/2) components for wine "
            "and breast cancer",
            "baselines: LogisticRegression (C=1), 5-NN, RandomForest (200 trees), majority; "
            "the network: 8-pass ensemble over feature slots and class ids",
            f"Gemma: rows as text ('0.5 -1.2 …'), labels A/B/C, k={setting.gemma_k} demonstrations "
            f"by the knn selector, {setting.gemma_queries} test rows per split, at n = "
            f"{list(setting.gemma_rows)} on {setting.gemma_seeds} split(s) per count",
        ],
    )


def plot(report: CheckReport, path: Path) -> Path:
    """Accuracy against the number of training rows, per table and on average; return the path."""
    panels = ["mean", *TABLES]
    fig, axes = new_figure(len(panels), width=3.6)
    styles = {
        "prior-fitted network": "o-",
        "logistic regression": "s--",
        "k-NN": "^--",
        "random forest": "v--",
        "majority": "x:",
        GEMMA: "D-",
    }
    for axis, panel in zip(axes, panels, strict=True):
        data = report.series["mean"] if panel == "mean" else report.series["tables"][panel]
        for method, style in styles.items():
            points = sorted((int(n), v) for n, v in data.get(method, {}).items())
            if points:
                axis.plot(*zip(*points, strict=True), style, ms=4, label=method)
        axis.set_xscale("log")
        axis.set_xticks(report.series["rows"], [str(n) for n in report.series["rows"]])
        axis.minorticks_off()
        axis.set_xlabel("training rows")
        axis.set_title("mean of 3 tables" if panel == "mean" else panel, fontsize=9)
        axis.set_ylim(0.3, 1.0)
    axes[0].set_ylabel("test accuracy")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=6, fontsize=8)
    return save_png(fig, path)
