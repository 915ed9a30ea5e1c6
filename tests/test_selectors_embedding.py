"""The embedding selectors and similarity orderers, with the real bundled embedder and FAISS."""

import json
import logging

import numpy as np
import pytest
from click.testing import CliRunner

from iclkit.builder import PromptBuilder
from iclkit.cli import main
from iclkit.errors import ConfigError, DataError, SelectionError
from iclkit.example import Example
from iclkit.pool import Pool
from iclkit.prompt import Demonstration
from iclkit.registry import orderers, selectors
from iclkit.selectors.dpp import greedy_map

pytestmark = pytest.mark.slow

EMBEDDING_SELECTORS = ["knn", "mmr", "dpp", "votek", "knn-balanced"]


@pytest.fixture(scope="module")
def pool(sst2_records):
    return Pool.from_records(sst2_records)


def fitted(name, pool, embedding_cache, **options):
    return selectors.create({"name": name, "cache": embedding_cache, **options}).fit(pool)


@pytest.fixture(scope="module")
def knn(pool, embedding_cache, bundled_embedder):
    return fitted("knn", pool, embedding_cache)


def cosine(selector, query_text, indices):
    query = selector.embed_queries([Example(input=query_text)])[0]
    return selector.embeddings_[list(indices)] @ query


def mean_pairwise(selector, indices):
    vectors = selector.embeddings_[list(indices)]
    sims = vectors @ vectors.T
    return (sims.sum() - len(indices)) / (len(indices) * (len(indices) - 1))


@pytest.mark.parametrize("name", EMBEDDING_SELECTORS)
def test_every_selector_returns_k_distinct_scored_indices_and_never_the_query(
    name, pool, embedding_cache, bundled_embedder
):
    selector = fitted(name, pool, embedding_cache)
    queries = [pool[i] for i in (0, 7, 42)]
    excludes = [pool.matches(q) for q in queries]
    batch = selector.select_batch(queries, 4, exclude=excludes)
    for query, exclude, selection in zip(queries, excludes, batch, strict=True):
        assert len(set(selection.indices)) == 4
        assert not set(selection.indices) & exclude
        assert all(isinstance(score, float) for score in selection.scores)
        # The batched path answers exactly as one query at a time.
        assert selector.select(query, 4, exclude=exclude) == selection


def test_knn_returns_a_near_duplicate_of_the_query_first(knn, pool):
    for index in (3, 150, 333):
        text = pool[index].text
        near_duplicate = text.replace(" .", "!").replace(",", "") + " really"
        selection = knn.select(Example(input=near_duplicate), 4)
        assert selection.indices[0] == index
        assert selection.scores[0] > 0.9


def test_knn_scores_are_cosine_similarities_in_descending_order(knn):
    query = "an utterly charming and funny film"
    selection = knn.select(Example(input=query), 8)
    np.testing.assert_allclose(selection.scores, cosine(knn, query, selection.indices), atol=1e-5)
    assert list(selection.scores) == sorted(selection.scores, reverse=True)
    everything = cosine(knn, query, range(len(knn.pool)))
    assert selection.scores[0] == pytest.approx(everything.max(), abs=1e-5)


def test_mmr_with_lambda_one_is_knn_and_lower_lambda_is_more_diverse(knn, pool, embedding_cache):
    query = Example(input="a dull, lifeless and boring movie")
    plain = fitted("mmr", pool, embedding_cache, lambda_=1.0).select(query, 6)
    assert plain.indices == knn.select(query, 6).indices
    diverse = fitted("mmr", pool, embedding_cache, lambda_=0.3, fetch_k=40).select(query, 6)
    assert mean_pairwise(knn, diverse.indices) < mean_pairwise(knn, plain.indices)


def test_dpp_is_more_diverse_than_knn(knn, pool, embedding_cache):
    query = Example(input="the acting is wonderful and the story moving")
    near = knn.select(query, 6)
    dpp = fitted("dpp", pool, embedding_cache, theta=0.5, fetch_k=40).select(query, 6)
    assert mean_pairwise(knn, dpp.indices) < mean_pairwise(knn, near.indices)
    np.testing.assert_allclose(dpp.scores, cosine(knn, query.text, dpp.indices), atol=1e-5)


def test_greedy_map_stops_on_duplicates_and_the_selector_fills_up():
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert greedy_map(vectors @ vectors.T, 3) == [0, 2]


def test_votek_is_query_independent_and_diverse(knn, pool, embedding_cache):
    votek = fitted("votek", pool, embedding_cache)
    first = votek.select(Example(input="a great film"), 6)
    second = votek.select(Example(input="the worst thing i have seen"), 6)
    assert first == second
    assert list(first.scores) == sorted(first.scores, reverse=True)
    # Query-independent vote-k spreads over the pool: less redundant than one kNN list.
    assert mean_pairwise(knn, first.indices) < mean_pairwise(
        knn, knn.select(Example(input="a great film"), 6).indices
    )
    # The excluded example is replaced by the next one in the vote-k order.
    skipped = votek.select(Example(input="x y"), 6, exclude=frozenset({first.indices[0]}))
    assert skipped.indices == first.indices[1:] + skipped.indices[-1:]


