"""The FAISS index wrapper: exact search, approximate recall, fingerprinted save and load."""

import logging

import numpy as np
import pytest

from iclkit.embedding.index import EXACT_MAX_VECTORS, VectorIndex
from iclkit.errors import ConfigError

DIM = 384


def clustered(sizes, clusters=1000, noise=1.0, seed=0):
    """Unit vectors around shared random centres, as in benchmarks/selection_speed.py."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32) / np.sqrt(DIM)
    out = []
    for n in sizes:
        rows = centres[rng.integers(0, clusters, n)]
        rows = rows + rng.standard_normal((n, DIM)).astype(np.float32) * noise / np.sqrt(DIM)
        out.append(rows / np.linalg.norm(rows, axis=1, keepdims=True))
    return out


@pytest.fixture(scope="module")
def data():
    pool, queries = clustered([10_000, 300], clusters=100)
    truth = np.argsort(-(queries @ pool.T), axis=1)[:, :8]
    return pool, queries, truth


def recall(found, truth):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth, strict=True)])


def test_auto_is_exact_up_to_the_documented_size_and_ivf_above():
    index = VectorIndex()
    assert index.resolved_kind(EXACT_MAX_VECTORS) == "flat"
    assert index.resolved_kind(EXACT_MAX_VECTORS + 1) == "ivf"


def test_flat_index_returns_the_exact_neighbours_and_cosine_scores(data):
    pool, queries, truth = data
    index = VectorIndex("flat").build(pool)
    scores, ids = index.search(queries, 8)
    np.testing.assert_array_equal(ids, truth)
    expected = np.take_along_axis(queries @ pool.T, truth, axis=1)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_index_meets_its_recall_at_default_settings(data, kind):
    pool, queries, truth = data
    _, ids = VectorIndex(kind).build(pool).search(queries, 8)
    assert recall(ids, truth) >= 0.95


def test_nprobe_trades_recall_for_speed(data):
    pool, queries, truth = data
    index = VectorIndex("ivf", nprobe=1).build(pool)
    low = recall(index.search(queries, 8)[1], truth)
    index.nprobe = 64
    high = recall(index.search(queries, 8)[1], truth)
    assert low < high


def test_saved_index_is_reused_only_for_the_same_vectors(tmp_path, data, caplog):
    pool, queries, _ = data
    path = tmp_path / "pool.faiss"
    first = VectorIndex("flat").build_or_load(pool[:1000], path)
    assert not first.loaded_ and path.exists()
    again = VectorIndex("flat").build_or_load(pool[:1000], path)
    assert again.loaded_
    np.testing.assert_array_equal(again.search(queries, 5)[1], first.search(queries, 5)[1])

    with caplog.at_level(logging.WARNING, logger="iclkit.embedding"):
        other = VectorIndex("flat").build_or_load(pool[1000:2000], path)
    assert not other.loaded_
    assert "built for another pool" in caplog.text
    # The rebuilt index answers for the new vectors, and replaced the stale file.
    assert other.search(pool[1000:1001], 1)[1][0, 0] == 0
    assert VectorIndex("flat").build_or_load(pool[1000:2000], path).loaded_


def test_other_index_settings_do_not_reuse_a_saved_index(tmp_path, data):
    pool, _, _ = data
    path = tmp_path / "pool.faiss"
    VectorIndex("flat").build_or_load(pool[:2000], path)
    assert not VectorIndex("hnsw").build_or_load(pool[:2000], path).loaded_


def test_unreadable_index_file_is_rebuilt(tmp_path, data, caplog):
    pool, _, _ = data
    path = tmp_path / "pool.faiss"
    path.write_bytes(b"not an index")
    with caplog.at_level(logging.WARNING, logger="iclkit.embedding"):
        index = VectorIndex("flat").build_or_load(pool[:500], path)
    assert not index.loaded_ and index.ntotal == 500
    assert "cannot be read" in caplog.text
    assert VectorIndex("flat").build_or_load(pool[:500], path).loaded_


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "annoy"}, "index kind"),
        ({"nprobe": 0}, "nprobe"),
        ({"ef_search": -1}, "ef_search"),
    ],
)
def test_bad_index_settings_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        VectorIndex(**kwargs)


def test_building_on_no_vectors_is_a_config_error():
    with pytest.raises(ConfigError, match="non-empty"):
        VectorIndex().build(np.zeros((0, DIM), dtype=np.float32))


def test_large_builds_log_their_steps_and_show_progress(data, monkeypatch, caplog, capsys):
    import iclkit.embedding.index as module

    pool, queries, _ = data
    monkeypatch.setattr(module, "PROGRESS_MIN_VECTORS", 4_000)
    monkeypatch.setattr(module, "_ADD_BLOCK", 3_000)
    with caplog.at_level(logging.INFO, logger="iclkit.embedding"):
        blocks = VectorIndex("ivf", nlist=50).build(pool)
    messages = [record.getMessage() for record in caplog.records]
    assert "training the IVF index: 50 lists on 2000 sample vectors" in messages
    assert "building the ivf index over 10000 vectors" in messages
    bar = capsys.readouterr().err  # tqdm; cleared from the screen when done (leave=False)
    assert "ivf index:" in bar and "/10000 [" in bar
    # Adding in blocks builds the same index as one add call.
    monkeypatch.setattr(module, "PROGRESS_MIN_VECTORS", 1_000_000)
    whole = VectorIndex("ivf", nlist=50).build(pool)
    for found, expected in zip(blocks.search(queries, 8), whole.search(queries, 8), strict=True):
        np.testing.assert_array_equal(found, expected)
