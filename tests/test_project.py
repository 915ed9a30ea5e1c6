"""The project's own promises: README set-up commands, CI script, runnable examples."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def readme_commands():
    return re.findall(
        r"```bash\n(bash \.ci/setup(?: --quickstart)? && .+?)\n```",
        (REPO / "README.md").read_text(),
    )


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = readme_commands()
    assert len(commands) == 2
    main_job, test_command = commands
    assert "iclkit" in main_job and "pytest" in test_command
    ci = (REPO / ".ci" / "run").read_text()
    assert "bash .ci/setup" in ci
    assert test_command.split("&& ", 1)[1] in ci


@pytest.mark.slow
def test_readme_application_example_runs():
    text = (REPO / "README.md").read_text()
    section = text.split("## Use it in an application", 1)[1]
    code = re.search(r"```python\n(.+?)\n```", section, re.DOTALL).group(1)
    assert len(code.splitlines()) <= 10
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=900
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.strip().splitlines()
    assert first == "['negative']"
    assert second.startswith("positive {")


@pytest.mark.slow
def test_examples_run():
    env = {**os.environ, "ICLKIT_EXAMPLES_FAST": "1", "HF_HUB_OFFLINE": "1"}
    for script in sorted((REPO / "examples").glob("*.py")):
        result = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=900,
            env=env,
        )
        assert result.returncode == 0, f"{script.name}:\n{result.stderr}"
        assert result.stdout.strip(), f"{script.name} printed nothing"
