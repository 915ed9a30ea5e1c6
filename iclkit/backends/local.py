"""The ``local`` backend: a Hugging Face causal LM run in-process with transformers.

Label scoring runs each prompt once and scores every candidate continuation from the cached
key/values (``scoring="shared-prefix"``, the default); ``scoring="naive"`` runs one full forward
per candidate and exists as the reference the fast path is tested and benchmarked against.
The shared-prefix path also keeps the key/values of recent prompts
(:class:`~iclkit.backends.prefix_cache.PrefixCache`): a prompt that starts like one run before
(the same demonstrations for another query, a content-free calibration input after its query)
runs only the tokens after the shared prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from iclkit.backends.base import Backend, Capabilities, ContinuationScore, check_candidates
from iclkit.backends.prefix_cache import PrefixCache
from iclkit.bundled_models import BUNDLED_LM, load_causal_lm
from iclkit.errors import BackendError, ConfigError
from iclkit.prompt import Prompt

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Scoring = Literal["shared-prefix", "naive"]


class LocalBackend(Backend):
    """A local causal LM (default: the bundled Gemma 3 270M) on CPU or CUDA.

    Args:
        model: ``None`` or ``"gemma-3-270m"`` for the bundled model, or a local Hugging Face
            causal-LM folder. Nothing is downloaded.
        device: ``"cpu"``, ``"cuda"``...; CUDA when available by default.
        dtype: torch dtype name of the weights.
        batch_size: prompts per generation batch.
        scoring: ``"shared-prefix"`` (run the prompt once, score all candidates from its
            key/value cache) or ``"naive"`` (one full forward per candidate); both give the
            same log-likelihoods.
        max_length: longest prompt + continuation in tokens; defaults to the model's context
            (``max_position_embeddings``). Longer inputs raise, they are never truncated.
        prefix_cache_tokens: tokens of recent prompts whose key/values are kept for reuse by
            later prompts that share a prefix with them (shared-prefix scoring; about 37 KB
            per token for the bundled Gemma); 0 turns the reuse off.

    Raises:
        ConfigError: for an unknown ``scoring``, a non-positive ``batch_size`` or a negative
            ``prefix_cache_tokens``.
    """

    def __init__(
        self,
        model: str | None = None,
        device: str | None = None,
        dtype: str = "float32",
        batch_size: int = 8,
        scoring: Scoring = "shared-prefix",
        max_length: int | None = None,
        prefix_cache_tokens: int = 16_384,
    ) -> None:
        if scoring not in ("shared-prefix", "naive"):
            raise ConfigError(f"scoring must be 'shared-prefix' or 'naive', got {scoring!r}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        if prefix_cache_tokens < 0:
            raise ConfigError(
                f"prefix_cache_tokens must be >= 0 (0 turns reuse off), got {prefix_cache_tokens!r}"
            )
        self.model = model
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self.scoring = scoring
        self.max_length = max_length
        self.prefix_cache_tokens = prefix_cache_tokens
        self._prefixes: PrefixCache | None = None

    @property
    def capabilities(self) -> Capabilities:
        """Plain-text prompts with log-probabilities; chat messages are not used."""
        return Capabilities(chat=False, completion=True, logprobs=True)

    @property
    def identity(self) -> str:
        """``local:<model>`` with the bundled model's name or the folder given."""
        return f"local:{self.model or BUNDLED_LM}"

    def _lm(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        return load_causal_lm(self.model, self.device, self.dtype)

    def _prefix_cache(self, model: PreTrainedModel) -> PrefixCache:
        """The store of recent prompts' key/values, made on first use."""
        if self._prefixes is None:
            # Sliding-window layers drop what lies beyond the window; shorter entries only.
            window = getattr(model.config, "sliding_window", None)
            self._prefixes = PrefixCache(self.prefix_cache_tokens, window)
        return self._prefixes

    def _context(self, model: PreTrainedModel) -> int:
        if self.max_length is not None:
            return self.max_length
        return int(model.config.max_position_embeddings)

    def _check_length(self, n_tokens: int, model: PreTrainedModel, what: str) -> None:
        limit = self._context(model)
        if n_tokens > limit:
            raise BackendError(
                f"{what} is {n_tokens} tokens, longer than the model's context of {limit} "
                f"tokens ({self.identity}); iclkit never truncates silently. Fix: use fewer "
                "or shorter demonstrations (PromptBuilder token_budget with the model's "
                "tokenizer as length_fn) or a model with a longer context"
            )

    # -- generation -----------------------------------------------------------------------------

    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        max_tokens: int = 16,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> list[str]:
        """Generate a completion of each ``prompt.text`` in batches (greedy at temperature 0).

        Sampling (``temperature > 0``) is reproducible for a given ``seed`` and
        ``batch_size``. The returned text is cut before the first ``stop`` string.

        Raises:
            BackendError: if a prompt plus ``max_tokens`` exceeds the model's context.
            ConfigError: if the model cannot be loaded.
        """
        import torch

        model, tokenizer = self._lm()
        results: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            texts = [p.text for p in prompts[start : start + self.batch_size]]
            batch = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left").to(
                model.device
            )
            self._check_length(
                int(batch.input_ids.shape[1]) + max_tokens, model, "a prompt plus max_tokens"
            )
            options: dict[str, Any] = {"do_sample": False, "top_p": None, "top_k": None}
            if temperature > 0:
                options = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
                if seed is not None:
                    torch.manual_seed(seed + start)
            if stop:
                options |= {"stop_strings": list(stop), "tokenizer": tokenizer}
            with torch.inference_mode():
                output = model.generate(
                    **batch,
                    max_new_tokens=max_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    **options,
                )
            new_tokens = output[:, batch.input_ids.shape[1] :]
            for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True):
                results.append(_cut_at_stop(text, stop))
        return results

    # -- scoring --------------------------------------------------------------------------------

    def score(
        self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]]
    ) -> list[list[ContinuationScore]]:
        """Score every candidate continuation of each prompt (see :class:`Backend`).

        The continuation's tokens are those of ``tokenizer(prompt.text + candidate)`` after
        its longest common prefix with ``tokenizer(prompt.text)``, in both scoring paths.
        Prompts run in the order of their text, so that prompts sharing a prefix run one
        after the other and reuse its key/values; results come back in the input order.

        Raises:
            BackendError: if a candidate tokenizes to nothing, a prompt plus candidate exceeds
                the model's context, or ``prompts`` and ``candidates`` differ in length.
            ConfigError: if the model cannot be loaded.
        """
        import torch

        check_candidates(prompts, candidates)
        model, tokenizer = self._lm()
        results: list[list[ContinuationScore]] = [[] for _ in prompts]
        prefixes = self._prefix_cache(model)
        with torch.inference_mode():
            for i in sorted(range(len(prompts)), key=lambda i: prompts[i].text):
                encoded = [
                    self._encode(tokenizer, model, prompts[i].text, c) for c in candidates[i]
                ]
                if self.scoring == "naive":
                    results[i] = [_score_full(model, ids, start) for ids, start in encoded]
                else:
                    results[i] = _score_shared(model, tokenizer, encoded, prefixes)
        return results

    def _encode(
        self,
        tokenizer: PreTrainedTokenizerBase,
        model: PreTrainedModel,
        text: str,
        continuation: str,
    ) -> tuple[list[int], int]:
        """Token ids of ``text + continuation`` and the index where the continuation starts."""
        prompt_ids = tokenizer(text).input_ids
        full_ids = tokenizer(text + continuation).input_ids
        start = 0
        for a, b in zip(prompt_ids, full_ids, strict=False):
            if a != b:
                break
            start += 1
        if start == len(full_ids):
            raise BackendError(
                f"the candidate continuation {continuation!r} tokenizes to nothing after the "
                f"prompt ({self.identity}). Fix: give every label a non-empty verbalization"
            )
        if start == 0:
            raise BackendError(
                f"{self.identity}: the tokenizer adds no beginning-of-sequence token and the "
                f"continuation {continuation!r} changes the prompt's first token; put at least "
                "one character of prompt before the answer"
            )
        self._check_length(len(full_ids), model, "a prompt plus its candidate continuation")
        return full_ids, start


