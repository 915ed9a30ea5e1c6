"""Hook points read activations by stable names without changing the model's outputs, and
patch them (write access) on the toy model and on Gemma."""

import pytest

torch = pytest.importorskip("torch")

from iclkit.errors import ConfigError  # noqa: E402
from iclkit.mech.hooks import LAYER_HOOKS, capture, hook_names, patch  # noqa: E402
from iclkit.mech.toy import ToyConfig, ToyTransformer, momentum_weights  # noqa: E402


@pytest.fixture(scope="module")
def gemma():
    from iclkit.bundled_models import load_causal_lm

    torch.set_num_threads(1)
    model, tokenizer = load_causal_lm(None, device="cpu")
    ids = tokenizer(["The cat sat on the mat. The cat sat on the"], return_tensors="pt").input_ids
    return model, ids


@pytest.mark.slow
def test_gemma_hooks_leave_outputs_unchanged_and_patterns_are_causal(gemma):
    model, ids = gemma
    n_layers = model.config.num_hidden_layers
    previous = model.config._attn_implementation
    model.config._attn_implementation = "eager"
    try:
        with torch.no_grad():
            reference = model(ids).logits
            with capture(model) as cache:
                hooked = model(ids).logits
            hidden = model(ids, output_hidden_states=True).hidden_states
    finally:
        model.config._attn_implementation = previous
    assert model.config._attn_implementation == previous
    torch.testing.assert_close(hooked, reference, rtol=0, atol=1e-5)
    assert set(cache) == {f"blocks.{i}.{s}" for i in range(n_layers) for s in LAYER_HOOKS}
    n_pos = ids.shape[1]
    for layer in range(n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
        assert pattern.shape == (1, model.config.num_attention_heads, n_pos, n_pos)
        torch.testing.assert_close(pattern.sum(-1), torch.ones(pattern.shape[:-1]))
        assert float(pattern.triu(1).abs().max()) == 0.0
        scores = cache[f"blocks.{layer}.attn.hook_attn_scores"]
        assert torch.isneginf(scores.triu(1)[..., 0, 1:]).all()
        torch.testing.assert_close(torch.softmax(scores, -1), pattern)
    # the residual stream is the model's own hidden states
    torch.testing.assert_close(cache["blocks.0.hook_resid_pre"], hidden[0])
    torch.testing.assert_close(cache["blocks.5.hook_resid_post"], hidden[6], rtol=0, atol=1e-5)
    # hook_result is the output projection of hook_z
    z = cache["blocks.2.attn.hook_z"]
    o_proj = model.model.layers[2].self_attn.o_proj
    torch.testing.assert_close(cache["blocks.2.attn.hook_result"], o_proj(z.flatten(2)))


@pytest.mark.slow
def test_gemma_selected_hooks_with_the_default_attention(gemma):
    model, ids = gemma
    with torch.no_grad():
        reference = model(ids).logits
        with capture(model, ["blocks.3.attn.hook_pattern", "blocks.3.hook_resid_post"]) as cache:
            hooked = model(ids).logits
        again = model(ids).logits
    assert sorted(cache) == ["blocks.3.attn.hook_pattern", "blocks.3.hook_resid_post"]
    torch.testing.assert_close(hooked, reference, rtol=0, atol=1e-4)
    torch.testing.assert_close(again, reference, rtol=0, atol=0)
    with pytest.raises(KeyError, match="no activation"):
        cache["blocks.4.attn.hook_pattern"]
    with pytest.raises(ConfigError, match="unknown hook name"):
        with capture(model, ["blocks.99.attn.hook_pattern"]):
            pass


@pytest.mark.parametrize("attention", ["softmax", "linear"])
@pytest.mark.parametrize("mlp", [False, True])
def test_toy_transformer_exposes_the_same_hook_names(attention, mlp):
    torch.manual_seed(0)
    config = ToyConfig(
        n_layers=2, n_heads=2, d_model=16, attention=attention, mlp=mlp, vocab_size=11, n_ctx=8
    )
    model = ToyTransformer(config)
    tokens = torch.randint(0, 11, (3, 8))
    names = hook_names(model)
    for layer in range(2):
        for suffix in LAYER_HOOKS:
            assert f"blocks.{layer}.{suffix}" in names
    reference = model(tokens)
    with capture(model) as cache:
        hooked = model(tokens)
    torch.testing.assert_close(hooked, reference, rtol=0, atol=0)
    assert set(cache) == set(names)
    pattern = cache["blocks.1.attn.hook_pattern"]
    assert pattern.shape == (3, 2, 8, 8)
    assert float(pattern.triu(1).abs().max()) == 0.0
    if attention == "softmax":
        torch.testing.assert_close(pattern.sum(-1), torch.ones(3, 2, 8))
    with pytest.raises(ConfigError, match="n_ctx"):
        model(torch.randint(0, 11, (1, 9)))


def test_momentum_zero_is_vanilla_attention_and_weights_follow_the_ema():
    torch.manual_seed(0)
    vanilla = ToyTransformer(ToyConfig(n_layers=1, d_model=8, vocab_size=7, n_ctx=6))
    moment = ToyTransformer(ToyConfig(n_layers=1, d_model=8, vocab_size=7, n_ctx=6, momentum=0.5))
    moment.load_state_dict(vanilla.state_dict())
    tokens = torch.randint(0, 7, (2, 6))
    assert not torch.equal(moment(tokens), vanilla(tokens))
    weights = momentum_weights(4, 0.5, torch.zeros(1))
    expected = torch.tensor(
        [[0, 0, 0, 0], [0.5, 0, 0, 0], [0.25, 0.5, 0, 0], [0.125, 0.25, 0.5, 0]]
    )
    torch.testing.assert_close(weights, expected)


def test_hook_names_reject_an_unknown_model():
    with pytest.raises(ConfigError, match="decoder-only"):
        hook_names(torch.nn.Linear(2, 2))


# -- patching ----------------------------------------------------------------------------------


def _hooks_left(model):
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(getattr(m, "_iclkit_hooks", []))
        for m in model.modules()
    )


