"""Grid runs end to end with the bundled Gemma 3 270M: dry run, results, resume, report."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from iclkit.cli import main
from iclkit.errors import ConfigError
from iclkit.experiment import plan_experiment, render_report, run_experiment, validate_config
from iclkit.experiment.store import ResultsStore

ROOT = Path(__file__).resolve().parents[2]


def _lines(folder: Path) -> list[str]:
    return (folder / "results.jsonl").read_text().splitlines()


def test_dry_run_prints_the_grid_and_model_calls(tmp_path, config_dict, write_yaml):
    raw = config_dict()
    raw["sweep"].append({"k": 4, "classifier": {"calibration": "contextual"}})
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
            "selector": ["first", "random"],
            "k": [0, 1, 3],
            "seed": [0, 1],
            "classifier.method": ["loglik", "generate"],
            "classifier.calibration": ["none", "contextual"],
            "permutations": 10,
        }
    )
    cells = plan_experiment(validate_config(raw)).cells
    assert len({cell.id for cell in cells}) == len(cells)
    zero = [cell for cell in cells if cell.k == 0]
    assert {(c.classifier.method["name"], str(c.classifier.calibration)) for c in zero} == {
        ("loglik", "None"),
        ("loglik", "{'name': 'contextual'}"),
        ("generate", "None"),
    }
    assert all(c.selector == {"name": "random"} and c.seed is None for c in zero)
    assert not any(
        c.classifier.method["name"] == "generate" and c.classifier.calibration for c in cells
    )
    first = [c for c in cells if c.selector == {"name": "first"} and c.k > 0]
    assert all(c.seed is None for c in first)
    # k=1 has one order, k=3 has 3! = 6 < 10 orders.
    assert max(c.permutation for c in cells if c.k == 1) == 0
    assert max(c.permutation for c in cells if c.k == 3) == 5
    random_k3 = [c for c in cells if c.k == 3 and c.selector["name"] == "random"]
    assert {c.seed for c in random_k3} == {0, 1}


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in _lines(folder)]


def _by_key(records: list[dict]) -> dict[tuple[str, str], dict]:
    return {(r["cell"], r["query"]): r for r in records}


def _assert_same_predictions(found: list[dict], expected: list[dict]) -> None:
    """Same (cell, query) keys, demonstrations and predictions; scores up to float noise."""
    found_by_key, expected_by_key = _by_key(found), _by_key(expected)
    assert found_by_key.keys() == expected_by_key.keys()
    for key, record in expected_by_key.items():
        other = found_by_key[key]
        for field in ("demos", "demo_labels", "prediction", "gold", "params"):
            assert other[field] == record[field], (key, field)
        assert other["scores"].keys() == record["scores"].keys()
        for label, score in record["scores"].items():
            assert other["scores"][label] == pytest.approx(score, rel=1e-4, abs=1e-4), key


def _f1(gold: list[str], predicted: list[str], labels: list[str]) -> float:
    per_label = []
    for label in labels:
        hits = sum(g == p == label for g, p in zip(gold, predicted, strict=True))
        shown = predicted.count(label) + gold.count(label)
        per_label.append(2 * hits / shown if shown else 0.0)
    return sum(per_label) / len(per_label)


@pytest.mark.slow
def test_run_writes_one_record_per_prediction_and_the_report(shared_run, tmp_path):
    plan, folder = shared_run.plan, shared_run.folder
    records = _records(folder)
    keys = [(r["cell"], r["query"]) for r in records]
    assert len(keys) == len(plan.cells) * len(plan.data.eval) == len(set(keys))
    assert set(records[-1]) == {
        "probabilities",
        "cell",
        "query",
        "text",
        "demos",
        "demo_labels",
        "demo_scores",
        "dropped",
        "scores",
        "output",
        "prediction",
        "gold",
        "prompt_tokens",
        "model_calls",
        "params",
    }
    gold_of = {str(query.id): query.output for query in plan.data.eval}
    labels = list(plan.config.data.labels)
    for record in records:
        k = record["params"]["k"]
        assert len(record["demos"]) == len(record["demo_labels"]) == k
        assert record["gold"] == gold_of[record["query"]]
        assert set(record["scores"]) == set(labels)
        assert all(score < 0 for score in record["scores"].values())  # log-probabilities
        assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
        # Uncalibrated log-likelihood scoring predicts the label the model finds likeliest.
        assert record["prediction"] == max(record["scores"], key=record["scores"].get)
    for name in ("summary.csv", "summary.md", "accuracy_vs_k.png", "order_sensitivity.png"):
        assert (folder / name).stat().st_size > 0
    # summary.csv: one row per cell, its metrics re-computed here from results.jsonl.
    with (folder / "summary.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["cell"] for row in rows) == sorted(cell.id for cell in plan.cells)
    accuracy_of = {}
    for row in rows:
        mine = [r for r in records if r["cell"] == row["cell"]]
        gold = [r["gold"] for r in mine]
        predicted = [r["prediction"] for r in mine]
        accuracy_of[row["cell"]] = sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(
            mine
        )
        assert int(row["n"]) == len(mine) == len(plan.data.eval)
        assert float(row["accuracy"]) == pytest.approx(accuracy_of[row["cell"]])
        assert float(row["macro_f1"]) == pytest.approx(_f1(gold, predicted, labels))
    # Zero-shot and few-shot side by side; random's row is the mean ± std over its seeds.
    report = render_report(shared_run.copy(tmp_path / "run"))
    random_cells = [c.id for c in plan.cells if c.selector_name == "random"]
    random_row = next(row for row in report.seeds if row["selector"] == "random")
    assert random_row["seeds"] == len(random_cells) == 2
    values = [accuracy_of[cell] for cell in random_cells]
    assert random_row["accuracy_mean"] == pytest.approx(sum(values) / 2)
    assert random_row["accuracy_std"] == pytest.approx(abs(values[0] - values[1]) / 2**0.5)
    zero = next(row for row in report.seeds if row["selector"] == "zero-shot")
    zero_cell = next(c.id for c in plan.cells if c.k == 0)
    assert zero["accuracy_mean"] == pytest.approx(accuracy_of[zero_cell])


@pytest.mark.slow
def test_report_rerenders_the_same_summary(shared_run, tmp_path):
    folder = shared_run.copy(tmp_path / "run")
    before = (folder / "summary.csv").read_text(), (folder / "summary.md").read_text()
    for name in ("summary.csv", "summary.md", "accuracy_vs_k.png"):
        (folder / name).unlink()
    result = CliRunner().invoke(main, ["report", str(folder)])
    assert result.exit_code == 0, result.output
    assert ((folder / "summary.csv").read_text(), (folder / "summary.md").read_text()) == before
    assert (folder / "accuracy_vs_k.png").exists()
    assert "± " in result.output


def test_report_without_results_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 1
    assert "no results.jsonl here" in result.output


@pytest.mark.slow
def test_a_different_config_is_refused_unless_resume_or_overwrite(
    tmp_path, config_dict, single_thread
):
    small = {**config_dict()["data"], "eval_size": 3}
    first = validate_config(config_dict(data=small, sweep={"k": 0}))
    run_experiment(first, tmp_path, progress=False)
    original = _records(tmp_path)
    original_lines = _lines(tmp_path)
    assert len(original) == 3
    bigger = config_dict(
        data=small,
        sweep=[{"k": 0}, {"k": 1, "selector": "first"}],
    )
    second = validate_config(bigger)
    with pytest.raises(
        ConfigError, match=r"holds results of a different config.*--resume.*--overwrite"
    ):
        run_experiment(second, tmp_path, progress=False)
    # --resume keeps the shared cell and computes only the new one.
    (tmp_path / "notes.txt").write_text("mine")
    report = run_experiment(second, tmp_path, resume=True, progress=False)
    resumed = _lines(tmp_path)
    assert resumed[:3] == original_lines
    assert len(resumed) == 3 + 3 and len(report.cells) == 2
    # --overwrite starts again and deletes only the run's own files.
    run_experiment(first, tmp_path, overwrite=True, progress=False)
    _assert_same_predictions(_records(tmp_path), original)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    # The same config again runs nothing new.
    before = _lines(tmp_path)
    run_experiment(first, tmp_path, progress=False)
    assert _lines(tmp_path) == before


@pytest.mark.slow
def test_a_line_cut_short_by_a_kill_is_removed_on_resume(shared_run, tmp_path, single_thread):
    folder = shared_run.copy(tmp_path / "run")
    complete = _lines(folder)
    with (folder / "results.jsonl").open("w") as handle:
        handle.write("\n".join(complete[:-3]) + "\n" + complete[-3][:40])
    assert len(ResultsStore(folder).records()) == len(complete) - 3
    run_experiment(validate_config(shared_run.raw), folder, progress=False)
    lines = _lines(folder)
    assert lines[:-3] == complete[:-3]
    _assert_same_predictions(_records(folder), [json.loads(line) for line in complete])


ICLKIT = Path(sys.executable).with_name("iclkit")
#: Generous: on a 2-core machine shared with other jobs a niced run can starve for minutes.
PATIENCE = 1200


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def _iclkit_run(config_path: Path, out: Path, log: Path) -> Iterator[subprocess.Popen]:
    """``iclkit run CONFIG --out OUT`` in a new process, killed if still running at the end.

    Its output goes to ``log`` (a pipe nobody reads could fill up and stall it); torch runs
    on one thread (see conftest.one_torch_thread).
    """
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(ICLKIT), "run", str(config_path), "--out", str(out), "--no-progress"],
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            # Ctrl-C must reach it even when the tests run as a background job, whose
            # children inherit an ignored SIGINT (then Python installs no handler).
            preexec_fn=_default_sigint,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(PATIENCE)


def _complete_lines(out: Path) -> int:
    results = out / "results.jsonl"
    return results.read_text().count("\n") if results.exists() else 0


def _wait_for_more_than(count: int, out: Path, total: int, process: subprocess.Popen) -> None:
    """Poll until ``results.jsonl`` has more than ``count`` lines; fail if the run ends first."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        found = _complete_lines(out)
        if found > count:
            assert found < total, "the run finished before it could be stopped: grow the grid"
            return
        assert process.poll() is None, f"the run exited with {process.returncode}"
        time.sleep(0.02)
    raise AssertionError(f"the run made no progress in {PATIENCE} s")


