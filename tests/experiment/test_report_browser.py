"""report.html opened in a real browser: headless Chromium (the Debian package) via Selenium.

The page of the session's real run must render its tables and plots with no console error,
switch cells, and filter the provenance table as the user types. A screenshot of the page is
kept in ``$ICLKIT_TEST_ARTIFACTS`` (default ``test-artifacts/`` in the checkout).
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from iclkit.experiment import render_report
from iclkit.experiment.store import ResultsStore

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("ICLKIT_TEST_ARTIFACTS", REPO / "test-artifacts"))


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver_path, (
        "the browser test needs Debian's chromium and chromium-driver packages: "
        "run `bash .ci/setup` as root, or apt-get install chromium chromium-driver"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1300,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium downloads nothing.
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _visible_rows(driver) -> list:
    return [
        row
        for row in driver.find_elements("css selector", "#provenance-table tbody tr")
        if row.is_displayed()
    ]


def test_report_renders_and_filters_in_chromium(browser, shared_run, tmp_path):
    from selenium.webdriver.support.ui import Select

    folder = shared_run.copy(tmp_path / "run")
    report = render_report(folder)
    records = ResultsStore(folder).records()
    browser.get((folder / "report.html").as_uri())
    assert browser.title == "shared · iclkit report"

    # Tables: one leaderboard row per group of seeds, the pivot, the comparisons.
    leaderboard = browser.find_elements("css selector", "#leaderboard-table tbody tr")
    assert len(leaderboard) == len(report.seeds) and all(row.is_displayed() for row in leaderboard)
    assert browser.find_element("id", "pivot-table").is_displayed()
    assert browser.find_elements("css selector", "#comparisons-table tbody tr")

    # Plots: every image decoded and laid out.
    images = browser.find_elements("css selector", "img")
    assert len(images) == 3
    for image in images:
        assert browser.execute_script("return arguments[0].complete", image)
        assert browser.execute_script("return arguments[0].naturalWidth", image) > 300
        assert image.size["height"] > 100

    # Choosing a cell shows its details and its predictions.
    cell = shared_run.plan.cells[-1].id
    mine = [r for r in records if r["cell"] == cell]
    Select(browser.find_element("id", "cell-select")).select_by_value(cell)
    shown = [s for s in browser.find_elements("css selector", ".cell-detail") if s.is_displayed()]
    assert [s.get_attribute("data-cell") for s in shown] == [cell]
    rows = _visible_rows(browser)
    assert len(rows) == len(mine) == len(shared_run.plan.data.eval)
    demo_text = {str(e.id): e.text for e in shared_run.plan.data.pool}[mine[0]["demos"][0]]
    assert demo_text in rows[0].text

    # Typing in the filter hides the rows that do not contain the text.
    query_text = {str(e.id): e.text for e in shared_run.plan.data.eval}[mine[2]["query"]]
    box = browser.find_element("id", "filter")
    box.send_keys(query_text)
    rows = _visible_rows(browser)
    assert len(rows) == 1 and query_text in rows[0].text
    count = browser.find_element("id", "shown-count").text
    assert count == f"1 of {len(mine)} predictions shown"
    box.clear()
    box.send_keys(" ")  # an input event with an empty needle: every row again
    assert len(_visible_rows(browser)) == len(mine)
    browser.find_element("id", "wrong-only").click()
    wrong = sum(r["prediction"] != r["gold"] for r in mine)
    assert len(_visible_rows(browser)) == wrong
    browser.find_element("id", "wrong-only").click()

    # No console errors, then a full-page screenshot as a test artifact.
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1300, min(height + 50, 8000))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "report_shared_run.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes().startswith(b"\x89PNG") and screenshot.stat().st_size > 20_000