def test_votek_with_a_budget_retrieves_nearest_within_the_chosen_set(pool, embedding_cache):
    votek = fitted("votek", pool, embedding_cache, budget=30)
    chosen = set(votek.chosen_.tolist())
    assert len(chosen) == 30
    a = votek.select(Example(input="a great film"), 4)
    b = votek.select(Example(input="the worst thing i have seen"), 4)
    assert set(a.indices) <= chosen and set(b.indices) <= chosen
    assert a != b


def test_knn_balanced_meets_the_label_quota(knn, pool, embedding_cache):
    balanced = fitted("knn-balanced", pool, embedding_cache)
    for text in ("a moving, beautiful film", "a painful, tedious mess"):
        selection = balanced.select(Example(input=text), 4)
        labels = [pool[i].output for i in selection.indices]
        assert sorted(labels) == ["0", "0", "1", "1"]
        assert list(selection.scores) == sorted(selection.scores, reverse=True)
        # Within each label, the chosen are that label's nearest examples.
        for label in ("0", "1"):
            members = [i for i in range(len(pool)) if pool[i].output == label]
            sims = cosine(knn, text, members)
            best = {members[j] for j in np.argsort(-sims)[:2]}
            assert {i for i in selection.indices if pool[i].output == label} == best


def test_similarity_orderers_use_selector_scores(knn, pool):
    query = Example(input="a smart and funny comedy")
    selection = knn.select(query, 4)
    demos = [
        Demonstration(index=i, score=s, rank=r, example=pool[i])
        for r, (i, s) in enumerate(zip(selection.indices, selection.scores, strict=True))
    ]
    ascending = orderers.create("similarity-ascending").order(query, demos)
    descending = orderers.create("similarity-descending").order(query, demos)
    assert [d.rank for d in ascending] == [3, 2, 1, 0]  # most similar next to the query
    assert [d.rank for d in descending] == [0, 1, 2, 3]


def test_similarity_orderers_embed_when_the_selector_gives_no_scores(knn, pool, embedding_cache):
    query = Example(input="a smart and funny comedy")
    demos = [
        Demonstration(index=i, score=None, rank=r, example=pool[i])
        for r, i in enumerate([5, 60, 120, 240])
    ]
    ordered = orderers.create({"name": "similarity-ascending", "cache": embedding_cache}).order(
        query, demos
    )
    sims = cosine(knn, query.text, [d.index for d in ordered])
    assert list(sims) == sorted(sims)


def test_fitting_the_same_pool_twice_embeds_nothing_the_second_time(
    sst2_records, tmp_path, bundled_embedder, caplog
):
    pool = Pool.from_records(sst2_records[:80])
    cache = str(tmp_path / "cache.sqlite")
    first = selectors.create({"name": "knn", "cache": cache}).fit(pool)
    assert first.embedded_count_ == len(pool)
    with caplog.at_level(logging.INFO, logger="iclkit.embedding"):
        second = selectors.create({"name": "knn", "cache": cache}).fit(pool)
    assert second.embedded_count_ == 0
    assert f"embedded 0 of {len(pool)} texts" in caplog.text
    np.testing.assert_array_equal(first.embeddings_, second.embeddings_)
    grown = Pool.from_records([*sst2_records[:80], {"text": "a brand new review", "label": "1"}])
    assert selectors.create({"name": "knn", "cache": cache}).fit(grown).embedded_count_ == 1


def test_saved_index_is_reused_and_a_mismatched_one_rebuilt(
    pool, sst2_records, tmp_path, embedding_cache, caplog
):
    path = str(tmp_path / "pool.faiss")
    first = fitted("knn", pool, embedding_cache, index_path=path)
    assert not first.index_.loaded_
    assert fitted("knn", pool, embedding_cache, index_path=path).index_.loaded_
    other_pool = Pool.from_records(sst2_records[:200])
    with caplog.at_level(logging.WARNING, logger="iclkit.embedding"):
        other = fitted("knn", other_pool, embedding_cache, index_path=path)
    assert not other.index_.loaded_ and other.index_.ntotal == 200
    assert "rebuilding" in caplog.text
    assert max(other.select(Example(input="a fine film"), 8).indices) < 200


def test_approximate_index_on_real_embeddings_matches_exact(knn, pool, embedding_cache):
    queries = [Example(input=pool[i].text + " indeed") for i in range(0, 400, 8)]
    exact = knn.select_batch(queries, 8)
    approx = fitted("knn", pool, embedding_cache, index="hnsw").select_batch(queries, 8)
    hits = sum(len(set(a.indices) & set(e.indices)) for a, e in zip(approx, exact, strict=True))
    assert hits / (8 * len(queries)) >= 0.95


# -- bad input ---------------------------------------------------------------------------------


