"""The documentation runs: every Python block in the docs and README, and the CLI output shown.

The Python blocks of a page run in order in one fresh interpreter (a block may use what an
earlier block of the same page defined), from the repository root. A block that cannot run
as it stands (it needs an API key, a running server of yours, your own files, or minutes of
model time that another test already spends) is preceded by a line
``<!-- docs-test: skip REASON -->``.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md")])
BLOCK = re.compile(
    r"(?:<!-- docs-test: skip(?P<reason>[^>]*)-->\n)?```python\n(?P<code>.*?)```", re.S
)
#: Pages whose blocks load a model or start a server (seconds to a minute each).
SLOW = {
    "mechanisms.md",
    "backends.md",
    "similarity.md",
    "application.md",
    "calibration.md",
    "README.md",
}


def _blocks(page: Path) -> list[tuple[str | None, str]]:
    return [(match["reason"], match["code"]) for match in BLOCK.finditer(page.read_text())]


def _param(page: Path):
    marks = [pytest.mark.slow] if page.name in SLOW else []
    return pytest.param(page, id=str(page.relative_to(REPO)), marks=marks)


PAGES_WITH_CODE = [page for page in PAGES if _blocks(page)]
#: Pages with a block that runs (a page whose every block is marked to skip has none).
PAGES_TO_RUN = [page for page in PAGES_WITH_CODE if any(r is None for r, _ in _blocks(page))]


def test_every_skipped_block_says_why():
    for page in PAGES_WITH_CODE:
        for reason, code in _blocks(page):
            if reason is not None:
                assert len(reason.strip()) > 10, f"{page.name}: a skip without a reason:\n{code}"


@pytest.mark.parametrize("page", [_param(page) for page in PAGES_TO_RUN])
def test_python_blocks_run(page, tmp_path):
    code = "\n\n".join(code for reason, code in _blocks(page) if reason is None)
    script = tmp_path / "page.py"
    script.write_text(code)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert result.returncode == 0, f"{page.name}:\n{code}\n--- stderr ---\n{result.stderr}"


def test_getting_started_shows_what_the_command_prints():
    page = (REPO / "docs" / "getting-started.md").read_text()
    command = re.search(
        r"```bash\n\.venv/bin/(iclkit build .*?)\n```\n\n```text\n(.*?)```", page, re.S
    )
    assert command is not None
    from click.testing import CliRunner

    from iclkit.cli import main

    args = shlex.split(command.group(1).replace("\\\n", " "))[1:]  # as the shell splits it
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output == command.group(2)


@pytest.mark.parametrize("command", ["run", "report", "build", "mech"])
def test_help_has_no_literal_escape(command):
    from click.testing import CliRunner

    from iclkit.cli import main

    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "\\b" not in result.output and "\b" not in result.output
