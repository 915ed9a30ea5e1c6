"""Shared helpers of the experiment tests: config files over the example data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
POOL = ROOT / "examples" / "data" / "sentiment_pool.jsonl"
EVAL = ROOT / "examples" / "data" / "sentiment_eval.jsonl"


def config_dict(**overrides: Any) -> dict[str, Any]:
    """A small valid config on the example sentiment data with the `counting` test backend."""
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


def write_config(folder: Path, config: dict[str, Any], name: str = "config.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
