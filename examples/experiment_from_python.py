"""An experiment from Python: the same grid `iclkit run` takes from YAML, as objects.

Compares zero-shot with balanced 2-shot demonstrations (two seeds) on the bundled sentiment
data, scored by the bundled Gemma 3 270M, on the first 12 evaluation reviews. Results, the
summary and plots go to a temporary folder; re-running the same folder would resume.

Run from the repository root:  python examples/experiment_from_python.py
"""

import tempfile
from pathlib import Path

from iclkit.experiment import ExperimentConfig, run_experiment

DATA = Path(__file__).parent / "data"

config = ExperimentConfig.model_validate(
    {
        "name": "python-example",
        "data": {
            "pool": DATA / "sentiment_pool.jsonl",
            "eval": DATA / "sentiment_eval.jsonl",
            "labels": {"negative": "negative", "positive": "positive"},
            "eval_slice": (0, 12),
        },
        "pipeline": {
            "formatter": {"name": "text", "template": "Review: {text}\nSentiment: {output}"},
            "backend": {"name": "local"},
        },
        "sweep": [
            {"k": [0]},
            {"selector": [{"name": "balanced"}], "k": [2], "seed": [0, 1]},
        ],
    }
)
out = Path(tempfile.mkdtemp(prefix="iclkit-experiment-"))
report = run_experiment(config, out, progress=False)
for row in report.seeds:
    print({key: value for key, value in row.items() if value not in (None, "")})
print("files:", sorted(path.name for path in report.files))
