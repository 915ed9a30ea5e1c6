"""A small configurable transformer for synthetic in-context learning tasks.

Softmax or linear attention, attention-only or with MLPs, any number of layers and heads,
optional momentum attention (Dai et al. 2023): ``MoAttn(q_t) = Attn(q_t) + Σ_{i<t} η^{t−i} v_i``.
It takes token ids (``vocab_size`` set) or real vectors, and exposes the hook names of
:mod:`iclkit.mech.hooks` (plus ``hook_embed``, ``blocks.{l}.hook_resid_mid`` and
``blocks.{l}.hook_mlp_out``)::

    model = ToyTransformer(ToyConfig(n_layers=2, vocab_size=64, n_ctx=64))
    with capture(model, ["blocks.1.attn.hook_pattern"]) as cache:
        logits = model(tokens)
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from iclkit.errors import ConfigError
from iclkit.mech.hooks import HookPoint


class ToyConfig(BaseModel):
    """Shape and options of a :class:`ToyTransformer`.

    * ``attention``: ``"softmax"`` (scores scaled by 1/√d_head) or ``"linear"`` (no softmax;
      unscaled scores averaged over the attended keys, so a layer sums ``v_j k_jᵀq / N``).
    * ``mask``: ``"causal"`` (each position sees itself and the past) or ``"context"`` (every
      position sees all positions but the last: the last token is a query that is excluded
      from keys and values, as in von Oswald et al. 2023).
    * ``momentum``: η of momentum attention; 0 is vanilla attention.
    * ``vocab_size``: token inputs with an embedding and an unembedding to logits; else the
      input is a real tensor (batch, pos, ``d_input`` or ``d_model``), read in by a linear
      map when ``d_input`` is set and read out to ``d_output`` when that is set.
    * ``n_ctx``: number of learned positional embeddings (0 for none).
    """

    model_config = ConfigDict(frozen=True)

    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(1, ge=1)
    d_model: int = Field(64, ge=1)
    d_head: int | None = Field(None, ge=1)
    attention: Literal["softmax", "linear"] = "softmax"
    mask: Literal["causal", "context"] = "causal"
    mlp: bool = False
    d_mlp: int | None = Field(None, ge=1)
    layer_norm: bool = False
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    vocab_size: int | None = Field(None, ge=2)
    d_input: int | None = Field(None, ge=1)
    d_output: int | None = Field(None, ge=1)
    n_ctx: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> ToyConfig:
        if self.d_head is None and self.d_model % self.n_heads:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                "set d_head explicitly"
            )
        if self.vocab_size is not None and (self.d_input or self.d_output):
            raise ValueError("token models (vocab_size) take no d_input/d_output")
        return self

    @property
    def head_dim(self) -> int:
        """Width of one head (``d_head`` or ``d_model // n_heads``)."""
        return self.d_head or self.d_model // self.n_heads


class ToyAttention(nn.Module):
    """Multi-head softmax or linear attention with optional momentum, and hook points."""

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        width = config.n_heads * config.head_dim
        self.W_Q = nn.Linear(config.d_model, width, bias=False)
        self.W_K = nn.Linear(config.d_model, width, bias=False)
        self.W_V = nn.Linear(config.d_model, width, bias=False)
        self.W_O = nn.Linear(width, config.d_model, bias=False)
        self.hook_q = HookPoint()
        self.hook_k = HookPoint()
        self.hook_v = HookPoint()
        self.hook_attn_scores = HookPoint()
        self.hook_pattern = HookPoint()
        self.hook_z = HookPoint()
        self.hook_result = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention output after W_O, shape (batch, pos, d_model)."""
        cfg = self.config
        batch, n_pos, _ = x.shape
        split = (batch, n_pos, cfg.n_heads, cfg.head_dim)
        q = self.hook_q(self.W_Q(x).view(split))
        k = self.hook_k(self.W_K(x).view(split))
        v = self.hook_v(self.W_V(x).view(split))
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k)
        allowed = attention_mask(n_pos, cfg.mask, x.device)
        if cfg.attention == "softmax":
            scores = scores / cfg.head_dim**0.5
        scores = self.hook_attn_scores(scores.masked_fill(~allowed, float("-inf")))
        if cfg.attention == "softmax":
            pattern = torch.softmax(scores, dim=-1)
        else:
            counts = allowed.sum(-1, keepdim=True).clamp(min=1)
            pattern = torch.where(allowed, scores, torch.zeros_like(scores)) / counts
        pattern = self.hook_pattern(pattern)
        z = torch.einsum("bhqk,bkhd->bqhd", pattern, v)
        if cfg.momentum:
            z = z + torch.einsum("qk,bkhd->bqhd", momentum_weights(n_pos, cfg.momentum, x), v)
        z = self.hook_z(z)
        result: torch.Tensor = self.hook_result(self.W_O(z.reshape(batch, n_pos, -1)))
        return result


def attention_mask(n_pos: int, kind: str, device: torch.device) -> torch.Tensor:
    """Boolean (q_pos, k_pos) mask of the keys each query may attend to (see ToyConfig.mask)."""
    if kind == "causal":
        return torch.ones(n_pos, n_pos, dtype=torch.bool, device=device).tril()
    allowed = torch.ones(n_pos, n_pos, dtype=torch.bool, device=device)
    allowed[:, -1] = False
    return allowed


def momentum_weights(n_pos: int, eta: float, like: torch.Tensor) -> torch.Tensor:
    """The (q_pos, k_pos) matrix with η^{t−i} for i < t and 0 elsewhere."""
    positions = torch.arange(n_pos, device=like.device, dtype=like.dtype)
    lag = positions[:, None] - positions[None, :]
    weights = torch.where(lag > 0, eta ** lag.clamp(min=0), torch.zeros_like(lag))
    return weights


class ToyBlock(nn.Module):
    """One residual block: attention, then (optionally) an MLP, each pre-normed if asked."""

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.ln1 = nn.LayerNorm(config.d_model) if config.layer_norm else nn.Identity()
        self.attn = ToyAttention(config)
        self.hook_resid_pre = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.hook_resid_post = HookPoint()
        if config.mlp:
            width = config.d_mlp or 4 * config.d_model
            self.ln2 = nn.LayerNorm(config.d_model) if config.layer_norm else nn.Identity()
            self.mlp = nn.Sequential(
                nn.Linear(config.d_model, width), nn.GELU(), nn.Linear(width, config.d_model)
            )
            self.hook_mlp_out = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The residual stream after the block."""
        x = self.hook_resid_pre(x)
        x = self.hook_resid_mid(x + self.attn(self.ln1(x)))
        if self.config.mlp:
            x = x + self.hook_mlp_out(self.mlp(self.ln2(x)))
        output: torch.Tensor = self.hook_resid_post(x)
        return output


class ToyTransformer(nn.Module):
    """A small transformer built from a :class:`ToyConfig` (see the module docstring)."""

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        if config.vocab_size is not None:
            self.embed: nn.Module = nn.Embedding(config.vocab_size, config.d_model)
            self.unembed: nn.Module = nn.Linear(config.d_model, config.vocab_size, bias=False)
        else:
            self.embed = (
                nn.Linear(config.d_input, config.d_model) if config.d_input else nn.Identity()
            )
            self.unembed = (
                nn.Linear(config.d_model, config.d_output) if config.d_output else nn.Identity()
            )
        if config.n_ctx:
            self.pos_embed = nn.Parameter(torch.randn(config.n_ctx, config.d_model) * 0.02)
        self.hook_embed = HookPoint()
        self.blocks = nn.ModuleList(ToyBlock(config) for _ in range(config.n_layers))
        self.ln_final = nn.LayerNorm(config.d_model) if config.layer_norm else nn.Identity()

    def attention(self, layer: int) -> ToyAttention:
        """The attention module of block ``layer``."""
        block = self.blocks[layer]
        assert isinstance(block, ToyBlock)
        return block.attn

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits (token models), read-out values, or the final residual stream.

        Raises:
            ConfigError: if the sequence is longer than ``n_ctx`` positional embeddings.
        """
        x = self.embed(inputs)
        n_pos = x.shape[1]
        if self.config.n_ctx:
            if n_pos > self.config.n_ctx:
                raise ConfigError(
                    f"sequence of {n_pos} positions is longer than n_ctx={self.config.n_ctx}; "
                    "Fix: build the ToyConfig with a larger n_ctx"
                )
            x = x + self.pos_embed[:n_pos]
        x = self.hook_embed(x)
        for block in self.blocks:
            x = block(x)
        output: torch.Tensor = self.unembed(self.ln_final(x))
        return output
