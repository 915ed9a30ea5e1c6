"""Check ``momentum-attention``: attention with momentum on the values (Dai et al. 2023).

Dai et al. read ICL as implicit fine-tuning and, by analogy with momentum SGD, propose
``MoAttn(q_t) = Attn(q_t) + Σ_{i<t} η^{t−i} v_i``. The toy transformer has it as an option
(``ToyConfig(momentum=η)``). This check verifies the identities (η = 0 is vanilla attention;
the momentum term obeys the EMA recursion ``m_t = η·(m_{t−1} + v_{t−1})``) and compares
vanilla and momentum attention on a synthetic in-context task, the repeated random sequences
of the ``induction`` check, reporting the figures as measured.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from iclkit.mech.hooks import capture
from iclkit.mech.induction import toy_run
from iclkit.mech.report import CheckReport, Figure, new_figure, save_png
from iclkit.mech.toy import ToyConfig, ToyTransformer

NAME = "momentum-attention"


def ema_recursion(values: torch.Tensor, eta: float) -> torch.Tensor:
    """``m_t = η·(m_{t−1} + v_{t−1})``, ``m_0 = 0``, along dim 1 of (batch, pos, ...) values."""
    momentum = torch.zeros_like(values)
    for position in range(1, values.shape[1]):
        momentum[:, position] = eta * (momentum[:, position - 1] + values[:, position - 1])
    return momentum


def identities(eta: float, generator: torch.Generator) -> tuple[float, float]:
    """Max |vanilla − momentum(η=0)| output and max |momentum term − EMA recursion|."""
    config = ToyConfig(n_layers=2, n_heads=2, d_model=32, vocab_size=50, n_ctx=40, mlp=True)
    vanilla = ToyTransformer(config)
    zero = ToyTransformer(config.model_copy(update={"momentum": 0.0}))
    moving = ToyTransformer(config.model_copy(update={"momentum": eta}))
    zero.load_state_dict(vanilla.state_dict())
    moving.load_state_dict(vanilla.state_dict())
    tokens = torch.randint(0, 50, (8, 40), generator=generator)
    names = ["blocks.0.attn.hook_z", "blocks.0.attn.hook_v"]
    with torch.no_grad():
        zero_gap = float((zero(tokens) - vanilla(tokens)).abs().max())
        with capture(vanilla, names) as plain:
            vanilla(tokens)
        with capture(moving, names) as moved:
            moving(tokens)
    term = moved["blocks.0.attn.hook_z"] - plain["blocks.0.attn.hook_z"]
    recursion = ema_recursion(moved["blocks.0.attn.hook_v"], eta)
    return zero_gap, float((term - recursion).abs().max())


def run(fast: bool = False, seed: int = 0) -> CheckReport:
    """Check the identities, then train vanilla and momentum toy models on the same task."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    zero_gap, recursion_gap = identities(0.6, generator)
    steps = 600 if fast else 1200
    etas = (0.0, 0.5) if fast else (0.0, 0.3, 0.6)
    runs: dict[str, dict[str, Any]] = {}
    for eta in etas:
        torch.manual_seed(seed)
        runs[f"2-layer η={eta}"] = toy_run(
            2, steps, torch.Generator().manual_seed(seed + 1), momentum=eta
        )
    figures = [
        Figure(
            name="max |MoAttn(η=0) − Attn| (model output)",
            measured=zero_gap,
            paper="0 (identity)",
            target="= 0",
            passed=zero_gap == 0.0,
        ),
        Figure(
            name="max |momentum term − EMA recursion|",
            measured=recursion_gap,
            paper="0 (identity)",
            target="≤ 1e-5",
            passed=recursion_gap <= 1e-5,
        ),
    ]
    for label, history in runs.items():
        crossing = next(
            (s for s, v in zip(history["step"], history["score"], strict=True) if v > 0.4),
            math.inf,
        )
        figures.append(
            Figure(
                name=f"{label}: second-half loss",
                measured=history["second"][-1],
                paper="momentum helps ICL (Dai et al. Tab. 4)",
            )
        )
        figures.append(
            Figure(name=f"{label}: phase-change step", measured=float(crossing), paper="-")
        )
    return CheckReport(
        check=NAME,
        title="Momentum attention: identities and a synthetic ICL comparison",
        reference="Dai et al. 2023",
        fast=fast,
        seed=seed,
        figures=figures,
        series={"runs": runs},
        notes=[
            "identities: 2-layer softmax model with MLPs, η = 0.6, 8 sequences of 40 tokens",
            f"comparison: the induction task, {steps} Adam steps, same seed and data per η; "
            "the paper's comparison is on language modelling and ICL benchmarks, not this task",
        ],
    )


def plot(report: CheckReport, path: Path) -> Path:
    """Plot the second-half loss and prefix-matching score of each η; return the path."""
    fig, (loss, score) = new_figure(2)
    for label, history in report.series["runs"].items():
        loss.plot(history["step"], history["second"], label=label)
        score.plot(history["step"], history["score"], label=label)
    loss.set_xlabel("step")
    loss.set_title("second-half loss", fontsize=9)
    loss.legend(fontsize=7)
    score.set_xlabel("step")
    score.set_title("prefix-matching score (last layer)", fontsize=9)
    score.legend(fontsize=7)
    return save_png(fig, path)
