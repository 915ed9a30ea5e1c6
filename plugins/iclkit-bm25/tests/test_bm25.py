"""The bm25 plugin works everywhere a built-in works: registry, PromptBuilder, CLI."""

import json

import pytest
from click.testing import CliRunner
from iclkit_bm25 import BM25Selector

from iclkit import ConfigError, Pool, PromptBuilder
from iclkit.cli import main
from iclkit.registry import selectors

RECORDS = [
    {"text": "the soup was cold and salty", "label": "neg"},
    {"text": "friendly staff and fresh bread", "label": "pos"},
    {"text": "cold soup, rude waiter", "label": "neg"},
    {"text": "fresh pasta, lovely evening", "label": "pos"},
    {"text": "we waited an hour for cold food", "label": "neg"},
    {"text": "the staff were lovely", "label": "pos"},
]


@pytest.fixture
def pool():
    return Pool.from_records(RECORDS)


def test_discovered_through_entry_point():
    [info] = [p for p in selectors.plugins() if p.name == "bm25"]
    assert info.distribution == "iclkit-bm25"
    assert selectors.get("bm25") is BM25Selector


def test_ranks_by_lexical_overlap(pool):
    prompt = PromptBuilder(selector="bm25", k=3).fit(pool).build("cold soup again")
    indices = [d.index for d in prompt.demonstrations]
    assert set(indices[:2]) == {0, 2}
    scores = [d.score for d in prompt.demonstrations]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0


def test_never_selects_the_query_and_batches(pool):
    selector = BM25Selector().fit(pool)
    builder = PromptBuilder(selector=selector, k=5).fit(pool)
    for index, record in enumerate(RECORDS):
        assert index not in {d.index for d in builder.build(record["text"]).demonstrations}
    queries = [pool.to_query(t) for t in ("fresh bread", "rude waiter", "nothing matches")]
    assert selector.select_batch(queries, 2) == [selector.select(q, 2) for q in queries]


def test_options_and_bad_options(pool):
    selector = selectors.create({"name": "bm25", "k1": 1.2, "b": 0.5, "stopwords": None})
    assert selector.fit(pool).select(pool.to_query("the staff"), 1).indices == (5,)
    with pytest.raises(ConfigError, match="b must be between 0 and 1"):
        BM25Selector(b=2)
    with pytest.raises(ConfigError, match="k1 must be >= 0"):
        BM25Selector(k1=-1)


def test_cli_build_with_bm25(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in RECORDS))
    result = CliRunner().invoke(
        main,
        [
            "build",
            "--pool",
            str(path),
            "--query",
            "lovely staff",
            "--selector",
            "bm25",
            "--k",
            "2",
            "-o",
            "k1=1.2",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    demos = json.loads(result.output)["demos"]
    assert demos[0]["index"] == 5 and demos[0]["score"] > 0
