"""Log-likelihoods of candidate continuations from a causal LM's forward passes.

Two paths compute the same numbers (to about 1e-5):

* :func:`score_naive` runs one full forward per (prompt, candidate): the reference.
* :func:`score_shared` sorts the prompts so that those sharing a token prefix (the
  instruction and demonstrations of one experiment cell, a query and its content-free
  calibration inputs) sit together, runs each group's shared prefix once (or takes its
  key/values from a :class:`~iclkit.backends.prefix_cache.PrefixCache`), and runs what follows
  the prefix for the group as left-padded batches of similar length on that cache. Candidates
  of a single token need no forward of their own: they are read off the position after the
  prompt. The decoder runs per group; the output projection onto the vocabulary (for a small
  model with a large vocabulary, a read of as many weights as the whole decoder) runs once
  for all the positions of the call. :func:`splits_cleanly` checks that a model's logits are
  its output embedding of the decoder's last hidden state, which this needs.

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
    """Prompt indices in token order, cut into groups that share most of their head.

    Prompts that share their head with no neighbour (zero-shot prompts, per-query
    demonstrations) are then batched together, up to ``max_rows`` rows: their short common
    prefix runs once and their rows run as one padded batch instead of one forward each.
    """
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
    batched: list[list[int]] = []
    loners = False  # whether the last batch holds prompts that shared with no neighbour
    rows = 0
    for group in groups:
        size = sum(prepared[i].rows for i in group)
        if len(group) == 1 and loners and rows + size <= max_rows:
            batched[-1].append(group[0])
            rows += size
            continue
        batched.append(list(group))
        loners = len(group) == 1
        rows = size
    return batched


def splits_cleanly(model: PreTrainedModel) -> bool:
    """Whether ``model``'s logits equal :func:`_project` of its decoder's hidden states.

    True for the usual causal LMs (an output embedding, optionally Gemma-style soft-capping);
    a model with other logit processing gets the naive path instead.
    """
    import torch

    tokens = torch.tensor([[1, 2, 3, 4]], device=model.device)
    whole = model(tokens).logits[0]
    try:
        split = _project(model, model.base_model(tokens).last_hidden_state[0])
    except (AttributeError, TypeError):  # no separate decoder or output embedding
        return False
    return bool(torch.allclose(whole.float(), split.float(), atol=1e-4, rtol=1e-4))


def _project(model: PreTrainedModel, hidden: torch.Tensor) -> torch.Tensor:
    """Logits of the decoder's last hidden states: the output embedding, soft-capped if set."""
    import torch

    logits: torch.Tensor = model.get_output_embeddings()(hidden)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def _run_head(
    model: PreTrainedModel, head: list[int], prefixes: PrefixCache, *, last: bool = False
) -> tuple[Any, torch.Tensor | None]:
    """The key/value cache of ``head`` (``None`` when empty), reusing a stored prefix.

    With ``last``, also the decoder's hidden state at the last token, which then always runs
    (again, if the whole head was stored). The key/values of ``head`` stay in ``prefixes`` for
    later prompts that start the same way.
    """
    import torch

    if not head:
        return None, None
    reused, cache = prefixes.lookup(head)
    stored = reused == len(head)
    if stored and last and cache is not None:
        reused -= 1
        cache.crop(-1)
    if reused == len(head):
        return cache, None
    output = model.base_model(
        torch.tensor([head[reused:]], device=model.device), cache=cache, use_cache=True
    )
    if not stored:
        prefixes.add(head, output.cache)
    return output.cache, output.last_hidden_state[0, -1:]


def _decode(
    model: PreTrainedModel,
    pad_id: int,
    rows: Sequence[list[int]],
    common: int,
    cache: Any,
    keep: int,
) -> torch.Tensor:
    """The last ``keep`` hidden states of each row, run on ``cache`` (``common`` tokens).

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
    hidden: torch.Tensor = model.base_model(
        ids,
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        cache=cache,
        use_cache=cache is not None,
    ).last_hidden_state
    return hidden[:, -keep:]


def _buckets(rows: Sequence[list[int]], common: int, window: int | None) -> list[list[int]]:
    """Row indices cut into batches of similar length (little padding).

    A batch spans at most 1.5x its shortest row, plus 8 tokens. Where a sliding-window layer's
    window would reach over padding (it counts padded slots), only equal lengths share one.
    """
    exact = window is not None and common + max(map(len, rows)) >= window
    buckets: list[list[int]] = []
    for i in sorted(range(len(rows)), key=lambda i: len(rows[i])):
        if buckets:
            shortest = len(rows[buckets[-1][0]])
            limit = shortest if exact else 1.5 * shortest + 8
            if len(rows[i]) <= limit:
                buckets[-1].append(i)
                continue
        buckets.append([i])
    return buckets


@dataclass(frozen=True)
class _Position:
    """Hidden states that predict one candidate's tail, waiting for the output projection."""

    prompt: int
    hidden: torch.Tensor  # (len(tail), hidden size)
    tail: list[int]
    skip: int


