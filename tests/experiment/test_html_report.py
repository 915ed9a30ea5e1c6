"""report.html of a real run (the session's Gemma 3 270M grid): content, provenance, flags.

What the page does in a browser (plots decode, the filter hides rows, no console errors) is
checked in test_report_browser.py with headless Chromium.
"""

import base64
import json
import re
import stat

import pytest
from click.testing import CliRunner

from iclkit.cli import main
from iclkit.experiment import render_report
from iclkit.experiment.html_report import render_html
from iclkit.experiment.statistics import add_intervals
from iclkit.experiment.store import ResultsStore
from iclkit.experiment.tables import over_seeds

pytestmark = pytest.mark.slow


def _provenance(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="provenance-data">(.*?)</script>', page)
    assert found is not None
    return json.loads(found.group(1))


def _leaderboard_rows(page: str) -> list[str]:
    table = re.search(r'<table id="leaderboard-table">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert table is not None
    return re.findall(r"<tr class=\"([^\"]*)\">(.*?)</tr>", table.group(1), re.S)


def test_report_html_is_self_contained_and_shows_every_part(shared_run, tmp_path):
    folder = shared_run.copy(tmp_path / "run")
    report = render_report(folder)
    page_path = folder / "report.html"
    assert page_path in report.files
    for name in ("run.json", "summary.csv", "summary.md", "report.html"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644, name
    page = page_path.read_text()
    # Self-contained: nothing is fetched from the network.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<link" not in page and "<script src" not in page
    # One leaderboard row per group of seeds; the one-seed rows show "± —".
    rows = _leaderboard_rows(page)
    assert len(rows) == len(report.seeds)
    assert sum("best" in classes for classes, _ in rows) == 1
    assert "± —" in page and "95% CI" in page
    # Every embedded plot is a PNG (accuracy vs k, order sensitivity, reliability).
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"', page)
    assert {alt for _, alt in images} == {"accuracy vs k", "order sensitivity", "reliability"}
    for data, _ in images:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n")
    # The pivot (selector × k against calibration) and a paired comparison of selectors.
    assert "calibration = no" in page
    assert re.search(r"<td>(random|first)</td><td>(first|random)</td>", page)
    assert "paired permutation" in page
    # Provenance: every prediction of every cell, with the texts it showed.
    provenance = _provenance(page)
    records = ResultsStore(folder).records()
    assert set(provenance["predictions"]) == {cell.id for cell in shared_run.plan.cells}
    assert sum(map(len, provenance["predictions"].values())) == len(records)
    pool = {str(e.id): e.text for e in shared_run.plan.data.pool}
    queries = {str(e.id): e.text for e in shared_run.plan.data.eval}
    assert provenance["queries"] == queries
    shown = {demo for rows in provenance["predictions"].values() for row in rows for demo in row[2]}
    assert shown and provenance["pool"] == {demo: pool[demo] for demo in shown}
    first = records[0]
    row = provenance["predictions"][first["cell"]][0]
    assert (
        row[0] == first["query"] and row[2] == first["demos"] and row[5] == first["probabilities"]
    )
    assert row[6:] == [first["prediction"], first["gold"]]
    # Each cell's confusion matrix sums to its predictions.
    for cell in shared_run.plan.cells:
        section = re.search(
            rf'data-cell="{cell.id}".*?<table class="confusion">(.*?)</table>', page, re.S
        )
        assert section is not None
        counts = [int(n) for n in re.findall(r'<td class="heat"[^>]*>(\d+)</td>', section.group(1))]
        assert sum(counts) == len(shared_run.plan.data.eval)


def test_baselines_come_first_and_are_marked(shared_run, tmp_path):
    folder = shared_run.copy(tmp_path / "run")
    store = ResultsStore(folder)
    report = render_report(folder, html=False)
    assert not (folder / "report.html").exists()
    cells = [dict(row, baseline="zero-shot" if row["k"] == 0 else "") for row in report.cells]
    records = store.records()
    labels = store.info()["labels"]
    groups = over_seeds(cells)
    add_intervals(groups, cells, records, labels)
    render_html(
        folder, name="t", cells=cells, groups=groups, records=records, labels=labels, info={}
    )
    rows = _leaderboard_rows((folder / "report.html").read_text())
    assert "baseline" in rows[0][0] and "baseline: zero-shot" in rows[0][1]
    assert not any("baseline" in classes for classes, _ in rows[1:])


def test_unreadable_data_shows_ids_and_the_cli_flags(shared_run, tmp_path):
    folder = shared_run.copy(tmp_path / "run")
    info = json.loads((folder / "run.json").read_text())
    info["config"]["data"]["pool"] = str(tmp_path / "moved-away.jsonl")
    (folder / "run.json").write_text(json.dumps(info))
    result = CliRunner().invoke(main, ["report", str(folder)])
    assert result.exit_code == 0, result.output
    page = (folder / "report.html").read_text()
    assert "examples are shown by id" in page
    assert _provenance(page)["pool"] == {}
    assert "INFO iclkit.experiment: report.html shows example ids only" in result.stderr
    # The terminal table: aligned columns, intervals, no Markdown pipes.
    assert "zero-shot" in result.stdout and "accuracy 95% CI" in result.stdout
    assert "|---" not in result.stdout
    quiet = CliRunner().invoke(main, ["report", "--quiet", "--no-html", str(folder)])
    assert quiet.exit_code == 0 and "INFO" not in quiet.stderr
    assert not (folder / "report.html").exists()
