"""icl-vs-ft: ZSL / ICL / FT on SST-2 with Gemma 3 270M (Dai et al. 2023), fast variant."""

import pytest

torch = pytest.importorskip("torch")

from iclkit.errors import DataError  # noqa: E402
from iclkit.mech.checks import run_check  # noqa: E402
from iclkit.mech.icl_vs_ft import FAST, read_sst2  # noqa: E402


def test_read_sst2_reports_a_bad_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("1 a fine film\nx broken line\n")
    with pytest.raises(DataError, match=r"bad.txt:2: .*'label'"):
        read_sst2(path)


@pytest.mark.slow
def test_icl_vs_ft_fast_variant(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("ICLKIT_SHARED_DATA", str(shared_data))
    torch.set_num_threads(1)
    report = run_check("icl-vs-ft", fast=True, out_dir=tmp_path)
    assert (tmp_path / "icl-vs-ft.png").stat().st_size > 0
    # the FT learning rate is one of the grid's, picked on held-out dev examples
    lr = report.figure("FT learning rate")
    assert lr.passed and lr.measured in FAST.lrs
    assert report.series["lr search"][0]["lr"] == sorted(FAST.lrs)
    assert len(report.series["per set"]) == FAST.n_sets == 1
    # at that rate FT really moves the model: it changes predictions and helps some queries
    assert report.figure("FT changed predictions (share)").measured > 0
    assert report.figure("FT-helped queries").measured >= 1
    assert 0.0 <= report.figure("Rec2FTP (share)").measured <= 1.0
    for key in ("ZSL", "ICL", "FT"):
        assert 0.0 <= report.figure(f"accuracy {key}").measured <= 1.0
    assert len(report.series["SimAOU"]) == 18
    # the ICL and FT updates point the same way far more than a random update does
    simaou = report.figure("SimAOU (mean over layers)").measured
    random = report.figure("SimAOU random (mean over layers)").measured
    assert simaou > abs(random) + 0.1
    # the post-softmax SimAM variant is reported beside the pre-softmax one
    for when in ("before", "after"):
        post = report.figure(f"SimAM {when} (post-softmax) (mean over layers)").measured
        assert -1.0 <= post <= 1.0
        assert len(report.series[f"SimAM {when} (post-softmax)"]) == 18
