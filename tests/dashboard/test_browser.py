"""The dashboard in real headless Chromium during a real run, with the manager's password set.

Without the password the page shows a login form and no data; with it, the chunks processed and
the workers shown match the manager's state within one refresh, and the page updates without a
reload. A screenshot is saved to outputs/test-artifacts/dashboard.png.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from coffea_wq.dashboard import live
from coffea_wq.executor import last_report
from coffea_wq.executor import session as sessions
from tests import support
from tests.dashboard.runs import SlowProcessor, sample_fileset

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = support.REPO / "outputs" / "test-artifacts"
# the flags a closed network needs, or chromium waits on updates and sync it cannot reach
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1700")
CHUNKSIZE = 500  # 30 chunks of the bundled 15,000 events
CHUNKS = 30
DELAY_S = 0.7  # per chunk: 2 workers need over 10 s for the 30 chunks, even on an idle machine
ONE_REFRESH_S = 2.0  # the page polls every second; plus the time to fetch and draw

pytestmark = [
    pytest.mark.slow,
    support.needs_system(CHROMIUM is None, "chromium", "chromium"),
    support.needs_system(not Path(CHROMEDRIVER).exists(), "chromedriver", "chromium-driver"),
]


def start_browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class BackgroundRun:
    """The analysis in a thread, as a user's script runs it while they watch the page."""

    def __init__(self, executor: coffea_wq.WorkQueueExecutor) -> None:
        self.output = None
        self.error: BaseException | None = None
        self.started, self.ended = time.monotonic(), 0.0
        # a fresh metadata cache: this run preprocesses its files itself, whatever ran before
        runner = processor.Runner(executor=executor, chunksize=CHUNKSIZE, schema=NanoAODSchema, metadata_cache={})
        self.thread = threading.Thread(target=self._run, args=(runner,), daemon=True)
        self.thread.start()

    def _run(self, runner) -> None:
        try:
            self.output = runner(sample_fileset(), SlowProcessor(DELAY_S), treename="Events")
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.ended = time.monotonic()


def manager_queue():
    open_sessions = list(sessions._SESSIONS.values())
    return open_sessions[0].queue if open_sessions else None


def manager_chunks_done(queue) -> int:
    """Processing tasks the manager has returned: every task done less the preprocessing ones."""
    return queue.stats.tasks_done - last_report("Preprocessing").tasks_returned


def number(driver, element_id: str) -> int:
    from selenium.webdriver.common.by import By

    return int(driver.find_element(By.ID, element_id).text.replace(",", ""))


def test_dashboard_in_chromium_follows_the_run(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    password = tmp_path / "password"
    password.write_bytes(b"let-me-see\n")
    executor = coffea_wq.WorkQueueExecutor(local_workers=2, status=False, dashboard=True, filepath=str(tmp_path),
                                           password_file=str(password))
    run = BackgroundRun(executor)
    driver = start_browser(Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)))
    try:
        support.wait_until(live.running_dashboards, 60, "the dashboard to start")
        url = live.running_dashboards()[0].url
        driver.get(url)
        wait = WebDriverWait(driver, 60, poll_frequency=0.2)

        # without the password: a login form, no data on the page, and the API refuses
        wait.until(lambda d: d.find_element(By.ID, "login").is_displayed())
        assert not driver.find_element(By.ID, "content").is_displayed()
        assert all(not row.text for row in driver.find_elements(By.CSS_SELECTOR, "#content tbody"))
        assert "ttH_like" not in driver.page_source
        status = driver.execute_async_script(
            "const done = arguments[0]; fetch('/api/snapshot').then(r => done(r.status));")
        assert status == 401

        driver.find_element(By.ID, "password").send_keys("wrong")
        driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
        wait.until(lambda d: d.find_element(By.ID, "login-error").text == "wrong password")
        assert not driver.find_element(By.ID, "content").is_displayed()
        driver.find_element(By.ID, "password").send_keys("let-me-see")
        driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
        wait.until(lambda d: d.find_element(By.ID, "content").is_displayed())
        driver.execute_script("window.sameDocument = 'never reloaded';")

        # processing has begun: the page and the manager agree, within one refresh
        wait.until(lambda d: d.find_element(By.ID, "phase").text == "(Processing)" and number(d, "chunks-done") > 0)
        queue = manager_queue()
        for _ in range(2):
            before = manager_chunks_done(queue)
            time.sleep(ONE_REFRESH_S)
            shown, workers_shown = number(driver, "chunks-done"), number(driver, "workers-connected")
            after = manager_chunks_done(queue)
            assert before <= shown <= after, (before, shown, after)
            assert number(driver, "chunks-total") == CHUNKS
            assert workers_shown == queue.stats.workers_connected == 2
            rows = driver.find_elements(By.CSS_SELECTOR, "#workers tbody tr")
            assert len(rows) == 2 and all("127.0.0.1:" in row.text for row in rows)

        # it keeps updating in place: new numbers, more refreshes, the same document
        refreshes, chunks = number(driver, "refreshes"), number(driver, "chunks-done")
        wait.until(lambda d: number(d, "chunks-done") > chunks and number(d, "refreshes") > refreshes + 1)
        assert driver.execute_script("return window.sameDocument;") == "never reloaded"
        assert driver.find_elements(By.CSS_SELECTOR, "#throughput svg path.line")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(ARTIFACTS / "dashboard.png"))

        run.thread.join(timeout=180)
        assert not run.thread.is_alive(), "the run did not finish"
        assert run.error is None, run.error
        assert run.ended - run.started >= 10, "the run must last long enough to watch"
        wait.until(lambda d: d.find_element(By.ID, "state").text == "finished")
        assert number(driver, "chunks-done") == CHUNKS == len(last_report("Processing").accumulated)
        # where the time went, over the whole run: a stacked bar whose biggest piece is the sleeping
        # processor, and advice
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#breakdown-bar span[data-phase=process]"))
        widths = {piece.get_attribute("data-phase"): piece.size["width"]
                  for piece in driver.find_elements(By.CSS_SELECTOR, "#breakdown-bar span")}
        assert max(widths, key=widths.get) == "process", widths
        # one sentence: the leading group's share, the runner-up's, and what to do (breakdown.py)
        advice = driver.find_element(By.ID, "advice").text
        assert re.fullmatch(r"\d+%( of worker time)? [a-z ()]+(, \d+% [a-z ()]+)?: [a-z ,()-]+", advice), advice
        assert "in your processor" in advice
    finally:
        driver.quit()
        run.thread.join(timeout=180)
        coffea_wq.executor.shutdown()
