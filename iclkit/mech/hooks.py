"""Hook points: read and patch a transformer's internal activations by stable names.

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

Reading::

    with capture(model, ["blocks.3.attn.hook_pattern"]) as cache:
        model(input_ids)
    pattern = cache["blocks.3.attn.hook_pattern"]

Writing (activation patching): each function receives the activation and returns the tensor
that replaces it, of the same shape; adding to an activation is returning ``x + delta``::

    def block_label(scores):
        scores = scores.clone()
        scores[:, :, 7, :7] = float("-inf")  # position 7 attends to itself only
        return scores

    with patch(model, {"blocks.0.attn.hook_attn_scores": block_label}):
        logits = model(input_ids).logits

A patch at ``hook_attn_scores`` changes the softmax that follows it, one at ``hook_pattern``
the weighted sum, one at ``hook_q``/``hook_k``/``hook_v`` the scores and outputs computed
from them. Gradients flow through patched activations. Reading leaves the model's outputs
unchanged and an identity patch does too (the tests check both); everything is undone when
the ``with`` block ends, also on an exception. Nested blocks apply their functions in the
order the blocks were entered, so a capture inside a patch records the patched activation.
On a Hugging Face model the attention is computed, during the block only, by an eager
implementation registered with transformers' attention interface, which applies the hooks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
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
Hook = Callable[[torch.Tensor], torch.Tensor]
"""A function run at a hook point: takes the activation, returns the one the model uses."""


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
    selected = _select(hook_names(model), names)
    cache = ActivationCache()
    with _hooked(model, {name: _recorder(cache, name) for name in selected}):
        yield cache


@contextmanager
def patch(model: nn.Module, patches: Mapping[str, Hook]) -> Iterator[None]:
    """Replace the named activations of every forward pass run inside the ``with`` block.

    ``patches`` maps hook names to functions that take the activation and return its
    replacement, a tensor of the same shape (return ``x + delta`` to add to it). The hooks are
    removed when the block ends, also on an exception.

    Raises:
        ConfigError: if a name is unknown, the model is not a toy transformer or a decoder-only
            Hugging Face model, or (during a forward pass) a function returns something other
            than a tensor of the activation's shape.
    """
    _select(hook_names(model), patches)
    with _hooked(model, {name: _checked(name, fn) for name, fn in patches.items()}):
        yield


def _recorder(cache: ActivationCache, name: str) -> Hook:
    def record(activation: torch.Tensor) -> torch.Tensor:
        cache[name] = activation.detach()
        return activation

    return record


def _checked(name: str, fn: Hook) -> Hook:
    def apply(activation: torch.Tensor) -> torch.Tensor:
        result = fn(activation)
        if not isinstance(result, torch.Tensor) or result.shape != activation.shape:
            got = tuple(result.shape) if isinstance(result, torch.Tensor) else type(result)
            raise ConfigError(
                f"the patch of {name!r} returned {got}, not a tensor of the activation's shape "
                f"{tuple(activation.shape)}. Fix: return the replacement activation (e.g. "
                "x + delta, or x.clone() with entries changed)"
            )
        return result

    return apply


def _replace_first(value: Any, hook: Hook) -> Any:
    """``value`` with its tensor (or its first element's, for a tuple output) passed through."""
    if isinstance(value, tuple | list):
        return type(value)([hook(value[0]), *value[1:]])
    return hook(value)


def _output_hook(hook: Hook) -> Callable[..., Any]:
    def forward_hook(module: nn.Module, inputs: Any, output: Any) -> Any:
        return _replace_first(output, hook)

    return forward_hook


def _input_hook(hook: Hook) -> Callable[..., Any]:
    def pre_hook(
        module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if args:
            return (hook(args[0]), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hook(kwargs["hidden_states"])}

    return pre_hook


@contextmanager
def _hooked(model: nn.Module, hooks: dict[str, Hook]) -> Iterator[None]:
    """Run ``hooks`` (hook name → function of the activation) inside the ``with`` block."""
    handles: list[Any] = []
    points = {name: m for name, m in model.named_modules() if isinstance(m, HookPoint)}
    try:
        if points:
            for name, hook in hooks.items():
                handles.append(points[name].register_forward_hook(_output_hook(hook)))
            yield
        else:
            with _hooked_hf_model(model, hooks, handles):
                yield
    finally:
        for handle in handles:
            handle.remove()


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
    model: nn.Module, hooks: dict[str, Hook], handles: list[Any]
) -> Iterator[None]:
    """Install ``hooks`` on an HF model (and, if needed, the hooked attention function)."""
    layers = _decoder_layers(model)
    wanted: dict[int, dict[str, Hook]] = {}
    for name, hook in hooks.items():
        match = _NAME.match(name)
        if match:
            wanted.setdefault(int(match[1]), {})[match[2]] = hook
    inner_hooks: list[tuple[nn.Module, dict[str, Hook]]] = []
    for index, layer in enumerate(layers):
        suffixes = wanted.get(index, {})
        if "hook_resid_pre" in suffixes:
            hook = _input_hook(suffixes["hook_resid_pre"])
            handles.append(layer.register_forward_pre_hook(hook, with_kwargs=True))
        if "hook_resid_post" in suffixes:
            handles.append(layer.register_forward_hook(_output_hook(suffixes["hook_resid_post"])))
        attention = _attention_module(layer, index)
        if "attn.hook_result" in suffixes:
            handles.append(
                attention.register_forward_hook(_output_hook(suffixes["attn.hook_result"]))
            )
        inner = {
            suffix.removeprefix("attn."): hook
            for suffix, hook in suffixes.items()
            if suffix.removeprefix("attn.") in ATTENTION_HOOKS
        }
        if inner:
            inner_hooks.append((attention, inner))
    if not inner_hooks:
        yield
        return
    _register_implementation()
    config: Any = model.config
    previous = config._attn_implementation
    config._attn_implementation = _IMPLEMENTATION
    for attention, inner in inner_hooks:
        stack = attention.__dict__.setdefault("_iclkit_hooks", [])
        stack.append(inner)
    try:
        yield
    finally:
        config._attn_implementation = previous
        for attention, inner in inner_hooks:
            stack = attention.__dict__["_iclkit_hooks"]
            stack.remove(inner)
            if not stack:
                del attention.__dict__["_iclkit_hooks"]


def _register_implementation() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(_IMPLEMENTATION, hooked_attention)
    AttentionMaskInterface.register(_IMPLEMENTATION, eager_mask)


def hooked_attention(
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
    """Eager attention for transformers' attention interface that runs the hook points.

    Computes exactly what transformers' eager attention computes (scaled dot product, optional
    soft-capping, additive mask, softmax in float32) and passes ``hook_q/k/v``,
    ``hook_attn_scores``, ``hook_pattern`` and ``hook_z`` of the module's layer through the
    active :func:`capture` and :func:`patch` hooks, using what they return. Returns
    ``(output (batch, pos, head, d_head), pattern)``.
    """
    hooks: list[dict[str, Hook]] = getattr(module, "_iclkit_hooks", [])

    def run(suffix: str, activation: torch.Tensor) -> torch.Tensor:
        for layer_hooks in hooks:
            if suffix in layer_hooks:
                activation = layer_hooks[suffix](activation)
        return activation

    n_heads = query.shape[1]
    if key.shape[1] != n_heads:
        key = key.repeat_interleave(n_heads // key.shape[1], dim=1)
        value = value.repeat_interleave(n_heads // value.shape[1], dim=1)
    query = run("hook_q", query.transpose(1, 2)).transpose(1, 2)
    key = run("hook_k", key.transpose(1, 2)).transpose(1, 2)
    value = run("hook_v", value.transpose(1, 2)).transpose(1, 2)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        mask = attention_mask[:, :, :, : key.shape[-2]]
        masked = torch.isneginf(mask) | (mask <= torch.finfo(mask.dtype).min)
        scores = (scores + mask).masked_fill(masked, float("-inf"))
    scores = run("hook_attn_scores", scores)
    # -inf as the dtype's minimum, like the eager additive mask: a fully masked row (padding)
    # gets uniform weights instead of NaN
    finite = scores.masked_fill(torch.isneginf(scores), torch.finfo(scores.dtype).min)
    pattern = torch.softmax(finite, dim=-1, dtype=torch.float32).to(query.dtype)
    pattern = nn.functional.dropout(pattern, p=dropout, training=module.training)
    pattern = run("hook_pattern", pattern)
    output = torch.matmul(pattern, value).transpose(1, 2).contiguous()
    output = run("hook_z", output)
    return output, pattern
