"""ConE and MDL re-ranking: the ranks come from the real bundled model's scores."""

import numpy as np
import pytest

from iclkit import Pool, PromptBuilder
from iclkit.backends.local import LocalBackend
from iclkit.errors import ConfigError
from iclkit.inference import LikelihoodClassifier
from iclkit.selectors.cone import ConESelector
from iclkit.selectors.mdl import MDLSelector

VERBALIZER = {"neg": "negative", "pos": "positive"}
FORMAT = {"name": "text", "template": "Review: {text}\nSentiment: {output}"}
QUERIES = ["a funny, moving film", "boring and far too long"]


def _builder(records, selector, embedding_cache, backend):
    spec = {**selector, "cache": embedding_cache}
    return PromptBuilder(
        selector=spec, formatter={**FORMAT, "verbalizer": VERBALIZER}, k=2, backend=backend
    ).fit(Pool.from_records(records))


def test_options_are_checked():
    with pytest.raises(ConfigError, match="takes no secret options"):
        ConESelector(backend={"name": "openai", "model": "m", "api_key": "sk-secret"})
    with pytest.raises(ConfigError, match="unknown backend"):
        MDLSelector(backend="nowhere")
    with pytest.raises(ConfigError, match="sets must be a positive integer"):
        MDLSelector(sets=0)


@pytest.mark.slow
def test_cone_keeps_the_candidates_that_make_the_query_likeliest(
    records, embedding_cache, single_thread
):
    backend = LocalBackend()
    builder = _builder(records, {"name": "cone", "fetch_k": 5}, embedding_cache, backend)
    selector = builder.selector_
    assert selector.scorer is backend  # the pipeline's own backend scores the candidates
    prompts = builder.build_batch(QUERIES)
    knn = PromptBuilder(selector={"name": "knn", "cache": embedding_cache}, k=5).fit(builder.pool_)
    for query, prompt in zip(QUERIES, prompts, strict=True):
        candidates = [d.index for d in knn.build(query).demonstrations]
        entropy = {}
        for index in candidates:
            head, text = selector.split(builder.pool_.to_query(query), index)
            assert head.text + text == selector.render(builder.pool_.to_query(query), [index]).text
            (score,) = LocalBackend().score([head], [[text]])[0]
            entropy[index] = -score.logprob / score.n_tokens
        expected = sorted(candidates, key=lambda i: entropy[i])[:2]
        chosen = sorted(prompt.demonstrations, key=lambda d: d.rank)
        assert [d.index for d in chosen] == expected
        for demo in chosen:
            assert demo.score == pytest.approx(-entropy[demo.index], abs=1e-4)
        assert prompt.selection_calls == 5 and prompt.selection_tokens > 5 * 10


@pytest.mark.slow
def test_mdl_chooses_the_candidate_set_with_the_most_certain_label(
    records, embedding_cache, single_thread
):
    backend = LocalBackend()
    selector_spec = {"name": "mdl", "fetch_k": 5, "sets": 3, "seed": 1}
    builder = _builder(records, selector_spec, embedding_cache, backend)
    selector = builder.selector_
    prompts = builder.build_batch(QUERIES)
    knn = PromptBuilder(selector={"name": "knn", "cache": embedding_cache}, k=5).fit(builder.pool_)
    fresh = LocalBackend()
    for query, prompt in zip(QUERIES, prompts, strict=True):
        example = builder.pool_.to_query(query)
        nearest = [d.index for d in knn.build(query).demonstrations]
        sets = selector.candidate_sets(example, nearest, 2)
        assert len(sets) == 3 and sets[0] == nearest[:2]
        rendered = [selector.render(example, chosen) for chosen in sets]
        scored = LikelihoodClassifier(fresh, VERBALIZER).predict(rendered)
        entropy = [-sum(p * np.log(p) for p in s.probabilities.values()) for s in scored]
        assert [d.index for d in prompt.demonstrations] == sets[int(np.argmin(entropy))]
        assert prompt.selection_calls == 3
    # The pipeline scores the chosen prompt again: the shared backend already has it.
    scored = LikelihoodClassifier(backend, VERBALIZER).predict(prompts)
    assert all(p.label in VERBALIZER for p in scored)
    assert {(p.text, (" negative", " positive")) for p in prompts} <= set(backend._scored)
