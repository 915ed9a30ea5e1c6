"""Check ``label-anchors``: label words are anchors of in-context learning (Wang et al. 2023).

Wang et al. find two information flows in GPT2-XL and GPT-J doing ICL on SST-2 and other
classification tasks: in shallow layers the demonstrations' text flows into the label words
("positive", "negative"), and in deep layers the target position (the last token of the query,
where the answer is predicted) reads from the label words. This check repeats both experiments
on SST-2 with the bundled Gemma 3 270M, with one demonstration per class before each query:

* **Saliency** (the paper's Eq. 1): per layer, I = |Σ_heads A ⊙ ∂L/∂A| with A the attention
  pattern and L the cross-entropy of the label words at the target position, averaged into
  S_wp (text → label words: label positions attending to earlier tokens), S_pq (label words →
  target) and S_ww (every other pair). Gradients reach A through a patch at ``hook_pattern``.
* **Isolation**: the label words' attention to earlier tokens is blocked (their pre-softmax
  scores set to −inf through a patch at ``hook_attn_scores``, so each attends to itself only)
  in the first or the last ``n_layers`` layers, and, as a control, the same for as many random
  non-label tokens. It reports accuracy, label loyalty (share of predictions unchanged) and word
  loyalty (Jaccard overlap of the top-5 vocabulary tokens at the target) against the unpatched
  model.

The BOS token (Gemma's attention sink) is left out of the saliency averages: it is not text of
the prompt, and isolating it changes nothing (it has no earlier token).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from iclkit.errors import ConfigError
from iclkit.mech.hooks import patch
from iclkit.mech.icl_vs_ft import LABELS, TEMPLATE, read_sst2, sst2_dir
from iclkit.mech.report import CheckReport, Figure, new_figure, save_png

NAME = "label-anchors"
FLOWS = ("S_wp", "S_pq", "S_ww")
CONDITIONS = ("label words, first layers", "label words, last layers")
CONTROLS = ("random tokens, first layers", "random tokens, last layers")
PAPER = {
    "flows": "shallow layers: S_wp high, S_pq low; deep layers: S_pq dominates (Fig. 3)",
    "label words, first layers": "large loyalty drop (Fig. 4, GPT2-XL / GPT-J)",
    "label words, last layers": "≈ no drop (Fig. 4)",
    "random tokens, first layers": "≈ no drop, far less than label words (Fig. 4)",
    "random tokens, last layers": "≈ no drop (Fig. 4)",
}


class Setting(BaseModel):
    """How much of SST-2 the check uses.

    ``n_queries`` dev examples (from the first) for the isolation experiment, the first
    ``n_saliency`` of them for the saliency scores, ``shots`` demonstrations per class drawn
    at random from stsa.binary.train for each query, label words isolated in ``n_layers``
    layers, forward passes of ``batch_size`` prompts.
    """

    model_config = ConfigDict(frozen=True)

    n_queries: int = Field(400, ge=1)
    n_saliency: int = Field(200, ge=1)
    shots: int = Field(1, ge=1)
    n_layers: int = Field(5, ge=1)
    batch_size: int = Field(8, ge=1)


FULL = Setting()
FAST = Setting(n_queries=32, n_saliency=12)


class Prompt(NamedTuple):
    """One ICL prompt as token ids, with the label words' positions and the gold label."""

    ids: list[int]
    label_positions: list[int]
    label: int


def build_prompts(
    tokenizer: Any,
    train_set: list[tuple[str, int]],
    queries: list[tuple[str, int]],
    shots: int,
    generator: torch.Generator,
) -> list[Prompt]:
    """For each query: BOS, ``shots`` demonstrations per class in random order, the query.

    A demonstration is ``Review: TEXT\\nSentiment: LABEL\\n\\n`` with the label word one token;
    the query ends with ``Sentiment:``, whose last token is the target position.
    """
    encode = tokenizer.encode
    label_ids = [encode(word, add_special_tokens=False)[0] for word in LABELS]
    separator = encode("\n\n", add_special_tokens=False)
    by_class = [[pair for pair in train_set if pair[1] == label] for label in (0, 1)]
    prompts = []
    for text, label in queries:
        picks = [
            pool[int(i)]
            for pool in by_class
            for i in torch.randint(0, len(pool), (shots,), generator=generator)
        ]
        picks = [picks[int(i)] for i in torch.randperm(len(picks), generator=generator)]
        ids = [tokenizer.bos_token_id]
        positions = []
        for demo_text, demo_label in picks:
            ids += encode(TEMPLATE.format(text=demo_text), add_special_tokens=False)
            positions.append(len(ids))
            ids += [label_ids[demo_label], *separator]
        ids += encode(TEMPLATE.format(text=text), add_special_tokens=False)
        prompts.append(Prompt(ids, positions, label))
    return prompts