def _decode_group(
    model: PreTrainedModel,
    pad_id: int,
    indices: Sequence[int],
    group: Sequence[_Prepared],
    prefixes: PrefixCache,
) -> list[_Position]:
    """Run one group: its common prefix once, the rest in batches on its key/value cache."""
    if len(group) == 1 and group[0].single_token:
        # Alone with single-token candidates: one pass over the whole head gives all of them.
        (index,), (prompt,) = indices, group
        _, last = _run_head(model, prompt.head, prefixes, last=True)
        assert last is not None  # a head has at least one token
        return [
            _Position(index, last, tail, skip)
            for tail, skip in zip(prompt.tails, prompt.skips, strict=True)
        ]
    first = group[0].head
    common = min(
        min(shared_length(first, p.head) for p in group), *(len(p.head) - 1 for p in group)
    )
    cache, _ = _run_head(model, first[:common], prefixes)
    rows: list[list[int]] = []
    needed: list[int] = []  # hidden states each row must return (its last positions)
    row_of: list[list[int]] = []  # for each prompt, the row of each of its candidates
    for prompt in group:
        suffix = prompt.head[common:]
        if prompt.single_token:
            row_of.append([len(rows)] * len(prompt.tails))
            rows.append(suffix)
            needed.append(1)
        else:
            row_of.append(list(range(len(rows), len(rows) + len(prompt.tails))))
            rows.extend(suffix + tail[:-1] for tail in prompt.tails)
            needed.extend(len(tail) for tail in prompt.tails)
    buckets = _buckets(rows, common, getattr(model.config, "sliding_window", None))
    hidden: dict[int, torch.Tensor] = {}
    for bucket in buckets:
        own = copy.deepcopy(cache) if len(buckets) > 1 else cache
        keep = max(needed[i] for i in bucket)
        found = _decode(model, pad_id, [rows[i] for i in bucket], common, own, keep)
        for position, i in enumerate(bucket):
            hidden[i] = found[position]
    return [
        _Position(index, hidden[row][-len(tail) :], tail, skip)
        for index, prompt, rows_of_prompt in zip(indices, group, row_of, strict=True)
        for tail, skip, row in zip(prompt.tails, prompt.skips, rows_of_prompt, strict=True)
    ]


def _project_and_sum(
    model: PreTrainedModel, positions: Sequence[_Position], n_prompts: int, chunk: int = 256
) -> list[list[ContinuationScore]]:
    """Log-probabilities of every waiting tail through one output projection (in chunks)."""
    import torch

    results: list[list[ContinuationScore]] = [[] for _ in range(n_prompts)]
    if not positions:
        return results
    states = torch.cat([p.hidden for p in positions])
    targets = torch.tensor([t for p in positions for t in p.tail], device=model.device)
    picked = torch.cat(
        [
            torch.log_softmax(_project(model, states[i : i + chunk]).float(), dim=-1)
            .gather(-1, targets[i : i + chunk].unsqueeze(-1))
            .squeeze(-1)
            for i in range(0, len(states), chunk)
        ]
    )
    offset = 0
    for p in positions:
        mine = picked[offset + p.skip : offset + len(p.tail)]
        results[p.prompt].append(ContinuationScore(float(mine.sum()), int(mine.numel())))
        offset += len(p.tail)
    return results


def score_shared(
    model: PreTrainedModel,
    pad_id: int,
    encoded: Sequence[Encoded],
    prefixes: PrefixCache,
    max_rows: int,
) -> list[list[ContinuationScore]]:
    """Score every encoded prompt, batching prompts that share a prefix (module docstring).

    ``max_rows`` bounds the rows of one group (a prompt whose candidates are all single
    tokens is one row, otherwise one row per candidate). Results are in input order.
    """
    prepared = [_Prepared.of(e) for e in encoded]
    positions: list[_Position] = []
    for group in _groups(prepared, max_rows):
        group_prompts = [prepared[i] for i in group]
        positions.extend(_decode_group(model, pad_id, group, group_prompts, prefixes))
    return _project_and_sum(model, positions, len(encoded))


def next_token_states(
    model: PreTrainedModel,
    pad_id: int,
    prompts: Sequence[list[int]],
    prefixes: PrefixCache,
    max_rows: int,
) -> torch.Tensor:
    """The decoder's last hidden state of each prompt: what its next-token distribution projects.

    Prompts sharing a prefix are batched on it exactly as in :func:`score_shared` (each prompt
    is a head with one single-token tail, so one row). Returns ``(len(prompts), hidden)`` in
    input order; :func:`next_token_logprobs` projects them onto the vocabulary.
    """
    import torch

    prepared = [_Prepared(head=list(ids), tails=[[pad_id]], skips=[0]) for ids in prompts]
    states: list[torch.Tensor | None] = [None] * len(prompts)
    for group in _groups(prepared, max_rows):
        found = _decode_group(model, pad_id, group, [prepared[i] for i in group], prefixes)
        for position in found:
            states[position.prompt] = position.hidden[-1]
    if not prompts:
        return torch.zeros((0, int(model.config.hidden_size)))
    return torch.stack([state for state in states if state is not None])


def next_token_logprobs(
    model: PreTrainedModel, states: torch.Tensor, top: int, chunk: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``top`` likeliest next tokens of each hidden state: ``(token ids, log-probabilities)``.

    Both are ``(len(states), top)``, likeliest first; the log-softmax runs over the whole
    vocabulary, in chunks of ``chunk`` states.
    """
    import torch

    ids, values = [], []
    for start in range(0, len(states), chunk):
        logprobs = torch.log_softmax(_project(model, states[start : start + chunk]).float(), -1)
        best = torch.topk(logprobs, min(top, logprobs.shape[-1]), dim=-1)
        ids.append(best.indices)
        values.append(best.values)
    if not ids:
        return torch.zeros((0, top), dtype=torch.long), torch.zeros((0, top))
    return torch.cat(ids), torch.cat(values)
