"""Executors with real workers: `--jobs N` processes, a local Ray instance, a two-node Ray cluster.

Every run is compared with the session's single-process run of the same grid (``shared_run``):
the same (cell, query) records, each exactly equal but for the label scores, which may differ
by float32 rounding (the model's prefix cache depends on which units a worker ran before).
Each test stops every process it starts: worker processes, Ray nodes, network namespaces.
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import pytest
from click.testing import CliRunner

from iclkit import ICLClassifier
from iclkit.cli import main
from iclkit.errors import ConfigError, WorkerError
from iclkit.experiment import plan_experiment, run_experiment, validate_config
from iclkit.experiment.executors import ProcessExecutor
from iclkit.experiment.ray_executor import RayExecutor

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
POOL = ROOT / "examples" / "data" / "sentiment_pool.jsonl"
EVAL = ROOT / "examples" / "data" / "sentiment_eval.jsonl"
#: Generous: on a 2-core machine shared with other jobs, starting workers can take minutes.
PATIENCE = 900
#: The float32 noise allowed between log-probabilities of the same prompt.
NOISE = 1e-4


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


def _assert_same_records(found: list[dict], expected: list[dict]) -> None:
    """No record lost or duplicated; each equal to the reference but for float noise."""
    keys = [(r["cell"], r["query"]) for r in found]
    assert len(keys) == len(set(keys)), "duplicated records"
    reference = {(r["cell"], r["query"]): r for r in expected}
    assert set(keys) == set(reference), "lost or foreign records"
    for record in found:
        other = reference[(record["cell"], record["query"])]
        exact = {k: v for k, v in record.items() if k not in ("scores", "probabilities")}
        assert exact == {k: v for k, v in other.items() if k not in ("scores", "probabilities")}
        for label, score in record["scores"].items():
            assert score == pytest.approx(other["scores"][label], abs=NOISE)


def _lines(out: Path) -> int:
    results = out / "results.jsonl"
    return results.read_text().count("\n") if results.exists() else 0


def _wait(condition, what: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if process.poll() is not None:
            raise AssertionError(
                f"exited with {process.returncode} before {what}:\n{log.read_text()}"
            )
        assert time.monotonic() < deadline, f"no {what} in {PATIENCE} s"
        time.sleep(0.05)


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant it has (a Ray node: raylet, workers, ...)."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    family = [root, *root.children(recursive=True)]
    for process in family:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=30)


def _process_group(pgid: int) -> list[psutil.Process]:
    """The live processes of process group ``pgid``."""
    found = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid:
                found.append(process)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return found


def _default_sigint() -> None:
    # Ctrl-C must reach the child even when the tests run as a background job, whose
    # children inherit an ignored SIGINT (then Python installs no handler).
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def _started(command: list[str], log: Path, **env: str) -> Iterator[subprocess.Popen]:
    """``command`` in a new session (its own process group), killed with its tree at the end."""
    with log.open("a") as output:
        process = subprocess.Popen(
            command,
            env={**os.environ, "OMP_NUM_THREADS": "1", **env},
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_sigint,
        )
    try:
        yield process
    finally:
        _kill_tree(process.pid)
        process.wait(PATIENCE)


def test_executor_options_that_do_not_go_together_are_one_clear_error(tmp_path, write_yaml):
    path = write_yaml(tmp_path, {"name": "x"})
    runner = CliRunner()
    result = runner.invoke(main, ["run", str(path), "--executor", "ray", "--jobs", "2"])
    assert result.exit_code == 1
    assert "--jobs is the number of local processes" in result.output
    result = runner.invoke(main, ["run", str(path), "--address", "10.0.0.1:6379"])
    assert "--address is a Ray cluster's address. Fix: add --executor ray" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(ConfigError, match="jobs must be at least 1"):
        ProcessExecutor(0)


def test_the_ray_executor_keeps_secret_options_out_of_the_object_store(config_dict):
    raw = config_dict()
    raw["pipeline"]["backend"] = {
        "name": "openai",
        "model": "m",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key": "sk-PLANTED-2",
    }
    plan = plan_experiment(validate_config(raw))
    with pytest.raises(ConfigError, match="does not send secret options") as error:
        list(RayExecutor()(plan, plan.units, set()))
    assert "sk-PLANTED-2" not in str(error.value)


def test_worker_processes_keep_their_state_and_hand_back_the_first_error():
    executor = ProcessExecutor(2, threads=1)
    # Each worker makes its state (int("7")) once and uses it for every item it runs.
    results = dict(executor.map(int, "7", pow, list(range(10))))
    assert results == {i: 7**i for i in range(10)}
    with pytest.raises(TypeError, match="unsupported operand"):
        list(executor.map(int, "7", pow, [2, "x", 3]))
    # (The resource trackers of multiprocessing and loky live as long as this process.)
    workers = [
        child
        for child in psutil.Process().children(recursive=True)
        if "resource_tracker" not in " ".join(child.cmdline())
    ]
    assert not workers, "workers left behind"


def _grow(state, item):
    if item == 1:
        state.append(b"x" * 400_000_000)  # a model's caches growing after the first task
    time.sleep(1.2)  # past loky's one-second memory check
    return os.getpid()


def test_a_worker_whose_memory_grows_is_kept_with_its_state():
    found = dict(ProcessExecutor(1, threads=1).map(list, (), _grow, [0, 1, 2, 3]))
    assert len(set(found.values())) == 1, "the worker was restarted (its model reloaded)"


def test_a_worker_that_dies_is_one_clear_error():
    with pytest.raises(WorkerError, match="a worker process died"):
        list(ProcessExecutor(1, threads=1).map(int, "0", lambda state, item: os._exit(3), [1]))


@pytest.mark.slow
def test_jobs_2_interrupted_and_resumed_gives_the_single_process_records(
    shared_run, tmp_path, write_yaml
):
    path = write_yaml(tmp_path, shared_run.raw)
    out, log = tmp_path / "out", tmp_path / "log.txt"
    command = [str(BIN / "iclkit"), "run", str(path), "--out", str(out), "--no-progress"]
    total = len(shared_run.plan.order)

    # Ctrl-C reaches the whole process group, as in a terminal: the driver stops the workers.
    with _started([*command, "--jobs", "2", "--threads", "1"], log) as process:
        _wait(lambda: _lines(out) > 0, "records", process, log)
        workers = _process_group(process.pid)
        assert len(workers) >= 3, "expected the driver and 2 worker processes"
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(PATIENCE) == 1, log.read_text()
        _, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, f"processes left after Ctrl-C: {alive}"
    assert "interrupted; every finished prediction is saved" in log.read_text()
    stopped_at = _lines(out)
    assert 0 < stopped_at < total, "the run finished before it could be stopped: grow the grid"

    result = CliRunner().invoke(main, [*command[1:], "--jobs", "2", "--threads", "1"])
    assert result.exit_code == 0, result.output
    records = _records(out)
    _assert_same_records(records, _records(shared_run.folder))
    # The same file as the single-process run: records in plan order.
    assert [(r["cell"], r["query"]) for r in records] == list(shared_run.plan.order)


@pytest.fixture
def ray_token(monkeypatch) -> dict[str, str]:
    """Token authentication with a token of the test's own (Ray writes none into ~/.ray)."""
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.mark.slow
def test_a_local_ray_instance_gives_the_single_process_records(
    shared_run, tmp_path, single_thread, ray_token
):
    import ray

    texts = [json.loads(line)["text"] for line in EVAL.read_text().splitlines()][:40]
    classifier = ICLClassifier(
        selector="first",
        k=2,
        formatter={"name": "text", "template": "Review: {text}\nSentiment: {output}"},
    ).fit(*_pool_xy())
    expected = classifier.predict_proba(texts)

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20)
    try:
        executor = RayExecutor(threads=1)
        run_experiment(validate_config(shared_run.raw), tmp_path, progress=False, executor=executor)
        spread = classifier.predict_proba(texts, executor=executor)
        with pytest.raises(TypeError, match="unsupported operand"):
            list(executor.map(int, "7", pow, [2, "x"]))
    finally:
        ray.shutdown()
    _assert_same_records(_records(tmp_path), _records(shared_run.folder))
    np.testing.assert_allclose(spread, expected, atol=NOISE)


