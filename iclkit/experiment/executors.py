"""Executors: what turns pending work into results, in this process or in worker processes.

An executor runs one ``task`` over many ``items`` in workers that each hold one state made
by ``setup`` from a ``shared`` payload (an experiment :class:`~iclkit.experiment.runner.Plan`
→ a :class:`~iclkit.experiment.runner.UnitRunner` with its loaded model; a fitted pipeline →
a classifier). Each worker makes its state once, on its first item, and keeps it for the
rest, so a model is loaded once per worker. Results come back to the caller as they finish;
the caller alone writes them anywhere.

- :func:`~iclkit.experiment.runner.run_units`: the single-process executor of a grid.
- :class:`ProcessExecutor`: N worker processes on this machine (``iclkit run --jobs N``),
  on `loky <https://github.com/joblib/loky>`_'s process pool.
- :class:`~iclkit.experiment.ray_executor.RayExecutor`: Ray tasks on a Ray cluster
  (``iclkit run --executor ray``).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Container, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from iclkit.errors import ConfigError, WorkerError

if TYPE_CHECKING:
    from iclkit.experiment.runner import Plan, UnitRunner, WorkUnit

S = TypeVar("S")
W = TypeVar("W")
T = TypeVar("T")
R = TypeVar("R")

#: Bytes a worker's memory may grow after its first task before loky restarts it: no limit.
NO_LEAK_LIMIT = 10**15
#: A worker process's state (what ``setup`` made) and the payload key it was made from.
_WORKER: dict[str, Any] = {}
#: The payload a :class:`ProcessExecutor` worker received when it started.
_PAYLOAD: dict[str, Any] = {}


def limit_threads(threads: int) -> None:
    """Let the numeric libraries of this process use ``threads`` threads.

    Sets ``OMP_NUM_THREADS`` (read by OpenMP libraries when they load) and, when torch is
    installed, ``torch.set_num_threads``.
    """
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(threads)


def prepare_worker(threads: int) -> None:
    """Set up a worker process before it loads anything: threads, and no progress bars.

    The caller shows the one progress bar of the whole job; workers show none (model loading
    bars included) and their tqdm uses a thread lock, so that a worker killed on Ctrl-C
    leaves no multiprocessing semaphore behind.
    """
    from tqdm import tqdm

    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    tqdm.set_lock(threading.RLock())
    limit_threads(threads)


def worker_state(key: str, setup: Callable[[S], W], payload: Callable[[], S]) -> W:
    """The state of this worker process for ``key``: ``setup(payload())``, made once.

    A new ``key`` (another run's payload) replaces the state kept before, freeing its model.
    """
    if _WORKER.get("key") != key:
        _WORKER.clear()
        _WORKER["state"] = setup(payload())
        _WORKER["key"] = key
    state: W = _WORKER["state"]
    return state


def run_unit(
    runner: UnitRunner, item: tuple[WorkUnit, frozenset[tuple[str, str]]]
) -> list[dict[str, Any]]:
    """The records of one work unit (``item``: the unit and its pairs already done)."""
    unit, done = item
    return runner.run(unit, done)


class Executor(ABC):
    """Runs a task over many items in workers that each keep a state between items.

    Subclasses implement :meth:`map`; calling an executor runs an experiment's work units
    (the signature of :func:`~iclkit.experiment.runner.run_units`, so any executor can be
    given to :func:`~iclkit.experiment.runner.run_plan`).
    """

    @abstractmethod
    def map(
        self,
        setup: Callable[[S], W],
        shared: S,
        task: Callable[[W, T], R],
        items: Sequence[T],
        *,
        secrets: bool = False,
    ) -> Iterator[tuple[int, R]]:
        """Yield ``(i, task(state, items[i]))`` for every item, in the order they finish.

        Each worker computes ``state = setup(shared)`` once and uses it for every item it
        runs. ``secrets`` says whether ``shared`` holds secret options (an ``api_key``);
        executors that would store the payload outside process memory refuse it.
        ``setup`` and ``task`` must be importable functions or classes (workers import them
        by name). Stopping the iteration (Ctrl-C, an error, ``close()``) cancels what has
        not finished.

        Raises:
            ConfigError: if ``secrets`` is set and the executor cannot keep them in memory.
            WorkerError: if a worker died (killed, out of memory) and its item was not run.
            Exception: the first exception a task raised, as it was raised.
        """

    def __call__(
        self, plan: Plan, units: Sequence[WorkUnit], done: Container[tuple[str, str]]
    ) -> Iterator[tuple[WorkUnit, list[dict[str, Any]]]]:
        """Run ``units`` of ``plan`` in the workers, yielding each with its new records.

        Each worker keeps one :class:`~iclkit.experiment.runner.UnitRunner` (one loaded model
        per backend spec) for all the units it runs; pairs in ``done`` are not predicted.

        Raises:
            ConfigError: if the executor cannot take the plan's secret options.
            BackendError: if a model backend fails.
        """
        from iclkit.experiment.runner import UnitRunner

        items = [(unit, frozenset(p for p in unit.pairs() if p in done)) for unit in units]
        secrets = any(cell.has_secrets for cell in plan.cells)
        for index, records in self.map(UnitRunner, plan, run_unit, items, secrets=secrets):
            yield units[index], records


def _start_process(payload: Any, threads: int) -> None:
    """Initialise a worker process: Ctrl-C is the driver's to handle; ``threads`` threads."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    prepare_worker(threads)
    _PAYLOAD["process"] = payload


def _process_task(setup: Callable[[Any], Any], task: Callable[[Any, Any], Any], item: Any) -> Any:
    """Run ``task`` on ``item`` with this worker process's state (made on its first item)."""
    state = worker_state("process", setup, lambda: _PAYLOAD["process"])
    return task(state, item)


class ProcessExecutor(Executor):
    """``jobs`` worker processes on this machine, each with ``threads`` torch threads.

    ``threads=None`` shares the CPUs this process may use among the workers (at least one
    thread each), so that jobs × threads ≤ cores. The payload is sent to each worker once,
    when it starts. A worker that dies (killed, out of memory) stops the job with a
    :class:`~iclkit.errors.WorkerError`; re-running a grid continues it. Built on loky's
    process pool (spawned workers, which it kills on Ctrl-C).

    Raises:
        ConfigError: from the constructor if ``jobs`` or ``threads`` is below 1.
    """

    def __init__(self, jobs: int, threads: int | None = None) -> None:
        if jobs < 1:
            raise ConfigError(f"jobs must be at least 1, got {jobs}")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        self.jobs = jobs
        self.threads = threads

    def __repr__(self) -> str:
        return f"ProcessExecutor(jobs={self.jobs}, threads={self.threads})"

    def threads_per_worker(self) -> int:
        """Torch threads per worker: ``threads``, or the usable CPUs divided among the jobs."""
        from loky import cpu_count

        return self.threads or max(1, cpu_count() // self.jobs)

    def map(
        self,
        setup: Callable[[S], W],
        shared: S,
        task: Callable[[W, T], R],
        items: Sequence[T],
        *,
        secrets: bool = False,
    ) -> Iterator[tuple[int, R]]:
        """Run ``task`` over ``items`` in at most ``jobs`` worker processes (see the base class).

        Secret options are fine here: the payload reaches the workers through pipes only.
        """
        if not items:
            return
        from concurrent.futures import as_completed

        from loky import ProcessPoolExecutor
        from loky.process_executor import TerminatedWorkerError

        threads = self.threads_per_worker()
        pool = ProcessPoolExecutor(
            max_workers=min(self.jobs, len(items)),
            initializer=_start_process,
            initargs=(shared, threads),
            env={
                "OMP_NUM_THREADS": str(threads),
                "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                # loky restarts a worker whose memory grew 300 MB after its first task, taking
                # it for a leak; a worker's model caches and fitted selectors grow by more, and
                # a restart would load the model again.
                "LOKY_MAX_MEMORY_LEAK_SIZE": str(NO_LEAK_LIMIT),
            },
        )
        finished = False
        try:
            futures = {
                pool.submit(_process_task, setup, task, item): index
                for index, item in enumerate(items)
            }
            for future in as_completed(futures):
                try:
                    result = future.result()
                except TerminatedWorkerError as error:
                    raise WorkerError(
                        "a worker process died (killed, out of memory or crashed). What "
                        "finished is kept; re-run to continue (with fewer jobs if memory ran out)"
                    ) from error
                yield futures[future], result
            finished = True
        finally:
            pool.shutdown(wait=True, kill_workers=not finished)
