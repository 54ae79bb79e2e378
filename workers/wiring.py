"""The one place that turns ``Settings`` into objects.

The command line, the runner, the worker processes and the admin API all build what
they need here, so a setting means the same thing everywhere. Everything is built on
first use: a submit worker never loads the OCR models, and a process that forks (Celery
prefork) builds its own after the fork, since connection pools and ONNX Runtime
sessions must not cross one. :meth:`Resources.close` releases what was built.
"""

from __future__ import annotations

from functools import cached_property

import redis
from celery import Celery
from redis.backoff import NoBackoff
from redis.retry import Retry

from services.blobs import BlobStore, LocalBlobStore
from services.config import Settings
from services.dispatch import Dispatcher
from services.ledger import Ledger
from services.mail import MaildirSource, MailSource
from services.ncb import (
    BreakerStore,
    CircuitBreaker,
    MemoryBreakerStore,
    NcbClient,
    RedisBreakerStore,
)
from services.ocr.engine import OcrEngine, OcrError
from services.ocr.pages import PageLimits
from services.records import Archive, AuditLog, CsvAuditLog, LocalArchive
from workers.app import make_app
from workers.dispatch import CeleryDispatcher


def build_ocr_engine(settings: Settings) -> OcrEngine:
    """The OCR engine ``OCR_ENGINE`` names, on ``OCR_DEVICE``."""
    if settings.ocr_engine == "onnx":
        from services.ocr.onnx_engine import OnnxOcrEngine

        return OnnxOcrEngine(
            device=settings.ocr_device,
            threads=settings.ocr_threads,
            det_max_side=settings.ocr_det_max_side,
        )
    if settings.ocr_engine == "paddle":
        from services.ocr.paddle_engine import PaddleOcrEngine

        return PaddleOcrEngine(
            model_dir=settings.paddle_model_dir,
            device=settings.ocr_device,
            threads=settings.ocr_threads,
            det_max_side=settings.ocr_det_max_side,
        )
    raise OcrError(f"Unknown OCR_ENGINE {settings.ocr_engine!r}; use onnx or paddle.")


def page_limits(settings: Settings) -> PageLimits:
    """What one attachment and one engine call may cost (pages, pixels, memory)."""
    return PageLimits(
        max_bytes=settings.max_attachment_bytes,
        max_pages=settings.max_pages,
        max_pixels=settings.max_page_pixels,
        pdf_dpi=settings.pdf_dpi,
        max_side=settings.max_page_side,
        max_document_pixels=settings.max_document_pixels,
        call_max_pixels=settings.ocr_call_max_pixels,
    )


class Resources:
    """A process's collaborators, built from one ``Settings`` on first use."""

    def __init__(self, settings: Settings, *, celery_app: Celery | None = None) -> None:
        self.settings = settings
        self._celery_app = celery_app

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.settings.ledger_url)

    @cached_property
    def blobs(self) -> BlobStore:
        return LocalBlobStore(self.settings.blob_path)

    @cached_property
    def ocr_engine(self) -> OcrEngine:
        return build_ocr_engine(self.settings)

    @cached_property
    def page_limits(self) -> PageLimits:
        return page_limits(self.settings)

    @cached_property
    def mail_source(self) -> MailSource:
        return MaildirSource(self.settings.maildir)

    @cached_property
    def breaker_redis(self) -> redis.Redis | None:
        """The Redis that holds shared state (the breaker), when the broker is Redis."""
        url = self.settings.celery_broker_url
        if not url.startswith(("redis://", "rediss://")):
            return None
        return redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
        )

    @cached_property
    def breaker(self) -> CircuitBreaker:
        """Shared by every worker process through Redis; per process on the demo broker."""
        s = self.settings
        client = self.breaker_redis
        store: BreakerStore = RedisBreakerStore(client) if client else MemoryBreakerStore()
        return CircuitBreaker(
            store,
            threshold=s.ncb_breaker_threshold,
            cooldown_s=s.ncb_breaker_cooldown_s,
            probe_ttl_s=max(2 * s.ncb_timeout_s, 1.0),
        )

    @cached_property
    def ncb(self) -> NcbClient:
        s = self.settings
        return NcbClient(
            s.ncb_api_base_url,
            s.ncb_api_key,
            timeout_s=s.ncb_timeout_s,
            max_attempts=s.ncb_max_attempts,
            breaker=self.breaker,
            base_delay_s=s.ncb_retry_base_delay_s,
            max_delay_s=s.ncb_retry_max_delay_s,
            max_retry_after_s=s.ncb_max_retry_after_s,
        )

    @cached_property
    def audit_log(self) -> AuditLog:
        return CsvAuditLog(self.settings.audit_log)

    @cached_property
    def archive(self) -> Archive:
        return LocalArchive(self.settings.archive)

    @cached_property
    def celery_app(self) -> Celery:
        return self._celery_app or make_app(self.settings)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        return CeleryDispatcher(self.celery_app, ocr_batch_size=self.settings.ocr_batch_size)

    def close(self) -> None:
        """Release connections and pools of whatever was built."""
        built = vars(self)
        if "ncb" in built:
            self.ncb.close()
        if "ledger" in built:
            self.ledger.close()
        client = built.get("breaker_redis")
        if client is not None:
            client.close()


_process_resources: Resources | None = None


def process_resources() -> Resources:
    """This process's resources, from its environment's settings (worker processes)."""
    global _process_resources
    if _process_resources is None:
        from celery import current_app

        from services.config import get_settings

        _process_resources = Resources(get_settings(), celery_app=current_app)
    return _process_resources


def close_process_resources() -> None:
    global _process_resources
    if _process_resources is not None:
        _process_resources.close()
        _process_resources = None