def _pool_xy() -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in POOL.read_text().splitlines()][:40]
    return [row["text"] for row in rows], [row["label"] for row in rows]


@pytest.mark.slow
def test_classifier_predict_spread_over_two_processes(single_thread):
    texts = [json.loads(line)["text"] for line in EVAL.read_text().splitlines()][:40]
    classifier = ICLClassifier(
        selector="random",
        k=2,
        seed=3,
        formatter={"name": "text", "template": "Review: {text}\nSentiment: {output}"},
    ).fit(*_pool_xy())
    expected = classifier.predict_detailed(texts)
    spread = classifier.predict_detailed(texts, executor=ProcessExecutor(2, threads=1))
    assert [p.label for p in spread] == [p.label for p in expected]
    assert [p.prompt.text for p in spread] == [p.prompt.text for p in expected]
    for found, wanted in zip(spread, expected, strict=True):
        for label, score in wanted.scores.items():
            assert found.scores[label].logprob == pytest.approx(score.logprob, abs=NOISE)


# -- two Ray nodes on this machine, in a network namespace of the test's own ------------------

#: What ``ray start`` prints when its node is up.
UP = "Ray runtime started."
NODE_IP = "198.18.0.1"  # TEST-NET-2 (RFC 2544): only inside the namespace
PORT = "6379"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextmanager
def _namespace() -> Iterator[str]:
    """A network namespace with one address of its own; Ray binds it, nothing leaves it."""
    name = f"iclkit-test-{os.getpid()}"
    _ip("netns", "add", name)
    try:
        inside = ("netns", "exec", name, "ip")
        _ip(*inside, "link", "set", "lo", "up")
        _ip(*inside, "link", "add", "name", "ve0", "type", "veth", "peer", "name", "ve1")
        _ip(*inside, "link", "set", "ve0", "up")
        _ip(*inside, "link", "set", "ve1", "up")
        _ip(*inside, "addr", "add", f"{NODE_IP}/24", "dev", "ve0")
        _ip(*inside, "route", "add", "default", "dev", "ve0")
        yield name
    finally:
        _ip("netns", "del", name)


