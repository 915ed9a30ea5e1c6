"""The experiment layer with the real bundled models: Gemma 3 270M and all-MiniLM-L6-v2."""

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from iclkit.cli import main
from iclkit.experiment import load_config, plan_experiment

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"


def test_quickstart_config_is_valid_and_dry_runs(tmp_path):
    config = load_config(QUICKSTART)
    plan = plan_experiment(config)
    selectors = {cell.selector_name for cell in plan.cells}
    assert selectors == {"zero-shot", "random", "knn"}
    assert len(plan.data.pool) >= 200 and len(plan.data.eval) >= 100
    result = CliRunner().invoke(main, ["run", str(QUICKSTART), "--dry-run", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"{len(plan.cells)} cells" in result.output


@pytest.mark.slow
def test_tiny_grid_with_the_bundled_models(tmp_path, write_yaml, single_thread):
    config = load_config(QUICKSTART).model_dump(mode="json")
    config["data"]["eval_size"] = 3
    config["sweep"] = [
        {"k": 0, "classifier.calibration": ["none", "contextual"]},
        {"selector": "knn", "k": 2},
        {"selector": "random", "k": 2, "classifier.method": {"name": "generate", "max_tokens": 3}},
    ]
    config["run"] = {"batch_size": 3}
    path = write_yaml(tmp_path, config)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    # The grid's 4 cells and the default baselines: majority and knn-vote (no model call);
    # the zero-shot baseline is the grid's uncalibrated k=0 cell, marked, not run twice.
    assert len(records) == 6 * 3
    marks = {c["baseline"] for c in json.loads((out / "run.json").read_text())["cells"]}
    assert marks == {"majority", "zero-shot", "knn-vote", None}
    by_mode = {}
    for record in records:
        params = record["params"]
        method = params["classifier"]["method"]["name"]
        if method in ("majority", "knn-vote"):
            assert record["model_calls"] == 0 and record["prompt_tokens"] == 0
            by_mode.setdefault(method, []).append(record)
            continue
        name = params["selector"]["name"] if params["k"] else "zero"
        by_mode.setdefault(name, []).append(record)
        calibrated = params["classifier"]["calibration"] is not None
        by_mode.setdefault(f"cal={calibrated}", []).append(record)
    for record in by_mode["zero"]:
        assert record["demos"] == []
        assert math.isclose(sum(record["probabilities"].values()), 1.0, rel_tol=1e-6)
    # Calibration changes the probabilities of the same zero-shot prompts.
    calibrated = {r["query"]: r["probabilities"] for r in by_mode["cal=True"]}
    plain = {
        r["query"]: r["probabilities"]
        for r in by_mode["zero"]
        if r["params"]["classifier"]["calibration"] is None
    }
    assert calibrated.keys() == plain.keys()
    assert any(abs(calibrated[q]["positive"] - plain[q]["positive"]) > 1e-3 for q in plain)
    for record in by_mode["knn"]:
        assert len(record["demos"]) == 2 and record["prediction"] in ("negative", "positive")
    for record in by_mode["random"]:
        assert isinstance(record["output"], str) and record["scores"] == {}
    summary = (out / "summary.csv").read_text().splitlines()
    assert len(summary) == 1 + 6 and summary[0].startswith("cell,baseline,")
    assert "knn-vote" in result.stdout and "majority" in result.stdout
    assert "zero-shot" in result.stdout and "accuracy 95% CI" in result.stdout
    # The CLI shows iclkit's INFO lines (here: the pool embedded for knn).
    assert "INFO iclkit.embedding: embedded" in result.stderr
    assert (out / "report.html").exists()
