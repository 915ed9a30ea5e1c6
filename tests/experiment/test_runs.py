"""Grid runs end to end with the `counting` test backend: dry run, results, resume, report."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from iclkit.cli import main
from iclkit.errors import ConfigError
from iclkit.experiment import plan_experiment, render_report, run_experiment, validate_config
from iclkit.experiment.store import ResultsStore

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(Path(__file__).with_name("counting_backend.py"))


def _lines(folder: Path) -> list[str]:
    return (folder / "results.jsonl").read_text().splitlines()


def _keys(folder: Path) -> list[tuple[str, str]]:
    return [(r["cell"], r["query"]) for r in map(json.loads, _lines(folder))]


def test_dry_run_prints_the_grid_and_model_calls(tmp_path, config_dict, write_yaml):
    raw = config_dict()
    raw["sweep"].append({"k": 4, "backends": "counting", "calibration": True})
    path = write_yaml(tmp_path, raw)
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "o"), "--dry-run"])
    assert result.exit_code == 0, result.output
    plan = plan_experiment(validate_config(raw))
    # zero-shot once; random: 2 k × 2 seeds; first has no seed: 2 k; calibrated random: 1.
    assert len(plan.cells) == 1 + 4 + 2 + 1
    n = len(plan.data.eval)
    expected_calls = (len(plan.cells) - 1) * n + n * (1 + 3)
    assert sum(plan.calls.values()) == expected_calls
    assert f"{len(plan.cells)} cells × {n} evaluation examples" in result.output
    assert f"at most {expected_calls} model calls" in result.output
    for cell in plan.cells:
        assert cell.id in result.output
    assert not (tmp_path / "o").exists()


def test_grid_collapses_what_does_not_apply(config_dict):
    raw = config_dict(
        sweep={
            "selectors": ["first", "random"],
            "k": [0, 1, 3],
            "seeds": [0, 1],
            "backends": "counting",
            "scoring": ["loglik", "generate"],
            "calibration": [False, True],
            "permutations": 10,
        }
    )
    cells = plan_experiment(validate_config(raw)).cells
    assert len({cell.id for cell in cells}) == len(cells)
    zero = [cell for cell in cells if cell.k == 0]
    assert {(c.scoring, c.calibration) for c in zero} == {
        ("loglik", False),
        ("loglik", True),
        ("generate", False),
    }
    assert all(c.selector is None and c.seed is None for c in zero)
    assert not any(c.scoring == "generate" and c.calibration for c in cells)
    first = [c for c in cells if c.selector == {"name": "first"}]
    assert all(c.seed is None for c in first)
    # k=1 has one order, k=3 has 3! = 6 < 10 orders.
    assert max(c.permutation for c in cells if c.k == 1) == 0
    assert max(c.permutation for c in cells if c.k == 3) == 5
    random_k3 = [c for c in cells if c.k == 3 and c.selector and c.selector["name"] == "random"]
    assert {c.selector["seed"] for c in random_k3} == {0, 1}


def test_run_writes_one_record_per_prediction_and_the_report(tmp_path, config_dict):
    raw = config_dict()
    raw["sweep"].append(
        {
            "k": 4,
            "backends": "counting",
            "label_modes": ["random", "flipped", "unrelated"],
            "permutations": 3,
        }
    )
    config = validate_config(raw)
    report = run_experiment(config, tmp_path, progress=False)
    plan = plan_experiment(config)
    keys = _keys(tmp_path)
    assert len(keys) == len(plan.cells) * len(plan.data.eval) == len(set(keys))
    record = json.loads(_lines(tmp_path)[-1])
    assert set(record) == {
        "probabilities",
        "cell",
        "query",
        "demos",
        "demo_labels",
        "scores",
        "output",
        "prediction",
        "gold",
        "params",
    }
    assert len(record["demos"]) == 4 and set(record["scores"]) == {"negative", "positive"}
    for name in ("summary.csv", "summary.md", "accuracy_vs_k.png", "order_sensitivity.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert len(report.cells) == len(plan.cells)
    assert all(row["n"] == len(plan.data.eval) for row in report.cells)
    assert len(report.orders) == 3  # random, flipped, unrelated at k=4, 3 orders each
    by_cell = {row["cell"]: row for row in report.cells}
    for cell_id, row in by_cell.items():
        records = [r for r in map(json.loads, _lines(tmp_path)) if r["cell"] == cell_id]
        assert row["accuracy"] == sum(r["prediction"] == r["gold"] for r in records) / len(records)


def test_flipped_labels_show_the_other_label(tmp_path, config_dict):
    raw = config_dict(
        sweep={
            "k": 4,
            "backends": "counting",
            "label_modes": ["gold", "flipped"],
            "selectors": "first",
        }
    )
    run_experiment(validate_config(raw), tmp_path, progress=False)
    records = [json.loads(line) for line in _lines(tmp_path)]
    gold = {r["query"]: r["demo_labels"] for r in records if r["params"]["label_mode"] == "gold"}
    flipped = {
        r["query"]: r["demo_labels"] for r in records if r["params"]["label_mode"] == "flipped"
    }
    assert gold.keys() == flipped.keys()
    swap = {"negative": "positive", "positive": "negative"}
    for query, labels in gold.items():
        assert flipped[query] == [swap[label] for label in labels]


def test_report_rerenders_the_same_summary(tmp_path, config_dict):
    run_experiment(validate_config(config_dict()), tmp_path, progress=False)
    before = (tmp_path / "summary.csv").read_text(), (tmp_path / "summary.md").read_text()
    for name in ("summary.csv", "summary.md", "accuracy_vs_k.png"):
        (tmp_path / name).unlink()
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert ((tmp_path / "summary.csv").read_text(), (tmp_path / "summary.md").read_text()) == before
    assert (tmp_path / "accuracy_vs_k.png").exists()
    assert "± " in result.output


def test_report_without_results_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 1
    assert "no results.jsonl here" in result.output


def test_a_different_config_is_refused_unless_resume_or_overwrite(tmp_path, config_dict):
    first = validate_config(config_dict())
    run_experiment(first, tmp_path, progress=False)
    n_first = len(_lines(tmp_path))
    bigger = config_dict()
    bigger["sweep"].append({"k": 1, "backends": "counting"})
    second = validate_config(bigger)
    with pytest.raises(
        ConfigError, match=r"holds results of a different config.*--resume.*--overwrite"
    ):
        run_experiment(second, tmp_path, progress=False)
    # --resume keeps the shared cells and computes only the new one.
    (tmp_path / "notes.txt").write_text("mine")
    report = run_experiment(second, tmp_path, resume=True, progress=False)
    n_eval = len(plan_experiment(second).data.eval)
    assert len(_lines(tmp_path)) == n_first + n_eval
    assert len(report.cells) == len(plan_experiment(second).cells)
    # --overwrite starts again and deletes only the run's own files.
    run_experiment(first, tmp_path, overwrite=True, progress=False)
    assert len(_lines(tmp_path)) == n_first
    assert (tmp_path / "notes.txt").read_text() == "mine"
    # The same config again runs nothing new.
    run_experiment(first, tmp_path, progress=False)
    assert len(_lines(tmp_path)) == n_first


def test_a_line_cut_short_by_a_kill_is_removed_on_resume(tmp_path, config_dict):
    config = validate_config(config_dict())
    run_experiment(config, tmp_path, progress=False)
    complete = _lines(tmp_path)
    with (tmp_path / "results.jsonl").open("w") as handle:
        handle.write("\n".join(complete[:-3]) + "\n" + complete[-3][:40])
    assert len(ResultsStore(tmp_path).records()) == len(complete) - 3
    run_experiment(config, tmp_path, progress=False)
    assert sorted(_lines(tmp_path)) == sorted(complete)


def _cli(config_path: Path, out: Path, delay: str) -> subprocess.Popen:
    env = {**os.environ, "ICLKIT_TEST_DELAY": delay}
    return subprocess.Popen(
        [sys.executable, SCRIPT, "run", str(config_path), "--out", str(out), "--no-progress"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_lines(out: Path, count: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        results = out / "results.jsonl"
        if results.exists() and len(results.read_text().splitlines()) >= count:
            return
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.05)
    raise AssertionError("the run made no progress")


def test_killed_and_interrupted_runs_resume_without_loss_or_duplicates(
    tmp_path, config_dict, write_yaml
):
    raw = config_dict()
    raw["data"]["eval_size"] = 24
    path = write_yaml(tmp_path, raw)
    reference = tmp_path / "reference"
    done = _cli(path, reference, "0")
    assert done.wait(60) == 0, done.stdout.read()
    expected = sorted(_lines(reference))

    out = tmp_path / "interrupted"
    process = _cli(path, out, "0.01")
    _wait_for_lines(out, 30, process)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    after_kill = len(_lines(out))
    assert 30 <= after_kill < len(expected)

    process = _cli(path, out, "0.01")
    _wait_for_lines(out, after_kill + 20, process)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "interrupted; every finished prediction is saved" in output
    after_interrupt = len(_lines(out))
    assert after_kill + 20 <= after_interrupt < len(expected)

    process = _cli(path, out, "0")
    assert process.wait(60) == 0, process.stdout.read()
    lines = _lines(out)
    assert len(lines) == len(expected)
    counts = Counter(_keys(out))
    assert max(counts.values()) == 1
    assert sorted(lines) == expected


def test_cli_and_build_do_not_import_torch_or_matplotlib():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "import iclkit\n"
        "from iclkit.cli import main\n"
        "args = ['build', '--pool', 'examples/data/reviews.jsonl', '--query', 'ok', '--k', '2']\n"
        "result = CliRunner().invoke(main, args)\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "[]"


def test_cli_errors_are_one_clean_line(tmp_path, config_dict, write_yaml):
    path = write_yaml(tmp_path, config_dict(sweep={"backends": "counting", "k": "four"}))
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert "sweep.k: Input should be a valid integer" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(main, ["run", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 1 and "absent.yaml" in result.output


def test_incomplete_cells_stay_out_of_the_means(tmp_path, config_dict):
    run_experiment(validate_config(config_dict()), tmp_path, progress=False)
    lines = _lines(tmp_path)
    records = [json.loads(line) for line in lines]
    cut = next(
        r["cell"] for r in records if (r["params"]["selector"] or {}).get("name") == "random"
    )
    dropped = [i for i, r in enumerate(records) if r["cell"] == cut][:2]
    kept = [line for i, line in enumerate(lines) if i not in dropped]
    (tmp_path / "results.jsonl").write_text("\n".join(kept) + "\n")
    report = render_report(tmp_path)
    row = next(r for r in report.cells if r["cell"] == cut)
    assert not row["complete"] and row["n"] == 12 - 2 and row["accuracy"] is not None
    assert sum(r["complete"] for r in report.cells) == len(report.cells) - 1
    group = next(g for g in report.seeds if (g["selector"], g["k"]) == (row["selector"], row["k"]))
    assert group["seeds"] == 1  # the other seed only
    assert "(6 complete)" in (tmp_path / "summary.md").read_text()
