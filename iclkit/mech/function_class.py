"""Check ``function-class``: a tiny transformer learns linear regression in context.

Garg et al. 2022 train a transformer on prompts ``x_1, y_1, …, x_k, y_k, x_query`` with
``y = wᵀx`` for a fresh ``w`` per prompt, and find that its error as a function of the number k
of in-context examples follows least squares, far below 3-nearest-neighbour and averaging
baselines. Here a ≈0.2M-parameter toy transformer is trained the same way on a CPU with
d = 5 and 11 points (labels with a little noise, so that least squares is not exactly zero;
loss: the mean over k of the log error at k, see :func:`position_loss`), and its normalised
squared error ``‖ŷ − y‖² / d`` is compared with the baselines for every k.
"""

from __future__ import annotations

from pathlib import Path

import torch

from iclkit.mech.report import CheckReport, Figure, new_figure, save_png
from iclkit.mech.toy import ToyConfig, ToyTransformer
from iclkit.mech.training import train

NAME = "function-class"
DIM, N_POINTS, NOISE = 5, 11, 0.5


def sample_prompts(
    n_prompts: int, generator: torch.Generator, dim: int = DIM, n_points: int = N_POINTS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts with x ~ N(0, I_d), w ~ N(0, I_d), y = wᵀx + ε, ε ~ N(0, NOISE²): (x, y)."""
    x = torch.randn(n_prompts, n_points, dim, generator=generator)
    w = torch.randn(n_prompts, dim, generator=generator)
    noise = NOISE * torch.randn(n_prompts, n_points, generator=generator)
    return x, torch.einsum("tnd,td->tn", x, w) + noise


def interleave(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Tokens ``(x_1, 0), (0, y_1), (x_2, 0), …`` of width d + 1: (T, 2n, d + 1)."""
    x_tokens = torch.cat([x, torch.zeros_like(y)[..., None]], dim=-1)
    y_tokens = torch.cat([torch.zeros_like(x), y[..., None]], dim=-1)
    return torch.stack([x_tokens, y_tokens], dim=2).flatten(1, 2)


def model_predictions(model: ToyTransformer, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The model's prediction of each y_i, read at x_i's token (it has seen i examples)."""
    output: torch.Tensor = model(interleave(x, y))[:, ::2, 0]
    return output


def position_loss(predictions: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over positions k of log(batch mean squared error at k).

    The error at k = 0 (no examples: the whole variance of wᵀx) is tens of times the error at
    k = 10; a plain mean would spend the training signal on the first positions. The log
    weighs every k by its relative error, so the late positions, where the model must do
    least squares, learn as fast as the early ones.
    """
    return ((predictions - y) ** 2).mean(0).log().mean()


def baseline_predictions(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Least squares (minimum norm), 3-nearest-neighbour and averaging for every prefix k."""
    n_prompts, n_points, _ = x.shape
    result = {
        name: torch.zeros(n_prompts, n_points) for name in ("least squares", "3-NN", "averaging")
    }
    for k in range(1, n_points):
        context_x, context_y, query = x[:, :k], y[:, :k], x[:, k]
        weights = torch.linalg.lstsq(context_x, context_y[..., None], driver="gelsd").solution
        result["least squares"][:, k] = torch.einsum("td,td->t", weights[..., 0], query)
        distances = ((context_x - query[:, None]) ** 2).sum(-1)
        nearest = distances.topk(min(3, k), largest=False).indices
        result["3-NN"][:, k] = context_y.gather(1, nearest).mean(-1)
        average = (context_y[..., None] * context_x).mean(1)
        result["averaging"][:, k] = torch.einsum("td,td->t", average, query)
    return result


def build_model() -> ToyTransformer:
    """The ≈0.2M-parameter transformer: 4 layers, 4 heads, width 64, MLPs, layer norm."""
    return ToyTransformer(
        ToyConfig(
            n_layers=4,
            n_heads=4,
            d_model=64,
            mlp=True,
            layer_norm=True,
            d_input=DIM + 1,
            d_output=1,
            n_ctx=2 * N_POINTS,
        )
    )


def run(fast: bool = False, seed: int = 0) -> CheckReport:
    """Train the transformer, then compare its error curve with the baselines."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    steps = 3000 if fast else 4000
    model = build_model()
    n_parameters = sum(p.numel() for p in model.parameters())

    def loss(step: int) -> torch.Tensor:
        x, y = sample_prompts(64, generator)
        return position_loss(model_predictions(model, x, y), y)

    curve = train(model, loss, steps=steps, lr=3e-3, warmup=100, desc="function-class")
    x, y = sample_prompts(4000, generator)
    with torch.no_grad():
        errors = {"transformer": ((model_predictions(model, x, y) - y) ** 2).mean(0) / DIM}
    for name, prediction in baseline_predictions(x, y).items():
        errors[name] = ((prediction - y) ** 2).mean(0) / DIM
    ratio = float(
        errors["transformer"][2 * DIM :].mean() / errors["least squares"][2 * DIM :].mean()
    )
    figures = [
        Figure(name="parameters", measured=float(n_parameters), paper="≈ 0.2M (here)"),
        Figure(
            name="transformer / least squares error at k ≥ 2d",
            measured=ratio,
            paper="≈ 1 (Garg et al. Fig. 2)",
            target="≤ 2",
            passed=ratio <= 2,
        ),
    ]
    for k in (0, DIM, 2 * DIM):
        for name in ("transformer", "least squares", "3-NN", "averaging"):
            figures.append(
                Figure(
                    name=f"error at k={k}: {name}",
                    measured=float(errors[name][k]),
                    paper="transformer ≈ least squares" if name == "transformer" else "-",
                )
            )
    return CheckReport(
        check=NAME,
        title="In-context linear regression (function classes)",
        reference="Garg et al. 2022",
        fast=fast,
        seed=seed,
        figures=figures,
        series={"k": list(range(N_POINTS)), "loss_curve": curve}
        | {name: values.tolist() for name, values in errors.items()},
        notes=[
            f"d={DIM}, {N_POINTS} points, label noise σ={NOISE} (floor σ²/d = {NOISE**2 / DIM}); "
            f"{steps} AdamW steps of 64 prompts (lr 3e-3, cosine decay), loss: mean over k of "
            "the log of the mean squared error at k; no curriculum",
            "Garg et al. train 500k steps with a curriculum on d=20; noiseless labels",
        ],
    )


def plot(report: CheckReport, path: Path) -> Path:
    """Normalised squared error against the number of in-context examples; return the path."""
    fig, (axis,) = new_figure(1, width=5.0)
    for name in ("transformer", "least squares", "3-NN", "averaging"):
        axis.plot(report.series["k"], report.series[name], "o-", label=name)
    axis.axhline(NOISE**2 / DIM, color="grey", ls=":", lw=0.8, label="noise floor")
    axis.set_xlabel("in-context examples k")
    axis.set_ylabel("squared error / d")
    axis.set_ylim(0, 1.6)
    axis.set_title(f"linear regression, d = {DIM}", fontsize=9)
    axis.legend(fontsize=7)
    return save_png(fig, path)
