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

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from iclkit.backends.base import Backend, ContinuationScore, check_candidates
from iclkit.backends.label_scoring import (
    next_token_logprobs,
    next_token_states,
    score_naive,
    score_shared,
    splits_cleanly,
)
from iclkit.backends.prefix_cache import PrefixCache
from iclkit.bundled_models import BUNDLED_LM, load_causal_lm
from iclkit.errors import BackendError, ConfigError
from iclkit.prompt import Prompt
from iclkit.validation import check_int

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger("iclkit.backends")

Scoring = Literal["shared-prefix", "naive"]
#: Scores of this many recent (prompt, candidates) pairs are kept: scoring a prompt again
#: (the same queries in a calibrated and an uncalibrated cell) costs no forward.
_SCORED_ENTRIES = 8192


class LocalBackend(Backend):
    """A local causal LM (default: the bundled Gemma 3 270M) on CPU or CUDA.

    Args:
        model: ``None`` or ``"gemma-3-270m"`` for the bundled model, or a local Hugging Face
            causal-LM folder. Nothing is downloaded.
        device: ``"cpu"``, ``"cuda"``...; CUDA when available by default.
        dtype: torch dtype name of the weights.
        batch_size: prompts per generation batch, and rows (a prompt, or a prompt and one
            multi-token candidate) per batched scoring forward.
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
        batch_size: int = 32,
        scoring: Scoring = "shared-prefix",
        max_length: int | None = None,
        prefix_cache_tokens: int = 16_384,
    ) -> None:
        if scoring not in ("shared-prefix", "naive"):
            raise ConfigError(f"scoring must be 'shared-prefix' or 'naive', got {scoring!r}")
        self.model = model
        self.device = device
        self.dtype = dtype
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.scoring = scoring
        self.max_length = max_length
        self.prefix_cache_tokens = check_int("prefix_cache_tokens", prefix_cache_tokens)
        self._prefixes: PrefixCache | None = None
        self._split_checked: bool | None = None
        self._scored: OrderedDict[tuple[str, tuple[str, ...]], list[ContinuationScore]] = (
            OrderedDict()
        )

    @property
    def identity(self) -> str:
        """``local:<model>`` with the bundled model's name or the folder given."""
        return f"local:{self.model or BUNDLED_LM}"

    def count_tokens(self, text: str) -> int:
        """The number of the model's own tokens in ``text`` (its tokenizer, special tokens too).

        Raises:
            ConfigError: if the model cannot be loaded.
        """
        _, tokenizer = self._lm()
        return len(tokenizer(text).input_ids)

    def _lm(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        return load_causal_lm(self.model, self.device, self.dtype)

    def _splits(self, model: PreTrainedModel) -> bool:
        """Whether the shared-prefix path can split this model (checked once, logged if not)."""
        if self._split_checked is None:
            self._split_checked = splits_cleanly(model)
            if not self._split_checked:
                logger.warning(
                    "%s: logits are not the output embedding of the decoder's hidden states; "
                    "label scoring falls back to one full forward per candidate",
                    self.identity,
                )
        return self._split_checked

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
        The shared-prefix path batches prompts that share a prefix and reuses the key/values
        of recent prompts (:mod:`iclkit.backends.label_scoring`); a (prompt, candidates)
        pair scored recently by this backend is answered from memory. Results come back in
        the input order.

        Raises:
            BackendError: if a candidate tokenizes to nothing, a prompt plus candidate exceeds
                the model's context, or ``prompts`` and ``candidates`` differ in length.
            ConfigError: if the model cannot be loaded.
        """
        import torch

        check_candidates(prompts, candidates)
        model, tokenizer = self._lm()
        keys = [(p.text, tuple(c)) for p, c in zip(prompts, candidates, strict=True)]
        todo = list(dict.fromkeys(key for key in keys if key not in self._scored))
        encoded = [[self._encode(tokenizer, model, text, c) for c in cands] for text, cands in todo]
        with torch.inference_mode():
            if self.scoring == "naive" or not self._splits(model):
                fresh = [score_naive(model, e) for e in encoded]
            else:
                pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
                prefixes = self._prefix_cache(model)
                fresh = score_shared(model, pad, encoded, prefixes, self.batch_size)
        self._scored.update(zip(todo, fresh, strict=True))
        while len(self._scored) > _SCORED_ENTRIES:
            self._scored.popitem(last=False)
        return [self._scored[key] for key in keys]

    def next_token_logprobs(self, prompts: Sequence[Prompt], top: int) -> list[dict[str, float]]:
        """The ``top`` likeliest next tokens of each prompt with their log-probabilities.

        Prompts that share a prefix are batched on it as in :meth:`score`, and the key/values
        of recent prompts are reused; the log-softmax is over the whole vocabulary. Tokens are
        the tokenizer's own token strings.

        Raises:
            BackendError: if a prompt exceeds the model's context, or the model's logits are
                not its output embedding of the decoder's states (``splits_cleanly``).
            ConfigError: if ``top`` is not positive or the model cannot be loaded.
        """
        import torch

        check_int("top", top, minimum=1)
        model, tokenizer = self._lm()
        if not self._splits(model):
            raise BackendError(
                f"{self.identity}: next-token distributions need logits that are the output "
                "embedding of the decoder's hidden states, which this model's are not"
            )
        encoded = []
        for prompt in prompts:
            ids = tokenizer(prompt.text).input_ids
            self._check_length(len(ids) + 1, model, "a prompt plus its next token")
            encoded.append(ids)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        with torch.inference_mode():
            states = next_token_states(
                model, pad, encoded, self._prefix_cache(model), self.batch_size
            )
            ids, values = next_token_logprobs(model, states, top)
        return [
            dict(zip(tokenizer.convert_ids_to_tokens(row.tolist()), map(float, lps), strict=True))
            for row, lps in zip(ids, values, strict=True)
        ]

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
