"""The run folder is trusted: one run at a time, each prediction counted once, nothing deleted
before the new config is known to fit, names that stay names, and file-system errors that are
one clear line. Most tests plan a real grid (no model) and write the records a run writes."""

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from iclkit.cli import main
from iclkit.experiment import plan_experiment, render_report, validate_config
from iclkit.experiment.store import ResultsStore

ICLKIT = Path(sys.executable).with_name("iclkit")
LOCK = ".iclkit-run.lock"  # iclkit.experiment.store.LOCK


def planned_run(folder: Path, config: dict, wrong_after: int | None = None) -> list[dict]:
    """Write ``run.json`` and ``results.jsonl`` as a finished run of ``config`` leaves them.

    Predictions are right for the first half of the queries of each cell and wrong for the
    rest. Returns the records.
    """
    plan = plan_experiment(validate_config(config))
    queries = list(plan.data.eval)
    labels = list(plan.config.data.labels)
    records = []
    for cell in plan.cells:
        for number, query in enumerate(queries):
            right = number < len(queries) // 2
            other = labels[(labels.index(query.output) + 1) % len(labels)]
            records.append(
                {
                    "cell": cell.id,
                    "query": str(query.id),
                    "demos": [],
                    "demo_labels": [],
                    "scores": {},
                    "probabilities": {},
                    "output": None,
                    "prediction": query.output if right else other,
                    "gold": query.output,
                    "params": cell.params(),
                }
            )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps(plan.info()))
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def small(config_dict, **overrides):
    data = {**config_dict()["data"], "eval_size": 4}
    return config_dict(data=data, sweep={"k": [0, 1], "selector": "first"}, **overrides)


def cli(*args, cwd=None):
    return subprocess.run(
        [str(ICLKIT), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


# -- two runs on one folder ---------------------------------------------------------------------


def test_two_runs_on_one_folder_the_second_is_refused_while_the_first_holds_it(
    tmp_path, config_dict, write_yaml
):
    out = tmp_path / "out"
    records = planned_run(out, small(config_dict))
    before = (out / "results.jsonl").read_bytes()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from iclkit.experiment.store import ResultsStore\n"
            f"with ResultsStore({str(out)!r}).lock():\n"
            "    print('holding', flush=True)\n"
            "    time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        path = write_yaml(tmp_path, small(config_dict))
        result = cli("run", path, "--out", out, "--overwrite")
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("Error: ")
        assert f"{out} is in use by another iclkit run (it holds {LOCK})" in result.stderr
        assert "Traceback" not in result.stderr
        assert (out / "results.jsonl").read_bytes() == before  # --overwrite deleted nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    # The OS releases the lock of a killed process: the folder is free again.
    with ResultsStore(out).lock():
        assert len(ResultsStore(out).records()) == len(records)


@pytest.mark.slow
def test_two_runs_started_together_on_one_folder_write_each_prediction_once(
    tmp_path, config_dict, write_yaml
):
    config = small(config_dict)
    path = write_yaml(tmp_path, config)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [str(ICLKIT), "run", str(path), "--out", str(out), "--no-progress"]
    runs = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outcomes = [(run.wait(600), run.stderr.read()) for run in runs]
    lines = (out / "results.jsonl").read_text().splitlines()
    pairs = [(json.loads(line)["cell"], json.loads(line)["query"]) for line in lines]
    expected = len(plan_experiment(validate_config(config)).cells) * 4
    print(
        f"two runs started together: exit codes {[code for code, _ in outcomes]}, "
        f"{len(lines)} lines for {expected} predictions"
    )
    assert len(lines) == len(set(pairs)) == expected
    assert sorted(code for code, _ in outcomes) in ([0, 0], [0, 1])
    for code, stderr in outcomes:
        if code == 1:
            assert "is in use by another iclkit run" in stderr and "Traceback" not in stderr


def test_the_report_counts_each_cell_and_query_once(tmp_path, config_dict):
    out = tmp_path / "out"
    records = planned_run(out, small(config_dict))
    # What two unlocked runs used to leave: the second half of the predictions written twice,
    # the second time with the other label.
    again = [{**r, "prediction": r["gold"]} for r in records[len(records) // 2 :]]
    with (out / "results.jsonl").open("a") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in again)
    report = render_report(out)
    for row in report.cells:
        assert row["n"] == 4 and row["complete"]
        assert row["accuracy"] == pytest.approx(0.5)  # the first record of each pair counts
    assert f"{len(records)} predictions in" in (out / "summary.md").read_text()


# -- --overwrite deletes last ---------------------------------------------------------------------


def test_overwrite_deletes_nothing_when_the_template_does_not_fit_the_data(
    tmp_path, config_dict, write_yaml
):
    out = tmp_path / "out"
    planned_run(out, small(config_dict))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    formatter = {"name": "text", "template": "Review: {review}\nSentiment: {output}"}
    bad = small(config_dict, pipeline={"formatter": formatter, "backend": "local"})
    path = write_yaml(tmp_path, bad)
    for extra in (["--dry-run"], ["--overwrite"]):
        result = CliRunner().invoke(main, ["run", str(path), "--out", str(out), *extra])
        assert result.exit_code == 1, result.output
        assert "sentiment_pool.jsonl: data.pool: example 1 (id 'rv000') does not fit" in (
            result.output
        )
        assert "template field {review} is not in the example (it has: input, output, text)" in (
            result.output
        )
        assert result.output.count("Fix: ") == 1
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != LOCK} == before


def test_overwrite_deletes_nothing_when_a_calibrator_cannot_render_its_probes(
    tmp_path, config_dict, write_yaml
):
    out = tmp_path / "out"
    planned_run(out, small(config_dict))
    before = (out / "results.jsonl").read_bytes()
    bad = small(config_dict)
    bad["sweep"]["classifier.calibration"] = ["none", {"name": "contextual", "inputs": []}]
    result = CliRunner().invoke(
        main, ["run", str(write_yaml(tmp_path, bad)), "--out", str(out), "--overwrite"]
    )
    assert result.exit_code == 1 and "list of content-free inputs" in result.output
    assert (out / "results.jsonl").read_bytes() == before


# -- names are names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["<absolute>", "../../escape", "a/b", "x" * 5000, "nul\x00name", ".hidden"]
)
def test_config_name_is_a_folder_name_not_a_path(tmp_path, config_dict, write_yaml, name):
    name = name.replace("<absolute>", str(tmp_path / "absolute-escape"))
    (tmp_path / "work").mkdir()
    path = write_yaml(tmp_path, small(config_dict, name=name))
    result = cli("run", path, "--overwrite", cwd=tmp_path / "work")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    assert "name: the name is the run's folder (runs/<name>)" in result.stderr
    assert len(result.stderr) < 1000  # the 5,000-character name is shown cut short
    assert not (tmp_path / "escape").exists() and not (tmp_path / "absolute-escape").exists()
    assert list((tmp_path / "work").iterdir()) == []


# -- file-system errors are one line ---------------------------------------------------------


def test_file_system_errors_are_one_error_line(tmp_path, config_dict, write_yaml, monkeypatch):
    path = write_yaml(tmp_path, small(config_dict))
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    # --out under a file, and a run folder that is a file (runs/<name> of the config).
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "test").write_text("a file named like the run")
    for args, message in (
        (["--out", str(blocker / "out")], "Not a directory. Fix: a part of the path is a file"),
        ([], "File exists. Fix: a file is in the way of a folder"),
    ):
        result = CliRunner().invoke(main, ["run", str(path), *args])
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error: ") and message in result.output
        assert result.output.count("\n") == 1 and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        (errno.EROFS, "the file system is read-only: choose another folder (--out)"),
        (errno.ENOSPC, "free some disk space and run the same command again"),
        (errno.EACCES, "choose a folder you may write to (--out)"),
    ],
)
def test_read_only_or_full_output_folder_is_one_error_line_and_keeps_the_results(
    tmp_path, config_dict, write_yaml, monkeypatch, code, fix
):
    out = tmp_path / "out"
    records = planned_run(out, small(config_dict))
    path = write_yaml(tmp_path, small(config_dict))

    def refuse(*args, **kwargs):  # the disk refuses every new file (injected: tests run as root)
        raise OSError(code, os.strerror(code), str(out / ".run.json.tmp"))

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: {out / '.run.json.tmp'}: {os.strerror(code)}. Fix: ")
    assert fix in result.output and "Traceback" not in result.output
    assert len(ResultsStore(out).records()) == len(records)