def _cut_at_stop(text: str, stop: Sequence[str] | None) -> str:
    for marker in stop or ():
        position = text.find(marker)
        if position >= 0:
            text = text[:position]
    return text


def _sum_logprobs(logits: torch.Tensor, targets: torch.Tensor, first: int = 0) -> ContinuationScore:
    """Sum of ``log_softmax(logits[j])[targets[j]]`` for ``j >= first``."""
    import torch

    logprobs = torch.log_softmax(logits[first:].float(), dim=-1)
    picked = logprobs.gather(-1, targets[first:].unsqueeze(-1)).squeeze(-1)
    return ContinuationScore(logprob=float(picked.sum()), n_tokens=int(picked.numel()))


def _score_full(model: PreTrainedModel, ids: list[int], start: int) -> ContinuationScore:
    """Naive path: one forward over prompt + continuation, keeping only the needed logits."""
    import torch

    tokens = torch.tensor([ids], device=model.device)
    n_scored = len(ids) - start
    logits = model(tokens, logits_to_keep=n_scored + 1).logits[0, :-1]
    return _sum_logprobs(logits, tokens[0, start:])


def _run_prefix(
    model: PreTrainedModel, head: list[int], prefixes: PrefixCache
) -> tuple[torch.Tensor, Any]:
    """Logits after ``head`` and its key/value cache, reusing the longest stored prefix.

    At least the last token of ``head`` always runs, for its logits.
    """
    import torch

    reused, cache = prefixes.lookup(head)
    seen = reused == len(head)
    if seen and cache is not None:
        reused -= 1
        cache.crop(-1)
    output = model(
        torch.tensor([head[reused:]], device=model.device),
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    if not seen:
        prefixes.add(head, output.past_key_values)
    return output.logits[0, -1:], output.past_key_values


def _score_shared(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    encoded: Sequence[tuple[list[int], int]],
    prefixes: PrefixCache,
) -> list[ContinuationScore]:
    """Shared-prefix path: the common prefix runs once, the candidates as one batch on its cache.

    A candidate's last token is never fed (its log-probability comes from the position
    before it), so single-token candidates need no forward beyond the prefix.
    """
    import torch

    shared = min(start for _, start in encoded)
    head = encoded[0][0][:shared]
    first, cache = _run_prefix(model, head, prefixes)
    tails = [ids[shared:] for ids, _ in encoded]
    fed = [i for i, tail in enumerate(tails) if len(tail) > 1]
    rows: dict[int, torch.Tensor] = {}
    if fed:
        width = max(len(tails[i]) - 1 for i in fed)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        # Right padding: under the causal mask no real token attends to the padding after it.
        batch = torch.tensor(
            [tails[i][:-1] + [pad] * (width + 1 - len(tails[i])) for i in fed], device=model.device
        )
        cache.batch_repeat_interleave(len(fed))
        logits = model(batch, past_key_values=cache, use_cache=True).logits
        rows = {i: logits[row, : len(tails[i]) - 1] for row, i in enumerate(fed)}
    scores = []
    for i, (tail, (_, start)) in enumerate(zip(tails, encoded, strict=True)):
        predicted = torch.cat([first, rows[i]]) if i in rows else first
        targets = torch.tensor(tail, device=model.device)
        scores.append(_sum_logprobs(predicted, targets, start - shared))
    return scores
