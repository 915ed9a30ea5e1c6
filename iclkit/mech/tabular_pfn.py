"""A prior-fitted network: a transformer that learns to classify small tables in context.

Hollmann et al. (TabPFN, 2023) train a transformer once, on millions of synthetic tables drawn
from a prior, to predict the labels of a table's test rows from its labelled training rows;
on a real table it then does (approximate Bayesian) inference in a single forward pass, with
no gradient step. This module holds the pieces:

* :func:`sample_tables` draws batches of synthetic classification tables from a prior that
  mixes three generators (Gaussian class clusters, random MLP structural causal models,
  linear-logistic tables) with up to :data:`MAX_FEATURES` features and :data:`MAX_CLASSES`
  classes;
* :class:`TabularPFN` is the transformer: every row is one token (features plus, for training
  rows, a label embedding); training rows attend to each other, test rows attend to the
  training rows only, and there is no positional encoding, so the prediction does not depend
  on the order of the rows;
* :func:`fit_prior` trains it, :meth:`TabularPFN.predict_proba` classifies a real table.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from iclkit.mech.training import train

MAX_FEATURES = 10
"""Widest table the network reads (narrower tables are padded with zero features)."""
MAX_CLASSES = 3
"""Most classes a table may have."""

Generator = Literal["clusters", "mlp", "linear"]


class PriorSetting(BaseModel):
    """The prior over synthetic tables and the training budget of the network.

    Each training step draws ``batch`` tables of ``n_rows`` rows, of which a number drawn
    uniformly from ``train_rows`` (inclusive) are labelled training rows and the rest are
    test rows whose labels the network predicts. Each table draws its generator from
    ``generators``, 2 to ``MAX_CLASSES`` classes and 1 to ``MAX_FEATURES`` features.
    """

    model_config = ConfigDict(frozen=True)

    steps: int = Field(3000, ge=1)
    batch: int = Field(32, ge=1)
    n_rows: int = Field(128, ge=4)
    train_rows: tuple[int, int] = (8, 100)
    lr: float = Field(1e-3, gt=0)
    d_model: int = Field(128, ge=8)
    n_layers: int = Field(6, ge=1)
    n_heads: int = Field(4, ge=1)
    d_ff: int = Field(256, ge=8)
    generators: tuple[Generator, ...] = ("clusters", "mlp", "linear")


def _random_covariance_factor(d: int, generator: torch.Generator) -> torch.Tensor:
    """A (d, d) factor L of a random correlated covariance LLᵀ with unit average variance."""
    factor = torch.randn(d, d, generator=generator)
    mixing = torch.rand(1, generator=generator)  # 0: independent features, 1: fully mixed
    factor = mixing * factor + (1 - mixing) * torch.diag(torch.randn(d, generator=generator))
    return factor / factor.pow(2).sum(1).mean().sqrt().clamp(min=1e-6)


def _log_uniform(low: float, high: float, generator: torch.Generator) -> float:
    value = torch.empty(1).uniform_(math.log(low), math.log(high), generator=generator)
    return float(value.exp())


def _clusters(
    n: int, d: int, n_classes: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each class a mixture of 1–2 Gaussian clusters with random centres and covariances."""
    weights = -torch.rand(n_classes, 3, generator=generator).log().sum(1)  # Dirichlet(3, …)
    y = torch.multinomial(weights, n, replacement=True, generator=generator)
    spread = _log_uniform(0.3, 3.0, generator)
    shared = bool(torch.rand(1, generator=generator) < 0.5)
    factor = _random_covariance_factor(d, generator)
    x = torch.empty(n, d)
    for label in range(n_classes):
        rows = (y == label).nonzero().flatten()
        n_clusters = int(torch.randint(1, 3, (1,), generator=generator))
        centres = spread * torch.randn(n_clusters, d, generator=generator)
        own = factor if shared else _random_covariance_factor(d, generator)
        pick = torch.randint(0, n_clusters, (len(rows),), generator=generator)
        noise = torch.randn(len(rows), d, generator=generator) @ own.T
        x[rows] = centres[pick] + noise
    return x, y


_ACTIVATIONS = (torch.tanh, torch.relu, torch.sin, lambda t: t.abs(), lambda t: t)


