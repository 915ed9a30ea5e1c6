"""``iclkit tune`` and ``iclkit predict``: choose on a dev split, save, load, predict."""

import json

import pytest
from click.testing import CliRunner

from iclkit import ICLClassifier
from iclkit.cli import main
from iclkit.errors import DataError
from iclkit.experiment import validate_config
from iclkit.experiment.data import load_dev_data
from iclkit.tuning import rank

TUNE = {"dev_size": 6, "dev_seed": 1}
SWEEP = [
    {"k": 0},
    {"selector": ["first", "knn"], "k": 2},
    {"selector": "first", "k": 2, "label_mode": "flipped"},
]


def test_the_dev_split_is_carved_from_the_pool_and_never_reads_eval(config_dict, tmp_path):
    raw = config_dict(tune=TUNE)
    raw["data"] = {**raw["data"], "eval": str(tmp_path / "absent.jsonl")}
    config = validate_config(raw)
    data = load_dev_data(config.data, 6, 1)
    dev_ids = {example.id for example in data.eval}
    assert len(dev_ids) == 6 and not dev_ids & {example.id for example in data.pool}
    assert len(data.pool) == 200 - 6
    assert {e.id for e in load_dev_data(config.data, 6, 1).eval} == dev_ids
    with pytest.raises(DataError, match="tune.dev_size is 500 but the pool has only 200"):
        load_dev_data(config.data, 500, 1)


def test_rank_prefers_the_metric_then_fewer_tokens_then_grid_order():
    rows = [
        {"cell": "a", "complete": True, "accuracy": 0.8, "tokens": 90.0},
        {"cell": "b", "complete": True, "accuracy": 0.9, "tokens": 200.0},
        {"cell": "c", "complete": True, "accuracy": 0.8, "tokens": 40.0},
        {"cell": "d", "complete": False, "accuracy": 1.0, "tokens": 1.0},
        {"cell": "e", "complete": True, "accuracy": 0.8, "tokens": 40.0},
    ]
    assert [(r["cell"], r["rank"]) for r in rank(rows, "accuracy")] == [
        ("b", 1),
        ("c", 2),
        ("e", 3),
        ("a", 4),
    ]


@pytest.mark.slow
def test_tune_saves_the_dev_winner_and_evaluation_labels_cannot_change_it(
    tmp_path, config_dict, write_yaml, single_thread
):
    raw = config_dict(tune=TUNE, sweep=SWEEP)
    path = write_yaml(tmp_path, raw)
    out = tmp_path / "tuned"
    result = CliRunner().invoke(main, ["tune", str(path), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "Saved the winner to" in result.output and "| rank |" in result.output
    board = (out / "leaderboard.csv").read_text().splitlines()
    assert len(board) == 1 + 4  # zero-shot, first, knn, and the flipped-label ablation
    grid = [json.loads(line) for line in (out / "grid" / "results.jsonl").read_text().splitlines()]
    pool_ids = {json.loads(line)["id"] for line in open(raw["data"]["pool"])}
    assert {record["query"] for record in grid} <= pool_ids  # dev queries come from the pool
    winner = next(row for row in _ranked(out) if row["label_mode"] == "gold")
    model = ICLClassifier.load(out / "model")
    assert model.spec_.k == int(winner["k"])
    if model.spec_.k:
        assert model.spec_.selector["name"] == winner["selector"]
    assert len(model.pool_) == 200 - 6  # the pool the winner was measured with, no dev example
    # The evaluation set is never read: other evaluation labels, or none, change nothing.
    flipped = tmp_path / "flipped.jsonl"
    rows = [json.loads(line) for line in open(raw["data"]["eval"])]
    swap = {"negative": "positive", "positive": "negative"}
    flipped.write_text("".join(json.dumps({**r, "label": swap[r["label"]]}) + "\n" for r in rows))
    for eval_path in (flipped, tmp_path / "absent.jsonl"):
        other = config_dict(tune=TUNE, sweep=SWEEP)
        other["data"] = {**other["data"], "eval": str(eval_path)}
        other_out = tmp_path / f"tuned-{eval_path.stem}"
        again = CliRunner().invoke(
            main,
            [
                "tune",
                str(write_yaml(tmp_path, other, "other.yaml")),
                "--out",
                str(other_out),
                "--no-progress",
            ],
        )
        assert again.exit_code == 0, again.output
        assert (other_out / "leaderboard.csv").read_text() == (out / "leaderboard.csv").read_text()
        assert ICLClassifier.load(other_out / "model").spec_ == model.spec_

    # iclkit predict: texts, and a labelled file to JSON lines with the accuracy.
    texts = CliRunner().invoke(
        main,
        ["predict", "--model", str(out / "model"), "--text", "a joy to use", "--text", "broke"],
    )
    assert texts.exit_code == 0, texts.output
    lines = texts.output.strip().splitlines()
    assert len(lines) == 2 and all(
        line.split("\t")[0] in ("negative", "positive") for line in lines
    )
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    predicted = tmp_path / "predicted.jsonl"
    run = CliRunner().invoke(
        main,
        [
            "predict",
            "--model",
            str(out / "model"),
            "--input",
            str(inputs),
            "--output",
            str(predicted),
        ],
    )
    assert run.exit_code == 0, run.output
    assert "accuracy" in run.output and "on 3 labelled inputs" in run.output
    records = [json.loads(line) for line in predicted.read_text().splitlines()]
    assert [r["id"] for r in records] == [r["id"] for r in rows[:3]]
    for record in records:
        assert record["label"] in ("negative", "positive") and record["gold"] in swap
        assert sum(record["probabilities"].values()) == pytest.approx(1)
        assert len(record["demonstrations"]) == model.spec_.k


def _ranked(out):
    import csv

    with (out / "leaderboard.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_tune_needs_a_gold_pipeline_and_predict_needs_inputs(config_dict, tmp_path, write_yaml):
    raw = config_dict(tune=TUNE, sweep={"selector": "first", "k": 1, "label_mode": "flipped"})
    result = CliRunner().invoke(main, ["tune", str(write_yaml(tmp_path, raw))])
    assert result.exit_code == 1 and "no pipeline of the grid can be chosen" in result.output
    result = CliRunner().invoke(main, ["predict", "--model", str(tmp_path)])
    assert result.exit_code == 2 and "--text" in result.output
    result = CliRunner().invoke(main, ["predict", "--model", str(tmp_path), "--text", "x"])
    assert result.exit_code == 1 and "not a saved classifier" in result.output
