"""Check ``lsa-gd``: one linear self-attention layer implements one step of gradient descent.

von Oswald et al. 2023 (Proposition 1): with tokens ``e_j = (x_j, y_j)`` and a query token
``(x_q, −W0·x_q)``, the linear self-attention layer with ``W_K = W_Q = [[I,0],[0,0]]``,
``W_V = [[0,0],[W0,−I]]`` and ``P = (η/N)·I`` (the query excluded from keys and values) moves
the query's y-entry to ``−W1·x_q``, where ``W1`` is ``W0`` after one GD step with rate η on the
in-context loss ``L(W) = 1/(2N) Σ_j ‖W x_j − y_j‖²``. A layer trained on random regression
tasks finds that solution (with the best η), and when ``x ~ N(0, Σ)`` it finds preconditioned
GD with ``Γ* = ((1 + 1/N)Σ + (tr Σ / N)·I)⁻¹`` (Ahn et al. 2023), which beats plain GD.
"""

from __future__ import annotations

from pathlib import Path

import torch

from iclkit.mech.report import CheckReport, Figure, new_figure, save_png
from iclkit.mech.toy import ToyConfig, ToyTransformer
from iclkit.mech.training import train

NAME = "lsa-gd"


def lsa_layer(dim: int, dtype: torch.dtype = torch.float32) -> ToyTransformer:
    """A one-layer, one-head linear self-attention over ``dim + 1``-wide tokens (query last)."""
    config = ToyConfig(n_layers=1, n_heads=1, d_model=dim + 1, attention="linear", mask="context")
    return ToyTransformer(config).to(dtype)


def construct_gd_layer(w0: torch.Tensor, eta: float) -> ToyTransformer:
    """The layer of von Oswald et al. doing one GD step from ``w0`` (1, d) with rate ``eta``.

    The attention averages over the N context tokens, so ``W_O = η·I`` plays the role of
    ``P = (η/N)·I``.
    """
    dim = w0.shape[1]
    layer = lsa_layer(dim, w0.dtype)
    attention = layer.attention(0)
    projector = torch.zeros(dim + 1, dim + 1, dtype=w0.dtype)
    projector[:dim, :dim] = torch.eye(dim, dtype=w0.dtype)
    value = torch.zeros(dim + 1, dim + 1, dtype=w0.dtype)
    value[dim, :dim] = w0[0]
    value[dim, dim] = -1.0
    with torch.no_grad():
        attention.W_Q.weight.copy_(projector)
        attention.W_K.weight.copy_(projector)
        attention.W_V.weight.copy_(value)
        attention.W_O.weight.copy_(eta * torch.eye(dim + 1, dtype=w0.dtype))
    return layer


def tokens(x: torch.Tensor, y: torch.Tensor, query_y: torch.Tensor | None = None) -> torch.Tensor:
    """Tokens ``(x_j, y_j)`` of shape (T, N+1, d+1); the last one's y-entry is ``query_y`` or 0."""
    stacked = torch.cat([x, y[..., None]], dim=-1)
    stacked[:, -1, -1] = 0.0 if query_y is None else query_y
    return stacked


