import json
import re
from pathlib import Path

import pytest

from iclkit.errors import ConfigError, DataError
from iclkit.experiment import ExperimentConfig, load_config, plan_experiment, validate_config

POOL = Path(__file__).resolve().parents[2] / "examples" / "data" / "sentiment_pool.jsonl"


def test_yaml_and_python_api_give_the_same_config(tmp_path, config_dict, write_yaml):
    raw = config_dict()
    from_yaml = load_config(write_yaml(tmp_path, raw))
    from_python = ExperimentConfig.model_validate(raw)
    assert from_yaml == from_python
    assert from_yaml.sweep[0]["k"] == [0]  # a scalar stands for a one-element list
    assert from_yaml.data.labels == {"negative": "negative", "positive": "positive"}


def test_relative_paths_are_relative_to_the_config_file(tmp_path, config_dict, write_yaml):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "pool.jsonl").write_text(POOL.read_text())
    raw = config_dict()
    raw["data"] = {**raw["data"], "pool": "data/pool.jsonl"}
    config = load_config(write_yaml(tmp_path, raw))
    assert config.data.pool == tmp_path / "data" / "pool.jsonl"


@pytest.mark.parametrize(
    ("change", "key", "fragments"),
    [
        ({"selector": ["knnn"]}, "sweep.selector[0]", ["'knnn'", "allowed:", "random"]),
        ({"backend": ["nope"]}, "sweep.backend[0]", ["'nope'", "allowed:", "local"]),
        ({"orderer": [{"name": "sideways"}]}, "sweep.orderer[0]", ["'sideways'", "reverse"]),
        (
            {"label_mode": ["gold", "inverted"]},
            "sweep.label_mode[1]",
            ["'flipped'", "'inverted'"],
        ),
        (
            {"classifier.method": "maybe"},
            "sweep.classifier.method",
            ["'maybe'", "allowed:", "loglik", "generate"],
        ),
        ({"classifier.calibration": "affine"}, "sweep.classifier.calibration", ["'affine'"]),
        ({"k": [4, -1]}, "sweep.k[1]", ["greater than or equal to 0", "-1"]),
        ({"permutations": 0}, "sweep.permutations", ["at least 1"]),
        ({"colour": "red"}, "sweep.colour", ["unknown key", "selector"]),
        ({"selectors": "knn"}, "sweep.selectors", ["renamed: write selector"]),
    ],
)
def test_bad_sweep_values_name_the_key_value_and_allowed(
    tmp_path, change, key, fragments, config_dict, write_yaml
):
    raw = config_dict(sweep=change)
    with pytest.raises(ConfigError) as caught:
        load_config(write_yaml(tmp_path, raw))
    message = str(caught.value)
    assert str(tmp_path / "config.yaml") in message
    assert f"  {key}:" in message
    for fragment in fragments:
        assert fragment in message


def test_every_problem_is_listed_once(tmp_path, config_dict):
    raw = config_dict(sweep=[{"k": 1}, {"selector": "x", "backend": "y"}])
    raw["data"] = {**raw["data"], "eval_size": 0}
    with pytest.raises(ConfigError) as caught:
        validate_config(raw)
    message = str(caught.value)
    assert "3 problem(s)" in message
    assert "  sweep[1].selector: unknown selector" in message
    assert "  sweep[1].backend: unknown backend" in message
    assert "data.eval_size" in message


