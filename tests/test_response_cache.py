"""The SQLite response cache shared by several real processes: no write lost, no
``database is locked``, and no advice to delete the cache."""

import subprocess
import sys
import time

import pytest

from iclkit import BackendError
from iclkit.backends.response_cache import ResponseCache

WRITER = """
import sys
from iclkit.backends.response_cache import ResponseCache
path, worker, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cache = ResponseCache(path)
print("ready", flush=True)
sys.stdin.readline()  # start together
for i in range(count):
    request = {"endpoint": "completions", "prompt": f"w{worker}-{i}"}
    cache.put(request, {"choices": [{"text": str(i)}]})
    if i % 7 == 0:
        assert cache.get({"endpoint": "completions", "prompt": f"w{worker}-{i // 2}"})
print("done", flush=True)
"""


def test_response_cache_is_safe_for_several_processes(tmp_path):
    path = tmp_path / "shared.sqlite"
    processes, count = 8, 1000
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(worker), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in range(processes)
    ]
    for worker in workers:
        assert worker.stdout.readline().strip() == "ready"
    start = time.monotonic()
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    results = [(worker.wait(300), worker.stderr.read()) for worker in workers]
    seconds = time.monotonic() - start
    assert all(code == 0 for code, _ in results), [err[-1500:] for _, err in results]
    assert not any("locked" in err for _, err in results)
    cache = ResponseCache(path)
    print(f"{processes} processes x {count} writes: {len(cache)} stored in {seconds:.1f} s")
    assert len(cache) == processes * count
    for worker in range(processes):
        for i in (0, count // 2, count - 1):
            stored = cache.get({"endpoint": "completions", "prompt": f"w{worker}-{i}"})
            assert stored == {"choices": [{"text": str(i)}]}


def test_response_cache_waits_for_a_lock_held_by_another_process(tmp_path):
    path = tmp_path / "busy.sqlite"
    ResponseCache(path).put({"prompt": "first"}, {"choices": []})
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(1.5)\n"
            "db.execute('COMMIT')\n",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    start = time.monotonic()
    ResponseCache(path).put({"prompt": "second"}, {"choices": [1]})
    assert time.monotonic() - start >= 1.0  # it waited for the lock instead of failing
    assert holder.wait(30) == 0
    assert ResponseCache(path).get({"prompt": "second"}) == {"choices": [1]}


def test_response_cache_errors_never_advise_deleting_it(tmp_path):
    path = tmp_path / "not-a-database.sqlite"
    path.write_bytes(b"this is not an SQLite file" * 100)
    with pytest.raises(BackendError) as info:
        ResponseCache(path).get({"prompt": "x"})
    message = str(info.value)
    assert "cannot use the response cache" in message and "cache_path" in message
    assert "delete" not in message.lower()
    assert path.read_bytes().startswith(b"this is not")
