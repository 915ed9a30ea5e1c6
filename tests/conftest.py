"""Shared fixtures. Tests never reach a model hub."""

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from iclkit import Pool, PromptBuilder

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


# -- few-shot SST-2 prompts for the backend and inference tests ---------------------------------

VERBALIZER = {"0": "negative", "1": "positive"}
TEMPLATE = "Review: {input}\nSentiment: {output}"


def read_sst2(path: Path) -> Pool:
    """An SST-2 split (``LABEL TEXT`` per line) as a pool."""
    records = []
    for line in path.read_text().splitlines():
        label, text = line.split(" ", 1)
        records.append({"text": text, "label": label})
    return Pool.from_records(records)


def _sst2_prompts(data: Path, n: int, k: int, selector) -> tuple[PromptBuilder, list]:
    """A fitted builder and few-shot prompts for the first ``n`` dev examples."""
    train = read_sst2(data / "sst2" / "stsa.binary.train")
    dev = read_sst2(data / "sst2" / "stsa.binary.dev")
    builder = PromptBuilder(
        selector=selector,
        formatter={"name": "text", "template": TEMPLATE, "verbalizer": VERBALIZER},
        k=k,
    ).fit(train)
    return builder, builder.build_batch(list(dev)[:n])


@pytest.fixture(scope="session")
def sst2_prompts(shared_data):
    """A factory ``(n, k=4, selector="first") -> (fitted builder, prompts for dev[:n])``.

    The default demonstrations are the first four training examples (labels 1, 0, 0, 1), the
    same for every query as in Zhao et al. 2021.
    """
    return lambda n, k=4, selector="first": _sst2_prompts(shared_data, n, k, selector)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block (restoring the setting after it).

    On a 2-core machine shared with other jobs, torch's second thread mostly spin-waits: the
    same 30 predictions took 74 CPU-s with 2 threads and 11 CPU-s with one.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def torch_threads():
    """:func:`one_torch_thread`, for session-scoped fixtures that run a model."""
    return one_torch_thread


@pytest.fixture
def single_thread() -> Iterator[None]:
    """Run the test's in-process model calls on one torch thread (see one_torch_thread)."""
    with one_torch_thread():
        yield
