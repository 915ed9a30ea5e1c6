"""The baselines in every grid, and ``iclkit tune --evaluate``: the choice on held-out data."""

import json

import pytest
from click.testing import CliRunner

from iclkit.cli import main
from iclkit.experiment import plan_experiment, validate_config
from iclkit.experiment.baselines import choose_vote_k
from iclkit.experiment.data import load_dev_data
from iclkit.tuning import margin

ALL = {"include": ["majority", "zero-shot", "knn-vote", "random"], "knn_vote_k": [1, 3, 5]}


@pytest.mark.slow
def test_a_plan_adds_the_baselines_with_knn_votes_k_chosen_on_the_dev_split(config_dict):
    raw = config_dict(baselines=ALL, sweep=[{"k": 0}, {"selector": "knn", "k": 2}])
    config = validate_config(raw)
    plan = plan_experiment(config)
    names = [plan.baselines.get(cell.id) for cell in plan.cells]
    assert names == ["majority", "zero-shot", "knn-vote", "random", "random", "random", None]
    # The grid's own zero-shot cell is the zero-shot baseline: it runs once.
    assert len(plan.cells) == 7 and plan.cells[1].k == 0
    vote_cell = plan.cells[2]
    dev = load_dev_data(config.data, 100, config.tune.dev_seed)  # half of the 200-example pool
    k, scores = choose_vote_k(dev, [1, 3, 5])
    assert vote_cell.k == k and vote_cell.selector == {"name": "knn"}
    assert vote_cell.classifier.method == {"name": "knn-vote"}
    assert plan.calls[vote_cell.id] == 0 and plan.calls[plan.cells[0].id] == 0
    info = plan.info()
    assert info["baselines"]["knn-vote"] == {"k": k, "dev_accuracy": scores, "dev_size": 100}
    assert [cell["baseline"] for cell in info["cells"]] == names
    assert {cell.seed for cell in plan.cells[3:6]} == {0, 1, 2}
    assert all(cell.k == 4 and cell.classifier.calibration is None for cell in plan.cells[3:6])
    none = plan_experiment(validate_config(config_dict(sweep=[{"k": 0}])))
    assert len(none.cells) == 1 and none.baselines == {}


@pytest.mark.slow
def test_tune_evaluate_compares_the_choice_with_every_baseline_on_held_out_data(
    tmp_path, config_dict, write_yaml, single_thread
):
    raw = config_dict(
        tune={"dev_size": 6, "dev_seed": 1},
        baselines={**ALL, "random_seeds": [0, 1]},
        sweep=[
            {"k": 0, "classifier.calibration": ["none", "domain"]},
            {"selector": "knn", "k": 2, "classifier.method": ["loglik", "interpolate"]},
            {"selector": {"name": "cone", "fetch_k": 3}, "k": 2},
        ],
    )
    raw["data"]["eval_size"] = 4
    out = tmp_path / "tuned"
    result = CliRunner().invoke(
        main,
        ["tune", str(write_yaml(tmp_path, raw)), "--out", str(out), "--evaluate", "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    assert (
        "On the evaluation set" in result.output
        and "Chosen minus the best baseline" in result.output
    )
    board = (out / "leaderboard.csv").read_text().splitlines()
    assert board[0].startswith("rank,cell,baseline,") and any(",knn-vote," in r for r in board)
    grid = [json.loads(line) for line in (out / "grid" / "results.jsonl").read_text().splitlines()]
    for record in grid:
        method = record["params"]["classifier"]["method"]["name"]
        if method in ("majority", "knn-vote"):
            assert record["model_calls"] == 0
        elif record["params"]["selector"]["name"] == "cone":
            assert record["model_calls"] == 1 + 3  # its prompt, and 3 candidates re-ranked
    held_out = [
        json.loads(line) for line in (out / "evaluation" / "results.jsonl").read_text().splitlines()
    ]
    run = json.loads((out / "evaluation" / "run.json").read_text())
    saved_pool = (out / "model" / "pool.jsonl").read_text().splitlines()
    # The pool the saved model was fitted on: the 200 less the 6 dev examples.
    assert run["eval_size"] == 4 and run["pool_size"] == len(saved_pool) == 194
    dev_run = json.loads((out / "grid" / "run.json").read_text())
    assert run["baselines"]["knn-vote"]["k"] == dev_run["baselines"]["knn-vote"]["k"]
    marks = {cell["baseline"] for cell in run["cells"]}
    assert marks == {"majority", "zero-shot", "knn-vote", "random", None}
    assert len({record["query"] for record in held_out}) == 4
    text = (out / "evaluation.md").read_text()
    assert "| chosen |" in text and "baseline (mean over seeds)" in text
    rows = [
        {"role": "chosen", "accuracy": 0.75, "baseline": None},
        {"role": "baseline", "accuracy": 0.5, "baseline": "majority"},
        {"role": "baseline", "accuracy": 1.0, "baseline": "random"},  # a single seed: not counted
        {"role": "baseline (mean over seeds)", "accuracy": 0.6, "baseline": "random"},
    ]
    assert margin(rows) == pytest.approx((0.15, "random"))
    rows[0] = {"role": "chosen", "accuracy": 0.75, "baseline": "knn-vote"}
    assert margin(rows) == (0.0, "knn-vote")  # a baseline chosen beats no baseline
