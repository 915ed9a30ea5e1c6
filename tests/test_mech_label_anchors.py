"""label-anchors: information flow through label words on SST-2 with Gemma (Wang et al. 2023)."""

import json

import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from iclkit.cli import main  # noqa: E402
from iclkit.mech.label_anchors import (  # noqa: E402
    FAST,
    Prompt,
    flows,
    isolation_mask,
    random_positions,
)
from iclkit.mech.report import CheckReport  # noqa: E402


def test_flows_average_the_three_kinds_of_pairs():
    # positions: 0 BOS, 1 text, 2 label word, 3 text, 4 target
    saliency = torch.zeros(6, 6)  # one padding position after the target
    saliency[2, 1] = 6.0  # text -> label word
    saliency[2, 0] = 100.0  # BOS is left out
    saliency[4, 2] = 3.0  # label word -> target
    saliency[3, 1] = 2.0  # other pairs: (3,1) (3,2) (4,1) (4,3)
    saliency[4, 3] = 2.0
    saliency[2, 2] = saliency[5, 4] = 50.0  # self-attention and padding are ignored
    s_wp, s_pq, s_ww = flows(saliency, [2], 4).tolist()
    assert (s_wp, s_pq, s_ww) == (6.0, 3.0, 1.0)


def test_isolation_mask_and_random_positions():
    mask = isolation_mask([[3], [1, 4]], 6)
    assert mask.shape == (2, 1, 6, 6)
    assert mask[0, 0].nonzero().tolist() == [[3, 0], [3, 1], [3, 2]]
    assert mask[1, 0].sum() == 1 + 4
    prompt = Prompt(ids=list(range(30)), label_positions=[8, 17], label=1)
    picks = random_positions(prompt, torch.Generator().manual_seed(0))
    assert len(picks) == 2 and not set(picks) & {0, 8, 17, 28, 29}


@pytest.mark.slow
def test_label_anchors_fast_variant(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("ICLKIT_SHARED_DATA", str(shared_data))
    torch.set_num_threads(1)
    args = ["mech", "label-anchors", "--fast", "--json", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = CheckReport.model_validate_json(result.stdout)
    assert report.fast and report.check == "label-anchors"
    assert (tmp_path / "label-anchors.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "label-anchors.json").read_text())
    shares = saved["series"]["shares"]
    assert len(shares["S_wp"]) == 18
    for layer in range(18):
        assert sum(shares[name][layer] for name in ("S_wp", "S_pq", "S_ww")) == pytest.approx(1)
    # Wang et al.'s two flows: text -> label words dominates the first layers, label words ->
    # target the last ones
    first = report.figure("shallow layers (first 6): share S_wp")
    assert first.passed and first.measured > 0.5
    last = report.figure("deep layers (last 6): share S_pq")
    assert last.passed and last.measured > 0.8
    # isolating label words in the first layers changes more than in the last layers, and
    # changes the top words far more than isolating as many random tokens
    assert report.figure("label loyalty: first-layer isolation < last-layer isolation").passed
    label_first = report.figure("label words, first layers: word loyalty").measured
    random_first = report.figure("random tokens, first layers: word loyalty").measured
    assert label_first < random_first - 0.3
    assert report.figure("label words, last layers: label loyalty").measured >= 0.9
    assert len(report.series["loyalty"]) == 4 and FAST.n_queries == 32
    # the saliency pass froze the shared model's parameters only while it ran
    from iclkit.bundled_models import load_causal_lm

    model, _ = load_causal_lm(None, device="cpu")
    assert all(parameter.requires_grad for parameter in model.parameters())