def test_k_larger_than_the_pool(pool, embedding_cache):
    small = Pool.from_records([{"text": f"review number {i}", "label": i % 2} for i in range(5)])
    builder = PromptBuilder(selector={"name": "knn", "cache": embedding_cache}, k=6)
    with pytest.raises(SelectionError, match="larger than the pool"):
        builder.fit(small)
    fewer = PromptBuilder(
        selector={"name": "knn", "cache": embedding_cache}, k=6, allow_fewer=True
    ).fit(small)
    assert len(fewer.build("review number 2").demonstrations) == 4  # itself excluded
    with pytest.raises(ConfigError, match="k must be"):
        fitted("knn", small, embedding_cache).select(Example(input="x"), -1)


def test_all_duplicate_pool_is_rejected(embedding_cache):
    same = Pool.from_records([{"text": "the same words", "label": i % 2} for i in range(4)])
    with pytest.raises(DataError, match="same input text"):
        fitted("knn", same, embedding_cache)


def test_empty_pool_is_rejected():
    with pytest.raises(DataError, match="no examples"):
        Pool.from_records([])


def test_empty_text_is_rejected_naming_the_example(embedding_cache):
    records = [{"id": "a", "text": "fine"}, {"id": "b", "text": "  "}, {"id": "c", "text": "ok"}]
    bad = Pool.from_records([{**r, "label": "1"} for r in records])
    with pytest.raises(DataError, match=r"example 1 \(id 'b'\) has an empty input text"):
        fitted("mmr", bad, embedding_cache)


def test_empty_query_is_rejected(knn):
    with pytest.raises(DataError, match="empty input text"):
        knn.select(Example(input=""), 2)


def test_unloadable_embedder_fails_at_fit_naming_it(pool):
    with pytest.raises(ConfigError, match="no-such-embedder"):
        selectors.create({"name": "knn", "embedder": "no-such-embedder"}).fit(pool)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "mmr", "lambda_": 1.5}, "lambda_"),
        ({"name": "dpp", "theta": 1.0}, "theta"),
        ({"name": "mmr", "fetch_k": 0}, "fetch_k"),
        ({"name": "votek", "rho": 1}, "rho"),
        ({"name": "votek", "budget": 0}, "budget"),
        ({"name": "knn", "index": "annoy"}, "index kind"),
        ({"name": "knn", "nprobe": 0}, "nprobe"),
        ({"name": "knn", "colour": "red"}, "colour"),
    ],
)
def test_bad_options_are_config_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        selectors.create(spec)


# -- command line ------------------------------------------------------------------------------


def test_plugins_lists_every_new_selector_and_orderer():
    listing = json.loads(CliRunner().invoke(main, ["plugins", "--json"]).output)
    names = {info["name"] for info in listing["selectors"]}
    assert set(EMBEDDING_SELECTORS) <= names
    assert {"similarity-ascending", "similarity-descending"} <= {
        info["name"] for info in listing["orderers"]
    }


@pytest.mark.parametrize("name", EMBEDDING_SELECTORS)
def test_cli_build_with_each_selector(name, tmp_path, sst2_records, embedding_cache):
    pool_file = tmp_path / "pool.jsonl"
    pool_file.write_text("\n".join(json.dumps(r) for r in sst2_records[:120]) + "\n")
    query = sst2_records[10]["text"]
    result = CliRunner().invoke(
        main,
        [
            "build", "--pool", str(pool_file), "--query", query, "--selector", name,
            "--k", "4", "--orderer", "similarity-ascending", "-o", f"cache={embedding_cache}",
            "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    demos = json.loads(result.output)["demos"]
    assert len(demos) == 4
    assert query not in {d["input"]["text"] for d in demos}
    if name != "votek":
        scores = [d["score"] for d in demos]
        assert scores == sorted(scores)  # ascending: the most similar next to the query


def test_cli_knn_with_k_larger_than_the_pool_is_one_clear_error(tmp_path, sst2_records):
    pool_file = tmp_path / "pool.jsonl"
    pool_file.write_text("\n".join(json.dumps(r) for r in sst2_records[:3]) + "\n")
    result = CliRunner().invoke(
        main, ["build", "--pool", str(pool_file), "--query", "q", "--selector", "knn", "--k", "5"]
    )
    assert result.exit_code == 1
    assert "k=5 is larger than the pool (3 examples)" in result.output


def test_embedder_leaves_hf_hub_offline_unset_and_still_never_downloads():
    import os
    import subprocess
    import sys

    code = (
        "import os\n"
        "from iclkit.embedding.sentence_transformer import SentenceTransformerEmbedder\n"
        "from iclkit.errors import ConfigError\n"
        "vectors = SentenceTransformerEmbedder().encode(['a fine film'])\n"
        "print('shape', vectors.shape)\n"
        "print('HF_HUB_OFFLINE', os.environ.get('HF_HUB_OFFLINE'))\n"
        "try:\n"
        "    SentenceTransformerEmbedder('someone/not-on-this-disk').encode(['x'])\n"
        "except ConfigError as error:\n"
        "    print('refused', 'iclkit never downloads models' in str(error))\n"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "shape (1, 384)" in result.stdout
    assert "HF_HUB_OFFLINE None" in result.stdout
    assert "refused True" in result.stdout
