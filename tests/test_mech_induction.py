"""induction: Gemma 3 270M has induction heads; a toy 2-layer model shows the phase change."""

import pytest

torch = pytest.importorskip("torch")

from iclkit.mech.checks import run_check  # noqa: E402
from iclkit.mech.induction import prefix_matching_scores, repeated_tokens  # noqa: E402


def test_repeated_tokens_end_with_a_repeat_at_varying_offsets():
    tokens, start, length = repeated_tokens(50, 32, (8, 16), (0, 32), torch.Generator())
    assert tokens.shape == (50, 32)
    assert len(set(start.tolist())) > 1
    for row, s, n in zip(tokens, start.tolist(), length.tolist(), strict=True):
        assert s + 2 * n == 32
        assert torch.equal(row[s : s + n], row[s + n :])


def test_prefix_matching_score_of_an_ideal_induction_head_is_one():
    _, start, length = repeated_tokens(4, 20, (5, 8), (0, 9), torch.Generator())
    pattern = torch.zeros(4, 2, 20, 20)
    for b in range(4):
        for q in range(20):
            pattern[b, 1, q, max(q - int(length[b]) + 1, 0)] = 1.0
    scores = prefix_matching_scores(pattern, start, length)
    assert scores.tolist() == [0.0, 1.0]


@pytest.mark.slow
def test_induction_check_figures(tmp_path):
    torch.set_num_threads(1)
    report = run_check("induction", fast=True, out_dir=tmp_path)
    assert (tmp_path / "induction.png").stat().st_size > 0
    assert (tmp_path / "induction.json").stat().st_size > 0
    scores = torch.tensor(report.series["gemma_scores"])
    assert scores.shape == (18, 4)
    assert report.figure("Gemma: best head prefix-matching score").measured >= 0.3
    gemma_first = report.figure("Gemma: loss first half").measured
    assert report.figure("Gemma: loss second half").measured < gemma_first / 2
    assert report.figure("toy 2-layer: prefix-matching score").measured > 0.4
    assert report.figure("toy 2-layer: step of the phase change").measured <= 1200
    assert report.figure("toy 1-layer: prefix-matching score").measured <= 0.4
    two = report.figure("toy 2-layer: second-half loss").measured
    one = report.figure("toy 1-layer: second-half loss").measured
    assert two < 1.73 < one
    assert report.passed