def _mlp(
    n: int, d: int, n_classes: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random MLP as a structural causal model: features and target are hidden nodes.

    Latent causes flow through 2–3 random layers with a random activation and noise; ``d``
    nodes become the features, another node the target, cut into classes at random
    quantiles of its values.
    """
    width = int(torch.randint(max(d, 4), 2 * d + 8, (1,), generator=generator))
    activation = _ACTIVATIONS[int(torch.randint(0, len(_ACTIVATIONS), (1,), generator=generator))]
    noise = _log_uniform(0.01, 0.5, generator)
    h = torch.randn(n, width, generator=generator)
    nodes = [h]
    for _ in range(int(torch.randint(2, 4, (1,), generator=generator))):
        weight = torch.randn(width, width, generator=generator) / math.sqrt(width)
        weight = weight * (torch.rand(width, width, generator=generator) < 0.5)
        h = activation(h @ weight + torch.randn(width, generator=generator) * 0.5)
        h = h + noise * torch.randn(n, width, generator=generator)
        nodes.append(h)
    pool = torch.cat(nodes[1:], dim=1)
    pool = pool[:, pool.std(0) > 1e-6]
    if pool.shape[1] < d + 1:
        pool = torch.cat([pool, torch.randn(n, d + 1 - pool.shape[1], generator=generator)], 1)
    order = torch.randperm(pool.shape[1], generator=generator)
    x, target = pool[:, order[:d]], pool[:, order[d]].contiguous()
    return x, _cut(target, n_classes, generator)


def _linear(
    n: int, d: int, n_classes: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Correlated Gaussian features, labels drawn from a softmax of random linear logits."""
    x = torch.randn(n, d, generator=generator) @ _random_covariance_factor(d, generator).T
    sharpness = _log_uniform(0.5, 10.0, generator)
    weight = torch.randn(d, n_classes, generator=generator) / math.sqrt(d)
    logits = sharpness * (x @ weight)
    y = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).flatten()
    return x, y


def _cut(values: torch.Tensor, n_classes: int, generator: torch.Generator) -> torch.Tensor:
    """Classes from a continuous target: cut at random quantiles, then shuffle class ids."""
    cuts = torch.sort(torch.rand(n_classes - 1, generator=generator) * 0.8 + 0.1).values
    thresholds = torch.quantile(values, cuts)
    classes = torch.bucketize(values, thresholds)
    return torch.randperm(n_classes, generator=generator)[classes]


_GENERATORS = {"clusters": _clusters, "mlp": _mlp, "linear": _linear}


def standardise(x: torch.Tensor, n_train: int) -> torch.Tensor:
    """Z-score each feature with the mean and standard deviation of the first ``n_train`` rows.

    Works on one table (rows, features) or a batch (tables, rows, features); values are
    clipped to ±5 standard deviations.
    """
    head = x[..., :n_train, :]
    mean = head.mean(-2, keepdim=True)
    std = head.std(-2, keepdim=True).nan_to_num(0.0).clamp(min=1e-6)
    return ((x - mean) / std).clamp(-5, 5)


