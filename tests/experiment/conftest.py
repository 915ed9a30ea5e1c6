"""Fixtures of the experiment-layer tests: configs over the example data, one real run.

Every prediction comes from the bundled Gemma 3 270M through the ``local`` backend. The model
is loaded once per process (``iclkit.bundled_models.load_causal_lm`` caches it), and one
small grid (:func:`shared_run`) is run once per session; the tests that only read or edit
a finished run work on a copy of it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from iclkit.experiment import Plan, plan_experiment, run_experiment, validate_config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
POOL = ROOT / "examples" / "data" / "sentiment_pool.jsonl"
EVAL = ROOT / "examples" / "data" / "sentiment_eval.jsonl"
TEMPLATE = "Review: {text}\nSentiment: {output}"
LABELS = ["negative", "positive"]


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


def make_config(**overrides: Any) -> dict[str, Any]:
    """A small valid config on the example data with the ``local`` backend."""
    config: dict[str, Any] = {
        "name": "test",
        "data": {"pool": str(POOL), "eval": str(EVAL), "labels": LABELS, "eval_size": 12},
        "prompt": {"template": TEMPLATE},
        "sweep": [
            {"k": 0, "backends": "local"},
            {"selectors": ["random", "first"], "k": [2, 4], "seeds": [0, 1], "backends": "local"},
        ],
        "run": {"batch_size": 4},
    }
    config.update(overrides)
    return config


@pytest.fixture
def config_dict():
    """Return :func:`make_config` (configs for the tests that never run a model)."""
    return make_config


def write_config(folder: Path, config: dict[str, Any], name: str = "config.yaml") -> Path:
    """Write ``config`` as YAML into ``folder`` and return the path."""
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def write_yaml():
    """Return :func:`write_config`."""
    return write_config


#: The session's real grid: zero-shot; random k=2 over two seeds; the first two pool
#: examples (k=2) in two orders and under each label ablation. 8 cells × 8 queries.
SHARED_CONFIG = make_config(
    name="shared",
    data={"pool": str(POOL), "eval": str(EVAL), "labels": LABELS, "eval_size": 8},
    sweep=[
        {"k": 0, "backends": "local"},
        {"selectors": "random", "k": 2, "seeds": [0, 1], "backends": "local"},
        {"selectors": "first", "k": 2, "backends": "local", "permutations": 2},
        {
            "selectors": "first",
            "k": 2,
            "backends": "local",
            "label_modes": ["random", "flipped", "unrelated"],
        },
    ],
)


@dataclass(frozen=True)
class SharedRun:
    """The session's finished run of :data:`SHARED_CONFIG` (read it, or edit a copy)."""

    raw: dict[str, Any]
    plan: Plan
    folder: Path

    def copy(self, target: Path) -> Path:
        """A copy of the run's folder at ``target`` (for tests that change it)."""
        shutil.copytree(self.folder, target)
        return target


@pytest.fixture(scope="session")
def shared_run(tmp_path_factory) -> SharedRun:
    """Run :data:`SHARED_CONFIG` once with the bundled Gemma 3 270M."""
    config = validate_config(SHARED_CONFIG)
    folder = tmp_path_factory.mktemp("shared") / "run"
    with one_torch_thread():
        run_experiment(config, folder, progress=False)
    return SharedRun(raw=SHARED_CONFIG, plan=plan_experiment(config), folder=folder)


@pytest.fixture
def single_thread() -> Iterator[None]:
    """Run the test's in-process model calls on one torch thread (see one_torch_thread)."""
    with one_torch_thread():
        yield
