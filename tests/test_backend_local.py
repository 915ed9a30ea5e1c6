"""The local transformers backend on the bundled Gemma 3 270M and real SST-2 prompts."""

import pytest

from iclkit import BackendError
from iclkit.backends.base import ContinuationScore
from iclkit.backends.local import LocalBackend
from iclkit.errors import ConfigError
from iclkit.prompt import Prompt
from iclkit.registry import backends

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prompts(sst2_prompts):
    return sst2_prompts(2)[1]


def test_registered_through_entry_point():
    backend = backends.create({"name": "local", "batch_size": 2})
    assert isinstance(backend, LocalBackend)
    assert backend.identity == "local:gemma-3-270m"


def test_shared_prefix_scores_equal_naive_forwards(prompts):
    long_prompt = prompts[0].model_copy(
        update={"text": "Review: " + "an overlong and tedious film " * 90 + "\nSentiment:"}
    )
    batch = [*prompts, long_prompt]  # the last one is past Gemma's 512-token sliding window
    candidates = [[" positive", " negative", " rather mixed, honestly"]] * len(batch)
    shared = LocalBackend(scoring="shared-prefix").score(batch, candidates)
    naive = LocalBackend(scoring="naive").score(batch, candidates)
    for fast_row, slow_row in zip(shared, naive, strict=True):
        for fast, slow in zip(fast_row, slow_row, strict=True):
            assert fast.n_tokens == slow.n_tokens >= 1
            assert fast.logprob < 0
            assert fast.logprob == pytest.approx(slow.logprob, abs=1e-4)
    assert [s.n_tokens for s in shared[0]][2] > 1


def test_prompts_sharing_demonstrations_reuse_them_and_score_as_naive(prompts):
    """Queries with one demonstration set, a content-free input and a repeat reuse key/values."""
    demos = prompts[0].text[: prompts[0].text.rindex("Review:")]
    queries = ["a gorgeous, witty film", "dull and lifeless", "N/A", "a gorgeous, witty film"]
    batch = [
        prompts[0].model_copy(update={"text": f"{demos}Review: {q}\nSentiment:"}) for q in queries
    ]
    candidates = [[" positive", " negative", " rather mixed, honestly"]] * len(batch)
    backend = LocalBackend()
    reused = backend.score(batch, candidates)
    again = backend.score(batch[::-1], candidates)[::-1]  # every prompt now seen before
    fresh = LocalBackend(prefix_cache_tokens=0).score(batch, candidates)
    naive = LocalBackend(scoring="naive").score(batch, candidates)
    for rows in zip(reused, again, fresh, naive, strict=True):
        for scores in zip(*rows, strict=True):
            assert len({s.n_tokens for s in scores}) == 1
            assert all(s.logprob == pytest.approx(scores[3].logprob, abs=1e-4) for s in scores)
    assert [s.logprob for s in reused[0]] == pytest.approx([s.logprob for s in reused[3]], abs=1e-5)


def test_prefix_cache_keeps_token_budget_and_longest_match():
    import torch
    from transformers import DynamicCache

    from iclkit.backends.prefix_cache import PrefixCache

    def cache_of(n):
        cache = DynamicCache()
        cache.update(
            torch.arange(n, dtype=torch.float32).view(1, 1, n, 1), torch.zeros(1, 1, n, 1), 0
        )
        return cache

    store = PrefixCache(max_tokens=10, max_entry_tokens=8)
    store.add([1, 2, 3, 4], cache_of(4))
    store.add([1, 2, 9], cache_of(3))
    store.add(list(range(9)), cache_of(9))  # too long for an entry: not stored
    assert store.tokens == 7
    length, cache = store.lookup([1, 2, 3, 7, 7])
    assert length == 3 and cache is not None and cache.get_seq_length() == 3
    assert store.lookup([5, 6]) == (0, None)
    store.add([4, 4, 4, 4, 4], cache_of(5))  # evicts the least recently used entry ([1, 2, 9])
    assert store.tokens == 9 and store.lookup([1, 2, 9])[0] == 2
    with pytest.raises(ConfigError, match="prefix_cache_tokens must be a non-negative integer"):
        LocalBackend(prefix_cache_tokens=-1)


def test_greedy_generation_is_deterministic_and_cut_at_stop(prompts):
    backend = LocalBackend(batch_size=2)
    first = backend.generate(prompts, max_tokens=6, stop=["\n"])
    assert len(first) == len(prompts)
    assert all("\n" not in text for text in first)
    assert backend.generate(prompts, max_tokens=6, stop=["\n"]) == first


def test_sampling_is_reproducible_from_seed(prompts):
    backend = LocalBackend()
    runs = [backend.generate(prompts[:2], max_tokens=8, temperature=1.0, seed=s) for s in (1, 1, 2)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_prompt_longer_than_context_raises(prompts):
    backend = LocalBackend(max_length=64)
    with pytest.raises(BackendError, match="longer than the model's context of 64"):
        backend.score(prompts[:1], [[" positive", " negative"]])
    with pytest.raises(BackendError, match="longer than the model's context"):
        backend.generate(prompts[:1], max_tokens=4)


def test_real_context_limit_is_enforced_without_truncation():
    huge = Prompt(text="word " * 33_000, messages=(), query={"input": "x"})
    with pytest.raises(BackendError, match="32768"):
        LocalBackend().score([huge], [[" yes", " no"]])


def test_label_that_tokenizes_to_nothing_raises(prompts):
    with pytest.raises(BackendError, match="tokenizes to nothing"):
        LocalBackend().score(prompts[:1], [[" positive", ""]])


def test_bad_options_and_mismatched_lengths(prompts):
    with pytest.raises(ConfigError, match="scoring"):
        LocalBackend(scoring="fast")
    with pytest.raises(BackendError, match="one list of candidates per prompt"):
        LocalBackend().score(prompts, [[" a", " b"]])


def test_unknown_local_model_folder_is_a_clear_error(tmp_path, prompts):
    with pytest.raises(ConfigError, match="not a local Hugging Face model folder"):
        LocalBackend(model=str(tmp_path / "missing")).score(prompts[:1], [[" a", " b"]])


def test_scores_are_continuation_scores(prompts):
    (row,) = LocalBackend().score(prompts[:1], [[" positive", " negative"]])
    assert all(isinstance(s, ContinuationScore) for s in row)


def test_cache_calls_use_the_current_transformers_api(prompts, recwarn, capfd):
    """Prefix reuse passes key/value caches with no deprecated argument (no warning printed)."""
    demos = prompts[0].text[: prompts[0].text.rindex("Review:")]
    batch = [
        prompts[0].model_copy(update={"text": f"{demos}Review: {q}\nSentiment:"})
        for q in ("a gorgeous, witty film", "dull and lifeless", "N/A")
    ]
    candidates = [[" positive", " negative", " rather mixed, honestly"]] * len(batch)
    LocalBackend().score(batch, candidates)
    printed = capfd.readouterr().err
    messages = [str(warning.message) for warning in recwarn] + printed.splitlines()
    assert not [m for m in messages if "past_key_values" in m or "deprecated" in m.lower()]
