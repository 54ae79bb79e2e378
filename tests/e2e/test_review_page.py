"""The ops review page in a real browser, against the real admin API and pipeline steps.

A sample receipt goes through real intake and the real OCR model (with a threshold no
read can pass, so it waits for a person); the admin API app runs under uvicorn on a
real ledger and blob store; headless Chromium signs in, checks the total's box is drawn
over the page image, corrects the amount and approves using only the keyboard. The real
submitter then sends what the API queued to the NCB stand-in, which must hold the claim
once, with the corrected amount.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from limits.storage import MemoryStorage
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from services.api.app import create_app
from services.api.ratelimit import RateLimiter
from services.blobs import LocalBlobStore
from services.config import Settings
from services.demo import SAMPLE_INBOX_DIR
from services.demo.ncb_standin import StandinServer
from services.intake import ingest
from services.ledger import JobState, Ledger
from services.mail import MaildirSource
from services.ncb import NcbClient
from services.ocr.onnx_engine import OnnxOcrEngine
from services.submission import Outcome, submit_job
from tests.support.ocr_fixtures import recognise

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SAMPLE = "01_clinic_en_subject.eml"  # its receipt prints RM90.80
CORRECTED_AMOUNT = "91.25"
KEY_NAME = "ops-reviewer"
WAIT_S = 20


class RecordingDispatcher:
    """A ``Dispatcher`` that remembers what the API asked for instead of queueing it,
    so the test can run the real submitter step itself."""

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.ocr_jobs: list[str] = []

    def poll(self) -> None:
        pass

    def ocr(self, job_ids: Sequence[str]) -> None:
        self.ocr_jobs.extend(job_ids)

    def submit(self, job_id: str) -> None:
        self.submitted.append(job_id)

    def finalize(self, job_id: str) -> None:
        pass

    def deliver(self) -> None:
        pass


class AppServer:
    """Serves an ASGI app with uvicorn in a daemon thread on a free port (as the NCB
    stand-in's ``StandinServer`` does), so the browser talks to it over real HTTP."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> AppServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=2)
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="admin-api"
        )
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError("the admin API did not start")
            time.sleep(0.01)
        self._server, self._thread, self._sock = server, thread, sock
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Debian Chromium with its performance log on (to see every URL visited)."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(
            f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}); "
            "apt-get install chromium chromium-driver"
        )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def receipt_waiting_for_review(
    tmp_path: Path, ledger: Ledger, blobs: LocalBlobStore, engine: OnnxOcrEngine
) -> str:
    """A real sample email through real intake and OCR, routed to review."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy2(SAMPLE_INBOX_DIR / SAMPLE, inbox)
    (job_id,) = ingest(MaildirSource(inbox), ledger, blobs).new_jobs
    # No read is that sure: a person must look at it.
    report = recognise([job_id], ledger=ledger, blobs=blobs, engine=engine, threshold=0.999)
    assert report.needs_review == [job_id]
    job = ledger.get_job(job_id)
    assert job.state is JobState.NEEDS_REVIEW
    assert job.field_evidence and "total_amount" in job.field_evidence
    return job_id


def test_review_page_approves_a_corrected_claim_by_keyboard(
    tmp_path: Path, ledger: Ledger, ocr_engine: OnnxOcrEngine, browser: Any
) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    job_id = receipt_waiting_for_review(tmp_path, ledger, blobs, ocr_engine)
    key = ledger.apikeys.create(KEY_NAME, "reviewer").key
    dispatcher = RecordingDispatcher()
    app = create_app(
        ledger=ledger,
        blobs=blobs,
        dispatcher=dispatcher,
        settings=Settings(_env_file=None),  # type: ignore[call-arg]
        rate_limiter=RateLimiter("1000/minute", MemoryStorage()),  # no Redis needed
    )
    wait = WebDriverWait(browser, WAIT_S)

    def active_id() -> str:
        return str(browser.switch_to.active_element.get_attribute("id"))

    def press(*keys: str) -> None:
        browser.switch_to.active_element.send_keys(*keys)

    with AppServer(app) as api:
        page = httpx.get(f"{api.url}/review")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "img-src 'self' blob:" in csp

        browser.get(f"{api.url}/review")
        # The key box has focus; type the key and press Enter.
        wait.until(lambda d: active_id() == "api-key")
        press(key, Keys.ENTER)

        # The queue shows our receipt; j selects it, Enter opens it.
        row = f'#queue-rows tr[data-job-id="{job_id}"]'
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, row))
        assert "receipt.jpg" in browser.find_element(By.CSS_SELECTOR, row).text
        press("j")
        press(Keys.ENTER)
        wait.until(lambda d: d.find_element(By.ID, "item-title").text == "receipt.jpg")

        # The page image arrived (fetched with the key -> blob URL) and the total's box
        # is drawn over it.
        wait.until(
            lambda d: (
                d.execute_script("return document.getElementById('page-image').naturalWidth") > 0
            )
        )
        image_src = browser.find_element(By.ID, "page-image").get_attribute("src")
        assert image_src.startswith("blob:")
        box = browser.find_element(By.CSS_SELECTOR, "#page-overlay polygon#box-total_amount")
        assert box.get_attribute("points").strip()
        view_box = browser.execute_script(
            "return document.getElementById('page-overlay').getAttribute('viewBox')"
        )
        evidence = ledger.get_job(job_id).field_evidence or {}
        total = evidence["total_amount"]
        assert view_box == f"0 0 {total['page_width']} {total['page_height']}"

        # Correct the amount with the keyboard only: e edits the first field (the total).
        press("e")
        assert active_id() == "field-total_amount"
        assert "active" in (box.get_attribute("class") or "")  # highlighted while edited
        press(Keys.CONTROL, "a")
        press(Keys.BACKSPACE)
        press(CORRECTED_AMOUNT)
        browser.save_screenshot(str(tmp_path / "review-item.png"))
        press(Keys.ESCAPE)  # leave the text box so shortcuts work again
        press("a")

        # Approved; it was the only item, so the queue is empty now.
        wait.until(lambda d: "Approved" in d.find_element(By.ID, "status").text)
        wait.until(lambda d: d.find_element(By.ID, "queue-empty").is_displayed())

        # The key never appeared in a URL, a cookie or localStorage.
        urls = [browser.current_url, *visited_urls(browser)]
        assert urls and not any(key in url for url in urls)
        assert not browser.get_cookies()
        assert browser.execute_script("return window.localStorage.length") == 0
        csp_errors = [
            e for e in browser.get_log("browser") if "Content Security Policy" in e["message"]
        ]
        assert not csp_errors

        # A second approval of the same item (someone else, late) is refused.
        again = httpx.post(
            f"{api.url}/api/v1/exceptions/{job_id}/approve",
            json={},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "conflict"

    # The API queued the claim for the submitter; run the real submitter step.
    assert dispatcher.submitted == [job_id]
    with StandinServer(api_key="ncb-test-key") as ncb:
        client = NcbClient(ncb.url, "ncb-test-key", base_delay_s=0.01, max_delay_s=0.05)
        try:
            for submitted in dispatcher.submitted:
                outcome = submit_job(submitted, ledger=ledger, ncb=client).outcome
                assert outcome is Outcome.SUBMITTED
        finally:
            client.close()
        claims = ncb.state.claims

    assert [c["idempotency_key"] for c in claims] == [job_id]
    assert claims[0]["body"]["Claim Amount"] == float(CORRECTED_AMOUNT)
    job = ledger.get_job(job_id)
    assert job.state is JobState.SUBMITTED
    approvals = [
        e
        for e in job.events
        if e.from_state is JobState.NEEDS_REVIEW and e.actor == f"api:{KEY_NAME}"
    ]
    assert approvals, [(e.from_state, e.to_state, e.actor) for e in job.events]


def visited_urls(browser: Any) -> list[str]:
    """Every request URL in Chromium's performance log (page, script, fetches)."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls
