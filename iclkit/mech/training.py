"""The training loop the mechanism checks share: Adam on freshly sampled synthetic batches."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from tqdm.auto import tqdm


def train(
    model: nn.Module,
    batch_loss: Callable[[int], torch.Tensor],
    *,
    steps: int,
    lr: float,
    weight_decay: float = 0.0,
    warmup: int = 0,
    desc: str = "train",
) -> list[float]:
    """Minimise ``batch_loss(step)`` over ``model``'s parameters with AdamW; return the losses.

    ``batch_loss`` samples its own batch (from a generator it owns, so runs are reproducible)
    and returns the scalar loss. The learning rate warms up linearly over ``warmup`` steps and
    then decays along a cosine to a tenth of ``lr``.
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + float(torch.cos(torch.tensor(progress * torch.pi))))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    losses: list[float] = []
    model.train()
    for step in tqdm(range(steps), desc=desc, leave=False, mininterval=2.0):
        loss = batch_loss(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses
