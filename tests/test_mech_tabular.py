"""tabular-icl: a prior-fitted network classifies small real tables in context (TabPFN-style)."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from click.testing import CliRunner  # noqa: E402

from iclkit.cli import main  # noqa: E402
from iclkit.mech.report import CheckReport  # noqa: E402
from iclkit.mech.tabular_icl import FAST, TABLES, load_table, serialise, split  # noqa: E402
from iclkit.mech.tabular_pfn import (  # noqa: E402
    MAX_CLASSES,
    MAX_FEATURES,
    PriorSetting,
    TabularPFN,
    sample_tables,
)


def test_prior_tables_are_standardised_padded_and_cover_their_classes():
    generator = torch.Generator().manual_seed(0)
    x, y, n_classes = sample_tables(64, 60, 12, generator)
    assert x.shape == (64, 60, MAX_FEATURES) and y.shape == (64, 60)
    assert set(n_classes.tolist()) <= set(range(2, MAX_CLASSES + 1))
    for table in range(64):
        used = x[table].abs().sum(0) > 0
        assert 1 <= int(used.sum()) <= MAX_FEATURES
        train = x[table, :12][:, used]
        # standardised with the training rows' statistics (clipped at ±5)
        assert float(train.mean(0).abs().max()) < 0.5
        present = set(y[table].tolist())
        assert present <= set(range(int(n_classes[table])))
        assert present == set(y[table, :12].tolist())


def test_network_ignores_row_order_and_masks_absent_classes():
    torch.manual_seed(0)
    model = TabularPFN(PriorSetting(d_model=32, n_layers=2, d_ff=64)).eval()
    x, y, _ = sample_tables(2, 30, 20, torch.Generator().manual_seed(1))
    n_classes = torch.tensor([2, 3])
    with torch.no_grad():
        logits = model(x, y[:, :20], n_classes)
        shuffle = torch.randperm(20)
        test_order = 20 + torch.randperm(10)
        order = torch.cat([shuffle, test_order])
        shuffled = model(x[:, order], y[:, shuffle], n_classes)
    assert logits.shape == (2, 10, MAX_CLASSES)
    assert torch.isneginf(logits[0, :, 2]).all() and torch.isfinite(logits[1]).all()
    # training rows: a set, not a sequence; test rows: each predicted on its own
    torch.testing.assert_close(shuffled, logits[:, test_order - 20], rtol=1e-4, atol=1e-4)


def test_predict_proba_and_real_table_splits():
    x, y = load_table("breast cancer")
    data = split(x, y, 20, seed=3)
    assert data.x_train.shape == (20, MAX_FEATURES) and data.x_test.shape == (549, MAX_FEATURES)
    assert split(x, y, 12, seed=3).x_train.shape == (12, 6)
    assert set(data.y_train.tolist()) == {0, 1}
    np.testing.assert_allclose(data.x_train.mean(0), 0, atol=1e-9)
    iris = split(*load_table("iris"), 10, seed=0)
    assert iris.x_train.shape == (10, 4) and sorted(set(iris.y_train.tolist())) == [0, 1, 2]
    model = TabularPFN(PriorSetting(d_model=32, n_layers=2, d_ff=64))
    probabilities = model.predict_proba(
        torch.tensor(iris.x_train, dtype=torch.float32),
        torch.tensor(iris.y_train),
        torch.tensor(iris.x_test, dtype=torch.float32),
        3,
    )
    assert probabilities.shape == (140, 3)
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(140))
    with pytest.raises(ValueError, match="at most 10 features"):
        model.predict_proba(
            torch.zeros(5, 12), torch.zeros(5, dtype=torch.long), torch.zeros(2, 12), 2
        )
    assert serialise(np.array([0.54, -1.26])) == "0.5 -1.3"


@pytest.mark.slow
def test_tabular_icl_fast_variant(tmp_path):
    torch.set_num_threads(1)
    args = ["mech", "tabular-icl", "--fast", "--json", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = CheckReport.model_validate_json(result.stdout)
    assert report.fast and report.check == "tabular-icl"
    assert (tmp_path / "tabular-icl.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "tabular-icl.json").read_text())
    assert saved["check"] == "tabular-icl" and saved["series"]["rows"] == list(FAST.rows)
    for n in FAST.rows:
        network = report.figure(f"n={n}: prior-fitted network accuracy (mean of 3 tables)").measured
        majority = report.figure(f"n={n}: majority accuracy (mean of 3 tables)").measured
        logistic = report.figure(f"n={n}: logistic regression accuracy (mean of 3 tables)").measured
        # trained only on synthetic tables, the network classifies the real ones far above
        # the majority class and not far below a fitted logistic regression
        assert network > majority + 0.3
        assert network > logistic - 0.08
    gemma = report.series["mean"]["Gemma 3 270M ICL"]
    assert list(gemma) == [str(n) for n in FAST.gemma_rows]
    assert all(0.0 <= value <= 1.0 for value in gemma.values())
    for table in TABLES:
        assert len(report.series["accuracies"][table]["prior-fitted network"]["50"]) == FAST.seeds
