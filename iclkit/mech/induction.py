"""Check ``induction``: induction heads (Olsson et al. 2022) in Gemma 3 270M and in a toy model.

On sequences of random tokens repeated twice, an induction head attends from each token of the
second half to the token right after that token's earlier copy (prefix matching), which lets
the model predict the second half. For every head of the bundled Gemma 3 270M this check
measures the prefix-matching score and the loss on the first vs the second half; then it trains
a toy 2-layer attention-only transformer on repeated random sequences and watches the phase
change (the prefix-matching score jumps and the second-half loss drops), which a 1-layer
control cannot make.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from iclkit.mech.hooks import capture
from iclkit.mech.report import CheckReport, Figure, new_figure, save_png
from iclkit.mech.toy import ToyConfig, ToyTransformer
from iclkit.mech.training import train

NAME = "induction"


def repeated_tokens(
    n_sequences: int,
    n_pos: int,
    lengths: tuple[int, int],
    vocab: tuple[int, int],
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sequences of ``n_pos`` random token ids that end with a random segment repeated twice.

    Each sequence draws its segment length from ``lengths`` (inclusive) and token ids from
    ``vocab`` (``[low, high)``); random filler tokens come first. The varying offset of the
    repeat keeps a purely positional head from solving the task. Returns ``(tokens, start,
    length)``: the first copy occupies ``[start, start + length)``.
    """
    low, high = vocab
    length = torch.randint(lengths[0], lengths[1] + 1, (n_sequences,), generator=generator)
    start = n_pos - 2 * length
    tokens = torch.randint(low, high, (n_sequences, n_pos), generator=generator)
    positions = torch.arange(n_pos)
    second = positions >= (start + length)[:, None]
    source = (positions - length[:, None]).clamp(min=0)
    copied = tokens.gather(1, source)
    return torch.where(second, copied, tokens), start, length


def prefix_matching_scores(
    pattern: torch.Tensor, start: torch.Tensor, length: torch.Tensor
) -> torch.Tensor:
    """Per-head mean attention from each second-copy token to the token after its first copy.

    ``pattern`` is (batch, head, q_pos, k_pos); ``start`` and ``length`` (batch,) locate the
    first copy. Returns (head,).
    """
    batch, heads, n_pos, _ = pattern.shape
    positions = torch.arange(n_pos)
    second = (positions >= (start + length)[:, None]) & (positions < (start + 2 * length)[:, None])
    keys = (positions - length[:, None] + 1).clamp(0, n_pos - 1)
    index = keys[:, None, :, None].expand(batch, heads, n_pos, 1)
    to_next = pattern.gather(-1, index).squeeze(-1)
    return (to_next * second[:, None]).sum(dim=(0, 2)) / second.sum()


def half_losses(
    logits: torch.Tensor, tokens: torch.Tensor, start: torch.Tensor, length: torch.Tensor
) -> tuple[float, float]:
    """Mean next-token loss on the first copy (after its first token) and on the second copy."""
    losses = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten(), reduction="none"
    ).view(tokens.shape[0], -1)
    # losses[:, i] is the loss of predicting token i + 1
    target = torch.arange(1, tokens.shape[1])
    first = (target > start[:, None]) & (target < (start + length)[:, None])
    second = (target >= (start + length)[:, None]) & (target < (start + 2 * length)[:, None])
    return float(losses[first].mean()), float(losses[second].mean())


def gemma_heads(n_sequences: int, length: int, generator: torch.Generator) -> dict[str, Any]:
    """Prefix-matching score of every Gemma 3 270M head, and first/second-half losses."""
    from iclkit.bundled_models import load_causal_lm

    model, tokenizer = load_causal_lm(None, device="cpu")
    body, start, lengths = repeated_tokens(
        n_sequences, 2 * length, (length, length), (1000, 30000), generator
    )
    bos = torch.full((n_sequences, 1), tokenizer.bos_token_id, dtype=torch.long)
    tokens = torch.cat([bos, body], dim=1)
    start = start + 1
    n_layers = model.config.num_hidden_layers
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(n_layers)]
    with torch.no_grad(), capture(model, names) as cache:
        logits = model(tokens).logits
    scores = torch.stack([prefix_matching_scores(cache[name], start, lengths) for name in names])
    first, second = half_losses(logits, tokens, start, lengths)
    return {"scores": scores, "first_half_loss": first, "second_half_loss": second}


def toy_run(
    n_layers: int,
    steps: int,
    generator: torch.Generator,
    *,
    momentum: float = 0.0,
    vocab: int = 32,
    n_pos: int = 32,
    lengths: tuple[int, int] = (8, 16),
    eval_every: int = 50,
    lr: float = 1e-2,
    batch: int = 64,
) -> dict[str, Any]:
    """Train an attention-only toy transformer on repeated random sequences.

    Every ``eval_every`` steps it records the best last-layer head's prefix-matching score and
    the loss on each half of held-out sequences. Returns those curves.
    """
    config = ToyConfig(
        n_layers=n_layers,
        n_heads=2,
        d_model=64,
        vocab_size=vocab,
        n_ctx=n_pos,
        momentum=momentum,
    )
    model = ToyTransformer(config)
    held_out, start, length = repeated_tokens(256, n_pos, lengths, (0, vocab), generator)
    history: dict[str, list[float]] = {"step": [], "score": [], "first": [], "second": []}
    last = f"blocks.{n_layers - 1}.attn.hook_pattern"

    def evaluate(step: int) -> None:
        model.eval()
        with torch.no_grad(), capture(model, [last]) as cache:
            logits = model(held_out)
        first, second = half_losses(logits, held_out, start, length)
        history["step"].append(step)
        history["score"].append(float(prefix_matching_scores(cache[last], start, length).max()))
        history["first"].append(first)
        history["second"].append(second)
        model.train()

    def loss(step: int) -> torch.Tensor:
        if step % eval_every == 0:
            evaluate(step)
        tokens, _, _ = repeated_tokens(batch, n_pos, lengths, (0, vocab), generator)
        logits = model(tokens)
        return torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten()
        )

    train(model, loss, steps=steps, lr=lr, warmup=20, desc=f"toy {n_layers}-layer")
    evaluate(steps)
    return history