def predict(layer: ToyTransformer, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The layer's prediction for the query: minus the y-entry of the last output token."""
    output: torch.Tensor = -layer(tokens(x, y))[:, -1, -1]
    return output


def gd_step_prediction(
    x: torch.Tensor, y: torch.Tensor, w0: torch.Tensor, eta: float
) -> torch.Tensor:
    """``W1·x_q`` with ``W1`` one autograd GD step from ``w0`` on each task's context loss."""
    weights = w0.expand(x.shape[0], -1).clone().requires_grad_(True)
    residual = torch.einsum("tnd,td->tn", x[:, :-1], weights) - y[:, :-1]
    loss = 0.5 * (residual**2).mean(-1).sum()
    (gradient,) = torch.autograd.grad(loss, weights)
    return torch.einsum("td,td->t", x[:, -1], (weights - eta * gradient).detach())


def sample_tasks(
    n_tasks: int,
    n_points: int,
    dim: int,
    generator: torch.Generator,
    covariance_root: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Regression tasks ``y = wᵀx``, ``w ~ N(0, I)``: x ~ U(−.5, .5) or N(0, Σ) given Σ^½."""
    shape = (n_tasks, n_points + 1, dim)
    if covariance_root is None:
        x = torch.rand(shape, generator=generator, dtype=dtype) - 0.5
    else:
        x = torch.randn(shape, generator=generator, dtype=dtype) @ covariance_root.T
    w = torch.randn(n_tasks, dim, generator=generator, dtype=dtype)
    return x, torch.einsum("tnd,td->tn", x, w)


def best_gd_rate(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """The GD rate η* from W0 = 0 minimising the query loss (least squares), and that loss."""
    signal = torch.einsum("tn,tnd,td->t", y[:, :-1], x[:, :-1], x[:, -1]) / (x.shape[1] - 1)
    eta = float((signal * y[:, -1]).sum() / (signal * signal).sum())
    return eta, float(0.5 * ((eta * signal - y[:, -1]) ** 2).mean())


def preconditioner(layer: ToyTransformer) -> torch.Tensor:
    """The trained layer's effective preconditioner Γ.

    The part of the layer's prediction that is odd in y is ``(1/N) Σ_j y_j x_jᵀ Γ x_q``;
    with ``M = W_Kᵀ W_Q`` and ``r`` the y-row of ``W_O W_V``:
    ``Γ = −(r_y·M_xx + r_x ⊗ M_yx)``.
    """
    attention = layer.attention(0)
    scores = attention.W_K.weight.T @ attention.W_Q.weight
    row = (attention.W_O.weight @ attention.W_V.weight)[-1]
    gamma = row[-1] * scores[:-1, :-1] + torch.outer(row[:-1], scores[-1, :-1])
    return (-gamma).detach()


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def _train_layer(
    dim: int,
    n_points: int,
    steps: int,
    generator: torch.Generator,
    covariance_root: torch.Tensor | None,
    desc: str,
) -> tuple[ToyTransformer, list[float]]:
    layer = lsa_layer(dim)
    for parameter in layer.parameters():
        torch.nn.init.normal_(parameter, std=0.2)

    def loss(step: int) -> torch.Tensor:
        x, y = sample_tasks(512, n_points, dim, generator, covariance_root)
        return 0.5 * ((predict(layer, x, y) - y[:, -1]) ** 2).mean()

    return layer, train(layer, loss, steps=steps, lr=5e-3, warmup=50, desc=desc)


def run(fast: bool = False, seed: int = 0) -> CheckReport:
    """Check the construction identity, then train 1-layer LSAs (isotropic and preconditioned)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    dim, n_points = 10, 10
    steps = 1500 if fast else 5000

    # 1. Construction identity over 10,000 tasks (float64, random W0 and η).
    x, y = sample_tasks(10_000, n_points, dim, generator, dtype=torch.float64)
    w0 = torch.randn(1, dim, generator=generator, dtype=torch.float64)
    eta = 0.7
    layer = construct_gd_layer(w0, eta)
    with torch.no_grad():
        built = -layer(tokens(x, y, -(x[:, -1] @ w0[0])))[:, -1, -1]
    identity_gap = float((built - gd_step_prediction(x, y, w0, eta)).abs().max())

    # 2. Isotropic tasks: the trained layer vs the best single GD step.
    test_x, test_y = sample_tasks(50_000, n_points, dim, generator)
    eta_star, gd_loss = best_gd_rate(test_x, test_y)
    trained, curve = _train_layer(dim, n_points, steps, generator, None, "lsa-gd isotropic")
    probe_x = test_x[:2000].clone().requires_grad_(True)
    (grad_model,) = torch.autograd.grad(predict(trained, probe_x, test_y[:2000]).sum(), probe_x)
    with torch.no_grad():
        trained_loss = float(0.5 * ((predict(trained, test_x, test_y) - test_y[:, -1]) ** 2).mean())
        grad_gd = eta_star * torch.einsum("tn,tnd->td", test_y[:2000, :-1], probe_x[:, :-1])
        grad_gd = grad_gd / n_points
    sensitivity = torch.nn.functional.cosine_similarity(grad_model[:, -1], grad_gd, dim=-1)
    gamma = preconditioner(trained)
    identity_cos = _cosine(gamma, torch.eye(dim))
    effective_eta = float(gamma.diagonal().mean())

    # 3. Preconditioned variant: x ~ N(0, Σ), Σ non-isotropic, d = 5.
    p_dim, p_points = 5, 20
    eigen = torch.tensor([0.25, 0.5, 1.0, 2.0, 4.0])
    rotation, _ = torch.linalg.qr(torch.randn(p_dim, p_dim, generator=generator))
    sigma = rotation @ torch.diag(eigen) @ rotation.T
    root = rotation @ torch.diag(eigen.sqrt()) @ rotation.T
    gamma_star = torch.linalg.inv(
        (1 + 1 / p_points) * sigma + (sigma.trace() / p_points) * torch.eye(p_dim)
    )
    p_trained, p_curve = _train_layer(
        p_dim, p_points, steps, generator, root, "lsa-gd preconditioned"
    )
    px, py = sample_tasks(50_000, p_points, p_dim, generator, root)
    _, plain_loss = best_gd_rate(px, py)
    with torch.no_grad():
        p_loss = float(0.5 * ((predict(p_trained, px, py) - py[:, -1]) ** 2).mean())
        optimal = torch.einsum("tn,tnd,de,te->t", py[:, :-1], px[:, :-1], gamma_star, px[:, -1])
        optimal_loss = float(0.5 * ((optimal / p_points - py[:, -1]) ** 2).mean())
    p_gamma = preconditioner(p_trained)
    precond_cos = _cosine(p_gamma, gamma_star)

    ratio = trained_loss / gd_loss
    figures = [
        Figure(
            name="max |constructed LSA − GD step| (10,000 tasks)",
            measured=identity_gap,
            paper="0 (von Oswald Prop. 1)",
            target="≤ 1e-5",
            passed=identity_gap <= 1e-5,
        ),
        Figure(name="best GD rate η*", measured=eta_star, paper="≈ 6.06"),
        Figure(name="loss of best GD step", measured=gd_loss, paper="≈ 0.206"),
        Figure(name="trained LSA loss", measured=trained_loss, paper="≈ GD loss"),
        Figure(
            name="trained / GD loss",
            measured=ratio,
            paper="≈ 1 (von Oswald Fig. 2)",
            target="≤ 1.02",
            passed=ratio <= 1.02,
        ),
        Figure(
            name="cosine of sensitivities ∂ŷ/∂x_q (mean)",
            measured=float(sensitivity.mean()),
            paper="≈ 1",
            target="≥ 0.99",
            passed=float(sensitivity.mean()) >= 0.99,
        ),
        Figure(
            name="cosine(rescaled W_KQ x-block, I)",
            measured=identity_cos,
            paper="≈ 1 (block ∝ I)",
            target="≥ 0.99",
            passed=identity_cos >= 0.99,
        ),
        Figure(name="effective η of trained LSA", measured=effective_eta, paper="≈ η*"),
        Figure(
            name="cosine(trained Γ, Γ*) (d=5, Σ non-isotropic)",
            measured=precond_cos,
            paper="≈ 1 (Ahn et al. Thm. 1)",
            target="≥ 0.95",
            passed=precond_cos >= 0.95,
        ),
        Figure(
            name="cosine(Γ*, I) (baseline)",
            measured=_cosine(gamma_star, torch.eye(p_dim)),
            paper="-",
        ),
        Figure(
            name="preconditioned: trained loss / best plain GD loss",
            measured=p_loss / plain_loss,
            paper="< 1",
            target="< 1",
            passed=p_loss < plain_loss,
        ),
        Figure(
            name="preconditioned: trained loss / Γ*-GD loss",
            measured=p_loss / optimal_loss,
            paper="≈ 1",
        ),
    ]
    return CheckReport(
        check=NAME,
        title="Linear self-attention = one step of gradient descent",
        reference="von Oswald et al. 2023; Ahn et al. 2023",
        fast=fast,
        seed=seed,
        figures=figures,
        series={
            "loss_curve": curve,
            "gd_loss": gd_loss,
            "precond_loss_curve": p_curve,
            "plain_gd_loss": plain_loss,
            "gamma_star_loss": optimal_loss,
            "trained_gamma": p_gamma.tolist(),
            "gamma_star": gamma_star.tolist(),
            "trained_kq_block": gamma.tolist(),
        },
        notes=[
            f"identity: float64, η={eta}, random W0; training: {steps} Adam steps of 512 tasks",
            "preconditioned: d=5, N=20, Σ eigenvalues 0.25, 0.5, 1, 2, 4 in a random basis",
        ],
    )


def plot(report: CheckReport, path: Path) -> Path:
    """Plot both training curves against their GD references and Γ vs Γ*; return the path."""
    fig, (curves, trained, star) = new_figure(3, width=3.8)
    series = report.series
    curves.semilogy(series["loss_curve"], lw=0.6, label="LSA, isotropic")
    curves.axhline(series["gd_loss"], color="C0", ls="--", label="best GD step")
    curves.semilogy(series["precond_loss_curve"], lw=0.6, color="C1", label="LSA, Σ")
    curves.axhline(series["plain_gd_loss"], color="C1", ls="--", label="best plain GD (Σ)")
    curves.axhline(series["gamma_star_loss"], color="C1", ls=":", label="Γ*-preconditioned GD")
    curves.set_xlabel("step")
    curves.set_ylabel("query loss")
    curves.legend(fontsize=7)
    for axis, key, title in (
        (trained, "trained_gamma", "trained Γ (Σ tasks)"),
        (star, "gamma_star", "Γ* = ((1+1/N)Σ + trΣ/N·I)⁻¹"),
    ):
        image = axis.imshow(series[key], cmap="RdBu_r")
        axis.set_title(title, fontsize=9)
        fig.colorbar(image, ax=axis, fraction=0.046)
    return save_png(fig, path)
