"""Check ``icl-vs-ft``: does ICL behave like fine-tuning of attention (Dai et al. 2023)?

Dai et al. argue that attention over demonstrations acts as an implicit, meta-gradient update of
the attention's key/value projections. On SST-2 with Gemma 3 270M and the same k
demonstrations, this check compares zero-shot (ZSL), in-context learning (ICL) and fine-tuning
(FT: SGD on the attention key/value projections only, one epoch, batch size 1, demonstrations
in order, language-model loss over the demonstration tokens) and reports their metrics. Like the
paper, the FT learning rate is tuned: each rate of a log-spaced grid is tried and the one whose
fine-tuned model is most accurate on held-out dev examples (never the evaluation queries) is
kept. The metrics:

* accuracy of ZSL, ICL and FT;
* Rec2FTP: of the queries FT gets right and ZSL gets wrong, the share ICL also gets right;
* SimAOU: per layer, the cosine between the ICL update and the FT update of the normalised
  attention output at the last token (update = output − ZSL output), beside the cosine with a
  random update;
* SimAM: per layer, the cosine between the ICL attention scores (pre-softmax, last token over
  the query's tokens) and the ZSL scores (before FT) or the FT model's scores (after FT).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from iclkit.errors import ConfigError, DataError
from iclkit.mech.hooks import capture
from iclkit.mech.report import CheckReport, Figure, new_figure, save_png

NAME = "icl-vs-ft"
TEMPLATE = "Review: {text}\nSentiment:"
LABELS = (" negative", " positive")
PAPER = {
    "Rec2FTP": "85.56% / 89.39% (GPT 1.3B / 2.7B)",
    "SimAOU": "0.186 / 0.225 (random ≈ 0)",
    "SimAM before": "0.338 / 0.355",
    "SimAM after": "0.442 / 0.434",
}
LR_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
"""FT learning rates tried by default (log-spaced, about half a decade apart)."""


def sst2_dir() -> Path:
    """``$ICLKIT_SHARED_DATA/sst2`` or ``../shared/data/sst2`` beside the project.

    Raises:
        ConfigError: if the folder does not exist.
    """
    root = os.environ.get("ICLKIT_SHARED_DATA")
    base = Path(root) if root else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    folder = base / "sst2"
    if not folder.is_dir():
        raise ConfigError(
            f"SST-2 folder {folder} not found. Fix: set ICLKIT_SHARED_DATA to the folder "
            "holding sst2/stsa.binary.{train,dev}"
        )
    return folder


def read_sst2(path: Path) -> list[tuple[str, int]]:
    """``(text, label)`` pairs of an SST-2 file with one ``LABEL TEXT`` line per example.

    Raises:
        DataError: on a line whose label is not 0 or 1.
    """
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        label, _, text = line.partition(" ")
        if label not in ("0", "1") or not text:
            raise DataError(
                "expected 'LABEL TEXT' with LABEL 0 or 1", path=path, line=number, field="label"
            )
        pairs.append((text, int(label)))
    return pairs


class Setting(BaseModel):
    """How much of SST-2 the check uses and the FT learning rates it tries.

    ``n_sets`` sets of ``k`` demonstrations (balanced, from stsa.binary.train), the first
    ``n_queries`` dev examples as evaluation queries, the last ``n_select`` dev examples (never
    evaluation queries) to choose the FT learning rate among ``lrs`` (per set), probes run
    ``batch_size`` queries at a time.
    """

    model_config = ConfigDict(frozen=True)

    k: int = Field(16, ge=2)
    n_queries: int = Field(200, ge=1)
    n_select: int = Field(48, ge=1)
    lrs: tuple[float, ...] = Field(LR_GRID, min_length=1)
    batch_size: int = Field(16, ge=1)
    n_sets: int = Field(3, ge=1)


FULL = Setting()
FAST = Setting(k=4, n_queries=24, n_select=16, lrs=(1e-3, 1e-2, 1e-1), n_sets=1)


class Probe(NamedTuple):
    """What a model does at the last token of each query.

    ``predictions``: the label whose first token scores higher; ``outputs``: per query and
    layer, the attention output (after the output projection) divided by its norm,
    (queries, layers, d_model); ``scores`` and ``patterns``: per query, the pre-softmax
    attention scores and the attention probabilities of the last token over the query's
    tokens, (layers, heads × query tokens).
    """

    predictions: list[int]
    outputs: torch.Tensor
    scores: list[torch.Tensor]
    patterns: list[torch.Tensor]


def _attention_params(model: Any) -> list[torch.nn.Parameter]:
    return [
        parameter
        for name, parameter in model.named_parameters()
        if name.endswith(("k_proj.weight", "v_proj.weight"))
    ]


def fine_tune(model: Any, demonstrations: list[list[int]], lr: float) -> Any:
    """A copy of ``model`` after one epoch of SGD (batch 1) on the demonstrations' LM loss.

    Only the attention key and value projections change; ``model`` is left as it was.
    """
    tuned = copy.deepcopy(model)
    for parameter in tuned.parameters():
        parameter.requires_grad_(False)
    trainable = _attention_params(tuned)
    for parameter in trainable:
        parameter.requires_grad_(True)
    optimizer = torch.optim.SGD(trainable, lr=lr)
    tuned.train()
    for ids in demonstrations:
        tensor = torch.tensor([ids])
        loss = tuned(tensor, labels=tensor).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    tuned.eval()
    for parameter in trainable:
        parameter.requires_grad_(False)
    return tuned


def probe(
    model: Any,
    queries: list[list[int]],
    n_query: list[int],
    label_ids: list[int],
    prefix: Any = None,
) -> Probe:
    """Run ``queries`` as one right-padded batch (after the cached ``prefix``, if given).

    The last ``n_query[i]`` tokens of ``queries[i]`` are the query tokens SimAM looks at.
    Padding goes after each query and attention is causal, so no real token sees it.
    """
    n_layers = model.config.num_hidden_layers
    names = [f"blocks.{i}.attn.hook_result" for i in range(n_layers)]
    names += [f"blocks.{i}.attn.hook_attn_scores" for i in range(n_layers)]
    names += [f"blocks.{i}.attn.hook_pattern" for i in range(n_layers)]
    width = max(len(ids) for ids in queries)
    ids = torch.tensor([row + [0] * (width - len(row)) for row in queries])
    last = torch.tensor([len(row) - 1 for row in queries])
    keep = torch.unique(last)
    kwargs: dict[str, Any] = {}
    if prefix is not None:
        cache = copy.deepcopy(prefix)
        cache.batch_repeat_interleave(len(queries))
        kwargs = {"cache": cache, "use_cache": True}
    with torch.no_grad(), capture(model, names) as cache_:
        logits = model(ids, logits_to_keep=keep, **kwargs).logits
    rows = torch.arange(len(queries))
    label_logits = logits[rows, torch.searchsorted(keep, last)][:, label_ids]
    outputs = torch.stack(
        [cache_[f"blocks.{i}.attn.hook_result"][rows, last] for i in range(n_layers)], dim=1
    )

    def over_query(hook: str) -> list[torch.Tensor]:
        rows = []
        for row, (end, size) in enumerate(zip(last.tolist(), n_query, strict=True)):
            per_layer = []
            for i in range(n_layers):
                values = cache_[f"blocks.{i}.attn.{hook}"][row, :, end]
                stop = values.shape[-1] - width + end + 1  # keys: cached prefix, then query
                per_layer.append(values[:, stop - size : stop].flatten())
            rows.append(torch.stack(per_layer))
        return rows

    return Probe(
        predictions=label_logits.argmax(-1).tolist(),
        outputs=outputs / outputs.norm(dim=-1, keepdim=True),
        scores=over_query("hook_attn_scores"),
        patterns=over_query("hook_pattern"),
    )


def probe_all(
    model: Any,
    queries: list[list[int]],
    n_query: list[int],
    label_ids: list[int],
    batch_size: int,
    prefix: Any = None,
    desc: str = "probe",
) -> Probe:
    """:func:`probe` over ``queries`` in batches of ``batch_size``, results concatenated."""
    parts = [
        probe(
            model,
            queries[start : start + batch_size],
            n_query[start : start + batch_size],
            label_ids,
            prefix,
        )
        for start in tqdm(range(0, len(queries), batch_size), desc=desc, leave=False)
    ]
    return Probe(
        predictions=[p for part in parts for p in part.predictions],
        outputs=torch.cat([part.outputs for part in parts]),
        scores=[s for part in parts for s in part.scores],
        patterns=[s for part in parts for s in part.patterns],
    )


def _centre(scores: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Per layer and head, scores minus their mean over the query tokens (flattened back)."""
    per_head = scores.view(scores.shape[0], n_heads, -1)
    return (per_head - per_head.mean(-1, keepdim=True)).flatten(1)