def _in(namespace: str, *command: str) -> list[str]:
    return ["ip", "netns", "exec", namespace, *command]


def _running_task(node: subprocess.Popen) -> bool:
    """Whether a worker of this Ray node is running an iclkit task now."""
    try:
        family = psutil.Process(node.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return False
    for process in family:
        try:
            if " ".join(process.cmdline()).startswith("ray::_ray_task"):
                return True
        except psutil.NoSuchProcess:
            continue
    return False


@pytest.mark.slow
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="a network namespace needs root and iproute2",
)
def test_two_ray_nodes_one_killed_mid_run_lose_and_duplicate_nothing(
    shared_run, tmp_path, write_yaml, ray_token
):
    raw = {**shared_run.raw, "run": {"batch_size": 2}}  # 32 units: the kill lands mid-run
    path = write_yaml(tmp_path, raw)
    out, log = tmp_path / "out", tmp_path / "log.txt"
    head_log, worker_log = tmp_path / "head.txt", tmp_path / "worker.txt"
    total = len(shared_run.plan.order)
    # Short: Ray's socket paths must fit in 107 bytes.
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    ray = str(BIN / "ray")
    # The head declares a silent node dead after ~5 s instead of ~30 s.
    fast = {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "5"}
    node = ["--num-cpus", "1", "--block", "--disable-usage-stats"]
    node += ["--object-store-memory", str(100 * 2**20)]
    head = ["start", "--head", "--port", PORT, "--temp-dir", str(temp), "--include-dashboard"]
    head += ["false", *node]
    run = [str(BIN / "iclkit"), "run", str(path), "--out", str(out), "--no-progress"]
    run += ["--executor", "ray", "--address", f"{NODE_IP}:{PORT}"]
    try:
        with (
            _namespace() as namespace,
            _started(_in(namespace, ray, *head), head_log, **fast) as head_node,
        ):
            _wait(lambda: UP in head_log.read_text(), "a head node", head_node, head_log)
            address = ["--address", f"{NODE_IP}:{PORT}"]
            with _started(_in(namespace, ray, "start", *address, *node), worker_log) as w:
                _wait(lambda: UP in worker_log.read_text(), "a worker node", w, worker_log)
                # Ctrl-C: the driver cancels its tasks and leaves; the cluster keeps running.
                with _started(_in(namespace, *run), log) as driver:
                    _wait(lambda: _lines(out) > 0, "records", driver, log)
                    driver.send_signal(signal.SIGINT)
                    assert driver.wait(PATIENCE) == 1, log.read_text()
                assert "interrupted; every finished prediction is saved" in log.read_text()
                stopped_at = _lines(out)
                assert 0 < stopped_at < total

                # Resumed; the worker node dies while it runs a unit: Ray retries it on the head.
                with _started(_in(namespace, *run), log) as driver:
                    _wait(lambda: _lines(out) > stopped_at, "new records", driver, log)
                    _wait(lambda: _running_task(w), "a task on the worker node", driver, log)
                    killed_at = _lines(out)
                    _kill_tree(w.pid)
                    assert driver.wait(PATIENCE) == 0, log.read_text()
                assert killed_at < total, "the run finished before the node died: grow the grid"
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    records = _records(out)
    _assert_same_records(records, _records(shared_run.folder))
    assert [(r["cell"], r["query"]) for r in records] == list(
        plan_experiment(validate_config(raw)).order
    )
