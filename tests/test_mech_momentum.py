"""momentum-attention: identities hold; the comparison is reported as measured."""

import math

import pytest

torch = pytest.importorskip("torch")

from iclkit.mech.checks import run_check  # noqa: E402
from iclkit.mech.momentum import ema_recursion  # noqa: E402
from iclkit.mech.toy import momentum_weights  # noqa: E402


def test_ema_recursion_matches_the_closed_form():
    values = torch.randn(3, 9, 4, dtype=torch.float64)
    closed = torch.einsum("qk,bkd->bqd", momentum_weights(9, 0.7, values), values)
    torch.testing.assert_close(ema_recursion(values, 0.7), closed)


@pytest.mark.slow
def test_momentum_check(tmp_path):
    torch.set_num_threads(1)
    report = run_check("momentum-attention", fast=True, out_dir=tmp_path)
    assert (tmp_path / "momentum-attention.png").stat().st_size > 0
    assert report.figure("max |MoAttn(η=0) − Attn| (model output)").measured == 0.0
    assert report.figure("max |momentum term − EMA recursion|").measured <= 1e-5
    for eta in (0.0, 0.5):
        loss = report.figure(f"2-layer η={eta}: second-half loss").measured
        assert 0 < loss < math.log(32)  # trained below the uniform guess
    assert report.passed
