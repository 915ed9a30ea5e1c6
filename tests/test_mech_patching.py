"""Activation patching: hook points with write access, on the toy model and on Gemma."""

import pytest

torch = pytest.importorskip("torch")

from iclkit.errors import ConfigError  # noqa: E402
from iclkit.mech.hooks import capture, hook_names, patch  # noqa: E402
from iclkit.mech.toy import ToyConfig, ToyTransformer  # noqa: E402


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


@pytest.fixture(scope="module")
def gemma():
    from iclkit.bundled_models import load_causal_lm

    torch.set_num_threads(1)
    model, tokenizer = load_causal_lm(None, device="cpu")
    ids = tokenizer(["Review: a fine film\nSentiment: positive\n"], return_tensors="pt").input_ids
    return model, ids


@pytest.mark.slow
def test_gemma_identity_patches_leave_logits_unchanged_and_are_undone(gemma):
    model, ids = gemma
    previous = model.config._attn_implementation
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
    assert _hooks_left(model) == 0
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