def sample_tables(
    n_tables: int,
    n_rows: int,
    n_train: int,
    generator: torch.Generator,
    generators: tuple[Generator, ...] = ("clusters", "mlp", "linear"),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw synthetic tables from the prior.

    Returns ``(x, y, n_classes)``: features (tables, rows, MAX_FEATURES), standardised with
    the first ``n_train`` rows' statistics and zero-padded; labels (tables, rows); the number
    of classes of each table (tables,). Every class of a table occurs among its first
    ``n_train`` rows when ``n_train`` allows it.
    """
    xs = torch.zeros(n_tables, n_rows, MAX_FEATURES)
    ys = torch.zeros(n_tables, n_rows, dtype=torch.long)
    classes = torch.randint(2, MAX_CLASSES + 1, (n_tables,), generator=generator)
    for table in range(n_tables):
        d = int(torch.randint(1, MAX_FEATURES + 1, (1,), generator=generator))
        name = generators[int(torch.randint(0, len(generators), (1,), generator=generator))]
        x, y = _GENERATORS[name](n_rows, d, int(classes[table]), generator)
        x, y = _cover_classes(x, y, n_train, int(classes[table]))
        features = torch.randperm(MAX_FEATURES, generator=generator)[:d]
        xs[table, :, features] = standardise(x, n_train)
        ys[table] = y
    return xs, ys, classes


def _cover_classes(
    x: torch.Tensor, y: torch.Tensor, n_train: int, n_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Swap rows so that every class present in ``y`` has a row among the first ``n_train``.

    A missing class takes the place of a training row of the most frequent training class.
    """
    order = torch.arange(len(y))
    for label in range(n_classes):
        head = y[order[:n_train]]
        rows = (y[order] == label).nonzero().flatten()
        if len(rows) == 0 or bool((rows < n_train).any()):
            continue
        counts = torch.bincount(head, minlength=n_classes)
        if int(counts.max()) < 2:
            break
        slot = int((head == counts.argmax()).nonzero()[0])
        first = int(rows[0])
        order[[slot, first]] = order[[first, slot]]
    return x[order], y[order]


class TabularPFN(nn.Module):
    """A transformer over the rows of a table that predicts test labels from training rows.

    Each row is a token: a linear map of its (standardised, zero-padded) features, plus an
    embedding of its label for training rows (a shared "unknown" embedding for test rows).
    Attention runs over rows: every row attends to the training rows only, and nothing
    encodes row order.
    """

    def __init__(self, setting: PriorSetting | None = None) -> None:
        super().__init__()
        setting = setting or PriorSetting()
        self.setting = setting
        self.encode_x = nn.Linear(MAX_FEATURES, setting.d_model)
        self.encode_y = nn.Embedding(MAX_CLASSES + 1, setting.d_model)
        layer = nn.TransformerEncoderLayer(
            setting.d_model,
            setting.n_heads,
            setting.d_ff,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, setting.n_layers, norm=nn.LayerNorm(setting.d_model), enable_nested_tensor=False
        )
        self.head = nn.Linear(setting.d_model, MAX_CLASSES)

    def forward(
        self, x: torch.Tensor, y_train: torch.Tensor, n_classes: torch.Tensor
    ) -> torch.Tensor:
        """Class logits of the test rows.

        ``x``: (tables, rows, MAX_FEATURES), training rows first; ``y_train``: (tables,
        n_train) labels of the training rows; ``n_classes``: (tables,). Logits of classes a
        table does not have are ``-inf``. Returns (tables, rows − n_train, MAX_CLASSES).
        """
        n_tables, n_rows, _ = x.shape
        n_train = y_train.shape[1]
        unknown = torch.full((n_tables, n_rows - n_train), MAX_CLASSES, dtype=torch.long)
        labels = torch.cat([y_train, unknown.to(y_train.device)], dim=1)
        tokens = self.encode_x(x) + self.encode_y(labels)
        blocked = torch.zeros(n_rows, n_rows, dtype=torch.bool, device=x.device)
        blocked[:, n_train:] = True
        hidden = self.encoder(tokens, mask=blocked)
        logits: torch.Tensor = self.head(hidden[:, n_train:])
        absent = torch.arange(MAX_CLASSES, device=x.device) >= n_classes[:, None]
        return logits.masked_fill(absent[:, None, :], float("-inf"))

    @torch.no_grad()
    def predict_proba(
        self,
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        x_test: torch.Tensor,
        n_classes: int,
        n_ensemble: int = 8,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Class probabilities (test rows, n_classes) of one table, with no gradient step.

        ``x_train`` / ``x_test`` are (rows, d ≤ MAX_FEATURES) features, ``y_train`` labels in
        ``range(n_classes)``. The features are standardised with the training rows'
        statistics; the prediction averages ``n_ensemble`` passes, each with the features
        placed in a random order among the inputs and the class ids permuted at random
        (the first pass keeps both as they are).

        Raises:
            ValueError: if the table has more than MAX_FEATURES features or MAX_CLASSES
                classes.
        """
        n_train, d = x_train.shape
        if d > MAX_FEATURES or n_classes > MAX_CLASSES:
            raise ValueError(
                f"the network reads at most {MAX_FEATURES} features and {MAX_CLASSES} classes; "
                f"got {d} and {n_classes}. Fix: reduce the features (e.g. PCA) first"
            )
        generator = generator or torch.Generator().manual_seed(0)
        rows = standardise(torch.cat([x_train, x_test]).float(), n_train)
        self.eval()
        total = torch.zeros(len(x_test), n_classes)
        for member in range(n_ensemble):
            if member == 0:
                slots, relabel = torch.arange(d), torch.arange(n_classes)
            else:
                slots = torch.randperm(MAX_FEATURES, generator=generator)[:d]
                relabel = torch.randperm(n_classes, generator=generator)
            padded = torch.zeros(len(rows), MAX_FEATURES)
            padded[:, slots] = rows
            logits = self(padded[None], relabel[y_train][None], torch.tensor([n_classes]))[
                0, :, :n_classes
            ]
            total += torch.softmax(logits, -1)[:, relabel]
        return total / n_ensemble


def prior_loss(
    model: TabularPFN, setting: PriorSetting, generator: torch.Generator
) -> torch.Tensor:
    """Cross-entropy of the model on the test rows of one freshly drawn batch of tables."""
    low, high = setting.train_rows
    n_train = int(torch.randint(low, high + 1, (1,), generator=generator))
    x, y, n_classes = sample_tables(
        setting.batch, setting.n_rows, n_train, generator, setting.generators
    )
    logits = model(x, y[:, :n_train], n_classes)
    return nn.functional.cross_entropy(logits.flatten(0, 1), y[:, n_train:].flatten())


def fit_prior(setting: PriorSetting, seed: int = 0) -> tuple[TabularPFN, list[float]]:
    """Train a :class:`TabularPFN` on tables from the prior; return it and the loss curve."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = TabularPFN(setting)
    curve = train(
        model,
        lambda step: prior_loss(model, setting, generator),
        steps=setting.steps,
        lr=setting.lr,
        warmup=min(200, setting.steps // 10),
        desc="tabular prior",
    )
    return model, curve
