"""Log-likelihoods of candidate continuations from a causal LM's forward passes.

Two paths compute the same numbers (to about 1e-5):

* :func:`score_naive` runs one full forward per (prompt, candidate): the reference.
* :func:`score_shared` sorts the prompts so that those sharing a token prefix (the
  instruction and demonstrations of one experiment cell, a query and its content-free
  calibration inputs) sit together, runs each group's shared prefix once (or takes its
  key/values from a :class:`~iclkit.backends.prefix_cache.PrefixCache`), and runs what follows
  the prefix for the whole group as one left-padded batch on that cache. Candidates of a
  single token need no forward of their own: they are read off the logits after the prompt.

An *encoded* prompt is one ``(token_ids, start)`` pair per candidate: the ids of
``prompt + candidate`` and the index where the candidate's tokens begin.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from iclkit.backends.base import ContinuationScore
from iclkit.backends.prefix_cache import PrefixCache, shared_length

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

Encoded = Sequence[tuple[list[int], int]]


def _sum_logprobs(logits: torch.Tensor, targets: torch.Tensor, first: int = 0) -> ContinuationScore:
    """Sum of ``log_softmax(logits[j])[targets[j]]`` for ``j >= first``."""
    import torch

    logprobs = torch.log_softmax(logits[first:].float(), dim=-1)
    picked = logprobs.gather(-1, targets[first:].unsqueeze(-1)).squeeze(-1)
    return ContinuationScore(logprob=float(picked.sum()), n_tokens=int(picked.numel()))


def score_naive(model: PreTrainedModel, encoded: Encoded) -> list[ContinuationScore]:
    """One forward over prompt + continuation per candidate, keeping only the needed logits."""
    import torch

    scores = []
    for ids, start in encoded:
        tokens = torch.tensor([ids], device=model.device)
        logits = model(tokens, logits_to_keep=len(ids) - start + 1).logits[0, :-1]
        scores.append(_sum_logprobs(logits, tokens[0, start:]))
    return scores


@dataclass(frozen=True)
class _Prepared:
    """A prompt's shared head (the tokens before every candidate) and candidate tails."""

    head: list[int]
    tails: list[list[int]]
    skips: list[int]  # leading tail tokens that belong to the prompt, fed but not scored

    @classmethod
    def of(cls, encoded: Encoded) -> _Prepared:
        shared = min(start for _, start in encoded)
        return cls(
            head=encoded[0][0][:shared],
            tails=[ids[shared:] for ids, _ in encoded],
            skips=[start - shared for _, start in encoded],
        )

    @property
    def single_token(self) -> bool:
        return all(len(tail) == 1 for tail in self.tails)

    @property
    def rows(self) -> int:
        return 1 if self.single_token else len(self.tails)


def _groups(prepared: Sequence[_Prepared], max_rows: int) -> list[list[int]]:
    """Prompt indices in token order, cut into groups that share most of their head."""
    groups: list[list[int]] = []
    rows = 0
    for i in sorted(range(len(prepared)), key=lambda i: prepared[i].head):
        head = prepared[i].head
        if groups and rows + prepared[i].rows <= max_rows:
            shared = shared_length(prepared[groups[-1][0]].head, head)
            if 2 * shared >= len(head):
                groups[-1].append(i)
                rows += prepared[i].rows
                continue
        groups.append([i])
        rows = prepared[i].rows
    return groups


