"""Packaging promises: an API-only install needs no torch; one version everywhere."""

import subprocess
import sys
import venv
from pathlib import Path

import pytest

import iclkit

REPO = Path(__file__).resolve().parents[1]


def test_version_from_one_place():
    from importlib.metadata import version

    assert version("iclkit") == iclkit.__version__
    assert (REPO / "iclkit" / "py.typed").exists()


def test_import_and_build_do_not_import_torch():
    code = (
        "import sys, iclkit\n"
        "from click.testing import CliRunner\n"
        "from iclkit.cli import main\n"
        "r = CliRunner().invoke(main, ['build', '--pool', 'examples/data/reviews.jsonl',"
        " '--query', 'q', '--k', '2'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.slow
def test_api_only_install_builds_prompts_without_torch(tmp_path):
    env_dir = tmp_path / "api-only"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(REPO)],
        check=True,
    )
    result = subprocess.run(
        [python, "examples/build_prompt.py"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "Sentiment:" in result.stdout
    no_torch = subprocess.run([python, "-c", "import torch"], capture_output=True)
    assert no_torch.returncode != 0
