"""Hook points: read a transformer's internal activations by stable, TransformerLens-style names.

The same names work on any local Hugging Face causal LM whose attention goes through
transformers' attention interface (Gemma, Llama, Qwen, Mistral, ...) and on
:class:`iclkit.mech.toy.ToyTransformer`. For each layer ``l``:

=================================  ====================================================
``blocks.{l}.hook_resid_pre``      residual stream entering the layer (batch, pos, d_model)
``blocks.{l}.attn.hook_q``         queries as used in the dot product, after q-norm and
                                   RoPE where the model has them (batch, pos, head, d_head)
``blocks.{l}.attn.hook_k``         keys, likewise, repeated to one per query head
``blocks.{l}.attn.hook_v``         values, repeated to one per query head
``blocks.{l}.attn.hook_attn_scores``  pre-softmax scores: scaled, soft-capped, masked
                                   (masked entries are ``-inf``) (batch, head, q_pos, k_pos)
``blocks.{l}.attn.hook_pattern``   attention probabilities (batch, head, q_pos, k_pos)
``blocks.{l}.attn.hook_z``         attention-weighted values, before the output projection
                                   (batch, pos, head, d_head)
``blocks.{l}.attn.hook_result``    attention output after the output projection, before the
                                   residual addition (and before any post-attention norm)
                                   (batch, pos, d_model)
``blocks.{l}.hook_resid_post``     residual stream leaving the layer (batch, pos, d_model)
=================================  ====================================================

Usage::

    with capture(model, ["blocks.3.attn.hook_pattern"]) as cache:
        model(input_ids)
    pattern = cache["blocks.3.attn.hook_pattern"]

Reading is all hooks do: the model's outputs are unchanged (the tests check it). On a Hugging
Face model the attention is computed, during the capture only, by an eager implementation
registered with transformers' attention interface, which records the tensors above.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from iclkit.errors import ConfigError

ATTENTION_HOOKS = ("hook_q", "hook_k", "hook_v", "hook_attn_scores", "hook_pattern", "hook_z")
"""Hook points computed inside the attention function (suffixes of ``blocks.{l}.attn.``)."""

LAYER_HOOKS = (
    "hook_resid_pre",
    "attn.hook_q",
    "attn.hook_k",
    "attn.hook_v",
    "attn.hook_attn_scores",
    "attn.hook_pattern",
    "attn.hook_z",
    "attn.hook_result",
    "hook_resid_post",
)
"""Hook points every layer has (suffixes of ``blocks.{l}.``)."""

_IMPLEMENTATION = "iclkit_hooked"
_ATTENTION_MODULE_NAMES = ("self_attn", "attn", "attention", "self_attention")
_NAME = re.compile(r"^blocks\.(\d+)\.(.+)$")

NameFilter = Iterable[str] | Callable[[str], bool] | None


class HookPoint(nn.Module):
    """An identity module marking a named activation of :class:`~iclkit.mech.toy.ToyTransformer`.

    Its qualified module name (``blocks.0.attn.hook_pattern``) is the hook name.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` unchanged (hooks registered on the module see it)."""
        return x


class ActivationCache(dict[str, torch.Tensor]):
    """Activations recorded by :func:`capture`, by hook name (detached tensors)."""

    def __missing__(self, name: str) -> torch.Tensor:
        raise KeyError(
            f"no activation {name!r} was recorded: ask for it in capture(model, names) and run "
            "the model inside the with-block"
        )


def hook_names(model: nn.Module) -> list[str]:
    """Every hook name of ``model``, layer by layer.

    Raises:
        ConfigError: if ``model`` is neither a toy transformer nor a decoder-only HF model.
    """
    points = [name for name, module in model.named_modules() if isinstance(module, HookPoint)]
    if points:
        return points
    n_layers = len(_decoder_layers(model))
    return [f"blocks.{layer}.{suffix}" for layer in range(n_layers) for suffix in LAYER_HOOKS]


def _select(all_names: list[str], names: NameFilter) -> list[str]:
    if names is None:
        return list(all_names)
    if callable(names):
        return [name for name in all_names if names(name)]
    wanted = list(dict.fromkeys(names))
    unknown = [name for name in wanted if name not in set(all_names)]
    if unknown:
        raise ConfigError(
            f"unknown hook name(s) {unknown}; names look like {all_names[:3]} ... "
            f"{all_names[-1]} (see iclkit.mech.hooks.hook_names(model))"
        )
    return wanted


@contextmanager
def capture(model: nn.Module, names: NameFilter = None) -> Iterator[ActivationCache]:
    """Record the named activations of every forward pass run inside the ``with`` block.

    ``names`` is an iterable of hook names, a predicate on names, or ``None`` for all. A later
    forward pass in the same block overwrites the earlier one's activations.

    Raises:
        ConfigError: if a name is unknown, or the model is not a toy transformer or a
            decoder-only Hugging Face model.
    """
    selected = set(_select(hook_names(model), names))
    cache = ActivationCache()
    handles: list[Any] = []
    points = {name: m for name, m in model.named_modules() if isinstance(m, HookPoint)}
    try:
        if points:
            for name in selected:
                handles.append(points[name].register_forward_hook(_recorder(cache, name)))
            yield cache
        else:
            with _hooked_hf_model(model, selected, cache, handles):
                yield cache
    finally:
        for handle in handles:
            handle.remove()


def _recorder(cache: ActivationCache, name: str) -> Callable[..., None]:
    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        cache[name] = _first_tensor(output).detach()

    return hook


def _first_tensor(value: Any) -> torch.Tensor:
    tensor: torch.Tensor = value[0] if isinstance(value, tuple | list) else value
    return tensor


def _decoder_layers(model: nn.Module) -> nn.ModuleList:
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    n_layers = getattr(config, "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and n_layers and len(module) == n_layers:
            return module
    raise ConfigError(
        f"{type(model).__name__} is not a decoder-only Hugging Face model with "
        "config.num_hidden_layers layers in a ModuleList, nor an iclkit toy transformer. "
        "Fix: pass a causal LM loaded with transformers (e.g. iclkit.bundled_models."
        "load_causal_lm) or a ToyTransformer"
    )


def _attention_module(layer: nn.Module, index: int) -> nn.Module:
    for name in _ATTENTION_MODULE_NAMES:
        module = getattr(layer, name, None)
        if isinstance(module, nn.Module):
            return module
    raise ConfigError(
        f"decoder layer {index} ({type(layer).__name__}) has no attention submodule named one "
        f"of {_ATTENTION_MODULE_NAMES}; iclkit cannot hook this architecture"
    )


@contextmanager
def _hooked_hf_model(
    model: nn.Module, selected: set[str], cache: ActivationCache, handles: list[Any]
) -> Iterator[None]:
    """Install hooks (and, if needed, the recording attention function) on an HF model."""
    layers = _decoder_layers(model)
    wanted: dict[int, set[str]] = {}
    for name in selected:
        match = _NAME.match(name)
        if match:
            wanted.setdefault(int(match[1]), set()).add(match[2])
    needs_attention_fn = False
    attention_modules: list[nn.Module] = []
    for index, layer in enumerate(layers):
        suffixes = wanted.get(index, set())
        if "hook_resid_pre" in suffixes:
            handles.append(
                layer.register_forward_pre_hook(_resid_pre(cache, index), with_kwargs=True)
            )
        if "hook_resid_post" in suffixes:
            handles.append(
                layer.register_forward_hook(_recorder(cache, f"blocks.{index}.hook_resid_post"))
            )
        attention = _attention_module(layer, index)
        if "attn.hook_result" in suffixes:
            name = f"blocks.{index}.attn.hook_result"
            handles.append(attention.register_forward_hook(_recorder(cache, name)))
        inner = {s.removeprefix("attn.") for s in suffixes} & set(ATTENTION_HOOKS)
        if inner:
            needs_attention_fn = True
            attention._iclkit_record = (cache, index, inner)  # type: ignore[assignment]
            attention_modules.append(attention)
    if not needs_attention_fn:
        yield
        return
    _register_implementation()
    config: Any = model.config
    previous = config._attn_implementation
    config._attn_implementation = _IMPLEMENTATION
    try:
        yield
    finally:
        config._attn_implementation = previous
        for attention in attention_modules:
            del attention._iclkit_record


def _resid_pre(cache: ActivationCache, index: int) -> Callable[..., None]:
    name = f"blocks.{index}.hook_resid_pre"

    def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        cache[name] = hidden.detach()

    return hook


def _register_implementation() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(_IMPLEMENTATION, recording_attention)
    AttentionMaskInterface.register(_IMPLEMENTATION, eager_mask)


def recording_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    softcap: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention for transformers' attention interface that records the hook points.

    Computes exactly what transformers' eager attention computes (scaled dot product, optional
    soft-capping, additive mask, softmax in float32) and stores ``hook_q/k/v``,
    ``hook_attn_scores``, ``hook_pattern`` and ``hook_z`` of the module's layer in the active
    capture. Returns ``(output (batch, pos, head, d_head), pattern)``.
    """
    n_heads = query.shape[1]
    if key.shape[1] != n_heads:
        key = key.repeat_interleave(n_heads // key.shape[1], dim=1)
        value = value.repeat_interleave(n_heads // value.shape[1], dim=1)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        mask = attention_mask[:, :, :, : key.shape[-2]]
        scores = scores + mask
    pattern = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    pattern = nn.functional.dropout(pattern, p=dropout, training=module.training)
    output = torch.matmul(pattern, value).transpose(1, 2).contiguous()
    record = getattr(module, "_iclkit_record", None)
    if record is not None:
        cache, index, wanted = record
        if attention_mask is not None:
            masked = torch.isneginf(mask) | (mask <= torch.finfo(mask.dtype).min)
            scores = scores.masked_fill(masked, float("-inf"))
        values = {
            "hook_q": query.transpose(1, 2),
            "hook_k": key.transpose(1, 2),
            "hook_v": value.transpose(1, 2),
            "hook_attn_scores": scores,
            "hook_pattern": pattern,
            "hook_z": output,
        }
        for suffix in wanted:
            cache[f"blocks.{index}.attn.{suffix}"] = values[suffix].detach()
    return output, pattern
