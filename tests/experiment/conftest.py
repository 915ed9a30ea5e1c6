"""Fixtures of the experiment-layer tests: configs over the example data, one real run.

Every prediction comes from the bundled Gemma 3 270M through the ``local`` backend. The model
is loaded once per process (``iclkit.bundled_models.load_causal_lm`` caches it), and one
small grid (:func:`shared_run`) is run once per session; the tests that only read or edit
a finished run work on a copy of it.
"""

from __future__ import annotations

import shutil
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


def make_config(**overrides: Any) -> dict[str, Any]:
    """A small valid config on the example data with the ``local`` backend.

    Without baselines, so that the grid holds exactly the cells a test sweeps (the baselines
    have tests of their own, in ``test_baselines.py``).
    """
    config: dict[str, Any] = {
        "name": "test",
        "data": {"pool": str(POOL), "eval": str(EVAL), "labels": LABELS, "eval_size": 12},
        "pipeline": {"formatter": {"name": "text", "template": TEMPLATE}, "backend": "local"},
        "sweep": [
            {"k": 0},
            {"selector": ["random", "first"], "k": [2, 4], "seed": [0, 1]},
        ],
        "run": {"batch_size": 4},
        "baselines": {"include": []},
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
        {"k": 0},
        {"selector": "random", "k": 2, "seed": [0, 1]},
        {"selector": "first", "k": 2, "permutations": 2},
        {"selector": "first", "k": 2, "label_mode": ["random", "flipped", "unrelated"]},
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
def shared_run(tmp_path_factory, torch_threads) -> SharedRun:
    """Run :data:`SHARED_CONFIG` once with the bundled Gemma 3 270M."""
    config = validate_config(SHARED_CONFIG)
    folder = tmp_path_factory.mktemp("shared") / "run"
    with torch_threads():
        run_experiment(config, folder, progress=False)
    return SharedRun(raw=SHARED_CONFIG, plan=plan_experiment(config), folder=folder)