# -- results of the wrong shape ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("[1, 2]", "the value: Input should be a valid dictionary"),
        ('{"cell": 5}', "cell: Input should be a valid string"),
        ('{"cell": "c", "query": "q", "gold": "a", "prediction": "a"}', "params: Field required"),
        (
            '{"cell": "c", "query": "q", "gold": "a", "prediction": "a", "params": {"k": 1}}',
            "params.labels: Field required",
        ),
        ("[" * 100_000 + "]" * 100_000, "JSON nested too deeply to read"),
    ],
)
def test_report_on_results_of_the_wrong_shape_names_the_line(tmp_path, config_dict, line, problem):
    out = tmp_path / "out"
    records = planned_run(out, small(config_dict))
    with (out / "results.jsonl").open("a") as handle:
        handle.write(line + "\n")
    result = CliRunner().invoke(main, ["report", str(out)])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {out / 'results.jsonl'}:{len(records) + 1}: ")
    assert problem in result.output and "Traceback" not in result.output


def test_report_on_files_that_are_not_utf8_or_of_the_wrong_shape(tmp_path, config_dict):
    out = tmp_path / "out"
    records = planned_run(out, small(config_dict))
    with (out / "results.jsonl").open("ab") as handle:
        handle.write(json.dumps(records[0]).replace("rv", "r\u00e9").encode("latin-1") + b"\n")
    result = CliRunner().invoke(main, ["report", str(out)])
    assert result.exit_code == 1
    assert f"results.jsonl:{len(records) + 1}: not UTF-8 text (byte 0xe9" in result.output
    planned_run(out, small(config_dict))
    (out / "run.json").write_text('{"cells": [{"id": "c"}], "labels": "ab"}')
    result = CliRunner().invoke(main, ["report", str(out)])
    assert result.exit_code == 1 and "run.json: not what iclkit writes here" in result.output
    (out / "run.json").write_bytes(b'{"name": "caf\xe9"}')
    result = CliRunner().invoke(main, ["report", str(out)])
    assert result.exit_code == 1
    assert "run.json:1: not UTF-8 text (byte 0xe9 at column 14)" in result.output
