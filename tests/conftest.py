"""Shared fixtures. Tests never reach a model hub."""

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data():
    """The real data sets in ../shared/data (SST-2, AG News, CB), read in place."""
    path = REPO.parent / "shared" / "data"
    assert path.is_dir(), f"{path} is missing: CI clones the project with ../shared beside it"
    return path


@pytest.fixture
def records():
    """A small two-label pool as records (ids r0..r11)."""
    texts = [
        ("a warm and funny film", "pos"),
        ("dull and far too long", "neg"),
        ("terrific acting throughout", "pos"),
        ("the plot makes no sense", "neg"),
        ("a joy from start to finish", "pos"),
        ("wooden and lifeless", "neg"),
        ("smart, moving and sharp", "pos"),
        ("i was bored the whole time", "neg"),
        ("beautifully shot", "pos"),
        ("a confused mess", "neg"),
        ("heartfelt and honest", "pos"),
        ("flat jokes everywhere", "neg"),
    ]
    return [{"id": f"r{i}", "text": t, "label": lab} for i, (t, lab) in enumerate(texts)]


@pytest.fixture
def pool_file(tmp_path, records):
    """The records as a JSONL pool file."""
    path = tmp_path / "pool.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


@pytest.fixture(scope="session")
def sst2_records(shared_data):
    """The first 400 SST-2 training sentences as records (label 0/1), read in place."""
    lines = (shared_data / "sst2" / "stsa.binary.train").read_text().splitlines()[:400]
    return [{"text": text, "label": label} for label, text in (s.split(" ", 1) for s in lines)]


@pytest.fixture(scope="session")
def embedding_cache(tmp_path_factory):
    """A session-wide embedding cache file: each text is embedded once per test session."""
    return str(tmp_path_factory.mktemp("embeddings") / "cache.sqlite")


@pytest.fixture(scope="session")
def bundled_embedder():
    """The bundled all-MiniLM-L6-v2 embedder, loaded once per session."""
    from iclkit.embedding.sentence_transformer import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    embedder.encode(["warm up"])
    return embedder
