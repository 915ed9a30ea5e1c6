"""The embedder and the on-disk embedding cache, with the real bundled model."""

import logging
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from iclkit.embedding.cache import EmbeddingCache, embed_texts
from iclkit.embedding.sentence_transformer import SentenceTransformerEmbedder
from iclkit.errors import ConfigError

pytestmark = pytest.mark.slow


def test_bundled_embedder_gives_unit_vectors_with_meaningful_similarity(bundled_embedder):
    vectors = bundled_embedder.encode(
        ["a wonderful, moving film", "a truly wonderful and moving movie", "tax forms are due"]
    )
    assert vectors.shape == (3, bundled_embedder.dimension) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert bundled_embedder.identity.startswith("all-MiniLM-L6-v2@")


def test_second_embedding_of_the_same_texts_embeds_nothing(tmp_path, bundled_embedder, caplog):
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    texts = ["one small text", "another one", "one small text", "a third"]
    first = embed_texts(bundled_embedder, texts, cache)
    assert (first.texts, first.unique, first.embedded) == (4, 3, 3)
    with caplog.at_level(logging.INFO, logger="iclkit.embedding"):
        second = embed_texts(bundled_embedder, texts, cache)
    assert second.embedded == 0
    assert "embedded 0 of 4 texts" in caplog.text
    np.testing.assert_array_equal(first.vectors, second.vectors)
    # A changed list embeds only what is new.
    third = embed_texts(bundled_embedder, [*texts, "something new"], cache)
    assert third.embedded == 1


def test_cache_is_keyed_by_embedder_identity(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    vector = np.ones((1, 4), dtype=np.float32)
    cache.put("model-a@1", ["text"], vector)
    assert set(cache.get("model-a@1", ["text", "other"])) == {"text"}
    assert cache.get("model-b@1", ["text"]) == {}


def test_cache_survives_a_writer_killed_mid_run(tmp_path):
    path = tmp_path / "cache.sqlite"
    writer = textwrap.dedent(
        f"""
        import numpy as np
        from iclkit.embedding.cache import EmbeddingCache
        cache = EmbeddingCache({str(path)!r})
        for batch in range(10**6):
            texts = [f"text {{batch}} {{i}}" for i in range(200)]
            cache.put("model@1", texts, np.full((200, 384), batch, dtype=np.float32))
            if batch == 3:
                print("ready", flush=True)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    process.kill()
    process.wait()
    cache = EmbeddingCache(path)
    batches = [[f"text {b} {i}" for i in range(200)] for b in range(4)]
    for number, texts in enumerate(batches):
        found = cache.get("model@1", texts)
        assert len(found) == 200  # every completed batch is whole...
        assert all(v.shape == (384,) and (v == number).all() for v in found.values())


def test_unknown_embedder_fails_naming_it_without_touching_the_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    embedder = SentenceTransformerEmbedder("no-such-org/no-such-embedder")
    with pytest.raises(ConfigError, match="no-such-org/no-such-embedder") as error:
        embedder.encode(["text"])
    assert "never downloads" in str(error.value)


def test_folder_that_is_not_a_model_fails_naming_it(tmp_path):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "readme.txt").write_text("nothing here")
    with pytest.raises(ConfigError, match="not-a-model"):
        SentenceTransformerEmbedder(str(folder)).encode(["text"])


def test_bad_batch_size_is_a_config_error():
    with pytest.raises(ConfigError, match="batch_size"):
        SentenceTransformerEmbedder(batch_size=0)
