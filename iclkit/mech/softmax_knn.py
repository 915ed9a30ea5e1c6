"""Check ``softmax-knn``: softmax attention over (x_i, y_i) pairs is a kernel smoother.

With scores ``−c‖q − x_i‖²`` (a dot product of ``q' = (2c·q, −c)`` with ``k_i = (x_i, ‖x_i‖²)``,
so an ordinary attention layer computes it) the output is the Gaussian-kernel (Nadaraya–Watson)
smoother with bandwidth ``h = 1/√(2c)``. As c → ∞ it converges to the 1-nearest-neighbour label,
with error at most ``(N−1)·e^(−cΔ)·max_j|y_j − y_i*|`` (Δ: gap between the best and the second
best score), and as c → 0 to the mean label. With plain dot-product scores ``c·q·x_i`` the
c → ∞ limit is instead the label of the maximum-inner-product key.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from iclkit.mech.report import CheckReport, Figure, new_figure, save_png

NAME = "softmax-knn"


def attention_readout(
    queries: torch.Tensor, keys: torch.Tensor, labels: torch.Tensor, c: float
) -> torch.Tensor:
    """Softmax attention of each query over its task's keys with scores −c‖q − x_i‖².

    Computed as a dot-product attention on augmented vectors, as a transformer layer would:
    ``q' = (2c·q, −c)``, ``k_i = (x_i, ‖x_i‖²)``. Shapes: queries (T, d), keys (T, N, d),
    labels (T, N); returns (T,).
    """
    q_aug = torch.cat([2 * c * queries, torch.full_like(queries[:, :1], -c)], dim=-1)
    k_aug = torch.cat([keys, (keys**2).sum(-1, keepdim=True)], dim=-1)
    pattern = torch.softmax(torch.einsum("td,tnd->tn", q_aug, k_aug), dim=-1)
    return (pattern * labels).sum(-1)


def gaussian_smoother(
    queries: torch.Tensor, keys: torch.Tensor, labels: torch.Tensor, c: float
) -> np.ndarray:
    """Nadaraya–Watson estimate with a Gaussian kernel of bandwidth h = 1/√(2c), in NumPy."""
    distances = ((keys - queries[:, None]) ** 2).sum(-1).numpy()
    bandwidth = 1 / np.sqrt(2 * c)
    shifted = distances - distances.min(-1, keepdims=True)  # same weights up to a constant
    weights = np.exp(-shifted / (2 * bandwidth**2))
    result: np.ndarray = (weights * labels.numpy()).sum(-1) / weights.sum(-1)
    return result


def run(fast: bool = False, seed: int = 0) -> CheckReport:
    """Measure the attention read-out against 1-NN, the mean and a Gaussian smoother."""
    start = time.perf_counter()
    n_tasks, n_points, dim = (500, 16, 4) if fast else (5000, 16, 4)
    generator = torch.Generator().manual_seed(seed)
    keys = torch.randn(n_tasks, n_points, dim, generator=generator, dtype=torch.float64)
    queries = torch.randn(n_tasks, dim, generator=generator, dtype=torch.float64)
    labels = torch.rand(n_tasks, n_points, generator=generator, dtype=torch.float64) * 2 - 1
    distances = ((keys - queries[:, None]) ** 2).sum(-1)
    order = distances.argsort(dim=-1)
    nearest = labels.gather(1, order[:, :1])[:, 0]
    gap = distances.gather(1, order[:, 1:2])[:, 0] - distances.gather(1, order[:, :1])[:, 0]
    spread = (labels - nearest[:, None]).abs().max(-1).values
    mean_label = labels.mean(-1)
    inner = torch.einsum("tnd,td->tn", keys, queries)
    mips = labels.gather(1, inner.argmax(-1, keepdim=True))[:, 0]

    grid = np.logspace(-3, 4, 29)
    agreement, to_mean, error_nn, bound_mean, smoother_gap = [], [], [], [], []
    violations = 0
    for c in grid:
        output = attention_readout(queries, keys, labels, float(c))
        error = (output - nearest).abs()
        bound = (n_points - 1) * torch.exp(-float(c) * gap) * spread
        violations += int((error > bound + 1e-12).sum())
        smoother_gap.append(
            float(np.abs(gaussian_smoother(queries, keys, labels, c) - output.numpy()).max())
        )
        agreement.append(float((error < 0.01).double().mean()))
        to_mean.append(float((output - mean_label).abs().mean()))
        error_nn.append(float(error.mean()))
        bound_mean.append(float(bound.clamp(max=2.0).mean()))
    large_c = attention_readout(queries, keys, labels, 1e6)
    separated = gap > 1e-3
    limit_gap = float((large_c - nearest).abs()[separated].max())
    dot_limit = torch.softmax(1e6 * inner, dim=-1).mul(labels).sum(-1)
    figures = [
        Figure(
            name="1-NN agreement at c=1e4",
            measured=agreement[-1],
            paper="→ 1 as c → ∞",
            target="≥ 0.99",
            passed=agreement[-1] >= 0.99,
        ),
        Figure(
            name="max |out − 1-NN label| at c=1e6 (score gap Δ > 1e-3)",
            measured=limit_gap,
            paper="→ 0",
            target="≤ 1e-6",
            passed=limit_gap <= 1e-6,
        ),
        Figure(
            name="bound violations (N−1)e^(−cΔ)max|y−y*|",
            measured=float(violations),
            paper="0 (inequality)",
            target="= 0",
            passed=violations == 0,
        ),
        Figure(
            name="mean |out − mean label| at c=1e-3",
            measured=to_mean[0],
            paper="→ 0 as c → 0",
            target="≤ 0.01",
            passed=to_mean[0] <= 0.01,
        ),
        Figure(
            name="max |attention − Gaussian smoother|",
            measured=max(smoother_gap),
            paper="0 (identity, h = 1/√(2c))",
            target="≤ 1e-9",
            passed=max(smoother_gap) <= 1e-9,
        ),
        Figure(
            name="dot-product limit = max-inner-product label",
            measured=float((dot_limit - mips).abs().max()),
            paper="0 (MIPS limit)",
            target="≤ 1e-6",
            passed=float((dot_limit - mips).abs().max()) <= 1e-6,
        ),
        Figure(
            name="dot-product limit agreement with 1-NN",
            measured=float(((dot_limit - nearest).abs() < 0.01).double().mean()),
            paper="< 1 (MIPS ≠ 1-NN)",
        ),
    ]
    return CheckReport(
        check=NAME,
        title="Softmax attention = Gaussian-kernel smoother → 1-NN",
        reference="kernel-regression view of attention",
        fast=fast,
        seed=seed,
        seconds=time.perf_counter() - start,
        figures=figures,
        series={
            "c": grid.tolist(),
            "agreement_1nn": agreement,
            "mean_abs_to_mean_label": to_mean,
            "mean_abs_to_1nn": error_nn,
            "mean_bound": bound_mean,
        },
        notes=[
            f"{n_tasks} tasks, N={n_points} points in d={dim}, labels ~ U(−1, 1), float64",
            f"{int((~separated).sum())} tasks have a near-tie (Δ ≤ 1e-3) and converge more "
            "slowly, as the bound says",
        ],
    )


def plot(report: CheckReport, path: Path) -> Path:
    """Plot agreement with 1-NN and distance to the mean label against c; return the path."""
    fig, (left, right) = new_figure(2)
    series = report.series
    left.semilogx(series["c"], series["agreement_1nn"], "o-", label="|out − y_1NN| < 0.01")
    left.set_xlabel("inverse temperature c")
    left.set_ylabel("fraction of tasks")
    left.set_title("agreement with 1-NN")
    left.legend()
    right.loglog(series["c"], series["mean_abs_to_1nn"], "o-", label="mean |out − y_1NN|")
    right.loglog(series["c"], series["mean_bound"], "--", label="mean bound (clipped at 2)")
    right.loglog(series["c"], series["mean_abs_to_mean_label"], "s-", label="mean |out − ȳ|")
    right.set_xlabel("inverse temperature c")
    right.set_title("limits: 1-NN (c→∞), mean (c→0)")
    right.legend(fontsize=7)
    return save_png(fig, path)
