"""Run work on a Ray cluster: one Ray task per item, the payload in Ray's object store.

The payload (an experiment plan with its pool and evaluation set, or a fitted pipeline) is
put into the object store once (``ray.put``); each task receives a reference to it, so the
nodes need iclkit installed but no copy of the data files. A task that lands in a worker
process for the first time makes its state there (``setup``: the model is loaded) and keeps
it for the next tasks that process runs. Ray schedules the tasks by the CPUs they reserve
and retries a task whose worker or node died (``max_retries``); results stream back to the
caller as they finish. Needs the ``ray`` extra: ``pip install 'iclkit[ray]'``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from iclkit.errors import ConfigError, WorkerError
from iclkit.experiment.executors import Executor, prepare_worker, worker_state

if TYPE_CHECKING:
    import ray

S = TypeVar("S")
W = TypeVar("W")
T = TypeVar("T")
R = TypeVar("R")


def _ray_task(
    threads: int,
    payload: list[ray.ObjectRef[Any]],
    setup: Callable[[Any], Any],
    task: Callable[[Any, Any], Any],
    item: Any,
) -> Any:
    """Run ``task`` on ``item`` with this Ray worker's state for the payload.

    ``payload`` is the object reference in a list, so that Ray passes the reference and the
    payload is fetched and deserialised only the first time this worker process sees it.
    """
    import ray

    def load() -> Any:
        prepare_worker(threads)
        return ray.get(reference)

    reference = payload[0]
    return task(worker_state(reference.hex(), setup, load), item)


class RayExecutor(Executor):
    """Tasks on a Ray cluster, each reserving ``threads`` CPUs (and using as many threads).

    ``address`` is the cluster to join (``"198.51.100.7:6379"``, ``"auto"``, ``"ray://..."``);
    ``None`` joins the cluster named by ``RAY_ADDRESS``, or starts a Ray instance on this
    machine for the run. A task is retried up to ``max_retries`` times when its worker
    process or node dies; an exception raised by iclkit itself is not retried.

    Raises:
        ConfigError: from the constructor if ``threads`` is below 1 or ``max_retries``
            below 0.
    """

    def __init__(
        self, address: str | None = None, *, threads: int = 1, max_retries: int = 3
    ) -> None:
        if threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        if max_retries < 0:
            raise ConfigError(f"max_retries must be 0 or more, got {max_retries}")
        self.address = address
        self.threads = threads
        self.max_retries = max_retries

    def __repr__(self) -> str:
        return (
            f"RayExecutor(address={self.address!r}, threads={self.threads}, "
            f"max_retries={self.max_retries})"
        )

    def map(
        self,
        setup: Callable[[S], W],
        shared: S,
        task: Callable[[W, T], R],
        items: Sequence[T],
        *,
        secrets: bool = False,
    ) -> Iterator[tuple[int, R]]:
        """Run ``task`` over ``items`` as Ray tasks (see :meth:`Executor.map`).

        Connects to the cluster (or starts a local instance) for the duration of the call;
        a local instance is shut down after it. Cancelled tasks are stopped at once
        (``ray.cancel(force=True)``).

        Raises:
            ConfigError: if ``ray`` is not installed, no cluster answers at ``address``, or
                ``secrets`` is set (the object store may spill the payload to disk: give API
                keys to the nodes' environment, e.g. ``OPENAI_API_KEY``, instead of the
                config).
            WorkerError: if a task's worker or node died more often than ``max_retries``.
            Exception: the first exception a task raised, as iclkit raised it.
        """
        if secrets:
            raise ConfigError(
                "the Ray executor does not send secret options (api_key, ...) through Ray's "
                "object store, which may spill to disk. Fix: remove them from the config and "
                "set the key in the environment of the cluster's nodes (e.g. OPENAI_API_KEY)"
            )
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "the Ray executor needs the 'ray' package. Fix: pip install 'iclkit[ray]'"
            ) from None
        if not items:
            return
        started = not ray.is_initialized()
        if started:
            try:
                ray.init(address=self.address, include_dashboard=False)
            except ConnectionError as error:
                raise ConfigError(
                    f"no Ray cluster answers at {self.address} ({error}). Fix: start one "
                    "(`ray start --head` on its first machine) or correct the address"
                ) from None
        pending: dict[ray.ObjectRef[Any], int] = {}
        try:
            payload = [ray.put(shared)]
            remote = ray.remote(_ray_task).options(
                num_cpus=self.threads, max_retries=self.max_retries
            )
            for index, item in enumerate(items):
                pending[remote.remote(self.threads, payload, setup, task, item)] = index
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for reference in ready:
                    index = pending.pop(reference)
                    try:
                        result = ray.get(reference)
                    except ray.exceptions.RayTaskError as error:
                        if isinstance(error.cause, Exception):
                            raise error.cause from error
                        raise
                    except ray.exceptions.RayError as error:
                        raise WorkerError(
                            f"a Ray task failed {self.max_retries + 1} times: "
                            f"{type(error).__name__}: {str(error).splitlines()[0]}. What finished "
                            "is kept; re-run to continue"
                        ) from error
                    yield index, result
        finally:
            for reference in pending:
                ray.cancel(reference, force=True)
            if started:
                ray.shutdown()
