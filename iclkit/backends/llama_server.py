"""Run a local llama.cpp server (``llama-cpp-python[server]``) for the ``openai`` backend.

``LlamaServer`` starts ``python -m llama_cpp.server`` on 127.0.0.1 with the bundled Gemma GGUF
(or any GGUF file), waits until it accepts connections and stops it on exit::

    with LlamaServer() as url:
        backend = OpenAIBackend(model="gemma-3-270m", base_url=url)

``--logits_all true`` is on so that completions can echo prompt log-probabilities. On Linux
the server is tied to the process that started it (``PR_SET_PDEATHSIG``): if that process
dies, even by ``SIGKILL``, the server gets ``SIGTERM`` and no orphan keeps its port and memory.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from iclkit.bundled_models import BUNDLED_LM, bundled_gguf_path
from iclkit.errors import BackendError

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with(parent: int) -> None:
    """In the child before exec: get SIGTERM when ``parent`` dies (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """A llama.cpp server process serving one GGUF model under the name ``alias``.

    Args:
        model: a ``.gguf`` file; ``None`` for the bundled Gemma 3 270M.
        alias: the model name clients ask for.
        port: the port; a free one by default.
        n_ctx: the context size in tokens.
        startup_timeout: seconds to wait for the server to accept connections.

    On Linux the server gets ``SIGTERM`` when the thread that started it ends (its process
    killed included), so start it from a thread that lives as long as the server is needed
    (the main thread, usually).

    Raises:
        BackendError: (from :meth:`start`) if the server exits or does not start in time;
            the message holds the end of its log.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        alias: str = BUNDLED_LM,
        port: int | None = None,
        n_ctx: int = 2048,
        startup_timeout: float = 180.0,
    ) -> None:
        self.model = model
        self.alias = alias
        self.port = port
        self.n_ctx = n_ctx
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start the server and return its API root (``http://127.0.0.1:PORT/v1``).

        Raises:
            BackendError: if the server exits or does not accept connections in time.
            ConfigError: if the bundled model is asked for but not installed.
        """
        port = self.port or free_port()
        model = Path(self.model) if self.model is not None else bundled_gguf_path()
        self._log = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(model),
            "--model_alias", self.alias, "--host", "127.0.0.1", "--port", str(port),
            "--logits_all", "true", "--n_ctx", str(self.n_ctx),
        ]  # fmt: skip
        parent = os.getpid()
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=lambda: _die_with(parent),
            )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return f"http://127.0.0.1:{port}/v1"
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    tail = self._log.read_text(errors="replace")[-2000:]
                    raise BackendError(
                        f"the llama.cpp server for {model} did not start on port {port}. Fix: "
                        f"pip install 'iclkit[server]'. Its log ends:\n{tail}"
                    ) from None
                time.sleep(0.5)

    def stop(self) -> None:
        """Stop the server (no-op if it is not running)."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
