"""`coffea-wq report LOGDIR`: a real run's logs made into a page that headless Chromium renders with
one row per worker and one bar per task attempt (docs/executor.md, section 10)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from coffea_wq.cli.main import main
from coffea_wq.executor import last_report
from coffea_wq.manager.txlog import read_transactions_log
from tests import support
from tests.dashboard.runs import SlowProcessor, sample_fileset
from tests.dashboard.test_browser import ARTIFACTS, CHROMEDRIVER, CHROMIUM, start_browser


def test_a_folder_without_a_transactions_log_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello\n")
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "no transactions log" in err and "notes.txt" in err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.slow
@support.needs_system(CHROMIUM is None, "chromium", "chromium")
@support.needs_system(not Path(CHROMEDRIVER).exists(), "chromedriver", "chromium-driver")
def test_report_of_a_real_run_renders_in_chromium(tmp_path, capsys):
    from selenium.webdriver.common.by import By

    logs = tmp_path / "logs"
    logs.mkdir()
    try:
        executor = coffea_wq.WorkQueueExecutor(local_workers=2, status=False, filepath=str(tmp_path),
                                               resource_monitor="measure", transactions_log=str(logs / "tr.log"),
                                               stats_log=str(logs / "stats.log"), debug_log=str(logs / "debug.log"))
        runner = processor.Runner(executor=executor, chunksize=1250, schema=NanoAODSchema, metadata_cache={})
        runner(sample_fileset(), SlowProcessor(0.2), treename="Events")
    finally:
        coffea_wq.executor.shutdown()
    page = tmp_path / "report.html"
    assert main(["report", str(logs), "-o", str(page)]) == 0
    assert "task attempts on 2 workers" in capsys.readouterr().out
    events = read_transactions_log(logs / "tr.log")
    attempts = [e for e in events if e.event == "RUNNING"]
    workers = {e.address for e in events if e.kind == "WORKER" and e.event == "CONNECTION"}
    assert len(workers) == 2 and len(attempts) >= last_report("Processing").tasks_returned == 12

    driver = start_browser(Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)))
    try:
        driver.get(page.as_uri())
        rows = driver.find_elements(By.CSS_SELECTOR, "svg#timeline .worker-row")
        assert sorted(r.get_attribute("data-worker") for r in rows) == sorted(workers)
        bars = driver.find_elements(By.CSS_SELECTOR, "svg#timeline .task-bar")
        assert len(bars) == len(attempts)
        assert sorted(b.get_attribute("data-task") for b in bars) == sorted(e.subject for e in attempts)
        assert all(b.size["width"] > 0 for b in bars)  # drawn, not just in the markup
        # chunk bars are split into phases, the sleeping processor the widest piece
        assert driver.find_elements(By.CSS_SELECTOR, ".task-bar rect[data-phase=process]")
        pieces = driver.find_elements(By.CSS_SELECTOR, "#breakdown .stack span")
        widths = {p.get_attribute("data-phase"): p.size["width"] for p in pieces}
        assert max(widths, key=widths.get) == "process"
        assert "% of worker time in your processor" in driver.find_element(By.ID, "advice").text
        for kind in ("duration", "memory"):
            assert driver.find_elements(By.CSS_SELECTOR, f"svg.histogram[data-category=processing][data-kind={kind}]")
        assert len(driver.find_elements(By.CSS_SELECTOR, "svg#transfers polyline.transfer")) == 2
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.set_window_size(1280, 1400)
        assert driver.save_screenshot(str(ARTIFACTS / "report.png"))
    finally:
        driver.quit()
    # nothing is fetched: the page is whole
    text = page.read_text()
    assert "<script" not in text and "http://" not in text and "src=" not in text
    shutil.rmtree(logs)
