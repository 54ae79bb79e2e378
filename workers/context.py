"""Per-process resources for the tasks: built once, on first use, in each worker process.

The OCR engine in particular is loaded once per process (model load takes seconds), and
after the fork (ONNX Runtime sessions must not cross a fork).
"""

from __future__ import annotations

from functools import cache

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from services.blobs import BlobStore, LocalBlobStore
from services.config import get_settings
from services.ledger import Ledger
from services.mail import MaildirSource, MailSource
from services.ncb import CircuitBreaker, MemoryBreakerStore, NcbClient, RedisBreakerStore
from services.ocr.engine import OcrEngine
from services.ocr.factory import make_engine
from services.ocr.pages import PageLimits
from services.records import Archive, AuditLog, CsvAuditLog, LocalArchive
from workers.app import broker_url


@cache
def ledger() -> Ledger:
    return Ledger(get_settings().ledger_url)


@cache
def blobs() -> BlobStore:
    return LocalBlobStore(get_settings().blob_path)


@cache
def engine() -> OcrEngine:
    return make_engine(get_settings())


def page_limits() -> PageLimits:
    s = get_settings()
    return PageLimits(
        max_bytes=s.max_attachment_bytes,
        max_pages=s.max_pages,
        max_pixels=s.max_page_pixels,
        pdf_dpi=s.pdf_dpi,
    )


@cache
def mail_source() -> MailSource:
    s = get_settings()
    if s.mail_source != "maildir":
        raise NotImplementedError(f"MAIL_SOURCE={s.mail_source} is not available yet; use maildir.")
    return MaildirSource(s.maildir, max_attachment_bytes=s.max_attachment_bytes)


@cache
def breaker() -> CircuitBreaker:
    """Shared between worker processes through Redis when the broker is Redis."""
    s = get_settings()
    url = broker_url()
    if url.startswith(("redis://", "rediss://")):
        client = redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
        )
        store = RedisBreakerStore(client)
    else:
        store = MemoryBreakerStore()
    return CircuitBreaker(
        store, threshold=s.ncb_breaker_threshold, cooldown_s=s.ncb_breaker_cooldown_s
    )


@cache
def ncb() -> NcbClient:
    s = get_settings()
    return NcbClient.from_settings(
        s,
        breaker=breaker(),
        base_delay_s=s.ncb_retry_base_delay_s,
        max_delay_s=s.ncb_retry_max_delay_s,
        max_retry_after_s=s.ncb_max_retry_after_s,
    )


@cache
def audit_log() -> AuditLog:
    return CsvAuditLog(get_settings().audit_log)


@cache
def archive() -> Archive:
    return LocalArchive(get_settings().archive)
