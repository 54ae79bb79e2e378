"""Fixtures for the admin API's tests (loaded by ``tests/conftest.py``).

The API runs for real: uvicorn on a free port in a thread (``ThreadedServer``), over the
test's own ledger (SQLite, and PostgreSQL for ``both_databases`` tests), a real blob
store in the test's folder and the sample inbox's real attachments. The one stand-in is
the dispatcher: :class:`RecordingDispatcher` implements ``services.dispatch.Dispatcher``
(the interface to the queue) and records what was queued.
"""

from __future__ import annotations

import email
import hashlib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email import policy
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.api.app import create_app
from services.api.health import HealthCheck
from services.blobs import BlobStore, LocalBlobStore
from services.config import Settings
from services.ledger import Ledger
from services.threaded_server import ThreadedServer
from tests.support.ledger_helpers import drive, new_email

INBOX = Path(__file__).resolve().parents[2] / "services" / "demo" / "inbox"
#: A Redis URL nothing answers on: the rate limiter counts in memory.
NO_REDIS = "redis://127.0.0.1:1/0"


@cache
def sample_attachments() -> dict[str, tuple[str, str, bytes]]:
    """``{"jpeg"|"png"|"pdf": (filename, content type, bytes)}`` from the sample inbox."""
    found: dict[str, tuple[str, str, bytes]] = {}
    for path in sorted(INBOX.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        for part in message.iter_attachments():
            data = part.get_payload(decode=True)
            if not isinstance(data, bytes):
                continue
            kind = {b"\xff\xd8\xff": "jpeg", b"\x89PN": "png", b"%PD": "pdf"}.get(data[:3])
            if kind and kind not in found:
                found[kind] = (part.get_filename() or "file", part.get_content_type(), data)
    return found


@dataclass
class RecordingDispatcher:
    """A ``Dispatcher`` that records what the API queued instead of sending it."""

    calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def poll(self) -> None:
        self.calls.append(("poll", ()))

    def ocr(self, job_ids: Sequence[str]) -> None:
        self.calls.append(("ocr", tuple(job_ids)))

    def submit(self, job_id: str) -> None:
        self.calls.append(("submit", (job_id,)))

    def finalize(self, job_id: str) -> None:
        self.calls.append(("finalize", (job_id,)))

    def deliver(self) -> None:
        self.calls.append(("deliver", ()))


@dataclass
class Api:
    """A running API and what it runs on."""

    server: ThreadedServer
    ledger: Ledger
    blobs: LocalBlobStore
    dispatcher: RecordingDispatcher
    client: httpx.Client
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def key(self, role: str) -> str:
        """A key of ``role`` (one per role per test, made on first use)."""
        if role not in self.keys:
            self.keys[role] = self.ledger.apikeys.create(f"{role}-{uuid.uuid4().hex[:6]}", role).key
        return self.keys[role]

    def headers(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key(role)}"}

    def get(self, path: str, role: str = "admin", **kwargs: Any) -> httpx.Response:
        return self.client.get(path, headers=self.headers(role), **kwargs)

    def post(self, path: str, role: str = "reviewer", **kwargs: Any) -> httpx.Response:
        return self.client.post(path, headers=self.headers(role), **kwargs)

    def add_job(
        self,
        kind: str = "jpeg",
        where: str = "needs_review",
        *,
        filename: str | None = None,
        content_type: str | None = None,
        email_id: str | None = None,
        part_index: int = 0,
    ) -> str:
        """A job over a real sample attachment, walked to ``where`` (see ``drive``)."""
        name, ctype, data = sample_attachments()[kind]
        key = self.blobs.put(data)
        job_id, _ = self.ledger.record_attachment(
            email_id or new_email(self.ledger),
            part_index,
            filename or name,
            content_type or ctype,
            len(data),
            # Each job its own original: the same sample may back several jobs.
            hashlib.sha256(data + uuid.uuid4().bytes).hexdigest(),
            key,
        )
        drive(self.ledger, job_id, where)
        return job_id


def start_api(
    ledger: Ledger,
    folder: Path,
    *,
    health_checks: dict[str, HealthCheck] | None = None,
    blobs: BlobStore | None = None,
    **settings: Any,
) -> Api:
    """Serve the API over ``ledger``; ``settings`` are environment names (API_RATE_LIMIT=...)."""
    from workers.wiring import page_limits

    values = {"REDIS_URL": NO_REDIS, "API_RATE_LIMIT": "100000/minute", **settings}
    config = Settings(**values)
    store = LocalBlobStore(folder / "blobs")
    dispatcher = RecordingDispatcher()
    app = create_app(
        ledger=ledger,
        blobs=blobs or store,
        dispatcher=dispatcher,
        settings=config,
        health_checks=health_checks,
        page_limits=page_limits(config),
    )
    server = ThreadedServer(app).start()
    client = httpx.Client(base_url=server.url, timeout=30)
    return Api(server, ledger, store, dispatcher, client)


@pytest.fixture
def api(ledger: Ledger, tmp_path: Path) -> Iterator[Api]:
    """The API over the test's ledger, served on a free port."""
    running = start_api(ledger, tmp_path)
    yield running
    running.client.close()
    running.server.stop()


@pytest.fixture
def api_factory(ledger: Ledger, tmp_path: Path) -> Iterator[Any]:
    """Start the API with other settings or checks: ``api_factory(API_RATE_LIMIT=...)``."""
    started: list[Api] = []

    def make(**kwargs: Any) -> Api:
        running = start_api(ledger, tmp_path / f"api{len(started)}", **kwargs)
        started.append(running)
        return running

    yield make
    for running in started:
        running.client.close()
        running.server.stop()
