"""function-class: a tiny transformer learns linear regression in context (Garg et al.)."""

import math

import pytest

torch = pytest.importorskip("torch")

from iclkit.mech import function_class  # noqa: E402
from iclkit.mech.checks import run_check  # noqa: E402


def test_baselines_on_noiseless_data_are_exact_where_they_should_be():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 11, 5, generator=generator)
    w = torch.randn(200, 5, generator=generator)
    y = torch.einsum("tnd,td->tn", x, w)
    predictions = function_class.baseline_predictions(x, y)
    # least squares recovers w exactly once it has d examples
    assert float((predictions["least squares"][:, 5:] - y[:, 5:]).abs().max()) < 1e-3
    assert float((predictions["3-NN"][:, 5:] - y[:, 5:]).abs().mean()) > 0.5


def test_tokens_interleave_x_and_y():
    x = torch.arange(6.0).view(1, 2, 3)
    y = torch.tensor([[10.0, 20.0]])
    tokens = function_class.interleave(x, y)
    assert tokens.tolist() == [[[0, 1, 2, 0], [0, 0, 0, 10], [3, 4, 5, 0], [0, 0, 0, 20]]]


@pytest.mark.slow
def test_function_class_fast_variant(tmp_path):
    torch.set_num_threads(1)
    report = run_check("function-class", fast=True, out_dir=tmp_path)
    assert (tmp_path / "function-class.png").stat().st_size > 0
    assert report.figure("parameters").measured == pytest.approx(2e5, rel=0.1)
    errors = {
        name: report.figure(f"error at k=10: {name}").measured
        for name in ("transformer", "least squares", "3-NN", "averaging")
    }
    # the goal: within 2x of least squares at k >= 2d
    ratio = report.figure("transformer / least squares error at k ≥ 2d").measured
    assert ratio <= 2.0
    assert errors["transformer"] <= 2.0 * errors["least squares"]
    assert errors["transformer"] < min(errors["3-NN"], errors["averaging"]) / 2
    assert errors["transformer"] < report.figure("error at k=0: transformer").measured / 3


def test_position_loss_weighs_each_position_by_its_relative_error():
    y = torch.zeros(2, 3)
    predictions = torch.tensor([[1.0, 0.1, 1e-3]]).expand(2, 3)
    loss = function_class.position_loss(predictions, y)
    assert float(loss) == pytest.approx((math.log(1.0) + math.log(1e-2) + math.log(1e-6)) / 3)
