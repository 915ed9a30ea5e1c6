"""kNN prompting: anchors on disk, the KL nearest-anchor vote, and the backends' distributions."""

import numpy as np
import pytest

from iclkit import Pool, PromptBuilder
from iclkit.backends.local import LocalBackend
from iclkit.methods import KNNPromptingMethod
from iclkit.methods.anchors import AnchorStore
from iclkit.methods.knn_prompting import _RECENT, AnchorIndex, anchor_indices
from iclkit.methods.voting import vote

VERBALIZER = {"0": "negative", "1": "positive"}
TEMPLATE = {"name": "text", "template": "Review: {text}\nSentiment: {output}"}


def kl(p, q):
    """KL(p ‖ q) over p's kept tokens (renormalised); a token q lacks gets the most it can have."""
    pv = np.array(list(p.values()))
    pv = pv - np.log(np.exp(pv).sum())
    kept = np.exp(np.array(list(q.values())))
    floor = np.log(min(kept.min(), max(1 - kept.sum(), 1e-12)))
    return sum(np.exp(a) * (a - q.get(t, floor)) for t, a in zip(p, pv, strict=True))


def test_divergences_are_kl_of_anchor_to_query_over_the_kept_tokens():
    anchors = [
        {"a": np.log(0.6), "b": np.log(0.3), "c": np.log(0.1)},
        {"b": np.log(0.5), "d": np.log(0.5)},
    ]
    queries = [
        {"a": np.log(0.5), "b": np.log(0.3), "e": np.log(0.1)},  # 0.1 left for the rest
        {"d": 0.0},  # nothing left: a token it lacks is (almost) impossible
    ]
    index = AnchorIndex.build(anchors, ["x", "y"])
    found = index.divergences(queries)
    for i, anchor in enumerate(anchors):
        for j, query in enumerate(queries):
            assert found[i, j] == pytest.approx(kl(anchor, query), abs=1e-9)
    assert found[0, 0] < found[1, 0] and found[1, 1] < found[0, 1]


def test_anchor_choice_is_stable_across_pools_holding_the_same_examples(records):
    whole = Pool.from_records(records)
    part = Pool.from_records(records[2:])
    chosen = {whole[i].id for i in anchor_indices(whole, 6, seed=0)}
    again = {part[i].id for i in anchor_indices(part, 6, seed=0)}
    assert len(chosen) == 6 and len(chosen & again) >= 4
    assert anchor_indices(whole, None, 0) == list(range(12))
    assert {whole[i].id for i in anchor_indices(whole, 6, seed=1)} != chosen


@pytest.mark.slow
def test_anchors_are_cached_on_disk_and_a_second_run_makes_no_anchor_forward(
    tmp_path, sst2_records, single_thread
):
    pool = Pool.from_records(sst2_records[:24])
    builder = PromptBuilder(k=0, formatter={**TEMPLATE, "verbalizer": VERBALIZER}).fit(pool)
    prompts = builder.build_batch(["a gripping, funny film", "dull and lifeless", "not bad"])
    store = tmp_path / "anchors.sqlite"
    first = KNNPromptingMethod(k=3, top=40, cache=str(store))
    predicted = first.predict(prompts, builder, LocalBackend(), VERBALIZER, None)
    assert first.anchors_ == 24 and first.anchor_forwards_ == 24
    # A new process (nothing in memory, a fresh backend) reads every anchor from disk.
    _RECENT.clear()
    second = KNNPromptingMethod(k=3, top=40, cache=str(store))
    again = second.predict(prompts, builder, LocalBackend(), VERBALIZER, None)
    assert second.anchor_forwards_ == 0
    assert [p.label for p in again] == [p.label for p in predicted]
    assert [p.probabilities for p in again] == [p.probabilities for p in predicted]
    # The prediction is the vote of the 3 anchors nearest by KL(anchor ‖ query).
    anchor_prompts = builder.build_batch(list(pool))
    identity = f"{LocalBackend().identity}|top=40"
    stored = AnchorStore(store).get(identity, [p.text for p in anchor_prompts + prompts])
    assert len(stored) == 24 + 3
    for prompt, prediction in zip(prompts, predicted, strict=True):
        distances = [kl(stored[a.text], stored[prompt.text]) for a in anchor_prompts]
        nearest = np.argsort(distances, kind="stable")[:3]
        shares = vote([pool[int(i)].output for i in nearest], ["0", "1"])
        assert prediction.label == ["0", "1"][int(shares.argmax())]
    # Without a store every run computes its anchors again.
    _RECENT.clear()
    uncached = KNNPromptingMethod(k=3, top=40, cache=False)
    uncached.predict(prompts, builder, LocalBackend(), VERBALIZER, None)
    assert uncached.anchor_forwards_ == 24


@pytest.mark.slow
def test_local_next_token_distribution_is_the_full_softmax(sst2_prompts, single_thread):
    import torch

    from iclkit.bundled_models import load_causal_lm

    _, prompts = sst2_prompts(3)
    backend = LocalBackend()
    together = backend.next_token_logprobs(prompts, 5)
    model, tokenizer = load_causal_lm(None, None, "float32")
    for prompt, found in zip(prompts, together, strict=True):
        ids = torch.tensor([tokenizer(prompt.text).input_ids])
        with torch.inference_mode():
            logprobs = torch.log_softmax(model(ids).logits[0, -1].float(), -1)
        best = torch.topk(logprobs, 5)
        assert list(found) == tokenizer.convert_ids_to_tokens(best.indices.tolist())
        np.testing.assert_allclose(list(found.values()), best.values.tolist(), atol=1e-4)
    alone = LocalBackend().next_token_logprobs(prompts[1:2], 5)[0]
    assert list(alone) == list(together[1])