@pytest.fixture
def toy():
    torch.manual_seed(0)
    config = ToyConfig(n_layers=2, n_heads=2, d_model=16, mlp=True, vocab_size=11, n_ctx=8)
    return ToyTransformer(config), torch.randint(0, 11, (3, 8))


def test_toy_identity_patches_leave_logits_unchanged_and_are_undone(toy):
    model, tokens = toy
    reference = model(tokens)
    with patch(model, {name: (lambda x: x) for name in hook_names(model)}):
        assert _hooks_left(model) == len(hook_names(model))
        patched = model(tokens)
    torch.testing.assert_close(patched, reference, rtol=0, atol=0)
    assert _hooks_left(model) == 0
    torch.testing.assert_close(model(tokens), reference, rtol=0, atol=0)


def test_toy_patch_adds_to_the_residual_stream(toy):
    model, tokens = toy
    delta = torch.randn(16)
    with capture(model, ["blocks.1.hook_resid_post"]) as clean:
        reference = model(tokens)
    with patch(model, {"blocks.1.hook_resid_post": lambda x: x + delta}):
        with capture(model, ["blocks.1.hook_resid_post"]) as patched_cache:
            patched = model(tokens)
    # a capture inside the patch records the patched activation
    torch.testing.assert_close(
        patched_cache["blocks.1.hook_resid_post"], clean["blocks.1.hook_resid_post"] + delta
    )
    # no final norm: the logits move by the unembedding of delta
    torch.testing.assert_close(patched - reference, model.unembed(delta).expand_as(reference))


def test_toy_scores_patch_isolates_a_position(toy):
    model, tokens = toy

    def isolate(scores):
        scores = scores.clone()
        scores[:, :, 5, :5] = float("-inf")
        return scores

    with patch(model, {"blocks.0.attn.hook_attn_scores": isolate}):
        with capture(model, ["blocks.0.attn.hook_pattern"]) as cache:
            changed = model(tokens)
    pattern = cache["blocks.0.attn.hook_pattern"]
    assert float(pattern[:, :, 5, :5].abs().max()) == 0.0
    torch.testing.assert_close(pattern[:, :, 5, 5], torch.ones(3, 2))
    reference = model(tokens)
    # causal: positions before 5 are untouched, position 5 changes
    torch.testing.assert_close(changed[:, :5], reference[:, :5])
    assert not torch.allclose(changed[:, 5], reference[:, 5])


def test_toy_patch_errors_and_undo_on_exception(toy):
    model, tokens = toy
    with pytest.raises(ConfigError, match="unknown hook name"):
        with patch(model, {"blocks.7.attn.hook_z": lambda x: x}):
            pass
    with pytest.raises(ConfigError, match="not a tensor of the activation's shape"):
        with patch(model, {"blocks.0.attn.hook_z": lambda x: x[:, :1]}):
            model(tokens)
    assert _hooks_left(model) == 0
    with pytest.raises(RuntimeError, match="boom"):
        with patch(model, {"blocks.0.hook_resid_pre": lambda x: x * 0}):
            raise RuntimeError("boom")
    assert _hooks_left(model) == 0


@pytest.mark.slow
def test_gemma_identity_patches_leave_logits_unchanged_and_are_undone(gemma):
    model, ids = gemma
    previous = model.config._attn_implementation
    # transformers keeps hooks of its own (output recorders) once used: count from here
    hooks_before = _hooks_left(model)
    with torch.no_grad():
        default = model(ids).logits
        model.config._attn_implementation = "eager"
        try:
            eager = model(ids).logits
        finally:
            model.config._attn_implementation = previous
        with patch(model, {name: (lambda x: x) for name in hook_names(model)}):
            assert model.config._attn_implementation != previous
            patched = model(ids).logits
        after = model(ids).logits
    torch.testing.assert_close(patched, eager, rtol=0, atol=1e-5)
    assert model.config._attn_implementation == previous
    assert _hooks_left(model) == hooks_before
    torch.testing.assert_close(after, default, rtol=0, atol=0)


@pytest.mark.slow
def test_gemma_patches_change_what_they_should_and_carry_gradients(gemma):
    model, ids = gemma
    n_pos = ids.shape[1]
    with torch.no_grad():
        reference = model(ids).logits
        with patch(model, {"blocks.5.attn.hook_z": torch.zeros_like}):
            ablated = model(ids).logits
        # zeroing z equals zeroing the attention output (the output projection has no bias)
        with patch(model, {"blocks.5.attn.hook_result": torch.zeros_like}):
            ablated_result = model(ids).logits
    assert float((ablated - reference).abs().max()) > 1e-2
    torch.testing.assert_close(ablated, ablated_result, rtol=0, atol=1e-4)
    # gradients reach a patched attention pattern (what saliency scores need)
    leaves = {}

    def leaf(pattern):
        leaves["p"] = pattern.detach().requires_grad_(True)
        return leaves["p"]

    with patch(model, {"blocks.2.attn.hook_pattern": leaf}):
        loss = model(ids).logits[0, -1].logsumexp(-1)
    loss.backward()
    grad = leaves["p"].grad
    assert grad is not None and grad.shape == (1, model.config.num_attention_heads, n_pos, n_pos)
    assert float(grad.abs().sum()) > 0