def run(fast: bool = False, seed: int = 0) -> CheckReport:
    """Measure Gemma's induction heads, then train the 2-layer model and the 1-layer control."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    gemma = gemma_heads(10, 50, generator)
    scores = gemma["scores"]
    n_heads = scores.shape[1]
    order = scores.flatten().argsort(descending=True)[:5]
    top = [(int(i) // n_heads, int(i) % n_heads, float(scores.flatten()[i])) for i in order]
    steps = 1200 if fast else 2000
    two = toy_run(2, steps, generator)
    one = toy_run(1, steps, generator)
    crossing = next(
        (s for s, v in zip(two["step"], two["score"], strict=True) if v > 0.4), math.inf
    )
    uniform = math.log(32)
    figures = [
        Figure(
            name="Gemma: best head prefix-matching score",
            measured=top[0][2],
            paper="induction heads ≫ others (Olsson Fig.)",
            target="≥ 0.3",
            passed=top[0][2] >= 0.3,
        ),
        Figure(
            name="Gemma: heads with score > 0.3",
            measured=float((scores > 0.3).sum()),
            paper="a few",
        ),
        Figure(name="Gemma: loss first half", measured=gemma["first_half_loss"], paper="high"),
        Figure(
            name="Gemma: loss second half",
            measured=gemma["second_half_loss"],
            paper="≪ first half",
            target="< first half / 2",
            passed=gemma["second_half_loss"] < gemma["first_half_loss"] / 2,
        ),
        Figure(
            name="toy 2-layer: prefix-matching score",
            measured=two["score"][-1],
            paper="jumps in a phase change",
            target="> 0.4",
            passed=two["score"][-1] > 0.4,
        ),
        Figure(
            name="toy 2-layer: step of the phase change",
            measured=float(crossing),
            paper="-",
            target=f"≤ {steps}",
            passed=crossing <= steps,
        ),
        Figure(
            name="toy 2-layer: second-half loss",
            measured=two["second"][-1],
            paper="drops with the phase change",
            target=f"< 0.5·ln 32 = {uniform / 2:.2f}",
            passed=two["second"][-1] < uniform / 2,
        ),
        Figure(
            name="toy 1-layer: prefix-matching score",
            measured=one["score"][-1],
            paper="no induction head",
            target="≤ 0.4",
            passed=one["score"][-1] <= 0.4,
        ),
        Figure(
            name="toy 1-layer: second-half loss",
            measured=one["second"][-1],
            paper="no drop to the induction level",
            target=f"> 0.5·ln 32 = {uniform / 2:.2f}",
            passed=one["second"][-1] > uniform / 2,
        ),
    ]
    return CheckReport(
        check=NAME,
        title="Induction heads: Gemma 3 270M and the toy phase change",
        reference="Olsson et al. 2022",
        fast=fast,
        seed=seed,
        figures=figures,
        series={
            "gemma_scores": scores.tolist(),
            "gemma_top_heads": [{"layer": lay, "head": h, "score": s} for lay, h, s in top],
            "toy_two_layer": two,
            "toy_one_layer": one,
        },
        notes=[
            "Gemma: 10 sequences of 50 random token ids (1000–29999) repeated twice after BOS",
            "toy: vocab 32, 32 positions ending in an 8–16-token segment repeated twice, "
            f"2 heads, d_model 64, {steps} Adam steps of 64 sequences",
            "top Gemma heads (layer, head, score): "
            + ", ".join(f"L{lay}H{h} {s:.2f}" for lay, h, s in top),
        ],
    )


def plot(report: CheckReport, path: Path) -> Path:
    """Heat-map of Gemma's prefix-matching scores and the toy training curves; return the path."""
    fig, (heat, score, loss) = new_figure(3, width=3.8)
    image = heat.imshow(report.series["gemma_scores"], aspect="auto", cmap="viridis")
    heat.set_xlabel("head")
    heat.set_ylabel("layer")
    heat.set_title("Gemma 3 270M prefix matching", fontsize=9)
    fig.colorbar(image, ax=heat, fraction=0.046)
    for key, label in (("toy_two_layer", "2-layer"), ("toy_one_layer", "1-layer")):
        run = report.series[key]
        score.plot(run["step"], run["score"], label=label)
        loss.plot(run["step"], run["second"], label=f"{label} second half")
        loss.plot(run["step"], run["first"], ls=":", label=f"{label} first half")
    score.axhline(0.4, color="grey", ls="--", lw=0.8)
    score.set_xlabel("step")
    score.set_title("toy prefix-matching score", fontsize=9)
    score.legend(fontsize=7)
    loss.set_xlabel("step")
    loss.set_title("toy loss", fontsize=9)
    loss.legend(fontsize=7)
    return save_png(fig, path)