def test_missing_required_key(tmp_path, config_dict):
    raw = config_dict()
    del raw["data"]["labels"]
    with pytest.raises(ConfigError, match=r"data\.labels: Field required"):
        validate_config(raw)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndata: {pool: a\nsweep: []\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: not valid YAML"):
        load_config(path)


def test_unrelated_mode_needs_a_word_per_label(config_dict):
    raw = config_dict(
        sweep={"label_mode": "unrelated"},
        run={"unrelated_labels": ["foo"]},
    )
    with pytest.raises(ConfigError, match=r"needs 2 distinct run\.unrelated_labels"):
        validate_config(raw)


def test_template_errors_are_config_errors(config_dict):
    raw = config_dict(pipeline={"formatter": {"name": "text", "template": "Review: {text}"}})
    with pytest.raises(ConfigError, match=r"pipeline\.formatter: .*\{output\}"):
        validate_config(raw)


def test_label_outside_the_label_space(tmp_path, config_dict):
    raw = config_dict()
    raw["data"] = {**raw["data"], "labels": {"negative": "bad", "neutral": "meh"}}
    with pytest.raises(DataError) as caught:
        plan_experiment(validate_config(raw))
    message = str(caught.value)
    assert "sentiment_pool.jsonl" in message and "'positive'" in message
    assert "not in the label space ('negative', 'neutral')" in message
    assert "Fix: add the label to data.labels" in message


def test_empty_evaluation_input(tmp_path, config_dict):
    rows = [
        {"id": "a", "text": "fine", "label": "positive"},
        {"id": "b", "text": "  ", "label": "negative"},
    ]
    eval_path = tmp_path / "eval.jsonl"
    eval_path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    raw = config_dict()
    raw["data"] = {**raw["data"], "eval": str(eval_path), "eval_size": None}
    with pytest.raises(
        DataError, match=r"eval\.jsonl: data\.eval: example 2 \(id 'b'\) has an empty input"
    ):
        plan_experiment(validate_config(raw))


def test_k_larger_than_the_pool(config_dict):
    raw = config_dict(sweep={"k": [2, 50]})
    raw["data"] = {**raw["data"], "pool_size": 10}
    with pytest.raises(ConfigError, match=r"sweep\.k: k=50 is larger than the pool \(10 examples"):
        plan_experiment(validate_config(raw))


def test_missing_data_file(tmp_path, config_dict):
    raw = config_dict()
    raw["data"] = {**raw["data"], "eval": str(tmp_path / "absent.jsonl")}
    with pytest.raises(FileNotFoundError, match=r"absent\.jsonl"):
        plan_experiment(validate_config(raw))


def test_slices_subsample_and_label_text_format(tmp_path, config_dict):
    lines = [f"{i % 2} sentence number {i}" for i in range(30)]
    path = tmp_path / "data.txt"
    path.write_text("\n".join(lines) + "\n")
    raw = config_dict()
    raw["data"] = {
        "pool": str(path),
        "eval": str(path),
        "format": "label-text",
        "labels": {"0": "negative", "1": "positive"},
        "pool_slice": [0, 20],
        "eval_slice": [20, 30],
        "eval_size": 5,
        "subsample_seed": 3,
    }
    data = plan_experiment(validate_config(raw)).data
    assert len(data.pool) == 20 and len(data.eval) == 5
    assert [example.id for example in data.pool][:2] == ["pool-0", "pool-1"]
    assert all(20 <= int(example.id.split("-")[1]) < 30 for example in data.eval)
    again = plan_experiment(validate_config(raw)).data
    assert [e.id for e in again.eval] == [e.id for e in data.eval]


def test_csv_and_dataset_folder_inputs(tmp_path, config_dict):
    import csv

    from datasets import Dataset

    rows = [
        {"title": f"headline {i}", "body": f"story {i}", "topic": str(i % 3)} for i in range(12)
    ]
    with (tmp_path / "news.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["title", "body", "topic"])
        writer.writeheader()
        writer.writerows(rows)
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "news_hf"))
    raw = config_dict()
    raw["data"] = {
        "pool": str(tmp_path / "news.csv"),
        "eval": str(tmp_path / "news_hf"),
        "input_fields": ["title", "body"],
        "output_field": "topic",
        "labels": {"0": "world", "1": "sports", "2": "science"},
    }
    raw["pipeline"] = {
        "formatter": {"name": "text", "template": "{title}\n{body}\nTopic: {output}"}
    }
    data = plan_experiment(validate_config(raw)).data
    assert len(data.pool) == len(data.eval) == 12
    assert data.eval[4].input == {"title": "headline 4", "body": "story 4"}
    assert data.eval[4].id == "eval-4" and data.pool[4].output == "1"
    raw["data"]["format"] = "jsonl"
    with pytest.raises(DataError, match=r"data\.format is 'jsonl' but the file is '\.csv'"):
        plan_experiment(validate_config(raw))


def test_unknown_component_options_fail_when_the_config_is_read(config_dict):
    raw = config_dict(sweep={"selector": [{"name": "mmr", "lamda": 0.5}]})
    with pytest.raises(ConfigError) as caught:
        validate_config(raw)
    message = str(caught.value)
    assert "  sweep.selector[0]: selector 'mmr'" in message
    assert "'lamda'" in message


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"sweep": {"k": True}}, "sweep.k: Input should be a valid integer"),
        ({"sweep": {"k": 4.0}}, "sweep.k: Input should be a valid integer"),
        ({"sweep": {"classifier.calibration": True}}, "sweep.classifier.calibration: expected"),
        ({"run": {"batch_size": "8"}}, "run.batch_size: Input should be a valid integer"),
        (
            {"data": {"labels": {"negative": None, "positive": "positive"}}},
            "labels and their words must be text or integers, got None",
        ),
        ({"data": {"labels": [True, False]}}, "must be text or integers, got True"),
        ({"data": {"labels": [[], "x"]}}, "must be text or integers, got []"),
        ({"sweep": {"selector": []}}, "sweep.selector: an empty list sweeps nothing"),
        ({"pipeline": {"k": "4"}}, "pipeline.k: Input should be a valid integer"),
    ],
)
def test_config_values_are_not_silently_coerced(config_dict, change, problem):
    raw = config_dict()
    for section, values in change.items():
        raw[section] = {**raw[section], **values} if isinstance(raw[section], dict) else values
    with pytest.raises(ConfigError, match=re.escape(problem)):
        validate_config(raw)
