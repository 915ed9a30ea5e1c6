"""Fixtures of the experiment-layer tests: configs over the example data, the test backend."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
POOL = ROOT / "examples" / "data" / "sentiment_pool.jsonl"
EVAL = ROOT / "examples" / "data" / "sentiment_eval.jsonl"
#: Runs the iclkit CLI with the `counting` backend registered (for subprocess tests).
COUNTING_SCRIPT = HERE / "counting_backend.py"


def _load_counting_backend() -> Any:
    spec = importlib.util.spec_from_file_location("iclkit_tests_counting", COUNTING_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True, scope="session")
def counting_backend() -> None:
    """Register the deterministic `counting` test backend for this process."""
    _load_counting_backend().register()


@pytest.fixture
def config_dict():
    """Return a factory of small valid configs on the example data with the `counting` backend."""

    def make(**overrides: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "name": "test",
            "data": {
                "pool": str(POOL),
                "eval": str(EVAL),
                "labels": ["negative", "positive"],
                "eval_size": 12,
            },
            "prompt": {"template": "Review: {text}\nSentiment: {output}"},
            "sweep": [
                {"k": 0, "backends": "counting"},
                {
                    "selectors": ["random", "first"],
                    "k": [2, 4],
                    "seeds": [0, 1],
                    "backends": "counting",
                },
            ],
            "run": {"batch_size": 4},
        }
        config.update(overrides)
        return config

    return make


def write_config(folder: Path, config: dict[str, Any], name: str = "config.yaml") -> Path:
    """Write ``config`` as YAML into ``folder`` and return the path."""
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def write_yaml():
    """Return :func:`write_config`."""
    return write_config
