"""lsa-gd: linear self-attention = one GD step (von Oswald et al.; Ahn et al.)."""

import pytest

torch = pytest.importorskip("torch")

from iclkit.mech import lsa_gd  # noqa: E402
from iclkit.mech.checks import run_check  # noqa: E402


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    torch.set_num_threads(1)
    return run_check("lsa-gd", fast=True, out_dir=tmp_path_factory.mktemp("lsa"))


def test_construction_equals_one_gd_step_exactly(report):
    assert report.figure("max |constructed LSA − GD step| (10,000 tasks)").measured <= 1e-5


def test_construction_in_float32_for_a_zero_start():
    generator = torch.Generator().manual_seed(1)
    x, y = lsa_gd.sample_tasks(1000, 10, 10, generator)
    w0 = torch.zeros(1, 10)
    layer = lsa_gd.construct_gd_layer(w0, 6.0)
    with torch.no_grad():
        built = lsa_gd.predict(layer, x, y)
    torch.testing.assert_close(built, lsa_gd.gd_step_prediction(x, y, w0, 6.0))


def test_trained_layer_matches_the_best_gd_step(report):
    assert 5.8 <= report.figure("best GD rate η*").measured <= 6.3
    assert report.figure("trained / GD loss").measured <= 1.02
    assert report.figure("cosine of sensitivities ∂ŷ/∂x_q (mean)").measured >= 0.99
    assert report.figure("cosine(rescaled W_KQ x-block, I)").measured >= 0.99


def test_preconditioned_variant(report):
    assert report.figure("cosine(trained Γ, Γ*) (d=5, Σ non-isotropic)").measured >= 0.95
    assert report.figure("preconditioned: trained loss / best plain GD loss").measured < 1
    assert report.passed