def _batch(prompts: list[Prompt], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (causal attention: no real token sees the padding) and last positions."""
    width = max(len(p.ids) for p in prompts)
    ids = torch.tensor([p.ids + [pad] * (width - len(p.ids)) for p in prompts])
    return ids, torch.tensor([len(p.ids) - 1 for p in prompts])


def _target_logits(model: Any, ids: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """Next-token logits at each row's last position (batch, vocab), unembedding only those."""
    keep = torch.unique(last)
    logits: torch.Tensor = model(ids, logits_to_keep=keep).logits
    return logits[torch.arange(len(last)), torch.searchsorted(keep, last)]


def isolation_mask(positions: list[list[int]], width: int) -> torch.Tensor:
    """(batch, 1, width, width), True where a listed position's score on an earlier key is cut."""
    mask = torch.zeros(len(positions), 1, width, width, dtype=torch.bool)
    for row, row_positions in enumerate(positions):
        for position in row_positions:
            mask[row, 0, position, :position] = True
    return mask


def _isolating(mask: torch.Tensor) -> Any:
    def isolate(scores: torch.Tensor) -> torch.Tensor:
        return scores.masked_fill(mask, float("-inf"))

    return isolate


def random_positions(
    prompt: Prompt, generator: torch.Generator, target: int | None = None
) -> list[int]:
    """As many random non-label positions as the prompt has label words.

    Drawn from the tokens after BOS and before the token preceding the target (as Wang et al.
    draw them before the final position), the label words excluded.
    """
    target = len(prompt.ids) - 1 if target is None else target
    candidates = [i for i in range(1, target - 1) if i not in set(prompt.label_positions)]
    order = torch.randperm(len(candidates), generator=generator)[: len(prompt.label_positions)]
    return [candidates[int(i)] for i in order]


class Outcome(NamedTuple):
    """Predictions (label index) and top-5 vocabulary tokens at the target, per prompt."""

    predictions: list[int]
    top5: list[set[int]]


def run_prompts(
    model: Any,
    prompts: list[Prompt],
    label_ids: list[int],
    pad: int,
    batch_size: int,
    blocked: list[list[int]] | None = None,
    layers: list[int] | None = None,
) -> Outcome:
    """Predict each prompt's label, optionally isolating ``blocked`` positions in ``layers``."""
    predictions: list[int] = []
    top5: list[set[int]] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        ids, last = _batch(chunk, pad)
        patches = {}
        if blocked is not None and layers:
            mask = isolation_mask(blocked[start : start + batch_size], ids.shape[1])
            patches = {f"blocks.{i}.attn.hook_attn_scores": _isolating(mask) for i in layers}
        with torch.no_grad(), patch(model, patches):
            target = _target_logits(model, ids, last)
        predictions += target[:, label_ids].argmax(-1).tolist()
        top5 += [set(row.tolist()) for row in target.topk(5, dim=-1).indices]
    return Outcome(predictions, top5)


def _leaf(leaves: dict[int, torch.Tensor], layer: int) -> Any:
    """A patch that swaps the pattern for an identical leaf tensor that collects its gradient."""

    def leaf(pattern: torch.Tensor) -> torch.Tensor:
        leaves[layer] = pattern.detach().requires_grad_(True)
        return leaves[layer]

    return leaf


def saliency_flows(
    model: Any, prompts: list[Prompt], label_ids: list[int], pad: int, batch_size: int
) -> torch.Tensor:
    """Mean S_wp, S_pq, S_ww per layer over ``prompts``: (layers, 3)."""
    n_layers = model.config.num_hidden_layers
    totals = torch.zeros(n_layers, 3)
    with _frozen(model):
        for start in tqdm(range(0, len(prompts), batch_size), desc="saliency", leave=False):
            chunk = prompts[start : start + batch_size]
            totals += _chunk_flows(model, chunk, label_ids, pad)
    return totals / len(prompts)


@contextmanager
def _frozen(model: Any) -> Iterator[None]:
    """Parameters without gradients inside the block (only the patched patterns get them)."""
    flags = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    try:
        for parameter, _ in flags:
            parameter.requires_grad_(False)
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def _chunk_flows(model: Any, chunk: list[Prompt], label_ids: list[int], pad: int) -> torch.Tensor:
    """Summed S_wp, S_pq, S_ww per layer of a batch of prompts: (layers, 3)."""
    n_layers = model.config.num_hidden_layers
    totals = torch.zeros(n_layers, 3)
    ids, last = _batch(chunk, pad)
    leaves: dict[int, torch.Tensor] = {}
    hooks = {f"blocks.{i}.attn.hook_pattern": _leaf(leaves, i) for i in range(n_layers)}
    with patch(model, hooks):
        logits = _target_logits(model, ids, last)[:, label_ids]
    gold = torch.tensor([p.label for p in chunk])
    loss = torch.nn.functional.cross_entropy(logits, gold, reduction="sum")
    loss.backward()  # type: ignore[no-untyped-call]
    for layer in range(n_layers):
        pattern = leaves[layer]
        assert pattern.grad is not None  # every layer's pattern feeds the logits
        saliency = (pattern.detach() * pattern.grad).sum(1).abs()  # (batch, q, k)
        for row, prompt in enumerate(chunk):
            totals[layer] += flows(saliency[row], prompt.label_positions, int(last[row]))
    return totals


def flows(saliency: torch.Tensor, label_positions: list[int], target: int) -> torch.Tensor:
    """S_wp, S_pq, S_ww of one prompt's (q_pos, k_pos) saliency matrix.

    Pairs (i, j) with j < i only (no self-attention), BOS (position 0) left out, padding
    after ``target`` ignored. Returns the three means as a tensor of shape (3,).
    """
    n = target + 1
    matrix = saliency[:n, :n]
    earlier = torch.ones(n, n, dtype=torch.bool).tril(-1)
    earlier[:, 0] = False
    labels = torch.zeros(n, dtype=torch.bool)
    labels[label_positions] = True
    text_to_label = earlier & labels[:, None]
    label_to_target = torch.zeros(n, n, dtype=torch.bool)
    label_to_target[target, label_positions] = True
    other = earlier & ~text_to_label & ~label_to_target
    return torch.stack(
        [matrix[part].mean() for part in (text_to_label, label_to_target, other)]
    ).nan_to_num(0.0)


def _agreement(first: list[int], second: list[int]) -> float:
    return sum(a == b for a, b in zip(first, second, strict=True)) / len(first)


def _word_loyalty(first: list[set[int]], second: list[set[int]]) -> float:
    pairs = zip(first, second, strict=True)
    return sum(len(a & b) / len(a | b) for a, b in pairs) / len(first)


def run(fast: bool = False, seed: int = 0, setting: Setting | None = None) -> CheckReport:
    """Measure the information flows and the isolation effects on SST-2 with Gemma 3 270M.

    Raises:
        ConfigError: if the SST-2 folder is missing, ``n_saliency`` exceeds ``n_queries``, or
            ``n_layers`` exceeds the model's layers.
    """
    from iclkit.bundled_models import load_causal_lm

    setting = setting or (FAST if fast else FULL)
    if setting.n_saliency > setting.n_queries:
        raise ConfigError(
            f"n_saliency={setting.n_saliency} > n_queries={setting.n_queries}. Fix: lower "
            "n_saliency (saliency uses the first n_saliency isolation queries)"
        )
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    folder = sst2_dir()
    train_set = read_sst2(folder / "stsa.binary.train")
    queries = read_sst2(folder / "stsa.binary.dev")[: setting.n_queries]
    model, tokenizer = load_causal_lm(None, device="cpu")
    n_layers = model.config.num_hidden_layers
    if setting.n_layers > n_layers:
        raise ConfigError(
            f"n_layers={setting.n_layers} exceeds the model's {n_layers} layers. Fix: lower it"
        )
    label_ids = [tokenizer.encode(word, add_special_tokens=False)[0] for word in LABELS]
    pad = tokenizer.pad_token_id
    prompts = build_prompts(tokenizer, train_set, queries, setting.shots, generator)
    gold = [p.label for p in prompts]

    layer_sets = {
        "first layers": list(range(setting.n_layers)),
        "last layers": list(range(n_layers - setting.n_layers, n_layers)),
    }
    blocked = {
        "label words": [p.label_positions for p in prompts],
        "random tokens": [random_positions(p, generator) for p in prompts],
    }
    clean = run_prompts(model, prompts, label_ids, pad, setting.batch_size)
    outcomes: dict[str, Outcome] = {}
    for what, positions in blocked.items():
        for where, layers in layer_sets.items():
            outcomes[f"{what}, {where}"] = run_prompts(
                model, prompts, label_ids, pad, setting.batch_size, positions, layers
            )
    per_layer = saliency_flows(
        model, prompts[: setting.n_saliency], label_ids, pad, setting.batch_size
    )
    share = per_layer / per_layer.sum(-1, keepdim=True)
    third = max(1, n_layers // 3)
    shallow, deep = share[:third].mean(0), share[-third:].mean(0)
    crossing = next(
        (layer for layer in range(n_layers) if per_layer[layer, 1] > per_layer[layer, 0]), -1
    )

    clean_accuracy = _agreement(clean.predictions, gold)
    figures = [
        Figure(name="accuracy, no isolation", measured=clean_accuracy, paper="-"),
        Figure(
            name=f"shallow layers (first {third}): share S_wp",
            measured=float(shallow[0]),
            paper=PAPER["flows"],
            target="> share S_pq",
            passed=bool(shallow[0] > shallow[1]),
        ),
        Figure(
            name=f"shallow layers (first {third}): share S_pq",
            measured=float(shallow[1]),
            paper="low",
        ),
        Figure(
            name=f"deep layers (last {third}): share S_pq",
            measured=float(deep[1]),
            paper="dominant",
            target="> share S_wp and S_ww",
            passed=bool(deep[1] > deep[0] and deep[1] > deep[2]),
        ),
        Figure(
            name=f"deep layers (last {third}): share S_wp", measured=float(deep[0]), paper="low"
        ),
        Figure(
            name="first layer with S_pq > S_wp",
            measured=float(crossing),
            paper="middle of the network",
        ),
    ]
    loyalty = {}
    for key, outcome in outcomes.items():
        loyalty[key] = _agreement(outcome.predictions, clean.predictions)
        figures += [
            Figure(
                name=f"{key}: accuracy drop",
                measured=clean_accuracy - _agreement(outcome.predictions, gold),
                paper="-",
            ),
            Figure(name=f"{key}: label loyalty", measured=loyalty[key], paper=PAPER[key]),
            Figure(
                name=f"{key}: word loyalty",
                measured=_word_loyalty(outcome.top5, clean.top5),
                paper=PAPER[key],
            ),
        ]
    first, last = CONDITIONS
    figures += [
        Figure(
            name="label loyalty: first-layer isolation < last-layer isolation",
            measured=loyalty[last] - loyalty[first],
            paper="shallow isolation hurts far more (Fig. 4)",
            target="> 0",
            passed=loyalty[first] < loyalty[last],
        ),
        Figure(
            name="label loyalty, first layers: label words < random tokens",
            measured=loyalty[CONTROLS[0]] - loyalty[first],
            paper="label words matter, random tokens do not (Fig. 4)",
            target="> 0",
            passed=loyalty[first] < loyalty[CONTROLS[0]],
        ),
    ]
    return CheckReport(
        check=NAME,
        title="Label words are anchors (SST-2, Gemma 3 270M)",
        reference="Wang et al. 2023",
        fast=fast,
        seed=seed,
        figures=figures,
        series={
            "flows": {name: per_layer[:, i].tolist() for i, name in enumerate(FLOWS)},
            "shares": {name: share[:, i].tolist() for i, name in enumerate(FLOWS)},
            "loyalty": {
                key: {
                    "label": loyalty[key],
                    "word": _word_loyalty(outcome.top5, clean.top5),
                    "accuracy": _agreement(outcome.predictions, gold),
                }
                for key, outcome in outcomes.items()
            },
            "accuracy": clean_accuracy,
        },
        notes=[
            f"{setting.shots} demonstration(s) per class from stsa.binary.train drawn for each "
            f"query; isolation on the first {setting.n_queries} dev examples, saliency on the "
            f"first {setting.n_saliency}; template 'Review: …\\nSentiment: negative|positive'",
            f"isolation in the first / last {setting.n_layers} of {n_layers} layers (the "
            "paper: 5 of GPT2-XL's 48 and GPT-J's 28); random tokens: as many as there are "
            "label words, drawn per prompt among the non-label tokens after BOS",
            "saliency shares: S / (S_wp + S_pq + S_ww) per layer; BOS left out",
        ],
    )


def plot(report: CheckReport, path: Path) -> Path:
    """Saliency shares per layer and loyalty under isolation; return the path."""
    fig, (flow_axis, bars) = new_figure(2, width=5.0)
    shares = report.series["shares"]
    layers = list(range(len(shares["S_wp"])))
    labels = {"S_wp": "text → label words", "S_pq": "label words → target", "S_ww": "other"}
    for name, label in labels.items():
        flow_axis.plot(layers, shares[name], "o-", ms=3, label=f"{name}: {label}")
    flow_axis.set_xticks(layers[::2])
    flow_axis.set_xlabel("layer")
    flow_axis.set_ylabel("share of saliency")
    flow_axis.set_title("information flow (Wang et al. Fig. 3 setting)", fontsize=9)
    flow_axis.legend(fontsize=7, loc="center right")
    loyalty = report.series["loyalty"]
    keys = list(loyalty)
    positions = range(len(keys))
    width = 0.38
    bars.bar(
        [p - width / 2 for p in positions],
        [loyalty[k]["label"] for k in keys],
        width,
        label="label loyalty",
    )
    bars.bar(
        [p + width / 2 for p in positions],
        [loyalty[k]["word"] for k in keys],
        width,
        label="word loyalty",
    )
    bars.set_xticks(list(positions))
    bars.set_xticklabels([k.replace(", ", "\n") for k in keys], fontsize=6.5)
    bars.set_ylim(0, 1.05)
    bars.set_title("isolation (paper: label words in first layers ≪ rest)", fontsize=9)
    bars.legend(fontsize=7)
    return save_png(fig, path)