@pytest.mark.slow
def test_killed_and_interrupted_runs_resume_without_loss_or_duplicates(
    shared_run, tmp_path, write_yaml
):
    path = write_yaml(tmp_path, shared_run.raw)
    expected = _records(shared_run.folder)  # the uninterrupted run of the same config
    total = len(expected)
    out, log = tmp_path / "interrupted", tmp_path / "log.txt"

    with _iclkit_run(path, out, log) as process:
        _wait_for_more_than(0, out, total, process)
        process.send_signal(signal.SIGKILL)
        process.wait(PATIENCE)
    after_kill = _complete_lines(out)
    assert 1 <= after_kill < total

    with _iclkit_run(path, out, log) as process:
        _wait_for_more_than(after_kill, out, total, process)
        process.send_signal(signal.SIGINT)
        assert process.wait(PATIENCE) == 1, log.read_text()
    assert "interrupted; every finished prediction is saved" in log.read_text()
    after_interrupt = _complete_lines(out)
    assert after_kill < after_interrupt < total

    with _iclkit_run(path, out, log) as process:
        assert process.wait(PATIENCE) == 0, log.read_text()
    records = _records(out)
    counts = Counter((r["cell"], r["query"]) for r in records)
    print(
        f"SIGKILL after {after_kill} of {total} predictions, Ctrl-C after {after_interrupt}; "
        f"resumed to {len(records)} records, {sum(c - 1 for c in counts.values())} duplicated"
    )
    assert len(records) == total
    assert max(counts.values()) == 1
    _assert_same_predictions(records, expected)


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
    path = write_yaml(tmp_path, config_dict(sweep={"k": "four"}))
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert "sweep.k: " in result.output and "valid integer" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(main, ["run", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 1 and "absent.yaml" in result.output


@pytest.mark.slow
def test_incomplete_cells_stay_out_of_the_means(shared_run, tmp_path):
    folder = shared_run.copy(tmp_path / "run")
    lines = _lines(folder)
    records = [json.loads(line) for line in lines]
    cut = next(
        r["cell"]
        for r in records
        if r["params"]["k"] and r["params"]["selector"]["name"] == "random"
    )
    dropped = [i for i, r in enumerate(records) if r["cell"] == cut][:2]
    kept = [line for i, line in enumerate(lines) if i not in dropped]
    (folder / "results.jsonl").write_text("\n".join(kept) + "\n")
    report = render_report(folder)
    n_eval = len(shared_run.plan.data.eval)
    row = next(r for r in report.cells if r["cell"] == cut)
    assert not row["complete"] and row["n"] == n_eval - 2 and row["accuracy"] is not None
    assert sum(r["complete"] for r in report.cells) == len(report.cells) - 1
    group = next(g for g in report.seeds if (g["selector"], g["k"]) == (row["selector"], row["k"]))
    assert group["seeds"] == 1  # the other seed only
    assert f"({len(report.cells) - 1} complete)" in (folder / "summary.md").read_text()