def _balanced_demonstrations(
    train_set: list[tuple[str, int]], k: int, generator: torch.Generator
) -> list[tuple[str, int]]:
    picks: list[tuple[str, int]] = []
    for label in (0, 1):
        pool = [pair for pair in train_set if pair[1] == label]
        order = torch.randperm(len(pool), generator=generator)[: k // 2]
        picks += [pool[int(i)] for i in order]
    return [picks[int(i)] for i in torch.randperm(len(picks), generator=generator)]


class SetResult(NamedTuple):
    """What one demonstration set gives: scalar metrics, per-layer similarities, LR search."""

    metrics: dict[str, float]
    per_layer: dict[str, torch.Tensor]
    search: dict[str, list[float]]
    helped: int
    recovered: int


def run_set(
    model: Any,
    tokenizer: Any,
    picks: list[tuple[str, int]],
    setting: Setting,
    evaluation: tuple[list[list[int]], list[int], Probe],
    held_out: tuple[list[list[int]], list[int], list[int]],
    generator: torch.Generator,
) -> SetResult:
    """Tune FT on the held-out examples, then compare ZSL, ICL and FT for one demonstration set.

    ``evaluation`` is (query tokens, labels, ZSL probe), ``held_out`` (tokens, labels, ZSL
    predictions) of the held-out dev examples.
    """
    n_heads = model.config.num_attention_heads
    encode = tokenizer.encode
    demo_ids = [
        encode(TEMPLATE.format(text=text) + LABELS[label] + "\n\n", add_special_tokens=False)
        for text, label in picks
    ]
    label_ids = [encode(word, add_special_tokens=False)[0] for word in LABELS]
    bos = [tokenizer.bos_token_id]
    tokens, labels, zsl = evaluation
    held_tokens, held_labels, held_zsl = held_out

    def zero_shot(current: Any, queries: list[list[int]], desc: str) -> Probe:
        lengths = [len(ids) for ids in queries]
        return probe_all(
            current,
            [bos + ids for ids in queries],
            lengths,
            label_ids,
            setting.batch_size,
            None,
            desc,
        )

    search: dict[str, list[float]] = {"lr": [], "accuracy": [], "changed": []}
    chosen: tuple[float, float, Any] | None = None
    for lr in sorted(setting.lrs):
        tuned = fine_tune(model, [bos + ids for ids in demo_ids], lr)
        predictions = zero_shot(tuned, held_tokens, f"held-out FT lr={lr:g}").predictions
        held_accuracy = _share([p == y for p, y in zip(predictions, held_labels, strict=True)])
        search["lr"].append(lr)
        search["accuracy"].append(held_accuracy)
        search["changed"].append(
            _share([p != z for p, z in zip(predictions, held_zsl, strict=True)])
        )
        if chosen is None or held_accuracy >= chosen[1]:
            chosen = (lr, held_accuracy, tuned)
    assert chosen is not None  # Setting.lrs has at least one rate
    lr, held_accuracy, tuned = chosen

    lengths = [len(ids) for ids in tokens]
    with torch.no_grad():
        prefix = model(
            torch.tensor([bos + [t for ids in demo_ids for t in ids]]),
            use_cache=True,
            logits_to_keep=1,
        ).cache
    icl = probe_all(model, tokens, lengths, label_ids, setting.batch_size, prefix, "ICL")
    ft = zero_shot(tuned, tokens, "FT")
    probes = {"ZSL": zsl, "ICL": icl, "FT": ft}
    correct = {
        key: [p == y for p, y in zip(value.predictions, labels, strict=True)]
        for key, value in probes.items()
    }
    helped = [not z and f for z, f in zip(correct["ZSL"], correct["FT"], strict=True)]
    recovered = [h and i for h, i in zip(helped, correct["ICL"], strict=True)]
    metrics = {"FT learning rate": lr, "FT held-out accuracy at that rate": held_accuracy}
    metrics |= {f"accuracy {key}": _share(values) for key, values in correct.items()}
    metrics |= {
        f"{key} changed predictions (share)": _share(
            [p != z for p, z in zip(probes[key].predictions, zsl.predictions, strict=True)]
        )
        for key in ("ICL", "FT")
    }
    cosine = torch.nn.functional.cosine_similarity
    icl_update = icl.outputs - zsl.outputs
    ft_update = ft.outputs - zsl.outputs
    noise = torch.randn(icl_update.shape, generator=generator)
    centred = {key: [_centre(s, n_heads) for s in value.scores] for key, value in probes.items()}

    def simam(first: list[torch.Tensor], second: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([cosine(a, b, dim=-1) for a, b in zip(first, second, strict=True)])

    per_layer = {
        "SimAOU": cosine(icl_update, ft_update, dim=-1).mean(0),
        "SimAOU random": cosine(icl_update, noise, dim=-1).mean(0),
        "SimAM before": simam(icl.scores, zsl.scores).mean(0),
        "SimAM after": simam(icl.scores, ft.scores).mean(0),
        "SimAM before (centred)": simam(centred["ICL"], centred["ZSL"]).mean(0),
        "SimAM after (centred)": simam(centred["ICL"], centred["FT"]).mean(0),
        "SimAM before (post-softmax)": simam(icl.patterns, zsl.patterns).mean(0),
        "SimAM after (post-softmax)": simam(icl.patterns, ft.patterns).mean(0),
    }
    return SetResult(metrics, per_layer, search, sum(helped), sum(recovered))


def run(fast: bool = False, seed: int = 0, setting: Setting | None = None) -> CheckReport:
    """Compare ZSL, ICL and FT on SST-2 dev queries with Gemma 3 270M.

    ``setting`` defaults to :data:`FAST` or :data:`FULL`. For each of ``setting.n_sets``
    demonstration sets the FT learning rate is the one of ``setting.lrs`` whose fine-tuned
    model is most accurate on the held-out dev examples (ties: the larger rate, the one that
    moves the model more). Figures are means over the sets (with their standard deviation);
    Rec2FTP pools the FT-helped queries of all sets.

    Raises:
        ConfigError: if the SST-2 folder is missing or the dev set is too small for the
            evaluation and held-out examples together.
    """
    from iclkit.bundled_models import load_causal_lm

    setting = setting or (FAST if fast else FULL)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    folder = sst2_dir()
    train_set = read_sst2(folder / "stsa.binary.train")
    dev_set = read_sst2(folder / "stsa.binary.dev")
    if setting.n_queries + setting.n_select > len(dev_set):
        raise ConfigError(
            f"n_queries={setting.n_queries} + n_select={setting.n_select} exceed the "
            f"{len(dev_set)} dev examples. Fix: lower one of them"
        )
    model, tokenizer = load_causal_lm(None, device="cpu")
    label_ids = [tokenizer.encode(word, add_special_tokens=False)[0] for word in LABELS]
    bos = [tokenizer.bos_token_id]

    def encoded(pairs: list[tuple[str, int]]) -> list[list[int]]:
        return [
            tokenizer.encode(TEMPLATE.format(text=text), add_special_tokens=False)
            for text, _ in pairs
        ]

    def zero_shot(tokens: list[list[int]], desc: str) -> Probe:
        lengths = [len(ids) for ids in tokens]
        queries = [bos + ids for ids in tokens]
        return probe_all(model, queries, lengths, label_ids, setting.batch_size, None, desc)

    held_pairs = dev_set[len(dev_set) - setting.n_select :]
    held_tokens = encoded(held_pairs)
    held_out = (
        held_tokens,
        [label for _, label in held_pairs],
        zero_shot(held_tokens, "held-out ZSL").predictions,
    )
    queries = dev_set[: setting.n_queries]
    tokens = encoded(queries)
    evaluation = (tokens, [label for _, label in queries], zero_shot(tokens, "ZSL"))
    results = [
        run_set(
            model,
            tokenizer,
            _balanced_demonstrations(train_set, setting.k, generator),
            setting,
            evaluation,
            held_out,
            generator,
        )
        for _ in range(setting.n_sets)
    ]
    helped = sum(result.helped for result in results)
    rec2ftp = sum(result.recovered for result in results) / helped if helped else float("nan")
    per_set_rec2ftp = [r.recovered / r.helped if r.helped else float("nan") for r in results]
    per_layer = {
        key: torch.stack([result.per_layer[key] for result in results])
        for key in results[0].per_layer
    }
    paper_accuracy = "ZSL < FT < ICL (paper's models)"
    figures = []
    for key in results[0].metrics:
        values = torch.tensor([r.metrics[key] for r in results], dtype=torch.float64)
        figure = Figure(
            name=key,
            measured=float(values.mean()),
            spread=_std(values),
            paper=paper_accuracy if key.startswith("accuracy") else "-",
        )
        if key == "FT learning rate":
            figure = figure.model_copy(
                update={
                    "paper": "tuned per task (grid search)",
                    "target": f"from the grid {', '.join(f'{v:g}' for v in sorted(setting.lrs))}",
                    "passed": all(r.metrics[key] in setting.lrs for r in results),
                }
            )
        figures.append(figure)
    figures.append(
        Figure(
            name="Rec2FTP (share)",
            measured=rec2ftp,
            spread=_std(torch.tensor(per_set_rec2ftp)),
            paper=PAPER["Rec2FTP"],
        )
    )
    figures.append(Figure(name="FT-helped queries", measured=float(helped), paper="-"))
    for key, values in per_layer.items():
        means = values.mean(-1)  # per set, over layers
        figures.append(
            Figure(
                name=f"{key} (mean over layers)",
                measured=float(means.mean()),
                spread=_std(means),
                paper=PAPER.get(key.split(" (")[0], "≈ 0"),
            )
        )
    return CheckReport(
        check=NAME,
        title="ICL vs fine-tuning of attention K/V (SST-2, Gemma 3 270M)",
        reference="Dai et al. 2023",
        fast=fast,
        seed=seed,
        figures=figures,
        series={name: values.mean(0).tolist() for name, values in per_layer.items()}
        | {
            "per set": [
                {"metrics": r.metrics, "helped": r.helped, "recovered": r.recovered}
                for r in results
            ],
            "lr search": [r.search for r in results],
        },
        notes=[
            f"{setting.n_sets} set(s) of k={setting.k} balanced demonstrations from "
            f"stsa.binary.train; evaluation queries: the first {setting.n_queries} dev examples; "
            "FT: SGD on k_proj/v_proj, one epoch, batch 1, demonstrations in order, LM loss "
            "over the demonstration tokens; figures: mean ± standard deviation over the sets; "
            "Rec2FTP and FT-helped queries pool the queries of all sets",
            f"FT learning rate chosen per set on the last {setting.n_select} dev examples "
            "(never evaluation queries) by FT accuracy, ties to the larger rate",
            "paper: GPT 1.3B/2.7B, 32 demonstrations, six classification tasks averaged; a 270M "
            "model on SST-2 alone is a different regime",
            "raw pre-softmax scores share a large common offset, so their cosine is close to 1 "
            "whatever the model does; the centred variant subtracts each head's mean over the "
            "query tokens first; the post-softmax variant compares attention probabilities",
        ],
    )


def _std(values: torch.Tensor) -> float:
    """Standard deviation over sets (0 for a single set), NaNs left out."""
    values = values[~values.isnan()]
    return float(values.std()) if len(values) > 1 else 0.0


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags)


def plot(report: CheckReport, path: Path) -> Path:
    """Per-layer SimAOU (vs random) and SimAM before/after fine-tuning; return the path."""
    fig, (aou, am) = new_figure(2)
    series = report.series
    layers = list(range(len(series["SimAOU"])))
    aou.plot(layers, series["SimAOU"], "o-", label="SimAOU (ICL vs FT)")
    aou.plot(layers, series["SimAOU random"], "s--", label="random update")
    aou.axhline(0, color="grey", lw=0.6)
    aou.set_xlabel("layer")
    aou.set_title("attention-output update similarity", fontsize=9)
    aou.legend(fontsize=7)
    am.plot(layers, series["SimAM before"], "o-", label="ICL vs ZSL (before FT)")
    am.plot(layers, series["SimAM after"], "s-", label="ICL vs FT (after FT)")
    am.plot(layers, series["SimAM before (post-softmax)"], "o:", label="post-softmax, before")
    am.plot(layers, series["SimAM after (post-softmax)"], "s:", label="post-softmax, after")
    am.set_xlabel("layer")
    am.set_title("attention-score similarity (SimAM)", fontsize=9)
    am.legend(fontsize=7)
    return save_png(fig, path)
