"""Hugging Face datasets in configs, read offline through ``datasets.load_dataset``.

The hub is never reached (HF_HUB_OFFLINE=1): ``load_dataset``'s packaged ``json``, ``csv`` and
``parquet`` builders read local files, the same code path a hub dataset takes once loaded.
"""

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from iclkit.cli import main
from iclkit.errors import ConfigError, DataError
from iclkit.experiment import load_config, plan_experiment, validate_config
from iclkit.experiment.data import load_data
from iclkit.pool import Pool

ROOT = Path(__file__).resolve().parents[2]
ROWS = [{"sentence": f"review number {i}", "label": i % 2, "idx": i} for i in range(30)]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "data").mkdir()
    with (tmp_path / "data" / "train.jsonl").open("w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in ROWS[:20])
    with (tmp_path / "data" / "dev.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["sentence", "label", "idx"])
        writer.writeheader()
        writer.writerows(ROWS[20:])
    return tmp_path


def _data(**sources):
    return {
        **sources,
        "input_fields": ["sentence"],
        "id_field": "idx",
        "labels": {"0": "negative", "1": "positive"},
    }


def test_pool_and_eval_from_local_files_through_load_dataset(files, config_dict, write_yaml):
    raw = config_dict()
    raw["data"] = _data(
        pool={"hf": {"path": "json", "data_files": "data/train.jsonl"}},
        eval={"hf": {"path": "csv", "data_files": {"dev": "data/dev.csv"}, "split": "dev"}},
    )
    config = load_config(write_yaml(files, raw))  # data_files relative to the config file
    data = load_data(config.data)
    direct = Pool.load(files / "data" / "train.jsonl", input_fields=["sentence"], id_field="idx")
    assert [(e.id, e.input, e.output) for e in data.pool] == [
        (e.id, e.input, e.output) for e in direct
    ]
    assert len(data.eval) == 10 and data.eval[0].id == "20"
    assert data.eval[0].text == "review number 20" and data.eval[0].output == "0"
    assert data.pool.source == "hf:json[train]" and data.eval.source == "hf:csv[dev]"


def test_one_split_for_pool_and_eval_with_slices(files, config_dict, write_yaml):
    raw = config_dict()
    raw["data"] = _data(
        hf={"path": "json", "data_files": "data/train.jsonl", "split": "train[:16]"},
        pool_slice=[0, 10],
        eval_slice=[10, 16],
    )
    raw["pipeline"]["formatter"] = {"name": "text", "template": "Review: {input}\nLabel: {output}"}
    plan = plan_experiment(load_config(write_yaml(files, raw)))
    assert [e.id for e in plan.data.pool] == [str(i) for i in range(10)]
    assert [e.id for e in plan.data.eval] == [str(i) for i in range(10, 16)]
    # The dry run goes through the same loader.
    result = CliRunner().invoke(main, ["run", str(files / "config.yaml"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "6 evaluation examples" in result.output


def test_sources_must_be_hf_or_pool_and_eval(files, config_dict):
    raw = config_dict()
    both = _data(hf={"path": "json"}, pool=str(files / "data" / "train.jsonl"))
    with pytest.raises(ConfigError, match="either data.hf .* or data.pool and data.eval"):
        validate_config({**raw, "data": both})
    # Without data.eval the config is valid (iclkit tune never reads it); iclkit run needs it.
    pool_only = validate_config({**raw, "data": _data(pool=str(files / "data" / "train.jsonl"))})
    with pytest.raises(ConfigError, match=r"data\.eval is missing"):
        plan_experiment(pool_only)
    with pytest.raises(ConfigError, match=r"data\.pool missing"):
        validate_config({**raw, "data": _data(eval=str(files / "data" / "train.jsonl"))})
    with pytest.raises(ConfigError, match=r"data\.pool\.hf\.splt: unknown key"):
        validate_config({**raw, "data": _data(pool={"hf": {"path": "json", "splt": "x"}})})


def test_a_split_that_cannot_be_loaded_is_one_clear_error(files, config_dict, write_yaml):
    raw = config_dict()
    raw["data"] = _data(
        pool={"hf": {"path": "json", "data_files": "data/train.jsonl", "split": "validation"}},
        eval={"hf": {"path": "json", "data_files": "data/train.jsonl"}},
    )
    with pytest.raises(DataError, match=r"data\.pool: datasets\.load_dataset could not load"):
        plan_experiment(load_config(write_yaml(files, raw)))
    result = CliRunner().invoke(main, ["run", str(files / "config.yaml"), "--dry-run"])
    assert result.exit_code == 1
    assert "hf:json[validation]" in result.output and "Fix:" in result.output
    assert "Traceback" not in result.output


def test_agnews_through_load_dataset_equals_the_file_config(shared_data):
    """The AG News grid's data read by datasets' csv builder (data.hf) and by iclkit's reader."""
    by_file = load_config(ROOT / "examples" / "real-data" / "agnews.yaml")
    raw = by_file.model_dump(mode="json")
    data = {key: value for key, value in raw["data"].items() if key not in ("pool", "eval")}
    raw["data"] = {
        **data,
        "hf": {"path": "csv", "data_files": str(shared_data / "agnews" / "test.csv")},
    }
    through_hf = load_data(validate_config(raw).data)
    expected = load_data(by_file.data)
    for mine, theirs in ((through_hf.pool, expected.pool), (through_hf.eval, expected.eval)):
        assert len(mine) == len(theirs) > 0
        assert [(e.input, e.output) for e in mine] == [(e.input, e.output) for e in theirs]


@pytest.mark.parametrize("name", ["sst2-hub.yaml", "agnews-hub.yaml"])
def test_hub_configs_are_valid(name):
    config = load_config(ROOT / "examples" / "real-data" / name)
    assert config.data.source("pool").path == config.data.source("eval").path