def _prefix(model: PreTrainedModel, head: list[int], prefixes: PrefixCache) -> Any:
    """The key/value cache of ``head`` (``None`` when empty), reusing a stored prefix."""
    import torch

    if not head:
        return None
    reused, cache = prefixes.lookup(head)
    if reused < len(head):
        tokens = torch.tensor([head[reused:]], device=model.device)
        cache = model(tokens, past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache = cache.past_key_values
        prefixes.add(head, cache)
    return cache


def _forward(
    model: PreTrainedModel,
    pad_id: int,
    rows: Sequence[list[int]],
    common: int,
    cache: Any,
    keep: int,
) -> torch.Tensor:
    """The last ``keep`` logits of each row run on ``cache`` (the first ``common`` tokens).

    Rows are left-padded to one width; padding is masked out and skipped in the positions.
    """
    import torch

    width = max(len(row) for row in rows)
    device = model.device
    ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], device=device)
    mask = torch.tensor([[1] * common + [0] * (width - len(r)) + [1] * len(r) for r in rows])
    positions = torch.tensor(
        [[common] * (width - len(r)) + list(range(common, common + len(r))) for r in rows]
    )
    if cache is not None:
        cache.batch_repeat_interleave(len(rows))
    logits: torch.Tensor = model(
        ids,
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        past_key_values=cache,
        use_cache=cache is not None,
        logits_to_keep=keep,
    ).logits
    return logits


def _score_group(
    model: PreTrainedModel, pad_id: int, group: Sequence[_Prepared], prefixes: PrefixCache
) -> list[list[ContinuationScore]]:
    """Score one group: its common prefix once, the rest as batches on its cache.

    Rows run as one left-padded batch, except where a sliding-window layer's window would
    reach over the padding (it counts padded slots): there rows of one length run together.
    """
    import torch

    first = group[0].head
    common = min(
        min(shared_length(first, p.head) for p in group), *(len(p.head) - 1 for p in group)
    )
    cache = _prefix(model, first[:common], prefixes)
    rows: list[list[int]] = []
    needed: list[int] = []  # logits each row must return (its last positions)
    for prompt in group:
        suffix = prompt.head[common:]
        if prompt.single_token:
            rows.append(suffix)
            needed.append(1)
        else:
            rows.extend(suffix + tail[:-1] for tail in prompt.tails)
            needed.extend(len(tail) for tail in prompt.tails)
    window = getattr(model.config, "sliding_window", None)
    if window is None or common + max(map(len, rows)) < window:
        buckets = [list(range(len(rows)))]
    else:
        by_length: dict[int, list[int]] = {}
        for i, tokens in enumerate(rows):
            by_length.setdefault(len(tokens), []).append(i)
        buckets = list(by_length.values())
    logits: list[torch.Tensor] = [torch.empty(0)] * len(rows)
    for bucket in buckets:
        own = copy.deepcopy(cache) if len(buckets) > 1 else cache
        keep = max(needed[i] for i in bucket)
        found = _forward(model, pad_id, [rows[i] for i in bucket], common, own, keep)
        for position, i in enumerate(bucket):
            logits[i] = found[position]
    results: list[list[ContinuationScore]] = []
    row = 0
    for prompt in group:
        scores = []
        for tail, skip in zip(prompt.tails, prompt.skips, strict=True):
            predicted = logits[row][-len(tail) :]
            targets = torch.tensor(tail, device=model.device)
            scores.append(_sum_logprobs(predicted, targets, skip))
            row += 0 if prompt.single_token else 1
        row += 1 if prompt.single_token else 0
        results.append(scores)
    return results


def score_shared(
    model: PreTrainedModel,
    pad_id: int,
    encoded: Sequence[Encoded],
    prefixes: PrefixCache,
    max_rows: int,
) -> list[list[ContinuationScore]]:
    """Score every encoded prompt, batching prompts that share a prefix (module docstring).

    ``max_rows`` bounds the rows of one batched forward (a prompt whose candidates are all
    single tokens is one row, otherwise one row per candidate). Results are in input order.
    """
    prepared = [_Prepared.of(e) for e in encoded]
    results: list[list[ContinuationScore]] = [[] for _ in encoded]
    for group in _groups(prepared, max_rows):
        scored = _score_group(model, pad_id, [prepared[i] for i in group], prefixes)
        for i, scores in zip(group, scored, strict=True):
            results[i] = scores
    return results
