"""softmax-knn: attention is a Gaussian-kernel smoother with the 1-NN and mean limits."""

import json

import pytest

pytest.importorskip("torch")

from click.testing import CliRunner

from iclkit.cli import main


def test_cli_writes_json_and_png_and_figures_hold(tmp_path):
    result = CliRunner().invoke(main, ["mech", "softmax-knn", "--fast", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "paper" in result.output and "1-NN agreement" in result.output
    report = json.loads((tmp_path / "softmax-knn.json").read_text())
    assert (tmp_path / "softmax-knn.png").read_bytes()[:4] == b"\x89PNG"
    figures = {f["name"]: f for f in report["figures"]}
    assert all(f["passed"] is not False for f in figures.values())
    assert figures["bound violations (N−1)e^(−cΔ)max|y−y*|"]["measured"] == 0
    assert figures["max |attention − Gaussian smoother|"]["measured"] <= 1e-9
    assert figures["1-NN agreement at c=1e4"]["measured"] >= 0.99
    assert figures["dot-product limit agreement with 1-NN"]["measured"] < 0.9
    agreement = report["series"]["agreement_1nn"]
    assert agreement[0] < 0.1 < 0.99 <= agreement[-1]


def test_cli_json_output(tmp_path):
    result = CliRunner().invoke(
        main, ["mech", "softmax-knn", "--fast", "--json", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["check"] == "softmax-knn"
